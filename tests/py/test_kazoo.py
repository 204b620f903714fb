"""kazoo (third-party Python client) scenarios against zooid.

All tests share one session-scoped server and work under their own path.
Waits are on events with bounded timeouts; nothing sleeps.
"""

import threading

import pytest
from kazoo.exceptions import (BadArgumentsError, BadVersionError, NoAuthError,
                              NoChildrenForEphemeralsError, NodeExistsError,
                              NoNodeError, NotEmptyError, RolledBackError)
from kazoo.protocol.states import EventType, KazooState, KeeperState
from kazoo.security import (ACL, Id, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE,
                            make_digest_acl, make_digest_acl_credential)

from conftest import SUPER_PASSWORD, SUPER_USER
from kazoo_compat import (PERSISTENT, PERSISTENT_RECURSIVE, StateLog, add_watch,
                          create_container, create_ttl)
from tcpproxy import TcpProxy
from zkraw import OP, Session

WAIT = 15.0  # upper bound for any single event


class Recorder:
    """Watch callback that records events and lets tests wait for them."""

    def __init__(self):
        self.events = []
        self.cond = threading.Condition()

    def __call__(self, event):
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait_for(self, n=1, timeout=WAIT):
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.events) >= n, timeout=timeout)
        assert ok, f"expected {n} events within {timeout}s, got {self.events}"
        return list(self.events)

    def wait_until(self, pred, timeout=WAIT):
        with self.cond:
            ok = self.cond.wait_for(lambda: any(pred(e) for e in self.events), timeout=timeout)
        assert ok, f"no matching event within {timeout}s, got {self.events}"
        return list(self.events)


def summary(events):
    return [(e.type, e.path) for e in events]


@pytest.fixture
def zk(zooid_server, make_client):
    return make_client(zooid_server)


@pytest.fixture
def base(zk, unique_path):
    zk.create(unique_path, b"base")
    return unique_path


# --------------------------------------------------------------- basics

def test_ruok_and_server_version(zk):
    assert zk.command(b"ruok") == "imok"
    assert zk.server_version()[:2] == (3, 8)


def test_create_get_set_delete(zk, base):
    p = base + "/node"
    assert zk.create(p, b"hello") == p
    data, st = zk.get(p)
    assert data == b"hello"
    assert (st.version, st.cversion, st.aversion, st.dataLength, st.numChildren) == (0, 0, 0, 5, 0)
    assert st.czxid == st.mzxid == st.pzxid and st.ephemeralOwner == 0
    st2 = zk.set(p, b"world!")
    assert st2.version == 1 and st2.dataLength == 6 and st2.czxid == st.czxid and st2.mzxid > st.mzxid
    with pytest.raises(BadVersionError):
        zk.set(p, b"x", version=0)
    assert zk.set(p, b"", version=1).version == 2
    assert zk.get(p)[0] == b""
    with pytest.raises(NodeExistsError):
        zk.create(p, b"again")
    zk.create(p + "/child")
    with pytest.raises(NotEmptyError):
        zk.delete(p)
    with pytest.raises(BadVersionError):
        zk.delete(p + "/child", version=3)
    zk.delete(p + "/child", version=0)
    zk.delete(p)
    with pytest.raises(NoNodeError):
        zk.get(p)
    with pytest.raises(NoNodeError):
        zk.set(p, b"x")
    with pytest.raises(NoNodeError):
        zk.create(base + "/missing/child")
    assert zk.create(base + "/deep/er/path", b"v", makepath=True) == base + "/deep/er/path"
    assert zk.get(base + "/deep/er")[0] == b""


def test_exists_and_stat(zk, base):
    assert zk.exists(base + "/nope") is None
    st = zk.exists(base)
    assert st is not None and st.dataLength == 4
    path, st2 = zk.create(base + "/x", b"abc", include_data=True)
    assert path == base + "/x" and st2.dataLength == 3 and st2.version == 0
    assert zk.exists(base).numChildren == 1
    assert zk.exists(base).cversion == 1
    assert zk.exists(base).pzxid == st2.czxid


