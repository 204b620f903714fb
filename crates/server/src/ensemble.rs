//! The driver of an ensemble member: it carries out what the sans-IO [`Member`]
//! (`zooid-member`) asks, and tells it what happened. Sockets are `peer_net`'s; the txn log
//! writer thread runs the member's storage [`Job`]s in order with its appends; a SNAP stream
//! is encoded on a thread of its own. No protocol logic lives here.
//!
//! ```text
//! peer_net ──PeerEvent──▶ Peer::on_event ──Event──▶ Member ──Effect──▶ Peer::carry_out
//!   votes ◀── to_election        links ◀── LinkOut       writer thread ◀── Append / Job
//!   writer thread ──FromWriter::Persisted / Stored──▶ Peer ──Event::Logged / Stored──▶ Member
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc::{error::TrySendError, Sender, UnboundedSender};
use zooid_member::{Effect, Event, Job, LinkId, Member, MemberConfig, Recovered, Stored};
use zooid_node::core::Now;
use zooid_node::{Action, ConnId, Core, Input};
use zooid_proto::{TxnEntry, Writer};
use zooid_storage::snapshot::{FrozenSnapshot, Layout};
use zooid_zab::{Epoch, Notification, ServerId, TxnLogReader, Zxid};

use crate::driver::ConnOut;
use crate::peer_net::{LinkOut, Links, PeerEvent};
use crate::persist::{FromWriter, SnapshotPlan, ToWriter};

pub use zooid_member::PeerFacts;

/// One member of the ensemble as zoo.cfg lists it.
#[derive(Debug, Clone)]
pub struct MemberAddr {
    /// Its addresses in the order written (several with `multiAddress.enabled`): dialed in
    /// turn until one answers.
    pub quorum: Vec<SocketAddr>,
    pub election: Vec<SocketAddr>,
    pub observer: bool,
}

/// What this process needs to run a member: the member's own configuration and where its
/// peers and files are.
#[derive(Debug, Clone)]
pub struct EnsembleConfig {
    pub member: MemberConfig,
    pub addrs: BTreeMap<ServerId, MemberAddr>,
    pub cnx_timeout: Duration,
    pub snap_dir: PathBuf,
    pub log_dir: PathBuf,
    /// The zoo.cfg a reconfig rewrites to name its dynamic file (`reconfigEnabled` only).
    pub config_file: Option<PathBuf>,
}

/// Member addresses the election port dials, shared with the driver that learns new ones
/// from reconfigs.
pub type ElectionPeers = std::sync::Arc<std::sync::RwLock<BTreeMap<ServerId, Vec<SocketAddr>>>>;

/// Where the member's files are, for the jobs the log writer thread runs.
pub struct Storage {
    pub snap_dir: PathBuf,
    pub log_dir: PathBuf,
    /// The layout a SNAP from the leader is stored in.
    pub layout: Layout,
    pub snapshots: SnapshotPlan,
}

pub struct Peer {
    member: Member,
    addrs: BTreeMap<ServerId, MemberAddr>,
    election_peers: ElectionPeers,
    config_file: Option<PathBuf>,
    cnx_timeout: Duration,
    to_election: Sender<(ServerId, Notification)>,
    links: Links,
    /// The open quorum links' writers.
    link_out: HashMap<LinkId, Sender<LinkOut>>,
    storage: std::sync::Arc<Storage>,
    /// Reads DIFF ranges older than the leader's in-memory window, on threads of their own.
    log_reader: std::sync::Arc<LogReader>,
}

/// The state the core task shares with the peer: the client connections and the disk.
pub struct Node<'a> {
    pub outs: &'a mut HashMap<ConnId, ConnOut>,
    pub writer: &'a std::sync::mpsc::Sender<ToWriter>,
    /// Appends handed to the log writer and not yet written.
    pub backlog: &'a std::sync::atomic::AtomicUsize,
    pub from_writer_tx: &'a UnboundedSender<FromWriter>,
    pub metrics: Option<&'a mut crate::metrics::Registry>,
}

