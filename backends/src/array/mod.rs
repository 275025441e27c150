//! numpy-style typed arrays in LMDB (feature `lmdb`): [`ArrayStore`], whose reads lend `&[T]`
//! straight from LMDB's memory map, and [`NumpyLmdb`], the compatibility mode for stores
//! written by the Python `NumpyLmdb` tool.
//!
//! # When a read is zero-copy
//!
//! A typed read ([`ArrayReader::view`]) casts the stored element bytes to `&[T]` with
//! `bytemuck::try_cast_slice`, which checks alignment. Whether the bytes are aligned depends on
//! where LMDB put the value (checked against `mdb.c` of `lmdb-master-sys` 0.2.6):
//!
//! - **Large values live on overflow pages** and start right after the 16-byte page header
//!   (`PAGEHDRSZ` = 8-byte page number + 2 + 2 + 4 on 64-bit targets; `METADATA(omp)` in
//!   `mdb_node_read`). Pages are page-aligned in the map, and in a write transaction dirty
//!   overflow pages come from `malloc` (16-byte aligned on 64-bit targets), so such a value
//!   starts 16-byte aligned. A value goes to overflow pages when its leaf node would exceed
//!   `me_nodemax` = ((page size − 16) / 2, rounded down to even) − 2, i.e. when
//!   `8 + key length + value length > 2038` with 4 KiB pages.
//! - **Small values sit inside a leaf node** right after the 8-byte node header and the key;
//!   nodes are only 2-byte aligned, so such a value has no useful alignment.
//!
//! The value layout (see `layout`) puts the element data at a multiple of 16 bytes from the
//! value start. So **an array whose stored value is larger than about 2 KiB (with 4 KiB pages,
//! 2030 bytes minus the key length) is always read zero-copy**; a smaller one is lent only
//! when it happens to land aligned (always for `u8`/`i8`/`Bool`, which need no alignment) and
//! otherwise copied into an aligned `Vec` (small by definition), which
//! [`ArrayStore::stats`] counts as `copied_reads`. To make every read zero-copy, turn on
//! [`ArrayStore::set_align_small_arrays`]: small values are then padded with trailing zeros
//! until LMDB must put them on an overflow page (a 4 KiB page per small array). Keys longer than LMDB's 511-byte limit and
//! the empty key are stored under a hash with the key in front of the array; that prefix is
//! padded to 16 bytes so the same rule holds.
//!
//! Values are little-endian on disk; this module refuses to build for big-endian targets
//! rather than hand out wrongly ordered views.
//!
//! # Format
//!
//! One LMDB environment with three named databases: `cacher-arrays` (key → array value),
//! `cacher-arrays-long-keys` (BLAKE3(key) → `key length u64 LE | key | pad to 16 | array
//! value`, for keys that are empty or longer than 511 bytes) and `cacher-arrays-info`
//! (`format-version` → u32 LE, `metadata` → store-wide JSON). Each array value carries its
//! own magic and version; its byte layout is documented in the `layout` module source.
//!
//! # Every value checked
//!
//! Since value layout version 2 each value carries a CRC-32 of its header and one of its
//! data. Every read checks the header CRC (O(header)); the checked reads — [`ArrayReader::view`],
//! [`ArrayReader::bytes`], [`ArrayStore::get_owned`], [`ArrayStore::get_rows`], `export_npy`
//! and every [`Store`](crate::Store) read path — also check the data CRC before lending or
//! copying the data, which is one pass over it (crc32fast: measured 2.7 ms for a 64 MiB array on a quiet
//! core, 15 ms on the loaded 2-core CI machine, against under 1 µs for the unchecked view of
//! any size; at 1 KiB the two are within noise of each other: see `benches/arrays.rs`). [`ArrayReader::view_unchecked`]
//! and [`ArrayReader::bytes_unchecked`] skip that pass and say so in their names; a damaged
//! element then comes back as a wrong value. [`Store::verify`](crate::Store::verify) checks
//! every value and lists each damaged key. Values written before version 2 still read, with
//! no data check (they have no CRC).

#[cfg(target_endian = "big")]
compile_error!("cacher-store's array module stores little-endian data and lends it as &[T]: big-endian targets are not supported");

mod bytes;
mod compat;
mod dtype;
mod entries;
mod import;
mod info;
mod kind;
mod layout;
mod npy;
mod pyjson;
#[cfg(feature = "fuzzing")]
pub(crate) use layout::fuzz_entry as fuzz_value;
#[cfg(feature = "fuzzing")]
pub(crate) use npy::fuzz_entry as fuzz_npy;
mod reader;
mod store;
mod verify;
mod view;

pub use compat::NumpyLmdb;
pub use dtype::{Bool, DType, Element, F16};
pub use info::ArrayInfo;
pub use layout::MAX_NDIM;
pub use pyjson::{PyJson, PyJsonError};
pub use reader::ArrayReader;
pub use store::{ArrayStats, ArrayStore, MAX_ARRAY_BYTES};
pub use view::{ArrayView, Rows};

use std::path::Path;

use crate::Result;

/// Reads a whole `.npy` file of `T` elements into memory (what `numpy.load` does): the
/// elements in C order and the shape. Big-endian files are converted; fortran order (with
/// more than one axis) is [`Error::Unsupported`](crate::Error::Unsupported), a dtype other
/// than `T` [`Error::InvalidArgument`](crate::Error::InvalidArgument), a malformed file
/// [`Error::Corrupt`](crate::Error::Corrupt).
pub fn read_npy<T: Element>(path: impl AsRef<Path>) -> Result<(Vec<T>, Vec<u64>)> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| crate::Error::io("opening", path, e))?;
    npy::read_npy(&mut std::io::BufReader::new(file))
        .map_err(|e| import::npy_error(path, "read_npy", e))
}

/// Writes `data` (C order) with `shape` as a `.npy` file (version 1.0, little-endian).
pub fn write_npy<T: Element>(path: impl AsRef<Path>, data: &[T], shape: &[u64]) -> Result<()> {
    let path = path.as_ref();
    if layout::element_count(shape) != Some(data.len() as u64) || shape.len() > MAX_NDIM {
        return Err(crate::Error::InvalidArgument {
            op: "write_npy",
            path: path.to_path_buf(),
            reason: format!("shape {shape:?} does not hold {} elements", data.len()),
        });
    }
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).map_err(|e| crate::Error::io("creating", path, e))?,
    );
    npy::write_npy(&mut file, T::DTYPE, shape, bytemuck::cast_slice(data))
        .and_then(|_| std::io::Write::flush(&mut file))
        .map_err(|e| crate::Error::io("writing", path, e))
}

#[cfg(test)]
mod npy_fuzz;
#[cfg(test)]
mod tests;
