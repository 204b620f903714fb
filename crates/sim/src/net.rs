//! The simulated network: which links are cut, and the election port's notification
//! transport (the cluster simulation keeps its own quorum links). Nothing here schedules
//! events: each operation returns when something is due, and the simulation puts that on its
//! clock.
//!
//! ```text
//! links          a cut count per pair of members, so overlapping partitions and link cuts
//!                heal independently; a pair is linked when its count is 0
//! election port  per pair random delay (so reordering), loss, duplicates; like
//!                QuorumCnxManager, a one-slot queue per peer while disconnected and a re-send
//!                of the last message on every new connection (so stale votes of older rounds
//!                and incarnations arrive after heals and restarts)
//! ```

use std::collections::BTreeMap;

use zooid_zab::Notification;

use crate::rng::Rng;

// ---- links ----------------------------------------------------------------------------------

/// Cut links between members, as (lower index, higher index) pairs.
#[derive(Debug, Default)]
pub struct Links {
    cuts: BTreeMap<(usize, usize), u32>,
}

impl Links {
    pub fn pair(a: usize, b: usize) -> (usize, usize) {
        (a.min(b), a.max(b))
    }

    pub fn linked(&self, a: usize, b: usize) -> bool {
        !self.cuts.contains_key(&Self::pair(a, b))
    }

    pub fn cut(&mut self, pairs: &[(usize, usize)]) {
        for p in pairs {
            *self.cuts.entry(*p).or_insert(0) += 1;
        }
    }

    /// Lift one cut of `pair`; true when that makes it whole again. A pair that
    /// [`heal_all`](Self::heal_all) already healed stays whole.
    pub fn heal(&mut self, pair: (usize, usize)) -> bool {
        let Some(c) = self.cuts.get_mut(&pair) else {
            return false;
        };
        *c -= 1;
        if *c == 0 {
            self.cuts.remove(&pair);
            return true;
        }
        false
    }

    /// Heal everything; returns the pairs that were cut.
    pub fn heal_all(&mut self) -> Vec<(usize, usize)> {
        std::mem::take(&mut self.cuts).into_keys().collect()
    }
}

/// The pairs a random two-sided partition of `total` members cuts (neither side empty).
pub fn random_partition(rng: &mut Rng, total: usize) -> Vec<(usize, usize)> {
    let mut side = 0u64;
    while side == 0 || side == (1 << total) - 1 {
        side = rng.below(1 << total);
    }
    let mut pairs = Vec::new();
    for a in 0..total {
        for b in a + 1..total {
            if (side >> a) & 1 != (side >> b) & 1 {
                pairs.push((a, b));
            }
        }
    }
    pairs
}

/// A random link between two of `total` members.
pub fn random_link(rng: &mut Rng, total: usize) -> (usize, usize) {
    let a = rng.below(total as u64) as usize;
    let b = (a + 1 + rng.below(total as u64 - 1) as usize) % total;
    Links::pair(a, b)
}

// ---- election port --------------------------------------------------------------------------

/// A notification on its way, to be delivered at `at_ms`.
#[derive(Debug)]
pub struct InFlight {
    pub at_ms: u64,
    pub from: usize,
    pub to: usize,
    pub msg: Notification,
}

/// The election port between every pair of members.
#[derive(Debug)]
pub struct ElectionPort {
    /// A message waiting for its connection (one slot per direction).
    pending: BTreeMap<(usize, usize), Notification>,
    /// The last message sent on each direction, re-sent on a new connection.
    last_sent: BTreeMap<(usize, usize), Notification>,
    max_delay_ms: u64,
    loss_permille: u64,
    dup_permille: u64,
    /// Notifications the network dropped.
    pub lost: u64,
    /// Notifications it delivered twice.
    pub duplicated: u64,
}

impl ElectionPort {
    pub fn new(max_delay_ms: u64, loss_permille: u64, dup_permille: u64) -> ElectionPort {
        ElectionPort {
            pending: BTreeMap::new(),
            last_sent: BTreeMap::new(),
            max_delay_ms,
            loss_permille,
            dup_permille,
            lost: 0,
            duplicated: 0,
        }
    }

    /// A message's random trip time over a link, on this port or a quorum stream.
    pub fn delay(&self, rng: &mut Rng) -> u64 {
        1 + rng.below(self.max_delay_ms)
    }

    fn transmit(
        &mut self,
        rng: &mut Rng,
        now: u64,
        (from, to): (usize, usize),
        msg: Notification,
        out: &mut Vec<InFlight>,
    ) {
        if rng.permille(self.loss_permille) {
            self.lost += 1;
            return;
        }
        let copies = if rng.permille(self.dup_permille) {
            self.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            out.push(InFlight {
                at_ms: now + self.delay(rng),
                from,
                to,
                msg: msg.clone(),
            });
        }
    }

    /// `from` sends `msg` to `to`; `connected` when both are up and their link is whole.
    /// Otherwise the message waits in the one-slot queue, replacing what was there.
    pub fn send(
        &mut self,
        rng: &mut Rng,
        now: u64,
        (from, to): (usize, usize),
        connected: bool,
        msg: Notification,
    ) -> Vec<InFlight> {
        let mut out = Vec::new();
        if connected {
            self.pending.remove(&(from, to));
            self.last_sent.insert((from, to), msg.clone());
            self.transmit(rng, now, (from, to), msg, &mut out);
        } else {
            self.pending.insert((from, to), msg);
        }
        out
    }

    /// A new connection between `a` and `b` (the caller checked both are up and linked): each
    /// side sends its queued message, or else re-sends the last one
    /// (`QuorumCnxManager.SendWorker`).
    pub fn reconnect(&mut self, rng: &mut Rng, now: u64, a: usize, b: usize) -> Vec<InFlight> {
        let mut out = Vec::new();
        for (x, y) in [(a, b), (b, a)] {
            if let Some(m) = self.pending.remove(&(x, y)) {
                self.last_sent.insert((x, y), m.clone());
                self.transmit(rng, now, (x, y), m, &mut out);
            } else if let Some(m) = self.last_sent.get(&(x, y)).cloned() {
                self.transmit(rng, now, (x, y), m, &mut out);
            }
        }
        out
    }

    /// `node` crashed: its queues and lastMessageSent die with it; the peers' survive.
    pub fn forget(&mut self, node: usize) {
        self.pending.retain(|(from, _), _| *from != node);
        self.last_sent.retain(|(from, _), _| *from != node);
    }

    /// No more loss or duplicates.
    pub fn calm(&mut self) {
        self.loss_permille = 0;
        self.dup_permille = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_cuts_heal_independently() {
        let mut l = Links::default();
        l.cut(&[(0, 1), (0, 2)]);
        l.cut(&[(0, 1)]);
        assert!(!l.linked(1, 0));
        assert!(l.heal((0, 2)));
        assert!(!l.heal((0, 1)));
        assert!(!l.linked(0, 1));
        assert!(l.heal((0, 1)));
        assert!(l.linked(0, 1));
        assert!(!l.heal((0, 1)));
    }

    #[test]
    fn a_partition_has_two_nonempty_sides() {
        let mut rng = Rng(9);
        for _ in 0..100 {
            let pairs = random_partition(&mut rng, 4);
            // a 1|3 split cuts 3 links, a 2|2 split 4.
            assert!(pairs.len() == 3 || pairs.len() == 4, "{pairs:?}");
        }
    }
}
