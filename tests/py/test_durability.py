"""Durability: crashes, moving a dataDir between ZooKeeper and zooid, ZooKeeper's
own file tools on zooid's files, and a full disk.

Every server here runs on a dataDir of the test's own (kept between starts). The move and
tools tests run with each oracle: ZooKeeper 3.8.0 ("oracle") and 3.9.3 ("oracle39"), whose
snapshots differ in their trailer (3.9 appends the last processed zxid and a third
checksum); zooid writes the layout of the dataDir's newest snapshot unless zoo.cfg's
serializeLastProcessedZxid.enabled says which.

Env:
  ZOOID_CRASH_ROUNDS   SIGKILL rounds in the crash test (default 8)
  ZOOID_CRASH_SEED     seed of the crash test's RNG (default: from the clock; printed)
  ZOOID_CRASH_WRITERS  writer threads (default 4)
  ZOOID_CRASH_SNAPCOUNT  snapCount of the crash test's server (default 1000, so that
                       crashes also hit log rolls and snapshots; "" = server default)
  ZOOID_DISKFULL_MB    size of the tmpfs in the disk-full test (default 4)
"""

import contextlib
import os
import random
import re
import signal
import subprocess
import tempfile
import threading
import time
import zlib

import pytest

from conftest import (ORACLE_ONLY, ORACLE_VERSIONS, SUPER_PASSWORD, SUPER_USER, ZOOID_BIN,
                      oracle_tool_classpath, server_on_datadir, start_server_on_datadir)
from zkraw import (ACL, ERR, OP, OPEN_ACL, PERM_ALL, PERM_READ, READ_ACL, ProtocolError,
                   Session, digest_id, four_letter)

CRASH_ROUNDS = int(os.environ.get("ZOOID_CRASH_ROUNDS", "8"))
CRASH_SEED = int(os.environ.get("ZOOID_CRASH_SEED", str(int(time.time() * 1000) % 1_000_000)))
CRASH_WRITERS = int(os.environ.get("ZOOID_CRASH_WRITERS", "4"))
CRASH_SNAPCOUNT = os.environ.get("ZOOID_CRASH_SNAPCOUNT", "1000")
DISKFULL_MB = int(os.environ.get("ZOOID_DISKFULL_MB", "4"))

TOOL_TIMEOUT = 120
CFG = {"tickTime": "2000"}   # forceSync stays at its default (yes)
NO_REAP_MS = 3_600_000       # no container/TTL reaping during the move test
SESSION_TIMEOUT_MS = 30000
PIPELINE_WINDOW = 256

ALICE = digest_id("alice", "alicepw")

# lines for the terminal summary (conftest.pytest_terminal_summary prints them)
summary = []

IO_ERRORS = (OSError, ProtocolError, TimeoutError)


# ------------------------------------------------------------------ helpers

def raw(server, **kw):
    kw.setdefault("timeout_ms", SESSION_TIMEOUT_MS)
    kw.setdefault("io_timeout", 15.0)
    return Session(server.host, server.port, **kw)


def super_session(server):
    s = raw(server)
    r = s.auth("digest", f"{SUPER_USER}:{SUPER_PASSWORD}".encode())
    assert r.err == 0, f"{server!r}: super digest auth failed: {ERR.get(r.err, r.err)}"
    return s


def pipelined(sess, requests, window=PIPELINE_WINDOW):
    """Send `requests` [(op, args)] with up to `window` outstanding; replies in order."""
    replies = []
    for i in range(0, len(requests), window):
        chunk = requests[i:i + window]
        sent = [(OP[op], sess.send(OP[op], args)) for op, args in chunk]
        replies.extend(sess.recv_reply(op, xid) for op, xid in sent)
    return replies


def ok(reply, what):
    assert reply.err == 0, f"{what}: {ERR.get(reply.err, reply.err)}"
    return reply


def dump_tree(server, max_nodes=200_000):
    """{path: (data, Stat, ACL list)} for every node, read as the super user."""
    out = {}
    with contextlib.closing(_Closer(super_session(server))) as c:
        s = c.sess
        todo = ["/"]
        while todo:
            assert len(out) < max_nodes, f"{server!r}: more than {max_nodes} nodes"
            path = todo.pop()
            d, a, ch = pipelined(s, [("getData", {"path": path}), ("getACL", {"path": path}),
                                     ("getChildren", {"path": path})])
            ok(d, f"{server!r} getData {path}")
            ok(a, f"{server!r} getACL {path}")
            ok(ch, f"{server!r} getChildren {path}")
            out[path] = (d.body["data"], d.body["stat"], [tuple(x) for x in a.body["acl"]])
            base = "" if path == "/" else path
            todo.extend(f"{base}/{name}" for name in ch.body["children"])
    return out


class _Closer:
    def __init__(self, sess):
        self.sess = sess

    def close(self):
        try:
            self.sess.close()
        except IO_ERRORS:
            self.sess.close_socket()


def diff_dumps(a, b, name_a, name_b, limit=15):
    """Human-readable differences between two dumps ('' when equal)."""
    lines = []
    for p in sorted(set(a) - set(b))[:limit]:
        lines.append(f"  {p}: only in {name_a}")
    for p in sorted(set(b) - set(a))[:limit]:
        lines.append(f"  {p}: only in {name_b}")
    for p in sorted(set(a) & set(b)):
        if len(lines) >= 3 * limit:
            lines.append("  ...")
            break
        (da, sa, aa), (db, sb, ab) = a[p], b[p]
        if da != db:
            lines.append(f"  {p}: data {da!r} ({name_a}) != {db!r} ({name_b})")
        for f in sa._fields:
            va, vb = getattr(sa, f), getattr(sb, f)
            if va != vb:
                lines.append(f"  {p}: {f} {_fmt(f, va)} ({name_a}) != {_fmt(f, vb)} ({name_b})")
        if aa != ab:
            lines.append(f"  {p}: acl {aa} ({name_a}) != {ab} ({name_b})")
    return "\n".join(lines)


