//! JAAS login configuration files, as the JVM reads the one `java.security.auth.login.config`
//! names: sections of login modules, each with a control flag and `key=value` options.
//!
//! ```text
//! Server {
//!     org.apache.zookeeper.server.auth.DigestLoginModule required
//!     user_super="adminsecret"
//!     user_bob="bobsecret";
//! };
//! ```
//! Comments are `//` and `/* */` (a `#` is an error, as for the JVM); values are quoted
//! strings (with `\` escapes) or bare words; `${name}` is left as written. A mistake is told
//! with the file and line and what was expected there, as the JVM's `Configuration Error`
//! does, and how to fix it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Location};

/// One login module of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginModule {
    pub class: String,
    /// required, requisite, sufficient or optional (lower-cased).
    pub flag: String,
    pub options: BTreeMap<String, String>,
    pub line: usize,
}

/// A JAAS file's sections, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jaas {
    pub path: PathBuf,
    pub sections: BTreeMap<String, Vec<LoginModule>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Quoted(String),
    Sym(char),
}

fn error(
    path: &Path,
    line: usize,
    problem: impl Into<String>,
    hint: impl Into<String>,
) -> ConfigError {
    ConfigError::Jaas {
        location: Location::at_line(path, line),
        problem: problem.into(),
        hint: hint.into(),
    }
}

const SYNTAX_HINT: &str = "a JAAS file holds sections like Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob=\"secret\"; }; (comments are // or /* */)";

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || "$_-*.:".contains(c)
}

fn tokens(path: &Path, text: &str) -> Result<Vec<(Tok, usize)>, ConfigError> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let start = line;
                i += 2;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(error(
                                path,
                                start,
                                "a /* comment is never closed",
                                "end it with */",
                            ))
                        }
                        Some('*') if chars.get(i + 1) == Some(&'/') => {
                            i += 2;
                            break;
                        }
                        Some('\n') => {
                            line += 1;
                            i += 1;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            '#' => {
                return Err(error(
                    path,
                    line,
                    "a # comment, which JAAS files do not have (the JVM stops on it too)",
                    "write the comment with // instead",
                ))
            }
            '"' => {
                let start = line;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(error(
                                path,
                                start,
                                "a quoted value is never closed",
                                "end it with \"",
                            ))
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') if i + 1 < chars.len() => {
                            s.push(chars[i + 1]);
                            i += 2;
                        }
                        Some(&c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            s.push(c);
                            i += 1;
                        }
                    }
                }
                out.push((Tok::Quoted(s), start));
            }
            '{' | '}' | ';' | '=' => {
                out.push((Tok::Sym(c), line));
                i += 1;
            }
            c if is_word(c) => {
                let mut s = String::new();
                while let Some(&c) = chars.get(i) {
                    if is_word(c) {
                        s.push(c);
                        i += 1;
                    } else if c == '{' && s.ends_with('$') {
                        // ${property}: kept as written.
                        while let Some(&c) = chars.get(i) {
                            s.push(c);
                            i += 1;
                            if c == '}' {
                                break;
                            }
                        }
                    } else {
                        break;
                    }
                }
                out.push((Tok::Word(s), line));
            }
            other => {
                return Err(error(
                    path,
                    line,
                    format!("the character {other:?} has no place here"),
                    "quote option values that hold it, e.g. user_bob=\"p@ss/word\"",
                ))
            }
        }
    }
    Ok(out)
}

fn describe(t: Option<&(Tok, usize)>) -> String {
    match t {
        None => String::from("the end of the file"),
        Some((Tok::Word(w), _)) => format!("{w:?}"),
        Some((Tok::Quoted(q), _)) => format!("\"{q}\""),
        Some((Tok::Sym(c), _)) => format!("{c:?}"),
    }
}

