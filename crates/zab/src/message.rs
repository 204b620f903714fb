//! [`QuorumMessage`]: a [`QuorumPacket`] with its payload decoded by type and direction
//! (`zab.md` §3, §4, §7). [`QuorumMessage::to_packet`] writes the exact packet Java writes
//! (null data where Java sends null, `-1`/`0` in the fixed zxid fields), so the re-encoding of a
//! Java packet is byte-identical; decoding is as lenient as Java's readers (fixed zxids, unused
//! data and authinfo are ignored, trailing payload bytes are ignored).
//!
//! ```text
//! type              sender   zxid                  data
//!  1 REQUEST         learner  -1                    int64 sessionId | int32 cxid | int32 op | body
//!                                                   (authinfo = the client's auth Ids)
//!  2 PROPOSAL        leader   txn zxid              TxnHeader | record | [TxnDigest]
//!  3 ACK             learner  acked zxid            null
//!  4 COMMIT          leader   zxid                  null
//!  5 PING            leader   lastProposed          null
//!    PING (reply)    learner  echoed                (int64 sessionId | int32 timeoutMs)*, never null
//!  6 REVALIDATE      learner  -1                    int64 sessionId | int32 timeoutMs
//!    REVALIDATE      leader   -1                    int64 sessionId | bool valid
//!  7 SYNC            leader   0                     null
//!  8 INFORM          leader   txn zxid              as PROPOSAL
//!  9 COMMITANDACTIVATE leader reconfig zxid         int64 designated leader sid
//! 10 NEWLEADER       leader   newEpoch << 32        config text (null for pre-Zab-1.0 learners)
//! 11 FOLLOWERINFO    learner  acceptedEpoch << 32   LearnerInfo: int64 sid | int32 0x10000 | int64 configVersion
//! 12 UPTODATE        leader   -1                    null
//! 13 DIFF / 14 TRUNC / 15 SNAP  leader  zxid        null (SNAP: a snapshot stream follows)
//! 16 OBSERVERINFO    learner  acceptedEpoch << 32   LearnerInfo
//! 17 LEADERINFO      leader   newEpoch << 32        int32 protocol version 0x10000
//! 18 ACKEPOCH        learner  last logged zxid      int32 currentEpoch, -1 = "already acked"
//! 19 INFORMANDACTIVATE leader reconfig zxid         int64 designated leader | txn entry
//! ```

use zooid_proto::{Id, OpCode, TxnEntry, Writer};

use crate::election::{be_i32, be_i64};
use crate::error::WireError;
use crate::ids::{Epoch, ServerId, Zxid};
use crate::packet::{PacketType, QuorumPacket, Sender};

/// Zab 1.0, the only learner protocol version this crate speaks (`0x10000`).
pub const ZAB_PROTOCOL_VERSION: i32 = 0x10000;

/// The first packet's payload from a learner (jute `LearnerInfo`). Old learners send fewer
/// fields; the leader reads each one only if the data is long enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnerInfo {
    pub sid: ServerId,
    /// Present when the data has at least 12 bytes.
    pub protocol_version: Option<i32>,
    /// The learner's committed config version; present when the data has at least 20 bytes.
    pub config_version: Option<i64>,
}

impl LearnerInfo {
    /// What a 3.8 learner sends.
    pub fn new(sid: ServerId, config_version: i64) -> LearnerInfo {
        LearnerInfo {
            sid,
            protocol_version: Some(ZAB_PROTOCOL_VERSION),
            config_version: Some(config_version),
        }
    }

