//! The [`Registry`]: format and codec names to implementations, zstd dictionaries, the MAC
//! key, and reading stored values whatever pipeline wrote them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;

use crate::codec::{Codec, CodecArgs, CodecFactory};
use crate::dictionary::Dictionary;
use crate::envelope::{self, Header};
use crate::error::{Error, Result};
use crate::format::{Format, FormatImpl};
use crate::pipeline::Pipeline;

/// Names formats and codecs and resolves pipeline names like `json`, `cbor+zstd`,
/// `pickle+zstd:19` or `raw+zstd:3:dict=42` into a [`Pipeline`].
///
/// A pipeline name is `FORMAT(+CODEC[:ARG])*`. Format and codec names are ASCII letters,
/// digits, `_`, `-` and `.`; a codec's argument is everything after its first `:`.
///
/// Built in: formats `raw`, `json`, `cbor`, `pickle`; codec `zstd` (`zstd`, `zstd:LEVEL`,
/// `zstd:dict=ID`, `zstd:LEVEL:dict=ID`). `Send + Sync`: share it in an `Arc`.
///
/// ```
/// # #[cfg(all(feature = "json", feature = "cbor", feature = "pickle"))]
/// # fn main() {
/// use cacher_formats::Registry;
///
/// let registry = Registry::with_builtins();
/// let err = registry.resolve("yaml").unwrap_err();
/// assert_eq!(err.to_string(), "unknown format `yaml` (known formats: cbor, json, pickle, raw)");
/// # }
/// # #[cfg(not(all(feature = "json", feature = "cbor", feature = "pickle")))]
/// # fn main() {}
/// ```
pub struct Registry {
    formats: HashMap<String, FormatImpl>,
    codecs: HashMap<String, CodecFactory>,
    dictionaries: HashMap<u32, Dictionary>,
    mac_key: Option<[u8; 32]>,
    /// Pipelines already resolved, by the name asked for (values repeat a few names).
    resolved: RwLock<HashMap<String, Pipeline>>,
}

impl Default for Registry {
    /// Same as [`Registry::with_builtins`].
    fn default() -> Self {
        Registry::with_builtins()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("formats", &self.format_names())
            .field("codecs", &self.codec_names())
            .field("dictionaries", &self.dictionary_ids())
            .field("mac_key", &self.mac_key.is_some())
            .finish()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn sorted<T: Ord + Clone>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut items: Vec<T> = items.collect();
    items.sort();
    items
}

impl Registry {
    /// A registry with no formats or codecs (see [`with_builtins`](Registry::with_builtins)).
    pub fn empty() -> Self {
        Registry {
            formats: HashMap::new(),
            codecs: HashMap::new(),
            dictionaries: HashMap::new(),
            mac_key: None,
            resolved: RwLock::new(HashMap::new()),
        }
    }

    /// A registry with the built-in formats (`raw`, and `json`, `cbor`, `pickle` when their
    /// features are on) and codec (`zstd`, feature `zstd`).
    pub fn with_builtins() -> Self {
        let mut registry = Registry::empty();
        let builtins = [
            ("raw", FormatImpl::Raw),
            #[cfg(feature = "json")]
            ("json", FormatImpl::Json),
            #[cfg(feature = "cbor")]
            ("cbor", FormatImpl::Cbor),
            #[cfg(feature = "pickle")]
            ("pickle", FormatImpl::Pickle),
        ];
        for (name, format) in builtins {
            registry.formats.insert(name.to_owned(), format);
        }
        #[cfg(feature = "zstd")]
        registry
            .codecs
            .insert("zstd".to_owned(), crate::Zstd::factory());
        registry
    }

    /// Registers (or replaces) a format under `name`. The name is what envelopes store, so
    /// keep it stable. Errors with [`Error::InvalidPipeline`] for a malformed name.
    pub fn register_format(&mut self, name: &str, format: Arc<dyn Format>) -> Result<()> {
        if !valid_name(name) {
            return Err(Error::InvalidPipeline {
                name: name.to_owned(),
                reason: "a format name is ASCII letters, digits, `_`, `-` and `.`".into(),
            });
        }
        self.formats
            .insert(name.to_owned(), FormatImpl::Dyn(format));
        self.clear_resolved();
        Ok(())
    }

