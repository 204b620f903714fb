//! How zkCli prints things: the Stat block (`StatPrinter`), dates as `java.util.Date#toString`
//! prints them, ACL ids as jute's CSV `toString`, permission strings (`ZKUtil.getPermString`),
//! watch events (`WatchedEvent#toString`) and Java's `List#toString`. Also the client-side path
//! check (`PathUtils.validatePath`) whose messages zkCli prints verbatim.
//!
//! ```text
//! cZxid = 0x9                                  <- Long.toHexString: two's complement, no padding
//! ctime = Sat Nov 21 22:17:10 UTC 2026         <- EEE MMM dd HH:mm:ss zzz yyyy, local time zone
//! ...
//! 'world,'anyone                               <- Id#toString ends in a newline, so getAcl's
//! : cdrwa                                         "id: perms" line is split in two
//! ```

use std::fmt::Write as _;

use zooid_proto::{perms, Stat};

/// `Long.toHexString`: negative values print as their unsigned 64-bit pattern.
pub fn hex(v: i64) -> String {
    format!("0x{:x}", v as u64)
}

/// The eleven lines `StatPrinter.print` writes, each ending in a newline.
pub fn stat_block(stat: &Stat) -> String {
    let mut s = String::with_capacity(320);
    let _ = writeln!(s, "cZxid = {}", hex(stat.czxid));
    let _ = writeln!(s, "ctime = {}", java_date(stat.ctime));
    let _ = writeln!(s, "mZxid = {}", hex(stat.mzxid));
    let _ = writeln!(s, "mtime = {}", java_date(stat.mtime));
    let _ = writeln!(s, "pZxid = {}", hex(stat.pzxid));
    let _ = writeln!(s, "cversion = {}", stat.cversion);
    let _ = writeln!(s, "dataVersion = {}", stat.version);
    let _ = writeln!(s, "aclVersion = {}", stat.aversion);
    let _ = writeln!(s, "ephemeralOwner = {}", hex(stat.ephemeral_owner));
    let _ = writeln!(s, "dataLength = {}", stat.data_length);
    let _ = writeln!(s, "numChildren = {}", stat.num_children);
    s
}

/// `new Date(ms).toString()`: `EEE MMM dd HH:mm:ss zzz yyyy` in the local time zone (the C
/// library's idea of it: `TZ`, else /etc/localtime), e.g. `Thu Jan 01 00:00:00 UTC 1970`.
pub fn java_date(ms: i64) -> String {
    let secs = ms.div_euclid(1000) as libc::time_t;
    // SAFETY: localtime_r and strftime only write into the buffers we pass; `tm` is plain data.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return utc_date(ms);
        }
        let mut buf = [0u8; 128];
        let fmt = c"%a %b %d %H:%M:%S %Z %Y";
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm);
        if n == 0 {
            return utc_date(ms);
        }
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// The same format computed by hand in UTC (used when the C library cannot help).
fn utc_date(ms: i64) -> String {
    zooid_proto::timefmt::java_date(ms)
}

