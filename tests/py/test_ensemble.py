"""A replicated ensemble of real processes: roles, replication, quorum loss, leader failover
under load, catch-up of a stopped or wiped member, observers, sessions moving between members,
kazoo recipes across a failover, ensembles mixing zooid with ZooKeeper 3.8.0 or 3.9.3 members
(SNAPs both ways) and a live 3.9.3 ensemble replaced member by member by zooid and back.

Each test starts an ensemble of its own (tests/py/ensemble.py) from zoo.cfg files with
server.N lines and myid files, tickTime=200; with ZOOID_TEST_ORACLE_ONLY=1 the members are
Apache ZooKeeper 3.8 (QuorumPeerMain), else `zooid server start-foreground`. Members are
signalled by pid and always stopped. Every wait is on an event or polls with a deadline.
"""

import os
import re
import threading
import time

import pytest
from kazoo.exceptions import (ConnectionClosedError, ConnectionLoss, NodeExistsError,
                              OperationTimeoutError, SessionExpiredError)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState
from kazoo.retry import KazooRetry

from conftest import ORACLE_KINDS, ORACLE_ONLY
from kazoo_compat import StateLog
from ensemble import Ensemble
from test_durability import check_layout, snapshot_state, written_between
from zkraw import OP, ProtocolError, Session

WAIT = 30.0  # upper bound for any one wait on the ensemble or a client
FAILOVER_LIMIT = 10.0
TRANSIENT = (ConnectionLoss, SessionExpiredError, OperationTimeoutError, KazooTimeoutError,
             ConnectionClosedError)

summary = []  # lines for the terminal (failover times)

SRVR_LINES = ["Zookeeper version", "Latency min/avg/max", "Received", "Sent", "Connections",
              "Outstanding", "Zxid", "Mode", "Node count"]
# mntr keys of ZooKeeper 3.8's leader that its followers do not have
LEADER_ONLY_MNTR = {"zk_learners", "zk_synced_followers", "zk_synced_non_voting_followers",
                    "zk_synced_observers", "zk_pending_syncs", "zk_leader_uptime",
                    "zk_last_proposal_size", "zk_max_proposal_size", "zk_min_proposal_size"}
# the oracle's per-learner queue summaries (zk_avg_2_learner_handler_qp_size, ...): not compared
LEARNER_QP_METRIC = re.compile(r"zk_(avg|min|max|cnt|sum|p50|p95|p99|p999)_\d+_learner_handler_qp_")


# --------------------------------------------------------------- fixtures and helpers

@pytest.fixture
def make_ensemble(tmp_path):
    """make_ensemble(n, n_observers=0) -> a started Ensemble; every member is stopped at
    the end (a test asks for it before make_client, so clients close first)."""
    made = []

    def make(n_participants, n_observers=0, **kw):
        ens = Ensemble(str(tmp_path / f"ens{len(made)}"), **kw)
        made.append(ens)
        ens.start(n_participants, n_observers)
        return ens

    yield make
    errors = []
    for ens in made:
        print(f"{ens!r} modes at teardown: {ens.modes()}\n{ens.log_tail(n=15)}")
        try:
            ens.stop_all()
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    for ens in made:
        leftovers = [m for m in ens.members.values() if m.alive()]
        assert not leftovers, f"members left running: {leftovers}"
    assert not errors, errors


def client(make_client, hosts, timeout=10.0, retry=False, **kw):
    """A KazooClient on `hosts` (a member, a list of members or a connect string).
    `retry`: commands (and so recipes) retry connection loss for up to WAIT seconds."""
    if isinstance(hosts, (list, tuple)):
        hosts = ",".join(getattr(h, "hosts", h) for h in hosts)
    if retry:
        kw["command_retry"] = KazooRetry(max_tries=-1, delay=0.05, backoff=1.5,
                                         max_delay=0.5, max_jitter=0.1, deadline=WAIT)
    return make_client(getattr(hosts, "hosts", hosts), timeout=timeout, **kw)


def until_ok(fn, timeout=WAIT, what="operation", retry_on=TRANSIENT):
    """Call fn() until it does not raise a connection-type error; bounded in time/rounds."""
    deadline = time.monotonic() + timeout
    last = None
    pause = threading.Event()
    for _ in range(100000):
        try:
            return fn()
        except retry_on as e:
            last = e
        if time.monotonic() >= deadline:
            break
        pause.wait(0.05)  # retry pacing while the client reconnects
    raise AssertionError(f"{what} did not succeed within {timeout}s: {last!r}")