    /// Decode FOLLOWERINFO/OBSERVERINFO data. Shorter than 8 bytes is refused (Java would
    /// invent a negative sid for such an ancient learner).
    pub fn decode(data: &[u8]) -> Result<LearnerInfo, WireError> {
        let sid = be_i64(data, 0).ok_or(WireError::BadPayload {
            ptype: PacketType::FollowerInfo,
            reason: "LearnerInfo shorter than a sid",
        })?;
        let protocol_version = be_i32(data, 8);
        Ok(LearnerInfo {
            sid: ServerId(sid),
            protocol_version,
            config_version: protocol_version.and_then(|_| be_i64(data, 12)),
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sid.0.to_be_bytes());
        if let Some(v) = self.protocol_version {
            out.extend_from_slice(&v.to_be_bytes());
            if let Some(c) = self.config_version {
                out.extend_from_slice(&c.to_be_bytes());
            }
        }
    }
}

/// One session a learner saw activity on since the last PING (`zab.md` §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTouch {
    pub session_id: i64,
    pub timeout_ms: i32,
}

/// A client write (or sync, createSession, closeSession) forwarded to the leader (§7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedRequest {
    pub session_id: i64,
    pub cxid: i32,
    /// The client opcode; see [`ForwardedRequest::op_code`].
    pub op: i32,
    /// The client's serialized request record, byte for byte as it arrived.
    pub body: Vec<u8>,
    /// The client connection's auth Ids; null for createSession.
    pub authinfo: Option<Vec<Id>>,
}

impl ForwardedRequest {
    pub fn op_code(&self) -> Option<OpCode> {
        OpCode::from_i32(self.op)
    }
}

/// A quorum packet with its payload decoded. Variant names follow the packet type; PING and
/// REVALIDATE have one variant per direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumMessage {
    Request(ForwardedRequest),
    Proposal {
        zxid: Zxid,
        entry: TxnEntry,
    },
    Ack {
        zxid: Zxid,
    },
    Commit {
        zxid: Zxid,
    },
    /// Leader to learner; `zxid` is the leader's last proposed zxid.
    Ping {
        zxid: Zxid,
    },
    /// Learner to leader: the ping's zxid echoed, with the sessions touched since the last one.
    PingReply {
        zxid: Zxid,
        touches: Vec<SessionTouch>,
    },
    /// Learner to leader: a client reconnected here with this session.
    Revalidate {
        session_id: i64,
        timeout_ms: i32,
    },
    /// Leader to learner: whether that session is still alive (this learner now owns it).
    RevalidateReply {
        session_id: i64,
        valid: bool,
    },
    Sync,
    Inform {
        zxid: Zxid,
        entry: TxnEntry,
    },
    CommitAndActivate {
        zxid: Zxid,
        designated_leader: ServerId,
    },
    NewLeader {
        zxid: Zxid,
        /// The leader's QuorumVerifier text (bytes: Java decodes with its platform charset).
        config: Option<Vec<u8>>,
    },
    FollowerInfo {
        zxid: Zxid,
        info: LearnerInfo,
    },
    UpToDate,
    Diff {
        zxid: Zxid,
    },
    Trunc {
        zxid: Zxid,
    },
    /// A snapshot stream follows on the connection (see [`crate::QuorumDecoder`]).
    Snap {
        zxid: Zxid,
    },
    ObserverInfo {
        zxid: Zxid,
        info: LearnerInfo,
    },
    LeaderInfo {
        zxid: Zxid,
        protocol_version: i32,
    },
    AckEpoch {
        zxid: Zxid,
        /// `None` for the wire's -1: "I had already accepted this epoch, do not count me".
        current_epoch: Option<Epoch>,
    },
    InformAndActivate {
        zxid: Zxid,
        designated_leader: ServerId,
        entry: TxnEntry,
    },
}

