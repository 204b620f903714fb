//! The operator surface over loopback: the AdminServer's `/commands` JSON, `/metrics` in
//! Prometheus' text format, and four-letter words answered from the same command table.
//! Every server here binds 127.0.0.1 with port 0 and is stopped at the end of its test.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use common::*;
use serde_json::Value as Json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PROMETHEUS: &str = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";

/// A server with the AdminServer and `/metrics` on loopback ephemeral ports.
struct Operated {
    handle: Option<zooid_server::ServerHandle>,
    client_addr: SocketAddr,
    admin: SocketAddr,
    metrics: Option<SocketAddr>,
    _dir: tempfile::TempDir,
}

impl Operated {
    async fn start(tweak: impl FnOnce(&mut zooid_config::ServerConfig)) -> Operated {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = TestServer::config(dir.path());
        cfg.admin_enable_server = true;
        cfg.admin_server_address = "127.0.0.1".parse().unwrap();
        cfg.admin_server_port = 0;
        cfg.metrics_provider_class = Some(PROMETHEUS.into());
        cfg.metrics_provider_http_port = Some(0);
        cfg.metrics_provider_http_host = Some("127.0.0.1".parse().unwrap());
        tweak(&mut cfg);
        let handle = zooid_server::start(&cfg).await.expect("server starts");
        Operated {
            client_addr: handle.client_addr,
            admin: handle.admin_addr.expect("admin listener"),
            metrics: handle.metrics_addr,
            handle: Some(handle),
            _dir: dir,
        }
    }

    async fn client(&self) -> zk::Client {
        within!(zk::Client::connector().connect(&self.client_addr.to_string()))
            .expect("zookeeper-client connects")
    }

    async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            within!(h.stop());
        }
    }
}

