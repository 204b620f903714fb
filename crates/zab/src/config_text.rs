//! The QuorumVerifier text that travels in every election notification and in NEWLEADER
//! (`election.md` §3.1): `QuorumMaj.toString()`, one line per member, then the version in hex,
//! with no trailing newline.
//!
//! ```text
//! server.1=127.0.0.1:22211:22221:participant\n
//! server.4=127.0.0.1:22214:22224:observer\n
//! version=0
//! member value: host:quorumPort:electionPort:role[;clientHost:clientPort]
//!               (IPv6 hosts in brackets; the client part only for dynamic-config members)
//! ```
//!
//! Java peers restart their election when they receive a config with a higher version that is
//! not equal to theirs, and a semantically invalid one kills their receiver thread, so we must
//! send exactly what they send. Member order is Java's `HashMap<Long, _>` iteration order
//! (bucket of the sid's hash, then insertion order), which is ascending sid for small
//! ensembles. [`parse`] reads what [`render`] (and Java) writes; it is not a full
//! `java.util.Properties` parser (no escapes, no comments).

use crate::error::WireError;
use crate::ids::ServerId;

/// One `server.N=` line of the config text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMember {
    pub sid: ServerId,
    /// Host as configured; IPv6 without brackets.
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub observer: bool,
    /// `clientHost:clientPort` when the client address came from a dynamic config.
    pub client: Option<String>,
    /// More addresses (`multiAddress.enabled`): host, quorum port, election port.
    pub more: Vec<(String, u16, u16)>,
}

impl ConfigMember {
    /// Every address: (host, quorum port, election port), the first one first.
    pub fn addresses(&self) -> Vec<(&str, u16, u16)> {
        std::iter::once((self.host.as_str(), self.quorum_port, self.election_port))
            .chain(self.more.iter().map(|(h, q, e)| (h.as_str(), *q, *e)))
            .collect()
    }

    fn render_value(&self, out: &mut String) {
        use std::fmt::Write;
        // Java's QuorumServer.toString: the addresses sorted by host, joined by '|'.
        let mut addresses = self.addresses();
        if addresses.len() > 1 {
            addresses.sort_by(|a, b| a.0.cmp(b.0));
        }
        for (i, (host, quorum, election)) in addresses.into_iter().enumerate() {
            if i > 0 {
                out.push('|');
            }
            if host.contains(':') {
                let _ = write!(out, "[{host}]");
            } else {
                out.push_str(host);
            }
            let _ = write!(out, ":{quorum}:{election}");
        }
        let role = if self.observer {
            "observer"
        } else {
            "participant"
        };
        let _ = write!(out, ":{role}");
        if let Some(c) = &self.client {
            out.push(';');
            out.push_str(c);
        }
    }
}

/// Render `members` (in configuration order) and `version` as Java's `QuorumMaj.toString()`.
pub fn render(members: &[ConfigMember], version: i64) -> String {
    let mut out = String::new();
    for m in java_hash_map_order(members) {
        out.push_str("server.");
        out.push_str(&m.sid.0.to_string());
        out.push('=');
        m.render_value(&mut out);
        out.push('\n');
    }
    out.push_str(&format!("version={:x}", version as u64));
    out
}

/// Parse a config text as [`render`] writes it: the members in text order and the version.
pub fn parse(text: &str) -> Result<(Vec<ConfigMember>, i64), WireError> {
    let bad = WireError::BadConfigText;
    let mut members = Vec::new();
    let mut version = None;
    for line in text.split('\n').filter(|l| !l.trim().is_empty()) {
        let (key, value) = line.split_once('=').ok_or(bad("a line without '='"))?;
        let (key, value) = (key.trim(), value.trim());
        if key == "version" {
            let v = u64::from_str_radix(value, 16).map_err(|_| bad("version is not hex"))?;
            version = Some(v as i64);
            continue;
        }
        let sid = key
            .strip_prefix("server.")
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or(bad("a key that is neither server.N nor version"))?;
        members.push(parse_member(ServerId(sid), value)?);
    }
    // Java's QuorumMaj reads a missing version as 0 (an empty text is an empty verifier).
    Ok((members, version.unwrap_or(0)))
}

