//! zooid's durable state in Apache ZooKeeper's own formats, so a dataDir moves between the
//! two by swapping the binary: the txn log (`version-2/log.<zxid>`), snapshots
//! (`version-2/snapshot.<zxid>`, plain or compressed), and the checksums both use. File
//! names carry zxids in lower-case hex without padding, as ZooKeeper writes them.

pub mod checksum;
pub mod purge;
pub mod recovery;
pub mod snapshot;
pub mod sync;
pub mod txnlog;
