//! The server core: one single-threaded state machine that owns the tree, the sessions and
//! the connections' protocol state. The driver feeds it [`Input`]s with the current time and
//! carries out the [`Action`]s it returns; the core never touches sockets, files or clocks.
//!
//! Write path: a request is validated against the tree plus the pending view and becomes a
//! txn with the next zxid → `Action::Append` → the driver makes it durable and reports
//! `Input::Persisted` → the txn is applied, watch notifications go out, then the reply.
//! Every connection has a FIFO: a reply leaves only after the replies to everything the same
//! connection sent before it, so a session reads its own writes and sees a watch event before
//! any reply that reveals the change.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

use rustc_hash::FxHashMap;
use zooid_proto::{
    perms, xid, ConnectRequest, ConnectResponse, EventType, Id, MultiHeader, OpCode, ReadOp,
    Record, ReplyHeader, Request, RequestHeader, Txn, TxnEntry, TxnHeader, WatcherEvent, Writer,
    STATE_SYNC_CONNECTED,
};
use zooid_tree::{acl, DataTree, Fired, TxnResult, WatchKind};

use zooid_zab::{ConfigMember, QuorumVerifier, ServerId};

use crate::auth;
use crate::prep::{self, Ctx, Overlay, PendingView};

pub type ConnId = u64;

/// How long a connection may stay without a ConnectRequest.
pub const SESSIONLESS_TIMEOUT_MS: i64 = 10_000;

/// Settings the core needs (parsed from zoo.cfg by the server).
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub server_id: u8,
    /// SASL for clients (opcode 102): DIGEST-MD5 against the JAAS Server section's users.
    /// None: answered as a server without SASL configured.
    pub sasl: Option<SaslServer>,
    /// Schemes every connection must hold an id of before any request but auth and sasl
    /// (`enforce.auth.schemes`, `sessionRequireClientSASLAuth`); empty: none required.
    pub required_schemes: Vec<String>,
    /// Random bits for SASL nonces; the driver gives a fresh seed at each start.
    pub random_seed: u64,
    /// The scheme TLS clients' certificates name them in (`ssl.authProvider`, `x509`), when
    /// the client port serves TLS.
    pub cert_scheme: Option<String>,
    pub tick_ms: i64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_client_cnxns: u32,
    /// `maxCnxns`: client connections at most (0: no limit).
    pub max_cnxns: u32,
    /// The connection throttle: a bucket of `tokens` (0: off) gaining `fill_count` every
    /// `fill_ms`; each ConnectRequest takes one.
    pub connection_throttle: ConnectionThrottle,
    pub extended_types_enabled: bool,
    /// `super:base64(sha1)`: authenticating as this digest id grants the super identity.
    pub super_digest: Option<String>,
    pub container_check_interval_ms: i64,
    pub container_max_per_minute: u32,
    pub container_max_never_used_ms: i64,
    pub digest_enabled: bool,
    pub enforce_quota: bool,
    /// `reconfigEnabled`: the leader carries out reconfig requests.
    pub reconfig_enabled: bool,
    /// `standaloneEnabled`: a reconfig must leave at least two voters.
    pub standalone_enabled: bool,
    /// `localSessionsEnabled`: in an ensemble, a new session lives on its member only (no
    /// createSession txn) until it creates an ephemeral.
    pub local_sessions: bool,
    /// `localSessionsUpgradingEnabled`: a local session that creates an ephemeral becomes
    /// global first; without it, the create fails with EPHEMERALONLOCALSESSION.
    pub local_sessions_upgrading: bool,
}

/// What the leader knows of its ensemble, for reconfig requests (`zooid-member` keeps it
/// current while it leads; without one a reconfig is UNIMPLEMENTED, as on a standalone
/// ZooKeeper server).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnsembleView {
    /// The newest config proposed (committed unless `in_progress`) and its version.
    pub members: Vec<ConfigMember>,
    pub version: i64,
    /// A reconfig is proposed and not committed yet (RECONFIGINPROGRESS).
    pub in_progress: bool,
    /// Members connected and synced with the leader, the leader included: a new config needs
    /// a quorum of them (NEWCONFIGNOQUORUM).
    pub synced: BTreeSet<ServerId>,
}

/// SASL settings the core needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaslServer {
    /// The DIGEST-MD5 users, when a JAAS server section is configured (without one, opcode
    /// 102 is answered as ZooKeeper answers it then: OK with no token).
    pub digest: Option<crate::sasl::DigestUsers>,
    /// `kerberos.removeHostFromPrincipal`, `kerberos.removeRealmFromPrincipal`.
    pub remove_host: bool,
    pub remove_realm: bool,
    /// `allowSaslFailedClients`: a failed exchange answers OK and keeps the connection
    /// (unless SASL is required).
    pub allow_failed: bool,
    /// Whether the `sasl` scheme's provider is registered (`authProvider.N=...SASL...`):
    /// its ids are valid in ACLs and taken by `auth` ACLs.
    pub acl_scheme: bool,
    /// `letAnySaslUserDoX`: an ACL id every SASL-authenticated client matches.
    pub let_any: Option<String>,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            sasl: None,
            required_schemes: Vec::new(),
            random_seed: 0x5eed,
            cert_scheme: None,
            server_id: 1,
            tick_ms: 2000,
            min_session_timeout_ms: 4000,
            max_session_timeout_ms: 40000,
            max_client_cnxns: 60,
            max_cnxns: 0,
            connection_throttle: ConnectionThrottle::default(),
            extended_types_enabled: false,
            super_digest: None,
            container_check_interval_ms: 60000,
            container_max_per_minute: 10000,
            container_max_never_used_ms: 0,
            digest_enabled: true,
            enforce_quota: false,
            reconfig_enabled: false,
            standalone_enabled: true,
            local_sessions: false,
            local_sessions_upgrading: false,
        }
    }
}

/// ZooKeeper's connection throttle (`connection_throttle_tokens`, `_fill_time`,
/// `_fill_count`): a token bucket, one token per ConnectRequest. Random dropping as the
/// bucket runs dry (`connection_throttle_freeze_time` and friends) is not implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionThrottle {
    pub tokens: u32,
    pub fill_ms: i64,
    pub fill_count: u32,
}

impl Default for ConnectionThrottle {
    fn default() -> Self {
        ConnectionThrottle {
            tokens: 0,
            fill_ms: 1,
            fill_count: 1,
        }
    }
}

/// The bucket's state: tokens left, and when it was last filled (monotonic ms).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: i64,
    filled_ms: i64,
}

/// What the core is in an ensemble: it decides where a write goes and who expires sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Writes are logged and applied here once durable; sessions expire here.
    Standalone,
    /// Writes (local and forwarded) get their zxid here; they are applied once committed
    /// (`Input::Persisted` then means "committed through"); sessions expire here.
    Leader,
    /// Follower or observer: writes, syncs and re-attaches go to the leader; committed txns
    /// arrive as `Input::Apply`; the leader expires sessions.
    Learner,
    /// A member cut off from the quorum with `readonlymode.enabled`: it serves reads of the
    /// tree it has to clients that accept a read-only server, answers every write (and sync)
    /// NOTREADONLY, and keeps its sessions to itself: they are created, closed and expired
    /// here without a txn. Nothing is ever logged.
    ReadOnly,
}

#[derive(Debug)]
pub enum Input<'a> {
    Connect {
        conn: ConnId,
        addr: SocketAddr,
    },
    Frame {
        conn: ConnId,
        frame: &'a [u8],
    },
    /// A request that waited longer than `throttled_op_wait_time` to be read: answered
    /// THROTTLEDOP in its turn without being carried out, unless it is a ping or a
    /// closeSession, which go through as usual.
    Throttled {
        conn: ConnId,
        frame: &'a [u8],
    },
    Disconnect {
        conn: ConnId,
    },
    /// What the connection's TLS client certificate proves (`x509:<subject>`, maybe
    /// `super`), right after `Connect`.
    Identified {
        conn: ConnId,
        ids: Vec<Id>,
    },
    /// Every txn up to this zxid is durable (standalone) or committed (leader).
    Persisted {
        zxid: i64,
    },
    Tick,
    /// Leader: a client request the learner with server id `from` forwarded (REQUEST).
    Forwarded {
        from: u64,
        session_id: i64,
        cxid: i32,
        op: i32,
        body: &'a [u8],
        auth: Vec<Id>,
    },
    /// Learner: a committed txn from the leader, in zxid order.
    Apply {
        entry: TxnEntry,
    },
    /// Learner: the leader answered the oldest forwarded sync.
    SyncDone,
    /// Learner: the leader's answer to a re-attach this member asked about.
    Revalidated {
        session_id: i64,
        valid: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A complete frame (length prefix included).
    Send { conn: ConnId, frame: Vec<u8> },
    /// Close after flushing what was sent before.
    Close { conn: ConnId },
    /// Make this log entry durable, then report `Input::Persisted`.
    Append { zxid: i64, entry: Vec<u8> },
    /// Learner: send this client request to the leader (REQUEST).
    Forward {
        session_id: i64,
        cxid: i32,
        op: i32,
        body: Vec<u8>,
        /// The connection's identities; none for createSession.
        auth: Option<Vec<Id>>,
    },
    /// Learner: ask the leader whether this session may re-attach here (REVALIDATE).
    Revalidate { session_id: i64, timeout_ms: i32 },
}

#[derive(Debug)]
enum ConnState {
    /// Waiting for the ConnectRequest.
    New,
    /// createSession txn in flight; frames that arrive meanwhile wait here.
    Connecting(Vec<Vec<u8>>),
    Open,
    Closing,
}

/// Which applied txn fills a queued write's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// A write proposed here, by its zxid.
    Zxid(i64),
    /// A write forwarded to the leader, by its cxid (the client's xid), with the client's
    /// opcode (the reply's shape depends on it).
    Forwarded(i32, OpCode),
    /// A sync forwarded to the leader: answered at `Input::SyncDone`.
    Sync,
    /// Nothing to wait for: `reply` is already there.
    Ready,
}

/// An entry of a connection's reply FIFO.
#[derive(Debug)]
enum Queued {
    /// A write in flight; `reply` is filled when it is applied.
    Write {
        key: Key,
        reply: Option<Vec<u8>>,
        close_after: bool,
        recv_ms: i64,
    },
    /// A read waiting behind earlier writes.
    Read {
        xid: i32,
        request: Request,
        recv_ms: i64,
    },
}

#[derive(Debug)]
struct Conn {
    addr: SocketAddr,
    /// Where this connection's SASL exchange stands.
    sasl: crate::sasl::Exchange,
    session: Option<i64>,
    state: ConnState,
    auth: Vec<Id>,
    queue: VecDeque<Queued>,
    /// When the connection was accepted, on the monotonic clock.
    opened_ms: i64,
    stats: ConnStats,
}

/// Per-connection counters for `cons`.
#[derive(Debug, Default, Clone)]
pub struct ConnStats {
    pub received: u64,
    pub sent: u64,
    pub established_ms: i64,
    pub last_op: &'static str,
    pub last_cxid: i32,
    pub last_zxid: i64,
    pub last_response_ms: i64,
    pub last_latency_ms: i64,
    /// Latencies of the requests answered on this connection.
    pub latency: Tally,
}

/// Count, sum, min and max of observed values, as ZooKeeper's `AvgMinMaxCounter` keeps them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub sum: i64,
    pub min: i64,
    pub max: i64,
}

impl Tally {
    pub fn add(&mut self, v: i64) {
        if self.count == 0 || v < self.min {
            self.min = v;
        }
        if self.count == 0 || v > self.max {
            self.max = v;
        }
        self.sum += v;
        self.count += 1;
    }
}

/// Latency samples kept for the driver to take; beyond this many, new ones are dropped.
pub const LATENCY_SAMPLES_MAX: usize = 65_536;

/// ZooKeeper keeps the tree digest of every 128th zxid, the last 1024 of them (`hash`).
const DIGEST_LOG_INTERVAL: i64 = 128;
const DIGEST_LOG_LIMIT: usize = 1024;

/// The top-level znode a path is under (`/app/x` → `app`), as ZooKeeper's per-namespace
/// metrics name it; `/` has none.
fn top_namespace(path: &str) -> Option<&str> {
    path.split('/').nth(1).filter(|s| !s.is_empty())
}