impl Peer {
    /// Start looking, from the tree recovered at start-up.
    pub fn start(
        cfg: EnsembleConfig,
        tree: zooid_tree::DataTree,
        to_election: Sender<(ServerId, Notification)>,
        election_peers: ElectionPeers,
        links: Links,
        storage: Storage,
        now: Now,
    ) -> Result<Peer, String> {
        let last = tree.last_zxid();
        let (accepted_epoch, current_epoch) = read_epochs(&cfg.snap_dir, last)?;
        let data = Recovered {
            tail: tail(&cfg.log_dir, last),
            tree,
            accepted_epoch,
            current_epoch,
        };
        let storage = std::sync::Arc::new(storage);
        let log_reader = std::sync::Arc::new(LogReader {
            dir: cfg.log_dir.clone(),
            snap_dir: cfg.snap_dir.clone(),
        });
        let member = Member::start(cfg.member, data, now).map_err(|e| e.to_string())?;
        Ok(Peer {
            member,
            addrs: cfg.addrs,
            election_peers,
            config_file: cfg.config_file,
            cnx_timeout: cfg.cnx_timeout,
            to_election,
            links,
            link_out: HashMap::new(),
            storage,
            log_reader,
        })
    }

    pub fn core(&self) -> &Core {
        self.member.core()
    }

    pub fn core_mut(&mut self) -> &mut Core {
        self.member.core_mut()
    }

    pub fn serving(&self) -> bool {
        self.member.serving()
    }

    pub fn facts(&self) -> PeerFacts {
        self.member.facts(crate::driver::now())
    }

    /// Txns handed to the log writer since the last call.
    pub fn take_appended(&mut self) -> u64 {
        self.member.take_appended()
    }

    /// A client input, for the member's core.
    pub fn client(&mut self, now: Now, input: Input<'_>) {
        self.member.client(now, input);
    }

    pub fn on_event(&mut self, ev: PeerEvent, node: &mut Node<'_>) {
        let ev = match ev {
            PeerEvent::LinkUp { link, out } => {
                self.link_out.insert(link, out);
                Event::LinkUp { link }
            }
            PeerEvent::Member(ev) => {
                if let Event::LinkDown { link, .. } = &ev {
                    self.link_out.remove(link);
                }
                ev
            }
        };
        self.handle(ev, node);
    }

    pub fn on_tick(&mut self, node: &mut Node<'_>) {
        self.handle(Event::Tick, node);
    }

    /// The log writer made everything through `zxid` durable.
    pub fn on_persisted(&mut self, zxid: i64, node: &mut Node<'_>) {
        self.handle(Event::Logged { zxid }, node);
    }

    /// A storage job finished on the log writer thread.
    pub fn on_stored(&mut self, r: Stored, node: &mut Node<'_>) {
        self.handle(Event::Stored(r), node);
    }

    fn handle(&mut self, ev: Event, node: &mut Node<'_>) {
        // `Member::handle` works off pending client inputs first.
        self.member.handle(crate::driver::now(), ev);
        self.effects(node);
    }

    /// Work off the batch's client inputs, then do what the member asked, in order.
    pub fn carry_out(&mut self, node: &mut Node<'_>) {
        self.member.flush(crate::driver::now());
        self.effects(node);
    }

