//! One learner's side of one connection to a leader (`zab.md` §4, §5.3, §6, §7, §12;
//! `Learner.registerWithLeader`, `syncWithLeader`, `Follower`/`Observer.processPacket`),
//! sans-IO: it takes the leader's decoded packets, the caller's "durable through zxid" reports
//! and `now_ms`, and returns [`Action`]s. A follower and an observer differ only where the
//! protocol does: FOLLOWERINFO vs OBSERVERINFO, ACKs of proposals, PROPOSAL/COMMIT vs INFORM.
//!
//! ```text
//! new ─► Send FOLLOWERINFO|OBSERVERINFO zxid = acceptedEpoch<<32
//! LEADERINFO e ── e > accepted: WriteAcceptedEpoch(e), ACKEPOCH(lastZxid, currentEpoch)
//!              ── e = accepted: ACKEPOCH(lastZxid, -1)      e < accepted: error
//! DIFF | TRUNC z (Truncate z) | SNAP z + snapshot stream (LoadSnapshot z)
//!   PROPOSAL: kept   COMMIT: must match the oldest kept uncommitted txn ─► Apply
//!   INFORM (observer): kept and Apply
//! NEWLEADER e<<32 ─► Append every kept txn; once durable through the last one:
//!                    WriteCurrentEpoch(e), Send ACK e<<32        (fsync before ACK: ZOOKEEPER-4785)
//! UPTODATE ─► Send ACK e<<32, UpToDate; then ACKs of the txns logged since NEWLEADER
//! serving: PROPOSAL ─► Append; ACK once durable, in zxid order (followers only)
//!          COMMIT ─► Apply (head of pending, else error)   INFORM ─► Append + Apply (observers)
//!          PING ─► PING with the sessions touched since the last one; SYNC ─► SyncDone
//! reconfig COMMITANDACTIVATE (followers) / INFORMANDACTIVATE (observers): as COMMIT / INFORM,
//!          then Activate with the txn's config and the designated leader; NEWLEADER's config
//!          is offered as Activate (no designated leader) at UPTODATE
//! ```
//!
//! Contract with the caller: at `new` its tree reflects exactly the log through `last_zxid`
//! (Java reloads the database on every role change); it executes actions in order;
//! `Truncate`, `LoadSnapshot` and the epoch writes are done, durably, before the next action;
//! `Append` may be buffered, and [`Learner::on_persisted`] reports how far the log is
//! durable. Any [`ZabError`] means: close the connection and look again (an
//! [`ZabError::UnmatchedCommit`] is what Java exits for).

use std::collections::{BTreeMap, VecDeque};

use zooid_proto::TxnEntry;

use crate::error::ZabError;
use crate::ids::{Epoch, ServerId, Zxid};
use crate::message::{
    ForwardedRequest, LearnerInfo, QuorumMessage, SessionTouch, ZAB_PROTOCOL_VERSION,
};
use crate::packet::PacketType;
use crate::quorum::Timing;

/// Follower (a voter) or observer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LearnerKind {
    Follower,
    Observer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnerConfig {
    pub my_id: ServerId,
    pub kind: LearnerKind,
    pub timing: Timing,
    /// The version of our committed QuorumVerifier (0 for a static config).
    pub config_version: i64,
}

/// What the learner has on disk when it connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnerStart {
    pub accepted_epoch: Epoch,
    pub current_epoch: Epoch,
    /// The last logged zxid (what the tree reflects).
    pub last_zxid: Zxid,
    /// How far the log is known durable.
    pub durable_zxid: Zxid,
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send(QuorumMessage),
    /// Write the `acceptedEpoch` file (atomically, durably) before going on.
    WriteAcceptedEpoch(Epoch),
    /// Write the `currentEpoch` file (atomically, durably) before going on.
    WriteCurrentEpoch(Epoch),
    /// TRUNC: drop every logged txn above `zxid` and reload the tree from disk, durably.
    Truncate(Zxid),
    /// SNAP: replace the tree (and the on-disk state) with the leader's snapshot stream
    /// (`body` = the items between SNAP and "BenWasHere"), taken at `zxid`; durably.
    LoadSnapshot {
        zxid: Zxid,
        body: Vec<u8>,
    },
    /// Append to the txn log (may be buffered; report durability with `on_persisted`).
    Append(TxnEntry),
    /// A committed txn: apply it to the tree (strictly increasing zxids).
    Apply(TxnEntry),
    /// UPTODATE: start serving clients, and answer election notifications with the new epoch.
    UpToDate {
        epoch: Epoch,
    },
    /// The leader's answer to our oldest forwarded `sync`: complete it (after every Apply
    /// returned before it).
    SyncDone,
    /// The leader's answer to a REVALIDATE.
    Revalidated {
        session_id: i64,
        valid: bool,
    },
    /// A configuration to take on if it is newer than ours (`processReconfig`): a committed
    /// reconfig's (after its Apply) with the leader to follow, or NEWLEADER's (at UPTODATE).
    Activate {
        config: Vec<u8>,
        designated: Option<ServerId>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitLeaderInfo,
    AwaitSyncMode,
    AwaitSnapshot(Zxid),
    /// After DIFF/TRUNC/SNAP, before NEWLEADER.
    Syncing,
    /// NEWLEADER received; waiting for the log to be durable through this zxid.
    AwaitDurable(Zxid),
    AwaitUpToDate,
    Serving,
    Failed,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::AwaitLeaderInfo => "waiting for LEADERINFO",
            State::AwaitSyncMode => "waiting for DIFF, TRUNC or SNAP",
            State::AwaitSnapshot(_) => "reading the snapshot stream",
            State::Syncing => "syncing",
            State::AwaitDurable(_) => "making the sync durable",
            State::AwaitUpToDate => "waiting for UPTODATE",
            State::Serving => "serving",
            State::Failed => "failed",
        }
    }
}