/// The label ZooKeeper's `cons` shows as a connection's last operation (`lop`); None for
/// requests that do not reach its FinalRequestProcessor (auth, sasl).
fn op_label(op: i32) -> Option<&'static str> {
    use OpCode::*;
    Some(match OpCode::from_i32(op)? {
        Ping => "PING",
        Multi => "MULT",
        MultiRead => "MLTR",
        Create | Create2 | CreateTtl | CreateContainer => "CREA",
        Delete | DeleteContainer => "DELE",
        SetData => "SETD",
        Reconfig => "RECO",
        SetAcl => "SETA",
        CloseSession => "CLOS",
        Sync => "SYNC",
        Check => "CHEC",
        Exists => "EXIS",
        GetData => "GETD",
        SetWatches => "SETW",
        SetWatches2 => "STW2",
        AddWatch => "ADDW",
        GetAcl => "GETA",
        GetChildren | GetChildren2 => "GETC",
        GetAllChildrenNumber => "GETACN",
        CheckWatches => "CHKW",
        RemoveWatches => "REMW",
        WhoAmI => "HOMI",
        GetEphemerals => "GETE",
        Notification | Auth | Sasl | CreateSession | Error => return None,
    })
}

/// ZooKeeper adds this much for the Stat to every read's byte count.
const STAT_OVERHEAD_BYTES: i64 = 6 * 8 + 5 * 4;

fn tally_namespace(map: &mut BTreeMap<String, Tally>, path: &str, bytes: i64) {
    if let Some(ns) = top_namespace(path) {
        match map.get_mut(ns) {
            Some(t) => t.add(bytes),
            None => map.entry(ns.to_owned()).or_default().add(bytes),
        }
    }
}

#[derive(Debug)]
struct Session {
    timeout_ms: i32,
    deadline_ms: i64,
    conn: Option<ConnId>,
    closing: bool,
    /// Leader: which member the session's client is attached to. Requests from any other
    /// member get SESSIONMOVED (ZooKeeper's `checkSession`).
    owner: SessionOwner,
    /// Known to this member only (a local session, or a read-only server's): it expires and
    /// closes here, without a txn.
    local: bool,
}

impl Session {
    fn new(timeout_ms: i32, deadline_ms: i64, conn: Option<ConnId>, owner: SessionOwner) -> Self {
        Session {
            timeout_ms,
            deadline_ms,
            conn,
            closing: false,
            owner,
            local: false,
        }
    }
}

/// Where a session's client is attached, as the leader knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionOwner {
    /// Recovered from disk: the first member to send a request for it claims it.
    Unclaimed,
    /// A client connection of this server.
    Here,
    /// A client of the learner with this server id.
    Learner(u64),
}

/// Where an in-flight txn came from, to route its reply.
#[derive(Debug)]
enum Origin {
    Client {
        conn: ConnId,
        xid: i32,
        op: OpCode,
    },
    CreateSession {
        conn: ConnId,
        read_only: Option<bool>,
    },
    /// Expiry, containers, TTLs, and (on a leader) requests forwarded by learners: nobody to
    /// answer here.
    Internal,
}

#[derive(Debug)]
struct Inflight {
    header: TxnHeader,
    txn: Txn,
    origin: Origin,
    /// What this txn adds to the tree digest, and the digest it was logged with.
    digest_delta: u64,
    digest: Option<i64>,
}

/// Server-wide counters for `srvr`, `stat`, `mntr` and the metrics.
#[derive(Debug, Default, Clone)]
pub struct ServerStats {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub latency_min_ms: i64,
    pub latency_max_ms: i64,
    pub latency_total_ms: i64,
    pub latency_count: u64,
    pub digest_mismatches: u64,
    /// Authentications refused (`auth_failed_count`).
    pub auth_failed: u64,
    /// ConnectRequests received (`connection_request_count`).
    pub connection_requests: u64,
    /// Connections refused by maxClientCnxns, maxCnxns or the connection throttle
    /// (`connection_rejected`).
    pub connections_rejected: u64,
    /// Requests answered THROTTLEDOP (`throttled_ops`).
    pub throttled_ops: u64,
    /// Connections closed for sending no ConnectRequest in time
    /// (`sessionless_connections_expired`).
    pub sessionless_expired: u64,
    /// Latencies of reads and of writes answered since the driver last took them (the
    /// `readlatency` / `updatelatency` summaries); at most [`LATENCY_SAMPLES_MAX`] each.
    pub read_latencies_ms: Vec<i64>,
    pub update_latencies_ms: Vec<i64>,
    /// Bytes read and written under each top-level znode (`read_per_namespace`,
    /// `write_per_namespace`).
    pub reads_per_namespace: BTreeMap<String, Tally>,
    pub writes_per_namespace: BTreeMap<String, Tally>,
}

pub struct Core {
    cfg: CoreConfig,
    /// The state of the generator of SASL nonces (seeded by `CoreConfig::random_seed`).
    rng: u64,
    tree: DataTree,
    pending: PendingView,
    conns: BTreeMap<ConnId, Conn>,
    sessions: BTreeMap<i64, Session>,
    inflight: VecDeque<Inflight>,
    next_zxid: i64,
    next_session_id: i64,
    next_container_check_ms: i64,
    actions: Vec<Action>,
    pub stats: ServerStats,
    /// Connections per client address, for maxClientCnxns.
    per_ip: FxHashMap<IpAddr, u32>,
    /// The connection throttle's bucket.
    bucket: Bucket,
    /// (zxid, tree digest) of recent zxids that are multiples of 128 (`hash`).
    digest_log: VecDeque<(i64, i64)>,
    role: Role,
    /// Learner: new sessions forwarded to the leader, waiting for their createSession.
    connecting: FxHashMap<i64, (ConnId, Option<bool>)>,
    /// Learner: re-attaches waiting for the leader's REVALIDATE answer.
    revalidating: FxHashMap<i64, (ConnId, i32, Option<bool>)>,
    /// Learner: forwarded syncs, oldest first, with the path to answer with.
    syncs: VecDeque<(ConnId, i32, String)>,
    /// Learner: sessions with activity since the driver last asked (for PING replies).
    touched: BTreeMap<i64, i32>,
    /// The wall clock at the latest input: txn times (ctime, mtime), TTL ages, and the
    /// times `cons` shows. Everything else runs on the monotonic clock inputs carry.
    wall_ms: i64,
    /// Leader: the ensemble, for reconfig requests.
    ensemble: Option<EnsembleView>,
}

/// The time an input happens at, on both clocks. Deadlines (session expiry, the
/// sessionless-connection timeout, container checks) use `mono_ms`, which never steps;
/// `wall_ms` is only written into txns and shown, so an NTP step or a resumed VM moves
/// ctime and mtime as ZooKeeper's do and expires nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono_ms: i64,
    pub wall_ms: i64,
}

/// One number for both clocks: tests and simulations whose time never steps.
impl From<i64> for Now {
    fn from(ms: i64) -> Now {
        Now {
            mono_ms: ms,
            wall_ms: ms,
        }
    }
}

impl Core {
    pub fn new(cfg: CoreConfig, tree: DataTree, now: impl Into<Now>) -> Core {
        let Now {
            mono_ms: now_ms,
            wall_ms,
        } = now.into();
        let sid = cfg.server_id as i64;
        // Seeded from the wall clock, as ZooKeeper's, so ids differ across restarts.
        let mut next_session_id = (((wall_ms as u64) << 24) >> 8) as i64 | (sid << 56);
        if next_session_id == i64::MIN {
            next_session_id += 1;
        }
        let next_zxid = tree.last_zxid() + 1;
        // Sessions recovered from disk get a full timeout from now to reconnect in, as in
        // ZooKeeper; those that don't are expired with a closeSession txn.
        let tick = cfg.tick_ms.max(1);
        let sessions = tree
            .sessions()
            .iter()
            .map(|(&id, &timeout_ms)| {
                let t = now_ms + timeout_ms as i64;
                let session = Session::new(
                    timeout_ms,
                    (t / tick + 1) * tick,
                    None,
                    SessionOwner::Unclaimed,
                );
                (id, session)
            })
            .collect();
        let bucket = Bucket {
            tokens: i64::from(cfg.connection_throttle.tokens),
            filled_ms: now_ms,
        };
        Core {
            next_container_check_ms: now_ms + cfg.container_check_interval_ms,
            wall_ms,
            rng: cfg.random_seed,
            cfg,
            tree,
            pending: PendingView::default(),
            conns: BTreeMap::new(),
            sessions,
            inflight: VecDeque::new(),
            next_zxid,
            next_session_id,
            actions: Vec::new(),
            stats: ServerStats::default(),
            per_ip: FxHashMap::default(),
            bucket,
            digest_log: VecDeque::new(),
            role: Role::Standalone,
            connecting: FxHashMap::default(),
            revalidating: FxHashMap::default(),
            syncs: VecDeque::new(),
            touched: BTreeMap::new(),
            ensemble: None,
        }
    }

    /// A new configuration in `/zookeeper/config` (ZooKeeper's `initConfigInZKDatabase`):
    /// its watchers hear of it.
    pub fn install_config(&mut self, text: &[u8], version: i64, now: Now) {
        let fired = self.tree.set_config(text, version, now.wall_ms);
        self.deliver(&fired, version);
    }

    /// Set (leading) or clear the ensemble view reconfig requests are checked against.
    pub fn set_ensemble(&mut self, view: Option<EnsembleView>) {
        self.ensemble = view;
    }

    /// A core for one role in an ensemble (a fresh one for every role, as ZooKeeper reloads
    /// its database on every role change).
    pub fn with_role(cfg: CoreConfig, tree: DataTree, now: impl Into<Now>, role: Role) -> Core {
        let mut core = Core::new(cfg, tree, now);
        core.role = role;
        core
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The tree, for the core of the next role; the watches of this core's sessions go (their
    /// clients re-register them where they reconnect).
    pub fn into_tree(self) -> DataTree {
        let mut tree = self.tree;
        for &session in self.sessions.keys() {
            tree.watches.remove_session(session);
        }
        tree
    }

    /// Leader: number the next txn `zxid` (the first of the new epoch once established).
    pub fn set_next_zxid(&mut self, zxid: i64) {
        self.next_zxid = zxid;
    }

    /// Learner: sessions with client activity since the last call, with their timeouts.
    pub fn take_touched(&mut self) -> BTreeMap<i64, i32> {
        std::mem::take(&mut self.touched)
    }

    /// Leader: a learner saw activity on this session.
    pub fn touch_session(&mut self, session_id: i64, now_ms: i64) {
        self.touch(session_id, now_ms);
    }

    /// Leader: a client re-attaches on the learner with server id `from`; the session is
    /// valid if it is alive here. A valid session gets a fresh deadline with its new timeout,
    /// and belongs to that learner from now on.
    pub fn revalidate(&mut self, from: u64, session_id: i64, timeout_ms: i32, now_ms: i64) -> bool {
        let deadline = self.deadline(now_ms, timeout_ms);
        match self.sessions.get_mut(&session_id) {
            Some(s) if !s.closing => {
                s.timeout_ms = timeout_ms;
                s.deadline_ms = deadline;
                s.owner = SessionOwner::Learner(from);
                true
            }
            _ => false,
        }
    }

    /// Leader: whether `owner` may write for `session` (claiming an unclaimed one).
    fn claim(&mut self, session: i64, owner: SessionOwner) -> bool {
        match self.sessions.get_mut(&session) {
            Some(s) if s.owner == SessionOwner::Unclaimed => {
                s.owner = owner;
                true
            }
            Some(s) => s.owner == owner,
            None => true,
        }
    }

    pub fn tree(&self) -> &DataTree {
        &self.tree
    }

    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// Actions produced since the last call, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    pub fn last_zxid(&self) -> i64 {
        self.tree.last_zxid()
    }

    pub fn outstanding(&self) -> usize {
        self.inflight.len()
    }

    /// Sessions the ensemble knows (all of them on a standalone server).
    pub fn session_count(&self) -> usize {
        self.sessions.len() - self.local_session_count()
    }

