//! The error and warning types of this crate, and [`Location`], which says
//! where a setting came from (a line of a config file, or `SERVER_JVMFLAGS`).
//! Every message is meant to be shown to an operator as is: it names the file
//! and line, quotes the key and the bad value, and says what to write instead.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Where a setting was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A config file, and the line number (1-based) when one applies.
    File { path: PathBuf, line: Option<usize> },
    /// A `-Dkey=value` word of the `SERVER_JVMFLAGS` environment variable.
    JvmFlags,
}

impl Location {
    pub(crate) fn at_line(path: &Path, line: usize) -> Location {
        Location::File {
            path: path.to_path_buf(),
            line: Some(line),
        }
    }

    pub(crate) fn whole_file(path: &Path) -> Location {
        Location::File {
            path: path.to_path_buf(),
            line: None,
        }
    }

    /// The config file, if the setting came from one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Location::File { path, .. } => Some(path),
            Location::JvmFlags => None,
        }
    }

    /// The 1-based line number, if known.
    pub fn line(&self) -> Option<usize> {
        match self {
            Location::File { line, .. } => *line,
            Location::JvmFlags => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File {
                path,
                line: Some(line),
            } => write!(f, "{}:{}", path.display(), line),
            Location::File { path, line: None } => write!(f, "{}", path.display()),
            Location::JvmFlags => f.write_str("SERVER_JVMFLAGS"),
        }
    }
}

/// Something odd but harmless that was accepted; show it to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub message: String,
}

impl Warning {
    /// A warning about `location`. Warnings about `SERVER_JVMFLAGS` carry no
    /// file, so their message starts with `SERVER_JVMFLAGS: ` instead.
    pub(crate) fn at(location: &Location, message: impl Into<String>) -> Warning {
        let message = message.into();
        match location {
            Location::File { path, line } => Warning {
                file: Some(path.clone()),
                line: *line,
                message,
            },
            Location::JvmFlags => Warning {
                file: None,
                line: None,
                message: format!("SERVER_JVMFLAGS: {message}"),
            },
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{}: {}", file.display(), line, self.message),
            (Some(file), None) => write!(f, "{}: {}", file.display(), self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}

/// Why a configuration was rejected. The `Display` text is a complete,
/// operator-facing sentence: where, which key, what is wrong, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{}: cannot read the configuration file: {source}; check the path and that this user may read it", path.display())]
    Read { path: PathBuf, source: io::Error },

    /// A line that is neither a comment nor `key=value`.
    #[error("{location}: {text:?} is not a key=value line; {hint}")]
    Syntax {
        location: Location,
        text: String,
        hint: String,
    },

    /// A setting whose value cannot be used.
    #[error("{location}: {key} = {value:?} {problem}; {hint}")]
    InvalidValue {
        location: Location,
        /// The key as written (e.g. `zookeeper.snapCount`).
        key: String,
        value: String,
        problem: String,
        hint: String,
    },

    /// A required setting is absent.
    #[error("{location}: {key} is not set; {hint}")]
    Missing {
        location: Location,
        key: String,
        hint: String,
    },

    /// Settings that are fine one by one but not together; `problem` names the keys.
    #[error("{location}: {problem}; {hint}")]
    Inconsistent {
        location: Location,
        key: String,
        problem: String,
        hint: String,
    },

    /// A JAAS login configuration file that does not parse, or lacks what is needed.
    #[error("{location}: {problem}; {hint}")]
    Jaas {
        location: Location,
        problem: String,
        hint: String,
    },

    /// The `myid` file exists but could not be read.
    #[error("{}: cannot read the myid file: {source}; check that this user may read it", path.display())]
    MyIdUnreadable { path: PathBuf, source: io::Error },

    /// The `myid` file does not hold a usable server id.
    #[error("{}: the content {content:?} {problem}; {hint}", path.display())]
    MyIdInvalid {
        path: PathBuf,
        content: String,
        problem: String,
        hint: String,
    },
}

impl ConfigError {
    /// Where the problem is, when it is about a setting or a config file.
    pub fn location(&self) -> Option<Location> {
        match self {
            ConfigError::Read { path, .. } => Some(Location::whole_file(path)),
            ConfigError::Syntax { location, .. }
            | ConfigError::InvalidValue { location, .. }
            | ConfigError::Missing { location, .. }
            | ConfigError::Jaas { location, .. }
            | ConfigError::Inconsistent { location, .. } => Some(location.clone()),
            ConfigError::MyIdUnreadable { path, .. } | ConfigError::MyIdInvalid { path, .. } => {
                Some(Location::whole_file(path))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_display() {
        let p = Path::new("zoo.cfg");
        assert_eq!(Location::at_line(p, 12).to_string(), "zoo.cfg:12");
        assert_eq!(Location::whole_file(p).to_string(), "zoo.cfg");
        assert_eq!(Location::JvmFlags.to_string(), "SERVER_JVMFLAGS");
    }

    #[test]
    fn warning_display() {
        let w = Warning::at(&Location::at_line(Path::new("zoo.cfg"), 12), "odd");
        assert_eq!(w.to_string(), "zoo.cfg:12: odd");
        let w = Warning::at(&Location::whole_file(Path::new("zoo.cfg")), "odd");
        assert_eq!(w.to_string(), "zoo.cfg: odd");
        let w = Warning::at(&Location::JvmFlags, "odd");
        assert_eq!(w.file, None);
        assert_eq!(w.to_string(), "SERVER_JVMFLAGS: odd");
    }

    #[test]
    fn invalid_value_display() {
        let e = ConfigError::InvalidValue {
            location: Location::at_line(Path::new("zoo.cfg"), 3),
            key: "tickTime".into(),
            value: "2s".into(),
            problem: "is not a number of milliseconds".into(),
            hint: "write e.g. tickTime=2000".into(),
        };
        assert_eq!(
            e.to_string(),
            "zoo.cfg:3: tickTime = \"2s\" is not a number of milliseconds; write e.g. tickTime=2000"
        );
        assert_eq!(e.location().and_then(|l| l.line()), Some(3));
    }
}
