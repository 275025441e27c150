//! The [`Store`] trait: the contract every layout implements.

use std::io::Read;

use crate::{Blob, Result};

/// How far a write has gone before `put` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Left in OS buffers: survives a process crash, not a power loss.
    None,
    /// Data (and, for renames, the directory) fsynced before `put` returns: survives power loss.
    /// The default for disk stores.
    #[default]
    Flush,
    /// Between the two, the class of SQLite's WAL with `synchronous=NORMAL`: never corrupt after
    /// a power loss, which may lose only the writes of the last bounded interval; a process crash
    /// loses nothing. Each store documents its interval and how it gets there; a store with no
    /// cheaper way to keep that promise treats it as [`Durability::Flush`].
    Periodic,
}

/// Facts about one stored entry, read without reading its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryMeta {
    /// The value's length in bytes.
    pub len: u64,
}

impl EntryMeta {
    /// Metadata for a value of `len` bytes.
    pub fn new(len: u64) -> Self {
        EntryMeta { len }
    }
}

/// The iterator [`Store::keys`] returns.
pub type KeyIter<'a> = Box<dyn Iterator<Item = Result<Vec<u8>>> + 'a>;

/// The iterator [`Store::scan`] returns: `(key, value)` pairs.
pub type EntryIter<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + 'a>;

/// What [`Store::verify`] found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Entries read and checked.
    pub checked: u64,
    /// Entries read whose values carry no checksum to check them by (an `LmdbStore` of
    /// layout 1, made before values had one): their framing was read, their bytes cannot be
    /// verified. Not counted in `checked`.
    pub unchecked: u64,
    /// Each damaged entry's key and the error its read gave.
    pub damaged: Vec<(Vec<u8>, crate::Error)>,
}

/// Bytes in, bytes out: a persistent or in-memory map from byte keys to byte values.
///
/// # Contract
/// - Keys and values are arbitrary bytes: empty, containing `/`, `..`, NUL, non-UTF-8, and
///   keys of at least 4 KiB. A key is never used as a file path.
/// - A `put` that returned `Ok` is visible to every later `get` on any handle of the store,
///   and, for disk stores, survives the process (and with [`Durability::Flush`], power loss).
/// - A crash at any instant leaves a store that opens and holds, for each key, either the old
///   or the new value — never a torn or mixed one.
/// - Bad data on disk is reported as [`crate::Error::Corrupt`], never a panic. Every read
///   path (`get`, `read`, `with_value`, `scan`, `get_many`) checks the value before returning
///   it; only [`read_unchecked`](Store::read_unchecked) may skip that, and says so.
/// - A store touches only files it created: it never follows a symlink planted inside its
///   directory, never blocks on a FIFO, and deletes only names it made.
/// - The trait is object-safe: `Box<dyn Store>` and `Arc<dyn Store>` are stores too.
///
/// Every store in this project runs the conformance kit (`cacher_store::testkit`, feature
/// `testkit`); a store of your own can run it as well.
pub trait Store: Send + Sync {
    /// Reads `key`'s value, lent from the store where the layout allows (a memory map, a shared
    /// buffer) so a large value is not copied.
    fn read(&self, key: &[u8]) -> Result<Option<Blob>>;

    /// Reads `key`'s value as a stream (checked: see [`crate::ValueReader`]), for values too
    /// large to hold or map. Stores that can read a value in pieces override it; the default
    /// streams the view [`read`](Store::read) lends.
    fn read_stream(&self, key: &[u8]) -> Result<Option<crate::ValueReader>> {
        Ok(self.read(key)?.map(crate::ValueReader::from_blob))
    }

    /// Writes `value` under `key`, replacing any old value atomically.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()>;

