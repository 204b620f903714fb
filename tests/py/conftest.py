"""Fixtures: start zooid and the Apache ZooKeeper oracles on loopback.

Server kinds: "zooid", "oracle" (ZooKeeper 3.8.0, Debian's jars) and "oracle39"
(ZooKeeper 3.9.3, installed into a cache folder by scripts/zookeeper-3.9.sh, whose
classpath is asked once per session; a test that needs it is skipped when the script
fails, with the script's message).

Environment:
  ZOOID_BIN               zooid binary (default <repo>/target/debug/zooid)
  ZOOID_TEST_ORACLE_ONLY  "1": the zooid fixtures start the oracle (3.8.0) instead
"""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from zkraw import four_letter  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
ZOOID_BIN = os.environ.get("ZOOID_BIN", os.path.join(REPO, "target", "debug", "zooid"))
ORACLE_ONLY = os.environ.get("ZOOID_TEST_ORACLE_ONLY") == "1"

# zookeeper.jar's manifest Class-Path pulls in its dependencies; slf4j-simple
# makes the oracle's warnings/errors visible in server.log.
ORACLE_CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
ORACLE_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
# the kinds that run Apache ZooKeeper: 3.8.0 and 3.9.3
ORACLE_KINDS = ("oracle", "oracle39")
ORACLE_VERSIONS = {"oracle": "3.8.0", "oracle39": "3.9.3"}
ZK39_SCRIPT = os.path.join(REPO, "scripts", "zookeeper-3.9.sh")
ZK39_INSTALL_TIMEOUT = 600  # a first run downloads two Debian packages

_zk39 = {}  # the script's one answer this session: {"cp": ...} or {"error": ...}


def zk39_classpath():
    """The Java classpath of ZooKeeper 3.9.3 (jars, dependencies, /etc/zookeeper/conf), from
    scripts/zookeeper-3.9.sh, run once per session. Skips the calling test when the script
    cannot provide it (its stderr is the reason)."""
    if not _zk39:
        try:
            p = subprocess.run([ZK39_SCRIPT], stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=ZK39_INSTALL_TIMEOUT)
            cp = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
            if p.returncode == 0 and cp:
                _zk39["cp"] = cp
            else:
                _zk39["error"] = f"exit {p.returncode}: {p.stderr.strip()[-2000:]}"
        except (OSError, subprocess.TimeoutExpired) as e:
            _zk39["error"] = repr(e)
    if "error" in _zk39:
        pytest.skip(f"ZooKeeper 3.9.3 unavailable ({ZK39_SCRIPT}): {_zk39['error']}")
    return _zk39["cp"]


def oracle_tool_classpath(kind="oracle"):
    """Classpath for the ZooKeeper tools (SnapshotFormatter, TxnLogToolkit, ZooKeeperMain)
    of the oracle `kind`."""
    if kind == "oracle39":
        # slf4j-simple first, as for the server: its log lines go to stderr, not stdout
        return "/usr/share/java/slf4j-simple.jar:" + zk39_classpath()
    assert kind == "oracle", kind
    return "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar"


def oracle_server_classpath(kind="oracle", admin=False):
    """Classpath of the oracle `kind`'s QuorumPeerMain. 3.9.3's puts slf4j-simple first:
    the script's classpath holds every Debian jar, several slf4j bindings among them, and
    slf4j takes the first (simpleLogger.defaultLogLevel is slf4j-simple's)."""
    if kind == "oracle39":
        return "/usr/share/java/slf4j-simple.jar:" + zk39_classpath()  # jetty is in it too
    assert kind == "oracle", kind
    base = oracle_admin_classpath() if admin else ORACLE_CLASSPATH
    return base + ":" + netty_classpath()


def netty_classpath():
    """Debian's Netty jars (unversioned names), which ZooKeeper 3.8's TLS needs: the server's
    NettyServerCnxnFactory and the client's ClientCnxnSocketNetty."""
    import glob
    return ":".join(sorted(j for j in glob.glob("/usr/share/java/netty-*.jar")
                           if not re.search(r"-\d[\w.]*\.jar$", j) and "netty-all" not in j))


def oracle_admin_classpath():
    """ORACLE_CLASSPATH plus what the oracle's AdminServer needs: the servlet API and
    Debian's unversioned jetty9 jars (the versioned names are the same jars)."""
    import glob
    jars = sorted(j for j in glob.glob("/usr/share/java/jetty9-*.jar")
                  if not re.search(r"-\d[\w.]*\.jar$", j))
    return ":".join([ORACLE_CLASSPATH, "/usr/share/java/servlet-api.jar"] + jars)

# digest of "super:superpw" (sha1, base64) for DigestAuthenticationProvider.superDigest
SUPER_USER, SUPER_PASSWORD = "super", "superpw"

START_DEADLINE = 30.0
STOP_DEADLINE = 10.0


