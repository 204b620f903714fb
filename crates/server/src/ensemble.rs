//! A member of a replicated ensemble: runs Fast Leader Election and then the Zab role it won
//! ([`Leader`] or [`Learner`]) beside the node [`Core`], inside the core task. It turns the
//! zab state machines' outputs into socket writes, file writes and core inputs, and the
//! core's actions into proposals and forwarded requests. No protocol logic lives here.
//!
//! ```text
//! LOOKING ──Decided──▶ leading:   reload if the tree lags the log; Leader::new; serve once
//!    ▲                            Established (Core numbers txns from the new epoch)
//!    │                following / observing: reload; dial the leader; Learner::new on
//!    │                            connect; serve at UPTODATE
//!    └── StepDown, a learner error, the leader's link lost: close every client, look again
//! ```
//! Like ZooKeeper, a member that is not serving closes client connections, and every role
//! starts from a tree that reflects exactly the txn log (`reload` when it does not).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use zooid_node::core::Now;
use zooid_node::{Action, ConnId, Core, CoreConfig, Input, Role as CoreRole};
use zooid_proto::{TxnEntry, Writer};
use zooid_storage::snapshot::{FrozenSnapshot, Layout};
use zooid_zab::{
    ConnId as LinkConn, Election, ElectionConfig, Epoch, ForwardedRequest, Leader, LeaderConfig,
    LeaderOutput, LeaderPhase, LeaderStart, Learner, LearnerAction, LearnerConfig, LearnerKind,
    LearnerStart, Notification, Output as ElectionOutput, PeerState, QuorumMessage, QuorumVerifier,
    Role, ServerId, Timing, TxnLogReader, Vote, Zxid, DEFAULT_COMMIT_LOG_COUNT,
};

use crate::driver::ConnOut;
use crate::peer_net::{LinkId, LinkOut, Links, PeerEvent};
use crate::persist::{FromWriter, ToWriter};

/// One member of the ensemble as zoo.cfg lists it.
#[derive(Debug, Clone)]
pub struct Member {
    pub quorum: SocketAddr,
    pub election: SocketAddr,
    pub observer: bool,
}

/// What a member needs to know about the ensemble.
#[derive(Debug, Clone)]
pub struct EnsembleConfig {
    pub my_id: ServerId,
    pub members: BTreeMap<ServerId, Member>,
    pub timing: Timing,
    pub cnx_timeout: Duration,
    /// The QuorumVerifier text sent in NEWLEADER and notifications.
    pub config_text: Vec<u8>,
    pub core: CoreConfig,
    pub snap_dir: PathBuf,
    pub log_dir: PathBuf,
    /// `readonlymode.enabled`: while cut off from a quorum, serve reads to clients that
    /// accept a read-only server.
    pub read_only_mode: bool,
}

impl EnsembleConfig {
    fn voters(&self) -> BTreeSet<ServerId> {
        self.members
            .iter()
            .filter(|(_, m)| !m.observer)
            .map(|(&s, _)| s)
            .collect()
    }

    fn observers(&self) -> BTreeSet<ServerId> {
        self.members
            .iter()
            .filter(|(_, m)| m.observer)
            .map(|(&s, _)| s)
            .collect()
    }

    fn i_observe(&self) -> bool {
        self.members.get(&self.my_id).is_some_and(|m| m.observer)
    }
}

/// Logged txns kept in memory, so a role change needs no log reads: enough for the leader's
/// committed window and for the proposals a member logged but did not apply.
const RECENT_TXNS: usize = 4 * DEFAULT_COMMIT_LOG_COUNT;

/// How long between attempts to reach a leader that does not answer yet.
const CONNECT_RETRY: Duration = Duration::from_millis(200);

/// What this member is doing.
enum Phase {
    Looking,
    Leading {
        leader: Box<Leader>,
        links: HashMap<LinkId, UnboundedSender<LinkOut>>,
    },
    Connecting {
        leader: ServerId,
        link: LinkId,
        /// Give up and look again after this (initLimit).
        until: Instant,
        retry_at: Option<Instant>,
    },
    Learning {
        leader: ServerId,
        link: LinkId,
        out: UnboundedSender<LinkOut>,
        learner: Box<Learner>,
    },
}

/// The state the core task needs besides the peer: the node core, the client connections and
/// the txn log writer.
pub struct Node<'a> {
    pub core: &'a mut Core,
    pub outs: &'a mut HashMap<ConnId, ConnOut>,
    pub writer: &'a std::sync::mpsc::Sender<ToWriter>,
    pub from_writer: &'a mut UnboundedReceiver<FromWriter>,
    pub snapshots: &'a crate::persist::SnapshotPlan,
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
}

