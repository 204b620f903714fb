//! The quorum-port and election-port decoders: bytes from a peer (or anyone who connects to
//! those ports) must never panic, and a decoded message must re-encode to bytes that decode
//! to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zooid_zab::election::{next_frame, InitialMessage, Notification};
use zooid_zab::message::QuorumMessage;
use zooid_zab::packet::{Decoded, QuorumDecoder, QuorumLimits, Sender};

fuzz_target!(|data: &[u8]| {
    let _ = InitialMessage::decode(data);
    let _ = next_frame(data);
    if let Ok(n) = Notification::decode(data) {
        let mut bytes = Vec::new();
        n.encode(&mut bytes);
        let again = Notification::decode(&bytes);
        assert!(again.is_ok(), "a notification we encoded does not decode");
    }
    // A stream from either side, as the decoder would see it arrive.
    for from in [Sender::Leader, Sender::Learner] {
        let mut dec = QuorumDecoder::new(from, QuorumLimits::default());
        let mut at = 0;
        for _ in 0..64 {
            match dec.decode(&data[at..]) {
                Ok(Decoded::Packet { packet, consumed }) => {
                    if let Ok(m) = QuorumMessage::decode(&packet, from) {
                        let _ = m.to_packet();
                    }
                    at += consumed.max(1).min(data.len() - at);
                }
                Ok(Decoded::SnapshotChunk { consumed }) => {
                    at += consumed.max(1).min(data.len() - at)
                }
                Ok(Decoded::SnapshotEnd { .. }) => {}
                Ok(Decoded::NeedMore { .. }) | Err(_) => break,
            }
            if at >= data.len() {
                break;
            }
        }
    }
});
