//! The Java `ZooKeeper` methods zkCli calls, over [`Client`]: client-side checks in the same
//! order (path, TTL, ACL), the chroot, the request, and the reply decoded. A non-zero error
//! code becomes a [`KeeperError`] carrying the path the Java client would put in its
//! `KeeperException` (the client path as given, or none).

use zooid_proto::{
    read_acls, watcher_type, Acl, CreateRequest, DecodeError, ErrorCode, MultiHeader, MultiOp,
    OpCode, Reader, Record, Request, Stat,
};

use super::client::{Client, Reply, WatchOp};
use super::watches::WatchReg;

/// A `KeeperException`: a ZooKeeper error code and maybe a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperError {
    pub code: i32,
    pub path: Option<String>,
}

impl KeeperError {
    pub fn new(code: i32, path: Option<&str>) -> KeeperError {
        KeeperError {
            code,
            path: path.map(str::to_owned),
        }
    }

    fn code_message(&self) -> String {
        let Some(code) = ErrorCode::from_i32(self.code) else {
            return format!("Unknown error {}", self.code);
        };
        use ErrorCode as E;
        match code {
            E::Ok => "ok",
            E::SystemError => "SystemError",
            E::RuntimeInconsistency => "RuntimeInconsistency",
            E::DataInconsistency => "DataInconsistency",
            E::ConnectionLoss => "ConnectionLoss",
            E::MarshallingError => "MarshallingError",
            E::NewConfigNoQuorum => "NewConfigNoQuorum",
            E::ReconfigInProgress => "ReconfigInProgress",
            E::Unimplemented => "Unimplemented",
            E::OperationTimeout => "OperationTimeout",
            E::BadArguments => "BadArguments",
            E::ApiError => "APIError",
            E::NoNode => "NoNode",
            E::NoAuth => "NoAuth",
            E::BadVersion => "BadVersion",
            E::NoChildrenForEphemerals => "NoChildrenForEphemerals",
            E::NodeExists => "NodeExists",
            E::InvalidAcl => "InvalidACL",
            E::AuthFailed => "AuthFailed",
            E::NotEmpty => "Directory not empty",
            E::SessionExpired => "Session expired",
            E::InvalidCallback => "Invalid callback",
            E::SessionMoved => "Session moved",
            E::NotReadOnly => "Not a read-only call",
            E::EphemeralOnLocalSession => "Ephemeral node on local session",
            E::NoWatcher => "No such watcher",
            E::ReconfigDisabled => "Reconfig is disabled",
            E::SessionClosedRequireSaslAuth => {
                "Session closed because client failed to authenticate"
            }
            E::QuotaExceeded => "Quota has exceeded",
            E::ThrottledOp => "Op throttled due to high load",
            E::UnknownSession => "Unknown error UNKNOWNSESSION",
            E::RequestTimeout => "Unknown error REQUESTTIMEOUT",
        }
        .to_owned()
    }

    /// `KeeperException#getMessage`.
    pub fn message(&self) -> String {
        match self.path.as_deref() {
            None | Some("") => format!("KeeperErrorCode = {}", self.code_message()),
            Some(p) => format!("KeeperErrorCode = {} for {p}", self.code_message()),
        }
    }

    /// What zkCli prints for it (`CliWrapperException`).
    pub fn cli_message(&self) -> String {
        let path = self.path.as_deref().unwrap_or("null");
        use ErrorCode as E;
        match ErrorCode::from_i32(self.code) {
            Some(E::NoNode) => format!("Node does not exist: {path}"),
            Some(E::NoChildrenForEphemerals) => format!("Ephemerals cannot have children: {path}"),
            Some(E::NodeExists) => format!("Node already exists: {path}"),
            Some(E::NotEmpty) => format!("Node not empty: {path}"),
            Some(E::NotReadOnly) => format!("Not a read-only call: {path}"),
            Some(E::InvalidAcl) => format!("Acl is not valid : {path}"),
            Some(E::NoAuth) => format!("Insufficient permission : {path}"),
            Some(E::BadArguments) => format!("Arguments are not valid : {path}"),
            Some(E::BadVersion) => format!("version No is not valid : {path}"),
            Some(E::ReconfigInProgress) => {
                "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)"
                    .into()
            }
            Some(E::NewConfigNoQuorum) => "No quorum of new config is connected and up-to-date with the leader of last commmitted config - try invoking reconfiguration after new servers are connected and synced".into(),
            Some(E::QuotaExceeded) => format!("Quota has exceeded : {path}"),
            _ => self.message(),
        }
    }
}

