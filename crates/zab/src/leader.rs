//! The leader's side of Zab (`zab.md` §4-§8, §12; `Leader.lead`, `getEpochToPropose`,
//! `waitForEpochAck`, `waitForNewLeaderAck`, `processAck`, `LearnerHandler.run`), sans-IO:
//! every learner connection is a [`ConnId`] the caller chose; the leader takes their decoded
//! packets, its own "durable through zxid" reports, proposals and `now_ms`, and returns
//! [`Output`]s.
//!
//! ```text
//! Discovery        FOLLOWERINFO/OBSERVERINFO from anyone; once I + voters form a quorum:
//!                  epoch = max(acceptedEpoch of all so far, mine) + 1,
//!                  WriteAcceptedEpoch, LEADERINFO to all (later learners get it at once)
//! AwaitEpochAcks   ACKEPOCH (lastZxid, currentEpoch|-1): a learner ahead of me is closed;
//!                  voters with currentEpoch != -1 and lastZxid != -1 count;
//!                  quorum ─► WriteCurrentEpoch, then sync every learner that acked:
//!                  (ReadLog first when it is behind the in-memory window; it waits in
//!                  AwaitLog for `on_log_read`, and the sync is planned again with what
//!                  was read) DIFF|TRUNC|SNAP(+StreamSnapshot), PROPOSAL+COMMIT..., outstanding
//!                  PROPOSALs (followers), NEWLEADER e<<32 (config text); live traffic follows
//! AwaitNewLeaderAcks  first packet after NEWLEADER must be ACK e<<32; quorum of voters
//!                  (me once my history is durable) ─► Established, UPTODATE to all acked
//! Broadcast        propose ─► PROPOSAL to followers; COMMIT in zxid order once a quorum of
//!                  voters ACKed (me after my fsync) ─► COMMIT to followers, INFORM to
//!                  observers, Output::Commit; PING every tick/2; SYNC after the outstanding
//!                  proposals commit; REQUEST/REVALIDATE/PING touches go to the caller
//! config version   a reconfig in my log newer than my config (last seen), or with
//!                  reconfigEnabled a static config (version 0) versioned by the epoch's first
//!                  zxid, is announced: NEWLEADER carries it, its voters' quorum must ACK
//!                  NEWLEADER too, and Established is followed by Output::Activate
//! reconfig         a proposal whose txn is a reconfig makes its config pending: it and every
//!                  later proposal then need a quorum of the old and of the new voters. Its
//!                  commit goes to followers as COMMITANDACTIVATE and to observers as
//!                  INFORMANDACTIVATE, both naming the designated leader (me if I vote in
//!                  the new config, else the new voter that ACKed the most), then
//!                  Output::Activate; a leader that is not designated then steps down
//! every tick       a learner silent for initLimit (before UPTODATE) or syncLimit,
//!                  or with a proposal un-ACKed for syncLimit, is closed; fewer than a quorum
//!                  of voters connected ─► StepDown; a discovery phase longer than initLimit
//!                  ─► StepDown
//! ```
//!
//! Contract with the caller: it executes outputs in order (the epoch writes are durable before
//! the next output, `StreamSnapshot` writes the tree as it is at that moment, which reflects
//! exactly the `Commit`s output so far); it logs each proposed txn itself and reports with
//! [`Leader::on_persisted`]; on `StepDown` it closes every connection and looks again.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use zooid_proto::TxnEntry;

use crate::error::ZabError;
use crate::ids::{Epoch, ServerId, Zxid};
use crate::learner::LearnerKind;
use crate::message::{ForwardedRequest, QuorumMessage, SessionTouch, ZAB_PROTOCOL_VERSION};
use crate::quorum::{QuorumVerifier, Timing};
use crate::sync::{plan_sync, SyncSource, SyncStart, TxnLogReader};

/// `zookeeper.commitLogCount`: committed txns kept in memory for DIFF syncs.
pub const DEFAULT_COMMIT_LOG_COUNT: usize = 500;

/// A learner connection, named by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderConfig {
    pub my_id: ServerId,
    pub quorum: QuorumVerifier,
    pub timing: Timing,
    /// Size of the in-memory committed window (Java: at least 500).
    pub commit_log_count: usize,
    /// `zookeeper.forceSnapshotSync`.
    pub force_snapshot_sync: bool,
    /// NEWLEADER's payload: the QuorumVerifier text (`config_text::render`).
    pub config_text: Vec<u8>,
    /// Our committed config version; a learner with a higher one is refused.
    pub config_version: i64,
    /// `reconfigEnabled`: a config of version 0 (a static one) takes the new epoch's first
    /// zxid as its version, through NEWLEADER, as ZooKeeper's does (ZOOKEEPER-1783).
    pub reconfig_enabled: bool,
    /// The text of the newest reconfig in my log, if newer than `config_version` (Java's
    /// `lastSeenQuorumVerifier`): it may have committed without my hearing, so NEWLEADER
    /// carries it, a quorum of its voters must ACK NEWLEADER too, and it is activated once
    /// established.
    pub last_seen: Option<Vec<u8>>,
}

/// What the leader has on disk when it starts leading.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderStart {
    pub accepted_epoch: Epoch,
    pub current_epoch: Epoch,
    /// The last logged zxid (the tree reflects the whole log; may be an epoch start after a
    /// SNAP).
    pub last_zxid: Zxid,
    /// How far the log is known durable.
    pub durable_zxid: Zxid,
    /// The newest logged txns, oldest first (the last `commit_log_count` are kept). The new
    /// leader's whole log is its history: Zab commits it in the new epoch.
    pub history: Vec<TxnEntry>,
}

/// Why the leader gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepDownReason {
    /// No quorum of FOLLOWERINFOs within initLimit ("Timeout while waiting for epoch").
    DiscoveryTimeout,
    /// No quorum of ACKEPOCHs within initLimit.
    EpochAckTimeout,
    /// No quorum of NEWLEADER ACKs within initLimit.
    NewLeaderAckTimeout,
    /// Fewer than a quorum of voters connected ("Not sufficient followers synced").
    LostQuorum,
    /// The zxid counter of this epoch is used up.
    ZxidExhausted,
    /// A committed reconfig made another member the leader (this one no longer votes).
    Reconfigured { designated: ServerId },
}

/// Why a learner connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The first packet was not FOLLOWERINFO/OBSERVERINFO.
    NotALearner,
    /// The learner claims our own id.
    SameIdAsLeader,
    /// A newer connection from the same server id.
    Replaced,
    /// Its config version is above ours ("Follower is ahead of the leader").
    ConfigAhead,
    /// Its (currentEpoch, lastZxid) is above ours ("Follower is ahead of the leader").
    FollowerAhead,
    /// Its protocol is older than Zab 1.0.
    OldProtocol,
    /// A packet its phase does not allow.
    Unexpected,
    /// Silent for initLimit / syncLimit.
    Silent,
    /// A proposal left un-ACKed for syncLimit ("transaction timeout").
    AckTimeout,
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Send {
        conn: ConnId,
        msg: QuorumMessage,
    },
    /// Right after the SNAP just sent on `conn`: write the tree (taken now, reflecting `zxid`)
    /// as the snapshot stream, then "BenWasHere".
    StreamSnapshot {
        conn: ConnId,
        zxid: Zxid,
    },
    /// The learner on `conn` is behind the in-memory window: read the committed txns
    /// `from..=to` from the txn log (off the caller's critical path) and answer with
    /// [`Leader::on_log_read`].
    ReadLog {
        conn: ConnId,
        from: Zxid,
        to: Zxid,
    },
    Close {
        conn: ConnId,
        reason: CloseReason,
    },
    WriteAcceptedEpoch(Epoch),
    WriteCurrentEpoch(Epoch),
    /// A quorum ACKed NEWLEADER: serve clients, answer notifications with this epoch, and
    /// number txns from [`Leader::next_zxid`].
    Established {
        epoch: Epoch,
    },
    /// Apply this proposed txn to the tree and answer its client (zxid order).
    Commit {
        zxid: Zxid,
    },
    /// The reconfig committed at `zxid` (just output as `Commit`) is the configuration now:
    /// `config` is its text (the new `/zookeeper/config` data), `designated` the leader the
    /// learners were told to follow.
    Activate {
        zxid: Zxid,
        config: Vec<u8>,
        designated: ServerId,
    },
    /// A client request forwarded by a learner: turn it into a txn (or answer a sync with
    /// [`Leader::sync`]).
    Request {
        conn: ConnId,
        sid: ServerId,
        request: ForwardedRequest,
    },
    /// A learner asks whether a session is alive; answer with [`Leader::revalidate_reply`].
    Revalidate {
        conn: ConnId,
        sid: ServerId,
        session_id: i64,
        timeout_ms: i32,
    },
    /// Sessions a learner saw activity on (from its PING reply).
    Touch {
        sid: ServerId,
        touches: Vec<SessionTouch>,
    },
    StepDown(StepDownReason),
}

