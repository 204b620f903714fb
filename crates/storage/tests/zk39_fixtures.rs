//! A dataDir written by ZooKeeper 3.9.3 (`tests/fixtures/standalone-3.9.3`): its snapshots end
//! with the last processed zxid and a third checksum. Every file reads, the whole dataDir
//! recovers to the tree a client saw on ZooKeeper (`expected-tree.txt`, Stat and ACL of every
//! node), and zooid writes 3.9's bytes when asked for its layout.

use std::path::PathBuf;

use zooid_storage::recovery;
use zooid_storage::snapshot::{
    encode_snapshot, encode_snapshot_as, read_snapshot, snapshot_files, Layout,
};
use zooid_tree::DataTree;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/standalone-3.9.3")
}

#[test]
fn every_3_9_snapshot_reads_with_its_trailer() {
    let dir = fixture().join("version-2");
    let files = snapshot_files(&dir).unwrap();
    assert_eq!(files.len(), 9);
    for (zxid, path) in files {
        let snap = read_snapshot(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(snap.zxid, zxid);
        assert_eq!(snap.layout, Layout::Zk39, "{}", path.display());
    }
}

#[test]
fn an_empty_tree_encodes_like_3_9() {
    let java = std::fs::read(fixture().join("version-2/snapshot.0")).unwrap();
    assert_eq!(java.len(), 478);
    assert_eq!(
        encode_snapshot_as(&DataTree::new(), None, Layout::Zk39),
        java
    );
    // The 3.8 layout is the same bytes without the last 21.
    assert_eq!(encode_snapshot(&DataTree::new(), None), java[..457]);
}

#[test]
fn a_3_9_snapshot_written_back_reads_the_same() {
    let snap = read_snapshot(&fixture().join("version-2/snapshot.3d")).unwrap();
    for layout in [Layout::Zk38, Layout::Zk39] {
        let dir = tempfile::tempdir().unwrap();
        let bytes = encode_snapshot_as(&snap.tree, snap.digest, layout);
        let path = dir.path().join("snapshot.3d");
        std::fs::write(&path, bytes).unwrap();
        let back = read_snapshot(&path).unwrap();
        assert_eq!(back.layout, layout);
        assert_eq!(back.tree.digest(), snap.tree.digest());
        assert_eq!(back.tree.node_count(), snap.tree.node_count());
    }
}

/// A 3.9 file written with digests disabled (`digest.enabled=false`): the last processed zxid
/// follows the first checksum directly. No ZooKeeper reads it back; zooid does.
#[test]
fn a_3_9_snapshot_without_digest_reads() {
    let with = encode_snapshot_as(&DataTree::new(), None, Layout::Zk39);
    // Cut the digest section (20 bytes) and its checksum (13) out, and re-seal.
    let mut bytes = with[..424].to_vec();
    bytes.extend_from_slice(&0i64.to_be_bytes());
    let sum = adler32(&bytes);
    bytes.extend_from_slice(&i64::from(sum).to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 1, b'/']);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshot.0");
    std::fs::write(&path, &bytes).unwrap();
    let snap = read_snapshot(&path).unwrap();
    assert_eq!((snap.layout, snap.digest), (Layout::Zk39, None));
    // A wrong third checksum there is damage, named as such.
    let n = bytes.len();
    bytes[n - 6] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = read_snapshot(&path).unwrap_err().to_string();
    assert!(err.contains("checksum #3"), "{err}");
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// The dataDir recovers (newest snapshot, then the log after it) to exactly what a client saw
/// on ZooKeeper 3.9.3 and 3.8.0 after a restart.
#[test]
fn the_3_9_datadir_recovers_to_what_zookeeper_served() {
    let dir = fixture().join("version-2");
    let rec = recovery::check(&dir, &dir).unwrap();
    assert_eq!(rec.tree.last_zxid(), 0x3e);
    assert_eq!(rec.digest_mismatches, 0);
    let text = std::fs::read_to_string(fixture().join("expected-tree.txt")).unwrap();
    let mut expected = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let fields: Vec<&str> = line.split('\t').collect();
        expected.push((
            fields[0].to_owned(),
            fields[2].to_owned(),
            fields[3].to_owned(),
        ));
    }
    let mut seen = 0;
    rec.tree.walk(|path, node| {
        let Some((_, stat, acl)) = expected.iter().find(|(p, _, _)| p == path) else {
            panic!("{path} is not in ZooKeeper's tree");
        };
        seen += 1;
        let s = node.client_stat();
        let ours = format!(
            "czxid={:#x} mzxid={:#x} pzxid={:#x} ctime={} mtime={} version={} cversion={} aversion={} ephemeralOwner={:#x} dataLength={} numChildren={}",
            s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime, s.version, s.cversion, s.aversion,
            s.ephemeral_owner, s.data_length, s.num_children
        );
        assert_eq!(&ours, stat, "{path}");
        let acls: Vec<String> = rec
            .tree
            .acl_of(node)
            .iter()
            .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms))
            .collect();
        assert_eq!(&format!("acl={}", acls.join(",")), acl, "{path}");
    });
    assert_eq!(seen, expected.len());
}
