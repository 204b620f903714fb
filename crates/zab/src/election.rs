//! The election port's wire format (`election.md` §2-§3): the initial message the connecting
//! peer sends once, then length-prefixed notifications in both directions. Big-endian.
//!
//! ```text
//! initial message (connecting side only, one write):
//!   int64 protocolVersion   -65536 = V1 (default), -65535 = V2 (multiAddress.enabled);
//!                           >= 0: pre-3.5 header, this long IS the sid and nothing follows
//!   int64 sid
//!   int32 addrLen           1..=2048
//!   bytes addr              UTF-8 "host:port" (V1) or "h1:p1|h2:p2|..." (V2); IPv6 in brackets
//!
//! every later message, both directions:
//!   int32 length            1..=524288 (PACKETMAXSIZE)
//!   bytes payload           a notification:
//!
//! notification            offset size
//!   int32 state             0   4   0 LOOKING, 1 FOLLOWING, 2 LEADING, 3 OBSERVING
//!   int64 leader            4   8   proposed / current leader sid
//!   int64 zxid             12   8   that leader's last zxid
//!   int64 electionEpoch    20   8   the sender's round (logicalclock)
//!   int64 peerEpoch        28   8   the proposed leader's Zab epoch
//!   int32 version          36   4   2
//!   int32 configLength     40   4   only if version > 1
//!   bytes config           44   n   QuorumVerifier text (see `config_text`)
//!
//! old layouts, recognised by total length:
//!   28 bytes  state..electionEpoch; peerEpoch = zxid >> 32; version 0
//!   40 bytes  state..peerEpoch then 4 unused bytes (3.4 allocated 40, wrote 36); version 0
//! ```
//!
//! Decoders here are pure functions over a byte slice; they never panic and bound every length
//! before waiting for more bytes.

use crate::error::WireError;
use crate::ids::{Epoch, Round, ServerId, Zxid};
use crate::vote::Vote;

/// Initial message protocol version 1: one address.
pub const PROTOCOL_V1: i64 = -65536;
/// Initial message protocol version 2: `|`-separated addresses (multiAddress.enabled).
pub const PROTOCOL_V2: i64 = -65535;
/// Largest accepted initial-message address (`maxBuffer` in `InitialMessage.parse`).
pub const MAX_ADDRESS_LEN: usize = 2048;
/// Largest accepted election frame (`QuorumCnxManager.PACKETMAXSIZE`).
pub const PACKET_MAX_SIZE: usize = 512 * 1024;
/// The notification version Java 3.5+ sends (`Notification.CURRENTVERSION`).
pub const NOTIFICATION_VERSION: i32 = 2;

/// What the connecting side says first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitialMessage {
    /// Pre-3.5 header: a non-negative `long` sid and nothing else.
    Legacy { sid: ServerId },
    /// Protocol V1: the sender's election address, `host:port`.
    V1 { sid: ServerId, address: String },
    /// Protocol V2: the sender's election addresses joined by `|`, kept verbatim.
    V2 { sid: ServerId, addresses: String },
}

impl InitialMessage {
    pub fn sid(&self) -> ServerId {
        match self {
            InitialMessage::Legacy { sid }
            | InitialMessage::V1 { sid, .. }
            | InitialMessage::V2 { sid, .. } => *sid,
        }
    }

    /// The advertised election addresses, each `host:port` (none for the legacy header).
    pub fn addresses(&self) -> Vec<&str> {
        match self {
            InitialMessage::Legacy { .. } => Vec::new(),
            InitialMessage::V1 { address, .. } => vec![address.as_str()],
            InitialMessage::V2 { addresses, .. } => addresses.split('|').collect(),
        }
    }

    /// Decode from the start of a connection. `Ok(None)` means more bytes are needed; otherwise
    /// the message and how many bytes it used.
    pub fn decode(buf: &[u8]) -> Result<Option<(InitialMessage, usize)>, WireError> {
        let Some(first) = be_i64(buf, 0) else {
            return Ok(None);
        };
        if first >= 0 {
            return Ok(Some((
                InitialMessage::Legacy {
                    sid: ServerId(first),
                },
                8,
            )));
        }
        if first != PROTOCOL_V1 && first != PROTOCOL_V2 {
            return Err(WireError::BadProtocolVersion(first));
        }
        let (Some(sid), Some(len)) = (be_i64(buf, 8), be_i32(buf, 16)) else {
            return Ok(None);
        };
        if len <= 0 || len as usize > MAX_ADDRESS_LEN {
            return Err(WireError::BadAddressLength {
                len,
                max: MAX_ADDRESS_LEN,
            });
        }
        let end = 20 + len as usize;
        let Some(raw) = buf.get(20..end) else {
            return Ok(None);
        };
        let text = std::str::from_utf8(raw)
            .map_err(|_| WireError::BadAddressText)?
            .to_owned();
        let sid = ServerId(sid);
        let msg = if first == PROTOCOL_V1 {
            InitialMessage::V1 { sid, address: text }
        } else {
            InitialMessage::V2 {
                sid,
                addresses: text,
            }
        };
        Ok(Some((msg, end)))
    }

