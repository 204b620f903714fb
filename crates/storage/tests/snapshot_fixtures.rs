//! Real ZooKeeper 3.8.0 snapshots from the spec fixtures, checked against the decodings of the
//! spec's `zkdump.py` (fixtures/zkdump-expected.txt, and the ensemble decodings below).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use zooid_storage::snapshot::{
    encode_snapshot, load_latest, read_snapshot, snapshot_files, Snapshot,
};
use zooid_tree::{DataTree, Node};

fn spec() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests")
}

/// Python's repr of a str (fixture strings hold no quotes or escapes).
fn repr(s: &str) -> String {
    format!("'{s}'")
}

fn hz(x: i64) -> String {
    format!("0x{:x}", x as u64)
}

fn fmt_data(d: Option<&[u8]>) -> String {
    let Some(d) = d else { return "null".into() };
    if let Ok(s) = std::str::from_utf8(d) {
        if s.chars().all(|c| (' '..'\x7f').contains(&c)) {
            return repr(if s.len() <= 40 { s } else { &s[..40] })
                + if s.len() > 40 { "..." } else { "" };
        }
    }
    let shown: String = d.iter().take(40).map(|b| format!("{b:02x}")).collect();
    format!("0x{shown}{}", if d.len() > 40 { "..." } else { "" })
}

fn owner(o: i64) -> String {
    let u = o as u64;
    if o == 0 {
        "0".into()
    } else if u == 0x8000_0000_0000_0000 {
        "CONTAINER".into()
    } else if u >> 56 == 0xff {
        let ext = (u >> 40) & 0xffff;
        if ext == 0 {
            format!("TTL({} ms)", u & 0xff_ffff_ffff)
        } else {
            format!("EXTENDED(type={ext})")
        }
    } else {
        hz(o)
    }
}

/// A node as zkdump prints it.
fn node_line(path: &str, n: &Node) -> String {
    let s = &n.stat;
    let path = if path == "/" { "" } else { path };
    format!(
        "    {:<28} data={} acl={} czxid={} mzxid={} pzxid={} ver={} cver={} aver={} owner={}",
        repr(path),
        fmt_data(n.data.as_deref()),
        n.acl,
        hz(s.czxid),
        hz(s.mzxid),
        hz(s.pzxid),
        s.version,
        s.cversion,
        s.aversion,
        owner(s.ephemeral_owner)
    )
}

struct Expected {
    nodes: BTreeSet<String>,
    sessions: BTreeSet<String>,
    acls: BTreeSet<String>,
    digest: (i64, i64),
    recomputed: i64,
}

/// The "snapshot <file>" sections of a zkdump output, by file.
fn sections(text: &str) -> Vec<(String, Expected)> {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("snapshot ") else {
            continue;
        };
        let file = rest.split_whitespace().next().unwrap().to_string();
        let mut e = Expected {
            nodes: BTreeSet::new(),
            sessions: BTreeSet::new(),
            acls: BTreeSet::new(),
            digest: (0, 0),
            recomputed: 0,
        };
        while let Some(l) = lines.peek() {
            if !l.starts_with("  ") {
                break;
            }
            let l = lines.next().unwrap();
            if l.starts_with("    '") {
                e.nodes.insert(l.to_string());
            } else if l.starts_with("    session ") {
                e.sessions.insert(l.trim().to_string());
            } else if l.contains(" -> [") {
                e.acls.insert(l.trim().to_string());
            } else if let Some(d) = l.trim().strip_prefix("ZxidDigest zxid=0x") {
                let mut it = d.split_whitespace();
                let z = i64::from_str_radix(it.next().unwrap(), 16).unwrap();
                let dg = it
                    .nth(1)
                    .unwrap()
                    .strip_prefix("digest=")
                    .unwrap()
                    .parse()
                    .unwrap();
                e.digest = (z, dg);
            } else if let Some(d) = l.trim().strip_prefix("recomputed tree digest = ") {
                e.recomputed = d.parse().unwrap();
            }
        }
        out.push((file, e));
    }
    out
}