    /// Do what the member asked, in order.
    fn effects(&mut self, node: &mut Node<'_>) {
        for e in self.member.take_effects() {
            match e {
                Effect::Client(Action::Send { conn, frame }) => {
                    if let Some(m) = node.metrics.as_deref_mut() {
                        m.frame_sent(&frame);
                    }
                    if let Some(o) = node.outs.get(&conn) {
                        o.frame(frame);
                    }
                }
                Effect::Client(Action::Close { conn }) => {
                    if let Some(o) = node.outs.get(&conn) {
                        o.close();
                    }
                }
                Effect::Client(_) => {}
                Effect::CloseClients => {
                    for (_, out) in node.outs.drain() {
                        out.close();
                    }
                }
                Effect::Vote { to, msg } => {
                    // Full: FLE sends again when its timer runs out.
                    let _ = self.to_election.try_send((to, msg));
                }
                Effect::Dial { link, to } => match self.addrs.get(&to) {
                    Some(a) => self
                        .links
                        .dial_leader(link, a.quorum.clone(), self.cnx_timeout),
                    None => tracing::error!(%to, "asked to dial a member with no address"),
                },
                Effect::Link { link, msg } => self.queue_on_link(link, LinkOut::Msg(msg)),
                Effect::StreamSnapshot { link, snapshot } => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    self.queue_on_link(link, LinkOut::Later(rx));
                    stream_snapshot(link, tx, snapshot);
                }
                Effect::CloseLink { link } => {
                    if let Some(l) = self.link_out.remove(&link) {
                        let _ = l.try_send(LinkOut::Close);
                    }
                }
                Effect::Append { zxid, entry } => {
                    node.backlog
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let _ = node.writer.send(ToWriter::Append { zxid, entry });
                }
                Effect::Reconfigured {
                    members,
                    version,
                    text,
                } => self.reconfigured(&members, version, &text),
                Effect::ReadLog { link, from, to } => self.read_log(link, from, to),
                Effect::Storage(job) => {
                    let quiesce = !matches!(job, Job::WriteEpoch { .. });
                    let storage = self.storage.clone();
                    let done = node.from_writer_tx.clone();
                    let run = Box::new(move || {
                        let _ = done.send(FromWriter::Stored(storage.run(job)));
                    });
                    if node.writer.send(ToWriter::Job { quiesce, run }).is_err() {
                        tracing::error!("the txn log writer is gone; a storage job is lost");
                    }
                }
            }
        }
    }
}

impl Peer {
    /// Read a DIFF range from the txn log on a thread of its own (a learner far behind may
    /// need many megabytes), and hand the txns back as a member event.
    fn read_log(&self, link: LinkId, from: Zxid, to: Zxid) {
        let reader = self.log_reader.clone();
        let events = self.links.events();
        let spawned = std::thread::Builder::new()
            .name("zooid-log-read".into())
            .spawn(move || {
                let txns = reader.committed_range(from, to);
                match &txns {
                    Some(t) => tracing::info!(
                        link,
                        from = %from,
                        txns = t.len(),
                        "a learner behind the in-memory window: DIFF from the txn log"
                    ),
                    None => tracing::info!(
                        link,
                        from = %from,
                        "the txn log cannot serve a learner's DIFF (not held, or over the \
                         snapshotSizeFactor budget): SNAP"
                    ),
                }
                let _ = events.blocking_send(PeerEvent::Member(Event::LogRead { link, txns }));
            });
        if let Err(e) = spawned {
            // The learner then waits until initLimit closes it, and comes back.
            tracing::error!(error = %e, link, "cannot start a thread to read the txn log");
        }
    }

    /// A new configuration: reach its members at their addresses, and record it as
    /// ZooKeeper does, in `<zoo.cfg>.dynamic.<version>` named by a rewritten zoo.cfg.
    fn reconfigured(&mut self, members: &[zooid_zab::ConfigMember], version: i64, text: &[u8]) {
        for m in members {
            let addr = match member_addr(m) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "a member of the new config cannot be reached");
                    continue;
                }
            };
            if let Ok(mut peers) = self.election_peers.write() {
                peers.insert(m.sid, addr.election.clone());
            }
            self.addrs.insert(m.sid, addr);
        }
        let Some(static_file) = &self.config_file else {
            return;
        };
        let my_client = members
            .iter()
            .find(|m| m.sid == self.member.my_id())
            .is_some_and(|m| m.client.is_some());
        match write_dynamic_config(static_file, version, text, my_client) {
            Ok(file) => tracing::info!(file = %file.display(), "dynamic config written"),
            Err(e) => tracing::error!(
                file = %static_file.display(),
                error = %e,
                "cannot record the new configuration; the member runs with it, but a restart \
                 would start from the old one"
            ),
        }
    }

    /// Queue `out` on `link`. A link whose queue is full is closed: its learner does not keep
    /// up, and comes back to be synced again.
    fn queue_on_link(&mut self, link: LinkId, out: LinkOut) {
        let Some(l) = self.link_out.get(&link) else {
            return;
        };
        if let Err(TrySendError::Full(_)) = l.try_send(out) {
            tracing::warn!(
                link,
                queued = crate::peer_net::LINK_QUEUED,
                "a learner does not read what it is sent; closing its link"
            );
            self.link_out.remove(&link);
        }
    }
}