def _fmt(field, v):
    return hex(v) if field in ("czxid", "mzxid", "pzxid", "ephemeralOwner") else str(v)


def assert_same_tree(a, b, name_a, name_b, context):
    d = diff_dumps(a, b, name_a, name_b)
    assert not d, f"{context}: trees differ ({len(a)} vs {len(b)} nodes):\n{d}"


def run(cmd, timeout=TOOL_TIMEOUT):
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout, text=True, errors="replace")
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{' '.join(cmd)}: no exit within {timeout}s") from e


def zooid_cli(*args):
    return run([ZOOID_BIN, *args])


def zk_tool(main_class, *args, kind="oracle"):
    """Run a ZooKeeper tool class of the oracle `kind` ("oracle" 3.8.0, "oracle39" 3.9.3)."""
    return run(["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
                "-cp", oracle_tool_classpath(kind), main_class, *args])


def show(proc, n=3000):
    return (f"exit {proc.returncode}\n--- stdout (tail) ---\n{proc.stdout[-n:]}"
            f"\n--- stderr (tail) ---\n{proc.stderr[-n:]}")


def check_datadir(datadir):
    """`zooid datadir check DIR` must exit 0 and say OK."""
    if ORACLE_ONLY:
        return
    p = zooid_cli("datadir", "check", datadir)
    assert p.returncode == 0 and re.search(r"^OK\s*$", p.stdout, re.M), \
        f"zooid datadir check {datadir} failed: {show(p)}"


def datafiles(datadir, prefix):
    """version-2 files named prefix.<hex zxid>, ordered by zxid."""
    d = os.path.join(datadir, "version-2")
    names = [n for n in os.listdir(d) if re.fullmatch(prefix + r"\.[0-9a-fA-F]+", n)]
    return [os.path.join(d, n) for n in sorted(names, key=lambda n: int(n.split(".")[1], 16))]


SEAL_PATH = b"\x00\x00\x00\x01/"   # the "/" string after each checksum of a snapshot
SEAL_LEN = 8 + len(SEAL_PATH)          # the checksum (a long) and that string
DUMP_LAYOUT = re.compile(r"^\s*last processed zxid\s+(?:absent \(ZooKeeper (3\.8) layout\)"
                         r"|(0x[0-9a-fA-F]+) \(ZooKeeper (3\.9) layout\))\s*$", re.M)


def _seal_ends_at(data, end):
    """True when data[:end] ends with a seal whose Adler32 covers everything before it."""
    if end < SEAL_LEN or data[end - len(SEAL_PATH):end] != SEAL_PATH:
        return False
    val = int.from_bytes(data[end - SEAL_LEN:end - len(SEAL_PATH)], "big")
    return val == zlib.adler32(data[:end - SEAL_LEN])


def snapshot_trailer(path):
    """The layout a (plain) snapshot file ends with, read from its bytes, independently of
    zooid: ("3.9", last processed zxid) when a sealed long follows a sealed section (3.9:
    ... seal, digest, seal, last processed zxid, seal), else ("3.8", None). The final seal
    must check in both."""
    with open(path, "rb") as f:
        data = f.read()
    assert _seal_ends_at(data, len(data)), f"{path}: the last 13 bytes are no valid seal"
    end = len(data) - SEAL_LEN - 8
    if _seal_ends_at(data, end):
        return "3.9", int.from_bytes(data[end:end + 8], "big", signed=True)
    return "3.8", None


def zooid_snapshot_layout(path):
    """("3.8", None) or ("3.9", zxid) from `zooid snapshot dump`'s "last processed zxid" line."""
    p = zooid_cli("snapshot", "dump", path)
    assert p.returncode == 0, f"zooid snapshot dump {path}: {show(p)}"
    m = DUMP_LAYOUT.search(p.stdout)
    assert m, f"zooid snapshot dump {path}: no 'last processed zxid' line\n{show(p, 2000)}"
    return ("3.8", None) if m.group(1) else ("3.9", int(m.group(2), 16))


def snapshot_state(datadir):
    """{snapshot path: (size, mtime_ns)}, to tell which files a server start wrote."""
    out = {}
    for path in datafiles(datadir, "snapshot"):
        st = os.stat(path)
        out[path] = (st.st_size, st.st_mtime_ns)
    return out


def written_between(before, after):
    """Snapshot files new or changed between two snapshot_state() results, oldest first."""
    return [p for p in after if before.get(p) != after[p]]


def check_layout(paths, want, writer):
    """Each snapshot in `paths` ends with the `want` ("3.8"/"3.9") trailer, by its bytes and
    by `zooid snapshot dump`; a 3.9 trailer's zxid is at least the file name's. Returns
    [(name, layout, zxid)]."""
    found = []
    for path in paths:
        name = os.path.basename(path)
        layout, zxid = snapshot_trailer(path)
        found.append((name, layout, zxid))
        assert layout == want, (f"{writer} wrote {name} in the ZooKeeper {layout} layout, expected "
                                f"the {want} layout (bytes at the end: {open(path, 'rb').read()[-60:].hex()})")
        if layout == "3.9":
            file_zxid = int(name.split(".")[1], 16)
            assert zxid >= file_zxid, f"{name}: last processed zxid {zxid:#x} < its name's {file_zxid:#x}"
        if not ORACLE_ONLY:
            assert zooid_snapshot_layout(path) == (layout, zxid), \
                f"zooid snapshot dump {name} disagrees with its bytes: {(layout, zxid)}"
    return found


