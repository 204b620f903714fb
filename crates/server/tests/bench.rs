//! `zooid bench` against an in-process zooid: every workload runs for about a second with
//! small sizes and must complete operations without errors, report ordered percentiles, read
//! the server's /proc counters, and leave nothing under its prefix.

mod common;

use std::time::Duration;

use common::TestServer;
use zooid_client::bench::{run, BenchConfig, Report, Workload};
use zooid_client::Connection;

fn small(server: &TestServer, workload: Workload) -> BenchConfig {
    let mut cfg = BenchConfig::new(server.addr, workload);
    cfg.connections = 4;
    cfg.inflight = 4;
    cfg.value_size = 32;
    cfg.duration = Some(Duration::from_secs(1));
    cfg.znodes = Some(if workload == Workload::Populate {
        500
    } else {
        50
    });
    cfg.children = 50;
    cfg.watchers = 8;
    // The server runs in this process, so its /proc entry is ours.
    cfg.pid = Some(std::process::id());
    cfg.session_timeout = Duration::from_secs(10);
    cfg
}

fn check_sane(r: &Report) {
    let l = &r.latency;
    assert!(r.ops > 0, "{:?}: no operations completed", r.workload);
    assert_eq!(r.errors, 0, "{:?}: errors in {r:?}", r.workload);
    assert!(r.ops_per_sec > 0.0);
    assert_eq!(l.count, r.ops);
    assert!(
        0.0 < l.p50_us && l.p50_us <= l.p99_us && l.p99_us <= l.p999_us && l.p999_us <= l.max_us,
        "{:?}: percentiles out of order: {l:?}",
        r.workload
    );
    assert!(l.min_us <= l.p50_us && l.mean_us <= l.max_us);
    // A loopback request within a second-long run cannot take longer than the run.
    assert!(l.max_us < 30_000_000.0, "{l:?}");
    let server = r.server_usage.expect("--pid was given");
    assert!(server.rss_end_kb > 0 && server.rss_max_kb >= server.rss_end_kb);
    assert!(r.generator.rss_end_kb > 0);
    assert!(r.elapsed >= Duration::from_millis(500) || r.workload == Workload::Populate);
}

async fn prefix_is_gone(server: &TestServer) {
    let c = Connection::connect(server.addr, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        c.exists("/bench").await.unwrap(),
        None,
        "cleanup left /bench"
    );
    c.close().await.unwrap();
}

async fn run_one(workload: Workload) -> Report {
    let server = TestServer::start().await;
    let r = run(small(&server, workload)).await.expect("bench runs");
    check_sane(&r);
    prefix_is_gone(&server).await;
    server.stop().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create() {
    let r = run_one(Workload::Create).await;
    assert_eq!(
        r.cleaned_znodes,
        r.ops + 1 + 1 + 4,
        "creates + prefix + group + 4 parents"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set() {
    let r = run_one(Workload::Set).await;
    assert_eq!(r.setup_znodes, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get() {
    run_one(Workload::Get).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exists() {
    run_one(Workload::Exists).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_reads_and_writes() {
    let r = run_one(Workload::Mixed).await;
    let count = |name: &str| {
        r.per_op
            .iter()
            .find(|o| o.op.name() == name)
            .map_or(0, |o| o.count)
    };
    let (gets, sets) = (count("get"), count("set"));
    assert_eq!(gets + sets, r.ops);
    let pct = gets as f64 * 100.0 / r.ops as f64;
    assert!(
        (80.0..97.0).contains(&pct),
        "read share {pct}% for --read-percent 90"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_of_a_wide_parent() {
    let r = run_one(Workload::Children).await;
    assert_eq!(r.setup_znodes, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_storm() {
    run_one(Workload::Connect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_fan_out() {
    let r = run_one(Workload::Watch).await;
    assert_eq!(r.ops % 8, 0, "every round notifies all 8 watchers");
    let fanout = r.per_op.iter().find(|o| o.op.name() == "fanout").unwrap();
    assert_eq!(fanout.count * 8, r.ops);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_connection_latency() {
    let r = run_one(Workload::Latency).await;
    assert_eq!((r.connections, r.inflight), (1, 1));
    assert_eq!(r.per_op.len(), 5, "create, set, get, exists, delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn populate_creates_exactly_m_znodes() {
    let r = run_one(Workload::Populate).await;
    assert_eq!(r.ops, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_count_bounds_the_run_and_keep_keeps_the_nodes() {
    let server = TestServer::start().await;
    let mut cfg = small(&server, Workload::Create);
    cfg.duration = None;
    cfg.requests = Some(103);
    cfg.keep = true;
    let r = run(cfg).await.unwrap();
    assert_eq!(r.ops, 103);
    assert_eq!(r.cleaned_znodes, 0);
    let c = Connection::connect(server.addr, Duration::from_secs(10))
        .await
        .unwrap();
    let mut total = 0;
    for conn in 0..4 {
        total += c
            .get_children(&format!("/bench/c/{conn}"))
            .await
            .unwrap()
            .unwrap()
            .len();
    }
    assert_eq!(total, 103);
    c.close().await.unwrap();
    // The next run clears what the kept one left.
    let r = run(small(&server, Workload::Get)).await.unwrap();
    check_sane(&r);
    prefix_is_gone(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_is_an_error_not_a_hang() {
    let server = TestServer::start().await;
    let addr = server.addr;
    server.stop().await;
    let cfg = BenchConfig::new(addr, Workload::Get);
    let started = std::time::Instant::now();
    assert!(run(cfg).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(15));
}
