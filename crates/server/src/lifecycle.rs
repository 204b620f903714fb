//! `zooid server start | stop | restart | status`: running zooid as a daemon the way
//! ZooKeeper's `zkServer.sh` does, so tutorials, init scripts and systemd units written for
//! ZooKeeper keep working, but with one difference operators asked for: `start` waits until
//! the server answers and, when it cannot start, says why instead of `FAILED TO START`.
//!
//! Files, as `zkServer.sh` names them:
//!
//! ```text
//! pid file   $ZOOPIDFILE, else <dataDir>/zookeeper_server.pid
//!            the pid in decimal, no newline ("32152")
//! output     $ZOO_LOG_DIR, else <dataDir>, /zookeeper-$USER-server-$HOSTNAME.out
//!            the daemon's stdout and stderr; appended to, one "==== ..." line per start
//! config     the argument, else $ZOOCFG (inside $ZOOCFGDIR when it is a bare name),
//!            else $ZOOCFGDIR/zoo.cfg, else ./zoo.cfg
//! ```
//!
//! `start` spawns `zooid server start-foreground <config>` in a session of its own (no
//! controlling terminal), writes the pid file, and polls `srvr` on the client port until the
//! server answers (bounded by `ZOOID_START_TIMEOUT`, 30 s) or the child exits; then the
//! child's own error lines (`zooid: ...`) are copied from its output file. Problems the parent
//! can see before spawning (config errors, an unusable dataDir, a taken port and who holds
//! it, a bad `myid`, unresolved `server.N` hosts) are reported without spawning.
//!
//! Invariants: a pid is never signalled unless it came from the pid file, is above 1, and its
//! command line looks like a ZooKeeper server (zooid, or Java's `QuorumPeerMain`; or it cannot
//! be read); the pid file is removed only while it still holds the pid this command saw in it.
//! `stop` and `status` still work when zoo.cfg was broken while the server ran: they fall back
//! to `dataDir`, `clientPort` and `clientPortAddress` as written.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use zooid_config::{ConfigError, ServerConfig};

/// Default bound on how long `start` waits for the server to answer.
const START_TIMEOUT_S: u64 = 30;
/// Default bound on how long `stop` waits after SIGTERM before it sends SIGKILL.
const STOP_TIMEOUT_S: u64 = 30;
/// How long `stop` waits after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Between two readiness or exit checks.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// One `srvr` probe during `start`: connect, and the whole reply.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// `status` waits as long as ZooKeeper's FourLetterWordMain does.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on resolving the hosts of `server.N` lines.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest part of the output file read back after a failed start.
const LOG_TAIL_BYTES: u64 = 64 * 1024;
/// Lines of output shown when the child left no `zooid: ` error line.
const LOG_TAIL_LINES: usize = 12;
/// Longest command line quoted in a message.
const CMDLINE_CHARS: usize = 120;

/// Exit status of a command that failed (zkServer.sh uses 1 throughout).
const FAILED: u8 = 1;

/// The lifecycle subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Restart,
    Status,
}

impl Action {
    pub fn parse(word: &str) -> Option<Action> {
        match word {
            "start" => Some(Action::Start),
            "stop" => Some(Action::Stop),
            "restart" => Some(Action::Restart),
            "status" => Some(Action::Status),
            _ => None,
        }
    }
}

/// Runs `zooid server <word> [config]`; returns the process exit status.
pub fn run(command: Action, config_arg: Option<&str>) -> u8 {
    let path = config_path(config_arg, env_var);
    let path = std::path::absolute(&path).unwrap_or(path);
    let explicit =
        config_arg.is_some() || env_var("ZOOCFG").is_some() || env_var("ZOOCFGDIR").is_some();
    eprintln!("Using config: {}", path.display());
    match command {
        Action::Start => start(&path, explicit),
        Action::Stop => stop(&path, explicit),
        Action::Restart => match stop(&path, explicit) {
            0 => start(&path, explicit),
            code => code,
        },
        Action::Status => status(&path, explicit),
    }
}

/// The config file to use: `arg`, else `$ZOOCFG` (a bare name is looked up in `$ZOOCFGDIR`,
/// as zkEnv.sh does), else `$ZOOCFGDIR/zoo.cfg`, else `zoo.cfg` in the current directory.
pub fn config_path(arg: Option<&str>, var: impl Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(arg) = arg {
        return PathBuf::from(arg);
    }
    let dir = var("ZOOCFGDIR");
    if let Some(cfg) = var("ZOOCFG") {
        return match dir {
            Some(dir) if !cfg.contains('/') => Path::new(&dir).join(cfg),
            _ => PathBuf::from(cfg),
        };
    }
    match dir {
        Some(dir) => Path::new(&dir).join("zoo.cfg"),
        None => PathBuf::from("zoo.cfg"),
    }
}

