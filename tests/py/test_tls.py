"""TLS for clients: secureClientPort with the key and trust stores operators have (JKS,
PKCS12, PEM), ssl.clientAuth, x509 ids and ACLs, client.portUnification, four-letter words
over TLS, a certificate replaced on disk, and the errors for stores that cannot be used.
The certificates are made here with openssl and keytool (v3, as real ones are). Third-party
clients: kazoo (Python's ssl) and Debian's Java zkCli over Netty, whose `whoami` is compared
with Apache ZooKeeper 3.8.0's for the same certificates."""

import os
import socket
import ssl
import subprocess
import tempfile

import pytest

from conftest import ZOOID_BIN, netty_classpath, running_server
from kazoo.exceptions import NoAuthError
from kazoo.security import ACL, Id, make_acl

PASSWORD = "secret"
CLIENT_DN = "CN=alice\\, the admin,OU=ops,O=Example Corp,C=US"
CLI_TIMEOUT = 120


def sh(*args, cwd):
    r = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr}")
    return r.stdout


def make_cert(d, name, subject, ca, ext):
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
       "-out", f"{name}.csr", "-subj", subject, cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(ext + "\n")
    sh("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
       "-CAcreateserial", "-out", f"{name}.pem", "-days", "30", "-extfile", f"{name}.ext", cwd=d)
    sh("openssl", "pkcs12", "-export", "-in", f"{name}.pem", "-inkey", f"{name}.key",
       "-certfile", f"{ca}.pem", "-out", f"{name}.p12", "-passout", f"pass:{PASSWORD}",
       "-name", name, cwd=d)
    sh("keytool", "-importkeystore", "-srckeystore", f"{name}.p12", "-srcstoretype", "PKCS12",
       "-srcstorepass", PASSWORD, "-destkeystore", f"{name}.jks", "-deststoretype", "JKS",
       "-deststorepass", PASSWORD, "-noprompt", cwd=d)
    # PEM key store: the key and the chain in one file.
    with open(os.path.join(d, f"{name}-all.pem"), "w") as out:
        for part in (f"{name}.key", f"{name}.pem", f"{ca}.pem"):
            with open(os.path.join(d, part)) as f:
                out.write(f.read())


@pytest.fixture(scope="module")
def certs():
    with tempfile.TemporaryDirectory(prefix="zt-tls-") as d:
        for ca in ("ca", "other-ca"):
            sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
               "-out", f"{ca}.pem", "-days", "30", "-subj", f"/CN=zooid test {ca}",
               "-addext", "basicConstraints=critical,CA:TRUE",
               "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
        server_ext = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth"
        make_cert(d, "server", "/CN=localhost/O=zooid", "ca", server_ext)
        make_cert(d, "server2", "/CN=localhost/O=zooid renewed", "ca", server_ext)
        make_cert(d, "client", "/C=US/O=Example Corp/OU=ops/CN=alice, the admin", "ca",
                  "extendedKeyUsage=clientAuth")
        make_cert(d, "stranger", "/CN=mallory", "other-ca", "extendedKeyUsage=clientAuth")
        sh("keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem",
           "-keystore", "trust.jks", "-storetype", "JKS", "-storepass", PASSWORD, cwd=d)
        sh("keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem",
           "-keystore", "trust.p12", "-storetype", "PKCS12", "-storepass", PASSWORD, cwd=d)
        yield d


def tls_cfg(certs, key_store="server.jks", trust_store="trust.jks", client_auth="want", **more):
    cfg = {
        "ssl.keyStore.location": os.path.join(certs, key_store),
        "ssl.keyStore.password": PASSWORD,
        "ssl.trustStore.location": os.path.join(certs, trust_store),
        "ssl.trustStore.password": PASSWORD,
        "ssl.clientAuth": client_auth,
    }
    cfg.update(more)
    return cfg


def with_secure_port(certs, **kw):
    from conftest import free_port
    port = free_port()
    cfg = tls_cfg(certs, **kw)
    cfg["secureClientPort"] = str(port)
    return port, cfg