def sigkill(server):
    """kill -9 the server's pid and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(server.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="zt-dur-") as d:
        yield d


# -------------------------------------------------------- 1. crash (SIGKILL)

class Writer(threading.Thread):
    """Pipelined creates of /crash/r<round>/w<t>-<n> (data str(n)) and setData of a
    counter /crash/r<round>/c<t>; records what the server acknowledged."""

    def __init__(self, server, rnd, t, killed, stop, deadline, max_writes=1_000_000, window=16):
        super().__init__(daemon=True, name=f"crash-writer-{t}")
        self.server, self.rnd, self.t = server, rnd, t
        self.killed, self.stop_evt, self.deadline = killed, stop, deadline
        self.max_writes, self.window = max_writes, window
        self.parent = f"/crash/r{rnd}"
        self.counter = f"{self.parent}/c{t}"
        self.acked = []            # n of acknowledged creates
        self.sent_n = -1           # highest n sent
        self.counter_acked = None  # last acknowledged counter value
        self.counter_sent = None   # highest counter value sent
        self.error = None          # a problem that must fail the test
        self.ended_by = None

    def node(self, n):
        return f"{self.parent}/w{self.t}-{n}"

    def run(self):
        try:
            self._run()
        except IO_ERRORS as e:
            self.ended_by = f"{type(e).__name__}: {e}"
            if not self.killed.is_set():
                self.error = f"writer {self.t} lost its connection before the SIGKILL: {self.ended_by}"
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = f"writer {self.t}: {type(e).__name__}: {e}"

    def _run(self):
        s = Session(self.server.host, self.server.port, timeout_ms=SESSION_TIMEOUT_MS, io_timeout=10.0)
        try:
            r = s.call("create", {"path": self.counter, "data": b"0"})
            if r.err != 0:
                self.error = f"create {self.counter}: {ERR.get(r.err, r.err)}"
                return
            self.counter_acked = self.counter_sent = 0
            n, value, writes = 0, 0, 0
            while (not self.stop_evt.is_set() and writes < self.max_writes
                   and time.monotonic() < self.deadline):
                batch = []
                for k in range(self.window):
                    if k % 4 == 3:
                        value += 1
                        self.counter_sent = value
                        batch.append(("setData", value,
                                      s.send(OP["setData"], {"path": self.counter,
                                                             "data": str(value).encode()})))
                    else:
                        self.sent_n = n
                        batch.append(("create", n, s.send(OP["create"], {"path": self.node(n),
                                                                           "data": str(n).encode()})))
                        n += 1
                for kind, v, xid in batch:
                    r = s.recv_reply(OP[kind], xid)
                    if r.err != 0:
                        self.error = f"{kind} #{v} by writer {self.t}: {ERR.get(r.err, r.err)}"
                        return
                    writes += 1
                    if kind == "create":
                        self.acked.append(v)
                    else:
                        self.counter_acked = v
            self.ended_by = "stopped"
        finally:
            s.close_socket()


def check_crash_state(server, rnd, writers_by_round, known, seed):
    """After a restart: every acknowledged write (and everything a recovered server
    already showed) is there; nothing appears that was never sent."""
    problems = []
    checked = 0
    with contextlib.closing(_Closer(raw(server))) as c:
        s = c.sess
        for r in range(rnd + 1):
            parent = f"/crash/r{r}"
            ch = s.call("getChildren", {"path": parent})
            if ch.err != 0:
                problems.append(f"{parent}: getChildren {ERR.get(ch.err, ch.err)} (created and acknowledged)")
                continue
            children = set(ch.body["children"])
            writers = writers_by_round[r]
            # acknowledged creates
            for w in writers:
                missing = [n for n in w.acked if f"w{w.t}-{n}" not in children]
                checked += len(w.acked)
                if missing:
                    problems.append(f"round {r} writer {w.t}: {len(missing)} of {len(w.acked)} acknowledged "
                                    f"creates missing, e.g. {[w.node(n) for n in missing[:5]]} "
                                    f"(last acknowledged n={max(w.acked)})")
            # nodes seen after an earlier restart must still be there
            lost = sorted(known.get(r, set()) - children)
            if lost:
                problems.append(f"round {r}: {len(lost)} nodes served after an earlier restart are gone, "
                                f"e.g. {lost[:5]}")
            # nothing that was never sent; data of new nodes (all on the last round)
            sent_n = {w.t: w.sent_n for w in writers}
            to_read = []
            for name in sorted(children):
                m = re.fullmatch(r"w(\d+)-(\d+)", name)
                if m:
                    t, n = int(m.group(1)), int(m.group(2))
                    if t not in sent_n or n > sent_n[t]:
                        problems.append(f"{parent}/{name} exists but was never sent")
                    elif name not in known.get(r, set()) or rnd == r:
                        to_read.append((name, str(n).encode()))
                elif not re.fullmatch(r"c\d+", name):
                    problems.append(f"{parent}/{name}: unexpected node")
            replies = pipelined(s, [("getData", {"path": f"{parent}/{name}"}) for name, _ in to_read])
            for (name, want), rep in zip(to_read, replies):
                if rep.err != 0 or rep.body["data"] != want:
                    got = ERR.get(rep.err, rep.err) if rep.err else rep.body["data"]
                    problems.append(f"{parent}/{name}: data {got!r}, expected {want!r}")
            known[r] = {n for n in children if n.startswith("w")}
            # counters: >= last acknowledged (and >= what a recovered server showed), <= last sent
            for w in writers:
                if w.counter_acked is None:
                    continue
                rep = s.call("getData", {"path": w.counter})
                checked += 1
                if rep.err != 0:
                    problems.append(f"{w.counter}: {ERR.get(rep.err, rep.err)} (its create was acknowledged)")
                    continue
                v = int(rep.body["data"])
                floor = max(w.counter_acked, known.get((r, w.t), 0))
                if not floor <= v <= w.counter_sent:
                    problems.append(f"{w.counter} = {v}: expected between {floor} (last acknowledged/seen) "
                                    f"and {w.counter_sent} (last sent)")
                known[(r, w.t)] = v
    assert not problems, (f"crash round {rnd} (seed {seed}), after restart on the same dataDir:\n  "
                          + "\n  ".join(problems[:30]) + f"\n--- server log ---\n{server.log_tail()}")
    return checked


def test_crash_loses_no_acknowledged_write(workdir):
    seed = CRASH_SEED
    rng = random.Random(seed)
    datadir = os.path.join(workdir, "crashdata")
    writers_by_round, known = {}, {}
    acked_total = checked_last = 0
    cfg = dict(CFG, snapCount=CRASH_SNAPCOUNT) if CRASH_SNAPCOUNT else CFG
    server = start_server_on_datadir("zooid", workdir, datadir, extra_cfg=cfg)
    try:
        with contextlib.closing(_Closer(raw(server))) as c:
            ok(c.sess.call("create", {"path": "/crash"}), "create /crash")
        for rnd in range(CRASH_ROUNDS):
            with contextlib.closing(_Closer(raw(server))) as c:
                ok(c.sess.call("create", {"path": f"/crash/r{rnd}"}), f"create /crash/r{rnd}")
            delay = rng.uniform(0.2, 1.5)
            killed, stop = threading.Event(), threading.Event()
            writers = [Writer(server, rnd, t, killed, stop, time.monotonic() + delay + 20)
                       for t in range(CRASH_WRITERS)]
            writers_by_round[rnd] = writers
            for w in writers:
                w.start()
            time.sleep(delay)  # the random moment of the crash: this is the test
            killed.set()
            sigkill(server)
            stop.set()
            for w in writers:
                w.join(timeout=30)
            assert not any(w.is_alive() for w in writers), f"round {rnd}: a writer did not stop"
            errors = [w.error for w in writers if w.error]
            assert not errors, f"round {rnd} (seed {seed}): " + "; ".join(errors) + \
                f"\n--- server log ---\n{server.log_tail()}"
            acked = sum(len(w.acked) + (w.counter_acked is not None) for w in writers)
            assert acked > 0, f"round {rnd}: no write acknowledged in {delay:.2f}s"
            acked_total += acked
            try:
                server = start_server_on_datadir("zooid", workdir, datadir, extra_cfg=cfg)
            except RuntimeError as e:
                raise AssertionError(f"round {rnd} (seed {seed}): restart after SIGKILL failed: {e}") from e
            checked_last = check_crash_state(server, rnd, writers_by_round, known, seed)
    finally:
        server.stop()
    check_datadir(datadir)
    n_snaps, n_logs = len(datafiles(datadir, "snapshot")), len(datafiles(datadir, "log"))
    line = (f"crash: {CRASH_ROUNDS} rounds, {acked_total} acknowledged writes checked "
            f"({checked_last} re-checked after the last restart; {n_snaps} snapshots, {n_logs} logs), seed {seed}")
    summary.append(line)
    print(line)


# ------------------------------------------ 2. dataDir moves ZooKeeper <-> zooid

def build_tree_oracle(s):
    """Phase A, on the oracle: every kind of node and of metadata change."""
    calls = [
        ("create", {"path": "/move", "data": b"top"}),
        ("create", {"path": "/move/empty", "data": b""}),
        ("create", {"path": "/move/null", "data": None}),
        ("create", {"path": "/move/binary", "data": bytes(range(256)) * 3}),
        ("create", {"path": "/move/a", "data": b"a"}),
        ("create", {"path": "/move/a/b", "data": b"ab"}),
        ("create", {"path": "/move/a/b/c", "data": b"abc"}),
        ("create", {"path": "/move/seq"}),
        ("create", {"path": "/move/seq/s-", "data": b"1", "flags": 2}),
        ("create", {"path": "/move/seq/s-", "data": b"2", "flags": 2}),
        ("create", {"path": "/move/seq/s-", "data": b"3", "flags": 2}),
        ("delete", {"path": "/move/seq/s-0000000001"}),
        ("create", {"path": "/move/alice", "data": b"secret",
                    "acl": [ACL(PERM_ALL, "digest", ALICE)]}),
        ("create", {"path": "/move/ro", "data": b"read only", "acl": READ_ACL}),
        ("createContainer", {"path": "/move/box", "data": b"container", "flags": 4}),
        ("create", {"path": "/move/box/item", "data": b"in the box"}),
        ("createContainer", {"path": "/move/box-empty", "flags": 4}),
        ("createTTL", {"path": "/move/ttl", "data": b"lives an hour", "flags": 5, "ttl": 3_600_000}),
        ("createTTL", {"path": "/move/ttlseq-", "data": b"ttl seq", "flags": 6, "ttl": 3_600_000}),
        ("setData", {"path": "/move/a", "data": b"a1"}),
        ("setData", {"path": "/move/a", "data": b"a2"}),
        ("setData", {"path": "/move/a", "data": b"a3", "version": 2}),
        ("setData", {"path": "/move/empty", "data": b""}),
        ("setACL", {"path": "/move/a/b", "acl": READ_ACL}),
        ("setACL", {"path": "/move/a/b", "acl": [ACL(PERM_ALL, "digest", ALICE),
                                                   ACL(PERM_READ, "world", "anyone")]}),
        ("create", {"path": "/move/doomed", "data": b"x"}),
        ("create", {"path": "/move/doomed/child", "data": b"y"}),
        ("delete", {"path": "/move/doomed/child"}),
        ("delete", {"path": "/move/doomed"}),
        ("multi", {"ops": [(OP["create"], {"path": "/move/m1", "data": b"multi", "acl": OPEN_ACL,
                                           "flags": 0}),
                           (OP["setData"], {"path": "/move/m1", "data": b"multi2", "version": 0}),
                           (OP["create"], {"path": "/move/m2", "data": b"", "acl": OPEN_ACL,
                                           "flags": 0}),
                           (OP["delete"], {"path": "/move/m2", "version": -1})]}),
    ]
    for op, args in calls:
        ok(s.call(op, args), f"oracle {op} {args.get('path', '')}")


def more_changes(s, tag):
    """Phase B/C: create, set, setACL, delete, multi, on whichever server holds D now."""
    calls = [
        ("create", {"path": f"/move/{tag}", "data": tag.encode()}),
        ("create", {"path": f"/move/{tag}/x", "data": b"\x00\x01\xfe\xff"}),
        ("create", {"path": f"/move/{tag}/s-", "flags": 2}),
        ("create", {"path": f"/move/{tag}/s-", "flags": 2}),
        ("create", {"path": "/move/seq/s-", "data": tag.encode(), "flags": 2}),
        ("setData", {"path": "/move/a/b/c", "data": f"abc-{tag}".encode()}),
        ("setData", {"path": "/move/binary", "data": bytes(reversed(range(256)))}),
        ("setACL", {"path": "/move/ro", "acl": [ACL(PERM_READ, "world", "anyone"),
                                                ACL(PERM_ALL, "digest", ALICE)]}),
        ("delete", {"path": "/move/seq/s-0000000002"}) if tag == "by-zooid" else
        ("delete", {"path": "/move/by-zooid/x"}),
        ("createContainer", {"path": f"/move/{tag}-box", "flags": 4}),
        ("create", {"path": f"/move/{tag}-box/kept", "data": b"k"}),
        ("createTTL", {"path": f"/move/{tag}-ttl", "data": b"t", "flags": 5, "ttl": 3_600_000}),
        ("multi", {"ops": [(OP["create"], {"path": f"/move/{tag}/m", "data": b"1", "acl": OPEN_ACL,
                                           "flags": 0}),
                           (OP["setData"], {"path": "/move/empty", "data": b"", "version": -1}),
                           (OP["check"], {"path": "/move", "version": 0})]}),
    ]
    for op, args in calls:
        ok(s.call(op, args), f"{tag}: {op} {args.get('path', '')}")


def digest_mismatches(server):
    m = re.search(r"^zk_digest_mismatches_count\s+(\d+)", four_letter(server.host, server.port, "mntr"), re.M)
    return None if m is None else int(m.group(1))


class EphemeralOwner:
    """A session that owns /move/eph and re-attaches to each server that loads D."""

    def __init__(self, server):
        self.sess = raw(server, timeout_ms=60000)
        ok(self.sess.call("create", {"path": "/move/eph", "data": b"mine", "flags": 1}), "create /move/eph")
        self.sid, self.passwd = self.sess.session_id, self.sess.passwd
        self.sess.close_socket()  # keep the session, drop the connection

    def reattach(self, server, label):
        s = raw(server, timeout_ms=60000, session_id=self.sid, passwd=self.passwd)
        try:
            assert s.session_id == self.sid and s.timeout_ms > 0, (
                f"{label}: session {self.sid:#x} (loaded from the dataDir) was not accepted on "
                f"re-attach: got session {s.session_id:#x}, timeout {s.timeout_ms}")
            r = ok(s.call("exists", {"path": "/move/eph"}), f"{label}: exists /move/eph")
            assert r.body["stat"].ephemeralOwner == self.sid, f"{label}: /move/eph owner {r.body['stat']}"
        finally:
            s.close_socket()


# the oracles a dataDir moves to and from; the layout of the snapshots each one writes
ORACLES = ["oracle", "oracle39"]
ORACLE_LAYOUT = {"oracle": "3.8", "oracle39": "3.9"}


@pytest.mark.parametrize("oracle", ORACLES)
def test_datadir_moves_between_zookeeper_and_zooid(workdir, oracle):
    """D moves oracle -> zooid -> oracle -> zooid (and, for 3.9.3, on to ZooKeeper 3.8.0):
    every node, Stat field and ACL survives each move; zooid's snapshots on D keep the
    layout of the ZooKeeper line D came from."""
    d = os.path.join(workdir, "D")
    zooid_name = "oracle (ORACLE_ONLY)" if ORACLE_ONLY else "zooid"
    zk = f"ZooKeeper {ORACLE_VERSIONS[oracle]}"
    want_layout = ORACLE_LAYOUT[oracle]
    steps = []

    log_path = os.path.join(workdir, "server.log")

    def start(kind):
        start.log_offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
        return server_on_datadir(kind, workdir, d, container_interval_ms=NO_REAP_MS, extra_cfg=CFG)

    def assert_clean_load(server, label):
        """No ERROR in this start's log; digest mismatch counter (if any) is 0."""
        with open(log_path, "rb") as f:
            f.seek(start.log_offset)
            text = f.read().decode("utf-8", "replace")
        # ZooKeeper 3.8 now and then logs "Error closing a command socket" when a
        # four-letter-word client (wait_ready's ruok/srvr) hangs up first: not about loading
        errors = [ln for ln in text.splitlines() if re.search(r"\bERROR\b", ln)
                  and "Error closing a command socket" not in ln]
        assert not errors, f"{label}: the server logged errors:\n" + "\n".join(errors[:20])
        mism = digest_mismatches(server)
        assert mism in (None, 0), f"{label}: zk_digest_mismatches_count {mism}\n{server.log_tail()}"
        return mism

    def zooid_wrote(before, label):
        """The snapshots the zooid run since `before` wrote, in the layout D came with."""
        written = written_between(before, snapshot_state(d))
        if ORACLE_ONLY:
            return written
        assert written, (f"{label}: zooid wrote no snapshot on D: "
                         f"{sorted(os.listdir(os.path.join(d, 'version-2')))}")
        found = check_layout(written, want_layout, f"zooid on {zk}'s dataDir ({label})")
        steps.append(f"zooid wrote {', '.join(f'{n} ({lay})' for n, lay, _ in found)}")
        return written

    # 1. the oracle writes D
    with start(oracle) as o:
        with contextlib.closing(_Closer(super_session(o))) as c:
            build_tree_oracle(c.sess)
        eph = EphemeralOwner(o)
        o1 = dump_tree(o)
    assert "/move/eph" in o1 and "/move/box/item" in o1 and "/move/ttl" in o1
    # the trailer reader knows the oracle's own files
    check_layout(datafiles(d, "snapshot"), want_layout, zk)
    steps.append(f"{zk} wrote {len(o1)} nodes")

    # 2. zooid loads the oracle's files
    before = snapshot_state(d)
    with start("zooid") as z:
        z1 = dump_tree(z)
        assert_same_tree(o1, z1, zk, zooid_name, f"zooid started on {zk}'s dataDir")
        assert_clean_load(z, f"{zooid_name} on {zk}'s files")
        eph.reattach(z, f"{zooid_name} on {zk}'s files")
        with contextlib.closing(_Closer(super_session(z))) as c:
            more_changes(c.sess, "by-zooid")
        z2 = dump_tree(z)
    steps.append(f"{zooid_name} loaded them, then wrote ({len(z2)} nodes)")
    zooid_wrote(before, "step 2")

    # 3. the oracle loads zooid's files
    with start(oracle) as o:
        o2 = dump_tree(o)
        assert_same_tree(z2, o2, zooid_name, zk, f"{zk} started on zooid's dataDir")
        mism = assert_clean_load(o, f"{zk} on zooid's files")
        eph.reattach(o, f"{zk} on zooid's files")
        with contextlib.closing(_Closer(super_session(o))) as c:
            more_changes(c.sess, "by-oracle")
        o3 = dump_tree(o)
    steps.append(f"{zk} loaded them (digest mismatches: {mism}), then wrote ({len(o3)} nodes)")

    # 4. zooid loads the oracle's newer files (its own snapshot + the oracle's log)
    before = snapshot_state(d)
    with start("zooid") as z:
        z3 = dump_tree(z)
        assert_same_tree(o3, z3, zk, zooid_name, f"zooid started on {zk}'s newer dataDir")
        assert_clean_load(z, f"{zooid_name} on {zk}'s newer files")
        eph.reattach(z, f"{zooid_name} on {zk}'s newer files")
    steps.append(f"{zooid_name} loaded them")
    written = zooid_wrote(before, "step 4")
    check_datadir(d)

    # 5. ZooKeeper 3.8.0 loads a dataDir whose newest snapshot zooid wrote in the 3.9 layout
    # (3.8 reads up to the digest's checksum and ignores the rest)
    if oracle == "oracle39":
        newest = datafiles(d, "snapshot")[-1]
        assert newest in written, f"the newest snapshot {newest} is not one zooid wrote: {written}"
        with start("oracle") as o:
            o4 = dump_tree(o)
            assert_same_tree(z3, o4, zooid_name, "ZooKeeper 3.8.0",
                             f"ZooKeeper 3.8.0 started on zooid's {os.path.basename(newest)}")
            assert_clean_load(o, f"ZooKeeper 3.8.0 on zooid's {os.path.basename(newest)}")
            eph.reattach(o, f"ZooKeeper 3.8.0 on zooid's {os.path.basename(newest)}")
        steps.append(f"ZooKeeper 3.8.0 loaded zooid's {os.path.basename(newest)}")
    summary.append(f"datadir moves ({zk}): {'; '.join(steps)}; all dumps equal")


