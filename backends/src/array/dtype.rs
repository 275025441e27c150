//! Element types of stored arrays: the [`DType`] code written on disk and the Rust types that
//! view it ([`Element`]).

use std::fmt;

/// The element type of a stored array, numpy-style. Always little-endian on disk.
///
/// The discriminant is the code written in the value header; codes are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum DType {
    /// `u8` (numpy `uint8`, `|u1`).
    U8 = 1,
    /// `u16` (numpy `uint16`, `<u2`).
    U16 = 2,
    /// `u32` (numpy `uint32`, `<u4`).
    U32 = 3,
    /// `u64` (numpy `uint64`, `<u8`).
    U64 = 4,
    /// `i8` (numpy `int8`, `|i1`).
    I8 = 5,
    /// `i16` (numpy `int16`, `<i2`).
    I16 = 6,
    /// `i32` (numpy `int32`, `<i4`).
    I32 = 7,
    /// `i64` (numpy `int64`, `<i8`).
    I64 = 8,
    /// IEEE half precision, viewed as its raw bits ([`F16`]) (numpy `float16`, `<f2`).
    F16 = 9,
    /// `f32` (numpy `float32`, `<f4`).
    F32 = 10,
    /// `f64` (numpy `float64`, `<f8`).
    F64 = 11,
    /// One byte per element, 0 or 1, viewed as [`Bool`] (numpy `bool`, `|b1`).
    Bool = 12,
}

impl DType {
    /// Every dtype, in code order.
    pub const ALL: [DType; 12] = [
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::F16,
        DType::F32,
        DType::F64,
        DType::Bool,
    ];

    /// Bytes per element (also the alignment the data needs).
    pub fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 | DType::Bool => 1,
            DType::U16 | DType::I16 | DType::F16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
        }
    }

    /// The code written on disk.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The dtype with on-disk `code`, if any.
    pub fn from_code(code: u8) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.code() == code)
    }

    /// numpy's little-endian type string (`"<f4"`, `"|u1"`), as written in `.npy` headers.
    pub fn npy_descr(self) -> &'static str {
        match self {
            DType::U8 => "|u1",
            DType::U16 => "<u2",
            DType::U32 => "<u4",
            DType::U64 => "<u8",
            DType::I8 => "|i1",
            DType::I16 => "<i2",
            DType::I32 => "<i4",
            DType::I64 => "<i8",
            DType::F16 => "<f2",
            DType::F32 => "<f4",
            DType::F64 => "<f8",
            DType::Bool => "|b1",
        }
    }

    /// The numpy name (`"float32"`), as accepted by `numpy.dtype(..)`.
    pub fn name(self) -> &'static str {
        match self {
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::F16 => "float16",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::Bool => "bool",
        }
    }

    /// The dtype of a `.npy` type string's kind and size (`'f'`, 4), if supported.
    pub(crate) fn from_kind(kind: char, size: usize) -> Option<DType> {
        Some(match (kind, size) {
            ('u', 1) => DType::U8,
            ('u', 2) => DType::U16,
            ('u', 4) => DType::U32,
            ('u', 8) => DType::U64,
            ('i', 1) => DType::I8,
            ('i', 2) => DType::I16,
            ('i', 4) => DType::I32,
            ('i', 8) => DType::I64,
            ('f', 2) => DType::F16,
            ('f', 4) => DType::F32,
            ('f', 8) => DType::F64,
            ('b', 1) => DType::Bool,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// IEEE 754 half-precision float kept as its raw bits (no arithmetic; convert with the `half`
/// crate's `f16::from_bits` if you need values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct F16(pub u16);

/// A numpy boolean: one byte. Kept as the raw byte because a Rust `bool` may only hold 0 or 1
/// and a stored byte is not checked on a zero-copy read; [`Bool::get`] reads it as `byte != 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct Bool(pub u8);

impl Bool {
    /// The value as numpy reads it: any non-zero byte is `true`.
    pub fn get(self) -> bool {
        self.0 != 0
    }
}

impl From<bool> for Bool {
    fn from(b: bool) -> Self {
        Bool(b as u8)
    }
}

// SAFETY: `F16` and `Bool` are `repr(transparent)` over `u16`/`u8`: no padding, every bit
// pattern valid, all-zero valid.
#[expect(
    unsafe_code,
    reason = "bytemuck::Pod for a plain-old-data newtype (see SAFETY)"
)]
unsafe impl bytemuck::Zeroable for F16 {}
// SAFETY: as above.
#[expect(
    unsafe_code,
    reason = "bytemuck::Pod for a plain-old-data newtype (see SAFETY)"
)]
unsafe impl bytemuck::Pod for F16 {}
// SAFETY: as above.
#[expect(
    unsafe_code,
    reason = "bytemuck::Pod for a plain-old-data newtype (see SAFETY)"
)]
unsafe impl bytemuck::Zeroable for Bool {}
// SAFETY: as above.
#[expect(
    unsafe_code,
    reason = "bytemuck::Pod for a plain-old-data newtype (see SAFETY)"
)]
unsafe impl bytemuck::Pod for Bool {}

mod sealed {
    pub trait Sealed {}
}

/// A Rust type that views stored elements of one [`DType`]: `u8`..`u64`, `i8`..`i64`, [`F16`],
/// `f32`, `f64`, [`Bool`]. Sealed: the set matches the dtypes the format knows.
pub trait Element: bytemuck::Pod + sealed::Sealed {
    /// The dtype this type views.
    const DTYPE: DType;
}

macro_rules! element {
    ($($t:ty => $d:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$d;
        }
    )*};
}

element!(u8 => U8, u16 => U16, u32 => U32, u64 => U64, i8 => I8, i16 => I16, i32 => I32,
    i64 => I64, F16 => F16, f32 => F32, f64 => F64, Bool => Bool);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_codes_round_trip_and_sizes_match_rust_types() {
        for d in DType::ALL {
            assert_eq!(DType::from_code(d.code()), Some(d));
            let descr = d.npy_descr();
            let kind = descr.chars().nth(1).unwrap();
            let size: usize = descr[2..].parse().unwrap();
            assert_eq!(size, d.size());
            assert_eq!(DType::from_kind(kind, size), Some(d));
        }
        assert_eq!(DType::from_code(0), None);
        assert_eq!(DType::from_code(13), None);
        assert_eq!(std::mem::size_of::<F16>(), DType::F16.size());
        assert_eq!(std::mem::size_of::<Bool>(), DType::Bool.size());
    }
}
