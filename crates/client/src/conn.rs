//! A small tokio driver around [`ClientCore`]: one task per connection owns the socket and the
//! core; callers submit requests over a bounded channel and get replies through one-shot
//! channels, matched in order. Watch events arrive on a bounded channel (the driver waits for
//! room, so a caller that never reads events eventually stalls its own connection, not the
//! server). The driver pings when it has sent nothing for a third of the session timeout.
//!
//! This is the convenient client (setup, cleanup, watchers). The benchmark's hot loop drives
//! a [`ClientCore`] directly on its socket, without a task hop per request.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use zooid_proto::{Acl, CreateRequest, OpCode, Record, Request, Stat, WatcherEvent};

use crate::core::{decode_children, ClientCore, ClientError, Event, Session};

/// Requests queued toward one connection's driver.
const COMMAND_QUEUE: usize = 1024;
/// Watch events buffered for the caller.
const EVENT_QUEUE: usize = 4096;

/// An owned reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub xid: i32,
    pub zxid: i64,
    /// ZooKeeper error code; 0 is OK.
    pub err: i32,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn is_ok(&self) -> bool {
        self.err == 0
    }
}

type ReplySender = oneshot::Sender<Result<Reply, ClientError>>;

enum Command {
    Request(Request, ReplySender),
}

/// A reply that has not arrived yet (see [`Connection::submit`]).
pub struct PendingReply(oneshot::Receiver<Result<Reply, ClientError>>);

impl PendingReply {
    pub async fn wait(self) -> Result<Reply, ClientError> {
        self.0
            .await
            .unwrap_or_else(|_| Err(ClientError::Lost("driver task ended".into())))
    }
}

/// One ZooKeeper session over TCP.
pub struct Connection {
    session: Session,
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<WatcherEvent>,
    task: tokio::task::JoinHandle<Result<(), ClientError>>,
}

/// Open a TCP connection and finish the handshake on it, within `limit`.
pub async fn open(
    addr: SocketAddr,
    session_timeout: Duration,
    limit: Duration,
) -> Result<(TcpStream, ClientCore, Session), ClientError> {
    let work = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let timeout_ms = session_timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut core = ClientCore::new(timeout_ms);
        let session = handshake(&mut stream, &mut core).await?;
        Ok::<_, ClientError>((stream, core, session))
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| ClientError::Timeout("connect and handshake"))?
}

/// Send the ConnectRequest the core holds and read until its ConnectResponse.
pub(crate) async fn handshake(
    stream: &mut TcpStream,
    core: &mut ClientCore,
) -> Result<Session, ClientError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(core.outgoing()).await?;
    let n = core.outgoing().len();
    core.advance_outgoing(n);
    loop {
        if stream.read_buf(core.read_buf()).await? == 0 {
            return Err(ClientError::Closed);
        }
        match core.poll()? {
            Some(Event::Connected(s)) => return Ok(s),
            Some(_) => return Err(ClientError::Lost("no handshake reply".into())),
            None => {}
        }
    }
}