# ------------------------------------------ 3. ZooKeeper's tools on zooid's files

def write_history(server, tag, n_nodes):
    """n_nodes creates, every 5th set twice, every 7th deleted; returns [(zxid, op, path)]."""
    done = []
    with contextlib.closing(_Closer(raw(server))) as c:
        s = c.sess
        r = ok(s.call("create", {"path": f"/{tag}", "data": b"tools"}), f"create /{tag}")
        done.append((r.zxid, "create", f"/{tag}"))
        reqs = [("create", {"path": f"/{tag}/n{i:04d}", "data": f"v{i}".encode()}) for i in range(n_nodes)]
        reqs += [("setData", {"path": f"/{tag}/n{i:04d}", "data": f"w{i}".encode()})
                 for i in range(0, n_nodes, 5) for _ in range(2)]
        reqs += [("delete", {"path": f"/{tag}/n{i:04d}"}) for i in range(0, n_nodes, 7)]
        for (op, args), r in zip(reqs, pipelined(s, reqs)):
            ok(r, f"{op} {args['path']}")
            done.append((r.zxid, op, args["path"]))
    return done


def mentions(text, path):
    return re.search(re.escape(path) + r"(?![\w/.-])", text) is not None


TXN_LINE = re.compile(r"session 0x[0-9a-f]+ cxid 0x[0-9a-f]+ zxid 0x([0-9a-f]+) (\w+)(?: '?(/[^,\s]*))?")


