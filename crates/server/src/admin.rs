//! The HTTP side of the operator surface: ZooKeeper's AdminServer (`admin.serverPort`,
//! default 8080) and the Prometheus endpoint (`metricsProvider.httpPort`, default 7000).
//! A minimal HTTP/1.1 server: one GET per connection, answered and closed.
//!
//! ```text
//! GET /commands          → the commands' primary names as links (text/html)
//! GET /commands/<name>   → the command's JSON (200, even for an unknown name, whose JSON
//!                          says "Unknown command: <name>", as ZooKeeper answers)
//! GET /commands/stmk?traceMask=306
//! GET /metrics           → Prometheus text format 0.0.4 (metrics listener only)
//! anything else          → 404; a method other than GET/HEAD → 405
//! ```
//! Limits: a request head of at most 8 KiB, read within 10 s. Connections are accepted at
//! once, whatever the others are doing: when 256 are still sending their heads, the one that
//! has been at it longest is closed to make room, so clients that never finish a head (a
//! slow-loris) cannot keep a prompt request out; beyond 1,024 open connections a new one is
//! closed at once. Commands run on the core task like every other event.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use crate::commands;
use crate::driver::{self, Event};
use crate::fourlw::ServerInfo;

/// Which listener this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/commands` (ZooKeeper's `admin.commandURL`).
    Admin,
    /// `/metrics`.
    Metrics,
}

const MAX_REQUEST_BYTES: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections still sending their request heads, at most; the oldest makes room.
const MAX_PENDING_HEADS: usize = 256;
/// Open connections at most; past it a new one is closed at once.
const MAX_CONNECTIONS: usize = 1024;
const COMMAND_URL: &str = "/commands";

/// Content type of Prometheus' text format 0.0.4.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Connections reading their request heads, oldest first, each with the sender that closes it.
#[derive(Default)]
struct Heads {
    next: u64,
    waiting: BTreeMap<u64, oneshot::Sender<()>>,
}

impl Heads {
    /// Register a new connection, closing the longest waiting one if there is no room.
    fn enter(heads: &Mutex<Heads>) -> (u64, oneshot::Receiver<()>) {
        let mut h = heads.lock().unwrap_or_else(|e| e.into_inner());
        if h.waiting.len() >= MAX_PENDING_HEADS {
            if let Some((_, evict)) = h.waiting.pop_first() {
                let _ = evict.send(());
            }
        }
        let (tx, rx) = oneshot::channel();
        let id = h.next;
        h.next += 1;
        h.waiting.insert(id, tx);
        (id, rx)
    }

    fn leave(heads: &Mutex<Heads>, id: u64) {
        heads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .waiting
            .remove(&id);
    }
}

/// HTTPS on the AdminServer's port: only (`admin.forceHttps`), or beside HTTP
/// (`admin.portUnification`: a first byte of 0x16 opens TLS).
#[derive(Clone)]
pub struct Https {
    pub tls: Arc<crate::tls::Tls>,
    pub only: bool,
}

/// A connection's stream: plain, or TLS over it.
type HttpStream = Box<dyn crate::peer_net::PeerIo>;

/// TLS when `https` says so for this connection; None when its handshake failed.
async fn secure(stream: TcpStream, https: &Option<Https>) -> Option<(HttpStream, bool)> {
    let Some(h) = https else {
        return Some((Box::new(stream), false));
    };
    if !h.only && !crate::tls::opens_tls(&stream, REQUEST_TIMEOUT).await {
        return Some((Box::new(stream), false));
    }
    let s = crate::tls::accept(h.tls.acceptor(), stream, REQUEST_TIMEOUT, "AdminServer").await?;
    Some((Box::new(s), true))
}

