//! The tokio driver: sockets, clock and the task that owns the [`Core`].
//!
//! ```text
//! listener ──accept──▶ connection task (one per socket) ──Event::Frame──▶ core task
//!                            ▲                                            │
//!                            └──────── Outbound::{Frame, Close} ◀─────────┘
//! ```
//! A connection task splits frames (closing on a bad length, ZooKeeper's "Len error"), and
//! answers a four-letter word if that is what the first four bytes spell. The core task
//! handles events in arrival order, executes the core's actions, and reports appended txns
//! as persisted once the batch is handled. Operator commands (four-letter words, the
//! AdminServer, `/metrics`) are events too, so they see the core between two batches. Nothing
//! here holds protocol logic.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use zooid_node::core::Now;
use zooid_node::{Action, ConnId, Core, Input};

use crate::commands::{self, Ctx, DiskFacts};
use crate::fourlw;
use crate::metrics::{self, Registry};
use crate::persist::{DiskTiming, FromWriter, SnapshotPlan, ToWriter};

/// Events from connection tasks to the core task.
pub enum Event {
    Connect {
        conn: ConnId,
        addr: SocketAddr,
        /// What the client's certificate proves (TLS with a client certificate).
        ids: Vec<zooid_proto::Id>,
        out: ConnOut,
    },
    /// A request; `throttled` when it waited longer than `throttled_op_wait_time`.
    Frame {
        conn: ConnId,
        frame: Vec<u8>,
        throttled: bool,
    },
    Disconnect {
        conn: ConnId,
    },
    /// A four-letter word on connection `addr`: counted as ZooKeeper counts it, answered
    /// with its text if `allowed`, else with the whitelist's refusal.
    FourLetter {
        word: &'static str,
        addr: SocketAddr,
        allowed: bool,
        args: Vec<(String, String)>,
        disk: DiskFacts,
        reply: oneshot::Sender<String>,
    },
    /// An AdminServer command by any of its names; the reply is its JSON.
    Command {
        name: String,
        args: Vec<(String, String)>,
        disk: DiskFacts,
        reply: oneshot::Sender<String>,
    },
    /// The metrics in Prometheus' text format.
    Metrics {
        reply: oneshot::Sender<String>,
    },
}

/// The channel connection tasks and the operator listeners send events on.
pub fn event_channel() -> (mpsc::Sender<Event>, mpsc::Receiver<Event>) {
    mpsc::channel(4096)
}

pub enum Outbound {
    Frame(Vec<u8>),
    Close,
}

/// Replies and notifications a connection may hold queued for its socket before its reader
/// stops taking requests from it, as ZooKeeper stops reading from a connection whose replies
/// are not leaving. One reply may pass it (so a reply of jute.maxbuffer always goes out).
const QUEUED_BYTES_MAX: usize = 1 << 20;
/// Requests of one connection handed to the core task and not yet handled: with the bound
/// above, what a client that never reads can make the server hold is about
/// (1 + IN_CORE_MAX) replies of its largest size.
const IN_CORE_MAX: usize = 16;
/// What a connection may hold queued for its socket at all. Replies are bounded by the reader
/// (above); notifications are not (a persistent watch on a busy tree fires whether or not its
/// client reads), so a connection whose queue passes this is closed: its client reconnects,
/// re-registers its watches and goes on, and the server's memory stays bounded. ZooKeeper
/// has no such bound and grows until it runs out of heap.
const QUEUED_BYTES_HARD_MAX: usize = 32 << 20;

/// How many connections must have closed, and at least half of the most there were, before
/// the core task hands their memory back to the system.
const TRIM_AFTER_CLOSED: usize = 256;

/// Limits on taking requests that span connections.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `globalOutstandingLimit` (this member's share of it): past this many requests in
    /// process, a connection with requests of its own in process is not read from until they
    /// are answered, as ZooKeeper's `shouldThrottle` / `disableRecv`.
    pub outstanding: usize,
    /// The request throttle (`request_throttle_max_requests`, 0: off): no connection is read
    /// from while this many requests are in process.
    pub throttle_max: usize,
    /// `request_throttle_stall_time`: a reader held by the throttle looks again after this.
    pub stall: Duration,
    /// `throttled_op_wait_time`: a request held longer is answered THROTTLEDOP.
    pub throttled_op_wait: Option<Duration>,
    /// `largeRequestThreshold` (None: off) and `largeRequestMaxBytes`: requests longer
    /// than the threshold may hold at most the max bytes in all until answered; one that
    /// would pass it closes its connection ("Rejecting large request").
    pub large_threshold: Option<usize>,
    pub large_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            outstanding: 1000,
            throttle_max: 0,
            stall: Duration::from_millis(100),
            throttled_op_wait: None,
            large_threshold: None,
            large_max: 100 << 20,
        }
    }
}

