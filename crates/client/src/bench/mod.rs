//! `zooid bench`: a load generator for any ZooKeeper-protocol server (Apache ZooKeeper or
//! zooid), in the spirit of ZooKeeper's and ClickHouse Keeper's benchmark tools.
//!
//! A run has four phases: setup (clear `--prefix`, create the nodes the workload reads),
//! measurement (C connections × D requests in flight, until `--duration` or `--requests`),
//! sampling (ops/s, latency percentiles per operation, the server's and the generator's own
//! RSS and CPU from `/proc`), and cleanup (delete everything under the prefix unless
//! `--keep`). The prefix belongs to the bench: whatever is under it is deleted at start.
//!
//! Every loop is bounded in count and time: measurement stops at the deadline (10 s by
//! default, 600 s at most when only a request count is given), setup and cleanup are capped,
//! and a silent server fails a connection after the session timeout instead of hanging it.

mod cli;
mod driver;
mod report;
mod workloads;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::conn::Connection;
use crate::core::ClientError;
use crate::histogram::Histogram;
use crate::procstat::{self, ProcSample};
use driver::{Limits, Progress, Stats};
use workloads::{Children, Creates, Ctx, LatencyCycle, PoolMode, PoolOps};

pub use cli::{parse_args, USAGE};

/// What the generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Create,
    Set,
    Get,
    Exists,
    Mixed,
    Children,
    Connect,
    Watch,
    Latency,
    Populate,
}

impl Workload {
    pub const ALL: [Workload; 10] = [
        Workload::Create,
        Workload::Set,
        Workload::Get,
        Workload::Exists,
        Workload::Mixed,
        Workload::Children,
        Workload::Connect,
        Workload::Watch,
        Workload::Latency,
        Workload::Populate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Create => "create",
            Workload::Set => "set",
            Workload::Get => "get",
            Workload::Exists => "exists",
            Workload::Mixed => "mixed",
            Workload::Children => "children",
            Workload::Connect => "connect",
            Workload::Watch => "watch",
            Workload::Latency => "latency",
            Workload::Populate => "populate",
        }
    }

    pub fn from_name(s: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == s)
    }

    /// The operations whose count and latency are the run's headline numbers.
    fn primary(self) -> &'static [OpKind] {
        use OpKind as K;
        match self {
            Workload::Create | Workload::Populate => &[K::Create],
            Workload::Set => &[K::Set],
            Workload::Get => &[K::Get],
            Workload::Exists => &[K::Exists],
            Workload::Mixed => &[K::Get, K::Set],
            Workload::Children => &[K::Children],
            Workload::Connect => &[K::Connect],
            Workload::Watch => &[K::Watch],
            Workload::Latency => &[K::Create, K::Get, K::Set, K::Exists, K::Delete],
        }
    }
}

/// A kind of operation the report breaks latency down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Create,
    Set,
    Get,
    Exists,
    Children,
    Delete,
    /// TCP connect + session handshake.
    Connect,
    /// One watcher's notification, from the setData that fired it.
    Watch,
    /// The slowest watcher of a round.
    Fanout,
}

impl OpKind {
    pub const COUNT: usize = 9;
    pub const ALL: [OpKind; OpKind::COUNT] = [
        OpKind::Create,
        OpKind::Set,
        OpKind::Get,
        OpKind::Exists,
        OpKind::Children,
        OpKind::Delete,
        OpKind::Connect,
        OpKind::Watch,
        OpKind::Fanout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Set => "set",
            OpKind::Get => "get",
            OpKind::Exists => "exists",
            OpKind::Children => "children",
            OpKind::Delete => "delete",
            OpKind::Connect => "connect",
            OpKind::Watch => "watch",
            OpKind::Fanout => "fanout",
        }
    }
}

/// A run's settings (the command-line flags).
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub server: SocketAddr,
    pub workload: Workload,
    pub connections: usize,
    pub inflight: usize,
    pub value_size: usize,
    /// Measurement time; `None` means 10 s, or a 600 s cap when `requests` is set.
    pub duration: Option<Duration>,
    /// Total requests (connect: sessions; watch: rounds) across all connections.
    pub requests: Option<u64>,
    pub read_percent: u32,
    pub watchers: usize,
    /// Pool size for set/get/exists/mixed (default 1,000); node count for populate
    /// (default 100,000).
    pub znodes: Option<u64>,
    pub children: u64,
    pub pid: Option<u32>,
    pub json: bool,
    /// Print a progress line to stderr every second.
    pub progress: bool,
    pub prefix: String,
    pub keep: bool,
    pub session_timeout: Duration,
    /// Runtime worker threads for [`main`]; default: the cores available.
    pub threads: Option<usize>,
}

