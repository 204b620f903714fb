"""A small raw-protocol ZooKeeper client (jute encoding over TCP).

Written from ZooKeeper's published client protocol (jute records), as zooid's proto crate lays it out.
It is deliberately low level: every request is encoded here, every reply is
decoded here, and watch notifications are kept in arrival order relative to
replies so that tests can compare exact frame ordering between servers.
"""

import base64
import hashlib
import select
import socket
import struct
import time
from collections import namedtuple

# ---------------------------------------------------------------- constants

OP = dict(
    notification=0, create=1, delete=2, exists=3, getData=4, setData=5,
    getACL=6, setACL=7, getChildren=8, sync=9, ping=11, getChildren2=12,
    check=13, multi=14, create2=15, reconfig=16, checkWatches=17,
    removeWatches=18, createContainer=19, deleteContainer=20, createTTL=21,
    multiRead=22, auth=100, setWatches=101, sasl=102, getEphemerals=103,
    getAllChildrenNumber=104, setWatches2=105, addWatch=106, whoAmI=107,
    closeSession=-11, error=-1,
)
OP_NAME = {v: k for k, v in OP.items()}

ERR = {
    0: "OK", -1: "SYSTEMERROR", -2: "RUNTIMEINCONSISTENCY",
    -3: "DATAINCONSISTENCY", -4: "CONNECTIONLOSS", -5: "MARSHALLINGERROR",
    -6: "UNIMPLEMENTED", -7: "OPERATIONTIMEOUT", -8: "BADARGUMENTS",
    -12: "UNKNOWNSESSION", -13: "NEWCONFIGNOQUORUM", -14: "RECONFIGINPROGRESS",
    -101: "NONODE", -102: "NOAUTH", -103: "BADVERSION",
    -108: "NOCHILDRENFOREPHEMERALS", -110: "NODEEXISTS", -111: "NOTEMPTY",
    -112: "SESSIONEXPIRED", -113: "INVALIDCALLBACK", -114: "INVALIDACL",
    -115: "AUTHFAILED", -118: "SESSIONMOVED", -119: "NOTREADONLY",
    -120: "EPHEMERALONLOCALSESSION", -121: "NOWATCHER",
    -122: "REQUESTTIMEOUT", -123: "RECONFIGDISABLED",
    -124: "SESSIONCLOSEDREQUIRESASLAUTH", -125: "QUOTAEXCEEDED",
    -127: "THROTTLEDOP",
}

EVENT = {1: "NodeCreated", 2: "NodeDeleted", 3: "NodeDataChanged",
         4: "NodeChildrenChanged"}

NOTIFICATION_XID = -1
PING_XID = -2
AUTH_XID = -4
SET_WATCHES_XID = -8

PERM_READ, PERM_WRITE, PERM_CREATE, PERM_DELETE, PERM_ADMIN = 1, 2, 4, 8, 16
PERM_ALL = 31

Stat = namedtuple("Stat", "czxid mzxid ctime mtime version cversion aversion "
                          "ephemeralOwner dataLength numChildren pzxid")
ACL = namedtuple("ACL", "perms scheme id")
Event = namedtuple("Event", "type state path zxid")
Reply = namedtuple("Reply", "xid zxid err body events")
ConnectResponse = namedtuple(
    "ConnectResponse", "protocolVersion timeOut sessionId passwd readOnly")

OPEN_ACL = [ACL(PERM_ALL, "world", "anyone")]
READ_ACL = [ACL(PERM_READ, "world", "anyone")]
CREATOR_ALL_ACL = [ACL(PERM_ALL, "auth", "")]


def digest_id(user, password):
    """The id of a digest ACL: user:base64(sha1(user:password))."""
    raw = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(raw).decode()}"


class ProtocolError(Exception):
    pass


class ConnectionClosed(ProtocolError):
    pass


# ---------------------------------------------------------------- encoding

