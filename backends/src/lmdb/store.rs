//! [`LmdbStore`]: a byte store in an LMDB environment that many processes share at once.
//!
//! # Layout
//! Two named databases in the environment of [`LmdbEnv`]:
//!
//! - `cacher-store-meta`: one entry, key `format`, value the magic and format version:
//!
//!   ```text
//!   +----------------------+------------------+
//!   | b"cacherLM" (8 B)    | version u32 LE   |     version 1
//!   +----------------------+------------------+
//!   ```
//!   A newer version is refused with [`Error::UpgradeRequired`]; a wrong magic or length is
//!   [`Error::Corrupt`].
//!
//! - `cacher-store`: one LMDB entry per stored key. LMDB keys are limited to 511 bytes (and
//!   LMDB rejects an empty key), so every stored key starts with a one-byte tag:
//!
//!   ```text
//!   short key (0..=510 bytes):
//!     LMDB key   = 0x00 | key
//!     LMDB value = value
//!
//!   long key (511 bytes and more):
//!     LMDB key   = 0x01 | blake3(key)                      (33 bytes)
//!     LMDB value = key_len u64 LE | key | value
//!   ```
//!   A long key's full bytes are kept beside its value and compared on every read, so a hash
//!   collision can never return another key's value (it reads as missing; a put of a
//!   colliding key would replace the other key's entry — a 2^-128 event). The tag also keeps
//!   the empty key storable (as the one-byte LMDB key `0x00`) and lets iteration give every
//!   key back exactly. Any other tag byte is [`Error::Corrupt`].
//!
//! # Zero copy
//! [`Store::with_value`] lends `&[u8]` straight from LMDB's map inside a read transaction.
//! [`Store::read`] returns an owned [`Blob`], a copy: a [`Blob`] may outlive any transaction,
//! and the pages it would borrow are only guaranteed until the transaction ends (a later
//! write may reuse them, a resize may unmap them). Use `with_value` for large values.
//!
//! # Durability
//! [`Durability::Flush`] (default): every commit is synced by LMDB before `put` returns.
//! [`Durability::None`]: commits are left to the OS (`MDB_NOSYNC`); they survive a crash of
//! the process, not a power loss, until [`Store::flush`].

use std::io::Read;
use std::ops::Bound;
use std::path::Path;

use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn};

use super::{LmdbEnv, LmdbOptions, TxnError};
use crate::{Blob, Durability, EntryMeta, Error, Result, Store};

/// The name of the data database.
const DATA_DB: &str = "cacher-store";
/// The name of the meta database.
const META_DB: &str = "cacher-store-meta";
/// The meta key holding magic and version.
const FORMAT_KEY: &[u8] = b"format";
/// The magic at the start of the format record.
const MAGIC: &[u8; 8] = b"cacherLM";
/// Version 1: the tagged key layout described in the module docs.
const FORMAT_VERSION: u32 = 1;

/// Tag of a key stored as is.
const TAG_PLAIN: u8 = 0x00;
/// Tag of a key stored under its blake3 hash.
const TAG_HASHED: u8 = 0x01;
/// The longest key LMDB accepts (without heed's `longer-keys` feature).
const LMDB_MAX_KEY: usize = 511;
/// The longest key stored as is: one byte goes to the tag.
const MAX_PLAIN_KEY: usize = LMDB_MAX_KEY - 1;
/// The length of a long key's header in its LMDB value.
const LONG_HEADER: usize = 8;

/// Keys fetched per read transaction while iterating, so iteration never holds a transaction
/// (and the resize gate) across the caller's code.
const KEYS_PER_PAGE: usize = 1024;
/// Value bytes fetched per read transaction by `scan` (at least one entry per page).
const SCAN_BYTES_PER_PAGE: usize = 8 << 20;

/// A byte store in an LMDB environment, shared by many threads and processes at once.
///
/// Open it on a directory; every process (and every thread, with a clone or a second open)
/// sees every committed write. The map grows by itself; reads are zero-copy through
/// [`Store::with_value`]. See the [module docs](self) for the layout, and [`LmdbEnv`] for the
/// environment rules (in short: do not call a store method from inside another's closure).
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
    env: LmdbEnv,
    data: Database<'static, Bytes, Bytes>,
}

/// A key as stored in LMDB: the tag and either the key or its hash, on the stack.
struct StoredKey {
    buf: [u8; LMDB_MAX_KEY],
    len: usize,
}