def kazoo_tls(make_client, certs, port, cert="client"):
    kw = {}
    if cert:
        kw = {"certfile": os.path.join(certs, f"{cert}.pem"),
              "keyfile": os.path.join(certs, f"{cert}.key")}
    return make_client(f"127.0.0.1:{port}", use_ssl=True, verify_certs=True,
                       ca=os.path.join(certs, "ca.pem"),
                       connection_retry={"max_tries": 3, "delay": 0.1}, **kw)


def tls_socket(certs, port, cert="client"):
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    if cert:
        ctx.load_cert_chain(os.path.join(certs, f"{cert}.pem"), os.path.join(certs, f"{cert}.key"))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def refused(certs, port, cert):
    """Whether the TLS port refuses a client presenting `cert` (None: no certificate)."""
    try:
        with tls_socket(certs, port, cert=cert) as s:
            s.sendall(b"ruok")
            return not s.recv(16)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError, OSError):
        return True


def four_letter_tls(certs, port, word):
    with tls_socket(certs, port) as s:
        s.sendall(word.encode())
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out.decode()
            out += chunk


@pytest.mark.parametrize("key_store,trust_store", [
    ("server.jks", "trust.jks"), ("server.p12", "trust.p12"), ("server-all.pem", "ca.pem"),
], ids=["jks", "pkcs12", "pem"])
def test_kazoo_over_tls_with_each_store_type(certs, key_store, trust_store, make_client):
    port, cfg = with_secure_port(certs, key_store=key_store, trust_store=trust_store)
    with running_server("zooid", extra_cfg=cfg) as server:
        zk = kazoo_tls(make_client, certs, port)
        # The client's certificate names it: an x509 ACL lets it, and only it, in.
        zk.create("/tls", b"secret data", acl=[make_acl("x509", CLIENT_DN, all=True)])
        assert zk.get("/tls")[0] == b"secret data"
        assert zk.get_acls("/tls")[0][0].id == Id("x509", CLIENT_DN)
        # An `auth` ACL takes the certificate's id, as ZooKeeper's x509 provider is
        # an authenticated one.
        zk.create("/auth", b"", acl=[ACL(31, Id("auth", ""))])
        assert [a.id for a in zk.get_acls("/auth")[0]] == [Id("x509", CLIENT_DN)]
        with pytest.raises(NoAuthError):
            make_client(server).get("/tls")
        # Four-letter words are answered over TLS too.
        assert "Zookeeper version" in four_letter_tls(certs, port, "stat")


def test_client_auth_need_refuses_a_client_without_a_certificate(certs):
    port, cfg = with_secure_port(certs, client_auth="need")
    with running_server("zooid", extra_cfg=cfg) as server:
        assert refused(certs, port, None)
        # A certificate from a CA the trust store does not hold is refused too.
        assert refused(certs, port, "stranger")
        # ... and the server goes on serving.
        assert four_letter_tls(certs, port, "ruok") == "imok"
        with open(server.log_path) as f:
            assert "TLS handshake failed" in f.read()


def make_v1_cert(d, name, subject, ca, days="30"):
    """A version 1 certificate (no extensions), as kazoo's test harness makes them."""
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
       "-out", f"{name}.csr", "-subj", subject, cwd=d)
    sh("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
       "-CAcreateserial", "-out", f"{name}.pem", "-days", days, cwd=d)
    assert "Version: 1 (0x0)" in sh("openssl", "x509", "-in", f"{name}.pem", "-noout", "-text",
                                    cwd=d)


@pytest.mark.parametrize("kind", ["zooid", "oracle"])
def test_version_1_client_certificates_are_checked_as_java_checks_them(certs, kind):
    """webpki reads only X.509 v3; Java takes v1 client certificates. A v1 certificate of
    the trusted CA is accepted (with its x509 id); one of another CA, or expired, is not."""
    make_v1_cert(certs, "v1client", "/CN=old school", "ca")
    make_v1_cert(certs, "v1stranger", "/CN=old mallory", "other-ca")
    port, cfg = with_secure_port(certs, client_auth="need")
    cfg["serverCnxnFactory"] = "org.apache.zookeeper.server.NettyServerCnxnFactory"
    with running_server(kind, extra_cfg=cfg):
        with tls_socket(certs, port, cert="v1client") as s:
            s.sendall(b"ruok")
            assert s.recv(16) == b"imok"
        assert refused(certs, port, "v1stranger")
        assert four_letter_tls(certs, port, "ruok") == "imok"


