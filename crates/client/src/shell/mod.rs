//! `zooid cli`: a ZooKeeper shell that behaves like ZooKeeper 3.8's `zkCli.sh`, so scripts and
//! fingers written for zkCli work unchanged.
//!
//! ```text
//! zooid cli [-server host:port[,host:port...][/chroot]] [-timeout ms] [-r] [command args...]
//! ```
//! * With a command: run it once and exit with its code (0, 1 for an error, 127 for an unknown
//!   command). As zkCli, the session is not closed (it expires on the server), unless the
//!   command is `close` or `quit`.
//! * Without, stdin a terminal: line editing, history, tab completion of commands and znode
//!   paths, the prompt `[zk: host:port(CONNECTED) 3] `; watch events print as they arrive.
//! * Without, stdin not a terminal: one command per line, no prompt (zkCli's "JLine support is
//!   disabled" mode). At the end of input the exit code is the last command's.
//!
//! Output follows zkCli: results on stdout; messages ("Created /a") and errors on stderr;
//! watch events as `\nWATCHER::\n\nWatchedEvent state:… type:… path:…\n` on stdout. Events are
//! printed in the order they came off the wire relative to replies (see `client.rs`).
//!
//! Layout: [`args`] splits lines and parses options (commons-cli's rules), [`commands`] holds
//! the commands, [`zk`] the ZooKeeper calls, [`client`] the session task (reconnection, watch
//! table, auth), [`quota`] the quota nodes, [`format`] how things print, [`complete`] the line
//! editor's completion.

pub mod args;
pub mod client;
mod commands;
pub mod complete;
pub mod format;
pub mod quota;
pub mod watches;
pub mod zk;

use std::collections::{BTreeMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use client::{Client, EventSink, WatchedEvent};
use zk::Zk;

/// zkCli's version line reports the ZooKeeper release whose protocol we speak, then ours.
pub const CLI_VERSION: &str = concat!(
    "3.8.4-zooid-",
    env!("CARGO_PKG_VERSION"),
    ", built on unknown"
);

/// `ZooKeeperMain.commandMap`: every command and its option string, sorted as zkCli prints
/// them in its usage text.
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "addWatch",
        "[-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE",
    ),
    ("addauth", "scheme auth"),
    ("close", ""),
    ("config", "[-c] [-w] [-s]"),
    ("connect", "host:port"),
    ("create", "[-s] [-e] [-c] [-t ttl] path [data] [acl]"),
    ("delete", "[-v version] path"),
    ("deleteall", "path [-b batch size]"),
    ("delquota", "[-n|-b|-N|-B] path"),
    ("get", "[-s] [-w] path"),
    ("getAcl", "[-s] path"),
    ("getAllChildrenNumber", "path"),
    ("getEphemerals", "path"),
    ("history", ""),
    ("listquota", "path"),
    ("ls", "[-s] [-w] [-R] path"),
    ("printwatches", "on|off"),
    ("quit", ""),
    (
        "reconfig",
        "[-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]",
    ),
    ("redo", "cmdno"),
    ("removewatches", "path [-c|-d|-a] [-l]"),
    ("set", "[-s] [-v version] path data"),
    ("setAcl", "[-s] [-v version] [-R] path acl"),
    ("setquota", "-n|-b|-N|-B val path"),
    ("stat", "[-w] path"),
    ("sync", "path"),
    ("version", ""),
    ("whoami", ""),
];

/// The usage string of a command (`CliCommand.getUsageStr`).
pub fn usage_of(cmd: &str) -> String {
    let opts = COMMANDS
        .iter()
        .find(|(c, _)| *c == cmd)
        .map(|(_, o)| *o)
        .unwrap_or("");
    format!("{cmd} {opts}")
}

/// Why a command failed, as zkCli reports it.
#[derive(Debug)]
pub enum CliError {
    /// A `CliException`: the message goes to stderr, the exit code is remembered.
    Cli { message: String, code: u8 },
    /// An exception zkCli does not catch: the JVM prints it and exits with 1.
    Fatal(String),
}

impl CliError {
    pub fn msg(message: impl Into<String>) -> CliError {
        CliError::Cli {
            message: message.into(),
            code: 1,
        }
    }

    /// `NumberFormatException` from `Integer.parseInt`, which zkCli never catches.
    pub fn number_format(s: &str) -> CliError {
        CliError::Fatal(format!(
            "Exception in thread \"main\" java.lang.NumberFormatException: For input string: \"{s}\""
        ))
    }
}

/// What the main loop does after a line.
enum Flow {
    Continue,
    Exit(u8),
}

