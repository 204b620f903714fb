//! The client's own record of the watches it set, as the Java client's `ZKWatchManager` keeps
//! it. The shell has one watcher (zkCli's default watcher), so each table is a set of paths.
//!
//! It decides three things the server does not: whether a notification reaches the watcher
//! (one-shot watches are consumed here; an event that matches nothing is dropped), which
//! watches to re-register with setWatches after a reconnect, and the outcome of
//! `removewatches` (the client checks its own table first, and synthesises the
//! `DataWatchRemoved` / `ChildWatchRemoved` / `PersistentWatchRemoved` events).
//! Paths are client paths (chroot already removed).

use std::collections::BTreeSet;

use zooid_proto::{watcher_type, ErrorCode};

/// A watch a successful (or, for exists, NONODE) reply registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchReg {
    /// getData with watch.
    Data(String),
    /// exists with watch: a data watch if the node exists, an exist watch if not.
    Exists(String),
    /// getChildren with watch.
    Child(String),
    /// addWatch mode PERSISTENT.
    Persistent(String),
    /// addWatch mode PERSISTENT_RECURSIVE.
    PersistentRecursive(String),
}

/// `Watcher.Event.EventType` codes used here.
pub mod event {
    pub const NONE: i32 = -1;
    pub const NODE_CREATED: i32 = 1;
    pub const NODE_DELETED: i32 = 2;
    pub const NODE_DATA_CHANGED: i32 = 3;
    pub const NODE_CHILDREN_CHANGED: i32 = 4;
    pub const DATA_WATCH_REMOVED: i32 = 5;
    pub const CHILD_WATCH_REMOVED: i32 = 6;
    pub const PERSISTENT_WATCH_REMOVED: i32 = 7;
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WatchTable {
    pub data: BTreeSet<String>,
    pub exist: BTreeSet<String>,
    pub child: BTreeSet<String>,
    pub persistent: BTreeSet<String>,
    pub persistent_recursive: BTreeSet<String>,
}

/// The parent paths of `path`, itself first, up to `/`.
fn path_and_parents(path: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(path);
    std::iter::from_fn(move || {
        let cur = next?;
        next = if cur == "/" {
            None
        } else {
            match cur.rfind('/') {
                Some(0) => Some("/"),
                Some(i) => Some(&cur[..i]),
                None => None,
            }
        };
        Some(cur)
    })
}

impl WatchTable {
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.exist.is_empty()
            && self.child.is_empty()
            && self.persistent.is_empty()
            && self.persistent_recursive.is_empty()
    }

    /// Record `reg` after a reply with error code `err`.
    pub fn register(&mut self, reg: &WatchReg, err: i32) {
        let ok = err == 0;
        match reg {
            WatchReg::Data(p) if ok => {
                self.data.insert(p.clone());
            }
            WatchReg::Exists(p) if ok => {
                self.data.insert(p.clone());
            }
            WatchReg::Exists(p) if err == ErrorCode::NoNode.code() => {
                self.exist.insert(p.clone());
            }
            WatchReg::Child(p) if ok => {
                self.child.insert(p.clone());
            }
            WatchReg::Persistent(p) if ok => {
                self.persistent.insert(p.clone());
            }
            WatchReg::PersistentRecursive(p) if ok => {
                self.persistent_recursive.insert(p.clone());
            }
            _ => {}
        }
    }

    /// A notification of `event_type` for `path` arrived: consume the one-shot watches it
    /// fires and say whether any watch (so zkCli's watcher) is told. State events (type None)
    /// always are.
    pub fn materialize(&mut self, event_type: i32, path: &str) -> bool {
        let mut hit = false;
        match event_type {
            event::NONE => return true,
            event::NODE_DATA_CHANGED | event::NODE_CREATED => {
                hit |= self.data.remove(path);
                hit |= self.exist.remove(path);
            }
            event::NODE_CHILDREN_CHANGED => {
                hit |= self.child.remove(path);
            }
            event::NODE_DELETED => {
                hit |= self.data.remove(path);
                hit |= self.exist.remove(path);
                hit |= self.child.remove(path);
            }
            _ => return false,
        }
        hit |= self.persistent.contains(path);
        // A recursive watch never reports child lists (the server may still send such events
        // for a plain child watch on a descendant).
        if event_type != event::NODE_CHILDREN_CHANGED {
            hit |= path_and_parents(path).any(|p| self.persistent_recursive.contains(p));
        }
        hit
    }

