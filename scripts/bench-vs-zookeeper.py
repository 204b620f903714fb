#!/usr/bin/env python3
"""Side-by-side benchmark: zooid against Apache ZooKeeper 3.8 (Debian's package).

Both servers get the same zoo.cfg (tickTime=2000, forceSync and snapCount at their defaults,
so every write is fsynced), a fresh dataDir under the same directory (same disk), and the
same load from `zooid bench`, one server at a time, several rounds, alternating which server
goes first. Printed as Markdown tables with zooid / ZooKeeper ratios:

  standalone   create, set, get, exists, mixed 90/10 (16 connections x 16 in flight,
               128-byte values): ops/s and p50/p99/p99.9/max latency (median over rounds),
               server CPU and RSS, the generator's own CPU
  latency      unloaded single-request latency (one connection, one request in flight)
  memory       RSS before and after populating M znodes of 100 bytes (default 1,000,000);
               ZooKeeper with -Xmx1g (plus the JVM's default heap with --zk-default-heap)
  start-up     restart on that dataDir: time until `ruok` answers `imok` and until a client
               read works
  ensemble     (--ensemble) the same workloads on a 3-member ZooKeeper ensemble on loopback,
               and leader failover time; zooid has no replication yet and says so

Every server this script starts runs in its own process group and is stopped (SIGTERM, then
SIGKILL) on every exit path, including Ctrl-C. Every load is bounded in time.

  scripts/bench-vs-zookeeper.py                  # full run (about half an hour)
  scripts/bench-vs-zookeeper.py --quick          # CI-sized: 2 s, 1 round, 100k znodes
  scripts/bench-vs-zookeeper.py --ensemble --json results.json
"""

import argparse
import atexit
import contextlib
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
ZK_CLASSPATH = ("/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:"
                "/usr/share/java/slf4j-simple.jar")
ZK_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
HOST = "127.0.0.1"
READY_TIMEOUT = 300.0       # start-up, including loading a large dataDir
STOP_TIMEOUT = 30.0         # SIGTERM -> SIGKILL
NOT_YET = "zooid: not available yet (no replication)"
LOADED_WORKLOADS = ["create", "set", "get", "exists", "mixed"]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# processes: everything started here is remembered and stopped on exit

STARTED = {}  # pid -> Popen


def spawn(cmd, log_path, cwd):
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)
    STARTED[proc.pid] = proc
    return proc


def stop_proc(proc, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
    """Signal the process group we created for `proc` (its pgid is its pid); SIGKILL after
    `timeout`. Returns the seconds until it exited."""
    t0 = time.monotonic()
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)
    took = time.monotonic() - t0
    # children left in the group, if any
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    STARTED.pop(proc.pid, None)
    return took


def stop_everything():
    for proc in list(STARTED.values()):
        with contextlib.suppress(Exception):
            stop_proc(proc, timeout=10)


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def free_ports(n):
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


# --------------------------------------------------------------------------------------------
# a minimal client: four-letter words, and a session that can getData / setData / create

def four_letter(port, word, timeout=1.0):
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(word.encode())
            s.shutdown(socket.SHUT_WR)
            chunks = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def _jstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">i", len(b)) + b


class MiniClient:
    """One ZooKeeper session over a blocking socket; raises OSError on any trouble."""

    def __init__(self, port, timeout=1.0, session_timeout_ms=6000):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.xid = 0
        # ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd, readOnly
        self._send(struct.pack(">iqiq", 0, 0, session_timeout_ms, 0) + _jstr(b"\0" * 16) + b"\0")
        reply = self._recv()
        _proto, negotiated, _sid = struct.unpack_from(">iiq", reply, 0)
        if negotiated <= 0:
            self.sock.close()
            raise ConnectionError("session refused")

    def _send(self, body):
        self.sock.sendall(struct.pack(">i", len(body)) + body)

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            b = self.sock.recv(n - len(buf))
            if not b:
                raise ConnectionError("closed by the server")
            buf += b
        return buf

    def _recv(self):
        (n,) = struct.unpack(">i", self._exact(4))
        return self._exact(n)

    def call(self, op, body):
        self.xid += 1
        self._send(struct.pack(">ii", self.xid, op) + body)
        for _ in range(1000):
            r = self._recv()
            xid, _zxid, err = struct.unpack_from(">iqi", r, 0)
            if xid == self.xid:
                return err
        raise ConnectionError("no reply")

    def get_data(self, path):
        return self.call(4, _jstr(path) + b"\0")

    def set_data(self, path, data):
        return self.call(5, _jstr(path) + _jstr(data) + struct.pack(">i", -1))

    def create(self, path, data):
        acl = struct.pack(">ii", 1, 31) + _jstr("world") + _jstr("anyone")
        return self.call(1, _jstr(path) + _jstr(data) + acl + struct.pack(">i", 0))

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.settimeout(0.5)
            self.call(-11, b"")
        with contextlib.suppress(OSError):
            self.sock.close()


