//! The in-memory index and the state readers share: where each live value sits, the file
//! and its memory map.
//!
//! The index is built for a fast open and a small, flat footprint (issue 15):
//! - each entry is a 24-byte slot in a `hashbrown::HashTable` — the value's [`Loc`] and a
//!   packed reference to the key's bytes — with no allocation per key: keys are copied into
//!   an arena of chunks of up to 1 MiB that never move (a chunk is never reallocated, so
//!   growing the arena copies nothing);
//! - the table is split into 64 shards by hash, so when one grows it allocates and rehashes a
//!   64th of the index: opening never holds two copies of the whole table, which is what made
//!   a single `HashMap`'s peak 1.5x to 2x its steady size;
//! - keys are hashed with foldhash seeded at random per index (`foldhash::fast::RandomState`):
//!   a keyed hash, so a key set crafted to collide under one seed does not collide under the
//!   next (no O(n^2) probing from hostile keys), at a few nanoseconds per key where SipHash
//!   cost 38% of the open. A hit always compares the whole key, never only its hash.

use std::collections::HashMap;
use std::fs::File;
use std::hash::BuildHasher;
use std::path::Path;
use std::sync::Arc;

use hashbrown::HashTable;
use memmap2::Mmap;

use super::open::file_len;
use super::record::Layout;
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
const SHARDS: usize = 64;

/// Offsets and lengths in a log stay below this (256 TiB), so a slot packs each in 48 bits
/// beside 16 bits of the key's hash. A record past it is refused: by the scan as corrupt,
/// by an append as a full log.
pub(super) const MAX_OFFSET: u64 = 1 << 48;

/// One entry (24 bytes): the value's place and its record's layout, where its key sits in the
/// arena, and 31 bits of the key's hash, so growing a table rehashes without reading a single
/// key back and a probe compares a key's bytes only when those 31 bits match.
#[derive(Debug, Clone, Copy)]
struct Slot {
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
    fn new(loc: Loc, hash: u32, key: KeyRef) -> Slot {
        debug_assert!(loc.value_off < MAX_OFFSET && loc.value_len < MAX_OFFSET);
        debug_assert!(hash <= HASH_BITS);
        let v2 = if loc.layout == Layout::V2 { V2_BIT } else { 0 };
        Slot {
            off_hash: (loc.value_off & LOW48) | (u64::from(hash >> 15) << 48),
            len_hash: (loc.value_len & LOW48) | v2 | (u64::from(hash & 0x7fff) << 48),
            key,
        }
    }
    fn loc(&self) -> Loc {
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
}

/// A key copied into the index's arena and hashed, waiting for [`Index::insert_staged`].
#[derive(Clone, Copy)]
pub(super) struct Staged {
    /// The shard (high bits) and the sixteenth of its table (low 4 bits).
    bin: u16,
    h32: u32,
    key: KeyRef,
    loc: Loc,
}

impl Staged {
    const EMPTY: Staged = Staged {
        bin: 0,
        h32: 0,
        key: KeyRef(0),
        loc: Loc {
            value_off: 0,
            value_len: 0,
            layout: Layout::V1,
        },
    };
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

/// Chunks never exceed this (a key of up to 64 KiB always fits in one).
const CHUNK_MAX: usize = 1 << 20;
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

    fn bytes(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<u8>>()
    }
}

/// The live keys and where their values sit.
pub(super) struct Index {
    shards: Vec<HashTable<Slot>>,
    keys: Arena,
    hasher: foldhash::fast::RandomState,
    len: usize,
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

impl Index {
    pub(super) fn new() -> Index {
        Self::with_capacity(0)
    }

    /// An index with room for about `entries` keys, so loading that many rarely regrows a
    /// table: each shard gets its even share plus four standard deviations of the binomial
    /// spread, which keeps it at the bucket count growing to that share would reach.
    pub(super) fn with_capacity(entries: usize) -> Index {
        let per_shard = match entries / SHARDS {
            0 => 0,
            share => share + 4 * share.isqrt() + 16,
        };
        Index {
            shards: (0..SHARDS)
                .map(|_| HashTable::with_capacity(per_shard))
                .collect(),
            keys: Arena::default(),
            hasher: foldhash::fast::RandomState::default(),
            len: 0,
        }
    }

    /// The key's 64-bit hash: its low 31 bits are kept in the slot, bits 32.. pick the shard.
    fn hash(hasher: &foldhash::fast::RandomState, key: &[u8]) -> u64 {
        hasher.hash_one(key)
    }

    fn shard_of(hash: u64) -> usize {
        (hash >> 32) as usize & (SHARDS - 1)
    }