def poll_until(pred, timeout=WAIT, what="condition"):
    """Poll pred() until true; bounded in time and rounds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    for _ in range(100000):
        if pred():
            return
        if time.monotonic() >= deadline:
            break
        pause.wait(0.05)
    raise AssertionError(f"{what} not within {timeout}s")


def create_once(c, path, data=b""):
    """Create that may be retried: a NodeExists after a lost reply means it was done."""
    def op():
        try:
            c.create(path, data)
        except NodeExistsError:
            pass
    until_ok(op, what=f"create {path}")


def synced_get(c, path):
    c.sync(path)
    return c.get(path)[0]


def synced_children(c, path):
    c.sync(path)
    return set(c.get_children(path))


def dump_tree(c, path="/"):
    """{path: (data, Stat)} of the whole tree below `path` (/zookeeper excluded), read
    level by level with pipelined requests. Stats include ctime/mtime, which come from the
    transaction and so are the same on every member."""
    out = {}
    level = [path]
    for _ in range(1000):
        level = [p for p in level if p != "/zookeeper"]
        if not level:
            break
        gets = [(p, c.get_async(p), c.get_children_async(p)) for p in level]
        level = []
        for p, g, ch in gets:
            out[p] = g.get(timeout=WAIT)
            level += [("" if p == "/" else p) + "/" + k for k in ch.get(timeout=WAIT)]
    return out


def zxid_of(srvr_text):
    for line in srvr_text.splitlines():
        if line.startswith("Zxid: "):
            return int(line.split()[1], 16)
    raise AssertionError(f"no Zxid line in {srvr_text!r}")


def peer_port(c):
    """The server port a kazoo client is connected to (client side of the socket)."""
    sock = c._connection._socket
    return sock.getpeername()[1] if sock is not None else None


def report(capsys, line):
    summary.append(line)
    with capsys.disabled():
        print(f"\n{line}")


# --------------------------------------------------------------- 1. roles

@pytest.mark.parametrize("size", [3, 4])
def test_roles_from_zoo_cfg(make_ensemble, size):
    """The tutorials' ensembles (3 and 4 servers): one leader, the others followers, as
    srvr and mntr tell."""
    ens = make_ensemble(size)
    modes = ens.modes()
    assert sorted(modes.values()) == ["follower"] * (size - 1) + ["leader"], modes
    leader = ens.leader_sid()
    for sid in ens.sids:
        srvr = ens.srvr(sid)
        assert f"Mode: {modes[sid]}" in srvr.splitlines(), srvr
        assert "Zxid: 0x" in srvr, srvr
    # mntr/srvr as ZooKeeper 3.8 reports them; every difference is listed at once
    problems = []

    def expect(sid, what, got, want):
        if got != want:
            problems.append(f"member {sid} ({modes[sid]}) {what}: {got!r}, the oracle's {want!r}")

    mntrs = {sid: ens.mntr(sid) for sid in ens.sids}
    m = mntrs[leader]
    # the leader's counts are zk_learners / zk_synced_*; 3.4's zk_followers is gone
    for key, want in (("zk_server_state", "leader"), ("zk_peer_state", "leading - broadcast"),
                      ("zk_learners", str(size - 1)), ("zk_synced_followers", str(size - 1)),
                      ("zk_synced_observers", "0"), ("zk_synced_non_voting_followers", "0"),
                      ("zk_pending_syncs", "0")):
        expect(leader, key, m.get(key), want)
    followers = [s for s in ens.sids if s != leader]
    for sid in followers:
        expect(sid, "zk_server_state", mntrs[sid].get("zk_server_state"), "follower")
        expect(sid, "zk_peer_state", mntrs[sid].get("zk_peer_state"), "following - broadcast")
    for sid in ens.sids:
        # the number of voting members, not a majority of them
        expect(sid, "zk_quorum_size", mntrs[sid].get("zk_quorum_size"), str(size))
    leader_keys = {k for k in m if not LEARNER_QP_METRIC.match(k)}
    expect(leader, "leader-only mntr keys", sorted(leader_keys - set(mntrs[followers[0]])),
           sorted(LEADER_ONLY_MNTR))
    for sid in followers:
        expect(sid, "keys also on the leader", sorted(set(mntrs[sid]) - leader_keys), [])
    # srvr: the leader alone adds the proposal sizes line
    for sid in ens.sids:
        names = [line.split(":")[0] for line in ens.srvr(sid).splitlines()]
        expect(sid, "srvr lines", names,
               SRVR_LINES + (["Proposal sizes last/min/max"] if sid == leader else []))
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------- 2. replication

def test_writes_through_each_member_read_from_all(make_ensemble, make_client):
    ens = make_ensemble(3)
    pinned = {sid: client(make_client, ens.member(sid)) for sid in ens.sids}
    pinned[ens.sids[0]].create("/rep", b"root")
    for writer, c in pinned.items():
        path = f"/rep/via-{writer}"
        c.create(path, f"written through {writer}".encode())
        for reader, r in pinned.items():
            assert synced_get(r, path) == f"written through {writer}".encode(), (writer, reader)
        # an update through the next member, read everywhere
        nxt = pinned[ens.sids[(ens.sids.index(writer) + 1) % len(ens.sids)]]
        nxt.set(path, b"updated")
        for reader, r in pinned.items():
            assert synced_get(r, path) == b"updated", (writer, reader)
    for reader, r in pinned.items():
        assert synced_children(r, "/rep") == {f"via-{s}" for s in ens.sids}, reader
    # every member applied the same transactions
    zxids = {sid: [l for l in ens.srvr(sid).splitlines() if l.startswith("Zxid:")]
             for sid in ens.sids}
    assert len({tuple(z) for z in zxids.values()}) == 1, zxids


# --------------------------------------------------------------- 3. quorum loss

def test_five_members_lose_and_regain_quorum(make_ensemble, make_client, capsys):
    ens = make_ensemble(5)
    leader = ens.leader_sid()
    followers = [s for s in ens.sids if s != leader]
    keep, kill_a, kill_b, kill_c = followers
    c = client(make_client, ens.member(keep))
    c.create("/q", b"")
    c.create("/q/before", b"1")

    ens.kill9(kill_a)
    ens.kill9(kill_b)
    # 3 of 5 are left: still a quorum, writes through the follower go on
    create_once(c, "/q/two-down", b"2")
    assert synced_get(c, "/q/two-down") == b"2"
    assert ens.leader_sid() == leader
    lc = client(make_client, ens.member(leader))
    assert synced_children(lc, "/q") == {"before", "two-down"}

    # a third goes: 2 of 5, no quorum; the survivors stop serving
    ens.kill9(kill_c)
    t0 = time.monotonic()
    with pytest.raises(TRANSIENT):
        c.create_async("/q/no-quorum", b"x").get(timeout=WAIT)
    ens.wait_not_serving([leader, keep], timeout=WAIT)
    not_serving_s = time.monotonic() - t0
    assert ens.modes([leader, keep]) == {leader: None, keep: None}
    # nor does a new client get a session from them
    fresh = client(make_client, [ens.member(leader), ens.member(keep)], start=False)
    with pytest.raises(KazooTimeoutError):
        fresh.start(timeout=3)

    # one comes back: 3 of 5 again, the ensemble serves (and kept everything)
    t1 = time.monotonic()
    ens.restart(kill_c, wait=False)
    ens.wait_for_quorum(WAIT)
    create_once(c, "/q/regained", b"3")
    regained_s = time.monotonic() - t1
    new_leader = ens.leader_sid()
    nl = client(make_client, ens.member(new_leader))
    assert synced_children(nl, "/q") >= {"before", "two-down", "regained"}
    assert until_ok(lambda: synced_children(c, "/q")) >= {"before", "two-down", "regained"}
    report(capsys, f"quorum_loss_ms={not_serving_s * 1000:.0f} (kill of the 3rd of 5 -> "
                   f"survivors without Mode) quorum_regain_ms={regained_s * 1000:.0f} (restart "
                   f"-> a write through the surviving follower) ({ens.real_kind})")


# --------------------------------------------------------------- 4. failover under load

def test_leader_kill_under_write_load(make_ensemble, make_client, capsys):
    ens = make_ensemble(3)
    setup = client(make_client, ens.hosts)
    setup.create("/load", b"")
    n_writers = 4
    acked = [[] for _ in range(n_writers)]      # (path, t_start, t_ack)
    errors = [[] for _ in range(n_writers)]
    cond = threading.Condition()
    stop = threading.Event()
    deadline = time.monotonic() + 120

    def writer(i, c, connected):
        pause = threading.Event()
        for _ in range(1000000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            t0 = time.monotonic()
            try:
                path = c.create(f"/load/w{i}-", b"v", sequence=True)
            except TRANSIENT as e:
                errors[i].append(repr(e))
                # wait for the client to be connected again (bounded), then retry
                if not connected.wait(0.5):
                    pause.wait(0.01)
                continue
            with cond:
                acked[i].append((path, t0, time.monotonic()))
                cond.notify_all()

    threads = []
    for i in range(n_writers):
        c = client(make_client, ens.hosts)
        connected = threading.Event()
        connected.set()
        c.add_listener(lambda st, ev=connected: ev.set() if st == KazooState.CONNECTED else ev.clear())
        t = threading.Thread(target=writer, args=(i, c, connected), daemon=True)
        threads.append(t)
        t.start()

    def wait_acks(pred, what):
        with cond:
            ok = cond.wait_for(pred, timeout=WAIT)
        if not ok:
            stop.set()
            raise AssertionError(f"{what} not within {WAIT}s; acks per writer "
                                 f"{[len(a) for a in acked]}, errors {[e[-3:] for e in errors]}\n"
                                 f"{ens.log_tail()}")

    try:
        wait_acks(lambda: all(len(a) >= 20 for a in acked), "20 writes per writer")
        leader = ens.leader_sid()
        assert leader is not None
        old_epoch = zxid_of(ens.srvr(leader)) >> 32
        t_kill = time.monotonic()
        ens.kill9(leader)
        # the first write started after the kill that is acknowledged
        wait_acks(lambda: any(t0 >= t_kill for a in acked for _p, t0, _t in a),
                  "a write after the leader was killed")
        with cond:
            first = min(t for a in acked for _p, t0, t in a if t0 >= t_kill)
        failover = first - t_kill
        # keep writing a bit: every writer gets 20 more through the new leader
        wait_acks(lambda: all(sum(1 for _p, t0, _t in a if t0 >= t_kill) >= 20 for a in acked),
                  "20 more writes per writer after the failover")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=WAIT)
    assert not any(t.is_alive() for t in threads), "a writer did not finish"
    new_leader = ens.wait_for_quorum(WAIT)
    assert new_leader != leader
    total = sum(len(a) for a in acked)
    report(capsys, f"failover_ms={failover * 1000:.0f} ({ens.real_kind}, 3 members, "
                   f"{n_writers} writers, {total} acknowledged creates, "
                   f"{sum(len(e) for e in errors)} failed attempts)")
    assert failover < FAILOVER_LIMIT, f"failover took {failover:.2f}s"

    # the new leader works in a new epoch
    assert zxid_of(ens.srvr(new_leader)) >> 32 > old_epoch

    want = {p.rsplit("/", 1)[1] for a in acked for p, _t0, _t in a}
    assert len(want) == sum(len(a) for a in acked), "a sequential name was acknowledged twice"
    trees = {}
    for sid in ens.live_sids():
        mc = client(make_client, ens.member(sid))
        have = synced_children(mc, "/load")
        missing = want - have
        assert not missing, f"member {sid} lacks {len(missing)} acknowledged: {sorted(missing)[:5]}"
        trees[sid] = dump_tree(mc, "/load")
    # the old leader rejoins as a follower and has every acknowledged write too
    assert ens.restart(leader) == "follower"
    mc = client(make_client, ens.member(leader))
    have = synced_children(mc, "/load")
    missing = want - have
    assert not missing, f"rejoined member {leader} lacks {sorted(missing)[:5]}"
    trees[leader] = dump_tree(mc, "/load")
    # the replicas are identical, unacknowledged creates included (data and Stat)
    ref = trees[new_leader]
    for sid, tree in trees.items():
        diff = sorted(set(tree) ^ set(ref)) + [p for p in ref if p in tree and tree[p] != ref[p]]
        assert not diff, f"member {sid} differs from the leader {new_leader} at {diff[:5]}"
    # every txn a member applied left its tree with the digest the leader logged with it
    for sid in ens.live_sids():
        assert ens.mntr(sid).get("zk_digest_mismatches_count") == "0", f"member {sid}"


# --------------------------------------------------------------- 5. catch-up

def test_stopped_and_wiped_follower_catch_up(make_ensemble, make_client):
    ens = make_ensemble(3)
    leader = ens.leader_sid()
    lagger = ens.followers()[0]
    lc = client(make_client, ens.member(leader))
    lc.create("/cu", b"")

    ens.stop(lagger)
    for r in [lc.create_async(f"/cu/n{i:03d}", f"v{i}".encode()) for i in range(200)]:
        r.get(timeout=WAIT)
    assert ens.restart(lagger) == "follower"
    fc = client(make_client, ens.member(lagger))
    assert synced_children(fc, "/cu") == {f"n{i:03d}" for i in range(200)}
    datas = [fc.get_async(f"/cu/n{i:03d}") for i in range(200)]
    assert [d.get(timeout=WAIT)[0] for d in datas] == [f"v{i}".encode() for i in range(200)]
    fc.stop()

    # a member whose dataDir was lost (myid kept) gets the whole tree again
    lc.set("/cu", b"before wipe")
    ens.stop(lagger)
    ens.wipe(lagger)
    assert sorted(os.listdir(ens.member(lagger).data_dir)) == ["myid"]
    lc.create("/cu/while-wiped", b"w")
    assert ens.restart(lagger) == "follower"
    wc = client(make_client, ens.member(lagger))
    wc.sync("/")
    lc.sync("/")
    theirs, ours = dump_tree(lc), dump_tree(wc)
    assert len(theirs) == 203  # /, /cu, 200 + while-wiped
    assert theirs["/cu"][0] == b"before wipe"
    assert sorted(ours) == sorted(theirs)
    diff = [p for p in theirs if ours[p] != theirs[p]]
    assert not diff, [(p, theirs[p], ours[p]) for p in diff[:3]]
    assert zxid_of(ens.srvr(lagger)) == zxid_of(ens.srvr(leader))
    assert ens.wait_for_quorum(WAIT) == leader


def test_a_follower_far_behind_is_synced_from_the_leader_s_log(make_ensemble, make_client):
    """More than the leader's in-memory window (500 txns) behind, with a log small beside
    the snapshot: the leader reads the missing txns from its log (off its core task) and
    the follower catches up by DIFF, not SNAP."""
    # Small preallocated log files: ZooKeeper's budget (a third of the newest snapshot)
    # counts the files' full length.
    ens = make_ensemble(3, extra_cfg={"preAllocSize": "64"})
    lc = client(make_client, ens.member(ens.leader_sid()))
    lc.create("/big", b"")
    # A snapshot of some megabytes, so that a log of 700 small txns is worth reading.
    blob = b"x" * 1000
    for r in [lc.create_async(f"/big/n{i:04d}", blob) for i in range(4000)]:
        r.get(timeout=WAIT)
    for sid in ens.sids:  # each member's start-up snapshot now holds the big tree
        ens.restart(sid)
    ens.wait_for_quorum()
    leader = ens.leader_sid()
    lagger = [s for s in ens.followers() if s != leader][0]
    lc = client(make_client, ens.member(leader))
    # The lagger holds a txn of the new epoch: the leader's log from there is its newest
    # file only (the older one, of the big tree, is not read).
    lc.create("/far", b"")
    fc = client(make_client, ens.member(lagger))
    fc.sync("/")
    assert fc.exists("/far")
    fc.stop()
    ens.stop(lagger)
    for r in [lc.create_async(f"/far/n{i:04d}", b"v") for i in range(700)]:
        r.get(timeout=WAIT)
    assert ens.restart(lagger) == "follower"
    fc = client(make_client, ens.member(lagger))
    assert synced_children(fc, "/far") == {f"n{i:04d}" for i in range(700)}
    assert "loaded the leader's snapshot" not in ens.log_since_start(lagger)
    fc.stop()


# --------------------------------------------------------------- 6. observers

def test_observer_reads_and_writes(make_ensemble, make_client):
    ens = make_ensemble(3, n_observers=1)
    obs = 4
    assert ens.member(obs).role == "observer"
    assert ens.mode(obs) == "observer"
    assert "Mode: observer" in ens.srvr(obs).splitlines()
    leader = ens.leader_sid()
    assert sorted(ens.modes([1, 2, 3]).values()) == ["follower", "follower", "leader"]
    # mntr/srvr differences from the oracle are collected and reported at the end, after
    # the behaviour has been checked
    problems = []

    def expect(what, got, want):
        if got != want:
            problems.append(f"{what}: {got!r}, the oracle's {want!r}")

    m, om = ens.mntr(leader), ens.mntr(obs)
    expect("leader zk_synced_followers", m.get("zk_synced_followers"), "2")
    expect("leader zk_synced_observers", m.get("zk_synced_observers"), "1")
    expect("leader zk_learners", m.get("zk_learners"), "3")
    expect("observer zk_server_state", om.get("zk_server_state"), "observer")
    expect("observer zk_peer_state", om.get("zk_peer_state"), "observing - broadcast")
    # it follows the leader (no observerMasterPort) and does not vote
    expect("observer zk_observer_master_id", om.get("zk_observer_master_id"), str(leader))
    expect("observer zk_quorum_size", om.get("zk_quorum_size"), "3")
    expect("observer srvr has Proposal sizes", "Proposal sizes" in ens.srvr(obs), False)

    oc = client(make_client, ens.member(obs))
    lc = client(make_client, ens.member(leader))
    oc.create("/obs", b"via observer")
    oc.create("/obs/child", b"c")
    assert oc.get("/obs")[0] == b"via observer"
    assert synced_get(lc, "/obs") == b"via observer"
    assert synced_children(lc, "/obs") == {"child"}
    oc.set("/obs/child", b"c2")
    assert synced_get(lc, "/obs/child") == b"c2"
    # and the other way: a write through the leader reaches the observer
    lc.create("/obs/from-leader", b"L")
    assert synced_get(oc, "/obs/from-leader") == b"L"
    # one follower down: 2 of 3 voters, writes through the observer go on
    f_a, f_b = ens.followers()
    ens.kill9(f_a)
    create_once(oc, "/obs/one-down", b"x")
    assert synced_get(lc, "/obs/one-down") == b"x"
    # both down: leader + observer are 2 of 4 servers but 1 of 3 voters -> nobody serves
    ens.kill9(f_b)
    ens.wait_not_serving([leader, obs], timeout=WAIT)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------- 7. sessions move

def test_session_moves_to_another_member(make_ensemble, make_client):
    """A kazoo session (ephemeral + DataWatch) and a raw session (one-shot watches,
    re-registered with setWatches) move to the other follower when theirs is killed."""
    ens = make_ensemble(3)
    leader = ens.leader_sid()
    f1, f2 = ens.followers()
    ports = {ens.member(f1).client_port: f1, ens.member(f2).client_port: f2}
    c = client(make_client, [ens.member(f1), ens.member(f2)], timeout=10.0)
    log = StateLog(WAIT)
    c.add_listener(log)
    lc = client(make_client, ens.member(leader))
    c.create("/mv", b"")
    c.create("/mv/eph", b"e", ephemeral=True)
    sid, passwd = c.client_id
    seen = []
    seen_cond = threading.Condition()

    def on_data(data, _stat, _event=None):
        with seen_cond:
            seen.append(data)
            seen_cond.notify_all()

    c.DataWatch("/mv/eph", on_data)
    lc.sync("/mv/eph")
    assert lc.exists("/mv/eph").ephemeralOwner == sid

    first = ports[peer_port(c)]
    second = ({f1, f2} - {first}).pop()
    # a raw session on the same member, with one-shot watches the server must carry over
    raw = Session("127.0.0.1", ens.member(first).client_port, timeout_ms=10000,
                  read_only=False)
    try:
        assert raw.call("getData", {"path": "/mv/eph", "watch": True}).err == 0
        assert raw.call("exists", {"path": "/mv/born", "watch": True}).err == -101
        raw_sid, raw_pw, raw_zxid = raw.session_id, raw.passwd, raw.last_zxid

        n = len(log.states)
        ens.kill9(first)
        raw.close_socket()
        log.wait_for(KazooState.SUSPENDED, after=n)
        log.wait_for(KazooState.CONNECTED, after=n)
        assert KazooState.LOST not in log.states[n:], log.states
        assert c.client_id == (sid, passwd)
        assert ports.get(peer_port(c)) == second
        lc.sync("/mv/eph")
        st = lc.exists("/mv/eph")
        assert st is not None and st.ephemeralOwner == sid
        assert until_ok(lambda: c.get("/mv/eph"))[0] == b"e"

        def reattach():
            return Session("127.0.0.1", ens.member(second).client_port, timeout_ms=10000,
                           session_id=raw_sid, passwd=raw_pw, last_zxid=raw_zxid,
                           read_only=False)
        raw = None
        raw = until_ok(reattach, what="re-attaching the raw session", retry_on=(OSError, ProtocolError))
        assert raw.session_id == raw_sid, "the raw session was not re-attached"
        r = raw.call(OP["setWatches"], {"relativeZxid": raw_zxid, "data": ["/mv/eph"],
                                        "exist": ["/mv/born"], "child": []})
        assert r.err == 0 and r.events == [], r

        # watches set before the move fire on changes made through another member
        lc.set("/mv/eph", b"changed")
        with seen_cond:
            assert seen_cond.wait_for(lambda: b"changed" in seen, timeout=WAIT), seen
        ev = raw.wait_event(timeout=WAIT)
        assert (ev.type, ev.path) == (3, "/mv/eph")
        lc.create("/mv/born", b"")
        ev = raw.wait_event(timeout=WAIT)
        assert (ev.type, ev.path) == (1, "/mv/born")
    finally:
        if raw is not None:
            raw.close_socket()
    # the session still owns its ephemeral on the killed member once it is back
    assert ens.restart(first) == "follower"
    fc = client(make_client, ens.member(first))
    fc.sync("/mv/eph")
    assert fc.exists("/mv/eph").ephemeralOwner == sid
    c.stop()
    lc.sync("/mv")
    assert lc.exists("/mv/eph") is None


# --------------------------------------------------------------- 8. recipes

def test_recipes_across_leader_failover(make_ensemble, make_client):
    ens = make_ensemble(3)
    hosts = ens.hosts
    a, b, cl, d, e = (client(make_client, hosts, timeout=15.0, retry=True) for _ in range(5))
    for x in (a, b, cl, d, e):
        x.ensure_path("/r")

    # Lock: a holds it, b waits
    lock_a = a.Lock("/r/lock", "a")
    assert lock_a.acquire(timeout=WAIT)
    lock_b = b.Lock("/r/lock", "b")
    b_got = threading.Event()
    threading.Thread(target=lambda: lock_b.acquire(timeout=2 * WAIT) and b_got.set(),
                     daemon=True).start()
    # Election: cl leads, d waits
    cl_leads, cl_done, d_leads = threading.Event(), threading.Event(), threading.Event()

    def cl_leader():
        cl_leads.set()
        cl_done.wait(2 * WAIT)

    threading.Thread(target=lambda: cl.Election("/r/election", "cl").run(cl_leader),
                     daemon=True).start()
    assert cl_leads.wait(WAIT)
    threading.Thread(target=lambda: d.Election("/r/election", "d").run(d_leads.set),
                     daemon=True).start()
    # wait until both contenders are queued (2 lock nodes, 2 election nodes)
    for path in ("/r/lock", "/r/election"):
        poll_until(lambda: len(a.get_children(path)) == 2, what=f"two contenders in {path}")
    assert not b_got.is_set() and not d_leads.is_set()
    # Barrier: up before the failover (kazoo drops its one-shot watches on a connection
    # loss and Barrier.wait does not re-arm, so the waiter starts after the failover)
    barrier = a.Barrier("/r/barrier")
    barrier.create()
    assert e.Barrier("/r/barrier").wait(0.1) is False
    # Queue: one item before
    q = a.Queue("/r/queue")
    q.put(b"before")

    leader = ens.leader_sid()
    ens.kill9(leader)
    ens.wait_for_quorum(WAIT)

    # everything goes on with the new leader
    q.put(b"after")
    assert d.Queue("/r/queue").get() == b"before"
    assert e.Queue("/r/queue").get() == b"after"
    assert e.Queue("/r/queue").get() is None
    assert not b_got.is_set()
    lock_a.release()
    assert b_got.wait(WAIT), "the waiting Lock contender did not get the lock"
    lock_b.release()
    assert lock_a.acquire(timeout=WAIT)
    lock_a.release()
    assert not d_leads.is_set()
    cl_done.set()
    assert d_leads.wait(WAIT), "the second Election contender's leader function did not run"
    passed = []
    threading.Thread(target=lambda: passed.append(e.Barrier("/r/barrier").wait(2 * WAIT)),
                     daemon=True).start()
    barrier.remove()
    poll_until(lambda: passed, what="the barrier waiter passing")
    assert passed == [True]
    # the old leader comes back and sees the same state
    assert ens.restart(leader) == "follower"
    oc = client(make_client, ens.member(leader))
    oc.sync("/r")
    assert oc.get_children("/r/lock") == [] and oc.exists("/r/barrier") is None


# --------------------------------------------------------------- 9. mixed with ZooKeeper

def hash_line(ens, sid):
    """The newest (zxid, digest) line of `hash`, as both servers print it."""
    lines = [l for l in four_letter_text(ens, sid, "hash").splitlines() if ":" in l]
    return lines[-1] if lines else None


def wait_equal_digests(ens, sids=None, timeout=WAIT):
    """Poll until every member's newest `hash` line (zxid: digest) is the same; on timeout
    fail with every member's whole `hash` answer and zxid."""
    sids = sids or ens.sids
    try:
        poll_until(lambda: len({hash_line(ens, s) for s in sids}) == 1, timeout=timeout,
                   what="equal digests")
    except AssertionError as e:
        detail = "\n".join(f"member {s} ({ens.kind_of(s)}, {ens.mode(s)}, zxid "
                           f"{zxid_of(ens.srvr(s)):#x}) hash:\n{four_letter_text(ens, s, 'hash')}"
                           for s in sids)
        raise AssertionError(f"{e}:\n{detail}") from None


