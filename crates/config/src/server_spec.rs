//! Ensemble membership: [`ServerId`], [`PeerRole`], [`ServerSpec`] and the
//! parsing of `server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]`
//! lines (IPv6 hosts in brackets; more addresses after `|`, `multiAddress.enabled`). Host
//! names are checked for shape only, never resolved here.

use std::fmt;
use std::net::Ipv6Addr;

use crate::value::{parse_port, PortError};

/// A server's id: the `N` of `server.N` and the number in its `myid` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerId(pub u64);

impl ServerId {
    /// The largest accepted id. Session ids carry the server id in their top
    /// byte, and ZooKeeper reserves 255 when extended types (TTL nodes) are on.
    pub const MAX: u64 = 254;
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Whether a server votes (participant) or only follows (observer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PeerRole {
    #[default]
    Participant,
    Observer,
}

impl PeerRole {
    /// Parses `participant` / `observer`, any case.
    pub fn parse(text: &str) -> Option<PeerRole> {
        if text.eq_ignore_ascii_case("participant") {
            Some(PeerRole::Participant)
        } else if text.eq_ignore_ascii_case("observer") {
            Some(PeerRole::Observer)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PeerRole::Participant => "participant",
            PeerRole::Observer => "observer",
        }
    }
}

impl fmt::Display for PeerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `server.N` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// Host name or IP literal; IPv6 without brackets (`::1`).
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub role: PeerRole,
    /// From a `;[clientHost:]clientPort` suffix; the host defaults to `0.0.0.0`.
    pub client_addr: Option<(String, u16)>,
    /// The addresses after the first (`a:1:2|b:3:4`, `multiAddress.enabled`): host, quorum
    /// port, election port, in the order written.
    pub more_addresses: Vec<(String, u16, u16)>,
}

/// The full form of a server line, shown in hints.
pub(crate) const SERVER_FORM: &str =
    "server.N=host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]";

/// What is wrong with a server line and what to do; the caller adds
/// file, line, key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineProblem {
    pub problem: String,
    pub hint: String,
}

fn problem(problem: impl Into<String>, hint: impl Into<String>) -> LineProblem {
    LineProblem {
        problem: problem.into(),
        hint: hint.into(),
    }
}

fn use_the_form() -> String {
    format!("use the form {SERVER_FORM}")
}

/// A parsed server line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedServer {
    pub spec: ServerSpec,
}

/// Parses the `N` of `server.N`.
pub(crate) fn parse_server_id(suffix: &str) -> Result<ServerId, LineProblem> {
    if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(problem(
            format!("has server id {suffix:?}, which is not a number"),
            format!(
                "write server.N with N the number in that server's myid file, e.g. \
                 server.1=zk1.example.com:2888:3888 ({SERVER_FORM})"
            ),
        ));
    }
    match suffix.parse::<u64>() {
        Ok(n) if n <= ServerId::MAX => Ok(ServerId(n)),
        _ => Err(problem(
            format!("has server id {suffix}, which is too large"),
            format!(
                "use ids from 1 to {} (session ids carry the server id in one byte, so larger \
                 ids would make them collide)",
                ServerId::MAX
            ),
        )),
    }
}

/// Splits `host[:rest]` or `[v6]:rest`; returns (host, rest, bracketed).
fn split_host(text: &str) -> Result<(&str, Option<&str>, bool), LineProblem> {
    if let Some(inner) = text.strip_prefix('[') {
        let Some((host, after)) = inner.split_once(']') else {
            return Err(problem(
                "has a '[' without a matching ']'",
                "write IPv6 hosts as [address], e.g. server.1=[fd00::1]:2888:3888",
            ));
        };
        if after.is_empty() {
            return Ok((host, None, true));
        }
        match after.strip_prefix(':') {
            Some(rest) => Ok((host, Some(rest), true)),
            None => Err(problem(
                format!("has {after:?} right after ']'"),
                "put ':' between the bracketed address and the port, e.g. [fd00::1]:2888:3888",
            )),
        }
    } else {
        match text.split_once(':') {
            Some((host, rest)) => Ok((host, Some(rest), false)),
            None => Ok((text, None, false)),
        }
    }
}