fn check(file: &str, e: &Expected) {
    let path = spec().join(file);
    let snap: Snapshot = read_snapshot(&path).unwrap_or_else(|err| panic!("{file}: {err}"));
    let mut nodes = BTreeSet::new();
    snap.tree.walk(|p, n| {
        nodes.insert(node_line(p, n));
    });
    assert_eq!(nodes, e.nodes, "{file}: nodes");
    let sessions: BTreeSet<String> = snap
        .tree
        .sessions()
        .iter()
        .map(|(&id, &to)| format!("session {} timeout={to}", hz(id)))
        .collect();
    assert_eq!(sessions, e.sessions, "{file}: sessions");
    let acls: BTreeSet<String> = snap
        .tree
        .acls
        .entries()
        .map(|(r, l)| {
            let parts: Vec<String> = l
                .iter()
                .map(|a| format!("{}:{} perms={}", a.id.scheme, a.id.id, a.perms))
                .collect();
            format!("{r} -> [{}]", parts.join(", "))
        })
        .collect();
    assert_eq!(acls, e.acls, "{file}: ACL cache");
    assert_eq!(
        snap.tree.digest(),
        e.recomputed,
        "{file}: recomputed digest"
    );
    let name_zxid = i64::from_str_radix(
        Path::new(file)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap(),
        16,
    )
    .unwrap();
    assert_eq!(snap.zxid, name_zxid);
    assert_eq!(snap.tree.last_zxid(), name_zxid);
    if e.digest.0 == 0 {
        assert_eq!(snap.digest, None, "{file}: placeholder digest");
        assert_eq!(snap.digest_matches(), None);
    } else {
        assert_eq!(snap.digest, Some(e.digest), "{file}: digest section");
        if e.digest.0 == snap.zxid {
            assert_eq!(snap.digest_matches(), Some(true), "{file}");
            assert_eq!(snap.tree.digest(), e.digest.1, "{file}: stored digest");
        }
    }
}

#[test]
fn standalone_and_compressed_fixtures_match_zkdump() {
    let text = std::fs::read_to_string(spec().join("fixtures/zkdump-expected.txt")).unwrap();
    let secs = sections(&text);
    let files: Vec<&str> = secs.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        files,
        [
            "fixtures/standalone/version-2/snapshot.0",
            "fixtures/standalone/version-2/snapshot.b",
            "fixtures/compressed/snapshot.13.gz",
            "fixtures/compressed/snapshot.13.snappy",
        ]
    );
    for (file, e) in &secs {
        check(file, e);
    }
}

#[test]
fn ensemble_fixtures_match_zkdump() {
    let secs = sections(ENSEMBLE);
    assert_eq!(secs.len(), 6);
    for (file, e) in &secs {
        check(file, e);
    }
    // The leader's config node carries the ensemble config with version -1.
    let snap =
        read_snapshot(&spec().join("fixtures/ensemble/s3/version-2/snapshot.100000012")).unwrap();
    let cfg = snap.tree.get("/zookeeper/config").unwrap();
    assert!(cfg
        .data
        .as_deref()
        .unwrap()
        .starts_with(b"server.1=127.0.0.1:22211:22221:participant"));
    assert_eq!(cfg.stat.version, -1);
}

#[test]
fn gz_and_snappy_decode_to_the_same_tree() {
    let gz = read_snapshot(&spec().join("fixtures/compressed/snapshot.13.gz")).unwrap();
    let sn = read_snapshot(&spec().join("fixtures/compressed/snapshot.13.snappy")).unwrap();
    // Same tree, so the same canonical encoding.
    assert_eq!(
        encode_snapshot(&gz.tree, gz.digest),
        encode_snapshot(&sn.tree, sn.digest)
    );
    assert_eq!(
        gz.tree.ephemerals_of(0x10000051a170003),
        vec!["/app/eseq0000000004".to_string()]
    );
}

#[test]
fn empty_tree_encodes_like_java() {
    let java = std::fs::read(spec().join("fixtures/standalone/version-2/snapshot.0")).unwrap();
    assert_eq!(java.len(), 457);
    assert_eq!(encode_snapshot(&DataTree::new(), None), java);
    // And what we read back from Java's file encodes to the same bytes.
    let snap = read_snapshot(&spec().join("fixtures/standalone/version-2/snapshot.0")).unwrap();
    assert_eq!(encode_snapshot(&snap.tree, snap.digest), java);
    assert_eq!(snap.tree.digest(), 1371985504);
}

#[test]
fn fixture_dirs_list_and_load_like_zookeeper() {
    let dir = spec().join("fixtures/standalone/version-2");
    let files = snapshot_files(&dir).unwrap();
    let zxids: Vec<i64> = files.iter().map(|f| f.0).collect();
    assert_eq!(zxids, [0xb, 0]);
    let (snap, skipped) = load_latest(&dir).unwrap();
    assert!(skipped.is_empty());
    let snap = snap.unwrap();
    assert_eq!(snap.zxid, 0xb);
    assert_eq!(snap.tree.node_count(), 7);
    assert_eq!(snap.tree.digest(), 2426447358);

    let dir = spec().join("fixtures/ensemble/s3/version-2");
    let (snap, _) = load_latest(&dir).unwrap();
    let snap = snap.unwrap();
    assert_eq!(snap.zxid, 0x100000012);
    assert_eq!(snap.tree.node_count(), 11);
    assert_eq!(snap.tree.digest(), 23452607159);

    let files = snapshot_files(&spec().join("fixtures/compressed")).unwrap();
    assert_eq!(files.len(), 2);
    assert!(files.iter().all(|f| f.0 == 0x13));
}