pub struct Peer {
    cfg: EnsembleConfig,
    election: Election,
    to_election: UnboundedSender<(ServerId, Notification)>,
    links: Links,
    phase: Phase,
    accepted_epoch: Epoch,
    current_epoch: Epoch,
    started: Instant,
    /// Quorum connections this member dialed (to a leader); never taken as learners.
    dialed: std::collections::HashSet<LinkId>,
    /// Quorum connections accepted while not leading, with what they said so far.
    waiting: HashMap<LinkId, (UnboundedSender<LinkOut>, Vec<QuorumMessage>)>,
    /// Whether clients are served (established leader, or learner after UPTODATE).
    pub serving: bool,
    /// The last zxid handed to the log writer (or left in the log by a TRUNC or SNAP).
    last_logged: i64,
    /// Txns handed to the log writer since [`Peer::take_appended`] last asked, for the
    /// snapshot schedule.
    appended: u64,
    /// When this member was established as leader.
    led_since: Option<Instant>,
    /// The newest logged txns, oldest first, as logged (see [`RECENT_TXNS`]).
    recent: std::collections::VecDeque<(i64, Vec<u8>)>,
    /// `recent` holds every txn logged after this zxid (until it first drops one).
    recent_since: Option<i64>,
    /// Sizes of proposals: last, max, min (-1 before the first).
    proposal_sizes: (i64, i64, i64),
    /// Since when this member has been looking for a leader (monotonic).
    looking_since: Option<Instant>,
    /// Serving read-only while it looks (`readonlymode.enabled`).
    read_only: bool,
}

