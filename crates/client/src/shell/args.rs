//! Splitting a command line into words and words into options, the way zkCli does.
//!
//! Words: zkCli applies the regex `\s*([^"']\S*|"[^"]*"|'[^']*')\s*` with `Matcher.find` and
//! strips one pair of matching outer quotes. [`split_line`] reproduces that, odd corners
//! included: an unclosed quote is skipped (`"abc` is the word `abc`), and quotes inside a word
//! are kept (`hel"lo`).
//!
//! Options: each command parses its words with Apache commons-cli's `DefaultParser`; errors are
//! printed as `org.apache.commons.cli.<Exception>: <message>`. [`parse`] implements the subset
//! of `DefaultParser` that short options reach: `-s`, `-sw` (concatenated), `-v 3`, `-v3`,
//! `-v=3`, `--` (end of options), and one mutually exclusive option group.

/// Java's `\s`: space, tab, newline, vertical tab, form feed, carriage return.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// Split a line into words as `ZooKeeperMain.MyCommandOptions.parseCommand` does.
pub fn split_line(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut from = 0;
    while let Some((word, next)) = find_word(&chars, from) {
        words.push(word);
        from = next;
    }
    words
}

/// One `Matcher.find()` from `from`: the next word (quotes stripped) and where the match ends.
fn find_word(chars: &[char], from: usize) -> Option<(String, usize)> {
    let n = chars.len();
    for start in from..=n {
        // Leading \s* is greedy; on failure it gives back one character at a time.
        let mut ws_end = start;
        while ws_end < n && is_space(chars[ws_end]) {
            ws_end += 1;
        }
        for k in (start..=ws_end).rev() {
            let Some(end) = group_at(chars, k) else {
                continue;
            };
            let mut word: String = chars[k..end].iter().collect();
            let mut next = end;
            while next < n && is_space(chars[next]) {
                next += 1;
            }
            if word.len() >= 2 {
                let first = word.as_bytes()[0];
                let last = word.as_bytes()[word.len() - 1];
                if (first == b'"' || first == b'\'') && first == last {
                    word = word[1..word.len() - 1].to_owned();
                }
            }
            return Some((word, next));
        }
    }
    None
}

/// The end of the group `([^"']\S*|"[^"]*"|'[^']*')` starting at `k`, if it matches there.
fn group_at(chars: &[char], k: usize) -> Option<usize> {
    let c = *chars.get(k)?;
    if c != '"' && c != '\'' {
        let mut end = k + 1;
        while end < chars.len() && !is_space(chars[end]) {
            end += 1;
        }
        return Some(end);
    }
    let close = chars[k + 1..].iter().position(|&x| x == c)?;
    Some(k + 1 + close + 1)
}

/// One option a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    pub name: &'static str,
    pub has_arg: bool,
}

/// Options of which at most one may be given (commons-cli `OptionGroup`).
#[derive(Debug, Clone, Copy)]
pub struct Group {
    pub names: &'static [&'static str],
    pub descriptions: &'static [&'static str],
    pub required: bool,
}

/// A parsed command line: options in the order given, and the other words (the command name
/// first, as `CommandLine.getArgs()` has it).
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    opts: Vec<(&'static str, Option<String>)>,
    pub args: Vec<String>,
}

impl Parsed {
    pub fn has(&self, name: &str) -> bool {
        self.opts.iter().any(|(n, _)| *n == name)
    }

    /// The first value given for `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.opts
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

struct Parser<'a> {
    specs: &'a [Opt],
    group: Option<Group>,
    selected: Option<&'static str>,
    out: Parsed,
    /// The option still waiting for its argument (an index into `out.opts`).
    current: Option<usize>,
    skip: bool,
}

fn unrecognized(token: &str) -> String {
    format!("org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: {token}")
}