#[test]
fn dump_describes_a_fixture() {
    let mut out = String::new();
    zooid_storage::snapshot::dump(
        &spec().join("fixtures/compressed/snapshot.13.snappy"),
        true,
        &mut out,
    )
    .unwrap();
    assert!(out.contains("/ttlnode\n"), "{out}");
    assert!(out.contains("(TTL 600000 ms)"), "{out}");
    assert!(out.contains("data = \"hello2\""), "{out}");
    assert!(
        out.contains("tree digest          13507671734 (matches the stored digest)"),
        "{out}"
    );
    assert!(out.contains("nodes                11"), "{out}");
    assert!(out.trim_end().ends_with("verify: OK"), "{out}");
}

/// `zkdump.py snap` of every snapshot in fixtures/ensemble.
const ENSEMBLE: &str = r#"
snapshot fixtures/ensemble/s1/version-2/snapshot.0  (checked (plain), 635 bytes uncompressed)
  FileHeader magic=0x5a4b534e (ZKSN ok) version=2 dbid=-1
  sessions: 0
  ACL cache: 1 entries
    1 -> [world:anyone perms=1]
  nodes: 4 (pre-order; root is the empty path)
    ''                           data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
    '/zookeeper'                 data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
    '/zookeeper/config'          data=0x7365727665722e313d3132372e302e302e313a32323231313a32323232313a706172746963697061... acl=1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=-1 cver=0 aver=-1 owner=0
    '/zookeeper/quota'           data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
  end marker '/' then seal #1 at offset 589: stored adler32=0x305676af computed=0x305676af OK, path='/'
  ZxidDigest zxid=0x0 version=2 digest=0
  seal #2 at offset 622: stored adler32=0xaed9788c computed=0xaed9788c OK, path='/'
  recomputed tree digest = 1371985504
  trailing bytes after last seal: 0
snapshot fixtures/ensemble/s2/version-2/snapshot.0  (checked (plain), 635 bytes uncompressed)
  FileHeader magic=0x5a4b534e (ZKSN ok) version=2 dbid=-1
  sessions: 0
  ACL cache: 1 entries
    1 -> [world:anyone perms=1]
  nodes: 4 (pre-order; root is the empty path)
    ''                           data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
    '/zookeeper'                 data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
    '/zookeeper/config'          data=0x7365727665722e313d3132372e302e302e313a32323231313a32323232313a706172746963697061... acl=1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=-1 cver=0 aver=-1 owner=0
    '/zookeeper/quota'           data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
  end marker '/' then seal #1 at offset 589: stored adler32=0x09f67661 computed=0x09f67661 OK, path='/'
  ZxidDigest zxid=0x0 version=2 digest=0
  seal #2 at offset 622: stored adler32=0x83947869 computed=0x83947869 OK, path='/'
  recomputed tree digest = 1371985504
  trailing bytes after last seal: 0
snapshot fixtures/ensemble/s3/version-2/snapshot.0  (checked (plain), 635 bytes uncompressed)
  FileHeader magic=0x5a4b534e (ZKSN ok) version=2 dbid=-1
  sessions: 0
  ACL cache: 1 entries
    1 -> [world:anyone perms=1]
  nodes: 4 (pre-order; root is the empty path)
    ''                           data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
    '/zookeeper'                 data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
    '/zookeeper/config'          data=0x7365727665722e313d3132372e302e302e313a32323231313a32323232313a706172746963697061... acl=1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=-1 cver=0 aver=-1 owner=0
    '/zookeeper/quota'           data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
  end marker '/' then seal #1 at offset 589: stored adler32=0xa6f07599 computed=0xa6f07599 OK, path='/'
  ZxidDigest zxid=0x0 version=2 digest=0
  seal #2 at offset 622: stored adler32=0x1d8b786f computed=0x1d8b786f OK, path='/'
  recomputed tree digest = 1371985504
  trailing bytes after last seal: 0
