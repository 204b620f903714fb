//! Snapshots (`version-2/snapshot.<zxid>[.gz|.snappy]`) in ZooKeeper's format.
//!
//! A snapshot is one jute stream, stored plain or compressed. The file name carries the zxid
//! (lower-case hex, no padding) and picks the decoder; the checksums always cover the
//! *uncompressed* stream:
//!
//! ```text
//! on disk       plain   snapshot.<zxid>         the stream as is
//!               gzip    snapshot.<zxid>.gz      standard gzip (members may be concatenated)
//!               snappy  snapshot.<zxid>.snappy  snappy-java "xerial" framing:
//!                       82 53 4e 41 50 50 59 00  int version (1)  int compatible (1)
//!                       { int compressedLen; raw snappy block }*
//!
//! stream        int 0x5A4B534E "ZKSN"  int 2  long dbid (-1)
//!               int sessionCount   { long sessionId; int timeoutMs }*
//!               int aclCount       { long ref; vector<ACL> acls }*
//!               { ustring path; buffer data; long aclRef; StatPersisted }*
//!                                  pre-order, parents first; the root is "", aclRef -1 is
//!                                  OPEN_ACL_UNSAFE, a data length of -1 is null data
//!               ustring "/"        end of nodes (no node can be called "/" here)
//!               long checksum1     Adler32 of every byte before it
//!               ustring "/"
//!             [ long digestZxid  int digestVersion (2)  long digest      (absent in old files;
//!                                  digestZxid 0 means "no digest"; version < 2 held a hex string)
//!               long checksum2     Adler32 of every byte before it, checksum1 included
//!               ustring "/" ]
//!             [ long lastProcessedZxid                  (ZooKeeper 3.9: [`Layout::Zk39`])
//!               long checksum3     Adler32 of every byte before it
//!               ustring "/" ]
//!
//! StatPersisted long czxid, mzxid, ctime, mtime; int version, cversion, aversion;
//!               long ephemeralOwner, pzxid                               (60 bytes)
//! ```
//!
//! Reading streams the file and never trusts it: every length is checked against what is left
//! (plain files) or filled only as bytes actually arrive (compressed ones), every structural rule
//! (parents first, known ACL refs, no duplicates, well-formed paths) is enforced, and a tree is
//! handed out only after every checksum matched. [`load_latest`] picks the snapshot to start from
//! the way ZooKeeper's `FileSnap.deserialize` does. Writing produces the same bytes a 3.8 server
//! writes (an empty tree gives Java's 457-byte `snapshot.0`), or with [`Layout::Zk39`] those a
//! 3.9 server writes, through a temporary file that is fsynced and renamed into place.
//!
//! Reading takes every layout that may follow the first checksum, told apart by what the bytes
//! are rather than by a setting as ZooKeeper does: nothing (before 3.6), the digest section
//! (3.6 to 3.8), the digest section and the last processed zxid (3.9), or the last processed
//! zxid alone (3.9 with digests disabled, which no ZooKeeper can read back: its third checksum
//! stands where a digest version would, and a checksum's high half is always zero).

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use zooid_proto::records::write_acls;
use zooid_proto::{Acl, Writer};
use zooid_tree::{
    AclRef, DataTree, FrozenNodes, Node, Owner, StatPersisted, CONFIG_NODE, QUOTA_ROOT,
};

use crate::checksum::Adler32;

/// "ZKSN".
const SNAP_MAGIC: i32 = 0x5A4B_534E;
const SNAP_VERSION: i32 = 2;
const SNAP_DBID: i64 = -1;
/// The digest algorithm of [`zooid_tree::node_digest`]; other versions cannot be compared.
const DIGEST_VERSION: i32 = 2;
const PREFIX: &str = "snapshot";
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// snappy-java's default block size, which is what ZooKeeper's `SnappyOutputStream` uses.
const XERIAL_BLOCK: usize = 32 * 1024;
/// A raw snappy block expands at most ~21x (a 3-byte copy yields 64 bytes); anything claiming
/// more is forged, and refusing it keeps a tiny file from demanding a huge buffer.
const SNAPPY_MAX_RATIO: usize = 32;
/// ZooKeeper considers at most this many snapshots that pass the pre-check (`findNValidSnapshots`).
const MAX_CANDIDATES: usize = 100;
/// Bytes of the encoded stream held before they are checksummed and handed to the sink.
const SPILL_AT: usize = 64 * 1024;
/// First allocation for a buffer read from disk; it grows only as bytes really arrive.
const INITIAL_ALLOC: u64 = 64 * 1024;

/// Why a snapshot could not be read, chosen or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapError {
    #[error("I/O error on {}: {source}; check that the file and directory are accessible and the disk is healthy", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `offset` is a position in the uncompressed stream.
    #[error("snapshot {} is damaged at byte {offset} of its uncompressed stream: {reason}. It cannot be used: an older snapshot plus the txn logs can take its place, otherwise restore it from a backup", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// `offset` is a position in the body that followed SNAP.
    #[error("the snapshot stream received from the leader for zxid {zxid:#x} is malformed at byte {offset}: {reason}; nothing was written: drop the connection to the leader and sync again")]
    SyncStream {
        zxid: i64,
        offset: u64,
        reason: String,
    },
    #[error("{} is not named snapshot.<hex zxid>[.gz|.snappy], so its zxid is unknown; rename it or move it out of the version-2 directory", path.display())]
    BadName { path: PathBuf },
    #[error("cannot name a snapshot after zxid {zxid}: zxids in file names are non-negative")]
    BadZxid { zxid: i64 },
    #[error("none of the snapshots in {} could be loaded ({}); refusing to go on as if there were none, which would start from an empty tree: restore a snapshot from a backup, or move the damaged files away if starting empty is really intended", dir.display(), summarize(.skipped))]
    NoValidSnapshot { dir: PathBuf, skipped: Skipped },
    #[error("could not write the snapshot dump: {0}")]
    Fmt(#[from] fmt::Error),
}

