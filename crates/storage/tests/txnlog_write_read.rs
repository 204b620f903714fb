//! The appender and the reader together: rolls, file selection, preallocation, truncation.

use std::fs;
use std::path::Path;

use zooid_proto::{Acl, CreateKind, Txn, TxnDigest, TxnEntry, TxnHeader, Writer};
use zooid_storage::txnlog::{
    log_files, read_log, truncate_after, truncate_torn_tail, LogError, TxnLog, LOG_MAGIC,
};

/// A txn of a type that varies with the zxid, so every record layout gets written and read.
fn entry(zxid: i64) -> TxnEntry {
    let path = format!("/n{zxid}");
    let txn = match zxid % 6 {
        0 => Txn::CreateSession { timeout_ms: 30000 },
        1 => Txn::Create {
            kind: CreateKind::Plain { create2: false },
            path,
            data: Some(vec![b'x'; (zxid % 7 * 10) as usize]),
            acl: Acl::open_unsafe(),
            ephemeral: zxid % 2 == 0,
            parent_cversion: zxid as i32,
        },
        2 => Txn::SetData {
            path,
            data: Some(b"v".to_vec()),
            version: 3,
        },
        3 => Txn::Multi(vec![
            Txn::Create {
                kind: CreateKind::Container,
                path,
                data: None,
                acl: Acl::open_unsafe(),
                ephemeral: false,
                parent_cversion: 2,
            },
            Txn::Check {
                path: "/a".into(),
                version: 4,
            },
            Txn::Error { err: -2 },
        ]),
        4 => Txn::Delete {
            path,
            container: false,
        },
        _ => Txn::CloseSession {
            paths: Some(vec!["/e1".into(), "/e2".into()]),
        },
    };
    TxnEntry {
        header: TxnHeader {
            session_id: 0x1000004f17c0000 + zxid % 3,
            cxid: zxid as i32,
            zxid,
            time_ms: 1_795_293_519_911 + zxid,
            op: txn.op().code(),
        },
        txn,
        digest: (zxid % 4 != 0).then_some(TxnDigest {
            version: 2,
            tree_digest: zxid * 7919,
        }),
    }
}

fn body(zxid: i64) -> Vec<u8> {
    let mut w = Writer::new();
    entry(zxid).encode(&mut w);
    w.into_inner()
}

fn append_all(log: &mut TxnLog, zxids: impl IntoIterator<Item = i64>) {
    for z in zxids {
        log.append(z, &body(z)).unwrap();
    }
}

fn zxids(dir: &Path, after: i64) -> Vec<i64> {
    let r = read_log(dir, after).unwrap();
    assert!(r.torn.is_none(), "{:?}", r.torn);
    r.entries.iter().map(|e| e.header.zxid).collect()
}