/// Serve `endpoint` on `listener` until `shutdown` flips.
pub async fn serve(
    listener: TcpListener,
    endpoint: Endpoint,
    https: Option<Https>,
    events: mpsc::Sender<Event>,
    info: Arc<ServerInfo>,
    mut shutdown: watch::Receiver<bool>,
) {
    let heads = Arc::new(Mutex::new(Heads::default()));
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((stream, addr)) => {
                    if open.load(Ordering::Acquire) >= MAX_CONNECTIONS {
                        tracing::warn!(%addr, ?endpoint, max = MAX_CONNECTIONS, "too many HTTP connections; closing a new one");
                        continue;
                    }
                    open.fetch_add(1, Ordering::AcqRel);
                    let (events, info, heads, open, https) =
                        (events.clone(), Arc::clone(&info), Arc::clone(&heads), Arc::clone(&open), https.clone());
                    tokio::spawn(async move {
                        let (id, evicted) = Heads::enter(&heads);
                        // Once its head is in (or it timed out), the connection leaves the
                        // waiting list; an evicted one was taken off it already.
                        match secure(stream, &https).await {
                            Some((stream, tls)) => {
                                handle(stream, tls, addr, endpoint, events, info, evicted, || Heads::leave(&heads, id)).await;
                            }
                            None => Heads::leave(&heads, id),
                        }
                        open.fetch_sub(1, Ordering::AcqRel);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, ?endpoint, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}

/// A response: status, content type, body.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Reply {
    fn new(status: u16, content_type: &'static str, body: String) -> Reply {
        Reply {
            status,
            content_type,
            body,
        }
    }

    fn plain(status: u16, body: &str) -> Reply {
        Reply::new(status, "text/plain;charset=utf-8", format!("{body}\n"))
    }
}

/// Answer one request. `evicted` fires when the connection must make room for newer ones
/// while it is still sending its head; `head_read` is called once the head is in.
#[allow(clippy::too_many_arguments)]
async fn handle(
    mut stream: HttpStream,
    tls: bool,
    addr: SocketAddr,
    endpoint: Endpoint,
    events: mpsc::Sender<Event>,
    info: Arc<ServerInfo>,
    evicted: oneshot::Receiver<()>,
    head_read: impl FnOnce(),
) {
    let span = tracing::debug_span!("http", %addr, ?endpoint);
    let _enter = span.enter();
    let head = tokio::select! {
        head = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)) => head,
        _ = evicted => {
            tracing::debug!("closing a connection whose request head is still incomplete, to make room");
            return;
        }
    };
    head_read();
    let (reply, head_only) = match head {
        Err(_) => return,
        Ok(Err(HeadError::Closed)) => return,
        Ok(Err(HeadError::TooLarge)) => {
            (Reply::plain(431, "Request Header Fields Too Large"), false)
        }
        Ok(Ok(head)) => match parse_request_line(&head) {
            None => (Reply::plain(400, "Bad Request"), false),
            Some((method, target)) => {
                let head_only = method == "HEAD";
                if method != "GET" && !head_only {
                    (Reply::plain(405, "Method Not Allowed"), false)
                } else {
                    (route(endpoint, &target, &events, &info).await, head_only)
                }
            }
        },
    };
    tracing::debug!(status = reply.status, "http reply");
    // Over HTTPS, ZooKeeper's Jetty sends HSTS.
    let hsts = if tls {
        "Strict-Transport-Security: max-age=86400; includeSubDomains\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{hsts}Connection: close\r\n\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(reply.body.as_bytes());
    }
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

enum HeadError {
    Closed,
    TooLarge,
}

/// Read up to the blank line that ends the request head.
async fn read_head(stream: &mut HttpStream) -> Result<Vec<u8>, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut tmp = [0u8; 1024];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n").or_else(|| find(&buf, b"\n\n")) {
            buf.truncate(end);
            return Ok(buf);
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return Err(HeadError::TooLarge);
        }
        match stream.read(&mut tmp).await {
            Ok(0) | Err(_) => return Err(HeadError::Closed),
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// (method, target) of `METHOD SP target SP HTTP/x.y`.
fn parse_request_line(head: &[u8]) -> Option<(String, String)> {
    let head = std::str::from_utf8(head).ok()?;
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    if parts.next().is_some() || !version.starts_with("HTTP/") || method.is_empty() {
        return None;
    }
    Some((method.to_owned(), target.to_owned()))
}

async fn route(
    endpoint: Endpoint,
    target: &str,
    events: &mpsc::Sender<Event>,
    info: &Arc<ServerInfo>,
) -> Reply {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let Some(path) = percent_decode(path) else {
        return Reply::plain(400, "Bad Request");
    };
    match endpoint {
        Endpoint::Metrics if path == "/metrics" => {
            let (reply, rx) = oneshot::channel();
            match ask(events, Event::Metrics { reply }, rx).await {
                Some(text) => Reply::new(200, PROMETHEUS_CONTENT_TYPE, text),
                None => Reply::plain(503, "Service Unavailable"),
            }
        }
        Endpoint::Admin if path == COMMAND_URL || path == "/commands/" => {
            let mut body = String::new();
            for name in commands::primary_names() {
                body.push_str(&format!(
                    "<a href=\"{COMMAND_URL}/{name}\">{name}</a>\n<br/>\n"
                ));
            }
            Reply::new(200, "text/html;charset=utf-8", body)
        }
        Endpoint::Admin if path.starts_with("/commands/") => {
            let name = path["/commands/".len()..].to_owned();
            let args = parse_query(query);
            let needs_disk = commands::by_name(&name).is_some_and(|c| {
                matches!(
                    c.primary(),
                    "configuration" | "dirs" | "server_stats" | "stats" | "last_snapshot"
                )
            });
            let disk = if needs_disk {
                driver::measure_disk(info).await
            } else {
                Default::default()
            };
            let (reply, rx) = oneshot::channel();
            let ev = Event::Command {
                name,
                args,
                disk,
                reply,
            };
            match ask(events, ev, rx).await {
                Some(json) => Reply::new(200, "application/json", json),
                None => Reply::plain(503, "Service Unavailable"),
            }
        }
        _ => Reply::plain(404, "Not Found"),
    }
}

/// Send `ev` to the core task and wait for its answer (None once the server is stopping).
async fn ask(
    events: &mpsc::Sender<Event>,
    ev: Event,
    rx: oneshot::Receiver<String>,
) -> Option<String> {
    events.send(ev).await.ok()?;
    rx.await.ok()
}

/// `a=1&b=x%20y` → [("a", "1"), ("b", "x y")]; the first value of a repeated key wins when
/// looked up, as in ZooKeeper.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let plus = |s: &str| s.replace('+', " ");
            Some((percent_decode(&plus(k))?, percent_decode(&plus(v))?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_parse_strictly() {
        assert_eq!(
            parse_request_line(b"GET /commands/srvr HTTP/1.1\r\nHost: x"),
            Some(("GET".into(), "/commands/srvr".into()))
        );
        assert_eq!(parse_request_line(b"GET /x"), None);
        assert_eq!(parse_request_line(b"GET /x HTTP/1.1 extra"), None);
        assert_eq!(parse_request_line(&[0xff, b' ', b'/']), None);
    }

    #[test]
    fn queries_decode() {
        assert_eq!(
            parse_query("traceMask=306&x=a%20b+c&flag"),
            vec![
                ("traceMask".into(), "306".into()),
                ("x".into(), "a b c".into()),
                ("flag".into(), String::new())
            ]
        );
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%2"), None);
    }
}
