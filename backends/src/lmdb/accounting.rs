//! Eviction accounting of an [`LmdbStore`]: the `cacher-store-acct` database, written in the same
//! write transaction as each value, so every process sees one total and one order.
//!
//! # Layout (accounting version 3; 2 while no undated index is kept)
//! One named database, `cacher-store-acct` (named under `cacher-store` so tools that tell an
//! unmarked LmdbStore by its database names still do), whose keys start with a one-byte tag. An entry is named
//! by its *id*: its stored key in `cacher-store` (tag byte and key) when that is at most
//! [`MAX_PLAIN_ID`] bytes, else `0x02 ‖ blake3(stored key)`, so every index key fits LMDB's
//! 511 bytes.
//!
//! ```text
//! key                                          value
//! b"m" b"state"                                b"cacherAC" ‖ version u32 LE (2|3) ‖ built u8 ‖
//!                                              entries u64 LE ‖ bytes u64 LE ‖ next stamp u64 LE ‖
//!                                              kept u8 ‖ building u8
//! b"m" b"cursor"                               the last stored key a running migration counted
//! b"m" b"o" ‖ order tag                        the last record key a running index build indexed
//! b"r" ‖ id                                    version u8 (1) ‖ flags u8 (bit 0: has deadline) ‖
//!                                              size u64 LE ‖ written u64 LE ‖ accessed u64 LE ‖
//!                                              hits u32 LE ‖ deadline u64 LE ‖ stored key
//! b"l" ‖ accessed u64 BE ‖ id                  (empty)   LRU order   (when kept: bit 0)
//! b"w" ‖ written u64 BE ‖ id                   (empty)   FIFO order  (when kept: bit 1)
//! b"f" ‖ hits u32 BE ‖ accessed u64 BE ‖ id    (empty)   LFU order   (when kept: bit 2)
//! b"x" ‖ deadline u64 BE ‖ id                  (empty)   expiry order (entries with one)
//! b"u" ‖ written u64 BE ‖ id                   (empty)   undated order (entries without
//!                                                        one; when kept: bit 3, version 3)
//! ```
//!
//! Version 3 is version 2 whose `kept`/`building` may hold bit 3, the undated index: the
//! entries written with no deadline, by write stamp, which the cleanup of a cache whose TTL
//! was set after they were written walks ([`AcctDb::undated`]). It is built once (like an
//! order, in chunks) when first asked for, and a state is written as version 3 only when it
//! keeps it, so a store no TTL cache cleans stays readable by version-2 builds; a version-2
//! build refuses a version-3 state as "upgrade required" rather than not keeping the index
//! up. Fixture `fixtures/lmdb/acct-v3-store`.
//!
//! Version 1 (read, never written; fixture `fixtures/lmdb/acct-v1-store`) is the same without
//! `kept` and `building`: a 37-byte state whose store keeps all three orders. A version-1
//! store is rewritten as version 2 (keeping all three) by its first write.
//!
//! # Only the orders in use
//! `kept` says which order indexes are complete and kept up by every write; `building`, which
//! are being built. Accounting turned on for one policy keeps that policy's order only
//! ([`AcctDb::keep_order`]), so a write updates the state, the record and one order (not
//! three). A cache with another policy that opens later builds that order once
//! ([`Books::build_order`]): chunks of [`BUILD_CHUNK`] records, one write transaction each,
//! with its place saved under `b"mo" ‖ tag`. It is safe while any process writes, because
//! every write keeps up the orders in `kept | building` and the walk puts each record's key
//! as the record stands in the walk's own transaction: a record the walk has not reached yet
//! is indexed (or re-indexed, the same key) when it does, and one it has passed is kept up by
//! the writes. Orders are never dropped: a store used by caches of two policies keeps both.
//! An interrupted build stays in `building` (writes keep that order up) and is resumed from
//! its place by the next cache of that policy, or the next eviction in that order.
//!
//! Stamps come from the state's counter, taken in the writing transaction: LMDB has one
//! writer at a time, so stamps are unique and ordered across processes, and no clock is
//! trusted for order. Index keys are big-endian so LMDB's bytewise order is numeric order.
//! A newer state version is refused as "upgrade required"; a state of the wrong length or
//! magic is corrupt.
//!
//! # Off until a limited cache turns it on
//! A store keeps no accounting until [`Accounting::enable`] (or [`Accounting::build`], which a
//! limited `Cache` calls at open) writes the state: "on" is "the state exists". Until then a
//! put or delete reads one key (the state, or, when `cacher-store-acct` does not exist yet,
//! its name in LMDB's unnamed database) inside its own write transaction and writes nothing,
//! so a store no limited cache uses pays about one B-tree lookup per write. Opening a store
//! writes nothing here: the database is opened if present and created only by `enable`. A
//! handle (of any process) opened while accounting was off sees it on in its next write
//! transaction, since the state is read inside it; a handle that has not opened the database
//! yet (it was created after the handle's open, and heed opens databases only in a
//! transaction of their own) gives up the write, opens the database and runs it again
//! ([`AcctDb::write`]).
//!
//! # Migration
//! A store written before accounting, or while accounting was off, has no state: `enable`
//! writes one with `built = 0` (or `1` when the store is empty), and [`Accounting::build`] then walks
//! `cacher-store` in chunks of [`BUILD_CHUNK`] keys, one write transaction each, adding a
//! record for every key that has none and saving its place in `cursor`. Writes by any process
//! during the walk keep the totals right: a write of an uncounted key adds it (there was
//! nothing counted to take away), a delete of one takes nothing away, and the walk skips keys
//! that have a record.

use std::sync::{Arc, OnceLock};

use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn};

use super::layout::{StoredKey, TAG_PLAIN};
use super::{LmdbEnv, LmdbStore, TxnError};
use crate::accounting::{Accounting, Described, EntryAccount, EvictPlan, Order, Totals};
use crate::{Error, Result};

