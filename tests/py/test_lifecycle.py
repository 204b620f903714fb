"""zkServer.sh-style lifecycle: `zooid server start|stop|restart|status|version`, the
`bin/zkServer.sh` and `bin/zkCli.sh` wrappers, and `packaging/zooid.service`'s commands.

Every server here is a daemon started by `zooid server start`; the `inst` fixture remembers
each pid it saw in a pid file and SIGTERMs (then SIGKILLs) any that is still a zooid at the
end. Expected texts and exit codes are zkServer.sh's (ZooKeeper 3.8,
/usr/share/zookeeper/bin/zkServer.sh), except where zooid says more on purpose (why a start
failed).
"""

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import REPO, ZOOID_BIN, free_port
from zkraw import four_letter

BIN_DIR = os.path.join(REPO, "bin")
ZKSERVER_SH = os.path.join(BIN_DIR, "zkServer.sh")
ZKCLI_SH = os.path.join(BIN_DIR, "zkCli.sh")
UNIT = os.path.join(REPO, "packaging", "zooid.service")
DEBIAN_ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
CMD_TIMEOUT = 90  # any one command; `start` itself waits at most ZOOID_START_TIMEOUT
NOT_RUNNING = "Error contacting service. It is probably not running."

# Variables of the caller that would change which config/pid file/log the commands use.
SCRUB = ("ZOOCFG", "ZOOCFGDIR", "ZOOPIDFILE", "ZOO_LOG_DIR", "SERVER_JVMFLAGS", "JVMFLAGS")


def base_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env["ZOOID_BIN"] = ZOOID_BIN
    env["ZOOID_START_TIMEOUT"] = "30"
    env["ZOOID_STOP_TIMEOUT"] = "20"
    env["CLIENT_JVMFLAGS"] = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto -XX:-UsePerfData"
    env.update(extra)
    return env


def proc_state(pid):
    """'gone', or the command line of a live (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except (OSError, IndexError):
        return "gone"
    return "gone" if state in ("Z", "X") else cmdline


def is_our_zooid(pid):
    c = proc_state(pid)
    return c != "gone" and "zooid" in c and "start-foreground" in c


def servers_for(cfg_path):
    """Pids of live zooid servers started with this config file."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            c = proc_state(int(name))
            if c != "gone" and "start-foreground" in c and c.endswith(cfg_path):
                pids.append(int(name))
    return pids