impl Peer {
    /// Start looking. `core` holds the recovered tree.
    pub fn start(
        cfg: EnsembleConfig,
        core: &Core,
        to_election: UnboundedSender<(ServerId, Notification)>,
        links: Links,
    ) -> Result<Peer, String> {
        let last = core.tree().last_zxid();
        let (accepted_epoch, current_epoch) = read_epochs(&cfg.snap_dir, last)?;
        let ecfg = ElectionConfig::new(
            cfg.my_id,
            cfg.voters(),
            cfg.observers(),
            cfg.config_text.clone(),
        )
        .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let (election, out) = Election::start(ecfg, Zxid(last), current_epoch, 0);
        let mut peer = Peer {
            cfg,
            election,
            to_election,
            links,
            phase: Phase::Looking,
            accepted_epoch,
            current_epoch,
            started,
            waiting: HashMap::new(),
            dialed: std::collections::HashSet::new(),
            serving: false,
            last_logged: last,
            appended: 0,
            led_since: None,
            recent: std::collections::VecDeque::new(),
            recent_since: Some(last),
            proposal_sizes: (-1, -1, -1),
            looking_since: Some(started),
            read_only: false,
        };
        tracing::info!(
            myid = %peer.cfg.my_id,
            last_zxid = format_args!("{last:#x}"),
            current_epoch = %current_epoch,
            "LOOKING"
        );
        // Decisions cannot come from the first broadcast alone.
        peer.send_votes(out);
        Ok(peer)
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Txns handed to the log writer since the last call.
    pub fn take_appended(&mut self) -> u64 {
        std::mem::take(&mut self.appended)
    }

    pub fn facts(&self) -> PeerFacts {
        // What ZooKeeper's mntr calls the quorum size: the voting members.
        let quorum_size = self.cfg.voters().len();
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
                    leader_uptime_ms: self.led_since.map_or(0, |t| t.elapsed().as_millis() as u64),
                    last_proposal_size: self.proposal_sizes.0,
                    max_proposal_size: self.proposal_sizes.1,
                    min_proposal_size: self.proposal_sizes.2,
                    leader: Some(self.cfg.my_id.0),
                    learners: links.len(),
                    synced_followers: synced.len() - synced_observers,
                    synced_observers,
                    quorum_size,
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
                ..PeerFacts::default()
            },
        }
    }

    // ---- election -----------------------------------------------------------------------------

    fn send_votes(&mut self, out: Vec<ElectionOutput>) -> Option<(ServerId, Role)> {
        let mut decided = None;
        for o in out {
            match o {
                ElectionOutput::Send { to, msg } => {
                    let _ = self.to_election.send((to, msg));
                }
                ElectionOutput::Decided {
                    leader, role, by, ..
                } => {
                    tracing::info!(%leader, ?role, ?by, "election decided");
                    decided = Some((leader, role));
                }
            }
        }
        decided
    }

    fn election_out(&mut self, out: Vec<ElectionOutput>, node: &mut Node<'_>) {
        if let Some((leader, role)) = self.send_votes(out) {
            self.decided(leader, role, node);
        }
    }

    fn look_again(&mut self, why: &str, node: &mut Node<'_>) {
        tracing::warn!(reason = why, "LOOKING again");
        // A read-only server stops with the rest; it may start again after the wait.
        if std::mem::take(&mut self.read_only) {
            self.looking_since = None;
        }
        self.looking_since.get_or_insert_with(Instant::now);
        match std::mem::replace(&mut self.phase, Phase::Looking) {
            Phase::Leading { links, .. } => {
                for out in links.values() {
                    let _ = out.send(LinkOut::Close);
                }
            }
            Phase::Learning { out, .. } => {
                let _ = out.send(LinkOut::Close);
            }
            _ => {}
        }
        self.stop_serving(node);
        if self.election.state() == PeerState::Looking {
            return;
        }
        let now = self.now();
        let out = self
            .election
            .look_again(Zxid(self.last_logged), self.current_epoch, now);
        self.election_out(out, node);
    }

    fn stop_serving(&mut self, node: &mut Node<'_>) {
        self.serving = false;
        for (_, out) in node.outs.drain() {
            out.close();
        }
    }

    fn decided(&mut self, leader_sid: ServerId, role: Role, node: &mut Node<'_>) {
        self.looking_since = None;
        if std::mem::take(&mut self.read_only) {
            tracing::info!(
                "a leader is elected: the read-only server stops; its clients reconnect"
            );
        }
        match role {
            Role::Leading => {
                if let Err(e) = self.fresh_core(CoreRole::Leader, node) {
                    return self.look_again(&format!("cannot lead: {e}"), node);
                }
                let history = self.history();
                let lcfg = LeaderConfig {
                    my_id: self.cfg.my_id,
                    quorum: QuorumVerifier::new(self.cfg.voters(), self.cfg.observers()),
                    timing: self.cfg.timing,
                    commit_log_count: DEFAULT_COMMIT_LOG_COUNT,
                    force_snapshot_sync: false,
                    config_text: self.cfg.config_text.clone(),
                    config_version: 0,
                };
                let last = Zxid(self.last_logged);
                let start = LeaderStart {
                    accepted_epoch: self.accepted_epoch,
                    current_epoch: self.current_epoch,
                    last_zxid: last,
                    durable_zxid: last,
                    history,
                };
                let now = self.now();
                let (leader, out) = Leader::new(lcfg, start, now);
                tracing::info!(myid = %self.cfg.my_id, "LEADING");
                self.phase = Phase::Leading {
                    leader: Box::new(leader),
                    links: HashMap::new(),
                };
                self.leader_out(out, node);
                // Learners that reached us before we knew we lead.
                for (link, (out, said)) in std::mem::take(&mut self.waiting) {
                    self.adopt(link, out);
                    for msg in said {
                        self.on_link_message(link, msg, node);
                    }
                }
            }
            Role::Following | Role::Observing => {
                for (_, (out, _)) in self.waiting.drain() {
                    let _ = out.send(LinkOut::Close);
                }
                if let Err(e) = self.fresh_core(CoreRole::Learner, node) {
                    return self.look_again(&format!("cannot follow: {e}"), node);
                }
                let Some(m) = self.cfg.members.get(&leader_sid) else {
                    return self.look_again("the elected leader is not in the configuration", node);
                };
                tracing::info!(leader = %leader_sid, observer = self.cfg.i_observe(), "FOLLOWING");
                let link = self.links.dial_leader(m.quorum, self.cfg.cnx_timeout);
                self.dialed.insert(link);
                self.phase = Phase::Connecting {
                    leader: leader_sid,
                    link,
                    until: Instant::now() + Duration::from_millis(self.cfg.timing.init_ms()),
                    retry_at: None,
                };
            }
        }
    }

    /// A core for `role` over `tree`, whose `/zookeeper/config` then holds the membership
    /// (static configuration: version 0), as every ZooKeeper member's does once loaded.
    fn role_core(&self, mut tree: zooid_tree::DataTree, now: Now, role: CoreRole) -> Core {
        tree.set_config(&self.cfg.config_text, 0, now.wall_ms);
        Core::with_role(self.cfg.core.clone(), tree, now, role)
    }

    /// Replace the core with one for `role` over a tree that reflects exactly the log.
    fn fresh_core(&mut self, role: CoreRole, node: &mut Node<'_>) -> Result<(), String> {
        self.stop_serving(node);
        quiesce(node)?;
        let now = crate::driver::now();
        let old = std::mem::replace(
            node.core,
            Core::new(self.cfg.core.clone(), zooid_tree::DataTree::new(), now),
        );
        let mut tree = old.into_tree();
        if tree.last_zxid() != self.last_logged && !self.catch_up(&mut tree) {
            tree = self.reload()?;
        }
        *node.core = self.role_core(tree, now, role);
        Ok(())
    }

    /// A txn was handed to the log writer.
    fn remember(&mut self, zxid: i64, entry: &[u8]) {
        self.last_logged = zxid;
        self.appended += 1;
        if self.recent.len() == RECENT_TXNS {
            self.recent.pop_front();
            self.recent_since = None;
        }
        self.recent.push_back((zxid, entry.to_vec()));
    }

    /// The remembered txns after `from`, if memory holds all of them.
    fn recent_after(&self, from: i64) -> Option<Vec<TxnEntry>> {
        let covered = self.recent_since.is_some_and(|z| z <= from)
            || self.recent.front().is_some_and(|(z, _)| *z <= from);
        if !covered {
            return None;
        }
        self.recent
            .iter()
            .filter(|(z, _)| *z > from)
            .map(|(_, e)| TxnEntry::decode(e).ok())
            .collect()
    }

    /// Apply the txns logged after the tree's last zxid (proposals not committed when the
    /// role ended), as recovery would replay them, from memory or else from the log. False
    /// if that does not bring the tree exactly to the log's end; the caller then reloads.
    fn catch_up(&self, tree: &mut zooid_tree::DataTree) -> bool {
        let from = tree.last_zxid();
        let entries = match self.recent_after(from) {
            Some(e) => e,
            None => match zooid_storage::txnlog::read_log(&self.cfg.log_dir, from) {
                Ok(read) => read.entries,
                Err(_) => return false,
            },
        };
        let mut applied = 0;
        for e in entries.iter().filter(|e| e.header.zxid > from) {
            if e.header.zxid > self.last_logged {
                break;
            }
            tree.apply(&e.header, &e.txn);
            applied += 1;
        }
        let ok = tree.last_zxid() == self.last_logged;
        tracing::info!(applied, ok, "caught the tree up with the txn log");
        ok
    }

    /// Load snapshot + log from disk, as at start-up.
    fn reload(&mut self) -> Result<zooid_tree::DataTree, String> {
        let started = Instant::now();
        let r = zooid_storage::recovery::recover(&self.cfg.snap_dir, &self.cfg.log_dir)
            .map_err(|e| format!("cannot reload the data: {e}"))?;
        tracing::info!(
            last_zxid = format_args!("{:#x}", r.tree.last_zxid()),
            nodes = r.tree.node_count(),
            ms = started.elapsed().as_millis() as u64,
            "reloaded the data from disk"
        );
        self.last_logged = r.tree.last_zxid();
        self.recent.clear();
        self.recent_since = Some(self.last_logged);
        Ok(r.tree)
    }

    /// The newest logged txns (the leader's in-memory committed window), read from the newest
    /// log files only.
    fn history(&self) -> Vec<TxnEntry> {
        if self.recent.len() >= DEFAULT_COMMIT_LOG_COUNT {
            let n = self.recent.len();
            let window = self
                .recent
                .iter()
                .skip(n.saturating_sub(DEFAULT_COMMIT_LOG_COUNT))
                .map(|(_, e)| TxnEntry::decode(e).ok())
                .collect::<Option<Vec<_>>>();
            if let Some(w) = window {
                return w;
            }
        }
        let files = zooid_storage::txnlog::log_files(&self.cfg.log_dir).unwrap_or_default();
        // The window's start lies in the newest two files unless they hold fewer txns than
        // the window; then an older file is missing from it, which costs DIFF range only.
        let after = files
            .len()
            .checked_sub(2)
            .map_or(0, |i| files[i].0.saturating_sub(1));
        match zooid_storage::txnlog::read_log(&self.cfg.log_dir, after) {
            Ok(r) => {
                let n = r.entries.len();
                r.entries
                    .into_iter()
                    .skip(n.saturating_sub(DEFAULT_COMMIT_LOG_COUNT))
                    .filter(|e| e.header.zxid <= self.last_logged)
                    .collect()
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the txn log for the committed window");
                Vec::new()
            }
        }
    }

    // ---- events -------------------------------------------------------------------------------

    pub fn on_event(&mut self, ev: PeerEvent, node: &mut Node<'_>) {
        match ev {
            PeerEvent::Notification { from, n } => {
                let now = self.now();
                tracing::debug!(%from, state = n.state.name(), vote = ?n.vote(), "notification");
                let out = self.election.on_notification(from, n, now);
                self.election_out(out, node);
            }
            PeerEvent::LinkUp { link, out } => match &self.phase {
                Phase::Connecting {
                    link: l, leader, ..
                } if *l == link => {
                    let leader = *leader;
                    self.start_learning(leader, link, out, node);
                }
                Phase::Leading { .. } => self.adopt(link, out),
                _ if self.dialed.contains(&link) => {
                    self.dialed.remove(&link);
                    let _ = out.send(LinkOut::Close);
                }
                _ => {
                    self.waiting.insert(link, (out, Vec::new()));
                }
            },
            PeerEvent::LinkMessage { link, msg } => {
                if let Some((_, said)) = self.waiting.get_mut(&link) {
                    if said.len() < 16 {
                        said.push(msg);
                    }
                    return;
                }
                self.on_link_message(link, msg, node);
            }
            PeerEvent::LinkSnapshot { link, body } => {
                let now = self.now();
                let Phase::Learning {
                    link: l, learner, ..
                } = &mut self.phase
                else {
                    return;
                };
                if *l != link {
                    return;
                }
                let r = learner.on_snapshot(body, now);
                self.learner_result(r, node);
            }
            PeerEvent::LinkDown { link, why } => {
                self.waiting.remove(&link);
                self.dialed.remove(&link);
                let now = self.now();
                match &mut self.phase {
                    Phase::Leading { leader, links } => {
                        if links.remove(&link).is_none() {
                            return;
                        }
                        tracing::info!(link, reason = %why, "learner connection closed");
                        leader.on_disconnect(LinkConn(link), now);
                    }
                    Phase::Connecting {
                        link: l, retry_at, ..
                    } if *l == link => {
                        tracing::debug!(reason = %why, "leader not reachable yet");
                        *retry_at = Some(Instant::now() + CONNECT_RETRY);
                    }
                    Phase::Learning { link: l, .. } if *l == link => {
                        self.look_again(&format!("lost the leader: {why}"), node);
                    }
                    _ => {}
                }
            }
        }
    }

    fn adopt(&mut self, link: LinkId, out: UnboundedSender<LinkOut>) {
        let now = self.now();
        if let Phase::Leading { leader, links } = &mut self.phase {
            leader.on_connect(LinkConn(link), now);
            links.insert(link, out);
        }
    }

    fn on_link_message(&mut self, link: LinkId, msg: QuorumMessage, node: &mut Node<'_>) {
        let now = self.now();
        match &mut self.phase {
            Phase::Leading { leader, links } if links.contains_key(&link) => {
                let log = LogReader {
                    dir: &self.cfg.log_dir,
                    snap_dir: &self.cfg.snap_dir,
                };
                let out = leader.on_message(LinkConn(link), msg, now, &log);
                self.leader_out(out, node);
            }
            Phase::Learning {
                link: l, learner, ..
            } if *l == link => {
                let r = learner.on_message(msg, now);
                self.learner_result(r, node);
            }
            _ => {}
        }
    }

    pub fn on_tick(&mut self, node: &mut Node<'_>) {
        let now = self.now();
        let out = self.election.on_tick(now);
        self.election_out(out, node);
        match &mut self.phase {
            Phase::Leading { leader, .. } => {
                let out = leader.on_tick(now);
                self.leader_out(out, node);
            }
            Phase::Learning { learner, .. } => {
                let r = learner.on_tick(now);
                self.learner_result(r, node);
            }
            Phase::Connecting {
                leader,
                link,
                until,
                retry_at,
            } => {
                if retry_at.is_some_and(|t| Instant::now() >= t) {
                    if Instant::now() >= *until {
                        let why = format!("cannot reach the leader {leader} within initLimit");
                        return self.look_again(&why, node);
                    }
                    let addr = self.cfg.members[leader].quorum;
                    *link = self.links.dial_leader(addr, self.cfg.cnx_timeout);
                    self.dialed.insert(*link);
                    *retry_at = None;
                }
            }
            Phase::Looking => {
                // As ZooKeeper: a member cut off from the quorum for max(2 s, tickTime)
                // starts its read-only server.
                let after = Duration::from_millis(self.cfg.timing.tick_ms.max(2000));
                if self.cfg.read_only_mode
                    && !self.read_only
                    && self.looking_since.is_some_and(|t| t.elapsed() >= after)
                {
                    self.serve_read_only(node);
                }
            }
        }
    }

    /// Serve reads of the tree on disk, read-only, until a leader is elected.
    fn serve_read_only(&mut self, node: &mut Node<'_>) {
        if let Err(e) = self.fresh_core(CoreRole::ReadOnly, node) {
            tracing::error!(error = %e, "cannot start the read-only server");
            self.looking_since = Some(Instant::now());
            return;
        }
        self.read_only = true;
        self.serving = true;
        tracing::info!(
            last_zxid = format_args!("{:#x}", node.core.tree().last_zxid()),
            "no quorum: read-only server started"
        );
    }

    /// The log writer made everything through `zxid` durable.
    pub fn on_persisted(&mut self, zxid: i64, node: &mut Node<'_>) {
        let now = self.now();
        match &mut self.phase {
            Phase::Leading { leader, .. } => {
                let out = leader.on_persisted(Zxid(zxid), now);
                self.leader_out(out, node);
            }
            Phase::Learning { learner, .. } => {
                let a = learner.on_persisted(Zxid(zxid), now);
                self.learner_out(a, node);
            }
            _ => {}
        }
    }

    /// Execute what the core asked for (called after every core input).
    pub fn core_actions(
        &mut self,
        node: &mut Node<'_>,
        mut metrics: Option<&mut crate::metrics::Registry>,
    ) {
        loop {
            let actions = node.core.take_actions();
            if actions.is_empty() {
                break;
            }
            for a in actions {
                match a {
                    Action::Send { conn, frame } => {
                        if let Some(m) = metrics.as_deref_mut() {
                            m.frame_sent(&frame);
                        }
                        if let Some(o) = node.outs.get(&conn) {
                            o.frame(frame);
                        }
                    }
                    Action::Close { conn } => {
                        if let Some(o) = node.outs.get(&conn) {
                            o.close();
                        }
                    }
                    Action::Append { zxid, entry } => {
                        let decoded = TxnEntry::decode(&entry);
                        self.remember(zxid, &entry);
                        let size = entry.len() as i64;
                        let (_, max, min) = self.proposal_sizes;
                        self.proposal_sizes = (
                            size,
                            max.max(size),
                            if min < 0 { size } else { min.min(size) },
                        );
                        let _ = node.writer.send(ToWriter::Append { zxid, entry });
                        let now = self.now();
                        if let Phase::Leading { leader, .. } = &mut self.phase {
                            let r = match decoded {
                                Ok(e) => leader.propose(e, now).map_err(|e| e.to_string()),
                                Err(e) => Err(e.to_string()),
                            };
                            match r {
                                Ok(out) => self.leader_out(out, node),
                                Err(e) => self.look_again(&format!("cannot propose: {e}"), node),
                            }
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
                            self.learner_result(r, node);
                        }
                    }
                    Action::Revalidate {
                        session_id,
                        timeout_ms,
                    } => {
                        if let Phase::Learning { learner, .. } = &mut self.phase {
                            let r = learner.revalidate(session_id, timeout_ms);
                            self.learner_result(r, node);
                        }
                    }
                }
            }
        }
        if let Phase::Learning { learner, .. } = &mut self.phase {
            for (session, timeout) in node.core.take_touched() {
                learner.touch(session, timeout);
            }
        }
    }

    // ---- leader -------------------------------------------------------------------------------

    fn leader_out(&mut self, out: Vec<LeaderOutput>, node: &mut Node<'_>) {
        let mut work: std::collections::VecDeque<LeaderOutput> = out.into();
        while let Some(o) = work.pop_front() {
            let Phase::Leading { leader, links } = &mut self.phase else {
                return;
            };
            match o {
                LeaderOutput::Send { conn, msg } => {
                    if let Some(l) = links.get(&conn.0) {
                        let _ = l.send(LinkOut::Msg(msg));
                    }
                }
                LeaderOutput::StreamSnapshot { conn, .. } => {
                    // The tree as it is now, frozen copy-on-write in microseconds; a thread
                    // of its own encodes it while the core goes on, and the link writes
                    // nothing queued after it before it.
                    let Some(l) = links.get(&conn.0) else {
                        continue;
                    };
                    let frozen = FrozenSnapshot::take(node.core.tree(), Layout::Zk38);
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let _ = l.send(LinkOut::Later(rx));
                    let spawned = std::thread::Builder::new()
                        .name("zooid-snap-stream".into())
                        .spawn(move || {
                            let mut body = frozen.encode_body();
                            let mut w = Writer::new();
                            w.write_string(zooid_zab::packet::SNAPSHOT_SIGNATURE);
                            body.extend_from_slice(&w.into_inner());
                            let _ = tx.send(body);
                        });
                    if let Err(e) = spawned {
                        // The sender went with the closure: the link closes, the learner
                        // comes back and is synced again.
                        tracing::error!(error = %e, link = conn.0, "cannot start a thread to encode a SNAP");
                    }
                }
                LeaderOutput::Close { conn, reason } => {
                    tracing::info!(link = conn.0, ?reason, "closing a learner connection");
                    if let Some(l) = links.remove(&conn.0) {
                        let _ = l.send(LinkOut::Close);
                    }
                }
                LeaderOutput::WriteAcceptedEpoch(e) => {
                    if let Err(err) = self.write_epoch(EpochFile::Accepted, e) {
                        return self.look_again(&err, node);
                    }
                }
                LeaderOutput::WriteCurrentEpoch(e) => {
                    if let Err(err) = self.write_epoch(EpochFile::Current, e) {
                        return self.look_again(&err, node);
                    }
                }
                LeaderOutput::Established { epoch } => {
                    node.core.set_next_zxid(leader.next_zxid().0);
                    self.serving = true;
                    self.led_since = Some(Instant::now());
                    self.answer_with_epoch(PeerState::Leading, epoch);
                    tracing::info!(%epoch, "established as leader; serving clients");
                }
                LeaderOutput::Commit { zxid } => {
                    let now = crate::driver::now();
                    node.core.handle(now, Input::Persisted { zxid: zxid.0 });
                    // Replies and notifications go out in commit order.
                    self.flush_core(node);
                }
                LeaderOutput::Request { conn, sid, request } => {
                    if request.op_code() == Some(zooid_proto::OpCode::Sync) {
                        work.extend(leader.sync(conn));
                    } else {
                        let now = crate::driver::now();
                        node.core.handle(
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
                        self.flush_core(node);
                    }
                }
                LeaderOutput::Revalidate {
                    conn,
                    sid,
                    session_id,
                    timeout_ms,
                } => {
                    let now = crate::driver::now();
                    let valid =
                        node.core
                            .revalidate(sid.0 as u64, session_id, timeout_ms, now.mono_ms);
                    work.extend(leader.revalidate_reply(conn, session_id, valid));
                }
                LeaderOutput::Touch { touches, .. } => {
                    let now = crate::driver::now();
                    for t in touches {
                        node.core.touch_session(t.session_id, now.mono_ms);
                    }
                }
                LeaderOutput::StepDown(reason) => {
                    return self.look_again(&format!("stepping down: {reason:?}"), node);
                }
            }
        }
    }

    /// Run the core's actions now (inside role outputs, so replies keep commit order).
    fn flush_core(&mut self, node: &mut Node<'_>) {
        self.core_actions(node, None);
    }

    /// Write an epoch file and remember its value.
    fn write_epoch(&mut self, file: EpochFile, epoch: Epoch) -> Result<(), String> {
        write_epoch(&self.cfg.snap_dir, file.name(), epoch)?;
        match file {
            EpochFile::Accepted => self.accepted_epoch = epoch,
            EpochFile::Current => self.current_epoch = epoch,
        }
        Ok(())
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

    fn start_learning(
        &mut self,
        leader: ServerId,
        link: LinkId,
        out: UnboundedSender<LinkOut>,
        node: &mut Node<'_>,
    ) {
        let lcfg = LearnerConfig {
            my_id: self.cfg.my_id,
            kind: if self.cfg.i_observe() {
                LearnerKind::Observer
            } else {
                LearnerKind::Follower
            },
            timing: self.cfg.timing,
            config_version: 0,
        };
        let last = Zxid(self.last_logged);
        let start = LearnerStart {
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            last_zxid: last,
            durable_zxid: last,
        };
        let now = self.now();
        let (learner, actions) = Learner::new(lcfg, start, now);
        self.phase = Phase::Learning {
            leader,
            link,
            out,
            learner: Box::new(learner),
        };
        self.learner_out(actions, node);
    }

    fn learner_result(
        &mut self,
        r: Result<Vec<LearnerAction>, zooid_zab::ZabError>,
        node: &mut Node<'_>,
    ) {
        match r {
            Ok(actions) => self.learner_out(actions, node),
            Err(e) => self.look_again(&format!("following failed: {e}"), node),
        }
    }

    fn learner_out(&mut self, actions: Vec<LearnerAction>, node: &mut Node<'_>) {
        for a in actions {
            let Phase::Learning { out, .. } = &mut self.phase else {
                return;
            };
            match a {
                LearnerAction::Send(m) => {
                    let _ = out.send(LinkOut::Msg(m));
                }
                LearnerAction::WriteAcceptedEpoch(e) => {
                    if let Err(err) = self.write_epoch(EpochFile::Accepted, e) {
                        return self.look_again(&err, node);
                    }
                }
                LearnerAction::WriteCurrentEpoch(e) => {
                    if let Err(err) = self.write_epoch(EpochFile::Current, e) {
                        return self.look_again(&err, node);
                    }
                }
                LearnerAction::Truncate(z) => {
                    if let Err(err) = self.truncate(z, node) {
                        return self.look_again(&err, node);
                    }
                }
                LearnerAction::LoadSnapshot { zxid, body } => {
                    if let Err(err) = self.load_snapshot(zxid, &body, node) {
                        return self.look_again(&err, node);
                    }
                }
                LearnerAction::Append(e) => {
                    let zxid = e.header.zxid;
                    let mut w = Writer::new();
                    e.encode(&mut w);
                    let entry = w.into_inner();
                    self.remember(zxid, &entry);
                    let _ = node.writer.send(ToWriter::Append { zxid, entry });
                }
                LearnerAction::Apply(entry) => {
                    node.core
                        .handle(crate::driver::now(), Input::Apply { entry });
                    self.flush_core(node);
                }
                LearnerAction::UpToDate { epoch } => {
                    self.serving = true;
                    self.answer_with_epoch(self.election.state(), epoch);
                    tracing::info!(%epoch, "up to date with the leader; serving clients");
                }
                LearnerAction::SyncDone => {
                    node.core.handle(crate::driver::now(), Input::SyncDone);
                    self.flush_core(node);
                }
                LearnerAction::Revalidated { session_id, valid } => {
                    node.core.handle(
                        crate::driver::now(),
                        Input::Revalidated { session_id, valid },
                    );
                    self.flush_core(node);
                }
            }
        }
    }

    /// TRUNC: drop every logged txn above `zxid`, and the snapshots past it, and reload.
    fn truncate(&mut self, zxid: Zxid, node: &mut Node<'_>) -> Result<(), String> {
        tracing::info!(
            zxid = format_args!("{:#x}", zxid.0),
            "TRUNC: truncating the txn log"
        );
        quiesce(node)?;
        zooid_storage::txnlog::truncate_after(&self.cfg.log_dir, zxid.0)
            .map_err(|e| format!("cannot truncate the txn log: {e}"))?;
        zooid_storage::sync::remove_snapshots_above(&self.cfg.snap_dir, zxid.0)
            .map_err(|e| format!("cannot remove snapshots past the TRUNC point: {e}"))?;
        let tree = self.reload()?;
        if tree.last_zxid() != zxid.0 {
            // What is left on disk ends elsewhere, e.g. the TRUNC point lies inside a snapshot
            // an earlier SNAP stored. Start over from what the disk holds: the leader will
            // sync us from there.
            return Err(format!(
                "after TRUNC to {:#x} the data on disk ends at {:#x}",
                zxid.0,
                tree.last_zxid()
            ));
        }
        let now = crate::driver::now();
        *node.core = self.role_core(tree, now, CoreRole::Learner);
        Ok(())
    }

    /// SNAP: the leader's tree replaces ours, durably, before anything else is logged.
    fn load_snapshot(
        &mut self,
        zxid: Zxid,
        body: &[u8],
        node: &mut Node<'_>,
    ) -> Result<(), String> {
        quiesce(node)?;
        let (path, tree) = zooid_storage::sync::write_sync_snapshot(
            &self.cfg.snap_dir,
            body,
            zxid.0,
            node.snapshots.layout,
        )
        .map_err(|e| format!("cannot store the leader's snapshot: {e}"))?;
        zooid_storage::txnlog::truncate_after(&self.cfg.log_dir, zxid.0)
            .map_err(|e| format!("cannot truncate the txn log: {e}"))?;
        zooid_storage::sync::remove_snapshots_above(&self.cfg.snap_dir, zxid.0)
            .map_err(|e| format!("cannot remove snapshots past the SNAP point: {e}"))?;
        tracing::info!(
            file = %path.display(),
            nodes = tree.node_count(),
            "SNAP: loaded the leader's snapshot"
        );
        let now = crate::driver::now();
        *node.core = self.role_core(tree, now, CoreRole::Learner);
        self.last_logged = zxid.0;
        self.recent.clear();
        self.recent_since = Some(zxid.0);
        Ok(())
    }
}

/// Make everything appended durable and close the log file, end any snapshot being written
/// (it is of the tree about to change, and must not land after the files do), then drop stale
/// reports.
fn quiesce(node: &mut Node<'_>) -> Result<(), String> {
    node.snapshots.cancel_and_wait();
    let (tx, rx) = std::sync::mpsc::channel();
    node.writer
        .send(ToWriter::Quiesce(tx))
        .map_err(|_| String::from("the txn log writer is gone"))?;
    rx.recv()
        .map_err(|_| String::from("the txn log writer is gone"))??;
    while let Ok(msg) = node.from_writer.try_recv() {
        if let FromWriter::Failed(e) = msg {
            return Err(e);
        }
    }
    Ok(())
}

/// The leader's txn log, for DIFFs older than the in-memory window: read only while the log
/// is small beside the newest snapshot (ZooKeeper's snapshotSizeFactor, 0.33).
struct LogReader<'a> {
    dir: &'a Path,
    snap_dir: &'a Path,
}

