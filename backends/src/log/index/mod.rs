//! The in-memory index: where each live value sits (the state readers share around it, the
//! file and its memory map, is `super::state`).
//!
//! The index is built for a fast open and a small, flat footprint (issue 15):
//! - each entry is a 24-byte slot in an open-addressing table with linear probing — the
//!   value's [`Loc`], 31 bits of the key's hash and a packed reference to the key's bytes —
//!   with no allocation per key: keys are copied into an arena of chunks of up to 1 MiB that
//!   never move (a chunk is never reallocated, so growing the arena copies nothing);
//! - the table is our own rather than a `HashMap`, so its slots can be written to the index
//!   checkpoint in table order and read back as they are: an open from a checkpoint is one
//!   sequential read and a check of every slot, with no insert and no table growth
//!   (`super::checkpoint`);
//! - it is split into 64 shards by hash, so when one grows it allocates and rehashes a 64th
//!   of the index: opening never holds two copies of the whole table, which is what made a
//!   single `HashMap`'s peak 1.5x to 2x its steady size;
//! - keys are hashed with foldhash under a seed drawn at random for each new index and kept in
//!   its checkpoint (a table read back must hash as it was built): a keyed hash, so a key set
//!   crafted to collide under one seed does not collide under the next, at a few nanoseconds
//!   per key where SipHash cost 38% of the open. A hit always compares the whole key, never
//!   only its hash.

use std::hash::BuildHasher;

use foldhash::fast::FixedState;

use super::record::{Layout, MAX_KEY_LEN};

mod image;
#[cfg(test)]
mod tests;

pub(super) use image::ImageReader;

/// Where a value sits in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loc {
    pub(super) value_off: u64,
    pub(super) value_len: u64,
    /// The record's layout, which fixes its header's length (a log may mix both).
    pub(super) layout: Layout,
}

impl Loc {
    pub(super) fn record_len(&self, key_len: usize) -> u64 {
        self.layout.header_len() + key_len as u64 + self.value_len + self.layout.trailer_len()
    }

    pub(super) fn record_start(&self, key_len: usize) -> u64 {
        self.value_off - key_len as u64 - self.layout.header_len()
    }
}

/// Shards of the table (a power of two).
pub(super) const SHARDS: usize = 64;

/// Offsets and lengths in a log stay below this (256 TiB), so a slot packs each in 48 bits
/// beside 16 bits of the key's hash. A record past it is refused: by the scan as corrupt,
/// by an append as a full log.
pub(super) const MAX_OFFSET: u64 = 1 << 48;

/// One entry (24 bytes): the value's place and its record's layout, where its key sits in the
/// arena, and 31 bits of the key's hash, so growing a table rehashes without reading a single
/// key back and a probe compares a key's bytes only when those 31 bits match. All zero is an
/// empty slot (no value starts at offset 0: the file header is there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot {
    /// The value's offset, then the hash's high 16 bits.
    off_hash: u64,
    /// The value's length, then the layout bit (set for v2), then the hash's low 15 bits.
    len_hash: u64,
    key: KeyRef,
}

const LOW48: u64 = MAX_OFFSET - 1;
/// The bit of `len_hash` that marks a v2 record.
const V2_BIT: u64 = 1 << 63;
/// The bits of a key's hash a slot keeps.
const HASH_BITS: u32 = (1 << 31) - 1;

impl Slot {
    pub(super) const EMPTY: Slot = Slot {
        off_hash: 0,
        len_hash: 0,
        key: KeyRef(0),
    };

    fn new(loc: Loc, hash: u32, key: KeyRef) -> Slot {
        debug_assert!(
            loc.value_off > 0 && loc.value_off < MAX_OFFSET && loc.value_len < MAX_OFFSET
        );
        debug_assert!(hash <= HASH_BITS);
        let v2 = if loc.layout == Layout::V2 { V2_BIT } else { 0 };
        Slot {
            off_hash: (loc.value_off & LOW48) | (u64::from(hash >> 15) << 48),
            len_hash: (loc.value_len & LOW48) | v2 | (u64::from(hash & 0x7fff) << 48),
            key,
        }
    }
    fn is_empty(&self) -> bool {
        self.off_hash & LOW48 == 0
    }
    pub(super) fn loc(&self) -> Loc {
        Loc {
            value_off: self.off_hash & LOW48,
            value_len: self.len_hash & LOW48,
            layout: if self.len_hash & V2_BIT != 0 {
                Layout::V2
            } else {
                Layout::V1
            },
        }
    }
    fn hash(&self) -> u32 {
        (((self.off_hash >> 48) << 15) | ((self.len_hash >> 48) & 0x7fff)) as u32
    }
    fn set_loc(&mut self, loc: Loc) {
        *self = Slot::new(loc, self.hash(), self.key);
    }
    /// The slot as the checkpoint stores it (three little-endian words).
    pub(super) fn to_words(self) -> [u64; 3] {
        [self.off_hash, self.len_hash, self.key.0]
    }
    /// A slot read back from a checkpoint, `None` for an empty one. Nothing in it is trusted
    /// yet: [`ImageReader::table`] checks every slot.
    pub(super) fn from_words(w: [u64; 3]) -> Option<Slot> {
        let s = Slot {
            off_hash: w[0],
            len_hash: w[1],
            key: KeyRef(w[2]),
        };
        (!s.is_empty()).then_some(s)
    }
    /// Bytes of the key this slot refers to.
    pub(super) fn key_len(&self) -> usize {
        self.key.len()
    }
}

