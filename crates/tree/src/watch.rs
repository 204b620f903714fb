//! The watch table: who is told about which change.
//!
//! Three registrations can exist for a (session, path): a one-shot data watch (getData, exists),
//! a one-shot child watch (getChildren) and the persistent / persistent-recursive watches of
//! addWatch. They coexist independently (ZooKeeper 3.9's behaviour; 3.8.0 let a later one-shot
//! registration downgrade a persistent one). Triggering follows ZooKeeper's `WatchManager`:
//! at the changed path every kind fires, except that a recursive-only watcher never receives
//! NodeChildrenChanged; at ancestors only recursive watchers fire. A session receives one event
//! per trigger, and one-shot registrations are consumed when they fire.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;
use zooid_proto::EventType;

pub type SessionId = i64;

const DATA: u8 = 1;
const CHILD: u8 = 2;
const PERSISTENT: u8 = 4;
const RECURSIVE: u8 = 8;

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
            WatchKind::Persistent => PERSISTENT,
            WatchKind::PersistentRecursive => RECURSIVE,
        }
    }
}

/// A fired watch: deliver `event` on `path` to `session`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub session: SessionId,
    pub event: EventType,
    pub path: String,
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
        if kind == WatchKind::PersistentRecursive && *bits & RECURSIVE == 0 {
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
        if *bits & mask & RECURSIVE != 0 {
            self.recursive -= 1;
        }
        *bits &= !mask;
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

    /// Fire watches for `event` at `path`. `one_shot` is the one-shot kind consumed here
    /// (DATA for the data manager, CHILD for the child manager). Sessions in `suppress` are
    /// skipped but their one-shot registrations are still consumed. Returns the sessions told.
    fn trigger(
        &mut self,
        path: &str,
        event: EventType,
        one_shot: u8,
        suppress: &BTreeSet<SessionId>,
        out: &mut Vec<Fired>,
    ) -> BTreeSet<SessionId> {
        let mut told = BTreeSet::new();
        let mut consumed = Vec::new();
        if let Some(m) = self.by_path.get(path) {
            for (&s, &bits) in m {
                let persistent_here = bits & PERSISTENT != 0;
                let recursive_here =
                    bits & RECURSIVE != 0 && event != EventType::NodeChildrenChanged;
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
                            .filter(|(_, &b)| b & RECURSIVE != 0)
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
                });
            }
        }
        told
    }

    /// A node was created at `path` under `parent`.
    pub fn node_created(&mut self, path: &str, parent: &str, out: &mut Vec<Fired>) {
        let none = BTreeSet::new();
        self.trigger(path, EventType::NodeCreated, DATA, &none, out);
        self.trigger(parent, EventType::NodeChildrenChanged, CHILD, &none, out);
    }

    /// The node at `path` under `parent` was deleted.
    pub fn node_deleted(&mut self, path: &str, parent: &str, out: &mut Vec<Fired>) {
        let none = BTreeSet::new();
        let told = self.trigger(path, EventType::NodeDeleted, DATA, &none, out);
        self.trigger(path, EventType::NodeDeleted, CHILD, &told, out);
        self.trigger(parent, EventType::NodeChildrenChanged, CHILD, &none, out);
    }

    pub fn data_changed(&mut self, path: &str, out: &mut Vec<Fired>) {
        self.trigger(
            path,
            EventType::NodeDataChanged,
            DATA,
            &BTreeSet::new(),
            out,
        );
    }

    /// Counts for `wchs`: (watching sessions, watched paths, registrations).
    pub fn summary(&self) -> (usize, usize, usize) {
        let regs = self
            .by_path
            .values()
            .map(|m| m.values().map(|b| b.count_ones() as usize).sum::<usize>())
            .sum();
        (self.by_session.len(), self.by_path.len(), regs)
    }

    /// Paths watched by each session (`wchc`).
    pub fn by_session(&self) -> BTreeMap<SessionId, Vec<String>> {
        self.by_session
            .iter()
            .map(|(s, p)| (*s, p.iter().map(|p| p.to_string()).collect()))
            .collect()
    }

    /// Sessions watching each path (`wchp`).
    pub fn by_path(&self) -> BTreeMap<String, Vec<SessionId>> {
        self.by_path
            .iter()
            .map(|(p, m)| (p.to_string(), m.keys().copied().collect()))
            .collect()
    }
}

fn type_mask(watcher_type: i32) -> u8 {
    use zooid_proto::watcher_type as t;
    match watcher_type {
        t::CHILDREN => CHILD | PERSISTENT | RECURSIVE,
        t::DATA => DATA | PERSISTENT | RECURSIVE,
        t::ANY => DATA | CHILD | PERSISTENT | RECURSIVE,
        t::PERSISTENT => PERSISTENT,
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
        let ev = fired(&mut t, |t, o| t.node_deleted("/w", "/", o));
        assert_eq!(ev, vec![(1, EventType::NodeDeleted, "/w".into())]);
        assert_eq!(t.summary(), (0, 0, 0));
    }

    #[test]
    fn recursive_watches_see_descendants_but_not_child_events() {
        let mut t = WatchTable::default();
        t.add(1, "/r", WatchKind::PersistentRecursive);
        t.add(2, "/r", WatchKind::Persistent);
        let ev = fired(&mut t, |t, o| t.node_created("/r/a/b", "/r/a", o));
        assert_eq!(ev, vec![(1, EventType::NodeCreated, "/r/a/b".into())]);
        let ev = fired(&mut t, |t, o| t.node_created("/r/c", "/r", o));
        assert_eq!(
            ev,
            vec![
                (1, EventType::NodeCreated, "/r/c".into()),
                (2, EventType::NodeChildrenChanged, "/r".into())
            ]
        );
        // Persistent watches survive firing.
        assert_eq!(t.summary().2, 2);
    }

    #[test]
    fn one_shot_and_persistent_coexist() {
        let mut t = WatchTable::default();
        t.add(1, "/p", WatchKind::Persistent);
        t.add(1, "/p", WatchKind::Data);
        let ev = fired(&mut t, |t, o| t.data_changed("/p", o));
        assert_eq!(ev.len(), 1);
        assert!(t.contains(1, "/p", 4));
        assert!(!t.contains(1, "/p", 2) || t.contains(1, "/p", 4));
        assert!(t.remove(1, "/p", 1));
        assert_eq!(t.summary(), (0, 0, 0));
    }

    #[test]
    fn parents() {
        assert_eq!(parent_of("/a/b"), Some("/a"));
        assert_eq!(parent_of("/a"), Some("/"));
        assert_eq!(parent_of("/"), None);
    }
}
