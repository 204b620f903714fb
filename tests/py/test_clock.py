"""A step of the server's wall clock (NTP, a resumed VM) expires no session.

The server runs under libfaketime (Debian's `faketime`) with only the real-time clock
moved: `DONT_FAKE_MONOTONIC=1`, and the offset read from a file at every call, so the test
steps the clock of the running server by rewriting that file. Twenty live kazoo sessions
must survive the step, while a dead client's session still expires after its own timeout,
and new nodes carry the stepped wall time in their ctime (the clock did move).
Run against zooid and, for comparison, ZooKeeper 3.8.
"""

import os
import threading
import time

import pytest

from conftest import running_server
from zkraw import OP, Session

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
LIVE = 20
TIMEOUT_MS = 6000


@pytest.mark.parametrize("kind", ["zooid", "oracle"])
@pytest.mark.parametrize("step", ["+1h", "-1h"])
def test_wall_clock_step_expires_no_live_session(kind, step, make_client, tmp_path):
    if not os.path.exists(LIBFAKETIME):
        pytest.fail(f"{LIBFAKETIME} missing: apt-get install faketime")
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    env = {
        "LD_PRELOAD": LIBFAKETIME,
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",
        "DONT_FAKE_MONOTONIC": "1",
    }
    with running_server(kind, env=env) as server:
        expired = []
        clients = []
        for i in range(LIVE):
            c = make_client(server, timeout=TIMEOUT_MS / 1000)
            c.add_listener(lambda state, i=i: expired.append((i, state)) if state == "LOST" else None)
            clients.append(c)
        ids = [c.client_id[0] for c in clients]

        # A dead client: it creates an ephemeral node, then vanishes without closing.
        dead = Session(server.host, server.port, timeout_ms=TIMEOUT_MS)
        path = f"/dead-{kind}-{step[0] == '+'}"
        dead.call(OP["create"], {"path": path, "data": b"x", "flags": 1})
        gone = threading.Event()

        def watch(event):
            gone.set()

        assert clients[0].exists(path, watch=watch) is not None

        real_before = time.time()
        offset.write_text(step + "\n")
        dead.close_socket()
        died_at = time.monotonic()

        # The step took effect: a node created now carries the moved wall time.
        probe = f"/probe-{kind}-{step[0] == '+'}"
        clients[1].create(probe, b"")
        ctime_s = clients[1].exists(probe).ctime / 1000
        sign = 1 if step[0] == "+" else -1
        assert abs(ctime_s - (real_before + sign * 3600)) < 120, (ctime_s, real_before)

        # The dead session still expires after its own timeout (ticks ran after the step).
        assert gone.wait(TIMEOUT_MS / 1000 * 4), f"{kind}: the dead session never expired"
        waited = time.monotonic() - died_at
        assert waited >= TIMEOUT_MS / 1000 * 0.5, f"{kind}: expired after only {waited:.1f}s"

        # ... while every live session is still the same, connected, and serving.
        assert expired == [], f"{kind}: sessions lost at the {step} step: {expired}"
        for c, sid in zip(clients, ids):
            assert c.connected and c.client_id[0] == sid
            assert c.exists("/") is not None
