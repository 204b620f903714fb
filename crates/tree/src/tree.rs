//! The znode tree and `apply(txn)`, the one place state changes.
//!
//! Invariants: every node's parent exists and lists it as a child; `/`, `/zookeeper`,
//! `/zookeeper/quota` and `/zookeeper/config` always exist; `ephemerals`, `containers` and
//! `ttls` index exactly the nodes whose `ephemeral_owner` says so; `digest` is the wrapping sum
//! of [`node_digest`] over all nodes (ZooKeeper's AdHash), kept up to date on every change so a
//! txn's digest is known the moment it is applied. Applying a txn returns the watches it fired
//! as data; this crate never knows who is connected.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hashbrown::HashTable;
use zooid_proto::{Acl, CreateKind, ErrorCode, Stat, Txn, TxnHeader};

use crate::acl::{AclCache, AclRef};
use crate::children::Children;
use crate::data::Data;
use crate::javaset::JavaHashSet;
use crate::watch::{parent_of, Fired, SessionId, WatchKind, WatchTable};

/// `ephemeralOwner` marker of container nodes (`Long.MIN_VALUE`).
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// Top byte marking an "extended" owner; with extended type 0 the low 40 bits are a TTL.
const EXTENDED_MASK: i64 = 0xff00_0000_0000_0000u64 as i64;
const TTL_VALUE_MASK: i64 = 0x0000_00ff_ffff_ffff;

pub const QUOTA_ROOT: &str = "/zookeeper/quota";
pub const CONFIG_NODE: &str = "/zookeeper/config";
pub const LIMIT_NODE: &str = "zookeeper_limits";
pub const STAT_NODE: &str = "zookeeper_stats";

/// The kind of node an owner value denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    None,
    Session(SessionId),
    Container,
    Ttl(i64),
}

impl Owner {
    pub fn from_raw(raw: i64) -> Owner {
        if raw == 0 {
            Owner::None
        } else if raw == CONTAINER_OWNER {
            Owner::Container
        } else if raw & EXTENDED_MASK == EXTENDED_MASK && (raw >> 40) & 0xffff == 0 {
            Owner::Ttl(raw & TTL_VALUE_MASK)
        } else {
            Owner::Session(raw)
        }
    }

    pub fn raw(self) -> i64 {
        match self {
            Owner::None => 0,
            Owner::Session(s) => s,
            Owner::Container => CONTAINER_OWNER,
            Owner::Ttl(ttl) => EXTENDED_MASK | (ttl & TTL_VALUE_MASK),
        }
    }

    /// What clients see in Stat.ephemeralOwner: only real sessions.
    pub fn client_visible(self) -> i64 {
        match self {
            Owner::Session(s) => s,
            _ => 0,
        }
    }
}

/// The persisted part of a Stat (`StatPersisted`).
///
/// Packed to 4-byte alignment: 60 bytes instead of 64, so a node's ACL ref fits beside it
/// rather than in a padded 8 more. Read fields by value (references to them are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C, packed(4))]
pub struct StatPersisted {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Node {
    /// `None` is null data, kept apart from empty as ZooKeeper does.
    pub data: Option<Data>,
    pub acl: AclRef,
    pub stat: StatPersisted,
    pub children: Children,
}

impl Node {
    pub fn owner(&self) -> Owner {
        Owner::from_raw(self.stat.ephemeral_owner)
    }

    pub fn data_len(&self) -> usize {
        self.data.as_deref().map_or(0, <[u8]>::len)
    }

    /// The Stat clients see. The stored cversion counts creates only; clients see creates
    /// plus deletes, which ZooKeeper derives as `2 * stored - numChildren` (`DataNode.copyStat`).
    pub fn client_stat(&self) -> Stat {
        let s = &self.stat;
        let num_children = self.children.len() as i32;
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion.wrapping_mul(2).wrapping_sub(num_children),
            aversion: s.aversion,
            ephemeral_owner: self.owner().client_visible(),
            data_length: self.data_len() as i32,
            num_children,
            pzxid: s.pzxid,
        }
    }
}

/// The part of ZooKeeper's per-node digest that covers path and data: a CRC32 state to be
/// finished with the stat by [`digest_with_stat`]. `None` for nodes below `/zookeeper/`,
/// which the digest leaves out. Keeping this state lets a stat-only change be re-digested
/// without the data.
pub fn digest_prefix(path: &str, data: Option<&[u8]>) -> Option<crc32fast::Hasher> {
    if path.starts_with("/zookeeper/") {
        return None;
    }
    let path = if path == "/" { "" } else { path };
    let mut h = crc32fast::Hasher::new();
    h.update(path.as_bytes());
    if let Some(d) = data {
        h.update(d);
    }
    Some(h)
}

/// Finish a node digest: the stat's 60 bytes in the digest's field order (czxid, mzxid,
/// pzxid, ctime, mtime, version, cversion, aversion, ephemeralOwner).
pub fn digest_with_stat(prefix: &Option<crc32fast::Hasher>, s: &StatPersisted) -> u64 {
    let Some(h) = prefix else {
        return 0;
    };
    let mut h = h.clone();
    let mut b = [0u8; 60];
    b[0..8].copy_from_slice(&s.czxid.to_be_bytes());
    b[8..16].copy_from_slice(&s.mzxid.to_be_bytes());
    b[16..24].copy_from_slice(&s.pzxid.to_be_bytes());
    b[24..32].copy_from_slice(&s.ctime.to_be_bytes());
    b[32..40].copy_from_slice(&s.mtime.to_be_bytes());
    b[40..44].copy_from_slice(&s.version.to_be_bytes());
    b[44..48].copy_from_slice(&s.cversion.to_be_bytes());
    b[48..52].copy_from_slice(&s.aversion.to_be_bytes());
    b[52..60].copy_from_slice(&s.ephemeral_owner.to_be_bytes());
    h.update(&b);
    h.finalize() as u64
}

/// ZooKeeper's per-node digest: CRC32 of path, data and 60 bytes of stat; 0 for nodes below
/// `/zookeeper/`. The root is hashed as "".
pub fn node_digest(path: &str, node: &Node) -> u64 {
    digest_with_stat(&digest_prefix(path, node.data.as_deref()), &node.stat)
}

/// Nodes by path: the entries live in a [`Slab`] and are named by `u32` ids, which 64 hash
/// tables, chosen by the path's hash, map paths to. One table of a million nodes rehashes and
/// moves every entry at once when it grows, stalling requests for a large part of a second; a
/// shard grows one sixty-fourth at a time.
///
/// An open-addressing table is between 44% and 87.5% full, so its slots must be small: an id
/// is 4 bytes. A boxed entry per node would also pay the allocator's header and rounding (128
/// bytes for a 120-byte entry); slab slots cost their size alone, and the slab's chunks never
/// move, so its growth copies nothing. Shards shrink once mostly empty and the slab frees
/// emptied chunks, so a tree that shrinks gives its memory back.
#[derive(Debug, Clone)]
struct NodeMap {
    /// An array rather than a `Vec`: picking a shard then takes no bounds check and no load,
    /// which lookups, one step longer through the slab, measurably gained from.
    shards: [HashTable<u32>; NODE_SHARDS],
    slab: Slab,
}

/// A node together with its path, the table's key (short paths need no allocation).
#[derive(Debug, Clone)]
struct Entry {
    path: Name,
    node: Node,
}

/// Longest path stored inline (a `Name` is 24 bytes either way).
const INLINE_NAME: usize = 22;

/// A path that lives inline when short, else on the heap: the node table's key.
#[derive(Clone)]
enum Name {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Heap(Box<str>),
}

impl Name {
    fn new(s: &str) -> Name {
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

    fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..*len as usize],
            Name::Heap(s) => s.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied from a `str` whole, so always valid; checking costs little at this size.
            Name::Inline { .. } => std::str::from_utf8(self.as_bytes()).expect("copied from a str"),
            Name::Heap(s) => s,
        }
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

const NODE_SHARDS: usize = 64;

/// A shard no larger than this is never shrunk, so a shard that keeps going between empty and
/// a few nodes does not allocate and free its table every time.
const SHARD_KEEP: usize = 64;

impl Default for NodeMap {
    fn default() -> Self {
        NodeMap {
            shards: std::array::from_fn(|_| HashTable::new()),
            slab: Slab::default(),
        }
    }
}