impl Parser<'_> {
    fn spec(&self, name: &str) -> Option<Opt> {
        self.specs.iter().copied().find(|o| o.name == name)
    }

    fn is_short_option(&self, token: &str) -> bool {
        if !token.starts_with('-') || token.len() == 1 {
            return false;
        }
        let body = &token[1..];
        let name = body.split('=').next().unwrap_or("");
        if self.spec(name).is_some() {
            return true;
        }
        name.chars()
            .next()
            .is_some_and(|c| self.spec(&c.to_string()).is_some())
    }

    fn check_required_args(&self) -> Result<(), String> {
        if let Some(i) = self.current {
            let (name, value) = &self.out.opts[i];
            if value.is_none() {
                return Err(format!(
                    "org.apache.commons.cli.MissingArgumentException: Missing argument for option: {name}"
                ));
            }
        }
        Ok(())
    }

    fn handle_option(&mut self, opt: Opt) -> Result<(), String> {
        self.check_required_args()?;
        if let Some(g) = self.group {
            if g.names.contains(&opt.name) {
                match self.selected {
                    Some(sel) if sel != opt.name => {
                        return Err(format!(
                            "org.apache.commons.cli.AlreadySelectedException: The option '{}' was specified but an option from this group has already been selected: '{sel}'",
                            opt.name
                        ));
                    }
                    _ => self.selected = Some(opt.name),
                }
            }
        }
        self.out.opts.push((opt.name, None));
        self.current = opt.has_arg.then_some(self.out.opts.len() - 1);
        Ok(())
    }

    fn set_value(&mut self, value: &str) {
        if let Some(i) = self.current.take() {
            self.out.opts[i].1 = Some(value.to_owned());
        }
    }

    fn handle_unknown(&mut self, token: &str) -> Result<(), String> {
        if token.starts_with('-') && token.len() > 1 {
            return Err(unrecognized(token));
        }
        self.out.args.push(token.to_owned());
        Ok(())
    }

    fn handle_token(&mut self, token: &str) -> Result<(), String> {
        if self.skip {
            self.out.args.push(token.to_owned());
        } else if token == "--" {
            self.skip = true;
        } else if self.current.is_some() && !self.is_short_option(token) {
            self.set_value(token);
        } else if token.starts_with("--") {
            // No command has long options.
            return Err(unrecognized(token.split('=').next().unwrap_or(token)));
        } else if token.starts_with('-') && token != "-" {
            self.handle_short(token)?;
        } else {
            self.handle_unknown(token)?;
        }
        Ok(())
    }

    fn handle_short(&mut self, token: &str) -> Result<(), String> {
        let t = &token[1..];
        match t.find('=') {
            None => {
                if let Some(opt) = self.spec(t) {
                    self.handle_option(opt)
                } else if t.chars().count() == 1 {
                    self.handle_unknown(token)
                } else {
                    self.handle_concatenated(token)
                }
            }
            Some(pos) => {
                let (name, value) = (&t[..pos], &t[pos + 1..]);
                match self.spec(name) {
                    Some(opt) if name.chars().count() == 1 && opt.has_arg => {
                        self.handle_option(opt)?;
                        self.set_value(value);
                        Ok(())
                    }
                    _ if name.chars().count() == 1 => self.handle_unknown(token),
                    _ => Err(unrecognized(&token[..pos + 1])),
                }
            }
        }
    }

    fn handle_concatenated(&mut self, token: &str) -> Result<(), String> {
        let chars: Vec<(usize, char)> = token.char_indices().collect();
        for &(at, c) in &chars[1..] {
            let Some(opt) = self.spec(&c.to_string()) else {
                return self.handle_unknown(token);
            };
            self.handle_option(opt)?;
            let rest = at + c.len_utf8();
            if self.current.is_some() && rest < token.len() {
                self.set_value(&token[rest..]);
                break;
            }
        }
        Ok(())
    }
}

/// Parse `words` (the command name included) against `specs` as `DefaultParser.parse` does.
/// The error is the text zkCli prints (`org.apache.commons.cli.…Exception: …`).
pub fn parse(specs: &[Opt], group: Option<Group>, words: &[String]) -> Result<Parsed, String> {
    let mut p = Parser {
        specs,
        group,
        selected: None,
        out: Parsed::default(),
        current: None,
        skip: false,
    };
    for w in words {
        p.handle_token(w)?;
    }
    p.check_required_args()?;
    if let Some(g) = group {
        if g.required && p.selected.is_none() {
            let list: Vec<String> = g
                .names
                .iter()
                .zip(g.descriptions)
                .map(|(n, d)| format!("-{n} {d}"))
                .collect();
            return Err(format!(
                "org.apache.commons.cli.MissingOptionException: Missing required option: [{}]",
                list.join(", ")
            ));
        }
    }
    Ok(p.out)
}