def free_port():
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def super_digest():
    from zkraw import digest_id
    return digest_id(SUPER_USER, SUPER_PASSWORD)


class Server:
    """A running server process (zooid or oracle)."""

    def __init__(self, kind, port, proc, workdir, cfg_path, log_path):
        self.kind = kind
        self.port = port
        self.host = "127.0.0.1"
        self.hosts = f"127.0.0.1:{port}"
        self.proc = proc
        self.pid = proc.pid
        self.workdir = workdir
        self.cfg_path = cfg_path
        self.log_path = log_path

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM the process group, SIGKILL after STOP_DEADLINE."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_DEADLINE)
        # the group may still hold children even when the leader is gone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def __repr__(self):
        return f"<{self.kind} server {self.hosts} pid={self.pid}>"


def write_cfg(workdir, port, container_interval_ms, extra=None):
    datadir = os.path.join(workdir, "data")
    os.makedirs(datadir, exist_ok=True)
    cfg = {
        "tickTime": "500",
        "dataDir": datadir,
        "clientPort": str(port),
        "clientPortAddress": "127.0.0.1",
        "maxClientCnxns": "200",
        "minSessionTimeout": "1000",
        "maxSessionTimeout": "60000",
        "4lw.commands.whitelist": "*",
        # No AdminServer: it would listen on 0.0.0.0:8080 (test_admin.py turns it on, on loopback).
        "admin.enableServer": "false",
        "extendedTypesEnabled": "true",
        "znode.container.checkIntervalMs": str(container_interval_ms),
        "DigestAuthenticationProvider.superDigest": super_digest(),
    }
    cfg.update(extra or {})
    cfg = {k: v for k, v in cfg.items() if v is not None}  # None in `extra` drops a key
    path = os.path.join(workdir, "zoo.cfg")
    with open(path, "w") as f:
        for k, v in cfg.items():
            f.write(f"{k}={v}\n")
    return path


def oracle_command(cfg_path, container_interval_ms, admin=False, kind="oracle", props=None):
    """`admin`: run the AdminServer (zoo.cfg says where), with jetty on the classpath.
    `kind`: "oracle" (ZooKeeper 3.8.0) or "oracle39" (3.9.3), the same flags.
    `props`: more system properties {name: value} (say, one logger's level)."""
    return [
        "java",
        "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
        # no hsperfdata file: a reused pid can find a stale one and print a warning
        "-XX:-UsePerfData",
        "-Dzookeeper.extendedTypesEnabled=true",
        f"-Dznode.container.checkIntervalMs={container_interval_ms}",
        f"-Dzookeeper.DigestAuthenticationProvider.superDigest={super_digest()}",
        "-Dzookeeper.4lw.commands.whitelist=*",
        f"-Dzookeeper.admin.enableServer={'true' if admin else 'false'}",
        "-Dzookeeper.forceSync=no",
        "-Dzookeeper.jmx.log4j.disable=true",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=" + os.environ.get("ZOOID_ORACLE_LOG_LEVEL", "warn"),
        *(f"-D{k}={v}" for k, v in (props or {}).items()),
        "-cp", oracle_server_classpath(kind, admin), ORACLE_MAIN, cfg_path,
    ]


def wait_ready(server, deadline_s=START_DEADLINE):
    """Poll `ruok` until `imok`; fail early if the process exits."""
    deadline = time.monotonic() + deadline_s
    attempts = 0
    while time.monotonic() < deadline and attempts < 10000:
        attempts += 1
        if four_letter("127.0.0.1", server.port, "ruok", timeout=2.0) == "imok":
            # ZooKeeper 3.8 answers ruok before it serves sessions; srvr tells.
            srvr = four_letter("127.0.0.1", server.port, "srvr", timeout=2.0)
            if "not currently serving" not in srvr:
                return
        try:
            # waits on the process itself: returns early (crash) or times out (poll interval)
            rc = server.proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        raise RuntimeError(f"{server!r} exited with {rc} before ready:\n{server.log_tail()}")
    raise RuntimeError(f"{server!r} not ready within {deadline_s}s:\n{server.log_tail()}")


