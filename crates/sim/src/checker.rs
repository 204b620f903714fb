//! The truth the Zab simulation checks every member against: what was proposed under each
//! zxid, a hash of every history up to each zxid, the committed sequence, and who established
//! each epoch. The checks return the violated invariant as text; the simulation fails the run
//! with it and a dump of every member.
//!
//! Invariants:
//! * at most one leader is established per epoch;
//! * one zxid names one txn, everywhere (proposals, logs, trees);
//! * members that hold the same zxid hold identical histories up to it: a hash chain over
//!   (zxid, txn) pairs, the same at that zxid everywhere;
//! * committed txns are never lost or reordered: the committed sequence only grows; a newly
//!   established leader's history holds every txn committed in earlier epochs (and is then
//!   committed itself, as Zab commits the new leader's history); a COMMIT below the end of the
//!   sequence must already be in it;
//! * a serving member (UPTODATE, or an established leader) has applied a prefix of the
//!   committed sequence, and applies in that order.
//!
//! The election's invariants need its members' view of each election and live with its model
//! in `election.rs`.

use std::collections::{BTreeMap, HashMap};

use zooid_zab::{Epoch, ServerId, Zxid};

use crate::rng::Rng;

/// One link of the history hash chain.
pub fn mix(h: u64, zxid: Zxid, id: u64) -> u64 {
    let mut r = Rng(h ^ (zxid.0 as u64).wrapping_mul(0xA24B_AED4_963E_E407) ^ id.rotate_left(17));
    r.next_u64()
}

/// The first value seen under `zxid` is the truth: records `v` if there is none yet, else
/// returns the recorded value when `v` differs from it.
fn same_everywhere(seen: &mut HashMap<Zxid, u64>, zxid: Zxid, v: u64) -> Result<(), u64> {
    match *seen.entry(zxid).or_insert(v) {
        first if first != v => Err(first),
        _ => Ok(()),
    }
}

#[derive(Debug, Default)]
pub struct Truth {
    /// The txn each zxid was proposed as (or first seen as, for the initial histories).
    owner: HashMap<Zxid, u64>,
    /// The history hash through each zxid.
    prefix: HashMap<Zxid, u64>,
    committed: Vec<(Zxid, u64)>,
    committed_pos: HashMap<Zxid, usize>,
    established: BTreeMap<Epoch, ServerId>,
}

impl Truth {
    /// The committed sequence, in commit order.
    pub fn committed(&self) -> &[(Zxid, u64)] {
        &self.committed
    }

    /// A leader proposes txn `id` as `zxid`: no zxid is proposed twice.
    pub fn proposed(&mut self, zxid: Zxid, id: u64) -> Result<(), String> {
        if self.owner.insert(zxid, id).is_some() {
            return Err(format!("zxid {zxid} proposed twice"));
        }
        Ok(())
    }

    /// One zxid, one txn.
    pub fn check_owner(&mut self, zxid: Zxid, id: u64, who: &str) -> Result<(), String> {
        same_everywhere(&mut self.owner, zxid, id).map_err(|o| {
            format!("{who}: zxid {zxid} holds txn {id}, but it was proposed as txn {o}")
        })
    }

    /// The history hash through `zxid` must be the same everywhere.
    pub fn check_prefix(&mut self, zxid: Zxid, h: u64, who: &str) -> Result<(), String> {
        same_everywhere(&mut self.prefix, zxid, h).map_err(|_| {
            format!(
                "{who}: history up to {zxid} differs from another member's history up to {zxid}"
            )
        })
    }

    /// Check a whole history; returns its hash.
    pub fn chain(&mut self, seq: &[(Zxid, u64)], who: &str) -> Result<u64, String> {
        let mut h = 0;
        let mut last = Zxid::NONE;
        for &(z, id) in seq {
            if z <= last {
                return Err(format!("{who}: history out of order at {z}"));
            }
            last = z;
            self.check_owner(z, id, who)?;
            h = mix(h, z, id);
            self.check_prefix(z, h, who)?;
        }
        Ok(h)
    }

    /// A leader committed `zxid`; true when that extends the committed sequence.
    pub fn commit(&mut self, zxid: Zxid, id: u64) -> Result<bool, String> {
        match self.committed.last() {
            Some(&(last, _)) if zxid <= last => {
                if self.committed_pos.get(&zxid).map(|&p| self.committed[p]) != Some((zxid, id)) {
                    return Err(format!(
                        "commit of {zxid} (txn {id}) is below the committed end {last} but not \
                         in the committed sequence: a committed txn was lost or reordered"
                    ));
                }
                Ok(false)
            }
            _ => {
                self.committed_pos.insert(zxid, self.committed.len());
                self.committed.push((zxid, id));
                Ok(true)
            }
        }
    }

