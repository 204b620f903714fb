//! Deterministic simulation of production members: 3 or 5 voters and an observer, each the
//! [`Member`] the server runs (its real `Core`, `DataTree`, election, Zab roles, txn and
//! snapshot encodings), over a simulated disk, network and clock, with faults, while clients
//! speak the client protocol to them. The clients' histories are judged at the end.
//!
//! ```text
//! disk      per member: the txn log (real encoded entries, read back for a learner's DIFF
//!           beyond the leader's window; durable only up to the last
//!           simulated fsync), the newest snapshot (real snapshot bytes, taken now and then
//!           from the member's tree or stored from a SNAP), the two epoch files. Storage jobs
//!           run after a disk latency; recovery decodes the snapshot and replays the log.
//!           Faults: a crash drops the unsynced tail; an fsync that fails stops the member
//!           (the server exits so); slow fsyncs.
//! network   election port as net.rs models it (loss, duplicates, one-slot queues, re-send
//!           on reconnect); quorum links FIFO per direction with random delay, each message
//!           encoded to a quorum packet and decoded again; partitions (halves, one member
//!           alone, a bridge member, one-way cuts) hold bytes until they heal; resets close
//!           a link at both ends
//! clocks    per member: a monotonic clock with its own offset and drift (±5%), a wall clock
//!           that faults step by up to a minute either way
//! clients   4 processes, one request at a time over a session to a random member: sync+read
//!           leaving a data watch, write, compare-and-set by version (setData, or a multi of
//!           check and setData) on 3 registers,
//!           sequential creates, an ephemeral per session and checks that it is there;
//!           reconnect elsewhere (a new session) when the member closes them
//! reconfig  in half the runs (`reconfigEnabled`), client 0 is the super user and now and then
//!           asks to remove a member, add one back (as participant or observer) or flip a
//!           member's role, never below two voters. A member keeps the configs it activates
//!           on its disk, as the dynamic config file, and starts from the last; a member a
//!           config left out starts as a joiner does, from the first config
//! read-only in a third of the runs (`readonlymode.enabled`), client 3 accepts a read-only
//!           server: what it reads there may be stale (left out of the histories), and a
//!           write it sends there must be refused
//! ```
//!
//! Checked: at most one established leader per epoch; one zxid names one txn in every log;
//! members that applied the same zxid hold trees with the same digest; a data watch fires
//! once, only if set, and before any read on its connection shows the change; a live
//! session's ephemeral is there; the registers' histories are linearizable (a final
//! sync+read of each is part of them, so an acknowledged write lost shows as a violation);
//! sequential names are unique, increase in real time, and every acknowledged one exists at
//! the end; after the faults, a leader emerges and serves (liveness). With reconfigs: every
//! member that activates a config version activates the same config; a reconfig's config is
//! activated only once its txn is durable on a quorum of the old config's voters and one of
//! the new config's. No read-only member serves a write.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use zooid_member::{Effect, Event, Job, LinkId, Member, MemberConfig, Recovered, Stored};
use zooid_node::core::Now;
use zooid_node::{Action, ConnId, CoreConfig, Input};
use zooid_proto::{
    Acl, ConnectRequest, ConnectResponse, CreateKind, CreateRequest, ErrorCode, MultiHeader,
    MultiOp, OpCode, Reader, Record, ReplyHeader, Request, RequestHeader, Stat, Txn, TxnEntry,
    TxnHeader, Writer,
};
use zooid_storage::snapshot::{FrozenSnapshot, Layout};
use zooid_tree::DataTree;
use zooid_zab::{
    ConfigMember, Epoch, Notification, QuorumMessage, QuorumVerifier, Sender, ServerId, Timing,
};

use crate::clock::Clock;
use crate::linear::{check_register, check_sequential, Call, Created, Op, Ret, Verdict};
use crate::net::ElectionPort;
use crate::rng::Rng;
use crate::stats::Stats;

const TIMING: Timing = Timing {
    tick_ms: 100,
    init_limit: 10,
    sync_limit: 5,
};
const MEMBER_TICK_MS: u64 = 50;
const CLIENTS: usize = 4;
const KEYS: usize = 3;
const SESSION_TIMEOUT_MS: i32 = 4_000;
/// A client gives up on an answer after this and closes its connection.
const CLIENT_PATIENCE_MS: u64 = 6_000;
/// After the faults: how long the ensemble has to serve the final reads.
const FINAL_WITHIN_MS: u64 = 60_000;
const MAX_EVENTS: u64 = 2_000_000;
/// The super user of the runs with reconfigs (`super:sim`).
const SUPER: (&str, &str) = ("super", "sim");
/// The client that accepts a read-only server in the runs with read-only mode.
const READ_ONLY_CLIENT: usize = 3;
const SEARCH_BUDGET: u64 = 2_000_000;

// ---- members ----------------------------------------------------------------------------------

/// A member's disk.
#[derive(Clone)]
struct Disk {
    /// (zxid, encoded TxnEntry), in log order.
    log: Vec<(i64, Vec<u8>)>,
    /// `log[..durable]` survives a crash.
    durable: usize,
    /// The newest snapshot: its zxid and file bytes.
    snapshot: Option<(i64, Vec<u8>)>,
    accepted: Epoch,
    current: Epoch,
    /// The last config activated (members, version, text): the dynamic config file.
    config: Option<(Vec<ConfigMember>, i64, Vec<u8>)>,
}

impl Disk {
    /// Recovery as at start-up: the snapshot, then the log after it.
    fn recover(&self) -> Recovered {
        let mut tree = match &self.snapshot {
            Some((z, bytes)) => {
                zooid_storage::snapshot::decode_stream(bytes, Path::new("simulated snapshot"), *z)
                    .expect("a snapshot the simulation wrote decodes")
                    .tree
            }
            None => DataTree::new(),
        };
        let from = self.snapshot.as_ref().map_or(0, |(z, _)| *z);
        let mut tail = Vec::new();
        for (z, bytes) in &self.log {
            let e = TxnEntry::decode(bytes).expect("a logged entry decodes");
            if *z > from && *z > tree.last_zxid() {
                tree.apply(&e.header, &e.txn);
            }
            tail.push(e);
        }
        let skip = tail.len().saturating_sub(zooid_member::RECENT_TXNS);
        tail.drain(..skip);
        Recovered {
            tree,
            tail,
            accepted_epoch: self.accepted,
            current_epoch: self.current,
        }
    }

    fn truncate_after(&mut self, zxid: i64) {
        self.log.retain(|(z, _)| *z <= zxid);
        self.durable = self.durable.min(self.log.len());
        if self.snapshot.as_ref().is_some_and(|(z, _)| *z > zxid) {
            self.snapshot = None;
        }
    }
}

struct Node {
    sid: ServerId,
    member: Option<Member>,
    incarnation: u64,
    disk: Disk,
    /// The job out, carried out when its latency has passed.
    job: Option<Job>,
    fsync_pending: bool,
    next_accept: LinkId,
    next_conn: ConnId,
    /// Open client connections: which client, in which of its connections.
    conns: BTreeMap<ConnId, (usize, u64)>,
    mono_offset: i64,
    /// Parts per thousand the monotonic clock runs fast (or slow, negative).
    drift_permille: i64,
    wall_offset: i64,
    /// Txns appended since the last snapshot, and after how many to take the next.
    since_snapshot: u64,
    snapshot_every: u64,
}

// ---- links ------------------------------------------------------------------------------------

enum Pkt {
    Msg(QuorumMessage),
    Snap(Vec<u8>),
    Close,
}

/// One end of a quorum link: what it sends to the other end.
struct End {
    peer: usize,
    peer_link: LinkId,
    peer_incarnation: u64,
    /// Who this end is, for the decoder at the other end.
    me: Sender,
    queue: VecDeque<Pkt>,
    pumping: bool,
    closed: bool,
}

// ---- clients ----------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Read(usize),
    Write(usize, u64),
    Cas(usize, i32, u64),
    /// multi(check version, setData): a compare-and-set in two ops.
    MultiCas(usize, i32, u64),
    Create,
    /// The session's own ephemeral, made first on each connection.
    CreateEphemeral,
    /// sync + exists of the session's ephemeral: a live session's must be there.
    CheckEphemeral,
    /// The final check's listing of the sequential nodes.
    List,
    /// A reconfig by the super user (its change is drawn when it is sent).
    Reconfig,
}

