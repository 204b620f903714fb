//! The `zooid` command: the server, and tools for its data directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use zooid_config::ServerConfig;

const USAGE: &str = "usage:
  zooid server start-foreground [path/to/zoo.cfg]   run a server in the foreground
                                                    (no config: standalone on 127.0.0.1:2181,
                                                    data in ./data)
  zooid server start|stop|restart|status [zoo.cfg]  run it as a daemon, like zkServer.sh: pid in
                                                    $ZOOPIDFILE or dataDir/zookeeper_server.pid,
                                                    output in $ZOO_LOG_DIR (else dataDir)/
                                                    zookeeper-$USER-server-$HOSTNAME.out; config:
                                                    the argument, else $ZOOCFG, $ZOOCFGDIR/zoo.cfg,
                                                    ./zoo.cfg
  zooid server version | zooid version              print the version
  zooid snapshot dump [-d] FILE                     print a snapshot (-d: with data)
  zooid txnlog dump [-d] FILE                       print a txn log (-d: with data)
  zooid datadir check DIR [LOGDIR]                  load a data directory and report its state
  zooid migrate check [zoo.cfg]                     read a ZooKeeper installation (zoo.cfg, JVM
                                                    flags, JAAS, dataDir) as zooid would and
                                                    list what zooid would not honour
  zooid cleanup -n N [zoo.cfg | DIR [LOGDIR]]       keep the newest N snapshots (N >= 3) and
                                                    the logs they need; delete the rest
  zooid bench [--server H:P] [--workload W] ...     load a ZooKeeper-protocol server and report
                                                    ops/s and latency (zooid bench --help)
  zooid cli [-server H:P[,H:P...][/chroot]]         the zkCli.sh shell: interactive with history
            [-timeout MS] [-r] [command args...]    and tab completion, or one command and exit";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["server", word, rest @ ..]
            if rest.len() <= 1 && zooid_server::lifecycle::Action::parse(word).is_some() =>
        {
            let action = zooid_server::lifecycle::Action::parse(word).expect("matched above");
            ExitCode::from(zooid_server::lifecycle::run(action, rest.first().copied()))
        }
        ["server", "start-foreground", rest @ ..] | ["server", rest @ ..]
            if rest.len() <= 1 && !matches!(rest.first(), Some(&"version")) =>
        {
            run_server(rest.first().map(PathBuf::from))
        }
        ["server", "version"] | ["version"] | ["--version"] => {
            println!("zooid {}", zooid_server::fourlw::version_string());
            ExitCode::SUCCESS
        }
        ["snapshot", "dump", rest @ ..] => dump(rest, |p, d, out| {
            zooid_storage::snapshot::dump(p, d, out).map_err(|e| e.to_string())
        }),
        ["txnlog", "dump", rest @ ..] => dump(rest, |p, d, out| {
            zooid_storage::txnlog::dump(p, d, out).map_err(|e| e.to_string())
        }),
        ["datadir", "check", dir] => check_datadir(Path::new(dir), Path::new(dir)),
        ["datadir", "check", dir, logdir] => check_datadir(Path::new(dir), Path::new(logdir)),
        ["cleanup", "-n", n, rest @ ..] => cleanup(n, rest),
        ["migrate", "check", rest @ ..] if rest.len() <= 1 => {
            ExitCode::from(zooid_server::migrate::run(rest.first().copied()))
        }
        ["bench", rest @ ..] => zooid_client::bench::main(rest),
        ["cli", rest @ ..] => zooid_client::shell::main(rest),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `snapshot dump` / `txnlog dump`: `[-d] FILE`.