impl BenchConfig {
    pub fn new(server: SocketAddr, workload: Workload) -> BenchConfig {
        BenchConfig {
            server,
            workload,
            connections: 16,
            inflight: 16,
            value_size: 128,
            duration: None,
            requests: None,
            read_percent: 90,
            watchers: 100,
            znodes: None,
            children: 1000,
            pid: None,
            json: false,
            progress: false,
            prefix: "/bench".to_string(),
            keep: false,
            session_timeout: Duration::from_secs(30),
            threads: None,
        }
    }

    fn effective_duration(&self) -> Duration {
        self.duration.unwrap_or(
            if self.requests.is_some() || self.workload == Workload::Populate {
                Duration::from_secs(600)
            } else {
                Duration::from_secs(10)
            },
        )
    }

    fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: String| Err(BenchError::Usage(m));
        let p = &self.prefix;
        if !p.starts_with('/') || p.len() < 2 || p.ends_with('/') || p.contains("//") {
            return bad(format!(
                "--prefix {p:?} must be an absolute znode path other than /"
            ));
        }
        if p == "/zookeeper" || p.starts_with("/zookeeper/") {
            return bad("--prefix must not be under /zookeeper".into());
        }
        if !(1..=10_000).contains(&self.connections) {
            return bad("--connections must be 1..=10000".into());
        }
        if !(1..=100_000).contains(&self.inflight) {
            return bad("--inflight must be 1..=100000".into());
        }
        if self.value_size > 1 << 20 {
            return bad("--value-size must be at most 1 MiB (jute.maxbuffer)".into());
        }
        if self.read_percent > 100 {
            return bad("--read-percent must be 0..=100".into());
        }
        if !(1..=100_000).contains(&self.watchers) {
            return bad("--watchers must be 1..=100000".into());
        }
        if self.znodes == Some(0) || self.children == 0 {
            return bad("--znodes and --children must be at least 1".into());
        }
        if self.requests == Some(0) {
            return bad("--requests must be at least 1".into());
        }
        Ok(())
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Setup(String),
}

/// Latency of one kind of operation, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Latency {
    fn of(h: &Histogram) -> Latency {
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            count: h.count(),
            min_us: us(h.min()),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.percentile(50.0)),
            p99_us: us(h.percentile(99.0)),
            p999_us: us(h.percentile(99.9)),
            max_us: us(h.max()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpReport {
    pub op: OpKind,
    pub count: u64,
    pub errors: u64,
    pub latency: Latency,
}

/// A process's resource use over the measurement.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub pid: u32,
    pub rss_start_kb: u64,
    pub rss_end_kb: u64,
    /// The largest RSS seen by the once-a-second samples and the two ends.
    pub rss_max_kb: u64,
    /// Percent of one core, averaged over the measurement.
    pub cpu_percent: f64,
    pub threads: u64,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub workload: Workload,
    pub server: SocketAddr,
    pub connections: usize,
    pub inflight: usize,
    pub value_size: usize,
    pub elapsed: Duration,
    /// Completed operations of the workload's headline kinds.
    pub ops: u64,
    pub errors: u64,
    pub ops_per_sec: f64,
    /// Over the headline kinds.
    pub latency: Latency,
    /// Every kind that ran, headline or not.
    pub per_op: Vec<OpReport>,
    pub server_usage: Option<Usage>,
    pub generator: Usage,
    pub cores: usize,
    pub setup_znodes: u64,
    pub cleaned_znodes: u64,
}