/// Why a call did not succeed: the client refused it (`IllegalArgumentException`, message
/// given) or the server did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZkError {
    IllegalArgument(String),
    Keeper(KeeperError),
}

impl From<KeeperError> for ZkError {
    fn from(e: KeeperError) -> Self {
        ZkError::Keeper(e)
    }
}

pub type ZkResult<T> = Result<T, ZkError>;

fn check_path(path: &str) -> ZkResult<()> {
    super::format::validate_path(path).map_err(ZkError::IllegalArgument)
}

/// A reply body that does not decode is reported as MARSHALLINGERROR.
fn undecodable(path: Option<&str>) -> impl Fn(DecodeError) -> ZkError + '_ {
    move |_| ZkError::Keeper(KeeperError::new(ErrorCode::MarshallingError.code(), path))
}

/// Create modes (`CreateMode.toFlag`).
pub mod create_mode {
    pub const PERSISTENT: i32 = 0;
    pub const EPHEMERAL: i32 = 1;
    pub const PERSISTENT_SEQUENTIAL: i32 = 2;
    pub const EPHEMERAL_SEQUENTIAL: i32 = 3;
    pub const CONTAINER: i32 = 4;
    pub const PERSISTENT_WITH_TTL: i32 = 5;
    pub const PERSISTENT_SEQUENTIAL_WITH_TTL: i32 = 6;
}

/// The largest TTL (`EphemeralType.TTL.maxValue()`).
pub const MAX_TTL_MS: i64 = 0xFF_FFFF_FFFF;

/// The ZooKeeper calls zkCli makes, on one session.
#[derive(Clone)]
pub struct Zk {
    pub client: Client,
}

impl Zk {
    async fn call(&self, req: Request, watch: WatchOp) -> Reply {
        self.client.call(req, watch).await
    }

    fn sp(&self, path: &str) -> String {
        self.client.server_path(path)
    }

    /// The reply if it succeeded, else the error it carries.
    fn checked(reply: Reply, path: Option<&str>) -> ZkResult<Reply> {
        if reply.err != 0 {
            return Self::fail(&reply, path);
        }
        Ok(reply)
    }

    fn fail<T>(reply: &Reply, path: Option<&str>) -> ZkResult<T> {
        Err(ZkError::Keeper(KeeperError::new(reply.err, path)))
    }

    /// `create(path, data, acl, mode[, stat, ttl])`: the created node's client path.
    pub async fn create(
        &self,
        path: &str,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        flags: i32,
        ttl: Option<i64>,
    ) -> ZkResult<String> {
        let sequential = matches!(
            flags,
            create_mode::PERSISTENT_SEQUENTIAL
                | create_mode::EPHEMERAL_SEQUENTIAL
                | create_mode::PERSISTENT_SEQUENTIAL_WITH_TTL
        );
        super::format::validate_path_seq(path, sequential).map_err(ZkError::IllegalArgument)?;
        let is_ttl = matches!(
            flags,
            create_mode::PERSISTENT_WITH_TTL | create_mode::PERSISTENT_SEQUENTIAL_WITH_TTL
        );
        match ttl {
            Some(t) if is_ttl && (t <= 0 || t > MAX_TTL_MS) => {
                return Err(ZkError::IllegalArgument(format!(
                    "ttl must be positive and cannot be larger than: {MAX_TTL_MS}"
                )))
            }
            _ => {}
        }
        if acl.is_empty() {
            return Err(KeeperError::new(ErrorCode::InvalidAcl.code(), None).into());
        }
        let op = if is_ttl {
            OpCode::CreateTtl
        } else if flags == create_mode::CONTAINER {
            OpCode::CreateContainer
        } else {
            OpCode::Create
        };
        let req = Request::Create(CreateRequest {
            op,
            path: self.sp(path),
            data,
            acl,
            flags,
            ttl: if is_ttl { ttl } else { None },
        });
        let reply = self.call(req, WatchOp::None).await;
        let reply = Self::checked(reply, Some(path))?;
        let created = Reader::new(&reply.body)
            .read_string()
            .map_err(undecodable(Some(path)))?;
        Ok(self.client.client_path(&created))
    }

