//! Client requests: the body that follows a `RequestHeader`, decoded by opcode into one enum.
//!
//! Decoding is strict about lengths (a truncated record is a [`DecodeError`]) and lenient about
//! trailing bytes, as ZooKeeper's `BinaryInputArchive` is. Opcodes ZooKeeper does not accept map
//! to [`Request::Unknown`]; the server answers those with UNIMPLEMENTED and closes.

use crate::consts::OpCode;
use crate::jute::{DecodeError, Reader, Record, Result, Writer};
use crate::records::{read_request_acls, write_acls, Acl, AuthPacket, MultiHeader};

/// `CreateRequest` / `CreateTTLRequest`, with the opcode that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub op: OpCode,
    pub path: String,
    /// `None` is a null buffer, which ZooKeeper keeps distinct from empty.
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    pub flags: i32,
    /// Only for createTTL (op 21).
    pub ttl: Option<i64>,
}

impl CreateRequest {
    fn read(op: OpCode, r: &mut Reader<'_>) -> Result<Self> {
        let path = r.read_string()?;
        let data = r.read_opt_buffer()?.map(<[u8]>::to_vec);
        let acl = read_request_acls(r)?;
        let flags = r.read_i32()?;
        let ttl = if op == OpCode::CreateTtl {
            Some(r.read_i64()?)
        } else {
            None
        };
        Ok(CreateRequest {
            op,
            path,
            data,
            acl,
            flags,
            ttl,
        })
    }

    fn write(&self, w: &mut Writer) {
        w.write_string(&self.path);
        w.write_opt_buffer(self.data.as_deref());
        write_acls(w, &self.acl);
        w.write_i32(self.flags);
        if let Some(ttl) = self.ttl {
            w.write_i64(ttl);
        }
    }
}

/// One write inside a multi.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    Create(CreateRequest),
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
}

impl MultiOp {
    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create(c) => &c.path,
            MultiOp::Delete { path, .. }
            | MultiOp::SetData { path, .. }
            | MultiOp::Check { path, .. } => path,
        }
    }

    pub fn op(&self) -> OpCode {
        match self {
            MultiOp::Create(c) => c.op,
            MultiOp::Delete { .. } => OpCode::Delete,
            MultiOp::SetData { .. } => OpCode::SetData,
            MultiOp::Check { .. } => OpCode::Check,
        }
    }
}

/// One read inside a multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    GetChildren { path: String },
    GetData { path: String },
}

/// A decoded client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(CreateRequest),
    Delete {
        path: String,
        version: i32,
    },
    /// deleteContainer sent by a client (3.8 rejects it with BADARGUMENTS).
    DeleteContainer {
        path: String,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    GetAcl {
        path: String,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    GetChildren {
        path: String,
        watch: bool,
    },
    GetChildren2 {
        path: String,
        watch: bool,
    },
    Sync {
        path: String,
    },
    Ping,
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<MultiOp>),
    MultiRead(Vec<ReadOp>),
    Reconfig {
        joining: Option<String>,
        leaving: Option<String>,
        new_members: Option<String>,
        config_id: i64,
    },
    CheckWatches {
        path: String,
        watcher_type: i32,
    },
    RemoveWatches {
        path: String,
        watcher_type: i32,
    },
    Auth(AuthPacket),
    SetWatches(SetWatches),
    Sasl {
        token: Vec<u8>,
    },
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    AddWatch {
        path: String,
        mode: i32,
    },
    WhoAmI,
    CloseSession,
    /// An opcode ZooKeeper does not accept from clients.
    Unknown(i32),
}

/// `SetWatches` (op 101) and `SetWatches2` (op 105); the persistent lists are empty for 101.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
    /// Sent as setWatches2 (op 105), which carries the two persistent lists.
    pub v2: bool,
}

fn strings(r: &mut Reader<'_>) -> Result<Vec<String>> {
    r.read_vec(4, |r| r.read_string())
}

fn path_watch(r: &mut Reader<'_>) -> Result<(String, bool)> {
    Ok((read_path(r)?, r.read_bool()?))
}

/// A read's path. ZooKeeper keeps the root under "" as well as "/", so a read of "" is a
/// read of the root.
fn read_path(r: &mut Reader<'_>) -> Result<String> {
    let path = r.read_string()?;
    Ok(if path.is_empty() {
        "/".to_owned()
    } else {
        path
    })
}