/// Parse `args` (everything after `bench`), run, print; the exit code says how it went.
pub fn main(args: &[&str]) -> std::process::ExitCode {
    use std::process::ExitCode;
    let cfg = match parse_args(args) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("zooid bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let threads = cfg
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zooid bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = cfg.json;
    match rt.block_on(run(cfg)) {
        Ok(r) => {
            if json {
                println!("{}", report::to_json(&r));
            } else {
                print!("{}", report::to_text(&r));
            }
            ExitCode::SUCCESS
        }
        Err(BenchError::Usage(e)) => {
            eprintln!("zooid bench: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("zooid bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The value every write carries: `value_size` printable bytes.
fn value(size: usize) -> Arc<[u8]> {
    (0..size)
        .map(|i| b'a' + (i % 26) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Split `total` into `parts` shares that differ by at most one.
fn shares(total: u64, parts: usize) -> Vec<u64> {
    let parts64 = parts as u64;
    (0..parts64)
        .map(|i| total / parts64 + (i < total % parts64) as u64)
        .collect()
}

/// Run one benchmark against `cfg.server` and return what it measured.
pub async fn run(cfg: BenchConfig) -> Result<Report, BenchError> {
    cfg.validate()?;
    let w = cfg.workload;
    let (connections, inflight) = match w {
        Workload::Latency => (1, 1),
        // One session per watcher, each with one getData (watch) at a time.
        Workload::Watch => (cfg.watchers, 1),
        Workload::Connect => (cfg.connections, 1),
        _ => (cfg.connections, cfg.inflight),
    };
    let ctx = Ctx {
        addr: cfg.server,
        session_timeout: cfg.session_timeout,
        connections: cfg.connections,
        inflight: cfg.inflight,
    };
    let data = value(cfg.value_size);
    let prefix = cfg.prefix.clone();
    let duration = cfg.effective_duration();
    let per_worker = |parts: usize| -> Vec<Limits> {
        match cfg.requests {
            None => vec![
                Limits {
                    duration,
                    max_ops: u64::MAX
                };
                parts
            ],
            Some(n) => shares(n, parts)
                .into_iter()
                .map(|max_ops| Limits { duration, max_ops })
                .collect(),
        }
    };

    // ---- setup ----
    let admin = Connection::connect(cfg.server, cfg.session_timeout).await?;
    if admin.exists(&prefix).await?.is_some() {
        workloads::delete_tree(&ctx, &admin, &prefix).await?;
    }
    let mut parents = Vec::new();
    let mut at = 0;
    while let Some(i) = prefix[at + 1..].find('/') {
        at += 1 + i;
        parents.push(prefix[..at].to_string());
    }
    parents.push(prefix.clone());
    let group = |g: &str| format!("{prefix}/{g}");
    let mut setup_znodes = 0u64;
    let pool = cfg.znodes.unwrap_or(1000);
    match w {
        Workload::Create | Workload::Populate => {
            let g = group(if w == Workload::Create { "c" } else { "p" });
            parents.push(g.clone());
            parents.extend((0..connections).map(|c| format!("{g}/{c}")));
        }
        Workload::Set | Workload::Get | Workload::Exists | Workload::Mixed => {
            parents.push(group("d"))
        }
        Workload::Children => parents.push(group("w")),
        Workload::Latency => parents.push(group("l")),
        Workload::Watch => parents.push(group("watch")),
        Workload::Connect => {}
    }
    workloads::create_all(&admin, &parents, &[]).await?;
    let fill = |base: String, count: u64| {
        let sources: Vec<Creates> = (0..connections.min(count as usize).max(1))
            .map(|c| {
                Creates::new(
                    base.clone(),
                    c as u64,
                    connections as u64,
                    count,
                    data.clone(),
                )
            })
            .collect();
        sources
    };
    let setup_limits = Limits {
        duration: Duration::from_secs(600),
        max_ops: u64::MAX,
    };
    let fill_with = match w {
        Workload::Set | Workload::Get | Workload::Exists | Workload::Mixed => {
            Some((group("d"), pool))
        }
        Workload::Children => Some((group("w"), cfg.children)),
        _ => None,
    };
    if let Some((base, count)) = fill_with {
        let (_, sources, _) =
            workloads::run_workers(&ctx, fill(base, count), ctx.inflight, setup_limits, None)
                .await?;
        setup_znodes = sources.iter().map(|s| s.created).sum();
        if setup_znodes != count {
            return Err(BenchError::Setup(format!(
                "setup created {setup_znodes} of {count} znodes"
            )));
        }
    }

    // ---- measurement ----
    let progress = Arc::new(Progress::default());
    let server_start = match cfg.pid {
        Some(pid) => Some(procstat::sample(Some(pid)).map_err(|e| {
            BenchError::Usage(format!("--pid {pid}: cannot read /proc/{pid}: {e}"))
        })?),
        None => None,
    };
    let self_start = procstat::sample(None).ok();
    let (stop_ticker, ticker) = spawn_ticker(
        progress.clone(),
        cfg.pid,
        cfg.progress && !cfg.json,
        w.name(),
    );
    let p = Some(progress.clone());
    let measured = match w {
        Workload::Create | Workload::Populate => {
            let g = group(if w == Workload::Create { "c" } else { "p" });
            let ends: Vec<u64> = match w {
                Workload::Populate => shares(cfg.znodes.unwrap_or(100_000), connections),
                _ => vec![u64::MAX; connections],
            };
            let sources = ends
                .iter()
                .enumerate()
                .map(|(c, &end)| Creates::new(format!("{g}/{c}"), 0, 1, end, data.clone()))
                .collect::<Vec<_>>();
            run_each(&ctx, sources, inflight, per_worker(connections), p).await
        }
        Workload::Set | Workload::Get | Workload::Exists | Workload::Mixed => {
            let mode = match w {
                Workload::Set => PoolMode::Set,
                Workload::Get => PoolMode::Get,
                Workload::Exists => PoolMode::Exists,
                _ => PoolMode::Mixed(cfg.read_percent),
            };
            let sources = (0..connections)
                .map(|c| PoolOps::new(group("d"), pool, mode, c as u64, data.clone()))
                .collect();
            run_each(&ctx, sources, inflight, per_worker(connections), p).await
        }
        Workload::Children => {
            let sources = (0..connections)
                .map(|_| Children { path: group("w") })
                .collect();
            run_each(&ctx, sources, inflight, per_worker(connections), p).await
        }
        Workload::Latency => {
            let sources = vec![LatencyCycle::new(group("l"), data.clone())];
            run_each(&ctx, sources, 1, per_worker(1), p).await
        }
        Workload::Connect => {
            workloads::connect_storm(&ctx, per_worker(connections), progress.clone()).await
        }
        Workload::Watch => {
            let limits = Limits {
                duration,
                max_ops: cfg.requests.unwrap_or(u64::MAX),
            };
            workloads::watch_fanout(
                &ctx,
                &group("watch"),
                cfg.watchers,
                limits,
                data.clone(),
                progress.clone(),
            )
            .await
        }
    };
    let server_end = cfg.pid.and_then(|pid| procstat::sample(Some(pid)).ok());
    let self_end = procstat::sample(None).ok();
    let _ = stop_ticker.send(());
    let (server_rss_max, self_rss_max) = ticker.await.unwrap_or((0, 0));
    let (stats, elapsed) = measured?;

    // ---- cleanup ----
    let cleaned_znodes = if cfg.keep {
        0
    } else {
        workloads::delete_tree(&ctx, &admin, &prefix).await?
    };
    let _ = admin.close().await;

    let usage = |pid: u32, a: Option<ProcSample>, b: Option<ProcSample>, max_kb: u64| {
        let (Some(a), Some(b)) = (a, b) else {
            return Usage {
                pid,
                ..Usage::default()
            };
        };
        Usage {
            pid,
            rss_start_kb: a.rss_kb,
            rss_end_kb: b.rss_kb,
            rss_max_kb: max_kb.max(a.rss_kb).max(b.rss_kb),
            cpu_percent: procstat::cpu_percent(&a, &b),
            threads: b.threads,
        }
    };
    Ok(build_report(
        &cfg,
        connections,
        inflight,
        &stats,
        elapsed,
        cfg.pid
            .map(|pid| usage(pid, server_start, server_end, server_rss_max)),
        usage(std::process::id(), self_start, self_end, self_rss_max),
        setup_znodes,
        cleaned_znodes,
    ))
}

async fn run_each<S: driver::OpSource + 'static>(
    ctx: &Ctx,
    sources: Vec<S>,
    inflight: usize,
    limits: Vec<Limits>,
    progress: Option<Arc<Progress>>,
) -> Result<(Stats, Duration), BenchError> {
    // Every worker has the same deadline; its share of --requests is counted by `Limited`.
    let duration = limits.first().map_or(Duration::ZERO, |l| l.duration);
    let wrapped: Vec<Limited<S>> = sources
        .into_iter()
        .zip(limits)
        .map(|(source, l)| Limited {
            source,
            left: l.max_ops,
        })
        .collect();
    let limits = Limits {
        duration,
        max_ops: u64::MAX,
    };
    let (stats, _, elapsed) =
        workloads::run_workers(ctx, wrapped, inflight, limits, progress).await?;
    Ok((stats, elapsed))
}

/// A source that stops after its share of `--requests`.
struct Limited<S> {
    source: S,
    left: u64,
}

impl<S: driver::OpSource> driver::OpSource for Limited<S> {
    fn next(&mut self, core: &mut crate::core::ClientCore) -> Option<(OpKind, u32)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.source.next(core)
    }

    fn reply(&mut self, kind: OpKind, tag: u32, err: i32, body: &[u8]) {
        self.source.reply(kind, tag, err, body)
    }
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    cfg: &BenchConfig,
    connections: usize,
    inflight: usize,
    stats: &Stats,
    elapsed: Duration,
    server_usage: Option<Usage>,
    generator: Usage,
    setup_znodes: u64,
    cleaned_znodes: u64,
) -> Report {
    let mut headline = Histogram::new();
    let mut errors = 0;
    for k in cfg.workload.primary() {
        headline.merge(&stats.hist[*k as usize]);
        errors += stats.errors[*k as usize];
    }
    let per_op = OpKind::ALL
        .iter()
        .filter(|k| !stats.hist[**k as usize].is_empty())
        .map(|&k| OpReport {
            op: k,
            count: stats.hist[k as usize].count(),
            errors: stats.errors[k as usize],
            latency: Latency::of(&stats.hist[k as usize]),
        })
        .collect();
    let secs = elapsed.as_secs_f64().max(1e-9);
    Report {
        workload: cfg.workload,
        server: cfg.server,
        connections,
        inflight,
        value_size: cfg.value_size,
        elapsed,
        ops: headline.count(),
        errors,
        ops_per_sec: headline.count() as f64 / secs,
        latency: Latency::of(&headline),
        per_op,
        server_usage,
        generator,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        setup_znodes,
        cleaned_znodes,
    }
}

/// Once a second: sample the server and this process, and print a progress line if asked.
/// Returns the largest RSS seen of the server and of this process.
fn spawn_ticker(
    progress: Arc<Progress>,
    pid: Option<u32>,
    print: bool,
    label: &'static str,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<(u64, u64)>,
) {
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut last_ops = 0u64;
        let mut last_srv = pid.and_then(|p| procstat::sample(Some(p)).ok());
        let mut last_self = procstat::sample(None).ok();
        let (mut srv_max, mut self_max) = (0u64, 0u64);
        loop {
            tokio::select! {
                _ = &mut rx => break,
                _ = tick.tick() => {}
            }
            let ops = progress.ops.load(Ordering::Relaxed);
            let errors = progress.errors.load(Ordering::Relaxed);
            let srv = pid.and_then(|p| procstat::sample(Some(p)).ok());
            let me = procstat::sample(None).ok();
            let mut line = format!(
                "[{label} {:>4.0}s] {:>9} ops/s  total {:>10}  errors {}",
                start.elapsed().as_secs_f64(),
                ops - last_ops,
                ops,
                errors
            );
            if let (Some(a), Some(b)) = (&last_srv, &srv) {
                srv_max = srv_max.max(b.rss_kb);
                line += &format!(
                    "  server rss {:.1} MiB cpu {:.0}%",
                    b.rss_kb as f64 / 1024.0,
                    procstat::cpu_percent(a, b)
                );
            }
            if let (Some(a), Some(b)) = (&last_self, &me) {
                self_max = self_max.max(b.rss_kb);
                line += &format!("  generator cpu {:.0}%", procstat::cpu_percent(a, b));
            }
            if print {
                eprintln!("{line}");
            }
            last_ops = ops;
            last_srv = srv;
            last_self = me;
        }
        (srv_max, self_max)
    });
    (tx, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        let s = shares(10, 4);
        assert_eq!(s, [3, 3, 2, 2]);
        assert_eq!(shares(3, 5).iter().sum::<u64>(), 3);
    }

    #[test]
    fn prefixes_outside_the_bench_are_refused() {
        let addr = "127.0.0.1:2181".parse().unwrap();
        for bad in [
            "/",
            "bench",
            "/bench/",
            "/zookeeper",
            "/zookeeper/x",
            "/a//b",
        ] {
            let mut c = BenchConfig::new(addr, Workload::Get);
            c.prefix = bad.into();
            assert!(c.validate().is_err(), "{bad}");
        }
        let mut c = BenchConfig::new(addr, Workload::Get);
        c.prefix = "/a/bench".into();
        assert!(c.validate().is_ok());
    }
}