    /// `removeAllWatches(path, type, local)` after the server answered `rc`: the event types to
    /// report (one event per kind of watch removed), or the error code zkCli reports.
    pub fn remove(&mut self, path: &str, kind: i32, local: bool, rc: i32) -> Result<Vec<i32>, i32> {
        let in_child = self.child.contains(path);
        let in_data = self.data.contains(path) || self.exist.contains(path);
        let in_persistent =
            self.persistent.contains(path) || self.persistent_recursive.contains(path);
        let contained = match kind {
            watcher_type::CHILDREN => in_child || in_persistent,
            watcher_type::DATA => in_data || in_persistent,
            _ => in_child || in_data || in_persistent,
        };
        let no_watcher = ErrorCode::NoWatcher.code();
        if !contained {
            return Err(no_watcher);
        }
        if !local && rc != 0 {
            return Err(rc);
        }
        let (mut child, mut data, mut persistent) = (false, false, false);
        if kind == watcher_type::CHILDREN || kind == watcher_type::ANY {
            child |= self.child.remove(path);
        }
        if kind == watcher_type::DATA || kind == watcher_type::ANY {
            data |= self.data.remove(path);
            data |= self.exist.remove(path);
        }
        if kind == watcher_type::ANY {
            persistent |= self.persistent.remove(path);
            persistent |= self.persistent_recursive.remove(path);
        }
        // Java iterates a HashMap keyed by event type here, so its order varies between runs;
        // this is the order seen most often.
        let mut events = Vec::new();
        if data {
            events.push(event::DATA_WATCH_REMOVED);
        }
        if persistent {
            events.push(event::PERSISTENT_WATCH_REMOVED);
        }
        if child {
            events.push(event::CHILD_WATCH_REMOVED);
        }
        if events.is_empty() {
            Err(no_watcher)
        } else {
            Ok(events)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_watches_fire_once() {
        let mut t = WatchTable::default();
        t.register(&WatchReg::Data("/a".into()), 0);
        assert!(t.materialize(event::NODE_DATA_CHANGED, "/a"));
        assert!(!t.materialize(event::NODE_DATA_CHANGED, "/a"));
        t.register(&WatchReg::Exists("/b".into()), ErrorCode::NoNode.code());
        assert_eq!(t.exist.len(), 1);
        assert!(t.materialize(event::NODE_CREATED, "/b"));
        t.register(&WatchReg::Data("/c".into()), ErrorCode::NoNode.code());
        assert!(t.is_empty());
        t.register(&WatchReg::Child("/d".into()), 0);
        assert!(!t.materialize(event::NODE_DATA_CHANGED, "/d"));
        assert!(t.materialize(event::NODE_DELETED, "/d"));
        assert!(t.materialize(event::NONE, ""));
    }

    #[test]
    fn persistent_watches_stay_and_recursive_ones_skip_child_events() {
        let mut t = WatchTable::default();
        t.register(&WatchReg::PersistentRecursive("/r".into()), 0);
        assert!(t.materialize(event::NODE_CREATED, "/r/a/b"));
        assert!(t.materialize(event::NODE_DATA_CHANGED, "/r"));
        assert!(!t.materialize(event::NODE_CHILDREN_CHANGED, "/r"));
        assert!(!t.materialize(event::NODE_CREATED, "/rx"));
        t.register(&WatchReg::Persistent("/p".into()), 0);
        assert!(t.materialize(event::NODE_CHILDREN_CHANGED, "/p"));
        assert!(t.materialize(event::NODE_DELETED, "/p"));
        assert!(t.persistent.contains("/p"));
        let mut root = WatchTable::default();
        root.register(&WatchReg::PersistentRecursive("/".into()), 0);
        assert!(root.materialize(event::NODE_CREATED, "/x"));
    }

    #[test]
    fn removal_checks_the_client_table_then_the_server_answer() {
        let mut t = WatchTable::default();
        let nw = ErrorCode::NoWatcher.code();
        assert_eq!(t.remove("/a", watcher_type::ANY, false, 0), Err(nw));
        t.register(&WatchReg::Data("/a".into()), 0);
        t.register(&WatchReg::Child("/a".into()), 0);
        assert_eq!(t.remove("/a", watcher_type::DATA, false, nw), Err(nw));
        assert_eq!(
            t.remove("/a", watcher_type::ANY, false, 0),
            Ok(vec![event::DATA_WATCH_REMOVED, event::CHILD_WATCH_REMOVED])
        );
        // A persistent watch counts as present for -c but only "any" removes it.
        t.register(&WatchReg::Persistent("/p".into()), 0);
        assert_eq!(t.remove("/p", watcher_type::CHILDREN, false, 0), Err(nw));
        assert_eq!(
            t.remove("/p", watcher_type::ANY, false, 0),
            Ok(vec![event::PERSISTENT_WATCH_REMOVED])
        );
        // Local removal ignores a failed round trip.
        t.register(&WatchReg::Data("/l".into()), 0);
        assert_eq!(
            t.remove(
                "/l",
                watcher_type::DATA,
                true,
                ErrorCode::ConnectionLoss.code()
            ),
            Ok(vec![event::DATA_WATCH_REMOVED])
        );
    }
}