    /// Sessions that live on this member only (`localSessionsEnabled`, read-only mode).
    pub fn local_session_count(&self) -> usize {
        if self.role == Role::ReadOnly {
            return self.sessions.len();
        }
        self.sessions.values().filter(|s| s.local).count()
    }

    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// (conn, address, session, timeout, stats, queued) for `cons`.
    pub fn connections(&self) -> Vec<(ConnId, SocketAddr, Option<i64>, i32, ConnStats, usize)> {
        self.conns
            .iter()
            .map(|(&id, c)| {
                let timeout = c
                    .session
                    .and_then(|s| self.sessions.get(&s))
                    .map_or(0, |s| s.timeout_ms);
                (
                    id,
                    c.addr,
                    c.session,
                    timeout,
                    c.stats.clone(),
                    c.queue.len(),
                )
            })
            .collect()
    }

    /// Sessions with their timeouts and ephemeral paths, for `dump`.
    pub fn session_expiry(&self) -> Vec<(i64, i64)> {
        self.sessions
            .iter()
            .map(|(&s, v)| (s, v.deadline_ms))
            .collect()
    }

    /// (zxid, tree digest) for recent zxids that are multiples of 128, oldest first.
    pub fn digest_log(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.digest_log.iter().copied()
    }

    /// Deadline of each connection's session (None for a connection without one), for
    /// `dump`.
    pub fn connection_deadlines(&self) -> Vec<(SocketAddr, Option<i64>, i64)> {
        self.conns
            .values()
            .map(|c| {
                let deadline = c
                    .session
                    .and_then(|s| self.sessions.get(&s))
                    .map_or(c.stats.established_ms + SESSIONLESS_TIMEOUT_MS, |s| {
                        s.deadline_ms
                    });
                (c.addr, c.session, deadline)
            })
            .collect()
    }

    /// `srst`: the server's counters start over.
    pub fn reset_server_stats(&mut self) {
        let mismatches = self.stats.digest_mismatches;
        // ZooKeeper zeroes each namespace's figures but keeps the namespaces listed.
        let zeroed = |m: &mut BTreeMap<String, Tally>| {
            std::mem::take(m)
                .into_keys()
                .map(|k| (k, Tally::default()))
                .collect()
        };
        let reads_per_namespace = zeroed(&mut self.stats.reads_per_namespace);
        let writes_per_namespace = zeroed(&mut self.stats.writes_per_namespace);
        self.stats = ServerStats {
            digest_mismatches: mismatches,
            reads_per_namespace,
            writes_per_namespace,
            ..ServerStats::default()
        };
    }

    /// `crst`: every connection's counters start over, as ZooKeeper shows them afterwards
    /// (no last operation, last zxid -1).
    pub fn reset_connection_stats(&mut self) {
        for c in self.conns.values_mut() {
            c.stats = ConnStats {
                established_ms: c.stats.established_ms,
                last_cxid: -1,
                last_zxid: -1,
                ..ConnStats::default()
            };
        }
    }

    /// Feed one input. Deadlines run on `now`'s monotonic clock; only times written into
    /// txns (ctime, mtime, TTL ages) and shown to people use its wall clock.
    pub fn handle(&mut self, now: impl Into<Now>, input: Input<'_>) {
        let Now {
            mono_ms: now_ms,
            wall_ms,
        } = now.into();
        self.wall_ms = wall_ms;
        match input {
            Input::Connect { conn, addr } => self.on_connect(conn, addr, now_ms),
            Input::Identified { conn, ids } => self.grant(conn, ids),
            Input::Frame { conn, frame } => self.on_frame(conn, frame, now_ms),
            Input::Throttled { conn, frame } => self.on_throttled(conn, frame, now_ms),
            Input::Disconnect { conn } => self.on_disconnect(conn),
            Input::Persisted { zxid } => self.on_persisted(zxid, now_ms),
            Input::Tick => self.on_tick(now_ms),
            Input::Forwarded {
                from,
                session_id,
                cxid,
                op,
                body,
                auth,
            } => self.on_forwarded(from, session_id, cxid, op, body, auth, now_ms),
            Input::Apply { entry } => self.on_apply(entry, now_ms),
            Input::SyncDone => self.on_sync_done(now_ms),
            Input::Revalidated { session_id, valid } => {
                self.on_revalidated(session_id, valid, now_ms)
            }
        }
    }

    fn on_connect(&mut self, conn: ConnId, addr: SocketAddr, now_ms: i64) {
        let ip = addr.ip();
        let max = self.cfg.max_cnxns as usize;
        if max > 0 && self.conns.len() >= max {
            self.stats.connections_rejected += 1;
            tracing::error!(%ip, connections = self.conns.len(), max, "too many connections (maxCnxns); closing the new one");
            self.actions.push(Action::Close { conn });
            return;
        }
        let n = self.per_ip.entry(ip).or_insert(0);
        if self.cfg.max_client_cnxns > 0 && *n >= self.cfg.max_client_cnxns {
            self.stats.connections_rejected += 1;
            tracing::warn!(%ip, max = self.cfg.max_client_cnxns, "too many connections from this address (maxClientCnxns); closing");
            self.actions.push(Action::Close { conn });
            return;
        }
        *n += 1;
        self.conns.insert(
            conn,
            Conn {
                addr,
                sasl: crate::sasl::Exchange::Start,
                session: None,
                state: ConnState::New,
                auth: vec![Id::new("ip", &java_host_address(ip))],
                queue: VecDeque::new(),
                opened_ms: now_ms,
                stats: ConnStats {
                    established_ms: self.wall_ms,
                    ..Default::default()
                },
            },
        );
    }

