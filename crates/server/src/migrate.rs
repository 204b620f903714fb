//! `zooid migrate check [zoo.cfg]`: before a ZooKeeper member is replaced by zooid, read its
//! installation as zooid would at start-up and list what zooid would not honour. Nothing is
//! written.
//!
//! ```text
//! zoo.cfg      parsed with the JVM flags zkServer.sh passes (SERVER_JVMFLAGS and JVMFLAGS
//!              from the environment and from java.env beside zoo.cfg): an error stops the
//!              start-up (blocker); each warning is a setting ignored or read differently
//! classes      authProvider.N and serverCnxnFactory name Java classes zooid cannot load
//! dataDir      recovered as at start-up (snapshot, log replay, digests): a failure is a
//!              blocker; myid must name a server line in an ensemble
//! ```

use std::path::{Path, PathBuf};

use zooid_config::ServerConfig;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// What zooid found and will use as it is.
    Ok,
    /// Ignored or read differently; the member runs.
    Note,
    /// zooid would not start (or would lose data).
    Blocker,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Severity::Ok => "ok     ",
            Severity::Note => "note   ",
            Severity::Blocker => "BLOCKER",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Finding {
    pub severity: Severity,
    pub what: String,
}

/// Authentication providers zooid carries out itself.
const KNOWN_PROVIDERS: &[&str] = &[
    "org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
    "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
    "org.apache.zookeeper.server.auth.DigestAuthenticationProvider",
    "org.apache.zookeeper.server.auth.IPAuthenticationProvider",
];

/// Check the installation whose zoo.cfg is `cfg_path`; `env` reads the environment.
pub fn check(cfg_path: &Path, env: impl Fn(&str) -> Option<String>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut say = |severity, what: String| out.push(Finding { severity, what });
    let java_env = cfg_path.with_file_name("java.env");
    let from_file = java_env_flags(&java_env);
    if from_file.is_some() {
        say(
            Severity::Ok,
            format!("JVM flags read from {}", java_env.display()),
        );
    }
    let join = zooid_config::server_jvm_flags;
    let flags = join(
        join(env("SERVER_JVMFLAGS"), from_file.clone().map(|f| f.0)),
        join(env("JVMFLAGS"), from_file.map(|f| f.1)),
    );
    let (cfg, warnings) = match ServerConfig::load(cfg_path, flags.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            say(Severity::Blocker, format!("zoo.cfg: {e}"));
            return out;
        }
    };
    say(
        Severity::Ok,
        format!(
            "{}: {} server lines, dataDir {}",
            cfg_path.display(),
            cfg.servers.len(),
            cfg.data_dir.display()
        ),
    );
    for w in warnings {
        say(Severity::Note, w.to_string());
    }
    // The Java system properties ZooKeeper would hold (zoo.cfg keys it does not consume
    // become `zookeeper.<key>`).
    for (key, value) in &cfg.system_properties {
        let key = key.strip_prefix("zookeeper.").unwrap_or(key);
        let class = value.trim();
        if key.starts_with("authProvider.") && !KNOWN_PROVIDERS.contains(&class) {
            say(
                Severity::Note,
                format!(
                    "{key}={class}: zooid cannot load Java classes; clients that authenticate \
                     with its scheme get AUTHFAILED"
                ),
            );
        }
        if key == "serverCnxnFactory" {
            say(
                Severity::Note,
                format!("{key}={class}: ignored; zooid serves clients itself (TLS included)"),
            );
        }
    }
    if cfg.sasl.jaas_file.is_some() {
        say(Severity::Ok, String::from("JAAS file read"));
    }
    check_data(&cfg, &mut say);
    out
}