fn summarize(skipped: &[(PathBuf, String)]) -> String {
    skipped
        .iter()
        .map(|(p, why)| {
            let name = p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            format!("{name}: {why}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Snapshot files passed over by [`load_latest`], with the reason for each (to log).
pub type Skipped = Vec<(PathBuf, String)>;

/// A snapshot read and verified.
#[derive(Debug)]
pub struct Snapshot {
    pub tree: DataTree,
    /// From the file name: every txn up to it is in the tree (possibly some later ones too).
    pub zxid: i64,
    /// The digest section's (zxid, tree digest) when it holds a comparable one; `None` for old
    /// snapshots without the section, the (0, 2, 0) placeholder and other digest versions.
    pub digest: Option<(i64, i64)>,
    /// Which ZooKeeper line's layout the file has.
    pub layout: Layout,
}

/// What a snapshot holds after its nodes besides the digest section: ZooKeeper 3.9 adds the
/// last processed zxid and a third checksum (its `serializeLastProcessedZxid.enabled`, on by
/// default). ZooKeeper 3.8 reads a 3.9 file and ignores the addition; 3.9 reads a 3.8 file
/// with a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// ZooKeeper 3.6 to 3.8: the digest section last.
    #[default]
    Zk38,
    /// ZooKeeper 3.9: then the last processed zxid and a third checksum.
    Zk39,
}

impl Snapshot {
    /// Whether the loaded tree matches the stored digest. Only known when the digest belongs to
    /// the file's own zxid: in a fuzzy snapshot it belongs to a later txn, and ZooKeeper compares
    /// it once that txn has been replayed.
    pub fn digest_matches(&self) -> Option<bool> {
        match self.digest {
            Some((z, d)) if z == self.zxid => Some(d == self.tree.digest()),
            _ => None,
        }
    }
}

/// The three on-disk forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Gzip,
    Snappy,
}

impl Mode {
    /// ZooKeeper's `snapshot.compression.method`; unknown values mean plain, as in `SnapStream`.
    fn from_setting(s: &str) -> Mode {
        match s {
            "gz" => Mode::Gzip,
            "snappy" => Mode::Snappy,
            "" => Mode::Plain,
            other => {
                tracing::warn!(method = other, "unknown snapshot compression method; writing a plain snapshot as ZooKeeper does");
                Mode::Plain
            }
        }
    }

    fn ext(self) -> &'static str {
        match self {
            Mode::Plain => "",
            Mode::Gzip => ".gz",
            Mode::Snappy => ".snappy",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Gzip => "gzip",
            Mode::Snappy => "snappy (xerial framing)",
        }
    }
}

/// Parse a file name as ZooKeeper does (`Util.getZxidFromName`, `SnapStream.getStreamMode`):
/// split on '.', the first part must be "snapshot", the second is the zxid in hex, and the last
/// part picks the decoder, anything but "gz" or "snappy" meaning plain (so `snapshot.5.bak` is a
/// plain snapshot to ZooKeeper too).
fn parse_name(name: &str) -> Option<(i64, Mode)> {
    let mut parts = name.split('.');
    if parts.next()? != PREFIX {
        return None;
    }
    let hex = parts.next()?;
    // Only digits: Java's parseLong would also take a sign, but no writer produces one.
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // Long.parseLong rejects values above Long.MAX_VALUE, so such names are not snapshots.
    let zxid = i64::try_from(u64::from_str_radix(hex, 16).ok()?).ok()?;
    let mode = match parts.next_back() {
        Some("gz") => Mode::Gzip,
        Some("snappy") => Mode::Snappy,
        _ => Mode::Plain,
    };
    Some((zxid, mode))
}

fn name_of(path: &Path) -> Result<(i64, Mode), SnapError> {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_name)
        .ok_or_else(|| SnapError::BadName {
            path: path.to_owned(),
        })
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SnapError + '_ {
    move |source| SnapError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Snapshot files in a version-2 dir as (zxid, path), newest first (by zxid); compressed ones
/// included. A directory that does not exist holds no snapshots.
pub fn snapshot_files(dir: &Path) -> Result<Vec<(i64, PathBuf)>, SnapError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let Some((zxid, _)) = entry.file_name().to_str().and_then(parse_name) else {
            continue;
        };
        let path = entry.path();
        // Follows symlinks, as ZooKeeper's File.length() and streams do.
        if fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            out.push((zxid, path));
        }
    }
    // Ties (snapshot.5 next to snapshot.5.gz) are ordered by name only to be deterministic.
    out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    Ok(out)
}

/// ZooKeeper's cheap `isValidSnapshot` check; files failing it are skipped without being read.
/// Plain: at least 10 bytes ending in the seal's "/" (`00000001 2f`). Compressed: the magic.
fn precheck(path: &Path, mode: Mode) -> Result<(), String> {
    let mut f = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = f.metadata().map_err(|e| format!("cannot stat: {e}"))?.len();
    let mut head = [0u8; 8];
    match mode {
        Mode::Plain => {
            if len < 10 {
                return Err(format!("only {len} bytes, too short to be a snapshot"));
            }
            let mut tail = [0u8; 5];
            io::Seek::seek(&mut f, io::SeekFrom::Start(len - 5))
                .and_then(|_| f.read_exact(&mut tail))
                .map_err(|e| format!("cannot read its end: {e}"))?;
            if tail != [0, 0, 0, 1, b'/'] {
                return Err(format!(
                    "does not end with the seal marker 00000001 2f (ends with {}), so it was not completely written",
                    hex(&tail)
                ));
            }
        }
        Mode::Gzip => {
            let n = read_full(&mut f, &mut head[..2]).map_err(|e| format!("cannot read: {e}"))?;
            if head[..n] != [0x1f, 0x8b] {
                return Err("does not start with the gzip magic 1f 8b".into());
            }
        }
        Mode::Snappy => {
            let n = read_full(&mut f, &mut head).map_err(|e| format!("cannot read: {e}"))?;
            if head[..n] != XERIAL_MAGIC {
                return Err(
                    "does not start with the snappy-java magic 82 53 4e 41 50 50 59 00".into(),
                );
            }
        }
    }
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Read until `buf` is full or the input ends; how many bytes were read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------------
// Decompression: snappy-java's xerial stream (gzip comes from flate2).
// ---------------------------------------------------------------------------------------------

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Decodes snappy-java's `SnappyOutputStream` framing block by block.
struct XerialReader<R: Read> {
    inner: R,
    started: bool,
    decoder: snap::raw::Decoder,
    compressed: Vec<u8>,
    block: Vec<u8>,
    at: usize,
    /// Position in the compressed file, for error messages.
    offset: u64,
}

impl<R: Read> XerialReader<R> {
    fn new(inner: R) -> Self {
        XerialReader {
            inner,
            started: false,
            decoder: snap::raw::Decoder::new(),
            compressed: Vec::new(),
            block: Vec::new(),
            at: 0,
            offset: 0,
        }
    }

    fn read_exact_counted(&mut self, buf: &mut [u8], what: &str) -> io::Result<()> {
        let n = read_full(&mut self.inner, buf)?;
        self.offset += n as u64;
        if n < buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the snappy stream ends inside {what} at file offset {}",
                    self.offset
                ),
            ));
        }
        Ok(())
    }

    /// Version and compatible-version after the magic. snappy-java writes 1 and 1; a larger
    /// compatible version announces a framing this reader does not know.
    fn check_versions(&mut self, rest: &[u8; 8]) -> io::Result<()> {
        let version = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let compat = i32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if version < 1 || compat != 1 {
            return Err(invalid(format!(
                "unsupported snappy-java stream version {version} (compatible version {compat})"
            )));
        }
        Ok(())
    }

    /// Decode the next block into `self.block`; false at the clean end of the stream.
    fn next_block(&mut self) -> io::Result<bool> {
        if !self.started {
            let mut head = [0u8; 16];
            self.read_exact_counted(&mut head, "the stream header")?;
            if head[..8] != XERIAL_MAGIC {
                return Err(invalid("not a snappy-java stream (bad magic)".into()));
            }
            let rest: [u8; 8] = head[8..].try_into().unwrap_or([0; 8]);
            self.check_versions(&rest)?;
            self.started = true;
        }
        loop {
            let mut len_bytes = [0u8; 4];
            let n = read_full(&mut self.inner, &mut len_bytes)?;
            self.offset += n as u64;
            if n == 0 {
                return Ok(false);
            }
            if n < 4 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the snappy stream ends inside a block length",
                ));
            }
            // snappy-java accepts concatenated streams: a new header where a length would be.
            if len_bytes == XERIAL_MAGIC[..4] {
                let mut rest = [0u8; 12];
                self.read_exact_counted(&mut rest, "a repeated stream header")?;
                if rest[..4] != XERIAL_MAGIC[4..] {
                    return Err(invalid("bad repeated snappy-java header".into()));
                }
                let versions: [u8; 8] = rest[4..].try_into().unwrap_or([0; 8]);
                self.check_versions(&versions)?;
                continue;
            }
            let at = self.offset - 4;
            let len = i32::from_be_bytes(len_bytes);
            if len <= 0 {
                return Err(invalid(format!(
                    "bad snappy block length {len} at file offset {at}"
                )));
            }
            let len = len as usize;
            self.compressed.clear();
            // Grows as bytes arrive: a forged length costs no more than the bytes really there.
            (&mut self.inner)
                .take(len as u64)
                .read_to_end(&mut self.compressed)?;
            self.offset += self.compressed.len() as u64;
            if self.compressed.len() < len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the snappy block at file offset {at} claims {len} bytes but the file ends first"),
                ));
            }
            let out_len = snap::raw::decompress_len(&self.compressed)
                .map_err(|e| invalid(format!("bad snappy block at file offset {at}: {e}")))?;
            if out_len > len.saturating_mul(SNAPPY_MAX_RATIO) {
                return Err(invalid(format!(
                    "the snappy block at file offset {at} claims to expand {len} bytes to {out_len}, more than snappy can encode"
                )));
            }
            self.block.clear();
            self.block.resize(out_len, 0);
            let got = self
                .decoder
                .decompress(&self.compressed, &mut self.block)
                .map_err(|e| invalid(format!("bad snappy block at file offset {at}: {e}")))?;
            if got != out_len {
                return Err(invalid(format!(
                    "the snappy block at file offset {at} is shorter than its header says"
                )));
            }
            self.at = 0;
            return Ok(true);
        }
    }
}

