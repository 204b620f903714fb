//! Deterministic simulation of Fast Leader Election: 3 or 5 voters and an observer, each an
//! [`Election`], over a simulated network and clock, with faults. One seed fixes everything
//! (histories, timing, faults); a failure panics with `seed N: ...` (see the crate's docs for
//! replaying it).
//!
//! ```text
//! network   the election port (net.rs): per-pair random delay (reorders), loss, duplicates,
//!           a one-slot queue per peer while disconnected, a re-send of the last message on
//!           every new connection; partitions and single-link cuts that heal
//! members   crash (state lost, in-flight messages to them dropped) and restart with
//!           Election::start and the same (epoch, zxid)
//! after     a minimal stand-in for Zab, the caller of look_again: a learner connects to the
//! deciding  leader it decided (5 tries 200 ms apart) or looks again; a leader waits
//!           initLimit for a quorum of learners or looks again, then sets the synced vote
//!           (peer epoch + 1) with answer_as; everyone looks again when its leader or its
//!           quorum is gone (checked every 300 ms)
//! phases    faults for 2..20 s, then loss and duplicates stop, partitions heal, the dead
//!           restart; the run ends when one leader with every member synced stays so for 3 s
//! ```
//!
//! Invariants, after every step:
//! * a decided leader is a voter; an observer only observes; a voter leads iff it named itself;
//! * every decision is backed by what the decider really received in that election: for a
//!   LOOKING-quorum decision, the same vote (all four fields, any state) from a quorum of
//!   voters, itself included; for a FOLLOWING/LEADING one, a quorum for that leader and epoch and, unless it is
//!   the decider, the leader's own LEADING;
//! * within one election a member's LOOKING proposals only go up: the round never decreases, and
//!   in one round the vote only rises in the total order, never below its own vote;
//! * at most one leader has a quorum of synced learners;
//! * at the end (all connected, quiet): everyone, the observer included, decided the same leader,
//!   a voter whose (epoch, zxid, sid) is the highest among a quorum of the voters.
//!
//! Not an invariant: two members deciding different leaders in the same round. FLE allows it (a
//! better vote delayed past the 200 ms finalize wait, a stale vote re-sent after a reconnect; the
//! capture shows Java doing the latter) and Zab repairs it. The run counts these splits.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashSet};

use zooid_zab::{
    total_order, DecidedBy, Epoch, Notification, Output, PeerState, Role, Round, ServerId, Vote,
    Zxid,
};

use crate::ensemble::{index, Ensemble};
use crate::net::{random_link, random_partition, ElectionPort};
use crate::rng::Rng;
use crate::stats::Stats;

const INIT_LIMIT_MS: u64 = 1_000;
const CONNECT_TRIES: u32 = 5;
const CONNECT_RETRY_MS: u64 = 200;
const HEARTBEAT_MS: u64 = 300;
const STABLE_MS: u64 = 3_000;
const QUIET_CAP_MS: u64 = 15 * 60_000;
const MAX_EVENTS: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Looking,
    Leading { term: u64, established: bool },
    Connecting { leader: usize, tries: u32 },
    Synced { leader: usize, term: u64 },
}

/// A member's history and election phase, besides its [`Member`](crate::ensemble::Member).
struct Node {
    epoch: Epoch,
    zxid: Zxid,
    phase: Phase,
    /// The Tick event currently scheduled for the election's deadline.
    tick_at: Option<u64>,
    /// What this member received since its election began: (from, state, vote).
    received: HashSet<(ServerId, PeerState, Vote)>,
    /// Its LOOKING proposals in this election, for the monotonicity check.
    last_proposal: Option<Vote>,
}

impl Node {
    /// A new election begins: forget what the last one saw.
    fn looking(&mut self) {
        self.phase = Phase::Looking;
        self.received.clear();
        self.last_proposal = None;
    }
}