    /// Writes `value` under `key` like [`Store::put`], telling the store the entry is not
    /// needed after `deadline_ms` (milliseconds since the Unix epoch; `None`: never). A store
    /// with native expiry (Redis `PEXPIREAT`) may drop the entry from then on; the others
    /// ignore the deadline. Callers still check expiry themselves: the deadline frees space,
    /// it never decides what a read returns.
    ///
    /// ```
    /// use cacher_store::{MemoryStore, Store};
    /// let store = MemoryStore::new();
    /// store.put_with_deadline(b"k", b"v", Some(u64::MAX))?;
    /// assert_eq!(store.get(b"k")?.as_deref(), Some(&b"v"[..]));
    /// # Ok::<(), cacher_store::Error>(())
    /// ```
    fn put_with_deadline(&self, key: &[u8], value: &[u8], deadline_ms: Option<u64>) -> Result<()> {
        let _ = deadline_ms;
        self.put(key, value)
    }

    /// Streams a value from `reader` under `key` without holding it in memory (where the
    /// layout allows); returns the number of bytes written. Atomic like [`Store::put`].
    fn put_reader(&self, key: &[u8], reader: &mut dyn Read) -> Result<u64> {
        let mut buf = Vec::new();
        reader
            .read_to_end(&mut buf)
            .map_err(|e| crate::Error::ValueSource {
                key: crate::KeyDisplay::new(key),
                source: e,
            })?;
        self.put(key, &buf)?;
        Ok(buf.len() as u64)
    }

    /// Removes `key`; returns whether it was present. Removing a missing key is not an error.
    fn delete(&self, key: &[u8]) -> Result<bool>;

    /// Every key, in no promised order. Keys written during iteration may or may not appear.
    fn keys(&self) -> Result<KeyIter<'_>>;

    /// Makes every acknowledged write durable (a no-op where `put` already is).
    fn flush(&self) -> Result<()>;

