//! Purging old snapshots and logs (`autopurge.*`, `zooid cleanup -n N`), keeping what
//! recovery needs: the newest `retain` snapshots, every log holding txns after the oldest of
//! them, and the newest log that starts at or before it (it holds the txns that follow).

use std::path::{Path, PathBuf};

use crate::snapshot::{self, SnapError};
use crate::txnlog::{self, LogError};

#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error(transparent)]
    Snapshot(#[from] SnapError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("cannot remove {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Delete snapshots beyond the newest `retain` (at least 3, as ZooKeeper insists) and the
/// logs no retained snapshot needs. Returns the files removed.
pub fn purge(snap_dir: &Path, log_dir: &Path, retain: usize) -> Result<Vec<PathBuf>, PurgeError> {
    let retain = retain.max(3);
    let snaps = snapshot::snapshot_files(snap_dir)?; // newest first
    if snaps.len() <= retain {
        return Ok(Vec::new());
    }
    let oldest_kept = snaps[retain - 1].0;
    // Background snapshots are written without fsync: make the ones kept durable before
    // deleting what recovery would otherwise fall back on.
    for (_, path) in &snaps[..retain] {
        snapshot::make_durable(path)?;
    }
    let mut doomed: Vec<PathBuf> = snaps[retain..].iter().map(|(_, p)| p.clone()).collect();
    let logs = txnlog::log_files(log_dir)?; // oldest first
                                            // The newest log starting at or before the oldest kept snapshot stays.
    let keep_from = logs
        .iter()
        .filter(|(z, _)| *z <= oldest_kept)
        .map(|(z, _)| *z)
        .max()
        .unwrap_or(i64::MIN);
    doomed.extend(
        logs.iter()
            .filter(|(z, _)| *z < keep_from)
            .map(|(_, p)| p.clone()),
    );
    for p in &doomed {
        std::fs::remove_file(p).map_err(|source| PurgeError::Remove {
            path: p.clone(),
            source,
        })?;
    }
    Ok(doomed)
}
