//! The `pickle` format: Python's pickle protocol for plain data, read and written here.
//!
//! **Writing** uses pickle protocol 3, which every Python 3 reads with `pickle.loads`, byte
//! for byte as serde-pickle 1.2 wrote it (entries written before keep their bytes). Byte
//! strings (`serde_bytes`) become `bytes`, strings `str`, maps `dict`, sequences `list`,
//! tuples `tuple`, `None`/unit `None`, enums the serde external tagging (`'Variant'` or
//! `{'Variant': data}`). Every integer type, `i128` and `u128` included, becomes an exact
//! Python `int`. A map with sequence keys (`HashMap<Vec<u8>, _>`) becomes a dict with list
//! keys, which this reader reads back but CPython's `pickle.loads` refuses (lists are
//! unhashable in Python).
//!
//! **Reading** accepts protocols 0–5 as Python writes them for plain data: dict, list,
//! tuple, set, frozenset, str, bytes, bytearray, int, float, bool, None, nested. Nothing is
//! ever executed. The stream is first walked without building anything (`scan`), which
//! refuses, with a clear [`Error::Decode`]:
//! - any global other than the plain-data constructors (`builtins.set`, `frozenset`,
//!   `list`, `bytes`, `bytearray`, `int`, and `_codecs.encode`, which Python uses for
//!   `bytes` under protocols 0–2): e.g. `pickle references global os.system`;
//! - the opcodes that build arbitrary objects or reach outside the stream (`INST`, `OBJ`,
//!   `NEWOBJ`, `NEWOBJ_EX`, `BUILD`, `PERSID`, `BINPERSID`, `EXT1/2/4`, out-of-band buffers);
//! - nesting deeper than 128 levels, and memo references that would expand the values
//!   serde sees past `16 × input length + 1 Mi` values in all (a "billion laughs" pickle),
//!   which would otherwise exhaust the stack or memory. Both are computed over the whole
//!   stream once it has been walked, so a container filled through the memo after it was
//!   put inside another still counts at its final depth. The walk itself needs a few dozen
//!   bytes per opcode of the input (stack, memo and graph entries).
//!
//! Then `load` runs the stream as CPython's unpickler does: memo references are shared
//! (a list appended to after it was shared is seen filled everywhere), dict keys Python
//! considers equal (`1`, `1.0`, `True`) are one key holding the last value, sets drop equal
//! elements, Python 2 `str`s are decoded as ASCII (CPython's default), `__builtin__` names
//! are mapped only under protocols 0–2 (CPython's `fix_imports`). Integers are exact from
//! `-2**127` to `2**128 - 1` and offered to serde as `i64`, `u64`, `i128` or `u128`; an int
//! beyond that is an error naming the limit. The allowed globals are computed as CPython
//! computes them (`_codecs.encode` and `bytes`/`bytearray` with their encoding: `utf-8`,
//! `latin-1`, `ascii` and their aliases) or refused (`int('ff', 16)`, other codecs, wrong
//! argument counts). Strings with lone surrogates, which CPython allows, are refused: a Rust
//! string cannot hold them.
//!
//! [`Error::Decode`]: crate::Error::Decode

mod de;
mod globals;
mod graph;
mod load;
mod ops;
mod scan;
mod text;
mod value;
mod write;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::BoxError;
use crate::format::{DecodeSink, Format};

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
    Ok(write::to_vec(value, out)?)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BoxError> {
    decode_with(bytes, |value| Ok(T::deserialize(value)?))
}

/// The one decode body, shared by the typed path and the erased [`Format::decode`]: the
/// opcode pre-scan (plain data only, bounded depth and expansion), then the reader, then
/// `read` on the value it built.
fn decode_with<R>(
    bytes: &[u8],
    read: impl FnOnce(value::PyValue) -> Result<R, BoxError>,
) -> Result<R, BoxError> {
    scan::check_plain_data(bytes)?;
    read(load::load(bytes)?)
}

/// Python pickle for plain data; loading never executes code and
/// refuses anything that is not plain data.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pickle;

impl Format for Pickle {
    fn encode(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), BoxError> {
        encode(value, out)
    }

