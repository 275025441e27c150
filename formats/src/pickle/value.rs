//! The Python objects a pickle builds, as the reader holds them before serde sees them.
//!
//! Mutable containers are shared (`Rc<RefCell<..>>`) as Python shares them through the memo,
//! so `memo[i].append(x)` after `memo[i]` was put elsewhere is seen everywhere, as in CPython.
//! The pre-scan has already refused cycles, deep nesting and memo expansion bombs, so walking
//! these values recursively is bounded.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use crate::error::BoxError;

/// A Python `int` that some Rust integer type can hold: from `-2^127` to `2^128 - 1`.
/// Normalised (`I` whenever the value fits `i128`), so derived equality is numeric equality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum PyInt {
    I(i128),
    /// Above `i128::MAX`.
    U(u128),
}

impl PyInt {
    pub(super) fn from_i128(value: i128) -> Self {
        PyInt::I(value)
    }

    pub(super) fn from_u128(value: u128) -> Self {
        match i128::try_from(value) {
            Ok(value) => PyInt::I(value),
            Err(_) => PyInt::U(value),
        }
    }

    /// From the little-endian two's-complement bytes of `LONG1`/`LONG4`.
    pub(super) fn from_le_twos_complement(bytes: &[u8]) -> Result<Self, BoxError> {
        let Some(&last) = bytes.last() else {
            return Ok(PyInt::I(0));
        };
        let negative = last & 0x80 != 0;
        let fill = if negative { 0xff } else { 0x00 };
        // Leading sign bytes carry no value: drop them (Python pads, and so did serde-pickle
        // for unsigned values).
        let mut len = bytes.len();
        while len > 0 && bytes[len - 1] == fill {
            len -= 1;
        }
        let significant = &bytes[..len];
        if significant.len() > 16 {
            return Err(beyond_128_bits());
        }
        let mut le = [fill; 16];
        le[..significant.len()].copy_from_slice(significant);
        let unsigned = u128::from_le_bytes(le);
        if negative {
            // Sign-extended into 16 bytes; the top bit must still say negative.
            let value = unsigned as i128;
            if value >= 0 {
                return Err(beyond_128_bits());
            }
            Ok(PyInt::I(value))
        } else {
            Ok(PyInt::from_u128(unsigned))
        }
    }

    /// From decimal text (`INT`/`LONG` arguments, with an optional `L` suffix already cut).
    pub(super) fn parse_decimal(text: &str) -> Result<Self, BoxError> {
        let (negative, digits) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("malformed pickle: bad integer {text:?}").into());
        }
        let digits = digits.trim_start_matches('0');
        let magnitude: u128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| beyond_128_bits())?
        };
        if negative {
            if magnitude > i128::MAX as u128 + 1 {
                return Err(beyond_128_bits());
            }
            Ok(PyInt::I(0i128.wrapping_sub_unsigned(magnitude)))
        } else {
            Ok(PyInt::from_u128(magnitude))
        }
    }

    /// The integer part of a float, as Python's `int(x)` truncates it.
    pub(super) fn from_f64_truncated(value: f64) -> Result<Self, BoxError> {
        if value.is_nan() {
            return Err("cannot convert float NaN to integer (CPython raises too)".into());
        }
        if value.is_infinite() {
            return Err("cannot convert float infinity to integer (CPython raises too)".into());
        }
        let value = value.trunc();
        // 2^127 and 2^128 are exact in f64.
        if value >= -(2f64.powi(127)) && value < 2f64.powi(127) {
            Ok(PyInt::I(value as i128))
        } else if value >= 0.0 && value < 2f64.powi(128) {
            Ok(PyInt::U(value as u128))
        } else {
            Err(beyond_128_bits())
        }
    }
}

impl fmt::Display for PyInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PyInt::I(value) => write!(f, "{value}"),
            PyInt::U(value) => write!(f, "{value}"),
        }
    }
}

