//! [`NumpyLmdb`]: read and write stores made by the Python `NumpyLmdb` tool.

use std::path::Path;

use heed::types::Bytes;
use heed::Database;

use super::dtype::{DType, Element};
use super::kind;
use super::pyjson::{PyJson, PyJsonError};
use super::view::Rows;
use crate::lmdb::{LmdbEnv, LmdbOptions, TxnError};
use crate::marker::Kind;
use crate::{Error, KeyDisplay, Result};

/// The nested environment holding per-key metadata, a subdirectory of the main one.
const METADATA_DIR: &str = kind::NUMPY_METADATA_DIR;
/// The version in the `cacher-numpy-lmdb.toml` marker: the layout of the Python tool.
const MARKER_VERSION: u32 = 1;

/// A store in the layout of the Python `NumpyLmdb` tool, opened for reading and writing.
///
/// - The directory is an LMDB environment whose default (unnamed) database maps UTF-8 keys to
///   the raw little-endian bytes of a 1-D array of one fixed dtype, chosen at open (the tool's
///   default is `float32`). Nothing records the dtype or shape: the caller must know them, and
///   values read back 1-D.
/// - Per-key metadata lives in a second environment in the subdirectory `metadata.lmdb`,
///   whose default database maps the same keys to UTF-8 JSON (`json.dumps(dict)`); the key
///   [`NumpyLmdb::GLOBAL_KEY`] (`"__global__"`) holds store-wide metadata.
///
/// Reads are copies into a `Vec` ([`NumpyLmdb::get`]) or lent to a closure
/// ([`NumpyLmdb::with_vector`]); raw values carry no header, so a small value inside an LMDB
/// leaf node is usually unaligned and is copied for the closure too.
///
/// ```
/// use cacher_store::array::{DType, NumpyLmdb};
///
/// let dir = tempfile::tempdir()?;
/// let store = NumpyLmdb::open(dir.path(), DType::F32)?;
/// store.put("cat", &[0.5f32, 1.5, 2.5])?;
/// store.set_metadata("cat", &serde_json::json!({"source": "clip"}))?;
/// assert_eq!(store.get::<f32>("cat")?, Some(vec![0.5, 1.5, 2.5]));
/// assert_eq!(store.metadata("cat")?.unwrap()["source"], "clip");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct NumpyLmdb {
    main: LmdbEnv,
    meta: LmdbEnv,
    db: Database<'static, Bytes, Bytes>,
    meta_db: Database<'static, Bytes, Bytes>,
    dtype: DType,
}

impl std::fmt::Debug for NumpyLmdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NumpyLmdb")
            .field("path", &self.main.path())
            .field("dtype", &self.dtype)
            .finish_non_exhaustive()
    }
}

impl NumpyLmdb {
    /// The metadata key holding store-wide metadata.
    pub const GLOBAL_KEY: &'static str = "__global__";

    /// Opens (creating if needed) the store in directory `path`, whose values hold `dtype`
    /// elements. Use `DType::F32` for stores made with the tool's default. A directory holding
    /// another kind of store (an ArrayStore, an LmdbStore, ...) is refused with
    /// [`Error::WrongLayout`] naming both, before anything is written to it; the store marks
    /// its directory with `cacher-numpy-lmdb.toml`, which Python readers ignore.
    pub fn open(path: impl AsRef<Path>, dtype: DType) -> Result<NumpyLmdb> {
        Self::open_with(path, dtype, &LmdbOptions::default())
    }

    /// Like [`NumpyLmdb::open`], with `options` for both environments.
    pub fn open_with(
        path: impl AsRef<Path>,
        dtype: DType,
        options: &LmdbOptions,
    ) -> Result<NumpyLmdb> {
        let path = path.as_ref();
        kind::refuse_before_numpy_open(path, MARKER_VERSION)?;
        let main = LmdbEnv::open(path, options)?;
        let db = main.create_unnamed_database()?;
        kind::refuse_foreign_numpy_contents(&main, db)?;
        let meta = LmdbEnv::open(path.join(METADATA_DIR), options)?;
        let meta_db = meta.create_unnamed_database()?;
        // Python readers ignore the extra file; Python writers never add one.
        kind::ensure_marker(main.path(), Kind::NumpyLmdb, MARKER_VERSION)?;
        Ok(NumpyLmdb {
            main,
            meta,
            db,
            meta_db,
            dtype,
        })
    }

    /// The dtype given at open.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// A stored vector must be a whole number of elements.
    fn check_whole(&self, key: &str, bytes: &[u8]) -> Result<()> {
        if bytes.len().is_multiple_of(self.dtype.size()) {
            return Ok(());
        }
        Err(Error::corrupt(
            self.main.path(),
            Some(key.as_bytes()),
            format!(
                "{} bytes is not a whole number of {}",
                bytes.len(),
                self.dtype
            ),
        ))
    }

    fn check_type<T: Element>(&self, op: &'static str) -> Result<()> {
        if T::DTYPE == self.dtype {
            return Ok(());
        }
        Err(Error::InvalidArgument {
            op,
            path: self.main.path().to_path_buf(),
            reason: format!("the store holds {}, not {}", self.dtype, T::DTYPE),
        })
    }

