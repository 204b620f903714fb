//! Writing and reading our own snapshots: round trips in all three forms, hostile and damaged
//! files, and which snapshot `load_latest` picks.

use std::io::Read;
use std::path::Path;

use zooid_proto::records::write_acls;
use zooid_proto::{Acl, CreateKind, Txn, TxnHeader, Writer};
use zooid_storage::checksum::adler32;
use zooid_storage::snapshot::{
    dump, encode_snapshot, load_latest, read_snapshot, snapshot_files, write_snapshot, SnapError,
};
use zooid_tree::{DataTree, TxnResult};

const A: i64 = 0x1000_0051_a170_0001;
const B: i64 = 0x1000_0051_a170_0002;
const C: i64 = 0x1000_0051_a170_0003;

struct Builder {
    tree: DataTree,
    zxid: i64,
}

impl Builder {
    fn run(&mut self, session: i64, txn: Txn) {
        self.zxid += 1;
        let hdr = TxnHeader {
            session_id: session,
            cxid: 0,
            zxid: self.zxid,
            time_ms: 1_795_293_519_911 + self.zxid,
            op: 0,
        };
        let applied = self.tree.apply(&hdr, &txn);
        assert!(
            !matches!(applied.result, TxnResult::Error(_)),
            "{txn:?}: {:?}",
            applied.result
        );
    }

    fn create(
        &mut self,
        session: i64,
        path: &str,
        data: Option<&[u8]>,
        acl: Vec<Acl>,
        kind: CreateKind,
        ephemeral: bool,
    ) {
        self.run(
            session,
            Txn::Create {
                kind,
                path: path.into(),
                data: data.map(<[u8]>::to_vec),
                acl,
                ephemeral,
                parent_cversion: -1,
            },
        );
    }

    fn plain(&mut self, path: &str, data: Option<&[u8]>, acl: Vec<Acl>) {
        self.create(
            A,
            path,
            data,
            acl,
            CreateKind::Plain { create2: false },
            false,
        );
    }
}

/// A tree with sessions, ephemerals, a container, a TTL node, null / empty / binary data,
/// several ACL lists, a unicode path and (when `big`) enough data for several snappy blocks.
fn sample_tree(big: bool) -> DataTree {
    let mut b = Builder {
        tree: DataTree::new(),
        zxid: 0,
    };
    let open = Acl::open_unsafe;
    for (s, to) in [(A, 30_000), (B, 5_000), (C, 40_000)] {
        b.run(s, Txn::CreateSession { timeout_ms: to });
    }
    b.plain("/app", Some(b"hello"), open());
    b.plain("/app/null", None, open());
    b.plain("/app/empty", Some(b""), open());
    b.create(
        A,
        "/app/eph",
        Some(b"e"),
        open(),
        CreateKind::Plain { create2: true },
        true,
    );
    b.create(
        B,
        "/app/eph2",
        None,
        open(),
        CreateKind::Plain { create2: false },
        true,
    );
    let secure = vec![
        Acl::new(31, "digest", "user:2Om+GBbT2q/tS6pdvACZbbm7/1A="),
        Acl::new(1, "ip", "10.0.0.0/8"),
    ];
    b.plain("/secure", Some(b"s"), secure.clone());
    b.plain("/secure/child", Some(b"c"), secure);
    b.plain("/readonly", Some(b"r"), Acl::read_unsafe());
    b.plain("/gone", None, vec![Acl::new(3, "world", "anyone")]);
    b.run(
        A,
        Txn::Delete {
            path: "/gone".into(),
            container: false,
        },
    );
    b.create(A, "/cont", None, open(), CreateKind::Container, false);
    b.create(
        A,
        "/cont/x",
        Some(b"xx"),
        open(),
        CreateKind::Container,
        false,
    );
    b.create(
        A,
        "/ttl",
        Some(b"tt"),
        open(),
        CreateKind::Ttl(600_000),
        false,
    );
    let binary: Vec<u8> = (0..=255u8).collect();
    b.plain("/bin", Some(&binary), open());
    b.plain("/\u{fc}n\u{ef}", Some("日本".as_bytes()), open());
    b.plain("/zookeeper/quota/app", None, open());
    b.plain(
        "/zookeeper/quota/app/zookeeper_limits",
        Some(b"count=10,bytes=-1"),
        open(),
    );
    b.run(
        A,
        Txn::SetData {
            path: "/app".into(),
            data: Some(b"hello2".to_vec()),
            version: 1,
        },
    );
    b.run(
        A,
        Txn::SetAcl {
            path: "/app/empty".into(),
            acl: vec![Acl::new(5, "world", "anyone")],
            version: 1,
        },
    );
    if big {
        for i in 0..40 {
            let data: Vec<u8> = (0..10_000u32).map(|j| (j * 7 + i) as u8).collect();
            b.plain(&format!("/app/big{i:03}"), Some(&data), open());
        }
    }
    b.tree
}

