//! Fast Leader Election (`election.md` §4-§7, `FastLeaderElection.lookForLeader` and its
//! `WorkerReceiver`), sans-IO: one peer's election as a state machine that takes notifications
//! and `now_ms`, and returns notifications to send and, once, the decision. It owns the round
//! (`logicalclock`), the proposal, the received votes of this round (`recvset`), the votes of
//! peers that are already out of the election (`outofelection`), the resend back-off and the
//! finalize wait. The driver owns connections and the per-peer one-slot send queue, and re-sends
//! the last message to a peer on every new connection (`election.md` §2.4); none of that is here.
//!
//! ```text
//!  start / look_again: round += 1, proposal = own vote (observer, or a server outside the
//!     config: MIN_VALUE vote), Send to voters
//!     │
//!     ▼                        LOOKING n, higher round: round = n.round, forget votes,
//!  LOOKING ◄──────────────────  proposal = best(n, own vote), Send to voters
//!     │  same round, better vote: adopt, Send to voters   lower round: answer, drop
//!     │  quiet for the back-off (200 ms doubling to 60 s): Send again
//!     ├── a quorum of voters' votes equals the proposal (own vote counted once, observers never)
//!     │      └─► finalize wait: each notification that is not better is dropped and restarts
//!     │          the 200 ms; a better one ends the wait; 200 ms of quiet ─► Decided
//!     └── FOLLOWING/LEADING from a quorum of voters for one leader, and that leader itself
//!            said LEADING (checkLeader) ─► Decided at once, round = theirs (joining an ensemble)
//!  Decided (LEADING | FOLLOWING | OBSERVING): answer LOOKING voters with the decided vote, and
//!     any non-voter with it too; the caller may update that vote (`answer_as`), and calls
//!     `look_again` when the Zab phase fails.
//! ```
//!
//! Three departures from Java, all about answering non-voters. (1) While LOOKING we answer them
//! with our proposal; Java sends its last decided `currentVote`, which may name a leader that
//! is gone. (2) We do not repeat the same answer to the same non-voter within the minimum
//! notification interval. (3) An observer does not send voters the "catch up" answer, since
//! voters never read an observer's vote. Without (2) and (3), a LOOKING observer in a higher
//! round and a LOOKING voter in a lower one answer each other forever; the simulation found it.
//!
//! Quorum = a strict majority of the voters (`QuorumMaj`). Deciding is not agreeing: two peers
//! can decide different leaders in the same round (a delayed better vote, a stale re-sent one;
//! the capture shows Java doing it). Zab settles it: a learner that cannot reach its leader, or a
//! leader without a quorum of learners, comes back through [`Election::look_again`].

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use crate::election::{Notification, PeerState, NOTIFICATION_VERSION};
use crate::ids::{Epoch, Round, ServerId, Zxid};
use crate::vote::Vote;

/// `finalizeWait`: how long a proposal backed by a quorum must stay unchallenged.
pub const FINALIZE_WAIT_MS: u64 = 200;
/// `zookeeper.fastleader.minNotificationInterval`: first resend timeout, floor of the back-off.
pub const MIN_NOTIFICATION_INTERVAL_MS: u64 = 200;
/// `zookeeper.fastleader.maxNotificationInterval`: ceiling of the back-off.
pub const MAX_NOTIFICATION_INTERVAL_MS: u64 = 60_000;
/// How many non-voters' last answers are remembered (for the echo guard) before forgetting all.
const MAX_ANSWERED_PEERS: usize = 1024;

/// Who takes part and how long to wait. Build it with [`ElectionConfig::new`]; the fields stay
/// public so a driver can tune the timers, and [`Election::start`] checks them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionConfig {
    pub my_id: ServerId,
    pub voters: BTreeSet<ServerId>,
    pub observers: BTreeSet<ServerId>,
    pub finalize_wait_ms: u64,
    pub min_notification_interval_ms: u64,
    pub max_notification_interval_ms: u64,
    /// The QuorumVerifier text sent in every notification (`config_text::render`); send exactly
    /// what the Java members send, or nothing (`election.md` §3.1).
    pub config_text: Vec<u8>,
}

/// A configuration the election cannot run with.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ElectionConfigError {
    #[error("the ensemble has no voting member")]
    NoVoters,
    #[error("server {0} is both a voter and an observer")]
    VoterAndObserver(ServerId),
    #[error("server id {0} is reserved: votes use it for \"no leader\"")]
    ReservedId(ServerId),
    #[error("notification interval {min_ms}..={max_ms} ms must be positive and ordered")]
    BadInterval { min_ms: u64, max_ms: u64 },
}

