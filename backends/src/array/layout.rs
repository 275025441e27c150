//! The bytes of one stored array value (format version 1).
//!
//! ```text
//! offset        size        field
//! 0             4           magic b"CARR"
//! 4             2           format version, u16 LE (1)
//! 6             1           dtype code (see DType), u8
//! 7             1           ndim, u8 (0..=32; 0 is a scalar holding one element)
//! 8             8           metadata length in bytes, u64 LE (0 = no metadata)
//! 16            8           data offset from the value start, u64 LE (a multiple of 16)
//! 24            8           data length in bytes, u64 LE (= product(shape) * dtype size)
//! 32            8 * ndim    shape, one u64 LE per axis, C (row-major) order
//! 32 + 8*ndim   meta len    per-key metadata, UTF-8 JSON
//! ...           ...         zero padding up to the data offset
//! data offset   data len    elements, little-endian, C order
//! ```
//!
//! The data offset is a multiple of [`DATA_ALIGN`] (16) so that, when the value itself starts
//! 16-byte aligned, the elements are aligned for every dtype and can be lent as `&[T]`.
//! Whether the value starts aligned is LMDB's business; see the module docs of `array`.
//! Bytes after the data are allowed and ignored (reserved for padding a small value onto an
//! overflow page); a value shorter than `data offset + data length` is corrupt.

use super::dtype::DType;
use crate::le::{u16_at, u64_at};
use crate::version::Refusal;

/// Magic bytes opening every array value.
pub(crate) const MAGIC: [u8; 4] = *b"CARR";
/// Format version 1: the layout above. A value with a higher version needs a newer build.
pub(crate) const VERSION: u16 = 1;
/// Size of the fixed part of the header.
pub(crate) const FIXED: usize = 32;
/// The data offset is a multiple of this (the largest dtype alignment is 8; 16 leaves room).
pub(crate) const DATA_ALIGN: usize = 16;
/// The most axes an array may have (numpy's limit was 32 for years).
pub const MAX_NDIM: usize = 32;

/// A decoded value: its header fields and slices of the value's bytes.
#[derive(Debug)]
pub(crate) struct Decoded<'a> {
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub meta: &'a [u8],
    pub data: &'a [u8],
}

/// Number of elements of `shape`, or `None` on overflow.
pub(crate) fn element_count(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d))
}

/// Offset of the data for a value with `ndim` axes and `meta_len` bytes of metadata.
pub(crate) fn data_offset(ndim: usize, meta_len: usize) -> usize {
    (FIXED + 8 * ndim + meta_len).next_multiple_of(DATA_ALIGN)
}

