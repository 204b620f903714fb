//! The quorum port's framing (`zab.md` §1, §3, §5.4): jute `QuorumPacket` records back to back,
//! with **no length prefix**, so a packet's end is only known by parsing it; and, right after a
//! SNAP from the leader, an unframed snapshot stream on the same connection.
//!
//! ```text
//! QuorumPacket
//!   int32  type                  1..=19 (PacketType)
//!   int64  zxid
//!   int32  dataLen | -1 (null)   then dataLen bytes       (<= jute.maxbuffer + extrasize)
//!   int32  authCount | -1 (null) then authCount x Id
//! Id
//!   int32 len, UTF-8 scheme      (-1 would be null; refused here)
//!   int32 len, UTF-8 id
//! smallest packet: 20 bytes = type, zxid, ffffffff, ffffffff
//!
//! after SNAP (leader -> learner only), unframed:
//!   int32 sessionCount, sessionCount x { int64 sessionId; int32 timeoutMs }
//!   int32 aclCount,     aclCount x { int64 ref; int32 n; n x { int32 perms; Id } }
//!   node* { ustring path; buffer data; int64 aclRef; StatPersisted (60 bytes) }
//!   ustring "/"                  end of nodes
//!   ustring "BenWasHere"         signature
//! ```
//!
//! [`QuorumDecoder`] is incremental and sans-IO: give it the bytes received so far, it answers
//! "need more", one packet, or a run of whole snapshot items, with how many bytes it used.
//! Every length is checked against [`QuorumLimits`] before it waits for more, so a hostile
//! peer cannot make us buffer more than `max_record_len` bytes for one record.

use std::fmt;

use zooid_proto::Id;

use crate::error::WireError;
use crate::ids::Zxid;

/// The 19 packet types of `Leader.java`, plus whatever else a peer may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    Request,
    Proposal,
    Ack,
    Commit,
    Ping,
    Revalidate,
    Sync,
    Inform,
    CommitAndActivate,
    NewLeader,
    FollowerInfo,
    UpToDate,
    Diff,
    Trunc,
    Snap,
    ObserverInfo,
    LeaderInfo,
    AckEpoch,
    InformAndActivate,
    /// A code Java does not define; kept so the stream can go on (Java logs and ignores it).
    Unknown(i32),
}

impl PacketType {
    /// Every defined type, in code order 1..=19.
    pub const ALL: [PacketType; 19] = [
        PacketType::Request,
        PacketType::Proposal,
        PacketType::Ack,
        PacketType::Commit,
        PacketType::Ping,
        PacketType::Revalidate,
        PacketType::Sync,
        PacketType::Inform,
        PacketType::CommitAndActivate,
        PacketType::NewLeader,
        PacketType::FollowerInfo,
        PacketType::UpToDate,
        PacketType::Diff,
        PacketType::Trunc,
        PacketType::Snap,
        PacketType::ObserverInfo,
        PacketType::LeaderInfo,
        PacketType::AckEpoch,
        PacketType::InformAndActivate,
    ];

    pub fn from_code(code: i32) -> PacketType {
        match code {
            1..=19 => PacketType::ALL[code as usize - 1],
            other => PacketType::Unknown(other),
        }
    }

    pub fn code(self) -> i32 {
        match self {
            PacketType::Unknown(c) => c,
            known => {
                PacketType::ALL
                    .iter()
                    .position(|t| *t == known)
                    .unwrap_or(0) as i32
                    + 1
            }
        }
    }

    /// The name `Leader.getPacketType` prints.
    pub fn name(self) -> &'static str {
        match self {
            PacketType::Request => "REQUEST",
            PacketType::Proposal => "PROPOSAL",
            PacketType::Ack => "ACK",
            PacketType::Commit => "COMMIT",
            PacketType::Ping => "PING",
            PacketType::Revalidate => "REVALIDATE",
            PacketType::Sync => "SYNC",
            PacketType::Inform => "INFORM",
            PacketType::CommitAndActivate => "COMMITANDACTIVATE",
            PacketType::NewLeader => "NEWLEADER",
            PacketType::FollowerInfo => "FOLLOWERINFO",
            PacketType::UpToDate => "UPTODATE",
            PacketType::Diff => "DIFF",
            PacketType::Trunc => "TRUNC",
            PacketType::Snap => "SNAP",
            PacketType::ObserverInfo => "OBSERVERINFO",
            PacketType::LeaderInfo => "LEADERINFO",
            PacketType::AckEpoch => "ACKEPOCH",
            PacketType::InformAndActivate => "INFORMANDACTIVATE",
            PacketType::Unknown(_) => "UNKNOWN",
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketType::Unknown(c) => write!(f, "UNKNOWN({c})"),
            known => f.write_str(known.name()),
        }
    }
}

