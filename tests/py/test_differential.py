"""Differential test: random op sequences sent to zooid and to the oracle.

Both servers start fresh and receive exactly the same requests in the same
order (three sessions per seed, one request at a time), so everything the
oracle answers is deterministic except ctime/mtime and session ids.  For every
request we compare err codes, zxids, decoded bodies (Stat without
ctime/mtime; ephemeralOwner mapped to a session label), sorted child lists
and the notifications each session received before that reply.

Env: ZOOID_DIFF_SEEDS (default 40 per oracle), ZOOID_DIFF_OPS (default 300 per seed),
     ZOOID_DIFF_SEED_BASE (first seed, default 1).
"""

import os
import random
import time

import pytest

from conftest import ORACLE_ONLY
from zkraw import (ACL, OP, OP_NAME, ERR, OPEN_ACL, READ_ACL, CREATOR_ALL_ACL,
                   PERM_ALL, PERM_READ, PERM_CREATE, PERM_DELETE,
                   Session, ProtocolError, digest_id, four_letter)

N_SEEDS = int(os.environ.get("ZOOID_DIFF_SEEDS", "40"))
N_OPS = int(os.environ.get("ZOOID_DIFF_OPS", "300"))
SEED_BASE = int(os.environ.get("ZOOID_DIFF_SEED_BASE", "1"))

# Container/TTL reaping would delete nodes at wall-clock times and so consume
# zxids non-deterministically: the differential servers check once an hour.
NO_REAP_MS = 3_600_000
SESSION_TIMEOUT_MS = 30000

USERS = {0: ("alice", "alicepw"), 1: ("bob", "bobpw"), 2: None}
ALICE = digest_id("alice", "alicepw")
BOB = digest_id("bob", "bobpw")

ACL_CHOICES = [
    ("open", OPEN_ACL),
    ("read", READ_ACL),
    ("alice", [ACL(PERM_ALL, "digest", ALICE)]),
    ("alice+read", [ACL(PERM_ALL, "digest", ALICE), ACL(PERM_READ, "world", "anyone")]),
    ("bob+crd", [ACL(PERM_ALL, "digest", BOB),
                 ACL(PERM_READ | PERM_CREATE | PERM_DELETE, "world", "anyone")]),
    ("creator", CREATOR_ALL_ACL),
    ("ip", [ACL(PERM_ALL, "ip", "127.0.0.1")]),
    ("dup", [ACL(PERM_ALL, "world", "anyone"), ACL(PERM_ALL, "world", "anyone")]),
    ("bogus", [ACL(PERM_ALL, "bogus", "x")]),
    ("empty", []),
]
ACL_WEIGHTS = [40, 8, 6, 6, 5, 5, 3, 2, 2, 2]

REL_PATHS = ["", "/a", "/b", "/c", "/a/a", "/a/b", "/b/a", "/a/a/a"]
BAD_REL_PATHS = ["/a/", "//a", "/a/./b", "/a/../b", "/"]

stats = {"ops": 0, "seeds": 0, "by_oracle": {}}


class Mismatch(AssertionError):
    pass


def norm_stat(stat, labels):
    if stat is None:
        return None
    owner = stat.ephemeralOwner
    owner = 0 if owner == 0 else labels.get(owner, f"foreign:{owner:#x}")
    return ("stat", stat.czxid, stat.mzxid, stat.version, stat.cversion,
            stat.aversion, owner, stat.dataLength, stat.numChildren, stat.pzxid)


def norm_body(body, labels):
    if body is None:
        return None
    out = {}
    for k, v in sorted(body.items()):
        if k == "stat":
            v = norm_stat(v, labels)
        elif k in ("children", "ephemerals") and v is not None:
            v = sorted(v)
        elif k == "results":
            v = [(r["type"], r["err"], norm_body(r["body"], labels)) for r in v]
        elif k == "acl" and v is not None:
            v = [tuple(a) for a in v]
        out[k] = v
    return out


def norm_reply(reply, labels):
    return {
        "zxid": reply.zxid,
        "err": ERR.get(reply.err, reply.err),
        "body": norm_body(reply.body, labels),
        "events": [(e.type, e.state, e.path) for e in reply.events],
    }