impl ElectionConfig {
    /// A configuration with ZooKeeper's default timers.
    pub fn new(
        my_id: ServerId,
        voters: BTreeSet<ServerId>,
        observers: BTreeSet<ServerId>,
        config_text: impl Into<Vec<u8>>,
    ) -> Result<ElectionConfig, ElectionConfigError> {
        let cfg = ElectionConfig {
            my_id,
            voters,
            observers,
            finalize_wait_ms: FINALIZE_WAIT_MS,
            min_notification_interval_ms: MIN_NOTIFICATION_INTERVAL_MS,
            max_notification_interval_ms: MAX_NOTIFICATION_INTERVAL_MS,
            config_text: config_text.into(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ElectionConfigError> {
        if self.voters.is_empty() {
            return Err(ElectionConfigError::NoVoters);
        }
        if let Some(both) = self.voters.intersection(&self.observers).next() {
            return Err(ElectionConfigError::VoterAndObserver(*both));
        }
        if self.voters.contains(&ServerId::NONE) || self.observers.contains(&ServerId::NONE) {
            return Err(ElectionConfigError::ReservedId(ServerId::NONE));
        }
        let (min_ms, max_ms) = (
            self.min_notification_interval_ms,
            self.max_notification_interval_ms,
        );
        if min_ms == 0 || min_ms > max_ms {
            return Err(ElectionConfigError::BadInterval { min_ms, max_ms });
        }
        Ok(())
    }

    /// Whether `sid` has a vote (non-zero weight in `QuorumMaj`).
    pub fn is_voter(&self, sid: ServerId) -> bool {
        self.voters.contains(&sid)
    }

    /// Votes needed to decide: a strict majority of the voters.
    pub fn quorum_size(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}

/// The role an election ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Leading,
    Following,
    Observing,
}

impl Role {
    pub fn state(self) -> PeerState {
        match self {
            Role::Leading => PeerState::Leading,
            Role::Following => PeerState::Following,
            Role::Observing => PeerState::Observing,
        }
    }
}

/// Which rule of `lookForLeader` ended the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecidedBy {
    /// A quorum of LOOKING votes equal to the proposal, then the finalize wait.
    Proposal,
    /// FOLLOWING/LEADING votes in my own round, from a quorum, the leader LEADING.
    SameRound,
    /// FOLLOWING/LEADING votes of any round (`outofelection`): joining an established ensemble.
    Ensemble,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Queue `msg` for `to`, replacing an unsent older one (`SEND_CAPACITY = 1`).
    Send { to: ServerId, msg: Notification },
    /// The election is over: become `role` under `leader`. `vote` is what this peer now
    /// answers LOOKING peers with. Emitted once per election.
    Decided {
        leader: ServerId,
        role: Role,
        vote: Vote,
        by: DecidedBy,
    },
}

/// A received vote with what `Vote.equals` looks at besides the vote itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ballot {
    vote: Vote,
    state: PeerState,
    version: i32,
}

impl Ballot {
    fn of(n: &Notification) -> Ballot {
        Ballot {
            vote: n.vote(),
            state: n.state,
            version: n.version,
        }
    }

    /// `Vote.equals` (`election.md` §4): LOOKING on either side compares all four fields;
    /// otherwise leader and peer epoch, and only the leader if exactly one has version 0.
    fn agrees(&self, other: &Ballot) -> bool {
        if self.state == PeerState::Looking || other.state == PeerState::Looking {
            self.vote == other.vote
        } else if (self.version > 0) != (other.version > 0) {
            self.vote.leader == other.vote.leader
        } else {
            self.vote.leader == other.vote.leader && self.vote.peer_epoch == other.vote.peer_epoch
        }
    }
}

/// One peer's leader election; see the module docs.
#[derive(Debug, Clone)]
pub struct Election {
    cfg: ElectionConfig,
    state: PeerState,
    /// `logicalclock`: survives `look_again`, starts at 0 in a new process.
    logical_clock: Round,
    /// This election's own vote (round field unused).
    initial: Vote,
    /// While LOOKING: what we propose; its round is always `logical_clock`.
    proposal: Vote,
    /// Once decided: the vote we answer with (`currentVote`).
    current: Vote,
    /// `recvset`: this round's votes by sender, our own included (voters only).
    received: BTreeMap<ServerId, Ballot>,
    /// `outofelection`: FOLLOWING/LEADING votes of any round, by sender.
    out_of_election: BTreeMap<ServerId, Ballot>,
    /// `notTimeout`: doubles on every quiet period, reset by `start`/`look_again`.
    notification_interval_ms: u64,
    /// When the loop's current poll times out if no notification arrives.
    poll_deadline_ms: u64,
    /// While a quorum backs the proposal: when it becomes the decision.
    finalize_deadline_ms: Option<u64>,
    /// The last answer to each non-voter and when, to stop answer ping-pong.
    answered: BTreeMap<ServerId, (u64, (PeerState, Vote))>,
}

impl Election {
    /// Start looking: round 1 for a new process, vote for ourselves (observers: no vote),
    /// broadcast. `my_last_zxid` is the last logged zxid (`Zxid::NONE` = database possibly
    /// missing: LOOKING votes are then ignored), `my_current_epoch` the `currentEpoch` file.
    ///
    /// Panics if `cfg` does not pass [`ElectionConfig::validate`]: a programmer error, since
    /// configs are checked when parsed.
    pub fn start(
        cfg: ElectionConfig,
        my_last_zxid: Zxid,
        my_current_epoch: Epoch,
        now_ms: u64,
    ) -> (Election, Vec<Output>) {
        if let Err(e) = cfg.validate() {
            panic!("Election::start needs a valid config: {e}");
        }
        let unset = Vote::observer(Round(0));
        let mut election = Election {
            cfg,
            state: PeerState::Looking,
            logical_clock: Round(0),
            initial: unset,
            proposal: unset,
            current: unset,
            received: BTreeMap::new(),
            out_of_election: BTreeMap::new(),
            notification_interval_ms: 0,
            poll_deadline_ms: 0,
            finalize_deadline_ms: None,
            answered: BTreeMap::new(),
        };
        let out = election.begin(my_last_zxid, my_current_epoch, now_ms);
        (election, out)
    }

    /// Look again after the Zab phase failed (leader unreachable, quorum lost): a new round,
    /// our own vote from the current history. Panics if we are still looking.
    pub fn look_again(
        &mut self,
        my_last_zxid: Zxid,
        my_current_epoch: Epoch,
        now_ms: u64,
    ) -> Vec<Output> {
        assert!(
            self.state != PeerState::Looking,
            "look_again is for a peer that had decided; this one is still looking"
        );
        self.begin(my_last_zxid, my_current_epoch, now_ms)
    }

    /// Start a new round while looking: a newer config arrived, and votes counted under the
    /// old one no longer decide (ZooKeeper restarts its election then).
    pub fn restart(
        &mut self,
        my_last_zxid: Zxid,
        my_current_epoch: Epoch,
        now_ms: u64,
    ) -> Vec<Output> {
        self.begin(my_last_zxid, my_current_epoch, now_ms)
    }

    /// Once decided, change the state and vote we answer with: `updateElectionVote` sets the
    /// new Zab epoch as peer epoch once synced, and a driver may report another role.
    /// Panics while looking (the election owns the vote then) or when asked to answer LOOKING.
    pub fn answer_as(&mut self, state: PeerState, vote: Vote) {
        assert!(
            self.state != PeerState::Looking,
            "answer_as is for a decided peer; this one is still looking"
        );
        assert!(
            state != PeerState::Looking,
            "use look_again to go back to LOOKING"
        );
        self.state = state;
        self.current = vote;
    }

