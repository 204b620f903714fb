//! The Java-properties layer of `zoo.cfg`: splits text into `key=value`
//! entries with their line numbers, the way `java.util.Properties` would,
//! and reports the traps of that format (trailing whitespace, backslashes,
//! lines without `=`). It knows nothing about what the keys mean.

use std::path::Path;

use crate::error::{ConfigError, Location, Warning};

/// One `key=value` entry of a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The key, trimmed and unescaped, as written (prefix not stripped).
    pub key: String,
    /// The value, unescaped, leading and trailing whitespace removed.
    pub value: String,
    /// 1-based number of the line the entry starts on.
    pub line: usize,
}

/// Whitespace that Java's properties reader skips before keys and values.
fn is_java_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

/// Splits `text` into physical lines; `\r\n`, `\n` and a lone `\r` all end a line.
fn physical_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\n', '\r']) {
            Some(pos) => {
                let (line, tail) = rest.split_at(pos);
                lines.push(line);
                rest = tail
                    .strip_prefix("\r\n")
                    .or_else(|| tail.strip_prefix('\n'))
                    .or_else(|| tail.strip_prefix('\r'))
                    .unwrap_or("");
            }
            None => {
                lines.push(rest);
                rest = "";
            }
        }
    }
    lines
}

/// True when the line ends in an odd number of backslashes (a continuation).
fn continues(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Byte index of the first `=` not preceded by an escaping backslash.
fn separator(line: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' {
            return Some(i);
        }
    }
    None
}

/// Result of undoing Java properties escapes.
struct Unescaped {
    text: String,
    /// A backslash was dropped in front of an ordinary character (`\d` -> `d`).
    dropped_backslash: bool,
}

/// Undoes Java properties escapes: `\t \n \r \f \uXXXX`, and `\x` -> `x`.
/// Returns `Err` with a description for a malformed `\u` escape.
fn unescape(text: &str) -> Result<Unescaped, String> {
    let mut out = String::with_capacity(text.len());
    let mut dropped_backslash = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => {}
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = if hex.len() == 4 {
                    u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                } else {
                    None
                };
                match code {
                    Some(decoded) => out.push(decoded),
                    None => return Err(format!("\\u{hex} is not a valid \\uXXXX escape")),
                }
            }
            Some(other) => {
                if !matches!(other, '\\' | '=' | ':' | '#' | '!' | ' ') {
                    dropped_backslash = true;
                }
                out.push(other);
            }
        }
    }
    Ok(Unescaped {
        text: out,
        dropped_backslash,
    })
}

/// Keys whose values are network addresses; ZooKeeper versions that did not
/// trim values failed on these with "Address unresolved".
fn is_address_key(key: &str) -> bool {
    let key = key.strip_prefix("zookeeper.").unwrap_or(key);
    key.starts_with("server.") || key.ends_with("Address")
}

/// Builds the hint for a line that has no `=`.
fn syntax_hint(line: &str) -> String {
    let trimmed = line.trim();
    if let Some(pos) = trimmed.find(|c: char| c == ':' || c.is_whitespace()) {
        let (key, rest) = trimmed.split_at(pos);
        let value = rest
            .trim_start_matches(|c: char| c == ':' || c.is_whitespace())
            .trim();
        if !key.is_empty() && !value.is_empty() {
            return format!(
                "write it as {key}={value}, or start the line with # to make it a comment"
            );
        }
    }
    "write it as key=value, or start the line with # to make it a comment".to_string()
}

