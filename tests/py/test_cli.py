"""`zooid cli` against Debian's zkCli.sh: the same commands, the same output.

Each comparison runs Debian's zkCli.sh against a fresh Apache ZooKeeper (the oracle) and
`zooid cli` against a fresh zooid, with the same operations in the same order, so zxids
match and the outputs must be equal once timestamps, session ids, the port and the version
line are normalised. stdout and stderr are compared separately (zkCli does not flush them in
step). zkCli prints watch events from a thread of their own, so they may land between other
lines; they are compared as their own list, in order.

Also here: watch events caused by another client, reconnection across the server list (a
dead first server, a dropped connection with the session re-attached), and the interactive
mode on a pseudo-terminal (tab completion, history, redo).
"""

import os
import pty
import re
import select
import signal
import subprocess
import time

import pytest

from conftest import ZOOID_BIN, free_port

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
HAVE_ZKCLI = os.access(ZKCLI, os.X_OK)
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CMD_TIMEOUT = 60
NO_REAP_MS = 3_600_000  # no container/TTL reaping during a test
# One-shot runs leave their sessions open (as zkCli does); a long session timeout keeps their
# expiry (which spends a zxid) out of the test.
SESSION_MS = "60000"

needs_zkcli = pytest.mark.skipif(not HAVE_ZKCLI, reason="Debian's zkCli.sh is not installed")


@pytest.fixture
def pair(server_launcher):
    """A fresh zooid and a fresh oracle, stopped after the test."""
    with server_launcher("zooid", container_interval_ms=NO_REAP_MS) as z, \
            server_launcher("oracle", container_interval_ms=NO_REAP_MS) as o:
        yield {"zooid": z, "oracle": o}


@pytest.fixture
def zooid(server_launcher):
    with server_launcher("zooid", container_interval_ms=NO_REAP_MS) as z:
        yield z


def zkcli_env():
    env = dict(os.environ)
    env["CLIENT_JVMFLAGS"] = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto -XX:-UsePerfData"
    return env


def cli_command(kind, hosts, args=(), timeout=SESSION_MS):
    """zkCli.sh for the oracle side, `zooid cli` for the zooid side."""
    base = [ZKCLI] if kind == "oracle" else [ZOOID_BIN, "cli"]
    return base + ["-server", hosts, "-timeout", timeout, *args]


def start_cli(kind, hosts, args=(), stdin=False, timeout=SESSION_MS):
    return subprocess.Popen(cli_command(kind, hosts, args, timeout),
                            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=zkcli_env(), start_new_session=True)