def four_letter_text(ens, sid, word):
    from zkraw import four_letter
    return four_letter("127.0.0.1", ens.member(sid).client_port, word)


ZK_GOT_SNAP = "Getting a snapshot from leader"          # a ZooKeeper learner's log (INFO)
ZOOID_GOT_SNAP = "SNAP: loaded the leader's snapshot"    # zooid's, at its default level


def assert_took_snap(ens, sid, label):
    """Member `sid`'s log since its last start says it loaded a SNAP from its leader."""
    if ORACLE_ONLY and sid not in ens.oracle_sids:
        return
    want = ZK_GOT_SNAP if ens.kind_of(sid) in ORACLE_KINDS else ZOOID_GOT_SNAP
    log = ens.log_since_start(sid)
    assert want in log, f"{label}: member {sid} ({ens.kind_of(sid)}) did not log {want!r}:\n{log[-3000:]}"


@pytest.mark.parametrize("oracle", ["oracle", "oracle39"])
def test_mixed_ensemble_with_zookeeper(make_ensemble, make_client, oracle):
    """zooid members and Apache ZooKeeper (3.8.0 or 3.9.3) members in one ensemble: a zooid
    leader with ZooKeeper followers (one wiped and synced by SNAP from zooid), then a
    ZooKeeper leader with the zooid member following (back by DIFF after a kill -9, then
    wiped and synced by SNAP from the ZooKeeper leader)."""
    # At equal zxids the highest sid wins the election: server.3 (zooid) leads.
    ens = make_ensemble(3, oracle_sids=(1, 2), oracle_kind=oracle)
    assert ens.kind_of(3) not in ORACLE_KINDS or ORACLE_ONLY
    assert ens.kind_of(1) == ens.kind_of(2) == oracle
    assert ens.wait_for_quorum(WAIT) == 3
    cs = {sid: client(make_client, ens.member(sid)) for sid in ens.sids}
    for sid, c in cs.items():
        c.create(f"/mix{sid}", f"from {sid}".encode())
        for i in range(50):
            c.create(f"/mix{sid}/n{i:02d}", b"x" * 40)
        c.create(f"/eph{sid}", b"", ephemeral=True)
    trees = {sid: (c.sync("/"), dump_tree(c))[1] for sid, c in cs.items()}
    assert len(trees[3]) == 1 + 3 * 51 + 3  # /, three /mixN with 50 children each, ephemerals
    for sid in (1, 2):
        assert trees[sid] == trees[3], f"member {sid} differs from the zooid leader"
    wait_equal_digests(ens)

    # a ZooKeeper follower that lost its dataDir is synced by SNAP from the zooid leader
    cs[1].stop()
    ens.stop(1)
    ens.wipe(1)
    cs[3].create("/while-wiped", b"w")
    assert ens.restart(1) == "follower"
    assert_took_snap(ens, 1, "wiped ZooKeeper follower of the zooid leader")
    c1 = client(make_client, ens.member(1))
    c1.sync("/")
    cs[3].sync("/")
    assert dump_tree(c1) == dump_tree(cs[3])

    # kill -9 the zooid leader: a ZooKeeper member leads, and zooid comes back as its follower
    for c in (cs[3],):
        c.stop()
    ens.kill9(3)
    new_leader = ens.wait_for_quorum(WAIT)
    assert new_leader in (1, 2)
    until_ok(lambda: cs[2].create("/after-kill", b"k"), what="write after the kill")
    assert ens.restart(3) == "follower"
    c3 = client(make_client, ens.member(3))
    c3.sync("/")
    cs[2].sync("/")
    assert c3.get("/after-kill")[0] == b"k"
    assert dump_tree(c3) == dump_tree(cs[2])
    # and a write through the zooid follower reaches the ZooKeeper members
    c3.create("/via-zooid-follower", b"f")
    c1.sync("/")
    assert c1.get("/via-zooid-follower")[0] == b"f"

    # a zooid follower that lost its dataDir is synced by SNAP from the ZooKeeper leader
    c3.stop()
    ens.stop(3)
    ens.wipe(3)
    until_ok(lambda: cs[2].create("/while-zooid-wiped", b"z"), what="write while zooid is down")
    assert ens.restart(3) == "follower"
    assert ens.leader_sid() == new_leader
    assert_took_snap(ens, 3, f"wiped zooid follower of the ZooKeeper {oracle} leader")
    c3 = client(make_client, ens.member(3))
    c3.sync("/")
    cs[2].sync("/")
    assert c3.get("/while-zooid-wiped")[0] == b"z"
    assert dump_tree(c3) == dump_tree(cs[2])
    c3.create("/via-resynced-zooid", b"r")
    c1.sync("/")
    assert c1.get("/via-resynced-zooid")[0] == b"r"
    # every member ends with the same zxid and tree (`hash` is no use after the wipes: it
    # lists a digest every 128 txns a member applied itself, and a SNAP applies none)
    poll_until(lambda: len({zxid_of(ens.srvr(s)) for s in ens.sids}) == 1, what="equal zxids")
    final = {sid: (c.sync("/"), dump_tree(c))[1] for sid, c in ((1, c1), (2, cs[2]), (3, c3))}
    for sid in (1, 3):
        assert final[sid] == final[2], f"member {sid} differs from member 2 at the end"