def poll(pred, what, timeout=30.0):
    """`pred()`'s first truthy value, asked every 0.1 s; AssertionError naming `what` if
    none comes within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)  # polling interval
    raise AssertionError(f"timed out waiting for {what}")


def start_server(kind, workdir, container_interval_ms=1000, extra_cfg=None, env=None,
                 props=None, props_env="SERVER_JVMFLAGS"):
    """Start `kind` ("zooid", "oracle" or "oracle39") and wait until ready; `env` is added
    to the process's environment. `props` are Java system properties: -D flags of the
    oracle's JVM, and for zooid the `props_env` variable (SERVER_JVMFLAGS or JVMFLAGS) that
    zkServer.sh users set."""
    if props and kind == "zooid":
        flags = " ".join(f"-D{k}={v}" for k, v in props.items())
        env = {**(env or {}), props_env: flags}
    real_kind = "oracle" if (kind == "zooid" and ORACLE_ONLY) else kind
    last_err = None
    for _attempt in range(3):  # port races with other processes: retry with a new port
        port = free_port()
        cfg_path = write_cfg(workdir, port, container_interval_ms, extra_cfg)
        log_path = os.path.join(workdir, "server.log")
        if real_kind in ORACLE_KINDS:
            admin = (extra_cfg or {}).get("admin.enableServer") == "true"
            cmd = oracle_command(cfg_path, container_interval_ms, admin=admin, kind=real_kind,
                                 props=props)
        else:
            if not os.access(ZOOID_BIN, os.X_OK):
                pytest.fail(f"zooid binary not found: {ZOOID_BIN} (set ZOOID_BIN or ZOOID_TEST_ORACLE_ONLY=1)")
            cmd = [ZOOID_BIN, "server", "start-foreground", cfg_path]
        logf = open(log_path, "ab")
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                    stderr=subprocess.STDOUT, cwd=workdir,
                                    start_new_session=True,
                                    env={**os.environ, **(env or {})})
        finally:
            logf.close()
        server = Server(kind, port, proc, workdir, cfg_path, log_path)
        server.real_kind = real_kind
        try:
            wait_ready(server)
            return server
        except BaseException as e:  # noqa: BLE001 - always stop what we started
            server.stop()
            last_err = e
            if not isinstance(e, RuntimeError):
                raise
    raise last_err


@contextlib.contextmanager
def running_server(kind, container_interval_ms=1000, extra_cfg=None, env=None, props=None,
                   props_env="SERVER_JVMFLAGS"):
    """Context manager: a fresh server in its own temp dir, always stopped."""
    with tempfile.TemporaryDirectory(prefix=f"zt-{kind}-") as workdir:
        server = start_server(kind, workdir, container_interval_ms, extra_cfg, env, props,
                              props_env)
        try:
            yield server
        finally:
            server.stop()


def start_server_on_datadir(kind, workdir, datadir, container_interval_ms=1000, extra_cfg=None):
    """Like `start_server`, but on the given dataDir (kept between starts).

    zoo.cfg and server.log go to `workdir`; a new loopback port per start.
    """
    cfg = {"dataDir": datadir}
    cfg.update(extra_cfg or {})
    os.makedirs(datadir, exist_ok=True)
    return start_server(kind, workdir, container_interval_ms, cfg)


@contextlib.contextmanager
def server_on_datadir(kind, workdir, datadir, container_interval_ms=1000, extra_cfg=None):
    """Context manager around `start_server_on_datadir`; always stopped."""
    server = start_server_on_datadir(kind, workdir, datadir, container_interval_ms, extra_cfg)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def zooid_server():
    with running_server("zooid") as s:
        yield s


@pytest.fixture(scope="session")
def oracle_server():
    with running_server("oracle") as s:
        yield s


@pytest.fixture(scope="session")
def server_launcher():
    """Gives tests/modules `running_server` for servers of their own."""
    return running_server


class ClientFactory:
    """Makes KazooClients that are always stopped and closed."""

    def __init__(self):
        self.clients = []
        self.lock = threading.Lock()

    def __call__(self, server_or_hosts, timeout=10.0, start=True, **kw):
        from kazoo.client import KazooClient
        from kazoo.retry import KazooRetry
        hosts = getattr(server_or_hosts, "hosts", server_or_hosts)
        kw.setdefault("connection_retry",
                      KazooRetry(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5,
                                 max_jitter=0.1))
        c = KazooClient(hosts=hosts, timeout=timeout, **kw)
        with self.lock:
            self.clients.append(c)
        if start:
            c.start(timeout=15)
        return c

    def close_all(self):
        with self.lock:
            clients, self.clients = self.clients, []
        for c in clients:
            with contextlib.suppress(Exception):
                c.stop()
            with contextlib.suppress(Exception):
                c.close()


@pytest.fixture
def make_client():
    f = ClientFactory()
    try:
        yield f
    finally:
        f.close_all()


@pytest.fixture
def unique_path(request):
    """A path unique to the current test (tests share the session server)."""
    name = request.node.name.replace("[", "_").replace("]", "").replace("/", "_")
    return f"/t_{name}_{os.getpid()}"


def pytest_terminal_summary(terminalreporter):
    mod = sys.modules.get("test_differential")
    st = getattr(mod, "stats", None)
    if st and st["ops"]:
        terminalreporter.write_line(
            f"differential: {st['ops']} operations compared over {st['seeds']} complete seeds")
        for kind, (ops, seeds) in sorted(st.get("by_oracle", {}).items()):
            terminalreporter.write_line(
                f"  against ZooKeeper {ORACLE_VERSIONS.get(kind, kind)}: {ops} operations, {seeds} seeds")
    for line in getattr(sys.modules.get("test_durability"), "summary", None) or []:
        terminalreporter.write_line(line)