/// Where the leader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LeaderPhase {
    Discovery,
    AwaitEpochAcks,
    AwaitNewLeaderAcks,
    Broadcast,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    AwaitInfo,
    /// Info received, the epoch is not chosen yet.
    AwaitEpoch,
    AwaitAckEpoch,
    /// ACKEPOCH received, waiting for the quorum of them.
    AwaitEpochQuorum,
    /// Its sync waits for txns read from the log (`Output::ReadLog`).
    AwaitLog,
    AwaitNewLeaderAck,
    /// NEWLEADER ACKed, waiting for the quorum of them.
    AwaitEstablished,
    Synced,
}

#[derive(Debug, Clone)]
struct Peer {
    sid: Option<ServerId>,
    kind: LearnerKind,
    stage: Stage,
    peer_last_zxid: Zxid,
    /// What `Output::ReadLog` brought (`Some(None)`: the log could not serve it).
    log_read: Option<Option<Vec<TxnEntry>>>,
    last_heard_ms: u64,
    /// Proposals sent and not ACKed by this learner: (zxid, sent at).
    unacked: VecDeque<(Zxid, u64)>,
}

impl Peer {
    /// The sender has started: live traffic and PINGs go to it.
    fn forwarding(&self) -> bool {
        self.stage >= Stage::AwaitNewLeaderAck
    }

    /// UPTODATE goes out. A learner ACKs the proposals it got while syncing only from now on,
    /// so their ACK clock starts now.
    fn up_to_date(&mut self, now_ms: u64) {
        self.stage = Stage::Synced;
        for (_, at) in self.unacked.iter_mut() {
            *at = now_ms;
        }
    }
}

#[derive(Debug, Clone)]
struct Proposal {
    entry: TxnEntry,
    /// Followers that ACKed it (each quorum counts its own voters among them).
    acks: BTreeSet<ServerId>,
    /// The pending config's voters must ACK it too (proposed while a reconfig was pending).
    also: Option<QuorumVerifier>,
}

/// A proposed reconfig, not committed yet (Java's `lastSeenQuorumVerifier`).
#[derive(Debug, Clone)]
struct PendingConfig {
    zxid: Zxid,
    quorum: QuorumVerifier,
    text: Vec<u8>,
}

/// The config text a reconfig txn sets, and its verifier (None for any other txn).
fn reconfig_of(entry: &TxnEntry) -> Option<(QuorumVerifier, Vec<u8>)> {
    let text = crate::config_text::of_entry(entry)?;
    let (members, _) = crate::config_text::parse(std::str::from_utf8(text).ok()?).ok()?;
    Some((QuorumVerifier::of_members(&members)?, text.to_vec()))
}

/// One leadership; see the module docs. Make a new one for each election won.
#[derive(Debug, Clone)]
pub struct Leader {
    cfg: LeaderConfig,
    phase: LeaderPhase,
    phase_deadline_ms: u64,
    accepted_epoch: Epoch,
    current_epoch: Epoch,
    /// (currentEpoch, lastZxid) when leadership began, for the "ahead" check.
    summary: (Epoch, Zxid),
    epoch: Option<Epoch>,
    durable: Zxid,
    /// The last zxid of the history we started with; must be durable before we count
    /// ourselves for NEWLEADER.
    history_end: Zxid,
    committed: VecDeque<TxnEntry>,
    last_committed: Zxid,
    last_processed: Zxid,
    outstanding: BTreeMap<Zxid, Proposal>,
    last_proposed: Zxid,
    pending_config: Option<PendingConfig>,
    /// The config NEWLEADER carries, activated once established (see the module docs).
    announced: Option<PendingConfig>,
    peers: BTreeMap<ConnId, Peer>,
    max_accepted: Epoch,
    info_sids: BTreeSet<ServerId>,
    epoch_ack_sids: BTreeSet<ServerId>,
    newleader_ack_sids: BTreeSet<ServerId>,
    /// Forwarded syncs waiting for a commit: (the last proposal outstanding then, conn).
    pending_syncs: VecDeque<(Zxid, ConnId)>,
    next_ping_ms: u64,
    next_check_ms: u64,
}

impl Leader {
    /// Start leading (the election chose us). Panics on a history out of order or a
    /// non-voting leader: programmer errors.
    pub fn new(cfg: LeaderConfig, start: LeaderStart, now_ms: u64) -> (Leader, Vec<Output>) {
        assert!(
            cfg.quorum.is_voter(cfg.my_id),
            "only a voter can lead ({} is not one)",
            cfg.my_id
        );
        assert!(
            start
                .history
                .windows(2)
                .all(|w| w[0].header.zxid < w[1].header.zxid),
            "the leader's history must be in zxid order"
        );
        if let Some(last) = start.history.last() {
            assert!(
                Zxid(last.header.zxid) <= start.last_zxid,
                "history goes past last_zxid"
            );
        }
        let keep = start
            .history
            .len()
            .saturating_sub(cfg.commit_log_count.max(1));
        let committed: VecDeque<TxnEntry> = start.history.into_iter().skip(keep).collect();
        let mut leader = Leader {
            phase: LeaderPhase::Discovery,
            phase_deadline_ms: now_ms.saturating_add(cfg.timing.init_ms()),
            accepted_epoch: start.accepted_epoch,
            current_epoch: start.current_epoch,
            summary: (start.current_epoch, start.last_zxid),
            epoch: None,
            durable: start.durable_zxid.min(start.last_zxid),
            history_end: start.last_zxid,
            committed,
            last_committed: start.last_zxid,
            last_processed: start.last_zxid,
            outstanding: BTreeMap::new(),
            last_proposed: start.last_zxid,
            pending_config: None,
            announced: None,
            peers: BTreeMap::new(),
            max_accepted: start.accepted_epoch,
            info_sids: BTreeSet::new(),
            epoch_ack_sids: BTreeSet::new(),
            newleader_ack_sids: BTreeSet::new(),
            pending_syncs: VecDeque::new(),
            next_ping_ms: now_ms,
            next_check_ms: now_ms,
            cfg,
        };
        leader.announce_last_seen();
        let mut out = Vec::new();
        leader.advance(now_ms, &mut out);
        (leader, out)
    }

    pub fn phase(&self) -> LeaderPhase {
        self.phase
    }

    pub fn is_established(&self) -> bool {
        self.phase == LeaderPhase::Broadcast
    }

    /// The new epoch, once chosen.
    pub fn epoch(&self) -> Option<Epoch> {
        self.epoch
    }

    pub fn last_committed(&self) -> Zxid {
        self.last_committed
    }

    pub fn last_proposed(&self) -> Zxid {
        self.last_proposed
    }

    /// The zxid the next proposal must carry.
    pub fn next_zxid(&self) -> Zxid {
        Zxid(self.last_proposed.0 + 1)
    }

    /// Proposals not committed yet.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Forwarded syncs waiting for outstanding proposals to commit (`zk_pending_syncs`).
    pub fn pending_syncs(&self) -> usize {
        self.pending_syncs.len()
    }

    /// Server ids of the connected learners that ACKed NEWLEADER.
    pub fn synced_learners(&self) -> BTreeSet<ServerId> {
        self.peers
            .values()
            .filter(|p| p.stage >= Stage::AwaitEstablished)
            .filter_map(|p| p.sid)
            .collect()
    }

    /// Whether a proposed reconfig has not committed yet (`ReconfigInProgress`).
    pub fn reconfig_pending(&self) -> bool {
        self.pending_config.is_some()
    }

    /// The followers connected and synced (past UPTODATE), and me: a new config needs a
    /// quorum of them before it is proposed (`isQuorumSynced`).
    pub fn synced_followers(&self) -> BTreeSet<ServerId> {
        self.peers
            .values()
            .filter(|p| p.stage == Stage::Synced && p.kind == LearnerKind::Follower)
            .filter_map(|p| p.sid)
            .chain([self.cfg.my_id])
            .collect()
    }