impl<R: Read> Read for XerialReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.at >= self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.block.len() - self.at);
        out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Writes snappy-java's framing: the header, then one raw snappy block per 32 KiB of input.
struct XerialWriter<W: Write> {
    inner: W,
    pending: Vec<u8>,
    encoder: snap::raw::Encoder,
}

impl<W: Write> XerialWriter<W> {
    fn new(mut inner: W) -> io::Result<Self> {
        inner.write_all(&XERIAL_MAGIC)?;
        inner.write_all(&1i32.to_be_bytes())?;
        inner.write_all(&1i32.to_be_bytes())?;
        Ok(XerialWriter {
            inner,
            pending: Vec::with_capacity(XERIAL_BLOCK),
            encoder: snap::raw::Encoder::new(),
        })
    }

    fn emit(&mut self, upto: usize) -> io::Result<()> {
        let block = self
            .encoder
            .compress_vec(&self.pending[..upto])
            .map_err(io::Error::other)?;
        let len = i32::try_from(block.len()).map_err(io::Error::other)?;
        self.inner.write_all(&len.to_be_bytes())?;
        self.inner.write_all(&block)?;
        self.pending.drain(..upto);
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        if !self.pending.is_empty() {
            let n = self.pending.len();
            self.emit(n)?;
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for XerialWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = XERIAL_BLOCK - self.pending.len();
        let n = buf.len().min(room);
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == XERIAL_BLOCK {
            self.emit(XERIAL_BLOCK)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the stream.
// ---------------------------------------------------------------------------------------------

/// The uncompressed stream with a running Adler32 and position.
struct Src<'a> {
    inner: Box<dyn Read + 'a>,
    adler: Adler32,
    pos: u64,
    /// Size of the stream when known (plain files): lengths are checked against it up front.
    len: Option<u64>,
    path: &'a Path,
}

impl<'a> Src<'a> {
    fn open(path: &'a Path, mode: Mode) -> Result<Src<'a>, SnapError> {
        let file = File::open(path).map_err(io_err(path))?;
        let size = file.metadata().map_err(io_err(path))?.len();
        let buffered = BufReader::with_capacity(128 * 1024, file);
        let (inner, len): (Box<dyn Read>, _) = match mode {
            Mode::Plain => (Box::new(buffered), Some(size)),
            Mode::Gzip => (Box::new(flate2::read::MultiGzDecoder::new(buffered)), None),
            Mode::Snappy => (Box::new(XerialReader::new(buffered)), None),
        };
        Ok(Src {
            inner,
            adler: Adler32::new(),
            pos: 0,
            len,
            path,
        })
    }

    fn corrupt(&self, offset: u64, reason: impl Into<String>) -> SnapError {
        SnapError::Corrupt {
            path: self.path.to_owned(),
            offset,
            reason: reason.into(),
        }
    }

    fn fail(&self, e: io::Error, what: &str) -> SnapError {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                self.corrupt(self.pos, format!("{e} (while reading {what})"))
            }
            // flate2 and the snappy reader report damaged compressed data with these kinds.
            io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => self.corrupt(
                self.pos,
                format!("the compressed data is damaged: {e} (while reading {what})"),
            ),
            _ => SnapError::Io {
                path: self.path.to_owned(),
                source: e,
            },
        }
    }

    /// Up to `buf.len()` bytes; fewer only at the end of the stream.
    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<usize, SnapError> {
        let n = read_full(&mut self.inner, buf).map_err(|e| self.fail(e, what))?;
        self.adler.update(&buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }

    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), SnapError> {
        let n = self.fill(buf, what)?;
        if n < buf.len() {
            return Err(self.corrupt(
                self.pos - n as u64,
                format!(
                    "the file ends inside {what} ({n} of {} bytes present); it was cut short",
                    buf.len()
                ),
            ));
        }
        Ok(())
    }

    fn i32(&mut self, what: &str) -> Result<i32, SnapError> {
        let mut b = [0u8; 4];
        self.exact(&mut b, what)?;
        Ok(i32::from_be_bytes(b))
    }

    fn i64(&mut self, what: &str) -> Result<i64, SnapError> {
        let mut b = [0u8; 8];
        self.exact(&mut b, what)?;
        Ok(i64::from_be_bytes(b))
    }

    /// A jute count (sessions, ACL lists, ACL entries): never negative here.
    fn count(&mut self, what: &str) -> Result<usize, SnapError> {
        let at = self.pos;
        let n = self.i32(what)?;
        usize::try_from(n).map_err(|_| self.corrupt(at, format!("{what} is {n}")))
    }

    /// A jute buffer; length -1 is null.
    fn bytes(&mut self, what: &str) -> Result<Option<Vec<u8>>, SnapError> {
        let at = self.pos;
        let len = self.i32(what)?;
        if len == -1 {
            return Ok(None);
        }
        let len =
            u64::try_from(len).map_err(|_| self.corrupt(at, format!("{what} has length {len}")))?;
        if let Some(total) = self.len {
            let left = total.saturating_sub(self.pos);
            if len > left {
                return Err(self.corrupt(
                    at,
                    format!("{what} claims {len} bytes but only {left} remain in the file"),
                ));
            }
        }
        let mut v = Vec::with_capacity(len.min(INITIAL_ALLOC) as usize);
        // Reading through `take` grows the buffer only as bytes arrive, so a forged length in a
        // compressed stream costs no more memory than the data actually present.
        let res = (&mut self.inner).take(len).read_to_end(&mut v);
        self.adler.update(&v);
        self.pos += v.len() as u64;
        res.map_err(|e| self.fail(e, what))?;
        if (v.len() as u64) < len {
            return Err(self.corrupt(
                at,
                format!(
                    "the file ends inside {what} ({} of {len} bytes present); it was cut short",
                    v.len()
                ),
            ));
        }
        Ok(Some(v))
    }

    fn string(&mut self, what: &str) -> Result<String, SnapError> {
        let at = self.pos;
        let b = self
            .bytes(what)?
            .ok_or_else(|| self.corrupt(at, format!("{what} is null")))?;
        String::from_utf8(b).map_err(|_| self.corrupt(at, format!("{what} is not valid UTF-8")))
    }

    fn acl(&mut self) -> Result<Acl, SnapError> {
        let perms = self.i32("ACL permissions")?;
        let scheme = self.string("an ACL scheme")?;
        let id = self.string("an ACL id")?;
        Ok(Acl::new(perms, &scheme, &id))
    }

    fn stat(&mut self) -> Result<StatPersisted, SnapError> {
        let mut b = [0u8; 60];
        self.exact(&mut b, "a node's stat")?;
        let l = |i: usize| i64::from_be_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let w = |i: usize| i32::from_be_bytes(b[i..i + 4].try_into().unwrap_or([0; 4]));
        Ok(StatPersisted {
            czxid: l(0),
            mzxid: l(8),
            ctime: l(16),
            mtime: l(24),
            version: w(32),
            cversion: w(36),
            aversion: w(40),
            ephemeral_owner: l(44),
            pzxid: l(52),
        })
    }

    /// A seal: the stored Adler32 of everything before it, then "/".
    fn seal(&mut self, which: &str) -> Result<u32, SnapError> {
        let at = self.pos;
        let computed = self.adler.value();
        let stored = self.i64(which)?;
        if stored != i64::from(computed) {
            return Err(self.corrupt(
                at,
                format!("{which} mismatch: stored {stored:#x}, but the bytes before it sum to {computed:#010x} (Adler32)"),
            ));
        }
        end_marker(self, which)?;
        Ok(computed)
    }
}

/// One record of the stream, as handed to a [`parse`] visitor.
enum Item {
    Header {
        magic: i32,
        version: i32,
        dbid: i64,
    },
    Session {
        id: i64,
        timeout: i32,
    },
    Acl {
        r: i64,
        acls: Vec<Acl>,
    },
    Node {
        path: String,
        data: Option<Vec<u8>>,
        acl: i64,
        stat: StatPersisted,
    },
}

#[derive(Debug, Clone, Copy)]
struct DigestSection {
    zxid: i64,
    version: i32,
    digest: i64,
}

struct Trailer {
    seal1: u32,
    digest: Option<(DigestSection, u32)>,
    /// ZooKeeper 3.9's last processed zxid, with the checksum after it.
    last_zxid: Option<(i64, u32)>,
    len: u64,
}

/// A node path as ZooKeeper's `PathUtils.validatePath` would have let a client create it. The
/// root ("") is handled by the caller.
fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("node path {path:?} does not start with '/'"));
    }
    if path.ends_with('/') {
        return Err(format!("node path {path:?} ends with '/'"));
    }
    if let Some(bad) = path[1..]
        .split('/')
        .find(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err(format!("node path {path:?} has the component {bad:?}"));
    }
    if let Some(c) = path.chars().find(|&c| {
        c == '\0' || ('\u{1}'..='\u{1f}').contains(&c) || ('\u{7f}'..='\u{9f}').contains(&c)
    }) {
        return Err(format!(
            "node path {path:?} contains the control character {:#x}",
            c as u32
        ));
    }
    Ok(())
}