def test_children(zk, base):
    for name in ("c", "a", "b"):
        zk.create(f"{base}/{name}", name.encode())
    assert sorted(zk.get_children(base)) == ["a", "b", "c"]
    children, st = zk.get_children(base, include_data=True)
    assert sorted(children) == ["a", "b", "c"]
    assert st.numChildren == 3 and st.cversion == 3
    zk.delete(base + "/b")
    assert sorted(zk.get_children(base)) == ["a", "c"]
    assert zk.exists(base).cversion == 4
    assert zk.get_children(base + "/a") == []
    with pytest.raises(NoNodeError):
        zk.get_children(base + "/nope")


def test_sequential_names(zk, base):
    names = [zk.create(base + "/s-", b"", sequence=True) for _ in range(3)]
    assert names == [f"{base}/s-{i:010d}" for i in range(3)]
    zk.create(base + "/plain")
    zk.delete(base + "/plain")
    # ZooKeeper stores only the number of child creates; the reported
    # cversion is 2*creates - numChildren.  Sequence numbers use the
    # stored count, so the delete does not advance them.
    assert zk.exists(base).cversion == 2 * 4 - 3
    assert zk.create(base + "/s-", sequence=True) == f"{base}/s-{4:010d}"
    assert zk.create(base + "/", sequence=True) == f"{base}/{5:010d}"
    assert zk.exists(base).cversion == 2 * 6 - 5


def test_ephemeral(zooid_server, make_client, zk, base):
    owner = make_client(zooid_server)
    p = base + "/eph"
    owner.create(p, b"e", ephemeral=True)
    st = zk.exists(p)
    assert st.ephemeralOwner == owner.client_id[0]
    with pytest.raises(NoChildrenForEphemeralsError):
        owner.create(p + "/child")
    seq = owner.create(base + "/eseq-", ephemeral=True, sequence=True)
    assert seq == f"{base}/eseq-{1:010d}"
    rec = Recorder()
    assert zk.exists(p, watch=rec) is not None
    owner.stop()
    events = rec.wait_for(1)
    assert summary(events) == [(EventType.DELETED, p)]
    assert zk.exists(p) is None and zk.exists(seq) is None
    assert zk.get_children(base) == []


def test_container_removed_after_last_child(zk, base):
    c = base + "/container"
    path, st = create_container(zk, c, b"c")
    assert path == c and st.ephemeralOwner == 0 and st.numChildren == 0
    zk.create(c + "/kid")
    rec = Recorder()
    assert zk.exists(c, watch=rec) is not None
    zk.delete(c + "/kid")
    events = rec.wait_for(1)  # the container reaper runs every 1000 ms
    assert summary(events) == [(EventType.DELETED, c)]
    assert zk.exists(c) is None


def test_ttl_node_expires(zk, base):
    p = base + "/ttl"
    path, st = create_ttl(zk, p, b"t", ttl=500)
    assert path == p and st.ephemeralOwner == 0 and st.dataLength == 1
    seq_path, _ = create_ttl(zk, base + "/ttlseq-", b"", ttl=60_000, sequence=True)
    assert seq_path == f"{base}/ttlseq-{1:010d}"
    rec = Recorder()
    assert zk.exists(p, watch=rec) is not None
    events = rec.wait_for(1)
    assert summary(events) == [(EventType.DELETED, p)]
    assert zk.exists(p) is None
    assert zk.exists(seq_path) is not None  # long TTL: still there
    for bad in (0, -5, 0x100_0000_0000):
        with pytest.raises(BadArgumentsError):
            create_ttl(zk, base + "/badttl", b"", ttl=bad)


# --------------------------------------------------------------- ACLs

