//! The operator commands, one table for both surfaces ZooKeeper 3.8 offers: four-letter
//! words on the client port and the AdminServer's `GET /commands/<name>`.
//!
//! ```text
//! client port: "srvr" ──┐                                  ┌─▶ text, ZooKeeper's 4lw format
//!                       ├─▶ core task: (cmd.run)(ctx) ─▶ Response
//! GET /commands/srvr ───┘                                  └─▶ JSON, Jackson's pretty printer
//! ```
//! Each [`Command`] produces structured data (a [`Response`]: ordered keys and [`Value`]s,
//! named as ZooKeeper's `Commands.java` names them); its `text` function renders that as the
//! four-letter word's text. Commands run on the core task, so they see one consistent state.
//!
//! JSON as ZooKeeper's Jackson `ObjectMapper` with `INDENT_OUTPUT` writes it:
//! ```text
//! {
//!   "version" : "3.8.4-zooid-0.1.0, built on unknown",
//!   "connections" : [ {
//!     "remote_socket_address" : "127.0.0.1:40702",
//!     "interest_ops" : 1
//!   } ],
//!   "secure_connections" : [ ],
//!   "command" : "stats",
//!   "error" : null
//! }
//! ```
//! The data keys come first, then `command` and `error` (ZooKeeper's `CommandResponse.toMap`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;

use zooid_node::{ConnStats, Core};

use crate::fourlw::{version_string, ServerInfo};
use crate::metrics::{self, Registry};

/// A JSON value; maps keep their insertion order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn int(&self) -> i64 {
        match self {
            Value::Int(i) => *i,
            Value::Float(f) => *f as i64,
            _ => 0,
        }
    }

    fn text(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => java_double(*f),
            Value::Str(s) => s.clone(),
            other => json(other),
        }
    }
}

macro_rules! value_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Int(v as i64)
            }
        }
    )*};
}
value_from_int!(u16, i32, i64, u32, u64, usize);

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}

/// A double as Java's `Double.toString` prints it ("0.0", "3.4286", "1.0E7").
pub fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    if (1e-3..1e7).contains(&v.abs()) {
        let s = v.to_string();
        if s.contains('.') {
            s
        } else {
            s + ".0"
        }
    } else {
        let s = format!("{v:e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        if m.contains('.') {
            format!("{m}E{e}")
        } else {
            format!("{m}.0E{e}")
        }
    }
}

/// `v` as Jackson's default pretty printer writes it.
pub fn json(v: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, v, 0);
    out
}

fn write_json(out: &mut String, v: &Value, depth: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_finite() => out.push_str(&java_double(*f)),
        // Jackson writes non-finite doubles as strings.
        Value::Float(f) => write_json_string(out, &java_double(*f)),
        Value::Str(s) => write_json_string(out, s),
        Value::List(items) => {
            if items.is_empty() {
                out.push_str("[ ]");
                return;
            }
            // Arrays stay on the line ("[ 1, 2 ]"); objects in them indent one level deeper.
            out.push_str("[ ");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(out, item, depth);
            }
            out.push_str(" ]");
        }
        Value::Map(entries) => {
            if entries.is_empty() {
                out.push_str("{ }");
                return;
            }
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                out.push_str(if i > 0 { ",\n" } else { "\n" });
                push_indent(out, depth + 1);
                write_json_string(out, k);
                out.push_str(" : ");
                write_json(out, v, depth + 1);
            }
            out.push('\n');
            push_indent(out, depth);
            out.push('}');
        }
    }
}

fn push_indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// What a command answers: ZooKeeper's `CommandResponse`.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The command's primary name (or, for an unknown command, the name asked for).
    pub command: String,
    pub error: Option<String>,
    pub data: Vec<(String, Value)>,
}

impl Response {
    fn new(cmd: &Command) -> Response {
        Response {
            command: cmd.primary().to_owned(),
            error: None,
            data: Vec::new(),
        }
    }

    /// The answer to a name no command has.
    pub fn unknown(name: &str) -> Response {
        Response {
            command: name.to_owned(),
            error: Some(format!("Unknown command: {name}")),
            data: Vec::new(),
        }
    }

    fn put(&mut self, key: &str, v: impl Into<Value>) {
        let v = v.into();
        match self.data.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = v,
            None => self.data.push((key.to_owned(), v)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.data.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The JSON object: the data in order, then `command` and `error` unless the data has
    /// them already (a data `error` wins, as in ZooKeeper's `toMap`).
    pub fn to_value(&self) -> Value {
        let mut m = self.data.clone();
        if self.get("command").is_none() {
            m.push(("command".into(), self.command.as_str().into()));
        }
        if self.get("error").is_none() {
            let e = self.error.clone().map_or(Value::Null, Value::Str);
            m.push(("error".into(), e));
        }
        Value::Map(m)
    }

    pub fn to_json(&self) -> String {
        json(&self.to_value())
    }

    fn str(&self, key: &str) -> String {
        self.get(key).map(Value::text).unwrap_or_default()
    }

    fn int(&self, key: &str) -> i64 {
        self.get(key).map_or(0, Value::int)
    }
}

/// Sizes and files on disk, measured off the core task by whoever asks.
#[derive(Debug, Clone, Default)]
pub struct DiskFacts {
    pub data_dir_size: u64,
    pub log_dir_size: u64,
    /// (zxid, modification time in seconds, as ZooKeeper's SnapshotInfo) of the newest
    /// snapshot.
    pub last_snapshot: Option<(i64, i64)>,
}

impl DiskFacts {
    /// Blocking: walks the snapshot and log directories.
    pub fn measure(info: &ServerInfo) -> DiskFacts {
        DiskFacts {
            data_dir_size: dir_size(&info.snap_dir),
            log_dir_size: dir_size(&info.log_dir),
            last_snapshot: last_snapshot(&info.snap_dir),
        }
    }
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn last_snapshot(dir: &Path) -> Option<(i64, i64)> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let hex = name.strip_prefix("snapshot.")?;
            let hex = hex.split('.').next()?;
            let zxid = u64::from_str_radix(hex, 16).ok()? as i64;
            let mtime = e
                .metadata()
                .ok()?
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs() as i64;
            Some((zxid, mtime))
        })
        .max()
}

