//! ZooKeeper 3.8's quorum protocols for zooid, sans-IO: what peers say to each other on the
//! election port and on the quorum (Zab) port, byte-compatible with Java members.
//!
//! ```text
//! election port (election.rs)             quorum port (packet.rs, message.rs)
//!   InitialMessage (once, connecting side)  QuorumPacket QuorumPacket ...   no length prefix
//!   [int32 len][Notification] ...           after SNAP: raw snapshot items + "BenWasHere"
//! ```
//!
//! Fast Leader Election itself is a sans-IO state machine ([`Election`], `fle.rs`), and so are
//! the Zab roles that follow it: [`Leader`] (`leader.rs`: discovery, per-learner sync, broadcast)
//! and [`Learner`] (`learner.rs`: follower or observer), with the DIFF/TRUNC/SNAP decision in
//! `sync.rs` and the quorum and timers in `quorum.rs`.
//!
//! The crate owns the codecs, the id types ([`Zxid`], [`Epoch`], [`Round`], [`ServerId`]), the
//! vote order and the QuorumVerifier text. It does no IO, reads no clock, and does not look
//! inside txns beyond decoding them with `zooid-proto`. Decoders never panic on hostile bytes:
//! they return [`WireError`], or "need more" when the bytes may still become valid. Facts come
//! from ZooKeeper 3.8's election and Zab wire formats, checked against a capture of a Java ensemble
//! (`tests/capture.rs`).

pub mod config_text;
pub mod election;
pub mod error;
pub mod fle;
pub mod ids;
pub mod leader;
pub mod learner;
pub mod message;
pub mod packet;
pub mod quorum;
pub mod sync;
pub mod vote;

#[cfg(test)]
mod testkit;

pub use config_text::ConfigMember;
pub use election::{InitialMessage, Notification, NotificationFormat, PeerState};
pub use error::{WireError, ZabError};
pub use fle::{DecidedBy, Election, ElectionConfig, ElectionConfigError, Output, Role};
pub use ids::{connection_owner, Epoch, Round, ServerId, Zxid};
pub use leader::{
    CloseReason, ConnId, Leader, LeaderConfig, LeaderPhase, LeaderStart, Output as LeaderOutput,
    StepDownReason, DEFAULT_COMMIT_LOG_COUNT,
};
pub use learner::{
    Action as LearnerAction, Learner, LearnerConfig, LearnerKind, LearnerPhase, LearnerStart,
};
pub use message::{ForwardedRequest, LearnerInfo, QuorumMessage, SessionTouch};
pub use packet::{
    Decoded, PacketType, QuorumDecoder, QuorumLimits, QuorumPacket, Sender, SnapshotSummary,
};
pub use quorum::{QuorumVerifier, Timing};
pub use sync::{plan_sync, NoTxnLog, SyncPlan, SyncSource, SyncStart, TxnLogReader};
pub use vote::{total_order, Vote};