pub(super) fn beyond_128_bits() -> BoxError {
    "pickle holds an integer beyond 128 bits: Rust integers read from pickle go from -2**127 \
     (i128::MIN) to 2**128 - 1 (u128::MAX)"
        .into()
}

/// A global the reader knows, referenced by `GLOBAL`/`STACK_GLOBAL` and called by `REDUCE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Global {
    Set,
    FrozenSet,
    List,
    ByteArray,
    Bytes,
    Int,
    CodecsEncode,
}

impl Global {
    /// The name Python 3 knows it by.
    pub(super) fn name(self) -> &'static str {
        match self {
            Global::Set => "builtins.set",
            Global::FrozenSet => "builtins.frozenset",
            Global::List => "builtins.list",
            Global::ByteArray => "builtins.bytearray",
            Global::Bytes => "builtins.bytes",
            Global::Int => "builtins.int",
            Global::CodecsEncode => "_codecs.encode",
        }
    }
}

/// A Python object.
#[derive(Debug, Clone)]
pub(super) enum PyValue {
    None,
    Bool(bool),
    Int(PyInt),
    Float(f64),
    /// A NaN, with its own identity: Python compares NaN keys by identity only.
    NaN(Rc<u64>),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    ByteArray(Rc<[u8]>),
    List(Rc<RefCell<Vec<PyValue>>>),
    Tuple(Rc<[PyValue]>),
    Dict(Rc<RefCell<Dict>>),
    Set(Rc<RefCell<Set>>),
    FrozenSet(Rc<[PyValue]>),
    Global(Global),
}

impl PyValue {
    pub(super) fn float(value: f64) -> Self {
        if value.is_nan() {
            PyValue::NaN(Rc::new(value.to_bits()))
        } else {
            PyValue::Float(value)
        }
    }

    /// Python's type name, for errors.
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            PyValue::None => "NoneType",
            PyValue::Bool(_) => "bool",
            PyValue::Int(_) => "int",
            PyValue::Float(_) | PyValue::NaN(_) => "float",
            PyValue::Str(_) => "str",
            PyValue::Bytes(_) => "bytes",
            PyValue::ByteArray(_) => "bytearray",
            PyValue::List(_) => "list",
            PyValue::Tuple(_) => "tuple",
            PyValue::Dict(_) => "dict",
            PyValue::Set(_) => "set",
            PyValue::FrozenSet(_) => "frozenset",
            PyValue::Global(_) => "global",
        }
    }

    /// What `for x in value` gives in Python, for the built-in iterables.
    pub(super) fn iterate(&self) -> Result<Vec<PyValue>, BoxError> {
        Ok(match self {
            PyValue::List(items) => items.borrow().clone(),
            PyValue::Tuple(items) | PyValue::FrozenSet(items) => items.to_vec(),
            PyValue::Set(set) => set.borrow().items.clone(),
            PyValue::Dict(dict) => dict
                .borrow()
                .entries
                .iter()
                .map(|(k, _)| k.clone())
                .collect(),
            PyValue::Str(text) => text
                .chars()
                .map(|c| PyValue::Str(Rc::from(c.encode_utf8(&mut [0; 4]) as &str)))
                .collect(),
            PyValue::Bytes(bytes) | PyValue::ByteArray(bytes) => bytes
                .iter()
                .map(|&b| PyValue::Int(PyInt::I(b.into())))
                .collect(),
            other => {
                return Err(format!(
                    "'{}' object is not iterable (CPython raises too)",
                    other.type_name()
                )
                .into())
            }
        })
    }

    /// The key Python's `==` and `hash` agree on, for deduplicating dict keys and set
    /// elements: `1`, `1.0` and `True` are one key; bytes and bytearray of equal content
    /// too; a NaN only equals itself. Lists, dicts and sets (unhashable in Python, but keys
    /// Rust maps may have written) compare by content.
    pub(super) fn key(&self) -> Key {
        match self {
            PyValue::None => Key::None,
            PyValue::Bool(b) => Key::Int(PyInt::I((*b).into())),
            PyValue::Int(i) => Key::Int(*i),
            PyValue::Float(f) => match PyInt::from_f64_truncated(*f) {
                Ok(int) if f.fract() == 0.0 => Key::Int(int),
                _ => Key::Float(f.to_bits()),
            },
            PyValue::NaN(identity) => Key::NaN(Rc::as_ptr(identity) as usize),
            PyValue::Str(s) => Key::Str(s.clone()),
            PyValue::Bytes(b) | PyValue::ByteArray(b) => Key::Bytes(b.clone()),
            PyValue::List(items) => Key::List(items.borrow().iter().map(PyValue::key).collect()),
            PyValue::Tuple(items) => Key::Tuple(items.iter().map(PyValue::key).collect()),
            PyValue::Set(set) => set_key(&set.borrow().items),
            PyValue::FrozenSet(items) => set_key(items),
            PyValue::Dict(dict) => {
                let mut pairs: Vec<(Key, Key)> = dict
                    .borrow()
                    .entries
                    .iter()
                    .map(|(k, v)| (k.key(), v.key()))
                    .collect();
                pairs.sort();
                Key::Dict(pairs)
            }
            PyValue::Global(global) => Key::Global(global.name()),
        }
    }
}