/// Everything a command may look at.
pub struct Ctx<'a> {
    pub core: &'a mut Core,
    pub info: &'a ServerInfo,
    pub metrics: &'a mut Registry,
    pub now: zooid_node::core::Now,
    /// The connection asking with a four-letter word: ZooKeeper lists it among the client
    /// connections while it is answered.
    pub asker: Option<SocketAddr>,
    pub disk: DiskFacts,
    /// Query parameters (HTTP) or the word's argument (`stmk`: `traceMask`).
    pub args: Vec<(String, String)>,
    /// The ensemble role's figures; None for a standalone server.
    pub peer: Option<crate::ensemble::PeerFacts>,
}

impl Ctx<'_> {
    /// `standalone`, `leader`, `follower`, `observer` (ZooKeeper's server_state).
    fn server_state(&self) -> &'static str {
        self.peer.as_ref().map_or("standalone", |p| p.state)
    }
}

impl Ctx<'_> {
    fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One command: its names, the four-letter word that runs it (if any), what it computes and
/// how its word prints that.
pub struct Command {
    /// The primary name first, then the aliases, as ZooKeeper's `Commands.java` has them.
    pub names: &'static [&'static str],
    pub word: Option<&'static str>,
    run: fn(&mut Ctx<'_>) -> Response,
    text: fn(&Ctx<'_>, &Response) -> String,
}

impl Command {
    pub fn primary(&self) -> &'static str {
        self.names[0]
    }

    pub fn run(&self, ctx: &mut Ctx<'_>) -> Response {
        (self.run)(ctx)
    }

    /// Run as the four-letter word and render ZooKeeper's text.
    pub fn run_text(&self, ctx: &mut Ctx<'_>) -> String {
        let r = (self.run)(ctx);
        (self.text)(ctx, &r)
    }
}

