//! Decode a real Java 3.8.0 ensemble (3 voters + 1 observer, with restarts, DIFF and SNAP
//! syncs, a session moving between members) from `tests/fixtures/ensemble/
//! ensemble-3+1.pcap`, and hold the result against `ensemble-3+1.decoded.txt`, the decoding
//! by the spec's Python tool `zkwire.py`.
//!
//! ```text
//! pcapng -> TCP streams (tests/pcap) -> by server port:
//!   22221..=22224  election: InitialMessage, then [int32 len][Notification] both ways
//!   22211..=22214  quorum:   QuorumPacket* (learner->leader, leader->learner), SNAP stream
//! ```
//!
//! Checks: (a) every stream decodes to its last byte without error; (b) our decoding, rendered
//! in zkwire's text format, equals the fixture line for line, counts per stream and per kind
//! agree, and a sample of fields is asserted on the typed values; (c) re-encoding every decoded
//! message gives the captured bytes. Also: feeding the bytes in small pieces gives the same
//! result, and mutated capture bytes never make a decoder panic.

mod pcap;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use zooid_proto::{Acl, CreateKind, OpCode, Reader, Txn, TxnEntry};
use zooid_zab::election::next_frame;
use zooid_zab::{
    Decoded, Epoch, InitialMessage, LearnerInfo, Notification, PacketType, PeerState,
    QuorumDecoder, QuorumLimits, QuorumMessage, QuorumPacket, Round, Sender, ServerId,
    SnapshotSummary, Vote, Zxid,
};

use pcap::TcpStream;

const ELECTION_PORTS: std::ops::RangeInclusive<u16> = 22221..=22224;
const QUORUM_PORTS: std::ops::RangeInclusive<u16> = 22211..=22214;
const CONFIG: &str = "server.1=127.0.0.1:22211:22221:participant\n\
                      server.2=127.0.0.1:22212:22222:participant\n\
                      server.3=127.0.0.1:22213:22223:participant\n\
                      server.4=127.0.0.1:22214:22224:observer\n\
                      version=0";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ensemble")
}

// ---------------------------------------------------------------------------------------------
// Decoding the capture with the crate's codecs
// ---------------------------------------------------------------------------------------------

/// An election message with the exact bytes it came from.
struct Frame {
    raw: Vec<u8>,
    notification: Notification,
}

struct Election {
    initial: Option<(InitialMessage, Vec<u8>)>,
    /// initiator -> listener, listener -> initiator
    dirs: [Vec<Frame>; 2],
}

// Test data, built once; boxing the big variant would only add noise.
#[allow(clippy::large_enum_variant)]
enum QItem {
    Packet {
        offset: usize,
        raw: Vec<u8>,
        packet: QuorumPacket,
        message: QuorumMessage,
    },
    /// A whole snapshot stream: the items' bytes (without the signature) and the summary.
    Snapshot {
        body: Vec<u8>,
        summary: SnapshotSummary,
    },
}

struct Quorum {
    /// learner -> leader, leader -> learner
    dirs: [Vec<QItem>; 2],
}

enum Decodedstream {
    Election(Election),
    Quorum(Quorum),
}

struct Stream {
    tcp: TcpStream,
    decoded: Decodedstream,
}

fn decode_election(tcp: &TcpStream) -> Result<Election, String> {
    let mut up: &[u8] = &tcp.to_server;
    let initial = match InitialMessage::decode(up).map_err(|e| e.to_string())? {
        Some((m, used)) => {
            let raw = up[..used].to_vec();
            up = &up[used..];
            Some((m, raw))
        }
        None if up.is_empty() => None,
        None => {
            return Err(format!(
                "{} bytes of an incomplete initial message",
                up.len()
            ))
        }
    };
    let frames = |mut b: &[u8]| -> Result<Vec<Frame>, String> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let (start, end) = next_frame(b)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{} bytes of an incomplete frame", b.len()))?;
            let notification = Notification::decode(&b[start..end]).map_err(|e| e.to_string())?;
            out.push(Frame {
                raw: b[..end].to_vec(),
                notification,
            });
            b = &b[end..];
        }
        Ok(out)
    };
    Ok(Election {
        initial,
        dirs: [frames(up)?, frames(&tcp.to_client)?],
    })
}

