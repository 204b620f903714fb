//! Reading `<dataDir>/myid`, the file that tells a quorum member which
//! `server.N` line is its own. A missing file is not an error (standalone
//! servers have none); unusable content is, with a message saying how to fix it.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::ConfigError;
use crate::server_spec::ServerId;

/// Longest piece of a bad myid file quoted in an error.
const QUOTE_CHARS: usize = 60;

/// Reads `<data_dir>/myid`. Missing file: `Ok(None)`. Otherwise the content,
/// whitespace trimmed, must be a number from 0 to [`ServerId::MAX`].
pub fn read_myid(data_dir: &Path) -> Result<Option<ServerId>, ConfigError> {
    let path = data_dir.join("myid");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ConfigError::MyIdUnreadable { path, source }),
    };
    parse_myid(&path, &bytes).map(Some)
}

fn parse_myid(path: &Path, bytes: &[u8]) -> Result<ServerId, ConfigError> {
    let text = String::from_utf8_lossy(bytes);
    let trimmed = text.trim();
    let invalid = |problem: String| {
        let mut content: String = trimmed.chars().take(QUOTE_CHARS).collect();
        if trimmed.chars().count() > QUOTE_CHARS {
            content.push_str("...");
        }
        ConfigError::MyIdInvalid {
            path: PathBuf::from(path),
            content,
            problem,
            hint: format!(
                "write just this server's number (the N of its server.N line), e.g. echo 1 > {}",
                path.display()
            ),
        }
    };
    if trimmed.is_empty() {
        return Err(invalid("is empty".to_string()));
    }
    if !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("is not a server id number".to_string()));
    }
    match trimmed.parse::<u64>() {
        Ok(n) if n <= ServerId::MAX => Ok(ServerId(n)),
        _ => Err(invalid(format!(
            "is too large: ids must be 0 to {} so that session ids, which carry the id in one \
             byte, stay unique",
            ServerId::MAX
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh empty directory under the system temp dir.
    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("zooid-config-test-{}-{}", std::process::id(), name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    fn with_myid(name: &str, content: &[u8]) -> Result<Option<ServerId>, ConfigError> {
        let dir = temp_dir(name);
        std::fs::write(dir.join("myid"), content).expect("write myid");
        let r = read_myid(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    #[test]
    fn good_ids() {
        assert_eq!(with_myid("good", b"1").ok(), Some(Some(ServerId(1))));
        assert_eq!(with_myid("nl", b"1 \n").ok(), Some(Some(ServerId(1))));
        assert_eq!(with_myid("crlf", b" 3\r\n").ok(), Some(Some(ServerId(3))));
        assert_eq!(with_myid("zero", b"0").ok(), Some(Some(ServerId(0))));
        assert_eq!(with_myid("max", b"254").ok(), Some(Some(ServerId(254))));
    }

    #[test]
    fn missing_file_is_none() {
        let dir = temp_dir("missing");
        assert_eq!(read_myid(&dir).ok(), Some(None));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            read_myid(Path::new("/nonexistent/zooid/dir")).ok(),
            Some(None)
        );
    }

    #[test]
    fn garbage_is_explained() {
        let e = with_myid("abc", b"abc\n").expect_err("garbage").to_string();
        assert!(e.contains("myid"), "{e}");
        assert!(e.contains("\"abc\""), "{e}");
        assert!(e.contains("echo 1 >"), "{e}");
        assert!(with_myid("empty", b"  \n").is_err());
        assert!(with_myid("neg", b"-1").is_err());
        assert!(with_myid("big", b"255").is_err());
        assert!(with_myid("huge", b"123456789012345678901234567890").is_err());
        assert!(with_myid("two", b"1 2").is_err());
        assert!(with_myid("bin", &[0xff, 0xfe, 0x00]).is_err());
    }

    #[test]
    fn debian_placeholder_text_is_rejected() {
        let e = with_myid(
            "debian",
            b"replace this text with the cluster-unique zookeeper's instance id (1-255)\n",
        )
        .expect_err("placeholder")
        .to_string();
        assert!(e.contains("..."), "long content is shortened: {e}");
        assert!(e.contains("is not a server id number"), "{e}");
    }

    #[test]
    fn directory_instead_of_file_is_unreadable() {
        let dir = temp_dir("isdir");
        std::fs::create_dir_all(dir.join("myid")).expect("mkdir");
        let r = read_myid(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            matches!(r, Err(ConfigError::MyIdUnreadable { .. })),
            "{r:?}"
        );
    }
}