/// `text` without the entries whose key `drop` selects (and their continuation lines): the
/// comments, blank lines and other entries stay as written and in order, each line ending in
/// a newline. For rewriting a config file in place (a reconfig drops zoo.cfg's members).
pub fn without_entries(text: &str, drop: impl Fn(&str) -> bool) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = String::new();
    let (mut dropping, mut continuing) = (false, false);
    for line in physical_lines(text) {
        let trimmed = line.trim_start_matches(is_java_blank);
        if !continuing {
            let entry =
                !(trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!'));
            let key = separator(trimmed)
                .and_then(|eq| unescape(trimmed[..eq].trim()).ok())
                .map(|k| k.text.trim().to_string());
            dropping = entry && key.is_some_and(|k| drop(&k));
            continuing = entry && continues(trimmed);
        } else {
            continuing = continues(trimmed);
        }
        if !dropping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Parses properties text. A UTF-8 byte-order mark and CR line endings are
/// accepted silently; comment lines start with `#` or `!`; a line ending in
/// `\` continues on the next line.
pub(crate) fn parse(
    path: &Path,
    text: &str,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<Entry>, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.contains('\r') {
        tracing::debug!(file = %path.display(), "config file has CR line endings; accepted");
    }
    let lines = physical_lines(text);
    let mut entries = Vec::new();
    let mut numbered = lines.iter().enumerate();
    while let Some((index, first)) = numbered.next() {
        let line_no = index + 1;
        let first = first.trim_start_matches(is_java_blank);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        // Join continuation lines.
        let mut logical = String::new();
        let mut current = first;
        loop {
            if continues(current) {
                let without = current.strip_suffix('\\').unwrap_or(current);
                logical.push_str(without);
                match numbered.next() {
                    Some((_, next)) => current = next.trim_start_matches(is_java_blank),
                    None => break,
                }
            } else {
                logical.push_str(current);
                break;
            }
        }
        let location = Location::at_line(path, line_no);

        let Some(eq) = separator(&logical) else {
            return Err(ConfigError::Syntax {
                location,
                text: logical.trim_end().to_string(),
                hint: syntax_hint(&logical),
            });
        };
        let (raw_key, raw_value) = logical.split_at(eq);
        let raw_value = raw_value.strip_prefix('=').unwrap_or(raw_value);

        let key = match unescape(raw_key.trim()) {
            Ok(k) => k.text.trim().to_string(),
            Err(problem) => {
                return Err(ConfigError::Syntax {
                    location,
                    text: logical.trim_end().to_string(),
                    hint: format!("{problem}; remove the backslash"),
                })
            }
        };
        if key.is_empty() {
            return Err(ConfigError::Syntax {
                location,
                text: logical.trim_end().to_string(),
                hint: "there is no key before '='; write key=value".to_string(),
            });
        }

        let value = raw_value.trim_start_matches(char::is_whitespace);
        let trimmed = value.trim_end_matches(char::is_whitespace);
        if trimmed.len() != value.len() && !trimmed.is_empty() {
            let consequence = if is_address_key(&key) {
                " (ZooKeeper would fail with \"Address unresolved\")"
            } else {
                ""
            };
            warnings.push(Warning::at(
                &location,
                format!("trailing whitespace after the value of {key} was ignored{consequence}"),
            ));
        }
        let value = match unescape(trimmed) {
            Ok(v) => {
                if v.dropped_backslash {
                    warnings.push(Warning::at(
                        &location,
                        format!(
                            "the value of {key} contains backslashes, which Java properties \
                             treat as escapes; it was read as {:?} (write \\\\ for a backslash, \
                             or use / in paths)",
                            v.text
                        ),
                    ));
                }
                v.text
            }
            Err(problem) => {
                return Err(ConfigError::InvalidValue {
                    location,
                    key,
                    value: trimmed.to_string(),
                    problem: format!("contains {problem}"),
                    hint: "write \\\\ for a literal backslash".to_string(),
                })
            }
        };
        entries.push(Entry {
            key,
            value,
            line: line_no,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (Result<Vec<Entry>, ConfigError>, Vec<Warning>) {
        let mut warnings = Vec::new();
        let r = parse(Path::new("zoo.cfg"), text, &mut warnings);
        (r, warnings)
    }

    fn pairs(text: &str) -> Vec<(String, String, usize)> {
        let (r, _) = run(text);
        r.expect("parses")
            .into_iter()
            .map(|e| (e.key, e.value, e.line))
            .collect()
    }

    #[test]
    fn comments_blank_lines_and_entries() {
        let p = pairs("# comment\n\n! also comment\n  tickTime = 2000\nclientPort=2181");
        assert_eq!(
            p,
            vec![
                ("tickTime".into(), "2000".into(), 4),
                ("clientPort".into(), "2181".into(), 5)
            ]
        );
    }

    #[test]
    fn bom_and_crlf_are_silent() {
        let (r, w) = run("\u{feff}tickTime=2000\r\nclientPort=2181\r\n");
        let r = r.expect("parses");
        assert_eq!(r[0].key, "tickTime");
        assert_eq!(r[1].value, "2181");
        assert_eq!(r[1].line, 2);
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn lone_cr_ends_a_line() {
        let p = pairs("a=1\rb=2");
        assert_eq!(p[1], ("b".into(), "2".into(), 2));
    }

    #[test]
    fn continuation_lines_join() {
        let p = pairs("4lw.commands.whitelist=srvr, \\\n    ruok\nx=1");
        assert_eq!(
            p[0],
            ("4lw.commands.whitelist".into(), "srvr, ruok".into(), 1)
        );
        assert_eq!(p[1], ("x".into(), "1".into(), 3));
    }

    #[test]
    fn escaped_backslash_does_not_continue() {
        let p = pairs("a=x\\\\\nb=2");
        assert_eq!(p[0].1, "x\\");
        assert_eq!(p[1].0, "b");
    }

    #[test]
    fn trailing_whitespace_warns_with_key_and_line() {
        let (r, w) = run("tickTime=2000\nserver.1=host:2888:3888 \t\n");
        assert_eq!(r.expect("parses")[1].value, "host:2888:3888");
        assert_eq!(w.len(), 1);
        let text = w[0].to_string();
        assert!(text.starts_with("zoo.cfg:2: "), "{text}");
        assert!(text.contains("server.1"), "{text}");
        assert!(text.contains("Address unresolved"), "{text}");
    }

    #[test]
    fn line_without_equals_is_an_error_with_a_fix() {
        let (r, _) = run("tickTime=2000\nclientPort: 2181\n");
        let e = r.expect_err("must fail").to_string();
        assert!(e.starts_with("zoo.cfg:2: "), "{e}");
        assert!(e.contains("clientPort: 2181"), "{e}");
        assert!(e.contains("write it as clientPort=2181"), "{e}");
    }

    #[test]
    fn empty_key_is_an_error() {
        let (r, _) = run("=5\n");
        let e = r.expect_err("must fail").to_string();
        assert!(e.contains("zoo.cfg:1") && e.contains("no key"), "{e}");
    }

    #[test]
    fn escapes_are_undone_and_odd_backslashes_warn() {
        let (r, w) = run("dataDir=C:\\data\\zk\nx=a\\u0041\\=b");
        let r = r.expect("parses");
        assert_eq!(r[0].value, "C:datazk");
        assert_eq!(r[1].value, "aA=b");
        assert_eq!(w.len(), 1);
        assert!(w[0].to_string().contains("backslash"));
        let (r, _) = run("x=\\uZZ");
        assert!(r.is_err());
    }

    #[test]
    fn equals_in_value_is_kept() {
        let p = pairs("authProvider.1=a=b");
        assert_eq!(p[0].1, "a=b");
    }

    #[test]
    fn entries_are_dropped_with_their_continuations_and_the_rest_kept() {
        let text = "# members\nserver.1=a:1:2\\\n  :participant\ntickTime=2000\n\n\
                    server.2=b:1:2\n! note\n";
        assert_eq!(
            without_entries(text, |k| k.starts_with("server.")),
            "# members\ntickTime=2000\n\n! note\n"
        );
    }
}
