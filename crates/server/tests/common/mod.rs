//! Shared helpers for the zooid integration tests: an in-process server per test, a bounded
//! await, `zookeeper-client` conveniences, and a tiny jute codec for the raw-socket tests (bad
//! input, handshake bytes, four-letter words), which are the only tests that bypass the client
//! library.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use zookeeper_client as zk;

/// Upper bound for any single awaited step. Tests normally finish far below it; it only turns
/// a hang into a failure.
pub const BOUND: Duration = Duration::from_secs(5);

/// Awaits `$fut` for at most [`BOUND`], panicking with the call site on timeout.
#[macro_export]
macro_rules! within {
    ($fut:expr) => {
        tokio::time::timeout($crate::common::BOUND, $fut)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "timed out after {:?} at {}:{}",
                    $crate::common::BOUND,
                    file!(),
                    line!()
                )
            })
    };
}

/// One in-process zooid server with its own data directory.
pub struct TestServer {
    pub addr: SocketAddr,
    handle: Option<zooid_server::ServerHandle>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// The configuration every test uses unless it says otherwise.
    pub fn config(dir: &std::path::Path) -> zooid_config::ServerConfig {
        let mut cfg = zooid_config::ServerConfig::default_standalone(dir.join("data"));
        cfg.client_port = Some(0);
        cfg.extended_types_enabled = true;
        cfg.container_check_interval_ms = 100;
        cfg.tick_ms = 200;
        cfg.min_session_timeout_ms = 400;
        cfg.max_session_timeout_ms = 20000;
        cfg.four_letter_words = vec!["*".into()];
        // No AdminServer on 0.0.0.0:8080; tests that want it set a loopback port.
        cfg.admin_enable_server = false;
        cfg
    }

    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut zooid_config::ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = TestServer::config(dir.path());
        tweak(&mut cfg);
        let handle = zooid_server::start(&cfg).await.expect("server starts");
        TestServer {
            addr: handle.client_addr,
            handle: Some(handle),
            _dir: dir,
        }
    }

    pub fn connect_string(&self) -> String {
        self.addr.to_string()
    }

    /// A new `zookeeper-client` session with the library's default settings.
    pub async fn client(&self) -> zk::Client {
        self.connect(zk::Client::connector()).await
    }

    /// Connects with a configured connector; panics if the session cannot be established.
    pub async fn connect(&self, connector: zk::Connector) -> zk::Client {
        self.try_connect(connector)
            .await
            .expect("zookeeper-client connects")
    }

    pub async fn try_connect(&self, connector: zk::Connector) -> Result<zk::Client, zk::Error> {
        within!(connector.connect(&self.connect_string()))
    }

    pub async fn stop(mut self) {
        if let Some(handle) = self.handle.take() {
            within!(handle.stop());
        }
    }
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// zookeeper-client conveniences.
// ---------------------------------------------------------------------------------------------

/// Create options with `world:anyone` ALL.
pub const PERSISTENT: zk::CreateOptions<'static> =
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
pub const PERSISTENT_SEQUENTIAL: zk::CreateOptions<'static> =
    zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
pub const EPHEMERAL: zk::CreateOptions<'static> =
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
pub const EPHEMERAL_SEQUENTIAL: zk::CreateOptions<'static> =
    zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
pub const CONTAINER: zk::CreateOptions<'static> =
    zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());

/// One ACL entry.
pub fn acl(perms: zk::Permission, scheme: &str, id: &str) -> zk::Acl {
    zk::Acl::new(perms, zk::AuthId::new(scheme, id))
}

/// A `world:anyone` ACL entry.
pub fn anyone(perms: zk::Permission) -> zk::Acl {
    acl(perms, "world", "anyone")
}

/// The event a server notification produces: ZooKeeper 3.8 sends zxid -1 and SyncConnected.
pub fn event(kind: zk::EventType, path: &str) -> zk::WatchedEvent {
    zk::WatchedEvent::new(kind, path)
}

/// Waits (bounded) for a one-shot watcher to fire.
pub async fn fired(watcher: zk::OneshotWatcher) -> zk::WatchedEvent {
    txn_event(within!(watcher.changed()))
}

/// Waits (bounded) for the next event of a persistent watcher.
pub async fn next(watcher: &mut zk::PersistentWatcher) -> zk::WatchedEvent {
    txn_event(within!(watcher.changed()))
}