fn digest_of(t: &DataTree) -> Option<(i64, i64)> {
    Some((t.last_zxid(), t.digest()))
}

fn assert_same(a: &DataTree, b: &DataTree) {
    assert_eq!(encode_snapshot(a, None), encode_snapshot(b, None));
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.sessions(), b.sessions());
    assert_eq!(a.node_count(), b.node_count());
}

fn check_sample(t: &DataTree) {
    assert_eq!(t.get("/app/null").unwrap().data, None);
    assert_eq!(t.get("/app/empty").unwrap().data.as_deref(), Some(&b""[..]));
    assert_eq!(t.get("/app").unwrap().data.as_deref(), Some(&b"hello2"[..]));
    assert_eq!(t.ephemerals_of(A), vec!["/app/eph".to_string()]);
    assert_eq!(t.ephemerals_of(B), vec!["/app/eph2".to_string()]);
    assert_eq!(t.sessions().len(), 3);
    assert_eq!({ t.get("/cont").unwrap().stat.ephemeral_owner }, i64::MIN);
    assert_eq!(
        { t.get("/ttl").unwrap().stat.ephemeral_owner },
        (0xff00_0000_0000_0000u64 as i64) | 600_000
    );
    let secure = t.acl_of(t.get("/secure/child").unwrap());
    assert_eq!(secure.len(), 2);
    assert_eq!(t.acl_of(t.get("/readonly").unwrap()), Acl::read_unsafe());
    assert_eq!(
        t.acl_of(t.get("/app/empty").unwrap()),
        vec![Acl::new(5, "world", "anyone")]
    );
    assert_eq!(t.get("/bin").unwrap().data.as_deref().unwrap().len(), 256);
    assert!(t.get("/\u{fc}n\u{ef}").is_some());
    assert_eq!(t.get("/zookeeper/config").unwrap().stat.aversion, -1);
}

#[test]
fn round_trips_in_every_format() {
    let tree = sample_tree(true);
    check_sample(&tree);
    let dir = tempfile::tempdir().unwrap();
    let zxid = tree.last_zxid();
    for (compression, name) in [
        ("", format!("snapshot.{zxid:x}")),
        ("gz", format!("snapshot.{zxid:x}.gz")),
        ("snappy", format!("snapshot.{zxid:x}.snappy")),
    ] {
        let path = write_snapshot(dir.path(), &tree, zxid, digest_of(&tree), compression).unwrap();
        assert_eq!(path, dir.path().join(&name));
        let snap = read_snapshot(&path).unwrap_or_else(|e| panic!("{compression:?}: {e}"));
        assert_eq!(snap.zxid, zxid);
        assert_eq!(snap.tree.last_zxid(), zxid);
        assert_eq!(snap.digest, digest_of(&tree));
        assert_eq!(snap.digest_matches(), Some(true));
        assert_same(&tree, &snap.tree);
        check_sample(&snap.tree);
    }
    // Nothing but the three snapshots is left behind.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(snapshot_files(dir.path()).unwrap().len(), 3);
}

