//! Quotas as zkCli keeps them: `/zookeeper/quota/<path>/zookeeper_limits` holds the limits
//! and `.../zookeeper_stats` the usage the server maintains, both as `StatsTrack` strings.
//!
//! ```text
//! count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=-1    limits written by setquota
//! count=3,bytes=8                                          stats (count and bytes only)
//! ```
//! `count` and `bytes` always come first; any other keys follow after an extra `=` (which old
//! parsers ignore), sorted, each as `;key=value`. The requests below are the ones zkCli's
//! `SetQuotaCommand`, `ListQuotaCommand` and `DelQuotaCommand` send, in the same order, so a
//! server sees the same writes (and spends the same zxids).

use std::collections::BTreeMap;

use zooid_proto::{Acl, ErrorCode};

use super::zk::{create_mode, Zk, ZkError, ZkResult};

pub const QUOTA_ROOT: &str = "/zookeeper/quota";
pub const PROC_ROOT: &str = "/zookeeper";
pub const LIMIT_NODE: &str = "zookeeper_limits";
pub const STAT_NODE: &str = "zookeeper_stats";

pub fn quota_path(path: &str) -> String {
    format!("{QUOTA_ROOT}{path}")
}

pub fn limit_path(path: &str) -> String {
    format!("{QUOTA_ROOT}{path}/{LIMIT_NODE}")
}

pub fn stat_path(path: &str) -> String {
    format!("{QUOTA_ROOT}{path}/{STAT_NODE}")
}

/// `StatsTrack`: named counters; a missing one reads as -1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTrack {
    stats: BTreeMap<String, i64>,
}

pub const COUNT: &str = "count";
pub const BYTES: &str = "bytes";
pub const COUNT_HARD: &str = "countHardLimit";
pub const BYTES_HARD: &str = "byteHardLimit";

impl StatsTrack {
    /// Parse `key=value` pairs separated by runs of `,` and `;`; an empty value is -1.
    pub fn parse(s: &str) -> StatsTrack {
        let mut stats = BTreeMap::new();
        for pair in s.split([',', ';']).filter(|p| !p.is_empty()) {
            let mut kv = pair.split('=');
            let key = kv.next().unwrap_or("");
            let value = kv.next().unwrap_or("");
            let v = if value.is_empty() {
                -1
            } else {
                value.parse().unwrap_or(-1)
            };
            stats.insert(key.to_owned(), v);
        }
        StatsTrack { stats }
    }

    pub fn get(&self, key: &str) -> i64 {
        self.stats.get(key).copied().unwrap_or(-1)
    }

    pub fn set(&mut self, key: &str, v: i64) {
        self.stats.insert(key.to_owned(), v);
    }
}

impl std::fmt::Display for StatsTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "count={},bytes={}", self.get(COUNT), self.get(BYTES))?;
        let rest: Vec<_> = self
            .stats
            .iter()
            .filter(|(k, _)| k.as_str() != COUNT && k.as_str() != BYTES)
            .collect();
        if !rest.is_empty() {
            write!(f, "=")?;
            for (k, v) in rest {
                write!(f, ";{k}={v}")?;
            }
        }
        Ok(())
    }
}

/// Java's `String.split("/")`: trailing empty strings are dropped.
fn java_split_slash(path: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = path.split('/').collect();
    while parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    if parts.len() == 1 && parts[0].is_empty() && !path.is_empty() {
        parts.clear();
    }
    parts
}

/// What `createQuota` printed on stdout (the warnings) and whether it failed.
pub struct QuotaOutcome {
    pub warnings: Vec<String>,
}

fn is_code(e: &ZkError, code: ErrorCode) -> bool {
    matches!(e, ZkError::Keeper(k) if k.code == code.code())
}

fn data_string(d: Option<Vec<u8>>) -> String {
    // `new StatsTrack(byte[])` would fail on null data; such a node is treated as empty.
    String::from_utf8_lossy(&d.unwrap_or_default()).into_owned()
}

