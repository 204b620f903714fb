//! The zooid server: turns a validated [`ServerConfig`] into a running standalone server (the
//! tokio driver around the node core, the AdminServer and the metrics endpoint) and exposes a
//! handle that tests and the binary use to start and stop it.

pub mod admin;
pub mod commands;
pub mod driver;
pub mod ensemble;
pub mod fourlw;
pub mod lifecycle;
pub mod metrics;
pub mod migrate;
pub mod peer_net;
pub mod persist;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use zooid_config::ServerConfig;
use zooid_node::{Core, CoreConfig};
use zooid_storage::snapshot::Layout;
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
    #[error("cannot load the data in {dir}: {source}")]
    Recovery {
        dir: String,
        source: zooid_storage::recovery::RecoveryError,
    },
    /// A replicated ensemble's settings that cannot work; the text says what to change.
    #[error("{0}")]
    Ensemble(String),
    /// The client port's TLS stores or settings; the text names the file, setting and fix.
    #[error("TLS for clients: {0}")]
    Tls(#[from] tls::TlsError),
    #[error(
        "cannot write the start-up snapshot in {dir}: {source} (check free space and permissions)"
    )]
    Snapshot {
        dir: String,
        source: zooid_storage::snapshot::SnapError,
    },
}

/// The core's settings, taken from zoo.cfg.
pub fn core_config(cfg: &ServerConfig) -> CoreConfig {
    let sasl = &cfg.sasl;
    let sasl_server = (sasl.digest_users.is_some() || sasl.provider_registered).then(|| {
        zooid_node::core::SaslServer {
            digest: sasl
                .digest_users
                .clone()
                .map(|users| zooid_node::sasl::DigestUsers {
                    users,
                    super_users: sasl.super_users.clone(),
                    super_password: sasl.super_password.clone(),
                }),
            remove_host: sasl.remove_host,
            remove_realm: sasl.remove_realm,
            allow_failed: sasl.allow_failed,
            acl_scheme: sasl.provider_registered,
            let_any: sasl.let_any.clone(),
        }
    });
    CoreConfig {
        server_id: 1,
        cert_scheme: cfg.client_tls().then(|| cfg.ssl.auth_provider.clone()),
        sasl: sasl_server,
        required_schemes: sasl.required_schemes.clone(),
        random_seed: rand::random(),
        tick_ms: cfg.tick_ms.max(1) as i64,
        min_session_timeout_ms: cfg.min_session_timeout_ms as i32,
        max_session_timeout_ms: cfg.max_session_timeout_ms as i32,
        max_client_cnxns: cfg.max_client_cnxns,
        max_cnxns: cfg.max_cnxns,
        connection_throttle: zooid_node::core::ConnectionThrottle {
            tokens: cfg.connection_throttle_tokens,
            fill_ms: cfg.connection_throttle_fill_time_ms as i64,
            fill_count: cfg.connection_throttle_fill_count,
        },
        extended_types_enabled: cfg.extended_types_enabled,
        super_digest: cfg.super_digest.clone(),
        container_check_interval_ms: cfg.container_check_interval_ms as i64,
        container_max_per_minute: cfg.container_max_per_minute,
        container_max_never_used_ms: cfg.container_max_never_used_interval_ms as i64,
        digest_enabled: cfg.digest_enabled,
        enforce_quota: cfg.enforce_quota,
        reconfig_enabled: cfg.reconfig_enabled,
        standalone_enabled: cfg.standalone_enabled,
        local_sessions: cfg.local_sessions_enabled,
        local_sessions_upgrading: cfg.local_sessions_upgrading_enabled,
    }
}