#[test]
fn compressed_files_are_standard_and_decode_to_the_stream() {
    let tree = sample_tree(true);
    let stream = encode_snapshot(&tree, digest_of(&tree));
    let dir = tempfile::tempdir().unwrap();

    let gz = write_snapshot(dir.path(), &tree, 7, digest_of(&tree), "gz").unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&gz).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, stream);

    // Decode the xerial framing independently of the reader under test.
    let sn =
        std::fs::read(write_snapshot(dir.path(), &tree, 7, digest_of(&tree), "snappy").unwrap())
            .unwrap();
    assert_eq!(
        sn[..16],
        [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1]
    );
    let mut at = 16;
    let mut out = Vec::new();
    let mut blocks = 0;
    while at < sn.len() {
        let len = i32::from_be_bytes(sn[at..at + 4].try_into().unwrap()) as usize;
        at += 4;
        let block = snap::raw::Decoder::new()
            .decompress_vec(&sn[at..at + len])
            .unwrap();
        assert!(block.len() <= 32 * 1024);
        out.extend_from_slice(&block);
        at += len;
        blocks += 1;
    }
    assert_eq!(out, stream);
    assert!(blocks > 10, "{blocks} blocks");

    // A snapshot named after an older zxid than its digest (fuzzy) keeps the digest but cannot
    // check it.
    let plain = write_snapshot(dir.path(), &tree, 7, digest_of(&tree), "").unwrap();
    assert_eq!(std::fs::read(&plain).unwrap(), stream);
    let snap = read_snapshot(&plain).unwrap();
    assert_eq!(snap.zxid, 7);
    assert_eq!(snap.digest, digest_of(&tree));
    assert_eq!(snap.digest_matches(), None);
    // An unknown method writes plain, as ZooKeeper does.
    let other = write_snapshot(dir.path(), &tree, 8, None, "lz4").unwrap();
    assert_eq!(other, dir.path().join("snapshot.8"));
    assert_eq!(read_snapshot(&other).unwrap().digest, None);
}

#[test]
fn writing_replaces_and_refuses_negative_zxids() {
    let dir = tempfile::tempdir().unwrap();
    let tree = sample_tree(false);
    write_snapshot(dir.path(), &DataTree::new(), 0x1f, None, "").unwrap();
    let p = write_snapshot(dir.path(), &tree, 0x1f, digest_of(&tree), "").unwrap();
    assert_eq!(p.file_name().unwrap(), "snapshot.1f");
    assert_same(&read_snapshot(&p).unwrap().tree, &tree);
    assert!(matches!(
        write_snapshot(dir.path(), &tree, -1, None, ""),
        Err(SnapError::BadZxid { zxid: -1 })
    ));
    let missing = dir.path().join("nope");
    assert!(matches!(
        write_snapshot(&missing, &tree, 1, None, ""),
        Err(SnapError::Io { .. })
    ));
    assert!(matches!(
        read_snapshot(&dir.path().join("whatever")),
        Err(SnapError::BadName { .. })
    ));
    assert!(matches!(
        read_snapshot(&dir.path().join("snapshot.99")),
        Err(SnapError::Io { .. })
    ));
}

/// The length of the digest section plus its seal: zxid, version, digest, checksum, "/".
const DIGEST_TAIL: usize = 8 + 4 + 8 + 8 + 5;

