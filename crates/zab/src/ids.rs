//! The numbers the quorum protocols are made of: [`Zxid`], [`Epoch`], [`Round`] and
//! [`ServerId`]. All are signed 64-bit, as in Java, because the wire carries `long`s and uses
//! negative values as markers (`-1` = "no zxid", `Long.MIN_VALUE` = "not a voter").
//!
//! ```text
//! zxid (int64) = epoch << 32 | counter
//!   63            32 31             0
//!  +----------------+----------------+
//!  |     epoch      |    counter     |   counter 0 = "new epoch" marker, never a txn;
//!  +----------------+----------------+   the first txn of an epoch has counter 1
//! ```
//!
//! Display follows ZooKeeper's logs: zxids, epochs and rounds in hex with `0x` (two's
//! complement for negatives, like `Long.toHexString`), server ids in decimal.

use std::fmt;

/// A ZooKeeper transaction id. Ordered as a signed 64-bit number, like Java's `long`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Zxid(pub i64);

impl Zxid {
    /// `-1`: "none" (UPTODATE, REQUEST and REVALIDATE carry it; a vote with it means "my
    /// database may be missing").
    pub const NONE: Zxid = Zxid(-1);
    pub const ZERO: Zxid = Zxid(0);

    /// `epoch << 32 | counter`, as `ZxidUtils.makeZxid`.
    pub fn new(epoch: Epoch, counter: u32) -> Zxid {
        Zxid((epoch.0 << 32) | i64::from(counter))
    }

    /// The "new epoch" marker `epoch << 32` (LEADERINFO, NEWLEADER, their ACKs).
    pub fn epoch_start(epoch: Epoch) -> Zxid {
        Zxid::new(epoch, 0)
    }

    /// The high 32 bits, sign-extended (`zxid >> 32`, as `ZxidUtils.getEpochFromZxid`).
    pub fn epoch(self) -> Epoch {
        Epoch(self.0 >> 32)
    }

    /// The low 32 bits.
    pub fn counter(self) -> u32 {
        self.0 as u32
    }

    /// Whether this is an epoch's start marker (counter 0), which never names a txn.
    pub fn is_epoch_start(self) -> bool {
        self.counter() == 0
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0 as u64)
    }
}

/// A Zab epoch (`acceptedEpoch`, `currentEpoch`, a vote's `peerEpoch`). In a zxid it is 32
/// bits; as a vote field it is a `long` and an observer sends `Long.MIN_VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epoch(pub i64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0 as u64)
    }
}

/// An election round: the notification's `electionEpoch`, the sender's `logicalclock`.
/// Not a Zab [`Epoch`]: the two are different counters that happen to share a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Round(pub i64);

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0 as u64)
    }
}

/// A server id (`sid`, the `N` of `server.N`) as it travels between peers: a signed `long`.
/// Votes of non-voters name [`ServerId::NONE`] as their leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerId(pub i64);

impl ServerId {
    /// `Long.MIN_VALUE`: the leader an observer or non-voting participant proposes.
    pub const NONE: ServerId = ServerId(i64::MIN);
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which peer keeps a connection between `a` and `b` (election port, `election.md` §2.3):
/// only the higher sid may own it, so the lower one dials only to make the higher dial back.
pub fn connection_owner(a: ServerId, b: ServerId) -> ServerId {
    a.max(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_splits_into_epoch_and_counter() {
        let z = Zxid(0x1_0000_0012);
        assert_eq!(z.epoch(), Epoch(1));
        assert_eq!(z.counter(), 0x12);
        assert_eq!(Zxid::new(Epoch(1), 0x12), z);
        assert!(Zxid::epoch_start(Epoch(2)).is_epoch_start());
        assert_eq!(Zxid::epoch_start(Epoch(2)), Zxid(0x2_0000_0000));
        assert_eq!(Zxid::NONE.epoch(), Epoch(-1));
        assert_eq!(Zxid::NONE.counter(), u32::MAX);
        assert_eq!(Zxid(i64::MIN).epoch(), Epoch(-(1 << 31)));
    }

    #[test]
    fn display_is_zookeeper_hex() {
        assert_eq!(Zxid(0x1_0000_0009).to_string(), "0x100000009");
        assert_eq!(Zxid::NONE.to_string(), "0xffffffffffffffff");
        assert_eq!(Zxid(i64::MIN).to_string(), "0x8000000000000000");
        assert_eq!(Epoch(1).to_string(), "0x1");
        assert_eq!(Round(2).to_string(), "0x2");
        assert_eq!(ServerId(3).to_string(), "3");
        assert_eq!(ServerId::NONE.to_string(), "-9223372036854775808");
    }

    #[test]
    fn zxids_order_as_signed_longs() {
        assert!(Zxid::NONE < Zxid::ZERO);
        assert!(Zxid(0x1_0000_0012) < Zxid(0x2_0000_0001));
        assert_eq!(connection_owner(ServerId(1), ServerId(3)), ServerId(3));
    }
}
