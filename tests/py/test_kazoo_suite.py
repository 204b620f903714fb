"""kazoo's own tests, run against zooid by kazoo's own test harness.

kazoo's harness (`kazoo.testing`) starts a three-member ensemble with
`java ... QuorumPeerMain zoo.cfg`: its zoo.cfg (reconfigEnabled, SASL provider, a JKS key
store, admin port, peerType), its JVM properties (superDigest, readonlymode.enabled, an
empty JAAS file) and its port layout. `kazoo_shim/java` runs zooid for that command, with
the properties in SERVER_JVMFLAGS, so the tests run unchanged against zooid members.
"""

import os
import subprocess
import sys

import pytest

from conftest import ZOOID_BIN
from ensemble import _bindable, pick_ports

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE_TIMEOUT = 600

import kazoo
# kazoo's harness makes its certificates with pyOpenSSL and writes its key stores with pyjks
# (scripts/test.sh installs both, from tests/py/requirements.txt).
import OpenSSL  # noqa: F401
import jks  # noqa: F401

KAZOO_TESTS = os.path.join(os.path.dirname(kazoo.__file__), "tests")


def free_offset():
    """A port offset for kazoo's harness: its three members take offset + 10 * i + 0..4."""
    for _ in range(50):
        base = pick_ports(1)[0] // 100 * 100
        if all(_bindable(base + 10 * i + j) for i in range(3) for j in range(5)):
            return base
    raise RuntimeError("no free ports for kazoo's harness")


@pytest.mark.parametrize("tests", [
    # dynamic reconfiguration: add and remove an observer, no super user, bad input
    "test_client.py::TestReconfig",
    # read-only mode: two of three members stopped, a read-only client keeps reading
    "test_connection.py::TestReadOnlyMode",
    # TLS with the harness's version 1 certificates, both ends
    "test_client.py::TestSSLClient",
])
def test_kazoo_own_tests_pass_on_zooid(tests, tmp_path):
    offset = free_offset()
    env = {
        **os.environ,
        "PATH": os.path.join(HERE, "kazoo_shim") + os.pathsep + os.environ.get("PATH", ""),
        "ZOOID_BIN": ZOOID_BIN,
        "ZOOKEEPER_VERSION": "3.9.3",
        "ZOOKEEPER_CLASSPATH": "zooid",
        "ZOOKEEPER_PORT_OFFSET": str(offset),
    }
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore",
         os.path.join(KAZOO_TESTS, *tests.split("::")[0:1]) + "::" + tests.split("::")[1]],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=SUITE_TIMEOUT)
    tail = "\n".join((r.stdout + r.stderr).splitlines()[-40:])
    assert r.returncode == 0, tail
    assert " passed" in tail and "skipped" not in tail, tail
