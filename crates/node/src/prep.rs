//! Turning a write request into a txn (ZooKeeper's PrepRequestProcessor).
//!
//! Validation runs against the committed tree seen through the pending view: the changes of
//! txns that are assigned a zxid but not yet applied. Each check happens in ZooKeeper's order,
//! because the first failing check decides the error code a client sees (e.g. an empty ACL is
//! INVALIDACL even under a missing parent). A multi validates its ops one after another on a
//! private overlay and only then publishes the overlay to the pending view.

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use zooid_proto::{
    perms, Acl, CreateKind, CreateMode, CreateRequest, ErrorCode, Id, MultiOp, Txn, MAX_TTL_MS,
};
use zooid_tree::{acl, digest_prefix, digest_with_stat, DataTree, Owner, StatPersisted};

use crate::{auth, path};

/// What prep needs to know of a node, and the CRC state of its path and data so its digest
/// can be recomputed after a stat change.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub stat: StatPersisted,
    pub acl: Arc<[Acl]>,
    pub num_children: i32,
    pub digest_prefix: Option<crc32fast::Hasher>,
}

impl NodeView {
    fn digest(&self) -> u64 {
        digest_with_stat(&self.digest_prefix, &self.stat)
    }
}

/// Changes of txns in flight, by path; `None` = deleted. Each remembers the zxid that wrote it
/// so it can be dropped once that txn is applied. `digest_delta` is what the in-flight txns
/// will add to the tree digest, so the digest after a new txn is known before it is logged.
#[derive(Debug, Default)]
pub struct PendingView {
    records: FxHashMap<String, (i64, Option<NodeView>)>,
    /// The paths each txn wrote, in zxid order, so applying one drops its records without
    /// scanning all of them (hundreds under load, once per txn).
    written: VecDeque<(i64, Vec<String>)>,
    digest_delta: u64,
}

impl PendingView {
    /// Forget records written by `zxid` (its txn, which changed the digest by
    /// `digest_delta`, is now in the tree).
    pub fn applied(&mut self, zxid: i64, digest_delta: u64) {
        while let Some((z, _)) = self.written.front() {
            if *z > zxid {
                break;
            }
            let (z, paths) = self.written.pop_front().expect("front exists");
            for p in paths {
                // A later txn's record for the same path stays.
                if self.records.get(&p).is_some_and(|(w, _)| *w == z) {
                    self.records.remove(&p);
                }
            }
        }
        self.digest_delta = self.digest_delta.wrapping_sub(digest_delta);
    }

    /// The tree digest once every in-flight txn is applied.
    pub fn digest(&self, tree: &DataTree) -> i64 {
        (tree.digest() as u64).wrapping_add(self.digest_delta) as i64
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// In-flight changes in zxid order: (path, Some(ephemeral owner) or None if deleted).
    fn changes_in_order(&self) -> Vec<(&str, Option<i64>)> {
        let mut v: Vec<(i64, &str, Option<i64>)> = self
            .records
            .iter()
            .map(|(p, (z, n))| (*z, p.as_str(), n.as_ref().map(|n| n.stat.ephemeral_owner)))
            .collect();
        v.sort();
        v.into_iter().map(|(_, p, o)| (p, o)).collect()
    }

    /// Whether a deletion of `path` is already in flight.
    pub fn deleting(&self, path: &str) -> bool {
        matches!(self.records.get(path), Some((_, None)))
    }
}

/// The pending view plus a private overlay for one request, with the digest change the
/// request makes.
pub struct Overlay<'a> {
    tree: &'a DataTree,
    pending: &'a PendingView,
    local: FxHashMap<String, Option<NodeView>>,
    digest_delta: u64,
}

/// What an overlay changed: the node views to publish and the digest delta.
#[derive(Default)]
pub struct Changes {
    views: FxHashMap<String, Option<NodeView>>,
    pub digest_delta: u64,
}

impl<'a> Overlay<'a> {
    pub fn new(tree: &'a DataTree, pending: &'a PendingView) -> Self {
        Overlay {
            tree,
            pending,
            local: FxHashMap::default(),
            digest_delta: 0,
        }
    }

