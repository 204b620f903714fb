//! The sans-IO client core: one ZooKeeper session's byte streams, without sockets or clocks.
//!
//! The caller moves bytes: it sends [`ClientCore::outgoing`] and reports what went out with
//! [`ClientCore::advance_outgoing`]; it reads into [`ClientCore::read_buf`] and then drains
//! [`ClientCore::poll`] for events. Requests are encoded straight into the outgoing buffer (no
//! allocation per request once the buffers have grown), so many pipelined requests leave in
//! one write.
//!
//! ```text
//! client -> server   int len | ConnectRequest                        (first frame)
//!                    int len | RequestHeader{xid, op} | body          (then)
//! server -> client   int len | ConnectResponse                       (first frame)
//!                    int len | ReplyHeader{xid, zxid, err} | body?    (then; body only if err == 0)
//! ```
//!
//! Invariants: replies to normal requests arrive in request order, so each one must carry the
//! xid at the front of the pending queue (a mismatch is [`ClientError::XidMismatch`], as the
//! Java client's "Xid out of order"). Pings (xid -2) and notifications (xid -1) sit outside
//! that queue.

use std::collections::VecDeque;

use zooid_proto::frame::{next_frame, FrameError};
use zooid_proto::{
    perms, xid, ConnectRequest, ConnectResponse, DecodeError, OpCode, Reader, Record, ReplyHeader,
    Request, RequestHeader, WatcherEvent, Writer,
};

/// Largest frame we accept from a server. Far above ZooKeeper's 1 MiB `jute.maxbuffer` on
/// purpose: a benchmark's wide getChildren must not fail the way the Java client does.
pub const DEFAULT_MAX_FRAME_LEN: u32 = 64 << 20;

/// How much free room a read is given at least.
const READ_CHUNK: usize = 64 * 1024;

/// Why a session stopped working.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame from the server: {0}")]
    Frame(#[from] FrameError),
    #[error("undecodable reply from the server: {0}")]
    Decode(#[from] DecodeError),
    #[error("reply xid {got} is out of order (expected {expected})")]
    XidMismatch { expected: i32, got: i32 },
    #[error("reply xid {0} matches no request in flight")]
    UnexpectedReply(i32),
    #[error("the server refused the session (expired or unknown)")]
    SessionExpired,
    #[error("the server closed the connection")]
    Closed,
    #[error("timed out: {0}")]
    Timeout(&'static str),
    #[error("the connection was lost: {0}")]
    Lost(String),
}

/// The session the server granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub session_id: i64,
    pub timeout_ms: i32,
    pub passwd: Vec<u8>,
    pub read_only: bool,
}

/// A reply to a request, borrowing its body from the core's receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyRef<'a> {
    pub xid: i32,
    pub op: OpCode,
    pub zxid: i64,
    /// A ZooKeeper error code; 0 is OK. An error is a reply, not a failure.
    pub err: i32,
    pub body: &'a [u8],
}

