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
//! as persisted once the batch is handled. Nothing here holds protocol logic.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use zooid_node::{Action, ConnId, Core, Input};

use crate::fourlw;
use crate::persist::{self, FromWriter, SnapshotPlan, ToWriter};
use zooid_storage::snapshot::IncrementalSnapshot;

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
    FourLetter {
        word: String,
        reply: oneshot::Sender<String>,
    },
}

pub enum Outbound {
    Frame(Vec<u8>),
    Close,
}

/// Settings of the driver itself.
#[derive(Clone)]
pub struct DriverConfig {
    pub max_frame_len: u32,
    pub four_letter_words: Vec<String>,
    pub info: Arc<fourlw::ServerInfo>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Accept connections until `shutdown` flips.
pub async fn serve(
    listener: TcpListener,
    core: Core,
    cfg: DriverConfig,
    disk: Disk,
    mut shutdown: watch::Receiver<bool>,
) {
    let (tx, rx) = mpsc::channel::<Event>(4096);
    let core_task = tokio::spawn(run_core(core, rx, cfg.clone(), disk, shutdown.clone()));
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
}

/// Nodes a snapshot in progress encodes between two batches of requests.
const SNAPSHOT_SLICE_NODES: usize = 4_000;

/// Txns until the next snapshot: between snapCount/2 and snapCount, randomised as ZooKeeper
/// does so the members of an ensemble do not all snapshot at once.
fn next_snapshot_after(snap_count: u64) -> u64 {
    let half = (snap_count / 2).max(1);
    half + rand::random::<u64>() % half
}

async fn run_core(
    mut core: Core,
    mut rx: mpsc::Receiver<Event>,
    cfg: DriverConfig,
    mut disk: Disk,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut outs: HashMap<ConnId, mpsc::UnboundedSender<Outbound>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(256);
    let mut since_snapshot = 0u64;
    let mut snapshot: Option<IncrementalSnapshot> = None;
    let mut snapshot_at = next_snapshot_after(disk.snapshots.snap_count);
    loop {
        batch.clear();
        tokio::select! {
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    break;
                }
            }
            msg = disk.from_writer.recv() => match msg {
                Some(FromWriter::Persisted(zxid)) => core.handle(now_ms(), Input::Persisted { zxid }),
                Some(FromWriter::Failed(e)) => {
                    tracing::error!(error = %e, "the txn log cannot be written; stopping so no write is acknowledged that might be lost (a restart recovers every acknowledged txn)");
                    if let Some(f) = disk.fatal.take() {
                        let _ = f.send(e);
                    }
                    break;
                }
                None => break,
            },
            _ = tick.tick() => {
                core.handle(now_ms(), Input::Tick);
            }
            _ = shutdown.changed() => break,
        }
        let now = now_ms();
        for ev in batch.drain(..) {
            match ev {
                Event::Connect { conn, addr, out } => {
                    outs.insert(conn, out);
                    core.handle(now, Input::Connect { conn, addr });
                }
                Event::Frame { conn, frame } => core.handle(
                    now,
                    Input::Frame {
                        conn,
                        frame: &frame,
                    },
                ),
                Event::Disconnect { conn } => {
                    outs.remove(&conn);
                    core.handle(now, Input::Disconnect { conn });
                }
                Event::FourLetter { word, reply } => {
                    let _ = reply.send(fourlw::answer(&word, &mut core, &cfg.info, now));
                }
            }
        }
        for a in core.take_actions() {
            match a {
                Action::Send { conn, frame } => {
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
            }
        }
        if since_snapshot >= snapshot_at && snapshot.is_none() {
            // The next log file starts after what is queued now. The snapshot is named after
            // the last applied zxid; every txn after it is in that log or the one before.
            let _ = disk.writer.send(ToWriter::Roll);
            snapshot = Some(IncrementalSnapshot::start(core.tree()));
            since_snapshot = 0;
            snapshot_at = next_snapshot_after(disk.snapshots.snap_count);
        }
        if let Some(snap) = snapshot.as_mut() {
            if snap.step(core.tree(), SNAPSHOT_SLICE_NODES) {
                let snap = snapshot.take().expect("in progress");
                let done = snap.finish(core.tree());
                persist::spawn_snapshot_write(&disk.snapshots, done, disk.from_writer_tx.clone());
            }
        }
    }
    for o in outs.values() {
        let _ = o.send(Outbound::Close);
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
        let text = if cfg.four_letter_words.iter().any(|w| w == "*" || w == word) {
            let (reply, rx) = oneshot::channel();
            if tx
                .send(Event::FourLetter {
                    word: word.to_owned(),
                    reply,
                })
                .await
                .is_err()
            {
                return;
            }
            rx.await.unwrap_or_default()
        } else {
            format!("{word} is not executed because it is not in the whitelist.\n")
        };
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
