//! Writing, listing and deleting arrays, and the typed whole-array reads built on
//! [`ArrayReader`](super::ArrayReader).

use super::dtype::Element;
use super::layout::{self, MAX_NDIM};
use super::store::{split_long_entry, ArrayStore};
use super::view::{ArrayView, Rows};
use crate::lmdb::TxnError;
use crate::{Error, Result};

impl ArrayStore {
    fn check_shape(&self, key: &[u8], shape: &[u64], len: usize) -> Result<()> {
        if shape.len() > MAX_NDIM {
            return Err(self.invalid(
                "put_array",
                format!("{} dimensions exceed the {MAX_NDIM} allowed", shape.len()),
            ));
        }
        if layout::element_count(shape) != Some(len as u64) {
            return Err(self.invalid(
                "put_array",
                format!(
                    "shape {shape:?} does not hold the {len} elements given for key {}",
                    crate::KeyDisplay::new(key)
                ),
            ));
        }
        Ok(())
    }

    /// Stores `data` (C order) with `shape` under `key`, replacing any array there.
    /// `shape` must hold exactly `data.len()` elements; `&[]` stores a 0-d array of one element.
    pub fn put_array<T: Element>(
        &self,
        key: impl AsRef<[u8]>,
        data: &[T],
        shape: &[u64],
    ) -> Result<()> {
        self.put_array_with_metadata(key, data, shape, None)
    }

    /// Like [`ArrayStore::put_array`], with per-key JSON metadata stored in the same value.
    pub fn put_array_with_metadata<T: Element>(
        &self,
        key: impl AsRef<[u8]>,
        data: &[T],
        shape: &[u64],
        metadata: Option<&serde_json::Value>,
    ) -> Result<()> {
        let key = key.as_ref();
        self.check_shape(key, shape, data.len())?;
        let meta = metadata
            .map(|m| m.to_string().into_bytes())
            .unwrap_or_default();
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let header = layout::encode_header(T::DTYPE, shape, &meta, bytes.len() as u64);
        self.inner.env.write(|wtxn| {
            self.put_value(wtxn, key, T::DTYPE, &header, bytes.len(), |w| {
                w.write_all(bytes)
            })
        })
    }

    /// Stores many arrays `(key, data, shape)` in one transaction (e.g. a batch of
    /// embeddings); later entries win over earlier ones with the same key.
    pub fn put_arrays<T: Element, K: AsRef<[u8]>>(
        &self,
        entries: &[(K, &[T], &[u64])],
    ) -> Result<()> {
        let mut headers = Vec::with_capacity(entries.len());
        for (key, data, shape) in entries {
            self.check_shape(key.as_ref(), shape, data.len())?;
            let len = std::mem::size_of_val(*data) as u64;
            headers.push(layout::encode_header(T::DTYPE, shape, &[], len));
        }
        self.inner.env.write(|wtxn| -> Result<(), TxnError> {
            for ((key, data, _), header) in entries.iter().zip(&headers) {
                let bytes: &[u8] = bytemuck::cast_slice(data);
                self.put_value(wtxn, key.as_ref(), T::DTYPE, header, bytes.len(), |w| {
                    w.write_all(bytes)
                })?;
            }
            Ok(())
        })
    }

    /// The array under `key` copied out, with its shape.
    pub fn get_owned<T: Element>(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<(Vec<T>, Vec<u64>)>> {
        let key = key.as_ref();
        self.with_reader(|r| Ok(r.view::<T>(key)?.map(ArrayView::into_owned)))
    }

    /// Removes `key`'s array; returns whether it was present.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        self.inner.env.write(|wtxn| self.delete_in(wtxn, key))
    }

    /// Every key, in no promised order (what [`Store::keys`](crate::Store::keys) iterates).
    pub(super) fn all_keys(&self) -> Result<Vec<Vec<u8>>> {
        let (direct, long) = (self.inner.direct, self.inner.long);
        self.inner.env.read(|txn| -> Result<_, TxnError> {
            let mut out = Vec::new();
            for entry in direct.iter(txn)? {
                out.push(entry?.0.to_vec());
            }
            for entry in long.iter(txn)? {
                let (_, v) = entry?;
                match split_long_entry(v) {
                    Some((k, _)) => out.push(k.to_vec()),
                    None => {
                        return Err(Error::corrupt(
                            self.path(),
                            None,
                            "long-key entry cut inside its key",
                        )
                        .into())
                    }
                }
            }
            Ok(out)
        })
    }

    /// The number of arrays.
    pub fn len(&self) -> Result<u64> {
        let (direct, long) = (self.inner.direct, self.inner.long);
        self.inner
            .env
            .read(|txn| -> Result<_, TxnError> { Ok(direct.len(txn)? + long.len(txn)?) })
    }

    /// Whether the store holds no array.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Reads many keys' 1-D vectors (all of dtype `T` and one length) into one contiguous
    /// row-major matrix, in one read transaction — e.g. the embeddings of a batch of ids.
    /// Missing keys give zero rows listed in [`Rows::missing`]; a vector of another dtype or
    /// length, or an array that is not 1-D, is an error.
    pub fn get_rows<T: Element, K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Rows<T>> {
        self.with_reader(|r| {
            let mut data: Vec<T> = Vec::new();
            let mut cols = None;
            let mut missing = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                let key = key.as_ref();
                let Some(view) = r.view::<T>(key)? else {
                    missing.push(i);
                    if let Some(c) = cols {
                        data.resize(data.len() + c, T::zeroed());
                    }
                    continue;
                };
                if view.shape().len() != 1 {
                    return Err(self.invalid(
                        "get_rows",
                        format!(
                            "key {} holds an array of shape {:?}, not a vector",
                            crate::KeyDisplay::new(key),
                            view.shape()
                        ),
                    ));
                }
                match cols {
                    None => {
                        // Rows missing before the first present one get their zeros now.
                        cols = Some(view.len());
                        data.reserve(keys.len() * view.len());
                        data.resize(missing.len() * view.len(), T::zeroed());
                    }
                    Some(c) if c != view.len() => {
                        return Err(self.invalid(
                            "get_rows",
                            format!(
                                "key {} holds a vector of length {}, earlier ones {c}",
                                crate::KeyDisplay::new(key),
                                view.len()
                            ),
                        ))
                    }
                    Some(_) => {}
                }
                data.extend_from_slice(&view);
            }
            Ok(Rows {
                data,
                rows: keys.len(),
                cols: cols.unwrap_or(0),
                missing,
            })
        })
    }
}