/// Which end of a quorum connection wrote the bytes. PING and REVALIDATE payloads differ by
/// direction, and only a leader's SNAP is followed by a snapshot stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sender {
    /// The leader (or an observer master).
    Leader,
    /// A follower or observer.
    Learner,
}

/// One jute `QuorumPacket`, payload not interpreted (see [`crate::QuorumMessage`] for that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumPacket {
    pub ptype: PacketType,
    pub zxid: Zxid,
    pub data: Option<Vec<u8>>,
    pub authinfo: Option<Vec<Id>>,
}

impl QuorumPacket {
    /// A packet with null data and null authinfo.
    pub fn bare(ptype: PacketType, zxid: Zxid) -> QuorumPacket {
        QuorumPacket {
            ptype,
            zxid,
            data: None,
            authinfo: None,
        }
    }

    /// Append the jute encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ptype.code().to_be_bytes());
        out.extend_from_slice(&self.zxid.0.to_be_bytes());
        match &self.data {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(d) => put_bytes(out, d),
        }
        match &self.authinfo {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(ids) => {
                put_len(out, ids.len());
                for id in ids {
                    put_bytes(out, id.scheme.as_bytes());
                    put_bytes(out, id.id.as_bytes());
                }
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Parse one packet from the start of `buf`. `Ok(None)` if more bytes are needed.
    pub fn decode(
        buf: &[u8],
        limits: &QuorumLimits,
    ) -> Result<Option<(QuorumPacket, usize)>, WireError> {
        let mut c = Cursor::new(buf, limits);
        match read_packet(&mut c) {
            Ok(p) => Ok(Some((p, c.pos))),
            Err(Stop::More(_)) => Ok(None),
            Err(Stop::Bad(e)) => Err(e),
        }
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    let len = i32::try_from(len).expect("jute lengths fit an int");
    out.extend_from_slice(&len.to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

/// Bounds for what a peer may make us parse or buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumLimits {
    /// Largest buffer or string: `jute.maxbuffer + zookeeper.jute.maxbuffer.extrasize`.
    pub max_field_len: usize,
    /// Most authinfo `Id`s in one packet (Java has no limit; real clients send a handful).
    pub max_auth_ids: usize,
    /// Largest single record: one packet, or one item of a snapshot stream.
    pub max_record_len: usize,
}

impl QuorumLimits {
    /// `jute.maxbuffer`'s default (and extrasize's, which defaults to the same value).
    pub const JUTE_MAXBUFFER: usize = 0xfffff;

    /// Limits for a configured `jute.maxbuffer` and `extrasize`.
    pub fn from_jute(maxbuffer: usize, extrasize: usize) -> QuorumLimits {
        let max_field_len = maxbuffer.saturating_add(extrasize);
        QuorumLimits {
            max_field_len,
            max_auth_ids: 1024,
            // Room for two maximal fields (a node's path and data) plus fixed parts.
            max_record_len: max_field_len.saturating_mul(2).saturating_add(64 * 1024),
        }
    }
}

impl Default for QuorumLimits {
    fn default() -> Self {
        QuorumLimits::from_jute(Self::JUTE_MAXBUFFER, Self::JUTE_MAXBUFFER)
    }
}

/// What [`QuorumDecoder::decode`] found at the start of the buffer. `consumed` bytes should be
/// dropped from the front before the next call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Nothing complete yet; at least `needed` bytes (from the buffer start) are required.
    NeedMore { needed: usize },
    Packet {
        packet: QuorumPacket,
        consumed: usize,
    },
    /// One or more whole items of the snapshot stream after SNAP: sessions, ACL cache entries,
    /// nodes and finally the `"/"` end marker, exactly as in a snapshot file's body.
    SnapshotChunk { consumed: usize },
    /// The `"BenWasHere"` signature that ends the snapshot stream; packets follow again.
    SnapshotEnd {
        consumed: usize,
        summary: SnapshotSummary,
    },
}

/// Item counts of a finished snapshot stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotSummary {
    pub sessions: u64,
    pub acl_lists: u64,
    /// Nodes, root (`""`) included.
    pub nodes: u64,
}

/// The signature that ends a SNAP stream (`Learner.syncWithLeader`).
pub const SNAPSHOT_SIGNATURE: &str = "BenWasHere";

/// Splits one direction of a quorum connection into packets and snapshot chunks.
#[derive(Debug, Clone)]
pub struct QuorumDecoder {
    from: Sender,
    limits: QuorumLimits,
    snapshot: Option<SnapScan>,
}

impl QuorumDecoder {
    /// A decoder for bytes written by `from`.
    pub fn new(from: Sender, limits: QuorumLimits) -> QuorumDecoder {
        QuorumDecoder {
            from,
            limits,
            snapshot: None,
        }
    }

    pub fn sender(&self) -> Sender {
        self.from
    }

    /// Whether the next bytes belong to a snapshot stream.
    pub fn in_snapshot(&self) -> bool {
        self.snapshot.is_some()
    }

    /// Decode from the start of `buf`. After an error the stream cannot be resynchronised: close
    /// the connection, as Java does.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Decoded, WireError> {
        if let Some(scan) = &mut self.snapshot {
            let out = scan.step(buf, &self.limits)?;
            if matches!(out, Decoded::SnapshotEnd { .. }) {
                self.snapshot = None;
            }
            return Ok(out);
        }
        let mut c = Cursor::new(buf, &self.limits);
        match read_packet(&mut c) {
            Ok(packet) => {
                if packet.ptype == PacketType::Snap && self.from == Sender::Leader {
                    self.snapshot = Some(SnapScan::default());
                }
                Ok(Decoded::Packet {
                    packet,
                    consumed: c.pos,
                })
            }
            Err(Stop::More(needed)) => Ok(Decoded::NeedMore { needed }),
            Err(Stop::Bad(e)) => Err(e),
        }
    }
}

/// Why parsing stopped: not enough bytes yet, or bytes that can never be valid.
enum Stop {
    More(usize),
    Bad(WireError),
}

impl From<WireError> for Stop {
    fn from(e: WireError) -> Self {
        Stop::Bad(e)
    }
}

type Step<T> = Result<T, Stop>;

/// A bounds-checked reader over one record that distinguishes "short" from "bad".
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: &'a QuorumLimits,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8], limits: &'a QuorumLimits) -> Self {
        Cursor {
            buf,
            pos: 0,
            limits,
        }
    }

    fn take(&mut self, n: usize) -> Step<&'a [u8]> {
        let end = self.pos.saturating_add(n);
        if end > self.limits.max_record_len {
            return Err(Stop::Bad(WireError::RecordTooLarge {
                len: end,
                max: self.limits.max_record_len,
            }));
        }
        let Some(s) = self.buf.get(self.pos..end) else {
            return Err(Stop::More(end));
        };
        self.pos = end;
        Ok(s)
    }

    fn i32(&mut self) -> Step<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Step<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// A buffer: `None` for null (-1); lengths checked before waiting.
    fn opt_bytes(&mut self) -> Step<Option<&'a [u8]>> {
        let offset = self.pos;
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(WireError::NegativeLength { offset, len }.into());
        }
        if len as usize > self.limits.max_field_len {
            return Err(WireError::FieldTooLong {
                offset,
                len: i64::from(len),
                max: self.limits.max_field_len,
            }
            .into());
        }
        Ok(Some(self.take(len as usize)?))
    }

    /// A string that must be present and UTF-8.
    fn string(&mut self) -> Step<&'a str> {
        let offset = self.pos;
        let b = self
            .opt_bytes()?
            .ok_or(WireError::UnexpectedNull { offset })?;
        Ok(std::str::from_utf8(b).map_err(|_| WireError::BadUtf8 { offset })?)
    }

    /// A vector count: `None` for null; other negatives, or more than `max`, are errors.
    fn count(&mut self, max: usize) -> Step<Option<usize>> {
        let offset = self.pos;
        let n = self.i32()?;
        if n == -1 {
            return Ok(None);
        }
        if n < 0 {
            return Err(WireError::NegativeLength { offset, len: n }.into());
        }
        if n as usize > max {
            return Err(WireError::TooManyAuthIds { count: n, max }.into());
        }
        Ok(Some(n as usize))
    }

    fn id(&mut self) -> Step<Id> {
        let scheme = self.string()?;
        let id = self.string()?;
        Ok(Id::new(scheme, id))
    }
}