/// A key's place in the [`Arena`], packed in 64 bits: length (17 bits, up to the 64 KiB key
/// limit), offset in its chunk (21 bits) and chunk number (26 bits: 64 TiB of keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyRef(u64);

const LEN_BITS: u32 = 17;
const OFF_BITS: u32 = 21;

impl KeyRef {
    fn new(chunk: usize, off: usize, len: usize) -> KeyRef {
        debug_assert!(len < 1 << LEN_BITS && off < 1 << OFF_BITS && chunk < 1 << 26);
        KeyRef(((chunk as u64) << (LEN_BITS + OFF_BITS)) | ((off as u64) << LEN_BITS) | len as u64)
    }
    fn len(self) -> usize {
        (self.0 & ((1 << LEN_BITS) - 1)) as usize
    }
    fn off(self) -> usize {
        ((self.0 >> LEN_BITS) & ((1 << OFF_BITS) - 1)) as usize
    }
    fn chunk(self) -> usize {
        (self.0 >> (LEN_BITS + OFF_BITS)) as usize
    }
}

/// Chunk numbers a [`KeyRef`] holds.
pub(super) const MAX_CHUNKS: u64 = 1 << 26;

/// Chunks never exceed this (a key of up to 64 KiB always fits in one).
pub(super) const CHUNK_MAX: usize = 1 << 20;
/// The first chunk's size: a small store does not reserve a whole MiB.
const CHUNK_MIN: usize = 4 << 10;

/// The keys' bytes, back to back in chunks that are filled and never reallocated.
#[derive(Debug, Default)]
struct Arena {
    chunks: Vec<Vec<u8>>,
    /// Bytes of keys that were removed from the index (reclaimed by [`Index::repack`]).
    garbage: u64,
    /// Bytes of keys in the index.
    live: u64,
}

impl Arena {
    fn push(&mut self, key: &[u8]) -> KeyRef {
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= key.len());
        if !fits {
            let held: usize = self.chunks.iter().map(Vec::capacity).sum();
            let size = held.clamp(CHUNK_MIN, CHUNK_MAX).max(key.len());
            self.chunks.push(Vec::with_capacity(size));
        }
        let chunk_no = self.chunks.len() - 1;
        let chunk = &mut self.chunks[chunk_no];
        let off = chunk.len();
        chunk.extend_from_slice(key);
        self.live += key.len() as u64;
        KeyRef::new(chunk_no, off, key.len())
    }

    fn get(&self, key: KeyRef) -> &[u8] {
        &self.chunks[key.chunk()][key.off()..key.off() + key.len()]
    }

    /// The key at `key`, `None` when it points outside the chunks (a slot read back from a
    /// checkpoint).
    fn checked_get(&self, key: KeyRef) -> Option<&[u8]> {
        self.chunks
            .get(key.chunk())?
            .get(key.off()..key.off().checked_add(key.len())?)
    }

    fn bytes(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<u8>>()
    }
}

/// One shard: an open-addressing table of [`Slot`]s with linear probing. A key's home slot is
/// its 31 kept hash bits scaled to the table's length (any length, not only powers of two, so
/// a table sized for a known count wastes little); the load stays at most 4/5
/// ([`over_max_load`]), so a probe always meets an empty slot. Removal shifts the probe run
/// back (no tombstones).
///
/// Beside the slots, one tag byte per slot (0 for empty, else 7 more bits of the hash): a probe
/// reads the tags and touches a slot only when its tag matches, so a lookup of an absent key
/// stays in the tag array (1.5 MB for a million keys, which the cache holds) instead of
/// reading 24-byte slots from memory — measured 3x faster than probing the slots (`log_open`
/// bench's lookup line).
#[derive(Debug, Default)]
struct Table {
    slots: Vec<Slot>,
    tags: Vec<u8>,
    len: usize,
}

