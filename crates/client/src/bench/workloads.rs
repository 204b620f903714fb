//! The request generators behind each workload, the fan-out and connect-storm loops that do
//! not fit the pipelined driver, and the bulk helpers for setup and cleanup.
//!
//! Znode layout under the prefix (every path the bench touches is below it):
//!
//! ```text
//! {prefix}/d/{i}          pool of --znodes nodes for set, get, exists, mixed
//! {prefix}/c/{conn}/{i}   nodes made by the create workload, one parent per connection
//! {prefix}/p/{conn}/{i}   nodes made by populate, one parent per connection
//! {prefix}/w/{i}          --children children of the wide parent read by `children`
//! {prefix}/l/{i}          the latency workload's create/get/set/exists/delete cycle
//! {prefix}/watch          the node every watcher watches
//! ```

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Barrier};
use tokio::time::Instant;

use super::driver::{self, Limits, OpSource, Progress, Stats};
use super::{BenchError, OpKind};
use crate::conn::{open, Connection};
use crate::core::ClientCore;

/// NOTEMPTY
const ERR_NOT_EMPTY: i32 = -111;
/// NONODE
const ERR_NO_NODE: i32 = -101;
/// NODEEXISTS
const ERR_NODE_EXISTS: i32 = -110;

/// A small, fast, seeded generator (xorshift64*); the bench needs spread, not secrecy.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn seeded(stream: u64) -> Rng {
        Rng(0x9e37_79b9_7f4a_7c15 ^ (stream + 1).wrapping_mul(0xd1b5_4a32_d192_ed03))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Creates `{base}/{i}` for i = next, next + step, ... below `end`.
pub(crate) struct Creates {
    pub base: String,
    pub next: u64,
    pub step: u64,
    pub end: u64,
    pub data: Arc<[u8]>,
    pub created: u64,
    path: String,
}

impl Creates {
    pub fn new(base: String, next: u64, step: u64, end: u64, data: Arc<[u8]>) -> Creates {
        Creates {
            path: String::with_capacity(base.len() + 24),
            base,
            next,
            step,
            end,
            data,
            created: 0,
        }
    }
}

impl OpSource for Creates {
    fn next(&mut self, core: &mut ClientCore) -> Option<(OpKind, u32)> {
        if self.next >= self.end {
            return None;
        }
        self.path.clear();
        let _ = write!(self.path, "{}/{}", self.base, self.next);
        core.send_create(&self.path, &self.data, 0);
        self.next += self.step;
        Some((OpKind::Create, 0))
    }

    fn reply(&mut self, _kind: OpKind, _tag: u32, err: i32, _body: &[u8]) {
        if err == 0 {
            self.created += 1;
        }
    }
}

/// What [`PoolOps`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoolMode {
    Set,
    Get,
    Exists,
    /// getData with this percentage, setData otherwise.
    Mixed(u32),
}

/// Reads and writes on random nodes of the pool `{base}/0 .. {base}/{size-1}`.
pub(crate) struct PoolOps {
    base: String,
    size: u64,
    mode: PoolMode,
    rng: Rng,
    data: Arc<[u8]>,
    path: String,
}

impl PoolOps {
    pub fn new(base: String, size: u64, mode: PoolMode, seed: u64, data: Arc<[u8]>) -> PoolOps {
        assert!(size > 0, "the pool must hold at least one znode");
        PoolOps {
            path: String::with_capacity(base.len() + 24),
            base,
            size,
            mode,
            rng: Rng::seeded(seed),
            data,
        }
    }
}

impl OpSource for PoolOps {
    fn next(&mut self, core: &mut ClientCore) -> Option<(OpKind, u32)> {
        let r = self.rng.next();
        self.path.clear();
        let _ = write!(self.path, "{}/{}", self.base, (r >> 32) % self.size);
        let kind = match self.mode {
            PoolMode::Get => OpKind::Get,
            PoolMode::Exists => OpKind::Exists,
            PoolMode::Set => OpKind::Set,
            PoolMode::Mixed(read_percent) if r % 100 < read_percent as u64 => OpKind::Get,
            PoolMode::Mixed(_) => OpKind::Set,
        };
        match kind {
            OpKind::Get => core.send_get_data(&self.path, false),
            OpKind::Exists => core.send_exists(&self.path, false),
            _ => core.send_set_data(&self.path, &self.data, -1),
        };
        Some((kind, 0))
    }
}