/// The limits on taking requests. A leader's and a follower's share of
/// `globalOutstandingLimit` is the limit divided by the voters less one (with more than two
/// voters), as in ZooKeeper; an observer's and a standalone server's is all of it.
pub fn limits(cfg: &ServerConfig, member: bool) -> driver::Limits {
    let voters = cfg
        .servers
        .values()
        .filter(|s| s.role != zooid_config::PeerRole::Observer)
        .count();
    let observer = cfg.peer_type == zooid_config::PeerRole::Observer;
    let share = if member && !observer && voters > 2 {
        voters - 1
    } else {
        1
    };
    driver::Limits {
        outstanding: cfg.global_outstanding_limit as usize / share,
        throttle_max: cfg.request_throttle_max_requests as usize,
        stall: std::time::Duration::from_millis(cfg.request_throttle_stall_time_ms.max(1)),
        throttled_op_wait: (cfg.throttled_op_wait_time_ms > 0)
            .then(|| std::time::Duration::from_millis(cfg.throttled_op_wait_time_ms)),
        large_threshold: usize::try_from(cfg.large_request_threshold)
            .ok()
            .filter(|t| *t > 0),
        large_max: cfg.large_request_max_bytes as usize,
    }
}

/// ZooKeeper's Prometheus metrics provider; the only `metricsProvider.className` that opens
/// an endpoint.
pub const PROMETHEUS_PROVIDER: &str =
    "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";

/// A running server.
pub struct ServerHandle {
    pub client_addr: SocketAddr,
    /// Where the AdminServer listens (`admin.enableServer`), if it could bind.
    pub admin_addr: Option<SocketAddr>,
    /// Where `/metrics` is served (with the Prometheus metrics provider).
    pub metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// The AdminServer and metrics listeners.
    http_tasks: Vec<tokio::task::JoinHandle<()>>,
    fatal: Option<oneshot::Receiver<String>>,
    purge: Option<tokio::task::JoinHandle<()>>,
}

impl ServerHandle {
    /// Resolves if the server must stop on its own (the disk failed), with the reason.
    pub async fn failed(&mut self) -> String {
        match self.fatal.as_mut() {
            Some(rx) => match rx.await {
                Ok(reason) => reason,
                Err(_) => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    /// Stop accepting, close every connection and wait for the tasks to end.
    pub async fn stop(self) {
        if let Some(p) = &self.purge {
            p.abort();
        }
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        for t in self.http_tasks {
            let _ = t.await;
        }
    }
}

/// The AdminServer's listener, with `admin.enableServer`. A port that cannot be bound is
/// logged and the server runs without it (ZooKeeper's standalone server would exit; clients
/// matter more than the admin port).
async fn bind_admin(cfg: &ServerConfig) -> Option<TcpListener> {
    if !cfg.admin_enable_server {
        return None;
    }
    let addr = SocketAddr::new(cfg.admin_server_address, cfg.admin_server_port);
    match TcpListener::bind(addr).await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(%addr, error = %e, "cannot start the AdminServer; serving without it (set admin.serverPort to a free port, or admin.enableServer=false)");
            None
        }
    }
}

/// The `/metrics` listener, with ZooKeeper's Prometheus provider configured
/// (`metricsProvider.className`; `metricsProvider.httpPort` alone does nothing, as in
/// ZooKeeper). Like ZooKeeper, the server does not start without it.
async fn bind_metrics(cfg: &ServerConfig) -> Result<Option<TcpListener>, StartError> {
    match cfg.metrics_provider_class.as_deref() {
        None => return Ok(None),
        Some(PROMETHEUS_PROVIDER) => {}
        Some(other) => {
            tracing::warn!(class = other, "metricsProvider.className is not ZooKeeper's Prometheus provider; no metrics endpoint (mntr still reports them)");
            return Ok(None);
        }
    }
    let host = cfg
        .metrics_provider_http_host
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let addr = SocketAddr::new(host, cfg.metrics_provider_http_port.unwrap_or(7000));
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(source) => {
            let hint = match source.kind() {
                std::io::ErrorKind::AddrInUse => {
                    " (another process holds this port: stop it, or set metricsProvider.httpPort to a free port)"
                }
                _ => "",
            };
            Err(StartError::Bind { addr, source, hint })
        }
    }
}