def norm_connect(sess):
    cr = sess.connect_response
    return {"len": sess.connect_response_len, "protocolVersion": cr.protocolVersion,
            "timeOut": cr.timeOut, "passwdLen": len(cr.passwd or b""),
            "readOnly": cr.readOnly, "expiredReply": cr.sessionId == 0}


class Side:
    """One server's view: its session per slot and session-id -> label."""

    def __init__(self, server):
        self.server = server
        self.sess = {}
        self.labels = {}

    def connect(self, slot, label, **kw):
        kw.setdefault("timeout_ms", SESSION_TIMEOUT_MS)
        s = Session(self.server.host, self.server.port, io_timeout=15.0, **kw)
        if s.session_id:
            self.labels[s.session_id] = label
        self.sess[slot] = s
        return s

    def close_and_settle(self, slot):
        """Close the slot's socket and wait until the server has dropped the
        connection (it disappears from `cons`).  ZooKeeper 3.8.0 answers
        checkWatches OK when *any* connection watches the path, so a
        half-processed close would otherwise make later replies racy."""
        s = self.sess[slot]
        port = s.sock.getsockname()[1] if s.sock is not None else None
        s.close_socket()
        if port is None:
            return
        needle = f"127.0.0.1:{port}["
        deadline = time.monotonic() + 5.0
        for _ in range(500):
            cons = four_letter(self.server.host, self.server.port, "cons", timeout=2.0)
            if "127.0.0.1:" not in cons or needle not in cons:
                return  # gone (or `cons` not supported: nothing to wait for)
            if time.monotonic() > deadline:
                raise AssertionError(f"server still lists closed connection {needle}: {cons}")

    def close_all_sockets(self):
        for s in self.sess.values():
            s.close_socket()
        self.sess.clear()


class SlotModel:
    """Client-side state of one session slot (taken from the reference side)."""

    def __init__(self, label):
        self.label = label
        self.state = "connected"  # or "disconnected" (session alive) or "closed"
        self.data_w, self.exist_w, self.child_w = set(), set(), set()
        self.pers_w, self.rec_w = set(), set()

    def on_event(self, typ, path):
        if typ in (1, 3):
            self.data_w.discard(path)
            self.exist_w.discard(path)
        elif typ == 2:
            self.data_w.discard(path)
            self.exist_w.discard(path)
            self.child_w.discard(path)
        elif typ == 4:
            self.child_w.discard(path)


def fixed_in_later_releases(op, args, zooid, oracle):
    """Where zooid deliberately follows a later 3.8.x / 3.9 fix of a 3.8.0 bug (listed in
    docs/compatibility.md), rewrite zooid's reply into what 3.8.0 sends, so everything else
    is still compared exactly.

    ZOOKEEPER-4026: a create2 inside a multi returns a create2 result (type 15, path and
    Stat); 3.8.0 downgraded it to a create result (type 1, path only).

    3.9: checkWatches reports only the caller's own watches (see below).

    CVE-2024-23944 (3.8.4): exists on a node the caller may not READ is NOAUTH; Debian's
    3.8.0 answers with the Stat. (It already carries the other half of that fix, filtering
    watch notifications by READ, which zooid matches exactly.)
    """
    if not isinstance(zooid, dict) or not isinstance(oracle, dict):
        return zooid
    if (op == OP["exists"] and zooid.get("err") == "NOAUTH" and oracle.get("err") == "OK"
            and zooid.get("zxid") == oracle.get("zxid")):
        return {**oracle, "events": zooid.get("events")}
    # 3.9 behaviour: checkWatches looks at the asking session's own watches; 3.8 answers OK
    # when any session watches the path.
    if (op == OP["checkWatches"] and zooid.get("err") == "NOWATCHER"
            and oracle.get("err") == "OK" and zooid.get("zxid") == oracle.get("zxid")):
        return {**oracle, "events": zooid.get("events")}
    if op != OP["multi"]:
        return zooid
    zr = (zooid.get("body") or {}).get("results")
    orr = (oracle.get("body") or {}).get("results")
    if not zr or not orr or len(zr) != len(orr):
        return zooid
    fixed = []
    for (sub_op, _), z, o in zip(args["ops"], zr, orr):
        if sub_op == OP["create2"] and z[0] == 15 and o[0] == 1 and z[1] == 0:
            z = (1, 0, {"path": z[2]["path"]})
        fixed.append(z)
    return {**zooid, "body": {**zooid["body"], "results": fixed}}


