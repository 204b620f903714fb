//! A linearizability checker for registers with versions (a znode's data and its Stat's
//! version), in the manner of Wing & Gong as Lowe and Porcupine refine it: search for an
//! order of the operations that respects real time (an operation that returned before another
//! was invoked comes first) and that a single register explains, undoing a step when the
//! next return cannot be reached, and remembering (linearized set, state) pairs already
//! tried so no dead end is walked twice.
//!
//! An operation whose outcome the client never learned (its connection closed first) may
//! have taken effect at any time after its invocation, or never: it has no return, and the
//! search may place it anywhere after its call, or leave it out.
//!
//! Besides [`check_register`], [`check_sequential`] judges the names sequential creates
//! returned: unique, and increasing in real time.

use std::collections::HashSet;

/// What a client asked of one register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// getData (after a sync, so the read is ordered with writes).
    Read,
    /// setData with version -1.
    Write(u64),
    /// setData with an expected version.
    Cas { version: i32, value: u64 },
}

/// What the client heard back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// The value and its version.
    Read(u64, i32),
    Ok,
    BadVersion,
    /// No answer: the operation may or may not have happened.
    Unknown,
}

/// One operation on one register, with its invocation and return times (`end` is ignored
/// for [`Ret::Unknown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub client: usize,
    pub call: Call,
    pub ret: Ret,
    pub start: u64,
    pub end: u64,
}

/// A register's state: its value and version.
pub type State = (u64, i32);

/// The state after `call`, if it can return `ret` from `s`.
fn step(s: State, call: Call, ret: Ret) -> Option<State> {
    match (call, ret) {
        (Call::Read, Ret::Read(v, ver)) => ((v, ver) == s).then_some(s),
        (Call::Read, Ret::Unknown) => Some(s),
        (Call::Write(v), Ret::Ok | Ret::Unknown) => Some((v, s.1 + 1)),
        (Call::Cas { version, value }, Ret::Ok | Ret::Unknown) => {
            (version == s.1).then_some((value, s.1 + 1))
        }
        (Call::Cas { version, .. }, Ret::BadVersion) => (version != s.1).then_some(s),
        _ => None,
    }
}

/// Why a history is not linearizable (or could not be decided within the budget).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order explains it; the operations the search could never get past.
    Violation(String),
    /// The search gave up after the step budget.
    Undecided,
}

