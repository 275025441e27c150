//! Glue between the cache and the formats crate: encode a value into a stored envelope, read
//! an envelope's header without decoding, decode a payload whatever format wrote it.

use std::sync::Arc;

use cacher_formats::envelope::HeaderView;
use cacher_formats::{EnvelopeMeta, Pipeline, Registry};
use serde::de::DeserializeOwned;
use serde::Serialize;

use cacher_formats::Error as FormatError;

/// The pipeline new values are written with, and the registry that reads values written by
/// any other pipeline (the envelope names it).
#[derive(Clone)]
pub struct ValueCodec {
    registry: Arc<Registry>,
    pipeline: Pipeline,
}

impl ValueCodec {
    pub fn new(registry: Arc<Registry>, format: &str) -> Result<Self, FormatError> {
        let pipeline = registry.resolve(format)?;
        Ok(ValueCodec { registry, pipeline })
    }

    /// The canonical name of the write pipeline (e.g. `cbor+zstd:3`).
    pub fn name(&self) -> &str {
        self.pipeline.name()
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A whole stored value for `key`: envelope (bound to `key`) and payload.
    pub fn encode<T: Serialize + ?Sized>(
        &self,
        key: &[u8],
        value: &T,
        meta: &EnvelopeMeta,
    ) -> Result<Vec<u8>, FormatError> {
        self.pipeline.encode_value(key, value, meta)
    }

    /// Writes revision number `revision` into `bytes` (a value just encoded for `key`) in
    /// place: header only, plus the MAC when the registry has a key.
    pub fn restamp_in_place(
        &self,
        key: &[u8],
        bytes: &mut [u8],
        revision: u64,
    ) -> Result<(), FormatError> {
        self.registry.restamp_value_in_place(key, bytes, revision)
    }

    /// The header of the value stored under `key`, checked as far as a read checks it before
    /// decoding (written for `key`; with a MAC key, the MAC too, which needs the whole value),
    /// so `contains` and expiry checks agree with `get`.
    pub fn peek(&self, key: &[u8], bytes: &[u8]) -> Result<EnvelopeMeta, FormatError> {
        Ok(self.registry.peek_value(key, bytes)?.meta())
    }

    /// Checks the value stored under `key` (header, checksums, key binding, MAC) and lends its
    /// header and payload, in one pass over the envelope with or without a MAC key
    /// ([`Registry::open_value_view`]: the checks and errors of `open_value`, nothing
    /// copied).
    pub fn open<'a>(
        &self,
        key: &[u8],
        bytes: &'a [u8],
    ) -> Result<(HeaderView<'a>, &'a [u8]), FormatError> {
        self.registry.open_value_view(key, bytes)
    }

    /// Decodes a payload opened by [`ValueCodec::open`]. The common case (written by this cache's
    /// own pipeline) skips resolving the pipeline name again.
    pub fn decode<T: DeserializeOwned>(
        &self,
        header: &HeaderView<'_>,
        payload: &[u8],
    ) -> Result<T, FormatError> {
        if header.pipeline() == self.pipeline.name() {
            self.pipeline.decode(payload)
        } else {
            self.registry.resolve(header.pipeline())?.decode(payload)
        }
    }
}