/// The database's name.
pub(super) const ACCT_DB: &str = "cacher-store-acct";
/// The version of the accounting layout this build writes (and the newest it reads).
/// 1: every store kept all three orders. 2: the state records which orders are kept.
/// 3: version 2 with the undated index (`KEEP_UNDATED`) among them; written only by a store
/// that keeps it, so a store no TTL cache cleans stays version 2 for older builds.
pub(crate) const ACCT_VERSION: u32 = 3;
const STATE_MAGIC: &[u8; 8] = b"cacherAC";
const STATE_KEY: &[u8] = b"mstate";
const CURSOR_KEY: &[u8] = b"mcursor";
/// A version-1 state: magic, version, built, entries, bytes, next stamp.
const STATE_LEN_V1: usize = 8 + 4 + 1 + 8 + 8 + 8;
/// A version-2 state: version 1's fields, then the kept and building order bits.
const STATE_LEN: usize = STATE_LEN_V1 + 2;
/// The order bits of a state's `kept` and `building`.
const KEEP_LRU: u8 = 1;
const KEEP_FIFO: u8 = 2;
const KEEP_LFU: u8 = 4;
/// Every order: what a version-1 store keeps.
const KEEP_ALL: u8 = KEEP_LRU | KEEP_FIFO | KEEP_LFU;
/// The undated index: entries written with no deadline, by write stamp (version 3).
const KEEP_UNDATED: u8 = 8;
const RECORD_VERSION: u8 = 1;
const RECORD_HEADER: usize = 2 + 8 + 8 + 8 + 4 + 8;
const TAG_RECORD: u8 = b'r';
const TAG_LRU: u8 = b'l';
const TAG_FIFO: u8 = b'w';
const TAG_LFU: u8 = b'f';
const TAG_EXPIRY: u8 = b'x';
const TAG_UNDATED: u8 = b'u';
const TAG_HASHED_ID: u8 = 0x02;
/// Longest stored key used as its own id: tag (1) + hits (4) + stamp (8) + id fits in 511.
const MAX_PLAIN_ID: usize = 480;
/// Entries deleted per write transaction by an eviction or expiry pass (bounds memory and the
/// time another writer waits).
pub(crate) const EVICT_CHUNK: usize = 2048;
/// Keys counted per write transaction by a migration.
pub(crate) const BUILD_CHUNK: usize = 10_000;

#[expect(
    clippy::big_endian_bytes,
    reason = "index keys sort bytewise in LMDB: big-endian numbers sort as numbers"
)]
fn be64(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

#[expect(
    clippy::big_endian_bytes,
    reason = "index keys sort bytewise in LMDB: big-endian numbers sort as numbers"
)]
fn be32(n: u32) -> [u8; 4] {
    n.to_be_bytes()
}

#[expect(
    clippy::big_endian_bytes,
    reason = "reads back the big-endian numbers of index keys"
)]
fn from_be64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

/// An entry's id in the accounting database (see the module docs).
fn id_of(stored: &[u8]) -> Vec<u8> {
    if stored.len() <= MAX_PLAIN_ID {
        return stored.to_vec();
    }
    let mut id = Vec::with_capacity(33);
    id.push(TAG_HASHED_ID);
    id.extend_from_slice(blake3::hash(stored).as_bytes());
    id
}

/// An order's bit in a state's `kept` and `building`, and the tag of its index keys.
fn order_bit(order: Order) -> (u8, u8) {
    match order {
        Order::Lru => (KEEP_LRU, TAG_LRU),
        Order::Fifo => (KEEP_FIFO, TAG_FIFO),
        Order::Lfu => (KEEP_LFU, TAG_LFU),
    }
}

fn tagged(tag: u8, parts: &[&[u8]], id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 12 + id.len());
    k.push(tag);
    for p in parts {
        k.extend_from_slice(p);
    }
    k.extend_from_slice(id);
    k
}

/// The store-wide totals and stamp counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    built: bool,
    entries: u64,
    bytes: u64,
    next: u64,
    /// The order indexes that are complete and kept up (`KEEP_*` bits).
    kept: u8,
    /// The order indexes being built ([`Books::build_order`]), kept up by writes too.
    building: u8,
}

impl State {
    fn encode(&self) -> [u8; STATE_LEN] {
        let mut out = [0u8; STATE_LEN];
        out[..8].copy_from_slice(STATE_MAGIC);
        let version: u32 = if self.indexed() & KEEP_UNDATED != 0 {
            3
        } else {
            2
        };
        out[8..12].copy_from_slice(&version.to_le_bytes());
        out[12] = u8::from(self.built);
        out[13..21].copy_from_slice(&self.entries.to_le_bytes());
        out[21..29].copy_from_slice(&self.bytes.to_le_bytes());
        out[29..37].copy_from_slice(&self.next.to_le_bytes());
        out[37] = self.kept;
        out[38] = self.building;
        out
    }

    fn decode(raw: &[u8]) -> Result<State, crate::version::Refusal> {
        use crate::version::Refusal;
        if raw.len() < 12 || &raw[..8] != STATE_MAGIC {
            return Err(Refusal::corrupt("accounting state without its magic"));
        }
        let version = crate::le::u32_at(raw, 8).unwrap_or_default();
        if version > ACCT_VERSION {
            return Err(Refusal::Newer(version));
        }
        let (kept, building) = match (version, raw.len()) {
            (1, STATE_LEN_V1) => (KEEP_ALL, 0),
            (2 | 3, STATE_LEN) => (raw[37], raw[38]),
            _ => (0, 0),
        };
        let known = if version >= 3 {
            KEEP_ALL | KEEP_UNDATED
        } else {
            KEEP_ALL
        };
        if kept & KEEP_ALL == 0 || kept & !known != 0 || building & !known != 0 || raw[12] > 1 {
            return Err(Refusal::corrupt(format!(
                "accounting state of {} bytes, version {version}",
                raw.len()
            )));
        }
        let at = |i| crate::le::u64_at(raw, i).unwrap_or_default();
        Ok(State {
            built: raw[12] == 1,
            entries: at(13),
            bytes: at(21),
            next: at(29),
            kept,
            building,
        })
    }

    /// The orders every write keeps up: the complete ones and those being built.
    fn indexed(&self) -> u8 {
        self.kept | self.building
    }

    fn take_stamp(&mut self) -> u64 {
        let s = self.next;
        self.next += 1;
        s
    }

    fn totals(&self) -> Totals {
        Totals {
            entries: self.entries,
            bytes: self.bytes,
            built: self.built,
        }
    }

    fn add(&mut self, size: u64) {
        self.entries += 1;
        self.bytes = self.bytes.saturating_add(size);
    }

    fn sub(&mut self, size: u64) {
        self.entries = self.entries.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(size);
    }
}

