//! The Zab roles against a real Java 3.8.0 ensemble: `tests/fixtures/ensemble/
//! ensemble-3+1.pcap` (leader sid 2; learners sid 1, 3 and observer 4).
//!
//! ```text
//! quorum streams to port 22212, in capture order
//!   sid 1 fresh      DIFF 0x0 (initial establishment), then PROPOSAL/COMMIT 1..9 and a SYNC
//!   sid 3 fresh      SNAP 0x100000000, then PROPOSAL/COMMIT 1..0x12, a REVALIDATE answer
//!   sid 4 observer   SNAP 0x100000000, then INFORM 1..0x12
//!   sid 1 restarted  DIFF 0x100000012 with PROPOSAL/COMMIT 0xa..0x12 (ACKEPOCH -1)
//!   sid 3 wiped      SNAP 0x100000012
//! ```
//!
//! Learner side: each stream's leader->learner packets are fed to a [`Learner`] built from what
//! the Java learner reported about itself; every packet it sends must be byte-identical to
//! what the Java learner sent (FOLLOWERINFO, ACKEPOCH, the ACK sequence, the PING replies).
//! Leader side: the learner->leader packets of all five connections are fed, in the capture's
//! order, to one [`Leader`] in sid 2's place; everything it sends each connection (PINGs
//! aside: they are timer-driven) must be byte-identical to what the Java leader sent.

mod pcap;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use zooid_proto::{OpCode, TxnEntry};
use zooid_zab::{
    ConnId, Decoded, Epoch, Leader, LeaderConfig, LeaderOutput, LeaderStart, Learner,
    LearnerAction, LearnerConfig, LearnerKind, LearnerStart, PacketType, QuorumDecoder,
    QuorumLimits, QuorumMessage, QuorumVerifier, Sender, ServerId, Timing, Zxid,
    DEFAULT_COMMIT_LOG_COUNT,
};

const LEADER_PORT: u16 = 22212;

#[derive(Debug, Clone)]
enum Item {
    Packet { raw: Vec<u8>, msg: QuorumMessage },
    Snapshot { body: Vec<u8> },
}

struct Conn {
    index: usize,
    /// learner -> leader, leader -> learner
    up: Vec<Item>,
    down: Vec<Item>,
}

fn decode_dir(bytes: &[u8], from: Sender) -> Vec<Item> {
    let mut dec = QuorumDecoder::new(from, QuorumLimits::default());
    let (mut at, mut items, mut body) = (0, Vec::new(), Vec::new());
    while at < bytes.len() {
        match dec.decode(&bytes[at..]).expect("a decodable capture") {
            Decoded::NeedMore { .. } => panic!("truncated stream at {at}"),
            Decoded::Packet { packet, consumed } => {
                let msg = QuorumMessage::decode(&packet, from).expect("a known message");
                items.push(Item::Packet {
                    raw: bytes[at..at + consumed].to_vec(),
                    msg,
                });
                at += consumed;
            }
            Decoded::SnapshotChunk { consumed } => {
                body.extend_from_slice(&bytes[at..at + consumed]);
                at += consumed;
            }
            Decoded::SnapshotEnd { consumed, .. } => {
                items.push(Item::Snapshot {
                    body: std::mem::take(&mut body),
                });
                at += consumed;
            }
        }
    }
    items
}

fn conns() -> &'static [Conn] {
    static CONNS: OnceLock<Vec<Conn>> = OnceLock::new();
    CONNS.get_or_init(|| {
        let dir: PathBuf =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ensemble");
        let file = std::fs::read(dir.join("ensemble-3+1.pcap")).expect("the capture");
        pcap::read_tcp_streams(&file)
            .expect("a readable capture")
            .into_iter()
            .filter(|s| s.server_port() == LEADER_PORT && !s.to_server.is_empty())
            .map(|s| Conn {
                index: s.index,
                up: decode_dir(&s.to_server, Sender::Learner),
                down: decode_dir(&s.to_client, Sender::Leader),
            })
            .collect()
    })
}