/// What every connection shares: the requests in process (read, with an xid above 0, and
/// not yet answered) and the limits on them.
pub struct Gate {
    limits: Limits,
    in_process: AtomicUsize,
    /// Woken when a request is answered, for readers the request throttle holds.
    answered: Notify,
    /// Times a reader waited for the request throttle (`request_throttle_wait_count`), not
    /// yet handed to the metrics.
    throttle_waits: AtomicU64,
    /// Bytes of large requests read and not yet answered.
    large_bytes: AtomicUsize,
    /// Large requests refused (`large_requests_rejected`), not yet handed to the metrics.
    large_rejected: AtomicU64,
}

impl Gate {
    pub fn new(limits: Limits) -> Arc<Gate> {
        Arc::new(Gate {
            limits,
            in_process: AtomicUsize::new(0),
            answered: Notify::new(),
            throttle_waits: AtomicU64::new(0),
            large_bytes: AtomicUsize::new(0),
            large_rejected: AtomicU64::new(0),
        })
    }

    /// Hand what the readers counted to the metrics.
    fn count_into(&self, metrics: &mut Registry) {
        let waits = self.throttle_waits.swap(0, Ordering::Relaxed);
        if waits > 0 {
            metrics.count("request_throttle_wait_count", waits);
        }
        let rejected = self.large_rejected.swap(0, Ordering::Relaxed);
        if rejected > 0 {
            metrics.count("large_requests_rejected", rejected);
        }
    }

    /// Whether a request of `len` bytes is large.
    fn is_large(&self, len: usize) -> bool {
        self.limits.large_threshold.is_some_and(|t| len > t)
    }

    /// Count a large request of `len` bytes in, unless it would pass `largeRequestMaxBytes`.
    fn take_large(&self, len: usize) -> bool {
        let max = self.limits.large_max;
        let took = self
            .large_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                (b + len <= max).then_some(b + len)
            })
            .is_ok();
        if !took {
            self.large_rejected.fetch_add(1, Ordering::Relaxed);
        }
        took
    }

    /// Requests in process now (`outstanding_requests`).
    pub fn in_process(&self) -> usize {
        self.in_process.load(Ordering::Acquire)
    }

    fn finished(&self, n: usize) {
        if n > 0 {
            self.in_process.fetch_sub(n, Ordering::AcqRel);
            if self.limits.throttle_max > 0 {
                self.answered.notify_waiters();
            }
        }
    }
}

/// What one connection holds in the server, shared by its reader, its writer and the core
/// task: the reader waits for room before it hands the core another request.
pub struct Flow {
    gate: Arc<Gate>,
    /// Bytes queued for the socket and not yet written.
    queued: AtomicUsize,
    /// Requests handed to the core task and not yet handled.
    in_core: AtomicUsize,
    /// Requests read (xid above 0) and not yet answered.
    outstanding: AtomicUsize,
    wake: Notify,
    /// The reader is waiting on `wake`.
    waiting: AtomicBool,
    /// Closed for holding more than [`QUEUED_BYTES_HARD_MAX`]; `kill` tells the reader.
    killed: AtomicBool,
    kill: Notify,
    /// Large requests read and not yet answered: (xid, bytes). Empty but for
    /// `largeRequestThreshold`.
    large: std::sync::Mutex<Vec<(i32, usize)>>,
}

/// Why a connection's reader waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocked {
    /// Its own replies or requests: its own progress releases it.
    Own,
    /// The request throttle: any answered request may release it.
    Throttle,
}