/// Every command ZooKeeper 3.8 registers.
pub static COMMANDS: &[Command] = &[
    Command {
        names: &["connection_stat_reset", "crst"],
        word: Some("crst"),
        run: connection_stat_reset,
        text: |_, _| "Connection stats reset.\n".into(),
    },
    Command {
        names: &["configuration", "conf", "config"],
        word: Some("conf"),
        run: configuration,
        text: configuration_text,
    },
    Command {
        names: &["connections", "cons"],
        word: Some("cons"),
        run: connections,
        text: |_, r| connection_lines(r.get("connections"), false) + "\n",
    },
    Command {
        names: &["hash"],
        word: Some("hash"),
        run: digests,
        text: digests_text,
    },
    Command {
        names: &["dirs"],
        word: Some("dirs"),
        run: dirs,
        text: |_, r| {
            format!(
                "datadir_size: {}\nlogdir_size: {}\n",
                r.int("datadir_size"),
                r.int("logdir_size")
            )
        },
    },
    Command {
        names: &["dump"],
        word: Some("dump"),
        run: dump,
        text: dump_text,
    },
    Command {
        names: &["environment", "env", "envi"],
        word: Some("envi"),
        run: environment,
        text: |_, r| {
            let mut out = String::from("Environment:\n");
            for (k, v) in &r.data {
                let _ = writeln!(out, "{k}={}", v.text());
            }
            out
        },
    },
    Command {
        names: &["get_trace_mask", "gtmk"],
        word: Some("gtmk"),
        run: get_trace_mask,
        text: |_, r| r.str("tracemask"),
    },
    Command {
        names: &["initial_configuration", "icfg"],
        word: None,
        run: |ctx| {
            let mut r = response(ctx, "icfg");
            match &ctx.info.initial_config {
                Some(text) => r.put("initial_configuration", text.clone()),
                None => r.put("initial_configuration", Value::Null),
            }
            r
        },
        text: no_text,
    },
    Command {
        names: &["is_read_only", "isro"],
        word: Some("isro"),
        run: |ctx| {
            let mut r = response(ctx, "isro");
            let read_only = ctx.peer.as_ref().is_some_and(|p| p.state == "read-only");
            r.put("read_only", read_only);
            r
        },
        text: |_, r| {
            if r.get("read_only") == Some(&Value::Bool(true)) {
                "ro".into()
            } else {
                "rw".into()
            }
        },
    },
    Command {
        names: &["last_snapshot", "lsnp"],
        word: None,
        run: |ctx| {
            let mut r = response(ctx, "lsnp");
            let (zxid, timestamp) = ctx.disk.last_snapshot.unwrap_or((-1, -1));
            r.put("zxid", format!("{:x}", zxid as u64));
            r.put("timestamp", timestamp);
            r
        },
        text: no_text,
    },
    Command {
        names: &["leader", "lead"],
        word: None,
        run: |ctx| {
            // A standalone server has no leader; ZooKeeper puts the error among the data.
            let mut r = response(ctx, "lead");
            r.put("error", "server is not initialized");
            r
        },
        text: no_text,
    },
    Command {
        names: &["monitor", "mntr"],
        word: Some("mntr"),
        run: monitor,
        text: |_, r| {
            let mut out = String::new();
            for (k, v) in &r.data {
                let _ = writeln!(out, "zk_{k}\t{}", v.text());
            }
            out
        },
    },
    Command {
        names: &["observer_connection_stat_reset", "orst"],
        word: None,
        run: |ctx| response(ctx, "orst"),
        text: no_text,
    },
    Command {
        names: &["ruok"],
        word: Some("ruok"),
        run: |ctx| response(ctx, "ruok"),
        text: |_, _| "imok".into(),
    },
    Command {
        names: &["set_trace_mask", "stmk"],
        word: Some("stmk"),
        run: set_trace_mask,
        text: |_, r| r.str("tracemask"),
    },
    Command {
        names: &["server_stats", "srvr"],
        word: Some("srvr"),
        run: |ctx| server_stats(ctx, "srvr"),
        text: |_, r| server_stats_text(r, false),
    },
    Command {
        names: &["stats", "stat"],
        word: Some("stat"),
        run: stats,
        text: |_, r| server_stats_text(r, true),
    },
    Command {
        names: &["stat_reset", "srst"],
        word: Some("srst"),
        run: stat_reset,
        text: |_, _| "Server stats reset.\n".into(),
    },
    Command {
        names: &["observers", "obsr"],
        word: None,
        run: |ctx| {
            let mut r = response(ctx, "obsr");
            r.put("synced_observers", 0);
            r.put("observers", Value::List(Vec::new()));
            r
        },
        text: no_text,
    },
    Command {
        names: &["system_properties", "sysp"],
        word: None,
        run: system_properties,
        text: no_text,
    },
    Command {
        names: &["voting_view"],
        word: None,
        run: |ctx| {
            let mut r = response(ctx, "voting_view");
            r.put("current_config", Value::Map(Vec::new()));
            r
        },
        text: no_text,
    },
    Command {
        names: &["watches", "wchc"],
        word: Some("wchc"),
        run: watches,
        text: |_, r| {
            let mut out = String::new();
            if let Some(Value::Map(m)) = r.get("session_id_to_watched_paths") {
                for (sid, paths) in m {
                    let sid: i64 = sid.parse().unwrap_or(0);
                    let _ = writeln!(out, "0x{:x}", sid as u64);
                    for p in list(paths) {
                        let _ = writeln!(out, "\t{}", p.text());
                    }
                }
            }
            out + "\n"
        },
    },
    Command {
        names: &["watches_by_path", "wchp"],
        word: Some("wchp"),
        run: watches_by_path,
        text: |_, r| {
            let mut out = String::new();
            if let Some(Value::Map(m)) = r.get("path_to_session_ids") {
                for (path, sids) in m {
                    let _ = writeln!(out, "{path}");
                    for s in list(sids) {
                        let _ = writeln!(out, "\t0x{:x}", s.int() as u64);
                    }
                }
            }
            out + "\n"
        },
    },
    Command {
        names: &["watch_summary", "wchs"],
        word: Some("wchs"),
        run: |ctx| {
            let mut r = response(ctx, "wchs");
            let (sessions, paths, total) = ctx.core.tree().watches.summary();
            r.put("num_connections", sessions);
            r.put("num_paths", paths);
            r.put("num_total_watches", total);
            r
        },
        text: |_, r| {
            format!(
                "{} connections watching {} paths\nTotal watches:{}\n",
                r.int("num_connections"),
                r.int("num_paths"),
                r.int("num_total_watches")
            )
        },
    },
    Command {
        names: &["zabstate"],
        word: None,
        run: |ctx| {
            let mut r = response(ctx, "zabstate");
            r.put("voting", false);
            r.put("zabstate", "");
            r
        },
        text: no_text,
    },
];

/// The command answering to `name` over HTTP (any of its names).
pub fn by_name(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.names.contains(&name))
}

/// The command a four-letter word runs.
pub fn by_word(word: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.word == Some(word))
}

/// Primary names, sorted, as `GET /commands` lists them.
pub fn primary_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = COMMANDS.iter().map(Command::primary).collect();
    v.sort_unstable();
    v
}

fn no_text(_: &Ctx<'_>, _: &Response) -> String {
    String::new()
}

fn response(_ctx: &Ctx<'_>, name: &str) -> Response {
    Response::new(by_name(name).expect("a command of the table"))
}

fn list(v: &Value) -> &[Value] {
    match v {
        Value::List(l) => l,
        _ => &[],
    }
}

fn sid_key(s: i64) -> String {
    s.to_string()
}

fn connection_stat_reset(ctx: &mut Ctx<'_>) -> Response {
    ctx.core.reset_connection_stats();
    response(ctx, "crst")
}

