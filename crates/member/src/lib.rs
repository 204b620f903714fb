//! One member of a replicated ensemble as a state machine without IO: it owns the node
//! [`Core`], the [`Election`] and the Zab role it won ([`Leader`] or [`Learner`]), takes
//! [`Event`]s with the time as an argument, and answers with [`Effect`]s for its driver to
//! carry out. It reads no clock, touches no socket or file and never blocks, so the server
//! (`zooid-server`'s `ensemble` module) and the simulator (`zooid-sim`) run the same code.
//!
//! ```text
//! LOOKING ──Decided──▶ leading:   the tree must reflect exactly the log (from memory, or a
//!    ▲                            Reload job); Leader::new; serve once Established (the core
//!    │                            numbers txns from the new epoch)
//!    │                following / observing: same tree rule; Dial the leader; Learner::new
//!    │                            when the link is up; serve at UPTODATE
//!    └── StepDown, a learner error, the leader's link lost: close every client, look again
//! ```
//! Like ZooKeeper, a member that is not serving closes client connections.
//!
//! **Configs.** With `reconfigEnabled`, a member takes on a newer config when it applies a
//! committed reconfig (COMMITANDACTIVATE, INFORMANDACTIVATE, the leader's own commit), from
//! NEWLEADER at UPTODATE, or from a peer's vote while looking (then its election starts a new
//! round); [`Effect::Reconfigured`] has the driver record it. It remembers the newest
//! reconfig it logged: as leader it announces that one if it is newer (it may have committed
//! unheard). A learner whose role or leader a config changes looks again.
//!
//! **Durability.** A new role starts from how far the log is known durable (the `Logged`
//! reports, whatever the phase), never from how far it was written.
//!
//! **Storage jobs.** What must be on disk before the protocol may go on (an epoch file before
//! ACKEPOCH; a TRUNC or SNAP before the next append; a reload before a role starts) is a
//! [`Job`]. While one is out, the member holds back: the rest of the role's outputs wait in
//! `steps`, and events that arrive wait in `deferred`, until [`Event::Stored`] brings the
//! result; then both are worked off in order. Appends are not jobs: the driver logs them in
//! order and reports [`Event::Logged`].
//!
//! **Order.** Role outputs are carried out first in, first out, including those that outputs
//! cause (a COMMIT's reply, a forwarded request's proposal): every link sees messages in the
//! order its role produced them, and a SNAP stream reflects exactly the commits before it.
//!
//! **Time.** Every input comes with a [`Now`]; deadlines (initLimit for reaching the leader,
//! the read-only wait) run on its monotonic part.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use zooid_node::core::EnsembleView;
use zooid_node::core::Now;
use zooid_node::{Action, Core, CoreConfig, Input, Role as CoreRole};
use zooid_proto::TxnEntry;
use zooid_storage::snapshot::{FrozenSnapshot, Layout};
use zooid_tree::DataTree;
use zooid_zab::{
    ConfigMember, ConnId as LinkConn, Election, ElectionConfig, ElectionConfigError, Epoch,
    ForwardedRequest, Leader, LeaderConfig, LeaderOutput, LeaderPhase, LeaderStart, Learner,
    LearnerAction, LearnerConfig, LearnerKind, LearnerStart, Notification,
    Output as ElectionOutput, PeerState, QuorumMessage, QuorumVerifier, Role, ServerId, Timing,
    Vote, ZabError, Zxid, DEFAULT_COMMIT_LOG_COUNT,
};

/// A quorum-port connection. The driver numbers the ones it accepts; the member numbers the
/// ones it dials from [`DIALED_LINKS`] up, so the two never meet.
pub type LinkId = u64;

/// The first number of a link this member dials.
pub const DIALED_LINKS: LinkId = 1 << 48;

/// Logged txns kept in memory, so a role change needs no log reads: enough for the leader's
/// committed window and for the proposals a member logged but did not apply.
pub const RECENT_TXNS: usize = 4 * DEFAULT_COMMIT_LOG_COUNT;

/// How long between attempts to reach a leader that does not answer yet.
const CONNECT_RETRY_MS: i64 = 200;

/// What a member needs to know about the ensemble.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    pub my_id: ServerId,
    pub timing: Timing,
    /// The QuorumVerifier text sent in NEWLEADER and notifications (empty: none is sent).
    pub config_text: Vec<u8>,
    /// Every member, its addresses and whether it observes (reconfig requests start from
    /// them).
    pub config: Vec<ConfigMember>,
    /// The config's version: 0 for a static one, the zxid of the reconfig that made it.
    pub config_version: i64,
    pub core: CoreConfig,
    /// `readonlymode.enabled`: while cut off from a quorum, serve reads to clients that
    /// accept a read-only server.
    pub read_only_mode: bool,
    /// The snapshot layout of SNAP streams this member sends as leader.
    pub layout: Layout,
    /// Committed txns a leader keeps in memory for DIFFs (`zookeeper.commitLogCount`; at
    /// most [`DEFAULT_COMMIT_LOG_COUNT`] are remembered); older ones are read from the log.
    pub commit_log_count: usize,
}

impl MemberConfig {
    fn voters(&self) -> BTreeSet<ServerId> {
        self.config
            .iter()
            .filter(|m| !m.observer)
            .map(|m| m.sid)
            .collect()
    }

    fn observers(&self) -> BTreeSet<ServerId> {
        self.config
            .iter()
            .filter(|m| m.observer)
            .map(|m| m.sid)
            .collect()
    }

    fn is_member(&self, sid: ServerId) -> bool {
        self.config.iter().any(|m| m.sid == sid)
    }

    /// The leader's in-memory committed window (what memory can hold of it).
    fn commit_window(&self) -> usize {
        self.commit_log_count.clamp(1, DEFAULT_COMMIT_LOG_COUNT)
    }

    fn i_observe(&self) -> bool {
        self.config
            .iter()
            .any(|m| m.sid == self.my_id && m.observer)
    }
}

/// What the member starts from: the data as recovered from disk.
pub struct Recovered {
    pub tree: DataTree,
    /// The newest logged txns, oldest first (at most [`RECENT_TXNS`] are kept).
    pub tail: Vec<TxnEntry>,
    pub accepted_epoch: Epoch,
    pub current_epoch: Epoch,
}

/// Why a member cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the ensemble's membership is not usable: {0}")]
    Membership(#[from] ElectionConfigError),
    #[error("server {0} is not a member of the ensemble it was given")]
    NotAMember(ServerId),
}

