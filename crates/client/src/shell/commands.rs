//! The zkCli commands (`org.apache.zookeeper.cli.*Command`): each parses its words with
//! commons-cli's rules, checks them in zkCli's order, makes the same ZooKeeper calls and prints
//! the same text. Errors come back as [`CliError`] with zkCli's message.

use zooid_proto::{watcher_type, Acl, ErrorCode, Id, MultiOp};

use super::args::{self, Group, Opt, Parsed};
use super::format::{id_string, java_list, perm_string, stat_block};
use super::quota::{self, StatsTrack, BYTES, BYTES_HARD, COUNT, COUNT_HARD, QUOTA_ROOT};
use super::zk::{create_mode, KeeperError, Zk, ZkError, MAX_TTL_MS};
use super::{usage_of, CliError, Shell, CLI_VERSION};

const fn flag(name: &'static str) -> Opt {
    Opt {
        name,
        has_arg: false,
    }
}

const fn with_arg(name: &'static str) -> Opt {
    Opt {
        name,
        has_arg: true,
    }
}

/// `CliWrapperException` / `MalformedPathException` for an error from a ZooKeeper call.
fn wrap(e: ZkError) -> CliError {
    match e {
        ZkError::IllegalArgument(m) => CliError::msg(m),
        ZkError::Keeper(k) => CliError::msg(k.cli_message()),
    }
}

fn parse(specs: &[Opt], group: Option<Group>, words: &[String]) -> Result<Parsed, CliError> {
    args::parse(specs, group, words).map_err(CliError::msg)
}

/// `Integer.parseInt`, whose failure zkCli does not catch.
fn parse_int(s: &str) -> Result<i32, CliError> {
    s.parse::<i32>().map_err(|_| CliError::number_format(s))
}

/// `AclParser.parse`: `scheme:id:perms[,...]`; malformed entries are reported and skipped.
fn parse_acl(sh: &mut Shell, s: &str) -> Vec<Acl> {
    let mut parts: Vec<&str> = s.split(',').collect();
    while parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    if parts.iter().all(|p| p.is_empty()) && !s.is_empty() {
        parts.clear();
    }
    let mut acl = Vec::new();
    for a in parts {
        let (Some(first), Some(last)) = (a.find(':'), a.rfind(':')) else {
            sh.errln(&format!("{a} does not have the form scheme:id:perm"));
            continue;
        };
        if first == last {
            sh.errln(&format!("{a} does not have the form scheme:id:perm"));
            continue;
        }
        let mut perms = 0;
        for c in a[last + 1..].chars() {
            match c {
                'r' => perms |= zooid_proto::perms::READ,
                'w' => perms |= zooid_proto::perms::WRITE,
                'c' => perms |= zooid_proto::perms::CREATE,
                'd' => perms |= zooid_proto::perms::DELETE,
                'a' => perms |= zooid_proto::perms::ADMIN,
                other => sh.errln(&format!("Unknown perm type: {other}")),
            }
        }
        acl.push(Acl {
            perms,
            id: Id::new(&a[..first], &a[first + 1..last]),
        });
    }
    acl
}

/// `String#compareTo` order (UTF-16 code units), as `Collections.sort` uses.
fn java_sort(v: &mut [String]) {
    v.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
}