#[derive(Debug)]
enum Ev {
    Deliver {
        from: usize,
        to: usize,
        to_incarnation: u64,
        msg: Notification,
    },
    Tick {
        node: usize,
        incarnation: u64,
    },
    Connect {
        node: usize,
        incarnation: u64,
    },
    InitLimit {
        node: usize,
        incarnation: u64,
        term: u64,
    },
    Heartbeat {
        node: usize,
        incarnation: u64,
    },
    Start {
        node: usize,
    },
    Fault,
    Heal {
        pairs: Vec<(usize, usize)>,
    },
    EndFaults,
}

/// One run of the election simulation.
pub struct Sim {
    seed: u64,
    trace: bool,
    ens: Ensemble<Ev>,
    nodes: Vec<Node>,
    quorum: usize,
    faults_on: bool,
    fault_end_ms: u64,
    next_term: u64,
    stable_since: Option<u64>,
}

impl Sim {
    /// The run `seed` picks for `voters_n` voters and one observer.
    pub fn new(seed: u64, voters_n: usize, trace: bool) -> Sim {
        let mut rng = Rng(seed ^ ((voters_n as u64) << 56));
        let total = voters_n + 1;
        let mut nodes = Vec::new();
        for _ in 0..total {
            // Histories with ties on epoch and zxid, so the sid breaks some of them.
            let epoch = rng.below(3) as i64;
            let counter = rng.below(4) as u32;
            nodes.push(Node {
                epoch: Epoch(epoch),
                zxid: Zxid::new(Epoch(epoch), counter),
                phase: Phase::Looking,
                tick_at: None,
                received: HashSet::new(),
                last_proposal: None,
            });
        }
        let max_delay_ms = match rng.below(4) {
            0 => rng.range(1, 20),
            1 | 2 => rng.range(20, 150),
            _ => rng.range(150, 600), // longer than the finalize wait
        };
        let port = ElectionPort::new(max_delay_ms, rng.below(4) * 80, rng.below(3) * 50);
        let fault_end_ms = rng.range(2_000, 20_000);
        let deliver = |from, to, to_incarnation, msg| Ev::Deliver {
            from,
            to,
            to_incarnation,
            msg,
        };
        let mut sim = Sim {
            seed,
            trace,
            ens: Ensemble::new(rng, voters_n, port, deliver),
            nodes,
            quorum: voters_n / 2 + 1,
            faults_on: true,
            fault_end_ms,
            next_term: 1,
            stable_since: None,
        };
        for node in 0..total {
            let at = sim.ens.rng.below(1_500);
            sim.push(at, Ev::Start { node });
        }
        let first_fault = sim.ens.rng.range(100, 2_000);
        sim.push(first_fault, Ev::Fault);
        sim.push(sim.fault_end_ms, Ev::EndFaults);
        sim
    }

    fn fail(&self, what: impl std::fmt::Display) -> ! {
        let mut dump = String::new();
        for (m, n) in self.ens.members.iter().zip(&self.nodes) {
            let e = m.election.as_ref();
            dump.push_str(&format!(
                "\n  sid {} obs={} alive={} hist=(e{} {}) phase={:?} state={:?} round={:?} vote={:?}",
                m.sid,
                m.observer,
                m.alive,
                n.epoch.0,
                n.zxid,
                n.phase,
                e.map(|e| e.state()),
                e.map(|e| e.round().0),
                e.map(|e| e.current_vote()),
            ));
        }
        panic!("seed {}: t={} ms: {what}{dump}", self.seed, self.ens.now());
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.ens.clock.push(at, ev);
    }

    /// The vote `node` starts each election with.
    fn initial(&self, node: usize) -> Vote {
        let n = &self.nodes[node];
        Vote {
            leader: self.ens.sid(node),
            zxid: n.zxid,
            round: Round(0),
            peer_epoch: n.epoch,
        }
    }

    // ---- members -----------------------------------------------------------------------------

    fn start(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.looking();
        n.tick_at = None;
        let out = self.ens.start(node, n.zxid, n.epoch);
        let at = self.ens.now() + HEARTBEAT_MS;
        let heartbeat = |node, incarnation| Ev::Heartbeat { node, incarnation };
        self.ens.push_for(at, node, heartbeat);
        self.handle(node, out);
        self.ens.reconnect_all(node);
    }

