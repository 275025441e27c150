//! A NumpyLmdb (the Python tool's layout) seen as a byte store, so every command can list,
//! size, remove and dump its vectors. Nothing records a vector's dtype, so the bytes are
//! opened as `u8` elements and shown as they are stored.

use std::path::Path;

use cacher::store::array::{DType, NumpyLmdb};
use cacher::store::{Blob, Error, KeyIter, Result, Store};

/// A NumpyLmdb opened with dtype `u8`: any vector's bytes are a whole number of those.
pub struct NumpyBytes {
    inner: NumpyLmdb,
    path: std::path::PathBuf,
}

impl NumpyBytes {
    /// Opens the NumpyLmdb at `path` (the library writes its marker, which Python ignores).
    pub fn open(path: &Path) -> Result<NumpyBytes> {
        Ok(NumpyBytes {
            inner: NumpyLmdb::open(path, DType::U8)?,
            path: path.to_path_buf(),
        })
    }

    /// NumpyLmdb keys are text, as in Python.
    fn text<'k>(&self, key: &'k [u8]) -> Result<&'k str> {
        std::str::from_utf8(key).map_err(|_| Error::InvalidArgument {
            op: "using a key",
            path: self.path.clone(),
            reason: "a NumpyLmdb key is UTF-8 text".into(),
        })
    }
}

impl Store for NumpyBytes {
    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        Ok(self.inner.get::<u8>(self.text(key)?)?.map(Blob::from))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.inner.put::<u8>(self.text(key)?, value)
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        self.inner.delete(self.text(key)?)
    }

    fn keys(&self) -> Result<KeyIter<'_>> {
        let keys = self.inner.keys()?;
        Ok(Box::new(keys.into_iter().map(|k| Ok(k.into_bytes()))))
    }

    fn flush(&self) -> Result<()> {
        self.inner.sync()
    }
}