impl QuorumMessage {
    pub fn packet_type(&self) -> PacketType {
        use QuorumMessage as M;
        match self {
            M::Request(_) => PacketType::Request,
            M::Proposal { .. } => PacketType::Proposal,
            M::Ack { .. } => PacketType::Ack,
            M::Commit { .. } => PacketType::Commit,
            M::Ping { .. } | M::PingReply { .. } => PacketType::Ping,
            M::Revalidate { .. } | M::RevalidateReply { .. } => PacketType::Revalidate,
            M::Sync => PacketType::Sync,
            M::Inform { .. } => PacketType::Inform,
            M::CommitAndActivate { .. } => PacketType::CommitAndActivate,
            M::NewLeader { .. } => PacketType::NewLeader,
            M::FollowerInfo { .. } => PacketType::FollowerInfo,
            M::UpToDate => PacketType::UpToDate,
            M::Diff { .. } => PacketType::Diff,
            M::Trunc { .. } => PacketType::Trunc,
            M::Snap { .. } => PacketType::Snap,
            M::ObserverInfo { .. } => PacketType::ObserverInfo,
            M::LeaderInfo { .. } => PacketType::LeaderInfo,
            M::AckEpoch { .. } => PacketType::AckEpoch,
            M::InformAndActivate { .. } => PacketType::InformAndActivate,
        }
    }

    /// Decode a packet written by `from`.
    pub fn decode(p: &QuorumPacket, from: Sender) -> Result<QuorumMessage, WireError> {
        use QuorumMessage as M;
        let t = p.ptype;
        let bad = |reason| WireError::BadPayload { ptype: t, reason };
        let data = || p.data.as_deref().ok_or(bad("data is null"));
        let zxid = p.zxid;
        Ok(match t {
            PacketType::Request => {
                let d = data()?;
                let (Some(session_id), Some(cxid), Some(op)) =
                    (be_i64(d, 0), be_i32(d, 8), be_i32(d, 12))
                else {
                    return Err(bad("shorter than session, cxid and type"));
                };
                M::Request(ForwardedRequest {
                    session_id,
                    cxid,
                    op,
                    body: d[16..].to_vec(),
                    authinfo: p.authinfo.clone(),
                })
            }
            PacketType::Proposal => M::Proposal {
                zxid,
                entry: decode_entry(data()?, "PROPOSAL txn")?,
            },
            PacketType::Inform => M::Inform {
                zxid,
                entry: decode_entry(data()?, "INFORM txn")?,
            },
            PacketType::Ack => M::Ack { zxid },
            PacketType::Commit => M::Commit { zxid },
            PacketType::Ping => match from {
                Sender::Leader => M::Ping { zxid },
                Sender::Learner => {
                    // Java reads pairs while bytes remain; a partial pair kills the handler.
                    let d = p.data.as_deref().unwrap_or_default();
                    let pairs = d.chunks_exact(12);
                    if !pairs.remainder().is_empty() {
                        return Err(bad("session touches are not whole (long, int) pairs"));
                    }
                    let touches = pairs
                        .map(|c| SessionTouch {
                            session_id: be_i64(c, 0).unwrap_or_default(),
                            timeout_ms: be_i32(c, 8).unwrap_or_default(),
                        })
                        .collect();
                    M::PingReply { zxid, touches }
                }
            },
            PacketType::Revalidate => {
                let d = data()?;
                let session_id = be_i64(d, 0).ok_or(bad("no session id"))?;
                match from {
                    Sender::Learner => M::Revalidate {
                        session_id,
                        timeout_ms: be_i32(d, 8).ok_or(bad("no timeout"))?,
                    },
                    Sender::Leader => M::RevalidateReply {
                        session_id,
                        valid: *d.get(8).ok_or(bad("no validity flag"))? != 0,
                    },
                }
            }
            PacketType::Sync => M::Sync,
            PacketType::CommitAndActivate => M::CommitAndActivate {
                zxid,
                designated_leader: ServerId(be_i64(data()?, 0).ok_or(bad("no leader sid"))?),
            },
            PacketType::InformAndActivate => {
                let d = data()?;
                M::InformAndActivate {
                    zxid,
                    designated_leader: ServerId(be_i64(d, 0).ok_or(bad("no leader sid"))?),
                    entry: decode_entry(&d[8..], "INFORMANDACTIVATE txn")?,
                }
            }
            PacketType::NewLeader => M::NewLeader {
                zxid,
                config: p.data.clone(),
            },
            PacketType::FollowerInfo | PacketType::ObserverInfo => {
                let info = LearnerInfo::decode(data()?).map_err(|_| bad("shorter than a sid"))?;
                if t == PacketType::FollowerInfo {
                    M::FollowerInfo { zxid, info }
                } else {
                    M::ObserverInfo { zxid, info }
                }
            }
            PacketType::UpToDate => M::UpToDate,
            PacketType::Diff => M::Diff { zxid },
            PacketType::Trunc => M::Trunc { zxid },
            PacketType::Snap => M::Snap { zxid },
            PacketType::LeaderInfo => M::LeaderInfo {
                zxid,
                protocol_version: be_i32(data()?, 0).ok_or(bad("no protocol version"))?,
            },
            PacketType::AckEpoch => {
                let epoch = be_i32(data()?, 0).ok_or(bad("no epoch"))?;
                M::AckEpoch {
                    zxid,
                    current_epoch: (epoch != -1).then_some(Epoch(i64::from(epoch))),
                }
            }
            PacketType::Unknown(code) => return Err(WireError::UnknownPacketType(code)),
        })
    }