def test_digest_acl(zooid_server, make_client, base):
    alice = make_client(zooid_server)
    alice.add_auth("digest", "alice:secret")
    other = make_client(zooid_server)
    p = base + "/private"
    acl = [make_digest_acl("alice", "secret", all=True), ACL(1, Id("world", "anyone"))]
    alice.create(p, b"mine", acl=acl)
    assert other.get(p)[0] == b"mine"  # world READ
    with pytest.raises(NoAuthError):
        other.set(p, b"stolen")
    with pytest.raises(NoAuthError):
        other.create(p + "/kid")
    with pytest.raises(NoAuthError):
        other.set_acls(p, OPEN_ACL_UNSAFE)
    alice.set(p, b"still mine")
    alice.create(p + "/kid")
    acls, st = alice.get_acls(p)
    assert acls == acl and st.aversion == 0
    cred = make_digest_acl_credential("alice", "secret")
    assert acls[0].id == Id("digest", cred)
    # only-digest node: nobody else can read it
    q = base + "/secret"
    alice.create(q, b"s", acl=[make_digest_acl("alice", "secret", all=True)])
    with pytest.raises(NoAuthError):
        other.get(q)
    # the super user bypasses ACLs
    root = make_client(zooid_server)
    root.add_auth("digest", f"{SUPER_USER}:{SUPER_PASSWORD}")
    assert root.get(q)[0] == b"s"
    root.set(q, b"by super")
    assert alice.get(q)[0] == b"by super"


def test_world_read_only_and_set_acls(zk, base):
    p = base + "/ro"
    zk.create(p, b"r", acl=READ_ACL_UNSAFE)
    assert zk.get(p)[0] == b"r"
    with pytest.raises(NoAuthError):
        zk.set(p, b"w")
    acls, st = zk.get_acls(p)
    assert acls == READ_ACL_UNSAFE and st.aversion == 0
    q = base + "/rw"
    zk.create(q)
    assert zk.get_acls(q)[0] == OPEN_ACL_UNSAFE
    st = zk.set_acls(q, READ_ACL_UNSAFE, version=0)
    assert st.aversion == 1
    # no ADMIN any more: the permission check comes before the version check
    with pytest.raises(NoAuthError):
        zk.set_acls(q, OPEN_ACL_UNSAFE, version=0)
    with pytest.raises(NoAuthError):
        zk.set_acls(q, OPEN_ACL_UNSAFE, version=1)
    r = base + "/rw2"
    zk.create(r)
    with pytest.raises(BadVersionError):
        zk.set_acls(r, READ_ACL_UNSAFE, version=3)
    assert zk.get_acls(q) == (READ_ACL_UNSAFE, st)


# --------------------------------------------------------------- transactions

def test_transaction_commits_all(zk, base):
    zk.create(base + "/old", b"0")
    t = zk.transaction()
    t.create(base + "/new", b"n")
    t.set_data(base + "/old", b"1")
    t.check(base + "/old", 1)
    t.delete(base + "/new")
    t.create(base + "/kept", b"k")
    results = t.commit()
    assert results[0] == base + "/new"
    assert results[1].version == 1 and results[1].dataLength == 1
    assert results[2:4] == [True, True]
    assert results[4] == base + "/kept"
    assert zk.get(base + "/old")[0] == b"1"
    assert sorted(zk.get_children(base)) == ["kept", "old"]


def test_transaction_all_or_nothing(zk, base):
    zk.create(base + "/x", b"0")
    before = zk.exists(base)
    t = zk.transaction()
    t.create(base + "/y", b"y")
    t.set_data(base + "/x", b"1")
    t.delete(base + "/missing")
    t.set_data(base + "/x", b"2")
    results = t.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], RolledBackError)
    assert isinstance(results[2], NoNodeError)
    assert type(results[3]).__name__ == "RuntimeInconsistency"
    assert zk.exists(base + "/y") is None
    assert zk.get(base + "/x")[0] == b"0"
    after = zk.exists(base)
    assert after.cversion == before.cversion and after.pzxid == before.pzxid
    t = zk.transaction()
    t.check(base + "/x", 7)
    t.create(base + "/z")
    r = t.commit()
    assert isinstance(r[0], BadVersionError) and type(r[1]).__name__ == "RuntimeInconsistency"


