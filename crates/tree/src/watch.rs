//! The watch table: who is told about which change.
//!
//! ZooKeeper keeps two watch managers, data and child; a one-shot getData/exists watch lives in
//! the first, a getChildren watch in the second, and addWatch's persistent and
//! persistent-recursive watches in both (so removeWatches of one type leaves the other half).
//! Here each (session, path) holds a bit per (manager, kind). Kinds coexist independently
//! (ZooKeeper 3.9's behaviour; in 3.8.0 a later registration replaced the earlier kinds).
//! Triggering follows ZooKeeper's `WatchManager`:
//! at the changed path every kind fires, except that a recursive-only watcher never receives
//! NodeChildrenChanged; at ancestors only recursive watchers fire. A session receives one event
//! per trigger, and one-shot registrations are consumed when they fire.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;
use zooid_proto::{Acl, EventType};

pub type SessionId = i64;

const DATA: u8 = 1;
const CHILD: u8 = 2;
const P_DATA: u8 = 4;
const P_CHILD: u8 = 8;
const R_DATA: u8 = 16;
const R_CHILD: u8 = 32;
const RECURSIVE: u8 = R_DATA | R_CHILD;
/// Registrations the data manager holds (what wchs / wchc / wchp report).
const DATA_MANAGER: u8 = DATA | P_DATA | R_DATA;

/// The bits one manager looks at: (one-shot, persistent, recursive).
#[derive(Clone, Copy)]
struct Manager(u8, u8, u8);
const DATA_MGR: Manager = Manager(DATA, P_DATA, R_DATA);
const CHILD_MGR: Manager = Manager(CHILD, P_CHILD, R_CHILD);

/// What a watcher registered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchKind {
    Data,
    Child,
    Persistent,
    PersistentRecursive,
}

impl WatchKind {
    fn bit(self) -> u8 {
        match self {
            WatchKind::Data => DATA,
            WatchKind::Child => CHILD,
            WatchKind::Persistent => P_DATA | P_CHILD,
            WatchKind::PersistentRecursive => R_DATA | R_CHILD,
        }
    }
}

/// A fired watch: deliver `event` on `path` to `session`, if the session may READ under
/// `acl` (the changed node's ACL, or the parent's for NodeChildrenChanged; CVE-2024-23944).
/// `None` delivers unconditionally (setWatches catch-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub session: SessionId,
    pub event: EventType,
    pub path: String,
    pub acl: Option<Vec<Acl>>,
}

#[derive(Debug, Default, Clone)]
pub struct WatchTable {
    by_path: FxHashMap<Box<str>, BTreeMap<SessionId, u8>>,
    by_session: FxHashMap<SessionId, BTreeSet<Box<str>>>,
    recursive: usize,
}

impl WatchTable {
    pub fn add(&mut self, session: SessionId, path: &str, kind: WatchKind) {
        let bits = self
            .by_path
            .entry(path.into())
            .or_default()
            .entry(session)
            .or_insert(0);
        if *bits & RECURSIVE == 0 && kind.bit() & RECURSIVE != 0 {
            self.recursive += 1;
        }
        *bits |= kind.bit();
        self.by_session
            .entry(session)
            .or_default()
            .insert(path.into());
    }

    /// Registrations of `session` on `path`, as a bit set.
    fn bits(&self, session: SessionId, path: &str) -> u8 {
        self.by_path
            .get(path)
            .and_then(|m| m.get(&session))
            .copied()
            .unwrap_or(0)
    }

    fn clear_bits(&mut self, session: SessionId, path: &str, mask: u8) {
        let Some(m) = self.by_path.get_mut(path) else {
            return;
        };
        let Some(bits) = m.get_mut(&session) else {
            return;
        };
        let had_recursive = *bits & RECURSIVE != 0;
        *bits &= !mask;
        if had_recursive && *bits & RECURSIVE == 0 {
            self.recursive -= 1;
        }
        if *bits == 0 {
            m.remove(&session);
            if m.is_empty() {
                self.by_path.remove(path);
            }
            if let Some(paths) = self.by_session.get_mut(&session) {
                paths.remove(path);
                if paths.is_empty() {
                    self.by_session.remove(&session);
                }
            }
        }
    }

    /// Whether any watch is registered at all (lets writes skip event bookkeeping).
    pub fn is_watched(&self) -> bool {
        !self.by_path.is_empty()
    }

    /// checkWatches: does `session` hold a watch of `watcher_type` (1 child, 2 data, 3 any,
    /// 4 persistent, 5 persistent recursive) on `path`?
    pub fn contains(&self, session: SessionId, path: &str, watcher_type: i32) -> bool {
        self.bits(session, path) & type_mask(watcher_type) != 0
    }

