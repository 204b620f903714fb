//! The shell's ZooKeeper session: a tokio task that owns the socket and a [`ClientCore`], keeps
//! one session alive across connections, and behaves like the Java client zkCli is built on.
//!
//! * **Server list.** The connect string is `host:port[,host:port...][/chroot]`. Hosts are
//!   tried in order; a host that refuses, times out (session timeout / number of hosts) or
//!   answers garbage is skipped. When a whole round fails, requests queued meanwhile fail with
//!   CONNECTIONLOSS (as the Java client fails its queue when a connection attempt fails) and
//!   the next round starts a second later.
//! * **Session re-attach.** A lost connection (EOF, error, nothing heard for 2/3 of the
//!   negotiated timeout) fails the requests in flight with CONNECTIONLOSS, reports
//!   `Disconnected` once, and reconnects with the session id, password and last zxid seen. The
//!   handshake then re-sends the auth data and re-registers the watches (setWatches, xid -8)
//!   before any queued request. A server that says the session expired ends the session
//!   (`Expired`, state CLOSED).
//! * **Watches.** A [`WatchTable`] is updated as replies arrive and decides which
//!   notifications reach the shell (see `watches.rs`). Events go to the shell's channel
//!   *before* the reply that follows them on the wire is handed over, so the shell can print
//!   them in wire order by draining the channel after each reply.
//! * **State events** (`WatchedEvent state:X type:None path:null`) are reported only when the
//!   state changes, as the Java client's event thread does.
//!
//! Paths in requests are server paths (the caller adds the chroot); watch registrations and
//! events use client paths.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use zooid_proto::{
    xid, AuthPacket, ConnectRequest, ErrorCode, OpCode, Request, SetWatches, WatcherEvent,
};

use super::format::{event_type_name, keeper_state_name};
use super::watches::{event, WatchReg, WatchTable};
use crate::conn::{flush_now, handshake};
use crate::core::{ClientCore, ClientError, Event, Session};

/// `Watcher.Event.KeeperState` codes.
pub mod keeper_state {
    pub const DISCONNECTED: i32 = 0;
    pub const SYNC_CONNECTED: i32 = 3;
    pub const AUTH_FAILED: i32 = 4;
    pub const CONNECTED_READ_ONLY: i32 = 5;
    pub const EXPIRED: i32 = -112;
    pub const CLOSED: i32 = 7;
}

/// The default port of a host given without one.
const DEFAULT_PORT: u16 = 2181;
/// Pause between two rounds over the server list that both failed.
const ROUND_PAUSE: Duration = Duration::from_secs(1);
/// How long `close` waits for the server to answer closeSession.
const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// setWatches packets carry at most about this many bytes of paths (as the Java client).
const SET_WATCHES_MAX_BYTES: usize = 128 * 1024;

/// `ZooKeeper.States`, as the prompt shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZkState {
    Connecting,
    Connected,
    ConnectedReadOnly,
    Closed,
    AuthFailed,
}

impl ZkState {
    pub fn is_alive(self) -> bool {
        !matches!(self, ZkState::Closed | ZkState::AuthFailed)
    }

    pub fn name(self) -> &'static str {
        match self {
            ZkState::Connecting => "CONNECTING",
            ZkState::Connected => "CONNECTED",
            ZkState::ConnectedReadOnly => "CONNECTEDREADONLY",
            ZkState::Closed => "CLOSED",
            ZkState::AuthFailed => "AUTH_FAILED",
        }
    }

    /// The error a request gets when the connection goes away in this state.
    fn loss_code(self) -> i32 {
        match self {
            ZkState::AuthFailed => ErrorCode::AuthFailed.code(),
            ZkState::Closed => ErrorCode::SessionExpired.code(),
            _ => ErrorCode::ConnectionLoss.code(),
        }
    }
}

/// What zkCli's watcher is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    pub state: i32,
    pub event_type: i32,
    pub path: Option<String>,
}

impl WatchedEvent {
    fn state_change(state: i32) -> WatchedEvent {
        WatchedEvent {
            state,
            event_type: event::NONE,
            path: None,
        }
    }
}

impl fmt::Display for WatchedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WatchedEvent state:{} type:{} path:{}",
            keeper_state_name(self.state),
            event_type_name(self.event_type),
            self.path.as_deref().unwrap_or("null")
        )
    }
}