VALID_CREATE_FLAGS = {0, 1, 2, 3, 4, 5, 6}


def kept_from_38(op, args, zooid, oracle):
    """Where 3.9.3 differs from 3.8 and zooid keeps 3.8's behaviour (listed in
    docs/compatibility.md), rewrite 3.9.3's reply into what zooid sends, so everything else
    is still compared exactly.

    3.9 refuses a whole multi holding a create with an unknown mode (MARSHALLINGERROR, a
    zxid consumed); 3.8 and zooid answer each op, the create with BADARGUMENTS unless an
    earlier op failed.
    """
    if not isinstance(zooid, dict) or not isinstance(oracle, dict):
        return oracle
    if (op == OP["multi"] and oracle.get("err") == "MARSHALLINGERROR"
            and zooid.get("zxid") == oracle.get("zxid")
            and any(sub in (OP["create"], OP["create2"], OP["createContainer"], OP["createTTL"])
                    and sargs.get("flags", 0) not in VALID_CREATE_FLAGS
                    for sub, sargs in args["ops"])):
        return {**zooid, "events": oracle.get("events")}
    return oracle


class Differ:
    def __init__(self, a, b, seed, n_ops, oracle="oracle"):
        self.oracle = oracle
        self.A, self.B = Side(a), Side(b)
        self.seed, self.n_ops = seed, n_ops
        self.rng = random.Random(seed)
        self.top = f"/d{seed}"
        self.slots = {}
        self.n_labels = 0
        self.versions, self.aversions = {}, {}
        self.extra_paths = []
        self.orphans = set()  # (slot, path): an exist watch 3.8.0 set and zooid refused
        self.history = []
        self.compared = 0

    # ---------------------------------------------------------- comparison
    def fail(self, idx, what, ra, rb):
        ctx = "\n".join(f"  #{i}: {d}" for i, d in self.history[-int(os.environ.get("ZOOID_DIFF_CONTEXT", "12")):])
        raise Mismatch(
            f"differential mismatch: seed={self.seed} op#{idx} {what}\n"
            f"  zooid : {ra}\n  oracle: {rb}\nrecent ops:\n{ctx}")

    def liveness(self):
        out = []
        for name, side in (("zooid", self.A), ("oracle", self.B)):
            srv = side.server
            if not srv.alive():
                out.append(f"\n  {name} server EXITED; log tail:\n{srv.log_tail(15)}")
        return "".join(out)

    def compare(self, idx, what, ra, rb):
        self.compared += 1
        if ra != rb:
            self.fail(idx, what, ra, rb)

    # ---------------------------------------------------------- execution
    def _exchange(self, slot, op, args):
        out = []
        xids = []
        for side in (self.A, self.B):
            try:
                xids.append(side.sess[slot].send(op, args))
            except OSError as e:
                xids.append(e)
        for side, xid in zip((self.A, self.B), xids):
            if isinstance(xid, Exception):
                out.append((None, {"error": f"send failed: {xid}"}))
                continue
            try:
                r = side.sess[slot].recv_reply(op, xid)
                out.append((r, norm_reply(r, side.labels)))
            except (OSError, ProtocolError) as e:
                out.append((None, {"error": type(e).__name__}))
        return out

    def drop_orphan_events(self, slot, zooid, oracle):
        """The oracle's events from watches only 3.8.0 set (see `do`), if zooid sent none."""
        if not self.orphans or not isinstance(oracle, dict) or not isinstance(zooid, dict):
            return oracle
        events = list(oracle.get("events") or [])
        for ev in list(events):
            typ, _state, path = ev
            if (slot, path) in self.orphans and typ in (1, 2, 3) and ev not in (zooid.get("events") or []):
                events.remove(ev)
                self.orphans.discard((slot, path))
        return {**oracle, "events": events}

    def do(self, idx, slot, op, args, desc=None):
        desc = desc or f"s{slot} {OP_NAME.get(op, op)} {self._fmt(args)}"
        self.history.append((idx, desc))
        (ra, na), (rb, nb) = self._exchange(slot, op, args)
        if self.oracle == "oracle":
            fixed = fixed_in_later_releases(op, args, na, nb)
            if (op == OP["exists"] and args.get("watch") and isinstance(na, dict)
                    and na.get("err") == "NOAUTH" and fixed is not na):
                # 3.8.0 set a watch that zooid (as 3.8.4+ and 3.9) refused: the one event
                # it fires on 3.8.0 alone is not compared.
                self.orphans.add((slot, args["path"]))
            na = fixed
            nb = self.drop_orphan_events(slot, na, nb)
        else:
            nb = kept_from_38(op, args, na, nb)
        self.compare(idx, desc, na, nb)
        if ra is None or rb is None:
            self.fail(idx, desc + " -- connection failed" + self.liveness(), na, nb)
        if rb is not None:
            self.learn(slot, op, args, rb)
        return rb

    @staticmethod
    def _fmt(args):
        parts = []
        for k, v in args.items():
            if k == "acl":
                v = [f"{a.perms}:{a.scheme}:{a.id[:12]}" for a in v]
            elif k == "ops":
                v = [(OP_NAME.get(o, o), a.get("path"), a.get("version", a.get("flags")))
                     + ((a["ttl"],) if "ttl" in a else ()) for o, a in v]
            parts.append(f"{k}={v!r}")
        return " ".join(parts)

    def learn(self, slot, op, args, r):
        """Update the workload model from the oracle's (reference) reply."""
        m = self.slots[slot]
        for e in r.events:
            m.on_event(e.type, e.path)
        if r.err != 0 or r.body is None:
            return
        b = r.body
        if "stat" in b and b["stat"] is not None and "path" in args:
            path = b.get("path", args["path"]) if op != OP["sync"] else args["path"]
            self.versions[path] = b["stat"].version
            self.aversions[path] = b["stat"].aversion
        if op in (OP["create"], OP["create2"], OP["createTTL"]) and b.get("path") != args["path"]:
            self.extra_paths.append(b["path"])
        if op == OP["multi"]:
            for (sop, sargs), res in zip(args["ops"], b["results"]):
                rb = res["body"] or {}
                if res["type"] in (1, 15) and rb.get("path") and rb["path"] != sargs["path"]:
                    self.extra_paths.append(rb["path"])
                if rb.get("stat") is not None:
                    self.versions[sargs["path"]] = rb["stat"].version
        watch = args.get("watch")
        if watch and op in (OP["getData"], OP["exists"]):
            m.data_w.add(args["path"])
        elif watch and op in (OP["getChildren"], OP["getChildren2"]):
            m.child_w.add(args["path"])
        elif op == OP["addWatch"]:
            (m.pers_w if args["mode"] == 0 else m.rec_w).add(args["path"])
        elif op == OP["removeWatches"]:
            p, t = args["path"], args["type"]
            if t in (1, 3):
                m.child_w.discard(p)
            if t in (2, 3):
                m.data_w.discard(p)
                m.exist_w.discard(p)
            if t in (3, 4):
                m.pers_w.discard(p)
            if t in (3, 5):
                m.rec_w.discard(p)

    def would_mix(self, slot, path, kind):
        """Whether a new watch of `kind` ("once", 0 persistent, 1 recursive) would give this
        session two kinds on one path. 3.8 lets the newer mode overwrite the older one
        (ZOOKEEPER-4466); zooid keeps both as 3.9 does, so the generator avoids the case."""
        m = self.slots[slot]
        once = path in m.data_w or path in m.exist_w or path in m.child_w
        pers, rec = path in m.pers_w, path in m.rec_w
        if kind == "once":
            return pers or rec
        if kind == 0:
            return once or rec
        return once or pers

    def learn_exists_miss(self, slot, args, r):
        # exists on a missing node with watch=true leaves an exist watch
        if args.get("watch") and r is not None and r.err == -101:
            self.slots[slot].exist_w.add(args["path"])
            self.slots[slot].data_w.discard(args["path"])

    # ---------------------------------------------------------- sessions
    def open_slot(self, idx, slot, read_only=False):
        label = f"S{self.n_labels}"
        self.n_labels += 1
        res = []
        for side in (self.A, self.B):
            try:
                s = side.connect(slot, label, read_only=read_only)
                res.append(norm_connect(s))
            except (OSError, ProtocolError) as e:
                res.append({"error": type(e).__name__})
        self.history.append((idx, f"s{slot} connect -> {label}"))
        self.compare(idx, f"connect slot {slot}", *res)
        if "error" in res[1]:
            self.fail(idx, f"connect slot {slot} failed" + self.liveness(), *res)
        self.slots[slot] = SlotModel(label)
        user = USERS[slot]
        if user:
            self.do(idx, slot, OP["auth"],
                    {"scheme": "digest", "auth": f"{user[0]}:{user[1]}".encode()})

    def disconnect_slot(self, idx, slot):
        # flush pending notifications first (ping reply comes after them)
        self.do(idx, slot, OP["ping"], {}, f"s{slot} ping (before disconnect)")
        for side in (self.A, self.B):
            side.close_and_settle(slot)
        self.slots[slot].state = "disconnected"
        self.history.append((idx, f"s{slot} disconnect"))

    def reconnect_slot(self, idx, slot, bad_password_first=False):
        m = self.slots[slot]
        # setWatches re-registers the oracle's watches on both sides
        self.orphans = {(s, p) for s, p in self.orphans if s != slot}
        olds = {id(side): side.sess[slot] for side in (self.A, self.B)}
        if bad_password_first:
            res = []
            for side in (self.A, self.B):
                old = olds[id(side)]
                try:
                    s = Session(side.server.host, side.server.port, timeout_ms=SESSION_TIMEOUT_MS,
                                session_id=old.session_id, passwd=b"\x01" * 16,
                                last_zxid=old.last_zxid, read_only=False, io_timeout=15.0)
                    res.append(norm_connect(s))
                    s.close_socket()
                except (OSError, ProtocolError) as e:
                    res.append({"error": type(e).__name__})
            self.history.append((idx, f"s{slot} reattach with wrong password"))
            self.compare(idx, f"reattach slot {slot} with wrong password", *res)
        res = []
        for side in (self.A, self.B):
            old = olds[id(side)]
            try:
                s = side.connect(slot, m.label, session_id=old.session_id, passwd=old.passwd,
                                 last_zxid=old.last_zxid, read_only=False)
                s.last_zxid = old.last_zxid
                s.xid = old.xid
                res.append(norm_connect(s))
            except (OSError, ProtocolError) as e:
                res.append({"error": f"{type(e).__name__}: {e}"})
        self.history.append((idx, f"s{slot} reattach (lastZxid {olds[id(self.B)].last_zxid})"))
        self.compare(idx, f"reattach slot {slot}", *res)
        if "error" in res[1] or res[1]["expiredReply"]:
            self.fail(idx, f"reattach slot {slot} failed" + self.liveness(), *res)
        m.state = "connected"
        # re-register watches like a real client does (setWatches / setWatches2)
        if m.data_w or m.exist_w or m.child_w or m.pers_w or m.rec_w:
            rel = olds[id(self.B)].last_zxid
            args = {"relativeZxid": rel, "data": sorted(m.data_w),
                    "exist": sorted(m.exist_w), "child": sorted(m.child_w)}
            op = OP["setWatches"]
            if m.pers_w or m.rec_w:
                op = OP["setWatches2"]
                args["persistent"] = sorted(m.pers_w)
                args["persistentRecursive"] = sorted(m.rec_w)
            # relativeZxid is per side: both sides saw the same zxids
            self.do(idx, slot, op, args)

    # ---------------------------------------------------------- generators
    def path(self, allow_bad=False):
        rng = self.rng
        if allow_bad and rng.random() < 0.06:
            return self.top + rng.choice(BAD_REL_PATHS)
        if self.extra_paths and rng.random() < 0.2:
            p = rng.choice(self.extra_paths)
            if rng.random() < 0.3:
                p += "/a"
            return p
        return self.top + rng.choice(REL_PATHS)

    def data(self):
        rng = self.rng
        r = rng.random()
        if r < 0.05:
            return None
        if r < 0.2:
            return b""
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 24)))

    def acl(self):
        return self.rng.choices(ACL_CHOICES, ACL_WEIGHTS)[0][1]

    def version(self, path, table=None):
        table = self.versions if table is None else table
        r = self.rng.random()
        if r < 0.45:
            return -1
        known = table.get(path, 0)
        if r < 0.85:
            return known
        return known + self.rng.choice([1, 2, -2, 7])

    def ttl(self):
        r = self.rng.random()
        if r < 0.75:
            return self.rng.choice([3_600_000, 86_400_000, 0xFF_FFFF_FFFF])
        return self.rng.choice([0, -1, -5, 0x100_0000_0000])

    def gen_create(self, multi=False):
        rng = self.rng
        r = rng.random()
        path = self.path(allow_bad=not multi)
        args = {"path": path, "data": self.data(), "acl": self.acl()}
        # Inside a multi, 3.9.3 makes a createContainer / createTTL op a container / TTL node
        # whatever its flags say, where 3.8 and zooid go by the flags (docs/compatibility.md):
        # against 3.9.3 the generator keeps the two in agreement there.
        agree = multi and self.oracle == "oracle39"
        if r < 0.12:
            args["flags"] = 4 if rng.random() < 0.9 else rng.choice([0, 1])
            if agree:
                args["flags"] = 4
            return OP["createContainer"], args
        if r < 0.24:
            args["flags"] = rng.choice([5, 5, 6, 6, 0, 1])
            if agree and args["flags"] < 5:
                args["flags"] += 5
            args["ttl"] = self.ttl()
            if args["flags"] < 5 and args["ttl"] < 0:
                # 3.8.0 accepts op 21 + a non-TTL mode + a negative ttl, then
                # its SyncThread dies applying the txn and the JVM exits.
                args["ttl"] = rng.choice([0, 100])
            return OP["createTTL"], args
        args["flags"] = rng.choice([0, 0, 0, 1, 1, 2, 3] + ([9] if rng.random() < 0.1 else []))
        return rng.choice([OP["create"], OP["create2"]]), args

    def gen_multi_sub(self):
        rng = self.rng
        k = rng.random()
        if k < 0.4:
            return self.gen_create(multi=True)
        path = self.path()
        if k < 0.6:
            return OP["delete"], {"path": path, "version": self.version(path)}
        if k < 0.8:
            return OP["setData"], {"path": path, "data": self.data(), "version": self.version(path)}
        return OP["check"], {"path": path, "version": self.version(path)}

    def step(self, idx):
        rng = self.rng
        connected = [s for s, m in sorted(self.slots.items()) if m.state == "connected"]
        idle = [s for s, m in sorted(self.slots.items()) if m.state != "connected"]
        if idle and (not connected or rng.random() < 0.15):
            slot = rng.choice(idle)
            if self.slots[slot].state == "closed":
                return self.open_slot(idx, slot)
            return self.reconnect_slot(idx, slot, bad_password_first=rng.random() < 0.2)
        slot = rng.choice(connected)
        kind = rng.choices(
            ["create", "delete", "exists", "getData", "getChildren", "setData", "getACL",
             "setACL", "multi", "multiRead", "sync", "allChildren", "ephemerals",
             "addWatch", "watchOps", "whoAmI", "close", "disconnect", "ping", "super"],
            [22, 12, 6, 6, 7, 9, 3, 4, 8, 3, 2, 2, 2, 3, 3, 1, 1.2, 1.5, 0.5, 0.2])[0]
        if kind == "create":
            op, args = self.gen_create()
            return self.do(idx, slot, op, args)
        if kind == "delete":
            path = self.path()
            return self.do(idx, slot, OP["delete"], {"path": path, "version": self.version(path)})
        if kind in ("exists", "getData"):
            args = {"path": self.path(), "watch": rng.random() < 0.5}
            args["watch"] = args["watch"] and not self.would_mix(slot, args["path"], "once")
            r = self.do(idx, slot, OP[kind], args)
            if kind == "exists":
                self.learn_exists_miss(slot, args, r)
            return r
        if kind == "getChildren":
            op = rng.choice([OP["getChildren"], OP["getChildren2"]])
            args = {"path": self.path(), "watch": rng.random() < 0.5}
            args["watch"] = args["watch"] and not self.would_mix(slot, args["path"], "once")
            return self.do(idx, slot, op, args)
        if kind == "setData":
            path = self.path()
            return self.do(idx, slot, OP["setData"],
                           {"path": path, "data": self.data(), "version": self.version(path)})
        if kind == "getACL":
            return self.do(idx, slot, OP["getACL"], {"path": self.path()})
        if kind == "setACL":
            path = self.path()
            return self.do(idx, slot, OP["setACL"], {
                "path": path, "acl": self.acl(), "version": self.version(path, self.aversions)})
        if kind == "multi":
            ops = [self.gen_multi_sub() for _ in range(rng.randrange(1, 5))]
            return self.do(idx, slot, OP["multi"], {"ops": ops})
        if kind == "multiRead":
            ops = [(rng.choice([OP["getChildren"], OP["getData"]]), {"path": self.path(), "watch": False})
                   for _ in range(rng.randrange(1, 4))]
            return self.do(idx, slot, OP["multiRead"], {"ops": ops})
        if kind == "sync":
            return self.do(idx, slot, OP["sync"], {"path": self.path()})
        if kind == "allChildren":
            return self.do(idx, slot, OP["getAllChildrenNumber"], {"path": self.path()})
        if kind == "ephemerals":
            prefix = rng.choice(["/", "", self.top, self.top + "/a", self.path()])
            return self.do(idx, slot, OP["getEphemerals"], {"path": prefix})
        if kind == "addWatch":
            args = {"path": self.path(), "mode": rng.choice([0, 1])}
            if self.would_mix(slot, args["path"], args["mode"]):
                return self.do(idx, slot, OP["whoAmI"], {})
            return self.do(idx, slot, OP["addWatch"], args)
        if kind == "watchOps":
            op = rng.choice([OP["checkWatches"], OP["removeWatches"]])
            path = self.path()
            m = self.slots[slot]
            if self.oracle == "oracle39":
                # 3.9 adds Persistent (4) and PersistentRecursive (5), and Children / Data
                # no longer name persistent watches.
                types = [1, 2, 3, 4, 5]
            elif path in m.pers_w or path in m.rec_w:
                # There 3.8 lets Children / Data remove persistent watches; zooid follows
                # 3.9 (docs/compatibility.md), so only Any is comparable.
                types = [3]
            else:
                types = [1, 2, 3]
            return self.do(idx, slot, op, {"path": path, "type": rng.choice(types)})
        if kind == "whoAmI":
            return self.do(idx, slot, OP["whoAmI"], {})
        if kind == "ping":
            return self.do(idx, slot, OP["ping"], {})
        if kind == "super":
            return self.do(idx, slot, OP["auth"], {"scheme": "digest", "auth": b"super:superpw"})
        if kind == "close":
            if len(connected) > 1:
                return self.close_slot(idx, slot)
            return None
        if kind == "disconnect":
            if len(connected) > 1:
                return self.disconnect_slot(idx, slot)
            return None
        raise AssertionError(kind)

    def close_slot(self, idx, slot):
        self.do(idx, slot, OP["closeSession"], {})
        for side in (self.A, self.B):
            side.close_and_settle(slot)
        self.slots[slot].state = "closed"

    def run(self):
        try:
            for slot in (0, 1, 2):
                # slot 2 is an "old" client: no readOnly byte in the handshake
                self.open_slot(-1, slot, read_only=None if slot == 2 else False)
            self.do(-1, 0, OP["create"], {"path": self.top, "data": b"top", "acl": OPEN_ACL, "flags": 0})
            for idx in range(self.n_ops):
                self.step(idx)
            # end of seed: flush notifications, then close every session
            end = self.n_ops
            for slot, m in sorted(self.slots.items()):
                if m.state == "disconnected":
                    self.reconnect_slot(end, slot)
                if m.state == "connected":
                    self.do(end, slot, OP["ping"], {}, f"s{slot} final ping")
                    self.close_slot(end, slot)
        finally:
            self.A.close_all_sockets()
            self.B.close_all_sockets()
        return self.compared