    /// The hash a shard's table sees, made of the 31 bits a slot keeps (so a table can grow
    /// from its slots alone): they feed both the bucket choice (low bits) and hashbrown's tag
    /// byte (top 7 bits).
    fn table_hash(h32: u32) -> u64 {
        u64::from(h32) | (u64::from(h32) << 33)
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<Loc> {
        let hash = Self::hash(&self.hasher, key);
        let h32 = hash as u32 & HASH_BITS;
        let keys = &self.keys;
        self.shards[Self::shard_of(hash)]
            .find(Self::table_hash(h32), |s| {
                s.hash() == h32 && s.key.len() == key.len() && keys.get(s.key) == key
            })
            .map(Slot::loc)
    }

    pub(super) fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Points `key` at `loc`; returns the place it pointed at before.
    pub(super) fn insert(&mut self, key: &[u8], loc: Loc) -> Option<Loc> {
        let hash = Self::hash(&self.hasher, key);
        let h32 = hash as u32 & HASH_BITS;
        let Index {
            shards, keys, len, ..
        } = self;
        let shard = &mut shards[Self::shard_of(hash)];
        match shard.entry(
            Self::table_hash(h32),
            |s| s.hash() == h32 && s.key.len() == key.len() && keys.get(s.key) == key,
            |s| Self::table_hash(s.hash()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut e) => {
                let old = e.get().loc();
                e.get_mut().set_loc(loc);
                Some(old)
            }
            hashbrown::hash_table::Entry::Vacant(e) => {
                let key = keys.push(key);
                e.insert(Slot::new(loc, h32, key));
                *len += 1;
                None
            }
        }
    }

    /// Copies `key` into the arena and hashes it, for [`Index::insert_staged`]: loading a
    /// checkpoint stages a batch of keys, then inserts them grouped by shard and by sixteenth
    /// of the shard's table, so the inserts stay in a few cache-sized stretches of one table
    /// at a time instead of missing the cache at random.
    pub(super) fn stage(&mut self, key: &[u8], loc: Loc) -> Staged {
        let hash = Self::hash(&self.hasher, key);
        let h32 = hash as u32 & HASH_BITS;
        let shard = Self::shard_of(hash);
        let bits = Self::buckets(self.shards[shard].capacity())
            .max(16)
            .trailing_zeros();
        let sixteenth = (Self::table_hash(h32) >> (bits - 4)) as usize & 15;
        Staged {
            bin: (shard << 4 | sixteenth) as u16,
            h32,
            key: self.keys.push(key),
            loc,
        }
    }

    /// Inserts the staged keys in bin order (a counting sort into `sorted`); false when a key
    /// was already there (a damaged checkpoint), leaving the index to be dropped.
    pub(super) fn insert_staged(&mut self, staged: &[Staged], sorted: &mut Vec<Staged>) -> bool {
        const BINS: usize = SHARDS * 16;
        let mut starts = vec![0usize; BINS + 1];
        for s in staged {
            starts[s.bin as usize + 1] += 1;
        }
        for i in 0..BINS {
            starts[i + 1] += starts[i];
        }
        sorted.clear();
        sorted.resize(staged.len(), Staged::EMPTY);
        for s in staged {
            let at = &mut starts[s.bin as usize];
            sorted[*at] = *s;
            *at += 1;
        }
        let Index {
            shards, keys, len, ..
        } = self;
        for s in sorted.iter() {
            let shard = &mut shards[(s.bin >> 4) as usize];
            // The staged key is read only when a slot's hash matches (rarely, for a new key).
            match shard.entry(
                Self::table_hash(s.h32),
                |t| {
                    t.hash() == s.h32
                        && t.key.len() == s.key.len()
                        && keys.get(t.key) == keys.get(s.key)
                },
                |t| Self::table_hash(t.hash()),
            ) {
                hashbrown::hash_table::Entry::Occupied(_) => return false,
                hashbrown::hash_table::Entry::Vacant(e) => {
                    e.insert(Slot::new(s.loc, s.h32, s.key));
                    *len += 1;
                }
            }
        }
        true
    }

    /// The bucket count of a table of `capacity` (hashbrown keeps capacity at 7/8 of a power
    /// of two, buckets - 1 below 8 buckets).
    fn buckets(capacity: usize) -> usize {
        match capacity {
            0 => 0,
            c if c < 8 => (c + 1).next_power_of_two(),
            c => (c * 8 / 7).next_power_of_two(),
        }
    }

    /// Drops `key`; returns where its value was.
    pub(super) fn remove(&mut self, key: &[u8]) -> Option<Loc> {
        let hash = Self::hash(&self.hasher, key);
        let h32 = hash as u32 & HASH_BITS;
        let keys = &self.keys;
        let shard = &mut self.shards[Self::shard_of(hash)];
        let found = shard.find_entry(Self::table_hash(h32), |s| {
            s.hash() == h32 && s.key.len() == key.len() && keys.get(s.key) == key
        });
        let (slot, _) = found.ok()?.remove();
        self.len -= 1;
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
            .flat_map(|s| s.iter())
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

    /// Heap bytes the index holds: the tables' buckets and tag bytes, and the key arena.
    pub(super) fn heap_bytes(&self) -> usize {
        let tables: usize = self
            .shards
            .iter()
            .map(|s| {
                // A tag byte per bucket and a group's worth more.
                match Self::buckets(s.capacity()) {
                    0 => 0,
                    buckets => buckets * (std::mem::size_of::<Slot>() + 1) + 16,
                }
            })
            .sum();
        tables + self.shards.capacity() * std::mem::size_of::<HashTable<Slot>>() + self.keys.bytes()
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
}