/// A table grows (doubles) before its load passes 4/5.
fn over_max_load(len: usize, cap: usize) -> bool {
    len * 5 > cap * 4
}

/// A taken slot's tag: the hash's low 7 bits (the home comes from its high bits).
fn tag(h32: u32) -> u8 {
    0x80 | (h32 & 0x7f) as u8
}

impl Table {
    /// The length a table sized for `entries` gets: a load of 2/3, so about a quarter more
    /// keys fit before it grows.
    fn cap_for(entries: usize) -> usize {
        match entries {
            0 => 0,
            n => n + n / 2 + 8,
        }
    }

    fn with_capacity(entries: usize) -> Table {
        let cap = Self::cap_for(entries);
        Table {
            slots: vec![Slot::EMPTY; cap],
            tags: vec![0; cap],
            len: 0,
        }
    }

    /// A table of these slots as they lie (read back from a checkpoint, not yet checked).
    fn from_slots(slots: Vec<Slot>) -> Table {
        let tags = slots
            .iter()
            .map(|s| if s.is_empty() { 0 } else { tag(s.hash()) })
            .collect();
        Table {
            slots,
            tags,
            len: 0,
        }
    }

    fn home(&self, h32: u32) -> usize {
        ((u64::from(h32) * self.slots.len() as u64) >> 31) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// The index of the slot `is_key` accepts on `h32`'s probe run, or of the empty slot that
    /// ends the run.
    fn probe(&self, h32: u32, is_key: impl Fn(&Slot) -> bool) -> std::result::Result<usize, usize> {
        if self.slots.is_empty() {
            return Err(0);
        }
        let want = tag(h32);
        let mut i = self.home(h32);
        loop {
            match self.tags[i] {
                0 => return Err(i),
                t if t == want && self.slots[i].hash() == h32 && is_key(&self.slots[i]) => {
                    return Ok(i)
                }
                _ => i = self.next(i),
            }
        }
    }

    /// Puts a slot for a key known to be absent.
    fn place(&mut self, slot: Slot) {
        if over_max_load(self.len + 1, self.slots.len()) {
            self.grow();
        }
        let mut i = self.home(slot.hash());
        while self.tags[i] != 0 {
            i = self.next(i);
        }
        self.slots[i] = slot;
        self.tags[i] = tag(slot.hash());
        self.len += 1;
    }

    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![Slot::EMPTY; cap]);
        self.tags = vec![0; cap];
        self.len = 0;
        for s in old.into_iter().filter(|s| !s.is_empty()) {
            self.place(s);
        }
    }

    /// Empties slot `i`, shifting back the slots after it whose probe run passes through it.
    fn remove_at(&mut self, i: usize) -> Slot {
        let cap = self.slots.len();
        let gone = self.slots[i];
        let mut hole = i;
        let mut j = self.next(i);
        loop {
            let s = self.slots[j];
            if s.is_empty() {
                break;
            }
            // `s` may fill the hole when its home is not after the hole on its run.
            let from_home = (j + cap - self.home(s.hash())) % cap;
            if from_home >= (j + cap - hole) % cap {
                self.slots[hole] = s;
                self.tags[hole] = self.tags[j];
                hole = j;
            }
            j = self.next(j);
        }
        self.slots[hole] = Slot::EMPTY;
        self.tags[hole] = 0;
        self.len -= 1;
        gone
    }

    fn iter(&self) -> impl Iterator<Item = &Slot> + '_ {
        self.slots.iter().filter(|s| !s.is_empty())
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Slot> + '_ {
        self.slots.iter_mut().filter(|s| !s.is_empty())
    }
}

/// The longest probe run [`ImageReader::table`] walks before it rejects the checkpoint.
const MAX_RUN: usize = 1 << 12;

/// The live keys and where their values sit.
pub(super) struct Index {
    shards: Vec<Table>,
    keys: Arena,
    /// The hash seed, kept in the checkpoint.
    seed: u64,
    hasher: FixedState,
    len: usize,
    /// Bytes of the live values: the store's total for a limited cache (`super::books`),
    /// kept here so no open or eviction sums it.
    value_bytes: u64,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Default for Index {
    fn default() -> Self {
        Self::new()
    }
}

/// A fresh random seed (std's `RandomState` draws its keys from the OS once per thread and
/// steps them for each instance).
fn random_seed() -> u64 {
    std::hash::RandomState::new().hash_one(0x5eed_u64)
}

impl Index {
    pub(super) fn new() -> Index {
        Self::with_capacity(0)
    }