# --------------------------------------------------------------- watches

def test_data_child_exists_watches(zooid_server, make_client, zk, base):
    other = make_client(zooid_server)
    data_w, child_w, exist_w = Recorder(), Recorder(), Recorder()
    zk.get(base, watch=data_w)
    zk.get_children(base, watch=child_w)
    zk.exists(base + "/later", watch=exist_w)
    other.create(base + "/later", b"1")
    assert summary(child_w.wait_for(1)) == [(EventType.CHILD, base)]
    assert summary(exist_w.wait_for(1)) == [(EventType.CREATED, base + "/later")]
    other.set(base, b"changed")
    ev = data_w.wait_for(1)
    assert summary(ev) == [(EventType.CHANGED, base)]
    assert ev[0].state == KeeperState.CONNECTED
    # one-shot: a second change does not fire again
    other.set(base, b"again")
    other.create(base + "/more")
    marker = Recorder()
    zk.exists(base + "/marker", watch=marker)
    other.create(base + "/marker")
    marker.wait_for(1)  # events arrive in order: anything earlier is already here
    assert len(data_w.events) == 1 and len(child_w.events) == 1
    # delete fires data and child watches of the node
    dw, cw = Recorder(), Recorder()
    zk.get(base + "/later", watch=dw)
    zk.get_children(base + "/later", watch=cw)
    other.delete(base + "/later")
    assert summary(dw.wait_for(1)) == [(EventType.DELETED, base + "/later")]
    assert summary(cw.wait_for(1)) == [(EventType.DELETED, base + "/later")]


def test_persistent_watch(zooid_server, make_client, zk, base):
    other = make_client(zooid_server)
    rec = Recorder()
    add_watch(zk, base, rec, PERSISTENT)
    other.set(base, b"1")
    other.create(base + "/a")
    other.set(base, b"2")
    other.set(base + "/a", b"not for a persistent watch on the parent")
    other.delete(base + "/a")
    other.delete(base)
    other.create(base)
    got = rec.wait_for(6)
    assert summary(got) == [
        (EventType.CHANGED, base), (EventType.CHILD, base), (EventType.CHANGED, base),
        (EventType.CHILD, base), (EventType.DELETED, base), (EventType.CREATED, base)]


def test_persistent_recursive_watch(zooid_server, make_client, zk, base):
    other = make_client(zooid_server)
    rec = Recorder()
    root = base + "/r"
    add_watch(zk, root, rec, PERSISTENT_RECURSIVE)
    other.create(root)
    other.create(root + "/x")
    other.create(root + "/x/y", b"")
    other.set(root + "/x/y", b"v")
    other.create(base + "/rr")  # sibling with a common prefix: not below /r
    other.delete(root + "/x/y")
    got = rec.wait_for(5)
    assert summary(got) == [
        (EventType.CREATED, root), (EventType.CREATED, root + "/x"),
        (EventType.CREATED, root + "/x/y"), (EventType.CHANGED, root + "/x/y"),
        (EventType.DELETED, root + "/x/y")]


def test_watch_event_precedes_reply(zooid_server, base):
    """The notification frame arrives before the reply that shows the change."""
    h, port = zooid_server.host, zooid_server.port
    with Session(h, port, read_only=False) as a, Session(h, port, read_only=False) as b:
        r = a.call("getData", {"path": base, "watch": True})
        assert r.err == 0 and r.body["data"] == b"base"
        w = a.call("setData", {"path": base, "data": b"mine"})
        assert w.err == 0
        assert [(e.type, e.state, e.path) for e in w.events] == [(3, 3, base)]
        # another session writes; our next read shows the data, event first
        assert a.call("getData", {"path": base, "watch": True}).err == 0
        assert b.call("setData", {"path": base, "data": b"theirs"}).err == 0
        r = a.call("getData", {"path": base})
        assert r.body["data"] == b"theirs"
        assert [(e.type, e.path) for e in r.events] == [(3, base)]
        # child watch + create in the same session
        assert a.call("getChildren", {"path": base, "watch": True}).err == 0
        c = a.call("create", {"path": base + "/k", "flags": 0})
        assert c.err == 0 and [(e.type, e.path) for e in c.events] == [(4, base)]


