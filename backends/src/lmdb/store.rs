//! [`LmdbStore`]: a byte store in an LMDB environment that many processes share at once.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn};

use super::accounting::{AcctDb, ACCT_DB};
use super::layout::{Check, Layout, StoredKey, DATA_DB, FORMAT_KEY, FORMAT_VERSION, META_DB};
use super::pages::{KEYS_PER_PAGE, SCAN_BYTES_PER_PAGE};
use super::parked::{Dbi, Renewed};
use super::{LmdbEnv, LmdbOptions, TxnError};
use crate::marker::Kind;
use crate::version::Refusal;
use crate::{Blob, Durability, EntryMeta, Error, Result, Store, VerifyReport};

/// A byte store in an LMDB environment, shared by many threads and processes at once.
///
/// Open it on a directory; every process (and every thread, with a clone or a second open)
/// sees every committed write. The map grows by itself; reads are zero-copy through
/// [`Store::with_value`]. See [`LmdbEnv`] for the environment rules (in short: do not call a
/// store method from inside another's closure).
///
///
/// # Layout
/// Two named databases in the environment of [`LmdbEnv`]:
///
/// - `cacher-store-meta`: one entry, key `format`, value the magic and format version:
///
///   ```text
///   +----------------------+------------------+
///   | b"cacherLM" (8 B)    | version u32 LE   |     version 1 or 2
///   +----------------------+------------------+
///   ```
///   A newer version is refused with [`Error::UpgradeRequired`]; a wrong magic or length is
///   [`Error::Corrupt`]. A new store is created as version 2; a store created as version 1
///   stays version 1 (its values keep their layout and new ones are written the same way)
///   until [`LmdbStore::upgrade_layout`].
///
/// - `cacher-store`: one LMDB entry per stored key. LMDB keys are limited to 511 bytes (and
///   LMDB rejects an empty key), so every stored key starts with a one-byte tag:
///
///   ```text
///   short key (0..=510 bytes):
///     LMDB key   = 0x00 | key
///     LMDB value = [crc u32 LE] | value
///
///   long key (511 bytes and more):
///     LMDB key   = 0x01 | blake3(key)                      (33 bytes)
///     LMDB value = [crc u32 LE] | key_len u64 LE | key | value
///
///   crc (version 2 only) = CRC-32 (IEEE, crc32fast) of the LMDB key, then of every byte of
///                          the LMDB value after the crc field
///   ```
///   A long key's full bytes are kept beside its value and compared on every read, so a hash
///   collision can never return another key's value (it reads as missing; a put of a
///   colliding key would replace the other key's entry — a 2^-128 event). The tag also keeps
///   the empty key storable (as the one-byte LMDB key `0x00`) and lets iteration give every
///   key back exactly. Any other tag byte is [`Error::Corrupt`].
///
/// - `cacher-store-acct`: the eviction accounting (sizes, stamps, LRU/LFU/FIFO and expiry
///   indexes, totals), written in the same transaction as each put and delete once a limited
///   cache has turned it on (until then absent or empty, and writes skip it); its layout and
///   version are in `backends/src/lmdb/accounting/`, and [`Store::accounting`] hands it out.
///
/// # Every value is checked (version 2)
/// Every read path — `get`, `read`, `with_value` (before the bytes are lent), `get_many`,
/// `scan`, `keys`, and `meta`/`contains` (which read the value's length and, for a long key,
/// the full key beside it) — checks the CRC first, and a mismatch is [`Error::Corrupt`] naming
/// the key: a damaged byte in a value, in its key, or a value paired with another key's entry
/// never comes back. [`Store::verify`] checks every entry and reports each damaged key. The
/// CRC costs one pass over the value per read (crc32fast uses the CPU's carry-less multiply;
/// see `benches/RESULTS.md` for the cost per get).
///
/// Version-1 stores (made before values had a checksum) cannot check their values: they are
/// returned as LMDB holds them, and [`Store::verify`] counts them in
/// [`VerifyReport::unchecked`], not as checked. [`LmdbStore::upgrade_layout`] rewrites them
/// with a checksum, in one transaction, and makes the store version 2 (handles opened before
/// see the new version at their next transaction).
///
/// # Limits
/// One value holds at most 2 GiB − 64 KiB − 16 bytes, less 4 bytes for the CRC and, for a
/// key over 510 bytes, the key and 8 bytes (LMDB writes a value's pages with one `pwrite`,
/// which Linux cuts short at just under 2 GiB, and LMDB fails the commit with `EIO`). A longer
/// value is refused before anything is read or written, with [`Error::InvalidArgument`]
/// naming the limit; `DirStore` and `LogStore` hold values of any size.
/// [`LmdbOptions::max_value_len`] sets a lower limit, refused the same way.
///
/// # Zero copy
/// [`Store::with_value`] lends `&[u8]` straight from LMDB's map inside a read transaction.
/// [`Store::read`] returns an owned [`Blob`], a copy: a [`Blob`] may outlive any transaction,
/// and the pages it would borrow are only guaranteed until the transaction ends (a later
/// write may reuse them, a resize may unmap them). Use `with_value` for large values.
///
/// A checked zero-copy read still passes every byte of the value through the CRC, which on a
/// 4 KiB value costs more than the lookup itself (`benches/RESULTS.md`). A caller whose bytes
/// carry their own checksum can skip it with [`LmdbStore::with_value_unchecked`] (zero
/// copy) or [`Store::read_unchecked`] (a copy); both still check the framing.
///
/// # Durability
/// What each level promises here (all of them: a crash of the process loses no returned
/// write, since every commit is in the OS's page cache when `put` returns):
///
/// | level | a `put` costs | after a power loss (or any restart of the machine) |
/// |---|---|---|
/// | [`Durability::Flush`] (default) | two `fdatasync`s (LMDB syncs data, then the meta page) | every returned write is there |
/// | [`Durability::Periodic`] | no sync in `put`, and a background durable point every [`LmdbOptions::periodic_interval`] (100 ms); yet 3-6x `None` in the writing thread's CPU in a tight write loop, since LMDB 0.9 may not reuse the pages freed after the pinned point: every commit writes cold pages, and the file grows with the write rate times the interval (123–609 MiB for 1.4 MiB of data in `benches/RESULTS.md`, "`Periodic` on LMDB 0.9") | the store opens at its last durable point: it may lose the writes of about the last interval plus one `fdatasync`, never a corrupt store |
/// | [`Durability::None`] | no sync (`MDB_NOSYNC`) | anything: LMDB may have reused the pages of the last snapshot on disk, so the store may be corrupt or rolled back, until [`Store::flush`] |
///
/// `Periodic` holds a read transaction on its last durable point so LMDB never reuses that
/// snapshot's pages, syncs `data.mdb` and records the point's meta page in `cacher-durable`;
/// an open after a restart rewrites the meta pages to it. Its conditions: every process that
/// writes the environment uses `Periodic` (a `None` or `Flush` writer keeps no pin and may
/// overwrite the pages of the durable point), Linux (elsewhere `Periodic` is `Flush`), and
/// a file system that writes a meta page's first sector whole (LMDB's own assumption). A
/// restart rolls back even when the machine shut down cleanly, to the last point, which is
/// also made when the environment closes. [`Store::flush`] makes a point at once. The design
/// and its reasons are in the `periodic` module of this crate (`backends/src/lmdb/periodic.rs`).
///
/// # Files, modes and markers
/// The directory holds LMDB's `data.mdb` and `lock.mdb`, cacher's `cacher-resize.lock`,
/// `cacher-last-commit` (see [`LmdbEnv::open`]) and, with `Periodic`, `cacher-durable`, and the layout marker `cacher-lmdb.toml`
/// (`format = "cacher-lmdb"`, `version` = the layout version). A directory carrying another
/// kind's marker (a `DirStore`, `LogStore`, `ArrayStore`, NumpyLmdb) is refused with
/// [`Error::WrongLayout`] naming both kinds, before any file is made. New files get the
/// [`FileMode`](crate::FileMode) of [`LmdbOptions::file_mode`]: the umask by default (`0o666`
/// less the umask), `0o600` with `FileMode::OwnerOnly`. A symlink, FIFO or other
/// non-regular file at any of these names is refused with [`Error::NotOwned`], without
/// following or opening it.
///
/// # What damage is detected
/// - **Inside a value or a key** (layout 2): every read fails with [`Error::Corrupt`] for that
///   key; [`Store::verify`] lists every such key.
/// - **A short `data.mdb`** (cut below both meta pages or below the last page in use):
///   refused at open with [`Error::Corrupt`], never mapped (LMDB would `SIGBUS`). An emptied
///   `data.mdb` under the marker is refused too, instead of opening as a new, empty store.
/// - **A damaged meta page**: a bad magic, version, page size, flag, root or last-page field,
///   or transaction ids that are not two consecutive commits, is refused at open. So is, with
///   every durability, an id that still looks consecutive but would make LMDB open an older
///   commit (the newest page's id lowered by two, the older page's raised by two): each
///   meta page's free-page database names the commits that freed pages, and a commit's own
///   record is always there and none newer (`backends/src/lmdb/freelist.rs` gives the
///   reasons from LMDB's code). With [`Durability::Flush`] the commit record (the last
///   commit's id and a fingerprint of each meta page) also refuses an environment opening at
///   an older commit than the last one recorded.
/// - **A damaged branch or leaf page that hides entries** (their keys read as missing):
///   [`Store::verify`] reports it, by holding LMDB's entry count against iteration. Keys
///   that come back out of order (a damaged page sending the cursor back or round a cycle)
///   end iteration with [`Error::Corrupt`] instead of looping for ever.
/// - **Lost databases**: a store whose marker is there but whose databases are gone from
///   LMDB's main database (a damaged page) is refused at open, instead of being recreated
///   empty.
///
/// `backends/tests/lmdb_damage.rs` flips every byte inside every value of a small store, and
/// every third byte (and every header byte) of every branch, leaf and overflow page (13,760
/// probes): no read returns a wrong value, and every key that reads as missing is reported by
/// `verify`. LMDB itself crashed the (child) process on 29 of those probes — damaged page
/// headers or node offsets that it follows without checking.
///
/// Not detected: a read of a key whose leaf page is damaged so that the key is not found
/// (a miss, not a wrong value; `verify` finds it); an id flip in the meta pages of an
/// environment's very first commits (made on an empty main database, they free no page) or
/// after a `Periodic` recovery (both pages then hold one commit, so none is older); a
/// meta page root pointing at another valid page; structural damage that LMDB itself
/// follows into the weeds (it may report `MDB_CORRUPTED`, which is [`Error::Corrupt`], or, for
/// some damaged page headers, crash the process: LMDB does not check every page it reads);
/// values of layout-1 stores, which carry no checksum (`verify` counts them as unchecked;
/// [`LmdbStore::upgrade_layout`] gives them one).
///
/// ```
/// use cacher_store::lmdb::LmdbStore;
/// use cacher_store::Store;
///
/// let dir = tempfile::tempdir()?;
/// let store = LmdbStore::open(dir.path())?;
/// store.put(b"greeting", b"hello")?;
/// let long_key = vec![b'k'; 4096]; // past LMDB's 511-byte limit
/// store.put(&long_key, b"still works")?;
/// let mut len = 0;
/// store.with_value(b"greeting", &mut |bytes| len = bytes.len())?; // lent from the map
/// assert_eq!(len, 5);
/// assert_eq!(store.get(&long_key)?.as_deref(), Some(&b"still works"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LmdbStore {
    pub(super) env: LmdbEnv,
    pub(super) data: Database<'static, Bytes, Bytes>,
    /// `data`'s LMDB handle, for the hot reads through this thread's parked transaction.
    data_dbi: Dbi,
    /// The `cacher-store-meta` database, holding the format record.
    pub(super) meta: Database<'static, Bytes, Bytes>,
    /// The value layout the store's format record named at open.
    pub(super) layout: Layout,
    /// Whether a layout-1 store has been seen upgraded to layout 2 (by
    /// [`LmdbStore::upgrade_layout`] through any handle or process): shared by clones, and
    /// never unset, since no store goes back to layout 1.
    pub(super) upgraded: Arc<AtomicBool>,
    /// Eviction accounting, written in each put's and delete's transaction (`accounting/`).
    pub(super) acct: AcctDb,
    /// The leases under the lease dir, opened on the first claim (`lease::claim_kept`).
    leases: std::sync::OnceLock<crate::lease::Leases>,
}

