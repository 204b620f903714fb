//! The txn log (`version-2/log.<zxid>`): writing with preallocation and group fsync, reading
//! back with torn-tail detection, Zab truncation, and a human-readable dump.
//!
//! ```text
//! offset      size  field
//! 0           4     magic    0x5A4B4C47 "ZKLG"          } FileHeader
//! 4           4     version  2                          }
//! 8           8     dbid     0                          }
//! 16          8     checksum Adler32 of `body` ONLY, unsigned, in a long   } entry 1
//! 24          4     bodyLen  n                                           }
//! 28          n     body     TxnHeader | record | optional TxnDigest     }
//! 28+n        1     0x42     end of record ('B')                          }
//! 29+n        ...   entry 2, entry 3, ...
//! logical end ...   zero padding up to 16 + k * preAllocSize (sparse)
//! ```
//!
//! The file is named after the zxid of its first entry, in lower-case hex without padding
//! (`log.100000001`). A new file is started on the first append after start-up and after every
//! roll, so a data directory holds a sequence of files whose entries continue one another.
//!
//! Reading stops at the logical end of each file: the end of the file, or an all-zero region
//! (the preallocated padding, which starts with a zero checksum and a zero length). Anything else
//! that does not parse as an entry is damage, and the reader decides whether it is a *torn
//! tail* (a crash interrupted the write of the newest entries, none of which were acknowledged
//! because their fsync never returned) or *corruption* (bytes that were once good have changed,
//! and ignoring them could silently drop acknowledged writes):
//!
//! * damage in any file but the newest is corruption: later files prove the writer carried on;
//! * damage in the newest file is a torn tail only if no valid entry can be found anywhere after
//!   it. A crash leaves nothing valid behind the point where the write stopped, whereas a flipped
//!   byte or a bad length inside an older entry leaves the entries after it intact, and those
//!   were acknowledged.
//!
//! A torn tail must be cut off ([`truncate_torn_tail`]) before appending again: the next append
//! opens a new file, after which the damaged one would no longer be the newest.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use zooid_proto::{Acl, CreateKind, OpCode, Txn, TxnEntry};

use crate::checksum::adler32;

/// `FileTxnLog.TXNLOG_MAGIC`: "ZKLG".
pub const LOG_MAGIC: i32 = 0x5A4B4C47;
/// The only txn log format version ZooKeeper has written.
pub const LOG_VERSION: i32 = 2;
/// ZooKeeper writes dbid 0 in every log header and never reads it back.
pub const LOG_DBID: i64 = 0;
/// The largest body the reader accepts. Real entries are bounded by jute.maxbuffer (1 MiB by
/// default); anything much larger is a damaged length field, and refusing it keeps a bad length
/// from making us allocate gigabytes.
pub const MAX_BODY_LEN: u64 = 100 << 20;

const HEADER_LEN: u64 = 16;
/// checksum (8) + bodyLen (4) in front of the body.
const ENTRY_HEAD_LEN: u64 = 12;
const EOR: u8 = 0x42;
/// A body holds at least a TxnHeader, so shorter lengths can be rejected without reading.
const MIN_BODY_LEN: u64 = 32;
/// `FilePadding`: grow the file when the write position comes this close to its end.
const PAD_SLACK: u64 = 4096;
/// `fsync.warningthresholdms` default.
const SLOW_SYNC_MS: u128 = 1000;
/// Read size when scanning padding or damaged regions.
const SCAN_CHUNK: usize = 1 << 20;

/// Why the txn log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("txn log I/O error on {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "txn log {} is corrupt at byte offset {offset}: {reason}; the log is damaged before its \
         last entry; restore this dataDir from a backup or move the file aside to start from the \
         previous snapshot",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The appender refused an entry that would make the log unreadable.
    #[error("refusing to append to txn log {}: {reason}", path.display())]
    Append { path: PathBuf, reason: String },
}

fn io_err(path: &Path, source: io::Error) -> LogError {
    LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

/// `Util.makeLogName`: `log.` + `Long.toHexString(zxid)` (two's complement for negatives,
/// which Rust's `{:x}` on i64 also gives).
fn log_name(zxid: i64) -> String {
    format!("log.{zxid:x}")
}

/// The zxid in a `log.<hex>` name. Names with anything after the hex (`log.1.bak`) are not
/// logs to us, although Java would count them; skipping them is the safer reading.
fn parse_log_name(name: &str) -> Option<i64> {
    let hex = name.strip_prefix("log.")?;
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|v| v as i64)
}

