//! Shared helpers for the zooid integration tests: an in-process server per test, a bounded
//! await, and a tiny hand-written jute codec for raw-socket tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

    /// A new session with a comfortable timeout.
    pub async fn client(&self) -> Zk {
        Zk::connect(self.addr).await
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

// ---------------------------------------------------------------------------------------------
// Raw protocol helpers.
// ---------------------------------------------------------------------------------------------

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

/// Reads until the server closes the connection and returns every byte it sent meanwhile.
/// Panics if the connection is still open after [`BOUND`].
pub async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    read_until_closed_at(stream, file!(), line!()).await
}

/// Reads until the peer closes; the panic names the caller's location.
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

/// Sends a four-letter word and returns everything the server wrote before closing.
pub async fn four_letter_word(addr: SocketAddr, word: &str) -> String {
    let mut stream = within!(TcpStream::connect(addr)).expect("tcp connect");
    stream.write_all(word.as_bytes()).await.unwrap();
    String::from_utf8_lossy(&read_until_closed(&mut stream).await).into_owned()
}

/// An ACL list of one `world:anyone` entry with the given permissions, jute-encoded.
pub fn world_acl(perms: i32) -> Jute {
    Jute::new()
        .int(1)
        .int(perms)
        .string("world")
        .string("anyone")
}

// ---------------------------------------------------------------------------------------------
// A minimal ZooKeeper client written for these tests.
//
// `zookeeper-client` 0.11 is declared as a dev-dependency without its `tokio` feature, so every
// `Client::connect` panics with "no spawner" (asyncs/spawns has no executor to spawn its session
// task on). This small client speaks the wire protocol directly instead; it keeps the session
// alive with pings, routes replies by xid and queues watch notifications in arrival order.
// ---------------------------------------------------------------------------------------------

pub mod err {
    pub const OK: i32 = 0;
    pub const RUNTIME_INCONSISTENCY: i32 = -2;
    /// Used locally when the connection is gone.
    pub const CONNECTION_LOSS: i32 = -4;
    pub const MARSHALLING_ERROR: i32 = -5;
    pub const UNIMPLEMENTED: i32 = -6;
    pub const BAD_ARGUMENTS: i32 = -8;
    pub const NO_NODE: i32 = -101;
    pub const NO_AUTH: i32 = -102;
    pub const BAD_VERSION: i32 = -103;
    pub const NO_CHILDREN_FOR_EPHEMERALS: i32 = -108;
    pub const NODE_EXISTS: i32 = -110;
    pub const NOT_EMPTY: i32 = -111;
    pub const SESSION_EXPIRED: i32 = -112;
    pub const INVALID_ACL: i32 = -114;
    pub const AUTH_FAILED: i32 = -115;
}

pub mod op {
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;
}

pub mod flags {
    pub const PERSISTENT: i32 = 0;
    pub const EPHEMERAL: i32 = 1;
    pub const PERSISTENT_SEQUENTIAL: i32 = 2;
    pub const EPHEMERAL_SEQUENTIAL: i32 = 3;
    pub const CONTAINER: i32 = 4;
    pub const PERSISTENT_WITH_TTL: i32 = 5;
    pub const PERSISTENT_SEQUENTIAL_WITH_TTL: i32 = 6;
}

pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = 31;
}

pub mod ev {
    pub const CREATED: i32 = 1;
    pub const DELETED: i32 = 2;
    pub const DATA_CHANGED: i32 = 3;
    pub const CHILDREN_CHANGED: i32 = 4;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

impl Acl {
    pub fn new(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            scheme: scheme.into(),
            id: id.into(),
        }
    }
    pub fn anyone(perms: i32) -> Acl {
        Acl::new(perms, "world", "anyone")
    }
}

pub fn open_acl() -> Vec<Acl> {
    vec![Acl::anyone(perms::ALL)]
}

/// A watch notification: (event type, path). The keeper state is checked to be SyncConnected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: i32,
    pub path: String,
}

pub fn event(kind: i32, path: &str) -> Event {
    Event {
        kind,
        path: path.into(),
    }
}

impl Jute {
    pub fn acls(self, acls: &[Acl]) -> Jute {
        let mut j = self.int(acls.len() as i32);
        for a in acls {
            j = j.int(a.perms).string(&a.scheme).string(&a.id);
        }
        j
    }
}

