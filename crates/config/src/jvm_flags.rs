//! The `SERVER_JVMFLAGS` layer: splits the variable into shell-like words
//! (simple `"..."`, `'...'` and backslash quoting) and returns the `-Dkey=value`
//! system properties among them, in order. Other words (`-Xmx1g`, ...) are
//! ignored; which properties matter is decided by the config module.

use crate::error::{Location, Warning};

/// One `-Dkey=value` word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SystemProperty {
    pub key: String,
    pub value: String,
}

/// Splits `flags` into words the way a POSIX shell would for simple cases.
/// The flag is true when a quote was left open.
fn split_words(flags: &str) -> (Vec<String>, bool) {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = flags.chars();
    let mut unterminated = false;
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                let mut closed = false;
                for q in chars.by_ref() {
                    if q == '\'' {
                        closed = true;
                        break;
                    }
                    word.push(q);
                }
                unterminated |= !closed;
            }
            '"' => {
                in_word = true;
                let mut closed = false;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => word.push(e),
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => word.push('\\'),
                        },
                        other => word.push(other),
                    }
                }
                unterminated |= !closed;
            }
            '\\' => {
                in_word = true;
                if let Some(e) = chars.next() {
                    word.push(e);
                }
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    (words, unterminated)
}

/// Returns the `-Dkey=value` words of `flags`, values trimmed. A `-Dkey`
/// without `=` is skipped (with a warning, since Java would set it to "").
pub(crate) fn system_properties(flags: &str, warnings: &mut Vec<Warning>) -> Vec<SystemProperty> {
    let (words, unterminated) = split_words(flags);
    if unterminated {
        warnings.push(Warning::at(
            &Location::JvmFlags,
            "a quote is not closed; the rest of the variable was read as one word",
        ));
    }
    let mut props = Vec::new();
    for word in words {
        let Some(body) = word.strip_prefix("-D") else {
            tracing::debug!(word = %word, "SERVER_JVMFLAGS word is not a -D property; ignored");
            continue;
        };
        match body.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => props.push(SystemProperty {
                key: key.trim().to_string(),
                value: value.trim().to_string(),
            }),
            Some(_) => warnings.push(Warning::at(
                &Location::JvmFlags,
                format!("{word:?} has no property name; ignored"),
            )),
            None => warnings.push(Warning::at(
                &Location::JvmFlags,
                format!("{word} has no value; ignored (write {word}=value)"),
            )),
        }
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(flags: &str) -> Vec<(String, String)> {
        let mut w = Vec::new();
        system_properties(flags, &mut w)
            .into_iter()
            .map(|p| (p.key, p.value))
            .collect()
    }

    #[test]
    fn picks_d_flags_and_ignores_others() {
        let p = props("-Xmx512m -Dzookeeper.extendedTypesEnabled=true -Djute.maxbuffer=4194304");
        assert_eq!(
            p,
            vec![
                ("zookeeper.extendedTypesEnabled".into(), "true".into()),
                ("jute.maxbuffer".into(), "4194304".into())
            ]
        );
    }

    #[test]
    fn quotes_are_removed() {
        let p = props(r#"-Da="x y" "-Db=z" -Dc='q r' -Dd=\"e\" -De="a\"b""#);
        assert_eq!(
            p,
            vec![
                ("a".into(), "x y".into()),
                ("b".into(), "z".into()),
                ("c".into(), "q r".into()),
                ("d".into(), "\"e\"".into()),
                ("e".into(), "a\"b".into()),
            ]
        );
    }

    #[test]
    fn value_may_contain_equals() {
        assert_eq!(
            props("-DDigestAuthenticationProvider.superDigest=super:abc=="),
            vec![(
                "DigestAuthenticationProvider.superDigest".into(),
                "super:abc==".into()
            )]
        );
    }

    #[test]
    fn missing_value_and_open_quote_warn() {
        let mut w = Vec::new();
        let p = system_properties("-Dfoo -Dbar=\"baz", &mut w);
        assert_eq!(
            p,
            vec![SystemProperty {
                key: "bar".into(),
                value: "baz".into()
            }]
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w
            .iter()
            .all(|w| w.to_string().starts_with("SERVER_JVMFLAGS: ")));
    }

    #[test]
    fn empty_and_blank_input() {
        assert!(props("").is_empty());
        assert!(props("   \t ").is_empty());
    }
}