class Pair:
    """zooid + oracle (or oracle + oracle) on fresh servers; restarted after a failure.
    `kind_b`: the oracle, ZooKeeper 3.8.0 ("oracle") or 3.9.3 ("oracle39")."""

    def __init__(self, launcher, kind_a, kind_b="oracle"):
        self.launcher, self.kind_a, self.kind_b = launcher, kind_a, kind_b
        self.cms = []
        self.a = self.b = None
        self.dirty = False

    def start(self):
        cma = self.launcher(self.kind_a, container_interval_ms=NO_REAP_MS)
        cmb = self.launcher(self.kind_b, container_interval_ms=NO_REAP_MS)
        self.cms = [cma, cmb]
        self.a = cma.__enter__()
        try:
            self.b = cmb.__enter__()
        except BaseException:
            cma.__exit__(None, None, None)
            self.cms = []
            raise

    def stop(self):
        for cm in reversed(self.cms):
            cm.__exit__(None, None, None)
        self.cms = []

    def ensure_clean(self):
        if self.dirty:
            self.stop()
            self.start()
            self.dirty = False


def _pair_fixture(launcher, kind_a, kind_b="oracle"):
    pair = Pair(launcher, kind_a, kind_b)
    pair.start()
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture(scope="module", params=["oracle", "oracle39"])
def diff_pair(server_launcher, request):
    """zooid beside ZooKeeper 3.8.0, then beside 3.9.3."""
    yield from _pair_fixture(server_launcher, "zooid", request.param)


