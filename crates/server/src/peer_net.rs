//! The ensemble's sockets: the election port (one connection per pair of members) and the
//! quorum port (one connection per learner to its leader). Bytes in, decoded messages out to
//! the core task as [`PeerEvent`]s; nothing here decides anything.
//!
//! ```text
//! election port   dial ─▶ InitialMessage, [quorum SASL], then [len][Notification]... (both
//!                 directions); only the higher sid keeps a connection: a lower sid dials only
//!                 to make the higher one dial back (QuorumCnxManager's rule)
//! quorum port     learner dials its leader; [quorum SASL], then QuorumPackets both ways, a
//!                 SNAP stream after SNAP
//! both            TLS under it all with sslQuorum (TLS or plaintext with portUnification)
//! quorum SASL     QuorumAuthPacket {magic, status, token}: the dialer sends an empty token,
//!                 the acceptor a DIGEST-MD5 challenge, the dialer its response, the acceptor
//!                 SUCCESS with rspauth (or ERROR); an acceptor tells an authenticating dialer
//!                 by the magic in the first 8 bytes
//! ```
//! Every member listens on its quorum port from the start; a connection that arrives before
//! this member leads waits for the core task to adopt it (as leader) or close it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use zooid_zab::election::{self as wire, PROTOCOL_V2};
use zooid_zab::{
    Decoded, InitialMessage, Notification, QuorumDecoder, QuorumLimits, QuorumMessage, Sender,
    ServerId,
};

use crate::tls::QuorumTls;

/// How members prove who they are to each other: TLS (`sslQuorum`) and SASL
/// (`quorum.auth.enableSasl`), each when configured; and how fast they give up on a path.
#[derive(Clone, Default)]
pub struct Security {
    pub tls: Option<Arc<QuorumTls>>,
    pub sasl: Option<Arc<zooid_config::QuorumSasl>>,
    /// `multiAddress.enabled`: a connection whose path goes silent fails within seconds
    /// (TCP keepalive and user timeout), so the member's next address is tried.
    pub fail_fast: bool,
}

/// With `fail_fast`, a silent path: keepalive probes after 2 s idle, every second, three
/// times; data unacknowledged for 5 s.
fn fail_fast(stream: &TcpStream, on: bool) {
    if !on {
        return;
    }
    let sock = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(2))
        .with_interval(Duration::from_secs(1))
        .with_retries(3);
    let _ = sock.set_tcp_keepalive(&keepalive);
    let _ = sock.set_tcp_user_timeout(Some(Duration::from_secs(5)));
}

/// `QuorumAuthPacket`'s magic, which opens every quorum SASL packet (and tells a server
/// that the connecting member authenticates).
const QUORUM_AUTH_MAGIC: i64 = 0x5f24_3501_3501_edcc;
const AUTH_IN_PROGRESS: i32 = 0;
const AUTH_SUCCESS: i32 = 1;
const AUTH_ERROR: i32 = -1;
/// How long one side of a quorum SASL exchange waits for the other.
const AUTH_WAIT: Duration = Duration::from_secs(10);

async fn write_auth(s: &mut PeerStream, status: i32, token: &[u8]) -> std::io::Result<()> {
    let mut b = Vec::with_capacity(16 + token.len());
    b.extend_from_slice(&QUORUM_AUTH_MAGIC.to_be_bytes());
    b.extend_from_slice(&status.to_be_bytes());
    b.extend_from_slice(&(token.len() as i32).to_be_bytes());
    b.extend_from_slice(token);
    s.write_all(&b).await?;
    s.flush().await
}

/// Read until `buf` holds `n` bytes.
async fn fill(s: &mut PeerStream, buf: &mut Vec<u8>, n: usize) -> Result<(), String> {
    let mut tmp = [0u8; 4096];
    while buf.len() < n {
        match tokio::time::timeout(AUTH_WAIT, s.read(&mut tmp)).await {
            Ok(Ok(0)) => return Err(String::from("closed by the peer")),
            Ok(Ok(k)) => buf.extend_from_slice(&tmp[..k]),
            Ok(Err(e)) => return Err(format!("read failed: {e}")),
            Err(_) => return Err(format!("nothing within {AUTH_WAIT:?}")),
        }
    }
    Ok(())
}

