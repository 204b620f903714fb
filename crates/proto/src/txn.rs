//! Txn records: what every state change becomes before it is logged and applied. The same
//! bytes go into the txn log (`log.<zxid>`) and, in an ensemble, into PROPOSAL packets.
//!
//! ```text
//! TxnHeader { long clientId; int cxid; long zxid; long time; int type }   32 bytes
//! record by type:
//!   1 create / 15 create2   CreateTxn { path; data; vector<ACL> acl; bool ephemeral; int parentCVersion }
//!   19 createContainer      CreateContainerTxn { path; data; acl; int parentCVersion }
//!   21 createTTL            CreateTTLTxn { path; data; acl; int parentCVersion; long ttl }
//!   2 delete / 20 deleteContainer   DeleteTxn { path }
//!   5 setData               SetDataTxn { path; data; int version }      (the new version)
//!   7 setACL                SetACLTxn { path; acl; int version }        (the new aversion)
//!   13 check                CheckVersionTxn { path; int version }
//!   14 multi                MultiTxn { vector<{ int type; buffer record }> }
//!   -10 createSession       CreateSessionTxn { int timeOut }
//!   -11 closeSession        CloseSessionTxn { vector<ustring> paths2Delete } (may be absent)
//!   -1 error                ErrorTxn { int err }
//! optional TxnDigest { int version = 2; long treeDigest } after the record
//! ```

use crate::consts::OpCode;
use crate::jute::{DecodeError, Reader, Record, Result, Writer};
use crate::records::{read_acls, write_acls, Acl};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnHeader {
    pub session_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    pub time_ms: i64,
    pub op: i32,
}

