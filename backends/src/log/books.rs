//! [`Accounting`] for a [`LogStore`]: totals and the write order from the log itself, reads
//! recorded in memory and in the access sidecar (`super::access`).
//!
//! # What is kept where
//! - **Totals** (entries, value bytes) are the index's own counts, kept up by every record
//!   the index applies (at open, from the checkpoint or the scan, and by every write), so
//!   [`Accounting::totals`] is O(1) and a limited `Cache` opens without scanning.
//! - **The write order is the log**: records are only appended, and compaction copies them
//!   in file order, so a record's offset is its write stamp. FIFO eviction walks the log from
//!   a cursor per order (every live record before it was evicted, or, for LRU and LFU, is
//!   ordered by a read, below),
//!   taking each record the index still points at: O(records passed), amortized over the
//!   passes, and no memory per entry. The cursor starts at the log's first record at each
//!   open, so a process's first eviction walks the garbage before the oldest live record
//!   once.
//! - **Reads** ([`Accounting::record_access`], which a `Cache` calls in batches) get a stamp
//!   from the log's end: a read recorded when the log ends at `e` sorts after every record
//!   before `e` and before any record written later (stamps are `2e` for reads and
//!   `2 × offset + 1` for writes, with a sequence number ordering reads of one batch). They
//!   are held in memory per store handle (one `HashMap` entry per key read, plus one ordered
//!   set for each of the LRU and LFU orders in use) and appended to `<log>.access`, one batch
//!   per call, so history survives a restart. LRU evicts the smaller of the log walk's next
//!   unread record and the oldest read; LFU evicts unread records (in write order) before
//!   read ones, then by read count and last access. Both are exact: an entry read after a
//!   batch flush is never evicted before one that was never read since it was written.
//!   Memory: about `2 × key + 150` bytes per key ever read (while live).
//! - **Deadlines** are not kept ([`Accounting::keeps_deadlines`] is `false`): `Cache::cleanup`
//!   finds expired entries by reading headers, as without accounting.
//!
//! # Processes
//! One writer process at a time holds the log (see [`LogStore`]); it alone evicts, records
//! reads and writes the sidecar, so its books are the store's. A read-only handle offers no
//! accounting (a limited `Cache` on one keeps its books in memory). An eviction chooses and
//! deletes under the writer's lock, and never takes a record at or past the log's end when
//! the pass began: a value written after it chose (a later record) is compared by position
//! and kept.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, MutexGuard};

use super::access::{self, Access1, Sidecar};
use super::record::{Kind, RecordHeader, FILE_HEADER_LEN, RECORD_HEADER_LEN};
use super::state::{remap_to, State};
use super::LogStore;
use crate::accounting::{Accounting, Described, EntryAccount, EvictPlan, Order, Totals};
use crate::{Error, Result};

/// Victims chosen and deleted per writer-lock hold.
const EVICT_CHUNK: usize = 2048;
const KEEP_LRU: u8 = 1;
const KEEP_LFU: u8 = 2;

/// A rank in an eviction order: `(read count, position, sequence)`, smallest first (the read
/// count is 0 for LRU and FIFO).
type Rank = (u32, u64, u64);

/// What a key's reads left, and where it sits in the LFU set.
#[derive(Debug, Clone, Copy)]
struct Read {
    access: Access1,
    /// The LFU set's rank for the key (corrected lazily when an overwrite moved it later).
    lfu: Rank,
}

/// An order's place in [`Books::cursors`].
fn order_no(order: Order) -> usize {
    match order {
        Order::Lru => 0,
        Order::Lfu => 1,
        Order::Fifo => 2,
    }
}

/// The write stamp of a record starting at `start`.
fn write_pos(start: u64) -> (u64, u64) {
    (2 * start + 1, 0)
}

/// A writer's books (see the module docs).
#[derive(Debug)]
pub(super) struct Books {
    reads: HashMap<Arc<[u8]>, Read>,
    lru: BTreeSet<(u64, u64, Arc<[u8]>)>,
    lfu: BTreeSet<(Rank, Arc<[u8]>)>,
    kept: u8,
    /// Where each order's log walk resumes (a record's offset), by [`order_no`]: the records
    /// a walk passes for good differ by order (LRU passes the ones ordered by later reads).
    cursors: [u64; 3],
    /// The next read's sequence number.
    seq: u64,
    generation: u64,
    sidecar: Sidecar,
    /// What the live history takes in a rewritten sidecar (each key's bytes plus 24), kept
    /// as keys enter and leave `reads` so a flush need not sum them.
    live_bytes: u64,
}

