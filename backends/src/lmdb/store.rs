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
use std::path::Path;

use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn};

use super::layout::{StoredKey, DATA_DB, FORMAT_KEY, FORMAT_VERSION, LONG_HEADER, MAGIC, META_DB};
use super::pages::{KEYS_PER_PAGE, SCAN_BYTES_PER_PAGE};
use super::{LmdbEnv, LmdbOptions, TxnError};
use crate::{Blob, Durability, EntryMeta, Error, Result, Store};

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
    pub(super) env: LmdbEnv,
    pub(super) data: Database<'static, Bytes, Bytes>,
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