    pub fn get(&self, path: &str) -> Option<NodeView> {
        if let Some(v) = self.local.get(path) {
            return v.clone();
        }
        if let Some((_, v)) = self.pending.records.get(path) {
            return v.clone();
        }
        self.tree.get(path).map(|n| NodeView {
            stat: n.stat,
            acl: self.tree.acls.shared(n.acl),
            num_children: n.children.len() as i32,
            digest_prefix: digest_prefix(path, n.data.as_deref()),
        })
    }

    fn set(&mut self, path: &str, v: Option<NodeView>) {
        let old = self.get(path).map_or(0, |o| o.digest());
        let new = v.as_ref().map_or(0, NodeView::digest);
        self.digest_delta = self.digest_delta.wrapping_add(new).wrapping_sub(old);
        self.local.insert(path.to_owned(), v);
    }

    pub fn into_changes(self) -> Changes {
        Changes {
            views: self.local,
            digest_delta: self.digest_delta,
        }
    }
}

/// Publish the changes of a validated txn under its `zxid` (separate from the overlay so its
/// borrow of the pending view has ended).
pub fn publish(changes: Changes, zxid: i64, pending: &mut PendingView) {
    let mut paths = Vec::with_capacity(changes.views.len());
    for (p, v) in changes.views {
        paths.push(p.clone());
        pending.records.insert(p, (zxid, v));
    }
    pending.written.push_back((zxid, paths));
    pending.digest_delta = pending.digest_delta.wrapping_add(changes.digest_delta);
}

/// Who is asking, and the server settings prep needs.
pub struct Ctx<'a> {
    pub session: i64,
    pub auth: &'a [Id],
    pub zxid: i64,
    pub now_ms: i64,
    pub extended_types: bool,
    /// `enforceQuota`: hard quota limits refuse creates and setData.
    pub enforce_quota: bool,
    /// The scheme of the certificate provider (`x509`), when TLS clients have one: its ids
    /// are valid in ACLs, and `auth` ACLs take a connection's ids of it as well as digest's.
    pub cert_scheme: Option<&'a str>,
    /// Whether the `sasl` scheme's provider is registered (its ids valid in ACLs, and
    /// taken by `auth` ACLs).
    pub sasl_scheme: bool,
}

fn check_quota(
    tree: &DataTree,
    path: &str,
    bytes_diff: i64,
    count_diff: i64,
    ctx: &Ctx,
) -> Result<(), ErrorCode> {
    if !ctx.enforce_quota {
        return Ok(());
    }
    tree.check_quota(path, bytes_diff, count_diff)
        .map_err(|_| ErrorCode::QuotaExceeded)
}

fn check_perm(acl: &[Acl], perm: i32, ctx: &Ctx) -> Result<(), ErrorCode> {
    if acl::check(acl, perm, ctx.auth) {
        Ok(())
    } else {
        Err(ErrorCode::NoAuth)
    }
}

fn next_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

fn is_special(path: &str) -> bool {
    matches!(
        path,
        "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config"
    )
}

/// `fixupACL`: dedupe, expand `auth`, validate schemes.
pub fn fixup_acl(acl: &[Acl], ctx: &Ctx) -> Result<Vec<Acl>, ErrorCode> {
    if acl.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out = Vec::with_capacity(acl.len());
    // Duplicates go (the first stays), each entry is copied once.
    for (i, a) in acl.iter().enumerate() {
        if acl[..i].contains(a) {
            continue;
        }
        match a.id.scheme.as_str() {
            "world" if a.id.id == "anyone" => out.push(a.clone()),
            "auth" => {
                let mut any = false;
                // In the order ZooKeeper's set of the connection's ids iterates.
                let ids = auth::java_set_order(ctx.auth);
                let authenticated = |i: &&Id| {
                    i.scheme == "digest"
                        || Some(i.scheme.as_str()) == ctx.cert_scheme
                        || (ctx.sasl_scheme && i.scheme == "sasl")
                };
                for id in ids.into_iter().filter(authenticated) {
                    any = true;
                    out.push(Acl {
                        perms: a.perms,
                        id: id.clone(),
                    });
                }
                if !any {
                    return Err(ErrorCode::InvalidAcl);
                }
            }
            "digest" if auth::digest_is_valid(&a.id.id) => out.push(a.clone()),
            "ip" if acl::ip_is_valid(&a.id.id) => out.push(a.clone()),
            scheme if Some(scheme) == ctx.cert_scheme && !a.id.id.is_empty() => out.push(a.clone()),
            "sasl" if ctx.sasl_scheme && crate::sasl::is_valid_id(&a.id.id) => out.push(a.clone()),
            _ => return Err(ErrorCode::InvalidAcl),
        }
    }
    Ok(out)
}