fn child_path(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// What `ZKUtil.visitSubTreeDFS` does at each node.
enum Visit {
    Print,
    SetAcl { acl: Vec<Acl>, version: i32 },
}

const LS_HELP: &str =
    "usage: ls [options] path\n -?   help\n -R   recurse\n -s   stat\n -w   watch\n";

impl Shell {
    fn zk(&self) -> Zk {
        self.zk.clone().expect("commands run only with a session")
    }

    /// Run a `CliCommand` (the connection is alive).
    pub(super) async fn run_command(
        &mut self,
        cmd: &str,
        words: Vec<String>,
    ) -> Result<bool, CliError> {
        match cmd {
            "ls" => self.ls(words).await,
            "create" => self.create(words).await,
            "get" => self.get(words).await,
            "set" => self.set(words).await,
            "stat" => self.stat(words).await,
            "delete" => self.delete(words).await,
            "deleteall" => self.delete_all(words).await,
            "getAcl" => self.get_acl(words).await,
            "setAcl" => self.set_acl(words).await,
            "sync" => self.sync(words).await,
            "config" => self.config(words).await,
            "addWatch" => self.add_watch(words).await,
            "removewatches" => self.remove_watches(words).await,
            "getEphemerals" => self.get_ephemerals(words).await,
            "getAllChildrenNumber" => self.get_all_children_number(words).await,
            "version" => self.version(words),
            "whoami" => self.who_am_i().await,
            "close" => {
                let zk = self.zk();
                zk.client.close().await;
                self.print_all_events();
                Ok(false)
            }
            "addauth" => self.add_auth(words),
            "setquota" => self.set_quota(words).await,
            "listquota" => self.list_quota(words).await,
            "delquota" => self.del_quota(words).await,
            "reconfig" => self.reconfig(words).await,
            // connect, history, redo, printwatches were handled by the caller.
            _ => Ok(false),
        }
    }

    /// `visitSubTreeDFS`: the node, then for each node all its children (sorted) before
    /// descending into the first of them.
    async fn visit_subtree(
        &mut self,
        path: &str,
        watch: bool,
        what: &Visit,
    ) -> Result<(), ZkError> {
        let zk = self.zk();
        super::format::validate_path(path).map_err(ZkError::IllegalArgument)?;
        zk.get_data(path, watch).await?;
        self.visit_one(&zk, path, what).await;
        let mut expand = vec![path.to_owned()];
        while let Some(p) = expand.pop() {
            let mut children = match zk.get_children(&p, watch, false).await {
                Ok((c, _)) => c,
                Err(ZkError::Keeper(k)) if k.code == ErrorCode::NoNode.code() => continue,
                Err(e) => return Err(e),
            };
            java_sort(&mut children);
            let kids: Vec<String> = children.iter().map(|c| child_path(&p, c)).collect();
            for k in &kids {
                self.visit_one(&zk, k, what).await;
            }
            expand.extend(kids.into_iter().rev());
        }
        Ok(())
    }

    async fn visit_one(&mut self, zk: &Zk, path: &str, what: &Visit) {
        match what {
            Visit::Print => self.outln(path),
            Visit::SetAcl { acl, version } => {
                if let Err(e) = zk.set_acl(path, acl.clone(), *version).await {
                    let m = match e {
                        ZkError::Keeper(k) => k.message(),
                        ZkError::IllegalArgument(m) => m,
                    };
                    self.out(&m);
                }
            }
        }
    }

    /// `retainCompatibility` of ls/get/stat: a third word is read as the old `watch` flag.
    fn old_watch_form(
        &mut self,
        specs: &[Opt],
        words: &mut [String],
        parsed: Parsed,
        cmd: &str,
        new_form: &str,
    ) -> Result<Parsed, CliError> {
        if parsed.args.len() > 2 {
            words[2] = "-w".into();
            self.errln(&format!(
                "'{cmd} path [watch]' has been deprecated. Please use '{new_form}' instead."
            ));
            return parse(specs, None, words);
        }
        Ok(parsed)
    }

    async fn ls(&mut self, mut words: Vec<String>) -> Result<bool, CliError> {
        const SPECS: &[Opt] = &[flag("?"), flag("s"), flag("w"), flag("R")];
        let parsed = parse(SPECS, None, &words)?;
        if parsed.has("?") {
            self.out(LS_HELP);
        }
        let parsed = self.old_watch_form(SPECS, &mut words, parsed, "ls", "ls [-w] path")?;
        if parsed.args.len() < 2 {
            return Err(CliError::msg(usage_of("ls")));
        }
        let path = parsed.args[1].clone();
        let watch = parsed.has("w");
        if parsed.has("R") {
            self.visit_subtree(&path, watch, &Visit::Print)
                .await
                .map_err(wrap)?;
        } else {
            let (mut children, stat) = self
                .zk()
                .get_children(&path, watch, parsed.has("s"))
                .await
                .map_err(wrap)?;
            java_sort(&mut children);
            let mut s = java_list(&children);
            s.push('\n');
            if let Some(stat) = stat {
                s.push_str(&stat_block(&stat));
            }
            self.out(&s);
        }
        Ok(watch)
    }

    async fn create(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        const SPECS: &[Opt] = &[flag("e"), flag("s"), flag("c"), with_arg("t")];
        let parsed = parse(SPECS, None, &words)?;
        if parsed.args.len() < 2 {
            return Err(CliError::msg(usage_of("create")));
        }
        let (e, s, c, t) = (
            parsed.has("e"),
            parsed.has("s"),
            parsed.has("c"),
            parsed.has("t"),
        );
        if c && (e || s) {
            return Err(CliError::msg(
                "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.",
            ));
        }
        let ttl = if t {
            match parsed.value("t").unwrap_or("").parse::<i64>() {
                Ok(v) => v,
                Err(_) => return Err(CliError::msg("-t argument must be a long value")),
            }
        } else {
            0
        };
        if t && e {
            return Err(CliError::msg("TTLs cannot be used with Ephemeral znodes"));
        }
        if t && c {
            return Err(CliError::msg("TTLs cannot be used with Container znodes"));
        }
        let flags = match (e, s) {
            (true, true) => create_mode::EPHEMERAL_SEQUENTIAL,
            (true, false) => create_mode::EPHEMERAL,
            (false, true) if t => create_mode::PERSISTENT_SEQUENTIAL_WITH_TTL,
            (false, true) => create_mode::PERSISTENT_SEQUENTIAL,
            _ if c => create_mode::CONTAINER,
            _ if t => create_mode::PERSISTENT_WITH_TTL,
            _ => create_mode::PERSISTENT,
        };
        if t && (ttl <= 0 || ttl > MAX_TTL_MS) {
            return Err(CliError::msg(format!(
                "ttl must be positive and cannot be larger than: {MAX_TTL_MS}"
            )));
        }
        let path = parsed.args[1].clone();
        let data = parsed.args.get(2).map(|d| d.as_bytes().to_vec());
        let acl = match parsed.args.get(3) {
            Some(a) => parse_acl(self, a),
            None => Acl::open_unsafe(),
        };
        let result = self
            .zk()
            .create(&path, data, acl, flags, t.then_some(ttl))
            .await;
        match result {
            Ok(created) => {
                self.errln(&format!("Created {created}"));
                Ok(true)
            }
            Err(ZkError::Keeper(k)) if k.code == ErrorCode::EphemeralOnLocalSession.code() => {
                self.errln("Unable to create ephemeral node on a local session");
                Err(CliError::msg(k.cli_message()))
            }
            Err(ZkError::Keeper(k)) if k.code == ErrorCode::InvalidAcl.code() => {
                self.errln(&k.message());
                Err(CliError::msg(k.cli_message()))
            }
            Err(e) => Err(wrap(e)),
        }
    }

    async fn get(&mut self, mut words: Vec<String>) -> Result<bool, CliError> {
        const SPECS: &[Opt] = &[flag("s"), flag("w")];
        let parsed = parse(SPECS, None, &words)?;
        if parsed.args.len() < 2 {
            return Err(CliError::msg(usage_of("get")));
        }
        let parsed = self.old_watch_form(SPECS, &mut words, parsed, "get", "get [-s] [-w] path")?;
        let watch = parsed.has("w");
        let (data, stat) = self
            .zk()
            .get_data(&parsed.args[1], watch)
            .await
            .map_err(wrap)?;
        let mut s = match data {
            Some(d) => String::from_utf8_lossy(&d).into_owned(),
            None => "null".into(),
        };
        s.push('\n');
        if parsed.has("s") {
            s.push_str(&stat_block(&stat));
        }
        self.out(&s);
        Ok(watch)
    }

    async fn set(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        const SPECS: &[Opt] = &[flag("s"), with_arg("v")];
        let parsed = parse(SPECS, None, &words)?;
        if parsed.args.len() < 3 {
            return Err(CliError::msg(usage_of("set")));
        }
        let version = match parsed.value("v") {
            Some(v) => parse_int(v)?,
            None => -1,
        };
        let stat = self
            .zk()
            .set_data(&parsed.args[1], parsed.args[2].as_bytes().to_vec(), version)
            .await
            .map_err(wrap)?;
        if parsed.has("s") {
            self.out(&stat_block(&stat));
        }
        Ok(false)
    }

    async fn stat(&mut self, mut words: Vec<String>) -> Result<bool, CliError> {
        const SPECS: &[Opt] = &[flag("w")];
        let parsed = parse(SPECS, None, &words)?;
        if parsed.args.len() < 2 {
            return Err(CliError::msg(usage_of("stat")));
        }
        let parsed = self.old_watch_form(SPECS, &mut words, parsed, "stat", "stat [-w] path")?;
        let path = parsed.args[1].clone();
        let watch = parsed.has("w");
        match self.zk().exists(&path, watch).await.map_err(wrap)? {
            Some(stat) => {
                self.out(&stat_block(&stat));
                Ok(watch)
            }
            None => Err(CliError::msg(
                KeeperError::new(ErrorCode::NoNode.code(), Some(&path)).cli_message(),
            )),
        }
    }

    async fn delete(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        const SPECS: &[Opt] = &[with_arg("v")];
        let parsed = parse(SPECS, None, &words)?;
        if parsed.args.len() < 2 {
            return Err(CliError::msg(usage_of("delete")));
        }
        if parsed.args.len() > 2 {
            self.errln(
                "'delete path [version]' has been deprecated. Please use 'delete [-v version] path' instead.",
            );
        }
        let version = match parsed.value("v") {
            Some(v) => parse_int(v)?,
            None => -1,
        };
        self.zk()
            .delete(&parsed.args[1], version)
            .await
            .map_err(wrap)?;
        Ok(false)
    }

    async fn delete_all(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        const SPECS: &[Opt] = &[with_arg("b")];
        let parsed = parse(SPECS, None, &words)?;
        if parsed.args.len() < 2 {
            return Err(CliError::msg(usage_of("deleteall")));
        }
        let batch = match parsed.value("b") {
            Some(b) => b
                .parse::<i32>()
                .map_err(|_| CliError::msg("-b argument must be an int value"))?,
            None => 1000,
        };
        let path = parsed.args[1].clone();
        let ok = self.delete_recursive(&path, batch).await.map_err(wrap)?;
        if !ok {
            self.errln("Failed to delete some node(s) in the subtree!");
        }
        Ok(false)
    }

    /// `ZKUtil.deleteRecursive`: list the subtree breadth first, then delete it leaves first
    /// in multi batches of `batch` deletes; stop at the first failed batch.
    async fn delete_recursive(&mut self, root: &str, batch: i32) -> Result<bool, ZkError> {
        super::format::validate_path(root).map_err(ZkError::IllegalArgument)?;
        let zk = self.zk();
        let mut tree = vec![root.to_owned()];
        let mut next = 0;
        while next < tree.len() {
            let node = tree[next].clone();
            next += 1;
            let (children, _) = zk.get_children(&node, false, false).await?;
            tree.extend(children.iter().map(|c| child_path(&node, c)));
        }
        let mut ops = Vec::new();
        for (i, path) in tree.iter().enumerate().rev() {
            ops.push(MultiOp::Delete {
                path: path.clone(),
                version: -1,
            });
            let full = ops.len() as i64 == i64::from(batch) || i == 0;
            if full && zk.multi(std::mem::take(&mut ops)).await.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn get_acl(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        const SPECS: &[Opt] = &[flag("s")];
        let parsed = parse(SPECS, None, &words)?;
        if parsed.args.len() < 2 {
            return Err(CliError::msg(usage_of("getAcl")));
        }
        let (acl, stat) = self.zk().get_acl(&parsed.args[1]).await.map_err(wrap)?;
        let mut s = String::new();
        for a in &acl {
            s.push_str(&id_string(&a.id.scheme, &a.id.id));
            s.push_str(&format!(": {}\n", perm_string(a.perms)));
        }
        if parsed.has("s") {
            s.push_str(&stat_block(&stat));
        }
        self.out(&s);
        Ok(false)
    }

    async fn set_acl(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        const SPECS: &[Opt] = &[flag("s"), with_arg("v"), flag("R")];
        let parsed = parse(SPECS, None, &words)?;
        if parsed.args.len() < 3 {
            return Err(CliError::msg(usage_of("setAcl")));
        }
        let path = parsed.args[1].clone();
        let acl = parse_acl(self, &parsed.args[2]);
        let version = match parsed.value("v") {
            Some(v) => parse_int(v)?,
            None => -1,
        };
        if parsed.has("R") {
            self.visit_subtree(&path, false, &Visit::SetAcl { acl, version })
                .await
                .map_err(wrap)?;
        } else {
            let stat = self.zk().set_acl(&path, acl, version).await.map_err(wrap)?;
            if parsed.has("s") {
                self.out(&stat_block(&stat));
            }
        }
        Ok(false)
    }

    async fn sync(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        let parsed = parse(&[], None, &words)?;
        if parsed.args.len() < 2 {
            return Err(CliError::msg(usage_of("sync")));
        }
        let rc = self.zk().sync(&parsed.args[1]).await.map_err(wrap)?;
        if rc == 0 {
            self.outln("Sync is OK");
        } else {
            self.outln(&format!("Sync has failed. rc={rc}"));
        }
        Ok(false)
    }

    async fn config(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        const SPECS: &[Opt] = &[flag("s"), flag("w"), flag("c")];
        let parsed = parse(SPECS, None, &words)?;
        let watch = parsed.has("w");
        let (data, stat) = self.zk().get_config(watch).await.map_err(wrap)?;
        let text = match data {
            Some(d) => String::from_utf8_lossy(&d).into_owned(),
            None => "null".into(),
        };
        let mut s = if parsed.has("c") {
            client_config_string(&text)
        } else {
            text
        };
        s.push('\n');
        if parsed.has("s") {
            s.push_str(&stat_block(&stat));
        }
        self.out(&s);
        Ok(watch)
    }

    async fn add_watch(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        const SPECS: &[Opt] = &[with_arg("m")];
        let parsed = parse(SPECS, None, &words)?;
        if parsed.args.len() != 2 {
            return Err(CliError::msg(usage_of("addWatch")));
        }
        if let Some(m) = parsed.value("m") {
            self.add_watch_mode = match m.to_uppercase().as_str() {
                "PERSISTENT" => 0,
                "PERSISTENT_RECURSIVE" => 1,
                _ => return Err(CliError::msg(usage_of("addWatch"))),
            };
        }
        let path = parsed.args[1].clone();
        match self.zk().add_watch(&path, self.add_watch_mode).await {
            Ok(()) => Ok(false),
            // zkCli does not catch the path check here: the JVM reports it and exits.
            Err(ZkError::IllegalArgument(m)) => Err(CliError::Fatal(format!(
                "Exception in thread \"main\" java.lang.IllegalArgumentException: {m}"
            ))),
            Err(e) => Err(wrap(e)),
        }
    }

    async fn remove_watches(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        const SPECS: &[Opt] = &[flag("c"), flag("d"), flag("a"), flag("l")];
        let parsed = parse(SPECS, None, &words)?;
        if parsed.args.len() < 2 {
            return Err(CliError::msg(usage_of("removewatches")));
        }
        let kind = if parsed.has("c") {
            watcher_type::CHILDREN
        } else if parsed.has("d") {
            watcher_type::DATA
        } else {
            watcher_type::ANY
        };
        self.zk()
            .remove_all_watches(&parsed.args[1], kind, parsed.has("l"))
            .await
            .map_err(wrap)?;
        Ok(true)
    }

    async fn get_ephemerals(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        let parsed = parse(&[], None, &words)?;
        let prefix = parsed.args.get(1).map(String::as_str).unwrap_or("/");
        let list = self.zk().get_ephemerals(prefix).await.map_err(wrap)?;
        self.outln(&java_list(&list));
        Ok(false)
    }

    async fn get_all_children_number(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        let parsed = parse(&[], None, &words)?;
        if parsed.args.len() < 2 {
            return Err(CliError::msg(usage_of("getAllChildrenNumber")));
        }
        let n = self
            .zk()
            .get_all_children_number(&parsed.args[1])
            .await
            .map_err(wrap)?;
        self.outln(&n.to_string());
        Ok(false)
    }

    fn version(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        let parsed = parse(&[], None, &words)?;
        if parsed.args.len() > 1 {
            return Err(CliError::msg(usage_of("version")));
        }
        self.outln(&format!("ZooKeeper CLI version: {CLI_VERSION}"));
        Ok(false)
    }

    async fn who_am_i(&mut self) -> Result<bool, CliError> {
        let infos = self.zk().who_am_i().await.map_err(wrap)?;
        let mut s = String::from("Auth scheme: User\n");
        for (scheme, user) in infos {
            s.push_str(&format!("{scheme}: {user}\n"));
        }
        self.out(&s);
        Ok(false)
    }

    fn add_auth(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        let parsed = parse(&[], None, &words)?;
        if parsed.args.len() < 2 {
            return Err(CliError::msg(usage_of("addauth")));
        }
        let auth = parsed
            .args
            .get(2)
            .map(|a| a.as_bytes().to_vec())
            .unwrap_or_default();
        self.zk().client.add_auth(&parsed.args[1], &auth);
        Ok(false)
    }

    async fn set_quota(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        const SPECS: &[Opt] = &[with_arg("n"), with_arg("b"), with_arg("N"), with_arg("B")];
        const GROUP: Group = Group {
            names: QUOTA_OPTIONS,
            descriptions: QUOTA_OPTION_DESCRIPTIONS,
            required: true,
        };
        let parsed = parse(SPECS, Some(GROUP), &words)?;
        if parsed.args.len() < 2 {
            return Err(CliError::msg(usage_of("setquota")));
        }
        let path = parsed.args[1].clone();
        if path.starts_with(QUOTA_ROOT) {
            self.errln(&format!("cannot set a quota under the path: {QUOTA_ROOT}"));
            return Ok(false);
        }
        let mut q = StatsTrack::default();
        for key in [COUNT, BYTES, COUNT_HARD, BYTES_HARD] {
            q.set(key, -1);
        }
        for (opt, key, is_count) in [
            ("n", COUNT, true),
            ("b", BYTES, false),
            ("N", COUNT_HARD, true),
            ("B", BYTES_HARD, false),
        ] {
            let Some(v) = parsed.value(opt) else { continue };
            let parsed_value = if is_count {
                v.parse::<i32>().map(i64::from).ok()
            } else {
                v.parse::<i64>().ok()
            };
            let Some(v) = parsed_value else {
                self.errln("NumberFormatException happens when parsing the option value");
                return Ok(false);
            };
            if is_count && v <= 0 {
                self.errln("the num quota must be greater than zero");
                return Ok(false);
            }
            if !is_count && v < 0 {
                self.errln("the bytes quota must be greater than or equal to zero");
                return Ok(false);
            }
            q.set(key, v);
        }
        let outcome = quota::create_quota(&self.zk(), &path, &q)
            .await
            .map_err(wrap)?;
        for w in outcome.warnings {
            self.outln(&w);
        }
        Ok(false)
    }

    async fn list_quota(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        let parsed = parse(&[], None, &words)?;
        if parsed.args.len() < 2 {
            return Err(CliError::msg(usage_of("listquota")));
        }
        let path = parsed.args[1].clone();
        self.errln(&format!("absolute path is {}", quota::limit_path(&path)));
        match quota::list_quota(&self.zk(), &path).await {
            Ok(tracks) => {
                let mut s = String::new();
                for (i, t) in tracks.iter().enumerate() {
                    let what = if i == 0 { "quota" } else { "stat" };
                    s.push_str(&format!("Output {what} for {path} {t}\n"));
                }
                self.out(&s);
            }
            Err(ZkError::Keeper(k)) if k.code == ErrorCode::NoNode.code() => {
                self.errln(&format!("quota for {path} does not exist."));
            }
            Err(e) => return Err(wrap(e)),
        }
        Ok(false)
    }

    async fn del_quota(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        const SPECS: &[Opt] = &[flag("n"), flag("b"), flag("N"), flag("B")];
        const GROUP: Group = Group {
            names: QUOTA_OPTIONS,
            descriptions: QUOTA_OPTION_DESCRIPTIONS,
            required: false,
        };
        let parsed = parse(SPECS, Some(GROUP), &words)?;
        if parsed.args.len() < 2 {
            return Err(CliError::msg(usage_of("delquota")));
        }
        let path = parsed.args[1].clone();
        let keys: Vec<&str> = [
            ("n", COUNT),
            ("b", BYTES),
            ("N", COUNT_HARD),
            ("B", BYTES_HARD),
        ]
        .iter()
        .filter(|(o, _)| parsed.has(o))
        .map(|(_, k)| *k)
        .collect();
        let which = if keys.is_empty() {
            None
        } else {
            Some(&keys[..])
        };
        match quota::del_quota(&self.zk(), &path, which).await {
            Ok(quota::DelOutcome::NoQuota) => {
                self.outln(&format!("Quota does not exist for {path}"));
            }
            Ok(quota::DelOutcome::Done) => {}
            Err(ZkError::Keeper(k)) if k.code == ErrorCode::NoNode.code() => {
                self.errln(&format!("quota for {path} does not exist."));
            }
            Err(e) => return Err(wrap(e)),
        }
        Ok(false)
    }

    async fn reconfig(&mut self, words: Vec<String>) -> Result<bool, CliError> {
        const SPECS: &[Opt] = &[
            flag("s"),
            with_arg("v"),
            with_arg("file"),
            with_arg("members"),
            with_arg("add"),
            with_arg("remove"),
        ];
        let parsed = parse(SPECS, None, &words)?;
        let (file, members, add, remove) = (
            parsed.has("file"),
            parsed.has("members"),
            parsed.has("add"),
            parsed.has("remove"),
        );
        if !(file || members || add || remove) {
            return Err(CliError::msg(usage_of("reconfig")));
        }
        let version = match parsed.value("v") {
            Some(v) => i64::from_str_radix(v, 16).map_err(|_| {
                CliError::msg("-v must be followed by a long (configuration version)")
            })?,
            None => -1,
        };
        if (file || members) && (add || remove) {
            return Err(CliError::msg("Can't use -file or -members together with -add or -remove (mixing incremental and non-incremental modes is not allowed)"));
        }
        if file && members {
            return Err(CliError::msg(
                "Can't use -file and -members together (conflicting non-incremental modes)",
            ));
        }
        let joining = parsed.value("add").map(str::to_lowercase);
        let leaving = parsed.value("remove").map(str::to_lowercase);
        let mut new_members = parsed.value("members").map(str::to_lowercase);
        if let Some(f) = parsed.value("file") {
            let text = std::fs::read_to_string(f)
                .map_err(|e| CliError::msg(format!("Error processing {f}{e}")))?;
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| {
                    l.starts_with("server.") || l.starts_with("group") || l.starts_with("weight")
                })
                .collect();
            new_members = Some(lines.join("\n"));
        }
        let (data, stat) = self
            .zk()
            .reconfig(joining, leaving, new_members, version)
            .await
            .map_err(wrap)?;
        let mut s = format!(
            "Committed new configuration:\n{}\n",
            String::from_utf8_lossy(&data.unwrap_or_default())
        );
        if parsed.has("s") {
            s.push_str(&stat_block(&stat));
        }
        self.out(&s);
        Ok(false)
    }
}

/// `ConfigUtils.getClientConfigStr`: the config version, a space, and each `server.N`
/// entry's client address (`host:port` after the `;`; empty for an entry without one), comma
/// separated, in the order `java.util.Properties` (a `ConcurrentHashMap`) iterates the keys.
fn client_config_string(config: &str) -> String {
    let mut version = String::new();
    let mut keys: Vec<(&str, String)> = Vec::new();
    for line in config.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k == "version" {
            version = v.to_owned();
        }
        let Some(id) = k.strip_prefix("server.") else {
            continue;
        };
        if id.parse::<i64>().is_err() {
            continue;
        }
        let addr = match v.split_once(';') {
            None => String::new(),
            Some((_, client)) => match client.rsplit_once(':') {
                Some((h, p)) => format!("{h}:{p}"),
                None => format!("0.0.0.0:{client}"),
            },
        };
        keys.retain(|(old, _)| *old != k);
        keys.push((k, addr));
    }
    // A ConcurrentHashMap of Properties' initial size: 16 bins, doubled past 3/4 full (the
    // version key counts too); bins in index order, a bin's keys in insertion order.
    let mut bins: u32 = 16;
    while (keys.len() + 1) as u32 >= bins * 3 / 4 {
        bins *= 2;
    }
    let bin = |key: &str| {
        let h = key
            .encode_utf16()
            .fold(0u32, |h, c| h.wrapping_mul(31).wrapping_add(u32::from(c)));
        ((h ^ (h >> 16)) & 0x7fff_ffff) & (bins - 1)
    };
    keys.sort_by_key(|(k, _)| bin(k));
    let list: Vec<String> = keys.into_iter().map(|(_, a)| a).collect();
    format!("{version} {}", list.join(","))
}

/// setquota / delquota: the option group both take, as zkCli names and describes it.
const QUOTA_OPTIONS: &[&str] = &["n", "b", "N", "B"];
const QUOTA_OPTION_DESCRIPTIONS: &[&str] = &[
    "num soft quota",
    "bytes soft quota",
    "num hard quota",
    "bytes hard quota",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_config_strings_list_client_addresses() {
        assert_eq!(client_config_string(""), " ");
        let cfg = "server.2=h2:2888:3888:participant;0.0.0.0:2182\nserver.1=h1:2888:3888:participant;127.0.0.1:2181\nversion=100000000";
        // zkCli's order: server.2 hashes to an earlier bin than server.1.
        assert_eq!(
            client_config_string(cfg),
            "100000000 0.0.0.0:2182,127.0.0.1:2181"
        );
        // Entries without a client address leave an empty place (as zkCli printed it).
        let cfg = "server.1=h:1:2:participant;127.0.0.1:2181\nserver.2=h:3:4:participant\n\
                   server.3=h:5:6:participant\nversion=1";
        assert_eq!(client_config_string(cfg), "1 ,127.0.0.1:2181,");
    }
}
