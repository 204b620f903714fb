//! [`ServerConfig`]: the meaning of each `zoo.cfg` key and `-D` system
//! property, their ZooKeeper 3.8 defaults, the merge of `SERVER_JVMFLAGS`
//! (first) with the file (which wins), and the checks across settings
//! (session timeouts, client port, duplicate server ids).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Location, Warning};
use crate::jvm_flags;
use crate::properties;
use crate::server_spec::{self, PeerRole, ServerId, ServerSpec};
use crate::value::{resolve_address, Setting, ANY_V4, LOOPBACK_V4};

/// The client port of the no-config-file default.
const DEFAULT_CLIENT_PORT: u16 = 2181;

/// Four-letter words ZooKeeper 3.8 knows.
const FOUR_LETTER_WORDS: &[&str] = &[
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "hash", "isro", "mntr", "ruok", "srst",
    "srvr", "stat", "stmk", "wchc", "wchp", "wchs",
];

/// Keys ZooKeeper reads only from zoo.cfg (a `-D` for them has no effect).
const FILE_KEYS: &[&str] = &[
    "tickTime",
    "initLimit",
    "syncLimit",
    "dataDir",
    "dataLogDir",
    "clientPort",
    "clientPortAddress",
    "secureClientPort",
    "secureClientPortAddress",
    "sslQuorum",
    "portUnification",
    "sslQuorumReloadCertFiles",
    "maxClientCnxns",
    "minSessionTimeout",
    "maxSessionTimeout",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "standaloneEnabled",
    "reconfigEnabled",
    "quorumListenOnAllIPs",
    "peerType",
    "autopurge.snapRetainCount",
    "autopurge.purgeInterval",
    "metricsProvider.className",
    "metricsProvider.httpPort",
    "metricsProvider.httpHost",
];

/// Keys ZooKeeper reads as Java system properties; accepted in zoo.cfg too.
const JVM_KEYS: &[&str] = &[
    "jute.maxbuffer",
    "4lw.commands.whitelist",
    "extendedTypesEnabled",
    "DigestAuthenticationProvider.superDigest",
    "readonlymode.enabled",
    "multiAddress.enabled",
    "multiAddress.reachabilityCheckEnabled",
    "multiAddress.reachabilityCheckTimeoutMs",
    "digest.enabled",
    "serializeLastProcessedZxid.enabled",
    "forceSync",
    "preAllocSize",
    "snapCount",
    "snapshot.compression.method",
    "znode.container.checkIntervalMs",
    "znode.container.maxPerMinute",
    "znode.container.maxNeverUsedIntervalMs",
    "enforceQuota",
    "admin.enableServer",
    "admin.forceHttps",
    "admin.portUnification",
    "admin.needClientAuth",
    "admin.serverAddress",
    "admin.serverPort",
    "globalOutstandingLimit",
    "maxCnxns",
    "request_throttle_max_requests",
    "request_throttle_stall_time",
    "request_throttle_drop_stale",
    "throttled_op_wait_time",
    "connection_throttle_tokens",
    "connection_throttle_fill_time",
    "connection_throttle_fill_count",
    "client.portUnification",
    "client.certReload",
    "java.security.auth.login.config",
    "sasl.serverconfig",
    "superUser",
    "SASLAuthenticationProvider.superPassword",
    "allowSaslFailedClients",
    "kerberos.removeHostFromPrincipal",
    "kerberos.removeRealmFromPrincipal",
    "letAnySaslUserDoX",
    "enforce.auth.enabled",
    "enforce.auth.schemes",
    "sessionRequireClientSASLAuth",
    "X509AuthenticationProvider.superUser",
    "largeRequestThreshold",
    "largeRequestMaxBytes",
    "cnxTimeout",
    "serverCnxnFactory",
];

/// Families of system properties we accept: `authProvider.N`, TLS settings (those
/// `ssl.rs` reads are taken there; the quorum's are kept in `unknown`).
const JVM_PREFIXES: &[&str] = &["authProvider.", "ssl.", "superUser."];

/// Real ZooKeeper settings that zooid does not implement.
const UNUSED_KEYS: &[&str] = &[
    "syncEnabled",
    "electionAlg",
    "electionPortBindRetry",
    "leaderServes",
    "skipACL",
    "clientPortListenBacklog",
    "connectToLearnerMasterLimit",
    "admin.commandURL",
    "admin.idleTimeout",
    "audit.enable",
    "fsync.warningthresholdms",
    "snapSizeLimitInKb",
    "txnLogSizeLimitInKb",
    "commitLogCount",
    "learnerType",
    "initialConfig",
    "clientCnxnSocket",
];

/// Keys of [`UNUSED_KEYS`] and [`UNUSED_PREFIXES`] that ZooKeeper's QuorumPeerConfig
/// consumes (the others it passes on as `zookeeper.<key>` system properties).
const UNUSED_FILE_KEYS: &[&str] = &[
    "syncEnabled",
    "electionAlg",
    "clientPortListenBacklog",
    "maxCnxns",
    "connectToLearnerMasterLimit",
];

/// Whether ZooKeeper's QuorumPeerConfig consumes zoo.cfg key `key` (as written) rather
/// than setting the system property `zookeeper.<key>`.
fn is_quorum_peer_config_key(key: &str) -> bool {
    is_file_only(key)
        || UNUSED_FILE_KEYS.contains(&key)
        || [
            "quorum.auth.",
            "multiAddress.",
            "group.",
            "weight.",
            "metricsProvider.",
        ]
        .iter()
        .any(|p| key.starts_with(p))
}

const UNUSED_PREFIXES: &[&str] = &["group.", "weight.", "metricsProvider."];

/// Strips one leading `zookeeper.`.
fn canonical_key(key: &str) -> &str {
    key.strip_prefix("zookeeper.").unwrap_or(key)
}

fn is_file_only(canonical: &str) -> bool {
    FILE_KEYS.contains(&canonical) || canonical.starts_with("server.")
}

fn is_jvm_setting(canonical: &str) -> bool {
    JVM_KEYS.contains(&canonical) || JVM_PREFIXES.iter().any(|p| canonical.starts_with(p))
}

/// A known key that differs from `canonical` only in letter case.
fn case_suggestion(canonical: &str) -> Option<&'static str> {
    FILE_KEYS
        .iter()
        .chain(JVM_KEYS)
        .find(|k| k.eq_ignore_ascii_case(canonical))
        .copied()
}

/// The merged settings, keyed by canonical key, consumed as they are applied.
#[derive(Default)]
struct Settings {
    map: BTreeMap<String, Setting>,
}

impl Settings {
    fn take(&mut self, canonical: &str) -> Option<Setting> {
        self.map.remove(canonical)
    }

    fn take_prefix(&mut self, prefix: &str) -> Vec<(String, Setting)> {
        let keys: Vec<String> = self
            .map
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| self.map.remove(&k).map(|s| (k, s)))
            .collect()
    }
}

/// A `server.N` entry waiting to be parsed.
struct ServerLine {
    suffix: String,
    setting: Setting,
}

/// The `server.N` lines and the version of a dynamic config file (`zoo.cfg.dynamic.<hex>`,
/// as a reconfig writes it), named by `setting`.
fn read_dynamic_file(
    setting: &Setting,
    file: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<(Vec<ServerLine>, i64), ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        setting.invalid(
            format!(
                "cannot read the dynamic config file {}: {e}",
                file.display()
            ),
            "point dynamicConfigFile at the zoo.cfg.dynamic.<version> file a reconfig wrote \
             (or remove it and list the server.N lines in zoo.cfg)",
        )
    })?;
    let mut lines = Vec::new();
    // ZooKeeper writes the version into the file's name (`zoo.cfg.dynamic.100000003`), and
    // reads a `version=` line too.
    let mut version = file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once(".dynamic."))
        .and_then(|(_, v)| u64::from_str_radix(v, 16).ok())
        .map_or(0, |v| v as i64);
    for entry in properties::parse(file, &text, warnings)? {
        let canonical = canonical_key(&entry.key).to_string();
        let location = Location::at_line(file, entry.line);
        if let Some(suffix) = canonical.strip_prefix("server.") {
            lines.push(ServerLine {
                suffix: suffix.to_string(),
                setting: Setting {
                    key: entry.key,
                    value: entry.value,
                    location,
                },
            });
        } else if canonical == "version" {
            version = u64::from_str_radix(entry.value.trim(), 16).map_err(|_| {
                Setting {
                    key: entry.key.clone(),
                    value: entry.value.clone(),
                    location,
                }
                .invalid(
                    "is not a hexadecimal config version",
                    "write it as a reconfig does, e.g. version=100000003",
                )
            })? as i64;
        } else {
            warnings.push(Warning::at(
                &location,
                format!(
                    "{} does not belong in a dynamic config file (only server.N and version); \
                     ignored",
                    entry.key
                ),
            ));
        }
    }
    Ok((lines, version))
}

