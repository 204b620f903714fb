//! A node's child names: a sorted set that costs one pointer while empty.
//!
//! Most znodes are leaves, so the set is boxed and absent until the first child arrives; it is
//! dropped again when the last one goes.
//!
//! The names are packed end to end into blocks of text, each a sorted run of entries: a length
//! prefix, then the name. A name under 127 bytes costs one byte more than itself; a longer one
//! takes a marker byte and its length in 6-bit digits. Every prefix byte is ASCII, so a block is
//! valid UTF-8 and an entry comes back as a `&str` by slicing, with no check beyond char
//! boundaries. With the index, a six-digit name costs under 8 bytes in a large set, where a
//! `BTreeSet` of 24-byte inline strings took some 40 to 47.
//!
//! A small set is a single block, kept in the box. A larger one is a two-level B+-tree: a
//! vector of blocks of up to half a kilobyte, each stored with the first eight bytes of its
//! first name as an integer, so a binary search over the vector rarely reads a block, and a
//! scan of one block finds the name. A block that overflows pushes its last or first names
//! into a neighbour with room, or else keeps all that fits and moves the rest to a new block;
//! a name that lands after the end of a full block opens the next one. So a run of inserts
//! that each land just after the last leaves full blocks behind it: names in order (a
//! snapshot being loaded, sequential nodes), and also numbers created in counting order, which
//! is not byte order. Inserts in random order leave blocks most of the way full, as the
//! pushing into neighbours fills them before any split. A block that empties is dropped, and
//! a small one merges into a neighbour with room. The set keeps its count, so the length
//! costs nothing, and where its last entry starts, so an append in order needs no search.
//!
//! Order is byte order, which is `str` order, so iteration matches a `BTreeSet` of strings.

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Bound, RangeBounds};

/// Most bytes a block holds before it overflows; a name longer than this gets a block to
/// itself. Half a kilobyte keeps the scan of one block, most of a lookup's cost, short (some
/// 70 short names) and the index small (32 bytes a block). Tests lower it so a few names span
/// many blocks.
#[cfg(not(test))]
const BLOCK: usize = 512;
#[cfg(test)]
const BLOCK: usize = 48;

/// A block this small after a removal merges into a neighbour with room for it.
const SMALL_BLOCK: usize = BLOCK / 4;

/// A length prefix below this is the length itself; this byte starts a long one.
const LONG: u8 = 127;

/// The sorted child names of one node.
#[derive(Clone, Default)]
pub struct Children(Option<Box<Set>>);

/// A non-empty set of names. Both counts are `u32` so the box stays 40 bytes (a 48-byte
/// allocation); `numChildren` is an `i32` anyway.
#[derive(Clone)]
struct Set {
    len: u32,
    /// The start of an entry in the last block: the last entry, after an append. A name
    /// above it needs no search, so appends in order (a snapshot being loaded, sequential
    /// nodes) cost a comparison or two. Any other change to the last block may reset it to 0.
    tail: u32,
    blocks: Blocks,
}

/// A small set keeps its one block in the box itself, saving an index allocation for the many
/// parents with a handful of children.
#[derive(Clone)]
enum Blocks {
    One(Block),
    Many(Vec<Block>),
}

/// A sorted run of entries, never empty.
#[derive(Clone, Default)]
struct Block {
    /// [`key`] of the first name, so the index search compares integers.
    first: u64,
    text: String,
}

/// The first eight bytes of a name as a big-endian integer, zero-padded. Where two keys
/// differ they order as their names do: at the first differing byte both names have one, or
/// the one that ended there (padded with a zero) is a prefix of the other, so smaller either
/// way. Where they are equal the names must be compared.
fn key(name: &[u8]) -> u64 {
    let mut k = [0u8; 8];
    let n = name.len().min(8);
    k[..n].copy_from_slice(&name[..n]);
    u64::from_be_bytes(k)
}

/// Bytes of the entry for a name of `n` bytes.
fn entry_len(n: usize) -> usize {
    if n < LONG as usize {
        return 1 + n;
    }
    let mut digits = 1;
    let mut rest = (n - LONG as usize) >> 6;
    while rest > 0 {
        rest >>= 6;
        digits += 1;
    }
    1 + digits + n
}

