//! [`ArrayStore`]: typed numpy-style arrays in LMDB, read as `&[T]` straight from the map.

use std::borrow::Cow;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn, WithoutTls};

use super::dtype::{DType, Element};
use super::layout::{self, LayoutError, MAX_NDIM};
use super::npy::{self, NpyError, NpyHeader};
use crate::lmdb::{LmdbEnv, LmdbOptions, TxnError};
use crate::{Blob, EntryMeta, Error, Result, Store};

/// Arrays under keys of 1 to `max_key_size` (511) bytes, keyed by the key itself.
const DIRECT_DB: &str = "cacher-arrays";
/// Arrays under empty or longer keys, keyed by the key's BLAKE3 hash; the value starts with
/// the full key (see [`long_prefix_len`]) so a hash collision can never return the wrong array.
const LONG_DB: &str = "cacher-arrays-long-keys";
/// Store-wide facts: [`INFO_VERSION`] and [`INFO_METADATA`].
const INFO_DB: &str = "cacher-arrays-info";
const INFO_VERSION: &[u8] = b"format-version";
const INFO_METADATA: &[u8] = b"metadata";
/// The store's format version (the database names and key routing above); each value has its
/// own version too (see the `layout` module).
const STORE_VERSION: u32 = 1;

/// Bytes before the array value in a long-key entry:
/// `key length (u64 LE) | key | zero padding to a multiple of 16`, so the array value starts
/// as aligned as the entry does.
fn long_prefix_len(key_len: usize) -> usize {
    (8 + key_len).next_multiple_of(layout::DATA_ALIGN)
}

/// How many typed reads lent the stored bytes and how many had to copy them because the value
/// was not aligned for its dtype (see the [module docs](super)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ArrayStats {
    /// Reads that returned a view of the mapped pages.
    pub zero_copy_reads: u64,
    /// Reads that copied into an aligned buffer.
    pub copied_reads: u64,
}

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

/// A typed array read from an [`ArrayStore`]: the elements (lent from the map when aligned,
/// see [`ArrayView::is_zero_copy`]), the shape, and the raw per-key metadata.
#[derive(Debug, Clone)]
pub struct ArrayView<'t, T: Element> {
    data: Cow<'t, [T]>,
    shape: Vec<u64>,
    metadata: &'t [u8],
}

impl<'t, T: Element> ArrayView<'t, T> {
    /// The elements in C order.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// The shape (empty for a 0-d array, which holds one element).
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// True when the elements are borrowed from LMDB's map rather than copied.
    pub fn is_zero_copy(&self) -> bool {
        matches!(self.data, Cow::Borrowed(_))
    }

    /// The per-key JSON metadata, if any was stored.
    pub fn metadata(&self) -> Result<Option<serde_json::Value>> {
        parse_json(self.metadata)
    }

    /// The elements as an owned `Vec` and the shape.
    pub fn into_owned(self) -> (Vec<T>, Vec<u64>) {
        (self.data.into_owned(), self.shape)
    }
}

impl<T: Element> std::ops::Deref for ArrayView<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.data
    }
}

/// Rows gathered by [`ArrayStore::get_rows`]: one 1-D vector per requested key, stacked into a
/// contiguous row-major matrix.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Rows<T> {
    /// `rows * cols` elements, row `i` for the `i`-th requested key.
    pub data: Vec<T>,
    /// Number of rows (= keys requested).
    pub rows: usize,
    /// Length of every vector.
    pub cols: usize,
    /// Indexes of keys that were missing; their rows are zeros.
    pub missing: Vec<usize>,
}

fn parse_json(bytes: &[u8]) -> Result<Option<serde_json::Value>> {
    if bytes.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(bytes).map(Some).map_err(|e| {
        Error::corrupt(
            "<array metadata>",
            None,
            format!("metadata is not JSON: {e}"),
        )
    })
}