fn stat_reset(ctx: &mut Ctx<'_>) -> Response {
    ctx.core.reset_server_stats();
    ctx.metrics.reset();
    response(ctx, "srst")
}

fn configuration(ctx: &mut Ctx<'_>) -> Response {
    let i = ctx.info;
    let mut r = response(ctx, "conf");
    r.put("client_port", i.client_port);
    r.put("data_dir", i.snap_dir.display().to_string());
    r.put("data_log_dir", i.log_dir.display().to_string());
    r.put("tick_time", i.tick_ms);
    r.put("max_client_cnxns", i.max_client_cnxns);
    r.put("min_session_timeout", i.min_session_timeout_ms);
    r.put("max_session_timeout", i.max_session_timeout_ms);
    r.put("server_id", i.server_id);
    r.put("client_port_listen_backlog", -1);
    if let Some(q) = &i.quorum {
        r.put("init_limit", q.init_limit);
        r.put("sync_limit", q.sync_limit);
        r.put("election_alg", 3);
        r.put("election_port", q.election_port);
        r.put("quorum_port", q.quorum_port);
        r.put("peer_type", u32::from(q.peer_type));
        // The member's current config (a reconfig changes it), else the one it started with.
        let membership = ctx.peer.as_ref().map(|p| &p.membership);
        r.put("membership", membership.unwrap_or(&q.membership).clone());
    }
    r
}

fn configuration_text(ctx: &Ctx<'_>, r: &Response) -> String {
    format!(
        "clientPort={}\nsecureClientPort={}\ndataDir={}\ndataDirSize={}\ndataLogDir={}\ndataLogSize={}\ntickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\nclientPortListenBacklog={}\nserverId={}\n",
        r.int("client_port"),
        ctx.info.secure_client_port,
        r.str("data_dir"),
        ctx.disk.data_dir_size,
        r.str("data_log_dir"),
        ctx.disk.log_dir_size,
        r.int("tick_time"),
        r.int("max_client_cnxns"),
        r.int("min_session_timeout"),
        r.int("max_session_timeout"),
        r.int("client_port_listen_backlog"),
        r.int("server_id"),
    ) + &ctx.info.quorum.as_ref().map_or(String::new(), |q| {
        format!(
            "initLimit={}\nsyncLimit={}\nelectionAlg=3\nelectionPort={}\nquorumPort={}\npeerType={}\nmembership: \n{}\n",
            q.init_limit,
            q.sync_limit,
            q.election_port,
            q.quorum_port,
            q.peer_type,
            r.str("membership")
        )
    })
}

/// ZooKeeper's per-connection info (`ServerCnxn.getConnectionInfo`): the asking
/// four-letter-word connection first, then the clients.
fn connection_info(ctx: &Ctx<'_>, brief: bool) -> Value {
    let mut out = Vec::new();
    if let Some(addr) = ctx.asker {
        let st = ConnStats {
            received: 1,
            established_ms: ctx.now.wall_ms,
            last_cxid: -1,
            last_zxid: -1,
            ..ConnStats::default()
        };
        out.push(one_connection(addr, 0, None, 0, &st, 0, brief));
    }
    for (_, addr, session, timeout, st, queued) in ctx.core.connections() {
        out.push(one_connection(
            addr, 1, session, timeout, &st, queued, brief,
        ));
    }
    Value::List(out)
}

fn one_connection(
    addr: SocketAddr,
    interest_ops: i32,
    session: Option<i64>,
    timeout_ms: i32,
    st: &ConnStats,
    queued: usize,
    brief: bool,
) -> Value {
    let mut m: Vec<(String, Value)> = vec![
        ("remote_socket_address".into(), addr.to_string().into()),
        ("interest_ops".into(), interest_ops.into()),
        ("outstanding_requests".into(), queued.into()),
        ("packets_received".into(), st.received.into()),
        ("packets_sent".into(), st.sent.into()),
    ];
    if !brief {
        let lat = &st.latency;
        let avg = if lat.count == 0 {
            0
        } else {
            lat.sum / lat.count as i64
        };
        let last_op = if st.last_op.is_empty() {
            "NA"
        } else {
            st.last_op
        };
        m.extend([
            ("session_id".into(), session.unwrap_or(0).into()),
            ("last_operation".into(), last_op.into()),
            ("established".into(), st.established_ms.into()),
            ("session_timeout".into(), timeout_ms.into()),
            ("last_cxid".into(), st.last_cxid.into()),
            ("last_zxid".into(), st.last_zxid.into()),
            ("last_response_time".into(), st.last_response_ms.into()),
            ("last_latency".into(), st.last_latency_ms.into()),
            ("min_latency".into(), lat.min.into()),
            ("avg_latency".into(), avg.into()),
            ("max_latency".into(), lat.max.into()),
        ]);
    }
    Value::Map(m)
}

