//! Crash and damage at every byte near the end of the log: a torn tail is cut off and loses
//! nothing that was acknowledged; damage anywhere else stops the read with the file and offset.

use std::fs;
use std::path::{Path, PathBuf};

use zooid_proto::{Acl, CreateKind, Txn, TxnDigest, TxnEntry, TxnHeader, Writer};
use zooid_storage::txnlog::{read_log, truncate_torn_tail, LogError, TxnLog};

fn entry(zxid: i64) -> TxnEntry {
    let txn = match zxid % 3 {
        0 => Txn::Create {
            kind: CreateKind::Plain { create2: false },
            path: format!("/node-{zxid}"),
            data: Some(vec![zxid as u8; (zxid % 5 * 9) as usize]),
            acl: Acl::open_unsafe(),
            ephemeral: false,
            parent_cversion: zxid as i32,
        },
        1 => Txn::SetData {
            path: format!("/node-{zxid}"),
            data: Some(vec![0; 20]),
            version: 1,
        },
        _ => Txn::CreateSession { timeout_ms: 4000 },
    };
    TxnEntry {
        header: TxnHeader {
            session_id: 0x1234,
            cxid: 0,
            zxid,
            time_ms: 1_700_000_000_000,
            op: txn.op().code(),
        },
        txn,
        digest: (zxid % 2 == 0).then_some(TxnDigest {
            version: 2,
            tree_digest: zxid,
        }),
    }
}

fn body(zxid: i64) -> Vec<u8> {
    let mut w = Writer::new();
    entry(zxid).encode(&mut w);
    w.into_inner()
}

/// log.1 holds 1..=10, log.b (the newest) 11..=30.
struct Original {
    log1: Vec<u8>,
    logb: Vec<u8>,
    /// Byte range of each entry in its file, by zxid.
    span: Vec<(u64, u64)>,
}

fn build(prealloc: u64) -> Original {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = TxnLog::new(tmp.path(), prealloc, true);
    let mut span = vec![(0, 0)];
    let mut at = 16;
    for z in 1..=30 {
        if z == 11 {
            log.roll().unwrap();
            at = 16;
        }
        let b = body(z);
        log.append(z, &b).unwrap();
        span.push((at, at + 13 + b.len() as u64));
        at += 13 + b.len() as u64;
        if z % 4 == 0 {
            log.commit().unwrap();
        }
    }
    log.commit().unwrap();
    Original {
        log1: fs::read(tmp.path().join("log.1")).unwrap(),
        logb: fs::read(tmp.path().join("log.b")).unwrap(),
        span,
    }
}

fn setup(o: &Original, log1: &[u8], logb: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("log.1"), log1).unwrap();
    fs::write(tmp.path().join("log.b"), logb).unwrap();
    let _ = o;
    let p = tmp.path().to_path_buf();
    (tmp, p)
}

fn zxids(entries: &[TxnEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.header.zxid).collect()
}

/// Entries must be exactly the originals, never something decoded from damaged bytes.
fn check_entries(entries: &[TxnEntry], upto: i64, ctx: &str) {
    let want: Vec<TxnEntry> = (1..=upto).map(entry).collect();
    assert!(
        entries == want.as_slice(),
        "{ctx}: got zxids {:?}, want 1..={upto}",
        zxids(entries)
    );
}

/// After cutting the torn tail, the log is clean and appending carries on from `next`.
fn repair_and_continue(dir: &Path, torn: &zooid_storage::txnlog::TornTail, next: i64, ctx: &str) {
    truncate_torn_tail(torn).unwrap();
    let r = read_log(dir, 0).unwrap();
    assert!(
        r.torn.is_none(),
        "{ctx}: still torn after truncation: {:?}",
        r.torn
    );
    check_entries(&r.entries, next - 1, ctx);
    let mut log = TxnLog::new(dir, 4096, true);
    for z in next..next + 3 {
        log.append(z, &body(z)).unwrap();
    }
    log.commit().unwrap();
    let r = read_log(dir, 0).unwrap();
    assert!(
        r.torn.is_none(),
        "{ctx}: torn after appending: {:?}",
        r.torn
    );
    check_entries(&r.entries, next + 2, ctx);
}

