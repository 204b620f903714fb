"""Real processes under real faults: 3 or 5 members, each in a network namespace of its own
on one bridge, clients recording histories, a seeded schedule of faults, and the same checker
as the simulation (`zooid-sim --check`) judging what the clients saw.

    python3 tests/faults/faults.py [--members 3|5] [--mixed [3.8|3.9]] [--seconds S]
                                   [--runs N] [--seed S] [--zooid PATH] [--keep]

Topology (needs root: `ip netns`, veth, a bridge, nftables):

    zf<tag>h (hub)    bridge br0 ── veth ── zf<tag>m<i>   member i at 10.213.<net>.<i>
                                 ── veth ── this process at 10.213.<net>.250 (the clients)

Faults, one at a time, each healed before the next (seeded; printed as they happen):
    partition      halves, majority/minority, a bridge member that reaches both sides, a
                   ring (each member reaches its two neighbours only, five members), one way
                   (a member hears nobody but is heard), one member alone
    loss           nftables drops 10..40% of what a member receives from its peers
    pause          SIGSTOP for 1..6 s, then SIGCONT
    crash          SIGKILL, restart 0.5..3 s later
    clock          a zooid member's wall clock steps by up to ten minutes (libfaketime:
                   the monotonic clock does not move)
Not injected here: packet delay (`tc netem` needs the kernel's sch_netem, which this machine
lacks: `tc qdisc add ... netem` answers "Specified qdisc kind is unknown") and lost unsynced
writes at a crash (SIGKILL keeps the page cache; the simulation covers that).

The clients (kazoo, four threads, every member in their host list) sync+read, write and
compare-and-set three registers and make sequential nodes; each operation is recorded with
its monotonic start and end (an operation whose outcome the client never learned has no end).
After the faults everything heals, every member runs again, a fresh client reads each
register and lists the sequential nodes, and the history goes to `zooid-sim --check`.

`--mixed` makes one member (two of five) Apache ZooKeeper 3.8.0 (`--mixed 3.9`: 3.9.3). Every
namespace, link and process the run made is removed at its end, whatever happens (unless
--keep).
"""

import argparse
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "py"))

from conftest import ZOOID_BIN, oracle_command  # noqa: E402
from zkraw import four_letter  # noqa: E402

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
CLIENT_PORT = 2181
TICK_MS = 200
KEYS = 3
CLIENTS = 4
SESSION_TIMEOUT_S = 4.0
QUORUM_WITHIN_S = 90.0

# The clients' reconnections are expected here; kazoo would log each one.
logging.getLogger("kazoo").setLevel(logging.CRITICAL)


