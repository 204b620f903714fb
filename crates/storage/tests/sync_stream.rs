//! Storage for Zab's sync: the SNAP body round trip, Java's SNAP streams from the ensemble
//! capture kept as the Java learners kept them, damaged bodies, the snapshots a TRUNC removes,
//! and the txn log range a DIFF is built from.

// The zab crate's capture reader: storage does not depend on zab, so it is shared by path.
#[path = "../../zab/tests/pcap/mod.rs"]
mod pcap;

use std::fs;
use std::path::{Path, PathBuf};

use zooid_proto::{Acl, CreateKind, Txn, TxnEntry, TxnHeader, Writer};
use zooid_storage::snapshot::{encode_snapshot, load_latest, read_snapshot, Layout, SnapError};
use zooid_storage::sync::{
    committed_range, remove_snapshots_above, sync_stream_body, write_sync_snapshot,
};
use zooid_storage::txnlog::TxnLog;
use zooid_tree::{DataTree, TxnResult};

const A: i64 = 0x1000_0f73_1f00_0001;
const B: i64 = 0x1000_0f73_1f00_0002;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Apply `txns` in order from zxid 1, each by `session`.
fn tree_of(txns: Vec<(i64, Txn)>) -> DataTree {
    let mut tree = DataTree::new();
    for (i, (session, txn)) in txns.into_iter().enumerate() {
        let zxid = i as i64 + 1;
        let hdr = TxnHeader {
            session_id: session,
            cxid: zxid as i32,
            zxid,
            time_ms: 1_795_293_519_911 + zxid,
            op: txn.op().code(),
        };
        let applied = tree.apply(&hdr, &txn);
        assert!(
            !matches!(applied.result, TxnResult::Error(_)),
            "{txn:?}: {:?}",
            applied.result
        );
    }
    tree
}

fn create(path: &str, data: Option<&[u8]>, acl: Vec<Acl>, kind: CreateKind, eph: bool) -> Txn {
    Txn::Create {
        kind,
        path: path.into(),
        data: data.map(<[u8]>::to_vec),
        acl,
        ephemeral: eph,
        parent_cversion: -1,
    }
}

fn plain(path: &str, data: Option<&[u8]>, acl: Vec<Acl>) -> Txn {
    create(path, data, acl, CreateKind::Plain { create2: false }, false)
}

/// Sessions, an ephemeral, null and empty data, several ACL lists, a container and a TTL node.
fn sample() -> DataTree {
    let secure = vec![
        Acl::new(31, "digest", "u:2Om+GBbT2q/tS6pdvACZbbm7/1A="),
        Acl::new(1, "ip", "10.0.0.0/8"),
    ];
    tree_of(vec![
        (A, Txn::CreateSession { timeout_ms: 30_000 }),
        (B, Txn::CreateSession { timeout_ms: 4_000 }),
        (A, plain("/app", Some(b"v"), Acl::open_unsafe())),
        (A, plain("/app/null", None, Acl::open_unsafe())),
        (A, plain("/app/empty", Some(b""), Acl::open_unsafe())),
        (
            B,
            create(
                "/app/eph",
                Some(b"e"),
                Acl::open_unsafe(),
                CreateKind::Plain { create2: true },
                true,
            ),
        ),
        (A, plain("/secure", Some(b"s"), secure.clone())),
        (A, plain("/secure/c", None, secure)),
        (A, plain("/ro", Some(&[0, 255, 7]), Acl::read_unsafe())),
        (
            A,
            create(
                "/cont",
                None,
                Acl::open_unsafe(),
                CreateKind::Container,
                false,
            ),
        ),
        (
            A,
            create(
                "/ttl",
                Some(b"t"),
                Acl::open_unsafe(),
                CreateKind::Ttl(60_000),
                false,
            ),
        ),
    ])
}

