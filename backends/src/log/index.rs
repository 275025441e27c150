//! The in-memory index and the state readers share: where each live value sits, the file
//! and its memory map.
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

use std::collections::HashMap;
use std::fs::File;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::Arc;

use foldhash::fast::FixedState;
use memmap2::Mmap;

use super::open::file_len;
use super::record::{Layout, MAX_KEY_LEN};
use super::scan::Entry;
use crate::Result;

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
    /// yet: [`Index::from_image`] checks every slot.
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

    /// The index as a checkpoint stores it, shard by shard: each laid out afresh in a table of
    /// [`Table::cap_for`] its count (so a reopened index starts at a load of 2/3, whatever
    /// growth and removals left in memory), its keys packed in slot order into chunks of at
    /// most [`CHUNK_MAX`] bytes that hold only this shard's keys (so an open checks a shard
    /// while its slots and keys are still in the cache).
    pub(super) fn image(
        &self,
        mut each: impl FnMut(ShardImage<'_>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut chunks_before = 0usize;
        let (mut slots, mut keys, mut chunk_lens) = (Vec::new(), Vec::new(), Vec::new());
        for shard in &self.shards {
            let mut fresh = Table::with_capacity(shard.len);
            for s in shard.iter() {
                fresh.place(*s);
            }
            slots.clear();
            keys.clear();
            chunk_lens.clear();
            let mut cur = 0usize;
            for s in &fresh.slots {
                if s.is_empty() {
                    slots.push(Slot::EMPTY);
                    continue;
                }
                let key = self.keys.get(s.key);
                if chunk_lens.is_empty() || cur + key.len() > CHUNK_MAX {
                    if let Some(last) = chunk_lens.last_mut() {
                        *last = cur as u64;
                    }
                    chunk_lens.push(0);
                    cur = 0;
                }
                let packed = KeyRef::new(chunks_before + chunk_lens.len() - 1, cur, key.len());
                cur += key.len();
                keys.extend_from_slice(key);
                slots.push(Slot { key: packed, ..*s });
            }
            if let Some(last) = chunk_lens.last_mut() {
                *last = cur as u64;
            }
            chunks_before += chunk_lens.len();
            each(ShardImage {
                slots: &slots,
                keys: &keys,
                chunk_lens: &chunk_lens,
            })?;
        }
        Ok(())
    }
}

/// One shard of an [`Index::image`].
pub(super) struct ShardImage<'a> {
    /// The table, slot by slot ([`Slot::EMPTY`] for an empty one).
    pub(super) slots: &'a [Slot],
    /// The shard's keys, chunk after chunk.
    pub(super) keys: &'a [u8],
    /// The lengths of the shard's key chunks.
    pub(super) chunk_lens: &'a [u64],
}

/// Builds an [`Index`] from a checkpoint's image, shard by shard: [`ImageReader::chunk`] for
/// each key chunk, then [`ImageReader::table`] for the shard's table, which checks it.
pub(super) struct ImageReader {
    seed: u64,
    hasher: FixedState,
    shards: Vec<Table>,
    keys: Arena,
    len: usize,
    live_bytes: u64,
    value_bytes: u64,
    key_bytes: u64,
}

impl ImageReader {
    pub(super) fn new(seed: u64) -> ImageReader {
        ImageReader {
            seed,
            hasher: FixedState::with_seed(seed),
            shards: Vec::with_capacity(SHARDS),
            keys: Arena::default(),
            len: 0,
            live_bytes: 0,
            value_bytes: 0,
            key_bytes: 0,
        }
    }

    pub(super) fn chunk(&mut self, chunk: Vec<u8>) {
        self.keys.live += chunk.len() as u64;
        self.keys.chunks.push(chunk);
    }