impl LmdbStore {
    /// Opens (or creates) the store in directory `dir` with [`LmdbOptions::default`].
    pub fn open(dir: impl AsRef<Path>) -> Result<LmdbStore> {
        Self::open_with(dir, &LmdbOptions::default())
    }

    /// Opens (or creates) the store in directory `dir` with `options` (which apply only if the
    /// environment is not already open in this process: see [`LmdbEnv::open`]).
    pub fn open_with(dir: impl AsRef<Path>, options: &LmdbOptions) -> Result<LmdbStore> {
        let options = options.clone().with_kind(Kind::Lmdb);
        Self::from_env(LmdbEnv::open(dir, &options)?)
    }

    /// Opens the store in an environment already open, checking or writing its format record
    /// (a new store gets the newest layout; an existing one keeps the layout it was made with).
    pub fn from_env(env: LmdbEnv) -> Result<LmdbStore> {
        crate::marker::refuse_foreign(env.path(), Kind::Lmdb)?;
        let marker = Kind::Lmdb.path_in(env.path());
        if std::fs::symlink_metadata(&marker).is_ok() {
            // The marker is written after the format record was committed: a marked store
            // whose databases are gone lost them to a damaged page, and creating them afresh
            // would silently empty the store.
            for name in [META_DB, DATA_DB] {
                if env.existing_database(name)?.is_none() {
                    return Err(Error::corrupt(
                        env.path(),
                        None,
                        format!(
                            "the database {name:?} is missing from an LmdbStore marked by \
                             {}: a damaged page lost it",
                            Kind::Lmdb.file_name()
                        ),
                    ));
                }
            }
        } else {
            refuse_other_programs(&env)?;
        }
        let meta = env.create_database(META_DB)?;
        let data = env.create_database(DATA_DB)?;
        let data_dbi = env.raw_dbi(DATA_DB)?;
        let path = env.path().to_path_buf();
        let check = |raw: &[u8]| -> Result<Layout, TxnError> {
            Layout::from_record(raw)
                .map_err(|r| TxnError::Store(r.into_error(&path, Some(FORMAT_KEY), FORMAT_VERSION)))
        };
        let found = env.read(|rtxn| -> Result<Option<Layout>, TxnError> {
            meta.get(rtxn, FORMAT_KEY)?.map(check).transpose()
        })?;
        let layout = match found {
            Some(layout) => layout,
            // Written in a write transaction that checks again, so two processes creating the
            // store at once agree on one record.
            None => env.write(|wtxn| -> Result<Layout, TxnError> {
                if let Some(raw) = meta.get(wtxn, FORMAT_KEY)? {
                    return check(raw);
                }
                let layout = Layout::V2;
                meta.put(wtxn, FORMAT_KEY, &layout.record())?;
                Ok(layout)
            })?,
        };
        crate::marker::ensure_up_to(
            env.path(),
            Kind::Lmdb,
            layout.version(),
            FORMAT_VERSION,
            env.options().file_mode,
        )?;
        let acct = AcctDb::open(&env, data)?;
        Ok(LmdbStore {
            env,
            data,
            data_dbi,
            meta,
            layout,
            upgraded: Arc::new(AtomicBool::new(false)),
            acct,
            leases: Default::default(),
        })
    }

