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


@pytest.mark.parametrize("mixed", [False, True], ids=["zooid", "mixed"])
def test_histories_stay_linearizable_under_faults(mixed):
    needs_root()
    lines = []
    ok, verdict, figures = faults.one_run(3, mixed, seed=4242 + mixed, seconds=SECONDS,
                                          out=lines.append)
    print("\n".join(lines))
    assert ok, "\n".join(lines)
    assert figures["faults"] >= 3, figures
    assert figures["ok"] > 100, figures
