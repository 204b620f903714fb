"""SASL between members (`quorum.auth.enableSasl`, DIGEST-MD5 with the JAAS QuorumServer and
QuorumLearner sections) on the election and quorum ports: a zooid ensemble, the same with an
Apache ZooKeeper 3.8.0 member, and a member with a wrong password kept out."""

import time

import pytest

from ensemble import Ensemble

JAAS = """QuorumServer {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_member="member-secret";
};
QuorumLearner {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    username="member"
    password="%s";
};
"""
REQUIRED = {
    "quorum.auth.enableSasl": "true",
    "quorum.auth.learnerRequireSasl": "true",
    "quorum.auth.serverRequireSasl": "true",
}


def write_jaas(tmp_path, password="member-secret"):
    path = tmp_path / f"jaas-{password}.conf"
    path.write_text(JAAS % password)
    return str(path)


@pytest.mark.parametrize("java", [None, "oracle", "oracle39"],
                         ids=["zooid", "mixed-3.8", "mixed-3.9"])
def test_an_ensemble_with_quorum_sasl(tmp_path, java, make_client):
    jaas = write_jaas(tmp_path)
    # zooid reads the key from zoo.cfg too; ZooKeeper only as a JVM property.
    cfg = {**REQUIRED, "java.security.auth.login.config": jaas}
    ens = Ensemble(str(tmp_path / "ens"), extra_cfg=cfg, oracle_sids=(1,) if java else (),
                   oracle_kind=java or "oracle",
                   oracle_props={"java.security.auth.login.config": jaas})
    try:
        ens.start(3)
        make_client(ens.hosts).create("/authenticated", b"ok")
        for sid in ens.live_sids():
            c = make_client(ens.member(sid))
            c.sync("/authenticated")
            assert c.get("/authenticated")[0] == b"ok"
        # The leader goes and comes back: everyone authenticates again.
        leader = ens.leader_sid()
        ens.kill9(leader)
        ens.wait_for_quorum()
        ens.restart(leader)
        ens.wait_for_quorum()
    finally:
        ens.stop_all()


def test_a_member_with_a_wrong_password_is_kept_out(tmp_path, make_client):
    good = write_jaas(tmp_path)
    ens = Ensemble(str(tmp_path / "ens"),
                   extra_cfg={**REQUIRED, "java.security.auth.login.config": good})
    try:
        ens.start(3)
        # Member 3 comes back with the wrong QuorumLearner password.
        ens.stop(3)
        ens.extra_cfg["java.security.auth.login.config"] = write_jaas(tmp_path, "guess")
        ens._write_cfg(ens.member(3))
        ens.restart(3, wait=False)
        deadline = time.monotonic() + 30
        seen = False
        for _ in range(600):
            seen = "Authentication failed against server" in ens.log_since_start(3)
            if seen or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert seen, "member 3 never tried to authenticate"
        assert ens.mode(3) not in ("leader", "follower"), ens.mode(3)
        # The other two go on serving writes.
        make_client(ens.hosts_of([1, 2])).create("/still", b"serving")
    finally:
        ens.stop_all()
