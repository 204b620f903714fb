//! The `zooid bench` command line: `--flag value` or `--flag=value`, parsed into a
//! [`BenchConfig`] with a message that names the flag on every mistake.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::{BenchConfig, Workload};

pub const USAGE: &str = "usage: zooid bench [options]
  --server HOST:PORT       server to load (default 127.0.0.1:2181)
  --workload W             create | set | get | exists | mixed | children | connect | watch |
                           latency | populate (default get)
  --connections C          connections (sessions) in parallel (default 16)
  --inflight D             requests in flight per connection (default 16)
  --value-size B           bytes per written value (default 128)
  --duration T             measurement time: 10s, 500ms, 2m (default 10s; with --requests
                           or populate, a 600s cap)
  --requests N             stop after N requests in all (connect: sessions; watch: rounds)
  --read-percent R         mixed: percentage of getData, the rest setData (default 90)
  --watchers W             watch: sessions watching one node (default 100)
  --znodes M               set/get/exists/mixed: pool size (default 1000);
                           populate: znodes to create (default 100000)
  --children K             children: children of the wide parent (default 1000)
  --pid PID                report this server process's RSS and CPU from /proc
  --json                   print the report as JSON (and no progress line)
  --prefix PATH            znode subtree the bench owns: cleared at start (default /bench)
  --keep                   leave the created znodes in place at the end
  --session-timeout T      requested session timeout (default 30s)
  --threads N              generator threads (default: the cores available)
  --quiet                  no progress line";

/// Parse the arguments after `bench`. `Ok(None)` means help was asked for.
pub fn parse_args(args: &[&str]) -> Result<Option<BenchConfig>, String> {
    let mut server = "127.0.0.1:2181".to_string();
    let mut workload = Workload::Get;
    let mut cfg = BenchConfig::new(
        "127.0.0.1:2181".parse().expect("a valid literal"),
        Workload::Get,
    );
    cfg.progress = true;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i];
        i += 1;
        if arg == "-h" || arg == "--help" || arg == "help" {
            return Ok(None);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (arg, None),
        };
        let mut value = || -> Result<&str, String> {
            if let Some(v) = inline {
                return Ok(v);
            }
            let v = args
                .get(i)
                .copied()
                .ok_or_else(|| format!("{flag} needs a value"))?;
            i += 1;
            Ok(v)
        };
        match flag {
            "--server" => server = value()?.to_string(),
            "--workload" | "-w" => {
                let v = value()?;
                workload =
                    Workload::from_name(v).ok_or_else(|| format!("unknown workload {v:?}"))?;
            }
            "--connections" | "-c" => cfg.connections = number(flag, value()?)?,
            "--inflight" | "-d" => cfg.inflight = number(flag, value()?)?,
            "--value-size" => cfg.value_size = number(flag, value()?)?,
            "--duration" | "-t" => cfg.duration = Some(duration(flag, value()?)?),
            "--requests" | "-n" => cfg.requests = Some(number(flag, value()?)?),
            "--read-percent" => cfg.read_percent = number(flag, value()?)?,
            "--watchers" => cfg.watchers = number(flag, value()?)?,
            "--znodes" => cfg.znodes = Some(number(flag, value()?)?),
            "--children" => cfg.children = number(flag, value()?)?,
            "--pid" => cfg.pid = Some(number(flag, value()?)?),
            "--prefix" => cfg.prefix = value()?.to_string(),
            "--session-timeout" => cfg.session_timeout = duration(flag, value()?)?,
            "--threads" => cfg.threads = Some(number(flag, value()?)?),
            "--json" => cfg.json = true,
            "--keep" => cfg.keep = true,
            "--quiet" | "-q" => cfg.progress = false,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    cfg.workload = workload;
    cfg.server = resolve(&server)?;
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(Some(cfg))
}

fn resolve(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let with_port = if s.contains(':') {
        s.to_string()
    } else {
        format!("{s}:2181")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("--server {s}: {e}"))?
        .next()
        .ok_or_else(|| format!("--server {s}: no address"))
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.replace('_', "")
        .parse()
        .map_err(|_| format!("{flag} takes a number, not {v:?}"))
}

/// `10s`, `500ms`, `2m`, `1.5s`, or a bare number of seconds.
fn duration(flag: &str, v: &str) -> Result<Duration, String> {
    let (num, unit) = match v.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => v.split_at(at),
        None => (v, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{flag} takes a duration like 10s or 500ms, not {v:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{flag}: unknown unit {unit:?} (use ms, s or m)")),
    };
    if !(0.0..=86_400.0).contains(&secs) || secs == 0.0 {
        return Err(format!("{flag} must be above 0 and at most a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_in_both_forms() {
        let cfg = parse_args(&[
            "--server",
            "127.0.0.1:21810",
            "--workload=mixed",
            "--connections",
            "4",
            "--inflight=8",
            "--duration",
            "1500ms",
            "--read-percent",
            "75",
            "--json",
            "--keep",
            "--prefix",
            "/b2",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(cfg.server, "127.0.0.1:21810".parse().unwrap());
        assert_eq!(cfg.workload, Workload::Mixed);
        assert_eq!((cfg.connections, cfg.inflight), (4, 8));
        assert_eq!(cfg.duration, Some(Duration::from_millis(1500)));
        assert_eq!(cfg.read_percent, 75);
        assert!(cfg.json && cfg.keep);
        assert_eq!(cfg.prefix, "/b2");
    }

    #[test]
    fn durations() {
        assert_eq!(duration("-t", "10s").unwrap(), Duration::from_secs(10));
        assert_eq!(duration("-t", "10").unwrap(), Duration::from_secs(10));
        assert_eq!(duration("-t", "2m").unwrap(), Duration::from_secs(120));
        assert!(duration("-t", "0s").is_err());
        assert!(duration("-t", "5h").is_err());
        assert!(duration("-t", "x").is_err());
    }

    #[test]
    fn mistakes_name_the_flag() {
        assert!(parse_args(&["--connections"])
            .unwrap_err()
            .contains("--connections"));
        assert!(parse_args(&["--inflight", "many"])
            .unwrap_err()
            .contains("--inflight"));
        assert!(parse_args(&["--workload", "nope"])
            .unwrap_err()
            .contains("nope"));
        assert!(parse_args(&["--bogus"]).unwrap_err().contains("--bogus"));
        assert!(parse_args(&["--read-percent", "101"]).is_err());
        assert!(parse_args(&["--help"]).unwrap().is_none());
    }
}