struct Client {
    /// The member and connection, while connected.
    at: Option<(usize, ConnId)>,
    /// Bumped by each new connection, so frames for an old one are dropped.
    gen: u64,
    connected: bool,
    xid: i32,
    /// What is outstanding: the op, when it was invoked, its xid, and its history index.
    pending: Option<(Want, u64, i32, Option<usize>)>,
    /// The last version this client read per register (what its CAS expects).
    versions: [i32; KEYS],
    /// Only the final reader runs after the faults.
    final_reads: Option<VecDeque<Want>>,
    /// Per register, the version a read left a data watch at on this connection, until
    /// the watch fires.
    armed: [Option<i32>; KEYS],
    /// This session's ephemeral, once created (None also while unknown).
    ephemeral: Option<String>,
    /// Whether the ephemeral was asked for on this connection.
    ephemeral_asked: bool,
    /// Connected to a read-only server: its reads may be stale, its writes must fail.
    read_only: bool,
}

#[derive(Debug)]
enum Ev {
    Start {
        node: usize,
    },
    Tick {
        node: usize,
        inc: u64,
    },
    Vote {
        from: usize,
        to: usize,
        inc: u64,
        msg: Notification,
    },
    LinkUp {
        node: usize,
        inc: u64,
        link: LinkId,
    },
    LinkDown {
        node: usize,
        inc: u64,
        link: LinkId,
        why: &'static str,
    },
    Pump {
        node: usize,
        link: LinkId,
    },
    Fsync {
        node: usize,
        inc: u64,
    },
    JobDone {
        node: usize,
        inc: u64,
    },
    /// A leader's read of older txns from its log for a learner's DIFF.
    LogRead {
        node: usize,
        inc: u64,
        link: LinkId,
        txns: Option<Vec<TxnEntry>>,
    },
    ToMember {
        node: usize,
        inc: u64,
        conn: ConnId,
        frame: Option<Vec<u8>>,
    },
    ToClient {
        client: usize,
        gen: u64,
        frame: Option<Vec<u8>>,
    },
    ClientStep {
        client: usize,
    },
    Fault,
    Heal,
    EndFaults,
}

/// One run.
pub struct Cluster {
    seed: u64,
    trace: bool,
    rng: Rng,
    clock: Clock<Ev>,
    nodes: Vec<Node>,
    port: ElectionPort,
    /// Directed cuts: (from, to) cannot deliver.
    cut: BTreeSet<(usize, usize)>,
    links: BTreeMap<(usize, LinkId), End>,
    clients: Vec<Client>,
    history: Vec<(usize, Op)>,
    created: Vec<Created>,
    final_values: Option<Vec<String>>,
    next_value: u64,
    max_delay_ms: u64,
    max_fsync_ms: u64,
    fsync_fail_permille: u64,
    fault_gap_ms: (u64, u64),
    faults_on: bool,
    fault_end_ms: u64,
    /// Established leaders by epoch.
    leaders: BTreeMap<Epoch, ServerId>,
    /// Tree digests by applied zxid, and who first had it.
    digests: BTreeMap<i64, (i64, ServerId)>,
    /// A hash of the txn each zxid names, as first logged anywhere.
    txns: BTreeMap<i64, u64>,
    /// A fault switched on to prove the checks catch it: fsync reports success and keeps
    /// nothing (a disk that acknowledges before the data is durable).
    lying_fsync: bool,
    /// `reconfigEnabled`, and client 0 reconfigures.
    reconfig: bool,
    /// `readonlymode.enabled`, and client 3 accepts a read-only server.
    read_only: bool,
    /// The leaders' in-memory committed window: small in some runs, so that learners behind
    /// it are synced from the log.
    commit_log_count: usize,
    /// The first config: every member starts from it (with reconfigs, or from its disk's).
    first_config: Vec<ConfigMember>,
    /// Every config version activated anywhere: a hash of its text, and its members.
    configs: BTreeMap<i64, (u64, Vec<ConfigMember>)>,
    stats: Stats,
}

/// A member's line in the configs of runs with reconfigs (the addresses are never dialed).
fn sim_member(sid: ServerId, observer: bool) -> ConfigMember {
    ConfigMember {
        sid,
        host: format!("10.0.0.{}", sid.0),
        quorum_port: 2888,
        election_port: 3888,
        observer,
        client: Some(String::from("0.0.0.0:2181")),
        more: Vec::new(),
    }
}

fn client_addr(client: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000 + client as u16))
}

fn key_path(k: usize) -> String {
    format!("/k{k}")
}

/// The data every member starts from: the registers (value 0, version 0) and the parents of
/// the sequential nodes and of the ephemerals, as a snapshot in epoch 0.
fn initial_snapshot() -> (i64, Vec<u8>) {
    let mut tree = DataTree::new();
    let paths: Vec<String> = (0..KEYS)
        .map(key_path)
        .chain([String::from("/q"), String::from("/e")])
        .collect();
    for (i, path) in paths.into_iter().enumerate() {
        let zxid = i as i64 + 1;
        let header = TxnHeader {
            session_id: 0,
            cxid: 0,
            zxid,
            time_ms: 1_700_000_000_000,
            op: OpCode::Create as i32,
        };
        let txn = Txn::Create {
            kind: CreateKind::Plain { create2: false },
            path,
            data: Some(b"0".to_vec()),
            acl: Acl::open_unsafe(),
            ephemeral: false,
            parent_cversion: zxid as i32,
        };
        tree.apply(&header, &txn);
    }
    let zxid = tree.last_zxid();
    (zxid, FrozenSnapshot::take(&tree, Layout::Zk38).encode())
}

impl Cluster {
    pub fn new(seed: u64, voters: usize, trace: bool) -> Cluster {
        let mut rng = Rng(seed ^ ((voters as u64) << 56) ^ 0xc1u64 << 40);
        let total = voters + 1;
        let snapshot = initial_snapshot();
        let nodes = (0..total)
            .map(|i| Node {
                sid: ServerId(i as i64 + 1),
                member: None,
                incarnation: 0,
                disk: Disk {
                    log: Vec::new(),
                    durable: 0,
                    snapshot: Some(snapshot.clone()),
                    accepted: Epoch(0),
                    current: Epoch(0),
                    config: None,
                },
                job: None,
                fsync_pending: false,
                next_accept: 1,
                next_conn: 1,
                conns: BTreeMap::new(),
                mono_offset: rng.below(1_000_000) as i64,
                drift_permille: rng.below(101) as i64 - 50,
                wall_offset: rng.below(10_000) as i64,
                since_snapshot: 0,
                snapshot_every: rng.range(20, 400),
            })
            .collect();
        let max_delay_ms = match rng.below(4) {
            0 => rng.range(1, 5),
            1 | 2 => rng.range(5, 30),
            _ => rng.range(30, 100),
        };
        let max_fsync_ms = [2, 10, 40, 150][rng.below(4) as usize];
        let fault_gap_ms = if rng.below(3) == 0 {
            (50, 800)
        } else {
            (300, 3_000)
        };
        let port = ElectionPort::new(max_delay_ms, rng.below(3) * 30, rng.below(3) * 20);
        let fault_end_ms = rng.range(3_000, 15_000);
        let fsync_fail_permille = rng.below(2) * 2;
        let reconfig = rng.below(2) == 0;
        let read_only = rng.below(3) == 0;
        let commit_log_count = if rng.below(2) == 0 {
            rng.range(2, 40) as usize
        } else {
            zooid_zab::DEFAULT_COMMIT_LOG_COUNT
        };
        // The voters, then one observer.
        let first_config: Vec<ConfigMember> = (0..total)
            .map(|i| sim_member(ServerId(i as i64 + 1), i == voters))
            .collect();
        let clients = (0..CLIENTS)
            .map(|_| Client {
                at: None,
                gen: 0,
                connected: false,
                xid: 1,
                pending: None,
                versions: [0; KEYS],
                final_reads: None,
                armed: [None; KEYS],
                ephemeral: None,
                ephemeral_asked: false,
                read_only: false,
            })
            .collect();
        let mut sim = Cluster {
            seed,
            trace,
            rng,
            clock: Clock::default(),
            nodes,
            port,
            cut: BTreeSet::new(),
            links: BTreeMap::new(),
            clients,
            history: Vec::new(),
            created: Vec::new(),
            final_values: None,
            next_value: 1,
            max_delay_ms,
            max_fsync_ms,
            fsync_fail_permille,
            fault_gap_ms,
            faults_on: true,
            fault_end_ms,
            leaders: BTreeMap::new(),
            digests: BTreeMap::new(),
            txns: BTreeMap::new(),
            lying_fsync: false,
            reconfig,
            read_only,
            commit_log_count,
            first_config,
            configs: BTreeMap::new(),
            stats: Stats::default(),
        };
        for node in 0..total {
            let at = sim.rng.below(500);
            sim.clock.push(at, Ev::Start { node });
        }
        for client in 0..CLIENTS {
            let at = sim.rng.range(500, 1_500);
            sim.clock.push(at, Ev::ClientStep { client });
        }
        let first = sim.rng.range(500, 2_000);
        sim.clock.push(first, Ev::Fault);
        sim.clock.push(sim.fault_end_ms, Ev::EndFaults);
        sim
    }

