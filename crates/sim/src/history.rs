//! Histories recorded outside the simulation (the real-process fault harness in
//! `tests/faults/`), judged by the same checker as the simulation's. One operation a line,
//! times in microseconds, `-` for an end never seen:
//!
//! ```text
//! R <key> <client> <start> <end> read <value> <version>
//! R <key> <client> <start> <end> write <value> ok|unknown
//! R <key> <client> <start> <end> cas <version> <value> ok|badversion|unknown
//! S <client> <start> <end> <sequence number>      a sequential create that returned
//! F <sequence number>                             listed by the final read
//! ```
//! Registers start at value 0, version 0. Blank lines and lines starting with `#` are skipped.

use std::collections::{BTreeMap, BTreeSet};

use crate::linear::{check_register, check_sequential, Call, Created, Op, Ret, Verdict};

/// What a judged history held.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Judged {
    pub registers: usize,
    pub operations: usize,
    pub unknown: usize,
    pub created: usize,
    pub undecided: usize,
}

/// Parse and judge a history; `Err` says what is wrong with it (a violation, or a line that
/// does not parse).
pub fn judge(text: &str, budget: u64) -> Result<Judged, String> {
    let mut regs: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    let mut created = Vec::new();
    let mut listed = BTreeSet::new();
    let mut listing = false;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        let t: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> Result<i64, String> {
            t.get(i)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(&format!("field {} is not a number", i + 1)))
        };
        let end = |i: usize| -> Result<Option<u64>, String> {
            match t.get(i) {
                Some(&"-") => Ok(None),
                _ => num(i).map(|v| Some(v as u64)),
            }
        };
        match t.first() {
            Some(&"R") => {
                let key = t.get(1).ok_or_else(|| bad("no key"))?.to_string();
                let client = num(2)? as usize;
                let start = num(3)? as u64;
                let end = end(4)?;
                let status = |s: Option<&&str>| match s {
                    Some(&"ok") => Ok(Ret::Ok),
                    Some(&"badversion") => Ok(Ret::BadVersion),
                    Some(&"unknown") => Ok(Ret::Unknown),
                    _ => Err(bad("the outcome is not ok, badversion or unknown")),
                };
                let (call, ret) = match t.get(5) {
                    Some(&"read") => (Call::Read, Ret::Read(num(6)? as u64, num(7)? as i32)),
                    Some(&"write") => (Call::Write(num(6)? as u64), status(t.get(7))?),
                    Some(&"cas") => (
                        Call::Cas {
                            version: num(6)? as i32,
                            value: num(7)? as u64,
                        },
                        status(t.get(8))?,
                    ),
                    _ => return Err(bad("not read, write or cas")),
                };
                let ret = if end.is_none() { Ret::Unknown } else { ret };
                regs.entry(key).or_default().push(Op {
                    client,
                    call,
                    ret,
                    start,
                    end: end.unwrap_or(u64::MAX),
                });
            }
            Some(&"S") => created.push(Created {
                client: num(1)? as usize,
                start: num(2)? as u64,
                end: num(3)? as u64,
                seq: num(4)?,
            }),
            Some(&"F") => {
                listing = true;
                listed.insert(num(1)?);
            }
            _ => return Err(bad("not an R, S or F line")),
        }
    }
    let mut judged = Judged {
        registers: regs.len(),
        created: created.len(),
        ..Judged::default()
    };
    for (key, ops) in &regs {
        judged.operations += ops.len();
        judged.unknown += ops.iter().filter(|o| o.ret == Ret::Unknown).count();
        match check_register(ops, (0, 0), budget) {
            Verdict::Linearizable => {}
            Verdict::Undecided => judged.undecided += 1,
            Verdict::Violation(why) => return Err(format!("register {key}: {why}")),
        }
    }
    check_sequential(&created)?;
    if listing {
        if let Some(lost) = created.iter().find(|c| !listed.contains(&c.seq)) {
            return Err(format!(
                "the acknowledged sequential create {lost:?} is missing from the final listing"
            ));
        }
    }
    Ok(judged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_history_passes_and_is_counted() {
        let h = "# a run\n\
                 R /r0 0 0 10 write 5 ok\n\
                 R /r0 1 12 20 read 5 1\n\
                 R /r0 1 21 - cas 1 6 unknown\n\
                 S 0 0 5 1\nS 1 6 9 2\nF 1\nF 2\n";
        let j = judge(h, 100_000).unwrap();
        assert_eq!(
            (j.registers, j.operations, j.unknown, j.created),
            (1, 3, 1, 2)
        );
    }

    #[test]
    fn a_stale_read_a_lost_create_and_a_duplicate_are_caught() {
        let stale = "R /r0 0 0 10 write 5 ok\nR /r0 1 12 20 read 0 0\n";
        assert!(judge(stale, 100_000)
            .unwrap_err()
            .contains("no linearization"));
        let lost = "S 0 0 5 1\nS 1 6 9 2\nF 1\n";
        assert!(judge(lost, 100_000).unwrap_err().contains("missing"));
        let dup = "S 0 0 5 7\nS 1 6 9 7\n";
        assert!(judge(dup, 100_000).unwrap_err().contains("twice"));
    }

    #[test]
    fn a_malformed_line_is_named() {
        let e = judge("R /r0 0 zero 10 write 5 ok\n", 10).unwrap_err();
        assert!(e.starts_with("line 1:"), "{e}");
    }
}