@pytest.mark.parametrize("kind", ["zooid", "oracle"])
def test_expired_client_certificates_are_refused(certs, kind):
    """A client certificate whose validity ended is refused, v3 (webpki's check) and v1
    (zooid's own), and the server goes on serving."""
    faked = {**os.environ, "LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
             "FAKETIME": "-40d"}
    for name, ext in (("expired", ["-extfile", "client.ext"]), ("expired-v1", [])):
        sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
           "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=certs)
        r = subprocess.run(["openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem",
                            "-CAkey", "ca.key", "-CAcreateserial", "-out", f"{name}.pem",
                            "-days", "30", *ext], cwd=certs, env=faked, capture_output=True)
        assert r.returncode == 0, r.stderr
    port, cfg = with_secure_port(certs, client_auth="need")
    cfg["serverCnxnFactory"] = "org.apache.zookeeper.server.NettyServerCnxnFactory"
    with running_server(kind, extra_cfg=cfg):
        for name in ("expired", "expired-v1"):
            assert refused(certs, port, name)
        assert four_letter_tls(certs, port, "ruok") == "imok"


def test_a_plaintext_client_on_the_tls_port_takes_nothing_down(certs, make_client):
    port, cfg = with_secure_port(certs)
    with running_server("zooid", extra_cfg=cfg):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.sendall(b"\x00\x00\x00\x2c" + b"\x00" * 44)
        try:
            answer = raw.recv(64)
        except ConnectionResetError:
            answer = b""
        # Closed, at most after a TLS alert record (type 21): never a ZooKeeper reply.
        assert answer == b"" or answer[0] == 21, answer
        raw.close()
        kazoo_tls(make_client, certs, port).create("/after", b"ok")


def test_port_unification_serves_tls_and_plaintext_on_one_port(certs, make_client):
    cfg = tls_cfg(certs, **{"client.portUnification": "true"})
    with running_server("zooid", extra_cfg=cfg) as server:
        kazoo_tls(make_client, certs, server.port).create("/both", b"from tls")
        assert make_client(server).get("/both")[0] == b"from tls"
        from zkraw import four_letter
        assert four_letter("127.0.0.1", server.port, "ruok") == "imok"
        assert four_letter_tls(certs, server.port, "ruok") == "imok"


def served_certificate_subject(certs, port):
    with tls_socket(certs, port) as s:
        return dict(x[0] for x in s.getpeercert()["subject"])


def test_a_certificate_replaced_on_disk_is_used_by_the_next_handshake(certs, tmp_path):
    store = tmp_path / "keystore.p12"
    with open(os.path.join(certs, "server.p12"), "rb") as f:
        store.write_bytes(f.read())
    port, cfg = with_secure_port(certs)
    cfg["ssl.keyStore.location"] = str(store)
    with running_server("zooid", extra_cfg=cfg):
        assert served_certificate_subject(certs, port)["organizationName"] == "zooid"
        with open(os.path.join(certs, "server2.p12"), "rb") as f:
            renewed = f.read()
        tmp = tmp_path / "keystore.p12.new"
        tmp.write_bytes(renewed)
        os.replace(tmp, store)
        assert served_certificate_subject(certs, port)["organizationName"] == "zooid renewed"