/// A store of numpy-style typed arrays in an LMDB environment.
///
/// Each key holds one array: a [`DType`], a shape (C order) and little-endian elements laid out
/// so [`ArrayReader::get`] can lend them as `&[T]` straight from LMDB's map, plus optional JSON
/// metadata per key and for the whole store. Arrays come from slices or `.npy` files and export
/// to `.npy` files that `numpy.load` reads. Clones share one environment.
///
/// Through the byte-level [`Store`] trait an `ArrayStore` is a byte store: `put` stores the
/// bytes as a 1-D `u8` array, and `get` returns an array's raw element bytes (for a `u8`
/// array, exactly what was put; for other dtypes the little-endian elements, without dtype or
/// shape — use the typed API for those). This is what lets it run the conformance kit.
///
/// Durability: [`Durability::Flush`](crate::Durability::Flush) — LMDB syncs at every commit.
///
/// ```
/// use cacher_store::array::ArrayStore;
///
/// let dir = tempfile::tempdir()?;
/// let store = ArrayStore::open(dir.path())?;
/// let embedding: Vec<f32> = (0..1024).map(|i| i as f32).collect();
/// store.put("doc-1", &embedding, &[1024])?;
/// let first = store.read(|r| {
///     let view = r.get::<f32>("doc-1")?.expect("present");
///     assert_eq!(view.shape(), &[1024]);
///     assert!(view.is_zero_copy()); // a 4 KiB array sits on LMDB overflow pages: aligned
///     Ok(view[0] + view[1023])
/// })?;
/// assert_eq!(first, 1023.0);
/// // Asking for the wrong type is an error, not a panic.
/// assert!(store.get_owned::<u8>("doc-1").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ArrayStore {
    inner: Arc<Inner>,
}

struct Inner {
    env: LmdbEnv,
    direct: Database<'static, Bytes, Bytes>,
    long: Database<'static, Bytes, Bytes>,
    info: Database<'static, Bytes, Bytes>,
    max_key: usize,
    /// LMDB's `me_nodemax` for this page size: a leaf node (8-byte header + key + value)
    /// larger than this sends the value to overflow pages.
    node_max: usize,
    /// Pad small values so they land on overflow pages (see `set_align_small_arrays`).
    align_small: AtomicBool,
    zero_copy_reads: AtomicU64,
    copied_reads: AtomicU64,
}

impl std::fmt::Debug for ArrayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrayStore")
            .field("path", &self.path())
            .finish_non_exhaustive()
    }
}

/// Where a key's entry lives.
enum Slot<'k> {
    Direct(&'k [u8]),
    Long([u8; 32]),
}

impl ArrayStore {
    /// Opens (creating if needed) the array store in environment directory `path`, with
    /// [`LmdbOptions::default`] (the map starts at 64 MiB and grows by itself).
    pub fn open(path: impl AsRef<Path>) -> Result<ArrayStore> {
        Self::open_with(path, &LmdbOptions::default())
    }

    /// Opens the array store in `path` with `options` (map size, cap, durability). As with
    /// every [`LmdbEnv`], a second open of one directory in a process shares the first's
    /// environment and options.
    pub fn open_with(path: impl AsRef<Path>, options: &LmdbOptions) -> Result<ArrayStore> {
        let env = LmdbEnv::open(path.as_ref(), options)?;
        let direct = env.create_database(DIRECT_DB)?;
        let long = env.create_database(LONG_DB)?;
        let info = env.create_database(INFO_DB)?;
        let max_key = env.heed().max_key_size();
        let page_size = env.read(|txn| direct.stat(txn))?.page_size as usize;
        // mdb.c: me_nodemax = (((psize - PAGEHDRSZ) / MDB_MINKEYS) & -2) - sizeof(indx_t).
        let node_max = (((page_size - 16) / 2) & !1) - 2;
        let store = ArrayStore {
            inner: Arc::new(Inner {
                env,
                direct,
                long,
                info,
                max_key,
                node_max,
                align_small: AtomicBool::new(false),
                zero_copy_reads: AtomicU64::new(0),
                copied_reads: AtomicU64::new(0),
            }),
        };
        store.check_version()?;
        Ok(store)
    }