/// getChildren on one wide parent, again and again.
pub(crate) struct Children {
    pub path: String,
}

impl OpSource for Children {
    fn next(&mut self, core: &mut ClientCore) -> Option<(OpKind, u32)> {
        core.send_get_children(&self.path, false);
        Some((OpKind::Children, 0))
    }
}

/// Deletes a list of paths and keeps each one's error code.
pub(crate) struct Deletes {
    pub paths: Vec<String>,
    pub next: usize,
    pub errs: Vec<i32>,
}

impl OpSource for Deletes {
    fn next(&mut self, core: &mut ClientCore) -> Option<(OpKind, u32)> {
        let path = self.paths.get(self.next)?;
        core.send_delete(path, -1);
        self.next += 1;
        Some((OpKind::Delete, (self.next - 1) as u32))
    }

    fn reply(&mut self, _kind: OpKind, tag: u32, err: i32, _body: &[u8]) {
        self.errs[tag as usize] = err;
    }
}

/// One node at a time through create, getData, setData, exists and delete.
pub(crate) struct LatencyCycle {
    base: String,
    i: u64,
    step: u8,
    data: Arc<[u8]>,
    path: String,
}

impl LatencyCycle {
    pub fn new(base: String, data: Arc<[u8]>) -> LatencyCycle {
        LatencyCycle {
            path: String::with_capacity(base.len() + 24),
            base,
            i: 0,
            step: 0,
            data,
        }
    }
}

impl OpSource for LatencyCycle {
    fn next(&mut self, core: &mut ClientCore) -> Option<(OpKind, u32)> {
        self.path.clear();
        let _ = write!(self.path, "{}/{}", self.base, self.i);
        let kind = match self.step {
            0 => {
                core.send_create(&self.path, &self.data, 0);
                OpKind::Create
            }
            1 => {
                core.send_get_data(&self.path, false);
                OpKind::Get
            }
            2 => {
                core.send_set_data(&self.path, &self.data, -1);
                OpKind::Set
            }
            3 => {
                core.send_exists(&self.path, false);
                OpKind::Exists
            }
            _ => {
                core.send_delete(&self.path, -1);
                self.i += 1;
                OpKind::Delete
            }
        };
        self.step = (self.step + 1) % 5;
        Some((kind, 0))
    }
}

/// Settings every helper here needs.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub addr: SocketAddr,
    pub session_timeout: Duration,
    pub connections: usize,
    pub inflight: usize,
}

impl Ctx {
    fn stall(&self) -> Duration {
        self.session_timeout.max(Duration::from_secs(10))
    }
}