/// ` /127.0.0.1:54240[1](queued=0,recved=7,sent=7,sid=0x...,...)` per connection, each
/// followed by a newline (ZooKeeper's `dumpConnectionInfo`).
fn connection_lines(conns: Option<&Value>, brief: bool) -> String {
    let mut out = String::new();
    for c in conns.map(list).unwrap_or(&[]) {
        let g = |k: &str| c.get(k).map_or(0, Value::int);
        let ops = g("interest_ops");
        let _ = write!(
            out,
            " /{}[{}](queued={},recved={},sent={}",
            c.get("remote_socket_address")
                .map(Value::text)
                .unwrap_or_default(),
            if ops == 0 {
                "0".to_string()
            } else {
                format!("{ops:x}")
            },
            g("outstanding_requests"),
            g("packets_received"),
            g("packets_sent"),
        );
        let sid = g("session_id");
        if !brief && sid != 0 {
            let _ = write!(
                out,
                ",sid=0x{:x},lop={},est={},to={}",
                sid as u64,
                c.get("last_operation").map(Value::text).unwrap_or_default(),
                g("established"),
                g("session_timeout"),
            );
            if g("last_cxid") >= 0 {
                let _ = write!(out, ",lcxid=0x{:x}", g("last_cxid") as u64);
            }
            let _ = write!(
                out,
                ",lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
                g("last_zxid") as u64,
                g("last_response_time"),
                g("last_latency"),
                g("min_latency"),
                g("avg_latency"),
                g("max_latency"),
            );
        }
        out.push_str(")\n");
    }
    out
}

fn connections(ctx: &mut Ctx<'_>) -> Response {
    let mut r = response(ctx, "cons");
    r.put("connections", connection_info(ctx, false));
    r.put("secure_connections", Value::List(Vec::new()));
    r
}

fn digests(ctx: &mut Ctx<'_>) -> Response {
    let mut r = response(ctx, "hash");
    let list = ctx
        .core
        .digest_log()
        .map(|(zxid, digest)| {
            Value::Map(vec![
                ("zxid".into(), zxid.into()),
                ("digest".into(), digest.into()),
                // ZooKeeper's DigestCalculator.DIGEST_VERSION.
                ("digest_version".into(), 2.into()),
            ])
        })
        .collect();
    r.put("digests", Value::List(list));
    r
}

fn digests_text(_: &Ctx<'_>, r: &Response) -> String {
    let mut out = String::new();
    for d in r.get("digests").map(list).unwrap_or(&[]) {
        let g = |k: &str| d.get(k).map_or(0, Value::int);
        let _ = writeln!(out, "{:x}: {}", g("zxid") as u64, g("digest"));
    }
    out
}

fn dirs(ctx: &mut Ctx<'_>) -> Response {
    let mut r = response(ctx, "dirs");
    r.put("datadir_size", ctx.disk.data_dir_size);
    r.put("logdir_size", ctx.disk.log_dir_size);
    r
}

fn dump(ctx: &mut Ctx<'_>) -> Response {
    let mut r = response(ctx, "dump");
    let mut by_deadline: std::collections::BTreeMap<i64, Vec<Value>> = Default::default();
    for (sid, deadline) in ctx.core.session_expiry() {
        by_deadline.entry(deadline).or_default().push(sid.into());
    }
    let expiry = by_deadline
        .into_iter()
        .map(|(t, ids)| (t.to_string(), Value::List(ids)))
        .collect();
    r.put("expiry_time_to_session_ids", Value::Map(expiry));
    let ephemerals = ctx
        .core
        .tree()
        .ephemerals()
        .map(|(sid, paths)| {
            let paths = paths.into_iter().map(Value::from).collect();
            (sid_key(sid), Value::List(paths))
        })
        .collect();
    r.put("session_id_to_ephemeral_paths", Value::Map(ephemerals));
    r
}

fn dump_text(ctx: &Ctx<'_>, r: &Response) -> String {
    let mut out = String::from("SessionTracker dump:\n");
    let expiry: &[(String, Value)] = match r.get("expiry_time_to_session_ids") {
        Some(Value::Map(m)) => m,
        _ => &[],
    };
    let sessions: usize = expiry.iter().map(|(_, ids)| list(ids).len()).sum();
    let _ = writeln!(out, "Session Sets ({})/({sessions}):", expiry.len());
    for (t, ids) in expiry {
        let ids = list(ids);
        let _ = writeln!(
            out,
            "{} expire at {}:",
            ids.len(),
            java_date(t.parse().unwrap_or(0))
        );
        for id in ids {
            let _ = writeln!(out, "\t0x{:x}", id.int() as u64);
        }
    }
    out.push_str("ephemeral nodes dump:\n");
    let eph: &[(String, Value)] = match r.get("session_id_to_ephemeral_paths") {
        Some(Value::Map(m)) => m,
        _ => &[],
    };
    let _ = writeln!(out, "Sessions with Ephemerals ({}):", eph.len());
    for (sid, paths) in eph {
        let _ = writeln!(out, "0x{:x}:", sid.parse::<i64>().unwrap_or(0) as u64);
        for p in list(paths) {
            let _ = writeln!(out, "\t{}", p.text());
        }
    }
    // Connections by when they expire (the session's deadline, or the sessionless timeout).
    out.push_str("Connections dump:\n");
    let mut conns: std::collections::BTreeMap<i64, Vec<(SocketAddr, i64)>> = Default::default();
    if let Some(addr) = ctx.asker {
        let t = ctx.now.mono_ms + zooid_node::core::SESSIONLESS_TIMEOUT_MS;
        conns.entry(t).or_default().push((addr, 0));
    }
    for (addr, sid, t) in ctx.core.connection_deadlines() {
        conns.entry(t).or_default().push((addr, sid.unwrap_or(0)));
    }
    let total: usize = conns.values().map(Vec::len).sum();
    let _ = writeln!(out, "Connections Sets ({})/({total}):", conns.len());
    for (t, cs) in conns {
        // Deadlines run on the monotonic clock; shown as the wall time they fall at.
        let at = t - ctx.now.mono_ms + ctx.now.wall_ms;
        let _ = writeln!(out, "{} expire at {}:", cs.len(), java_date(at));
        for (addr, sid) in cs {
            let _ = writeln!(out, "\tip: /{addr} sessionId: 0x{:x}", sid as u64);
        }
    }
    out
}

