"""Dynamic reconfiguration (`reconfigEnabled`): the reconfig request, `/zookeeper/config`,
the dynamic config file and the rewritten zoo.cfg, members removed (the leader too) and
added. Every scenario runs on zooid and on Apache ZooKeeper 3.9.3 with the same assertions.
"""

import contextlib
import glob
import threading

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (BadArgumentsError, BadVersionError, ConnectionLoss,
                              NewConfigNoQuorumError, NoAuthError)

from conftest import SUPER_PASSWORD, SUPER_USER, poll, super_digest
from ensemble import Ensemble, pick_ports

WAIT = 30.0
KINDS = ["zooid", "oracle39"]
RECONFIG_CFG = {"reconfigEnabled": "true", "standaloneEnabled": "false",
                "DigestAuthenticationProvider.superDigest": super_digest()}


@contextlib.contextmanager
def connected(hosts, auth=True):
    """A started KazooClient (the super user with `auth`), always stopped and closed."""
    c = KazooClient(hosts=hosts, timeout=10.0)
    c.start(timeout=WAIT)
    try:
        if auth:
            c.add_auth("digest", f"{SUPER_USER}:{SUPER_PASSWORD}")
        yield c
    finally:
        c.stop()
        c.close()


def parse_config(data):
    """{sid: value} and the version of a /zookeeper/config text."""
    members, version = {}, None
    for line in data.decode().split("\n"):
        key, _, value = line.partition("=")
        if key.startswith("server."):
            members[int(key[len("server."):])] = value
        elif key == "version":
            version = int(value, 16)
    return members, version


def members_now(zk):
    """The sids of /zookeeper/config now; None while the connection is being re-made (a
    member handing over leadership drops its clients)."""
    try:
        return sorted(parse_config(zk.get("/zookeeper/config")[0])[0])
    except ConnectionLoss:
        return None


def spec(m, role="participant"):
    return (f"server.{m.sid}=127.0.0.1:{m.quorum_port}:{m.election_port}:{role};"
            f"127.0.0.1:{m.client_port}")


def dynamic_files(m):
    return sorted(glob.glob(m.cfg_path + ".dynamic.*"))


@pytest.fixture
def ensemble(request, tmp_path):
    ens = Ensemble(str(tmp_path), kind=request.param, extra_cfg=RECONFIG_CFG)
    try:
        yield ens
    finally:
        ens.stop_all()


@pytest.mark.parametrize("ensemble", KINDS, indirect=True)
def test_reconfig_requests_config_node_and_files(ensemble):
    ens = ensemble.start(3)
    with connected(ens.hosts) as zk:
        data, stat = zk.get("/zookeeper/config")
        members, version = parse_config(data)
        assert sorted(members) == [1, 2, 3]
        # A static config takes the first zxid of the leader's epoch as its version.
        assert version > 0 and version & 0xFFFFFFFF == 0, hex(version)
        assert stat.version == -1 and stat.mzxid == version
        assert members[1] == f"127.0.0.1:{ens.member(1).quorum_port}:" \
                             f"{ens.member(1).election_port}:participant"
        # Every member recorded it: zoo.cfg names zoo.cfg.dynamic.<version>, kept in zoo.cfg.bak.
        for m in ens.members.values():
            path = poll(lambda m=m: dynamic_files(m), f"member {m.sid}'s dynamic file")[-1]
            assert path.endswith(f".dynamic.{version:x}")
            cfg = open(m.cfg_path).read()
            assert f"dynamicConfigFile={path}" in cfg and "server." not in cfg
            assert "server.1=" in open(m.cfg_path + ".bak").read()

        # Only the super user may reconfigure; bad input, a stale version, and a new
        # config without a synced quorum are refused.
        with connected(ens.hosts, auth=False) as plain:
            with pytest.raises(NoAuthError):
                plain.reconfig(joining=None, leaving="3", new_members=None)
        with pytest.raises(BadArgumentsError):
            zk.reconfig(joining="some thing", leaving=None, new_members=None)
        with pytest.raises(BadVersionError):
            zk.reconfig(joining=None, leaving="3", new_members=None, from_config=version + 1)
        absent = pick_ports(3)
        with pytest.raises(NewConfigNoQuorumError):
            zk.reconfig(joining=(f"server.7=127.0.0.1:{absent[0]}:{absent[1]}:participant;"
                                 f"{absent[2]}"),
                        leaving="2,3", new_members=None)

        # An observer that is not running yet may be added, and removed again.
        observer = (f"server.100=127.0.0.1:{absent[0]}:{absent[1]}:observer;"
                    f"0.0.0.0:{absent[2]}")
        data, _ = zk.reconfig(joining=observer, leaving=None, new_members=None,
                              from_config=version)
        assert observer in data.decode()
        data, stat = zk.reconfig(joining=None, leaving="100", new_members=None)
        assert "server.100" not in data.decode()
        members, version = parse_config(data)
        assert stat.mzxid == version and stat.version == -1

        # Remove a follower: it keeps running, outside the config.
        gone = ens.followers()[0]
        data, _ = zk.reconfig(joining=None, leaving=str(gone), new_members=None)
        members, version = parse_config(data)
        assert gone not in members
        for m in ens.members.values():
            poll(lambda m=m: dynamic_files(m) and dynamic_files(m)[-1].endswith(f"{version:x}"),
                 f"member {m.sid} recording version {version:x}")
        assert ens.mode(gone) == "follower"
        zk.create("/after-remove", b"x")

        # Add it back, with its client address.
        data, _ = zk.reconfig(joining=spec(ens.member(gone)), leaving=None, new_members=None)
        members, version = parse_config(data)
        assert sorted(members) == [1, 2, 3]
        assert members[gone].endswith(f";127.0.0.1:{ens.member(gone).client_port}")
        zk.sync("/")
        assert parse_config(zk.get("/zookeeper/config")[0])[1] == version

        # A restarted member starts from the rewritten zoo.cfg and its dynamic file.
        ens.restart(gone)
        ens.wait_for_quorum()
        with connected(ens.member(gone).hosts) as other:
            other.sync("/")
            assert other.exists("/after-remove")
            assert parse_config(other.get("/zookeeper/config")[0])[1] == version


