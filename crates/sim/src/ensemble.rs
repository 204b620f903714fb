//! What both simulations are made of: the run's random numbers and clock, each member's
//! identity, liveness and [`Election`], the links faults cut, the election port over them,
//! and the figures. A simulation keeps its own state per member in a vector indexed like
//! [`Ensemble::members`], and its own events; `deliver` makes its event for a notification.
//! The order of each operation's random draws and scheduled events is part of every seed's
//! run: change it knowingly (see `rng.rs`).

use std::collections::BTreeSet;

use zooid_zab::{DecidedBy, Election, ElectionConfig, Epoch, Notification, Output, ServerId, Zxid};

use crate::clock::Clock;
use crate::net::{ElectionPort, InFlight, Links};
use crate::rng::Rng;
use crate::stats::Stats;

/// A member, as both simulations see it.
pub struct Member {
    pub sid: ServerId,
    pub observer: bool,
    pub alive: bool,
    /// Bumped by each crash, so events meant for an earlier life are dropped.
    pub incarnation: u64,
    /// `None` while the member is down.
    pub election: Option<Election>,
}

/// The event delivering `msg` from member `from` to member `to` in incarnation `to_incarnation`.
pub type Deliver<E> = fn(from: usize, to: usize, to_incarnation: u64, msg: Notification) -> E;

pub struct Ensemble<E> {
    pub rng: Rng,
    pub clock: Clock<E>,
    /// Member `i` has sid `i + 1`; the observer comes last.
    pub members: Vec<Member>,
    pub voters: BTreeSet<ServerId>,
    pub observers: BTreeSet<ServerId>,
    pub links: Links,
    port: ElectionPort,
    pub stats: Stats,
    deliver: Deliver<E>,
}

/// The member `sid` names.
pub fn index(sid: ServerId) -> usize {
    (sid.0 - 1) as usize
}

impl<E> Ensemble<E> {
    /// `voters` voters and one observer, all down.
    pub fn new(rng: Rng, voters: usize, port: ElectionPort, deliver: Deliver<E>) -> Ensemble<E> {
        let members: Vec<Member> = (0..=voters)
            .map(|i| Member {
                sid: ServerId(i as i64 + 1),
                observer: i == voters,
                alive: false,
                incarnation: 0,
                election: None,
            })
            .collect();
        let sids = |observer| {
            let these = members.iter().filter(|m| m.observer == observer);
            these.map(|m| m.sid).collect()
        };
        Ensemble {
            rng,
            clock: Clock::default(),
            voters: sids(false),
            observers: sids(true),
            members,
            links: Links::default(),
            port,
            stats: Stats::default(),
            deliver,
        }
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    pub fn sid(&self, node: usize) -> ServerId {
        self.members[node].sid
    }

    pub fn delay(&mut self) -> u64 {
        self.port.delay(&mut self.rng)
    }

    /// Schedule `ev` for `node`'s current incarnation, which the event carries to be dropped
    /// if the member crashed in the meantime.
    pub fn push_for(&mut self, at: u64, node: usize, ev: impl FnOnce(usize, u64) -> E) {
        let incarnation = self.members[node].incarnation;
        self.clock.push(at, ev(node, incarnation));
    }

    /// `node` is up, in the incarnation an event was scheduled for.
    pub fn current(&self, node: usize, incarnation: u64) -> bool {
        let m = &self.members[node];
        m.alive && m.incarnation == incarnation
    }

    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.members[a].alive && self.members[b].alive && self.links.linked(a, b)
    }

    /// The election of `node`, which is up.
    pub fn election(&mut self, node: usize) -> &mut Election {
        self.members[node].election.as_mut().unwrap()
    }

    // ---- election port ---------------------------------------------------------------------

    /// Put notifications on their way to live members' current incarnations.
    fn in_flight(&mut self, sent: Vec<InFlight>) {
        for f in sent {
            let deliver = self.deliver;
            self.push_for(f.at_ms, f.to, |to, inc| deliver(f.from, to, inc, f.msg));
        }
    }

    pub fn send(&mut self, from: usize, to: usize, msg: Notification) {
        let connected = self.connected(from, to);
        let now = self.now();
        let sent = self
            .port
            .send(&mut self.rng, now, (from, to), connected, msg);
        self.in_flight(sent);
    }

    /// A new connection between `a` and `b`, if both are up and linked.
    pub fn reconnect(&mut self, a: usize, b: usize) {
        if !self.connected(a, b) {
            return;
        }
        let now = self.now();
        let sent = self.port.reconnect(&mut self.rng, now, a, b);
        self.in_flight(sent);
    }

    /// A notification is due: what `to`'s election makes of it, if `to` is still the
    /// incarnation it was sent to and the link is whole.
    pub fn deliver(
        &mut self,
        from: usize,
        to: usize,
        to_incarnation: u64,
        msg: Notification,
    ) -> Option<Vec<Output>> {
        if !self.current(to, to_incarnation) || !self.links.linked(from, to) {
            return None;
        }
        self.stats.delivered += 1;
        let (sid, now) = (self.sid(from), self.now());
        Some(self.election(to).on_notification(sid, msg, now))
    }

    // ---- members ---------------------------------------------------------------------------

    /// `node` comes up and elects with its history `(zxid, epoch)`: what its election does
    /// first. The caller handles that, then calls [`reconnect_all`](Self::reconnect_all).
    pub fn start(&mut self, node: usize, zxid: Zxid, epoch: Epoch) -> Vec<Output> {
        let (voters, observers) = (self.voters.clone(), self.observers.clone());
        let cfg = ElectionConfig::new(self.sid(node), voters, observers, Vec::new()).unwrap();
        let now = self.now();
        let m = &mut self.members[node];
        assert!(!m.alive);
        if m.incarnation > 0 {
            self.stats.restarts += 1;
        }
        m.alive = true;
        let (e, out) = Election::start(cfg, zxid, epoch, now);
        m.election = Some(e);
        out
    }

    /// New connections from `node` to everyone: each side sends what it queued for the other
    /// or else re-sends what it sent last.
    pub fn reconnect_all(&mut self, node: usize) {
        for other in 0..self.members.len() {
            if other != node {
                self.reconnect(node, other);
            }
        }
    }

    /// `node` dies with its election and what it had queued on the election port.
    pub fn crash(&mut self, node: usize) {
        let m = &mut self.members[node];
        m.alive = false;
        m.incarnation += 1;
        m.election = None;
        self.port.forget(node);
        self.stats.crashes += 1;
    }

    /// `node` looks for a leader again, with its history `(zxid, epoch)`.
    pub fn look_again(&mut self, node: usize, zxid: Zxid, epoch: Epoch) -> Vec<Output> {
        self.stats.look_again += 1;
        let now = self.now();
        self.election(node).look_again(zxid, epoch, now)
    }

    pub fn count_decision(&mut self, by: DecidedBy) {
        self.stats.decisions += 1;
        if by == DecidedBy::Ensemble {
            self.stats.by_ensemble += 1;
        }
    }

    // ---- the run ---------------------------------------------------------------------------

    /// The faults are over: no more loss or duplicates, every link whole. The pairs that were
    /// cut, for the caller to reconnect.
    pub fn calm(&mut self) -> Vec<(usize, usize)> {
        self.port.calm();
        self.links.heal_all()
    }

    /// The figures of a run that ended well at `at`.
    pub fn finish(&mut self, at: u64) -> Stats {
        self.stats.runs = 1;
        self.stats.sim_ms = at;
        self.stats.dropped += self.port.lost;
        self.stats.duplicated = self.port.duplicated;
        self.stats
    }
}