# --------------------------------------------------------------- 10. rolling replacement

ROLL_MAX_WRITES = 20000   # the writer's bound (it is paced, so far fewer are written)
ROLL_PACE_S = 0.005       # pause between two writes: load, not synchronisation
ROLL_STEP_WRITES = 25     # acknowledged writes the writer must make after each step


class RollWriter(threading.Thread):
    """Creates /roll/w000000, w000001, ... through a kazoo client on every member, one at a
    time; a create that failed on a connection error is retried under the same name (a
    NodeExists then means the lost reply's create was done). Records what was acknowledged."""

    def __init__(self, c):
        super().__init__(daemon=True, name="roll-writer")
        self.c = c
        self.acked = []
        self.failures = 0
        self.error = None
        self.stop_evt = threading.Event()
        self.cond = threading.Condition()

    def run(self):
        pause = threading.Event()
        try:
            for i in range(ROLL_MAX_WRITES):
                path = f"/roll/w{i:06d}"
                for _attempt in range(100000):
                    if self.stop_evt.is_set():
                        return
                    try:
                        self.c.create(path, str(i).encode())
                        break
                    except NodeExistsError:
                        break
                    except TRANSIENT:
                        self.failures += 1
                        pause.wait(0.05)  # retry pacing while the client reconnects
                with self.cond:
                    self.acked.append(path)
                    self.cond.notify_all()
                pause.wait(ROLL_PACE_S)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = repr(e)
            with self.cond:
                self.cond.notify_all()

    def snapshot(self):
        with self.cond:
            return list(self.acked)

    def wait_more(self, n, what, timeout=WAIT):
        """Wait until `n` more writes than now are acknowledged."""
        with self.cond:
            target = len(self.acked) + n
            ok = self.cond.wait_for(lambda: len(self.acked) >= target or self.error
                                    or not self.is_alive(), timeout=timeout)
            have = len(self.acked)
        assert self.error is None, f"the writer failed: {self.error}"
        assert ok and have >= target, (f"{what}: the writer has {have} acknowledged writes, "
                                       f"{target} expected within {timeout}s "
                                       f"({self.failures} failed attempts)")


