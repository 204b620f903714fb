"""The limits ZooKeeper enforces on clients, enforced the same way: maxClientCnxns per
address, maxCnxns in all, the connection throttle, the request throttle with
THROTTLEDOP, globalOutstandingLimit and jute.maxbuffer. Each runs against zooid and
ZooKeeper 3.8 with the same zoo.cfg, and checks the metric ZooKeeper counts it in.
"""

import socket
import struct

import pytest

from conftest import running_server
from ensemble import parse_mntr
from zkraw import OP, ConnectionClosed, ProtocolError, Session, Writer, four_letter

KINDS = ["zooid", "oracle"]


def mntr(server):
    """mntr's values; asked again while a connection limit still refuses the asking one."""
    for _ in range(100):
        m = parse_mntr(four_letter(server.host, server.port, "mntr"))
        if m:
            return m
    raise AssertionError(f"{server!r} never answered mntr")


def try_session(server):
    """A Session, or None when the server closes the connection instead of answering."""
    try:
        return Session(server.host, server.port, timeout_ms=10000, io_timeout=5)
    except (ConnectionClosed, ProtocolError, OSError):
        return None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("key", ["maxClientCnxns", "maxCnxns"])
def test_connection_limits(kind, key):
    extra = {"maxClientCnxns": "0", key: "3"}
    with running_server(kind, extra_cfg=extra) as srv:
        # A four-letter word holds a connection only while it is answered.
        before = int(mntr(srv)["zk_connection_rejected"])
        held = [try_session(srv) for _ in range(3)]
        assert all(held)
        assert try_session(srv) is None, f"{kind}: a fourth connection was served ({key}=3)"
        held.pop().close_socket()
        # Room again once one closes (the server sees the close asynchronously).
        for _ in range(50):
            s = try_session(srv)
            if s:
                held.append(s)
                break
        assert len(held) == 3
        for s in held:
            s.close_socket()
        assert int(mntr(srv)["zk_connection_rejected"]) > before


@pytest.mark.parametrize("kind", KINDS)
def test_connection_throttle(kind):
    extra = {"connection_throttle_tokens": "2", "connection_throttle_fill_time": "600000"}
    with running_server(kind, extra_cfg=extra) as srv:
        a, b = try_session(srv), try_session(srv)
        assert a and b
        assert try_session(srv) is None, f"{kind}: a third session passed a bucket of 2"
        m = mntr(srv)
        assert int(m["zk_connection_rejected"]) == 1
        a.close_socket()
        b.close_socket()


def pipeline(sess, requests):
    """Send every (op, args) at once, then read every reply: {xid: err}."""
    from zkraw import encode_body
    out = bytearray()
    xids = []
    for op, args in requests:
        xid = sess.next_xid()
        body = Writer().int(xid).int(op).bytes() + encode_body(op, args)
        out += struct.pack(">i", len(body)) + body
        xids.append(xid)
    sess.sock.sendall(bytes(out))
    errs = {}
    while len(errs) < len(xids):
        payload = sess.recv_frame(timeout=30)
        xid, _zxid, err = struct.unpack(">iqi", payload[:16])
        if xid > 0:
            errs[xid] = err
    return [errs[x] for x in xids]


@pytest.mark.parametrize("kind", KINDS)
def test_request_throttle_answers_throttledop(kind):
    extra = {"request_throttle_max_requests": "1", "throttled_op_wait_time": "1"}
    with running_server(kind, extra_cfg=extra) as srv:
        s = Session(srv.host, srv.port, timeout_ms=30000)
        reqs = []
        for i in range(3000):
            if i % 2:
                reqs.append((OP["getData"], {"path": "/"}))
            else:
                reqs.append((OP["create"], {"path": f"/t{i}", "data": b"x"}))
        errs = pipeline(s, reqs)
        assert set(errs) <= {0, -127}, set(errs)
        assert errs.count(-127) > 0, f"{kind}: nothing was throttled"
        # A throttled create created nothing; an answered one did.
        check = Session(srv.host, srv.port, timeout_ms=30000)
        for (op, args), err in list(zip(reqs, errs))[::2][:300]:
            # ZooKeeper may throttle the checking session's own request too: ask again.
            for _ in range(100):
                r = check.call(OP["exists"], {"path": args["path"]})
                if r.err != -127:
                    break
            assert (r.err == 0) == (err == 0), (args["path"], err, r.err)
        m = mntr(srv)
        # ZooKeeper now and then counts one more (a request of the checking session).
        throttled = int(m["zk_throttled_ops"])
        assert throttled == errs.count(-127) or (kind == "oracle" and throttled >= errs.count(-127))
        assert int(m["zk_request_throttle_wait_count"]) > 0
        s.close_socket()
        check.close_socket()


