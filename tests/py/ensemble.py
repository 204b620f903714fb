"""A replicated ensemble of real server processes on loopback, for test_ensemble.py.

Each member gets a directory of its own (zoo.cfg, data/myid, server.log) and three loopback
ports (client, quorum, election) that stay the same across restarts. Members are zooid
(`$ZOOID_BIN server start-foreground zoo.cfg`) or, with ZOOID_TEST_ORACLE_ONLY=1, Apache
ZooKeeper 3.8 (`java ... QuorumPeerMain zoo.cfg`, the same flags as conftest's oracle).
A member's kind can be any of conftest's: "zooid", "oracle" (ZooKeeper 3.8.0) or "oracle39"
(ZooKeeper 3.9.3); `oracle_sids` with `oracle_kind` mix them, `replace(sid, kind)` swaps the
process of a member for another kind's on the same zoo.cfg, myid, dataDir and ports.

    ens = Ensemble(tmpdir)
    ens.start(3)                    # server.1..3, waits for one leader + two followers
    ens.start(3, n_observers=1)     # server.4=...:observer, peerType=observer in its cfg
    ens.leader_sid(), ens.mode(sid), ens.mntr(sid), ens.hosts, ens.member(sid).hosts
    ens.kill9(sid), ens.stop(sid), ens.wipe(sid), ens.restart(sid)
    ens.wait_for_quorum(timeout)    # exactly one leader, every live member with a Mode
    Ensemble(tmpdir, oracle_sids=(1, 2), oracle_kind="oracle39")  # 3.9.3 members 1, 2
    ens.replace(sid, "oracle39")    # stop member sid, start it again as ZooKeeper 3.9.3
    ens.stop_all()                  # every process this ensemble started, by pid

Every wait polls with a deadline and a bounded number of rounds; nothing sleeps to
synchronise. Processes are signalled by pid (each is its own process group leader).
"""

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time

from conftest import (ORACLE_KINDS, ORACLE_ONLY, STOP_DEADLINE, ZOOID_BIN, Server,
                      free_port, oracle_command)
from zkraw import four_letter

TICK_MS = 200
INIT_LIMIT = 10
SYNC_LIMIT = 5
START_TIMEOUT = 60.0   # all members up and a leader elected (JVMs on a small machine)
MODE_TIMEOUT = 30.0    # one member (re)joining
POLL = 0.05            # pause between polling rounds (the waits are on deadlines)
MODES = ("leader", "follower", "observer")
START_MARK = "=== ensemble: start #"
# ZooKeeper members log how a learner synced (DIFF/TRUNC/SNAP) at INFO, whatever the
# default level: Learner says "Getting a snapshot from leader", LearnerHandler "Sending
# snapshot ..." (zooid says "SNAP: loaded the leader's snapshot" at its default level)
ORACLE_SYNC_LOGGERS = {
    "org.slf4j.simpleLogger.log.org.apache.zookeeper.server.quorum.Learner": "info",
    "org.slf4j.simpleLogger.log.org.apache.zookeeper.server.quorum.LearnerHandler": "info",
}


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(n, taken=()):
    """`n` distinct free loopback ports below the kernel's ephemeral range.

    Not free_port()'s ephemeral ports: a member's ports must stay usable while it is
    down (restart binds them again), and a port in the ephemeral range can meanwhile be
    taken as the local end of an outgoing connection -- or a client retrying a dead
    member can connect to itself on it. Falls back to free_port() when there is no
    room below the range.
    """
    low = _ephemeral_low()
    chosen = []
    seen = set(taken)
    rng = random.SystemRandom()
    for _ in range(2000):
        if len(chosen) == n:
            break
        port = rng.randrange(12000, low) if low > 13000 else free_port()
        if port not in seen and _bindable(port):
            seen.add(port)
            chosen.append(port)
    if len(chosen) != n:
        raise RuntimeError(f"could not find {n} free loopback ports")
    return chosen


def parse_mode(srvr_text):
    """'leader'/'follower'/'observer'/'standalone' from a srvr/stat reply, else None."""
    m = re.search(r"^Mode: (\w+)", srvr_text or "", re.M)
    return m.group(1) if m else None


def parse_mntr(text):
    out = {}
    for line in (text or "").splitlines():
        if "\t" in line:
            k, v = line.split("\t", 1)
            out[k.strip()] = v.strip()
    return out


def _real(kind):
    """The kind that runs for `kind`: ZOOID_TEST_ORACLE_ONLY=1 runs ZooKeeper 3.8 for zooid."""
    assert kind == "zooid" or kind in ORACLE_KINDS, kind
    return "oracle" if (kind == "zooid" and ORACLE_ONLY) else kind


