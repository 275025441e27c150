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

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
    Ok(cbor4ii::serde::to_writer(out, &value)?)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BoxError> {
    let mut de = cbor4ii::serde::Deserializer::new(SliceReader::new(bytes));
    let value = T::deserialize(&mut de)?;
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
        let mut de = cbor4ii::serde::Deserializer::new(SliceReader::new(bytes));
        sink(&mut <dyn erased_serde::Deserializer>::erase(&mut de))?;
        end(de)
    }
}