impl Record for TxnHeader {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(TxnHeader {
            session_id: r.read_i64()?,
            cxid: r.read_i32()?,
            zxid: r.read_i64()?,
            time_ms: r.read_i64()?,
            op: r.read_i32()?,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.write_i64(self.session_id);
        w.write_i32(self.cxid);
        w.write_i64(self.zxid);
        w.write_i64(self.time_ms);
        w.write_i32(self.op);
    }
}

/// Which kind of create a `Txn::Create` is; decides the record layout and the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateKind {
    /// op 1 or 15 (`create2` only changes the reply); `ephemeral` is in the record.
    Plain {
        create2: bool,
    },
    Container,
    Ttl(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    Create {
        kind: CreateKind,
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        ephemeral: bool,
        parent_cversion: i32,
    },
    Delete {
        path: String,
        container: bool,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    /// A reconfig: the new config text set on `/zookeeper/config` (a SetDataTxn record).
    Reconfig {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<Txn>),
    CreateSession {
        timeout_ms: i32,
    },
    /// `paths` is `None` for old logs written without a body.
    CloseSession {
        paths: Option<Vec<String>>,
    },
    Error {
        err: i32,
    },
}

impl Txn {
    pub fn op(&self) -> OpCode {
        match self {
            Txn::Create { kind, .. } => match kind {
                CreateKind::Plain { create2: false } => OpCode::Create,
                CreateKind::Plain { create2: true } => OpCode::Create2,
                CreateKind::Container => OpCode::CreateContainer,
                CreateKind::Ttl(_) => OpCode::CreateTtl,
            },
            Txn::Delete {
                container: false, ..
            } => OpCode::Delete,
            Txn::Delete {
                container: true, ..
            } => OpCode::DeleteContainer,
            Txn::SetData { .. } => OpCode::SetData,
            Txn::SetAcl { .. } => OpCode::SetAcl,
            Txn::Reconfig { .. } => OpCode::Reconfig,
            Txn::Check { .. } => OpCode::Check,
            Txn::Multi(_) => OpCode::Multi,
            Txn::CreateSession { .. } => OpCode::CreateSession,
            Txn::CloseSession { .. } => OpCode::CloseSession,
            Txn::Error { .. } => OpCode::Error,
        }
    }

    /// Write the record (not the header).
    pub fn write_record(&self, w: &mut Writer) {
        match self {
            Txn::Create {
                kind,
                path,
                data,
                acl,
                ephemeral,
                parent_cversion,
            } => {
                w.write_string(path);
                w.write_opt_buffer(data.as_deref());
                write_acls(w, acl);
                match kind {
                    CreateKind::Plain { .. } => {
                        w.write_bool(*ephemeral);
                        w.write_i32(*parent_cversion);
                    }
                    CreateKind::Container => w.write_i32(*parent_cversion),
                    CreateKind::Ttl(ttl) => {
                        w.write_i32(*parent_cversion);
                        w.write_i64(*ttl);
                    }
                }
            }
            Txn::Delete { path, .. } => w.write_string(path),
            Txn::SetData {
                path,
                data,
                version,
            }
            | Txn::Reconfig {
                path,
                data,
                version,
            } => {
                w.write_string(path);
                w.write_opt_buffer(data.as_deref());
                w.write_i32(*version);
            }
            Txn::SetAcl { path, acl, version } => {
                w.write_string(path);
                write_acls(w, acl);
                w.write_i32(*version);
            }
            Txn::Check { path, version } => {
                w.write_string(path);
                w.write_i32(*version);
            }
            Txn::Multi(txns) => {
                w.write_len(txns.len());
                for t in txns {
                    w.write_i32(t.op().code());
                    let mut inner = Writer::new();
                    t.write_record(&mut inner);
                    w.write_buffer(&inner.buf);
                }
            }
            Txn::CreateSession { timeout_ms } => w.write_i32(*timeout_ms),
            Txn::CloseSession { paths } => {
                if let Some(p) = paths {
                    w.write_strings(p);
                }
            }
            Txn::Error { err } => w.write_i32(*err),
        }
    }

    /// Read the record of a txn of type `op`.
    pub fn read_record(op: i32, r: &mut Reader<'_>) -> Result<Txn> {
        let Some(code) = OpCode::from_i32(op) else {
            return Err(DecodeError::Invalid("unknown txn type"));
        };
        Ok(match code {
            OpCode::Create | OpCode::Create2 => {
                let path = r.read_string()?;
                let data = r.read_opt_buffer()?.map(<[u8]>::to_vec);
                let acl = read_acls(r)?;
                let ephemeral = r.read_bool()?;
                // CreateTxnV0 (very old logs) has no parentCVersion: -1 means "parent + 1".
                let parent_cversion = if r.remaining() >= 4 {
                    r.read_i32()?
                } else {
                    -1
                };
                Txn::Create {
                    kind: CreateKind::Plain {
                        create2: code == OpCode::Create2,
                    },
                    path,
                    data,
                    acl,
                    ephemeral,
                    parent_cversion,
                }
            }
            OpCode::CreateContainer => Txn::Create {
                kind: CreateKind::Container,
                path: r.read_string()?,
                data: r.read_opt_buffer()?.map(<[u8]>::to_vec),
                acl: read_acls(r)?,
                ephemeral: false,
                parent_cversion: r.read_i32()?,
            },
            OpCode::CreateTtl => {
                let path = r.read_string()?;
                let data = r.read_opt_buffer()?.map(<[u8]>::to_vec);
                let acl = read_acls(r)?;
                let parent_cversion = r.read_i32()?;
                let ttl = r.read_i64()?;
                Txn::Create {
                    kind: CreateKind::Ttl(ttl),
                    path,
                    data,
                    acl,
                    ephemeral: false,
                    parent_cversion,
                }
            }
            OpCode::Delete | OpCode::DeleteContainer => Txn::Delete {
                path: r.read_string()?,
                container: code == OpCode::DeleteContainer,
            },
            OpCode::SetData => Txn::SetData {
                path: r.read_string()?,
                data: r.read_opt_buffer()?.map(<[u8]>::to_vec),
                version: r.read_i32()?,
            },
            OpCode::Reconfig => Txn::Reconfig {
                path: r.read_string()?,
                data: r.read_opt_buffer()?.map(<[u8]>::to_vec),
                version: r.read_i32()?,
            },
            OpCode::SetAcl => Txn::SetAcl {
                path: r.read_string()?,
                acl: read_acls(r)?,
                version: r.read_i32()?,
            },
            OpCode::Check => Txn::Check {
                path: r.read_string()?,
                version: r.read_i32()?,
            },
            OpCode::Multi => {
                let parts = r.read_vec(8, |r| {
                    let t = r.read_i32()?;
                    let body = r.read_buffer()?;
                    Txn::read_record(t, &mut Reader::new(body))
                })?;
                if parts.iter().any(|t| matches!(t, Txn::Multi(_))) {
                    return Err(DecodeError::Invalid("nested multi txn"));
                }
                Txn::Multi(parts)
            }
            OpCode::CreateSession => Txn::CreateSession {
                timeout_ms: r.read_i32()?,
            },
            OpCode::CloseSession => Txn::CloseSession {
                paths: if r.remaining() >= 4 {
                    Some(r.read_vec(4, |r| r.read_string())?)
                } else {
                    None
                },
            },
            OpCode::Error => Txn::Error { err: r.read_i32()? },
            _ => return Err(DecodeError::Invalid("opcode is not a txn type")),
        })
    }
}

/// `TxnDigest`: the tree digest after applying the txn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnDigest {
    pub version: i32,
    pub tree_digest: i64,
}

/// A header, its txn and its optional digest: one log entry body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnEntry {
    pub header: TxnHeader,
    pub txn: Txn,
    pub digest: Option<TxnDigest>,
}

