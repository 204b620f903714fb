//! Server metrics under ZooKeeper 3.8's names, so dashboards and alerts written for ZooKeeper
//! keep working: `mntr` prints them as ZooKeeper's default metrics provider does, and
//! `/metrics` on `metricsProvider.httpPort` serves them as its Prometheus provider does.
//!
//! ```text
//! core task ── counters, summaries ──▶ Registry ──collect()──▶ [Entry] ──▶ mntr pairs (zk_*)
//!    ▲  Core::stats (latencies, namespaces)                      └──▶ Prometheus text 0.0.4
//!    └─ FromWriter::Timed (fsync, snapshot durations)
//! ```
//! Gauges are read from the core when collected; counters and summaries accumulate in the
//! [`Registry`], which the core task owns (no locks). Every metric ZooKeeper registers in a
//! standalone server is listed in [`METRICS`], in the order its `mntr` prints them; the ones
//! zooid has no counterpart for (request processor queues, the ensemble until it exists) stay
//! zero, as they do on a standalone ZooKeeper.
//!
//! Prometheus format, as ZooKeeper's provider (simpleclient 0.9) writes it:
//! ```text
//! # HELP znode_count znode_count
//! # TYPE znode_count gauge
//! znode_count 5.0
//! # TYPE fsynctime summary
//! fsynctime{quantile="0.5",} 1.0
//! fsynctime_count 12.0
//! fsynctime_sum 14.0
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::Instant;

use zooid_node::{Core, Tally};

use crate::commands::{java_double, Value};

/// What a metric is, in ZooKeeper's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Read from the server when collected.
    Gauge,
    /// Only grows (until `srst`).
    Counter,
    /// avg/min/max/count/sum (ZooKeeper's `DetailLevel.BASIC`).
    Summary,
    /// A summary with percentiles too (`DetailLevel.ADVANCED`).
    Detailed,
}

use Kind::{Counter as C, Detailed as D, Gauge as G, Summary as S};

