//! The simulated network: which links are cut, the election port's notification transport,
//! and the quorum port's TCP-like streams. Nothing here schedules events: each operation
//! returns when something is due, and the simulation puts that on its clock.
//!
//! ```text
//! links          a cut count per pair of members, so overlapping partitions and link cuts
//!                heal independently; a pair is linked when its count is 0
//! election port  per pair random delay (so reordering), loss, duplicates; like
//!                QuorumCnxManager, a one-slot queue per peer while disconnected and a re-send
//!                of the last message on every new connection (so stale votes of older rounds
//!                and incarnations arrive after heals and restarts)
//! quorum port    one stream per learner connection, FIFO each way (never reordered), random
//!                delay; while the link is cut its bytes wait; a reset discards them and both
//!                ends read a close
//! ```

use std::collections::{BTreeMap, VecDeque};

use zooid_zab::{Notification, QuorumMessage};

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

// ---- quorum port ----------------------------------------------------------------------------

/// What travels on a quorum stream.
#[derive(Debug, Clone)]
pub enum Pkt {
    Msg(QuorumMessage),
    /// The raw snapshot stream that follows a SNAP.
    Snapshot(Vec<u8>),
    /// The sending end closed (a FIN after what it already sent).
    Close,
}

#[derive(Debug, Default)]
struct Dir {
    /// Packets and the earliest time each can arrive.
    queue: VecDeque<(u64, Pkt)>,
    /// A delivery of the head is on the clock.
    scheduled: bool,
}

/// The learner's end (and the direction it writes) and the leader's.
pub const LEARNER_END: usize = 0;
pub const LEADER_END: usize = 1;

/// One TCP-like connection from a learner to its leader. Direction `d` carries what end `d`
/// writes to end `1 - d`.
#[derive(Debug)]
pub struct Stream {
    pub learner: usize,
    pub leader: usize,
    /// [learner end, leader end] still open.
    pub open: [bool; 2],
    /// Reset: nothing more goes through.
    pub broken: bool,
    dirs: [Dir; 2],
}

impl Stream {
    pub fn new(learner: usize, leader: usize) -> Stream {
        Stream {
            learner,
            leader,
            open: [true, true],
            broken: false,
            dirs: [Dir::default(), Dir::default()],
        }
    }

    /// Open at both ends and not reset.
    pub fn is_open(&self) -> bool {
        self.open == [true, true] && !self.broken
    }

    /// End `end` writes `pkt`, to arrive no earlier than `at_ms`; false (and dropped) when the
    /// stream was reset or that end closed.
    pub fn write(&mut self, end: usize, at_ms: u64, pkt: Pkt) -> bool {
        if self.broken || !self.open[end] {
            return false;
        }
        self.dirs[end].queue.push_back((at_ms, pkt));
        true
    }

    /// When to deliver the head of direction `dir`, if that needs putting on the clock: not
    /// already there, the link whole, something queued. Marks it scheduled.
    pub fn schedule(&mut self, dir: usize, now: u64, linked: bool) -> Option<u64> {
        let d = &mut self.dirs[dir];
        if d.scheduled || !linked {
            return None;
        }
        let &(at, _) = d.queue.front()?;
        d.scheduled = true;
        Some(at.max(now))
    }

    /// End `end` closes; false if it already was closed.
    pub fn close(&mut self, end: usize, now: u64) -> bool {
        if !self.open[end] {
            return false;
        }
        if !self.broken {
            self.dirs[end].queue.push_back((now, Pkt::Close));
        }
        self.open[end] = false;
        true
    }

    /// Reset: what is in flight is lost and both ends read a close. Returns the packets lost.
    pub fn reset(&mut self, now: u64) -> u64 {
        self.broken = true;
        let mut lost = 0;
        for d in &mut self.dirs {
            lost += d
                .queue
                .iter()
                .filter(|(_, p)| !matches!(p, Pkt::Close))
                .count() as u64;
            d.queue.clear();
            d.queue.push_back((now, Pkt::Close));
        }
        lost
    }

    /// A scheduled delivery on direction `dir` is due: its head packet, and whether the
    /// receiving end is still open to read it. `None` when the link is cut (the bytes wait) or
    /// nothing is queued.
    pub fn take(&mut self, dir: usize, linked: bool) -> Option<(Pkt, bool)> {
        self.dirs[dir].scheduled = false;
        if !linked {
            return None;
        }
        let (_, pkt) = self.dirs[dir].queue.pop_front()?;
        Some((pkt, self.open[1 - dir]))
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

    #[test]
    fn a_stream_is_fifo_and_a_close_follows_what_was_sent() {
        let mut s = Stream::new(0, 1);
        assert!(s.write(LEADER_END, 50, Pkt::Snapshot(vec![1])));
        assert!(s.close(LEADER_END, 10));
        assert!(!s.write(LEADER_END, 60, Pkt::Snapshot(vec![2])));
        assert_eq!(s.schedule(LEADER_END, 0, true), Some(50));
        assert_eq!(s.schedule(LEADER_END, 0, true), None, "already scheduled");
        assert!(matches!(
            s.take(LEADER_END, true),
            Some((Pkt::Snapshot(_), true))
        ));
        assert_eq!(s.schedule(LEADER_END, 50, true), Some(50));
        assert!(matches!(s.take(LEADER_END, true), Some((Pkt::Close, true))));
        assert!(s.take(LEADER_END, true).is_none());
    }

    #[test]
    fn a_reset_loses_what_is_in_flight() {
        let mut s = Stream::new(0, 1);
        s.write(LEARNER_END, 5, Pkt::Snapshot(vec![]));
        s.write(LEADER_END, 5, Pkt::Snapshot(vec![]));
        assert_eq!(s.reset(3), 2);
        assert!(!s.is_open());
        assert!(s.take(LEARNER_END, false).is_none(), "waits for the link");
        assert!(matches!(
            s.take(LEARNER_END, true),
            Some((Pkt::Close, true))
        ));
    }
}