/// The phase a learner is in, for callers and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnerPhase {
    Handshake,
    Syncing,
    Serving,
    Failed,
}

/// One learner connection; see the module docs.
#[derive(Debug, Clone)]
pub struct Learner {
    cfg: LearnerConfig,
    state: State,
    accepted_epoch: Epoch,
    current_epoch: Epoch,
    new_epoch: Option<Epoch>,
    /// The last txn appended (or the TRUNC/SNAP point).
    last_logged: Zxid,
    durable: Zxid,
    last_applied: Zxid,
    /// The last PROPOSAL/INFORM zxid received (order check).
    last_received: Zxid,
    /// Txns received before NEWLEADER, appended at NEWLEADER.
    unlogged: Vec<TxnEntry>,
    /// Proposals waiting for their COMMIT, oldest first.
    uncommitted: VecDeque<TxnEntry>,
    /// Logged proposals not ACKed yet, oldest first (followers).
    to_ack: VecDeque<Zxid>,
    touches: BTreeMap<i64, i32>,
    last_heard_ms: u64,
    newleader_seen: bool,
    /// NEWLEADER's config text, offered at UPTODATE.
    leader_config: Option<Vec<u8>>,
}

impl Learner {
    /// Connected to the leader: say who we are.
    pub fn new(cfg: LearnerConfig, start: LearnerStart, now_ms: u64) -> (Learner, Vec<Action>) {
        assert!(
            start.current_epoch <= start.accepted_epoch,
            "currentEpoch {} above acceptedEpoch {}: the server must refuse to start",
            start.current_epoch,
            start.accepted_epoch
        );
        let learner = Learner {
            state: State::AwaitLeaderInfo,
            accepted_epoch: start.accepted_epoch,
            current_epoch: start.current_epoch,
            new_epoch: None,
            last_logged: start.last_zxid,
            durable: start.durable_zxid.min(start.last_zxid),
            last_applied: start.last_zxid,
            last_received: start.last_zxid,
            unlogged: Vec::new(),
            uncommitted: VecDeque::new(),
            to_ack: VecDeque::new(),
            touches: BTreeMap::new(),
            last_heard_ms: now_ms,
            newleader_seen: false,
            leader_config: None,
            cfg,
        };
        let zxid = Zxid::epoch_start(learner.accepted_epoch);
        let info = LearnerInfo::new(learner.cfg.my_id, learner.cfg.config_version);
        let hello = match learner.cfg.kind {
            LearnerKind::Follower => QuorumMessage::FollowerInfo { zxid, info },
            LearnerKind::Observer => QuorumMessage::ObserverInfo { zxid, info },
        };
        (learner, vec![Action::Send(hello)])
    }

    pub fn kind(&self) -> LearnerKind {
        self.cfg.kind
    }

    pub fn phase(&self) -> LearnerPhase {
        match self.state {
            State::AwaitLeaderInfo | State::AwaitSyncMode => LearnerPhase::Handshake,
            State::Serving => LearnerPhase::Serving,
            State::Failed => LearnerPhase::Failed,
            _ => LearnerPhase::Syncing,
        }
    }

    pub fn is_serving(&self) -> bool {
        self.state == State::Serving
    }

    /// The leader's epoch, once LEADERINFO arrived.
    pub fn epoch(&self) -> Option<Epoch> {
        self.new_epoch
    }

    pub fn accepted_epoch(&self) -> Epoch {
        self.accepted_epoch
    }

    pub fn current_epoch(&self) -> Epoch {
        self.current_epoch
    }

    pub fn last_logged(&self) -> Zxid {
        self.last_logged
    }

    pub fn last_applied(&self) -> Zxid {
        self.last_applied
    }

    /// When `on_tick` could next report the leader silent.
    pub fn next_deadline_ms(&self) -> u64 {
        self.last_heard_ms.saturating_add(self.silence_limit_ms())
    }

    fn silence_limit_ms(&self) -> u64 {
        if self.newleader_seen {
            self.cfg.timing.sync_ms()
        } else {
            self.cfg.timing.init_ms()
        }
    }

    fn fail(&mut self, e: ZabError) -> Result<Vec<Action>, ZabError> {
        self.state = State::Failed;
        Err(e)
    }

    fn unexpected(&mut self, ptype: PacketType) -> Result<Vec<Action>, ZabError> {
        let phase = self.state.name();
        self.fail(ZabError::Unexpected { ptype, phase })
    }