fn entry_at(o: &Original, x: u64, zxids: std::ops::RangeInclusive<i64>) -> Option<i64> {
    zxids
        .into_iter()
        .find(|z| o.span[*z as usize].0 <= x && x < o.span[*z as usize].1)
}

fn truncations_in_the_newest_file(prealloc: u64) {
    let o = build(prealloc);
    let (from, end) = (o.span[28].0, o.span[30].1);
    for x in from..=end {
        let ctx = format!("prealloc {prealloc}, log.b cut at {x}");
        let (_tmp, dir) = setup(&o, &o.log1, &o.logb[..x as usize]);
        let r = read_log(&dir, 0).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let Some(k) = entry_at(&o, x, 28..=30) else {
            // Cut exactly at the end of the last entry: a clean, complete log.
            assert!(r.torn.is_none(), "{ctx}");
            check_entries(&r.entries, 30, &ctx);
            continue;
        };
        check_entries(&r.entries, k - 1, &ctx);
        let start = o.span[k as usize].0;
        match &r.torn {
            Some(t) => {
                assert_eq!(t.offset, start, "{ctx}");
                assert!(t.path.ends_with("log.b"), "{ctx}");
                repair_and_continue(&dir, t, k, &ctx);
            }
            // Only when what is left of the entry is zeros (the cut entry start, or the zero
            // high half of its checksum), which is indistinguishable from padding.
            None => assert!(
                o.logb[start as usize..x as usize].iter().all(|&b| b == 0),
                "{ctx}"
            ),
        }
    }
}

fn flips_in_the_newest_file(prealloc: u64) {
    let o = build(prealloc);
    let (from, end) = (o.span[28].0, o.span[30].1);
    let mut offsets: Vec<u64> = (from..end + 40.min(o.logb.len() as u64 - end)).collect();
    if prealloc > 0 {
        offsets.push(o.logb.len() as u64 - 1); // the far end of the padding
        offsets.push(end + 5000);
    }
    for x in offsets {
        let ctx = format!("prealloc {prealloc}, log.b byte {x} flipped");
        let mut b = o.logb.clone();
        b[x as usize] ^= 0xff;
        let (_tmp, dir) = setup(&o, &o.log1, &b);
        let r = read_log(&dir, 0);
        match entry_at(&o, x, 28..=30) {
            Some(30) => {
                let r = r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                check_entries(&r.entries, 29, &ctx);
                let t = r.torn.unwrap_or_else(|| panic!("{ctx}: not torn"));
                assert_eq!(t.offset, o.span[30].0, "{ctx}");
                repair_and_continue(&dir, &t, 30, &ctx);
            }
            Some(k) => match r {
                Err(LogError::Corrupt { path, offset, .. }) => {
                    assert!(path.ends_with("log.b"), "{ctx}");
                    assert_eq!(offset, o.span[k as usize].0, "{ctx}");
                }
                other => panic!("{ctx}: expected Corrupt, got {other:?}"),
            },
            None => {
                // In the padding: every entry is there; the stray byte is cut off like a tail.
                let r = r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                check_entries(&r.entries, 30, &ctx);
                let t = r.torn.unwrap_or_else(|| panic!("{ctx}: not torn"));
                assert_eq!(t.offset, end, "{ctx}");
                repair_and_continue(&dir, &t, 31, &ctx);
            }
        }
    }
}

#[test]
fn truncation_anywhere_in_the_last_entries_is_a_torn_tail() {
    truncations_in_the_newest_file(0);
    truncations_in_the_newest_file(16 << 10);
}

#[test]
fn flipped_byte_is_torn_only_in_the_last_entry() {
    flips_in_the_newest_file(0);
    flips_in_the_newest_file(16 << 10);
}

