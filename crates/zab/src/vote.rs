//! [`Vote`] and Fast Leader Election's total order (`election.md` §4,
//! `FastLeaderElection.totalOrderPredicate`): a vote is better if its proposed leader has a
//! higher Zab epoch, then a higher zxid, then a higher sid. All comparisons are on signed
//! 64-bit values, so an observer's `Long.MIN_VALUE` vote loses to every real one.
//!
//! ```text
//! new beats cur  <=>  (new.peerEpoch, new.zxid, new.leader) > (cur.peerEpoch, cur.zxid, cur.leader)
//! ```
//!
//! The round (`electionEpoch`) is not part of the order; the election loop compares rounds
//! itself. Java also requires the new leader to have non-zero weight (to be a voter); that is a
//! membership question left to the caller.

use std::cmp::Ordering;

use crate::ids::{Epoch, Round, ServerId, Zxid};

/// A proposal for leader: who, how far its log goes, in which round and Zab epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    pub leader: ServerId,
    pub zxid: Zxid,
    pub round: Round,
    pub peer_epoch: Epoch,
}

impl Vote {
    /// The vote an observer (or a non-voting participant's leader field) sends: every field
    /// `Long.MIN_VALUE` except the round.
    pub fn observer(round: Round) -> Vote {
        Vote {
            leader: ServerId::NONE,
            zxid: Zxid(i64::MIN),
            round,
            peer_epoch: Epoch(i64::MIN),
        }
    }

    /// Whether `self` (a newly received vote) wins over `current` in ZooKeeper's total order.
    /// Strict: an identical proposal does not win.
    pub fn beats(&self, current: &Vote) -> bool {
        total_order(self, current) == Ordering::Greater
    }
}

/// ZooKeeper's total order on votes: peer epoch, then zxid, then leader sid. Rounds are ignored.
pub fn total_order(a: &Vote, b: &Vote) -> Ordering {
    (a.peer_epoch, a.zxid, a.leader).cmp(&(b.peer_epoch, b.zxid, b.leader))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(epoch: i64, zxid: i64, sid: i64) -> Vote {
        Vote {
            leader: ServerId(sid),
            zxid: Zxid(zxid),
            round: Round(1),
            peer_epoch: Epoch(epoch),
        }
    }

    #[test]
    fn epoch_wins_over_zxid_and_sid() {
        assert!(v(2, 0, 1).beats(&v(1, 0x1_0000_0012, 3)));
        assert!(!v(1, 0x1_0000_0012, 3).beats(&v(2, 0, 1)));
    }

    #[test]
    fn zxid_breaks_epoch_ties_then_sid() {
        assert!(v(1, 0x1_0000_0009, 1).beats(&v(1, 0x1_0000_0000, 3)));
        assert!(v(0, 0, 3).beats(&v(0, 0, 2)));
        assert!(!v(0, 0, 2).beats(&v(0, 0, 3)));
    }

    #[test]
    fn equal_votes_do_not_beat_each_other_and_rounds_are_ignored() {
        let a = v(1, 5, 2);
        let mut b = a;
        b.round = Round(9);
        assert!(!a.beats(&b) && !b.beats(&a));
        assert_eq!(total_order(&a, &b), Ordering::Equal);
    }

    #[test]
    fn comparisons_are_signed() {
        let observer = Vote::observer(Round(1));
        assert!(v(0, 0, 1).beats(&observer));
        assert!(!observer.beats(&v(0, -1, 1)));
        // A zxid of -1 ("database missing") loses to zxid 0 in the same epoch.
        assert!(v(0, 0, 1).beats(&v(0, -1, 2)));
    }

    #[test]
    fn the_capture_s_pitfall_vote_order() {
        // election.md §5: sid 3 (epoch 0, zxid 0) adopted sid 1's stale vote (epoch 1,
        // zxid 0x100000009), which beats its own and the established leader 2's (epoch 1, zxid 0).
        let own = v(0, 0, 3);
        let stale = v(1, 0x1_0000_0009, 1);
        let leader = v(1, 0, 2);
        assert!(stale.beats(&own));
        assert!(stale.beats(&leader));
        let mut votes = [leader, own, stale];
        votes.sort_by(total_order);
        assert_eq!(votes, [own, leader, stale]);
    }
}