    /// A packet from the leader.
    pub fn on_message(&mut self, msg: QuorumMessage, now_ms: u64) -> Result<Vec<Action>, ZabError> {
        if self.state == State::Failed {
            return Err(ZabError::Stopped);
        }
        self.last_heard_ms = now_ms;
        let mut out = Vec::new();
        let ptype = msg.packet_type();
        match (self.state, msg) {
            (
                State::AwaitLeaderInfo,
                QuorumMessage::LeaderInfo {
                    zxid,
                    protocol_version,
                },
            ) => {
                if protocol_version < ZAB_PROTOCOL_VERSION {
                    return self.fail(ZabError::OldProtocol(protocol_version));
                }
                let e = zxid.epoch();
                let current = if e > self.accepted_epoch {
                    // Reply with the epoch we had, then accept the new one.
                    let current = Some(self.current_epoch);
                    self.accepted_epoch = e;
                    out.push(Action::WriteAcceptedEpoch(e));
                    current
                } else if e == self.accepted_epoch {
                    None
                } else {
                    let accepted = self.accepted_epoch;
                    return self.fail(ZabError::EpochBehind {
                        leader: e,
                        accepted,
                    });
                };
                self.new_epoch = Some(e);
                self.state = State::AwaitSyncMode;
                out.push(Action::Send(QuorumMessage::AckEpoch {
                    zxid: self.last_logged,
                    current_epoch: current,
                }));
            }
            (State::AwaitSyncMode, QuorumMessage::Diff { .. }) => self.state = State::Syncing,
            (State::AwaitSyncMode, QuorumMessage::Trunc { zxid }) => {
                self.last_logged = zxid;
                self.last_applied = zxid;
                self.last_received = zxid;
                self.durable = self.durable.min(zxid);
                self.state = State::Syncing;
                out.push(Action::Truncate(zxid));
            }
            (State::AwaitSyncMode, QuorumMessage::Snap { zxid }) => {
                self.state = State::AwaitSnapshot(zxid)
            }
            (
                State::Syncing | State::AwaitDurable(_) | State::AwaitUpToDate | State::Serving,
                msg,
            ) => return self.in_sync_or_broadcast(msg, out),
            _ => return self.unexpected(ptype),
        }
        Ok(out)
    }

    fn in_sync_or_broadcast(
        &mut self,
        msg: QuorumMessage,
        mut out: Vec<Action>,
    ) -> Result<Vec<Action>, ZabError> {
        let observer = self.cfg.kind == LearnerKind::Observer;
        let serving = self.state == State::Serving;
        let before_newleader = self.state == State::Syncing;
        match msg {
            QuorumMessage::Proposal { .. } | QuorumMessage::Commit { .. }
                if observer && serving =>
            {
                // Observers get INFORMs once synced (Java logs and ignores these).
            }
            QuorumMessage::Proposal { zxid, entry } => {
                self.check_next(PacketType::Proposal, zxid, &entry)?;
                if before_newleader {
                    self.unlogged.push(entry.clone());
                } else {
                    self.append(&entry, &mut out);
                }
                self.uncommitted.push_back(entry);
                self.flush_acks(&mut out);
            }
            QuorumMessage::Commit { zxid } => self.commit(zxid, None, &mut out)?,
            QuorumMessage::CommitAndActivate {
                zxid,
                designated_leader,
            } if !observer => self.commit(zxid, Some(designated_leader), &mut out)?,
            QuorumMessage::Inform { .. } | QuorumMessage::InformAndActivate { .. } if !observer => {
                // Java's follower logs an unknown packet and goes on.
            }
            QuorumMessage::Inform { zxid, entry } => {
                self.inform(PacketType::Inform, zxid, entry, None, &mut out)?
            }
            QuorumMessage::InformAndActivate {
                zxid,
                designated_leader,
                entry,
            } => self.inform(
                PacketType::InformAndActivate,
                zxid,
                entry,
                Some(designated_leader),
                &mut out,
            )?,
            QuorumMessage::NewLeader { zxid, config } if before_newleader => {
                self.leader_config = config;
                let epoch = self.new_epoch.expect("LEADERINFO came first");
                if zxid != Zxid::epoch_start(epoch) {
                    return self.fail(ZabError::BadNewLeader { zxid, epoch });
                }
                self.newleader_seen = true;
                for entry in std::mem::take(&mut self.unlogged) {
                    self.append(&entry, &mut out);
                }
                self.state = State::AwaitDurable(self.last_logged);
                self.finish_newleader(&mut out);
            }
            QuorumMessage::UpToDate if self.state == State::AwaitUpToDate => {
                let epoch = self.new_epoch.expect("LEADERINFO came first");
                self.state = State::Serving;
                out.push(Action::Send(QuorumMessage::Ack {
                    zxid: Zxid::epoch_start(epoch),
                }));
                if let Some(config) = self.leader_config.take() {
                    out.push(Action::Activate {
                        config,
                        designated: None,
                    });
                }
                out.push(Action::UpToDate { epoch });
                self.flush_acks(&mut out);
            }
            QuorumMessage::Ping { zxid } => {
                // Java's sync loop ignores PINGs; answering one between NEWLEADER and our ACK
                // would even make the leader drop us (the first packet must be that ACK).
                if serving {
                    let touches = std::mem::take(&mut self.touches)
                        .into_iter()
                        .map(|(session_id, timeout_ms)| SessionTouch {
                            session_id,
                            timeout_ms,
                        })
                        .collect();
                    out.push(Action::Send(QuorumMessage::PingReply { zxid, touches }));
                }
            }
            QuorumMessage::Sync if serving => out.push(Action::SyncDone),
            QuorumMessage::RevalidateReply { session_id, valid } if serving => {
                out.push(Action::Revalidated { session_id, valid })
            }
            other => return self.unexpected(other.packet_type()),
        }
        Ok(out)
    }