    /// The layout version of this store's values: 2 (every value checksummed) for a store
    /// created by this build or upgraded by [`LmdbStore::upgrade_layout`], 1 for a store
    /// created before version 2 (values unchecked; see the type docs). For a store opened at
    /// version 1, it says 2 once this handle has seen the upgrade (any read or write after it).
    pub fn layout_version(&self) -> u32 {
        match self.upgraded.load(Ordering::Acquire) {
            true => Layout::V2.version(),
            false => self.layout.version(),
        }
    }

    /// The layout of the values in the transaction `txn`. A store opened at layout 2 stays
    /// there; one opened at layout 1 reads its format record in every transaction, so that a
    /// handle opened before an upgrade (in this process or another) never reads a checksum as
    /// the value's first bytes, nor writes a value without one under the new record. It costs
    /// layout-1 stores one lookup per transaction until this handle has seen the upgrade.
    #[inline]
    pub(super) fn layout_in(&self, txn: &RoTxn<'_>) -> Result<Layout, TxnError> {
        if self.always_v2() {
            return Ok(Layout::V2);
        }
        self.layout_of_record(txn)
    }

    /// [`LmdbStore::layout_in`] for a store opened at layout 1: the format record's layout.
    #[cold]
    fn layout_of_record(&self, txn: &RoTxn<'_>) -> Result<Layout, TxnError> {
        let raw = self.meta.get(txn, FORMAT_KEY)?.ok_or_else(|| {
            Error::corrupt(
                self.env.path(),
                Some(FORMAT_KEY),
                "the format record is gone",
            )
        })?;
        let layout = Layout::from_record(raw).map_err(|r| self.refused(Some(FORMAT_KEY), r))?;
        if layout == Layout::V2 {
            self.upgraded.store(true, Ordering::Release);
        }
        Ok(layout)
    }