/// Where a session reports events: a channel shared by every session of one shell, with a
/// sequence number per event and a mark saying how many events came before the latest reply.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<(u64, WatchedEvent)>,
    next_seq: Arc<AtomicU64>,
    mark: Arc<AtomicU64>,
}

impl EventSink {
    pub fn new() -> (EventSink, mpsc::UnboundedReceiver<(u64, WatchedEvent)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = EventSink {
            tx,
            next_seq: Arc::new(AtomicU64::new(0)),
            mark: Arc::new(AtomicU64::new(0)),
        };
        (sink, rx)
    }

    /// Events numbered below this arrived before the latest reply (or close) was handed over.
    pub fn mark(&self) -> u64 {
        self.mark.load(Ordering::SeqCst)
    }

    fn send(&self, ev: WatchedEvent) {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let _ = self.tx.send((seq, ev));
    }

    fn set_mark(&self) {
        self.mark
            .store(self.next_seq.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// A reply: ZooKeeper's error code (0 is OK, connection problems are CONNECTIONLOSS etc.) and
/// the body.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub zxid: i64,
    pub err: i32,
    pub body: Vec<u8>,
}

impl Reply {
    fn error(err: i32) -> Reply {
        Reply {
            zxid: 0,
            err,
            body: Vec::new(),
        }
    }
}

/// What a request's reply does to the watch table.
#[derive(Debug, Clone)]
pub enum WatchOp {
    None,
    Register(WatchReg),
    /// removeWatches: `kind` is a `watcher_type`.
    Remove {
        path: String,
        kind: i32,
        local: bool,
    },
}

enum Command {
    Call {
        req: Request,
        watch: WatchOp,
        reply: oneshot::Sender<Reply>,
    },
    AddAuth {
        scheme: String,
        auth: Vec<u8>,
    },
    Close {
        done: oneshot::Sender<()>,
    },
}

struct Shared {
    state: Mutex<ZkState>,
    session_id: AtomicI64,
}

impl Shared {
    fn state(&self) -> ZkState {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_state(&self, s: ZkState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }
}

/// One server of the connect string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

/// A parsed connect string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    pub hosts: Vec<HostPort>,
    pub chroot: Option<String>,
}

/// Parse `host:port[,host:port...][/chroot]` as `ConnectStringParser` does (`[v6]:port`
/// too; the port defaults to 2181; a chroot of `/` is none).
pub fn parse_connect_string(s: &str) -> Result<ConnectString, String> {
    let (hosts_part, chroot) = match s.find('/') {
        Some(off) => {
            let c = &s[off..];
            let chroot = if c.len() == 1 {
                None
            } else {
                super::format::validate_path(c)?;
                Some(c.to_owned())
            };
            (&s[..off], chroot)
        }
        None => (s, None),
    };
    let mut hosts = Vec::new();
    for item in hosts_part
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
    {
        let bad_port = |p: &str| format!("For input string: \"{p}\"");
        let (host, port) = if let Some(rest) = item.strip_prefix('[') {
            let close = rest
                .find(']')
                .ok_or_else(|| format!("{item} does not have the form [IPv6]:port"))?;
            let host = &rest[..close];
            let after = &rest[close + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad_port(p))?,
                None => DEFAULT_PORT,
            };
            (host.to_owned(), port)
        } else {
            match item.rfind(':') {
                Some(i) if i + 1 < item.len() => {
                    let p = &item[i + 1..];
                    (item[..i].to_owned(), p.parse().map_err(|_| bad_port(p))?)
                }
                Some(i) => (item[..i].to_owned(), DEFAULT_PORT),
                None => (item.to_owned(), DEFAULT_PORT),
            }
        };
        hosts.push(HostPort { host, port });
    }
    if hosts.is_empty() {
        return Err("A HostProvider may not be empty!".into());
    }
    Ok(ConnectString { hosts, chroot })
}

/// A handle on the session task; cheap to clone.
#[derive(Clone)]
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    chroot: Option<String>,
}

