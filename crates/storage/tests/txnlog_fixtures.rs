//! The txn log reader against files written by ZooKeeper 3.8.0, checked against the
//! decodings in `tests/fixtures/zkdump-expected.txt`.

use std::path::{Path, PathBuf};

use zooid_proto::OpCode;
use zooid_storage::txnlog::{dump, log_files, read_log};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn expected() -> String {
    std::fs::read_to_string(fixtures().join("zkdump-expected.txt")).expect("zkdump-expected.txt")
}

fn hex(s: &str) -> i64 {
    i64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// (zxid, type name) of each entry in a "txn log <file>" section of the expected output.
fn expected_log(file: &str) -> Vec<(i64, String)> {
    let text = expected();
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            inside = line == format!("txn log fixtures/{file}");
            continue;
        }
        if inside && line.trim_start().starts_with('@') {
            let zxid = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("zxid="))
                .unwrap();
            let ty = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("type="))
                .unwrap();
            out.push((hex(zxid), ty.split('(').next().unwrap().to_string()));
        }
    }
    out
}

/// (snapshot zxid, [(zxid, type name)]) of a "dataDir <dir>" section: what the server replays.
fn expected_replay(dir: &str) -> (i64, Vec<(i64, String)>) {
    let text = expected();
    let mut snap = None;
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            inside = line == format!("dataDir fixtures/{dir}");
            continue;
        }
        if !inside {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"using") {
            snap = Some(hex(words[3].trim_end_matches(&[')', ','][..])));
        }
        if words.first() == Some(&"replay") {
            out.push((hex(words[1]), words[2].to_string()));
        }
    }
    (snap.expect("snapshot line"), out)
}

fn decoded(dir: &Path, after: i64) -> Vec<(i64, String)> {
    let r = read_log(dir, after).unwrap();
    assert!(r.torn.is_none(), "{dir:?}: {:?}", r.torn);
    r.entries
        .iter()
        .map(|e| {
            (
                e.header.zxid,
                OpCode::from_i32(e.header.op).unwrap().name().to_string(),
            )
        })
        .collect()
}

#[test]
fn standalone_logs_decode_entry_by_entry() {
    let v2 = fixtures().join("standalone/version-2");
    let files = log_files(&v2).unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|(z, p)| (*z, p.file_name().unwrap().to_owned()))
        .collect();
    assert_eq!(names, vec![(1, "log.1".into()), (0xc, "log.c".into())]);
    let want1 = expected_log("standalone/version-2/log.1");
    let want_c = expected_log("standalone/version-2/log.c");
    assert_eq!(want1.len(), 11);
    assert_eq!(want_c.len(), 8);
    let all: Vec<_> = want1.iter().chain(&want_c).cloned().collect();
    assert_eq!(decoded(&v2, 0), all);
    assert_eq!(decoded(&v2, 0xb), want_c);
    assert_eq!(decoded(&v2, 0x13), vec![]);
    let r = read_log(&v2, 0).unwrap();
    let first = &r.entries[0];
    assert_eq!(first.header.session_id, 0x1000004f17c0000);
    assert_eq!(first.digest.unwrap().tree_digest, 1371985504);
}

#[test]
fn every_fixture_datadir_replays_what_zkdump_replays() {
    for dir in [
        "standalone",
        "ensemble/s1",
        "ensemble/s2",
        "ensemble/s3",
        "ensemble/s4",
    ] {
        let (snap, want) = expected_replay(dir);
        let got = decoded(&fixtures().join(dir).join("version-2"), snap);
        assert_eq!(got, want, "{dir}");
    }
}

#[test]
fn dump_of_a_real_log() {
    let mut s = String::new();
    dump(&fixtures().join("standalone/version-2/log.1"), true, &mut s).unwrap();
    let lines: Vec<&str> = s.lines().collect();
    assert!(lines[0]
        .starts_with("ZooKeeper Transactional Log File with dbid 0 txnlog format version 2"));
    assert_eq!(lines.len(), 1 + 11 + 1, "{s}");
    assert_eq!(
        lines[1],
        "2026-11-21T20:38:39.911Z session 0x1000004f17c0000 cxid 0x0 zxid 0x1 createSession \
         timeOut=10000 digest 2:1371985504"
    );
    assert!(lines[2].contains("zxid 0x2 create path=/app data=\"hello\" acl=[world:anyone:cdrwa] ephemeral=false parentCVersion=1"), "{}", lines[2]);
    assert!(
        lines[9].contains("multi [create path=/app/m2"),
        "{}",
        lines[9]
    );
    assert!(lines[9].contains("error err=-103]"), "{}", lines[9]);
    assert!(
        lines[12].starts_with(
            "EOF reached after 11 txns, zxids 0x1..=0xb (logical end at byte 1174 of 1238"
        ),
        "{}",
        lines[12]
    );

    let mut s = String::new();
    dump(
        &fixtures().join("standalone/version-2/log.1"),
        false,
        &mut s,
    )
    .unwrap();
    assert!(s.contains("data=(5 bytes)"), "{s}");

    let mut s = String::new();
    let err = dump(
        &fixtures().join("standalone/version-2/snapshot.0"),
        false,
        &mut s,
    )
    .unwrap_err();
    assert!(err.to_string().contains("bad magic"), "{err}");
}
