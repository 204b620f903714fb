//! Start-up: rebuild the tree from the newest valid snapshot plus the txn log after it.
//!
//! Snapshots ZooKeeper writes are fuzzy (taken while txns were applied), so replay starts at
//! the snapshot's zxid + 1 and tolerates what `DataTree::apply` reports as NODEEXISTS or
//! NONODE, exactly as ZooKeeper does. A torn last record is cut off; damage anywhere else
//! stops start-up with the file and offset. Each replayed txn's recorded tree digest is
//! compared with the tree's, from the point the snapshot's own digest refers to.

use std::path::{Path, PathBuf};

use thiserror::Error;
use zooid_proto::{Txn, TxnEntry};
use zooid_tree::DataTree;

use crate::snapshot::{self, SnapError};
use crate::txnlog::{self, LogError, TornTail};

#[derive(Debug, Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Snapshot(#[from] SnapError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("{dir}: the txn log resumes at zxid {first:#x} but the snapshot ends at {snapshot:#x}; the log files in between are missing. Restore them, or start from a backup of this dataDir")]
    Gap {
        dir: PathBuf,
        snapshot: i64,
        first: i64,
    },
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What start-up found.
#[derive(Debug)]
pub struct Recovered {
    pub tree: DataTree,
    /// The snapshot loaded, if any (zxid, file).
    pub snapshot: Option<(i64, PathBuf)>,
    /// Snapshots passed over as damaged, with the reason.
    pub skipped_snapshots: Vec<(PathBuf, String)>,
    /// Txns replayed from the log.
    pub replayed: usize,
    /// A torn last record that was cut off.
    pub torn: Option<TornTail>,
    /// Txns whose recorded digest differs from the replayed tree's.
    pub digest_mismatches: usize,
    /// The layout of the snapshot loaded (ZooKeeper 3.8's if none was).
    pub layout: snapshot::Layout,
}

/// The `version-2` directory of `dir`: `dir` itself if it is one, else the one under it.
/// Nothing is created.
pub fn version_dir_of(dir: &Path) -> PathBuf {
    if dir.ends_with("version-2") {
        dir.to_owned()
    } else {
        dir.join("version-2")
    }
}

/// The `version-2` directory under a data directory, created if missing.
pub fn version_dir(base: &Path) -> Result<PathBuf, RecoveryError> {
    let dir = base.join("version-2");
    std::fs::create_dir_all(&dir).map_err(|source| RecoveryError::CreateDir {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// Load the state kept in `snap_dir` and `log_dir` (both `version-2` directories), cutting
/// off a torn last record so appends can continue.
pub fn recover(snap_dir: &Path, log_dir: &Path) -> Result<Recovered, RecoveryError> {
    load(snap_dir, log_dir, true)
}

/// The same load without changing anything on disk (`zooid datadir check`).
pub fn check(snap_dir: &Path, log_dir: &Path) -> Result<Recovered, RecoveryError> {
    load(snap_dir, log_dir, false)
}

fn load(snap_dir: &Path, log_dir: &Path, repair: bool) -> Result<Recovered, RecoveryError> {
    let (snap, skipped_snapshots) = snapshot::load_latest(snap_dir)?;
    let layout = snap.as_ref().map_or_else(Default::default, |s| s.layout);
    let (mut tree, snap_zxid, snap_digest, snapshot) = match snap {
        Some(s) => {
            let path = snapshot::snapshot_files(snap_dir)?
                .into_iter()
                .find(|(z, _)| *z == s.zxid)
                .map(|(_, p)| p)
                .unwrap_or_default();
            (s.tree, s.zxid, s.digest, Some((s.zxid, path)))
        }
        None => (DataTree::new(), 0, None, None),
    };
    tree.set_last_zxid(tree.last_zxid().max(snap_zxid));
    let read = txnlog::read_log(log_dir, snap_zxid)?;
    if let Some(first) = read
        .entries
        .iter()
        .map(|e| e.header.zxid)
        .find(|z| *z > snap_zxid)
    {
        // A new epoch restarts the counter at 1; anything else after a hole means lost txns.
        let new_epoch_start = first & 0xffff_ffff == 1 && (first >> 32) > (snap_zxid >> 32);
        if first > snap_zxid + 1 && !new_epoch_start {
            return Err(RecoveryError::Gap {
                dir: log_dir.to_owned(),
                snapshot: snap_zxid,
                first,
            });
        }
    }
    let mut replayed = 0;
    let mut digest_mismatches = 0;
    // With a fuzzy snapshot the tree matches recorded digests only from the txn its digest
    // section names onwards.
    let mut checking = match snap_digest {
        Some((dz, d)) if dz == snap_zxid => {
            if tree.digest() != d {
                digest_mismatches += 1;
                tracing::warn!(
                    zxid = format_args!("{dz:#x}"),
                    stored = d,
                    computed = tree.digest(),
                    "snapshot digest mismatch"
                );
            }
            true
        }
        Some((dz, _)) => dz <= snap_zxid,
        None => true,
    };
    for TxnEntry {
        header,
        txn,
        digest,
    } in read.entries
    {
        if header.zxid <= snap_zxid {
            continue;
        }
        tree.apply(&header, &txn);
        replayed += 1;
        if let Some((dz, d)) = snap_digest {
            if !checking && header.zxid == dz {
                checking = true;
                if tree.digest() != d {
                    digest_mismatches += 1;
                }
                continue;
            }
        }
        if let (true, Some(d)) = (checking, digest) {
            if tree.digest() != d.tree_digest && !matches!(txn, Txn::Error { .. }) {
                digest_mismatches += 1;
                tracing::warn!(
                    zxid = format_args!("{:#x}", header.zxid),
                    recorded = d.tree_digest,
                    computed = tree.digest(),
                    "digest mismatch on replay"
                );
            }
        }
    }
    if let (true, Some(t)) = (repair, &read.torn) {
        tracing::warn!(file = %t.path.display(), offset = t.offset, reason = %t.reason, "cutting off a torn last txn (a crash interrupted its write; it was never acknowledged)");
        txnlog::truncate_torn_tail(t)?;
    }
    Ok(Recovered {
        tree,
        snapshot,
        skipped_snapshots,
        replayed,
        torn: read.torn,
        digest_mismatches,
        layout,
    })
}