    /// Append the encoding. Java wants it in a single write.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (version, sid, text) = match self {
            InitialMessage::Legacy { sid } => {
                assert!(sid.0 >= 0, "a legacy initial message is a non-negative sid");
                out.extend_from_slice(&sid.0.to_be_bytes());
                return;
            }
            InitialMessage::V1 { sid, address } => (PROTOCOL_V1, sid, address),
            InitialMessage::V2 { sid, addresses } => (PROTOCOL_V2, sid, addresses),
        };
        assert!(
            (1..=MAX_ADDRESS_LEN).contains(&text.len()),
            "peers refuse an initial-message address of {} bytes",
            text.len()
        );
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&sid.0.to_be_bytes());
        out.extend_from_slice(&(text.len() as i32).to_be_bytes());
        out.extend_from_slice(text.as_bytes());
    }
}

/// Split `host:port` or `[v6]:port` as `ConfigUtils.getHostAndPort` does. `None` if malformed.
pub fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':')?)
    } else {
        address.rsplit_once(':')?
    };
    if host.is_empty() || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((host, port.parse().ok()?))
}

/// Find one election frame at the start of `buf`: `Ok(Some((payload_start, payload_end)))`,
/// `Ok(None)` if incomplete, or an error for a length Java would refuse (it then closes).
pub fn next_frame(buf: &[u8]) -> Result<Option<(usize, usize)>, WireError> {
    let Some(len) = be_i32(buf, 0) else {
        return Ok(None);
    };
    if len <= 0 || len as usize > PACKET_MAX_SIZE {
        return Err(WireError::BadFrameLength {
            len,
            max: PACKET_MAX_SIZE,
        });
    }
    let end = 4 + len as usize;
    Ok((buf.len() >= end).then_some((4, end)))
}

/// Append `payload` as one election frame.
pub fn write_frame(payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        (1..=PACKET_MAX_SIZE).contains(&payload.len()),
        "peers refuse an election frame of {} bytes",
        payload.len()
    );
    out.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// A peer's state as announced in notifications (`QuorumPeer.ServerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerState {
    Looking = 0,
    Following = 1,
    Leading = 2,
    Observing = 3,
}

impl PeerState {
    pub fn from_code(code: i32) -> Option<PeerState> {
        Some(match code {
            0 => PeerState::Looking,
            1 => PeerState::Following,
            2 => PeerState::Leading,
            3 => PeerState::Observing,
            _ => return None,
        })
    }

    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn name(self) -> &'static str {
        match self {
            PeerState::Looking => "LOOKING",
            PeerState::Following => "FOLLOWING",
            PeerState::Leading => "LEADING",
            PeerState::Observing => "OBSERVING",
        }
    }
}

/// Which notification layout a message used; decides its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationFormat {
    /// 28 bytes, no peerEpoch (derived from the zxid), version 0.
    Legacy28,
    /// 40 bytes: 36 bytes of fields and 4 unused ones, version 0.
    Legacy40,
    /// 40 bytes plus, when `version > 1`, the config; with `version <= 1` four zero bytes
    /// follow instead, so the frame is not mistaken for `Legacy40`.
    Current,
}

/// One election notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub state: PeerState,
    pub leader: ServerId,
    pub zxid: Zxid,
    /// `electionEpoch` on the wire.
    pub round: Round,
    pub peer_epoch: Epoch,
    /// 0 for the legacy layouts, [`NOTIFICATION_VERSION`] from Java 3.5+.
    pub version: i32,
    /// The sender's QuorumVerifier text; bytes because Java accepts whatever its charset
    /// makes of them. Empty when `version <= 1`.
    pub config: Vec<u8>,
    pub format: NotificationFormat,
}

impl Notification {
    /// A current-format notification as Java 3.8 builds it (`buildMsg`).
    pub fn new(state: PeerState, vote: Vote, config: impl Into<Vec<u8>>) -> Notification {
        Notification {
            state,
            leader: vote.leader,
            zxid: vote.zxid,
            round: vote.round,
            peer_epoch: vote.peer_epoch,
            version: NOTIFICATION_VERSION,
            config: config.into(),
            format: NotificationFormat::Current,
        }
    }