/// `Integer.decode`: optional sign, then `0x`/`0X`/`#` for hex, a leading `0` for octal.
pub fn java_decode_int(s: &str) -> Option<i32> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(h) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        (16, h)
    } else if let Some(h) = body.strip_prefix('#') {
        (16, h)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    if digits.is_empty() || digits.starts_with(['-', '+']) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    let v = if neg { -v } else { v };
    i32::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        split_line(line)
    }

    #[test]
    fn words_split_like_zkcli() {
        assert_eq!(words("ls /"), ["ls", "/"]);
        assert_eq!(words("  ls   -s  / "), ["ls", "-s", "/"]);
        assert_eq!(
            words("create /a \"two words\""),
            ["create", "/a", "two words"]
        );
        assert_eq!(
            words("create /q 'single quoted'"),
            ["create", "/q", "single quoted"]
        );
        assert_eq!(
            words("create /c hel\"lo wor\"ld"),
            ["create", "/c", "hel\"lo", "wor\"ld"]
        );
        assert_eq!(words("create /q2 'it''s'"), ["create", "/q2", "it", "s"]);
        // An unclosed quote after a word is skipped.
        assert_eq!(
            words("create /q3 \"unterminated"),
            ["create", "/q3", "unterminated"]
        );
        assert_eq!(words("create /e \"\""), ["create", "/e", ""]);
        assert!(words("").is_empty());
        // Leading blanks give one back to the group when nothing else matches.
        assert_eq!(words(" \"abc"), [" \"abc"]);
        assert_eq!(words("   "), [" "]);
    }

    const LS: &[Opt] = &[
        Opt {
            name: "?",
            has_arg: false,
        },
        Opt {
            name: "s",
            has_arg: false,
        },
        Opt {
            name: "w",
            has_arg: false,
        },
        Opt {
            name: "R",
            has_arg: false,
        },
    ];
    const SET: &[Opt] = &[
        Opt {
            name: "s",
            has_arg: false,
        },
        Opt {
            name: "v",
            has_arg: true,
        },
    ];

    fn p(specs: &[Opt], line: &str) -> Result<Parsed, String> {
        parse(specs, None, &split_line(line))
    }

    #[test]
    fn options_parse_like_default_parser() {
        let r = p(LS, "ls -s -w /a").unwrap();
        assert!(r.has("s") && r.has("w") && !r.has("R"));
        assert_eq!(r.args, ["ls", "/a"]);
        let r = p(LS, "ls -sw /a").unwrap();
        assert!(r.has("s") && r.has("w"));
        assert_eq!(
            p(LS, "ls -x /").unwrap_err(),
            "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: -x"
        );
        assert_eq!(
            p(LS, "ls -sx /").unwrap_err(),
            "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: -sx"
        );
        assert_eq!(
            p(LS, "ls -s=1 /").unwrap_err(),
            "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: -s=1"
        );
        assert_eq!(
            p(LS, "ls --foo /").unwrap_err(),
            "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: --foo"
        );
        assert_eq!(p(LS, "ls -- -s").unwrap().args, ["ls", "-s"]);
        assert_eq!(p(SET, "set -v 3 /a x").unwrap().value("v"), Some("3"));
        assert_eq!(p(SET, "set -v3 /a x").unwrap().value("v"), Some("3"));
        assert_eq!(p(SET, "set -v=3 /a x").unwrap().value("v"), Some("3"));
        assert_eq!(p(SET, "set -sv3 /a x").unwrap().value("v"), Some("3"));
        assert_eq!(p(SET, "set -v -1 /a x").unwrap().value("v"), Some("-1"));
        assert_eq!(
            p(SET, "set -v").unwrap_err(),
            "org.apache.commons.cli.MissingArgumentException: Missing argument for option: v"
        );
        assert_eq!(
            p(SET, "set -v -s /a").unwrap_err(),
            "org.apache.commons.cli.MissingArgumentException: Missing argument for option: v"
        );
    }

    #[test]
    fn option_groups_allow_one_and_may_be_required() {
        const Q: &[Opt] = &[
            Opt {
                name: "n",
                has_arg: true,
            },
            Opt {
                name: "b",
                has_arg: true,
            },
        ];
        let g = Group {
            names: &["n", "b"],
            descriptions: &["num soft quota", "bytes soft quota"],
            required: true,
        };
        let w = |l: &str| split_line(l);
        assert!(parse(Q, Some(g), &w("setquota -n 1 /a")).is_ok());
        assert_eq!(
            parse(Q, Some(g), &w("setquota -n 1 -b 2 /a")).unwrap_err(),
            "org.apache.commons.cli.AlreadySelectedException: The option 'b' was specified but an option from this group has already been selected: 'n'"
        );
        assert_eq!(
            parse(Q, Some(g), &w("setquota /a")).unwrap_err(),
            "org.apache.commons.cli.MissingOptionException: Missing required option: [-n num soft quota, -b bytes soft quota]"
        );
    }

    #[test]
    fn integers_decode_like_java() {
        assert_eq!(java_decode_int("12"), Some(12));
        assert_eq!(java_decode_int("0x1"), Some(1));
        assert_eq!(java_decode_int("010"), Some(8));
        assert_eq!(java_decode_int("#f"), Some(15));
        assert_eq!(java_decode_int("-1"), Some(-1));
        assert_eq!(java_decode_int("0"), Some(0));
        assert_eq!(java_decode_int("x"), None);
        assert_eq!(java_decode_int(""), None);
    }
}