@pytest.mark.parametrize("ensemble", KINDS, indirect=True)
def test_removing_the_leader_hands_over_to_a_remaining_member(ensemble):
    ens = ensemble.start(3)
    with connected(ens.hosts_of([s for s in ens.sids if s != ens.leader_sid()])) as zk:
        zk.create("/before", b"1")
        leader = ens.leader_sid()
        try:
            data, _ = zk.reconfig(joining=None, leaving=str(leader), new_members=None)
            assert leader not in parse_config(data)[0]
        except Exception as e:  # noqa: BLE001 - ZooKeeper may drop the connection first
            assert type(e).__name__ in ("ConnectionLoss", "ConnectionClosedError"), e
        new_leader = poll(lambda: ens.leader_sid() not in (None, leader) and ens.leader_sid(),
                          "a new leader")
        assert new_leader != leader
        poll(lambda: members_now(zk) and leader not in members_now(zk),
             "the config without the old leader")
        zk.create("/after", b"2")
        assert zk.get("/before")[0] == b"1"
        # The old leader keeps running, following, outside the config.
        poll(lambda: ens.mode(leader) == "follower", "the old leader following")


@pytest.mark.parametrize("ensemble", KINDS, indirect=True)
def test_grow_to_five_and_shrink_back_under_writes(ensemble):
    ens = ensemble.start(3)
    with connected(ens.hosts) as zk:
        acked, errors, stop = [], [], threading.Event()

        def writer():
            with connected(ens.hosts, auth=False) as w:
                i = 0
                while not stop.is_set() and i < 5000:
                    try:
                        w.create(f"/w/{i:06d}", b"v", makepath=True)
                        acked.append(i)
                    except Exception as e:  # noqa: BLE001 - a failover loses no acked write
                        errors.append(repr(e))
                    i += 1

        t = threading.Thread(target=writer)
        t.start()
        try:
            joiners = [ens.join(), ens.join()]
            for m in joiners:
                ens.wait_for_mode(m.sid, ("follower",))
            data, _ = zk.reconfig(joining=",".join(spec(m) for m in joiners), leaving=None,
                                  new_members=None)
            assert sorted(parse_config(data)[0]) == [1, 2, 3, 4, 5]
            poll(lambda: int(ens.mntr(ens.leader_sid()).get("zk_quorum_size", 0)) == 5,
                 "a quorum of five voters")
            # Shrink back: remove two of the original three. One may lead: its clients can
            # see the connection drop as the others hand over (ZooKeeper's do), though the
            # reconfig commits.
            try:
                data, _ = zk.reconfig(joining=None, leaving="1,2", new_members=None)
                assert sorted(parse_config(data)[0]) == [3, 4, 5]
            except ConnectionLoss:
                pass
            poll(lambda: members_now(zk) == [3, 4, 5], "the config without members 1 and 2")
            poll(lambda: len(acked) > 50, "writes after the reconfigs")
        finally:
            stop.set()
            t.join(WAIT)
        assert not t.is_alive()
        zk.sync("/")
        present = {int(c) for c in zk.get_children("/w")}
        assert set(acked) <= present, f"lost {sorted(set(acked) - present)[:10]}"


