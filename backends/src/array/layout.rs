//! The bytes of one stored array value (format version 2; version 1 values still read).
//!
//! ```text
//! offset        size        field
//! 0             4           magic b"CARR"
//! 4             2           format version, u16 LE (2; 1 for values written before checksums)
//! 6             1           dtype code (see DType), u8
//! 7             1           ndim, u8 (0..=32; 0 is a scalar holding one element)
//! 8             8           metadata length in bytes, u64 LE (0 = no metadata)
//! 16            8           data offset from the value start, u64 LE (a multiple of 16)
//! 24            8           data length in bytes, u64 LE (= product(shape) * dtype size)
//! 32            4           v2: data CRC-32 (IEEE, as crc32fast) of the data bytes, u32 LE
//! 36            4           v2: header CRC-32 of the key length (u64 LE), the key, then bytes
//!                           0..36 and 40..data offset
//! 40            8 * ndim    shape, one u64 LE per axis, C (row-major) order (v1: at 32)
//! +8*ndim       meta len    per-key metadata, UTF-8 JSON
//! ...           ...         zero padding up to the data offset
//! data offset   data len    elements, little-endian, C order
//! ```
//!
//! The data offset is a multiple of [`DATA_ALIGN`] (16) so that, when the value itself starts
//! 16-byte aligned, the elements are aligned for every dtype and can be lent as `&[T]`.
//! Whether the value starts aligned is LMDB's business; see the module docs of `array`.
//! Bytes after the data are allowed and ignored (reserved for padding a small value onto an
//! overflow page); a value shorter than `data offset + data length` is corrupt.
//!
//! The header CRC starts with the key the value is stored under, so a value that turns up
//! under another key (a damaged LMDB key, a page of one entry read as another's) is refused
//! rather than returned for a key that was never given it.
//!
//! Why two checksums: the header CRC is checked by every decode (it is small, so `info`,
//! `metadata` and the unchecked views stay O(header)); the data CRC is one pass over the
//! elements, which the checked reads pay and the `*_unchecked` ones skip. Version 1 values
//! carry neither: they decode as before and their data cannot be checked.

use super::dtype::DType;
use crate::le::{u16_at, u32_at, u64_at};
use crate::version::Refusal;

/// Magic bytes opening every array value.
pub(crate) const MAGIC: [u8; 4] = *b"CARR";
/// Format version 2: the layout above, with checksums. A higher version needs a newer build.
pub(crate) const VERSION: u16 = 2;
/// Size of the fixed part of a version 2 header (version 1: [`FIXED_V1`]).
pub(crate) const FIXED: usize = 40;
/// Size of the fixed part of a version 1 header, which had no checksums.
pub(crate) const FIXED_V1: usize = 32;
/// Where the data CRC and the header CRC sit in a version 2 header.
const DATA_CRC_AT: usize = 32;
const HEADER_CRC_AT: usize = 36;
/// The data offset is a multiple of this (the largest dtype alignment is 8; 16 leaves room).
pub(crate) const DATA_ALIGN: usize = 16;
/// The most axes an array may have (numpy's limit was 32 for years).
pub const MAX_NDIM: usize = 32;

/// A decoded value: its header fields and slices of the value's bytes. The header has been
/// checked; the data has not (see [`Decoded::check_data`]).
#[derive(Debug)]
pub(crate) struct Decoded<'a> {
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub meta: &'a [u8],
    pub data: &'a [u8],
    /// The stored CRC-32 of `data`; `None` for a version 1 value, which has none.
    pub data_crc: Option<u32>,
}

impl Decoded<'_> {
    /// Checks the data against its stored CRC: one pass over the data. Version 1 values have
    /// no CRC and pass.
    pub(crate) fn check_data(&self) -> Result<(), Refusal> {
        match self.data_crc {
            Some(stored) => {
                let actual = crc32fast::hash(self.data);
                if actual == stored {
                    Ok(())
                } else {
                    Err(Refusal::corrupt(format!(
                        "array data checksum mismatch (stored {stored:08x}, computed \
                         {actual:08x} over {} bytes)",
                        self.data.len()
                    )))
                }
            }
            None => Ok(()),
        }
    }
}

/// Number of elements of `shape`, or `None` on overflow.
pub(crate) fn element_count(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d))
}

/// Offset of the data for a version 2 value with `ndim` axes and `meta_len` bytes of metadata.
pub(crate) fn data_offset(ndim: usize, meta_len: usize) -> usize {
    (FIXED + 8 * ndim + meta_len).next_multiple_of(DATA_ALIGN)
}