class Writer:
    def __init__(self):
        self.b = bytearray()

    def int(self, v):
        self.b += struct.pack(">i", v)
        return self

    def long(self, v):
        self.b += struct.pack(">q", v)
        return self

    def bool(self, v):
        self.b += b"\x01" if v else b"\x00"
        return self

    def buffer(self, v):
        if v is None:
            return self.int(-1)
        self.int(len(v))
        self.b += v
        return self

    def ustring(self, v):
        return self.buffer(None if v is None else v.encode())

    def strings(self, vs):
        self.int(len(vs))
        for v in vs:
            self.ustring(v)
        return self

    def acls(self, acls):
        if acls is None:
            return self.int(-1)
        self.int(len(acls))
        for a in acls:
            self.int(a.perms).ustring(a.scheme).ustring(a.id)
        return self

    def bytes(self):
        return bytes(self.b)


class Reader:
    def __init__(self, data, pos=0):
        self.d = data
        self.p = pos

    def _take(self, n):
        if self.p + n > len(self.d):
            raise ProtocolError(f"short read: need {n} at {self.p} of {len(self.d)}")
        v = self.d[self.p:self.p + n]
        self.p += n
        return v

    def int(self):
        return struct.unpack(">i", self._take(4))[0]

    def long(self):
        return struct.unpack(">q", self._take(8))[0]

    def bool(self):
        return self._take(1) != b"\x00"

    def buffer(self):
        n = self.int()
        if n < 0:
            return None
        return bytes(self._take(n))

    def ustring(self):
        v = self.buffer()
        return None if v is None else v.decode("utf-8", "replace")

    def strings(self):
        n = self.int()
        if n < 0:
            return None
        return [self.ustring() for _ in range(n)]

    def stat(self):
        return Stat(self.long(), self.long(), self.long(), self.long(),
                    self.int(), self.int(), self.int(), self.long(),
                    self.int(), self.int(), self.long())

    def acls(self):
        n = self.int()
        if n < 0:
            return None
        return [ACL(self.int(), self.ustring(), self.ustring()) for _ in range(n)]

    def remaining(self):
        return len(self.d) - self.p


# ------------------------------------------------ request bodies per opcode

def encode_body(op, a):
    """Encode the request record for opcode `op` from the dict `a`."""
    w = Writer()
    if op in (OP["create"], OP["create2"], OP["createContainer"], OP["createTTL"]):
        w.ustring(a["path"]).buffer(a.get("data", b"")).acls(a.get("acl", OPEN_ACL))
        w.int(a.get("flags", 0))
        if op == OP["createTTL"]:
            w.long(a.get("ttl", -1))
    elif op == OP["delete"]:
        w.ustring(a["path"]).int(a.get("version", -1))
    elif op in (OP["exists"], OP["getData"], OP["getChildren"], OP["getChildren2"]):
        w.ustring(a["path"]).bool(a.get("watch", False))
    elif op == OP["setData"]:
        w.ustring(a["path"]).buffer(a.get("data", b"")).int(a.get("version", -1))
    elif op == OP["getACL"]:
        w.ustring(a["path"])
    elif op == OP["setACL"]:
        w.ustring(a["path"]).acls(a["acl"]).int(a.get("version", -1))
    elif op in (OP["sync"], OP["getAllChildrenNumber"]):
        w.ustring(a["path"])
    elif op == OP["getEphemerals"]:
        w.ustring(a.get("path", "/"))
    elif op == OP["check"]:
        w.ustring(a["path"]).int(a.get("version", -1))
    elif op in (OP["multi"], OP["multiRead"]):
        for sub_op, sub_args in a["ops"]:
            w.int(sub_op).bool(False).int(-1)
            w.b += encode_body(sub_op, sub_args)
        w.int(-1).bool(True).int(-1)
    elif op in (OP["checkWatches"], OP["removeWatches"]):
        w.ustring(a["path"]).int(a["type"])
    elif op == OP["addWatch"]:
        w.ustring(a["path"]).int(a["mode"])
    elif op == OP["auth"]:
        w.int(0).ustring(a["scheme"]).buffer(a["auth"])
    elif op in (OP["setWatches"], OP["setWatches2"]):
        w.long(a["relativeZxid"]).strings(a.get("data", [])).strings(a.get("exist", []))
        w.strings(a.get("child", []))
        if op == OP["setWatches2"]:
            w.strings(a.get("persistent", [])).strings(a.get("persistentRecursive", []))
    elif op in (OP["ping"], OP["closeSession"], OP["whoAmI"]):
        pass
    else:
        raise ValueError(f"no encoder for op {op}")
    return w.bytes()


