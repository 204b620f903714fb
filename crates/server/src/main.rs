//! The `zooid` command: `zooid server start-foreground [zoo.cfg]` and `zooid version`.

use std::path::PathBuf;
use std::process::ExitCode;

use zooid_config::ServerConfig;

const USAGE: &str = "usage:
  zooid server start-foreground [path/to/zoo.cfg]   run a server in the foreground
                                                    (no config: standalone on 127.0.0.1:2181,
                                                    data in ./data)
  zooid server version | zooid version              print the version";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["server", "start-foreground", rest @ ..] | ["server", rest @ ..]
            if rest.len() <= 1 && !matches!(rest.first(), Some(&"version")) =>
        {
            run_server(rest.first().map(PathBuf::from))
        }
        ["server", "version"] | ["version"] | ["--version"] => {
            println!("zooid {}", zooid_server::fourlw::version_string());
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
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
    init_logging();
    let jvm_flags = std::env::var("SERVER_JVMFLAGS").ok();
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
    if !cfg.is_standalone() {
        eprintln!(
            "zooid: {} lists {} server.N members; replicated ensembles are not supported yet, so this server cannot join them. Remove the server.N lines to run standalone.",
            config.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
            cfg.servers.len()
        );
        return ExitCode::from(2);
    }
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
        wait_for_signal().await;
        tracing::info!("shutting down");
        handle.stop().await;
        ExitCode::SUCCESS
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