/// `ZKUtil.getPermString`: the letters in the order c, d, r, w, a.
pub fn perm_string(p: i32) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (perms::CREATE, 'c'),
        (perms::DELETE, 'd'),
        (perms::READ, 'r'),
        (perms::WRITE, 'w'),
        (perms::ADMIN, 'a'),
    ] {
        if p & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// One string as jute's `CsvOutputArchive` writes it: a leading quote and a few escapes.
fn csv_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\0' => out.push_str("%00"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            ',' => out.push_str("%2C"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

/// `Id#toString` (jute CSV of a top-level record): `'scheme,'id` and a newline.
pub fn id_string(scheme: &str, id: &str) -> String {
    format!("{},{}\n", csv_string(scheme), csv_string(id))
}

/// `List#toString` of strings: `[a, b]`.
pub fn java_list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// `Watcher.Event.KeeperState` names.
pub fn keeper_state_name(state: i32) -> String {
    match state {
        -1 => "Unknown".into(),
        0 => "Disconnected".into(),
        1 => "NoSyncConnected".into(),
        3 => "SyncConnected".into(),
        4 => "AuthFailed".into(),
        5 => "ConnectedReadOnly".into(),
        6 => "SaslAuthenticated".into(),
        -112 => "Expired".into(),
        7 => "Closed".into(),
        other => format!("Unknown({other})"),
    }
}

/// `Watcher.Event.EventType` names.
pub fn event_type_name(kind: i32) -> String {
    match kind {
        -1 => "None".into(),
        1 => "NodeCreated".into(),
        2 => "NodeDeleted".into(),
        3 => "NodeDataChanged".into(),
        4 => "NodeChildrenChanged".into(),
        5 => "DataWatchRemoved".into(),
        6 => "ChildWatchRemoved".into(),
        7 => "PersistentWatchRemoved".into(),
        other => format!("Unknown({other})"),
    }
}

/// `PathUtils.validatePath`; the error is the `IllegalArgumentException` message.
pub fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("Path length must be > 0".into());
    }
    // Java looks at UTF-16 code units; the checks below only involve BMP characters, and a
    // supplementary character is two surrogates, both inside the rejected \ud800-\uf8ff range.
    let units: Vec<u16> = path.encode_utf16().collect();
    if units[0] != u16::from(b'/') {
        return Err("Path must start with / character".into());
    }
    if units.len() == 1 {
        return Ok(());
    }
    if units[units.len() - 1] == u16::from(b'/') {
        return Err("Path must not end with / character".into());
    }
    let slash = u16::from(b'/');
    let dot = u16::from(b'.');
    let mut reason = None;
    let mut last = slash;
    for i in 1..units.len() {
        let c = units[i];
        if c == 0 {
            reason = Some(format!("null character not allowed @{i}"));
            break;
        } else if c == slash && last == slash {
            reason = Some(format!("empty node name specified @{i}"));
            break;
        } else if c == dot && last == dot {
            if units[i - 2] == slash && (i + 1 == units.len() || units[i + 1] == slash) {
                reason = Some(format!("relative paths not allowed @{i}"));
                break;
            }
        } else if c == dot {
            if units[i - 1] == slash && (i + 1 == units.len() || units[i + 1] == slash) {
                reason = Some(format!("relative paths not allowed @{i}"));
                break;
            }
        } else if (c > 0 && c <= 0x1f)
            || (0x7f..=0x9f).contains(&c)
            || (0xd800..=0xf8ff).contains(&c)
            || (0xfff0..=0xffff).contains(&c)
        {
            reason = Some(format!("invalid character @{i}"));
            break;
        }
        last = c;
    }
    match reason {
        Some(r) => Err(format!("Invalid path string \"{path}\" caused by {r}")),
        None => Ok(()),
    }
}

/// `validatePath(path, isSequential)`: a sequential path is checked with a digit appended.
pub fn validate_path_seq(path: &str, sequential: bool) -> Result<(), String> {
    if sequential {
        validate_path(&format!("{path}1"))
    } else {
        validate_path(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_java_long_to_hex_string() {
        assert_eq!(hex(0), "0x0");
        assert_eq!(hex(0x1d), "0x1d");
        assert_eq!(hex(-1), "0xffffffffffffffff");
        assert_eq!(hex(0x0100_0005_873b_0000), "0x1000005873b0000");
    }

    #[test]
    fn dates_follow_java_date_to_string_in_utc() {
        assert_eq!(utc_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(utc_date(1_795_299_112_748), "Sat Nov 21 22:11:52 UTC 2026");
        assert_eq!(utc_date(-1), "Wed Dec 31 23:59:59 UTC 1969");
        assert_eq!(utc_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn perm_strings_are_in_cdrwa_order() {
        assert_eq!(perm_string(31), "cdrwa");
        assert_eq!(perm_string(1), "r");
        assert_eq!(perm_string(0), "");
        assert_eq!(perm_string(perms::ADMIN | perms::CREATE), "ca");
    }

    #[test]
    fn ids_print_as_jute_csv() {
        assert_eq!(id_string("world", "anyone"), "'world,'anyone\n");
        assert_eq!(id_string("digest", "a,b%"), "'digest,'a%2Cb%25\n");
    }

    #[test]
    fn path_validation_messages_match_path_utils() {
        assert_eq!(validate_path("/"), Ok(()));
        assert_eq!(validate_path("/a/b-c.d"), Ok(()));
        assert_eq!(
            validate_path("a").unwrap_err(),
            "Path must start with / character"
        );
        assert_eq!(
            validate_path("/a/").unwrap_err(),
            "Path must not end with / character"
        );
        assert_eq!(
            validate_path("/a//b").unwrap_err(),
            "Invalid path string \"/a//b\" caused by empty node name specified @3"
        );
        assert_eq!(
            validate_path("/a/.").unwrap_err(),
            "Invalid path string \"/a/.\" caused by relative paths not allowed @3"
        );
        assert_eq!(
            validate_path("/a/..").unwrap_err(),
            "Invalid path string \"/a/..\" caused by relative paths not allowed @4"
        );
        assert_eq!(validate_path("/a/.b"), Ok(()));
        assert_eq!(
            validate_path("/a\u{1}").unwrap_err(),
            "Invalid path string \"/a\u{1}\" caused by invalid character @2"
        );
        assert_eq!(validate_path("").unwrap_err(), "Path length must be > 0");
        assert_eq!(validate_path_seq("/a/", true), Ok(()));
    }
}
