//! Per-key leases shared by every process using one store: one lock file per key hash, so
//! processes asking for the same missing key compute it once.
//!
//! # Layout
//!
//! ```text
//! <lease dir>/                 DirStore and LmdbStore: <root>/leases/; LogStore: <log>.leases/
//! ├── ranges-<2 hex>.lock      Linux: 64 empty files; a key's lease is a lock on one byte of one
//! └── <64 hex>.lock            elsewhere (or where the file system has no record locks):
//!                              hex of blake3(key); empty; exists only while leased (or left
//!                              by a holder that died, and then unlocked)
//! ```
//!
//! - On Linux a lease is an exclusive open-file-description lock on one byte of a
//!   `ranges-<2 hex>.lock`, file and offset from the key's hash (`ranges.rs`): one `open`, two
//!   `fcntl`s and one `close` per lease, and no file per key. A batch of 1,000 misses spent 91 % of its
//!   time creating and removing lock files on this project's ext4 disk.
//! - Elsewhere a lease is an exclusive `flock` on the key's own lock file ([`File::try_lock`]).
//!   Either way the OS drops it when the holder's process dies, even by `SIGKILL`, so a crashed
//!   holder never blocks the others for longer than it takes them to notice.
//! - Processes of a build from before the range locks use key files only: they and a newer
//!   build do not see each other's leases, so a key may be computed twice while both run
//!   (never a wrong value).
//! - Waits are bounded: [`Leases::acquire`] polls for at most its timeout, then reports
//!   [`Acquired::TimedOut`], and the caller computes without the lease (a live but stuck holder
//!   costs one duplicate computation, never a hang).
//! - With key files, the holder removes the file before it unlocks it, so files do not pile up. A waiter that
//!   locks a file which was meanwhile removed (its path now names another file or nothing)
//!   starts again, so two processes never hold leases on different files of one key. A file
//!   left by a dead holder is taken over by the next caller of its key, or removed by
//!   [`Leases::clean_stale`].
//! - Files are opened with the store rules of `fs.rs`: never through a symlink, never a FIFO,
//!   created with `O_EXCL`; only `<64 hex>.lock` names are ever removed.
//!
//! Stores hand these out through the trait-level hook [`Store::lease`](crate::Store::lease)
//! ([`Terms`] in, [`Claim`] out), which a store on a network (Redis) implements its own way.

use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fs::{create_new, ensure_dir, open_regular, Access};
use crate::FileMode;

mod claim;
#[cfg(target_os = "linux")]
mod ranges;

pub use claim::{Claim, Held, Hold, Terms};

/// The lease directory of one store: see the [module docs](self).
///
/// Open it once and keep it: [`Leases::open`] creates or checks the directory (a `mkdir` and a
/// `stat`), and the handle remembers whether range locks work there. The stores of this crate
/// keep one per store handle (see `claim_kept` in this module).
#[derive(Debug, Clone)]
pub struct Leases {
    dir: PathBuf,
    /// Whether leases are byte-range locks in the `ranges-XX.lock` files (Linux) rather than
    /// key files; turned off for this handle and its clones by the first refusal of range
    /// locks by the kernel or file system, so only the first claim on such a file system
    /// pays a failed `fcntl`.
    by_range: Arc<AtomicBool>,
    /// The range files' paths, each joined on its first use by this handle or a clone.
    #[cfg(target_os = "linux")]
    range_files: Arc<[OnceLock<PathBuf>; ranges::SHARDS as usize]>,
}

/// How [`Leases::acquire`] ended.
#[derive(Debug)]
#[must_use = "a won lease is released when dropped"]
pub enum Acquired {
    /// The caller holds the key's lease until it drops it. `waited` says whether another
    /// holder had it first: then the value may have been stored meanwhile, so look again.
    Won {
        /// The lease; drop it after the value is stored.
        lease: Lease,
        /// Whether the lease was held by someone else when asked for.
        waited: bool,
    },
    /// Another holder kept the lease past the timeout: compute without it.
    TimedOut,
}

/// A held lease on one key; released when dropped (a range unlocked; a key file removed, then
/// unlocked).
#[derive(Debug)]
pub struct Lease {
    file: File,
    held: HeldBy,
}

/// What a [`Lease`] locks.
#[derive(Debug)]
enum HeldBy {
    /// The byte at this offset of its (kept) range file.
    #[cfg(target_os = "linux")]
    Range(u64),
    /// The key's own lock file, at this path, removed on release.
    KeyFile(PathBuf),
}

