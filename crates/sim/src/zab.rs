//! Deterministic simulation of Zab: 3 or 5 voters and an observer, each running [`Election`]
//! and then a [`Leader`] or a [`Learner`], over a simulated network, disk and clock, with
//! faults. One seed fixes everything; a failure panics with `seed N: ...` (see the crate's
//! docs for replaying it).
//!
//! ```text
//! network   (net.rs) election port: random delay, loss, duplicates, a one-slot queue per peer
//!           while disconnected and a re-send of the last message on reconnect (as in the
//!           election simulation); quorum port: one TCP-like stream per learner, FIFO in each
//!           direction (never reordered), random delay; a partition holds its bytes until it
//!           heals (or the peers' timers give up); loss = the connection is reset (both ends
//!           see it closed)
//! disk      (disk.rs) per member: log (+ the snapshot a SNAP loaded), acceptedEpoch,
//!           currentEpoch; appends are durable only after a simulated fsync of random latency;
//!           epoch files, TRUNC and SNAP are synchronous
//! faults    crashes (everything volatile lost, the undurable log tail torn off) and restarts
//!           with the durable state; partitions and single-link cuts that heal; connection
//!           resets; for 2..20 s, then everything heals and the dead restart
//! clients   writes submitted every 10..60 ms to a random member: the leader proposes them,
//!           a serving learner forwards them as REQUEST (or forwards a sync now and then)
//! ```
//!
//! Invariants, after every step (the history ones are kept by checker.rs):
//! * at most one leader is established per epoch;
//! * one zxid names one txn, everywhere (proposals, logs, trees);
//! * committed txns are never lost or reordered: the global committed sequence only grows; a
//!   newly established leader's history holds every txn committed in earlier epochs (and is
//!   then committed itself); a COMMIT below the end of the sequence must already be in it;
//! * members that hold the same zxid (in their log or their applied history) hold identical
//!   histories up to it (a hash chain per zxid);
//! * a serving member (UPTODATE, or an established leader) has applied a prefix of the
//!   committed sequence, and applies in that order;
//! * a learner's sync completes only once it applied what the leader had proposed then;
//! * liveness: once the network heals, one leader with every member serving emerges, and new
//!   writes through the leader and through learners commit and are applied everywhere; then
//!   every member's history equals the committed sequence.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use zooid_proto::OpCode;
use zooid_zab::{
    CloseReason, ConnId, DecidedBy, Epoch, ForwardedRequest, Leader, LeaderConfig, LeaderOutput,
    LeaderPhase, LeaderStart, Learner, LearnerAction, LearnerConfig, LearnerKind, LearnerStart,
    Notification, Output as ElectionOutput, PeerState, QuorumMessage, QuorumVerifier, Role,
    ServerId, StepDownReason, Timing, Vote, ZabError, Zxid,
};

use crate::checker::{mix, Truth};
use crate::disk::{decode_snapshot, encode_snapshot, Disk, DiskLog};
use crate::ensemble::{index, Ensemble};
use crate::net::{
    random_link, random_partition, ElectionPort, Links, Pkt, Stream, LEADER_END, LEARNER_END,
};
use crate::rng::Rng;
use crate::stats::Stats;
use crate::workload::{id_of, make_entry};

const TIMING: Timing = Timing {
    tick_ms: 100,
    init_limit: 10,
    sync_limit: 5,
};
const NODE_TICK_MS: u64 = 50;
const CONNECT_TRIES: u32 = 5;
const CONNECT_RETRY_MS: u64 = 100;
const SETTLE_MS: u64 = 500;
const FINAL_WRITES: usize = 6;
const FINAL_RETRY_MS: u64 = 5_000;
const QUIET_CAP_MS: u64 = 120_000;
const MAX_EVENTS: u64 = 3_000_000;

// ---- members ----------------------------------------------------------------------------------

enum NodeRole {
    Looking,
    Leading {
        leader: Box<Leader>,
        gen: u64,
    },
    Connecting {
        leader: usize,
        tries: u32,
    },
    Learning {
        leader: usize,
        conn: u64,
        learner: Box<Learner>,
    },
}

impl NodeRole {
    fn name(&self) -> String {
        match self {
            NodeRole::Looking => "looking".into(),
            NodeRole::Leading { leader, gen } => {
                format!(
                    "leading(gen {gen}, {:?}, epoch {:?})",
                    leader.phase(),
                    leader.epoch()
                )
            }
            NodeRole::Connecting { leader, tries } => format!("connecting({leader}, {tries})"),
            NodeRole::Learning {
                leader,
                conn,
                learner,
            } => format!("learning({leader}, conn {conn}, {:?})", learner.phase()),
        }
    }
}

/// A member's disk, tree and Zab role, besides its [`Member`](crate::ensemble::Member).
struct Node {
    disk: Disk,
    /// The applied history (the tree, as far as this crate can see it).
    tree: Vec<(Zxid, u64)>,
    tree_hash: u64,
    disk_hash: u64,
    role: NodeRole,
    fsync_scheduled: bool,
    serving: bool,
}

// ---- network ----------------------------------------------------------------------------------

/// A learner's connection to a leader.
struct Conn {
    stream: Stream,
    /// The leader's generation (a fresh one each time it starts leading).
    gen: u64,
    /// Forwarded syncs in flight: what the learner must have applied when SYNC arrives.
    syncs: VecDeque<Zxid>,
}

