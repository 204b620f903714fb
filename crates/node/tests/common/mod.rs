//! Client frames for the core's integration tests (each test file uses some of them).
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};

use zooid_proto::{ConnectRequest, Reader, Record, ReplyHeader, Request, RequestHeader, Writer};

/// A client address on localhost.
pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A request frame as the core takes it (no length prefix).
pub fn frame(xid: i32, op: i32, req: &Request) -> Vec<u8> {
    let mut w = Writer::new();
    RequestHeader { xid, op }.write(&mut w);
    req.encode_body(&mut w);
    w.into_inner()
}

/// A ConnectRequest frame (no length prefix), with the read-only flag as current clients
/// send it.
pub fn connect_frame(session_id: i64, passwd: &[u8], timeout_ms: i32) -> Vec<u8> {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms,
        session_id,
        passwd: passwd.to_vec(),
        read_only: Some(false),
    }
    .encode()
}

/// Split a frame the core sent (length prefix included) into its reply header and body.
pub fn reply(frame: &[u8]) -> (ReplyHeader, &[u8]) {
    let len = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4, "length prefix of {frame:?}");
    let mut r = Reader::new(&frame[4..]);
    let h = ReplyHeader::read(&mut r).expect("a reply header");
    (h, r.rest())
}
