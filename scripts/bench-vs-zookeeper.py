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
  ensemble     (--ensemble) the same workloads on a 3-member ensemble of each on loopback
               (load on a follower), and leader failover: SIGKILL the leader under write load,
               time until a survivor reports Mode: leader and until the first write sent after
               the kill is acknowledged

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
import random
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
        m = re.search(r"version: ([^\s,]+)", four_letter(self.port, "srvr"))
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


def bench_args(opts, workload):
    if workload == "latency":
        return ["--value-size", str(opts.value_size), "--duration", f"{opts.duration}s",
                "--prefix", "/bench", "--keep"]
    return load_args(opts, workload, opts.duration)


def log_result(r):
    log(f"    {r['ops_per_sec']:.0f} ops/s  p99 {r['p99_ms']:.2f} ms  "
        f"server CPU {r['server_cpu_pct']:.0f}%  generator CPU {r['generator_cpu_pct']:.0f}%"
        f"  irq {r.get('irq_pct', 0):.0f}%  other processes {r.get('other_cpu_pct', 0):.0f}%"
        + (f"  errors {r['errors']}" if r.get("errors") else ""))


def run_workloads(opts, server, label):
    """Warm up, then each workload once on a running server."""
    results = {}
    if opts.warmup > 0:
        run_bench(opts, server.port, "mixed", server.pid, load_args(opts, "mixed", opts.warmup))
    for w in opts.workloads:
        log(f"  {label}: {w} for {opts.duration}s")
        server.check_alive()
        results[w] = summarize(run_bench(opts, server.port, w, server.pid, bench_args(opts, w)))
        log_result(results[w])
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