impl Books {
    /// A key's share of [`Books::live_bytes`].
    fn live_len(key: &[u8]) -> u64 {
        key.len() as u64 + 24
    }

    fn access_rank(a: &Access1) -> (u64, u64) {
        (a.pos, a.seq)
    }

    fn insert_sets(&mut self, key: &Arc<[u8]>, read: &Read) {
        if self.kept & KEEP_LRU != 0 {
            self.lru
                .insert((read.access.pos, read.access.seq, key.clone()));
        }
        if self.kept & KEEP_LFU != 0 {
            self.lfu.insert((read.lfu, key.clone()));
        }
    }

    fn remove_sets(&mut self, key: &Arc<[u8]>, read: &Read) {
        self.lru
            .remove(&(read.access.pos, read.access.seq, key.clone()));
        self.lfu.remove(&(read.lfu, key.clone()));
    }

    /// Forgets `key` (deleted).
    fn forget(&mut self, key: &[u8]) {
        if let Some((k, read)) = self.reads.remove_entry(key) {
            self.live_bytes -= Self::live_len(&k);
            self.remove_sets(&k, &read);
        }
    }

    /// Sets `key`'s access state (from a read, or replayed from the sidecar) given the start
    /// of its live record.
    fn set(&mut self, key: &[u8], access: Access1, start: u64) {
        let (k, old) = match self.reads.remove_entry(key) {
            Some((k, old)) => (k, Some(old)),
            None => {
                self.live_bytes += Self::live_len(key);
                (Arc::from(key), None)
            }
        };
        if let Some(old) = &old {
            self.remove_sets(&k, old);
        }
        let at = Self::access_rank(&access).max(write_pos(start));
        let read = Read {
            access,
            lfu: (access.hits, at.0, at.1),
        };
        self.seq = self.seq.max(access.seq + 1);
        self.insert_sets(&k, &read);
        self.reads.insert(k, read);
    }

    /// Whether the log walk passes the live record of `key` at `start` (it is ordered by its
    /// reads instead, in the set of `order`).
    fn ordered_by_reads(&self, key: &[u8], start: u64, order: Order) -> bool {
        match (order, self.reads.get(key)) {
            (Order::Fifo, _) | (_, None) => false,
            (Order::Lfu, Some(_)) => true,
            (Order::Lru, Some(r)) => Self::access_rank(&r.access) > write_pos(start),
        }
    }

    /// The oldest entry of `order`'s read set that may go, with its rank, after dropping the
    /// entries that no longer hold (deleted keys; LRU reads older than a rewrite, which the log
    /// walk finds; LFU ranks an overwrite moved). Skips `keep` and records at or past `bound`.
    fn read_front(
        &mut self,
        order: Order,
        st: &State,
        keep: Option<&[u8]>,
        bound: u64,
    ) -> Option<(Rank, Arc<[u8]>)> {
        loop {
            let mut fix: Option<(Arc<[u8]>, bool)> = None;
            let mut found = None;
            {
                let iter: Box<dyn Iterator<Item = (Rank, &Arc<[u8]>)>> = match order {
                    Order::Fifo => return None,
                    Order::Lru => Box::new(self.lru.iter().map(|(p, s, k)| ((0, *p, *s), k))),
                    Order::Lfu => Box::new(self.lfu.iter().map(|(r, k)| (*r, k))),
                };
                for (rank, key) in iter {
                    let Some(loc) = st.index.get(key) else {
                        fix = Some((key.clone(), true));
                        break;
                    };
                    let start = loc.record_start(key.len());
                    // A rank older than the key's live record: rewritten since it was read.
                    if (rank.1, rank.2) < write_pos(start) {
                        fix = Some((key.clone(), false));
                        break;
                    }
                    if keep == Some(&key[..]) || start >= bound {
                        continue;
                    }
                    found = Some((rank, key.clone()));
                    break;
                }
            }
            match fix {
                None => return found,
                Some((key, true)) => self.forget(&key),
                Some((key, false)) => {
                    let Some(read) = self.reads.get(&key).copied() else {
                        continue;
                    };
                    let start = st
                        .index
                        .get(&key)
                        .map(|l| l.record_start(key.len()))
                        .unwrap_or_default();
                    match order {
                        // The rewrite is in the log past the cursor: the walk finds it.
                        Order::Lru => {
                            self.lru
                                .remove(&(read.access.pos, read.access.seq, key.clone()));
                        }
                        _ => {
                            self.lfu.remove(&(read.lfu, key.clone()));
                            let at = Self::access_rank(&read.access).max(write_pos(start));
                            let moved = Read {
                                lfu: (read.access.hits, at.0, at.1),
                                ..read
                            };
                            self.lfu.insert((moved.lfu, key.clone()));
                            self.reads.insert(key, moved);
                        }
                    }
                }
            }
        }
    }