/// Parse and verify the stream, handing every record to `visit` (whose refusal is reported as
/// damage at that record). Returns only if both checksums matched and nothing follows the end.
fn parse(
    src: &mut Src<'_>,
    visit: &mut dyn FnMut(Item) -> Result<(), String>,
) -> Result<Trailer, SnapError> {
    let magic = src.i32("the file header")?;
    if magic != SNAP_MAGIC {
        return Err(src.corrupt(
            0,
            format!(
                "bad magic {magic:#010x}, expected 0x5a4b534e (\"ZKSN\"); this is not a snapshot"
            ),
        ));
    }
    // ZooKeeper does not check the version or dbid either; the checksum covers them.
    let version = src.i32("the file header")?;
    let dbid = src.i64("the file header")?;
    let mut emit = |src: &Src<'_>, at: u64, item: Item| visit(item).map_err(|r| src.corrupt(at, r));
    emit(
        src,
        0,
        Item::Header {
            magic,
            version,
            dbid,
        },
    )?;

    let sessions = src.count("the session count")?;
    for _ in 0..sessions {
        let at = src.pos;
        let id = src.i64("a session id")?;
        let timeout = src.i32("a session timeout")?;
        emit(src, at, Item::Session { id, timeout })?;
    }

    let lists = src.count("the ACL list count")?;
    for _ in 0..lists {
        let at = src.pos;
        let r = src.i64("an ACL ref")?;
        let n = src.count("an ACL list's length")?;
        // No up-front capacity from the count: each entry must really be there to be pushed.
        let mut acls = Vec::new();
        for _ in 0..n {
            acls.push(src.acl()?);
        }
        emit(src, at, Item::Acl { r, acls })?;
    }

    let mut first = true;
    loop {
        let at = src.pos;
        let path = src.string("a node path or the end marker")?;
        if path == "/" {
            break;
        }
        if first {
            if !path.is_empty() {
                return Err(src.corrupt(
                    at,
                    format!("the first node must be the root (\"\"), found {path:?}"),
                ));
            }
        } else {
            check_path(&path).map_err(|r| src.corrupt(at, r))?;
        }
        first = false;
        let data = src.bytes("a node's data")?;
        let acl = src.i64("a node's ACL ref")?;
        let stat = src.stat()?;
        emit(
            src,
            at,
            Item::Node {
                path,
                data,
                acl,
                stat,
            },
        )?;
    }
    let seal1 = src.seal("checksum #1")?;

    // The digest section is optional (ZooKeeper < 3.6 or digests disabled): a clean end here is
    // a complete snapshot. A partial section is damage, although ZooKeeper would shrug it off.
    let at = src.pos;
    let mut zxid_bytes = [0u8; 8];
    let n = src.fill(&mut zxid_bytes, "the digest section")?;
    if n == 0 {
        return Ok(Trailer {
            seal1,
            digest: None,
            last_zxid: None,
            len: src.pos,
        });
    }
    if n < zxid_bytes.len() {
        return Err(src.corrupt(
            at,
            "the file ends inside the digest section; it was cut short",
        ));
    }
    let zxid = i64::from_be_bytes(zxid_bytes);
    // Here a digest version (2 today, never 0) or, in a 3.9 file written without digests, the
    // zero high half of the checksum after the last processed zxid.
    let sum_so_far = src.adler.value();
    let version = src.i32("the digest version")?;
    if version == 0 {
        let at = src.pos;
        let low = src.i32("checksum #3")? as u32;
        if low != sum_so_far {
            return Err(src.corrupt(
                at - 4,
                format!("neither a digest version nor checksum #3: found 0, then {low:#010x}, but the bytes before sum to {sum_so_far:#010x} (Adler32)"),
            ));
        }
        end_marker(src, "checksum #3")?;
        expect_end(src)?;
        return Ok(Trailer {
            seal1,
            digest: None,
            last_zxid: Some((zxid, low)),
            len: src.pos,
        });
    }
    let digest = if version < 2 {
        // Versions before 2 stored the digest as a hex string.
        let at = src.pos;
        let text = src.string("a digest")?;
        if text.is_empty() {
            0
        } else {
            u64::from_str_radix(&text, 16)
                .map(|v| v as i64)
                .map_err(|_| src.corrupt(at, format!("digest {text:?} is not hex")))?
        }
    } else {
        src.i64("the digest")?
    };
    let seal2 = src.seal("checksum #2")?;
    // ZooKeeper 3.9 goes on with the last processed zxid and a third checksum.
    let at = src.pos;
    let n = src.fill(&mut zxid_bytes, "the last processed zxid")?;
    let last_zxid = match n {
        0 => None,
        8 => {
            let last = i64::from_be_bytes(zxid_bytes);
            let seal3 = src.seal("checksum #3")?;
            expect_end(src)?;
            Some((last, seal3))
        }
        _ => {
            return Err(src.corrupt(
                at,
                "the file ends inside the last processed zxid; it was cut short",
            ))
        }
    };
    Ok(Trailer {
        seal1,
        digest: Some((
            DigestSection {
                zxid,
                version,
                digest,
            },
            seal2,
        )),
        last_zxid,
        len: src.pos,
    })
}

/// The "/" after a checksum.
fn end_marker(src: &mut Src<'_>, which: &str) -> Result<(), SnapError> {
    let at = src.pos;
    let marker = src.string("the \"/\" after a checksum")?;
    if marker != "/" {
        return Err(src.corrupt(
            at,
            format!("expected \"/\" after {which}, found {marker:?}"),
        ));
    }
    Ok(())
}