    fn on_disconnect(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            let ip = c.addr.ip();
            if let Some(n) = self.per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_ip.remove(&ip);
                }
            }
            if let Some(s) = c.session.and_then(|s| self.sessions.get_mut(&s)) {
                if s.conn == Some(conn) {
                    s.conn = None;
                }
            }
        }
    }

    /// Close a connection from our side.
    fn close_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if !matches!(c.state, ConnState::Closing) {
                c.state = ConnState::Closing;
                self.actions.push(Action::Close { conn });
            }
        }
    }

    fn record_latency(&mut self, conn: ConnId, ms: i64, write: bool) {
        let s = &mut self.stats;
        if s.latency_count == 0 || ms < s.latency_min_ms {
            s.latency_min_ms = ms;
        }
        s.latency_max_ms = s.latency_max_ms.max(ms);
        s.latency_total_ms += ms;
        s.latency_count += 1;
        let samples = if write {
            &mut s.update_latencies_ms
        } else {
            &mut s.read_latencies_ms
        };
        if samples.len() < LATENCY_SAMPLES_MAX {
            samples.push(ms);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stats.last_response_ms = self.wall_ms;
            c.stats.last_latency_ms = ms;
            c.stats.latency.add(ms);
        }
    }

    fn send(&mut self, conn: ConnId, frame: Vec<u8>) {
        self.stats.packets_sent += 1;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stats.sent += 1;
        }
        self.actions.push(Action::Send { conn, frame });
    }

    fn on_frame(&mut self, conn: ConnId, frame: &[u8], now_ms: i64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        self.stats.packets_received += 1;
        c.stats.received += 1;
        match &mut c.state {
            ConnState::New => self.on_connect_request(conn, frame, now_ms),
            ConnState::Connecting(backlog) => backlog.push(frame.to_vec()),
            ConnState::Open => self.on_request(conn, frame, now_ms),
            ConnState::Closing => {}
        }
    }

    fn on_connect_request(&mut self, conn: ConnId, frame: &[u8], now_ms: i64) {
        let Ok(req) = ConnectRequest::decode(frame) else {
            tracing::debug!(conn, "malformed ConnectRequest; closing");
            return self.close_conn(conn);
        };
        if !self.take_connection_token(now_ms) {
            self.stats.connections_rejected += 1;
            tracing::warn!(
                conn,
                "connection throttle rejected connection (connection_throttle_tokens); closing"
            );
            return self.close_conn(conn);
        }
        self.stats.connection_requests += 1;
        if req.last_zxid_seen > self.tree.last_zxid() {
            tracing::info!(
                conn,
                client_zxid = format_args!("{:#x}", req.last_zxid_seen),
                server_zxid = format_args!("{:#x}", self.tree.last_zxid()),
                "client has seen a newer zxid than this server; closing so it tries another"
            );
            return self.close_conn(conn);
        }
        if self.role == Role::ReadOnly && req.read_only != Some(true) {
            tracing::info!(
                conn,
                "refusing a client that does not accept a read-only server; closing"
            );
            return self.close_conn(conn);
        }
        let timeout = req.timeout_ms.clamp(
            self.cfg.min_session_timeout_ms,
            self.cfg.max_session_timeout_ms,
        );
        if req.session_id == 0 {
            let session = self.next_session_id;
            self.next_session_id += 1;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.state = ConnState::Connecting(Vec::new());
                c.session = Some(session);
            }
            let deadline = self.deadline(now_ms, timeout);
            self.sessions.insert(
                session,
                Session::new(timeout, deadline, Some(conn), SessionOwner::Here),
            );
            let local = self.role == Role::ReadOnly
                || (self.cfg.local_sessions && matches!(self.role, Role::Learner | Role::Leader));
            if local {
                // A local session: nobody else hears of it unless it creates an ephemeral.
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.local = true;
                }
                return self.open_session(
                    conn,
                    session,
                    timeout,
                    req.read_only,
                    "local session",
                    now_ms,
                );
            }
            if self.role == Role::Learner {
                // The leader makes the createSession txn; the session is ours once it
                // comes back committed.
                self.connecting.insert(session, (conn, req.read_only));
                return self.forward_create_session(session, timeout);
            }
            self.propose(
                session,
                0,
                Txn::CreateSession {
                    timeout_ms: timeout,
                },
                Origin::CreateSession {
                    conn,
                    read_only: req.read_only,
                },
                Some(prep::Changes::default()),
            );
            return;
        }
        // Re-attach: first take the session away from any other connection.
        let session = req.session_id;
        if let Some(old) = self.sessions.get(&session).and_then(|s| s.conn) {
            if old != conn {
                self.close_conn(old);
                if let Some(c) = self.conns.get_mut(&old) {
                    c.session = None;
                }
            }
        }
        let password_ok = req.passwd.as_slice() == auth::session_password(session).as_slice();
        let local_here = self
            .sessions
            .get(&session)
            .is_some_and(|s| s.local && !s.closing);
        if password_ok && self.role == Role::Learner && !local_here {
            // Only the leader knows whether the session is still alive.
            if let Some(c) = self.conns.get_mut(&conn) {
                c.state = ConnState::Connecting(Vec::new());
            }
            self.revalidating
                .insert(session, (conn, timeout, req.read_only));
            self.actions.push(Action::Revalidate {
                session_id: session,
                timeout_ms: timeout,
            });
            return;
        }
        let valid = password_ok && self.sessions.get(&session).is_some_and(|s| !s.closing);
        self.finish_reattach(conn, session, timeout, req.read_only, valid, now_ms);
    }

    /// Answer a re-attach: the session's ConnectResponse, or the all-zero refusal.
    fn finish_reattach(
        &mut self,
        conn: ConnId,
        session: i64,
        timeout: i32,
        read_only: Option<bool>,
        valid: bool,
        now_ms: i64,
    ) {
        if !valid {
            let resp = ConnectResponse {
                protocol_version: 0,
                timeout_ms: 0,
                session_id: 0,
                passwd: vec![0; 16],
                read_only: read_only.map(|_| false),
            };
            self.send(conn, frame_of(|w| resp.write(w)));
            return self.close_conn(conn);
        }
        let deadline = self.deadline(now_ms, timeout);
        let s = self.sessions.entry(session).or_insert(Session::new(
            timeout,
            deadline,
            None,
            SessionOwner::Here,
        ));
        s.conn = Some(conn);
        s.owner = SessionOwner::Here;
        s.timeout_ms = timeout;
        s.deadline_ms = deadline;
        self.open_session(
            conn,
            session,
            timeout,
            read_only,
            "session re-attached",
            now_ms,
        );
    }

    /// Answer a connect with the session, open the connection and run the requests it sent
    /// while it waited.
    fn open_session(
        &mut self,
        conn: ConnId,
        session: i64,
        timeout: i32,
        read_only: Option<bool>,
        what: &'static str,
        now_ms: i64,
    ) {
        let backlog = match self.conns.get_mut(&conn).map(|c| {
            c.session = Some(session);
            std::mem::replace(&mut c.state, ConnState::Open)
        }) {
            Some(ConnState::Connecting(b)) => b,
            _ => Vec::new(),
        };
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout_ms: timeout,
            session_id: session,
            passwd: auth::session_password(session).to_vec(),
            read_only: read_only.map(|_| self.role == Role::ReadOnly),
        };
        tracing::debug!(session = format_args!("{session:#x}"), timeout, "{what}");
        self.send(conn, frame_of(|w| resp.write(w)));
        for frame in backlog {
            self.on_request(conn, &frame, now_ms);
        }
    }

    fn on_revalidated(&mut self, session: i64, valid: bool, now_ms: i64) {
        let Some((conn, timeout, read_only)) = self.revalidating.remove(&session) else {
            return;
        };
        let waiting = self
            .conns
            .get(&conn)
            .is_some_and(|c| matches!(c.state, ConnState::Connecting(_)) && c.session.is_none());
        if waiting {
            self.finish_reattach(conn, session, timeout, read_only, valid, now_ms);
        }
    }

    /// ZooKeeper's expiry buckets: deadlines are rounded up to the next tick.
    fn deadline(&self, now_ms: i64, timeout_ms: i32) -> i64 {
        let t = now_ms + timeout_ms as i64;
        (t / self.cfg.tick_ms + 1) * self.cfg.tick_ms
    }

    /// Push a session's expiry out by its timeout. A learner also notes the session for its
    /// next PING, which keeps it alive at the leader.
    /// Whether `session` lives on this member only.
    fn is_local(&self, session: i64) -> bool {
        self.role == Role::ReadOnly || self.sessions.get(&session).is_some_and(|s| s.local)
    }

    /// A local session about to create an ephemeral becomes global (ZooKeeper's
    /// `checkUpgradeSession`): its createSession goes to the leader (or is proposed here)
    /// ahead of the request, so the ensemble knows the ephemeral's owner.
    fn upgrade_session(&mut self, session: i64) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        s.local = false;
        let timeout = s.timeout_ms;
        tracing::info!(
            session = format_args!("{session:#x}"),
            "upgrading a local session to global"
        );
        if self.role == Role::Learner {
            self.forward_create_session(session, timeout);
        } else {
            let txn = Txn::CreateSession {
                timeout_ms: timeout,
            };
            let changes = Some(prep::Changes::default());
            self.propose(session, 0, txn, Origin::Internal, changes);
        }
    }

    /// Learner: ask the leader for `session`'s createSession txn.
    fn forward_create_session(&mut self, session: i64, timeout_ms: i32) {
        self.actions.push(Action::Forward {
            session_id: session,
            cxid: 0,
            op: OpCode::CreateSession.code(),
            body: timeout_ms.to_be_bytes().to_vec(),
            auth: None,
        });
    }

    fn touch(&mut self, session: i64, now_ms: i64) {
        let tick = self.cfg.tick_ms;
        if let Some(s) = self.sessions.get_mut(&session) {
            let t = now_ms + s.timeout_ms as i64;
            s.deadline_ms = (t / tick + 1) * tick;
            if self.role == Role::Learner && !s.local {
                self.touched.insert(session, s.timeout_ms);
            }
        }
    }

    /// Assign the next zxid to `txn`, publish its `changes` to the pending view, hand it to
    /// the log with the tree digest it will produce (error txns, which have no changes,
    /// carry none, as in ZooKeeper), and remember where it came from.
    fn propose(
        &mut self,
        session: i64,
        cxid: i32,
        txn: Txn,
        origin: Origin,
        changes: Option<prep::Changes>,
    ) -> i64 {
        let zxid = self.next_zxid;
        self.next_zxid += 1;
        let digest_delta = changes.as_ref().map_or(0, |c| c.digest_delta);
        let has_changes = changes.is_some();
        if let Some(c) = changes {
            prep::publish(c, zxid, &mut self.pending);
        }
        let digest = (self.cfg.digest_enabled && has_changes && !matches!(txn, Txn::Error { .. }))
            .then(|| self.pending.digest(&self.tree));
        let header = TxnHeader {
            session_id: session,
            cxid,
            zxid,
            time_ms: self.wall_ms,
            op: txn.op().code(),
        };
        // Room for a typical entry at once: growing from empty reallocates several times.
        let mut w = Writer::with_buf(Vec::with_capacity(256));
        // The entry borrows the txn for encoding and gives it back: no copy of its path,
        // data and ACL per write.
        let entry = TxnEntry {
            header,
            txn,
            digest: digest.map(|tree_digest| zooid_proto::TxnDigest {
                version: 2,
                tree_digest,
            }),
        };
        entry.encode(&mut w);
        self.actions.push(Action::Append {
            zxid,
            entry: w.into_inner(),
        });
        self.inflight.push_back(Inflight {
            header,
            txn: entry.txn,
            origin,
            digest_delta,
            digest,
        });
        zxid
    }

    /// One token of the connection throttle, if there is one (always, when it is off).
    fn take_connection_token(&mut self, now_ms: i64) -> bool {
        let t = self.cfg.connection_throttle;
        if t.tokens == 0 {
            return true;
        }
        let b = &mut self.bucket;
        let fill_ms = t.fill_ms.max(1);
        let fills = (now_ms - b.filled_ms).max(0) / fill_ms;
        if fills > 0 {
            b.tokens = (b.tokens + fills * i64::from(t.fill_count)).min(i64::from(t.tokens));
            b.filled_ms += fills * fill_ms;
        }
        if b.tokens < 1 {
            return false;
        }
        b.tokens -= 1;
        true
    }

    /// A reply of only a header with `err`, sent in the request's turn: a read-only
    /// member's NOTREADONLY, a throttled request's THROTTLEDOP, a local closeSession's OK.
    fn header_reply(&mut self, conn: ConnId, xid: i32, err: zooid_proto::ErrorCode) {
        let hdr = ReplyHeader {
            xid,
            zxid: self.tree.last_zxid(),
            err: err.code(),
        };
        self.reply_in_order(conn, frame_of(|w| hdr.write(w)));
    }

    /// UNIMPLEMENTED, with no zxid (-1) as ZooKeeper sends it, and the connection closed.
    fn unimplemented(&mut self, conn: ConnId, xid: i32) {
        let hdr = ReplyHeader {
            xid,
            zxid: -1,
            err: zooid_proto::ErrorCode::Unimplemented.code(),
        };
        self.send(conn, frame_of(|w| hdr.write(w)));
        self.close_conn(conn);
    }

    fn on_throttled(&mut self, conn: ConnId, frame: &[u8], now_ms: i64) {
        let open = self
            .conns
            .get(&conn)
            .is_some_and(|c| matches!(c.state, ConnState::Open));
        let mut r = zooid_proto::Reader::new(frame);
        let header = RequestHeader::read(&mut r);
        let exempt = |op: i32| op == OpCode::Ping as i32 || op == OpCode::CloseSession as i32;
        match header {
            Ok(h) if open && !exempt(h.op) => {
                self.stats.throttled_ops += 1;
                self.stats.packets_received += 1;
                self.header_reply(conn, h.xid, zooid_proto::ErrorCode::ThrottledOp);
            }
            _ => self.on_frame(conn, frame, now_ms),
        }
    }

    fn on_request(&mut self, conn: ConnId, frame: &[u8], now_ms: i64) {
        let mut r = zooid_proto::Reader::new(frame);
        let Ok(h) = RequestHeader::read(&mut r) else {
            tracing::debug!(conn, "frame shorter than a request header; closing");
            return self.close_conn(conn);
        };
        let Some(session) = self.conns.get(&conn).and_then(|c| c.session) else {
            return self.close_conn(conn);
        };
        self.touch(session, now_ms);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stats.last_cxid = h.xid;
            if let Some(label) = op_label(h.op) {
                c.stats.last_op = label;
            }
        }
        let body = r.rest();
        let request = match Request::decode(h.op, body) {
            Ok(req) => req,
            Err(e) => {
                tracing::debug!(conn, op = h.op, error = %e, "undecodable request");
                return self.on_malformed(conn, session, h, body, now_ms);
            }
        };
        if !matches!(request, Request::Auth(_) | Request::Sasl { .. }) && !self.authenticated(conn)
        {
            tracing::warn!(
                conn,
                schemes = ?self.cfg.required_schemes,
                "Client authentication scheme(s) required and not held; closing session"
            );
            let err = zooid_proto::ErrorCode::SessionClosedRequireSaslAuth;
            self.header_reply(conn, h.xid, err);
            return self.close_conn(conn);
        }
        match request {
            Request::Unknown(op) => {
                tracing::debug!(
                    conn,
                    op,
                    "unknown opcode; replying UNIMPLEMENTED and closing"
                );
                self.unimplemented(conn, h.xid);
            }
            Request::Check { .. } => {
                // check belongs inside a multi. ZooKeeper 3.9 refuses it alone like an
                // unknown opcode; 3.8 carried it out and, when it passed, never answered.
                tracing::debug!(
                    conn,
                    "check outside a multi; replying UNIMPLEMENTED and closing"
                );
                self.unimplemented(conn, h.xid);
            }
            Request::Auth(a) => self.on_auth(conn, h.xid, a),
            Request::Sasl { token }
                if self.cfg.sasl.as_ref().is_some_and(|s| s.digest.is_some()) =>
            {
                self.on_sasl(conn, h.xid, &token)
            }
            Request::Sasl { .. } => {
                // No SASL mechanism is configured: ZooKeeper answers OK with a null token and
                // leaves the connection open.
                let frame = frame_of(|w| {
                    ReplyHeader {
                        xid: h.xid,
                        zxid: 0,
                        err: 0,
                    }
                    .write(w);
                    w.write_opt_buffer(None);
                });
                self.reply_in_order(conn, frame);
            }
            Request::CloseSession if self.is_local(session) => {
                self.forget_session(session);
                self.header_reply(conn, h.xid, zooid_proto::ErrorCode::Ok);
                self.close_conn(conn);
            }
            req if self.role != Role::ReadOnly
                && self.is_local(session)
                && creates_ephemeral(&req) =>
            {
                if !self.cfg.local_sessions_upgrading {
                    let err = zooid_proto::ErrorCode::EphemeralOnLocalSession;
                    return self.header_reply(conn, h.xid, err);
                }
                self.upgrade_session(session);
                if self.role == Role::Learner {
                    self.forward(conn, session, h, body, &req, now_ms)
                } else {
                    self.on_write(conn, session, h.xid, req, now_ms)
                }
            }
            req if (req.is_write() || matches!(req, Request::Sync { .. }))
                && self.role == Role::ReadOnly =>
            {
                self.header_reply(conn, h.xid, zooid_proto::ErrorCode::NotReadOnly)
            }
            req if req.is_write() && self.role == Role::Learner => {
                self.forward(conn, session, h, body, &req, now_ms)
            }
            req if req.is_write() => self.on_write(conn, session, h.xid, req, now_ms),
            Request::Sync { path } if self.role == Role::Learner => {
                // Answered once the leader's SYNC comes back, after every txn it had
                // proposed before it is applied here.
                self.syncs.push_back((conn, h.xid, path));
                self.forward_raw(conn, session, h, body, Key::Sync, false, now_ms);
            }
            req => {
                let queued = self.conns.get(&conn).is_some_and(|c| !c.queue.is_empty());
                if queued {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.queue.push_back(Queued::Read {
                            xid: h.xid,
                            request: req,
                            recv_ms: now_ms,
                        });
                    }
                } else {
                    let reply = self.read(conn, session, h.xid, req, now_ms);
                    self.record_latency(conn, 0, false);
                    self.send(conn, reply);
                }
            }
        }
    }

    /// A body that does not decode: writes become an error txn (consuming a zxid, as in
    /// ZooKeeper), reads get MARSHALLINGERROR at once.
    fn on_malformed(
        &mut self,
        conn: ConnId,
        session: i64,
        h: RequestHeader,
        body: &[u8],
        now_ms: i64,
    ) {
        let is_write = matches!(
            OpCode::from_i32(h.op),
            Some(
                OpCode::Create
                    | OpCode::Create2
                    | OpCode::CreateContainer
                    | OpCode::CreateTtl
                    | OpCode::Delete
                    | OpCode::SetData
                    | OpCode::SetAcl
                    | OpCode::Check
                    | OpCode::Multi
                    | OpCode::DeleteContainer
                    | OpCode::Reconfig
                    | OpCode::CreateSession
            )
        );
        if is_write && self.role == Role::ReadOnly {
            self.header_reply(conn, h.xid, zooid_proto::ErrorCode::NotReadOnly);
        } else if is_write && self.role == Role::Learner {
            // The leader turns it into the error txn.
            let op = OpCode::from_i32(h.op).unwrap_or(OpCode::Error);
            let key = Key::Forwarded(h.xid, op);
            self.forward_raw(conn, session, h, body, key, false, now_ms);
        } else if is_write {
            let op = OpCode::from_i32(h.op).unwrap_or(OpCode::Error);
            let txn = Txn::Error {
                err: zooid_proto::ErrorCode::MarshallingError.code(),
            };
            let zxid = self.propose(
                session,
                h.xid,
                txn,
                Origin::Client {
                    conn,
                    xid: h.xid,
                    op,
                },
                None,
            );
            self.enqueue_write(conn, zxid, false, now_ms);
        } else {
            let hdr = ReplyHeader {
                xid: h.xid,
                zxid: self.tree.last_zxid(),
                err: zooid_proto::ErrorCode::MarshallingError.code(),
            };
            let frame = frame_of(|w| hdr.write(w));
            self.reply_in_order(conn, frame);
        }
    }

    /// Learner: send a write to the leader; its reply waits in the FIFO for the txn.
    fn forward(
        &mut self,
        conn: ConnId,
        session: i64,
        h: RequestHeader,
        body: &[u8],
        req: &Request,
        now_ms: i64,
    ) {
        let op = req.op();
        let close_after = matches!(req, Request::CloseSession);
        if close_after {
            if let Some(s) = self.sessions.get_mut(&session) {
                s.closing = true;
            }
        }
        let key = Key::Forwarded(h.xid, op);
        self.forward_raw(conn, session, h, body, key, close_after, now_ms);
    }

    /// Queue the reply slot `key` and send the request to the leader as it arrived.
    #[allow(clippy::too_many_arguments)]
    fn forward_raw(
        &mut self,
        conn: ConnId,
        session: i64,
        h: RequestHeader,
        body: &[u8],
        key: Key,
        close_after: bool,
        now_ms: i64,
    ) {
        let auth = self.conns.get(&conn).map(|c| c.auth.clone());
        if let Some(c) = self.conns.get_mut(&conn) {
            c.queue.push_back(Queued::Write {
                key,
                reply: None,
                close_after,
                recv_ms: now_ms,
            });
        }
        self.actions.push(Action::Forward {
            session_id: session,
            cxid: h.xid,
            op: h.op,
            body: body.to_vec(),
            auth,
        });
    }

    fn enqueue_write(&mut self, conn: ConnId, zxid: i64, close_after: bool, recv_ms: i64) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.queue.push_back(Queued::Write {
                key: Key::Zxid(zxid),
                reply: None,
                close_after,
                recv_ms,
            });
        }
    }

    /// Send `frame` now if nothing is queued on the connection, else after what is queued.
    fn reply_in_order(&mut self, conn: ConnId, frame: Vec<u8>) {
        let queued = self.conns.get(&conn).is_some_and(|c| !c.queue.is_empty());
        if queued {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.queue.push_back(Queued::Write {
                    key: Key::Ready,
                    reply: Some(frame),
                    close_after: false,
                    recv_ms: 0,
                });
            }
        } else {
            self.send(conn, frame);
        }
    }

    /// Add identities a connection proved (its TLS certificate, a SASL exchange).
    fn grant(&mut self, conn: ConnId, ids: Vec<Id>) {
        if let Some(c) = self.conns.get_mut(&conn) {
            for id in ids {
                if !c.auth.contains(&id) {
                    c.auth.push(id);
                }
            }
        }
    }

    /// Whether the connection holds an id of a required scheme (or none is required).
    fn authenticated(&self, conn: ConnId) -> bool {
        let required = &self.cfg.required_schemes;
        required.is_empty()
            || self.conns.get(&conn).is_some_and(|c| {
                c.auth
                    .iter()
                    .any(|i| i.scheme == "super" || required.contains(&i.scheme))
            })
    }

    /// 30 random bytes for a nonce, from the core's own generator (splitmix64).
    fn random30(&mut self) -> [u8; 30] {
        let mut out = [0u8; 30];
        for chunk in out.chunks_mut(8) {
            self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_be_bytes()[..chunk.len()]);
        }
        out
    }

    /// One SASL token (opcode 102) of a DIGEST-MD5 exchange.
    fn on_sasl(&mut self, conn: ConnId, xid_: i32, token: &[u8]) {
        use crate::sasl::{Exchange, Step};
        let Some((cfg, digest)) = self
            .cfg
            .sasl
            .clone()
            .and_then(|s| s.digest.clone().map(|d| (s, d)))
        else {
            return;
        };
        let state = self
            .conns
            .get(&conn)
            .map_or(Exchange::Done, |c| c.sasl.clone());
        let step = match state {
            Exchange::Start => {
                let nonce = crate::sasl::nonce(self.random30());
                let token = crate::sasl::challenge(crate::sasl::CLIENTS, &nonce);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.sasl = Exchange::Challenged { nonce };
                }
                Step::Challenge(token)
            }
            Exchange::Challenged { nonce } => digest.respond(crate::sasl::CLIENTS, &nonce, token),
            Exchange::Done => Step::Failure(String::from("DIGEST-MD5: Server at illegal state")),
        };
        let (err, token) = match step {
            Step::Challenge(t) => (0, Some(t)),
            Step::Success { user, token } => {
                let id = crate::sasl::authorization_id(&user, cfg.remove_host, cfg.remove_realm);
                tracing::info!(conn, authorization_id = %id, "adding SASL authorization");
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.sasl = Exchange::Done;
                }
                let mut ids = vec![Id::new("sasl", &id)];
                if let Some(any) = &cfg.let_any {
                    ids.push(Id::new("sasl", any));
                }
                if digest.super_users.contains(&id) {
                    tracing::info!(conn, id = %id, "Authenticated Id as super user");
                    ids.push(Id::new("super", ""));
                }
                self.grant(conn, ids);
                (0, Some(token))
            }
            Step::Failure(why) => {
                let addr = self.conns.get(&conn).map(|c| c.addr);
                tracing::warn!(conn, ?addr, reason = %why, "Client failed to SASL authenticate");
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.sasl = Exchange::Done;
                }
                let required = self.cfg.required_schemes.iter().any(|s| s == "sasl");
                if cfg.allow_failed && !required {
                    tracing::warn!(
                        conn,
                        "Maintaining client connection despite SASL authentication failure"
                    );
                    (0, None)
                } else {
                    let code = if required {
                        zooid_proto::ErrorCode::SessionClosedRequireSaslAuth
                    } else {
                        zooid_proto::ErrorCode::AuthFailed
                    };
                    let frame = frame_of(|w| {
                        ReplyHeader {
                            xid: xid_,
                            zxid: 0,
                            err: code.code(),
                        }
                        .write(w);
                        w.write_opt_buffer(None);
                    });
                    self.reply_in_order(conn, frame);
                    tracing::info!(
                        conn,
                        "Closing client connection due to SASL authentication failure"
                    );
                    return self.close_conn(conn);
                }
            }
        };
        let frame = frame_of(|w| {
            ReplyHeader {
                xid: xid_,
                zxid: 0,
                err,
            }
            .write(w);
            w.write_opt_buffer(token.as_deref());
        });
        self.reply_in_order(conn, frame);
    }

    fn on_auth(&mut self, conn: ConnId, xid_: i32, a: zooid_proto::AuthPacket) {
        let ok = match a.scheme.as_str() {
            "digest" => {
                let id = auth::digest_id(&String::from_utf8_lossy(&a.auth));
                let superuser = self.cfg.super_digest.as_deref() == Some(id.as_str());
                if let Some(c) = self.conns.get_mut(&conn) {
                    if superuser && !c.auth.iter().any(|i| i.scheme == "super") {
                        c.auth.push(Id::new("super", ""));
                    }
                    let id = Id::new("digest", &id);
                    if !c.auth.contains(&id) {
                        c.auth.push(id);
                    }
                }
                true
            }
            // The ip provider authenticates by address; the id is already on the connection.
            "ip" => true,
            // The certificate provider authenticates by the TLS handshake.
            scheme if Some(scheme) == self.cfg.cert_scheme.as_deref() => self
                .conns
                .get(&conn)
                .is_some_and(|c| c.auth.iter().any(|i| i.scheme == scheme)),
            _ => false,
        };
        let hdr = ReplyHeader {
            xid: xid_,
            zxid: 0,
            err: if ok {
                0
            } else {
                zooid_proto::ErrorCode::AuthFailed.code()
            },
        };
        self.send(conn, frame_of(|w| hdr.write(w)));
        if !ok {
            self.stats.auth_failed += 1;
            tracing::info!(conn, scheme = %a.scheme, "authentication failed: no such scheme; closing");
            self.close_conn(conn);
        }
    }

    fn on_write(&mut self, conn: ConnId, session: i64, xid_: i32, req: Request, now_ms: i64) {
        let op = req.op();
        let auth_ids = self
            .conns
            .get(&conn)
            .map(|c| c.auth.clone())
            .unwrap_or_default();
        let zxid = self.next_zxid;
        let moved = self.role == Role::Leader && !self.claim(session, SessionOwner::Here);
        let (txn, changes, close_after) = if moved {
            let err = zooid_proto::ErrorCode::SessionMoved.code();
            (Txn::Error { err }, None, false)
        } else {
            self.prep_write(session, &req, &auth_ids)
        };
        let z = self.propose(
            session,
            xid_,
            txn,
            Origin::Client {
                conn,
                xid: xid_,
                op,
            },
            changes,
        );
        debug_assert_eq!(z, zxid);
        self.enqueue_write(conn, zxid, close_after, now_ms);
    }

    /// Leader: a request a learner forwarded. Its client is answered by that learner when
    /// the txn comes back committed, so nothing waits here.
    #[allow(clippy::too_many_arguments)]
    fn on_forwarded(
        &mut self,
        from: u64,
        session: i64,
        cxid: i32,
        op: i32,
        body: &[u8],
        auth: Vec<Id>,
        now_ms: i64,
    ) {
        let known = self.sessions.get(&session).is_some_and(|s| !s.closing);
        let (txn, changes) = match OpCode::from_i32(op) {
            // A learner's new session. createSession's opcode sent by a client on a session
            // it already has is a malformed request, as on a standalone server.
            Some(OpCode::CreateSession) if !self.sessions.contains_key(&session) => {
                let timeout = zooid_proto::Reader::new(body)
                    .read_i32()
                    .unwrap_or(self.cfg.min_session_timeout_ms)
                    .clamp(
                        self.cfg.min_session_timeout_ms,
                        self.cfg.max_session_timeout_ms,
                    );
                let deadline_ms = self.deadline(now_ms, timeout);
                self.sessions.entry(session).or_insert(Session::new(
                    timeout,
                    deadline_ms,
                    None,
                    SessionOwner::Learner(from),
                ));
                let txn = Txn::CreateSession {
                    timeout_ms: timeout,
                };
                (txn, Some(prep::Changes::default()))
            }
            // A learner's local session (its id carries the learner's server id): the
            // learner vouches for it, as ZooKeeper's LeaderSessionTracker lets it.
            _ if !known
                && self.cfg.local_sessions
                && !self.sessions.contains_key(&session)
                && (session >> 56) as u64 == from =>
            {
                self.prep_forwarded(session, op, body, &auth, true)
            }
            // ZooKeeper's checkSession: a session the leader does not know has expired, and
            // one attached to another member has moved.
            _ if !known => (
                Txn::Error {
                    err: zooid_proto::ErrorCode::SessionExpired.code(),
                },
                None,
            ),
            _ if !self.claim(session, SessionOwner::Learner(from)) => (
                Txn::Error {
                    err: zooid_proto::ErrorCode::SessionMoved.code(),
                },
                None,
            ),
            _ => {
                self.touch(session, now_ms);
                self.prep_forwarded(session, op, body, &auth, false)
            }
        };
        self.propose(session, cxid, txn, Origin::Internal, changes);
    }

    /// A forwarded write's txn and changes: MARSHALLINGERROR for a body that is not a write
    /// (for a learner's local session, not a closeSession either: the learner closes those).
    fn prep_forwarded(
        &mut self,
        session: i64,
        op: i32,
        body: &[u8],
        auth: &[Id],
        local: bool,
    ) -> (Txn, Option<prep::Changes>) {
        match Request::decode(op, body) {
            Ok(req) if req.is_write() && !(local && matches!(req, Request::CloseSession)) => {
                let (txn, changes, _) = self.prep_write(session, &req, auth);
                (txn, changes)
            }
            _ => (
                Txn::Error {
                    err: zooid_proto::ErrorCode::MarshallingError.code(),
                },
                None,
            ),
        }
    }

    /// The config text a reconfig asks for, numbered `zxid`, checked in ZooKeeper's order:
    /// enabled, a leader, none in progress, the expected version, a well-formed membership
    /// with enough voters, a synced quorum of it. (Write permission on `/zookeeper/config`,
    /// which only the super user has, is checked last, by `prep_reconfig`.)
    fn plan_reconfig(
        &self,
        joining: Option<&str>,
        leaving: Option<&str>,
        new_members: Option<&str>,
        config_id: i64,
        zxid: i64,
    ) -> Result<Vec<u8>, zooid_proto::ErrorCode> {
        use zooid_proto::ErrorCode as E;
        if !self.cfg.reconfig_enabled {
            return Err(E::ReconfigDisabled);
        }
        let view = self.ensemble.as_ref().ok_or(E::Unimplemented)?;
        if view.in_progress {
            return Err(E::ReconfigInProgress);
        }
        if config_id != -1 && config_id != view.version {
            tracing::warn!(
                config_id,
                last_seen = view.version,
                "reconfig refused: not from the last seen config version"
            );
            return Err(E::BadVersion);
        }
        let min_voters = if self.cfg.standalone_enabled { 2 } else { 1 };
        let next = zooid_zab::config_text::reconfigure(
            &view.members,
            joining,
            leaving,
            new_members,
            min_voters,
        )
        .map_err(|e| {
            tracing::warn!(error = %e, "reconfig refused");
            match e {
                // ZooKeeper fails parsing the id outside its checks: the request is
                // answered as one it could not read.
                zooid_zab::config_text::ReconfigError::LeavingId(_) => E::MarshallingError,
                _ => E::BadArguments,
            }
        })?;
        let quorum = QuorumVerifier::of_members(&next).ok_or(E::BadArguments)?;
        if !quorum.has_quorum(&view.synced) {
            tracing::warn!(
                "Reconfig failed - there must be a connected and synced quorum in new configuration"
            );
            return Err(E::NewConfigNoQuorum);
        }
        Ok(zooid_zab::config_text::render(&next, zxid).into_bytes())
    }

    /// Check a write against the tree and the pending view, in ZooKeeper's order, and build
    /// its txn: (txn, its changes unless it is an error txn, whether the session closes).
    fn prep_write(
        &mut self,
        session: i64,
        req: &Request,
        auth_ids: &[Id],
    ) -> (Txn, Option<prep::Changes>, bool) {
        let zxid = self.next_zxid;
        let ctx = Ctx {
            session,
            auth: auth_ids,
            zxid,
            now_ms: self.wall_ms,
            extended_types: self.cfg.extended_types_enabled,
            enforce_quota: self.cfg.enforce_quota,
            cert_scheme: self.cfg.cert_scheme.as_deref(),
            sasl_scheme: self.cfg.sasl.as_ref().is_some_and(|s| s.acl_scheme),
        };
        let mut ov = Overlay::new(&self.tree, &self.pending);
        let mut close_after = false;
        let txn = match req {
            Request::Create(c) => prep::prep_create(c, &mut ov, &ctx),
            Request::Delete { path, version } => prep::prep_delete(path, *version, &mut ov, &ctx),
            Request::SetData {
                path,
                data,
                version,
            } => prep::prep_set_data(path, data.as_deref(), *version, &mut ov, &ctx),
            Request::Check { path, version } => prep::prep_check(path, *version, &mut ov, &ctx),
            Request::SetAcl { path, acl, version } => {
                prep::prep_set_acl(path, acl, *version, &mut ov, &ctx)
            }
            Request::Multi(ops) => {
                let (txn, ok) = prep::prep_multi(ops, &mut ov, &ctx);
                if ok {
                    Ok(txn)
                } else {
                    // Nothing of a failed multi may reach the pending view.
                    ov = Overlay::new(&self.tree, &self.pending);
                    Ok(txn)
                }
            }
            // Clients may not delete containers themselves (3.8 answers BADARGUMENTS).
            Request::DeleteContainer { .. } => Err(zooid_proto::ErrorCode::BadArguments),
            Request::Reconfig {
                joining,
                leaving,
                new_members,
                config_id,
            } => self
                .plan_reconfig(
                    joining.as_deref(),
                    leaving.as_deref(),
                    new_members.as_deref(),
                    *config_id,
                    zxid,
                )
                .and_then(|text| prep::prep_reconfig(text, &mut ov, &ctx)),
            Request::CloseSession => {
                close_after = true;
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.closing = true;
                }
                Ok(prep::prep_close_session(session, zxid, &mut ov))
            }
            _ => unreachable!("is_write() covers exactly these requests"),
        };
        if let (Ok(Txn::Reconfig { .. }), Some(view)) = (&txn, self.ensemble.as_mut()) {
            // Until it commits and the member says so, no other reconfig may start.
            view.in_progress = true;
        }
        match txn {
            Ok(t) => (t, Some(ov.into_changes()), close_after),
            Err(e) => (Txn::Error { err: e.code() }, None, close_after),
        }
    }

    fn on_persisted(&mut self, zxid: i64, now_ms: i64) {
        while self.inflight.front().is_some_and(|f| f.header.zxid <= zxid) {
            let f = self.inflight.pop_front().expect("checked");
            self.apply(f, now_ms);
        }
    }

    /// Bytes each txn writes under its top-level znode, as ZooKeeper's DataTree counts them.
    fn tally_writes(&mut self, txn: &Txn) {
        let map = &mut self.stats.writes_per_namespace;
        let data_len = |d: &Option<Vec<u8>>| d.as_ref().map_or(0, |d| d.len()) as i64;
        match txn {
            Txn::Create { path, data, .. } | Txn::SetData { path, data, .. } => {
                tally_namespace(map, path, path.len() as i64 + data_len(data))
            }
            Txn::Delete { path, .. } => tally_namespace(map, path, path.len() as i64),
            Txn::CloseSession { paths: Some(paths) } => {
                for p in paths {
                    tally_namespace(map, p, p.len() as i64);
                }
            }
            Txn::Multi(txns) => {
                for t in txns {
                    self.tally_writes(t);
                }
            }
            _ => {}
        }
    }

    fn apply(&mut self, f: Inflight, now_ms: i64) {
        assert!(
            f.header.zxid > self.tree.last_zxid() || self.tree.last_zxid() == 0,
            "txns are applied in zxid order"
        );
        self.tally_writes(&f.txn);
        let applied = self.tree.apply(&f.header, &f.txn);
        self.pending.applied(f.header.zxid, f.digest_delta);
        if self.cfg.digest_enabled && f.header.zxid % DIGEST_LOG_INTERVAL == 0 {
            if self.digest_log.len() == DIGEST_LOG_LIMIT {
                self.digest_log.pop_front();
            }
            self.digest_log
                .push_back((f.header.zxid, self.tree.digest()));
        }
        if let Some(expected) = f.digest {
            // The digest logged with the txn was computed from the pending view; the tree
            // must agree once the txn is applied, or replay would report a mismatch.
            if self.digest_differs(f.header.zxid, expected, "the digest logged with this txn") {
                debug_assert_eq!(
                    self.tree.digest(),
                    expected,
                    "digest of txn {:#x}",
                    f.header.zxid
                );
            }
        }
        self.deliver(&applied.fired, f.header.zxid);
        let zxid = f.header.zxid;
        match f.origin {
            Origin::Client { conn, xid, op } => {
                let frame = reply_for(xid, zxid, op, &f.txn, &applied.result);
                let key = match self.role {
                    Role::Learner => Key::Forwarded(xid, op),
                    _ => Key::Zxid(zxid),
                };
                self.fill_reply(conn, key, zxid, frame, now_ms);
                if matches!(f.txn, Txn::CloseSession { .. }) {
                    self.forget_session(f.header.session_id);
                }
            }
            Origin::CreateSession { conn, read_only } => {
                let session = f.header.session_id;
                let timeout = self.sessions.get(&session).map_or(0, |s| s.timeout_ms);
                let alive = self
                    .conns
                    .get(&conn)
                    .is_some_and(|c| c.session == Some(session));
                if alive {
                    let what = "session established";
                    self.open_session(conn, session, timeout, read_only, what, now_ms);
                }
            }
            Origin::Internal => match f.txn {
                Txn::CloseSession { .. } => {
                    // Expired (or closed through another member): its connection here, if
                    // any, goes too.
                    let session = f.header.session_id;
                    if let Some(conn) = self.sessions.get(&session).and_then(|s| s.conn) {
                        self.close_conn(conn);
                    }
                    self.forget_session(session);
                }
                Txn::CreateSession { timeout_ms } => {
                    let session = f.header.session_id;
                    let deadline = self.deadline(now_ms, timeout_ms);
                    self.sessions.entry(session).or_insert(Session::new(
                        timeout_ms,
                        deadline,
                        None,
                        SessionOwner::Unclaimed,
                    ));
                }
                _ => {}
            },
        }
    }

    /// Learner: apply a committed txn, answering the local client whose request it is.
    fn on_apply(&mut self, entry: TxnEntry, now_ms: i64) {
        if entry.header.zxid <= self.tree.last_zxid() {
            // The leader's Zab state machine delivers each zxid once, above what the tree
            // reflects; anything else is a protocol fault, never worth a crash.
            tracing::warn!(
                zxid = format_args!("{:#x}", entry.header.zxid),
                last = format_args!("{:#x}", self.tree.last_zxid()),
                "ignoring a committed txn at or below the last applied zxid"
            );
            return;
        }
        let session = entry.header.session_id;
        let origin = match &entry.txn {
            Txn::CreateSession { .. } => match self.connecting.remove(&session) {
                Some((conn, read_only)) => Origin::CreateSession { conn, read_only },
                None => Origin::Internal,
            },
            _ => {
                let cxid = entry.header.cxid;
                // The leader's own closeSession (an expiry, cxid 0) answers no request.
                let closing = matches!(entry.txn, Txn::CloseSession { .. });
                let waiting = self
                    .sessions
                    .get(&session)
                    .and_then(|s| s.conn)
                    .and_then(|conn| {
                        let c = self.conns.get(&conn)?;
                        c.queue.iter().find_map(|q| match q {
                            Queued::Write {
                                key: Key::Forwarded(x, op),
                                reply: None,
                                ..
                            } if *x == cxid && (!closing || *op == OpCode::CloseSession) => {
                                Some((conn, *op))
                            }
                            _ => None,
                        })
                    });
                match waiting {
                    Some((conn, op)) => Origin::Client {
                        conn,
                        xid: cxid,
                        op,
                    },
                    None => Origin::Internal,
                }
            }
        };
        let f = Inflight {
            header: entry.header,
            txn: entry.txn,
            origin,
            digest_delta: 0,
            digest: None,
        };
        self.apply(f, now_ms);
        if let Some(expected) = entry.digest.map(|d| d.tree_digest) {
            if self.cfg.digest_enabled {
                self.digest_differs(entry.header.zxid, expected, "the leader's for this txn");
            }
        }
    }

    /// Compare the tree digest after applying `zxid` with `expected`; count and report a
    /// mismatch.
    fn digest_differs(&mut self, zxid: i64, expected: i64, whose: &str) -> bool {
        let actual = self.tree.digest();
        if actual == expected {
            return false;
        }
        self.stats.digest_mismatches += 1;
        tracing::error!(
            zxid = format_args!("{zxid:#x}"),
            expected,
            actual,
            "tree digest differs from {whose}"
        );
        true
    }

    /// Learner: the leader's SYNC for our oldest forwarded sync.
    fn on_sync_done(&mut self, now_ms: i64) {
        let Some((conn, xid, path)) = self.syncs.pop_front() else {
            return;
        };
        let Some(session) = self.conns.get(&conn).and_then(|c| c.session) else {
            return;
        };
        let frame = self.read(conn, session, xid, Request::Sync { path }, now_ms);
        self.fill_reply(conn, Key::Sync, self.tree.last_zxid(), frame, now_ms);
    }

    fn forget_session(&mut self, session: i64) {
        self.tree.watches.remove_session(session);
        if let Some(s) = self.sessions.remove(&session) {
            if let Some(conn) = s.conn {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.session = None;
                }
            }
        }
    }

    /// Send watch notifications to the sessions' current connections, each only if the
    /// connection's identities may READ the node (ZooKeeper 3.8.4+, CVE-2024-23944). They
    /// carry `zxid`: the txn that fired them, as ZooKeeper 3.9 sends it (3.8 sent -1), or -1
    /// for those a re-registration (setWatches) fires, as 3.9 does.
    fn deliver(&mut self, fired: &[Fired], zxid: i64) {
        for f in fired {
            let Some(conn) = self.sessions.get(&f.session).and_then(|s| s.conn) else {
                continue;
            };
            if let (Some(acl), Some(c)) = (&f.acl, self.conns.get(&conn)) {
                if !acl::check(acl, perms::READ, &c.auth) {
                    continue;
                }
            }
            let frame = notification(f.event, &f.path, zxid);
            self.send(conn, frame);
        }
    }

    /// Store the reply of the write `key` (applied as `zxid`) and flush the connection's
    /// FIFO.
    fn fill_reply(&mut self, conn: ConnId, key: Key, zxid: i64, frame: Vec<u8>, now_ms: i64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        for q in c.queue.iter_mut() {
            if let Queued::Write { key: k, reply, .. } = q {
                if *k == key && reply.is_none() {
                    *reply = Some(frame);
                    break;
                }
            }
        }
        c.stats.last_zxid = zxid;
        self.flush(conn, now_ms);
    }

    fn flush(&mut self, conn: ConnId, now_ms: i64) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let session = c.session;
            match c.queue.front_mut() {
                Some(Queued::Write {
                    reply: reply @ Some(_),
                    close_after,
                    recv_ms,
                    ..
                }) => {
                    let frame = reply.take().expect("matched Some");
                    let close = *close_after;
                    let recv_ms = *recv_ms;
                    c.queue.pop_front();
                    if recv_ms > 0 {
                        self.record_latency(conn, now_ms - recv_ms, true);
                    }
                    self.send(conn, frame);
                    if close {
                        self.close_conn(conn);
                        return;
                    }
                }
                Some(Queued::Read { .. }) => {
                    let Some(Queued::Read {
                        xid,
                        request,
                        recv_ms,
                    }) = c.queue.pop_front()
                    else {
                        unreachable!()
                    };
                    let Some(session) = session else { return };
                    let frame = self.read(conn, session, xid, request, now_ms);
                    self.record_latency(conn, now_ms - recv_ms, false);
                    self.send(conn, frame);
                }
                _ => return,
            }
        }
    }

    /// Answer a read against the committed tree.
    fn read(
        &mut self,
        conn: ConnId,
        session: i64,
        xid_: i32,
        req: Request,
        _now_ms: i64,
    ) -> Vec<u8> {
        use zooid_proto::ErrorCode as E;
        let zxid = self.tree.last_zxid();
        let auth_ids = self
            .conns
            .get(&conn)
            .map(|c| c.auth.clone())
            .unwrap_or_default();
        let reply = |err: E, body: &dyn Fn(&mut Writer)| {
            frame_of(|w| {
                ReplyHeader {
                    xid: xid_,
                    zxid,
                    err: err.code(),
                }
                .write(w);
                if err == E::Ok {
                    body(w);
                }
            })
        };
        let fail = |e: E| reply(e, &|_| {});
        let tree = &mut self.tree;
        let can = |tree: &DataTree, node: &zooid_tree::Node, perm: i32| {
            tree.acls.with(node.acl, |a| acl::check(a, perm, &auth_ids))
        };
        match req {
            Request::Ping => frame_of(|w| {
                ReplyHeader {
                    xid: xid::PING,
                    zxid,
                    err: 0,
                }
                .write(w)
            }),
            Request::Exists { path, watch } => {
                if path.contains('\0') {
                    return fail(E::BadArguments);
                }
                let found = tree
                    .get(&path)
                    .map(|n| (can(tree, n, perms::READ), n.client_stat()));
                match found {
                    Some((false, _)) => fail(E::NoAuth),
                    Some((true, stat)) => {
                        if watch {
                            tree.add_watch(session, &path, WatchKind::Data);
                        }
                        tally_namespace(
                            &mut self.stats.reads_per_namespace,
                            &path,
                            path.len() as i64 + STAT_OVERHEAD_BYTES,
                        );
                        reply(E::Ok, &|w| stat.write(w))
                    }
                    None => {
                        if watch {
                            tree.add_watch(session, &path, WatchKind::Data);
                        }
                        fail(E::NoNode)
                    }
                }
            }
            Request::GetData { path, watch } => {
                let Some(n) = tree.get(&path) else {
                    return fail(E::NoNode);
                };
                if !can(tree, n, perms::READ) {
                    return fail(E::NoAuth);
                }
                let out = reply(E::Ok, &|w| {
                    w.write_opt_buffer(n.data.as_deref());
                    n.client_stat().write(w);
                });
                let bytes = n.data.as_ref().map_or(0, |d| d.len()) + path.len();
                tally_namespace(
                    &mut self.stats.reads_per_namespace,
                    &path,
                    bytes as i64 + STAT_OVERHEAD_BYTES,
                );
                if watch {
                    tree.add_watch(session, &path, WatchKind::Data);
                }
                out
            }
            Request::GetChildren { ref path, watch }
            | Request::GetChildren2 { ref path, watch } => {
                let with_stat = matches!(req, Request::GetChildren2 { .. });
                let Some(n) = tree.get(path) else {
                    return fail(E::NoNode);
                };
                if !can(tree, n, perms::READ) {
                    return fail(E::NoAuth);
                }
                let out = reply(E::Ok, &|w| {
                    w.write_len(n.children.len());
                    for c in &n.children {
                        w.write_string(c);
                    }
                    if with_stat {
                        n.client_stat().write(w);
                    }
                });
                let bytes = n.children.iter().map(|c| c.len()).sum::<usize>() + path.len();
                tally_namespace(
                    &mut self.stats.reads_per_namespace,
                    path,
                    bytes as i64 + STAT_OVERHEAD_BYTES,
                );
                if watch {
                    tree.add_watch(session, path, WatchKind::Child);
                }
                out
            }
            Request::GetAcl { path } => {
                let Some(n) = tree.get(&path) else {
                    return fail(E::NoNode);
                };
                if !can(tree, n, perms::READ | perms::ADMIN) {
                    return fail(E::NoAuth);
                }
                let mut acls = tree.acl_of(n);
                if !can(tree, n, perms::ADMIN) {
                    for a in acls.iter_mut().filter(|a| a.id.scheme == "digest") {
                        let user = a.id.id.split(':').next().unwrap_or("").to_owned();
                        a.id.id = format!("{user}:x");
                    }
                }
                let stat = n.client_stat();
                reply(E::Ok, &|w| {
                    zooid_proto::write_acls(w, &acls);
                    stat.write(w);
                })
            }
            Request::Sync { path } => reply(E::Ok, &|w| w.write_string(&path)),
            Request::GetAllChildrenNumber { path } => {
                let Some(n) = tree.get(&path) else {
                    return fail(E::NoNode);
                };
                if !can(tree, n, perms::READ) {
                    return fail(E::NoAuth);
                }
                let count = tree.all_children_number(&path).unwrap_or(0);
                reply(E::Ok, &|w| w.write_i32(count))
            }
            Request::GetEphemerals { prefix } => {
                let all = tree.ephemerals_of(session);
                let p = prefix.trim();
                let list: Vec<String> = if p.is_empty() || p == "/" {
                    all
                } else {
                    all.into_iter().filter(|e| e.starts_with(&prefix)).collect()
                };
                reply(E::Ok, &|w| w.write_strings(&list))
            }
            Request::WhoAmI => {
                let infos: Vec<(String, String)> = auth::java_set_order(&auth_ids)
                    .into_iter()
                    .map(|i| (i.scheme.clone(), auth::user_name(i)))
                    .collect();
                reply(E::Ok, &|w| {
                    w.write_len(infos.len());
                    for (scheme, user) in &infos {
                        w.write_string(scheme);
                        w.write_string(user);
                    }
                })
            }
            Request::AddWatch { path, mode } => {
                let kind = match mode {
                    zooid_proto::add_watch_mode::PERSISTENT => WatchKind::Persistent,
                    zooid_proto::add_watch_mode::PERSISTENT_RECURSIVE => {
                        WatchKind::PersistentRecursive
                    }
                    _ => return fail(E::MarshallingError),
                };
                tree.add_watch(session, &path, kind);
                reply(E::Ok, &|w| w.write_i32(0))
            }
            Request::CheckWatches { path, watcher_type } => {
                if !(1..=5).contains(&watcher_type) {
                    return fail(E::MarshallingError);
                }
                if tree.watches.contains(session, &path, watcher_type) {
                    reply(E::Ok, &|_| {})
                } else {
                    fail(E::NoWatcher)
                }
            }
            Request::RemoveWatches { path, watcher_type } => {
                if !(1..=5).contains(&watcher_type) {
                    return fail(E::MarshallingError);
                }
                if tree.watches.remove(session, &path, watcher_type) {
                    reply(E::Ok, &|_| {})
                } else {
                    fail(E::NoWatcher)
                }
            }
            Request::SetWatches(sw) => {
                let mut fired = Vec::new();
                tree.set_watches(session, sw.relative_zxid, &sw, &mut fired);
                self.deliver(&fired, -1);
                frame_of(|w| {
                    ReplyHeader {
                        xid: xid_,
                        zxid,
                        err: 0,
                    }
                    .write(w)
                })
            }
            Request::MultiRead(ops) => {
                let mut w = Writer::new();
                let at = w.begin_frame();
                ReplyHeader {
                    xid: xid_,
                    zxid,
                    err: 0,
                }
                .write(&mut w);
                for op in &ops {
                    let (code, path) = match op {
                        ReadOp::GetChildren { path } => (OpCode::GetChildren, path),
                        ReadOp::GetData { path } => (OpCode::GetData, path),
                    };
                    let result = match tree.get(path) {
                        None => Err(E::NoNode),
                        Some(n) if !can(tree, n, perms::READ) => Err(E::NoAuth),
                        Some(n) => Ok(n),
                    };
                    match result {
                        Err(e) => {
                            MultiHeader {
                                op: -1,
                                done: false,
                                err: e.code(),
                            }
                            .write(&mut w);
                            w.write_i32(e.code());
                        }
                        Ok(n) => {
                            MultiHeader {
                                op: code.code(),
                                done: false,
                                err: 0,
                            }
                            .write(&mut w);
                            if code == OpCode::GetData {
                                w.write_opt_buffer(n.data.as_deref());
                                n.client_stat().write(&mut w);
                            } else {
                                w.write_len(n.children.len());
                                for c in &n.children {
                                    w.write_string(c);
                                }
                            }
                        }
                    }
                }
                MultiHeader::END.write(&mut w);
                w.finish_frame(at);
                w.into_inner()
            }
            _ => fail(E::Unimplemented),
        }
    }

    fn on_tick(&mut self, now_ms: i64) {
        // Connections that never sent a ConnectRequest are closed, as ZooKeeper's NIO
        // factory does after its sessionless-connection timeout.
        let idle: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                matches!(c.state, ConnState::New) && now_ms - c.opened_ms >= SESSIONLESS_TIMEOUT_MS
            })
            .map(|(&id, _)| id)
            .collect();
        for conn in idle {
            self.stats.sessionless_expired += 1;
            tracing::debug!(conn, "no ConnectRequest within 10 s; closing");
            self.close_conn(conn);
        }
        // Local sessions (all of a read-only server's) expire here, without a txn: nobody
        // else knows them.
        let local_expired: Vec<i64> = self
            .sessions
            .iter()
            .filter(|(_, s)| (s.local || self.role == Role::ReadOnly) && s.deadline_ms <= now_ms)
            .map(|(&id, _)| id)
            .collect();
        for session in local_expired {
            tracing::info!(
                session = format_args!("{session:#x}"),
                "local session expired"
            );
            if let Some(conn) = self.sessions.get(&session).and_then(|s| s.conn) {
                self.close_conn(conn);
            }
            self.forget_session(session);
        }
        if matches!(self.role, Role::Learner | Role::ReadOnly) {
            // The leader expires the global sessions and deletes containers and TTL nodes.
            return;
        }
        let expired: Vec<i64> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.closing && s.deadline_ms <= now_ms)
            .map(|(&id, _)| id)
            .collect();
        for session in expired {
            tracing::info!(session = format_args!("{session:#x}"), "session expired");
            let conn = self.sessions.get_mut(&session).and_then(|s| {
                s.closing = true;
                s.conn.take()
            });
            if let Some(conn) = conn {
                self.close_conn(conn);
            }
            let mut ov = Overlay::new(&self.tree, &self.pending);
            let txn = prep::prep_close_session(session, self.next_zxid, &mut ov);
            let changes = ov.into_changes();
            self.propose(session, 0, txn, Origin::Internal, Some(changes));
        }
        if now_ms >= self.next_container_check_ms {
            self.next_container_check_ms = now_ms + self.cfg.container_check_interval_ms.max(1);
            let limit = ((self.cfg.container_max_per_minute as i64
                * self.cfg.container_check_interval_ms.max(1))
                / 60_000)
                .max(1) as usize;
            let candidates = self
                .tree
                .deletion_candidates(self.wall_ms, self.cfg.container_max_never_used_ms);
            let candidates: Vec<String> = candidates
                .into_iter()
                .filter(|p| !self.pending.deleting(p))
                .take(limit)
                .collect();
            for path in candidates {
                let zxid = self.next_zxid;
                let ctx = Ctx {
                    session: 0,
                    auth: &[],
                    zxid,
                    now_ms: self.wall_ms,
                    extended_types: true,
                    enforce_quota: false,
                    cert_scheme: None,
                    sasl_scheme: false,
                };
                let mut ov = Overlay::new(&self.tree, &self.pending);
                let Some(txn) = prep::prep_delete_container(&path, &mut ov, &ctx) else {
                    continue;
                };
                let changes = ov.into_changes();
                self.propose(0, 0, txn, Origin::Internal, Some(changes));
            }
        }
    }
}

