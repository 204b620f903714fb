"""Small additions to the installed kazoo 2.11.0.

The published kazoo 2.11.0 has no TTL nodes, no container nodes and no
addWatch (persistent / persistent-recursive watches), and it never sends
setWatches when it reconnects.  These helpers use kazoo's native API when it
exists and otherwise submit hand-made request records through the client's
own request queue, so the bytes still travel on kazoo's connection.
"""

import inspect
import struct
import threading

from kazoo.protocol.serialization import Create2, read_string, write_buffer, write_string
from kazoo.protocol.states import Callback, WatchedEvent, EVENT_TYPE_MAP
from kazoo.security import OPEN_ACL_UNSAFE

PERSISTENT = 0
PERSISTENT_RECURSIVE = 1

_int = struct.Struct("!i")
_long = struct.Struct("!q")

CONTAINER_FLAG = 4
TTL_FLAG = 5
TTL_SEQUENTIAL_FLAG = 6


def _acl_bytes(acls):
    b = bytearray(_int.pack(len(acls)))
    for a in acls:
        b += _int.pack(a.perms) + write_string(a.id.scheme) + write_string(a.id.id)
    return b


class _CreateWithStat:
    """create request (op 19 or 21) answered with a Create2Response."""

    watcher = None

    def __init__(self, op, path, data, acl, flags, ttl=None):
        self.type, self.path, self.data, self.acl, self.flags, self.ttl = op, path, data, acl, flags, ttl

    def serialize(self):
        b = bytearray(write_string(self.path))
        b += write_buffer(self.data)
        b += _acl_bytes(self.acl)
        b += _int.pack(self.flags)
        if self.type == 21:
            b += _long.pack(self.ttl)
        return b

    @classmethod
    def deserialize(cls, buf, offset):
        return Create2.deserialize(buf, offset)


class _AddWatch:
    type = 106
    watcher = None

    def __init__(self, path, mode):
        self.path, self.mode = path, mode

    def serialize(self):
        return write_string(self.path) + _int.pack(self.mode)

    @classmethod
    def deserialize(cls, buf, offset):
        return None


def _call(client, request, timeout=10):
    ar = client.handler.async_result()
    client._call(request, ar)
    return ar.get(timeout=timeout)


def _supports(func, param):
    try:
        return param in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def create_ttl(client, path, value=b"", ttl=1000, acl=None, sequence=False):
    """Create a PERSISTENT_WITH_TTL (or sequential TTL) node; returns (path, ZnodeStat)."""
    acl = acl or client.default_acl or OPEN_ACL_UNSAFE
    if _supports(client.create, "ttl"):
        return client.create(path, value, acl=acl, sequence=sequence, ttl=ttl,
                             makepath=False, include_data=True)
    flags = TTL_SEQUENTIAL_FLAG if sequence else TTL_FLAG
    return _call(client, _CreateWithStat(21, path, value, acl, flags, ttl))


def create_container(client, path, value=b"", acl=None):
    """Create a CONTAINER node (op 19); returns (path, ZnodeStat)."""
    acl = acl or client.default_acl or OPEN_ACL_UNSAFE
    if _supports(client.create, "container"):
        return client.create(path, value, acl=acl, container=True, include_data=True)
    return _call(client, _CreateWithStat(19, path, value, acl, CONTAINER_FLAG))


class _PersistentWatches:
    """Routes notifications to persistent watchers for one client."""

    def __init__(self, client):
        self.client = client
        self.lock = threading.Lock()
        self.watches = []  # (path, mode, watcher)
        conn = client._connection
        self.orig = conn._read_watch_event
        conn._read_watch_event = self.read_watch_event

    def read_watch_event(self, buffer, offset):
        typ = _int.unpack_from(buffer, offset)[0]  # WatcherEvent: type, state, path
        path = read_string(buffer, offset + 8)[0]
        with self.lock:
            targets = [w for (p, mode, w) in self.watches if self._matches(p, mode, typ, path)]
        if typ in EVENT_TYPE_MAP and targets and not self.client._stopped.is_set():
            ev = WatchedEvent(EVENT_TYPE_MAP[typ], self.client._state, self.client.unchroot(path))
            for w in targets:
                self.client.handler.dispatch_callback(Callback("watch", w, (ev,)))
        return self.orig(buffer, offset)

    @staticmethod
    def _matches(wpath, mode, typ, path):
        if mode == PERSISTENT:
            return path == wpath
        # recursive: the node and all descendants, never NodeChildrenChanged
        if typ == 4:
            return False
        return path == wpath or path.startswith(wpath.rstrip("/") + "/")


def add_watch(client, path, watcher, mode):
    """addWatch (op 106) in PERSISTENT or PERSISTENT_RECURSIVE mode."""
    native = getattr(client, "add_watch", None)
    if native is not None:
        from kazoo.protocol.states import AddWatchMode  # kazoo versions that have it
        return native(path, watcher, AddWatchMode.PERSISTENT if mode == PERSISTENT
                      else AddWatchMode.PERSISTENT_RECURSIVE)
    reg = getattr(client, "_zt_persistent", None)
    if reg is None:
        reg = client._zt_persistent = _PersistentWatches(client)
    _call(client, _AddWatch(path, mode))
    with reg.lock:
        reg.watches.append((path, mode, watcher))
    return True


__all__ = ["create_ttl", "create_container", "add_watch", "PERSISTENT", "PERSISTENT_RECURSIVE"]


class StateLog:
    """A kazoo connection-state listener that records states and waits for one; `wait` is
    the default bound of a wait, in seconds."""

    def __init__(self, wait):
        self.wait = wait
        self.states = []
        self.cond = threading.Condition()

    def __call__(self, state):
        with self.cond:
            self.states.append(state)
            self.cond.notify_all()

    def wait_for(self, state, after=0, timeout=None):
        timeout = self.wait if timeout is None else timeout
        with self.cond:
            ok = self.cond.wait_for(lambda: state in self.states[after:], timeout=timeout)
        assert ok, f"state {state} not reached within {timeout}s: {self.states}"
