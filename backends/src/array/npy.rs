//! numpy's `.npy` file format, versions 1.0, 2.0 and 3.0: reading headers and arrays, writing
//! version 1.0 (2.0 when the header would not fit).
//!
//! ```text
//! 0   6   b"\x93NUMPY"
//! 6   1   major version (1, 2 or 3)
//! 7   1   minor version (0)
//! 8   2|4 header length, u16 LE (1.x) or u32 LE (2.x, 3.x)
//! ..  ..  header: a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//!         padded with spaces and a final '\n' so the data starts at a multiple of 64
//! ..  ..  data, C order unless fortran_order
//! ```

use std::io::{self, Read, Write};

use super::dtype::{DType, Element};
use super::layout::{element_count, MAX_NDIM};

const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy pads headers so the data starts at a multiple of this.
const NPY_ALIGN: usize = 64;
/// Longest header accepted; numpy's own limit is 10,000 bytes for untrusted files.
const MAX_HEADER: usize = 1 << 20;

/// Why a `.npy` stream could not be used.
#[derive(Debug)]
pub(crate) enum NpyError {
    /// Reading failed.
    Io(io::Error),
    /// The bytes are not a well-formed `.npy` file.
    Corrupt(String),
    /// A well-formed file this crate does not handle (object or structured dtypes, fortran
    /// order, complex numbers).
    Unsupported(String),
    /// A well-formed file of another element type than the caller asked for.
    WrongType(String),
}

impl From<io::Error> for NpyError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            NpyError::Corrupt("the file ends before its header or data does".into())
        } else {
            NpyError::Io(e)
        }
    }
}

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NpyHeader {
    pub dtype: DType,
    pub shape: Vec<u64>,
    /// The data is stored big-endian and must be byte-swapped.
    pub big_endian: bool,
}

impl NpyHeader {
    /// Bytes of data that follow the header.
    pub fn data_len(&self) -> Option<u64> {
        element_count(&self.shape)?.checked_mul(self.dtype.size() as u64)
    }
}

#[derive(Debug)]
enum PyValue {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
    Other(String),
}

/// A tiny parser for the one dict literal numpy writes.
struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.at < self.s.len() && self.s[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.at).copied()
    }
    fn eat(&mut self, c: u8) -> Result<(), NpyError> {
        if self.peek() == Some(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(NpyError::Corrupt(format!(
                "npy header: expected '{}' at byte {}",
                c as char, self.at
            )))
        }
    }
    fn string(&mut self) -> Result<String, NpyError> {
        let q = self.peek().filter(|c| *c == b'\'' || *c == b'"');
        let q = q.ok_or_else(|| NpyError::Corrupt("npy header: expected a string".into()))?;
        self.at += 1;
        let start = self.at;
        while self.at < self.s.len() && self.s[self.at] != q {
            self.at += 1;
        }
        if self.at == self.s.len() {
            return Err(NpyError::Corrupt("npy header: unterminated string".into()));
        }
        let out = String::from_utf8_lossy(&self.s[start..self.at]).into_owned();
        self.at += 1;
        Ok(out)
    }
    fn value(&mut self) -> Result<PyValue, NpyError> {
        match self.peek() {
            Some(b'\'' | b'"') => Ok(PyValue::Str(self.string()?)),
            Some(b'(') => {
                self.at += 1;
                let mut dims = Vec::new();
                loop {
                    match self.peek() {
                        Some(b')') => {
                            self.at += 1;
                            return Ok(PyValue::Tuple(dims));
                        }
                        Some(_) if dims.len() == MAX_NDIM => {
                            return Err(NpyError::Unsupported(format!(
                                "npy shape has more than the {MAX_NDIM} dimensions this store keeps"
                            )))
                        }
                        Some(c) if c.is_ascii_digit() => {
                            let start = self.at;
                            while self.at < self.s.len() && self.s[self.at].is_ascii_digit() {
                                self.at += 1;
                            }
                            let text =
                                std::str::from_utf8(&self.s[start..self.at]).expect("ASCII digits");
                            let d = text.parse::<u64>().map_err(|_| {
                                NpyError::Corrupt(format!("npy header: dimension {text} too large"))
                            })?;
                            dims.push(d);
                            // Python 2 wrote longs as `3L`.
                            if self.s.get(self.at) == Some(&b'L') {
                                self.at += 1;
                            }
                            if self.peek() == Some(b',') {
                                self.at += 1;
                            }
                        }
                        _ => {
                            return Err(NpyError::Corrupt(
                                "npy header: shape is not a tuple of integers".into(),
                            ))
                        }
                    }
                }
            }
            Some(_) => {
                let rest = &self.s[self.at..];
                for (word, b) in [(&b"True"[..], true), (&b"False"[..], false)] {
                    if rest.starts_with(word) {
                        self.at += word.len();
                        return Ok(PyValue::Bool(b));
                    }
                }
                // A list (structured dtype) or anything else: skip to the next top-level
                // comma so the caller can report it by name.
                let start = self.at;
                let mut depth = 0i32;
                while self.at < self.s.len() {
                    match self.s[self.at] {
                        b'[' | b'(' | b'{' => depth += 1,
                        b']' | b')' => depth -= 1,
                        b'}' if depth == 0 => break,
                        b'}' => depth -= 1,
                        b',' if depth == 0 => break,
                        _ => {}
                    }
                    self.at += 1;
                }
                Ok(PyValue::Other(
                    String::from_utf8_lossy(&self.s[start..self.at]).into_owned(),
                ))
            }
            None => Err(NpyError::Corrupt("npy header: ends inside the dict".into())),
        }
    }
}