/// What the commands need to know about one server's configuration.
struct Target {
    /// The validated config; `None` when it did not parse and `stop`/`status` read the few
    /// keys they need as written.
    cfg: Option<ServerConfig>,
    data_dir: PathBuf,
    client_addr: SocketAddr,
    /// The client address as zkServer.sh shows it: `clientPortAddress`, else `localhost`.
    client_host_shown: String,
    pid_file: PathBuf,
}

fn env_var(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// `$ZOOPIDFILE`, else `<dataDir>/zookeeper_server.pid`.
fn pid_file_path(data_dir: &Path) -> PathBuf {
    match env_var("ZOOPIDFILE") {
        Some(p) => PathBuf::from(p),
        None => data_dir.join("zookeeper_server.pid"),
    }
}

fn load_error_text(e: &ConfigError, explicit: bool) -> String {
    let mut text = format!("zooid: {e}");
    if !explicit && matches!(e, ConfigError::Read { .. }) {
        text.push_str(
            "\nzooid: no config was given: pass one (zooid server start path/to/zoo.cfg), \
             or set ZOOCFGDIR to the directory holding zoo.cfg",
        );
    }
    text
}

/// Loads the config strictly (for `start`): every problem stops us.
fn load_strict(path: &Path, explicit: bool) -> Result<(Target, Vec<String>), String> {
    let jvm_flags = zooid_config::server_jvm_flags(env_var("SERVER_JVMFLAGS"), env_var("JVMFLAGS"));
    let (mut cfg, warnings) = ServerConfig::load(path, jvm_flags.as_deref())
        .map_err(|e| load_error_text(&e, explicit))?;
    if !cfg.servers.is_empty() {
        // The client address may come from this server's own server.N line.
        cfg.my_id = zooid_config::read_myid(&cfg.data_dir).ok().flatten();
    }
    let target = target_of(cfg);
    Ok((target, warnings.iter().map(|w| w.to_string()).collect()))
}

/// Loads the config for `stop` and `status`, which must work even after someone broke the
/// file while the server runs: if it does not parse, the keys they need are read as written.
fn load_lenient(path: &Path, explicit: bool) -> Result<Target, String> {
    let jvm_flags = zooid_config::server_jvm_flags(env_var("SERVER_JVMFLAGS"), env_var("JVMFLAGS"));
    match ServerConfig::load(path, jvm_flags.as_deref()) {
        Ok((mut cfg, _)) => {
            if !cfg.servers.is_empty() {
                cfg.my_id = zooid_config::read_myid(&cfg.data_dir).ok().flatten();
            }
            Ok(target_of(cfg))
        }
        Err(e @ ConfigError::Read { .. }) => Err(load_error_text(&e, explicit)),
        Err(e) => {
            eprintln!("zooid: warning: {e}");
            let text = fs::read(path).map_err(|e| format!("zooid: {}: {e}", path.display()))?;
            let text = String::from_utf8_lossy(&text);
            let Some(data_dir) = scan_key(&text, "dataDir") else {
                return Err(format!(
                    "zooid: {}: dataDir is not set, so the pid file cannot be found",
                    path.display()
                ));
            };
            eprintln!("zooid: warning: using the values of dataDir, clientPort and clientPortAddress as written");
            let port = scan_key(&text, "clientPort")
                .and_then(|p| p.parse().ok())
                .unwrap_or(2181);
            let shown = scan_key(&text, "clientPortAddress");
            let ip = shown
                .as_deref()
                .and_then(|a| a.trim_matches(['[', ']']).parse::<IpAddr>().ok())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            let data_dir = PathBuf::from(data_dir);
            Ok(Target {
                cfg: None,
                pid_file: pid_file_path(&data_dir),
                data_dir,
                client_addr: SocketAddr::new(ip, port),
                client_host_shown: shown.unwrap_or_else(|| "localhost".into()),
            })
        }
    }
}

fn target_of(cfg: ServerConfig) -> Target {
    let client_addr = cfg.client_addr();
    let client_host_shown = match cfg.client_port_address {
        Some(ip) => ip.to_string(),
        None => "localhost".to_string(),
    };
    Target {
        pid_file: pid_file_path(&cfg.data_dir),
        data_dir: cfg.data_dir.clone(),
        client_addr,
        client_host_shown,
        cfg: Some(cfg),
    }
}

/// The last value of `key` in properties text (later lines win, as in Java), trimmed.
fn scan_key(text: &str, key: &str) -> Option<String> {
    let mut found = None;
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some(i) = line.find(['=', ':']) else {
            continue;
        };
        if line[..i].trim() == key {
            found = Some(line[i + 1..].trim().to_string());
        }
    }
    found
}

