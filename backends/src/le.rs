//! Fixed-width little-endian integers read out of on-disk bytes.
//!
//! Every layout of this crate stores integers little-endian (never `usize` bytes), and every
//! decoder reads them through these functions, which return `None` instead of panicking when
//! the bytes are too short: a short or damaged file is a `Corrupt` error, never a panic.

#![allow(
    dead_code,
    reason = "shared helpers; each store adopts them as it is split (issue 17)"
)]

/// The `u16` at `at`, or `None` when `bytes` ends first.
pub(crate) fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(array_at(bytes, at)?))
}

/// The `u32` at `at`, or `None` when `bytes` ends first.
pub(crate) fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(array_at(bytes, at)?))
}

/// The `u64` at `at`, or `None` when `bytes` ends first.
pub(crate) fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(array_at(bytes, at)?))
}

fn array_at<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_refuses_short_input() {
        let b = [1, 0, 0, 0, 0, 0, 0, 0, 2];
        assert_eq!(u16_at(&b, 0), Some(1));
        assert_eq!(u32_at(&b, 0), Some(1));
        assert_eq!(u64_at(&b, 0), Some(1));
        assert_eq!(u64_at(&b, 1), Some(2 << 56));
        assert_eq!(u64_at(&b, 2), None);
        assert_eq!(u32_at(&b, usize::MAX - 1), None);
    }
}