/// Every metric a standalone ZooKeeper 3.8 registers, in the order its `mntr` lists them.
pub const METRICS: &[(&str, Kind)] = &[
    ("ephemerals_count", G),
    ("num_alive_connections", G),
    ("avg_latency", G),
    ("outstanding_requests", G),
    ("znode_count", G),
    ("global_sessions", G),
    ("non_mtls_remote_conn_count", G),
    ("last_client_response_size", G),
    ("packets_sent", G),
    ("packets_received", G),
    ("max_client_response_size", G),
    ("connection_drop_probability", G),
    ("watch_count", G),
    ("auth_failed_count", G),
    ("min_latency", G),
    ("max_file_descriptor_count", G),
    ("approximate_data_size", G),
    ("open_file_descriptor_count", G),
    ("local_sessions", G),
    ("uptime", G),
    ("max_latency", G),
    ("outstanding_tls_handshake", G),
    ("min_client_response_size", G),
    ("non_mtls_local_conn_count", G),
    ("proposal_count", C),
    ("watch_bytes", C),
    ("outstanding_changes_removed", C),
    ("throttled_ops", C),
    ("stale_requests_dropped", C),
    ("large_requests_rejected", C),
    ("insecure_admin_count", C),
    ("connection_rejected", C),
    ("cnxn_closed_without_zk_server_running", C),
    ("sessionless_connections_expired", C),
    ("looking_count", C),
    ("dead_watchers_queued", C),
    ("stale_requests", C),
    ("connection_drop_count", C),
    ("learner_proposal_received_count", C),
    ("digest_mismatches_count", C),
    ("dead_watchers_cleared", C),
    ("response_packet_cache_hits", C),
    ("bytes_received_count", C),
    ("add_dead_watcher_stall_time", C),
    ("request_throttle_wait_count", C),
    ("requests_not_forwarded_to_commit_processor", C),
    ("response_packet_cache_misses", C),
    ("ensemble_auth_success", C),
    ("prep_processor_request_queued", C),
    ("learner_commit_received_count", C),
    ("stale_replies", C),
    ("connection_request_count", C),
    ("response_bytes", C),
    ("ensemble_auth_fail", C),
    ("diff_count", C),
    ("response_packet_get_children_cache_misses", C),
    ("connection_revalidate_count", C),
    ("quit_leading_due_to_disloyal_voter", C),
    ("snap_count", C),
    ("unrecoverable_error_count", C),
    ("unsuccessful_handshake", C),
    ("commit_count", C),
    ("stale_sessions_expired", C),
    ("response_packet_get_children_cache_hits", C),
    ("sync_processor_request_queued", C),
    ("outstanding_changes_queued", C),
    ("request_commit_queued", C),
    ("ensemble_auth_skip", C),
    ("skip_learner_request_to_next_processor_count", C),
    ("tls_handshake_exceeded", C),
    ("revalidate_count", C),
    ("socket_closing_time", S),
    ("proposal_process_time", S),
    ("leader_unavailable_time", S),
    ("node_created_watch_count", S),
    ("session_queues_drained", S),
    ("write_commit_proc_req_queued", S),
    ("connection_token_deficit", S),
    ("read_commit_proc_req_queued", S),
    ("node_deleted_watch_count", S),
    ("startup_txns_load_time", S),
    ("sync_processor_queue_size", S),
    ("follower_sync_time", S),
    ("prep_processor_queue_size", S),
    ("fsynctime", S),
    ("inflight_snap_count", S),
    ("reads_issued_from_session_queue", S),
    ("learner_request_processor_queue_size", S),
    ("snapshottime", S),
    ("unavailable_time", S),
    ("startup_txns_loaded", S),
    ("reads_after_write_in_session_queue", S),
    ("requests_in_session_queue", S),
    ("write_commit_proc_issued", S),
    ("prep_process_time", S),
    ("pending_session_queue_size", S),
    ("time_waiting_empty_pool_in_commit_processor_read_ms", S),
    ("commit_process_time", S),
    ("dbinittime", S),
    ("inflight_diff_count", S),
    ("netty_queued_buffer_capacity", S),
    ("election_time", S),
    ("commit_commit_proc_req_queued", S),
    ("sync_processor_batch_size", S),
    ("node_children_watch_count", S),
    ("write_batch_time_in_commit_processor", S),
    ("read_commit_proc_issued", S),
    ("concurrent_request_processing_in_commit_processor", S),
    ("observer_sync_time", S),
    ("node_changed_watch_count", S),
    ("sync_process_time", S),
    ("startup_snap_load_time", S),
    ("prep_processor_queue_time_ms", D),
    ("jvm_pause_time_ms", D),
    ("close_session_prep_time", D),
    ("read_commitproc_time_ms", D),
    ("updatelatency", D),
    ("local_write_committed_time_ms", D),
    ("request_throttle_queue_time_ms", D),
    ("readlatency", D),
    ("quorum_ack_latency", D),
    ("om_commit_process_time_ms", D),
    ("read_final_proc_time_ms", D),
    ("commit_propagation_latency", D),
    ("dead_watchers_cleaner_latency", D),
    ("write_final_proc_time_ms", D),
    ("proposal_ack_creation_latency", D),
    ("proposal_latency", D),
    ("om_proposal_process_time_ms", D),
    ("sync_processor_queue_and_flush_time_ms", D),
    ("propagation_latency", D),
    ("server_write_committed_time_ms", D),
    ("sync_processor_queue_time_ms", D),
    ("sync_processor_queue_flush_time_ms", D),
    ("write_commitproc_time_ms", D),
];

/// Summary sets: one summary per top-level znode (`key` label in Prometheus).
pub const SUMMARY_SETS: &[(&str, Kind)] = &[
    ("read_per_namespace", S),
    ("write_per_namespace", S),
    ("learner_handler_qp_size", S),
    ("learner_handler_qp_time_ms", D),
    ("ack_latency", D),
];

/// How many recent values a summary keeps for its percentiles.
const RECENT_MAX: usize = 4096;

/// Observed values: totals since the last reset, and the most recent ones for percentiles.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    tally: Tally,
    recent: VecDeque<i64>,
}

impl Summary {
    pub fn add(&mut self, v: i64) {
        self.tally.add(v);
        if self.recent.len() == RECENT_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back(v);
    }