    /// Reads `key`'s value into an owned `Vec`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.read(key)?.map(Blob::into_vec))
    }

    /// Lends `key`'s bytes to `f` without copying them (inside an LMDB read transaction, over
    /// a memory map); returns `false` without calling `f` when the key is missing.
    fn with_value(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        match self.read(key)? {
            Some(blob) => {
                f(&blob);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Like [`with_value`](Store::with_value), but a store may skip checking the value's
    /// checksum before lending it, as [`read_unchecked`](Store::read_unchecked) may: for a
    /// caller whose bytes carry their own checksum bound to the key (the `Cache` envelope
    /// version 2 does), so the store's pass over the value would be a second one. What a store
    /// still checks (the framing, so no read reaches outside the value and another key's
    /// entry still reads as missing) it documents. The default is the checked `with_value`.
    ///
    /// ```
    /// use cacher_store::{MemoryStore, Store};
    /// let store = MemoryStore::new();
    /// store.put(b"k", b"bytes with their own checksum")?;
    /// let mut len = 0;
    /// assert!(store.with_value_unchecked(b"k", &mut |bytes| len = bytes.len())?);
    /// assert_eq!(len, 29);
    /// # Ok::<(), cacher_store::Error>(())
    /// ```
    fn with_value_unchecked(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        self.with_value(key, f)
    }

    /// Whether `key` is present.
    fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.meta(key)?.is_some())
    }

    /// Metadata of `key`'s entry, without reading the whole value where the layout allows.
    fn meta(&self, key: &[u8]) -> Result<Option<EntryMeta>> {
        Ok(self.read(key)?.map(|b| EntryMeta::new(b.len() as u64)))
    }

    /// Reads many keys, in order; one transaction or pass where the layout allows.
    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// Writes many entries; one transaction or one sync for the batch where the layout allows.
    /// Later entries win over earlier ones with the same key.
    fn put_many(&self, entries: &[(&[u8], &[u8])]) -> Result<()> {
        for (k, v) in entries {
            self.put(k, v)?;
        }
        Ok(())
    }

    /// Writes many entries like [`Store::put_many`], each with the deadline
    /// [`Store::put_with_deadline`] takes (milliseconds since the Unix epoch; `None`: never).
    /// The default ignores the deadlines and calls `put_many`, keeping its one transaction; a
    /// store with native expiry overrides it. As there, a deadline only frees space: callers
    /// still check expiry themselves.
    ///
    /// ```
    /// use cacher_store::{MemoryStore, Store};
    /// let store = MemoryStore::new();
    /// store.put_many_with_deadlines(&[(b"a", b"1", Some(u64::MAX)), (b"b", b"2", None)])?;
    /// assert_eq!(store.get(b"b")?.as_deref(), Some(&b"2"[..]));
    /// # Ok::<(), cacher_store::Error>(())
    /// ```
    fn put_many_with_deadlines(&self, entries: &[(&[u8], &[u8], Option<u64>)]) -> Result<()> {
        let plain: Vec<(&[u8], &[u8])> = entries.iter().map(|&(k, v, _)| (k, v)).collect();
        self.put_many(&plain)
    }

    /// Every entry as `(key, value)`, in no promised order.
    fn scan(&self) -> Result<EntryIter<'_>> {
        let keys = self.keys()?;
        Ok(Box::new(keys.filter_map(move |k| match k {
            Err(e) => Some(Err(e)),
            // A key deleted between listing and reading is skipped, not reported.
            Ok(k) => match self.get(&k) {
                Ok(Some(v)) => Some(Ok((k, v))),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            },
        })))
    }

    /// Like [`read`](Store::read), but a store may skip checking the value's checksum when
    /// that would cost a pass over a large zero-copy view (a memory-mapped file). The name says
    /// what it gives up: use it only where the caller checks the bytes itself (the `Cache`
    /// envelope carries its own checksum) or can afford a wrong byte. Stores whose reads are
    /// always checked in O(1) need not override it.
    fn read_unchecked(&self, key: &[u8]) -> Result<Option<Blob>> {
        self.read(key)
    }

    /// Like [`read_stream`](Store::read_stream), but a store may skip the checksum pass it
    /// would run over the streamed value, for a caller that checks the bytes itself: a `Cache`
    /// blob carries its own body checksum (and MAC), checked by the time its reader reaches
    /// the end. The stream still yields the value's bytes and no more; a store that skips its
    /// checksum leaves damage, truncation included, to the caller's check. The default is the
    /// checked stream.
    fn read_stream_unchecked(&self, key: &[u8]) -> Result<Option<crate::ValueReader>> {
        self.read_stream(key)
    }

    /// Reads every entry and checks it, reporting each damaged key instead of stopping at the
    /// first. An error that is not about one entry's bytes (I/O on the store itself) ends the
    /// scan and is returned.
    ///
    /// ```
    /// use cacher_store::{MemoryStore, Store};
    /// let store = MemoryStore::new();
    /// store.put(b"a", b"1")?;
    /// let report = store.verify()?;
    /// assert_eq!((report.checked, report.damaged.len()), (1, 0));
    /// # Ok::<(), cacher_store::Error>(())
    /// ```
    fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for key in self.keys()? {
            let key = key?;
            match self.get(&key) {
                Ok(_) => report.checked += 1,
                Err(e) if e.is_corrupt() => {
                    report.checked += 1;
                    report.damaged.push((key, e));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// The number of entries.
    fn len(&self) -> Result<u64> {
        let mut n = 0;
        for k in self.keys()? {
            k?;
            n += 1;
        }
        Ok(n)
    }

    /// Whether the store holds no entry.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Where processes sharing this store keep per-key leases ([`crate::lease::Leases`]), so
    /// that they compute a missing value once between them; `None` (the default) for a store
    /// that no other process can see. The directory need not exist yet.
    fn lease_dir(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// Takes `key`'s lease among every handle of this store (processes, and for a networked
    /// store, hosts), so that they compute a missing value once between them: see
    /// [`crate::lease::claim`](crate::lease::Claim) for what every lease promises (one holder,
    /// bounded waits, release on drop, takeover when the holder dies, renewal while held).
    /// `Ok(None)`: this store has no leases (no other process can see it), and the caller
    /// computes without one.
    ///
    /// The default locks under [`lease_dir`](Store::lease_dir) ([`crate::lease::Leases`]: on
    /// Linux one byte of one of 64 files per key, elsewhere a lock file per key); a store with leases of its own (Redis `SET NX PX`)
    /// overrides it, and a wrapper ([`crate::Tiered`]) forwards it to the store processes share.
    ///
    /// ```
    /// use cacher_store::lease::{Claim, Terms};
    /// use cacher_store::{DirStore, MemoryStore, Store};
    /// use std::time::Duration;
    /// let dir = tempfile::tempdir()?;
    /// let store = DirStore::open(dir.path())?;
    /// let terms = Terms::new(Duration::from_secs(10), Duration::from_secs(30));
    /// match store.lease(b"key", &terms)? {
    ///     Some(Claim::Won { lease, .. }) => drop(lease), // compute, store, then release
    ///     Some(Claim::TimedOut) | None => unreachable!("a fresh DirStore has leases, all free"),
    /// }
    /// assert!(MemoryStore::new().lease(b"key", &terms)?.is_none(), "seen by one process only");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn lease(
        &self,
        key: &[u8],
        terms: &crate::lease::Terms,
    ) -> Result<Option<crate::lease::Claim>> {
        match self.lease_dir() {
            Some(dir) => crate::lease::Leases::open(dir)?.claim(key, terms).map(Some),
            None => Ok(None),
        }
    }

    /// The eviction accounting this store keeps itself, shared by every process that opens it
    /// ([`crate::accounting`]); `None` (the default) for a store without it, on which a limited
    /// `Cache` scans at open and tracks entries in memory instead. `LmdbStore`, `HybridStore`,
    /// `LogStore` (its writer handles) and `DirStore` (feature `lmdb`, unix) keep it.
    fn accounting(&self) -> Option<&dyn crate::accounting::Accounting> {
        None
    }
}

macro_rules! forward_store {
    ($($ty:ty),*) => {$(
        impl<S: Store + ?Sized> Store for $ty {
            fn read(&self, key: &[u8]) -> Result<Option<Blob>> { (**self).read(key) }
            fn read_stream(&self, key: &[u8]) -> Result<Option<crate::ValueReader>> { (**self).read_stream(key) }
            fn put(&self, key: &[u8], value: &[u8]) -> Result<()> { (**self).put(key, value) }
            fn put_with_deadline(&self, key: &[u8], value: &[u8], deadline_ms: Option<u64>) -> Result<()> { (**self).put_with_deadline(key, value, deadline_ms) }
            fn put_reader(&self, key: &[u8], reader: &mut dyn Read) -> Result<u64> { (**self).put_reader(key, reader) }
            fn delete(&self, key: &[u8]) -> Result<bool> { (**self).delete(key) }
            fn keys(&self) -> Result<KeyIter<'_>> { (**self).keys() }
            fn flush(&self) -> Result<()> { (**self).flush() }
            fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> { (**self).get(key) }
            fn with_value(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> { (**self).with_value(key, f) }
            fn with_value_unchecked(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> { (**self).with_value_unchecked(key, f) }
            fn contains(&self, key: &[u8]) -> Result<bool> { (**self).contains(key) }
            fn meta(&self, key: &[u8]) -> Result<Option<EntryMeta>> { (**self).meta(key) }
            fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> { (**self).get_many(keys) }
            fn put_many(&self, entries: &[(&[u8], &[u8])]) -> Result<()> { (**self).put_many(entries) }
            fn put_many_with_deadlines(&self, entries: &[(&[u8], &[u8], Option<u64>)]) -> Result<()> { (**self).put_many_with_deadlines(entries) }
            fn scan(&self) -> Result<EntryIter<'_>> { (**self).scan() }
            fn len(&self) -> Result<u64> { (**self).len() }
            fn is_empty(&self) -> Result<bool> { (**self).is_empty() }
            fn read_unchecked(&self, key: &[u8]) -> Result<Option<Blob>> { (**self).read_unchecked(key) }
            fn read_stream_unchecked(&self, key: &[u8]) -> Result<Option<crate::ValueReader>> { (**self).read_stream_unchecked(key) }
            fn verify(&self) -> Result<VerifyReport> { (**self).verify() }
            fn lease_dir(&self) -> Option<std::path::PathBuf> { (**self).lease_dir() }
            fn lease(&self, key: &[u8], terms: &crate::lease::Terms) -> Result<Option<crate::lease::Claim>> { (**self).lease(key, terms) }
            fn accounting(&self) -> Option<&dyn crate::accounting::Accounting> { (**self).accounting() }
        }
    )*};
}

forward_store!(Box<S>, std::sync::Arc<S>, &S);
