//! How the leader brings one learner up to date (`zab.md` §5.2, `LearnerHandler.syncFollower`
//! and `queueCommittedProposals`): from the learner's last zxid and the leader's committed
//! history, choose DIFF, TRUNC or SNAP and the committed txns to send after it. Pure: the
//! leader passes its in-memory committed window and, for older txns, a [`TxnLogReader`].
//!
//! ```text
//! min, max = first, last zxid of the committed window (both = lastProcessed if it is empty)
//! new-epoch peer = peer zxid has counter 0
//! 1 forceSnapshotSync                          SNAP
//! 2 peer == lastProcessed                      DIFF peer, nothing queued
//! 3 peer > max, not new-epoch                  TRUNC max
//! 4 min <= peer <= max                         walk the window
//! 5 peer < min, the log holds peer exactly     walk the log up to min, then the window;
//!                                              a gap before min: SNAP
//! 6 otherwise                                  SNAP lastProcessed
//! walk: skip zxids < peer; at the first other one
//!       == peer           DIFF max
//!       new-epoch peer    DIFF max
//!       > peer            same epoch: TRUNC (previous zxid); else give up: SNAP
//!       then queue PROPOSAL+COMMIT for every later txn
//! ```
//!
//! Invariant: the txns queued are strictly increasing and all above what the learner keeps
//! after the first packet (its zxid for DIFF, the TRUNC point, or the SNAP zxid).

use std::collections::VecDeque;

use zooid_proto::TxnEntry;

use crate::ids::Zxid;

/// Committed txns older than the leader's in-memory window, from its txn log (`zab.md` §5.1:
/// Java reads them only within a size budget of the newest snapshot).
pub trait TxnLogReader {
    /// The committed txns with `from <= zxid <= to`, in order, **starting with `from`
    /// itself**; `None` if the log does not hold `from` or reading is not worth it (the leader
    /// then sends SNAP).
    fn committed_range(&self, from: Zxid, to: Zxid) -> Option<Vec<TxnEntry>>;
}

/// A leader without a readable txn log: rule 5 always falls back to SNAP.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTxnLog;

impl TxnLogReader for NoTxnLog {
    fn committed_range(&self, _from: Zxid, _to: Zxid) -> Option<Vec<TxnEntry>> {
        None
    }
}

/// The first packet of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStart {
    /// Keep everything, then replay the queued txns. The zxid is informational.
    Diff(Zxid),
    /// Drop every txn above this zxid first.
    Trunc(Zxid),
    /// Replace the database with the snapshot stream that follows, taken at this zxid.
    Snap(Zxid),
}

/// What to send one learner before the live traffic and NEWLEADER.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncPlan {
    pub start: SyncStart,
    /// Committed txns to send as PROPOSAL + COMMIT pairs, in order (empty for SNAP).
    pub txns: Vec<TxnEntry>,
}

/// The leader's side of the decision.
pub struct SyncSource<'a> {
    /// The zxid the leader's tree reflects (`lastProcessedZxid`).
    pub last_processed: Zxid,
    /// The in-memory committed window (`committedLog`), oldest first.
    pub committed: &'a VecDeque<TxnEntry>,
    pub force_snapshot: bool,
    pub log: &'a dyn TxnLogReader,
}

fn zxid_of(e: &TxnEntry) -> Zxid {
    Zxid(e.header.zxid)
}

/// `queueCommittedProposals` state shared by the two walks (`needOpPacket` and the queue).
#[derive(Default)]
struct Walk {
    start: Option<SyncStart>,
    txns: Vec<TxnEntry>,
}

impl Walk {
    /// Returns the last zxid the learner will have after this walk.
    fn walk<'e>(
        &mut self,
        entries: impl Iterator<Item = &'e TxnEntry>,
        peer: Zxid,
        limit: Option<Zxid>,
        last_committed: Zxid,
    ) -> Zxid {
        let new_epoch_peer = peer.is_epoch_start();
        let mut queued = peer;
        let mut prev: Option<Zxid> = None;
        for e in entries {
            let z = zxid_of(e);
            if limit.is_some_and(|l| z > l) {
                break;
            }
            if z < peer {
                prev = Some(z);
                continue;
            }
            if self.start.is_none() {
                if z == peer {
                    self.start = Some(SyncStart::Diff(last_committed));
                    continue;
                }
                if new_epoch_peer {
                    self.start = Some(SyncStart::Diff(last_committed));
                } else {
                    // z > peer: the learner has txns we do not. Java refuses to TRUNC across
                    // an epoch boundary (the learner could not) and sends a snapshot instead.
                    match prev {
                        Some(p) if z.epoch() == peer.epoch() => {
                            self.start = Some(SyncStart::Trunc(p));
                        }
                        _ => return queued,
                    }
                }
            }
            if z <= queued {
                continue;
            }
            self.txns.push(e.clone());
            queued = z;
        }
        if self.start.is_none() && new_epoch_peer {
            self.start = Some(SyncStart::Diff(last_committed));
        }
        queued
    }
}