impl Flow {
    fn new(gate: Arc<Gate>) -> Flow {
        Flow {
            gate,
            queued: AtomicUsize::new(0),
            in_core: AtomicUsize::new(0),
            outstanding: AtomicUsize::new(0),
            wake: Notify::new(),
            waiting: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
            large: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A large request `xid` of `len` bytes was counted in; its answer counts it out.
    fn large_read(&self, xid: i32, len: usize) {
        let mut l = self.large.lock().unwrap_or_else(|e| e.into_inner());
        l.push((xid, len));
    }

    /// The answer to `xid` went out: if it was a large request, its bytes are free again.
    fn large_answered(&self, xid: i32) {
        if self.gate.limits.large_threshold.is_none() {
            return;
        }
        let mut l = self.large.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = l.iter().position(|(x, _)| *x == xid) {
            let (_, len) = l.remove(i);
            self.gate.large_bytes.fetch_sub(len, Ordering::AcqRel);
        }
    }

    /// What keeps the connection's next request from the core now, if anything.
    fn blocked(&self) -> Option<Blocked> {
        let gate = &self.gate;
        if self.queued.load(Ordering::SeqCst) >= QUEUED_BYTES_MAX
            || self.in_core.load(Ordering::SeqCst) >= IN_CORE_MAX
        {
            return Some(Blocked::Own);
        }
        let in_process = gate.in_process();
        if in_process > gate.limits.outstanding && self.outstanding.load(Ordering::SeqCst) > 0 {
            // Its own answers release it.
            return Some(Blocked::Own);
        }
        if gate.limits.throttle_max > 0 && in_process >= gate.limits.throttle_max {
            return Some(Blocked::Throttle);
        }
        None
    }

    /// Wait until the connection may hand the core another request, and count it (as in
    /// process when `counted`, a request with an xid above 0). True when it waited longer
    /// than `throttled_op_wait_time`: it is then to be answered THROTTLEDOP.
    async fn admit(&self, counted: bool) -> bool {
        let gate = &self.gate;
        let started = gate.limits.throttled_op_wait.map(|_| Instant::now());
        while let Some(why) = self.blocked() {
            match why {
                Blocked::Own => self.progress().await,
                Blocked::Throttle => {
                    gate.throttle_waits.fetch_add(1, Ordering::Relaxed);
                    let answered = gate.answered.notified();
                    tokio::select! {
                        _ = answered => {}
                        _ = self.progress() => {}
                        _ = tokio::time::sleep(gate.limits.stall) => {}
                    }
                }
            }
        }
        self.in_core.fetch_add(1, Ordering::SeqCst);
        if counted {
            self.outstanding.fetch_add(1, Ordering::SeqCst);
            gate.in_process.fetch_add(1, Ordering::AcqRel);
        }
        started
            .zip(gate.limits.throttled_op_wait)
            .is_some_and(|(t, w)| t.elapsed() > w)
    }

    /// Wait for this connection's next step (a request handled, a reply answered or
    /// written), unless what blocked it is gone already. The other side only pays for a
    /// wake-up while the reader waits: it sets `waiting`, then looks again.
    async fn progress(&self) {
        let notified = self.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        self.waiting.store(true, Ordering::SeqCst);
        if self.blocked().is_some() {
            notified.await;
        }
        self.waiting.store(false, Ordering::SeqCst);
    }

    fn step(&self) {
        if self.waiting.load(Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    /// The core task handled one of the connection's requests.
    fn handled(&self) {
        self.in_core.fetch_sub(1, Ordering::SeqCst);
        self.step();
    }

    /// One of the connection's requests was answered.
    fn answered(&self) {
        let took = self
            .outstanding
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if took {
            self.gate.finished(1);
            self.step();
        }
    }

    /// The writer put `n` queued bytes on the socket.
    fn written(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::SeqCst);
        self.step();
    }
}

impl Drop for Flow {
    /// Requests of a closed connection that were never answered are no longer in process.
    fn drop(&mut self) {
        self.gate.finished(*self.outstanding.get_mut());
        let large: usize = self
            .large
            .get_mut()
            .map_or(0, |l| l.iter().map(|(_, len)| len).sum());
        self.gate.large_bytes.fetch_sub(large, Ordering::AcqRel);
    }
}

/// The xid a frame's payload starts with (a request's, or past the length prefix, a reply's).
fn xid_of(payload: &[u8]) -> i32 {
    payload
        .get(..4)
        .map_or(0, |b| i32::from_be_bytes(b.try_into().expect("4 bytes")))
}

/// The core task's handle on one connection's writer.
pub struct ConnOut {
    tx: mpsc::UnboundedSender<Outbound>,
    flow: Arc<Flow>,
}

impl ConnOut {
    pub fn frame(&self, frame: Vec<u8>) {
        let flow = &self.flow;
        // Replies carry their request's xid (above 0); notifications, pings and the
        // ConnectResponse do not.
        let xid = xid_of(frame.get(4..).unwrap_or(&[]));
        if xid > 0 {
            flow.answered();
        }
        flow.large_answered(xid);
        if flow.killed.load(Ordering::Relaxed) {
            return;
        }
        let queued = flow.queued.fetch_add(frame.len(), Ordering::SeqCst) + frame.len();
        if queued > QUEUED_BYTES_HARD_MAX {
            flow.killed.store(true, Ordering::Relaxed);
            tracing::warn!(
                queued,
                max = QUEUED_BYTES_HARD_MAX,
                "a client is not reading what is sent to it (watch notifications pile up); closing its connection"
            );
            flow.kill.notify_one();
            return;
        }
        let _ = self.tx.send(Outbound::Frame(frame));
    }

    pub fn close(&self) {
        let _ = self.tx.send(Outbound::Close);
    }
}

/// How long `stmk` waits for its 8-byte argument.
const STMK_ARG_WAIT: Duration = Duration::from_secs(1);

/// Directory sizes and the newest snapshot, measured off the core task.
pub async fn measure_disk(info: &Arc<fourlw::ServerInfo>) -> DiskFacts {
    let info = Arc::clone(info);
    tokio::task::spawn_blocking(move || DiskFacts::measure(&info))
        .await
        .unwrap_or_default()
}

/// Settings of the driver itself.
#[derive(Clone)]
pub struct DriverConfig {
    pub max_frame_len: u32,
    /// The client port's TLS: the secure port's handshakes, and the plaintext port's when
    /// `client.portUnification` is on.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// Requests in process and the limits on them, shared by every connection.
    pub gate: Arc<Gate>,
    pub four_letter_words: Vec<String>,
    pub info: Arc<fourlw::ServerInfo>,
}

/// The time now on both clocks: `mono_ms` counts from a fixed point of this process on the
/// monotonic clock (every deadline uses it, so a step of the wall clock expires nothing);
/// `wall_ms` is the Unix time, for ctime / mtime and what people read.
pub fn now() -> Now {
    Now {
        mono_ms: mono_ms(),
        wall_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    }
}

/// Milliseconds on the monotonic clock since this process first asked.
pub fn mono_ms() -> i64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as i64
}

/// A member of an ensemble: the quorum peer and the events of its sockets.
pub struct Ensemble {
    pub peer: crate::ensemble::Peer,
    pub events: mpsc::Receiver<crate::peer_net::PeerEvent>,
}

/// What the core task drives: a standalone core, or a member of an ensemble (which owns its
/// core).
pub enum Server {
    Alone(Box<Core>),
    Member(Box<Ensemble>),
}

impl Server {
    fn core(&self) -> &Core {
        match self {
            Server::Alone(c) => c,
            Server::Member(e) => e.peer.core(),
        }
    }

    fn core_mut(&mut self) -> &mut Core {
        match self {
            Server::Alone(c) => c,
            Server::Member(e) => e.peer.core_mut(),
        }
    }

    fn peer(&self) -> Option<&crate::ensemble::Peer> {
        match self {
            Server::Alone(_) => None,
            Server::Member(e) => Some(&e.peer),
        }
    }

    /// Whether clients are served: always standalone; as the member says otherwise.
    fn serving(&self) -> bool {
        self.peer().is_none_or(|p| p.serving())
    }

    fn input(&mut self, now: Now, input: Input<'_>) {
        match self {
            Server::Alone(c) => c.handle(now, input),
            Server::Member(e) => e.peer.client(now, input),
        }
    }
}

/// Accept connections until `shutdown` flips. `events` comes from [`event_channel`].
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    listener: TcpListener,
    secure: Option<TcpListener>,
    server: Server,
    cfg: DriverConfig,
    disk: Disk,
    metrics: Registry,
    events: (mpsc::Sender<Event>, mpsc::Receiver<Event>),
    mut shutdown: watch::Receiver<bool>,
) {
    let (tx, rx) = events;
    let core_task = tokio::spawn(run_core(
        server,
        rx,
        cfg.clone(),
        disk,
        metrics,
        shutdown.clone(),
    ));
    let mut next_conn: ConnId = 1;
    let unified = cfg
        .tls
        .as_ref()
        .is_some_and(|t| t.config().port_unification);
    loop {
        let (res, secure_port) = tokio::select! {
            res = listener.accept() => (res, false),
            res = accept_on(&secure) => (res, true),
            _ = shutdown.changed() => break,
        };
        match res {
            Ok((stream, addr)) => {
                // An IPv4 client of the dual-stack listener arrives as ::ffff:a.b.c.d;
                // it is known (ip ACLs, maxClientCnxns, cons) by its IPv4 address.
                let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
                let conn = next_conn;
                next_conn += 1;
                let _ = stream.set_nodelay(true);
                let (tx, cfg) = (tx.clone(), cfg.clone());
                if secure_port {
                    tokio::spawn(async move {
                        if let Some((rd, wr, ids)) = handshake(stream, &cfg).await {
                            run_conn(conn, rd, wr, addr, ids, tx, cfg).await;
                        }
                    });
                } else if unified {
                    tokio::spawn(serve_unified(conn, stream, addr, tx, cfg));
                } else {
                    let (rd, wr) = stream.into_split();
                    let wr: ConnWriter = Box::new(wr);
                    tokio::spawn(run_conn(
                        conn,
                        ConnReader::Plain(rd),
                        wr,
                        addr,
                        Vec::new(),
                        tx,
                        cfg,
                    ));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(tx);
    let _ = core_task.await;
}

async fn accept_on(l: &Option<TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// A connection's reading half: a plain socket's (read without holding a buffer while
/// idle), or a TLS session's.
pub enum ConnReader {
    Plain(tokio::net::tcp::OwnedReadHalf),
    Tls(tokio::io::ReadHalf<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// A connection's writing half.
pub type ConnWriter = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

/// TLS on an accepted connection, within `ssl.handshakeDetectionTimeoutMillis`: its halves
/// and the ids its client certificate gives it.
async fn handshake(
    stream: TcpStream,
    cfg: &DriverConfig,
) -> Option<(ConnReader, ConnWriter, Vec<zooid_proto::Id>)> {
    let tls = cfg.tls.as_ref()?;
    let limit = Duration::from_millis(tls.config().handshake_timeout_ms);
    let s = crate::tls::accept(tls.acceptor(), stream, limit, "client").await?;
    let ids = tls.ids(s.get_ref().1.peer_certificates());
    let (rd, wr) = tokio::io::split(s);
    Some((ConnReader::Tls(rd), Box::new(wr), ids))
}

/// `client.portUnification`: a connection whose first byte opens a TLS handshake is served
/// over TLS, any other as plaintext.
async fn serve_unified(
    conn: ConnId,
    stream: TcpStream,
    addr: SocketAddr,
    tx: mpsc::Sender<Event>,
    cfg: DriverConfig,
) {
    let limit = Duration::from_millis(
        cfg.tls
            .as_ref()
            .map_or(5_000, |t| t.config().handshake_timeout_ms),
    );
    if crate::tls::opens_tls(&stream, limit).await {
        if let Some((rd, wr, ids)) = handshake(stream, &cfg).await {
            run_conn(conn, rd, wr, addr, ids, tx, cfg).await;
        }
    } else {
        let (rd, wr) = stream.into_split();
        run_conn(
            conn,
            ConnReader::Plain(rd),
            Box::new(wr),
            addr,
            Vec::new(),
            tx,
            cfg,
        )
        .await;
    }
}

/// The disk side of the core task: where appends go and when to snapshot.
pub struct Disk {
    pub writer: std::sync::mpsc::Sender<ToWriter>,
    /// Appends handed to the writer and not yet written (the writer counts them down).
    pub backlog: Arc<AtomicUsize>,
    pub from_writer: tokio::sync::mpsc::UnboundedReceiver<FromWriter>,
    pub from_writer_tx: tokio::sync::mpsc::UnboundedSender<FromWriter>,
    pub snapshots: SnapshotPlan,
    /// Reported when the disk fails and the server must stop.
    pub fatal: Option<oneshot::Sender<String>>,
    /// Take a snapshot of the recovered tree as soon as serving starts.
    pub snapshot_at_start: bool,
}

/// Txns until the next snapshot: between snapCount/2 and snapCount, randomised as ZooKeeper
/// does so the members of an ensemble do not all snapshot at once.
fn next_snapshot_after(snap_count: u64) -> u64 {
    let half = (snap_count / 2).max(1);
    half + rand::random::<u64>() % half
}

/// Appends the log writer may have queued before the peer stops reading from its sockets.
const WRITER_BACKLOG: usize = 64 * 1024;

/// How often the quorum peer's timers are looked at (election resends, pings, silence).
const PEER_TICK: Duration = Duration::from_millis(50);

async fn run_core(
    mut server: Server,
    mut rx: mpsc::Receiver<Event>,
    cfg: DriverConfig,
    mut disk: Disk,
    mut metrics: Registry,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut outs: HashMap<ConnId, ConnOut> = HashMap::new();
    let mut conns_peak = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut peer_tick = tokio::time::interval(PEER_TICK);
    peer_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let member = matches!(server, Server::Member(_));
    let mut batch = Vec::with_capacity(256);
    let mut since_snapshot = 0u64;
    if disk.snapshot_at_start {
        disk.snapshots
            .take(server.core().tree(), disk.from_writer_tx.clone());
    }
    let mut snapshot_at = next_snapshot_after(disk.snapshots.snap_count);
    loop {
        batch.clear();
        tokio::select! {
            // In this order: finished fsyncs (their replies are waiting), the tick (session
            // expiry), shutdown, then new requests. A fixed order, so under load no branch
            // starves the others that matter: requests never block fsync completions or the
            // tick.
            biased;
            msg = disk.from_writer.recv() => match msg {
                Some(FromWriter::Persisted(zxid)) => match &mut server {
                    Server::Member(e) => e.peer.on_persisted(zxid, &mut node(&mut outs, &disk, None)),
                    Server::Alone(core) => core.handle(now(), Input::Persisted { zxid }),
                },
                Some(FromWriter::Stored(r)) => {
                    if let Server::Member(e) = &mut server {
                        e.peer.on_stored(r, &mut node(&mut outs, &disk, None));
                    }
                }
                Some(FromWriter::Timed(t)) => match t {
                    DiskTiming::Fsync { ms, txns } => {
                        metrics.observe("fsynctime", ms as i64);
                        metrics.observe("sync_processor_batch_size", txns as i64);
                    }
                    DiskTiming::Snapshot { ms } => metrics.observe("snapshottime", ms as i64),
                },
                Some(FromWriter::Failed(e)) => {
                    metrics.count("unrecoverable_error_count", 1);
                    tracing::error!(error = %e, "the txn log cannot be written; stopping so no write is acknowledged that might be lost (a restart recovers every acknowledged txn)");
                    if let Some(f) = disk.fatal.take() {
                        let _ = f.send(e);
                    }
                    break;
                }
                None => break,
            },
            // A log writer far behind (a learner on a slow disk) stops the peer's reads: its
            // leader's link to it fills and is closed, and it syncs again once caught up.
            ev = recv_peer(&mut server), if disk.backlog.load(Ordering::Relaxed) < WRITER_BACKLOG => {
                if let (Server::Member(e), Some(ev)) = (&mut server, ev) {
                    e.peer.on_event(ev, &mut node(&mut outs, &disk, None));
                }
            }
            _ = peer_tick.tick(), if member => {
                if let Server::Member(e) = &mut server {
                    e.peer.on_tick(&mut node(&mut outs, &disk, None));
                }
            }
            _ = tick.tick() => {
                // Only a serving core expires sessions: a leader still syncing must not
                // number txns before its epoch is established.
                if server.serving() {
                    server.input(now(), Input::Tick);
                }
                // Many connections gone since the most there were: their memory goes back.
                conns_peak = conns_peak.max(outs.len());
                if conns_peak - outs.len() >= TRIM_AFTER_CLOSED && outs.len() * 2 <= conns_peak {
                    crate::persist::trim_allocator();
                    conns_peak = outs.len();
                }
            }
            _ = shutdown.changed() => break,
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    break;
                }
            }
        }
        let now = now();
        // What the readers counted, for the commands and metrics this batch may answer.
        cfg.gate.count_into(&mut metrics);
        for ev in batch.drain(..) {
            match ev {
                Event::Connect {
                    conn,
                    addr,
                    ids,
                    out,
                } => {
                    // A member that does not serve closes it (ZooKeeper's "not running"
                    // server: clients try another member).
                    outs.insert(conn, out);
                    server.input(now, Input::Connect { conn, addr });
                    if !ids.is_empty() {
                        server.input(now, Input::Identified { conn, ids });
                    }
                }
                Event::Frame {
                    conn,
                    frame,
                    throttled,
                } => {
                    metrics.count("bytes_received_count", 4 + frame.len() as u64);
                    let frame = &frame;
                    let input = if throttled {
                        Input::Throttled { conn, frame }
                    } else {
                        Input::Frame { conn, frame }
                    };
                    server.input(now, input);
                    if let Some(o) = outs.get(&conn) {
                        o.flow.handled();
                    }
                }
                Event::Disconnect { conn } => {
                    outs.remove(&conn);
                    server.input(now, Input::Disconnect { conn });
                }
                Event::FourLetter {
                    word,
                    addr,
                    allowed,
                    args,
                    disk,
                    reply,
                } => {
                    // ZooKeeper counts the word as a packet of 4 bytes, answered or not.
                    server.core_mut().stats.packets_received += 1;
                    metrics.count("bytes_received_count", 4);
                    let text = match commands::by_word(word) {
                        _ if !allowed => fourlw::refusal(word),
                        // ZooKeeper's answer while it is electing or syncing.
                        _ if !server.serving()
                            && !matches!(word, "ruok" | "envi" | "conf" | "isro" | "dirs") =>
                        {
                            String::from(
                                "This ZooKeeper instance is not currently serving requests\n",
                            )
                        }
                        Some(cmd) => cmd.run_text(&mut Ctx {
                            peer: server.peer().map(|p| p.facts()),
                            core: server.core_mut(),
                            info: &cfg.info,
                            metrics: &mut metrics,
                            now,
                            asker: Some(addr),
                            disk,
                            args,
                        }),
                        None => String::new(),
                    };
                    // ... and its answer as a packet sent, once written.
                    if !text.is_empty() {
                        server.core_mut().stats.packets_sent += 1;
                    }
                    let _ = reply.send(text);
                }
                Event::Command {
                    name,
                    args,
                    disk,
                    reply,
                } => {
                    let response = match commands::by_name(&name) {
                        Some(cmd) => cmd.run(&mut Ctx {
                            peer: server.peer().map(|p| p.facts()),
                            core: server.core_mut(),
                            info: &cfg.info,
                            metrics: &mut metrics,
                            now,
                            asker: None,
                            disk,
                            args,
                        }),
                        None => commands::Response::unknown(&name),
                    };
                    let _ = reply.send(response.to_json());
                }
                Event::Metrics { reply } => {
                    let entries = metrics.collect(server.core(), 0);
                    let _ = reply.send(metrics::prometheus_text(&entries));
                }
            }
        }
        let core = match &mut server {
            Server::Member(e) => {
                e.peer
                    .carry_out(&mut node(&mut outs, &disk, Some(&mut metrics)));
                since_snapshot += e.peer.take_appended();
                e.peer.core_mut()
            }
            Server::Alone(core) => core,
        };
        for a in core.take_actions() {
            match a {
                Action::Send { conn, frame } => {
                    metrics.frame_sent(&frame);
                    if let Some(o) = outs.get(&conn) {
                        o.frame(frame);
                    }
                }
                Action::Close { conn } => {
                    if let Some(o) = outs.get(&conn) {
                        o.close();
                    }
                }
                Action::Append { zxid, entry } => {
                    since_snapshot += 1;
                    disk.backlog.fetch_add(1, Ordering::Relaxed);
                    if disk.writer.send(ToWriter::Append { zxid, entry }).is_err() {
                        break;
                    }
                }
                Action::Forward { .. } | Action::Revalidate { .. } => {
                    tracing::error!("a standalone core asked to reach a leader");
                }
            }
        }
        metrics.take_latencies(core);
        if since_snapshot >= snapshot_at {
            since_snapshot = 0;
            snapshot_at = next_snapshot_after(disk.snapshots.snap_count);
            if disk.snapshots.busy() {
                // As ZooKeeper does: this one is skipped, the next comes as usual.
                tracing::warn!(
                    "too busy to snapshot (the last one is still being written); skipping"
                );
            } else {
                // The next log file starts after what is queued now. The snapshot is named
                // after the last applied zxid; every txn after it is in that log or the one
                // before.
                let _ = disk.writer.send(ToWriter::Roll);
                disk.snapshots
                    .take(core.tree(), disk.from_writer_tx.clone());
            }
        }
    }
    for o in outs.values() {
        o.close();
    }
}

fn node<'a>(
    outs: &'a mut HashMap<ConnId, ConnOut>,
    disk: &'a Disk,
    metrics: Option<&'a mut Registry>,
) -> crate::ensemble::Node<'a> {
    crate::ensemble::Node {
        outs,
        writer: &disk.writer,
        backlog: &disk.backlog,
        from_writer_tx: &disk.from_writer_tx,
        metrics,
    }
}

async fn recv_peer(server: &mut Server) -> Option<crate::peer_net::PeerEvent> {
    match server {
        Server::Member(e) => e.events.recv().await,
        Server::Alone(_) => std::future::pending().await,
    }
}

/// Read what the socket has into `buf`, which is to hold at least `want` bytes once the frame
/// being read is whole. A connection that has to wait for more gives its empty buffer back
/// first, so an idle connection holds no read buffer while a busy one keeps its own. False at
/// end of stream or error.
async fn read_more(rd: &mut ConnReader, buf: &mut Vec<u8>, want: usize) -> bool {
    match rd {
        ConnReader::Plain(rd) => read_more_plain(rd, buf, want).await,
        ConnReader::Tls(rd) => {
            use tokio::io::AsyncReadExt;
            if buf.capacity() == 0 {
                *buf = spare_buffer();
            }
            buf.reserve(want.saturating_sub(buf.len()).max(READ_CHUNK));
            matches!(rd.read_buf(buf).await, Ok(n) if n > 0)
        }
    }
}

async fn read_more_plain(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut Vec<u8>,
    want: usize,
) -> bool {
    loop {
        if buf.capacity() == 0 {
            *buf = spare_buffer();
        }
        buf.reserve(want.saturating_sub(buf.len()).max(READ_CHUNK));
        match rd.try_read_buf(buf) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if buf.is_empty() {
                    give_back(std::mem::take(buf));
                }
                if rd.readable().await.is_err() {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
}

/// Read this much at once when the frame needs less: many small requests per call.
const READ_CHUNK: usize = 16 * 1024;
/// Empty read buffers kept per runtime thread for the next connection that has bytes to
/// read: a busy connection that waits a moment for more does not pay an allocation each time.
const SPARE_BUFFERS: usize = 64;

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn spare_buffer() -> Vec<u8> {
    SPARE
        .with(|s| s.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(2 * READ_CHUNK))
}

/// Keep an emptied read buffer of the usual size for reuse; a larger one (a big frame's)
/// goes back to the allocator.
fn give_back(buf: Vec<u8>) {
    if buf.capacity() <= 4 * READ_CHUNK {
        SPARE.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < SPARE_BUFFERS {
                s.push(buf);
            }
        });
    }
}

async fn run_conn(
    conn: ConnId,
    mut rd: ConnReader,
    mut wr: ConnWriter,
    addr: SocketAddr,
    ids: Vec<zooid_proto::Id>,
    tx: mpsc::Sender<Event>,
    cfg: DriverConfig,
) {
    let span = tracing::debug_span!("conn", conn, %addr);
    let _enter = span.enter();
    // Bytes read and not yet split into frames. An idle connection holds no buffer: it is
    // taken when the socket has bytes, and given back when the connection waits with none.
    let mut buf: Vec<u8> = Vec::new();
    // A four-letter word can only be the first thing on a connection.
    while buf.len() < 4 {
        if !read_more(&mut rd, &mut buf, 4).await {
            return;
        }
    }
    let first = [buf[0], buf[1], buf[2], buf[3]];
    if let Some(word) = fourlw::word_of(first) {
        let allowed = fourlw::allowed(&cfg.four_letter_words, word, &cfg.info);
        let mut args = Vec::new();
        if allowed && word == "stmk" {
            // The new trace mask follows as 8 bytes; without them ZooKeeper closes silently.
            let _ = tokio::time::timeout(STMK_ARG_WAIT, async {
                while buf.len() < 12 {
                    if !read_more(&mut rd, &mut buf, 12).await {
                        break;
                    }
                }
            })
            .await;
            let Some(mask) = buf.get(4..12) else {
                return;
            };
            let mask = i64::from_be_bytes(mask.try_into().expect("8 bytes"));
            args.push(("traceMask".to_owned(), mask.to_string()));
        }
        let disk = if allowed && matches!(word, "conf" | "dirs") {
            measure_disk(&cfg.info).await
        } else {
            DiskFacts::default()
        };
        let (reply, rx) = oneshot::channel();
        let ev = Event::FourLetter {
            word,
            addr,
            allowed,
            args,
            disk,
            reply,
        };
        if tx.send(ev).await.is_err() {
            return;
        }
        let text = rx.await.unwrap_or_default();
        let _ = wr.write_all(text.as_bytes()).await;
        let _ = wr.shutdown().await;
        return;
    }
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let flow = Arc::new(Flow::new(cfg.gate.clone()));
    let out = ConnOut {
        tx: out_tx,
        flow: flow.clone(),
    };
    if tx
        .send(Event::Connect {
            conn,
            addr,
            ids,
            out,
        })
        .await
        .is_err()
    {
        return;
    }
    let (closed_tx, mut closed_rx) = oneshot::channel::<()>();
    let written = flow.clone();
    let writer = tokio::spawn(async move {
        let _closed = closed_tx;
        while let Some(msg) = out_rx.recv().await {
            let Outbound::Frame(mut data) = msg else {
                break;
            };
            // Coalesce what is already queued into one write, stopping at a Close.
            let mut close = false;
            while let Ok(more) = out_rx.try_recv() {
                match more {
                    Outbound::Frame(f) => data.extend_from_slice(&f),
                    Outbound::Close => {
                        close = true;
                        break;
                    }
                }
            }
            if wr.write_all(&data).await.is_err() || close {
                break;
            }
            written.written(data.len());
        }
        let _ = wr.shutdown().await;
    });
    // The first frame is the ConnectRequest, which has no xid.
    let mut connected = false;
    'read: loop {
        let mut start = 0;
        loop {
            match zooid_proto::frame::next_frame(&buf[start..], cfg.max_frame_len) {
                Ok(Some((from, to))) => {
                    let len = to - from;
                    let xid = xid_of(&buf[start + from..]);
                    if connected && cfg.gate.is_large(len) {
                        if !cfg.gate.take_large(len) {
                            tracing::warn!(len, max = cfg.gate.limits.large_max, "Rejecting large request (largeRequestMaxBytes); closing the connection");
                            break 'read;
                        }
                        flow.large_read(xid, len);
                    }
                    // Stop taking requests while the client is not taking its replies, or
                    // while the server has too many in process.
                    let counted = connected && xid > 0;
                    let throttled = tokio::select! {
                        t = flow.admit(counted) => t,
                        _ = &mut closed_rx => break 'read,
                        _ = flow.kill.notified() => break 'read,
                    };
                    connected = true;
                    let frame = buf[start + from..start + to].to_vec();
                    start += to;
                    if tx
                        .send(Event::Frame {
                            conn,
                            frame,
                            throttled,
                        })
                        .await
                        .is_err()
                    {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "Len error: closing the connection (a malformed message, or one larger than jute.maxbuffer)");
                    break 'read;
                }
            }
        }
        buf.drain(..start);
        // Room for the rest of a frame begun (its length is known to be within bounds).
        let want = match buf.get(..4) {
            Some(len) => 4 + u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize,
            None => 4,
        };
        tokio::select! {
            more = read_more(&mut rd, &mut buf, want) => if !more { break },
            _ = &mut closed_rx => break,
            _ = flow.kill.notified() => break,
        }
    }
    let _ = tx.send(Event::Disconnect { conn }).await;
    writer.abort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    /// Whether `admit` goes through at once (Some(throttled)) or has to wait (None).
    fn admit_now(flow: &Flow, counted: bool) -> Option<bool> {
        let mut fut = std::pin::pin!(flow.admit(counted));
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(t) => Some(t),
            Poll::Pending => None,
        }
    }

    #[test]
    fn past_the_outstanding_limit_only_idle_connections_are_read() {
        let gate = Gate::new(Limits {
            outstanding: 1,
            ..Limits::default()
        });
        let (a, b) = (Flow::new(gate.clone()), Flow::new(gate.clone()));
        for _ in 0..2 {
            assert_eq!(admit_now(&a, true), Some(false));
            a.handled();
        }
        // Two in process, past the limit of one: `a`, with requests of its own in process,
        // waits; `b` has none and may send one more, as in ZooKeeper.
        assert_eq!(admit_now(&a, true), None);
        assert_eq!(admit_now(&b, true), Some(false));
        b.handled();
        assert_eq!(admit_now(&b, true), None);
        // Pings and the like (not counted) still pass for a connection under the limit.
        a.answered();
        a.answered();
        assert_eq!(gate.in_process(), 1);
        assert_eq!(admit_now(&a, true), Some(false));
        a.handled();
        // A closed connection's unanswered requests leave the count.
        drop(b);
        assert_eq!(gate.in_process(), 1);
    }

    #[test]
    fn the_request_throttle_holds_every_connection() {
        // The throttle's stall timer needs a runtime to exist in; nothing runs on it.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _in_runtime = rt.enter();
        let gate = Gate::new(Limits {
            throttle_max: 1,
            ..Limits::default()
        });
        let (a, b) = (Flow::new(gate.clone()), Flow::new(gate.clone()));
        assert_eq!(admit_now(&a, true), Some(false));
        a.handled();
        assert_eq!(admit_now(&b, true), None);
        assert_eq!(gate.throttle_waits.load(Ordering::Relaxed), 1);
        a.answered();
        assert_eq!(admit_now(&b, true), Some(false));
    }

    #[test]
    fn a_connection_whose_replies_pile_up_is_not_read() {
        let gate = Gate::new(Limits::default());
        let a = Flow::new(gate);
        a.queued.store(QUEUED_BYTES_MAX, Ordering::Release);
        assert_eq!(admit_now(&a, false), None);
        a.written(1);
        assert_eq!(admit_now(&a, false), Some(false));
    }
}