/// A node event carries the zxid of the txn that fired it (as ZooKeeper 3.9 sends it);
/// checked here, then cleared so tests compare events with [`event`].
fn txn_event(mut e: zk::WatchedEvent) -> zk::WatchedEvent {
    if e.event_type != zk::EventType::Session {
        assert!(e.zxid > 0, "a notification without its txn's zxid: {e:?}");
        e.zxid = -1;
    }
    e
}

/// The event if the watcher has already fired, without waiting.
pub async fn fired_already(watcher: zk::OneshotWatcher) -> Option<zk::WatchedEvent> {
    // `timeout` polls the inner future once before it looks at the (zero) deadline.
    tokio::time::timeout(Duration::ZERO, watcher.changed())
        .await
        .ok()
        .map(txn_event)
}

/// Waits (bounded) until the client's session state changes and returns the new state.
pub async fn next_state(watcher: &mut zk::StateWatcher) -> zk::SessionState {
    within!(watcher.changed())
}

// ---------------------------------------------------------------------------------------------
// Raw protocol helpers.
// ---------------------------------------------------------------------------------------------

pub mod err {
    pub const OK: i32 = 0;
    pub const RUNTIME_INCONSISTENCY: i32 = -2;
    pub const UNIMPLEMENTED: i32 = -6;
    pub const BAD_ARGUMENTS: i32 = -8;
    pub const NO_NODE: i32 = -101;
    pub const BAD_VERSION: i32 = -103;
    pub const INVALID_ACL: i32 = -114;
    pub const AUTH_FAILED: i32 = -115;
}

pub mod op {
    pub const CREATE: i32 = 1;
    pub const SET_DATA: i32 = 5;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const CREATE_TTL: i32 = 21;
    pub const AUTH: i32 = 100;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const CLOSE_SESSION: i32 = -11;
}

/// Big-endian jute writer.
#[derive(Default)]
pub struct Jute(pub Vec<u8>);

impl Jute {
    pub fn new() -> Jute {
        Jute(Vec::new())
    }
    pub fn int(mut self, v: i32) -> Jute {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn long(mut self, v: i64) -> Jute {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn boolean(mut self, v: bool) -> Jute {
        self.0.push(v as u8);
        self
    }
    pub fn buffer(self, v: &[u8]) -> Jute {
        let mut me = self.int(v.len() as i32);
        me.0.extend_from_slice(v);
        me
    }
    pub fn string(self, v: &str) -> Jute {
        self.buffer(v.as_bytes())
    }
    pub fn raw(mut self, v: &[u8]) -> Jute {
        self.0.extend_from_slice(v);
        self
    }
    /// An ACL vector of one `world:anyone` entry with the given permissions.
    pub fn world_acl(self, perms: i32) -> Jute {
        self.int(1).int(perms).string("world").string("anyone")
    }
    pub fn bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Big-endian jute reader over a received frame body.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }
    pub fn int(&mut self) -> i32 {
        let (h, t) = self.buf.split_at(4);
        self.buf = t;
        i32::from_be_bytes(h.try_into().unwrap())
    }
    pub fn long(&mut self) -> i64 {
        let (h, t) = self.buf.split_at(8);
        self.buf = t;
        i64::from_be_bytes(h.try_into().unwrap())
    }
    pub fn boolean(&mut self) -> bool {
        let (h, t) = self.buf.split_at(1);
        self.buf = t;
        h[0] != 0
    }
    pub fn buffer(&mut self) -> Vec<u8> {
        let n = self.int();
        if n < 0 {
            return Vec::new();
        }
        let (h, t) = self.buf.split_at(n as usize);
        self.buf = t;
        h.to_vec()
    }
    pub fn string(&mut self) -> String {
        String::from_utf8(self.buffer()).unwrap()
    }
    pub fn strings(&mut self) -> Vec<String> {
        let n = self.int();
        (0..n.max(0)).map(|_| self.string()).collect()
    }
    pub fn remaining(&self) -> &'a [u8] {
        self.buf
    }
}

/// Writes `len` + `body`.
pub async fn write_frame(stream: &mut TcpStream, body: &[u8]) {
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    stream.write_all(&frame).await.expect("write frame");
}

