//! Printing a [`Report`]: a short text block for people, JSON for scripts.

use serde_json::json;

use super::{Latency, Report, Usage};

fn ms(us: f64) -> String {
    let ms = us / 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.3}")
    }
}

fn latency_line(l: &Latency) -> String {
    format!(
        "p50 {} ms  p99 {} ms  p99.9 {} ms  max {} ms  mean {} ms",
        ms(l.p50_us),
        ms(l.p99_us),
        ms(l.p999_us),
        ms(l.max_us),
        ms(l.mean_us)
    )
}

fn mib(kb: u64) -> String {
    format!("{:.1}", kb as f64 / 1024.0)
}

fn usage_line(u: &Usage) -> String {
    format!(
        "RSS {} -> {} MiB (max {}), CPU {:.1}% of one core, {} threads",
        mib(u.rss_start_kb),
        mib(u.rss_end_kb),
        mib(u.rss_max_kb),
        u.cpu_percent,
        u.threads
    )
}

pub fn to_text(r: &Report) -> String {
    let mut s = format!(
        "zooid bench: {} on {}, {} connection(s) x {} in flight, {}-byte values\n",
        r.workload.name(),
        r.server,
        r.connections,
        r.inflight,
        r.value_size
    );
    s += &format!(
        "  ops        {} in {:.2} s = {:.0} ops/s, {} errors\n",
        r.ops,
        r.elapsed.as_secs_f64(),
        r.ops_per_sec,
        r.errors
    );
    s += &format!("  latency    {}\n", latency_line(&r.latency));
    for op in &r.per_op {
        s += &format!(
            "  {:<10} {} ops, {} errors: {}\n",
            op.op.name(),
            op.count,
            op.errors,
            latency_line(&op.latency)
        );
    }
    if let Some(u) = &r.server_usage {
        s += &format!("  server     pid {}: {}\n", u.pid, usage_line(u));
    }
    s += &format!(
        "  generator  {} ({} cores here)\n",
        usage_line(&r.generator),
        r.cores
    );
    s += &format!(
        "  znodes     {} created in setup, {} removed in cleanup\n",
        r.setup_znodes, r.cleaned_znodes
    );
    s
}

fn latency_json(l: &Latency) -> serde_json::Value {
    json!({
        "count": l.count,
        "min_us": l.min_us,
        "mean_us": l.mean_us,
        "p50_us": l.p50_us,
        "p99_us": l.p99_us,
        "p999_us": l.p999_us,
        "max_us": l.max_us,
    })
}

fn usage_json(u: &Usage) -> serde_json::Value {
    json!({
        "pid": u.pid,
        "rss_start_kb": u.rss_start_kb,
        "rss_end_kb": u.rss_end_kb,
        "rss_max_kb": u.rss_max_kb,
        "cpu_percent": u.cpu_percent,
        "threads": u.threads,
    })
}

pub fn to_json(r: &Report) -> String {
    let per_op: Vec<_> = r
        .per_op
        .iter()
        .map(|o| {
            json!({
                "op": o.op.name(),
                "count": o.count,
                "errors": o.errors,
                "latency": latency_json(&o.latency),
            })
        })
        .collect();
    json!({
        "workload": r.workload.name(),
        "server": r.server.to_string(),
        "connections": r.connections,
        "inflight": r.inflight,
        "value_size": r.value_size,
        "elapsed_s": r.elapsed.as_secs_f64(),
        "ops": r.ops,
        "errors": r.errors,
        "ops_per_sec": r.ops_per_sec,
        "latency": latency_json(&r.latency),
        "per_op": per_op,
        "server_usage": r.server_usage.as_ref().map(usage_json),
        "generator": usage_json(&r.generator),
        "cores": r.cores,
        "setup_znodes": r.setup_znodes,
        "cleaned_znodes": r.cleaned_znodes,
    })
    .to_string()
}