/// Decode one direction, feeding it `piece` bytes at a time (0 = all at once).
fn decode_quorum_dir(bytes: &[u8], from: Sender, piece: usize) -> Result<Vec<QItem>, String> {
    let mut dec = QuorumDecoder::new(from, QuorumLimits::default());
    let mut items = Vec::new();
    let (mut start, mut avail) = (0, if piece == 0 { bytes.len() } else { 0 });
    let mut snap_body: Option<Vec<u8>> = None;
    loop {
        let buf = &bytes[start..avail];
        match dec
            .decode(buf)
            .map_err(|e| format!("at offset {start}: {e}"))?
        {
            Decoded::NeedMore { needed } => {
                if needed <= buf.len() {
                    return Err(format!(
                        "NeedMore({needed}) with {} bytes buffered",
                        buf.len()
                    ));
                }
                if avail == bytes.len() {
                    if buf.is_empty() && snap_body.is_none() {
                        return Ok(items);
                    }
                    return Err(format!("{} bytes left over at offset {start}", buf.len()));
                }
                avail = (avail + piece).min(bytes.len());
            }
            Decoded::Packet { packet, consumed } => {
                let message = QuorumMessage::decode(&packet, from)
                    .map_err(|e| format!("at offset {start}: {e}"))?;
                if packet.ptype == PacketType::Snap && from == Sender::Leader {
                    snap_body = Some(Vec::new());
                }
                items.push(QItem::Packet {
                    offset: start,
                    raw: buf[..consumed].to_vec(),
                    packet,
                    message,
                });
                start += consumed;
            }
            Decoded::SnapshotChunk { consumed } => {
                assert!(consumed > 0 && consumed <= buf.len());
                snap_body
                    .as_mut()
                    .ok_or("snapshot chunk outside a snapshot")?
                    .extend_from_slice(&buf[..consumed]);
                start += consumed;
            }
            Decoded::SnapshotEnd { consumed, summary } => {
                if &buf[..consumed] != b"\x00\x00\x00\x0aBenWasHere" {
                    return Err("the snapshot end is not the signature".into());
                }
                let body = snap_body.take().ok_or("snapshot end outside a snapshot")?;
                items.push(QItem::Snapshot { body, summary });
                start += consumed;
            }
        }
    }
}

fn decode_quorum(tcp: &TcpStream, piece: usize) -> Result<Quorum, String> {
    Ok(Quorum {
        dirs: [
            decode_quorum_dir(&tcp.to_server, Sender::Learner, piece)?,
            decode_quorum_dir(&tcp.to_client, Sender::Leader, piece)?,
        ],
    })
}

/// Every stream with payload on an election or quorum port, decoded; panics on any failure,
/// which is check (a).
fn capture() -> &'static [Stream] {
    static STREAMS: OnceLock<Vec<Stream>> = OnceLock::new();
    STREAMS.get_or_init(|| {
        let file = std::fs::read(fixtures().join("ensemble-3+1.pcap")).expect("the capture");
        let tcp = pcap::read_tcp_streams(&file).expect("a readable capture");
        tcp.into_iter()
            .filter(|s| !(s.to_server.is_empty() && s.to_client.is_empty()))
            .filter_map(|tcp| {
                let port = tcp.server_port();
                let decoded = if ELECTION_PORTS.contains(&port) {
                    Decodedstream::Election(
                        decode_election(&tcp)
                            .unwrap_or_else(|e| panic!("election stream {}: {e}", tcp.index)),
                    )
                } else if QUORUM_PORTS.contains(&port) {
                    Decodedstream::Quorum(
                        decode_quorum(&tcp, 0)
                            .unwrap_or_else(|e| panic!("quorum stream {}: {e}", tcp.index)),
                    )
                } else {
                    return None;
                };
                Some(Stream { tcp, decoded })
            })
            .collect()
    })
}

fn stream(index: usize) -> &'static Stream {
    capture()
        .iter()
        .find(|s| s.tcp.index == index)
        .unwrap_or_else(|| panic!("no stream {index}"))
}

fn election(index: usize) -> &'static Election {
    match &stream(index).decoded {
        Decodedstream::Election(e) => e,
        Decodedstream::Quorum(_) => panic!("stream {index} is a quorum stream"),
    }
}