// ---------------------------------------------------------------- processes

/// The few C functions we need; std links the C library already.
mod sys {
    extern "C" {
        pub fn kill(pid: i32, sig: i32) -> i32;
        pub fn setsid() -> i32;
        pub fn geteuid() -> u32;
    }
    /// The same numbers on every Linux architecture and on the BSDs.
    pub const SIGKILL: i32 = 9;
    pub const SIGTERM: i32 = 15;
    pub const ESRCH: i32 = 3;
}

/// What a pid names now.
#[derive(Debug, PartialEq, Eq)]
enum Proc {
    /// No such process, or a zombie (it has exited; only its parent's wait is missing).
    Gone,
    Alive {
        /// Its command line, spaces for NULs; empty when unreadable.
        cmdline: String,
    },
}

fn process(pid: i32) -> Proc {
    assert!(pid > 1, "pid {pid} must come from a validated pid file");
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    if unsafe { sys::kill(pid, 0) } != 0
        && io::Error::last_os_error().raw_os_error() == Some(sys::ESRCH)
    {
        return Proc::Gone;
    }
    if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')', as comm may hold one.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if matches!(state, Some('Z' | 'X')) {
            return Proc::Gone;
        }
    }
    Proc::Alive {
        cmdline: cmdline_of(pid),
    }
}

/// What `/proc/<pid>/cmdline` says of a process, [`UNREADABLE`] if it cannot be read; empty
/// for a kernel thread.
fn cmdline_of(pid: i32) -> String {
    let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return UNREADABLE.to_owned();
    };
    let text: String = String::from_utf8_lossy(&raw)
        .trim_end_matches('\0')
        .replace('\0', " ");
    if text.chars().count() > CMDLINE_CHARS {
        let mut short: String = text.chars().take(CMDLINE_CHARS).collect();
        short.push_str("...");
        short
    } else {
        text
    }
}

/// How [`cmdline_of`] shows a command line it cannot read.
const UNREADABLE: &str = "(unreadable)";

/// Whether a command line is a ZooKeeper server: zooid, or Java's (a drop-in replacement may
/// find Java's pid file in the same dataDir). Unknown (unreadable) counts as a server; an
/// empty one is a kernel thread, never signalled.
fn looks_like_server(cmdline: &str) -> bool {
    let c = cmdline.to_ascii_lowercase();
    c == UNREADABLE
        || c.contains("zooid")
        || c.contains("zookeeper")
        || c.contains("quorumpeermain")
}

/// Reads a pid file: `Ok(None)` if there is none.
fn read_pid_file(path: &Path) -> Result<Option<i32>, String> {
    match fs::read_to_string(path) {
        Ok(text) => match text.trim().parse::<i32>() {
            Ok(pid) if pid > 1 => Ok(Some(pid)),
            _ => Err(format!(
                "zooid: the pid file {} holds {:?}, not a process id; remove it if no server runs",
                path.display(),
                text.trim()
            )),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "zooid: cannot read the pid file {}: {e}",
            path.display()
        )),
    }
}

/// Removes the pid file if it still names `pid` (another start may have replaced it).
fn remove_pid_file(path: &Path, pid: i32) {
    if matches!(read_pid_file(path), Ok(Some(p)) if p == pid) {
        let _ = fs::remove_file(path);
    }
}

/// The user and host parts of zkServer.sh's output file name.
fn user_and_host() -> (String, String) {
    let user = env_var("USER")
        .or_else(|| env_var("LOGNAME"))
        .unwrap_or_else(user_name_of_euid);
    let host = env_var("HOSTNAME")
        .or_else(|| {
            fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "localhost".into());
    (user, host)
}

/// The name of the effective user from /etc/passwd, else its number (`$USER` is unset under
/// cron and some service managers).
fn user_name_of_euid() -> String {
    // SAFETY: geteuid cannot fail and has no side effects.
    let uid = unsafe { sys::geteuid() }.to_string();
    fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut f = line.split(':');
                let name = f.next()?;
                (f.nth(1)? == uid).then(|| name.to_string())
            })
        })
        .unwrap_or(uid)
}