/// A time as Java's `Date.toString` prints it in UTC ("Sat Nov 21 22:16:10 UTC 2026").
pub fn java_date(ms: i64) -> String {
    zooid_proto::timefmt::java_date(ms)
}

fn environment(ctx: &mut Ctx<'_>) -> Response {
    let mut r = response(ctx, "envi");
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let os_version = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|_| "<NA>".into());
    let (free_mb, total_mb) = memory_mb();
    let entries: [(&str, String); 18] = [
        ("zookeeper.version", version_string()),
        ("host.name", host),
        ("java.version", "none (zooid is native)".into()),
        ("java.vendor", "zooid".into()),
        ("java.home", "<NA>".into()),
        ("java.class.path", "<NA>".into()),
        ("java.library.path", "<NA>".into()),
        ("java.io.tmpdir", std::env::temp_dir().display().to_string()),
        ("java.compiler", "<NA>".into()),
        ("os.name", java_os_name()),
        ("os.arch", java_os_arch()),
        ("os.version", os_version),
        ("user.name", user_name().unwrap_or_else(|| "<NA>".into())),
        (
            "user.home",
            std::env::var("HOME").unwrap_or_else(|_| "<NA>".into()),
        ),
        ("user.dir", cwd),
        ("os.memory.free", format!("{free_mb}MB")),
        ("os.memory.max", format!("{total_mb}MB")),
        ("os.memory.total", format!("{total_mb}MB")),
    ];
    for (k, v) in entries {
        r.put(k, v);
    }
    r
}

/// The account the server runs as (Java's `user.name`): `$USER`, else the passwd entry of
/// the process' uid.
fn user_name() -> Option<String> {
    if let Ok(u) = std::env::var("USER") {
        return Some(u);
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_owned();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_owned())
    })
}

/// Java's `os.name` ("Linux").
fn java_os_name() -> String {
    match std::env::consts::OS {
        "linux" => "Linux".into(),
        "macos" => "Mac OS X".into(),
        other => other.into(),
    }
}

/// Java's `os.arch` ("amd64").
fn java_os_arch() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "amd64".into(),
        other => other.into(),
    }
}

/// (available, total) memory of the machine in MiB; a native process has no heap limits to
/// report in their place.
fn memory_mb() -> (u64, u64) {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = |key: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (kb("MemAvailable:") / 1024, kb("MemTotal:") / 1024)
}

fn get_trace_mask(ctx: &mut Ctx<'_>) -> Response {
    let mut r = response(ctx, "gtmk");
    r.put("tracemask", ctx.info.trace_mask.load(Ordering::Relaxed));
    r
}

fn set_trace_mask(ctx: &mut Ctx<'_>) -> Response {
    let mut r = response(ctx, "stmk");
    let Some(arg) = ctx.arg("traceMask") else {
        r.put("error", "setTraceMask requires long traceMask argument");
        return r;
    };
    match arg.parse::<i64>() {
        Ok(mask) => {
            ctx.info.trace_mask.store(mask, Ordering::Relaxed);
            r.put("tracemask", mask);
        }
        Err(_) => r.put(
            "error",
            format!("setTraceMask requires long traceMask argument, got {arg}"),
        ),
    }
    r
}

fn monitor(ctx: &mut Ctx<'_>) -> Response {
    let mut r = response(ctx, "mntr");
    r.put("version", version_string());
    r.put("server_state", ctx.server_state());
    let extra = usize::from(ctx.asker.is_some());
    let entries = ctx.metrics.collect(ctx.core, extra);
    for (k, v) in metrics::mntr_pairs(&entries, ctx.metrics.prometheus) {
        r.put(&k, v);
    }
    if let Some(p) = &ctx.peer {
        r.put("peer_state", p.peer_state.clone());
        r.put("quorum_size", p.quorum_size as i64);
        if p.state == "leader" {
            // What ZooKeeper's leader adds to mntr.
            r.put("learners", p.learners as i64);
            r.put("synced_followers", p.synced_followers as i64);
            r.put("synced_non_voting_followers", 0i64);
            r.put("synced_observers", p.synced_observers as i64);
            r.put("pending_syncs", p.pending_syncs as i64);
            r.put("leader_uptime", p.leader_uptime_ms as i64);
            r.put("last_proposal_size", p.last_proposal_size);
            r.put("max_proposal_size", p.max_proposal_size);
            r.put("min_proposal_size", p.min_proposal_size);
        }
        if p.state == "observer" {
            r.put("observer_master_id", p.leader.unwrap_or(-1));
        }
    }
    r
}