def test_rolling_replacement_zookeeper39_to_zooid_and_back(make_ensemble, make_client, capsys):
    """A live ZooKeeper 3.9.3 ensemble under a continuous writer: each member in turn is
    stopped and zooid started on its zoo.cfg, myid, dataDir and ports; then each in turn
    goes back to 3.9.3. After each step the ensemble serves (the writer goes on, a write
    through the replaced member reads back everywhere) and every acknowledged write is on
    every member; at the end all members hold the same tree at the same zxid."""
    t_start = time.monotonic()
    ens = make_ensemble(3, kind="oracle39")
    assert [ens.kind_of(s) for s in ens.sids] == ["oracle39"] * 3
    setup = client(make_client, ens.hosts, retry=True)
    setup.create("/roll", b"")
    setup.create("/roll-step", b"")
    writer = RollWriter(client(make_client, ens.hosts))
    writer.start()
    steps = []

    zooid_since = {}  # sid -> the member's snapshot files when zooid started on its dataDir
    zooid_snaps = []

    def check_step(n, sid, kind):
        label = f"step {n} (member {sid} -> {kind})"
        was_leader = ens.mode(sid) == "leader"
        ens.stop(sid)
        data_dir = ens.member(sid).data_dir
        if sid in zooid_since and not ORACLE_ONLY:
            # zooid kept the layout of the 3.9.3 dataDir it ran on (3.9.3 is to load them)
            written = written_between(zooid_since.pop(sid), snapshot_state(data_dir))
            assert written, f"{label}: zooid wrote no snapshot on member {sid}'s dataDir"
            zooid_snaps.extend(check_layout(written, "3.9", f"zooid member {sid} on 3.9.3's dataDir"))
        # the other two go on serving (a new leader first if this one led)
        ens.wait_for_quorum(WAIT)
        writer.wait_more(5, f"{label}: while member {sid} is down")
        if kind == "zooid":
            zooid_since[sid] = snapshot_state(data_dir)
        mode = ens.replace(sid, kind)
        assert mode in ("leader", "follower"), f"{label}: mode {mode}"
        leader = ens.wait_for_quorum(WAIT)
        # the ensemble serves: the writer goes on, and a write through the new process
        writer.wait_more(ROLL_STEP_WRITES, label)
        pinned = {s: client(make_client, ens.member(s)) for s in ens.sids}
        until_ok(lambda: pinned[sid].create(f"/roll-step/{n}", label.encode()),
                 what=f"{label}: write through member {sid}")
        acked = writer.snapshot()
        for s, c in pinned.items():
            assert synced_get(c, f"/roll-step/{n}") == label.encode(), f"{label}: member {s}"
            have = synced_children(c, "/roll")
            missing = [p for p in acked if p.rsplit("/", 1)[1] not in have]
            assert not missing, (f"{label}: member {s} ({ens.kind_of(s)}) lacks {len(missing)} of "
                                 f"{len(acked)} acknowledged writes, e.g. {missing[:5]}\n{ens.log_tail()}")
            c.stop()
        kinds = "".join({"zooid": "Z", "oracle": "8", "oracle39": "9"}[ens.kind_of(s)]
                        for s in ens.sids)
        steps.append(f"{kinds} leader {leader}{' (the old leader replaced)' if was_leader else ''} "
                     f"({len(acked)} acked)")

    try:
        n = 0
        writer.wait_more(ROLL_STEP_WRITES, "the writer starting")
        for kind in ("zooid", "oracle39"):
            for sid in ens.sids:
                n += 1
                check_step(n, sid, kind)
    finally:
        writer.stop_evt.set()
        writer.join(timeout=WAIT)
    assert not writer.is_alive(), "the writer did not stop"
    assert writer.error is None, f"the writer failed: {writer.error}"
    writer.c.stop()
    setup.stop()

    # all members agree: the same zxid, the same tree (data and Stat), every acknowledged write
    assert [ens.kind_of(s) for s in ens.sids] == ["oracle39"] * 3
    ens.wait_for_quorum(WAIT)
    poll_until(lambda: len({zxid_of(ens.srvr(s)) for s in ens.sids}) == 1, what="equal zxids")
    trees = {}
    for s in ens.sids:
        c = client(make_client, ens.member(s))
        c.sync("/")
        trees[s] = dump_tree(c)
        c.stop()
    acked = writer.snapshot()
    ref = trees[ens.leader_sid()]
    missing = [p for p in acked if p not in ref]
    assert not missing, f"the final tree lacks {len(missing)} acknowledged writes, e.g. {missing[:5]}"
    for s, tree in trees.items():
        diff = sorted(set(tree) ^ set(ref)) + [p for p in ref if p in tree and tree[p] != ref[p]]
        assert not diff, f"member {s} differs from the leader at {diff[:5]}"
    zxids = {s: zxid_of(ens.srvr(s)) for s in ens.sids}
    assert len(set(zxids.values())) == 1, zxids
    report(capsys, f"rolling replacement 3.9.3 -> zooid -> 3.9.3: {'; '.join(steps)}; "
                   f"{len(acked)} acknowledged writes ({writer.failures} failed attempts), "
                   f"zooid wrote {len(zooid_snaps)} snapshots in the 3.9 layout, "
                   f"{time.monotonic() - t_start:.1f}s")