    /// A notification from `from`. The `WorkerReceiver` part (answers) and the
    /// `lookForLeader` part (the loop) both happen here.
    pub fn on_notification(&mut self, from: ServerId, n: Notification, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if from == self.cfg.my_id {
            // Our own vote is counted when we make it; a looped-back copy adds nothing.
            return out;
        }
        if !self.cfg.is_voter(from) {
            // Observers and unknown peers get our vote at once and never reach the loop.
            let mut vote = self.current_vote();
            vote.round = self.logical_clock;
            let answer = (self.state, vote);
            if let Some(&(at_ms, last)) = self.answered.get(&from) {
                if last == answer
                    && now_ms < at_ms.saturating_add(self.cfg.min_notification_interval_ms)
                {
                    // The same answer a moment ago: this is more likely the peer echoing us
                    // (a Java observer "helps" a voter with a lower round, and the voter
                    // answers again, forever) than a question. A real question comes back
                    // after the peer's own resend timeout.
                    return out;
                }
            }
            if self.answered.len() >= MAX_ANSWERED_PEERS {
                self.answered.clear();
            }
            self.answered.insert(from, (now_ms, answer));
            out.push(self.send(from, self.state, vote));
            return out;
        }
        if self.state != PeerState::Looking {
            if n.state == PeerState::Looking {
                out.push(self.send(from, self.state, self.current));
            }
            return out;
        }
        if n.state == PeerState::Looking && n.round < self.logical_clock && self.me_votes() {
            // Help a lagging peer catch up; the loop still sees (and drops) its vote. Java
            // observers do it too, but voters never read an observer's vote: it would only
            // make the voter answer again (see above), so an observer here stays quiet.
            out.push(self.send(from, PeerState::Looking, self.proposal));
        }
        self.step(from, &n, now_ms, &mut out);
        out
    }

    /// Time passed: end the finalize wait, or resend after a quiet period with back-off.
    pub fn on_tick(&mut self, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if self.state != PeerState::Looking {
            return out;
        }
        if let Some(deadline) = self.finalize_deadline_ms {
            if now_ms >= deadline {
                self.decide(self.proposal, DecidedBy::Proposal, &mut out);
            }
            return out;
        }
        if now_ms >= self.poll_deadline_ms {
            self.broadcast(&mut out);
            self.notification_interval_ms = self
                .notification_interval_ms
                .saturating_mul(2)
                .min(self.cfg.max_notification_interval_ms);
            self.poll_deadline_ms = now_ms.saturating_add(self.notification_interval_ms);
        }
        out
    }

    /// When `on_tick` next has something to do; `None` once decided.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        (self.state == PeerState::Looking)
            .then(|| self.finalize_deadline_ms.unwrap_or(self.poll_deadline_ms))
    }

    pub fn state(&self) -> PeerState {
        self.state
    }

    /// The role decided, if the election is over.
    pub fn role(&self) -> Option<Role> {
        match self.state {
            PeerState::Looking => None,
            PeerState::Following => Some(Role::Following),
            PeerState::Leading => Some(Role::Leading),
            PeerState::Observing => Some(Role::Observing),
        }
    }

    /// The proposal while looking, the decided (or `answer_as`) vote afterwards.
    pub fn current_vote(&self) -> Vote {
        if self.state == PeerState::Looking {
            self.proposal
        } else {
            self.current
        }
    }

    /// `logicalclock`.
    pub fn round(&self) -> Round {
        self.logical_clock
    }

    /// Whether a quorum backs the proposal and only the finalize wait is left.
    pub fn is_finalizing(&self) -> bool {
        self.finalize_deadline_ms.is_some()
    }

    pub fn config(&self) -> &ElectionConfig {
        &self.cfg
    }

    /// Take on a new membership (a reconfig committed, or a newer config heard): it counts
    /// from the next round on. Panics if `cfg` does not pass [`ElectionConfig::validate`] or
    /// names another server.
    pub fn set_config(&mut self, cfg: ElectionConfig) {
        if let Err(e) = cfg.validate() {
            panic!("Election::set_config needs a valid config: {e}");
        }
        assert_eq!(cfg.my_id, self.cfg.my_id, "a config for another server");
        self.cfg = cfg;
    }

    fn me_votes(&self) -> bool {
        self.cfg.is_voter(self.cfg.my_id)
    }

    fn begin(&mut self, my_last_zxid: Zxid, my_current_epoch: Epoch, now_ms: u64) -> Vec<Output> {
        self.state = PeerState::Looking;
        self.logical_clock = Round(self.logical_clock.0 + 1);
        self.initial = if self.me_votes() {
            Vote {
                leader: self.cfg.my_id,
                zxid: my_last_zxid,
                round: self.logical_clock,
                peer_epoch: my_current_epoch,
            }
        } else {
            Vote::observer(self.logical_clock)
        };
        self.proposal = self.initial;
        self.received.clear();
        self.out_of_election.clear();
        self.finalize_deadline_ms = None;
        self.notification_interval_ms = self.cfg.min_notification_interval_ms;
        self.poll_deadline_ms = now_ms.saturating_add(self.notification_interval_ms);
        let mut out = Vec::new();
        self.broadcast(&mut out);
        // A single voter is its own quorum.
        self.check_proposal_quorum(now_ms);
        out
    }

    /// `sendNotifications`: the proposal to every voter, and (by recording it) to ourselves.
    fn broadcast(&mut self, out: &mut Vec<Output>) {
        let me = self.cfg.my_id;
        for &to in self.cfg.voters.iter().filter(|&&sid| sid != me) {
            out.push(self.send(to, PeerState::Looking, self.proposal));
        }
        // Java loops its own notification back; a voter whose zxid is -1 then ignores it.
        if self.me_votes() && self.initial.zxid != Zxid::NONE {
            self.received.insert(
                me,
                Ballot {
                    vote: self.proposal,
                    state: PeerState::Looking,
                    version: NOTIFICATION_VERSION,
                },
            );
        }
    }

