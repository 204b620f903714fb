//! The zooid server: turns a validated [`ServerConfig`] into a running standalone server (the
//! tokio driver around the node core) and exposes a handle that tests and the binary use to
//! start and stop it.

pub mod driver;
pub mod fourlw;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use zooid_config::ServerConfig;
use zooid_node::{Core, CoreConfig};
use zooid_tree::DataTree;

/// Why the server could not start; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("dataDir {path} is not usable: {source} (create it, or point dataDir at a writable directory)")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
}

/// The core's settings, taken from zoo.cfg.
pub fn core_config(cfg: &ServerConfig) -> CoreConfig {
    CoreConfig {
        server_id: 1,
        tick_ms: cfg.tick_ms.max(1) as i64,
        min_session_timeout_ms: cfg.min_session_timeout_ms as i32,
        max_session_timeout_ms: cfg.max_session_timeout_ms as i32,
        max_client_cnxns: cfg.max_client_cnxns,
        extended_types_enabled: cfg.extended_types_enabled,
        super_digest: cfg.super_digest.clone(),
        container_check_interval_ms: cfg.container_check_interval_ms as i64,
        container_max_per_minute: cfg.container_max_per_minute,
        container_max_never_used_ms: cfg.container_max_never_used_interval_ms as i64,
        digest_enabled: cfg.digest_enabled,
        enforce_quota: cfg.enforce_quota,
    }
}

/// A running server.
pub struct ServerHandle {
    pub client_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// Stop accepting, close every connection and wait for the tasks to end.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Bind the client port and start serving on the current tokio runtime.
pub async fn start(cfg: &ServerConfig) -> Result<ServerHandle, StartError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| StartError::DataDir {
        path: cfg.data_dir.display().to_string(),
        source,
    })?;
    let addr = cfg.client_addr();
    let listener = TcpListener::bind(addr).await.map_err(|source| {
        let hint = match source.kind() {
            std::io::ErrorKind::AddrInUse => {
                " (another process holds this port: stop it, or set clientPort to a free port)"
            }
            std::io::ErrorKind::AddrNotAvailable => {
                " (clientPortAddress is not an address of this machine)"
            }
            std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
            _ => "",
        };
        StartError::Bind { addr, source, hint }
    })?;
    let client_addr = listener.local_addr().unwrap_or(addr);
    let now = driver::now_ms();
    let core = Core::new(core_config(cfg), DataTree::new(), now);
    let info = fourlw::ServerInfo {
        client_port: client_addr.port(),
        data_dir: cfg.data_dir.display().to_string(),
        data_log_dir: cfg
            .data_log_dir
            .as_ref()
            .unwrap_or(&cfg.data_dir)
            .display()
            .to_string(),
        tick_ms: cfg.tick_ms,
        max_client_cnxns: cfg.max_client_cnxns,
        min_session_timeout_ms: cfg.min_session_timeout_ms,
        max_session_timeout_ms: cfg.max_session_timeout_ms,
        server_id: 0,
        client_addr: client_addr.to_string(),
    };
    let dcfg = driver::DriverConfig {
        max_frame_len: cfg.jute_max_buffer,
        four_letter_words: cfg.four_letter_words.clone(),
        info: Arc::new(info),
    };
    let (shutdown, rx) = watch::channel(false);
    let task = tokio::spawn(driver::serve(listener, core, dcfg, rx));
    tracing::info!(%client_addr, data_dir = %cfg.data_dir.display(), "zooid serving clients (standalone)");
    Ok(ServerHandle {
        client_addr,
        shutdown,
        task,
    })
}