snapshot fixtures/ensemble/s3/version-2/snapshot.100000012  (checked (plain), 1254 bytes uncompressed)
  FileHeader magic=0x5a4b534e (ZKSN ok) version=2 dbid=-1
  sessions: 0
  ACL cache: 2 entries
    1 -> [world:anyone perms=1]
    2 -> [world:anyone perms=31]
  nodes: 11 (pre-order; root is the empty path)
    ''                           data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x100000002 ver=0 cver=1 aver=0 owner=0
    '/q'                         data='after-move' acl=2 czxid=0x100000002 mzxid=0x10000000a pzxid=0x100000011 ver=1 cver=9 aver=0 owner=0
    '/q/n0'                      data='' acl=2 czxid=0x10000000d mzxid=0x10000000d pzxid=0x10000000d ver=0 cver=0 aver=0 owner=0
    '/q/n1'                      data='x' acl=2 czxid=0x10000000e mzxid=0x10000000e pzxid=0x10000000e ver=0 cver=0 aver=0 owner=0
    '/q/n2'                      data='xx' acl=2 czxid=0x10000000f mzxid=0x10000000f pzxid=0x10000000f ver=0 cver=0 aver=0 owner=0
    '/q/m'                       data='m' acl=2 czxid=0x100000006 mzxid=0x100000006 pzxid=0x100000006 ver=0 cver=0 aver=0 owner=0
    '/q/n3'                      data='xxx' acl=2 czxid=0x100000010 mzxid=0x100000010 pzxid=0x100000010 ver=0 cver=0 aver=0 owner=0
    '/q/n4'                      data='xxxx' acl=2 czxid=0x100000011 mzxid=0x100000011 pzxid=0x100000011 ver=0 cver=0 aver=0 owner=0
    '/zookeeper'                 data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
    '/zookeeper/config'          data=0x7365727665722e313d3132372e302e302e313a32323231313a32323232313a706172746963697061... acl=1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=-1 cver=0 aver=-1 owner=0
    '/zookeeper/quota'           data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
  end marker '/' then seal #1 at offset 1208: stored adler32=0xcb40c988 computed=0xcb40c988 OK, path='/'
  ZxidDigest zxid=0x0 version=2 digest=0
  seal #2 at offset 1241: stored adler32=0x0c62cc16 computed=0x0c62cc16 OK, path='/'
  recomputed tree digest = 23452607159
  trailing bytes after last seal: 0
snapshot fixtures/ensemble/s4/version-2/snapshot.0  (checked (plain), 635 bytes uncompressed)
  FileHeader magic=0x5a4b534e (ZKSN ok) version=2 dbid=-1
  sessions: 0
  ACL cache: 1 entries
    1 -> [world:anyone perms=1]
  nodes: 4 (pre-order; root is the empty path)
    ''                           data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
    '/zookeeper'                 data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
    '/zookeeper/config'          data=0x7365727665722e313d3132372e302e302e313a32323231313a32323232313a706172746963697061... acl=1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=-1 cver=0 aver=-1 owner=0
    '/zookeeper/quota'           data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
  end marker '/' then seal #1 at offset 589: stored adler32=0x413a76d1 computed=0x413a76d1 OK, path='/'
  ZxidDigest zxid=0x0 version=2 digest=0
  seal #2 at offset 622: stored adler32=0xc67078c5 computed=0xc67078c5 OK, path='/'
  recomputed tree digest = 1371985504
  trailing bytes after last seal: 0
snapshot fixtures/ensemble/s4/version-2/snapshot.100000000  (checked (plain), 635 bytes uncompressed)
  FileHeader magic=0x5a4b534e (ZKSN ok) version=2 dbid=-1
  sessions: 0
  ACL cache: 1 entries
    1 -> [world:anyone perms=1]
  nodes: 4 (pre-order; root is the empty path)
    ''                           data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
    '/zookeeper'                 data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
    '/zookeeper/config'          data=0x7365727665722e313d3132372e302e302e313a32323231313a32323232313a706172746963697061... acl=1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=-1 cver=0 aver=-1 owner=0
    '/zookeeper/quota'           data='' acl=-1 czxid=0x0 mzxid=0x0 pzxid=0x0 ver=0 cver=0 aver=0 owner=0
  end marker '/' then seal #1 at offset 589: stored adler32=0x6f00772e computed=0x6f00772e OK, path='/'
  ZxidDigest zxid=0x0 version=2 digest=0
  seal #2 at offset 622: stored adler32=0xee9e7874 computed=0xee9e7874 OK, path='/'
  recomputed tree digest = 1371985504
  trailing bytes after last seal: 0
"#;