/// `<dir>/zookeeper-$USER-server-$HOSTNAME.out`, dir = `$ZOO_LOG_DIR`, else the dataDir.
fn output_file_path(data_dir: &Path) -> PathBuf {
    let dir = env_var("ZOO_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| data_dir.to_path_buf());
    let (user, host) = user_and_host();
    dir.join(format!("zookeeper-{user}-server-{host}.out"))
}

// ---------------------------------------------------------------- the client port

/// Where to connect to reach a server listening on `addr` (a wildcard means loopback).
fn connect_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// Sends a four-letter word and returns the whole reply (until the server closes).
fn four_letter(addr: SocketAddr, word: &str, timeout: Duration) -> io::Result<String> {
    let deadline = Instant::now() + timeout;
    let mut s = TcpStream::connect_timeout(&connect_addr(addr), timeout)?;
    s.write_all(word.as_bytes())?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no complete reply"));
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf)? {
            0 => return Ok(String::from_utf8_lossy(&out).into_owned()),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Whether a `srvr` reply shows a server that serves clients. A refusal because `srvr` is not
/// in `4lw.commands.whitelist` still comes from a serving server.
fn reply_shows_serving(reply: &str) -> bool {
    !reply.is_empty() && !reply.contains("not currently serving")
}

/// The listening process that holds TCP `port`, from /proc (best effort).
fn port_holder(port: u16) -> Option<(i32, String)> {
    let mut sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retr uid timeout inode; st 0A is LISTEN.
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let local_port = f[1]
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                sockets.push(PathBuf::from(format!("socket:[{}]", f[9])));
            }
        }
    }
    if sockets.is_empty() {
        return None;
    }
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|t| sockets.contains(&t)) {
                return Some((pid, cmdline_of(pid)));
            }
        }
    }
    None
}

/// Tries to bind the client address as the server will; explains a failure.
fn check_port(addr: SocketAddr) -> Result<(), String> {
    let e = match std::net::TcpListener::bind(addr) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let why = match e.kind() {
        io::ErrorKind::AddrInUse => {
            let holder = match port_holder(addr.port()) {
                Some((pid, cmd)) => format!(" (process {pid}: {cmd})"),
                None => String::new(),
            };
            format!(
                "another process holds this port{holder}; stop it, or set clientPort to a \
                 free port"
            )
        }
        io::ErrorKind::AddrNotAvailable => {
            "clientPortAddress is not an address of this machine".to_string()
        }
        io::ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges; use a higher clientPort".to_string()
        }
        _ => "check clientPort and clientPortAddress".to_string(),
    };
    Err(format!("zooid: cannot listen on {addr}: {e}; {why}"))
}

// ---------------------------------------------------------------- start

/// Checks a `server.N` configuration before spawning: the myid file and that every host
/// resolves (ZooKeeper fails on both, with "Address unresolved" for the latter).
fn check_ensemble(cfg: &ServerConfig, config_text: &str, path: &Path) -> Result<(), String> {
    if cfg.servers.is_empty() {
        return Ok(());
    }
    let myid_path = cfg.data_dir.join("myid");
    match zooid_config::read_myid(&cfg.data_dir) {
        Err(e) => return Err(format!("zooid: {e}")),
        Ok(None) if !cfg.is_standalone() => {
            return Err(format!(
                "zooid: {} is missing: a server listed in server.N lines needs it to know which \
                 one it is; write its N, e.g. echo 1 > {}",
                myid_path.display(),
                myid_path.display()
            ))
        }
        Ok(Some(id)) if !cfg.is_standalone() && !cfg.servers.contains_key(&id) => {
            let ids: Vec<String> = cfg.servers.keys().map(|k| format!("server.{k}")).collect();
            return Err(format!(
                "zooid: {} says {id}, but {} lists only {}; write the N of this machine's \
                 server.N line into it",
                myid_path.display(),
                path.display(),
                ids.join(", ")
            ));
        }
        Ok(_) => {}
    }
    if cfg.is_standalone() {
        return Ok(());
    }
    for (id, spec) in &cfg.servers {
        let endpoint = (spec.host.clone(), spec.election_port);
        if let Err(why) = resolve_bounded(endpoint) {
            let key = format!("server.{id}");
            let at = match line_of_key(config_text, &key) {
                Some(n) => format!("{}:{n}", path.display()),
                None => path.display().to_string(),
            };
            return Err(format!(
                "zooid: {at}: {key}: Address unresolved: {}:{}: {why}; use an IP address or a \
                 host name this machine resolves (check /etc/hosts)",
                spec.host, spec.election_port
            ));
        }
    }
    Ok(())
}

/// Resolves a host name on a helper thread, giving up after [`RESOLVE_TIMEOUT`].
fn resolve_bounded(endpoint: (String, u16)) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = endpoint
            .to_socket_addrs()
            .map(|mut a| a.next().is_some())
            .map_err(|e| e.to_string());
        let _ = tx.send(r);
    });
    match rx.recv_timeout(RESOLVE_TIMEOUT) {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err("no address".into()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "no answer from the resolver within {} s",
            RESOLVE_TIMEOUT.as_secs()
        )),
    }
}

/// The 1-based line that sets `key` last.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let mut found = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if let Some(rest) = line.strip_prefix(key) {
            if rest.trim_start().starts_with(['=', ':']) {
                found = Some(i + 1);
            }
        }
    }
    found
}