def decode_body(op, r):
    """Decode the response record of opcode `op` (only called when err == 0)."""
    if op == OP["create"]:
        return {"path": r.ustring()}
    if op in (OP["create2"], OP["createContainer"], OP["createTTL"]):
        return {"path": r.ustring(), "stat": r.stat()}
    if op in (OP["exists"], OP["setData"], OP["setACL"]):
        return {"stat": r.stat()}
    if op == OP["getData"]:
        return {"data": r.buffer(), "stat": r.stat()}
    if op == OP["getACL"]:
        return {"acl": r.acls(), "stat": r.stat()}
    if op == OP["getChildren"]:
        return {"children": r.strings()}
    if op == OP["getChildren2"]:
        return {"children": r.strings(), "stat": r.stat()}
    if op == OP["sync"]:
        return {"path": r.ustring()}
    if op == OP["getEphemerals"]:
        return {"ephemerals": r.strings()}
    if op == OP["getAllChildrenNumber"]:
        return {"total": r.int()}
    if op == OP["whoAmI"]:
        n = r.int()
        return {"clients": [(r.ustring(), r.ustring()) for _ in range(max(n, 0))]}
    if op == OP["addWatch"]:
        return {"err": r.int()} if r.remaining() >= 4 else {}
    if op in (OP["multi"], OP["multiRead"]):
        results = []
        for _ in range(10000):
            typ, done, err = r.int(), r.bool(), r.int()
            if done:
                break
            if typ == OP["error"]:
                results.append({"type": typ, "err": err, "body": {"err": r.int()}})
            elif typ in (OP["delete"], OP["check"]):
                results.append({"type": typ, "err": err, "body": {}})
            else:
                results.append({"type": typ, "err": err, "body": decode_body(typ, r)})
        return {"results": results}
    # delete, check, checkWatches, removeWatches, ping, closeSession, auth,
    # setWatches: no body
    return {}


# ---------------------------------------------------------------- session