@pytest.mark.parametrize("kind", ["zooid", "oracle39"])
@pytest.mark.parametrize("all_ips", [True, False], ids=["all-ips", "configured-ip"])
def test_quorum_listen_on_all_ips(kind, all_ips, tmp_path):
    """quorumListenOnAllIPs=true: the election and quorum ports listen on every address
    (here 127.0.0.2 reaches a member configured on 127.0.0.1); false: only the configured
    one."""
    import socket
    ens = Ensemble(str(tmp_path), kind=kind,
                   extra_cfg={"quorumListenOnAllIPs": str(all_ips).lower()}).start(3)
    try:
        # (ZooKeeper opens the quorum port only while it leads.)
        leader = ens.member(ens.leader_sid())
        for port in (ens.member(1).election_port, leader.election_port, leader.quorum_port):
            try:
                socket.create_connection(("127.0.0.2", port), timeout=5).close()
                reached = True
            except OSError:
                reached = False
            assert reached == all_ips, (port, reached)
    finally:
        ens.stop_all()


@pytest.mark.parametrize("kind", ["zooid", "oracle39"])
def test_multiple_addresses_fail_over(kind, tmp_path):
    """multiAddress.enabled: every member on two networks (127.0.2.x and 127.0.1.x). With
    the first network dropped (nftables), killing the leader still elects a new one over the
    second, writes go on, and the old leader rejoins."""
    import subprocess
    if os.geteuid() != 0:
        pytest.fail("this test drops a loopback network with nftables: run the tests as root")
    table = f"zmulti{os.getpid()}"
    # ZooKeeper reads multiAddress.enabled only as a system property when it parses the
    # server lines; zooid takes it either way.
    ens = Ensemble(str(tmp_path), kind=kind, peer_hosts=("127.0.2.1", "127.0.1.1"),
                   extra_cfg={"multiAddress.enabled": "true", "cnxTimeout": "1000",
                              "multiAddress.reachabilityCheckTimeoutMs": "500"},
                   oracle_props={"zookeeper.multiAddress.enabled": "true"})
    try:
        ens.start(3)
        from kazoo.client import KazooClient
        # A session that outlives the failover: finding the first network silent takes a
        # few seconds (TCP keepalive and user timeout), then the election runs.
        zk = KazooClient(hosts=ens.hosts, timeout=30.0)
        zk.start(timeout=30)
        try:
            zk.create("/before", b"1")
            for rule in (f"add table inet {table}",
                         f"add chain inet {table} out {{ type filter hook output priority 0 ; }}",
                         f"add rule inet {table} out ip daddr 127.0.2.0/24 drop"):
                subprocess.run(["nft", rule], check=True)
            old = ens.leader_sid()
            ens.kill9(old)
            ens.wait_for_quorum(timeout=60)
            assert ens.leader_sid() != old
            zk.create("/during", b"2")
            ens.restart(old, timeout=60)
            c = KazooClient(hosts=ens.member(old).hosts, timeout=10.0)
            c.start(timeout=30)
            try:
                c.sync("/")
                assert c.get("/before")[0] == b"1" and c.get("/during")[0] == b"2"
            finally:
                c.stop()
                c.close()
        finally:
            zk.stop()
            zk.close()
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True)
        ens.stop_all()
