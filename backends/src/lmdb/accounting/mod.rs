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

mod books;
mod outside;
mod records;
mod store;
#[cfg(test)]
mod store_tests;
#[cfg(test)]
mod tests;

pub(crate) use outside::{Adopted, RecordOp};
pub(super) use records::ACCT_DB;
use records::*;

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