    fn check_key(&self, key: &str) -> Result<()> {
        let max = self.main.heed().max_key_size();
        if key.is_empty() || key.len() > max {
            return Err(Error::InvalidKey {
                key: KeyDisplay::new(key.as_bytes()),
                reason: format!("NumpyLmdb keys are 1 to {max} bytes of UTF-8"),
            });
        }
        Ok(())
    }

    /// Lends `key`'s vector to `f`, zero-copy when the stored bytes are aligned for `T`.
    /// A value whose length is not a multiple of the dtype size is [`Error::Corrupt`].
    pub fn with_vector<T: Element, R>(
        &self,
        key: &str,
        mut f: impl FnMut(&[T]) -> R,
    ) -> Result<Option<R>> {
        self.check_type::<T>("get")?;
        let db = self.db;
        self.main.read(|txn| -> Result<Option<R>, TxnError> {
            let Some(bytes) = db.get(txn, key.as_bytes())? else {
                return Ok(None);
            };
            self.check_whole(key, bytes)?;
            Ok(Some(match bytemuck::try_cast_slice::<u8, T>(bytes) {
                Ok(slice) => f(slice),
                Err(_) => f(&bytemuck::pod_collect_to_vec::<u8, T>(bytes)),
            }))
        })
    }

    /// Reads many keys' vectors into one contiguous row-major matrix, in one read transaction
    /// (the embeddings of a batch of ids). Missing keys give zero rows listed in
    /// [`Rows::missing`]; vectors of different lengths are an error.
    pub fn get_rows<T: Element, K: AsRef<str>>(&self, keys: &[K]) -> Result<Rows<T>> {
        self.check_type::<T>("get_rows")?;
        let db = self.db;
        let size = self.dtype.size();
        self.main.read(|txn| -> Result<Rows<T>, TxnError> {
            let mut data: Vec<T> = Vec::new();
            let mut cols: Option<usize> = None;
            let mut missing = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                let key = key.as_ref();
                let Some(bytes) = db.get(txn, key.as_bytes())? else {
                    missing.push(i);
                    if let Some(c) = cols {
                        data.resize(data.len() + c, T::zeroed());
                    }
                    continue;
                };
                self.check_whole(key, bytes)?;
                let n = bytes.len() / size;
                match cols {
                    None => {
                        cols = Some(n);
                        data.reserve(keys.len() * n);
                        data.resize(missing.len() * n, T::zeroed());
                    }
                    Some(c) if c != n => {
                        return Err(Error::InvalidArgument {
                            op: "get_rows",
                            path: self.main.path().to_path_buf(),
                            reason: format!("key {key:?} holds {n} elements, earlier ones {c}"),
                        }
                        .into())
                    }
                    Some(_) => {}
                }
                // Raw values have no alignment promise: copy bytewise into the typed rows.
                let start = data.len();
                data.resize(start + n, T::zeroed());
                bytemuck::cast_slice_mut::<T, u8>(&mut data[start..]).copy_from_slice(bytes);
            }
            Ok(Rows {
                data,
                rows: keys.len(),
                cols: cols.unwrap_or(0),
                missing,
            })
        })
    }

    /// `key`'s vector, copied out.
    pub fn get<T: Element>(&self, key: &str) -> Result<Option<Vec<T>>> {
        self.with_vector(key, |v: &[T]| v.to_vec())
    }

    /// Stores `data` under `key` as raw little-endian bytes.
    pub fn put<T: Element>(&self, key: &str, data: &[T]) -> Result<()> {
        self.put_many(&[(key, data)])
    }

    /// Stores many vectors in one transaction.
    pub fn put_many<T: Element>(&self, entries: &[(&str, &[T])]) -> Result<()> {
        self.check_type::<T>("put")?;
        for (k, _) in entries {
            self.check_key(k)?;
        }
        let db = self.db;
        self.main.write(|wtxn| -> Result<(), TxnError> {
            for (k, v) in entries {
                db.put(wtxn, k.as_bytes(), bytemuck::cast_slice(v))?;
            }
            Ok(())
        })
    }

    /// Removes `key`'s vector (its metadata stays, as in the Python tool); returns whether it
    /// was present.
    pub fn delete(&self, key: &str) -> Result<bool> {
        let db = self.db;
        self.main.write(|wtxn| db.delete(wtxn, key.as_bytes()))
    }

    /// Every key of the main database, in LMDB's (byte) order. Bytes that are not UTF-8 are
    /// replaced, as the Python tool ignores them.
    pub fn keys(&self) -> Result<Vec<String>> {
        let db = self.db;
        self.main.read(|txn| -> Result<_, TxnError> {
            let mut out = Vec::new();
            for entry in db.iter(txn)? {
                out.push(String::from_utf8_lossy(entry?.0).into_owned());
            }
            Ok(out)
        })
    }

    /// The number of vectors.
    pub fn len(&self) -> Result<u64> {
        let db = self.db;
        self.main.read(|txn| db.len(txn))
    }

    /// Whether the store holds no vector.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// `key`'s metadata, if set, as a `serde_json::Value`.
    ///
    /// Metadata is parsed as Python's `json` module writes it ([`PyJson`]), so floats come
    /// back exactly. What a `serde_json::Value` cannot hold — `NaN`/`Infinity` (which
    /// `json.dumps` writes for non-finite floats) or an integer outside `i64`/`u64` — is
    /// [`Error::Unsupported`] naming [`NumpyLmdb::metadata_py`], which returns it exactly;
    /// an integer beyond 128 bits is [`Error::Unsupported`] from both. Text that is not JSON
    /// is [`Error::Corrupt`].
    pub fn metadata(&self, key: &str) -> Result<Option<serde_json::Value>> {
        let Some(meta) = self.metadata_py(key)? else {
            return Ok(None);
        };
        meta.to_serde().map(Some).ok_or_else(|| Error::Unsupported {
            op: "NumpyLmdb::metadata",
            path: self.meta.path().to_path_buf(),
            reason: format!(
                "the metadata of key {} holds NaN, Infinity or an integer beyond 64 bits \
                 (as Python's json.dumps writes them), which serde_json::Value cannot hold: \
                 read it with NumpyLmdb::metadata_py",
                KeyDisplay::new(key.as_bytes())
            ),
        })
    }

    /// `key`'s metadata, if set, exactly as Python's `json.loads` would read it: `NaN` and
    /// `Infinity` as floats, integers exact up to 128 bits (a larger one is
    /// [`Error::Unsupported`]). Text that is not JSON is [`Error::Corrupt`].
    ///
    /// ```
    /// use cacher_store::array::{DType, NumpyLmdb, PyJson};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = NumpyLmdb::open(dir.path(), DType::F32)?;
    /// let meta = PyJson::parse(br#"{"loss": NaN, "seed": 18446744073709551616}"#)?;
    /// store.set_metadata_py("run", &meta)?;
    /// assert_eq!(store.metadata_py("run")?.unwrap().to_json(), meta.to_json());
    /// assert!(store.metadata("run").is_err()); // serde_json::Value cannot hold either
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn metadata_py(&self, key: &str) -> Result<Option<PyJson>> {
        let db = self.meta_db;
        let path = self.meta.path();
        self.meta.read(|txn| -> Result<_, TxnError> {
            match db.get(txn, key.as_bytes())? {
                None => Ok(None),
                Some(bytes) => PyJson::parse(bytes).map(Some).map_err(|e| {
                    match e {
                        PyJsonError::Syntax { .. } => Error::corrupt(
                            path,
                            Some(key.as_bytes()),
                            format!("metadata is not JSON: {e}"),
                        ),
                        e => Error::Unsupported {
                            op: "NumpyLmdb::metadata_py",
                            path: path.to_path_buf(),
                            reason: format!(
                                "the metadata of key {}: {e}",
                                KeyDisplay::new(key.as_bytes())
                            ),
                        },
                    }
                    .into()
                }),
            }
        })
    }

    /// Sets (replaces) `key`'s metadata with text Python's `json.loads` reads back as `metadata`
    /// (`NaN`, `Infinity`, big integers included).
    pub fn set_metadata_py(&self, key: &str, metadata: &PyJson) -> Result<()> {
        self.check_key(key)?;
        let db = self.meta_db;
        let bytes = metadata.to_json();
        self.meta
            .write(|wtxn| db.put(wtxn, key.as_bytes(), bytes.as_bytes()))
    }

    /// Sets (replaces) `key`'s metadata. The tool stores keyword arguments, so use an object.
    pub fn set_metadata(&self, key: &str, metadata: &serde_json::Value) -> Result<()> {
        self.check_key(key)?;
        let db = self.meta_db;
        let bytes = metadata.to_string();
        self.meta
            .write(|wtxn| db.put(wtxn, key.as_bytes(), bytes.as_bytes()))
    }

    /// Removes `key`'s metadata; returns whether it was present.
    pub fn delete_metadata(&self, key: &str) -> Result<bool> {
        let db = self.meta_db;
        self.meta.write(|wtxn| db.delete(wtxn, key.as_bytes()))
    }

    /// The store-wide metadata (under [`NumpyLmdb::GLOBAL_KEY`]), if set.
    pub fn global_metadata(&self) -> Result<Option<serde_json::Value>> {
        self.metadata(Self::GLOBAL_KEY)
    }

    /// The store-wide metadata as Python's `json` module reads it (see
    /// [`NumpyLmdb::metadata_py`]).
    pub fn global_metadata_py(&self) -> Result<Option<PyJson>> {
        self.metadata_py(Self::GLOBAL_KEY)
    }

    /// Sets the store-wide metadata.
    pub fn set_global_metadata(&self, metadata: &serde_json::Value) -> Result<()> {
        self.set_metadata(Self::GLOBAL_KEY, metadata)
    }

    /// Makes every write durable (LMDB already syncs at each commit).
    pub fn sync(&self) -> Result<()> {
        self.main.sync()?;
        self.meta.sync()
    }
}