/// The reply frame of an applied write.
fn reply_for(xid_: i32, zxid: i64, op: OpCode, txn: &Txn, result: &TxnResult) -> Vec<u8> {
    frame_of(|w| {
        let err = match result {
            TxnResult::Error(e) => e.code(),
            _ => 0,
        };
        ReplyHeader {
            xid: xid_,
            zxid,
            err,
        }
        .write(w);
        match result {
            TxnResult::Created { path, stat } => {
                w.write_string(path);
                if op != OpCode::Create {
                    stat.write(w);
                }
            }
            // A reconfig answers as getData does: the new config, then the Stat.
            TxnResult::DataSet { stat } if op == OpCode::Reconfig => {
                if let Txn::Reconfig { data, .. } = txn {
                    w.write_opt_buffer(data.as_deref());
                }
                stat.write(w);
            }
            TxnResult::DataSet { stat } | TxnResult::AclSet { stat } => stat.write(w),
            TxnResult::Multi(results) => {
                let subs: &[Txn] = match txn {
                    Txn::Multi(subs) => subs,
                    _ => &[],
                };
                for (i, r) in results.iter().enumerate() {
                    let sub_op = subs.get(i).map_or(OpCode::Error, Txn::op);
                    write_multi_result(w, sub_op, r);
                }
                MultiHeader::END.write(w);
            }
            _ => {}
        }
    })
}

