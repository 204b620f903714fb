//! Typed reading of one setting's value (numbers, booleans, ports, paths,
//! addresses), each failure turned into a [`ConfigError`] that quotes the key
//! as the operator wrote it and shows a corrected line to copy.

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::path::PathBuf;

use crate::error::{ConfigError, Location, Warning};

/// One setting as read from zoo.cfg or SERVER_JVMFLAGS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Setting {
    /// The key as written (e.g. `zookeeper.snapCount`).
    pub key: String,
    pub value: String,
    pub location: Location,
}

/// Why a port number was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortError {
    NotANumber,
    OutOfRange,
}

/// Parses a TCP port, 1..=65535.
pub(crate) fn parse_port(text: &str) -> Result<u16, PortError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortError::NotANumber);
    }
    match text.parse::<u64>() {
        Ok(n) if (1..=65535).contains(&n) => u16::try_from(n).map_err(|_| PortError::OutOfRange),
        _ => Err(PortError::OutOfRange),
    }
}

/// Turns an IP literal (IPv6 optionally in brackets) or a host name into an
/// address. Host names are resolved; IPv4 results are preferred, as Java's
/// `InetAddress.getByName` usually returns them first.
pub(crate) fn resolve_address(text: &str) -> Result<IpAddr, String> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip);
    }
    if bare.is_empty() {
        return Err("is empty".to_string());
    }
    if bare.chars().any(char::is_whitespace) {
        return Err("contains whitespace".to_string());
    }
    match (bare, 0u16).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
            addrs
                .iter()
                .find(|a| a.is_ipv4())
                .or_else(|| addrs.first())
                .copied()
                .ok_or_else(|| "could not be resolved to any address".to_string())
        }
        Err(e) => Err(format!("could not be resolved ({e})")),
    }
}

/// The wildcard address ZooKeeper binds when no address is configured.
pub(crate) const ANY_V4: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Loopback, for the no-config-file default.
pub(crate) const LOOPBACK_V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

impl Setting {
    /// A line the operator could write instead, e.g. `tickTime=2000` or
    /// `-Dzookeeper.snapCount=100000`.
    pub fn example(&self, example: &str) -> String {
        match self.location {
            Location::JvmFlags => format!("-D{}={}", self.key, example),
            Location::File { .. } => format!("{}={}", self.key, example),
        }
    }

    pub fn invalid(&self, problem: impl Into<String>, hint: impl Into<String>) -> ConfigError {
        let mut hint = hint.into();
        if self.value.contains('#') && matches!(self.location, Location::File { .. }) {
            hint.push_str(
                " (zoo.cfg has no end-of-line comments: put the comment on its own line starting with #)",
            );
        }
        ConfigError::InvalidValue {
            location: self.location.clone(),
            key: self.key.clone(),
            value: self.value.clone(),
            problem: problem.into(),
            hint,
        }
    }

    pub fn warning(&self, message: impl Into<String>) -> Warning {
        Warning::at(&self.location, message)
    }

    fn write_eg(&self, example: &str) -> String {
        format!("write e.g. {}", self.example(example))
    }

    /// A non-negative decimal number. `what` completes "is not ...".
    pub fn parse_u64(&self, what: &str, example: &str) -> Result<u64, ConfigError> {
        let v = self.value.as_str();
        if v.is_empty() {
            return Err(self.invalid("is empty", self.write_eg(example)));
        }
        let digits = v.strip_prefix('+').unwrap_or(v);
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if all_digits(digits) {
            return digits.parse::<u64>().map_err(|_| {
                self.invalid(
                    "is too large",
                    format!("use at most {}, e.g. {}", u64::MAX, self.example(example)),
                )
            });
        }
        if v.strip_prefix('-').is_some_and(all_digits) {
            return Err(self.invalid(
                "is negative",
                format!("use 0 or more, e.g. {}", self.example(example)),
            ));
        }
        Err(self.invalid(format!("is not {what}"), self.write_eg(example)))
    }

    pub fn parse_u32(&self, what: &str, example: &str) -> Result<u32, ConfigError> {
        let n = self.parse_u64(what, example)?;
        u32::try_from(n).map_err(|_| {
            self.invalid(
                "is too large",
                format!("use at most {}, e.g. {}", u32::MAX, self.example(example)),
            )
        })
    }

    /// Like [`Setting::parse_u32`] but 0 is rejected too.
    pub fn parse_positive_u32(&self, what: &str, example: &str) -> Result<u32, ConfigError> {
        let n = self.parse_u32(what, example)?;
        if n == 0 {
            return Err(self.invalid("must be greater than 0", self.write_eg(example)));
        }
        Ok(n)
    }

    /// `true` or `false`, any case.
    pub fn parse_bool(&self, example: bool) -> Result<bool, ConfigError> {
        if self.value.eq_ignore_ascii_case("true") {
            Ok(true)
        } else if self.value.eq_ignore_ascii_case("false") {
            Ok(false)
        } else {
            Err(self.invalid(
                "is not true or false",
                self.write_eg(if example { "true" } else { "false" }),
            ))
        }
    }