    fn send(&self, to: ServerId, state: PeerState, vote: Vote) -> Output {
        Output::Send {
            to,
            msg: Notification::new(state, vote, self.cfg.config_text.clone()),
        }
    }

    /// `totalOrderPredicate`: `new` wins if its leader is a voter and it is higher in the order.
    fn better(&self, new: &Vote, current: &Vote) -> bool {
        self.cfg.is_voter(new.leader) && new.beats(current)
    }

    /// One pass of `lookForLeader`'s loop for a voter's notification.
    fn step(&mut self, from: ServerId, n: &Notification, now_ms: u64, out: &mut Vec<Output>) {
        if self.finalize_deadline_ms.is_some() {
            if self.better(&n.vote(), &self.proposal) {
                // The wait is over; the better vote goes through the loop.
                self.finalize_deadline_ms = None;
            } else {
                // Dropped, whatever its state; the 200 ms start again.
                self.finalize_deadline_ms = Some(now_ms.saturating_add(self.cfg.finalize_wait_ms));
                return;
            }
        }
        self.poll_deadline_ms = now_ms.saturating_add(self.notification_interval_ms);
        if !self.cfg.is_voter(n.leader) {
            return;
        }
        match n.state {
            PeerState::Looking => self.on_looking(from, n, now_ms, out),
            PeerState::Observing => {}
            PeerState::Following | PeerState::Leading => self.on_established(from, n, out),
        }
    }

    fn on_looking(&mut self, from: ServerId, n: &Notification, now_ms: u64, out: &mut Vec<Output>) {
        if self.initial.zxid == Zxid::NONE || n.zxid == Zxid::NONE {
            return;
        }
        let vote = n.vote();
        if n.round > self.logical_clock {
            self.logical_clock = n.round;
            self.received.clear();
            let base = if self.better(&vote, &self.initial) {
                vote
            } else {
                self.initial
            };
            self.proposal = Vote {
                round: self.logical_clock,
                ..base
            };
            self.broadcast(out);
        } else if n.round < self.logical_clock {
            return;
        } else if self.better(&vote, &self.proposal) {
            self.proposal = vote;
            self.broadcast(out);
        }
        self.received.insert(from, Ballot::of(n));
        self.check_proposal_quorum(now_ms);
    }

    fn check_proposal_quorum(&mut self, now_ms: u64) {
        let target = Ballot {
            vote: self.proposal,
            state: PeerState::Looking,
            version: NOTIFICATION_VERSION,
        };
        if self.has_quorum(&self.received, &target) {
            self.finalize_deadline_ms = Some(now_ms.saturating_add(self.cfg.finalize_wait_ms));
        }
    }

    fn on_established(&mut self, from: ServerId, n: &Notification, out: &mut Vec<Output>) {
        let ballot = Ballot::of(n);
        if n.round == self.logical_clock {
            self.received.insert(from, ballot);
            if self.has_quorum(&self.received, &ballot)
                && self.check_leader(&self.received, n.leader, n.round)
            {
                self.decide(n.vote(), DecidedBy::SameRound, out);
                return;
            }
        }
        self.out_of_election.insert(from, ballot);
        if self.has_quorum(&self.out_of_election, &ballot)
            && self.check_leader(&self.out_of_election, n.leader, n.round)
        {
            self.logical_clock = n.round;
            self.decide(n.vote(), DecidedBy::Ensemble, out);
        }
    }

    /// `SyncedLearnerTracker.hasAllQuorums` over one map: voters whose vote equals `target`.
    fn has_quorum(&self, votes: &BTreeMap<ServerId, Ballot>, target: &Ballot) -> bool {
        let agreeing = votes
            .iter()
            .filter(|(sid, b)| self.cfg.is_voter(**sid) && b.agrees(target))
            .count();
        agreeing >= self.cfg.quorum_size()
    }

    /// `checkLeader`: another leader must itself have said LEADING; if it is us, the votes
    /// must be of our round.
    fn check_leader(
        &self,
        votes: &BTreeMap<ServerId, Ballot>,
        leader: ServerId,
        round: Round,
    ) -> bool {
        if leader != self.cfg.my_id {
            votes
                .get(&leader)
                .is_some_and(|b| b.state == PeerState::Leading)
        } else {
            self.logical_clock == round
        }
    }

    fn decide(&mut self, vote: Vote, by: DecidedBy, out: &mut Vec<Output>) {
        let role = if vote.leader == self.cfg.my_id {
            Role::Leading
        } else if !self.cfg.observers.contains(&self.cfg.my_id) {
            // A voter, or a participant outside the config (Java's non-voting follower).
            Role::Following
        } else {
            Role::Observing
        };
        self.state = role.state();
        self.current = vote;
        self.finalize_deadline_ms = None;
        self.received.clear();
        self.out_of_election.clear();
        out.push(Output::Decided {
            leader: vote.leader,
            role,
            vote,
            by,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_000;

    fn sid(n: i64) -> ServerId {
        ServerId(n)
    }

    fn cfg(me: i64, voters: &[i64], observers: &[i64]) -> ElectionConfig {
        ElectionConfig::new(
            sid(me),
            voters.iter().copied().map(ServerId).collect(),
            observers.iter().copied().map(ServerId).collect(),
            b"version=0".to_vec(),
        )
        .unwrap()
    }

    fn vote(leader: i64, epoch: i64, zxid: i64, round: i64) -> Vote {
        Vote {
            leader: sid(leader),
            zxid: Zxid(zxid),
            round: Round(round),
            peer_epoch: Epoch(epoch),
        }
    }

    fn looking(v: Vote) -> Notification {
        Notification::new(PeerState::Looking, v, Vec::new())
    }

    fn with_state(state: PeerState, v: Vote) -> Notification {
        Notification::new(state, v, Vec::new())
    }

    /// A voter of `voters` with history (epoch, zxid), started at T0.
    fn voter(me: i64, voters: &[i64], epoch: i64, zxid: i64) -> (Election, Vec<Output>) {
        Election::start(cfg(me, voters, &[9]), Zxid(zxid), Epoch(epoch), T0)
    }

    fn sends(out: &[Output]) -> Vec<(ServerId, PeerState, Vote)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { to, msg } => Some((*to, msg.state, msg.vote())),
                Output::Decided { .. } => None,
            })
            .collect()
    }