impl Request {
    /// The opcode this request is sent under (a create carries its own).
    pub fn op(&self) -> OpCode {
        use OpCode as O;
        match self {
            Request::Create(c) => c.op,
            Request::Delete { .. } => O::Delete,
            Request::DeleteContainer { .. } => O::DeleteContainer,
            Request::Exists { .. } => O::Exists,
            Request::GetData { .. } => O::GetData,
            Request::SetData { .. } => O::SetData,
            Request::GetAcl { .. } => O::GetAcl,
            Request::SetAcl { .. } => O::SetAcl,
            Request::GetChildren { .. } => O::GetChildren,
            Request::GetChildren2 { .. } => O::GetChildren2,
            Request::Sync { .. } => O::Sync,
            Request::Ping => O::Ping,
            Request::Check { .. } => O::Check,
            Request::Multi(_) => O::Multi,
            Request::MultiRead(_) => O::MultiRead,
            Request::Reconfig { .. } => O::Reconfig,
            Request::CheckWatches { .. } => O::CheckWatches,
            Request::RemoveWatches { .. } => O::RemoveWatches,
            Request::Auth(_) => O::Auth,
            Request::SetWatches(sw) if sw.v2 => O::SetWatches2,
            Request::SetWatches(_) => O::SetWatches,
            Request::Sasl { .. } => O::Sasl,
            Request::GetEphemerals { .. } => O::GetEphemerals,
            Request::GetAllChildrenNumber { .. } => O::GetAllChildrenNumber,
            Request::AddWatch { .. } => O::AddWatch,
            Request::WhoAmI => O::WhoAmI,
            Request::CloseSession => O::CloseSession,
            // Sent as-is; the server answers UNIMPLEMENTED.
            Request::Unknown(_) => O::Error,
        }
    }

    /// Decode the body of a request with opcode `op`.
    pub fn decode(op: i32, body: &[u8]) -> Result<Request> {
        let r = &mut Reader::new(body);
        let Some(code) = OpCode::from_i32(op) else {
            return Ok(Request::Unknown(op));
        };
        use OpCode as O;
        Ok(match code {
            O::Create | O::Create2 | O::CreateContainer | O::CreateTtl => {
                Request::Create(CreateRequest::read(code, r)?)
            }
            O::Delete => Request::Delete {
                path: r.read_string()?,
                version: r.read_i32()?,
            },
            O::DeleteContainer => Request::DeleteContainer {
                path: r.read_string()?,
            },
            O::Exists => {
                let (path, watch) = path_watch(r)?;
                Request::Exists { path, watch }
            }
            O::GetData => {
                let (path, watch) = path_watch(r)?;
                Request::GetData { path, watch }
            }
            // A null path is ZooKeeper's BADARGUMENTS (a path that fails validation), not
            // MARSHALLINGERROR.
            O::SetData => Request::SetData {
                path: r.read_opt_string()?.unwrap_or_default(),
                data: r.read_opt_buffer()?.map(<[u8]>::to_vec),
                version: r.read_i32()?,
            },
            O::GetAcl => Request::GetAcl {
                path: read_path(r)?,
            },
            O::SetAcl => Request::SetAcl {
                path: r.read_string()?,
                acl: read_request_acls(r)?,
                version: r.read_i32()?,
            },
            O::GetChildren => {
                let (path, watch) = path_watch(r)?;
                Request::GetChildren { path, watch }
            }
            O::GetChildren2 => {
                let (path, watch) = path_watch(r)?;
                Request::GetChildren2 { path, watch }
            }
            // ZooKeeper syncs whatever the path, null included.
            O::Sync => Request::Sync {
                path: r.read_opt_string()?.unwrap_or_default(),
            },
            O::Ping => Request::Ping,
            O::Check => Request::Check {
                path: r.read_string()?,
                version: r.read_i32()?,
            },
            O::Multi | O::MultiRead => decode_multi(code, r)?,
            O::Reconfig => Request::Reconfig {
                joining: r.read_opt_string()?,
                leaving: r.read_opt_string()?,
                new_members: r.read_opt_string()?,
                config_id: r.read_i64()?,
            },
            O::CheckWatches => Request::CheckWatches {
                path: r.read_string()?,
                watcher_type: r.read_i32()?,
            },
            O::RemoveWatches => Request::RemoveWatches {
                path: r.read_string()?,
                watcher_type: r.read_i32()?,
            },
            O::Auth => Request::Auth(AuthPacket::read(r)?),
            O::SetWatches | O::SetWatches2 => {
                let mut sw = SetWatches {
                    relative_zxid: r.read_i64()?,
                    data: strings(r)?,
                    exist: strings(r)?,
                    child: strings(r)?,
                    ..Default::default()
                };
                if code == O::SetWatches2 {
                    sw.persistent = strings(r)?;
                    sw.persistent_recursive = strings(r)?;
                    sw.v2 = true;
                }
                Request::SetWatches(sw)
            }
            O::Sasl => Request::Sasl {
                token: r.read_buffer()?.to_vec(),
            },
            O::GetEphemerals => Request::GetEphemerals {
                prefix: r.read_string()?,
            },
            O::GetAllChildrenNumber => Request::GetAllChildrenNumber {
                path: read_path(r)?,
            },
            O::AddWatch => Request::AddWatch {
                path: r.read_string()?,
                mode: r.read_i32()?,
            },
            O::WhoAmI => Request::WhoAmI,
            O::CloseSession => Request::CloseSession,
            // ZooKeeper takes createSession into its write pipeline, where the body fails to
            // decode: MARSHALLINGERROR with a zxid, connection kept.
            O::CreateSession => {
                return Err(DecodeError::Invalid(
                    "createSession is not a client request",
                ))
            }
            O::Notification | O::Error => Request::Unknown(op),
        })
    }