/// A member's addresses, each host looked up once (both its ports are on it); the error
/// names the server line whose host does not resolve.
pub fn member_addr(m: &zooid_zab::ConfigMember) -> Result<MemberAddr, String> {
    use std::net::ToSocketAddrs;
    let mut addr = MemberAddr {
        quorum: Vec::new(),
        election: Vec::new(),
        observer: m.observer,
    };
    for (host, quorum, election) in m.addresses() {
        let ip = (host, 0)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .map(|a| a.ip())
            .ok_or_else(|| {
                format!(
                    "server.{}: the host {host:?} does not resolve to an address (check the \
                     spelling, /etc/hosts, and that no space trails the value)",
                    m.sid
                )
            })?;
        addr.quorum.push(SocketAddr::new(ip, quorum));
        addr.election.push(SocketAddr::new(ip, election));
    }
    Ok(addr)
}

/// Encode a frozen snapshot on a thread of its own, into the slot the link waits on.
fn stream_snapshot(
    link: LinkId,
    tx: tokio::sync::oneshot::Sender<Vec<u8>>,
    frozen: FrozenSnapshot,
) {
    let spawned = std::thread::Builder::new()
        .name("zooid-snap-stream".into())
        .spawn(move || {
            let mut body = frozen.encode_body();
            let mut w = Writer::new();
            w.write_string(zooid_zab::packet::SNAPSHOT_SIGNATURE);
            body.extend_from_slice(&w.into_inner());
            let _ = tx.send(body);
        });
    if let Err(e) = spawned {
        // The sender went with the closure: the link closes, the learner comes back and is
        // synced again.
        tracing::error!(error = %e, link, "cannot start a thread to encode a SNAP");
    }
}

impl Storage {
    /// Run a job (on the log writer thread, after it made every append durable and closed its
    /// file when the job replaces data).
    fn run(&self, job: Job) -> Stored {
        let r = match job {
            Job::WriteEpoch { file, epoch } => {
                write_epoch(&self.snap_dir, file.name(), epoch).map(|()| Stored::Done)
            }
            Job::Reload => {
                self.snapshots.cancel_and_wait();
                self.load()
            }
            Job::Truncate { zxid } => {
                self.snapshots.cancel_and_wait();
                self.truncate(zxid).and_then(|()| self.load())
            }
            Job::StoreSnapshot { zxid, body } => {
                self.snapshots.cancel_and_wait();
                self.store_snapshot(zxid, &body)
            }
        };
        r.unwrap_or_else(Stored::Failed)
    }

    /// Load snapshot + log from disk, as at start-up.
    fn load(&self) -> Result<Stored, String> {
        let r = zooid_storage::recovery::recover(&self.snap_dir, &self.log_dir)
            .map_err(|e| format!("cannot reload the data: {e}"))?;
        let last = r.tree.last_zxid();
        let (accepted_epoch, current_epoch) = read_epochs(&self.snap_dir, last)?;
        Ok(Stored::Data(Box::new(Recovered {
            tail: tail(&self.log_dir, last),
            tree: r.tree,
            accepted_epoch,
            current_epoch,
        })))
    }

    /// TRUNC: drop every logged txn above `zxid`, and the snapshots past it.
    fn truncate(&self, zxid: Zxid) -> Result<(), String> {
        zooid_storage::txnlog::truncate_after(&self.log_dir, zxid.0)
            .map_err(|e| format!("cannot truncate the txn log: {e}"))?;
        zooid_storage::sync::remove_snapshots_above(&self.snap_dir, zxid.0)
            .map_err(|e| format!("cannot remove snapshots past the TRUNC point: {e}"))?;
        Ok(())
    }