def finish(proc, stdin_text=None):
    try:
        out, err = proc.communicate(stdin_text.encode() if stdin_text is not None else None,
                                    timeout=CMD_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        raise
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


class Output:
    """One run's normalised output: stdout without events, the events, stderr, exit code."""

    def __init__(self, rc, out, err, port):
        self.rc = rc
        lines = normalise(out, port)
        self.events = [x for x in lines if x.startswith("WatchedEvent ")]
        self.out = strip_events(lines)
        self.err = normalise(err, port)
        self.raw_out = out

    def as_tuple(self):
        return self.rc, self.out, self.events, self.err

    def __repr__(self):
        return f"rc={self.rc}\nstdout={self.out}\nevents={self.events}\nstderr={self.err}"


def normalise(text, port):
    lines = []
    for line in text.splitlines():
        line = line.rstrip()
        if line.startswith("SLF4J:"):
            continue
        line = line.replace(f"127.0.0.1:{port}", "HOST")
        line = re.sub(r"^([cm]time = ).*", r"\1<time>", line)
        line = re.sub(r"^ephemeralOwner = 0x[0-9a-f]{6,}$", "ephemeralOwner = <session>", line)
        line = re.sub(r"^ZooKeeper CLI version: .*", "ZooKeeper CLI version: <version>", line)
        lines.append(line)
    return lines


def strip_events(lines):
    """Drop each event (`\\nWATCHER::` and `\\nWatchedEvent ...`, two printlns each)."""
    out = []
    for line in lines:
        if line == "WATCHER::" or line.startswith("WatchedEvent "):
            if out and out[-1] == "":
                out.pop()
            continue
        out.append(line)
    return out


def run_both(pair, args=(), stdin_text=None):
    """The same invocation on both sides, concurrently: {"zooid": Output, "oracle": Output}."""
    procs = {kind: start_cli(kind, srv.hosts, args, stdin=stdin_text is not None)
             for kind, srv in pair.items()}
    try:
        return {kind: Output(*finish(p, stdin_text), pair[kind].port) for kind, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)


def diff_text(what, z, o):
    import difflib
    d = "\n".join(difflib.unified_diff(o, z, "oracle", "zooid", lineterm="", n=3))
    return f"{what} differs (- oracle/zkCli.sh, + zooid/zooid cli):\n{d}"


CONNECTED = "WatchedEvent state:SyncConnected type:None path:null"
CLOSED = "WatchedEvent state:Closed type:None path:null"


def assert_same(res, what, racy_connect=False):
    """Equal outputs. `racy_connect`: zkCli prints the connected event from a thread of its
    own and exits as soon as the command is done, so whether that event made it out before
    a short run ended is a race (zooid cli prints it before the first reply's output, and
    connects only when a command needs the server). Leave that event out then."""
    z, o = res["zooid"], res["oracle"]
    assert z.out == o.out, diff_text(f"{what}: stdout", z.out, o.out)
    assert z.err == o.err, diff_text(f"{what}: stderr", z.err, o.err)
    ze, oe = z.events, o.events
    if racy_connect:
        ze, oe = [e for e in ze if e != CONNECTED], [e for e in oe if e != CONNECTED]
    if ze[-1:] == [CLOSED] and oe == ze[:-1]:
        # `quit` ends the JVM right after closing; its event thread may not print in time.
        oe = ze
    assert ze == oe, diff_text(f"{what}: watch events", ze, oe)
    assert z.rc == o.rc, f"{what}: exit code zooid {z.rc}, oracle {o.rc}"


# ----------------------------------------------------------------------- piped script

SCRIPT = [
    # create: modes, data, quoting, ACLs
    "create /app root",
    "create /app/a alpha",
    "create /app/b 'two words'",
    'create /app/c "double quoted"',
    "create /app/nodata",
    "create /app/empty ''",
    "create -s /app/seq- one",
    "create -s /app/seq- two",
    "create -e /app/eph e",
    "create -e -s /app/eseq- es",
    "create -c /app/cont",
    "create -t 3600000 /app/ttl t",
    "create -s -t 3600000 /app/ttlseq- t",
    "create /app/ro x world:anyone:r",
    "create /app/zero x world:anyone:zz",
    "create /app/bad x foo:bar:cdrwa",
    "create /app/noacl x bad",
    "create /app/a",
    "create /missing/child",
    "create /app/eph/child",
    "create relative",
    "create /app/trailing/",
    "create -c -e /app/x",
    "create -t abc /app/x",
    "create -t 0 /app/x",
    "create -t 5 -e /app/x",
    "create -t 5 -c /app/x",
    "create",
    # ls, get, stat, set, delete
    "ls /app",
    "ls -s /app",
    "ls -R /app",
    "ls -R /missing",
    "ls /missing",
    "ls -x /",
    "ls -sw",
    "ls",
    "get /app/a",
    "get -s /app/a",
    "get /app/nodata",
    "get /app/empty",
    "get /app/b",
    "get /missing",
    "get /app/a//b",
    "get /app/.",
    "get",
    "stat /app/a",
    "stat /missing",
    "stat /app/ttl",
    "set /app/a alpha2",
    "set -s /app/a alpha3",
    "set -v 9 /app/a nope",
    "set -v 3 /app/a yes",
    "set /app/ro nope",
    "set -v",
    "set /app/a",
    "delete -v 7 /app/b",
    "delete /app",
    "delete /missing",
    "delete /app/c",
    "delete",
    # ACLs and auth
    "getAcl /app/a",
    "getAcl -s /app/ro",
    "getAcl /zookeeper/config",
    "getAcl /missing",
    "setAcl /app/b world:anyone:cdr",
    "setAcl -s /app/a world:anyone:cdrwa",
    "setAcl -v 5 /app/a world:anyone:cdrwa",
    "setAcl /app/a",
    "getAcl /app/b",
    "setAcl -R /app/nodata world:anyone:cdrwa",
    "addauth digest alice:secret",
    "whoami",
    "create /app/authed x auth:alice:secret:cdrwa",
    "getAcl /app/authed",
    "create /app/digest x digest:bob:cHw=:r",
    "getAcl /app/digest",
    "addauth",
    # misc reads
    "getEphemerals",
    "getEphemerals /app",
    "getEphemerals /zz",
    "getEphemerals bad",
    "getAllChildrenNumber /app",
    "getAllChildrenNumber /",
    "getAllChildrenNumber /missing",
    "getAllChildrenNumber",
    "sync /app",
    "sync /missing",
    "sync bad",
    "sync",
    "config",
    "config -s",
    "config -c",
    "version",
    "version extra",
    "reconfig -add server.5=127.0.0.1:1:2;3",
    "reconfig",
    # quotas
    "setquota -n 10 /app",
    "listquota /app",
    "setquota -b 100 /app",
    "setquota -N 20 /app",
    "setquota -B 200 /app",
    "listquota /app",
    "get /zookeeper/quota/app/zookeeper_limits",
    "get /zookeeper/quota/app/zookeeper_stats",
    "setquota -n 5 /app/a",
    "setquota -n 1 /app/a/x",
    "setquota -n 3 /zookeeper",
    "setquota -n 5 /",
    "setquota -n 5 /missing",
    "setquota -n 5 /zookeeper/quota/x",
    "setquota -n 0 /app",
    "setquota -b -1 /app",
    "setquota -n x /app",
    "setquota -n 1 -b 2 /app",
    "setquota /app",
    "listquota /missing",
    "delquota -n /app",
    "listquota /app",
    "delquota -B /app",
    "listquota /app",
    "delquota /app",
    "delquota /app",
    "listquota /app",
    "ls /zookeeper/quota",
    "delquota",
    # watches on this session's own writes
    "get -w /app/a",
    "set /app/a w1",
    "ls -w /app",
    "create /app/w w",
    "stat -w /app/notyet",
    "create /app/notyet n",
    "get /app/a watch",
    "ls /app watch",
    "stat /app/a watch",
    "delete /app/w 0",
    "set /app/a w2",
    "addWatch /app/w2",
    "create /app/w2 x",
    "create /app/w2/deep x",
    "set /app/w2/deep y",
    "removewatches /app/w2",
    "set /app/w2/deep z",
    "addWatch -m PERSISTENT /app/w3",
    "create /app/w3 x",
    "create /app/w3/kid x",
    "removewatches /app/w3 -c",
    "removewatches /app/w3",
    "removewatches /app/w3",
    "get -w /app/a",
    "removewatches /app/a -c",
    "removewatches /app/a -d",
    "ls -w /app/a",
    "removewatches /app/a -c",
    "addWatch -m bogus /app",
    "addWatch /app /x",
    "removewatches",
    "ls -R -w /app/w2",
    "deleteall /app/w2",
    "printwatches",
    # deleteall
    "create /tree t",
    "create /tree/a a",
    "create /tree/a/1 1",
    "create /tree/a/2 2",
    "create /tree/b b",
    "create /tree/b/1 1",
    "deleteall -b 2 /tree",
    "ls /tree",
    "deleteall /missing",
    "deleteall -b x /app",
    "deleteall",
    # shell commands
    "history",
    "redo 0",
    "redo 99",
    "redo -1",
    "redo 0x1d",
    "redo 010",
    "redo",
    "foo bar",
    "ls /",
    "close",
    "ls /",
    "history",
    "connect",
    "ls /app",
    "getEphemerals",
    "quit",
]


@needs_zkcli
def test_piped_script_matches_zkcli(pair):
    """Every command, its flags and its error cases, read from stdin (no prompt)."""
    res = run_both(pair, stdin_text="".join(f"{c}\n" for c in SCRIPT))
    assert_same(res, "piped script")
    z = res["zooid"]
    assert z.rc == 0
    assert z.out[:2] == ["Connecting to HOST", "Welcome to ZooKeeper!"]
    # Concrete expectations, so a shared mistake cannot pass unnoticed.
    # (values read off the oracle's run of this script)
    for line in ("[a, b, c, cont, empty, eph, eseq-0000000008, nodata, ro, seq-0000000005, "
                 "seq-0000000006, ttl, ttlseq-0000000011, zero]",
                 "alpha", "null", "two words", "'world,'anyone", ": r", ": cdr",
                 "'digest,'alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=", "Auth scheme: User",
                 "digest: alice", "ip: 127.0.0.1", "Sync is OK", "[/app/eseq-0000000008, /app/eph]",
                 "Output quota for /app count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=-1",
                 "Output quota for /app count=10,bytes=100=;byteHardLimit=200;countHardLimit=20",
                 "Output stat for /app count=16,bytes=34",
                 "[Warning]: the count quota you create is less than the existing count:16",
                 "Quota does not exist for /app", "printwatches is on", "Not connected",
                 "cZxid = 0x2", "pZxid = 0x10", "cversion = 14", "numChildren = 14",
                 "/app/ttlseq-0000000011", "[app, zookeeper]"):
        assert line in z.out, f"{line!r} missing from zooid cli's stdout:\n" + "\n".join(z.out)
    for line in ("Created /app", "Created /app/seq-0000000005", "Created /app/eseq-0000000008",
                 "Node already exists: /app/a", "Node does not exist: /missing/child",
                 "Ephemerals cannot have children: /app/eph/child",
                 "Path must start with / character", "Path must not end with / character",
                 "Insufficient permission : /app/ro", "version No is not valid : /app/a",
                 "Node not empty: /app", "KeeperErrorCode = InvalidACL for /app/bad",
                 "Acl is not valid : /app/bad", "Acl is not valid : null",
                 "bad does not have the form scheme:id:perm", "Unknown perm type: z",
                 "-t argument must be a long value",
                 "ttl must be positive and cannot be larger than: 1099511627775",
                 "TTLs cannot be used with Ephemeral znodes",
                 "TTLs cannot be used with Container znodes",
                 "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.",
                 "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: -x",
                 "org.apache.commons.cli.MissingArgumentException: Missing argument for option: v",
                 "org.apache.commons.cli.AlreadySelectedException: The option 'b' was specified "
                 "but an option from this group has already been selected: 'n'",
                 "KeeperErrorCode = Reconfig is disabled", "KeeperErrorCode = No such watcher for /app/w3",
                 "absolute path is /zookeeper/quota/app/zookeeper_limits",
                 "quota for /missing does not exist.", "/app/a has a parent /app which has a quota",
                 "/app/a/x does not exist.", "Insufficient permission : /app/zero",
                 "org.apache.commons.cli.MissingOptionException: Missing required option: "
                 "[-n num soft quota, -b bytes soft quota, -N num hard quota, -B bytes hard quota]",
                 "cannot set a quota under the path: /zookeeper/quota",
                 "the num quota must be greater than zero",
                 "Command index out of range", "Command not found: Command not found foo",
                 "'get path [watch]' has been deprecated. Please use 'get [-s] [-w] path' instead.",
                 "ls [-s] [-w] [-R] path", "deleteall path [-b batch size]"):
        assert line in z.err, f"{line!r} missing from zooid cli's stderr:\n" + "\n".join(z.err)
    assert "WatchedEvent state:SyncConnected type:NodeDataChanged path:/app/a" in z.events
    assert "WatchedEvent state:SyncConnected type:NodeCreated path:/app/w2/deep" in z.events
    assert "WatchedEvent state:SyncConnected type:PersistentWatchRemoved path:/app/w2" in z.events
    assert z.events[-1] == "WatchedEvent state:Closed type:None path:null"
    assert z.events.count("WatchedEvent state:Closed type:None path:null") == 2


@needs_zkcli
def test_watch_events_print_in_wire_order_on_own_writes(pair):
    """A write on a watched node: the event comes off the wire before the reply, and zooid
    cli prints it before the write's own output (zkCli's event thread usually does too)."""
    script = ["create /w v0", "get -w /w", "set -s /w v1", "ls -w /", "create /w2 x", "quit"]
    res = run_both(pair, stdin_text="".join(f"{c}\n" for c in script))
    assert_same(res, "own-write watches")
    raw = res["zooid"].raw_out
    event = "WatchedEvent state:SyncConnected type:NodeDataChanged path:/w"
    assert raw.index(event) < raw.index("cZxid = 0x"), raw


# ----------------------------------------------------------------------- one-shot mode

ONE_SHOT = [
    ("create", "/a", "hello"),
    ("create", "/a/kid"),
    ("create", "-e", "/a/eph", "x"),
    ("create", "-s", "/a/s-"),
    ("create", "/a"),
    ("ls", "/"),
    ("ls", "-s", "/a"),
    ("ls", "-R", "/"),
    ("get", "-s", "/a"),
    ("get", "/a/kid"),
    ("get", "/missing"),
    ("set", "-s", "/a", "hello2"),
    ("set", "-v", "7", "/a", "x"),
    ("stat", "/a"),
    ("stat", "-w", "/missing"),
    ("getAcl", "/a"),
    ("setAcl", "/a/kid", "world:anyone:r"),
    ("getAcl", "-s", "/a/kid"),
    ("set", "/a/kid", "nope"),
    ("sync", "/a"),
    ("config",),
    ("getAllChildrenNumber", "/"),
    ("getEphemerals",),
    ("whoami",),
    ("addauth", "digest", "u:p"),
    ("setquota", "-n", "3", "/a"),
    ("listquota", "/a"),
    ("delquota", "/a"),
    ("addWatch", "/a"),
    ("removewatches", "/a"),
    ("printwatches",),
    ("history",),
    ("redo", "1"),
    ("version",),
    ("delete", "/a"),
    ("delete", "-v", "0", "/a/s-0000000002"),
    ("deleteall", "/a"),
    ("ls", "/"),
    ("close",),
    ("quit",),
    ("create", "bad"),
    ("ls",),
    ("nosuchcommand", "x"),
]


@needs_zkcli
def test_one_shot_commands_match_zkcli(pair):
    """`zkCli.sh -server H cmd args`: one command per process, its output and exit code."""
    results = []
    for args in ONE_SHOT:
        res = run_both(pair, args=args)
        assert_same(res, "one-shot " + " ".join(args), racy_connect=True)
        results.append(res["zooid"])
    by_cmd = {" ".join(a): r for a, r in zip(ONE_SHOT, results)}
    assert by_cmd["create /a hello"].err == ["Created /a"]
    assert by_cmd["create /a"].rc == 1 and by_cmd["create /a"].err == ["Node already exists: /a"]
    assert by_cmd["get /missing"].rc == 1
    assert by_cmd["get /missing"].err == ["Node does not exist: /missing"]
    assert results[ONE_SHOT.index(("ls", "/"))].out[-1] == "[a, zookeeper]"
    assert by_cmd["set -v 7 /a x"].err == ["version No is not valid : /a"]
    assert by_cmd["set /a/kid nope"].err == ["Insufficient permission : /a/kid"]
    assert by_cmd["history"].out[-1] == "0 - null"
    assert by_cmd["redo 1"].err == ["Command index out of range"]
    assert by_cmd["ls"].rc == 1 and by_cmd["ls"].err == ["ls [-s] [-w] [-R] path"]
    nf = by_cmd["nosuchcommand x"]
    assert nf.rc == 127
    assert nf.err[0] == "ZooKeeper -server host:port -client-configuration properties-file cmd args"
    assert nf.err[-1] == "Command not found: Command not found nosuchcommand"
    assert "\tls [-s] [-w] [-R] path" in nf.err
    assert by_cmd["deleteall /a"].rc == 0
    assert results[len(ONE_SHOT) - 1 - ONE_SHOT[::-1].index(("ls", "/"))].out == [
        "Connecting to HOST", "[zookeeper]"]
    assert by_cmd["version"].out == ["Connecting to HOST", "ZooKeeper CLI version: <version>"]
    assert by_cmd["close"].events == [CONNECTED, "WatchedEvent state:Closed type:None path:null"]
    # zooid cli: the connected event whenever the command used the server, else none.
    assert results[0].events == [CONNECTED]
    assert by_cmd["ls -R /"].events == [CONNECTED]
    assert by_cmd["version"].events == [] and by_cmd["nosuchcommand x"].events == []


@needs_zkcli
def test_uncaught_number_errors_end_the_shell(pair):
    """zkCli does not catch a bad version number: the JVM prints the exception and exits 1,
    skipping the rest of the script."""
    res = run_both(pair, stdin_text="create /n x\ndelete -v abc /n\nls /\n")
    z, o = res["zooid"], res["oracle"]
    assert z.rc == o.rc == 1
    assert z.err[-1] == o.err[1] == ('Exception in thread "main" java.lang.NumberFormatException: '
                                     'For input string: "abc"')
    assert "[n, zookeeper]" not in z.out and "[n, zookeeper]" not in o.out


@needs_zkcli
def test_exit_code_of_a_script_is_its_last_commands(pair):
    for script, rc in (("get /missing\n", 1), ("get /missing\nquit\n", 1),
                       ("get /missing\nls /\n", 0), ("foo\n", 127)):
        res = run_both(pair, stdin_text=script)
        assert_same(res, repr(script), racy_connect=True)
        assert res["zooid"].rc == rc, script


# ----------------------------------------------------------------------- other clients

def read_until(proc, needle, buf, timeout=20.0):
    """Read proc's stdout until `needle` is in what was read; returns the new buffer."""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{needle!r} not seen within {timeout}s:\n{buf}")
        r, _, _ = select.select([proc.stdout], [], [], min(left, 0.5))
        if r:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise AssertionError(f"shell exited before {needle!r}:\n{buf}")
            buf += chunk.decode("utf-8", "replace")
    return buf


def watch_then_write(kind, server):
    """One shell sets watches, another process writes; return the first shell's output."""
    shell = start_cli(kind, server.hosts, stdin=True)
    try:
        def send(line):
            shell.stdin.write(f"{line}\n".encode())
            shell.stdin.flush()
        send("create /ww v0")
        send("create /ww/kid k")
        send("get -w /ww")
        buf = read_until(shell, "v0\n", "")
        send("ls -w /ww")
        buf = read_until(shell, "[kid]\n", buf)
        send("addWatch /deep")
        send("printwatches")
        buf = read_until(shell, "printwatches is on\n", buf)
        writer = start_cli(kind, server.hosts, ["set", "/ww", "v1"])
        assert finish(writer)[0] == 0
        buf = read_until(shell, "type:NodeDataChanged path:/ww", buf)
        writer = start_cli(kind, server.hosts, ["create", "/ww/kid2"])
        assert finish(writer)[0] == 0
        buf = read_until(shell, "type:NodeChildrenChanged path:/ww", buf)
        writer = start_cli(kind, server.hosts, ["create", "/deep", "d"])
        assert finish(writer)[0] == 0
        buf = read_until(shell, "type:NodeCreated path:/deep", buf)
        send("quit")
        rc, out, err = finish(shell)
        return Output(rc, buf + out, err, server.port)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait(10)


@needs_zkcli
def test_watch_events_from_another_client(pair):
    """get -w / ls -w / addWatch, then writes from other processes: the events print as
    zkCli prints them, while the shell waits for input."""
    results = {kind: watch_then_write(kind, srv) for kind, srv in pair.items()}
    assert_same(results, "watch events from another client")
    assert results["zooid"].events == [
        "WatchedEvent state:SyncConnected type:None path:null",
        "WatchedEvent state:SyncConnected type:NodeDataChanged path:/ww",
        "WatchedEvent state:SyncConnected type:NodeChildrenChanged path:/ww",
        "WatchedEvent state:SyncConnected type:NodeCreated path:/deep",
        "WatchedEvent state:Closed type:None path:null",
    ]
    raw = results["zooid"].raw_out
    assert "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:/ww\n" in raw


def test_printwatches_off_silences_events(zooid):
    script = "create /p x\nprintwatches off\nget -w /p\nset /p y\nprintwatches\nprintwatches on\n" \
             "get -w /p\nset /p z\nquit\n"
    rc, out, err = finish(start_cli("zooid", zooid.hosts, stdin=True), script)
    lines = normalise(out, zooid.port)
    assert rc == 0, err
    assert "printwatches is off" in lines
    assert lines.count("WatchedEvent state:SyncConnected type:NodeDataChanged path:/p") == 1
    assert lines.index("printwatches is off") < lines.index(
        "WatchedEvent state:SyncConnected type:NodeDataChanged path:/p")


# ----------------------------------------------------------------------- reconnection

def dead_port():
    return free_port()  # nothing listens there


def test_first_server_dead_one_shot(zooid):
    hosts = f"127.0.0.1:{dead_port()},{zooid.hosts}"
    rc, out, err = finish(start_cli("zooid", hosts, ["create", "/fd", "x"]))
    assert rc == 0 and err.strip() == "Created /fd", (out, err)
    rc, out, err = finish(start_cli("zooid", hosts, ["get", "/fd"]))
    assert rc == 0 and out.splitlines()[-1] == "x", (out, err)
    assert out.splitlines()[0] == f"Connecting to {hosts}"
    assert "WatchedEvent state:SyncConnected type:None path:null" in out


def test_all_servers_dead_is_connection_loss():
    hosts = f"127.0.0.1:{dead_port()},127.0.0.1:{dead_port()}"
    start = time.monotonic()
    rc, out, err = finish(start_cli("zooid", hosts, ["ls", "/"]))
    assert rc == 1
    assert err.strip() == "KeeperErrorCode = ConnectionLoss for /"
    assert time.monotonic() - start < 10
    # Commands that need no server still work.
    rc, out, err = finish(start_cli("zooid", hosts, ["version"]))
    assert rc == 0 and out.splitlines()[-1].startswith("ZooKeeper CLI version: 3.8"), out


@needs_zkcli
def test_first_server_dead_matches_zkcli(pair):
    hosts = {kind: f"127.0.0.1:{dead_port()},{srv.hosts}" for kind, srv in pair.items()}
    outs = {}
    for kind in pair:
        # zkCli shuffles the list and may lose the first request to the dead server
        # (ConnectionLoss, about half the time); retry it like a script would, often enough
        # that five losses in a row cannot fail the test (30 tries: 1 in 10^9).
        for _ in range(30):
            rc, out, err = finish(start_cli(kind, hosts[kind], ["ls", "/zookeeper"]))
            if rc == 0:
                break
        outs[kind] = Output(rc, out.replace(hosts[kind], "HOSTS"), err, 0)
    assert outs["zooid"].as_tuple() == outs["oracle"].as_tuple()
    assert outs["zooid"].out[-1] == "[config, quota]"


def test_session_survives_a_dropped_connection(zooid):
    """The connection drops under a live session: requests in flight fail with ConnectionLoss,
    the shell reconnects (through the second address), re-attaches the same session (its
    ephemeral node survives), re-registers its watches and re-sends its auth."""
    from tcpproxy import TcpProxy
    with TcpProxy("127.0.0.1", zooid.port) as proxy:
        hosts = f"127.0.0.1:{dead_port()},{proxy.hosts}"
        shell = start_cli("zooid", hosts, stdin=True, timeout="20000")
        try:
            def send(line):
                shell.stdin.write(f"{line}\n".encode())
                shell.stdin.flush()
            send("addauth digest carol:pw")
            send("create -e /re-eph x auth:carol:pw:cdrwa")
            send("get -w /re-eph")
            buf = read_until(shell, "x\n", "")
            assert proxy.drop_all() == 1
            buf = read_until(shell, "WatchedEvent state:Disconnected type:None path:null", buf)
            buf = read_until(shell, "WatchedEvent state:SyncConnected type:None path:null", buf.replace(
                "WatchedEvent state:SyncConnected type:None path:null", "", 1))
            send("getEphemerals")
            buf = read_until(shell, "[/re-eph]\n", buf)
            # The data watch was re-registered; the auth was re-sent (the node is digest-only).
            writer = start_cli("zooid", zooid.hosts, ["set", "/re-eph", "y"])
            assert finish(writer)[0] == 1  # no auth: Insufficient permission
            send("set /re-eph y")
            buf = read_until(shell, "type:NodeDataChanged path:/re-eph", buf)
            # While no server takes connections, requests fail with ConnectionLoss.
            proxy.set_accepting(False)
            proxy.drop_all()
            buf = read_until(shell, "WatchedEvent state:Disconnected", buf.replace(
                "WatchedEvent state:Disconnected", "", 1))
            send("ls /")
            send("printwatches")
            buf = read_until(shell, "printwatches is on\n", buf)
            proxy.set_accepting(True)
            send("get /re-eph")
            buf = read_until(shell, "y\n", buf)
            send("quit")
            rc, out, err = finish(shell)
        finally:
            if shell.poll() is None:
                os.killpg(shell.pid, signal.SIGKILL)
                shell.wait(10)
    assert "KeeperErrorCode = ConnectionLoss for /" in err, err
    assert "Created /re-eph" in err
    # One session throughout: its ephemeral is gone only after quit closed it.
    rc, out2, _ = finish(start_cli("zooid", zooid.hosts, ["ls", "/"]))
    assert out2.splitlines()[-1] == "[zookeeper]", out2


# ----------------------------------------------------------------------- terminal

class Pty:
    """`zooid cli` on a pseudo-terminal."""

    def __init__(self, hosts):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child
            os.execv(ZOOID_BIN, [ZOOID_BIN, "cli", "-server", hosts])
        self.buf = b""

    def expect(self, pattern, timeout=20.0):
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        while True:
            m = rx.search(self.buf)
            if m:
                seen, self.buf = self.buf[:m.end()], self.buf[m.end():]
                return seen.decode("utf-8", "replace")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pattern!r} not seen within {timeout}s: {self.buf!r}")
            r, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if r:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"terminal closed before {pattern!r}: {self.buf!r}")
                self.buf += chunk

    def send(self, text):
        os.write(self.fd, text.encode())

    def prompt(self, n):
        return self.expect(r"\[zk: [^\]]*\(CONNECTED\) %d\] " % n)

    def close(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        os.close(self.fd)


def plain(s):
    """Terminal output without escape sequences and carriage returns."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", s).replace("\r", "")


def test_interactive_completion_history_and_redo(zooid):
    term = Pty(zooid.hosts)
    try:
        banner = plain(term.prompt(0))
        assert banner.startswith(f"Connecting to {zooid.hosts}\nWelcome to ZooKeeper!\n"
                                 "JLine support is enabled\n"), banner
        assert "WatchedEvent state:SyncConnected type:None path:null" in banner
        # A znode path completes to the child of its parent.
        term.send("ls /zoo\t")
        term.expect(r"ls /zookeeper")
        term.send("\r")
        assert "[config, quota]" in plain(term.prompt(1))
        # A path under it, then a command name.
        term.send("get /zookeeper/q\t")
        term.expect(r"get /zookeeper/quota")
        term.send("\r")
        term.prompt(2)
        term.send("getEph\t")
        term.expect(r"getEphemerals")
        term.send(" /\r")
        assert "[]" in plain(term.prompt(3))
        term.send("create /pty hi\r")
        assert "Created /pty" in plain(term.prompt(4))
        term.send("history\r")
        hist = plain(term.prompt(5))
        for line in ("0 - ls /zookeeper", "1 - get /zookeeper/quota", "2 - getEphemerals /",
                     "3 - create /pty hi", "4 - history"):
            assert line in hist, hist
        # redo runs an earlier command again and records it under its own number.
        term.send("redo 0\r")
        assert "[config, quota]" in plain(term.prompt(6))
        term.send("history\r")
        assert "5 - ls /zookeeper" in plain(term.prompt(7))
        # The arrow keys walk the line editor's history.
        term.send("get /pty\r")
        assert "hi" in plain(term.prompt(8))
        term.send("\x1b[A\r")
        assert "hi" in plain(term.prompt(9))
        # An event that arrives while a line is being edited is printed.
        term.send("get -w /pty\r")
        term.prompt(10)
        rc, _, _ = finish(start_cli("zooid", zooid.hosts, ["set", "/pty", "changed"]))
        assert rc == 0
        term.expect(r"WatchedEvent state:SyncConnected type:NodeDataChanged path:/pty")
        term.send("quit\r")
        term.expect(r"WatchedEvent state:Closed type:None path:null")
        _, status = os.waitpid(term.pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        term.pid = 0
    finally:
        if term.pid:
            term.close()
        else:
            os.close(term.fd)


# ----------------------------------------------------------------------- bin/zkCli.sh

def test_bin_zkcli_sh_runs_zooid_cli(zooid):
    env = dict(os.environ, ZOOID_BIN=ZOOID_BIN)
    env.pop("ZKCLI", None)
    script = os.path.join(REPO, "bin", "zkCli.sh")
    r = subprocess.run([script, "-server", zooid.hosts, "create", "/sh", "v"],
                       capture_output=True, text=True, timeout=CMD_TIMEOUT, env=env)
    assert r.returncode == 0 and r.stderr.strip() == "Created /sh", r
    r = subprocess.run([script, "-server", zooid.hosts, "version"],
                       capture_output=True, text=True, timeout=CMD_TIMEOUT, env=env)
    assert r.stdout.splitlines()[-1].startswith("ZooKeeper CLI version: 3.8.4-zooid-"), r
    r = subprocess.run([script, "-server", zooid.hosts], input="get /sh\nquit\n",
                       capture_output=True, text=True, timeout=CMD_TIMEOUT, env=env)
    assert r.returncode == 0 and "v" in r.stdout.splitlines(), r