/// One entry's record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    size: u64,
    written: u64,
    accessed: u64,
    hits: u32,
    expires: Option<u64>,
    /// The key in `cacher-store`.
    stored: Vec<u8>,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_HEADER + self.stored.len());
        out.push(RECORD_VERSION);
        out.push(u8::from(self.expires.is_some()));
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.written.to_le_bytes());
        out.extend_from_slice(&self.accessed.to_le_bytes());
        out.extend_from_slice(&self.hits.to_le_bytes());
        out.extend_from_slice(&self.expires.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.stored);
        out
    }

    fn decode(raw: &[u8]) -> Result<Record, crate::version::Refusal> {
        use crate::version::Refusal;
        match raw.first() {
            Some(&RECORD_VERSION) => {}
            Some(&v) if v > RECORD_VERSION => return Err(Refusal::Newer(u32::from(v))),
            _ => return Err(Refusal::corrupt("accounting record of an unknown version")),
        }
        if raw.len() <= RECORD_HEADER || raw[1] > 1 {
            return Err(Refusal::corrupt(format!(
                "accounting record of {} bytes",
                raw.len()
            )));
        }
        let at = |i| crate::le::u64_at(raw, i).unwrap_or_default();
        Ok(Record {
            size: at(2),
            written: at(10),
            accessed: at(18),
            hits: crate::le::u32_at(raw, 26).unwrap_or_default(),
            expires: (raw[1] == 1).then(|| at(30)),
            stored: raw[RECORD_HEADER..].to_vec(),
        })
    }

    fn account(&self) -> EntryAccount {
        EntryAccount {
            size: self.size,
            written: self.written,
            accessed: self.accessed,
            hits: self.hits,
            expires_ms: self.expires,
        }
    }
}

/// Reads the id back from an index key of `tag`.
fn id_in(tag: u8, key: &[u8]) -> &[u8] {
    let skip = match tag {
        TAG_LFU => 1 + 4 + 8,
        _ => 1 + 8,
    };
    key.get(skip..).unwrap_or_default()
}

type Db = Database<'static, Bytes, Bytes>;

/// The `cacher-store-acct` database of one store, as a handle sees it (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct AcctDb {
    /// The database, once it exists and this handle has opened it (shared by clones).
    db: Arc<OnceLock<Db>>,
    /// LMDB's unnamed database, which lists the named ones: tells a write that another
    /// handle created `cacher-store-acct` after this one looked.
    main: Db,
    /// `cacher-store`, to tell an empty store when accounting is turned on.
    data: Db,
}

/// The opened `cacher-store-acct` database: the bookkeeping itself.
#[derive(Debug, Clone, Copy)]
struct Books {
    db: Db,
}

/// The error a write gives up with when it finds `cacher-store-acct` created by another
/// handle after this one opened: [`AcctDb::write`] opens it and runs the write again.
fn appeared(env: &LmdbEnv) -> TxnError {
    TxnError::Store(Error::Engine {
        engine: "lmdb",
        path: env.path().to_path_buf(),
        source: Box::new(std::io::Error::other(
            "the accounting database was created by another handle during this write",
        )),
    })
}

/// A victim or expired entry as an eviction pass hands it back: its key and what the caller's
/// `extract` took from its value.
pub(crate) type Removed = (Vec<u8>, Option<Vec<u8>>);

/// What a caller takes from a value before it is deleted (HybridStore: the value file's id).
pub(crate) type Extract<'a> = Option<&'a dyn Fn(&[u8]) -> Option<Vec<u8>>>;

