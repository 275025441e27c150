//! The stored bytes of one entry exactly as LMDB holds them, for tools that move damaged
//! entries aside (`cacher verify --quarantine`): the caller needs the bytes the store wrote,
//! framing and checksum included, without knowing how a key becomes an LMDB key.

use super::error::TxnError;
use super::layout::StoredKey;
use super::store::LmdbStore;
use crate::Result;

impl LmdbStore {
    /// The raw LMDB value stored for `key`: this store's framing (checksum field, a long
    /// key's header) followed by the value, **unchecked**; `None` when the key has no entry.
    ///
    /// For tools that keep a copy of a damaged entry; a reader wants [`crate::Store::get`].
    ///
    /// ```
    /// use cacher_store::{LmdbStore, Store};
    /// let dir = tempfile::tempdir()?;
    /// let store = LmdbStore::open(dir.path())?;
    /// store.put(b"k", b"value")?;
    /// let raw = store.raw_value(b"k")?.expect("stored");
    /// assert!(raw.ends_with(b"value") && raw.len() > 5);
    /// assert!(store.raw_value(b"other")?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn raw_value(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let db = self.raw_database();
        let stored = StoredKey::new(key);
        self.env().read(|txn| {
            db.get(txn, stored.bytes())
                .map(|v| v.map(<[u8]>::to_vec))
                .map_err(TxnError::from)
        })
    }
}
