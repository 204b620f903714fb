//! The tokio driver: sockets, clock and the task that owns the [`Core`].
//!
//! ```text
//! listener ──accept──▶ connection task (one per socket) ──Event::Frame──▶ core task
//!                            ▲                                            │
//!                            └──────── Outbound::{Frame, Close} ◀─────────┘
//! ```
//! A connection task splits frames (closing on a bad length, ZooKeeper's "Len error"), and
//! answers a four-letter word if that is what the first four bytes spell. The core task
//! handles events in arrival order, executes the core's actions, and reports appended txns
//! as persisted once the batch is handled. Operator commands (four-letter words, the
//! AdminServer, `/metrics`) are events too, so they see the core between two batches. Nothing
//! here holds protocol logic.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use zooid_node::core::Now;
use zooid_node::{Action, ConnId, Core, Input};

use crate::commands::{self, Ctx, DiskFacts};
use crate::fourlw;
use crate::metrics::{self, Registry};
use crate::persist::{DiskTiming, FromWriter, SnapshotPlan, ToWriter};

/// Events from connection tasks to the core task.
pub enum Event {
    Connect {
        conn: ConnId,
        addr: SocketAddr,
        out: mpsc::UnboundedSender<Outbound>,
    },
    Frame {
        conn: ConnId,
        frame: Vec<u8>,
    },
    Disconnect {
        conn: ConnId,
    },
    /// A four-letter word on connection `addr`: counted as ZooKeeper counts it, answered
    /// with its text if `allowed`, else with the whitelist's refusal.
    FourLetter {
        word: &'static str,
        addr: SocketAddr,
        allowed: bool,
        args: Vec<(String, String)>,
        disk: DiskFacts,
        reply: oneshot::Sender<String>,
    },
    /// An AdminServer command by any of its names; the reply is its JSON.
    Command {
        name: String,
        args: Vec<(String, String)>,
        disk: DiskFacts,
        reply: oneshot::Sender<String>,
    },
    /// The metrics in Prometheus' text format.
    Metrics {
        reply: oneshot::Sender<String>,
    },
}

/// The channel connection tasks and the operator listeners send events on.
pub fn event_channel() -> (mpsc::Sender<Event>, mpsc::Receiver<Event>) {
    mpsc::channel(4096)
}

pub enum Outbound {
    Frame(Vec<u8>),
    Close,
}

/// How long `stmk` waits for its 8-byte argument.
const STMK_ARG_WAIT: Duration = Duration::from_secs(1);

/// Directory sizes and the newest snapshot, measured off the core task.
pub async fn measure_disk(info: &Arc<fourlw::ServerInfo>) -> DiskFacts {
    let info = Arc::clone(info);
    tokio::task::spawn_blocking(move || DiskFacts::measure(&info))
        .await
        .unwrap_or_default()
}

/// Settings of the driver itself.
#[derive(Clone)]
pub struct DriverConfig {
    pub max_frame_len: u32,
    pub four_letter_words: Vec<String>,
    pub info: Arc<fourlw::ServerInfo>,
}

/// The time now on both clocks: `mono_ms` counts from a fixed point of this process on the
/// monotonic clock (every deadline uses it, so a step of the wall clock expires nothing);
/// `wall_ms` is the Unix time, for ctime / mtime and what people read.
pub fn now() -> Now {
    Now {
        mono_ms: mono_ms(),
        wall_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    }
}

/// Milliseconds on the monotonic clock since this process first asked.
pub fn mono_ms() -> i64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_millis() as i64
}

/// A member of an ensemble: the quorum peer and the events of its sockets.
pub struct Ensemble {
    pub peer: crate::ensemble::Peer,
    pub events: mpsc::UnboundedReceiver<crate::peer_net::PeerEvent>,
}