/// Write as much of the core's outgoing bytes as the socket takes now.
pub(crate) fn flush_now(stream: &TcpStream, core: &mut ClientCore) -> Result<(), ClientError> {
    while !core.outgoing().is_empty() {
        match stream.try_write(core.outgoing()) {
            Ok(n) => core.advance_outgoing(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl Connection {
    /// Connect to `addr` and create a session asking for `session_timeout`.
    pub async fn connect(
        addr: SocketAddr,
        session_timeout: Duration,
    ) -> Result<Connection, ClientError> {
        let (stream, core, session) = open(
            addr,
            session_timeout,
            session_timeout.max(Duration::from_secs(5)),
        )
        .await?;
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (event_tx, events) = mpsc::channel(EVENT_QUEUE);
        let ping_every = Duration::from_millis(session.timeout_ms.max(3) as u64 / 3);
        let task = tokio::spawn(drive(stream, core, command_rx, event_tx, ping_every));
        Ok(Connection {
            session,
            commands,
            events,
            task,
        })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Queue a request without waiting for its reply (pipelining).
    pub async fn submit(&self, req: Request) -> Result<PendingReply, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Request(req, tx))
            .await
            .map_err(|_| ClientError::Lost("driver task ended".into()))?;
        Ok(PendingReply(rx))
    }

    /// Send a request and wait for its reply.
    pub async fn call(&self, req: Request) -> Result<Reply, ClientError> {
        self.submit(req).await?.wait().await
    }

    /// The next watch event; `None` once the connection is gone.
    pub async fn next_event(&mut self) -> Option<WatcherEvent> {
        self.events.recv().await
    }

    /// Close the session (closeSession, then the socket).
    pub async fn close(self) -> Result<(), ClientError> {
        let reply = self.call(Request::CloseSession).await;
        drop(self.commands);
        let ended = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        reply?;
        match ended {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => Err(ClientError::Lost(join.to_string())),
            Err(_) => Err(ClientError::Timeout(
                "server did not close after closeSession",
            )),
        }
    }

    // ---- conveniences ----------------------------------------------------------------------

    /// create (op 1), persistent or as `flags` says, with `OPEN_ACL_UNSAFE`.
    pub async fn create(&self, path: &str, data: &[u8], flags: i32) -> Result<Reply, ClientError> {
        self.call(Request::Create(CreateRequest {
            op: OpCode::Create,
            path: path.to_owned(),
            data: Some(data.to_vec()),
            acl: Acl::open_unsafe(),
            flags,
            ttl: None,
        }))
        .await
    }

    pub async fn delete(&self, path: &str, version: i32) -> Result<Reply, ClientError> {
        self.call(Request::Delete {
            path: path.to_owned(),
            version,
        })
        .await
    }

    pub async fn set_data(&self, path: &str, data: &[u8]) -> Result<Reply, ClientError> {
        self.call(Request::SetData {
            path: path.to_owned(),
            data: Some(data.to_vec()),
            version: -1,
        })
        .await
    }

    pub async fn get_data(&self, path: &str, watch: bool) -> Result<Reply, ClientError> {
        self.call(Request::GetData {
            path: path.to_owned(),
            watch,
        })
        .await
    }

    /// exists: `Ok(Some(stat))`, or `Ok(None)` for a missing node.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>, ClientError> {
        let r = self
            .call(Request::Exists {
                path: path.to_owned(),
                watch: false,
            })
            .await?;
        if r.is_ok() {
            Ok(Some(Stat::decode(&r.body)?))
        } else {
            Ok(None)
        }
    }

    /// getChildren (op 8): `Ok(Err(code))` for a ZooKeeper error such as NONODE.
    pub async fn get_children(&self, path: &str) -> Result<Result<Vec<String>, i32>, ClientError> {
        let r = self
            .call(Request::GetChildren {
                path: path.to_owned(),
                watch: false,
            })
            .await?;
        if r.is_ok() {
            Ok(Ok(decode_children(&r.body)?))
        } else {
            Ok(Err(r.err))
        }
    }
}

/// The driver task: owns the socket and the core until the server closes, the handles are
/// dropped with nothing in flight, or an error occurs (which every waiter then receives).
async fn drive(
    stream: TcpStream,
    mut core: ClientCore,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<WatcherEvent>,
    ping_every: Duration,
) -> Result<(), ClientError> {
    let mut waiting: VecDeque<ReplySender> = VecDeque::new();
    let result = drive_loop(
        &stream,
        &mut core,
        &mut commands,
        &events,
        &mut waiting,
        ping_every,
    )
    .await;
    let why = match &result {
        Ok(()) => "connection closed".to_string(),
        Err(e) => e.to_string(),
    };
    for w in waiting.drain(..) {
        let _ = w.send(Err(ClientError::Lost(why.clone())));
    }
    commands.close();
    while let Ok(Command::Request(_, w)) = commands.try_recv() {
        let _ = w.send(Err(ClientError::Lost(why.clone())));
    }
    result
}

async fn drive_loop(
    stream: &TcpStream,
    core: &mut ClientCore,
    commands: &mut mpsc::Receiver<Command>,
    events: &mpsc::Sender<WatcherEvent>,
    waiting: &mut VecDeque<ReplySender>,
    ping_every: Duration,
) -> Result<(), ClientError> {
    let mut handles_open = true;
    let mut closing = false;
    let mut last_send = Instant::now();
    loop {
        if !core.outgoing().is_empty() {
            flush_now(stream, core)?;
            last_send = Instant::now();
        }
        if !handles_open && waiting.is_empty() && core.outgoing().is_empty() {
            return Ok(());
        }
        let interest = if core.outgoing().is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        tokio::select! {
            ready = stream.ready(interest) => {
                if !ready?.is_readable() {
                    continue;
                }
                match stream.try_read_buf(core.read_buf()) {
                    Ok(0) if closing => return Ok(()),
                    Ok(0) => return Err(ClientError::Closed),
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e.into()),
                }
                loop {
                    let watch = match core.poll()? {
                        None => break,
                        Some(Event::Reply(r)) => {
                            if r.op == OpCode::CloseSession {
                                closing = true;
                            }
                            let reply = Reply { xid: r.xid, zxid: r.zxid, err: r.err, body: r.body.to_vec() };
                            let w = waiting.pop_front().expect("the core matched a reply to a waiter");
                            let _ = w.send(Ok(reply));
                            continue;
                        }
                        Some(Event::Watch(ev)) => ev,
                        Some(_) => continue,
                    };
                    // A dropped receiver just means nobody listens for events.
                    let _ = events.send(watch).await;
                }
            }
            cmd = commands.recv(), if handles_open => match cmd {
                None => handles_open = false,
                Some(Command::Request(req, reply)) => {
                    core.send_request(&req);
                    waiting.push_back(reply);
                    // Batch whatever else is queued into the same write.
                    while waiting.len() < COMMAND_QUEUE {
                        match commands.try_recv() {
                            Ok(Command::Request(req, reply)) => {
                                core.send_request(&req);
                                waiting.push_back(reply);
                            }
                            Err(_) => break,
                        }
                    }
                }
            },
            _ = tokio::time::sleep_until(last_send + ping_every), if !closing => {
                core.send_ping();
            }
        }
    }
}