def ensemble_ports(n):
    """`n` distinct free loopback ports below the kernel's ephemeral range. A member's ports
    must stay free while it is down (the failover trials restart it on them), and a port in
    the ephemeral range may meanwhile become the local end of an outgoing connection -- or a
    writer retrying the dead member may connect to itself on it."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    if low <= 13000:
        return free_ports(n)
    rng = random.SystemRandom()
    ports = []
    for _ in range(5000):
        if len(ports) == n:
            break
        port = rng.randrange(12000, low)
        if port in ports:
            continue
        s = socket.socket()
        try:
            s.bind((HOST, port))
        except OSError:
            continue
        finally:
            s.close()
        ports.append(port)
    if len(ports) != n:
        raise RuntimeError(f"could not find {n} free loopback ports below {low}")
    return ports


class Ensemble:
    """Three members of one kind on loopback (zooid, or ZooKeeper's QuorumPeerMain), each with
    its own client, quorum and election port, dataDir and myid, and the same zoo.cfg
    otherwise (server.1..3 lines added to the standalone settings)."""

    def __init__(self, opts, base, kind, label):
        ports = ensemble_ports(9)
        self.kind = kind
        self.spec = {"ports": [tuple(ports[i * 3:i * 3 + 3]) for i in range(3)]}
        self.root = tempfile.mkdtemp(prefix=f"{kind}-ensemble-{label}-", dir=base)
        self.members = [Server(kind, os.path.join(self.root, f"s{i}"), opts.zooid_bin,
                               ensemble=self.spec, myid=i) for i in (1, 2, 3)]
        for i, m in enumerate(self.members, start=1):
            m.myid = i

    def start(self):
        for m in self.members:
            m.start()
        self.wait_quorum(self.members)
        return self

    def wait_quorum(self, members, timeout=120):
        """Each of `members` answers imok and a read, and reports leader or follower; then
        one member of the ensemble reports leader."""
        deadline = time.monotonic() + timeout
        for m in members:
            m.wait_ready(timeout=max(1.0, deadline - time.monotonic()),
                         serving_mode=lambda s: s.mode() in ("leader", "follower"))
        return self.wait_leader(max(1.0, deadline - time.monotonic()))

    def leader(self):
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None and m.mode() == "leader":
                return m
        return None

    def wait_leader(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None:
                return leader
            time.sleep(0.02)
        raise RuntimeError(f"no member of the {self.kind} ensemble reports Mode: leader "
                           f"within {timeout:.0f}s")

    def check_alive(self):
        dead = [m for m in self.members if m.proc is None or m.proc.poll() is not None]
        if dead:
            raise RuntimeError(
                "ensemble member(s) exited: " + ", ".join(
                    f"server.{m.myid} (exit {m.proc.returncode if m.proc else '-'})"
                    for m in dead))

    def log_tails(self, n=40):
        parts = []
        for m in self.members:
            state = ("running" if m.proc is not None and m.proc.poll() is None
                     else f"exited {m.proc.returncode}" if m.proc is not None else "not started")
            parts.append(f"--- server.{m.myid} (client port {m.port}, {state}) {m.log_path}\n"
                         + m.log_tail(n))
        return "\n".join(parts)

    def stop(self):
        for m in self.members:
            m.stop()


class _PidOf:
    """A member seen as the single server run_bench expects; alive means every member is."""

    def __init__(self, member, ens):
        self.port, self.pid, self.m, self.ens = member.port, member.pid, member, ens

    def check_alive(self):
        self.ens.check_alive()


def run_ensemble_workloads(opts, ens, target, label):
    """Warm up, then each workload once through `target`, like run_workloads; a workload that
    fails is recorded and the next one runs, unless a member has exited."""
    results, errors = {}, {}
    server = _PidOf(target, ens)
    if opts.warmup > 0:
        try:
            run_bench(opts, server.port, "mixed", server.pid,
                      load_args(opts, "mixed", opts.warmup))
        except RuntimeError as e:
            errors["warm-up"] = str(e)
            log(f"  {label}: warm-up FAILED: {e}")
    for w in opts.workloads:
        server.check_alive()
        log(f"  {label}: {w} for {opts.duration}s")
        try:
            results[w] = summarize(run_bench(opts, server.port, w, server.pid,
                                             bench_args(opts, w)))
        except RuntimeError as e:
            errors[w] = str(e)
            log(f"    FAILED: {e}")
            continue
        log_result(results[w])
    server.check_alive()
    return results, errors


class WriteLoad:
    """Writers that each hold one session and setData their own znode back to back, one
    request in flight, starting spread over the members; after any error or a 1 s silence a
    writer closes its session and connects to the next member. Records the moment the first
    write sent after `armed` (the killed leader has been reaped) is acknowledged."""

    def __init__(self, ports, writers, value_size, parent="/failover-load"):
        self.ports = list(ports)
        self.parent = parent
        self.value = b"v" * value_size
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.armed = None          # monotonic time; writes sent from then on count
        self.first_ack = None      # monotonic time of the first such write's reply
        self.acked = 0
        self.acked_after = 0
        self.errors = {}
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(writers)]

    def setup(self, port):
        def make(c):
            for path in [self.parent] + [f"{self.parent}/w{i}" for i in range(len(self.threads))]:
                err = c.create(path, b"")
                if err not in (0, -110):
                    return err
            return 0
        err = try_op(port, make, timeout=5.0)
        if err != 0:
            raise RuntimeError(f"cannot create the failover writers' znodes: {err}")

    def _error(self, what):
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1

    def _run(self, i):
        path = f"{self.parent}/w{i}"
        idx = i % len(self.ports)
        c = None
        while not self.done.is_set():
            if c is None:
                try:
                    c = MiniClient(self.ports[idx], timeout=1.0)
                except (OSError, struct.error) as e:
                    self._error(f"connect: {type(e).__name__}")
                    idx = (idx + 1) % len(self.ports)
                    self.done.wait(0.005)
                    continue
            sent = time.monotonic()
            try:
                err = c.set_data(path, self.value)
            except (OSError, struct.error) as e:
                err = type(e).__name__
            if err == 0:
                acked = time.monotonic()
                with self.lock:
                    self.acked += 1
                    if self.armed is not None and sent >= self.armed:
                        self.acked_after += 1
                        if self.first_ack is None or acked < self.first_ack:
                            self.first_ack = acked
                continue
            self._error(f"setData: {err}")
            c.close()
            c = None
            idx = (idx + 1) % len(self.ports)
        if c is not None:
            c.close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(timeout=5)


def measure_failover(opts, ens, timeout=120.0):
    """Put write load on all three members, SIGKILL the leader, and time from the signal until
    a survivor reports Mode: leader and until the first write sent after the leader was gone is
    acknowledged. Then restart the killed member and wait until it serves again."""
    leader = ens.wait_leader()
    survivors = [m for m in ens.members if m is not leader]
    load = WriteLoad([m.port for m in ens.members], opts.failover_writers, opts.value_size)
    load.setup(survivors[0].port)
    load.start()
    try:
        time.sleep(1.0)
        n0, t_n0 = load.acked, time.monotonic()
        time.sleep(opts.failover_preload)
        rate = (load.acked - n0) / (time.monotonic() - t_n0)
        t0 = time.monotonic()
        leader.stop(signal.SIGKILL)
        reaped = time.monotonic() - t0
        load.armed = time.monotonic()
        new_leader = None
        while time.monotonic() - t0 < timeout:
            if new_leader is None and any(m.mode() == "leader" for m in survivors):
                new_leader = time.monotonic() - t0
            if new_leader is not None and load.first_ack is not None:
                break
            time.sleep(0.005)
        write_ok = load.first_ack - t0 if load.first_ack is not None else None
    finally:
        load.stop()
    trial = {"killed": f"server.{leader.myid}", "reaped_s": reaped, "new_leader_s": new_leader,
             "write_ok_s": write_ok, "writers": opts.failover_writers,
             "writes_per_sec_before": rate, "writes_acked_after_kill": load.acked_after,
             "writer_errors": load.errors}
    if new_leader is None or write_ok is None:
        trial["error"] = (f"not recovered within {timeout:.0f}s of the SIGKILL: new leader "
                          f"{'at %.2fs' % new_leader if new_leader is not None else 'never'}, "
                          f"first acknowledged write "
                          f"{'at %.2fs' % write_ok if write_ok is not None else 'never'}; "
                          f"writer errors {load.errors}")
        return trial
    log(f"  failover: killed server.{leader.myid} under {rate:.0f} writes/s; new leader after "
        f"{new_leader:.2f}s, first write acknowledged after {write_ok:.2f}s")
    leader.start()
    ens.wait_quorum([leader])
    return trial


def part_ensemble(opts, base, out):
    kinds = ("zooid", "zookeeper")
    runs = {k: [] for k in kinds}
    failovers = {k: [] for k in kinds}
    failures = {k: [] for k in kinds}   # what went wrong, with the members' log tails

    def failed(kind, rnd, step, error, ens):
        tails = ens.log_tails()
        failures[kind].append({"round": rnd + 1, "step": step, "error": error,
                               "workdir": ens.root, "log_tails": tails})
        log(f"  {kind} ensemble, round {rnd + 1}, {step}: FAILED: {error}\n{tails}")

    for rnd in range(opts.rounds):
        order = kinds if rnd % 2 == 0 else kinds[::-1]
        for kind in order:
            log(f"ensemble round {rnd + 1}/{opts.rounds}: {kind} (3 members)")
            ens = Ensemble(opts, base, kind, f"r{rnd}")
            n_failed = len(failures[kind])
            try:
                ens.start()
                out.setdefault("versions", {})[kind] = ens.members[0].version()
                leader = ens.wait_leader()
                target = next(m for m in ens.members if m is not leader)
                log(f"  load goes to a follower (server.{target.myid}, port {target.port}); "
                    f"leader is server.{leader.myid}")
                res, errs = run_ensemble_workloads(opts, ens, target, f"{kind}-ensemble")
                runs[kind].append(res)
                for step, e in errs.items():
                    failed(kind, rnd, step, e, ens)
                if rnd == opts.rounds - 1:
                    for t in range(opts.failover_trials):
                        log(f"  {kind}: failover trial {t + 1}/{opts.failover_trials}")
                        trial = measure_failover(opts, ens)
                        failovers[kind].append(trial)
                        if "error" in trial:
                            failed(kind, rnd, f"failover trial {t + 1}", trial["error"], ens)
                            break
            except RuntimeError as e:
                failed(kind, rnd, "ensemble", str(e), ens)
            finally:
                ens.stop()
                if not opts.keep_data and len(failures[kind]) == n_failed:
                    shutil.rmtree(ens.root, ignore_errors=True)

    def fo_summary(trials):
        good = [t for t in trials if "error" not in t]
        if not good:
            return None
        return {key: statistics.median(t[key] for t in good) for key in
                ("new_leader_s", "write_ok_s", "writes_per_sec_before")} | {
            "min_new_leader_s": min(t["new_leader_s"] for t in good),
            "max_new_leader_s": max(t["new_leader_s"] for t in good),
            "min_write_ok_s": min(t["write_ok_s"] for t in good),
            "max_write_ok_s": max(t["write_ok_s"] for t in good),
            "trials_ok": len(good), "trials": len(trials)}

    out["ensemble"] = {
        kind: {w: median_of([r[w] for r in runs[kind] if w in r]) for w in opts.workloads}
        for kind in kinds
    }
    out["ensemble"]["target"] = "a follower"
    out["ensemble_rounds"] = runs
    out["ensemble_failures"] = failures
    out["failover"] = {kind: fo_summary(failovers[kind]) for kind in kinds}
    out["failover_trials"] = failovers


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
    get = lambda r, key: r.get(key) if r else None  # noqa: E731
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
        p("### 3-member ensemble (load on a follower; median of %d rounds)" % opts.rounds)
        p()
        p("| workload | zooid ops/s | ZooKeeper ops/s | throughput ratio | zooid p50/p99/p99.9/max ms"
          " | ZooKeeper p50/p99/p99.9/max ms | p99 ratio |")
        p("|---|---:|---:|---:|---|---|---:|")
        name = lambda w: (f"mixed {opts.read_percent}/{100 - opts.read_percent}"  # noqa: E731
                          if w == "mixed" else "latency (1 x 1)" if w == "latency" else w)
        for w in opts.workloads:
            z, k = ens["zooid"][w], ens["zookeeper"][w]
            p(f"| {name(w)} | {fmt(get(z, 'ops_per_sec')) if z else 'failed'} "
              f"| {fmt(get(k, 'ops_per_sec')) if k else 'failed'} "
              f"| **{ratio(get(z, 'ops_per_sec'), get(k, 'ops_per_sec'))}** "
              f"| {lat4(z) if z else '-'} | {lat4(k) if k else '-'} "
              f"| **{ratio(get(z, 'p99_ms'), get(k, 'p99_ms'))}** |")
        p()
        p("CPU in % of one core, medians over rounds. The follower is the member under load;"
          " other processes include the leader and the other follower.")
        p()
        p("| workload | follower CPU zooid / ZK | generator CPU zooid run / ZK run"
          " | irq zooid run / ZK run | other processes zooid run / ZK run"
          " | generator errors zooid / ZK | rounds zooid / ZK |")
        p("|---|---|---|---|---|---|---|")
        for w in opts.workloads:
            z, k = ens["zooid"][w], ens["zookeeper"][w]
            pair = lambda key: f"{fmt(get(z, key))} / {fmt(get(k, key))}"  # noqa: E731
            p(f"| {name(w)} | {pair('server_cpu_pct')} | {pair('generator_cpu_pct')} "
              f"| {pair('irq_pct')} | {pair('other_cpu_pct')} | {pair('errors')} "
              f"| {pair('rounds')} |")
        p()
    fo = out.get("failover")
    if fo:
        p(f"### Leader failover (SIGKILL the leader of the 3-member ensemble under write load:"
          f" {opts.failover_writers} writers, 1 setData in flight each)")
        p()
        z, k = fo.get("zooid"), fo.get("zookeeper")
        p("| median (min-max) | zooid | ZooKeeper | zooid / ZooKeeper |")
        p("|---|---|---|---:|")

        def cell(s, key, d=2):
            if not s:
                return "failed"
            lo, hi = s.get("min_" + key), s.get("max_" + key)
            rng = f" ({lo:.{d}f}-{hi:.{d}f})" if lo is not None and s["trials_ok"] > 1 else ""
            return f"{s[key]:.{d}f}{rng}"
        rows = [("until a survivor reports Mode: leader s", "new_leader_s"),
                ("until the first write sent after the kill is acknowledged s", "write_ok_s")]
        for title, key in rows:
            p(f"| {title} | {cell(z, key)} | {cell(k, key)} "
              f"| **{ratio(get(z, key), get(k, key))}** |")
        p(f"| acknowledged writes/s before the kill | {fmt(get(z, 'writes_per_sec_before'))} "
          f"| {fmt(get(k, 'writes_per_sec_before'))} "
          f"| {ratio(get(z, 'writes_per_sec_before'), get(k, 'writes_per_sec_before'))} |")
        trials = out.get("failover_trials", {})
        p(f"| trials recovered / run | {get(z, 'trials_ok') or 0} / {len(trials.get('zooid', []))}"
          f" | {get(k, 'trials_ok') or 0} / {len(trials.get('zookeeper', []))} | |")
        p()
    elif opts.ensemble is False:
        p("Ensemble and failover: not measured (run with --ensemble)")
        p()
    failures = {k: v for k, v in (out.get("ensemble_failures") or {}).items() if v}
    if failures:
        p("### Ensemble problems")
        p()
        for kind, fl in failures.items():
            for x in fl:
                first = x["error"].strip().splitlines()[0] if x["error"].strip() else "?"
                p(f"- {kind}, round {x['round']}, {x['step']}: {first} (logs in {x['workdir']})")
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
                    help="also run 3-member ensembles (zooid's and ZooKeeper's) and leader "
                         "failover")
    ap.add_argument("--failover-trials", type=int, default=3)
    ap.add_argument("--failover-writers", type=int, default=16,
                    help="failover: sessions writing (setData, 1 in flight each) through all "
                         "members while the leader is killed")
    ap.add_argument("--failover-preload", type=float, default=2,
                    help="failover: seconds of write load measured before the kill")
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
        if any((out.get("ensemble_failures") or {}).values()):
            log(f"ensemble problems: keeping {base} (member logs)")
        elif not opts.keep_data:
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
