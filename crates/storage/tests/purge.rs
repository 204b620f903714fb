//! Purging keeps what recovery needs: the newest N snapshots and every log holding txns after
//! the oldest of them, including the log that starts before it.

use std::fs;
use std::path::Path;

use zooid_storage::purge::purge;
use zooid_storage::snapshot::write_snapshot;
use zooid_storage::txnlog::TxnLog;
use zooid_tree::DataTree;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn entry(zxid: i64) -> Vec<u8> {
    let mut w = zooid_proto::Writer::new();
    zooid_proto::TxnEntry {
        header: zooid_proto::TxnHeader {
            session_id: 1,
            cxid: 0,
            zxid,
            time_ms: 0,
            op: zooid_proto::OpCode::CreateSession.code(),
        },
        txn: zooid_proto::Txn::CreateSession { timeout_ms: 4000 },
        digest: None,
    }
    .encode(&mut w);
    w.into_inner()
}

#[test]
fn keeps_the_newest_snapshots_and_the_logs_they_need() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tree = DataTree::new();
    let mut log = TxnLog::new(d, 4096, false);
    // Logs starting at 1, 11, 21, 31, 41; snapshots at 5, 15, 25, 35, 45.
    for start in [1i64, 11, 21, 31, 41] {
        for z in start..start + 10 {
            log.append(z, &entry(z)).unwrap();
        }
        log.commit().unwrap();
        log.roll().unwrap();
        write_snapshot(d, &tree, start + 4, None, "").unwrap();
    }
    let removed = purge(d, d, 3).unwrap();
    assert_eq!(removed.len(), 4, "{removed:?}");
    // Oldest kept snapshot is 0x19 (25): log.15 (21..30) holds the txns after it.
    assert_eq!(
        names(d),
        [
            "log.15",
            "log.1f",
            "log.29",
            "snapshot.19",
            "snapshot.23",
            "snapshot.2d"
        ]
    );
    // Fewer snapshots than asked for: nothing to do. And fewer than 3 is raised to 3.
    assert!(purge(d, d, 5).unwrap().is_empty());
    assert!(purge(d, d, 1).unwrap().is_empty());
}