impl NodeMap {
    fn hash(path: &[u8]) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = rustc_hash::FxBuildHasher.build_hasher();
        h.write(path);
        h.finish()
    }

    /// The shard takes bits 50..56 of the hash: hashbrown picks buckets with the low bits and
    /// tags them with the top seven, which must stay varied within a shard.
    fn locate(path: &str) -> (usize, u64) {
        let h = Self::hash(path.as_bytes());
        ((h >> 50) as usize % NODE_SHARDS, h)
    }

    fn find(&self, path: &str) -> Option<u32> {
        let (s, h) = Self::locate(path);
        self.shards[s]
            .find(h, |&id| {
                self.slab.get(id).path.as_bytes() == path.as_bytes()
            })
            .copied()
    }

    fn get(&self, path: &str) -> Option<&Node> {
        // The entry found is kept rather than found again from its id, which measurably slowed
        // lookups (most of the tree's reads).
        let (s, h) = Self::locate(path);
        let mut found = None;
        self.shards[s].find(h, |&id| {
            let e = self.slab.get(id);
            let hit = e.path.as_bytes() == path.as_bytes();
            if hit {
                found = Some(&e.node);
            }
            hit
        });
        found
    }

    fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        self.find(path).map(|id| &mut self.slab.get_mut(id).node)
    }

    fn contains_key(&self, path: &str) -> bool {
        self.find(path).is_some()
    }

    fn insert(&mut self, path: &str, node: Node) -> Option<Node> {
        let (s, h) = Self::locate(path);
        let slab = &self.slab;
        match self.shards[s].entry(
            h,
            |&id| slab.get(id).path.as_bytes() == path.as_bytes(),
            |&id| Self::hash(slab.get(id).path.as_bytes()),
        ) {
            hashbrown::hash_table::Entry::Occupied(o) => Some(std::mem::replace(
                &mut self.slab.get_mut(*o.get()).node,
                node,
            )),
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(self.slab.insert(Entry {
                    path: Name::new(path),
                    node,
                }));
                None
            }
        }
    }

    fn remove(&mut self, path: &str) -> Option<Node> {
        let (s, h) = Self::locate(path);
        let (slab, shard) = (&self.slab, &mut self.shards[s]);
        let (id, _) = shard
            .find_entry(h, |&id| slab.get(id).path.as_bytes() == path.as_bytes())
            .ok()?
            .remove();
        // hashbrown never shrinks on its own; without this a tree that had a million nodes
        // would keep their tables for good. Shrinking at a quarter full to room for twice the
        // entries leaves the shard at most half full, so it grows or shrinks again only after
        // many more changes.
        if shard.capacity() > SHARD_KEEP && shard.len() * 4 < shard.capacity() {
            let keep = shard.len() * 2;
            shard.shrink_to(keep, |&id| Self::hash(slab.get(id).path.as_bytes()));
        }
        Some(self.slab.remove(id).node)
    }

    fn len(&self) -> usize {
        self.slab.len
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.slab.iter().map(|e| (e.path.as_str(), &e.node))
    }

    fn clear(&mut self) {
        self.shards.iter_mut().for_each(HashTable::clear);
        self.slab = Slab::default();
    }
}

/// Slots per chunk: 240 KiB of 120-byte entries, large enough that the allocator maps each
/// chunk on its own and unmaps it when it is freed, small enough that a small tree's one chunk
/// costs little. A power of two, so that an id splits with a shift and a mask: every lookup
/// splits one, and a division by another constant measurably slowed lookups.
const CHUNK_SLOTS: usize = 2048;
const _: () = assert!(CHUNK_SLOTS.is_power_of_two());

/// Node entries in fixed-size chunks, each entry named by an id: chunk number times
/// [`CHUNK_SLOTS`] plus its slot.
///
/// New entries take a free slot in the lowest chunk that has one, so after many deletes the
/// high chunks empty out, and a chunk's memory is freed as soon as its last entry goes. Only
/// when every chunk holding memory is full is a chunk allocated, again the lowest free number.
#[derive(Debug, Clone, Default)]
struct Slab {
    chunks: Vec<Chunk>,
    /// Numbers of the chunks holding memory with a free slot.
    open: BTreeSet<u32>,
    /// Numbers of the chunks holding no memory, below the last chunk.
    holes: BTreeSet<u32>,
    /// The memory of one emptied chunk, kept so that a tree whose size goes back and forth
    /// across a chunk boundary does not free and allocate a chunk on every create and delete.
    spare: Option<Block>,
    len: usize,
}

#[derive(Debug, Clone, Default)]
struct Chunk {
    /// `None` while the chunk holds no entry.
    slots: Option<Block>,
    live: u32,
    /// The first slot of the chunk's list of free slots; `CHUNK_SLOTS` ends the list.
    free: u32,
}

#[derive(Debug, Clone)]
enum Slot {
    Used(Entry),
    /// A free slot, with the next free one of its chunk.
    Free(u32),
}

/// A chunk's slots. Their number is part of the type, so indexing by an id's low bits needs no
/// bounds check.
///
/// Shared, copy on write: a [`FrozenNodes`] holds the chunks as they were, and the live table
/// copies a chunk the first time it changes it while a frozen copy holds it. Cloning a block
/// only shares it.
#[derive(Debug, Clone)]
struct Block(Arc<[Slot; CHUNK_SLOTS]>);

impl Block {
    /// Every slot free, each listing the next.
    fn new() -> Block {
        Block::from_vec((0..CHUNK_SLOTS).map(|i| Slot::Free(i as u32 + 1)).collect())
    }

    fn from_vec(slots: Vec<Slot>) -> Block {
        let slots: Box<[Slot; CHUNK_SLOTS]> = match slots.into_boxed_slice().try_into() {
            Ok(b) => b,
            Err(_) => unreachable!("a block has CHUNK_SLOTS slots"),
        };
        Block(Arc::from(slots))
    }

    /// The slots to change, copied first if a frozen copy shares them (through a `Vec`:
    /// cloning the array itself could build it on the stack).
    fn slots_mut(&mut self) -> &mut [Slot; CHUNK_SLOTS] {
        if Arc::get_mut(&mut self.0).is_none() {
            *self = Block::from_vec(self.0.to_vec());
        }
        Arc::get_mut(&mut self.0).expect("a block just copied is not shared")
    }
}

impl Slab {
    fn split(id: u32) -> (usize, usize) {
        let id = id as usize;
        (id / CHUNK_SLOTS, id % CHUNK_SLOTS)
    }

    /// The entry an id names. Ids come only from the node tables, which hold exactly the ids
    /// of live entries, so a free slot here is a broken invariant.
    fn get(&self, id: u32) -> &Entry {
        let (c, i) = Self::split(id);
        match self.chunks[c].slots.as_ref().map(|b| &b.0[i]) {
            Some(Slot::Used(e)) => e,
            _ => unreachable!("a node id names no entry"),
        }
    }

    fn get_mut(&mut self, id: u32) -> &mut Entry {
        let (c, i) = Self::split(id);
        match self.chunks[c].slots.as_mut().map(|b| &mut b.slots_mut()[i]) {
            Some(Slot::Used(e)) => e,
            _ => unreachable!("a node id names no entry"),
        }
    }

    fn insert(&mut self, entry: Entry) -> u32 {
        let c = match self.open.first() {
            Some(&c) => c as usize,
            None => self.add_chunk(),
        };
        let chunk = &mut self.chunks[c];
        let i = chunk.free as usize;
        let slots = chunk.slots.as_mut().expect("an open chunk holds memory");
        match std::mem::replace(&mut slots.slots_mut()[i], Slot::Used(entry)) {
            Slot::Free(next) => chunk.free = next,
            Slot::Used(_) => unreachable!("a used slot on the free list"),
        }
        chunk.live += 1;
        if chunk.live as usize == CHUNK_SLOTS {
            self.open.remove(&(c as u32));
        }
        self.len += 1;
        (c * CHUNK_SLOTS + i) as u32
    }

    /// Give the lowest chunk number without memory (a new one if there is none) its memory,
    /// with every slot free, and open it.
    fn add_chunk(&mut self) -> usize {
        let c = match self.holes.pop_first() {
            Some(c) => c as usize,
            None => {
                let c = self.chunks.len();
                // Every id of the new chunk must fit in a u32.
                u32::try_from((c + 1) * CHUNK_SLOTS - 1).expect("too many znodes for u32 ids");
                self.chunks.push(Chunk::default());
                c
            }
        };
        let slots = match self.spare.take() {
            Some(mut b) => {
                // All its slots are free, but listed in the order they were freed.
                for (i, s) in b.slots_mut().iter_mut().enumerate() {
                    *s = Slot::Free(i as u32 + 1);
                }
                b
            }
            None => Block::new(),
        };
        self.chunks[c] = Chunk {
            slots: Some(slots),
            live: 0,
            free: 0,
        };
        self.open.insert(c as u32);
        c
    }