/// The options before the command (`MyCommandOptions.parseOptions`).
#[derive(Debug, Clone)]
struct CliOptions {
    server: String,
    timeout: String,
    read_only: bool,
    wait_for_connection: bool,
    command: Option<Vec<String>>,
}

impl CliOptions {
    fn parse(args: &[&str]) -> CliOptions {
        let mut o = CliOptions {
            server: "localhost:2181".into(),
            timeout: "30000".into(),
            read_only: false,
            wait_for_connection: false,
            command: None,
        };
        let mut it = args.iter();
        while let Some(&opt) = it.next() {
            let needs_value = matches!(opt, "-server" | "-timeout" | "-client-configuration");
            if needs_value {
                let Some(&v) = it.next() else {
                    eprintln!("Error: no argument found for option {opt}");
                    return o;
                };
                match opt {
                    "-server" => o.server = v.to_owned(),
                    "-timeout" => o.timeout = v.to_owned(),
                    // A Java client properties file; nothing in it applies here.
                    _ => {}
                }
            } else if opt == "-r" {
                o.read_only = true;
            } else if opt == "-waitforconnection" {
                o.wait_for_connection = true;
            }
            if !opt.starts_with('-') {
                let mut words = vec![opt.to_owned()];
                words.extend(it.map(|s| (*s).to_owned()));
                o.command = Some(words);
                return o;
            }
        }
        o
    }
}

/// The shell's state: `ZooKeeperMain`'s fields.
pub struct Shell {
    zk: Option<Zk>,
    /// The session the completer should use (shared with the line editor's thread).
    completion_zk: Arc<Mutex<Option<Zk>>>,
    /// The connect string of the current session, as typed.
    host: String,
    timeout_ms: i32,
    read_only: bool,
    /// One-shot mode: connect only when a command needs the server.
    lazy: bool,
    sink: EventSink,
    events: mpsc::UnboundedReceiver<(u64, WatchedEvent)>,
    /// Received but not yet printed (they came after the latest reply).
    held: VecDeque<(u64, WatchedEvent)>,
    print_watches: bool,
    history: BTreeMap<i32, String>,
    command_count: i32,
    exit_code: u8,
    /// `AddWatchCommand` keeps its mode between invocations; so do we.
    add_watch_mode: i32,
    last_words: Option<Vec<String>>,
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
}

/// The text zkCli's watcher prints for one event.
pub fn event_text(ev: &WatchedEvent) -> String {
    format!("\nWATCHER::\n\n{ev}\n")
}

impl Shell {
    fn new(opts: &CliOptions, out: Box<dyn Write + Send>, err: Box<dyn Write + Send>) -> Shell {
        let (sink, events) = EventSink::new();
        Shell {
            zk: None,
            completion_zk: Arc::new(Mutex::new(None)),
            host: String::new(),
            timeout_ms: 30_000,
            read_only: opts.read_only,
            lazy: opts.command.is_some() && !opts.wait_for_connection,
            sink,
            events,
            held: VecDeque::new(),
            print_watches: true,
            history: BTreeMap::new(),
            command_count: 0,
            exit_code: 0,
            add_watch_mode: 1,
            last_words: None,
            out,
            err,
        }
    }

    /// Move newly received events into `held`.
    fn receive_events(&mut self) {
        while let Ok(item) = self.events.try_recv() {
            self.held.push_back(item);
        }
    }

    /// Print the events that arrived before the latest reply.
    fn print_events_before_reply(&mut self) {
        self.receive_events();
        let mark = self.sink.mark();
        while self.held.front().is_some_and(|(seq, _)| *seq < mark) {
            let (_, ev) = self.held.pop_front().expect("checked above");
            self.print_event(&ev);
        }
    }

    /// Print every event received so far.
    fn print_all_events(&mut self) {
        self.receive_events();
        while let Some((_, ev)) = self.held.pop_front() {
            self.print_event(&ev);
        }
    }

    fn print_event(&mut self, ev: &WatchedEvent) {
        if self.print_watches {
            let _ = self.out.write_all(event_text(ev).as_bytes());
            let _ = self.out.flush();
        }
    }

    /// Write to stdout (after the events that precede it).
    fn out(&mut self, s: &str) {
        self.print_events_before_reply();
        let _ = self.out.write_all(s.as_bytes());
        let _ = self.out.flush();
    }

    fn outln(&mut self, s: &str) {
        self.out(&format!("{s}\n"));
    }

    fn errln(&mut self, s: &str) {
        self.print_events_before_reply();
        let _ = self.out.flush();
        let _ = self.err.write_all(format!("{s}\n").as_bytes());
        let _ = self.err.flush();
    }