fn parse_descr(descr: &str) -> Result<(DType, bool), NpyError> {
    let unsupported = || NpyError::Unsupported(format!("npy dtype {descr:?} is not supported"));
    let mut chars = descr.chars();
    let order = chars.next().ok_or_else(unsupported)?;
    let kind = chars.next().ok_or_else(unsupported)?;
    let size: usize = chars.as_str().parse().map_err(|_| unsupported())?;
    let big = match order {
        // This crate only builds for little-endian targets, so native order is little.
        '<' | '|' | '=' => false,
        '>' => true,
        _ => return Err(unsupported()),
    };
    let dtype = DType::from_kind(kind, size).ok_or_else(unsupported)?;
    Ok((dtype, big && size > 1))
}

/// Reads the magic, version and header dict, leaving `r` at the first data byte.
pub(crate) fn read_header(r: &mut dyn Read) -> Result<NpyHeader, NpyError> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic[..6] != NPY_MAGIC {
        return Err(NpyError::Corrupt("not a .npy file (bad magic)".into()));
    }
    let (major, minor) = (magic[6], magic[7]);
    let header_len = match major {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)?;
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)?;
            u32::from_le_bytes(b) as usize
        }
        _ => {
            return Err(NpyError::Unsupported(format!(
                ".npy format version {major}.{minor} is not supported (1.0 to 3.0 are)"
            )))
        }
    };
    if header_len > MAX_HEADER {
        return Err(NpyError::Corrupt(format!(
            "npy header of {header_len} bytes is too long"
        )));
    }
    let header: Vec<u8> = read_elements(r, header_len)?;
    let mut p = Parser { s: &header, at: 0 };
    p.eat(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    while p.peek() != Some(b'}') {
        let key = p.string()?;
        p.eat(b':')?;
        let value = p.value()?;
        match (key.as_str(), value) {
            ("descr", PyValue::Str(s)) => descr = Some(s),
            ("descr", PyValue::Other(s)) => {
                return Err(NpyError::Unsupported(format!(
                    "npy structured dtype {s} is not supported"
                )))
            }
            ("fortran_order", PyValue::Bool(b)) => fortran = Some(b),
            ("shape", PyValue::Tuple(t)) => shape = Some(t),
            (k, v) => {
                return Err(NpyError::Corrupt(format!(
                    "npy header: unexpected entry {k:?}: {v:?}"
                )))
            }
        }
        if p.peek() == Some(b',') {
            p.at += 1;
        }
    }
    let (Some(descr), Some(fortran), Some(shape)) = (descr, fortran, shape) else {
        return Err(NpyError::Corrupt(
            "npy header lacks 'descr', 'fortran_order' or 'shape'".into(),
        ));
    };
    let (dtype, big_endian) = parse_descr(&descr)?;
    if fortran && shape.len() > 1 {
        return Err(NpyError::Unsupported(
            "fortran-order (column-major) .npy arrays are not supported: save a C-order copy \
             (numpy.ascontiguousarray) first"
                .into(),
        ));
    }
    if shape.len() > MAX_NDIM {
        return Err(NpyError::Unsupported(format!(
            "{} dimensions exceed the {MAX_NDIM} this store keeps",
            shape.len()
        )));
    }
    let h = NpyHeader {
        dtype,
        shape,
        big_endian,
    };
    if h.data_len().is_none() {
        return Err(NpyError::Corrupt(format!(
            "npy shape {:?} overflows",
            h.shape
        )));
    }
    Ok(h)
}