    /// The next record of the log walk from `*at` that `order` takes by its write: live,
    /// not ordered by reads, before `bound`. Moves `*at` over the records it passes, never
    /// past the one it returns; `keep` is passed but marks `hold` (the cursor must not pass
    /// it for good).
    fn next_unread(
        &self,
        st: &State,
        at: &mut u64,
        bound: u64,
        order: Order,
        keep: Option<&[u8]>,
        hold: &mut Option<u64>,
    ) -> Option<(u64, Vec<u8>)> {
        let map = &st.map[..];
        while *at < bound {
            let pos = *at;
            let head_end = (pos + RECORD_HEADER_LEN).min(bound) as usize;
            let header = map
                .get(pos as usize..head_end)
                .and_then(|b| RecordHeader::decode(b).ok());
            let Some(header) = header.filter(|h| pos + h.record_len() <= bound) else {
                // A record the open did not check (under the checkpoint) and that no longer
                // decodes: go on from the next live record the index knows.
                *at = st
                    .index
                    .iter()
                    .map(|(k, l)| l.record_start(k.len()))
                    .filter(|&s| s > pos)
                    .min()
                    .unwrap_or(bound);
                continue;
            };
            *at = pos + header.record_len();
            if header.kind != Kind::Put {
                continue;
            }
            let key_at = (pos + header.header_len()) as usize;
            let Some(key) = map.get(key_at..key_at + header.key_len as usize) else {
                continue;
            };
            let live = st
                .index
                .get(key)
                .is_some_and(|l| l.record_start(key.len()) == pos);
            if !live || self.ordered_by_reads(key, pos, order) {
                continue;
            }
            if keep == Some(key) {
                hold.get_or_insert(pos);
                continue;
            }
            *at = pos;
            return Some((pos, key.to_vec()));
        }
        None
    }

    /// Moves every stamp into the compacted file: `moves` maps each live record's old start
    /// to its new one (sorted), `end` is the new file's end.
    pub(super) fn remap(&mut self, moves: &[(u64, u64)], end: u64, generation: u64, st: &State) {
        let new_of = |old: u64| -> u64 {
            let i = moves.partition_point(|m| m.0 < old);
            moves.get(i).map_or(end, |m| m.1)
        };
        for c in &mut self.cursors {
            *c = new_of(*c);
        }
        let reads: Vec<(Arc<[u8]>, Read)> = self.reads.drain().collect();
        self.live_bytes = 0;
        self.lru.clear();
        self.lfu.clear();
        for (key, read) in reads {
            let Some(loc) = st.index.get(&key) else {
                continue;
            };
            // A read's stamp is twice an end: the first record at or after it moved to
            // `new_of`, and the read stays just before it.
            let access = Access1 {
                pos: 2 * new_of(read.access.pos / 2),
                ..read.access
            };
            self.set(&key, access, loc.record_start(key.len()));
        }
        self.generation = generation;
    }

    fn live(&self) -> impl Iterator<Item = (&[u8], Access1)> + '_ {
        self.reads.iter().map(|(k, r)| (&k[..], r.access))
    }
}