/// zooid's server configuration, as ZooKeeper 3.8 would understand `zoo.cfg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// `tickTime`: the basic time unit, in milliseconds.
    pub tick_ms: u32,
    /// `initLimit`: ticks a follower may take to connect and sync to a leader.
    pub init_limit: u32,
    /// `syncLimit`: ticks a follower may lag behind the leader.
    pub sync_limit: u32,
    /// `dataDir`: snapshots (and the log, unless `dataLogDir` is set), `myid`.
    pub data_dir: PathBuf,
    /// `dataLogDir`: transaction log directory.
    pub data_log_dir: Option<PathBuf>,
    /// `clientPort`.
    pub client_port: Option<u16>,
    /// `clientPortAddress` (host names resolved at parse time).
    pub client_port_address: Option<IpAddr>,
    /// `secureClientPort` (TLS client port).
    pub secure_client_port: Option<u16>,
    /// `secureClientPortAddress` (the client port's address when unset).
    pub secure_client_port_address: Option<IpAddr>,
    /// The client port's TLS settings (`ssl.*`, `client.portUnification`).
    pub ssl: crate::ssl::SslConfig,
    /// SASL for clients: the JAAS file, providers, required authentication.
    pub sasl: crate::sasl::SaslConfig,
    /// `sslQuorum`: members talk TLS on the election and quorum ports.
    pub ssl_quorum: bool,
    /// `portUnification`: the election and quorum ports also accept the other kind (TLS or
    /// plaintext), for switching a live ensemble member by member.
    pub quorum_port_unification: bool,
    /// The quorum's TLS settings (`ssl.quorum.*`).
    pub quorum_ssl: crate::ssl::SslConfig,
    /// `maxClientCnxns`: connections per client IP; 0 = unlimited.
    pub max_client_cnxns: u32,
    /// `minSessionTimeout`; 2 ticks when unset or -1.
    pub min_session_timeout_ms: u32,
    /// `maxSessionTimeout`; 20 ticks when unset or -1.
    pub max_session_timeout_ms: u32,
    /// `jute.maxbuffer`: largest packet / znode data, in bytes.
    pub jute_max_buffer: u32,
    /// `4lw.commands.whitelist`, lowercase; `["*"]` means all.
    pub four_letter_words: Vec<String>,
    /// `authProvider.N=class`, as `(N, class)`, sorted by N.
    pub auth_providers: Vec<(String, String)>,
    /// `extendedTypesEnabled` (TTL nodes).
    pub extended_types_enabled: bool,
    /// `DigestAuthenticationProvider.superDigest` (`super:base64hash`).
    pub super_digest: Option<String>,
    /// `readonlymode.enabled`.
    pub read_only_mode_enabled: bool,
    /// `digest.enabled`.
    pub digest_enabled: bool,
    /// `serializeLastProcessedZxid.enabled` (ZooKeeper 3.9): snapshots end with the last
    /// processed zxid. Unset, zooid writes the layout the dataDir's newest snapshot has.
    pub serialize_last_processed_zxid: Option<bool>,
    /// `localSessionsEnabled`.
    pub local_sessions_enabled: bool,
    /// `localSessionsUpgradingEnabled`.
    pub local_sessions_upgrading_enabled: bool,
    /// `standaloneEnabled`.
    pub standalone_enabled: bool,
    /// `reconfigEnabled`.
    pub reconfig_enabled: bool,
    /// `quorumListenOnAllIPs`: the quorum and election ports listen on every address.
    pub quorum_listen_on_all_ips: bool,
    /// `multiAddress.enabled`: a server line may list several addresses (`a|b`); members
    /// listen on all of theirs and reach others on the first that answers.
    pub multi_address_enabled: bool,
    /// The `server.N` lines.
    pub servers: BTreeMap<ServerId, ServerSpec>,
    /// `peerType`.
    pub peer_type: PeerRole,
    /// `cnxTimeout`: election connection timeout.
    pub cnx_timeout_ms: u32,
    /// `snapCount`: transactions between snapshots.
    pub snap_count: u64,
    /// `preAllocSize`: transaction log preallocation, in KiB.
    pub pre_alloc_size_kb: u64,
    /// `forceSync` (yes/no).
    pub force_sync: bool,
    /// `snapshot.compression.method`: "", "gz" or "snappy".
    pub snapshot_compression_method: String,
    /// `autopurge.snapRetainCount` (at least 3).
    pub autopurge_snap_retain_count: u32,
    /// `autopurge.purgeInterval`; 0 disables purging.
    pub autopurge_purge_interval_hours: u32,
    /// `znode.container.checkIntervalMs`.
    pub container_check_interval_ms: u64,
    /// `znode.container.maxPerMinute`.
    pub container_max_per_minute: u32,
    /// `znode.container.maxNeverUsedIntervalMs`; 0 = never delete unused containers.
    pub container_max_never_used_interval_ms: u64,
    /// `enforceQuota`.
    pub enforce_quota: bool,
    /// `admin.enableServer`.
    pub admin_enable_server: bool,
    /// `admin.serverAddress`.
    pub admin_server_address: IpAddr,
    /// `admin.serverPort`.
    pub admin_server_port: u16,
    /// `admin.forceHttps`: the AdminServer serves HTTPS only (with the `ssl.quorum.*` key
    /// store, as ZooKeeper's does).
    pub admin_force_https: bool,
    /// `admin.portUnification`: HTTPS and HTTP on the AdminServer's port.
    pub admin_port_unification: bool,
    /// `admin.needClientAuth` (3.9): HTTPS clients must present a certificate.
    pub admin_need_client_auth: bool,
    /// `metricsProvider.className`.
    pub metrics_provider_class: Option<String>,
    /// `metricsProvider.httpPort` (meaningful only with a class).
    /// `metricsProvider.httpHost` (default all interfaces, as ZooKeeper).
    pub metrics_provider_http_host: Option<IpAddr>,
    pub metrics_provider_http_port: Option<u16>,
    /// `globalOutstandingLimit`: requests in process (a leader's and a follower's share is
    /// this divided by the voters less one) past which a connection with requests of its
    /// own in process is no longer read from.
    pub global_outstanding_limit: u32,
    /// `maxCnxns`: client connections at most, 0 for no limit.
    pub max_cnxns: u32,
    /// The request throttle of ZooKeeper 3.6+: requests in process at most, 0 for none
    /// (`request_throttle_max_requests`).
    pub request_throttle_max_requests: u32,
    /// How long a throttled request waits before the limit is looked at again
    /// (`request_throttle_stall_time`, ms).
    pub request_throttle_stall_time_ms: u64,
    /// Requests of a connection that closed while they waited are dropped
    /// (`request_throttle_drop_stale`).
    pub request_throttle_drop_stale: bool,
    /// A request that waited longer than this is answered THROTTLEDOP without being
    /// carried out; 0 never (`throttled_op_wait_time`, ms).
    pub throttled_op_wait_time_ms: u64,
    /// Connection throttle (ZooKeeper 3.6+): a bucket of this many tokens, one per new
    /// session; 0 turns it off (`connection_throttle_tokens`).
    pub connection_throttle_tokens: u32,
    /// `connection_throttle_fill_time` (ms) and `connection_throttle_fill_count`: the
    /// bucket gains fill_count tokens every fill_time.
    pub connection_throttle_fill_time_ms: u64,
    pub connection_throttle_fill_count: u32,
    /// `largeRequestThreshold` (-1: off) and `largeRequestMaxBytes` (100 MiB): requests
    /// longer than the threshold may hold at most the max bytes in all until answered.
    pub large_request_threshold: i64,
    pub large_request_max_bytes: u32,
    /// Never read from zoo.cfg; the server sets it from [`crate::read_myid`].
    pub my_id: Option<ServerId>,
    /// Keys not mapped to a field, as written; most produced a [`Warning`].
    pub unknown: BTreeMap<String, String>,
    /// The config file's text, as ZooKeeper's `initial_configuration` command shows it.
    pub initial_config: Option<String>,
    /// The zoo.cfg this configuration was read from (a reconfig rewrites it to name the new
    /// dynamic file).
    pub config_file: Option<PathBuf>,
    /// `dynamicConfigFile`: where the members came from (the server lines and version a
    /// reconfig wrote), when zoo.cfg names one.
    pub dynamic_config_file: Option<PathBuf>,
    /// The version of the membership: the `version=` of the dynamic file, 0 for server
    /// lines in zoo.cfg itself.
    pub config_version: i64,
    /// The Java system properties ZooKeeper would hold from this configuration: the `-D`
    /// properties of `SERVER_JVMFLAGS`, then `zookeeper.<key>` for every zoo.cfg key its
    /// QuorumPeerConfig does not consume itself.
    pub system_properties: BTreeMap<String, String>,
}

impl ServerConfig {
    /// ZooKeeper's defaults, with the given data directory and no client port.
    fn with_defaults(data_dir: PathBuf) -> ServerConfig {
        let tick_ms = 2000;
        ServerConfig {
            tick_ms,
            init_limit: 10,
            sync_limit: 5,
            data_dir,
            data_log_dir: None,
            client_port: None,
            client_port_address: None,
            secure_client_port: None,
            secure_client_port_address: None,
            ssl: crate::ssl::SslConfig::default(),
            sasl: crate::sasl::SaslConfig::default(),
            ssl_quorum: false,
            quorum_port_unification: false,
            quorum_ssl: crate::ssl::SslConfig::default(),
            max_client_cnxns: 60,
            min_session_timeout_ms: tick_ms * 2,
            max_session_timeout_ms: tick_ms * 20,
            jute_max_buffer: 0xfffff,
            four_letter_words: vec!["srvr".to_string()],
            auth_providers: Vec::new(),
            extended_types_enabled: false,
            super_digest: None,
            read_only_mode_enabled: false,
            digest_enabled: true,
            serialize_last_processed_zxid: None,
            local_sessions_enabled: false,
            local_sessions_upgrading_enabled: false,
            standalone_enabled: true,
            reconfig_enabled: false,
            quorum_listen_on_all_ips: false,
            multi_address_enabled: false,
            servers: BTreeMap::new(),
            peer_type: PeerRole::Participant,
            cnx_timeout_ms: 5000,
            snap_count: 100_000,
            pre_alloc_size_kb: 65536,
            force_sync: true,
            snapshot_compression_method: String::new(),
            autopurge_snap_retain_count: 3,
            autopurge_purge_interval_hours: 0,
            container_check_interval_ms: 60_000,
            container_max_per_minute: 10_000,
            container_max_never_used_interval_ms: 0,
            enforce_quota: false,
            admin_enable_server: true,
            admin_server_address: ANY_V4,
            admin_server_port: 8080,
            admin_force_https: false,
            admin_port_unification: false,
            admin_need_client_auth: false,
            metrics_provider_class: None,
            metrics_provider_http_port: None,
            metrics_provider_http_host: None,
            global_outstanding_limit: 1000,
            max_cnxns: 0,
            request_throttle_max_requests: 0,
            request_throttle_stall_time_ms: 100,
            request_throttle_drop_stale: true,
            throttled_op_wait_time_ms: 0,
            connection_throttle_tokens: 0,
            connection_throttle_fill_time_ms: 1,
            connection_throttle_fill_count: 1,
            large_request_threshold: -1,
            large_request_max_bytes: 100 << 20,
            my_id: None,
            unknown: BTreeMap::new(),
            initial_config: None,
            config_file: None,
            dynamic_config_file: None,
            config_version: 0,
            system_properties: BTreeMap::new(),
        }
    }