/// Log files in `dir` (a version-2 directory) as (start zxid, path), sorted by zxid; ignores
/// other files. A missing directory has no logs.
pub fn log_files(dir: &Path) -> Result<Vec<(i64, PathBuf)>, LogError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir, e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| io_err(dir, e))?;
        let name = ent.file_name();
        let Some(zxid) = name.to_str().and_then(parse_log_name) else {
            continue;
        };
        if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        out.push((zxid, ent.path()));
    }
    out.sort();
    Ok(out)
}

/// §6.1: the files to read when replaying from `after_zxid + 1`: the newest file starting at or
/// before `after_zxid` (it may hold later txns too) and every file after it. Older files hold
/// only txns the snapshot already covers and are not even opened.
pub(crate) fn files_for_replay(files: &[(i64, PathBuf)], after_zxid: i64) -> &[(i64, PathBuf)] {
    let first = files
        .iter()
        .rposition(|(z, _)| *z <= after_zxid)
        .unwrap_or(0);
    &files[first..]
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    // A new or removed directory entry is durable only once the directory itself is synced.
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

// ------------------------------------------------------------------------------------------
// Appending
// ------------------------------------------------------------------------------------------

/// The appender. Opens nothing until the first append.
///
/// After any error the state of the file is uncertain (a failed fsync may have dropped pages
/// the kernel then marks clean), so the caller should stop acknowledging writes and treat the
/// log as failed; the pending bytes are kept only so that a retry rewrites them at the same
/// offset rather than somewhere else.
#[derive(Debug)]
pub struct TxnLog {
    dir: PathBuf,
    pre_alloc: u64,
    force_sync: bool,
    current: Option<OpenLog>,
}

#[derive(Debug)]
struct OpenLog {
    path: PathBuf,
    file: File,
    /// Bytes [0, written) have been written to the file (header included).
    written: u64,
    /// Appended since the last commit: one write and one fsync cover them all.
    pending: Vec<u8>,
    /// The file's size after padding.
    alloc: u64,
    last_zxid: Option<i64>,
    /// Whether the directory entry of this file has been made durable.
    dir_synced: bool,
}

impl OpenLog {
    fn logical_len(&self) -> u64 {
        self.written + self.pending.len() as u64
    }
}

impl TxnLog {
    /// `pre_alloc_bytes` is ZooKeeper's preAllocSize (64 MiB by default; 0 turns padding off).
    /// With `force_sync` false nothing is fsynced (`zookeeper.forceSync=no`).
    pub fn new(dir: &Path, pre_alloc_bytes: u64, force_sync: bool) -> TxnLog {
        TxnLog {
            dir: dir.to_path_buf(),
            pre_alloc: pre_alloc_bytes,
            force_sync,
            current: None,
        }
    }

    /// Append one entry body (the bytes of `TxnEntry::encode`) with zxid `zxid`; opens
    /// `log.<zxid hex>` if no file is open (writing the header). Buffered: nothing is durable
    /// until [`commit`](Self::commit).
    pub fn append(&mut self, zxid: i64, body: &[u8]) -> Result<(), LogError> {
        let target = || match &self.current {
            Some(c) => c.path.clone(),
            None => self.dir.join(log_name(zxid)),
        };
        // The reader rejects these, so writing them would make the log unreadable at the next
        // start; better to fail the write now.
        let len = body.len() as u64;
        if !(MIN_BODY_LEN..=MAX_BODY_LEN).contains(&len) {
            return Err(LogError::Append {
                path: target(),
                reason: format!("a {len}-byte body is outside {MIN_BODY_LEN}..={MAX_BODY_LEN}"),
            });
        }
        let mut z = [0u8; 8];
        z.copy_from_slice(&body[12..20]);
        let body_zxid = i64::from_be_bytes(z);
        if body_zxid != zxid {
            return Err(LogError::Append {
                path: target(),
                reason: format!("zxid {zxid:#x} given but the TxnHeader says {body_zxid:#x}"),
            });
        }
        let cur = match &mut self.current {
            Some(c) => c,
            slot @ None => slot.insert(open_log(&self.dir, zxid)?),
        };
        if let Some(last) = cur.last_zxid {
            if zxid <= last {
                return Err(LogError::Append {
                    path: cur.path.clone(),
                    reason: format!("zxid {zxid:#x} is not after the previous entry's {last:#x}"),
                });
            }
        }
        if self.pre_alloc > 0 {
            // FilePadding: keep at least 4 KiB of zeros ahead of the write position, growing
            // in preAllocSize steps, so most commits only overwrite already-allocated blocks.
            // Done before buffering so that a failure leaves the entry out entirely.
            let end = cur.logical_len() + ENTRY_HEAD_LEN + len + 1;
            if end + PAD_SLACK >= cur.alloc {
                while end + PAD_SLACK >= cur.alloc {
                    cur.alloc += self.pre_alloc;
                }
                // Extending with set_len leaves the same sparse zeros as Java's single zero
                // byte written at the new end.
                cur.file
                    .set_len(cur.alloc)
                    .map_err(|e| io_err(&cur.path, e))?;
            }
        }
        cur.pending
            .extend_from_slice(&u64::from(adler32(body)).to_be_bytes());
        cur.pending.extend_from_slice(&(len as i32).to_be_bytes());
        cur.pending.extend_from_slice(body);
        cur.pending.push(EOR);
        cur.last_zxid = Some(zxid);
        Ok(())
    }

    /// Write out and fsync everything appended since the last commit. One commit covers many
    /// appends: that is the group commit.
    pub fn commit(&mut self) -> Result<(), LogError> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        if cur.pending.is_empty() {
            return Ok(());
        }
        let path = cur.path.clone();
        // Seek every time so that a retry after a failed write lands at the same offset.
        cur.file
            .seek(SeekFrom::Start(cur.written))
            .and_then(|_| cur.file.write_all(&cur.pending))
            .map_err(|e| io_err(&path, e))?;
        if self.force_sync {
            let started = Instant::now();
            // fdatasync: the size change from padding is part of what it flushes.
            cur.file.sync_data().map_err(|e| io_err(&path, e))?;
            if !cur.dir_synced {
                sync_dir(&self.dir)?;
                cur.dir_synced = true;
            }
            let ms = started.elapsed().as_millis();
            if ms > SLOW_SYNC_MS {
                tracing::warn!(file = %path.display(), ms = ms as u64, "fsync of the txn log took longer than 1000 ms; check the disk");
            }
        }
        cur.written += cur.pending.len() as u64;
        cur.pending.clear();
        Ok(())
    }

    /// Close the current file after committing; the next append opens a new log file (called
    /// after a snapshot is taken).
    pub fn roll(&mut self) -> Result<(), LogError> {
        self.commit()?;
        self.current = None;
        Ok(())
    }

    /// Size in bytes of what has been appended to the current file (header included, padding
    /// not), for txnLogSizeLimitInKb-style rolling; 0 if none is open.
    pub fn current_size(&self) -> u64 {
        self.current.as_ref().map_or(0, OpenLog::logical_len)
    }
}

