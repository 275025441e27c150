//! The `json` format: `serde_json`, compact output.
//!
//! Floats round-trip exactly (the `float_roundtrip` feature of serde_json is on); NaN and the
//! infinities are written as `null`, as serde_json does. Byte strings become arrays of numbers.
//! Nesting deeper than 128 levels is refused on decode rather than risking the stack.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::de::SliceRead;

use crate::error::BoxError;
use crate::format::{DecodeSink, Format};

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
    Ok(serde_json::to_writer(out, value)?)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BoxError> {
    decode_with(bytes, |de| Ok(T::deserialize(de)?))
}

/// The one decode body, shared by the typed path and the erased [`Format::decode`]: `read`
/// deserializes the value, then nothing but whitespace may follow.
fn decode_with<R>(
    bytes: &[u8],
    read: impl FnOnce(&mut serde_json::Deserializer<SliceRead<'_>>) -> Result<R, BoxError>,
) -> Result<R, BoxError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = read(&mut de)?;
    de.end()?;
    Ok(value)
}

/// JSON through `serde_json`. Python's `json.loads` reads what it writes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Json;

impl Format for Json {
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
