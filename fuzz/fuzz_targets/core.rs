//! Bytes as a stream of frames from one client into the server core, after a valid handshake:
//! the core must never panic, whatever the frames say.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::{Ipv4Addr, SocketAddr};
use zooid_node::{Action, Core, CoreConfig, Input};
use zooid_proto::{ConnectRequest, Record};
use zooid_tree::DataTree;

fuzz_target!(|data: &[u8]| {
    let cfg = CoreConfig {
        extended_types_enabled: true,
        ..Default::default()
    };
    let mut core = Core::new(cfg, DataTree::new(), 1_000_000);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 1));
    core.handle(1_000_000, Input::Connect { conn: 1, addr });
    let hello = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 30000,
        session_id: 0,
        passwd: vec![0; 16],
        read_only: Some(false),
    }
    .encode();
    core.handle(
        1_000_000,
        Input::Frame {
            conn: 1,
            frame: &hello,
        },
    );
    let mut now = 1_000_000;
    let mut rest = data;
    // Each frame: one length byte, then that many bytes.
    while let Some((&len, tail)) = rest.split_first() {
        let n = (len as usize).min(tail.len());
        let (frame, tail) = tail.split_at(n);
        rest = tail;
        now += 7;
        core.handle(now, Input::Frame { conn: 1, frame });
        let mut last = None;
        for a in core.take_actions() {
            if let Action::Append { zxid, .. } = a {
                last = Some(zxid);
            }
        }
        if let Some(zxid) = last {
            core.handle(now, Input::Persisted { zxid });
        }
        core.handle(now, Input::Tick);
    }
});
