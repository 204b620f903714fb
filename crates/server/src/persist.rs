//! Blocking disk work on threads of its own, so the core never waits on a disk.
//!
//! ```text
//! core task ──ToWriter::Append/Roll/Job──▶ log writer thread ──FromWriter::Persisted(zxid)/Stored──▶ core task
//!            ──snapshot bytes──▶ snapshot thread (compress, fsync, rename)
//! ```
//! The log writer takes everything queued since its last fsync, appends it, and fsyncs once:
//! group commit, so one fsync covers as many txns as arrived while the previous one ran.
//! A write or fsync failure is fatal, as in ZooKeeper: nothing is acknowledged after it, and
//! a restart recovers every txn that was (cutting off a partial last record).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use zooid_storage::snapshot::{FrozenSnapshot, Layout};
use zooid_storage::txnlog::TxnLog;
use zooid_tree::DataTree;

pub enum ToWriter {
    Append {
        zxid: i64,
        entry: Vec<u8>,
    },
    /// Start a new log file with the next append (after a snapshot).
    Roll,
    /// A storage job of the ensemble member, run here in order with the appends. With
    /// `quiesce`, everything appended is made durable and the file closed first (no
    /// Persisted follows for it): the job may change the log files (a TRUNC, a SNAP).
    Job {
        quiesce: bool,
        run: Box<dyn FnOnce() + Send>,
    },
}

pub enum FromWriter {
    /// Every txn up to this zxid is on disk.
    Persisted(i64),
    Failed(String),
    /// How long disk work took, for the metrics.
    Timed(DiskTiming),
    /// A storage job's result.
    Stored(zooid_member::Stored),
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
    backlog: Arc<std::sync::atomic::AtomicUsize>,
) -> mpsc::Sender<ToWriter> {
    let (tx, rx) = mpsc::channel::<ToWriter>();
    std::thread::Builder::new()
        .name("zooid-txnlog".into())
        .spawn(move || {
            let mut appended = 0u64;
            while let Ok(first) = rx.recv() {
                let mut last = None;
                let mut result = write_one(first, &mut log, &mut last, &mut appended, &backlog);
                // Everything that queued up while the last fsync ran goes into this one.
                while result.is_ok() {
                    match rx.try_recv() {
                        Ok(msg) => {
                            result = write_one(msg, &mut log, &mut last, &mut appended, &backlog)
                        }
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
    backlog: &std::sync::atomic::AtomicUsize,
) -> Result<(), String> {
    match msg {
        ToWriter::Append { zxid, entry } => {
            backlog.fetch_sub(1, Ordering::Relaxed);
            log.append(zxid, &entry).map_err(|e| e.to_string())?;
            *last = Some(zxid);
            *appended += 1;
        }
        ToWriter::Roll => log.roll().map_err(|e| e.to_string())?,
        ToWriter::Job { quiesce, run } => {
            if quiesce {
                log.roll().map_err(|e| e.to_string())?;
                *last = None;
            }
            run();
        }
    }
    Ok(())
}

/// Where and how snapshots are written.
#[derive(Clone)]
pub struct SnapshotPlan {
    pub dir: PathBuf,
    pub compression: String,
    /// Which ZooKeeper line's snapshot layout to write.
    pub layout: Layout,
    /// ZooKeeper's snapCount: a snapshot after between snapCount/2 and snapCount txns.
    pub snap_count: u64,
    /// The snapshots being written, shared with their threads.
    pub jobs: Arc<SnapshotJobs>,
}

/// Snapshot threads under way, and which of them are void.
#[derive(Default)]
pub struct SnapshotJobs {
    /// Snapshots taken so far; each thread knows its own number.
    taken: AtomicU64,
    /// Snapshots numbered below this are void: the files they would add are about to change.
    void_below: AtomicU64,
    running: Mutex<usize>,
    idle: Condvar,
}

impl SnapshotPlan {
    /// Whether a snapshot is still being written.
    pub fn busy(&self) -> bool {
        *lock(&self.jobs.running) > 0
    }

    /// Take a snapshot of `tree` as it is now and write it on a thread of its own, which does
    /// the encoding too; failures are reported through `done`.
    pub fn take(&self, tree: &DataTree, done: UnboundedSender<FromWriter>) {
        let snapshot = FrozenSnapshot::take(tree, self.layout);
        let jobs = self.jobs.clone();
        let number = jobs.taken.fetch_add(1, Ordering::SeqCst);
        *lock(&jobs.running) += 1;
        let (dir, compression) = (self.dir.clone(), self.compression.clone());
        let spawned = std::thread::Builder::new()
            .name("zooid-snapshot".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                let cancelled = || jobs.void_below.load(Ordering::SeqCst) > number;
                let written = snapshot.write(&dir, &compression, &cancelled);
                drop(snapshot);
                match written {
                    Ok(path) => {
                        let ms = started.elapsed().as_millis() as u64;
                        tracing::info!(file = %path.display(), ms, "snapshot written");
                        let _ = done.send(FromWriter::Timed(DiskTiming::Snapshot { ms }));
                    }
                    Err(_) if cancelled() => {
                        tracing::info!("snapshot abandoned: the tree was replaced by a sync")
                    }
                    Err(e) => {
                        let _ = done.send(FromWriter::Failed(format!("writing a snapshot: {e}")));
                    }
                }
                jobs.finished();
                // Under a steady write load the next snapshot begins within a second or two
                // and can reuse this memory; an idle server gives it back.
                std::thread::sleep(TRIM_AFTER);
                if jobs.taken.load(Ordering::SeqCst) == number + 1 {
                    return_freed_memory();
                }
            });
        if let Err(e) = spawned {
            self.jobs.finished();
            tracing::error!(error = %e, "cannot start the snapshot thread; snapshot skipped");
        }
    }

    /// Void the snapshots being written and wait for their threads: the caller is about to
    /// truncate the log or replace the tree, and a snapshot of the old tree must not appear
    /// on disk afterwards.
    pub fn cancel_and_wait(&self) {
        let jobs = &self.jobs;
        jobs.void_below
            .store(jobs.taken.load(Ordering::SeqCst), Ordering::SeqCst);
        let mut running = lock(&jobs.running);
        while *running > 0 {
            running = jobs
                .idle
                .wait(running)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

impl SnapshotJobs {
    fn finished(&self) {
        *lock(&self.running) -= 1;
        self.idle.notify_all();
    }
}

/// A count behind a mutex no code panics while holding.
fn lock(m: &Mutex<usize>) -> std::sync::MutexGuard<'_, usize> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long a written snapshot's memory stays with the allocator before it goes back to the
/// system, in case the next snapshot begins meanwhile and can reuse it.
const TRIM_AFTER: Duration = Duration::from_secs(1);

/// Give the memory a snapshot freed back to the system: the chunks of the node table the
/// tree copied while the snapshot held the originals, and the buffers of the write. glibc
/// keeps freed memory in its heap, so without this the resident size would stay at the
/// high-water mark of the busiest snapshot.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases glibc's free lists; it has no
    // preconditions and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Serve every allocation of 128 KiB or more (node table chunks, hash tables, snapshot and
/// log buffers) straight from the system, so freeing one returns its pages at once. glibc
/// otherwise raises that threshold each time such a block is freed, after which large blocks
/// come from the heap and leave holes there that the resident size never loses.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called once at start-up.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Give the allocator's free pages back to the system. Thousands of connections leave their
/// small blocks spread over the heaps of every runtime thread, whose resident size glibc
/// keeps after they are freed; trimming returns every whole free page in them.
pub fn trim_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
