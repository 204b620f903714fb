//! Four-letter words on the client port (`ruok`, `srvr`, `stat`, `envi`, `isro`, `mntr`, ...),
//! answered from the core's state in ZooKeeper 3.8's text formats so scripts that parse them
//! keep working.

use std::fmt::Write as _;

use zooid_node::Core;

/// The version string we report: the ZooKeeper release whose behaviour we match, then ours.
pub const ZK_COMPAT_VERSION: &str = "3.8.4";

pub fn version_string() -> String {
    format!(
        "{ZK_COMPAT_VERSION}-zooid-{}, built on {}",
        env!("CARGO_PKG_VERSION"),
        option_env!("ZOOID_BUILD_DATE").unwrap_or("unknown")
    )
}

/// Facts about this server that the words report.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub client_port: u16,
    pub data_dir: String,
    pub data_log_dir: String,
    pub tick_ms: u32,
    pub max_client_cnxns: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    pub server_id: u64,
    pub client_addr: String,
}

const WORDS: [&str; 18] = [
    "conf", "cons", "crst", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr", "stat", "wchs",
    "wchc", "wchp", "mntr", "isro", "dirs", "hash",
];

/// The four-letter word spelled by the first four bytes of a connection, if any.
pub fn word_of(first: [u8; 4]) -> Option<&'static str> {
    WORDS.iter().copied().find(|w| w.as_bytes() == first)
}

fn sid(s: i64) -> String {
    format!("0x{:x}", s as u64)
}