fn read_packet(c: &mut Cursor<'_>) -> Step<QuorumPacket> {
    let ptype = PacketType::from_code(c.i32()?);
    let zxid = Zxid(c.i64()?);
    let data = c.opt_bytes()?.map(<[u8]>::to_vec);
    let authinfo = match c.count(c.limits.max_auth_ids)? {
        None => None,
        Some(n) => {
            let mut ids = Vec::with_capacity(n.min(16));
            for _ in 0..n {
                ids.push(c.id()?);
            }
            Some(ids)
        }
    };
    Ok(QuorumPacket {
        ptype,
        zxid,
        data,
        authinfo,
    })
}

/// Where the snapshot stream after SNAP is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum SnapPhase {
    #[default]
    SessionCount,
    Sessions(u32),
    AclCount,
    AclLists(u32),
    Nodes,
    Signature,
}

#[derive(Debug, Clone, Default)]
struct SnapScan {
    phase: SnapPhase,
    summary: SnapshotSummary,
}

/// Size of `StatPersisted`: czxid, mzxid, ctime, mtime, version, cversion, aversion,
/// ephemeralOwner, pzxid.
const STAT_PERSISTED_LEN: usize = 8 * 4 + 4 * 3 + 8 * 2;

impl SnapScan {
    /// Consume as many whole items as `buf` holds (never the signature together with others).
    fn step(&mut self, buf: &[u8], limits: &QuorumLimits) -> Result<Decoded, WireError> {
        let mut done = 0;
        loop {
            if self.phase == SnapPhase::Signature && done > 0 {
                return Ok(Decoded::SnapshotChunk { consumed: done });
            }
            let mut c = Cursor::new(&buf[done..], limits);
            match self.item(&mut c) {
                Ok(true) => {
                    return Ok(Decoded::SnapshotEnd {
                        consumed: c.pos,
                        summary: self.summary,
                    })
                }
                Ok(false) => done += c.pos,
                Err(Stop::More(needed)) if done == 0 => return Ok(Decoded::NeedMore { needed }),
                Err(Stop::More(_)) => return Ok(Decoded::SnapshotChunk { consumed: done }),
                Err(Stop::Bad(e)) => return Err(e),
            }
        }
    }