    fn decided(out: &[Output]) -> Option<(ServerId, Role, Vote, DecidedBy)> {
        out.iter().find_map(|o| match o {
            Output::Decided {
                leader,
                role,
                vote,
                by,
            } => Some((*leader, *role, *vote, *by)),
            Output::Send { .. } => None,
        })
    }

    #[test]
    fn config_is_checked() {
        let set = |v: &[i64]| v.iter().copied().map(ServerId).collect::<BTreeSet<_>>();
        assert_eq!(
            ElectionConfig::new(sid(1), set(&[]), set(&[]), vec![]),
            Err(ElectionConfigError::NoVoters)
        );
        // A server outside the config (removed by a reconfig) takes part without a vote.
        assert!(ElectionConfig::new(sid(9), set(&[1, 2]), set(&[3]), vec![]).is_ok());
        assert_eq!(
            ElectionConfig::new(sid(1), set(&[1, 2]), set(&[2]), vec![]),
            Err(ElectionConfigError::VoterAndObserver(sid(2)))
        );
        assert_eq!(
            ElectionConfig::new(ServerId::NONE, set(&[i64::MIN]), set(&[]), vec![]),
            Err(ElectionConfigError::ReservedId(ServerId::NONE))
        );
        let mut c = cfg(1, &[1, 2, 3], &[]);
        c.min_notification_interval_ms = 0;
        assert!(matches!(
            c.validate(),
            Err(ElectionConfigError::BadInterval { .. })
        ));
        assert_eq!(cfg(1, &[1, 2, 3], &[]).quorum_size(), 2);
        assert_eq!(cfg(1, &[1, 2, 3, 4], &[]).quorum_size(), 3);
        assert_eq!(cfg(1, &[1, 2, 3, 4, 5], &[]).quorum_size(), 3);
    }

    #[test]
    fn start_votes_for_itself_in_round_one_and_tells_every_other_voter() {
        let (e, out) = voter(2, &[1, 2, 3], 1, 0x1_0000_0005);
        assert_eq!(e.state(), PeerState::Looking);
        assert_eq!(e.round(), Round(1));
        let own = vote(2, 1, 0x1_0000_0005, 1);
        assert_eq!(e.current_vote(), own);
        // Not to itself (counted internally), not to the observer.
        assert_eq!(
            sends(&out),
            vec![
                (sid(1), PeerState::Looking, own),
                (sid(3), PeerState::Looking, own)
            ]
        );
        let Output::Send { msg, .. } = &out[0] else {
            unreachable!()
        };
        assert_eq!(msg.config, b"version=0");
        assert_eq!(msg.version, NOTIFICATION_VERSION);
    }

    #[test]
    fn an_observer_starts_with_the_min_value_vote_and_asks_every_voter() {
        let (e, out) = Election::start(cfg(4, &[1, 2, 3], &[4]), Zxid(7), Epoch(1), T0);
        assert_eq!(e.current_vote(), Vote::observer(Round(1)));
        let to: Vec<_> = sends(&out).iter().map(|s| s.0).collect();
        assert_eq!(to, vec![sid(1), sid(2), sid(3)]);
    }

    #[test]
    fn same_round_better_vote_is_adopted_and_rebroadcast_worse_is_not() {
        let (mut e, _) = voter(1, &[1, 2, 3, 4, 5], 1, 0x1_0000_0005);
        // Worse (lower zxid): kept, nothing sent.
        let out = e.on_notification(sid(2), looking(vote(2, 1, 0x1_0000_0001, 1)), T0 + 5);
        assert!(out.is_empty());
        assert_eq!(e.current_vote().leader, sid(1));
        // Better (higher epoch beats a higher zxid): adopted and sent to every other voter.
        let better = vote(3, 2, 0x2_0000_0000, 1);
        let out = e.on_notification(sid(3), looking(better), T0 + 6);
        assert_eq!(e.current_vote(), better);
        let s = sends(&out);
        assert_eq!(s.len(), 4);
        assert!(s
            .iter()
            .all(|(_, st, v)| *st == PeerState::Looking && *v == better));
        // Only 1 and 3 back it of 5 voters: no quorum yet.
        assert!(!e.is_finalizing());
    }

    #[test]
    fn higher_round_resets_the_votes_and_compares_with_the_initial_vote() {
        let (mut e, _) = voter(1, &[1, 2, 3, 4, 5], 0, 5);
        // Round 1: adopt 5's strong vote; 4 says FOLLOWING 2 in round 1 (recorded).
        let strong = vote(5, 3, 0x3_0000_0001, 1);
        e.on_notification(sid(5), looking(strong), T0 + 1);
        let est = vote(2, 1, 0x1_0000_0001, 1);
        e.on_notification(sid(4), with_state(PeerState::Following, est), T0 + 2);
        assert!(!e.is_finalizing());
        // Round 3 from 2 with a vote between the initial vote and the round-1 proposal: the
        // round jumps and the proposal is 2's vote (it beats our *initial* vote even though it
        // loses to the round-1 proposal).
        let mid = vote(2, 1, 0x1_0000_0001, 3);
        let out = e.on_notification(sid(2), looking(mid), T0 + 3);
        assert_eq!(e.round(), Round(3));
        assert_eq!(e.current_vote(), mid);
        assert_eq!(sends(&out).len(), 4);
        // 5 still votes in round 1: dropped, and answered with our round-3 proposal.
        let out = e.on_notification(sid(5), looking(strong), T0 + 4);
        assert_eq!(sends(&out), vec![(sid(5), PeerState::Looking, mid)]);
        assert_eq!(e.current_vote(), mid);
        // The round's votes forgot 4's round-1 FOLLOWING: with it, {1 (LOOKING, same vote),
        // 2, 4} would already be a quorum for leader 2 in round 3.
        let out = e.on_notification(sid(2), with_state(PeerState::Leading, mid), T0 + 5);
        assert!(decided(&out).is_none());
        // The out-of-election votes kept it: 4, 2 and now 3 (another round) make a quorum.
        let out = e.on_notification(
            sid(3),
            with_state(PeerState::Following, vote(2, 1, 1, 2)),
            T0 + 6,
        );
        assert_eq!(decided(&out).unwrap().3, DecidedBy::Ensemble);
        assert_eq!(e.round(), Round(2));
        // A weak vote in a higher round: we go back to our own vote in that round.
        let (mut e, _) = voter(1, &[1, 2, 3], 0, 5);
        e.on_notification(sid(3), looking(vote(3, 9, 9, 1)), T0 + 1);
        assert!(e.is_finalizing());
        e.on_tick(T0 + 1); // not yet
        let (mut e, _) = voter(1, &[1, 2, 3, 4, 5], 0, 5);
        e.on_notification(sid(3), looking(vote(3, 9, 9, 1)), T0 + 1);
        e.on_notification(sid(2), looking(vote(2, 0, 1, 4)), T0 + 2);
        assert_eq!(e.round(), Round(4));
        assert_eq!(e.current_vote(), vote(1, 0, 5, 4));
    }