    /// When `on_tick` next has something to do.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        match self.phase {
            LeaderPhase::Stopped => None,
            LeaderPhase::Broadcast => Some(self.next_ping_ms.min(self.next_check_ms)),
            _ => Some(self.phase_deadline_ms.min(self.next_ping_ms)),
        }
    }

    fn ping_due(&self) -> bool {
        self.peers.values().any(Peer::forwarding)
    }

    // ---- connections --------------------------------------------------------------------

    /// A learner connected (optional: the first packet registers it too).
    pub fn on_connect(&mut self, conn: ConnId, now_ms: u64) {
        if self.phase == LeaderPhase::Stopped {
            return;
        }
        self.peers.entry(conn).or_insert(Peer {
            sid: None,
            kind: LearnerKind::Follower,
            stage: Stage::AwaitInfo,
            peer_last_zxid: Zxid::NONE,
            log_read: None,
            last_heard_ms: now_ms,
            unacked: VecDeque::new(),
        });
    }

    /// The connection is gone (closed by the learner or the network).
    pub fn on_disconnect(&mut self, conn: ConnId, _now_ms: u64) {
        self.peers.remove(&conn);
        self.pending_syncs.retain(|(_, c)| *c != conn);
    }

    fn close(&mut self, conn: ConnId, reason: CloseReason, out: &mut Vec<Output>) {
        self.on_disconnect(conn, 0);
        out.push(Output::Close { conn, reason });
    }

    fn send(out: &mut Vec<Output>, conn: ConnId, msg: QuorumMessage) {
        out.push(Output::Send { conn, msg });
    }

    /// A decoded packet from a learner.
    pub fn on_message(&mut self, conn: ConnId, msg: QuorumMessage, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if self.phase == LeaderPhase::Stopped {
            return out;
        }
        self.on_connect(conn, now_ms);
        let peer = self.peers.get_mut(&conn).expect("registered above");
        peer.last_heard_ms = now_ms;
        match peer.stage {
            Stage::AwaitInfo => self.on_info(conn, msg, &mut out),
            Stage::AwaitAckEpoch => match msg {
                QuorumMessage::AckEpoch {
                    zxid,
                    current_epoch,
                } => self.on_ack_epoch(conn, zxid, current_epoch, now_ms, &mut out),
                _ => self.close(conn, CloseReason::Unexpected, &mut out),
            },
            Stage::AwaitNewLeaderAck => {
                let epoch = self.epoch.expect("chosen before any sync");
                match msg {
                    QuorumMessage::Ack { zxid } if zxid == Zxid::epoch_start(epoch) => {
                        self.on_newleader_ack(conn, now_ms, &mut out)
                    }
                    // Java: the first packet after NEWLEADER must be its ACK.
                    _ => self.close(conn, CloseReason::Unexpected, &mut out),
                }
            }
            Stage::AwaitEstablished | Stage::Synced => {
                self.on_broadcast_message(conn, msg, now_ms, &mut out)
            }
            // The Java handler is blocked in a wait and reads nothing; a learner has nothing
            // to say here.
            Stage::AwaitEpoch | Stage::AwaitEpochQuorum | Stage::AwaitLog => {
                self.close(conn, CloseReason::Unexpected, &mut out)
            }
        }
        out
    }

    fn on_info(&mut self, conn: ConnId, msg: QuorumMessage, out: &mut Vec<Output>) {
        let (zxid, info, kind) = match msg {
            QuorumMessage::FollowerInfo { zxid, info } => (zxid, info, LearnerKind::Follower),
            QuorumMessage::ObserverInfo { zxid, info } => (zxid, info, LearnerKind::Observer),
            _ => return self.close(conn, CloseReason::NotALearner, out),
        };
        if info.sid == self.cfg.my_id {
            return self.close(conn, CloseReason::SameIdAsLeader, out);
        }
        if info.protocol_version.unwrap_or(0) < ZAB_PROTOCOL_VERSION {
            return self.close(conn, CloseReason::OldProtocol, out);
        }
        if info.config_version.unwrap_or(0) > self.cfg.config_version {
            return self.close(conn, CloseReason::ConfigAhead, out);
        }
        let older: Vec<ConnId> = self
            .peers
            .iter()
            .filter(|(c, p)| **c != conn && p.sid == Some(info.sid))
            .map(|(c, _)| *c)
            .collect();
        for c in older {
            self.close(c, CloseReason::Replaced, out);
        }
        let peer = self.peers.get_mut(&conn).expect("registered");
        peer.sid = Some(info.sid);
        peer.kind = kind;
        let epoch = match self.epoch {
            Some(e) => e,
            None => {
                // getEpochToPropose: observers raise the epoch too, only voters count.
                self.max_accepted = self.max_accepted.max(zxid.epoch());
                if kind == LearnerKind::Follower && self.cfg.quorum.is_voter(info.sid) {
                    self.info_sids.insert(info.sid);
                }
                peer.stage = Stage::AwaitEpoch;
                let now_ms = peer.last_heard_ms;
                return self.advance(now_ms, out);
            }
        };
        peer.stage = Stage::AwaitAckEpoch;
        Self::send(out, conn, leader_info(epoch));
    }

    fn on_ack_epoch(
        &mut self,
        conn: ConnId,
        zxid: Zxid,
        current_epoch: Option<Epoch>,
        now_ms: u64,
        out: &mut Vec<Output>,
    ) {
        let peer = self.peers.get_mut(&conn).expect("registered");
        let sid = peer.sid.expect("identified");
        if let Some(ce) = current_epoch {
            if (ce, zxid) > self.summary {
                return self.close(conn, CloseReason::FollowerAhead, out);
            }
            if zxid != Zxid::NONE
                && peer.kind == LearnerKind::Follower
                && self.cfg.quorum.is_voter(sid)
            {
                self.epoch_ack_sids.insert(sid);
            }
        }
        peer.peer_last_zxid = zxid;
        peer.stage = Stage::AwaitEpochQuorum;
        if self.phase >= LeaderPhase::AwaitNewLeaderAcks {
            self.sync_peer(conn, now_ms, out);
        } else {
            self.advance(now_ms, out);
        }
    }

    /// The txns `Output::ReadLog` asked for (`None`: the log does not hold them): the
    /// learner's sync goes on.
    pub fn on_log_read(
        &mut self,
        conn: ConnId,
        txns: Option<Vec<TxnEntry>>,
        now_ms: u64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        if let Some(peer) = self.peers.get_mut(&conn) {
            if peer.stage == Stage::AwaitLog {
                peer.log_read = Some(txns);
                self.sync_peer(conn, now_ms, &mut out);
            }
        }
        out
    }

    /// Queue the sync for one learner, the live traffic it needs, and NEWLEADER; or, for a
    /// learner behind the in-memory window, ask for the older txns first.
    fn sync_peer(&mut self, conn: ConnId, now_ms: u64, out: &mut Vec<Output>) {
        let epoch = self.epoch.expect("chosen before any sync");
        let peer = self.peers.get_mut(&conn).expect("registered");
        let log = LogRead {
            read: peer.log_read.take(),
            wanted: std::cell::Cell::new(None),
        };
        let plan = plan_sync(
            peer.peer_last_zxid,
            &SyncSource {
                last_processed: self.last_processed,
                committed: &self.committed,
                force_snapshot: self.cfg.force_snapshot_sync,
                log: &log,
            },
        );
        if let Some((from, to)) = log.wanted.get() {
            peer.stage = Stage::AwaitLog;
            out.push(Output::ReadLog { conn, from, to });
            return;
        }
        match plan.start {
            SyncStart::Diff(zxid) => Self::send(out, conn, QuorumMessage::Diff { zxid }),
            SyncStart::Trunc(zxid) => Self::send(out, conn, QuorumMessage::Trunc { zxid }),
            SyncStart::Snap(zxid) => {
                Self::send(out, conn, QuorumMessage::Snap { zxid });
                out.push(Output::StreamSnapshot { conn, zxid });
            }
        }
        for entry in plan.txns {
            let zxid = Zxid(entry.header.zxid);
            Self::send(out, conn, QuorumMessage::Proposal { zxid, entry });
            Self::send(out, conn, QuorumMessage::Commit { zxid });
        }
        // startForwarding: committed txns are all in the window above; the outstanding
        // proposals are all above it, and only followers get them.
        let peer = self.peers.get_mut(&conn).expect("registered");
        if peer.kind == LearnerKind::Follower {
            for (&zxid, p) in &self.outstanding {
                peer.unacked.push_back((zxid, now_ms));
                out.push(Output::Send {
                    conn,
                    msg: QuorumMessage::Proposal {
                        zxid,
                        entry: p.entry.clone(),
                    },
                });
            }
        }
        peer.stage = Stage::AwaitNewLeaderAck;
        Self::send(
            out,
            conn,
            QuorumMessage::NewLeader {
                zxid: Zxid::epoch_start(epoch),
                config: Some(self.cfg.config_text.clone()),
            },
        );
    }

    fn on_newleader_ack(&mut self, conn: ConnId, now_ms: u64, out: &mut Vec<Output>) {
        let peer = self.peers.get_mut(&conn).expect("registered");
        let sid = peer.sid.expect("identified");
        // Every follower's: the current and an announced config each count their voters.
        if peer.kind == LearnerKind::Follower {
            self.newleader_ack_sids.insert(sid);
        }
        if self.phase == LeaderPhase::Broadcast {
            peer.up_to_date(now_ms);
            Self::send(out, conn, QuorumMessage::UpToDate);
        } else {
            peer.stage = Stage::AwaitEstablished;
            self.advance(now_ms, out);
        }
    }

    fn on_broadcast_message(
        &mut self,
        conn: ConnId,
        msg: QuorumMessage,
        now_ms: u64,
        out: &mut Vec<Output>,
    ) {
        let peer = self.peers.get_mut(&conn).expect("registered");
        let sid = peer.sid.expect("identified");
        match msg {
            QuorumMessage::Ack { zxid } => {
                // The ACK after UPTODATE has counter 0; ACKs of committed zxids are late.
                if zxid.is_epoch_start() {
                    return;
                }
                while peer.unacked.front().is_some_and(|(z, _)| *z <= zxid) {
                    peer.unacked.pop_front();
                }
                // Every follower's ACK is kept: the old and the pending config's quorums each
                // count their own voters.
                let counts = peer.kind == LearnerKind::Follower;
                if let (true, Some(p)) = (counts, self.outstanding.get_mut(&zxid)) {
                    p.acks.insert(sid);
                    self.try_commit(now_ms, out);
                }
            }
            QuorumMessage::PingReply { touches, .. } if !touches.is_empty() => {
                out.push(Output::Touch { sid, touches });
            }
            QuorumMessage::Request(request) if peer.stage == Stage::Synced => {
                out.push(Output::Request { conn, sid, request })
            }
            QuorumMessage::Revalidate {
                session_id,
                timeout_ms,
            } if peer.stage == Stage::Synced => out.push(Output::Revalidate {
                conn,
                sid,
                session_id,
                timeout_ms,
            }),
            // Java logs an unexpected packet here and goes on.
            _ => {}
        }
    }

    // ---- phases -------------------------------------------------------------------------

    /// Move through the discovery phases as far as the quorums allow.
    fn advance(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let me = self.cfg.my_id;
        if self.phase == LeaderPhase::Discovery {
            if !self
                .cfg
                .quorum
                .has_quorum(self.info_sids.iter().chain([&me]))
            {
                return;
            }
            let epoch = Epoch(self.max_accepted.0 + 1);
            assert!(
                epoch.0 < 1 << 31,
                "epoch {epoch} does not fit the 32 bits of a zxid"
            );
            self.epoch = Some(epoch);
            self.accepted_epoch = epoch;
            self.last_proposed = Zxid::epoch_start(epoch);
            self.version_static_config(Zxid::epoch_start(epoch));
            out.push(Output::WriteAcceptedEpoch(epoch));
            self.phase = LeaderPhase::AwaitEpochAcks;
            self.phase_deadline_ms = now_ms.saturating_add(self.cfg.timing.init_ms());
            for (&conn, peer) in self.peers.iter_mut() {
                if peer.stage == Stage::AwaitEpoch {
                    peer.stage = Stage::AwaitAckEpoch;
                    out.push(Output::Send {
                        conn,
                        msg: leader_info(epoch),
                    });
                }
            }
        }
        if self.phase == LeaderPhase::AwaitEpochAcks {
            if !self
                .cfg
                .quorum
                .has_quorum(self.epoch_ack_sids.iter().chain([&me]))
            {
                return;
            }
            let epoch = self.epoch.expect("chosen");
            self.current_epoch = epoch;
            out.push(Output::WriteCurrentEpoch(epoch));
            self.phase = LeaderPhase::AwaitNewLeaderAcks;
            self.phase_deadline_ms = now_ms.saturating_add(self.cfg.timing.init_ms());
            let waiting: Vec<ConnId> = self
                .peers
                .iter()
                .filter(|(_, p)| p.stage == Stage::AwaitEpochQuorum)
                .map(|(c, _)| *c)
                .collect();
            for conn in waiting {
                self.sync_peer(conn, now_ms, out);
            }
        }
        if self.phase == LeaderPhase::AwaitNewLeaderAcks {
            let me_durable = self.durable >= self.history_end;
            let acks = self
                .newleader_ack_sids
                .iter()
                .chain(me_durable.then_some(&me));
            let acks: BTreeSet<ServerId> = acks.copied().collect();
            let announced_ok = self
                .announced
                .as_ref()
                .is_none_or(|c| c.quorum.has_quorum(&acks));
            if !self.cfg.quorum.has_quorum(&acks) || !announced_ok {
                return;
            }
            let epoch = self.epoch.expect("chosen");
            self.phase = LeaderPhase::Broadcast;
            // startZkServer: the tree now stands at the epoch's start.
            self.last_processed = Zxid::epoch_start(epoch);
            self.next_check_ms = now_ms.saturating_add(self.cfg.timing.tick_ms);
            out.push(Output::Established { epoch });
            for (&conn, peer) in self.peers.iter_mut() {
                if peer.stage == Stage::AwaitEstablished {
                    peer.up_to_date(now_ms);
                    out.push(Output::Send {
                        conn,
                        msg: QuorumMessage::UpToDate,
                    });
                }
            }
            if let Some(c) = self.announced.take() {
                let designated = self.designated_leader(&c.quorum, &acks, c.zxid);
                self.cfg.quorum = c.quorum;
                out.push(Output::Activate {
                    zxid: c.zxid,
                    config: c.text,
                    designated,
                });
                if designated != me {
                    self.step_down(StepDownReason::Reconfigured { designated }, out);
                }
            }
        }
    }

    /// Announce the last seen config (`LeaderConfig::last_seen`) if it is newer than mine.
    fn announce_last_seen(&mut self) {
        let Some(text) = self.cfg.last_seen.take() else {
            return;
        };
        let parsed = std::str::from_utf8(&text)
            .ok()
            .and_then(|t| crate::config_text::parse(t).ok());
        let Some((members, version)) = parsed else {
            return;
        };
        let Some(quorum) = QuorumVerifier::of_members(&members) else {
            return;
        };
        if version <= self.cfg.config_version {
            return;
        }
        self.cfg.config_text = text.clone();
        self.cfg.config_version = version;
        self.announced = Some(PendingConfig {
            zxid: Zxid(version),
            quorum,
            text,
        });
    }

    /// ZOOKEEPER-1783: a static config's version becomes `zxid` (NEWLEADER's).
    fn version_static_config(&mut self, zxid: Zxid) {
        if !self.cfg.reconfig_enabled || self.cfg.config_version != 0 || self.announced.is_some() {
            return;
        }
        let text = String::from_utf8_lossy(&self.cfg.config_text);
        let Ok((members, _)) = crate::config_text::parse(&text) else {
            return;
        };
        let versioned = crate::config_text::render(&members, zxid.0).into_bytes();
        self.cfg.config_text = versioned.clone();
        self.cfg.config_version = zxid.0;
        self.announced = Some(PendingConfig {
            zxid,
            quorum: self.cfg.quorum.clone(),
            text: versioned,
        });
    }

    fn step_down(&mut self, reason: StepDownReason, out: &mut Vec<Output>) {
        self.phase = LeaderPhase::Stopped;
        self.peers.clear();
        self.pending_syncs.clear();
        out.push(Output::StepDown(reason));
    }

    // ---- broadcast ----------------------------------------------------------------------

    /// Propose a txn numbered [`Leader::next_zxid`]. The caller logs it too and reports
    /// durability with `on_persisted`.
    pub fn propose(&mut self, entry: TxnEntry, now_ms: u64) -> Result<Vec<Output>, ZabError> {
        match self.phase {
            LeaderPhase::Broadcast => {}
            LeaderPhase::Stopped => return Err(ZabError::Stopped),
            _ => return Err(ZabError::NotEstablished),
        }
        let expected = self.next_zxid();
        if expected.counter() == u32::MAX {
            let epoch = self.epoch.expect("established");
            let mut ignored = Vec::new();
            self.step_down(StepDownReason::ZxidExhausted, &mut ignored);
            return Err(ZabError::ZxidExhausted(epoch));
        }
        let got = Zxid(entry.header.zxid);
        if got != expected {
            return Err(ZabError::WrongZxid { got, expected });
        }
        let mut out = Vec::new();
        for (&conn, peer) in self.peers.iter_mut() {
            if peer.forwarding() && peer.kind == LearnerKind::Follower {
                peer.unacked.push_back((got, now_ms));
                out.push(Output::Send {
                    conn,
                    msg: QuorumMessage::Proposal {
                        zxid: got,
                        entry: entry.clone(),
                    },
                });
            }
        }
        self.last_proposed = got;
        if let Some((quorum, text)) = reconfig_of(&entry) {
            self.pending_config = Some(PendingConfig {
                zxid: got,
                quorum,
                text,
            });
        }
        let also = self.pending_config.as_ref().map(|p| p.quorum.clone());
        self.outstanding.insert(
            got,
            Proposal {
                entry,
                acks: BTreeSet::new(),
                also,
            },
        );
        // A single voter commits on its own fsync.
        self.try_commit(now_ms, &mut out);
        Ok(out)
    }

    /// Our own log is durable through `zxid`.
    pub fn on_persisted(&mut self, zxid: Zxid, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        self.durable = self.durable.max(zxid);
        match self.phase {
            LeaderPhase::AwaitNewLeaderAcks => self.advance(now_ms, &mut out),
            LeaderPhase::Broadcast => self.try_commit(now_ms, &mut out),
            _ => {}
        }
        out
    }

    /// Commit, strictly in zxid order, every head proposal a quorum has ACKed.
    fn try_commit(&mut self, _now_ms: u64, out: &mut Vec<Output>) {
        let me = self.cfg.my_id;
        while let Some(entry) = self.outstanding.first_entry() {
            let zxid = *entry.key();
            let me_durable = self.durable >= zxid;
            let acks = || entry.get().acks.iter().chain(me_durable.then_some(&me));
            let quorums = self.cfg.quorum.has_quorum(acks())
                && entry
                    .get()
                    .also
                    .as_ref()
                    .is_none_or(|q| q.has_quorum(acks()));
            // The fault harness's detection run builds a leader that commits on its own
            // durability alone (`--features fault-commit-alone`): its checks must catch it.
            let alone = cfg!(feature = "fault-commit-alone") && me_durable;
            if !alone && !quorums {
                return;
            }
            let p = entry.remove();
            let activated = self.pending_config.take_if(|c| c.zxid == zxid).map(|c| {
                let acks = p.acks.iter().copied().chain(me_durable.then_some(me));
                (self.designated_leader(&c.quorum, &acks.collect(), zxid), c)
            });
            assert!(
                zxid > self.last_committed,
                "commit order: {zxid} after {}",
                self.last_committed
            );
            self.last_committed = zxid;
            self.last_processed = zxid;
            for (&conn, peer) in &self.peers {
                if !peer.forwarding() {
                    continue;
                }
                let msg = match (peer.kind, &activated) {
                    (LearnerKind::Follower, None) => QuorumMessage::Commit { zxid },
                    (LearnerKind::Observer, None) => QuorumMessage::Inform {
                        zxid,
                        entry: p.entry.clone(),
                    },
                    (LearnerKind::Follower, Some((designated, _))) => {
                        QuorumMessage::CommitAndActivate {
                            zxid,
                            designated_leader: *designated,
                        }
                    }
                    (LearnerKind::Observer, Some((designated, _))) => {
                        QuorumMessage::InformAndActivate {
                            zxid,
                            designated_leader: *designated,
                            entry: p.entry.clone(),
                        }
                    }
                };
                out.push(Output::Send { conn, msg });
            }
            self.committed.push_back(p.entry);
            while self.committed.len() > self.cfg.commit_log_count.max(1) {
                self.committed.pop_front();
            }
            out.push(Output::Commit { zxid });
            if let Some((designated, config)) = activated {
                self.cfg.quorum = config.quorum;
                self.cfg.config_version = zxid.0;
                self.cfg.config_text = config.text.clone();
                out.push(Output::Activate {
                    zxid,
                    config: config.text,
                    designated,
                });
                if designated != me {
                    return self.step_down(StepDownReason::Reconfigured { designated }, out);
                }
            }
            while self.pending_syncs.front().is_some_and(|(z, _)| *z <= zxid) {
                let (_, conn) = self.pending_syncs.pop_front().expect("checked");
                Self::send(out, conn, QuorumMessage::Sync);
            }
        }
    }

    /// Who leads under the reconfig committed at `zxid` with `acks` (`getDesignatedLeader`):
    /// me if I vote in it; else, of its voters that ACKed it, the one that also ACKed the
    /// longest run of the proposals after it (the most up to date), the lowest id on a tie.
    fn designated_leader(
        &self,
        next: &QuorumVerifier,
        acks: &BTreeSet<ServerId>,
        zxid: Zxid,
    ) -> ServerId {
        let me = self.cfg.my_id;
        if next.is_voter(me) {
            return me;
        }
        let mut candidates: BTreeSet<ServerId> = acks
            .iter()
            .copied()
            .filter(|s| *s != me && next.is_voter(*s))
            .collect();
        let Some(mut best) = candidates.first().copied() else {
            return me;
        };
        for p in self.outstanding.range(Zxid(zxid.0 + 1)..).map(|(_, p)| p) {
            candidates.retain(|s| p.acks.contains(s));
            match candidates.first() {
                None => break,
                Some(&c) => best = c,
            }
        }
        best
    }

    /// Answer a learner's forwarded `sync` (`processSync`): SYNC now if nothing is
    /// outstanding, else once the last proposal outstanding now commits.
    pub fn sync(&mut self, conn: ConnId) -> Vec<Output> {
        let mut out = Vec::new();
        if self.peers.get(&conn).map(|p| p.stage) != Some(Stage::Synced) {
            return out;
        }
        if self.outstanding.is_empty() {
            Self::send(&mut out, conn, QuorumMessage::Sync);
        } else {
            self.pending_syncs.push_back((self.last_proposed, conn));
        }
        out
    }

    /// The answer to a learner's REVALIDATE.
    pub fn revalidate_reply(&mut self, conn: ConnId, session_id: i64, valid: bool) -> Vec<Output> {
        if !self.peers.contains_key(&conn) {
            return Vec::new();
        }
        vec![Output::Send {
            conn,
            msg: QuorumMessage::RevalidateReply { session_id, valid },
        }]
    }

    // ---- time ---------------------------------------------------------------------------

    /// Timers: discovery deadlines, silent learners, PINGs, the quorum check.
    pub fn on_tick(&mut self, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        match self.phase {
            LeaderPhase::Stopped => return out,
            LeaderPhase::Broadcast => {}
            phase if now_ms >= self.phase_deadline_ms => {
                let reason = match phase {
                    LeaderPhase::Discovery => StepDownReason::DiscoveryTimeout,
                    LeaderPhase::AwaitEpochAcks => StepDownReason::EpochAckTimeout,
                    _ => StepDownReason::NewLeaderAckTimeout,
                };
                self.step_down(reason, &mut out);
                return out;
            }
            _ => {}
        }
        let (init_ms, sync_ms) = (self.cfg.timing.init_ms(), self.cfg.timing.sync_ms());
        let mut closing = Vec::new();
        for (&conn, p) in &self.peers {
            // Until UPTODATE a learner answers nothing (Java's sync loop ignores PINGs), and
            // Java keeps initLimit on the socket until the NEWLEADER quorum.
            let limit = if p.stage == Stage::Synced {
                sync_ms
            } else {
                init_ms
            };
            if now_ms.saturating_sub(p.last_heard_ms) > limit {
                closing.push((conn, CloseReason::Silent));
            } else if p.stage == Stage::Synced
                && p.unacked
                    .front()
                    .is_some_and(|(_, at)| now_ms.saturating_sub(*at) > sync_ms)
            {
                closing.push((conn, CloseReason::AckTimeout));
            }
        }
        for (conn, reason) in closing {
            self.close(conn, reason, &mut out);
        }
        if now_ms >= self.next_ping_ms {
            if self.ping_due() {
                let zxid = self.last_proposed;
                for (&conn, p) in &self.peers {
                    if p.forwarding() {
                        out.push(Output::Send {
                            conn,
                            msg: QuorumMessage::Ping { zxid },
                        });
                    }
                }
            }
            self.next_ping_ms = now_ms.saturating_add(self.cfg.timing.ping_interval_ms());
        }
        if self.phase == LeaderPhase::Broadcast && now_ms >= self.next_check_ms {
            self.next_check_ms = now_ms.saturating_add(self.cfg.timing.tick_ms);
            let me = self.cfg.my_id;
            let connected: BTreeSet<ServerId> = self
                .peers
                .values()
                .filter(|p| p.kind == LearnerKind::Follower)
                .filter_map(|p| p.sid)
                .chain([me])
                .collect();
            let pending_ok = self
                .pending_config
                .as_ref()
                .is_none_or(|c| c.quorum.has_quorum(&connected));
            if !self.cfg.quorum.has_quorum(&connected) || !pending_ok {
                self.step_down(StepDownReason::LostQuorum, &mut out);
            }
        }
        out
    }
}