    fn decode(&self, bytes: &[u8], sink: &mut DecodeSink<'_>) -> Result<(), BoxError> {
        decode_with(bytes, |value| {
            Ok(sink(&mut <dyn erased_serde::Deserializer>::erase(value))?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<serde_json::Value, String> {
        let mut out = None;
        Pickle
            .decode(bytes, &mut |de| {
                out = Some(erased_serde::deserialize::<serde_json::Value>(de)?);
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        Ok(out.unwrap())
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused_before_decoding() {
        let mut bytes = b"\x80\x02".to_vec();
        bytes.extend(std::iter::repeat_n(b']', 200));
        bytes.extend(std::iter::repeat_n(b'a', 199));
        bytes.push(b'.');
        let err = decode(&bytes).unwrap_err();
        assert!(err.contains("deeper than 128"), "{err}");

        let mut ok = b"\x80\x02".to_vec();
        ok.extend(std::iter::repeat_n(b']', 100));
        ok.extend(std::iter::repeat_n(b'a', 99));
        ok.push(b'.');
        assert!(decode(&ok).is_ok());
    }

    #[test]
    fn memo_expansion_bombs_are_refused() {
        // L0 = []; Li = [L(i-1), L(i-1)]: 2^40 values from ~250 bytes.
        let mut bytes = b"\x80\x02]q\x00".to_vec();
        for i in 1u8..=40 {
            bytes.extend_from_slice(&[b'(', b'h', i - 1, b'h', i - 1, b'l', b'q', i]);
        }
        bytes.push(b'.');
        let err = decode(&bytes).unwrap_err();
        assert!(err.contains("expands to more than"), "{err}");
    }

    /// Issue 9: N empty lists, memoized, then `memo[i].extend([memo[i + 1]])` for every i:
    /// each list is filled after it was put inside the previous one.
    fn nested_through_memo_references(n: u32) -> Vec<u8> {
        let mut bytes = b"\x80\x02".to_vec();
        for i in 0..n {
            bytes.extend_from_slice(b"]r");
            bytes.extend_from_slice(&i.to_le_bytes());
            bytes.push(b'0');
        }
        for i in 0..n - 1 {
            bytes.push(b'j');
            bytes.extend_from_slice(&i.to_le_bytes());
            bytes.extend_from_slice(b"(j");
            bytes.extend_from_slice(&(i + 1).to_le_bytes());
            bytes.extend_from_slice(b"e0");
        }
        bytes.push(b'j');
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.push(b'.');
        bytes
    }

    #[test]
    fn nesting_built_late_through_memo_references_is_refused_not_a_stack_overflow() {
        // ~2 MB: this aborted the process with a stack overflow before the graph check.
        let bytes = nested_through_memo_references(100_000);
        let err = decode(&bytes).unwrap_err();
        assert!(err.contains("deeper than 128"), "{err}");
        // The same shape within the limit still reads, as nested lists.
        let mut value = decode(&nested_through_memo_references(100)).unwrap();
        let mut depth = 1;
        while let Some(inner) = value.as_array().and_then(|a| a.first()).cloned() {
            value = inner;
            depth += 1;
        }
        assert_eq!(depth, 100);
    }

    #[test]
    fn duplicated_references_count_against_the_limit_once_each() {
        // A list of 1000 ints, then DUP 10,000 times (10,000 references to it, each walked
        // in full) into a list: 10 million values from ~13 KB.
        let mut bytes = b"\x80\x02(](".to_vec();
        bytes.extend(std::iter::repeat_n(&b"K\x01"[..], 1000).flatten());
        bytes.extend_from_slice(b"e");
        bytes.extend(std::iter::repeat_n(b'2', 10_000));
        bytes.extend_from_slice(b"l.");
        let err = decode(&bytes).unwrap_err();
        assert!(err.contains("expands to more than"), "{err}");
    }

    #[test]
    fn shared_strings_through_the_memo_are_fine() {
        // ["k", "k"] with the second one a memo reference, as Python writes repeated keys.
        let bytes = b"\x80\x02](X\x01\x00\x00\x00kq\x01h\x01e.";
        assert_eq!(decode(bytes).unwrap(), serde_json::json!(["k", "k"]));
    }

    #[test]
    fn truncated_and_unknown_opcodes_are_malformed() {
        for bytes in [
            &b"\x80\x02X\xff\xff"[..],
            b"\x80\x02\xff.",
            b"\x80\x02]",
            b"a.",
        ] {
            let err = decode(bytes).unwrap_err();
            assert!(err.contains("malformed pickle"), "{bytes:?}: {err}");
        }
    }
}
