//! The index as a checkpoint stores it ([`Index::image`]) and read back ([`ImageReader`]).

use foldhash::fast::FixedState;

use super::{
    over_max_load, Arena, Index, KeyRef, Slot, Table, CHUNK_MAX, MAX_KEY_LEN, MAX_RUN, SHARDS,
};

impl Index {
    /// The index as a checkpoint stores it, shard by shard: each laid out afresh in a table of
    /// [`Table::cap_for`] its count (so a reopened index starts at a load of 2/3, whatever
    /// growth and removals left in memory), its keys packed in slot order into chunks of at
    /// most [`CHUNK_MAX`] bytes that hold only this shard's keys (so an open checks a shard
    /// while its slots and keys are still in the cache).
    pub(in crate::log) fn image(
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
pub(in crate::log) struct ShardImage<'a> {
    /// The table, slot by slot ([`Slot::EMPTY`] for an empty one).
    pub(in crate::log) slots: &'a [Slot],
    /// The shard's keys, chunk after chunk.
    pub(in crate::log) keys: &'a [u8],
    /// The lengths of the shard's key chunks.
    pub(in crate::log) chunk_lens: &'a [u64],
}

/// Builds an [`Index`] from a checkpoint's image, shard by shard: [`ImageReader::chunk`] for
/// each key chunk, then [`ImageReader::table`] for the shard's table, which checks it.
pub(in crate::log) struct ImageReader {
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
    pub(in crate::log) fn new(seed: u64) -> ImageReader {
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

    pub(in crate::log) fn chunk(&mut self, chunk: Vec<u8>) {
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
    pub(in crate::log) fn table(&mut self, slots: Vec<Slot>) -> bool {
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
    pub(in crate::log) fn finish(self) -> Option<(Index, u64)> {
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
