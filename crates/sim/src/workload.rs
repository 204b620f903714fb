//! The simulated clients' txns. Each write is a setData on `/sim` whose data is the write's
//! unique id, so any member's history can be read back as (zxid, id) pairs and compared with
//! what was proposed and committed. The Zab roles never look inside a txn; the id only has to
//! survive the trip through logs, DIFFs and snapshots.

use zooid_proto::{OpCode, Txn, TxnEntry, TxnHeader};
use zooid_zab::Zxid;

/// A simulated write: a setData whose data is its unique id.
pub fn make_entry(zxid: Zxid, id: u64) -> TxnEntry {
    TxnEntry {
        header: TxnHeader {
            session_id: 1,
            cxid: 0,
            zxid: zxid.0,
            time_ms: 0,
            op: OpCode::SetData.code(),
        },
        txn: Txn::SetData {
            path: "/sim".into(),
            data: Some(id.to_be_bytes().to_vec()),
            version: -1,
        },
        digest: None,
    }
}

/// The id of a txn [`make_entry`] built.
pub fn id_of(e: &TxnEntry) -> u64 {
    match &e.txn {
        Txn::SetData { data: Some(d), .. } => u64::from_be_bytes(d[..8].try_into().unwrap()),
        other => panic!("not a simulated txn: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zooid_zab::Epoch;

    #[test]
    fn an_entry_carries_its_zxid_and_id() {
        let z = Zxid::new(Epoch(3), 7);
        let e = make_entry(z, 0xDEAD_BEEF_0000_0001);
        assert_eq!(Zxid(e.header.zxid), z);
        assert_eq!(id_of(&e), 0xDEAD_BEEF_0000_0001);
    }
}
