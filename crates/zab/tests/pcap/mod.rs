//! A small capture reader for tests: pcapng or classic pcap in, reassembled TCP byte streams
//! out. Test-only; it trusts loopback captures (no loss) but still reports gaps instead of
//! guessing.
//!
//! ```text
//! pcapng block:   u32 type | u32 totalLen | body | u32 totalLen     (byte order from the SHB magic)
//!   0x0A0D0D0A section header: u32 byteOrderMagic 0x1A2B3C4D, ...
//!   0x00000001 interface description: u16 linkType, u16 reserved, u32 snapLen, options
//!   0x00000006 enhanced packet: u32 ifId, u32 tsHigh, u32 tsLow, u32 capLen, u32 origLen, data
//!   0x00000003 simple packet: u32 origLen, data
//! classic pcap:   24-byte global header (magic a1b2c3d4 / a1b23c4d, either byte order,
//!                 u32 linkType at offset 20), then per packet
//!                 u32 tsSec | u32 tsFrac | u32 capLen | u32 origLen | data
//! link layers:    1 Ethernet (14 bytes, ethertype at 12), 113 Linux SLL (16, proto at 14),
//!                 276 Linux SLL2 (20, proto at 0), 0 BSD loopback (4-byte family), 101 raw IP
//! IPv4 (IHL x 4 header) or IPv6 (40 bytes, no extension headers) carrying TCP (protocol 6):
//!   u16 srcPort | u16 dstPort | u32 seq | u32 ack | u8 dataOffset<<4 | u8 flags | ...
//! ```
//!
//! Streams are numbered in order of first appearance, as tshark's `tcp.stream`; a SYN on a
//! 4-tuple that already had one starts a new stream (port reuse). Each direction is put
//! together by sequence number relative to its SYN.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

/// One TCP connection's payload, both directions reassembled.
#[derive(Debug, Clone)]
pub struct TcpStream {
    /// Order of first appearance in the capture (tshark's `tcp.stream`).
    pub index: usize,
    /// The side that sent the SYN (or the first packet's source when no SYN was captured).
    pub client: ([u8; 16], u16),
    pub server: ([u8; 16], u16),
    pub to_server: Vec<u8>,
    pub to_client: Vec<u8>,
}

impl TcpStream {
    pub fn client_port(&self) -> u16 {
        self.client.1
    }
    pub fn server_port(&self) -> u16 {
        self.server.1
    }
}

type Endpoint = ([u8; 16], u16);

#[derive(Default)]
struct Direction {
    /// Sequence number of the first payload byte (SYN + 1), once known.
    base: Option<u32>,
    segments: Vec<(u32, Vec<u8>)>,
}

struct Building {
    index: usize,
    client: Endpoint,
    server: Endpoint,
    saw_syn: bool,
    up: Direction,
    down: Direction,
}

/// Read every TCP stream with its payload from a pcapng or classic pcap file.
pub fn read_tcp_streams(file: &[u8]) -> Result<Vec<TcpStream>, String> {
    let mut frames = Vec::new();
    for_each_frame(file, &mut |link, frame| {
        frames.push((link, frame.to_vec()));
    })?;
    let mut streams: Vec<Building> = Vec::new();
    let mut by_key: HashMap<(Endpoint, Endpoint), usize> = HashMap::new();
    for (n, (link, frame)) in frames.iter().enumerate() {
        let Some(seg) = tcp_segment(*link, frame).map_err(|e| format!("frame {n}: {e}"))? else {
            continue;
        };
        let key = if seg.src <= seg.dst {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        };
        let is_open = seg.syn && !seg.ack;
        let slot = match by_key.get(&key) {
            Some(&i) if !(is_open && streams[i].saw_syn) => i,
            _ => {
                let i = streams.len();
                streams.push(Building {
                    index: i,
                    client: seg.src,
                    server: seg.dst,
                    saw_syn: false,
                    up: Direction::default(),
                    down: Direction::default(),
                });
                by_key.insert(key, i);
                i
            }
        };
        let s = &mut streams[slot];
        if is_open {
            s.saw_syn = true;
            s.client = seg.src;
            s.server = seg.dst;
        }
        let dir = if seg.src == s.client {
            &mut s.up
        } else {
            &mut s.down
        };
        if seg.syn {
            dir.base = Some(seg.seq.wrapping_add(1));
        }
        if !seg.payload.is_empty() {
            dir.segments.push((seg.seq, seg.payload));
        }
    }
    streams
        .into_iter()
        .map(|s| {
            Ok(TcpStream {
                index: s.index,
                client: s.client,
                server: s.server,
                to_server: assemble(s.up).map_err(|e| format!("stream {}: {e}", s.index))?,
                to_client: assemble(s.down).map_err(|e| format!("stream {}: {e}", s.index))?,
            })
        })
        .collect()
}