    /// removeWatches: drop the matching registrations; false if there were none.
    pub fn remove(&mut self, session: SessionId, path: &str, watcher_type: i32) -> bool {
        let mask = type_mask(watcher_type);
        if self.bits(session, path) & mask == 0 {
            return false;
        }
        self.clear_bits(session, path, mask);
        true
    }

    /// Forget everything `session` registered (close or expiry).
    pub fn remove_session(&mut self, session: SessionId) {
        if let Some(paths) = self.by_session.remove(&session) {
            for p in paths {
                if let Some(m) = self.by_path.get_mut(&*p) {
                    if let Some(bits) = m.remove(&session) {
                        if bits & RECURSIVE != 0 {
                            self.recursive -= 1;
                        }
                    }
                    if m.is_empty() {
                        self.by_path.remove(&*p);
                    }
                }
            }
        }
    }

    /// Fire one manager's watches for `event` at `path`. Sessions in `suppress` are skipped
    /// but their one-shot registrations are still consumed. Returns the sessions told.
    fn trigger(
        &mut self,
        path: &str,
        event: EventType,
        mgr: Manager,
        acl: &[Acl],
        suppress: &BTreeSet<SessionId>,
        out: &mut Vec<Fired>,
    ) -> BTreeSet<SessionId> {
        let Manager(one_shot, persistent, recursive) = mgr;
        let mut told = BTreeSet::new();
        let mut consumed = Vec::new();
        if let Some(m) = self.by_path.get(path) {
            for (&s, &bits) in m {
                let persistent_here = bits & persistent != 0;
                let recursive_here =
                    bits & recursive != 0 && event != EventType::NodeChildrenChanged;
                let one_shot_here = bits & one_shot != 0;
                if one_shot_here {
                    consumed.push(s);
                }
                if persistent_here || recursive_here || one_shot_here {
                    told.insert(s);
                }
            }
        }
        for s in consumed {
            self.clear_bits(s, path, one_shot);
        }
        if self.recursive > 0 && event != EventType::NodeChildrenChanged {
            let mut p = path;
            while let Some(parent) = parent_of(p) {
                if let Some(m) = self.by_path.get(parent) {
                    told.extend(
                        m.iter()
                            .filter(|(_, &b)| b & recursive != 0)
                            .map(|(&s, _)| s),
                    );
                }
                p = parent;
            }
        }
        for &s in &told {
            if !suppress.contains(&s) {
                out.push(Fired {
                    session: s,
                    event,
                    path: path.to_owned(),
                    acl: Some(acl.to_vec()),
                });
            }
        }
        told
    }

    /// A node was created at `path` (with `acl`) under `parent` (with `parent_acl`).
    pub fn node_created(
        &mut self,
        path: &str,
        acl: &[Acl],
        parent: &str,
        parent_acl: &[Acl],
        out: &mut Vec<Fired>,
    ) {
        let none = BTreeSet::new();
        self.trigger(path, EventType::NodeCreated, DATA_MGR, acl, &none, out);
        self.trigger(
            parent,
            EventType::NodeChildrenChanged,
            CHILD_MGR,
            parent_acl,
            &none,
            out,
        );
    }

    /// The node at `path` (which had `acl`) under `parent` was deleted.
    pub fn node_deleted(
        &mut self,
        path: &str,
        acl: &[Acl],
        parent: &str,
        parent_acl: &[Acl],
        out: &mut Vec<Fired>,
    ) {
        let none = BTreeSet::new();
        let told = self.trigger(path, EventType::NodeDeleted, DATA_MGR, acl, &none, out);
        self.trigger(path, EventType::NodeDeleted, CHILD_MGR, acl, &told, out);
        self.trigger(
            parent,
            EventType::NodeChildrenChanged,
            CHILD_MGR,
            parent_acl,
            &none,
            out,
        );
    }

    pub fn data_changed(&mut self, path: &str, acl: &[Acl], out: &mut Vec<Fired>) {
        self.trigger(
            path,
            EventType::NodeDataChanged,
            DATA_MGR,
            acl,
            &BTreeSet::new(),
            out,
        );
    }

    /// Counts for `wchs`, over the data manager as ZooKeeper reports them: (watching
    /// sessions, watched paths, watches).
    pub fn summary(&self) -> (usize, usize, usize) {
        let by_path = self.by_path();
        let sessions: BTreeSet<SessionId> = by_path.values().flatten().copied().collect();
        let total = by_path.values().map(Vec::len).sum();
        (sessions.len(), by_path.len(), total)
    }

    /// Every registration, one-shot child watches included (`zk_watch_count`).
    pub fn total(&self) -> usize {
        self.by_path
            .values()
            .map(|m| m.values().map(|b| b.count_ones() as usize).sum::<usize>())
            .sum()
    }

