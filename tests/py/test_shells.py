"""Debian's shells against zooid and the oracle: the Java zkCli.sh and the C cli_mt.

Both servers start fresh for this module and receive exactly the same
operations in the same order, so zxids in the output match and the
normalised outputs must be identical.
"""

import os
import re
import select
import subprocess
import time

import pytest

from test_differential import NO_REAP_MS

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
CLI_MT = "/usr/lib/zookeeper/bin/cli_mt"
CMD_TIMEOUT = 60

pytestmark = pytest.mark.skipif(not (os.access(ZKCLI, os.X_OK) and os.access(CLI_MT, os.X_OK)),
                                reason="Debian ZooKeeper shells not installed")


@pytest.fixture(scope="module")
def pair(server_launcher):
    from conftest import ClientFactory
    with server_launcher("zooid", container_interval_ms=NO_REAP_MS) as z, \
            server_launcher("oracle", container_interval_ms=NO_REAP_MS) as o:
        clients = ClientFactory()
        try:
            for server in (z, o):  # same history on both; the clients stay
                build_tree(clients(server))  # connected (they own /shell/kz-eph)
            yield {"zooid": z, "oracle": o}
        finally:
            clients.close_all()


def build_tree(zk):
    from kazoo.security import READ_ACL_UNSAFE
    zk.create("/shell", b"root")
    zk.create("/shell/a", b"alpha")
    zk.create("/shell/a/x", b"")
    zk.create("/shell/a/y", b"why")
    zk.create("/shell/b", b"bravo", acl=READ_ACL_UNSAFE)
    zk.create("/shell/seq-", b"1", sequence=True)
    zk.create("/shell/seq-", b"2", sequence=True)
    zk.create("/shell/kz-eph", b"e", ephemeral=True)  # owned by the kazoo session
    zk.create("/shell/full/one/two", b"deep", makepath=True)
    zk.set("/shell/a", b"alpha2")


# ----------------------------------------------------------------- zkCli.sh

NOISE = re.compile(r"^(SLF4J:|Connecting to |Welcome to ZooKeeper!|JLine support is|WATCHER::|"
                   r"WatchedEvent state:)")


def normalise_zkcli(text):
    out = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line or NOISE.match(line):
            continue
        line = re.sub(r"^([cm]time = ).*", r"\1<time>", line)
        line = re.sub(r"^ephemeralOwner = 0x[0-9a-f]*[1-9a-f][0-9a-f]*$", "ephemeralOwner = <session>", line)
        out.append(line)
    return out


def zkcli_env():
    env = dict(os.environ)
    env["CLIENT_JVMFLAGS"] = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto -XX:-UsePerfData"
    return env


def start_zkcli(server, args=(), stdin_text=None):
    return subprocess.Popen([ZKCLI, "-server", server.hosts, *args],
                            stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=zkcli_env(), start_new_session=True)