def wait_gone(pid, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc_state(pid) == "gone":
            return True
        time.sleep(0.05)
    return False


class Instance:
    """A config file, a dataDir and a port of its own; runs commands against them."""

    def __init__(self, root):
        self.root = root
        self.port = free_port()
        self.data_dir = os.path.join(root, "data")
        self.cfg = os.path.join(root, "zoo.cfg")
        self.pid_file = os.path.join(self.data_dir, "zookeeper_server.pid")
        self.seen_pids = set()
        self.write_cfg()

    def write_cfg(self, extra_lines=(), data_dir=None, lines=None):
        if lines is None:
            lines = [
                "tickTime=2000",
                f"dataDir={data_dir or self.data_dir}",
                f"clientPort={self.port}",
                "clientPortAddress=127.0.0.1",
                *extra_lines,
                # Last, so the tests' line numbers stay put: no AdminServer on 0.0.0.0:8080.
                "admin.enableServer=false",
            ]
        with open(self.cfg, "w") as f:
            f.write("\n".join(lines) + "\n")

    def zooid(self, *args, env=None, cfg=True, prefix=()):
        cmd = [*prefix, ZOOID_BIN, "server", *args] + ([self.cfg] if cfg else [])
        return self._run(cmd, env)

    def script(self, *args, env=None):
        return self._run([ZKSERVER_SH, *args], env)

    def _run(self, cmd, env):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=CMD_TIMEOUT,
                           env=env or base_env(), cwd=self.root, stdin=subprocess.DEVNULL)
        self.note_pid()
        return r

    def note_pid(self, path=None):
        with contextlib.suppress(OSError, ValueError):
            with open(path or self.pid_file) as f:
                self.seen_pids.add(int(f.read().strip()))

    def pid(self, path=None):
        with open(path or self.pid_file) as f:
            text = f.read()
        assert re.fullmatch(r"[0-9]+", text), f"pid file holds {text!r}"
        pid = int(text)
        self.seen_pids.add(pid)
        return pid

    def stat(self, word="srvr"):
        return four_letter("127.0.0.1", self.port, word, timeout=5.0)

    def cleanup(self):
        self.note_pid()
        pids = [p for p in self.seen_pids if is_our_zooid(p)] + servers_for(self.cfg)
        for pid in set(pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not wait_gone(pid, 10):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_gone(pid, 5)


@pytest.fixture
def inst():
    if not os.access(ZOOID_BIN, os.X_OK):
        pytest.fail(f"zooid binary not found: {ZOOID_BIN} (set ZOOID_BIN)")
    root = tempfile.mkdtemp(prefix="zt-lifecycle-")
    i = Instance(root)
    try:
        yield i
    finally:
        i.cleanup()
        # tests may chmod things; make sure the tree can be removed
        for d, _, _ in os.walk(root):
            with contextlib.suppress(OSError):
                os.chmod(d, 0o755)
        shutil.rmtree(root, ignore_errors=True)


def assert_started(r):
    assert r.returncode == 0, f"start failed:\n{r.stdout}\n{r.stderr}"
    assert r.stdout == "Starting zooid ... STARTED\n", r.stdout


def assert_failed(r, inst):
    """A failed start: exit 1, never the bare FAILED TO START, nothing left behind."""
    assert r.returncode == 1, f"rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "FAILED TO START" in r.stdout
    reasons = [l for l in r.stderr.splitlines() if l.startswith("zooid: ")]
    assert reasons, f"no reason given:\n{r.stderr}"
    assert not os.path.exists(inst.pid_file), "pid file left behind"
    assert servers_for(inst.cfg) == [], "a server process was left running"
    return r.stderr


def test_start_status_stat_stop_status(inst):
    inst.write_cfg(["4lw.commands.whitelist=srvr, stat, ruok"])
    r = inst.zooid("start")
    assert_started(r)
    assert r.stderr.splitlines()[0] == f"Using config: {inst.cfg}"
    pid = inst.pid()
    assert is_our_zooid(pid)
    # the daemon's output file is zkServer.sh's, in dataDir without ZOO_LOG_DIR
    outs = [n for n in os.listdir(inst.data_dir) if re.fullmatch(r"zookeeper-.+-server-.+\.out", n)]
    assert len(outs) == 1, os.listdir(inst.data_dir)
    # the daemon is in a session of its own, detached from ours
    assert os.getsid(pid) == pid

    r = inst.zooid("status")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        f"Client port found: {inst.port}. Client address: 127.0.0.1. Client SSL: false.",
        "Mode: standalone",
    ]
    assert f"Using config: {inst.cfg}" in r.stderr

    # `echo stat | nc 127.0.0.1 PORT`
    with socket.create_connection(("127.0.0.1", inst.port), timeout=5) as s:
        s.sendall(b"stat")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    assert b"Mode: standalone" in out and b"Clients:" in out, out

    r = inst.zooid("stop")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "Stopping zooid ... STOPPED\n"
    assert not os.path.exists(inst.pid_file)
    assert proc_state(pid) == "gone"

    r = inst.zooid("status")
    assert r.returncode == 1
    assert r.stdout.splitlines()[-1] == NOT_RUNNING

    # zkServer.sh: no pid file is "nothing to stop", exit 0
    r = inst.zooid("stop")
    assert r.returncode == 0
    assert r.stdout == f"Stopping zooid ... no zooid to stop (could not find file {inst.pid_file})\n"