/// Nothing may follow the last checksum.
fn expect_end(src: &mut Src<'_>) -> Result<(), SnapError> {
    let mut extra = [0u8; 1];
    if src.fill(&mut extra, "the end of the file")? != 0 {
        return Err(src.corrupt(src.pos - 1, "unexpected bytes after the final seal"));
    }
    Ok(())
}

/// A ref as files store it (a long), as the tree holds it.
fn acl_ref(r: i64) -> Result<AclRef, String> {
    AclRef::try_from(r).map_err(|_| {
        format!("ACL ref {r} is out of range: refs count up from 1, so the file is damaged")
    })
}

/// Builds a [`DataTree`] from the records of [`parse`].
struct Builder {
    tree: DataTree,
    acl_refs: BTreeSet<i64>,
}

impl Builder {
    fn new() -> Builder {
        Builder {
            tree: DataTree::empty_for_restore(),
            acl_refs: BTreeSet::new(),
        }
    }

    fn add(&mut self, item: Item) -> Result<(), String> {
        match item {
            Item::Header { .. } => Ok(()),
            Item::Session { id, timeout } => {
                if self.tree.sessions().contains_key(&id) {
                    return Err(format!("session {id:#x} is listed twice"));
                }
                self.tree.restore_session(id, timeout);
                Ok(())
            }
            Item::Acl { r, acls } => {
                // A second list under one ref would leave the cache mapping a list to the wrong
                // ref, granting one list's permissions to another's nodes.
                if !self.acl_refs.insert(r) {
                    return Err(format!("ACL ref {r} is defined twice"));
                }
                self.tree.acls.restore(acl_ref(r)?, acls);
                Ok(())
            }
            Item::Node {
                path,
                data,
                acl,
                stat,
            } => self.tree.restore_node(&path, data, acl_ref(acl)?, stat),
        }
    }

    fn finish(mut self, zxid: i64) -> Result<DataTree, String> {
        for required in ["/", "/zookeeper", QUOTA_ROOT] {
            if self.tree.get(required).is_none() {
                return Err(format!("the snapshot has no {required} node"));
            }
        }
        if self.tree.get(CONFIG_NODE).is_none() {
            // Snapshots from 3.4 predate /zookeeper/config; ZooKeeper adds it on upgrade
            // (`DataTree.addConfigNode`), and the tree relies on it existing. It is below
            // /zookeeper/, so the digest does not change.
            let acl = self.tree.acls.intern(&Acl::read_unsafe());
            let node = Node {
                data: Some(zooid_tree::Data::new(&[])),
                acl,
                stat: StatPersisted {
                    aversion: -1,
                    ..Default::default()
                },
                ..Default::default()
            };
            self.tree.insert_raw(CONFIG_NODE, node);
        }
        self.tree.acls.purge_unused();
        self.tree.set_last_zxid(zxid);
        Ok(self.tree)
    }
}

/// The digest worth returning: the (0, 2, 0) placeholder and other algorithms are not.
fn usable_digest(path: &Path, d: Option<DigestSection>) -> Option<(i64, i64)> {
    let d = d?;
    if d.zxid <= 0 {
        return None;
    }
    if d.version != DIGEST_VERSION {
        tracing::info!(file = %path.display(), version = d.version, "snapshot digest uses another digest version; not comparing it");
        return None;
    }
    Some((d.zxid, d.digest))
}

/// Read and verify one snapshot file (decoder chosen by extension).
pub fn read_snapshot(path: &Path) -> Result<Snapshot, SnapError> {
    let (zxid, mode) = name_of(path)?;
    load(Src::open(path, mode)?, zxid)
}

/// Read and verify an uncompressed stream held in memory, as a snapshot named after `zxid`;
/// `path` names it in errors.
pub fn decode_stream(stream: &[u8], path: &Path, zxid: i64) -> Result<Snapshot, SnapError> {
    let src = Src {
        inner: Box::new(stream),
        adler: Adler32::new(),
        pos: 0,
        len: Some(stream.len() as u64),
        path,
    };
    load(src, zxid)
}

fn load(mut src: Src<'_>, zxid: i64) -> Result<Snapshot, SnapError> {
    let path = src.path;
    let mut builder = Builder::new();
    let trailer = parse(&mut src, &mut |item| builder.add(item))?;
    let tree = builder
        .finish(zxid)
        .map_err(|reason| src.corrupt(trailer.len, reason))?;
    let snap = Snapshot {
        tree,
        zxid,
        digest: usable_digest(path, trailer.digest.map(|(d, _)| d)),
        layout: if trailer.last_zxid.is_some() {
            Layout::Zk39
        } else {
            Layout::Zk38
        },
    };
    if snap.digest_matches() == Some(false) {
        // ZooKeeper only counts and logs digest mismatches; the checksums already vouch for the
        // bytes, so this points at a divergence in how the tree was built, not at damage.
        tracing::warn!(
            file = %path.display(),
            stored = snap.digest.map_or(0, |d| d.1),
            computed = snap.tree.digest(),
            "snapshot digest does not match the loaded tree"
        );
    }
    Ok(snap)
}

/// The newest snapshot that reads and verifies, with a list of the ones skipped and why (to log).
/// None if there is none.
///
/// As ZooKeeper does: files failing the cheap validity pre-check are skipped; of the (at most
/// 100) others, newest first, the first that reads with good checksums wins. If some passed the
/// pre-check but none could be read, this is an error ("Not able to find valid snapshots"), not
/// `None`, so that a damaged dataDir is never mistaken for an empty one.
pub fn load_latest(dir: &Path) -> Result<(Option<Snapshot>, Skipped), SnapError> {
    let mut skipped = Vec::new();
    let mut candidates = 0;
    for (_, path) in snapshot_files(dir)? {
        if candidates == MAX_CANDIDATES {
            break;
        }
        let (_, mode) = name_of(&path)?;
        if let Err(why) = precheck(&path, mode) {
            skipped.push((
                path,
                format!("not a complete snapshot (ZooKeeper skips it too): {why}"),
            ));
            continue;
        }
        candidates += 1;
        match read_snapshot(&path) {
            Ok(snap) => return Ok((Some(snap), skipped)),
            Err(e) => skipped.push((path, short_reason(&e))),
        }
    }
    if candidates > 0 {
        return Err(SnapError::NoValidSnapshot {
            dir: dir.to_owned(),
            skipped,
        });
    }
    Ok((None, skipped))
}

/// Why a file was skipped, without the path and advice the full message repeats.
fn short_reason(e: &SnapError) -> String {
    match e {
        SnapError::Corrupt { offset, reason, .. } => {
            format!("damaged at byte {offset} of the uncompressed stream: {reason}")
        }
        SnapError::Io { source, .. } => format!("I/O error: {source}"),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Writing.
// ---------------------------------------------------------------------------------------------

/// Jute encoder over a byte sink, checksumming what it hands on.
struct Enc<'a> {
    w: Writer,
    adler: Adler32,
    out: &'a mut dyn Write,
}

impl Enc<'_> {
    fn spill(&mut self) -> io::Result<()> {
        self.adler.update(&self.w.buf);
        self.out.write_all(&self.w.buf)?;
        self.w.buf.clear();
        Ok(())
    }

    fn spill_if_full(&mut self) -> io::Result<()> {
        if self.w.len() >= SPILL_AT {
            self.spill()?;
        }
        Ok(())
    }

    /// Bytes encoded elsewhere, after what is buffered.
    fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.spill()?;
        self.adler.update(bytes);
        self.out.write_all(bytes)
    }

    fn seal(&mut self) -> io::Result<()> {
        self.spill()?;
        let sum = self.adler.value();
        self.w.write_i64(i64::from(sum));
        self.w.write_string("/");
        Ok(())
    }
}