/// The config text a reconfig txn sets (`/zookeeper/config`'s new data); None for any other
/// txn.
pub fn of_entry(entry: &zooid_proto::TxnEntry) -> Option<&[u8]> {
    match &entry.txn {
        zooid_proto::Txn::Reconfig { data: Some(d), .. } => Some(d),
        _ => None,
    }
}

/// One member's value, `host:quorumPort:electionPort[:role][;[clientHost:]clientPort]`, as
/// Java's `QuorumServer` reads it; a client part that is only a port listens on `0.0.0.0`.
pub fn parse_member(sid: ServerId, value: &str) -> Result<ConfigMember, WireError> {
    let bad = WireError::BadConfigText;
    let value = value.trim();
    let (addr, client) = match value.split_once(';') {
        Some((a, c)) => {
            let c = c.trim();
            let client = match c.rsplit_once(':') {
                Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => c.to_owned(),
                None if c.parse::<u16>().is_ok() => format!("0.0.0.0:{c}"),
                _ => return Err(bad("a client address that is neither port nor host:port")),
            };
            (a.trim(), Some(client))
        }
        None => (value, None),
    };
    let mut addresses = Vec::new();
    let mut observer = false;
    for one in addr.split('|') {
        let (host, quorum, election, role) = parse_address(one.trim())?;
        if let Some(o) = role {
            observer = o;
        }
        addresses.push((host.to_owned(), quorum, election));
    }
    let (host, quorum_port, election_port) = addresses.remove(0);
    Ok(ConfigMember {
        sid,
        host,
        quorum_port,
        election_port,
        observer,
        client,
        more: addresses,
    })
}

/// One address of a member: `host:quorumPort:electionPort[:role]` (the role as
/// `Some(observer)`).
fn parse_address(addr: &str) -> Result<(&str, u16, u16, Option<bool>), WireError> {
    let bad = WireError::BadConfigText;
    let (host, rest) = if let Some(r) = addr.strip_prefix('[') {
        let (h, rest) = r.split_once(']').ok_or(bad("unclosed '[' in a host"))?;
        (
            h,
            rest.strip_prefix(':').ok_or(bad("no port after a host"))?,
        )
    } else {
        addr.split_once(':').ok_or(bad("no port after a host"))?
    };
    let mut parts = rest.split(':');
    let port = |p: Option<&str>| {
        p.and_then(|p| p.parse::<u16>().ok())
            .ok_or(bad("a port is missing or not a number"))
    };
    let quorum_port = port(parts.next())?;
    let election_port = port(parts.next())?;
    let role = match parts.next() {
        None => None,
        Some("participant") => Some(false),
        Some("observer") => Some(true),
        Some(_) => return Err(bad("a role that is neither participant nor observer")),
    };
    if parts.next().is_some() || host.is_empty() {
        return Err(bad("a malformed server address"));
    }
    Ok((host, quorum_port, election_port, role))
}

/// Why a reconfig request is refused with BADARGUMENTS (ZooKeeper's messages, for the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconfigError {
    #[error("Wrong format of server string: {0:?}")]
    ServerString(String),
    #[error("{0:?} is not a server id")]
    LeavingId(String),
    #[error("Wrong format of server string - each server should have 3 ports specified: {0:?}")]
    NoClientPort(String),
    #[error("server {0}: its address is already used by server {1}")]
    DuplicateAddress(ServerId, ServerId),
    #[error("Reconfig failed - new configuration must include at least {0} followers")]
    TooFewVoters(usize),
}