/// Reverses the byte order of every `size`-byte element of `data`.
pub(crate) fn swap_bytes(data: &mut [u8], size: usize) {
    if size > 1 {
        for e in data.chunks_exact_mut(size) {
            e.reverse();
        }
    }
}

/// The `.npy` header (magic through padding) for a C-order little-endian array.
pub(crate) fn encode_header(dtype: DType, shape: &[u64]) -> Vec<u8> {
    let shape_text = match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}",
        dtype.npy_descr()
    );
    // Version 1.0 stores the header length in a u16; fall back to 2.0 (u32) when it is longer.
    let (major, len_size) = if 10 + dict.len() < 65_000 {
        (1u8, 2)
    } else {
        (2u8, 4)
    };
    let prefix = 8 + len_size;
    let total = (prefix + dict.len() + 1).next_multiple_of(NPY_ALIGN);
    let header_len = total - prefix;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[major, 0]);
    if major == 1 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

/// Writes a whole `.npy` file: header, then `data` (little-endian elements, C order).
pub(crate) fn write_npy(
    w: &mut dyn Write,
    dtype: DType,
    shape: &[u64],
    data: &[u8],
) -> io::Result<()> {
    w.write_all(&encode_header(dtype, shape))?;
    w.write_all(data)
}

/// Reads a whole `.npy` stream of `T` elements into a `Vec<T>` plus its shape.
pub(crate) fn read_npy<T: Element>(r: &mut dyn Read) -> Result<(Vec<T>, Vec<u64>), NpyError> {
    let h = read_header(r)?;
    if h.dtype != T::DTYPE {
        return Err(NpyError::WrongType(format!(
            "the .npy file holds {}, not the requested {}",
            h.dtype,
            T::DTYPE
        )));
    }
    let n = element_count(&h.shape).unwrap_or(0);
    let n = usize::try_from(n)
        .map_err(|_| NpyError::Unsupported("array too large for this platform".into()))?;
    let mut v: Vec<T> = read_elements(r, n)?;
    if h.big_endian {
        swap_bytes(bytemuck::cast_slice_mut(&mut v), h.dtype.size());
    }
    Ok((v, h.shape))
}

/// Bytes read per step by [`read_elements`].
const READ_CHUNK: usize = 1 << 20;

/// Reads exactly `count` elements from `r`, growing the buffer only as the bytes arrive: a
/// count claimed by a header costs memory only once the reader has delivered that much
/// (capacity stays within twice what was read plus one 1 MiB chunk, and never above `count`).
/// A reader that ends early is [`NpyError::Corrupt`].
pub(crate) fn read_elements<T: Element>(
    r: &mut dyn Read,
    count: usize,
) -> Result<Vec<T>, NpyError> {
    let per_chunk = (READ_CHUNK / std::mem::size_of::<T>()).max(1);
    let mut v: Vec<T> = Vec::new();
    while v.len() < count {
        let start = v.len();
        let end = start + per_chunk.min(count - start);
        if v.capacity() < end {
            // Geometric growth (amortised O(1) per element), capped at the claimed count.
            let target = end.max(start.saturating_mul(2).min(count));
            v.reserve_exact(target - start);
        }
        v.resize(end, T::zeroed());
        r.read_exact(bytemuck::cast_slice_mut(&mut v[start..]))?;
    }
    Ok(v)
}