/// The header (everything before the data, padding included) of a value holding `data_len`
/// bytes of `dtype` elements of `shape`, with optional JSON metadata. Its checksums are zero
/// until [`seal`] fills them in, once the data's CRC is known.
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
    h.extend_from_slice(&[0; 8]); // data CRC, header CRC: see `seal`
    for d in shape {
        h.extend_from_slice(&d.to_le_bytes());
    }
    h.extend_from_slice(meta);
    h.resize(off, 0);
    h
}

/// Fills in the checksums of a header from [`encode_header`], for a value stored under `key`
/// whose data has CRC-32 `data_crc`.
pub(crate) fn seal(header: &mut [u8], key: &[u8], data_crc: u32) {
    header[DATA_CRC_AT..DATA_CRC_AT + 4].copy_from_slice(&data_crc.to_le_bytes());
    let crc = header_crc(key, header);
    header[HEADER_CRC_AT..HEADER_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
}

/// A whole sealed value: header and data (tests and fixtures).
#[cfg(test)]
pub(crate) fn encode(key: &[u8], dtype: DType, shape: &[u64], meta: &[u8], data: &[u8]) -> Vec<u8> {
    let mut v = encode_header(dtype, shape, meta, data.len() as u64);
    seal(&mut v, key, crc32fast::hash(data));
    v.extend_from_slice(data);
    v
}

/// CRC-32 of `key` and a version 2 header (`..data offset`) without its own CRC field.
fn header_crc(key: &[u8], header: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key);
    h.update(&header[..HEADER_CRC_AT]);
    h.update(&header[HEADER_CRC_AT + 4..]);
    h.finalize()
}

/// Reads a value's header and finds its metadata and data, checking every length and (for
/// version 2) the header CRC, which binds the value to `key`. The data itself is checked by
/// [`Decoded::check_data`].
pub(crate) fn decode<'v>(value: &'v [u8], key: &[u8]) -> Result<Decoded<'v>, Refusal> {
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
    let fixed = if version == 1 { FIXED_V1 } else { FIXED };
    if value.len() < fixed {
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
    let shape_end = fixed + 8 * ndim;
    let Some(shape) = (0..ndim)
        .map(|i| u64_at(value, fixed + 8 * i))
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
    let data_crc = if version == 1 {
        None
    } else {
        let stored = u32_at(value, HEADER_CRC_AT).unwrap_or_default();
        let actual = header_crc(key, &value[..off]);
        if stored != actual {
            return bad(format!(
                "array header checksum mismatch (stored {stored:08x}, computed {actual:08x})"
            ));
        }
        u32_at(value, DATA_CRC_AT)
    };
    Ok(Decoded {
        dtype,
        shape,
        meta: &value[shape_end..shape_end + meta_len as usize],
        data: &value[off..off + len],
        data_crc,
    })
}

/// The body of a fuzz target for the value decoder (the never-panic proptests drive it on
/// every test run, and `fuzz/` through `cacher_store::fuzzing`): decoding and checking any bytes may
/// refuse, never panic, and what is accepted lies inside the input.
#[cfg_attr(
    not(any(test, feature = "fuzzing")),
    expect(
        dead_code,
        reason = "called by the proptests and by fuzz/ (feature `fuzzing`)"
    )
)]
pub(crate) fn fuzz_entry(bytes: &[u8]) {
    if let Ok(d) = decode(bytes, b"k") {
        let _ = d.check_data();
        assert!(d.meta.len() + d.data.len() <= bytes.len());
    }
}

/// The version 1 encoder, kept so tests can build values as builds before checksums wrote them.
#[cfg(test)]
pub(crate) mod v1 {
    use super::{DType, DATA_ALIGN, FIXED_V1, MAGIC};