#[derive(Debug)]
enum Ev {
    Note {
        from: usize,
        to: usize,
        to_incarnation: u64,
        msg: Notification,
    },
    Dir {
        conn: u64,
        dir: usize,
    },
    Tick {
        node: usize,
        incarnation: u64,
    },
    Connect {
        node: usize,
        incarnation: u64,
    },
    Fsync {
        node: usize,
        incarnation: u64,
    },
    Start {
        node: usize,
    },
    ClientWrite,
    Fault,
    Heal {
        pairs: Vec<(usize, usize)>,
    },
    EndFaults,
}

/// One run of the Zab simulation.
pub struct Sim {
    seed: u64,
    trace: bool,
    ens: Ensemble<Ev>,
    nodes: Vec<Node>,
    // quorum port
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    next_gen: u64,
    // disks and config
    max_fsync_ms: u64,
    /// Time between faults: (min, max) ms.
    fault_gap_ms: (u64, u64),
    commit_log_count: usize,
    txn_log_sync: bool,
    // run
    faults_on: bool,
    fault_end_ms: u64,
    next_id: u64,
    settled_since: Option<u64>,
    final_ids: Vec<u64>,
    final_since: u64,
    truth: Truth,
}

impl Sim {
    /// The run `seed` picks for `voters_n` voters and one observer.
    pub fn new(seed: u64, voters_n: usize, trace: bool) -> Sim {
        let mut rng = Rng(seed ^ ((voters_n as u64) << 56) ^ 0x5a5a_0000);
        let total = voters_n + 1;
        // A common epoch-1 history of which each member holds a prefix (maybe none of it).
        let common = rng.below(8) as u32;
        let mut nodes = Vec::new();
        for _ in 0..total {
            let held = rng.below(u64::from(common) + 1) as u32;
            let history: Vec<(Zxid, u64)> = (1..=held)
                .map(|c| (Zxid::new(Epoch(1), c), 1_000_000 + u64::from(c)))
                .collect();
            // Epoch-1 txns exist only if a quorum accepted epoch 1: say everyone did.
            let epoch = Epoch(i64::from(common > 0));
            nodes.push(Node {
                disk: Disk::new(history, epoch),
                tree: Vec::new(),
                tree_hash: 0,
                disk_hash: 0,
                role: NodeRole::Looking,
                fsync_scheduled: false,
                serving: false,
            });
        }
        let max_delay_ms = match rng.below(4) {
            0 => rng.range(1, 5),
            1 | 2 => rng.range(5, 40),
            _ => rng.range(40, 150),
        };
        let max_fsync_ms = [2, 10, 40, 120, 300][rng.below(5) as usize];
        // Some runs are storms: a fault every 30..600 ms.
        let fault_gap_ms = if rng.below(3) == 0 {
            (30, 600)
        } else {
            (100, 2_500)
        };
        let commit_log_count = [2, 5, 20, 500][rng.below(4) as usize];
        let port = ElectionPort::new(max_delay_ms, rng.below(3) * 50, rng.below(3) * 30);
        let txn_log_sync = rng.below(2) == 0;
        let fault_end_ms = rng.range(2_000, 20_000);
        let note = |from, to, to_incarnation, msg| Ev::Note {
            from,
            to,
            to_incarnation,
            msg,
        };
        let mut sim = Sim {
            seed,
            trace,
            ens: Ensemble::new(rng, voters_n, port, note),
            nodes,
            conns: BTreeMap::new(),
            next_conn: 1,
            next_gen: 1,
            max_fsync_ms,
            fault_gap_ms,
            commit_log_count,
            txn_log_sync,
            faults_on: true,
            fault_end_ms,
            next_id: 1,
            settled_since: None,
            final_ids: Vec::new(),
            final_since: 0,
            truth: Truth::default(),
        };
        for node in 0..total {
            let at = sim.ens.rng.below(1_000);
            sim.push(at, Ev::Start { node });
        }
        let first = sim.ens.rng.range(200, 2_000);
        sim.push(first, Ev::Fault);
        sim.push(sim.fault_end_ms, Ev::EndFaults);
        sim.push(300, Ev::ClientWrite);
        sim
    }

    fn fail(&self, what: impl std::fmt::Display) -> ! {
        let mut dump = String::new();
        for (i, (m, n)) in self.ens.members.iter().zip(&self.nodes).enumerate() {
            dump.push_str(&format!(
                "\n  [{i}] sid {} obs={} alive={} disk=(acc {} cur {} base {} last {} durable {} len {}) tree_last={:?} serving={} role={}",
                m.sid,
                m.observer,
                m.alive,
                n.disk.accepted_epoch,
                n.disk.current_epoch,
                n.disk.base,
                n.disk.last_zxid(),
                n.disk.durable_zxid(),
                n.disk.history.len(),
                n.tree.last().map(|e| e.0.to_string()),
                n.serving,
                n.role.name(),
            ));
        }
        panic!(
            "seed {}: t={} ms: {what}\n  committed: {} txns, last {:?}{dump}",
            self.seed,
            self.ens.now(),
            self.truth.committed().len(),
            self.truth.committed().last().map(|e| e.0.to_string()),
        );
    }