impl StoredKey {
    fn new(key: &[u8]) -> Self {
        let mut buf = [0u8; LMDB_MAX_KEY];
        let len = if key.len() <= MAX_PLAIN_KEY {
            buf[0] = TAG_PLAIN;
            buf[1..=key.len()].copy_from_slice(key);
            key.len() + 1
        } else {
            buf[0] = TAG_HASHED;
            buf[1..33].copy_from_slice(blake3::hash(key).as_bytes());
            33
        };
        StoredKey { buf, len }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn is_hashed(&self) -> bool {
        self.buf[0] == TAG_HASHED
    }
}

impl LmdbStore {
    /// Opens (or creates) the store in directory `dir` with [`LmdbOptions::default`].
    pub fn open(dir: impl AsRef<Path>) -> Result<LmdbStore> {
        Self::open_with(dir, &LmdbOptions::default())
    }

    /// Opens (or creates) the store in directory `dir` with `options` (which apply only if the
    /// environment is not already open in this process: see [`LmdbEnv::open`]).
    pub fn open_with(dir: impl AsRef<Path>, options: &LmdbOptions) -> Result<LmdbStore> {
        Self::from_env(LmdbEnv::open(dir, options)?)
    }

    /// Opens the store in an environment already open, checking or writing its format record.
    pub fn from_env(env: LmdbEnv) -> Result<LmdbStore> {
        let meta = env.create_database(META_DB)?;
        let data = env.create_database(DATA_DB)?;
        let path = env.path().to_path_buf();
        let check = |raw: &[u8]| -> Result<()> {
            let version = match raw {
                [m @ .., a, b, c, d] if m == MAGIC => u32::from_le_bytes([*a, *b, *c, *d]),
                _ => {
                    return Err(Error::corrupt(
                        &path,
                        Some(FORMAT_KEY),
                        format!("bad format record ({} bytes)", raw.len()),
                    ))
                }
            };
            if version > FORMAT_VERSION {
                return Err(Error::UpgradeRequired {
                    path: path.clone(),
                    found: version,
                    supported: FORMAT_VERSION,
                });
            }
            if version == 0 {
                return Err(Error::corrupt(&path, Some(FORMAT_KEY), "format version 0"));
            }
            Ok(())
        };
        let found = env.read(|rtxn| -> Result<bool, TxnError> {
            match meta.get(rtxn, FORMAT_KEY)? {
                Some(raw) => check(raw).map(|()| true).map_err(TxnError::Store),
                None => Ok(false),
            }
        })?;
        if !found {
            // Written in a write transaction that checks again, so two processes creating the
            // store at once agree on one record.
            env.write(|wtxn| -> Result<(), TxnError> {
                if let Some(raw) = meta.get(wtxn, FORMAT_KEY)? {
                    return check(raw).map_err(TxnError::Store);
                }
                let mut record = MAGIC.to_vec();
                record.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
                meta.put(wtxn, FORMAT_KEY, &record)?;
                Ok(())
            })?;
        }
        Ok(LmdbStore { env, data })
    }

    /// The environment the store lives in.
    pub fn env(&self) -> &LmdbEnv {
        &self.env
    }

    /// The `cacher-store` database, for reading the raw layout (tests, tools).
    pub fn raw_database(&self) -> Database<'static, Bytes, Bytes> {
        self.data
    }

    fn corrupt(&self, key: Option<&[u8]>, reason: impl Into<String>) -> Error {
        Error::corrupt(self.env.path(), key, reason)
    }