    /// COMMIT (or COMMITANDACTIVATE, naming the leader to follow): the oldest uncommitted
    /// proposal must be `zxid`; it is applied (and its config offered).
    fn commit(
        &mut self,
        zxid: Zxid,
        designated: Option<ServerId>,
        out: &mut Vec<Action>,
    ) -> Result<(), ZabError> {
        let pending = self.uncommitted.front().map(|e| Zxid(e.header.zxid));
        if pending != Some(zxid) {
            self.state = State::Failed;
            return Err(ZabError::UnmatchedCommit { zxid, pending });
        }
        let entry = self.uncommitted.pop_front().expect("checked above");
        self.apply_and_activate(entry, designated, out);
        Ok(())
    }

    /// INFORM (or INFORMANDACTIVATE) to an observer: the next txn, committed; logged (at
    /// NEWLEADER when it comes before) and applied (and its config offered).
    fn inform(
        &mut self,
        ptype: PacketType,
        zxid: Zxid,
        entry: TxnEntry,
        designated: Option<ServerId>,
        out: &mut Vec<Action>,
    ) -> Result<(), ZabError> {
        self.check_next(ptype, zxid, &entry)?;
        if let Some(p) = self.uncommitted.front() {
            let pending = Some(Zxid(p.header.zxid));
            self.state = State::Failed;
            return Err(ZabError::UnmatchedCommit { zxid, pending });
        }
        if self.state == State::Syncing {
            self.unlogged.push(entry.clone());
        } else {
            self.append(&entry, out);
        }
        self.apply_and_activate(entry, designated, out);
        Ok(())
    }

    /// Apply a committed txn; one that the leader activated offers its config.
    fn apply_and_activate(
        &mut self,
        entry: TxnEntry,
        designated: Option<ServerId>,
        out: &mut Vec<Action>,
    ) {
        let config =
            designated.and_then(|d| crate::config_text::of_entry(&entry).map(|c| (c.to_vec(), d)));
        self.apply(entry, out);
        out.extend(config.map(|(config, d)| Action::Activate {
            config,
            designated: Some(d),
        }));
    }

    fn check_next(
        &mut self,
        ptype: PacketType,
        zxid: Zxid,
        entry: &TxnEntry,
    ) -> Result<(), ZabError> {
        let txn = Zxid(entry.header.zxid);
        if txn != zxid {
            self.state = State::Failed;
            return Err(ZabError::ZxidMismatch {
                ptype,
                packet: zxid,
                txn,
            });
        }
        if zxid <= self.last_received {
            self.state = State::Failed;
            return Err(ZabError::OutOfOrder {
                ptype,
                zxid,
                last: self.last_received,
            });
        }
        self.last_received = zxid;
        Ok(())
    }

    fn append(&mut self, entry: &TxnEntry, out: &mut Vec<Action>) {
        let z = Zxid(entry.header.zxid);
        assert!(
            z > self.last_logged,
            "log order: appending {z} after {}",
            self.last_logged
        );
        self.last_logged = z;
        if self.cfg.kind == LearnerKind::Follower {
            self.to_ack.push_back(z);
        }
        out.push(Action::Append(entry.clone()));
    }

    fn apply(&mut self, entry: TxnEntry, out: &mut Vec<Action>) {
        let z = Zxid(entry.header.zxid);
        assert!(
            z > self.last_applied,
            "apply order: applying {z} after {}",
            self.last_applied
        );
        self.last_applied = z;
        out.push(Action::Apply(entry));
    }

    /// The snapshot stream that follows SNAP (the bytes between the SNAP packet and the
    /// "BenWasHere" signature, as [`crate::QuorumDecoder`] splits them).
    pub fn on_snapshot(&mut self, body: Vec<u8>, now_ms: u64) -> Result<Vec<Action>, ZabError> {
        let State::AwaitSnapshot(zxid) = self.state else {
            if self.state == State::Failed {
                return Err(ZabError::Stopped);
            }
            return self.unexpected(PacketType::Snap);
        };
        self.last_heard_ms = now_ms;
        self.last_logged = zxid;
        self.last_applied = zxid;
        self.last_received = zxid;
        // The caller persists the snapshot before going on.
        self.durable = zxid;
        self.state = State::Syncing;
        Ok(vec![Action::LoadSnapshot { zxid, body }])
    }

    /// The log is durable through `zxid` (group commit done).
    pub fn on_persisted(&mut self, zxid: Zxid, _now_ms: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Failed {
            return out;
        }
        self.durable = self.durable.max(zxid.min(self.last_logged));
        self.finish_newleader(&mut out);
        self.flush_acks(&mut out);
        out
    }

    fn finish_newleader(&mut self, out: &mut Vec<Action>) {
        let State::AwaitDurable(need) = self.state else {
            return;
        };
        if self.durable < need {
            return;
        }
        let epoch = self.new_epoch.expect("LEADERINFO came first");
        if self.current_epoch != epoch {
            self.current_epoch = epoch;
            out.push(Action::WriteCurrentEpoch(epoch));
        }
        out.push(Action::Send(QuorumMessage::Ack {
            zxid: Zxid::epoch_start(epoch),
        }));
        self.state = State::AwaitUpToDate;
    }

