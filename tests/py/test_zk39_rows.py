"""Where ZooKeeper 3.9.3 answers differently from 3.8.0, and zooid follows 3.9.3 because its
behaviour is a fix (the rows of docs/compatibility.md): each is checked on zooid and on
3.9.3, and 3.8.0's answer is checked too, so the table stays true.
"""

import pytest

from conftest import running_server
from zkraw import OP, ConnectionClosed, ProtocolError, Session


@pytest.fixture(scope="module")
def servers():
    with running_server("zooid") as z, running_server("oracle39") as o39, \
            running_server("oracle") as o38:
        yield {"zooid": z, "oracle39": o39, "oracle": o38}


def session(srv, **kw):
    kw.setdefault("timeout_ms", 30000)
    return Session(srv.host, srv.port, **kw)


def check_alone(srv):
    """`check` (op 13) outside a multi, on a node whose version matches."""
    s = session(srv)
    path = "/check-alone"
    s.call(OP["create"], {"path": path, "data": b""})
    xid = s.send(OP["check"], {"path": path, "version": 0})
    try:
        r = s.recv_reply(OP["check"], xid, timeout=3)
        answer = (r.err, r.zxid)
    except TimeoutError:
        return "no answer"
    try:
        s.call(OP["ping"], timeout=3)
        closed = False
    except (ConnectionClosed, ProtocolError, OSError):
        closed = True
    s.close_socket()
    return answer, closed


def test_check_outside_multi(servers):
    # 3.8 carried it out and never answered (a NullPointerException on the server); 3.9
    # refuses it as an unknown opcode: UNIMPLEMENTED, zxid -1, connection closed.
    assert check_alone(servers["zooid"]) == check_alone(servers["oracle39"]) == ((-6, -1), True)
    assert check_alone(servers["oracle"]) == "no answer"


def notification_zxids(srv, tag):
    """(zxid of the write, zxid its notification carries) for a setData and for the
    deletion of an ephemeral by the close of its session."""
    w, o = session(srv), session(srv)
    path = f"/notified-{tag}"
    w.call(OP["create"], {"path": path, "data": b"1"})
    o.call(OP["getData"], {"path": path, "watch": True})
    set_reply = w.call(OP["setData"], {"path": path, "data": b"2", "version": -1})
    changed = o.wait_event(timeout=10)
    owner = session(srv)
    eph = f"/eph-{tag}"
    owner.call(OP["create"], {"path": eph, "data": b"", "flags": 1})
    o.call(OP["exists"], {"path": eph, "watch": True})
    close_reply = owner.call(OP["closeSession"])
    deleted = o.wait_event(timeout=10)
    for s in (w, o):
        s.close_socket()
    return [(set_reply.zxid, changed.zxid), (close_reply.zxid, deleted.zxid)]


def test_notifications_carry_the_zxid_of_their_txn(servers):
    for kind in ("zooid", "oracle39"):
        for write_zxid, event_zxid in notification_zxids(servers[kind], kind):
            assert event_zxid == write_zxid > 0, kind
    # 3.8 sent -1.
    assert [e for _, e in notification_zxids(servers["oracle"], "38")] == [-1, -1]


def container_in_multi(srv, tag):
    s = session(srv)
    r = s.call(OP["multi"], {"ops": [(OP["createContainer"],
                                      {"path": f"/cont-{tag}", "data": b"", "flags": 4})]})
    s.close_socket()
    res = r.body["results"][0]
    return r.err, res["type"], res["err"], sorted((res["body"] or {}).keys())


def test_create_container_in_multi(servers):
    # 3.9 answers a createContainer inside a multi as a create2 (type 15, path and Stat).
    z = container_in_multi(servers["zooid"], "z")
    assert z == container_in_multi(servers["oracle39"], "39")
    assert z[:3] == (0, 15, 0)


def empty_and_null_paths(srv):
    s = session(srv)
    out = {}
    for op in ("exists", "getData", "getChildren", "getACL", "getAllChildrenNumber"):
        args = {"path": ""}
        if op in ("exists", "getData", "getChildren"):
            args["watch"] = False
        out[op] = s.call(OP[op], args).err
    out["setData null"] = s.call(OP["setData"], {"path": None, "data": b"", "version": -1}).err
    out["sync null"] = s.call(OP["sync"], {"path": None}).err
    s.close_socket()
    return out


def test_empty_and_null_paths(servers):
    # Both lines take "" as the root for reads; a null path is BADARGUMENTS for setData and
    # passes for sync.
    want = {"exists": 0, "getData": 0, "getChildren": 0, "getACL": 0,
            "getAllChildrenNumber": 0, "setData null": -8, "sync null": 0}
    for kind in ("zooid", "oracle39", "oracle"):
        assert empty_and_null_paths(servers[kind]) == want, kind


def ip_acl_outcomes(srv):
    """create with `ip` ACL ids in the forms Java's Integer.parseInt takes, then a read from
    127.0.0.1: (create err, getData err) per id."""
    from zkraw import ACL
    s = session(srv)
    out = {}
    for i, ident in enumerate(["+127.0.0.1", "0127.000.0.01", "127.0.0.0/+8", "10.0.0.0/-0",
                               "127.0.0.1/33", "1.2.3", "::1", "0:0:0:0:0:0:0:1/128"]):
        path = f"/ip{i}"
        r = s.call(OP["create"], {"path": path, "data": b"", "acl": [ACL(31, "ip", ident)]})
        read = s.call(OP["getData"], {"path": path, "watch": False}).err if r.err == 0 else None
        out[ident] = (r.err, read)
    s.close_socket()
    return out


def test_ip_acl_ids_read_as_java_reads_them(servers):
    z = ip_acl_outcomes(servers["zooid"])
    assert z == ip_acl_outcomes(servers["oracle39"]) == ip_acl_outcomes(servers["oracle"])
    assert z["+127.0.0.1"] == (0, 0) and z["::1"] == (-114, None)