/// A start that did not happen; the lines say why.
struct StartFailure(Vec<String>);

impl From<String> for StartFailure {
    fn from(line: String) -> StartFailure {
        StartFailure(vec![line])
    }
}

fn start(path: &Path, explicit: bool) -> u8 {
    print_flush("Starting zooid ... ");
    match try_start(path, explicit) {
        Ok(Started::Now) => {
            println!("STARTED");
            0
        }
        Ok(Started::Already(pid)) => {
            println!("already running as process {pid}.");
            FAILED
        }
        Ok(Started::NotAnswering(pid, why)) => {
            // Not "FAILED": it runs (the pid file stays, `stop` works); it may be loading.
            println!("NOT ANSWERING YET (process {pid})");
            eprintln!("{why}");
            FAILED
        }
        Err(StartFailure(lines)) => {
            println!("FAILED TO START");
            for line in lines {
                eprintln!("{line}");
            }
            FAILED
        }
    }
}

enum Started {
    Now,
    Already(i32),
    /// Still running after the bound, without an answer; the message says what to do.
    NotAnswering(i32, String),
}

fn try_start(path: &Path, explicit: bool) -> Result<Started, StartFailure> {
    let (target, warnings) = load_strict(path, explicit)?;
    let Some(cfg) = target.cfg.as_ref() else {
        unreachable!("a strict load always has the config");
    };
    for w in &warnings {
        eprintln!("zooid: warning: {w}");
    }
    let text = fs::read_to_string(path).unwrap_or_default();
    check_ensemble(cfg, &text, path)?;
    // An earlier start that is still running? (An unreadable pid file, e.g. because dataDir
    // is not a directory, is explained by the checks below.)
    if let Ok(Some(pid)) = read_pid_file(&target.pid_file) {
        match process(pid) {
            Proc::Alive { cmdline } if looks_like_server(&cmdline) => {
                return Ok(Started::Already(pid))
            }
            Proc::Alive { cmdline } => eprintln!(
                "zooid: note: replacing the stale pid file {} (process {pid} is now `{cmdline}`)",
                target.pid_file.display()
            ),
            Proc::Gone => {}
        }
    }

    prepare_data_dir(&target.data_dir)?;
    if let Some(dir) = target
        .pid_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        fs::create_dir_all(dir).map_err(|e| {
            format!(
                "zooid: cannot create {} for the pid file: {e}",
                dir.display()
            )
        })?;
    }
    let mut pid_file = File::create(&target.pid_file).map_err(|e| {
        format!(
            "zooid: cannot write the pid file {}: {e}",
            target.pid_file.display()
        )
    })?;
    let result = spawn_and_wait(path, &target, &mut pid_file);
    if result.is_err() {
        // Only an empty file (spawn failed) or our child's pid can be in it here.
        if fs::read_to_string(&target.pid_file).is_ok_and(|t| t.is_empty()) {
            let _ = fs::remove_file(&target.pid_file);
        }
    }
    result
}

/// Creates the dataDir (as zkServer.sh's `mkdir -p`) and checks that we may write there.
fn prepare_data_dir(dir: &Path) -> Result<(), StartFailure> {
    // The user we run as, not $USER: `su`, `setpriv` and some service managers leave it stale.
    let user = user_name_of_euid();
    fs::create_dir_all(dir).map_err(|e| {
        let what = if dir.exists() && !dir.is_dir() {
            "it exists but is not a directory".to_string()
        } else {
            format!("cannot create it: {e}")
        };
        format!(
            "zooid: dataDir {} is not usable: {what}; create it, or point dataDir at a \
             directory user {user} may write",
            dir.display()
        )
    })?;
    let probe = dir.join(format!(".zooid-start-{}", std::process::id()));
    match File::create(&probe) {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "zooid: dataDir {} is not writable by user {user}: {e}; fix its owner or \
             permissions (chown {user} {}), or point dataDir at a writable directory",
            dir.display(),
            dir.display()
        )
        .into()),
    }
}