/// The body of a fuzz target for the `.npy` parser (the proptests below drive it on every
/// test run, and `fuzz/` through `cacher_store::fuzzing`): every reader over `bytes` may refuse, never
/// panic, and never allocates more than the input delivers plus one chunk.
#[cfg_attr(
    not(any(test, feature = "fuzzing")),
    expect(
        dead_code,
        reason = "called by the proptests and by fuzz/ (feature `fuzzing`)"
    )
)]
pub(crate) fn fuzz_entry(bytes: &[u8]) {
    let _ = read_header(&mut &bytes[..]);
    let _ = read_npy::<u8>(&mut &bytes[..]);
    let _ = read_npy::<f32>(&mut &bytes[..]);
    let _ = read_npy::<u16>(&mut &bytes[..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_headers_are_64_byte_aligned_and_parse_back() {
        for shape in [vec![], vec![0], vec![3], vec![2, 3, 4], vec![1; 32]] {
            for d in DType::ALL {
                let h = encode_header(d, &shape);
                assert_eq!(h.len() % 64, 0);
                assert_eq!(*h.last().unwrap(), b'\n');
                let got = read_header(&mut &h[..]).unwrap();
                assert_eq!(got.dtype, d);
                assert_eq!(got.shape, shape);
                assert!(!got.big_endian);
            }
        }
    }

    #[test]
    fn big_endian_npy_is_byte_swapped_on_read() {
        let mut file = b"\x93NUMPY\x01\x00".to_vec();
        let dict = b"{'descr': '>u2', 'fortran_order': False, 'shape': (2,), }\n";
        file.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        file.extend_from_slice(dict);
        file.extend_from_slice(&[0x01, 0x02, 0x03, 0x04]);
        let (v, shape) = read_npy::<u16>(&mut &file[..]).unwrap();
        assert_eq!(shape, vec![2]);
        assert_eq!(v, vec![0x0102, 0x0304]);
    }

    #[test]
    fn malformed_npy_headers_are_corrupt_not_panics() {
        let with_dict = |dict: &str| {
            let mut f = b"\x93NUMPY\x01\x00".to_vec();
            f.extend_from_slice(&(dict.len() as u16).to_le_bytes());
            f.extend_from_slice(dict.as_bytes());
            f
        };
        let corrupt = |f: &[u8]| matches!(read_header(&mut &f[..]), Err(NpyError::Corrupt(_)));
        assert!(corrupt(b"\x93NUMPX\x01\x00\x00\x00"));
        assert!(corrupt(b"\x93NUM"));
        assert!(corrupt(&with_dict("{'descr': '<f4', 'shape': (2,)}")));
        assert!(corrupt(&with_dict(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (x,)}"
        )));
        assert!(corrupt(&with_dict("{'descr': '<f4")));
        assert!(corrupt(&with_dict(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}"
        )));
        let unsupported =
            |f: &[u8]| matches!(read_header(&mut &f[..]), Err(NpyError::Unsupported(_)));
        assert!(unsupported(&with_dict(
            "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }"
        )));
        assert!(unsupported(&with_dict(
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }"
        )));
        assert!(unsupported(&with_dict(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }"
        )));
        // Fortran order is the same bytes as C order for 0-d and 1-d arrays.
        assert!(read_header(
            &mut &with_dict("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }")[..]
        )
        .is_ok());
    }

    #[test]
    fn a_shape_with_too_many_dimensions_is_refused_while_parsing() {
        let dims = vec!["1"; 100_000].join(", ");
        let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
        let mut f = b"\x93NUMPY\x02\x00".to_vec();
        f.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        f.extend_from_slice(dict.as_bytes());
        assert!(matches!(
            read_header(&mut &f[..]),
            Err(NpyError::Unsupported(_))
        ));
    }

    #[test]
    fn read_elements_grows_only_with_what_the_reader_delivers() {
        let err = read_elements::<u64>(&mut &[0u8; 100][..], 1 << 40).unwrap_err();
        assert!(matches!(err, NpyError::Corrupt(_)), "{err:?}");
        let got: Vec<u16> = read_elements(&mut &[1u8, 0, 2, 0][..], 2).unwrap();
        assert_eq!(got, vec![1, 2]);
        let big = vec![3u8; (5 << 20) + 3];
        let got: Vec<u8> = read_elements(&mut &big[..], big.len()).unwrap();
        assert_eq!(got, big);
        assert!(got.capacity() <= big.len());
    }
}