fn dump(args: &[&str], f: impl Fn(&Path, bool, &mut String) -> Result<(), String>) -> ExitCode {
    let (with_data, file) = match args {
        ["-d", file] | [file, "-d"] => (true, file),
        [file] => (false, file),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut out = String::new();
    let result = f(Path::new(file), with_data, &mut out);
    print!("{out}");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zooid: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Load a data directory as start-up would (without changing it) and say what is there.
fn check_datadir(dir: &Path, log_base: &Path) -> ExitCode {
    let version = zooid_storage::recovery::version_dir_of;
    let (snap_dir, log_dir) = (version(dir), version(log_base));
    match zooid_storage::recovery::check(&snap_dir, &log_dir) {
        Ok(r) => {
            for (p, why) in &r.skipped_snapshots {
                println!("damaged snapshot skipped: {}: {why}", p.display());
            }
            match &r.snapshot {
                Some((z, p)) => println!("snapshot: {} (zxid {z:#x})", p.display()),
                None => println!("snapshot: none"),
            }
            println!("txns replayed from the log: {}", r.replayed);
            if let Some(t) = &r.torn {
                println!(
                    "torn last record: {} at offset {} ({}); start-up will cut it off",
                    t.path.display(),
                    t.offset,
                    t.reason
                );
            }
            println!(
                "last zxid: {:#x}
nodes: {}
sessions: {}
digest: {} ({} mismatches)",
                r.tree.last_zxid(),
                r.tree.node_count(),
                r.tree.sessions().len(),
                r.tree.digest(),
                r.digest_mismatches
            );
            if r.digest_mismatches > 0 {
                ExitCode::FAILURE
            } else {
                println!("OK");
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("zooid: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cleanup -n N [zoo.cfg | DIR [LOGDIR]]`, like zkCleanup.sh.
fn cleanup(n: &str, rest: &[&str]) -> ExitCode {
    let Ok(n) = n.parse::<usize>() else {
        eprintln!("zooid: -n takes the number of snapshots to keep, e.g. cleanup -n 3");
        return ExitCode::from(2);
    };
    if n < 3 {
        eprintln!("zooid: keep at least 3 snapshots (-n 3), as ZooKeeper requires");
        return ExitCode::from(2);
    }
    let (data, log) = match rest {
        [cfg] if cfg.ends_with(".cfg") => match ServerConfig::load(Path::new(cfg), None) {
            Ok((c, _)) => {
                let log = c.data_log_dir.clone().unwrap_or_else(|| c.data_dir.clone());
                (c.data_dir, log)
            }
            Err(e) => {
                eprintln!("zooid: {e}");
                return ExitCode::from(2);
            }
        },
        [dir] => (PathBuf::from(dir), PathBuf::from(dir)),
        [dir, log] => (PathBuf::from(dir), PathBuf::from(log)),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match zooid_storage::purge::purge(&data.join("version-2"), &log.join("version-2"), n) {
        Ok(removed) => {
            for p in &removed {
                println!("removed {}", p.display());
            }
            println!("{} files removed", removed.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("zooid: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZOOID_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn run_server(config: Option<PathBuf>) -> ExitCode {
    zooid_server::persist::tune_allocator();
    init_logging();
    let jvm_flags = zooid_config::server_jvm_flags(
        std::env::var("SERVER_JVMFLAGS").ok(),
        std::env::var("JVMFLAGS").ok(),
    );
    let cfg = match &config {
        None => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            ServerConfig::default_standalone(cwd.join("data"))
        }
        Some(path) => match ServerConfig::load(path, jvm_flags.as_deref()) {
            Ok((cfg, warnings)) => {
                for w in warnings {
                    tracing::warn!("{w}");
                }
                cfg
            }
            Err(e) => {
                eprintln!("zooid: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zooid: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let handle = match zooid_server::start(&cfg).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("zooid: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut handle = handle;
        let failure = tokio::select! {
            _ = wait_for_signal() => None,
            reason = handle.failed() => Some(reason),
        };
        tracing::info!("shutting down");
        handle.stop().await;
        match failure {
            None => ExitCode::SUCCESS,
            Some(reason) => {
                eprintln!("zooid: stopped because the disk failed: {reason}. Free space or fix the disk, then start again; every acknowledged write will be recovered.");
                ExitCode::FAILURE
            }
        }
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
