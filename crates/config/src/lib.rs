//! `zooid-config` owns zooid's server configuration: it reads ZooKeeper 3.8's
//! `zoo.cfg` (Java properties syntax) plus the `-Dkey=value` words of the
//! `SERVER_JVMFLAGS` environment variable into a validated [`ServerConfig`],
//! reports harmless oddities as [`Warning`]s, and explains every rejected
//! setting with a [`ConfigError`] that names the file, the line, the key, the
//! problem and a fix. It also reads the `myid` file ([`read_myid`]).
//!
//! Nothing here opens sockets or touches the data directory beyond reading
//! `myid`; host names in `server.N` lines are resolved later by the server.

// Errors are built at most once, at startup, and carry several strings so
// they can explain themselves; their size does not matter.
#![allow(clippy::result_large_err)]

mod config;
mod error;
mod jaas;
mod jvm_flags;
mod myid;
mod properties;
mod sasl;
mod server_spec;
mod ssl;
mod value;

pub use config::ServerConfig;
pub use error::{ConfigError, Location, Warning};
pub use jaas::{parse_jaas, read_jaas, Jaas, LoginModule};
pub use myid::read_myid;
pub use properties::without_entries;
pub use sasl::{QuorumSasl, SaslConfig, SASL_PROVIDER};
pub use server_spec::{PeerRole, ServerId, ServerSpec};
pub use ssl::{ClientAuth, SslConfig, Store};

/// The JVM flags zkServer.sh gives ZooKeeper: `SERVER_JVMFLAGS`, then `JVMFLAGS` (a later
/// `-D` of the same property wins, as for the JVM).
pub fn server_jvm_flags(server: Option<String>, jvm: Option<String>) -> Option<String> {
    match (server, jvm) {
        (None, None) => None,
        (a, b) => Some(format!(
            "{} {}",
            a.unwrap_or_default(),
            b.unwrap_or_default()
        )),
    }
}
