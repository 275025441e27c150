//! [`LmdbOptions`]: how an LMDB environment is opened, and the map-size rounding.

use crate::fs::FileMode;
use crate::marker::Kind;
use crate::Durability;

/// Map sizes are kept a multiple of this, which is a multiple of every page size LMDB runs
/// with (4 KiB, 16 KiB, 64 KiB).
pub(super) const MAP_ROUNDING: u64 = 64 << 10;

/// How an LMDB environment is opened. Build it from [`LmdbOptions::default`] and the `with_*`
/// setters, or set the public fields.
///
/// Only the first open of a directory in a process applies its options; later opens in the
/// same process share that handle. Open every process with the same options: LMDB sizes the
/// reader table once, from the first process that creates `lock.mdb`.
///
/// ```
/// use cacher_store::lmdb::LmdbOptions;
/// use cacher_store::Durability;
///
/// let options = LmdbOptions::default()
///     .with_initial_map_size(1 << 20)
///     .with_max_map_size(Some(1 << 30))
///     .with_durability(Durability::None);
/// assert_eq!(options.max_readers, 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LmdbOptions {
    /// Reader slots in the lock table. Slots are thread-local (see
    /// [`LmdbEnv`](super::LmdbEnv), "Reader slots"): this bounds the live threads, across all
    /// processes, that have read the environment, not the transactions open at once. Default
    /// 1024 (LMDB's own default is 126): twice tokio's default blocking pool (512 threads),
    /// and a slot costs 64 bytes of `lock.mdb`. Set by the first process to open the
    /// environment while no other has it open.
    pub max_readers: u32,
    /// The map size the environment starts with, in bytes (rounded up to 64 KiB). The map is
    /// address space, not disk: the file only grows as data is written. Default 64 MiB. An
    /// existing environment whose recorded map size is larger keeps the larger one.
    pub initial_map_size: u64,
    /// A cap on the map size in bytes (rounded down to 64 KiB): a write that would need a
    /// bigger map fails with [`Error::Full`](crate::Error::Full). Default `None`: grow without limit.
    pub max_map_size: Option<u64>,
    /// Named databases this process may open in the environment (LMDB keeps the count per
    /// process, not in the files). Default 4: every store of this crate opens 3 (LmdbStore: its
    /// data, its format record and its eviction accounting; ArrayStore: its arrays, their long
    /// keys and their shapes; a HybridStore's index is an LmdbStore in its own environment),
    /// which leaves one for a database of the caller's own beside a store. LMDB allocates and
    /// zeroes about 49 bytes per database at every read transaction, so a larger default costs
    /// every read (`benches/RESULTS.md`, "LMDB reads on threads"). One more than this is refused
    /// with [`Error::InvalidArgument`](crate::Error::InvalidArgument) naming this option.
    pub max_dbs: u32,
    /// [`Durability::Flush`] (default): LMDB syncs data and meta page at every commit.
    /// [`Durability::None`]: `MDB_NOSYNC | MDB_NOMETASYNC`, the OS writes back when it likes;
    /// a commit survives a process crash but not a power loss ([`LmdbEnv::sync`](super::LmdbEnv::sync) forces it).
    /// [`Durability::Periodic`]: unsynced commits and a durable point every
    /// [`LmdbOptions::periodic_interval`]; a power loss goes back to the last point (see
    /// [`LmdbStore`](super::LmdbStore#durability) for the table and the conditions).
    pub durability: Durability,
    /// With [`Durability::Periodic`]: how often a writing process makes a durable point (the
    /// most a power loss can lose is about this plus one `fdatasync`). Default 100 ms. See
    /// [`LmdbStore`](super::LmdbStore#durability).
    pub periodic_interval: std::time::Duration,
    /// Who may read the files the environment creates (`data.mdb`, `lock.mdb`, the resize
    /// lock, the layout marker): [`FileMode::Umask`] (default) gives `0o666` less the process
    /// umask, so a group can share a cache; [`FileMode::OwnerOnly`] gives `0o600`. Existing
    /// files keep their mode.
    pub file_mode: FileMode,
    /// The longest value an [`LmdbStore`](super::LmdbStore) in this environment accepts, in
    /// bytes, when lower than LMDB's own limit (2 GiB − 64 KiB − 16 bytes less the layout's
    /// bytes; see [`LmdbStore`](super::LmdbStore#limits)). A longer value is refused with
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) naming the limit, before it
    /// is stored: a slice at once, a stream as soon as it passes the limit. Default `None`:
    /// LMDB's limit.
    pub max_value_len: Option<u64>,
    /// The store layout opening the environment, whose marker it must carry and whose
    /// foreign markers it refuses (`None` for a bare environment).
    pub(crate) kind: Option<Kind>,
}