    /// ACK what is durable, in order, once serving (the UPTODATE ACK goes first, as Java's).
    fn flush_acks(&mut self, out: &mut Vec<Action>) {
        if self.state != State::Serving {
            return;
        }
        while let Some(&z) = self.to_ack.front() {
            if z > self.durable {
                break;
            }
            self.to_ack.pop_front();
            out.push(Action::Send(QuorumMessage::Ack { zxid: z }));
        }
    }

    /// Time passed: fail if the leader has been silent too long.
    pub fn on_tick(&mut self, now_ms: u64) -> Result<Vec<Action>, ZabError> {
        if self.state == State::Failed {
            return Err(ZabError::Stopped);
        }
        let silent_ms = now_ms.saturating_sub(self.last_heard_ms);
        if silent_ms > self.silence_limit_ms() {
            return self.fail(ZabError::LeaderSilent { silent_ms });
        }
        Ok(Vec::new())
    }

    /// A client session was active here; reported in the next PING reply.
    pub fn touch(&mut self, session_id: i64, timeout_ms: i32) {
        self.touches.insert(session_id, timeout_ms);
    }

    /// Forward a client write (or sync, createSession, closeSession) to the leader.
    pub fn forward(&mut self, request: ForwardedRequest) -> Result<Vec<Action>, ZabError> {
        if self.state != State::Serving {
            return Err(ZabError::NotServing);
        }
        Ok(vec![Action::Send(QuorumMessage::Request(request))])
    }