/// An HTTP response: status, headers (lowercase names), body.
struct Http {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

async fn request(addr: SocketAddr, method: &str, path: &str) -> Http {
    let mut s = within!(TcpStream::connect(addr)).expect("connect");
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: zooid-test\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    within!(s.read_to_end(&mut raw)).unwrap();
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers: BTreeMap<String, String> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header line");
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    if let Some(len) = headers.get("content-length").filter(|_| method != "HEAD") {
        assert_eq!(len.parse::<usize>().unwrap(), body.len(), "Content-Length");
    }
    Http {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Http {
    request(addr, "GET", path).await
}

/// GET `/commands/<name>`: 200, JSON, pretty-printed as Jackson does; the parsed object.
async fn command(admin: SocketAddr, name: &str) -> Json {
    let r = get(admin, &format!("/commands/{name}")).await;
    assert_eq!(r.status, 200, "{name}: {}", r.body);
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(
        r.body.starts_with("{\n  \"") && r.body.ends_with("\n}"),
        "{name} is pretty-printed: {:?}",
        r.body
    );
    let v: Json =
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{name}: {e}: {}", r.body));
    assert!(v.is_object(), "{name}");
    v
}

fn keys(v: &Json) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// A client session with some state: nodes, an ephemeral, two data watches (kept while the
/// watchers live).
async fn populate(server: &Operated) -> (zk::Client, Vec<zk::OneshotWatcher>) {
    let c = server.client().await;
    within!(c.create("/app", b"hello", &PERSISTENT)).unwrap();
    within!(c.create("/app/n1", b"x", &PERSISTENT)).unwrap();
    within!(c.create("/app/eph", b"", &EPHEMERAL)).unwrap();
    let (_, _, w1) = within!(c.get_and_watch_data("/app")).unwrap();
    let (_, w2) = within!(c.check_and_watch_stat("/nothere")).unwrap();
    (c, vec![w1, w2])
}

/// One parsed Prometheus sample line.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn valid_metric_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parse the text format 0.0.4, checking every line: `# HELP`/`# TYPE` comments with valid
/// names and types, samples `name{labels} value` of a family typed before them.
fn parse_prometheus(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    assert!(text.ends_with('\n'), "ends with a newline");
    for line in text.lines() {
        assert!(!line.is_empty(), "no blank lines");
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().expect("a metric name");
            assert!(valid_metric_name(name), "{line}");
            match kind {
                "TYPE" => {
                    let t = parts.next().expect("a type");
                    assert!(
                        ["counter", "gauge", "summary", "histogram", "untyped"].contains(&t),
                        "{line}"
                    );
                    assert!(
                        types.insert(name.to_owned(), t.to_owned()).is_none(),
                        "one TYPE per family: {line}"
                    );
                }
                "HELP" => {}
                _ => panic!("unknown comment: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("a number: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("labels close");
                let labels = body
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').expect("label=value");
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .expect("quoted");
                        assert!(valid_metric_name(k), "{line}");
                        (k.to_owned(), v.to_owned())
                    })
                    .collect();
                (name, labels)
            }
        };
        assert!(valid_metric_name(name), "{line}");
        let family = ["_count", "_sum"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "summary"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "TYPE before sample: {line}");
        if types[family] != "summary" {
            assert!(!value.is_nan(), "{line}");
        }
        if types[family] == "counter" {
            assert!(value >= 0.0, "{line}");
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    (types, samples)
}

fn sample(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.is_empty())
        .unwrap_or_else(|| panic!("sample {name}"))
        .value
}

#[tokio::test]
async fn commands_answer_json_as_zookeepers_admin_server() {
    // ZooKeeper's default metrics provider: mntr spells summaries out (avg_, min_, ...).
    let server = Operated::start(|cfg| cfg.metrics_provider_class = None).await;
    let _c = populate(&server).await;

    // The index lists every primary name, sorted, as links.
    let index = get(server.admin, "/commands").await;
    assert_eq!(index.status, 200);
    let names: Vec<&str> = index
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("<a href=\"/commands/"))
        .map(|l| l.split('"').next().unwrap())
        .collect();
    assert_eq!(names.len(), 26, "{}", index.body);
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    for n in [
        "server_stats",
        "stats",
        "monitor",
        "ruok",
        "connections",
        "watch_summary",
        "dump",
    ] {
        assert!(names.contains(&n), "{n}");
    }

    let ruok = get(server.admin, "/commands/ruok").await;
    assert_eq!(
        ruok.body,
        "{\n  \"command\" : \"ruok\",\n  \"error\" : null\n}"
    );

    let srvr = command(server.admin, "srvr").await;
    assert_eq!(
        srvr["command"], "server_stats",
        "an alias runs the primary command"
    );
    assert_eq!(
        keys(&srvr),
        set(&[
            "version",
            "read_only",
            "server_stats",
            "client_response",
            "node_count",
            "command",
            "error"
        ])
    );
    let stats = &srvr["server_stats"];
    for k in [
        "packets_sent",
        "packets_received",
        "min_latency",
        "avg_latency",
        "max_latency",
        "outstanding_requests",
        "last_processed_zxid",
        "data_dir_size",
        "log_dir_size",
        "server_state",
        "num_alive_client_connections",
        "uptime",
        "client_response_stats",
        "auth_failed_count",
    ] {
        assert!(stats.get(k).is_some(), "server_stats.{k}: {stats}");
    }
    assert_eq!(stats["server_state"], "standalone");
    assert_eq!(stats["num_alive_client_connections"], 1);
    assert!(
        stats["data_dir_size"].as_u64().unwrap() > 0,
        "a snapshot is on disk"
    );
    assert!(srvr["version"].as_str().unwrap().starts_with("3.8."));
    // /, /zookeeper, /zookeeper/quota, /zookeeper/config, /app, /app/n1, /app/eph, and the
    // root counted twice as ZooKeeper does.
    assert_eq!(srvr["node_count"], 8);
    let text = four_letter_word(server.client_addr, "srvr").await;
    assert!(text.contains("\nNode count: 8\n"), "{text}");
    assert!(
        text.contains(&format!(
            "\nZxid: 0x{:x}\n",
            stats["last_processed_zxid"].as_i64().unwrap()
        )),
        "{text}"
    );

    let stat = command(server.admin, "stat").await;
    assert_eq!(stat["command"], "stats");
    assert_eq!(stat["secure_connections"], serde_json::json!([]));
    let conns = stat["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "the client session's connection: {stat}");
    assert_eq!(
        keys(&conns[0]),
        set(&[
            "remote_socket_address",
            "interest_ops",
            "outstanding_requests",
            "packets_received",
            "packets_sent"
        ])
    );
    let cons = command(server.admin, "cons").await;
    let full = &cons["connections"][0];
    assert!(full["session_id"].as_i64().unwrap() != 0, "{cons}");
    for k in [
        "last_operation",
        "established",
        "session_timeout",
        "last_zxid",
        "last_latency",
        "avg_latency",
    ] {
        assert!(full.get(k).is_some(), "connections[0].{k}");
    }

    let mntr = command(server.admin, "mntr").await;
    assert_eq!(mntr["command"], "monitor");
    assert_eq!(mntr["server_state"], "standalone");
    assert_eq!(mntr["znode_count"], 8);
    assert_eq!(mntr["ephemerals_count"], 1);
    assert_eq!(mntr["global_sessions"], 1);
    assert_eq!(mntr["watch_count"], 2);
    assert!(mntr["avg_latency"].is_f64());
    for k in [
        "cnt_fsynctime",
        "p99_readlatency",
        "sum_updatelatency",
        "bytes_received_count",
        "avg_app_write_per_namespace",
    ] {
        assert!(mntr.get(k).is_some(), "mntr {k}");
    }
    assert!(mntr["cnt_fsynctime"].as_u64().unwrap() >= 1);
    // The word prints the same keys, zk_-prefixed, in the same order.
    let word = four_letter_word(server.client_addr, "mntr").await;
    let word_keys: Vec<&str> = word
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    let json_keys: Vec<String> = {
        let body = get(server.admin, "/commands/mntr").await.body;
        body.lines()
            .filter_map(|l| l.strip_prefix("  \""))
            .map(|l| format!("zk_{}", l.split('"').next().unwrap()))
            .filter(|k| k != "zk_command" && k != "zk_error")
            .collect()
    };
    assert_eq!(word_keys, json_keys);

    let wchs = command(server.admin, "wchs").await;
    assert_eq!(wchs["num_connections"], 1);
    assert_eq!(wchs["num_paths"], 2);
    assert_eq!(wchs["num_total_watches"], 2);
    let wchp = command(server.admin, "wchp").await;
    assert_eq!(
        keys(&wchp["path_to_session_ids"]),
        set(&["/app", "/nothere"])
    );
    let dump = command(server.admin, "dump").await;
    let eph = dump["session_id_to_ephemeral_paths"].as_object().unwrap();
    assert_eq!(
        eph.values().next().unwrap(),
        &serde_json::json!(["/app/eph"])
    );
    let conf = command(server.admin, "configuration").await;
    assert_eq!(conf["client_port"], server.client_addr.port());
    assert!(conf["data_dir"].as_str().unwrap().ends_with("version-2"));

    // The trace mask: set over HTTP, read back over HTTP and as a word.
    assert_eq!(command(server.admin, "gtmk").await["tracemask"], 306);
    let set_mask = command(server.admin, "stmk?traceMask=42").await;
    assert_eq!(set_mask["tracemask"], 42);
    assert_eq!(four_letter_word(server.client_addr, "gtmk").await, "42");
    let missing = command(server.admin, "stmk").await;
    assert_eq!(
        missing["error"],
        "setTraceMask requires long traceMask argument"
    );

    // Unknown names answer as ZooKeeper's AdminServer does: 200 and an error in the JSON.
    let nope = command(server.admin, "nope").await;
    assert_eq!(nope["command"], "nope");
    assert_eq!(nope["error"], "Unknown command: nope");
    assert_eq!(get(server.admin, "/nope").await.status, 404);
    assert_eq!(get(server.admin, "/metrics").await.status, 404);
    assert_eq!(
        request(server.admin, "POST", "/commands/ruok").await.status,
        405
    );
    let head = request(server.admin, "HEAD", "/commands/ruok").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));