/// `srvr`'s data: ZooKeeper's `ServerStats` bean as Jackson names its properties.
fn server_stats(ctx: &mut Ctx<'_>, name: &str) -> Response {
    let mut r = response(ctx, name);
    let core = &*ctx.core;
    let s = &core.stats;
    let sizes = ctx.metrics.response_sizes;
    let client_response = Value::Map(vec![
        ("last_buffer_size".into(), sizes.last.into()),
        ("min_buffer_size".into(), sizes.min.into()),
        ("max_buffer_size".into(), sizes.max.into()),
    ]);
    let connections = core.connection_count() + usize::from(ctx.asker.is_some());
    let stats = Value::Map(vec![
        ("packets_sent".into(), s.packets_sent.into()),
        ("packets_received".into(), s.packets_received.into()),
        ("fsync_threshold_exceed_count".into(), 0.into()),
        ("client_response_stats".into(), client_response.clone()),
        ("min_latency".into(), s.latency_min_ms.into()),
        (
            "avg_latency".into(),
            metrics::avg4(s.latency_total_ms, s.latency_count).into(),
        ),
        ("max_latency".into(), s.latency_max_ms.into()),
        ("outstanding_requests".into(), core.outstanding().into()),
        ("last_processed_zxid".into(), core.last_zxid().into()),
        ("data_dir_size".into(), ctx.disk.data_dir_size.into()),
        ("log_dir_size".into(), ctx.disk.log_dir_size.into()),
        ("server_state".into(), ctx.server_state().into()),
        ("num_alive_client_connections".into(), connections.into()),
        ("uptime".into(), ctx.metrics.uptime_ms().into()),
        ("provider_null".into(), false.into()),
        ("non_mtlsremote_conn_count".into(), 0.into()),
        ("non_mtlslocal_conn_count".into(), 0.into()),
        ("auth_failed_count".into(), s.auth_failed.into()),
    ]);
    r.put("version", version_string());
    r.put("read_only", false);
    r.put("server_stats", stats);
    r.put("client_response", client_response);
    if let Some(p) = ctx.peer.as_ref().filter(|p| p.state == "leader") {
        // The leader's BufferStats of proposal sizes.
        let sizes = Value::Map(vec![
            ("last_buffer_size".into(), p.last_proposal_size.into()),
            ("min_buffer_size".into(), p.min_proposal_size.into()),
            ("max_buffer_size".into(), p.max_proposal_size.into()),
        ]);
        r.put("proposal_stats", sizes);
    }
    // ZooKeeper counts the root twice (as "" and "/").
    r.put("node_count", core.tree().node_count() + 1);
    r
}

fn stats(ctx: &mut Ctx<'_>) -> Response {
    let mut r = server_stats(ctx, "stat");
    r.put("connections", connection_info(ctx, true));
    r.put("secure_connections", Value::List(Vec::new()));
    r
}

fn server_stats_text(r: &Response, with_clients: bool) -> String {
    let st = r.get("server_stats").cloned().unwrap_or(Value::Null);
    let g = |k: &str| st.get(k).map(Value::text).unwrap_or_default();
    let mut out = format!("Zookeeper version: {}\n", r.str("version"));
    if with_clients {
        out.push_str("Clients:\n");
        out.push_str(&connection_lines(r.get("connections"), true));
        out.push('\n');
    }
    let zxid = st.get("last_processed_zxid").map_or(0, Value::int);
    let _ = write!(
        out,
        "Latency min/avg/max: {}/{}/{}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: {}\nZxid: 0x{:x}\nMode: {}\nNode count: {}\n",
        g("min_latency"),
        g("avg_latency"),
        g("max_latency"),
        g("packets_received"),
        g("packets_sent"),
        g("num_alive_client_connections"),
        g("outstanding_requests"),
        zxid as u64,
        g("server_state"),
        r.int("node_count"),
    );
    if let Some(p) = r.get("proposal_stats") {
        let g = |k: &str| p.get(k).map(Value::text).unwrap_or_default();
        let _ = writeln!(
            out,
            "Proposal sizes last/min/max: {}/{}/{}",
            g("last_buffer_size"),
            g("min_buffer_size"),
            g("max_buffer_size")
        );
    }
    out
}