    /// Every member's fsync lies (see `lying_fsync`): runs must fail.
    pub fn with_lying_fsync(mut self) -> Cluster {
        self.lying_fsync = true;
        self
    }

    fn fail(&self, what: impl std::fmt::Display) -> ! {
        let mut dump = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let state = n.member.as_ref().map_or(String::from("down"), |m| {
                let f = m.facts(self.now_of(i));
                format!(
                    "{} serving={} last_zxid={:#x} digest={}",
                    f.peer_state,
                    m.serving(),
                    m.core().tree().last_zxid(),
                    m.core().tree().digest()
                )
            });
            dump.push_str(&format!(
                "\n  [{i}] sid {} inc {} log {} (durable {}) snapshot {:?} epochs {}/{}: {state}",
                n.sid,
                n.incarnation,
                n.disk.log.len(),
                n.disk.durable,
                n.disk.snapshot.as_ref().map(|(z, _)| format!("{z:#x}")),
                n.disk.accepted,
                n.disk.current,
            ));
        }
        panic!(
            "seed {}: t={} ms: {what}{dump}",
            self.seed,
            self.clock.now()
        );
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.trace {
            println!("{:>7} {}", self.clock.now(), what());
        }
    }

    /// Member `node`'s clocks now.
    fn now_of(&self, node: usize) -> Now {
        let n = &self.nodes[node];
        let t = self.clock.now() as i64;
        Now {
            mono_ms: n.mono_offset + t + t * n.drift_permille / 1000,
            wall_ms: 1_700_000_000_000 + n.wall_offset + t,
        }
    }

    fn alive(&self, node: usize, inc: u64) -> bool {
        let n = &self.nodes[node];
        n.member.is_some() && n.incarnation == inc
    }

    fn reachable(&self, from: usize, to: usize) -> bool {
        !self.cut.contains(&(from, to))
    }

    fn delay(&mut self) -> u64 {
        1 + self.rng.below(self.max_delay_ms)
    }

    fn index(&self, sid: ServerId) -> usize {
        (sid.0 - 1) as usize
    }

    // ---- the run ----------------------------------------------------------------------------

    pub fn run(mut self) -> Stats {
        let mut deadline = None;
        while let Some((at, ev)) = self.clock.pop() {
            self.stats.events += 1;
            if self.stats.events > MAX_EVENTS {
                self.fail("too many events: the run does not settle");
            }
            self.step(ev);
            if self.final_values.is_some() {
                self.stats.sim_ms = at;
                break;
            }
            if !self.faults_on {
                let d = *deadline.get_or_insert(at + FINAL_WITHIN_MS);
                if at > d {
                    self.fail("no final reads within a minute of the faults' end: no progress");
                }
            }
        }
        if self.final_values.is_none() {
            self.fail("the run ended without the final reads");
        }
        self.judge();
        self.stats.runs = 1;
        self.stats.dropped += self.port.lost;
        self.stats.duplicated = self.port.duplicated;
        self.stats
    }

    fn step(&mut self, ev: Ev) {
        if self.trace && !matches!(ev, Ev::Tick { .. } | Ev::Pump { .. }) {
            let what = describe(&ev);
            self.log(|| what);
        }
        match ev {
            Ev::Start { node } => self.start(node),
            Ev::Tick { node, inc } => {
                if !self.alive(node, inc) {
                    return;
                }
                let now = self.now_of(node);
                let m = self.nodes[node].member.as_mut().unwrap();
                m.handle(now, Event::Tick);
                if m.serving() && (self.clock.now() / MEMBER_TICK_MS).is_multiple_of(2) {
                    m.client(now, Input::Tick);
                }
                self.maybe_snapshot(node);
                self.after(node);
                let at = self.clock.now() + MEMBER_TICK_MS;
                self.clock.push(at, Ev::Tick { node, inc });
            }
            Ev::Vote { from, to, inc, msg } => {
                if !self.alive(to, inc) || !self.reachable(from, to) {
                    self.stats.dropped += 1;
                    return;
                }
                self.stats.delivered += 1;
                let from = self.nodes[from].sid;
                self.event(to, Event::Vote { from, n: msg });
            }
            Ev::LinkUp { node, inc, link } => {
                if self.alive(node, inc) {
                    self.event(node, Event::LinkUp { link });
                }
            }
            Ev::LinkDown {
                node,
                inc,
                link,
                why,
            } => {
                self.links.remove(&(node, link));
                if self.alive(node, inc) {
                    let why = why.to_string();
                    self.event(node, Event::LinkDown { link, why });
                }
            }
            Ev::Pump { node, link } => self.pump(node, link),
            Ev::Fsync { node, inc } => self.fsync(node, inc),
            Ev::JobDone { node, inc } => self.job_done(node, inc),
            Ev::LogRead {
                node,
                inc,
                link,
                txns,
            } => {
                if self.alive(node, inc) {
                    self.event(node, Event::LogRead { link, txns });
                }
            }
            Ev::ToMember {
                node,
                inc,
                conn,
                frame,
            } => {
                if !self.alive(node, inc) {
                    return;
                }
                let now = self.now_of(node);
                let m = self.nodes[node].member.as_mut().unwrap();
                match &frame {
                    Some(f) => m.client(now, Input::Frame { conn, frame: f }),
                    None => {
                        self.nodes[node].conns.remove(&conn);
                        let m = self.nodes[node].member.as_mut().unwrap();
                        m.client(now, Input::Disconnect { conn });
                    }
                }
                self.after(node);
            }
            Ev::ToClient { client, gen, frame } => {
                if self.clients[client].gen != gen {
                    return;
                }
                match frame {
                    Some(f) => self.client_frame(client, &f),
                    None => self.client_closed(client),
                }
            }
            Ev::ClientStep { client } => self.client_step(client),
            Ev::Fault => self.fault(),
            Ev::Heal => self.heal(),
            Ev::EndFaults => self.end_faults(),
        }
    }

    fn start(&mut self, node: usize) {
        if self.nodes[node].member.is_some() {
            return;
        }
        let data = self.nodes[node].disk.recover();
        let sid = self.nodes[node].sid;
        // The last config activated, if this member is in it; else the first, as a server a
        // reconfig will add starts (ZooKeeper refuses to start outside its config).
        let (config, version, text) = match &self.nodes[node].disk.config {
            Some((m, v, t)) if self.reconfig && m.iter().any(|m| m.sid == sid) => {
                (m.clone(), *v, t.clone())
            }
            _ if self.reconfig => {
                let text = zooid_zab::config_text::render(&self.first_config, 0).into_bytes();
                (self.first_config.clone(), 0, text)
            }
            // Without reconfigs the membership is fixed and not announced.
            _ => (self.first_config.clone(), 0, Vec::new()),
        };
        let cfg = MemberConfig {
            my_id: sid,
            timing: TIMING,
            config_text: text,
            config,
            config_version: version,
            core: CoreConfig {
                server_id: sid.0 as u8,
                reconfig_enabled: self.reconfig,
                super_digest: self.reconfig.then(|| {
                    let (user, password) = SUPER;
                    zooid_node::auth::digest_id(&format!("{user}:{password}"))
                }),
                ..CoreConfig::default()
            },
            read_only_mode: self.read_only,
            layout: Layout::Zk38,
            commit_log_count: self.commit_log_count,
        };
        let now = self.now_of(node);
        let member = match Member::start(cfg, data, now) {
            Ok(m) => m,
            Err(e) => self.fail(format!("member {node} cannot start: {e}")),
        };
        let n = &mut self.nodes[node];
        if n.incarnation > 0 {
            self.stats.restarts += 1;
        }
        n.member = Some(member);
        n.fsync_pending = false;
        n.job = None;
        let inc = n.incarnation;
        self.log(|| format!("start sid {}", node + 1));
        let at = self.clock.now() + MEMBER_TICK_MS;
        self.clock.push(at, Ev::Tick { node, inc });
        self.after(node);
        // New election connections: each side sends what it queued, or its last message.
        for other in 0..self.nodes.len() {
            if other != node && self.connected(node, other) {
                let now = self.clock.now();
                let sent = self.port.reconnect(&mut self.rng, now, node, other);
                self.votes_in_flight(sent);
            }
        }
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.nodes[a].member.is_some()
            && self.nodes[b].member.is_some()
            && self.reachable(a, b)
            && self.reachable(b, a)
    }

    fn votes_in_flight(&mut self, sent: Vec<crate::net::InFlight>) {
        for f in sent {
            let inc = self.nodes[f.to].incarnation;
            self.clock.push(
                f.at_ms,
                Ev::Vote {
                    from: f.from,
                    to: f.to,
                    inc,
                    msg: f.msg,
                },
            );
        }
    }

    fn event(&mut self, node: usize, ev: Event) {
        let now = self.now_of(node);
        self.nodes[node].member.as_mut().unwrap().handle(now, ev);
        self.after(node);
    }

    /// Carry out what member `node` asked, then check the invariants that concern it.
    fn after(&mut self, node: usize) {
        let now = self.now_of(node);
        let effects = match self.nodes[node].member.as_mut() {
            Some(m) => {
                m.flush(now);
                m.take_effects()
            }
            None => return,
        };
        for e in effects {
            self.effect(node, e);
            if self.nodes[node].member.is_none() {
                return;
            }
        }
        self.check_member(node);
    }

    fn effect(&mut self, node: usize, e: Effect) {
        let inc = self.nodes[node].incarnation;
        match e {
            Effect::Client(Action::Send { conn, frame }) => {
                if let Some(&(client, gen)) = self.nodes[node].conns.get(&conn) {
                    let at = self.clock.now() + 1;
                    let frame = Some(frame);
                    self.clock.push(at, Ev::ToClient { client, gen, frame });
                }
            }
            Effect::Reconfigured {
                members,
                version,
                text,
            } => self.reconfigured(node, members, version, text),
            Effect::ReadLog { link, from, to } => {
                // What the log holds from `from` on, as the server's reader returns it: the
                // range starting exactly at `from`, or nothing.
                let log = &self.nodes[node].disk.log;
                let txns: Vec<TxnEntry> = log
                    .iter()
                    .filter(|(z, _)| *z >= from.0 && *z <= to.0)
                    .map(|(_, bytes)| TxnEntry::decode(bytes).expect("a logged entry decodes"))
                    .collect();
                let txns = (txns.first().map(|e| e.header.zxid) == Some(from.0)).then_some(txns);
                if txns.is_some() {
                    self.stats.log_reads += 1;
                }
                let at = self.clock.now() + 1 + self.rng.below(self.max_fsync_ms);
                self.clock.push(
                    at,
                    Ev::LogRead {
                        node,
                        inc,
                        link,
                        txns,
                    },
                );
            }
            Effect::Client(Action::Close { conn }) => {
                if let Some(to) = self.nodes[node].conns.remove(&conn) {
                    let at = self.clock.now() + 1;
                    self.closed_at(at, to);
                    let frame = None;
                    self.clock.push(
                        at + 1,
                        Ev::ToMember {
                            node,
                            inc,
                            conn,
                            frame,
                        },
                    );
                }
            }
            Effect::Client(_) => {}
            Effect::CloseClients => {
                let at = self.clock.now() + 1;
                for (_, to) in std::mem::take(&mut self.nodes[node].conns) {
                    self.closed_at(at, to);
                }
            }
            Effect::Vote { to, msg } => {
                let to = self.index(to);
                let connected = self.connected(node, to);
                let now = self.clock.now();
                let sent = self
                    .port
                    .send(&mut self.rng, now, (node, to), connected, msg);
                self.votes_in_flight(sent);
            }
            Effect::Dial { link, to } => self.dial(node, link, self.index(to)),
            Effect::Link { link, msg } => self.send(node, link, Pkt::Msg(msg)),
            Effect::StreamSnapshot { link, snapshot } => {
                self.stats.snap += 1;
                self.send(node, link, Pkt::Snap(snapshot.encode_body()));
            }
            Effect::CloseLink { link } => {
                self.send(node, link, Pkt::Close);
                if let Some(end) = self.links.get_mut(&(node, link)) {
                    end.closed = true;
                }
            }
            Effect::Append { zxid, entry } => {
                let h = fnv(&entry);
                if *self.txns.entry(zxid).or_insert(h) != h {
                    self.fail(format!("sid {} logged another txn as {zxid:#x}", node + 1));
                }
                let n = &mut self.nodes[node];
                n.disk.log.push((zxid, entry));
                n.since_snapshot += 1;
                if !n.fsync_pending {
                    n.fsync_pending = true;
                    let at = self.clock.now() + 1 + self.rng.below(self.max_fsync_ms);
                    self.clock.push(at, Ev::Fsync { node, inc });
                }
            }
            Effect::Storage(job) => {
                if let Job::Truncate { .. } = &job {
                    self.stats.trunc += 1;
                }
                self.nodes[node].job = Some(job);
                let at = self.clock.now() + 1 + self.rng.below(self.max_fsync_ms);
                self.clock.push(at, Ev::JobDone { node, inc });
            }
        }
    }

    // ---- disk -------------------------------------------------------------------------------

    fn fsync(&mut self, node: usize, inc: u64) {
        if !self.alive(node, inc) {
            return;
        }
        if self.faults_on && self.rng.permille(self.fsync_fail_permille) {
            // The server stops rather than acknowledge anything it may lose.
            self.log(|| format!("sid {}: fsync failed; the member stops", node + 1));
            self.stats.failed_fsyncs += 1;
            return self.crash(node);
        }
        let n = &mut self.nodes[node];
        n.fsync_pending = false;
        if n.disk.durable == n.disk_len() {
            return;
        }
        if !self.lying_fsync {
            n.disk.durable = n.disk_len();
        }
        let zxid = n.disk.log.last().map_or(0, |(z, _)| *z);
        self.event(node, Event::Logged { zxid });
    }

    fn job_done(&mut self, node: usize, inc: u64) {
        if !self.alive(node, inc) {
            return;
        }
        let Some(job) = self.nodes[node].job.take() else {
            return;
        };
        let disk = &mut self.nodes[node].disk;
        let quiesce = !matches!(job, Job::WriteEpoch { .. });
        if quiesce {
            // Everything appended is made durable first; no Logged follows for it.
            if !self.lying_fsync {
                disk.durable = disk.log.len();
            }
            self.nodes[node].fsync_pending = false;
        }
        let disk = &mut self.nodes[node].disk;
        let stored = match job {
            Job::WriteEpoch { file, epoch } => {
                match file {
                    zooid_member::EpochFile::Accepted => disk.accepted = epoch,
                    zooid_member::EpochFile::Current => disk.current = epoch,
                }
                Stored::Done
            }
            Job::Reload => Stored::Data(Box::new(disk.recover())),
            Job::Truncate { zxid } => {
                disk.truncate_after(zxid.0);
                Stored::Data(Box::new(disk.recover()))
            }
            Job::StoreSnapshot { zxid, body } => {
                match zooid_storage::sync::frame_sync_snapshot(&body, zxid.0, Layout::Zk38) {
                    Ok((stream, _)) => {
                        disk.snapshot = Some((zxid.0, stream));
                        disk.truncate_after(zxid.0);
                        // The log before the snapshot is of no use to recovery now.
                        disk.log.clear();
                        disk.durable = 0;
                        Stored::Data(Box::new(disk.recover()))
                    }
                    Err(e) => Stored::Failed(format!("cannot store the leader's snapshot: {e}")),
                }
            }
        };
        self.event(node, Event::Stored(stored));
    }

    /// Now and then a member writes a snapshot of its tree, as the server does every
    /// snapCount txns; recovery then starts from it.
    fn maybe_snapshot(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        let Some(m) = n.member.as_ref() else { return };
        if n.since_snapshot < n.snapshot_every || m.waiting_on_storage() || !m.serving() {
            return;
        }
        n.since_snapshot = 0;
        let tree = m.core().tree();
        let zxid = tree.last_zxid();
        n.disk.snapshot = Some((zxid, FrozenSnapshot::take(tree, Layout::Zk38).encode()));
        self.stats.snapshots += 1;
    }

    fn crash(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        if n.member.take().is_none() {
            return;
        }
        n.incarnation += 1;
        n.job = None;
        n.fsync_pending = false;
        let lost = n.disk.log.len() - n.disk.durable;
        if lost > 0 {
            self.stats.torn_tails += 1;
            self.stats.torn_txns += lost as u64;
        }
        n.disk.log.truncate(n.disk.durable);
        let conns = std::mem::take(&mut n.conns);
        self.stats.crashes += 1;
        self.log(|| format!("crash sid {} (lost {lost} unsynced txns)", node + 1));
        let at = self.clock.now() + 1;
        for (_, to) in conns {
            self.closed_at(at, to);
        }
        // Its sockets close: the peers see their links end (once the network lets them).
        let mine: Vec<LinkId> = self
            .links
            .range((node, 0)..(node + 1, 0))
            .map(|(&(_, l), _)| l)
            .collect();
        for link in mine {
            if let Some(end) = self.links.get_mut(&(node, link)) {
                end.queue.clear();
            }
            self.send(node, link, Pkt::Close);
        }
        self.port.forget(node);
        let at = self.clock.now() + self.rng.range(100, 3_000);
        self.clock.push(at, Ev::Start { node });
    }

    /// Member `node`'s closing of a client connection reaches the client at `at`.
    fn closed_at(&mut self, at: u64, (client, gen): (usize, u64)) {
        let frame = None;
        self.clock.push(at, Ev::ToClient { client, gen, frame });
    }

    /// `node`'s link ends at `at`, for its incarnation `inc`.
    fn link_down_at(&mut self, at: u64, node: usize, inc: u64, link: LinkId, why: &'static str) {
        self.clock.push(
            at,
            Ev::LinkDown {
                node,
                inc,
                link,
                why,
            },
        );
    }

    // ---- quorum links -----------------------------------------------------------------------

    fn dial(&mut self, node: usize, link: LinkId, to: usize) {
        let inc = self.nodes[node].incarnation;
        if self.nodes[to].member.is_none() || !self.reachable(node, to) || !self.reachable(to, node)
        {
            let at = self.clock.now() + self.rng.range(20, 400);
            self.link_down_at(at, node, inc, link, "cannot connect");
            return;
        }
        let accepted = self.nodes[to].next_accept;
        self.nodes[to].next_accept += 1;
        let to_inc = self.nodes[to].incarnation;
        let end = |peer, peer_link, peer_incarnation, me| End {
            peer,
            peer_link,
            peer_incarnation,
            me,
            queue: VecDeque::new(),
            pumping: false,
            closed: false,
        };
        self.links
            .insert((node, link), end(to, accepted, to_inc, Sender::Learner));
        self.links
            .insert((to, accepted), end(node, link, inc, Sender::Leader));
        let d1 = self.delay();
        let d2 = self.delay();
        let now = self.clock.now();
        let up = |node, inc, link| Ev::LinkUp { node, inc, link };
        self.clock.push(now + d1, up(to, to_inc, accepted));
        self.clock.push(now + d1 + d2, up(node, inc, link));
    }

    fn send(&mut self, node: usize, link: LinkId, pkt: Pkt) {
        let Some(end) = self.links.get_mut(&(node, link)) else {
            return;
        };
        if end.closed {
            return;
        }
        end.queue.push_back(pkt);
        if !end.pumping {
            end.pumping = true;
            let at = self.clock.now() + 1 + self.rng.below(self.max_delay_ms);
            self.clock.push(at, Ev::Pump { node, link });
        }
    }

    /// Deliver the next packet `node` sent on `link`, if the network lets it through.
    fn pump(&mut self, node: usize, link: LinkId) {
        let Some(end) = self.links.get(&(node, link)) else {
            return;
        };
        let (peer, peer_link, peer_inc, me) =
            (end.peer, end.peer_link, end.peer_incarnation, end.me);
        if !self.reachable(node, peer) {
            // The bytes wait in the sender's buffers until the network heals.
            let at = self.clock.now() + 100;
            self.clock.push(at, Ev::Pump { node, link });
            return;
        }
        if !self.alive(peer, peer_inc) {
            // The other end is gone: this one learns it (a reset).
            self.links.remove(&(node, link));
            if self.nodes[node].member.is_some() {
                let why = "connection reset";
                self.event(
                    node,
                    Event::LinkDown {
                        link,
                        why: why.into(),
                    },
                );
            }
            return;
        }
        let end = self.links.get_mut(&(node, link)).unwrap();
        let Some(pkt) = end.queue.pop_front() else {
            end.pumping = false;
            return;
        };
        if end.queue.is_empty() {
            end.pumping = false;
        } else {
            let at = self.clock.now() + 1;
            self.clock.push(at, Ev::Pump { node, link });
        }
        match pkt {
            Pkt::Msg(msg) => {
                // Through the wire format and back, as the sockets carry it.
                let packet = msg.to_packet();
                let msg = match QuorumMessage::decode(&packet, me) {
                    Ok(m) => m,
                    Err(e) => self.fail(format!("a quorum message does not decode: {e}")),
                };
                if self.trace {
                    let (from, to) = (self.nodes[node].sid, self.nodes[peer].sid);
                    let what = format!("{:?} {:#x}", msg.packet_type(), packet.zxid.0);
                    self.log(|| format!("{from} -> {to}: {what}"));
                }
                self.event(
                    peer,
                    Event::LinkMessage {
                        link: peer_link,
                        msg,
                    },
                );
            }
            Pkt::Snap(body) => self.event(
                peer,
                Event::LinkSnapshot {
                    link: peer_link,
                    body,
                },
            ),
            Pkt::Close => {
                self.links.remove(&(node, link));
                self.links.remove(&(peer, peer_link));
                let why = String::from("closed by the peer");
                self.event(
                    peer,
                    Event::LinkDown {
                        link: peer_link,
                        why,
                    },
                );
            }
        }
    }

    // ---- faults -----------------------------------------------------------------------------

    fn fault(&mut self) {
        if !self.faults_on {
            return;
        }
        let total = self.nodes.len();
        match self.rng.below(10) {
            0..=2 => {
                let node = self.rng.below(total as u64) as usize;
                self.crash(node);
            }
            3 | 4 => {
                // Two sides.
                let mut side: Vec<bool> = (0..total).map(|_| self.rng.below(2) == 0).collect();
                if side.iter().all(|&s| s) || side.iter().all(|&s| !s) {
                    side[0] = !side[0];
                }
                let bridge =
                    (self.rng.below(4) == 0).then(|| self.rng.below(total as u64) as usize);
                for a in 0..total {
                    for b in 0..total {
                        if side[a] != side[b] && Some(a) != bridge && Some(b) != bridge {
                            self.cut.insert((a, b));
                        }
                    }
                }
                self.stats.partitions += 1;
                self.schedule_heal();
            }
            5 => {
                // One member alone.
                let x = self.rng.below(total as u64) as usize;
                for o in 0..total {
                    if o != x {
                        self.cut.insert((x, o));
                        self.cut.insert((o, x));
                    }
                }
                self.stats.partitions += 1;
                self.schedule_heal();
            }
            6 => {
                // One way only.
                let a = self.rng.below(total as u64) as usize;
                let b = (a + 1 + self.rng.below(total as u64 - 1) as usize) % total;
                self.cut.insert((a, b));
                self.stats.link_cuts += 1;
                self.schedule_heal();
            }
            7 => {
                // A quorum link reset at both ends.
                let keys: Vec<(usize, LinkId)> = self.links.keys().copied().collect();
                if !keys.is_empty() {
                    let (node, link) = keys[self.rng.below(keys.len() as u64) as usize];
                    self.reset(node, link);
                }
            }
            8 => {
                // A wall clock steps.
                let node = self.rng.below(total as u64) as usize;
                let step = self.rng.range(1_000, 60_000) as i64;
                self.nodes[node].wall_offset += if self.rng.below(2) == 0 { step } else { -step };
                self.stats.clock_steps += 1;
            }
            _ => {
                // A slow disk for a while.
                self.max_fsync_ms = [2, 10, 40, 150, 600][self.rng.below(5) as usize];
                self.stats.slow_disks += 1;
            }
        }
        let (lo, hi) = self.fault_gap_ms;
        let at = self.clock.now() + self.rng.range(lo, hi);
        self.clock.push(at, Ev::Fault);
    }

    fn reset(&mut self, node: usize, link: LinkId) {
        let Some(end) = self.links.remove(&(node, link)) else {
            return;
        };
        self.links.remove(&(end.peer, end.peer_link));
        self.stats.resets += 1;
        let at = self.clock.now() + 1;
        let why = "connection reset";
        let inc = self.nodes[node].incarnation;
        self.link_down_at(at, node, inc, link, why);
        self.link_down_at(at, end.peer, end.peer_incarnation, end.peer_link, why);
    }

    fn schedule_heal(&mut self) {
        let at = self.clock.now() + self.rng.range(300, 5_000);
        self.clock.push(at, Ev::Heal);
    }

    fn heal(&mut self) {
        let was = std::mem::take(&mut self.cut);
        let total = self.nodes.len();
        for a in 0..total {
            for b in a + 1..total {
                if (was.contains(&(a, b)) || was.contains(&(b, a))) && self.connected(a, b) {
                    let now = self.clock.now();
                    let sent = self.port.reconnect(&mut self.rng, now, a, b);
                    self.votes_in_flight(sent);
                }
            }
        }
    }

    fn end_faults(&mut self) {
        self.faults_on = false;
        self.port.calm();
        self.heal();
        self.max_fsync_ms = self.max_fsync_ms.min(40);
        for node in 0..self.nodes.len() {
            if self.nodes[node].member.is_none() {
                let at = self.clock.now() + 1;
                self.clock.push(at, Ev::Start { node });
            }
        }
        self.log(|| String::from("faults end"));
        // Client 0 makes the final reads once the ensemble serves again.
        let mut reads: VecDeque<Want> = (0..KEYS).map(Want::Read).collect();
        reads.push_back(Want::List);
        self.clients[0].final_reads = Some(reads);
    }

    // ---- invariants -------------------------------------------------------------------------

    fn check_member(&mut self, node: usize) {
        let Some(m) = self.nodes[node].member.as_ref() else {
            return;
        };
        let sid = self.nodes[node].sid;
        if let Some(epoch) = m.leading_epoch() {
            match self.leaders.get(&epoch) {
                Some(&other) if other != sid => self.fail(format!(
                    "two leaders established in epoch {epoch}: {other} and {sid}"
                )),
                Some(_) => {}
                None => {
                    self.stats.elections += 1;
                    self.leaders.insert(epoch, sid);
                }
            }
        }
        if m.waiting_on_storage() || !m.in_role() {
            return;
        }
        let tree = m.core().tree();
        let (zxid, digest) = (tree.last_zxid(), tree.digest());
        match self.digests.get(&zxid) {
            Some(&(d, other)) if d != digest => self.fail(format!(
                "at zxid {zxid:#x} {sid}'s tree digest {digest} differs from {other}'s {d}"
            )),
            Some(_) => {}
            None => {
                self.digests.insert(zxid, (digest, sid));
            }
        }
    }

    /// Judge the clients' histories.
    fn judge(&mut self) {
        for k in 0..KEYS {
            let ops: Vec<Op> = self
                .history
                .iter()
                .filter(|(key, _)| *key == k)
                .map(|(_, o)| *o)
                .collect();
            self.stats.ops_checked += ops.len() as u64;
            match check_register(&ops, (0, 0), SEARCH_BUDGET) {
                Verdict::Linearizable => {}
                Verdict::Undecided => self.stats.undecided += 1,
                Verdict::Violation(why) => self.fail(format!("register {k}: {why}")),
            }
        }
        if let Err(why) = check_sequential(&self.created) {
            self.fail(why);
        }
        let listed: BTreeSet<i64> = self
            .final_values
            .iter()
            .flatten()
            .filter_map(|name| name.rsplit('-').next()?.parse().ok())
            .collect();
        for c in &self.created {
            if !listed.contains(&c.seq) {
                self.fail(format!(
                    "the acknowledged sequential create {:?} is gone at the end",
                    c
                ));
            }
        }
        self.stats.ops_checked += self.created.len() as u64;
    }

    // ---- clients ----------------------------------------------------------------------------

    /// A member activated a config: the same text for one version everywhere, and a
    /// reconfig's only once durable on a quorum of the old voters and of the new.
    fn reconfigured(
        &mut self,
        node: usize,
        members: Vec<ConfigMember>,
        version: i64,
        text: Vec<u8>,
    ) {
        let hash = fnv(&text);
        let sid = self.nodes[node].sid;
        self.log(|| format!("{sid} activates config {version:#x}"));
        match self.configs.get(&version) {
            Some((h, _)) if *h != hash => self.fail(format!(
                "two configs with version {version:#x}; {sid} activates {}",
                String::from_utf8_lossy(&text)
            )),
            Some(_) => {}
            None => {
                let is_txn = version & 0xffff_ffff != 0;
                let old = self
                    .configs
                    .range(..version)
                    .next_back()
                    .map(|(_, (_, m))| m.clone())
                    .unwrap_or_else(|| self.first_config.clone());
                if is_txn {
                    let holders: BTreeSet<ServerId> = self
                        .nodes
                        .iter()
                        .filter(|n| {
                            n.disk.log[..n.disk.durable]
                                .iter()
                                .any(|(z, _)| *z == version)
                                || n.disk.snapshot.as_ref().is_some_and(|(z, _)| *z >= version)
                        })
                        .map(|n| n.sid)
                        .collect();
                    for (which, m) in [("old", &old), ("new", &members)] {
                        let q = QuorumVerifier::of_members(m).expect("configs keep voters");
                        if !q.has_quorum(&holders) {
                            self.fail(format!(
                                "config {version:#x} activated by {sid} while its txn is durable \
                                 only on {holders:?}, not a quorum of the {which} voters {:?}",
                                q.voters()
                            ));
                        }
                    }
                    self.stats.reconfigs += 1;
                }
                self.configs.insert(version, (hash, members.clone()));
            }
        }
        self.nodes[node].disk.config = Some((members, version, text));
    }

    /// The next reconfig's change, from the newest config activated: remove a member, add
    /// one back, or flip one's role, keeping two voters.
    fn draw_reconfig(&mut self) -> (Option<String>, Option<String>) {
        let current = self
            .configs
            .values()
            .next_back()
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| self.first_config.clone());
        let voters = current.iter().filter(|m| !m.observer).count();
        let sid = ServerId(self.rng.range(1, self.nodes.len() as u64) as i64);
        let line = |observer: bool| {
            let m = sim_member(sid, observer);
            let role = if observer { "observer" } else { "participant" };
            format!(
                "server.{}={}:{}:{}:{role};{}",
                sid.0,
                m.host,
                m.quorum_port,
                m.election_port,
                m.client.unwrap_or_default()
            )
        };
        match current.iter().find(|m| m.sid == sid) {
            None => (Some(line(self.rng.below(3) == 0)), None),
            Some(m) if m.observer || voters > 2 => {
                if self.rng.below(2) == 0 {
                    (None, Some(sid.0.to_string()))
                } else {
                    (Some(line(!m.observer)), None)
                }
            }
            // One of the last two voters: the same line again, a new version of the same
            // membership.
            Some(_) => (Some(line(false)), None),
        }
    }

    fn client_step(&mut self, client: usize) {
        let c = &self.clients[client];
        if c.pending.is_some() {
            return;
        }
        if !self.faults_on && c.final_reads.is_none() && self.final_values.is_none() {
            // The other clients rest after the faults.
            return;
        }
        if c.at.is_none() {
            return self.client_connect(client);
        }
        if !c.connected {
            return;
        }
        let want = if let Some(reads) = &self.clients[client].final_reads {
            match reads.front() {
                Some(w) => *w,
                None => return,
            }
        } else if !self.clients[client].ephemeral_asked {
            Want::CreateEphemeral
        } else if client == 0 && self.reconfig && self.rng.below(12) == 0 {
            Want::Reconfig
        } else {
            let key = self.rng.below(KEYS as u64) as usize;
            match self.rng.below(22) {
                0..=7 => Want::Read(key),
                8..=11 => {
                    self.next_value += 1;
                    Want::Write(key, self.next_value)
                }
                12..=14 => {
                    self.next_value += 1;
                    let version = self.clients[client].versions[key];
                    Want::Cas(key, version, self.next_value)
                }
                15 | 16 => {
                    self.next_value += 1;
                    let version = self.clients[client].versions[key];
                    Want::MultiCas(key, version, self.next_value)
                }
                17..=19 => Want::Create,
                _ if self.clients[client].ephemeral.is_some() => Want::CheckEphemeral,
                _ => Want::Read(key),
            }
        };
        self.client_send(client, want);
    }

    fn client_connect(&mut self, client: usize) {
        let alive: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].member.is_some())
            .collect();
        if alive.is_empty() {
            let at = self.clock.now() + 200;
            self.clock.push(at, Ev::ClientStep { client });
            return;
        }
        let node = alive[self.rng.below(alive.len() as u64) as usize];
        let conn = self.nodes[node].next_conn;
        self.nodes[node].next_conn += 1;
        let c = &mut self.clients[client];
        c.gen += 1;
        c.at = Some((node, conn));
        c.connected = false;
        c.armed = [None; KEYS];
        c.ephemeral = None;
        c.ephemeral_asked = false;
        let gen = c.gen;
        self.nodes[node].conns.insert(conn, (client, gen));
        let now = self.now_of(node);
        let m = self.nodes[node].member.as_mut().unwrap();
        m.client(
            now,
            Input::Connect {
                conn,
                addr: client_addr(client),
            },
        );
        let frame = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: SESSION_TIMEOUT_MS,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(self.read_only && client == READ_ONLY_CLIENT),
        }
        .encode();
        let mut frames = vec![frame];
        if client == 0 && self.reconfig {
            // The super user, right after the ConnectRequest (its answer has xid -4).
            let mut w = Writer::new();
            RequestHeader {
                xid: -4,
                op: OpCode::Auth as i32,
            }
            .write(&mut w);
            let (user, password) = SUPER;
            Request::Auth(zooid_proto::AuthPacket {
                auth_type: 0,
                scheme: String::from("digest"),
                auth: format!("{user}:{password}").into_bytes(),
            })
            .encode_body(&mut w);
            frames.push(w.into_inner());
        }
        for frame in frames {
            if self.nodes[node].conns.contains_key(&conn) {
                let m = self.nodes[node].member.as_mut().unwrap();
                m.client(
                    now,
                    Input::Frame {
                        conn,
                        frame: &frame,
                    },
                );
            }
        }
        self.after(node);
    }

    fn client_send(&mut self, client: usize, want: Want) {
        let Some((node, conn)) = self.clients[client].at else {
            return;
        };
        let now_ms = self.clock.now();
        let mut frames = Vec::new();
        let change = match want {
            Want::Reconfig => self.draw_reconfig(),
            _ => (None, None),
        };
        let c = &mut self.clients[client];
        let mut req = |r: Request, c: &mut Client| {
            let xid = c.xid;
            c.xid += 1;
            let mut w = Writer::new();
            RequestHeader {
                xid,
                op: r.op() as i32,
            }
            .write(&mut w);
            r.encode_body(&mut w);
            frames.push(w.into_inner());
            xid
        };
        let set = |k: usize, value: u64, version: i32| Request::SetData {
            path: key_path(k),
            data: Some(value.to_string().into_bytes()),
            version,
        };
        let create = |path: String, flags: i32| {
            Request::Create(CreateRequest {
                op: OpCode::Create,
                path,
                data: Some(Vec::new()),
                acl: Acl::open_unsafe(),
                flags,
                ttl: None,
            })
        };
        let (xid, op) = match want {
            Want::Read(k) => {
                // sync, then getData: the read is ordered after every write acknowledged
                // before the sync was sent.
                let path = key_path(k);
                req(Request::Sync { path: path.clone() }, c);
                let xid = req(Request::GetData { path, watch: true }, c);
                (xid, Some((k, Call::Read)))
            }
            Want::Write(k, v) => (req(set(k, v, -1), c), Some((k, Call::Write(v)))),
            Want::Cas(k, version, value) => {
                let call = Call::Cas { version, value };
                (req(set(k, value, version), c), Some((k, call)))
            }
            Want::MultiCas(k, version, value) => {
                let path = key_path(k);
                let r = Request::Multi(vec![
                    MultiOp::Check {
                        path: path.clone(),
                        version,
                    },
                    MultiOp::SetData {
                        path,
                        data: Some(value.to_string().into_bytes()),
                        version: -1,
                    },
                ]);
                let call = Call::Cas { version, value };
                (req(r, c), Some((k, call)))
            }
            Want::Create => (req(create(String::from("/q/n-"), 2), c), None),
            Want::CreateEphemeral => {
                c.ephemeral_asked = true;
                let path = format!("/e/c{client}-{}", c.gen);
                (req(create(path, 1), c), None)
            }
            Want::CheckEphemeral => {
                let path = c.ephemeral.clone().unwrap_or_default();
                req(Request::Sync { path: path.clone() }, c);
                (req(Request::Exists { path, watch: false }, c), None)
            }
            Want::List => {
                let r = Request::GetChildren {
                    path: String::from("/q"),
                    watch: false,
                };
                (req(r, c), None)
            }
            Want::Reconfig => {
                let (joining, leaving) = change;
                let r = Request::Reconfig {
                    joining,
                    leaving,
                    new_members: None,
                    config_id: -1,
                };
                (req(r, c), None)
            }
        };
        // A read-only server's answers are not part of the linearizable history.
        let op = op.filter(|_| !self.clients[client].read_only);
        let index = op.map(|(k, call)| {
            self.history.push((
                k,
                Op {
                    client,
                    call,
                    ret: Ret::Unknown,
                    start: now_ms,
                    end: 0,
                },
            ));
            self.history.len() - 1
        });
        let c = &mut self.clients[client];
        c.pending = Some((want, now_ms, xid, index));
        let inc = self.nodes[node].incarnation;
        for frame in frames {
            let at = now_ms + 1;
            self.clock.push(
                at,
                Ev::ToMember {
                    node,
                    inc,
                    conn,
                    frame: Some(frame),
                },
            );
        }
        // Give up on an answer that does not come.
        let gen = c.gen;
        let at = now_ms + CLIENT_PATIENCE_MS;
        self.clock.push(
            at,
            Ev::ToClient {
                client,
                gen,
                frame: Some(Vec::new()),
            },
        );
    }

    fn client_frame(&mut self, client: usize, frame: &[u8]) {
        if frame.is_empty() {
            // Patience ran out for this connection's request, if it is still outstanding.
            if let Some((_, since, _, _)) = self.clients[client].pending {
                if self.clock.now() >= since + CLIENT_PATIENCE_MS {
                    self.client_hang_up(client);
                }
            }
            return;
        }
        let body = &frame[4..];
        if !self.clients[client].connected {
            let resp = ConnectResponse::decode(body)
                .ok()
                .filter(|r| r.session_id != 0);
            let Some(resp) = resp else {
                return self.client_hang_up(client);
            };
            self.clients[client].connected = true;
            self.clients[client].read_only = resp.read_only == Some(true);
            let at = self.clock.now() + 1;
            self.clock.push(at, Ev::ClientStep { client });
            return;
        }
        let mut r = Reader::new(body);
        let Ok(h) = ReplyHeader::read(&mut r) else {
            self.fail(format!("client {client}: a reply without a header"));
        };
        if h.xid == -1 {
            return self.client_notified(client, &mut r);
        }
        let Some((want, _, xid, index)) = self.clients[client].pending else {
            return;
        };
        if h.xid != xid {
            // A sync's answer, a ping's, or a notification.
            return;
        }
        let now = self.clock.now();
        let err = h.err;
        let write = matches!(
            want,
            Want::Write(..)
                | Want::Cas(..)
                | Want::MultiCas(..)
                | Want::Create
                | Want::CreateEphemeral
        );
        if self.clients[client].read_only && write {
            if err == ErrorCode::Ok as i32 {
                let (node, _) = self.clients[client].at.unwrap_or_default();
                let sid = self.nodes[node].sid;
                self.fail(format!(
                    "client {client}: read-only member {sid} served a write ({want:?})"
                ));
            }
            self.stats.read_only_refusals += 1;
        }
        let ret = match want {
            Want::Read(k) => {
                if err == ErrorCode::Ok as i32 {
                    let data = r.read_opt_buffer().ok().flatten().unwrap_or_default();
                    let stat = Stat::read(&mut r).ok();
                    let value = std::str::from_utf8(data).ok().and_then(|s| s.parse().ok());
                    match (value, stat) {
                        (Some(v), Some(s)) => {
                            let c = &mut self.clients[client];
                            c.versions[k] = s.version;
                            match c.armed[k] {
                                Some(at) if s.version > at => self.fail(format!(
                                    "client {client} read version {} of {} before the watch it \
                                     left at version {at} fired",
                                    s.version,
                                    key_path(k)
                                )),
                                Some(_) => {}
                                None => c.armed[k] = Some(s.version),
                            }
                            Some(Ret::Read(v, s.version))
                        }
                        _ => self.fail(format!("client {client}: an unreadable getData reply")),
                    }
                } else {
                    // Not served: as if never asked.
                    None
                }
            }
            Want::Write(..) if err == ErrorCode::Ok as i32 => Some(Ret::Ok),
            Want::Cas(..) if err == ErrorCode::Ok as i32 => Some(Ret::Ok),
            Want::Cas(..) if err == ErrorCode::BadVersion as i32 => Some(Ret::BadVersion),
            Want::Write(..) | Want::Cas(..) => Some(Ret::Unknown),
            Want::MultiCas(..) if err != ErrorCode::Ok as i32 => Some(Ret::Unknown),
            Want::MultiCas(..) => {
                // The first result says it: the check's error (-1 and a code) or success.
                let first = MultiHeader::read(&mut r).ok();
                match first {
                    Some(h) if h.op == -1 && !h.done => match r.read_i32() {
                        Ok(e) if e == ErrorCode::BadVersion as i32 => Some(Ret::BadVersion),
                        _ => Some(Ret::Unknown),
                    },
                    Some(h) if h.op == OpCode::Check as i32 => Some(Ret::Ok),
                    _ => self.fail(format!("client {client}: an unreadable multi reply")),
                }
            }
            Want::Create => {
                if err == ErrorCode::Ok as i32 {
                    let name = r.read_string().unwrap_or_default();
                    let seq = name.rsplit('-').next().and_then(|s| s.parse().ok());
                    match seq {
                        Some(seq) => self.created.push(Created {
                            client,
                            start: self.clients[client].pending.unwrap().1,
                            end: now,
                            seq,
                        }),
                        None => self.fail(format!("client {client}: created {name:?}")),
                    }
                }
                None
            }
            Want::CreateEphemeral => {
                if err == ErrorCode::Ok as i32 {
                    let name = r.read_string().unwrap_or_default();
                    self.clients[client].ephemeral = Some(name);
                }
                None
            }
            Want::CheckEphemeral => {
                if err == ErrorCode::NoNode as i32 {
                    let path = self.clients[client].ephemeral.clone();
                    self.fail(format!(
                        "client {client}: its live session's ephemeral {path:?} is gone"
                    ));
                }
                self.stats.ops_checked += 1;
                None
            }
            Want::Reconfig => {
                if err == ErrorCode::Ok as i32 {
                    self.stats.reconfigs_asked += 1;
                }
                None
            }
            Want::List => {
                if err == ErrorCode::Ok as i32 {
                    let n = r.read_i32().unwrap_or(0).max(0);
                    let names = (0..n).filter_map(|_| r.read_string().ok()).collect();
                    self.final_values = Some(names);
                }
                None
            }
        };
        if let Some(i) = index {
            match ret {
                Some(ret) => {
                    self.history[i].1.ret = ret;
                    self.history[i].1.end = now;
                }
                None if matches!(want, Want::Read(_)) => {
                    // A read that failed tells nothing; it leaves the history.
                    self.history[i].1.ret = Ret::Unknown;
                }
                None => {}
            }
        }
        let succeeded = err == ErrorCode::Ok as i32;
        let c = &mut self.clients[client];
        c.pending = None;
        if let Some(reads) = c.final_reads.as_mut() {
            if succeeded {
                reads.pop_front();
            }
        }
        let at = now + 1 + self.rng.below(40);
        self.clock.push(at, Ev::ClientStep { client });
    }

    /// A watch notification: for a register, its data watch fires once, and only if set.
    fn client_notified(&mut self, client: usize, r: &mut Reader<'_>) {
        let Ok(ev) = zooid_proto::WatcherEvent::read(r) else {
            self.fail(format!("client {client}: an unreadable notification"));
        };
        let Some(k) = (0..KEYS).find(|&k| key_path(k) == ev.path) else {
            return;
        };
        self.stats.ops_checked += 1;
        if self.clients[client].armed[k].take().is_none() {
            self.fail(format!(
                "client {client}: a watch on {} fired that was not set (or fired twice): {ev:?}",
                ev.path
            ));
        }
    }

    fn client_closed(&mut self, client: usize) {
        let c = &mut self.clients[client];
        // Whatever was outstanding stays unknown.
        c.pending = None;
        c.at = None;
        c.connected = false;
        c.gen += 1;
        let at = self.clock.now() + self.rng.range(50, 300);
        self.clock.push(at, Ev::ClientStep { client });
    }

    /// The client closes its connection itself.
    fn client_hang_up(&mut self, client: usize) {
        if let Some((node, conn)) = self.clients[client].at {
            if self.nodes[node].conns.remove(&conn).is_some() {
                let inc = self.nodes[node].incarnation;
                let at = self.clock.now() + 1;
                self.clock.push(
                    at,
                    Ev::ToMember {
                        node,
                        inc,
                        conn,
                        frame: None,
                    },
                );
            }
        }
        self.client_closed(client);
    }
}

