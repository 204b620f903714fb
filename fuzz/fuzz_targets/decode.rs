//! Every decoder that sees bytes from the network or the disk: frame splitting, the
//! ConnectRequest, request bodies by opcode, and txn log entries. None may panic, and what
//! decodes must re-encode to bytes that decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zooid_proto::{frame, ConnectRequest, Record, Request, TxnEntry, Writer};

fuzz_target!(|data: &[u8]| {
    let _ = frame::next_frame(data, 1 << 20);
    if let Ok(c) = ConnectRequest::decode(data) {
        assert_eq!(ConnectRequest::decode(&c.encode()).as_ref(), Ok(&c));
    }
    if data.len() >= 4 {
        let op = i32::from_be_bytes([data[0], data[1], data[2], data[3]]) % 128;
        if let Ok(req) = Request::decode(op, &data[4..]) {
            let mut w = Writer::new();
            req.encode_body(&mut w);
            let again = Request::decode(op, &w.buf);
            assert_eq!(again.as_ref(), Ok(&req), "op {op}");
        }
    }
    if let Ok(e) = TxnEntry::decode(data) {
        let mut w = Writer::new();
        e.encode(&mut w);
        let _ = TxnEntry::decode(&w.buf);
    }
});