/// This member's id from `dataDir/myid`, which an ensemble member must have and which must
/// name one of the server.N lines.
fn my_id(cfg: &ServerConfig) -> Result<zooid_config::ServerId, StartError> {
    let path = cfg.data_dir.join("myid");
    let id = zooid_config::read_myid(&cfg.data_dir)
        .map_err(|e| StartError::Ensemble(e.to_string()))?
        .ok_or_else(|| {
            StartError::Ensemble(format!(
                "{} is missing: a member of an ensemble needs the number of its server.N line there (e.g. echo 1 > {})",
                path.display(),
                path.display()
            ))
        })?;
    if !cfg.servers.contains_key(&id) {
        let ids: Vec<String> = cfg.servers.keys().map(|s| s.0.to_string()).collect();
        return Err(StartError::Ensemble(format!(
            "{} says {} but the configuration lists server.{}; write one of those ids in myid, or add a server.{} line",
            path.display(),
            id.0,
            ids.join(", server."),
            id.0
        )));
    }
    Ok(id)
}

/// Resolve a server line's host and port, saying which line when it cannot be.
/// The ensemble's members and timing, from zoo.cfg.
fn ensemble_config(
    cfg: &ServerConfig,
    my_id: zooid_config::ServerId,
    core: CoreConfig,
    snap_dir: std::path::PathBuf,
    log_dir: std::path::PathBuf,
    layout: zooid_storage::snapshot::Layout,
) -> Result<ensemble::EnsembleConfig, StartError> {
    use zooid_config::PeerRole;
    let mut members = std::collections::BTreeMap::new();
    let mut text_members = Vec::new();
    for (sid, s) in &cfg.servers {
        let id = zooid_zab::ServerId(sid.0 as i64);
        let observer = s.role == PeerRole::Observer;
        let member = zooid_zab::ConfigMember {
            sid: id,
            host: s.host.clone(),
            quorum_port: s.quorum_port,
            election_port: s.election_port,
            observer,
            client: s.client_addr.as_ref().map(|(h, p)| format!("{h}:{p}")),
            more: s.more_addresses.clone(),
        };
        let addr = ensemble::member_addr(&member).map_err(StartError::Ensemble)?;
        members.insert(id, addr);
        text_members.push(member);
    }
    if cfg.servers[&my_id].role == PeerRole::Observer && cfg.peer_type != PeerRole::Observer {
        tracing::warn!(
            "server.{} is an observer but peerType is not observer; running as an observer",
            my_id.0
        );
    }
    Ok(ensemble::EnsembleConfig {
        member: zooid_member::MemberConfig {
            my_id: zooid_zab::ServerId(my_id.0 as i64),
            timing: zooid_zab::Timing {
                tick_ms: cfg.tick_ms.max(1) as u64,
                init_limit: cfg.init_limit.max(1),
                sync_limit: cfg.sync_limit.max(1),
            },
            config_text: zooid_zab::config_text::render(&text_members, cfg.config_version)
                .into_bytes(),
            config: text_members,
            config_version: cfg.config_version,
            core,
            read_only_mode: cfg.read_only_mode_enabled,
            layout,
            commit_log_count: zooid_zab::DEFAULT_COMMIT_LOG_COUNT,
        },
        addrs: members,
        cnx_timeout: std::time::Duration::from_millis(cfg.cnx_timeout_ms.max(100) as u64),
        snap_dir,
        log_dir,
        config_file: cfg.config_file.clone().filter(|_| cfg.reconfig_enabled),
    })
}

/// Bind a peer port of this member, naming the server line when it cannot be.
async fn bind_peer(addr: SocketAddr, what: &str, sid: u64) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| StartError::Bind {
        addr,
        source,
        hint: if what == "quorum" {
            " (the quorum port of this member's server.N line; another process holds it, or the host is not an address of this machine)"
        } else {
            " (the election port of this member's server.N line; another process holds it, or the host is not an address of this machine)"
        },
    })
    .inspect_err(|_| tracing::error!(sid, what, "cannot bind a peer port"))
}