    /// A serving member applies `zxid` as the `pos`-th txn of its history: the committed
    /// sequence must have it there.
    pub fn check_serving_apply(
        &self,
        pos: usize,
        zxid: Zxid,
        id: u64,
        who: &str,
    ) -> Result<(), String> {
        if self.committed.get(pos) != Some(&(zxid, id)) {
            return Err(format!(
                "{who}: a serving member applies {zxid} at position {pos}, but the committed \
                 sequence has {:?} there",
                self.committed.get(pos)
            ));
        }
        Ok(())
    }

    /// A member about to serve (or serving) must have applied a prefix of the committed
    /// sequence.
    pub fn check_serving_prefix(
        &self,
        sid: ServerId,
        tree: &[(Zxid, u64)],
        what: &str,
    ) -> Result<(), String> {
        let ok = tree.len() <= self.committed.len()
            && tree.iter().zip(&self.committed).all(|(a, b)| a == b);
        if ok {
            return Ok(());
        }
        let diverge = tree.iter().zip(&self.committed).position(|(a, b)| a != b);
        Err(format!(
            "sid {sid} {what}: its history ({} txns) is not a prefix of the committed sequence \
             ({} txns); first difference at {diverge:?}",
            tree.len(),
            self.committed.len()
        ))
    }

    /// `sid` established `epoch` with `history` applied. Returns how many txns that
    /// committed (Zab commits the new leader's whole history in its epoch).
    pub fn establish(
        &mut self,
        sid: ServerId,
        epoch: Epoch,
        history: &[(Zxid, u64)],
    ) -> Result<u64, String> {
        if let Some(other) = self.established.insert(epoch, sid) {
            return Err(format!(
                "two leaders established epoch {epoch}: sid {other} and sid {sid}"
            ));
        }
        let start = Zxid::epoch_start(epoch);
        let older = self.committed.iter().take_while(|e| e.0 < start).count();
        if history.len() < older || history[..older] != self.committed[..older] {
            return Err(format!(
                "sid {sid} established epoch {epoch} without every txn committed before it \
                 ({} of {older} kept)",
                history
                    .iter()
                    .zip(&self.committed[..older])
                    .take_while(|(a, b)| a == b)
                    .count()
            ));
        }
        if older < self.committed.len() {
            // Later epochs already committed: this leader cannot add anything, only lag.
            if history.len() > self.committed.len()
                || history[..] != self.committed[..history.len()]
            {
                return Err(format!(
                    "sid {sid} established epoch {epoch} with a history that contradicts \
                     later epochs' commits"
                ));
            }
            return Ok(0);
        }
        for &(z, id) in &history[older..] {
            self.committed_pos.insert(z, self.committed.len());
            self.committed.push((z, id));
        }
        Ok((history.len() - older) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::z;

    #[test]
    fn one_zxid_names_one_txn() {
        let mut t = Truth::default();
        t.proposed(z(1, 1), 10).unwrap();
        assert!(t.check_owner(z(1, 1), 10, "a").is_ok());
        assert!(t.check_owner(z(1, 1), 11, "b").is_err());
        assert!(t.proposed(z(1, 1), 12).is_err());
    }

    #[test]
    fn histories_that_share_a_zxid_share_what_came_before() {
        let mut t = Truth::default();
        t.chain(&[(z(1, 1), 1), (z(1, 2), 2)], "a").unwrap();
        t.chain(&[(z(1, 1), 1)], "b").unwrap();
        // "c" misses (1,1) but holds (1,2): a different history up to (1,2).
        assert!(t.chain(&[(z(1, 2), 2)], "c").is_err());
        assert!(t.chain(&[(z(1, 2), 2), (z(1, 1), 1)], "d").is_err());
    }

    #[test]
    fn a_commit_below_the_end_must_be_in_the_sequence() {
        let mut t = Truth::default();
        assert_eq!(t.commit(z(1, 1), 1), Ok(true));
        assert_eq!(t.commit(z(1, 3), 3), Ok(true));
        assert_eq!(t.commit(z(1, 1), 1), Ok(false));
        assert!(t.commit(z(1, 2), 2).is_err());
    }

    #[test]
    fn a_new_leader_keeps_what_earlier_epochs_committed() {
        let mut t = Truth::default();
        t.commit(z(1, 1), 1).unwrap();
        t.commit(z(1, 2), 2).unwrap();
        assert!(t.establish(ServerId(1), Epoch(2), &[(z(1, 1), 1)]).is_err());
        let h = [(z(1, 1), 1), (z(1, 2), 2), (z(1, 3), 3)];
        assert_eq!(t.establish(ServerId(2), Epoch(3), &h), Ok(1));
        assert!(
            t.establish(ServerId(3), Epoch(3), &h).is_err(),
            "epoch 3 twice"
        );
        assert_eq!(t.committed().len(), 3);
        assert!(t.check_serving_prefix(ServerId(1), &h[..2], "x").is_ok());
        assert!(t
            .check_serving_prefix(ServerId(1), &[(z(1, 2), 2)], "x")
            .is_err());
    }
}