fn open_log(dir: &Path, zxid: i64) -> Result<OpenLog, LogError> {
    let path = dir.join(log_name(zxid));
    let file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // A file of this name that holds no entry (an empty file or a bare header left by a
            // crash, or a torn tail cut back to the header) can be reused; one with entries
            // must never be overwritten.
            let mut entries = 0usize;
            let mut prev = None;
            scan_file(&path, true, &mut prev, |_, _, _| {
                entries += 1;
                Ok(false)
            })?;
            if entries > 0 {
                return Err(LogError::Append {
                    path,
                    reason: "the file already exists and holds entries".into(),
                });
            }
            OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&path)
                .map_err(|e| io_err(&path, e))?
        }
        Err(e) => return Err(io_err(&path, e)),
    };
    let mut pending = Vec::with_capacity(64 << 10);
    pending.extend_from_slice(&LOG_MAGIC.to_be_bytes());
    pending.extend_from_slice(&LOG_VERSION.to_be_bytes());
    pending.extend_from_slice(&LOG_DBID.to_be_bytes());
    Ok(OpenLog {
        path,
        file,
        written: 0,
        pending,
        // As in Java, padding counts from the end of the header, giving 16 + k * preAllocSize.
        alloc: HEADER_LEN,
        last_zxid: None,
        dir_synced: false,
    })
}

// ------------------------------------------------------------------------------------------
// Reading
// ------------------------------------------------------------------------------------------

/// Everything after `after_zxid` (exclusive) from the log files a server must read, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRead {
    pub entries: Vec<TxnEntry>,
    /// The newest file ends in a partially written entry; cut it off before appending.
    pub torn: Option<TornTail>,
}

/// Where the newest log file stops holding whole entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub path: PathBuf,
    /// Where the incomplete entry starts (0: not even the header is intact).
    pub offset: u64,
    pub reason: String,
}