#[test]
fn round_trip_across_rolls_and_replay_file_choice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut log = TxnLog::new(dir, 64 << 10, true);
    assert_eq!(log.current_size(), 0);
    append_all(&mut log, 1..=4);
    log.commit().unwrap();
    append_all(&mut log, 5..=10); // one commit for six appends
    log.roll().unwrap();
    assert_eq!(log.current_size(), 0);
    append_all(&mut log, 11..=20);
    log.commit().unwrap();
    log.roll().unwrap();
    append_all(&mut log, 21..=30);
    log.commit().unwrap();
    // Not yet committed: must not be visible after a "crash" (dropping the appender).
    append_all(&mut log, 31..=32);
    drop(log);

    let names: Vec<String> = log_files(dir)
        .unwrap()
        .iter()
        .map(|(_, p)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["log.1", "log.b", "log.15"]);

    let r = read_log(dir, 0).unwrap();
    assert!(r.torn.is_none());
    let want: Vec<TxnEntry> = (1..=30).map(entry).collect();
    assert_eq!(r.entries, want);

    assert_eq!(zxids(dir, 10), (11..=30).collect::<Vec<_>>());
    assert_eq!(zxids(dir, 15), (16..=30).collect::<Vec<_>>());
    assert_eq!(zxids(dir, 30), Vec::<i64>::new());
    assert_eq!(zxids(dir, 99), Vec::<i64>::new());

    // Which files are read: with log.1 damaged, a replay that needs it (snapshot at 10: log.1 is
    // the newest file starting at or before 10) fails, one that does not (snapshot at 11) works.
    let p1 = dir.join("log.1");
    let mut bytes = fs::read(&p1).unwrap();
    bytes[0] ^= 0xff;
    fs::write(&p1, &bytes).unwrap();
    assert_eq!(zxids(dir, 11), (12..=30).collect::<Vec<_>>());
    match read_log(dir, 10) {
        Err(LogError::Corrupt {
            path, offset: 0, ..
        }) => assert_eq!(path, p1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn header_and_entry_bytes_are_zookeepers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TxnLog::new(tmp.path(), 0, false);
    log.append(0x100000001, &body_with_zxid(0x100000001))
        .unwrap();
    log.commit().unwrap();
    let b = fs::read(tmp.path().join("log.100000001")).unwrap();
    assert_eq!(&b[..4], &LOG_MAGIC.to_be_bytes());
    assert_eq!(&b[4..16], &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
    let body = body_with_zxid(0x100000001);
    assert_eq!(
        &b[16..24],
        &u64::from(zooid_storage::checksum::adler32(&body)).to_be_bytes()
    );
    assert_eq!(&b[24..28], &(body.len() as i32).to_be_bytes());
    assert_eq!(&b[28..28 + body.len()], &body[..]);
    assert_eq!(b[28 + body.len()], 0x42);
    assert_eq!(
        b.len(),
        28 + body.len() + 1,
        "no padding when preallocation is off"
    );
}

fn body_with_zxid(zxid: i64) -> Vec<u8> {
    let mut e = entry(1);
    e.header.zxid = zxid;
    let mut w = Writer::new();
    e.encode(&mut w);
    w.into_inner()
}

#[test]
fn preallocation_pads_and_grows() {
    let tmp = tempfile::tempdir().unwrap();
    let prealloc = 64 << 10;
    let mut log = TxnLog::new(tmp.path(), prealloc, true);
    log.append(1, &body(1)).unwrap();
    let path = tmp.path().join("log.1");
    assert_eq!(fs::metadata(&path).unwrap().len(), 16 + prealloc);
    log.commit().unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), 16 + prealloc);
    let mut z = 1;
    let mut sizes = vec![];
    while log.current_size() < 3 * prealloc {
        z += 1;
        log.append(z, &body(z)).unwrap();
        if z % 10 == 0 {
            log.commit().unwrap();
        }
        let size = fs::metadata(&path).unwrap().len();
        // Always at least 4 KiB of zeros ahead of what was appended, in preAllocSize steps.
        assert!(size > log.current_size() + 4096 - 1, "z={z} size={size}");
        assert_eq!((size - 16) % prealloc, 0);
        if sizes.last() != Some(&size) {
            sizes.push(size);
        }
    }
    log.commit().unwrap();
    assert_eq!(
        sizes[..3],
        [16 + prealloc, 16 + 2 * prealloc, 16 + 3 * prealloc]
    );
    // The padding reads as the logical end.
    assert_eq!(zxids(tmp.path(), 0), (1..=z).collect::<Vec<_>>());
}

#[test]
fn default_64_mib_preallocation_reads_fast_enough() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TxnLog::new(tmp.path(), 64 << 20, false);
    append_all(&mut log, 1..=5);
    log.roll().unwrap();
    append_all(&mut log, 6..=9);
    log.commit().unwrap();
    assert_eq!(
        fs::metadata(tmp.path().join("log.1")).unwrap().len(),
        67108880
    );
    assert_eq!(zxids(tmp.path(), 0), (1..=9).collect::<Vec<_>>());
}

#[test]
fn truncate_after_cuts_and_deletes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut log = TxnLog::new(dir, 16 << 10, true);
    append_all(&mut log, 1..=10);
    log.roll().unwrap();
    append_all(&mut log, 11..=20);
    log.roll().unwrap();
    append_all(&mut log, 21..=30);
    log.roll().unwrap();

    truncate_after(dir, 25).unwrap();
    assert_eq!(zxids(dir, 0), (1..=25).collect::<Vec<_>>());
    truncate_after(dir, 14).unwrap();
    assert_eq!(zxids(dir, 0), (1..=14).collect::<Vec<_>>());
    assert_eq!(log_files(dir).unwrap().len(), 2);
    // At a file boundary: the file that starts after it goes entirely.
    truncate_after(dir, 10).unwrap();
    assert_eq!(log_files(dir).unwrap().len(), 1);
    assert_eq!(zxids(dir, 0), (1..=10).collect::<Vec<_>>());
    // Cut right after the entry: no padding left behind.
    let e10 = 16 + (1..=10).map(|z| 13 + body(z).len() as u64).sum::<u64>();
    assert_eq!(fs::metadata(dir.join("log.1")).unwrap().len(), e10);
    // Truncating at or past the end changes nothing.
    truncate_after(dir, 10).unwrap();
    truncate_after(dir, 99).unwrap();
    assert_eq!(zxids(dir, 0), (1..=10).collect::<Vec<_>>());

    // Appending goes on in a new file, and reading sees one continuous log.
    let mut log = TxnLog::new(dir, 16 << 10, true);
    append_all(&mut log, 11..=12);
    log.commit().unwrap();
    assert_eq!(zxids(dir, 0), (1..=12).collect::<Vec<_>>());
    truncate_after(dir, 0).unwrap();
    assert_eq!(zxids(dir, 0), Vec::<i64>::new());
}