/// Decide how to sync a learner whose last logged zxid is `peer`.
pub fn plan_sync(peer: Zxid, src: &SyncSource<'_>) -> SyncPlan {
    let lp = src.last_processed;
    let (min, max) = match (src.committed.front(), src.committed.back()) {
        (Some(a), Some(b)) => (zxid_of(a), zxid_of(b)),
        _ => (lp, lp),
    };
    let snap = SyncPlan {
        start: SyncStart::Snap(lp),
        txns: Vec::new(),
    };
    if src.force_snapshot {
        return snap;
    }
    if peer == lp {
        return SyncPlan {
            start: SyncStart::Diff(peer),
            txns: Vec::new(),
        };
    }
    if peer > max && !peer.is_epoch_start() {
        return SyncPlan {
            start: SyncStart::Trunc(max),
            txns: Vec::new(),
        };
    }
    let mut w = Walk::default();
    if min <= peer && peer <= max {
        w.walk(src.committed.iter(), peer, None, max);
    } else if peer < min {
        let Some(old) = src.log.committed_range(peer, min) else {
            return snap;
        };
        if old.first().map(zxid_of) != Some(peer) {
            return snap;
        }
        let reached = w.walk(old.iter(), peer, Some(min), max);
        if reached < min {
            // A gap between the log and the window: start over with a snapshot.
            return snap;
        }
        w.walk(src.committed.iter(), reached, None, max);
    } else {
        return snap;
    }
    match w.start {
        Some(start) => SyncPlan {
            start,
            txns: w.txns,
        },
        // No DIFF or TRUNC could be chosen (a TRUNC across epochs): Java falls back to SNAP.
        None => snap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{entry, z};

    fn window(zxids: &[Zxid]) -> VecDeque<TxnEntry> {
        zxids.iter().map(|&x| entry(x)).collect()
    }

    fn plan(peer: Zxid, lp: Zxid, w: &VecDeque<TxnEntry>) -> (SyncStart, Vec<Zxid>) {
        plan_with(peer, lp, w, &NoTxnLog)
    }

    fn plan_with(
        peer: Zxid,
        lp: Zxid,
        w: &VecDeque<TxnEntry>,
        log: &dyn TxnLogReader,
    ) -> (SyncStart, Vec<Zxid>) {
        let p = plan_sync(
            peer,
            &SyncSource {
                last_processed: lp,
                committed: w,
                force_snapshot: false,
                log,
            },
        );
        (p.start, p.txns.iter().map(zxid_of).collect())
    }

    #[test]
    fn equal_to_last_processed_is_an_empty_diff() {
        // The capture's first sync: a fresh leader and a fresh learner, DIFF 0x0.
        let w = VecDeque::new();
        assert_eq!(
            plan(Zxid::ZERO, Zxid::ZERO, &w),
            (SyncStart::Diff(Zxid::ZERO), vec![])
        );
    }

    #[test]
    fn inside_the_window_is_a_diff_with_the_missing_txns() {
        // The capture's restarted follower: peer 0x100000009, window 1..=0x12.
        let zs: Vec<Zxid> = (1..=0x12).map(|c| z(1, c)).collect();
        let w = window(&zs);
        let (start, txns) = plan(z(1, 9), z(1, 0x12), &w);
        assert_eq!(start, SyncStart::Diff(z(1, 0x12)));
        assert_eq!(txns, zs[9..].to_vec());
    }

    #[test]
    fn ahead_of_the_window_is_a_trunc() {
        let w = window(&[z(1, 1), z(1, 2), z(1, 3)]);
        assert_eq!(
            plan(z(1, 5), z(2, 0), &w),
            (SyncStart::Trunc(z(1, 3)), vec![])
        );
        // Rule 3 even crosses epochs: only the walk refuses to.
        assert_eq!(
            plan(z(2, 4), z(3, 0), &w),
            (SyncStart::Trunc(z(1, 3)), vec![])
        );
    }

    #[test]
    fn a_divergent_txn_inside_the_window_truncates_in_its_epoch() {
        // The peer logged (1,4), which the next leader never had; the first txn above it is
        // (2,1), of another epoch: no TRUNC across epochs, so SNAP ("no TRUNC across epochs").
        let w = window(&[z(1, 1), z(1, 2), z(1, 3), z(2, 1), z(2, 2)]);
        assert_eq!(
            plan(z(1, 4), z(2, 2), &w),
            (SyncStart::Snap(z(2, 2)), vec![])
        );
        // The same shape within one epoch (the rule as Java writes it, even if one epoch's
        // zxids come from one leader): TRUNC to the txn before, then send the rest.
        let w = window(&[z(1, 1), z(1, 2), z(1, 6), z(1, 7)]);
        assert_eq!(
            plan(z(1, 4), z(1, 7), &w),
            (SyncStart::Trunc(z(1, 2)), vec![z(1, 6), z(1, 7)])
        );
    }

    #[test]
    fn a_new_epoch_peer_gets_a_diff_of_everything_above() {
        let w = window(&[z(1, 1), z(2, 1), z(2, 2)]);
        assert_eq!(
            plan(z(2, 0), z(2, 2), &w),
            (SyncStart::Diff(z(2, 2)), vec![z(2, 1), z(2, 2)])
        );
        // Above the window but a new-epoch zxid: not a TRUNC; nothing to walk: SNAP.
        assert_eq!(
            plan(z(3, 0), z(2, 2), &w),
            (SyncStart::Snap(z(2, 2)), vec![])
        );
    }

    #[test]
    fn below_the_window_without_a_log_is_a_snap() {
        // The capture's second sync: empty window, lastProcessed 0x100000000, fresh peer.
        let w = VecDeque::new();
        assert_eq!(
            plan(Zxid::ZERO, z(1, 0), &w),
            (SyncStart::Snap(z(1, 0)), vec![])
        );
        let w = window(&[z(1, 5), z(1, 6)]);
        assert_eq!(
            plan(z(1, 2), z(1, 6), &w),
            (SyncStart::Snap(z(1, 6)), vec![])
        );
    }

    struct Log(Vec<Zxid>);
    impl TxnLogReader for Log {
        fn committed_range(&self, from: Zxid, to: Zxid) -> Option<Vec<TxnEntry>> {
            let i = self.0.iter().position(|&x| x == from)?;
            Some(
                self.0[i..]
                    .iter()
                    .take_while(|&&x| x <= to)
                    .map(|&x| entry(x))
                    .collect(),
            )
        }
    }

    #[test]
    fn below_the_window_the_txn_log_can_still_give_a_diff() {
        let w = window(&[z(1, 5), z(1, 6)]);
        let log = Log(vec![z(1, 1), z(1, 2), z(1, 3), z(1, 4), z(1, 5)]);
        assert_eq!(
            plan_with(z(1, 2), z(1, 6), &w, &log),
            (
                SyncStart::Diff(z(1, 6)),
                vec![z(1, 3), z(1, 4), z(1, 5), z(1, 6)]
            )
        );
        // The log does not hold the peer's zxid: SNAP.
        assert_eq!(
            plan_with(z(1, 0), z(1, 6), &w, &Log(vec![z(1, 1)])).0,
            SyncStart::Snap(z(1, 6))
        );
        // A gap between the log's end and the window's start: SNAP.
        let gap = Log(vec![z(1, 1), z(1, 2), z(1, 3)]);
        assert_eq!(
            plan_with(z(1, 2), z(1, 6), &w, &gap).0,
            SyncStart::Snap(z(1, 6))
        );
    }

    #[test]
    fn force_snapshot_wins() {
        let w = window(&[z(1, 1)]);
        let p = plan_sync(
            z(1, 1),
            &SyncSource {
                last_processed: z(1, 1),
                committed: &w,
                force_snapshot: true,
                log: &NoTxnLog,
            },
        );
        assert_eq!(p.start, SyncStart::Snap(z(1, 1)));
    }
}