/// Everything after `after_zxid` (exclusive) from the log files a server must read (§6: every
/// log starting after `after_zxid` plus the newest one starting at or before it), in order.
/// Every entry of those files is checked, including the ones skipped for being too old.
pub fn read_log(dir: &Path, after_zxid: i64) -> Result<LogRead, LogError> {
    let files = log_files(dir)?;
    let chosen = files_for_replay(&files, after_zxid);
    let mut entries = Vec::new();
    let mut torn = None;
    let mut prev = None;
    for (i, (_, path)) in chosen.iter().enumerate() {
        let is_last = i + 1 == chosen.len();
        let (kept, prev_before) = (entries.len(), prev);
        let mut collect = |_, _, e: TxnEntry| {
            if e.header.zxid > after_zxid {
                entries.push(e);
            }
            Ok(true)
        };
        let end = match scan_file(path, is_last, &mut prev, &mut collect) {
            Err(err @ LogError::Corrupt { .. }) if !is_last => {
                // ZooKeeper, crashing mid-write and restarting, leaves a torn entry at the end
                // of an older file and starts the next file right after the last good entry.
                // Accept exactly that shape; anything else is damage.
                entries.truncate(kept);
                prev = prev_before;
                let mut collect = |_, _, e: TxnEntry| {
                    if e.header.zxid > after_zxid {
                        entries.push(e);
                    }
                    Ok(true)
                };
                let end =
                    scan_file(path, true, &mut prev, &mut collect).map_err(|_| clone_err(&err))?;
                let next_start = chosen[i + 1].0;
                match (&end.torn, prev) {
                    (Some(t), Some(p)) if next_start == p + 1 => {
                        tracing::warn!(file = %t.path.display(), offset = t.offset, reason = %t.reason, "ignoring a torn entry at the end of an older log file: the next file resumes right after the last good entry");
                        FileEnd { torn: None, ..end }
                    }
                    _ => return Err(err),
                }
            }
            other => other?,
        };
        if end.torn.is_some() {
            torn = end.torn;
        }
    }
    Ok(LogRead { entries, torn })
}

fn clone_err(e: &LogError) -> LogError {
    match e {
        LogError::Corrupt {
            path,
            offset,
            reason,
        } => LogError::Corrupt {
            path: path.clone(),
            offset: *offset,
            reason: reason.clone(),
        },
        other => LogError::Corrupt {
            path: PathBuf::new(),
            offset: 0,
            reason: other.to_string(),
        },
    }
}

/// Cut a file at `offset` (used to drop a torn tail before appending again). A file whose
/// header is not intact is removed instead: left empty it would be a damaged older file once
/// the next append starts a new one.
pub fn truncate_torn_tail(t: &TornTail) -> Result<(), LogError> {
    if t.offset < HEADER_LEN {
        match fs::remove_file(&t.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&t.path, e)),
        }
        return sync_dir(parent_dir(&t.path));
    }
    cut_file(&t.path, t.offset)
}

fn cut_file(path: &Path, len: u64) -> Result<(), LogError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    f.set_len(len).map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

/// Remove every entry with zxid > `zxid` (Zab TRUNC): cut the file holding `zxid` right after
/// it and delete later log files. No file may be open for appending in a [`TxnLog`] (call
/// [`TxnLog::roll`] first).
pub fn truncate_after(dir: &Path, zxid: i64) -> Result<(), LogError> {
    let files = log_files(dir)?;
    // Newest first, so that a crash part-way leaves a prefix of the files: still a log whose
    // zxids increase, just not yet truncated.
    let mut removed = false;
    for (_, path) in files.iter().rev().filter(|(z, _)| *z > zxid) {
        fs::remove_file(path).map_err(|e| io_err(path, e))?;
        removed = true;
    }
    if removed {
        sync_dir(dir)?;
    }
    let Some((_, path)) = files.iter().rev().find(|(z, _)| *z <= zxid) else {
        return Ok(());
    };
    let mut keep = HEADER_LEN;
    let mut prev = None;
    // Damage after the cut point does not matter: it is about to go. So this file is read as
    // the newest one, where a torn tail is allowed.
    let end = scan_file(path, true, &mut prev, |_, end, e| {
        if e.header.zxid > zxid {
            return Ok(false);
        }
        keep = end;
        Ok(true)
    })?;
    if let Some(t) = end.torn {
        keep = keep.min(t.offset);
        if t.offset < HEADER_LEN {
            return truncate_torn_tail(&t);
        }
    }
    cut_file(path, keep)
}

/// How a file's scan ended.
struct FileEnd {
    /// Offset where reading stopped: the logical end, the torn entry, or the entry the caller
    /// stopped at.
    end: u64,
    size: u64,
    torn: Option<TornTail>,
    /// What was found at `end` when the file ended cleanly.
    how: &'static str,
}