fn spawn_and_wait(
    path: &Path,
    target: &Target,
    pid_file: &mut File,
) -> Result<Started, StartFailure> {
    check_port(target.client_addr)?;

    let out_path = output_file_path(&target.data_dir);
    if let Some(dir) = out_path.parent() {
        fs::create_dir_all(dir).map_err(|e| {
            format!(
                "zooid: cannot create the log directory {}: {e}",
                dir.display()
            )
        })?;
    }
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out_path)
        .map_err(|e| format!("zooid: cannot write {}: {e}", out_path.display()))?;
    let _ = writeln!(out, "==== zooid server start {}", path.display());
    let offset = out.seek(SeekFrom::End(0)).unwrap_or(0);
    let err = out
        .try_clone()
        .map_err(|e| format!("zooid: cannot share {}: {e}", out_path.display()))?;
    let exe = std::env::current_exe()
        .map_err(|e| format!("zooid: cannot find the zooid executable: {e}"))?;

    let mut command = Command::new(exe);
    command
        .arg("server")
        .arg("start-foreground")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches no memory of ours. A session of its
        // own detaches the daemon from the terminal, whose hangup would otherwise reach it.
        unsafe {
            command.pre_exec(|| {
                if sys::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("zooid: cannot start the server process: {e}"))?;
    let pid = child.id() as i32;
    if let Err(e) = pid_file.write_all(pid.to_string().as_bytes()) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "zooid: cannot write the pid file {}: {e}; the server was stopped again",
            target.pid_file.display()
        )
        .into());
    }

    let member = target.cfg.as_ref().is_some_and(|c| !c.is_standalone());
    match wait_until_serving(&mut child, target.client_addr, start_timeout(), member) {
        Ready::Serving => Ok(Started::Now),
        Ready::Exited(status) => {
            remove_pid_file(&target.pid_file, pid);
            let mut lines = child_errors(&out_path, offset);
            lines.push(format!(
                "zooid: the server process {pid} {}; its output is in {}",
                describe_exit(status),
                out_path.display()
            ));
            Err(StartFailure(lines))
        }
        Ready::TimedOut(waited) => Ok(Started::NotAnswering(
            pid,
            format!(
            "zooid: process {pid} is running but did not answer srvr on {} within {} s; it may \
             still be loading a large dataDir. Check with `zooid server status`, read {}, or set \
             ZOOID_START_TIMEOUT (seconds) to wait longer",
            connect_addr(target.client_addr),
            waited.as_secs(),
            out_path.display()
        ),
        )),
    }
}

fn start_timeout() -> Duration {
    let s = env_var("ZOOID_START_TIMEOUT")
        .and_then(|s| s.parse().ok())
        .unwrap_or(START_TIMEOUT_S);
    Duration::from_secs(s)
}

fn stop_timeout() -> Duration {
    let s = env_var("ZOOID_STOP_TIMEOUT")
        .and_then(|s| s.parse().ok())
        .unwrap_or(STOP_TIMEOUT_S);
    Duration::from_secs(s)
}

enum Ready {
    Serving,
    Exited(ExitStatus),
    TimedOut(Duration),
}

/// Wait for the child to serve clients; an ensemble member (`member`) only has to answer,
/// since it cannot serve before a quorum of members is up.
fn wait_until_serving(
    child: &mut Child,
    addr: SocketAddr,
    timeout: Duration,
    member: bool,
) -> Ready {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Ready::Exited(status);
        }
        // The port was free when we checked, so an answer now comes from our child.
        let reply = four_letter(addr, "srvr", PROBE_TIMEOUT).unwrap_or_default();
        if reply_shows_serving(&reply) || (member && !reply.is_empty()) {
            return Ready::Serving;
        }
        if started.elapsed() >= timeout {
            return Ready::TimedOut(timeout);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "exited".to_string(),
    }
}

/// What the child wrote since `offset` that explains its exit: its `zooid: ` lines, else its
/// ERROR lines, else the last lines.
fn child_errors(out_path: &Path, offset: u64) -> Vec<String> {
    let mut text = String::new();
    if let Ok(mut f) = File::open(out_path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let from = offset.max(len.saturating_sub(LOG_TAIL_BYTES));
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let mut raw = Vec::new();
            let _ = f.read_to_end(&mut raw);
            text = String::from_utf8_lossy(&raw).into_owned();
        }
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let own: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("zooid: "))
        .map(|l| l.to_string())
        .collect();
    if !own.is_empty() {
        return own;
    }
    let errors: Vec<String> = lines
        .iter()
        .filter(|l| l.contains(" ERROR ") || l.contains("panicked"))
        .map(|l| l.to_string())
        .collect();
    if !errors.is_empty() {
        return errors;
    }
    let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
    let mut tail: Vec<String> = lines[skip..].iter().map(|l| l.to_string()).collect();
    if tail.is_empty() {
        tail.push("zooid: the server wrote nothing before it exited".to_string());
    }
    tail
}

// ---------------------------------------------------------------- stop