class Session:
    """One connection (and its session) to a ZooKeeper-protocol server.

    All reads are bounded by `io_timeout` seconds.  Notifications that
    arrive while waiting for a reply are attached to that reply, in
    arrival order.
    """

    def __init__(self, host, port, timeout_ms=30000, session_id=0, passwd=None,
                 last_zxid=0, read_only=None, io_timeout=10.0):
        self.host, self.port = host, port
        self.io_timeout = io_timeout
        self.sock = None
        self._rbuf = bytearray()
        self.xid = 0
        self.last_zxid = last_zxid
        self.session_id = 0
        self.passwd = b""
        self.timeout_ms = 0
        self.connect_response = None
        self.connect_response_len = None
        self._connect(timeout_ms, session_id, passwd, last_zxid, read_only)

    # -- framing
    def _connect(self, timeout_ms, session_id, passwd, last_zxid, read_only):
        self.sock = socket.create_connection((self.host, self.port), timeout=self.io_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        w = Writer().int(0).long(last_zxid).int(timeout_ms).long(session_id)
        w.buffer(passwd if passwd is not None else b"\x00" * 16)
        if read_only is not None:
            w.bool(read_only)
        self.send_frame(w.bytes())
        payload = self.recv_frame()
        self.connect_response_len = len(payload)
        r = Reader(payload)
        pv, to, sid, pw = r.int(), r.int(), r.long(), r.buffer()
        ro = r.bool() if r.remaining() > 0 else None
        self.connect_response = ConnectResponse(pv, to, sid, pw, ro)
        self.session_id, self.passwd, self.timeout_ms = sid, pw, to

    def send_frame(self, payload):
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def _fill(self, n, deadline):
        while len(self._rbuf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no data from {self.host}:{self.port} within {self.io_timeout}s")
            # poll, not select: a test may hold more than 1024 sockets
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            r = poller.poll(left * 1000)
            if not r:
                continue
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionClosed(f"connection closed by {self.host}:{self.port}")
            self._rbuf += chunk

    def recv_frame(self, timeout=None):
        deadline = time.monotonic() + (self.io_timeout if timeout is None else timeout)
        self._fill(4, deadline)
        n = struct.unpack(">i", self._rbuf[:4])[0]
        if n < 0 or n > 16 * 1024 * 1024:
            raise ProtocolError(f"bad frame length {n}")
        self._fill(4 + n, deadline)
        payload = bytes(self._rbuf[4:4 + n])
        del self._rbuf[:4 + n]
        return payload

    def has_buffered_frame(self):
        return len(self._rbuf) >= 4

    def close_socket(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    # -- requests
    def next_xid(self):
        self.xid += 1
        return self.xid

    def send(self, op, args=None, xid=None):
        """Send one request; returns the xid used."""
        if xid is None:
            if op == OP["ping"]:
                xid = PING_XID
            elif op == OP["auth"]:
                xid = AUTH_XID
            elif op in (OP["setWatches"], OP["setWatches2"]):
                xid = SET_WATCHES_XID
            else:
                xid = self.next_xid()
        self.send_frame(Writer().int(xid).int(op).bytes() + encode_body(op, args or {}))
        return xid

    def recv_reply(self, op, xid, timeout=None):
        """Read frames until the reply with `xid`; notifications on the way
        are returned with the reply."""
        events = []
        for _ in range(100000):
            payload = self.recv_frame(timeout)
            r = Reader(payload)
            rxid, zxid, err = r.int(), r.long(), r.int()
            if rxid == NOTIFICATION_XID:
                ev = Event(r.int(), r.int(), r.ustring(), zxid)
                events.append(ev)
                continue
            if rxid != xid:
                raise ProtocolError(f"unexpected xid {rxid} (waiting for {xid})")
            if zxid > self.last_zxid:
                self.last_zxid = zxid
            body = decode_body(op, r) if err == 0 else None
            return Reply(rxid, zxid, err, body, events)
        raise ProtocolError("too many frames")

    def call(self, op, args=None, timeout=None):
        if isinstance(op, str):
            op = OP[op]
        xid = self.send(op, args)
        return self.recv_reply(op, xid, timeout)

    def wait_event(self, timeout=None):
        """Return the next notification arriving within the timeout."""
        deadline = time.monotonic() + (self.io_timeout if timeout is None else timeout)
        payload = self.recv_frame(max(0.0, deadline - time.monotonic()))
        r = Reader(payload)
        rxid, zxid = r.int(), r.long()
        r.int()  # err
        if rxid != NOTIFICATION_XID:
            raise ProtocolError(f"unexpected reply xid {rxid} while waiting for an event")
        return Event(r.int(), r.int(), r.ustring(), zxid)

    # -- conveniences
    def ping(self):
        return self.call(OP["ping"])

    def auth(self, scheme, auth):
        return self.call(OP["auth"], {"scheme": scheme, "auth": auth})

    def close(self):
        """Send closeSession, wait for its reply, then close the socket."""
        try:
            if self.sock is not None:
                return self.call(OP["closeSession"])
        finally:
            self.close_socket()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.close()
        except (OSError, ProtocolError):
            self.close_socket()


def four_letter(host, port, cmd, timeout=5.0):
    """Send a four-letter word and return the text reply ('' on failure)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(cmd.encode())
            out = bytearray()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            return out.decode("utf-8", "replace")
    except OSError:
        return ""