/// Why a role ended and the member looks for a leader again.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LookAgain {
    #[error("the leader stepped down: {0}")]
    StepDown(String),
    #[error("following failed: {0}")]
    Learner(#[from] ZabError),
    #[error("lost the leader: {0}")]
    LostLeader(String),
    #[error("cannot reach the leader {0} within initLimit")]
    LeaderUnreachable(ServerId),
    #[error("the elected leader {0} is not in the configuration")]
    UnknownLeader(ServerId),
    #[error("cannot propose: {0}")]
    Propose(String),
    #[error("a storage job failed: {0}")]
    Storage(String),
    #[error("a reconfig changed this member's role or leader")]
    Reconfigured,
    #[error("after TRUNC to {want:#x} the data on disk ends at {got:#x}")]
    TruncMismatch { want: i64, got: i64 },
}

/// The two epoch files in the snapshot directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochFile {
    Accepted,
    Current,
}

impl EpochFile {
    pub fn name(self) -> &'static str {
        match self {
            EpochFile::Accepted => "acceptedEpoch",
            EpochFile::Current => "currentEpoch",
        }
    }
}

/// Disk work the protocol waits for; answered by [`Event::Stored`]. Jobs that replace the
/// data (all but `WriteEpoch`) come after every append the driver was given, made durable,
/// and after any snapshot being written of the old tree is abandoned.
#[derive(Debug)]
pub enum Job {
    /// Write an epoch file durably; answer [`Stored::Done`].
    WriteEpoch { file: EpochFile, epoch: Epoch },
    /// Recover the data from disk, as at start-up; answer [`Stored::Data`].
    Reload,
    /// TRUNC: drop every logged txn above `zxid` and the snapshots past it, then recover;
    /// answer [`Stored::Data`].
    Truncate { zxid: Zxid },
    /// SNAP: store the leader's snapshot (its serialized tree) as the newest, drop logged txns
    /// and snapshots past `zxid`, and answer [`Stored::Data`] with the tree it holds.
    StoreSnapshot { zxid: Zxid, body: Vec<u8> },
}

/// A job's result.
pub enum Stored {
    Done,
    Data(Box<Recovered>),
    Failed(String),
}

/// What the member is told.
pub enum Event {
    Vote {
        from: ServerId,
        n: Notification,
    },
    /// A quorum link is open: one this member dialed (its own number), or one accepted.
    LinkUp {
        link: LinkId,
    },
    LinkMessage {
        link: LinkId,
        msg: QuorumMessage,
    },
    /// The items of a SNAP stream, up to (not including) the signature.
    LinkSnapshot {
        link: LinkId,
        body: Vec<u8>,
    },
    /// The link is gone (or the dial failed); `why` for the log.
    LinkDown {
        link: LinkId,
        why: String,
    },
    /// Every txn appended up to `zxid` is durable.
    Logged {
        zxid: i64,
    },
    /// The job out has finished.
    Stored(Stored),
    /// What [`Effect::ReadLog`] read (`None`: the log does not hold it).
    LogRead {
        link: LinkId,
        txns: Option<Vec<TxnEntry>>,
    },
    /// Timers: election resends, pings, silence, the read-only wait.
    Tick,
}

/// What the driver must do, in order.
pub enum Effect {
    /// To a client connection (only `Send` and `Close`).
    Client(Action),
    /// Close every client connection: the member stops serving.
    CloseClients,
    Vote {
        to: ServerId,
        msg: Notification,
    },
    /// Open a quorum link to `to`'s quorum port, numbered `link`; answer LinkUp or LinkDown.
    Dial {
        link: LinkId,
        to: ServerId,
    },
    Link {
        link: LinkId,
        msg: QuorumMessage,
    },
    /// Stream this snapshot on the link (items, then the signature), after what was queued
    /// before and before what comes after.
    StreamSnapshot {
        link: LinkId,
        snapshot: FrozenSnapshot,
    },
    CloseLink {
        link: LinkId,
    },
    /// Log this entry; report durability with [`Event::Logged`].
    Append {
        zxid: i64,
        entry: Vec<u8>,
    },
    /// Start this job; nothing waits on the member meanwhile except its own progress.
    Storage(Job),
    /// Read the committed txns `from..=to` from the txn log for the learner on `link` (it is
    /// behind the leader's in-memory window), off the member's task; answer with
    /// [`Event::LogRead`] (`None` when the log does not hold `from`, or reading it is not
    /// worth it: the learner then gets a SNAP).
    ReadLog {
        link: LinkId,
        from: Zxid,
        to: Zxid,
    },
    /// The ensemble's configuration changed (a reconfig committed, or a newer config was
    /// heard): record it as ZooKeeper does (the dynamic config file) and reach the members by
    /// their new addresses.
    Reconfigured {
        members: Vec<ConfigMember>,
        version: i64,
        text: Vec<u8>,
    },
}

/// Figures for srvr / stat / mntr.
#[derive(Debug, Clone, Default)]
pub struct PeerFacts {
    pub state: &'static str,
    /// ZooKeeper's `peer_state`: e.g. `following - broadcast`.
    pub peer_state: String,
    pub pending_syncs: usize,
    pub leader_uptime_ms: u64,
    pub last_proposal_size: i64,
    pub max_proposal_size: i64,
    pub min_proposal_size: i64,
    pub leader: Option<i64>,
    pub learners: usize,
    pub synced_followers: usize,
    pub synced_observers: usize,
    pub quorum_size: usize,
    /// The current configuration's text (`conf`'s membership).
    pub membership: String,
}

/// What this member is doing.
enum Phase {
    Looking,
    Leading {
        leader: Box<Leader>,
        links: BTreeSet<LinkId>,
    },
    Connecting {
        leader: ServerId,
        link: LinkId,
        /// Give up and look again after this (initLimit), monotonic ms.
        until: i64,
        retry_at: Option<i64>,
    },
    Learning {
        leader: ServerId,
        link: LinkId,
        learner: Box<Learner>,
    },
}

/// A role output not carried out yet.
enum Step {
    Leader(LeaderOutput),
    Learner(LearnerAction),
}

/// What to do once a reload brings the tree.
#[derive(Debug, Clone, Copy)]
enum Then {
    Lead,
    Follow(ServerId),
    ReadOnly,
}

/// The job out, and what its result is for.
enum Waiting {
    Epoch(EpochFile, Epoch),
    Load(Then),
    Truncate(Zxid),
    Snapshot(Zxid),
}