    /// Encode the body (used by clients and tests).
    pub fn encode_body(&self, w: &mut Writer) {
        match self {
            Request::Create(c) => c.write(w),
            Request::Delete { path, version } | Request::Check { path, version } => {
                w.write_string(path);
                w.write_i32(*version);
            }
            Request::DeleteContainer { path }
            | Request::GetAcl { path }
            | Request::Sync { path }
            | Request::GetAllChildrenNumber { path }
            | Request::GetEphemerals { prefix: path } => w.write_string(path),
            Request::Exists { path, watch }
            | Request::GetData { path, watch }
            | Request::GetChildren { path, watch }
            | Request::GetChildren2 { path, watch } => {
                w.write_string(path);
                w.write_bool(*watch);
            }
            Request::SetData {
                path,
                data,
                version,
            } => {
                w.write_string(path);
                w.write_opt_buffer(data.as_deref());
                w.write_i32(*version);
            }
            Request::SetAcl { path, acl, version } => {
                w.write_string(path);
                write_acls(w, acl);
                w.write_i32(*version);
            }
            Request::Multi(ops) => {
                for op in ops {
                    MultiHeader {
                        op: op.op().code(),
                        done: false,
                        err: -1,
                    }
                    .write(w);
                    match op {
                        MultiOp::Create(c) => c.write(w),
                        MultiOp::Delete { path, version } | MultiOp::Check { path, version } => {
                            w.write_string(path);
                            w.write_i32(*version);
                        }
                        MultiOp::SetData {
                            path,
                            data,
                            version,
                        } => {
                            w.write_string(path);
                            w.write_opt_buffer(data.as_deref());
                            w.write_i32(*version);
                        }
                    }
                }
                MultiHeader::END.write(w);
            }
            Request::MultiRead(ops) => {
                for op in ops {
                    let (code, path) = match op {
                        ReadOp::GetChildren { path } => (OpCode::GetChildren, path),
                        ReadOp::GetData { path } => (OpCode::GetData, path),
                    };
                    MultiHeader {
                        op: code.code(),
                        done: false,
                        err: -1,
                    }
                    .write(w);
                    w.write_string(path);
                    w.write_bool(false);
                }
                MultiHeader::END.write(w);
            }
            Request::Reconfig {
                joining,
                leaving,
                new_members,
                config_id,
            } => {
                for s in [joining, leaving, new_members] {
                    w.write_opt_buffer(s.as_deref().map(str::as_bytes));
                }
                w.write_i64(*config_id);
            }
            Request::CheckWatches { path, watcher_type }
            | Request::RemoveWatches { path, watcher_type } => {
                w.write_string(path);
                w.write_i32(*watcher_type);
            }
            Request::Auth(a) => a.write(w),
            Request::SetWatches(sw) => {
                w.write_i64(sw.relative_zxid);
                w.write_strings(&sw.data);
                w.write_strings(&sw.exist);
                w.write_strings(&sw.child);
                if sw.v2 {
                    w.write_strings(&sw.persistent);
                    w.write_strings(&sw.persistent_recursive);
                }
            }
            Request::Sasl { token } => w.write_buffer(token),
            Request::AddWatch { path, mode } => {
                w.write_string(path);
                w.write_i32(*mode);
            }
            Request::Ping | Request::WhoAmI | Request::CloseSession | Request::Unknown(_) => {}
        }
    }

    /// Whether this request changes state (goes through the txn path).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Delete { .. }
                | Request::DeleteContainer { .. }
                | Request::SetData { .. }
                | Request::SetAcl { .. }
                | Request::Check { .. }
                | Request::Multi(_)
                | Request::Reconfig { .. }
                | Request::CloseSession
        )
    }
}