    fn remove(&mut self, id: u32) -> Entry {
        let (c, i) = Self::split(id);
        let chunk = &mut self.chunks[c];
        let slots = chunk.slots.as_mut().expect("node id names no chunk");
        let Slot::Used(entry) =
            std::mem::replace(&mut slots.slots_mut()[i], Slot::Free(chunk.free))
        else {
            unreachable!("a node id names no entry")
        };
        chunk.free = i as u32;
        if chunk.live as usize == CHUNK_SLOTS {
            self.open.insert(c as u32);
        }
        chunk.live -= 1;
        self.len -= 1;
        if chunk.live == 0 {
            let slots = chunk.slots.take();
            if self.spare.is_none() {
                self.spare = slots;
            }
            self.open.remove(&(c as u32));
            self.holes.insert(c as u32);
            // Chunks without memory at the end need not be remembered at all.
            while self.chunks.last().is_some_and(|k| k.slots.is_none()) {
                self.chunks.pop();
                self.holes.remove(&(self.chunks.len() as u32));
            }
        }
        entry
    }

    fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.chunks
            .iter()
            .filter_map(|c| c.slots.as_ref())
            .flat_map(|b| b.0.iter())
            .filter_map(|s| match s {
                Slot::Used(e) => Some(e),
                Slot::Free(_) => None,
            })
    }

    /// Check the bookkeeping against the slots themselves.
    #[cfg(test)]
    fn check(&self) {
        let mut len = 0;
        for (c, chunk) in self.chunks.iter().enumerate() {
            let c32 = c as u32;
            let Some(Block(slots)) = chunk.slots.as_ref() else {
                assert!(
                    self.holes.contains(&c32) && !self.open.contains(&c32),
                    "{c}"
                );
                assert!(c + 1 < self.chunks.len(), "a trailing chunk without memory");
                continue;
            };
            assert!(!self.holes.contains(&c32), "{c}");
            let used = slots.iter().filter(|s| matches!(s, Slot::Used(_))).count();
            assert_eq!(used, chunk.live as usize, "{c}");
            assert!(used > 0, "an empty chunk keeps its memory");
            assert_eq!(self.open.contains(&c32), used < CHUNK_SLOTS, "{c}");
            let (mut free, mut at) = (0, chunk.free as usize);
            while at < CHUNK_SLOTS {
                let Slot::Free(next) = slots[at] else {
                    panic!("slot {at} of chunk {c} is used but on the free list");
                };
                free += 1;
                at = next as usize;
            }
            assert_eq!(free + used, CHUNK_SLOTS, "{c}");
            len += used;
        }
        assert!(self
            .open
            .iter()
            .chain(&self.holes)
            .all(|&c| (c as usize) < self.chunks.len()));
        assert_eq!(len, self.len);
    }

    /// Chunks holding memory, the spare included.
    #[cfg(test)]
    fn allocated_chunks(&self) -> usize {
        self.chunks.iter().filter(|c| c.slots.is_some()).count() + usize::from(self.spare.is_some())
    }
}

/// The nodes of a tree at one moment, for a snapshot written on another thread while the
/// tree goes on changing.
///
/// Taking it shares the node table's chunks (a reference count each, some 500 at a million
/// nodes); the live table copies a chunk before its first change while this holds it, so
/// under a write load only the chunks that writes touch are ever copied, once each.
#[derive(Debug, Clone)]
pub struct FrozenNodes {
    chunks: Vec<Block>,
}

impl FrozenNodes {
    /// Every node, each after its parent: by depth, the root first, and by path within a
    /// depth. Any order with parents first loads; going by depth needs no lookups by path,
    /// and sorting puts each parent's children in name order, which a loading tree appends
    /// instead of inserting between others (a third of the load time at a million nodes).
    pub fn for_each_parents_first(&self, mut f: impl FnMut(&str, &Node)) {
        let mut by_depth: Vec<Vec<&Entry>> = Vec::new();
        for block in &self.chunks {
            for slot in block.0.iter() {
                if let Slot::Used(e) = slot {
                    let path = e.path.as_bytes();
                    let depth = if path == b"/" {
                        0
                    } else {
                        path.iter().filter(|&&b| b == b'/').count()
                    };
                    if by_depth.len() <= depth {
                        by_depth.resize_with(depth + 1, Vec::new);
                    }
                    by_depth[depth].push(e);
                }
            }
        }
        for mut level in by_depth {
            level.sort_unstable_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
            for e in level {
                f(e.path.as_str(), &e.node);
            }
        }
    }
}

/// What applying one (sub-)txn produced, for the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnResult {
    Created { path: String, stat: Stat },
    Deleted,
    DataSet { stat: Stat },
    AclSet { stat: Stat },
    Checked,
    Multi(Vec<TxnResult>),
    SessionCreated,
    SessionClosed,
    Error(ErrorCode),
}

/// The outcome of [`DataTree::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub result: TxnResult,
    pub fired: Vec<Fired>,
}

#[derive(Debug, Clone)]
pub struct DataTree {
    nodes: NodeMap,
    pub acls: AclCache,
    /// Per session, in a model of ZooKeeper's Java hash set so orders match (see javaset).
    ephemerals: BTreeMap<SessionId, JavaHashSet>,
    containers: BTreeSet<Box<str>>,
    ttls: BTreeSet<Box<str>>,
    /// Sessions with their timeouts, as created and closed by txns.
    sessions: BTreeMap<SessionId, i32>,
    pub watches: WatchTable,
    quota_paths: BTreeSet<String>,
    digest: u64,
    last_zxid: i64,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    /// An empty tree: `/`, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config`.
    pub fn new() -> DataTree {
        let mut t = DataTree {
            nodes: NodeMap::default(),
            acls: AclCache::default(),
            ephemerals: BTreeMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            sessions: BTreeMap::new(),
            watches: WatchTable::default(),
            quota_paths: BTreeSet::new(),
            digest: 0,
            last_zxid: 0,
        };
        // The built-in nodes hold empty (not null) data.
        let empty = || Node {
            data: Some(Data::new(&[])),
            acl: crate::acl::OPEN_ACL_REF,
            ..Default::default()
        };
        t.insert_raw("/", empty());
        t.insert_raw("/zookeeper", empty());
        t.insert_raw(QUOTA_ROOT, empty());
        let config_acl = t.acls.intern(&Acl::read_unsafe());
        let config = Node {
            acl: config_acl,
            stat: StatPersisted {
                aversion: -1,
                ..Default::default()
            },
            ..empty()
        };
        t.insert_raw(CONFIG_NODE, config);
        t
    }

    /// Insert a node as-is, linking it to its parent (used at start-up and by snapshots).
    pub fn insert_raw(&mut self, path: &str, node: Node) {
        if let Some(parent) = parent_of(path) {
            let name = &path[path.rfind('/').map_or(0, |i| i + 1)..];
            if let Some(p) = self.nodes.get_mut(parent) {
                p.children.insert(name);
            }
        }
        self.index(path, &node);
        self.digest = self.digest.wrapping_add(node_digest(path, &node));
        self.nodes.insert(path, node);
    }

    fn index(&mut self, path: &str, node: &Node) {
        match node.owner() {
            Owner::Session(s) => {
                self.ephemerals.entry(s).or_default().insert(path);
            }
            Owner::Container => {
                self.containers.insert(path.into());
            }
            Owner::Ttl(_) => {
                self.ttls.insert(path.into());
            }
            Owner::None => {}
        }
    }

    fn unindex(&mut self, path: &str, node: &Node) {
        match node.owner() {
            Owner::Session(s) => {
                // An emptied set stays until its session closes, as in ZooKeeper: its table
                // size shapes the order of later additions.
                if let Some(set) = self.ephemerals.get_mut(&s) {
                    set.remove(path);
                }
            }
            Owner::Container => {
                self.containers.remove(path);
            }
            Owner::Ttl(_) => {
                self.ttls.remove(path);
            }
            Owner::None => {}
        }
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.nodes.get(path).map(Node::client_stat)
    }