    /// `usage()`: the command list, on stderr.
    fn usage(&mut self) {
        let mut s = String::from(
            "ZooKeeper -server host:port -client-configuration properties-file cmd args\n",
        );
        for (cmd, opts) in COMMANDS {
            s.push_str(&format!("\t{cmd} {opts}\n"));
        }
        self.print_events_before_reply();
        let _ = self.err.write_all(s.as_bytes());
        let _ = self.err.flush();
    }

    fn zk_alive(&self) -> bool {
        self.zk
            .as_ref()
            .is_some_and(|z| z.client.state().is_alive())
    }

    /// `connectToZK`: close the current session if it is alive, then start a new one.
    async fn connect_to(&mut self, host: &str) -> Result<(), CliError> {
        if let Some(zk) = self.zk.take() {
            if zk.client.state().is_alive() {
                zk.client.close().await;
            }
        }
        self.host = host.to_owned();
        let client = Client::connect(
            host,
            self.timeout_ms,
            self.read_only,
            self.lazy,
            self.sink.clone(),
        )
        .map_err(|e| {
            CliError::Fatal(format!(
                "Exception in thread \"main\" java.lang.IllegalArgumentException: {e}"
            ))
        })?;
        let zk = Zk { client };
        *self.completion_zk.lock().unwrap_or_else(|e| e.into_inner()) = Some(zk.clone());
        self.zk = Some(zk);
        Ok(())
    }

    /// The interactive prompt (`getPrompt`).
    fn prompt(&self) -> String {
        let state = self
            .zk
            .as_ref()
            .map(|z| z.client.state().name())
            .unwrap_or("CLOSED");
        format!("[zk: {}({}) {}] ", self.host, state, self.command_count)
    }

    /// `executeLine`: record the line in the history and run it.
    async fn execute_line(&mut self, line: &str) -> Flow {
        if line.is_empty() {
            return Flow::Continue;
        }
        let words = args::split_line(line);
        let words = if words.is_empty() {
            // zkCli keeps the previous command when a line has no words.
            self.last_words.clone().unwrap_or_default()
        } else {
            words
        };
        self.history.insert(self.command_count, line.to_owned());
        let flow = self.process_cmd(words).await;
        self.command_count += 1;
        flow
    }

    /// `processCmd`: run a command and remember its exit code.
    async fn process_cmd(&mut self, words: Vec<String>) -> Flow {
        self.last_words = Some(words.clone());
        match Box::pin(self.process_zk_cmd(words)).await {
            Ok(Flow::Exit(code)) => Flow::Exit(code),
            Ok(Flow::Continue) => {
                self.exit_code = 0;
                Flow::Continue
            }
            Err(CliError::Cli { message, code }) => {
                self.exit_code = code;
                self.errln(&message);
                Flow::Continue
            }
            Err(CliError::Fatal(message)) => {
                self.errln(&message);
                Flow::Exit(1)
            }
        }
    }

    /// `processZKCmd`.
    async fn process_zk_cmd(&mut self, words: Vec<String>) -> Result<Flow, CliError> {
        let Some(cmd) = words.first().cloned() else {
            self.usage();
            return Err(CliError::msg("No command entered"));
        };
        if !COMMANDS.iter().any(|(c, _)| *c == cmd) {
            self.usage();
            return Err(CliError::Cli {
                message: format!("Command not found: Command not found {cmd}"),
                code: 127,
            });
        }
        match cmd.as_str() {
            "quit" => {
                if let Some(zk) = &self.zk {
                    let client = zk.client.clone();
                    client.close().await;
                }
                self.print_all_events();
                return Ok(Flow::Exit(self.exit_code));
            }
            "redo" if words.len() >= 2 => {
                let Some(i) = args::java_decode_int(&words[1]) else {
                    return Err(CliError::number_format(&words[1]));
                };
                if self.command_count <= i || i < 0 {
                    return Err(CliError::msg("Command index out of range"));
                }
                let line = self.history.get(&i).cloned().unwrap_or_default();
                let redo = args::split_line(&line);
                if redo.first().map(String::as_str) == Some("redo") {
                    return Err(CliError::msg("No redoing redos"));
                }
                self.history.insert(self.command_count, line);
                if let Flow::Exit(code) = self.process_cmd(redo).await {
                    return Ok(Flow::Exit(code));
                }
            }
            "history" => {
                let mut s = String::new();
                for i in (self.command_count - 10)..=self.command_count {
                    if i < 0 {
                        continue;
                    }
                    let line = self.history.get(&i).map(String::as_str).unwrap_or("null");
                    s.push_str(&format!("{i} - {line}\n"));
                }
                self.out(&s);
            }
            "printwatches" => {
                if words.len() == 1 {
                    let state = if self.print_watches { "on" } else { "off" };
                    self.outln(&format!("printwatches is {state}"));
                } else {
                    self.print_watches = words[1] == "on";
                }
            }
            "connect" => {
                let host = words.get(1).cloned().unwrap_or_else(|| self.host.clone());
                self.connect_to(&host).await?;
            }
            _ => {}
        }
        if !self.zk_alive() {
            self.outln("Not connected");
            return Ok(Flow::Continue);
        }
        self.run_command(&cmd, words).await?;
        Ok(Flow::Continue)
    }
}