    /// The packet Java would write for this message.
    pub fn to_packet(&self) -> QuorumPacket {
        use QuorumMessage as M;
        let t = self.packet_type();
        let with = |zxid: Zxid, data: Vec<u8>| QuorumPacket {
            ptype: t,
            zxid,
            data: Some(data),
            authinfo: None,
        };
        match self {
            M::Request(r) => {
                let mut d = Vec::with_capacity(16 + r.body.len());
                d.extend_from_slice(&r.session_id.to_be_bytes());
                d.extend_from_slice(&r.cxid.to_be_bytes());
                d.extend_from_slice(&r.op.to_be_bytes());
                d.extend_from_slice(&r.body);
                QuorumPacket {
                    authinfo: r.authinfo.clone(),
                    ..with(Zxid::NONE, d)
                }
            }
            M::Proposal { zxid, entry } | M::Inform { zxid, entry } => {
                with(*zxid, encode_entry(entry, Vec::new()))
            }
            M::Ack { zxid }
            | M::Commit { zxid }
            | M::Ping { zxid }
            | M::Diff { zxid }
            | M::Trunc { zxid }
            | M::Snap { zxid } => QuorumPacket::bare(t, *zxid),
            M::PingReply { zxid, touches } => {
                let mut d = Vec::with_capacity(touches.len() * 12);
                for s in touches {
                    d.extend_from_slice(&s.session_id.to_be_bytes());
                    d.extend_from_slice(&s.timeout_ms.to_be_bytes());
                }
                with(*zxid, d)
            }
            M::Revalidate {
                session_id,
                timeout_ms,
            } => {
                let mut d = session_id.to_be_bytes().to_vec();
                d.extend_from_slice(&timeout_ms.to_be_bytes());
                with(Zxid::NONE, d)
            }
            M::RevalidateReply { session_id, valid } => {
                let mut d = session_id.to_be_bytes().to_vec();
                d.push(u8::from(*valid));
                with(Zxid::NONE, d)
            }
            M::Sync => QuorumPacket::bare(t, Zxid::ZERO),
            M::UpToDate => QuorumPacket::bare(t, Zxid::NONE),
            M::CommitAndActivate {
                zxid,
                designated_leader,
            } => with(*zxid, designated_leader.0.to_be_bytes().to_vec()),
            M::InformAndActivate {
                zxid,
                designated_leader,
                entry,
            } => with(
                *zxid,
                encode_entry(entry, designated_leader.0.to_be_bytes().to_vec()),
            ),
            M::NewLeader { zxid, config } => QuorumPacket {
                data: config.clone(),
                ..QuorumPacket::bare(t, *zxid)
            },
            M::FollowerInfo { zxid, info } | M::ObserverInfo { zxid, info } => {
                let mut d = Vec::with_capacity(20);
                info.encode(&mut d);
                with(*zxid, d)
            }
            M::LeaderInfo {
                zxid,
                protocol_version,
            } => with(*zxid, protocol_version.to_be_bytes().to_vec()),
            M::AckEpoch {
                zxid,
                current_epoch,
            } => {
                // Java truncates the epoch to an int here; epochs live in 32 bits of a zxid.
                let e = current_epoch.map_or(-1, |e| e.0 as i32);
                with(*zxid, e.to_be_bytes().to_vec())
            }
        }
    }
}