/// `SetQuotaCommand.createQuota`.
pub async fn create_quota(zk: &Zk, path: &str, quota: &StatsTrack) -> ZkResult<QuotaOutcome> {
    if zk.exists(path, false).await?.is_none() {
        return Err(ZkError::IllegalArgument(format!("{path} does not exist.")));
    }
    check_if_child_quota(zk, path).await?;
    check_if_parent_quota(zk, path).await?;
    let open = Acl::open_unsafe();
    if zk.exists(QUOTA_ROOT, false).await?.is_none() {
        let made = async {
            zk.create(PROC_ROOT, None, open.clone(), create_mode::PERSISTENT, None)
                .await?;
            zk.create(
                QUOTA_ROOT,
                None,
                open.clone(),
                create_mode::PERSISTENT,
                None,
            )
            .await
        }
        .await;
        match made {
            Err(e) if is_code(&e, ErrorCode::NodeExists) => {}
            other => {
                other?;
            }
        }
    }
    let mut quota_node = QUOTA_ROOT.to_owned();
    for part in java_split_slash(path).iter().skip(1) {
        quota_node.push('/');
        quota_node.push_str(part);
        if zk.exists(&quota_node, false).await?.is_none() {
            match zk
                .create(
                    &quota_node,
                    None,
                    open.clone(),
                    create_mode::PERSISTENT,
                    None,
                )
                .await
            {
                Err(e) if is_code(&e, ErrorCode::NodeExists) => {}
                other => {
                    other?;
                }
            }
        }
    }
    let stat_node = format!("{quota_node}/{STAT_NODE}");
    let limit_node = format!("{quota_node}/{LIMIT_NODE}");
    let mut warnings = Vec::new();
    if zk.exists(&limit_node, false).await?.is_none() {
        zk.create(
            &limit_node,
            Some(quota.to_string().into_bytes()),
            open.clone(),
            create_mode::PERSISTENT,
            None,
        )
        .await?;
        let mut stats = StatsTrack::default();
        stats.set(COUNT, 0);
        stats.set(BYTES, 0);
        zk.create(
            &stat_node,
            Some(stats.to_string().into_bytes()),
            open.clone(),
            create_mode::PERSISTENT,
            None,
        )
        .await?;
        let limits = StatsTrack::parse(&data_string(zk.get_data(&limit_node, false).await?.0));
        let stats = StatsTrack::parse(&data_string(zk.get_data(&stat_node, false).await?.0));
        check_quota(&limits, &stats, &mut warnings);
    } else {
        let mut limits = StatsTrack::parse(&data_string(zk.get_data(&limit_node, false).await?.0));
        for key in [COUNT, BYTES, COUNT_HARD, BYTES_HARD] {
            if quota.get(key) > -1 {
                limits.set(key, quota.get(key));
            }
        }
        let stats = StatsTrack::parse(&data_string(zk.get_data(&stat_node, false).await?.0));
        check_quota(&limits, &stats, &mut warnings);
        zk.set_data(&limit_node, limits.to_string().into_bytes(), -1)
            .await?;
    }
    Ok(QuotaOutcome { warnings })
}

fn check_quota(limits: &StatsTrack, stats: &StatsTrack, warnings: &mut Vec<String>) {
    let over = |limit: i64, used: i64| limit > -1 && limit < used;
    if over(limits.get(COUNT), stats.get(COUNT)) || over(limits.get(COUNT_HARD), stats.get(COUNT)) {
        warnings.push(format!(
            "[Warning]: the count quota you create is less than the existing count:{}",
            stats.get(COUNT)
        ));
    }
    if over(limits.get(BYTES), stats.get(BYTES)) || over(limits.get(BYTES_HARD), stats.get(BYTES)) {
        warnings.push(format!(
            "[Warning]: the bytes quota you create is less than the existing bytes:{}",
            stats.get(BYTES)
        ));
    }
}

/// A descendant of `path` already has a quota: refuse (walks the quota tree depth first).
async fn check_if_child_quota(zk: &Zk, path: &str) -> ZkResult<()> {
    let real = quota_path(path);
    super::format::validate_path(&real).map_err(ZkError::IllegalArgument)?;
    match zk.get_data(&real, false).await {
        Ok(_) => {}
        Err(e) if is_code(&e, ErrorCode::NoNode) => return Ok(()),
        Err(e) => return Err(e),
    }
    let own = format!("{QUOTA_ROOT}{path}");
    // The callback sees the root and then, for each node, its children; it lists each.
    let mut visit = vec![real.clone()];
    let mut expand = vec![real];
    while let Some(p) = expand.pop() {
        let children = match zk.get_children(&p, false, false).await {
            Ok((c, _)) => c,
            Err(e) if is_code(&e, ErrorCode::NoNode) => continue,
            Err(e) => return Err(e),
        };
        let mut children = children;
        children.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
        let kids: Vec<String> = children
            .iter()
            .map(|c| {
                if p == "/" {
                    format!("/{c}")
                } else {
                    format!("{p}/{c}")
                }
            })
            .collect();
        visit.extend(kids.iter().cloned());
        for k in kids.into_iter().rev() {
            expand.push(k);
        }
    }
    for quota_node in visit {
        let children = match zk.get_children(&quota_node, false, false).await {
            Ok((c, _)) => c,
            Err(e) if is_code(&e, ErrorCode::NoNode) => continue,
            Err(_) => Vec::new(),
        };
        for child in children {
            if quota_node != own && child == LIMIT_NODE {
                return Err(ZkError::IllegalArgument(format!(
                    "{path} has a child {} which has a quota",
                    &quota_node[QUOTA_ROOT.len()..]
                )));
            }
        }
    }
    Ok(())
}