def test_zkcli_wrapper_create_get(inst):
    assert_started(inst.zooid("start"))
    hosts = f"127.0.0.1:{inst.port}"
    env = base_env()
    run = lambda *a: subprocess.run([ZKCLI_SH, "-server", hosts, *a], capture_output=True,  # noqa: E731
                                    text=True, timeout=CMD_TIMEOUT, env=env,
                                    stdin=subprocess.DEVNULL)
    r = run("create", "/abc", "hello")
    assert r.returncode == 0 and "Created /abc" in r.stdout + r.stderr, r.stdout + r.stderr
    r = run("get", "/abc")
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "hello", r.stdout + r.stderr
    assert inst.zooid("stop").returncode == 0


def test_start_twice_says_already_running(inst):
    assert_started(inst.zooid("start"))
    pid = inst.pid()
    r = inst.zooid("start")
    assert r.returncode == 1
    assert r.stdout == f"Starting zooid ... already running as process {pid}.\n"
    assert inst.pid() == pid
    assert servers_for(inst.cfg) == [pid]
    assert inst.zooid("stop").returncode == 0


def test_start_with_port_taken(inst):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", inst.port))
        holder.listen()
        r = inst.zooid("start")
    err = assert_failed(r, inst)
    assert f"cannot listen on 127.0.0.1:{inst.port}" in err, err
    assert "Address already in use" in err and "another process holds this port" in err, err
    assert f"process {os.getpid()}" in err, "the holder is named"


def test_start_with_datadir_a_file(inst):
    path = os.path.join(inst.root, "not-a-dir")
    open(path, "w").close()
    inst.write_cfg(data_dir=path)
    inst.pid_file = os.path.join(path, "zookeeper_server.pid")
    err = assert_failed(inst.zooid("start"), inst)
    assert f"dataDir {path} is not usable: it exists but is not a directory" in err, err