def start_fails(cfg, tmp_path):
    from conftest import write_cfg, free_port
    path = write_cfg(str(tmp_path), free_port(), 1000, cfg)
    r = subprocess.run([ZOOID_BIN, "server", "start-foreground", path], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    return r.stdout + r.stderr


def test_store_mistakes_name_the_file_the_setting_and_the_fix(certs, tmp_path):
    _, cfg = with_secure_port(certs)
    cfg["ssl.keyStore.password"] = "wrong"
    out = start_fails(cfg, tmp_path)
    assert "server.jks: the password does not open it (ssl.keyStore.location)" in out, out
    assert "ssl.keyStore.password" in out, out

    _, cfg = with_secure_port(certs)
    cfg["ssl.keyStore.location"] = "/nonexistent/keystore.jks"
    out = start_fails(cfg, tmp_path)
    assert "/nonexistent/keystore.jks: cannot be read" in out, out

    _, cfg = with_secure_port(certs)
    del cfg["ssl.keyStore.location"]
    out = start_fails(cfg, tmp_path)
    assert "ssl.keyStore.location" in out, out

    _, cfg = with_secure_port(certs)
    cfg["ssl.clientAuth"] = "sometimes"
    out = start_fails(cfg, tmp_path)
    assert "ssl.clientAuth" in out and "none, want or need" in out, out


# ------------------------------------------------------------------ Java zkCli over TLS

def zkcli_tls(certs, port, script):
    cp = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:" + netty_classpath()
    cmd = ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-cp", cp,
           "-Dzookeeper.client.secure=true",
           "-Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty",
           f"-Dzookeeper.ssl.keyStore.location={certs}/client.jks",
           f"-Dzookeeper.ssl.keyStore.password={PASSWORD}",
           f"-Dzookeeper.ssl.trustStore.location={certs}/trust.jks",
           f"-Dzookeeper.ssl.trustStore.password={PASSWORD}",
           "org.apache.zookeeper.ZooKeeperMain", "-server", f"127.0.0.1:{port}"]
    r = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    keep = [ln for ln in r.stdout.splitlines()
            if ln.strip() and not ln.startswith(("SLF4J", "log4j", "WATCHER", "WatchedEvent",
                                                 "Welcome", "JLine", "Connecting"))]
    return keep


@pytest.mark.parametrize("kind", ["zooid", "oracle"])
def test_java_zkcli_over_tls_sees_its_x509_id(certs, kind):
    port, cfg = with_secure_port(certs)
    cfg["serverCnxnFactory"] = "org.apache.zookeeper.server.NettyServerCnxnFactory"
    with running_server(kind, extra_cfg=cfg):
        out = zkcli_tls(certs, port, "ls /\nwhoami\nquit\n")
    # ZooKeeper's ids come from a hash set: their order is not defined.
    assert out[0] == "[zookeeper]", out
    assert out[1] == "Auth scheme: User", out
    assert sorted(out[2:]) == sorted([f"x509: {CLIENT_DN}", "ip: 127.0.0.1"]), out


# ------------------------------------------------------------------ AdminServer over HTTPS

def admin_get(port, https, certs, path="/commands/ruok"):
    import json
    import urllib.request
    scheme = "https" if https else "http"
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem")) if https else None
    with urllib.request.urlopen(f"{scheme}://localhost:{port}{path}", timeout=15,
                                context=ctx) as r:
        return r.status, dict(r.headers), json.loads(r.read())


@pytest.mark.parametrize("kind", ["zooid", "oracle"])
@pytest.mark.parametrize("mode", ["admin.forceHttps", "admin.portUnification"])
def test_the_admin_server_over_https(certs, kind, mode):
    from conftest import free_port
    port = free_port()
    cfg = {
        "admin.enableServer": "true",
        "admin.serverAddress": "127.0.0.1",
        "admin.serverPort": str(port),
        mode: "true",
        "ssl.quorum.keyStore.location": os.path.join(certs, "server.jks"),
        "ssl.quorum.keyStore.password": PASSWORD,
        "ssl.quorum.trustStore.location": os.path.join(certs, "trust.jks"),
        "ssl.quorum.trustStore.password": PASSWORD,
    }
    with running_server(kind, extra_cfg=cfg):
        status, headers, body = admin_get(port, True, certs)
        assert status == 200 and body["command"] == "ruok" and body["error"] is None, body
        assert "max-age=86400" in headers.get("Strict-Transport-Security", ""), headers
        if mode == "admin.portUnification":
            status, _, body = admin_get(port, False, certs)
            assert status == 200 and body["command"] == "ruok", body
        else:
            with pytest.raises(Exception):
                admin_get(port, False, certs)