fn write_multi_result(w: &mut Writer, sub_op: OpCode, r: &TxnResult) {
    let head = |w: &mut Writer, op: i32, err: i32| {
        MultiHeader {
            op,
            done: false,
            err,
        }
        .write(w)
    };
    match r {
        TxnResult::Created { path, stat } => {
            // create2 / createContainer / createTTL answer with the Stat (3.8.2+ behaviour).
            let with_stat = sub_op != OpCode::Create;
            head(w, if with_stat { 15 } else { 1 }, 0);
            w.write_string(path);
            if with_stat {
                stat.write(w);
            }
        }
        TxnResult::Deleted => head(w, OpCode::Delete.code(), 0),
        TxnResult::DataSet { stat } => {
            head(w, OpCode::SetData.code(), 0);
            stat.write(w);
        }
        TxnResult::Checked => head(w, OpCode::Check.code(), 0),
        TxnResult::Error(e) => {
            head(w, -1, e.code());
            w.write_i32(e.code());
        }
        _ => head(w, -1, 0),
    }
}

/// Whether a write creates an ephemeral node (alone or in a multi).
fn creates_ephemeral(req: &Request) -> bool {
    let ephemeral = |c: &zooid_proto::CreateRequest| c.flags & 1 == 1;
    match req {
        Request::Create(c) => ephemeral(c),
        Request::Multi(ops) => ops
            .iter()
            .any(|op| matches!(op, zooid_proto::MultiOp::Create(c) if ephemeral(c))),
        _ => false,
    }
}