fn check_host(host: &str, bracketed: bool) -> Result<(), LineProblem> {
    if host.is_empty() {
        return Err(problem(
            "has an empty host name",
            "write e.g. server.1=zk1.example.com:2888:3888 (IPv6 addresses go in brackets: [::1]:2888:3888)",
        ));
    }
    if host.chars().any(char::is_whitespace) {
        return Err(problem(
            format!("has whitespace inside the host name {host:?}"),
            "remove the whitespace, e.g. server.1=zk1.example.com:2888:3888",
        ));
    }
    if bracketed && host.parse::<Ipv6Addr>().is_err() {
        return Err(problem(
            format!("has [{host}] in brackets, which is not an IPv6 address"),
            "brackets are only for IPv6 addresses; write other hosts without them",
        ));
    }
    Ok(())
}

fn port(text: &str, which: &str) -> Result<u16, LineProblem> {
    parse_port(text).map_err(|e| match e {
        PortError::NotANumber => problem(
            format!("has {which} {text:?}, which is not a port number"),
            use_the_form(),
        ),
        PortError::OutOfRange => problem(
            format!("has {which} {text}, which is out of range"),
            "use ports between 1 and 65535",
        ),
    })
}

/// Parses `host:quorumPort:electionPort[:role]`.
fn parse_address(addr: &str) -> Result<(String, u16, u16, PeerRole), LineProblem> {
    let (host, rest, bracketed) = split_host(addr)?;
    let parts: Vec<&str> = rest.map(|r| r.split(':').collect()).unwrap_or_default();
    if !bracketed && parts.len() > 3 {
        return Err(problem(
            "has too many ':'-separated parts",
            format!(
                "if the host is an IPv6 address write it in brackets, e.g. \
                 server.1=[fd00::1]:2888:3888; otherwise {}",
                use_the_form()
            ),
        ));
    }
    check_host(host, bracketed)?;
    let (quorum, election, role) = match parts.as_slice() {
        [q, e] => (*q, *e, None),
        [q, e, r] => (*q, *e, Some(*r)),
        [] | [_] => {
            return Err(problem(
                "needs two ports",
                format!("write e.g. server.1=zk1.example.com:2888:3888 ({SERVER_FORM})"),
            ))
        }
        _ => return Err(problem("has too many ':'-separated parts", use_the_form())),
    };
    let quorum_port = port(quorum, "quorum port")?;
    let election_port = port(election, "election port")?;
    let role = match role {
        None => PeerRole::Participant,
        Some(r) => PeerRole::parse(r).ok_or_else(|| {
            problem(
                format!("has role {r:?}, which is neither participant nor observer"),
                "end the address with :participant or :observer, or leave the role out",
            )
        })?,
    };
    if quorum_port == election_port {
        return Err(problem(
            format!("uses port {quorum_port} for both quorum and election traffic"),
            "give the election port its own number, e.g. server.1=zk1.example.com:2888:3888",
        ));
    }
    Ok((host.to_string(), quorum_port, election_port, role))
}

/// Parses `[clientHost:]clientPort`.
fn parse_client(text: &str) -> Result<(String, u16), LineProblem> {
    let text = text.trim();
    if text.is_empty() {
        return Err(problem(
            "has nothing after ';'",
            "write the client port after ';', e.g. server.1=zk1.example.com:2888:3888;2181",
        ));
    }
    let (host, port_text) = if text.starts_with('[') {
        let (host, rest, _) = split_host(text)?;
        check_host(host, true)?;
        match rest {
            Some(p) => (host, p),
            None => {
                return Err(problem(
                    "has a client address without a port",
                    "write e.g. ;[::1]:2181",
                ))
            }
        }
    } else {
        match text.split_once(':') {
            Some((host, p)) => {
                if p.contains(':') {
                    return Err(problem(
                        "has too many ':' in the client address",
                        "write IPv6 client hosts in brackets, e.g. ;[::1]:2181",
                    ));
                }
                check_host(host, false)?;
                (host, p)
            }
            None => ("0.0.0.0", text),
        }
    };
    Ok((host.to_string(), port(port_text, "client port")?))
}

