//! [`WireError`]: every way bytes from a peer can be refused. Decoders return it instead of
//! panicking; the caller drops the message or closes the connection as the variant's doc says
//! ZooKeeper would. "Not enough bytes yet" is never an error: the incremental decoders report
//! it as a separate outcome.
//!
//! [`ZabError`]: every way a well-formed message can break the Zab protocol (the learner then
//! drops the connection and looks again), and every reason a leader refuses a proposal.

use thiserror::Error;

use crate::ids::{Epoch, Zxid};
use crate::packet::PacketType;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WireError {
    /// A jute record inside a payload is malformed (truncated, bad UTF-8, unknown txn type).
    #[error("bad record in {context}: {source}")]
    Record {
        context: &'static str,
        #[source]
        source: zooid_proto::DecodeError,
    },

    // ---- election port ----
    /// The first `long` of an election connection is negative but neither V1 nor V2.
    /// Java closes the socket.
    #[error("unknown election protocol version {0}")]
    BadProtocolVersion(i64),
    /// The initial message's address length is outside 1..=2048. Java closes the socket.
    #[error("initial message address length {len} is outside 1..={max}")]
    BadAddressLength { len: i32, max: usize },
    /// The initial message's address is not UTF-8.
    #[error("initial message address is not UTF-8")]
    BadAddressText,
    /// A config text that [`crate::config_text::parse`] cannot read.
    #[error("config text: {0}")]
    BadConfigText(&'static str),
    /// An election frame length outside 1..=524288. Java closes the connection.
    #[error("election frame length {len} is outside 1..={max}")]
    BadFrameLength { len: i32, max: usize },
    /// A notification shorter than 28 bytes, or one whose declared layout needs more bytes than
    /// the frame holds. Java drops the message and keeps the connection.
    #[error("notification of {len} bytes is too short for its layout")]
    NotificationTooShort { len: usize },
    /// A notification's config length is negative or exceeds the frame. Java drops the message.
    #[error("notification config length {len} does not fit a {frame}-byte frame")]
    BadConfigLength { len: i32, frame: usize },
    /// A notification state outside 0..=3. Java ignores the message.
    #[error("unknown peer state {0}")]
    UnknownPeerState(i32),

    // ---- quorum port ----
    /// A buffer or string length above `jute.maxbuffer + extrasize` ("Unreasonable length").
    #[error("field length {len} at offset {offset} exceeds the limit {max}")]
    FieldTooLong { offset: usize, len: i64, max: usize },
    /// A negative length other than -1 (null).
    #[error("negative length {len} at offset {offset}")]
    NegativeLength { offset: usize, len: i32 },
    /// A null where the record needs a value (an authinfo `Id` string, a snapshot path).
    #[error("null string at offset {offset}")]
    UnexpectedNull { offset: usize },
    /// A string that is not UTF-8 (authinfo, snapshot paths).
    #[error("string at offset {offset} is not UTF-8")]
    BadUtf8 { offset: usize },
    /// More authinfo entries than the configured limit.
    #[error("{count} authinfo entries exceed the limit {max}")]
    TooManyAuthIds { count: i32, max: usize },
    /// One packet or snapshot item would be larger than the configured limit.
    #[error("a record of at least {len} bytes exceeds the limit {max}")]
    RecordTooLarge { len: usize, max: usize },
    /// The typed layer does not know this packet type (Java logs and ignores it).
    #[error("unknown quorum packet type {0}")]
    UnknownPacketType(i32),
    /// A payload that does not have the shape its packet type requires.
    #[error("{ptype} payload: {reason}")]
    BadPayload {
        ptype: PacketType,
        reason: &'static str,
    },
    /// A negative count in the snapshot stream that follows SNAP.
    #[error("negative {what} count {count} in the snapshot stream")]
    BadSnapshotCount { what: &'static str, count: i32 },
    /// The snapshot stream after SNAP does not end with "BenWasHere".
    #[error("snapshot stream signature is {found:?}, not \"BenWasHere\"")]
    BadSnapshotSignature { found: String },
}

/// A Zab protocol failure ([`crate::Learner`]) or a refused call ([`crate::Leader`]). For a
/// learner every variant means: close the connection to the leader and look again.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ZabError {
    /// LEADERINFO names an epoch below the one we accepted (Java: "Leaders epoch ... is less
    /// than accepted epoch").
    #[error("leader epoch {leader} is below our accepted epoch {accepted}")]
    EpochBehind { leader: Epoch, accepted: Epoch },
    /// A leader that speaks a protocol older than Zab 1.0 (`0x10000`).
    #[error("leader protocol version {0:#x} is older than Zab 1.0")]
    OldProtocol(i32),
    /// A packet the current phase does not allow (Java: exit code 13 or a dropped connection).
    #[error("unexpected {ptype} while {phase}")]
    Unexpected {
        ptype: PacketType,
        phase: &'static str,
    },
    /// A COMMIT that is not for the oldest pending txn (Java exits with code 12,
    /// `UNMATCHED_TXN_COMMIT`).
    #[error("COMMIT {zxid} does not match the next pending txn {pending:?}")]
    UnmatchedCommit { zxid: Zxid, pending: Option<Zxid> },
    /// A PROPOSAL or INFORM whose zxid does not follow the last one received.
    #[error("{ptype} {zxid} does not follow {last}")]
    OutOfOrder {
        ptype: PacketType,
        zxid: Zxid,
        last: Zxid,
    },
    /// A PROPOSAL or INFORM whose packet zxid and txn header zxid differ.
    #[error("{ptype} packet zxid {packet} but txn zxid {txn}")]
    ZxidMismatch {
        ptype: PacketType,
        packet: Zxid,
        txn: Zxid,
    },
    /// NEWLEADER for another epoch than LEADERINFO announced.
    #[error("NEWLEADER {zxid} is not the start of epoch {epoch}")]
    BadNewLeader { zxid: Zxid, epoch: Epoch },
    /// Nothing from the leader for longer than initLimit (before NEWLEADER) or syncLimit.
    #[error("no packet from the leader for {silent_ms} ms")]
    LeaderSilent { silent_ms: u64 },
    /// A learner call that needs UPTODATE first (forwarding, revalidation).
    #[error("the learner is not serving yet")]
    NotServing,
    /// The state machine failed or stepped down earlier; make a new one.
    #[error("the Zab role has stopped")]
    Stopped,
    /// `Leader::propose` before the NEWLEADER quorum.
    #[error("the leader is not established yet")]
    NotEstablished,
    /// `Leader::propose` with a txn whose zxid is not `Leader::next_zxid`.
    #[error("proposal zxid {got}, expected {expected}")]
    WrongZxid { got: Zxid, expected: Zxid },
    /// The zxid counter would reach 0xffffffff: Java forces a new election (and epoch). The
    /// leader has stopped.
    #[error("zxid counter exhausted in epoch {0}; a new election must start a new epoch")]
    ZxidExhausted(Epoch),
}

impl WireError {
    pub(crate) fn record(context: &'static str) -> impl FnOnce(zooid_proto::DecodeError) -> Self {
        move |source| WireError::Record { context, source }
    }
}