/// A validated create: the txn and the path actually created.
pub fn prep_create(c: &CreateRequest, ov: &mut Overlay, ctx: &Ctx) -> Result<Txn, ErrorCode> {
    use zooid_proto::OpCode;
    let mode = CreateMode::from_flags(c.flags).ok_or(ErrorCode::BadArguments)?;
    let ttl = c.ttl.unwrap_or(-1);
    if mode.ttl && !ctx.extended_types {
        return Err(ErrorCode::Unimplemented);
    }
    // ZooKeeper 3.8 lets createTTL with non-TTL flags and a negative ttl through to the
    // txn, where the server dies; refuse it like the non-negative case.
    if c.op == OpCode::CreateTtl && !mode.ttl {
        return Err(ErrorCode::BadArguments);
    }
    if mode.ttl {
        if ttl <= 0 || ttl > MAX_TTL_MS {
            return Err(ErrorCode::BadArguments);
        }
    } else if ttl >= 0 {
        return Err(ErrorCode::BadArguments);
    }
    let parent = path::parent_for_write(&c.path).ok_or(ErrorCode::BadArguments)?;
    let acl = fixup_acl(&c.acl, ctx)?;
    let pnode = ov.get(parent).ok_or(ErrorCode::NoNode)?;
    check_perm(&pnode.acl, perms::CREATE, ctx)?;
    let mut path = c.path.clone();
    if mode.sequential {
        path.push_str(&format!("{:010}", pnode.stat.cversion));
    }
    if !path::is_valid(&path) {
        return Err(ErrorCode::BadArguments);
    }
    if ov.get(&path).is_some() {
        return Err(ErrorCode::NodeExists);
    }
    if matches!(
        Owner::from_raw(pnode.stat.ephemeral_owner),
        Owner::Session(_)
    ) {
        return Err(ErrorCode::NoChildrenForEphemerals);
    }
    let data_len = c.data.as_ref().map_or(0, Vec::len) as i64;
    check_quota(ov.tree, &path, data_len, 1, ctx)?;
    let new_cversion = pnode.stat.cversion.wrapping_add(1);
    let (kind, owner) = match c.op {
        OpCode::CreateContainer => (CreateKind::Container, Owner::Container),
        OpCode::CreateTtl => (CreateKind::Ttl(ttl), Owner::Ttl(ttl)),
        op => (
            CreateKind::Plain {
                create2: op == OpCode::Create2,
            },
            if mode.ephemeral {
                Owner::Session(ctx.session)
            } else {
                Owner::None
            },
        ),
    };
    let mut parent_view = pnode;
    parent_view.num_children += 1;
    parent_view.stat.cversion = new_cversion;
    parent_view.stat.pzxid = ctx.zxid;
    ov.set(parent, Some(parent_view));
    ov.set(
        &path,
        Some(NodeView {
            stat: StatPersisted {
                czxid: ctx.zxid,
                mzxid: ctx.zxid,
                ctime: ctx.now_ms,
                mtime: ctx.now_ms,
                ephemeral_owner: owner.raw(),
                pzxid: ctx.zxid,
                ..Default::default()
            },
            acl: ov.tree.acls.share(&acl),
            num_children: 0,
            digest_prefix: digest_prefix(&path, c.data.as_deref()),
        }),
    );
    Ok(Txn::Create {
        kind,
        path,
        data: c.data.clone(),
        acl,
        ephemeral: mode.ephemeral && matches!(kind, CreateKind::Plain { .. }),
        parent_cversion: new_cversion,
    })
}