    /// A client reconnected here with an existing session: ask the leader.
    pub fn revalidate(
        &mut self,
        session_id: i64,
        timeout_ms: i32,
    ) -> Result<Vec<Action>, ZabError> {
        if self.state != State::Serving {
            return Err(ZabError::NotServing);
        }
        Ok(vec![Action::Send(QuorumMessage::Revalidate {
            session_id,
            timeout_ms,
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{entry, z};
    use zooid_proto::OpCode;

    fn learner(kind: LearnerKind, accepted: i64, current: i64, last: Zxid) -> Learner {
        let cfg = LearnerConfig {
            my_id: ServerId(2),
            kind,
            timing: Timing {
                tick_ms: 100,
                init_limit: 10,
                sync_limit: 5,
            },
            config_version: 0,
        };
        let start = LearnerStart {
            accepted_epoch: Epoch(accepted),
            current_epoch: Epoch(current),
            last_zxid: last,
            durable_zxid: last,
        };
        Learner::new(cfg, start, 0).0
    }

    fn leader_info(epoch: i64) -> QuorumMessage {
        QuorumMessage::LeaderInfo {
            zxid: Zxid::epoch_start(Epoch(epoch)),
            protocol_version: ZAB_PROTOCOL_VERSION,
        }
    }

    fn proposal(zxid: Zxid) -> QuorumMessage {
        QuorumMessage::Proposal {
            zxid,
            entry: entry(zxid),
        }
    }

    fn sends(actions: &[Action]) -> Vec<QuorumMessage> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    fn ack(zxid: Zxid) -> QuorumMessage {
        QuorumMessage::Ack { zxid }
    }

    /// A follower synced by an empty DIFF to epoch `epoch` and serving.
    fn serving(kind: LearnerKind, epoch: i64, last: Zxid) -> Learner {
        let mut l = learner(kind, epoch - 1, epoch - 1, last);
        l.on_message(leader_info(epoch), 0).unwrap();
        l.on_message(QuorumMessage::Diff { zxid: last }, 0).unwrap();
        l.on_message(
            QuorumMessage::NewLeader {
                zxid: z(epoch, 0),
                config: None,
            },
            0,
        )
        .unwrap();
        l.on_message(QuorumMessage::UpToDate, 0).unwrap();
        assert!(l.is_serving());
        l
    }

    #[test]
    fn the_first_packet_names_the_accepted_epoch() {
        let (_, out) = Learner::new(
            LearnerConfig {
                my_id: ServerId(4),
                kind: LearnerKind::Observer,
                timing: Timing::DEFAULT,
                config_version: 0,
            },
            LearnerStart {
                accepted_epoch: Epoch(3),
                current_epoch: Epoch(2),
                last_zxid: z(2, 5),
                durable_zxid: z(2, 5),
            },
            0,
        );
        assert_eq!(
            out,
            vec![Action::Send(QuorumMessage::ObserverInfo {
                zxid: z(3, 0),
                info: LearnerInfo::new(ServerId(4), 0)
            })]
        );
    }

    #[test]
    fn leaderinfo_above_accepted_is_accepted_and_answered_with_the_current_epoch() {
        let mut l = learner(LearnerKind::Follower, 2, 1, z(1, 7));
        let out = l.on_message(leader_info(3), 0).unwrap();
        assert_eq!(
            out,
            vec![
                Action::WriteAcceptedEpoch(Epoch(3)),
                Action::Send(QuorumMessage::AckEpoch {
                    zxid: z(1, 7),
                    current_epoch: Some(Epoch(1))
                })
            ]
        );
        assert_eq!(l.accepted_epoch(), Epoch(3));
    }

    #[test]
    fn leaderinfo_equal_to_accepted_is_answered_with_minus_one() {
        let mut l = learner(LearnerKind::Follower, 3, 2, z(2, 7));
        let out = l.on_message(leader_info(3), 0).unwrap();
        assert_eq!(
            out,
            vec![Action::Send(QuorumMessage::AckEpoch {
                zxid: z(2, 7),
                current_epoch: None
            })]
        );
    }

    #[test]
    fn leaderinfo_below_accepted_is_refused() {
        let mut l = learner(LearnerKind::Follower, 3, 2, z(2, 7));
        assert_eq!(
            l.on_message(leader_info(2), 0),
            Err(ZabError::EpochBehind {
                leader: Epoch(2),
                accepted: Epoch(3)
            })
        );
        assert_eq!(l.phase(), LearnerPhase::Failed);
        assert_eq!(l.on_tick(1), Err(ZabError::Stopped));
    }

    #[test]
    fn newleader_is_acked_only_once_the_synced_txns_are_durable_and_the_epoch_written() {
        let mut l = learner(LearnerKind::Follower, 1, 1, z(1, 2));
        l.on_message(leader_info(2), 0).unwrap();
        assert!(l
            .on_message(QuorumMessage::Diff { zxid: z(1, 4) }, 0)
            .unwrap()
            .is_empty());
        // DIFF traffic: kept, applied on COMMIT, not yet logged.
        assert!(l.on_message(proposal(z(1, 3)), 0).unwrap().is_empty());
        let out = l
            .on_message(QuorumMessage::Commit { zxid: z(1, 3) }, 0)
            .unwrap();
        assert_eq!(out, vec![Action::Apply(entry(z(1, 3)))]);
        l.on_message(proposal(z(1, 4)), 0).unwrap();
        l.on_message(QuorumMessage::Commit { zxid: z(1, 4) }, 0)
            .unwrap();
        let out = l
            .on_message(
                QuorumMessage::NewLeader {
                    zxid: z(2, 0),
                    config: None,
                },
                0,
            )
            .unwrap();
        assert_eq!(
            out,
            vec![
                Action::Append(entry(z(1, 3))),
                Action::Append(entry(z(1, 4)))
            ]
        );
        // Half durable: still no ACK. A live proposal after NEWLEADER is logged at once.
        assert!(l.on_persisted(z(1, 3), 1).is_empty());
        let out = l.on_message(proposal(z(2, 1)), 1).unwrap();
        assert_eq!(out, vec![Action::Append(entry(z(2, 1)))]);
        let out = l.on_persisted(z(2, 1), 2);
        assert_eq!(
            out,
            vec![
                Action::WriteCurrentEpoch(Epoch(2)),
                Action::Send(ack(z(2, 0)))
            ]
        );
        // UPTODATE: its ACK, then the ACKs of everything logged since NEWLEADER, in order.
        let out = l.on_message(QuorumMessage::UpToDate, 3).unwrap();
        assert_eq!(
            out,
            vec![
                Action::Send(ack(z(2, 0))),
                Action::UpToDate { epoch: Epoch(2) },
                Action::Send(ack(z(1, 3))),
                Action::Send(ack(z(1, 4))),
                Action::Send(ack(z(2, 1))),
            ]
        );
    }

    #[test]
    fn uptodate_before_our_newleader_ack_is_a_protocol_error() {
        let mut l = learner(LearnerKind::Follower, 1, 1, z(1, 2));
        l.on_message(leader_info(2), 0).unwrap();
        l.on_message(QuorumMessage::Diff { zxid: z(1, 2) }, 0)
            .unwrap();
        l.on_message(proposal(z(1, 3)), 0).unwrap();
        l.on_message(
            QuorumMessage::NewLeader {
                zxid: z(2, 0),
                config: None,
            },
            0,
        )
        .unwrap();
        assert!(matches!(
            l.on_message(QuorumMessage::UpToDate, 0),
            Err(ZabError::Unexpected { .. })
        ));
    }

    #[test]
    fn newleader_of_another_epoch_is_refused() {
        let mut l = learner(LearnerKind::Follower, 1, 1, z(1, 2));
        l.on_message(leader_info(2), 0).unwrap();
        l.on_message(QuorumMessage::Diff { zxid: z(1, 2) }, 0)
            .unwrap();
        assert_eq!(
            l.on_message(
                QuorumMessage::NewLeader {
                    zxid: z(3, 0),
                    config: None
                },
                0
            ),
            Err(ZabError::BadNewLeader {
                zxid: z(3, 0),
                epoch: Epoch(2)
            })
        );
    }

    #[test]
    fn proposals_are_acked_after_durability_only_and_in_zxid_order() {
        let mut l = serving(LearnerKind::Follower, 1, Zxid::ZERO);
        for c in 1..=3 {
            let out = l.on_message(proposal(z(1, c)), 1).unwrap();
            assert_eq!(out, vec![Action::Append(entry(z(1, c)))]);
        }
        assert!(l.on_persisted(Zxid::ZERO, 2).is_empty());
        assert_eq!(
            sends(&l.on_persisted(z(1, 2), 3)),
            [ack(z(1, 1)), ack(z(1, 2))]
        );
        // A report beyond what was logged does not ACK what is not there.
        assert_eq!(sends(&l.on_persisted(z(1, 9), 4)), [ack(z(1, 3))]);
        let out = l.on_message(proposal(z(1, 4)), 5).unwrap();
        assert_eq!(out, vec![Action::Append(entry(z(1, 4)))]);
        assert_eq!(sends(&l.on_persisted(z(1, 4), 6)), [ack(z(1, 4))]);
    }

    #[test]
    fn commits_apply_the_head_of_the_pending_txns_and_a_mismatch_is_fatal() {
        let mut l = serving(LearnerKind::Follower, 1, Zxid::ZERO);
        l.on_message(proposal(z(1, 1)), 1).unwrap();
        l.on_message(proposal(z(1, 2)), 1).unwrap();
        // Applying before our own fsync is fine: the txn is committed.
        let out = l
            .on_message(QuorumMessage::Commit { zxid: z(1, 1) }, 2)
            .unwrap();
        assert_eq!(out, vec![Action::Apply(entry(z(1, 1)))]);
        assert_eq!(
            l.on_message(QuorumMessage::Commit { zxid: z(1, 3) }, 3),
            Err(ZabError::UnmatchedCommit {
                zxid: z(1, 3),
                pending: Some(z(1, 2))
            })
        );
        let mut l = serving(LearnerKind::Follower, 1, Zxid::ZERO);
        assert_eq!(
            l.on_message(QuorumMessage::Commit { zxid: z(1, 1) }, 3),
            Err(ZabError::UnmatchedCommit {
                zxid: z(1, 1),
                pending: None
            })
        );
    }

    #[test]
    fn proposals_must_increase() {
        let mut l = serving(LearnerKind::Follower, 1, Zxid::ZERO);
        l.on_message(proposal(z(1, 2)), 1).unwrap();
        assert!(matches!(
            l.on_message(proposal(z(1, 2)), 1),
            Err(ZabError::OutOfOrder { .. })
        ));
        let mut l = serving(LearnerKind::Follower, 1, Zxid::ZERO);
        let bad = QuorumMessage::Proposal {
            zxid: z(1, 1),
            entry: entry(z(1, 5)),
        };
        assert!(matches!(
            l.on_message(bad, 1),
            Err(ZabError::ZxidMismatch { .. })
        ));
    }

    #[test]
    fn trunc_and_snap_reset_the_log_before_the_rest() {
        let mut l = learner(LearnerKind::Follower, 1, 1, z(1, 9));
        l.on_message(leader_info(2), 0).unwrap();
        let out = l
            .on_message(QuorumMessage::Trunc { zxid: z(1, 6) }, 0)
            .unwrap();
        assert_eq!(out, vec![Action::Truncate(z(1, 6))]);
        assert_eq!(l.last_logged(), z(1, 6));
        l.on_message(proposal(z(2, 1)), 0).unwrap();

        let mut l = learner(LearnerKind::Follower, 1, 1, z(1, 9));
        l.on_message(leader_info(2), 0).unwrap();
        assert!(l
            .on_message(QuorumMessage::Snap { zxid: z(2, 0) }, 0)
            .unwrap()
            .is_empty());
        // Nothing but the stream may come next.
        let mut copy = l.clone();
        assert!(copy.on_message(QuorumMessage::UpToDate, 0).is_err());
        let out = l.on_snapshot(vec![1, 2, 3], 0).unwrap();
        assert_eq!(
            out,
            vec![Action::LoadSnapshot {
                zxid: z(2, 0),
                body: vec![1, 2, 3]
            }]
        );
        // The snapshot is durable: NEWLEADER is answered at once.
        let out = l
            .on_message(
                QuorumMessage::NewLeader {
                    zxid: z(2, 0),
                    config: None,
                },
                0,
            )
            .unwrap();
        assert_eq!(
            out,
            vec![
                Action::WriteCurrentEpoch(Epoch(2)),
                Action::Send(ack(z(2, 0)))
            ]
        );
        // Anything else than DIFF/TRUNC/SNAP after ACKEPOCH is an error.
        let mut l = learner(LearnerKind::Follower, 1, 1, z(1, 9));
        l.on_message(leader_info(2), 0).unwrap();
        assert!(l.on_message(proposal(z(2, 1)), 0).is_err());
    }

    #[test]
    fn observers_log_and_apply_informs_and_never_ack_them() {
        let mut l = serving(LearnerKind::Observer, 1, Zxid::ZERO);
        let out = l
            .on_message(
                QuorumMessage::Inform {
                    zxid: z(1, 1),
                    entry: entry(z(1, 1)),
                },
                1,
            )
            .unwrap();
        assert_eq!(
            out,
            vec![
                Action::Append(entry(z(1, 1))),
                Action::Apply(entry(z(1, 1)))
            ]
        );
        assert!(l.on_persisted(z(1, 1), 2).is_empty());
        // Java observers ignore PROPOSAL and COMMIT once synced.
        assert!(l.on_message(proposal(z(1, 2)), 3).unwrap().is_empty());
        assert!(l
            .on_message(QuorumMessage::Commit { zxid: z(1, 2) }, 3)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn pings_are_answered_with_the_touched_sessions_once_serving() {
        let mut l = learner(LearnerKind::Follower, 0, 0, Zxid::ZERO);
        l.on_message(leader_info(1), 0).unwrap();
        l.on_message(QuorumMessage::Diff { zxid: Zxid::ZERO }, 0)
            .unwrap();
        l.on_message(
            QuorumMessage::NewLeader {
                zxid: z(1, 0),
                config: None,
            },
            0,
        )
        .unwrap();
        // Between NEWLEADER and UPTODATE (Java's sync loop ignores them).
        assert!(l
            .on_message(QuorumMessage::Ping { zxid: z(1, 0) }, 0)
            .unwrap()
            .is_empty());
        l.on_message(QuorumMessage::UpToDate, 0).unwrap();
        l.touch(9, 4000);
        l.touch(8, 3000);
        l.touch(9, 4000);
        let out = l
            .on_message(QuorumMessage::Ping { zxid: z(1, 0) }, 1)
            .unwrap();
        assert_eq!(
            sends(&out),
            [QuorumMessage::PingReply {
                zxid: z(1, 0),
                touches: vec![
                    SessionTouch {
                        session_id: 8,
                        timeout_ms: 3000
                    },
                    SessionTouch {
                        session_id: 9,
                        timeout_ms: 4000
                    }
                ]
            }]
        );
        let out = l
            .on_message(QuorumMessage::Ping { zxid: z(1, 0) }, 2)
            .unwrap();
        assert_eq!(
            sends(&out),
            [QuorumMessage::PingReply {
                zxid: z(1, 0),
                touches: vec![]
            }]
        );
    }

    #[test]
    fn requests_syncs_and_revalidations() {
        let mut l = learner(LearnerKind::Follower, 0, 0, Zxid::ZERO);
        let req = ForwardedRequest {
            session_id: 9,
            cxid: 1,
            op: OpCode::Sync.code(),
            body: vec![],
            authinfo: None,
        };
        assert_eq!(l.forward(req.clone()), Err(ZabError::NotServing));
        let mut l = serving(LearnerKind::Follower, 1, Zxid::ZERO);
        assert_eq!(
            sends(&l.forward(req.clone()).unwrap()),
            [QuorumMessage::Request(req)]
        );
        assert_eq!(
            l.on_message(QuorumMessage::Sync, 1).unwrap(),
            vec![Action::SyncDone]
        );
        assert_eq!(
            sends(&l.revalidate(9, 4000).unwrap()),
            [QuorumMessage::Revalidate {
                session_id: 9,
                timeout_ms: 4000
            }]
        );
        assert_eq!(
            l.on_message(
                QuorumMessage::RevalidateReply {
                    session_id: 9,
                    valid: false
                },
                1
            )
            .unwrap(),
            vec![Action::Revalidated {
                session_id: 9,
                valid: false
            }]
        );
    }

    #[test]
    fn a_silent_leader_fails_the_learner_after_init_then_sync_limit() {
        let mut l = learner(LearnerKind::Follower, 0, 0, Zxid::ZERO);
        assert!(l.on_tick(1000).is_ok());
        assert_eq!(
            l.on_tick(1001),
            Err(ZabError::LeaderSilent { silent_ms: 1001 })
        );
        let mut l = serving(LearnerKind::Follower, 1, Zxid::ZERO);
        assert!(l.on_tick(500).is_ok());
        assert!(matches!(l.on_tick(501), Err(ZabError::LeaderSilent { .. })));
    }

    #[test]
    fn a_committed_reconfig_is_applied_then_activated() {
        let text = "server.1=h:1:2:participant\nserver.2=h:3:4:participant\nversion=100000001";
        let mut l = serving(LearnerKind::Follower, 1, Zxid::ZERO);
        let e = crate::testkit::reconfig_entry(z(1, 1), text);
        let p = QuorumMessage::Proposal {
            zxid: z(1, 1),
            entry: e.clone(),
        };
        l.on_message(p, 1).unwrap();
        let out = l
            .on_message(
                QuorumMessage::CommitAndActivate {
                    zxid: z(1, 1),
                    designated_leader: ServerId(2),
                },
                1,
            )
            .unwrap();
        assert_eq!(
            out,
            [
                Action::Apply(e.clone()),
                Action::Activate {
                    config: text.as_bytes().to_vec(),
                    designated: Some(ServerId(2)),
                }
            ]
        );
        // An observer hears INFORMANDACTIVATE: append, apply, activate.
        let mut o = serving(LearnerKind::Observer, 1, Zxid::ZERO);
        let out = o
            .on_message(
                QuorumMessage::InformAndActivate {
                    zxid: z(1, 1),
                    designated_leader: ServerId(1),
                    entry: e.clone(),
                },
                1,
            )
            .unwrap();
        assert!(matches!(
            &out[..],
            [Action::Append(_), Action::Apply(_), Action::Activate { .. }]
        ));
        // NEWLEADER's config is offered at UPTODATE.
        let mut l = learner(LearnerKind::Follower, 0, 0, Zxid::ZERO);
        l.on_message(leader_info(1), 0).unwrap();
        l.on_message(QuorumMessage::Diff { zxid: Zxid::ZERO }, 0)
            .unwrap();
        let newleader = QuorumMessage::NewLeader {
            zxid: z(1, 0),
            config: Some(text.as_bytes().to_vec()),
        };
        l.on_message(newleader, 0).unwrap();
        let out = l.on_message(QuorumMessage::UpToDate, 0).unwrap();
        assert!(out.iter().any(|a| matches!(
            a,
            Action::Activate {
                designated: None,
                ..
            }
        )));
    }
}