    #[test]
    fn a_higher_round_that_is_not_better_is_dropped_during_the_finalize_wait() {
        let (mut e, _) = voter(1, &[1, 2, 3], 0, 0);
        let three = vote(3, 0, 0, 1);
        e.on_notification(sid(3), looking(three), T0 + 1);
        assert!(e.is_finalizing());
        e.on_notification(sid(2), looking(vote(2, 0, 0, 9)), T0 + 2);
        assert_eq!(e.round(), Round(1));
        let out = e.on_tick(T0 + 202);
        assert_eq!(decided(&out).unwrap().2, three);
    }

    #[test]
    fn lower_round_is_ignored_but_answered() {
        let (mut e, _) = voter(1, &[1, 2, 3], 0, 0);
        e.on_notification(sid(2), looking(vote(2, 0, 0, 3)), T0 + 1);
        assert_eq!(e.round(), Round(3));
        let proposal = e.current_vote();
        // 3 proposes us in round 1: would be a quorum with us, but the round is old.
        let out = e.on_notification(sid(3), looking(vote(3, 0, 0, 1)), T0 + 2);
        assert_eq!(sends(&out), vec![(sid(3), PeerState::Looking, proposal)]);
        assert_eq!(e.round(), Round(3));
        assert!(!e.is_finalizing());
    }

    #[test]
    fn quorum_then_finalize_wait_then_decide() {
        let (mut e, _) = voter(3, &[1, 2, 3], 0, 0);
        let mine = e.current_vote();
        // 1 adopted our vote: {1, 3} is a quorum of 3.
        let out = e.on_notification(sid(1), looking(mine), T0 + 10);
        assert!(out.is_empty());
        assert!(e.is_finalizing());
        assert_eq!(e.next_deadline_ms(), Some(T0 + 210));
        assert!(e.on_tick(T0 + 209).is_empty());
        // A vote that is not better, even a FOLLOWING one, is dropped and restarts the wait.
        let out = e.on_notification(
            sid(2),
            with_state(PeerState::Leading, vote(2, 0, 0, 1)),
            T0 + 150,
        );
        assert!(out.is_empty());
        assert_eq!(e.next_deadline_ms(), Some(T0 + 350));
        assert!(e.on_tick(T0 + 349).is_empty());
        let out = e.on_tick(T0 + 350);
        assert_eq!(
            decided(&out),
            Some((sid(3), Role::Leading, mine, DecidedBy::Proposal))
        );
        assert_eq!(e.state(), PeerState::Leading);
        assert_eq!(e.next_deadline_ms(), None);
        assert!(e.on_tick(T0 + 10_000).is_empty());
    }

    #[test]
    fn a_better_vote_during_the_finalize_wait_ends_it() {
        let (mut e, _) = voter(1, &[1, 2, 3], 0, 0);
        let two = vote(2, 0, 0, 1);
        e.on_notification(sid(2), looking(two), T0 + 1);
        assert!(e.is_finalizing(), "{{1, 2}} agree on 2");
        let three = vote(3, 0, 0, 1);
        let out = e.on_notification(sid(3), looking(three), T0 + 100);
        assert_eq!(e.current_vote(), three);
        assert_eq!(sends(&out).len(), 2);
        // {1, 3} now agree on 3: a fresh wait, then FOLLOWING 3.
        assert_eq!(e.next_deadline_ms(), Some(T0 + 300));
        assert!(e.on_tick(T0 + 210).is_empty());
        let out = e.on_tick(T0 + 300);
        assert_eq!(
            decided(&out),
            Some((sid(3), Role::Following, three, DecidedBy::Proposal))
        );
    }

    #[test]
    fn the_finalize_wait_drops_an_established_ensemble_s_answers() {
        // election.md §5 "observed pitfall": sid 3 adopts sid 1's stale vote, {1, 3} agree, and
        // the LEADING/FOLLOWING answers for leader 2 are dropped during the wait.
        let (mut e, _) = voter(3, &[1, 2, 3], 0, 0);
        let stale = vote(1, 1, 0x1_0000_0009, 1);
        e.on_notification(sid(1), looking(stale), T0 + 1);
        assert!(e.is_finalizing());
        let est = vote(2, 1, 0, 1);
        e.on_notification(sid(2), with_state(PeerState::Leading, est), T0 + 2);
        e.on_notification(sid(1), with_state(PeerState::Following, est), T0 + 3);
        let out = e.on_tick(T0 + 203);
        assert_eq!(decided(&out).unwrap().0, sid(1));
        // Following 1 fails; round 2 joins leader 2 from the answers, without a wait.
        let out = e.look_again(Zxid(0), Epoch(0), T0 + 5_000);
        assert_eq!(e.round(), Round(2));
        assert_eq!(sends(&out)[0].2, vote(3, 0, 0, 2));
        e.on_notification(sid(1), with_state(PeerState::Following, est), T0 + 5_001);
        assert_eq!(e.state(), PeerState::Looking);
        let out = e.on_notification(sid(2), with_state(PeerState::Leading, est), T0 + 5_002);
        assert_eq!(
            decided(&out),
            Some((sid(2), Role::Following, est, DecidedBy::Ensemble))
        );
        assert_eq!(e.round(), Round(1), "the round becomes the ensemble's");
    }