    /// The environment the store lives in.
    pub fn env(&self) -> &LmdbEnv {
        &self.env
    }

    /// The `cacher-store` database, for reading the raw layout (tests, tools).
    pub fn raw_database(&self) -> Database<'static, Bytes, Bytes> {
        self.data
    }
    /// The store error for a refusal of the bytes under `key`.
    pub(super) fn refused(&self, key: Option<&[u8]>, refusal: Refusal) -> Error {
        refusal.into_error(self.env.path(), key, FORMAT_VERSION)
    }

    /// Looks `key` up in an open transaction, checking its value.
    #[inline]
    fn get_in<'t>(&self, txn: &'t RoTxn<'_>, key: &[u8]) -> Result<Option<&'t [u8]>, TxnError> {
        self.lookup_in(txn, key, Check::Crc)
    }

    /// Looks `key` up in an open transaction, checking as much as `check` says. Inlined into
    /// each read's transaction closure: a call frame per layer was a tenth of the store's own
    /// cost on a 100-byte read (benches/RESULTS.md, issue 15).
    #[inline(always)]
    pub(super) fn lookup_in<'t>(
        &self,
        txn: &'t RoTxn<'_>,
        key: &[u8],
        check: Check,
    ) -> Result<Option<&'t [u8]>, TxnError> {
        let stored = StoredKey::new(key);
        match self.data.get(txn, stored.bytes())? {
            None => Ok(None),
            Some(raw) => Ok(self
                .layout_in(txn)?
                .lookup(key, &stored, raw, check)
                .map_err(|r| self.refused(Some(key), r))?),
        }
    }

    /// Whether every value is layout 2 in any transaction from now on (a store opened at layout
    /// 2, or one this handle has seen upgraded): then a read needs no format record, and runs
    /// in the thread's parked transaction.
    #[inline(always)]
    fn always_v2(&self) -> bool {
        self.layout == Layout::V2 || self.upgraded.load(Ordering::Acquire)
    }

    /// [`LmdbStore::lookup_in`] in a parked transaction, for a store that is
    /// [`LmdbStore::always_v2`].
    #[inline(always)]
    fn lookup_parked<'t>(
        &self,
        txn: &'t Renewed<'_>,
        key: &[u8],
        check: Check,
    ) -> Result<Option<&'t [u8]>, TxnError> {
        let stored = StoredKey::new(key);
        match txn.get(self.data_dbi, stored.bytes())? {
            None => Ok(None),
            Some(raw) => Ok(Layout::V2
                .lookup(key, &stored, raw, check)
                .map_err(|r| self.refused(Some(key), r))?),
        }
    }

    /// Reads `key` (checked as `check` says) and gives its bytes, or `None`, to `f`, in this
    /// thread's parked transaction when the layout allows (`parked`), else in a heed read
    /// transaction. A resize by another process is met when the transaction begins or
    /// renews, before `f`, and retried there, so `f` runs again only after an error of its
    /// own that the retry loop retries.
    #[inline(always)]
    fn read_value<T>(
        &self,
        key: &[u8],
        check: Check,
        mut f: impl FnMut(Option<&[u8]>) -> T,
    ) -> Result<T> {
        if self.always_v2() {
            self.env
                .read_parked(|txn| Ok(f(self.lookup_parked(txn, key, check)?)))
        } else {
            self.read_value_in_heed(key, check, f)
        }
    }

    /// [`LmdbStore::read_value`] for a layout-1 store, whose format record every transaction
    /// reads (`layout_in`).
    #[cold]
    fn read_value_in_heed<T>(
        &self,
        key: &[u8],
        check: Check,
        mut f: impl FnMut(Option<&[u8]>) -> T,
    ) -> Result<T> {
        self.env
            .read(|txn| Ok::<_, TxnError>(f(self.lookup_in(txn, key, check)?)))
    }

    /// Like [`Store::with_value`], lending `key`'s bytes straight from LMDB's map, but **without
    /// checking the value's CRC**: a damaged byte inside the value comes back as it is.
    ///
    /// For callers whose bytes carry their own checksum, bound to the key (the `Cache`
    /// envelope does), so the store's pass over the whole value would be a second one: on a
    /// 4 KiB value that pass is most of the read's cost, because the raw read touches only
    /// the bytes the caller looks at while the check pulls every byte through the CPU (see
    /// `benches/RESULTS.md`). What is still checked: the value's framing (a value shorter
    /// than its checksum field, a long key's header and its full key, so a hash collision
    /// still reads as missing and no read reaches outside the LMDB value), which is
    /// [`Error::Corrupt`] as on the checked path. [`Store::verify`] still finds a damaged
    /// value.
    ///
    /// ```
    /// use cacher_store::lmdb::LmdbStore;
    /// use cacher_store::Store;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = LmdbStore::open(dir.path())?;
    /// store.put(b"k", b"bytes with their own checksum")?;
    /// let mut len = 0;
    /// assert!(store.with_value_unchecked(b"k", &mut |bytes| len = bytes.len())?);
    /// assert_eq!(len, 29);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_value_unchecked(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        self.read_value(key, Check::Framing, |value| match value {
            Some(value) => {
                f(value);
                true
            }
            None => false,
        })
    }

    /// Refuses a value too long for one LMDB value, before anything is read or written (with
    /// the limit of layout 2, the shorter one, when the transaction's layout is not known yet).
    pub(super) fn check_len(&self, key: &[u8], len: u64) -> Result<()> {
        self.check_len_in(Layout::V2, key, len)
    }

    /// [`LmdbStore::check_len`] in `layout`.
    #[inline]
    pub(super) fn check_len_in(&self, layout: Layout, key: &[u8], len: u64) -> Result<()> {
        let max = self.value_limit(layout, key);
        if len <= max {
            return Ok(());
        }
        Err(self.too_long(layout, key, len, max))
    }

    /// The refusal of a `len`-byte value over `key`'s limit `max` in `layout`.
    #[cold]
    fn too_long(&self, layout: Layout, key: &[u8], len: u64, max: u64) -> Error {
        let why = match self.env.options().max_value_len {
            Some(set) if set < layout.max_value(key) as u64 => {
                format!("set by LmdbOptions::max_value_len = {set}")
            }
            _ => "LMDB cannot write one value of 2 GiB or more".to_string(),
        };
        Error::InvalidArgument {
            op: "put",
            path: self.env.path().to_path_buf(),
            reason: format!(
                "a {len}-byte value is over the {max}-byte limit of one LmdbStore value \
                 ({why}); DirStore and LogStore hold values of any size"
            ),
        }
    }

    /// The longest value `key` can hold in `layout`: LMDB's limit less the layout's bytes,
    /// or [`LmdbOptions::max_value_len`] when that is lower.
    #[inline]
    pub(super) fn value_limit(&self, layout: Layout, key: &[u8]) -> u64 {
        let lmdb = layout.max_value(key) as u64;
        self.env
            .options()
            .max_value_len
            .map_or(lmdb, |set| set.min(lmdb))
    }

    fn put_in(&self, wtxn: &mut RwTxn<'_>, key: &[u8], value: &[u8]) -> Result<(), TxnError> {
        self.put_in_accounted(wtxn, key, value, value.len() as u64, None)
    }

    /// [`LmdbStore::put_in`], counting the entry as `size` bytes with `deadline` (a
    /// HybridStore counts its values, not its index records).
    pub(super) fn put_in_accounted(
        &self,
        wtxn: &mut RwTxn<'_>,
        key: &[u8],
        value: &[u8],
        size: u64,
        deadline: Option<u64>,
    ) -> Result<(), TxnError> {
        let stored = self.put_data_in(wtxn, key, value)?;
        self.acct
            .on_put(&self.env, wtxn, stored.bytes(), size, deadline)
    }

    /// Writes `value` under `key` in `cacher-store` alone, leaving the accounting to the
    /// caller; returns the stored key.
    pub(super) fn put_data_in(
        &self,
        wtxn: &mut RwTxn<'_>,
        key: &[u8],
        value: &[u8],
    ) -> Result<StoredKey, TxnError> {
        let layout = self.layout_in(wtxn)?;
        self.check_len_in(layout, key, value.len() as u64)?;
        let stored = StoredKey::new(key);
        let framing = layout.framing(key, stored.bytes(), value);
        let len = framing.len() + value.len();
        self.data.put_reserved(wtxn, stored.bytes(), len, |space| {
            use std::io::Write;
            space.write_all(framing.head())?;
            space.write_all(framing.long_key())?;
            space.write_all(value)
        })?;
        Ok(stored)
    }
}