#[test]
fn damage_to_an_older_files_entries_is_corrupt() {
    for prealloc in [0, 16 << 10] {
        let o = build(prealloc);
        let end = o.span[10].1;
        // The dbid (bytes 8..16) is not checked, as in Java: it is always 0 and means nothing.
        let offsets: Vec<u64> = (0..8).chain(o.span[9].0..end).collect();
        if prealloc > 0 {
            // A stray byte in the padding after an older file's last entry loses nothing: the
            // next file resumes right after that entry, so the log reads whole.
            let mut b = o.log1.clone();
            b[(end + 100) as usize] ^= 0xff;
            let (_tmp, dir) = setup(&o, &b, &o.logb);
            let r = read_log(&dir, 0).expect("padding damage in an older file");
            assert_eq!(zxids(&r.entries), (1..=30).collect::<Vec<_>>());
        }
        for x in offsets {
            let ctx = format!("prealloc {prealloc}, log.1 byte {x} flipped");
            let mut b = o.log1.clone();
            b[x as usize] ^= 0xff;
            let (_tmp, dir) = setup(&o, &b, &o.logb);
            match read_log(&dir, 0) {
                Err(e @ LogError::Corrupt { .. }) => {
                    let LogError::Corrupt { path, offset, .. } = &e else {
                        unreachable!()
                    };
                    assert!(path.ends_with("log.1"), "{ctx}");
                    let want = entry_at(&o, x, 9..=10)
                        .map_or(if x < 16 { 0 } else { end }, |k| o.span[k as usize].0);
                    // A bad version is reported at the version field.
                    assert!(
                        *offset == want || ((4..8).contains(&x) && *offset == 4),
                        "{ctx}: offset {offset}"
                    );
                    let msg = e.to_string();
                    assert!(
                        msg.contains("log.1") && msg.contains(&format!("offset {offset}")),
                        "{msg}"
                    );
                }
                other => panic!("{ctx}: expected Corrupt, got {other:?}"),
            }
        }
        // Cut inside an older file's last entry: a torn entry followed by a newer file.
        for x in o.span[10].0 + 1..end {
            let ctx = format!("prealloc {prealloc}, log.1 cut at {x}");
            let (_tmp, dir) = setup(&o, &o.log1[..x as usize], &o.logb);
            let rest_zero = o.log1[o.span[10].0 as usize..x as usize]
                .iter()
                .all(|&b| b == 0);
            match read_log(&dir, 0) {
                Err(LogError::Corrupt { offset, .. }) => assert_eq!(offset, o.span[10].0, "{ctx}"),
                Ok(r) if rest_zero => assert_eq!(
                    zxids(&r.entries),
                    (1..=9).chain(11..=30).collect::<Vec<_>>()
                ),
                other => panic!("{ctx}: expected Corrupt, got {other:?}"),
            }
        }
    }
}

#[test]
fn a_length_pointing_past_later_entries_is_not_taken_for_a_torn_tail() {
    // The length of entry 20 rewritten to reach exactly into the padding after entry 30: the
    // read there sees zeros, which alone would look like a torn last entry.
    let o = build(16 << 10);
    let (s20, end) = (o.span[20].0, o.span[30].1);
    let mut b = o.logb.clone();
    let len = (end + 50 - s20 - 13) as i32;
    b[s20 as usize + 8..s20 as usize + 12].copy_from_slice(&len.to_be_bytes());
    let (_tmp, dir) = setup(&o, &o.log1, &b);
    match read_log(&dir, 0) {
        Err(LogError::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, s20);
            assert!(reason.contains("valid entry follows"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // The same with a zero length: padding in the middle of the log.
    let mut b = o.logb.clone();
    b[s20 as usize..s20 as usize + 12].fill(0);
    let (_tmp, dir) = setup(&o, &o.log1, &b);
    assert!(matches!(read_log(&dir, 0), Err(LogError::Corrupt { offset, .. }) if offset == s20));
}