fn system_properties(ctx: &mut Ctx<'_>) -> Response {
    let mut r = response(ctx, "sysp");
    let na = || "<NA>".to_string();
    let os_version = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|_| na());
    let timezone = std::env::var("TZ")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/timezone").ok())
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "UTC".into());
    let language = std::env::var("LANG")
        .ok()
        .and_then(|l| l.get(..2).map(str::to_owned))
        .filter(|l| l.chars().all(|c| c.is_ascii_lowercase()))
        .unwrap_or_else(|| "en".into());
    // The properties every JVM has: the ones a native server can state truthfully with
    // its own values, the JVM-only ones as "<NA>" (like `environment`).
    let mut props: std::collections::BTreeMap<String, String> = [
        ("file.encoding", "UTF-8".into()),
        ("file.separator", "/".into()),
        ("java.class.path", na()),
        ("java.class.version", na()),
        ("java.home", na()),
        ("java.io.tmpdir", std::env::temp_dir().display().to_string()),
        ("java.library.path", na()),
        ("java.runtime.name", na()),
        ("java.runtime.version", na()),
        ("java.specification.maintenance.version", na()),
        ("java.specification.name", na()),
        ("java.specification.vendor", na()),
        ("java.specification.version", na()),
        ("java.vendor", "zooid".into()),
        ("java.vendor.url", na()),
        ("java.vendor.url.bug", na()),
        ("java.version", "none (zooid is native)".into()),
        ("java.version.date", na()),
        ("java.vm.compressedOopsMode", na()),
        ("java.vm.info", na()),
        ("java.vm.name", na()),
        ("java.vm.specification.name", na()),
        ("java.vm.specification.vendor", na()),
        ("java.vm.specification.version", na()),
        ("java.vm.vendor", na()),
        ("java.vm.version", na()),
        ("jdk.debug", na()),
        ("line.separator", "\n".into()),
        ("native.encoding", "UTF-8".into()),
        ("os.arch", java_os_arch()),
        ("os.name", java_os_name()),
        ("os.version", os_version),
        ("path.separator", ":".into()),
        ("sun.arch.data.model", (usize::BITS as usize).to_string()),
        ("sun.boot.library.path", na()),
        (
            "sun.cpu.endian",
            if cfg!(target_endian = "little") {
                "little"
            } else {
                "big"
            }
            .into(),
        ),
        ("sun.io.unicode.encoding", na()),
        (
            "sun.java.command",
            std::env::args().collect::<Vec<_>>().join(" "),
        ),
        ("sun.java.launcher", na()),
        ("sun.jnu.encoding", "UTF-8".into()),
        ("sun.management.compiler", na()),
        (
            "user.dir",
            std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        ("user.home", std::env::var("HOME").unwrap_or_default()),
        ("user.language", language),
        ("user.name", user_name().unwrap_or_default()),
        ("user.timezone", timezone),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    // Then what the configuration sets, as ZooKeeper's QuorumPeerConfig does (sorted).
    props.extend(ctx.info.system_properties.iter().cloned());
    for (k, v) in props {
        r.put(&k, v);
    }
    r
}

fn watches(ctx: &mut Ctx<'_>) -> Response {
    let mut r = response(ctx, "wchc");
    let m = ctx
        .core
        .tree()
        .watches
        .by_session()
        .into_iter()
        .map(|(sid, paths)| {
            let paths = paths.into_iter().map(Value::from).collect();
            (sid_key(sid), Value::List(paths))
        })
        .collect();
    r.put("session_id_to_watched_paths", Value::Map(m));
    r
}

fn watches_by_path(ctx: &mut Ctx<'_>) -> Response {
    let mut r = response(ctx, "wchp");
    let m = ctx
        .core
        .tree()
        .watches
        .by_path()
        .into_iter()
        .map(|(path, sids)| {
            let sids = sids.into_iter().map(Value::from).collect();
            (path, Value::List(sids))
        })
        .collect();
    r.put("path_to_session_ids", Value::Map(m));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_pretty_printed_as_jackson_does() {
        let v = Value::Map(vec![
            ("a".into(), 1.into()),
            ("b".into(), Value::List(vec![])),
            ("c".into(), Value::Map(vec![])),
            (
                "d".into(),
                Value::List(vec![
                    Value::Map(vec![("x".into(), "q\"\n".into()), ("y".into(), 0.5.into())]),
                    2.into(),
                ]),
            ),
            ("e".into(), Value::Null),
        ]);
        assert_eq!(
            json(&v),
            "{\n  \"a\" : 1,\n  \"b\" : [ ],\n  \"c\" : { },\n  \"d\" : [ {\n    \"x\" : \"q\\\"\\n\",\n    \"y\" : 0.5\n  }, 2 ],\n  \"e\" : null\n}"
        );
    }

    #[test]
    fn doubles_print_as_java_does() {
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(3.4286), "3.4286");
        assert_eq!(java_double(5.0), "5.0");
        assert_eq!(java_double(1.0e7), "1.0E7");
        assert_eq!(java_double(12345678.0), "1.2345678E7");
        assert_eq!(java_double(0.0001), "1.0E-4");
    }

    #[test]
    fn dates_print_as_java_does_in_utc() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(java_date(1_795_299_370_000), "Sat Nov 21 22:16:10 UTC 2026");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn command_and_error_follow_the_data() {
        let r = Response {
            command: "leader".into(),
            error: None,
            data: vec![("error".into(), "server is not initialized".into())],
        };
        assert_eq!(
            r.to_json(),
            "{\n  \"error\" : \"server is not initialized\",\n  \"command\" : \"leader\"\n}"
        );
        assert_eq!(
            Response::unknown("nope").to_json(),
            "{\n  \"command\" : \"nope\",\n  \"error\" : \"Unknown command: nope\"\n}"
        );
    }

    #[test]
    fn names_are_unique_and_words_are_zookeepers() {
        let mut names: Vec<&str> = COMMANDS
            .iter()
            .flat_map(|c| c.names.iter().copied())
            .collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a name answers to one command");
        let mut words: Vec<&str> = COMMANDS.iter().filter_map(|c| c.word).collect();
        words.sort_unstable();
        assert_eq!(
            words,
            [
                "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "hash", "isro", "mntr",
                "ruok", "srst", "srvr", "stat", "stmk", "wchc", "wchp", "wchs"
            ]
        );
        assert_eq!(primary_names().len(), 26);
    }
}