/// One node record of the stream (the snapshot names the root "").
fn encode_node(w: &mut Writer, path: &str, node: &Node) {
    w.write_string(if path == "/" { "" } else { path });
    w.write_opt_buffer(node.data.as_deref());
    w.write_i64(node.acl.into());
    let s = &node.stat;
    w.write_i64(s.czxid);
    w.write_i64(s.mzxid);
    w.write_i64(s.ctime);
    w.write_i64(s.mtime);
    w.write_i32(s.version);
    w.write_i32(s.cversion);
    w.write_i32(s.aversion);
    w.write_i64(s.ephemeral_owner);
    w.write_i64(s.pzxid);
}

/// What a written snapshot ends with after the digest section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Nothing: ZooKeeper 3.8's layout.
    None,
    /// ZooKeeper 3.9's last processed zxid and third checksum.
    LastZxid(i64),
}

impl Tail {
    pub(crate) fn new(layout: Layout, last_zxid: i64) -> Tail {
        match layout {
            Layout::Zk38 => Tail::None,
            Layout::Zk39 => Tail::LastZxid(last_zxid),
        }
    }
}

/// The stream's body: `sessions`, `acls`, the node records `nodes` writes, and the
/// end-of-nodes "/".
fn encode_body(
    e: &mut Enc<'_>,
    sessions: &[(i64, i32)],
    acls: &[(i64, &[Acl])],
    nodes: impl FnOnce(&mut Enc<'_>) -> io::Result<()>,
) -> io::Result<()> {
    e.w.write_len(sessions.len());
    for &(id, timeout) in sessions {
        e.w.write_i64(id);
        e.w.write_i32(timeout);
        e.spill_if_full()?;
    }
    // Written in full, unused lists included, as ZooKeeper does; readers purge them.
    e.w.write_len(acls.len());
    for &(r, list) in acls {
        e.w.write_i64(r);
        write_acls(&mut e.w, list);
        e.spill_if_full()?;
    }
    nodes(e)?;
    e.w.write_string("/");
    Ok(())
}

/// A stream whose body (sessions through the end-of-nodes "/", what a leader sends after SNAP)
/// was encoded already: header, `body`, the seals and the digest section.
pub(crate) fn encode_around(
    body: &[u8],
    digest: Option<(i64, i64)>,
    tail: Tail,
    out: &mut dyn Write,
) -> io::Result<()> {
    encode_framed(|e| e.raw(body), digest, tail, out)
}

/// Header, the body `body` writes, the seals and the digest section.
fn encode_framed(
    body: impl FnOnce(&mut Enc<'_>) -> io::Result<()>,
    digest: Option<(i64, i64)>,
    tail: Tail,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut e = Enc {
        w: Writer::new(),
        adler: Adler32::new(),
        out,
    };
    e.w.write_i32(SNAP_MAGIC);
    e.w.write_i32(SNAP_VERSION);
    e.w.write_i64(SNAP_DBID);
    body(&mut e)?;
    e.seal()?;
    // No digest yet is written as ZooKeeper's empty ZxidDigest (0, 2, 0).
    let (zxid, value) = digest.unwrap_or((0, 0));
    e.w.write_i64(zxid);
    e.w.write_i32(DIGEST_VERSION);
    e.w.write_i64(value);
    e.seal()?;
    if let Tail::LastZxid(last) = tail {
        e.w.write_i64(last);
        e.seal()?;
    }
    e.spill()
}

/// Encode `tree` into `out` as the uncompressed snapshot stream.
fn encode_to(
    tree: &DataTree,
    digest: Option<(i64, i64)>,
    layout: Layout,
    out: &mut dyn Write,
) -> io::Result<()> {
    let tail = Tail::new(layout, tree.last_zxid());
    encode_framed(|e| encode_tree_body(e, tree), digest, tail, out)
}

/// The body of `tree`'s stream, nodes in the order ZooKeeper writes them (depth first, each
/// parent's children by name).
fn encode_tree_body(e: &mut Enc<'_>, tree: &DataTree) -> io::Result<()> {
    let sessions: Vec<(i64, i32)> = tree.sessions().iter().map(|(&s, &t)| (s, t)).collect();
    let acls: Vec<(i64, &[Acl])> = tree.acls.entries().map(|(r, l)| (r.into(), l)).collect();
    let nodes = |e: &mut Enc<'_>| {
        let mut failed = None;
        tree.walk(|path, node| {
            if failed.is_none() {
                encode_node(&mut e.w, path, node);
                if let Err(err) = e.spill_if_full() {
                    failed = Some(err);
                }
            }
        });
        failed.map_or(Ok(()), Err)
    };
    encode_body(e, &sessions, &acls, nodes)
}

/// The body of `tree`'s stream without header, seals or digest: what a leader sends after
/// SNAP (`ZKDatabase.serializeSnapshot`).
pub(crate) fn tree_body(tree: &DataTree) -> Vec<u8> {
    body_bytes(|e| encode_tree_body(e, tree))
}

/// A stream body `write` encodes, collected in memory.
fn body_bytes(write: impl FnOnce(&mut Enc<'_>) -> io::Result<()>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = Enc {
        w: Writer::new(),
        adler: Adler32::new(),
        out: &mut out,
    };
    write(&mut e)
        .and_then(|()| e.spill())
        .expect("Vec<u8> accepts every write");
    out
}

/// A point-in-time snapshot that the server takes in microseconds and encodes elsewhere.
///
/// It shares the node table's chunks with the live tree, which copies a chunk before changing
/// it while a frozen copy is alive (see [`FrozenNodes`]). So the core thread only counts
/// references and copies the session and ACL tables; the thread that writes the file does the
/// encoding, as ZooKeeper's snapshot thread does, but of one consistent state: every node as
/// of the zxid the file is named after, with that zxid's digest.
pub struct FrozenSnapshot {
    sessions: Vec<(i64, i32)>,
    acls: Vec<(i64, std::sync::Arc<[Acl]>)>,
    /// The zxid the snapshot is named after, and the tree digest there.
    digest: (i64, i64),
    nodes: FrozenNodes,
    layout: Layout,
}

impl FrozenSnapshot {
    pub fn take(tree: &DataTree, layout: Layout) -> FrozenSnapshot {
        FrozenSnapshot {
            sessions: tree.sessions().iter().map(|(&s, &t)| (s, t)).collect(),
            acls: tree
                .acls
                .shared_entries()
                .map(|(r, l)| (r.into(), l))
                .collect(),
            digest: (tree.last_zxid(), tree.digest()),
            nodes: tree.freeze_nodes(),
            layout,
        }
    }

    /// The zxid the snapshot is named after.
    pub fn zxid(&self) -> i64 {
        self.digest.0
    }

    /// The stream's body (sessions, ACL lists, nodes, the end-of-nodes "/") into `e`,
    /// stopping with an error once `cancelled` says so.
    fn write_body(&self, e: &mut Enc<'_>, cancelled: &dyn Fn() -> bool) -> io::Result<()> {
        let acls: Vec<(i64, &[Acl])> = self.acls.iter().map(|(r, l)| (*r, &l[..])).collect();
        let nodes = |e: &mut Enc<'_>| {
            let mut failed = None;
            self.nodes.for_each_parents_first(|path, node| {
                if failed.is_some() {
                    return;
                }
                encode_node(&mut e.w, path, node);
                if e.w.len() >= SPILL_AT {
                    failed = if cancelled() {
                        Some(io::Error::new(
                            io::ErrorKind::Interrupted,
                            "snapshot cancelled: the tree it was taken of was replaced",
                        ))
                    } else {
                        e.spill().err()
                    };
                }
            });
            failed.map_or(Ok(()), Err)
        };
        encode_body(e, &self.sessions, &acls, nodes)
    }

    fn encode_to(&self, out: &mut dyn Write, cancelled: &dyn Fn() -> bool) -> io::Result<()> {
        // A point-in-time state: the last processed zxid is the one it is named after.
        let tail = Tail::new(self.layout, self.zxid());
        encode_framed(
            |e| self.write_body(e, cancelled),
            Some(self.digest),
            tail,
            out,
        )
    }

    /// The body of the stream without header, seals or digest: what a leader sends after
    /// SNAP, of this point-in-time state (see [`crate::sync::sync_stream_body`]).
    pub fn encode_body(&self) -> Vec<u8> {
        body_bytes(|e| self.write_body(e, &|| false))
    }

    /// The uncompressed stream.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_to(&mut out, &|| false)
            .expect("Vec<u8> accepts every write");
        out
    }

    /// Encode and write `snapshot.<zxid>` into `dir` under a temporary name and rename it into
    /// place, without fsync, as ZooKeeper writes its background snapshots: a 100 MB flush
    /// would hold up the txn log's fsyncs behind it. Nothing depends on the file until
    /// [`make_durable`] (called before purging what it replaces); a crash before then leaves
    /// at worst a damaged newest snapshot, which recovery skips for the older one and the logs
    /// after it. `cancelled` is asked as the write goes: once it says true the write stops
    /// with an error and leaves no file.
    pub fn write(
        &self,
        dir: &Path,
        compression: &str,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<PathBuf, SnapError> {
        write_file(dir, self.zxid(), compression, false, |w| {
            self.encode_to(w, cancelled)
        })
    }
}