/// Accept connections until `shutdown` flips. `events` comes from [`event_channel`].
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    listener: TcpListener,
    core: Core,
    cfg: DriverConfig,
    disk: Disk,
    metrics: Registry,
    events: (mpsc::Sender<Event>, mpsc::Receiver<Event>),
    ensemble: Option<Ensemble>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (tx, rx) = events;
    let core_task = tokio::spawn(run_core(
        core,
        rx,
        cfg.clone(),
        disk,
        metrics,
        ensemble,
        shutdown.clone(),
    ));
    let mut next_conn: ConnId = 1;
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((stream, addr)) => {
                    let conn = next_conn;
                    next_conn += 1;
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(run_conn(conn, stream, addr, tx.clone(), cfg.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    drop(tx);
    let _ = core_task.await;
}

/// The disk side of the core task: where appends go and when to snapshot.
pub struct Disk {
    pub writer: std::sync::mpsc::Sender<ToWriter>,
    pub from_writer: tokio::sync::mpsc::UnboundedReceiver<FromWriter>,
    pub from_writer_tx: tokio::sync::mpsc::UnboundedSender<FromWriter>,
    pub snapshots: SnapshotPlan,
    /// Reported when the disk fails and the server must stop.
    pub fatal: Option<oneshot::Sender<String>>,
    /// Take a snapshot of the recovered tree as soon as serving starts.
    pub snapshot_at_start: bool,
}

/// Txns until the next snapshot: between snapCount/2 and snapCount, randomised as ZooKeeper
/// does so the members of an ensemble do not all snapshot at once.
fn next_snapshot_after(snap_count: u64) -> u64 {
    let half = (snap_count / 2).max(1);
    half + rand::random::<u64>() % half
}

/// How often the quorum peer's timers are looked at (election resends, pings, silence).
const PEER_TICK: Duration = Duration::from_millis(50);

async fn run_core(
    mut core: Core,
    mut rx: mpsc::Receiver<Event>,
    cfg: DriverConfig,
    mut disk: Disk,
    mut metrics: Registry,
    ensemble: Option<Ensemble>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut outs: HashMap<ConnId, mpsc::UnboundedSender<Outbound>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut peer_tick = tokio::time::interval(PEER_TICK);
    peer_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut peer, mut peer_rx) = match ensemble {
        Some(e) => (Some(e.peer), Some(e.events)),
        None => (None, None),
    };
    let mut batch = Vec::with_capacity(256);
    let mut since_snapshot = 0u64;
    if disk.snapshot_at_start {
        disk.snapshots
            .take(core.tree(), disk.from_writer_tx.clone());
    }
    let mut snapshot_at = next_snapshot_after(disk.snapshots.snap_count);
    loop {
        batch.clear();
        tokio::select! {
            // In this order: finished fsyncs (their replies are waiting), the tick (session
            // expiry), shutdown, then new requests. A fixed order, so under load no branch
            // starves the others that matter: requests never block fsync completions or the
            // tick.
            biased;
            msg = disk.from_writer.recv() => match msg {
                Some(FromWriter::Persisted(zxid)) => match peer.as_mut() {
                    Some(p) => {
                        let mut node = node(&mut core, &mut outs, &mut disk);
                        p.on_persisted(zxid, &mut node);
                    }
                    None => core.handle(now(), Input::Persisted { zxid }),
                },
                Some(FromWriter::Timed(t)) => match t {
                    DiskTiming::Fsync { ms, txns } => {
                        metrics.observe("fsynctime", ms as i64);
                        metrics.observe("sync_processor_batch_size", txns as i64);
                    }
                    DiskTiming::Snapshot { ms } => metrics.observe("snapshottime", ms as i64),
                },
                Some(FromWriter::Failed(e)) => {
                    metrics.count("unrecoverable_error_count", 1);
                    tracing::error!(error = %e, "the txn log cannot be written; stopping so no write is acknowledged that might be lost (a restart recovers every acknowledged txn)");
                    if let Some(f) = disk.fatal.take() {
                        let _ = f.send(e);
                    }
                    break;
                }
                None => break,
            },
            ev = recv_peer(&mut peer_rx) => {
                if let (Some(p), Some(ev)) = (peer.as_mut(), ev) {
                    let mut node = node(&mut core, &mut outs, &mut disk);
                    p.on_event(ev, &mut node);
                }
            }
            _ = peer_tick.tick(), if peer.is_some() => {
                if let Some(p) = peer.as_mut() {
                    let mut node = node(&mut core, &mut outs, &mut disk);
                    p.on_tick(&mut node);
                }
            }
            _ = tick.tick() => {
                // Only a serving core expires sessions: a leader still syncing must not
                // number txns before its epoch is established.
                if peer.as_ref().is_none_or(|p| p.serving) {
                    core.handle(now(), Input::Tick);
                }
            }
            _ = shutdown.changed() => break,
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    break;
                }
            }
        }
        let now = now();
        for ev in batch.drain(..) {
            match ev {
                Event::Connect { conn, addr, out } => {
                    if peer.as_ref().is_some_and(|p| !p.serving) {
                        // ZooKeeper's "not running" server: clients try another member.
                        let _ = out.send(Outbound::Close);
                        continue;
                    }
                    outs.insert(conn, out);
                    core.handle(now, Input::Connect { conn, addr });
                }
                Event::Frame { conn, frame } => {
                    metrics.count("bytes_received_count", 4 + frame.len() as u64);
                    core.handle(
                        now,
                        Input::Frame {
                            conn,
                            frame: &frame,
                        },
                    )
                }
                Event::Disconnect { conn } => {
                    outs.remove(&conn);
                    core.handle(now, Input::Disconnect { conn });
                }
                Event::FourLetter {
                    word,
                    addr,
                    allowed,
                    args,
                    disk,
                    reply,
                } => {
                    // ZooKeeper counts the word as a packet of 4 bytes, answered or not.
                    core.stats.packets_received += 1;
                    metrics.count("bytes_received_count", 4);
                    let text = match commands::by_word(word) {
                        _ if !allowed => fourlw::refusal(word),
                        // ZooKeeper's answer while it is electing or syncing.
                        _ if peer.as_ref().is_some_and(|p| !p.serving)
                            && !matches!(word, "ruok" | "envi" | "conf" | "isro" | "dirs") =>
                        {
                            String::from(
                                "This ZooKeeper instance is not currently serving requests\n",
                            )
                        }
                        Some(cmd) => cmd.run_text(&mut Ctx {
                            core: &mut core,
                            info: &cfg.info,
                            metrics: &mut metrics,
                            now,
                            asker: Some(addr),
                            disk,
                            args,
                            peer: peer.as_ref().map(|p| p.facts()),
                        }),
                        None => String::new(),
                    };
                    // ... and its answer as a packet sent, once written.
                    if !text.is_empty() {
                        core.stats.packets_sent += 1;
                    }
                    let _ = reply.send(text);
                }
                Event::Command {
                    name,
                    args,
                    disk,
                    reply,
                } => {
                    let response = match commands::by_name(&name) {
                        Some(cmd) => cmd.run(&mut Ctx {
                            core: &mut core,
                            info: &cfg.info,
                            metrics: &mut metrics,
                            now,
                            asker: None,
                            disk,
                            args,
                            peer: peer.as_ref().map(|p| p.facts()),
                        }),
                        None => commands::Response::unknown(&name),
                    };
                    let _ = reply.send(response.to_json());
                }
                Event::Metrics { reply } => {
                    let entries = metrics.collect(&core, 0);
                    let _ = reply.send(metrics::prometheus_text(&entries));
                }
            }
        }
        if let Some(p) = peer.as_mut() {
            let mut node = node(&mut core, &mut outs, &mut disk);
            p.core_actions(&mut node, Some(&mut metrics));
            since_snapshot += p.take_appended();
        }
        for a in core.take_actions() {
            match a {
                Action::Send { conn, frame } => {
                    metrics.frame_sent(&frame);
                    if let Some(o) = outs.get(&conn) {
                        let _ = o.send(Outbound::Frame(frame));
                    }
                }
                Action::Close { conn } => {
                    if let Some(o) = outs.get(&conn) {
                        let _ = o.send(Outbound::Close);
                    }
                }
                Action::Append { zxid, entry } => {
                    since_snapshot += 1;
                    if disk.writer.send(ToWriter::Append { zxid, entry }).is_err() {
                        break;
                    }
                }
                Action::Forward { .. } | Action::Revalidate { .. } => {
                    tracing::error!("a standalone core asked to reach a leader");
                }
            }
        }
        metrics.take_latencies(&mut core);
        if since_snapshot >= snapshot_at {
            since_snapshot = 0;
            snapshot_at = next_snapshot_after(disk.snapshots.snap_count);
            if disk.snapshots.busy() {
                // As ZooKeeper does: this one is skipped, the next comes as usual.
                tracing::warn!(
                    "too busy to snapshot (the last one is still being written); skipping"
                );
            } else {
                // The next log file starts after what is queued now. The snapshot is named
                // after the last applied zxid; every txn after it is in that log or the one
                // before.
                let _ = disk.writer.send(ToWriter::Roll);
                disk.snapshots
                    .take(core.tree(), disk.from_writer_tx.clone());
            }
        }
    }
    for o in outs.values() {
        let _ = o.send(Outbound::Close);
    }
}