def cli_script(ens, gone):
    """A zkCli session over the reconfig commands and their error cases; it leaves the
    membership as it found it."""
    m = ens.member(gone)
    add = (f"reconfig -add server.{gone}=127.0.0.1:{m.quorum_port}:{m.election_port}:"
           f"participant;127.0.0.1:{m.client_port}")
    return [
        f"reconfig -remove {gone}",
        f"addauth digest {SUPER_USER}:{SUPER_PASSWORD}",
        add,  # the same membership for every run from here on
        "config",
        f"reconfig -remove {gone}",
        add,
        "reconfig -v 1 -remove 2",
        "reconfig -add some.thing",
        "reconfig -remove abc",
        "reconfig",
        "config -c",
    ]


def normalise_versions(lines):
    import re
    return [re.sub(r"version=[0-9a-f]+", "version=<v>", re.sub(r"^([0-9a-f]+) ", "<v> ", line))
            for line in lines]


def test_cli_reconfig_output_matches_zkcli(tmp_path):
    from test_cli import Output, finish, start_cli
    ens = Ensemble(str(tmp_path), extra_cfg=RECONFIG_CFG).start(3)
    try:
        leader = ens.leader_sid()
        gone = ens.followers()[0]
        hosts = ens.member(leader).hosts
        script = "".join(f"{c}\n" for c in cli_script(ens, gone))
        runs = {}
        # One after the other: each run removes the member and adds it back.
        for kind in ("zooid", "oracle"):
            proc = start_cli(kind, hosts, stdin=True)
            runs[kind] = Output(*finish(proc, script), ens.member(leader).client_port)
        z, o = runs["zooid"], runs["oracle"]
        assert normalise_versions(z.out) == normalise_versions(o.out), (z.out, o.out)
        assert z.err == o.err, (z.err, o.err)
        assert z.rc == o.rc
        # What zkCli printed, so a shared mistake cannot pass unnoticed.
        assert "Committed new configuration:" in z.out
        for line in ("Insufficient permission : ", "version No is not valid : ",
                     "Arguments are not valid : ", "KeeperErrorCode = MarshallingError"):
            assert line in [e.rstrip() + (" " if e.endswith(": ") else "") for e in z.err] \
                or any(e.startswith(line.rstrip()) for e in z.err), (line, z.err)
    finally:
        ens.stop_all()


@pytest.mark.parametrize("kind,joiner", [("zooid", "oracle39"), ("oracle39", "zooid")])
def test_reconfig_with_zookeeper_members(kind, joiner, tmp_path):
    """A ZooKeeper 3.9.3 member added to a zooid ensemble by reconfig, and a zooid member
    added to a ZooKeeper ensemble; then the original members go, and the joiner stays with
    every write."""
    other = "zooid" if kind == "oracle39" else "oracle39"
    ens = Ensemble(str(tmp_path), kind=kind, oracle_sids=(2,) if kind == "zooid" else (),
                   oracle_kind="oracle39", extra_cfg=RECONFIG_CFG).start(3)
    with connected(ens.hosts) as zk:
        zk.create("/before", b"1")
        j = ens.join(kind=joiner)
        ens.wait_for_mode(j.sid, ("follower",))
        data, _ = zk.reconfig(joining=spec(j), leaving=None, new_members=None)
        assert sorted(parse_config(data)[0]) == [1, 2, 3, 4]
        k = ens.join(kind=other)
        ens.wait_for_mode(k.sid, ("follower",))
        data, _ = zk.reconfig(joining=spec(k, "observer"), leaving="1", new_members=None)
        members, version = parse_config(data)
        assert sorted(members) == [2, 3, 4, 5] and members[5].split(";")[0].endswith("observer")
        poll(lambda: ens.mode(k.sid) == "observer", "the added observer observing")
        zk.create("/after", b"2")
        # Every member in the config agrees on it and on the data.
        for sid in (2, 3, 4, 5):
            with connected(ens.member(sid).hosts, auth=False) as c:
                c.sync("/")
                assert parse_config(c.get("/zookeeper/config")[0])[1] == version, sid
                assert c.get("/before")[0] == b"1" and c.get("/after")[0] == b"2", sid
        ens.stop_all()