    pub async fn delete(&self, path: &str, version: i32) -> ZkResult<()> {
        check_path(path)?;
        let reply = self
            .call(
                Request::Delete {
                    path: self.sp(path),
                    version,
                },
                WatchOp::None,
            )
            .await;
        Self::checked(reply, Some(path))?;
        Ok(())
    }

    /// `exists`: `None` for a missing node (an exist watch is then left).
    pub async fn exists(&self, path: &str, watch: bool) -> ZkResult<Option<Stat>> {
        check_path(path)?;
        let w = if watch {
            WatchOp::Register(WatchReg::Exists(path.to_owned()))
        } else {
            WatchOp::None
        };
        let reply = self
            .call(
                Request::Exists {
                    path: self.sp(path),
                    watch,
                },
                w,
            )
            .await;
        if reply.err == ErrorCode::NoNode.code() {
            return Ok(None);
        }
        if reply.err != 0 {
            return Self::fail(&reply, Some(path));
        }
        Ok(Some(
            Stat::decode(&reply.body).map_err(undecodable(Some(path)))?,
        ))
    }

    async fn get_data_raw(
        &self,
        client_path: &str,
        server_path: String,
        watch: bool,
    ) -> ZkResult<(Option<Vec<u8>>, Stat)> {
        let w = if watch {
            WatchOp::Register(WatchReg::Data(client_path.to_owned()))
        } else {
            WatchOp::None
        };
        let reply = self
            .call(
                Request::GetData {
                    path: server_path,
                    watch,
                },
                w,
            )
            .await;
        if reply.err != 0 {
            return Self::fail(&reply, Some(client_path));
        }
        let mut r = Reader::new(&reply.body);
        let bad = undecodable(Some(client_path));
        let data = r.read_opt_buffer().map_err(&bad)?.map(<[u8]>::to_vec);
        let stat = Stat::read(&mut r).map_err(&bad)?;
        Ok((data, stat))
    }

    pub async fn get_data(&self, path: &str, watch: bool) -> ZkResult<(Option<Vec<u8>>, Stat)> {
        check_path(path)?;
        self.get_data_raw(path, self.sp(path), watch).await
    }

    /// `getConfig`: the data of /zookeeper/config, never under the chroot.
    pub async fn get_config(&self, watch: bool) -> ZkResult<(Option<Vec<u8>>, Stat)> {
        const CONFIG: &str = "/zookeeper/config";
        self.get_data_raw(CONFIG, CONFIG.to_owned(), watch).await
    }

    pub async fn set_data(&self, path: &str, data: Vec<u8>, version: i32) -> ZkResult<Stat> {
        check_path(path)?;
        let reply = self
            .call(
                Request::SetData {
                    path: self.sp(path),
                    data: Some(data),
                    version,
                },
                WatchOp::None,
            )
            .await;
        let reply = Self::checked(reply, Some(path))?;
        Stat::decode(&reply.body).map_err(undecodable(Some(path)))
    }

    pub async fn get_acl(&self, path: &str) -> ZkResult<(Vec<Acl>, Stat)> {
        check_path(path)?;
        let reply = self
            .call(
                Request::GetAcl {
                    path: self.sp(path),
                },
                WatchOp::None,
            )
            .await;
        let reply = Self::checked(reply, Some(path))?;
        let mut r = Reader::new(&reply.body);
        let bad = undecodable(Some(path));
        let acl = read_acls(&mut r).map_err(&bad)?;
        let stat = Stat::read(&mut r).map_err(&bad)?;
        Ok((acl, stat))
    }

    pub async fn set_acl(&self, path: &str, acl: Vec<Acl>, version: i32) -> ZkResult<Stat> {
        check_path(path)?;
        if acl.is_empty() {
            return Err(KeeperError::new(ErrorCode::InvalidAcl.code(), None).into());
        }
        let reply = self
            .call(
                Request::SetAcl {
                    path: self.sp(path),
                    acl,
                    version,
                },
                WatchOp::None,
            )
            .await;
        let reply = Self::checked(reply, Some(path))?;
        Stat::decode(&reply.body).map_err(undecodable(Some(path)))
    }