fn stop(path: &Path, explicit: bool) -> u8 {
    let target = match load_lenient(path, explicit) {
        Ok(t) => t,
        Err(e) => {
            println!("Stopping zooid ... FAILED");
            eprintln!("{e}");
            return FAILED;
        }
    };
    print_flush("Stopping zooid ... ");
    let pid = match read_pid_file(&target.pid_file) {
        Ok(Some(pid)) => pid,
        Ok(None) => {
            // zkServer.sh's words, and its exit status 0: nothing to do is not a failure.
            println!(
                "no zooid to stop (could not find file {})",
                target.pid_file.display()
            );
            return 0;
        }
        Err(e) => {
            println!("FAILED");
            eprintln!("{e}");
            return FAILED;
        }
    };
    match process(pid) {
        Proc::Gone => {
            remove_pid_file(&target.pid_file, pid);
            println!(
                "no zooid to stop (process {pid} from {} is not running; removed the stale pid file)",
                target.pid_file.display()
            );
            0
        }
        Proc::Alive { cmdline } if !looks_like_server(&cmdline) => {
            println!("FAILED");
            let what = if cmdline.is_empty() {
                String::from("a kernel thread")
            } else {
                format!("`{cmdline}`")
            };
            eprintln!(
                "zooid: {} names process {pid}, which is {what}, not a zooid server; not \
                 stopping it. The server is gone: remove the stale pid file",
                target.pid_file.display()
            );
            FAILED
        }
        Proc::Alive { .. } => match terminate(pid) {
            Ok(note) => {
                remove_pid_file(&target.pid_file, pid);
                println!("STOPPED{note}");
                0
            }
            Err(e) => {
                println!("FAILED");
                eprintln!("{e}");
                FAILED
            }
        },
    }
}

/// SIGTERM, wait (bounded), then SIGKILL; `Ok` once the process is gone, with a note if it
/// had to be killed.
fn terminate(pid: i32) -> Result<&'static str, String> {
    signal(pid, sys::SIGTERM)?;
    let timeout = stop_timeout();
    if wait_gone(pid, timeout) {
        return Ok("");
    }
    eprintln!(
        "zooid: process {pid} did not exit within {} s of SIGTERM; sending SIGKILL",
        timeout.as_secs()
    );
    signal(pid, sys::SIGKILL)?;
    if wait_gone(pid, KILL_WAIT) {
        Ok(" (killed)")
    } else {
        Err(format!(
            "zooid: process {pid} is still there after SIGKILL; it may be stuck in the kernel \
             (a hung disk or NFS mount)"
        ))
    }
}

fn signal(pid: i32, sig: i32) -> Result<(), String> {
    assert!(pid > 1, "pid {pid} must come from a validated pid file");
    // SAFETY: plain system call on a pid read from the pid file and checked above.
    if unsafe { sys::kill(pid, sig) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(sys::ESRCH) {
        return Ok(()); // gone already
    }
    Err(format!(
        "zooid: cannot signal process {pid}: {e}; run this as the user that started the server"
    ))
}

fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let started = Instant::now();
    loop {
        if process(pid) == Proc::Gone {
            return true;
        }
        if started.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

// ---------------------------------------------------------------- status

fn status(path: &Path, explicit: bool) -> u8 {
    let target = match load_lenient(path, explicit) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            println!("Error contacting service. It is probably not running.");
            return FAILED;
        }
    };
    println!(
        "Client port found: {}. Client address: {}. Client SSL: false.",
        target.client_addr.port(),
        target.client_host_shown
    );
    let reply = four_letter(target.client_addr, "srvr", STATUS_TIMEOUT).unwrap_or_default();
    let modes: Vec<&str> = reply.lines().filter(|l| l.contains("Mode")).collect();
    if !modes.is_empty() {
        println!("{}", modes.join(" "));
        return 0;
    }
    println!("Error contacting service. It is probably not running.");
    if reply.contains("not currently serving") {
        eprintln!(
            "zooid: the server on {} is running but not serving yet: it is electing a leader or \
             syncing with one. An ensemble serves once a majority of its server.N members is up; \
             start the others, and check that their quorum and election ports are reachable",
            connect_addr(target.client_addr)
        );
    } else if reply.contains("not in the whitelist") {
        eprintln!(
            "zooid: the server on {} answered, but refuses srvr: add srvr to \
             4lw.commands.whitelist",
            connect_addr(target.client_addr)
        );
    } else if let Ok(Some(pid)) = read_pid_file(&target.pid_file) {
        if let Proc::Alive { .. } = process(pid) {
            eprintln!(
                "zooid: process {pid} (from {}) is running but does not answer on {}; see {}",
                target.pid_file.display(),
                connect_addr(target.client_addr),
                output_file_path(&target.data_dir).display()
            );
        }
    }
    FAILED
}

