//! [`ArrayInfo`] and the metadata of one array or of the whole store.

use super::dtype::DType;
use super::layout;
use super::store::{ArrayStore, INFO_METADATA};
use super::view::parse_json;
use crate::lmdb::TxnError;
use crate::{Error, Result};

/// Dtype, shape and size of a stored array, read without touching its data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArrayInfo {
    /// The element type.
    pub dtype: DType,
    /// The shape, C order (empty for a 0-d array).
    pub shape: Vec<u64>,
    /// Bytes of element data.
    pub nbytes: u64,
}

impl ArrayStore {
    /// Dtype and shape of the array under `key`.
    pub fn info(&self, key: impl AsRef<[u8]>) -> Result<Option<ArrayInfo>> {
        let key = key.as_ref();
        self.with_reader(|r| r.info(key))
    }

    /// The per-key metadata of `key`'s array (`None` if the key or its metadata is missing).
    pub fn metadata(&self, key: impl AsRef<[u8]>) -> Result<Option<serde_json::Value>> {
        let key = key.as_ref();
        self.with_reader(|r| match r.decoded(key)? {
            Some(d) => parse_json(d.meta, self.path(), "array metadata").map_err(|e| match e {
                Error::Corrupt { reason, .. } => self.corrupt(key, reason),
                e => e,
            }),
            None => Ok(None),
        })
    }

    /// front of the data). Returns `false` if the key is missing.
    pub fn set_metadata(
        &self,
        key: impl AsRef<[u8]>,
        metadata: Option<&serde_json::Value>,
    ) -> Result<bool> {
        let key = key.as_ref();
        let meta = metadata
            .map(|m| m.to_string().into_bytes())
            .unwrap_or_default();
        self.inner.env.write(|wtxn| -> Result<bool, TxnError> {
            let Some(value) = self.raw_value(wtxn, key)? else {
                return Ok(false);
            };
            let d = layout::decode(value, key).map_err(|e| self.layout_error(key, e))?;
            // Rewriting seals the data under a fresh CRC: check the old one first, or damaged
            // data would come back looking sound.
            d.check_data().map_err(|e| self.layout_error(key, e))?;
            let header = layout::encode_header(d.dtype, &d.shape, &meta, d.data.len() as u64);
            // The old value lives in pages this write may reuse: copy its data first.
            let data = d.data.to_vec();
            self.put_value(wtxn, key, d.dtype, &header, data.len(), |w| {
                w.write_all(&data)
            })?;
            Ok(true)
        })
    }

    /// The store-wide metadata, if set.
    pub fn store_metadata(&self) -> Result<Option<serde_json::Value>> {
        let info = self.inner.info;
        self.inner.env.read(|txn| -> Result<_, TxnError> {
            Ok(match info.get(txn, INFO_METADATA)? {
                Some(bytes) => parse_json(bytes, self.path(), "store metadata")?,
                None => None,
            })
        })
    }

    /// Sets (or with `None`, removes) the store-wide metadata.
    pub fn set_store_metadata(&self, metadata: Option<&serde_json::Value>) -> Result<()> {
        let info = self.inner.info;
        self.inner.env.write(|wtxn| -> Result<(), TxnError> {
            match metadata {
                Some(m) => info.put(wtxn, INFO_METADATA, m.to_string().as_bytes())?,
                None => {
                    info.delete(wtxn, INFO_METADATA)?;
                }
            }
            Ok(())
        })
    }
}
