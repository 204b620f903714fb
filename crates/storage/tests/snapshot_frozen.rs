//! The frozen (point-in-time) snapshot: taken in an instant, written while the tree goes on
//! changing, it loads as exactly the tree it was taken of, digest included, and replaying
//! the txns applied since gives the final tree, as recovery does.

use zooid_proto::{Acl, CreateKind, OpCode, Txn, TxnHeader};
use zooid_storage::snapshot::{encode_snapshot, read_snapshot, FrozenSnapshot, Layout};
use zooid_tree::DataTree;

fn hdr(zxid: i64, op: OpCode) -> TxnHeader {
    TxnHeader {
        session_id: 0x77,
        cxid: 1,
        zxid,
        time_ms: 1_700_000_000_000 + zxid,
        op: op.code(),
    }
}

fn create(tree: &DataTree, path: &str, acl: Vec<Acl>) -> Txn {
    let parent = zooid_tree::parent_of(path).unwrap();
    Txn::Create {
        kind: CreateKind::Plain { create2: false },
        path: path.into(),
        data: Some(path.as_bytes().to_vec()),
        acl,
        ephemeral: false,
        parent_cversion: tree.get(parent).unwrap().stat.cversion + 1,
    }
}

/// Every node as (path, data, acl, stat), for comparing trees.
fn contents(t: &DataTree) -> Vec<String> {
    let mut v = Vec::new();
    t.walk(|p, n| v.push(format!("{p} {:?} {:?} {:?}", n.data, t.acl_of(n), n.stat)));
    v.sort();
    v
}

/// A tree and the log of every txn that built it.
struct Logged {
    tree: DataTree,
    log: Vec<(TxnHeader, Txn)>,
}

impl Logged {
    fn new() -> Logged {
        Logged {
            tree: DataTree::new(),
            log: Vec::new(),
        }
    }

    fn apply(&mut self, op: OpCode, txn: Txn) {
        let h = hdr(self.log.len() as i64 + 1, op);
        self.tree.apply(&h, &txn);
        self.log.push((h, txn));
    }

    fn create(&mut self, path: &str, acl: Vec<Acl>) {
        let txn = create(&self.tree, path, acl);
        self.apply(OpCode::Create, txn);
    }
}

fn load(snap: &FrozenSnapshot) -> DataTree {
    let dir = tempfile::tempdir().unwrap();
    let path = snap.write(dir.path(), "", &|| false).unwrap();
    read_snapshot(&path).unwrap().tree
}

#[test]
fn quiet_tree_loads_the_same_as_a_one_shot_encode() {
    let mut l = Logged::new();
    for i in 0..50 {
        l.create(&format!("/n{i}"), Acl::open_unsafe());
        l.create(&format!("/n{i}/c"), Acl::read_unsafe());
    }
    let snap = FrozenSnapshot::take(&l.tree, Layout::Zk38);
    assert_eq!(snap.zxid(), 100);
    let loaded = load(&snap);
    assert_eq!(contents(&loaded), contents(&l.tree));
    assert_eq!(loaded.digest(), l.tree.digest());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("snapshot.64"),
        encode_snapshot(&l.tree, Some((l.tree.last_zxid(), l.tree.digest()))),
    )
    .unwrap();
    let one_shot = read_snapshot(&dir.path().join("snapshot.64")).unwrap().tree;
    assert_eq!(contents(&one_shot), contents(&loaded));
    assert_eq!(snap.encode().len(), encode_snapshot(&l.tree, None).len());
}

/// What a leader streams after SNAP, taken frozen, holds the same tree as the one-shot body,
/// and a learner stores it as the same snapshot.
#[test]
fn a_frozen_sync_body_holds_the_tree() {
    let mut l = Logged::new();
    for i in 0..40 {
        l.create(&format!("/s{i}"), Acl::open_unsafe());
        l.create(&format!("/s{i}/c"), Acl::read_unsafe());
    }
    let frozen = FrozenSnapshot::take(&l.tree, Layout::Zk38).encode_body();
    assert_eq!(
        frozen.len(),
        zooid_storage::sync::sync_stream_body(&l.tree).len()
    );
    let dir = tempfile::tempdir().unwrap();
    let (_, tree) =
        zooid_storage::sync::write_sync_snapshot(dir.path(), &frozen, 80, Layout::Zk38).unwrap();
    assert_eq!(contents(&tree), contents(&l.tree));
    assert_eq!(tree.digest(), l.tree.digest());
}

/// Thousands of nodes over several of the node table's chunks; after the freeze, writes touch
/// some chunks (sets, deletes, creates, new ACL lists, a whole subtree gone) and not others.
#[test]
fn written_after_the_tree_changed_it_holds_the_tree_as_it_was() {
    let mut l = Logged::new();
    for p in 0..8 {
        l.create(&format!("/p{p}"), Acl::open_unsafe());
        for c in 0..1000 {
            l.create(&format!("/p{p}/c{c}"), Acl::open_unsafe());
        }
    }
    l.create("/p3/c7/deep", Acl::read_unsafe());
    let before = contents(&l.tree);
    let digest_before = l.tree.digest();
    let snap = FrozenSnapshot::take(&l.tree, Layout::Zk38);
    let zxid = snap.zxid();

    for c in (0..1000).step_by(7) {
        l.apply(
            OpCode::SetData,
            Txn::SetData {
                path: format!("/p1/c{c}"),
                data: Some(vec![c as u8]),
                version: 1,
            },
        );
    }
    for c in 0..1000 {
        let path = format!("/p5/c{c}");
        l.apply(
            OpCode::Delete,
            Txn::Delete {
                path,
                container: false,
            },
        );
    }
    for i in 0..3000 {
        let acl = vec![Acl::new(31, "digest", &format!("u{}:x", i % 5))];
        l.create(&format!("/p6/late{i}"), acl);
    }
    l.apply(
        OpCode::Delete,
        Txn::Delete {
            path: "/p3/c7/deep".into(),
            container: false,
        },
    );
    assert_ne!(contents(&l.tree), before);

    let loaded = load(&snap);
    assert_eq!(loaded.last_zxid(), zxid);
    assert_eq!(contents(&loaded), before);
    assert_eq!(loaded.digest(), digest_before);

    let mut replayed = loaded;
    for (h, txn) in l.log.iter().filter(|(h, _)| h.zxid > zxid) {
        replayed.apply(h, txn);
    }
    assert_eq!(contents(&replayed), contents(&l.tree));
    assert_eq!(replayed.digest(), l.tree.digest());
}

#[test]
fn a_cancelled_write_leaves_no_file() {
    let mut l = Logged::new();
    for i in 0..5000 {
        l.create(&format!("/n{i}"), Acl::open_unsafe());
    }
    let snap = FrozenSnapshot::take(&l.tree, Layout::Zk38);
    let dir = tempfile::tempdir().unwrap();
    assert!(snap.write(dir.path(), "", &|| true).is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
