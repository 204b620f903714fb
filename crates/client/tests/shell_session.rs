//! The shell's session task against a scripted server on loopback: a dropped connection is
//! followed by a re-attach with the same session id, password and last zxid; the auth data
//! and the watches are sent again (auth, then setWatches) before anything else; state events
//! are reported once per change; and a notification for a re-registered watch reaches the
//! shell. A dead first address is skipped.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zooid_client::shell::client::{Client, EventSink, WatchedEvent};
use zooid_client::shell::zk::Zk;
use zooid_proto::frame::next_frame;
use zooid_proto::{
    xid, ConnectRequest, ConnectResponse, Record, ReplyHeader, Request, RequestHeader, Stat,
    WatcherEvent, Writer,
};

const SESSION: i64 = 0x0100_0000_0000_0077;
const LIMIT: Duration = Duration::from_secs(10);

/// One side of a scripted connection.
struct Peer {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Peer {
    async fn frame(&mut self) -> Vec<u8> {
        loop {
            if let Some((s, e)) = next_frame(&self.buf, 1 << 20).unwrap() {
                let f = self.buf[s..e].to_vec();
                self.buf.drain(..e);
                return f;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(LIMIT, self.stream.read(&mut chunk))
                .await
                .expect("the client sends in time")
                .unwrap();
            assert!(n > 0, "the client closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next request, skipping pings.
    async fn request(&mut self) -> (i32, Request) {
        loop {
            let f = self.frame().await;
            let mut r = zooid_proto::Reader::new(&f);
            let h = RequestHeader::read(&mut r).unwrap();
            let req = Request::decode(h.op, r.rest()).unwrap();
            if !matches!(req, Request::Ping) {
                return (h.xid, req);
            }
        }
    }

    async fn send(&mut self, body: &[u8]) {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        self.stream.write_all(&v).await.unwrap();
    }

    async fn reply(&mut self, xid: i32, zxid: i64, err: i32, body: &[u8]) {
        let mut w = Writer::new();
        ReplyHeader { xid, zxid, err }.write(&mut w);
        w.buf.extend_from_slice(body);
        self.send(&w.into_inner()).await;
    }

    async fn accept_session(listener: &TcpListener) -> (Peer, ConnectRequest) {
        let (stream, _) = tokio::time::timeout(LIMIT, listener.accept())
            .await
            .expect("the client connects in time")
            .unwrap();
        let mut p = Peer {
            stream,
            buf: Vec::new(),
        };
        let req = ConnectRequest::decode(&p.frame().await).unwrap();
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 30_000,
            session_id: SESSION,
            passwd: vec![9; 16],
            read_only: Some(false),
        };
        p.send(&resp.encode()).await;
        (p, req)
    }
}

async fn next_event(rx: &mut tokio::sync::mpsc::UnboundedReceiver<(u64, WatchedEvent)>) -> String {
    tokio::time::timeout(LIMIT, rx.recv())
        .await
        .expect("an event in time")
        .expect("the channel is open")
        .1
        .to_string()
}

#[tokio::test]
async fn a_dropped_connection_reattaches_the_session_with_auth_and_watches() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Nothing listens on the first address.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let (sink, mut events) = EventSink::new();
    let hosts = format!("127.0.0.1:{dead_port},127.0.0.1:{port}");
    let client = Client::connect(&hosts, 30_000, false, false, sink).unwrap();
    let zk = Zk {
        client: client.clone(),
    };

    let (mut peer, req) = Peer::accept_session(&listener).await;
    assert_eq!((req.session_id, req.last_zxid_seen), (0, 0));
    assert_eq!(
        next_event(&mut events).await,
        "WatchedEvent state:SyncConnected type:None path:null"
    );

    // getData with a watch, answered at zxid 0x42.
    let call = tokio::spawn({
        let zk = zk.clone();
        async move { zk.get_data("/w", true).await }
    });
    let (x, r) = peer.request().await;
    assert_eq!(
        r,
        Request::GetData {
            path: "/w".into(),
            watch: true
        }
    );
    let mut body = Writer::new();
    body.write_buffer(b"v1");
    Stat::default().write(&mut body);
    peer.reply(x, 0x42, 0, &body.into_inner()).await;
    let (data, _) = call.await.unwrap().unwrap();
    assert_eq!(data.as_deref(), Some(&b"v1"[..]));

    client.add_auth("digest", b"u:p");
    let (x, r) = peer.request().await;
    assert_eq!(x, xid::AUTH);
    assert!(matches!(r, Request::Auth(ref a) if a.scheme == "digest" && a.auth == b"u:p"));
    peer.reply(xid::AUTH, 0, 0, &[]).await;

    // The connection drops; a request made meanwhile waits for the new one.
    drop(peer);
    assert_eq!(
        next_event(&mut events).await,
        "WatchedEvent state:Disconnected type:None path:null"
    );
    let call = tokio::spawn({
        let zk = zk.clone();
        async move { zk.exists("/w", false).await }
    });

    let (mut peer, req) = Peer::accept_session(&listener).await;
    assert_eq!(req.session_id, SESSION);
    assert_eq!(req.passwd, vec![9; 16]);
    assert_eq!(req.last_zxid_seen, 0x42);
    let (x, r) = peer.request().await;
    assert_eq!(x, xid::AUTH, "auth is re-sent first");
    assert!(matches!(r, Request::Auth(ref a) if a.auth == b"u:p"));
    let (x, r) = peer.request().await;
    assert_eq!(x, xid::SET_WATCHES);
    match r {
        Request::SetWatches(sw) => {
            assert_eq!(sw.relative_zxid, 0x42);
            assert_eq!(sw.data, ["/w"]);
            assert!(sw.exist.is_empty() && sw.child.is_empty() && !sw.v2);
        }
        other => panic!("expected setWatches, got {other:?}"),
    }
    let (x, r) = peer.request().await;
    assert_eq!(
        r,
        Request::Exists {
            path: "/w".into(),
            watch: false
        }
    );
    peer.reply(xid::AUTH, 0, 0, &[]).await;
    peer.reply(xid::SET_WATCHES, 0x42, 0, &[]).await;
    peer.reply(x, 0x42, 0, &Stat::default().encode()).await;
    assert!(call.await.unwrap().unwrap().is_some());
    assert_eq!(
        next_event(&mut events).await,
        "WatchedEvent state:SyncConnected type:None path:null"
    );

    // The re-registered watch fires once.
    for _ in 0..2 {
        let ev = WatcherEvent {
            event_type: 3,
            state: 3,
            path: "/w".into(),
        };
        peer.reply(xid::NOTIFICATION, -1, 0, &ev.encode()).await;
    }
    assert_eq!(
        next_event(&mut events).await,
        "WatchedEvent state:SyncConnected type:NodeDataChanged path:/w"
    );

    // close: closeSession, then the Closed event.
    let closing = tokio::spawn({
        let client = client.clone();
        async move { client.close().await }
    });
    let (x, r) = peer.request().await;
    assert_eq!(r, Request::CloseSession);
    peer.reply(x, 0x43, 0, &[]).await;
    closing.await.unwrap();
    assert_eq!(
        next_event(&mut events).await,
        "WatchedEvent state:Closed type:None path:null"
    );
    assert!(
        events.try_recv().is_err(),
        "the second notification was dropped"
    );
}

#[tokio::test]
async fn an_expired_session_ends_with_the_expired_event() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sink, mut events) = EventSink::new();
    let client = Client::connect(&format!("127.0.0.1:{port}"), 30_000, false, false, sink).unwrap();
    let (peer, _) = Peer::accept_session(&listener).await;
    next_event(&mut events).await;
    drop(peer);
    assert_eq!(
        next_event(&mut events).await,
        "WatchedEvent state:Disconnected type:None path:null"
    );
    // The server no longer knows the session: timeout 0 in the answer.
    let (stream, _) = listener.accept().await.unwrap();
    let mut p = Peer {
        stream,
        buf: Vec::new(),
    };
    let req = ConnectRequest::decode(&p.frame().await).unwrap();
    assert_eq!(req.session_id, SESSION);
    let resp = ConnectResponse {
        protocol_version: 0,
        timeout_ms: 0,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(false),
    };
    p.send(&resp.encode()).await;
    assert_eq!(
        next_event(&mut events).await,
        "WatchedEvent state:Expired type:None path:null"
    );
    assert!(!client.state().is_alive());
    let zk = Zk { client };
    let err = zk.exists("/x", false).await.unwrap_err();
    assert_eq!(
        err,
        zooid_client::shell::zk::ZkError::Keeper(zooid_client::shell::zk::KeeperError::new(
            -112,
            Some("/x")
        ))
    );
}