    /// Takes the next shard's table, or `false` unless every slot holds: its key lies inside
    /// the chunks and is at most [`MAX_KEY_LEN`] long, the key hashes (under the seed) to
    /// this shard and the slot's kept bits, the slot sits on its key's probe run (every slot
    /// from the key's home to it is taken) with no earlier slot there holding the same key,
    /// and the table is not loaded past [`over_max_load`]. So the index finds exactly the
    /// keys the checkpoint lists, once each. (Each value's place is checked by the
    /// checkpoint, which knows the log's length.)
    pub(super) fn table(&mut self, slots: Vec<Slot>) -> bool {
        let no = self.shards.len();
        if no == SHARDS {
            return false;
        }
        let table = Table::from_slots(slots);
        let keys = &self.keys;
        let mut taken = 0usize;
        for (i, s) in table.slots.iter().enumerate() {
            if s.is_empty() {
                continue;
            }
            let Some(key) = keys.checked_get(s.key) else {
                return false;
            };
            if key.len() > MAX_KEY_LEN as usize {
                return false;
            }
            let (shard, h32) = Index::hash(&self.hasher, key);
            if shard != no || h32 != s.hash() {
                return false;
            }
            let mut j = table.home(h32);
            let mut steps = 0usize;
            while j != i {
                // A run this long is not what a table at 2/3 load holds under a random seed;
                // bounding the walk bounds the check's time on a crafted file.
                steps += 1;
                let t = &table.slots[j];
                if steps > MAX_RUN
                    || t.is_empty()
                    || (t.hash() == h32 && keys.checked_get(t.key) == Some(key))
                {
                    return false;
                }
                j = table.next(j);
            }
            taken += 1;
            // Saturating: a crafted checkpoint over a sparse log must not overflow (the sum is
            // then compared with the header's).
            self.live_bytes = self
                .live_bytes
                .saturating_add(s.loc().record_len(key.len()));
            self.value_bytes = self.value_bytes.saturating_add(s.loc().value_len);
            self.key_bytes += key.len() as u64;
        }
        if over_max_load(taken, table.slots.len()) {
            return false;
        }
        self.len += taken;
        self.shards.push(Table {
            len: taken,
            ..table
        });
        true
    }

    /// The index, once every shard's table is in and the keys add up to the chunks' bytes;
    /// with the live bytes of log its entries point at.
    pub(super) fn finish(self) -> Option<(Index, u64)> {
        if self.shards.len() != SHARDS || self.key_bytes != self.keys.live {
            return None;
        }
        Some((
            Index {
                shards: self.shards,
                keys: self.keys,
                seed: self.seed,
                hasher: self.hasher,
                len: self.len,
                value_bytes: self.value_bytes,
            },
            self.live_bytes,
        ))
    }
}

/// What readers share, behind one `RwLock`.
pub(super) struct State {
    /// The file, for positioned writes (writer) and scans.
    pub(super) file: Arc<File>,
    /// A read-only map of (a prefix of) the file; remapped when a value lies beyond it.
    pub(super) map: Arc<Mmap>,
    pub(super) index: Index,
    /// Keys whose newest record a read-only handle found damaged at the end of the log (with
    /// its offset): read as corrupt until a later record of theirs is indexed. Always empty
    /// on the writer, which recovers from a damaged tail at open.
    pub(super) damaged: HashMap<Box<[u8]>, u64>,
    /// End of the last valid record: where the next record goes.
    pub(super) end: u64,
    pub(super) live_bytes: u64,
    pub(super) generation: u64,
    /// Where the strict recovery rules end (see `super::periodic::strict_until`), as read at
    /// open: a read-only handle's refresh scans by the same rules.
    pub(super) strict_until: u64,
    /// Valid records in the log (puts and tombstones, overwritten ones too).
    pub(super) records: u64,
    /// Records no index checkpoint covers: a writer's close writes one past a threshold
    /// (`super::checkpoint`).
    pub(super) unvouched: u64,
}

/// Updates the index (and the live byte count) for one valid record.
pub(super) fn apply(index: &mut Index, live_bytes: &mut u64, entry: Entry<'_>) {
    match entry {
        Entry::Put {
            key,
            value_off,
            value_len,
            layout,
        } => {
            let loc = Loc {
                value_off,
                value_len,
                layout,
            };
            *live_bytes += loc.record_len(key.len());
            if let Some(old) = index.insert(key, loc) {
                *live_bytes -= old.record_len(key.len());
            }
        }
        Entry::Tombstone { key } => {
            if let Some(old) = index.remove(key) {
                *live_bytes -= old.record_len(key.len());
            }
        }
    }
}

impl State {
    pub(super) fn apply(&mut self, entry: Entry<'_>) {
        if !self.damaged.is_empty() {
            self.damaged.remove(entry.key());
        }
        self.records += 1;
        self.unvouched += 1;
        apply(&mut self.index, &mut self.live_bytes, entry);
    }
}

/// Remaps when the map ends before `needed`.
pub(super) fn remap_to(st: &mut State, needed: u64, path: &Path) -> Result<()> {
    if (st.map.len() as u64) < needed {
        st.map = map_file(&st.file, path)?;
    }
    Ok(())
}

/// On 64-bit unix the map reaches past the end of the file to the next multiple of this, so
/// appends rarely force a remap (which would also drop the pages already faulted in). Address
/// space is cheap there; the bytes past the end are never touched (see `map_file`).
#[cfg(all(unix, target_pointer_width = "64"))]
const MAP_STEP: u64 = 64 << 20;