    pub fn acl_of(&self, node: &Node) -> Vec<Acl> {
        self.acls.get(node.acl)
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The nodes as they are now, cheaply (see [`FrozenNodes`]).
    pub fn freeze_nodes(&self) -> FrozenNodes {
        FrozenNodes {
            chunks: self
                .nodes
                .slab
                .chunks
                .iter()
                .filter_map(|c| c.slots.clone())
                .collect(),
        }
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    pub fn set_last_zxid(&mut self, zxid: i64) {
        self.last_zxid = zxid;
    }

    /// Put the ensemble's membership into `/zookeeper/config`, as ZooKeeper does each time a
    /// member loads its database (`initConfigInZKDatabase`): the QuorumVerifier text, version
    /// -1, mzxid the config's version, mtime now. Outside the digest (below /zookeeper/), so
    /// members may differ here as ZooKeeper's do (mtime).
    /// Its data watches fire, as ZooKeeper's setData fires them.
    pub fn set_config(&mut self, text: &[u8], config_version: i64, wall_ms: i64) -> Vec<Fired> {
        let mut fired = Vec::new();
        if let Some(n) = self.nodes.get_mut(CONFIG_NODE) {
            n.data = Some(Data::new(text));
            n.stat.version = -1;
            n.stat.mzxid = config_version;
            n.stat.mtime = wall_ms;
            let acl = self.acls.shared(n.acl);
            if self.watches.is_watched() {
                self.watches.data_changed(CONFIG_NODE, &acl, &mut fired);
            }
        }
        fired
    }

    /// The tree digest as ZooKeeper reports it (a signed long).
    pub fn digest(&self) -> i64 {
        self.digest as i64
    }

    /// Approximate bytes of data held (for `mntr`'s zk_approximate_data_size).
    pub fn approximate_data_size(&self) -> u64 {
        self.nodes
            .iter()
            .map(|(p, n)| (p.len() + n.data_len()) as u64)
            .sum()
    }

    /// An empty tree with no nodes at all, to be filled from a snapshot with
    /// [`DataTree::restore_node`] (parents before children) and [`DataTree::restore_session`].
    pub fn empty_for_restore() -> DataTree {
        let mut t = DataTree::new();
        t.nodes.clear();
        t.acls = AclCache::default();
        t.digest = 0;
        t
    }

    /// Load one snapshot node. The root may be given as "" or "/". Fails (returning a
    /// description) if the parent is missing or the ACL ref is unknown.
    pub fn restore_node(
        &mut self,
        path: &str,
        data: Option<Vec<u8>>,
        acl: AclRef,
        stat: StatPersisted,
    ) -> Result<(), String> {
        let path = if path.is_empty() { "/" } else { path };
        if path != "/" {
            let parent =
                parent_of(path).ok_or_else(|| format!("node {path:?} is not an absolute path"))?;
            if !self.nodes.contains_key(parent) {
                return Err(format!("node {path} comes before its parent {parent}"));
            }
        }
        if self.nodes.contains_key(path) {
            return Err(format!("node {path} appears twice"));
        }
        if !self.acls.add_ref(acl) {
            return Err(format!(
                "node {path} uses ACL ref {acl}, which the snapshot does not define"
            ));
        }
        let node = Node {
            data: data.map(Data::from),
            acl,
            stat,
            children: Children::new(),
        };
        self.insert_raw(path, node);
        if let Some(qpath) = parent_of(path).and_then(|p| p.strip_prefix(QUOTA_ROOT)) {
            if path.ends_with(&format!("/{LIMIT_NODE}")) && !qpath.is_empty() {
                self.quota_paths.insert(qpath.to_owned());
            }
        }
        Ok(())
    }

    pub fn restore_session(&mut self, session: SessionId, timeout_ms: i32) {
        self.sessions.insert(session, timeout_ms);
    }

    pub fn sessions(&self) -> &BTreeMap<SessionId, i32> {
        &self.sessions
    }

    /// Sessions that own ephemerals, with their paths (for `dump`).
    pub fn ephemerals(&self) -> impl Iterator<Item = (SessionId, Vec<String>)> + '_ {
        self.ephemerals
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(&id, s)| (id, s.iter().map(str::to_owned).collect()))
    }

    /// A copy of a session's ephemeral set, as ZooKeeper's `getEphemerals` clones it.
    pub fn ephemeral_set(&self, session: SessionId) -> JavaHashSet {
        self.ephemerals
            .get(&session)
            .map(JavaHashSet::java_clone)
            .unwrap_or_default()
    }

    /// A session's ephemeral paths in the order ZooKeeper reports them.
    pub fn ephemerals_of(&self, session: SessionId) -> Vec<String> {
        self.ephemeral_set(session)
            .iter()
            .map(str::to_owned)
            .collect()
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(JavaHashSet::len).sum()
    }

    /// All descendants of `path` (not the node itself).
    pub fn all_children_number(&self, path: &str) -> Option<i32> {
        let node = self.nodes.get(path)?;
        let mut count = 0i32;
        let mut stack: Vec<String> = node.children.iter().map(|c| join(path, c)).collect();
        while let Some(p) = stack.pop() {
            count += 1;
            if let Some(n) = self.nodes.get(p.as_str()) {
                stack.extend(n.children.iter().map(|c| join(&p, c)));
            }
        }
        Some(count)
    }

    /// Iterate nodes parents-first (depth first), for snapshots and dumps.
    pub fn walk(&self, mut f: impl FnMut(&str, &Node)) {
        let mut stack = vec!["/".to_string()];
        while let Some(p) = stack.pop() {
            if let Some(n) = self.nodes.get(p.as_str()) {
                f(&p, n);
                for c in n.children.iter().rev() {
                    stack.push(join(&p, c));
                }
            }
        }
    }