/// The client port's listener. All addresses (0.0.0.0, the default) means IPv6 too, as a
/// JVM's wildcard socket does: clients that resolve `localhost` to ::1 get in. Without IPv6
/// on the machine, IPv4 alone.
async fn bind_client(addr: SocketAddr) -> std::io::Result<TcpListener> {
    if addr.ip() == std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED) {
        let any = SocketAddr::new(std::net::Ipv6Addr::UNSPECIFIED.into(), addr.port());
        match dual_stack(any) {
            Ok(l) => return Ok(l),
            Err(e) => tracing::debug!(error = %e, "no IPv6 listener; serving IPv4 only"),
        }
    }
    TcpListener::bind(addr).await
}

/// A listener on `[::]:port` that takes IPv4 connections too (IPV6_V6ONLY off).
fn dual_stack(any: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)?;
    socket.set_only_v6(false)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&any.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Bind the client port and start serving on the current tokio runtime.
pub async fn start(cfg: &ServerConfig) -> Result<ServerHandle, StartError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| StartError::DataDir {
        path: cfg.data_dir.display().to_string(),
        source,
    })?;
    // This server's id in the ensemble; none when it runs alone.
    let member = match cfg.my_id {
        _ if cfg.is_standalone() => None,
        Some(id) => Some(id),
        None => Some(my_id(cfg)?),
    };
    let addr = cfg.client_addr();
    let listener = bind_client(addr).await.map_err(|source| {
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
    // Shown as configured (0.0.0.0 for all addresses), with the port actually bound.
    let client_addr = SocketAddr::new(
        addr.ip(),
        listener.local_addr().map_or(addr.port(), |a| a.port()),
    );
    // TLS: the stores are read now, so a problem with them stops the start-up.
    let tls = if cfg.client_tls() {
        Some(Arc::new(tls::Tls::load(&cfg.ssl)?))
    } else {
        None
    };
    let secure_listener = match cfg.secure_client_port {
        None => None,
        Some(port) => {
            let ip = cfg
                .secure_client_port_address
                .or(cfg.client_port_address)
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
            let addr = SocketAddr::new(ip, port);
            let l = bind_client(addr).await.map_err(|source| StartError::Bind {
                addr,
                source,
                hint: " (secureClientPort: another process holds it, or it is not an address of this machine)",
            })?;
            tracing::info!(addr = %l.local_addr().unwrap_or(addr), "serving TLS clients");
            Some(l)
        }
    };
    let admin_listener = bind_admin(cfg).await;
    let metrics_listener = bind_metrics(cfg).await?;

    // Recover what the data directories hold.
    let snap_dir = zooid_storage::recovery::version_dir(&cfg.data_dir).map_err(|source| {
        StartError::Recovery {
            dir: cfg.data_dir.display().to_string(),
            source,
        }
    })?;
    let log_base = cfg.data_log_dir.as_ref().unwrap_or(&cfg.data_dir);
    let log_dir =
        zooid_storage::recovery::version_dir(log_base).map_err(|source| StartError::Recovery {
            dir: log_base.display().to_string(),
            source,
        })?;
    let started = std::time::Instant::now();
    let recovered = zooid_storage::recovery::recover(&snap_dir, &log_dir).map_err(|source| {
        StartError::Recovery {
            dir: cfg.data_dir.display().to_string(),
            source,
        }
    })?;
    for (path, why) in &recovered.skipped_snapshots {
        tracing::warn!(file = %path.display(), reason = %why, "skipped a damaged snapshot");
    }
    let tree: DataTree = recovered.tree;
    // Snapshots keep the layout of the dataDir's ZooKeeper line unless zoo.cfg says which.
    let layout = match cfg.serialize_last_processed_zxid {
        Some(true) => Layout::Zk39,
        Some(false) => Layout::Zk38,
        None => recovered.layout,
    };
    tracing::info!(
        snapshot = recovered
            .snapshot
            .as_ref()
            .map(|(_, p)| p.display().to_string())
            .unwrap_or_else(|| "none".into()),
        replayed = recovered.replayed,
        nodes = tree.node_count(),
        sessions = tree.sessions().len(),
        last_zxid = format_args!("{:#x}", tree.last_zxid()),
        digest_mismatches = recovered.digest_mismatches,
        // what snapshots will be written in
        snapshot_layout = match layout {
            Layout::Zk38 => "ZooKeeper 3.8",
            Layout::Zk39 => "ZooKeeper 3.9 (with the last processed zxid)",
        },
        ms = started.elapsed().as_millis() as u64,
        "data loaded"
    );
    // Like ZooKeeper, start from a snapshot of what was loaded, so the next start reads no
    // more log than what is written from now on. It is taken in the background like any
    // other snapshot: clients are served meanwhile, and the old snapshot and logs stay
    // valid until it is written.
    let last = tree.last_zxid();
    let prometheus = cfg.metrics_provider_class.as_deref() == Some(PROMETHEUS_PROVIDER);
    let mut registry = metrics::Registry::new(prometheus);
    registry.observe("dbinittime", started.elapsed().as_millis() as i64);
    registry.observe("startup_txns_loaded", recovered.replayed as i64);
    let snapshot_at_start =
        recovered.snapshot.as_ref().map(|(z, _)| *z) != Some(last) || recovered.replayed > 0;

    let now = driver::now();
    let mut core_cfg = core_config(cfg);
    if let Some(id) = member {
        core_cfg.server_id = id.0 as u8;
    }
    let ecfg = match member {
        Some(id) => Some(ensemble_config(
            cfg,
            id,
            core_cfg.clone(),
            snap_dir.clone(),
            log_dir.clone(),
            layout,
        )?),
        None => None,
    };
    let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    let info = fourlw::ServerInfo {
        client_port: client_addr.port(),
        secure_client_port: cfg.secure_client_port.map_or(-1, i32::from),
        snap_dir: absolute(&snap_dir),
        log_dir: absolute(&log_dir),
        tick_ms: cfg.tick_ms,
        max_client_cnxns: cfg.max_client_cnxns,
        min_session_timeout_ms: cfg.min_session_timeout_ms,
        max_session_timeout_ms: cfg.max_session_timeout_ms,
        server_id: member.map_or(0, |id| id.0),
        client_addr: client_addr.to_string(),
        read_only_mode_enabled: cfg.read_only_mode_enabled,
        trace_mask: fourlw::DEFAULT_TRACE_MASK.into(),
        initial_config: cfg.initial_config.clone(),
        system_properties: cfg.system_properties.clone().into_iter().collect(),
        quorum: ecfg.as_ref().map(|e| {
            let me = &e.addrs[&e.member.my_id];
            fourlw::QuorumInfo {
                init_limit: cfg.init_limit,
                sync_limit: cfg.sync_limit,
                election_port: me.election[0].port(),
                quorum_port: me.quorum[0].port(),
                peer_type: u8::from(me.observer),
                membership: String::from_utf8_lossy(&e.member.config_text).into_owned(),
            }
        }),
    };
    let info = Arc::new(info);
    let dcfg = driver::DriverConfig {
        max_frame_len: cfg.jute_max_buffer,
        tls,
        gate: driver::Gate::new(limits(cfg, member.is_some())),
        four_letter_words: cfg.four_letter_words.clone(),
        info: Arc::clone(&info),
    };
    let (from_writer_tx, from_writer) = tokio::sync::mpsc::unbounded_channel();
    let log = zooid_storage::txnlog::TxnLog::new(
        &log_dir,
        cfg.pre_alloc_size_kb.saturating_mul(1024),
        cfg.force_sync,
    );
    let backlog = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = persist::spawn_log_writer(log, from_writer_tx.clone(), backlog.clone());
    let (fatal_tx, fatal_rx) = oneshot::channel();
    let disk = driver::Disk {
        writer,
        backlog,
        from_writer,
        from_writer_tx,
        snapshots: persist::SnapshotPlan {
            dir: snap_dir.clone(),
            compression: cfg.snapshot_compression_method.clone(),
            layout,
            snap_count: cfg.snap_count.max(2),
            jobs: Default::default(),
        },
        fatal: Some(fatal_tx),
        snapshot_at_start,
    };
    let purge = (cfg.autopurge_purge_interval_hours > 0).then(|| {
        let retain = cfg.autopurge_snap_retain_count as usize;
        let every =
            std::time::Duration::from_secs(cfg.autopurge_purge_interval_hours as u64 * 3600);
        let (snap_dir, log_dir) = (snap_dir.clone(), log_dir.clone());
        tokio::spawn(async move {
            let mut timer = tokio::time::interval(every);
            loop {
                timer.tick().await;
                let (s, l) = (snap_dir.clone(), log_dir.clone());
                match tokio::task::spawn_blocking(move || {
                    zooid_storage::purge::purge(&s, &l, retain)
                })
                .await
                {
                    Ok(Ok(removed)) => tracing::info!(files = removed.len(), "autopurge done"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "autopurge failed"),
                    Err(_) => {}
                }
            }
        })
    });
    let (shutdown, rx) = watch::channel(false);
    let server = match ecfg {
        None => driver::Server::Alone(Box::new(Core::new(core_cfg, tree, now))),
        Some(ecfg) => {
            let my_id = ecfg.member.my_id;
            let id = my_id.0 as u64;
            let me = ecfg.addrs[&my_id].clone();
            // quorumListenOnAllIPs: the same ports on every address of the machine.
            let listen = |a: SocketAddr| {
                if cfg.quorum_listen_on_all_ips {
                    let any: std::net::IpAddr = if a.is_ipv6() {
                        std::net::Ipv6Addr::UNSPECIFIED.into()
                    } else {
                        std::net::Ipv4Addr::UNSPECIFIED.into()
                    };
                    SocketAddr::new(any, a.port())
                } else {
                    a
                }
            };
            // Every address of this member (several with multiAddress.enabled).
            let mut election_listeners = Vec::new();
            let mut quorum_listeners = Vec::new();
            let mut bound = std::collections::BTreeSet::new();
            for (&e, &q) in me.election.iter().zip(&me.quorum) {
                let (e, q) = (listen(e), listen(q));
                if bound.insert(e) {
                    election_listeners.push(bind_peer(e, "election", id).await?);
                }
                if bound.insert(q) {
                    quorum_listeners.push(bind_peer(q, "quorum", id).await?);
                }
            }
            let (peer_tx, peer_rx) = tokio::sync::mpsc::channel(peer_net::PEER_EVENTS_QUEUED);
            let peers: ensemble::ElectionPeers = Arc::new(std::sync::RwLock::new(
                ecfg.addrs
                    .iter()
                    .filter(|(s, _)| **s != my_id)
                    .map(|(s, m)| (*s, m.election.clone()))
                    .collect(),
            ));
            // TLS between members: the stores are read now, so a problem stops the start-up.
            let quorum_tls = if cfg.quorum_tls() {
                let t = tls::QuorumTls::load(
                    &cfg.quorum_ssl,
                    cfg.ssl_quorum,
                    cfg.quorum_port_unification,
                )
                .map_err(|e| StartError::Ensemble(format!("TLS between members: {e}")))?;
                Some(Arc::new(t))
            } else {
                None
            };
            let security = peer_net::Security {
                tls: quorum_tls,
                sasl: cfg.sasl.quorum.clone().map(Arc::new),
                fail_fast: cfg.multi_address_enabled,
            };
            let to_election = peer_net::spawn_election(
                my_id,
                election_listeners,
                &me.election,
                peers.clone(),
                ecfg.cnx_timeout,
                security.clone(),
                peer_tx.clone(),
                rx.clone(),
            );
            // A quorum record's fields may be jute.maxbuffer plus an extra that defaults, as
            // in ZooKeeper (`zookeeper.jute.maxbuffer.extrasize`), to jute.maxbuffer itself,
            // at least 1 KiB.
            let max = cfg.jute_max_buffer as usize;
            let limits = zooid_zab::QuorumLimits::from_jute(max, max.max(1024));
            let links = peer_net::Links::new(limits, peer_tx, security);
            for listener in quorum_listeners {
                links.spawn_listener(listener, rx.clone());
            }
            let storage = ensemble::Storage {
                snap_dir: snap_dir.clone(),
                log_dir: log_dir.clone(),
                layout: disk.snapshots.layout,
                snapshots: disk.snapshots.clone(),
            };
            let peer = ensemble::Peer::start(ecfg, tree, to_election, peers, links, storage, now)
                .map_err(StartError::Ensemble)?;
            driver::Server::Member(Box::new(driver::Ensemble {
                peer,
                events: peer_rx,
            }))
        }
    };
    // HTTPS for the AdminServer, with the quorum's key store as ZooKeeper's Jetty uses it.
    let admin_https = if cfg.admin_enable_server
        && (cfg.admin_force_https || cfg.admin_port_unification)
    {
        if cfg.quorum_ssl.key_store.is_none() {
            return Err(StartError::Tls(tls::TlsError {
                setting: String::from(if cfg.admin_force_https { "admin.forceHttps" } else { "admin.portUnification" }),
                file: None,
                problem: String::from("serves the AdminServer over HTTPS, which needs a certificate"),
                fix: String::from(
                    "set ssl.quorum.keyStore.location and ssl.quorum.keyStore.password (ZooKeeper's AdminServer uses the quorum's key store)",
                ),
            }));
        }
        let mut admin_ssl = cfg.quorum_ssl.clone();
        admin_ssl.client_auth = if cfg.admin_need_client_auth {
            zooid_config::ClientAuth::Need
        } else {
            zooid_config::ClientAuth::None
        };
        Some(admin::Https {
            tls: Arc::new(tls::Tls::load(&admin_ssl)?),
            only: cfg.admin_force_https,
        })
    } else {
        None
    };
    let events = driver::event_channel();
    let mut http_tasks = Vec::new();
    let mut http_addr = |l: Option<TcpListener>, endpoint: admin::Endpoint| {
        let l = l?;
        let addr = l.local_addr().ok();
        let https = match endpoint {
            admin::Endpoint::Admin => admin_https.clone(),
            admin::Endpoint::Metrics => None,
        };
        let serve = admin::serve(
            l,
            endpoint,
            https,
            events.0.clone(),
            Arc::clone(&info),
            rx.clone(),
        );
        http_tasks.push(tokio::spawn(serve));
        tracing::info!(?addr, ?endpoint, "serving HTTP");
        addr
    };
    let admin_addr = http_addr(admin_listener, admin::Endpoint::Admin);
    let metrics_addr = http_addr(metrics_listener, admin::Endpoint::Metrics);
    let task = tokio::spawn(driver::serve(
        listener,
        secure_listener,
        server,
        dcfg,
        disk,
        registry,
        events,
        rx,
    ));
    let mode = if member.is_none() {
        "standalone"
    } else {
        "ensemble member"
    };
    tracing::info!(%client_addr, data_dir = %cfg.data_dir.display(), mode, "zooid started");
    Ok(ServerHandle {
        client_addr,
        admin_addr,
        metrics_addr,
        shutdown,
        task,
        http_tasks,
        fatal: Some(fatal_rx),
        purge,
    })
}