impl Default for LmdbOptions {
    fn default() -> Self {
        LmdbOptions {
            max_readers: 1024,
            initial_map_size: 64 << 20,
            max_map_size: None,
            max_dbs: 4,
            durability: Durability::Flush,
            periodic_interval: std::time::Duration::from_millis(100),
            file_mode: FileMode::Umask,
            max_value_len: None,
            kind: None,
        }
    }
}

impl LmdbOptions {
    /// Sets [`LmdbOptions::max_readers`].
    pub fn with_max_readers(mut self, max_readers: u32) -> Self {
        self.max_readers = max_readers;
        self
    }

    /// Sets [`LmdbOptions::initial_map_size`].
    pub fn with_initial_map_size(mut self, bytes: u64) -> Self {
        self.initial_map_size = bytes;
        self
    }

    /// Sets [`LmdbOptions::max_map_size`].
    pub fn with_max_map_size(mut self, cap: Option<u64>) -> Self {
        self.max_map_size = cap;
        self
    }

    /// Sets [`LmdbOptions::max_dbs`].
    pub fn with_max_dbs(mut self, max_dbs: u32) -> Self {
        self.max_dbs = max_dbs;
        self
    }

    /// Sets [`LmdbOptions::durability`].
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets [`LmdbOptions::periodic_interval`].
    pub fn with_periodic_interval(mut self, interval: std::time::Duration) -> Self {
        self.periodic_interval = interval;
        self
    }

    /// Whether the environment runs as [`Durability::Periodic`] (on a platform without a
    /// boot id, `Periodic` is `Flush`).
    pub(super) fn periodic(&self) -> bool {
        self.durability == Durability::Periodic && super::periodic::supported()
    }

    /// Sets [`LmdbOptions::max_value_len`].
    ///
    /// ```
    /// use cacher_store::lmdb::{LmdbOptions, LmdbStore};
    /// use cacher_store::{Error, Store};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = LmdbStore::open_with(dir.path(), &LmdbOptions::default().with_max_value_len(Some(8)))?;
    /// store.put(b"k", b"8 bytes!")?;
    /// assert!(matches!(store.put(b"k", b"nine byte"), Err(Error::InvalidArgument { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_max_value_len(mut self, max: Option<u64>) -> Self {
        self.max_value_len = max;
        self
    }

    /// Sets [`LmdbOptions::file_mode`].
    pub fn with_file_mode(mut self, file_mode: FileMode) -> Self {
        self.file_mode = file_mode;
        self
    }

    /// Names the store layout opening the environment: [`LmdbEnv::open`](super::LmdbEnv::open)
    /// then refuses a directory that carries another layout's marker (with
    /// [`Error::WrongLayout`](crate::Error::WrongLayout)) and an empty `data.mdb` under this
    /// layout's own marker (with [`Error::Corrupt`](crate::Error::Corrupt)).
    pub(crate) fn with_kind(mut self, kind: Kind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// The cap rounded down to the map granularity, if any.
    pub(super) fn cap(&self) -> Option<u64> {
        self.max_map_size
            .map(|c| (c / MAP_ROUNDING * MAP_ROUNDING).max(MAP_ROUNDING))
    }
}

/// Rounds `bytes` up to the map granularity.
pub(super) fn round_up(bytes: u64) -> u64 {
    bytes.div_ceil(MAP_ROUNDING).saturating_mul(MAP_ROUNDING)
}