    fn check_version(&self) -> Result<()> {
        let path = self.path().to_path_buf();
        let info = self.inner.info;
        self.inner.env.write(|wtxn| -> Result<(), TxnError> {
            match info.get(wtxn, INFO_VERSION)? {
                None => info.put(wtxn, INFO_VERSION, &STORE_VERSION.to_le_bytes())?,
                Some(v) => {
                    let v: [u8; 4] = v.try_into().map_err(|_| {
                        Error::corrupt(&path, None, "array store version record is not 4 bytes")
                    })?;
                    let found = u32::from_le_bytes(v);
                    if found > STORE_VERSION {
                        return Err(Error::UpgradeRequired {
                            path: path.clone(),
                            found,
                            supported: STORE_VERSION,
                        }
                        .into());
                    }
                    if found == 0 {
                        return Err(Error::corrupt(&path, None, "array store version 0").into());
                    }
                }
            }
            Ok(())
        })
    }

    /// The environment directory.
    pub fn path(&self) -> &Path {
        self.inner.env.path()
    }

    /// With `true`, later writes pad every array value too small for an LMDB overflow page
    /// (about 2 KiB with 4 KiB pages) with trailing zeros until LMDB must put it on one, so
    /// every typed read of it is zero-copy; the price is a whole page per small array. Arrays
    /// of 1-byte dtypes are never padded (they need no alignment). Off by default; shared by
    /// clones of this handle, not stored on disk.
    pub fn set_align_small_arrays(&self, on: bool) {
        self.inner.align_small.store(on, Ordering::Relaxed);
    }

    /// Counts of zero-copy and copied typed reads since this store was opened.
    pub fn stats(&self) -> ArrayStats {
        ArrayStats {
            zero_copy_reads: self.inner.zero_copy_reads.load(Ordering::Relaxed),
            copied_reads: self.inner.copied_reads.load(Ordering::Relaxed),
        }
    }

