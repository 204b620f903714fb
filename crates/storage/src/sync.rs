//! Storage for Zab's sync (`zab.md` §5): the stream a leader writes after SNAP, the snapshot a
//! learner keeps of one it received, the snapshots a TRUNC makes obsolete, and the committed
//! txns a leader reads back from its log to DIFF a learner its memory no longer covers.
//!
//! ```text
//! SNAP body   int sessionCount   { long sessionId; int timeoutMs }*
//!             int aclCount       { long ref; vector<ACL> acls }*
//!             { ustring path; buffer data; long aclRef; StatPersisted }*   pre-order, root ""
//!             ustring "/"        end of nodes
//!           ( ustring "BenWasHere", written and checked by the caller )
//! ```
//!
//! The body is a snapshot stream without its 16-byte FileHeader, seals and digest section, so
//! both directions go through the snapshot encoder and decoder.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use zooid_proto::TxnEntry;
use zooid_tree::DataTree;

use crate::snapshot::{self, Layout, SnapError, Tail};
use crate::txnlog;

/// FileHeader: magic, version, dbid.
const HEADER_LEN: usize = 4 + 4 + 8;
/// A seal: the Adler32 in a long, then ustring "/".
const SEAL_LEN: usize = 8 + 4 + 1;
/// The digest section: zxid, version, digest.
const DIGEST_LEN: usize = 8 + 4 + 8;
/// What follows the end-of-nodes "/" in a snapshot stream.
const TRAILER_LEN: usize = SEAL_LEN + DIGEST_LEN + SEAL_LEN;

/// The body a 3.8 leader writes after SNAP (`ZKDatabase.serializeSnapshot`), without the
/// signature.
pub fn sync_stream_body(tree: &DataTree) -> Vec<u8> {
    snapshot::tree_body(tree)
}

/// Keep the body of a SNAP stream received for `zxid` as a plain `snapshot.<zxid>` in
/// `snap_dir`, written atomically and fsynced as [`snapshot::write_snapshot`] does, and return
/// its path and tree (last zxid `zxid`), the tree [`snapshot::read_snapshot`] gives for it.
///
/// The digest section is ZooKeeper's (0, 2, 0) placeholder, as a Java learner writes it here:
/// the leader serializes its tree while it commits, so the tree may hold txns after `zxid`
/// and its digest belongs to no zxid known. The body is decoded in full, from an in-memory
/// copy framed as a snapshot, before anything is written; a malformed one is
/// [`SnapError::SyncStream`].
pub fn write_sync_snapshot(
    snap_dir: &Path,
    body: &[u8],
    zxid: i64,
    layout: Layout,
) -> Result<(PathBuf, DataTree), SnapError> {
    let (stream, tree) = frame_sync_snapshot(body, zxid, layout)?;
    let path = snapshot::write_file(snap_dir, zxid, "", true, |w| w.write_all(&stream))?;
    Ok((path, tree))
}

/// The snapshot file [`write_sync_snapshot`] writes for a SNAP body, and its tree, without
/// touching the disk (the simulator keeps the bytes on its simulated one).
pub fn frame_sync_snapshot(
    body: &[u8],
    zxid: i64,
    layout: Layout,
) -> Result<(Vec<u8>, DataTree), SnapError> {
    if zxid < 0 {
        return Err(SnapError::BadZxid { zxid });
    }
    let mut stream = Vec::with_capacity(HEADER_LEN + body.len() + TRAILER_LEN);
    snapshot::encode_around(body, None, Tail::new(layout, zxid), &mut stream)
        .expect("Vec<u8> accepts every write");
    let snap = snapshot::decode_stream(&stream, Path::new("SNAP stream"), zxid)
        .map_err(|e| malformed(e, zxid, body.len()))?;
    Ok((stream, snap.tree))
}

/// A decoding error of the framed stream, told in positions of the body.
fn malformed(e: SnapError, zxid: i64, body_len: usize) -> SnapError {
    let SnapError::Corrupt { offset, reason, .. } = e else {
        return e;
    };
    let end = (HEADER_LEN + body_len) as u64;
    // The seals cover exactly the body, so a seal found inside it is where the nodes ended.
    let reason = if offset < end && reason.starts_with("checksum #1") {
        format!(
            "{} bytes follow the end-of-nodes marker \"/\"",
            end - offset
        )
    } else {
        reason
    };
    SnapError::SyncStream {
        zxid,
        offset: offset
            .saturating_sub(HEADER_LEN as u64)
            .min(body_len as u64),
        reason,
    }
}