impl Reader<'_> {
    pub fn boolean(&mut self) -> bool {
        let (h, t) = self.buf.split_at(1);
        self.buf = t;
        h[0] != 0
    }
    pub fn stat(&mut self) -> Stat {
        Stat {
            czxid: self.long(),
            mzxid: self.long(),
            ctime: self.long(),
            mtime: self.long(),
            version: self.int(),
            cversion: self.int(),
            aversion: self.int(),
            ephemeral_owner: self.long(),
            data_length: self.int(),
            num_children: self.int(),
            pzxid: self.long(),
        }
    }
    pub fn strings(&mut self) -> Vec<String> {
        let n = self.int();
        (0..n.max(0)).map(|_| self.string()).collect()
    }
    pub fn acls(&mut self) -> Vec<Acl> {
        let n = self.int();
        (0..n.max(0))
            .map(|_| {
                let perms = self.int();
                let scheme = self.string();
                let id = self.string();
                Acl { perms, scheme, id }
            })
            .collect()
    }
}

/// One op of a multi transaction.
pub enum Op<'a> {
    Create {
        path: &'a str,
        data: &'a [u8],
        flags: i32,
    },
    Delete {
        path: &'a str,
        version: i32,
    },
    SetData {
        path: &'a str,
        data: &'a [u8],
        version: i32,
    },
    Check {
        path: &'a str,
        version: i32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// Type 1 carries no stat; type 15 (create2) does.
    Create {
        path: String,
        stat: Option<Stat>,
    },
    Delete,
    SetData(Stat),
    Check,
    Error(i32),
}