def test_start_with_unwritable_datadir(inst):
    os.makedirs(inst.data_dir)
    os.chmod(inst.data_dir, 0)
    prefix = ()
    user = None
    if os.geteuid() == 0:
        # root writes anywhere: run the command as nobody, as a service's User= would
        setpriv = shutil.which("setpriv")
        if not setpriv:
            pytest.skip("root, and no setpriv to drop privileges")
        os.chmod(inst.root, 0o755)
        os.chmod(inst.cfg, 0o644)
        prefix = (setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups")
        user = "nobody"
    r = inst.zooid("start", prefix=prefix, env=base_env(USER=user or os.environ.get("USER", "")))
    os.chmod(inst.data_dir, 0o755)
    err = assert_failed(r, inst)
    assert f"dataDir {inst.data_dir} is not writable by user" in err, err
    assert "Permission denied" in err, err


def test_start_with_config_error_names_file_and_line(inst):
    inst.write_cfg(lines=["tickTime=2000", f"dataDir={inst.data_dir}", "clientPort=21x81"])
    err = assert_failed(inst.zooid("start"), inst)
    assert f"zooid: {inst.cfg}:3: clientPort" in err, err


def test_child_error_is_read_from_its_output(inst):
    # Only the server itself finds this one (dataLogDir is a file): the reason comes from
    # the daemon's .out file.
    bad = os.path.join(inst.root, "logfile")
    open(bad, "w").close()
    inst.write_cfg([f"dataLogDir={bad}"])
    err = assert_failed(inst.zooid("start", env=base_env(ZOO_LOG_DIR=os.path.join(inst.root, "logs"))), inst)
    assert f"zooid: cannot load the data in {bad}" in err, err
    assert re.search(r"the server process \d+ exited with status 1; its output is in .*/logs/"
                     r"zookeeper-.+-server-.+\.out", err), err


def test_trailing_space_server_line_starts_with_warning(inst):
    # the seed's trap: ZooKeeper fails with "Address unresolved: 192.168.147.128:3888 "
    inst.write_cfg(["server.1=127.0.0.1:2888:3888 "])
    r = inst.zooid("start")
    assert_started(r)
    assert re.search(rf"zooid: warning: {re.escape(inst.cfg)}:5: trailing whitespace", r.stderr), r.stderr
    assert inst.zooid("status").stdout.splitlines()[-1] == "Mode: standalone"
    assert inst.zooid("stop").returncode == 0


def test_ensemble_config_checks(inst):
    servers = ["server.1=127.0.0.1:2888:3888", "server.2=127.0.0.1:2889:3889",
               "server.3=127.0.0.1:2890:3890"]
    os.makedirs(inst.data_dir)
    myid = os.path.join(inst.data_dir, "myid")
    with open(myid, "w") as f:
        f.write("abc\n")
    inst.write_cfg(servers)
    err = assert_failed(inst.zooid("start"), inst)
    assert f"zooid: {myid}: the content \"abc\" is not a server id number" in err, err

    with open(myid, "w") as f:
        f.write("1\n")
    inst.write_cfg([servers[0], "server.2=no-such-host.invalid:2889:3889", servers[2]])
    err = assert_failed(inst.zooid("start"), inst)
    assert f"zooid: {inst.cfg}:6: server.2: Address unresolved: no-such-host.invalid:3889" in err, err

    os.remove(myid)
    inst.write_cfg(servers)
    err = assert_failed(inst.zooid("start"), inst)
    assert f"{myid} is missing" in err, err


def test_restart(inst):
    assert_started(inst.zooid("start"))
    old = inst.pid()
    r = inst.zooid("restart")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "Stopping zooid ... STOPPED\nStarting zooid ... STARTED\n"
    new = inst.pid()
    assert new != old and proc_state(old) == "gone" and is_our_zooid(new)
    assert "Mode: standalone" in inst.stat()
    # restart of a stopped server just starts it
    assert inst.zooid("stop").returncode == 0
    r = inst.zooid("restart")
    assert r.returncode == 0 and r.stdout.endswith("Starting zooid ... STARTED\n"), r.stdout
    assert inst.zooid("stop").returncode == 0


def test_stale_and_foreign_pid_files(inst):
    os.makedirs(inst.data_dir)
    # a dead pid: stop cleans up, start starts
    dead = subprocess.Popen(["true"])
    dead.wait()
    with open(inst.pid_file, "w") as f:
        f.write(str(dead.pid))
    r = inst.zooid("stop")
    assert r.returncode == 0 and "is not running; removed the stale pid file" in r.stdout, r.stdout
    assert not os.path.exists(inst.pid_file)
    with open(inst.pid_file, "w") as f:
        f.write(str(dead.pid))
    assert_started(inst.zooid("start"))
    assert inst.pid() != dead.pid
    assert inst.zooid("stop").returncode == 0

    # a live process that is not a server: never signalled
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with open(inst.pid_file, "w") as f:
            f.write(str(sleeper.pid))
        r = inst.zooid("stop")
        assert r.returncode == 1 and "not a zooid server; not stopping it" in r.stderr, r.stderr
        assert sleeper.poll() is None
        assert_started(inst.zooid("start"))  # replaces the stale pid file
        assert inst.pid() != sleeper.pid
        assert sleeper.poll() is None
        assert inst.zooid("stop").returncode == 0
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stop_and_status_survive_a_config_broken_while_running(inst):
    assert_started(inst.zooid("start"))
    pid = inst.pid()
    with open(inst.cfg) as f:
        line = len(f.read().splitlines()) + 1
    with open(inst.cfg, "a") as f:
        f.write("tickTime=two seconds\n")
    r = inst.zooid("status")
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "Mode: standalone", r.stdout + r.stderr
    assert f"zooid: warning: {inst.cfg}:{line}: tickTime" in r.stderr, r.stderr
    r = inst.zooid("stop")
    assert r.returncode == 0 and r.stdout == "Stopping zooid ... STOPPED\n", r.stdout + r.stderr
    assert proc_state(pid) == "gone" and not os.path.exists(inst.pid_file)
    # start is strict
    err = assert_failed(inst.zooid("start"), inst)
    assert f"zooid: {inst.cfg}:{line}: tickTime" in err, err


def test_status_when_srvr_is_not_whitelisted(inst):
    # ZooKeeper answers srvr whatever the whitelist says, so status still works.
    inst.write_cfg(["4lw.commands.whitelist=ruok"])
    assert_started(inst.zooid("start"))
    r = inst.zooid("status")
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "Mode: standalone", r.stdout + r.stderr
    assert inst.zooid("stop").returncode == 0


def test_config_and_pid_file_from_environment(inst):
    conf = os.path.join(inst.root, "conf")
    os.makedirs(conf)
    os.rename(inst.cfg, os.path.join(conf, "zoo.cfg"))
    inst.cfg = os.path.join(conf, "zoo.cfg")
    pid_file = os.path.join(inst.root, "run", "zk.pid")
    env = base_env(ZOOCFGDIR=conf, ZOOPIDFILE=pid_file)
    r = inst.zooid("start", env=env, cfg=False)
    assert_started(r)
    assert f"Using config: {inst.cfg}" in r.stderr
    pid = inst.pid(pid_file)
    assert not os.path.exists(inst.pid_file)
    # the wrapper: --config DIR, and a bare cfg name looked up in ZOOCFGDIR
    for args in (["--config", conf, "status"], ["status", "zoo.cfg"]):
        r = inst.script(*args, env=base_env(ZOOPIDFILE=pid_file, **({} if args[0] == "--config" else {"ZOOCFGDIR": conf})))
        assert r.returncode == 0 and r.stdout.splitlines()[-1] == "Mode: standalone", (args, r.stdout, r.stderr)
        assert f"Using config: {inst.cfg}" in r.stderr
    r = inst.zooid("stop", env=env, cfg=False)
    assert r.returncode == 0 and not os.path.exists(pid_file) and proc_state(pid) == "gone"


def test_version(inst):
    for r in (inst.zooid("version", cfg=False), inst.script("version")):
        assert r.returncode == 0 and re.match(r"zooid 3\.8\.\d+-zooid-", r.stdout), r.stdout


def test_seed_walkthrough_with_zkserver_sh(inst):
    """The tutorials' local-mode walkthrough, verbatim commands, in a ZooKeeper-like install:
    cp zoo_sample.cfg zoo.cfg, set dataDir, bin/zkServer.sh start / status, zkCli.sh
    create/set/get, echo stat | nc, zkServer.sh restart / stop, the .out file in ZOO_LOG_DIR."""
    home = os.path.join(inst.root, "zookeeper")
    os.makedirs(os.path.join(home, "bin"))
    os.makedirs(os.path.join(home, "conf"))
    for name in ("zkServer.sh", "zkCli.sh"):
        shutil.copy(os.path.join(BIN_DIR, name), os.path.join(home, "bin", name))
    with open(os.path.join(home, "conf", "zoo_sample.cfg"), "w") as f:
        f.write("# The number of milliseconds of each tick\ntickTime=2000\ninitLimit=10\n"
                "syncLimit=5\ndataDir=/tmp/zookeeper\nclientPort=2181\n#maxClientCnxns=60\n"
                "#autopurge.snapRetainCount=3\n#autopurge.purgeInterval=1\n")
    script = f"""
set -u
cd {shlex.quote(home)}
export ZOOKEEPER_HOME={shlex.quote(home)}
export PATH=$PATH:$ZOOKEEPER_HOME/bin
export ZOO_LOG_DIR=$ZOOKEEPER_HOME/logs
mkdir -p zkData
cp conf/zoo_sample.cfg conf/zoo.cfg
sed -i -e "s#^dataDir=.*#dataDir=$ZOOKEEPER_HOME/zkData#" -e "s#^clientPort=.*#clientPort={inst.port}#" conf/zoo.cfg
echo "4lw.commands.whitelist=stat, ruok, srvr" >> conf/zoo.cfg
bin/zkServer.sh start || exit 11
bin/zkServer.sh status || exit 12
if [ -x {DEBIAN_ZKCLI} ]; then
  printf 'create /abc\\nset /abc "hello world"\\nget /abc\\nquit\\n' | bin/zkCli.sh -server 127.0.0.1:{inst.port} 2>/dev/null | grep -x "hello world" || exit 13
fi
echo stat | timeout 10 nc 127.0.0.1 {inst.port} | grep "^Mode: standalone" || exit 14
zkServer.sh restart || exit 15
zkServer.sh status || exit 16
ls logs/zookeeper-*-server-*.out || exit 17
bin/zkServer.sh stop || exit 18
bin/zkServer.sh status && exit 19
test ! -e zkData/zookeeper_server.pid || exit 20
echo WALKTHROUGH-OK
"""
    inst.pid_file = os.path.join(home, "zkData", "zookeeper_server.pid")
    inst.cfg = os.path.join(home, "conf", "zoo.cfg")
    env = base_env()
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                       timeout=4 * CMD_TIMEOUT, env=env, stdin=subprocess.DEVNULL)
    inst.note_pid()
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "WALKTHROUGH-OK" in r.stdout, f"rc={r.returncode}\n{out}"
    assert out.count("Starting zooid ... STARTED") == 2, out
    assert out.count("Mode: standalone") >= 3, out
    assert out.count(f"Using config: {inst.cfg}") >= 5, out
    assert NOT_RUNNING in out