/// Put one direction's segments in order; overlaps must agree, gaps are errors.
fn assemble(dir: Direction) -> Result<Vec<u8>, String> {
    let Some(base) = dir.base.or_else(|| dir.segments.iter().map(|s| s.0).min()) else {
        return Ok(Vec::new());
    };
    let mut by_offset: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for (seq, data) in dir.segments {
        let off = u64::from(seq.wrapping_sub(base));
        let e = by_offset.entry(off).or_default();
        if data.len() > e.len() {
            *e = data;
        }
    }
    let mut out: Vec<u8> = Vec::new();
    for (off, data) in by_offset {
        let off = off as usize;
        if off > out.len() {
            return Err(format!(
                "gap of {} bytes at offset {}",
                off - out.len(),
                out.len()
            ));
        }
        let overlap = (out.len() - off).min(data.len());
        if out[off..off + overlap] != data[..overlap] {
            return Err(format!("retransmission at offset {off} disagrees"));
        }
        out.extend_from_slice(&data[overlap..]);
    }
    Ok(out)
}

fn u16_at(b: &[u8], at: usize, le: bool) -> Result<u16, String> {
    let s = b.get(at..at + 2).ok_or("truncated")?;
    let a = [s[0], s[1]];
    Ok(if le {
        u16::from_le_bytes(a)
    } else {
        u16::from_be_bytes(a)
    })
}

fn u32_at(b: &[u8], at: usize, le: bool) -> Result<u32, String> {
    let s = b.get(at..at + 4).ok_or("truncated")?;
    let a = [s[0], s[1], s[2], s[3]];
    Ok(if le {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    })
}

/// Call `f(link_type, frame)` for every captured frame.
fn for_each_frame(file: &[u8], f: &mut dyn FnMut(u16, &[u8])) -> Result<(), String> {
    let magic = u32_at(file, 0, false)?;
    match magic {
        0x0A0D0D0A => read_pcapng(file, f),
        0xa1b2c3d4 | 0xa1b23c4d => read_classic(file, false, f),
        0xd4c3b2a1 | 0x4d3cb2a1 => read_classic(file, true, f),
        other => Err(format!("not a capture file (magic {other:08x})")),
    }
}

fn read_classic(file: &[u8], le: bool, f: &mut dyn FnMut(u16, &[u8])) -> Result<(), String> {
    let link = u32_at(file, 20, le)? as u16;
    let mut at = 24;
    while at < file.len() {
        let cap = u32_at(file, at + 8, le)? as usize;
        let data = file
            .get(at + 16..at + 16 + cap)
            .ok_or("truncated packet record")?;
        f(link, data);
        at += 16 + cap;
    }
    Ok(())
}