    /// The value, or the run fails with the broken invariant.
    fn ok<T>(&self, r: Result<T, String>) -> T {
        match r {
            Ok(v) => v,
            Err(what) => self.fail(what),
        }
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.trace {
            println!("{:>7} {}", self.ens.now(), what());
        }
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.ens.clock.push(at, ev);
    }

    // ---- the truth ----------------------------------------------------------------------------

    fn rebuild_tree(&mut self, n: usize, why: &str) {
        let seq = self.nodes[n].disk.history.clone();
        let who = format!("sid {} {why}", self.ens.sid(n));
        let r = self.truth.chain(&seq, &who);
        let h = self.ok(r);
        let node = &mut self.nodes[n];
        node.tree = seq;
        node.tree_hash = h;
        node.disk_hash = h;
    }

    fn disk_append(&mut self, n: usize, z: Zxid, id: u64) {
        let who = format!("sid {} log", self.ens.sid(n));
        let r = self.truth.check_owner(z, id, &who);
        self.ok(r);
        let node = &self.nodes[n];
        if node.disk.last_zxid() >= z {
            self.fail(format!("{who}: append {z} after {}", node.disk.last_zxid()));
        }
        let h = mix(node.disk_hash, z, id);
        let r = self.truth.check_prefix(z, h, &who);
        self.ok(r);
        let node = &mut self.nodes[n];
        node.disk.append(z, id);
        node.disk_hash = h;
        if !node.fsync_scheduled {
            node.fsync_scheduled = true;
            let at = self.ens.now() + 1 + self.ens.rng.below(self.max_fsync_ms);
            self.ens
                .push_for(at, n, |node, incarnation| Ev::Fsync { node, incarnation });
        }
    }

    fn apply(&mut self, n: usize, z: Zxid, id: u64) {
        let who = format!("sid {} tree", self.ens.sid(n));
        let r = self.truth.check_owner(z, id, &who);
        self.ok(r);
        let node = &self.nodes[n];
        if node.tree.last().is_some_and(|e| e.0 >= z) {
            self.fail(format!("{who}: applies {z} after {:?}", node.tree.last()));
        }
        let h = mix(node.tree_hash, z, id);
        let r = self.truth.check_prefix(z, h, &who);
        self.ok(r);
        let node = &self.nodes[n];
        if node.serving {
            let r = self.truth.check_serving_apply(node.tree.len(), z, id, &who);
            self.ok(r);
        }
        let node = &mut self.nodes[n];
        node.tree.push((z, id));
        node.tree_hash = h;
    }

    /// A leader committed `z`.
    fn record_commit(&mut self, z: Zxid, id: u64) {
        let r = self.truth.commit(z, id);
        if self.ok(r) {
            self.ens.stats.committed += 1;
        }
    }

    fn check_serving_prefix(&self, n: usize, what: &str) {
        let tree = &self.nodes[n].tree;
        self.ok(self.truth.check_serving_prefix(self.ens.sid(n), tree, what));
    }

    fn on_established(&mut self, n: usize, epoch: Epoch) {
        self.ens.stats.elections += 1;
        let sid = self.ens.sid(n);
        let r = self.truth.establish(sid, epoch, &self.nodes[n].tree);
        self.ens.stats.committed += self.ok(r);
        self.nodes[n].serving = true;
        self.log(|| format!("sid {sid} ESTABLISHED epoch {epoch}"));
        let e = self.ens.election(n);
        let v = e.current_vote();
        e.answer_as(
            PeerState::Leading,
            Vote {
                peer_epoch: epoch,
                ..v
            },
        );
    }

    // ---- election -----------------------------------------------------------------------------

    fn election_out(&mut self, n: usize, out: Vec<ElectionOutput>) {
        for o in out {
            match o {
                ElectionOutput::Send { to, msg } => self.ens.send(n, index(to), msg),
                ElectionOutput::Decided {
                    leader, role, by, ..
                } => self.decided(n, leader, role, by),
            }
        }
    }

    fn look_again(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.role = NodeRole::Looking;
        node.serving = false;
        let (z, e) = (node.disk.last_zxid(), node.disk.current_epoch);
        let out = self.ens.look_again(n, z, e);
        self.log(|| format!("sid {} looks again", self.ens.sid(n)));
        self.election_out(n, out);
    }

    fn decided(&mut self, n: usize, leader: ServerId, role: Role, by: DecidedBy) {
        self.ens.count_decision(by);
        self.log(|| format!("sid {} decides {role:?} {leader}", self.ens.sid(n)));
        match role {
            Role::Leading => {
                let gen = self.next_gen;
                self.next_gen += 1;
                self.rebuild_tree(n, "starts leading");
                let (node, ens) = (&self.nodes[n], &self.ens);
                let cfg = LeaderConfig {
                    my_id: ens.sid(n),
                    quorum: QuorumVerifier::new(ens.voters.clone(), ens.observers.clone()),
                    timing: TIMING,
                    commit_log_count: self.commit_log_count,
                    force_snapshot_sync: false,
                    config_text: Vec::new(),
                    config_version: 0,
                };
                let start = LeaderStart {
                    accepted_epoch: node.disk.accepted_epoch,
                    current_epoch: node.disk.current_epoch,
                    last_zxid: node.disk.last_zxid(),
                    durable_zxid: node.disk.durable_zxid(),
                    history: node
                        .disk
                        .history
                        .iter()
                        .map(|&(z, id)| make_entry(z, id))
                        .collect(),
                };
                let (l, out) = Leader::new(cfg, start, self.ens.now());
                self.nodes[n].role = NodeRole::Leading {
                    leader: Box::new(l),
                    gen,
                };
                self.leader_out(n, out);
            }
            Role::Following | Role::Observing => {
                let after_ms = self.ens.delay();
                self.connect(n, index(leader), 0, after_ms);
            }
        }
    }