/// The shortest and longest pause between two tries of a held lease. Short first, so a
/// lease released quickly is taken quickly; capped, so a long wait costs few wake-ups.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const LONGEST_PAUSE: Duration = Duration::from_millis(50);

/// The pauses between tries of a held lease until a deadline: [`FIRST_PAUSE`] doubling up to
/// [`LONGEST_PAUSE`]. Shared by every store's lease so they poll alike.
pub(crate) struct Backoff {
    deadline: Option<Instant>,
    pause: Duration,
}

impl Backoff {
    /// Pauses for at most `wait` in all (`None` if `wait` overflows an `Instant`: forever).
    pub(crate) fn new(wait: Duration) -> Self {
        Backoff {
            deadline: Instant::now().checked_add(wait),
            pause: FIRST_PAUSE,
        }
    }

    /// Sleeps until the next try; `false` (at once) when the deadline has passed.
    pub(crate) fn pause(&mut self) -> bool {
        let now = Instant::now();
        let left = match self.deadline {
            Some(d) if d > now => d - now,
            Some(_) => return false,
            None => LONGEST_PAUSE,
        };
        std::thread::sleep(self.pause.min(left));
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        true
    }
}

impl Leases {
    /// The lease directory `dir`, created if missing (its parent must exist). A symlink or a
    /// file at `dir` is refused with [`Error::NotOwned`].
    ///
    /// ```
    /// use cacher_store::lease::{Acquired, Leases};
    /// use std::time::Duration;
    /// let dir = tempfile::tempdir()?;
    /// let leases = Leases::open(dir.path().join("leases"))?;
    /// match leases.acquire(b"some key", Duration::from_secs(5))? {
    ///     Acquired::Won { lease, .. } => drop(lease), // compute and store, then release
    ///     Acquired::TimedOut => unreachable!("nobody else holds it"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: impl Into<PathBuf>) -> Result<Leases> {
        let dir = dir.into();
        ensure_dir(&dir, FileMode::Umask)?;
        #[cfg(test)]
        tests::OPENS.with(|n| n.set(n.get() + 1));
        Ok(Leases {
            dir,
            by_range: Arc::new(cfg!(target_os = "linux").into()),
            #[cfg(target_os = "linux")]
            range_files: Arc::new(std::array::from_fn(|_| OnceLock::new())),
        })
    }

    /// The lease directory `dir` with a lock file per key, whatever the system (the fallback
    /// where range locks are refused), for tests of that protocol.
    #[cfg(test)]
    pub(crate) fn by_key_files(dir: impl Into<PathBuf>) -> Result<Leases> {
        let leases = Leases::open(dir)?;
        leases.by_range.store(false, Ordering::Relaxed);
        Ok(leases)
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The lock file of `key`.
    fn file_of(&self, key: &[u8]) -> PathBuf {
        let hash = blake3::hash(key);
        self.dir.join(format!("{}.lock", hash.to_hex()))
    }

    /// Takes `key`'s lease without waiting: `None` while another handle holds it.
    pub fn try_acquire(&self, key: &[u8]) -> Result<Option<Lease>> {
        match self.acquire(key, Duration::ZERO)? {
            Acquired::Won { lease, .. } => Ok(Some(lease)),
            Acquired::TimedOut => Ok(None),
        }
    }

    /// Takes `key`'s lease, waiting at most `timeout` for another holder to release it (or to
    /// die). The lease is per open file, so a second acquire of a key already held in this
    /// process waits like any other: a caller must not ask again for a key it holds.
    pub fn acquire(&self, key: &[u8], timeout: Duration) -> Result<Acquired> {
        #[cfg(target_os = "linux")]
        if self.by_range.load(Ordering::Relaxed) {
            if let Some(acquired) = self.acquire_range(key, timeout)? {
                return Ok(acquired);
            }
            self.by_range.store(false, Ordering::Relaxed);
        }
        self.acquire_file(key, timeout)
    }

    /// [`acquire`](Leases::acquire) by a range lock; `None` when the kernel or the file system
    /// refuses range locks.
    #[cfg(target_os = "linux")]
    fn acquire_range(&self, key: &[u8], timeout: Duration) -> Result<Option<Acquired>> {
        let (shard, offset) = ranges::place_of(key);
        let path = self.range_files[usize::from(shard)]
            .get_or_init(|| self.dir.join(ranges::file_name(shard)));
        // A file of the lease's own, opened anew (an open file description of its own), so
        // two claims of one process exclude each other as two processes do.
        let file = open_or_create(path)?;
        let mut backoff = Backoff::new(timeout);
        let mut waited = false;
        loop {
            match ranges::try_lock(&file, offset) {
                Ok(true) => {
                    return Ok(Some(Acquired::Won {
                        lease: Lease {
                            file,
                            held: HeldBy::Range(offset),
                        },
                        waited,
                    }))
                }
                Ok(false) => waited = true,
                Err(e) if ranges::unsupported(&e) => return Ok(None),
                Err(e) => return Err(Error::io("locking", path, e)),
            }
            if !backoff.pause() {
                return Ok(Some(Acquired::TimedOut));
            }
        }
    }

    /// [`acquire`](Leases::acquire) by a lock file of the key's own.
    fn acquire_file(&self, key: &[u8], timeout: Duration) -> Result<Acquired> {
        let path = self.file_of(key);
        let mut backoff = Backoff::new(timeout);
        let mut waited = false;
        loop {
            let file = match open_regular(&path, Access::Read)? {
                Some(f) => f,
                None => match create_new(&path, FileMode::Umask) {
                    Ok(f) => f,
                    // Another process created it between our open and our create.
                    Err(Error::Io { source, .. })
                        if source.kind() == io::ErrorKind::AlreadyExists =>
                    {
                        continue
                    }
                    Err(e) => return Err(e),
                },
            };
            match file.try_lock() {
                Ok(()) => {
                    if same_file(&path, &file)? {
                        return Ok(Acquired::Won {
                            lease: Lease {
                                file,
                                held: HeldBy::KeyFile(path),
                            },
                            waited,
                        });
                    }
                    // Its holder removed it before unlocking: it no longer names the lease.
                    waited = true;
                    continue;
                }
                Err(TryLockError::WouldBlock) => waited = true,
                Err(TryLockError::Error(e)) => return Err(Error::io("locking", &path, e)),
            }
            drop(file);
            if !backoff.pause() {
                return Ok(Acquired::TimedOut);
            }
        }
    }

    /// [`acquire`](Leases::acquire) in the terms of [`Store::lease`](crate::Store::lease):
    /// waits at most `terms.wait()`; the TTL is not needed, since the OS ends a file lease
    /// when its holder dies.
    pub fn claim(&self, key: &[u8], terms: &Terms) -> Result<Claim> {
        Ok(match self.acquire(key, terms.wait())? {
            Acquired::Won { lease, waited } => Claim::Won {
                lease: Held::new(lease),
                waited,
            },
            Acquired::TimedOut => Claim::TimedOut,
        })
    }

    /// Updates the shared timestamp named `name` under an exclusive lock, for state that
    /// processes share next to their leases (a throttle's next allowed call): `update` gets
    /// the stored value (`None` at first, or when the file holds anything but 8 bytes) and
    /// returns the new one, which is written before the lock is released. The file is
    /// `<64 hex of blake3(name)>.stamp`, 8 bytes little-endian, and is kept.
    ///
    /// ```
    /// use cacher_store::lease::Leases;
    /// let dir = tempfile::tempdir()?;
    /// let leases = Leases::open(dir.path().join("leases"))?;
    /// assert_eq!(leases.update_stamp(b"host", |old| old.unwrap_or(0) + 5)?, 5);
    /// assert_eq!(leases.update_stamp(b"host", |old| old.unwrap_or(0) + 5)?, 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update_stamp(
        &self,
        name: &[u8],
        update: impl FnOnce(Option<u64>) -> u64,
    ) -> Result<u64> {
        use std::io::{Read, Seek, Write};
        let path = self
            .dir
            .join(format!("{}.stamp", blake3::hash(name).to_hex()));
        let mut file = open_or_create(&path)?;
        // Held for a read and a write of 8 bytes: blocking is brief, so no timeout.
        file.lock().map_err(|e| Error::io("locking", &path, e))?;
        let mut buf = Vec::with_capacity(8);
        (&file)
            .take(9)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("reading", &path, e))?;
        let old = <[u8; 8]>::try_from(buf.as_slice())
            .ok()
            .map(u64::from_le_bytes);
        let new = update(old);
        file.rewind()
            .and_then(|()| file.write_all(&new.to_le_bytes()))
            .and_then(|()| file.set_len(8))
            .map_err(|e| Error::io("writing", &path, e))?;
        let _ = file.unlock();
        Ok(new)
    }

    /// Removes the lock files nobody holds (left by holders that died); returns how many.
    /// Files of held leases, and names this module did not make, are left alone.
    pub fn clean_stale(&self) -> Result<u64> {
        self.clean_stale_at_most(u64::MAX)
    }

    /// [`clean_stale`](Leases::clean_stale) looking at no more than `limit` entries of the
    /// directory, so its cost is bounded however many files dead holders left (a later call
    /// goes on where the removals left off, since removed files are no longer listed).
    pub fn clean_stale_at_most(&self, limit: u64) -> Result<u64> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| Error::io("listing", &self.dir, e))?;
        let mut removed = 0;
        for entry in entries.take(usize::try_from(limit).unwrap_or(usize::MAX)) {
            let entry = entry.map_err(|e| Error::io("listing", &self.dir, e))?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
                continue;
            };
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let path = entry.path();
            // A symlink or FIFO under a lease name is refused, not followed: skip it.
            let Ok(Some(file)) = open_regular(&path, Access::Read) else {
                continue;
            };
            if file.try_lock().is_ok() && same_file(&path, &file)? {
                // Held by us now: nobody else can be using this file, so removing it is safe.
                remove(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        match &self.held {
            #[cfg(target_os = "linux")]
            HeldBy::Range(offset) => {
                // Closing the file would release it too; unlocking first also covers a copy
                // of the descriptor a child holds between `fork` and `exec`.
                let _ = ranges::unlock(&self.file, *offset);
            }
            HeldBy::KeyFile(path) => {
                // Removed while still locked: a waiter that locks it afterwards sees it is
                // gone and starts again on a new file (see `acquire`). A failure leaves a file
                // the next holder reuses, so it is not worth a panic.
                let _ = remove(path);
                let _ = self.file.unlock();
            }
        }
    }
}