/// What one attempt to read an entry found.
enum Step {
    Entry {
        entry: TxnEntry,
        end: u64,
    },
    /// The logical end: EOF or nothing but zeros from here on.
    End(&'static str),
    Bad(String),
}

/// Sequential reads with cheap short seeks, over a file whose size is fixed while we read.
struct LogReader {
    path: PathBuf,
    inner: BufReader<File>,
    size: u64,
    pos: u64,
}

impl LogReader {
    fn open(path: &Path) -> Result<LogReader, LogError> {
        let f = File::open(path).map_err(|e| io_err(path, e))?;
        let size = f.metadata().map_err(|e| io_err(path, e))?.len();
        Ok(LogReader {
            path: path.to_path_buf(),
            inner: BufReader::with_capacity(64 << 10, f),
            size,
            pos: 0,
        })
    }

    fn seek(&mut self, to: u64) -> Result<(), LogError> {
        if to == self.pos {
            return Ok(());
        }
        // seek_relative keeps the buffer when the target is inside it, which is the common
        // case when checking a candidate entry just ahead.
        let r = match i64::try_from(i128::from(to) - i128::from(self.pos)) {
            Ok(d) => self.inner.seek_relative(d),
            Err(_) => self.inner.seek(SeekFrom::Start(to)).map(|_| ()),
        };
        r.map_err(|e| io_err(&self.path, e))?;
        self.pos = to;
        Ok(())
    }