/// Something the server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// The handshake finished.
    Connected(Session),
    /// The reply to the oldest request in flight.
    Reply(ReplyRef<'a>),
    /// A ping came back.
    Pong { zxid: i64 },
    /// A watch fired.
    Watch(WatcherEvent),
    /// A reply to an auth (-4) or setWatches (-8) packet.
    Special { xid: i32, err: i32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshaking,
    Connected,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    xid: i32,
    op: OpCode,
}

/// One session's protocol state. See the module documentation.
#[derive(Debug)]
pub struct ClientCore {
    state: State,
    out: Vec<u8>,
    out_sent: usize,
    inbuf: Vec<u8>,
    in_used: usize,
    next_xid: i32,
    pending: VecDeque<Pending>,
    max_frame_len: u32,
    last_zxid: i64,
}

impl ClientCore {
    /// A core for a new session; the ConnectRequest is already queued.
    pub fn new(session_timeout_ms: i32) -> ClientCore {
        ClientCore::with_request(&ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: session_timeout_ms,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        })
    }

    /// A core whose first frame is `req` (to re-attach a session, or to test the handshake).
    pub fn with_request(req: &ConnectRequest) -> ClientCore {
        let mut w = Writer::with_buf(Vec::with_capacity(4096));
        let at = w.begin_frame();
        req.write(&mut w);
        w.finish_frame(at);
        ClientCore {
            state: State::Handshaking,
            out: w.into_inner(),
            out_sent: 0,
            inbuf: Vec::with_capacity(READ_CHUNK),
            in_used: 0,
            next_xid: 1,
            pending: VecDeque::new(),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            last_zxid: 0,
        }
    }

    pub fn set_max_frame_len(&mut self, len: u32) {
        self.max_frame_len = len;
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Requests sent (or queued) whose reply has not arrived.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// The largest zxid seen in any reply.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    // ---- outgoing ------------------------------------------------------------------------

    /// Bytes waiting to be written to the socket.
    pub fn outgoing(&self) -> &[u8] {
        &self.out[self.out_sent..]
    }

    /// `n` bytes of [`ClientCore::outgoing`] were written.
    pub fn advance_outgoing(&mut self, n: usize) {
        assert!(
            self.out_sent + n <= self.out.len(),
            "advanced past the outgoing bytes"
        );
        self.out_sent += n;
        if self.out_sent == self.out.len() {
            self.out.clear();
            self.out_sent = 0;
        }
    }

    /// Append one frame `RequestHeader{xid, op} + body` to the outgoing buffer.
    fn frame(&mut self, xid: i32, op: OpCode, body: impl FnOnce(&mut Writer)) {
        let mut w = Writer::with_buf(std::mem::take(&mut self.out));
        let at = w.begin_frame();
        RequestHeader { xid, op: op.code() }.write(&mut w);
        body(&mut w);
        w.finish_frame(at);
        self.out = w.into_inner();
    }

    /// Queue a request whose reply will be matched in order; returns its xid.
    fn request(&mut self, op: OpCode, body: impl FnOnce(&mut Writer)) -> i32 {
        let xid = self.next_xid;
        // Positive xids only: negative ones are the protocol's special xids.
        self.next_xid = if xid == i32::MAX { 1 } else { xid + 1 };
        self.frame(xid, op, body);
        self.pending.push_back(Pending { xid, op });
        xid
    }

    /// Queue any request.
    pub fn send_request(&mut self, req: &Request) -> i32 {
        self.request(req.op(), |w| req.encode_body(w))
    }

    /// create (op 1) with `OPEN_ACL_UNSAFE`.
    pub fn send_create(&mut self, path: &str, data: &[u8], flags: i32) -> i32 {
        self.request(OpCode::Create, |w| {
            w.write_string(path);
            w.write_buffer(data);
            w.write_i32(1);
            w.write_i32(perms::ALL);
            w.write_string("world");
            w.write_string("anyone");
            w.write_i32(flags);
        })
    }

    pub fn send_delete(&mut self, path: &str, version: i32) -> i32 {
        self.request(OpCode::Delete, |w| {
            w.write_string(path);
            w.write_i32(version);
        })
    }

    pub fn send_set_data(&mut self, path: &str, data: &[u8], version: i32) -> i32 {
        self.request(OpCode::SetData, |w| {
            w.write_string(path);
            w.write_buffer(data);
            w.write_i32(version);
        })
    }

    fn path_watch(&mut self, op: OpCode, path: &str, watch: bool) -> i32 {
        self.request(op, |w| {
            w.write_string(path);
            w.write_bool(watch);
        })
    }

    pub fn send_get_data(&mut self, path: &str, watch: bool) -> i32 {
        self.path_watch(OpCode::GetData, path, watch)
    }

    pub fn send_exists(&mut self, path: &str, watch: bool) -> i32 {
        self.path_watch(OpCode::Exists, path, watch)
    }

    pub fn send_get_children(&mut self, path: &str, watch: bool) -> i32 {
        self.path_watch(OpCode::GetChildren, path, watch)
    }

    /// A packet outside the reply queue: auth (xid -4) or setWatches (xid -8). Its reply is
    /// [`Event::Special`].
    pub fn send_special(&mut self, special_xid: i32, req: &Request) {
        assert!(
            special_xid == xid::AUTH || special_xid == xid::SET_WATCHES,
            "only auth and setWatches travel outside the reply queue"
        );
        self.frame(special_xid, req.op(), |w| req.encode_body(w));
    }

    /// A ping (xid -2); its reply is [`Event::Pong`].
    pub fn send_ping(&mut self) {
        self.frame(xid::PING, OpCode::Ping, |_| {});
    }

    /// closeSession; the server replies and then closes the socket.
    pub fn send_close(&mut self) -> i32 {
        self.request(OpCode::CloseSession, |_| {})
    }

    // ---- incoming ------------------------------------------------------------------------

    /// The buffer to read into: append received bytes at its end (its spare capacity is at
    /// least 64 KiB). Consumed frames are dropped first.
    pub fn read_buf(&mut self) -> &mut Vec<u8> {
        if self.in_used > 0 {
            self.inbuf.drain(..self.in_used);
            self.in_used = 0;
        }
        self.inbuf.reserve(READ_CHUNK);
        &mut self.inbuf
    }

    /// Copy received bytes in (for callers that read elsewhere).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.read_buf().extend_from_slice(bytes);
    }

    /// The next complete event in the received bytes, if any.
    pub fn poll(&mut self) -> Result<Option<Event<'_>>, ClientError> {
        let (start, end) = match next_frame(&self.inbuf[self.in_used..], self.max_frame_len)? {
            None => return Ok(None),
            Some((s, e)) => (self.in_used + s, self.in_used + e),
        };
        self.in_used = end;
        let frame = &self.inbuf[start..end];
        if self.state == State::Handshaking {
            let resp = ConnectResponse::decode(frame)?;
            if resp.timeout_ms <= 0 {
                return Err(ClientError::SessionExpired);
            }
            self.state = State::Connected;
            return Ok(Some(Event::Connected(Session {
                session_id: resp.session_id,
                timeout_ms: resp.timeout_ms,
                passwd: resp.passwd,
                read_only: resp.read_only.unwrap_or(false),
            })));
        }
        let mut r = Reader::new(frame);
        let h = ReplyHeader::read(&mut r)?;
        if h.zxid > self.last_zxid {
            self.last_zxid = h.zxid;
        }
        match h.xid {
            xid::NOTIFICATION => Ok(Some(Event::Watch(WatcherEvent::read(&mut r)?))),
            xid::PING => Ok(Some(Event::Pong { zxid: h.zxid })),
            xid::AUTH | xid::SET_WATCHES => Ok(Some(Event::Special {
                xid: h.xid,
                err: h.err,
            })),
            got => {
                let Some(front) = self.pending.front().copied() else {
                    return Err(ClientError::UnexpectedReply(got));
                };
                if front.xid != got {
                    return Err(ClientError::XidMismatch {
                        expected: front.xid,
                        got,
                    });
                }
                self.pending.pop_front();
                Ok(Some(Event::Reply(ReplyRef {
                    xid: got,
                    op: front.op,
                    zxid: h.zxid,
                    err: h.err,
                    body: r.rest(),
                })))
            }
        }
    }
}