    /// The vote this notification carries.
    pub fn vote(&self) -> Vote {
        Vote {
            leader: self.leader,
            zxid: self.zxid,
            round: self.round,
            peer_epoch: self.peer_epoch,
        }
    }

    /// The config as text, if it is UTF-8.
    pub fn config_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.config).ok()
    }

    /// Decode one frame's payload, following `FastLeaderElection.WorkerReceiver`. Every error
    /// here means "Java drops this message"; the connection stays usable.
    pub fn decode(payload: &[u8]) -> Result<Notification, WireError> {
        let len = payload.len();
        let short = || WireError::NotificationTooShort { len };
        let state_code = be_i32(payload, 0).ok_or_else(short)?;
        let leader = be_i64(payload, 4).ok_or_else(short)?;
        let zxid = Zxid(be_i64(payload, 12).ok_or_else(short)?);
        let round = Round(be_i64(payload, 20).ok_or_else(short)?);
        let state =
            PeerState::from_code(state_code).ok_or(WireError::UnknownPeerState(state_code))?;
        let mut n = Notification {
            state,
            leader: ServerId(leader),
            zxid,
            round,
            peer_epoch: zxid.epoch(),
            version: 0,
            config: Vec::new(),
            format: NotificationFormat::Legacy28,
        };
        if len == 28 {
            return Ok(n);
        }
        n.peer_epoch = Epoch(be_i64(payload, 28).ok_or_else(short)?);
        if len == 40 {
            n.format = NotificationFormat::Legacy40;
            return Ok(n);
        }
        n.format = NotificationFormat::Current;
        n.version = be_i32(payload, 36).ok_or_else(short)?;
        if n.version > 1 {
            let config_len = be_i32(payload, 40).ok_or_else(short)?;
            if config_len < 0 || config_len as usize > len {
                return Err(WireError::BadConfigLength {
                    len: config_len,
                    frame: len,
                });
            }
            n.config = payload
                .get(44..44 + config_len as usize)
                .ok_or_else(short)?
                .to_vec();
        }
        Ok(n)
    }

    /// Append the payload (without the frame length).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.state.code().to_be_bytes());
        out.extend_from_slice(&self.leader.0.to_be_bytes());
        out.extend_from_slice(&self.zxid.0.to_be_bytes());
        out.extend_from_slice(&self.round.0.to_be_bytes());
        match self.format {
            NotificationFormat::Legacy28 => {}
            NotificationFormat::Legacy40 => {
                out.extend_from_slice(&self.peer_epoch.0.to_be_bytes());
                out.extend_from_slice(&[0; 4]);
            }
            NotificationFormat::Current => {
                out.extend_from_slice(&self.peer_epoch.0.to_be_bytes());
                out.extend_from_slice(&self.version.to_be_bytes());
                if self.version > 1 {
                    let len = i32::try_from(self.config.len())
                        .expect("a config text fits an election frame");
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(&self.config);
                } else {
                    out.extend_from_slice(&[0; 4]);
                }
            }
        }
    }

    /// Append as a complete election frame.
    pub fn encode_frame(&self, out: &mut Vec<u8>) {
        let mut payload = Vec::with_capacity(44 + self.config.len());
        self.encode(&mut payload);
        write_frame(&payload, out);
    }
}

pub(crate) fn be_i32(buf: &[u8], at: usize) -> Option<i32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