/// Read stdin line by line on a thread (stdin reads block).
fn spawn_line_reader() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match lock.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        buf.pop();
                    }
                    if tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

async fn run(opts: CliOptions) -> u8 {
    let mut sh = Shell::new(
        &opts,
        Box::new(std::io::stdout()),
        Box::new(std::io::stderr()),
    );
    let Ok(timeout_ms) = opts.timeout.parse::<i32>() else {
        sh.errln(&format!(
            "Exception in thread \"main\" java.lang.NumberFormatException: For input string: \"{}\"",
            opts.timeout
        ));
        return 1;
    };
    sh.timeout_ms = timeout_ms;
    if let Err(CliError::Fatal(m) | CliError::Cli { message: m, .. }) =
        sh.connect_to(&opts.server).await
    {
        sh.errln(&m);
        return 1;
    }
    if opts.wait_for_connection {
        let connected = sh.wait_connected(timeout_ms).await;
        sh.print_all_events();
        if !connected {
            sh.errln("Exception in thread \"main\" java.io.IOException: org.apache.zookeeper.KeeperException$ConnectionLossException: KeeperErrorCode = ConnectionLoss");
            return 1;
        }
    }
    match opts.command.clone() {
        Some(words) => {
            let flow = sh.process_cmd(words).await;
            sh.print_all_events();
            match flow {
                Flow::Exit(code) => code,
                Flow::Continue => sh.exit_code,
            }
        }
        None if std::io::stdin().is_terminal() => complete::run_terminal(sh).await,
        None => run_piped(sh).await,
    }
}

/// The "JLine support is disabled" mode: commands from a pipe or file, no prompt.
async fn run_piped(mut sh: Shell) -> u8 {
    sh.outln("Welcome to ZooKeeper!");
    sh.outln("JLine support is disabled");
    let mut lines = spawn_line_reader();
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) => {
                    if let Flow::Exit(code) = sh.execute_line(&line).await {
                        return code;
                    }
                    sh.print_all_events();
                }
                None => break,
            },
            Some(item) = sh.events.recv() => {
                sh.held.push_back(item);
                sh.print_all_events();
            }
        }
    }
    sh.print_all_events();
    sh.exit_code
}

impl Shell {
    /// `-waitforconnection`: wait up to the session timeout for the first connection.
    async fn wait_connected(&mut self, timeout_ms: i32) -> bool {
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(timeout_ms.max(0) as u64);
        loop {
            if let Some(zk) = &self.zk {
                if matches!(
                    zk.client.state(),
                    client::ZkState::Connected | client::ZkState::ConnectedReadOnly
                ) {
                    return true;
                }
            }
            tokio::select! {
                Some(item) = self.events.recv() => self.held.push_back(item),
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }
}

/// `zooid cli [-server host:port[,...]] [-timeout ms] [-r] [command args...]`.
pub fn main(args: &[&str]) -> ExitCode {
    let opts = CliOptions::parse(args);
    println!("Connecting to {}", opts.server);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("zooid cli: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(run(opts));
    let _ = std::io::stdout().flush();
    rt.shutdown_background();
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_before_the_command_parse_like_zkcli() {
        let o = CliOptions::parse(&["-server", "h:1", "-timeout", "5000", "ls", "-s", "/"]);
        assert_eq!(o.server, "h:1");
        assert_eq!(o.timeout, "5000");
        assert_eq!(o.command.unwrap(), ["ls", "-s", "/"]);
        let o = CliOptions::parse(&["-r", "-bogus"]);
        assert!(o.read_only);
        assert!(o.command.is_none());
        assert_eq!(o.server, "localhost:2181");
    }

    #[test]
    fn the_command_list_is_sorted_as_zkcli_prints_it() {
        let names: Vec<&str> = COMMANDS.iter().map(|(c, _)| *c).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(usage_of("ls"), "ls [-s] [-w] [-R] path");
        assert_eq!(usage_of("close"), "close ");
    }
}