/// The data and myid, as the server would load them.
fn check_data(cfg: &ServerConfig, say: &mut impl FnMut(Severity, String)) {
    let version = zooid_storage::recovery::version_dir_of;
    let snap_dir = version(&cfg.data_dir);
    let log_dir = version(cfg.data_log_dir.as_deref().unwrap_or(&cfg.data_dir));
    if !cfg.is_standalone() {
        match zooid_config::read_myid(&cfg.data_dir) {
            Ok(Some(id)) if cfg.servers.contains_key(&id) => {
                say(Severity::Ok, format!("myid {id} names a server line"))
            }
            Ok(Some(id)) => say(
                Severity::Blocker,
                format!("myid {id} names no server.{id} line of zoo.cfg"),
            ),
            Ok(None) => say(
                Severity::Blocker,
                format!("no myid file in {}", cfg.data_dir.display()),
            ),
            Err(e) => say(Severity::Blocker, format!("myid: {e}")),
        }
    }
    if !snap_dir.exists() && !log_dir.exists() {
        say(
            Severity::Note,
            format!(
                "{} holds no data yet: zooid starts empty",
                snap_dir.display()
            ),
        );
        return;
    }
    match zooid_storage::recovery::check(&snap_dir, &log_dir) {
        Ok(r) => {
            let snapshot = r.snapshot.as_ref().map_or(String::from("none"), |(z, p)| {
                format!("{} ({z:#x})", p.display())
            });
            say(
                Severity::Ok,
                format!(
                    "data: snapshot {snapshot}, {} txns replayed, last zxid {:#x}, {} znodes, {} \
                     sessions",
                    r.replayed,
                    r.tree.last_zxid(),
                    r.tree.node_count(),
                    r.tree.sessions().len()
                ),
            );
            for (p, why) in &r.skipped_snapshots {
                say(
                    Severity::Note,
                    format!("damaged snapshot {} skipped: {why}", p.display()),
                );
            }
            if r.digest_mismatches > 0 {
                say(
                    Severity::Blocker,
                    format!(
                        "{} txns do not reproduce the digest ZooKeeper recorded: the data \
                         differs from what ZooKeeper served",
                        r.digest_mismatches
                    ),
                );
            }
        }
        Err(e) => say(Severity::Blocker, format!("data: {e}")),
    }
}

/// `(SERVER_JVMFLAGS, JVMFLAGS)` assigned in zkEnv.sh's `java.env` (`export X="..."`,
/// `X="$X ..."`), with references to other variables dropped.
fn java_env_flags(path: &Path) -> Option<(String, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (mut server, mut jvm) = (String::new(), String::new());
    for line in text.lines() {
        let line = line.trim().trim_start_matches("export ").trim();
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value: Vec<&str> = value
            .trim_matches(|c| c == '"' || c == '\'')
            .split_whitespace()
            .filter(|w| !w.starts_with('$'))
            .collect();
        match name.trim() {
            "SERVER_JVMFLAGS" => server = format!("{server} {}", value.join(" ")),
            "JVMFLAGS" => jvm = format!("{jvm} {}", value.join(" ")),
            _ => {}
        }
    }
    Some((server, jvm))
}

/// Print the report; the exit status: 0 nothing blocks, 1 a blocker.
pub fn run(cfg_path: Option<&str>) -> u8 {
    let path = match cfg_path {
        Some(p) => PathBuf::from(p),
        None => crate::lifecycle::config_path(None, |k| std::env::var(k).ok()),
    };
    println!("zooid migrate check: {}", path.display());
    let findings = check(&path, |k| std::env::var(k).ok());
    for f in &findings {
        println!("{} {}", f.severity.label(), f.what);
    }
    let blockers = findings
        .iter()
        .filter(|f| f.severity == Severity::Blocker)
        .count();
    let notes = findings
        .iter()
        .filter(|f| f.severity == Severity::Note)
        .count();
    if blockers > 0 {
        println!("{blockers} blocker(s): fix them before replacing this member with zooid");
        1
    } else {
        println!("nothing blocks: zooid can replace this member ({notes} note(s) above)");
        0
    }
}