    /// The value of `key` from `raw`, the LMDB value under its stored key: for a hashed key,
    /// checks the full key kept beside the value (`None` on a collision).
    fn unwrap_value<'a>(
        &self,
        key: &[u8],
        stored: &StoredKey,
        raw: &'a [u8],
    ) -> Result<Option<&'a [u8]>> {
        if !stored.is_hashed() {
            return Ok(Some(raw));
        }
        let (full_key, value) = self.split_long(raw, Some(key))?;
        Ok((full_key == key).then_some(value))
    }

    /// Splits a long key's LMDB value into the full key and the value.
    fn split_long<'a>(&self, raw: &'a [u8], key: Option<&[u8]>) -> Result<(&'a [u8], &'a [u8])> {
        let header: [u8; LONG_HEADER] = raw
            .get(..LONG_HEADER)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| self.corrupt(key, "long-key entry shorter than its header"))?;
        let key_len = u64::from_le_bytes(header);
        let rest = &raw[LONG_HEADER..];
        match usize::try_from(key_len) {
            Ok(n) if n <= rest.len() && n > MAX_PLAIN_KEY => Ok(rest.split_at(n)),
            _ => Err(self.corrupt(
                key,
                format!(
                    "long-key entry claims a {key_len}-byte key in {} bytes",
                    rest.len()
                ),
            )),
        }
    }

    /// Looks `key` up in an open transaction.
    fn get_in<'t>(&self, txn: &'t RoTxn<'_>, key: &[u8]) -> Result<Option<&'t [u8]>, TxnError> {
        let stored = StoredKey::new(key);
        match self.data.get(txn, stored.bytes())? {
            None => Ok(None),
            Some(raw) => Ok(self.unwrap_value(key, &stored, raw)?),
        }
    }

    fn put_in(&self, wtxn: &mut RwTxn<'_>, key: &[u8], value: &[u8]) -> Result<(), TxnError> {
        let stored = StoredKey::new(key);
        if !stored.is_hashed() {
            self.data.put(wtxn, stored.bytes(), value)?;
            return Ok(());
        }
        let len = LONG_HEADER + key.len() + value.len();
        self.data.put_reserved(wtxn, stored.bytes(), len, |space| {
            use std::io::Write;
            space.write_all(&(key.len() as u64).to_le_bytes())?;
            space.write_all(key)?;
            space.write_all(value)
        })?;
        Ok(())
    }

    /// Decodes a stored LMDB entry back to the caller's key and value.
    fn decode_entry<'a>(&self, stored: &'a [u8], raw: &'a [u8]) -> Result<(&'a [u8], &'a [u8])> {
        match stored.split_first() {
            Some((&TAG_PLAIN, key)) => Ok((key, raw)),
            Some((&TAG_HASHED, hash)) => {
                let (key, value) = self.split_long(raw, None)?;
                if blake3::hash(key).as_bytes()[..] != *hash {
                    return Err(self.corrupt(Some(key), "long key does not match its hash"));
                }
                Ok((key, value))
            }
            _ => Err(self.corrupt(
                Some(stored),
                format!("unknown key tag in stored key of {} bytes", stored.len()),
            )),
        }
    }

    /// Reads one page of entries after the stored key `after`, calling `f` with each decoded
    /// entry until it returns `false`; returns the last stored key visited.
    fn page(
        &self,
        after: Option<&[u8]>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<Option<Vec<u8>>> {
        self.env.read(|rtxn| -> Result<Option<Vec<u8>>, TxnError> {
            let start = match after {
                Some(k) => Bound::Excluded(k),
                None => Bound::Unbounded,
            };
            let range = (start, Bound::<&[u8]>::Unbounded);
            let mut last = None;
            for entry in self.data.range(rtxn, &range)? {
                let (stored, raw) = entry?;
                let (key, value) = self.decode_entry(stored, raw)?;
                last = Some(stored.to_vec());
                if !f(key, value) {
                    break;
                }
            }
            Ok(last)
        })
    }

    /// Iterates in pages of at most `budget` (counting each entry by `cost`), one read
    /// transaction per page, decoding each entry with `take`.
    fn paged<T: 'static>(
        &self,
        budget: usize,
        cost: fn(&[u8], &[u8]) -> usize,
        take: fn(&[u8], &[u8]) -> T,
    ) -> Box<dyn Iterator<Item = Result<T>> + '_> {
        let mut after: Option<Vec<u8>> = None;
        let mut done = false;
        let mut buffered = std::collections::VecDeque::new();
        Box::new(std::iter::from_fn(move || loop {
            if let Some(item) = buffered.pop_front() {
                return Some(Ok(item));
            }
            if done {
                return None;
            }
            let mut spent = 0;
            let result = self.page(after.as_deref(), &mut |k, v| {
                buffered.push_back(take(k, v));
                spent += cost(k, v);
                spent < budget
            });
            match result {
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
                Ok(None) => done = true,
                Ok(Some(last)) => after = Some(last),
            }
        }))
    }
}