    fn slot<'k>(&self, key: &'k [u8]) -> Slot<'k> {
        if !key.is_empty() && key.len() <= self.inner.max_key {
            Slot::Direct(key)
        } else {
            Slot::Long(*blake3::hash(key).as_bytes())
        }
    }

    fn corrupt(&self, key: &[u8], reason: impl Into<String>) -> Error {
        Error::corrupt(self.path(), Some(key), reason)
    }

    fn layout_error(&self, key: &[u8], e: LayoutError) -> Error {
        match e {
            LayoutError::Corrupt(reason) => self.corrupt(key, reason),
            LayoutError::Newer(found) => Error::UpgradeRequired {
                path: self.path().to_path_buf(),
                found: found.into(),
                supported: layout::VERSION.into(),
            },
        }
    }

    /// The whole array value stored under `key` (header and data), lent from the map.
    fn raw_value<'t>(
        &self,
        txn: &'t RoTxn<'_, WithoutTls>,
        key: &[u8],
    ) -> Result<Option<&'t [u8]>, TxnError> {
        match self.slot(key) {
            Slot::Direct(k) => Ok(self.inner.direct.get(txn, k)?),
            Slot::Long(hash) => {
                let Some(entry) = self.inner.long.get(txn, &hash)? else {
                    return Ok(None);
                };
                let stored_len = entry
                    .get(..8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .ok_or_else(|| self.corrupt(key, "long-key entry shorter than its prefix"))?;
                if stored_len != key.len() as u64 {
                    return Ok(None); // another key with the same hash
                }
                let prefix = long_prefix_len(key.len());
                if entry.len() < prefix {
                    return Err(self
                        .corrupt(key, "long-key entry cut inside its key")
                        .into());
                }
                if &entry[8..8 + key.len()] != key {
                    return Ok(None);
                }
                Ok(Some(&entry[prefix..]))
            }
        }
    }

    /// Writes an array value of `value_len` bytes holding `dtype` elements under `key`;
    /// `fill` writes the value bytes.
    fn put_value(
        &self,
        wtxn: &mut RwTxn<'_>,
        key: &[u8],
        dtype: DType,
        value_len: usize,
        fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), TxnError> {
        let pad = self.inner.align_small.load(Ordering::Relaxed) && dtype.size() > 1;
        // The smallest entry whose leaf node exceeds `node_max`, i.e. that goes to overflow.
        let padded = |stored_key_len: usize, len: usize| {
            let min = (self.inner.node_max + 1).saturating_sub(8 + stored_key_len);
            if pad {
                len.max(min)
            } else {
                len
            }
        };
        match self.slot(key) {
            Slot::Direct(k) => {
                let len = padded(k.len(), value_len);
                self.inner.direct.put_reserved(wtxn, k, len, |space| {
                    fill(space)?;
                    space.fill_zeroes();
                    Ok(())
                })?
            }
            Slot::Long(hash) => {
                let prefix = long_prefix_len(key.len());
                let len = padded(hash.len(), prefix + value_len);
                self.inner.long.put_reserved(wtxn, &hash, len, |space| {
                    space.write_all(&(key.len() as u64).to_le_bytes())?;
                    space.write_all(key)?;
                    space.write_all(&vec![0; prefix - 8 - key.len()])?;
                    fill(space)?;
                    space.fill_zeroes();
                    Ok(())
                })?
            }
        }
        Ok(())
    }

    fn delete_in(&self, wtxn: &mut RwTxn<'_>, key: &[u8]) -> Result<bool, TxnError> {
        if self.raw_value(wtxn, key)?.is_none() {
            return Ok(false);
        }
        Ok(match self.slot(key) {
            Slot::Direct(k) => self.inner.direct.delete(wtxn, k)?,
            Slot::Long(hash) => self.inner.long.delete(wtxn, &hash)?,
        })
    }

    fn check_shape(&self, key: &[u8], shape: &[u64], len: usize) -> Result<()> {
        if shape.len() > MAX_NDIM {
            return Err(self.unsupported(
                "put",
                format!("{} dimensions exceed the {MAX_NDIM} allowed", shape.len()),
            ));
        }
        if layout::element_count(shape) != Some(len as u64) {
            return Err(self.unsupported(
                "put",
                format!(
                    "shape {shape:?} does not hold the {len} elements given for key {}",
                    crate::KeyDisplay::new(key)
                ),
            ));
        }
        Ok(())
    }

    fn unsupported(&self, op: &'static str, reason: String) -> Error {
        Error::Unsupported {
            op,
            path: self.path().to_path_buf(),
            reason,
        }
    }

    /// Stores `data` (C order) with `shape` under `key`, replacing any array there.
    /// `shape` must hold exactly `data.len()` elements; `&[]` stores a 0-d array of one element.
    pub fn put<T: Element>(&self, key: impl AsRef<[u8]>, data: &[T], shape: &[u64]) -> Result<()> {
        self.put_with_metadata(key, data, shape, None)
    }

    /// Like [`ArrayStore::put`], with per-key JSON metadata stored in the same value.
    pub fn put_with_metadata<T: Element>(
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
            self.put_value(wtxn, key, T::DTYPE, header.len() + bytes.len(), |w| {
                w.write_all(&header)?;
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
                self.put_value(
                    wtxn,
                    key.as_ref(),
                    T::DTYPE,
                    header.len() + bytes.len(),
                    |w| {
                        w.write_all(header)?;
                        w.write_all(bytes)
                    },
                )?;
            }
            Ok(())
        })
    }

    /// Imports the `.npy` file at `path` under `key`, streaming its data in 1 MiB chunks
    /// straight into the space LMDB reserves for the value (no buffer of the whole array; LMDB
    /// itself keeps the new pages in memory until the commit). Big-endian files are converted; fortran-order
    /// files with more than one axis, and dtypes other than the [`DType`]s, are refused with
    /// [`Error::Unsupported`]; a malformed file is [`Error::Corrupt`].
    pub fn put_npy(&self, key: impl AsRef<[u8]>, path: impl AsRef<Path>) -> Result<ArrayInfo> {
        let (key, path) = (key.as_ref(), path.as_ref());
        let mut file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let header = npy::read_header(&mut std::io::BufReader::new(&mut file))
            .map_err(|e| npy_error(path, "importing", e))?;
        let data_len = header.data_len().expect("checked by read_header");
        let data_start = npy_data_start(&mut file, path)?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("reading metadata of", path, e))?
            .len();
        if file_len < data_start + data_len {
            return Err(Error::corrupt(
                path,
                None,
                format!(
                    "the .npy data is cut: {file_len} bytes, need {}",
                    data_start + data_len
                ),
            ));
        }
        self.import(key, &header, &mut |w: &mut dyn Write| {
            // A retried transaction reads the data again from its start.
            file.seek(SeekFrom::Start(data_start))?;
            copy_exact(&mut file, w, data_len, &header)
        })
        .map_err(|e| match e {
            Error::Io { source, .. } => Error::io("importing", path, source),
            e => e,
        })?;
        Ok(ArrayInfo {
            dtype: header.dtype,
            shape: header.shape,
            nbytes: data_len,
        })
    }

    /// Imports a `.npy` stream under `key`. Unlike [`ArrayStore::put_npy`] the data is read
    /// into memory first (a reader cannot be rewound if LMDB must retry the write).
    pub fn put_npy_reader(
        &self,
        key: impl AsRef<[u8]>,
        reader: &mut dyn Read,
    ) -> Result<ArrayInfo> {
        let key = key.as_ref();
        let header = npy::read_header(reader).map_err(|e| npy_error("<reader>", "importing", e))?;
        let data_len = header.data_len().expect("checked by read_header");
        let len = usize::try_from(data_len)
            .map_err(|_| self.unsupported("put_npy_reader", "array too large".into()))?;
        let mut data = vec![0u8; len];
        reader
            .read_exact(&mut data)
            .map_err(|e| npy_error("<reader>", "importing", e.into()))?;
        if header.big_endian {
            npy::swap_bytes(&mut data, header.dtype.size());
        }
        let plain = NpyHeader {
            big_endian: false,
            ..header.clone()
        };
        self.import(key, &plain, &mut |w: &mut dyn Write| w.write_all(&data))?;
        Ok(ArrayInfo {
            dtype: header.dtype,
            shape: header.shape,
            nbytes: data_len,
        })
    }

    fn import(
        &self,
        key: &[u8],
        header: &NpyHeader,
        write_data: &mut dyn FnMut(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<()> {
        let data_len = header.data_len().expect("checked by read_header");
        let value_header = layout::encode_header(header.dtype, &header.shape, &[], data_len);
        let total = usize::try_from(value_header.len() as u64 + data_len)
            .map_err(|_| self.unsupported("put_npy", "array too large".into()))?;
        self.inner.env.write(|wtxn| {
            self.put_value(wtxn, key, header.dtype, total, |w| {
                w.write_all(&value_header)?;
                write_data(w)
            })
        })
    }

    /// Writes the array under `key` to a `.npy` file at `path` (version 1.0, C order,
    /// little-endian) that `numpy.load` reads; returns `false` if the key is missing. The file
    /// appears atomically (temporary file, then rename).
    pub fn export_npy(&self, key: impl AsRef<[u8]>, path: impl AsRef<Path>) -> Result<bool> {
        let (key, path) = (key.as_ref(), path.as_ref());
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)
            .map_err(|e| Error::io("creating a temporary file in", &dir, e))?;
        let found = self.inner.env.read(|txn| -> Result<bool, TxnError> {
            let Some(value) = self.raw_value(txn, key)? else {
                return Ok(false);
            };
            let d = layout::decode(value).map_err(|e| self.layout_error(key, e))?;
            tmp.as_file_mut()
                .set_len(0)
                .and_then(|_| tmp.as_file_mut().seek(SeekFrom::Start(0)))
                .and_then(|_| {
                    let mut w = std::io::BufWriter::new(tmp.as_file_mut());
                    npy::write_npy(&mut w, d.dtype, &d.shape, d.data)?;
                    w.flush()
                })
                .map_err(|e| Error::io("writing", path, e))?;
            Ok(true)
        })?;
        if found {
            tmp.as_file()
                .sync_all()
                .map_err(|e| Error::io("syncing", path, e))?;
            tmp.persist(path)
                .map_err(|e| Error::io("renaming into", path, e.error))?;
        }
        Ok(found)
    }

    /// Runs `f` with a reader over one read transaction: every array it returns borrows from
    /// that transaction, which ends when `f` returns. Do not call other store methods inside
    /// `f`. `f` may run again if LMDB asks for a retry.
    pub fn read<R>(&self, mut f: impl FnMut(&ArrayReader<'_>) -> Result<R>) -> Result<R> {
        self.inner.env.read(|txn| -> Result<R, TxnError> {
            let reader = ArrayReader { store: self, txn };
            Ok(f(&reader)?)
        })
    }

    /// The array under `key` copied out, with its shape.
    pub fn get_owned<T: Element>(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<(Vec<T>, Vec<u64>)>> {
        let key = key.as_ref();
        self.read(|r| Ok(r.get::<T>(key)?.map(ArrayView::into_owned)))
    }

    /// Dtype and shape of the array under `key`.
    pub fn info(&self, key: impl AsRef<[u8]>) -> Result<Option<ArrayInfo>> {
        let key = key.as_ref();
        self.read(|r| r.info(key))
    }

    /// The per-key metadata of `key`'s array (`None` if the key or its metadata is missing).
    pub fn metadata(&self, key: impl AsRef<[u8]>) -> Result<Option<serde_json::Value>> {
        let key = key.as_ref();
        self.read(|r| match r.decoded(key)? {
            Some(d) => parse_json(d.meta).map_err(|e| match e {
                Error::Corrupt { reason, .. } => self.corrupt(key, reason),
                e => e,
            }),
            None => Ok(None),
        })
    }

    /// Replaces the per-key metadata of `key`'s array (rewrites the value: the metadata sits in
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
            let d = layout::decode(value).map_err(|e| self.layout_error(key, e))?;
            let header = layout::encode_header(d.dtype, &d.shape, &meta, d.data.len() as u64);
            // The old value lives in pages this write may reuse: copy its data first.
            let data = d.data.to_vec();
            self.put_value(wtxn, key, d.dtype, header.len() + data.len(), |w| {
                w.write_all(&header)?;
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
                Some(bytes) => parse_json(bytes).map_err(|e| match e {
                    Error::Corrupt { reason, .. } => {
                        Error::corrupt(self.path(), None, format!("store {reason}"))
                    }
                    e => e,
                })?,
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

    /// Removes `key`'s array; returns whether it was present.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        self.inner.env.write(|wtxn| self.delete_in(wtxn, key))
    }

    /// Every key, in no promised order.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>> {
        let (direct, long) = (self.inner.direct, self.inner.long);
        self.inner.env.read(|txn| -> Result<_, TxnError> {
            let mut out = Vec::new();
            for entry in direct.iter(txn)? {
                out.push(entry?.0.to_vec());
            }
            for entry in long.iter(txn)? {
                let (_, v) = entry?;
                let len = v
                    .get(..8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize);
                match len.and_then(|n| v.get(8..8usize.checked_add(n)?)) {
                    Some(k) => out.push(k.to_vec()),
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
        self.read(|r| {
            let mut data: Vec<T> = Vec::new();
            let mut cols = None;
            let mut missing = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                let key = key.as_ref();
                let Some(view) = r.get::<T>(key)? else {
                    missing.push(i);
                    if let Some(c) = cols {
                        data.resize(data.len() + c, T::zeroed());
                    }
                    continue;
                };
                if view.shape().len() != 1 {
                    return Err(self.unsupported(
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
                        return Err(self.unsupported(
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

/// Reads arrays inside one read transaction of an [`ArrayStore`]; see [`ArrayStore::read`].
pub struct ArrayReader<'t> {
    store: &'t ArrayStore,
    txn: &'t RoTxn<'t, WithoutTls>,
}

impl<'t> ArrayReader<'t> {
    fn decoded(&self, key: &[u8]) -> Result<Option<layout::Decoded<'t>>> {
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
    /// the stored dtype is [`Error::Unsupported`].
    pub fn get<T: Element>(&self, key: impl AsRef<[u8]>) -> Result<Option<ArrayView<'t, T>>> {
        let key = key.as_ref();
        let Some(d) = self.decoded(key)? else {
            return Ok(None);
        };
        if d.dtype != T::DTYPE {
            return Err(self.store.unsupported(
                "get",
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

/// Where the data starts in an `.npy` file whose header was just read through a buffered
/// reader: re-reads the fixed prefix, which says how long the header is.
fn npy_data_start(file: &mut std::fs::File, path: &Path) -> Result<u64> {
    let mut prefix = [0u8; 12];
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_exact(&mut prefix))
        .map_err(|e| Error::io("reading", path, e))?;
    Ok(match prefix[6] {
        1 => 10 + u16::from_le_bytes([prefix[8], prefix[9]]) as u64,
        _ => 12 + u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as u64,
    })
}

/// Copies exactly `len` bytes from `r` to `w`, byte-swapping big-endian elements.
fn copy_exact(r: &mut dyn Read, w: &mut dyn Write, len: u64, h: &NpyHeader) -> std::io::Result<()> {
    let size = h.dtype.size();
    let mut buf = vec![0u8; (1 << 20) / 8 * 8];
    let mut left = len;
    while left > 0 {
        let n = (buf.len() as u64).min(left) as usize;
        r.read_exact(&mut buf[..n])?;
        if h.big_endian {
            npy::swap_bytes(&mut buf[..n], size);
        }
        w.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

pub(crate) fn npy_error(path: impl Into<PathBuf>, op: &'static str, e: NpyError) -> Error {
    let path = path.into();
    match e {
        NpyError::Io(e) => Error::io(op, path, e),
        NpyError::Corrupt(reason) => Error::corrupt(path, None, reason),
        NpyError::Unsupported(reason) => Error::Unsupported { op, path, reason },
    }
}

impl Store for ArrayStore {
    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        // A `Blob` cannot borrow a read transaction: copy. `with_value` lends instead.
        let bytes = ArrayStore::read(self, |r| Ok(r.bytes(key)?.map(<[u8]>::to_vec)))?;
        Ok(bytes.map(Blob::from))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        ArrayStore::put(self, key, value, &[value.len() as u64])
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        ArrayStore::delete(self, key)
    }

    fn keys(&self) -> Result<Box<dyn Iterator<Item = Result<Vec<u8>>> + '_>> {
        Ok(Box::new(ArrayStore::keys(self)?.into_iter().map(Ok)))
    }

    fn flush(&self) -> Result<()> {
        // Every commit is synced (Durability::Flush); this also covers a future no-sync mode.
        self.inner.env.sync()
    }

    fn with_value(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        ArrayStore::read(self, |r| {
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
        ArrayStore::read(self, |r| {
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
                self.put_value(wtxn, k, DType::U8, h.len() + v.len(), |w| {
                    w.write_all(h)?;
                    w.write_all(v)
                })?;
            }
            Ok(())
        })
    }

    fn len(&self) -> Result<u64> {
        ArrayStore::len(self)
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