    /// Paths each session watches in the data manager (`wchc`).
    pub fn by_session(&self) -> BTreeMap<SessionId, Vec<String>> {
        let mut out: BTreeMap<SessionId, Vec<String>> = BTreeMap::new();
        for (p, s) in self.by_path() {
            for s in s {
                out.entry(s).or_default().push(p.clone());
            }
        }
        out
    }

    /// Sessions watching each path in the data manager (`wchp`).
    pub fn by_path(&self) -> BTreeMap<String, Vec<SessionId>> {
        self.by_path
            .iter()
            .filter_map(|(p, m)| {
                let s: Vec<SessionId> = m
                    .iter()
                    .filter(|(_, &b)| b & DATA_MANAGER != 0)
                    .map(|(&s, _)| s)
                    .collect();
                (!s.is_empty()).then(|| (p.to_string(), s))
            })
            .collect()
    }
}

/// The registrations a `WatcherType` names, as ZooKeeper 3.9 matches them: Children and
/// Data name the one-shot watches only, Persistent and PersistentRecursive their own kind,
/// Any all of them. (3.8 let Children and Data match persistent watches too, and knew no
/// types 4 and 5.)
fn type_mask(watcher_type: i32) -> u8 {
    use zooid_proto::watcher_type as t;
    match watcher_type {
        t::CHILDREN => CHILD,
        t::DATA => DATA,
        t::ANY => 0xff,
        t::PERSISTENT => P_DATA | P_CHILD,
        t::PERSISTENT_RECURSIVE => RECURSIVE,
        _ => 0,
    }
}

/// The parent of an absolute path; `None` for the root.
pub fn parent_of(path: &str) -> Option<&str> {
    if path == "/" || path.is_empty() {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(
        t: &mut WatchTable,
        f: impl FnOnce(&mut WatchTable, &mut Vec<Fired>),
    ) -> Vec<(i64, EventType, String)> {
        let mut out = Vec::new();
        f(t, &mut out);
        out.into_iter()
            .map(|f| (f.session, f.event, f.path))
            .collect()
    }

    #[test]
    fn one_event_per_session_on_delete() {
        let mut t = WatchTable::default();
        t.add(1, "/w", WatchKind::Data);
        t.add(1, "/w", WatchKind::Child);
        let ev = fired(&mut t, |t, o| t.node_deleted("/w", &[], "/", &[], o));
        assert_eq!(ev, vec![(1, EventType::NodeDeleted, "/w".into())]);
        assert_eq!(t.summary(), (0, 0, 0));
    }

    #[test]
    fn recursive_watches_see_descendants_but_not_child_events() {
        let mut t = WatchTable::default();
        t.add(1, "/r", WatchKind::PersistentRecursive);
        t.add(2, "/r", WatchKind::Persistent);
        let ev = fired(&mut t, |t, o| t.node_created("/r/a/b", &[], "/r/a", &[], o));
        assert_eq!(ev, vec![(1, EventType::NodeCreated, "/r/a/b".into())]);
        let ev = fired(&mut t, |t, o| t.node_created("/r/c", &[], "/r", &[], o));
        assert_eq!(
            ev,
            vec![
                (1, EventType::NodeCreated, "/r/c".into()),
                (2, EventType::NodeChildrenChanged, "/r".into())
            ]
        );
        // Persistent watches survive firing.
        assert_eq!(t.summary().2, 2);
        assert_eq!(t.total(), 4);
    }

    #[test]
    fn one_shot_and_persistent_coexist() {
        let mut t = WatchTable::default();
        t.add(1, "/p", WatchKind::Persistent);
        t.add(1, "/p", WatchKind::Data);
        let ev = fired(&mut t, |t, o| t.data_changed("/p", &[], o));
        assert_eq!(ev.len(), 1);
        // The data watch fired; the persistent one stays. As in 3.9, Children and Data name
        // one-shot watches only, Persistent the persistent one.
        assert!(!t.contains(1, "/p", 2));
        assert!(!t.contains(1, "/p", 1));
        assert!(t.contains(1, "/p", 4));
        assert!(!t.contains(1, "/p", 5));
        t.add(1, "/p", WatchKind::Data);
        assert!(!t.remove(1, "/p", 1));
        assert!(t.remove(1, "/p", 4));
        assert!(t.contains(1, "/p", 2));
        assert!(t.remove(1, "/p", 3));
        assert_eq!(t.summary(), (0, 0, 0));
        t.add(1, "/r", WatchKind::PersistentRecursive);
        assert!(!t.remove(1, "/r", 4));
        assert!(t.remove(1, "/r", 5));
        assert_eq!(t.summary(), (0, 0, 0));
    }

    #[test]
    fn parents() {
        assert_eq!(parent_of("/a/b"), Some("/a"));
        assert_eq!(parent_of("/a"), Some("/"));
        assert_eq!(parent_of("/"), None);
    }
}