/// The message at `offset` of one direction (0 = learner->leader) of a quorum stream.
fn message_at(index: usize, dir: usize, offset: usize) -> &'static QuorumMessage {
    let Decodedstream::Quorum(q) = &stream(index).decoded else {
        panic!("stream {index} is an election stream");
    };
    q.dirs[dir]
        .iter()
        .find_map(|it| match it {
            QItem::Packet {
                offset: o, message, ..
            } if *o == offset => Some(message),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no packet at {offset} in stream {index} dir {dir}"))
}

// ---------------------------------------------------------------------------------------------
// Rendering in zkwire.py's text format
// ---------------------------------------------------------------------------------------------

/// Python's `repr` of a str.
fn py_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::from(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `'0x%x' % n` for a signed value.
fn py_hex(v: i64) -> String {
    if v < 0 {
        format!("0x-{:x}", -(v as i128))
    } else {
        format!("0x{v:x}")
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn fmt_data(d: Option<&[u8]>) -> String {
    let Some(d) = d else { return "null".into() };
    if let Ok(s) = std::str::from_utf8(d) {
        if s.chars().all(|c| (' '..='~').contains(&c)) {
            return if s.chars().count() <= 40 {
                py_str(s)
            } else {
                py_str(&format!("{}...", s.chars().take(40).collect::<String>()))
            };
        }
    }
    let more = if d.len() > 40 { "..." } else { "" };
    format!("0x{}{more}", hex(&d[..d.len().min(40)]))
}

fn fmt_acl(acl: &[Acl]) -> String {
    let parts: Vec<String> = acl
        .iter()
        .map(|a| format!("{}:{} perms={}", a.id.scheme, a.id.id, a.perms))
        .collect();
    format!("[{}]", parts.join(", "))
}

fn fmt_txn(txn: &Txn) -> String {
    match txn {
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
                fmt_data(data.as_deref()),
                fmt_acl(acl)
            );
            if let CreateKind::Plain { .. } = kind {
                s += if *ephemeral {
                    " ephemeral=True"
                } else {
                    " ephemeral=False"
                };
            }
            let _ = write!(s, " parentCVersion={parent_cversion}");
            if let CreateKind::Ttl(ttl) = kind {
                let _ = write!(s, " ttl={ttl}");
            }
            s
        }
        Txn::Multi(parts) => {
            let parts: Vec<String> = parts
                .iter()
                .map(|t| format!("{} {}", t.op().name(), fmt_txn(t)))
                .collect();
            format!("[{}]", parts.join("; "))
        }
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
            fmt_data(data.as_deref())
        ),
        Txn::SetAcl { path, acl, version } => {
            format!("path={path} acl={} version={version}", fmt_acl(acl))
        }
        Txn::Delete { path, .. } => format!("path={path}"),
        Txn::Check { path, version } => format!("path={path}, version={version}"),
        Txn::CreateSession { timeout_ms } => format!("timeOut={timeout_ms}"),
        Txn::CloseSession { paths: None } => "(no record)".into(),
        Txn::CloseSession { paths: Some(p) } => {
            let p: Vec<String> = p.iter().map(|s| py_str(s)).collect();
            format!("paths2Delete=[{}]", p.join(", "))
        }
        Txn::Error { err } => format!("err={err}"),
    }
}

fn op_name(op: i32) -> String {
    OpCode::from_i32(op).map_or_else(|| op.to_string(), |o| o.name().to_owned())
}

fn fmt_entry(e: &TxnEntry) -> String {
    let h = &e.header;
    let mut s = format!(
        "txn zxid={} {} session={} cxid={} | {}",
        Zxid(h.zxid),
        op_name(h.op),
        Zxid(h.session_id),
        h.cxid,
        fmt_txn(&e.txn)
    );
    if let Some(d) = e.digest {
        let _ = write!(s, " | TxnDigest v{} {}", d.version, d.tree_digest);
    }
    s
}

/// zkwire's `fmt_qp_data`, driven by the typed message.
fn fmt_message(m: &QuorumMessage, p: &QuorumPacket) -> String {
    use QuorumMessage as M;
    let mut s = match m {
        M::Request(r) => format!(
            "session={} cxid={} type={} request={}",
            Zxid(r.session_id),
            r.cxid,
            op_name(r.op),
            hex(&r.body)
        ),
        M::Proposal { entry, .. } | M::Inform { entry, .. } => fmt_entry(entry),
        M::PingReply { touches, .. } => {
            let t: Vec<String> = touches
                .iter()
                .map(|t| format!("{}:{}", Zxid(t.session_id), t.timeout_ms))
                .collect();
            format!("touches=[{}]", t.join(", "))
        }
        M::Revalidate {
            session_id,
            timeout_ms,
        } => format!(
            "session={} timeout={timeout_ms} (learner->leader)",
            Zxid(*session_id)
        ),
        M::RevalidateReply { session_id, valid } => format!(
            "session={} valid={} (leader->learner)",
            Zxid(*session_id),
            if *valid { "True" } else { "False" }
        ),
        M::NewLeader {
            config: Some(c), ..
        } => format!("quorumVerifier={}", py_str(std::str::from_utf8(c).unwrap())),
        M::FollowerInfo { info, .. } | M::ObserverInfo { info, .. } => {
            let mut s = format!("LearnerInfo sid={}", info.sid);
            if let Some(v) = info.protocol_version {
                let _ = write!(s, " protocolVersion={}", py_hex(v.into()));
            }
            if let Some(c) = info.config_version {
                let _ = write!(s, " configVersion=0x{:x}", c as u64);
            }
            s
        }
        M::LeaderInfo {
            protocol_version, ..
        } => format!("protocolVersion={}", py_hex((*protocol_version).into())),
        M::AckEpoch { current_epoch, .. } => {
            format!("currentEpoch(int)={}", current_epoch.map_or(-1, |e| e.0))
        }
        M::CommitAndActivate { .. } | M::InformAndActivate { .. } => {
            format!("data={}", hex(p.data.as_deref().unwrap_or_default()))
        }
        M::NewLeader { config: None, .. }
        | M::Ack { .. }
        | M::Commit { .. }
        | M::Ping { .. }
        | M::Sync
        | M::UpToDate
        | M::Diff { .. }
        | M::Trunc { .. }
        | M::Snap { .. } => "data=null".into(),
    };
    match &p.authinfo {
        None => s += " authinfo=null",
        Some(ids) if ids.is_empty() => s += " authinfo=[]",
        Some(ids) => {
            let ids: Vec<String> = ids
                .iter()
                .map(|i| format!("({}, {})", py_str(&i.scheme), py_str(&i.id)))
                .collect();
            let _ = write!(s, " authinfo=[{}]", ids.join(", "));
        }
    }
    s
}

/// Sessions and node paths of a snapshot stream body, read with the proto crate's jute reader.
fn snapshot_contents(body: &[u8]) -> (Vec<(i64, i32)>, usize, Vec<String>) {
    let r = &mut Reader::new(body);
    let n = r.read_i32().unwrap();
    let sessions = (0..n)
        .map(|_| (r.read_i64().unwrap(), r.read_i32().unwrap()))
        .collect();
    let acls = r.read_i32().unwrap() as usize;
    for _ in 0..acls {
        r.read_i64().unwrap();
        zooid_proto::read_acls(r).unwrap();
    }
    let mut paths = Vec::new();
    loop {
        let p = r.read_string().unwrap();
        if p == "/" {
            break;
        }
        r.read_opt_buffer().unwrap();
        r.read_i64().unwrap();
        for _ in 0..4 {
            r.read_i64().unwrap();
        }
        for _ in 0..3 {
            r.read_i32().unwrap();
        }
        r.read_i64().unwrap();
        r.read_i64().unwrap();
        paths.push(p);
    }
    assert_eq!(r.remaining(), 0, "snapshot body ends with the end marker");
    (sessions, acls, paths)
}

fn fmt_notification(n: &Notification) -> String {
    let config = if n.version > 1 {
        py_str(n.config_text().expect("UTF-8 config"))
    } else {
        "None".into()
    };
    format!(
        "state={} leader={} zxid={} electionEpoch={} peerEpoch={} version={} config={}",
        n.state.name(),
        n.leader,
        n.zxid,
        py_hex(n.round.0),
        py_hex(n.peer_epoch.0),
        n.version,
        config
    )
}

/// The whole capture in zkwire's format, without the `t=` timestamps.
fn render() -> String {
    let mut out = String::new();
    for s in capture() {
        let (c, p, i) = (s.tcp.client_port(), s.tcp.server_port(), s.tcp.index);
        match &s.decoded {
            Decodedstream::Election(e) => {
                let _ = writeln!(out, "stream {i} election connection {c} -> {p}");
                match &e.initial {
                    Some((InitialMessage::Legacy { sid }, _)) => {
                        let _ = writeln!(
                            out,
                            "  initiator -> listener: legacy sid-only header sid={sid}"
                        );
                    }
                    Some((m, raw)) => {
                        let pv = i64::from_be_bytes(raw[..8].try_into().unwrap());
                        let _ = writeln!(
                            out,
                            "  initiator -> listener: InitialMessage protocolVersion={pv} (0x{:x}) sid={} addr={}",
                            pv as u64,
                            m.sid(),
                            py_str(&m.addresses().join("|"))
                        );
                    }
                    None => {}
                }
                for (name, frames) in ["initiator->listener", "listener->initiator"]
                    .iter()
                    .zip(&e.dirs)
                {
                    for f in frames {
                        let _ = writeln!(
                            out,
                            "  {name}: frame len={} {}",
                            f.raw.len() - 4,
                            fmt_notification(&f.notification)
                        );
                    }
                }
            }
            Decodedstream::Quorum(q) => {
                let _ = writeln!(out, "stream {i} quorum connection {c} -> {p}");
                for (name, items) in ["learner->leader", "leader->learner"].iter().zip(&q.dirs) {
                    let mut pings = 0;
                    for it in items {
                        match it {
                            QItem::Packet {
                                offset,
                                packet,
                                message,
                                ..
                            } => {
                                if packet.ptype == PacketType::Ping {
                                    pings += 1;
                                    if pings > 2 {
                                        continue;
                                    }
                                }
                                let _ = writeln!(
                                    out,
                                    "  {name} @{offset}: {:<10} zxid={} {}",
                                    packet.ptype.name(),
                                    packet.zxid,
                                    fmt_message(message, packet)
                                );
                            }
                            QItem::Snapshot { body, summary } => {
                                let (sessions, acls, paths) = snapshot_contents(body);
                                let sessions: Vec<String> = sessions
                                    .iter()
                                    .map(|(id, to)| {
                                        format!("({}, {to})", py_str(&Zxid(*id).to_string()))
                                    })
                                    .collect();
                                let paths: Vec<String> = paths.iter().map(|p| py_str(p)).collect();
                                assert_eq!(summary.sessions as usize, sessions.len());
                                assert_eq!(summary.acl_lists as usize, acls);
                                assert_eq!(summary.nodes as usize, paths.len());
                                let _ = writeln!(
                                    out,
                                    "      snapshot stream: {} sessions [{}], {acls} ACLs, {} nodes [{}], signature='BenWasHere'",
                                    sessions.len(),
                                    sessions.join(", "),
                                    paths.len(),
                                    paths.join(", ")
                                );
                            }
                        }
                    }
                    if pings > 2 {
                        let _ = writeln!(out, "  {name}: ({pings} PINGs in total, first 2 shown)");
                    }
                }
            }
        }
    }
    out
}

fn expected_text() -> String {
    let text = std::fs::read_to_string(fixtures().join("ensemble-3+1.decoded.txt"))
        .expect("the zkwire decoding");
    text.lines()
        .map(|l| {
            // "stream 7 t=0.934 election ..." -> "stream 7 election ..."
            if l.starts_with("stream ") {
                let mut w: Vec<&str> = l.split(' ').collect();
                if w.len() > 2 && w[2].starts_with("t=") {
                    w.remove(2);
                }
                w.join(" ")
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn every_message_matches_the_zkwire_decoding_line_for_line() {
    let (got, want) = (render(), expected_text());
    for (n, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "first difference at line {}", n + 1);
    }
    assert_eq!(got.lines().count(), want.lines().count());
}

/// Messages per (stream, direction), read from the fixture text independently of `render`.
fn expected_counts() -> BTreeMap<(usize, String), usize> {
    let mut counts = BTreeMap::new();
    let mut current = 0;
    for line in expected_text().lines() {
        if let Some(rest) = line.strip_prefix("stream ") {
            current = rest.split(' ').next().unwrap().parse().unwrap();
            continue;
        }
        let Some((dir, rest)) = line.trim_start().split_once(':') else {
            continue;
        };
        let dir = dir.split(" @").next().unwrap().replace(' ', "");
        let n = if rest.contains("PINGs in total") {
            let total: usize = rest
                .trim_start_matches(" (")
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            total - 2
        } else if rest.contains("frame len=")
            || line.contains(" @")
            || rest.contains("InitialMessage")
        {
            1
        } else {
            0
        };
        *counts.entry((current, dir)).or_insert(0) += n;
    }
    counts.retain(|_, n| *n > 0);
    counts
}

#[test]
fn counts_per_stream_and_per_kind_match() {
    let mut got = BTreeMap::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let (mut elections, mut quorums, mut snapshots) = (0, 0, 0);
    for s in capture() {
        let i = s.tcp.index;
        match &s.decoded {
            Decodedstream::Election(e) => {
                elections += 1;
                if e.initial.is_some() {
                    *got.entry((i, "initiator->listener".to_owned()))
                        .or_insert(0) += 1;
                    *kinds.entry("InitialMessage".into()).or_default() += 1;
                }
                for (d, frames) in ["initiator->listener", "listener->initiator"]
                    .iter()
                    .zip(&e.dirs)
                {
                    if !frames.is_empty() {
                        *got.entry((i, d.to_string())).or_insert(0) += frames.len();
                    }
                    for f in frames {
                        *kinds.entry(f.notification.state.name().into()).or_default() += 1;
                    }
                }
            }
            Decodedstream::Quorum(q) => {
                quorums += 1;
                for (d, items) in ["learner->leader", "leader->learner"].iter().zip(&q.dirs) {
                    for it in items {
                        match it {
                            QItem::Packet { packet, .. } => {
                                *got.entry((i, d.to_string())).or_insert(0) += 1;
                                *kinds.entry(packet.ptype.name().into()).or_default() += 1;
                            }
                            QItem::Snapshot { .. } => snapshots += 1,
                        }
                    }
                }
            }
        }
    }
    assert_eq!(got, expected_counts());
    assert_eq!((elections, quorums, snapshots), (12, 5, 3));
    // Totals counted in ensemble-3+1.decoded.txt (PING lines folded into their totals).
    let want: BTreeMap<String, usize> = [
        ("InitialMessage", 12),
        ("LOOKING", 21),
        ("LEADING", 7),
        ("FOLLOWING", 6),
        ("ACK", 46),
        ("ACKEPOCH", 5),
        ("COMMIT", 36),
        ("DIFF", 2),
        ("FOLLOWERINFO", 4),
        ("INFORM", 18),
        ("LEADERINFO", 5),
        ("NEWLEADER", 5),
        ("OBSERVERINFO", 1),
        ("PING", 200),
        ("PROPOSAL", 36),
        ("REQUEST", 12),
        ("REVALIDATE", 2),
        ("SNAP", 3),
        ("SYNC", 1),
        ("UPTODATE", 5),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(kinds, want);
}

#[test]
fn re_encoding_every_message_gives_the_captured_bytes() {
    let mut checked = 0;
    for s in capture() {
        match &s.decoded {
            Decodedstream::Election(e) => {
                let mut rebuilt = Vec::new();
                if let Some((m, raw)) = &e.initial {
                    let mut out = Vec::new();
                    m.encode(&mut out);
                    assert_eq!(&out, raw, "stream {} initial message", s.tcp.index);
                    rebuilt.extend(out);
                    checked += 1;
                }
                for (dir, frames) in e.dirs.iter().enumerate() {
                    for f in frames {
                        let mut out = Vec::new();
                        f.notification.encode_frame(&mut out);
                        assert_eq!(out, f.raw, "stream {} dir {dir}", s.tcp.index);
                        if dir == 0 {
                            rebuilt.extend(out);
                        }
                        checked += 1;
                    }
                }
                assert_eq!(rebuilt, s.tcp.to_server, "stream {}", s.tcp.index);
            }
            Decodedstream::Quorum(q) => {
                for (dir, items) in q.dirs.iter().enumerate() {
                    let mut rebuilt = Vec::new();
                    for it in items {
                        match it {
                            QItem::Packet {
                                offset,
                                raw,
                                packet,
                                message,
                            } => {
                                assert_eq!(rebuilt.len(), *offset);
                                let at = format!("stream {} dir {dir} @{offset}", s.tcp.index);
                                assert_eq!(&packet.to_bytes(), raw, "packet {at}");
                                assert_eq!(&message.to_packet(), packet, "message {at}");
                                rebuilt.extend(message.to_packet().to_bytes());
                                checked += 1;
                            }
                            QItem::Snapshot { body, .. } => {
                                rebuilt.extend(body);
                                rebuilt.extend(b"\x00\x00\x00\x0aBenWasHere");
                            }
                        }
                    }
                    let want = if dir == 0 {
                        &s.tcp.to_server
                    } else {
                        &s.tcp.to_client
                    };
                    assert_eq!(&rebuilt, want, "stream {} dir {dir}", s.tcp.index);
                }
            }
        }
    }
    assert_eq!(checked, 12 + 34 + 381);
}

#[test]
fn feeding_small_pieces_gives_the_same_messages() {
    for s in capture() {
        if let Decodedstream::Quorum(whole) = &s.decoded {
            for piece in [1, 7, 20, 333] {
                let q = decode_quorum(&s.tcp, piece).unwrap();
                for (a, b) in whole.dirs.iter().zip(&q.dirs) {
                    assert_eq!(a.len(), b.len());
                    for (x, y) in a.iter().zip(b) {
                        match (x, y) {
                            (
                                QItem::Packet {
                                    raw: r1,
                                    offset: o1,
                                    ..
                                },
                                QItem::Packet {
                                    raw: r2,
                                    offset: o2,
                                    ..
                                },
                            ) => assert_eq!((r1, o1), (r2, o2)),
                            (
                                QItem::Snapshot {
                                    body: b1,
                                    summary: s1,
                                },
                                QItem::Snapshot {
                                    body: b2,
                                    summary: s2,
                                },
                            ) => assert_eq!((b1, s1), (b2, s2)),
                            _ => panic!("stream {} piece {piece}: items differ", s.tcp.index),
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn initial_messages_and_notifications() {
    let e = election(7);
    let (m, raw) = e.initial.as_ref().unwrap();
    assert_eq!(
        *m,
        InitialMessage::V1 {
            sid: ServerId(2),
            address: "127.0.0.1:22222".into()
        }
    );
    assert_eq!(
        &raw[..20],
        b"\xff\xff\xff\xff\xff\xff\x00\x00\0\0\0\0\0\0\0\x02\0\0\0\x0f"
    );
    let n = &e.dirs[0][0].notification;
    assert_eq!(e.dirs[0][0].raw.len(), 4 + 222);
    assert_eq!(n.state, PeerState::Looking);
    assert_eq!(
        n.vote(),
        Vote {
            leader: ServerId(2),
            zxid: Zxid(0),
            round: Round(1),
            peer_epoch: Epoch(0)
        }
    );
    assert_eq!(n.version, 2);
    assert_eq!(n.config_text(), Some(CONFIG));
    let (members, version) = zooid_zab::config_text::parse(CONFIG).unwrap();
    assert_eq!(zooid_zab::config_text::render(&members, version), CONFIG);

    // The observer's vote: every field Long.MIN_VALUE but the round.
    let obs = &election(13).dirs[0][0].notification;
    assert_eq!(obs.vote(), Vote::observer(Round(1)));
    assert_eq!(election(13).initial.as_ref().unwrap().0.sid(), ServerId(4));
    let leading = &election(14).dirs[1][0].notification;
    assert_eq!(
        (leading.state, leading.leader, leading.peer_epoch),
        (PeerState::Leading, ServerId(2), Epoch(1))
    );

    // The stale LOOKING vote of election.md §5 and the round-2 vote after it.
    let stale = &election(19).dirs[1][0].notification;
    assert_eq!(stale.state, PeerState::Looking);
    assert_eq!(
        (stale.leader, stale.zxid),
        (ServerId(1), Zxid(0x1_0000_0009))
    );
    assert!(stale.vote().beats(&leading.vote()));
    let round2 = &election(22).dirs[0][2].notification;
    assert_eq!((round2.leader, round2.round), (ServerId(3), Round(2)));

    // Streams 17 and 18: the lower sid dials, sends only its header, and is dropped.
    for i in [17, 18] {
        let e = election(i);
        assert_eq!(e.initial.as_ref().unwrap().0.sid(), ServerId(1));
        assert!(e.dirs.iter().all(Vec::is_empty));
    }
}

#[test]
fn discovery_and_sync_packets() {
    use QuorumMessage as M;
    let e1 = Zxid::epoch_start(Epoch(1));
    assert_eq!(
        *message_at(9, 0, 0),
        M::FollowerInfo {
            zxid: Zxid(0),
            info: LearnerInfo::new(ServerId(1), 0)
        }
    );
    assert_eq!(
        *message_at(16, 0, 0),
        M::ObserverInfo {
            zxid: Zxid(0),
            info: LearnerInfo::new(ServerId(4), 0)
        }
    );
    assert_eq!(
        *message_at(9, 1, 0),
        M::LeaderInfo {
            zxid: e1,
            protocol_version: 0x10000
        }
    );
    assert_eq!(
        *message_at(9, 0, 40),
        M::AckEpoch {
            zxid: Zxid(0),
            current_epoch: Some(Epoch(0))
        }
    );
    // The restarted follower had already accepted epoch 1.
    assert_eq!(
        *message_at(21, 0, 40),
        M::AckEpoch {
            zxid: Zxid(0x1_0000_0009),
            current_epoch: None
        }
    );
    assert_eq!(*message_at(9, 1, 24), M::Diff { zxid: Zxid(0) });
    assert_eq!(
        *message_at(21, 1, 24),
        M::Diff {
            zxid: Zxid(0x1_0000_0012)
        }
    );
    assert_eq!(
        *message_at(29, 1, 24),
        M::Snap {
            zxid: Zxid(0x1_0000_0012)
        }
    );
    assert_eq!(
        *message_at(9, 1, 44),
        M::NewLeader {
            zxid: e1,
            config: Some(CONFIG.as_bytes().to_vec())
        }
    );
    assert_eq!(*message_at(9, 1, 242), M::UpToDate);
    assert_eq!(*message_at(9, 0, 64), M::Ack { zxid: e1 });
    assert_eq!(*message_at(9, 0, 84), M::Ack { zxid: e1 });

    let Decodedstream::Quorum(q) = &stream(29).decoded else {
        unreachable!()
    };
    let snap = q.dirs[1].iter().find_map(|it| match it {
        QItem::Snapshot { summary, .. } => Some(*summary),
        _ => None,
    });
    assert_eq!(
        snap,
        Some(SnapshotSummary {
            sessions: 0,
            acl_lists: 2,
            nodes: 11
        })
    );
}

#[test]
fn broadcast_and_session_packets() {
    use QuorumMessage as M;
    let M::Proposal { zxid, entry } = message_at(9, 1, 630) else {
        panic!("not a proposal")
    };
    assert_eq!(*zxid, Zxid(0x1_0000_0002));
    assert_eq!(entry.header.zxid, 0x1_0000_0002);
    assert_eq!(entry.header.session_id, 0x100000f731f0000);
    assert_eq!(entry.header.cxid, 1);
    assert_eq!(
        entry.txn,
        Txn::Create {
            kind: CreateKind::Plain { create2: false },
            path: "/q".into(),
            data: Some(b"quorum".to_vec()),
            acl: Acl::open_unsafe(),
            ephemeral: false,
            parent_cversion: 1,
        }
    );
    assert_eq!(entry.digest.unwrap().tree_digest, 8508199573);
    assert_eq!(
        *message_at(9, 1, 610),
        M::Commit {
            zxid: Zxid(0x1_0000_0001)
        }
    );
    assert_eq!(*message_at(9, 1, 1280), M::Sync);
    let M::Inform { entry, .. } = message_at(16, 1, 1430) else {
        panic!("not an inform")
    };
    assert!(matches!(&entry.txn, Txn::Multi(parts) if parts.len() == 2));

    let M::Request(r) = message_at(9, 0, 444) else {
        panic!("not a request")
    };
    assert_eq!(
        (r.session_id, r.cxid, r.op_code()),
        (0x100000f731f0000, 1, Some(OpCode::Create))
    );
    assert_eq!(
        r.authinfo.as_ref().unwrap(),
        &[zooid_proto::Id::new("ip", "127.0.0.1")]
    );
    assert_eq!(&r.body[..6], b"\x00\x00\x00\x02/q");
    let M::Request(cs) = message_at(9, 0, 384) else {
        panic!("not a request")
    };
    assert_eq!(
        (cs.op_code(), cs.authinfo.as_ref(), &cs.body[..]),
        (Some(OpCode::CreateSession), None, &[0, 0, 0x27, 0x10][..])
    );

    assert_eq!(
        *message_at(12, 0, 616),
        M::Revalidate {
            session_id: 0x100000f731f0001,
            timeout_ms: 10000
        }
    );
    assert_eq!(
        *message_at(12, 1, 2226),
        M::RevalidateReply {
            session_id: 0x100000f731f0001,
            valid: true
        }
    );
    assert_eq!(
        *message_at(9, 1, 262),
        M::Ping {
            zxid: Zxid::epoch_start(Epoch(1))
        }
    );
    assert_eq!(
        *message_at(9, 0, 104),
        M::PingReply {
            zxid: Zxid::epoch_start(Epoch(1)),
            touches: vec![]
        }
    );

    // Pings that report touched sessions: the leader learns which sessions are alive.
    let mut touched = Vec::new();
    for s in capture() {
        if let Decodedstream::Quorum(q) = &s.decoded {
            for it in &q.dirs[0] {
                if let QItem::Packet {
                    message: M::PingReply { touches, .. },
                    offset,
                    ..
                } = it
                {
                    if !touches.is_empty() {
                        touched.push((s.tcp.index, *offset, touches.clone()));
                    }
                }
            }
        }
    }
    assert_eq!(touched.len(), 3, "PINGs with session touches: {touched:?}");
    for (_, _, t) in &touched {
        assert!(t
            .iter()
            .all(|t| t.timeout_ms == 10000 && t.session_id >> 56 != 0));
    }
    // Between stream 12's ACK @564 and its REVALIDATE @616: one PING with one touch.
    let M::PingReply { touches, .. } = message_at(12, 0, 584) else {
        panic!("not a ping")
    };
    assert_eq!(touches.len(), 1);
    assert_eq!(touches[0].session_id, 0x100000f731f0001);
}

/// A tiny deterministic generator for the mutation test (no dev-dependencies).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_capture_bytes_never_panic() {
    let mut rng = XorShift(0x5eed_2b1d_c0ff_ee01);
    let limits = QuorumLimits::default();
    for s in capture() {
        for (from, bytes) in [
            (Sender::Learner, &s.tcp.to_server),
            (Sender::Leader, &s.tcp.to_client),
        ] {
            if bytes.is_empty() {
                continue;
            }
            for _ in 0..40 {
                let mut b = bytes.clone();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(b.len());
                    match rng.below(4) {
                        0 => b[at] = rng.next() as u8,
                        1 => b[at] ^= 0x80,
                        2 => b[at] = 0xff,
                        _ => b.truncate(at),
                    }
                    if b.is_empty() {
                        break;
                    }
                }
                // Quorum decoding over the whole mutated stream, and every payload typed.
                let mut dec = QuorumDecoder::new(from, limits);
                let mut at = 0;
                while let Ok(d) = dec.decode(&b[at..]) {
                    match d {
                        Decoded::NeedMore { .. } => break,
                        Decoded::Packet { packet, consumed } => {
                            let _ = QuorumMessage::decode(&packet, from);
                            at += consumed;
                        }
                        Decoded::SnapshotChunk { consumed }
                        | Decoded::SnapshotEnd { consumed, .. } => at += consumed,
                    }
                }
                // Election decoding of the same bytes.
                let mut rest: &[u8] = &b;
                if let Ok(Some((_, used))) = InitialMessage::decode(rest) {
                    rest = &rest[used..];
                }
                while let Ok(Some((start, end))) = next_frame(rest) {
                    let _ = Notification::decode(&rest[start..end]);
                    rest = &rest[end..];
                }
            }
        }
    }
}