    /// SNAP: the leader's tree replaces ours, durably, before anything else is logged.
    fn store_snapshot(&self, zxid: Zxid, body: &[u8]) -> Result<Stored, String> {
        let (path, tree) =
            zooid_storage::sync::write_sync_snapshot(&self.snap_dir, body, zxid.0, self.layout)
                .map_err(|e| format!("cannot store the leader's snapshot: {e}"))?;
        self.truncate(zxid)?;
        tracing::info!(file = %path.display(), "SNAP: stored the leader's snapshot");
        let (accepted_epoch, current_epoch) = read_epochs(&self.snap_dir, zxid.0)?;
        Ok(Stored::Data(Box::new(Recovered {
            tree,
            tail: Vec::new(),
            accepted_epoch,
            current_epoch,
        })))
    }
}

/// The newest logged txns through `last`, read from the newest two log files: the leader's
/// in-memory committed window. An older file missing from it costs DIFF range only.
fn tail(log_dir: &Path, last: i64) -> Vec<TxnEntry> {
    let files = zooid_storage::txnlog::log_files(log_dir).unwrap_or_default();
    let after = files
        .len()
        .checked_sub(2)
        .map_or(0, |i| files[i].0.saturating_sub(1));
    match zooid_storage::txnlog::read_log(log_dir, after) {
        Ok(r) => {
            let mut entries: Vec<TxnEntry> = r
                .entries
                .into_iter()
                .filter(|e| e.header.zxid <= last)
                .collect();
            let skip = entries.len().saturating_sub(zooid_member::RECENT_TXNS);
            entries.drain(..skip);
            entries
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the txn log for the committed window");
            Vec::new()
        }
    }
}

/// The leader's txn log, for DIFFs older than the in-memory window: read only while the log
/// is small beside the newest snapshot (ZooKeeper's snapshotSizeFactor, 0.33).
struct LogReader {
    dir: PathBuf,
    snap_dir: PathBuf,
}

impl TxnLogReader for LogReader {
    fn committed_range(&self, from: Zxid, to: Zxid) -> Option<Vec<TxnEntry>> {
        // `snapshot_files` lists the newest first.
        let newest = zooid_storage::snapshot::snapshot_files(&self.snap_dir)
            .ok()?
            .first()
            .and_then(|(_, p)| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len());
        let budget = newest / 3;
        zooid_storage::sync::committed_range(&self.dir, from.0, to.0, budget)
    }
}