fn msgs(items: &[Item]) -> impl Iterator<Item = &QuorumMessage> {
    items.iter().filter_map(|i| match i {
        Item::Packet { msg, .. } => Some(msg),
        Item::Snapshot { .. } => None,
    })
}

fn bytes(m: &QuorumMessage) -> Vec<u8> {
    m.to_packet().to_bytes()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The five learner connections: (sid, observer?, FOLLOWERINFO zxid) in capture order.
#[test]
fn the_capture_has_the_expected_learner_connections() {
    let seen: Vec<(i64, bool, Zxid)> = conns()
        .iter()
        .map(|c| match msgs(&c.up).next().unwrap() {
            QuorumMessage::FollowerInfo { zxid, info } => (info.sid.0, false, *zxid),
            QuorumMessage::ObserverInfo { zxid, info } => (info.sid.0, true, *zxid),
            other => panic!("stream {} starts with {other:?}", c.index),
        })
        .collect();
    let e1 = Zxid::epoch_start(Epoch(1));
    assert_eq!(
        seen,
        [
            (1, false, Zxid::ZERO),
            (3, false, Zxid::ZERO),
            (4, true, Zxid::ZERO),
            (1, false, e1),
            (3, false, Zxid::ZERO)
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Learner side
// ---------------------------------------------------------------------------------------------

struct LearnerRun {
    sent: Vec<QuorumMessage>,
    applied: Vec<Zxid>,
    appended: Vec<Zxid>,
    snapshots: Vec<(Zxid, usize)>,
    epoch_writes: Vec<LearnerAction>,
    sync_done: usize,
    revalidated: Vec<(i64, bool)>,
    uptodate: bool,
}

/// Feed one connection's leader->learner traffic to a Learner standing where the Java one
/// stood; the caller's fsync completes right after each batch of appends.
fn run_learner(c: &Conn) -> LearnerRun {
    let mut up = msgs(&c.up);
    let (kind, sid, accepted) = match up.next().unwrap() {
        QuorumMessage::FollowerInfo { zxid, info } => {
            (LearnerKind::Follower, info.sid, zxid.epoch())
        }
        QuorumMessage::ObserverInfo { zxid, info } => {
            (LearnerKind::Observer, info.sid, zxid.epoch())
        }
        _ => unreachable!(),
    };
    // What the Java learner had: its ACKEPOCH tells (an epoch of -1 = it had accepted the
    // leader's epoch, and its current epoch equalled it).
    let Some(QuorumMessage::AckEpoch {
        zxid: last,
        current_epoch,
    }) = up.next()
    else {
        panic!("no ACKEPOCH")
    };
    let start = LearnerStart {
        accepted_epoch: accepted,
        current_epoch: current_epoch.unwrap_or(accepted),
        last_zxid: *last,
        durable_zxid: *last,
    };
    let cfg = LearnerConfig {
        my_id: sid,
        kind,
        timing: Timing::DEFAULT,
        config_version: 0,
    };
    let (mut l, first) = Learner::new(cfg, start, 0);
    let mut run = LearnerRun {
        sent: Vec::new(),
        applied: Vec::new(),
        appended: Vec::new(),
        snapshots: Vec::new(),
        epoch_writes: Vec::new(),
        sync_done: 0,
        revalidated: Vec::new(),
        uptodate: false,
    };
    let handle =
        |actions: Vec<LearnerAction>, run: &mut LearnerRun| -> Option<Zxid> {
            let mut appended = None;
            for a in actions {
                match a {
                    LearnerAction::Send(m) => run.sent.push(m),
                    LearnerAction::Append(e) => {
                        run.appended.push(Zxid(e.header.zxid));
                        appended = Some(Zxid(e.header.zxid));
                    }
                    LearnerAction::Apply(e) => run.applied.push(Zxid(e.header.zxid)),
                    LearnerAction::LoadSnapshot { zxid, body } => {
                        run.snapshots.push((zxid, body.len()))
                    }
                    w @ (LearnerAction::WriteAcceptedEpoch(_)
                    | LearnerAction::WriteCurrentEpoch(_)) => run.epoch_writes.push(w),
                    LearnerAction::Truncate(z) => panic!("no TRUNC in this capture ({z})"),
                    LearnerAction::UpToDate { .. } => run.uptodate = true,
                    LearnerAction::SyncDone => run.sync_done += 1,
                    // The captured ensemble's config is static: nothing newer to take on.
                    LearnerAction::Activate { .. } => {}
                    LearnerAction::Revalidated { session_id, valid } => {
                        run.revalidated.push((session_id, valid))
                    }
                }
            }
            appended
        };
    handle(first, &mut run);
    // The sessions Java's learner reported in each PING reply: its clients touched them, so
    // ours touch them too before the matching PING arrives.
    let mut touches = msgs(&c.up).filter_map(|m| match m {
        QuorumMessage::PingReply { touches, .. } => Some(touches.clone()),
        _ => None,
    });
    for (n, item) in c.down.iter().enumerate() {
        let now = n as u64;
        if let Item::Packet {
            msg: QuorumMessage::Ping { .. },
            ..
        } = item
        {
            for t in touches.next().unwrap_or_default() {
                l.touch(t.session_id, t.timeout_ms);
            }
        }
        let actions = match item {
            Item::Packet { msg, .. } => l.on_message(msg.clone(), now),
            Item::Snapshot { body } => l.on_snapshot(body.clone(), now),
        }
        .unwrap_or_else(|e| panic!("stream {}: item {n}: {e}", c.index));
        if let Some(z) = handle(actions, &mut run) {
            let more = l.on_persisted(z, now);
            handle(more, &mut run);
        }
    }
    run
}

/// What the Java learner sent, minus what its clients made it send.
fn java_learner_replies(c: &Conn) -> Vec<QuorumMessage> {
    msgs(&c.up)
        .filter(|m| {
            !matches!(
                m,
                QuorumMessage::Request(_) | QuorumMessage::Revalidate { .. }
            )
        })
        .cloned()
        .collect()
}

fn assert_same_packets(ours: &[QuorumMessage], java: &[QuorumMessage], what: &str) {
    let o: Vec<String> = ours.iter().map(|m| hex(&bytes(m))).collect();
    let j: Vec<String> = java.iter().map(|m| hex(&bytes(m))).collect();
    assert_eq!(o, j, "{what}");
}

#[test]
fn learners_answer_every_sync_and_broadcast_as_the_java_learners_did() {
    for c in conns() {
        let run = run_learner(c);
        let java = java_learner_replies(c);
        // The handshake and sync replies are exactly Java's, byte for byte and in order.
        assert_same_packets(
            &run.sent[..4],
            &java[..4],
            &format!("stream {} handshake", c.index),
        );
        // So are the ACKs and the PING replies, each in order (their interleaving is timing).
        let acks = |v: &[QuorumMessage]| -> Vec<QuorumMessage> {
            v.iter()
                .filter(|m| m.packet_type() == PacketType::Ack)
                .cloned()
                .collect()
        };
        let pings = |v: &[QuorumMessage]| -> Vec<QuorumMessage> {
            v.iter()
                .filter(|m| m.packet_type() == PacketType::Ping)
                .cloned()
                .collect()
        };
        assert_same_packets(
            &acks(&run.sent),
            &acks(&java),
            &format!("stream {} ACKs", c.index),
        );
        // The capture stops right after some leaders' last PING, before the reply.
        let (ours, theirs) = (pings(&run.sent), pings(&java));
        let cut = ours.len() - theirs.len();
        assert!(
            cut <= 1,
            "stream {}: {} PING replies, Java {}",
            c.index,
            ours.len(),
            theirs.len()
        );
        assert_same_packets(
            &ours[..theirs.len()],
            &theirs,
            &format!("stream {} PINGs", c.index),
        );
        assert_eq!(run.sent.len() - cut, java.len(), "stream {}", c.index);
        assert!(run.uptodate, "stream {} reached UPTODATE", c.index);
        // Every committed txn was applied once, in order; everything received was logged.
        let committed: Vec<Zxid> = msgs(&c.down)
            .filter_map(|m| match m {
                QuorumMessage::Commit { zxid } | QuorumMessage::Inform { zxid, .. } => Some(*zxid),
                _ => None,
            })
            .collect();
        assert_eq!(run.applied, committed, "stream {}", c.index);
        let received: Vec<Zxid> = msgs(&c.down)
            .filter_map(|m| match m {
                QuorumMessage::Proposal { zxid, .. } | QuorumMessage::Inform { zxid, .. } => {
                    Some(*zxid)
                }
                _ => None,
            })
            .collect();
        assert_eq!(run.appended, received, "stream {}", c.index);
        let snaps = c
            .down
            .iter()
            .filter(|i| matches!(i, Item::Snapshot { .. }))
            .count();
        assert_eq!(run.snapshots.len(), snaps, "stream {}", c.index);
    }
}

#[test]
fn the_restarted_follower_s_diff_sync_in_detail() {
    let c = &conns()[3];
    let run = run_learner(c);
    let e1 = Zxid::epoch_start(Epoch(1));
    // ACKEPOCH zxid=0x100000009 currentEpoch=-1, exactly.
    assert_eq!(
        hex(&bytes(&run.sent[1])),
        "00000012000000010000000900000004ffffffffffffffff"
    );
    // NEWLEADER ACK (after the nine DIFF txns were durable), UPTODATE ACK, then 0xa..0x12.
    let acks: Vec<Zxid> = run
        .sent
        .iter()
        .filter_map(|m| match m {
            QuorumMessage::Ack { zxid } => Some(*zxid),
            _ => None,
        })
        .collect();
    let mut want = vec![e1, e1];
    want.extend((0xa..=0x12).map(|c| Zxid::new(Epoch(1), c)));
    assert_eq!(acks, want);
    // Epoch 1 was already current: no epoch file is rewritten.
    assert!(run.epoch_writes.is_empty());
}

#[test]
fn the_fresh_followers_write_both_epoch_files_and_answer_sync_and_revalidate() {
    let first = run_learner(&conns()[0]);
    assert_eq!(
        first.epoch_writes,
        [
            LearnerAction::WriteAcceptedEpoch(Epoch(1)),
            LearnerAction::WriteCurrentEpoch(Epoch(1))
        ]
    );
    assert_eq!(first.sync_done, 1);
    let second = run_learner(&conns()[1]);
    assert_eq!(
        second.snapshots,
        [(Zxid::epoch_start(Epoch(1)), second.snapshots[0].1)]
    );
    assert_eq!(second.revalidated, [(0x100000f731f0001, true)]);
}

// ---------------------------------------------------------------------------------------------
// Leader side
// ---------------------------------------------------------------------------------------------

/// What one connection received from our leader: packets, with the snapshot marker.
#[derive(Default)]
struct Received {
    items: Vec<Result<QuorumMessage, Zxid>>,
}

struct LeaderRun {
    leader: Leader,
    got: Vec<Received>,
    proposals: Vec<TxnEntry>,
    requests: Vec<(usize, i64, i32, i32)>,
    revalidations: usize,
    established: Vec<Epoch>,
    committed: Vec<Zxid>,
    epoch_writes: Vec<LeaderOutput>,
}

impl LeaderRun {
    fn handle(&mut self, out: Vec<LeaderOutput>) -> Vec<LeaderOutput> {
        let mut rest = Vec::new();
        for o in out {
            match o {
                LeaderOutput::Send { conn, msg } => {
                    assert_ne!(msg.packet_type(), PacketType::Ping);
                    self.got[conn.0 as usize].items.push(Ok(msg))
                }
                LeaderOutput::StreamSnapshot { conn, zxid } => {
                    self.got[conn.0 as usize].items.push(Err(zxid))
                }
                LeaderOutput::Established { epoch } => self.established.push(epoch),
                LeaderOutput::Commit { zxid } => self.committed.push(zxid),
                w @ (LeaderOutput::WriteAcceptedEpoch(_) | LeaderOutput::WriteCurrentEpoch(_)) => {
                    self.epoch_writes.push(w)
                }
                // The capture's learners were synced by SNAP: the Java leader had no log to
                // read for them either.
                LeaderOutput::ReadLog { conn, .. } => {
                    let out = self.leader.on_log_read(conn, None, 0);
                    rest.extend(self.handle(out));
                }
                other => rest.push(other),
            }
        }
        rest
    }

    /// Propose the capture's txns up to `zxid` (the leader's own clients made them).
    fn propose_through(&mut self, zxid: Zxid, now: u64) {
        while self.leader.last_proposed() < zxid {
            let e = self.proposals[self.leader.next_zxid().counter() as usize - 1].clone();
            let z = Zxid(e.header.zxid);
            let out = self.leader.propose(e, now).expect("established");
            let rest = self.handle(out);
            assert!(rest.is_empty());
            // Our own fsync is immediate here.
            let out = self.leader.on_persisted(z, now);
            self.handle(out);
        }
    }

    /// Feed the learner->leader packets `range` of connection `n`.
    fn feed(&mut self, n: usize, range: std::ops::Range<usize>, now: u64) {
        let up: Vec<QuorumMessage> = msgs(&conns()[n].up).cloned().collect();
        for m in &up[range] {
            if let QuorumMessage::Ack { zxid } = m {
                if !zxid.is_epoch_start() {
                    self.propose_through(*zxid, now);
                }
            }
            let out = self.leader.on_message(ConnId(n as u64), m.clone(), now);
            for o in self.handle(out) {
                match o {
                    LeaderOutput::Request { conn, sid, request } => {
                        assert_eq!(conn, ConnId(n as u64));
                        self.requests.push((n, sid.0, request.cxid, request.op));
                        if request.op_code() == Some(OpCode::Sync) {
                            let out = self.leader.sync(conn);
                            self.handle(out);
                        } else {
                            let next = self.leader.next_zxid();
                            self.propose_through(next, now);
                        }
                    }
                    LeaderOutput::Revalidate {
                        conn, session_id, ..
                    } => {
                        self.revalidations += 1;
                        let out = self.leader.revalidate_reply(conn, session_id, true);
                        self.handle(out);
                    }
                    LeaderOutput::Touch { .. } => {}
                    other => panic!("connection {n}: unexpected {other:?}"),
                }
            }
        }
    }
}

fn config_text() -> Vec<u8> {
    msgs(&conns()[0].down)
        .find_map(|m| match m {
            QuorumMessage::NewLeader { config, .. } => config.clone(),
            _ => None,
        })
        .expect("a NEWLEADER with the config")
}

#[test]
fn a_leader_in_sid_2_s_place_sends_what_the_java_leader_sent() {
    let sids = |v: &[i64]| v.iter().map(|&s| ServerId(s)).collect();
    let cfg = LeaderConfig {
        my_id: ServerId(2),
        quorum: QuorumVerifier::new(sids(&[1, 2, 3]), sids(&[4])),
        timing: Timing::DEFAULT,
        commit_log_count: DEFAULT_COMMIT_LOG_COUNT,
        force_snapshot_sync: false,
        config_text: config_text(),
        config_version: 0,
        reconfig_enabled: false,
        last_seen: None,
    };
    assert!(String::from_utf8_lossy(&cfg.config_text).ends_with("observer\nversion=0"));
    let start = LeaderStart {
        accepted_epoch: Epoch(0),
        current_epoch: Epoch(0),
        last_zxid: Zxid::ZERO,
        durable_zxid: Zxid::ZERO,
        history: Vec::new(),
    };
    let (leader, out) = Leader::new(cfg, start, 0);
    assert!(out.is_empty());
    // The txns, as the sid 3 connection saw them all.
    let proposals: Vec<TxnEntry> = msgs(&conns()[1].down)
        .filter_map(|m| match m {
            QuorumMessage::Proposal { entry, .. } => Some(entry.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(proposals.len(), 0x12);
    let mut run = LeaderRun {
        leader,
        got: (0..conns().len()).map(|_| Received::default()).collect(),
        proposals,
        requests: Vec::new(),
        revalidations: 0,
        established: Vec::new(),
        committed: Vec::new(),
        epoch_writes: Vec::new(),
    };
    let count = |n: usize| msgs(&conns()[n].up).count();
    // The capture's order: sid 1 establishes epoch 1, sid 3 and observer 4 join by SNAP, the
    // clients write 1..9 through sid 1, sid 1 stops, a client moves to sid 3 (REVALIDATE) and
    // writes, the leader's own client writes up to 0x12, sid 1 returns (DIFF), sid 3 is wiped
    // and returns (SNAP).
    run.feed(0, 0..4, 1);
    assert_eq!(run.established, [Epoch(1)]);
    assert_eq!(
        run.epoch_writes,
        [
            LeaderOutput::WriteAcceptedEpoch(Epoch(1)),
            LeaderOutput::WriteCurrentEpoch(Epoch(1))
        ]
    );
    run.feed(1, 0..4, 2);
    run.feed(2, 0..4, 10);
    run.feed(0, 4..count(0), 11);
    run.leader.on_disconnect(ConnId(0), 20);
    run.feed(1, 4..count(1), 21);
    run.feed(3, 0..count(3), 22);
    run.leader.on_disconnect(ConnId(1), 30);
    run.feed(4, 0..count(4), 32);
    let all: Vec<Zxid> = (1..=0x12).map(|c| Zxid::new(Epoch(1), c)).collect();
    assert_eq!(run.committed, all);
    assert_eq!(run.revalidations, 1);
    // Forwarded requests reached the caller: sid 1's nine writes and its sync, sid 3's two.
    let ops: Vec<(i64, i32)> = run.requests.iter().map(|r| (r.1, r.3)).collect();
    assert_eq!(ops.len(), 12);
    assert_eq!(ops.iter().filter(|o| o.1 == OpCode::Sync.code()).count(), 1);
    assert!(ops.iter().all(|o| o.0 == 1 || o.0 == 3));

    for (n, c) in conns().iter().enumerate() {
        let java: Vec<Result<Vec<u8>, ()>> = c
            .down
            .iter()
            .filter_map(|i| match i {
                Item::Packet { msg, .. } if msg.packet_type() == PacketType::Ping => None,
                Item::Packet { raw, .. } => Some(Ok(raw.clone())),
                Item::Snapshot { .. } => Some(Err(())),
            })
            .collect();
        let ours: Vec<Result<Vec<u8>, ()>> = run.got[n]
            .items
            .iter()
            .map(|i| i.as_ref().map(bytes).map_err(|_| ()))
            .collect();
        let show = |v: &[Result<Vec<u8>, ()>]| -> Vec<String> {
            v.iter()
                .map(|r| {
                    r.as_ref()
                        .map_or("<snapshot stream>".to_string(), |b| hex(b))
                })
                .collect()
        };
        assert_eq!(
            show(&ours),
            show(&java),
            "stream {} (connection {n})",
            c.index
        );
        // The snapshot marker carries the SNAP zxid.
        for w in run.got[n].items.windows(2) {
            if let Err(z) = &w[1] {
                assert_eq!(w[0], Ok(QuorumMessage::Snap { zxid: *z }));
            }
        }
    }
}