/// Parses the value of a `server.N` line.
pub(crate) fn parse_server_value(value: &str) -> Result<ParsedServer, LineProblem> {
    if value.is_empty() {
        return Err(problem(
            "is empty",
            format!("write e.g. server.1=zk1.example.com:2888:3888 ({SERVER_FORM})"),
        ));
    }
    let (addresses, client) = match value.split_once(';') {
        Some((a, c)) => (a, Some(c)),
        None => (value, None),
    };
    let mut list = addresses.split('|');
    let first = list.next().unwrap_or("").trim();
    let (host, quorum_port, election_port, mut role) = parse_address(first)?;
    let mut more_addresses = Vec::new();
    for a in list.map(str::trim).filter(|a| !a.is_empty()) {
        let (h, q, e, r) = parse_address(a)?;
        // As ZooKeeper reads them, the last address that names a role sets it.
        if a.rsplit(':').next().and_then(PeerRole::parse).is_some() {
            role = r;
        }
        more_addresses.push((h, q, e));
    }
    let client_addr = match client {
        Some(c) => Some(parse_client(c)?),
        None => None,
    };
    Ok(ParsedServer {
        spec: ServerSpec {
            host,
            quorum_port,
            election_port,
            role,
            client_addr,
            more_addresses,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(value: &str) -> ServerSpec {
        match parse_server_value(value) {
            Ok(p) => p.spec,
            Err(e) => panic!("{value}: {e:?}"),
        }
    }

    fn fails(value: &str) -> LineProblem {
        match parse_server_value(value) {
            Ok(p) => panic!("{value} parsed as {p:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn plain_and_observer() {
        let s = spec("192.168.150.128:2888:3888");
        assert_eq!(s.host, "192.168.150.128");
        assert_eq!((s.quorum_port, s.election_port), (2888, 3888));
        assert_eq!(s.role, PeerRole::Participant);
        assert_eq!(s.client_addr, None);
        assert_eq!(spec("h:1:2:observer").role, PeerRole::Observer);
        assert_eq!(spec("h:1:2:PARTICIPANT").role, PeerRole::Participant);
    }

    #[test]
    fn client_suffix() {
        assert_eq!(
            spec("h:1:2;2181").client_addr,
            Some(("0.0.0.0".into(), 2181))
        );
        assert_eq!(
            spec("h:1:2:observer;127.0.0.1:2182").client_addr,
            Some(("127.0.0.1".into(), 2182))
        );
        assert_eq!(
            spec("h:1:2;[::1]:2183").client_addr,
            Some(("::1".into(), 2183))
        );
        assert!(fails("h:1:2;").problem.contains("nothing after"));
        assert!(fails("h:1:2;::1:2181").hint.contains("brackets"));
        assert!(fails("h:1:2;x:0").problem.contains("out of range"));
    }

    #[test]
    fn ipv6_in_brackets() {
        let s = spec("[::1]:2888:3888");
        assert_eq!(s.host, "::1");
        assert_eq!(s.election_port, 3888);
        assert!(fails("fe80::1:2888:3888").hint.contains("brackets"));
        assert!(fails("[nothost]:1:2").problem.contains("not an IPv6"));
        assert!(fails("[::1:1:2").problem.contains("without a matching"));
    }

    #[test]
    fn multiple_addresses_are_kept_in_order() {
        let p = parse_server_value("a:1:2|b:3:4:observer;2181").expect("parses");
        assert_eq!(p.spec.host, "a");
        assert_eq!(p.spec.more_addresses, vec![("b".to_string(), 3, 4)]);
        assert_eq!(p.spec.role, PeerRole::Observer);
        assert!(parse_server_value("a:1:2|b:x:4").is_err());
    }

    #[test]
    fn errors() {
        assert_eq!(fails("10.0.0.1:2888").problem, "needs two ports");
        assert_eq!(fails("10.0.0.1").problem, "needs two ports");
        assert!(fails("h:2888:2888").problem.contains("both"));
        assert!(fails("h:x:3888").problem.contains("quorum port"));
        assert!(fails("h:2888:99999").problem.contains("out of range"));
        assert!(fails("h:1:2:leader").problem.contains("neither"));
        assert!(fails(":1:2").problem.contains("empty host"));
        assert!(fails("my host:1:2").problem.contains("whitespace"));
        assert!(fails("").problem.contains("empty"));
        assert!(fails("h:1:2:observer:x").problem.contains("too many"));
    }

    #[test]
    fn server_ids() {
        assert_eq!(parse_server_id("1"), Ok(ServerId(1)));
        assert_eq!(parse_server_id("0"), Ok(ServerId(0)));
        assert_eq!(parse_server_id("254"), Ok(ServerId(254)));
        assert!(parse_server_id("255").is_err());
        assert!(parse_server_id("abc").is_err());
        assert!(parse_server_id("").is_err());
        assert!(parse_server_id("-1").is_err());
        assert!(parse_server_id("99999999999999999999999").is_err());
    }

    #[test]
    fn role_display() {
        assert_eq!(PeerRole::Observer.to_string(), "observer");
        assert_eq!(ServerId(7).to_string(), "7");
    }
}
