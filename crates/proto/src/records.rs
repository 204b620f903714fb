//! Client-protocol records (`zookeeper.jute`): the handshake, headers, Stat, ACLs, watch
//! events and the multi framing. Layouts follow ZooKeeper's `zookeeper.jute`;
//! each record here writes its fields in declaration order.

use crate::jute::{DecodeError, Reader, Record, Result, Writer};

/// An identity: `scheme:id`, e.g. `world:anyone`, `digest:alice:base64`, `ip:10.0.0.0/8`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Id {
    pub fn new(scheme: &str, id: &str) -> Id {
        Id {
            scheme: scheme.to_owned(),
            id: id.to_owned(),
        }
    }
}

impl Record for Id {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Id {
            scheme: r.read_string()?,
            id: r.read_string()?,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.write_string(&self.scheme);
        w.write_string(&self.id);
    }
}

/// One ACL entry: permission bits for an identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

impl Acl {
    pub fn new(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }

    /// `OPEN_ACL_UNSAFE`.
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl::new(crate::perms::ALL, "world", "anyone")]
    }

    /// `READ_ACL_UNSAFE`.
    pub fn read_unsafe() -> Vec<Acl> {
        vec![Acl::new(crate::perms::READ, "world", "anyone")]
    }
}

impl Record for Acl {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Acl {
            perms: r.read_i32()?,
            id: Id::read(r)?,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.perms);
        self.id.write(w);
    }
}

pub fn read_acls(r: &mut Reader<'_>) -> Result<Vec<Acl>> {
    r.read_vec(12, Acl::read)
}

/// An ACL list in a client's request, read as ZooKeeper takes it. Some clients (kazoo) send
/// every empty string as null, so `CREATOR_ALL_ACL`'s `auth` entry arrives with a null id:
/// that id is never looked at and reads as "". A null scheme reads as "", which no provider
/// knows (INVALIDACL, as in ZooKeeper); a null id in any other scheme is undecodable
/// (MARSHALLINGERROR, ZooKeeper's NullPointerException).
pub fn read_request_acls(r: &mut Reader<'_>) -> Result<Vec<Acl>> {
    r.read_vec(12, |r| {
        let perms = r.read_i32()?;
        let scheme = r.read_opt_string()?.unwrap_or_default();
        let offset = r.pos();
        let id = match r.read_opt_string()? {
            Some(id) => id,
            None if scheme == "auth" || scheme.is_empty() => String::new(),
            None => return Err(DecodeError::UnexpectedNull { offset }),
        };
        Ok(Acl {
            perms,
            id: Id { scheme, id },
        })
    })
}

pub fn write_acls(w: &mut Writer, acls: &[Acl]) {
    w.write_vec(acls, |w, a| a.write(w));
}

/// The Stat returned to clients (68 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

impl Record for Stat {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Stat {
            czxid: r.read_i64()?,
            mzxid: r.read_i64()?,
            ctime: r.read_i64()?,
            mtime: r.read_i64()?,
            version: r.read_i32()?,
            cversion: r.read_i32()?,
            aversion: r.read_i32()?,
            ephemeral_owner: r.read_i64()?,
            data_length: r.read_i32()?,
            num_children: r.read_i32()?,
            pzxid: r.read_i64()?,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.write_i64(self.czxid);
        w.write_i64(self.mzxid);
        w.write_i64(self.ctime);
        w.write_i64(self.mtime);
        w.write_i32(self.version);
        w.write_i32(self.cversion);
        w.write_i32(self.aversion);
        w.write_i64(self.ephemeral_owner);
        w.write_i32(self.data_length);
        w.write_i32(self.num_children);
        w.write_i64(self.pzxid);
    }
}

/// The first frame a client sends. `read_only` is `None` when the client sent the old 44-byte
/// form; the reply must then omit the flag too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: Option<bool>,
}