def snapshot_formatter_lists(snap, kind, want_paths, label):
    """Run the oracle `kind`'s SnapshotFormatter on `snap`; every path of `want_paths` must
    be listed. Returns the set of listed paths."""
    p = zk_tool("org.apache.zookeeper.server.SnapshotFormatter", snap, kind=kind)
    assert p.returncode == 0, f"{label}: SnapshotFormatter {snap}: {show(p)}"
    listed = set(re.findall(r"^(/\S*)$", p.stdout, re.M))
    missing = sorted(set(want_paths) - listed)
    assert not missing, (f"{label}: SnapshotFormatter on {os.path.basename(snap)} does not list "
                         f"{len(missing)} nodes, e.g. {missing[:5]}\n{show(p, 1500)}")
    assert "Last zxid" in p.stdout, show(p, 1500)
    return listed


@pytest.mark.parametrize("oracle", ORACLES)
def test_zookeeper_tools_read_zooid_files(workdir, oracle):
    """The oracle's SnapshotFormatter and TxnLogToolkit read zooid's files (for 3.9.3,
    zooid writes 3.9's layout: serializeLastProcessedZxid.enabled=true); zooid's dump tools
    read the oracle's; zoo.cfg's key overrides the layout of the dataDir's newest snapshot."""
    zk = f"ZooKeeper {ORACLE_VERSIONS[oracle]}"
    zdir = os.path.join(workdir, "Z")
    zcfg = dict(CFG)
    if oracle == "oracle39":
        zcfg["serializeLastProcessedZxid.enabled"] = "true"
    with server_on_datadir("zooid", workdir, zdir, extra_cfg=zcfg) as z:
        first = write_history(z, "tools", 300)
    with server_on_datadir("zooid", workdir, zdir, extra_cfg=zcfg) as z:  # snapshot with data
        second = write_history(z, "tools2", 20)
    writes = first + second
    live = {p for _, op, p in writes if op == "create"} - {p for _, op, p in writes if op == "delete"}

    snaps, logs = datafiles(zdir, "snapshot"), datafiles(zdir, "log")
    assert snaps and logs, f"zooid wrote no snapshot/log: {os.listdir(os.path.join(zdir, 'version-2'))}"
    if oracle == "oracle39" and not ORACLE_ONLY:
        check_layout(snaps, "3.9", "zooid with serializeLastProcessedZxid.enabled=true")
    newest = snaps[-1]
    first_live = {q for q in live if q.startswith("/tools/")} | {"/tools"}
    listed = snapshot_formatter_lists(newest, oracle, first_live, f"{zk} on zooid's snapshot")
    assert not (listed & {q for _, op, q in writes if op == "delete"} - live), "snapshot lists deleted nodes"

    seen, total = {}, 0
    for log in logs:
        p = zk_tool("org.apache.zookeeper.server.persistence.TxnLogToolkit", log, kind=oracle)
        assert p.returncode == 0, f"{zk} TxnLogToolkit {log}: {show(p)}"
        m = re.search(r"EOF reached after (\d+) txns", p.stdout)
        assert m, f"{zk} TxnLogToolkit {log}: no 'EOF reached after N txns' line\n{show(p, 1500)}"
        total += int(m.group(1))
        for zx, op, path in TXN_LINE.findall(p.stdout):
            assert int(zx, 16) not in seen, f"zxid {zx} in two places ({log})"
            seen[int(zx, 16)] = (op, path)
    wrong = [(hex(zx), op, path, seen.get(zx)) for zx, op, path in writes if seen.get(zx) != (op, path)]
    assert not wrong, (f"{zk} TxnLogToolkit on zooid's logs: {len(wrong)} of {len(writes)} acknowledged "
                       f"txns missing or different (zxid, expected op, path, found): {wrong[:5]}")
    assert total == len(seen), f"TxnLogToolkit counted {total} txns, {len(seen)} txn lines parsed"
    mine = {zx for zx, _, _ in writes}
    others = sorted(op for zx, (op, _) in seen.items() if zx not in mine)
    # two sessions (one per start), each created and closed: nothing else was written
    assert others == ["closeSession", "closeSession", "createSession", "createSession"], \
        f"zooid's logs hold {total} txns: {len(writes)} acknowledged writes plus {others}"

    # and zooid's dump tools on the oracle's files
    odir = os.path.join(workdir, "O")
    with server_on_datadir(oracle, workdir, odir, extra_cfg=CFG) as o:
        owrites = write_history(o, "otools", 200)
    with server_on_datadir(oracle, workdir, odir, extra_cfg=CFG) as o:
        owrites += write_history(o, "otools2", 10)
    osnaps = datafiles(odir, "snapshot")
    check_layout(osnaps, ORACLE_LAYOUT[oracle], zk)
    other_layout = ""
    if not ORACLE_ONLY:
        osnap, ologs = osnaps[-1], datafiles(odir, "log")
        olive = ({q for _, op, q in owrites if op == "create"} - {q for _, op, q in owrites if op == "delete"})
        p = zooid_cli("snapshot", "dump", osnap)
        assert p.returncode == 0, f"zooid snapshot dump {osnap}: {show(p)}"
        missing = [q for q in sorted(olive) if q.startswith("/otools/") and not mentions(p.stdout, q)]
        assert not missing, f"zooid snapshot dump of {zk}'s snapshot misses {missing[:5]}\n{show(p, 1500)}"
        out = ""
        for log in ologs:
            p = zooid_cli("txnlog", "dump", log)
            assert p.returncode == 0, f"zooid txnlog dump {log}: {show(p)}"
            out += p.stdout
        missing = [q for _, op, q in owrites if op == "create" and not mentions(out, q)]
        assert not missing, f"zooid txnlog dump of {zk}'s logs misses {missing[:5]}"
        check_datadir(odir)

        # zoo.cfg's serializeLastProcessedZxid.enabled beats the dataDir's newest snapshot:
        # zooid writes the other line's layout on the oracle's dataDir, which its tool reads
        flip = {"oracle": ("true", "3.9"), "oracle39": ("false", "3.8")}[oracle]
        before = snapshot_state(odir)
        with server_on_datadir("zooid", workdir, odir,
                               extra_cfg=dict(CFG, **{"serializeLastProcessedZxid.enabled": flip[0]})) as z:
            ok(raw_call(z, "create", {"path": "/flipped", "data": b"f"}), "create /flipped")
        written = written_between(before, snapshot_state(odir))
        assert written, f"zooid wrote no snapshot on {zk}'s dataDir"
        check_layout(written, flip[1], f"zooid with serializeLastProcessedZxid.enabled={flip[0]}")
        snapshot_formatter_lists(written[-1], oracle, {q for q in olive if q.startswith("/otools")},
                                 f"{zk} on zooid's {flip[1]}-layout snapshot")
        check_datadir(odir)
        other_layout = f"; zooid wrote {os.path.basename(written[-1])} in the {flip[1]} layout on its dataDir"
    summary.append(f"tools ({zk}): SnapshotFormatter/TxnLogToolkit read zooid's {len(snaps)} snapshots / "
                   f"{len(logs)} logs ({total} txns, {len(writes)} acknowledged checked){other_layout}")