/// One `QuorumAuthPacket` from the front of `buf` (read as needed); what follows stays.
async fn read_auth(s: &mut PeerStream, buf: &mut Vec<u8>) -> Result<(i32, Vec<u8>), String> {
    fill(s, buf, 16).await?;
    if buf[..8] != QUORUM_AUTH_MAGIC.to_be_bytes() {
        return Err(String::from("not a quorum auth packet"));
    }
    let status = i32::from_be_bytes(buf[8..12].try_into().expect("4 bytes"));
    let len = i32::from_be_bytes(buf[12..16].try_into().expect("4 bytes")).max(0) as usize;
    if len > 64 * 1024 {
        return Err(format!("a {len}-byte auth token"));
    }
    fill(s, buf, 16 + len).await?;
    let token = buf[16..16 + len].to_vec();
    buf.drain(..16 + len);
    Ok((status, token))
}

/// The dialing member's side of quorum SASL (with `quorum.auth.learnerRequireSasl`):
/// DIGEST-MD5 with the QuorumLearner credentials. Bytes the peer sent after the exchange
/// are returned, for the connection's reader.
async fn authenticate_as_learner(
    s: &mut PeerStream,
    sec: &Security,
    peer: SocketAddr,
) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let Some(sasl) = sec.sasl.as_ref().filter(|q| q.learner_require) else {
        return Ok(buf);
    };
    let Some((user, password)) = &sasl.learner else {
        return Err(String::from("no QuorumLearner credentials"));
    };
    let io = |e: std::io::Error| format!("write failed: {e}");
    write_auth(s, AUTH_IN_PROGRESS, b"").await.map_err(io)?;
    let (status, challenge) = read_auth(s, &mut buf).await?;
    if status != AUTH_IN_PROGRESS {
        return Err(format!("Authentication failed against server addr: {peer}"));
    }
    let cnonce = zooid_node::sasl::nonce(rand::random());
    let (token, rspauth) = zooid_node::sasl::respond_to_challenge(
        zooid_node::sasl::QUORUM,
        user,
        password,
        &challenge,
        &cnonce,
    )?;
    write_auth(s, AUTH_IN_PROGRESS, &token).await.map_err(io)?;
    let (status, last) = read_auth(s, &mut buf).await?;
    if status != AUTH_SUCCESS {
        return Err(format!(
            "Authentication failed against server addr: {peer}, qpStatus: {status}"
        ));
    }
    if last != rspauth {
        return Err(format!(
            "the server at {peer} answered with a wrong rspauth"
        ));
    }
    tracing::debug!(%peer, "quorum SASL: authenticated to the server");
    Ok(buf)
}

