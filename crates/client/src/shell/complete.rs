//! The interactive mode on a terminal: a line editor (history with the arrow keys and Ctrl-R,
//! Emacs keys) with zkCli's prompt and its completion (`JLineZNodeCompleter`): a word that
//! starts with `/` completes to the children of its parent znode, any other word to a command
//! name. Watch events that arrive while a line is being edited are printed above it.
//!
//! The editor blocks, so it runs on its own thread; the shell asks it for one line at a time
//! and prints events through the editor's external printer meanwhile.

use std::sync::{Arc, Mutex};

use rustyline::completion::Completer;
use rustyline::config::{CompletionType, Config};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, ExternalPrinter, Helper};
use tokio::sync::mpsc;

use super::zk::Zk;
use super::{event_text, Flow, Shell, COMMANDS};

/// Completion for the line editor.
pub struct ZkHelper {
    zk: Arc<Mutex<Option<Zk>>>,
    rt: tokio::runtime::Handle,
}

/// The candidates for the word before `pos` and where they start (`JLineZNodeCompleter`).
/// `children` lists a znode's children (or fails).
pub fn candidates(
    line: &str,
    pos: usize,
    children: impl FnOnce(&str) -> Option<Vec<String>>,
) -> (usize, Vec<String>) {
    let buffer = &line[..pos];
    let token = if buffer.ends_with(' ') {
        ""
    } else {
        buffer.rsplit(' ').next().unwrap_or("")
    };
    if token.starts_with('/') {
        let idx = token.rfind('/').map_or(0, |i| i + 1);
        let prefix = &token[idx..];
        let dir = if idx == 1 { "/" } else { &token[..idx - 1] };
        let Some(kids) = children(dir) else {
            return (pos, Vec::new());
        };
        let mut found: Vec<String> = kids.into_iter().filter(|c| c.starts_with(prefix)).collect();
        found.sort();
        if found.is_empty() {
            return (buffer.len(), found);
        }
        return (buffer.rfind('/').map_or(0, |i| i + 1), found);
    }
    let found = COMMANDS
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| c.starts_with(token))
        .map(str::to_owned)
        .collect();
    (buffer.rfind(' ').map_or(0, |i| i + 1), found)
}

impl Completer for ZkHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let zk = self.zk.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok(candidates(line, pos, |dir| {
            let zk = zk?;
            if !zk.client.state().is_alive() {
                return None;
            }
            self.rt
                .block_on(zk.get_children(dir, false, false))
                .ok()
                .map(|(c, _)| c)
        }))
    }
}

impl Hinter for ZkHelper {
    type Hint = String;
}

impl Highlighter for ZkHelper {}

impl Validator for ZkHelper {}

impl Helper for ZkHelper {}

/// Run the shell on a terminal until EOF (Ctrl-D), `quit`, or Ctrl-C (exit 130, as the JVM).
pub async fn run_terminal(mut sh: Shell) -> u8 {
    sh.outln("Welcome to ZooKeeper!");
    sh.outln("JLine support is enabled");
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(true)
        .build();
    let mut editor: Editor<ZkHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            sh.errln(&format!("cannot use the terminal: {e}"));
            return 1;
        }
    };
    editor.set_helper(Some(ZkHelper {
        zk: sh.completion_zk.clone(),
        rt: tokio::runtime::Handle::current(),
    }));
    let mut printer = editor.create_external_printer().ok();
    let (ask_tx, ask_rx) = std::sync::mpsc::channel::<String>();
    let (line_tx, mut line_rx) = mpsc::unbounded_channel::<Result<String, ReadlineError>>();
    std::thread::spawn(move || {
        while let Ok(prompt) = ask_rx.recv() {
            let r = editor.readline(&prompt);
            if line_tx.send(r).is_err() {
                break;
            }
        }
    });
    // Let the first prompt show the state after the first connection attempt, not before.
    sh.settle_first_connection().await;
    sh.print_all_events();
    loop {
        if ask_tx.send(sh.prompt()).is_err() {
            return sh.exit_code;
        }
        let result = loop {
            tokio::select! {
                r = line_rx.recv() => break r,
                Some(item) = sh.events.recv() => {
                    sh.held.push_back(item);
                    sh.receive_events();
                    while let Some((_, ev)) = sh.held.pop_front() {
                        if !sh.print_watches {
                            continue;
                        }
                        match printer.as_mut() {
                            Some(p) => { let _ = p.print(event_text(&ev)); }
                            None => sh.print_event(&ev),
                        }
                    }
                }
            }
        };
        match result {
            Some(Ok(line)) => {
                if let Flow::Exit(code) = sh.execute_line(&line).await {
                    return code;
                }
                sh.print_all_events();
            }
            Some(Err(ReadlineError::Interrupted)) => return 130,
            Some(Err(ReadlineError::Eof)) | None => return sh.exit_code,
            Some(Err(e)) => {
                sh.errln(&format!("{e}"));
                return 1;
            }
        }
    }
}

impl Shell {
    /// Wait (at most the session timeout) until the first session is connected or has given
    /// up on its first round of servers.
    async fn settle_first_connection(&mut self) {
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(self.timeout_ms.clamp(0, 5000) as u64);
        while self
            .zk
            .as_ref()
            .is_some_and(|z| z.client.state() == super::client::ZkState::Connecting)
        {
            tokio::select! {
                Some(item) = self.events.recv() => self.held.push_back(item),
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kids(dir: &str) -> Option<Vec<String>> {
        match dir {
            "/" => Some(vec!["zookeeper".into(), "app".into(), "apple".into()]),
            "/zookeeper" => Some(vec!["quota".into(), "config".into()]),
            _ => None,
        }
    }

    #[test]
    fn paths_complete_to_children() {
        assert_eq!(
            candidates("ls /zoo", 7, kids),
            (4, vec!["zookeeper".into()])
        );
        assert_eq!(
            candidates("ls /ap", 6, kids),
            (4, vec!["app".into(), "apple".into()])
        );
        assert_eq!(
            candidates("get /zookeeper/", 15, kids),
            (15, vec!["config".into(), "quota".into()])
        );
        assert_eq!(candidates("ls /nope/x", 10, kids), (10, vec![]));
        assert_eq!(candidates("ls /zz", 6, kids), (6, vec![]));
    }

    #[test]
    fn other_words_complete_to_commands() {
        let (start, c) = candidates("get", 3, kids);
        assert_eq!(start, 0);
        assert_eq!(
            c,
            ["get", "getAcl", "getAllChildrenNumber", "getEphemerals"]
        );
        let (start, c) = candidates("ls -s ", 6, kids);
        assert_eq!(start, 6);
        assert_eq!(c.len(), COMMANDS.len());
    }
}