/// Refuses an unmarked environment whose main database holds anything but this layout's
/// two named databases: another program's LMDB data (a NumpyLmdb directory written by
/// Python, say), into which creating the store's databases would write.
fn refuse_other_programs(env: &LmdbEnv) -> Result<()> {
    let main = env.create_unnamed_database()?;
    let foreign = env.read(|rtxn| -> Result<bool, TxnError> {
        for entry in main.iter(rtxn)? {
            let (name, _) = entry?;
            if ![META_DB, DATA_DB, ACCT_DB].contains(&&*String::from_utf8_lossy(name)) {
                return Ok(true);
            }
        }
        Ok(false)
    })?;
    if foreign {
        return Err(Error::WrongLayout {
            path: env.path().to_path_buf(),
            expected: Kind::Lmdb.type_name(),
            found: "LMDB environment of another layout (its main database holds other keys)",
        });
    }
    Ok(())
}

impl Store for LmdbStore {
    fn lease_dir(&self) -> Option<std::path::PathBuf> {
        Some(self.env.path().join("leases"))
    }
    crate::lease::lease_from_kept!(leases);
    /// Copies the value out (see the type docs: a [`Blob`] cannot borrow from a
    /// transaction); [`Store::with_value`] is the zero-copy read.
    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        Ok(self.get(key)?.map(Blob::from))
    }

    /// A copy, like [`Store::read`] (a [`Blob`] cannot borrow a read transaction: a later
    /// write may reuse the pages and a resize may unmap them), made **without checking the
    /// value's CRC**: it saves the checksum pass, not the copy. The zero-copy unchecked read is
    /// [`LmdbStore::with_value_unchecked`]; what is still checked is listed there.
    fn read_unchecked(&self, key: &[u8]) -> Result<Option<Blob>> {
        self.read_value(key, Check::Framing, |v| v.map(|v| Blob::from(v.to_vec())))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read_value(key, Check::Crc, |v| v.map(<[u8]>::to_vec))
    }

    fn with_value(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        self.read_value(key, Check::Crc, |value| match value {
            Some(value) => {
                f(value);
                true
            }
            None => false,
        })
    }

    /// [`LmdbStore::with_value_unchecked`]: zero copy, the framing checked, not the CRC.
    fn with_value_unchecked(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        LmdbStore::with_value_unchecked(self, key, f)
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.acct
            .write(&self.env, |wtxn| self.put_in(wtxn, key, value))
    }

    /// Like `put`; the deadline goes into the accounting's expiry index.
    fn put_with_deadline(&self, key: &[u8], value: &[u8], deadline_ms: Option<u64>) -> Result<()> {
        self.acct.write(&self.env, |wtxn| {
            self.put_in_accounted(wtxn, key, value, value.len() as u64, deadline_ms)
        })
    }

    fn accounting(&self) -> Option<&dyn crate::accounting::Accounting> {
        Some(self)
    }

    /// One write transaction, as `put_many`; the deadlines go into the accounting.
    fn put_many_with_deadlines(&self, entries: &[(&[u8], &[u8], Option<u64>)]) -> Result<()> {
        self.acct.write(&self.env, |wtxn| -> Result<(), TxnError> {
            for (k, v, d) in entries {
                self.put_in_accounted(wtxn, k, v, v.len() as u64, *d)?;
            }
            Ok(())
        })
    }

    /// Streams the value without holding it in memory: a stream over 1 MiB is spooled into an
    /// unnamed temporary file beside `data.mdb` (and refused with
    /// [`Error::InvalidArgument`] as soon as it passes the value limit, see the type docs),
    /// then copied into pages reserved in place (`MDB_RESERVE`). Peak memory is about the
    /// value's size (the dirty pages LMDB holds until the commit), not two or three times it.
    fn put_reader(&self, key: &[u8], reader: &mut dyn Read) -> Result<u64> {
        self.put_stream(key, reader)
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        let stored = StoredKey::new(key);
        self.acct
            .write(&self.env, |wtxn| -> Result<bool, TxnError> {
                if stored.is_hashed() {
                    // Only delete the entry if it is this key's, not a colliding one's.
                    let Some(raw) = self.data.get(wtxn, stored.bytes())? else {
                        return Ok(false);
                    };
                    let found = self.layout_in(wtxn)?.lookup(key, &stored, raw, Check::Crc);
                    if found.map_err(|r| self.refused(Some(key), r))?.is_none() {
                        return Ok(false);
                    }
                }
                self.acct.on_delete(&self.env, wtxn, stored.bytes())?;
                Ok(self.data.delete(wtxn, stored.bytes())?)
            })
    }

    fn keys(&self) -> Result<Box<dyn Iterator<Item = Result<Vec<u8>>> + '_>> {
        Ok(self.paged(KEYS_PER_PAGE, |_, _| 1, |k, _| k.to_vec()))
    }

    fn scan(&self) -> Result<Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + '_>> {
        Ok(self.paged(
            SCAN_BYTES_PER_PAGE,
            |k, v| k.len() + v.len() + 64,
            |k, v| (k.to_vec(), v.to_vec()),
        ))
    }

    fn flush(&self) -> Result<()> {
        match self.env.options().durability {
            Durability::None => self.env.sync(),
            // A durable point (on a platform without a boot id, Periodic is Flush).
            Durability::Periodic => self.env.durable_point(),
            _ => Ok(()),
        }
    }

    fn meta(&self, key: &[u8]) -> Result<Option<EntryMeta>> {
        self.read_value(key, Check::Crc, |v| {
            v.map(|v| EntryMeta::new(v.len() as u64))
        })
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        if !self.always_v2() {
            return self.env.read(|rtxn| -> Result<_, TxnError> {
                keys.iter()
                    .map(|k| Ok(self.get_in(rtxn, k)?.map(<[u8]>::to_vec)))
                    .collect()
            });
        }
        self.env.read_parked(|txn| -> Result<_, TxnError> {
            keys.iter()
                .map(|k| Ok(self.lookup_parked(txn, k, Check::Crc)?.map(<[u8]>::to_vec)))
                .collect()
        })
    }

    fn put_many(&self, entries: &[(&[u8], &[u8])]) -> Result<()> {
        self.acct.write(&self.env, |wtxn| -> Result<(), TxnError> {
            for (k, v) in entries {
                self.put_in(wtxn, k, v)?;
            }
            Ok(())
        })
    }

    fn len(&self) -> Result<u64> {
        self.env.read(|rtxn| self.data.len(rtxn))
    }

    /// Decodes and checks every entry, reporting each damaged key, then holds LMDB's entry
    /// count against what iteration finds (a damaged page that hides entries is reported as
    /// [`Error::Corrupt`] for the store).
    fn verify(&self) -> Result<VerifyReport> {
        self.verify_entries()
    }
}
