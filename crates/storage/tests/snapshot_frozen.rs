//! The incremental (fuzzy) snapshot: identical to a one-shot encode on a quiet tree, and on a
//! tree that changes between slices, loading it and replaying the txns applied meanwhile
//! gives the final tree, as recovery does.

use zooid_proto::{Acl, CreateKind, OpCode, Txn, TxnHeader};
use zooid_storage::snapshot::{encode_snapshot, read_snapshot, IncrementalSnapshot};
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

#[test]
fn quiet_tree_encodes_the_same_either_way() {
    let mut t = DataTree::new();
    let mut z = 0;
    for i in 0..50 {
        z += 1;
        let txn = create(&t, &format!("/n{i}"), Acl::open_unsafe());
        t.apply(&hdr(z, OpCode::Create), &txn);
    }
    let mut inc = IncrementalSnapshot::start(&t);
    while !inc.step(&t, 7) {}
    let done = inc.finish(&t);
    assert_eq!(done.zxid(), z);
    assert_eq!(
        done.encode(),
        encode_snapshot(&t, Some((t.last_zxid(), t.digest())))
    );
}

#[test]
fn fuzzy_snapshot_plus_replay_gives_the_final_tree() {
    let mut t = DataTree::new();
    let mut z = 0;
    let mut log: Vec<(TxnHeader, Txn)> = Vec::new();
    let apply =
        |t: &mut DataTree, z: &mut i64, op: OpCode, txn: Txn, log: &mut Vec<(TxnHeader, Txn)>| {
            *z += 1;
            let h = hdr(*z, op);
            t.apply(&h, &txn);
            log.push((h, txn));
        };
    for i in 0..40 {
        let txn = create(&t, &format!("/a{i}"), Acl::open_unsafe());
        apply(&mut t, &mut z, OpCode::Create, txn, &mut log);
        let txn = create(&t, &format!("/a{i}/b"), Acl::read_unsafe());
        apply(&mut t, &mut z, OpCode::Create, txn, &mut log);
    }
    let mut inc = IncrementalSnapshot::start(&t);
    let start = inc.zxid();
    let mut round = 0;
    while !inc.step(&t, 5) {
        round += 1;
        // Change the tree between slices: new lists, new nodes, deletions, data changes.
        let acl = vec![Acl::new(31, "digest", &format!("u{round}:x"))];
        let txn = create(&t, &format!("/late{round}"), acl);
        apply(&mut t, &mut z, OpCode::Create, txn, &mut log);
        let victim = format!("/a{}/b", round % 40);
        if t.get(&victim).is_some() {
            let txn = Txn::Delete {
                path: victim,
                container: false,
            };
            apply(&mut t, &mut z, OpCode::Delete, txn, &mut log);
        }
        let txn = Txn::SetData {
            path: format!("/a{}", (round * 7) % 40),
            data: Some(vec![round as u8]),
            version: round,
        };
        apply(&mut t, &mut z, OpCode::SetData, txn, &mut log);
    }
    assert!(round > 3, "the snapshot should have taken several slices");
    let done = inc.finish(&t);
    let zxid = done.zxid();
    assert_eq!(zxid, start);
    let dir = tempfile::tempdir().unwrap();
    let path = done.write(dir.path(), "").unwrap();
    let mut loaded = read_snapshot(&path).unwrap().tree;
    for (h, txn) in log.iter().filter(|(h, _)| h.zxid > zxid) {
        loaded.apply(h, txn);
    }
    assert_eq!(contents(&loaded), contents(&t));
    assert_eq!(loaded.digest(), t.digest());
}