fn print_flush(text: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn config_path_follows_zkserver_order() {
        assert_eq!(
            config_path(Some("a.cfg"), vars(&[("ZOOCFG", "b.cfg")])),
            PathBuf::from("a.cfg")
        );
        assert_eq!(
            config_path(None, vars(&[("ZOOCFG", "b.cfg"), ("ZOOCFGDIR", "/etc/zk")])),
            PathBuf::from("/etc/zk/b.cfg")
        );
        assert_eq!(
            config_path(
                None,
                vars(&[("ZOOCFG", "/x/b.cfg"), ("ZOOCFGDIR", "/etc/zk")])
            ),
            PathBuf::from("/x/b.cfg")
        );
        assert_eq!(
            config_path(None, vars(&[("ZOOCFGDIR", "/etc/zk")])),
            PathBuf::from("/etc/zk/zoo.cfg")
        );
        assert_eq!(config_path(None, vars(&[])), PathBuf::from("zoo.cfg"));
    }

    #[test]
    fn scan_key_takes_the_last_value_and_skips_comments() {
        let text = "# dataDir=/no\ndataDir = /a \n clientPort:2182\ndataDir=/b\n";
        assert_eq!(scan_key(text, "dataDir").as_deref(), Some("/b"));
        assert_eq!(scan_key(text, "clientPort").as_deref(), Some("2182"));
        assert_eq!(scan_key(text, "clientPortAddress"), None);
    }

    #[test]
    fn line_of_key_finds_server_lines() {
        let text = "tickTime=2000\nserver.1=a:1:2\nserver.10=b:1:2\nserver.1 = c:1:2\n";
        assert_eq!(line_of_key(text, "server.1"), Some(4));
        assert_eq!(line_of_key(text, "server.10"), Some(3));
        assert_eq!(line_of_key(text, "server.2"), None);
    }

    #[test]
    fn pid_file_must_hold_a_real_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("zookeeper_server.pid");
        assert_eq!(read_pid_file(&p), Ok(None));
        for bad in ["", "abc", "0", "1", "-5"] {
            fs::write(&p, bad).expect("write");
            assert!(read_pid_file(&p).is_err(), "{bad:?} accepted");
        }
        fs::write(&p, "32152").expect("write");
        assert_eq!(read_pid_file(&p), Ok(Some(32152)));
        fs::write(&p, "32152\n").expect("write");
        assert_eq!(read_pid_file(&p), Ok(Some(32152)));
        remove_pid_file(&p, 4);
        assert!(p.exists(), "removed a pid file naming another process");
        remove_pid_file(&p, 32152);
        assert!(!p.exists());
    }

    #[test]
    fn our_own_process_is_alive_and_a_reaped_child_is_gone() {
        let me = std::process::id() as i32;
        assert!(matches!(process(me), Proc::Alive { .. }));
        let mut child = Command::new("true").spawn().expect("spawn true");
        let pid = child.id() as i32;
        // Not yet reaped: a zombie counts as gone.
        assert!(wait_gone(pid, Duration::from_secs(10)));
        child.wait().expect("wait");
        assert_eq!(process(pid), Proc::Gone);
    }

    #[test]
    fn server_command_lines() {
        assert!(looks_like_server(
            "/usr/bin/zooid server start-foreground /etc/zoo.cfg"
        ));
        assert!(looks_like_server(
            "java -cp /usr/share/java/zookeeper.jar org.apache.zookeeper.server.quorum.QuorumPeerMain zoo.cfg"
        ));
        assert!(looks_like_server(UNREADABLE));
        assert!(!looks_like_server(""), "a kernel thread");
        assert!(!looks_like_server("/usr/sbin/sshd -D"));
    }

    #[test]
    fn serving_replies() {
        assert!(reply_shows_serving(
            "Zookeeper version: 3.8.4\nMode: standalone\n"
        ));
        assert!(reply_shows_serving(
            "srvr is not executed because it is not in the whitelist.\n"
        ));
        assert!(!reply_shows_serving(""));
        assert!(!reply_shows_serving(
            "This ZooKeeper instance is not currently serving requests\n"
        ));
    }

    #[test]
    fn a_taken_port_names_its_holder() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let e = check_port(addr).expect_err("port is taken");
        assert!(e.contains("in use"), "{e}");
        assert!(
            e.contains(&format!("process {}", std::process::id())),
            "{e}"
        );
        drop(l);
        assert_eq!(check_port(addr), Ok(()));
    }

    #[test]
    fn child_errors_prefers_zooid_lines_after_the_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("out");
        fs::write(&p, "zooid: old error\n").expect("write");
        let offset = fs::metadata(&p).expect("meta").len();
        let mut f = OpenOptions::new().append(true).open(&p).expect("open");
        f.write_all(b"2024 INFO starting\nzooid: zoo.cfg:3: bad\n")
            .expect("append");
        assert_eq!(
            child_errors(&p, offset),
            vec!["zooid: zoo.cfg:3: bad".to_string()]
        );
        f.write_all(b"").expect("append");
        let only_info = dir.path().join("out2");
        fs::write(&only_info, "a\nb\n").expect("write");
        assert_eq!(
            child_errors(&only_info, 0),
            vec!["a".to_string(), "b".to_string()]
        );
    }
}