    /// getChildren (op 8), or getChildren2 (op 12) when the Stat is wanted.
    pub async fn get_children(
        &self,
        path: &str,
        watch: bool,
        with_stat: bool,
    ) -> ZkResult<(Vec<String>, Option<Stat>)> {
        check_path(path)?;
        let w = if watch {
            WatchOp::Register(WatchReg::Child(path.to_owned()))
        } else {
            WatchOp::None
        };
        let sp = self.sp(path);
        let req = if with_stat {
            Request::GetChildren2 { path: sp, watch }
        } else {
            Request::GetChildren { path: sp, watch }
        };
        let reply = self.call(req, w).await;
        let reply = Self::checked(reply, Some(path))?;
        let mut r = Reader::new(&reply.body);
        let bad = undecodable(Some(path));
        let children = r.read_vec(4, |r| r.read_string()).map_err(&bad)?;
        let stat = if with_stat {
            Some(Stat::read(&mut r).map_err(&bad)?)
        } else {
            None
        };
        Ok((children, stat))
    }

    /// `sync`: the result code (zkCli prints it rather than failing).
    pub async fn sync(&self, path: &str) -> ZkResult<i32> {
        check_path(path)?;
        let reply = self
            .call(
                Request::Sync {
                    path: self.sp(path),
                },
                WatchOp::None,
            )
            .await;
        Ok(reply.err)
    }

    /// `addWatch`; `mode` is 0 (PERSISTENT) or 1 (PERSISTENT_RECURSIVE).
    pub async fn add_watch(&self, path: &str, mode: i32) -> ZkResult<()> {
        check_path(path)?;
        let reg = if mode == 0 {
            WatchReg::Persistent(path.to_owned())
        } else {
            WatchReg::PersistentRecursive(path.to_owned())
        };
        let reply = self
            .call(
                Request::AddWatch {
                    path: self.sp(path),
                    mode,
                },
                WatchOp::Register(reg),
            )
            .await;
        Self::checked(reply, Some(path))?;
        Ok(())
    }

    /// `removeAllWatches(path, type, local)`.
    pub async fn remove_all_watches(&self, path: &str, kind: i32, local: bool) -> ZkResult<()> {
        check_path(path)?;
        debug_assert!((watcher_type::CHILDREN..=watcher_type::ANY).contains(&kind));
        let reply = self
            .call(
                Request::RemoveWatches {
                    path: self.sp(path),
                    watcher_type: kind,
                },
                WatchOp::Remove {
                    path: path.to_owned(),
                    kind,
                    local,
                },
            )
            .await;
        Self::checked(reply, Some(path))?;
        Ok(())
    }

    /// `getEphemerals(prefix)`: the prefix is sent as given (no chroot), errors carry no path.
    pub async fn get_ephemerals(&self, prefix: &str) -> ZkResult<Vec<String>> {
        check_path(prefix)?;
        let reply = self
            .call(
                Request::GetEphemerals {
                    prefix: prefix.to_owned(),
                },
                WatchOp::None,
            )
            .await;
        if reply.err != 0 {
            return Self::fail(&reply, None);
        }
        Reader::new(&reply.body)
            .read_vec(4, |r| r.read_string())
            .map_err(undecodable(None))
    }

    pub async fn get_all_children_number(&self, path: &str) -> ZkResult<i32> {
        check_path(path)?;
        let reply = self
            .call(
                Request::GetAllChildrenNumber {
                    path: self.sp(path),
                },
                WatchOp::None,
            )
            .await;
        let reply = Self::checked(reply, Some(path))?;
        Reader::new(&reply.body)
            .read_i32()
            .map_err(undecodable(Some(path)))
    }

    /// `whoAmI`: (scheme, user) pairs.
    pub async fn who_am_i(&self) -> ZkResult<Vec<(String, String)>> {
        let reply = self.call(Request::WhoAmI, WatchOp::None).await;
        if reply.err != 0 {
            return Self::fail(&reply, None);
        }
        Reader::new(&reply.body)
            .read_vec(8, |r| Ok((r.read_string()?, r.read_string()?)))
            .map_err(undecodable(None))
    }