/// The accepting member's side of quorum SASL: a connection that opens with the auth magic
/// runs the exchange against the QuorumServer users; one that does not is refused when
/// `quorum.auth.serverRequireSasl`, else served as it is. `buf` holds what was read.
async fn authenticate_as_server(
    s: &mut PeerStream,
    buf: &mut Vec<u8>,
    sec: &Security,
    peer: Option<SocketAddr>,
) -> Result<(), String> {
    let Some(sasl) = sec.sasl.as_ref() else {
        return Ok(());
    };
    if fill(s, buf, 8).await.is_err() || buf[..8] != QUORUM_AUTH_MAGIC.to_be_bytes() {
        if sasl.server_require {
            return Err(String::from(
                "Learner not trying to authenticate and authentication is required",
            ));
        }
        return Ok(());
    }
    let io = |e: std::io::Error| format!("write failed: {e}");
    let _ = read_auth(s, buf).await?;
    let nonce = zooid_node::sasl::nonce(rand::random());
    let challenge = zooid_node::sasl::challenge(zooid_node::sasl::QUORUM, &nonce);
    write_auth(s, AUTH_IN_PROGRESS, &challenge)
        .await
        .map_err(io)?;
    let (_, response) = read_auth(s, buf).await?;
    let users = zooid_node::sasl::DigestUsers {
        users: sasl.server_users.clone(),
        ..Default::default()
    };
    let why = match users.respond(zooid_node::sasl::QUORUM, &nonce, &response) {
        zooid_node::sasl::Step::Success { user, token } => {
            write_auth(s, AUTH_SUCCESS, &token).await.map_err(io)?;
            tracing::debug!(?peer, %user, "quorum SASL: the learner authenticated");
            return Ok(());
        }
        zooid_node::sasl::Step::Failure(why) => why,
        zooid_node::sasl::Step::Challenge(_) => String::from("an exchange of more rounds"),
    };
    let _ = write_auth(s, AUTH_ERROR, b"").await;
    tracing::warn!(?peer, reason = %why, "Failed to authenticate using SASL");
    if sasl.server_require {
        return Err(why);
    }
    tracing::warn!(
        ?peer,
        "Maintaining learner connection despite SASL authentication failure"
    );
    Ok(())
}

use zooid_member::Event;
pub use zooid_member::LinkId;

/// What the sockets report to the core task: the member's own events (votes, link
/// messages, SNAP streams, links gone), and a link that opened with its writer.
pub enum PeerEvent {
    Member(Event),
    /// A quorum connection is open (accepted, or dialed by [`Links::dial_leader`]).
    LinkUp {
        link: LinkId,
        out: mpsc::Sender<LinkOut>,
    },
}

/// What the core task writes on a quorum connection.
pub enum LinkOut {
    Msg(QuorumMessage),
    /// Raw bytes (a SNAP stream and its signature).
    Raw(Vec<u8>),
    /// Raw bytes still being produced elsewhere (a SNAP stream encoded off the core task):
    /// nothing queued after them is written before they are. Dropped unsent, the link closes.
    Later(tokio::sync::oneshot::Receiver<Vec<u8>>),
    Close,
}

/// A connection between members: a plain socket, or TLS over one (`sslQuorum`).
pub trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> PeerIo for T {}
pub type PeerStream = Box<dyn PeerIo>;

/// The accepting side of a member's connection: TLS when the quorum uses it (a first byte
/// that opens a handshake, 0x16, when `portUnification` lets plaintext in too). A failed
/// handshake is logged with the peer's address and closes this connection only.
async fn accept_stream(stream: TcpStream, sec: &Security) -> Option<PeerStream> {
    let _ = stream.set_nodelay(true);
    fail_fast(&stream, sec.fail_fast);
    let Some(tls) = &sec.tls else {
        return Some(Box::new(stream));
    };
    if tls.unified && !crate::tls::opens_tls(&stream, tls.handshake_timeout()).await {
        return Some(Box::new(stream));
    }
    let acceptor = tls.current().0;
    let s = crate::tls::accept(acceptor, stream, tls.handshake_timeout(), "quorum").await?;
    Some(Box::new(s))
}