# --------------------------------------------------------------- sessions

def test_session_expiry_via_proxy(zooid_server, make_client, zk, base):
    with TcpProxy(zooid_server.host, zooid_server.port) as proxy:
        victim = make_client(proxy.hosts, timeout=2.0)
        log = StateLog(WAIT)
        victim.add_listener(log)
        p = base + "/victim-eph"
        victim.create(p, ephemeral=True)
        sid, passwd = victim.client_id
        assert zk.exists(p).ephemeralOwner == sid
        rec = Recorder()
        zk.exists(p, watch=rec)
        proxy.set_accepting(False)
        proxy.drop_all()
        log.wait_for(KazooState.SUSPENDED)
        # the server expires the session (2 s) and deletes the ephemeral
        assert summary(rec.wait_for(1, timeout=20)) == [(EventType.DELETED, p)]
        assert zk.exists(p) is None
        proxy.set_accepting(True)
        log.wait_for(KazooState.LOST, timeout=20)
    # a raw re-attach with the old id is refused with timeOut 0 / sessionId 0
    with Session(zooid_server.host, zooid_server.port, session_id=sid,
                 passwd=passwd, read_only=False) as raw:
        assert raw.connect_response.timeOut == 0 and raw.connect_response.sessionId == 0


def test_reconnect_keeps_session(zooid_server, make_client, zk, base):
    with TcpProxy(zooid_server.host, zooid_server.port) as proxy:
        c = make_client(proxy.hosts, timeout=10.0)
        log = StateLog(WAIT)
        c.add_listener(log)
        p = base + "/eph"
        c.create(p, b"e", ephemeral=True)
        sid = c.client_id
        n = len(log.states)
        assert proxy.drop_all() == 1
        log.wait_for(KazooState.SUSPENDED, after=n)
        log.wait_for(KazooState.CONNECTED, after=n)
        assert c.client_id == sid
        assert zk.exists(p).ephemeralOwner == sid[0]
        assert c.get(p)[0] == b"e"
        rec = Recorder()
        c.get(p, watch=rec)
        zk.set(p, b"after reconnect")
        assert summary(rec.wait_for(1)) == [(EventType.CHANGED, p)]
    # the proxy is closed: the session is gone only after the client stops
    c.stop()


def test_setwatches_on_reattach(zooid_server, zk, base):
    """A re-attached session re-registers its watches with setWatches:
    changes made while it was away fire at once, the others stay armed."""
    h, port = zooid_server.host, zooid_server.port
    for name in ("changed", "steady", "gone"):
        zk.create(f"{base}/{name}", b"0")
    s = Session(h, port, read_only=False, timeout_ms=10000)
    try:
        for name in ("changed", "steady", "gone"):
            assert s.call("getData", {"path": f"{base}/{name}", "watch": True}).err == 0
        assert s.call("exists", {"path": base + "/born", "watch": True}).err == -101
        assert s.call("getChildren", {"path": base, "watch": True}).err == 0
        seen = s.last_zxid
        sid, pw = s.session_id, s.passwd
        s.close_socket()
        zk.set(base + "/changed", b"1")
        zk.delete(base + "/gone")
        zk.create(base + "/born")
        s = Session(h, port, session_id=sid, passwd=pw, last_zxid=seen, read_only=False,
                    timeout_ms=10000)
        assert s.session_id == sid and s.connect_response.timeOut == 10000
        r = s.call(OP["setWatches"], {
            "relativeZxid": seen,
            "data": [f"{base}/changed", f"{base}/steady", f"{base}/gone"],
            "exist": [base + "/born"], "child": [base]})
        assert r.err == 0 and r.xid == -8
        got = sorted((e.type, e.path) for e in r.events)
        assert got == sorted([(3, f"{base}/changed"), (2, f"{base}/gone"),
                              (1, f"{base}/born"), (4, base)])
        zk.set(base + "/steady", b"1")
        ev = s.wait_event(timeout=WAIT)
        assert (ev.type, ev.path) == (3, f"{base}/steady")
    finally:
        s.close()