    #[test]
    fn joining_an_established_ensemble_needs_a_quorum_and_the_leader_s_own_word() {
        let (mut e, _) = voter(3, &[1, 2, 3, 4, 5], 0, 0);
        let est = vote(2, 4, 0x4_0000_0010, 7);
        for (from, t) in [(1, 1), (4, 2), (5, 3)] {
            let out = e.on_notification(sid(from), with_state(PeerState::Following, est), T0 + t);
            assert!(out.is_empty(), "checkLeader: 2 has not said LEADING yet");
        }
        // A different peer epoch does not agree (both version 2).
        let mut other = est;
        other.peer_epoch = Epoch(3);
        let out = e.on_notification(sid(2), with_state(PeerState::Leading, other), T0 + 4);
        assert!(out.is_empty());
        let out = e.on_notification(sid(2), with_state(PeerState::Leading, est), T0 + 5);
        assert_eq!(
            decided(&out),
            Some((sid(2), Role::Following, est, DecidedBy::Ensemble))
        );
        assert_eq!(e.round(), Round(7));
        assert_eq!(e.state(), PeerState::Following);
        // The next election starts from the ensemble's round.
        e.look_again(Zxid(0), Epoch(0), T0 + 9);
        assert_eq!(e.round(), Round(8));
    }

    #[test]
    fn version_zero_votes_agree_on_the_leader_alone() {
        // Vote.equals skips the peer epoch when exactly one side has version 0.
        let (mut e, _) = voter(3, &[1, 2, 3], 0, 0);
        let mut old = with_state(PeerState::Following, vote(2, 1, 0, 5));
        old.version = 0;
        e.on_notification(sid(1), old, T0 + 1);
        let out = e.on_notification(
            sid(2),
            with_state(PeerState::Leading, vote(2, 2, 0, 5)),
            T0 + 2,
        );
        assert_eq!(decided(&out).unwrap().0, sid(2));
    }

    #[test]
    fn following_and_leading_in_my_own_round_count_with_the_round_s_votes() {
        let (mut e, _) = voter(3, &[1, 2, 3], 0, 0);
        let est = vote(2, 1, 0, 1);
        e.on_notification(sid(1), with_state(PeerState::Following, est), T0 + 1);
        let out = e.on_notification(sid(2), with_state(PeerState::Leading, est), T0 + 2);
        assert_eq!(
            decided(&out),
            Some((sid(2), Role::Following, est, DecidedBy::SameRound))
        );
    }

    #[test]
    fn a_peer_named_leader_by_a_quorum_of_followers_leads_only_in_its_own_round() {
        let (mut e, _) = voter(2, &[1, 2, 3], 1, 0);
        let me = vote(2, 1, 0, 4);
        e.on_notification(sid(1), with_state(PeerState::Following, me), T0 + 1);
        let out = e.on_notification(sid(3), with_state(PeerState::Following, me), T0 + 2);
        assert!(out.is_empty(), "round 4 is not ours (1)");
        // In our round our own LOOKING vote equals theirs field for field, so one follower
        // plus ourselves is a quorum.
        let (mut e, _) = voter(2, &[1, 2, 3], 1, 0);
        let me = vote(2, 1, 0, 1);
        let out = e.on_notification(sid(1), with_state(PeerState::Following, me), T0 + 1);
        assert_eq!(
            decided(&out),
            Some((sid(2), Role::Leading, me, DecidedBy::SameRound))
        );
    }

    #[test]
    fn an_observer_learns_the_leader_from_the_ensemble_without_voting() {
        let (mut o, _) = Election::start(cfg(4, &[1, 2, 3], &[4]), Zxid(0), Epoch(0), T0);
        let est = vote(2, 1, 0, 1);
        // The capture's order: FOLLOWING(1), LEADING(2) -> OBSERVING 2.
        assert!(o
            .on_notification(sid(1), with_state(PeerState::Following, est), T0 + 1)
            .is_empty());
        let out = o.on_notification(sid(2), with_state(PeerState::Leading, est), T0 + 2);
        assert_eq!(
            decided(&out),
            Some((sid(2), Role::Observing, est, DecidedBy::SameRound))
        );
        assert_eq!(o.state(), PeerState::Observing);
    }

    #[test]
    fn an_observer_follows_a_quorum_of_looking_voters_but_is_not_one_of_them() {
        let (mut o, _) = Election::start(cfg(4, &[1, 2, 3], &[4]), Zxid(0), Epoch(0), T0);
        let three = vote(3, 0, 0, 2);
        // A voter's round-2 vote: the observer jumps to round 2 and adopts it.
        let out = o.on_notification(sid(3), looking(three), T0 + 1);
        assert_eq!(o.current_vote(), three);
        assert_eq!(sends(&out).len(), 3, "to the three voters");
        // Its own (adopted) vote does not count: one voter is not a quorum of 3.
        assert!(!o.is_finalizing());
        o.on_notification(sid(2), looking(three), T0 + 2);
        assert!(o.is_finalizing());
        let out = o.on_tick(T0 + 202);
        assert_eq!(decided(&out).unwrap().1, Role::Observing);
        // Observers never lead and their votes never count.
        let (mut v, _) = voter(1, &[1, 2, 3], 0, 0);
        let out = v.on_notification(sid(9), looking(vote(1, 0, 0, 1)), T0 + 1);
        assert_eq!(
            sends(&out),
            vec![(sid(9), PeerState::Looking, vote(1, 0, 0, 1))]
        );
        assert!(!v.is_finalizing());
    }

