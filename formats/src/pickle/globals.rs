//! The globals a pickle may call, computed as CPython computes them, or refused.
//!
//! Python writes `bytes` under protocols 0–2 as `_codecs.encode(text, 'latin1')`, `set` and
//! `frozenset` as calls on a list, and `bytearray` as `bytearray(text, 'latin-1')` or
//! `bytearray(bytes)`. Each call here gives exactly what CPython's `pickle.loads` gives for
//! the same arguments, or an error: either CPython raises too, or the form is one this
//! reader does not implement (other codecs, `int` from text). Never a different value.

use std::rc::Rc;

use super::value::{check_hashable, Global, PyInt, PyValue, Set};
use crate::error::BoxError;

pub(super) fn call(global: Global, args: &[PyValue]) -> Result<PyValue, BoxError> {
    match global {
        Global::Set | Global::FrozenSet | Global::List => {
            let items = match args {
                [] => Vec::new(),
                [iterable] => iterable.iterate()?,
                _ => return Err(at_most_one(args.len())),
            };
            Ok(match global {
                Global::List => PyValue::List(Rc::new(items.into())),
                Global::Set => {
                    items.iter().try_for_each(check_hashable)?;
                    PyValue::Set(Rc::new(Set::from_items(items).into()))
                }
                _ => {
                    items.iter().try_for_each(check_hashable)?;
                    PyValue::FrozenSet(Rc::from(Set::from_items(items).items))
                }
            })
        }
        Global::ByteArray => Ok(PyValue::ByteArray(Rc::from(byte_string(args)?))),
        Global::Bytes => Ok(PyValue::Bytes(Rc::from(byte_string(args)?))),
        Global::Int => int(args),
        Global::CodecsEncode => codecs_encode(args),
    }
}

fn at_most_one(given: usize) -> BoxError {
    format!("expected at most 1 argument, got {given} (CPython raises too)").into()
}