def test_sync_and_chroot(zooid_server, make_client, zk, base):
    assert zk.sync(base) == base
    chrooted = make_client(zooid_server.hosts + base)
    assert chrooted.create("/inside", b"i") == "/inside"
    assert zk.get(base + "/inside")[0] == b"i"
    assert chrooted.get_children("/") == ["inside"]
    assert chrooted.sync("/inside") == "/inside"


# --------------------------------------------------------------- recipes

def run_threads(targets, timeout=60):
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "worker thread did not finish"
    if errors:
        raise errors[0]


def test_lock_mutual_exclusion(zooid_server, make_client, base):
    clients = [make_client(zooid_server) for _ in range(2)]
    counter = base + "/counter"
    clients[0].create(counter, b"0")
    inside = [0]
    max_inside = [0]
    guard = threading.Lock()
    rounds = 15

    def worker(c, ident):
        lock = c.Lock(base + "/lock", ident)
        for _ in range(rounds):
            assert lock.acquire(timeout=WAIT)
            try:
                with guard:
                    inside[0] += 1
                    max_inside[0] = max(max_inside[0], inside[0])
                value = int(c.get(counter)[0])
                c.set(counter, str(value + 1).encode())
                with guard:
                    inside[0] -= 1
            finally:
                lock.release()

    run_threads([lambda c=c, i=i: worker(c, f"w{i}") for i, c in enumerate(clients)])
    assert int(clients[0].get(counter)[0]) == 2 * rounds
    assert max_inside[0] == 1
    assert clients[0].get_children(base + "/lock") == []


def test_election(zooid_server, make_client, base):
    c1, c2 = make_client(zooid_server), make_client(zooid_server)
    e1, e2 = c1.Election(base + "/election", "one"), c2.Election(base + "/election", "two")
    led1, led2, release1 = threading.Event(), threading.Event(), threading.Event()

    def lead1():
        led1.set()
        release1.wait(WAIT)

    t1 = threading.Thread(target=e1.run, args=(lead1,), daemon=True)
    t1.start()
    assert led1.wait(WAIT)
    t2 = threading.Thread(target=e2.run, args=(led2.set,), daemon=True)
    t2.start()
    # wait until both are contenders (bounded poll on a real condition)
    watcher = Recorder()
    for _ in range(50):
        if len(c1.get_children(base + "/election", watch=watcher)) == 2:
            break
        watcher.wait_for(len(watcher.events) + 1)
    assert e1.contenders() == ["one", "two"]
    assert not led2.is_set()
    release1.set()
    t1.join(WAIT)
    assert led2.wait(WAIT)
    t2.join(WAIT)
    assert not t1.is_alive() and not t2.is_alive()


def test_queue_and_locking_queue(zk, base):
    q = zk.Queue(base + "/q")
    for item in (b"one", b"two", b"three"):
        q.put(item)
    q.put(b"urgent", priority=10)  # lower number = earlier; default is 100
    assert len(q) == 4
    assert [q.get() for _ in range(4)] == [b"urgent", b"one", b"two", b"three"]
    assert q.get() is None
    lq = zk.LockingQueue(base + "/lq")
    lq.put(b"a")
    lq.put_all([b"b", b"c"])
    assert len(lq) == 3
    assert lq.get(timeout=WAIT) == b"a"
    assert lq.holds_lock()
    assert lq.consume()
    assert lq.get(timeout=WAIT) == b"b"
    assert lq.release()  # put back
    assert lq.get(timeout=WAIT) == b"b"
    assert lq.consume()
    assert len(lq) == 1


