"""SASL DIGEST-MD5 for clients, against zooid and Apache ZooKeeper 3.8.0 with the same JAAS
file: kazoo's SASL (pure-sasl) and Debian's Java zkCli (its JAAS Client section), `sasl`
ACLs, super users, a wrong password, required authentication
(`sessionRequireClientSASLAuth`), and the JAAS file found through SERVER_JVMFLAGS or
JVMFLAGS as zkServer.sh users set it. Mistakes in the JAAS file name the file and line."""

import os
import subprocess

import pytest

from conftest import ZOOID_BIN, free_port, running_server, write_cfg
from kazoo.exceptions import AuthFailedError, NoAuthError
from kazoo.security import make_acl
from zkraw import OP, Session

SASL_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
JAAS = """// what kazoo's own SASL tests write
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super_secret"
    user_jaasuser="jaas_password";
};
"""
KINDS = ["zooid", "oracle"]
CLI_TIMEOUT = 120


@pytest.fixture
def jaas(tmp_path):
    path = tmp_path / "jaas.conf"
    path.write_text(JAAS)
    return str(path)


def sasl_server(kind, jaas, more=None, via="SERVER_JVMFLAGS"):
    cfg = {"authProvider.1": SASL_PROVIDER, "superUser": "super"}
    cfg.update(more or {})
    props = {"java.security.auth.login.config": jaas}
    return running_server(kind, extra_cfg=cfg, props=props, props_env=via)


def kazoo_sasl(make_client, server, user, password):
    return make_client(server, connection_retry={"max_tries": 1, "delay": 0.1},
                       sasl_options={"mechanism": "DIGEST-MD5", "username": user,
                                     "password": password})


@pytest.mark.parametrize("kind", KINDS)
def test_kazoo_digest_md5_and_sasl_acls(kind, jaas, make_client):
    with sasl_server(kind, jaas) as server:
        zk = kazoo_sasl(make_client, server, "jaasuser", "jaas_password")
        zk.create("/sasl", b"mine", acl=[make_acl("sasl", "jaasuser", all=True)])
        assert zk.get("/sasl")[0] == b"mine"
        assert zk.get_acls("/sasl")[0][0].id.id == "jaasuser"
        anon = make_client(server)
        with pytest.raises(NoAuthError):
            anon.get("/sasl")
        # The super user (zookeeper.superUser) reads everything.
        su = kazoo_sasl(make_client, server, "super", "super_secret")
        assert su.get("/sasl")[0] == b"mine"


@pytest.mark.parametrize("kind", KINDS)
def test_a_wrong_password_fails_and_the_server_goes_on(kind, jaas, make_client):
    with sasl_server(kind, jaas) as server:
        with pytest.raises(AuthFailedError):
            kazoo_sasl(make_client, server, "jaasuser", "guess").get("/")
        zk = kazoo_sasl(make_client, server, "jaasuser", "jaas_password")
        assert zk.exists("/") is not None


@pytest.mark.parametrize("kind", KINDS)
def test_required_sasl_closes_an_unauthenticated_session(kind, jaas, make_client):
    with sasl_server(kind, jaas, {"sessionRequireClientSASLAuth": "true"}) as server:
        s = Session(server.host, server.port)
        r = s.call(OP["exists"], {"path": "/", "watch": False})
        assert r.err == -124, r
        s.close_socket()
        zk = kazoo_sasl(make_client, server, "jaasuser", "jaas_password")
        assert zk.exists("/") is not None


@pytest.mark.parametrize("kind", KINDS)
def test_java_zkcli_whoami_over_sasl(kind, jaas, tmp_path):
    client_jaas = tmp_path / "client.jaas"
    client_jaas.write_text('Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n'
                           '  username="jaasuser"\n  password="jaas_password";\n};\n')
    # JVMFLAGS, which zkServer.sh also passes (after SERVER_JVMFLAGS).
    with sasl_server(kind, jaas, via="JVMFLAGS") as server:
        cmd = ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData",
               "-cp", "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar",
               f"-Djava.security.auth.login.config={client_jaas}",
               "org.apache.zookeeper.ZooKeeperMain", "-server", server.hosts]
        r = subprocess.run(cmd, input="ls /\nwhoami\nquit\n", capture_output=True, text=True,
                           timeout=CLI_TIMEOUT)
    out = [ln for ln in r.stdout.splitlines()
           if ln.strip() and not ln.startswith(("SLF4J", "log4j", "WATCHER", "WatchedEvent",
                                                "Welcome", "JLine", "Connecting"))]
    assert out[0] == "[zookeeper]", out
    assert out[1] == "Auth scheme: User", out
    assert sorted(out[2:]) == ["ip: 127.0.0.1", "sasl: jaasuser"], out


def start_fails(cfg, tmp_path, jvm_flags):
    path = write_cfg(str(tmp_path), free_port(), 1000, cfg)
    r = subprocess.run([ZOOID_BIN, "server", "start-foreground", path], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "SERVER_JVMFLAGS": jvm_flags})
    assert r.returncode != 0
    return r.stdout + r.stderr


def test_jaas_mistakes_name_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.jaas"
    bad.write_text("Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n"
                   "  user_bob=\"x\"\n};\n")
    cfg = {"authProvider.1": SASL_PROVIDER}
    out = start_fails(cfg, tmp_path, f"-Djava.security.auth.login.config={bad}")
    assert f"{bad}:4:" in out and "expected an option" in out, out

    other = tmp_path / "client-only.jaas"
    other.write_text("Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required "
                     "username=\"a\" password=\"b\";\n};\n")
    # A JAAS file without the Server section: ZooKeeper serves without SASL for clients
    # (kazoo's own test harness runs it so), and zooid says so.
    with running_server("zooid", extra_cfg=cfg,
                        props={"java.security.auth.login.config": str(other)}) as srv:
        log = open(srv.log_path).read()
        assert "No JAAS configuration section named 'Server'" in log, log
        assert "clients cannot authenticate with SASL" in log, log

    out = start_fails({"sessionRequireClientSASLAuth": "true"}, tmp_path, "")
    assert "sessionRequireClientSASLAuth" in out, out
