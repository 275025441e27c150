//! [`LmdbStore::upgrade_layout`]: a layout-1 store (values without a checksum) rewritten as
//! layout 2 (a CRC-32 before every value), in one write transaction.

use heed::types::DecodeIgnore;

use super::layout::{Layout, FORMAT_KEY, FORMAT_VERSION};
use super::{LmdbStore, TxnError};
use crate::marker::Kind;
use crate::{Error, Result};

impl LmdbStore {
    /// Rewrites every value of a layout-1 store with a checksum and makes the store layout 2,
    /// so every later read checks its value; returns how many entries were rewritten (0 for a
    /// store already at layout 2, by this handle or another).
    ///
    /// Layout-1 values were written before values carried a checksum: what they hold now is
    /// all there is to go on, so a byte damaged before the upgrade is sealed in as it is.
    /// Run [`Store::verify`](crate::Store::verify) first if that matters: it reports their
    /// framing (a long key's header, a key tag), which the upgrade also checks, refusing a
    /// damaged entry with [`Error::Corrupt`] naming it and changing nothing.
    ///
    /// Everything happens in one write transaction, with the format record: another reader
    /// sees the store either all layout 1 or all layout 2, and a crash leaves it at one of
    /// the two. Handles opened before the upgrade, in this process or others, see the new
    /// layout at their next transaction (a layout-1 handle reads the format record in each).
    /// The transaction holds the new copy of every value page until it commits, so the file
    /// grows by about the store's size while it runs (the old pages are reused afterwards);
    /// the stored keys are held in memory meanwhile (values one at a time).
    ///
    /// ```
    /// use cacher_store::lmdb::LmdbStore;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = LmdbStore::open(dir.path())?;
    /// assert_eq!(store.upgrade_layout()?, 0); // a new store is layout 2 already
    /// assert_eq!(store.layout_version(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn upgrade_layout(&self) -> Result<u64> {
        if self.layout_version() == Layout::V2.version() {
            return Ok(0);
        }
        let rewritten = self.env.write(|wtxn| -> Result<u64, TxnError> {
            if self.layout_in(wtxn)? == Layout::V2 {
                return Ok(0);
            }
            let mut stored_keys = Vec::new();
            for entry in self.data.remap_data_type::<DecodeIgnore>().iter(wtxn)? {
                let (stored, ()) = entry?;
                stored_keys.push(stored.to_vec());
            }
            for stored in &stored_keys {
                let raw = self
                    .data
                    .get(wtxn, stored)?
                    .ok_or_else(|| self.vanished(stored))?;
                let (key, value) = Layout::V1
                    .decode_entry(stored, raw)
                    .map_err(|r| self.refused(Some(&super::pages::reported_key(stored, raw)), r))?;
                let sealed = Layout::V2.encode(key, value);
                self.data.put(wtxn, stored, &sealed)?;
            }
            self.meta.put(wtxn, FORMAT_KEY, &Layout::V2.record())?;
            Ok(stored_keys.len() as u64)
        })?;
        self.upgraded
            .store(true, std::sync::atomic::Ordering::Release);
        crate::marker::rewrite(
            self.env.path(),
            Kind::Lmdb,
            Layout::V2.version(),
            FORMAT_VERSION,
            self.env.options().file_mode,
        )?;
        Ok(rewritten)
    }

    /// The error for an entry iteration found and the lookup then did not, in one write
    /// transaction (a damaged page).
    fn vanished(&self, stored: &[u8]) -> Error {
        Error::corrupt(
            self.env.path(),
            Some(stored),
            "an entry listed by iteration is not found by its key: a damaged page",
        )
    }
}
