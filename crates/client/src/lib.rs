//! A ZooKeeper client for zooid: a sans-IO protocol core ([`core`]), a small tokio connection
//! around it ([`conn`]), the `zooid bench` load generator ([`bench`]), and the zkCli-compatible
//! shell `zooid cli` ([`shell`]). It speaks the ZooKeeper 3.8 client protocol, so it loads
//! Apache ZooKeeper and zooid alike.

pub mod bench;
pub mod conn;
pub mod core;
pub mod histogram;
pub mod procstat;
pub mod shell;

pub use conn::{Connection, PendingReply, Reply};
pub use core::{ClientCore, ClientError, Event, ReplyRef, Session};
pub use histogram::Histogram;