fn same_tree(a: &DataTree, b: &DataTree) {
    assert_eq!(encode_snapshot(a, None), encode_snapshot(b, None));
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.sessions(), b.sessions());
    assert_eq!(a.node_count(), b.node_count());
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn a_body_round_trips_through_a_durable_snapshot() {
    let tree = sample();
    let body = sync_stream_body(&tree);
    let dir = tempfile::tempdir().unwrap();
    let zxid = 0x3_0000_0007;
    let (path, got) = write_sync_snapshot(dir.path(), &body, zxid, Layout::Zk38).unwrap();
    assert_eq!(path, dir.path().join("snapshot.300000007"));
    assert_eq!(names(dir.path()), ["snapshot.300000007"]);
    assert_eq!(got.last_zxid(), zxid);
    same_tree(&tree, &got);
    assert_eq!(got.get("/app/null").unwrap().data, None);
    assert_eq!(
        got.get("/app/empty").unwrap().data.as_deref(),
        Some(&b""[..])
    );
    assert_eq!(got.ephemerals_of(B), ["/app/eph"]);
    assert_eq!(got.acl_of(got.get("/secure/c").unwrap()).len(), 2);
    assert_eq!(got.acl_of(got.get("/ro").unwrap()), Acl::read_unsafe());

    let snap = read_snapshot(&path).unwrap();
    assert_eq!(snap.zxid, zxid);
    assert_eq!(snap.tree.last_zxid(), zxid);
    // The (0, 2, 0) placeholder, as a Java learner writes after SNAP.
    assert_eq!(snap.digest, None);
    same_tree(&got, &snap.tree);
    assert_eq!(sync_stream_body(&snap.tree), body);
    assert_eq!(fs::read(&path).unwrap(), encode_snapshot(&tree, None));
    let (latest, skipped) = load_latest(dir.path()).unwrap();
    assert_eq!(latest.unwrap().zxid, zxid);
    assert!(skipped.is_empty());

    // An existing snapshot of that name is replaced; negative zxids are refused.
    let empty = sync_stream_body(&DataTree::new());
    let (_, got) = write_sync_snapshot(dir.path(), &empty, zxid, Layout::Zk38).unwrap();
    assert_eq!(got.node_count(), 4);
    assert_eq!(read_snapshot(&path).unwrap().tree.node_count(), 4);
    assert!(matches!(
        write_sync_snapshot(dir.path(), &empty, -1, Layout::Zk38),
        Err(SnapError::BadZxid { zxid: -1 })
    ));
    assert!(matches!(
        write_sync_snapshot(&dir.path().join("missing"), &empty, 1, Layout::Zk38),
        Err(SnapError::Io { .. })
    ));
    assert_eq!(names(dir.path()), ["snapshot.300000007"]);
}

// ---------------------------------------------------------------------------------------------
// Java's SNAP streams
// ---------------------------------------------------------------------------------------------

const LEADER_PORT: u16 = 22212;
const SNAP: i32 = 15;
const NEWLEADER: i32 = 10;

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// One QuorumPacket at `at` (`zab.md` §1): (type, zxid, where it ends).
fn packet_at(b: &[u8], at: usize) -> (i32, i64, usize) {
    let ptype = be_i32(b, at);
    let zxid = i64::from_be_bytes(b[at + 4..at + 12].try_into().unwrap());
    let mut end = at + 12;
    let data = be_i32(b, end);
    end += 4 + data.max(0) as usize;
    let ids = be_i32(b, end);
    end += 4;
    for _ in 0..ids.max(0) * 2 {
        end += 4 + be_i32(b, end).max(0) as usize;
    }
    (ptype, zxid, end)
}

/// The (zxid, body) of every SNAP the leader sent, in capture order: packets up to SNAP, the
/// body up to the signature, and NEWLEADER right after it.
fn captured_snaps() -> Vec<(i64, Vec<u8>)> {
    let file = fs::read(fixtures().join("ensemble/ensemble-3+1.pcap")).unwrap();
    let signature = [&[0, 0, 0, 10][..], b"BenWasHere"].concat();
    let mut out = Vec::new();
    for s in pcap::read_tcp_streams(&file).unwrap() {
        if s.server_port() != LEADER_PORT {
            continue;
        }
        let down = &s.to_client;
        let mut at = 0;
        while at < down.len() {
            let (ptype, zxid, end) = packet_at(down, at);
            at = end;
            if ptype == SNAP {
                let len = down[at..]
                    .windows(signature.len())
                    .position(|w| w == signature)
                    .expect("the SNAP stream's signature");
                out.push((zxid, down[at..at + len].to_vec()));
                assert_eq!(packet_at(down, at + len + signature.len()).0, NEWLEADER);
                break;
            }
        }
    }
    out
}