def try_op(port, fn, timeout=1.0):
    """Open a session, run fn(client), close; the error code, or None when it failed."""
    try:
        c = MiniClient(port, timeout=timeout)
    except (OSError, struct.error):
        return None
    try:
        return fn(c)
    except (OSError, struct.error):
        return None
    finally:
        c.close()


# --------------------------------------------------------------------------------------------
# servers

class Server:
    """One zooid or ZooKeeper process with its own zoo.cfg and dataDir under `workdir`."""

    def __init__(self, kind, workdir, zooid_bin, heap="1g", ensemble=None, myid=None):
        self.kind = kind               # "zooid" | "zookeeper"
        self.workdir = workdir
        self.zooid_bin = zooid_bin
        self.heap = heap               # ZooKeeper -Xmx, or None for the JVM's default
        self.proc = None
        os.makedirs(os.path.join(workdir, "data"), exist_ok=True)
        if ensemble:                   # ensemble: {"ports": [(client, quorum, election)...]}
            self.port = ensemble["ports"][myid - 1][0]
        else:
            (self.port,) = free_ports(1)
        cfg = {
            "tickTime": "2000",
            "initLimit": "10",
            "syncLimit": "5",
            "dataDir": os.path.join(workdir, "data"),
            "clientPort": str(self.port),
            "clientPortAddress": HOST,
            "4lw.commands.whitelist": "*",
            "admin.enableServer": "false",
        }
        if ensemble:
            for i, (_c, q, e) in enumerate(ensemble["ports"], start=1):
                cfg[f"server.{i}"] = f"{HOST}:{q}:{e}"
            with open(os.path.join(workdir, "data", "myid"), "w") as f:
                f.write(f"{myid}\n")
        self.cfg_path = os.path.join(workdir, "zoo.cfg")
        with open(self.cfg_path, "w") as f:
            for k, v in cfg.items():
                f.write(f"{k}={v}\n")
        self.log_path = os.path.join(workdir, "server.log")

    def command(self):
        if self.kind == "zooid":
            return [self.zooid_bin, "server", "start-foreground", self.cfg_path]
        cmd = ["java"]
        if self.heap:
            cmd.append(f"-Xmx{self.heap}")
        return cmd + [
            "-Dzookeeper.admin.enableServer=false",
            "-Dzookeeper.4lw.commands.whitelist=*",
            "-Dzookeeper.jmx.log4j.disable=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp", ZK_CLASSPATH, ZK_MAIN, self.cfg_path,
        ]

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        self.started_at = time.monotonic()
        self.proc = spawn(self.command(), self.log_path, self.workdir)
        return self

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def check_alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}:\n"
                               f"{self.log_tail()}")

    def wait_ready(self, read_path="/", timeout=READY_TIMEOUT, serving_mode=None):
        """Poll until `ruok` -> `imok`, then until a getData(read_path) answers OK.
        Returns (seconds to imok, seconds to a working read) from start()."""
        deadline = time.monotonic() + timeout
        t_imok = None
        while time.monotonic() < deadline:
            self.check_alive()
            if t_imok is None:
                if four_letter(self.port, "ruok", timeout=0.5) == "imok":
                    t_imok = time.monotonic() - self.started_at
                    continue
            else:
                err = try_op(self.port, lambda c: c.get_data(read_path))
                if err == 0:
                    t_read = time.monotonic() - self.started_at
                    if serving_mode is None or serving_mode(self):
                        return t_imok, t_read
            time.sleep(0.005)
        raise RuntimeError(f"{self.kind} on port {self.port} not ready within {timeout:.0f}s:\n"
                           f"{self.log_tail()}")

    def mode(self):
        m = re.search(r"Mode: (\w+)", four_letter(self.port, "srvr"))
        return m.group(1) if m else None

    def version(self):
        m = re.search(r"version: (\S+)", four_letter(self.port, "srvr"))
        return m.group(1) if m else "?"

    def stop(self, sig=signal.SIGTERM):
        return stop_proc(self.proc, sig) if self.proc else 0.0


# --------------------------------------------------------------------------------------------
# the load generator

