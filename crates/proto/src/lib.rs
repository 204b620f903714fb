//! ZooKeeper 3.8 wire vocabulary for zooid: the jute codec, the client-protocol records, the
//! decoded request enum, the txn records shared by the log and the quorum, and frame
//! splitting. This crate does no IO and depends on nothing else in the workspace.

pub mod consts;
pub mod frame;
pub mod jute;
pub mod records;
pub mod request;
pub mod timefmt;
pub mod txn;

pub use consts::*;
pub use jute::{DecodeError, Reader, Record, Writer};
pub use records::*;
pub use request::{CreateRequest, MultiOp, ReadOp, Request, SetWatches};
pub use txn::{CreateKind, Txn, TxnDigest, TxnEntry, TxnHeader};
