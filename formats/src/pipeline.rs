//! A resolved [`Pipeline`]: one format followed by zero or more codecs, with typed helpers.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::Codec;
use crate::envelope::{self, EnvelopeMeta};
use crate::error::{BoxError, Error, Result};
use crate::format::FormatImpl;
use crate::mismatch::{short_type_name, TypeMismatch};

/// A format and its codec chain, resolved from a name like `cbor+zstd:3` by
/// [`Registry::resolve`](crate::Registry::resolve). Cheap to clone (one `Arc`), `Send + Sync`.
///
/// ```
/// # #[cfg(all(feature = "cbor", feature = "zstd"))]
/// # fn main() -> Result<(), cacher_formats::Error> {
/// use cacher_formats::{EnvelopeMeta, Registry};
///
/// let registry = Registry::with_builtins();
/// let pipeline = registry.resolve("cbor+zstd")?;
/// assert_eq!(pipeline.name(), "cbor+zstd:3"); // canonical: every parameter spelled out
///
/// // Payload only:
/// let payload = pipeline.encode(&("answer", 42u32))?;
/// assert_eq!(pipeline.decode::<(String, u32)>(&payload)?, ("answer".to_owned(), 42));
///
/// // A whole stored value, envelope included, bound to the store key it is written under:
/// let stored = pipeline.encode_value(b"scores", &vec![1.5f64, 2.5], &EnvelopeMeta::now())?;
/// let (header, value) = registry.decode_value::<Vec<f64>>(b"scores", &stored)?;
/// assert_eq!(header.pipeline(), "cbor+zstd:3");
/// assert_eq!(value, vec![1.5, 2.5]);
/// # Ok(())
/// # }
/// # #[cfg(not(all(feature = "cbor", feature = "zstd")))]
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    format_name: String,
    format: FormatImpl,
    codecs: Vec<(String, Arc<dyn Codec>)>,
    mac_key: Option<[u8; 32]>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.inner.name)
            .field("mac", &self.inner.mac_key.is_some())
            .finish()
    }
}

impl Pipeline {
    pub(crate) fn new(
        format_name: String,
        format: FormatImpl,
        codecs: Vec<(String, Arc<dyn Codec>)>,
        mac_key: Option<[u8; 32]>,
    ) -> Self {
        let mut name = format_name.clone();
        for (spec, _) in &codecs {
            name.push('+');
            name.push_str(spec);
        }
        Pipeline {
            inner: Arc::new(Inner {
                name,
                format_name,
                format,
                codecs,
                mac_key,
            }),
        }
    }

    /// The canonical name (`cbor+zstd:3`): what the envelope stores.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The format part of the name (`cbor`).
    pub fn format_name(&self) -> &str {
        &self.inner.format_name
    }

    /// Whether the pipeline has no codecs, so a payload is the format's bytes as they are.
    pub fn has_codecs(&self) -> bool {
        !self.inner.codecs.is_empty()
    }

    /// Whether values written by this pipeline carry a MAC (the registry had a key).
    pub fn has_mac_key(&self) -> bool {
        self.inner.mac_key.is_some()
    }

    fn encode_err(&self, detail: BoxError) -> Error {
        Error::Encode {
            format: self.inner.format_name.clone(),
            detail,
        }
    }

    /// A decode error naming the Rust type asked for (`type_name`, from
    /// [`std::any::type_name`]); a type mismatch says in words what was stored.
    fn decode_err(&self, type_name: &str, detail: BoxError) -> Error {
        let format = self.inner.format_name.clone();
        let asked_for = short_type_name(type_name);
        match TypeMismatch::find(&detail) {
            Some(TypeMismatch { stored, expected }) => Error::TypeMismatch {
                format,
                stored,
                expected,
                asked_for,
            },
            None => Error::Decode {
                format,
                asked_for,
                detail,
            },
        }
    }

    /// Runs the format (through `write_format`) then the codecs, appending the result to
    /// `out`. Without codecs the format writes straight into `out`: no intermediate copy.
    fn encode_into(
        &self,
        out: &mut Vec<u8>,
        write_format: impl FnOnce(&FormatImpl, &mut Vec<u8>) -> Result<(), BoxError>,
    ) -> Result<()> {
        let Some(((last_spec, last), rest)) = self.inner.codecs.split_last() else {
            return write_format(&self.inner.format, out).map_err(|e| self.encode_err(e));
        };
        let mut buf = Vec::new();
        write_format(&self.inner.format, &mut buf).map_err(|e| self.encode_err(e))?;
        for (spec, codec) in rest {
            let mut next = Vec::new();
            codec
                .compress(&buf, &mut next)
                .map_err(|source| codec_err(spec, "compressing", source))?;
            buf = next;
        }
        last.compress(&buf, out)
            .map_err(|source| codec_err(last_spec, "compressing", source))
    }