impl TxnLogReader for LogReader<'_> {
    fn committed_range(&self, from: Zxid, to: Zxid) -> Option<Vec<TxnEntry>> {
        let newest = zooid_storage::snapshot::snapshot_files(self.snap_dir)
            .ok()?
            .last()
            .and_then(|(_, p)| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len());
        let budget = newest / 3;
        zooid_storage::sync::committed_range(self.dir, from.0, to.0, budget)
    }
}

/// The two epoch files in the snapshot directory.
#[derive(Debug, Clone, Copy)]
enum EpochFile {
    Accepted,
    Current,
}

impl EpochFile {
    fn name(self) -> &'static str {
        match self {
            EpochFile::Accepted => "acceptedEpoch",
            EpochFile::Current => "currentEpoch",
        }
    }
}

/// `acceptedEpoch` and `currentEpoch` from the snapshot directory; a missing file means the
/// epoch of the last zxid, as ZooKeeper assumes (and then writes).
fn read_epochs(dir: &Path, last_zxid: i64) -> Result<(Epoch, Epoch), String> {
    let from_zxid = Zxid(last_zxid).epoch();
    let read = |name: &str| -> Result<Epoch, String> {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<i64>().map(Epoch).map_err(|_| {
                format!(
                    "{}: {:?} is not an epoch number (it holds one decimal number; delete the file to take the epoch from the txn log)",
                    path.display(),
                    s.trim()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_epoch(dir, name, from_zxid)?;
                Ok(from_zxid)
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    };
    let current = read(EpochFile::Current.name())?;
    let accepted = read(EpochFile::Accepted.name())?;
    if current > accepted {
        return Err(format!(
            "{}: currentEpoch {current} is above acceptedEpoch {accepted}; the files are damaged (ZooKeeper refuses to start too)",
            dir.display()
        ));
    }
    Ok((accepted, current))
}

/// Write an epoch file atomically and durably (temporary file, fsync, rename, directory fsync).
fn write_epoch(dir: &Path, name: &str, epoch: Epoch) -> Result<(), String> {
    use std::io::Write;
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let r = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(epoch.0.to_string().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    r.map_err(|e| format!("cannot write {}: {e}", path.display()))
}