/// fsync a snapshot file and its directory (before anything older is deleted on its account).
pub fn make_durable(path: &Path) -> Result<(), SnapError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io_err(path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    sync_dir(dir).map_err(io_err(dir))
}

/// The uncompressed snapshot stream of `tree` (what [`write_snapshot`] compresses and stores).
/// `digest` as for [`write_snapshot`].
pub fn encode_snapshot(tree: &DataTree, digest: Option<(i64, i64)>) -> Vec<u8> {
    encode_snapshot_as(tree, digest, Layout::Zk38)
}

/// [`encode_snapshot`] in the given layout.
pub fn encode_snapshot_as(tree: &DataTree, digest: Option<(i64, i64)>, layout: Layout) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    encode_to(tree, digest, layout, &mut out).expect("Vec<u8> accepts every write");
    out
}

/// Encode into `file` in the given form; returns the file, flushed but not yet synced.
fn write_stream(
    file: File,
    mode: Mode,
    encode: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<File> {
    let mut buffered = BufWriter::with_capacity(256 * 1024, file);
    let buffered = match mode {
        Mode::Plain => {
            encode(&mut buffered)?;
            buffered
        }
        Mode::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(buffered, flate2::Compression::default());
            encode(&mut gz)?;
            gz.finish()?
        }
        Mode::Snappy => {
            let mut sn = XerialWriter::new(buffered)?;
            encode(&mut sn)?;
            sn.finish()?
        }
    };
    buffered
        .into_inner()
        .map_err(io::IntoInnerError::into_error)
}

/// Make a rename in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Serialize `tree` as ZooKeeper would for a snapshot named after `zxid`; `digest` is (zxid, tree
/// digest) of the last applied txn or None for the (0, 2, 0) placeholder. `compression`: "" |
/// "gz" | "snappy" picks the format and file extension (anything else means plain, as in
/// ZooKeeper).
///
/// Atomic: the stream goes to `.snapshot.<zxid>[.ext].tmp` in `dir` (a name neither ZooKeeper nor
/// [`snapshot_files`] take for a snapshot), which is fsynced and renamed into place, and then the
/// directory is fsynced. An existing snapshot of the same name is replaced.
pub fn write_snapshot(
    dir: &Path,
    tree: &DataTree,
    zxid: i64,
    digest: Option<(i64, i64)>,
    compression: &str,
) -> Result<PathBuf, SnapError> {
    write_file(dir, zxid, compression, true, |w| {
        encode_to(tree, digest, Layout::Zk38, w)
    })
}

pub(crate) fn write_file(
    dir: &Path,
    zxid: i64,
    compression: &str,
    sync: bool,
    encode: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<PathBuf, SnapError> {
    if zxid < 0 {
        return Err(SnapError::BadZxid { zxid });
    }
    let mode = Mode::from_setting(compression);
    let name = format!("{PREFIX}.{zxid:x}{}", mode.ext());
    let target = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        let file = write_stream(file, mode, encode).map_err(io_err(&tmp))?;
        if sync {
            file.sync_all().map_err(io_err(&tmp))?;
        }
        drop(file);
        fs::rename(&tmp, &target).map_err(io_err(&target))?;
        if sync {
            sync_dir(dir).map_err(io_err(dir))?;
        }
        Ok(())
    })();
    if result.is_err() {
        // Best effort: the temporary name is never read, this only saves the space.
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| target)
}

// ---------------------------------------------------------------------------------------------
// Dump.
// ---------------------------------------------------------------------------------------------

/// `ms` since the epoch as an ISO-8601 UTC time.
fn utc(ms: i64) -> String {
    zooid_proto::timefmt::iso_utc(ms)
}

fn perms(p: i32) -> String {
    let mut s = String::new();
    for (bit, c) in [(4, 'c'), (8, 'd'), (1, 'r'), (2, 'w'), (16, 'a')] {
        if p & bit != 0 {
            s.push(c);
        }
    }
    if p & !31 != 0 {
        let _ = write!(s, "+{:#x}", p & !31);
    }
    if s.is_empty() {
        s.push('-');
    }
    s
}

fn fmt_acls(acls: &[Acl]) -> String {
    let parts: Vec<String> = acls
        .iter()
        .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, perms(a.perms)))
        .collect();
    format!("[{}]", parts.join(", "))
}

fn fmt_data(d: Option<&[u8]>) -> String {
    match d {
        None => "null".into(),
        Some(b) if b.iter().all(|&c| (0x20..0x7f).contains(&c)) => {
            format!("{:?}", String::from_utf8_lossy(b))
        }
        Some(b) => format!("0x{}", hex(b)),
    }
}

fn fmt_owner(raw: i64) -> String {
    match Owner::from_raw(raw) {
        Owner::None => "0x0 (persistent)".into(),
        Owner::Session(s) => format!("{s:#x} (ephemeral)"),
        Owner::Container => format!("{raw:#x} (container)"),
        Owner::Ttl(ttl) => format!("{raw:#x} (TTL {ttl} ms)"),
    }
}