/// How a caller sees a stored value during a migration: its size, and the bytes `describe`
/// may look at when they are at hand.
pub(crate) type View<'a> = &'a dyn for<'v> Fn(&'v [u8]) -> (u64, Option<&'v [u8]>);

impl AcctDb {
    /// Opens the database if it exists, writing nothing (opening an existing store takes no
    /// write lock); refuses a newer or damaged state now rather than at the first write.
    pub(super) fn open(env: &LmdbEnv, data: Db) -> Result<AcctDb> {
        let acct = AcctDb {
            db: Arc::default(),
            main: env.create_unnamed_database()?,
            data,
        };
        if let Some(books) = acct.find(env)? {
            env.read(|r| books.state_if_on(env, r).map(drop))?;
        }
        Ok(acct)
    }

    /// The books, opening the database (in a read transaction) if it exists and this
    /// handle has not opened it yet.
    fn find(&self, env: &LmdbEnv) -> Result<Option<Books>> {
        if let Some(db) = self.db.get() {
            return Ok(Some(Books { db: *db }));
        }
        Ok(env.existing_database(ACCT_DB)?.map(|db| Books {
            db: *self.db.get_or_init(|| db),
        }))
    }

    /// The books inside a write transaction: `None` when the database does not exist (so
    /// accounting is off); [`appeared`] when another handle created it since this one looked.
    fn in_txn(&self, env: &LmdbEnv, txn: &RoTxn<'_>) -> Result<Option<Books>, TxnError> {
        if let Some(db) = self.db.get() {
            return Ok(Some(Books { db: *db }));
        }
        // The main database names every named database, and the store's own two are always
        // there: with fewer than three entries the books do not exist. The entry count is in
        // the transaction's database record, where the lookup below descends the main tree
        // (about 400 instructions, a twentieth of a put; benches/RESULTS.md, issue 15).
        if self.main.len(txn)? < 3 {
            return Ok(None);
        }
        match self.main.get(txn, ACCT_DB.as_bytes())? {
            None => Ok(None),
            Some(_) => Err(appeared(env)),
        }
    }

    /// Runs `f` in a write transaction ([`LmdbEnv::write`]) that may call the hooks. When it
    /// fails on a handle that had not opened `cacher-store-acct`, the database is looked for
    /// and, once found, `f` runs again: it was created by another handle (the hook gave up,
    /// [`appeared`]), or opened by another thread of this handle during the transaction,
    /// which then could not use it.
    pub(super) fn write<T, E: Into<TxnError>>(
        &self,
        env: &LmdbEnv,
        mut f: impl FnMut(&mut RwTxn<'_>) -> Result<T, E>,
    ) -> Result<T> {
        let had = self.db.get().is_some();
        match env.write(&mut f) {
            Err(e) if !had => match self.find(env)? {
                Some(_) => env.write(f),
                None => Err(e),
            },
            done => done,
        }
    }

    /// Turns accounting on keeping the LRU order ([`AcctDb::keep_order`]).
    pub(crate) fn enable(&self, env: &LmdbEnv) -> Result<()> {
        self.keep_order(env, Order::Lru, BUILD_CHUNK, &mut |_| {})
    }

    /// Makes the store keep `order` (see the module docs): turns accounting on keeping only
    /// `order` when it is off, else builds `order`'s index once if the store does not keep it
    /// yet, in chunks of `chunk` records, telling `progress` how many are indexed so far. A
    /// read transaction and nothing more when the order is kept already.
    pub(crate) fn keep_order(
        &self,
        env: &LmdbEnv,
        order: Order,
        chunk: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        self.keep_order_as(env, order, chunk, progress, false)
    }

    /// [`AcctDb::keep_order`]; a state written now is counted as built only when the
    /// database is empty and `unbuilt` is false (a store whose values live outside LMDB,
    /// DirStore's sidecar, knows of values its records do not hold yet).
    pub(crate) fn keep_order_as(
        &self,
        env: &LmdbEnv,
        order: Order,
        chunk: usize,
        progress: &mut dyn FnMut(u64),
        unbuilt: bool,
    ) -> Result<()> {
        let (bit, _) = order_bit(order);
        if let Some(books) = self.find(env)? {
            let kept =
                env.read(|r| Ok::<_, TxnError>(books.state_if_on(env, r)?.map(|s| s.kept)))?;
            if kept.is_some_and(|k| k & bit != 0) {
                return Ok(());
            }
        }
        let (books, missing) = self.turn_on(env, bit, unbuilt)?;
        if missing {
            books.build_order(env, order_bit(order), chunk, progress)?;
        }
        Ok(())
    }

    /// Turns accounting on keeping the orders of `bits` when it is off: creates the database
    /// if missing and writes a state, counted as built only when the store holds nothing yet.
    /// Answers the books, and whether accounting was on already without all of `bits` kept.
    fn turn_on(&self, env: &LmdbEnv, bits: u8, unbuilt: bool) -> Result<(Books, bool)> {
        let books = match self.find(env)? {
            Some(books) => books,
            None => {
                let db = env.create_database(ACCT_DB)?;
                Books {
                    db: *self.db.get_or_init(|| db),
                }
            }
        };
        let data = self.data;
        let missing = env.write(|w| -> Result<bool, TxnError> {
            if let Some(st) = books.state_if_on(env, w)? {
                return Ok(st.kept & bits != bits);
            }
            let state = State {
                built: !unbuilt && data.is_empty(w)?,
                entries: 0,
                bytes: 0,
                next: 1,
                kept: bits,
                building: 0,
            };
            books.put_state(w, &state)?;
            Ok(false)
        })?;
        Ok((books, missing))
    }

    /// The put hook: `stored` now holds a value of `size` bytes with `deadline`.
    pub(super) fn on_put(
        &self,
        env: &LmdbEnv,
        w: &mut RwTxn<'_>,
        stored: &[u8],
        size: u64,
        deadline: Option<u64>,
    ) -> Result<(), TxnError> {
        match self.in_txn(env, w)? {
            Some(books) => books.on_put(env, w, stored, size, deadline),
            None => Ok(()),
        }
    }

    /// The delete hook: `stored` is being deleted.
    pub(super) fn on_delete(
        &self,
        env: &LmdbEnv,
        w: &mut RwTxn<'_>,
        stored: &[u8],
    ) -> Result<(), TxnError> {
        match self.in_txn(env, w)? {
            Some(books) => books.on_delete(env, w, stored),
            None => Ok(()),
        }
    }

    /// The totals; zero and not built while accounting is off.
    pub(crate) fn totals(&self, env: &LmdbEnv) -> Result<Totals> {
        let Some(books) = self.find(env)? else {
            return Ok(Totals::default());
        };
        env.read(|r| Ok::<_, TxnError>(books.state_if_on(env, r)?.map(|s| s.totals())))
            .map(Option::unwrap_or_default)
    }

    pub(crate) fn entry(&self, env: &LmdbEnv, key: &[u8]) -> Result<Option<EntryAccount>> {
        match self.find(env)? {
            Some(books) => books.entry(env, key),
            None => Ok(None),
        }
    }

    pub(crate) fn record_access(&self, env: &LmdbEnv, reads: &[(&[u8], u32)]) -> Result<()> {
        match self.find(env)? {
            Some(books) => books.record_access(env, reads),
            None => Ok(()),
        }
    }

    /// The eviction pass of [`Accounting::evict`]: nothing while accounting is off. An order
    /// the store does not keep is refused ([`Error::Unsupported`], nothing deleted): building
    /// it walks every record, which must not happen inside a write's eviction (a latency
    /// spike on the write path); [`AcctDb::keep_order`] builds it, once, and a limited
    /// `Cache` calls it at open.
    pub(crate) fn evict(
        &self,
        store: &LmdbStore,
        plan: &EvictPlan<'_>,
        extract: Extract<'_>,
        on_removed: &mut dyn FnMut(Removed),
    ) -> Result<u64> {
        let Some(books) = self.find(&store.env)? else {
            return Ok(0);
        };
        books
            .evict(store, plan, extract, on_removed)?
            .ok_or_else(|| Error::Unsupported {
                op: "evict",
                path: store.env.path().to_path_buf(),
                reason: format!(
                    "the store does not keep the {:?} order: call Accounting::keep_order \
                     first (a limited Cache does at open), which builds it once",
                    plan.order
                ),
            })
    }

    /// The expiry pass of [`Accounting::remove_expired`]: nothing while accounting is off.
    pub(crate) fn remove_expired(
        &self,
        store: &LmdbStore,
        now_ms: u64,
        extract: Extract<'_>,
        on_removed: &mut dyn FnMut(Removed),
    ) -> Result<u64> {
        match self.find(&store.env)? {
            Some(books) => books.remove_expired(store, now_ms, extract, on_removed),
            None => Ok(0),
        }
    }

    /// Up to `limit` entries written with no deadline, oldest write first, after the write
    /// stamp `after`, as (key, write stamp): what a cache whose TTL (or deadline) also covers
    /// values written without one cleans up. The undated index is built once, in chunks, the
    /// first time it is asked for (the cleanup of a TTL cache, not a write), then kept by
    /// every write. Nothing while accounting is off.
    pub(crate) fn undated(
        &self,
        store: &LmdbStore,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, u64)>> {
        let env = &store.env;
        let Some(books) = self.find(env)? else {
            return Ok(Vec::new());
        };
        let kept = env.read(|r| Ok::<_, TxnError>(books.state_if_on(env, r)?.map(|s| s.kept)))?;
        match kept {
            None => return Ok(Vec::new()),
            Some(k) if k & KEEP_UNDATED == 0 => {
                books.build_order(env, (KEEP_UNDATED, TAG_UNDATED), BUILD_CHUNK, &mut |_| {})?;
            }
            Some(_) => {}
        }
        books.undated(store, after, limit)
    }

    /// Deletes `key` when its value is still the undated one written at stamp `written`
    /// (compared in the deleting transaction, so a value rewritten since is kept); reports it
    /// to `on_removed` after the commit. Returns whether it was deleted.
    pub(crate) fn remove_if_written(
        &self,
        store: &LmdbStore,
        key: &[u8],
        written: u64,
        extract: Extract<'_>,
        on_removed: &mut dyn FnMut(Removed),
    ) -> Result<bool> {
        let env = &store.env;
        let Some(books) = self.find(env)? else {
            return Ok(false);
        };
        let id = id_of(StoredKey::new(key).bytes());
        let removed = env.write(|w| -> Result<Option<Removed>, TxnError> {
            let Some(mut st) = books.state_if_on(env, w)? else {
                return Ok(None);
            };
            let Some(rec) = books.record(env, w, &id)? else {
                return Ok(None);
            };
            if rec.written != written || rec.expires.is_some() {
                return Ok(None);
            }
            let removed = books.remove_entry(store, w, &mut st, &id, &rec, extract)?;
            books.put_state(w, &st)?;
            Ok(Some(removed))
        })?;
        Ok(match removed {
            Some(r) => {
                on_removed(r);
                true
            }
            None => false,
        })
    }

    /// Turns accounting on, then counts what is stored ([`Books::build`]).
    pub(crate) fn build(
        &self,
        store: &LmdbStore,
        view: View<'_>,
        describe: &mut dyn FnMut(&[u8], &[u8]) -> Described,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        // On if off (keeping LRU); the orders kept already are the ones the count fills.
        let (books, _) = self.turn_on(&store.env, KEEP_LRU, false)?;
        books.build(store, view, describe, progress)
    }
}

impl Books {
    /// The state, `None` while accounting is off.
    fn state_if_on(&self, env: &LmdbEnv, txn: &RoTxn<'_>) -> Result<Option<State>, TxnError> {
        let Some(raw) = self.db.get(txn, STATE_KEY)? else {
            return Ok(None);
        };
        State::decode(raw)
            .map(Some)
            .map_err(|r| TxnError::Store(r.into_error(env.path(), None, ACCT_VERSION)))
    }

    /// The state of a pass that runs only while accounting is on.
    fn state(&self, env: &LmdbEnv, txn: &RoTxn<'_>) -> Result<State, TxnError> {
        self.state_if_on(env, txn)?.ok_or_else(|| {
            TxnError::Store(Error::corrupt(
                env.path(),
                None,
                "the accounting state is missing",
            ))
        })
    }

    fn put_state(&self, w: &mut RwTxn<'_>, st: &State) -> Result<(), TxnError> {
        Ok(self.db.put(w, STATE_KEY, &st.encode())?)
    }

    fn record(
        &self,
        env: &LmdbEnv,
        txn: &RoTxn<'_>,
        id: &[u8],
    ) -> Result<Option<Record>, TxnError> {
        let key = tagged(TAG_RECORD, &[], id);
        match self.db.get(txn, &key)? {
            None => Ok(None),
            Some(raw) => Record::decode(raw)
                .map(Some)
                .map_err(|r| TxnError::Store(r.into_error(env.path(), None, ACCT_VERSION))),
        }
    }

    /// The keys of `rec` in the order indexes of `orders` (`KEEP_*` bits).
    fn order_keys<'a>(
        id: &'a [u8],
        rec: &Record,
        orders: u8,
    ) -> impl Iterator<Item = Vec<u8>> + 'a {
        let (accessed, written, hits) = (rec.accessed, rec.written, rec.hits);
        let undated = rec.expires.is_none();
        [KEEP_LRU, KEEP_FIFO, KEEP_LFU, KEEP_UNDATED]
            .into_iter()
            .filter(move |bit| orders & bit != 0)
            .filter_map(move |bit| match bit {
                KEEP_LRU => Some(tagged(TAG_LRU, &[&be64(accessed)], id)),
                KEEP_FIFO => Some(tagged(TAG_FIFO, &[&be64(written)], id)),
                KEEP_LFU => Some(tagged(TAG_LFU, &[&be32(hits), &be64(accessed)], id)),
                _ => undated.then(|| tagged(TAG_UNDATED, &[&be64(written)], id)),
            })
    }

    /// Writes `rec` and its keys in the orders of `orders` and in the expiry index.
    fn index(
        &self,
        w: &mut RwTxn<'_>,
        id: &[u8],
        rec: &Record,
        orders: u8,
    ) -> Result<(), TxnError> {
        self.db
            .put(w, &tagged(TAG_RECORD, &[], id), &rec.encode())?;
        for k in Self::order_keys(id, rec, orders) {
            self.db.put(w, &k, &[])?;
        }
        if let Some(e) = rec.expires {
            self.db.put(w, &tagged(TAG_EXPIRY, &[&be64(e)], id), &[])?;
        }
        Ok(())
    }

    /// Deletes `rec`'s keys in the orders of `orders` and in the expiry index.
    fn unindex(
        &self,
        w: &mut RwTxn<'_>,
        id: &[u8],
        rec: &Record,
        orders: u8,
    ) -> Result<(), TxnError> {
        for k in Self::order_keys(id, rec, orders) {
            self.db.delete(w, &k)?;
        }
        if let Some(e) = rec.expires {
            self.db.delete(w, &tagged(TAG_EXPIRY, &[&be64(e)], id))?;
        }
        Ok(())
    }

    /// [`AcctDb::on_put`] once the database is open: nothing while accounting is off.
    fn on_put(
        &self,
        env: &LmdbEnv,
        w: &mut RwTxn<'_>,
        stored: &[u8],
        size: u64,
        deadline: Option<u64>,
    ) -> Result<(), TxnError> {
        let Some(mut st) = self.state_if_on(env, w)? else {
            return Ok(());
        };
        let id = id_of(stored);
        let hits = match self.record(env, w, &id)? {
            Some(old) => {
                self.unindex(w, &id, &old, st.indexed())?;
                st.sub(old.size);
                // An overwrite keeps its read count (LFU), as the in-memory tracker does.
                old.hits
            }
            None => 0,
        };
        let stamp = st.take_stamp();
        let rec = Record {
            size,
            written: stamp,
            accessed: stamp,
            hits,
            expires: deadline,
            stored: stored.to_vec(),
        };
        self.index(w, &id, &rec, st.indexed())?;
        st.add(size);
        self.put_state(w, &st)
    }

    /// [`AcctDb::on_delete`] once the database is open: nothing while accounting is off.
    fn on_delete(&self, env: &LmdbEnv, w: &mut RwTxn<'_>, stored: &[u8]) -> Result<(), TxnError> {
        let Some(mut st) = self.state_if_on(env, w)? else {
            return Ok(());
        };
        let id = id_of(stored);
        if let Some(old) = self.record(env, w, &id)? {
            self.unindex(w, &id, &old, st.indexed())?;
            self.db.delete(w, &tagged(TAG_RECORD, &[], &id))?;
            st.sub(old.size);
            self.put_state(w, &st)?;
        }
        Ok(())
    }

    /// Deletes `id`'s value and bookkeeping inside `w`; returns the caller's key and what
    /// `extract` took from the value.
    fn remove_entry(
        &self,
        store: &LmdbStore,
        w: &mut RwTxn<'_>,
        st: &mut State,
        id: &[u8],
        rec: &Record,
        extract: Extract<'_>,
    ) -> Result<Removed, TxnError> {
        let mut removed: Removed = (rec.stored.get(1..).unwrap_or_default().to_vec(), None);
        let plain = rec.stored.first() == Some(&TAG_PLAIN);
        if !plain || extract.is_some() {
            if let Some(raw) = store.data.get(w, &rec.stored)? {
                // A damaged value is evicted all the same; it is reported under its stored
                // key when its own key cannot be read back.
                match store.layout.decode_entry(&rec.stored, raw) {
                    Ok((key, value)) => {
                        removed = (key.to_vec(), extract.and_then(|f| f(value)));
                    }
                    Err(_) if !plain => removed.0 = rec.stored.clone(),
                    Err(_) => {}
                }
            }
        }
        store.data.delete(w, &rec.stored)?;
        self.unindex(w, id, rec, st.indexed())?;
        self.db.delete(w, &tagged(TAG_RECORD, &[], id))?;
        st.sub(rec.size);
        Ok(removed)
    }

    fn entry(&self, env: &LmdbEnv, key: &[u8]) -> Result<Option<EntryAccount>> {
        let id = id_of(StoredKey::new(key).bytes());
        env.read(|r| Ok::<_, TxnError>(self.record(env, r, &id)?.map(|r| r.account())))
    }

    fn record_access(&self, env: &LmdbEnv, reads: &[(&[u8], u32)]) -> Result<()> {
        if reads.is_empty() {
            return Ok(());
        }
        env.write(|w| -> Result<(), TxnError> {
            let Some(mut st) = self.state_if_on(env, w)? else {
                return Ok(());
            };
            for (key, hits) in reads {
                let id = id_of(StoredKey::new(key).bytes());
                let Some(mut rec) = self.record(env, w, &id)? else {
                    continue;
                };
                // FIFO's and the undated index's keys hold the write stamp, which a read
                // leaves alone.
                let moved = st.indexed() & !(KEEP_FIFO | KEEP_UNDATED);
                for k in Self::order_keys(&id, &rec, moved) {
                    self.db.delete(w, &k)?;
                }
                rec.accessed = st.take_stamp();
                rec.hits = rec.hits.saturating_add(*hits);
                self.db
                    .put(w, &tagged(TAG_RECORD, &[], &id), &rec.encode())?;
                for k in Self::order_keys(&id, &rec, moved) {
                    self.db.put(w, &k, &[])?;
                }
            }
            self.put_state(w, &st)
        })
    }

    /// The eviction pass of [`Accounting::evict`], chunked; `extract` runs on each victim's
    /// value before it goes, `on_removed` after each chunk commits. `None` (nothing done)
    /// when the store does not keep `plan.order`.
    fn evict(
        &self,
        store: &LmdbStore,
        plan: &EvictPlan<'_>,
        extract: Extract<'_>,
        on_removed: &mut dyn FnMut(Removed),
    ) -> Result<Option<u64>> {
        let env = &store.env;
        let keep = plan.keep.map(|k| id_of(StoredKey::new(k).bytes()));
        let (bit, tag) = order_bit(plan.order);
        let mut unkept = false;
        // Entries stamped from here on were written after the eviction began: never ours to
        // take (the compare of the issue: a writer's fresh value survives a concurrent pass).
        let mut began: Option<u64> = None;
        let n = in_chunks(env, on_removed, |w, victims| {
            let Some(mut st) = self.state_if_on(env, w)? else {
                return Ok(false);
            };
            if st.kept & bit == 0 {
                unkept = true;
                return Ok(false);
            }
            if !plan.is_over(&st.totals()) {
                return Ok(false);
            }
            let began = *began.get_or_insert(st.next);
            let mut candidates = Vec::new();
            for item in self.db.prefix_iter(w, &[tag])? {
                let (k, _) = item?;
                let id = id_in(tag, k);
                if keep.as_deref() == Some(id) {
                    continue;
                }
                candidates.push(id.to_vec());
                if candidates.len() >= EVICT_CHUNK {
                    break;
                }
            }
            let full_chunk = candidates.len() >= EVICT_CHUNK;
            for id in candidates {
                if !plan.is_over(&st.totals()) {
                    break;
                }
                let Some(rec) = self.record(env, w, &id)? else {
                    continue;
                };
                if rec.written >= began {
                    continue;
                }
                victims.push(self.remove_entry(store, w, &mut st, &id, &rec, extract)?);
            }
            self.put_state(w, &st)?;
            Ok(plan.is_over(&st.totals()) && full_chunk && !victims.is_empty())
        })?;
        Ok((!unkept).then_some(n))
    }

    /// Builds `order`'s index from the records (see "Only the orders in use" in the module
    /// docs): `chunk` records per write transaction, resumed from its saved place, safe while
    /// other handles and processes write. A no-op once the order is kept.
    fn build_order(
        &self,
        env: &LmdbEnv,
        (bit, tag): (u8, u8),
        chunk: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let cursor_key = [b'm', b'o', tag];
        let mut indexed = 0;
        loop {
            let mut this_chunk = 0;
            let done = env.write(|w| -> Result<bool, TxnError> {
                let mut st = self.state(env, w)?;
                if st.kept & bit != 0 {
                    return Ok(true);
                }
                // From this transaction on every write keeps the order up as well.
                st.building |= bit;
                let cursor = self.db.get(w, &cursor_key)?.map(<[u8]>::to_vec);
                let first = [TAG_RECORD];
                let start = match &cursor {
                    Some(c) => std::ops::Bound::Excluded(&c[..]),
                    None => std::ops::Bound::Included(&first[..]),
                };
                let range = (start, std::ops::Bound::<&[u8]>::Unbounded);
                let mut found: Vec<(Vec<u8>, Record)> = Vec::new();
                for item in self.db.range(w, &range)? {
                    let (k, raw) = item?;
                    if k.first() != Some(&TAG_RECORD) {
                        break;
                    }
                    let rec = Record::decode(raw).map_err(|r| {
                        TxnError::Store(r.into_error(env.path(), None, ACCT_VERSION))
                    })?;
                    found.push((k[1..].to_vec(), rec));
                    if found.len() >= chunk {
                        break;
                    }
                }
                let full = found.len() >= chunk;
                for (id, rec) in &found {
                    for k in Self::order_keys(id, rec, bit) {
                        self.db.put(w, &k, &[])?;
                    }
                }
                this_chunk = found.len() as u64;
                match found.last() {
                    Some((id, _)) if full => {
                        self.db.put(w, &cursor_key, &tagged(TAG_RECORD, &[], id))?;
                    }
                    _ => {
                        st.kept |= bit;
                        st.building &= !bit;
                        self.db.delete(w, &cursor_key)?;
                    }
                }
                self.put_state(w, &st)?;
                Ok(!full)
            })?;
            indexed += this_chunk;
            if done {
                return Ok(());
            }
            progress(indexed);
        }
    }

    /// [`AcctDb::undated`] once the index is kept: one read transaction.
    fn undated(
        &self,
        store: &LmdbStore,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, u64)>> {
        let env = &store.env;
        env.read(|r| -> Result<Vec<(Vec<u8>, u64)>, TxnError> {
            let from = after.map_or(0, |a| a.saturating_add(1));
            let start = tagged(TAG_UNDATED, &[&be64(from)], &[]);
            let range = (
                std::ops::Bound::Included(&start[..]),
                std::ops::Bound::<&[u8]>::Unbounded,
            );
            let mut out = Vec::new();
            for item in self.db.range(r, &range)? {
                let (k, _) = item?;
                if k.first() != Some(&TAG_UNDATED) || out.len() >= limit {
                    break;
                }
                let Some(written) = from_be64(&k[1..]) else {
                    continue;
                };
                let Some(rec) = self.record(env, r, id_in(TAG_UNDATED, k))? else {
                    continue;
                };
                if rec.written != written || rec.expires.is_some() {
                    continue;
                }
                let key = if rec.stored.first() == Some(&TAG_PLAIN) {
                    rec.stored[1..].to_vec()
                } else {
                    // A long key is stored hashed; its bytes are in the entry.
                    match store.data.get(r, &rec.stored)? {
                        Some(raw) => match store.layout.decode_entry(&rec.stored, raw) {
                            Ok((key, _)) => key.to_vec(),
                            Err(_) => continue,
                        },
                        None => continue,
                    }
                };
                out.push((key, written));
            }
            Ok(out)
        })
    }

    /// The expiry pass of [`Accounting::remove_expired`], chunked like [`AcctDb::evict`].
    fn remove_expired(
        &self,
        store: &LmdbStore,
        now_ms: u64,
        extract: Extract<'_>,
        on_removed: &mut dyn FnMut(Removed),
    ) -> Result<u64> {
        let env = &store.env;
        in_chunks(env, on_removed, |w, removed| {
            let Some(mut st) = self.state_if_on(env, w)? else {
                return Ok(false);
            };
            let mut due = Vec::new();
            for item in self.db.prefix_iter(w, &[TAG_EXPIRY])? {
                let (k, _) = item?;
                if from_be64(&k[1..]).is_none_or(|e| e > now_ms) {
                    break;
                }
                due.push(id_in(TAG_EXPIRY, k).to_vec());
                if due.len() >= EVICT_CHUNK {
                    break;
                }
            }
            let full_chunk = due.len() >= EVICT_CHUNK;
            for id in due {
                let Some(rec) = self.record(env, w, &id)? else {
                    continue;
                };
                // The record is the current value's: compared in this transaction.
                if rec.expires.is_some_and(|e| e <= now_ms) {
                    removed.push(self.remove_entry(store, w, &mut st, &id, &rec, extract)?);
                }
            }
            self.put_state(w, &st)?;
            Ok(full_chunk)
        })
    }

    /// The migration of [`Accounting::build`] (see the module docs); `view` says how big each
    /// stored value is and lends its bytes to `describe` when it can.
    fn build(
        &self,
        store: &LmdbStore,
        view: View<'_>,
        describe: &mut dyn FnMut(&[u8], &[u8]) -> Described,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let env = &store.env;
        let mut looked_total = 0;
        let mut added_total = 0;
        loop {
            let mut looked = 0;
            let mut added = 0;
            let done = env.write(|w| -> Result<bool, TxnError> {
                (looked, added) = (0, 0);
                let mut st = self.state(env, w)?;
                if st.built {
                    return Ok(true);
                }
                let cursor = self.db.get(w, CURSOR_KEY)?.map(<[u8]>::to_vec);
                let start = match &cursor {
                    Some(c) => std::ops::Bound::Excluded(&c[..]),
                    None => std::ops::Bound::Unbounded,
                };
                let range = (start, std::ops::Bound::<&[u8]>::Unbounded);
                let mut found: Vec<(Vec<u8>, u64, Described)> = Vec::new();
                for item in store.data.range(w, &range)? {
                    let (stored, raw) = item?;
                    let (size, described) = match store.layout.decode_entry(stored, raw) {
                        Ok((key, value)) => {
                            let (size, lent) = view(value);
                            (size, lent.map(|v| describe(key, v)).unwrap_or_default())
                        }
                        // Counted at its stored size; a read reports the damage.
                        Err(_) => (raw.len() as u64, Described::default()),
                    };
                    found.push((stored.to_vec(), size, described));
                    if found.len() >= BUILD_CHUNK {
                        break;
                    }
                }
                let Some(last) = found.last().map(|f| f.0.clone()) else {
                    st.built = true;
                    self.db.delete(w, CURSOR_KEY)?;
                    self.put_state(w, &st)?;
                    return Ok(true);
                };
                for (stored, size, described) in found {
                    looked += 1;
                    let id = id_of(&stored);
                    if self.record(env, w, &id)?.is_some() {
                        continue;
                    }
                    // The write time keeps migrated entries in age order; all are older than
                    // anything stamped after the migration.
                    let stamp = described.created_ms.unwrap_or(0);
                    st.next = st.next.max(stamp.saturating_add(1));
                    let rec = Record {
                        size,
                        written: stamp,
                        accessed: stamp,
                        hits: 0,
                        expires: described.expires_ms,
                        stored,
                    };
                    self.index(w, &id, &rec, st.indexed())?;
                    st.add(size);
                    added += 1;
                }
                self.db.put(w, CURSOR_KEY, &last)?;
                self.put_state(w, &st)?;
                Ok(false)
            })?;
            looked_total += looked;
            added_total += added;
            if done {
                return Ok(added_total);
            }
            progress(looked_total);
        }
    }
}

