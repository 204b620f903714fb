"""TLS between members (`sslQuorum`, `ssl.quorum.*`): a zooid ensemble whose election and
quorum ports speak only TLS, the same mixed with an Apache ZooKeeper 3.8.0 member, and a live
ensemble switched from plaintext to TLS member by member with `portUnification`, writes
going on, none lost. One member certificate (127.0.0.1, server and client use) made here."""

import os
import socket
import ssl
import tempfile
import threading

import pytest

from ensemble import Ensemble
from test_tls import PASSWORD, make_cert, sh


@pytest.fixture(scope="module")
def member_certs():
    with tempfile.TemporaryDirectory(prefix="zt-qtls-") as d:
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
           "-out", "ca.pem", "-days", "30", "-subj", "/CN=zooid quorum CA",
           "-addext", "basicConstraints=critical,CA:TRUE",
           "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
        make_cert(d, "member", "/CN=127.0.0.1/O=zooid members", "ca",
                  "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                  "extendedKeyUsage=serverAuth,clientAuth")
        sh("keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem",
           "-keystore", "trust.jks", "-storetype", "JKS", "-storepass", PASSWORD, cwd=d)
        yield d


def quorum_tls_cfg(d):
    return {
        "ssl.quorum.keyStore.location": os.path.join(d, "member.jks"),
        "ssl.quorum.keyStore.password": PASSWORD,
        "ssl.quorum.trustStore.location": os.path.join(d, "trust.jks"),
        "ssl.quorum.trustStore.password": PASSWORD,
    }


def speaks_tls(d, port):
    """Whether a TLS handshake with the member's certificate succeeds on `port`."""
    ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
    ctx.load_cert_chain(os.path.join(d, "member.pem"), os.path.join(d, "member.key"))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1"):
                return True
    except (ssl.SSLError, OSError):
        return False


def replicated(make_client, ens, path, data):
    for sid in ens.live_sids():
        zk = make_client(ens.member(sid))
        zk.sync(path)
        assert zk.get(path)[0] == data, sid


@pytest.mark.parametrize("java", [None, "oracle", "oracle39"],
                         ids=["zooid", "mixed-3.8", "mixed-3.9"])
def test_an_ensemble_over_quorum_tls(member_certs, tmp_path, java, make_client):
    cfg = {"sslQuorum": "true", **quorum_tls_cfg(member_certs)}
    ens = Ensemble(str(tmp_path), extra_cfg=cfg, oracle_sids=(1,) if java else (),
                   oracle_kind=java or "oracle")
    try:
        ens.start(3)
        leader = ens.leader_sid()
        make_client(ens.hosts).create("/over-tls", b"replicated")
        replicated(make_client, ens, "/over-tls", b"replicated")
        # The ports speak TLS (a zooid member's, whichever leads).
        zooid_sid = next(s for s in ens.sids if ens.kind_of(s) == "zooid")
        m = ens.member(zooid_sid)
        assert speaks_tls(member_certs, m.election_port)
        # A member lost and back rejoins over TLS.
        ens.kill9(leader)
        ens.wait_for_quorum()
        ens.restart(leader)
        ens.wait_for_quorum()
        replicated(make_client, ens, "/over-tls", b"replicated")
    finally:
        ens.stop_all()


def test_a_live_ensemble_switches_to_tls_member_by_member(member_certs, tmp_path, make_client):
    # Plaintext, with every port accepting TLS too.
    cfg = {"portUnification": "true", **quorum_tls_cfg(member_certs)}
    ens = Ensemble(str(tmp_path), extra_cfg=cfg)
    acked = []
    stop = threading.Event()

    def writer():
        zk = make_client(ens.hosts)
        i = 0
        while not stop.is_set():
            try:
                zk.create(f"/roll-{i:05d}", b"x")
                acked.append(i)
            except Exception:  # noqa: BLE001 - a failover: the write is retried as a new one
                pass
            i += 1

    try:
        ens.start(3)
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        # Member by member: dial with TLS (sslQuorum) while still accepting plaintext.
        ens.extra_cfg["sslQuorum"] = "true"
        for sid in ens.sids:
            ens._write_cfg(ens.member(sid))
            ens.restart(sid)
            ens.wait_for_quorum()
        # Then TLS only.
        del ens.extra_cfg["portUnification"]
        for sid in ens.sids:
            ens._write_cfg(ens.member(sid))
            ens.restart(sid)
            ens.wait_for_quorum()
        stop.set()
        t.join(timeout=60)
        assert len(acked) > 20, len(acked)
        zk = make_client(ens.hosts)
        zk.sync("/")
        present = {int(n.split("-")[1]) for n in zk.get_children("/") if n.startswith("roll-")}
        lost = [i for i in acked if i not in present]
        assert not lost, lost
        assert speaks_tls(member_certs, ens.member(ens.sids[0]).election_port)
        print(f"switched to quorum TLS member by member: {len(acked)} acknowledged writes, none lost")
    finally:
        stop.set()
        ens.stop_all()
