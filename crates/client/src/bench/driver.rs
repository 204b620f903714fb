//! The benchmark's hot loop: one task per connection drives a [`ClientCore`] on its own
//! socket, keeps up to `inflight` requests outstanding, writes each refill in one syscall and
//! parses every reply a read brought in. Latency is measured from the refill that queued a
//! request to the read that completed it, with one clock read per batch on each side.
//!
//! The loop stops issuing at the deadline or after `max_ops` requests, then drains what is in
//! flight; a server that goes silent for `stall` fails the connection instead of hanging it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::OpKind;
use crate::conn::{flush_now, open};
use crate::core::{ClientCore, ClientError, Event};
use crate::histogram::Histogram;

/// Where a worker's requests come from.
pub(crate) trait OpSource: Send {
    /// Encode the next request into `core`; returns its kind and a tag for [`OpSource::reply`],
    /// or `None` when this source has no more work.
    fn next(&mut self, core: &mut ClientCore) -> Option<(OpKind, u32)>;

    /// The reply to the request tagged `tag` arrived with error code `err`.
    fn reply(&mut self, _kind: OpKind, _tag: u32, _err: i32, _body: &[u8]) {}
}

/// Counters the progress line reads while workers run.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub ops: AtomicU64,
    pub errors: AtomicU64,
}

/// Latency and error counts per kind of operation, for one worker or merged.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats {
    pub hist: [Histogram; OpKind::COUNT],
    pub errors: [u64; OpKind::COUNT],
}

impl Stats {
    pub fn record(&mut self, kind: OpKind, latency: Duration, err: i32) {
        self.hist[kind as usize].record(latency.as_nanos().min(u64::MAX as u128) as u64);
        if err != 0 {
            self.errors[kind as usize] += 1;
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        for i in 0..OpKind::COUNT {
            self.hist[i].merge(&other.hist[i]);
            self.errors[i] += other.errors[i];
        }
    }
}

/// When a worker stops issuing requests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub duration: Duration,
    pub max_ops: u64,
}

/// A connected socket ready for [`run_loop`].
pub(crate) struct Conn {
    stream: TcpStream,
    core: ClientCore,
}

pub(crate) async fn connect(
    addr: SocketAddr,
    session_timeout: Duration,
) -> Result<Conn, ClientError> {
    let (stream, core, _session) = open(addr, session_timeout, Duration::from_secs(10)).await?;
    Ok(Conn { stream, core })
}

/// Run `source` on `conn` until the limits say stop, then close the session.
pub(crate) async fn run_loop<S: OpSource>(
    conn: Conn,
    source: &mut S,
    inflight: usize,
    limits: Limits,
    stall: Duration,
    stats: &mut Stats,
    progress: Option<&Progress>,
) -> Result<(), ClientError> {
    assert!(
        inflight > 0,
        "a worker needs at least one request in flight"
    );
    let Conn { stream, mut core } = conn;
    let deadline = Instant::now() + limits.duration;
    let mut queue: VecDeque<(OpKind, u32, Instant)> = VecDeque::with_capacity(inflight);
    let mut issued = 0u64;
    let mut exhausted = false;
    loop {
        if !exhausted && queue.len() < inflight {
            let now = Instant::now();
            if now >= deadline || issued >= limits.max_ops {
                exhausted = true;
            }
            while !exhausted && queue.len() < inflight {
                match source.next(&mut core) {
                    Some((kind, tag)) => {
                        queue.push_back((kind, tag, now));
                        issued += 1;
                        exhausted = issued >= limits.max_ops;
                    }
                    None => exhausted = true,
                }
            }
        }
        if queue.is_empty() {
            break;
        }
        flush_now(&stream, &mut core)?;
        let interest = if core.outgoing().is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        let ready = tokio::time::timeout(stall, stream.ready(interest))
            .await
            .map_err(|_| ClientError::Timeout("the server stopped answering"))??;
        if !ready.is_readable() {
            continue;
        }
        match stream.try_read_buf(core.read_buf()) {
            Ok(0) => return Err(ClientError::Closed),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        }
        let now = Instant::now();
        let (mut done, mut errors) = (0u64, 0u64);
        while let Some(ev) = core.poll()? {
            if let Event::Reply(r) = ev {
                let (kind, tag, sent) = queue
                    .pop_front()
                    .expect("the core matched a reply to a queued request");
                stats.record(kind, now - sent, r.err);
                source.reply(kind, tag, r.err, r.body);
                done += 1;
                errors += (r.err != 0) as u64;
            }
        }
        if let Some(p) = progress {
            p.ops.fetch_add(done, Ordering::Relaxed);
            p.errors.fetch_add(errors, Ordering::Relaxed);
        }
    }
    close(stream, core).await
}

/// closeSession, then wait (briefly) for the reply or the server's close.
pub(crate) async fn close(stream: TcpStream, mut core: ClientCore) -> Result<(), ClientError> {
    core.send_close();
    let work = async {
        loop {
            flush_now(&stream, &mut core)?;
            let interest = if core.outgoing().is_empty() {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            };
            if !stream.ready(interest).await?.is_readable() {
                continue;
            }
            match stream.try_read_buf(core.read_buf()) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
            while let Some(ev) = core.poll()? {
                if matches!(ev, Event::Reply(_)) && core.in_flight() == 0 {
                    return Ok(());
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .map_err(|_| ClientError::Timeout("closeSession"))?
}