#[test]
fn every_flipped_byte_is_detected_in_plain_files() {
    let tree = sample_tree(false);
    let bytes = encode_snapshot(&tree, digest_of(&tree));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshot.30");
    for i in 0..bytes.len() {
        for mask in [0xff, 0x01, 0x80] {
            let mut bad = bytes.clone();
            bad[i] ^= mask;
            std::fs::write(&path, &bad).unwrap();
            match read_snapshot(&path) {
                Err(SnapError::Corrupt { offset, .. }) => assert!(offset <= bytes.len() as u64),
                Err(e) => panic!("byte {i} ^ {mask:#x}: unexpected error kind {e}"),
                Ok(_) => panic!("byte {i} ^ {mask:#x} of {} went unnoticed", bytes.len()),
            }
        }
    }
}

#[test]
fn sampled_flips_in_a_large_plain_file_are_detected() {
    let tree = sample_tree(true);
    let bytes = encode_snapshot(&tree, digest_of(&tree));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshot.30");
    for i in (0..bytes.len())
        .step_by(997)
        .chain(bytes.len() - 40..bytes.len())
    {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        assert!(read_snapshot(&path).is_err(), "byte {i}");
    }
}

#[test]
fn every_truncation_is_detected() {
    let tree = sample_tree(false);
    let bytes = encode_snapshot(&tree, digest_of(&tree));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshot.30");
    for len in 0..bytes.len() {
        std::fs::write(&path, &bytes[..len]).unwrap();
        let res = read_snapshot(&path);
        if len == bytes.len() - DIGEST_TAIL {
            // Cut right after the first seal is a complete pre-3.6 snapshot: same tree, no digest.
            let snap = res.unwrap();
            assert_eq!(snap.digest, None);
            assert_same(&snap.tree, &tree);
        } else {
            assert!(
                matches!(res, Err(SnapError::Corrupt { .. })),
                "cut at {len}: {res:?}"
            );
        }
    }
    // Trailing bytes after the final seal are refused too.
    let mut long = bytes.clone();
    long.extend_from_slice(&[0, 0, 0, 1, b'/']);
    std::fs::write(&path, &long).unwrap();
    assert!(read_snapshot(&path).is_err());
}

/// For compressed files a flip may land where the format has no check (gzip's mtime or OS byte,
/// snappy-java's version number, a snappy copy offset moved within a run of zeros): then the tree
/// must be exactly the original one. `max_harmless` bounds how often that may happen.
fn check_compressed_damage(compression: &str, max_harmless: usize) {
    let tree = sample_tree(false);
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(
        write_snapshot(dir.path(), &tree, 0x30, digest_of(&tree), compression).unwrap(),
    )
    .unwrap();
    let path = dir.path().join(format!("snapshot.31.{compression}"));
    let expect = encode_snapshot(&tree, digest_of(&tree));
    let mut accepted = 0;
    for i in 0..good.len() {
        for mask in [0xff, 0x01] {
            let mut bad = good.clone();
            bad[i] ^= mask;
            std::fs::write(&path, &bad).unwrap();
            if let Ok(snap) = read_snapshot(&path) {
                accepted += 1;
                assert_eq!(
                    encode_snapshot(&snap.tree, snap.digest),
                    expect,
                    "byte {i} ^ {mask:#x}"
                );
            }
        }
    }
    assert!(accepted <= max_harmless, "{accepted} harmless flips");
    for len in 0..good.len() {
        std::fs::write(&path, &good[..len]).unwrap();
        assert!(read_snapshot(&path).is_err(), "{compression} cut at {len}");
    }
}

#[test]
fn damaged_gzip_files_are_detected() {
    // Only the header's FTEXT flag, mtime, XFL and OS bytes are unchecked.
    check_compressed_damage("gz", 16);
}

#[test]
fn damaged_snappy_files_are_detected() {
    // Raw snappy has no checksum of its own: the Adler32s catch every change of output, but
    // zero-filled stats give many copies whose offset can move without changing it.
    check_compressed_damage("snappy", usize::MAX);
}

// ---------------------------------------------------------------------------------------------
// Hostile but well-sealed streams.
// ---------------------------------------------------------------------------------------------

type RawNode<'a> = (&'a str, Option<&'a [u8]>, i64);