/// Reads one frame body; `None` if the peer closed (or reset) the connection first.
pub async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    match within!(stream.read_exact(&mut len)) {
        Ok(_) => {}
        Err(_) => return None,
    }
    let len = i32::from_be_bytes(len);
    assert!(
        (0..=16 << 20).contains(&len),
        "implausible frame length {len}"
    );
    let mut body = vec![0u8; len as usize];
    within!(stream.read_exact(&mut body)).ok()?;
    Some(body)
}

/// Reads until the peer closes and returns every byte it sent meanwhile; the panic on timeout
/// names the caller's location.
#[macro_export]
macro_rules! until_closed {
    ($stream:expr) => {
        $crate::common::read_until_closed_at($stream, file!(), line!()).await
    };
}

pub async fn read_until_closed_at(stream: &mut TcpStream, file: &str, line: u32) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(BOUND, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "server did not close the connection within {BOUND:?} (got {} bytes) at {file}:{line}",
                all.len()
            ),
            Ok(Ok(0)) => return all,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => return all, // reset counts as closed
        }
    }
}

/// A ConnectRequest body. `read_only: None` leaves out the optional trailing byte.
pub fn connect_request(
    timeout_ms: i32,
    session_id: i64,
    passwd: &[u8],
    read_only: Option<bool>,
) -> Vec<u8> {
    let j = Jute::new()
        .int(0)
        .long(0)
        .int(timeout_ms)
        .long(session_id)
        .buffer(passwd);
    match read_only {
        Some(ro) => j.boolean(ro).bytes(),
        None => j.bytes(),
    }
}

#[derive(Debug, Clone)]
pub struct ConnectResponse {
    pub body_len: usize,
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: Option<u8>,
}

pub fn parse_connect_response(body: &[u8]) -> ConnectResponse {
    let mut r = Reader::new(body);
    let protocol_version = r.int();
    let timeout_ms = r.int();
    let session_id = r.long();
    let passwd = r.buffer();
    let read_only = r.remaining().first().copied();
    ConnectResponse {
        body_len: body.len(),
        protocol_version,
        timeout_ms,
        session_id,
        passwd,
        read_only,
    }
}

/// Opens a socket and performs the handshake; returns the socket and the parsed response.
pub async fn raw_handshake(
    addr: SocketAddr,
    timeout_ms: i32,
    session_id: i64,
    passwd: &[u8],
    read_only: Option<bool>,
) -> (TcpStream, ConnectResponse) {
    let mut stream = within!(TcpStream::connect(addr)).expect("tcp connect");
    write_frame(
        &mut stream,
        &connect_request(timeout_ms, session_id, passwd, read_only),
    )
    .await;
    let body = read_frame(&mut stream).await.expect("connect response");
    (stream, parse_connect_response(&body))
}

/// A new session on a fresh socket.
pub async fn raw_session(addr: SocketAddr) -> (TcpStream, ConnectResponse) {
    raw_handshake(addr, 10_000, 0, &[0u8; 16], Some(false)).await
}

/// `ReplyHeader` = xid, zxid, err; returns them and the rest of the body.
pub fn parse_reply(body: &[u8]) -> (i32, i64, i32, Vec<u8>) {
    let mut r = Reader::new(body);
    let xid = r.int();
    let zxid = r.long();
    let err = r.int();
    (xid, zxid, err, r.remaining().to_vec())
}

/// Sends one request on a raw session and reads its reply: `(err, body)`. The xid must be
/// echoed. Raw sessions set no watches and send no pings, so the next frame is the reply.
pub async fn raw_call(
    stream: &mut TcpStream,
    xid: i32,
    opcode: i32,
    body: &[u8],
) -> (i32, Vec<u8>) {
    let frame = Jute::new().int(xid).int(opcode).raw(body).bytes();
    write_frame(stream, &frame).await;
    let reply = read_frame(stream).await.expect("a reply");
    let (got_xid, _, code, rest) = parse_reply(&reply);
    assert_eq!(got_xid, xid, "reply xid");
    (code, rest)
}

/// Sends a four-letter word and returns everything the server wrote before closing.
pub async fn four_letter_word(addr: SocketAddr, word: &str) -> String {
    let mut stream = within!(TcpStream::connect(addr)).expect("tcp connect");
    stream.write_all(word.as_bytes()).await.unwrap();
    String::from_utf8_lossy(&until_closed!(&mut stream)).into_owned()
}