/// The text a word answers with.
pub fn answer(word: &str, core: &mut Core, info: &ServerInfo, now_ms: i64) -> String {
    match word {
        "ruok" => "imok".to_owned(),
        "isro" => "rw".to_owned(),
        "srvr" => server_stats(core, false, now_ms),
        "stat" => server_stats(core, true, now_ms),
        "envi" => environment(info),
        "mntr" => monitor(core, info),
        "conf" => configuration(info),
        "cons" => connections(core, now_ms) + "\n",
        "wchs" => {
            let (sessions, paths, total) = core.tree().watches.summary();
            format!("{sessions} connections watching {paths} paths\nTotal watches:{total}\n")
        }
        "wchc" => {
            let mut out = String::new();
            for (s, paths) in core.tree().watches.by_session() {
                let _ = writeln!(out, "{}", sid(s));
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
            out + "\n"
        }
        "wchp" => {
            let mut out = String::new();
            for (p, sessions) in core.tree().watches.by_path() {
                let _ = writeln!(out, "{p}");
                for s in sessions {
                    let _ = writeln!(out, "\t{}", sid(s));
                }
            }
            out + "\n"
        }
        "dump" => {
            let mut out = String::from("SessionTracker dump:\nSession Sets (");
            let expiry = core.session_expiry();
            let _ = writeln!(out, "{})/({}):", expiry.len(), expiry.len());
            for (s, deadline) in &expiry {
                let _ = writeln!(out, "0 expire at {deadline}:\n\t{}", sid(*s));
            }
            out.push_str("ephemeral nodes dump:\n");
            let eph: Vec<(i64, Vec<String>)> = core.tree().ephemerals().collect();
            let _ = writeln!(out, "Sessions with Ephemerals ({}):", eph.len());
            for (s, paths) in eph {
                let _ = writeln!(out, "{}:", sid(s));
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
            out.push_str("Connections dump:\nConnections Sets (0)/(0):\n");
            out
        }
        "dirs" => "datadir_size: 0\nlogdir_size: 0\n".to_owned(),
        "crst" => {
            core.reset_connection_stats();
            "Connection stats reset.\n".to_owned()
        }
        "srst" => {
            core.reset_server_stats();
            "Server stats reset.\n".to_owned()
        }
        "hash" => format!("{}\t{}\n", core.last_zxid(), core.tree().digest()),
        _ => String::new(),
    }
}

fn server_stats(core: &Core, with_clients: bool, now_ms: i64) -> String {
    let s = &core.stats;
    let avg = average_latency(s);
    let mut out = format!("Zookeeper version: {}\n", version_string());
    if with_clients {
        out.push_str("Clients:\n");
        out.push_str(&connections(core, now_ms));
        out.push('\n');
    }
    let _ = write!(
        out,
        "Latency min/avg/max: {}/{}/{}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: {}\nZxid: 0x{:x}\nMode: standalone\nNode count: {}\n",
        s.latency_min_ms,
        avg,
        s.latency_max_ms,
        s.packets_received,
        s.packets_sent,
        core.connection_count(),
        core.outstanding(),
        core.last_zxid(),
        core.tree().node_count() + 1,
    );
    out
}

/// ZooKeeper prints the average as a Java double rounded to 4 decimals ("0.0", "3.4286").
fn average_latency(s: &zooid_node::ServerStats) -> String {
    if s.latency_count == 0 {
        return "0.0".to_owned();
    }
    let avg = (s.latency_total_ms as f64 / s.latency_count as f64 * 10000.0).round() / 10000.0;
    if avg.fract() == 0.0 {
        format!("{avg:.1}")
    } else {
        format!("{avg}")
    }
}

/// One line per connection, as `cons` and `stat` print them.
fn connections(core: &Core, _now_ms: i64) -> String {
    let mut out = String::new();
    for (_, addr, session, timeout, st, queued) in core.connections() {
        let _ = write!(
            out,
            " /{addr}[1](queued={queued},recved={},sent={}",
            st.received, st.sent
        );
        if let Some(s) = session {
            let _ = write!(
                out,
                ",sid={},lop={},est={},to={},lcxid=0x{:x},lzxid=0x{:x}",
                sid(s),
                if st.last_op.is_empty() {
                    "NA"
                } else {
                    st.last_op
                },
                st.established_ms,
                timeout,
                st.last_cxid,
                st.last_zxid
            );
        }
        out.push_str(")\n");
    }
    out
}

fn environment(info: &ServerInfo) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!(
        "Environment:\nzookeeper.version={}\nhost.name={host}\njava.version=none (zooid is native)\njava.vendor=zooid\njava.home=\njava.class.path=\njava.library.path=\njava.io.tmpdir={}\njava.compiler=<NA>\nos.name={}\nos.arch={}\nos.version=\nuser.name={}\nuser.home={}\nuser.dir={cwd}\nos.memory.free=0MB\nos.memory.max=0MB\nos.memory.total=0MB\nzooid.data.dir={}\n",
        version_string(),
        std::env::temp_dir().display(),
        std::env::consts::OS,
        std::env::consts::ARCH,
        std::env::var("USER").unwrap_or_default(),
        std::env::var("HOME").unwrap_or_default(),
        info.data_dir,
    )
}

fn configuration(info: &ServerInfo) -> String {
    format!(
        "clientPort={}\nsecureClientPort=-1\ndataDir={}/version-2\ndataDirSize=0\ndataLogDir={}/version-2\ndataLogSize=0\ntickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\nclientPortListenBacklog=-1\nserverId={}\n",
        info.client_port,
        info.data_dir,
        info.data_log_dir,
        info.tick_ms,
        info.max_client_cnxns,
        info.min_session_timeout_ms,
        info.max_session_timeout_ms,
        info.server_id,
    )
}

fn monitor(core: &Core, _info: &ServerInfo) -> String {
    let s = &core.stats;
    let tree = core.tree();
    let watches = tree.watches.total();
    let rows: Vec<(&str, String)> = vec![
        ("zk_version", version_string()),
        ("zk_server_state", "standalone".into()),
        ("zk_avg_latency", average_latency(s)),
        ("zk_max_latency", s.latency_max_ms.to_string()),
        ("zk_min_latency", s.latency_min_ms.to_string()),
        ("zk_packets_received", s.packets_received.to_string()),
        ("zk_packets_sent", s.packets_sent.to_string()),
        (
            "zk_num_alive_connections",
            core.connection_count().to_string(),
        ),
        ("zk_outstanding_requests", core.outstanding().to_string()),
        ("zk_znode_count", (tree.node_count() + 1).to_string()),
        ("zk_watch_count", watches.to_string()),
        ("zk_ephemerals_count", tree.ephemeral_count().to_string()),
        (
            "zk_approximate_data_size",
            tree.approximate_data_size().to_string(),
        ),
        ("zk_open_file_descriptor_count", open_fds().to_string()),
        ("zk_max_file_descriptor_count", max_fds().to_string()),
        ("zk_global_sessions", core.session_count().to_string()),
        ("zk_local_sessions", "0".into()),
        ("zk_last_proposal_size", "-1".into()),
        ("zk_max_proposal_size", "-1".into()),
        ("zk_min_proposal_size", "-1".into()),
        ("zk_digest_mismatches_count", "0".into()),
    ];
    let mut out = String::new();
    for (k, v) in rows {
        let _ = writeln!(out, "{k}\t{v}");
    }
    out
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn max_fds() -> u64 {
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