    #[test]
    fn votes_for_non_voters_are_ignored() {
        let (mut e, _) = voter(1, &[1, 2, 3], 0, 0);
        let out = e.on_notification(sid(2), looking(vote(4, 9, 9, 1)), T0 + 1);
        assert!(out.is_empty());
        assert_eq!(e.current_vote().leader, sid(1));
        let out = e.on_notification(sid(2), looking(vote(9, 9, 9, 5)), T0 + 2);
        assert!(out.is_empty());
        assert_eq!(e.round(), Round(1));
    }

    #[test]
    fn a_missing_database_ignores_looking_votes() {
        let (mut e, _) = voter(1, &[1, 2, 3], 0, -1);
        e.on_notification(sid(2), looking(vote(2, 0, 5, 1)), T0 + 1);
        e.on_notification(sid(3), looking(vote(2, 0, 5, 1)), T0 + 2);
        assert_eq!(e.current_vote().leader, sid(1));
        assert!(!e.is_finalizing());
        let (mut e, _) = voter(1, &[1, 2, 3], 0, 0);
        e.on_notification(sid(2), looking(vote(2, 0, -1, 1)), T0 + 1);
        assert_eq!(e.current_vote().leader, sid(1));
    }

    #[test]
    fn a_single_voter_elects_itself_after_the_wait() {
        let (mut e, out) = Election::start(cfg(1, &[1], &[]), Zxid(3), Epoch(0), T0);
        assert!(out.is_empty());
        assert!(e.is_finalizing());
        assert_eq!(decided(&e.on_tick(T0 + 200)).unwrap().1, Role::Leading);
    }

    #[test]
    fn quiet_periods_resend_with_exponential_back_off_up_to_the_ceiling() {
        let (mut e, _) = voter(1, &[1, 2, 3], 0, 0);
        let mut at = T0;
        let mut gaps = Vec::new();
        for _ in 0..12 {
            let next = e.next_deadline_ms().unwrap();
            assert!(e.on_tick(next - 1).is_empty());
            let out = e.on_tick(next);
            assert_eq!(sends(&out).len(), 2);
            gaps.push(next - at);
            at = next;
        }
        assert_eq!(
            gaps,
            [200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000, 60000]
        );
        // A notification restarts the wait at the current interval (it does not reset it).
        e.on_notification(sid(2), looking(vote(2, 0, -7, 1)), at + 5);
        assert_eq!(e.current_vote().leader, sid(1));
        assert_eq!(e.next_deadline_ms(), Some(at + 5 + 60_000));
        // A new election starts again at 200 ms.
        e.on_notification(sid(3), looking(vote(1, 0, 0, 1)), at + 6);
        e.on_tick(at + 206);
        assert_eq!(e.state(), PeerState::Leading);
        e.look_again(Zxid(0), Epoch(0), at + 1000);
        assert_eq!(e.next_deadline_ms(), Some(at + 1200));
    }

    #[test]
    fn a_decided_peer_answers_looking_voters_and_non_voters_only() {
        let (mut e, _) = voter(3, &[1, 2, 3], 0, 0);
        e.on_notification(sid(1), looking(vote(3, 0, 0, 1)), T0);
        e.on_tick(T0 + 200);
        assert_eq!(e.state(), PeerState::Leading);
        // Synced into epoch 1: updateElectionVote.
        let synced = vote(3, 1, 0, 1);
        e.answer_as(PeerState::Leading, synced);
        assert_eq!(e.current_vote(), synced);
        let out = e.on_notification(sid(2), looking(vote(2, 0, 0, 6)), T0 + 300);
        assert_eq!(sends(&out), vec![(sid(2), PeerState::Leading, synced)]);
        let out = e.on_notification(sid(2), with_state(PeerState::Following, synced), T0 + 301);
        assert!(out.is_empty());
        // An observer is answered whatever its state, with our logicalclock as round.
        let out = e.on_notification(sid(9), with_state(PeerState::Observing, synced), T0 + 302);
        assert_eq!(sends(&out), vec![(sid(9), PeerState::Leading, synced)]);
        // Our own looped-back notification is not an input.
        assert!(e
            .on_notification(sid(3), looking(vote(3, 0, 0, 1)), T0 + 303)
            .is_empty());
    }

    #[test]
    fn a_looking_voter_and_a_looking_observer_do_not_answer_each_other_forever() {
        let (mut v, _) = voter(1, &[1, 2, 3], 0, 0);
        let (mut o, _) = Election::start(cfg(9, &[1, 2, 3], &[9]), Zxid(0), Epoch(0), T0);
        o.on_notification(sid(2), looking(vote(2, 0, 0, 5)), T0);
        assert_eq!(o.round(), Round(5));
        // The observer asks; the voter (round 1) answers; the observer does not "help" it.
        let ask = looking(o.current_vote());
        let answer = v.on_notification(sid(9), ask.clone(), T0 + 1);
        let (to, st, said) = sends(&answer)[0];
        assert_eq!((to, st, said.round), (sid(9), PeerState::Looking, Round(1)));
        assert!(o.on_notification(sid(1), looking(said), T0 + 2).is_empty());
        // Java observers do "help": the voter does not repeat the same answer right away...
        assert!(v.on_notification(sid(9), ask.clone(), T0 + 3).is_empty());
        // ...but answers a question again after the resend interval, or when its vote changed.
        assert_eq!(
            sends(&v.on_notification(sid(9), ask.clone(), T0 + 201)).len(),
            1
        );
        v.on_notification(sid(3), looking(vote(3, 0, 0, 1)), T0 + 202);
        let out = v.on_notification(sid(9), ask, T0 + 203);
        assert_eq!(sends(&out)[0].2.leader, sid(3));
    }

    #[test]
    #[should_panic(expected = "still looking")]
    fn look_again_while_looking_is_a_bug() {
        let (mut e, _) = voter(1, &[1, 2, 3], 0, 0);
        e.look_again(Zxid(0), Epoch(0), T0);
    }
}