/// The log as one sync sees it: what a `ReadLog` brought, or else a note of the range the
/// plan asked for (the caller then reads it and plans again).
struct LogRead {
    read: Option<Option<Vec<TxnEntry>>>,
    wanted: std::cell::Cell<Option<(Zxid, Zxid)>>,
}

impl TxnLogReader for LogRead {
    fn committed_range(&self, from: Zxid, to: Zxid) -> Option<Vec<TxnEntry>> {
        match &self.read {
            // Read for this learner: the plan checks that it starts at `from` and meets the
            // window (the window may have moved on meanwhile: then a SNAP).
            Some(read) => read.clone(),
            None => {
                self.wanted.set(Some((from, to)));
                None
            }
        }
    }
}

fn leader_info(epoch: Epoch) -> QuorumMessage {
    QuorumMessage::LeaderInfo {
        zxid: Zxid::epoch_start(epoch),
        protocol_version: ZAB_PROTOCOL_VERSION,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::LearnerInfo;
    use crate::testkit::{entry, reconfig_entry, z};
    use zooid_proto::OpCode;

    const TICK: u64 = 100;

    fn cfg(voters: &[i64], observers: &[i64]) -> LeaderConfig {
        LeaderConfig {
            my_id: ServerId(1),
            quorum: QuorumVerifier::new(
                voters.iter().map(|&s| ServerId(s)).collect(),
                observers.iter().map(|&s| ServerId(s)).collect(),
            ),
            timing: Timing {
                tick_ms: TICK,
                init_limit: 10,
                sync_limit: 5,
            },
            commit_log_count: DEFAULT_COMMIT_LOG_COUNT,
            force_snapshot_sync: false,
            config_text: b"version=0".to_vec(),
            config_version: 0,
            reconfig_enabled: false,
            last_seen: None,
        }
    }

    fn start(epoch: i64, history: &[Zxid]) -> LeaderStart {
        let last = history.last().copied().unwrap_or(Zxid::ZERO);
        LeaderStart {
            accepted_epoch: Epoch(epoch),
            current_epoch: Epoch(epoch),
            last_zxid: last,
            durable_zxid: last,
            history: history.iter().map(|&x| entry(x)).collect(),
        }
    }

    fn follower_info(sid: i64, accepted: i64) -> QuorumMessage {
        QuorumMessage::FollowerInfo {
            zxid: Zxid::epoch_start(Epoch(accepted)),
            info: LearnerInfo::new(ServerId(sid), 0),
        }
    }

    fn observer_info(sid: i64, accepted: i64) -> QuorumMessage {
        QuorumMessage::ObserverInfo {
            zxid: Zxid::epoch_start(Epoch(accepted)),
            info: LearnerInfo::new(ServerId(sid), 0),
        }
    }

    fn ack_epoch(last: Zxid, current: Option<i64>) -> QuorumMessage {
        QuorumMessage::AckEpoch {
            zxid: last,
            current_epoch: current.map(Epoch),
        }
    }

    fn ack(zxid: Zxid) -> QuorumMessage {
        QuorumMessage::Ack { zxid }
    }

    /// Messages sent on `conn`, in order.
    fn sent(out: &[Output], conn: u64) -> Vec<QuorumMessage> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { conn: c, msg } if c.0 == conn => Some(msg.clone()),
                _ => None,
            })
            .collect()
    }

    fn types(msgs: &[QuorumMessage]) -> Vec<&'static str> {
        msgs.iter().map(|m| m.packet_type().name()).collect()
    }

    /// A packet to the leader; a ReadLog is answered at once as a leader without a readable
    /// log would be (`None`: SNAP).
    fn msg(l: &mut Leader, conn: u64, m: QuorumMessage, now: u64) -> Vec<Output> {
        let out = l.on_message(ConnId(conn), m, now);
        no_log(l, out, now)
    }

    fn no_log(l: &mut Leader, out: Vec<Output>, now: u64) -> Vec<Output> {
        let mut done = Vec::new();
        for o in out {
            match o {
                Output::ReadLog { conn, .. } => {
                    let more = l.on_log_read(conn, None, now);
                    done.extend(no_log(l, more, now));
                }
                o => done.push(o),
            }
        }
        done
    }

    /// A leader of epoch `epoch + 1` established with followers 2 and 3 (conns 2, 3).
    fn established(history: &[Zxid], epoch: i64) -> Leader {
        let (mut l, _) = Leader::new(cfg(&[1, 2, 3], &[4]), start(epoch, history), 0);
        let last = history.last().copied().unwrap_or(Zxid::ZERO);
        for sid in [2, 3] {
            msg(&mut l, sid as u64, follower_info(sid, epoch), 0);
        }
        for sid in [2, 3] {
            msg(&mut l, sid as u64, ack_epoch(last, Some(epoch)), 0);
        }
        let e = Zxid::epoch_start(Epoch(epoch + 1));
        for sid in [2, 3] {
            msg(&mut l, sid as u64, ack(e), 0);
        }
        assert!(l.is_established());
        l
    }

    #[test]
    fn the_new_epoch_is_one_above_every_accepted_epoch_once_a_quorum_of_voters_connected() {
        let (mut l, out) = Leader::new(cfg(&[1, 2, 3, 4, 5], &[6]), start(3, &[]), 0);
        assert!(out.is_empty());
        // An observer's accepted epoch counts for the maximum but not for the quorum.
        assert!(msg(&mut l, 6, observer_info(6, 7), 0).is_empty());
        assert!(msg(&mut l, 2, follower_info(2, 5), 0).is_empty());
        assert_eq!(l.epoch(), None);
        // Me + 2 + 3 = a quorum of five.
        let out = msg(&mut l, 3, follower_info(3, 1), 0);
        assert_eq!(out[0], Output::WriteAcceptedEpoch(Epoch(8)));
        let leaderinfo = QuorumMessage::LeaderInfo {
            zxid: z(8, 0),
            protocol_version: ZAB_PROTOCOL_VERSION,
        };
        for conn in [2, 3, 6] {
            assert_eq!(sent(&out, conn), vec![leaderinfo.clone()], "conn {conn}");
        }
        // A late learner gets the chosen epoch at once, whatever it accepted.
        let out = msg(&mut l, 4, follower_info(4, 9), 0);
        assert_eq!(
            out,
            vec![Output::Send {
                conn: ConnId(4),
                msg: leaderinfo
            }]
        );
        assert_eq!(l.next_zxid(), z(8, 1));
    }

    #[test]
    fn discovery_gives_up_after_init_limit() {
        let (mut l, _) = Leader::new(cfg(&[1, 2, 3], &[4]), start(0, &[]), 0);
        msg(&mut l, 4, observer_info(4, 0), 0);
        assert!(l
            .on_tick(10 * TICK - 1)
            .iter()
            .all(|o| !matches!(o, Output::StepDown(_))));
        assert_eq!(
            l.on_tick(10 * TICK),
            vec![Output::StepDown(StepDownReason::DiscoveryTimeout)]
        );
        assert_eq!(l.phase(), LeaderPhase::Stopped);
    }

    #[test]
    fn epoch_acks_count_only_voters_that_had_not_accepted_the_epoch() {
        let (mut l, _) = Leader::new(cfg(&[1, 2, 3, 4, 5], &[6]), start(1, &[z(1, 1)]), 0);
        for (sid, f) in [(2, true), (3, true), (4, true), (6, false)] {
            let info = if f {
                follower_info(sid, 1)
            } else {
                observer_info(sid, 1)
            };
            msg(&mut l, sid as u64, info, 0);
        }
        assert_eq!(l.epoch(), Some(Epoch(2)));
        // -1: "I already accepted this epoch" does not count; observers never count.
        assert!(msg(&mut l, 2, ack_epoch(z(1, 1), None), 0).is_empty());
        assert!(msg(&mut l, 6, ack_epoch(z(1, 1), Some(1)), 0).is_empty());
        assert!(msg(&mut l, 3, ack_epoch(z(1, 1), Some(1)), 0).is_empty());
        assert_eq!(l.phase(), LeaderPhase::AwaitEpochAcks);
        // The third voter (me, 3, 4) makes the quorum: currentEpoch first, then every waiting
        // learner's sync, each ending with NEWLEADER.
        let out = msg(&mut l, 4, ack_epoch(z(1, 1), Some(1)), 0);
        assert_eq!(out[0], Output::WriteCurrentEpoch(Epoch(2)));
        for conn in [2, 3, 4, 6] {
            assert_eq!(
                types(&sent(&out, conn)),
                ["DIFF", "NEWLEADER"],
                "conn {conn}"
            );
        }
        assert_eq!(l.phase(), LeaderPhase::AwaitNewLeaderAcks);
    }

    #[test]
    fn a_learner_ahead_of_the_leader_is_dropped() {
        let (mut l, _) = Leader::new(cfg(&[1, 2, 3], &[]), start(1, &[z(1, 3)]), 0);
        msg(&mut l, 2, follower_info(2, 1), 0);
        let out = msg(&mut l, 2, ack_epoch(z(1, 4), Some(1)), 0);
        assert_eq!(
            out,
            vec![Output::Close {
                conn: ConnId(2),
                reason: CloseReason::FollowerAhead
            }]
        );
        let out = msg(&mut l, 3, follower_info(3, 1), 0);
        assert!(sent(&out, 3).len() == 1);
        // A higher currentEpoch is ahead whatever the zxid.
        let out = msg(&mut l, 3, ack_epoch(z(1, 1), Some(2)), 0);
        assert!(matches!(
            out[..],
            [Output::Close {
                reason: CloseReason::FollowerAhead,
                ..
            }]
        ));
    }

    #[test]
    fn newleader_needs_a_quorum_of_acks_and_the_leader_s_own_durable_history() {
        let mut s = start(1, &[z(1, 1), z(1, 2)]);
        s.durable_zxid = z(1, 1);
        let (mut l, _) = Leader::new(cfg(&[1, 2, 3], &[4]), s, 0);
        msg(&mut l, 2, follower_info(2, 1), 0);
        msg(&mut l, 4, observer_info(4, 1), 0);
        msg(&mut l, 2, ack_epoch(z(1, 2), Some(1)), 0);
        msg(&mut l, 4, ack_epoch(z(1, 2), Some(1)), 0);
        assert_eq!(l.phase(), LeaderPhase::AwaitNewLeaderAcks);
        // The observer's ACK never counts; the follower's does, but my own log is not durable.
        assert!(msg(&mut l, 4, ack(z(2, 0)), 0).is_empty());
        assert!(msg(&mut l, 2, ack(z(2, 0)), 0).is_empty());
        let out = l.on_persisted(z(1, 2), 5);
        assert_eq!(out[0], Output::Established { epoch: Epoch(2) });
        assert_eq!(sent(&out, 2), vec![QuorumMessage::UpToDate]);
        assert_eq!(sent(&out, 4), vec![QuorumMessage::UpToDate]);
        // Anything but the NEWLEADER ACK first kills the handler.
        msg(&mut l, 3, follower_info(3, 1), 5);
        msg(&mut l, 3, ack_epoch(z(1, 2), Some(1)), 5);
        let out = msg(&mut l, 3, ack(z(1, 2)), 5);
        assert!(matches!(
            out[..],
            [Output::Close {
                reason: CloseReason::Unexpected,
                ..
            }]
        ));
    }

    #[test]
    fn commits_need_a_voter_quorum_with_the_leader_s_fsync_and_go_in_zxid_order() {
        let mut l = established(&[], 0);
        msg(&mut l, 4, observer_info(4, 0), 0);
        msg(&mut l, 4, ack_epoch(Zxid::ZERO, Some(0)), 0);
        assert_eq!(
            sent(&msg(&mut l, 4, ack(z(1, 0)), 0), 4),
            [QuorumMessage::UpToDate]
        );
        let out = l.propose(entry(z(1, 1)), 1).unwrap();
        assert_eq!(types(&sent(&out, 2)), ["PROPOSAL"]);
        assert!(sent(&out, 4).is_empty(), "observers get no PROPOSAL");
        l.propose(entry(z(1, 2)), 1).unwrap();
        // An observer's ACK does not count; a follower's alone is not a quorum without my
        // own fsync.
        assert!(msg(&mut l, 4, ack(z(1, 1)), 2).is_empty());
        assert!(msg(&mut l, 2, ack(z(1, 2)), 2).is_empty());
        assert!(l.on_persisted(z(1, 2), 3).is_empty());
        assert_eq!(l.outstanding(), 2);
        // 2 is acked by {1, 2} but 1 only by {1}: nothing may commit before 1.
        assert_eq!(l.last_committed(), Zxid::ZERO);
        let out = msg(&mut l, 3, ack(z(1, 1)), 4);
        let commits: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Output::Commit { zxid } => Some(*zxid),
                _ => None,
            })
            .collect();
        assert_eq!(commits, vec![z(1, 1), z(1, 2)]);
        assert_eq!(types(&sent(&out, 2)), ["COMMIT", "COMMIT"]);
        assert_eq!(types(&sent(&out, 4)), ["INFORM", "INFORM"]);
        // Late and epoch-marker ACKs are ignored.
        assert!(msg(&mut l, 3, ack(z(1, 2)), 5).is_empty());
        assert!(msg(&mut l, 3, ack(z(1, 0)), 5).is_empty());
    }

    #[test]
    fn proposals_need_the_next_zxid_and_an_established_leader() {
        let (mut l, _) = Leader::new(cfg(&[1, 2, 3], &[]), start(0, &[]), 0);
        assert_eq!(l.propose(entry(z(1, 1)), 0), Err(ZabError::NotEstablished));
        let mut l = established(&[], 0);
        assert_eq!(
            l.propose(entry(z(1, 2)), 0),
            Err(ZabError::WrongZxid {
                got: z(1, 2),
                expected: z(1, 1)
            })
        );
        l.last_proposed = z(1, u32::MAX - 1);
        assert_eq!(
            l.propose(entry(z(1, u32::MAX)), 0),
            Err(ZabError::ZxidExhausted(Epoch(1)))
        );
        assert_eq!(l.phase(), LeaderPhase::Stopped);
    }

    #[test]
    fn a_learner_joining_during_broadcast_gets_the_outstanding_proposals_before_newleader() {
        let mut l = established(&[z(1, 1), z(1, 2)], 1);
        l.on_persisted(z(1, 2), 0);
        l.propose(entry(z(2, 1)), 1).unwrap();
        l.on_persisted(z(2, 1), 1);
        msg(&mut l, 2, ack(z(2, 1)), 1);
        l.propose(entry(z(2, 2)), 1).unwrap();
        // Follower 3 reconnects with (1,1): DIFF, the committed txns above, the outstanding
        // proposal, NEWLEADER; the commit of (2,2) then follows on the same stream.
        msg(&mut l, 5, follower_info(3, 2), 2);
        let out = msg(&mut l, 5, ack_epoch(z(1, 1), None), 2);
        let m = sent(&out, 5);
        assert_eq!(
            types(&m),
            [
                "DIFF",
                "PROPOSAL",
                "COMMIT",
                "PROPOSAL",
                "COMMIT",
                "PROPOSAL",
                "NEWLEADER"
            ]
        );
        assert_eq!(m[0], QuorumMessage::Diff { zxid: z(2, 1) });
        assert!(matches!(&m[5], QuorumMessage::Proposal { zxid, .. } if *zxid == z(2, 2)));
        assert!(msg(&mut l, 2, ack(z(2, 2)), 3).is_empty());
        let out = l.on_persisted(z(2, 2), 3);
        assert!(out.contains(&Output::Commit { zxid: z(2, 2) }));
        assert_eq!(sent(&out, 5), vec![QuorumMessage::Commit { zxid: z(2, 2) }]);
        // Its NEWLEADER ACK is answered with UPTODATE at once.
        let out = msg(&mut l, 5, ack(z(2, 0)), 4);
        assert_eq!(sent(&out, 5), vec![QuorumMessage::UpToDate]);
    }

    #[test]
    fn an_observer_s_sync_is_a_snapshot_when_the_window_cannot_serve_it() {
        let mut l = established(&[], 0);
        msg(&mut l, 4, observer_info(4, 0), 0);
        let out = msg(&mut l, 4, ack_epoch(Zxid::ZERO, Some(0)), 0);
        assert_eq!(
            out,
            vec![
                Output::Send {
                    conn: ConnId(4),
                    msg: QuorumMessage::Snap { zxid: z(1, 0) }
                },
                Output::StreamSnapshot {
                    conn: ConnId(4),
                    zxid: z(1, 0)
                },
                Output::Send {
                    conn: ConnId(4),
                    msg: QuorumMessage::NewLeader {
                        zxid: z(1, 0),
                        config: Some(b"version=0".to_vec())
                    }
                },
            ]
        );
    }

    #[test]
    fn pings_every_half_tick_and_silent_learners_are_closed() {
        let mut l = established(&[], 0);
        let out = l.on_tick(1);
        assert_eq!(sent(&out, 2), vec![QuorumMessage::Ping { zxid: z(1, 0) }]);
        assert!(l.on_tick(TICK / 2).is_empty());
        assert_eq!(types(&sent(&l.on_tick(TICK / 2 + 1), 3)), ["PING"]);
        // Learner 2 keeps talking; learner 3 is silent for more than syncLimit.
        let ping = QuorumMessage::PingReply {
            zxid: z(1, 0),
            touches: vec![],
        };
        for t in (TICK..=5 * TICK).step_by(50) {
            msg(&mut l, 2, ping.clone(), t);
            let out = l.on_tick(t);
            assert!(
                !out.iter().any(|o| matches!(o, Output::Close { .. })),
                "t={t}"
            );
        }
        msg(&mut l, 2, ping, 5 * TICK + 1);
        let out = l.on_tick(5 * TICK + 1);
        let closed: Vec<_> = out
            .iter()
            .filter(|o| matches!(o, Output::Close { .. }))
            .collect();
        assert_eq!(
            closed,
            [&Output::Close {
                conn: ConnId(3),
                reason: CloseReason::Silent
            }]
        );
        assert!(l.is_established(), "me + 2 is still a quorum of three");
    }

    #[test]
    fn a_proposal_left_unacked_for_sync_limit_closes_the_learner() {
        let mut l = established(&[], 0);
        l.propose(entry(z(1, 1)), 0).unwrap();
        msg(&mut l, 2, ack(z(1, 1)), 10);
        for t in [100, 200, 300, 400, 500] {
            msg(
                &mut l,
                2,
                QuorumMessage::PingReply {
                    zxid: z(1, 1),
                    touches: vec![],
                },
                t,
            );
            msg(
                &mut l,
                3,
                QuorumMessage::PingReply {
                    zxid: z(1, 1),
                    touches: vec![],
                },
                t,
            );
            l.on_tick(t);
        }
        let out = l.on_tick(501);
        assert!(out.contains(&Output::Close {
            conn: ConnId(3),
            reason: CloseReason::AckTimeout
        }));
        assert!(!out.iter().any(|o| matches!(
            o,
            Output::Close {
                conn: ConnId(2),
                ..
            }
        )));
    }

    #[test]
    fn a_syncing_learner_s_ack_clock_starts_at_uptodate() {
        let mut l = established(&[], 0);
        l.propose(entry(z(1, 1)), 0).unwrap();
        msg(&mut l, 5, follower_info(5, 0), 0);
        msg(&mut l, 5, ack_epoch(Zxid::ZERO, Some(0)), 0);
        // Slow to make its sync durable, quiet meanwhile: initLimit applies, not syncLimit.
        for t in (100..=900).step_by(100) {
            for conn in [2, 3] {
                let ping = QuorumMessage::PingReply {
                    zxid: z(1, 1),
                    touches: vec![],
                };
                msg(&mut l, conn, ping, t);
                msg(&mut l, conn, ack(z(1, 1)), t);
            }
            let out = l.on_tick(t);
            assert!(
                !out.iter().any(|o| matches!(o, Output::Close { .. })),
                "t={t}"
            );
        }
        assert_eq!(
            sent(&msg(&mut l, 5, ack(z(1, 0)), 950), 5),
            [QuorumMessage::UpToDate]
        );
        assert!(l
            .on_tick(1000)
            .iter()
            .all(|o| !matches!(o, Output::Close { .. })));
        // Everyone talks, but 5 never ACKs the proposal it got while syncing.
        for conn in [2, 3, 5] {
            let ping = QuorumMessage::PingReply {
                zxid: z(1, 1),
                touches: vec![],
            };
            msg(&mut l, conn, ping, 1400);
        }
        let out = l.on_tick(950 + 5 * TICK + 1);
        assert!(out.contains(&Output::Close {
            conn: ConnId(5),
            reason: CloseReason::AckTimeout
        }));
    }

    #[test]
    fn the_leader_steps_down_when_fewer_than_a_quorum_of_voters_stay_connected() {
        let mut l = established(&[], 0);
        msg(&mut l, 4, observer_info(4, 1), 0);
        l.on_disconnect(ConnId(2), 10);
        assert!(l
            .on_tick(10)
            .iter()
            .all(|o| !matches!(o, Output::StepDown(_))));
        // The observer does not make up for follower 3.
        l.on_disconnect(ConnId(3), 20);
        let out = l.on_tick(TICK + 20);
        assert_eq!(
            out.last(),
            Some(&Output::StepDown(StepDownReason::LostQuorum))
        );
        assert_eq!(l.phase(), LeaderPhase::Stopped);
        assert!(msg(&mut l, 3, follower_info(3, 1), 200).is_empty());
    }

    #[test]
    fn sync_waits_for_the_outstanding_proposals_to_commit() {
        let mut l = established(&[], 0);
        assert_eq!(sent(&l.sync(ConnId(2)), 2), vec![QuorumMessage::Sync]);
        l.propose(entry(z(1, 1)), 0).unwrap();
        assert!(l.sync(ConnId(2)).is_empty());
        l.on_persisted(z(1, 1), 1);
        let out = msg(&mut l, 3, ack(z(1, 1)), 2);
        assert_eq!(
            types(&sent(&out, 2)),
            ["COMMIT", "SYNC"],
            "SYNC goes after the COMMIT it waited for"
        );
    }

    #[test]
    fn requests_revalidations_and_touches_go_to_the_caller() {
        let mut l = established(&[], 0);
        let req = ForwardedRequest {
            session_id: 9,
            cxid: 1,
            op: OpCode::Create.code(),
            body: vec![1, 2],
            authinfo: None,
        };
        let out = msg(&mut l, 2, QuorumMessage::Request(req.clone()), 1);
        assert_eq!(
            out,
            vec![Output::Request {
                conn: ConnId(2),
                sid: ServerId(2),
                request: req
            }]
        );
        let out = msg(
            &mut l,
            3,
            QuorumMessage::Revalidate {
                session_id: 9,
                timeout_ms: 4000,
            },
            1,
        );
        assert!(matches!(
            out[..],
            [Output::Revalidate {
                session_id: 9,
                timeout_ms: 4000,
                ..
            }]
        ));
        assert_eq!(
            sent(&l.revalidate_reply(ConnId(3), 9, true), 3),
            vec![QuorumMessage::RevalidateReply {
                session_id: 9,
                valid: true
            }]
        );
        let touches = vec![SessionTouch {
            session_id: 9,
            timeout_ms: 4000,
        }];
        let out = msg(
            &mut l,
            3,
            QuorumMessage::PingReply {
                zxid: z(1, 0),
                touches: touches.clone(),
            },
            2,
        );
        assert_eq!(
            out,
            vec![Output::Touch {
                sid: ServerId(3),
                touches
            }]
        );
    }

    #[test]
    fn a_second_connection_from_the_same_sid_replaces_the_first() {
        let mut l = established(&[], 0);
        let out = msg(&mut l, 9, follower_info(2, 1), 1);
        assert_eq!(
            out[0],
            Output::Close {
                conn: ConnId(2),
                reason: CloseReason::Replaced
            }
        );
        assert_eq!(types(&sent(&out, 9)), ["LEADERINFO"]);
        let out = msg(&mut l, 10, QuorumMessage::Ack { zxid: z(1, 0) }, 1);
        assert_eq!(
            out,
            vec![Output::Close {
                conn: ConnId(10),
                reason: CloseReason::NotALearner
            }]
        );
    }

    fn config(voters: &[i64], observers: &[i64]) -> String {
        let line = |sid: i64, role: &str| format!("server.{sid}=h:{sid}1:{sid}2:{role}\n");
        let mut text: String = voters.iter().map(|&s| line(s, "participant")).collect();
        text.extend(observers.iter().map(|&s| line(s, "observer")));
        text + "version=0"
    }

    fn kinds(out: &[Output]) -> Vec<String> {
        out.iter()
            .map(|o| match o {
                Output::Send { conn, msg } => format!("{}>{}", msg.packet_type().name(), conn.0),
                Output::Commit { .. } => "Commit".into(),
                Output::Activate { designated, .. } => format!("Activate({designated})"),
                Output::StepDown(r) => format!("{r:?}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_reconfig_needs_both_quorums_and_commits_as_commit_and_activate() {
        let mut l = established(&[], 0);
        // Observer 4 and a joining, not yet voting, follower 5.
        msg(&mut l, 4, observer_info(4, 0), 0);
        msg(&mut l, 4, ack_epoch(Zxid::ZERO, Some(0)), 0);
        msg(&mut l, 4, ack(z(1, 0)), 0);
        msg(&mut l, 5, follower_info(5, 0), 0);
        msg(&mut l, 5, ack_epoch(Zxid::ZERO, Some(0)), 0);
        msg(&mut l, 5, ack(z(1, 0)), 0);
        let next = |v: &[i64]| {
            QuorumVerifier::new(v.iter().map(|&s| ServerId(s)).collect(), BTreeSet::new())
        };
        assert!(next(&[1, 5, 6]).has_quorum(&l.synced_followers()));
        assert!(!next(&[1, 6, 7]).has_quorum(&l.synced_followers()));
        let text = config(&[1, 5, 6], &[4]);
        let out = l.propose(reconfig_entry(z(1, 1), &text), 1).unwrap();
        assert_eq!(
            types(&sent(&out, 5)),
            ["PROPOSAL"],
            "a joiner gets proposals"
        );
        assert!(l.reconfig_pending());
        l.on_persisted(z(1, 1), 1);
        // The old quorum alone ({1, 2, 3}) is not enough: the new one needs 5 too.
        assert!(msg(&mut l, 2, ack(z(1, 1)), 2).is_empty());
        assert!(msg(&mut l, 3, ack(z(1, 1)), 2).is_empty());
        let out = msg(&mut l, 5, ack(z(1, 1)), 3);
        assert_eq!(
            kinds(&out),
            [
                "COMMITANDACTIVATE>2",
                "COMMITANDACTIVATE>3",
                "INFORMANDACTIVATE>4",
                "COMMITANDACTIVATE>5",
                "Commit",
                "Activate(1)"
            ]
        );
        assert!(!l.reconfig_pending());
        // From now on the new voters alone commit.
        l.propose(entry(z(1, 2)), 4).unwrap();
        l.on_persisted(z(1, 2), 4);
        let out = msg(&mut l, 5, ack(z(1, 2)), 5);
        assert!(kinds(&out).contains(&"Commit".to_string()));
    }

    #[test]
    fn a_leader_removed_by_a_reconfig_designates_the_most_up_to_date_voter_and_steps_down() {
        let mut l = established(&[], 0);
        let out = l
            .propose(reconfig_entry(z(1, 1), &config(&[2, 3], &[])), 1)
            .unwrap();
        assert_eq!(types(&sent(&out, 2)), ["PROPOSAL"]);
        l.propose(entry(z(1, 2)), 1).unwrap();
        l.on_persisted(z(1, 2), 1);
        // 3 also ACKed the proposal after the reconfig: it is the more up to date.
        msg(&mut l, 3, ack(z(1, 1)), 2);
        msg(&mut l, 3, ack(z(1, 2)), 2);
        let out = msg(&mut l, 2, ack(z(1, 1)), 2);
        let k = kinds(&out);
        assert_eq!(k[..2], ["COMMITANDACTIVATE>2", "COMMITANDACTIVATE>3"]);
        assert!(k.contains(&"Activate(3)".to_string()), "{k:?}");
        assert_eq!(
            k.last().unwrap(),
            "Reconfigured { designated: ServerId(3) }"
        );
        assert_eq!(l.phase(), LeaderPhase::Stopped);
    }

    #[test]
    fn a_learner_behind_the_window_is_synced_from_what_the_log_read_brings() {
        let history = [z(1, 1), z(1, 2), z(1, 3)];
        let (mut l, _) = Leader::new(
            LeaderConfig {
                commit_log_count: 1,
                ..cfg(&[1, 2, 3], &[])
            },
            start(1, &history),
            0,
        );
        msg(&mut l, 2, follower_info(2, 1), 0);
        msg(&mut l, 3, follower_info(3, 1), 0);
        msg(&mut l, 3, ack_epoch(z(1, 3), Some(1)), 0);
        // Learner 2 has z(1, 1); the window holds z(1, 3) only: ask the log.
        let out = l.on_message(ConnId(2), ack_epoch(z(1, 1), Some(1)), 0);
        assert!(
            matches!(
                out.last(),
                Some(Output::ReadLog { conn: ConnId(2), from, to }) if *from == z(1, 1) && *to == z(1, 3)
            ),
            "{out:?}"
        );
        let read = vec![entry(z(1, 1)), entry(z(1, 2)), entry(z(1, 3))];
        let out = l.on_log_read(ConnId(2), Some(read), 0);
        assert_eq!(
            types(&sent(&out, 2)),
            [
                "DIFF",
                "PROPOSAL",
                "COMMIT",
                "PROPOSAL",
                "COMMIT",
                "NEWLEADER"
            ]
        );
        // A log that cannot serve it: SNAP.
        msg(&mut l, 4, follower_info(4, 1), 0);
        let out = l.on_message(ConnId(4), ack_epoch(z(1, 1), Some(1)), 0);
        assert!(matches!(out.last(), Some(Output::ReadLog { .. })));
        let out = l.on_log_read(ConnId(4), None, 0);
        assert_eq!(types(&sent(&out, 4)), ["SNAP", "NEWLEADER"]);
    }
}
