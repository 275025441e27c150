//! [`Accounting`]: eviction bookkeeping kept inside a store, shared by every process that
//! opens it.
//!
//! A store that implements it keeps, in the same transaction as each value: the entry's size,
//! a write stamp, an access stamp and a read count, its deadline, and the store's totals.
//! Stamps come from one counter in the store, so every process sees one order; a total is read
//! in O(1), so a limited `Cache` opens without scanning. [`Store::accounting`] hands it out;
//! stores without it (the default) leave the front-end to scan at open and track in memory.
//!
//! Accounting is **off** in a store until [`Accounting::enable`] or [`Accounting::build`] (which
//! a limited `Cache` calls when it opens) turns it on, for every handle and process at once:
//! a store no limited cache uses pays next to nothing per write. The first limited cache on a
//! store with entries counts them once ([`Accounting::build`]); every later open reads the
//! stored totals.
//!
//! [`Store::accounting`]: crate::Store::accounting

use crate::Result;

/// The store's totals, read in O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Totals {
    /// Entries counted.
    pub entries: u64,
    /// Bytes of their values counted.
    pub bytes: u64,
    /// Whether every entry is counted: `false` while accounting is off, and for a store
    /// written before accounting was turned on until [`Accounting::build`] has run once.
    pub built: bool,
}

/// Which entries go first when a store evicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Order {
    /// The oldest access (a write or a recorded read) first.
    Lru,
    /// The fewest recorded reads first; ties go to the oldest access.
    Lfu,
    /// The oldest write first.
    Fifo,
}

/// What [`Accounting::evict`] should bring the store down to.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct EvictPlan<'a> {
    /// At most this many entries remain (`None`: no entry limit).
    pub max_entries: Option<u64>,
    /// At most this many value bytes remain (`None`: no byte limit).
    pub max_bytes: Option<u64>,
    /// The order victims are chosen in.
    pub order: Order,
    /// A key never chosen (the entry its caller just wrote).
    pub keep: Option<&'a [u8]>,
}

impl<'a> EvictPlan<'a> {
    /// A plan with the given limits, order and no kept key.
    pub fn new(max_entries: Option<u64>, max_bytes: Option<u64>, order: Order) -> Self {
        EvictPlan {
            max_entries,
            max_bytes,
            order,
            keep: None,
        }
    }

    /// Never chooses `key`.
    pub fn keep(mut self, key: &'a [u8]) -> Self {
        self.keep = Some(key);
        self
    }

    /// Whether `totals` are over the plan's limits.
    pub fn is_over(&self, totals: &Totals) -> bool {
        self.max_entries.is_some_and(|m| totals.entries > m)
            || self.max_bytes.is_some_and(|m| totals.bytes > m)
    }
}

/// One entry's bookkeeping, as [`Accounting::entry`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryAccount {
    /// The value's size in bytes.
    pub size: u64,
    /// The store-wide stamp of the write that stored this value.
    pub written: u64,
    /// The store-wide stamp of its last access (its write, or the last recorded read).
    pub accessed: u64,
    /// Reads recorded (kept across overwrites, for LFU).
    pub hits: u32,
    /// The deadline the value was written with, ms since the Unix epoch.
    pub expires_ms: Option<u64>,
}

/// What a store's [`Accounting::build`] is told about one existing value, when it can lend it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Described {
    /// When the value was written (ms since the Unix epoch), used as its stamp so migrated
    /// entries keep their age order.
    pub created_ms: Option<u64>,
    /// The value's deadline (ms since the Unix epoch), entered in the expiry index.
    pub expires_ms: Option<u64>,
}

impl Described {
    /// What is known about a value: its write time and deadline.
    pub fn new(created_ms: Option<u64>, expires_ms: Option<u64>) -> Self {
        Described {
            created_ms,
            expires_ms,
        }
    }
}