/// Build a frame: length prefix, then what `f` writes.
pub fn frame_of(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
    // Room for most replies at once: growing from empty reallocates three or four times.
    let mut w = Writer::with_buf(Vec::with_capacity(128));
    let at = w.begin_frame();
    f(&mut w);
    w.finish_frame(at);
    w.into_inner()
}

/// An address as Java's `InetAddress.getHostAddress` writes it, the `ip` scheme's id of a
/// connection: IPv6 in eight uncompressed groups (`0:0:0:0:0:0:0:1`).
fn java_host_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6
            .segments()
            .iter()
            .map(|g| format!("{g:x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

/// A watch notification frame carrying `zxid` (see [`Core::deliver`]).
pub fn notification(event: EventType, path: &str, zxid: i64) -> Vec<u8> {
    frame_of(|w| {
        ReplyHeader {
            xid: xid::NOTIFICATION,
            zxid,
            err: 0,
        }
        .write(w);
        WatcherEvent {
            event_type: event as i32,
            state: STATE_SYNC_CONNECTED,
            path: path.to_owned(),
        }
        .write(w);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addr() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 5000))
    }

    #[test]
    fn silent_connections_are_closed_after_the_sessionless_timeout() {
        let mut core = Core::new(CoreConfig::default(), DataTree::new(), 0);
        core.handle(
            0,
            Input::Connect {
                conn: 1,
                addr: addr(),
            },
        );
        core.handle(SESSIONLESS_TIMEOUT_MS - 1, Input::Tick);
        assert!(core.take_actions().is_empty());
        core.handle(SESSIONLESS_TIMEOUT_MS, Input::Tick);
        assert_eq!(core.take_actions(), vec![Action::Close { conn: 1 }]);
    }

    #[test]
    fn recovered_sessions_can_reattach_or_expire() {
        let mut tree = DataTree::new();
        tree.restore_session(0x42, 4000);
        let mut core = Core::new(CoreConfig::default(), tree, 0);
        core.handle(
            0,
            Input::Connect {
                conn: 1,
                addr: addr(),
            },
        );
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 4000,
            session_id: 0x42,
            passwd: auth::session_password(0x42).to_vec(),
            read_only: Some(false),
        };
        core.handle(
            1,
            Input::Frame {
                conn: 1,
                frame: &req.encode(),
            },
        );
        let actions = core.take_actions();
        let Action::Send { frame, .. } = &actions[0] else {
            panic!("expected a ConnectResponse, got {actions:?}")
        };
        let resp = ConnectResponse::decode(&frame[4..]).unwrap();
        assert_eq!((resp.session_id, resp.timeout_ms), (0x42, 4000));
        // Left alone, the session expires through a closeSession txn.
        core.handle(1, Input::Disconnect { conn: 1 });
        core.handle(10_000, Input::Tick);
        assert!(core
            .take_actions()
            .iter()
            .any(|a| matches!(a, Action::Append { .. })));
    }

    #[test]
    fn a_step_of_the_wall_clock_expires_no_session() {
        let hour = 3_600_000;
        let at = |mono_ms, wall_ms| Now { mono_ms, wall_ms };
        let mut tree = DataTree::new();
        tree.restore_session(0x42, 4000);
        let mut core = Core::new(CoreConfig::default(), tree, at(0, 1_000_000));
        // The wall clock jumps an hour forward, then two back: session deadlines run on the
        // monotonic clock, so nothing expires before the session's own 4 s.
        for wall in [1_000_000 + hour, 1_000_000 - hour] {
            core.handle(at(3000, wall), Input::Tick);
            assert!(
                core.take_actions().is_empty(),
                "expired at a wall step to {wall}"
            );
        }
        core.handle(at(10_000, 1_000_000 - hour), Input::Tick);
        let actions = core.take_actions();
        let Some(Action::Append { entry, .. }) = actions.first() else {
            panic!("expected the closeSession txn, got {actions:?}")
        };
        // The txn carries the wall time, as ctime / mtime do.
        let entry = zooid_proto::txn::TxnEntry::decode(entry).unwrap();
        assert_eq!(entry.header.time_ms, 1_000_000 - hour);
    }

    #[test]
    fn a_read_only_core_serves_reads_and_logs_nothing() {
        let mut core = Core::with_role(CoreConfig::default(), DataTree::new(), 0, Role::ReadOnly);
        let connect = |read_only| ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 4000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only,
        };
        // A client that does not accept a read-only server is turned away.
        core.handle(
            0,
            Input::Connect {
                conn: 1,
                addr: addr(),
            },
        );
        core.handle(
            0,
            Input::Frame {
                conn: 1,
                frame: &connect(Some(false)).encode(),
            },
        );
        assert_eq!(core.take_actions(), vec![Action::Close { conn: 1 }]);
        // One that does gets a local session at once, marked read-only.
        core.handle(
            0,
            Input::Connect {
                conn: 2,
                addr: addr(),
            },
        );
        core.handle(
            0,
            Input::Frame {
                conn: 2,
                frame: &connect(Some(true)).encode(),
            },
        );
        let actions = core.take_actions();
        let Some(Action::Send { frame, .. }) = actions.first() else {
            panic!("expected a ConnectResponse, got {actions:?}")
        };
        let resp = ConnectResponse::decode(&frame[4..]).unwrap();
        assert_eq!(resp.read_only, Some(true));
        assert_ne!(resp.session_id, 0);
        // A write is NOTREADONLY; nothing is ever appended; the session expires locally.
        let mut w = Writer::new();
        RequestHeader {
            xid: 1,
            op: OpCode::SetData.code(),
        }
        .write(&mut w);
        w.write_string("/");
        w.write_opt_buffer(Some(b"x"));
        w.write_i32(-1);
        core.handle(
            1,
            Input::Frame {
                conn: 2,
                frame: &w.into_inner(),
            },
        );
        core.handle(10_000, Input::Tick);
        let actions = core.take_actions();
        assert!(
            !actions.iter().any(|a| matches!(a, Action::Append { .. })),
            "{actions:?}"
        );
        let Some(Action::Send { frame, .. }) = actions.first() else {
            panic!("expected the NOTREADONLY reply, got {actions:?}")
        };
        let mut r = zooid_proto::Reader::new(&frame[4..]);
        let hdr = ReplyHeader::read(&mut r).unwrap();
        assert_eq!(
            (hdr.xid, hdr.err),
            (1, zooid_proto::ErrorCode::NotReadOnly.code())
        );
        assert!(actions.contains(&Action::Close { conn: 2 }), "{actions:?}");
    }

    #[test]
    fn max_client_cnxns_limits_one_address() {
        let cfg = CoreConfig {
            max_client_cnxns: 2,
            ..Default::default()
        };
        let mut core = Core::new(cfg, DataTree::new(), 0);
        for conn in 1..=3 {
            core.handle(0, Input::Connect { conn, addr: addr() });
        }
        assert_eq!(core.take_actions(), vec![Action::Close { conn: 3 }]);
        core.handle(0, Input::Disconnect { conn: 1 });
        core.handle(
            0,
            Input::Connect {
                conn: 4,
                addr: addr(),
            },
        );
        assert!(core.take_actions().is_empty());
    }
}