impl Client {
    /// Start a session task for `connect_string` (inside a tokio runtime). Events go to
    /// `events`. A `lazy` session connects only when the first request (or `close`) comes.
    pub fn connect(
        connect_string: &str,
        session_timeout_ms: i32,
        read_only: bool,
        lazy: bool,
        events: EventSink,
    ) -> Result<Client, String> {
        let cs = parse_connect_string(connect_string)?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: Mutex::new(ZkState::Connecting),
            session_id: AtomicI64::new(0),
        });
        let driver = Driver {
            hosts: cs.hosts,
            next_host: 0,
            chroot: cs.chroot.clone(),
            requested_timeout_ms: session_timeout_ms,
            negotiated_timeout_ms: 0,
            read_only,
            session_id: 0,
            passwd: vec![0; 16],
            last_zxid: 0,
            auth: Vec::new(),
            watches: WatchTable::default(),
            queued: VecDeque::new(),
            shared: shared.clone(),
            events,
            commands: command_rx,
            commands_open: true,
            closing: false,
            close_waiters: Vec::new(),
            event_state: keeper_state::DISCONNECTED,
        };
        tokio::spawn(driver.run(lazy));
        Ok(Client {
            commands,
            shared,
            chroot: cs.chroot,
        })
    }

    pub fn state(&self) -> ZkState {
        self.shared.state()
    }

    pub fn session_id(&self) -> i64 {
        self.shared.session_id.load(Ordering::Relaxed)
    }

    /// `prependChroot`: the server path of a client path.
    pub fn server_path(&self, client_path: &str) -> String {
        match &self.chroot {
            None => client_path.to_owned(),
            Some(c) if client_path == "/" => c.clone(),
            Some(c) => format!("{c}{client_path}"),
        }
    }

    /// The client path of a server path (a created node's name).
    pub fn client_path(&self, server_path: &str) -> String {
        strip_chroot(self.chroot.as_deref(), server_path)
    }

    /// Send `req` and wait for its reply; connection trouble is an error code like any other.
    pub async fn call(&self, req: Request, watch: WatchOp) -> Reply {
        let (tx, rx) = oneshot::channel();
        let cmd = Command::Call {
            req,
            watch,
            reply: tx,
        };
        if self.commands.send(cmd).is_err() {
            return Reply::error(self.state().loss_code());
        }
        match rx.await {
            Ok(r) => r,
            Err(_) => Reply::error(self.state().loss_code()),
        }
    }

    /// `addAuthInfo`: sent now if connected, and again after every reconnect. The reply is not
    /// awaited; a refusal shows up as the AuthFailed event.
    pub fn add_auth(&self, scheme: &str, auth: &[u8]) {
        let _ = self.commands.send(Command::AddAuth {
            scheme: scheme.to_owned(),
            auth: auth.to_vec(),
        });
    }

    /// Close the session (closeSession if connected) and wait until the task has done so.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close { done: tx }).is_ok() {
            let _ = rx.await;
        }
    }
}

fn strip_chroot(chroot: Option<&str>, server_path: &str) -> String {
    match chroot {
        None => server_path.to_owned(),
        Some(c) if server_path == c => "/".to_owned(),
        Some(c) if server_path.len() > c.len() && server_path.starts_with(c) => {
            server_path[c.len()..].to_owned()
        }
        Some(_) => server_path.to_owned(),
    }
}

struct Pending {
    req: Request,
    watch: WatchOp,
    /// `None` for the closeSession the task sends itself.
    reply: Option<oneshot::Sender<Reply>>,
}

enum Round {
    Connected(TcpStream, ClientCore, Session),
    Failed,
    Expired,
    /// `close` was asked for while no connection could be made.
    Closing,
}

enum ServeEnd {
    Lost,
    Closed,
    AuthFailed,
}

/// One item the core produced, copied out of its buffer.
enum Incoming {
    Reply {
        op: OpCode,
        zxid: i64,
        err: i32,
        body: Vec<u8>,
    },
    Watch(WatcherEvent),
    AuthReply(i32),
    Other,
}

struct Driver {
    hosts: Vec<HostPort>,
    next_host: usize,
    chroot: Option<String>,
    requested_timeout_ms: i32,
    negotiated_timeout_ms: i32,
    read_only: bool,
    session_id: i64,
    passwd: Vec<u8>,
    last_zxid: i64,
    auth: Vec<(String, Vec<u8>)>,
    watches: WatchTable,
    /// Requests waiting for a connection.
    queued: VecDeque<Pending>,
    shared: Arc<Shared>,
    events: EventSink,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_open: bool,
    closing: bool,
    close_waiters: Vec<oneshot::Sender<()>>,
    /// The last state reported (the event thread's `sessionState`).
    event_state: i32,
}