/// Run one worker per source in parallel. Every worker connects first; the clock starts when
/// all are connected. Returns the merged stats, the sources (for their results) and the wall
/// time from that start until the last worker finished.
pub(crate) async fn run_workers<S: OpSource + 'static>(
    ctx: &Ctx,
    sources: Vec<S>,
    inflight: usize,
    limits: Limits,
    progress: Option<Arc<Progress>>,
) -> Result<(Stats, Vec<S>, Duration), BenchError> {
    let barrier = Arc::new(Barrier::new(sources.len() + 1));
    let mut tasks = Vec::with_capacity(sources.len());
    for mut source in sources {
        let barrier = barrier.clone();
        let progress = progress.clone();
        let (addr, timeout, stall) = (ctx.addr, ctx.session_timeout, ctx.stall());
        tasks.push(tokio::spawn(async move {
            let conn = driver::connect(addr, timeout).await;
            // Wait even after a failed connect, so the others are not held forever.
            barrier.wait().await;
            let mut stats = Stats::default();
            driver::run_loop(
                conn?,
                &mut source,
                inflight,
                limits,
                stall,
                &mut stats,
                progress.as_deref(),
            )
            .await?;
            Ok::<_, crate::core::ClientError>((stats, source))
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut merged = Stats::default();
    let mut back = Vec::with_capacity(tasks.len());
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok((stats, source))) => {
                merged.merge(&stats);
                back.push(source);
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(BenchError::Client(e));
            }
            Err(join) => {
                first_error.get_or_insert(BenchError::Setup(format!("a worker failed: {join}")));
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok((merged, back, start.elapsed()))
}

/// Delete `paths` with up to `ctx.connections` pipelined connections; returns each path's
/// error code, in order.
pub(crate) async fn bulk_delete(ctx: &Ctx, paths: Vec<String>) -> Result<Vec<i32>, BenchError> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let workers = ctx.connections.min(paths.len().div_ceil(256)).max(1);
    let per = paths.len().div_ceil(workers);
    let mut sources = Vec::with_capacity(workers);
    let mut rest = paths;
    while !rest.is_empty() {
        let tail = rest.split_off(per.min(rest.len()));
        let n = rest.len();
        sources.push(Deletes {
            paths: rest,
            next: 0,
            errs: vec![0; n],
        });
        rest = tail;
    }
    let limits = Limits {
        duration: Duration::from_secs(600),
        max_ops: u64::MAX,
    };
    let (_, sources, _) = run_workers(ctx, sources, ctx.inflight, limits, None).await?;
    Ok(sources.into_iter().flat_map(|s| s.errs).collect())
}

/// Delete `root` and everything under it; returns how many znodes went. Leaves are deleted
/// in bulk without listing them: a delete that answers NOTEMPTY gets its children listed and
/// removed first, then is retried. A missing `root` is not an error.
pub(crate) async fn delete_tree(
    ctx: &Ctx,
    admin: &Connection,
    root: &str,
) -> Result<u64, BenchError> {
    remove(ctx, admin, vec![root.to_string()], 0).await
}

fn remove<'a>(
    ctx: &'a Ctx,
    admin: &'a Connection,
    paths: Vec<String>,
    depth: usize,
) -> Pin<Box<dyn Future<Output = Result<u64, BenchError>> + Send + 'a>> {
    Box::pin(async move {
        if depth > 64 {
            return Err(BenchError::Setup(
                "the tree under the prefix is deeper than 64 levels".into(),
            ));
        }
        let errs = bulk_delete(ctx, paths.clone()).await?;
        let mut removed = errs.iter().filter(|&&e| e == 0).count() as u64;
        let parents: Vec<String> = paths
            .into_iter()
            .zip(&errs)
            .filter(|(_, &e)| e == ERR_NOT_EMPTY)
            .map(|(p, _)| p)
            .collect();
        if let Some(&e) = errs
            .iter()
            .find(|&&e| e != 0 && e != ERR_NOT_EMPTY && e != ERR_NO_NODE)
        {
            return Err(BenchError::Setup(format!(
                "cleanup: delete failed with error {e}"
            )));
        }
        if parents.is_empty() {
            return Ok(removed);
        }
        let mut children = Vec::new();
        for p in &parents {
            match admin.get_children(p).await? {
                Ok(names) => children.extend(names.into_iter().map(|c| format!("{p}/{c}"))),
                Err(ERR_NO_NODE) => {}
                Err(e) => {
                    return Err(BenchError::Setup(format!(
                        "cleanup: getChildren {p} failed with error {e}"
                    )))
                }
            }
        }
        removed += remove(ctx, admin, children, depth + 1).await?;
        let errs = bulk_delete(ctx, parents.clone()).await?;
        for (p, e) in parents.iter().zip(&errs) {
            match *e {
                0 => removed += 1,
                ERR_NO_NODE => {}
                e => return Err(BenchError::Setup(format!("cleanup: delete {p} failed with error {e} (is another client writing under the prefix?)"))),
            }
        }
        Ok(removed)
    })
}

/// Create each of `paths` in order (parents before children), ignoring NODEEXISTS.
pub(crate) async fn create_all(
    admin: &Connection,
    paths: &[String],
    data: &[u8],
) -> Result<(), BenchError> {
    let mut pending = Vec::with_capacity(paths.len());
    for p in paths {
        pending.push((
            p,
            admin
                .submit(zooid_proto::Request::Create(zooid_proto::CreateRequest {
                    op: zooid_proto::OpCode::Create,
                    path: p.clone(),
                    data: Some(data.to_vec()),
                    acl: zooid_proto::Acl::open_unsafe(),
                    flags: 0,
                    ttl: None,
                }))
                .await?,
        ));
    }
    for (p, r) in pending {
        let r = r.wait().await?;
        if r.err != 0 && r.err != ERR_NODE_EXISTS {
            return Err(BenchError::Setup(format!(
                "cannot create {p}: error {}",
                r.err
            )));
        }
    }
    Ok(())
}

/// The session connect storm: each worker opens a session, records how long TCP connect plus
/// handshake took, closes it (closeSession, so the server does not keep it until expiry) and
/// starts over.
pub(crate) async fn connect_storm(
    ctx: &Ctx,
    limits: Vec<Limits>,
    progress: Arc<Progress>,
) -> Result<(Stats, Duration), BenchError> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for limit in limits {
        let (addr, timeout) = (ctx.addr, ctx.session_timeout);
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            let deadline = Instant::now() + limit.duration;
            let mut n = 0u64;
            let mut failures_in_a_row = 0;
            while n < limit.max_ops && Instant::now() < deadline {
                let t = Instant::now();
                n += 1;
                match open(addr, timeout, Duration::from_secs(10)).await {
                    Ok((stream, core, _)) => {
                        stats.record(OpKind::Connect, t.elapsed(), 0);
                        progress.ops.fetch_add(1, Ordering::Relaxed);
                        failures_in_a_row = 0;
                        driver::close(stream, core).await?;
                    }
                    Err(e) => {
                        // CONNECTIONLOSS, as a client would see it.
                        stats.record(OpKind::Connect, t.elapsed(), -4);
                        progress.errors.fetch_add(1, Ordering::Relaxed);
                        failures_in_a_row += 1;
                        if failures_in_a_row >= 10 {
                            return Err(e);
                        }
                    }
                }
            }
            Ok::<_, crate::core::ClientError>(stats)
        }));
    }
    let mut merged = Stats::default();
    for t in tasks {
        let stats = t
            .await
            .map_err(|e| BenchError::Setup(format!("a worker failed: {e}")))??;
        merged.merge(&stats);
    }
    Ok((merged, start.elapsed()))
}