fn decode_entry(bytes: &[u8], context: &'static str) -> Result<TxnEntry, WireError> {
    TxnEntry::decode(bytes).map_err(WireError::record(context))
}

fn encode_entry(entry: &TxnEntry, prefix: Vec<u8>) -> Vec<u8> {
    let mut w = Writer::with_buf(prefix);
    entry.encode(&mut w);
    w.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zooid_proto::{Txn, TxnDigest, TxnHeader};

    fn round_trip(m: QuorumMessage, from: Sender) {
        let p = m.to_packet();
        let bytes = p.to_bytes();
        let (back, used) = QuorumPacket::decode(&bytes, &Default::default())
            .unwrap()
            .unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(QuorumMessage::decode(&back, from).unwrap(), m);
    }

    fn entry() -> TxnEntry {
        TxnEntry {
            header: TxnHeader {
                session_id: 0x100000f731f0000,
                cxid: 0,
                zxid: 0x1_0000_0001,
                time_ms: 1_700_000_000_000,
                op: OpCode::CreateSession.code(),
            },
            txn: Txn::CreateSession { timeout_ms: 10000 },
            digest: Some(TxnDigest {
                version: 2,
                tree_digest: 1371985504,
            }),
        }
    }

    #[test]
    fn every_message_round_trips() {
        let z = Zxid(0x1_0000_0005);
        let e0 = Zxid::epoch_start(Epoch(1));
        for (m, from) in [
            (
                QuorumMessage::Request(ForwardedRequest {
                    session_id: 7,
                    cxid: 1,
                    op: 1,
                    body: vec![0, 0, 0, 2, b'/', b'q'],
                    authinfo: Some(vec![Id::new("ip", "127.0.0.1")]),
                }),
                Sender::Learner,
            ),
            (
                QuorumMessage::Proposal {
                    zxid: z,
                    entry: entry(),
                },
                Sender::Leader,
            ),
            (QuorumMessage::Ack { zxid: z }, Sender::Learner),
            (QuorumMessage::Commit { zxid: z }, Sender::Leader),
            (QuorumMessage::Ping { zxid: z }, Sender::Leader),
            (
                QuorumMessage::PingReply {
                    zxid: z,
                    touches: vec![SessionTouch {
                        session_id: 9,
                        timeout_ms: 10000,
                    }],
                },
                Sender::Learner,
            ),
            (
                QuorumMessage::Revalidate {
                    session_id: 9,
                    timeout_ms: 4000,
                },
                Sender::Learner,
            ),
            (
                QuorumMessage::RevalidateReply {
                    session_id: 9,
                    valid: true,
                },
                Sender::Leader,
            ),
            (QuorumMessage::Sync, Sender::Leader),
            (
                QuorumMessage::Inform {
                    zxid: z,
                    entry: entry(),
                },
                Sender::Leader,
            ),
            (
                QuorumMessage::CommitAndActivate {
                    zxid: z,
                    designated_leader: ServerId(2),
                },
                Sender::Leader,
            ),
            (
                QuorumMessage::NewLeader {
                    zxid: e0,
                    config: Some(b"version=0".to_vec()),
                },
                Sender::Leader,
            ),
            (
                QuorumMessage::NewLeader {
                    zxid: e0,
                    config: None,
                },
                Sender::Leader,
            ),
            (
                QuorumMessage::FollowerInfo {
                    zxid: Zxid::ZERO,
                    info: LearnerInfo::new(ServerId(1), 0),
                },
                Sender::Learner,
            ),
            (QuorumMessage::UpToDate, Sender::Leader),
            (QuorumMessage::Diff { zxid: z }, Sender::Leader),
            (QuorumMessage::Trunc { zxid: z }, Sender::Leader),
            (QuorumMessage::Snap { zxid: z }, Sender::Leader),
            (
                QuorumMessage::ObserverInfo {
                    zxid: e0,
                    info: LearnerInfo {
                        sid: ServerId(4),
                        protocol_version: None,
                        config_version: None,
                    },
                },
                Sender::Learner,
            ),
            (
                QuorumMessage::LeaderInfo {
                    zxid: e0,
                    protocol_version: ZAB_PROTOCOL_VERSION,
                },
                Sender::Leader,
            ),
            (
                QuorumMessage::AckEpoch {
                    zxid: z,
                    current_epoch: None,
                },
                Sender::Learner,
            ),
            (
                QuorumMessage::AckEpoch {
                    zxid: z,
                    current_epoch: Some(Epoch(1)),
                },
                Sender::Learner,
            ),
            (
                QuorumMessage::InformAndActivate {
                    zxid: z,
                    designated_leader: ServerId(3),
                    entry: entry(),
                },
                Sender::Leader,
            ),
        ] {
            round_trip(m, from);
        }
    }

    #[test]
    fn fixed_fields_match_java() {
        let p = QuorumMessage::UpToDate.to_packet();
        assert_eq!((p.zxid, p.data, p.authinfo), (Zxid::NONE, None, None));
        assert_eq!(QuorumMessage::Sync.to_packet().zxid, Zxid::ZERO);
        // A learner's idle PING carries an empty buffer, not null.
        let p = QuorumMessage::PingReply {
            zxid: Zxid(1),
            touches: vec![],
        }
        .to_packet();
        assert_eq!(p.data, Some(vec![]));
    }

    #[test]
    fn malformed_payloads_are_typed_errors() {
        let pkt = |t, data: Option<Vec<u8>>| QuorumPacket {
            ptype: t,
            zxid: Zxid(1),
            data,
            authinfo: None,
        };
        for (p, from) in [
            (pkt(PacketType::Request, Some(vec![0; 15])), Sender::Learner),
            (pkt(PacketType::Request, None), Sender::Learner),
            (pkt(PacketType::Proposal, None), Sender::Leader),
            (pkt(PacketType::Proposal, Some(vec![0; 31])), Sender::Leader),
            (
                pkt(PacketType::Inform, Some(vec![0x7f; 40])),
                Sender::Leader,
            ),
            (pkt(PacketType::Ping, Some(vec![0; 13])), Sender::Learner),
            (
                pkt(PacketType::Revalidate, Some(vec![0; 11])),
                Sender::Learner,
            ),
            (
                pkt(PacketType::Revalidate, Some(vec![0; 8])),
                Sender::Leader,
            ),
            (
                pkt(PacketType::CommitAndActivate, Some(vec![0; 7])),
                Sender::Leader,
            ),
            (
                pkt(PacketType::InformAndActivate, Some(vec![0; 8])),
                Sender::Leader,
            ),
            (
                pkt(PacketType::FollowerInfo, Some(vec![0; 7])),
                Sender::Learner,
            ),
            (pkt(PacketType::ObserverInfo, None), Sender::Learner),
            (
                pkt(PacketType::LeaderInfo, Some(vec![0; 3])),
                Sender::Leader,
            ),
            (pkt(PacketType::AckEpoch, None), Sender::Learner),
            (pkt(PacketType::Unknown(42), None), Sender::Leader),
        ] {
            assert!(QuorumMessage::decode(&p, from).is_err(), "{p:?}");
        }
        // Old learners: LearnerInfo with only a sid, or sid + protocol version.
        let info = LearnerInfo::decode(&[0, 0, 0, 0, 0, 0, 0, 5, 0, 1, 0, 0]).unwrap();
        assert_eq!(info.sid, ServerId(5));
        assert_eq!(info.protocol_version, Some(ZAB_PROTOCOL_VERSION));
        assert_eq!(info.config_version, None);
    }
}