pub fn prep_delete(
    path_: &str,
    version: i32,
    ov: &mut Overlay,
    ctx: &Ctx,
) -> Result<Txn, ErrorCode> {
    let parent = path::parent_for_write(path_).ok_or(ErrorCode::BadArguments)?;
    if is_special(path_) {
        return Err(ErrorCode::BadArguments);
    }
    let pnode = ov.get(parent).ok_or(ErrorCode::NoNode)?;
    check_perm(&pnode.acl, perms::DELETE, ctx)?;
    let node = ov.get(path_).ok_or(ErrorCode::NoNode)?;
    next_version(node.stat.version, version)?;
    if node.num_children > 0 {
        return Err(ErrorCode::NotEmpty);
    }
    let mut parent_view = pnode;
    parent_view.num_children -= 1;
    parent_view.stat.pzxid = ctx.zxid;
    ov.set(parent, Some(parent_view));
    ov.set(path_, None);
    Ok(Txn::Delete {
        path: path_.to_owned(),
        container: false,
    })
}

pub fn prep_set_data(
    path_: &str,
    data: Option<&[u8]>,
    version: i32,
    ov: &mut Overlay,
    ctx: &Ctx,
) -> Result<Txn, ErrorCode> {
    if !path::is_valid(path_) {
        return Err(ErrorCode::BadArguments);
    }
    let mut node = ov.get(path_).ok_or(ErrorCode::NoNode)?;
    check_perm(&node.acl, perms::WRITE, ctx)?;
    if ctx.enforce_quota {
        let old = ov.tree.get(path_).map_or(0, |n| n.data_len()) as i64;
        check_quota(
            ov.tree,
            path_,
            data.map_or(0, <[u8]>::len) as i64 - old,
            0,
            ctx,
        )?;
    }
    let v = next_version(node.stat.version, version)?;
    node.stat.version = v;
    node.stat.mzxid = ctx.zxid;
    node.stat.mtime = ctx.now_ms;
    node.digest_prefix = digest_prefix(path_, data);
    ov.set(path_, Some(node));
    Ok(Txn::SetData {
        path: path_.to_owned(),
        data: data.map(<[u8]>::to_vec),
        version: v,
    })
}

/// A reconfig's txn: `/zookeeper/config` set to the new config `text` with version -1, as
/// ZooKeeper writes it, once the client may write there (only the super user: its ACL is
/// read-only for everyone).
pub fn prep_reconfig(text: Vec<u8>, ov: &mut Overlay, ctx: &Ctx) -> Result<Txn, ErrorCode> {
    let path_ = zooid_tree::CONFIG_NODE;
    let mut node = ov.get(path_).ok_or(ErrorCode::NoNode)?;
    check_perm(&node.acl, perms::WRITE, ctx)?;
    node.stat.version = -1;
    node.stat.mzxid = ctx.zxid;
    node.stat.mtime = ctx.now_ms;
    node.digest_prefix = digest_prefix(path_, Some(&text));
    ov.set(path_, Some(node));
    Ok(Txn::Reconfig {
        path: path_.to_owned(),
        data: Some(text),
        version: -1,
    })
}

pub fn prep_check(
    path_: &str,
    version: i32,
    ov: &mut Overlay,
    ctx: &Ctx,
) -> Result<Txn, ErrorCode> {
    if !path::is_valid(path_) {
        return Err(ErrorCode::BadArguments);
    }
    let node = ov.get(path_).ok_or(ErrorCode::NoNode)?;
    check_perm(&node.acl, perms::READ, ctx)?;
    Ok(Txn::Check {
        path: path_.to_owned(),
        version: next_version(node.stat.version, version)?,
    })
}