/// An ancestor of `path` already has a quota: refuse.
async fn check_if_parent_quota(zk: &Zk, path: &str) -> ZkResult<()> {
    let parts = java_split_slash(path);
    let own = quota_path(path);
    let mut quota_node = QUOTA_ROOT.to_owned();
    for part in parts.iter().take(parts.len().saturating_sub(1)).skip(1) {
        quota_node.push('/');
        quota_node.push_str(part);
        let children = match zk.get_children(&quota_node, false, false).await {
            Ok((c, _)) => c,
            Err(e) if is_code(&e, ErrorCode::NoNode) => return Ok(()),
            Err(e) => return Err(e),
        };
        if children.is_empty() {
            return Ok(());
        }
        for child in children {
            if quota_node != own && child == LIMIT_NODE {
                return Err(ZkError::IllegalArgument(format!(
                    "{path} has a parent {} which has a quota",
                    &quota_node[QUOTA_ROOT.len()..]
                )));
            }
        }
    }
    Ok(())
}

/// `ListQuotaCommand.listQuota`: the limits, then the stats.
pub async fn list_quota(zk: &Zk, path: &str) -> ZkResult<Vec<StatsTrack>> {
    let limits = zk.get_data(&limit_path(path), false).await?.0;
    let stats = zk.get_data(&stat_path(path), false).await?.0;
    Ok(vec![
        StatsTrack::parse(&data_string(limits)),
        StatsTrack::parse(&data_string(stats)),
    ])
}

/// What `delQuota` did.
pub enum DelOutcome {
    /// The limits node is missing: zkCli prints "Quota does not exist for <path>".
    NoQuota,
    Done,
}

/// `DelQuotaCommand.delQuota`; `which` holds the quota kinds to clear, `None` for all.
pub async fn del_quota(zk: &Zk, path: &str, which: Option<&[&str]>) -> ZkResult<DelOutcome> {
    let parent = quota_path(path);
    let limit = limit_path(path);
    if zk.exists(&limit, false).await?.is_none() {
        return Ok(DelOutcome::NoQuota);
    }
    let data = zk.get_data(&limit, false).await?.0;
    let mut limits = StatsTrack::parse(&data_string(data));
    match which {
        None => {
            let (children, _) = zk.get_children(&parent, false, false).await?;
            for child in children {
                zk.delete(&format!("{parent}/{child}"), -1).await?;
            }
            trim_proc_quotas(zk, &parent).await?;
        }
        Some(keys) => {
            for key in keys {
                limits.set(key, -1);
            }
            zk.set_data(&limit, limits.to_string().into_bytes(), -1)
                .await?;
        }
    }
    Ok(DelOutcome::Done)
}

/// Delete empty quota nodes from `path` upward, stopping at /zookeeper/quota.
async fn trim_proc_quotas(zk: &Zk, path: &str) -> ZkResult<()> {
    let mut path = path.to_owned();
    while path != QUOTA_ROOT {
        let (children, _) = zk.get_children(&path, false, false).await?;
        if !children.is_empty() {
            return Ok(());
        }
        zk.delete(&path, -1).await?;
        match path.rfind('/') {
            Some(i) if i > 0 => path.truncate(i),
            _ => return Ok(()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_track_round_trips_zkclis_format() {
        let mut q = StatsTrack::default();
        q.set(COUNT, 10);
        q.set(BYTES, -1);
        q.set(COUNT_HARD, -1);
        q.set(BYTES_HARD, -1);
        assert_eq!(
            q.to_string(),
            "count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=-1"
        );
        let p = StatsTrack::parse("count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=-1");
        assert_eq!(p, q);
        let s = StatsTrack::parse("count=3,bytes=8");
        assert_eq!(s.to_string(), "count=3,bytes=8");
        assert_eq!(s.get(COUNT_HARD), -1);
        assert_eq!(StatsTrack::default().to_string(), "count=-1,bytes=-1");
    }

    #[test]
    fn paths_split_like_java() {
        assert_eq!(java_split_slash("/a/b"), ["", "a", "b"]);
        assert!(java_split_slash("/").is_empty());
        assert_eq!(java_split_slash("/a"), ["", "a"]);
    }
}