    /// An index with room for about `entries` keys, so loading that many rarely regrows a
    /// table: each shard gets its even share plus four standard deviations of the binomial
    /// spread.
    pub(super) fn with_capacity(entries: usize) -> Index {
        let per_shard = match entries / SHARDS {
            0 => 0,
            share => share + 4 * share.isqrt() + 16,
        };
        let seed = random_seed();
        Index {
            shards: (0..SHARDS)
                .map(|_| Table::with_capacity(per_shard))
                .collect(),
            keys: Arena::default(),
            seed,
            hasher: FixedState::with_seed(seed),
            len: 0,
            value_bytes: 0,
        }
    }

    /// The key's 64-bit hash: its low 31 bits are kept in the slot, bits 32.. pick the shard.
    fn hash(hasher: &FixedState, key: &[u8]) -> (usize, u32) {
        let hash = hasher.hash_one(key);
        (
            (hash >> 32) as usize & (SHARDS - 1),
            hash as u32 & HASH_BITS,
        )
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Bytes of the live values.
    pub(super) fn value_bytes(&self) -> u64 {
        self.value_bytes
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<Loc> {
        let (shard, h32) = Self::hash(&self.hasher, key);
        let table = &self.shards[shard];
        let i = table.probe(h32, |s| {
            s.key.len() == key.len() && self.keys.get(s.key) == key
        });
        i.ok().map(|i| table.slots[i].loc())
    }

    pub(super) fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Points `key` at `loc`; returns the place it pointed at before.
    pub(super) fn insert(&mut self, key: &[u8], loc: Loc) -> Option<Loc> {
        let (shard, h32) = Self::hash(&self.hasher, key);
        let Index {
            shards,
            keys,
            len,
            value_bytes,
            ..
        } = self;
        let table = &mut shards[shard];
        *value_bytes = value_bytes.saturating_add(loc.value_len);
        match table.probe(h32, |s| s.key.len() == key.len() && keys.get(s.key) == key) {
            Ok(i) => {
                let old = table.slots[i].loc();
                table.slots[i].set_loc(loc);
                *value_bytes = value_bytes.saturating_sub(old.value_len);
                Some(old)
            }
            Err(_) => {
                let key = keys.push(key);
                table.place(Slot::new(loc, h32, key));
                *len += 1;
                None
            }
        }
    }

    /// Drops `key`; returns where its value was.
    pub(super) fn remove(&mut self, key: &[u8]) -> Option<Loc> {
        let (shard, h32) = Self::hash(&self.hasher, key);
        let keys = &self.keys;
        let table = &mut self.shards[shard];
        let i = table
            .probe(h32, |s| s.key.len() == key.len() && keys.get(s.key) == key)
            .ok()?;
        let slot = table.remove_at(i);
        self.len -= 1;
        self.value_bytes = self.value_bytes.saturating_sub(slot.loc().value_len);
        self.keys.live -= key.len() as u64;
        self.keys.garbage += key.len() as u64;
        if self.keys.garbage > (CHUNK_MAX as u64).max(self.keys.live) {
            self.repack();
        }
        Some(slot.loc())
    }

    /// Copies the live keys into a fresh arena, dropping the bytes of removed ones. Called
    /// when removed keys outweigh live ones, so the new arena is at most half the old.
    fn repack(&mut self) {
        let mut fresh = Arena::default();
        for shard in &mut self.shards {
            for slot in shard.iter_mut() {
                slot.key = fresh.push(self.keys.get(slot.key));
            }
        }
        self.keys = fresh;
    }

    /// Every live key (in no particular order).
    pub(super) fn keys(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// Every live key with its value's place.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8], Loc)> + '_ {
        self.shards
            .iter()
            .flat_map(Table::iter)
            .map(|s| (self.keys.get(s.key), s.loc()))
    }

    /// Lets `f` move every value (compaction): `f` gets the key's length and its place.
    pub(super) fn relocate(&mut self, mut f: impl FnMut(usize, &mut Loc)) {
        for shard in &mut self.shards {
            for slot in shard.iter_mut() {
                let mut loc = slot.loc();
                f(slot.key.len(), &mut loc);
                slot.set_loc(loc);
            }
        }
    }

    /// Heap bytes the index holds: the tables' slots and tags, and the key arena.
    pub(super) fn heap_bytes(&self) -> usize {
        let tables: usize = self
            .shards
            .iter()
            .map(|s| s.slots.capacity() * std::mem::size_of::<Slot>() + s.tags.capacity())
            .sum();
        tables + self.shards.capacity() * std::mem::size_of::<Table>() + self.keys.bytes()
    }

    /// The hash seed, which a checkpoint of this index must keep.
    pub(super) fn seed(&self) -> u64 {
        self.seed
    }
}