def run_cmd(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return r


def now_us():
    return time.monotonic_ns() // 1000


# ---- the network -------------------------------------------------------------------------------

class Net:
    """A hub namespace with a bridge, a namespace per member, and a veth for the clients."""

    def __init__(self, n, tag, net):
        self.n = n
        self.tag = tag
        self.net = net
        self.hub = f"{tag}h"
        self.made = []          # namespaces, to delete
        self.root_link = f"{tag}r"
        run_cmd("ip", "netns", "add", self.hub)
        self.made.append(self.hub)
        run_cmd("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        run_cmd("ip", "-n", self.hub, "link", "set", "br0", "up")
        for i in range(1, n + 1):
            ns = self.ns(i)
            run_cmd("ip", "netns", "add", ns)
            self.made.append(ns)
            a, b = f"{tag}a{i}", f"{tag}b{i}"
            run_cmd("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            run_cmd("ip", "link", "set", a, "netns", ns)
            run_cmd("ip", "link", "set", b, "netns", self.hub)
            run_cmd("ip", "-n", self.hub, "link", "set", b, "master", "br0", "up")
            run_cmd("ip", "-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", a)
            run_cmd("ip", "-n", ns, "link", "set", a, "up")
            run_cmd("ip", "-n", ns, "link", "set", "lo", "up")
            self.nft(i, "add table inet zf")
            self.nft(i, "add chain inet zf in { type filter hook input priority 0 ; }")
        s = f"{tag}s"
        run_cmd("ip", "link", "add", self.root_link, "type", "veth", "peer", "name", s)
        run_cmd("ip", "link", "set", s, "netns", self.hub)
        run_cmd("ip", "-n", self.hub, "link", "set", s, "master", "br0", "up")
        run_cmd("ip", "addr", "add", f"{self.client_addr()}/24", "dev", self.root_link)
        run_cmd("ip", "link", "set", self.root_link, "up")

    def ns(self, i):
        return f"{self.tag}m{i}"

    def addr(self, i):
        return f"10.213.{self.net}.{i}"

    def client_addr(self):
        return f"10.213.{self.net}.250"

    def nft(self, i, rule):
        run_cmd("ip", "netns", "exec", self.ns(i), "nft", rule)

    def cut(self, frm, to):
        """What `frm` sends no longer reaches `to` (one way)."""
        self.nft(to, f"add rule inet zf in ip saddr {self.addr(frm)} drop")

    def partition(self, groups):
        side = {m: k for k, g in enumerate(groups) for m in g}
        for a in side:
            for b in side:
                if side[a] != side[b]:
                    self.cut(a, b)

    def loss(self, i, percent):
        peers = ", ".join(self.addr(j) for j in range(1, self.n + 1) if j != i)
        self.nft(i, f"add rule inet zf in ip saddr {{ {peers} }} numgen random mod 100 < {percent} drop")

    def heal(self):
        for i in range(1, self.n + 1):
            self.nft(i, "flush chain inet zf in")

    def close(self):
        run_cmd("ip", "link", "del", self.root_link, check=False)
        for ns in reversed(self.made):
            run_cmd("ip", "netns", "del", ns, check=False)


# ---- the members -------------------------------------------------------------------------------

class Member:
    def __init__(self, run, sid, kind):
        self.run = run
        self.sid = sid
        self.kind = kind            # "zooid", "oracle" (3.8.0) or "oracle39" (3.9.3)
        self.dir = os.path.join(run.dir, f"m{sid}")
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        with open(os.path.join(self.data, "myid"), "w") as f:
            f.write(f"{sid}\n")
        self.cfg = os.path.join(self.dir, "zoo.cfg")
        lines = [
            f"tickTime={TICK_MS}", "initLimit=10", "syncLimit=5",
            f"dataDir={self.data}", f"clientPort={CLIENT_PORT}",
            "4lw.commands.whitelist=*", "admin.enableServer=false",
        ]
        for j in range(1, run.n + 1):
            lines.append(f"server.{j}={run.net.addr(j)}:2888:3888")
        with open(self.cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.clock = os.path.join(self.dir, "faketime")
        with open(self.clock, "w") as f:
            f.write("+0\n")
        self.proc = None
        self.log = None

    def start(self):
        if self.kind == "zooid":
            cmd = [self.run.zooid, "server", "start-foreground", self.cfg]
            env = dict(os.environ, LD_PRELOAD=LIBFAKETIME, FAKETIME_TIMESTAMP_FILE=self.clock,
                       FAKETIME_NO_CACHE="1", DONT_FAKE_MONOTONIC="1")
        else:
            cmd = oracle_command(self.cfg, 60000, kind=self.kind)
            env = dict(os.environ)
        self.log = open(os.path.join(self.dir, "server.log"), "ab")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.run.net.ns(self.sid), *cmd],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None
        if self.log:
            self.log.close()
            self.log = None

    def mode(self):
        text = four_letter(self.run.net.addr(self.sid), CLIENT_PORT, "srvr", timeout=1.0) or ""
        for line in text.splitlines():
            if line.startswith("Mode: "):
                return line[6:].strip()
        return None


# ---- the clients -------------------------------------------------------------------------------

class History:
    def __init__(self):
        self.lines = []
        self.lock = threading.Lock()
        self.counts = {"ok": 0, "unknown": 0, "failed": 0}

    def add(self, line, outcome):
        with self.lock:
            self.lines.append(line)
            self.counts[outcome] += 1


def client_loop(c, hosts, hist, stop, rng):
    from kazoo.client import KazooClient
    from kazoo.exceptions import (BadVersionError, ConnectionLoss, OperationTimeoutError,
                                  SessionExpiredError, ZookeeperError)
    from kazoo.handlers.threading import KazooTimeoutError
    lost = (ConnectionLoss, OperationTimeoutError, SessionExpiredError, KazooTimeoutError)
    zk = KazooClient(hosts=hosts, timeout=SESSION_TIMEOUT_S, connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 0.5})
    versions = [0] * KEYS
    try:
        zk.start(timeout=60)
    except Exception:
        return
    value = c * 1_000_000_000
    try:
        while not stop.is_set():
            k = rng.randrange(KEYS)
            path = f"/r{k}"
            roll = rng.randrange(20)
            start = now_us()
            try:
                if roll < 8:
                    zk.sync(path)
                    data, stat = zk.get(path)
                    versions[k] = stat.version
                    hist.add(f"R {path} {c} {start} {now_us()} read {int(data)} {stat.version}", "ok")
                elif roll < 12:
                    value += 1
                    try:
                        zk.set(path, str(value).encode())
                        hist.add(f"R {path} {c} {start} {now_us()} write {value} ok", "ok")
                    except lost:
                        hist.add(f"R {path} {c} {start} - write {value} unknown", "unknown")
                elif roll < 17:
                    value += 1
                    ver = versions[k]
                    try:
                        zk.set(path, str(value).encode(), version=ver)
                        hist.add(f"R {path} {c} {start} {now_us()} cas {ver} {value} ok", "ok")
                    except BadVersionError:
                        hist.add(f"R {path} {c} {start} {now_us()} cas {ver} {value} badversion", "ok")
                    except lost:
                        hist.add(f"R {path} {c} {start} - cas {ver} {value} unknown", "unknown")
                else:
                    name = zk.create("/q/n-", b"", sequence=True)
                    hist.add(f"S {c} {start} {now_us()} {int(name.rsplit('-', 1)[1])}", "ok")
            except lost:
                hist.counts["failed"] += 1
                stop.wait(0.05)
            except ZookeeperError:
                hist.counts["failed"] += 1
    finally:
        try:
            zk.stop()
            zk.close()
        except Exception:
            pass


# ---- a run -------------------------------------------------------------------------------------

class Run:
    def __init__(self, n, mixed, seed, zooid, workdir, out=print):
        self.n = n
        self.seed = seed
        self.rng = random.Random(seed)
        self.zooid = zooid
        self.dir = workdir
        self.out = out
        tag = f"zf{os.getpid() % 10000}"
        self.net = Net(n, tag, 100 + os.getpid() % 100)
        java = {1} if n == 3 else {1, 4}
        # `mixed`: the kind of the Java members (None: every member is zooid).
        self.members = {sid: Member(self, sid, mixed if mixed and sid in java else "zooid")
                        for sid in range(1, n + 1)}
        self.faults = []
        self.hosts = ",".join(f"{self.net.addr(i)}:{CLIENT_PORT}" for i in range(1, n + 1))

    def say(self, what):
        self.out(f"[faults seed {self.seed}] {what}")

    def wait_quorum(self, within):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            modes = [m.mode() for m in self.members.values()]
            if modes.count("leader") == 1 and all(modes):
                return modes
            time.sleep(0.2)
        raise RuntimeError(f"no quorum within {within}s: modes {[m.mode() for m in self.members.values()]}")

    def setup_data(self):
        from kazoo.client import KazooClient
        zk = KazooClient(hosts=self.hosts, timeout=10)
        zk.start(timeout=60)
        for k in range(KEYS):
            zk.create(f"/r{k}", b"0")
        zk.create("/q", b"")
        zk.stop()
        zk.close()

    def fault(self):
        """Inject one fault; return how to undo it."""
        n, rng, net = self.n, self.rng, self.net
        sids = list(range(1, n + 1))
        kind = rng.choice(["halves", "minority", "bridge", "ring", "oneway", "alone",
                           "loss", "pause", "crash", "clock"])
        if kind == "ring" and n < 5:
            kind = "halves"
        undo = net.heal
        if kind == "halves":
            rng.shuffle(sids)
            net.partition([sids[: n // 2], sids[n // 2:]])
            what = f"partition {sorted(sids[: n // 2])} | {sorted(sids[n // 2:])}"
        elif kind == "minority":
            rng.shuffle(sids)
            small = sids[: (n - 1) // 2]
            net.partition([small, sids[len(small):]])
            what = f"partition minority {sorted(small)} | {sorted(sids[len(small):])}"
        elif kind == "bridge":
            rng.shuffle(sids)
            b, rest = sids[0], sids[1:]
            left, right = rest[: len(rest) // 2], rest[len(rest) // 2:]
            for a in left:
                for c in right:
                    net.cut(a, c)
                    net.cut(c, a)
            what = f"bridge {b} between {sorted(left)} and {sorted(right)}"
        elif kind == "ring":
            for i in sids:
                for j in sids:
                    if i != j and (i - j) % n not in (1, n - 1):
                        net.cut(i, j)
            what = "ring"
        elif kind == "oneway":
            x = rng.choice(sids)
            for o in sids:
                if o != x:
                    net.cut(o, x)
            what = f"one way: {x} hears nobody, everyone hears {x}"
        elif kind == "alone":
            x = rng.choice(sids)
            net.partition([[x], [s for s in sids if s != x]])
            what = f"{x} alone"
        elif kind == "loss":
            x = rng.choice(sids)
            pct = rng.randint(10, 40)
            net.loss(x, pct)
            what = f"{x} loses {pct}% of its peers' packets"
        elif kind == "pause":
            m = self.members[rng.choice(sids)]
            m.signal(signal.SIGSTOP)
            what = f"SIGSTOP {m.sid}"
            undo = lambda m=m: m.signal(signal.SIGCONT)  # noqa: E731
        elif kind == "crash":
            m = self.members[rng.choice(sids)]
            m.kill()
            what = f"SIGKILL {m.sid}"
            undo = m.start
        else:
            zooids = [m for m in self.members.values() if m.kind == "zooid"]
            m = rng.choice(zooids)
            step = rng.randint(-600, 600)
            with open(m.clock, "w") as f:
                f.write(f"{step:+d}s\n")
            what = f"wall clock of {m.sid} steps to {step:+d}s"
            undo = lambda: None  # noqa: E731
        self.faults.append(kind)
        self.say(what)
        return undo

    def go(self, seconds):
        for m in self.members.values():
            m.start()
        self.wait_quorum(QUORUM_WITHIN_S)
        self.setup_data()
        hist = History()
        stop = threading.Event()
        threads = [threading.Thread(target=client_loop,
                                    args=(c, self.hosts, hist, stop, random.Random(self.seed * 100 + c)),
                                    daemon=True)
                   for c in range(CLIENTS)]
        for t in threads:
            t.start()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(self.rng.uniform(0.5, 2.0))
            undo = self.fault()
            time.sleep(self.rng.uniform(1.0, 5.0))
            undo()
            self.net.heal()
        stop.set()
        for t in threads:
            t.join(timeout=30)
        for m in self.members.values():
            m.signal(signal.SIGCONT)
            if m.proc is None or m.proc.poll() is not None:
                m.start()
        self.wait_quorum(QUORUM_WITHIN_S)
        self.final_reads(hist)
        path = os.path.join(self.dir, "history.txt")
        with open(path, "w") as f:
            f.write(f"# seed {self.seed}, {self.n} members, faults {self.faults}\n")
            f.write("\n".join(hist.lines) + "\n")
        return path, hist

    def final_reads(self, hist):
        from kazoo.client import KazooClient
        zk = KazooClient(hosts=self.hosts, timeout=10)
        zk.start(timeout=60)
        for k in range(KEYS):
            start = now_us()
            zk.sync(f"/r{k}")
            data, stat = zk.get(f"/r{k}")
            hist.add(f"R /r{k} {CLIENTS} {start} {now_us()} read {int(data)} {stat.version}", "ok")
        for name in zk.get_children("/q"):
            hist.lines.append(f"F {int(name.rsplit('-', 1)[1])}")
        zk.stop()
        zk.close()

    def close(self):
        for m in self.members.values():
            m.kill()
        self.net.close()


def sim_binary():
    path = os.environ.get("ZOOID_SIM_BIN") or os.path.join(REPO, "target", "debug", "zooid-sim")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} missing: cargo build -p zooid-sim")
    return path


def one_run(n, mixed, seed, seconds, zooid=ZOOID_BIN, keep=False, out=print):
    """One bounded run; returns (passed, verdict line, figures)."""
    workdir = tempfile.mkdtemp(prefix="zooid-faults-")
    run = None
    try:
        run = Run(n, mixed, seed, zooid, workdir, out)
        path, hist = run.go(seconds)
        r = subprocess.run([sim_binary(), "--check", path], capture_output=True, text=True)
        verdict = (r.stdout.strip() or r.stderr.strip())
        figures = dict(hist.counts, faults=len(run.faults), kinds=sorted(set(run.faults)))
        out(f"[faults seed {seed}] {verdict}")
        out(f"[faults seed {seed}] operations {figures}")
        return r.returncode == 0, verdict, figures
    finally:
        if run:
            run.close()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=3, choices=(3, 5))
    p.add_argument("--mixed", nargs="?", const="3.8", choices=("3.8", "3.9"), default=None)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--zooid", default=ZOOID_BIN)
    p.add_argument("--keep", action="store_true")
    a = p.parse_args()
    first = a.seed if a.seed is not None else random.randrange(1_000_000)
    failed = 0
    mixed = {None: None, "3.8": "oracle", "3.9": "oracle39"}[a.mixed]
    for i in range(a.runs):
        ok, verdict, _ = one_run(a.members, mixed, first + i, a.seconds, a.zooid, a.keep)
        failed += not ok
    print(f"{a.runs} runs, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
