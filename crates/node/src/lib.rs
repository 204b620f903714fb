//! The zooid server core: sessions, the request pipeline (validate against the tree and the
//! pending view, ACL checks, txn with a zxid), apply on commit, and replies and watch
//! notifications in order. It takes time as an argument and does no IO; the `server` crate
//! drives it.

pub mod auth;
pub mod core;
pub mod path;
pub mod prep;
pub mod sasl;

pub use crate::core::{
    frame_of, notification, Action, ConnId, ConnStats, Core, CoreConfig, Input, Role, ServerStats,
    Tally,
};