impl TxnEntry {
    pub fn encode(&self, w: &mut Writer) {
        debug_assert_eq!(self.header.op, self.txn.op().code());
        self.header.write(w);
        self.txn.write_record(w);
        if let Some(d) = self.digest {
            w.write_i32(d.version);
            w.write_i64(d.tree_digest);
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<TxnEntry> {
        let r = &mut Reader::new(bytes);
        let header = TxnHeader::read(r)?;
        let txn = Txn::read_record(header.op, r)?;
        let digest = if r.remaining() >= 12 {
            Some(TxnDigest {
                version: r.read_i32()?,
                tree_digest: r.read_i64()?,
            })
        } else {
            None
        };
        Ok(TxnEntry {
            header,
            txn,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let txn = Txn::Multi(vec![
            Txn::Create {
                kind: CreateKind::Ttl(5000),
                path: "/t".into(),
                data: Some(vec![1, 2]),
                acl: Acl::open_unsafe(),
                ephemeral: false,
                parent_cversion: 3,
            },
            Txn::Error { err: -2 },
        ]);
        let e = TxnEntry {
            header: TxnHeader {
                session_id: 0x100,
                cxid: 4,
                zxid: 9,
                time_ms: 1234,
                op: OpCode::Multi.code(),
            },
            txn,
            digest: Some(TxnDigest {
                version: 2,
                tree_digest: 1371985504,
            }),
        };
        let mut w = Writer::new();
        e.encode(&mut w);
        assert_eq!(TxnEntry::decode(&w.buf).unwrap(), e);
    }

    #[test]
    fn reconfig_keeps_its_type() {
        let e = TxnEntry {
            header: TxnHeader {
                session_id: 1,
                cxid: 2,
                zxid: 3,
                time_ms: 4,
                op: OpCode::Reconfig.code(),
            },
            txn: Txn::Reconfig {
                path: "/zookeeper/config".into(),
                data: Some(b"server.1=a:1:2\nversion=1".to_vec()),
                version: -1,
            },
            digest: None,
        };
        let mut w = Writer::new();
        e.encode(&mut w);
        assert_eq!(TxnEntry::decode(&w.buf).unwrap(), e);
    }

    #[test]
    fn create_session_from_a_real_log_decodes() {
        // First entry body of tests/fixtures/standalone/version-2/log.1.
        let hex = "01000004f17c0000 00000000 0000000000000001 000001a1ffd52027 fffffff6 00002710 00000002 0000000051c6d660";
        let bytes: Vec<u8> = hex
            .split_whitespace()
            .collect::<String>()
            .as_bytes()
            .chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect();
        let e = TxnEntry::decode(&bytes).unwrap();
        assert_eq!(e.header.zxid, 1);
        assert_eq!(e.txn, Txn::CreateSession { timeout_ms: 10000 });
        assert_eq!(e.digest.unwrap().tree_digest, 1371985504);
    }
}
