//! The `cbor` format: CBOR (RFC 8949) through `cbor4ii`.
//!
//! Why cbor4ii rather than ciborium: a [`Format`] is a trait object, so its deserializer has to
//! be type-erased (`erased_serde`). ciborium keeps its `Deserializer` type private and only
//! offers `from_reader::<T>()`, which cannot be erased without first building a whole
//! intermediate value tree. cbor4ii exposes its `Deserializer`, decodes straight from a slice
//! and refuses nesting deeper than 256 levels instead of overflowing the stack.

use cbor4ii::core::dec::Read as _;
use cbor4ii::core::utils::SliceReader;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::BoxError;
use crate::format::{DecodeSink, Format};
use crate::mismatch::TypeMismatch;

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
    Ok(cbor4ii::serde::to_writer(out, &value)?)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BoxError> {
    decode_with(bytes, |de| Ok(T::deserialize(de)?))
}

/// The one decode body, shared by the typed path and the erased [`Format::decode`]: `read`
/// deserializes the value (its error put into words), then no bytes may follow.
fn decode_with<R>(
    bytes: &[u8],
    read: impl FnOnce(&mut cbor4ii::serde::Deserializer<SliceReader<'_>>) -> Result<R, BoxError>,
) -> Result<R, BoxError> {
    let mut de = cbor4ii::serde::Deserializer::new(SliceReader::new(bytes));
    let value = read(&mut de).map_err(in_words)?;
    end(de)?;
    Ok(value)
}

/// Refuses bytes after the value.
fn end(de: cbor4ii::serde::Deserializer<SliceReader<'_>>) -> Result<(), BoxError> {
    let mut rest = de.into_inner();
    let trailing = match rest.fill(1) {
        Ok(reference) => !reference.as_ref().is_empty(),
        Err(never) => match never {},
    };
    if trailing {
        return Err("trailing bytes after the CBOR value".into());
    }
    Ok(())
}

/// CBOR through `cbor4ii`: compact, binary-safe (byte strings stay byte strings).
#[derive(Debug, Default, Clone, Copy)]
pub struct Cbor;

impl Format for Cbor {
    fn encode(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), BoxError> {
        encode(value, out)
    }

    fn decode(&self, bytes: &[u8], sink: &mut DecodeSink<'_>) -> Result<(), BoxError> {
        decode_with(bytes, |de| {
            Ok(sink(&mut <dyn erased_serde::Deserializer>::erase(de))?)
        })
    }
}

type DecodeError = cbor4ii::serde::DecodeError<std::convert::Infallible>;

/// cbor4ii reports errors by their `Debug` form (`Core(Mismatch { name: "array", found: 100
/// })`): put the common ones into words. Through erased-serde only that text arrives, so the
/// text is read when the structured error is gone.
fn in_words(error: BoxError) -> BoxError {
    use cbor4ii::core::error::DecodeError as Core;
    let Some(structured) = error.downcast_ref::<DecodeError>() else {
        return match mismatch_in_text(&error.to_string()) {
            Some(mismatch) => Box::new(mismatch),
            None => error,
        };
    };
    let words = match structured {
        DecodeError::Core(Core::Mismatch { name, found }) => match mismatch(name, *found) {
            Ok(mismatch) => return Box::new(mismatch),
            Err(words) => words,
        },
        DecodeError::Core(Core::Eof { name, .. }) => format!("truncated inside {name}"),
        DecodeError::Core(Core::RequireLength { name, found }) => {
            let found = match found {
                cbor4ii::core::error::Len::Small(n) => n.to_string(),
                cbor4ii::core::error::Len::Indefinite => "indefinite".to_owned(),
                cbor4ii::core::error::Len::Big => "more than 65535".to_owned(),
            };
            format!("stored a {name} of length {found}, which is not the length asked for")
        }
        DecodeError::Core(Core::RequireUtf8 { name }) => format!("{name} is not valid UTF-8"),
        DecodeError::Core(Core::CastOverflow { name }) => format!("{name} out of range"),
        DecodeError::Core(Core::DepthOverflow { .. }) => {
            "nests deeper than cbor4ii's 256-level limit".to_owned()
        }
        DecodeError::Core(Core::Unsupported { name, found }) => {
            format!("unsupported CBOR item 0x{found:02x} where {name} was expected")
        }
        DecodeError::Custom(message) => return message.to_string().into(),
        _ => return error,
    };
    words.into()
}

/// `Mismatch { name: "array", found: 100 }` inside an error's text.
fn mismatch_in_text(text: &str) -> Option<TypeMismatch> {
    let rest = &text[text.find("Mismatch { name: \"")? + "Mismatch { name: \"".len()..];
    let (name, rest) = rest.split_once('"')?;
    let found = rest.strip_prefix(", found: ")?;
    let digits = found
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(found.len());
    let found: u8 = found[..digits].parse().ok()?;
    mismatch(name, found).ok()
}

/// A mismatch between the item at `initial` and what `name` wanted, or (`Err`) the words for
/// an integer too wide for the integer type asked for, which is not a mismatch of kinds.
fn mismatch(name: &str, initial: u8) -> Result<TypeMismatch, String> {
    if initial >> 5 <= 1 && integer_type(name) {
        return Err(format!("the stored integer does not fit {name}"));
    }
    Ok(TypeMismatch {
        stored: item_in_words(initial).to_owned(),
        expected: expected_in_words(name),
    })
}

fn integer_type(name: &str) -> bool {
    name.starts_with(['u', 'i']) && name[1..].parse::<u8>().is_ok()
}

/// A CBOR item's initial byte in words (RFC 8949 section 3: the major type is the top 3 bits).
fn item_in_words(initial: u8) -> &'static str {
    match (initial >> 5, initial) {
        (0 | 1, _) => "an integer",
        (2, _) => "a byte string",
        (3, _) => "a text string",
        (4, _) => "a sequence",
        (5, _) => "a map",
        (6, _) => "a tagged value",
        (_, 0xf4 | 0xf5) => "a boolean",
        (_, 0xf6) => "null",
        (_, 0xf7) => "undefined",
        (_, 0xf9..=0xfb) => "a float",
        _ => "a simple value",
    }
}

/// What cbor4ii was decoding (`array`, `str`, `u8`) in the words serde uses.
fn expected_in_words(name: &str) -> String {
    match name {
        "array" | "seq" | "tuple" => "a sequence".to_owned(),
        "map" | "struct" => "a map".to_owned(),
        "str" | "string" | "char" => "a text string".to_owned(),
        "bytes" | "bytes_buf" => "a byte string".to_owned(),
        "bool" => "a boolean".to_owned(),
        "f16" | "f32" | "f64" | "float" => "a float".to_owned(),
        "null" | "unit" => "null".to_owned(),
        integer if integer_type(integer) => format!("an integer ({integer})"),
        other => other.to_owned(),
    }
}