/// Watch fan-out: `watchers` sessions each set a data watch on `path`; one setData fires them
/// all; the latency of each watcher is from just before the setData was sent to its event. A
/// round re-arms every watch, so rounds repeat until the limits say stop.
pub(crate) async fn watch_fanout(
    ctx: &Ctx,
    path: &str,
    watchers: usize,
    limits: Limits,
    data: Arc<[u8]>,
    progress: Arc<Progress>,
) -> Result<(Stats, Duration), BenchError> {
    const STEP: Duration = Duration::from_secs(30);
    let setter = Connection::connect(ctx.addr, ctx.session_timeout).await?;
    // Connect the watchers a few at a time, not all at once into the listen backlog.
    let mut conns = Vec::with_capacity(watchers);
    while conns.len() < watchers {
        let batch = ctx.connections.max(1).min(watchers - conns.len());
        let mut opening = Vec::with_capacity(batch);
        for _ in 0..batch {
            let (addr, timeout) = (ctx.addr, ctx.session_timeout);
            opening.push(tokio::spawn(Connection::connect(addr, timeout)));
        }
        for o in opening {
            conns.push(
                o.await
                    .map_err(|e| BenchError::Setup(format!("connect task failed: {e}")))??,
            );
        }
    }
    let base = Instant::now();
    let t0_ns = Arc::new(AtomicU64::new(0));
    let (round_tx, round_rx) = tokio::sync::watch::channel(0u64);
    let (armed_tx, mut armed_rx) = mpsc::channel::<bool>(watchers);
    let (done_tx, mut done_rx) = mpsc::channel::<Option<u64>>(watchers);
    let mut tasks = Vec::with_capacity(watchers);
    for mut conn in conns {
        let mut round_rx = round_rx.clone();
        let (armed_tx, done_tx, t0_ns, path) = (
            armed_tx.clone(),
            done_tx.clone(),
            t0_ns.clone(),
            path.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                if round_rx.changed().await.is_err() || *round_rx.borrow_and_update() == u64::MAX {
                    break;
                }
                let armed = matches!(conn.get_data(&path, true).await, Ok(r) if r.is_ok());
                let _ = armed_tx.send(armed).await;
                if !armed {
                    let _ = done_tx.send(None).await;
                    continue;
                }
                let got = tokio::time::timeout(STEP, conn.next_event()).await;
                let at = base.elapsed().as_nanos() as u64;
                let latency = match got {
                    Ok(Some(_)) => Some(at.saturating_sub(t0_ns.load(Ordering::Acquire))),
                    _ => None,
                };
                let _ = done_tx.send(latency).await;
            }
            let _ = tokio::time::timeout(STEP, conn.close()).await;
        }));
    }
    drop((armed_tx, done_tx));

    let mut stats = Stats::default();
    let start = Instant::now();
    let deadline = start + limits.duration;
    let mut round = 0u64;
    let outcome: Result<(), BenchError> = async {
        while round < limits.max_ops && Instant::now() < deadline {
            round += 1;
            round_tx.send_replace(round);
            for _ in 0..watchers {
                match tokio::time::timeout(STEP, armed_rx.recv()).await {
                    Ok(Some(_)) => {}
                    _ => {
                        return Err(BenchError::Setup(
                            "watchers stopped answering while arming".into(),
                        ))
                    }
                }
            }
            t0_ns.store(base.elapsed().as_nanos() as u64, Ordering::Release);
            let t = Instant::now();
            let r = setter.set_data(path, &data).await?;
            stats.record(OpKind::Set, t.elapsed(), r.err);
            let mut slowest = 0u64;
            let mut errors = 0;
            for _ in 0..watchers {
                match tokio::time::timeout(STEP, done_rx.recv()).await {
                    Ok(Some(Some(ns))) => {
                        slowest = slowest.max(ns);
                        stats.record(OpKind::Watch, Duration::from_nanos(ns), 0);
                    }
                    Ok(Some(None)) => {
                        errors += 1;
                        stats.record(OpKind::Watch, STEP, -7);
                    }
                    _ => return Err(BenchError::Setup("watchers stopped answering".into())),
                }
            }
            stats.record(
                OpKind::Fanout,
                Duration::from_nanos(slowest),
                (errors > 0) as i32 * -7,
            );
            progress
                .ops
                .fetch_add((watchers - errors) as u64, Ordering::Relaxed);
            progress.errors.fetch_add(errors as u64, Ordering::Relaxed);
        }
        Ok(())
    }
    .await;
    let elapsed = start.elapsed();
    round_tx.send_replace(u64::MAX);
    for t in tasks {
        let _ = t.await;
    }
    let _ = setter.close().await;
    outcome?;
    Ok((stats, elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_mode_honours_the_read_percentage() {
        let mut src = PoolOps::new(
            "/b/d".into(),
            100,
            PoolMode::Mixed(90),
            3,
            Arc::from(&b"v"[..]),
        );
        let mut core = ClientCore::new(30_000);
        let (mut reads, mut writes) = (0, 0);
        for _ in 0..100_000 {
            match src.next(&mut core).unwrap().0 {
                OpKind::Get => reads += 1,
                OpKind::Set => writes += 1,
                k => panic!("unexpected {k:?}"),
            }
            let n = core.outgoing().len();
            core.advance_outgoing(n);
        }
        let pct = reads as f64 / (reads + writes) as f64 * 100.0;
        assert!((89.0..91.0).contains(&pct), "{pct}");
    }

    #[test]
    fn deletes_report_each_path_error() {
        let mut src = Deletes {
            paths: vec!["/a".into(), "/b".into()],
            next: 0,
            errs: vec![0; 2],
        };
        let mut core = ClientCore::new(30_000);
        let (_, t0) = src.next(&mut core).unwrap();
        let (_, t1) = src.next(&mut core).unwrap();
        assert!(src.next(&mut core).is_none());
        src.reply(OpKind::Delete, t1, ERR_NOT_EMPTY, &[]);
        src.reply(OpKind::Delete, t0, 0, &[]);
        assert_eq!(src.errs, [0, ERR_NOT_EMPTY]);
    }

    #[test]
    fn creates_stop_at_the_end_and_stride() {
        let mut src = Creates::new("/b/d".into(), 1, 3, 8, Arc::from(&b""[..]));
        let mut core = ClientCore::new(30_000);
        let mut n = 0;
        while src.next(&mut core).is_some() {
            n += 1;
        }
        assert_eq!(n, 3); // 1, 4, 7
    }
}