impl Driver {
    async fn run(mut self, lazy: bool) {
        while lazy && self.queued.is_empty() && !self.closing {
            match self.commands.recv().await {
                Some(cmd) => self.on_command_offline(Some(cmd)),
                None => return,
            }
        }
        loop {
            match self.connect_round().await {
                Round::Connected(stream, core, session) => {
                    self.on_connected(&session);
                    match self.serve(stream, core).await {
                        ServeEnd::Lost => {
                            self.shared.set_state(ZkState::Connecting);
                            self.emit(WatchedEvent::state_change(keeper_state::DISCONNECTED));
                        }
                        ServeEnd::Closed => {
                            self.finish_close();
                            break;
                        }
                        ServeEnd::AuthFailed => break,
                    }
                }
                Round::Expired => {
                    self.shared.set_state(ZkState::Closed);
                    self.emit(WatchedEvent::state_change(keeper_state::EXPIRED));
                    break;
                }
                Round::Closing => {
                    self.finish_close();
                    break;
                }
                Round::Failed => {
                    let loss = ErrorCode::ConnectionLoss.code();
                    while let Some(p) = self.queued.pop_front() {
                        self.finish(p, 0, loss, Vec::new());
                    }
                    if self.closing {
                        self.finish_close();
                        break;
                    }
                    self.pause(ROUND_PAUSE).await;
                    if self.closing {
                        self.finish_close();
                        break;
                    }
                }
            }
        }
        // The session is over: whatever comes later fails at once.
        let code = self.shared.state().loss_code();
        while let Some(p) = self.queued.pop_front() {
            self.finish(p, 0, code, Vec::new());
        }
        self.events.set_mark();
        for w in self.close_waiters.drain(..) {
            let _ = w.send(());
        }
        while let Some(cmd) = self.commands.recv().await {
            match cmd {
                Command::Call { reply, .. } => {
                    let _ = reply.send(Reply::error(code));
                }
                Command::Close { done } => {
                    let _ = done.send(());
                }
                Command::AddAuth { .. } => {}
            }
        }
    }

    fn finish_close(&mut self) {
        self.shared.set_state(ZkState::Closed);
        self.emit(WatchedEvent::state_change(keeper_state::CLOSED));
        self.events.set_mark();
        for w in self.close_waiters.drain(..) {
            let _ = w.send(());
        }
    }

    /// Report an event, dropping state events that repeat the current state.
    fn emit(&mut self, ev: WatchedEvent) {
        if ev.event_type == event::NONE {
            if ev.state == self.event_state {
                return;
            }
            self.event_state = ev.state;
        }
        self.events.send(ev);
    }

    /// A command that arrived while no connection is up.
    fn on_command_offline(&mut self, cmd: Option<Command>) {
        match cmd {
            None => self.commands_open = false,
            Some(Command::Call { req, watch, reply }) => self.queued.push_back(Pending {
                req,
                watch,
                reply: Some(reply),
            }),
            Some(Command::AddAuth { scheme, auth }) => self.auth.push((scheme, auth)),
            Some(Command::Close { done }) => {
                self.closing = true;
                self.close_waiters.push(done);
            }
        }
    }