/// Where the name of the entry at `at` starts and ends; the end is the next entry's offset.
fn entry(text: &[u8], at: usize) -> (usize, usize) {
    let b = text[at];
    if b < LONG {
        return (at + 1, at + 1 + b as usize);
    }
    // Digits of the excess over `LONG`, low first; bit 6 says another follows.
    let (mut n, mut shift, mut i) = (0usize, 0, at + 1);
    loop {
        let d = text[i];
        i += 1;
        n |= ((d & 0x3f) as usize) << shift;
        shift += 6;
        if d & 0x40 == 0 {
            break;
        }
    }
    (i, i + LONG as usize + n)
}

/// The name of the entry at `at`.
fn name_at(text: &[u8], at: usize) -> &[u8] {
    let (start, end) = entry(text, at);
    &text[start..end]
}

/// Insert the entry for `name` at offset `at`; returns its length.
fn put(text: &mut String, at: usize, name: &str) -> usize {
    let n = name.len();
    let len = entry_len(n);
    reserve(text, len);
    text.insert_str(at, name);
    if n < LONG as usize {
        text.insert(at, char::from(n as u8));
    } else {
        let mut prefix = [LONG; 12];
        let (mut rest, mut k) = (n - LONG as usize, 1);
        loop {
            let d = (rest & 0x3f) as u8;
            rest >>= 6;
            prefix[k] = if rest > 0 { d | 0x40 } else { d };
            k += 1;
            if rest == 0 {
                break;
            }
        }
        text.insert_str(at, std::str::from_utf8(&prefix[..k]).expect("ASCII"));
    }
    len
}

/// Make room for `extra` more bytes, a quarter more at a time and no further than [`BLOCK`]
/// unless one entry needs it, so a block's spare capacity stays a small fraction of it.
fn reserve(text: &mut String, extra: usize) {
    let need = text.len() + extra;
    if need > text.capacity() {
        let grown = text.capacity() + (text.capacity() / 4).max(16);
        text.reserve_exact(grown.min(BLOCK).max(need) - text.len());
    }
}

/// Where `name` is or would go in a block's text: the offset of the first entry not below it,
/// and whether that entry is `name`.
fn seek(text: &[u8], name: &[u8]) -> (usize, bool) {
    seek_from(text, name, 0)
}

/// [`seek`] from the entry at `from`, which must not be above `name`.
fn seek_from(text: &[u8], name: &[u8], from: usize) -> (usize, bool) {
    let k = key(name);
    let mut at = from;
    while at < text.len() {
        let (start, end) = entry(text, at);
        // Most names differ within eight bytes: compare them as one integer, read straight
        // from the block where it has eight bytes left, rather than call memcmp.
        let n = end - start;
        let ek = match text.get(start..start + 8) {
            Some(w) if n < 8 => {
                u64::from_be_bytes(w.try_into().expect("8 bytes")) & !(u64::MAX >> (8 * n))
            }
            Some(w) => u64::from_be_bytes(w.try_into().expect("8 bytes")),
            None => key(&text[start..end]),
        };
        let o = match ek.cmp(&k) {
            // Equal keys of names no longer than the key: the shorter is a prefix.
            Ordering::Equal if n <= 8 && name.len() <= 8 => n.cmp(&name.len()),
            Ordering::Equal => text[start..end].cmp(name),
            o => o,
        };
        match o {
            Ordering::Less => at = end,
            o => return (at, o == Ordering::Equal),
        }
    }
    (at, false)
}

/// The block where `name` is or would go: the last whose first name is not above it, or the
/// first block.
fn locate(blocks: &[Block], name: &[u8]) -> usize {
    let k = key(name);
    blocks
        .partition_point(|b| b.starts_by(name, k))
        .saturating_sub(1)
}

/// A position among the entries: block and offset. The offset is always that of an entry, so
/// the end of a block is written as the start of the next, and the end of the set is
/// `(blocks, 0)`; then positions compare as tuples.
type Pos = (usize, usize);

/// The position of the first name not below `name`, or above it if `past`.
fn position(blocks: &[Block], name: &[u8], past: bool) -> Pos {
    if blocks.is_empty() {
        return (0, 0);
    }
    let i = locate(blocks, name);
    let text = blocks[i].text.as_bytes();
    let (mut at, found) = seek(text, name);
    if found && past {
        at = entry(text, at).1;
    }
    if at == text.len() {
        (i + 1, 0)
    } else {
        (i, at)
    }
}

impl Block {
    fn new(name: &str) -> Block {
        let mut text = String::new();
        put(&mut text, 0, name);
        Block {
            first: key(name.as_bytes()),
            text,
        }
    }

    fn first_name(&self) -> &[u8] {
        name_at(self.text.as_bytes(), 0)
    }