pub fn prep_set_acl(
    path_: &str,
    acl: &[Acl],
    version: i32,
    ov: &mut Overlay,
    ctx: &Ctx,
) -> Result<Txn, ErrorCode> {
    if !path::is_valid(path_) {
        return Err(ErrorCode::BadArguments);
    }
    let acl = fixup_acl(acl, ctx)?;
    let mut node = ov.get(path_).ok_or(ErrorCode::NoNode)?;
    check_perm(&node.acl, perms::ADMIN, ctx)?;
    let v = next_version(node.stat.aversion, version)?;
    node.stat.aversion = v;
    node.acl = ov.tree.acls.share(&acl);
    ov.set(path_, Some(node));
    Ok(Txn::SetAcl {
        path: path_.to_owned(),
        acl,
        version: v,
    })
}

/// One op of a multi, or a single write.
pub fn prep_op(op: &MultiOp, ov: &mut Overlay, ctx: &Ctx) -> Result<Txn, ErrorCode> {
    match op {
        MultiOp::Create(c) => prep_create(c, ov, ctx),
        MultiOp::Delete { path, version } => prep_delete(path, *version, ov, ctx),
        MultiOp::SetData {
            path,
            data,
            version,
        } => prep_set_data(path, data.as_deref(), *version, ov, ctx),
        MultiOp::Check { path, version } => prep_check(path, *version, ov, ctx),
    }
}

/// A multi: the sub-txns, or on the first failure the sub-txns so far, the error, and
/// RUNTIMEINCONSISTENCY for the rest (nothing is published to the pending view then).
pub fn prep_multi(ops: &[MultiOp], ov: &mut Overlay, ctx: &Ctx) -> (Txn, bool) {
    let mut txns = Vec::with_capacity(ops.len());
    let mut failed = false;
    for op in ops {
        if failed {
            txns.push(Txn::Error {
                err: ErrorCode::RuntimeInconsistency.code(),
            });
            continue;
        }
        match prep_op(op, ov, ctx) {
            Ok(t) => txns.push(t),
            Err(e) => {
                failed = true;
                txns.push(Txn::Error { err: e.code() });
            }
        }
    }
    (Txn::Multi(txns), !failed)
}

/// deleteContainer from the container manager: only if still an empty container / TTL node.
pub fn prep_delete_container(path_: &str, ov: &mut Overlay, ctx: &Ctx) -> Option<Txn> {
    let node = ov.get(path_)?;
    if node.num_children > 0
        || !matches!(
            Owner::from_raw(node.stat.ephemeral_owner),
            Owner::Container | Owner::Ttl(_)
        )
    {
        return None;
    }
    let parent = path::parent_for_write(path_)?;
    let mut parent_view = ov.get(parent)?;
    parent_view.num_children -= 1;
    parent_view.stat.pzxid = ctx.zxid;
    ov.set(parent, Some(parent_view));
    ov.set(path_, None);
    Some(Txn::Delete {
        path: path_.to_owned(),
        container: true,
    })
}

/// closeSession: the session's ephemerals, committed and in flight.
/// The paths, and so the deletions and their watch events, come in the order ZooKeeper's
/// cloned hash set gives them, adjusted by the changes still in flight.
pub fn prep_close_session(session: i64, zxid: i64, ov: &mut Overlay) -> Txn {
    let mut set = ov.tree.ephemeral_set(session);
    for (p, owner) in ov.pending.changes_in_order() {
        match owner {
            None => {
                set.remove(p);
            }
            Some(o) if o == session => {
                set.insert(p);
            }
            Some(_) => {}
        }
    }
    let paths: Vec<String> = set.iter().map(str::to_owned).collect();
    for p in &paths {
        if let Some(parent) = path::parent_for_write(p) {
            if let Some(mut pv) = ov.get(parent) {
                pv.num_children -= 1;
                pv.stat.pzxid = pv.stat.pzxid.max(zxid);
                ov.set(parent, Some(pv));
            }
        }
        ov.set(p, None);
    }
    Txn::CloseSession { paths: Some(paths) }
}