pub struct Member {
    cfg: MemberConfig,
    core: Core,
    election: Election,
    phase: Phase,
    accepted_epoch: Epoch,
    current_epoch: Epoch,
    /// Quorum links this member dialed (to a leader); never taken as learners.
    dialed: HashSet<LinkId>,
    next_dial: LinkId,
    /// Links accepted while not leading, with what they said so far.
    waiting_links: HashMap<LinkId, Vec<QuorumMessage>>,
    /// Whether clients are served (established leader, learner after UPTODATE, read-only).
    serving: bool,
    /// The last zxid handed to the log (or left in the log by a TRUNC or SNAP).
    last_logged: i64,
    /// The log is durable through this zxid: the newest `Logged` report (everything, after a
    /// data job, which makes the log durable first, and at start). A new role starts from
    /// it, so a learner never ACKs NEWLEADER for appends of an earlier role not yet synced.
    durable: i64,
    /// Txns appended since [`Member::take_appended`] last asked, for the snapshot schedule.
    appended: u64,
    /// When this member was established as leader (monotonic ms).
    led_since: Option<i64>,
    /// The newest logged txns, oldest first (see [`RECENT_TXNS`]).
    recent: VecDeque<TxnEntry>,
    /// `recent` holds every txn logged after this zxid (until it first drops one).
    recent_since: Option<i64>,
    /// Sizes of proposals: last, max, min (-1 before the first).
    proposal_sizes: (i64, i64, i64),
    /// Since when this member has been looking for a leader (monotonic ms).
    looking_since: Option<i64>,
    /// Serving read-only while it looks (`readonlymode.enabled`).
    read_only: bool,
    steps: VecDeque<Step>,
    job: Option<Waiting>,
    deferred: VecDeque<Event>,
    effects: Vec<Effect>,
    /// The newest reconfig txn logged (its zxid and config text): a leader announces it if
    /// it is newer than the config (it may have committed unheard).
    last_seen: Option<(i64, Vec<u8>)>,
}

impl Member {
    /// Start looking, from the recovered data.
    pub fn start(cfg: MemberConfig, data: Recovered, now: Now) -> Result<Member, StartError> {
        if !cfg.is_member(cfg.my_id) {
            return Err(StartError::NotAMember(cfg.my_id));
        }
        let last = data.tree.last_zxid();
        let ecfg = ElectionConfig::new(
            cfg.my_id,
            cfg.voters(),
            cfg.observers(),
            cfg.config_text.clone(),
        )?;
        let (election, out) = Election::start(ecfg, Zxid(last), data.current_epoch, ms(now));
        let core = Core::new(cfg.core.clone(), DataTree::new(), now);
        let mut member = Member {
            core,
            election,
            phase: Phase::Looking,
            accepted_epoch: data.accepted_epoch,
            current_epoch: data.current_epoch,
            dialed: HashSet::new(),
            next_dial: DIALED_LINKS,
            waiting_links: HashMap::new(),
            serving: false,
            last_logged: last,
            durable: last,
            appended: 0,
            led_since: None,
            recent: VecDeque::new(),
            recent_since: Some(last),
            proposal_sizes: (-1, -1, -1),
            looking_since: Some(now.mono_ms),
            read_only: false,
            steps: VecDeque::new(),
            job: None,
            deferred: VecDeque::new(),
            effects: Vec::new(),
            last_seen: None,
            cfg,
        };
        member.take_tail(data.tail, last);
        member.core = member.role_core(data.tree, now, CoreRole::Learner);
        tracing::info!(
            myid = %member.cfg.my_id,
            last_zxid = format_args!("{last:#x}"),
            current_epoch = %member.current_epoch,
            "LOOKING"
        );
        member.election_out(out, now);
        Ok(member)
    }

    pub fn core(&self) -> &Core {
        &self.core
    }

    pub fn my_id(&self) -> ServerId {
        self.cfg.my_id
    }