@pytest.mark.parametrize("kind", KINDS)
def test_global_outstanding_limit_keeps_serving(kind):
    # With a limit of 1 a connection is read from only as its requests are answered; every
    # pipelined request still gets its answer, in order.
    with running_server(kind, extra_cfg={"globalOutstandingLimit": "1"}) as srv:
        s = Session(srv.host, srv.port, timeout_ms=30000)
        reqs = [(OP["create"], {"path": f"/g{i}", "data": b"x"}) for i in range(500)]
        assert pipeline(s, reqs) == [0] * 500
        s.close_socket()


@pytest.mark.parametrize("kind", KINDS)
def test_jute_maxbuffer_bounds_a_request_frame(kind):
    with running_server(kind) as srv:
        s = Session(srv.host, srv.port, timeout_ms=30000)
        header_and_path = 4 + 4 + (4 + len("/big")) + 4 + 4 + 4  # xid op path data acl flags
        acl = 4 + 4 + 5 + 4 + 6  # one ACL: perms, "world", "anyone"
        room = 0xFFFFF - header_and_path - acl
        r = s.call(OP["create"], {"path": "/big", "data": b"x" * room})
        assert r.err == 0, r
        with pytest.raises((ConnectionClosed, OSError)):
            s.call(OP["create"], {"path": "/bih", "data": b"x" * (room + 1)})
        # The server goes on serving others.
        t = Session(srv.host, srv.port, timeout_ms=30000)
        assert len(t.call(OP["getData"], {"path": "/big"}).body["data"]) == room
        t.close_socket()


def hard_quota_outcomes(srv):
    """With enforceQuota=true and a hard count limit of 3 on /q (set by Debian's zkCli), what
    creating five children and then growing a node's data past a hard byte limit gives."""
    import subprocess
    from kazoo.client import KazooClient
    from kazoo.exceptions import KazooException
    zk = KazooClient(hosts=srv.hosts, timeout=10)
    zk.start(timeout=15)
    try:
        zk.create("/q", b"")
        zk.create("/b", b"")
        for args in (["-N", "3", "/q"], ["-B", "10", "/b"]):
            r = subprocess.run(["/usr/share/zookeeper/bin/zkCli.sh", "-server", srv.hosts,
                                "setquota", *args],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stdout + r.stderr
        out = []
        for i in range(5):
            try:
                zk.create(f"/q/c{i}", b"")
                out.append("ok")
            except KazooException as e:
                out.append(type(e).__name__)
        for data in (b"12345", b"x" * 20):
            try:
                zk.set("/b", data)
                out.append("ok")
            except KazooException as e:
                out.append(type(e).__name__)
        return out
    finally:
        zk.stop()
        zk.close()


def test_hard_quotas_are_enforced_as_zookeeper_does(server_launcher):
    extra = {"enforceQuota": "true"}
    with server_launcher("zooid", extra_cfg=extra) as z, server_launcher("oracle", extra_cfg=extra) as o:
        zo, oo = hard_quota_outcomes(z), hard_quota_outcomes(o)
        assert zo == oo
        assert "QuotaExceededError" in zo, zo


@pytest.mark.parametrize("kind", KINDS)
def test_large_requests_share_a_byte_budget(kind):
    extra = {"largeRequestThreshold": "1000", "largeRequestMaxBytes": "3000"}
    with running_server(kind, extra_cfg=extra) as srv:
        s = Session(srv.host, srv.port, timeout_ms=30000)
        # One large request at a time fits ...
        assert s.call(OP["create"], {"path": "/large", "data": b"x" * 1500}).err == 0
        # ... five at once do not: the connection is closed.
        with pytest.raises((ConnectionClosed, ProtocolError, OSError)):
            pipeline(s, [(OP["setData"], {"path": "/large", "data": b"y" * 1500, "version": -1})
                         for _ in range(5)])
        assert int(mntr(srv)["zk_large_requests_rejected"]) >= 1
        # Small requests of others go on, and the budget is free again.
        t = Session(srv.host, srv.port, timeout_ms=30000)
        assert t.call(OP["setData"], {"path": "/large", "data": b"z" * 1500, "version": -1}).err == 0
        t.close_socket()
