//! Who counts and how long to wait, for the Zab roles ([`crate::Leader`], [`crate::Learner`]):
//! [`QuorumVerifier`] is ZooKeeper's `QuorumMaj` (a strict majority of the voters; observers
//! never count), and [`Timing`] holds `tickTime`, `initLimit` and `syncLimit` (`zab.md` §8).
//!
//! ```text
//! initLimit x tick   connect, epoch handshake, sync until the NEWLEADER ACK (each leader wait)
//! syncLimit x tick   silence allowed once synced; oldest un-ACKed proposal age
//! tick / 2           leader PING period; the quorum check runs every tick
//! ```

use std::collections::BTreeSet;

use crate::ids::ServerId;

/// The static membership (`QuorumMaj`): voters ("participant") and observers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVerifier {
    voters: BTreeSet<ServerId>,
    observers: BTreeSet<ServerId>,
}

impl QuorumVerifier {
    /// Panics if there is no voter or a server is both: configs are validated when parsed.
    pub fn new(voters: BTreeSet<ServerId>, observers: BTreeSet<ServerId>) -> QuorumVerifier {
        assert!(!voters.is_empty(), "a quorum needs at least one voter");
        assert!(
            voters.is_disjoint(&observers),
            "a server cannot be both a voter and an observer"
        );
        QuorumVerifier { voters, observers }
    }

    /// The verifier of a config's members; `None` when none of them votes.
    pub fn of_members(members: &[crate::ConfigMember]) -> Option<QuorumVerifier> {
        let (observers, voters): (Vec<_>, Vec<_>) = members.iter().partition(|m| m.observer);
        let voters: BTreeSet<ServerId> = voters.iter().map(|m| m.sid).collect();
        let observers = observers.iter().map(|m| m.sid).collect();
        (!voters.is_empty()).then(|| QuorumVerifier::new(voters, observers))
    }

    pub fn voters(&self) -> &BTreeSet<ServerId> {
        &self.voters
    }

    pub fn observers(&self) -> &BTreeSet<ServerId> {
        &self.observers
    }

    pub fn is_voter(&self, sid: ServerId) -> bool {
        self.voters.contains(&sid)
    }

    /// Votes needed: a strict majority of the voters.
    pub fn quorum_size(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Whether `acks` (duplicates and non-voters ignored) hold a quorum (`containsQuorum`).
    pub fn has_quorum<'a>(&self, acks: impl IntoIterator<Item = &'a ServerId>) -> bool {
        let voting: BTreeSet<&ServerId> = acks.into_iter().filter(|s| self.is_voter(**s)).collect();
        voting.len() >= self.quorum_size()
    }
}

/// ZooKeeper's timers, in ticks of `tick_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub tick_ms: u64,
    pub init_limit: u32,
    pub sync_limit: u32,
}

impl Timing {
    /// ZooKeeper's sample config: tickTime=2000, initLimit=10, syncLimit=5.
    pub const DEFAULT: Timing = Timing {
        tick_ms: 2000,
        init_limit: 10,
        sync_limit: 5,
    };

    pub fn init_ms(&self) -> u64 {
        self.tick_ms.saturating_mul(u64::from(self.init_limit))
    }

    pub fn sync_ms(&self) -> u64 {
        self.tick_ms.saturating_mul(u64::from(self.sync_limit))
    }

    /// The leader pings every half tick (at least every millisecond).
    pub fn ping_interval_ms(&self) -> u64 {
        (self.tick_ms / 2).max(1)
    }
}

impl Default for Timing {
    fn default() -> Timing {
        Timing::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sids(v: &[i64]) -> BTreeSet<ServerId> {
        v.iter().map(|&s| ServerId(s)).collect()
    }

    #[test]
    fn quorum_counts_distinct_voters_only() {
        let q = QuorumVerifier::new(sids(&[1, 2, 3]), sids(&[4]));
        assert_eq!(q.quorum_size(), 2);
        assert!(!q.has_quorum(&[ServerId(1), ServerId(1)]));
        assert!(!q.has_quorum(&[ServerId(1), ServerId(4), ServerId(9)]));
        assert!(q.has_quorum(&[ServerId(1), ServerId(3)]));
        let five = QuorumVerifier::new(sids(&[1, 2, 3, 4, 5]), sids(&[]));
        assert_eq!(five.quorum_size(), 3);
    }

    #[test]
    fn timers_in_ticks() {
        let t = Timing {
            tick_ms: 100,
            init_limit: 10,
            sync_limit: 5,
        };
        assert_eq!(
            (t.init_ms(), t.sync_ms(), t.ping_interval_ms()),
            (1000, 500, 50)
        );
    }
}
