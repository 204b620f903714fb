//! Resource use of a process, read from Linux's `/proc/<pid>/stat` and `/proc/<pid>/status`.
//!
//! CPU time is `utime + stime` in clock ticks (fields 14 and 15 of `stat`); a CPU percentage
//! is the tick delta between two samples over the wall time between them, so 100 % is one
//! core busy. Linux fixes the user-visible tick rate (`USER_HZ`) at 100 on every architecture
//! it exports to user space, which is why no `sysconf` call is needed. RSS is `VmRSS` from
//! `status` (kB).

use std::time::Instant;

const TICKS_PER_SEC: f64 = 100.0;

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    pub at: Instant,
    pub cpu_ticks: u64,
    pub rss_kb: u64,
    pub threads: u64,
}

/// Sample process `pid`, or this process when `pid` is `None`.
pub fn sample(pid: Option<u32>) -> std::io::Result<ProcSample> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_string(),
    };
    let at = Instant::now();
    let stat = std::fs::read_to_string(format!("{dir}/stat"))?;
    let status = std::fs::read_to_string(format!("{dir}/status"))?;
    let bad = |what| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let (cpu_ticks, threads) = parse_stat(&stat).ok_or_else(|| bad("unreadable stat"))?;
    let rss_kb = parse_rss_kb(&status).ok_or_else(|| bad("no VmRSS in status"))?;
    Ok(ProcSample {
        at,
        cpu_ticks,
        rss_kb,
        threads,
    })
}

/// `(utime + stime, num_threads)` from a `/proc/<pid>/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let after = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // after[0] is field 3 (state): utime is field 14, stime 15, num_threads 20.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let threads: u64 = f.get(17)?.parse().ok()?;
    Some((utime + stime, threads))
}

/// `VmRSS` in kB from `/proc/<pid>/status`.
pub fn parse_rss_kb(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU use between two samples, in percent of one core.
pub fn cpu_percent(from: &ProcSample, to: &ProcSample) -> f64 {
    let wall = to.at.duration_since(from.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    let ticks = to.cpu_ticks.saturating_sub(from.cpu_ticks) as f64;
    ticks / TICKS_PER_SEC / wall * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (java (main) x) S 1 4242 4242 0 -1 4194560 31059 0 12 0 \
                    1234 567 0 0 20 0 37 0 123456 4000000000 50000 18446744073709551615 \
                    1 1 0 0 0 0 0 4096 17663 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat(line), Some((1234 + 567, 37)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn rss_comes_from_vmrss() {
        let status = "Name:\tzooid\nVmPeak:\t  99999 kB\nVmRSS:\t   51234 kB\nThreads:\t3\n";
        assert_eq!(parse_rss_kb(status), Some(51234));
        assert_eq!(parse_rss_kb("Name: x\n"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let a = sample(None).unwrap();
        // Burn a little CPU so the delta is not negative or absurd.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = sample(None).unwrap();
        assert!(a.rss_kb > 0 && a.threads >= 1);
        let pct = cpu_percent(&a, &b);
        assert!((0.0..=100.0 * 64.0).contains(&pct), "{pct}");
    }
}
