//! Fixtures shared by the unit tests of the Zab roles.

use zooid_proto::{Txn, TxnEntry, TxnHeader};

use crate::ids::{Epoch, Zxid};

pub fn z(epoch: i64, counter: u32) -> Zxid {
    Zxid::new(Epoch(epoch), counter)
}

/// A txn for `zxid`: a createSession, distinct per zxid.
pub fn entry(zxid: Zxid) -> TxnEntry {
    entry_of(zxid, Txn::CreateSession { timeout_ms: 1000 })
}

fn entry_of(zxid: Zxid, txn: Txn) -> TxnEntry {
    TxnEntry {
        header: TxnHeader {
            session_id: 7,
            cxid: zxid.counter() as i32,
            zxid: zxid.0,
            time_ms: 0,
            op: txn.op().code(),
        },
        txn,
        digest: None,
    }
}

/// A reconfig txn for `zxid` setting `/zookeeper/config` to `text`.
pub fn reconfig_entry(zxid: Zxid, text: &str) -> TxnEntry {
    let txn = Txn::Reconfig {
        path: "/zookeeper/config".into(),
        data: Some(text.as_bytes().to_vec()),
        version: -1,
    };
    entry_of(zxid, txn)
}
