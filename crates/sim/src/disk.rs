//! A member's simulated disk, as Zab sees it: the txn log (after the snapshot a SNAP loaded,
//! if any), `acceptedEpoch` and `currentEpoch`. Appends become durable only when the
//! simulation runs a fsync (after a random latency); a crash tears off what is not durable.
//! The epoch files, TRUNC and a loaded snapshot are written synchronously, as ZooKeeper does.
//!
//! ```text
//! history   [ snapshot items (snap_len) | log entries ... ]   zxid order, (zxid, txn id)
//!                                        ^ durable_len: what survives a crash
//! base      the zxid the loaded snapshot is labelled with (may be an epoch start (e,0))
//! pre_snap  what the disk held at or below that zxid before the SNAP: the older snapshot
//!           and log the server keeps (it truncates its log after the SNAP's zxid only)
//! snapshot  (what a SNAP streams) [int64 zxid][uint64 id] per item, big-endian
//! ```

use zooid_proto::TxnEntry;
use zooid_zab::{Epoch, TxnLogReader, Zxid};

use crate::workload::make_entry;

#[derive(Debug, Clone, Default)]
pub struct Disk {
    /// Snapshot items then log entries: the member's whole history, in zxid order.
    pub history: Vec<(Zxid, u64)>,
    /// The zxid of the snapshot a SNAP loaded (may be an epoch start).
    pub base: Zxid,
    /// How many of `history`'s first entries came from that snapshot.
    pub snap_len: usize,
    /// The history at or below `base` from before that SNAP (older snapshot and log).
    pub pre_snap: Vec<(Zxid, u64)>,
    pub durable_len: usize,
    pub accepted_epoch: Epoch,
    pub current_epoch: Epoch,
}

impl Disk {
    /// A disk holding `history`, all of it durable, with both epoch files at `epoch`.
    pub fn new(history: Vec<(Zxid, u64)>, epoch: Epoch) -> Disk {
        Disk {
            durable_len: history.len(),
            history,
            base: Zxid::ZERO,
            snap_len: 0,
            pre_snap: Vec::new(),
            accepted_epoch: epoch,
            current_epoch: epoch,
        }
    }

    pub fn last_zxid(&self) -> Zxid {
        self.history
            .last()
            .map_or(self.base, |e| e.0.max(self.base))
    }

    pub fn durable_zxid(&self) -> Zxid {
        match self.durable_len {
            0 => self.base,
            n => self.history[n - 1].0.max(self.base),
        }
    }

    /// Append to the log; durable after the next [`fsync`](Self::fsync).
    pub fn append(&mut self, zxid: Zxid, id: u64) {
        self.history.push((zxid, id));
    }

    /// Everything appended so far is durable; returns the durable zxid.
    pub fn fsync(&mut self) -> Zxid {
        self.durable_len = self.history.len();
        self.durable_zxid()
    }

    /// The process died: the log's unsynced tail is torn off. Returns how many txns it held.
    pub fn crash(&mut self) -> usize {
        let torn = self.history.len() - self.durable_len;
        self.history.truncate(self.durable_len);
        torn
    }

    /// TRUNC to `zxid`. It may go below an epoch-start snapshot's label (a learner synced by
    /// SNAP at (e,0) that logged proposals the next leader lacks). When it cuts into a
    /// snapshot's content (one a SNAP from a leader that never established stored), the server
    /// drops that snapshot and falls back to its older snapshot and log: `Ok(false)` if that
    /// history ends below `zxid` (the learner then fails and syncs again from there).
    pub fn truncate(&mut self, zxid: Zxid) -> Result<bool, String> {
        self.history.retain(|e| e.0 <= zxid);
        self.base = self.base.min(zxid);
        self.durable_len = self.durable_len.min(self.history.len());
        if self.history.len() >= self.snap_len {
            return Ok(true);
        }
        let mut older = std::mem::take(&mut self.pre_snap);
        older.retain(|e| e.0 <= zxid);
        self.durable_len = older.len();
        self.history = older;
        self.snap_len = 0;
        self.base = Zxid::ZERO;
        Ok(self.last_zxid() == zxid)
    }