impl Record for ConnectRequest {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let protocol_version = r.read_i32()?;
        let last_zxid_seen = r.read_i64()?;
        let timeout_ms = r.read_i32()?;
        let session_id = r.read_i64()?;
        let passwd = r.read_buffer()?.to_vec();
        let read_only = if r.remaining() > 0 {
            Some(r.read_bool()?)
        } else {
            None
        };
        Ok(ConnectRequest {
            protocol_version,
            last_zxid_seen,
            timeout_ms,
            session_id,
            passwd,
            read_only,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.protocol_version);
        w.write_i64(self.last_zxid_seen);
        w.write_i32(self.timeout_ms);
        w.write_i64(self.session_id);
        w.write_buffer(&self.passwd);
        if let Some(ro) = self.read_only {
            w.write_bool(ro);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: Option<bool>,
}

impl Record for ConnectResponse {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(ConnectResponse {
            protocol_version: r.read_i32()?,
            timeout_ms: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: r.read_buffer()?.to_vec(),
            read_only: if r.remaining() > 0 {
                Some(r.read_bool()?)
            } else {
                None
            },
        })
    }
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.protocol_version);
        w.write_i32(self.timeout_ms);
        w.write_i64(self.session_id);
        w.write_buffer(&self.passwd);
        if let Some(ro) = self.read_only {
            w.write_bool(ro);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub xid: i32,
    pub op: i32,
}

impl Record for RequestHeader {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(RequestHeader {
            xid: r.read_i32()?,
            op: r.read_i32()?,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.xid);
        w.write_i32(self.op);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

impl Record for ReplyHeader {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(ReplyHeader {
            xid: r.read_i32()?,
            zxid: r.read_i64()?,
            err: r.read_i32()?,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.xid);
        w.write_i64(self.zxid);
        w.write_i32(self.err);
    }
}

/// A watch notification body (after a ReplyHeader with xid -1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
}

impl Record for WatcherEvent {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(WatcherEvent {
            event_type: r.read_i32()?,
            state: r.read_i32()?,
            path: r.read_string()?,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.event_type);
        w.write_i32(self.state);
        w.write_string(&self.path);
    }
}

/// Precedes each op in a multi request and each result in a multi response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiHeader {
    pub op: i32,
    pub done: bool,
    pub err: i32,
}

impl MultiHeader {
    pub const END: MultiHeader = MultiHeader {
        op: -1,
        done: true,
        err: -1,
    };
}

impl Record for MultiHeader {
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(MultiHeader {
            op: r.read_i32()?,
            done: r.read_bool()?,
            err: r.read_i32()?,
        })
    }
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.op);
        w.write_bool(self.done);
        w.write_i32(self.err);
    }
}

/// `AuthPacket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPacket {
    pub auth_type: i32,
    pub scheme: String,
    pub auth: Vec<u8>,
}

impl Record for AuthPacket {
    /// A null scheme or credential reads as the scheme "", which no provider takes: ZooKeeper
    /// answers both with AUTHFAILED and closes the connection.
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let auth_type = r.read_i32()?;
        let scheme = r.read_opt_string()?;
        let auth = r.read_opt_buffer()?;
        Ok(match (scheme, auth) {
            (Some(scheme), Some(auth)) => AuthPacket {
                auth_type,
                scheme,
                auth: auth.to_vec(),
            },
            _ => AuthPacket {
                auth_type,
                scheme: String::new(),
                auth: Vec::new(),
            },
        })
    }
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.auth_type);
        w.write_string(&self.scheme);
        w.write_buffer(&self.auth);
    }
}

/// Insist that a record consumed its whole frame body where ZooKeeper would also fail.
pub fn expect_end(r: &Reader<'_>) -> Result<()> {
    if r.remaining() == 0 {
        Ok(())
    } else {
        Err(DecodeError::Invalid("trailing bytes after record"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_request_sizes_match_the_wire() {
        let mut req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms: 30000,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        };
        assert_eq!(req.encode().len(), 45);
        req.read_only = None;
        assert_eq!(req.encode().len(), 44);
        assert_eq!(ConnectRequest::decode(&req.encode()).unwrap(), req);
    }

    #[test]
    fn stat_is_68_bytes() {
        assert_eq!(Stat::default().encode().len(), 68);
    }
}