    /// Fill `buf` as far as the file allows; returns how much was read.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, LogError> {
        let mut n = 0;
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(&self.path, e)),
            }
        }
        self.pos += n as u64;
        Ok(n)
    }

    /// The offset of the first non-zero byte at or after `from`, if there is one.
    fn first_nonzero(&mut self, from: u64) -> Result<Option<u64>, LogError> {
        self.seek(from)?;
        let mut chunk = vec![0u8; SCAN_CHUNK];
        let mut at = from;
        loop {
            let n = self.read_full(&mut chunk)?;
            if let Some(i) = chunk[..n].iter().position(|&b| b != 0) {
                return Ok(Some(at + i as u64));
            }
            if n < chunk.len() {
                return Ok(None);
            }
            at += n as u64;
        }
    }

    /// Read the entry at the current position.
    fn next_entry(&mut self) -> Result<Step, LogError> {
        let at = self.pos;
        let mut head = [0u8; ENTRY_HEAD_LEN as usize];
        let n = self.read_full(&mut head)?;
        if n < head.len() {
            // Java: EOF while reading the checksum or length ends the file. Zeros there are
            // padding cut short; anything else is the start of an entry that was cut short.
            if head[..n].iter().all(|&b| b == 0) {
                return Ok(Step::End(if n == 0 {
                    "end of file"
                } else {
                    "zero padding"
                }));
            }
            return Ok(Step::Bad(format!(
                "the file ends {n} bytes into an entry's 12-byte checksum and length"
            )));
        }
        let mut c = [0u8; 8];
        c.copy_from_slice(&head[..8]);
        let crc = u64::from_be_bytes(c);
        let len = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
        if len == 0 {
            // The padding. Java stops at any zero length, but a zero length with data behind
            // it is a damaged entry hiding the entries after it, so check the rest is zeros.
            if crc != 0 {
                return Ok(Step::Bad(format!(
                    "zero body length after a non-zero checksum {crc:#x}"
                )));
            }
            return Ok(match self.first_nonzero(at + ENTRY_HEAD_LEN)? {
                None => Step::End("zero padding"),
                Some(nz) => Step::Bad(format!(
                    "zero body length (padding), but a non-zero byte follows at offset {nz}"
                )),
            });
        }
        if len < 0 {
            return Ok(Step::Bad(format!("negative body length {len}")));
        }
        let len = len as u64;
        if len > MAX_BODY_LEN {
            return Ok(Step::Bad(format!(
                "body length {len} is over the {MAX_BODY_LEN}-byte limit"
            )));
        }
        let room = self.size.saturating_sub(at + ENTRY_HEAD_LEN);
        if len + 1 > room {
            return Ok(Step::Bad(format!(
                "body length {len} plus the end-of-record byte runs past the end of the file \
                 ({room} bytes left)"
            )));
        }
        // Bounded by the file size just checked, so a bad length cannot over-allocate.
        let mut body = vec![0u8; len as usize];
        let mut eor = [0u8; 1];
        if self.read_full(&mut body)? < body.len() || self.read_full(&mut eor)? < 1 {
            return Ok(Step::Bad("the file ends inside the entry".into()));
        }
        if eor[0] != EOR {
            return Ok(Step::Bad(format!(
                "end-of-record byte is {:#04x}, not 0x42 (partial entry)",
                eor[0]
            )));
        }
        let sum = u64::from(adler32(&body));
        if crc != sum {
            return Ok(Step::Bad(format!(
                "checksum mismatch: stored {crc:#x}, computed {sum:#x} over the {len}-byte body"
            )));
        }
        match TxnEntry::decode(&body) {
            Ok(entry) => Ok(Step::Entry {
                entry,
                end: at + ENTRY_HEAD_LEN + len + 1,
            }),
            Err(e) => Ok(Step::Bad(format!("the body does not decode: {e}"))),
        }
    }

    /// The first offset at or after `from` where a whole valid entry starts (good checksum,
    /// end-of-record byte, decodable body), if any.
    fn find_valid_entry(&mut self, from: u64) -> Result<Option<u64>, LogError> {
        let mut chunk = vec![0u8; SCAN_CHUNK];
        let head = ENTRY_HEAD_LEN as usize;
        let mut base = from;
        loop {
            self.seek(base)?;
            let n = self.read_full(&mut chunk)?;
            if n < head + 1 {
                return Ok(None);
            }
            let at_eof = n < chunk.len();
            let mut i = 0;
            while i + head <= n {
                // A candidate needs a non-zero length field, so jump over zero runs: the next
                // non-zero byte at or after i+8 bounds where the next candidate can start.
                match chunk[i + 8..n].iter().position(|&b| b != 0) {
                    None => break,
                    Some(p) => {
                        let earliest = (i + 8 + p).saturating_sub(head - 1);
                        if earliest > i {
                            i = earliest;
                            continue;
                        }
                    }
                }
                // The checksum is an Adler32 in a long, so its top 4 bytes are zero.
                if chunk[i..i + 4] == [0; 4] {
                    let len = i32::from_be_bytes([
                        chunk[i + 8],
                        chunk[i + 9],
                        chunk[i + 10],
                        chunk[i + 11],
                    ]);
                    let y = base + i as u64;
                    if len > 0 && self.is_valid_entry_at(y, len as u64)? {
                        return Ok(Some(y));
                    }
                }
                i += 1;
            }
            if at_eof {
                return Ok(None);
            }
            // Candidates whose 12-byte head did not fit are looked at with the next chunk.
            base += (n - (head - 1)) as u64;
        }
    }

    fn is_valid_entry_at(&mut self, at: u64, len: u64) -> Result<bool, LogError> {
        if !(MIN_BODY_LEN..=MAX_BODY_LEN).contains(&len)
            || at + ENTRY_HEAD_LEN + len + 1 > self.size
        {
            return Ok(false);
        }
        // Look at the end-of-record byte before reading and summing a possibly large body.
        let mut eor = [0u8; 1];
        self.seek(at + ENTRY_HEAD_LEN + len)?;
        if self.read_full(&mut eor)? < 1 || eor[0] != EOR {
            return Ok(false);
        }
        self.seek(at)?;
        Ok(matches!(self.next_entry()?, Step::Entry { .. }))
    }

    /// Damage found at `at`: a torn tail if this is the newest file and nothing valid follows,
    /// corruption otherwise.
    fn damaged(&mut self, at: u64, is_last: bool, reason: String) -> Result<TornTail, LogError> {
        if !is_last {
            return Err(corrupt(
                &self.path,
                at,
                format!("{reason}, in a log file that is not the newest, so not a torn write"),
            ));
        }
        if let Some(y) = self.find_valid_entry(at + 1)? {
            return Err(corrupt(
                &self.path,
                at,
                format!(
                    "{reason}, yet a valid entry follows at offset {y}, so this is not a torn \
                     write"
                ),
            ));
        }
        Ok(TornTail {
            path: self.path.clone(),
            offset: at,
            reason,
        })
    }
}