/// Whether `ops` on one register starting in `init` is linearizable; at most `budget` search
/// steps.
pub fn check_register(ops: &[Op], init: State, budget: u64) -> Verdict {
    // Unknown operations that could not have changed anything are left out; unknown writes
    // may take effect or not, which the search tries by placing them or reaching the end
    // without them.
    let ops: Vec<Op> = ops
        .iter()
        .copied()
        .filter(|o| !(o.ret == Ret::Unknown && o.call == Call::Read))
        .collect();
    let n = ops.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    // Events: (time, is_return, op). Calls sort before returns at the same time, so
    // operations that touch at an instant count as concurrent.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        events.push((o.start, false, i));
        let end = if o.ret == Ret::Unknown {
            u64::MAX
        } else {
            o.end
        };
        events.push((end, true, i));
    }
    events.sort();
    // A doubly linked list over the events, with a head sentinel at index 0.
    let len = events.len() + 1;
    let mut next: Vec<usize> = (1..=len).collect();
    let mut prev: Vec<usize> = (0..len).map(|i| i.wrapping_sub(1)).collect();
    next[len - 1] = usize::MAX;
    let mut ret_at = vec![0; n];
    for (k, &(_, is_ret, i)) in events.iter().enumerate() {
        if is_ret {
            ret_at[i] = k + 1;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, k: usize| {
        let (p, nx) = (prev[k], next[k]);
        next[p] = nx;
        if nx != usize::MAX {
            prev[nx] = p;
        }
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, k: usize| {
        let (p, nx) = (prev[k], next[k]);
        next[p] = k;
        if nx != usize::MAX {
            prev[nx] = k;
        }
    };
    let words = n.div_ceil(64);
    let mut done = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut state = init;
    let mut entry = next[0];
    let mut known_left = ops.iter().filter(|o| o.ret != Ret::Unknown).count();
    let mut steps = 0u64;
    let mut deepest = 0usize;
    let mut deepest_done = done.clone();
    loop {
        // Only unknown operations left: they need not have happened.
        if known_left == 0 {
            return Verdict::Linearizable;
        }
        steps += 1;
        if steps > budget {
            return Verdict::Undecided;
        }
        let call = (entry != usize::MAX)
            .then(|| events[entry - 1])
            .filter(|&(_, is_ret, _)| !is_ret);
        if let Some((_, _, i)) = call {
            if let Some(s) = step(state, ops[i].call, ops[i].ret) {
                let mut d = done.clone();
                d[i / 64] |= 1 << (i % 64);
                if seen.insert((d.clone(), s)) {
                    stack.push((entry, state));
                    state = s;
                    done = d;
                    if stack.len() > deepest {
                        deepest = stack.len();
                        deepest_done.clone_from(&done);
                    }
                    known_left -= usize::from(ops[i].ret != Ret::Unknown);
                    unlink(&mut next, &mut prev, entry);
                    unlink(&mut next, &mut prev, ret_at[i]);
                    entry = next[0];
                    continue;
                }
            }
            entry = next[entry];
            continue;
        }
        // A return reached with its call not linearized (or nothing left to try): undo the
        // last step and try what follows it.
        let Some((k, s)) = stack.pop() else {
            return violation(&ops, deepest, &deepest_done);
        };
        let j = events[k - 1].2;
        state = s;
        done[j / 64] &= !(1 << (j % 64));
        known_left += usize::from(ops[j].ret != Ret::Unknown);
        relink(&mut next, &mut prev, ret_at[j]);
        relink(&mut next, &mut prev, k);
        entry = next[k];
    }
}

/// The operations around the one the deepest attempt could not place: the earliest-ending
/// operation it left out, and a dozen invoked before and after it.
fn violation(ops: &[Op], deepest: usize, done: &[u64]) -> Verdict {
    let placed = |i: usize| done[i / 64] & (1 << (i % 64)) != 0;
    let stuck = (0..ops.len())
        .filter(|&i| !placed(i) && ops[i].ret != Ret::Unknown)
        .min_by_key(|&i| ops[i].end);
    let mut text = format!(
        "no linearization of {} operations (the longest order found placed {deepest})",
        ops.len()
    );
    let Some(stuck) = stuck else {
        return Verdict::Violation(text);
    };
    let o = ops[stuck];
    text.push_str(&format!(
        "; none can place client {}'s {:?} -> {:?} [{}, {}]; the operations around it:",
        o.client, o.call, o.ret, o.start, o.end
    ));
    let mut near: Vec<usize> = (0..ops.len()).collect();
    near.sort_by_key(|&i| (ops[i].start, i));
    let from = near
        .iter()
        .position(|&i| i == stuck)
        .unwrap_or(0)
        .saturating_sub(12);
    for &i in near.iter().skip(from).take(25) {
        let p = ops[i];
        let end = if p.ret == Ret::Unknown {
            String::from("?")
        } else {
            p.end.to_string()
        };
        let mark = if i == stuck { "  <-" } else { "" };
        text.push_str(&format!(
            "\n    client {} [{}, {}] {:?} -> {:?}{mark}",
            p.client, p.start, end, p.call, p.ret
        ));
    }
    Verdict::Violation(text)
}

/// A sequential create that returned: which client, when, and the sequence number the name
/// ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    pub client: usize,
    pub start: u64,
    pub end: u64,
    pub seq: i64,
}

/// Sequence numbers are unique, and a create that returned before another was invoked got
/// the smaller one.
pub fn check_sequential(created: &[Created]) -> Result<(), String> {
    let mut by_seq: Vec<&Created> = created.iter().collect();
    by_seq.sort_by_key(|c| c.seq);
    for w in by_seq.windows(2) {
        if w[0].seq == w[1].seq {
            return Err(format!(
                "sequence number {} returned twice: {:?} and {:?}",
                w[0].seq, w[0], w[1]
            ));
        }
    }
    let mut by_end: Vec<&Created> = created.iter().collect();
    by_end.sort_by_key(|c| c.end);
    // Every create that ended before `b` started must have a smaller number.
    let mut max_before = (i64::MIN, None);
    let mut by_start: Vec<&Created> = created.iter().collect();
    by_start.sort_by_key(|c| c.start);
    let mut k = 0;
    for b in by_start {
        while k < by_end.len() && by_end[k].end < b.start {
            if by_end[k].seq > max_before.0 {
                max_before = (by_end[k].seq, Some(by_end[k]));
            }
            k += 1;
        }
        if max_before.0 > b.seq {
            return Err(format!(
                "sequence numbers go back in real time: {:?} returned before {:?} began",
                max_before.1, b
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, start: u64, end: u64, call: Call, ret: Ret) -> Op {
        Op {
            client,
            call,
            ret,
            start,
            end,
        }
    }

    const BUDGET: u64 = 1_000_000;

    #[test]
    fn concurrent_writes_and_reads_that_agree_pass() {
        let h = [
            op(0, 0, 10, Call::Write(1), Ret::Ok),
            op(1, 5, 15, Call::Write(2), Ret::Ok),
            op(2, 12, 20, Call::Read, Ret::Read(1, 2)),
            op(
                0,
                21,
                30,
                Call::Cas {
                    version: 2,
                    value: 3,
                },
                Ret::Ok,
            ),
            op(1, 31, 40, Call::Read, Ret::Read(3, 3)),
        ];
        assert_eq!(check_register(&h, (0, 0), BUDGET), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_is_rejected() {
        let h = [
            op(0, 0, 10, Call::Write(1), Ret::Ok),
            op(1, 11, 20, Call::Read, Ret::Read(0, 0)),
        ];
        assert!(matches!(
            check_register(&h, (0, 0), BUDGET),
            Verdict::Violation(_)
        ));
    }

    #[test]
    fn a_lost_write_is_rejected() {
        // Acknowledged, then a later read shows the register as if it never happened.
        let h = [
            op(0, 0, 10, Call::Write(7), Ret::Ok),
            op(0, 11, 20, Call::Write(8), Ret::Ok),
            op(1, 30, 40, Call::Read, Ret::Read(7, 1)),
        ];
        assert!(matches!(
            check_register(&h, (0, 0), BUDGET),
            Verdict::Violation(_)
        ));
    }

    #[test]
    fn a_cas_that_both_won_is_rejected() {
        let h = [
            op(
                0,
                0,
                10,
                Call::Cas {
                    version: 0,
                    value: 1,
                },
                Ret::Ok,
            ),
            op(
                1,
                0,
                10,
                Call::Cas {
                    version: 0,
                    value: 2,
                },
                Ret::Ok,
            ),
        ];
        assert!(matches!(
            check_register(&h, (0, 0), BUDGET),
            Verdict::Violation(_)
        ));
    }

    #[test]
    fn an_unknown_write_may_or_may_not_have_happened() {
        let took = [
            op(0, 0, 0, Call::Write(5), Ret::Unknown),
            op(1, 50, 60, Call::Read, Ret::Read(5, 1)),
        ];
        assert_eq!(check_register(&took, (0, 0), BUDGET), Verdict::Linearizable);
        let did_not = [
            op(0, 0, 0, Call::Write(5), Ret::Unknown),
            op(1, 50, 60, Call::Read, Ret::Read(0, 0)),
        ];
        assert_eq!(
            check_register(&did_not, (0, 0), BUDGET),
            Verdict::Linearizable
        );
        // But not before it was invoked.
        let too_early = [
            op(1, 0, 10, Call::Read, Ret::Read(5, 1)),
            op(0, 20, 0, Call::Write(5), Ret::Unknown),
        ];
        assert!(matches!(
            check_register(&too_early, (0, 0), BUDGET),
            Verdict::Violation(_)
        ));
    }

    #[test]
    fn a_duplicate_sequence_number_is_rejected() {
        let c = |client, start, end, seq| Created {
            client,
            start,
            end,
            seq,
        };
        assert!(check_sequential(&[c(0, 0, 10, 1), c(1, 5, 15, 2), c(0, 20, 30, 3)]).is_ok());
        assert!(check_sequential(&[c(0, 0, 10, 1), c(1, 5, 15, 1)]).is_err());
        // Returned before the other began, yet numbered after it.
        assert!(check_sequential(&[c(0, 0, 10, 5), c(1, 20, 30, 4)]).is_err());
    }
}