def raw_call(server, op, args):
    """One request on a session of its own."""
    with contextlib.closing(_Closer(raw(server))) as c:
        return c.sess.call(op, args)


# ------------------------------------------------------------ 4. disk full

@pytest.fixture
def tmpfs_dir():
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    with tempfile.TemporaryDirectory(prefix="zt-full-") as d:
        mnt = os.path.join(d, "mnt")
        os.mkdir(mnt)
        p = run(["mount", "-t", "tmpfs", "-o", f"size={DISKFULL_MB}m", "tmpfs", mnt], timeout=30)
        if p.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {p.stderr.strip()}")
        try:
            yield d, mnt
        finally:
            p = run(["umount", mnt], timeout=30)
            if p.returncode != 0:
                run(["umount", "-l", mnt], timeout=30)


def payload(i):
    return (f"{i:08d}".encode() * 1280)[:10240]


def test_disk_full_stops_writes_and_recovers(tmpfs_dir, workdir):
    _, mnt = tmpfs_dir
    datadir = os.path.join(mnt, "data")
    os.makedirs(datadir)
    cfg = dict(CFG, preAllocSize="64")
    # reserve everything but ~1 MiB with a filler file, deleted after the failure
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    filler = os.path.join(mnt, "filler")
    with open(filler, "wb") as f:
        left = free - (1 << 20)
        for _ in range(10_000):
            if left <= 0:
                break
            chunk = min(left, 1 << 20)
            f.write(b"\xaa" * chunk)
            left -= chunk
    acked, sent = [], -1
    stopped_by = None
    server = start_server_on_datadir("zooid", workdir, datadir, extra_cfg=cfg)
    try:
        with contextlib.closing(_Closer(raw(server, io_timeout=10.0))) as c:
            ok(c.sess.call("create", {"path": "/full"}), "create /full")
            bound = 20 * (DISKFULL_MB << 20) // 10240  # far more than fits
            for i in range(bound):
                sent = i
                try:
                    r = c.sess.call("create", {"path": f"/full/n{i}", "data": payload(i)})
                except IO_ERRORS as e:
                    stopped_by = f"{type(e).__name__}: {e}"
                    break
                if r.err != 0:
                    stopped_by = f"error reply {ERR.get(r.err, r.err)}"
                    break
                acked.append(i)
            else:
                pytest.fail(f"{len(acked)} writes of 10 KiB acknowledged on a {DISKFULL_MB} MiB tmpfs "
                            f"with ~1 MiB free: the server acknowledges writes it cannot have logged")
        try:
            rc = server.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"writes stopped after {len(acked)} acknowledged ({stopped_by}), but the "
                        f"server is still running 20 s later; expected it to exit non-zero\n{server.log_tail()}")
        log = server.log_tail(200)
        # ZooKeeper 3.8.0 itself logs "Severe unrecoverable error" and then exits with 0
        # ("Exiting JVM with code 0"); zooid must say it failed.
        assert rc != 0 or server.real_kind == "oracle", \
            f"server exited with {rc} after the disk filled; expected non-zero\n{log}"
        assert re.search(r"no space left on device|disk|ENOSPC|os error 28", log, re.I), \
            f"server exited {rc} without mentioning the disk in its log:\n{log}"
        assert acked, "no write acknowledged before the disk filled"

        os.remove(filler)
        server = start_server_on_datadir("zooid", workdir, datadir, extra_cfg=cfg)
        check_full_nodes(server, acked, sent, "restart after the disk-full exit")
        # the recovered server writes again, and those writes survive another crash
        with contextlib.closing(_Closer(raw(server))) as c:
            for j in range(20):
                ok(c.sess.call("create", {"path": f"/full/after{j}", "data": payload(j)}),
                   f"create /full/after{j} after recovery")
        sigkill(server)
        server = start_server_on_datadir("zooid", workdir, datadir, extra_cfg=cfg)
        check_full_nodes(server, acked, sent, "second restart (SIGKILL after recovery writes)")
        with contextlib.closing(_Closer(raw(server))) as c:
            for j in range(20):
                r = c.sess.call("getData", {"path": f"/full/after{j}"})
                assert r.err == 0 and r.body["data"] == payload(j), \
                    f"/full/after{j} (acknowledged after recovery) lost: {ERR.get(r.err, r.err)}"
    finally:
        server.stop()
    check_datadir(datadir)
    summary.append(f"disk full: {len(acked)} x 10 KiB acknowledged before the failure ({stopped_by}), "
                   f"exit {rc}; all present after restart")


def check_full_nodes(server, acked, sent, label):
    with contextlib.closing(_Closer(raw(server))) as c:
        s = c.sess
        ch = ok(s.call("getChildren", {"path": "/full"}), f"{label}: getChildren /full")
        children = set(ch.body["children"])
        missing = [i for i in acked if f"n{i}" not in children]
        assert not missing, (f"{label}: {len(missing)} of {len(acked)} acknowledged writes missing, "
                             f"e.g. {missing[:10]}\n{server.log_tail()}")
        extra = [n for n in children if n.startswith("n") and int(n[1:]) > sent]
        assert not extra, f"{label}: nodes never sent: {extra[:5]}"
        names = sorted(n for n in children if n.startswith("n"))
        for name, r in zip(names, pipelined(s, [("getData", {"path": f"/full/{n}"}) for n in names])):
            assert r.err == 0 and r.body["data"] == payload(int(name[1:])), \
                f"{label}: /full/{name} data differs ({ERR.get(r.err, r.err)})"