    /// Containers and TTL nodes due for deletion (`ContainerManager.getCandidates`).
    pub fn deletion_candidates(&self, now_ms: i64, max_never_used_ms: i64) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.containers {
            if let Some(n) = self.nodes.get(p) {
                if n.children.is_empty()
                    && (n.stat.cversion > 0
                        || (max_never_used_ms > 0 && now_ms - n.stat.mtime > max_never_used_ms))
                {
                    out.push(p.to_string());
                }
            }
        }
        for p in &self.ttls {
            if let Some(n) = self.nodes.get(p) {
                if let Owner::Ttl(ttl) = n.owner() {
                    if n.children.is_empty() && ttl != 0 && now_ms - n.stat.mtime > ttl {
                        out.push(p.to_string());
                    }
                }
            }
        }
        out
    }

    /// Apply one top-level txn. Errors in the result are normal outcomes (e.g. NoNode on
    /// replay); the tree is unchanged by a failed txn.
    pub fn apply(&mut self, hdr: &TxnHeader, txn: &Txn) -> Applied {
        let mut fired = Vec::new();
        let result = match txn {
            Txn::Multi(subs) => {
                let failed = subs.iter().any(|t| matches!(t, Txn::Error { .. }));
                let mut results = Vec::with_capacity(subs.len());
                if failed {
                    let mut after = false;
                    for t in subs {
                        let code = match t {
                            Txn::Error { err } => {
                                after = true;
                                *err
                            }
                            _ if after => ErrorCode::RuntimeInconsistency.code(),
                            _ => 0,
                        };
                        results.push(TxnResult::Error(
                            ErrorCode::from_i32(code).unwrap_or(ErrorCode::SystemError),
                        ));
                    }
                } else {
                    for t in subs {
                        results.push(self.apply_one(hdr, t, &mut fired));
                    }
                }
                TxnResult::Multi(results)
            }
            t => self.apply_one(hdr, t, &mut fired),
        };
        self.last_zxid = self.last_zxid.max(hdr.zxid);
        Applied { result, fired }
    }

    fn apply_one(&mut self, hdr: &TxnHeader, txn: &Txn, fired: &mut Vec<Fired>) -> TxnResult {
        let zxid = hdr.zxid;
        match txn {
            Txn::Create {
                kind,
                path,
                data,
                acl,
                ephemeral,
                parent_cversion,
            } => {
                let owner = match kind {
                    CreateKind::Container => Owner::Container,
                    CreateKind::Ttl(ttl) => Owner::Ttl(*ttl),
                    CreateKind::Plain { .. } if *ephemeral => Owner::Session(hdr.session_id),
                    CreateKind::Plain { .. } => Owner::None,
                };
                match self.create_node(
                    path,
                    data.as_deref(),
                    acl,
                    owner,
                    *parent_cversion,
                    zxid,
                    hdr.time_ms,
                    fired,
                ) {
                    Ok(stat) => TxnResult::Created {
                        path: path.clone(),
                        stat,
                    },
                    Err(e) => {
                        if e == ErrorCode::NodeExists
                            && matches!(kind, CreateKind::Plain { create2: false })
                        {
                            self.repair_parent(path, *parent_cversion, zxid);
                        }
                        TxnResult::Error(e)
                    }
                }
            }
            Txn::Delete { path, .. } => match self.delete_node(path, zxid, fired) {
                Ok(()) => TxnResult::Deleted,
                Err(e) => TxnResult::Error(e),
            },
            Txn::SetData {
                path,
                data,
                version,
            }
            | Txn::Reconfig {
                path,
                data,
                version,
            } => match self.set_data(path, data.as_deref(), *version, zxid, hdr.time_ms, fired) {
                Ok(stat) => TxnResult::DataSet { stat },
                Err(e) => TxnResult::Error(e),
            },
            Txn::SetAcl { path, acl, version } => match self.set_acl(path, acl, *version) {
                Ok(stat) => TxnResult::AclSet { stat },
                Err(e) => TxnResult::Error(e),
            },
            Txn::Check { path, .. } => {
                if self.nodes.contains_key(path.as_str()) {
                    TxnResult::Checked
                } else {
                    TxnResult::Error(ErrorCode::NoNode)
                }
            }
            Txn::CreateSession { timeout_ms } => {
                self.sessions.insert(hdr.session_id, *timeout_ms);
                TxnResult::SessionCreated
            }
            Txn::CloseSession { paths } => {
                let session = hdr.session_id;
                for p in paths.iter().flatten() {
                    let _ = self.delete_node(p, zxid, fired);
                }
                for p in self.ephemerals_of(session) {
                    let _ = self.delete_node(&p, zxid, fired);
                }
                self.ephemerals.remove(&session);
                self.sessions.remove(&session);
                TxnResult::SessionClosed
            }
            Txn::Error { err } => {
                TxnResult::Error(ErrorCode::from_i32(*err).unwrap_or(ErrorCode::SystemError))
            }
            Txn::Multi(_) => panic!("nested multi txn reached apply; the decoder rejects them"),
        }
    }

    /// Change one node in place, keeping the digest in step.
    fn update<T>(&mut self, path: &str, f: impl FnOnce(&mut Node) -> T) -> Option<T> {
        let node = self.nodes.get_mut(path)?;
        let before = node_digest(path, node);
        let out = f(node);
        let after = node_digest(path, node);
        self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
        Some(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn create_node(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        acl: &[Acl],
        owner: Owner,
        parent_cversion: i32,
        zxid: i64,
        time_ms: i64,
        fired: &mut Vec<Fired>,
    ) -> Result<Stat, ErrorCode> {
        let parent = parent_of(path).ok_or(ErrorCode::NodeExists)?;
        let name = &path[path.rfind('/').map_or(0, |i| i + 1)..];
        let Some(pnode) = self.nodes.get(parent) else {
            return Err(ErrorCode::NoNode);
        };
        if pnode.children.contains(name) || self.nodes.contains_key(path) {
            return Err(ErrorCode::NodeExists);
        }
        let new_cversion = if parent_cversion == -1 {
            pnode.stat.cversion + 1
        } else {
            parent_cversion
        };
        self.update(parent, |p| {
            p.children.insert(name);
            if new_cversion > p.stat.cversion {
                p.stat.cversion = new_cversion;
                p.stat.pzxid = zxid;
            }
        });
        let acl_ref = self.acls.intern(acl);
        let node = Node {
            data: data.map(Into::into),
            acl: acl_ref,
            stat: StatPersisted {
                czxid: zxid,
                mzxid: zxid,
                ctime: time_ms,
                mtime: time_ms,
                version: 0,
                cversion: 0,
                aversion: 0,
                ephemeral_owner: owner.raw(),
                pzxid: zxid,
            },
            children: Children::new(),
        };
        let stat = node.client_stat();
        self.index(path, &node);
        self.digest = self.digest.wrapping_add(node_digest(path, &node));
        self.nodes.insert(path, node);

        if let Some(qpath) = parent.strip_prefix(QUOTA_ROOT) {
            if name == LIMIT_NODE && !qpath.is_empty() {
                self.quota_paths.insert(qpath.to_owned());
            }
            if name == STAT_NODE && !qpath.is_empty() {
                self.refresh_quota_stats(qpath);
            }
        }
        self.update_quota_usage(path, data.map_or(0, <[u8]>::len) as i64, 1);
        if self.watches.is_watched() {
            let parent_acl = self
                .nodes
                .get(parent)
                .map(|p| self.acls.shared(p.acl))
                .unwrap_or_default();
            self.watches
                .node_created(path, acl, parent, &parent_acl, fired);
        }
        Ok(stat)
    }

    /// Fuzzy-snapshot repair for a replayed plain create that finds its node present.
    fn repair_parent(&mut self, path: &str, parent_cversion: i32, zxid: i64) {
        let Some(parent) = parent_of(path) else {
            return;
        };
        let Some(p) = self.nodes.get(parent) else {
            return;
        };
        let cv = if parent_cversion == -1 {
            p.stat.cversion + 1
        } else {
            parent_cversion
        };
        if cv > p.stat.cversion {
            self.update(parent, |p| {
                p.stat.cversion = cv;
                p.stat.pzxid = zxid;
            });
        }
    }

    fn delete_node(
        &mut self,
        path: &str,
        zxid: i64,
        fired: &mut Vec<Fired>,
    ) -> Result<(), ErrorCode> {
        let parent = parent_of(path).ok_or(ErrorCode::BadArguments)?;
        let Some(node) = self.nodes.remove(path) else {
            // Only a replay meets this: a fuzzy snapshot taken while the node went. The parent
            // still records the delete, as on every member that applied it live.
            self.update(parent, |p| p.stat.pzxid = p.stat.pzxid.max(zxid));
            return Err(ErrorCode::NoNode);
        };
        self.digest = self.digest.wrapping_sub(node_digest(path, &node));
        self.unindex(path, &node);
        let acl = if self.watches.is_watched() {
            self.acls.shared(node.acl)
        } else {
            Arc::default()
        };
        self.acls.release(node.acl);
        let name = &path[path.rfind('/').map_or(0, |i| i + 1)..];
        self.update(parent, |p| {
            p.children.remove(name);
            if zxid > p.stat.pzxid {
                p.stat.pzxid = zxid;
            }
        });
        if let Some(qpath) = parent.strip_prefix(QUOTA_ROOT) {
            if name == LIMIT_NODE {
                self.quota_paths.remove(qpath);
            }
        }
        self.update_quota_usage(path, -(node.data_len() as i64), -1);
        if self.watches.is_watched() {
            let parent_acl = self
                .nodes
                .get(parent)
                .map(|p| self.acls.shared(p.acl))
                .unwrap_or_default();
            self.watches
                .node_deleted(path, &acl, parent, &parent_acl, fired);
        }
        Ok(())
    }

    fn set_data(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        version: i32,
        zxid: i64,
        time_ms: i64,
        fired: &mut Vec<Fired>,
    ) -> Result<Stat, ErrorCode> {
        let old_len = self.nodes.get(path).ok_or(ErrorCode::NoNode)?.data_len() as i64;
        let stat = self
            .update(path, |n| {
                n.data = data.map(Into::into);
                n.stat.version = version;
                n.stat.mzxid = zxid;
                n.stat.mtime = time_ms;
                n.client_stat()
            })
            .expect("checked above");
        self.update_quota_usage(path, data.map_or(0, <[u8]>::len) as i64 - old_len, 0);
        if self.watches.is_watched() {
            let acl = self
                .nodes
                .get(path)
                .map(|n| self.acls.shared(n.acl))
                .unwrap_or_default();
            self.watches.data_changed(path, &acl, fired);
        }
        Ok(stat)
    }

    fn set_acl(&mut self, path: &str, acl: &[Acl], version: i32) -> Result<Stat, ErrorCode> {
        let old = self.nodes.get(path).ok_or(ErrorCode::NoNode)?.acl;
        self.acls.release(old);
        let new = self.acls.intern(acl);
        Ok(self
            .update(path, |n| {
                n.acl = new;
                n.stat.aversion = version;
                n.client_stat()
            })
            .expect("checked above"))
    }

    /// The deepest quota root covering `path`, if any.
    /// (ZooKeeper's `getMaxPrefixWithQuota`; a quota on `/` counts as none.)
    pub fn quota_root_of(&self, path: &str) -> Option<&str> {
        if self.quota_paths.is_empty() {
            return None;
        }
        self.quota_paths
            .iter()
            .filter(|q| q.as_str() != "/" && is_prefix_path(q, path))
            .max_by_key(|q| q.len())
            .map(String::as_str)
    }

    /// The quota check of a create (`count_diff` 1) or setData under `enforceQuota`: an
    /// error if the change would pass a hard limit. Soft limits (the plain count / bytes of
    /// zkCli's `setquota -n / -b`) only warn in ZooKeeper, so they pass here.
    pub fn check_quota(
        &self,
        path: &str,
        bytes_diff: i64,
        count_diff: i64,
    ) -> Result<(), QuotaExceeded> {
        let Some(root) = self.quota_root_of(path) else {
            return Ok(());
        };
        let read = |name: &str| {
            self.nodes
                .get(format!("{QUOTA_ROOT}{root}/{name}").as_str())
                .map(|n| QuotaStats::parse(n.data.as_deref().unwrap_or_default()))
        };
        let (Some(limits), Some(current)) = (read(LIMIT_NODE), read(STAT_NODE)) else {
            return Ok(());
        };
        let over = |diff: i64, used: i64, soft: i64, hard: i64| {
            let limit = if hard > -1 { hard } else { soft };
            diff != 0 && hard > -1 && used + diff > limit
        };
        if over(count_diff, current.count, limits.count, limits.count_hard)
            || over(bytes_diff, current.bytes, limits.bytes, limits.bytes_hard)
        {
            return Err(QuotaExceeded {
                root: root.to_owned(),
            });
        }
        Ok(())
    }

    fn update_quota_usage(&mut self, path: &str, bytes_diff: i64, count_diff: i64) {
        let Some(root) = self.quota_root_of(path).map(str::to_owned) else {
            return;
        };
        let stat_path = format!("{QUOTA_ROOT}{root}/{STAT_NODE}");
        if let Some(n) = self.nodes.get_mut(stat_path.as_str()) {
            let s = QuotaStats::parse(n.data.as_deref().unwrap_or_default());
            n.data = Some(
                format!(
                    "count={},bytes={}",
                    s.count + count_diff,
                    s.bytes + bytes_diff
                )
                .into_bytes()
                .into(),
            );
        }
    }

    /// Recount the subtree under a quota root into its stats node.
    fn refresh_quota_stats(&mut self, qpath: &str) {
        let (mut count, mut bytes) = (0i64, 0i64);
        if let Some(n) = self.nodes.get(qpath) {
            count += 1;
            bytes += n.data_len() as i64;
            let mut stack: Vec<String> = n.children.iter().map(|c| join(qpath, c)).collect();
            while let Some(p) = stack.pop() {
                if let Some(n) = self.nodes.get(p.as_str()) {
                    count += 1;
                    bytes += n.data_len() as i64;
                    stack.extend(n.children.iter().map(|c| join(&p, c)));
                }
            }
        }
        let stat_path = format!("{QUOTA_ROOT}{qpath}/{STAT_NODE}");
        if let Some(n) = self.nodes.get_mut(stat_path.as_str()) {
            n.data = Some(format!("count={count},bytes={bytes}").into_bytes().into());
        }
    }

    /// Register a one-shot or persistent watch.
    pub fn add_watch(&mut self, session: SessionId, path: &str, kind: WatchKind) {
        self.watches.add(session, path, kind);
    }

    /// setWatches after a reconnect: fire what the client missed since `relative_zxid`, arm
    /// the rest.
    pub fn set_watches(
        &mut self,
        session: SessionId,
        relative_zxid: i64,
        sw: &zooid_proto::SetWatches,
        fired: &mut Vec<Fired>,
    ) {
        use zooid_proto::EventType as E;
        let mut fire = |path: &str, event| {
            fired.push(Fired {
                session,
                event,
                path: path.to_owned(),
                acl: None,
            })
        };
        for p in &sw.data {
            match self.nodes.get(p.as_str()) {
                None => fire(p, E::NodeDeleted),
                Some(n) if n.stat.mzxid > relative_zxid => fire(p, E::NodeDataChanged),
                Some(_) => self.watches.add(session, p, WatchKind::Data),
            }
        }
        for p in &sw.exist {
            if self.nodes.contains_key(p.as_str()) {
                fire(p, E::NodeCreated);
            } else {
                self.watches.add(session, p, WatchKind::Data);
            }
        }
        for p in &sw.child {
            match self.nodes.get(p.as_str()) {
                None => fire(p, E::NodeDeleted),
                Some(n) if n.stat.pzxid > relative_zxid => fire(p, E::NodeChildrenChanged),
                Some(_) => self.watches.add(session, p, WatchKind::Child),
            }
        }
        for p in &sw.persistent {
            self.watches.add(session, p, WatchKind::Persistent);
        }
        for p in &sw.persistent_recursive {
            self.watches.add(session, p, WatchKind::PersistentRecursive);
        }
    }
}

/// Join a parent path and a child name.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Whether `prefix` is `path` or one of its ancestors, by whole components.
fn is_prefix_path(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// A create or setData would pass a hard quota limit set on `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaExceeded {
    pub root: String,
}

/// The `StatsTrack` text of a quota node: `count=N,bytes=M` and, for limits written by 3.7+,
/// `=;byteHardLimit=X;countHardLimit=Y` (the stray `=` keeps older parsers working).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaStats {
    pub count: i64,
    pub bytes: i64,
    pub count_hard: i64,
    pub bytes_hard: i64,
}