pub enum ReadOp<'a> {
    GetData(&'a str),
    GetChildren(&'a str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    Data(Vec<u8>, Stat),
    Children(Vec<String>),
    Error(i32),
}

type Reply = (i64, i32, Vec<u8>);

struct Call {
    xid: i32,
    frame: Vec<u8>,
    reply: tokio::sync::oneshot::Sender<Reply>,
}

/// A session over one TCP connection. Dropping it stops pinging and closes the socket without
/// closeSession (the session lives on until it expires); [`Zk::close`] ends it cleanly.
pub struct Zk {
    calls: tokio::sync::mpsc::UnboundedSender<Call>,
    events: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Event>>,
    next_xid: std::sync::atomic::AtomicI32,
    last_zxid: std::sync::atomic::AtomicI64,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub timeout_ms: i32,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Zk {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Zk {
    /// A new session with a 10 s timeout.
    pub async fn connect(addr: SocketAddr) -> Zk {
        Zk::connect_with(addr, 10_000, 0, &[0u8; 16])
            .await
            .expect("new session")
    }

    /// Handshake with the given timeout / session; `Err(response)` when the server refuses the
    /// session (timeOut <= 0, i.e. expired or wrong password).
    pub async fn connect_with(
        addr: SocketAddr,
        timeout_ms: i32,
        session_id: i64,
        passwd: &[u8],
    ) -> Result<Zk, ConnectResponse> {
        let (stream, resp) = raw_handshake(addr, timeout_ms, session_id, passwd, Some(false)).await;
        if resp.timeout_ms <= 0 {
            return Err(resp);
        }
        let (calls_tx, calls_rx) = tokio::sync::mpsc::unbounded_channel();
        let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
        let ping_every = Duration::from_millis((resp.timeout_ms / 3).max(50) as u64);
        let task = tokio::spawn(session_task(stream, calls_rx, events_tx, ping_every));
        Ok(Zk {
            calls: calls_tx,
            events: tokio::sync::Mutex::new(events_rx),
            next_xid: std::sync::atomic::AtomicI32::new(1),
            last_zxid: std::sync::atomic::AtomicI64::new(0),
            session_id: resp.session_id,
            passwd: resp.passwd,
            timeout_ms: resp.timeout_ms,
            task,
        })
    }

    /// zxid of the most recent reply.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sends one request and waits for its reply; `Err(code)` for a non-zero err.
    pub async fn call(&self, opcode: i32, body: &[u8]) -> Result<Vec<u8>, i32> {
        let xid = if opcode == op::AUTH {
            -4
        } else {
            self.next_xid
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        };
        let mut frame = Jute::new().int(xid).int(opcode).bytes();
        frame.extend_from_slice(body);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.calls
            .send(Call {
                xid,
                frame,
                reply: tx,
            })
            .map_err(|_| err::CONNECTION_LOSS)?;
        let (zxid, code, body) = within!(rx).map_err(|_| err::CONNECTION_LOSS)?;
        self.last_zxid
            .store(zxid, std::sync::atomic::Ordering::SeqCst);
        if code == 0 {
            Ok(body)
        } else {
            Err(code)
        }
    }

    /// The next watch notification, waiting at most [`BOUND`]; `None` if the connection closed.
    pub async fn next_event(&self) -> Option<Event> {
        let mut rx = self.events.lock().await;
        within!(rx.recv())
    }

    /// Resolves once the server has closed the connection (pending notifications are skipped).
    pub async fn wait_closed(&self) {
        let mut rx = self.events.lock().await;
        while rx.recv().await.is_some() {}
    }

    /// A notification that has already arrived, without waiting.
    pub fn try_event(&self) -> Option<Event> {
        self.events.try_lock().ok()?.try_recv().ok()
    }

    pub async fn close(self) {
        let _ = self.call(op::CLOSE_SESSION, &[]).await;
    }

    // ---- requests ----

    fn create_body(path: &str, data: &[u8], acl: &[Acl], flags: i32) -> Jute {
        Jute::new().string(path).buffer(data).acls(acl).int(flags)
    }

    /// create2 (op 15), or createContainer (op 19) for the container flag.
    pub async fn create_acl(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        flags: i32,
    ) -> Result<(String, Stat), i32> {
        let opcode = if flags == flags::CONTAINER {
            op::CREATE_CONTAINER
        } else {
            op::CREATE2
        };
        let body = self
            .call(opcode, &Zk::create_body(path, data, acl, flags).bytes())
            .await?;
        let mut r = Reader::new(&body);
        Ok((r.string(), r.stat()))
    }

    pub async fn create(&self, path: &str, data: &[u8], flags: i32) -> Result<(String, Stat), i32> {
        self.create_acl(path, data, &open_acl(), flags).await
    }

    /// Plain create (op 1): the reply carries only the path.
    pub async fn create1(&self, path: &str, data: &[u8], flags: i32) -> Result<String, i32> {
        let body = self
            .call(
                op::CREATE,
                &Zk::create_body(path, data, &open_acl(), flags).bytes(),
            )
            .await?;
        Ok(Reader::new(&body).string())
    }

    pub async fn create_ttl(
        &self,
        path: &str,
        data: &[u8],
        flags: i32,
        ttl_ms: i64,
    ) -> Result<(String, Stat), i32> {
        let req = Zk::create_body(path, data, &open_acl(), flags)
            .long(ttl_ms)
            .bytes();
        let body = self.call(op::CREATE_TTL, &req).await?;
        let mut r = Reader::new(&body);
        Ok((r.string(), r.stat()))
    }

    pub async fn delete(&self, path: &str, version: i32) -> Result<(), i32> {
        self.call(op::DELETE, &Jute::new().string(path).int(version).bytes())
            .await
            .map(|_| ())
    }

    /// exists: `Ok(None)` for a missing node (the watch, if asked, is still set).
    pub async fn exists(&self, path: &str, watch: bool) -> Result<Option<Stat>, i32> {
        match self
            .call(op::EXISTS, &Jute::new().string(path).boolean(watch).bytes())
            .await
        {
            Ok(body) => Ok(Some(Reader::new(&body).stat())),
            Err(err::NO_NODE) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn get_data(&self, path: &str, watch: bool) -> Result<(Vec<u8>, Stat), i32> {
        let body = self
            .call(
                op::GET_DATA,
                &Jute::new().string(path).boolean(watch).bytes(),
            )
            .await?;
        let mut r = Reader::new(&body);
        Ok((r.buffer(), r.stat()))
    }

    pub async fn set_data(&self, path: &str, data: &[u8], version: i32) -> Result<Stat, i32> {
        let body = self
            .call(
                op::SET_DATA,
                &Jute::new().string(path).buffer(data).int(version).bytes(),
            )
            .await?;
        Ok(Reader::new(&body).stat())
    }

    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat), i32> {
        let body = self
            .call(op::GET_ACL, &Jute::new().string(path).bytes())
            .await?;
        let mut r = Reader::new(&body);
        Ok((r.acls(), r.stat()))
    }

    pub async fn set_acl(&self, path: &str, acl: &[Acl], version: i32) -> Result<Stat, i32> {
        let body = self
            .call(
                op::SET_ACL,
                &Jute::new().string(path).acls(acl).int(version).bytes(),
            )
            .await?;
        Ok(Reader::new(&body).stat())
    }

    /// getChildren (op 8).
    pub async fn children(&self, path: &str, watch: bool) -> Result<Vec<String>, i32> {
        let body = self
            .call(
                op::GET_CHILDREN,
                &Jute::new().string(path).boolean(watch).bytes(),
            )
            .await?;
        Ok(Reader::new(&body).strings())
    }

    /// getChildren2 (op 12).
    pub async fn children2(&self, path: &str, watch: bool) -> Result<(Vec<String>, Stat), i32> {
        let body = self
            .call(
                op::GET_CHILDREN2,
                &Jute::new().string(path).boolean(watch).bytes(),
            )
            .await?;
        let mut r = Reader::new(&body);
        Ok((r.strings(), r.stat()))
    }

    pub async fn sync(&self, path: &str) -> Result<String, i32> {
        let body = self
            .call(op::SYNC, &Jute::new().string(path).bytes())
            .await?;
        Ok(Reader::new(&body).string())
    }

    pub async fn check(&self, path: &str, version: i32) -> Result<(), i32> {
        self.call(op::CHECK, &Jute::new().string(path).int(version).bytes())
            .await
            .map(|_| ())
    }

    pub async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>, i32> {
        let body = self
            .call(op::GET_EPHEMERALS, &Jute::new().string(prefix).bytes())
            .await?;
        Ok(Reader::new(&body).strings())
    }

    pub async fn all_children_number(&self, path: &str) -> Result<i32, i32> {
        let body = self
            .call(
                op::GET_ALL_CHILDREN_NUMBER,
                &Jute::new().string(path).bytes(),
            )
            .await?;
        Ok(Reader::new(&body).int())
    }

    /// addWatch: mode 0 persistent, 1 persistent recursive.
    pub async fn add_watch(&self, path: &str, mode: i32) -> Result<(), i32> {
        self.call(op::ADD_WATCH, &Jute::new().string(path).int(mode).bytes())
            .await
            .map(|_| ())
    }

    pub async fn who_am_i(&self) -> Result<Vec<(String, String)>, i32> {
        let body = self.call(op::WHO_AM_I, &[]).await?;
        let mut r = Reader::new(&body);
        let n = r.int();
        Ok((0..n.max(0)).map(|_| (r.string(), r.string())).collect())
    }

    pub async fn auth(&self, scheme: &str, auth: &[u8]) -> Result<(), i32> {
        self.call(
            op::AUTH,
            &Jute::new().int(0).string(scheme).buffer(auth).bytes(),
        )
        .await
        .map(|_| ())
    }

    pub async fn multi(&self, ops: &[Op<'_>]) -> Result<Vec<OpResult>, i32> {
        let mut j = Jute::new();
        for o in ops {
            j = match *o {
                Op::Create { path, data, flags } => {
                    let code = if flags == flags::CONTAINER {
                        op::CREATE_CONTAINER
                    } else {
                        op::CREATE2
                    };
                    j.int(code)
                        .boolean(false)
                        .int(-1)
                        .string(path)
                        .buffer(data)
                        .acls(&open_acl())
                        .int(flags)
                }
                Op::Delete { path, version } => j
                    .int(op::DELETE)
                    .boolean(false)
                    .int(-1)
                    .string(path)
                    .int(version),
                Op::SetData {
                    path,
                    data,
                    version,
                } => j
                    .int(op::SET_DATA)
                    .boolean(false)
                    .int(-1)
                    .string(path)
                    .buffer(data)
                    .int(version),
                Op::Check { path, version } => j
                    .int(op::CHECK)
                    .boolean(false)
                    .int(-1)
                    .string(path)
                    .int(version),
            };
        }
        let body = self
            .call(op::MULTI, &j.int(-1).boolean(true).int(-1).bytes())
            .await?;
        let mut r = Reader::new(&body);
        let mut out = Vec::new();
        loop {
            let kind = r.int();
            let done = r.boolean();
            let code = r.int();
            if done {
                break;
            }
            out.push(match kind {
                op::CREATE => OpResult::Create {
                    path: r.string(),
                    stat: None,
                },
                op::CREATE2 => OpResult::Create {
                    path: r.string(),
                    stat: Some(r.stat()),
                },
                op::DELETE => OpResult::Delete,
                op::SET_DATA => OpResult::SetData(r.stat()),
                op::CHECK => OpResult::Check,
                op::ERROR => {
                    let body_code = r.int();
                    assert_eq!(body_code, code, "error code in header and body differ");
                    OpResult::Error(body_code)
                }
                other => panic!("unexpected multi result type {other}"),
            });
        }
        Ok(out)
    }

    pub async fn multi_read(&self, ops: &[ReadOp<'_>]) -> Result<Vec<ReadResult>, i32> {
        let mut j = Jute::new();
        for o in ops {
            j = match *o {
                ReadOp::GetData(p) => j
                    .int(op::GET_DATA)
                    .boolean(false)
                    .int(-1)
                    .string(p)
                    .boolean(false),
                ReadOp::GetChildren(p) => j
                    .int(op::GET_CHILDREN)
                    .boolean(false)
                    .int(-1)
                    .string(p)
                    .boolean(false),
            };
        }
        let body = self
            .call(op::MULTI_READ, &j.int(-1).boolean(true).int(-1).bytes())
            .await?;
        let mut r = Reader::new(&body);
        let mut out = Vec::new();
        loop {
            let kind = r.int();
            let done = r.boolean();
            let _code = r.int();
            if done {
                break;
            }
            out.push(match kind {
                op::GET_DATA => ReadResult::Data(r.buffer(), r.stat()),
                op::GET_CHILDREN => ReadResult::Children(r.strings()),
                op::ERROR => ReadResult::Error(r.int()),
                other => panic!("unexpected multiRead result type {other}"),
            });
        }
        Ok(out)
    }
}

async fn session_task(
    stream: TcpStream,
    mut calls: tokio::sync::mpsc::UnboundedReceiver<Call>,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    ping_every: Duration,
) {
    let (mut rd, mut wr) = stream.into_split();
    let (frames_tx, mut frames) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let reader = AbortOnDrop(tokio::spawn(async move {
        loop {
            let mut len = [0u8; 4];
            if rd.read_exact(&mut len).await.is_err() {
                return;
            }
            let mut body = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
            if rd.read_exact(&mut body).await.is_err() || frames_tx.send(body).is_err() {
                return;
            }
        }
    }));
    let mut pending = std::collections::HashMap::<i32, tokio::sync::oneshot::Sender<Reply>>::new();
    let mut tick = tokio::time::interval(ping_every);
    tick.tick().await;
    loop {
        tokio::select! {
            call = calls.recv() => match call {
                Some(Call { xid, frame, reply }) => {
                    pending.insert(xid, reply);
                    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
                    out.extend_from_slice(&frame);
                    if wr.write_all(&out).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            frame = frames.recv() => match frame {
                Some(body) => {
                    let (xid, zxid, code, rest) = parse_reply(&body);
                    match xid {
                        -1 => {
                            let mut r = Reader::new(&rest);
                            let kind = r.int();
                            let state = r.int();
                            let path = r.string();
                            assert_eq!(state, 3, "notifications carry SyncConnected");
                            let _ = events.send(Event { kind, path });
                        }
                        -2 => {}
                        _ => {
                            if let Some(tx) = pending.remove(&xid) {
                                let _ = tx.send((zxid, code, rest));
                            }
                        }
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                let ping = Jute::new().int(8).int(-2).int(op::PING).bytes();
                if wr.write_all(&ping).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(reader);
}

/// Aborts the socket reader when the session task ends or is itself aborted, so that both
/// halves of the socket are dropped and the connection really closes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
