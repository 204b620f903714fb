"""What one client can make the server hold: a client that pipelines reads and never takes
its replies, and thousands of idle sessions. The server's resident memory is read from
/proc while it happens, and other clients must be served throughout.

`python3 tests/py/test_memory.py [zooid|oracle ...]` prints the same figures for each
server kind (zooid's debug build unless ZOOID_BIN says otherwise) without asserting.
"""

import os
import socket
import struct
import sys
import threading
import time

import pytest

from conftest import running_server
from zkraw import OP, Session, Writer, four_letter

BIG = 1_000_000
READS = 100_000
IDLE_SESSIONS = 5000


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def get_data_frames(paths, count):
    """`count` pipelined getData requests over `paths`, round robin, as one byte string."""
    out = bytearray()
    for i in range(count):
        body = Writer().int(i + 1).int(OP["getData"]).ustring(paths[i % len(paths)]).bool(False).bytes()
        out += struct.pack(">i", len(body)) + body
    return bytes(out)


def never_reading_client(server, paths, window_s=3.0, check=None):
    """Pipeline READS getData requests over `paths` on one session that never reads a reply.
    Returns (RSS before, highest RSS seen while the requests are pending)."""
    before = rss_mib(server.pid)
    s = Session(server.host, server.port, timeout_ms=30000)
    s.sock.setblocking(False)
    data = memoryview(get_data_frames(paths, READS))
    sent = 0
    peak = before
    end = time.monotonic() + 60
    # Push requests while the socket takes them; then watch the server for `window_s`.
    quiet_since = None
    while time.monotonic() < end:
        try:
            sent += s.sock.send(data[sent:sent + 65536]) if sent < len(data) else 0
            progressed = True
        except BlockingIOError:
            progressed = False
        peak = max(peak, rss_mib(server.pid))
        if peak - before > 512:
            break  # unbounded: stop feeding it before it takes the machine down
        if sent >= len(data) or not progressed:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= window_s:
                break
            time.sleep(0.05)  # sampling interval of the RSS watch, not a synchronisation
        else:
            quiet_since = None
    if check:
        check()
    peak = max(peak, rss_mib(server.pid))
    s.sock.close()
    return before, peak


def fill(client, paths, size):
    for p in paths:
        client.create(p, b"x" * size)


@pytest.fixture
def zooid(server_launcher):
    with server_launcher("zooid", extra_cfg={"maxClientCnxns": "0"}) as z:
        yield z


def served(make_client, server):
    """A check that another client is served: a write and a read answer."""
    def check():
        c = make_client(server)
        c.create("/other", b"still here", ephemeral=True)
        assert c.get("/other")[0] == b"still here"
        c.stop()
    return check


def test_a_client_that_never_reads_one_big_node(zooid, make_client):
    fill(make_client(zooid), ["/big"], BIG)
    before, peak = never_reading_client(zooid, ["/big"], check=served(make_client, zooid))
    # Without a bound this grew past 4 GiB in 3 s.
    assert peak - before < 96, f"RSS {before:.0f} -> {peak:.0f} MiB"
    assert four_letter(zooid.host, zooid.port, "ruok") == "imok"


def test_a_client_that_never_reads_many_nodes(zooid, make_client):
    paths = [f"/n{i}" for i in range(500)]
    fill(make_client(zooid), paths, 100_000)
    before, peak = never_reading_client(zooid, paths, check=served(make_client, zooid))
    assert peak - before < 96, f"RSS {before:.0f} -> {peak:.0f} MiB"


def idle_sessions(server, n=IDLE_SESSIONS):
    """Open `n` idle sessions; returns RSS (before, with them open, after they closed)."""
    before = rss_mib(server.pid)
    sessions = [Session(server.host, server.port, timeout_ms=60000) for _ in range(n)]
    with_them = rss_mib(server.pid)
    for s in sessions:
        s.call(OP["closeSession"])
        s.close_socket()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stat = four_letter(server.host, server.port, "mntr")
        if "zk_num_alive_connections\t1\n" in stat or "zk_num_alive_connections\t0\n" in stat:
            break
        time.sleep(0.1)  # polling interval
    return before, with_them, rss_mib(server.pid)


def test_idle_sessions_cost_little_and_give_it_back(zooid):
    before, with_them, after = idle_sessions(zooid)
    per_session_kib = (with_them - before) * 1024 / IDLE_SESSIONS
    assert per_session_kib < 24, f"{per_session_kib:.1f} KiB per idle session"
    assert after - before < (with_them - before) / 2 + 8, (before, with_them, after)


if __name__ == "__main__":
    for kind in sys.argv[1:] or ["zooid", "oracle"]:
        from conftest import ClientFactory
        f = ClientFactory()
        try:
            with running_server(kind, extra_cfg={"maxClientCnxns": "0"}) as srv:
                fill(f(srv), ["/big"], BIG)
                print(kind, "1 MB node, never reading: RSS %.0f -> %.0f MiB" % never_reading_client(srv, ["/big"]))
                print(kind, "5000 idle sessions: RSS %.0f, with them %.0f, after %.0f MiB" % idle_sessions(srv))
                paths = [f"/n{i}" for i in range(500)]
                fill(f(srv), paths, 100_000)
                try:
                    print(kind, "500 nodes of 100 KB, never reading: RSS %.0f -> %.0f MiB"
                          % never_reading_client(srv, paths))
                except (OSError, RuntimeError) as e:
                    print(kind, "500 nodes of 100 KB, never reading: the server died:", e)
                print(kind, "alive afterwards:", srv.alive())
        finally:
            f.close_all()


def test_a_client_that_never_reads_its_notifications_is_closed(zooid):
    """A persistent recursive watch on a busy subtree fires whether or not its client reads:
    past 32 MiB queued for it, its connection is closed instead of the server growing."""
    from test_limits import pipeline
    before = rss_mib(zooid.pid)
    watcher = Session(zooid.host, zooid.port, timeout_ms=30000)
    watcher.call(OP["create"], {"path": "/w", "data": b""})
    assert watcher.call(OP["addWatch"], {"path": "/w", "mode": 1}).err == 0
    writer = Session(zooid.host, zooid.port, timeout_ms=30000)
    name = "n" * 1000  # each event carries the ~1 KB path
    peak = before
    for chunk in range(40):
        errs = pipeline(writer, [(OP["create"], {"path": f"/w/{name}{chunk:02d}{i:04d}", "data": b""})
                                 for i in range(1000)])
        assert set(errs) == {0}
        peak = max(peak, rss_mib(zooid.pid))
    # The watcher's connection was closed: what the kernel still holds for it, then the end.
    watcher.sock.settimeout(15)
    while watcher.sock.recv(1 << 20):
        pass
    assert peak - before < 128, f"RSS {before:.0f} -> {peak:.0f} MiB"
    assert writer.call(OP["exists"], {"path": "/w", "watch": False}).err == 0
    writer.close_socket()