/// Writes the [`Store::lease`](crate::Store::lease) of a store whose `OnceLock<Leases>` field
/// is named `$field`, through [`claim_kept`] under the store's own `lease_dir`.
macro_rules! lease_from_kept {
    ($field:ident) => {
        fn lease(
            &self,
            key: &[u8],
            terms: &$crate::lease::Terms,
        ) -> $crate::Result<Option<$crate::lease::Claim>> {
            $crate::lease::claim_kept(&self.$field, || self.lease_dir(), key, terms)
        }
    };
}
pub(crate) use lease_from_kept;

/// [`Store::lease`](crate::Store::lease) for a store handle that keeps its [`Leases`] in
/// `kept`: opened under `dir()` (the store's [`lease_dir`](crate::Store::lease_dir)) on the
/// handle's first claim, then reused, so a claim costs no `mkdir`/`stat` of the directory and
/// the range-lock fallback is remembered for the handle. A directory removed meanwhile (a
/// user's cleanup) is made again and the claim retried once.
pub(crate) fn claim_kept(
    kept: &OnceLock<Leases>,
    dir: impl FnOnce() -> Option<PathBuf>,
    key: &[u8],
    terms: &Terms,
) -> Result<Option<Claim>> {
    let leases = match kept.get() {
        Some(leases) => leases,
        None => {
            let Some(dir) = dir() else {
                return Ok(None);
            };
            let opened = Leases::open(dir)?;
            // Two first claims racing both open; one handle is kept, the other dropped.
            kept.get_or_init(|| opened)
        }
    };
    match leases.claim(key, terms) {
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            ensure_dir(&leases.dir, FileMode::Umask)?;
            leases.claim(key, terms).map(Some)
        }
        claimed => claimed.map(Some),
    }
}

/// The regular file at `path` opened for reading and writing, created (`O_EXCL`) if missing;
/// a file another process creates meanwhile is opened instead. Kept files only: the range lock
/// files and the stamps.
fn open_or_create(path: &Path) -> Result<File> {
    loop {
        match open_regular(path, Access::ReadWrite)? {
            Some(f) => return Ok(f),
            None => match create_new(path, FileMode::Umask) {
                Ok(f) => return Ok(f),
                Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            },
        }
    }
}

/// Whether `path` still names the open `file` (same device and inode), not following links.
fn same_file(path: &Path, file: &File) -> Result<bool> {
    let now = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("reading the metadata of", path, e)),
    };
    let held = file
        .metadata()
        .map_err(|e| Error::io("reading the metadata of", path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(now.dev() == held.dev() && now.ino() == held.ino() && now.is_file())
    }
    #[cfg(not(unix))]
    {
        let _ = held;
        Ok(now.is_file())
    }
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing", path, e)),
    }
}

/// The lease directory of a store kept in the single file `file`: `<file>.leases` beside it.
pub(crate) fn beside(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".leases");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests;