def finish(proc, stdin_text=None):
    try:
        out, err = proc.communicate(stdin_text.encode() if stdin_text is not None else None,
                                    timeout=CMD_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate(timeout=10)
        raise
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def run_both(pair, args=(), stdin_text=None):
    """Run zkCli against both servers concurrently.

    Returns {name: (rc, stdout lines, stderr lines)}, normalised.  zkCli
    prints results on stdout and messages/errors on stderr; the two streams
    are not flushed in step, so each is compared on its own.
    """
    procs = {name: start_zkcli(srv, args, stdin_text) for name, srv in pair.items()}
    try:
        out = {}
        for name, p in procs.items():
            rc, o, e = finish(p, stdin_text)
            out[name] = (rc, normalise_zkcli(o), normalise_zkcli(e))
        return out
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait(10)


def diff_text(name, z, o):
    import difflib
    d = "\n".join(difflib.unified_diff(o, z, "oracle", "zooid", lineterm="", n=2))
    return f"{name} differs (- oracle, + zooid):\n{d}"


BATCH = [
    "ls /shell",
    "ls -s /shell",
    "ls -R /shell",
    "create /shell/new newdata",
    "create -e -s /shell/eph- edata",
    "get -s /shell/a",
    "stat /shell/a",
    "set /shell/a changed",
    "set -s /shell/a changed2",
    "get -s /shell/a",
    "get /shell/b",
    "getAcl /shell/b",
    "getAcl -s /shell/a",
    "setAcl /shell/new world:anyone:r",
    "setAcl -s /shell/a world:anyone:cdrwa",
    "getAcl /shell/new",
    "set /shell/new forbidden",
    "whoami",
    "getEphemerals /shell",
    "getAllChildrenNumber /shell",
    "getAllChildrenNumber /",
    "sync /shell",
    "config",
    "setquota -n 10 /shell/a",
    "listquota /shell/a",
    "get /zookeeper/quota/shell/a/zookeeper_limits",
    "delquota -n /shell/a",
    "listquota /shell/a",
    "get /shell/missing",
    "create /shell/a",
    "create /shell/missing/child",
    "delete /shell/a",
    "delete -v 7 /shell/seq-0000000003",
    "set -v 9 /shell/a x",
    "stat /shell/missing",
    "deleteall /shell/a",
    "delete /shell/seq-0000000003",
    "delete /shell/seq-0000000002",
    "ls /shell",
    "create -c /shell/cont",
    "create -t 3600000 /shell/ttl t",
    "stat /shell/ttl",
    "addauth digest alice:pw",
    "whoami",
    "create /shell/authed x auth:alice:pw:cdrwa",
    "getAcl /shell/authed",
    "ls -s /zookeeper",
]

def sort_ls_r(lines):
    """`ls -R` prints a BFS whose order follows the server's child order:
    sort the block of absolute paths it prints."""
    out, block = [], []
    for line in lines + [None]:
        if line is not None and line.startswith("/shell") and " " not in line:
            block.append(line)
            continue
        out += sorted(block)
        block = []
        if line is not None:
            out.append(line)
    return out


def test_zkcli_batch_matches_oracle(pair):
    script = "".join(f"{cmd}\n" for cmd in BATCH) + "quit\n"
    res = run_both(pair, stdin_text=script)
    (zrc, zout, zerr), (orc, oout, oerr) = res["zooid"], res["oracle"]
    zout, oout = sort_ls_r(zout), sort_ls_r(oout)
    assert zout == oout, diff_text("zkCli stdout", zout, oout)
    assert zerr == oerr, diff_text("zkCli stderr", zerr, oerr)
    assert zrc == orc
    # concrete expectations on zooid's output
    assert zerr == [
        "Created /shell/new",
        "Created /shell/eph-0000000007",
        "Insufficient permission : /shell/new",
        "absolute path is /zookeeper/quota/shell/a/zookeeper_limits",
        "absolute path is /zookeeper/quota/shell/a/zookeeper_limits",
        "Node does not exist: /shell/missing",
        "Node already exists: /shell/a",
        "Node does not exist: /shell/missing/child",
        "Node not empty: /shell/a",
        "version No is not valid : /shell/seq-0000000003",
        "version No is not valid : /shell/a",
        "Node does not exist: /shell/missing",
        "Created /shell/cont",
        "Created /shell/ttl",
        "Created /shell/authed",
    ]
    assert zout[0] == "[a, b, full, kz-eph, seq-0000000002, seq-0000000003]"
    for line in ("bravo", "'world,'anyone", ": r", "Auth scheme: User", "ip: 127.0.0.1",
                 "[/shell/eph-0000000007]", "Sync is OK", "digest: alice",
                 "Output stat for /shell/a count=3,bytes=11",
                 "count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=-1",
                 "[config, quota]", "cversion = -2",  # /zookeeper: 2*creates - numChildren
                 "Output quota for /shell/a count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=-1",
                 "[b, eph-0000000007, full, kz-eph, new]"):
        assert line in zout, f"{line!r} missing from zkCli stdout:\n" + "\n".join(zout)


ONE_SHOT = [
    ("ls", "/shell"),
    ("get", "-s", "/shell/b"),
    ("get", "/shell/missing"),
    ("create", "/shell/one", "1"),
    ("create", "/shell/one", "2"),
    ("stat", "/shell/one"),
    ("delete", "/shell/one"),
    ("ls", "/shell/one"),
]


def test_zkcli_one_shot_commands(pair):
    results = []
    for args in ONE_SHOT:
        res = run_both(pair, args=args)
        z, o = res["zooid"], res["oracle"]
        assert z == o, f"zkCli {' '.join(args)}:\n  zooid : {z}\n  oracle: {o}"
        results.append(z)
    assert [r[0] for r in results] == [0, 0, 1, 0, 1, 0, 0, 1]
    assert results[0][1] == ["[b, eph-0000000007, full, kz-eph, new]"] or results[0][1][0].startswith("[")
    assert results[1][1][0] == "bravo"
    assert results[2][2] == ["Node does not exist: /shell/missing"]
    assert results[3][2] == ["Created /shell/one"]
    assert results[4][2] == ["Node already exists: /shell/one"]
    assert results[7][2] == ["Node does not exist: /shell/one"]


# ----------------------------------------------------------------- cli_mt

class CliMt:
    """Drives the C shell: one command at a time, each followed by an
    asynchronous `get` of a missing node; its completion (printed by the
    completion thread, after every earlier completion) ends the output."""

    def __init__(self, server):
        self.proc = subprocess.Popen([CLI_MT, server.hosts], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.buf = b""
        self.n = 0

    def _read_until(self, needle, timeout=15.0):
        deadline = time.monotonic() + timeout
        while needle not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"cli_mt: {needle!r} not seen in {timeout}s:\n{self.buf.decode()}")
            r, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.5))
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"cli_mt exited:\n{self.buf.decode()}")
                self.buf += chunk
        i = self.buf.index(needle) + len(needle)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out.decode("utf-8", "replace")

    def start(self):
        return self._read_until(b"CONNECTED_STATE")

    def run(self, cmd):
        marker = f"/__cm{self.n}"
        self.n += 1
        self.proc.stdin.write(f"{cmd}\nget {marker}\n".encode())
        self.proc.stdin.flush()
        text = self._read_until(f"{marker}: rc = -101\n\nStat:\nnull\n".encode())
        return text[: text.rindex(f"{marker}: rc = -101")]

    def close(self):
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)