/// Delete every snapshot (any compression) named after a zxid above `zxid`: after a TRUNC to
/// `zxid` they describe a history that no longer exists. Returns what was removed.
pub fn remove_snapshots_above(snap_dir: &Path, zxid: i64) -> Result<Vec<PathBuf>, SnapError> {
    let mut removed = Vec::new();
    for (_, path) in snapshot::snapshot_files(snap_dir)?
        .into_iter()
        .filter(|(z, _)| *z > zxid)
    {
        match fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            // Purged meanwhile.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(SnapError::Io { path, source }),
        }
    }
    if !removed.is_empty() {
        snapshot::sync_dir(snap_dir).map_err(|source| SnapError::Io {
            path: snap_dir.to_owned(),
            source,
        })?;
    }
    Ok(removed)
}

/// The txns with `from <= zxid <= to` in the txn log in `log_dir`, in order and starting with
/// `from` itself (`zab.md` §5.2 rule 5); they end early where the log does. `None` (the leader
/// sends SNAP) if `from` is not in the log, if a txn in the range does not follow the one before
/// (next counter, or counter 1 of a later epoch), if the log cannot be read, or if the log files
/// read total more than `max_bytes` (ZooKeeper: `snapshotSizeFactor` 0.33 x the newest snapshot
/// file's size, preallocation included; unlike ZooKeeper a budget of 0 allows nothing).
pub fn committed_range(
    log_dir: &Path,
    from: i64,
    to: i64,
    max_bytes: u64,
) -> Option<Vec<TxnEntry>> {
    if from <= 0 || to < from {
        return None;
    }
    let after = from - 1;
    let files = match txnlog::log_files(log_dir) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the txn log to sync a learner; sending a snapshot");
            return None;
        }
    };
    let mut size = 0u64;
    for (_, path) in txnlog::files_for_replay(&files, after) {
        size = size.saturating_add(fs::metadata(path).ok()?.len());
    }
    if size > max_bytes {
        tracing::debug!(
            size,
            max_bytes,
            "the txn log to read exceeds the sync budget; sending a snapshot"
        );
        return None;
    }
    let read = match txnlog::read_log(log_dir, after) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the txn log to sync a learner; sending a snapshot");
            return None;
        }
    };
    let mut out: Vec<TxnEntry> = Vec::new();
    for entry in read.entries {
        let zxid = entry.header.zxid;
        if zxid > to {
            break;
        }
        let in_order = match out.last() {
            None => zxid == from,
            Some(prev) => follows(prev.header.zxid, zxid),
        };
        if !in_order {
            return None;
        }
        out.push(entry);
    }
    (!out.is_empty()).then_some(out)
}

/// Whether `next` is the txn right after `prev`: the next counter, or the first of a later
/// epoch.
fn follows(prev: i64, next: i64) -> bool {
    next == prev.wrapping_add(1) || (next & 0xffff_ffff == 1 && (next >> 32) > (prev >> 32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_the_body_gives_the_snapshot_stream() {
        let tree = DataTree::new();
        let body = sync_stream_body(&tree);
        let mut framed = Vec::new();
        snapshot::encode_around(&body, None, Tail::None, &mut framed).unwrap();
        assert_eq!(framed, snapshot::encode_snapshot(&tree, None));
        // Java's empty tree: 0 sessions, 1 ACL list, 4 nodes, then "/" (snapshot.0 0x010..0x19a).
        assert_eq!(body.len(), 0x19b - HEADER_LEN);
        assert_eq!(body[..8], [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(body[body.len() - 5..], [0, 0, 0, 1, b'/']);
    }

    #[test]
    fn bytes_after_the_end_marker_are_named() {
        let mut body = sync_stream_body(&DataTree::new());
        body.extend_from_slice(b"junk");
        let dir = std::env::temp_dir().join("zooid-sync-unit-does-not-exist");
        match write_sync_snapshot(&dir, &body, 1, Layout::Zk38) {
            Err(SnapError::SyncStream {
                zxid: 1,
                offset,
                reason,
            }) => {
                assert_eq!(offset as usize, body.len() - 4);
                assert_eq!(reason, "4 bytes follow the end-of-nodes marker \"/\"");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn succession_allows_epoch_starts_only() {
        assert!(follows(0x1_0000_0004, 0x1_0000_0005));
        assert!(follows(0x1_0000_0012, 0x2_0000_0001));
        assert!(follows(0x1_0000_0012, 0x5_0000_0001));
        assert!(!follows(0x1_0000_0004, 0x1_0000_0006));
        assert!(!follows(0x1_0000_0004, 0x1_0000_0004));
        assert!(!follows(0x1_0000_0012, 0x2_0000_0002));
        assert!(!follows(0x2_0000_0012, 0x1_0000_0001));
    }
}
