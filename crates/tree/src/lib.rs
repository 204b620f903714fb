//! The znode tree of zooid: nodes with ZooKeeper's Stat bookkeeping, the ACL cache and checks,
//! ephemeral / container / TTL indexes, quota statistics, the watch table and the tree digest.
//! [`DataTree::apply`] is the single path by which state changes; it knows nothing of
//! connections and reports fired watches as data.

pub mod acl;
pub mod children;
pub mod data;
pub mod javaset;
pub mod tree;
pub mod watch;

pub use acl::{AclCache, AclRef, OPEN_ACL_REF};
pub use children::Children;
pub use data::Data;
pub use javaset::JavaHashSet;
pub use tree::{
    digest_prefix, digest_with_stat, join, node_digest, Applied, DataTree, FrozenNodes, Node,
    Owner, QuotaExceeded, QuotaStats, StatPersisted, TxnResult, CONFIG_NODE, LIMIT_NODE,
    QUOTA_ROOT, STAT_NODE,
};
pub use watch::{parent_of, Fired, SessionId, WatchKind, WatchTable};
