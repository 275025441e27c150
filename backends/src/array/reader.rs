//! [`ArrayReader`]: typed reads inside one LMDB read transaction.

use std::borrow::Cow;
use std::sync::atomic::Ordering;

use heed::{RoTxn, WithoutTls};

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
pub struct ArrayReader<'t> {
    pub(super) store: &'t ArrayStore,
    pub(super) txn: &'t RoTxn<'t, WithoutTls>,
}

impl<'t> ArrayReader<'t> {
    pub(super) fn decoded(&self, key: &[u8]) -> Result<Option<layout::Decoded<'t>>> {
        let value = self.store.raw_value(self.txn, key).map_err(|e| match e {
            TxnError::Store(e) => e,
            TxnError::Heed(e) => self.store.inner.env.map_heed_error(e),
        })?;
        match value {
            None => Ok(None),
            Some(v) => layout::decode(v)
                .map(Some)
                .map_err(|e| self.store.layout_error(key, e)),
        }
    }

    /// The array under `key` as `T` elements, lent from the map when its data is aligned for
    /// `T` (else copied, and counted in [`ArrayStore::stats`]). Asking for a type other than
    /// the stored dtype is [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    pub fn view<T: Element>(&self, key: impl AsRef<[u8]>) -> Result<Option<ArrayView<'t, T>>> {
        let key = key.as_ref();
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

    /// Dtype and shape of the array under `key`.
    pub fn info(&self, key: impl AsRef<[u8]>) -> Result<Option<ArrayInfo>> {
        Ok(self.decoded(key.as_ref())?.map(|d| ArrayInfo {
            dtype: d.dtype,
            shape: d.shape,
            nbytes: d.data.len() as u64,
        }))
    }

    /// The raw little-endian element bytes of the array under `key`, whatever its dtype.
    pub fn bytes(&self, key: impl AsRef<[u8]>) -> Result<Option<&'t [u8]>> {
        Ok(self.decoded(key.as_ref())?.map(|d| d.data))
    }
}