fn set_key(items: &[PyValue]) -> Key {
    let mut keys: Vec<Key> = items.iter().map(PyValue::key).collect();
    keys.sort();
    Key::Set(keys)
}

/// See [`PyValue::key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Key {
    None,
    Int(PyInt),
    Float(u64),
    NaN(usize),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    List(Vec<Key>),
    Tuple(Vec<Key>),
    Set(Vec<Key>),
    Dict(Vec<(Key, Key)>),
    Global(&'static str),
}

/// A Python dict: insertion order, and `d[k] = v` on an existing key keeps the first key
/// and its position and replaces the value, as CPython does.
#[derive(Debug, Default)]
pub(super) struct Dict {
    pub(super) entries: Vec<(PyValue, PyValue)>,
    index: HashMap<Key, usize>,
}

impl Dict {
    pub(super) fn insert(&mut self, key: PyValue, value: PyValue) {
        match self.index.get(&key.key()) {
            Some(&at) => self.entries[at].1 = value,
            None => {
                self.index.insert(key.key(), self.entries.len());
                self.entries.push((key, value));
            }
        }
    }
}

/// A Python set: the first of equal elements stays, in insertion order.
#[derive(Debug, Default)]
pub(super) struct Set {
    pub(super) items: Vec<PyValue>,
    index: std::collections::HashSet<Key>,
}

impl Set {
    pub(super) fn add(&mut self, item: PyValue) {
        if self.index.insert(item.key()) {
            self.items.push(item);
        }
    }

    pub(super) fn from_items(items: impl IntoIterator<Item = PyValue>) -> Self {
        let mut set = Set::default();
        for item in items {
            set.add(item);
        }
        set
    }
}