    /// Try to connect to `leader` in `after_ms` (after `tries` failed tries).
    fn connect(&mut self, n: usize, leader: usize, tries: u32, after_ms: u64) {
        self.nodes[n].role = NodeRole::Connecting { leader, tries };
        let at = self.ens.now() + after_ms;
        self.ens
            .push_for(at, n, |node, incarnation| Ev::Connect { node, incarnation });
    }

    // ---- quorum connections -------------------------------------------------------------------

    fn conn_send(&mut self, conn: u64, dir: usize, pkt: Pkt) {
        let at = self.ens.now() + self.ens.delay();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.stream.write(dir, at, pkt) {
            self.schedule_dir(conn, dir);
        }
    }

    fn schedule_dir(&mut self, conn: u64, dir: usize) {
        let now = self.ens.now();
        let c = self.conns.get_mut(&conn).unwrap();
        let linked = self.ens.links.linked(c.stream.learner, c.stream.leader);
        if let Some(at) = c.stream.schedule(dir, now, linked) {
            self.push(at, Ev::Dir { conn, dir });
        }
    }

    /// One end closes: a FIN after what it already sent.
    fn close_end(&mut self, conn: u64, end: usize) {
        let now = self.ens.now();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.stream.close(end, now) {
            self.schedule_dir(conn, end);
        }
    }

    fn on_dir(&mut self, conn: u64, dir: usize) {
        let c = self.conns.get_mut(&conn).unwrap();
        let (learner, leader) = (c.stream.learner, c.stream.leader);
        let linked = self.ens.links.linked(learner, leader);
        // Unlinked: held until the link heals.
        let Some((pkt, deliver)) = c.stream.take(dir, linked) else {
            return;
        };
        self.schedule_dir(conn, dir);
        if !deliver {
            return;
        }
        if 1 - dir == LEADER_END {
            self.deliver_to_leader(conn, leader, pkt);
        } else {
            self.deliver_to_learner(conn, learner, pkt);
        }
    }

    fn deliver_to_leader(&mut self, conn: u64, n: usize, pkt: Pkt) {
        let gen = self.conns[&conn].gen;
        let NodeRole::Leading { gen: g, .. } = &self.nodes[n].role else {
            return;
        };
        if *g != gen || !self.ens.members[n].alive {
            return;
        }
        match pkt {
            Pkt::Close => {
                self.conns.get_mut(&conn).unwrap().stream.open[LEADER_END] = false;
                let NodeRole::Leading { leader, .. } = &mut self.nodes[n].role else {
                    unreachable!()
                };
                leader.on_disconnect(ConnId(conn), self.ens.now());
            }
            Pkt::Msg(m) => {
                let node = &mut self.nodes[n];
                let NodeRole::Leading { leader, .. } = &mut node.role else {
                    unreachable!()
                };
                let log = DiskLog {
                    history: &node.disk.history,
                    enabled: self.txn_log_sync,
                };
                let out = leader.on_message(ConnId(conn), m, self.ens.now(), &log);
                self.leader_out(n, out);
            }
            Pkt::Snapshot(_) => self.fail("a learner sent a snapshot stream"),
        }
    }

    fn deliver_to_learner(&mut self, conn: u64, n: usize, pkt: Pkt) {
        if !self.ens.members[n].alive {
            return;
        }
        let NodeRole::Learning {
            conn: c, learner, ..
        } = &mut self.nodes[n].role
        else {
            return;
        };
        if *c != conn {
            return;
        }
        let result = match pkt {
            Pkt::Close => Err(None),
            Pkt::Msg(m) => learner.on_message(m, self.ens.now()).map_err(Some),
            Pkt::Snapshot(body) => learner.on_snapshot(body, self.ens.now()).map_err(Some),
        };
        match result {
            Ok(actions) => self.learner_out(n, actions),
            Err(e) => self.learner_failed(n, e),
        }
    }

    fn learner_failed(&mut self, n: usize, e: Option<ZabError>) {
        let NodeRole::Learning { conn, .. } = self.nodes[n].role else {
            unreachable!()
        };
        self.ens.stats.learner_failures += 1;
        self.log(|| format!("sid {} learner fails: {e:?}", self.ens.sid(n)));
        match e {
            None | Some(ZabError::LeaderSilent { .. } | ZabError::EpochBehind { .. }) => {}
            Some(bug) => self.fail(format!(
                "sid {}: the learner failed: {bug}",
                self.ens.sid(n)
            )),
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stream.open[LEARNER_END] = false;
        }
        self.close_end(conn, LEARNER_END);
        self.look_again(n);
    }