def normalise_cli_mt(text, sort_children=False):
    out = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line or re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+:\d+\(0x[0-9a-f]+\):ZOO_", line):
            continue
        if line.startswith("time = ") or line.startswith("Got a new session id"):
            continue
        line = re.sub(r"^(\s*[cm]time\s*=\s*).*", r"\1<time>", line)
        line = re.sub(r"^(\s*ephemeralOwner = )[1-9][0-9]*$", r"\1<session>", line)
        out.append(line)
    if sort_children:  # `ls` prints children in the server's order
        out = [x for x in out if not x.startswith("\t")] + sorted(x for x in out if x.startswith("\t"))
    return out


CLI_MT_SCRIPT = [
    "create /cm",
    "create /cm/c1",
    "create +e /cm/eph",
    "create +s /cm/seq",
    "create2 /cm/c2",
    "set /cm/c1 hello",
    "get /cm/c1",
    "ls /cm",
    "ls2 /cm/c1",
    "exists /cm/c1",
    "sync /cm",
    "delete /cm/c2",
    "get /cm/c2",
    "create /cm/c1",
    "delete /cm",
    "create /cm/eph/kid",
]


def test_cli_mt_matches_oracle(pair):
    outputs = {}
    for name, server in pair.items():
        cli = CliMt(server)
        try:
            cli.start()
            outputs[name] = [normalise_cli_mt(cli.run(cmd), sort_children=cmd.startswith("ls "))
                             for cmd in CLI_MT_SCRIPT]
        finally:
            cli.close()
    diffs = [f"$ {cmd}\n  zooid : {z}\n  oracle: {o}"
             for cmd, z, o in zip(CLI_MT_SCRIPT, outputs["zooid"], outputs["oracle"]) if z != o]
    assert not diffs, "cli_mt output differs:\n" + "\n".join(diffs)
    z = outputs["zooid"]
    assert z[1] == ["Creating [/cm/c1] node (mode: 0)", "[/cm/c1]: rc = 0", "\tname = /cm/c1"]
    assert "\tname = /cm/seq0000000002" in z[3]
    assert z[6][:3] == ["/cm/c1: rc = 0", " value_len = 5", "hello"]
    assert z[7] == ["/cm: rc = 0", "\tc1", "\tc2", "\teph", "\tseq0000000002"]
    assert z[11] == ["Watcher CHILD_EVENT state = CONNECTED_STATE for path /cm", "/cm/c2: rc = 0"]
    assert z[12] == ["/cm/c2: rc = -101", "Stat:", "null"]
    assert z[13] == ["Creating [/cm/c1] node (mode: 0)", "[/cm/c1]: rc = -110"]
    assert z[14] == ["/cm: rc = -111"]
    assert z[15] == ["Creating [/cm/eph/kid] node (mode: 0)", "[/cm/eph/kid]: rc = -108"]