#[test]
fn appender_refuses_what_would_make_the_log_unreadable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut log = TxnLog::new(dir, 0, true);
    assert!(matches!(
        log.append(2, &body(3)),
        Err(LogError::Append { .. })
    ));
    assert!(matches!(
        log.append(2, &[0u8; 8]),
        Err(LogError::Append { .. })
    ));
    append_all(&mut log, [5, 6]);
    let e = log.append(6, &body(6)).unwrap_err();
    assert!(e.to_string().contains("not after"), "{e}");
    log.roll().unwrap();
    // A file of that name holding entries is never overwritten.
    let mut log = TxnLog::new(dir, 0, true);
    assert!(matches!(
        log.append(5, &body(5)),
        Err(LogError::Append { .. })
    ));
    assert_eq!(zxids(dir, 0), vec![5, 6]);
}

#[test]
fn entries_out_of_order_across_files_are_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut log = TxnLog::new(dir, 0, true);
    append_all(&mut log, 1..=5);
    log.roll().unwrap();
    append_all(&mut log, 3..=4);
    log.roll().unwrap();
    match read_log(dir, 0) {
        Err(LogError::Corrupt {
            path,
            offset: 16,
            reason,
        }) => {
            assert!(path.ends_with("log.3"));
            assert!(reason.contains("does not follow"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_and_headerless_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut log = TxnLog::new(dir, 4096, true);
    append_all(&mut log, 1..=3);
    log.roll().unwrap();

    // A crash right after creating the next file: empty, the newest -> torn at 0, removed.
    fs::write(dir.join("log.4"), b"").unwrap();
    let r = read_log(dir, 0).unwrap();
    assert_eq!(r.entries.len(), 3);
    let t = r.torn.unwrap();
    assert_eq!(t.offset, 0);
    truncate_torn_tail(&t).unwrap();
    assert!(!dir.join("log.4").exists());

    // Padded but the header never made it: all zeros -> torn at 0 as well.
    fs::write(dir.join("log.4"), vec![0u8; 5000]).unwrap();
    assert_eq!(read_log(dir, 0).unwrap().torn.unwrap().offset, 0);
    // A short header that is not zeros.
    fs::write(dir.join("log.4"), LOG_MAGIC.to_be_bytes()).unwrap();
    assert_eq!(read_log(dir, 0).unwrap().torn.unwrap().offset, 0);
    // Garbage that is not a log at all is not a torn write.
    fs::write(dir.join("log.4"), b"this is not a zookeeper txn log file").unwrap();
    assert!(matches!(
        read_log(dir, 0),
        Err(LogError::Corrupt { offset: 0, .. })
    ));
    // A reusable leftover: an empty file with the name the next append wants.
    fs::write(dir.join("log.4"), b"").unwrap();
    let mut log = TxnLog::new(dir, 4096, true);
    append_all(&mut log, 4..=6);
    log.roll().unwrap();
    assert_eq!(zxids(dir, 0), (1..=6).collect::<Vec<_>>());

    // An empty file that is not the newest loses nothing when the next file resumes right
    // after the previous one: ZooKeeper also reads past it.
    fs::write(dir.join("log.2"), b"").unwrap();
    assert_eq!(zxids(dir, 0), (1..=6).collect::<Vec<_>>());
    // With a gap after it, it is damage.
    fs::remove_file(dir.join("log.4")).unwrap();
    let mut log = TxnLog::new(dir, 4096, true);
    append_all(&mut log, 5..=6);
    log.roll().unwrap();
    let e = read_log(dir, 0).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("log.2") && msg.contains("offset 0") && msg.contains("backup"),
        "{msg}"
    );
}

#[test]
fn header_only_file_is_fine_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut header = LOG_MAGIC.to_be_bytes().to_vec();
    header.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
    fs::write(dir.join("log.1"), &header).unwrap();
    assert_eq!(zxids(dir, 0), Vec::<i64>::new());
    let mut log = TxnLog::new(dir, 0, true);
    append_all(&mut log, 2..=3);
    log.commit().unwrap();
    assert_eq!(zxids(dir, 0), vec![2, 3]);
}

#[test]
fn dump_reports_a_torn_tail_and_refuses_garbage() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TxnLog::new(tmp.path(), 0, false);
    append_all(&mut log, 1..=3);
    log.commit().unwrap();
    let path = tmp.path().join("log.1");
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let mut s = String::new();
    zooid_storage::txnlog::dump(&path, false, &mut s).unwrap();
    assert_eq!(s.lines().count(), 1 + 2 + 1, "{s}");
    assert!(
        s.contains("zxid 0x2 setData path=/n2 data=(1 bytes) version=3"),
        "{s}"
    );
    assert!(
        s.lines()
            .last()
            .unwrap()
            .starts_with("2 txns, zxids 0x1..=0x2, then a torn last entry at byte"),
        "{s}"
    );

    fs::write(&path, b"ZKSN\0\0\0\x02 and more than a header").unwrap();
    let e = zooid_storage::txnlog::dump(&path, false, &mut String::new()).unwrap_err();
    assert!(matches!(e, LogError::Corrupt { offset: 0, .. }), "{e}");
}
