//! A ZooKeeper that crashed mid-write and restarted leaves a torn entry at the end of an older
//! log file, and its next file resumes right after the last good entry. That shape loads;
//! the same damage with a gap after it does not.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};

use zooid_proto::{OpCode, Txn, TxnEntry, TxnHeader, Writer};
use zooid_storage::txnlog::{read_log, LogError, TxnLog};

fn body(zxid: i64) -> Vec<u8> {
    let mut w = Writer::new();
    TxnEntry {
        header: TxnHeader {
            session_id: 1,
            cxid: 0,
            zxid,
            time_ms: 0,
            op: OpCode::CreateSession.code(),
        },
        txn: Txn::CreateSession { timeout_ms: 4000 },
        digest: None,
    }
    .encode(&mut w);
    w.into_inner()
}

/// log.1 holds 1..=10 plus half of an 11th entry; the next file starts at `next_start`.
fn write_logs(dir: &std::path::Path, next_start: i64) {
    let mut log = TxnLog::new(dir, 64 * 1024, false);
    let mut end = 16u64;
    for z in 1..=10 {
        let b = body(z);
        end += 8 + 4 + b.len() as u64 + 1;
        log.append(z, &b).unwrap();
    }
    log.commit().unwrap();
    log.roll().unwrap();
    for z in next_start..next_start + 5 {
        log.append(z, &body(z)).unwrap();
    }
    log.commit().unwrap();
    log.roll().unwrap();
    // The torn 11th entry: checksum, length, and only part of its body.
    let torn = body(11);
    let mut f = OpenOptions::new()
        .write(true)
        .open(dir.join("log.1"))
        .unwrap();
    f.seek(SeekFrom::Start(end)).unwrap();
    f.write_all(&0x1234_5678i64.to_be_bytes()).unwrap();
    f.write_all(&(torn.len() as i32).to_be_bytes()).unwrap();
    f.write_all(&torn[..torn.len() / 2]).unwrap();
}

#[test]
fn torn_end_of_an_older_file_loads_when_the_next_file_resumes_after_it() {
    let dir = tempfile::tempdir().unwrap();
    write_logs(dir.path(), 11);
    let read = read_log(dir.path(), 0).unwrap();
    let zxids: Vec<i64> = read.entries.iter().map(|e| e.header.zxid).collect();
    assert_eq!(zxids, (1..=15).collect::<Vec<_>>());
    assert!(read.torn.is_none());
}

#[test]
fn torn_end_of_an_older_file_with_a_gap_after_it_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    write_logs(dir.path(), 12);
    match read_log(dir.path(), 0) {
        Err(LogError::Corrupt { path, .. }) => assert!(path.ends_with("log.1")),
        other => panic!("expected Corrupt in log.1, got {other:?}"),
    }
}