/// Read one log file, handing each entry to `on_entry(offset, end, entry)`, which returns
/// whether to go on. `prev_zxid` carries the last zxid across files so order is checked
/// throughout. `is_last`: this is the newest file, the only one that may have a torn tail.
fn scan_file(
    path: &Path,
    is_last: bool,
    prev_zxid: &mut Option<i64>,
    mut on_entry: impl FnMut(u64, u64, TxnEntry) -> Result<bool, LogError>,
) -> Result<FileEnd, LogError> {
    let mut r = LogReader::open(path)?;
    let size = r.size;
    let torn_at = |r: &mut LogReader, at: u64, reason: String| -> Result<FileEnd, LogError> {
        let t = r.damaged(at, is_last, reason)?;
        Ok(FileEnd {
            end: at,
            size,
            torn: Some(t),
            how: "",
        })
    };
    let mut hdr = [0u8; HEADER_LEN as usize];
    let n = r.read_full(&mut hdr)?;
    if n < hdr.len() {
        let reason = if n == 0 {
            "the file is empty".to_string()
        } else {
            format!("the file ends {n} bytes into the 16-byte header")
        };
        return torn_at(&mut r, 0, reason);
    }
    let magic = i32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let version = i32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    if magic != LOG_MAGIC {
        // A newest file that is all zeros was padded, but its header never reached the disk
        // before a crash: nothing in it was ever acknowledged.
        if is_last && r.first_nonzero(0)?.is_none() {
            return torn_at(
                &mut r,
                0,
                "the file is all zeros (header never written)".into(),
            );
        }
        return Err(corrupt(
            path,
            0,
            format!(
                "bad magic {magic:#010x}, expected {LOG_MAGIC:#010x} (\"ZKLG\"): not a txn log"
            ),
        ));
    }
    if version != LOG_VERSION {
        return Err(corrupt(
            path,
            4,
            format!("unsupported txn log format version {version}, expected {LOG_VERSION}"),
        ));
    }
    let mut at = HEADER_LEN;
    loop {
        r.seek(at)?;
        match r.next_entry()? {
            Step::Entry { entry, end } => {
                let zxid = entry.header.zxid;
                if let Some(p) = *prev_zxid {
                    if zxid <= p {
                        return Err(corrupt(
                            path,
                            at,
                            format!("zxid {zxid:#x} does not follow the previous entry's {p:#x}"),
                        ));
                    }
                }
                *prev_zxid = Some(zxid);
                if !on_entry(at, end, entry)? {
                    return Ok(FileEnd {
                        end: at,
                        size,
                        torn: None,
                        how: "stopped",
                    });
                }
                at = end;
            }
            Step::End(how) => {
                return Ok(FileEnd {
                    end: at,
                    size,
                    torn: None,
                    how,
                })
            }
            Step::Bad(reason) => return torn_at(&mut r, at, reason),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Dump
// ------------------------------------------------------------------------------------------

/// Human-readable dump of one log file in the spirit of ZooKeeper's TxnLogToolkit: one line per
/// txn with time, session, cxid, zxid, type and record fields (and data when `with_data`), plus
/// a summary. The file is read as the newest log, so a torn tail is reported, not an error.
pub fn dump(path: &Path, with_data: bool, out: &mut dyn fmt::Write) -> Result<(), LogError> {
    // Output errors are ignored throughout: the sink is normally a String, and a failing sink
    // says nothing about the log.
    let mut hdr = [0u8; HEADER_LEN as usize];
    let mut f = File::open(path).map_err(|e| io_err(path, e))?;
    if f.read_exact(&mut hdr).is_ok() {
        let version = i32::from_be_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        let mut d = [0u8; 8];
        d.copy_from_slice(&hdr[8..]);
        let _ = writeln!(
            out,
            "ZooKeeper Transactional Log File with dbid {} txnlog format version {version}: {}",
            i64::from_be_bytes(d),
            path.display()
        );
    }
    drop(f);
    let mut count = 0u64;
    let mut first = None;
    let mut last = None;
    let mut prev = None;
    let end = scan_file(path, true, &mut prev, |_, _, e| {
        count += 1;
        first.get_or_insert(e.header.zxid);
        last = Some(e.header.zxid);
        let h = &e.header;
        let op = OpCode::from_i32(h.op).map_or("unknown", OpCode::name);
        let _ = write!(
            out,
            "{} session {:#x} cxid {:#x} zxid {:#x} {op} {}",
            fmt_time(h.time_ms),
            h.session_id,
            h.cxid,
            h.zxid,
            fmt_txn(&e.txn, with_data)
        );
        if let Some(d) = e.digest {
            let _ = write!(out, " digest {}:{}", d.version, d.tree_digest);
        }
        let _ = writeln!(out);
        Ok(true)
    })?;
    let range = match (first, last) {
        (Some(a), Some(b)) => format!(", zxids {a:#x}..={b:#x}"),
        _ => String::new(),
    };
    match &end.torn {
        None => {
            let _ = writeln!(
                out,
                "EOF reached after {count} txns{range} (logical end at byte {} of {}: {}).",
                end.end, end.size, end.how
            );
        }
        Some(t) => {
            let _ = writeln!(
                out,
                "{count} txns{range}, then a torn last entry at byte {} of {}: {}. It was never \
                 acknowledged and is cut off when the server starts.",
                t.offset, end.size, t.reason
            );
        }
    }
    Ok(())
}

fn fmt_time(ms: i64) -> String {
    zooid_proto::timefmt::iso_utc(ms)
}

fn fmt_data(data: &Option<Vec<u8>>, with_data: bool) -> String {
    match data {
        None => "null".into(),
        Some(d) if with_data => format!("{:?}", String::from_utf8_lossy(d)),
        Some(d) => format!("({} bytes)", d.len()),
    }
}

fn fmt_acl(acl: &[Acl]) -> String {
    let items: Vec<String> = acl
        .iter()
        .map(|a| {
            // ZooKeeper's letters, in its order: c d r w a.
            let perms: String = [(4, 'c'), (8, 'd'), (1, 'r'), (2, 'w'), (16, 'a')]
                .iter()
                .filter(|(bit, _)| a.perms & bit != 0)
                .map(|(_, c)| *c)
                .collect();
            format!("{}:{}:{perms}", a.id.scheme, a.id.id)
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn fmt_txn(t: &Txn, with_data: bool) -> String {
    match t {
        Txn::Create {
            kind,
            path,
            data,
            acl,
            ephemeral,
            parent_cversion,
        } => {
            let mut s = format!(
                "path={path} data={} acl={}",
                fmt_data(data, with_data),
                fmt_acl(acl)
            );
            if let CreateKind::Plain { .. } = kind {
                s += &format!(" ephemeral={ephemeral}");
            }
            s += &format!(" parentCVersion={parent_cversion}");
            if let CreateKind::Ttl(ttl) = kind {
                s += &format!(" ttl={ttl}");
            }
            s
        }
        Txn::Delete { path, .. } => format!("path={path}"),
        Txn::SetData {
            path,
            data,
            version,
        }
        | Txn::Reconfig {
            path,
            data,
            version,
        } => format!(
            "path={path} data={} version={version}",
            fmt_data(data, with_data)
        ),
        Txn::SetAcl { path, acl, version } => {
            format!("path={path} acl={} version={version}", fmt_acl(acl))
        }
        Txn::Check { path, version } => format!("path={path} version={version}"),
        Txn::Multi(txns) => {
            let parts: Vec<String> = txns
                .iter()
                .map(|s| format!("{} {}", s.op().name(), fmt_txn(s, with_data)))
                .collect();
            format!("[{}]", parts.join("; "))
        }
        Txn::CreateSession { timeout_ms } => format!("timeOut={timeout_ms}"),
        Txn::CloseSession { paths: None } => "(no record)".into(),
        Txn::CloseSession { paths: Some(p) } => format!("paths2Delete={p:?}"),
        Txn::Error { err } => format!("err={err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(log_name(0x100000001), "log.100000001");
        assert_eq!(log_name(0xc), "log.c");
        assert_eq!(parse_log_name("log.10000000a"), Some(0x10000000a));
        assert_eq!(parse_log_name("log.C"), Some(12));
        assert_eq!(parse_log_name("log.1.bak"), None);
        assert_eq!(parse_log_name("log."), None);
        assert_eq!(parse_log_name("snapshot.1"), None);
        assert_eq!(parse_log_name("log.x"), None);
    }

    #[test]
    fn replay_file_choice() {
        let files: Vec<(i64, PathBuf)> = [1i64, 11, 21]
            .iter()
            .map(|z| (*z, PathBuf::from(log_name(*z))))
            .collect();
        let starts = |after| -> Vec<i64> {
            files_for_replay(&files, after)
                .iter()
                .map(|(z, _)| *z)
                .collect()
        };
        assert_eq!(starts(0), vec![1, 11, 21]);
        assert_eq!(starts(10), vec![1, 11, 21]);
        assert_eq!(starts(11), vec![11, 21]);
        assert_eq!(starts(25), vec![21]);
    }

    #[test]
    fn times() {
        assert_eq!(fmt_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(fmt_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(fmt_time(1_795_293_519_911), "2026-11-21T20:38:39.911Z");
        assert_eq!(fmt_time(-1), "1969-12-31T23:59:59.999Z");
        // Garbage times from a damaged-but-checksummed entry must not panic.
        let _ = fmt_time(i64::MIN);
        let _ = fmt_time(i64::MAX);
    }
}