impl Store for LmdbStore {
    /// Copies the value out (see the module docs: a [`Blob`] cannot borrow from a
    /// transaction); [`Store::with_value`] is the zero-copy read.
    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        Ok(self.get(key)?.map(Blob::from))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.env
            .read(|rtxn| Ok::<_, TxnError>(self.get_in(rtxn, key)?.map(<[u8]>::to_vec)))
    }

    fn with_value(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        self.env.read(|rtxn| -> Result<bool, TxnError> {
            match self.get_in(rtxn, key)? {
                Some(value) => {
                    f(value);
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.env.write(|wtxn| self.put_in(wtxn, key, value))
    }

    /// LMDB needs a value's length before writing it (`MDB_RESERVE` included), so the reader
    /// is buffered in memory first; the write itself is one transaction, atomic like `put`.
    fn put_reader(&self, key: &[u8], reader: &mut dyn Read) -> Result<u64> {
        let mut buf = Vec::new();
        reader
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("reading the value for", self.env.path(), e))?;
        self.put(key, &buf)?;
        Ok(buf.len() as u64)
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        let stored = StoredKey::new(key);
        self.env.write(|wtxn| -> Result<bool, TxnError> {
            if stored.is_hashed() {
                // Only delete the entry if it is this key's, not a colliding one's.
                let Some(raw) = self.data.get(wtxn, stored.bytes())? else {
                    return Ok(false);
                };
                if self.unwrap_value(key, &stored, raw)?.is_none() {
                    return Ok(false);
                }
            }
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
            Durability::Flush => Ok(()),
            _ => self.env.sync(),
        }
    }

    fn meta(&self, key: &[u8]) -> Result<Option<EntryMeta>> {
        self.env.read(|rtxn| -> Result<_, TxnError> {
            Ok(self
                .get_in(rtxn, key)?
                .map(|v| EntryMeta::new(v.len() as u64)))
        })
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        self.env.read(|rtxn| -> Result<_, TxnError> {
            keys.iter()
                .map(|k| Ok(self.get_in(rtxn, k)?.map(<[u8]>::to_vec)))
                .collect()
        })
    }

    fn put_many(&self, entries: &[(&[u8], &[u8])]) -> Result<()> {
        self.env.write(|wtxn| -> Result<(), TxnError> {
            for (k, v) in entries {
                self.put_in(wtxn, k, v)?;
            }
            Ok(())
        })
    }

    fn len(&self) -> Result<u64> {
        self.env.read(|rtxn| self.data.len(rtxn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> LmdbOptions {
        LmdbOptions::default().with_initial_map_size(1 << 20)
    }

    crate::conformance_tests!(
        |dir: &std::path::Path| LmdbStore::open_with(dir, &small()).unwrap(),
        persistent = true
    );

    #[test]
    fn long_keys_are_stored_under_a_hash_with_the_full_key_beside_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
        let long = vec![b'x'; 600];
        let short = vec![b'y'; MAX_PLAIN_KEY];
        store.put(&long, b"long").unwrap();
        store.put(&short, b"short").unwrap();
        store.put(b"", b"empty").unwrap();
        let env = store.env().clone();
        let db = store.raw_database();
        let mut raw: Vec<(Vec<u8>, Vec<u8>)> = env
            .read(|r| -> Result<_, TxnError> {
                let mut out = Vec::new();
                for e in db.iter(r)? {
                    let (k, v) = e?;
                    out.push((k.to_vec(), v.to_vec()));
                }
                Ok(out)
            })
            .unwrap();
        raw.sort();
        assert_eq!(raw[0], (vec![TAG_PLAIN], b"empty".to_vec()));
        let mut plain = vec![TAG_PLAIN];
        plain.extend_from_slice(&short);
        assert_eq!(raw[1], (plain, b"short".to_vec()));
        let mut hashed = vec![TAG_HASHED];
        hashed.extend_from_slice(blake3::hash(&long).as_bytes());
        let mut value = 600u64.to_le_bytes().to_vec();
        value.extend_from_slice(&long);
        value.extend_from_slice(b"long");
        assert_eq!(raw[2], (hashed, value));
    }

    /// Writes `value` under the raw LMDB key `stored`, bypassing the encoding.
    fn plant(store: &LmdbStore, stored: &[u8], value: &[u8]) {
        let db = store.raw_database();
        store.env().write(|w| db.put(w, stored, value)).unwrap();
    }

    #[test]
    fn a_hash_collision_reads_as_missing_never_as_the_other_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
        let wanted = vec![b'a'; 700];
        let other = vec![b'b'; 700];
        // Pretend `other` hashed like `wanted`: its entry sits under `wanted`'s stored key.
        let mut value = 700u64.to_le_bytes().to_vec();
        value.extend_from_slice(&other);
        value.extend_from_slice(b"other's value");
        plant(&store, StoredKey::new(&wanted).bytes(), &value);
        assert_eq!(store.get(&wanted).unwrap(), None);
        assert!(!store.contains(&wanted).unwrap());
        assert!(!store.delete(&wanted).unwrap(), "deleted a colliding entry");
        assert_eq!(store.len().unwrap(), 1);
    }

    #[test]
    fn a_damaged_long_key_entry_is_reported_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
        let key = vec![b'k'; 800];
        let mut value = 9999u64.to_le_bytes().to_vec();
        value.extend_from_slice(&key);
        plant(&store, StoredKey::new(&key).bytes(), &value);
        let err = store.get(&key).unwrap_err();
        assert!(err.is_corrupt(), "{err:?}");
        plant(&store, StoredKey::new(&key).bytes(), b"short");
        let err = store.get(&key).unwrap_err();
        assert!(err.is_corrupt(), "{err:?}");
    }

    #[test]
    fn an_unknown_key_tag_is_reported_corrupt_by_iteration() {
        let dir = tempfile::tempdir().unwrap();
        let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
        store.put(b"fine", b"1").unwrap();
        plant(&store, b"\x07strange", b"2");
        let err = store.keys().unwrap().find_map(Result::err).unwrap();
        assert!(err.is_corrupt(), "{err:?}");
    }

    #[test]
    fn a_long_key_whose_hash_does_not_match_is_reported_corrupt_by_iteration() {
        let dir = tempfile::tempdir().unwrap();
        let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
        let key = vec![b'k'; 800];
        let mut value = 800u64.to_le_bytes().to_vec();
        value.extend_from_slice(&vec![b'z'; 800]);
        plant(&store, StoredKey::new(&key).bytes(), &value);
        let err = store.scan().unwrap().find_map(Result::err).unwrap();
        assert!(err.is_corrupt(), "{err:?}");
    }

    fn set_format_record(dir: &Path, record: &[u8]) {
        let store = LmdbStore::open_with(dir, &small()).unwrap();
        let meta = store.env().create_database(META_DB).unwrap();
        store
            .env()
            .write(|w| meta.put(w, FORMAT_KEY, record))
            .unwrap();
    }

    #[test]
    fn a_newer_format_version_requires_an_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = MAGIC.to_vec();
        record.extend_from_slice(&2u32.to_le_bytes());
        set_format_record(dir.path(), &record);
        match LmdbStore::open_with(dir.path(), &small()).unwrap_err() {
            Error::UpgradeRequired {
                found, supported, ..
            } => assert_eq!((found, supported), (2, FORMAT_VERSION)),
            other => panic!("expected UpgradeRequired, got {other:?}"),
        }
    }

    #[test]
    fn a_bad_format_record_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        set_format_record(dir.path(), b"notcacher\x01\x00\x00\x00");
        let err = LmdbStore::open_with(dir.path(), &small()).unwrap_err();
        assert!(err.is_corrupt(), "{err:?}");
    }

    /// The golden fixtures: one committed LMDB data file per directory under
    /// `fixtures/lmdb/`, each opened from a copy so the fixture itself is never written.
    fn fixture_dir(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/lmdb")
            .join(name)
    }

    /// The contents of the `v1-store` fixture.
    fn v1_fixture_contents() -> Vec<(Vec<u8>, Vec<u8>)> {
        vec![
            (b"".to_vec(), b"the empty key".to_vec()),
            (b"short".to_vec(), b"value".to_vec()),
            (
                b"binary\x00\xff".to_vec(),
                (0..300u32).map(|i| (i * 7) as u8).collect(),
            ),
            (vec![b'L'; 600], b"a key past LMDB's limit".to_vec()),
        ]
    }

    fn open_fixture_copy(name: &str) -> (tempfile::TempDir, Result<LmdbStore>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            fixture_dir(name).join("data.mdb"),
            dir.path().join("data.mdb"),
        )
        .unwrap_or_else(|e| panic!("fixture {name} is missing: {e}"));
        let store = LmdbStore::open_with(dir.path(), &small());
        (dir, store)
    }

    /// Regenerates `fixtures/lmdb/` (run by hand: `cargo test -p cacher-store --features
    /// testkit,lmdb generate_lmdb_fixtures -- --ignored`). The tests below only read them.
    #[test]
    #[ignore = "writes the committed fixtures; run by hand"]
    fn generate_lmdb_fixtures() {
        let write = |name: &str, extra: &dyn Fn(&LmdbStore)| {
            let dir = tempfile::tempdir().unwrap();
            let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
            for (k, v) in v1_fixture_contents() {
                store.put(&k, &v).unwrap();
            }
            extra(&store);
            let out = fixture_dir(name);
            std::fs::create_dir_all(&out).unwrap();
            let _ = std::fs::remove_file(out.join("data.mdb"));
            store
                .env()
                .heed()
                .copy_to_path(out.join("data.mdb"), heed::CompactionOption::Enabled)
                .unwrap();
        };
        write("v1-store", &|_| {});
        write("v2-future", &|store| {
            let meta = store.env().create_database(META_DB).unwrap();
            let mut record = MAGIC.to_vec();
            record.extend_from_slice(&2u32.to_le_bytes());
            store
                .env()
                .write(|w| meta.put(w, FORMAT_KEY, &record))
                .unwrap();
        });
        write("v1-bad-tag", &|store| plant(store, b"\x07not a tag", b"x"));
        write("v1-bad-long-entry", &|store| {
            plant(
                store,
                StoredKey::new(&[b'L'; 600]).bytes(),
                b"\xff\xff\xff\xff",
            );
        });
    }

    #[test]
    fn v1_fixture_reads_back_exactly() {
        let (_dir, store) = open_fixture_copy("v1-store");
        let store = store.unwrap();
        let expected: std::collections::BTreeMap<_, _> =
            v1_fixture_contents().into_iter().collect();
        let scanned: std::collections::BTreeMap<_, _> =
            store.scan().unwrap().map(Result::unwrap).collect();
        assert_eq!(scanned, expected);
        for (k, v) in &expected {
            assert_eq!(store.get(k).unwrap().as_ref(), Some(v));
        }
        assert_eq!(store.len().unwrap(), expected.len() as u64);
    }

    #[test]
    fn v2_fixture_requires_an_upgrade() {
        let (_dir, store) = open_fixture_copy("v2-future");
        match store.unwrap_err() {
            Error::UpgradeRequired {
                found, supported, ..
            } => assert_eq!((found, supported), (2, FORMAT_VERSION)),
            other => panic!("expected UpgradeRequired, got {other:?}"),
        }
    }

    #[test]
    fn bad_tag_fixture_is_corrupt_when_iterated() {
        let (_dir, store) = open_fixture_copy("v1-bad-tag");
        let store = store.unwrap();
        let err = store.keys().unwrap().find_map(Result::err).unwrap();
        assert!(err.is_corrupt(), "{err:?}");
    }

    #[test]
    fn bad_long_entry_fixture_is_corrupt_when_read() {
        let (_dir, store) = open_fixture_copy("v1-bad-long-entry");
        let err = store.unwrap().get(&[b'L'; 600]).unwrap_err();
        assert!(err.is_corrupt(), "{err:?}");
    }

    #[test]
    fn iteration_crosses_page_boundaries_and_allows_writes_between_items() {
        let dir = tempfile::tempdir().unwrap();
        let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
        let n = KEYS_PER_PAGE * 2 + 17;
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
            .map(|i| (format!("k{i:05}").into_bytes(), vec![i as u8; 3]))
            .collect();
        let refs: Vec<(&[u8], &[u8])> = entries.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        store.put_many(&refs).unwrap();
        let mut seen = 0;
        for k in store.keys().unwrap() {
            let k = k.unwrap();
            // A write from inside iteration must not deadlock: no transaction is held.
            store.put(&k, b"rewritten").unwrap();
            seen += 1;
        }
        assert_eq!(seen, n);
        assert_eq!(store.scan().unwrap().count(), n);
    }

    #[test]
    fn durability_none_commits_are_visible_and_flush_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let options = small().with_durability(Durability::None);
        let store = LmdbStore::open_with(dir.path(), &options).unwrap();
        let flags = store.env().heed().flags().unwrap().unwrap();
        assert!(flags.contains(heed::EnvFlags::NO_SYNC | heed::EnvFlags::NO_META_SYNC));
        store.put(b"k", b"v").unwrap();
        store.flush().unwrap();
        drop(store);
        let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
        assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }
}