    /// A SNAP's snapshot replaces everything, durably.
    pub fn load_snapshot(&mut self, zxid: Zxid, items: Vec<(Zxid, u64)>) {
        // The server makes everything appended durable, then cuts its log after `zxid`.
        let mut older = std::mem::take(&mut self.history);
        older.retain(|e| e.0 <= zxid);
        if self.snap_len == 0 || older.len() >= self.snap_len {
            self.pre_snap = older;
        }
        self.durable_len = items.len();
        self.snap_len = items.len();
        self.history = items;
        self.base = zxid;
    }
}

/// The leader's txn log as a [`TxnLogReader`] (rule 5 of the sync decision); `enabled` false
/// plays a leader without `zookeeper.txnLogSync`-style reading of its log.
pub struct DiskLog<'a> {
    pub history: &'a [(Zxid, u64)],
    pub enabled: bool,
}

impl TxnLogReader for DiskLog<'_> {
    fn committed_range(&self, from: Zxid, to: Zxid) -> Option<Vec<TxnEntry>> {
        if !self.enabled {
            return None;
        }
        let i = self.history.binary_search_by_key(&from, |e| e.0).ok()?;
        Some(
            self.history[i..]
                .iter()
                .take_while(|e| e.0 <= to)
                .map(|&(z, id)| make_entry(z, id))
                .collect(),
        )
    }
}

/// The snapshot a leader streams after SNAP: its applied history.
pub fn encode_snapshot(items: &[(Zxid, u64)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(items.len() * 16);
    for (z, id) in items {
        b.extend_from_slice(&z.0.to_be_bytes());
        b.extend_from_slice(&id.to_be_bytes());
    }
    b
}

pub fn decode_snapshot(b: &[u8]) -> Vec<(Zxid, u64)> {
    b.chunks_exact(16)
        .map(|c| {
            (
                Zxid(i64::from_be_bytes(c[..8].try_into().unwrap())),
                u64::from_be_bytes(c[8..].try_into().unwrap()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::z;

    #[test]
    fn a_crash_tears_off_what_was_not_fsynced() {
        let mut d = Disk::new(vec![(z(1, 1), 1)], Epoch(1));
        d.append(z(1, 2), 2);
        assert_eq!(d.fsync(), z(1, 2));
        d.append(z(1, 3), 3);
        d.append(z(1, 4), 4);
        assert_eq!(d.last_zxid(), z(1, 4));
        assert_eq!(d.crash(), 2);
        assert_eq!(d.last_zxid(), z(1, 2));
    }

    #[test]
    fn trunc_may_go_below_an_epoch_start_label() {
        let mut d = Disk::default();
        d.load_snapshot(z(2, 0), vec![(z(1, 1), 1), (z(1, 2), 2)]);
        d.append(z(2, 1), 3);
        assert_eq!(d.truncate(z(1, 4)), Ok(true));
        assert_eq!((d.last_zxid(), d.base), (z(1, 4), z(1, 4)));
    }

    #[test]
    fn trunc_into_a_snapshot_falls_back_to_the_older_history() {
        let mut d = Disk::new(vec![(z(1, 1), 1), (z(1, 2), 2)], Epoch(1));
        d.load_snapshot(z(1, 5), (1..=5).map(|c| (z(1, c), c as u64)).collect());
        // The older history reaches the TRUNC point: exact.
        let mut exact = d.clone();
        assert_eq!(exact.truncate(z(1, 2)), Ok(true));
        assert_eq!(exact.history, vec![(z(1, 1), 1), (z(1, 2), 2)]);
        assert_eq!(exact.snap_len, 0);
        // It ends below it: the learner must sync again from (1,2).
        assert_eq!(d.truncate(z(1, 4)), Ok(false));
        assert_eq!(d.last_zxid(), z(1, 2));
    }

    #[test]
    fn a_snapshot_round_trips() {
        let items = vec![(z(1, 1), 7), (z(2, 5), u64::MAX)];
        assert_eq!(decode_snapshot(&encode_snapshot(&items)), items);
    }
}
