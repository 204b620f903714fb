"""Read-only mode (`readonlymode.enabled`): a member cut off from its quorum serves reads to
clients that accept a read-only server, refuses writes with NOTREADONLY, says `ro` to isro
and `Mode: read-only` to srvr, refuses clients that do not accept it, and serves normally
again once the quorum is back. The same scenario runs on zooid and on ZooKeeper 3.8.
"""


import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError

from conftest import poll
from ensemble import Ensemble
from zkraw import ConnectionClosed, ProtocolError, Session, four_letter

WAIT = 30.0


def isro(m):
    return four_letter("127.0.0.1", m.client_port, "isro", timeout=2.0)


@pytest.mark.parametrize("kind,local_sessions", [("zooid", True), ("zooid", False),
                                                 ("oracle", True)])
def test_a_member_without_quorum_serves_reads_only(kind, local_sessions, tmp_path):
    # ZooKeeper reads readonlymode.enabled only as a system property; zooid takes it in
    # zoo.cfg too. ZooKeeper's read-only server makes new sessions only as local sessions:
    # without localSessionsEnabled it answers a read-only client's ConnectRequest with a
    # bare NOTREADONLY reply header, which no client can read. zooid serves it either way.
    cfg = {"readonlymode.enabled": "true", "localSessionsEnabled": str(local_sessions).lower()}
    ens = Ensemble(str(tmp_path / "ens"), kind=kind, extra_cfg=cfg,
                   oracle_props={"readonlymode.enabled": "true"})
    clients = []
    try:
        ens.start(3)
        m1 = ens.member(1)
        rw = KazooClient(hosts=ens.hosts, timeout=10)
        clients.append(rw)
        rw.start(timeout=15)
        rw.create("/before", b"data")
        rw.sync("/")
        def has_before():
            s = Session("127.0.0.1", m1.client_port)
            try:
                return s.call("getData", {"path": "/before", "watch": False}).err == 0
            finally:
                s.close_socket()
        poll(has_before, "member 1 to have /before")
        rw.stop()
        assert isro(m1) == "rw"

        ens.stop(2)
        ens.stop(3)
        poll(lambda: isro(m1) == "ro", "member 1 to serve read-only")
        assert "\nMode: read-only\n" in ens.srvr(1)

        # A client that accepts a read-only server reads what the quorum had written ...
        ro = KazooClient(hosts=m1.hosts, timeout=10, read_only=True)
        clients.append(ro)
        ro.start(timeout=15)
        assert ro.get("/before")[0] == b"data"
        # ... and may not write.
        with pytest.raises(NotReadOnlyCallError):
            ro.create("/during", b"x")
        # A client that does not accept one is turned away.
        with pytest.raises((ConnectionClosed, ProtocolError, OSError)):
            Session("127.0.0.1", m1.client_port, read_only=False, io_timeout=5)

        # The quorum comes back: normal service, writes included.
        ens.restart(2, wait=False)
        ens.restart(3, wait=False)
        ens.wait_for_quorum(WAIT)
        poll(lambda: isro(m1) == "rw", "member 1 to leave read-only mode")

        def write():
            try:
                ro.create("/after", b"y")
                return True
            except Exception:  # noqa: BLE001 - reconnecting
                return False
        poll(write, "a write through member 1 after the quorum is back")
    finally:
        for c in clients:
            c.stop()
            c.close()
        ens.stop_all()