impl LogStore {
    /// The writer's books, loaded from the access sidecar on first use.
    fn books(&self) -> Result<MutexGuard<'_, Option<Books>>> {
        if self.options.read_only {
            return Err(Error::Unsupported {
                op: "accounting",
                path: self.path.clone(),
                reason: "a read-only handle keeps no accounting".into(),
            });
        }
        let mut guard = self.books.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let st = self.state();
            let mut found: Vec<(Vec<u8>, Access1)> = Vec::new();
            let sidecar = Sidecar::load(
                &self.path,
                st.generation,
                self.options.file_mode,
                &mut |key, a| found.push((key.to_vec(), a)),
            )?;
            let mut books = Books {
                reads: HashMap::new(),
                lru: BTreeSet::new(),
                lfu: BTreeSet::new(),
                kept: 0,
                cursors: [FILE_HEADER_LEN; 3],
                seq: 0,
                generation: st.generation,
                sidecar,
                live_bytes: 0,
            };
            let end2 = 2 * st.end;
            for (key, mut a) in found {
                // Keys deleted since are dropped; a stamp past the log (planted, or a log
                // cut at open) is taken as a read at its end.
                if let Some(loc) = st.index.get(&key) {
                    a.pos = a.pos.min(end2) & !1;
                    books.set(&key, a, loc.record_start(key.len()));
                }
            }
            *guard = Some(books);
        }
        Ok(guard)
    }

    /// Called by compaction once the index points into the new file.
    pub(super) fn remap_books(&self, moves: &[(u64, u64)], end: u64, generation: u64) {
        let mut guard = self.books.lock().unwrap_or_else(|p| p.into_inner());
        let Some(books) = guard.as_mut() else {
            return;
        };
        let st = self.state();
        books.remap(moves, end, generation, &st);
        drop(st);
        // Best effort: a sidecar left behind names the old generation and is ignored.
        if let Ok(side) =
            Sidecar::rewrite(&self.path, generation, books.sidecar.mode(), books.live())
        {
            books.sidecar = side;
        }
    }

    fn evict_pass(&self, plan: &EvictPlan<'_>, on_evicted: &mut dyn FnMut(&[u8])) -> Result<u64> {
        let mut total = 0u64;
        let mut bound: Option<u64> = None;
        let mut walk: Option<u64> = None;
        let mut generation: Option<u64> = None;
        let mut hold: Option<u64> = None;
        loop {
            let mut slot = self.writer_slot();
            self.writable(&mut slot, "evict")?;
            {
                let mut st = self.state_mut();
                let end = st.end;
                remap_to(&mut st, end, &self.path)?;
            }
            let mut guard = self.books()?;
            let books = guard.as_mut().expect("loaded by books()");
            let (victims, done) = {
                let st = self.state();
                if *generation.get_or_insert(st.generation) != st.generation {
                    // Compacted under the pass (auto-compaction): its stamps moved; the next
                    // pass goes on from the remapped cursor.
                    return Ok(total);
                }
                let bound = *bound.get_or_insert(st.end);
                let mut at = walk
                    .unwrap_or(books.cursors[order_no(plan.order)])
                    .max(FILE_HEADER_LEN);
                let (mut entries, mut bytes) = (st.index.len() as u64, st.index.value_bytes());
                let over = |e: u64, b: u64| {
                    plan.max_entries.is_some_and(|m| e > m) || plan.max_bytes.is_some_and(|m| b > m)
                };
                let mut victims: Vec<Vec<u8>> = Vec::new();
                let mut unread = None;
                let mut exhausted = false;
                while over(entries, bytes) && victims.len() < EVICT_CHUNK {
                    if unread.is_none() {
                        unread = books
                            .next_unread(&st, &mut at, bound, plan.order, plan.keep, &mut hold);
                    }
                    let front = books.read_front(plan.order, &st, plan.keep, bound);
                    let unread_rank = unread.as_ref().map(|(pos, _)| {
                        let (p, s) = write_pos(*pos);
                        (0u32, p, s)
                    });
                    let key = match (unread_rank, front) {
                        (None, None) => {
                            exhausted = true;
                            break;
                        }
                        (Some(u), Some((f, k))) if f < u => k.to_vec(),
                        (Some(_), _) => {
                            let (pos, key) = unread.take().expect("ranked above");
                            let loc = st.index.get(&key).expect("live when walked");
                            at = pos + loc.record_len(key.len());
                            key
                        }
                        (None, Some((_, k))) => k.to_vec(),
                    };
                    books.forget(&key);
                    if let Some(loc) = st.index.get(&key) {
                        entries -= 1;
                        bytes = bytes.saturating_sub(loc.value_len);
                    }
                    victims.push(key);
                }
                // The walk resumes at the first record it did not take for good.
                let resume = [Some(at), unread.as_ref().map(|u| u.0), hold]
                    .into_iter()
                    .flatten()
                    .min()
                    .unwrap_or(at);
                walk = Some(resume);
                books.cursors[order_no(plan.order)] = resume;
                (victims, exhausted || !over(entries, bytes))
            };
            drop(guard);
            if !victims.is_empty() {
                let batch: Vec<(Kind, &[u8], &[u8])> = victims
                    .iter()
                    .map(|k| (Kind::Tombstone, &k[..], &[][..]))
                    .collect();
                self.append(&mut slot, "evict", &batch)?;
            }
            drop(slot);
            for key in &victims {
                on_evicted(key);
            }
            total += victims.len() as u64;
            if done || victims.is_empty() {
                return Ok(total);
            }
        }
    }
}