    // An oversized request head is refused, not buffered.
    let mut s = within!(TcpStream::connect(server.admin)).unwrap();
    let huge = format!(
        "GET /commands/ruok HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let _ = s.write_all(huge.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = within!(s.read_to_end(&mut raw));
    assert!(String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 431 "));

    // Every command answers with its primary name and no error (leader: none standalone; the resets last).
    for name in &names {
        let v = command(server.admin, name).await;
        assert_eq!(v["command"], *name, "{name}");
        if *name != "leader" && *name != "set_trace_mask" {
            assert_eq!(v["error"], Json::Null, "{name}: {v}");
        }
    }

    server.stop().await;
}

#[tokio::test]
async fn metrics_are_prometheus_text_under_zookeepers_names() {
    let server = Operated::start(|_| {}).await;
    let metrics = server.metrics.expect("metrics listener");
    let (c, _watches) = populate(&server).await;
    within!(c.set_data("/app/n1", b"again", None)).unwrap();
    within!(c.get_data("/app/n1")).unwrap();

    let r = get(metrics, "/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let (types, samples) = parse_prometheus(&r.body);
    for (name, t) in [
        ("znode_count", "gauge"),
        ("watch_count", "gauge"),
        ("ephemerals_count", "gauge"),
        ("approximate_data_size", "gauge"),
        ("num_alive_connections", "gauge"),
        ("outstanding_requests", "gauge"),
        ("global_sessions", "gauge"),
        ("avg_latency", "gauge"),
        ("min_latency", "gauge"),
        ("max_latency", "gauge"),
        ("packets_received", "gauge"),
        ("packets_sent", "gauge"),
        ("uptime", "gauge"),
        ("fsynctime", "summary"),
        ("snapshottime", "summary"),
        ("readlatency", "summary"),
        ("updatelatency", "summary"),
        ("bytes_received_count", "counter"),
        ("response_bytes", "counter"),
        ("digest_mismatches_count", "counter"),
        ("write_per_namespace", "summary"),
        ("election_time", "summary"),
        ("process_open_fds", "gauge"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(t), "{name}");
    }
    let srvr = command(server.admin, "srvr").await;
    assert_eq!(
        sample(&samples, "znode_count"),
        srvr["node_count"].as_f64().unwrap()
    );
    assert_eq!(sample(&samples, "ephemerals_count"), 1.0);
    assert_eq!(sample(&samples, "global_sessions"), 1.0);
    assert_eq!(sample(&samples, "num_alive_connections"), 1.0);
    assert_eq!(sample(&samples, "outstanding_requests"), 0.0);
    assert_eq!(sample(&samples, "watch_count"), 2.0);
    // Four writes plus the session: at least one group commit, each answered write timed.
    assert!(sample(&samples, "fsynctime_count") >= 1.0);
    assert!(sample(&samples, "updatelatency_count") >= 4.0);
    assert!(sample(&samples, "readlatency_count") >= 3.0);
    assert!(sample(&samples, "bytes_received_count") > 0.0);
    assert!(sample(&samples, "response_bytes") > 0.0);
    assert!(sample(&samples, "approximate_data_size") > 0.0);
    let quantiles: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == "updatelatency" && s.labels.iter().any(|(k, _)| k == "quantile"))
        .collect();
    assert_eq!(
        quantiles.len(),
        3,
        "0.5, 0.9 and 0.99 for a detailed summary"
    );
    let app_writes = samples
        .iter()
        .find(|s| {
            s.name == "write_per_namespace_count"
                && s.labels == [("key".to_owned(), "app".to_owned())]
        })
        .expect("writes under /app counted by namespace");
    assert!(app_writes.value >= 4.0);

    // srst leaves Prometheus metrics alone (ZooKeeper's provider does not reset).
    assert_eq!(
        four_letter_word(server.client_addr, "srst").await,
        "Server stats reset.\n"
    );
    let (_, after) = parse_prometheus(&get(metrics, "/metrics").await.body);
    assert!(sample(&after, "fsynctime_count") >= 1.0);

    server.stop().await;
}

#[tokio::test]
async fn four_letter_words_come_from_the_same_table() {
    let server = Operated::start(|cfg| cfg.metrics_provider_class = None).await;
    assert!(server.metrics.is_none());
    let _c = populate(&server).await;

    let srvr = four_letter_word(server.client_addr, "srvr").await;
    let lines: Vec<&str> = srvr.lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(
        lines,
        [
            "Zookeeper version",
            "Latency min/avg/max",
            "Received",
            "Sent",
            "Connections",
            "Outstanding",
            "Zxid",
            "Mode",
            "Node count"
        ]
    );
    // The asking connection counts, as in ZooKeeper.
    assert!(srvr.contains("\nConnections: 2\n"), "{srvr}");

    let stat = four_letter_word(server.client_addr, "stat").await;
    let clients: Vec<&str> = stat
        .split("Clients:\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .collect();
    assert_eq!(clients.len(), 2, "{stat}");
    assert!(
        clients[0].starts_with(" /127.0.0.1:")
            && clients[0].ends_with("[0](queued=0,recved=1,sent=0)"),
        "{stat}"
    );
    assert!(clients[1].contains("[1](queued=0,recved="), "{stat}");

    let cons = four_letter_word(server.client_addr, "cons").await;
    assert!(cons.ends_with(")\n\n"), "{cons:?}");
    assert!(
        cons.contains(",sid=0x") && cons.contains(",lop=") && cons.contains(",maxlat="),
        "{cons}"
    );

    let conf = four_letter_word(server.client_addr, "conf").await;
    let conf_keys: Vec<&str> = conf.lines().map(|l| l.split('=').next().unwrap()).collect();
    assert_eq!(
        conf_keys,
        [
            "clientPort",
            "secureClientPort",
            "dataDir",
            "dataDirSize",
            "dataLogDir",
            "dataLogSize",
            "tickTime",
            "maxClientCnxns",
            "minSessionTimeout",
            "maxSessionTimeout",
            "clientPortListenBacklog",
            "serverId"
        ]
    );
    let dirs = four_letter_word(server.client_addr, "dirs").await;
    assert!(
        dirs.starts_with("datadir_size: ") && dirs.contains("\nlogdir_size: "),
        "{dirs}"
    );
    assert!(
        !dirs.starts_with("datadir_size: 0\n"),
        "sizes are measured: {dirs}"
    );

    let dump = four_letter_word(server.client_addr, "dump").await;
    assert!(
        dump.starts_with("SessionTracker dump:\nSession Sets (1)/(1):\n1 expire at "),
        "{dump}"
    );
    assert!(dump.contains(" UTC 20"), "{dump}");
    assert!(
        dump.contains("\nSessions with Ephemerals (1):\n0x") && dump.contains(":\n\t/app/eph\n"),
        "{dump}"
    );
    assert!(
        dump.contains("Connections dump:\nConnections Sets ("),
        "{dump}"
    );
    assert!(
        dump.contains("sessionId: 0x0\n"),
        "the asking connection: {dump}"
    );

    assert_eq!(
        four_letter_word(server.client_addr, "wchs").await,
        "1 connections watching 2 paths\nTotal watches:2\n"
    );
    assert_eq!(four_letter_word(server.client_addr, "isro").await, "rw");
    assert_eq!(four_letter_word(server.client_addr, "ruok").await, "imok");
    assert_eq!(four_letter_word(server.client_addr, "gtmk").await, "306");
    let envi = four_letter_word(server.client_addr, "envi").await;
    assert!(
        envi.starts_with("Environment:\nzookeeper.version=3.8."),
        "{envi}"
    );
    assert!(
        envi.ends_with("os.memory.total=") || envi.contains("\nos.memory.total="),
        "{envi}"
    );

    // stmk takes its mask as 8 big-endian bytes and prints it; without them, nothing.
    let mut s = within!(TcpStream::connect(server.client_addr)).unwrap();
    let mut msg = b"stmk".to_vec();
    msg.extend_from_slice(&1234i64.to_be_bytes());
    s.write_all(&msg).await.unwrap();
    assert_eq!(String::from_utf8(until_closed!(&mut s)).unwrap(), "1234");
    assert_eq!(four_letter_word(server.client_addr, "gtmk").await, "1234");

    // `hash`: the tree digest of every 128th zxid, as "<zxid hex>: <digest>".
    assert_eq!(four_letter_word(server.client_addr, "hash").await, "");
    let c = server.client().await;
    for i in 0..130 {
        within!(c.create(&format!("/h{i}"), b"", &PERSISTENT)).unwrap();
    }
    let hash = four_letter_word(server.client_addr, "hash").await;
    let lines: Vec<&str> = hash.lines().collect();
    assert_eq!(lines.len(), 1, "{hash}");
    assert!(lines[0].starts_with("80: "), "{hash}");
    let digests = command(server.admin, "hash").await;
    assert_eq!(digests["digests"][0]["zxid"], 128);
    assert_eq!(
        digests["digests"][0]["digest"]
            .as_i64()
            .unwrap()
            .to_string(),
        lines[0][4..]
    );

    // The HTTP view of the same commands agrees with the words.
    let wchs = command(server.admin, "watch_summary").await;
    assert_eq!(wchs["num_total_watches"], 2);
    let mntr_http = command(server.admin, "monitor").await;
    assert!(
        mntr_http.get("avg_fsynctime").is_some(),
        "the default provider's spelling"
    );

    server.stop().await;
}

#[tokio::test]
async fn the_whitelist_refuses_words_and_the_admin_server_can_be_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestServer::config(dir.path());
    cfg.four_letter_words = vec!["srvr".into()];
    cfg.admin_enable_server = false;
    // A port without ZooKeeper's Prometheus provider opens nothing, as in ZooKeeper.
    cfg.metrics_provider_http_port = Some(0);
    let handle = zooid_server::start(&cfg).await.unwrap();
    assert!(handle.admin_addr.is_none() && handle.metrics_addr.is_none());
    let addr = handle.client_addr;
    assert_eq!(
        four_letter_word(addr, "stat").await,
        "stat is not executed because it is not in the whitelist.\n"
    );
    assert_eq!(
        four_letter_word(addr, "stmk").await,
        "stmk is not executed because it is not in the whitelist.\n"
    );
    let srvr = four_letter_word(addr, "srvr").await;
    // Three words so far, each a packet ZooKeeper counts (this one included), and two
    // answers sent (this one goes after it is written).
    assert!(srvr.contains("\nReceived: 3\nSent: 2\n"), "{srvr}");
    within!(handle.stop());
}
