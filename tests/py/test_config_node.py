"""`/zookeeper/config` holds an ensemble's membership on every member, as in ZooKeeper 3.5+
with reconfiguration disabled: Curator's EnsembleTracker reads it to keep its connection
string. Checked on zooid and on ZooKeeper 3.8 ensembles of three voters and an observer.
"""

import os
import subprocess

import pytest
from kazoo.security import ACL, Id

from ensemble import Ensemble


def expected_text(ens):
    lines = []
    for sid in ens.sids:
        m = ens.member(sid)
        lines.append(f"server.{sid}=127.0.0.1:{m.quorum_port}:{m.election_port}:{m.role}")
    return ("\n".join(lines) + "\nversion=0").encode()


@pytest.mark.parametrize("kind", ["zooid", "oracle"])
def test_config_node_holds_the_membership(kind, tmp_path, make_client):
    ens = Ensemble(str(tmp_path / "ens"), kind=kind)
    try:
        ens.start(3, 1)
        want = expected_text(ens)
        for sid in ens.sids:
            c = make_client(ens.member(sid).hosts)
            data, stat = c.get("/zookeeper/config")
            assert data == want, (sid, data)
            assert (stat.version, stat.aversion, stat.czxid, stat.mzxid) == (-1, -1, 0, 0)
            assert c.get_acls("/zookeeper/config")[0] == [ACL(1, Id("world", "anyone"))]
            c.stop()
    finally:
        ens.stop_all()


JAVA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "java")


@pytest.fixture(scope="module")
def tracker_classes(tmp_path_factory):
    """tests/java/EnsembleTrackerCheck.java compiled against Debian's Curator."""
    if not os.path.exists("/usr/share/java/curator-framework.jar"):
        pytest.fail("Curator is missing: apt-get install libcurator-framework-java")
    out = str(tmp_path_factory.mktemp("curator"))
    subprocess.run(["javac", "-cp", "/usr/share/java/*", "-d", out,
                    os.path.join(JAVA_DIR, "EnsembleTrackerCheck.java")],
                   check=True, capture_output=True, timeout=120)
    return out


@pytest.mark.parametrize("kind", ["zooid", "oracle"])
def test_curator_ensemble_tracker_learns_every_member(kind, tmp_path, tracker_classes):
    """Curator connected to one member learns the others from /zookeeper/config."""
    ens = Ensemble(str(tmp_path / "ens"), kind=kind, client_in_server_lines=True)
    try:
        ens.start(3)
        first = ens.member(1).hosts
        r = subprocess.run(["java", "-XX:-UsePerfData", "-cp", f"{tracker_classes}:/usr/share/java/*",
                            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                            "EnsembleTrackerCheck", first, "3"],
                           capture_output=True, text=True, timeout=90)
        members = sorted(r.stdout.strip().splitlines()[-1].split(","))
        assert members == sorted(ens.member(s).hosts for s in ens.sids), (kind, r.stdout, r.stderr[-2000:])
    finally:
        ens.stop_all()