/// `bytes` or `bytearray` called with `()`, `(bytes | bytearray | iterable of ints)` or
/// `(str, encoding[, errors])`. Python writes empty `bytes` under protocols 0-2 as
/// `bytes()`.
fn byte_string(args: &[PyValue]) -> Result<Vec<u8>, BoxError> {
    let bytes: Vec<u8> = match args {
        [] => Vec::new(),
        [PyValue::Str(_)] => {
            return Err("string argument without an encoding (CPython raises too)".into())
        }
        [PyValue::Str(text), encoding, rest @ ..] if rest.len() <= 1 => {
            encode(text, encoding, rest.first())?
        }
        [PyValue::Bytes(bytes) | PyValue::ByteArray(bytes)] => bytes.to_vec(),
        [PyValue::Int(_)] => {
            return Err(
                "an int argument (a run of zero bytes) is refused: Python never pickles it".into(),
            )
        }
        [iterable] if !matches!(iterable, PyValue::Bool(_) | PyValue::Global(_)) => iterable
            .iterate()?
            .iter()
            .map(|item| match item {
                PyValue::Int(PyInt::I(v @ 0..=255)) => Ok(*v as u8),
                PyValue::Int(_) => {
                    Err::<u8, BoxError>("byte must be in range(0, 256) (CPython raises too)".into())
                }
                other => Err(format!(
                    "'{}' object cannot be interpreted as an integer (CPython raises too)",
                    other.type_name()
                )
                .into()),
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(format!(
                "refused arguments ({}); only (), (bytes), (ints) and (str, encoding) are read",
                type_names(args)
            )
            .into())
        }
    };
    Ok(bytes)
}

fn type_names(args: &[PyValue]) -> String {
    args.iter()
        .map(PyValue::type_name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `int()`, `int(int | bool | float)`; `int(str[, base])` is refused.
fn int(args: &[PyValue]) -> Result<PyValue, BoxError> {
    let value = match args {
        [] => PyInt::I(0),
        [PyValue::Int(i)] => *i,
        [PyValue::Bool(b)] => PyInt::I((*b).into()),
        [PyValue::Float(f)] => PyInt::from_f64_truncated(*f)?,
        [PyValue::NaN(_)] => PyInt::from_f64_truncated(f64::NAN)?,
        _ => {
            return Err(format!(
                "refused arguments ({}); builtins.int is read only as int(), int(int), int(bool) and int(float)",
                type_names(args)
            )
            .into())
        }
    };
    Ok(PyValue::Int(value))
}

/// `_codecs.encode(obj, encoding='utf-8', errors='strict')`.
fn codecs_encode(args: &[PyValue]) -> Result<PyValue, BoxError> {
    let (text, encoding, errors) = match args {
        [PyValue::Str(text)] => (text, None, None),
        [PyValue::Str(text), encoding] => (text, Some(encoding), None),
        [PyValue::Str(text), encoding, errors] => (text, Some(encoding), Some(errors)),
        [first, ..] if args.len() <= 3 => {
            return Err(format!(
                "the object to encode is a '{}', not a str (CPython raises for text codecs; \
                 other codecs are not read)",
                first.type_name()
            )
            .into())
        }
        _ => {
            return Err(format!(
                "takes 1 to 3 arguments, got {} (CPython raises too)",
                args.len()
            )
            .into())
        }
    };
    let bytes = match encoding {
        None => text.as_bytes().to_vec(),
        Some(encoding) => encode(text, encoding, errors)?,
    };
    Ok(PyValue::Bytes(Rc::from(bytes)))
}

/// The codecs read: what `codecs.lookup` resolves to `utf-8`, `latin-1` or `ascii`.
#[derive(Clone, Copy)]
enum Codec {
    Utf8,
    Latin1,
    Ascii,
}

/// Python's `encodings.normalize_encoding`, lowercased as the codec registry does.
fn normalize(name: &str) -> String {
    let mut out = String::new();
    let mut punct = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || c == '.' {
            if punct && !out.is_empty() {
                out.push('_');
            }
            if c.is_ascii() {
                out.push(c);
            }
            punct = false;
        } else {
            punct = true;
        }
    }
    out
}

/// The aliases from CPython's `encodings/aliases.py` for the three codecs read.
fn codec(name: &str) -> Option<Codec> {
    let norm = normalize(name);
    let key = norm.replace('.', "_");
    let matches = |names: &[&str]| names.contains(&norm.as_str()) || names.contains(&key.as_str());
    if matches(&[
        "utf_8",
        "utf8",
        "u8",
        "utf",
        "utf8_ucs2",
        "utf8_ucs4",
        "cp65001",
    ]) {
        Some(Codec::Utf8)
    } else if matches(&[
        "latin_1",
        "latin1",
        "8859",
        "cp819",
        "csisolatin1",
        "ibm819",
        "iso8859",
        "iso8859_1",
        "iso_8859_1",
        "iso_8859_1_1987",
        "iso_ir_100",
        "l1",
        "latin",
    ]) {
        Some(Codec::Latin1)
    } else if matches(&[
        "ascii",
        "646",
        "ansi_x3.4_1968",
        "ansi_x3_4_1968",
        "ansi_x3.4_1986",
        "cp367",
        "csascii",
        "ibm367",
        "iso646_us",
        "iso_646.irv_1991",
        "iso_ir_6",
        "us",
        "us_ascii",
    ]) {
        Some(Codec::Ascii)
    } else {
        None
    }
}

/// `text.encode(encoding, errors)` for the codecs read.
fn encode(text: &str, encoding: &PyValue, errors: Option<&PyValue>) -> Result<Vec<u8>, BoxError> {
    let PyValue::Str(name) = encoding else {
        return Err(format!(
            "the encoding must be a str, not '{}' (CPython raises too)",
            encoding.type_name()
        )
        .into());
    };
    let errors = match errors {
        None => "strict",
        Some(PyValue::Str(errors)) => errors,
        Some(other) => {
            return Err(format!(
                "the errors argument must be a str, not '{}' (CPython raises too)",
                other.type_name()
            )
            .into())
        }
    };
    let Some(codec) = codec(name) else {
        return Err(format!(
            "encoding {name:?} is not read (only utf-8, latin-1 and ascii and their aliases); \
             CPython may know it, or raise LookupError for an unknown name"
        )
        .into());
    };
    let limit = match codec {
        Codec::Utf8 => return Ok(text.as_bytes().to_vec()),
        Codec::Latin1 => 0xff,
        Codec::Ascii => 0x7f,
    };
    // The error handler only matters when a character does not fit.
    if let Some(c) = text.chars().find(|&c| u32::from(c) > limit) {
        return Err(if errors == "strict" {
            format!(
                "{name:?} codec cannot encode character U+{:04X} (CPython raises \
                 UnicodeEncodeError too)",
                u32::from(c)
            )
        } else {
            format!("error handler {errors:?} is not read; only 'strict' is")
        }
        .into());
    }
    Ok(text.chars().map(|c| u32::from(c) as u8).collect())
}