def run_bench(opts, port, workload, pid, extra=(), timeout=None):
    cmd = [opts.zooid_bin, "bench", "--json", "--quiet", "--server", f"{HOST}:{port}",
           "--workload", workload, "--pid", str(pid)] + list(extra)
    # measurement time + generous room for setup and cleanup; never unbounded
    timeout = timeout or (opts.duration + 600)
    sampler = CpuSampler().start()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, text=True)
    STARTED[proc.pid] = proc
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_proc(proc, signal.SIGKILL)
        raise RuntimeError(f"zooid bench {workload} did not finish within {timeout}s")
    finally:
        sampler.stop()
    STARTED.pop(proc.pid, None)
    if proc.returncode != 0:
        raise RuntimeError(f"zooid bench {workload} failed ({proc.returncode}): {err.strip()}")
    report = json.loads(out.strip().splitlines()[-1])
    # --keep: the run ends right after measuring, so its last elapsed_s seconds are the
    # measurement window (the next run's setup clears the prefix).
    report["machine_cpu"] = sampler.usage(report["elapsed_s"])
    return report


def read_proc_stat():
    """(user+nice+system, irq+softirq, steal) clock ticks of the whole machine (/proc/stat).
    Interrupt time (loopback networking's softirqs, disk completions) is not charged to any
    process, so it is kept apart."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]] + [0] * 8
    return v[0] + v[1] + v[2], v[5] + v[6], v[7]


class CpuSampler:
    """Samples machine-wide CPU use 5 times a second while a bench runs, so that the CPU of
    everything besides the server and the generator (other tenants, builds) can be shown."""

    def __init__(self):
        self.samples = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        while True:
            self.samples.append((time.monotonic(),) + read_proc_stat())
            if self.done.wait(0.2):
                self.samples.append((time.monotonic(),) + read_proc_stat())
                return

    def stop(self):
        self.done.set()
        self.thread.join(timeout=5)

    def usage(self, window_s):
        """Process, interrupt and steal time in % of one core over the last `window_s`
        seconds sampled."""
        if len(self.samples) < 2:
            return None
        end = self.samples[-1]
        start = self.samples[0]
        for smp in self.samples:
            if smp[0] <= end[0] - window_s:
                start = smp
        dt = end[0] - start[0]
        if dt <= 0:
            return None
        return {"tasks_pct": (end[1] - start[1]) / dt, "irq_pct": (end[2] - start[2]) / dt,
                "steal_pct": (end[3] - start[3]) / dt}


def load_args(opts, workload, duration):
    args = ["--connections", str(opts.connections), "--inflight", str(opts.inflight),
            "--value-size", str(opts.value_size), "--duration", f"{duration}s",
            "--prefix", "/bench", "--keep"]
    if workload == "mixed":
        args += ["--read-percent", str(opts.read_percent)]
    return args


def summarize(r):
    """The numbers we keep from one `zooid bench --json` report."""
    lat = r["latency"]
    su = r.get("server_usage") or {}
    out = {
        "ops_per_sec": r["ops_per_sec"],
        "ops": r["ops"],
        "errors": r["errors"],
        "p50_ms": lat["p50_us"] / 1000, "p99_ms": lat["p99_us"] / 1000,
        "p999_ms": lat["p999_us"] / 1000, "max_ms": lat["max_us"] / 1000,
        "mean_ms": lat["mean_us"] / 1000,
        "server_cpu_pct": su.get("cpu_percent"),
        "server_rss_mib": su.get("rss_max_kb", 0) / 1024,
        "generator_cpu_pct": r["generator"]["cpu_percent"],
    }
    mc = r.get("machine_cpu")
    if mc:
        out["irq_pct"] = mc["irq_pct"]
        out["steal_pct"] = mc["steal_pct"]
        # every other process on the machine: other tenants, builds, this script
        out["other_cpu_pct"] = max(0.0, mc["tasks_pct"] - (out["server_cpu_pct"] or 0)
                                   - out["generator_cpu_pct"])
    out["per_op"] = {o["op"]: {"p50_ms": o["latency"]["p50_us"] / 1000,
                               "p99_ms": o["latency"]["p99_us"] / 1000}
                     for o in r["per_op"]}
    return out


def median_of(runs):
    """Median of every numeric field over rounds (per_op too)."""
    if not runs:
        return None
    out = {}
    for k, v in runs[0].items():
        if isinstance(v, dict):
            out[k] = {op: {m: statistics.median(r[k][op][m] for r in runs if op in r[k])
                           for m in v[op]} for op in v}
        elif isinstance(v, (int, float)):
            vals = [r[k] for r in runs if r.get(k) is not None]
            out[k] = statistics.median(vals) if vals else None
    out["rounds"] = len(runs)
    return out


def run_workloads(opts, server, label):
    """Warm up, then each workload once on a running server."""
    results = {}
    if opts.warmup > 0:
        run_bench(opts, server.port, "mixed", server.pid, load_args(opts, "mixed", opts.warmup))
    for w in opts.workloads:
        log(f"  {label}: {w} for {opts.duration}s")
        server.check_alive()
        if w == "latency":
            args = ["--value-size", str(opts.value_size), "--duration", f"{opts.duration}s",
                    "--prefix", "/bench", "--keep"]
        else:
            args = load_args(opts, w, opts.duration)
        results[w] = summarize(run_bench(opts, server.port, w, server.pid, args))
        r = results[w]
        log(f"    {r['ops_per_sec']:.0f} ops/s  p99 {r['p99_ms']:.2f} ms  "
            f"server CPU {r['server_cpu_pct']:.0f}%  generator CPU {r['generator_cpu_pct']:.0f}%"
            f"  irq {r.get('irq_pct', 0):.0f}%  other processes {r.get('other_cpu_pct', 0):.0f}%")
    return results


# --------------------------------------------------------------------------------------------
# parts of the run

def part_standalone(opts, base, out):
    per = {"zooid": [], "zookeeper": []}
    for rnd in range(opts.rounds):
        order = ["zooid", "zookeeper"] if rnd % 2 == 0 else ["zookeeper", "zooid"]
        for kind in order:
            log(f"standalone round {rnd + 1}/{opts.rounds}: {kind}")
            server = Server(kind, tempfile.mkdtemp(prefix=f"{kind}-r{rnd}-", dir=base),
                            opts.zooid_bin).start()
            try:
                server.wait_ready()
                out.setdefault("versions", {})[kind] = server.version()
                per[kind].append(run_workloads(opts, server, kind))
            finally:
                server.stop()
                if not opts.keep_data:
                    shutil.rmtree(server.workdir, ignore_errors=True)
    out["standalone"] = {
        kind: {w: median_of([r[w] for r in runs]) for w in opts.workloads}
        for kind, runs in per.items()
    }
    out["standalone_rounds"] = per


def part_memory_startup(opts, base, out, kind, heap="1g", label=None, startup=True):
    """Populate `opts.znodes` znodes of 100 B, read RSS, then time restarts on that dataDir."""
    label = label or kind
    log(f"memory: {label}, populating {opts.znodes} znodes")
    server = Server(kind, tempfile.mkdtemp(prefix=f"{kind}-mem-", dir=base), opts.zooid_bin,
                    heap=heap).start()
    res = {"znodes": opts.znodes, "value_size": 100}
    try:
        server.wait_ready()
        time.sleep(opts.settle)
        before = rss_kb(server.pid)
        if kind == "zookeeper" and shutil.which("jcmd"):
            res["heap_used_before_mib"] = jvm_live_heap_mib(server.pid)
        t0 = time.monotonic()
        r = run_bench(opts, server.port, "populate", server.pid,
                      ["--znodes", str(opts.znodes), "--value-size", "100", "--keep",
                       "--connections", str(opts.connections), "--inflight",
                       str(opts.inflight), "--duration", "1800s", "--prefix", "/bench"],
                      timeout=2400)
        res["populate_s"] = time.monotonic() - t0
        res["populate_ops_per_sec"] = r["ops_per_sec"]
        res["populate_created"] = r["ops"]
        res["populate_errors"] = r["errors"]
        res["populate_peak_rss_mib"] = r["server_usage"]["rss_max_kb"] / 1024
        time.sleep(opts.settle)  # let snapshots in progress finish
        server.check_alive()
        after = rss_kb(server.pid)
        res["rss_before_mib"] = before / 1024
        res["rss_after_mib"] = after / 1024
        res["bytes_per_znode"] = (after - before) * 1024 / opts.znodes
        if kind == "zookeeper" and shutil.which("jcmd"):
            res["heap_used_after_full_gc_mib"] = jvm_live_heap_mib(server.pid)
            if res.get("heap_used_before_mib") is not None and \
                    res["heap_used_after_full_gc_mib"] is not None:
                res["live_heap_bytes_per_znode"] = (
                    (res["heap_used_after_full_gc_mib"] - res["heap_used_before_mib"])
                    * (1 << 20) / opts.znodes)
            res["rss_after_full_gc_mib"] = rss_kb(server.pid) / 1024
        res["stop_s"] = server.stop()
        log(f"  {label}: RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB, "
            f"{res['bytes_per_znode']:.0f} B/znode, populate {res['populate_s']:.0f}s")
        if startup:
            read_path = "/bench/p/0/0"
            times = []
            for i in range(opts.startup_runs):
                server.start()
                t_imok, t_read = server.wait_ready(read_path=read_path)
                times.append({"imok_s": t_imok, "read_s": t_read,
                              "rss_mib": rss_kb(server.pid) / 1024})
                log(f"  {label} restart {i + 1}: imok after {t_imok:.2f}s, "
                    f"read after {t_read:.2f}s")
                server.stop()
            res["startup_runs"] = times
            res["startup_imok_s"] = statistics.median(t["imok_s"] for t in times)
            res["startup_read_s"] = statistics.median(t["read_s"] for t in times)
            res["rss_after_restart_mib"] = statistics.median(t["rss_mib"] for t in times)
            res["datadir_mib"] = du_mib(os.path.join(server.workdir, "data"))
    finally:
        server.stop()
        if not opts.keep_data:
            shutil.rmtree(server.workdir, ignore_errors=True)
    out.setdefault("memory", {})[label] = res


def jvm_live_heap_mib(pid):
    """Heap in use after a full GC (jcmd GC.run, GC.heap_info); None when unavailable."""
    try:
        subprocess.run(["jcmd", str(pid), "GC.run"], capture_output=True, timeout=120)
        info = subprocess.run(["jcmd", str(pid), "GC.heap_info"], capture_output=True,
                              text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"heap\s+total \d+K, used (\d+)K", info)
    return int(m.group(1)) / 1024 if m else None


def du_mib(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, f))
    return total / (1 << 20)


class Ensemble:
    """Three ZooKeeper QuorumPeerMain processes on loopback."""

    def __init__(self, opts, base):
        ports = free_ports(9)
        self.spec = {"ports": [tuple(ports[i * 3:i * 3 + 3]) for i in range(3)]}
        self.root = tempfile.mkdtemp(prefix="zk-ensemble-", dir=base)
        self.members = [Server("zookeeper", os.path.join(self.root, f"s{i}"), opts.zooid_bin,
                               ensemble=self.spec, myid=i) for i in (1, 2, 3)]

    def start(self):
        for m in self.members:
            m.start()
        self.wait_quorum(self.members)
        return self

    def wait_quorum(self, members, timeout=120):
        for m in members:
            m.wait_ready(timeout=timeout,
                         serving_mode=lambda s: s.mode() in ("leader", "follower"))

    def leader(self):
        for m in self.members:
            if m.mode() == "leader":
                return m
        return None

    def stop(self):
        for m in self.members:
            m.stop()


def part_ensemble(opts, base, out):
    runs = []
    failovers = []
    for rnd in range(opts.rounds):
        log(f"ensemble round {rnd + 1}/{opts.rounds}: zookeeper (3 members)")
        ens = Ensemble(opts, base)
        try:
            ens.start()
            out.setdefault("versions", {})["zookeeper"] = ens.members[0].version()
            leader = ens.leader()
            target = next(m for m in ens.members if m is not leader)
            log(f"  load goes to a follower (port {target.port}); leader is port {leader.port}")
            runs.append(run_workloads(opts, _PidOf(target), "zookeeper-ensemble"))
            if rnd == opts.rounds - 1:
                for t in range(opts.failover_trials):
                    failovers.append(measure_failover(ens))
        finally:
            ens.stop()
            if not opts.keep_data:
                shutil.rmtree(ens.root, ignore_errors=True)
    out["ensemble"] = {
        "zookeeper": {w: median_of([r[w] for r in runs]) for w in opts.workloads},
        "zooid": NOT_YET,
        "target": "a follower",
    }
    out["ensemble_rounds"] = runs
    out["failover"] = {
        "zookeeper": {
            "trials": failovers,
            "new_leader_s": statistics.median(f["new_leader_s"] for f in failovers),
            "write_ok_s": statistics.median(f["write_ok_s"] for f in failovers),
        } if failovers else None,
        "zooid": NOT_YET,
    }


class _PidOf:
    """A member seen as the single server run_workloads expects."""

    def __init__(self, member):
        self.port, self.pid, self.m = member.port, member.pid, member

    def check_alive(self):
        self.m.check_alive()


def measure_failover(ens, timeout=120.0):
    """SIGKILL the leader; time until a survivor says it leads and until a write through a
    survivor succeeds. Then restart the killed member and wait until it follows again."""
    leader = ens.leader()
    survivors = [m for m in ens.members if m is not leader]
    probe = "/failover-probe"
    err = try_op(survivors[0].port, lambda c: c.create(probe, b"x"), timeout=5.0)
    if err not in (0, -110):
        raise RuntimeError(f"cannot create {probe}: {err}")
    t0 = time.monotonic()
    leader.stop(signal.SIGKILL)
    new_leader = write_ok = None
    i = 0
    while (new_leader is None or write_ok is None) and time.monotonic() - t0 < timeout:
        if new_leader is None and any(m.mode() == "leader" for m in survivors):
            new_leader = time.monotonic() - t0
        if write_ok is None:
            m = survivors[i % 2]
            i += 1
            if try_op(m.port, lambda c: c.set_data(probe, b"y"), timeout=0.5) == 0:
                write_ok = time.monotonic() - t0
        time.sleep(0.005)
    if new_leader is None or write_ok is None:
        raise RuntimeError("the ensemble did not recover within the timeout")
    log(f"  failover: new leader after {new_leader:.2f}s, write ok after {write_ok:.2f}s")
    leader.start()
    ens.wait_quorum([leader])
    return {"new_leader_s": new_leader, "write_ok_s": write_ok}


# --------------------------------------------------------------------------------------------
# output

def fmt(x, d=0):
    if x is None:
        return "-"
    return f"{x:,.{d}f}"


def ms(x):
    if x is None:
        return "-"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def ratio(a, b, d=2):
    if a is None or b in (None, 0):
        return "-"
    return f"{a / b:.{d}f}"


def lat4(r):
    return " / ".join(ms(r[k]) for k in ("p50_ms", "p99_ms", "p999_ms", "max_ms"))


def print_tables(opts, out, f):
    p = lambda s="": print(s, file=f)  # noqa: E731
    st = out.get("standalone")
    loaded = [w for w in opts.workloads if w != "latency"]
    if st and loaded:
        p("### Standalone, under load (median of %d rounds)" % opts.rounds)
        p()
        p("| workload | zooid ops/s | ZooKeeper ops/s | throughput ratio | zooid p50/p99/p99.9/max ms"
          " | ZooKeeper p50/p99/p99.9/max ms | p99 ratio |")
        p("|---|---:|---:|---:|---|---|---:|")
        name = lambda w: (f"mixed {opts.read_percent}/{100 - opts.read_percent}"  # noqa: E731
                          if w == "mixed" else w)
        for w in loaded:
            z, k = st["zooid"][w], st["zookeeper"][w]
            p(f"| {name(w)} | {fmt(z['ops_per_sec'])} | {fmt(k['ops_per_sec'])} "
              f"| **{ratio(z['ops_per_sec'], k['ops_per_sec'])}** | {lat4(z)} | {lat4(k)} "
              f"| **{ratio(z['p99_ms'], k['p99_ms'])}** |")
        p()
        p(f"CPU in % of one core ({os.cpu_count()} cores here), medians over rounds."
          " irq: interrupt time (loopback softirqs, disk), charged to no process."
          " other: every other process on the machine (other tenants, builds).")
        p()
        p("| workload | server CPU zooid / ZK | generator CPU zooid run / ZK run"
          " | irq zooid run / ZK run | other processes zooid run / ZK run"
          " | server peak RSS MiB zooid / ZK |")
        p("|---|---|---|---|---|---|")
        for w in opts.workloads:
            z, k = st["zooid"][w], st["zookeeper"][w]
            pair = lambda key: f"{fmt(z.get(key))} / {fmt(k.get(key))}"  # noqa: E731
            p(f"| {name(w)} | {pair('server_cpu_pct')} | {pair('generator_cpu_pct')} "
              f"| {pair('irq_pct')} | {pair('other_cpu_pct')} | {pair('server_rss_mib')} |")
        p()
    if st and "latency" in opts.workloads:
        z, k = st["zooid"]["latency"], st["zookeeper"]["latency"]
        p("### Unloaded latency (1 connection, 1 request in flight; median of %d rounds)"
          % opts.rounds)
        p()
        p("| operation | zooid p50 ms | ZooKeeper p50 ms | p50 ratio | zooid p99 ms"
          " | ZooKeeper p99 ms | p99 ratio |")
        p("|---|---:|---:|---:|---:|---:|---:|")
        for op in ("create", "get", "set", "exists", "delete"):
            if op in z["per_op"] and op in k["per_op"]:
                a, b = z["per_op"][op], k["per_op"][op]
                p(f"| {op} | {ms(a['p50_ms'])} | {ms(b['p50_ms'])} "
                  f"| {ratio(a['p50_ms'], b['p50_ms'])} | {ms(a['p99_ms'])} "
                  f"| {ms(b['p99_ms'])} | {ratio(a['p99_ms'], b['p99_ms'])} |")
        p(f"| all | {ms(z['p50_ms'])} | {ms(k['p50_ms'])} | **{ratio(z['p50_ms'], k['p50_ms'])}**"
          f" | {ms(z['p99_ms'])} | {ms(k['p99_ms'])} | **{ratio(z['p99_ms'], k['p99_ms'])}** |")
        p()
    mem = out.get("memory")
    if mem:
        n = next(iter(mem.values()))["znodes"]
        p(f"### Memory and start-up at {n:,} znodes of 100 B")
        p()
        cols = list(mem)
        p("| | " + " | ".join(cols) + " | zooid / ZooKeeper (-Xmx1g) |")
        p("|---|" + "---:|" * (len(cols) + 1))
        rows = [
            ("populate time s", "populate_s", 1),
            ("populate creates/s", "populate_ops_per_sec", 0),
            ("RSS before MiB", "rss_before_mib", 0),
            ("RSS after populate MiB", "rss_after_mib", 0),
            ("peak RSS while populating MiB", "populate_peak_rss_mib", 0),
            ("bytes per znode ((after - before) / N)", "bytes_per_znode", 0),
            ("JVM heap used after full GC, before populate MiB", "heap_used_before_mib", 0),
            ("JVM heap used after full GC, after populate MiB", "heap_used_after_full_gc_mib", 0),
            ("JVM live heap bytes per znode", "live_heap_bytes_per_znode", 0),
            ("RSS after that full GC MiB", "rss_after_full_gc_mib", 0),
            ("dataDir size MiB", "datadir_mib", 0),
            ("stop (SIGTERM) s", "stop_s", 2),
            ("restart until ruok -> imok s", "startup_imok_s", 2),
            ("restart until a read works s", "startup_read_s", 2),
            ("RSS after restart MiB", "rss_after_restart_mib", 0),
        ]
        zk_ref = mem.get("zookeeper")
        for title, key, d in rows:
            vals = [mem[c].get(key) for c in cols]
            if all(v is None for v in vals):
                continue
            r = ratio(mem.get("zooid", {}).get(key), zk_ref.get(key)) if zk_ref else "-"
            p(f"| {title} | " + " | ".join(fmt(v, d) for v in vals) + f" | {r} |")
        p()
    ens = out.get("ensemble")
    if ens:
        loaded_e = [w for w in opts.workloads]
        p("### 3-member ensemble (load on a follower; median of %d rounds)" % opts.rounds)
        p()
        p("| workload | zooid ops/s | ZooKeeper ops/s | ratio | ZooKeeper p50/p99/p99.9/max ms"
          " | follower CPU % | generator CPU % |")
        p("|---|---|---:|---|---|---:|---:|")
        for w in loaded_e:
            k = ens["zookeeper"][w]
            p(f"| {w} | {NOT_YET} | {fmt(k['ops_per_sec'])} | - | {lat4(k)} "
              f"| {fmt(k['server_cpu_pct'])} | {fmt(k['generator_cpu_pct'])} |")
        p()
    fo = out.get("failover")
    if fo:
        p("### Leader failover (SIGKILL the leader of the 3-member ensemble)")
        p()
        z = fo["zookeeper"]
        p("| | zooid | ZooKeeper |")
        p("|---|---|---:|")
        if z:
            p(f"| until a survivor reports Mode: leader s | {NOT_YET} | {z['new_leader_s']:.2f} |")
            p(f"| until a write through a survivor succeeds s | {NOT_YET} "
              f"| {z['write_ok_s']:.2f} |")
            p(f"| trials | - | {len(z['trials'])} |")
        p()
    elif opts.ensemble is False:
        p("Ensemble and failover: not measured (run with --ensemble); " + NOT_YET)
        p()


# --------------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Benchmark zooid against Apache ZooKeeper 3.8 on loopback.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--duration", type=float, default=10, help="seconds per workload")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, alternating who goes first")
    ap.add_argument("--warmup", type=float, default=3,
                    help="seconds of mixed load on each fresh server before measuring")
    ap.add_argument("--workloads", default=",".join(LOADED_WORKLOADS + ["latency"]),
                    help="comma-separated subset of create,set,get,exists,mixed,latency")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--inflight", type=int, default=16)
    ap.add_argument("--value-size", type=int, default=128)
    ap.add_argument("--read-percent", type=int, default=90, help="mixed: getData share")
    ap.add_argument("--znodes", type=int, default=1_000_000,
                    help="znodes (100 B each) for the memory and start-up part")
    ap.add_argument("--startup-runs", type=int, default=3, help="restarts timed per server")
    ap.add_argument("--settle", type=float, default=5, help="seconds before reading RSS")
    ap.add_argument("--no-standalone", action="store_true", help="skip the load workloads")
    ap.add_argument("--no-memory", action="store_true", help="skip memory and start-up")
    ap.add_argument("--no-startup", action="store_true", help="skip the restart timing")
    ap.add_argument("--zk-default-heap", action="store_true",
                    help="also populate ZooKeeper with the JVM's default heap (no -Xmx)")
    ap.add_argument("--ensemble", action="store_true",
                    help="also run the 3-member ZooKeeper ensemble and leader failover")
    ap.add_argument("--failover-trials", type=int, default=3)
    ap.add_argument("--quick", action="store_true",
                    help="CI-sized: 2 s per workload, 1 round, 1 s warm-up, 100k znodes, "
                         "1 restart, 1 failover trial")
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE",
                    help="write all results as JSON to FILE (or stdout; tables go to stderr)")
    ap.add_argument("--zooid-bin", default=os.path.join(REPO, "target", "release", "zooid"))
    ap.add_argument("--no-build", action="store_true",
                    help="do not run cargo build --release -p zooid-server first")
    ap.add_argument("--workdir", default=None,
                    help="directory for the servers' dataDirs (default: a new one in $TMPDIR)")
    ap.add_argument("--keep-data", action="store_true", help="leave the dataDirs behind")
    opts = ap.parse_args(argv)
    if opts.quick:
        opts.duration, opts.rounds, opts.warmup = 2, 1, 1
        opts.znodes, opts.startup_runs, opts.failover_trials, opts.settle = 100_000, 1, 1, 2
    opts.workloads = [w.strip() for w in opts.workloads.split(",") if w.strip()]
    bad = [w for w in opts.workloads if w not in LOADED_WORKLOADS + ["latency"]]
    if bad:
        ap.error(f"unknown workload(s): {', '.join(bad)}")
    if opts.rounds < 1 or opts.duration <= 0 or opts.znodes < 1:
        ap.error("--rounds, --duration and --znodes must be positive")
    return opts


def machine_info():
    info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "nproc": os.cpu_count()}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        info["zooid_commit"] = subprocess.run(
            ["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
            text=True, timeout=10).stdout.strip()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        info["java"] = subprocess.run(["java", "-version"], capture_output=True, text=True,
                                      timeout=30).stderr.splitlines()[0]
    with contextlib.suppress(OSError):
        with open("/proc/meminfo") as f:
            info["mem_total_kb"] = int(f.readline().split()[1])
    return info


def main(argv):
    opts = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    atexit.register(stop_everything)
    if not os.path.exists("/usr/share/java/zookeeper.jar") or not shutil.which("java"):
        sys.exit("Apache ZooKeeper (Debian's zookeeper package) and java are needed")
    if not opts.no_build:
        log("cargo build --release -p zooid-server")
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "zooid-server"],
                       cwd=REPO, check=True, timeout=3600)
    if not os.access(opts.zooid_bin, os.X_OK):
        sys.exit(f"no zooid binary at {opts.zooid_bin}")

    base = tempfile.mkdtemp(prefix="zooid-vs-zk-", dir=opts.workdir)
    out = {"machine": machine_info(), "settings": {
        k: v for k, v in vars(opts).items() if k not in ("json",)}}
    out["settings"]["zoo_cfg"] = ("tickTime=2000 initLimit=10 syncLimit=5 "
                                  "forceSync/snapCount default (yes/100000) "
                                  "4lw.commands.whitelist=* admin.enableServer=false")
    out["settings"]["zookeeper_jvm"] = "-Xmx1g (JDK defaults otherwise: G1)"
    out["settings"]["command"] = " ".join([sys.argv[0]] + list(argv))
    log(f"work directory {base}")
    try:
        if not opts.no_standalone and opts.workloads:
            part_standalone(opts, base, out)
        if not opts.no_memory:
            for kind in ("zooid", "zookeeper"):
                part_memory_startup(opts, base, out, kind, startup=not opts.no_startup)
            if opts.zk_default_heap:
                part_memory_startup(opts, base, out, "zookeeper", heap=None,
                                    label="zookeeper (default heap)", startup=False)
        if opts.ensemble:
            part_ensemble(opts, base, out)
    finally:
        stop_everything()
        if not opts.keep_data:
            shutil.rmtree(base, ignore_errors=True)

    table_out = sys.stderr if opts.json == "-" else sys.stdout
    print_tables(opts, out, table_out)
    if opts.json:
        text = json.dumps(out, indent=2, default=str)
        if opts.json == "-":
            print(text)
        else:
            with open(opts.json, "w") as f:
                f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