    fn crash(&mut self, node: usize) {
        self.ens.crash(node);
        let n = &mut self.nodes[node];
        n.phase = Phase::Looking;
        n.tick_at = None;
    }

    fn look_again(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.looking();
        let out = self.ens.look_again(node, n.zxid, n.epoch);
        self.handle(node, out);
    }

    fn handle(&mut self, node: usize, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Send { to, msg } => {
                    let to = index(to);
                    assert_ne!(to, node, "never sends to itself");
                    if msg.state == PeerState::Looking {
                        self.check_proposal(node, msg.vote());
                    }
                    self.ens.send(node, to, msg);
                }
                Output::Decided {
                    leader,
                    role,
                    vote,
                    by,
                } => self.decided(node, leader, role, vote, by),
            }
        }
        let deadline = self.ens.members[node]
            .election
            .as_ref()
            .and_then(|e| e.next_deadline_ms());
        if let Some(at) = deadline {
            if self.nodes[node].tick_at != Some(at) {
                self.nodes[node].tick_at = Some(at);
                self.ens
                    .push_for(at, node, |node, incarnation| Ev::Tick { node, incarnation });
            }
        }
    }

    fn check_proposal(&mut self, node: usize, v: Vote) {
        let m = &self.ens.members[node];
        if !m.observer && total_order(&v, &self.initial(node)) == Ordering::Less {
            self.fail(format!("sid {} proposes {v:?} below its own vote", m.sid));
        }
        if let Some(prev) = self.nodes[node].last_proposal {
            if v.round < prev.round
                || (v.round == prev.round && total_order(&v, &prev) == Ordering::Less)
            {
                self.fail(format!(
                    "sid {} proposal went down within one election: {prev:?} -> {v:?}",
                    m.sid
                ));
            }
        }
        self.nodes[node].last_proposal = Some(v);
    }

    fn decided(&mut self, node: usize, leader: ServerId, role: Role, vote: Vote, by: DecidedBy) {
        self.ens.count_decision(by);
        let (m, n) = (&self.ens.members[node], &self.nodes[node]);
        let me = m.sid;
        if self.trace {
            println!(
                "{:>7} sid {me} decides {role:?} {leader} by {by:?} {vote:?}",
                self.ens.now()
            );
        }
        // Validity.
        if !self.ens.voters.contains(&leader) || vote.leader != leader {
            self.fail(format!("sid {me} decided non-voter leader {leader}"));
        }
        let expected = if m.observer {
            Role::Observing
        } else if leader == me {
            Role::Leading
        } else {
            Role::Following
        };
        if role != expected {
            self.fail(format!(
                "sid {me} decided role {role:?}, expected {expected:?}"
            ));
        }
        let e = m.election.as_ref().unwrap();
        if e.state() != role.state() || e.current_vote() != vote {
            self.fail(format!(
                "sid {me}: Election state disagrees with its decision"
            ));
        }
        // Justification from what it really received in this election.
        let backers: BTreeSet<ServerId> = match by {
            DecidedBy::Proposal => {
                let mut b: BTreeSet<ServerId> = n
                    .received
                    .iter()
                    // Vote.equals against a LOOKING vote compares the four fields only, so
                    // a FOLLOWING/LEADING vote of the same round counts too (as in Java).
                    .filter(|(_, _, v)| *v == vote)
                    .map(|(from, _, _)| *from)
                    .collect();
                if !m.observer {
                    b.insert(me);
                }
                b
            }
            DecidedBy::SameRound | DecidedBy::Ensemble => {
                let mut b: BTreeSet<ServerId> = n
                    .received
                    .iter()
                    .filter(|(_, st, v)| {
                        (*st != PeerState::Looking
                            && v.leader == leader
                            && v.peer_epoch == vote.peer_epoch)
                            || (by == DecidedBy::SameRound
                                && *st == PeerState::Looking
                                && *v == vote)
                    })
                    .map(|(from, _, _)| *from)
                    .collect();
                if by == DecidedBy::SameRound && !m.observer && n.last_proposal == Some(vote) {
                    b.insert(me);
                }
                let leader_said_so = leader == me
                    || n.received.iter().any(|(from, st, v)| {
                        *from == leader && *st == PeerState::Leading && v.leader == leader
                    });
                if !leader_said_so {
                    self.fail(format!("sid {me} joined {leader} which never said LEADING"));
                }
                b
            }
        };
        let backers: Vec<_> = backers
            .into_iter()
            .filter(|s| self.ens.voters.contains(s))
            .collect();
        if backers.len() < self.quorum {
            self.fail(format!(
                "sid {me} decided {leader} by {by:?} {vote:?} backed only by {backers:?}"
            ));
        }
        // Not an invariant, counted: someone else holds another leader for the same round.
        if self.ens.members.iter().any(|o| {
            o.alive
                && o.sid != me
                && o.election.as_ref().is_some_and(|oe| {
                    oe.state() != PeerState::Looking
                        && oe.current_vote().round == vote.round
                        && oe.current_vote().leader != leader
                })
        }) {
            self.ens.stats.same_round_splits += 1;
        }
        // The Zab stand-in.
        if role == Role::Leading {
            let term = self.next_term;
            self.next_term += 1;
            self.nodes[node].phase = Phase::Leading {
                term,
                established: false,
            };
            let at = self.ens.now() + INIT_LIMIT_MS;
            self.ens
                .push_for(at, node, |node, incarnation| Ev::InitLimit {
                    node,
                    incarnation,
                    term,
                });
        } else {
            let after_ms = self.ens.delay();
            self.connect(node, index(leader), 0, after_ms);
        }
    }

    /// Try to connect to `leader` in `after_ms` (after `tries` failed tries).
    fn connect(&mut self, node: usize, leader: usize, tries: u32, after_ms: u64) {
        self.nodes[node].phase = Phase::Connecting { leader, tries };
        let at = self.ens.now() + after_ms;
        let connect = |node, incarnation| Ev::Connect { node, incarnation };
        self.ens.push_for(at, node, connect);
    }

    /// Voters synced to `leader` in `term` and still reachable, the leader included.
    fn synced_quorum(&self, leader: usize, term: u64) -> usize {
        1 + self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| {
                !self.ens.members[*i].observer
                    && n.phase == Phase::Synced { leader, term }
                    && self.ens.connected(*i, leader)
            })
            .count()
    }

    fn establish(&mut self, leader: usize, term: u64) {
        self.ens.stats.elections += 1;
        self.nodes[leader].phase = Phase::Leading {
            term,
            established: true,
        };
        let e = self.ens.election(leader);
        let mut v = e.current_vote();
        v.peer_epoch = Epoch(v.peer_epoch.0 + 1);
        e.answer_as(PeerState::Leading, v);
        for i in 0..self.nodes.len() {
            if self.nodes[i].phase == (Phase::Synced { leader, term }) {
                self.sync_vote(i, leader);
            }
        }
    }

    /// `updateElectionVote`: a synced learner answers with the leader's vote.
    fn sync_vote(&mut self, node: usize, leader: usize) {
        let v = self.ens.election(leader).current_vote();
        let e = self.ens.election(node);
        let state = e.state();
        e.answer_as(state, v);
    }

    fn on_connect(&mut self, node: usize) {
        let Phase::Connecting { leader, tries } = self.nodes[node].phase else {
            return;
        };
        let ok = self.ens.connected(node, leader);
        if let (true, Phase::Leading { term, established }) = (ok, self.nodes[leader].phase) {
            self.nodes[node].phase = Phase::Synced { leader, term };
            if established {
                self.sync_vote(node, leader);
            } else if self.synced_quorum(leader, term) >= self.quorum {
                self.establish(leader, term);
            }
            return;
        }
        if tries + 1 < CONNECT_TRIES {
            self.connect(node, leader, tries + 1, CONNECT_RETRY_MS);
        } else {
            self.look_again(node);
        }
    }

    fn on_heartbeat(&mut self, node: usize) {
        match self.nodes[node].phase {
            Phase::Synced { leader, term } => {
                let lost = !self.ens.connected(node, leader)
                    || !matches!(self.nodes[leader].phase, Phase::Leading { term: t, .. } if t == term);
                if lost {
                    self.look_again(node);
                }
            }
            Phase::Leading {
                term,
                established: true,
            } if self.synced_quorum(node, term) < self.quorum => self.look_again(node),
            _ => {}
        }
    }

    // ---- faults ------------------------------------------------------------------------------

    fn fault(&mut self) {
        let total = self.nodes.len();
        match self.ens.rng.below(10) {
            0..=2 => {
                let node = self.ens.rng.below(total as u64) as usize;
                if self.ens.members[node].alive {
                    self.crash(node);
                    let at = self.ens.now() + self.ens.rng.range(50, 5_000);
                    self.push(at, Ev::Start { node });
                }
            }
            3..=5 => {
                let pairs = random_partition(&mut self.ens.rng, total);
                self.ens.stats.partitions += 1;
                self.cut(pairs);
            }
            6 | 7 => {
                let pair = random_link(&mut self.ens.rng, total);
                self.ens.stats.link_cuts += 1;
                self.cut(vec![pair]);
            }
            _ => {}
        }
        let at = self.ens.now() + self.ens.rng.range(100, 3_000);
        self.push(at, Ev::Fault);
    }

    fn cut(&mut self, pairs: Vec<(usize, usize)>) {
        self.ens.links.cut(&pairs);
        let at = self.ens.now() + self.ens.rng.range(100, 6_000);
        self.push(at, Ev::Heal { pairs });
    }

    fn heal(&mut self, pairs: Vec<(usize, usize)>) {
        for p in pairs {
            if self.ens.links.heal(p) {
                self.ens.reconnect(p.0, p.1);
            }
        }
    }

    fn end_faults(&mut self) {
        self.faults_on = false;
        for (a, b) in self.ens.calm() {
            self.ens.reconnect(a, b);
        }
        for node in 0..self.nodes.len() {
            if !self.ens.members[node].alive {
                self.start(node);
            }
        }
    }

    // ---- the run -----------------------------------------------------------------------------

    fn check_step(&mut self) {
        let mut leaders_with_quorum = Vec::new();
        for (i, (m, n)) in self.ens.members.iter().zip(&self.nodes).enumerate() {
            if !m.alive {
                continue;
            }
            let e = m.election.as_ref().unwrap();
            if e.round() < Round(1) {
                self.fail(format!("sid {} has round {:?}", m.sid, e.round()));
            }
            let looking = e.state() == PeerState::Looking;
            if looking != (n.phase == Phase::Looking) {
                self.fail(format!(
                    "sid {} phase {:?} but state {:?}",
                    m.sid,
                    n.phase,
                    e.state()
                ));
            }
            if let Phase::Leading { term, .. } = n.phase {
                if self.synced_quorum(i, term) >= self.quorum {
                    leaders_with_quorum.push(m.sid);
                }
            }
        }
        if leaders_with_quorum.len() > 1 {
            self.fail(format!(
                "several leaders with a quorum: {leaders_with_quorum:?}"
            ));
        }
    }

    /// The leader everyone is synced with, if the ensemble has settled.
    fn settled(&self) -> Option<usize> {
        let leader = self.nodes.iter().position(|n| {
            matches!(
                n.phase,
                Phase::Leading {
                    established: true,
                    ..
                }
            )
        })?;
        let Phase::Leading { term, .. } = self.nodes[leader].phase else {
            unreachable!()
        };
        self.nodes
            .iter()
            .enumerate()
            .all(|(i, n)| i == leader || n.phase == Phase::Synced { leader, term })
            .then_some(leader)
    }

    fn final_checks(&self, leader: usize) {
        let l = &self.ens.members[leader];
        if l.observer {
            self.fail("an observer leads");
        }
        for n in &self.ens.members {
            let e = n.election.as_ref().unwrap();
            if e.current_vote().leader != l.sid {
                self.fail(format!(
                    "sid {} holds leader {}",
                    n.sid,
                    e.current_vote().leader
                ));
            }
            let want = if n.sid == l.sid {
                PeerState::Leading
            } else if n.observer {
                PeerState::Observing
            } else {
                PeerState::Following
            };
            if e.state() != want {
                self.fail(format!("sid {} is {:?}", n.sid, e.state()));
            }
        }
        let lv = self.initial(leader);
        let below = (0..self.nodes.len())
            .filter(|&i| {
                !self.ens.members[i].observer
                    && total_order(&self.initial(i), &lv) != Ordering::Greater
            })
            .count();
        if below < self.quorum {
            let n = &self.nodes[leader];
            self.fail(format!(
                "leader {} (e{} {}) is the best of only {below} voters",
                l.sid, n.epoch.0, n.zxid
            ));
        }
    }

    /// Run until the ensemble settles and passes the final checks; the run's figures.
    /// Panics with `seed N: ...` when an invariant breaks.
    pub fn run(mut self) -> Stats {
        while let Some((at, ev)) = self.ens.clock.pop() {
            self.ens.stats.events += 1;
            if self.ens.stats.events > MAX_EVENTS {
                self.fail("too many events: something keeps the ensemble busy");
            }
            if self.trace && !matches!(ev, Ev::Heartbeat { .. } | Ev::Tick { .. }) {
                println!("{at:>7} {ev:?}");
            }
            match ev {
                Ev::Deliver {
                    from,
                    to,
                    to_incarnation,
                    msg,
                } => {
                    let heard = (self.ens.sid(from), msg.state, msg.vote());
                    if let Some(out) = self.ens.deliver(from, to, to_incarnation, msg) {
                        self.nodes[to].received.insert(heard);
                        self.handle(to, out);
                    }
                }
                Ev::Tick { node, incarnation } => {
                    if self.ens.current(node, incarnation) && self.nodes[node].tick_at == Some(at) {
                        self.nodes[node].tick_at = None;
                        let out = self.ens.election(node).on_tick(at);
                        self.handle(node, out);
                    }
                }
                Ev::Connect { node, incarnation } => {
                    if self.ens.current(node, incarnation) {
                        self.on_connect(node);
                    }
                }
                Ev::InitLimit {
                    node,
                    incarnation,
                    term,
                } => {
                    if self.ens.current(node, incarnation)
                        && self.nodes[node].phase
                            == (Phase::Leading {
                                term,
                                established: false,
                            })
                    {
                        if self.synced_quorum(node, term) >= self.quorum {
                            self.establish(node, term);
                        } else {
                            self.look_again(node);
                        }
                    }
                }
                Ev::Heartbeat { node, incarnation } => {
                    if self.ens.current(node, incarnation) {
                        self.on_heartbeat(node);
                        self.push(at + HEARTBEAT_MS, Ev::Heartbeat { node, incarnation });
                    }
                }
                Ev::Start { node } => {
                    if !self.ens.members[node].alive {
                        self.start(node);
                    }
                }
                Ev::Fault => {
                    if self.faults_on {
                        self.fault();
                    }
                }
                Ev::Heal { pairs } => self.heal(pairs),
                Ev::EndFaults => self.end_faults(),
            }
            self.check_step();
            if !self.faults_on {
                match (self.settled(), self.stable_since) {
                    (Some(leader), Some(since)) if at >= since + STABLE_MS => {
                        self.final_checks(leader);
                        return self.ens.finish(at);
                    }
                    (Some(_), Some(_)) => {}
                    (Some(_), None) => self.stable_since = Some(at),
                    (None, _) => self.stable_since = None,
                }
                if at > self.fault_end_ms + QUIET_CAP_MS {
                    self.fail("no settled leader 15 simulated minutes after the faults stopped");
                }
            }
        }
        self.fail("the event queue ran dry")
    }
}