def unit_commands(tmp, cfg):
    """packaging/zooid.service's settings, with its paths moved under `tmp`."""
    subst = [("/usr/bin/zooid", ZOOID_BIN), ("/etc/zooid/zoo.cfg", cfg),
             ("/run/zooid", os.path.join(tmp, "run")), ("/var/log/zooid", os.path.join(tmp, "log"))]
    text = open(UNIT).read()
    for a, b in subst:
        text = text.replace(a, b)
    settings = {}
    env = {}
    for line in text.splitlines():
        if "=" not in line or line.startswith(("#", "[")):
            continue
        key, value = line.split("=", 1)
        if key == "Environment":
            k, v = value.split("=", 1)
            env[k] = v
        else:
            settings[key] = value
    return text, settings, env


def test_systemd_unit_commands(inst):
    text, unit, unit_env = unit_commands(inst.root, inst.cfg)
    assert unit["Type"] == "forking" and unit["PIDFile"] == unit_env["ZOOPIDFILE"]
    if shutil.which("systemd-analyze"):
        local = os.path.join(inst.root, "zooid.service")
        with open(local, "w") as f:
            f.write(text.replace("User=zookeeper", "User=root").replace("Group=zookeeper", "Group=root"))
        r = subprocess.run(["systemd-analyze", "verify", local], capture_output=True, text=True,
                           timeout=CMD_TIMEOUT)
        assert r.returncode == 0, r.stdout + r.stderr
    # what systemd does: RuntimeDirectory=, then ExecStart= with Environment=; with
    # Type=forking, success means exit 0 and a live main pid in PIDFile=
    os.makedirs(os.path.join(inst.root, "run"))
    env = base_env(**unit_env)
    r = subprocess.run(shlex.split(unit["ExecStart"]), capture_output=True, text=True,
                       timeout=CMD_TIMEOUT, env=env, stdin=subprocess.DEVNULL)
    inst.note_pid(unit["PIDFile"])
    assert r.returncode == 0, r.stdout + r.stderr
    pid = inst.pid(unit["PIDFile"])
    assert is_our_zooid(pid)
    assert any(n.endswith(".out") for n in os.listdir(unit_env["ZOO_LOG_DIR"]))
    assert "Mode: standalone" in inst.stat()
    r = subprocess.run(shlex.split(unit["ExecStop"]), capture_output=True, text=True,
                       timeout=CMD_TIMEOUT, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    assert proc_state(pid) == "gone" and not os.path.exists(unit["PIDFile"])
