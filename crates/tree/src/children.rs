//! A node's child names: a sorted set that costs one pointer while empty.
//!
//! Most znodes are leaves, so the set is boxed and absent until the first child arrives; it is
//! dropped again when the last one goes. Small sets, and sets built in order (a snapshot being
//! loaded, sequential nodes), are sorted vectors; others are B-trees. Names of up to
//! [`INLINE_NAME`] bytes (sequential names, counters, most hand-made names) live inside the
//! set's entries with no allocation of their own. Order is byte order, which is `str` order,
//! so iteration matches the `BTreeSet` of strings this replaces.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::ops::{Bound, RangeBounds};

/// Longest name stored inline (a `Name` is 24 bytes either way).
pub const INLINE_NAME: usize = 22;

/// A string that lives inline when short, else on the heap: a child name here, and the
/// path key of the node table.
#[derive(Clone)]
pub(crate) enum Name {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Heap(Box<str>),
}

impl Name {
    pub(crate) fn new(s: &str) -> Name {
        if s.len() <= INLINE_NAME {
            let mut bytes = [0u8; INLINE_NAME];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Name::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Name::Heap(s.into())
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..*len as usize],
            Name::Heap(s) => s.as_bytes(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Copied from a `str` whole, so always valid; checking costs little at this size.
            Name::Inline { .. } => std::str::from_utf8(self.as_bytes()).expect("copied from a str"),
            Name::Heap(s) => s,
        }
    }
}

// Comparisons go by bytes, which orders exactly as `str` does without re-validating UTF-8.
impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Most names a sorted vector holds before an insert in its middle turns it into a B-tree.
const SMALL: usize = 64;

/// The sorted child names of one node.
#[derive(Clone, Default)]
pub struct Children(Option<Box<Set>>);

/// A non-empty set of names. `Sorted` serves small sets, where an insert in the middle moves
/// little, and sets of any size built in order (a snapshot being loaded, sequential nodes):
/// 24 bytes a name, against some 40 in a B-tree. A large `Sorted` becomes a `Tree` at the
/// first insert out of order or removal, which would otherwise move half of it.
#[derive(Clone)]
enum Set {
    Sorted(Vec<Name>),
    Tree(BTreeSet<Name>),
}

impl Children {
    pub fn new() -> Children {
        Children(None)
    }

    pub fn len(&self) -> usize {
        match self.0.as_deref() {
            None => 0,
            Some(Set::Sorted(v)) => v.len(),
            Some(Set::Tree(t)) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub fn contains(&self, name: &str) -> bool {
        let name = name.as_bytes();
        match self.0.as_deref() {
            None => false,
            Some(Set::Sorted(v)) => v.binary_search_by(|n| n.as_bytes().cmp(name)).is_ok(),
            Some(Set::Tree(t)) => t.contains(name),
        }
    }

    /// Add a name; false if it was already there.
    pub fn insert(&mut self, name: &str) -> bool {
        let set = self
            .0
            .get_or_insert_with(|| Box::new(Set::Sorted(Vec::new())));
        match &mut **set {
            Set::Sorted(v) => {
                let bytes = name.as_bytes();
                if v.last().is_none_or(|last| last.as_bytes() < bytes) {
                    v.push(Name::new(name));
                    return true;
                }
                let Err(at) = v.binary_search_by(|n| n.as_bytes().cmp(bytes)) else {
                    return false;
                };
                if v.len() < SMALL {
                    v.insert(at, Name::new(name));
                    return true;
                }
                let mut tree: BTreeSet<Name> = std::mem::take(v).into_iter().collect();
                tree.insert(Name::new(name));
                **set = Set::Tree(tree);
                true
            }
            Set::Tree(t) => t.insert(Name::new(name)),
        }
    }

    /// Remove a name; false if it was not there.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(set) = &mut self.0 else {
            return false;
        };
        let bytes = name.as_bytes();
        let (removed, empty) = match &mut **set {
            Set::Sorted(v) => {
                let Ok(at) = v.binary_search_by(|n| n.as_bytes().cmp(bytes)) else {
                    return false;
                };
                if v.len() <= SMALL {
                    v.remove(at);
                    (true, v.is_empty())
                } else {
                    let mut tree: BTreeSet<Name> = std::mem::take(v).into_iter().collect();
                    tree.remove(bytes);
                    **set = Set::Tree(tree);
                    (true, false)
                }
            }
            Set::Tree(t) => (t.remove(bytes), t.is_empty()),
        };
        if empty {
            self.0 = None;
        }
        removed
    }

    /// The names in order.
    pub fn iter(&self) -> Iter<'_> {
        self.range::<str, _>(..)
    }

    /// The names within `range`, in order (e.g. those after a given name).
    pub fn range<'a, Q, R>(&'a self, range: R) -> Iter<'a>
    where
        Q: AsRef<str> + ?Sized,
        R: RangeBounds<Q>,
    {
        fn bytes<Q: AsRef<str> + ?Sized>(b: Bound<&Q>) -> Bound<&[u8]> {
            b.map(|q| q.as_ref().as_bytes())
        }
        let (start, end) = (bytes(range.start_bound()), bytes(range.end_bound()));
        match self.0.as_deref() {
            None => Iter(Inner::Sorted([].iter())),
            Some(Set::Sorted(v)) => {
                let from = match start {
                    Bound::Included(s) => v.partition_point(|n| n.as_bytes() < s),
                    Bound::Excluded(s) => v.partition_point(|n| n.as_bytes() <= s),
                    Bound::Unbounded => 0,
                };
                let to = match end {
                    Bound::Included(e) => v.partition_point(|n| n.as_bytes() <= e),
                    Bound::Excluded(e) => v.partition_point(|n| n.as_bytes() < e),
                    Bound::Unbounded => v.len(),
                };
                Iter(Inner::Sorted(v[from..to.max(from)].iter()))
            }
            Some(Set::Tree(t)) => Iter(Inner::Tree(t.range::<[u8], _>((start, end)))),
        }
    }
}