/// Eviction bookkeeping kept in the store (see the module docs).
///
/// Every write and delete through the store updates it in the same transaction; reads do
/// not (a caller records them in batches with [`Accounting::record_access`]).
///
/// ```
/// # #[cfg(feature = "lmdb")] {
/// use cacher_store::accounting::{EvictPlan, Order};
/// use cacher_store::{LmdbStore, Store};
///
/// let dir = tempfile::tempdir()?;
/// let store = LmdbStore::open(dir.path())?;
/// let acct = store.accounting().expect("LmdbStore keeps accounting");
/// acct.enable()?; // off until a limited cache (or this) turns it on
/// for k in [b"a", b"b", b"c"] {
///     store.put(k, b"12345")?;
/// }
/// acct.record_access(&[(&b"a"[..], 1)])?; // "a" read: now the most recent
/// assert_eq!(acct.totals()?.bytes, 15);
/// let mut gone = Vec::new();
/// acct.evict(&EvictPlan::new(Some(2), None, Order::Lru), &mut |k| gone.push(k.to_vec()))?;
/// assert_eq!(gone, vec![b"b".to_vec()]);
/// // enable() kept the LRU order only; FIFO is built from the records once, then kept.
/// acct.keep_order(Order::Fifo, &mut |_| {})?;
/// gone.clear();
/// acct.evict(&EvictPlan::new(Some(1), None, Order::Fifo), &mut |k| gone.push(k.to_vec()))?;
/// assert_eq!(gone, vec![b"a".to_vec()]);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Accounting: Send + Sync {
    /// The totals, in O(1) (zero and not [`Totals::built`] while accounting is off).
    fn totals(&self) -> Result<Totals>;

    /// Turns accounting on in the store, for every handle and process (each sees it in its
    /// next write), keeping the LRU order ([`Accounting::keep_order`] picks another); a
    /// no-op when it is on. Entries already stored are counted only by
    /// [`Accounting::build`], which turns it on too. Until then the store writes no
    /// bookkeeping, and the other methods find nothing: no totals, no entry, nothing to evict.
    /// The default does nothing, for a store whose accounting is always on.
    fn enable(&self) -> Result<()> {
        Ok(())
    }

    /// Makes the store keep `order` up to date, for every handle and process: turns
    /// accounting on ([`Accounting::enable`]) keeping that order when it is off; otherwise,
    /// when the store keeps other orders only, builds this one once from the stored
    /// bookkeeping (bounded chunks, safe while others write; `progress` is told how many
    /// entries are indexed so far). A store may keep only the orders it was asked for, so a
    /// write pays for those alone; [`Accounting::evict`] in an order the store does not keep
    /// is refused rather than built inside a write's eviction (a limited `Cache` calls this
    /// at open). The default turns accounting on, for a store that always keeps every order.
    /// (Example: the trait's.)
    fn keep_order(&self, order: Order, progress: &mut dyn FnMut(u64)) -> Result<()> {
        let _ = (order, progress);
        self.enable()
    }

    /// Turns accounting on ([`Accounting::enable`]) and counts every entry written before it
    /// was on (a one-time scan in bounded
    /// chunks; safe while other processes write, and again after an interrupted run).
    /// `describe` is asked about each value the store can lend (`key`, value bytes);
    /// `progress` is told how many entries have been looked at so far. Returns the number of
    /// entries added. A no-op once [`Totals::built`].
    fn build(
        &self,
        describe: &mut dyn FnMut(&[u8], &[u8]) -> Described,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64>;

    /// Records reads: each `(key, hits)` gets a new access stamp (in the order given, so the
    /// last is the most recent) and `hits` more reads. Keys not stored are skipped.
    fn record_access(&self, reads: &[(&[u8], u32)]) -> Result<()>;

    /// Deletes entries in `plan.order` until the totals are within the plan's limits, calling
    /// `on_evicted` with each deleted key after its deletion committed. Never deletes an entry
    /// written after the eviction began (another writer's new value), nor `plan.keep`. Works
    /// in bounded chunks, one transaction each. Returns how many were deleted. An order the
    /// store does not keep ([`Accounting::keep_order`] was not called for it) is refused
    /// with [`crate::Error::Unsupported`] and deletes nothing.
    fn evict(&self, plan: &EvictPlan<'_>, on_evicted: &mut dyn FnMut(&[u8])) -> Result<u64>;

    /// Deletes every entry whose deadline is at or before `now_ms`, walking the expiry index;
    /// the deadline is compared in the deleting transaction, so a value rewritten since is
    /// kept. Calls `on_removed` with each deleted key. Returns how many were deleted.
    fn remove_expired(&self, now_ms: u64, on_removed: &mut dyn FnMut(&[u8])) -> Result<u64>;

    /// Up to `limit` entries written with **no** deadline, oldest write first, whose write
    /// stamp ([`EntryAccount::written`]) is after `after`, as `(key, write stamp)`: for the
    /// cleanup of a cache whose TTL (or deadline) also covers values written without one,
    /// which the expiry index does not hold. A store may build the index this walks once,
    /// on the first call. The default lists nothing (a store whose accounting keeps no
    /// deadlines, which a cache cleans by reading headers).
    fn undated(&self, after: Option<u64>, limit: usize) -> Result<Vec<(Vec<u8>, u64)>> {
        let _ = (after, limit);
        Ok(Vec::new())
    }

    /// Deletes `key` when its value is still the undated one written at stamp `written` (as
    /// [`Accounting::undated`] listed it), compared in the deleting transaction so a value
    /// rewritten since is kept. Returns whether it was deleted. The default deletes nothing.
    fn remove_if_written(&self, key: &[u8], written: u64) -> Result<bool> {
        let _ = (key, written);
        Ok(false)
    }

    /// Whether the store keeps deadlines in an expiry index ([`Accounting::remove_expired`]);
    /// when `false` (LogStore) a `Cache` finds expired entries by reading their headers. The
    /// default is `true`.
    fn keeps_deadlines(&self) -> bool {
        true
    }

    /// One entry's bookkeeping (`None`: not stored, or not counted yet).
    fn entry(&self, key: &[u8]) -> Result<Option<EntryAccount>>;
}
