//! [`WireError`]: every way bytes from a peer can be refused. Decoders return it instead of
//! panicking; the caller drops the message or closes the connection as the variant's doc says
//! ZooKeeper would. "Not enough bytes yet" is never an error: the incremental decoders report
//! it as a separate outcome.

use thiserror::Error;

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

impl WireError {
    pub(crate) fn record(context: &'static str) -> impl FnOnce(zooid_proto::DecodeError) -> Self {
        move |source| WireError::Record { context, source }
    }
}