class Member:
    """One server of the ensemble: its config, ports, directory and current process."""

    def __init__(self, sid, role, root, client_port, quorum_port, election_port):
        self.sid = sid
        self.role = role                    # "participant" | "observer"
        self.root = root
        self.data_dir = os.path.join(root, "data")
        self.cfg_path = os.path.join(root, "zoo.cfg")
        self.log_path = os.path.join(root, "server.log")
        self.client_port = client_port
        self.port = client_port
        self.quorum_port = quorum_port
        self.election_port = election_port
        self.hosts = f"127.0.0.1:{client_port}"
        self.server = None                  # conftest.Server while a process was started
        self.kind = None                    # the kind of the last process started
        self.starts = 0
        self.expected_up = False            # started and not (yet) stopped/killed on purpose

    @property
    def pid(self):
        return self.server.pid if self.server else None

    def alive(self):
        return self.server is not None and self.server.alive()

    def server_line(self, with_client=False, peer_hosts=("127.0.0.1",)):
        line = f"server.{self.sid}=" + "|".join(
            f"{h}:{self.quorum_port}:{self.election_port}" for h in peer_hosts)
        line += ":observer" if self.role == "observer" else ""
        # the 3.5+ form: the client address at the end of the line, instead of clientPort
        return line + (f";127.0.0.1:{self.client_port}" if with_client else "")

    def __repr__(self):
        state = f"pid={self.pid}" if self.alive() else "down"
        return f"<member {self.sid} {self.kind or ''} {self.role} {self.hosts} {state}>"