    /// `multi`: succeeds only if every op did; else the first failed op's code (no path).
    pub async fn multi(&self, ops: Vec<MultiOp>) -> ZkResult<()> {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                MultiOp::Delete { path, version } => MultiOp::Delete {
                    path: self.sp(&path),
                    version,
                },
                other => other,
            })
            .collect();
        let reply = self.call(Request::Multi(ops), WatchOp::None).await;
        if reply.err != 0 {
            return Self::fail(&reply, None);
        }
        match first_multi_error(&reply.body) {
            Ok(0) => Ok(()),
            Ok(code) => Err(KeeperError::new(code, None).into()),
            Err(_) => Err(KeeperError::new(ErrorCode::MarshallingError.code(), None).into()),
        }
    }

    /// `ZooKeeperAdmin.reconfigure`: the new configuration's data and Stat.
    pub async fn reconfig(
        &self,
        joining: Option<String>,
        leaving: Option<String>,
        members: Option<String>,
        version: i64,
    ) -> ZkResult<(Option<Vec<u8>>, Stat)> {
        let reply = self
            .call(
                Request::Reconfig {
                    joining,
                    leaving,
                    new_members: members,
                    config_id: version,
                },
                WatchOp::None,
            )
            .await;
        if reply.err != 0 {
            return Self::fail(&reply, Some(""));
        }
        let mut r = Reader::new(&reply.body);
        let bad = undecodable(None);
        let data = r.read_opt_buffer().map_err(&bad)?.map(<[u8]>::to_vec);
        let stat = Stat::read(&mut r).map_err(&bad)?;
        Ok((data, stat))
    }
}

/// The first non-zero error among a multi reply's results (0 if none).
fn first_multi_error(body: &[u8]) -> Result<i32, DecodeError> {
    let mut r = Reader::new(body);
    loop {
        let h = MultiHeader::read(&mut r)?;
        if h.done {
            return Ok(0);
        }
        if h.op == -1 {
            // An ErrorResult.
            let err = r.read_i32()?;
            if err != 0 {
                return Ok(err);
            }
            continue;
        }
        match OpCode::from_i32(h.op) {
            Some(OpCode::Create) => {
                r.read_string()?;
            }
            Some(OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl) => {
                r.read_string()?;
                Stat::read(&mut r)?;
            }
            Some(OpCode::SetData) => {
                Stat::read(&mut r)?;
            }
            Some(OpCode::Delete | OpCode::Check) => {}
            _ => return Err(DecodeError::Invalid("unexpected result in a multi reply")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zooid_proto::Writer;

    #[test]
    fn keeper_messages_match_java() {
        let e = KeeperError::new(-101, Some("/a"));
        assert_eq!(e.message(), "KeeperErrorCode = NoNode for /a");
        assert_eq!(e.cli_message(), "Node does not exist: /a");
        let e = KeeperError::new(-4, Some("/"));
        assert_eq!(e.cli_message(), "KeeperErrorCode = ConnectionLoss for /");
        let e = KeeperError::new(-114, None);
        assert_eq!(e.message(), "KeeperErrorCode = InvalidACL");
        assert_eq!(e.cli_message(), "Acl is not valid : null");
        let e = KeeperError::new(-123, Some(""));
        assert_eq!(e.cli_message(), "KeeperErrorCode = Reconfig is disabled");
        let e = KeeperError::new(-121, Some("/q"));
        assert_eq!(e.cli_message(), "KeeperErrorCode = No such watcher for /q");
    }

    #[test]
    fn multi_replies_report_the_first_failure() {
        let mut w = Writer::new();
        for (op, err) in [(2, 0), (-1, -111), (-1, -2)] {
            MultiHeader {
                op,
                done: false,
                err,
            }
            .write(&mut w);
            if op == -1 {
                w.write_i32(err);
            }
        }
        MultiHeader::END.write(&mut w);
        assert_eq!(first_multi_error(&w.into_inner()).unwrap(), -111);
        let mut w = Writer::new();
        MultiHeader {
            op: 2,
            done: false,
            err: 0,
        }
        .write(&mut w);
        MultiHeader::END.write(&mut w);
        assert_eq!(first_multi_error(&w.into_inner()).unwrap(), 0);
    }
}