    /// Defaults for `zooid server start-foreground` with no config file:
    /// standalone on 127.0.0.1:2181 with the given data directory
    /// (callers pass `<cwd>/data`).
    pub fn default_standalone(data_dir: PathBuf) -> ServerConfig {
        let mut config = ServerConfig::with_defaults(data_dir);
        config.client_port = Some(DEFAULT_CLIENT_PORT);
        config.client_port_address = Some(LOOPBACK_V4);
        // Like the client port, the AdminServer stays on loopback when nothing is configured.
        config.admin_server_address = LOOPBACK_V4;
        config
    }

    /// Reads `path`, then [`ServerConfig::parse`]s it.
    pub fn load(
        path: &Path,
        jvm_flags: Option<&str>,
    ) -> Result<(ServerConfig, Vec<Warning>), ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        match String::from_utf8(bytes) {
            Ok(text) => ServerConfig::parse(path, &text, jvm_flags),
            Err(e) => {
                // Java reads properties files as ISO-8859-1; accept that too.
                let text: String = e.into_bytes().iter().map(|&b| char::from(b)).collect();
                let (config, mut warnings) = ServerConfig::parse(path, &text, jvm_flags)?;
                warnings.insert(
                    0,
                    Warning::at(
                        &Location::whole_file(path),
                        "the file is not valid UTF-8; it was read as ISO-8859-1 like Java does",
                    ),
                );
                Ok((config, warnings))
            }
        }
    }

    /// Parses zoo.cfg text. `jvm_flags` is the value of `SERVER_JVMFLAGS`:
    /// its `-D` properties apply first and the file overrides them.
    pub fn parse(
        path: &Path,
        text: &str,
        jvm_flags: Option<&str>,
    ) -> Result<(ServerConfig, Vec<Warning>), ConfigError> {
        let mut warnings = Vec::new();
        let mut settings = Settings::default();
        let mut server_lines: Vec<ServerLine> = Vec::new();

        let mut system_properties = BTreeMap::new();
        if let Some(flags) = jvm_flags {
            for prop in jvm_flags::system_properties(flags, &mut warnings) {
                system_properties.insert(prop.key.clone(), prop.value.clone());
                let canonical = canonical_key(&prop.key).to_string();
                if is_file_only(&canonical) {
                    warnings.push(Warning::at(
                        &Location::JvmFlags,
                        format!(
                            "-D{}={} is ignored: ZooKeeper reads {canonical} only from the config \
                             file; put {canonical}={} in {}",
                            prop.key,
                            prop.value,
                            prop.value,
                            path.display()
                        ),
                    ));
                } else if is_jvm_setting(&canonical) {
                    settings.map.insert(
                        canonical,
                        Setting {
                            key: prop.key,
                            value: prop.value,
                            location: Location::JvmFlags,
                        },
                    );
                } else {
                    tracing::debug!(key = %prop.key, "SERVER_JVMFLAGS property is not a zooid setting; ignored");
                }
            }
        }

        let mut first_line: BTreeMap<String, usize> = BTreeMap::new();
        for entry in properties::parse(path, text, &mut warnings)? {
            if !is_quorum_peer_config_key(&entry.key) {
                system_properties.insert(format!("zookeeper.{}", entry.key), entry.value.clone());
            }
            let canonical = canonical_key(&entry.key).to_string();
            let setting = Setting {
                key: entry.key,
                value: entry.value,
                location: Location::at_line(path, entry.line),
            };
            if let Some(suffix) = canonical.strip_prefix("server.") {
                server_lines.push(ServerLine {
                    suffix: suffix.to_string(),
                    setting,
                });
                continue;
            }
            if let Some(first) = first_line.get(&canonical) {
                warnings.push(setting.warning(format!(
                    "{} is set again (first on line {first}); the later value {:?} wins",
                    setting.key, setting.value
                )));
            } else {
                first_line.insert(canonical.clone(), entry.line);
            }
            settings.map.insert(canonical, setting);
        }

        let mut config = ServerConfig::with_defaults(PathBuf::new());
        if let Some(dynamic) = settings.take("dynamicConfigFile") {
            let file = PathBuf::from(dynamic.value.trim());
            let (lines, version) = read_dynamic_file(&dynamic, &file, &mut warnings)?;
            if !server_lines.is_empty() {
                warnings.push(dynamic.warning(format!(
                    "{} names the members' file {}; the server.N lines of {} are ignored (a \
                     reconfig keeps the members there)",
                    dynamic.key,
                    file.display(),
                    path.display()
                )));
            }
            server_lines = lines;
            config.dynamic_config_file = Some(file);
            config.config_version = version;
        }
        let deferred = config.apply(path, &mut settings, &mut warnings)?;
        config.apply_servers(server_lines)?;
        config.validate(path, &deferred)?;
        config.collect_unknown(settings, &mut warnings);
        config.initial_config = Some(text.to_string());
        config.config_file = Some(path.to_path_buf());
        config.system_properties = system_properties;
        // SERVER_JVMFLAGS warnings (no line) first, then in file order.
        warnings.sort_by_key(|w| w.line);
        Ok((config, warnings))
    }

    /// Applies every known key; leaves unknown ones in `settings`.
    fn apply(
        &mut self,
        path: &Path,
        settings: &mut Settings,
        warnings: &mut Vec<Warning>,
    ) -> Result<Deferred, ConfigError> {
        const MS: &str = "a number of milliseconds";
        const TICKS: &str = "a number of ticks";
        const COUNT: &str = "a whole number";

        if let Some(s) = settings.take("tickTime") {
            self.tick_ms = s.parse_positive_u32(MS, "2000")?;
        }
        let init_limit = settings.take("initLimit");
        if let Some(s) = &init_limit {
            self.init_limit = s.parse_u32(TICKS, "10")?;
        }
        let sync_limit = settings.take("syncLimit");
        if let Some(s) = &sync_limit {
            self.sync_limit = s.parse_u32(TICKS, "5")?;
        }
        match settings.take("dataDir") {
            Some(s) => self.data_dir = s.parse_path("/var/lib/zookeeper")?,
            None => {
                return Err(ConfigError::Missing {
                    location: Location::whole_file(path),
                    key: "dataDir".to_string(),
                    hint: "add a line like dataDir=/var/lib/zookeeper (ZooKeeper refuses to start \
                           without it)"
                        .to_string(),
                })
            }
        }
        if let Some(s) = settings.take("dataLogDir") {
            self.data_log_dir = Some(s.parse_path("/var/lib/zookeeper/log")?);
        }
        if let Some(s) = settings.take("clientPort") {
            self.client_port = Some(s.parse_port(DEFAULT_CLIENT_PORT)?);
        }
        if let Some(s) = settings.take("clientPortAddress") {
            self.client_port_address = Some(s.parse_address("127.0.0.1")?);
        }
        if let Some(s) = settings.take("secureClientPort") {
            self.secure_client_port = Some(s.parse_port(2281)?);
        }
        if let Some(s) = settings.take("secureClientPortAddress") {
            if self.secure_client_port.is_none() {
                return Err(s.invalid(
                    "is set but secureClientPort is not",
                    "add secureClientPort=2281 (ZooKeeper refuses this too), or remove the line",
                ));
            }
            self.secure_client_port_address = Some(s.parse_address("127.0.0.1")?);
        }
        self.ssl = crate::ssl::SslConfig::take(&mut |k| settings.take(k), "ssl.", warnings)?;
        if let Some(s) = settings.take("sslQuorum") {
            self.ssl_quorum = s.parse_bool(true)?;
        }
        if let Some(s) = settings.take("portUnification") {
            self.quorum_port_unification = s.parse_bool(true)?;
        }
        let _ = settings.take("sslQuorumReloadCertFiles");
        self.quorum_ssl =
            crate::ssl::SslConfig::take(&mut |k| settings.take(k), "ssl.quorum.", warnings)?;
        if self.quorum_tls() && self.quorum_ssl.key_store.is_none() {
            return Err(ConfigError::Missing {
                location: Location::whole_file(path),
                key: String::from("ssl.quorum.keyStore.location"),
                hint: String::from(
                    "sslQuorum (or portUnification) makes the members talk TLS, which needs \
                     each member's certificate and key: add ssl.quorum.keyStore.location and \
                     ssl.quorum.keyStore.password, and the ssl.quorum.trustStore settings",
                ),
            });
        }
        if self.client_tls() && self.ssl.key_store.is_none() {
            return Err(ConfigError::Missing {
                location: Location::whole_file(path),
                key: String::from("ssl.keyStore.location"),
                hint: String::from(
                    "secureClientPort (or client.portUnification) serves TLS, which needs the \
                     server's certificate and key: add ssl.keyStore.location=/path/to/keystore.jks \
                     and ssl.keyStore.password=... (zoo.cfg, or -Dzookeeper.ssl.* in SERVER_JVMFLAGS)",
                ),
            });
        }
        if let Some(s) = settings.take("maxClientCnxns") {
            self.max_client_cnxns = s.parse_u32(COUNT, "60")?;
        }
        let min_timeout = settings.take("minSessionTimeout");
        let max_timeout = settings.take("maxSessionTimeout");
        self.apply_session_timeouts(min_timeout.as_ref(), max_timeout.as_ref())?;

        if let Some(s) = settings.take("jute.maxbuffer") {
            self.jute_max_buffer = parse_jute_max_buffer(&s)?;
        }
        if let Some(s) = settings.take("4lw.commands.whitelist") {
            self.four_letter_words = parse_four_letter_words(&s, warnings);
        }
        let mut providers: Vec<(String, String)> = Vec::new();
        for (canonical, s) in settings.take_prefix("authProvider.") {
            let name = canonical.trim_start_matches("authProvider.").to_string();
            if s.value.is_empty() {
                return Err(s.invalid(
                    "is empty",
                    format!(
                        "name an authentication provider class, e.g. {}",
                        s.example("org.apache.zookeeper.server.auth.SASLAuthenticationProvider")
                    ),
                ));
            }
            providers.push((name, s.value));
        }
        providers.sort_by_key(|(n, _)| (n.parse::<u64>().unwrap_or(u64::MAX), n.clone()));
        self.auth_providers = providers;
        let supers: Vec<Setting> = settings
            .take_prefix("superUser.")
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        let tls = self.client_tls();
        self.sasl = crate::sasl::SaslConfig::take(
            &mut |k| settings.take(k),
            supers,
            &self.auth_providers,
            tls,
            warnings,
        )?;

        if let Some(s) = settings.take("extendedTypesEnabled") {
            self.extended_types_enabled = s.parse_bool(true)?;
        }
        if let Some(s) = settings.take("DigestAuthenticationProvider.superDigest") {
            self.super_digest = parse_super_digest(&s)?;
        }
        if let Some(s) = settings.take("readonlymode.enabled") {
            self.read_only_mode_enabled = s.parse_bool(true)?;
        }
        if let Some(s) = settings.take("digest.enabled") {
            self.digest_enabled = s.parse_bool(true)?;
        }
        if let Some(s) = settings.take("serializeLastProcessedZxid.enabled") {
            self.serialize_last_processed_zxid = Some(s.parse_bool(true)?);
        }
        if let Some(s) = settings.take("localSessionsEnabled") {
            self.local_sessions_enabled = s.parse_bool(true)?;
        }
        if let Some(s) = settings.take("localSessionsUpgradingEnabled") {
            self.local_sessions_upgrading_enabled = s.parse_bool(true)?;
        }
        if let Some(s) = settings.take("standaloneEnabled") {
            self.standalone_enabled = s.parse_bool(false)?;
        }
        if let Some(s) = settings.take("reconfigEnabled") {
            self.reconfig_enabled = s.parse_bool(true)?;
        }
        if let Some(s) = settings.take("quorumListenOnAllIPs") {
            self.quorum_listen_on_all_ips = s.parse_bool(false)?;
        }
        if let Some(s) = settings.take("multiAddress.enabled") {
            self.multi_address_enabled = s.parse_bool(true)?;
        }
        // Addresses are tried in order, each for cnxTimeout; the reachability probe that
        // orders them in ZooKeeper is not needed for that.
        for key in [
            "multiAddress.reachabilityCheckEnabled",
            "multiAddress.reachabilityCheckTimeoutMs",
        ] {
            settings.take(key);
        }
        if let Some(s) = settings.take("peerType") {
            self.peer_type = PeerRole::parse(&s.value).ok_or_else(|| {
                s.invalid(
                    "is neither participant nor observer",
                    format!("write e.g. {}", s.example("observer")),
                )
            })?;
        }
        if let Some(s) = settings.take("cnxTimeout") {
            self.cnx_timeout_ms = s.parse_positive_u32(MS, "5000")?;
        }
        if let Some(s) = settings.take("snapCount") {
            let n = s.parse_u64("a number of transactions", "100000")?;
            self.snap_count = if n < 2 {
                warnings.push(s.warning(format!(
                    "{} = {n} is too small; using 2, as ZooKeeper does",
                    s.key
                )));
                2
            } else {
                n
            };
        }
        if let Some(s) = settings.take("preAllocSize") {
            self.pre_alloc_size_kb = s.parse_u64("a number of kilobytes", "65536")?;
        }
        if let Some(s) = settings.take("forceSync") {
            self.force_sync = parse_yes_no(&s)?;
        }
        if let Some(s) = settings.take("snapshot.compression.method") {
            let method = s.value.to_ascii_lowercase();
            if !matches!(method.as_str(), "" | "gz" | "snappy") {
                return Err(s.invalid(
                    "is not a known compression method",
                    format!(
                        "use gz, snappy, or an empty value for none, e.g. {}",
                        s.example("gz")
                    ),
                ));
            }
            self.snapshot_compression_method = method;
        }
        if let Some(s) = settings.take("autopurge.snapRetainCount") {
            let n = s.parse_u32("a number of snapshots", "3")?;
            self.autopurge_snap_retain_count = if n < 3 {
                warnings.push(s.warning(format!(
                    "{} = {n} is below the minimum; using 3, as ZooKeeper does",
                    s.key
                )));
                3
            } else {
                n
            };
        }
        if let Some(s) = settings.take("autopurge.purgeInterval") {
            self.autopurge_purge_interval_hours = s.parse_u32("a number of hours", "1")?;
        }
        if let Some(s) = settings.take("znode.container.checkIntervalMs") {
            self.container_check_interval_ms = s.parse_u64(MS, "60000")?;
        }
        if let Some(s) = settings.take("znode.container.maxPerMinute") {
            self.container_max_per_minute = s.parse_u32(COUNT, "10000")?;
        }
        if let Some(s) = settings.take("znode.container.maxNeverUsedIntervalMs") {
            self.container_max_never_used_interval_ms = s.parse_u64(MS, "0")?;
        }
        if let Some(s) = settings.take("enforceQuota") {
            self.enforce_quota = s.parse_bool(true)?;
        }
        if let Some(s) = settings.take("admin.enableServer") {
            self.admin_enable_server = s.parse_bool(false)?;
        }
        if let Some(s) = settings.take("admin.serverAddress") {
            self.admin_server_address = s.parse_address("0.0.0.0")?;
        }
        if let Some(s) = settings.take("admin.serverPort") {
            self.admin_server_port = s.parse_port(8080)?;
        }
        if let Some(s) = settings.take("admin.forceHttps") {
            self.admin_force_https = s.parse_bool(true)?;
        }
        if let Some(s) = settings.take("admin.portUnification") {
            self.admin_port_unification = s.parse_bool(true)?;
        }
        if let Some(s) = settings.take("admin.needClientAuth") {
            self.admin_need_client_auth = s.parse_bool(true)?;
        }
        if let Some(s) = settings.take("metricsProvider.className") {
            self.metrics_provider_class = (!s.value.is_empty()).then_some(s.value);
        }
        if let Some(s) = settings.take("metricsProvider.httpPort") {
            self.metrics_provider_http_port = Some(s.parse_port(7000)?);
            if self.metrics_provider_class.is_none() {
                warnings.push(s.warning(format!(
                    "{} has no effect because metricsProvider.className is not set",
                    s.key
                )));
            }
        }
        if let Some(s) = settings.take("metricsProvider.httpHost") {
            self.metrics_provider_http_host = Some(s.parse_address("0.0.0.0")?);
        }
        if let Some(s) = settings.take("globalOutstandingLimit") {
            self.global_outstanding_limit = s.parse_u32(COUNT, "1000")?;
        }
        if let Some(s) = settings.take("maxCnxns") {
            self.max_cnxns = s.parse_u32(COUNT, "0")?;
        }
        if let Some(s) = settings.take("request_throttle_max_requests") {
            self.request_throttle_max_requests = s.parse_u32(COUNT, "0")?;
        }
        if let Some(s) = settings.take("request_throttle_stall_time") {
            self.request_throttle_stall_time_ms = s.parse_u64(COUNT, "100")?;
        }
        if let Some(s) = settings.take("request_throttle_drop_stale") {
            self.request_throttle_drop_stale = s.parse_bool(true)?;
        }
        if let Some(s) = settings.take("throttled_op_wait_time") {
            self.throttled_op_wait_time_ms = s.parse_u64(COUNT, "0")?;
        }
        if let Some(s) = settings.take("connection_throttle_tokens") {
            self.connection_throttle_tokens = s.parse_u32(COUNT, "0")?;
        }
        if let Some(s) = settings.take("connection_throttle_fill_time") {
            self.connection_throttle_fill_time_ms = s.parse_u64(COUNT, "1")?;
        }
        if let Some(s) = settings.take("connection_throttle_fill_count") {
            self.connection_throttle_fill_count = s.parse_u32(COUNT, "1")?;
        }
        if let Some(s) = settings.take("largeRequestThreshold") {
            // As ZooKeeper: 0 or below -1 is invalid and means off, with a warning.
            let t = s
                .value
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|t| *t == -1 || *t > 0);
            if t.is_none() {
                warnings.push(s.warning(format!(
                    "{} = {:?} is not -1 or a positive number of bytes; large requests are not limited",
                    s.key, s.value
                )));
            }
            self.large_request_threshold = t.unwrap_or(-1);
        }
        if let Some(s) = settings.take("largeRequestMaxBytes") {
            self.large_request_max_bytes = s.parse_u32(COUNT, "104857600")?;
        }
        if let Some(s) = settings.take("serverCnxnFactory") {
            tracing::debug!(value = %s.value, "serverCnxnFactory names a Java class; ignored");
        }

        Ok(Deferred {
            init_limit,
            sync_limit,
        })
    }

    /// `minSessionTimeout` / `maxSessionTimeout`: -1 or absent means 2 and 20 ticks.
    fn apply_session_timeouts(
        &mut self,
        min: Option<&Setting>,
        max: Option<&Setting>,
    ) -> Result<(), ConfigError> {
        let read = |s: Option<&Setting>, example: &str| -> Result<Option<u32>, ConfigError> {
            match s {
                Some(s) if s.value.trim() == "-1" => Ok(None),
                Some(s) => s
                    .parse_u32("a number of milliseconds (or -1 for the default)", example)
                    .map(Some),
                None => Ok(None),
            }
        };
        let min_ms = read(min, "4000")?;
        let max_ms = read(max, "40000")?;
        self.min_session_timeout_ms = min_ms.unwrap_or(self.tick_ms.saturating_mul(2));
        self.max_session_timeout_ms = max_ms.unwrap_or(self.tick_ms.saturating_mul(20));
        if self.min_session_timeout_ms > self.max_session_timeout_ms {
            let describe = |s: Option<&Setting>, name: &str, value: u32, ticks: u32| match s {
                Some(s) if s.value.trim() != "-1" => format!("{} ({value} ms)", s.key),
                _ => format!("{name} ({value} ms, the default of {ticks} ticks)"),
            };
            let min_text = describe(min, "minSessionTimeout", self.min_session_timeout_ms, 2);
            let max_text = describe(max, "maxSessionTimeout", self.max_session_timeout_ms, 20);
            let at = min
                .filter(|s| s.value.trim() != "-1")
                .or(max)
                .map(|s| s.location.clone())
                .unwrap_or(Location::JvmFlags);
            return Err(ConfigError::Inconsistent {
                location: at,
                key: "minSessionTimeout".to_string(),
                problem: format!("{min_text} is larger than {max_text}"),
                hint: format!(
                    "make minSessionTimeout at most maxSessionTimeout, e.g. minSessionTimeout={} \
                     and maxSessionTimeout={}",
                    self.tick_ms.saturating_mul(2),
                    self.tick_ms.saturating_mul(20)
                ),
            });
        }
        Ok(())
    }

    /// Parses the `server.N` lines into `self.servers`.
    fn apply_servers(&mut self, lines: Vec<ServerLine>) -> Result<(), ConfigError> {
        let mut defined_at: BTreeMap<ServerId, Setting> = BTreeMap::new();
        for ServerLine { suffix, setting } in lines {
            let id = server_spec::parse_server_id(&suffix)
                .map_err(|p| setting.invalid(p.problem, p.hint))?;
            let parsed = server_spec::parse_server_value(&setting.value)
                .map_err(|p| setting.invalid(p.problem, p.hint))?;
            if let Some(first) = defined_at.get(&id) {
                let first_at = first
                    .location
                    .line()
                    .map(|l| format!("line {l}"))
                    .unwrap_or_else(|| first.location.to_string());
                return Err(ConfigError::Inconsistent {
                    location: setting.location.clone(),
                    key: setting.key.clone(),
                    problem: format!(
                        "{} defines server {id} again (first as {} on {first_at})",
                        setting.key, first.key
                    ),
                    hint: "give each server its own id, the number in its myid file".to_string(),
                });
            }
            if !parsed.spec.more_addresses.is_empty() && !self.multi_address_enabled {
                return Err(setting.invalid(
                    format!(
                        "lists {} addresses, but the multiple address feature is disabled \
                         (ZooKeeper: \"Multiple address feature is disabled, but multiple \
                         addresses were specified for sid {id}\")",
                        parsed.spec.more_addresses.len() + 1
                    ),
                    "add multiAddress.enabled=true, or keep one address per server line",
                ));
            }
            self.servers.insert(id, parsed.spec);
            defined_at.insert(id, setting);
        }
        Ok(())
    }

    /// Checks across settings, once everything is read.
    fn validate(&self, path: &Path, deferred: &Deferred) -> Result<(), ConfigError> {
        if self.client_port.is_none() {
            let every_line_has_one =
                !self.servers.is_empty() && self.servers.values().all(|s| s.client_addr.is_some());
            // A reconfig may give only some members' lines a client address: this member's
            // own line (by its myid) is the one that counts.
            let mine = || {
                crate::read_myid(&self.data_dir)
                    .ok()
                    .flatten()
                    .and_then(|id| self.servers.get(&id))
                    .is_some_and(|s| s.client_addr.is_some())
            };
            if !every_line_has_one && !mine() {
                return Err(ConfigError::Missing {
                    location: Location::whole_file(path),
                    key: "clientPort".to_string(),
                    hint: "add a line like clientPort=2181 (or end every server line with \
                           ;clientPort, e.g. server.1=zk1:2888:3888;2181)"
                        .to_string(),
                });
            }
        }
        if !self.is_standalone() {
            for (limit, value, example) in [
                (&deferred.init_limit, self.init_limit, "10"),
                (&deferred.sync_limit, self.sync_limit, "5"),
            ] {
                if let (Some(s), 0) = (limit, value) {
                    return Err(s.invalid(
                        "must be greater than 0 for a quorum",
                        format!("write e.g. {}", s.example(example)),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Moves keys nobody consumed into `unknown`, warning about most of them.
    fn collect_unknown(&mut self, settings: Settings, warnings: &mut Vec<Warning>) {
        for (canonical, s) in settings.map {
            if canonical.starts_with("ssl.") {
                tracing::debug!(key = %s.key, "TLS setting kept in `unknown`");
            } else if UNUSED_KEYS.contains(&canonical.as_str())
                || UNUSED_PREFIXES.iter().any(|p| canonical.starts_with(p))
            {
                warnings.push(s.warning(format!(
                    "{} is a ZooKeeper setting that zooid does not use; ignored",
                    s.key
                )));
            } else if let Some(known) = case_suggestion(&canonical) {
                warnings.push(s.warning(format!(
                    "unknown key {}, ignored; did you mean {known}? (keys are case-sensitive)",
                    s.key
                )));
            } else {
                warnings.push(s.warning(format!(
                    "unknown key {}, ignored (check its spelling)",
                    s.key
                )));
            }
            self.unknown.insert(s.key, s.value);
        }
    }

    /// The address clients connect to: `clientPortAddress` (default 0.0.0.0,
    /// all interfaces) and `clientPort`. Without `clientPort`, the client
    /// part of this server's `server.N` line (which `my_id` names, else the dataDir's
    /// `myid` file), else 2181.
    /// Whether clients are served TLS: on a secure port, or on the unified client port.
    pub fn client_tls(&self) -> bool {
        self.secure_client_port.is_some() || self.ssl.port_unification
    }

    /// Whether members talk TLS to each other, or accept it (`portUnification`).
    pub fn quorum_tls(&self) -> bool {
        self.ssl_quorum || self.quorum_port_unification
    }

    pub fn client_addr(&self) -> SocketAddr {
        let me = self.my_id.or_else(|| {
            (!self.is_standalone())
                .then(|| crate::read_myid(&self.data_dir).ok().flatten())
                .flatten()
        });
        let own_line = me
            .and_then(|id| self.servers.get(&id))
            .and_then(|s| s.client_addr.as_ref());
        let port = self
            .client_port
            .or_else(|| own_line.map(|(_, port)| *port))
            .unwrap_or(DEFAULT_CLIENT_PORT);
        let ip = self
            .client_port_address
            .or_else(|| {
                own_line
                    .filter(|_| self.client_port.is_none())
                    .and_then(|(host, _)| resolve_address(host).ok())
            })
            .unwrap_or(ANY_V4);
        SocketAddr::new(ip, port)
    }

    /// ZooKeeper's rule (`QuorumPeerConfig.isDistributed`, negated): no
    /// `server.N` lines, or `standaloneEnabled=true` and at most one
    /// participant.
    pub fn is_standalone(&self) -> bool {
        let participants = self
            .servers
            .values()
            .filter(|s| s.role == PeerRole::Participant)
            .count();
        self.servers.is_empty() || (self.standalone_enabled && participants <= 1)
    }

    /// Whether the four-letter word `word` (e.g. `"ruok"`) is allowed.
    pub fn four_letter_word_enabled(&self, word: &str) -> bool {
        self.four_letter_words
            .iter()
            .any(|w| w == "*" || w.eq_ignore_ascii_case(word))
    }
}

/// Settings whose checks need the whole configuration.
struct Deferred {
    init_limit: Option<Setting>,
    sync_limit: Option<Setting>,
}

/// `jute.maxbuffer`: decimal or, as Java's `Integer.decode` allows, `0x` hex.
fn parse_jute_max_buffer(s: &Setting) -> Result<u32, ConfigError> {
    let hex = s
        .value
        .strip_prefix("0x")
        .or_else(|| s.value.strip_prefix("0X"));
    let n = match hex {
        Some(digits) => u32::from_str_radix(digits, 16).map_err(|_| {
            s.invalid(
                "is not a number of bytes",
                format!("write e.g. {}", s.example("1048575")),
            )
        })?,
        None => s.parse_u32("a number of bytes", "1048575")?,
    };
    if n == 0 {
        return Err(s.invalid(
            "must be greater than 0",
            format!("write e.g. {}", s.example("1048575")),
        ));
    }
    Ok(n)
}

/// `4lw.commands.whitelist`: comma separated, trimmed, lowercase.
fn parse_four_letter_words(s: &Setting, warnings: &mut Vec<Warning>) -> Vec<String> {
    let words: Vec<String> = s
        .value
        .split(',')
        .map(|w| w.trim().to_ascii_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    if words.iter().any(|w| w == "*") {
        return vec!["*".to_string()];
    }
    let unknown: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| !FOUR_LETTER_WORDS.contains(w))
        .collect();
    if !unknown.is_empty() {
        warnings.push(s.warning(format!(
            "{} lists {} which {} not a four-letter word ZooKeeper knows; known words are {}",
            s.key,
            unknown.join(", "),
            if unknown.len() == 1 { "is" } else { "are" },
            FOUR_LETTER_WORDS.join(", ")
        )));
    }
    words
}

/// `DigestAuthenticationProvider.superDigest`: `super:base64hash`; empty = none.
fn parse_super_digest(s: &Setting) -> Result<Option<String>, ConfigError> {
    if s.value.is_empty() {
        return Ok(None);
    }
    match s.value.split_once(':') {
        Some((user, hash)) if !user.is_empty() && !hash.is_empty() => Ok(Some(s.value.clone())),
        _ => Err(s.invalid(
            "is not of the form user:base64hash",
            format!(
                "write e.g. {} where the hash is base64(SHA-1(\"super:password\")), as printed \
                 by org.apache.zookeeper.server.auth.DigestAuthenticationProvider super:password",
                s.example("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
            ),
        )),
    }
}

/// `forceSync`: yes/no (ZooKeeper's spelling) or true/false.
fn parse_yes_no(s: &Setting) -> Result<bool, ConfigError> {
    let v = s.value.to_ascii_lowercase();
    match v.as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(s.invalid(
            "is not yes or no",
            format!("write e.g. {}", s.example("yes")),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const SEED: &str = "\
tickTime=2000
initLimit=10
syncLimit=5
dataDir=/data/zookeeper
dataLogDir=/home/zookeeper/dataLog
clientPort=2181
server.1=192.168.150.128:2888:3888
server.2=192.168.150.130:2888:3888
server.3=192.168.150.131:2888:3888
server.4=192.168.150.132:2888:3888:observer
#maxClientCnxns=60
#autopurge.snapRetainCount=3
#autopurge.purgeInterval=1
#metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider
#metricsProvider.httpPort=7000
#metricsProvider.exportJvmInfo=true
";

    /// The non-comment lines of Debian's /etc/zookeeper/conf/zoo.cfg (with a
    /// few of its comments, including ones with trailing spaces).
    const DEBIAN: &str = "\
# The number of milliseconds of each tick
tickTime=2000
# The number of ticks that the initial 
# synchronization phase can take
initLimit=10
syncLimit=5
# do not use /tmp for storage, /tmp here is just 
# example sakes.
dataDir=/tmp/zookeeper
clientPort=2181
#maxClientCnxns=60
#
#autopurge.purgeInterval=1
## Metrics Providers
#metricsProvider.httpHost=0.0.0.0
";

    fn parse(text: &str) -> (ServerConfig, Vec<Warning>) {
        parse_with(text, None)
    }

    fn parse_with(text: &str, flags: Option<&str>) -> (ServerConfig, Vec<Warning>) {
        match ServerConfig::parse(Path::new("zoo.cfg"), text, flags) {
            Ok(r) => r,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn error(text: &str) -> String {
        error_with(text, None)
    }

    fn error_with(text: &str, flags: Option<&str>) -> String {
        match ServerConfig::parse(Path::new("zoo.cfg"), text, flags) {
            Ok((c, _)) => panic!("expected an error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn minimal(extra: &str) -> String {
        format!("dataDir=/var/lib/zookeeper\nclientPort=2181\n{extra}")
    }

    fn assert_contains(text: &str, parts: &[&str]) {
        for part in parts {
            assert!(text.contains(part), "{text:?} should contain {part:?}");
        }
    }

    #[test]
    fn minimal_file_gets_zookeeper_defaults() {
        let (c, w) = parse(&minimal(""));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.tick_ms, 2000);
        assert_eq!(c.init_limit, 10);
        assert_eq!(c.sync_limit, 5);
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/zookeeper"));
        assert_eq!(c.data_log_dir, None);
        assert_eq!(c.client_port, Some(2181));
        assert_eq!(c.client_port_address, None);
        assert_eq!(c.client_addr(), "0.0.0.0:2181".parse().unwrap());
        assert_eq!(c.max_client_cnxns, 60);
        assert_eq!(c.min_session_timeout_ms, 4000);
        assert_eq!(c.max_session_timeout_ms, 40000);
        assert_eq!(c.jute_max_buffer, 1_048_575);
        assert_eq!(c.four_letter_words, vec!["srvr".to_string()]);
        assert!(c.four_letter_word_enabled("srvr"));
        assert!(!c.four_letter_word_enabled("ruok"));
        assert!(c.auth_providers.is_empty());
        assert!(!c.extended_types_enabled);
        assert_eq!(c.super_digest, None);
        assert!(!c.read_only_mode_enabled);
        assert!(c.digest_enabled);
        assert!(!c.local_sessions_enabled && !c.local_sessions_upgrading_enabled);
        assert!(c.standalone_enabled && !c.reconfig_enabled);
        assert!(c.servers.is_empty());
        assert!(c.is_standalone());
        assert_eq!(c.peer_type, PeerRole::Participant);
        assert_eq!(c.cnx_timeout_ms, 5000);
        assert_eq!(c.snap_count, 100_000);
        assert_eq!(c.pre_alloc_size_kb, 65536);
        assert!(c.force_sync);
        assert_eq!(c.snapshot_compression_method, "");
        assert_eq!(c.autopurge_snap_retain_count, 3);
        assert_eq!(c.autopurge_purge_interval_hours, 0);
        assert_eq!(c.container_check_interval_ms, 60_000);
        assert_eq!(c.container_max_per_minute, 10_000);
        assert_eq!(c.container_max_never_used_interval_ms, 0);
        assert!(!c.enforce_quota);
        assert!(c.admin_enable_server);
        assert_eq!(c.admin_server_address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(c.admin_server_port, 8080);
        assert_eq!(c.metrics_provider_class, None);
        assert_eq!(c.metrics_provider_http_port, None);
        assert_eq!(c.global_outstanding_limit, 1000);
        assert_eq!(c.my_id, None);
        assert!(c.unknown.is_empty());
        assert_eq!(c.secure_client_port, None);
    }

    #[test]
    fn default_standalone_listens_on_loopback_2181() {
        let c = ServerConfig::default_standalone(PathBuf::from("/home/me/data"));
        assert_eq!(c.client_addr(), "127.0.0.1:2181".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/home/me/data"));
        assert!(c.is_standalone());
        assert_eq!(c.tick_ms, 2000);
    }

    #[test]
    fn seed_example_parses() {
        let (c, w) = parse(SEED);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.data_dir, PathBuf::from("/data/zookeeper"));
        assert_eq!(
            c.data_log_dir,
            Some(PathBuf::from("/home/zookeeper/dataLog"))
        );
        assert_eq!(c.servers.len(), 4);
        let s1 = &c.servers[&ServerId(1)];
        assert_eq!(s1.host, "192.168.150.128");
        assert_eq!((s1.quorum_port, s1.election_port), (2888, 3888));
        assert_eq!(s1.role, PeerRole::Participant);
        assert_eq!(c.servers[&ServerId(4)].role, PeerRole::Observer);
        assert!(!c.is_standalone());
        assert_eq!(c.client_addr().port(), 2181);
    }

    #[test]
    fn debian_default_parses() {
        let (c, w) = parse(DEBIAN);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/zookeeper"));
        assert_eq!(c.client_port, Some(2181));
        assert!(c.is_standalone());
    }

    #[test]
    fn installed_debian_file_parses_if_present() {
        let path = Path::new("/etc/zookeeper/conf/zoo.cfg");
        if path.exists() {
            let (c, _) = ServerConfig::load(path, None).expect("debian zoo.cfg loads");
            assert!(c.client_port.is_some());
        }
    }

    #[test]
    fn every_key() {
        let text = minimal(
            "tickTime=3000
initLimit=20
syncLimit=7
dataLogDir=/var/log/zk
clientPortAddress=127.0.0.1
secureClientPort=2281
maxClientCnxns=0
minSessionTimeout=5000
maxSessionTimeout=90000
jute.maxbuffer=4194304
4lw.commands.whitelist=stat, RUOK ,conf,
authProvider.2=org.example.B
authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider
extendedTypesEnabled=TRUE
DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=
readonlymode.enabled=true
digest.enabled=false
localSessionsEnabled=true
localSessionsUpgradingEnabled=true
standaloneEnabled=false
reconfigEnabled=true
peerType=observer
cnxTimeout=7000
snapCount=50000
preAllocSize=1024
forceSync=no
snapshot.compression.method=snappy
autopurge.snapRetainCount=5
autopurge.purgeInterval=24
znode.container.checkIntervalMs=1000
znode.container.maxPerMinute=500
znode.container.maxNeverUsedIntervalMs=86400000
enforceQuota=true
admin.enableServer=false
admin.serverAddress=127.0.0.1
admin.serverPort=9090
metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider
metricsProvider.httpPort=7000
globalOutstandingLimit=2000
serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
ssl.keyStore.location=/etc/zk/keystore.jks
",
        );
        let (c, w) = parse(&text);
        // Every key is known and used: nothing is worth a word.
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.tick_ms, 3000);
        assert_eq!(c.init_limit, 20);
        assert_eq!(c.sync_limit, 7);
        assert_eq!(c.data_log_dir, Some(PathBuf::from("/var/log/zk")));
        assert_eq!(c.client_port_address, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(c.client_addr(), "127.0.0.1:2181".parse().unwrap());
        assert_eq!(c.secure_client_port, Some(2281));
        assert_eq!(c.max_client_cnxns, 0);
        assert_eq!(c.min_session_timeout_ms, 5000);
        assert_eq!(c.max_session_timeout_ms, 90000);
        assert_eq!(c.jute_max_buffer, 4_194_304);
        assert_eq!(c.four_letter_words, vec!["stat", "ruok", "conf"]);
        assert!(c.four_letter_word_enabled("ruok"));
        assert_eq!(
            c.auth_providers,
            vec![
                (
                    "1".to_string(),
                    "org.apache.zookeeper.server.auth.SASLAuthenticationProvider".to_string()
                ),
                ("2".to_string(), "org.example.B".to_string()),
            ]
        );
        assert!(c.extended_types_enabled);
        assert_eq!(
            c.super_digest.as_deref(),
            Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
        );
        assert!(c.read_only_mode_enabled);
        assert!(!c.digest_enabled);
        assert!(c.local_sessions_enabled && c.local_sessions_upgrading_enabled);
        assert!(!c.standalone_enabled && c.reconfig_enabled);
        assert_eq!(c.peer_type, PeerRole::Observer);
        assert_eq!(c.cnx_timeout_ms, 7000);
        assert_eq!(c.snap_count, 50000);
        assert_eq!(c.pre_alloc_size_kb, 1024);
        assert!(!c.force_sync);
        assert_eq!(c.snapshot_compression_method, "snappy");
        assert_eq!(c.autopurge_snap_retain_count, 5);
        assert_eq!(c.autopurge_purge_interval_hours, 24);
        assert_eq!(c.container_check_interval_ms, 1000);
        assert_eq!(c.container_max_per_minute, 500);
        assert_eq!(c.container_max_never_used_interval_ms, 86_400_000);
        assert!(c.enforce_quota);
        assert!(!c.admin_enable_server);
        assert_eq!(c.admin_server_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(c.admin_server_port, 9090);
        assert_eq!(
            c.metrics_provider_class.as_deref(),
            Some("org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider")
        );
        assert_eq!(c.metrics_provider_http_port, Some(7000));
        assert_eq!(c.global_outstanding_limit, 2000);
        assert_eq!(
            c.ssl.key_store.as_ref().map(|s| s.location.clone()),
            Some(PathBuf::from("/etc/zk/keystore.jks"))
        );
        assert!(!c.unknown.contains_key("ssl.keyStore.location"));
    }

    #[test]
    fn zookeeper_prefix_is_optional() {
        let with = minimal(
            "zookeeper.extendedTypesEnabled=true
zookeeper.DigestAuthenticationProvider.superDigest=super:x
zookeeper.snapshot.compression.method=gz
zookeeper.digest.enabled=false
zookeeper.forceSync=no
zookeeper.preAllocSize=10
zookeeper.snapCount=10
zookeeper.admin.enableServer=false
zookeeper.admin.serverPort=8081
zookeeper.enforceQuota=true
zookeeper.jute.maxbuffer=0x200000
zookeeper.4lw.commands.whitelist=*
zookeeper.authProvider.sasl=org.example.Sasl
",
        );
        let without = minimal(
            "extendedTypesEnabled=true
DigestAuthenticationProvider.superDigest=super:x
snapshot.compression.method=gz
digest.enabled=false
forceSync=no
preAllocSize=10
snapCount=10
admin.enableServer=false
admin.serverPort=8081
enforceQuota=true
jute.maxbuffer=2097152
4lw.commands.whitelist=*
authProvider.sasl=org.example.Sasl
",
        );
        let (mut a, wa) = parse(&with);
        let (mut b, wb) = parse(&without);
        assert!(wa.is_empty() && wb.is_empty(), "{wa:?} {wb:?}");
        // Like QuorumPeerConfig, keys it does not consume become `zookeeper.<key>` as written.
        let sysp = |c: &ServerConfig, k: &str| c.system_properties.get(k).cloned();
        assert_eq!(sysp(&b, "zookeeper.snapCount").as_deref(), Some("10"));
        assert_eq!(
            sysp(&a, "zookeeper.zookeeper.snapCount").as_deref(),
            Some("10")
        );
        assert!(!a.system_properties.keys().any(|k| k.contains("dataDir")));
        assert_eq!(b.initial_config.as_deref(), Some(without.as_str()));
        for c in [&mut a, &mut b] {
            c.initial_config = None;
            c.system_properties.clear();
        }
        assert_eq!(a, b);
        assert!(a.extended_types_enabled);
        assert_eq!(a.jute_max_buffer, 0x200000);
        assert_eq!(a.four_letter_words, vec!["*"]);
        assert!(a.four_letter_word_enabled("mntr"));
        assert_eq!(a.snapshot_compression_method, "gz");
        assert!(!a.force_sync && !a.digest_enabled && !a.admin_enable_server);
        assert_eq!(
            a.auth_providers,
            vec![("sasl".to_string(), "org.example.Sasl".to_string())]
        );
    }

    #[test]
    fn server_jvmflags_apply_and_file_wins() {
        let flags = "-Xmx512m -Dzookeeper.extendedTypesEnabled=true -Djute.maxbuffer=4194304";
        let (c, w) = parse_with(&minimal(""), Some(flags));
        assert!(w.is_empty(), "{w:?}");
        assert!(c.extended_types_enabled);
        assert_eq!(c.jute_max_buffer, 4_194_304);

        let (c, _) = parse_with(&minimal("jute.maxbuffer=2000000\n"), Some(flags));
        assert_eq!(c.jute_max_buffer, 2_000_000, "zoo.cfg overrides -D");

        let flags = "-Dzookeeper.DigestAuthenticationProvider.superDigest=\"super:abc=\" \
                     -Dreadonlymode.enabled=true -DforceSync=no -Dzookeeper.snapCount=7 \
                     -Dzookeeper.admin.serverPort=9999 -Dznode.container.checkIntervalMs=5 \
                     -Dzookeeper.authProvider.1=org.example.P -Dlog4j.configuration=file:x \
                     -Dzookeeper.log.dir=/var/log";
        let (c, w) = parse_with(&minimal(""), Some(flags));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.super_digest.as_deref(), Some("super:abc="));
        assert!(c.read_only_mode_enabled && !c.force_sync);
        assert_eq!(c.snap_count, 7);
        assert_eq!(c.admin_server_port, 9999);
        assert_eq!(c.container_check_interval_ms, 5);
        assert_eq!(c.auth_providers.len(), 1);
        assert!(c.unknown.is_empty());
    }

    #[test]
    fn jvmflags_for_file_only_keys_warn() {
        let (c, w) = parse_with(&minimal(""), Some("-Dzookeeper.tickTime=100"));
        assert_eq!(c.tick_ms, 2000);
        assert_eq!(w.len(), 1);
        assert_contains(
            &w[0].to_string(),
            &["SERVER_JVMFLAGS", "tickTime", "config file"],
        );
    }

    #[test]
    fn jvmflags_errors_name_the_variable() {
        let e = error_with(&minimal(""), Some("-Dzookeeper.snapCount=lots"));
        assert_contains(
            &e,
            &[
                "SERVER_JVMFLAGS",
                "zookeeper.snapCount",
                "\"lots\"",
                "-Dzookeeper.snapCount=100000",
            ],
        );
    }

    #[test]
    fn trailing_whitespace_on_server_line_and_client_port_warns() {
        let text = "dataDir=/d\nclientPort=2181 \nserver.1=10.0.0.1:2888:3888\t\nserver.2=10.0.0.2:2888:3888\n";
        let (c, w) = parse(text);
        assert_eq!(c.client_port, Some(2181));
        assert_eq!(c.servers[&ServerId(1)].election_port, 3888);
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[0].line, Some(2));
        assert_contains(
            &w[0].to_string(),
            &["zoo.cfg:2:", "clientPort", "trailing whitespace"],
        );
        assert_eq!(w[1].file.as_deref(), Some(Path::new("zoo.cfg")));
        assert_contains(
            &w[1].to_string(),
            &[
                "zoo.cfg:3:",
                "server.1",
                "trailing whitespace",
                "Address unresolved",
            ],
        );
    }

    #[test]
    fn error_messages_name_file_line_key_value_and_fix() {
        let cases: &[(&str, &[&str])] = &[
            (
                "tickTime=2s\n",
                &["zoo.cfg:3: tickTime = \"2s\" is not a number of milliseconds; write e.g. tickTime=2000"],
            ),
            (
                "tickTime=0\n",
                &["zoo.cfg:3:", "tickTime", "greater than 0"],
            ),
            (
                "server.1=10.0.0.1:2888\n",
                &["zoo.cfg:3: server.1 = \"10.0.0.1:2888\" needs two ports", "server.N=host:quorumPort:electionPort"],
            ),
            (
                "clientPortAddress=no-such-host.invalid\n",
                &["zoo.cfg:3:", "clientPortAddress", "no-such-host.invalid", "IP address"],
            ),
            ("initLimit=ten\n", &["zoo.cfg:3:", "initLimit", "\"ten\"", "initLimit=10"]),
            ("maxClientCnxns=-1\n", &["zoo.cfg:3:", "maxClientCnxns", "negative"]),
            ("standaloneEnabled=yes\n", &["zoo.cfg:3:", "standaloneEnabled", "true or false", "standaloneEnabled=false"]),
            ("forceSync=maybe\n", &["zoo.cfg:3:", "forceSync", "yes or no"]),
            ("peerType=leader\n", &["zoo.cfg:3:", "peerType", "observer"]),
            ("DigestAuthenticationProvider.superDigest=nocolon\n", &["zoo.cfg:3:", "superDigest", "user:base64hash", "super:"]),
            ("snapshot.compression.method=zip\n", &["zoo.cfg:3:", "snapshot.compression.method", "gz"]),
            ("admin.serverPort=0\n", &["zoo.cfg:3:", "admin.serverPort", "between 1 and 65535"]),
            ("jute.maxbuffer=1MB\n", &["zoo.cfg:3:", "jute.maxbuffer", "jute.maxbuffer=1048575"]),
            ("jute.maxbuffer=0xZZ\n", &["zoo.cfg:3:", "jute.maxbuffer"]),
            ("server.x=h:1:2\n", &["zoo.cfg:3:", "server.x", "not a number", "myid"]),
            ("server.300=h:1:2\n", &["zoo.cfg:3:", "server.300", "too large"]),
            ("server.1=h:2888:2888\n", &["zoo.cfg:3:", "server.1", "election port"]),
            ("server.1=fe80::1:2888:3888\n", &["zoo.cfg:3:", "brackets"]),
            ("server.1= :2888:3888\n", &["zoo.cfg:3:", "empty host"]),
            ("tickTime=2000 # ms\n", &["zoo.cfg:3:", "end-of-line comments"]),
            ("authProvider.1=\n", &["zoo.cfg:3:", "authProvider.1", "class"]),
            ("dataLogDir=\n", &["zoo.cfg:3:", "dataLogDir", "is empty"]),
            ("just some words\n", &["zoo.cfg:3:", "just some words", "key=value"]),
        ];
        for (extra, parts) in cases {
            let e = error(&minimal(extra));
            assert_contains(&e, parts);
        }
    }

    #[test]
    fn client_port_errors() {
        let e = error(&minimal("clientPort=99999\n"));
        assert_eq!(
            e,
            "zoo.cfg:3: clientPort = \"99999\" is out of range; use a port between 1 and 65535"
        );
        let e = error("dataDir=/d\n");
        assert_contains(&e, &["zoo.cfg: clientPort is not set", "clientPort=2181"]);
        let e = error("dataDir=/d\nserver.1=a:1:2;2181\nserver.2=b:1:2\n");
        assert_contains(&e, &["clientPort is not set"]);
    }

    #[test]
    fn client_port_from_server_lines() {
        let (mut c, _) = parse("dataDir=/d\nserver.1=a:1:2;2181\nserver.2=b:1:2;127.0.0.1:2182\n");
        assert_eq!(c.client_port, None);
        c.my_id = Some(ServerId(2));
        assert_eq!(c.client_addr(), "127.0.0.1:2182".parse().unwrap());
        c.my_id = Some(ServerId(1));
        assert_eq!(c.client_addr(), "0.0.0.0:2181".parse().unwrap());
    }

    #[test]
    fn security_settings_that_cannot_work_refuse_to_start() {
        // Quorum SASL: the require settings need enableSasl, and the server's needs the
        // learner's, as ZooKeeper checks.
        let e = error(&minimal("quorum.auth.learnerRequireSasl=true\n"));
        assert!(e.contains("quorum.auth.enableSasl"), "{e}");
        let e = error(&minimal(
            "quorum.auth.enableSasl=true\nquorum.auth.serverRequireSasl=true\n",
        ));
        assert!(e.contains("quorum.auth.learnerRequireSasl"), "{e}");
        // Quorum TLS without a key store cannot start.
        let e = error(&minimal("sslQuorum=true\n"));
        assert!(e.contains("ssl.quorum.keyStore.location"), "{e}");
        // TLS without a key store cannot start.
        let e = error(&minimal("secureClientPort=2281\n"));
        assert!(e.contains("ssl.keyStore.location"), "{e}");
        // Required authentication needs a scheme with a provider.
        let e = error(&minimal("zookeeper.enforce.auth.enabled=true\n"));
        assert!(e.contains("enforce.auth.schemes"), "{e}");
        let e = error(&minimal(
            "enforce.auth.enabled=true\nenforce.auth.schemes=sasl\n",
        ));
        assert!(
            e.contains(
                "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider"
            ),
            "{e}"
        );
        let e = error(&minimal("sessionRequireClientSASLAuth=true\n"));
        assert!(e.contains("no JAAS Server section"), "{e}");
    }

    #[test]
    fn client_port_from_the_line_myid_names() {
        // As a member starts: my_id is not known yet, the dataDir's myid file says it.
        let dir = std::env::temp_dir().join(format!("zooid-myid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("myid"), "2\n").unwrap();
        let text = format!(
            "dataDir={}\nserver.1=a:1:2;2181\nserver.2=b:1:2;2182\n",
            dir.display()
        );
        let (c, _) = parse(&text);
        assert_eq!(c.my_id, None);
        assert_eq!(c.client_addr(), "0.0.0.0:2182".parse().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_data_dir() {
        let e = error("clientPort=2181\n");
        assert_eq!(
            e,
            "zoo.cfg: dataDir is not set; add a line like dataDir=/var/lib/zookeeper \
             (ZooKeeper refuses to start without it)"
        );
    }

    #[test]
    fn session_timeouts() {
        let (c, _) = parse(&minimal(
            "tickTime=1000\nminSessionTimeout=-1\nmaxSessionTimeout=-1\n",
        ));
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (2000, 20000)
        );
        let e = error(&minimal(
            "minSessionTimeout=50000\nmaxSessionTimeout=40000\n",
        ));
        assert_contains(
            &e,
            &[
                "zoo.cfg:3:",
                "minSessionTimeout (50000 ms) is larger than maxSessionTimeout (40000 ms)",
                "at most",
            ],
        );
        let e = error(&minimal("maxSessionTimeout=1000\n"));
        assert_contains(
            &e,
            &[
                "zoo.cfg:3:",
                "the default of 2 ticks",
                "maxSessionTimeout (1000 ms)",
            ],
        );
        let e = error(&minimal("minSessionTimeout=-2\n"));
        assert_contains(&e, &["zoo.cfg:3:", "minSessionTimeout", "negative"]);
    }

    #[test]
    fn duplicates() {
        let (c, w) = parse(&minimal("tickTime=1000\nzookeeper.tickTime=3000\n"));
        assert_eq!(c.tick_ms, 3000);
        assert_eq!(w.len(), 1);
        assert_contains(
            &w[0].to_string(),
            &["zoo.cfg:4:", "first on line 3", "later value"],
        );

        let e = error(&minimal("server.1=a:1:2\nserver.01=b:1:2\n"));
        assert_contains(
            &e,
            &[
                "zoo.cfg:4:",
                "server.01",
                "server 1 again",
                "line 3",
                "myid",
            ],
        );
    }

    #[test]
    fn multiple_addresses_need_the_feature() {
        let e = error(&minimal("server.1=a:1:2|b:3:4\nserver.2=c:1:2\n"));
        assert_contains(
            &e,
            &[
                "zoo.cfg:3:",
                "server.1",
                "2 addresses",
                "multiAddress.enabled=true",
            ],
        );
        let (c, w) = parse(&minimal(
            "multiAddress.enabled=true\nserver.1=a:1:2|b:3:4\nserver.2=c:1:2\n",
        ));
        assert!(w.is_empty(), "{w:?}");
        let s = &c.servers[&ServerId(1)];
        assert_eq!((s.host.as_str(), s.more_addresses.len()), ("a", 1));
    }

    #[test]
    fn ipv6_server_line() {
        let (c, _) = parse(&minimal("server.1=[::1]:2888:3888;[::1]:2181\n"));
        let s = &c.servers[&ServerId(1)];
        assert_eq!(s.host, "::1");
        assert_eq!(s.client_addr, Some(("::1".to_string(), 2181)));
    }

    #[test]
    fn standalone_rule() {
        let (c, _) = parse(&minimal("server.1=a:1:2\n"));
        assert!(c.is_standalone());
        let (c, _) = parse(&minimal("server.1=a:1:2\nstandaloneEnabled=false\n"));
        assert!(!c.is_standalone());
        let (c, _) = parse(&minimal("server.1=a:1:2\nserver.2=b:1:2\n"));
        assert!(!c.is_standalone());
        let (c, _) = parse(&minimal("server.1=a:1:2\nserver.2=b:1:2:observer\n"));
        assert!(
            c.is_standalone(),
            "one voter plus an observer is standalone in ZooKeeper"
        );
    }

    #[test]
    fn zero_limits_only_matter_for_a_quorum() {
        let (c, _) = parse(&minimal("initLimit=0\n"));
        assert_eq!(c.init_limit, 0);
        let e = error(&minimal("syncLimit=0\nserver.1=a:1:2\nserver.2=b:1:2\n"));
        assert_contains(&e, &["zoo.cfg:3:", "syncLimit", "quorum"]);
    }

    #[test]
    fn clamped_values_warn() {
        let (c, w) = parse(&minimal("autopurge.snapRetainCount=1\nsnapCount=1\n"));
        assert_eq!(c.autopurge_snap_retain_count, 3);
        assert_eq!(c.snap_count, 2);
        assert_eq!(w.len(), 2, "{w:?}");
        let text: Vec<String> = w.iter().map(ToString::to_string).collect();
        assert!(text
            .iter()
            .any(|t| t.starts_with("zoo.cfg:3: autopurge.snapRetainCount = 1")));
        assert!(text
            .iter()
            .any(|t| t.starts_with("zoo.cfg:4: snapCount = 1")));
    }

    #[test]
    fn unknown_keys_are_kept_and_warned() {
        let (c, w) = parse(&minimal(
            "fooBar=1\nticktime=5\nsyncEnabled=true\nmetricsProvider.exportJvmInfo=true\n\
             serverCnxnFactory=x.Y\nssl.quorum.x=y\n",
        ));
        assert_eq!(c.unknown.get("fooBar").map(String::as_str), Some("1"));
        assert_eq!(c.unknown.len(), 5, "{:?}", c.unknown);
        assert_eq!(c.tick_ms, 2000);
        let text: Vec<String> = w.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 4, "{text:?}");
        assert!(text
            .iter()
            .any(|t| t.contains("unknown key fooBar, ignored")));
        assert!(text.iter().any(|t| t.contains("did you mean tickTime?")));
        assert!(text
            .iter()
            .any(|t| t.contains("syncEnabled is a ZooKeeper setting")));
    }

    #[test]
    fn a_dynamic_config_file_holds_the_members_and_names_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let dynamic = dir.path().join("zoo.cfg.dynamic.100000003");
        std::fs::write(
            &dynamic,
            "server.1=127.0.0.1:2888:3888:participant;2181\nserver.2=127.0.0.1:2889:3889:observer;2182",
        )
        .unwrap();
        let text = format!(
            "tickTime=2000\ninitLimit=5\nsyncLimit=2\ndataDir=/tmp/d\nreconfigEnabled=true\n\
             dynamicConfigFile={}\n",
            dynamic.display()
        );
        let (c, w) = ServerConfig::parse(Path::new("zoo.cfg"), &text, None).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.config_version, 0x1_0000_0003);
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.dynamic_config_file.as_deref(), Some(dynamic.as_path()));
        // A missing file names the setting and the fix.
        let text = text.replace("100000003", "100000009");
        let e = ServerConfig::parse(Path::new("zoo.cfg"), &text, None).unwrap_err();
        assert_contains(
            &e.to_string(),
            &[
                "dynamicConfigFile",
                "zoo.cfg.dynamic.100000009",
                "cannot read",
            ],
        );
    }

    #[test]
    fn metrics_port_without_class_warns() {
        let (c, w) = parse(&minimal("metricsProvider.httpPort=7000\n"));
        assert_eq!(c.metrics_provider_http_port, Some(7000));
        assert_eq!(w.len(), 1);
        assert_contains(&w[0].to_string(), &["metricsProvider.className"]);
    }

    #[test]
    fn unknown_four_letter_words_warn() {
        let (c, w) = parse(&minimal("4lw.commands.whitelist=ruok,abcd\n"));
        assert_eq!(c.four_letter_words, vec!["ruok", "abcd"]);
        assert_eq!(w.len(), 1);
        assert_contains(&w[0].to_string(), &["abcd"]);
        let (c, _) = parse(&minimal("4lw.commands.whitelist=\n"));
        assert!(c.four_letter_words.is_empty());
    }

    #[test]
    fn client_port_address_hostname_and_ipv6() {
        let (c, _) = parse(&minimal("clientPortAddress=localhost\n"));
        assert!(c.client_port_address.is_some_and(|a| a.is_loopback()));
        let (c, _) = parse(&minimal("clientPortAddress=::1\n"));
        assert_eq!(c.client_addr(), "[::1]:2181".parse().unwrap());
    }

    #[test]
    fn crlf_and_bom_files() {
        let text = "\u{feff}dataDir=/d\r\nclientPort=2181\r\nserver.1=a:1:2\r\n";
        let (c, w) = parse(text);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.servers[&ServerId(1)].election_port, 2);
    }

    #[test]
    fn load_reads_files_and_names_unreadable_paths() {
        let dir = std::env::temp_dir().join(format!("zooid-config-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("zoo.cfg");
        std::fs::write(&path, SEED).expect("write");
        let (c, _) = ServerConfig::load(&path, Some("-DsnapCount=5")).expect("loads");
        assert_eq!(c.servers.len(), 4);
        assert_eq!(c.snap_count, 5);

        std::fs::write(&path, b"dataDir=/d\xe9\nclientPort=1\n").expect("write");
        let (c, w) = ServerConfig::load(&path, None).expect("latin-1 loads");
        assert_eq!(c.data_dir, PathBuf::from("/d\u{e9}"));
        assert_contains(&w[0].to_string(), &["ISO-8859-1"]);

        let missing = dir.join("nope.cfg");
        let e = ServerConfig::load(&missing, None)
            .expect_err("missing")
            .to_string();
        assert_contains(&e, &["nope.cfg", "cannot read", "No such file"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn garbage_never_panics() {
        let samples = [
            "",
            "=",
            "==",
            "\\",
            "a=\\",
            "a=\\u",
            "server.=",
            "server.1=",
            "server.1=[",
            "server.1=[]:1:2",
            "server.1=a:1:2;[",
            "server.1=a:1:2;[::1]",
            "server.1=a|",
            "server.1=|a:1:2",
            "\u{feff}",
            "\r\r\n",
            "é=é",
            "tickTime=\u{0}",
            "server.18446744073709551616=a:1:2",
            "jute.maxbuffer=0x",
            "minSessionTimeout=99999999999",
        ];
        for s in samples {
            let _ = ServerConfig::parse(Path::new("zoo.cfg"), s, Some(s));
            let _ = ServerConfig::parse(Path::new("zoo.cfg"), &minimal(s), Some("\"-D"));
        }
    }
}
