//! Raw-socket tests: what a client library cannot express. Malformed and oversized frames, the
//! handshake byte layout, four-letter words, the connection closes that follow an error reply or
//! closeSession, and requests or reply bytes that `zookeeper-client` refuses to send or does not
//! expose. Everything else is in `client.rs`, driven by `zookeeper-client`.
//! Expected values follow ZooKeeper 3.8 semantics (the layouts of `crates/proto/src/records.rs`).

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::zk::EventType::{NodeCreated, NodeDataChanged};
use common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// After the raw traffic, a `zookeeper-client` session still works.
async fn assert_server_still_serves(server: &TestServer, path: &str) {
    let c = server.client().await;
    let (stat, _) = within!(c.create(path, b"ok", &PERSISTENT)).unwrap();
    assert_eq!(stat.version, 0);
    assert_eq!(within!(c.get_data(path)).unwrap().0, b"ok");
}

/// A CreateRequest body with a `world:anyone` ALL ACL.
fn create_body(path: &str, data: &[u8], flags: i32) -> Jute {
    Jute::new()
        .string(path)
        .buffer(data)
        .world_acl(31)
        .int(flags)
}

// =============================================================================================
// Handshake and session-level closes
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_handshake_negotiation_and_reattach() {
    let server = TestServer::start().await;
    let addr = server.addr;

    // Timeout clamped to [min, max] = [400, 20000]; the readOnly byte is echoed only when sent.
    let (_a, r) = raw_handshake(addr, 100, 0, &[0; 16], Some(false)).await;
    assert_eq!(
        (r.protocol_version, r.timeout_ms, r.body_len, r.read_only),
        (0, 400, 37, Some(0))
    );
    let (_b, r) = raw_handshake(addr, 60_000, 0, &[0; 16], None).await;
    assert_eq!(
        (r.timeout_ms, r.body_len, r.read_only),
        (20_000, 36, None),
        "44-byte request gets 36-byte reply"
    );
    let (mut s1, r1) = raw_handshake(addr, 1_000, 0, &[0; 16], Some(false)).await;
    assert_eq!(r1.timeout_ms, 1_000);
    assert_ne!(r1.session_id, 0);
    assert_eq!(r1.passwd.len(), 16);

    // Re-attach with the right password: same id and password; the old connection is closed.
    let (mut s2, r2) = raw_handshake(addr, 5_000, r1.session_id, &r1.passwd, Some(false)).await;
    assert_eq!(
        (r2.session_id, r2.timeout_ms, &r2.passwd),
        (r1.session_id, 5_000, &r1.passwd)
    );
    assert!(
        until_closed!(&mut s1).is_empty(),
        "old connection of the session is closed"
    );
    // The new connection works: ping.
    write_frame(&mut s2, &Jute::new().int(-2).int(op::PING).bytes()).await;
    let (xid, _, code, rest) = parse_reply(&read_frame(&mut s2).await.expect("ping reply"));
    assert_eq!((xid, code, rest.len()), (-2, 0, 0));

    // Wrong password: timeOut 0, sessionId 0, 16 zero bytes, then close.
    let mut bad = r1.passwd.clone();
    bad[0] ^= 0xff;
    let (mut s3, r3) = raw_handshake(addr, 5_000, r1.session_id, &bad, Some(false)).await;
    assert_eq!(
        (r3.timeout_ms, r3.session_id, r3.passwd.clone(), r3.body_len),
        (0, 0, vec![0u8; 16], 37)
    );
    assert!(until_closed!(&mut s3).is_empty());
    server.stop().await;
}