fn base_nodes() -> Vec<RawNode<'static>> {
    vec![
        ("", Some(b""), -1),
        ("/zookeeper", Some(b""), -1),
        ("/zookeeper/config", Some(b""), 1),
        ("/zookeeper/quota", Some(b""), -1),
    ]
}

/// A stream with correct checksums around arbitrary content.
fn craft(
    sessions: &[(i64, i32)],
    acls: &[(i64, Vec<Acl>)],
    nodes: &[RawNode<'_>],
    digest: Option<(i64, i32)>,
) -> Vec<u8> {
    let mut w = Writer::new();
    w.write_i32(0x5A4B_534E);
    w.write_i32(2);
    w.write_i64(-1);
    w.write_i32(sessions.len() as i32);
    for &(id, to) in sessions {
        w.write_i64(id);
        w.write_i32(to);
    }
    w.write_i32(acls.len() as i32);
    for (r, l) in acls {
        w.write_i64(*r);
        write_acls(&mut w, l);
    }
    for &(path, data, acl) in nodes {
        w.write_string(path);
        w.write_opt_buffer(data);
        w.write_i64(acl);
        w.buf.extend_from_slice(&[0u8; 60]);
    }
    w.write_string("/");
    let sum = adler32(&w.buf);
    w.write_i64(i64::from(sum));
    w.write_string("/");
    if let Some((zxid, version)) = digest {
        w.write_i64(zxid);
        w.write_i32(version);
        if version < 2 {
            w.write_string("1f");
        } else {
            w.write_i64(0x1f);
        }
        let sum = adler32(&w.buf);
        w.write_i64(i64::from(sum));
        w.write_string("/");
    }
    w.into_inner()
}

fn read_bytes(name: &str, bytes: &[u8]) -> Result<zooid_storage::snapshot::Snapshot, SnapError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    read_snapshot(&path)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn well_sealed_but_invalid_structures_are_refused() {
    let read_only = || vec![Acl::new(1, "world", "anyone")];
    let acls = vec![(1, read_only())];
    let ok = craft(&[(5, 100)], &acls, &base_nodes(), Some((0, 2)));
    assert!(read_bytes("snapshot.1", &ok).is_ok());

    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    cases.push((
        "duplicate ACL ref",
        craft(
            &[],
            &[(1, read_only()), (1, Acl::open_unsafe())],
            &base_nodes(),
            None,
        ),
    ));
    cases.push((
        "duplicate session",
        craft(&[(5, 1), (5, 2)], &acls, &base_nodes(), None),
    ));
    cases.push(("unknown ACL ref", craft(&[], &[], &base_nodes(), None)));
    let mut n = base_nodes();
    n.push(("/a/b", None, -1));
    cases.push(("parent missing", craft(&[], &acls, &n, None)));
    let mut n = base_nodes();
    n.push(("/zookeeper", None, -1));
    cases.push(("duplicate node", craft(&[], &acls, &n, None)));
    for bad in ["/a/", "//a", "/a/../b", "a", "/x\u{1}"] {
        let mut n = base_nodes();
        n.push((bad, None, -1));
        cases.push(("bad path", craft(&[], &acls, &n, None)));
    }
    let mut n = base_nodes();
    n.remove(0);
    cases.push(("no root", craft(&[], &acls, &n, None)));
    let mut n = base_nodes();
    n.push(("", None, -1));
    cases.push(("second root", craft(&[], &acls, &n, None)));
    cases.push((
        "no /zookeeper/quota",
        craft(&[], &acls, &base_nodes()[..3], None),
    ));
    let mut trailing = ok.clone();
    trailing.push(0);
    cases.push(("trailing byte", trailing));
    let mut magic = ok.clone();
    magic[0] = b'X';
    cases.push(("bad magic", magic));
    for (what, bytes) in cases {
        for (name, data) in [
            ("snapshot.1", bytes.clone()),
            ("snapshot.1.gz", gzip(&bytes)),
        ] {
            let res = read_bytes(name, &data);
            assert!(
                matches!(res, Err(SnapError::Corrupt { .. })),
                "{what} ({name}): {res:?}"
            );
        }
    }
}

#[test]
fn old_formats_are_accepted() {
    let acls = vec![
        (1, vec![Acl::new(1, "world", "anyone")]),
        (7, vec![Acl::new(31, "world", "anyone")]),
    ];
    // No digest section (before 3.6), no /zookeeper/config (3.4): the config node is added as
    // ZooKeeper adds it on upgrade, and unused ACL lists are purged.
    let s = read_bytes(
        "snapshot.3",
        &craft(
            &[(9, 10)],
            &acls,
            &[base_nodes()[0], base_nodes()[1], base_nodes()[3]],
            None,
        ),
    )
    .unwrap();
    assert_eq!(s.digest, None);
    let cfg = s.tree.get("/zookeeper/config").unwrap();
    assert_eq!(cfg.stat.aversion, -1);
    assert_eq!(s.tree.acl_of(cfg), vec![Acl::new(1, "world", "anyone")]);
    assert_eq!(s.tree.acls.len(), 1);
    assert_eq!(s.tree.sessions().get(&9), Some(&10));
    assert_eq!(s.tree.digest(), DataTree::new().digest());
    // Digest version 1 (a hex string) reads but is not comparable.
    let s = read_bytes(
        "snapshot.3",
        &craft(&[], &acls, &base_nodes(), Some((3, 1))),
    )
    .unwrap();
    assert_eq!(s.digest, None);
    // Version 2 digests are returned as stored.
    let s = read_bytes(
        "snapshot.3",
        &craft(&[], &acls, &base_nodes(), Some((3, 2))),
    )
    .unwrap();
    assert_eq!(s.digest, Some((3, 0x1f)));
    assert_eq!(s.digest_matches(), Some(false));
}

#[test]
fn forged_lengths_cost_no_memory() {
    let mut w = Writer::new();
    w.write_i32(0x5A4B_534E);
    w.write_i32(2);
    w.write_i64(-1);
    w.write_i32(i32::MAX); // sessions
    let sessions = w.into_inner();
    let mut w = Writer::new();
    w.write_i32(0x5A4B_534E);
    w.write_i32(2);
    w.write_i64(-1);
    w.write_i32(0);
    w.write_i32(0);
    w.write_i32(0);
    w.write_i32(i32::MAX - 1); // data length of the root
    let data = w.into_inner();
    let mut w = Writer::new();
    w.write_i32(0x5A4B_534E);
    w.write_i32(2);
    w.write_i64(-1);
    w.write_i32(0);
    w.write_i32(1);
    w.write_i64(1);
    w.write_i32(i32::MAX); // ACL entries
    let acl_entries = w.into_inner();
    for bytes in [sessions, data, acl_entries] {
        assert!(matches!(
            read_bytes("snapshot.1", &bytes),
            Err(SnapError::Corrupt { .. })
        ));
        assert!(matches!(
            read_bytes("snapshot.1.gz", &gzip(&bytes)),
            Err(SnapError::Corrupt { .. })
        ));
    }
    // Garbage of every kind under every name.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..300 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 400) as usize;
        let mut junk: Vec<u8> = (0..len)
            .map(|i| (seed >> (i % 56)) as u8 ^ i as u8)
            .collect();
        if round % 3 == 1 && junk.len() > 16 {
            junk[..16].copy_from_slice(&[
                0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
            ]);
        }
        for name in ["snapshot.1", "snapshot.1.gz", "snapshot.1.snappy"] {
            assert!(read_bytes(name, &junk).is_err());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Choosing a snapshot.
// ---------------------------------------------------------------------------------------------

fn write_raw(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn load_latest_falls_back_from_damaged_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old = sample_tree(false);
    write_snapshot(d, &old, 0x5, digest_of(&old), "").unwrap();
    let mut newer = encode_snapshot(&DataTree::new(), None);
    // Damaged in the middle: passes ZooKeeper's pre-check, fails the checksum.
    newer[100] ^= 0x40;
    write_raw(d, "snapshot.9", &newer);
    // Cut short: fails the pre-check.
    let full = encode_snapshot(&DataTree::new(), None);
    write_raw(d, "snapshot.a", &full[..200]);
    // Not snapshots at all.
    write_raw(d, "log.6", b"xx");
    write_raw(d, ".snapshot.b.tmp", &full);
    std::fs::create_dir(d.join("snapshot.c")).unwrap();

    let files: Vec<i64> = snapshot_files(d).unwrap().iter().map(|f| f.0).collect();
    assert_eq!(files, [0xa, 0x9, 0x5]);
    let (snap, skipped) = load_latest(d).unwrap();
    let snap = snap.unwrap();
    assert_eq!(snap.zxid, 5);
    assert_same(&snap.tree, &old);
    let skipped: Vec<(String, String)> = skipped
        .into_iter()
        .map(|(p, why)| (p.file_name().unwrap().to_string_lossy().into_owned(), why))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0].0, "snapshot.a");
    assert!(
        skipped[0].1.contains("not a complete snapshot"),
        "{}",
        skipped[0].1
    );
    assert_eq!(skipped[1].0, "snapshot.9");
    assert!(skipped[1].1.contains("checksum"), "{}", skipped[1].1);
}

#[test]
fn load_latest_reads_compressed_and_reports_none_or_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(matches!(load_latest(d), Ok((None, ref s)) if s.is_empty()));
    assert!(matches!(load_latest(&d.join("missing")), Ok((None, _))));

    // Only an incomplete file: as if there were no snapshot (the caller then looks at logs).
    let full = encode_snapshot(&DataTree::new(), None);
    write_raw(d, "snapshot.3", &full[..full.len() - 1]);
    let (none, skipped) = load_latest(d).unwrap();
    assert!(none.is_none());
    assert_eq!(skipped.len(), 1);

    // A damaged file that passes the pre-check and nothing to fall back to: an error, so a
    // damaged dataDir is never taken for an empty one.
    let mut bad = full.clone();
    bad[50] ^= 1;
    write_raw(d, "snapshot.4", &bad);
    let err = load_latest(d).unwrap_err();
    assert!(
        matches!(&err, SnapError::NoValidSnapshot { skipped, .. } if skipped.len() == 2),
        "{err}"
    );
    assert!(err.to_string().contains("snapshot.4"), "{err}");

    // The newest is a snappy one.
    let tree = sample_tree(false);
    write_snapshot(d, &tree, 0x10, digest_of(&tree), "snappy").unwrap();
    let (snap, skipped) = load_latest(d).unwrap();
    assert_eq!(snap.unwrap().zxid, 0x10);
    assert!(skipped.is_empty());
}

#[test]
fn dump_reports_damage() {
    let dir = tempfile::tempdir().unwrap();
    let tree = sample_tree(false);
    let path = write_snapshot(dir.path(), &tree, 0x30, digest_of(&tree), "").unwrap();
    let mut out = String::new();
    dump(&path, false, &mut out).unwrap();
    assert!(out.contains("/app/eph\n"), "{out}");
    assert!(out.contains("fuzzy snapshot"), "{out}");
    assert!(!out.contains("data = "), "{out}");
    assert!(out.trim_end().ends_with("verify: OK"), "{out}");

    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    bytes[len - 20] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let mut out = String::new();
    assert!(dump(&path, true, &mut out).is_err());
    assert!(out.contains("data = \"hello2\""), "{out}");
    assert!(out.contains("verify: FAILED"), "{out}");
}