    /// Parse one item and advance the phase; `true` once the signature has been read. The
    /// phase only changes when the whole item is present, so a short read can be retried.
    fn item(&mut self, c: &mut Cursor<'_>) -> Step<bool> {
        match self.phase {
            SnapPhase::SessionCount => {
                let n = self.count(c, "session")?;
                self.phase = if n > 0 {
                    SnapPhase::Sessions(n)
                } else {
                    SnapPhase::AclCount
                };
            }
            SnapPhase::Sessions(left) => {
                c.take(12)?;
                self.summary.sessions += 1;
                self.phase = if left > 1 {
                    SnapPhase::Sessions(left - 1)
                } else {
                    SnapPhase::AclCount
                };
            }
            SnapPhase::AclCount => {
                let n = self.count(c, "ACL cache")?;
                self.phase = if n > 0 {
                    SnapPhase::AclLists(n)
                } else {
                    SnapPhase::Nodes
                };
            }
            SnapPhase::AclLists(left) => {
                c.i64()?;
                let offset = c.pos;
                // Java refuses a null list here ("missing acls").
                let n = c
                    .count(usize::MAX)?
                    .ok_or(WireError::UnexpectedNull { offset })?;
                for _ in 0..n {
                    c.i32()?;
                    c.string()?;
                    c.string()?;
                }
                self.summary.acl_lists += 1;
                self.phase = if left > 1 {
                    SnapPhase::AclLists(left - 1)
                } else {
                    SnapPhase::Nodes
                };
            }
            SnapPhase::Nodes => {
                if c.string()? == "/" {
                    self.phase = SnapPhase::Signature;
                } else {
                    c.opt_bytes()?;
                    c.take(8 + STAT_PERSISTED_LEN)?;
                    self.summary.nodes += 1;
                }
            }
            SnapPhase::Signature => {
                let found = c.string()?;
                if found != SNAPSHOT_SIGNATURE {
                    return Err(WireError::BadSnapshotSignature {
                        found: found.chars().take(64).collect(),
                    }
                    .into());
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn count(&self, c: &mut Cursor<'_>, what: &'static str) -> Step<u32> {
        let n = c.i32()?;
        if n < 0 {
            return Err(WireError::BadSnapshotCount { what, count: n }.into());
        }
        Ok(n as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn codes_and_names() {
        for (i, t) in PacketType::ALL.iter().enumerate() {
            assert_eq!(t.code(), i as i32 + 1);
            assert_eq!(PacketType::from_code(i as i32 + 1), *t);
        }
        assert_eq!(PacketType::from_code(0), PacketType::Unknown(0));
        assert_eq!(PacketType::Unknown(77).code(), 77);
        assert_eq!(PacketType::LeaderInfo.to_string(), "LEADERINFO");
        assert_eq!(PacketType::Unknown(-3).to_string(), "UNKNOWN(-3)");
    }

    #[test]
    fn spec_bytes_decode_and_re_encode() {
        // zab.md §1, real bytes.
        for (h, t, zxid) in [
            (
                "0000000b 0000000000000000 00000014 0000000000000001 00010000 0000000000000000 ffffffff",
                PacketType::FollowerInfo,
                0,
            ),
            (
                "00000011 0000000100000000 00000004 00010000 ffffffff",
                PacketType::LeaderInfo,
                0x1_0000_0000,
            ),
            ("00000012 0000000000000000 00000004 00000000 ffffffff", PacketType::AckEpoch, 0),
            ("0000000d 0000000000000000 ffffffff ffffffff", PacketType::Diff, 0),
            ("00000003 0000000100000000 ffffffff ffffffff", PacketType::Ack, 0x1_0000_0000),
            ("0000000c ffffffffffffffff ffffffff ffffffff", PacketType::UpToDate, -1),
        ] {
            let bytes = hex(h);
            let limits = QuorumLimits::default();
            for cut in 0..bytes.len() {
                assert_eq!(QuorumPacket::decode(&bytes[..cut], &limits), Ok(None));
            }
            let (p, used) = QuorumPacket::decode(&bytes, &limits).unwrap().unwrap();
            assert_eq!((p.ptype, p.zxid, used), (t, Zxid(zxid), bytes.len()));
            assert_eq!(p.to_bytes(), bytes);
        }
    }

    #[test]
    fn authinfo_round_trips() {
        let p = QuorumPacket {
            ptype: PacketType::Request,
            zxid: Zxid::NONE,
            data: Some(vec![1, 2, 3]),
            authinfo: Some(vec![Id::new("ip", "127.0.0.1"), Id::new("digest", "u:h")]),
        };
        let bytes = p.to_bytes();
        let mut d = QuorumDecoder::new(Sender::Learner, QuorumLimits::default());
        assert_eq!(
            d.decode(&bytes),
            Ok(Decoded::Packet {
                packet: p,
                consumed: bytes.len()
            })
        );
    }

    #[test]
    fn hostile_lengths_fail_before_buffering() {
        let limits = QuorumLimits::default();
        let mut d = QuorumDecoder::new(Sender::Leader, limits);
        // data length just above jute.maxbuffer + extrasize
        let mut b = hex("00000002 0000000000000001");
        b.extend_from_slice(&(limits.max_field_len as i32 + 1).to_be_bytes());
        assert!(matches!(d.decode(&b), Err(WireError::FieldTooLong { .. })));
        // exactly the limit is allowed: need more
        let mut b = hex("00000002 0000000000000001");
        b.extend_from_slice(&(limits.max_field_len as i32).to_be_bytes());
        assert!(
            matches!(d.decode(&b), Ok(Decoded::NeedMore { needed }) if needed == 16 + limits.max_field_len)
        );
        for bad in ["fffffffe", "80000000"] {
            let b = hex(&format!("00000002 0000000000000001 {bad}"));
            assert!(matches!(
                d.decode(&b),
                Err(WireError::NegativeLength { .. })
            ));
        }
        let b = hex("00000002 0000000000000001 ffffffff 7fffffff");
        assert!(matches!(
            d.decode(&b),
            Err(WireError::TooManyAuthIds { .. })
        ));
        let b = hex("00000002 0000000000000001 ffffffff 00000001 ffffffff");
        assert!(matches!(
            d.decode(&b),
            Err(WireError::UnexpectedNull { .. })
        ));
        let b = hex("00000002 0000000000000001 ffffffff 00000001 00000001 ff");
        assert!(matches!(d.decode(&b), Err(WireError::BadUtf8 { .. })));
        // A small record limit bounds the whole packet, not just fields.
        let tight = QuorumLimits {
            max_record_len: 30,
            ..limits
        };
        let b = hex("00000002 0000000000000001 00000010");
        assert!(matches!(
            QuorumPacket::decode(&b, &tight),
            Err(WireError::RecordTooLarge { .. })
        ));
    }

    fn snap_stream() -> Vec<u8> {
        let mut s = hex("00000001 0000000000000007 00002710"); // one session
        s.extend(hex("00000001 0000000000000001 00000001 0000001f 00000005")); // one ACL list
        s.extend(b"world");
        s.extend(hex("00000006"));
        s.extend(b"anyone");
        for path in ["", "/a"] {
            s.extend((path.len() as i32).to_be_bytes());
            s.extend(path.as_bytes());
            s.extend(hex("00000001 78 ffffffffffffffff"));
            s.extend([0u8; STAT_PERSISTED_LEN]);
        }
        s.extend(hex("00000001 2f 0000000a"));
        s.extend(SNAPSHOT_SIGNATURE.as_bytes());
        s
    }

    #[test]
    fn snapshot_stream_after_snap_splits_into_items_at_any_cut() {
        let mut stream = QuorumPacket::bare(PacketType::Snap, Zxid(5)).to_bytes();
        let snap_start = stream.len();
        stream.extend(snap_stream());
        let snap_end = stream.len();
        stream.extend(QuorumPacket::bare(PacketType::NewLeader, Zxid(1 << 32)).to_bytes());
        for chunk in [1, 2, 3, 7, 1000] {
            let mut d = QuorumDecoder::new(Sender::Leader, QuorumLimits::default());
            let (mut buf, mut fed, mut at) = (Vec::new(), 0, 0);
            let mut seen = Vec::new();
            loop {
                match d.decode(&buf).unwrap() {
                    Decoded::NeedMore { needed } => {
                        assert!(needed > buf.len());
                        if fed == stream.len() {
                            break;
                        }
                        let n = chunk.min(stream.len() - fed);
                        buf.extend_from_slice(&stream[fed..fed + n]);
                        fed += n;
                        continue;
                    }
                    Decoded::Packet { packet, consumed } => {
                        seen.push(packet.ptype.name().to_owned());
                        buf.drain(..consumed);
                        at += consumed;
                    }
                    Decoded::SnapshotChunk { consumed } => {
                        buf.drain(..consumed);
                        at += consumed;
                        assert!(at < snap_end - 14 + 1);
                    }
                    Decoded::SnapshotEnd { consumed, summary } => {
                        assert_eq!(consumed, 14);
                        assert_eq!(
                            summary,
                            SnapshotSummary {
                                sessions: 1,
                                acl_lists: 1,
                                nodes: 2
                            }
                        );
                        seen.push("END".into());
                        buf.drain(..consumed);
                        at += consumed;
                        assert_eq!(at, snap_end);
                    }
                }
            }
            assert!(at > snap_start);
            assert_eq!(seen, ["SNAP", "END", "NEWLEADER"], "chunk {chunk}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn a_learner_s_snap_has_no_stream_and_bad_signatures_fail() {
        let bytes = QuorumPacket::bare(PacketType::Snap, Zxid(5)).to_bytes();
        let mut d = QuorumDecoder::new(Sender::Learner, QuorumLimits::default());
        d.decode(&bytes).unwrap();
        assert!(!d.in_snapshot());

        let mut d = QuorumDecoder::new(Sender::Leader, QuorumLimits::default());
        d.decode(&bytes).unwrap();
        assert!(d.in_snapshot());
        let mut s = snap_stream();
        let n = s.len();
        s[n - 1] = b'X';
        let mut pos = 0;
        let err = loop {
            match d.decode(&s[pos..]) {
                Ok(Decoded::SnapshotChunk { consumed }) => pos += consumed,
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, WireError::BadSnapshotSignature { .. }));

        let mut d = QuorumDecoder::new(Sender::Leader, QuorumLimits::default());
        d.decode(&bytes).unwrap();
        assert!(matches!(
            d.decode(&hex("ffffffff")),
            Err(WireError::BadSnapshotCount { .. })
        ));
    }
}