/// A connection to the first of `addrs` that answers (a member with several addresses,
/// `multiAddress.enabled`), each given `timeout`; the last error if none does.
async fn dial_first(
    addrs: &[SocketAddr],
    timeout: Duration,
    sec: &Security,
) -> Result<(SocketAddr, PeerStream), String> {
    let mut last = String::from("no address to dial");
    for &addr in addrs {
        match dial_stream(addr, timeout, sec).await {
            Ok(s) => return Ok((addr, s)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The dialing side: a socket to `addr`, with TLS when `sslQuorum` is on.
async fn dial_stream(
    addr: SocketAddr,
    timeout: Duration,
    sec: &Security,
) -> Result<PeerStream, String> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(format!("cannot connect to {addr}: {e}")),
        Err(_) => return Err(format!("no answer from {addr} within {timeout:?}")),
    };
    let _ = stream.set_nodelay(true);
    fail_fast(&stream, sec.fail_fast);
    let Some(tls) = sec.tls.as_ref().filter(|t| t.dial_tls) else {
        return Ok(Box::new(stream));
    };
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    match tokio::time::timeout(
        tls.handshake_timeout(),
        tls.current().1.connect(name, stream),
    )
    .await
    {
        Ok(Ok(s)) => Ok(Box::new(s)),
        Ok(Err(e)) => {
            tracing::warn!(%addr, error = %e, "quorum TLS handshake failed");
            Err(format!("TLS handshake with {addr} failed: {e}"))
        }
        Err(_) => Err(format!(
            "no TLS handshake with {addr} within {:?}",
            tls.handshake_timeout()
        )),
    }
}

/// Sockets to the core task: readers wait while it is full, so a core task that falls
/// behind slows its peers down through TCP instead of queueing without end.
pub const PEER_EVENTS_QUEUED: usize = 1024;

/// Notifications waiting for the election port's sender, and for each election connection.
/// Full: the notification is dropped; FLE sends again when its timer runs out.
const VOTES_QUEUED: usize = 256;

/// Messages waiting to be written on one quorum link. Full: the learner reads too slowly to
/// keep up, and its link is closed (it reconnects and syncs again), as a learner that falls
/// syncLimit behind is dropped.
pub const LINK_QUEUED: usize = 16 * 1024;

/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 64 * 1024;

// ---- election port ----------------------------------------------------------------------------

/// Start the election port (TLS with `tls`): listen on `listen`, reach `peers` (sid → election address) when
/// there is something to say. Send `(to, notification)` on the returned channel.
#[allow(clippy::too_many_arguments)]
pub fn spawn_election(
    my_id: ServerId,
    listeners: Vec<TcpListener>,
    my_addrs: &[SocketAddr],
    peers: crate::ensemble::ElectionPeers,
    cnx_timeout: Duration,
    sec: Security,
    events: mpsc::Sender<PeerEvent>,
    mut shutdown: watch::Receiver<bool>,
) -> mpsc::Sender<(ServerId, Notification)> {
    let (tx, mut rx) = mpsc::channel::<(ServerId, Notification)>(VOTES_QUEUED);
    let (conn_tx, mut conn_rx) = mpsc::unbounded_channel::<ElectionConn>();
    let hello = {
        let mut b = Vec::new();
        InitialMessage::V2 {
            sid: my_id,
            // Every address, as ZooKeeper's multi-address members announce them.
            addresses: my_addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("|"),
        }
        .encode(&mut b);
        debug_assert_eq!(i64::from_be_bytes(b[..8].try_into().unwrap()), PROTOCOL_V2);
        b
    };
    // Accept: read the initial message; keep the connection only if the peer has the higher sid.
    for listener in listeners {
        let conn_tx = conn_tx.clone();
        let mut shutdown = shutdown.clone();
        let sec = sec.clone();
        let peers = peers.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = listener.accept() => {
                        let Ok((stream, _)) = r else { continue };
                        let conn_tx = conn_tx.clone();
                        let sec = sec.clone();
                        let peers = peers.clone();
                        tokio::spawn(async move {
                            let peer = stream.peer_addr().ok();
                            let Some(stream) = accept_stream(stream, &sec).await else { return };
                            if let Some((sid, said, mut stream, mut rest)) = read_initial(stream, cnx_timeout).await {
                                if let Err(e) = authenticate_as_server(&mut stream, &mut rest, &sec, peer).await {
                                    tracing::warn!(?peer, %sid, error = %e, "election connection: SASL authentication failed; closing");
                                    return;
                                }
                                // A member the config did not list (one a reconfig is about to
                                // add) is called back at the address it gives, as ZooKeeper does,
                                // once it has authenticated.
                                if let (false, Ok(mut p)) = (said.is_empty(), peers.write()) {
                                    p.entry(sid).or_insert(said);
                                }
                                let _ = conn_tx.send(ElectionConn::Accepted { sid, stream, rest });
                            }
                        });
                    }
                    _ = shutdown.changed() => return,
                }
            }
        });
    }
    tokio::spawn(async move {
        let mut slots: HashMap<ServerId, Slot> = HashMap::new();
        // Call `sid` unless a call is already under way.
        let dial = |sid: ServerId, slot: &mut Slot| {
            if slot.dialing {
                return;
            }
            let addrs = peers.read().ok().and_then(|p| p.get(&sid).cloned());
            if let Some(addrs) = addrs {
                slot.dialing = true;
                tokio::spawn(dial_election(
                    sid,
                    addrs,
                    hello.clone(),
                    my_id,
                    cnx_timeout,
                    sec.clone(),
                    conn_tx.clone(),
                ));
            }
        };
        loop {
            tokio::select! {
                m = rx.recv() => {
                    let Some((to, n)) = m else { return };
                    let mut frame = Vec::new();
                    n.encode_frame(&mut frame);
                    let slot = slots.entry(to).or_default();
                    slot.last = Some(frame.clone());
                    match &slot.out {
                        // Full: the peer does not read; FLE sends again on its timer.
                        Some(out) if !out.is_closed() => { let _ = out.try_send(frame); }
                        _ => {
                            slot.out = None;
                            dial(to, slot);
                        }
                    }
                }
                c = conn_rx.recv() => {
                    let Some(c) = c else { return };
                    match c {
                        ElectionConn::Accepted { sid, stream, rest } => {
                            if sid < my_id {
                                // A lower sid only asks us to call: we own the connection.
                                drop(stream);
                                let slot = slots.entry(sid).or_default();
                                if slot.out.as_ref().is_none_or(|o| o.is_closed()) {
                                    dial(sid, slot);
                                }
                                continue;
                            }
                            let slot = slots.entry(sid).or_default();
                            slot.out = Some(run_election_conn(sid, stream, rest, slot.last.clone(), events.clone()));
                        }
                        ElectionConn::Dialed { sid, stream } => {
                            let slot = slots.entry(sid).or_default();
                            slot.dialing = false;
                            if let Some((stream, rest)) = stream {
                                slot.out = Some(run_election_conn(sid, stream, rest, slot.last.clone(), events.clone()));
                            }
                        }
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    });
    tx
}

#[derive(Default)]
struct Slot {
    out: Option<mpsc::Sender<Vec<u8>>>,
    dialing: bool,
    /// The last notification for this peer, re-sent on a new connection (Java's
    /// `lastMessageSent`), as the one-slot send queue of `QuorumCnxManager`.
    last: Option<Vec<u8>>,
}

enum ElectionConn {
    Accepted {
        sid: ServerId,
        stream: PeerStream,
        rest: Vec<u8>,
    },
    /// `stream` is None when the dial failed or the peer has the higher sid (it calls back);
    /// with it, what the peer already sent.
    Dialed {
        sid: ServerId,
        stream: Option<(PeerStream, Vec<u8>)>,
    },
}

/// The peer's initial message: its id, the addresses it says it listens on, and the stream
/// with what it sent after the message.
async fn read_initial(
    mut stream: PeerStream,
    timeout: Duration,
) -> Option<(ServerId, Vec<SocketAddr>, PeerStream, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 1024];
    let read = async {
        loop {
            match InitialMessage::decode(&buf) {
                Ok(Some((m, used))) => {
                    let said = m
                        .addresses()
                        .iter()
                        .filter_map(|a| a.parse().ok())
                        .collect();
                    return Some((m.sid(), said, used));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::info!(error = %e, "election port: bad initial message; closing");
                    return None;
                }
            }
            match stream.read(&mut tmp).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
    };
    let (sid, said, used) = tokio::time::timeout(timeout, read).await.ok()??;
    Some((sid, said, stream, buf[used..].to_vec()))
}

async fn dial_election(
    sid: ServerId,
    addrs: Vec<SocketAddr>,
    hello: Vec<u8>,
    my_id: ServerId,
    timeout: Duration,
    sec: Security,
    conn_tx: mpsc::UnboundedSender<ElectionConn>,
) {
    let stream = async {
        let (addr, mut s) = dial_first(&addrs, timeout, &sec).await.ok()?;
        s.write_all(&hello).await.ok()?;
        // As ZooKeeper's learner side: authenticate, even on a connection about to be
        // dropped for the peer's to own.
        let rest = match authenticate_as_learner(&mut s, &sec, addr).await {
            Ok(rest) => rest,
            Err(e) => {
                tracing::warn!(%addr, %sid, error = %e, "election connection: SASL authentication failed");
                return None;
            }
        };
        // The higher sid owns the connection: if that is the peer, it dials us back.
        (sid < my_id).then_some((s, rest))
    }
    .await;
    let _ = conn_tx.send(ElectionConn::Dialed { sid, stream });
}

/// Run one election connection: frames in as events, frames out from the returned channel.
fn run_election_conn(
    sid: ServerId,
    stream: PeerStream,
    mut buf: Vec<u8>,
    last: Option<Vec<u8>>,
    events: mpsc::Sender<PeerEvent>,
) -> mpsc::Sender<Vec<u8>> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(VOTES_QUEUED);
    let (mut rd, mut wr) = tokio::io::split(stream);
    if let Some(last) = last {
        let _ = tx.try_send(last);
    }
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut tmp = vec![0u8; 8192];
        'conn: loop {
            loop {
                match wire::next_frame(&buf) {
                    Ok(Some((from, to))) => {
                        match Notification::decode(&buf[from..to]) {
                            Ok(n) => {
                                if events
                                    .send(PeerEvent::Member(Event::Vote { from: sid, n }))
                                    .await
                                    .is_err()
                                {
                                    break 'conn;
                                }
                            }
                            Err(e) => {
                                tracing::info!(%sid, error = %e, "election port: bad notification; closing");
                                break 'conn;
                            }
                        }
                        buf.drain(..to);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::info!(%sid, error = %e, "election port: bad frame; closing");
                        break 'conn;
                    }
                }
            }
            match rd.read(&mut tmp).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        writer.abort();
    });
    tx
}