    /// A TCP port, 1..=65535.
    pub fn parse_port(&self, example: u16) -> Result<u16, ConfigError> {
        parse_port(&self.value).map_err(|e| match e {
            PortError::NotANumber => {
                self.invalid("is not a port number", self.write_eg(&example.to_string()))
            }
            PortError::OutOfRange => {
                self.invalid("is out of range", "use a port between 1 and 65535")
            }
        })
    }

    /// A non-empty path.
    pub fn parse_path(&self, example: &str) -> Result<PathBuf, ConfigError> {
        if self.value.is_empty() {
            return Err(self.invalid("is empty", self.write_eg(example)));
        }
        Ok(PathBuf::from(&self.value))
    }

    /// An IP address or a resolvable host name.
    pub fn parse_address(&self, example: &str) -> Result<IpAddr, ConfigError> {
        resolve_address(&self.value).map_err(|problem| {
            self.invalid(
                problem,
                format!(
                    "use an IP address such as 127.0.0.1 or 0.0.0.0, or a host name this machine \
                     can resolve, e.g. {}",
                    self.example(example)
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn at_line(key: &str, value: &str) -> Setting {
        Setting {
            key: key.into(),
            value: value.into(),
            location: Location::at_line(Path::new("zoo.cfg"), 7),
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(at_line("k", "42").parse_u32("x", "1").ok(), Some(42));
        assert_eq!(at_line("k", "+42").parse_u64("x", "1").ok(), Some(42));
        let e = at_line("tickTime", "2s")
            .parse_u32("a number of milliseconds", "2000")
            .expect_err("bad")
            .to_string();
        assert_eq!(
            e,
            "zoo.cfg:7: tickTime = \"2s\" is not a number of milliseconds; write e.g. tickTime=2000"
        );
        let e = at_line("k", "-5").parse_u32("x", "1").expect_err("neg");
        assert!(e.to_string().contains("is negative"));
        let e = at_line("k", "4294967296")
            .parse_u32("x", "1")
            .expect_err("big");
        assert!(e.to_string().contains("too large"));
        let e = at_line("k", "99999999999999999999999").parse_u64("x", "1");
        assert!(e.is_err());
        let e = at_line("k", "").parse_u32("x", "1").expect_err("empty");
        assert!(e.to_string().contains("is empty"));
        let e = at_line("k", "0")
            .parse_positive_u32("x", "1")
            .expect_err("zero");
        assert!(e.to_string().contains("greater than 0"));
    }

    #[test]
    fn inline_comment_gets_a_hint() {
        let e = at_line("tickTime", "2000 # two seconds")
            .parse_u32("a number of milliseconds", "2000")
            .expect_err("bad")
            .to_string();
        assert!(e.contains("no end-of-line comments"), "{e}");
    }

    #[test]
    fn jvm_flag_examples_use_dash_d() {
        let s = Setting {
            key: "zookeeper.snapCount".into(),
            value: "many".into(),
            location: Location::JvmFlags,
        };
        let e = s
            .parse_u64("a number", "100000")
            .expect_err("bad")
            .to_string();
        assert!(
            e.starts_with("SERVER_JVMFLAGS: zookeeper.snapCount = \"many\""),
            "{e}"
        );
        assert!(e.contains("-Dzookeeper.snapCount=100000"), "{e}");
    }

    #[test]
    fn booleans() {
        assert_eq!(at_line("k", "TRUE").parse_bool(true).ok(), Some(true));
        assert_eq!(at_line("k", "False").parse_bool(true).ok(), Some(false));
        let e = at_line("standaloneEnabled", "yes")
            .parse_bool(true)
            .expect_err("bad");
        assert!(e.to_string().contains("is not true or false"));
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port("2181"), Ok(2181));
        assert_eq!(parse_port("0"), Err(PortError::OutOfRange));
        assert_eq!(parse_port("65536"), Err(PortError::OutOfRange));
        assert_eq!(
            parse_port("123456789012345678901"),
            Err(PortError::OutOfRange)
        );
        assert_eq!(parse_port("21x"), Err(PortError::NotANumber));
        assert_eq!(parse_port(""), Err(PortError::NotANumber));
        let e = at_line("clientPort", "99999")
            .parse_port(2181)
            .expect_err("range");
        assert_eq!(
            e.to_string(),
            "zoo.cfg:7: clientPort = \"99999\" is out of range; use a port between 1 and 65535"
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(resolve_address("10.1.2.3"), Ok("10.1.2.3".parse().unwrap()));
        assert_eq!(resolve_address("[::1]"), Ok("::1".parse().unwrap()));
        assert_eq!(resolve_address("::1"), Ok("::1".parse().unwrap()));
        assert!(resolve_address("localhost").is_ok());
        assert!(resolve_address("").is_err());
        assert!(resolve_address("bad host").is_err());
        assert!(resolve_address("no-such-host.invalid").is_err());
    }
}