#[test]
fn java_snap_streams_are_kept_as_the_java_learners_kept_them() {
    let snaps = captured_snaps();
    let zxids: Vec<i64> = snaps.iter().map(|s| s.0).collect();
    assert_eq!(zxids, [0x1_0000_0000, 0x1_0000_0000, 0x1_0000_0012]);
    let dir = tempfile::tempdir().unwrap();
    for ((zxid, body), nodes) in snaps.iter().zip([4, 4, 11]) {
        let (path, tree) = write_sync_snapshot(dir.path(), body, *zxid, Layout::Zk38).unwrap();
        assert_eq!(tree.node_count(), nodes, "{zxid:#x}");
        assert!(tree.sessions().is_empty());
        assert_eq!(tree.last_zxid(), *zxid);
        same_tree(&tree, &read_snapshot(&path).unwrap().tree);
    }
    // The snapshots the Java learners wrote at NEWLEADER after these SNAPs: the observer
    // (sid 4) after the first, the wiped sid 3 after the last: the same bytes but for the mtime
    // of /zookeeper/config, which the learner rewrote with its own config (reconfigEnabled is
    // off), and so the seals.
    for (learner, zxid) in [("s4", 0x1_0000_0000i64), ("s3", 0x1_0000_0012)] {
        let name = format!("snapshot.{zxid:x}");
        let java_path = fixtures().join(format!("ensemble/{learner}/version-2/{name}"));
        let (ours, java) = (
            fs::read(dir.path().join(&name)).unwrap(),
            fs::read(&java_path).unwrap(),
        );
        assert_eq!(ours.len(), java.len(), "{learner} {name}");
        let digest_section = ours.len() - 13 - 20..ours.len() - 13;
        assert_eq!(ours[digest_section.clone()], java[digest_section]);
        let body_diffs: Vec<usize> = (0..ours.len() - 46)
            .filter(|&i| ours[i] != java[i])
            .collect();
        assert!(
            body_diffs.last().unwrap() - body_diffs[0] < 8,
            "{learner} {name}: {body_diffs:?}"
        );
        let (ours, java) = (
            read_snapshot(&dir.path().join(&name)).unwrap(),
            read_snapshot(&java_path).unwrap(),
        );
        assert_eq!(ours.digest, java.digest);
        assert_eq!(ours.tree.digest(), java.tree.digest());
        assert_eq!(ours.tree.node_count(), java.tree.node_count());
        let mut differ = Vec::new();
        ours.tree.walk(|path, node| {
            let theirs = java.tree.get(path).unwrap();
            assert_eq!(node.data, theirs.data, "{path}");
            assert_eq!(ours.tree.acl_of(node), java.tree.acl_of(theirs), "{path}");
            let mut stat = theirs.stat;
            stat.mtime = node.stat.mtime;
            assert_eq!(node.stat, stat, "{path}");
            if node.stat.mtime != theirs.stat.mtime {
                differ.push(path.to_string());
            }
        });
        assert!(
            differ.iter().all(|p| p == "/zookeeper/config"),
            "{differ:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile bodies
// ---------------------------------------------------------------------------------------------

fn small() -> DataTree {
    tree_of(vec![
        (A, Txn::CreateSession { timeout_ms: 9_000 }),
        (A, plain("/x", Some(b"xy"), vec![Acl::new(3, "auth", "")])),
        (
            A,
            create(
                "/x/e",
                None,
                Acl::open_unsafe(),
                CreateKind::Plain { create2: false },
                true,
            ),
        ),
    ])
}

#[test]
fn every_truncation_is_refused_and_writes_nothing() {
    let body = sync_stream_body(&small());
    let dir = tempfile::tempdir().unwrap();
    for len in 0..body.len() {
        match write_sync_snapshot(dir.path(), &body[..len], 5, Layout::Zk38) {
            Err(SnapError::SyncStream {
                zxid: 5, offset, ..
            }) => assert!(offset <= len as u64, "cut at {len}: offset {offset}"),
            other => panic!("cut at {len}: {other:?}"),
        }
    }
    let mut longer = body.clone();
    longer.push(0);
    let err = write_sync_snapshot(dir.path(), &longer, 5, Layout::Zk38).unwrap_err();
    assert!(err.to_string().contains("1 bytes follow"), "{err}");
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

#[test]
fn flipped_bits_never_panic_and_what_is_accepted_is_what_is_stored() {
    let body = sync_stream_body(&small());
    let dir = tempfile::tempdir().unwrap();
    let mut refused = 0;
    for i in 0..body.len() {
        for mask in [0x80, 0x01] {
            let mut bad = body.clone();
            bad[i] ^= mask;
            match write_sync_snapshot(dir.path(), &bad, 9, Layout::Zk38) {
                Ok((path, tree)) => same_tree(&tree, &read_snapshot(&path).unwrap().tree),
                Err(SnapError::SyncStream { offset, .. }) => {
                    assert!(offset <= body.len() as u64);
                    refused += 1;
                }
                Err(e) => panic!("byte {i} ^ {mask:#x}: {e}"),
            }
        }
    }
    // No checksum covers a SNAP body (TCP does), so data and stat bytes flip silently; every
    // count, length, path byte and ACL ref is checked.
    assert!(refused > body.len() / 2, "{refused} of {}", body.len() * 2);
    // Counts and lengths claiming more than there is.
    let mut huge = body.clone();
    huge[..4].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(write_sync_snapshot(dir.path(), &huge, 9, Layout::Zk38).is_err());
    let mut negative = body;
    negative[..4].copy_from_slice(&(-2i32).to_be_bytes());
    assert!(write_sync_snapshot(dir.path(), &negative, 9, Layout::Zk38).is_err());
    assert!(write_sync_snapshot(dir.path(), b"", 9, Layout::Zk38).is_err());
    assert!(write_sync_snapshot(dir.path(), &[0xff; 64], 9, Layout::Zk38).is_err());
}

// ---------------------------------------------------------------------------------------------
// TRUNC
// ---------------------------------------------------------------------------------------------

#[test]
fn snapshots_above_a_trunc_point_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        "snapshot.0",
        "snapshot.5",
        "snapshot.a.gz",
        "snapshot.b.snappy",
        "snapshot.100000001",
        "snapshot.f.gz",
        "log.20",
        "notes.txt",
        ".snapshot.30.tmp",
    ];
    for f in files {
        fs::write(dir.path().join(f), b"x").unwrap();
    }
    let mut removed = remove_snapshots_above(dir.path(), 0xa).unwrap();
    removed.sort();
    let expect: Vec<PathBuf> = ["snapshot.100000001", "snapshot.b.snappy", "snapshot.f.gz"]
        .iter()
        .map(|f| dir.path().join(f))
        .collect();
    assert_eq!(removed, expect);
    assert_eq!(
        names(dir.path()),
        [
            ".snapshot.30.tmp",
            "log.20",
            "notes.txt",
            "snapshot.0",
            "snapshot.5",
            "snapshot.a.gz"
        ]
    );
    assert!(remove_snapshots_above(dir.path(), 0xa).unwrap().is_empty());
    assert_eq!(remove_snapshots_above(dir.path(), -1).unwrap().len(), 3);
    assert!(remove_snapshots_above(&dir.path().join("missing"), 0)
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------------------------
// The log range for a DIFF
// ---------------------------------------------------------------------------------------------

fn entry(zxid: i64) -> Vec<u8> {
    let e = TxnEntry {
        header: TxnHeader {
            session_id: A,
            cxid: 1,
            zxid,
            time_ms: 1_795_293_519_911,
            op: zooid_proto::OpCode::SetData.code(),
        },
        txn: Txn::SetData {
            path: format!("/n{zxid:x}"),
            data: Some(vec![7; 20]),
            version: -1,
        },
        digest: None,
    };
    let mut w = Writer::new();
    e.encode(&mut w);
    w.into_inner()
}

/// A log in `dir` with one file per group of zxids.
fn write_log(dir: &Path, files: &[&[i64]], pre_alloc: u64) {
    let mut log = TxnLog::new(dir, pre_alloc, false);
    for group in files {
        for &z in *group {
            log.append(z, &entry(z)).unwrap();
        }
        log.roll().unwrap();
    }
}

fn range(dir: &Path, from: i64, to: i64, budget: u64) -> Option<Vec<i64>> {
    committed_range(dir, from, to, budget).map(|v| v.iter().map(|e| e.header.zxid).collect())
}

fn size(dir: &Path, names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| fs::metadata(dir.join(n)).unwrap().len())
        .sum()
}

#[test]
fn the_range_starts_at_from_and_stops_at_to() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let all: Vec<i64> = (1..=20).collect();
    write_log(d, &[&all[..7], &all[7..14], &all[14..]], 0);
    let span = |a: i64, b: i64| Some((a..=b).collect::<Vec<i64>>());
    assert_eq!(range(d, 5, 12, u64::MAX), span(5, 12));
    assert_eq!(range(d, 8, 8, u64::MAX), span(8, 8));
    assert_eq!(range(d, 1, 20, u64::MAX), span(1, 20));
    // The log ends before `to`: what there is.
    assert_eq!(range(d, 15, 99, u64::MAX), span(15, 20));
    for (from, to) in [(0, 5), (21, 30), (-3, 5), (6, 5)] {
        assert_eq!(range(d, from, to, u64::MAX), None, "{from}..={to}");
    }
    // The budget counts the files read: from 12, log.8 and log.f; from 8, all three (the
    // reader starts at the file holding 7).
    let two = size(d, &["log.8", "log.f"]);
    assert_eq!(range(d, 12, 14, two), span(12, 14));
    assert_eq!(range(d, 12, 14, two - 1), None);
    let three = size(d, &["log.1", "log.8", "log.f"]);
    assert_eq!(range(d, 8, 9, three), span(8, 9));
    assert_eq!(range(d, 8, 9, three - 1), None);
    assert_eq!(range(d, 8, 9, 0), None);
}

#[test]
fn gaps_in_the_range_and_damage_mean_none() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_log(d, &[&[1, 2, 3], &[5, 6]], 0);
    assert_eq!(range(d, 2, 6, u64::MAX), None);
    assert_eq!(range(d, 2, 4, u64::MAX), Some(vec![2, 3]));
    assert_eq!(range(d, 5, 6, u64::MAX), Some(vec![5, 6]));
    assert_eq!(range(d, 4, 6, u64::MAX), None);

    // A new epoch starts at counter 1; anything else after an epoch's last txn is a gap.
    let e = |epoch: i64, counter: i64| (epoch << 32) | counter;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_log(d, &[&[e(1, 1), e(1, 2)], &[e(2, 1), e(2, 2), e(4, 2)]], 0);
    assert_eq!(
        range(d, e(1, 1), e(2, 2), u64::MAX),
        Some(vec![e(1, 1), e(1, 2), e(2, 1), e(2, 2)])
    );
    assert_eq!(range(d, e(1, 2), e(4, 2), u64::MAX), None);

    // A torn entry at the end of the newest file (the writer mid-append) ends the range.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_log(d, &[&[1, 2, 3]], 0);
    let log = d.join("log.1");
    let mut bytes = fs::read(&log).unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 60, 9, 9]);
    fs::write(&log, &bytes).unwrap();
    assert_eq!(range(d, 2, 9, u64::MAX), Some(vec![2, 3]));

    // A damaged entry with good ones after it: the log cannot be trusted for a DIFF.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_log(d, &[&[1, 2, 3], &[4, 5]], 0);
    let log = d.join("log.1");
    let mut bytes = fs::read(&log).unwrap();
    let second = 16 + 12 + entry(1).len() + 1;
    bytes[second + 12 + 20] ^= 0x40;
    fs::write(&log, &bytes).unwrap();
    assert_eq!(range(d, 1, 1, u64::MAX), None);
    // Only the files from the one holding `from - 1` on are read.
    assert_eq!(range(d, 5, 5, u64::MAX), Some(vec![5]));
}

#[test]
fn preallocated_files_count_in_full() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_log(d, &[&[1, 2, 3]], 1 << 20);
    assert!(size(d, &["log.1"]) >= 1 << 20);
    assert_eq!(range(d, 1, 3, 64 << 10), None);
    assert_eq!(range(d, 1, 3, 2 << 20), Some(vec![1, 2, 3]));
}

#[test]
fn the_fixture_leader_log_gives_the_capture_diff() {
    // The restarted sid 1 (peer 0x100000009) got PROPOSAL/COMMIT 0xa..0x12 from sid 2.
    let d = fixtures().join("ensemble/s2/version-2");
    let got = range(&d, 0x1_0000_0009, 0x1_0000_0012, u64::MAX).unwrap();
    assert_eq!(got, (0x1_0000_0009..=0x1_0000_0012).collect::<Vec<i64>>());
    assert_eq!(range(&d, 0x1_0000_0000, 0x1_0000_0012, u64::MAX), None);
}