    /// Whether the first name is not above `name`, whose key is `k`.
    fn starts_by(&self, name: &[u8], k: u64) -> bool {
        self.first < k || (self.first == k && self.first_name() <= name)
    }

    fn refresh(&mut self) {
        self.first = key(self.first_name());
    }
}

impl Blocks {
    fn as_slice(&self) -> &[Block] {
        match self {
            Blocks::One(b) => std::slice::from_ref(b),
            Blocks::Many(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Block] {
        match self {
            Blocks::One(b) => std::slice::from_mut(b),
            Blocks::Many(v) => v,
        }
    }

    /// The blocks as a vector, to add or drop one.
    fn vec(&mut self) -> &mut Vec<Block> {
        if let Blocks::One(b) = self {
            let b = std::mem::take(b);
            *self = Blocks::Many(vec![b]);
        }
        match self {
            Blocks::Many(v) => v,
            Blocks::One(_) => unreachable!("just made a vector"),
        }
    }

    /// After dropping a block: back to a single one when only one is left.
    fn unvec(&mut self) {
        if let Blocks::Many(v) = self {
            if v.len() == 1 {
                let b = v.pop().expect("one block");
                *self = Blocks::One(b);
            } else if v.capacity() >= 4 * v.len() {
                v.shrink_to(2 * v.len());
            }
        }
    }
}

impl Set {
    fn insert(&mut self, name: &str) -> bool {
        let bytes = name.as_bytes();
        let blocks = self.blocks.as_mut_slice();
        let last = blocks.len() - 1;
        let i = if blocks[last].starts_by(bytes, key(bytes)) {
            last
        } else {
            locate(blocks, bytes)
        };
        let block = &mut blocks[i];
        let text = block.text.as_bytes();
        let tail = self.tail as usize;
        let from = if i == last && name_at(text, tail) < bytes {
            tail
        } else {
            0
        };
        let (at, found) = seek_from(text, bytes, from);
        if found {
            return false;
        }
        self.len += 1;
        let len = entry_len(bytes.len());
        if at == block.text.len() && at + len > BLOCK {
            // After the end of a full block: open the next block (or a new one) instead of
            // growing this one only to cut it again, so in-order runs leave it full.
            self.tail = 0;
            let blocks = self.blocks.vec();
            match blocks.get_mut(i + 1) {
                Some(next) if next.text.len() + len <= BLOCK => {
                    put(&mut next.text, 0, name);
                    next.first = key(bytes);
                }
                _ => blocks.insert(i + 1, Block::new(name)),
            }
            return true;
        }
        put(&mut block.text, at, name);
        if at == 0 {
            block.first = key(bytes);
        }
        if block.text.len() > BLOCK {
            self.tail = 0;
            self.overflow(i, at);
        } else if i == last {
            // The new entry's start is as good as the old mark, and after an append better.
            self.tail = u32::try_from(at).unwrap_or(0);
        }
        true
    }

    /// Bring block `i` back within [`BLOCK`] after an insert at `at`: move its shortest tail
    /// that is enough into the next block, or its shortest such head into the previous one, if
    /// they have room; else keep the most that fits and put the rest in new blocks. Scans start
    /// from `at` where they can: in a run of inserts the block's end is near it.
    fn overflow(&mut self, i: usize, at: usize) {
        let blocks = self.blocks.as_mut_slice();
        let text = blocks[i].text.as_bytes();
        let size = text.len();
        let excess = size - BLOCK;
        // Tail: the shortest run of whole entries at the end that is at least `excess` long,
        // never the whole block (`tail` 0: none). Unless the block was one long name, it
        // starts no earlier than the new entry, which alone is enough.
        let mut tail = 0;
        let mut b = if at > 0 && size - at >= excess {
            at
        } else {
            entry(text, 0).1
        };
        while b < size && size - b >= excess {
            tail = b;
            b = entry(text, b).1;
        }
        if tail > 0 && blocks.len() > i + 1 && blocks[i + 1].text.len() + size - tail <= BLOCK {
            let (left, right) = blocks.split_at_mut(i + 1);
            let (block, next) = (&mut left[i], &mut right[0]);
            reserve(&mut next.text, size - tail);
            next.text.insert_str(0, &block.text[tail..]);
            next.refresh();
            block.text.truncate(tail);
            return;
        }
        // Head: the first entry start at least `excess` in (`size`: none).
        let mut head = entry(text, 0).1;
        while head < excess {
            head = entry(text, head).1;
        }
        if head < size && i > 0 && blocks[i - 1].text.len() + head <= BLOCK {
            let (left, right) = blocks.split_at_mut(i);
            let (prev, block) = (&mut left[i - 1], &mut right[0]);
            reserve(&mut prev.text, head);
            prev.text.push_str(&block.text[..head]);
            block.text.replace_range(..head, "");
            block.refresh();
            return;
        }
        let blocks = self.blocks.vec();
        let (mut i, mut at) = (i, at);
        loop {
            let text = blocks[i].text.as_bytes();
            // The last entry start within the limit, but at least one entry kept.
            let mut cut = if at > 0 && at <= BLOCK {
                at
            } else {
                entry(text, 0).1
            };
            while cut < text.len() {
                let next = entry(text, cut).1;
                if next > BLOCK {
                    break;
                }
                cut = next;
            }
            if cut >= text.len() {
                break;
            }
            let rest = blocks[i].text.split_off(cut);
            let mut block = Block {
                first: 0,
                text: rest,
            };
            block.refresh();
            i += 1;
            at = 0;
            blocks.insert(i, block);
        }
    }

    /// Remove a name; the set may be left empty, for the caller to drop.
    fn remove(&mut self, name: &str) -> bool {
        let bytes = name.as_bytes();
        let blocks = self.blocks.as_mut_slice();
        let i = locate(blocks, bytes);
        let block = &mut blocks[i];
        let text = block.text.as_bytes();
        let (at, found) = seek(text, bytes);
        if !found {
            return false;
        }
        let end = entry(text, at).1;
        block.text.replace_range(at..end, "");
        self.len -= 1;
        self.tail = 0;
        if self.len == 0 {
            return true;
        }
        if block.text.is_empty() {
            self.blocks.vec().remove(i);
            self.blocks.unvec();
            return true;
        }
        if at == 0 {
            block.refresh();
        }
        let size = block.text.len();
        if size < SMALL_BLOCK && self.merge(i) {
            return true;
        }
        let text = &mut self.blocks.as_mut_slice()[i].text;
        if text.capacity() >= 2 * size + 32 {
            // Give back what removals freed, leaving a little room to grow.
            text.shrink_to(size + size / 4);
        }
        true
    }

    /// Merge small block `i` into a neighbour that has room: the previous one by preference,
    /// as appending to it moves only the small block's bytes. False if neither has room.
    fn merge(&mut self, i: usize) -> bool {
        let Blocks::Many(blocks) = &mut self.blocks else {
            return false;
        };
        let size = blocks[i].text.len();
        let into = if i > 0 && blocks[i - 1].text.len() + size <= BLOCK {
            i - 1
        } else if i + 1 < blocks.len() && blocks[i + 1].text.len() + size <= BLOCK {
            i
        } else {
            return false;
        };
        let from = blocks.remove(into + 1);
        reserve(&mut blocks[into].text, from.text.len());
        blocks[into].text.push_str(&from.text);
        self.blocks.unvec();
        true
    }
}

impl Children {
    pub fn new() -> Children {
        Children(None)
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub fn contains(&self, name: &str) -> bool {
        let Some(set) = self.0.as_deref() else {
            return false;
        };
        let blocks = set.blocks.as_slice();
        let name = name.as_bytes();
        seek(blocks[locate(blocks, name)].text.as_bytes(), name).1
    }

    /// Add a name; false if it was already there.
    pub fn insert(&mut self, name: &str) -> bool {
        match &mut self.0 {
            Some(set) => set.insert(name),
            None => {
                self.0 = Some(Box::new(Set {
                    len: 1,
                    tail: 0,
                    blocks: Blocks::One(Block::new(name)),
                }));
                true
            }
        }
    }

    /// Remove a name; false if it was not there.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(set) = &mut self.0 else {
            return false;
        };
        if !set.remove(name) {
            return false;
        }
        if set.len == 0 {
            self.0 = None;
        }
        true
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
        let blocks = match self.0.as_deref() {
            Some(set) => set.blocks.as_slice(),
            None => &[],
        };
        let front = match range.start_bound() {
            Bound::Included(s) => position(blocks, s.as_ref().as_bytes(), false),
            Bound::Excluded(s) => position(blocks, s.as_ref().as_bytes(), true),
            Bound::Unbounded => (0, 0),
        };
        let back = match range.end_bound() {
            Bound::Included(e) => position(blocks, e.as_ref().as_bytes(), true),
            Bound::Excluded(e) => position(blocks, e.as_ref().as_bytes(), false),
            Bound::Unbounded => (blocks.len(), 0),
        };
        Iter {
            blocks,
            front,
            back,
            marks: [0; MARKS],
            marked: 0,
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

/// Entry starts an iterator remembers for stepping backwards.
const MARKS: usize = 8;

/// Iterator over child names, in order.
#[derive(Clone)]
pub struct Iter<'a> {
    blocks: &'a [Block],
    /// The next name forwards.
    front: Pos,
    /// Just past the next name backwards.
    back: Pos,
    /// Starts of the last `marked` entries before `back` in its block, in order. Lengths
    /// cannot be read backwards, so stepping back scans the block from its start, keeping a
    /// few starts each time rather than one.
    marks: [usize; MARKS],
    marked: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.front >= self.back {
            return None;
        }
        let (i, at) = self.front;
        let blocks = self.blocks;
        let text = &blocks[i].text;
        let (start, end) = entry(text.as_bytes(), at);
        self.front = if end == text.len() {
            (i + 1, 0)
        } else {
            (i, end)
        };
        Some(&text[start..end])
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front >= self.back {
            return None;
        }
        let (mut i, mut end) = self.back;
        if end == 0 {
            i -= 1;
            end = self.blocks[i].text.len();
            // The last step back took the block's first entry, and with it the last mark.
            debug_assert_eq!(self.marked, 0);
        }
        let blocks = self.blocks;
        let text = &blocks[i].text;
        if self.marked == 0 {
            let (mut at, mut seen) = (0, 0);
            while at < end {
                self.marks[seen % MARKS] = at;
                seen += 1;
                at = entry(text.as_bytes(), at).1;
            }
            if seen > MARKS {
                self.marks.rotate_left(seen % MARKS);
            }
            self.marked = seen.min(MARKS);
        }
        self.marked -= 1;
        let at = self.marks[self.marked];
        self.back = (i, at);
        let (start, end) = entry(text.as_bytes(), at);
        Some(&text[start..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn sizes() {
        assert_eq!(std::mem::size_of::<Children>(), 8);
        // The box of a set with one block fits a 48-byte allocation.
        assert!(std::mem::size_of::<Set>() <= 40);
    }

    impl Children {
        /// Every block sorted, well formed, non-empty and within the limit unless it is one
        /// long name; keys right; the count right; a lone block not in a vector.
        fn check(&self) {
            let Some(set) = self.0.as_deref() else {
                return;
            };
            if let Blocks::Many(v) = &set.blocks {
                assert!(v.len() > 1, "a lone block in a vector");
            }
            let (mut count, mut last) = (0, None::<&[u8]>);
            for block in set.blocks.as_slice() {
                let text = block.text.as_bytes();
                assert!(!text.is_empty());
                assert_eq!(block.first, key(block.first_name()));
                let (mut at, mut entries) = (0, 0);
                while at < text.len() {
                    let (start, end) = entry(text, at);
                    assert!(end <= text.len());
                    assert_eq!(end - at, entry_len(end - start));
                    let name = &text[start..end];
                    assert!(last.is_none_or(|l| l < name), "out of order");
                    last = Some(name);
                    at = end;
                    entries += 1;
                }
                assert!(text.len() <= BLOCK || entries == 1, "overfull block");
                count += entries;
            }
            assert_eq!(count, set.len as usize);
            let last = &set.blocks.as_slice()[set.blocks.as_slice().len() - 1].text;
            let mut at = 0;
            while at < set.tail as usize {
                at = entry(last.as_bytes(), at).1;
            }
            assert_eq!(at, set.tail as usize, "tail not at an entry");
            assert!(at < last.len());
        }

        /// Bytes of names and prefixes over the bytes the blocks could hold.
        fn fill(&self) -> f64 {
            let blocks = self.0.as_deref().map_or(&[][..], |s| s.blocks.as_slice());
            let used: usize = blocks.iter().map(|b| b.text.len()).sum();
            used as f64 / (blocks.len() * BLOCK) as f64
        }
    }

    #[test]
    fn orders_like_strings_and_empties_to_nothing() {
        let long = "a-name-well-over-twenty-two-bytes";
        let names = ["b", "a", "", "ab", "\u{e9}t\u{e9}", long, "a/", "z", "a0"];
        let mut c = Children::new();
        for n in names {
            assert!(c.insert(n));
            c.check();
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
            c.check();
        }
        assert!(!c.remove("a"));
        assert!(c.is_empty() && c.0.is_none());
        assert_eq!(c.iter().next(), None);
    }

    #[test]
    fn length_prefixes_round_trip() {
        for n in [
            0, 1, 126, 127, 128, 190, 191, 192, 4222, 4223, 4224, 300_000,
        ] {
            let name = "y".repeat(n);
            let mut text = String::from("pre");
            let len = put(&mut text, 3, &name);
            assert_eq!(len, entry_len(n));
            assert_eq!(text.len(), 3 + len);
            assert_eq!(
                entry(text.as_bytes(), 3),
                (3 + len - n, 3 + len),
                "length {n}"
            );
        }
    }

    /// Runs of inserts that each land just after the last leave full blocks: names in byte
    /// order, and numbers in counting order (1, 10, 100, 1000 and then 1001 sit apart).
    #[test]
    fn packs_runs_full() {
        let numbers: Vec<String> = (0..3000).map(|i| i.to_string()).collect();
        let mut sorted = numbers.clone();
        sorted.sort();
        for names in [&numbers, &sorted] {
            let mut c = Children::new();
            for n in names {
                assert!(c.insert(n));
            }
            c.check();
            assert!(c.fill() > 0.9, "{:.2} full", c.fill());
            assert!(c.iter().eq(sorted.iter().map(String::as_str)));
        }
    }

    /// Random inserts, removals and range reads against a `BTreeSet<String>`, through every
    /// shape: one block, many built in order, and many split, shifted and merged at random;
    /// with names long enough to need a long prefix or a block of their own.
    #[test]
    fn matches_a_btreeset() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..60 {
            let mut c = Children::new();
            let mut model = BTreeSet::new();
            // Half the rounds start with a long run in order, as a snapshot load does.
            if round % 2 == 0 {
                for i in 0..(rand(300) + 20) {
                    let name = format!("n{i:010}");
                    assert!(c.insert(&name));
                    model.insert(name);
                }
                c.check();
            }
            // Some rounds keep names short, some mix in long ones and a few very long.
            let long = round % 3;
            for op in 0..600 {
                let name = match rand(16) {
                    0 if long > 0 => {
                        format!("{}{}", rand(50), "l".repeat(120 + rand(150) as usize))
                    }
                    1 if long == 2 && rand(20) == 0 => format!("{}{}", rand(5), "v".repeat(4300)),
                    2 | 3 => format!("{}-a-long-name-beyond-the-inline-limit", rand(200)),
                    4 if rand(10) == 0 => String::new(),
                    5 => format!("\u{e9}{}", rand(30)),
                    // Zero bytes, which pad the integer keys: "n" < "n\0" < "n\0\0" all the same.
                    6 if rand(4) == 0 => format!("n{}", "\0".repeat(rand(12) as usize)),
                    _ => format!("n{:010}", rand(400)),
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
                if op % 7 == 0 {
                    c.check();
                }
            }
            c.check();
            assert!(c.iter().eq(model.iter().map(String::as_str)));
            assert!(c.iter().rev().eq(model.iter().rev().map(String::as_str)));
            let probes = ["", "n0000000100", "n0000000100x", "n0000000250", "1", "z"];
            for probe in probes {
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
                for to in probes.iter().filter(|&&to| to > probe) {
                    // Both ends at once, stepping from either at random, and a copy taken
                    // halfway finishing on its own.
                    let bounds = (Bound::Included(probe), Bound::Excluded(*to));
                    let mut ours = c.range::<str, _>(bounds);
                    let mut theirs = model.range::<str, _>(bounds).map(String::as_str);
                    let mut steps = 0;
                    loop {
                        if steps == 5 {
                            assert!(ours.clone().eq(theirs.clone()));
                        }
                        steps += 1;
                        let (a, b) = if rand(2) == 0 {
                            (ours.next(), theirs.next())
                        } else {
                            (ours.next_back(), theirs.next_back())
                        };
                        assert_eq!(a, b, "{probe:?}..{to:?}");
                        if a.is_none() {
                            break;
                        }
                    }
                    assert_eq!(ours.next(), None);
                    assert_eq!(ours.next_back(), None);
                }
            }
            let mut names: Vec<String> = model.iter().cloned().collect();
            // Remove in a scattered order, so blocks empty and merge everywhere.
            for j in (1..names.len()).rev() {
                names.swap(j, rand(j as u64 + 1) as usize);
            }
            for (j, n) in names.iter().enumerate() {
                assert!(c.remove(n));
                if j % 5 == 0 {
                    c.check();
                }
            }
            assert!(c.0.is_none());
        }
    }
}
