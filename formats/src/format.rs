//! The object-safe [`Format`] trait: serde values to bytes and back.
//!
//! Formats sit behind `Arc<dyn Format>` in the [`Registry`](crate::Registry), so the trait
//! cannot have generic methods. It speaks [`erased_serde`] instead: `encode` takes a
//! `&dyn erased_serde::Serialize` and `decode` hands a type-erased deserializer to a sink the
//! caller provides, which is where the concrete type is chosen. Users never see this: the typed
//! helpers are on [`Pipeline`](crate::Pipeline).

use std::borrow::Cow;

use crate::error::BoxError;

/// The callback a [`Format::decode`] hands its deserializer to. The pipeline's sink
/// deserializes the caller's type from it; the format then checks for trailing bytes.
pub type DecodeSink<'s> = dyn for<'a, 'de> FnMut(
        &'a mut (dyn erased_serde::Deserializer<'de> + 'a),
    ) -> Result<(), erased_serde::Error>
    + 's;

/// A way to turn serde values into bytes and back (JSON, CBOR, pickle, raw bytes or a user's
/// own). Implementations must not panic on any input to [`decode`](Format::decode): bad bytes
/// are an `Err`.
///
/// A user format registers under a name with
/// [`Registry::register_format`](crate::Registry::register_format); that name is what the
/// envelope stores, so it must stay the same for as long as values written with it exist.
///
/// ```
/// # #[cfg(feature = "zstd")]
/// # fn main() -> Result<(), cacher_formats::Error> {
/// use std::sync::Arc;
/// use cacher_formats::{BoxError, DecodeSink, Format, Registry};
///
/// /// JSON, pretty-printed: a user format built on serde_json.
/// struct PrettyJson;
///
/// impl Format for PrettyJson {
///     fn encode(&self, value: &dyn erased_serde::Serialize, out: &mut Vec<u8>) -> Result<(), BoxError> {
///         Ok(serde_json::to_writer_pretty(out, value)?)
///     }
///     fn decode(&self, bytes: &[u8], sink: &mut DecodeSink<'_>) -> Result<(), BoxError> {
///         let mut de = serde_json::Deserializer::from_slice(bytes);
///         sink(&mut <dyn erased_serde::Deserializer>::erase(&mut de))?;
///         Ok(de.end()?)
///     }
/// }
///
/// let mut registry = Registry::with_builtins();
/// registry.register_format("pretty-json", Arc::new(PrettyJson))?;
/// let pipeline = registry.resolve("pretty-json+zstd")?;
/// let bytes = pipeline.encode(&vec![1, 2, 3])?;
/// assert_eq!(pipeline.decode::<Vec<i32>>(&bytes)?, vec![1, 2, 3]);
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "zstd"))]
/// # fn main() {}
/// ```
pub trait Format: Send + Sync + 'static {
    /// Serializes `value`, appending the bytes to `out` (which may already hold an envelope
    /// header: append, never clear).
    fn encode(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), BoxError>;

    /// Deserializes `bytes` by calling `sink` once with a deserializer over them, then checks
    /// that nothing but whitespace (where the format allows it) follows the value.
    fn decode(&self, bytes: &[u8], sink: &mut DecodeSink<'_>) -> Result<(), BoxError>;

    /// Encodes a byte string. The default goes through serde as `serde_bytes::Bytes`; `raw`
    /// overrides it with a plain copy.
    fn encode_bytes(&self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), BoxError> {
        self.encode(&serde_bytes::Bytes::new(bytes), out)
    }

    /// Decodes a byte string. The default goes through serde as `serde_bytes::ByteBuf`; `raw`
    /// overrides it to lend `bytes` back without a copy.
    fn decode_bytes<'a>(&self, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, BoxError> {
        let mut out = None;
        self.decode(bytes, &mut |de| {
            out = Some(erased_serde::deserialize::<serde_bytes::ByteBuf>(de)?);
            Ok(())
        })?;
        let buf = out.ok_or("the format produced no value")?;
        Ok(Cow::Owned(buf.into_vec()))
    }
}

/// Lets an unsized `T` (`str`, `[u8]`) pass as `&dyn erased_serde::Serialize`, which needs a
/// sized referent.
pub(crate) struct SerializeRef<'a, T: ?Sized>(pub(crate) &'a T);

impl<T: serde::Serialize + ?Sized> serde::Serialize for SerializeRef<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// A format as a pipeline holds it. The built-ins are dispatched statically, so typed
/// `encode`/`decode` on them are monomorphized serde calls without `erased_serde` in between
/// (erased-serde measured 2–3× slower on decode, see `benches/RESULTS.md`); a user's format goes
/// through the object-safe [`Format`] trait.
#[derive(Clone)]
pub(crate) enum FormatImpl {
    Raw,
    #[cfg(feature = "json")]
    Json,
    #[cfg(feature = "cbor")]
    Cbor,
    #[cfg(feature = "pickle")]
    Pickle,
    Dyn(std::sync::Arc<dyn Format>),
}

impl FormatImpl {
    pub(crate) fn as_dyn(&self) -> &dyn Format {
        match self {
            FormatImpl::Raw => &crate::raw::Raw,
            #[cfg(feature = "json")]
            FormatImpl::Json => &crate::json::Json,
            #[cfg(feature = "cbor")]
            FormatImpl::Cbor => &crate::cbor::Cbor,
            #[cfg(feature = "pickle")]
            FormatImpl::Pickle => &crate::pickle::Pickle,
            FormatImpl::Dyn(format) => &**format,
        }
    }

    pub(crate) fn encode<T: serde::Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), BoxError> {
        match self {
            FormatImpl::Raw => crate::raw::encode(value, out),
            #[cfg(feature = "json")]
            FormatImpl::Json => crate::json::encode(value, out),
            #[cfg(feature = "cbor")]
            FormatImpl::Cbor => crate::cbor::encode(value, out),
            #[cfg(feature = "pickle")]
            FormatImpl::Pickle => crate::pickle::encode(value, out),
            FormatImpl::Dyn(format) => format.encode(&SerializeRef(value), out),
        }
    }

    pub(crate) fn decode<T: serde::de::DeserializeOwned>(
        &self,
        bytes: &[u8],
    ) -> Result<T, BoxError> {
        match self {
            FormatImpl::Raw => crate::raw::decode(bytes),
            #[cfg(feature = "json")]
            FormatImpl::Json => crate::json::decode(bytes),
            #[cfg(feature = "cbor")]
            FormatImpl::Cbor => crate::cbor::decode(bytes),
            #[cfg(feature = "pickle")]
            FormatImpl::Pickle => crate::pickle::decode(bytes),
            FormatImpl::Dyn(format) => {
                let mut value = None;
                format.decode(bytes, &mut |de| {
                    value = Some(erased_serde::deserialize::<T>(de)?);
                    Ok(())
                })?;
                value.ok_or_else(|| "the format produced no value".into())
            }
        }
    }
}
