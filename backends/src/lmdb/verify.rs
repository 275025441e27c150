//! [`Store::verify`](crate::Store::verify) for `LmdbStore`: every entry decoded and checked,
//! each damaged one reported, and LMDB's own entry count held against what iteration finds.

use heed::types::DecodeIgnore;

use super::layout::{Layout, FORMAT_VERSION};
use super::pages::{reported_key, KEYS_PER_PAGE, SCAN_BYTES_PER_PAGE};
use super::{LmdbStore, TxnError};
use crate::{Error, Result, VerifyReport};

impl LmdbStore {
    /// Checks every entry (in pages of read transactions, like `scan`), then counts the
    /// entries in one read transaction against the count LMDB keeps in the database record.
    /// Entries of a layout-1 store are counted as `unchecked`: their framing is read, but
    /// their values carry no checksum ([`LmdbStore::upgrade_layout`] gives them one).
    ///
    /// A mismatch means a damaged branch or leaf page hides entries from iteration (and their
    /// keys read as missing); it is reported as [`Error::Corrupt`] for the whole store, after
    /// the per-key checks, since no key can be named.
    pub(super) fn verify_entries(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let (mut entries, mut bytes) = (0usize, 0usize);
            let last = self.raw_page(after.as_deref(), &mut |layout, stored, raw| {
                match layout {
                    Layout::V1 => report.unchecked += 1,
                    Layout::V2 => report.checked += 1,
                }
                entries += 1;
                bytes = bytes.saturating_add(stored.len() + raw.len() + 64);
                if let Err(refusal) = layout.decode_entry(stored, raw) {
                    let key = reported_key(stored, raw);
                    let error = refusal.into_error(self.env.path(), Some(&key), FORMAT_VERSION);
                    report.damaged.push((key, error));
                }
                Ok(entries < KEYS_PER_PAGE && bytes < SCAN_BYTES_PER_PAGE)
            })?;
            match last {
                Some(last) => after = Some(last),
                None => break,
            }
        }
        let (recorded, found) = self.env.read(|rtxn| -> Result<_, TxnError> {
            let recorded = self.data.len(rtxn)?;
            let mut found = 0u64;
            let mut last: Option<Vec<u8>> = None;
            for entry in self.data.remap_data_type::<DecodeIgnore>().iter(rtxn)? {
                let (stored, ()) = entry?;
                if last.as_deref().is_some_and(|p| stored <= p) {
                    return Err(self.out_of_order(stored).into());
                }
                last = Some(stored.to_vec());
                found += 1;
            }
            Ok((recorded, found))
        })?;
        if recorded != found {
            return Err(Error::corrupt(
                self.env.path(),
                None,
                format!(
                    "LMDB records {recorded} entries but iteration finds {found}: a damaged \
                     page hides entries, whose keys read as missing ({} damaged entries \
                     found besides)",
                    report.damaged.len()
                ),
            ));
        }
        Ok(report)
    }
}