/// Re-attaching a session that is gone: timeOut 0, sessionId 0, 16 zero bytes, then close.
async fn assert_reattach_refused(server: &TestServer, session_id: i64, passwd: &[u8]) {
    let (mut s, r) = raw_handshake(server.addr, 10_000, session_id, passwd, Some(false)).await;
    assert_eq!(
        (r.timeout_ms, r.session_id, r.passwd),
        (0, 0, vec![0u8; 16]),
        "session {session_id:#x} must not be resumable"
    );
    assert!(until_closed!(&mut s).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_session_replies_then_closes() {
    let server = TestServer::start().await;
    let (mut s, r) = raw_session(server.addr).await;
    write_frame(&mut s, &Jute::new().int(5).int(op::CLOSE_SESSION).bytes()).await;
    let (xid, _, code, rest) = parse_reply(&read_frame(&mut s).await.expect("closeSession reply"));
    assert_eq!((xid, code, rest.len()), (5, 0, 0));
    assert!(
        until_closed!(&mut s).is_empty(),
        "socket closed after the closeSession reply"
    );
    assert_reattach_refused(&server, r.session_id, &r.passwd).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_session_expires_and_its_socket_is_closed() {
    let server = TestServer::start().await;
    // Connected but never pinging: the server expires the session and closes the socket.
    let (mut s, r) = raw_handshake(server.addr, 400, 0, &[0; 16], Some(false)).await;
    assert_eq!(r.timeout_ms, 400);
    let start = Instant::now();
    assert!(until_closed!(&mut s).is_empty());
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300),
        "closed after {elapsed:?}, before the 400 ms timeout"
    );
    assert_reattach_refused(&server, r.session_id, &r.passwd).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_failure_replies_then_closes() {
    let server = TestServer::start().await;
    let (mut s, _) = raw_session(server.addr).await;
    let auth = |scheme: &str, id: &[u8]| {
        Jute::new()
            .int(-4)
            .int(op::AUTH)
            .int(0)
            .string(scheme)
            .buffer(id)
            .bytes()
    };
    // A good one first: ReplyHeader{-4, zxid 0, err 0}, no body.
    write_frame(&mut s, &auth("digest", b"alice:secret")).await;
    let reply = parse_reply(&read_frame(&mut s).await.expect("auth reply"));
    assert_eq!(reply, (-4, 0, err::OK, vec![]));
    // An unknown scheme: AUTHFAILED, then the server closes the connection.
    write_frame(&mut s, &auth("nosuch", b"whatever")).await;
    let reply = parse_reply(&read_frame(&mut s).await.expect("auth reply"));
    assert_eq!(reply, (-4, 0, err::AUTH_FAILED, vec![]));
    assert!(
        until_closed!(&mut s).is_empty(),
        "server must close the connection after replying AUTHFAILED"
    );
    assert_server_still_serves(&server, "/after").await;
    server.stop().await;
}

// =============================================================================================
// Requests the library refuses to send, and reply bytes it does not expose
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_requests_the_library_refuses_to_send() {
    let server = TestServer::start().await;
    let (mut s, _) = raw_session(server.addr).await;
    let cases: [(&str, i32, Vec<u8>, i32); 7] = [
        (
            "createTTL without a TTL flag",
            op::CREATE_TTL,
            create_body("/bad", b"", 0).long(1000).bytes(),
            err::BAD_ARGUMENTS,
        ),
        (
            "createTTL of an ephemeral",
            op::CREATE_TTL,
            create_body("/bad", b"", 1).long(1000).bytes(),
            err::BAD_ARGUMENTS,
        ),
        (
            "ttl 0",
            op::CREATE_TTL,
            create_body("/bad", b"", 5).long(0).bytes(),
            err::BAD_ARGUMENTS,
        ),
        (
            "ttl above 0xFF_FFFF_FFFF",
            op::CREATE_TTL,
            create_body("/bad", b"", 5).long(0x100_0000_0000).bytes(),
            err::BAD_ARGUMENTS,
        ),
        (
            "TTL flag on create2",
            op::CREATE2,
            create_body("/bad", b"", 5).bytes(),
            err::BAD_ARGUMENTS,
        ),
        (
            "unknown flag",
            op::CREATE2,
            create_body("/bad", b"", 9).bytes(),
            err::BAD_ARGUMENTS,
        ),
        (
            "empty ACL list",
            op::CREATE2,
            Jute::new().string("/bad").buffer(b"").int(0).int(0).bytes(),
            err::INVALID_ACL,
        ),
    ];
    for (xid, (what, opcode, body, expected)) in (1..).zip(cases) {
        let (code, rest) = raw_call(&mut s, xid, opcode, &body).await;
        assert_eq!((code, rest.len()), (expected, 0), "{what}");
    }
    let c = server.client().await;
    assert_eq!(within!(c.check_stat("/bad")).unwrap(), None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_and_requests_the_library_does_not_expose() {
    let server = TestServer::start().await;
    let (mut s, _) = raw_session(server.addr).await;

    // Plain create (op 1) answers with the path only, the sequential name included.
    let (code, body) = raw_call(&mut s, 1, op::CREATE, &create_body("/p1", b"", 0).bytes()).await;
    assert_eq!((code, body), (err::OK, Jute::new().string("/p1").bytes()));
    let (code, body) = raw_call(
        &mut s,
        2,
        op::CREATE,
        &create_body("/p1/q-", b"", 2).bytes(),
    )
    .await;
    assert_eq!(
        (code, body),
        (err::OK, Jute::new().string("/p1/q-0000000000").bytes())
    );

    // sync echoes the path.
    let (code, body) = raw_call(&mut s, 3, op::SYNC, &Jute::new().string("/p1").bytes()).await;
    assert_eq!((code, body), (err::OK, Jute::new().string("/p1").bytes()));

    // A check (op 13) outside a multi: UNIMPLEMENTED with zxid -1 and the connection closed,
    // as ZooKeeper 3.9 answers it, whatever the node.
    let check = |path: &str, version: i32| Jute::new().string(path).int(version).bytes();
    for (path, version) in [("/p1", 0), ("/missing", -1)] {
        let (mut alone, _) = raw_session(server.addr).await;
        let frame = Jute::new()
            .int(10)
            .int(op::CHECK)
            .raw(&check(path, version))
            .bytes();
        write_frame(&mut alone, &frame).await;
        let reply = read_frame(&mut alone).await.expect("a reply");
        let (xid, zxid, code, body) = parse_reply(&reply);
        assert_eq!(
            (xid, zxid, code, body.len()),
            (10, -1, err::UNIMPLEMENTED, 0)
        );
        assert!(
            read_frame(&mut alone).await.is_none(),
            "the connection is closed"
        );
    }

    // A failed multi: header err 0 and every op an error result, those before the failing one
    // with err 0 and those after it with RUNTIMEINCONSISTENCY (the library shows only the first
    // non-zero code).
    let header = |j: Jute, opcode: i32| j.int(opcode).boolean(false).int(-1);
    let multi = header(Jute::new(), op::CREATE2).raw(&create_body("/p1/m1", b"", 0).bytes());
    let multi = header(multi, op::SET_DATA)
        .string("/p1")
        .buffer(b"x")
        .int(5);
    let multi = header(multi, op::CREATE2).raw(&create_body("/p1/m2", b"", 0).bytes());
    let multi = multi.int(-1).boolean(true).int(-1).bytes();
    let (code, body) = raw_call(&mut s, 4, op::MULTI, &multi).await;
    assert_eq!(code, err::OK, "a failed multi still has header err 0");
    let mut r = Reader::new(&body);
    let mut results = Vec::new();
    loop {
        let (kind, done, code) = (r.int(), r.boolean(), r.int());
        if done {
            assert_eq!((kind, code), (-1, -1), "terminator");
            break;
        }
        assert_eq!(kind, -1, "every op of a failed multi is an error result");
        results.push((code, r.int()));
    }
    assert!(r.remaining().is_empty());
    assert_eq!(
        results,
        vec![
            (err::OK, err::OK),
            (err::BAD_VERSION, err::BAD_VERSION),
            (err::RUNTIME_INCONSISTENCY, err::RUNTIME_INCONSISTENCY)
        ],
        "(header err, body err) per op"
    );

    // getEphemerals with the prefixes "" (everything) and "/d/" (a plain string prefix).
    for (xid, (path, flags)) in (20..).zip([("/d", 0), ("/d/e1", 1), ("/dx", 1)]) {
        let (code, _) = raw_call(
            &mut s,
            xid,
            op::CREATE2,
            &create_body(path, b"", flags).bytes(),
        )
        .await;
        assert_eq!(code, err::OK, "create {path}");
    }
    for (xid, (prefix, expected)) in (30..).zip([
        ("", vec!["/d/e1", "/dx"]),
        ("/d/", vec!["/d/e1"]),
        ("/d", vec!["/d/e1", "/dx"]),
    ]) {
        let (code, body) = raw_call(
            &mut s,
            xid,
            op::GET_EPHEMERALS,
            &Jute::new().string(prefix).bytes(),
        )
        .await;
        assert_eq!(code, err::OK);
        let mut r = Reader::new(&body);
        assert_eq!(sorted(r.strings()), strings(&expected), "prefix {prefix:?}");
        assert!(r.remaining().is_empty());
    }
    server.stop().await;
}

// =============================================================================================
// Bad input
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_connection() {
    let server = TestServer::start().await;
    let addr = server.addr;

    // Before the handshake.
    let mut s = within!(TcpStream::connect(addr)).unwrap();
    s.write_all(&1_048_576i32.to_be_bytes()).await.unwrap();
    s.write_all(&[0u8; 64]).await.unwrap();
    assert!(
        until_closed!(&mut s).is_empty(),
        "no reply to an oversized first frame"
    );

    // After the handshake: a frame of exactly jute.maxbuffer (1048575 bytes) is accepted ...
    let (mut s, _) = raw_session(addr).await;
    let acl = Jute::new().world_acl(31).bytes();
    let fixed = 8 + (4 + "/big".len()) + 4 + acl.len() + 4;
    let data = vec![b'z'; 1_048_575 - fixed];
    let req = Jute::new()
        .int(1)
        .int(op::CREATE)
        .string("/big")
        .buffer(&data)
        .raw(&acl)
        .int(0)
        .bytes();
    assert_eq!(req.len(), 1_048_575);
    write_frame(&mut s, &req).await;
    let (xid, _, code, body) = parse_reply(&read_frame(&mut s).await.expect("create reply"));
    assert_eq!(
        (xid, code),
        (1, 0),
        "a 1048575-byte frame is within jute.maxbuffer"
    );
    assert_eq!(Reader::new(&body).string(), "/big");
    // ... one byte more closes the connection.
    s.write_all(&1_048_576i32.to_be_bytes()).await.unwrap();
    s.write_all(&[0u8; 64]).await.unwrap();
    assert!(
        until_closed!(&mut s).is_empty(),
        "no reply to an oversized frame"
    );

    // A negative length too.
    let (mut s, _) = raw_session(addr).await;
    s.write_all(&(-5i32).to_be_bytes()).await.unwrap();
    assert!(until_closed!(&mut s).is_empty());

    assert_server_still_serves(&server, "/after").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_opcode_gets_unimplemented_then_close() {
    let server = TestServer::start().await;
    let (mut s, r) = raw_session(server.addr).await;
    assert_ne!(r.session_id, 0);
    write_frame(&mut s, &Jute::new().int(7).int(999).bytes()).await;
    let (xid, _, code, rest) =
        parse_reply(&read_frame(&mut s).await.expect("a reply before the close"));
    assert_eq!(
        (xid, code),
        (7, err::UNIMPLEMENTED),
        "unknown opcode gives UNIMPLEMENTED"
    );
    assert!(rest.is_empty(), "error replies carry no body");
    assert!(
        until_closed!(&mut s).is_empty(),
        "connection closed after the error"
    );
    assert_server_still_serves(&server, "/after").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_connect_request_closes_connection() {
    let server = TestServer::start().await;
    let addr = server.addr;

    // Too short to hold a ConnectRequest.
    let mut s = within!(TcpStream::connect(addr)).unwrap();
    write_frame(&mut s, &[0xff; 8]).await;
    assert!(
        until_closed!(&mut s).is_empty(),
        "no reply to a truncated ConnectRequest"
    );

    // Password length pointing far past the end of the frame.
    let mut s = within!(TcpStream::connect(addr)).unwrap();
    let req = Jute::new()
        .int(0)
        .long(0)
        .int(10_000)
        .long(0)
        .int(0x7fff_ffff)
        .raw(&[0; 16])
        .boolean(false)
        .bytes();
    write_frame(&mut s, &req).await;
    assert!(
        until_closed!(&mut s).is_empty(),
        "no reply to a malformed ConnectRequest"
    );

    // A request header where the ConnectRequest should be (an 8-byte ping).
    let mut s = within!(TcpStream::connect(addr)).unwrap();
    write_frame(&mut s, &Jute::new().int(-2).int(op::PING).bytes()).await;
    assert!(
        until_closed!(&mut s).is_empty(),
        "no reply to a ping in place of a ConnectRequest"
    );

    assert_server_still_serves(&server, "/after").await;
    server.stop().await;
}

// =============================================================================================
// Four-letter words
// =============================================================================================

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_letter_words() {
    let server = TestServer::start().await;
    assert_eq!(four_letter_word(server.addr, "ruok").await, "imok");
    let srvr = four_letter_word(server.addr, "srvr").await;
    assert!(srvr.contains("Mode: standalone"), "srvr output: {srvr}");
    assert!(srvr.contains("Zookeeper version:"), "srvr output: {srvr}");
    assert!(srvr.contains("Node count:"), "srvr output: {srvr}");
    assert!(four_letter_word(server.addr, "isro")
        .await
        .starts_with("rw"));
    // An unknown word is read as an oversized length: closed without output.
    assert_eq!(four_letter_word(server.addr, "xyzw").await, "");
    assert_server_still_serves(&server, "/after").await;
    server.stop().await;
}

/// `wchc` as (session, sorted watched paths) pairs.
async fn watches_by_session(server: &TestServer) -> Vec<(String, Vec<String>)> {
    let text = four_letter_word(server.addr, "wchc").await;
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(path) = line.strip_prefix('\t') {
            out.last_mut()
                .unwrap_or_else(|| panic!("path before a session in {text:?}"))
                .1
                .push(path.to_string());
        } else if !line.is_empty() {
            out.push((line.to_string(), Vec::new()));
        }
    }
    for (_, paths) in &mut out {
        paths.sort();
    }
    out
}

/// The server side of one-shot watches set through `zookeeper-client`: registered by
/// getData/exists (also on a missing node for exists), not by a failed getData, and consumed
/// when they fire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_letter_words_show_one_shot_watches() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let writer = server.client().await;
    let sid = format!("0x{:x}", c.session_id().0);
    within!(c.create("/w", b"", &PERSISTENT)).unwrap();

    let (_, _, data_watcher) = within!(c.get_and_watch_data("/w")).unwrap();
    assert_eq!(
        within!(c.get_and_watch_data("/missing")).unwrap_err(),
        zk::Error::NoNode
    );
    let (stat, exists_watcher) = within!(c.check_and_watch_stat("/nx")).unwrap();
    assert_eq!(stat, None);
    assert_eq!(
        watches_by_session(&server).await,
        vec![(sid.clone(), strings(&["/nx", "/w"]))],
        "no watch for the failed getData"
    );
    assert_eq!(
        four_letter_word(server.addr, "wchs").await,
        "1 connections watching 2 paths\nTotal watches:2\n"
    );

    within!(writer.set_data("/w", b"1", None)).unwrap();
    assert_eq!(fired(data_watcher).await, event(NodeDataChanged, "/w"));
    assert_eq!(
        watches_by_session(&server).await,
        vec![(sid, strings(&["/nx"]))],
        "a fired watch is gone"
    );

    within!(writer.create("/nx", b"", &PERSISTENT)).unwrap();
    assert_eq!(fired(exists_watcher).await, event(NodeCreated, "/nx"));
    assert_eq!(watches_by_session(&server).await, vec![]);
    assert_eq!(
        four_letter_word(server.addr, "wchs").await,
        "0 connections watching 0 paths\nTotal watches:0\n"
    );
    server.stop().await;
}