    fn learner_out(&mut self, n: usize, actions: Vec<LearnerAction>) {
        for a in actions {
            let NodeRole::Learning { conn, .. } = self.nodes[n].role else {
                return;
            };
            match a {
                LearnerAction::Send(m) => self.conn_send(conn, LEARNER_END, Pkt::Msg(m)),
                LearnerAction::WriteAcceptedEpoch(e) => {
                    let d = &mut self.nodes[n].disk;
                    if e < d.accepted_epoch {
                        self.fail(format!("acceptedEpoch goes down to {e}"));
                    }
                    self.nodes[n].disk.accepted_epoch = e;
                }
                LearnerAction::WriteCurrentEpoch(e) => {
                    let d = &self.nodes[n].disk;
                    if e < d.current_epoch || e > d.accepted_epoch {
                        self.fail(format!("bad currentEpoch write {e}"));
                    }
                    self.nodes[n].disk.current_epoch = e;
                }
                LearnerAction::Truncate(z) => {
                    let r = self.nodes[n].disk.truncate(z);
                    let exact = self.ok(r);
                    self.rebuild_tree(n, "truncated");
                    if !exact {
                        // As the server does: its data ends below the TRUNC point, so it
                        // looks again and the next leader syncs it from there.
                        self.ens.stats.trunc_fallbacks += 1;
                        return self.learner_failed(n, None);
                    }
                }
                LearnerAction::LoadSnapshot { zxid, body } => {
                    let items = decode_snapshot(&body);
                    self.nodes[n].disk.load_snapshot(zxid, items);
                    self.rebuild_tree(n, "loaded a snapshot");
                }
                LearnerAction::Append(e) => self.disk_append(n, Zxid(e.header.zxid), id_of(&e)),
                LearnerAction::Apply(e) => self.apply(n, Zxid(e.header.zxid), id_of(&e)),
                LearnerAction::UpToDate { epoch } => {
                    self.nodes[n].serving = true;
                    self.check_serving_prefix(n, "reached UPTODATE");
                    let e = self.ens.election(n);
                    let (st, v) = (e.state(), e.current_vote());
                    e.answer_as(
                        st,
                        Vote {
                            peer_epoch: epoch,
                            ..v
                        },
                    );
                    self.log(|| format!("sid {} UPTODATE epoch {epoch}", self.ens.sid(n)));
                }
                LearnerAction::SyncDone => {
                    let Some(need) = self.conns.get_mut(&conn).unwrap().syncs.pop_front() else {
                        self.fail("SYNC without a forwarded sync");
                    };
                    let have = self.nodes[n].tree.last().map_or(Zxid::ZERO, |e| e.0);
                    if have < need {
                        self.fail(format!(
                            "sid {}: sync completed at {have}, before {need}",
                            self.ens.sid(n)
                        ));
                    }
                }
                LearnerAction::Revalidated { .. } => {}
            }
        }
    }

    fn leader_out(&mut self, n: usize, out: Vec<LeaderOutput>) {
        let mut work: VecDeque<LeaderOutput> = out.into();
        while let Some(o) = work.pop_front() {
            let NodeRole::Leading { gen, .. } = self.nodes[n].role else {
                return;
            };
            match o {
                LeaderOutput::Send { conn, msg } => {
                    match &msg {
                        QuorumMessage::Diff { .. } => self.ens.stats.diff += 1,
                        QuorumMessage::Trunc { .. } => self.ens.stats.trunc += 1,
                        QuorumMessage::Snap { .. } => self.ens.stats.snap += 1,
                        _ => {}
                    }
                    self.conn_send(conn.0, LEADER_END, Pkt::Msg(msg));
                }
                LeaderOutput::StreamSnapshot { conn, zxid } => {
                    let tree = &self.nodes[n].tree;
                    if tree.last().is_some_and(|e| e.0 > zxid) {
                        self.fail(format!("snapshot at {zxid} of a tree past it"));
                    }
                    let body = encode_snapshot(tree);
                    self.conn_send(conn.0, LEADER_END, Pkt::Snapshot(body));
                }
                LeaderOutput::Close { conn, reason } => {
                    if matches!(reason, CloseReason::Unexpected | CloseReason::NotALearner) {
                        self.fail(format!("the leader closed conn {} for {reason:?}", conn.0));
                    }
                    self.close_end(conn.0, LEADER_END);
                }
                LeaderOutput::WriteAcceptedEpoch(e) => {
                    if e <= self.nodes[n].disk.accepted_epoch {
                        self.fail(format!("leader acceptedEpoch {e} does not rise"));
                    }
                    self.nodes[n].disk.accepted_epoch = e;
                }
                LeaderOutput::WriteCurrentEpoch(e) => {
                    let d = &self.nodes[n].disk;
                    if e <= d.current_epoch || e > d.accepted_epoch {
                        self.fail(format!("bad leader currentEpoch write {e}"));
                    }
                    self.nodes[n].disk.current_epoch = e;
                }
                LeaderOutput::Established { epoch } => self.on_established(n, epoch),
                LeaderOutput::Commit { zxid } => {
                    let h = &self.nodes[n].disk.history;
                    let Ok(i) = h.binary_search_by_key(&zxid, |e| e.0) else {
                        self.fail(format!("the leader commits {zxid}, not in its log"));
                    };
                    let id = h[i].1;
                    self.record_commit(zxid, id);
                    self.apply(n, zxid, id);
                }
                LeaderOutput::Request { conn, request, .. } => {
                    if request.op_code() == Some(OpCode::Sync) {
                        let applied = self.nodes[n].tree.last().map_or(Zxid::ZERO, |e| e.0);
                        let NodeRole::Leading { leader, .. } = &mut self.nodes[n].role else {
                            unreachable!()
                        };
                        // SYNC follows the commit of what is outstanding now, or goes at once.
                        let need = if leader.outstanding() > 0 {
                            leader.last_proposed()
                        } else {
                            applied
                        };
                        let more = leader.sync(conn);
                        if let Some(c) = self.conns.get_mut(&conn.0) {
                            c.syncs.push_back(need);
                        }
                        work.extend(more);
                    } else {
                        let id = u64::from_be_bytes(request.body[..8].try_into().unwrap());
                        work.extend(self.propose(n, id));
                    }
                }
                LeaderOutput::Revalidate {
                    conn, session_id, ..
                } => {
                    let NodeRole::Leading { leader, .. } = &mut self.nodes[n].role else {
                        unreachable!()
                    };
                    work.extend(leader.revalidate_reply(conn, session_id, true));
                }
                LeaderOutput::Touch { .. } => {}
                LeaderOutput::StepDown(reason) => {
                    self.ens.stats.step_downs += 1;
                    self.log(|| format!("sid {} steps down: {reason:?}", self.ens.sid(n)));
                    if reason == StepDownReason::ZxidExhausted {
                        self.fail("zxid exhausted in a simulation");
                    }
                    self.close_leader_conns(n, gen);
                    self.look_again(n);
                    return;
                }
            }
        }
    }