// ---- quorum port ------------------------------------------------------------------------------

/// Numbers quorum connections across the listener and the dialer.
#[derive(Clone)]
pub struct Links {
    sec: Security,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
    limits: QuorumLimits,
    events: mpsc::Sender<PeerEvent>,
}

impl Links {
    /// Where member events go (for what the driver reads off the core task).
    pub fn events(&self) -> mpsc::Sender<PeerEvent> {
        self.events.clone()
    }

    pub fn new(limits: QuorumLimits, events: mpsc::Sender<PeerEvent>, sec: Security) -> Links {
        Links {
            sec,
            next: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1)),
            limits,
            events,
        }
    }

    fn next_id(&self) -> LinkId {
        self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Accept learners on the quorum port until shutdown.
    pub fn spawn_listener(&self, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        let links = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = listener.accept() => {
                        let Ok((stream, _)) = r else { continue };
                        let links = links.clone();
                        tokio::spawn(async move {
                            let peer = stream.peer_addr().ok();
                            let Some(mut stream) = accept_stream(stream, &links.sec).await else { return };
                            let mut buf = Vec::new();
                            match authenticate_as_server(&mut stream, &mut buf, &links.sec, peer).await {
                                Ok(()) => links.run(links.next_id(), stream, Sender::Learner, buf),
                                Err(e) => tracing::warn!(?peer, error = %e, "Server failed to authenticate quorum learner; closing connection"),
                            }
                        });
                    }
                    _ = shutdown.changed() => return,
                }
            }
        });
    }

    /// Dial the leader's quorum port as `link` (a number the member chose, above every
    /// accepted one); the result arrives as LinkUp or LinkDown.
    pub fn dial_leader(&self, link: LinkId, addrs: Vec<SocketAddr>, timeout: Duration) {
        let links = self.clone();
        tokio::spawn(async move {
            let dialed = match dial_first(&addrs, timeout, &links.sec).await {
                Ok((addr, mut stream)) => authenticate_as_learner(&mut stream, &links.sec, addr)
                    .await
                    .map(|rest| (stream, rest)),
                Err(e) => Err(e),
            };
            match dialed {
                Ok((stream, rest)) => links.run(link, stream, Sender::Leader, rest),
                Err(e) => {
                    let why = format!("the leader's quorum port: {e}");
                    let _ = links
                        .events
                        .send(PeerEvent::Member(Event::LinkDown { link, why }))
                        .await;
                }
            }
        });
    }

    fn run(&self, link: LinkId, stream: PeerStream, from: Sender, read: Vec<u8>) {
        let (out_tx, mut out_rx) = mpsc::channel::<LinkOut>(LINK_QUEUED);
        let events = self.events.clone();
        let (mut rd, mut wr) = tokio::io::split(stream);
        let writer = tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some(first) = out_rx.recv().await {
                let mut close = false;
                let mut next = Some(first);
                // Coalesce what is queued into one write.
                while let Some(m) = next.take() {
                    match m {
                        LinkOut::Msg(msg) => msg.to_packet().encode(&mut buf),
                        LinkOut::Raw(bytes) => buf.extend_from_slice(&bytes),
                        LinkOut::Later(bytes) => match bytes.await {
                            Ok(bytes) => buf.extend_from_slice(&bytes),
                            Err(_) => {
                                close = true;
                                break;
                            }
                        },
                        LinkOut::Close => {
                            close = true;
                            break;
                        }
                    }
                    if buf.len() < 1 << 20 {
                        next = out_rx.try_recv().ok();
                    }
                }
                if wr.write_all(&buf).await.is_err() || close {
                    break;
                }
                buf.clear();
            }
            let _ = wr.shutdown().await;
        });
        let mut decoder = QuorumDecoder::new(from, self.limits);
        tokio::spawn(async move {
            // Up before anything it reads.
            if events
                .send(PeerEvent::LinkUp { link, out: out_tx })
                .await
                .is_err()
            {
                writer.abort();
                return;
            }
            // What the peer sent with the last auth packet comes first.
            let mut buf: Vec<u8> = read;
            buf.reserve(READ_CHUNK);
            let mut tmp = vec![0u8; READ_CHUNK];
            let mut snapshot: Vec<u8> = Vec::new();
            let why = 'conn: loop {
                let mut at = 0;
                loop {
                    match decoder.decode(&buf[at..]) {
                        Ok(Decoded::NeedMore { .. }) => break,
                        Ok(Decoded::Packet { packet, consumed }) => {
                            at += consumed;
                            match QuorumMessage::decode(&packet, from) {
                                Ok(msg) => {
                                    if events
                                        .send(PeerEvent::Member(Event::LinkMessage { link, msg }))
                                        .await
                                        .is_err()
                                    {
                                        break 'conn String::from("server stopping");
                                    }
                                }
                                Err(e) => break 'conn format!("bad quorum packet: {e}"),
                            }
                        }
                        Ok(Decoded::SnapshotChunk { consumed }) => {
                            snapshot.extend_from_slice(&buf[at..at + consumed]);
                            at += consumed;
                        }
                        Ok(Decoded::SnapshotEnd { consumed, .. }) => {
                            at += consumed;
                            let body = std::mem::take(&mut snapshot);
                            if events
                                .send(PeerEvent::Member(Event::LinkSnapshot { link, body }))
                                .await
                                .is_err()
                            {
                                break 'conn String::from("server stopping");
                            }
                        }
                        Err(e) => break 'conn format!("bad quorum stream: {e}"),
                    }
                }
                buf.drain(..at);
                match rd.read(&mut tmp).await {
                    Ok(0) => break String::from("closed by the peer"),
                    Err(e) => break format!("read failed: {e}"),
                    Ok(n) => buf.extend_from_slice(&tmp[..n]),
                }
            };
            writer.abort();
            let _ = events
                .send(PeerEvent::Member(Event::LinkDown { link, why }))
                .await;
        });
    }
}
