"""Local sessions (`localSessionsEnabled`, `localSessionsUpgradingEnabled`) in a 3-member
ensemble, on zooid and on ZooKeeper 3.9.3 with the same assertions: a session lives on its
member only (the leader does not count it) until it creates an ephemeral, which upgrades it
(or, without upgrading, fails with EPHEMERALONLOCALSESSION); it re-attaches to its own
member, not to another; closing or expiring it costs the ensemble nothing.
"""


import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import EphemeralOnLocalSessionError

from conftest import poll
from ensemble import Ensemble
from zkraw import Session

WAIT = 30.0


def sessions(ens, sid):
    m = ens.mntr(sid)
    return int(m.get("zk_global_sessions", -1)), int(m.get("zk_local_sessions", -1))


@pytest.mark.parametrize("kind", ["zooid", "oracle39"])
@pytest.mark.parametrize("upgrading", [True, False], ids=["upgrading", "no-upgrading"])
def test_local_sessions(kind, upgrading, tmp_path):
    cfg = {"localSessionsEnabled": "true",
           "localSessionsUpgradingEnabled": str(upgrading).lower()}
    ens = Ensemble(str(tmp_path), kind=kind, extra_cfg=cfg).start(3)
    try:
        leader = ens.leader_sid()
        f = ens.followers()[0]
        other = [s for s in ens.sids if s not in (leader, f)][0]
        zk = KazooClient(hosts=ens.member(f).hosts, timeout=10.0)
        zk.start(timeout=WAIT)
        try:
            # A local session writes through the leader, which never hears of the session.
            zk.create("/p", b"1")
            assert zk.get("/p")[0] == b"1"
            assert sessions(ens, f) == (0, 1)
            assert sessions(ens, leader) == (0, 0)
            if upgrading:
                zk.create("/e", b"", ephemeral=True)
                poll(lambda: sessions(ens, leader) == (1, 0), "the session global at the leader")
                assert sessions(ens, f) == (1, 0)
            else:
                with pytest.raises(EphemeralOnLocalSessionError):
                    zk.create("/e", b"", ephemeral=True)
                assert zk.exists("/e") is None
                assert sessions(ens, leader) == (0, 0)
        finally:
            zk.stop()
            zk.close()
        if upgrading:
            # The ephemeral went with its (global) session.
            check = KazooClient(hosts=ens.member(leader).hosts, timeout=10.0)
            check.start(timeout=WAIT)
            try:
                poll(lambda: check.exists("/e") is None, "the ephemeral gone with its session")
            finally:
                check.stop()
                check.close()
        poll(lambda: sessions(ens, f) == (0, 0), "the closed session gone from its member")

        # A local session re-attaches to its own member, not to another.
        host, port = "127.0.0.1", ens.member(f).client_port
        s = Session(host, port, timeout_ms=10000)
        sid, pw = s.session_id, s.passwd
        s.sock.close()
        again = Session(host, port, timeout_ms=10000, session_id=sid, passwd=pw)
        assert again.session_id == sid
        again.sock.close()
        elsewhere = Session("127.0.0.1", ens.member(other).client_port, timeout_ms=10000,
                            session_id=sid, passwd=pw)
        assert elsewhere.session_id == 0, "a local session is unknown to other members"
        elsewhere.sock.close()
    finally:
        ens.stop_all()