/// The header (everything before the data, padding included) of a value holding `data_len`
/// bytes of `dtype` elements of `shape`, with optional JSON metadata.
pub(crate) fn encode_header(dtype: DType, shape: &[u64], meta: &[u8], data_len: u64) -> Vec<u8> {
    debug_assert!(shape.len() <= MAX_NDIM);
    let off = data_offset(shape.len(), meta.len());
    let mut h = Vec::with_capacity(off);
    h.extend_from_slice(&MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.push(dtype.code());
    h.push(shape.len() as u8);
    h.extend_from_slice(&(meta.len() as u64).to_le_bytes());
    h.extend_from_slice(&(off as u64).to_le_bytes());
    h.extend_from_slice(&data_len.to_le_bytes());
    for d in shape {
        h.extend_from_slice(&d.to_le_bytes());
    }
    h.extend_from_slice(meta);
    h.resize(off, 0);
    h
}

/// Reads a value's header and finds its metadata and data, checking every length.
pub(crate) fn decode(value: &[u8]) -> Result<Decoded<'_>, Refusal> {
    let bad = |s: String| Err(Refusal::Corrupt(s));
    let Some(version) = u16_at(value, 4) else {
        return bad(format!(
            "array value is {} bytes, shorter than its header",
            value.len()
        ));
    };
    if value[..4] != MAGIC {
        return bad(format!("bad array magic {:02x?}", &value[..4]));
    }
    if version > VERSION {
        return Err(Refusal::Newer(version.into()));
    }
    if version == 0 {
        return bad("array format version 0 does not exist".into());
    }
    if value.len() < FIXED {
        return bad(format!(
            "array value is {} bytes, shorter than its header",
            value.len()
        ));
    }
    let Some(dtype) = DType::from_code(value[6]) else {
        return bad(format!("unknown dtype code {}", value[6]));
    };
    let ndim = value[7] as usize;
    if ndim > MAX_NDIM {
        return bad(format!("ndim {ndim} exceeds {MAX_NDIM}"));
    }
    let field = |at: usize| u64_at(value, at).unwrap_or_default();
    let (meta_len, data_off, data_len) = (field(8), field(16), field(24));
    let shape_end = FIXED + 8 * ndim;
    let Some(shape) = (0..ndim)
        .map(|i| u64_at(value, FIXED + 8 * i))
        .collect::<Option<Vec<u64>>>()
    else {
        return bad(format!(
            "array value of {} bytes cut inside its shape",
            value.len()
        ));
    };
    let meta_end = (shape_end as u64).checked_add(meta_len);
    if meta_end.is_none_or(|e| e > data_off) {
        return bad(format!(
            "metadata of {meta_len} bytes runs past the data offset {data_off}"
        ));
    }
    if !data_off.is_multiple_of(DATA_ALIGN as u64) {
        return bad(format!(
            "data offset {data_off} is not a multiple of {DATA_ALIGN}"
        ));
    }
    let expected = element_count(&shape).and_then(|n| n.checked_mul(dtype.size() as u64));
    if expected != Some(data_len) {
        return bad(format!(
            "data length {data_len} does not match shape {shape:?} of {dtype}"
        ));
    }
    let data_end = data_off.checked_add(data_len);
    if data_end.is_none_or(|e| e > value.len() as u64) {
        return bad(format!(
            "array value of {} bytes is cut: data needs {data_off} + {data_len}",
            value.len()
        ));
    }
    let (off, len) = (data_off as usize, data_len as usize);
    Ok(Decoded {
        dtype,
        shape,
        meta: &value[shape_end..shape_end + meta_len as usize],
        data: &value[off..off + len],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(dtype: DType, shape: &[u64], meta: &[u8], data: &[u8]) -> Vec<u8> {
        let mut v = encode_header(dtype, shape, meta, data.len() as u64);
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn header_round_trips_and_data_offset_is_aligned() {
        for ndim in 0..5usize {
            for meta_len in [0usize, 1, 15, 16, 17, 100] {
                let shape: Vec<u64> = (0..ndim as u64).map(|i| i + 1).collect();
                let n = element_count(&shape).unwrap() as usize;
                let data: Vec<u8> = (0..n * 4).map(|i| i as u8).collect();
                let meta = vec![b'x'; meta_len];
                let v = value(DType::F32, &shape, &meta, &data);
                let d = decode(&v).unwrap();
                assert_eq!(d.dtype, DType::F32);
                assert_eq!(d.shape, shape);
                assert_eq!(d.meta, &meta[..]);
                assert_eq!(d.data, &data[..]);
                let offset = d.data.as_ptr() as usize - v.as_ptr() as usize;
                assert_eq!(offset % DATA_ALIGN, 0);
            }
        }
    }

    #[test]
    fn damaged_values_are_corrupt_and_newer_versions_need_upgrade() {
        let good = value(DType::U16, &[2, 3], b"{}", &[7; 12]);
        assert!(decode(&good).is_ok());
        let corrupt = |v: &[u8]| matches!(decode(v), Err(Refusal::Corrupt(_)));
        assert!(corrupt(&good[..good.len() - 1]), "truncated data");
        assert!(corrupt(&good[..20]), "truncated header");
        assert!(corrupt(b""), "empty");
        let mut v = good.clone();
        v[0] = b'X';
        assert!(corrupt(&v), "magic");
        let mut v = good.clone();
        v[6] = 200;
        assert!(corrupt(&v), "dtype");
        let mut v = good.clone();
        v[7] = 33;
        assert!(corrupt(&v), "ndim");
        let mut v = good.clone();
        v[32] = 9;
        assert!(corrupt(&v), "shape disagrees with data length");
        let mut v = good.clone();
        v[16] = 8;
        assert!(corrupt(&v), "unaligned data offset");
        let mut v = good.clone();
        v[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(corrupt(&v), "metadata length overflows");
        let mut v = good.clone();
        v[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(corrupt(&v), "shape product overflows");
        let mut v = good.clone();
        v[4] = 0;
        assert!(corrupt(&v), "version 0");
        let mut v = good;
        v[4] = 2;
        assert_eq!(decode(&v).unwrap_err(), Refusal::Newer(2));
    }
}
