"""Real processes under real faults (tests/faults/faults.py): a bounded run of three zooid
members, and one of two zooid members with Apache ZooKeeper 3.8.0, in network namespaces,
with partitions, packet loss, pauses, crashes and clock steps; the clients' history must be
linearizable with nothing acknowledged lost (`zooid-sim --check`). Longer and more runs:
`python3 tests/faults/faults.py --runs N --seconds S` (tests/faults/README.md)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "faults"))

import faults  # noqa: E402

SECONDS = 25


def needs_root():
    if os.geteuid() != 0:
        pytest.fail("the fault harness makes network namespaces: run the tests as root")


@pytest.mark.parametrize("mixed", [None, "oracle", "oracle39"],
                         ids=["zooid", "mixed-3.8", "mixed-3.9"])
def test_histories_stay_linearizable_under_faults(mixed):
    needs_root()
    lines = []
    seed = 4242 + [None, "oracle", "oracle39"].index(mixed)
    ok, verdict, figures = faults.one_run(3, mixed, seed=seed, seconds=SECONDS,
                                          out=lines.append)
    print("\n".join(lines))
    assert ok, "\n".join(lines)
    assert figures["faults"] >= 3, figures
    assert figures["ok"] > 100, figures


def test_five_members_split_three_two_minority_serves_reads_only(tmp_path):
    """readonlymode.enabled in a 5-member ensemble split 3/2: the majority keeps serving
    writes; the minority serves reads to read-only clients and refuses writes; healed, the
    minority catches up with what the majority wrote."""
    needs_root()
    from kazoo.client import KazooClient
    from kazoo.exceptions import NotReadOnlyCallError
    from zkraw import four_letter
    run = faults.Run(5, False, seed=77, zooid=faults.ZOOID_BIN, workdir=str(tmp_path),
                     out=lambda _: None)

    def until(pred, what, within=60.0):
        deadline = faults.time.monotonic() + within
        while faults.time.monotonic() < deadline:
            v = pred()
            if v:
                return v
            faults.time.sleep(0.2)  # polling interval
        raise AssertionError(f"timed out waiting for {what}")

    def isro(sid):
        return four_letter(run.net.addr(sid), faults.CLIENT_PORT, "isro", timeout=1.0)

    try:
        for m in run.members.values():
            with open(m.cfg, "a") as f:
                f.write("readonlymode.enabled=true\n")
            m.start()
        run.wait_quorum(60)
        zk = KazooClient(hosts=run.hosts, timeout=10)
        zk.start(timeout=60)
        zk.create("/before", b"1")
        zk.stop()
        zk.close()
        run.net.partition([[1, 2, 3], [4, 5]])
        until(lambda: isro(4) == "ro" and isro(5) == "ro", "the minority serving read-only")
        majority = ",".join(f"{run.net.addr(i)}:{faults.CLIENT_PORT}" for i in (1, 2, 3))
        until(lambda: any(run.members[i].mode() == "leader" for i in (1, 2, 3)),
              "a leader on the majority side")
        w = KazooClient(hosts=majority, timeout=10)
        w.start(timeout=60)
        w.create("/during", b"2")
        ro = KazooClient(hosts=f"{run.net.addr(4)}:{faults.CLIENT_PORT}", timeout=10,
                         read_only=True)
        ro.start(timeout=60)
        try:
            assert ro.get("/before")[0] == b"1"
            assert ro.exists("/during") is None, "a partitioned member cannot know it"
            try:
                ro.create("/refused", b"x")
                raise AssertionError("a read-only member took a write")
            except NotReadOnlyCallError:
                pass
            run.net.heal()
            until(lambda: isro(4) == "rw" and isro(5) == "rw", "the minority serving again")
            for sid in (4, 5):
                c = KazooClient(hosts=f"{run.net.addr(sid)}:{faults.CLIENT_PORT}", timeout=10)
                c.start(timeout=60)
                c.sync("/")
                assert c.get("/during")[0] == b"2", sid
                assert c.exists("/refused") is None, sid
                c.stop()
                c.close()
        finally:
            for c in (ro, w):
                c.stop()
                c.close()
    finally:
        run.close()