    /// For the commands that read or count (stat, mntr, cons...).
    pub fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }

    pub fn serving(&self) -> bool {
        self.serving
    }

    /// The epoch this member leads, once established as leader.
    pub fn leading_epoch(&self) -> Option<Epoch> {
        match &self.phase {
            Phase::Leading { leader, .. } if self.serving => leader.epoch(),
            _ => None,
        }
    }

    /// Whether this member is a leader or a learner (not looking, not read-only).
    pub fn in_role(&self) -> bool {
        !matches!(self.phase, Phase::Looking)
    }

    /// Whether a storage job is out.
    pub fn waiting_on_storage(&self) -> bool {
        self.job.is_some()
    }

    /// Txns appended since the last call.
    pub fn take_appended(&mut self) -> u64 {
        std::mem::take(&mut self.appended)
    }

    /// What the driver must do, in order, since the last call.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// A client input (connect, frame, disconnect, tick): for the core, if serving (then
    /// [`Member::flush`]). A member that does not serve closes new connections, as
    /// ZooKeeper's "not running" server does.
    pub fn client(&mut self, now: Now, input: Input<'_>) {
        if !self.serving {
            match input {
                Input::Connect { conn, .. } => {
                    self.effects.push(Effect::Client(Action::Close { conn }))
                }
                Input::Disconnect { .. } => self.core.handle(now, input),
                _ => {}
            }
            return;
        }
        // The core's actions are worked off by `flush`, once per batch of inputs.
        self.core.handle(now, input);
    }

    /// Work off what client inputs asked of the core (replies, appends, forwards): the
    /// driver calls it after a batch of them; every other event does it first.
    pub fn flush(&mut self, now: Now) {
        self.drain_core(now);
        self.run(now);
    }

    pub fn handle(&mut self, now: Now, ev: Event) {
        // What client inputs asked comes before what this event causes.
        self.flush(now);
        if self.job.is_some() && !matches!(ev, Event::Stored(_)) {
            self.deferred.push_back(ev);
            return;
        }
        self.on_event(now, ev);
        self.run(now);
        while self.job.is_none() {
            let Some(ev) = self.deferred.pop_front() else {
                break;
            };
            self.on_event(now, ev);
            self.run(now);
        }
    }

    pub fn facts(&self, now: Now) -> PeerFacts {
        // What ZooKeeper's mntr calls the quorum size: the voting members.
        let quorum_size = self.cfg.voters().len();
        let membership = String::from_utf8_lossy(&self.cfg.config_text).into_owned();
        let zab_state = match &self.phase {
            Phase::Looking => "",
            _ if self.serving => " - broadcast",
            Phase::Connecting { .. } => " - discovery",
            Phase::Leading { leader, .. } if leader.phase() == LeaderPhase::Discovery => {
                " - discovery"
            }
            _ => " - synchronization",
        };
        let peer_state = format!(
            "{}{zab_state}",
            match &self.phase {
                Phase::Looking => "looking",
                Phase::Leading { .. } => "leading",
                _ if self.cfg.i_observe() => "observing",
                _ => "following",
            }
        );
        match &self.phase {
            Phase::Leading { leader, links } => {
                let synced = leader.synced_learners();
                let observers = self.cfg.observers();
                let synced_observers = synced.iter().filter(|s| observers.contains(s)).count();
                PeerFacts {
                    state: "leader",
                    peer_state,
                    pending_syncs: leader.pending_syncs(),
                    leader_uptime_ms: self
                        .led_since
                        .map_or(0, |t| (now.mono_ms - t).max(0) as u64),
                    last_proposal_size: self.proposal_sizes.0,
                    max_proposal_size: self.proposal_sizes.1,
                    min_proposal_size: self.proposal_sizes.2,
                    leader: Some(self.cfg.my_id.0),
                    learners: links.len(),
                    synced_followers: synced.len() - synced_observers,
                    synced_observers,
                    quorum_size,
                    membership,
                }
            }
            Phase::Learning { leader, .. } | Phase::Connecting { leader, .. } => PeerFacts {
                state: if self.cfg.i_observe() {
                    "observer"
                } else {
                    "follower"
                },
                leader: Some(leader.0),
                peer_state,
                quorum_size,
                membership,
                ..PeerFacts::default()
            },
            Phase::Looking => PeerFacts {
                state: if self.read_only {
                    "read-only"
                } else {
                    "looking"
                },
                peer_state,
                quorum_size,
                membership,
                ..PeerFacts::default()
            },
        }
    }

    // ---- events -------------------------------------------------------------------------------

    fn on_event(&mut self, now: Now, ev: Event) {
        let t = ms(now);
        match ev {
            Event::Vote { from, n } => {
                tracing::debug!(%from, state = n.state.name(), vote = ?n.vote(), "notification");
                // A looking member takes on a newer config a peer votes with (a reconfig it
                // missed while away), as ZooKeeper's election does.
                if self.election.state() == PeerState::Looking {
                    if let Some(text) = n.config_text().map(|t| t.as_bytes().to_vec()) {
                        self.activate(&text, None, now);
                    }
                }
                let out = self.election.on_notification(from, n, t);
                self.election_out(out, now);
            }
            Event::LinkUp { link } => match &self.phase {
                Phase::Connecting {
                    link: l, leader, ..
                } if *l == link => {
                    let leader = *leader;
                    self.start_learning(leader, link, now);
                }
                Phase::Leading { .. } if !self.dialed.contains(&link) => self.adopt(link, t),
                _ if self.dialed.remove(&link) => self.effects.push(Effect::CloseLink { link }),
                _ => {
                    self.waiting_links.insert(link, Vec::new());
                }
            },
            Event::LinkMessage { link, msg } => {
                if let Some(said) = self.waiting_links.get_mut(&link) {
                    if said.len() < 16 {
                        said.push(msg);
                    }
                    return;
                }
                self.on_link_message(link, msg, now);
            }
            Event::LinkSnapshot { link, body } => {
                if let Phase::Learning {
                    link: l, learner, ..
                } = &mut self.phase
                {
                    if *l == link {
                        let r = learner.on_snapshot(body, t);
                        self.learner_result(r, now);
                    }
                }
            }
            Event::LinkDown { link, why } => {
                self.waiting_links.remove(&link);
                self.dialed.remove(&link);
                match &mut self.phase {
                    Phase::Leading { leader, links } if links.contains(&link) => {
                        links.remove(&link);
                        tracing::info!(link, reason = %why, "learner connection closed");
                        leader.on_disconnect(LinkConn(link), t);
                        self.refresh_view();
                    }
                    Phase::Connecting {
                        link: l, retry_at, ..
                    } if *l == link => {
                        tracing::debug!(reason = %why, "leader not reachable yet");
                        *retry_at = Some(now.mono_ms + CONNECT_RETRY_MS);
                    }
                    Phase::Learning { link: l, .. } if *l == link => {
                        self.look_again(LookAgain::LostLeader(why), now);
                    }
                    _ => {}
                }
            }
            Event::Logged { zxid } => {
                self.durable = self.durable.max(zxid);
                match &mut self.phase {
                    Phase::Leading { leader, .. } => {
                        let out = leader.on_persisted(Zxid(zxid), t);
                        self.steps.extend(out.into_iter().map(Step::Leader));
                    }
                    Phase::Learning { learner, .. } => {
                        let out = learner.on_persisted(Zxid(zxid), t);
                        self.steps.extend(out.into_iter().map(Step::Learner));
                    }
                    _ => {}
                }
            }
            Event::Stored(r) => self.stored(r, now),
            Event::LogRead { link, txns } => {
                if let Phase::Leading { leader, links } = &mut self.phase {
                    if links.contains(&link) {
                        let out = leader.on_log_read(LinkConn(link), txns, t);
                        self.steps.extend(out.into_iter().map(Step::Leader));
                    }
                }
            }
            Event::Tick => self.on_tick(now),
        }
    }

    fn on_tick(&mut self, now: Now) {
        let t = ms(now);
        let out = self.election.on_tick(t);
        self.election_out(out, now);
        match &mut self.phase {
            Phase::Leading { leader, .. } => {
                let out = leader.on_tick(t);
                self.steps.extend(out.into_iter().map(Step::Leader));
            }
            Phase::Learning { learner, .. } => {
                let r = learner.on_tick(t);
                self.learner_result(r, now);
            }
            Phase::Connecting {
                leader,
                link,
                until,
                retry_at,
            } => {
                if retry_at.is_some_and(|at| now.mono_ms >= at) {
                    if now.mono_ms >= *until {
                        let leader = *leader;
                        return self.look_again(LookAgain::LeaderUnreachable(leader), now);
                    }
                    let to = *leader;
                    *retry_at = None;
                    *link = self.next_dial;
                    self.next_dial += 1;
                    self.dialed.insert(*link);
                    self.effects.push(Effect::Dial { link: *link, to });
                }
            }
            Phase::Looking => {
                // As ZooKeeper: a member cut off from the quorum for max(2 s, tickTime)
                // starts its read-only server.
                let after = i64::try_from(self.cfg.timing.tick_ms.max(2000)).unwrap_or(i64::MAX);
                if self.cfg.read_only_mode
                    && !self.read_only
                    && self.job.is_none()
                    && self
                        .looking_since
                        .is_some_and(|since| now.mono_ms - since >= after)
                    && self.fresh_core(CoreRole::ReadOnly, Then::ReadOnly, now)
                {
                    self.serve_read_only();
                }
            }
        }
    }

    fn adopt(&mut self, link: LinkId, t: u64) {
        if let Phase::Leading { leader, links } = &mut self.phase {
            leader.on_connect(LinkConn(link), t);
            links.insert(link);
        }
    }

    fn on_link_message(&mut self, link: LinkId, msg: QuorumMessage, now: Now) {
        let t = ms(now);
        match &mut self.phase {
            Phase::Leading { leader, links } if links.contains(&link) => {
                let out = leader.on_message(LinkConn(link), msg, t);
                self.steps.extend(out.into_iter().map(Step::Leader));
            }
            Phase::Learning {
                link: l, learner, ..
            } if *l == link => {
                let r = learner.on_message(msg, t);
                self.learner_result(r, now);
            }
            _ => {}
        }
    }

    // ---- election -----------------------------------------------------------------------------

    fn election_out(&mut self, out: Vec<ElectionOutput>, now: Now) {
        let mut decided = None;
        for o in out {
            match o {
                ElectionOutput::Send { to, msg } => self.effects.push(Effect::Vote { to, msg }),
                ElectionOutput::Decided {
                    leader, role, by, ..
                } => {
                    tracing::info!(%leader, ?role, ?by, "election decided");
                    decided = Some((leader, role));
                }
            }
        }
        if let Some((leader, role)) = decided {
            self.decided(leader, role, now);
        }
    }

    fn look_again(&mut self, why: LookAgain, now: Now) {
        tracing::warn!(reason = %why, "LOOKING again");
        // Outputs of the role that ended are void.
        self.steps.clear();
        // A read-only server stops with the rest; it may start again after the wait.
        if std::mem::take(&mut self.read_only) {
            self.looking_since = None;
        }
        self.looking_since.get_or_insert(now.mono_ms);
        match std::mem::replace(&mut self.phase, Phase::Looking) {
            Phase::Leading { links, .. } => {
                for link in links {
                    self.effects.push(Effect::CloseLink { link });
                }
            }
            Phase::Learning { link, .. } => self.effects.push(Effect::CloseLink { link }),
            _ => {}
        }
        self.stop_serving();
        if self.election.state() == PeerState::Looking {
            return;
        }
        let out = self
            .election
            .look_again(Zxid(self.last_logged), self.current_epoch, ms(now));
        self.election_out(out, now);
    }

    fn stop_serving(&mut self) {
        if std::mem::take(&mut self.serving) {
            self.effects.push(Effect::CloseClients);
        }
    }

    fn decided(&mut self, leader: ServerId, role: Role, now: Now) {
        self.looking_since = None;
        if std::mem::take(&mut self.read_only) {
            tracing::info!(
                "a leader is elected: the read-only server stops; its clients reconnect"
            );
        }
        match role {
            Role::Leading => {
                if self.fresh_core(CoreRole::Leader, Then::Lead, now) {
                    self.lead(now);
                }
            }
            Role::Following | Role::Observing => {
                for link in std::mem::take(&mut self.waiting_links).into_keys() {
                    self.effects.push(Effect::CloseLink { link });
                }
                if !self.cfg.is_member(leader) {
                    return self.look_again(LookAgain::UnknownLeader(leader), now);
                }
                if self.fresh_core(CoreRole::Learner, Then::Follow(leader), now) {
                    self.follow(leader, now);
                }
            }
        }
    }

    fn lead(&mut self, now: Now) {
        if !self.cfg.voters().contains(&self.cfg.my_id) {
            // Elected under a config that a newer one replaced: this member no longer votes.
            return self.look_again(LookAgain::Reconfigured, now);
        }
        let lcfg = LeaderConfig {
            my_id: self.cfg.my_id,
            quorum: QuorumVerifier::new(self.cfg.voters(), self.cfg.observers()),
            timing: self.cfg.timing,
            commit_log_count: self.cfg.commit_window(),
            force_snapshot_sync: false,
            config_text: self.cfg.config_text.clone(),
            config_version: self.cfg.config_version,
            reconfig_enabled: self.cfg.core.reconfig_enabled,
            last_seen: self
                .last_seen
                .as_ref()
                .filter(|(v, _)| self.cfg.core.reconfig_enabled && *v > self.cfg.config_version)
                .map(|(_, text)| text.clone()),
        };
        let last = Zxid(self.last_logged);
        let start = LeaderStart {
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            last_zxid: last,
            durable_zxid: Zxid(self.durable.min(self.last_logged)),
            history: self.history(),
        };
        let (leader, out) = Leader::new(lcfg, start, ms(now));
        tracing::info!(myid = %self.cfg.my_id, "LEADING");
        self.phase = Phase::Leading {
            leader: Box::new(leader),
            links: BTreeSet::new(),
        };
        self.steps.extend(out.into_iter().map(Step::Leader));
        // Learners that reached us before we knew we lead.
        let mut waiting: Vec<_> = std::mem::take(&mut self.waiting_links)
            .into_iter()
            .collect();
        waiting.sort_by_key(|(l, _)| *l);
        for (link, said) in waiting {
            self.adopt(link, ms(now));
            for msg in said {
                self.on_link_message(link, msg, now);
            }
        }
    }

    fn follow(&mut self, leader: ServerId, now: Now) {
        tracing::info!(%leader, observer = self.cfg.i_observe(), "FOLLOWING");
        let link = self.next_dial;
        self.next_dial += 1;
        self.dialed.insert(link);
        self.effects.push(Effect::Dial { link, to: leader });
        self.phase = Phase::Connecting {
            leader,
            link,
            until: now.mono_ms + i64::try_from(self.cfg.timing.init_ms()).unwrap_or(i64::MAX),
            retry_at: None,
        };
    }

    /// Serve reads of the tree on disk, read-only, until a leader is elected.
    fn serve_read_only(&mut self) {
        self.read_only = true;
        self.serving = true;
        tracing::info!(
            last_zxid = format_args!("{:#x}", self.core.tree().last_zxid()),
            "no quorum: read-only server started"
        );
    }

    /// A core for `role` over `tree`, whose `/zookeeper/config` then holds the membership
    /// (with the config's version as mzxid), as every ZooKeeper member's does once loaded.
    fn role_core(&self, mut tree: DataTree, now: Now, role: CoreRole) -> Core {
        // A fresh tree: nobody watches it yet.
        let _ = tree.set_config(&self.cfg.config_text, self.cfg.config_version, now.wall_ms);
        Core::with_role(self.cfg.core.clone(), tree, now, role)
    }

    /// Replace the core with one for `role` over a tree that reflects exactly the log: at
    /// once when memory holds what the tree lacks (true), or else after a Reload job (false;
    /// `then` continues when it is done).
    fn fresh_core(&mut self, role: CoreRole, then: Then, now: Now) -> bool {
        self.stop_serving();
        let old = std::mem::replace(
            &mut self.core,
            Core::new(self.cfg.core.clone(), DataTree::new(), now),
        );
        let mut tree = old.into_tree();
        if tree.last_zxid() == self.last_logged || self.catch_up(&mut tree) {
            self.core = self.role_core(tree, now, role);
            return true;
        }
        self.start_job(Job::Reload, Waiting::Load(then));
        false
    }

    /// Apply the txns logged after the tree's last zxid (proposals not committed when the
    /// role ended), as recovery would replay them, from memory. False if memory does not
    /// hold them all; the caller then reloads.
    fn catch_up(&self, tree: &mut DataTree) -> bool {
        let from = tree.last_zxid();
        let Some(entries) = self.recent_after(from) else {
            return false;
        };
        let mut applied = 0;
        for e in entries
            .into_iter()
            .filter(|e| e.header.zxid <= self.last_logged)
        {
            tree.apply(&e.header, &e.txn);
            applied += 1;
        }
        let ok = tree.last_zxid() == self.last_logged;
        tracing::info!(applied, ok, "caught the tree up with the txn log");
        ok
    }

    /// A txn was handed to the log.
    fn remember(&mut self, entry: TxnEntry) {
        self.last_logged = entry.header.zxid;
        if let Some(c) = reconfig_text(&entry) {
            self.last_seen = Some(c);
        }
        self.appended += 1;
        if self.recent.len() == RECENT_TXNS {
            self.recent.pop_front();
            self.recent_since = None;
        }
        self.recent.push_back(entry);
    }

    /// Start `recent` over from a recovered tail ending at `last`.
    fn take_tail(&mut self, tail: Vec<TxnEntry>, last: i64) {
        let skip = tail.len().saturating_sub(RECENT_TXNS);
        self.recent = tail
            .into_iter()
            .skip(skip)
            .filter(|e| e.header.zxid <= last)
            .collect();
        self.recent_since = self.recent.is_empty().then_some(last);
        self.last_logged = last;
        // What the log now holds (a TRUNC may have dropped a reconfig).
        self.last_seen = self.recent.iter().rev().find_map(reconfig_text);
    }

    /// The remembered txns after `from`, if memory holds all of them.
    fn recent_after(&self, from: i64) -> Option<Vec<TxnEntry>> {
        let covered = self.recent_since.is_some_and(|z| z <= from)
            || self
                .recent
                .front()
                .is_some_and(|e| e.header.zxid <= from + 1);
        covered.then(|| {
            self.recent
                .iter()
                .filter(|e| e.header.zxid > from)
                .cloned()
                .collect()
        })
    }

    /// The newest logged txns: the leader's in-memory committed window.
    fn history(&self) -> Vec<TxnEntry> {
        let n = self.recent.len();
        self.recent
            .iter()
            .skip(n.saturating_sub(self.cfg.commit_window()))
            .filter(|e| e.header.zxid <= self.last_logged)
            .cloned()
            .collect()
    }

    // ---- storage jobs -------------------------------------------------------------------------

    fn write_epoch(&mut self, file: EpochFile, epoch: Epoch) {
        self.start_job(Job::WriteEpoch { file, epoch }, Waiting::Epoch(file, epoch));
    }

    fn start_job(&mut self, job: Job, waiting: Waiting) {
        self.job = Some(waiting);
        self.effects.push(Effect::Storage(job));
    }

    fn stored(&mut self, r: Stored, now: Now) {
        let Some(waiting) = self.job.take() else {
            tracing::warn!("a storage result with no job out; ignored");
            return;
        };
        let data = match r {
            Stored::Failed(e) => return self.look_again(LookAgain::Storage(e), now),
            Stored::Done => None,
            Stored::Data(d) => {
                let d = *d;
                self.accepted_epoch = d.accepted_epoch;
                self.current_epoch = d.current_epoch;
                // Durability reports of appends before the job are stale now.
                self.deferred.retain(|e| !matches!(e, Event::Logged { .. }));
                Some(d)
            }
        };
        match (waiting, data) {
            (Waiting::Epoch(file, epoch), _) => match file {
                EpochFile::Accepted => self.accepted_epoch = epoch,
                EpochFile::Current => self.current_epoch = epoch,
            },
            (_, None) => {
                let e = String::from("a data job answered without data");
                self.look_again(LookAgain::Storage(e), now);
            }
            (Waiting::Load(then), Some(d)) => {
                let last = d.tree.last_zxid();
                tracing::info!(
                    last_zxid = format_args!("{last:#x}"),
                    nodes = d.tree.node_count(),
                    "reloaded the data from disk"
                );
                let role = match then {
                    Then::Lead => CoreRole::Leader,
                    Then::Follow(_) => CoreRole::Learner,
                    Then::ReadOnly => CoreRole::ReadOnly,
                };
                self.install(d, last, role, now);
                match then {
                    Then::Lead => self.lead(now),
                    Then::Follow(l) => self.follow(l, now),
                    Then::ReadOnly => self.serve_read_only(),
                }
            }
            (Waiting::Truncate(z), Some(d)) => {
                let got = d.tree.last_zxid();
                self.install(d, got, CoreRole::Learner, now);
                if got != z.0 {
                    // What is left on disk ends elsewhere, e.g. the TRUNC point lies inside a
                    // snapshot an earlier SNAP stored. Start over from what the disk holds:
                    // the leader will sync us from there.
                    self.look_again(LookAgain::TruncMismatch { want: z.0, got }, now);
                }
            }
            (Waiting::Snapshot(z), Some(d)) => {
                tracing::info!(
                    nodes = d.tree.node_count(),
                    "SNAP: loaded the leader's snapshot"
                );
                self.install(d, z.0, CoreRole::Learner, now);
            }
        }
    }

    /// Data a job brought becomes the member's: its tree in a core for `role`, its tail the
    /// recent window, logged through `last`.
    fn install(&mut self, d: Recovered, last: i64, role: CoreRole, now: Now) {
        self.take_tail(d.tail, last);
        self.durable = last;
        self.core = self.role_core(d.tree, now, role);
    }

    // ---- carrying out role outputs ------------------------------------------------------------

    /// Work off the role's outputs in order until none is left or a job is out.
    fn run(&mut self, now: Now) {
        while self.job.is_none() {
            let Some(step) = self.steps.pop_front() else {
                return;
            };
            match step {
                Step::Leader(o) => self.leader_step(o, now),
                Step::Learner(a) => self.learner_step(a, now),
            }
        }
    }

    /// The core's actions: client frames out at once; what the role must hear queued.
    fn drain_core(&mut self, now: Now) {
        let t = ms(now);
        loop {
            let actions = self.core.take_actions();
            if actions.is_empty() {
                break;
            }
            for a in actions {
                match a {
                    Action::Send { .. } | Action::Close { .. } => {
                        self.effects.push(Effect::Client(a))
                    }
                    Action::Append { zxid, entry } => {
                        let size = entry.len() as i64;
                        let (_, max, min) = self.proposal_sizes;
                        self.proposal_sizes = (
                            size,
                            max.max(size),
                            if min < 0 { size } else { min.min(size) },
                        );
                        let decoded = TxnEntry::decode(&entry);
                        self.effects.push(Effect::Append { zxid, entry });
                        let Phase::Leading { leader, .. } = &mut self.phase else {
                            continue;
                        };
                        let r = match decoded {
                            Ok(e) => {
                                let r = leader.propose(e.clone(), t).map_err(|e| e.to_string());
                                self.remember(e);
                                r
                            }
                            Err(e) => Err(e.to_string()),
                        };
                        match r {
                            Ok(out) => self.steps.extend(out.into_iter().map(Step::Leader)),
                            Err(e) => return self.look_again(LookAgain::Propose(e), now),
                        }
                    }
                    Action::Forward {
                        session_id,
                        cxid,
                        op,
                        body,
                        auth,
                    } => {
                        let request = ForwardedRequest {
                            session_id,
                            cxid,
                            op,
                            body,
                            authinfo: auth,
                        };
                        if let Phase::Learning { learner, .. } = &mut self.phase {
                            let r = learner.forward(request);
                            self.learner_result(r, now);
                        }
                    }
                    Action::Revalidate {
                        session_id,
                        timeout_ms,
                    } => {
                        if let Phase::Learning { learner, .. } = &mut self.phase {
                            let r = learner.revalidate(session_id, timeout_ms);
                            self.learner_result(r, now);
                        }
                    }
                }
            }
        }
        if let Phase::Learning { learner, .. } = &mut self.phase {
            for (session, timeout) in self.core.take_touched() {
                learner.touch(session, timeout);
            }
        }
    }

    fn learner_result(&mut self, r: Result<Vec<LearnerAction>, ZabError>, now: Now) {
        match r {
            Ok(a) => self.steps.extend(a.into_iter().map(Step::Learner)),
            Err(e) => self.look_again(e.into(), now),
        }
    }

    fn leader_step(&mut self, o: LeaderOutput, now: Now) {
        let Phase::Leading { leader, links } = &mut self.phase else {
            return;
        };
        match o {
            LeaderOutput::Send { conn, msg } => {
                if links.contains(&conn.0) {
                    let synced = matches!(msg, QuorumMessage::UpToDate);
                    self.effects.push(Effect::Link { link: conn.0, msg });
                    if synced {
                        self.refresh_view();
                    }
                }
            }
            LeaderOutput::StreamSnapshot { conn, .. } => {
                // The tree as it is now (it reflects exactly the commits carried out so far),
                // frozen copy-on-write; the driver encodes it off this task.
                if links.contains(&conn.0) {
                    let snapshot = FrozenSnapshot::take(self.core.tree(), self.cfg.layout);
                    self.effects.push(Effect::StreamSnapshot {
                        link: conn.0,
                        snapshot,
                    });
                }
            }
            LeaderOutput::ReadLog { conn, from, to } => {
                if links.contains(&conn.0) {
                    self.effects.push(Effect::ReadLog {
                        link: conn.0,
                        from,
                        to,
                    });
                }
            }
            LeaderOutput::Close { conn, reason } => {
                tracing::info!(link = conn.0, ?reason, "closing a learner connection");
                if links.remove(&conn.0) {
                    self.effects.push(Effect::CloseLink { link: conn.0 });
                }
                self.refresh_view();
            }
            LeaderOutput::WriteAcceptedEpoch(epoch) => self.write_epoch(EpochFile::Accepted, epoch),
            LeaderOutput::WriteCurrentEpoch(epoch) => self.write_epoch(EpochFile::Current, epoch),
            LeaderOutput::Established { epoch } => {
                self.core.set_next_zxid(leader.next_zxid().0);
                self.core
                    .set_ensemble(Some(ensemble_view(&self.cfg, leader)));
                self.serving = true;
                self.led_since = Some(now.mono_ms);
                self.answer_with_epoch(PeerState::Leading, epoch);
                tracing::info!(%epoch, "established as leader; serving clients");
            }
            LeaderOutput::Commit { zxid } => {
                self.core.handle(now, Input::Persisted { zxid: zxid.0 });
                self.drain_core(now);
            }
            LeaderOutput::Activate {
                config, designated, ..
            } => {
                self.activate(&config, Some(designated), now);
                self.refresh_view();
            }
            LeaderOutput::Request { conn, sid, request } => {
                if request.op_code() == Some(zooid_proto::OpCode::Sync) {
                    let out = leader.sync(conn);
                    self.steps.extend(out.into_iter().map(Step::Leader));
                } else {
                    self.core.handle(
                        now,
                        Input::Forwarded {
                            from: sid.0 as u64,
                            session_id: request.session_id,
                            cxid: request.cxid,
                            op: request.op,
                            body: &request.body,
                            auth: request.authinfo.unwrap_or_default(),
                        },
                    );
                    self.drain_core(now);
                }
            }
            LeaderOutput::Revalidate {
                conn,
                sid,
                session_id,
                timeout_ms,
            } => {
                let valid = self
                    .core
                    .revalidate(sid.0 as u64, session_id, timeout_ms, now.mono_ms);
                let Phase::Leading { leader, .. } = &mut self.phase else {
                    return;
                };
                let out = leader.revalidate_reply(conn, session_id, valid);
                self.steps.extend(out.into_iter().map(Step::Leader));
            }
            LeaderOutput::Touch { touches, .. } => {
                for t in touches {
                    self.core.touch_session(t.session_id, now.mono_ms);
                }
            }
            LeaderOutput::StepDown(reason) => {
                self.look_again(LookAgain::StepDown(format!("{reason:?}")), now);
            }
        }
    }

    /// Serving in `epoch`: election notifications now answer with it as the peer epoch.
    fn answer_with_epoch(&mut self, state: PeerState, epoch: Epoch) {
        let v = self.election.current_vote();
        self.election.answer_as(
            state,
            Vote {
                peer_epoch: epoch,
                ..v
            },
        );
    }

    // ---- learner ------------------------------------------------------------------------------

    fn start_learning(&mut self, leader: ServerId, link: LinkId, now: Now) {
        self.dialed.remove(&link);
        let lcfg = LearnerConfig {
            my_id: self.cfg.my_id,
            kind: if self.cfg.i_observe() {
                LearnerKind::Observer
            } else {
                LearnerKind::Follower
            },
            timing: self.cfg.timing,
            config_version: self.cfg.config_version,
        };
        let last = Zxid(self.last_logged);
        let start = LearnerStart {
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            last_zxid: last,
            durable_zxid: Zxid(self.durable.min(self.last_logged)),
        };
        let (learner, actions) = Learner::new(lcfg, start, ms(now));
        self.phase = Phase::Learning {
            leader,
            link,
            learner: Box::new(learner),
        };
        self.steps.extend(actions.into_iter().map(Step::Learner));
    }

    fn learner_step(&mut self, a: LearnerAction, now: Now) {
        let Phase::Learning { link, .. } = &self.phase else {
            return;
        };
        let link = *link;
        match a {
            LearnerAction::Send(msg) => self.effects.push(Effect::Link { link, msg }),
            LearnerAction::WriteAcceptedEpoch(epoch) => {
                self.write_epoch(EpochFile::Accepted, epoch)
            }
            LearnerAction::WriteCurrentEpoch(epoch) => self.write_epoch(EpochFile::Current, epoch),
            LearnerAction::Truncate(zxid) => {
                tracing::info!(
                    zxid = format_args!("{:#x}", zxid.0),
                    "TRUNC: truncating the txn log"
                );
                self.start_job(Job::Truncate { zxid }, Waiting::Truncate(zxid));
            }
            LearnerAction::LoadSnapshot { zxid, body } => {
                self.start_job(Job::StoreSnapshot { zxid, body }, Waiting::Snapshot(zxid));
            }
            LearnerAction::Append(e) => {
                let zxid = e.header.zxid;
                let mut w = zooid_proto::Writer::new();
                e.encode(&mut w);
                self.remember(e);
                self.effects.push(Effect::Append {
                    zxid,
                    entry: w.into_inner(),
                });
            }
            LearnerAction::Apply(entry) => {
                self.core.handle(now, Input::Apply { entry });
                self.drain_core(now);
            }
            LearnerAction::UpToDate { epoch } => {
                self.serving = true;
                self.answer_with_epoch(self.election.state(), epoch);
                tracing::info!(%epoch, "up to date with the leader; serving clients");
            }
            LearnerAction::SyncDone => {
                self.core.handle(now, Input::SyncDone);
                self.drain_core(now);
            }
            LearnerAction::Revalidated { session_id, valid } => {
                self.core
                    .handle(now, Input::Revalidated { session_id, valid });
                self.drain_core(now);
            }
            LearnerAction::Activate { config, designated } => {
                self.activate(&config, designated, now)
            }
        }
    }

    // ---- reconfiguration ----------------------------------------------------------------------

    /// Take on `text` as the configuration if it is newer than ours (`processReconfig`): the
    /// election counts by it from now on, the driver records it, and a learner whose role or
    /// leader it changes looks again (`designated`: the leader the committing leader named;
    /// without one, the leader must still vote).
    fn activate(&mut self, text: &[u8], designated: Option<ServerId>, now: Now) {
        let parsed = std::str::from_utf8(text)
            .ok()
            .and_then(|t| zooid_zab::config_text::parse(t).ok());
        let Some((members, version)) = parsed else {
            tracing::warn!("a config that does not parse; ignored");
            return;
        };
        // As ZooKeeper's processReconfig: without reconfigEnabled the config never changes.
        if !self.cfg.core.reconfig_enabled || version <= self.cfg.config_version {
            return;
        }
        let next = MemberConfig {
            config: members.clone(),
            config_text: text.to_vec(),
            config_version: version,
            ..self.cfg.clone()
        };
        let ecfg =
            match ElectionConfig::new(next.my_id, next.voters(), next.observers(), text.to_vec()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "a config the election cannot use; ignored");
                    return;
                }
            };
        self.election.set_config(ecfg);
        self.cfg = next;
        self.core.install_config(text, version, now);
        self.drain_core(now);
        tracing::info!(
            version = format_args!("{version:x}"),
            config = %String::from_utf8_lossy(text),
            "new configuration"
        );
        self.effects.push(Effect::Reconfigured {
            members,
            version,
            text: text.to_vec(),
        });
        if self.election.state() == PeerState::Looking {
            let out = self
                .election
                .restart(Zxid(self.last_logged), self.current_epoch, ms(now));
            return self.election_out(out, now);
        }
        let Phase::Learning {
            leader, learner, ..
        } = &self.phase
        else {
            return;
        };
        let kind = if self.cfg.i_observe() {
            LearnerKind::Observer
        } else {
            LearnerKind::Follower
        };
        let leader_votes = self.cfg.voters().contains(leader);
        let leader_changed = designated.map_or(!leader_votes, |d| d != *leader);
        if kind != learner.kind() || leader_changed {
            self.look_again(LookAgain::Reconfigured, now);
        }
    }

    /// Keep the core's view of the ensemble current while leading (reconfig requests).
    fn refresh_view(&mut self) {
        if let Phase::Leading { leader, .. } = &self.phase {
            if leader.is_established() {
                let view = ensemble_view(&self.cfg, leader);
                self.core.set_ensemble(Some(view));
            }
        }
    }
}

/// The zxid and config text of a reconfig txn.
fn reconfig_text(e: &TxnEntry) -> Option<(i64, Vec<u8>)> {
    zooid_zab::config_text::of_entry(e).map(|d| (e.header.zxid, d.to_vec()))
}

/// What a leader's core checks reconfig requests against.
fn ensemble_view(cfg: &MemberConfig, leader: &Leader) -> EnsembleView {
    EnsembleView {
        members: cfg.config.clone(),
        version: cfg.config_version,
        in_progress: leader.reconfig_pending(),
        synced: leader.synced_followers(),
    }
}

/// The monotonic milliseconds the zab state machines count in.
fn ms(now: Now) -> u64 {
    now.mono_ms.max(0) as u64
}