    /// Undoes the codecs (last applied, first undone). Borrows `payload` when there are none.
    fn undo_codecs<'a>(&self, payload: &'a [u8]) -> Result<Cow<'a, [u8]>> {
        let mut buf = Cow::Borrowed(payload);
        for (spec, codec) in self.inner.codecs.iter().rev() {
            let mut next = Vec::new();
            codec
                .decompress(&buf, &mut next)
                .map_err(|source| codec_err(spec, "decompressing", source))?;
            buf = Cow::Owned(next);
        }
        Ok(buf)
    }

    /// Serializes `value` through the format and codecs: the payload only, no envelope.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encode_into(&mut out, |format, buf| format.encode(value, buf))?;
        Ok(out)
    }

    /// Deserializes a payload (no envelope) written by [`encode`](Pipeline::encode).
    pub fn decode<T: DeserializeOwned>(&self, payload: &[u8]) -> Result<T> {
        let bytes = self.undo_codecs(payload)?;
        self.inner
            .format
            .decode(&bytes)
            .map_err(|e| self.decode_err(std::any::type_name::<T>(), e))
    }

    /// Encodes a byte string as the payload. For `raw` without codecs this is one copy and no
    /// serde; other formats store it as their byte-string type.
    pub fn encode_bytes(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encode_into(&mut out, |format, buf| {
            format.as_dyn().encode_bytes(bytes, buf)
        })?;
        Ok(out)
    }

    /// Decodes a byte-string payload. For `raw` without codecs the payload is lent back as
    /// it is (`Cow::Borrowed`, no copy).
    pub fn decode_bytes<'a>(&self, payload: &'a [u8]) -> Result<Cow<'a, [u8]>> {
        let format = self.inner.format.as_dyn();
        let err = |e| self.decode_err("bytes", e);
        match self.undo_codecs(payload)? {
            Cow::Borrowed(bytes) => format.decode_bytes(bytes).map_err(err),
            Cow::Owned(bytes) => {
                let decoded = format.decode_bytes(&bytes).map_err(err)?;
                Ok(Cow::Owned(decoded.into_owned()))
            }
        }
    }

    /// Writes a whole stored value for the store key `store_key`: envelope header (with
    /// `meta`, this pipeline's name, a checksum of `store_key` and, when the registry has a
    /// MAC key, a MAC over header, `store_key` and payload) followed by the payload. Without
    /// codecs the format writes straight after the header: one buffer, no copy.
    ///
    /// The value reads back only under the same `store_key`
    /// ([`Registry::decode_value`](crate::Registry::decode_value)); give the exact bytes the
    /// store is given.
    pub fn encode_value<T: Serialize + ?Sized>(
        &self,
        store_key: &[u8],
        value: &T,
        meta: &EnvelopeMeta,
    ) -> Result<Vec<u8>> {
        self.encode_value_with(store_key, meta, 0, |format, buf| format.encode(value, buf))
    }

    /// Writes a whole stored value whose payload is `bytes`, for `store_key` (see
    /// [`encode_value`](Pipeline::encode_value)). With `raw` and no codecs the result is
    /// allocated once at its exact size and `bytes` is copied once into it (the only copy the
    /// envelope needs).
    pub fn encode_value_bytes(
        &self,
        store_key: &[u8],
        bytes: &[u8],
        meta: &EnvelopeMeta,
    ) -> Result<Vec<u8>> {
        self.encode_value_with(store_key, meta, bytes.len(), |format, buf| {
            format.as_dyn().encode_bytes(bytes, buf)
        })
    }

    fn encode_value_with(
        &self,
        store_key: &[u8],
        meta: &EnvelopeMeta,
        size_hint: usize,
        write_format: impl FnOnce(&FormatImpl, &mut Vec<u8>) -> Result<(), BoxError>,
    ) -> Result<Vec<u8>> {
        let key = self.inner.mac_key.as_ref();
        // Exact size for raw bytes without codecs: the one allocation of the stored value.
        let capacity = if self.has_codecs() {
            0
        } else {
            envelope::header_len(self.inner.name.len(), key.is_some()) + size_hint
        };
        let mut out = Vec::with_capacity(capacity);
        let header_len =
            envelope::begin(&mut out, &self.inner.name, meta, store_key, key.is_some());
        self.encode_into(&mut out, write_format)?;
        envelope::seal(&mut out, header_len, store_key, key);
        Ok(out)
    }
}

fn codec_err(spec: &str, op: &'static str, detail: BoxError) -> Error {
    Error::Codec {
        codec: spec.to_owned(),
        op,
        detail,
    }
}