/// Human-readable dump in the spirit of ZooKeeper's SnapshotFormatter/zkSnapShotToolkit: header,
/// sessions, then every node with its Stat (and data when `with_data`), plus counts and the
/// digest; and a `verify`-style check. What was decoded is written even when the file turns out
/// to be damaged; the error is then returned after a final "verify: FAILED" line.
pub fn dump(path: &Path, with_data: bool, out: &mut dyn fmt::Write) -> Result<(), SnapError> {
    let (zxid, mode) = name_of(path)?;
    // Collected in a String (whose writes cannot fail) so the visitor needs no error channel.
    let mut s = String::new();
    let disk = fs::metadata(path).map_err(io_err(path))?.len();
    let _ = writeln!(s, "Snapshot {}", path.display());
    let _ = writeln!(s, "  zxid (file name)  {zxid:#x}");
    let _ = writeln!(
        s,
        "  format            {}, {disk} bytes on disk",
        mode.describe()
    );
    match precheck(path, mode) {
        Ok(()) => {
            let _ = writeln!(s, "  pre-check         ok (ZooKeeper's isValidSnapshot)");
        }
        Err(why) => {
            let _ = writeln!(
                s,
                "  pre-check         FAILS, ZooKeeper would skip this file: {why}"
            );
        }
    }
    let mut builder = Builder::new();
    let mut nodes = 0u64;
    let mut data_bytes = 0u64;
    let result = Src::open(path, mode).and_then(|mut src| {
        let trailer = parse(&mut src, &mut |item| {
            match &item {
                Item::Header { magic, version, dbid } => {
                    let _ = writeln!(s, "  header            magic {magic:#010x} (ZKSN) version {version} dbid {dbid}");
                }
                Item::Session { id, timeout } => {
                    let _ = writeln!(s, "  session           {id:#x} timeout {timeout} ms");
                }
                Item::Acl { r, acls } => {
                    let _ = writeln!(s, "  ACL cache         {r} -> {}", fmt_acls(acls));
                }
                Item::Node { path, data, acl, stat } => {
                    if nodes == 0 {
                        let _ = writeln!(s, "ZNode Details (file order, stored cversion):\n----");
                    }
                    nodes += 1;
                    data_bytes += data.as_ref().map_or(0, |d| d.len() as u64);
                    let shown = if path.is_empty() { "/" } else { path };
                    let _ = writeln!(s, "{shown}");
                    let _ = writeln!(s, "  cZxid = {:#x}", { stat.czxid });
                    let _ = writeln!(s, "  ctime = {} ({})", { stat.ctime }, utc(stat.ctime));
                    let _ = writeln!(s, "  mZxid = {:#x}", { stat.mzxid });
                    let _ = writeln!(s, "  mtime = {} ({})", { stat.mtime }, utc(stat.mtime));
                    let _ = writeln!(s, "  pZxid = {:#x}", { stat.pzxid });
                    let _ = writeln!(s, "  cversion = {}", stat.cversion);
                    let _ = writeln!(s, "  dataVersion = {}", stat.version);
                    let _ = writeln!(s, "  aclVersion = {}", stat.aversion);
                    let _ = writeln!(s, "  ephemeralOwner = {}", fmt_owner(stat.ephemeral_owner));
                    let _ = writeln!(s, "  aclRef = {acl}");
                    match data {
                        None => {
                            let _ = writeln!(s, "  dataLength = 0 (null)");
                        }
                        Some(d) => {
                            let _ = writeln!(s, "  dataLength = {}", d.len());
                        }
                    }
                    if with_data {
                        let _ = writeln!(s, "  data = {}", fmt_data(data.as_deref()));
                    }
                    let _ = writeln!(s, "----");
                }
            }
            builder.add(item)
        })?;
        Ok((src, trailer))
    });
    let result = result.and_then(|(src, trailer)| {
        let _ = writeln!(s, "Summary:");
        let _ = writeln!(s, "  uncompressed stream  {} bytes", trailer.len);
        let _ = writeln!(s, "  checksum #1          {:#010x} ok", trailer.seal1);
        match trailer.digest {
            None => {
                let _ = writeln!(s, "  digest section       absent (written before ZooKeeper 3.6 or with digests disabled)");
            }
            Some((d, seal2)) => {
                let _ = writeln!(s, "  digest section       zxid {:#x} version {} digest {}", d.zxid, d.version, d.digest);
                let _ = writeln!(s, "  checksum #2          {seal2:#010x} ok");
            }
        }
        match trailer.last_zxid {
            None => {
                let _ = writeln!(s, "  last processed zxid  absent (ZooKeeper 3.8 layout)");
            }
            Some((z, seal3)) => {
                let _ = writeln!(s, "  last processed zxid  {z:#x} (ZooKeeper 3.9 layout)");
                let _ = writeln!(s, "  checksum #3          {seal3:#010x} ok");
            }
        }
        let tree = builder.finish(zxid).map_err(|r| src.corrupt(trailer.len, r))?;
        let sessions = tree.sessions();
        let ephemerals = tree.ephemeral_count();
        let _ = writeln!(s, "  nodes                {nodes} ({data_bytes} bytes of data)");
        let _ = writeln!(s, "  sessions             {} ({ephemerals} ephemeral nodes)", sessions.len());
        for (&id, &timeout) in sessions {
            let _ = writeln!(s, "    {id:#x} timeout {timeout} ms, {} ephemerals", tree.ephemerals_of(id).len());
        }
        let _ = writeln!(s, "  ACL lists in use     {}", tree.acls.len());
        let computed = tree.digest();
        let digest = trailer.digest.map(|(d, _)| d);
        let verdict = match (digest, usable_digest(path, digest)) {
            (None, _) => "nothing to compare".to_string(),
            (Some(_), None) => "placeholder or other digest version; nothing to compare".to_string(),
            (Some(_), Some((dz, dd))) if dz == zxid => {
                if dd == computed {
                    "matches the stored digest".to_string()
                } else {
                    format!("DIFFERS from the stored digest {dd}")
                }
            }
            (Some(_), Some((dz, _))) => format!(
                "not comparable: fuzzy snapshot, the stored digest is for zxid {dz:#x} (checked after replaying it)"
            ),
        };
        let _ = writeln!(s, "  tree digest          {computed} ({verdict})");
        let _ = writeln!(s, "verify: OK");
        Ok(())
    });
    if let Err(e) = &result {
        let _ = writeln!(s, "verify: FAILED: {e}");
    }
    out.write_str(&s)?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_refs_beyond_an_i32_are_refused_by_name() {
        assert_eq!(acl_ref(-1), Ok(-1));
        assert_eq!(acl_ref(7), Ok(7));
        let e = acl_ref(1 << 40).unwrap_err();
        assert!(e.contains("ACL ref 1099511627776 is out of range"), "{e}");
    }

    #[test]
    fn names_parse_like_zookeeper() {
        assert_eq!(parse_name("snapshot.0"), Some((0, Mode::Plain)));
        assert_eq!(parse_name("snapshot.13.gz"), Some((0x13, Mode::Gzip)));
        assert_eq!(
            parse_name("snapshot.100000012.snappy"),
            Some((0x1_0000_0012, Mode::Snappy))
        );
        assert_eq!(parse_name("snapshot.5.bak"), Some((5, Mode::Plain)));
        assert_eq!(
            parse_name("snapshot.7fffffffffffffff"),
            Some((i64::MAX, Mode::Plain))
        );
        for bad in [
            "snapshot",
            "snapshot.",
            "snapshot.gz",
            "snapshot.-1",
            "snapshot.ffffffffffffffff",
            "log.1",
            ".snapshot.1.tmp",
            "snapshots.1",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn utc_formats() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59.999Z");
        // Hostile values must format without overflow.
        let _ = utc(i64::MIN);
        let _ = utc(i64::MAX);
    }

    #[test]
    fn xerial_round_trip_and_framing() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        let mut w = XerialWriter::new(Vec::new()).unwrap();
        w.write_all(&data).unwrap();
        let framed = w.finish().unwrap();
        assert_eq!(framed[..8], XERIAL_MAGIC);
        assert_eq!(framed[8..16], [0, 0, 0, 1, 0, 0, 0, 1]);
        let mut back = Vec::new();
        XerialReader::new(&framed[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        // Two concatenated streams read as one.
        let mut two = framed.clone();
        two.extend_from_slice(&framed);
        let mut back = Vec::new();
        XerialReader::new(&two[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), data.len() * 2);
    }

    #[test]
    fn xerial_rejects_forged_lengths() {
        let mut f = XERIAL_MAGIC.to_vec();
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        f.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
        f.extend_from_slice(&[0xff; 10]);
        assert!(XerialReader::new(&f[..])
            .read_to_end(&mut Vec::new())
            .is_err());
        // A block header claiming far more output than its size allows.
        let mut f = XERIAL_MAGIC.to_vec();
        f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        f.extend_from_slice(&5i32.to_be_bytes());
        f.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(XerialReader::new(&f[..])
            .read_to_end(&mut Vec::new())
            .is_err());
    }

    #[test]
    fn paths_are_checked() {
        assert!(check_path("/a/b").is_ok());
        for bad in ["a", "/a/", "//a", "/a//b", "/a/./b", "/..", "/a\0b", "/"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }
}