fn node<'a>(
    core: &'a mut Core,
    outs: &'a mut HashMap<ConnId, mpsc::UnboundedSender<Outbound>>,
    disk: &'a mut Disk,
) -> crate::ensemble::Node<'a> {
    crate::ensemble::Node {
        core,
        outs,
        writer: &disk.writer,
        from_writer: &mut disk.from_writer,
        snapshots: &disk.snapshots,
    }
}

async fn recv_peer(
    rx: &mut Option<mpsc::UnboundedReceiver<crate::peer_net::PeerEvent>>,
) -> Option<crate::peer_net::PeerEvent> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn run_conn(
    conn: ConnId,
    stream: TcpStream,
    addr: SocketAddr,
    tx: mpsc::Sender<Event>,
    cfg: DriverConfig,
) {
    let span = tracing::debug_span!("conn", conn, %addr);
    let _enter = span.enter();
    let (mut rd, mut wr) = stream.into_split();
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    // A four-letter word can only be the first thing on a connection.
    while buf.len() < 4 {
        let mut tmp = [0u8; 4096];
        match rd.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    let first = [buf[0], buf[1], buf[2], buf[3]];
    if let Some(word) = fourlw::word_of(first) {
        let allowed = fourlw::allowed(&cfg.four_letter_words, word, &cfg.info);
        let mut args = Vec::new();
        if allowed && word == "stmk" {
            // The new trace mask follows as 8 bytes; without them ZooKeeper closes silently.
            let _ = tokio::time::timeout(STMK_ARG_WAIT, async {
                let mut tmp = [0u8; 64];
                while buf.len() < 12 {
                    match rd.read(&mut tmp).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                }
            })
            .await;
            let Some(mask) = buf.get(4..12) else {
                return;
            };
            let mask = i64::from_be_bytes(mask.try_into().expect("8 bytes"));
            args.push(("traceMask".to_owned(), mask.to_string()));
        }
        let disk = if allowed && matches!(word, "conf" | "dirs") {
            measure_disk(&cfg.info).await
        } else {
            DiskFacts::default()
        };
        let (reply, rx) = oneshot::channel();
        let ev = Event::FourLetter {
            word,
            addr,
            allowed,
            args,
            disk,
            reply,
        };
        if tx.send(ev).await.is_err() {
            return;
        }
        let text = rx.await.unwrap_or_default();
        let _ = wr.write_all(text.as_bytes()).await;
        let _ = wr.shutdown().await;
        return;
    }
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    if tx
        .send(Event::Connect {
            conn,
            addr,
            out: out_tx,
        })
        .await
        .is_err()
    {
        return;
    }
    let (closed_tx, mut closed_rx) = oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        let _closed = closed_tx;
        while let Some(msg) = out_rx.recv().await {
            let Outbound::Frame(mut data) = msg else {
                break;
            };
            // Coalesce what is already queued into one write, stopping at a Close.
            let mut close = false;
            while let Ok(more) = out_rx.try_recv() {
                match more {
                    Outbound::Frame(f) => data.extend_from_slice(&f),
                    Outbound::Close => {
                        close = true;
                        break;
                    }
                }
            }
            if wr.write_all(&data).await.is_err() || close {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut tmp = vec![0u8; 64 * 1024];
    'read: loop {
        let mut start = 0;
        loop {
            match zooid_proto::frame::next_frame(&buf[start..], cfg.max_frame_len) {
                Ok(Some((from, to))) => {
                    let frame = buf[start + from..start + to].to_vec();
                    start += to;
                    if tx.send(Event::Frame { conn, frame }).await.is_err() {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(error = %e, "closing connection: bad frame length (jute.maxbuffer)");
                    break 'read;
                }
            }
        }
        buf.drain(..start);
        tokio::select! {
            r = rd.read(&mut tmp) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            },
            _ = &mut closed_rx => break,
        }
    }
    let _ = tx.send(Event::Disconnect { conn }).await;
    writer.abort();
}