    async fn pause(&mut self, d: Duration) {
        let until = Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return,
                cmd = self.commands.recv(), if self.commands_open => {
                    self.on_command_offline(cmd);
                    if self.closing {
                        return;
                    }
                }
            }
        }
    }

    fn connect_request(&self) -> ConnectRequest {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: self.last_zxid,
            timeout_ms: self.requested_timeout_ms,
            session_id: self.session_id,
            passwd: self.passwd.clone(),
            read_only: Some(self.read_only),
        }
    }

    /// Try each host once, in order, starting after the last one used.
    async fn connect_round(&mut self) -> Round {
        let n = self.hosts.len();
        let timeout_ms = if self.negotiated_timeout_ms > 0 {
            self.negotiated_timeout_ms
        } else {
            self.requested_timeout_ms
        };
        let per_host = Duration::from_millis((timeout_ms.max(1) as u64 / n as u64).max(1));
        for _ in 0..n {
            let host = self.hosts[self.next_host].clone();
            self.next_host = (self.next_host + 1) % n;
            let attempt = attempt_connect(host, self.connect_request(), per_host);
            tokio::pin!(attempt);
            let result = loop {
                tokio::select! {
                    r = &mut attempt => break r,
                    cmd = self.commands.recv(), if self.commands_open => self.on_command_offline(cmd),
                }
            };
            match result {
                Ok((stream, core, session)) => return Round::Connected(stream, core, session),
                Err(ClientError::SessionExpired) => return Round::Expired,
                Err(_) if self.closing => return Round::Closing,
                Err(_) => continue,
            }
        }
        Round::Failed
    }

    fn on_connected(&mut self, session: &Session) {
        self.session_id = session.session_id;
        self.passwd = session.passwd.clone();
        self.negotiated_timeout_ms = session.timeout_ms;
        self.shared
            .session_id
            .store(session.session_id, Ordering::Relaxed);
        let (state, ev) = if session.read_only {
            (
                ZkState::ConnectedReadOnly,
                keeper_state::CONNECTED_READ_ONLY,
            )
        } else {
            (ZkState::Connected, keeper_state::SYNC_CONNECTED)
        };
        self.shared.set_state(state);
        self.emit(WatchedEvent::state_change(ev));
    }

    /// The setWatches packets that re-register every watch (server paths).
    fn set_watches_packets(&self) -> Vec<Request> {
        let server = |p: &String| match &self.chroot {
            None => p.clone(),
            Some(c) if p == "/" => c.clone(),
            Some(c) => format!("{c}{p}"),
        };
        let mut out = Vec::new();
        let mut cur = SetWatches {
            relative_zxid: self.last_zxid,
            ..SetWatches::default()
        };
        let mut bytes = 0;
        let lists: [(&std::collections::BTreeSet<String>, usize); 5] = [
            (&self.watches.data, 0),
            (&self.watches.exist, 1),
            (&self.watches.child, 2),
            (&self.watches.persistent, 3),
            (&self.watches.persistent_recursive, 4),
        ];
        for (set, which) in lists {
            for p in set {
                let sp = server(p);
                bytes += sp.len();
                match which {
                    0 => cur.data.push(sp),
                    1 => cur.exist.push(sp),
                    2 => cur.child.push(sp),
                    3 => cur.persistent.push(sp),
                    _ => cur.persistent_recursive.push(sp),
                }
                if bytes > SET_WATCHES_MAX_BYTES {
                    let full = std::mem::replace(
                        &mut cur,
                        SetWatches {
                            relative_zxid: self.last_zxid,
                            ..SetWatches::default()
                        },
                    );
                    out.push(full);
                    bytes = 0;
                }
            }
        }
        out.push(cur);
        out.into_iter()
            .filter(|sw| {
                !(sw.data.is_empty()
                    && sw.exist.is_empty()
                    && sw.child.is_empty()
                    && sw.persistent.is_empty()
                    && sw.persistent_recursive.is_empty())
            })
            .map(|mut sw| {
                sw.v2 = !(sw.persistent.is_empty() && sw.persistent_recursive.is_empty());
                Request::SetWatches(sw)
            })
            .collect()
    }

    /// Settle one request: update the watch table, then hand the reply over.
    fn finish(&mut self, p: Pending, zxid: i64, mut err: i32, body: Vec<u8>) {
        match &p.watch {
            WatchOp::None => {}
            WatchOp::Register(reg) => self.watches.register(reg, err),
            WatchOp::Remove { path, kind, local } => {
                match self.watches.remove(path, *kind, *local, err) {
                    Ok(kinds) => {
                        let lost = err == ErrorCode::SessionExpired.code()
                            || err == ErrorCode::ConnectionLoss.code();
                        let state = if lost {
                            keeper_state::DISCONNECTED
                        } else {
                            keeper_state::SYNC_CONNECTED
                        };
                        for k in kinds {
                            let ev = WatchedEvent {
                                state,
                                event_type: k,
                                path: Some(path.clone()),
                            };
                            self.emit(ev);
                        }
                        err = 0;
                    }
                    Err(code) => err = code,
                }
            }
        }
        if let Some(tx) = p.reply {
            self.events.set_mark();
            let _ = tx.send(Reply { zxid, err, body });
        }
    }

    fn on_notification(&mut self, ev: WatcherEvent) {
        let path = strip_chroot(self.chroot.as_deref(), &ev.path);
        if self.watches.materialize(ev.event_type, &path) {
            self.emit(WatchedEvent {
                state: ev.state,
                event_type: ev.event_type,
                path: Some(path),
            });
        }
    }

    /// Run one connection until it ends.
    async fn serve(&mut self, stream: TcpStream, mut core: ClientCore) -> ServeEnd {
        let mut in_flight: VecDeque<Pending> = VecDeque::new();
        for (scheme, auth) in self.auth.clone() {
            core.send_special(
                xid::AUTH,
                &Request::Auth(AuthPacket {
                    auth_type: 0,
                    scheme,
                    auth,
                }),
            );
        }
        for sw in self.set_watches_packets() {
            core.send_special(xid::SET_WATCHES, &sw);
        }
        while let Some(p) = self.queued.pop_front() {
            core.send_request(&p.req);
            in_flight.push_back(p);
        }
        let mut close_sent = false;
        let mut close_deadline = None;
        let timeout_ms = self.negotiated_timeout_ms.max(3) as u64;
        let read_timeout = Duration::from_millis(timeout_ms * 2 / 3);
        let ping_every = Duration::from_millis(timeout_ms / 3);
        let mut last_recv = Instant::now();
        let mut last_send = Instant::now();
        let end = 'conn: loop {
            if self.closing && !close_sent {
                core.send_request(&Request::CloseSession);
                in_flight.push_back(Pending {
                    req: Request::CloseSession,
                    watch: WatchOp::None,
                    reply: None,
                });
                close_sent = true;
                close_deadline = Some(Instant::now() + CLOSE_WAIT);
            }
            if !core.outgoing().is_empty() {
                if flush_now(&stream, &mut core).is_err() {
                    break 'conn self.lost_end(close_sent);
                }
                last_send = Instant::now();
            }
            let interest = if core.outgoing().is_empty() {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            };
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                ready = stream.ready(interest) => {
                    let Ok(ready) = ready else { break 'conn self.lost_end(close_sent) };
                    if !ready.is_readable() {
                        continue;
                    }
                    match stream.try_read_buf(core.read_buf()) {
                        Ok(0) => break 'conn self.lost_end(close_sent),
                        Ok(_) => last_recv = Instant::now(),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(_) => break 'conn self.lost_end(close_sent),
                    }
                    loop {
                        let item = match core.poll() {
                            Ok(None) => break,
                            Err(_) => break 'conn self.lost_end(close_sent),
                            Ok(Some(Event::Reply(r))) => Incoming::Reply {
                                op: r.op,
                                zxid: r.zxid,
                                err: r.err,
                                body: r.body.to_vec(),
                            },
                            Ok(Some(Event::Watch(ev))) => Incoming::Watch(ev),
                            Ok(Some(Event::Special { xid: x, err })) if x == xid::AUTH => {
                                Incoming::AuthReply(err)
                            }
                            Ok(Some(_)) => Incoming::Other,
                        };
                        self.last_zxid = self.last_zxid.max(core.last_zxid());
                        match item {
                            Incoming::Reply { op, zxid, err, body } => {
                                let p = in_flight
                                    .pop_front()
                                    .expect("the core matched the reply to a request in flight");
                                self.finish(p, zxid, err, body);
                                if op == OpCode::CloseSession {
                                    break 'conn ServeEnd::Closed;
                                }
                            }
                            Incoming::Watch(ev) => self.on_notification(ev),
                            Incoming::AuthReply(err) if err == ErrorCode::AuthFailed.code() => {
                                self.shared.set_state(ZkState::AuthFailed);
                                self.emit(WatchedEvent::state_change(keeper_state::AUTH_FAILED));
                            }
                            Incoming::AuthReply(_) | Incoming::Other => {}
                        }
                    }
                }
                cmd = self.commands.recv(), if self.commands_open => match cmd {
                    None => self.commands_open = false,
                    Some(Command::Call { req, watch, reply }) => {
                        if !self.shared.state().is_alive() || close_sent {
                            let code = if close_sent {
                                ErrorCode::SessionExpired.code()
                            } else {
                                self.shared.state().loss_code()
                            };
                            let _ = reply.send(Reply::error(code));
                        } else {
                            core.send_request(&req);
                            in_flight.push_back(Pending { req, watch, reply: Some(reply) });
                        }
                    }
                    Some(Command::AddAuth { scheme, auth }) => {
                        self.auth.push((scheme.clone(), auth.clone()));
                        core.send_special(xid::AUTH, &Request::Auth(AuthPacket { auth_type: 0, scheme, auth }));
                    }
                    Some(Command::Close { done }) => {
                        self.closing = true;
                        self.close_waiters.push(done);
                    }
                },
                _ = tokio::time::sleep_until(last_send + ping_every), if !close_sent => {
                    core.send_ping();
                }
                _ = tokio::time::sleep_until(last_recv + read_timeout) => {
                    break 'conn self.lost_end(close_sent);
                }
                _ = tokio::time::sleep_until(close_deadline.unwrap_or(far)), if close_deadline.is_some() => {
                    break 'conn ServeEnd::Closed;
                }
            }
        };
        let code = match end {
            ServeEnd::AuthFailed => ErrorCode::AuthFailed.code(),
            _ => ErrorCode::ConnectionLoss.code(),
        };
        for p in in_flight.drain(..) {
            self.finish(p, 0, code, Vec::new());
        }
        let mut stream = stream;
        let _ = stream.shutdown().await;
        end
    }

    fn lost_end(&self, close_sent: bool) -> ServeEnd {
        if close_sent {
            ServeEnd::Closed
        } else if self.shared.state() == ZkState::AuthFailed {
            ServeEnd::AuthFailed
        } else {
            ServeEnd::Lost
        }
    }
}

