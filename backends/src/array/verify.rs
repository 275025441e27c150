//! [`Store::verify`](crate::Store::verify) for an [`ArrayStore`]: every entry's header and data
//! checked against their CRCs in one read transaction, each damaged key reported.

use heed::types::Bytes;
use heed::{Database, RoTxn};

use super::layout;
use super::store::{split_long_entry, ArrayStore};
use crate::lmdb::TxnError;
use crate::{Error, Result, VerifyReport};

impl ArrayStore {
    /// Checks every array value: O(total data), at CRC-32 speed. Damaged entries are listed
    /// with their `Corrupt` error, entries of a newer layout with `UpgradeRequired`. A long-key
    /// entry cut inside its key prefix is listed under its LMDB key (the 32-byte BLAKE3 hash
    /// of the key), since the key itself cannot be read back.
    pub(super) fn verify_all(&self) -> Result<VerifyReport> {
        let (direct, long) = (self.inner.direct, self.inner.long);
        self.inner
            .env
            .read(|txn| -> Result<VerifyReport, TxnError> {
                let mut report = VerifyReport::default();
                self.verify_db(txn, direct, &mut report, |stored_key, entry| {
                    Some((stored_key, entry))
                })?;
                self.verify_db(txn, long, &mut report, |_, entry| split_long_entry(entry))?;
                Ok(report)
            })
    }

    fn verify_db<'t>(
        &self,
        txn: &'t RoTxn<'_>,
        db: Database<'static, Bytes, Bytes>,
        report: &mut VerifyReport,
        split: impl Fn(&'t [u8], &'t [u8]) -> Option<(&'t [u8], &'t [u8])>,
    ) -> Result<(), TxnError> {
        for entry in db.iter(txn)? {
            let (stored_key, entry) = entry?;
            report.checked += 1;
            let Some((key, value)) = split(stored_key, entry) else {
                let err = Error::corrupt(
                    self.path(),
                    Some(stored_key),
                    "long-key entry cut inside its key (reported under its key's hash)",
                );
                report.damaged.push((stored_key.to_vec(), err));
                continue;
            };
            // A value claiming a newer layout is listed too, with its `UpgradeRequired`: a
            // flipped version byte looks just like it, and either way this build cannot read it.
            if let Err(refusal) = layout::decode(value, key).and_then(|d| d.check_data()) {
                report
                    .damaged
                    .push((key.to_vec(), self.layout_error(key, refusal)));
            }
        }
        Ok(())
    }
}