/// Runs `chunk` in one write transaction after another until it answers that nothing is
/// left, and hands what each committed chunk removed to `on_removed`: eviction and expiry
/// passes hold bounded transactions, and callers hear of a removal only once it is committed.
fn in_chunks(
    env: &LmdbEnv,
    on_removed: &mut dyn FnMut(Removed),
    mut chunk: impl FnMut(&mut RwTxn<'_>, &mut Vec<Removed>) -> Result<bool, TxnError>,
) -> Result<u64> {
    let mut total = 0;
    loop {
        let mut removed: Vec<Removed> = Vec::new();
        let more = env.write(|w| {
            // A retried transaction starts its chunk again from nothing.
            removed.clear();
            chunk(w, &mut removed)
        })?;
        total += removed.len() as u64;
        for r in removed {
            on_removed(r);
        }
        if !more {
            return Ok(total);
        }
    }
}

/// What a store built on an `LmdbStore` (HybridStore's index) uses to count its own values.
impl LmdbStore {
    /// Writes `value` under `key`, counting it as `size` bytes with `deadline`.
    pub(crate) fn put_accounted(
        &self,
        key: &[u8],
        value: &[u8],
        size: u64,
        deadline: Option<u64>,
    ) -> Result<()> {
        self.acct.write(&self.env, |w| {
            self.put_in_accounted(w, key, value, size, deadline)
        })
    }

    /// [`Accounting::evict`], taking `extract` of each victim's value.
    pub(crate) fn evict_extracting(
        &self,
        plan: &EvictPlan<'_>,
        extract: Extract<'_>,
        on_removed: &mut dyn FnMut(Removed),
    ) -> Result<u64> {
        self.acct.evict(self, plan, extract, on_removed)
    }

    /// [`Accounting::remove_expired`], taking `extract` of each removed value.
    pub(crate) fn remove_expired_extracting(
        &self,
        now_ms: u64,
        extract: Extract<'_>,
        on_removed: &mut dyn FnMut(Removed),
    ) -> Result<u64> {
        self.acct.remove_expired(self, now_ms, extract, on_removed)
    }

    /// [`Accounting::remove_if_written`], taking `extract` of the removed value.
    pub(crate) fn remove_if_written_extracting(
        &self,
        key: &[u8],
        written: u64,
        extract: Extract<'_>,
        on_removed: &mut dyn FnMut(Removed),
    ) -> Result<bool> {
        self.acct
            .remove_if_written(self, key, written, extract, on_removed)
    }

    /// [`Accounting::build`], sizing each value through `view`.
    pub(crate) fn build_viewing(
        &self,
        view: View<'_>,
        describe: &mut dyn FnMut(&[u8], &[u8]) -> Described,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        self.acct.build(self, view, describe, progress)
    }
}

impl Accounting for LmdbStore {
    fn totals(&self) -> Result<Totals> {
        self.acct.totals(&self.env)
    }

    fn enable(&self) -> Result<()> {
        self.acct.enable(&self.env)
    }

    fn keep_order(&self, order: Order, progress: &mut dyn FnMut(u64)) -> Result<()> {
        self.acct
            .keep_order(&self.env, order, BUILD_CHUNK, progress)
    }

    fn build(
        &self,
        describe: &mut dyn FnMut(&[u8], &[u8]) -> Described,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        self.acct
            .build(self, &|v| (v.len() as u64, Some(v)), describe, progress)
    }

    fn record_access(&self, reads: &[(&[u8], u32)]) -> Result<()> {
        self.acct.record_access(&self.env, reads)
    }

    fn evict(&self, plan: &EvictPlan<'_>, on_evicted: &mut dyn FnMut(&[u8])) -> Result<u64> {
        self.acct
            .evict(self, plan, None, &mut |(k, _)| on_evicted(&k))
    }

    fn remove_expired(&self, now_ms: u64, on_removed: &mut dyn FnMut(&[u8])) -> Result<u64> {
        self.acct
            .remove_expired(self, now_ms, None, &mut |(k, _)| on_removed(&k))
    }

    fn undated(&self, after: Option<u64>, limit: usize) -> Result<Vec<(Vec<u8>, u64)>> {
        self.acct.undated(self, after, limit)
    }

    fn remove_if_written(&self, key: &[u8], written: u64) -> Result<bool> {
        self.acct
            .remove_if_written(self, key, written, None, &mut |_| {})
    }

    fn entry(&self, key: &[u8]) -> Result<Option<EntryAccount>> {
        self.acct.entry(&self.env, key)
    }
}

#[cfg(test)]
#[path = "accounting_tests.rs"]
mod store_tests;

#[path = "accounting_outside.rs"]
mod outside;
pub(crate) use outside::{Adopted, RecordOp};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_record_round_trip_and_refuse_newer_versions() {
        let st = State {
            built: true,
            entries: 3,
            bytes: 99,
            next: 7,
            kept: KEEP_LFU,
            building: KEEP_FIFO,
        };
        assert_eq!(State::decode(&st.encode()), Ok(st));
        // Version 1 (no order bits) keeps every order.
        let mut v1 = st.encode()[..STATE_LEN_V1].to_vec();
        v1[8] = 1;
        let read = State::decode(&v1).unwrap();
        assert_eq!((read.kept, read.building, read.next), (KEEP_ALL, 0, 7));
        let mut no_order = st.encode();
        no_order[37] = 0;
        assert!(
            State::decode(&no_order).is_err(),
            "a state keeping no order"
        );
        let mut newer = st.encode();
        newer[8] = 4;
        assert_eq!(
            State::decode(&newer),
            Err(crate::version::Refusal::Newer(4))
        );
        // The undated index is a version-3 bit: a state keeping it says so, and a version-2
        // state claiming it is damage (a version-2 build would not keep it up).
        let undated = State {
            kept: KEEP_LFU | KEEP_UNDATED,
            ..st
        };
        let raw = undated.encode();
        assert_eq!(crate::le::u32_at(&raw, 8), Some(3));
        assert_eq!(State::decode(&raw), Ok(undated));
        assert_eq!(crate::le::u32_at(&st.encode(), 8), Some(2));
        let mut v2_claiming = raw;
        v2_claiming[8] = 2;
        assert!(State::decode(&v2_claiming).is_err());
        assert!(State::decode(&newer[..20]).is_err());
        let rec = Record {
            size: 5,
            written: 1,
            accessed: 9,
            hits: 2,
            expires: Some(1234),
            stored: b"\0key".to_vec(),
        };
        assert_eq!(Record::decode(&rec.encode()), Ok(rec.clone()));
        let mut bad = rec.encode();
        bad[0] = 9;
        assert_eq!(Record::decode(&bad), Err(crate::version::Refusal::Newer(9)));
        assert!(Record::decode(&bad[..4]).is_err());
    }

    #[test]
    fn long_stored_keys_get_a_hashed_id_that_fits_an_index_key() {
        let stored = vec![0u8; 511];
        let id = id_of(&stored);
        assert_eq!(id.len(), 33);
        assert!(tagged(TAG_LFU, &[&be32(1), &be64(2)], &id_of(&[0; 480])).len() <= 511);
    }
}
