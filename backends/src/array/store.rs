//! [`ArrayStore`]: the handle, its LMDB databases, and where each key's entry lives.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn};

use super::dtype::DType;
use super::kind;
use super::layout;
use crate::lmdb::{LmdbEnv, LmdbOptions, TxnError};
use crate::marker::Kind;
use crate::version::Refusal;
use crate::{Error, Result};

/// Arrays under keys of 1 to `max_key_size` (511) bytes, keyed by the key itself.
pub(super) const DIRECT_DB: &str = "cacher-arrays";
/// Arrays under empty or longer keys, keyed by the key's BLAKE3 hash; the value starts with
/// the full key (see [`long_prefix_len`]) so a hash collision can never return the wrong array.
pub(super) const LONG_DB: &str = "cacher-arrays-long-keys";
/// Store-wide facts: [`INFO_VERSION`] and [`INFO_METADATA`].
pub(super) const INFO_DB: &str = "cacher-arrays-info";
pub(super) const INFO_VERSION: &[u8] = b"format-version";
pub(super) const INFO_METADATA: &[u8] = b"metadata";
/// The store's format version (the database names and key routing above); each value has its
/// own version too (see the `layout` module).
pub(super) const STORE_VERSION: u32 = 1;

/// The largest array value (header, metadata and data) an [`ArrayStore`] stores: 2 GiB − 1 MiB.
///
/// Why: LMDB writes a value's overflow pages with one `pwrite`, and Linux writes at most
/// 2 GiB − 4 KiB per call; LMDB takes the short write for an I/O error. Larger arrays are
/// refused up front with [`Error::InvalidArgument`] naming this limit (split them across keys,
/// or keep them as `.npy` files); `.npy` imports check the size the header claims before
/// reading any data.
pub const MAX_ARRAY_BYTES: u64 = (2 << 30) - (1 << 20);

/// Bytes before the array value in a long-key entry:
/// `key length (u64 LE) | key | zero padding to a multiple of 16`, so the array value starts
/// as aligned as the entry does.
pub(super) fn long_prefix_len(key_len: usize) -> usize {
    (8 + key_len).next_multiple_of(layout::DATA_ALIGN)
}

/// A long-key entry split into the full key and the array value after its prefix, or `None`
/// when the entry is cut inside its prefix.
pub(super) fn split_long_entry(entry: &[u8]) -> Option<(&[u8], &[u8])> {
    let key_len = usize::try_from(crate::le::u64_at(entry, 0)?).ok()?;
    let key = entry.get(8..8usize.checked_add(key_len)?)?;
    let value = entry.get(long_prefix_len(key_len)..)?;
    Some((key, value))
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

/// A store of numpy-style typed arrays in an LMDB environment.
///
/// Each key holds one array: a [`DType`], a shape (C order) and little-endian elements laid out
/// so [`ArrayReader::view`](super::ArrayReader::view) can lend them as `&[T]` straight from LMDB's map, plus optional JSON
/// metadata per key and for the whole store. Arrays come from slices or `.npy` files and export
/// to `.npy` files that `numpy.load` reads. Clones share one environment.
///
/// Through the byte-level [`Store`](crate::Store) trait an `ArrayStore` is a byte store: `put` stores the
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
/// store.put_array("doc-1", &embedding, &[1024])?;
/// let first = store.with_reader(|r| {
///     let view = r.view::<f32>("doc-1")?.expect("present");
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
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) env: LmdbEnv,
    pub(super) direct: Database<'static, Bytes, Bytes>,
    pub(super) long: Database<'static, Bytes, Bytes>,
    pub(super) info: Database<'static, Bytes, Bytes>,
    pub(super) max_key: usize,
    /// LMDB's `me_nodemax` for this page size: a leaf node (8-byte header + key + value)
    /// larger than this sends the value to overflow pages.
    pub(super) node_max: usize,
    /// Pad small values so they land on overflow pages (see `set_align_small_arrays`).
    pub(super) align_small: AtomicBool,
    pub(super) zero_copy_reads: AtomicU64,
    pub(super) copied_reads: AtomicU64,
}

impl std::fmt::Debug for ArrayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrayStore")
            .field("path", &self.path())
            .finish_non_exhaustive()
    }
}