fn read_pcapng(file: &[u8], f: &mut dyn FnMut(u16, &[u8])) -> Result<(), String> {
    let mut le = true;
    let mut links: Vec<u16> = Vec::new();
    let mut at = 0;
    while at < file.len() {
        if u32_at(file, at, false)? == 0x0A0D0D0A {
            // A new section: byte order from its magic, interface ids restart.
            le = match u32_at(file, at + 8, true)? {
                0x1A2B3C4D => true,
                0x4D3C2B1A => false,
                m => return Err(format!("bad pcapng byte-order magic {m:08x}")),
            };
            links.clear();
        }
        let btype = u32_at(file, at, le)?;
        let len = u32_at(file, at + 4, le)? as usize;
        if len < 12 || len & 3 != 0 || at + len > file.len() {
            return Err(format!("bad pcapng block length {len} at {at}"));
        }
        let body = &file[at + 8..at + len - 4];
        match btype {
            1 => links.push(u16_at(body, 0, le)?),
            6 => {
                let iface = u32_at(body, 0, le)? as usize;
                let cap = u32_at(body, 12, le)? as usize;
                let link = *links
                    .get(iface)
                    .ok_or("packet on an undeclared interface")?;
                f(
                    link,
                    body.get(20..20 + cap).ok_or("truncated enhanced packet")?,
                );
            }
            3 => {
                let link = *links.first().ok_or("simple packet without an interface")?;
                f(link, &body[4..]);
            }
            _ => {}
        }
        at += len;
    }
    Ok(())
}

struct Segment {
    src: Endpoint,
    dst: Endpoint,
    seq: u32,
    syn: bool,
    ack: bool,
    payload: Vec<u8>,
}

/// The TCP segment in one frame, if it carries TCP over IPv4/IPv6.
fn tcp_segment(link: u16, frame: &[u8]) -> Result<Option<Segment>, String> {
    let (ethertype, ip_at) = match link {
        1 => (u16_at(frame, 12, false)?, 14),
        113 => (u16_at(frame, 14, false)?, 16),
        276 => (u16_at(frame, 0, false)?, 20),
        0 => {
            // BSD loopback: address family in host byte order; 2 = IPv4, 24/28/30 = IPv6.
            let fam = u32_at(frame, 0, true)?.min(u32_at(frame, 0, false)?);
            (if fam == 2 { 0x0800 } else { 0x86dd }, 4)
        }
        101 => {
            let v = frame.first().ok_or("empty frame")? >> 4;
            (if v == 4 { 0x0800 } else { 0x86dd }, 0)
        }
        other => return Err(format!("unsupported link type {other}")),
    };
    let ip = frame.get(ip_at..).ok_or("truncated link header")?;
    let (src_ip, dst_ip, proto, tcp_at, ip_end) = match ethertype {
        0x0800 => {
            let ihl = usize::from(ip.first().ok_or("truncated IPv4")? & 0x0f) * 4;
            let total = usize::from(u16_at(ip, 2, false)?);
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s[..4].copy_from_slice(ip.get(12..16).ok_or("truncated IPv4")?);
            d[..4].copy_from_slice(ip.get(16..20).ok_or("truncated IPv4")?);
            (s, d, ip[9], ihl, total)
        }
        0x86dd => {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(ip.get(8..24).ok_or("truncated IPv6")?);
            d.copy_from_slice(ip.get(24..40).ok_or("truncated IPv6")?);
            (s, d, ip[6], 40, 40 + usize::from(u16_at(ip, 4, false)?))
        }
        _ => return Ok(None),
    };
    if proto != 6 {
        return Ok(None);
    }
    // Ethernet pads short frames: the IP length, not the frame length, ends the payload.
    let ip = ip.get(..ip_end).ok_or("frame shorter than its IP length")?;
    let tcp = ip.get(tcp_at..).ok_or("truncated TCP")?;
    let data_off = usize::from(tcp.get(12).ok_or("truncated TCP")? >> 4) * 4;
    let flags = tcp[13];
    Ok(Some(Segment {
        src: (src_ip, u16_at(tcp, 0, false)?),
        dst: (dst_ip, u16_at(tcp, 2, false)?),
        seq: u32_at(tcp, 4, false)?,
        syn: flags & 0x02 != 0,
        ack: flags & 0x10 != 0,
        payload: tcp.get(data_off..).ok_or("truncated TCP options")?.to_vec(),
    }))
}