impl QuotaStats {
    pub fn parse(data: &[u8]) -> QuotaStats {
        let text = String::from_utf8_lossy(data);
        let mut s = QuotaStats {
            count: -1,
            bytes: -1,
            count_hard: -1,
            bytes_hard: -1,
        };
        for part in text.split([',', ';']) {
            let mut kv = part.split('=');
            let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
                continue;
            };
            let Ok(v) = v.trim().parse::<i64>() else {
                continue;
            };
            match k.trim() {
                "count" => s.count = v,
                "bytes" => s.bytes = v,
                "countHardLimit" => s.count_hard = v,
                "byteHardLimit" => s.bytes_hard = v,
                _ => {}
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zooid_proto::{EventType, OpCode};

    fn hdr(zxid: i64, op: OpCode) -> TxnHeader {
        TxnHeader {
            session_id: 0x10,
            cxid: 1,
            zxid,
            time_ms: 1000 + zxid,
            op: op.code(),
        }
    }

    fn create(path: &str, parent_cversion: i32) -> Txn {
        Txn::Create {
            kind: CreateKind::Plain { create2: false },
            path: path.into(),
            data: Some(b"x".to_vec()),
            acl: Acl::open_unsafe(),
            ephemeral: false,
            parent_cversion,
        }
    }

    /// A frozen copy keeps the nodes as they were while the tree changes, lists parents
    /// before children and siblings in name order, and the tree copies only what it writes.
    #[test]
    fn frozen_nodes_hold_still_and_come_parents_first_in_order() {
        let mut t = DataTree::new();
        let mut z = 0;
        let mut make = |t: &mut DataTree, path: &str| {
            z += 1;
            let cv = t.get(parent_of(path).unwrap()).unwrap().stat.cversion + 1;
            t.apply(&hdr(z, OpCode::Create), &create(path, cv));
        };
        for i in [3, 10, 1, 200, 2] {
            make(&mut t, &format!("/n{i}"));
            make(&mut t, &format!("/n{i}/c"));
        }
        for i in 0..5000 {
            make(&mut t, &format!("/n1/c/{i}"));
        }
        let frozen = t.freeze_nodes();
        let listed = |f: &FrozenNodes| {
            let mut v = Vec::new();
            f.for_each_parents_first(|p, n| v.push((p.to_owned(), n.stat.mzxid)));
            v
        };
        let before = listed(&frozen);
        assert_eq!(before.len(), t.node_count());
        for (i, (p, _)) in before.iter().enumerate() {
            if let Some(parent) = parent_of(p) {
                assert!(
                    before[..i].iter().any(|(q, _)| q == parent),
                    "{p} before {parent}"
                );
            }
        }
        let roots: Vec<&str> = before
            .iter()
            .map(|(p, _)| p.as_str())
            .filter(|p| p.starts_with("/n") && p.matches('/').count() == 1)
            .collect();
        assert_eq!(roots, ["/n1", "/n10", "/n2", "/n200", "/n3"]);
        t.apply(
            &hdr(9000, OpCode::SetData),
            &Txn::SetData {
                path: "/n1/c/7".into(),
                data: None,
                version: 1,
            },
        );
        t.apply(
            &hdr(9001, OpCode::Delete),
            &Txn::Delete {
                path: "/n2/c".into(),
                container: false,
            },
        );
        assert_eq!(listed(&frozen), before);
        assert_eq!({ t.get("/n1/c/7").unwrap().stat.mzxid }, 9000);
        assert!(t.get("/n2/c").is_none());
    }

    #[test]
    fn restoring_refuses_orphans_and_repeats() {
        let mut t = DataTree::empty_for_restore();
        let node = |t: &mut DataTree, p: &str| {
            t.restore_node(p, None, crate::acl::OPEN_ACL_REF, StatPersisted::default())
        };
        assert_eq!(node(&mut t, ""), Ok(()));
        assert_eq!(node(&mut t, "/"), Err("node / appears twice".into()));
        assert_eq!(
            node(&mut t, "/a/b"),
            Err("node /a/b comes before its parent /a".into())
        );
        assert_eq!(node(&mut t, "/a"), Ok(()));
        assert_eq!(node(&mut t, "/a/b"), Ok(()));
        assert_eq!(node(&mut t, "/a/b"), Err("node /a/b appears twice".into()));
        assert_eq!(t.node_count(), 3);
    }

    /// Each slot is part of every znode's cost: a path inline, the data pointer, the stat,
    /// the ACL ref and the children, 104 bytes.
    #[test]
    fn a_node_slot_is_104_bytes() {
        assert_eq!(std::mem::size_of::<Name>(), 24);
        assert_eq!(std::mem::size_of::<StatPersisted>(), 60);
        assert_eq!(std::mem::size_of::<Node>(), 80);
        assert_eq!(std::mem::size_of::<Slot>(), 104);
    }

    #[test]
    fn paths_spread_over_shards() {
        let mut counts = [0usize; NODE_SHARDS];
        for i in 0..64_000 {
            counts[NodeMap::locate(&format!("/app/queue/n{i:010}")).0] += 1;
            counts[NodeMap::locate(&format!("/bench/p/{}/{}", i % 16, i)).0] += 1;
        }
        assert!(
            counts.iter().all(|c| (1700..2300).contains(c)),
            "{counts:?}"
        );
    }

    fn entry(path: &str) -> Entry {
        Entry {
            path: Name::new(path),
            node: Node::default(),
        }
    }

    /// A node told apart from others by its czxid.
    fn tagged(tag: i64) -> Node {
        Node {
            stat: StatPersisted {
                czxid: tag,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// xorshift64: a fixed seed gives the same run every time, without another crate.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn slab_reuses_freed_ids() {
        let mut s = Slab::default();
        let ids: Vec<u32> = ["/a", "/b", "/c"].map(|p| s.insert(entry(p))).to_vec();
        assert_eq!(ids, [0, 1, 2]);
        assert_eq!(s.remove(1).path.as_str(), "/b");
        assert_eq!(s.remove(0).path.as_str(), "/a");
        // The last freed slot is taken first, then the other, then a new one.
        assert_eq!(s.insert(entry("/d")), 0);
        assert_eq!(s.insert(entry("/e")), 1);
        assert_eq!(s.insert(entry("/f")), 3);
        assert_eq!(s.get(1).path.as_str(), "/e");
        assert_eq!(s.len, 4);
        assert_eq!(s.allocated_chunks(), 1);
        s.check();
    }

    #[test]
    fn slab_fills_low_chunks_first_and_frees_empty_ones() {
        let mut s = Slab::default();
        let n = 4 * CHUNK_SLOTS;
        let ids: Vec<u32> = (0..n).map(|i| s.insert(entry(&format!("/n{i}")))).collect();
        assert_eq!(ids, (0..n as u32).collect::<Vec<_>>());
        assert_eq!(s.allocated_chunks(), 4);

        // A free slot in a low chunk is taken before one in a high chunk.
        s.remove(ids[3 * CHUNK_SLOTS + 5]);
        s.remove(ids[7]);
        assert_eq!(s.insert(entry("/low")), ids[7]);
        assert_eq!(s.insert(entry("/high")), ids[3 * CHUNK_SLOTS + 5]);

        // Emptying chunks 1 and 2: the first one's memory is kept as the spare, the second's
        // is freed.
        for &id in &ids[CHUNK_SLOTS..3 * CHUNK_SLOTS] {
            s.remove(id);
        }
        assert_eq!(s.allocated_chunks(), 3);
        assert_eq!(s.len, 2 * CHUNK_SLOTS);
        s.check();

        // Free slots in chunks holding memory come before the empty chunks...
        s.remove(ids[n - 1]);
        assert_eq!(s.insert(entry("/x")), ids[n - 1]);
        // ...and once those are full, the lowest empty chunk gets memory again.
        assert_eq!(s.insert(entry("/y")) as usize, CHUNK_SLOTS);
        assert_eq!(s.allocated_chunks(), 3);
        assert_eq!(s.get(CHUNK_SLOTS as u32).path.as_str(), "/y");
        s.check();

        // Emptying the top chunk forgets it and the empty chunk below it.
        s.remove(CHUNK_SLOTS as u32);
        for &id in &ids[3 * CHUNK_SLOTS..] {
            s.remove(id);
        }
        assert_eq!((s.chunks.len(), s.holes.len()), (1, 0));
        s.check();
        for &id in &ids[..CHUNK_SLOTS] {
            s.remove(id);
        }
        assert_eq!((s.len, s.chunks.len(), s.open.len()), (0, 0, 0));
        assert_eq!(s.allocated_chunks(), 1, "only the spare is left");
        assert_eq!(s.iter().count(), 0);
        s.check();
    }

    #[test]
    fn node_map_clones_deeply() {
        let mut m = NodeMap::default();
        for i in 0..CHUNK_SLOTS + 1 {
            m.insert(&format!("/n{i}"), tagged(i as i64));
        }
        let copy = m.clone();
        m.get_mut("/n3").unwrap().stat.czxid = -1;
        m.remove("/n5");
        assert_eq!({ copy.get("/n3").unwrap().stat.czxid }, 3);
        assert_eq!({ copy.get("/n5").unwrap().stat.czxid }, 5);
        assert_eq!(copy.len(), CHUNK_SLOTS + 1);
        copy.slab.check();
    }

    #[test]
    fn node_map_grows_over_many_chunks_and_shrinks_back() {
        let mut m = NodeMap::default();
        let n = 10 * CHUNK_SLOTS + 7;
        // Paths past the inline length of a name, too.
        let path = |i: usize| {
            if i % 3 == 1 {
                format!("/a/rather/long/path/for/node/{i}")
            } else {
                format!("/n{i}")
            }
        };
        for i in 0..n {
            assert!(m.insert(&path(i), tagged(i as i64)).is_none());
        }
        assert_eq!(m.len(), n);
        assert_eq!(m.slab.allocated_chunks(), 11);
        m.slab.check();
        for i in 0..n {
            assert_eq!({ m.get(&path(i)).unwrap().stat.czxid }, i as i64);
        }
        let mut seen: Vec<i64> = m.iter().map(|(_, node)| node.stat.czxid).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..n as i64).collect::<Vec<_>>());

        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = Rng(0x5eed);
        for i in (1..n).rev() {
            order.swap(i, rng.below(i + 1));
        }
        for &i in &order {
            assert_eq!({ m.remove(&path(i)).unwrap().stat.czxid }, i as i64);
        }
        assert_eq!(m.len(), 0);
        assert_eq!(m.slab.allocated_chunks(), 1, "only the spare is left");
        assert!(m.shards.iter().all(|s| s.capacity() <= SHARD_KEEP));
        m.slab.check();
    }

    #[test]
    fn node_map_matches_a_model() {
        let mut m = NodeMap::default();
        let mut model: std::collections::HashMap<String, i64> = Default::default();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let keys = 3 * CHUNK_SLOTS;
        let path = |k: usize| {
            if k % 5 == 1 {
                format!("/some/deeper/and/longer/path/{k}")
            } else {
                format!("/k/{k}")
            }
        };
        let mut tag = 0i64;
        let mut fewest_in_use = usize::MAX;
        // Phases that mostly insert alternate with phases that mostly remove, so chunks fill,
        // empty out and fill again.
        for phase in 0..12 {
            let (insert_pct, ops) = if phase % 2 == 0 {
                (75, 12_000)
            } else {
                (5, 40_000)
            };
            for _ in 0..ops {
                let p = path(rng.below(keys));
                let roll = rng.below(100);
                tag += 1;
                if roll < insert_pct {
                    let old = m.insert(&p, tagged(tag)).map(|n| n.stat.czxid);
                    assert_eq!(old, model.insert(p, tag));
                } else if roll < 90 {
                    let old = m.remove(&p).map(|n| n.stat.czxid);
                    assert_eq!(old, model.remove(&p));
                } else if roll < 95 {
                    if let Some(n) = m.get_mut(&p) {
                        n.stat.czxid = tag;
                    }
                    if let Some(v) = model.get_mut(&p) {
                        *v = tag;
                    }
                } else {
                    assert_eq!(m.get(&p).map(|n| n.stat.czxid), model.get(&p).copied());
                    assert_eq!(m.contains_key(&p), model.contains_key(&p));
                }
            }
            assert_eq!(m.len(), model.len());
            let all: std::collections::HashMap<String, i64> = m
                .iter()
                .map(|(p, n)| (p.to_string(), n.stat.czxid))
                .collect();
            assert_eq!(all, model);
            m.slab.check();
            if phase % 2 == 1 {
                let in_use = m.slab.chunks.iter().filter(|c| c.slots.is_some()).count();
                fewest_in_use = fewest_in_use.min(in_use);
            }
        }
        // The inserts while draining went to low chunks, so some high chunk emptied.
        assert!(fewest_in_use < 3, "{fewest_in_use}");
        for p in model.keys() {
            assert!(m.remove(p).is_some());
        }
        m.slab.check();
        assert_eq!(m.len(), 0);
        assert!(m.slab.allocated_chunks() <= 1);
        m.insert("/again", tagged(1));
        assert_eq!({ m.get("/again").unwrap().stat.czxid }, 1);
    }

    #[test]
    fn empty_tree_digest_matches_zookeeper() {
        assert_eq!(DataTree::new().digest(), 1371985504);
        let t = DataTree::new();
        assert_eq!(t.node_count(), 4);
        // As ZooKeeper reports them on a fresh server.
        assert_eq!(t.stat("/").unwrap().cversion, -1);
        assert_eq!(t.stat("/zookeeper").unwrap().cversion, -2);
        for p in ["/", "/zookeeper", "/zookeeper/quota"] {
            assert_eq!(t.acl_of(t.get(p).unwrap()), Acl::open_unsafe(), "{p}");
        }
        assert_eq!(
            t.acl_of(t.get("/zookeeper/config").unwrap()),
            Acl::read_unsafe()
        );
    }

    #[test]
    fn digest_tracks_changes_and_recomputes() {
        let mut t = DataTree::new();
        t.apply(&hdr(1, OpCode::Create), &create("/a", 1));
        t.apply(&hdr(2, OpCode::Create), &create("/a/b", 1));
        t.apply(
            &hdr(3, OpCode::SetData),
            &Txn::SetData {
                path: "/a".into(),
                data: Some(b"yy".to_vec()),
                version: 1,
            },
        );
        t.apply(
            &hdr(4, OpCode::Delete),
            &Txn::Delete {
                path: "/a/b".into(),
                container: false,
            },
        );
        let mut sum = 0u64;
        t.walk(|p, n| sum = sum.wrapping_add(node_digest(p, n)));
        assert_eq!(sum as i64, t.digest());
        let a = t.get("/a").unwrap();
        assert_eq!((a.stat.cversion, a.stat.pzxid), (1, 4));
        assert_eq!(t.last_zxid(), 4);
    }

    /// A fuzzy snapshot can hold a parent from before a delete and miss the child: the
    /// replayed delete finds no node, yet the parent's pzxid must move as it did live (and
    /// never back), or the members' digests part.
    #[test]
    fn replayed_delete_of_a_missing_child_still_moves_the_parents_pzxid() {
        let delete = |p: &str| Txn::Delete {
            path: p.into(),
            container: false,
        };
        let mut t = DataTree::new();
        t.apply(&hdr(1, OpCode::Create), &create("/a", 1));
        let out = t.apply(&hdr(5, OpCode::Delete), &delete("/a/gone"));
        assert_eq!(out.result, TxnResult::Error(ErrorCode::NoNode));
        assert_eq!({ t.get("/a").unwrap().stat.pzxid }, 5);
        t.apply(&hdr(3, OpCode::Delete), &delete("/a/older"));
        assert_eq!({ t.get("/a").unwrap().stat.pzxid }, 5);
        let mut sum = 0u64;
        t.walk(|p, n| sum = sum.wrapping_add(node_digest(p, n)));
        assert_eq!(sum as i64, t.digest());
        let out = t.apply(&hdr(6, OpCode::Delete), &delete("/none/x"));
        assert_eq!(out.result, TxnResult::Error(ErrorCode::NoNode));
    }

    #[test]
    fn failed_multi_applies_nothing() {
        let mut t = DataTree::new();
        let out = t.apply(
            &hdr(1, OpCode::Multi),
            &Txn::Multi(vec![
                create("/m", 1),
                Txn::Error { err: -101 },
                create("/n", 2),
            ]),
        );
        assert_eq!(
            out.result,
            TxnResult::Multi(vec![
                TxnResult::Error(ErrorCode::Ok),
                TxnResult::Error(ErrorCode::NoNode),
                TxnResult::Error(ErrorCode::RuntimeInconsistency)
            ])
        );
        assert!(t.get("/m").is_none());
    }

    #[test]
    fn close_session_removes_ephemerals_and_fires() {
        let mut t = DataTree::new();
        let mut h = hdr(1, OpCode::Create);
        h.session_id = 7;
        t.apply(
            &h,
            &Txn::Create {
                kind: CreateKind::Plain { create2: false },
                path: "/e".into(),
                data: None,
                acl: Acl::open_unsafe(),
                ephemeral: true,
                parent_cversion: 1,
            },
        );
        assert_eq!(t.ephemerals_of(7), vec!["/e".to_string()]);
        t.add_watch(9, "/e", WatchKind::Data);
        h.zxid = 2;
        h.op = OpCode::CloseSession.code();
        let out = t.apply(
            &h,
            &Txn::CloseSession {
                paths: Some(vec!["/e".into()]),
            },
        );
        assert_eq!(out.fired.len(), 1);
        assert_eq!(out.fired[0].event, EventType::NodeDeleted);
        assert!(t.get("/e").is_none());
        assert!(t.ephemerals_of(7).is_empty());
    }

    #[test]
    fn owners_round_trip() {
        for o in [
            Owner::None,
            Owner::Session(0x100),
            Owner::Container,
            Owner::Ttl(5000),
        ] {
            assert_eq!(Owner::from_raw(o.raw()), o);
        }
    }

    #[test]
    fn quota_limits_parse_and_hard_limits_refuse() {
        let s = QuotaStats::parse(b"count=10,bytes=-1=;byteHardLimit=-1;countHardLimit=2");
        assert_eq!(
            (s.count, s.bytes, s.bytes_hard, s.count_hard),
            (10, -1, -1, 2)
        );
        let mut t = DataTree::new();
        for (z, (p, d)) in [
            ("/q", ""),
            ("/zookeeper/quota/q", ""),
            (
                "/zookeeper/quota/q/zookeeper_limits",
                "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=2",
            ),
            ("/zookeeper/quota/q/zookeeper_stats", "count=0,bytes=0"),
        ]
        .iter()
        .enumerate()
        {
            let cv = t.get(parent_of(p).unwrap()).unwrap().stat.cversion + 1;
            t.apply(
                &hdr(z as i64 + 1, OpCode::Create),
                &Txn::Create {
                    kind: CreateKind::Plain { create2: false },
                    path: p.to_string(),
                    data: Some(d.as_bytes().to_vec()),
                    acl: Acl::open_unsafe(),
                    ephemeral: false,
                    parent_cversion: cv,
                },
            );
        }
        // /q itself counts: one more node reaches the hard limit of 2, a second passes it.
        assert_eq!(t.check_quota("/q/a", 0, 1), Ok(()));
        t.apply(&hdr(9, OpCode::Create), &create("/q/a", 1));
        assert!(t.check_quota("/q/b", 0, 1).is_err());
        assert_eq!(t.check_quota("/other", 0, 1), Ok(()));
        assert_eq!(t.check_quota("/q/a", 100, 0), Ok(()));
    }

    #[test]
    fn quota_stats_follow_the_subtree() {
        let mut t = DataTree::new();
        let mut z = 0;
        let mut mk = |t: &mut DataTree, p: &str, data: &str| {
            z += 1;
            let cv = t.get(parent_of(p).unwrap()).unwrap().stat.cversion + 1;
            t.apply(
                &hdr(z, OpCode::Create),
                &Txn::Create {
                    kind: CreateKind::Plain { create2: false },
                    path: p.into(),
                    data: Some(data.as_bytes().to_vec()),
                    acl: Acl::open_unsafe(),
                    ephemeral: false,
                    parent_cversion: cv,
                },
            );
        };
        mk(&mut t, "/q", "ab");
        mk(&mut t, "/zookeeper/quota/q", "");
        mk(
            &mut t,
            "/zookeeper/quota/q/zookeeper_limits",
            "count=10,bytes=-1",
        );
        mk(
            &mut t,
            "/zookeeper/quota/q/zookeeper_stats",
            "count=0,bytes=0",
        );
        mk(&mut t, "/q/c", "xyz");
        let stats = t.get("/zookeeper/quota/q/zookeeper_stats").unwrap();
        assert_eq!(stats.data.as_deref(), Some(&b"count=2,bytes=5"[..]));
    }
}