/// Where a key's entry lives.
pub(super) enum Slot<'k> {
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
    ///
    /// A directory holding another kind of store (a NumpyLmdb, an LmdbStore, a DirStore, ...)
    /// is refused with [`Error::WrongLayout`] naming both kinds, before anything is written to
    /// it; see the `kind` module for how each is recognised. The store marks its directory
    /// with `cacher-array.toml`.
    pub fn open_with(path: impl AsRef<Path>, options: &LmdbOptions) -> Result<ArrayStore> {
        let path = path.as_ref();
        kind::refuse_before_array_open(path, STORE_VERSION)?;
        let env = LmdbEnv::open(path, options)?;
        kind::refuse_foreign_array_contents(&env)?;
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
        kind::ensure_marker(store.path(), Kind::Array, STORE_VERSION)?;
        Ok(store)
    }

    pub(super) fn check_version(&self) -> Result<()> {
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

    pub(super) fn slot<'k>(&self, key: &'k [u8]) -> Slot<'k> {
        if !key.is_empty() && key.len() <= self.inner.max_key {
            Slot::Direct(key)
        } else {
            Slot::Long(*blake3::hash(key).as_bytes())
        }
    }

    pub(super) fn corrupt(&self, key: &[u8], reason: impl Into<String>) -> Error {
        Error::corrupt(self.path(), Some(key), reason)
    }

    pub(super) fn layout_error(&self, key: &[u8], e: Refusal) -> Error {
        e.into_error(self.path(), Some(key), layout::VERSION.into())
    }

    /// The whole array value stored under `key` (header and data), lent from the map.
    pub(super) fn raw_value<'t>(
        &self,
        txn: &'t RoTxn<'_>,
        key: &[u8],
    ) -> Result<Option<&'t [u8]>, TxnError> {
        match self.slot(key) {
            Slot::Direct(k) => Ok(self.inner.direct.get(txn, k)?),
            Slot::Long(hash) => {
                let Some(entry) = self.inner.long.get(txn, &hash)? else {
                    return Ok(None);
                };
                let stored_len = crate::le::u64_at(entry, 0)
                    .ok_or_else(|| self.corrupt(key, "long-key entry shorter than its prefix"))?;
                if stored_len != key.len() as u64 {
                    return Ok(None); // another key with the same hash
                }
                let (stored_key, value) = split_long_entry(entry)
                    .ok_or_else(|| self.corrupt(key, "long-key entry cut inside its key"))?;
                // A different key under the same hash, or a damaged copy of this one: either
                // way not this key's value.
                Ok((stored_key == key).then_some(value))
            }
        }
    }

    /// Writes an array value holding `dtype` elements under `key`: `header` (from
    /// `layout::encode_header`, not yet sealed), then `data_len` bytes of data that
    /// `write_data` writes. The data's CRC is taken as it streams into LMDB's reserved space,
    /// and the header is sealed with it in place: no second pass, no copy of the data.
    pub(super) fn put_value(
        &self,
        wtxn: &mut RwTxn<'_>,
        key: &[u8],
        dtype: DType,
        header: &[u8],
        data_len: usize,
        write_data: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<(), TxnError> {
        let value_len = header.len() + data_len;
        self.check_value_size("put", key, value_len as u64)?;
        let fill = |space: &mut heed::ReservedSpace<'_>| -> std::io::Result<()> {
            let start = space.size() - space.remaining();
            space.write_all(header)?;
            let mut data = Checksummed {
                inner: &mut *space,
                crc: crc32fast::Hasher::new(),
                len: 0,
            };
            write_data(&mut data)?;
            if data.len != data_len {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} bytes of array data given, {data_len} announced",
                        data.len
                    ),
                ));
            }
            let mut sealed = header.to_vec();
            layout::seal(&mut sealed, key, data.crc.finalize());
            space.written_mut()[start..start + sealed.len()].copy_from_slice(&sealed);
            Ok(())
        };
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

    pub(super) fn delete_in(&self, wtxn: &mut RwTxn<'_>, key: &[u8]) -> Result<bool, TxnError> {
        if self.raw_value(wtxn, key)?.is_none() {
            return Ok(false);
        }
        Ok(match self.slot(key) {
            Slot::Direct(k) => self.inner.direct.delete(wtxn, k)?,
            Slot::Long(hash) => self.inner.long.delete(wtxn, &hash)?,
        })
    }

    /// Refuses a value of `value_len` bytes when it exceeds [`MAX_ARRAY_BYTES`].
    pub(super) fn check_value_size(
        &self,
        op: &'static str,
        key: &[u8],
        value_len: u64,
    ) -> Result<()> {
        if value_len <= MAX_ARRAY_BYTES {
            return Ok(());
        }
        Err(self.invalid(
            op,
            format!(
                "an array value of {value_len} bytes for key {} exceeds ArrayStore's limit of \
                 {MAX_ARRAY_BYTES} bytes (LMDB writes a value in one pwrite, which Linux caps \
                 near 2 GiB): split it across keys or keep it as a .npy file",
                crate::KeyDisplay::new(key)
            ),
        ))
    }

    /// The caller asked for something the stored data is not (another dtype, a vector where a
    /// matrix is stored) or gave data that does not fit its own shape.
    pub(super) fn invalid(&self, op: &'static str, reason: String) -> Error {
        Error::InvalidArgument {
            op,
            path: self.path().to_path_buf(),
            reason,
        }
    }
}

/// Passes bytes on to `inner`, keeping their CRC-32 and count.
struct Checksummed<'w> {
    inner: &'w mut dyn Write,
    crc: crc32fast::Hasher,
    len: usize,
}

impl Write for Checksummed<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