/// Decode a getChildren (op 8) reply body: the child names.
pub fn decode_children(body: &[u8]) -> Result<Vec<String>, DecodeError> {
    Reader::new(body).read_vec(4, |r| r.read_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zooid_proto::{Acl, CreateRequest, Stat};

    /// The bytes of one frame `RequestHeader{xid, op} + body` built with the proto codec.
    fn reference_frame(xid: i32, req: &Request) -> Vec<u8> {
        let mut w = Writer::new();
        let at = w.begin_frame();
        RequestHeader {
            xid,
            op: req.op().code(),
        }
        .write(&mut w);
        req.encode_body(&mut w);
        w.finish_frame(at);
        w.into_inner()
    }

    fn server_frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    fn reply(xid: i32, zxid: i64, err: i32, body: &[u8]) -> Vec<u8> {
        let mut w = Writer::new();
        ReplyHeader { xid, zxid, err }.write(&mut w);
        w.buf.extend_from_slice(body);
        server_frame(&w.buf)
    }

    fn connected() -> ClientCore {
        let mut core = ClientCore::new(30_000);
        let n = core.outgoing().len();
        core.advance_outgoing(n);
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 30_000,
            session_id: 0x1000_0000_0000_0001,
            passwd: vec![7; 16],
            read_only: Some(false),
        };
        core.feed(&server_frame(&resp.encode()));
        match core.poll().unwrap() {
            Some(Event::Connected(s)) => assert_eq!(s.session_id, 0x1000_0000_0000_0001),
            other => panic!("expected Connected, got {other:?}"),
        }
        core
    }

    #[test]
    fn the_handshake_is_a_45_byte_connect_request() {
        let core = ClientCore::new(30_000);
        let out = core.outgoing();
        assert_eq!(&out[..4], &45i32.to_be_bytes());
        let req = ConnectRequest::decode(&out[4..]).unwrap();
        assert_eq!(req.timeout_ms, 30_000);
        assert_eq!(req.session_id, 0);
        assert_eq!(req.read_only, Some(false));
    }

    #[test]
    fn an_expired_session_is_an_error() {
        let mut core = ClientCore::new(30_000);
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: None,
        };
        core.feed(&server_frame(&resp.encode()));
        assert!(matches!(core.poll(), Err(ClientError::SessionExpired)));
    }

    #[test]
    fn fast_encoders_match_the_proto_codec() {
        let mut core = connected();
        core.send_create("/a/b", b"value", 2);
        core.send_delete("/a/b", 3);
        core.send_set_data("/a", b"xyz", -1);
        core.send_get_data("/a", true);
        core.send_exists("/a", false);
        core.send_get_children("/a", true);
        core.send_close();
        let want: Vec<u8> = [
            Request::Create(CreateRequest {
                op: OpCode::Create,
                path: "/a/b".into(),
                data: Some(b"value".to_vec()),
                acl: Acl::open_unsafe(),
                flags: 2,
                ttl: None,
            }),
            Request::Delete {
                path: "/a/b".into(),
                version: 3,
            },
            Request::SetData {
                path: "/a".into(),
                data: Some(b"xyz".to_vec()),
                version: -1,
            },
            Request::GetData {
                path: "/a".into(),
                watch: true,
            },
            Request::Exists {
                path: "/a".into(),
                watch: false,
            },
            Request::GetChildren {
                path: "/a".into(),
                watch: true,
            },
            Request::CloseSession,
        ]
        .iter()
        .enumerate()
        .flat_map(|(i, r)| reference_frame(i as i32 + 1, r))
        .collect();
        assert_eq!(core.outgoing(), &want[..]);
        assert_eq!(core.in_flight(), 7);
    }

    #[test]
    fn replies_match_in_order_and_split_anywhere() {
        let mut core = connected();
        let a = core.send_exists("/a", false);
        let b = core.send_get_children("/", false);
        core.send_ping();
        let stat = Stat {
            version: 4,
            ..Stat::default()
        };
        let mut children = Writer::new();
        children.write_strings(&["zookeeper", "bench"]);
        let mut stream = reply(a, 9, 0, &stat.encode());
        stream.extend(reply(xid::PING, 9, 0, &[]));
        stream.extend(reply(
            xid::NOTIFICATION,
            -1,
            0,
            &WatcherEvent {
                event_type: 3,
                state: 3,
                path: "/a".into(),
            }
            .encode(),
        ));
        stream.extend(reply(b, 10, 0, &children.buf));
        // Feed one byte at a time: every event must come out whole and in order.
        let mut seen = Vec::new();
        for byte in &stream {
            core.feed(std::slice::from_ref(byte));
            while let Some(ev) = core.poll().unwrap() {
                seen.push(match ev {
                    Event::Reply(r) if r.xid == a => {
                        assert_eq!(r.op, OpCode::Exists);
                        assert_eq!(Stat::decode(r.body).unwrap().version, 4);
                        "exists"
                    }
                    Event::Reply(r) => {
                        assert_eq!(r.xid, b);
                        assert_eq!(decode_children(r.body).unwrap(), ["zookeeper", "bench"]);
                        "children"
                    }
                    Event::Pong { .. } => "pong",
                    Event::Watch(ev) => {
                        assert_eq!(ev.path, "/a");
                        "watch"
                    }
                    other => panic!("unexpected {other:?}"),
                });
            }
        }
        assert_eq!(seen, ["exists", "pong", "watch", "children"]);
        assert_eq!(core.in_flight(), 0);
        assert_eq!(core.last_zxid(), 10);
    }

    #[test]
    fn an_error_reply_has_no_body() {
        let mut core = connected();
        let x = core.send_get_data("/missing", false);
        core.feed(&reply(x, 5, -101, &[]));
        match core.poll().unwrap() {
            Some(Event::Reply(r)) => {
                assert_eq!(r.err, -101);
                assert!(r.body.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn out_of_order_and_unsolicited_replies_are_errors() {
        let mut core = connected();
        core.send_exists("/a", false);
        core.send_exists("/b", false);
        core.feed(&reply(2, 1, 0, &Stat::default().encode()));
        assert!(matches!(
            core.poll(),
            Err(ClientError::XidMismatch {
                expected: 1,
                got: 2
            })
        ));
        let mut core = connected();
        core.feed(&reply(5, 1, 0, &[]));
        assert!(matches!(core.poll(), Err(ClientError::UnexpectedReply(5))));
    }

    #[test]
    fn oversized_and_garbage_frames_are_errors_not_panics() {
        let mut core = connected();
        core.set_max_frame_len(100);
        core.feed(&1000i32.to_be_bytes());
        assert!(matches!(core.poll(), Err(ClientError::Frame(_))));
        let mut core = connected();
        core.feed(&server_frame(&[1, 2, 3]));
        assert!(matches!(core.poll(), Err(ClientError::Decode(_))));
    }

    #[test]
    fn partial_writes_are_tracked() {
        let mut core = connected();
        core.send_exists("/a", false);
        let total = core.outgoing().len();
        core.advance_outgoing(5);
        assert_eq!(core.outgoing().len(), total - 5);
        core.advance_outgoing(total - 5);
        assert!(core.outgoing().is_empty());
    }
}