    fn close_leader_conns(&mut self, n: usize, gen: u64) {
        let mine: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.stream.leader == n && c.gen == gen && c.stream.open[LEADER_END])
            .map(|(id, _)| *id)
            .collect();
        for id in mine {
            self.close_end(id, 1);
        }
    }

    /// Propose txn `id` at leader `n`, if it is established.
    fn propose(&mut self, n: usize, id: u64) -> Vec<LeaderOutput> {
        let NodeRole::Leading { leader, .. } = &mut self.nodes[n].role else {
            return Vec::new();
        };
        if !leader.is_established() {
            return Vec::new();
        }
        let z = leader.next_zxid();
        let out = match leader.propose(make_entry(z, id), self.ens.now()) {
            Ok(out) => out,
            Err(e) => self.fail(format!("propose {z}: {e}")),
        };
        self.ens.stats.writes += 1;
        let r = self.truth.proposed(z, id);
        self.ok(r);
        self.disk_append(n, z, id);
        out
    }

    // ---- members ------------------------------------------------------------------------------

    fn start(&mut self, n: usize) {
        let disk = &self.nodes[n].disk;
        let out = self.ens.start(n, disk.last_zxid(), disk.current_epoch);
        self.rebuild_tree(n, "restarts");
        let node = &mut self.nodes[n];
        node.role = NodeRole::Looking;
        node.serving = false;
        node.fsync_scheduled = false;
        let at = self.ens.now() + NODE_TICK_MS;
        self.ens
            .push_for(at, n, |node, incarnation| Ev::Tick { node, incarnation });
        self.log(|| format!("sid {} starts", self.ens.sid(n)));
        self.election_out(n, out);
        self.ens.reconnect_all(n);
    }

    fn crash(&mut self, n: usize) {
        let ends: Vec<(u64, usize)> = self
            .conns
            .iter()
            .flat_map(|(id, c)| {
                let mut v = Vec::new();
                if c.stream.learner == n && c.stream.open[LEARNER_END] {
                    v.push((*id, LEARNER_END));
                }
                if c.stream.leader == n && c.stream.open[LEADER_END] {
                    v.push((*id, LEADER_END));
                }
                v
            })
            .collect();
        for (id, end) in ends {
            self.close_end(id, end);
        }
        self.ens.crash(n);
        let node = &mut self.nodes[n];
        node.role = NodeRole::Looking;
        node.serving = false;
        node.tree.clear();
        let torn = node.disk.crash();
        self.ens.stats.torn_txns += torn as u64;
        if torn > 0 {
            self.ens.stats.torn_tails += 1;
        }
        self.log(|| format!("sid {} CRASHES (torn {torn})", self.ens.sid(n)));
    }

    fn on_connect(&mut self, n: usize) {
        let NodeRole::Connecting { leader, tries } = self.nodes[n].role else {
            return;
        };
        let up = self.ens.connected(n, leader);
        let gen = match &self.nodes[leader].role {
            NodeRole::Leading { leader: l, gen } if up && l.phase() != LeaderPhase::Stopped => {
                Some(*gen)
            }
            _ => None,
        };
        let Some(gen) = gen else {
            if tries + 1 < CONNECT_TRIES {
                self.connect(n, leader, tries + 1, CONNECT_RETRY_MS);
            } else {
                self.look_again(n);
            }
            return;
        };
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(
            id,
            Conn {
                stream: Stream::new(n, leader),
                gen,
                syncs: VecDeque::new(),
            },
        );
        if let NodeRole::Leading { leader: l, .. } = &mut self.nodes[leader].role {
            l.on_connect(ConnId(id), self.ens.now());
        }
        self.rebuild_tree(n, "connects");
        let node = &self.nodes[n];
        let cfg = LearnerConfig {
            my_id: self.ens.sid(n),
            kind: if self.ens.members[n].observer {
                LearnerKind::Observer
            } else {
                LearnerKind::Follower
            },
            timing: TIMING,
            config_version: 0,
        };
        let start = LearnerStart {
            accepted_epoch: node.disk.accepted_epoch,
            current_epoch: node.disk.current_epoch,
            last_zxid: node.disk.last_zxid(),
            durable_zxid: node.disk.durable_zxid(),
        };
        let (l, actions) = Learner::new(cfg, start, self.ens.now());
        self.nodes[n].role = NodeRole::Learning {
            leader,
            conn: id,
            learner: Box::new(l),
        };
        self.log(|| format!("sid {} connects to [{leader}] conn {id}", self.ens.sid(n)));
        self.learner_out(n, actions);
    }

    fn on_tick(&mut self, n: usize) {
        let now = self.ens.now();
        let out = self.ens.election(n).on_tick(now);
        self.election_out(n, out);
        match &mut self.nodes[n].role {
            NodeRole::Leading { leader, .. } => {
                let out = leader.on_tick(now);
                self.leader_out(n, out);
            }
            NodeRole::Learning { learner, .. } => match learner.on_tick(now) {
                Ok(a) => self.learner_out(n, a),
                Err(e) => self.learner_failed(n, Some(e)),
            },
            _ => {}
        }
    }

    fn on_fsync(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.fsync_scheduled = false;
        node.disk.durable_len = node.disk.history.len();
        let z = node.disk.durable_zxid();
        let now = self.ens.now();
        match &mut node.role {
            NodeRole::Leading { leader, .. } => {
                let out = leader.on_persisted(z, now);
                self.leader_out(n, out);
            }
            NodeRole::Learning { learner, .. } => {
                let a = learner.on_persisted(z, now);
                self.learner_out(n, a);
            }
            _ => {}
        }
    }

    fn client_write(&mut self) {
        let n = self.ens.rng.below(self.nodes.len() as u64) as usize;
        let id = self.next_id;
        self.next_id += 1;
        self.submit(n, id, true);
    }

    /// A client's write (or, now and then, sync) at member `n`; false if it was refused.
    fn submit(&mut self, n: usize, id: u64, may_sync: bool) -> bool {
        if !self.ens.members[n].alive {
            return false;
        }
        let sync = may_sync && self.ens.rng.permille(100);
        match &mut self.nodes[n].role {
            NodeRole::Leading { leader, .. } if leader.is_established() && !sync => {
                let out = self.propose(n, id);
                self.leader_out(n, out);
                true
            }
            NodeRole::Learning { learner, .. } if learner.is_serving() => {
                let request = ForwardedRequest {
                    session_id: n as i64 + 1,
                    cxid: id as i32,
                    op: if sync { OpCode::Sync } else { OpCode::SetData }.code(),
                    body: id.to_be_bytes().to_vec(),
                    authinfo: None,
                };
                let a = learner.forward(request).expect("serving");
                if sync {
                    self.ens.stats.syncs += 1;
                } else {
                    self.ens.stats.forwarded += 1;
                }
                self.learner_out(n, a);
                !sync
            }
            _ => false,
        }
    }

    // ---- faults -------------------------------------------------------------------------------

    fn fault(&mut self) {
        let total = self.nodes.len();
        match self.ens.rng.below(10) {
            0..=2 => {
                // Half the crashes hit the leader: the interesting ones.
                let leader = self
                    .nodes
                    .iter()
                    .position(|n| matches!(n.role, NodeRole::Leading { .. }));
                let n = match leader {
                    Some(l) if self.ens.rng.below(2) == 0 => l,
                    _ => self.ens.rng.below(total as u64) as usize,
                };
                if self.ens.members[n].alive {
                    self.crash(n);
                    let at = self.ens.now() + self.ens.rng.range(50, 4_000);
                    self.push(at, Ev::Start { node: n });
                }
            }
            3 | 4 => {
                let pairs = random_partition(&mut self.ens.rng, total);
                self.ens.stats.partitions += 1;
                self.log(|| format!("PARTITION {pairs:?}"));
                self.cut(pairs);
            }
            5 | 6 => {
                let (a, b) = random_link(&mut self.ens.rng, total);
                self.ens.stats.link_cuts += 1;
                self.log(|| format!("CUT {a}-{b}"));
                self.cut(vec![(a, b)]);
            }
            7 | 8 => {
                let open: Vec<u64> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.stream.is_open())
                    .map(|(id, _)| *id)
                    .collect();
                if !open.is_empty() {
                    let id = open[self.ens.rng.below(open.len() as u64) as usize];
                    self.ens.stats.resets += 1;
                    self.log(|| format!("RESET conn {id}"));
                    let now = self.ens.now();
                    let c = self.conns.get_mut(&id).unwrap();
                    self.ens.stats.dropped += c.stream.reset(now);
                    self.schedule_dir(id, LEARNER_END);
                    self.schedule_dir(id, LEADER_END);
                }
            }
            _ => {}
        }
        let at = self.ens.now() + self.ens.rng.range(self.fault_gap_ms.0, self.fault_gap_ms.1);
        self.push(at, Ev::Fault);
    }

    fn cut(&mut self, pairs: Vec<(usize, usize)>) {
        self.ens.links.cut(&pairs);
        let at = self.ens.now() + self.ens.rng.range(100, 5_000);
        self.push(at, Ev::Heal { pairs });
    }

    /// The link `a`-`b` is whole again: both ports reconnect.
    fn relink(&mut self, a: usize, b: usize) {
        self.ens.reconnect(a, b);
        let ids: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| Links::pair(c.stream.learner, c.stream.leader) == (a, b))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.schedule_dir(id, LEARNER_END);
            self.schedule_dir(id, LEADER_END);
        }
    }

    fn heal(&mut self, pairs: Vec<(usize, usize)>) {
        for p in pairs {
            if self.ens.links.heal(p) {
                self.relink(p.0, p.1);
            }
        }
    }

    fn end_faults(&mut self) {
        self.log(|| "END OF FAULTS".into());
        self.faults_on = false;
        for (a, b) in self.ens.calm() {
            self.relink(a, b);
        }
        for n in 0..self.nodes.len() {
            if !self.ens.members[n].alive {
                self.start(n);
            }
        }
    }

    // ---- the run ------------------------------------------------------------------------------

    /// The established leader every member serves under, if any.
    fn settled(&self) -> Option<usize> {
        let l = self.nodes.iter().position(
            |n| matches!(&n.role, NodeRole::Leading { leader, .. } if leader.is_established()),
        )?;
        self.nodes
            .iter()
            .enumerate()
            .all(|(i, n)| {
                i == l
                    || matches!(&n.role, NodeRole::Learning { leader, learner, .. }
                        if *leader == l && learner.is_serving())
            })
            .then_some(l)
    }

    /// After the faults: once settled, write through the leader and through learners, until
    /// every member applied all of them. Returns true when the run is over.
    fn liveness_step(&mut self) -> bool {
        if self.ens.now() > self.fault_end_ms + QUIET_CAP_MS {
            self.fail("no leader serving every member and committing new writes 120 s after the faults stopped");
        }
        if self.settled().is_none() {
            self.settled_since = None;
            return false;
        }
        let since = *self.settled_since.get_or_insert(self.ens.now());
        if self.ens.now() < since + SETTLE_MS {
            return false;
        }
        let stale = self.ens.now() > self.final_since + FINAL_RETRY_MS;
        if self.final_ids.is_empty() || stale {
            // A new batch (a lost one is retried with new txns: leadership may have moved).
            self.final_ids.clear();
            self.final_since = self.ens.now();
            for k in 0..FINAL_WRITES {
                let n = k % self.nodes.len();
                let id = self.next_id;
                self.next_id += 1;
                if self.submit(n, id, false) {
                    self.final_ids.push(id);
                }
            }
            return false;
        }
        let ids: BTreeSet<u64> = self.final_ids.iter().copied().collect();
        let done = self.nodes.iter().all(|n| {
            ids.iter()
                .all(|id| n.tree.iter().rev().take(64).any(|e| e.1 == *id))
        });
        if !done {
            return false;
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.tree != self.truth.committed() {
                self.fail(format!(
                    "[{i}] sid {} ends with {} txns, the committed sequence has {}",
                    self.ens.sid(i),
                    n.tree.len(),
                    self.truth.committed().len()
                ));
            }
        }
        true
    }

    /// Run until a leader serves every member and new writes commit everywhere; the run's
    /// figures. Panics with `seed N: ...` when an invariant breaks.
    pub fn run(mut self) -> Stats {
        while let Some((at, ev)) = self.ens.clock.pop() {
            self.ens.stats.events += 1;
            if self.ens.stats.events > MAX_EVENTS {
                self.fail("too many events");
            }
            if self.trace && !matches!(ev, Ev::Tick { .. } | Ev::Note { .. } | Ev::Dir { .. }) {
                println!("{at:>7} {ev:?}");
            }
            match ev {
                Ev::Note {
                    from,
                    to,
                    to_incarnation,
                    msg,
                } => {
                    if let Some(out) = self.ens.deliver(from, to, to_incarnation, msg) {
                        self.election_out(to, out);
                    }
                }
                Ev::Dir { conn, dir } => self.on_dir(conn, dir),
                Ev::Tick { node, incarnation } => {
                    if self.ens.current(node, incarnation) {
                        self.on_tick(node);
                        self.push(at + NODE_TICK_MS, Ev::Tick { node, incarnation });
                    }
                }
                Ev::Connect { node, incarnation } => {
                    if self.ens.current(node, incarnation) {
                        self.on_connect(node);
                    }
                }
                Ev::Fsync { node, incarnation } => {
                    if self.ens.current(node, incarnation) {
                        self.on_fsync(node);
                    }
                }
                Ev::Start { node } => {
                    if !self.ens.members[node].alive {
                        self.start(node);
                    }
                }
                Ev::ClientWrite => {
                    if self.faults_on {
                        self.client_write();
                        let next = at + self.ens.rng.range(10, 60);
                        self.push(next, Ev::ClientWrite);
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
            if !self.faults_on && self.liveness_step() {
                return self.ens.finish(at);
            }
        }
        self.fail("the event queue ran dry")
    }
}