class Ensemble:
    """Members server.1..N (participants first, then observers)."""

    def __init__(self, root, kind="zooid", tick_ms=TICK_MS, extra_cfg=None, oracle_sids=(),
                 oracle_kind="oracle", oracle_props=None, client_in_server_lines=False,
                 peer_hosts=("127.0.0.1",)):
        """`kind`: every member's kind ("zooid", "oracle", "oracle39"); `oracle_sids`:
        members that run Apache ZooKeeper `oracle_kind` whatever `kind` is (a mixed
        ensemble)."""
        assert oracle_kind in ORACLE_KINDS, oracle_kind
        self.root = root
        self.kind = kind
        self.real_kind = _real(kind)
        self.oracle_sids = set(oracle_sids)
        self.oracle_kind = oracle_kind
        self.kinds = {}                     # sid -> kind, set by replace()
        self.tick_ms = tick_ms
        self.extra_cfg = dict(extra_cfg or {})
        # system properties for ZooKeeper members only (settings ZooKeeper reads nowhere else)
        self.oracle_props = dict(oracle_props or {})
        # `server.N=...;host:clientPort` lines instead of clientPort / clientPortAddress
        self.client_in_server_lines = client_in_server_lines
        # the members' quorum and election addresses: several make `a|b` server lines
        self.peer_hosts = tuple(peer_hosts)
        self.members = {}

    # ------------------------------------------------------------ setup

    def start(self, n_participants, n_observers=0, timeout=START_TIMEOUT):
        """Write every member's zoo.cfg and myid, start them all, wait for a quorum."""
        assert not self.members, "start() once per Ensemble"
        n = n_participants + n_observers
        ports = pick_ports(3 * n)
        for i in range(n):
            sid = i + 1
            role = "participant" if i < n_participants else "observer"
            root = os.path.join(self.root, f"m{sid}")
            m = Member(sid, role, root, *ports[3 * i:3 * i + 3])
            os.makedirs(m.data_dir, exist_ok=True)
            self._write_myid(m)
            self.members[sid] = m
        for m in self.members.values():
            self._write_cfg(m)
        for sid in self.members:
            self.launch(sid)
        self.wait_for_quorum(timeout)
        return self

    def join(self, role="participant", kind=None):
        """Start a new member (the next sid, fresh ports; `kind` as `replace` takes it) whose
        zoo.cfg lists every member so far and itself, as ZooKeeper's guide says a server that
        a reconfig will add starts. No wait: a reconfig makes it a member."""
        sid = max(self.members) + 1
        if kind is not None:
            self.kinds[sid] = kind
        root = os.path.join(self.root, f"m{sid}")
        taken = [p for o in self.members.values()
                 for p in (o.client_port, o.quorum_port, o.election_port)]
        m = Member(sid, role, root, *pick_ports(3, taken))
        os.makedirs(m.data_dir, exist_ok=True)
        self._write_myid(m)
        self.members[sid] = m
        self._write_cfg(m)
        self.launch(sid)
        return m

    def _write_myid(self, m):
        with open(os.path.join(m.data_dir, "myid"), "w") as f:
            f.write(f"{m.sid}\n")

    def _write_cfg(self, m):
        cfg = {
            "tickTime": str(self.tick_ms),
            "initLimit": str(INIT_LIMIT),
            "syncLimit": str(SYNC_LIMIT),
            "dataDir": m.data_dir,
            "clientPort": str(m.client_port),
            "clientPortAddress": "127.0.0.1",
            "maxClientCnxns": "200",
            # the default maximum is 20 ticks (4 s): sessions must outlive a failover
            "maxSessionTimeout": "30000",
            "4lw.commands.whitelist": "*",
            "admin.enableServer": "false",
        }
        if m.role == "observer":
            cfg["peerType"] = "observer"
        cfg.update(self.extra_cfg)
        if self.client_in_server_lines:
            del cfg["clientPort"], cfg["clientPortAddress"]
        lines = [f"{k}={v}" for k, v in cfg.items()]
        lines += [o.server_line(self.client_in_server_lines, self.peer_hosts)
                  for o in self.members.values()]
        with open(m.cfg_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def kind_of(self, sid):
        """The kind member `sid` runs (next time it starts)."""
        if sid in self.kinds:
            return self.kinds[sid]
        return self.oracle_kind if sid in self.oracle_sids else self.real_kind

    def _command(self, m):
        kind = self.kind_of(m.sid)
        if kind in ORACLE_KINDS:
            return oracle_command(m.cfg_path, 1000, kind=kind,
                                  props={**ORACLE_SYNC_LOGGERS, **self.oracle_props})
        if not os.access(ZOOID_BIN, os.X_OK):
            raise RuntimeError(f"zooid binary not found: {ZOOID_BIN} "
                               "(set ZOOID_BIN or ZOOID_TEST_ORACLE_ONLY=1)")
        return [ZOOID_BIN, "server", "start-foreground", m.cfg_path]

    # ------------------------------------------------------------ processes

    def member(self, sid):
        return self.members[sid]

    @property
    def sids(self):
        return sorted(self.members)

    def live_sids(self):
        return [s for s in self.sids if self.members[s].alive()]

    def participants(self):
        return [s for s in self.sids if self.members[s].role == "participant"]

    def launch(self, sid):
        """Start member `sid`'s process (no wait). Its output is appended to server.log."""
        m = self.members[sid]
        assert not m.alive(), f"{m!r} is already running"
        cmd = self._command(m)
        m.starts += 1
        m.kind = self.kind_of(sid)
        with open(m.log_path, "ab") as logf:
            logf.write(f"{START_MARK}{m.starts} of member {sid} ({m.kind}) at "
                       f"{time.strftime('%H:%M:%S')}: {' '.join(cmd)}\n".encode())
            logf.flush()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                    stderr=subprocess.STDOUT, cwd=m.root,
                                    start_new_session=True)
        m.server = Server(m.kind, m.client_port, proc, m.root, m.cfg_path, m.log_path)
        m.server.real_kind = m.kind
        m.expected_up = True
        return m

    def kill9(self, sid):
        """SIGKILL member `sid` (its process group, by pid) and reap it."""
        m = self.members[sid]
        m.expected_up = False
        if m.server is None:
            return
        if m.server.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(m.server.pid, signal.SIGKILL)
        m.server.proc.wait(timeout=STOP_DEADLINE)

    def stop(self, sid):
        """SIGTERM member `sid`, SIGKILL after conftest's STOP_DEADLINE."""
        m = self.members[sid]
        m.expected_up = False
        if m.server is not None:
            m.server.stop()

    def restart(self, sid, wait=True, timeout=MODE_TIMEOUT):
        """Start a stopped/killed member again (same ports, same dataDir); by default
        wait until it reports a Mode. Returns its mode (or None with wait=False)."""
        m = self.members[sid]
        if m.alive():
            self.stop(sid)
        self.launch(sid)
        if wait:
            return self.wait_for_mode(sid, timeout=timeout)
        return None

    def replace(self, sid, kind, wait=True, timeout=MODE_TIMEOUT):
        """Stop member `sid` (SIGTERM) and start a process of `kind` in its place: the same
        zoo.cfg, myid, dataDir and ports. By default wait until it reports a Mode; returns
        it (None with wait=False). With ZOOID_TEST_ORACLE_ONLY=1, "zooid" is ZooKeeper 3.8."""
        m = self.members[sid]
        if m.alive():
            self.stop(sid)
        self.kinds[sid] = _real(kind)
        self.launch(sid)
        if wait:
            return self.wait_for_mode(sid, timeout=timeout)
        return None

    def wipe(self, sid):
        """Delete everything in a stopped member's dataDir but its myid."""
        m = self.members[sid]
        assert not m.alive(), f"wipe {m!r} while it runs"
        for name in os.listdir(m.data_dir):
            if name == "myid":
                continue
            p = os.path.join(m.data_dir, name)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.remove(p)
        self._write_myid(m)

    def stop_all(self):
        """Stop every member this ensemble started (SIGTERM, then SIGKILL), by pid."""
        errors = []
        for sid in self.sids:
            try:
                self.stop(sid)
            except Exception as e:  # noqa: BLE001 - stop the others regardless
                errors.append(f"member {sid}: {e!r}")
        if errors:
            raise RuntimeError("; ".join(errors))

    # ------------------------------------------------------------ state

    def srvr(self, sid, timeout=2.0):
        m = self.members[sid]
        return four_letter("127.0.0.1", m.client_port, "srvr", timeout=timeout)

    def mntr(self, sid, timeout=2.0):
        m = self.members[sid]
        return parse_mntr(four_letter("127.0.0.1", m.client_port, "mntr", timeout=timeout))

    def mode(self, sid):
        """'leader'/'follower'/'observer' from srvr, None when down or not serving."""
        if not self.members[sid].alive():
            return None
        mode = parse_mode(self.srvr(sid))
        return mode if mode in MODES else None

    def modes(self, sids=None):
        return {s: self.mode(s) for s in (sids or self.sids)}

    def _check_crashes(self):
        """Fail at once when a member exited that nobody stopped."""
        for m in self.members.values():
            if m.expected_up and m.server is not None and m.server.proc.poll() is not None:
                raise AssertionError(f"member {m.sid} exited with {m.server.proc.returncode}:\n"
                                     f"{self.log_tail(m.sid)}")

    def _poll(self, what, check, timeout, describe):
        """Call check() until it returns a true value; bounded by time and rounds."""
        deadline = time.monotonic() + timeout
        rounds = 0
        last = None
        while rounds < 10000:
            rounds += 1
            last = check()
            if last:
                return last
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL)  # polling interval, not synchronisation: the deadline decides
        raise AssertionError(f"{what} not within {timeout}s ({rounds} polls): {describe()}\n"
                             f"{self.log_tail()}")

    def wait_for_mode(self, sid, modes=MODES, timeout=MODE_TIMEOUT):
        """Wait until member `sid` reports one of `modes`; returns it."""
        m = self.members[sid]

        def check():
            if not m.alive():
                raise AssertionError(f"member {sid} exited with {m.server.proc.returncode}:\n"
                                     f"{self.log_tail(sid)}")
            mode = self.mode(sid)
            return mode if mode in modes else None
        return self._poll(f"member {sid} in mode {'/'.join(modes)}", check, timeout,
                          lambda: repr(self.modes()))

    def wait_for_quorum(self, timeout=MODE_TIMEOUT):
        """Wait until exactly one live member leads and every live member has a Mode
        (participants leader/follower, observers observer). Returns the leader's sid."""
        def check():
            self._check_crashes()
            live = self.live_sids()
            modes = self.modes(live)
            leaders = [s for s, md in modes.items() if md == "leader"]
            if len(leaders) != 1:
                return None
            for s, md in modes.items():
                want = ("observer",) if self.members[s].role == "observer" else ("leader", "follower")
                if md not in want:
                    return None
            return leaders[0]
        return self._poll("a quorum with one leader", check, timeout,
                          lambda: repr(self.modes()))

    def wait_not_serving(self, sids, timeout=MODE_TIMEOUT):
        """Wait until none of `sids` reports a Mode (lost quorum)."""
        def check():
            self._check_crashes()
            return all(self.mode(s) is None for s in sids)
        return self._poll(f"members {sids} not serving", check, timeout,
                          lambda: repr(self.modes(sids)))

    def leader_sid(self):
        """The sid of the one live member reporting Mode: leader, else None."""
        leaders = [s for s in self.live_sids() if self.mode(s) == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def followers(self):
        return [s for s in self.live_sids() if self.mode(s) == "follower"]

    @property
    def hosts(self):
        """Connect string with every member."""
        return self.hosts_of(self.sids)

    def hosts_of(self, sids):
        return ",".join(self.members[s].hosts for s in sids)

    def log_since_start(self, sid):
        """Member `sid`'s log since its last start (its own output only)."""
        m = self.members[sid]
        with open(m.log_path, "r", errors="replace") as f:
            text = f.read()
        i = text.rfind(START_MARK)
        return text[i:] if i >= 0 else text

    def log_tail(self, sid=None, n=30):
        """The last `n` lines of one member's log, or of every member's."""
        sids = [sid] if sid is not None else self.sids
        parts = []
        for s in sids:
            m = self.members[s]
            try:
                with open(m.log_path, "r", errors="replace") as f:
                    tail = "".join(f.readlines()[-n:])
            except OSError:
                tail = "(no log)\n"
            parts.append(f"--- member {s} ({m!r}) {m.log_path}\n{tail}")
        return "".join(parts)

    def __repr__(self):
        return f"<ensemble {self.real_kind} {list(self.members.values())}>"
