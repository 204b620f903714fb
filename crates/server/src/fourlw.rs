//! Four-letter words on the client port (`ruok`, `srvr`, `stat`, `mntr`, ...): recognising
//! them, ZooKeeper's whitelist (`4lw.commands.whitelist`), and the facts about this server the
//! commands report. The answers come from the command table in [`crate::commands`], the same
//! one the AdminServer serves, in ZooKeeper 3.8's text formats so scripts that parse them
//! keep working.
//!
//! ```text
//! client: "srvr" ─▶ server: text ─▶ close          (whitelisted)
//! client: "stat" ─▶ server: "stat is not executed because it is not in the whitelist.\n"
//! client: "stmk" + 8-byte big-endian mask ─▶ server: the mask in decimal
//! ```
//! Only the first four bytes matter; an unknown word is not a word at all (its bytes are a
//! frame length, and the connection is closed as a bad frame).

use std::path::PathBuf;
use std::sync::atomic::AtomicI64;

/// The version string we report: the ZooKeeper release whose behaviour we match, then ours.
pub const ZK_COMPAT_VERSION: &str = "3.8.4";

pub fn version_string() -> String {
    format!(
        "{ZK_COMPAT_VERSION}-zooid-{}, built on {}",
        env!("CARGO_PKG_VERSION"),
        option_env!("ZOOID_BUILD_DATE").unwrap_or("unknown")
    )
}

/// ZooKeeper's default text trace mask (`ZooTrace.textTraceMask`), what `gtmk` answers.
pub const DEFAULT_TRACE_MASK: i64 = 306;

/// Facts about this server that the commands report.
#[derive(Debug)]
pub struct ServerInfo {
    pub client_port: u16,
    /// -1 without a secure client port.
    pub secure_client_port: i32,
    /// Absolute snapshot and txn log directories (`.../version-2`), as `conf` prints them.
    pub snap_dir: PathBuf,
    pub log_dir: PathBuf,
    pub tick_ms: u32,
    pub max_client_cnxns: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    pub server_id: u64,
    pub client_addr: String,
    /// `readonlymode.enabled`: ZooKeeper then answers `isro` whatever the whitelist says.
    pub read_only_mode_enabled: bool,
    /// Set by `stmk`, read by `gtmk`; zooid's logging does not use it.
    pub trace_mask: AtomicI64,
    /// The config file's text (`initial_configuration`); none without a file.
    pub initial_config: Option<String>,
    /// The system properties the configuration sets (`system_properties`), sorted.
    pub system_properties: Vec<(String, String)>,
    /// An ensemble member's settings, as `conf` lists them after serverId.
    pub quorum: Option<QuorumInfo>,
}

/// What `conf` adds for a member of an ensemble.
#[derive(Debug, Clone)]
pub struct QuorumInfo {
    pub init_limit: u32,
    pub sync_limit: u32,
    pub election_port: u16,
    pub quorum_port: u16,
    /// 0 participant, 1 observer (ZooKeeper's LearnerType ordinal).
    pub peer_type: u8,
    /// The QuorumVerifier text: server.N lines and version.
    pub membership: String,
}

/// ZooKeeper's word for the bytes a telnet client sends on ctrl-C (IAC IP IAC DO): the
/// connection is closed.
pub const TELNET_CLOSE: &str = "telnet close";

const WORDS: [&str; 18] = [
    "conf", "cons", "crst", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr", "stat", "wchs",
    "wchc", "wchp", "mntr", "isro", "dirs", "hash",
];

/// The four-letter word spelled by the first four bytes of a connection, if any.
pub fn word_of(first: [u8; 4]) -> Option<&'static str> {
    if first == [0xff, 0xf4, 0xff, 0xfd] {
        return Some(TELNET_CLOSE);
    }
    WORDS.iter().copied().find(|w| w.as_bytes() == first)
}

/// Whether the whitelist lets `word` run. As in ZooKeeper, `*` allows every word, and
/// `isro` is always allowed with read-only mode on. ZooKeeper also always allows `srvr`;
/// zooid follows the list as written, so `zooid status` can say why it gets no answer.
/// Whether `word` may be answered. As in ZooKeeper, `srvr` always is, whatever the
/// whitelist says (`zkServer.sh status` and monitoring depend on it), and `isro` is when
/// read-only mode is enabled.
pub fn allowed(whitelist: &[String], word: &str, info: &ServerInfo) -> bool {
    word == "srvr"
        || whitelist.iter().any(|w| w == "*" || w == word)
        || (word == "isro" && info.read_only_mode_enabled)
}

/// What a word answers when the whitelist does not allow it.
pub fn refusal(word: &str) -> String {
    format!("{word} is not executed because it is not in the whitelist.\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_recognised_by_their_exact_bytes() {
        assert_eq!(word_of(*b"ruok"), Some("ruok"));
        assert_eq!(word_of(*b"RUOK"), None);
        assert_eq!(word_of([0xff, 0xf4, 0xff, 0xfd]), Some(TELNET_CLOSE));
        assert_eq!(word_of([0, 0, 0, 0]), None);
        for w in WORDS {
            assert!(
                crate::commands::by_word(w).is_some(),
                "{w} has a command in the table"
            );
        }
    }
}