/// One line per event, for `--trace`.
fn describe(ev: &Ev) -> String {
    match ev {
        Ev::Vote { from, to, msg, .. } => format!(
            "vote sid {} -> sid {}: {} {:?}",
            from + 1,
            to + 1,
            msg.state.name(),
            msg.vote()
        ),
        Ev::ToMember {
            node, conn, frame, ..
        } => match frame {
            Some(f) => format!(
                "client frame -> sid {} conn {conn} ({} bytes)",
                node + 1,
                f.len()
            ),
            None => format!("client hangs up -> sid {} conn {conn}", node + 1),
        },
        Ev::ToClient { client, frame, .. } => match frame {
            Some(f) if f.is_empty() => format!("client {client}: patience check"),
            Some(f) => format!("client {client} <- {} bytes", f.len()),
            None => format!("client {client}: connection closed"),
        },
        Ev::Start { node } => format!("sid {} starts", node + 1),
        Ev::LinkUp { node, link, .. } => format!("sid {} link {link} up", node + 1),
        Ev::LinkDown {
            node, link, why, ..
        } => {
            format!("sid {} link {link} down: {why}", node + 1)
        }
        Ev::Fsync { node, .. } => format!("sid {} fsync done", node + 1),
        Ev::JobDone { node, .. } => format!("sid {} storage job done", node + 1),
        Ev::LogRead {
            node, link, txns, ..
        } => format!(
            "sid {} read {} txns from its log for link {link}",
            node + 1,
            txns.as_ref().map_or(0, Vec::len)
        ),
        other => format!("{other:?}"),
    }
}

/// FNV-1a: a txn's fingerprint.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Node {
    fn disk_len(&self) -> usize {
        self.disk.log.len()
    }
}
