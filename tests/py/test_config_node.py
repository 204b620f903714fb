"""`/zookeeper/config` holds an ensemble's membership on every member, as in ZooKeeper 3.5+
with reconfiguration disabled: Curator's EnsembleTracker reads it to keep its connection
string. Checked on zooid and on ZooKeeper 3.8 ensembles of three voters and an observer.
"""

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