/// Refuses what Python cannot hash as a set element (dict keys are more lenient, see
/// [`PyValue::key`]): CPython raises `TypeError: unhashable type`.
pub(super) fn check_hashable(value: &PyValue) -> Result<(), BoxError> {
    match value {
        PyValue::List(_) | PyValue::Dict(_) | PyValue::Set(_) | PyValue::ByteArray(_) => {
            Err(format!(
                "unhashable type: '{}' in a set (CPython raises too)",
                value.type_name()
            )
            .into())
        }
        PyValue::Tuple(items) => items.iter().try_for_each(check_hashable),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long(bytes: &[u8]) -> Result<PyInt, String> {
        PyInt::from_le_twos_complement(bytes).map_err(|e| e.to_string())
    }

    #[test]
    fn long_opcodes_read_exactly_with_any_sign_padding() {
        assert_eq!(long(&[]), Ok(PyInt::I(0)));
        assert_eq!(long(&[0xff]), Ok(PyInt::I(-1)));
        assert_eq!(long(&[0xff; 40]), Ok(PyInt::I(-1)));
        assert_eq!(long(&[0x00; 40]), Ok(PyInt::I(0)));
        let mut max = u128::MAX.to_le_bytes().to_vec();
        max.push(0);
        assert_eq!(long(&max), Ok(PyInt::U(u128::MAX)));
        assert_eq!(long(&i128::MIN.to_le_bytes()), Ok(PyInt::I(i128::MIN)));
        let mut min = i128::MIN.to_le_bytes().to_vec();
        min.extend([0xff; 3]);
        assert_eq!(long(&min), Ok(PyInt::I(i128::MIN)));
        assert_eq!(long(&i128::MAX.to_le_bytes()), Ok(PyInt::I(i128::MAX)));
    }

    #[test]
    fn long_opcodes_beyond_128_bits_are_refused() {
        let mut two_128 = vec![0u8; 16];
        two_128.push(1);
        // -2^127 - 1: 0x7f..ff with a 0xff sign byte on top.
        let mut below_min = vec![0xffu8; 15];
        below_min.extend([0x7f, 0xff]);
        let mut huge_negative = vec![0u8; 16];
        huge_negative.push(0x80);
        for bytes in [two_128, below_min, huge_negative] {
            let err = long(&bytes).unwrap_err();
            assert!(err.contains("beyond 128 bits"), "{bytes:?}: {err}");
        }
    }

    #[test]
    fn decimal_integers_cover_the_128_bit_range_exactly() {
        let parse = |t: &str| PyInt::parse_decimal(t).map_err(|e| e.to_string());
        assert_eq!(
            parse("-170141183460469231731687303715884105728"),
            Ok(PyInt::I(i128::MIN))
        );
        assert_eq!(
            parse("340282366920938463463374607431768211455"),
            Ok(PyInt::U(u128::MAX))
        );
        assert_eq!(parse("-0"), Ok(PyInt::I(0)));
        assert_eq!(parse("+007"), Ok(PyInt::I(7)));
        for text in [
            "-170141183460469231731687303715884105729",
            "340282366920938463463374607431768211456",
            "9999999999999999999999999999999999999999999",
        ] {
            assert!(
                parse(text).unwrap_err().contains("beyond 128 bits"),
                "{text}"
            );
        }
        for text in ["", "-", "1.5", "0x10", "1_000"] {
            assert!(parse(text).unwrap_err().contains("malformed"), "{text}");
        }
    }

    #[test]
    fn floats_truncate_into_ints_at_the_128_bit_borders() {
        let two_127 = 2f64.powi(127);
        assert_eq!(
            PyInt::from_f64_truncated(two_127).unwrap(),
            PyInt::U(1 << 127)
        );
        assert_eq!(
            PyInt::from_f64_truncated(-two_127).unwrap(),
            PyInt::I(i128::MIN)
        );
        assert_eq!(PyInt::from_f64_truncated(-2.75).unwrap(), PyInt::I(-2));
        assert!(PyInt::from_f64_truncated(2f64.powi(128)).is_err());
        assert!(PyInt::from_f64_truncated(f64::INFINITY).is_err());
    }

    #[test]
    fn keys_are_equal_where_python_says_so() {
        let int = PyValue::Int(PyInt::I(1));
        assert_eq!(int.key(), PyValue::Bool(true).key());
        assert_eq!(int.key(), PyValue::Float(1.0).key());
        assert_eq!(PyValue::Float(-0.0).key(), PyValue::Int(PyInt::I(0)).key());
        assert_ne!(PyValue::Float(0.5).key(), PyValue::Int(PyInt::I(0)).key());
        assert_ne!(
            PyValue::Str("a".into()).key(),
            PyValue::Bytes(Rc::from(&b"a"[..])).key()
        );
        let nan = PyValue::float(f64::NAN);
        assert_eq!(nan.key(), nan.clone().key(), "the same NaN object");
        assert_ne!(nan.key(), PyValue::float(f64::NAN).key(), "another NaN");
    }
}