impl PartialEq for Children {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Children {}

impl fmt::Debug for Children {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Children {
    type Item = &'a str;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<'a> FromIterator<&'a str> for Children {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Children {
        let mut c = Children::new();
        for name in iter {
            c.insert(name);
        }
        c
    }
}

/// Iterator over child names, in order.
#[derive(Clone)]
pub struct Iter<'a>(Inner<'a>);

#[derive(Clone)]
enum Inner<'a> {
    Sorted(std::slice::Iter<'a, Name>),
    Tree(std::collections::btree_set::Range<'a, Name>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match &mut self.0 {
            Inner::Sorted(i) => i.next(),
            Inner::Tree(i) => i.next(),
        }
        .map(Name::as_str)
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Inner::Sorted(i) => i.next_back(),
            Inner::Tree(i) => i.next_back(),
        }
        .map(Name::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(std::mem::size_of::<Name>(), 24);
        assert_eq!(std::mem::size_of::<Children>(), 8);
    }

    #[test]
    fn orders_like_strings_and_empties_to_nothing() {
        let long = "a-name-well-over-twenty-two-bytes";
        let names = ["b", "a", "", "ab", "\u{e9}t\u{e9}", long, "a/", "z", "a0"];
        let mut c = Children::new();
        for n in names {
            assert!(c.insert(n));
        }
        assert!(!c.insert("ab"));
        let mut want: Vec<&str> = names.to_vec();
        want.sort();
        assert_eq!(c.iter().collect::<Vec<_>>(), want);
        assert_eq!(c.iter().rev().collect::<Vec<_>>().len(), want.len());
        assert_eq!(c.len(), want.len());
        assert!(c.contains(long) && c.contains("") && !c.contains("c"));
        let after: Vec<&str> = c
            .range::<str, _>((Bound::Excluded("ab"), Bound::Unbounded))
            .collect();
        assert_eq!(
            after,
            want[want.iter().position(|&n| n == "ab").unwrap() + 1..]
        );
        assert_eq!(names.iter().copied().collect::<Children>(), c);
        for n in names {
            assert!(c.remove(n));
        }
        assert!(!c.remove("a"));
        assert!(c.is_empty() && c.0.is_none());
        assert_eq!(c.iter().next(), None);
    }

    /// Random inserts, removals and range reads against a `BTreeSet<String>`, through every
    /// shape: small, built in order past [`SMALL`], and turned into a tree.
    #[test]
    fn matches_a_btreeset() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..40 {
            let mut c = Children::new();
            let mut model = BTreeSet::new();
            // Half the rounds start with a long run in order, as a snapshot load does.
            if round % 2 == 0 {
                for i in 0..(rand(300) + SMALL as u64) {
                    let name = format!("n{i:010}");
                    assert!(c.insert(&name));
                    model.insert(name);
                }
            }
            for _ in 0..600 {
                let name = if rand(8) == 0 {
                    format!("{}-a-long-name-beyond-the-inline-limit", rand(200))
                } else {
                    format!("n{:010}", rand(400))
                };
                match rand(3) {
                    0 | 1 if rand(4) != 0 || model.len() < 10 => {
                        assert_eq!(c.insert(&name), model.insert(name.clone()))
                    }
                    _ => assert_eq!(c.remove(&name), model.remove(&name)),
                }
                assert_eq!(c.len(), model.len());
                assert_eq!(c.is_empty(), model.is_empty());
                assert_eq!(c.contains(&name), model.contains(&name));
            }
            assert!(c.iter().eq(model.iter().map(String::as_str)));
            assert!(c.iter().rev().eq(model.iter().rev().map(String::as_str)));
            for probe in ["", "n0000000100", "n0000000100x", "z"] {
                let ours: Vec<&str> = c
                    .range::<str, _>((Bound::Excluded(probe), Bound::Unbounded))
                    .collect();
                let theirs: Vec<&str> = model
                    .range::<str, _>((Bound::Excluded(probe), Bound::Unbounded))
                    .map(String::as_str)
                    .collect();
                assert_eq!(ours, theirs, "after {probe:?}");
                let ours: Vec<&str> = c
                    .range::<str, _>((Bound::Unbounded, Bound::Included(probe)))
                    .collect();
                let theirs: Vec<&str> = model
                    .range::<str, _>((Bound::Unbounded, Bound::Included(probe)))
                    .map(String::as_str)
                    .collect();
                assert_eq!(ours, theirs, "up to {probe:?}");
            }
            let names: Vec<String> = model.iter().cloned().collect();
            for n in &names {
                assert!(c.remove(n));
            }
            assert!(c.0.is_none());
        }
    }
}