pub(crate) fn be_i64(buf: &[u8], at: usize) -> Option<i64> {
    let b = buf.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(i64::from_be_bytes(a))
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
    fn initial_message_from_the_spec_decodes_and_round_trips() {
        let mut bytes = hex("ffffffffffff0000 0000000000000002 0000000f");
        bytes.extend_from_slice(b"127.0.0.1:22222");
        for cut in 0..bytes.len() {
            assert_eq!(InitialMessage::decode(&bytes[..cut]), Ok(None), "cut {cut}");
        }
        let (m, used) = InitialMessage::decode(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(
            m,
            InitialMessage::V1 {
                sid: ServerId(2),
                address: "127.0.0.1:22222".into()
            }
        );
        assert_eq!(
            split_host_port(m.addresses()[0]),
            Some(("127.0.0.1", 22222))
        );
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn initial_message_variants_and_refusals() {
        let (m, used) = InitialMessage::decode(&7i64.to_be_bytes())
            .unwrap()
            .unwrap();
        assert_eq!((m, used), (InitialMessage::Legacy { sid: ServerId(7) }, 8));

        let v2 = InitialMessage::V2 {
            sid: ServerId(3),
            addresses: "a:1|[::1]:3888".into(),
        };
        let mut out = Vec::new();
        v2.encode(&mut out);
        let (back, _) = InitialMessage::decode(&out).unwrap().unwrap();
        assert_eq!(back, v2);
        assert_eq!(back.addresses(), vec!["a:1", "[::1]:3888"]);
        assert_eq!(split_host_port("[::1]:3888"), Some(("::1", 3888)));
        assert_eq!(split_host_port("nohost"), None);
        assert_eq!(split_host_port("h:99999"), None);

        assert_eq!(
            InitialMessage::decode(&(-5i64).to_be_bytes()),
            Err(WireError::BadProtocolVersion(-5))
        );
        for len in [0i32, -1, 2049, i32::MAX] {
            let mut b = hex("ffffffffffff0000 0000000000000002");
            b.extend_from_slice(&len.to_be_bytes());
            assert!(matches!(
                InitialMessage::decode(&b),
                Err(WireError::BadAddressLength { .. })
            ));
        }
        let mut b = hex("ffffffffffff0000 0000000000000002 00000001 ff");
        assert_eq!(InitialMessage::decode(&b), Err(WireError::BadAddressText));
        b.truncate(20);
        assert_eq!(InitialMessage::decode(&b), Ok(None));
    }

    #[test]
    fn frames_are_bounded() {
        assert_eq!(next_frame(&[0, 0, 0]), Ok(None));
        assert_eq!(next_frame(&[0, 0, 0, 2, 9]), Ok(None));
        assert_eq!(next_frame(&[0, 0, 0, 2, 9, 9, 1]), Ok(Some((4, 6))));
        for len in [0i32, -1, 524289] {
            assert!(matches!(
                next_frame(&len.to_be_bytes()),
                Err(WireError::BadFrameLength { .. })
            ));
        }
        assert!(next_frame(&524288i32.to_be_bytes()).unwrap().is_none());
    }

    #[test]
    fn notification_layouts_decode_and_round_trip() {
        let spec = hex(
            "00000000 0000000000000002 0000000000000000 0000000000000001 \
             0000000000000000 00000002 00000003",
        );
        let mut current = spec.clone();
        current.extend_from_slice(b"v=0");
        let n = Notification::decode(&current).unwrap();
        assert_eq!(n.state, PeerState::Looking);
        assert_eq!(n.leader, ServerId(2));
        assert_eq!(n.round, Round(1));
        assert_eq!(n.version, 2);
        assert_eq!(n.config_text(), Some("v=0"));

        let old28 = &current[..28];
        let n28 = Notification::decode(old28).unwrap();
        assert_eq!(n28.format, NotificationFormat::Legacy28);
        assert_eq!(n28.peer_epoch, Epoch(0));

        let mut old40 = current[..36].to_vec();
        old40.extend_from_slice(&[0; 4]);
        let n40 = Notification::decode(&old40).unwrap();
        assert_eq!((n40.format, n40.version), (NotificationFormat::Legacy40, 0));

        let mut v1 = current[..36].to_vec();
        v1.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        let n1 = Notification::decode(&v1).unwrap();
        assert_eq!((n1.format, n1.version), (NotificationFormat::Current, 1));

        for bytes in [current.clone(), old28.to_vec(), old40, v1] {
            let mut out = Vec::new();
            Notification::decode(&bytes).unwrap().encode(&mut out);
            assert_eq!(out, bytes);
        }
    }

    #[test]
    fn bad_notifications_are_typed_errors() {
        let mut base = hex(
            "00000001 0000000000000002 0000000000000000 0000000000000001 \
             0000000000000000 00000002 00000003 414243",
        );
        for len in [0, 27, 29, 35, 36, 39, 41, 43, 46] {
            assert_eq!(
                Notification::decode(&base[..len]),
                Err(WireError::NotificationTooShort { len }),
                "len {len}"
            );
        }
        base[40..44].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(
            Notification::decode(&base),
            Err(WireError::BadConfigLength { .. })
        ));
        base[40..44].copy_from_slice(&1000i32.to_be_bytes());
        assert!(matches!(
            Notification::decode(&base),
            Err(WireError::BadConfigLength { .. })
        ));
        base[0..4].copy_from_slice(&9i32.to_be_bytes());
        assert_eq!(
            Notification::decode(&base),
            Err(WireError::UnknownPeerState(9))
        );
    }
}
