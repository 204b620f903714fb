//! Blocking disk work on threads of its own, so the core never waits on a disk.
//!
//! ```text
//! core task ──ToWriter::Append/Roll──▶ log writer thread ──FromWriter::Persisted(zxid)──▶ core task
//!            ──snapshot bytes──▶ snapshot thread (compress, fsync, rename)
//! ```
//! The log writer takes everything queued since its last fsync, appends it, and fsyncs once:
//! group commit, so one fsync covers as many txns as arrived while the previous one ran.
//! A write or fsync failure is fatal, as in ZooKeeper: nothing is acknowledged after it, and
//! a restart recovers every txn that was (cutting off a partial last record).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use zooid_storage::snapshot::{FinishedSnapshot, IncrementalSnapshot};
use zooid_tree::DataTree;
use zooid_storage::txnlog::TxnLog;

pub enum ToWriter {
    Append {
        zxid: i64,
        entry: Vec<u8>,
    },
    /// Start a new log file with the next append (after a snapshot).
    Roll,
    /// Make everything appended durable, close the file and answer: the caller may now
    /// change the log files (a TRUNC) before appending again.
    Quiesce(mpsc::Sender<Result<(), String>>),
}

pub enum FromWriter {
    /// Every txn up to this zxid is on disk.
    Persisted(i64),
    Failed(String),
    /// How long disk work took, for the metrics.
    Timed(DiskTiming),
}

/// Durations the disk threads report (ZooKeeper's `fsynctime`, `sync_processor_batch_size`
/// and `snapshottime`).
#[derive(Debug, Clone, Copy)]
pub enum DiskTiming {
    /// One group commit: its fsync and the txns it covered.
    Fsync { ms: u64, txns: u64 },
    /// Writing one snapshot file (assemble, compress, fsync, rename).
    Snapshot { ms: u64 },
}

/// Start the log writer thread.
pub fn spawn_log_writer(
    mut log: TxnLog,
    done: UnboundedSender<FromWriter>,
) -> mpsc::Sender<ToWriter> {
    let (tx, rx) = mpsc::channel::<ToWriter>();
    std::thread::Builder::new()
        .name("zooid-txnlog".into())
        .spawn(move || {
            let mut appended = 0u64;
            while let Ok(first) = rx.recv() {
                let mut last = None;
                let mut result = write_one(first, &mut log, &mut last, &mut appended);
                // Everything that queued up while the last fsync ran goes into this one.
                while result.is_ok() {
                    match rx.try_recv() {
                        Ok(msg) => result = write_one(msg, &mut log, &mut last, &mut appended),
                        Err(_) => break,
                    }
                }
                if result.is_ok() && last.is_some() {
                    let started = std::time::Instant::now();
                    result = log.commit().map_err(|e| e.to_string());
                    let timing = DiskTiming::Fsync {
                        ms: started.elapsed().as_millis() as u64,
                        txns: std::mem::take(&mut appended),
                    };
                    let _ = done.send(FromWriter::Timed(timing));
                }
                if let Err(e) = result {
                    let _ = done.send(FromWriter::Failed(e));
                    return;
                }
                if let Some(z) = last {
                    if done.send(FromWriter::Persisted(z)).is_err() {
                        return;
                    }
                }
            }
            let _ = log.commit();
        })
        .expect("spawning the txn log thread");
    tx
}

fn write_one(
    msg: ToWriter,
    log: &mut TxnLog,
    last: &mut Option<i64>,
    appended: &mut u64,
) -> Result<(), String> {
    match msg {
        ToWriter::Append { zxid, entry } => {
            log.append(zxid, &entry).map_err(|e| e.to_string())?;
            *last = Some(zxid);
            *appended += 1;
        }
        ToWriter::Roll => log.roll().map_err(|e| e.to_string())?,
        ToWriter::Quiesce(done) => {
            // The answer says all of it is durable; no Persisted follows for what came before.
            let r = log.roll().map_err(|e| e.to_string());
            *last = None;
            let _ = done.send(r.clone());
            r?
        }
    }
    Ok(())
}

/// Where and how snapshots are written.
#[derive(Clone)]
pub struct SnapshotPlan {
    pub dir: PathBuf,
    pub compression: String,
    /// ZooKeeper's snapCount: a snapshot after between snapCount/2 and snapCount txns.
    pub snap_count: u64,
    /// Snapshots begun so far, so a finished one can tell whether another is under way.
    pub started: Arc<AtomicU64>,
}

impl SnapshotPlan {
    /// Begin a snapshot of `tree` (counted, see [`spawn_snapshot_write`]).
    pub fn start(&self, tree: &DataTree) -> IncrementalSnapshot {
        self.started.fetch_add(1, Ordering::Relaxed);
        IncrementalSnapshot::start(tree)
    }
}

/// How long a written snapshot's memory stays with the allocator before it goes back to the
/// system, in case the next snapshot begins meanwhile and can reuse it.
const TRIM_AFTER: Duration = Duration::from_secs(1);

/// Assemble, compress and write a finished snapshot on a thread of its own; report failures
/// through `done`.
pub fn spawn_snapshot_write(
    plan: &SnapshotPlan,
    snapshot: FinishedSnapshot,
    done: UnboundedSender<FromWriter>,
) {
    let plan = plan.clone();
    let spawned = std::thread::Builder::new()
        .name("zooid-snapshot".into())
        .spawn(move || {
            let started = std::time::Instant::now();
            let written = snapshot.write(&plan.dir, &plan.compression);
            drop(snapshot);
            let begun = plan.started.load(Ordering::Relaxed);
            match written {
                Ok(path) => {
                    let ms = started.elapsed().as_millis() as u64;
                    tracing::info!(file = %path.display(), ms, "snapshot written");
                    let _ = done.send(FromWriter::Timed(DiskTiming::Snapshot { ms }));
                }
                Err(e) => {
                    let _ = done.send(FromWriter::Failed(format!("writing a snapshot: {e}")));
                }
            }
            // Under a steady write load the next snapshot begins within a second or two:
            // its encoding then reuses these pages instead of faulting in fresh ones, which
            // cost the core thread several percent of a create storm.
            std::thread::sleep(TRIM_AFTER);
            if plan.started.load(Ordering::Relaxed) == begun {
                return_freed_memory();
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the snapshot thread; snapshot skipped");
    }
}

/// Give the pages of a dropped snapshot back to the system. A snapshot's encoded nodes are as
/// large as the tree (about 200 MB at a million znodes); glibc keeps such freed memory in its
/// heap, so without this the resident size stays at the last snapshot's high-water mark.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases glibc's free lists; it has no
    // preconditions and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
