//! [`ArrayReader`]: typed reads inside one LMDB read transaction.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use heed::RoTxn;

use super::dtype::Element;
use super::info::ArrayInfo;
use super::layout;
use super::store::ArrayStore;
use super::view::ArrayView;
use crate::lmdb::TxnError;
use crate::Result;

impl ArrayStore {
    /// Runs `f` with a reader over one read transaction: every array it returns borrows from
    /// that transaction, which ends when `f` returns. Do not call other store methods inside
    /// `f`. `f` may run again if LMDB asks for a retry.
    pub fn with_reader<R>(&self, mut f: impl FnMut(&ArrayReader<'_>) -> Result<R>) -> Result<R> {
        self.inner.env.read(|txn| -> Result<R, TxnError> {
            let reader = ArrayReader { store: self, txn };
            Ok(f(&reader)?)
        })
    }
}

/// Reads arrays inside one read transaction of an [`ArrayStore`]; see [`ArrayStore::with_reader`].
///
/// Every read checks the value's header CRC (dtype, shape, metadata, lengths: O(header)). The
/// element data has its own CRC, which [`view`](ArrayReader::view) and
/// [`bytes`](ArrayReader::bytes) check before lending the data: one pass over it, at
/// CRC-32 speed (crc32fast, 4 to 25 GB/s measured; see `benches/arrays.rs`), so a 64 MiB
/// array costs 3 to 15 ms where the unchecked view costs under 1 µs.
/// [`view_unchecked`](ArrayReader::view_unchecked) and
/// [`bytes_unchecked`](ArrayReader::bytes_unchecked) skip that pass: a damaged byte in the
/// data comes back as a wrong element. Use them where the data is checked some other way
/// (e.g. by [`Store::verify`](crate::Store::verify) after a crash) or a wrong element is
/// harmless. Values written before layout version 2 carry no data CRC and are lent as they
/// are by every path.
pub struct ArrayReader<'t> {
    pub(super) store: &'t ArrayStore,
    pub(super) txn: &'t RoTxn<'t>,
}

/// Whether a read checks the element data against its CRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataCheck {
    /// One pass over the data before it is lent.
    Checked,
    /// The header only; the data is lent as it is.
    Unchecked,
}

impl<'t> ArrayReader<'t> {
    /// The decoded value under `key`, its header checked (not its data).
    pub(super) fn decoded(&self, key: &[u8]) -> Result<Option<layout::Decoded<'t>>> {
        let value = self.store.raw_value(self.txn, key).map_err(|e| match e {
            TxnError::Store(e) => e,
            TxnError::Heed(e) => self.store.inner.env.map_heed_error(e),
        })?;
        match value {
            None => Ok(None),
            Some(v) => layout::decode(v, key)
                .map(Some)
                .map_err(|e| self.store.layout_error(key, e)),
        }
    }

    /// The decoded value under `key`, its data checked too.
    pub(super) fn decoded_checked(&self, key: &[u8]) -> Result<Option<layout::Decoded<'t>>> {
        let Some(d) = self.decoded(key)? else {
            return Ok(None);
        };
        d.check_data()
            .map_err(|e| self.store.layout_error(key, e))?;
        Ok(Some(d))
    }

    /// The array under `key` as `T` elements, its data checked against its CRC first (one
    /// pass over it; see the [type docs](ArrayReader)). Lent from the map when the data is
    /// aligned for `T` (else copied, and counted in [`ArrayStore::stats`]). Asking for a type
    /// other than the stored dtype is [`Error::InvalidArgument`](crate::Error::InvalidArgument);
    /// damaged data is [`Error::Corrupt`](crate::Error::Corrupt).
    pub fn view<T: Element>(&self, key: impl AsRef<[u8]>) -> Result<Option<ArrayView<'t, T>>> {
        self.typed(key.as_ref(), DataCheck::Checked)
    }

    /// Like [`view`](ArrayReader::view) without the pass over the data: O(header) whatever the
    /// array's size, but **a damaged element comes back as a wrong value**. The header (dtype,
    /// shape, metadata) is still checked.
    pub fn view_unchecked<T: Element>(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<ArrayView<'t, T>>> {
        self.typed(key.as_ref(), DataCheck::Unchecked)
    }

    fn typed<T: Element>(&self, key: &[u8], check: DataCheck) -> Result<Option<ArrayView<'t, T>>> {
        let Some(d) = self.decoded(key)? else {
            return Ok(None);
        };
        if d.dtype != T::DTYPE {
            return Err(self.store.invalid(
                "view",
                format!(
                    "key {} holds a {} array, not {}",
                    crate::KeyDisplay::new(key),
                    d.dtype,
                    T::DTYPE
                ),
            ));
        }
        if check == DataCheck::Checked {
            d.check_data()
                .map_err(|e| self.store.layout_error(key, e))?;
        }
        let inner = &self.store.inner;
        let data = match bytemuck::try_cast_slice::<u8, T>(d.data) {
            Ok(slice) => {
                inner.zero_copy_reads.fetch_add(1, Ordering::Relaxed);
                Cow::Borrowed(slice)
            }
            Err(_) => {
                inner.copied_reads.fetch_add(1, Ordering::Relaxed);
                Cow::Owned(bytemuck::pod_collect_to_vec(d.data))
            }
        };
        Ok(Some(ArrayView {
            data,
            shape: d.shape,
            metadata: d.meta,
            path: self.store.path(),
        }))
    }

    /// Dtype and shape of the array under `key` (its header checked; the data not read).
    pub fn info(&self, key: impl AsRef<[u8]>) -> Result<Option<ArrayInfo>> {
        Ok(self.decoded(key.as_ref())?.map(|d| ArrayInfo {
            dtype: d.dtype,
            shape: d.shape,
            nbytes: d.data.len() as u64,
        }))
    }

    /// The raw little-endian element bytes of the array under `key`, whatever its dtype,
    /// checked against their CRC first (one pass).
    pub fn bytes(&self, key: impl AsRef<[u8]>) -> Result<Option<&'t [u8]>> {
        Ok(self.decoded_checked(key.as_ref())?.map(|d| d.data))
    }

    /// Like [`bytes`](ArrayReader::bytes) without the pass over the data: **a damaged byte
    /// comes back as it is**.
    pub fn bytes_unchecked(&self, key: impl AsRef<[u8]>) -> Result<Option<&'t [u8]>> {
        Ok(self.decoded(key.as_ref())?.map(|d| d.data))
    }
}