@pytest.fixture(scope="module")
def oracle_pair(server_launcher):
    yield from _pair_fixture(server_launcher, "oracle")


def run_seed(pair, seed, n_ops):
    pair.ensure_clean()
    d = Differ(pair.a, pair.b, seed, n_ops, oracle=pair.kind_b)
    try:
        n = d.run()
    except BaseException:
        pair.dirty = True
        stats["ops"] += d.compared
        raise
    stats["ops"] += n
    stats["seeds"] += 1
    per = stats["by_oracle"].setdefault(pair.kind_b, [0, 0])
    per[0] += n
    per[1] += 1
    return n


@pytest.mark.parametrize("seed", range(SEED_BASE, SEED_BASE + N_SEEDS))
def test_differential_seed(diff_pair, seed):
    n = run_seed(diff_pair, seed, N_OPS)
    assert n >= N_OPS


@pytest.mark.skipif(ORACLE_ONLY, reason="with ZOOID_TEST_ORACLE_ONLY=1 the main run is oracle vs oracle")
@pytest.mark.parametrize("seed", [9001, 9002])
def test_harness_is_deterministic_oracle_vs_oracle(oracle_pair, seed):
    """Sanity check of the harness itself: two oracles must agree exactly."""
    run_seed(oracle_pair, seed, 150)


def test_reply_zxids_follow_history(diff_pair):
    """Fixed scenario: exact zxids and stats for a short known sequence."""
    diff_pair.ensure_clean()
    a = Session(diff_pair.a.host, diff_pair.a.port)
    b = Session(diff_pair.b.host, diff_pair.b.port)
    try:
        base_a = a.ping().zxid
        base_b = b.ping().zxid
        assert base_a == base_b
        ra = a.call("create2", {"path": "/zx", "data": b"1", "flags": 0})
        rb = b.call("create2", {"path": "/zx", "data": b"1", "flags": 0})
        assert ra.zxid == rb.zxid == base_a + 1
        assert ra.body["stat"].czxid == ra.zxid
        assert norm_stat(ra.body["stat"], {}) == norm_stat(rb.body["stat"], {})
        for s in (a, b):
            r = s.call("setData", {"path": "/zx", "data": b"2", "version": 5})
            assert r.err == -103 and r.zxid == base_a + 2  # failed writes consume a zxid
            r = s.call("delete", {"path": "/zx", "version": 0})
            assert r.err == 0 and r.zxid == base_a + 3
    finally:
        a.close()
        b.close()