/// The membership a reconfig request asks for (`PrepRequestProcessor`'s reconfig case).
/// Non-incremental when `new_members` is given: its `server.N=` lines (separated by commas or
/// newlines) are the whole new membership. Otherwise incremental: `current` without the ids
/// in `leaving` (comma-separated), with the `server.N=spec` entries of `joining`
/// (comma-separated; each needs its client port) added or replacing. The result must keep
/// `min_voters` voters (2 when `standaloneEnabled`, else 1).
pub fn reconfigure(
    current: &[ConfigMember],
    joining: Option<&str>,
    leaving: Option<&str>,
    new_members: Option<&str>,
    min_voters: usize,
) -> Result<Vec<ConfigMember>, ReconfigError> {
    let entries = |s: &str| -> Vec<String> {
        s.split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let server_line = |line: &str| -> Result<ConfigMember, ReconfigError> {
        let wrong = || ReconfigError::ServerString(line.to_owned());
        let (key, value) = line.split_once('=').ok_or_else(wrong)?;
        let key = key.trim();
        let sid = key[key.rfind('.').map_or(0, |i| i + 1)..]
            .parse::<i64>()
            .map_err(|_| wrong())?;
        parse_member(ServerId(sid), value).map_err(|_| wrong())
    };
    let next = if let Some(all) = new_members {
        let mut next: Vec<ConfigMember> = Vec::new();
        for line in entries(all) {
            if line.starts_with("version") {
                continue;
            }
            let m = server_line(&line)?;
            next.retain(|o| o.sid != m.sid);
            next.push(m);
        }
        check_addresses(&next)?;
        next
    } else {
        let mut next = current.to_vec();
        for id in leaving.map(entries).unwrap_or_default() {
            let sid = id
                .parse::<i64>()
                .map_err(|_| ReconfigError::LeavingId(id.clone()))?;
            next.retain(|m| m.sid.0 != sid);
        }
        for line in joining.map(entries).unwrap_or_default() {
            let m = server_line(&line)?;
            if m.client.is_none() {
                return Err(ReconfigError::NoClientPort(line));
            }
            next.retain(|o| o.sid != m.sid);
            next.push(m);
        }
        check_addresses(&next)?;
        next
    };
    if next.iter().filter(|m| !m.observer).count() < min_voters.max(1) {
        return Err(ReconfigError::TooFewVoters(min_voters.max(1)));
    }
    Ok(next)
}

/// No two members may share a quorum or election address (`checkAddressDuplicate`).
fn check_addresses(members: &[ConfigMember]) -> Result<(), ReconfigError> {
    for (i, a) in members.iter().enumerate() {
        for b in &members[..i] {
            for (ha, qa, ea) in a.addresses() {
                for (hb, qb, eb) in b.addresses() {
                    if ha == hb && [qa, ea].iter().any(|p| *p == qb || *p == eb) {
                        return Err(ReconfigError::DuplicateAddress(a.sid, b.sid));
                    }
                }
            }
        }
    }
    Ok(())
}

/// `members` in the order a `java.util.HashMap<Long, _>` filled in that order iterates them:
/// by bucket (`spread(Long.hashCode(sid)) & (capacity - 1)`), ties in insertion order.
fn java_hash_map_order(members: &[ConfigMember]) -> Vec<&ConfigMember> {
    // Default capacity 16, doubled whenever size exceeds 0.75 x capacity.
    let mut capacity: u64 = 16;
    while members.len() as u64 * 4 > capacity * 3 {
        capacity *= 2;
    }
    let bucket = |sid: i64| {
        let v = sid as u64;
        let h = (v ^ (v >> 32)) as u32;
        u64::from(h ^ (h >> 16)) & (capacity - 1)
    };
    let mut ordered: Vec<&ConfigMember> = members.iter().collect();
    ordered.sort_by_key(|m| bucket(m.sid.0)); // stable: insertion order within a bucket
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURED: &str = "server.1=127.0.0.1:22211:22221:participant\n\
                            server.2=127.0.0.1:22212:22222:participant\n\
                            server.3=127.0.0.1:22213:22223:participant\n\
                            server.4=127.0.0.1:22214:22224:observer\n\
                            version=0";

    fn member(sid: i64, observer: bool) -> ConfigMember {
        ConfigMember {
            sid: ServerId(sid),
            host: "127.0.0.1".into(),
            quorum_port: 22210 + sid as u16,
            election_port: 22220 + sid as u16,
            observer,
            client: None,
            more: Vec::new(),
        }
    }

    #[test]
    fn renders_the_captured_config_exactly() {
        let members = [
            member(3, false),
            member(1, false),
            member(4, true),
            member(2, false),
        ];
        assert_eq!(render(&members, 0), CAPTURED);
        let (parsed, version) = parse(CAPTURED).unwrap();
        assert_eq!(version, 0);
        assert_eq!(render(&parsed, version), CAPTURED);
    }

    #[test]
    fn hash_map_order_wraps_at_the_capacity() {
        // With capacity 16, sid 17 shares bucket 1 with sid 1 and follows it; 16 is bucket 0.
        let members = [member(1, false), member(17, false), member(16, false)];
        let order: Vec<i64> = java_hash_map_order(&members)
            .iter()
            .map(|m| m.sid.0)
            .collect();
        assert_eq!(order, [16, 1, 17]);
    }

    #[test]
    fn ipv6_client_parts_and_versions() {
        let m = ConfigMember {
            sid: ServerId(5),
            host: "::1".into(),
            quorum_port: 2888,
            election_port: 3888,
            observer: false,
            client: Some("0.0.0.0:2181".into()),
            more: Vec::new(),
        };
        let text = render(std::slice::from_ref(&m), 0x1_0000_0000);
        assert_eq!(
            text,
            "server.5=[::1]:2888:3888:participant;0.0.0.0:2181\nversion=100000000"
        );
        assert_eq!(parse(&text).unwrap(), (vec![m], 0x1_0000_0000));
        assert!(parse("server.1=h:1\nversion=0").is_err());
        assert!(parse("server.x=h:1:2\nversion=0").is_err());
        assert_eq!(parse("server.1=h:1:2").unwrap().1, 0);
        assert_eq!(parse("").unwrap(), (vec![], 0));
    }

    #[test]
    fn reconfig_plans_follow_zookeeper_rules() {
        let current = [member(1, false), member(2, false), member(3, false)];
        // Incremental: remove one, add one with its client port (a bare port listens on all).
        let next = reconfigure(
            &current,
            Some("server.4=127.0.0.1:22214:22224:observer;2184"),
            Some("3"),
            None,
            2,
        )
        .unwrap();
        let sids: Vec<i64> = next.iter().map(|m| m.sid.0).collect();
        assert_eq!(sids, [1, 2, 4]);
        assert_eq!(next[2].client.as_deref(), Some("0.0.0.0:2184"));
        assert!(next[2].observer);
        // A joiner must name its client port; a server string must parse.
        assert!(matches!(
            reconfigure(
                &current,
                Some("server.4=127.0.0.1:22214:22224"),
                None,
                None,
                2
            ),
            Err(ReconfigError::NoClientPort(_))
        ));
        assert!(matches!(
            reconfigure(&current, Some("some thing"), None, None, 2),
            Err(ReconfigError::ServerString(_))
        ));
        assert!(matches!(
            reconfigure(&current, None, Some("x"), None, 2),
            Err(ReconfigError::LeavingId(_))
        ));
        // Address clashes and too few voters.
        assert!(matches!(
            reconfigure(
                &current,
                Some("server.4=127.0.0.1:22211:9:participant;1"),
                None,
                None,
                2
            ),
            Err(ReconfigError::DuplicateAddress(..))
        ));
        assert_eq!(
            reconfigure(&current, None, Some("2,3"), None, 2),
            Err(ReconfigError::TooFewVoters(2))
        );
        assert_eq!(
            reconfigure(&current, None, Some("2,3"), None, 1)
                .unwrap()
                .len(),
            1
        );
        // Non-incremental: the list is the membership; commas or newlines separate.
        let next = reconfigure(
            &current,
            None,
            None,
            Some("server.1=127.0.0.1:22211:22221:participant;2181,server.2=127.0.0.1:22212:22222;2182\nversion=5"),
            2,
        )
        .unwrap();
        assert_eq!(next.len(), 2);
        assert_eq!(next[1].client.as_deref(), Some("0.0.0.0:2182"));
    }

    #[test]
    fn several_addresses_render_sorted_by_host_as_java_does() {
        let (members, _) =
            parse("server.1=127.0.1.1:2889:3889|127.0.0.1:2888:3888:observer;2181\nversion=0")
                .unwrap();
        let m = &members[0];
        assert_eq!(
            (m.host.as_str(), m.more.len(), m.observer),
            ("127.0.1.1", 1, true)
        );
        assert_eq!(
            render(&members, 0),
            "server.1=127.0.0.1:2888:3888|127.0.1.1:2889:3889:observer;0.0.0.0:2181\nversion=0"
        );
    }
}