/// `acceptedEpoch` and `currentEpoch` from the snapshot directory; a missing file means the
/// epoch of the last zxid, as ZooKeeper assumes (and then writes).
fn read_epochs(dir: &Path, last_zxid: i64) -> Result<(Epoch, Epoch), String> {
    let from_zxid = Zxid(last_zxid).epoch();
    let read = |name: &str| -> Result<Epoch, String> {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<i64>().map(Epoch).map_err(|_| {
                format!(
                    "{}: {:?} is not an epoch number (it holds one decimal number; delete the file to take the epoch from the txn log)",
                    path.display(),
                    s.trim()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_epoch(dir, name, from_zxid)?;
                Ok(from_zxid)
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    };
    let current = read(zooid_member::EpochFile::Current.name())?;
    let accepted = read(zooid_member::EpochFile::Accepted.name())?;
    if current > accepted {
        return Err(format!(
            "{}: currentEpoch {current} is above acceptedEpoch {accepted}; the files are damaged (ZooKeeper refuses to start too)",
            dir.display()
        ));
    }
    Ok((accepted, current))
}

/// Write an epoch file atomically and durably (temporary file, fsync, rename, directory fsync).
fn write_epoch(dir: &Path, name: &str, epoch: Epoch) -> Result<(), String> {
    let path = dir.join(name);
    write_durably(&path, epoch.0.to_string().as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Replace `path` with `bytes` atomically and durably: a temporary file beside it, fsynced,
/// renamed over it, and the directory fsynced.
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Record a configuration as ZooKeeper's `setQuorumVerifier` does: its `server.N` lines,
/// sorted, without a version line or a final newline, in `<zoo.cfg>.dynamic.<hex version>`;
/// then zoo.cfg without its members (`server.*`, `group*`, `weight*`, `peerType`, the old
/// `dynamicConfigFile`, and `clientPort*` when my server line now carries my client address),
/// ending with `dynamicConfigFile=<absolute path>`. The first time, zoo.cfg is kept as
/// `zoo.cfg.bak`. Unlike ZooKeeper, zoo.cfg keeps its order and comments. Returns the
/// dynamic file's path.
pub fn write_dynamic_config(
    static_file: &Path,
    version: i64,
    text: &[u8],
    my_client_in_config: bool,
) -> std::io::Result<PathBuf> {
    let static_file = std::path::absolute(static_file)?;
    let mut name = static_file.file_name().unwrap_or_default().to_owned();
    name.push(format!(".dynamic.{:x}", version as u64));
    let dynamic = static_file.with_file_name(name);
    let text = String::from_utf8_lossy(text);
    let mut servers: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("server."))
        .collect();
    servers.sort_unstable();
    write_durably(&dynamic, servers.join("\n").as_bytes())?;

    let original = std::fs::read_to_string(&static_file)?;
    let mut bak = static_file.clone().into_os_string();
    bak.push(".bak");
    let bak = PathBuf::from(bak);
    if !bak.exists() {
        write_durably(&bak, original.as_bytes())?;
    }
    let mut rewritten = zooid_config::without_entries(&original, |key| {
        [
            "server.",
            "group",
            "weight",
            "dynamicConfigFile",
            "peerType",
        ]
        .iter()
        .any(|p| key.starts_with(p))
            || (my_client_in_config && key.starts_with("clientPort"))
    });
    rewritten.push_str(&format!("dynamicConfigFile={}\n", dynamic.display()));
    write_durably(&static_file, rewritten.as_bytes())?;
    Ok(dynamic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconfig_is_recorded_as_zookeeper_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("zoo.cfg");
        let original = "# my ensemble\ntickTime=2000\nclientPort=2181\nreconfigEnabled=true\n\
                        dataDir=/tmp/d\ninitLimit=5\nsyncLimit=2\nserver.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n";
        std::fs::write(&cfg, original).unwrap();
        let text = "server.2=127.0.0.1:2889:3889:participant\n\
                    server.1=127.0.0.1:2888:3888:participant\nversion=100000000";
        let dynamic = write_dynamic_config(&cfg, 0x1_0000_0000, text.as_bytes(), false).unwrap();
        assert_eq!(dynamic, dir.path().join("zoo.cfg.dynamic.100000000"));
        assert_eq!(
            std::fs::read_to_string(&dynamic).unwrap(),
            "server.1=127.0.0.1:2888:3888:participant\nserver.2=127.0.0.1:2889:3889:participant"
        );
        assert_eq!(
            std::fs::read_to_string(&cfg).unwrap(),
            format!(
                "# my ensemble\ntickTime=2000\nclientPort=2181\nreconfigEnabled=true\n\
                 dataDir=/tmp/d\ninitLimit=5\nsyncLimit=2\ndynamicConfigFile={}\n",
                dynamic.display()
            )
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("zoo.cfg.bak")).unwrap(),
            original
        );
        // The next one replaces the pointer; clientPort goes once my line carries it.
        let text = "server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\nversion=100000003";
        let next = write_dynamic_config(&cfg, 0x1_0000_0003, text.as_bytes(), true).unwrap();
        assert_eq!(
            std::fs::read_to_string(&cfg).unwrap(),
            format!(
                "# my ensemble\ntickTime=2000\nreconfigEnabled=true\ndataDir=/tmp/d\n\
                 initLimit=5\nsyncLimit=2\ndynamicConfigFile={}\n",
                next.display()
            )
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("zoo.cfg.bak")).unwrap(),
            original
        );
        // zoo.cfg as rewritten reads back with its members and version.
        let (c, _) = zooid_config::ServerConfig::load(&cfg, None).unwrap();
        assert_eq!(c.config_version, 0x1_0000_0003);
        assert_eq!(c.servers.len(), 1);
        assert_eq!(c.dynamic_config_file.as_deref(), Some(next.as_path()));
    }
}