/// TCP connect to each address of `host` in turn and finish the handshake, within `limit`.
async fn attempt_connect(
    host: HostPort,
    req: ConnectRequest,
    limit: Duration,
) -> Result<(TcpStream, ClientCore, Session), ClientError> {
    let work = async {
        let addrs: Vec<_> = tokio::net::lookup_host((host.host.as_str(), host.port))
            .await?
            .collect();
        let mut last = ClientError::Closed;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(mut stream) => {
                    stream.set_nodelay(true)?;
                    let mut core = ClientCore::with_request(&req);
                    let session = handshake(&mut stream, &mut core).await?;
                    return Ok((stream, core, session));
                }
                Err(e) => last = e.into(),
            }
        }
        Err(last)
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| ClientError::Timeout("connect and handshake"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_strings_parse_like_connect_string_parser() {
        let cs = parse_connect_string("127.0.0.1:2181,h2:2182/app/x").unwrap();
        assert_eq!(
            cs.hosts,
            [
                HostPort {
                    host: "127.0.0.1".into(),
                    port: 2181
                },
                HostPort {
                    host: "h2".into(),
                    port: 2182
                }
            ]
        );
        assert_eq!(cs.chroot.as_deref(), Some("/app/x"));
        let cs = parse_connect_string("localhost/").unwrap();
        assert_eq!(cs.hosts[0].port, 2181);
        assert_eq!(cs.chroot, None);
        let cs = parse_connect_string("[::1]:3000").unwrap();
        assert_eq!(cs.hosts[0].host, "::1");
        assert_eq!(cs.hosts[0].port, 3000);
        assert!(parse_connect_string("h:port").is_err());
        assert!(parse_connect_string("h:1/bad/").is_err());
    }

    #[test]
    fn chroot_is_stripped_from_server_paths() {
        assert_eq!(strip_chroot(Some("/app"), "/app"), "/");
        assert_eq!(strip_chroot(Some("/app"), "/app/a"), "/a");
        assert_eq!(strip_chroot(None, "/a"), "/a");
    }

    #[test]
    fn events_print_as_watched_event_to_string() {
        let ev = WatchedEvent::state_change(keeper_state::SYNC_CONNECTED);
        assert_eq!(
            ev.to_string(),
            "WatchedEvent state:SyncConnected type:None path:null"
        );
        let ev = WatchedEvent {
            state: 3,
            event_type: event::NODE_DATA_CHANGED,
            path: Some("/a".into()),
        };
        assert_eq!(
            ev.to_string(),
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/a"
        );
    }
}
