//! An [`ArrayStore`] through the byte-level [`Store`] trait: values are 1-D `u8` arrays.

use super::dtype::DType;
use super::layout;
use super::store::ArrayStore;
use crate::lmdb::TxnError;
use crate::{Blob, EntryMeta, Result, Store, VerifyReport};

impl Store for ArrayStore {
    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        // A `Blob` cannot borrow a read transaction: copy. `with_value` lends instead.
        let bytes = self.with_reader(|r| Ok(r.bytes(key)?.map(<[u8]>::to_vec)))?;
        Ok(bytes.map(Blob::from))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.put_array(key, value, &[value.len() as u64])
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        ArrayStore::delete(self, key)
    }

    fn keys(&self) -> Result<Box<dyn Iterator<Item = Result<Vec<u8>>> + '_>> {
        Ok(Box::new(self.all_keys()?.into_iter().map(Ok)))
    }

    fn flush(&self) -> Result<()> {
        // Every commit is synced (Durability::Flush); this also covers a future no-sync mode.
        self.inner.env.sync()
    }

    fn with_value(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        self.with_reader(|r| {
            Ok(match r.bytes(key)? {
                Some(b) => {
                    f(b);
                    true
                }
                None => false,
            })
        })
    }

    fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.info(key)?.is_some())
    }

    fn meta(&self, key: &[u8]) -> Result<Option<EntryMeta>> {
        Ok(self.info(key)?.map(|i| EntryMeta::new(i.nbytes)))
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        self.with_reader(|r| {
            keys.iter()
                .map(|k| Ok(r.bytes(k)?.map(<[u8]>::to_vec)))
                .collect()
        })
    }

    fn put_many(&self, entries: &[(&[u8], &[u8])]) -> Result<()> {
        let headers: Vec<Vec<u8>> = entries
            .iter()
            .map(|(_, v)| layout::encode_header(DType::U8, &[v.len() as u64], &[], v.len() as u64))
            .collect();
        self.inner.env.write(|wtxn| -> Result<(), TxnError> {
            for ((k, v), h) in entries.iter().zip(&headers) {
                self.put_value(wtxn, k, DType::U8, h, v.len(), |w| w.write_all(v))?;
            }
            Ok(())
        })
    }

    fn len(&self) -> Result<u64> {
        ArrayStore::len(self)
    }

    fn read_unchecked(&self, key: &[u8]) -> Result<Option<Blob>> {
        let bytes = self.with_reader(|r| Ok(r.bytes_unchecked(key)?.map(<[u8]>::to_vec)))?;
        Ok(bytes.map(Blob::from))
    }

    fn verify(&self) -> Result<VerifyReport> {
        self.verify_all()
    }
}

#[cfg(test)]
mod conformance {
    use super::ArrayStore;

    crate::conformance_tests!(
        |dir: &std::path::Path| ArrayStore::open(dir).expect("open ArrayStore"),
        persistent = true
    );
}