impl Accounting for LogStore {
    /// The index's counts: always complete ([`Totals::built`]).
    fn totals(&self) -> Result<Totals> {
        let st = self.state();
        Ok(Totals {
            entries: st.index.len() as u64,
            bytes: st.index.value_bytes(),
            built: true,
        })
    }

    fn keep_order(&self, order: Order, _progress: &mut dyn FnMut(u64)) -> Result<()> {
        let mut guard = self.books()?;
        let books = guard.as_mut().expect("loaded by books()");
        let bit = match order {
            Order::Fifo => return Ok(()),
            Order::Lru => KEEP_LRU,
            Order::Lfu => KEEP_LFU,
        };
        if books.kept & bit == 0 {
            books.kept |= bit;
            let reads: Vec<(Arc<[u8]>, Read)> =
                books.reads.iter().map(|(k, r)| (k.clone(), *r)).collect();
            for (k, r) in reads {
                books.insert_sets(&k, &r);
            }
        }
        Ok(())
    }

    fn enable(&self) -> Result<()> {
        self.keep_order(Order::Lru, &mut |_| {})
    }

    /// Nothing to count: the index counts every entry.
    fn build(
        &self,
        _describe: &mut dyn FnMut(&[u8], &[u8]) -> Described,
        _progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        Ok(0)
    }

    fn record_access(&self, reads: &[(&[u8], u32)]) -> Result<()> {
        if reads.is_empty() {
            return Ok(());
        }
        let mut guard = self.books()?;
        let books = guard.as_mut().expect("loaded by books()");
        let st = self.state();
        let pos = 2 * st.end;
        let mut written = Vec::with_capacity(reads.len());
        for &(key, hits) in reads {
            let Some(loc) = st.index.get(key) else {
                continue;
            };
            let before = books.reads.get(key).map_or(0, |r| r.access.hits);
            let access = Access1 {
                pos,
                seq: books.seq,
                hits: before.saturating_add(hits),
            };
            books.set(key, access, loc.record_start(key.len()));
            written.push((key, access));
        }
        drop(st);
        let batch = access::batch(written.into_iter());
        books.sidecar.append(&batch)?;
        // Rewritten whole once it holds much more than the live history.
        if books.sidecar.len() > 4 * books.live_bytes + (1 << 20) {
            let side = Sidecar::rewrite(
                &self.path,
                books.generation,
                books.sidecar.mode(),
                books.live(),
            )?;
            books.sidecar = side;
        }
        Ok(())
    }

    fn evict(&self, plan: &EvictPlan<'_>, on_evicted: &mut dyn FnMut(&[u8])) -> Result<u64> {
        if !plan.is_over(&self.totals()?) {
            return Ok(0);
        }
        // An order not kept yet is built from the reads held in memory: no walk of the log,
        // so it is cheap enough for a write's eviction.
        self.keep_order(plan.order, &mut |_| {})?;
        self.evict_pass(plan, on_evicted)
    }

    /// A LogStore keeps no deadlines ([`Accounting::keeps_deadlines`] is `false`).
    fn remove_expired(&self, _now_ms: u64, _on_removed: &mut dyn FnMut(&[u8])) -> Result<u64> {
        Err(Error::Unsupported {
            op: "remove_expired",
            path: self.path.clone(),
            reason: "a LogStore keeps no deadlines: expired entries are found by their headers"
                .into(),
        })
    }

    fn keeps_deadlines(&self) -> bool {
        false
    }

    fn entry(&self, key: &[u8]) -> Result<Option<EntryAccount>> {
        let guard = self.books()?;
        let st = self.state();
        let Some(loc) = st.index.get(key) else {
            return Ok(None);
        };
        let (written, _) = write_pos(loc.record_start(key.len()));
        let read = guard.as_ref().and_then(|b| b.reads.get(key));
        Ok(Some(EntryAccount {
            size: loc.value_len,
            written,
            accessed: read.map_or(written, |r| r.access.pos.max(written)),
            hits: read.map_or(0, |r| r.access.hits),
            expires_ms: None,
        }))
    }
}