    /// Registers (or replaces) a codec under `name`: `factory` builds it from the spec's
    /// argument (`name:ARG`). The codec's [`Codec::spec`] must resolve back to an equivalent
    /// codec.
    ///
    /// ```
    /// # #[cfg(all(feature = "json", feature = "zstd"))]
    /// # fn main() -> Result<(), cacher_formats::Error> {
    /// use std::sync::Arc;
    /// use cacher_formats::{BoxError, Codec, Registry};
    ///
    /// /// Flips every bit: a toy codec.
    /// struct Invert;
    /// impl Codec for Invert {
    ///     fn spec(&self) -> String { "invert".into() }
    ///     fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), BoxError> {
    ///         out.extend(input.iter().map(|b| !b));
    ///         Ok(())
    ///     }
    ///     fn decompress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), BoxError> {
    ///         self.compress(input, out)
    ///     }
    /// }
    ///
    /// let mut registry = Registry::with_builtins();
    /// registry.register_codec("invert", |_args| Ok(Arc::new(Invert) as Arc<dyn Codec>))?;
    /// let pipeline = registry.resolve("json+invert+zstd:1")?;
    /// let payload = pipeline.encode(&[1, 2, 3])?;
    /// assert_eq!(pipeline.decode::<Vec<u8>>(&payload)?, vec![1, 2, 3]);
    /// # Ok(())
    /// # }
    /// # #[cfg(not(all(feature = "json", feature = "zstd")))]
    /// # fn main() {}
    /// ```
    pub fn register_codec(
        &mut self,
        name: &str,
        factory: impl Fn(&CodecArgs<'_>) -> Result<Arc<dyn Codec>> + Send + Sync + 'static,
    ) -> Result<()> {
        if !valid_name(name) {
            return Err(Error::InvalidPipeline {
                name: name.to_owned(),
                reason: "a codec name is ASCII letters, digits, `_`, `-` and `.`".into(),
            });
        }
        self.codecs.insert(name.to_owned(), Arc::new(factory));
        self.clear_resolved();
        Ok(())
    }

    /// Gives the registry a zstd dictionary, so pipelines naming `dict=<id>` resolve and values
    /// written with it decode. Replaces a dictionary with the same id.
    pub fn add_dictionary(&mut self, dictionary: Dictionary) {
        self.dictionaries.insert(dictionary.id(), dictionary);
        self.clear_resolved();
    }

    /// A dictionary the registry holds.
    pub fn dictionary(&self, id: u32) -> Option<&Dictionary> {
        self.dictionaries.get(&id)
    }

    /// Sets the MAC key: pipelines resolved from now on write a keyed BLAKE3 MAC (over the
    /// header, the store key and the payload) into every envelope, and
    /// [`decode_value`](Registry::decode_value) and friends refuse any value whose MAC is
    /// missing, wrong, or made for another store key ([`Error::Unauthenticated`]). What a MAC
    /// cannot prevent (replay of an older value of the same key) is in the
    /// [`envelope`](crate::envelope#what-the-mac-does-and-does-not-prove) docs. Derive the key from a secret
    /// with e.g. `blake3::derive_key("cacher value mac v1", secret)`.
    ///
    /// Without a key, MACs present in values are not checked (they cannot be).
    pub fn set_mac_key(&mut self, key: [u8; 32]) {
        self.mac_key = Some(key);
        self.clear_resolved();
    }

    /// Builder form of [`set_mac_key`](Registry::set_mac_key).
    pub fn with_mac_key(mut self, key: [u8; 32]) -> Self {
        self.set_mac_key(key);
        self
    }

    /// The registered format names, sorted.
    pub fn format_names(&self) -> Vec<String> {
        sorted(self.formats.keys().cloned())
    }

    /// The registered codec names, sorted.
    pub fn codec_names(&self) -> Vec<String> {
        sorted(self.codecs.keys().cloned())
    }

    /// The ids of the dictionaries the registry holds, sorted.
    pub fn dictionary_ids(&self) -> Vec<u32> {
        sorted(self.dictionaries.keys().copied())
    }

    fn clear_resolved(&mut self) {
        if let Ok(resolved) = self.resolved.get_mut() {
            resolved.clear();
        }
    }

    /// Resolves a pipeline name. Errors: [`Error::UnknownFormat`] / [`Error::UnknownCodec`]
    /// (listing the known names), [`Error::UnknownDictionary`], [`Error::InvalidPipeline`].
    pub fn resolve(&self, name: &str) -> Result<Pipeline> {
        if let Some(pipeline) = self.resolved.read().ok().and_then(|r| r.get(name).cloned()) {
            return Ok(pipeline);
        }
        let pipeline = self.build(name)?;
        if let Ok(mut resolved) = self.resolved.write() {
            // Names come from stored headers too; keep the memo small whatever they say.
            if resolved.len() >= 256 {
                resolved.clear();
            }
            resolved.insert(name.to_owned(), pipeline.clone());
        }
        Ok(pipeline)
    }

    fn build(&self, name: &str) -> Result<Pipeline> {
        let invalid = |reason: &str| Error::InvalidPipeline {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        let mut parts = name.split('+');
        let format_name = parts.next().unwrap_or_default();
        if !valid_name(format_name) {
            return Err(invalid("expected FORMAT(+CODEC[:ARG])*, e.g. cbor+zstd:3"));
        }
        let format = self
            .formats
            .get(format_name)
            .ok_or_else(|| Error::UnknownFormat {
                name: format_name.to_owned(),
                known: self.format_names(),
            })?
            .clone();
        let mut codecs = Vec::new();
        for spec in parts {
            let (codec_name, arg) = match spec.split_once(':') {
                Some((codec_name, arg)) => (codec_name, Some(arg)),
                None => (spec, None),
            };
            if !valid_name(codec_name) {
                return Err(invalid("empty or malformed codec name"));
            }
            let factory = self
                .codecs
                .get(codec_name)
                .ok_or_else(|| Error::UnknownCodec {
                    name: codec_name.to_owned(),
                    known: self.codec_names(),
                })?;
            let codec = factory(&CodecArgs {
                name: codec_name,
                arg,
                dictionaries: &self.dictionaries,
            })?;
            let canonical = codec.spec();
            if canonical.is_empty() || canonical.contains('+') {
                return Err(invalid(
                    "a codec's spec must be non-empty and contain no `+`",
                ));
            }
            codecs.push((canonical, codec));
        }
        let pipeline = Pipeline::new(format_name.to_owned(), format, codecs, self.mac_key);
        if pipeline.name().len() > 255 {
            return Err(invalid("the canonical name is longer than 255 bytes"));
        }
        Ok(pipeline)
    }

    /// Whether the registry holds a MAC key. When it does, every check of a stored value needs
    /// the whole value (a MAC covers the payload): [`peek_value`](Registry::peek_value) cannot
    /// work from a header prefix, so a `contains` must read the value.
    pub fn has_mac_key(&self) -> bool {
        self.mac_key.is_some()
    }

    /// The MAC key, for the streamed envelope (`envelope::stream`).
    pub(crate) fn mac_key(&self) -> Option<&[u8; 32]> {
        self.mac_key.as_ref()
    }

    /// Checks a stored value read under `store_key` (header, length, payload checksum, that
    /// it was written under `store_key` and — when the registry has a MAC key — the MAC over
    /// header, `store_key` and payload) and lends its payload as stored (still compressed, if
    /// the pipeline has codecs). No copy.
    ///
    /// Errors: [`Error::Corrupt`] for damage, or a value written under another key without a
    /// MAC key; [`Error::Unauthenticated`] with a MAC key for a value without a valid MAC for
    /// `store_key` (planted, altered, copied from another key, or a version-1 value, whose MAC
    /// does not cover the key); [`Error::UpgradeRequired`] for a newer envelope.
    pub fn open_value<'a>(&self, store_key: &[u8], bytes: &'a [u8]) -> Result<(Header, &'a [u8])> {
        let (header, payload) = envelope::payload(bytes)?;
        if let Some(mac_key) = &self.mac_key {
            header.verify_mac(bytes, store_key, payload, mac_key)?;
        }
        header.check_key(store_key)?;
        Ok((header, payload))
    }

    /// Checks a stored value exactly as [`open_value`](Registry::open_value) does (the same
    /// checks, in the same order, with the same errors; the MAC too when the registry has a
    /// key) and lends its header as a [`HeaderView`](envelope::HeaderView) with the payload,
    /// in one pass over the bytes and without copying anything: what a cache hit needs.
    ///
    /// ```
    /// # #[cfg(feature = "cbor")]
    /// # fn main() -> Result<(), cacher_formats::Error> {
    /// use cacher_formats::{EnvelopeMeta, Error, Registry};
    ///
    /// let registry = Registry::with_builtins().with_mac_key([7; 32]);
    /// let stored = registry.resolve("cbor")?.encode_value(b"k", &5u32, &EnvelopeMeta::now())?;
    /// let (header, payload) = registry.open_value_view(b"k", &stored)?;
    /// assert_eq!(header.pipeline(), "cbor");
    /// assert_eq!(registry.resolve(header.pipeline())?.decode::<u32>(payload)?, 5);
    /// let copied = registry.open_value_view(b"another key", &stored).unwrap_err();
    /// assert!(matches!(copied, Error::Unauthenticated { .. }));
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "cbor"))]
    /// # fn main() {}
    /// ```
    pub fn open_value_view<'a>(
        &self,
        store_key: &[u8],
        bytes: &'a [u8],
    ) -> Result<(envelope::HeaderView<'a>, &'a [u8])> {
        envelope::open_view_checked(bytes, store_key, self.mac_key.as_ref())
    }

    /// The stored value `bytes` of `store_key` again, with revision number `revision` in its
    /// header: the value is checked first exactly as [`open_value`](Registry::open_value)
    /// checks it, then the same payload is sealed under a new header (checksums and MAC
    /// recomputed). For a writer that learns a value's revision number only after encoding
    /// it (a `Cache` that keeps revisions numbers an overwrite under its per-key lock).
    ///
    /// ```
    /// # #[cfg(feature = "cbor")]
    /// # fn main() -> Result<(), cacher_formats::Error> {
    /// use cacher_formats::{EnvelopeMeta, Registry};
    ///
    /// let registry = Registry::with_builtins().with_mac_key([7; 32]);
    /// let stored = registry.resolve("cbor")?.encode_value(b"k", &5u32, &EnvelopeMeta::now())?;
    /// let again = registry.restamp_value(b"k", &stored, 9)?;
    /// let (header, _) = registry.open_value(b"k", &again)?;
    /// assert_eq!(header.revision(), 9);
    /// assert_eq!(registry.decode_value::<u32>(b"k", &again)?.1, 5);
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "cbor"))]
    /// # fn main() {}
    /// ```
    pub fn restamp_value(&self, store_key: &[u8], bytes: &[u8], revision: u64) -> Result<Vec<u8>> {
        let (header, payload) = self.open_value(store_key, bytes)?;
        let meta = envelope::EnvelopeMeta {
            revision,
            ..header.meta()
        };
        let mut out = Vec::with_capacity(bytes.len());
        let header_len = envelope::begin(
            &mut out,
            header.pipeline(),
            &meta,
            store_key,
            self.mac_key.is_some(),
        );
        out.extend_from_slice(payload);
        envelope::seal(&mut out, header_len, store_key, self.mac_key.as_ref());
        Ok(out)
    }

    /// Writes revision number `revision` into `bytes`, a value this registry's pipelines have
    /// just encoded for `store_key`, **in place**: no copy and, without a MAC key, no pass over
    /// the payload (only the header is checked and its checksum recomputed); with a MAC key
    /// the MAC is recomputed, one pass. The cheap form of
    /// [`restamp_value`](Registry::restamp_value) for a writer that learns the number after
    /// encoding (a `Cache` that keeps revisions numbers an overwrite under its per-key lock).
    /// The payload is not checked, so use it on bytes you sealed, not on bytes read back.
    ///
    /// Errors: [`Error::Corrupt`] for a damaged or truncated header, a version-1 or streamed
    /// envelope, or one written for another key; [`Error::Unauthenticated`] when the value's
    /// MAC flag disagrees with whether this registry has a MAC key.
    ///
    /// ```
    /// # #[cfg(feature = "cbor")]
    /// # fn main() -> Result<(), cacher_formats::Error> {
    /// use cacher_formats::{EnvelopeMeta, Registry};
    ///
    /// let registry = Registry::with_builtins().with_mac_key([7; 32]);
    /// let mut stored = registry.resolve("cbor")?.encode_value(b"k", &5u32, &EnvelopeMeta::now())?;
    /// registry.restamp_value_in_place(b"k", &mut stored, 9)?;
    /// let (header, _) = registry.open_value(b"k", &stored)?;
    /// assert_eq!(header.revision(), 9);
    /// assert_eq!(registry.decode_value::<u32>(b"k", &stored)?.1, 5);
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "cbor"))]
    /// # fn main() {}
    /// ```
    pub fn restamp_value_in_place(
        &self,
        store_key: &[u8],
        bytes: &mut [u8],
        revision: u64,
    ) -> Result<()> {
        envelope::restamp_in_place(bytes, store_key, revision, self.mac_key.as_ref())
    }

    /// The header of a stored value, checked exactly as far as a read would check it before
    /// decoding: what `contains` or an expiry check should use so they agree with `get`.
    ///
    /// - Without a MAC key: the header and that the value was written under `store_key`.
    ///   `bytes` may be just the first [`Header::len_hint`] bytes; the payload checksum is
    ///   not checked (use [`open_value`](Registry::open_value) for that).
    /// - With a MAC key: the whole [`open_value`](Registry::open_value) check, MAC included,
    ///   which needs the **whole** stored value (a prefix is refused as [`Error::Corrupt`]).
    ///
    /// ```
    /// # #[cfg(feature = "cbor")]
    /// # fn main() -> Result<(), cacher_formats::Error> {
    /// use cacher_formats::{EnvelopeMeta, Error, Registry};
    ///
    /// let registry = Registry::with_builtins().with_mac_key([7; 32]);
    /// let stored = registry.resolve("cbor")?.encode_value(b"is_admin:root", &true, &EnvelopeMeta::now())?;
    /// assert!(registry.peek_value(b"is_admin:root", &stored).is_ok());
    /// // Copied to another key: refused, for `contains` as for `get`.
    /// let err = registry.peek_value(b"is_admin:mallory", &stored).unwrap_err();
    /// assert!(matches!(err, Error::Unauthenticated { .. }));
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "cbor"))]
    /// # fn main() {}
    /// ```
    pub fn peek_value(&self, store_key: &[u8], bytes: &[u8]) -> Result<Header> {
        if self.mac_key.is_some() && bytes.starts_with(&envelope::stream::STREAM_MAGIC) {
            // A blob: its MAC is in the trailer (envelope::stream).
            return Ok(self.open_stream(store_key, bytes)?.0);
        }
        if self.mac_key.is_some() {
            return Ok(self.open_value(store_key, bytes)?.0);
        }
        let header = Header::peek(bytes)?;
        header.check_key(store_key)?;
        Ok(header)
    }

    /// Reads a stored value written under `store_key` by any pipeline this registry can
    /// resolve: the header names the format and codecs, so a value written as `json` decodes
    /// here even if the cache now writes `cbor+zstd`.
    ///
    /// Errors: those of [`open_value`](Registry::open_value), [`Error::UnknownFormat`] & co.
    /// when the pipeline is not registered here, [`Error::Decode`] when the payload is not a
    /// `T`.
    pub fn decode_value<T: DeserializeOwned>(
        &self,
        store_key: &[u8],
        bytes: &[u8],
    ) -> Result<(Header, T)> {
        let (header, payload) = self.open_value(store_key, bytes)?;
        let value = self.resolve(header.pipeline())?.decode(payload)?;
        Ok((header, value))
    }

    /// Reads a stored byte-string value written under `store_key` (see
    /// [`Pipeline::decode_bytes`]). For a `raw` value without codecs the bytes are lent from
    /// `bytes` without a copy.
    pub fn decode_value_bytes<'a>(
        &self,
        store_key: &[u8],
        bytes: &'a [u8],
    ) -> Result<(Header, Cow<'a, [u8]>)> {
        let (header, payload) = self.open_value(store_key, bytes)?;
        let value = self.resolve(header.pipeline())?.decode_bytes(payload)?;
        Ok((header, value))
    }
}