    /// A version 1 header (no checksums) for `data_len` bytes of `dtype` elements of `shape`.
    pub(crate) fn encode_header(
        dtype: DType,
        shape: &[u64],
        meta: &[u8],
        data_len: u64,
    ) -> Vec<u8> {
        let off = (FIXED_V1 + 8 * shape.len() + meta.len()).next_multiple_of(DATA_ALIGN);
        let mut h = Vec::with_capacity(off);
        h.extend_from_slice(&MAGIC);
        h.extend_from_slice(&1u16.to_le_bytes());
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
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn value(dtype: DType, shape: &[u64], meta: &[u8], data: &[u8]) -> Vec<u8> {
        encode(b"k", dtype, shape, meta, data)
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
                let d = decode(&v, b"k").unwrap();
                assert_eq!(d.dtype, DType::F32);
                assert_eq!(d.shape, shape);
                assert_eq!(d.meta, &meta[..]);
                assert_eq!(d.data, &data[..]);
                d.check_data().unwrap();
                let offset = d.data.as_ptr() as usize - v.as_ptr() as usize;
                assert_eq!(offset % DATA_ALIGN, 0);
            }
        }
    }

    #[test]
    fn damaged_values_are_corrupt_and_newer_versions_need_upgrade() {
        let good = value(DType::U16, &[2, 3], b"{}", &[7; 12]);
        assert!(decode(&good, b"k").is_ok());
        let corrupt = |v: &[u8]| matches!(decode(v, b"k"), Err(Refusal::Corrupt(_)));
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
        v[FIXED] = 9;
        assert!(corrupt(&v), "shape disagrees with data length");
        let mut v = good.clone();
        v[16] = 8;
        assert!(corrupt(&v), "unaligned data offset");
        let mut v = good.clone();
        v[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(corrupt(&v), "metadata length overflows");
        let mut v = good.clone();
        v[FIXED..FIXED + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(corrupt(&v), "shape product overflows");
        let mut v = good.clone();
        v[4] = 0;
        assert!(corrupt(&v), "version 0");
        let mut v = good;
        v[4] = 3;
        assert_eq!(decode(&v, b"k").unwrap_err(), Refusal::Newer(3));
    }

    #[test]
    fn every_single_byte_flip_of_a_value_is_refused() {
        // A checked read is decode + check_data: whatever byte of header, shape, metadata,
        // padding or data flips, one of the two refuses it (before v2, a flipped data byte or
        // a dtype code flipped to one of the same size decoded fine).
        let data: Vec<u8> = (0..24).collect();
        let good = value(DType::F32, &[2, 3], br#"{"a":1}"#, &data);
        for i in 0..good.len() {
            for bit in [0x01u8, 0x80] {
                let mut v = good.clone();
                v[i] ^= bit;
                let refused = match decode(&v, b"k") {
                    Err(_) => true,
                    Ok(d) => d.check_data().is_err(),
                };
                assert!(refused, "flip {bit:#x} at byte {i} was read as a value");
            }
        }
    }

    #[test]
    fn a_value_under_another_key_is_refused() {
        let good = value(DType::U8, &[3], b"", &[1, 2, 3]);
        assert!(decode(&good, b"k").is_ok());
        assert!(matches!(decode(&good, b"j"), Err(Refusal::Corrupt(_))));
        assert!(matches!(decode(&good, b"k2"), Err(Refusal::Corrupt(_))));
    }

    #[test]
    fn version_1_values_still_decode_without_checksums() {
        let data = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let mut v = v1::encode_header(DType::U16, &[4], b"", data.len() as u64);
        v.extend_from_slice(&data);
        let d = decode(&v, b"k").unwrap();
        assert_eq!(
            (d.dtype, d.shape.clone(), d.data),
            (DType::U16, vec![4], &data[..])
        );
        assert_eq!(d.data_crc, None);
        d.check_data().unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// The value decoder never panics, whatever the bytes, and what it accepts lies inside
        /// the input.
        #[test]
        fn decode_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            fuzz_entry(&bytes);
        }

        /// Mutations of a well-formed value (overwritten bytes, cuts, version 1 and 2) never
        /// panic the decoder.
        #[test]
        fn decode_never_panics_on_mutated_values(
            ndim in 0usize..4,
            meta_len in 0usize..40,
            v1_layout in any::<bool>(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let shape: Vec<u64> = (0..ndim as u64).map(|i| i + 2).collect();
            let n = element_count(&shape).unwrap() as usize;
            let data = vec![0x5a; n * 8];
            let meta = vec![b'm'; meta_len];
            let mut v = if v1_layout {
                let mut v = v1::encode_header(DType::F64, &shape, &meta, data.len() as u64);
                v.extend_from_slice(&data);
                v
            } else {
                value(DType::F64, &shape, &meta, &data)
            };
            for (at, byte) in edits {
                let i = at.index(v.len());
                v[i] = byte;
            }
            let keep = cut.index(v.len() + 1);
            fuzz_entry(&v[..keep]);
        }
    }
}