def test_barriers(zooid_server, make_client, base):
    c1, c2 = make_client(zooid_server), make_client(zooid_server)
    b = c1.Barrier(base + "/barrier")
    b.create()
    assert c1.exists(base + "/barrier") is not None
    waited = []
    t = threading.Thread(target=lambda: waited.append(c2.Barrier(base + "/barrier").wait(WAIT)),
                         daemon=True)
    t.start()
    b.remove()
    t.join(WAIT)
    assert waited == [True]
    db1 = c1.DoubleBarrier(base + "/double", 2)
    db2 = c2.DoubleBarrier(base + "/double", 2)
    order = []
    lock = threading.Lock()

    def party(db, name):
        db.enter()
        with lock:
            order.append(("in", name))
        db.leave()
        with lock:
            order.append(("out", name))

    run_threads([lambda: party(db1, "a"), lambda: party(db2, "b")])
    # both entered before anybody could leave
    assert sorted(order[:2]) == [("in", "a"), ("in", "b")]
    assert sorted(order[2:]) == [("out", "a"), ("out", "b")]


def test_counter(zooid_server, make_client, base):
    c1, c2 = make_client(zooid_server), make_client(zooid_server)
    k1, k2 = c1.Counter(base + "/count"), c2.Counter(base + "/count")
    k1 += 5
    k2 += 3
    k1 -= 2
    assert k1.value == 6 and k2.value == 6
    assert c1.get(base + "/count")[0] == b"6"


# -- kazoo's CREATOR_ALL_ACL: an `auth` id that kazoo sends as a null string


def creator_acl_outcomes(server, make_client, base):
    """What `create(acl=CREATOR_ALL_ACL)` gives: unauthenticated, with one and two digest
    users, and with makepath; and a null digest credential."""
    from kazoo.exceptions import AuthFailedError, InvalidACLError
    from kazoo.security import CREATOR_ALL_ACL
    out = {}
    anon = make_client(server)
    anon.ensure_path(base)
    try:
        anon.create(f"{base}/anon", b"x", acl=CREATOR_ALL_ACL)
        out["anon"] = "created"
    except InvalidACLError:
        out["anon"] = "INVALIDACL"
    try:
        anon.create(f"{base}/anon/deep/er", b"x", acl=CREATOR_ALL_ACL, makepath=True)
        out["anon-makepath"] = "created"
    except InvalidACLError:
        out["anon-makepath"] = "INVALIDACL"
    one = make_client(server, auth_data=[("digest", "u1:p1")])
    one.create(f"{base}/one", b"x", acl=CREATOR_ALL_ACL)
    out["one"] = one.get_acls(f"{base}/one")[0]
    one.create(f"{base}/mk/a/b", b"x", acl=CREATOR_ALL_ACL, makepath=True)
    out["makepath"] = [one.get_acls(p)[0] for p in (f"{base}/mk", f"{base}/mk/a", f"{base}/mk/a/b")]
    two = make_client(server, auth_data=[("digest", "u1:p1"), ("digest", "u2:p2")])
    two.create(f"{base}/two", b"x", acl=CREATOR_ALL_ACL)
    out["two"] = two.get_acls(f"{base}/two")[0]
    nul = make_client(server, start=False)
    nul.start(timeout=15)
    try:
        nul.add_auth("digest", "")
        out["null-credential"] = "accepted"
    except AuthFailedError:
        out["null-credential"] = "AUTHFAILED"
    return out


def test_creator_all_acl_as_kazoo_sends_it(zooid_server, oracle_server, make_client, base):
    z = creator_acl_outcomes(zooid_server, make_client, base)
    o = creator_acl_outcomes(oracle_server, make_client, base)
    assert z == o
    # What ZooKeeper does, spelled out: the session's digest ids replace the auth entry.
    assert z["anon"] == z["anon-makepath"] == "INVALIDACL"
    assert [a.id.id.split(":")[0] for a in z["two"]] == ["u2", "u1"]
    assert len(z["makepath"]) == 3 and all(acls == z["one"] for acls in z["makepath"])
    assert z["null-credential"] == "AUTHFAILED"