    fn view(&self, detailed: bool) -> SummaryView {
        let mut sorted: Vec<i64> = self.recent.iter().copied().collect();
        sorted.sort_unstable();
        let zk = |q: f64| uniform_quantile(&sorted, q).round() as i64;
        let prom = |q: f64| {
            if sorted.is_empty() {
                f64::NAN
            } else {
                let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
                sorted[rank - 1] as f64
            }
        };
        let prom_quantiles = if detailed {
            vec![(0.5, prom(0.5)), (0.9, prom(0.9)), (0.99, prom(0.99))]
        } else {
            vec![(0.5, prom(0.5))]
        };
        SummaryView {
            tally: self.tally,
            percentiles: detailed.then(|| [zk(0.5), zk(0.95), zk(0.99), zk(0.999)]),
            prom_quantiles,
        }
    }
}

/// A quantile as Dropwizard's `UniformSnapshot` computes it (ZooKeeper's percentiles).
fn uniform_quantile(sorted: &[i64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = q * (sorted.len() + 1) as f64;
    let index = pos as usize;
    if index < 1 {
        return sorted[0] as f64;
    }
    if index >= sorted.len() {
        return sorted[sorted.len() - 1] as f64;
    }
    let lower = sorted[index - 1] as f64;
    let upper = sorted[index] as f64;
    lower + (pos - pos.floor()) * (upper - lower)
}

/// A summary's figures at collection time.
#[derive(Debug, Clone)]
pub struct SummaryView {
    pub tally: Tally,
    /// p50, p95, p99, p999 (detailed summaries only).
    pub percentiles: Option<[i64; 4]>,
    /// (quantile, value) for Prometheus; NaN when nothing was observed.
    pub prom_quantiles: Vec<(f64, f64)>,
}

impl SummaryView {
    fn of_tally(tally: Tally) -> SummaryView {
        SummaryView {
            tally,
            percentiles: None,
            prom_quantiles: vec![(0.5, f64::NAN)],
        }
    }

    /// ZooKeeper's average: rounded half-up to 4 decimals, 0 when nothing was observed.
    pub fn avg(&self) -> f64 {
        avg4(self.tally.sum, self.tally.count)
    }
}

/// `sum / count` rounded to 4 decimals as ZooKeeper's `AvgMinMaxCounter` does.
pub fn avg4(sum: i64, count: u64) -> f64 {
    if count == 0 {
        return 0.0;
    }
    (sum as f64 / count as f64 * 10000.0).round() / 10000.0
}

/// One metric's value at collection time.
#[derive(Debug, Clone)]
pub enum Entry {
    Gauge(&'static str, Value),
    Counter(&'static str, u64),
    Summary(&'static str, SummaryView),
    SummarySet(&'static str, Kind, Vec<(String, SummaryView)>),
}

/// Sizes of the last, smallest and largest response (ZooKeeper's `BufferStats`; -1 until
/// the first).
#[derive(Debug, Clone, Copy)]
pub struct ResponseSizes {
    pub last: i64,
    pub min: i64,
    pub max: i64,
}

impl Default for ResponseSizes {
    fn default() -> Self {
        ResponseSizes {
            last: -1,
            min: -1,
            max: -1,
        }
    }
}

/// Counters and summaries the core task accumulates.
#[derive(Debug)]
pub struct Registry {
    started: Instant,
    /// `metricsProvider.className` names ZooKeeper's Prometheus provider: `mntr` then prints
    /// Prometheus sample names, and `srst` leaves the metrics alone, as in ZooKeeper.
    pub prometheus: bool,
    counters: BTreeMap<&'static str, u64>,
    summaries: BTreeMap<&'static str, Summary>,
    pub response_sizes: ResponseSizes,
}

impl Registry {
    pub fn new(prometheus: bool) -> Registry {
        Registry {
            started: Instant::now(),
            prometheus,
            counters: BTreeMap::new(),
            summaries: BTreeMap::new(),
            response_sizes: ResponseSizes::default(),
        }
    }

    /// Add to a counter of [`METRICS`].
    pub fn count(&mut self, name: &'static str, n: u64) {
        debug_assert!(
            METRICS.contains(&(name, C)),
            "{name} is not a ZooKeeper counter"
        );
        *self.counters.entry(name).or_default() += n;
    }

    /// Observe a value of a summary of [`METRICS`].
    pub fn observe(&mut self, name: &'static str, v: i64) {
        debug_assert!(
            METRICS
                .iter()
                .any(|&(n, k)| n == name && matches!(k, S | D)),
            "{name} is not a ZooKeeper summary"
        );
        self.summaries.entry(name).or_default().add(v);
    }

    /// A frame went to a client (length prefix included): ZooKeeper counts replies in
    /// `response_bytes`, notifications in `watch_bytes`, and the size of each without its
    /// length prefix in the client response sizes.
    pub fn frame_sent(&mut self, frame: &[u8]) {
        let size = frame.len().saturating_sub(4) as i64;
        let notification = frame.get(4..8) == Some(&(-1i32).to_be_bytes()[..]);
        self.count(
            if notification {
                "watch_bytes"
            } else {
                "response_bytes"
            },
            size as u64,
        );
        let r = &mut self.response_sizes;
        r.last = size;
        r.min = if r.min < 0 { size } else { r.min.min(size) };
        r.max = r.max.max(size);
    }

    /// Take the latencies the core recorded since the last call.
    pub fn take_latencies(&mut self, core: &mut Core) {
        if !core.stats.read_latencies_ms.is_empty() {
            for ms in std::mem::take(&mut core.stats.read_latencies_ms) {
                self.observe("readlatency", ms);
            }
        }
        if !core.stats.update_latencies_ms.is_empty() {
            for ms in std::mem::take(&mut core.stats.update_latencies_ms) {
                self.observe("updatelatency", ms);
            }
        }
    }

    /// `srst`: ZooKeeper's default provider resets every metric; its Prometheus provider
    /// resets nothing. The response sizes belong to the server stats and always reset.
    pub fn reset(&mut self) {
        if !self.prometheus {
            self.counters.clear();
            self.summaries.clear();
        }
        self.response_sizes = ResponseSizes::default();
    }

    pub fn uptime_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// Every metric's value now. `extra_connections` counts connections the core does not
    /// know of (a four-letter-word connection asking, which ZooKeeper counts).
    pub fn collect(&self, core: &Core, extra_connections: usize) -> Vec<Entry> {
        let s = &core.stats;
        let mut out = Vec::with_capacity(METRICS.len() + SUMMARY_SETS.len());
        for &(name, kind) in METRICS {
            let entry = match kind {
                G => Entry::Gauge(name, gauge(name, core, self, extra_connections)),
                C => {
                    let v = match name {
                        "digest_mismatches_count" => s.digest_mismatches,
                        "connection_request_count" => s.connection_requests,
                        "connection_rejected" => s.connections_rejected,
                        "throttled_ops" => s.throttled_ops,
                        "sessionless_connections_expired" => s.sessionless_expired,
                        _ => self.counter(name),
                    };
                    Entry::Counter(name, v)
                }
                S | D => {
                    let view = self
                        .summaries
                        .get(name)
                        .map(|x| x.view(kind == D))
                        .unwrap_or_else(|| Summary::default().view(kind == D));
                    Entry::Summary(name, view)
                }
            };
            out.push(entry);
        }
        for &(name, kind) in SUMMARY_SETS {
            let map = match name {
                "read_per_namespace" => Some(&s.reads_per_namespace),
                "write_per_namespace" => Some(&s.writes_per_namespace),
                _ => None,
            };
            let keyed = map
                .map(|m| {
                    m.iter()
                        .map(|(k, t)| (k.clone(), SummaryView::of_tally(*t)))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Entry::SummarySet(name, kind, keyed));
        }
        out
    }
}

/// A gauge's value, read from the server.
fn gauge(name: &str, core: &Core, reg: &Registry, extra_connections: usize) -> Value {
    let s = &core.stats;
    let tree = core.tree();
    let int = |v: i64| Value::Int(v);
    match name {
        "ephemerals_count" => int(tree.ephemeral_count() as i64),
        "num_alive_connections" => int((core.connection_count() + extra_connections) as i64),
        "avg_latency" => Value::Float(avg4(s.latency_total_ms, s.latency_count)),
        "min_latency" => int(s.latency_min_ms),
        "max_latency" => int(s.latency_max_ms),
        "outstanding_requests" => int(core.outstanding() as i64),
        // ZooKeeper counts the root twice (as "" and "/").
        "znode_count" => int(tree.node_count() as i64 + 1),
        "global_sessions" => int(core.session_count() as i64),
        "local_sessions" => int(core.local_session_count() as i64),
        "packets_sent" => int(s.packets_sent as i64),
        "packets_received" => int(s.packets_received as i64),
        "last_client_response_size" => int(reg.response_sizes.last),
        "min_client_response_size" => int(reg.response_sizes.min),
        "max_client_response_size" => int(reg.response_sizes.max),
        "connection_drop_probability" => Value::Float(0.0),
        "watch_count" => int(tree.watches.total() as i64),
        "auth_failed_count" => int(s.auth_failed as i64),
        "approximate_data_size" => int(tree.approximate_data_size() as i64),
        "open_file_descriptor_count" => int(open_fds() as i64),
        "max_file_descriptor_count" => int(max_fds() as i64),
        "uptime" => int(reg.uptime_ms()),
        // local sessions, TLS and mTLS are not implemented: always zero.
        _ => int(0),
    }
}

/// The metrics as `mntr` prints them after `zk_version` and `zk_server_state`: ZooKeeper's
/// default provider spells summaries out as `avg_`, `min_`, `max_`, `cnt_`, `sum_` (and
/// `p50_` ... `p999_` for detailed ones); with the Prometheus provider `mntr` shows the
/// Prometheus samples instead, every value a double.
pub fn mntr_pairs(entries: &[Entry], prometheus: bool) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if prometheus {
        for (name, labels, v) in prometheus_samples(entries) {
            out.push((format!("{name}{labels}"), Value::Float(v)));
        }
        return out;
    }
    let spell = |out: &mut Vec<(String, Value)>, name: &str, v: &SummaryView| {
        let t = &v.tally;
        out.push((format!("avg_{name}"), Value::Float(v.avg())));
        out.push((format!("min_{name}"), Value::Int(t.min)));
        out.push((format!("max_{name}"), Value::Int(t.max)));
        out.push((format!("cnt_{name}"), Value::Int(t.count as i64)));
        out.push((format!("sum_{name}"), Value::Int(t.sum)));
        if let Some(p) = v.percentiles {
            for (label, p) in ["p50", "p95", "p99", "p999"].iter().zip(p) {
                out.push((format!("{label}_{name}"), Value::Int(p)));
            }
        }
    };
    for e in entries {
        match e {
            Entry::Gauge(name, v) => out.push((name.to_string(), v.clone())),
            Entry::Counter(name, v) => out.push((name.to_string(), Value::Int(*v as i64))),
            Entry::Summary(name, v) => spell(&mut out, name, v),
            Entry::SummarySet(name, _, keyed) => {
                for (key, v) in keyed {
                    spell(&mut out, &format!("{key}_{name}"), v);
                }
            }
        }
    }
    out
}

/// (sample name, labels, value) for every Prometheus sample.
fn prometheus_samples(entries: &[Entry]) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for e in entries {
        match e {
            Entry::Gauge(name, v) => out.push((name.to_string(), String::new(), number(v))),
            Entry::Counter(name, v) => out.push((name.to_string(), String::new(), *v as f64)),
            Entry::Summary(name, v) => summary_samples(&mut out, name, "", v),
            Entry::SummarySet(name, _, keyed) => {
                for (key, v) in keyed {
                    let label = format!("key=\"{}\",", escape_label(key));
                    summary_samples(&mut out, name, &label, v);
                }
            }
        }
    }
    out
}

fn summary_samples(out: &mut Vec<(String, String, f64)>, name: &str, label: &str, v: &SummaryView) {
    for &(q, value) in &v.prom_quantiles {
        out.push((
            name.to_string(),
            format!("{{{label}quantile=\"{}\",}}", java_double(q)),
            value,
        ));
    }
    let labels = if label.is_empty() {
        String::new()
    } else {
        format!("{{{label}}}")
    };
    out.push((
        format!("{name}_count"),
        labels.clone(),
        v.tally.count as f64,
    ));
    out.push((format!("{name}_sum"), labels, v.tally.sum as f64));
}

fn number(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        _ => 0.0,
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A double as Prometheus' Go-style text wants it.
fn prom_double(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        java_double(v)
    }
}

/// The Prometheus text exposition format 0.0.4 of `entries`, plus the process metrics
/// Prometheus clients export (ZooKeeper's `exportJvmInfo`; the JVM ones have no
/// counterpart).
pub fn prometheus_text(entries: &[Entry]) -> String {
    let mut out = String::with_capacity(16 * 1024);
    for e in entries {
        let (name, kind) = match e {
            Entry::Gauge(n, _) => (*n, "gauge"),
            Entry::Counter(n, _) => (*n, "counter"),
            Entry::Summary(n, _) | Entry::SummarySet(n, _, _) => (*n, "summary"),
        };
        let _ = writeln!(out, "# HELP {name} {name}\n# TYPE {name} {kind}");
        for (sample, labels, v) in prometheus_samples(std::slice::from_ref(e)) {
            let _ = writeln!(out, "{sample}{labels} {}", prom_double(v));
        }
    }
    for (name, kind, help, v) in process_metrics() {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
            prom_double(v)
        );
    }
    out
}

/// Standard `process_*` metrics from /proc (empty where /proc is missing).
fn process_metrics() -> Vec<(&'static str, &'static str, &'static str, f64)> {
    let mut out = Vec::new();
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return out;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return out;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    // Linux reports times in clock ticks (USER_HZ, 100 on every platform zooid targets) and
    // the resident set in pages (4 KiB there).
    let ticks = 100.0;
    let page = 4096.0;
    if let (Some(ut), Some(st)) = (field(14), field(15)) {
        out.push((
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            (ut + st) / ticks,
        ));
    }
    if let (Some(start), Some(boot)) = (field(22), boot_time_s()) {
        out.push((
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            boot + start / ticks,
        ));
    }
    out.push((
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        open_fds() as f64,
    ));
    out.push((
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        max_fds() as f64,
    ));
    if let Some(v) = field(23) {
        out.push((
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            v,
        ));
    }
    if let Some(v) = field(24) {
        out.push((
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            v * page,
        ));
    }
    out
}

fn boot_time_s() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The process' limit on open file descriptors.
pub fn max_fds() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_as_dropwizard() {
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(uniform_quantile(&v, 0.5), 5.5);
        assert_eq!(uniform_quantile(&v, 0.999), 10.0);
        assert_eq!(uniform_quantile(&[], 0.5), 0.0);
        assert_eq!(uniform_quantile(&[7], 0.01), 7.0);
    }

    #[test]
    fn averages_round_to_four_decimals() {
        assert_eq!(avg4(24, 7), 3.4286);
        assert_eq!(avg4(0, 0), 0.0);
    }

    #[test]
    fn every_name_is_listed_once() {
        let mut names: Vec<&str> = METRICS.iter().map(|(n, _)| *n).collect();
        names.extend(SUMMARY_SETS.iter().map(|(n, _)| *n));
        let len = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), len);
    }

    #[test]
    fn frames_are_counted_by_kind() {
        let mut r = Registry::new(false);
        let mut reply = vec![0, 0, 0, 16];
        reply.extend_from_slice(&[0; 16]);
        r.frame_sent(&reply);
        let mut note = vec![0, 0, 0, 20];
        note.extend_from_slice(&(-1i32).to_be_bytes());
        note.extend_from_slice(&[0; 16]);
        r.frame_sent(&note);
        assert_eq!(r.counter("response_bytes"), 16);
        assert_eq!(r.counter("watch_bytes"), 20);
        assert_eq!(
            (
                r.response_sizes.last,
                r.response_sizes.min,
                r.response_sizes.max
            ),
            (20, 16, 20)
        );
        r.reset();
        assert_eq!(r.counter("response_bytes"), 0);
    }

    #[test]
    fn summaries_spell_out_like_the_default_provider() {
        let mut r = Registry::new(false);
        r.observe("fsynctime", 3);
        r.observe("fsynctime", 5);
        let view = r.summaries["fsynctime"].view(false);
        let pairs = mntr_pairs(&[Entry::Summary("fsynctime", view)], false);
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "avg_fsynctime",
                "min_fsynctime",
                "max_fsynctime",
                "cnt_fsynctime",
                "sum_fsynctime"
            ]
        );
        assert_eq!(pairs[0].1, Value::Float(4.0));
        let text = prometheus_text(&[Entry::Summary(
            "fsynctime",
            r.summaries["fsynctime"].view(false),
        )]);
        assert!(
            text.contains("fsynctime{quantile=\"0.5\",} 3.0\n"),
            "{text}"
        );
        assert!(
            text.contains("fsynctime_count 2.0\nfsynctime_sum 8.0\n"),
            "{text}"
        );
    }
}