pub(super) fn map_file(file: &File, path: &Path) -> Result<Arc<Mmap>> {
    let len = file_len(file, path)?;
    #[cfg(all(unix, target_pointer_width = "64"))]
    let len = len.div_ceil(MAP_STEP).max(1) * MAP_STEP;
    // Sound by the append-only rule of `crate::mmap::map_immutable` (see also `LogStore` docs,
    // "Processes, and why the memory map is sound").
    Ok(Arc::new(crate::mmap::map_immutable(file, len, path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(n: u64) -> Loc {
        Loc {
            value_off: 1000 + n,
            value_len: n,
            layout: if n.is_multiple_of(3) {
                Layout::V1
            } else {
                Layout::V2
            },
        }
    }

    #[test]
    fn index_finds_exact_keys_through_growth_overwrites_and_removals() {
        let mut index = Index::new();
        let mut model = std::collections::HashMap::new();
        for i in 0..20_000u64 {
            // Keys that are prefixes of each other, of many lengths, including empty.
            let key = i.to_string().repeat((i % 7) as usize);
            let old = index.insert(key.as_bytes(), loc(i));
            assert_eq!(old, model.insert(key.clone(), loc(i)), "insert {key:?}");
            if i % 3 == 0 {
                let gone = (i / 2).to_string().repeat(((i / 2) % 7) as usize);
                assert_eq!(index.remove(gone.as_bytes()), model.remove(&gone));
            }
        }
        assert_eq!(index.len(), model.len());
        for (k, l) in &model {
            assert_eq!(index.get(k.as_bytes()), Some(*l), "{k:?}");
        }
        assert_eq!(index.get(b"not a key"), None);
        let mut listed: Vec<Vec<u8>> = index.keys().map(<[u8]>::to_vec).collect();
        listed.sort();
        let mut expected: Vec<Vec<u8>> = model.keys().map(|k| k.as_bytes().to_vec()).collect();
        expected.sort();
        assert_eq!(listed, expected);
    }

    #[test]
    fn removing_most_keys_repacks_the_arena_and_keeps_the_rest() {
        let mut index = Index::new();
        let key = |i: u32| format!("{i:0>64}").into_bytes();
        for i in 0..40_000 {
            index.insert(&key(i), loc(i as u64));
        }
        let before = index.keys.bytes();
        for i in 0..39_000 {
            assert!(index.remove(&key(i)).is_some());
        }
        assert!(
            index.keys.bytes() < before / 4,
            "the arena was not repacked"
        );
        for i in 39_000..40_000 {
            assert_eq!(index.get(&key(i)), Some(loc(i as u64)));
        }
        assert_eq!(index.get(&key(5)), None);
    }

    /// The image [`Index::image`] writes: per shard, its table and its key chunks.
    type Image = Vec<(Vec<Slot>, Vec<Vec<u8>>)>;

    fn image_of(index: &Index) -> Image {
        let mut image = Vec::new();
        index
            .image(|shard| {
                let mut at = 0;
                let chunks = shard
                    .chunk_lens
                    .iter()
                    .map(|&n| {
                        at += n as usize;
                        shard.keys[at - n as usize..at].to_vec()
                    })
                    .collect();
                assert_eq!(at, shard.keys.len());
                image.push((shard.slots.to_vec(), chunks));
                Ok(())
            })
            .unwrap();
        image
    }

    /// Reads an image back as a checkpoint does.
    fn read_back(seed: u64, image: Image) -> Option<(Index, u64)> {
        let mut reader = ImageReader::new(seed);
        for (slots, chunks) in image {
            for c in chunks {
                reader.chunk(c);
            }
            if !reader.table(slots) {
                return None;
            }
        }
        reader.finish()
    }

    fn sample_index() -> (Index, std::collections::HashMap<Vec<u8>, Loc>) {
        let mut index = Index::new();
        let mut model = std::collections::HashMap::new();
        for i in 0..5_000u64 {
            let key = format!("k{i}").repeat((i % 5) as usize).into_bytes();
            index.insert(&key, loc(i));
            model.insert(key, loc(i));
            if i % 4 == 0 {
                let gone = format!("k{}", i / 3)
                    .repeat(((i / 3) % 5) as usize)
                    .into_bytes();
                index.remove(&gone);
                model.remove(&gone);
            }
        }
        (index, model)
    }

    #[test]
    fn an_image_reads_back_to_the_same_index_with_no_inserts() {
        let (index, model) = sample_index();
        let (back, live_bytes) = read_back(index.seed(), image_of(&index)).unwrap();
        assert_eq!(back.len(), model.len());
        let live: u64 = model.iter().map(|(k, l)| l.record_len(k.len())).sum();
        assert_eq!(live_bytes, live);
        // The value bytes a limited cache reads as the store's total, kept by the inserts and
        // removals of `sample_index` and summed again by the read back.
        let values: u64 = model.values().map(|l| l.value_len).sum();
        assert_eq!(index.value_bytes(), values);
        assert_eq!(back.value_bytes(), values);
        for (k, l) in &model {
            assert_eq!(back.get(k), Some(*l), "{k:?}");
        }
        assert_eq!(back.get(b"absent"), None);
        // Laid out at a load of 2/3 whatever the index went through.
        let slots: usize = back.shards.iter().map(|t| t.slots.len()).sum();
        assert!(
            slots * 2 <= model.len() * 3 + 8 * SHARDS * 2,
            "{slots} slots"
        );
        // And it goes on working as an index: inserts grow it, removals shift runs back.
        let mut back = back;
        for i in 0..3_000u64 {
            let key = format!("new{i}").into_bytes();
            assert_eq!(back.insert(&key, loc(i)), None);
            if i % 2 == 0 {
                assert_eq!(back.remove(&key), Some(loc(i)));
            }
        }
        for (k, l) in &model {
            assert_eq!(back.get(k), Some(*l), "{k:?}");
        }
        assert_eq!(back.len(), model.len() + 1_500);
    }

    /// The first shard with a full slot that has an empty slot right after it: (shard, slot).
    fn full_before_empty(image: &Image) -> (usize, usize) {
        for (t, (slots, _)) in image.iter().enumerate() {
            for i in 0..slots.len().saturating_sub(1) {
                if !slots[i].is_empty() && slots[i + 1].is_empty() {
                    return (t, i);
                }
            }
        }
        unreachable!("a table at 2/3 load has one")
    }

    #[test]
    fn an_image_that_does_not_hold_is_refused() {
        let (index, _) = sample_index();
        let image = image_of(&index);
        let seed = index.seed();
        let refused = |image: Image, seed: u64| read_back(seed, image).is_none();
        assert!(!refused(image.clone(), seed));
        // Another seed: the keys hash elsewhere.
        assert!(refused(image.clone(), seed ^ 1));
        // Keys that lie outside the chunks, or chunks with bytes no key uses.
        let mut short = image.clone();
        let last = short.iter_mut().rev().find(|(_, c)| !c.is_empty()).unwrap();
        last.1.last_mut().unwrap().pop();
        assert!(refused(short, seed));
        let mut extra = image.clone();
        extra[0].1.push(b"no key's bytes".to_vec());
        assert!(refused(extra, seed));
        // A key listed twice: a copy of a slot just past its run.
        let (t, i) = full_before_empty(&image);
        let mut twice = image.clone();
        twice[t].0[i + 1] = twice[t].0[i];
        assert!(refused(twice, seed));
        // A slot moved off its key's run (past an empty slot): a lookup would miss it.
        let mut moved = image.clone();
        let to = moved[t].0.iter().rposition(Slot::is_empty).unwrap();
        if to > i + 1 {
            moved[t].0[to] = moved[t].0[i];
            moved[t].0[i] = Slot::EMPTY;
            assert!(refused(moved, seed));
        }
        // A table loaded past 4/5: its slots squeezed into a shorter table (a probe might
        // then find no empty slot).
        let mut full = image.clone();
        let taken: Vec<Slot> = full[t]
            .0
            .iter()
            .copied()
            .filter(|s| !s.is_empty())
            .collect();
        let mut squeezed = Table::from_slots(vec![Slot::EMPTY; taken.len()]);
        for s in taken {
            let mut j = squeezed.home(s.hash());
            while !squeezed.slots[j].is_empty() {
                j = squeezed.next(j);
            }
            squeezed.slots[j] = s;
        }
        full[t].0 = squeezed.slots;
        assert!(refused(full, seed));
        // A shard's table given as another's, or a table missing.
        let mut swapped = image.clone();
        let (a, b) = (swapped[t].0.clone(), swapped[(t + 1) % SHARDS].0.clone());
        swapped[t].0 = b;
        swapped[(t + 1) % SHARDS].0 = a;
        assert!(refused(swapped, seed));
        let mut fewer = image;
        fewer.pop();
        assert!(refused(fewer, seed));
    }
}