/// The tokens of a JAAS file, read front to back.
struct Parser<'a> {
    path: &'a Path,
    toks: Vec<(Tok, usize)>,
    i: usize,
    last_line: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&(Tok, usize)> {
        self.toks.get(self.i)
    }

    /// The line of the next token (the last line at the end of the file).
    fn line(&self) -> usize {
        self.peek().map_or(self.last_line, |t| t.1)
    }

    fn fail(&self, problem: String, hint: impl Into<String>) -> ConfigError {
        error(self.path, self.line(), problem, hint)
    }

    fn expect(&mut self, c: char, what: &str) -> Result<(), ConfigError> {
        match self.peek() {
            Some((Tok::Sym(s), _)) if *s == c => {
                self.i += 1;
                Ok(())
            }
            t => Err(self.fail(
                format!("expected {what} ({c:?}), found {}", describe(t)),
                SYNTAX_HINT,
            )),
        }
    }

    /// `Name { module... };`
    fn section(&mut self) -> Result<(String, usize, Vec<LoginModule>), ConfigError> {
        let (name, line) = match self.peek() {
            Some((Tok::Word(w), l)) => (w.clone(), *l),
            t => {
                return Err(self.fail(
                    format!("expected a section name, found {}", describe(t)),
                    SYNTAX_HINT,
                ))
            }
        };
        self.i += 1;
        self.expect('{', "the section's opening brace")?;
        let mut modules = Vec::new();
        loop {
            match self.peek() {
                Some((Tok::Sym('}'), _)) => break,
                Some((Tok::Word(class), line)) => {
                    let (class, line) = (class.clone(), *line);
                    self.i += 1;
                    modules.push(self.module(class, line)?);
                }
                t => {
                    return Err(self.fail(
                        format!(
                            "expected a login module class or the '}}' that ends {name}, found {}",
                            describe(t)
                        ),
                        SYNTAX_HINT,
                    ))
                }
            }
        }
        self.i += 1;
        self.expect(';', &format!("the ';' after the closing brace of {name}"))?;
        Ok((name, line, modules))
    }

    /// The rest of `Class flag key=value ... ;`, after the class on `line`.
    fn module(&mut self, class: String, line: usize) -> Result<LoginModule, ConfigError> {
        let flag = match self.peek() {
            Some((Tok::Word(f), _))
                if ["required", "requisite", "sufficient", "optional"]
                    .contains(&f.to_ascii_lowercase().as_str()) =>
            {
                f.to_ascii_lowercase()
            }
            t => {
                return Err(self.fail(
                    format!(
                        "expected the control flag of {class} (required, requisite, sufficient or optional), found {}",
                        describe(t)
                    ),
                    "write e.g. org.apache.zookeeper.server.auth.DigestLoginModule required",
                ))
            }
        };
        self.i += 1;
        let mut options = BTreeMap::new();
        loop {
            let (key, key_line) = match self.peek() {
                Some((Tok::Sym(';'), _)) => break,
                Some((Tok::Word(key), l)) => (key.clone(), *l),
                t => {
                    return Err(self.fail(
                        format!(
                            "expected an option (key=\"value\") or the ';' that ends the {class} entry, found {}",
                            describe(t)
                        ),
                        "end each login module's options with ;",
                    ))
                }
            };
            self.i += 1;
            self.expect('=', &format!("= after the option {key}"))?;
            let value = match self.peek() {
                Some((Tok::Quoted(v), _)) | Some((Tok::Word(v), _)) => v.clone(),
                t => {
                    return Err(self.fail(
                        format!("expected the value of {key}, found {}", describe(t)),
                        format!("write {key}=\"value\""),
                    ))
                }
            };
            self.i += 1;
            if options.insert(key.clone(), value).is_some() {
                return Err(error(
                    self.path,
                    key_line,
                    format!("the option {key} is given twice"),
                    "keep one of them",
                ));
            }
        }
        self.i += 1;
        Ok(LoginModule {
            class,
            flag,
            options,
            line,
        })
    }
}

/// Parse JAAS text (`path` names it in errors).
pub fn parse_jaas(path: &Path, text: &str) -> Result<Jaas, ConfigError> {
    let mut p = Parser {
        path,
        toks: tokens(path, text)?,
        i: 0,
        last_line: text.lines().count().max(1),
    };
    let mut sections: BTreeMap<String, Vec<LoginModule>> = BTreeMap::new();
    while p.peek().is_some() {
        let (name, line, modules) = p.section()?;
        if sections.insert(name.clone(), modules).is_some() {
            return Err(error(
                path,
                line,
                format!("the section {name} is given twice (the JVM refuses that too)"),
                "merge them into one",
            ));
        }
    }
    Ok(Jaas {
        path: path.to_owned(),
        sections,
    })
}

/// Read and parse the JAAS file at `path`.
pub fn read_jaas(path: &Path) -> Result<Jaas, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_jaas(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Jaas, String> {
        parse_jaas(Path::new("jaas.conf"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_zookeeper_server_section_reads() {
        let j = parse(
            "// the server\nServer {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  \
             user_super=\"adminsecret\"\n  user_bob=\"bob\\\"s\";\n};\n/* and the client */\n\
             Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required username=bob password=\"x\";\n};\n",
        )
        .unwrap();
        let server = &j.sections["Server"];
        assert_eq!(
            server[0].class,
            "org.apache.zookeeper.server.auth.DigestLoginModule"
        );
        assert_eq!(server[0].flag, "required");
        assert_eq!(server[0].options["user_bob"], "bob\"s");
        assert_eq!(server[0].line, 3);
        assert_eq!(j.sections["Client"][0].options["username"], "bob");
    }

    #[test]
    fn mistakes_are_told_with_the_line() {
        let e = parse("Server {\n  x.Y required\n  user_bob=\"a\"\n};\n").unwrap_err();
        assert!(e.starts_with("jaas.conf:4:"), "{e}");
        assert!(e.contains("expected an option"), "{e}");
        let e = parse("# note\nServer { x.Y required; };\n").unwrap_err();
        assert!(e.contains("jaas.conf:1") && e.contains("//"), "{e}");
        let e = parse("Server {\n x.Y mandatory;\n};\n").unwrap_err();
        assert!(
            e.contains("jaas.conf:2") && e.contains("control flag"),
            "{e}"
        );
        let e = parse("Server { x.Y required; }\n").unwrap_err();
        assert!(e.contains("';' after the closing brace of Server"), "{e}");
        let e = parse("A { x.Y required; };\nA { x.Y required; };\n").unwrap_err();
        assert!(e.contains("given twice"), "{e}");
    }
}