/// Inside a multi ZooKeeper rebuilds each create from its flags (`Op.create`): a container
/// flag makes a createContainer and a TTL flag a createTTL whatever the header said, and
/// anything else a plain create. create2 stays create2, as in 3.8.2+ (ZOOKEEPER-4026).
fn multi_create_op(op: OpCode, flags: i32) -> OpCode {
    match crate::CreateMode::from_flags(flags) {
        Some(m) if m.container => OpCode::CreateContainer,
        Some(m) if m.ttl => OpCode::CreateTtl,
        Some(_) if op == OpCode::Create2 => OpCode::Create2,
        Some(_) => OpCode::Create,
        None => op,
    }
}

fn decode_multi(code: OpCode, r: &mut Reader<'_>) -> Result<Request> {
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    loop {
        let h = MultiHeader::read(r)?;
        if h.done {
            break;
        }
        let Some(op) = OpCode::from_i32(h.op) else {
            return Err(DecodeError::Invalid("invalid type of op in multi"));
        };
        match op {
            OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
                let mut c = CreateRequest::read(op, r)?;
                c.op = multi_create_op(op, c.flags);
                if c.op != OpCode::CreateTtl {
                    // A createTTL record with non-TTL flags is a plain create in a multi.
                    c.ttl = None;
                } else if c.ttl.is_none() {
                    // TTL flags on a record without a ttl: ZooKeeper's implied ttl of -1,
                    // which validation refuses (and which encodes back as a createTTL).
                    c.ttl = Some(-1);
                }
                writes.push(MultiOp::Create(c))
            }
            OpCode::Delete | OpCode::DeleteContainer => writes.push(MultiOp::Delete {
                path: r.read_string()?,
                version: r.read_i32()?,
            }),
            OpCode::SetData => writes.push(MultiOp::SetData {
                path: r.read_string()?,
                data: r.read_opt_buffer()?.map(<[u8]>::to_vec),
                version: r.read_i32()?,
            }),
            OpCode::Check => writes.push(MultiOp::Check {
                path: r.read_string()?,
                version: r.read_i32()?,
            }),
            OpCode::GetChildren => {
                let (path, _watch) = path_watch(r)?;
                reads.push(ReadOp::GetChildren { path })
            }
            OpCode::GetData => {
                let (path, _watch) = path_watch(r)?;
                reads.push(ReadOp::GetData { path })
            }
            _ => return Err(DecodeError::Invalid("invalid type of op in multi")),
        }
    }
    match code {
        OpCode::Multi if reads.is_empty() => Ok(Request::Multi(writes)),
        OpCode::MultiRead if writes.is_empty() => Ok(Request::MultiRead(reads)),
        _ => Err(DecodeError::Invalid(
            "multi mixes read and write operations",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(op: OpCode, req: Request) {
        let mut w = Writer::new();
        req.encode_body(&mut w);
        assert_eq!(Request::decode(op.code(), &w.buf).unwrap(), req);
    }

    #[test]
    fn requests_round_trip() {
        round_trip(
            OpCode::CreateTtl,
            Request::Create(CreateRequest {
                op: OpCode::CreateTtl,
                path: "/t".into(),
                data: Some(b"x".to_vec()),
                acl: Acl::open_unsafe(),
                flags: 5,
                ttl: Some(1000),
            }),
        );
        round_trip(
            OpCode::Multi,
            Request::Multi(vec![
                MultiOp::Check {
                    path: "/a".into(),
                    version: 1,
                },
                MultiOp::Delete {
                    path: "/b".into(),
                    version: -1,
                },
            ]),
        );
        round_trip(
            OpCode::MultiRead,
            Request::MultiRead(vec![ReadOp::GetData { path: "/a".into() }]),
        );
        round_trip(
            OpCode::SetWatches2,
            Request::SetWatches(SetWatches {
                relative_zxid: 7,
                data: vec!["/a".into()],
                persistent: vec!["/p".into()],
                v2: true,
                ..Default::default()
            }),
        );
    }

    #[test]
    fn mixed_multi_is_an_error() {
        let mut w = Writer::new();
        MultiHeader {
            op: 4,
            done: false,
            err: -1,
        }
        .write(&mut w);
        w.write_string("/a");
        w.write_bool(false);
        MultiHeader::END.write(&mut w);
        assert!(Request::decode(14, &w.buf).is_err());
        assert!(matches!(
            Request::decode(22, &w.buf),
            Ok(Request::MultiRead(_))
        ));
    }

    #[test]
    fn unknown_opcodes_decode_as_unknown() {
        assert_eq!(Request::decode(999, &[]).unwrap(), Request::Unknown(999));
        assert_eq!(Request::decode(0, &[]).unwrap(), Request::Unknown(0));
    }
}
