//! Value formats for cacher: serde values to bytes and back, compression codecs stacked on
//! them, and the versioned envelope every stored value carries.
//!
//! ```
//! use cacher_formats::{EnvelopeMeta, Registry};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Page { url: String, status: u16, body: String }
//!
//! let registry = Registry::with_builtins();
//! let page = Page { url: "https://example.org".into(), status: 200, body: "<html>…".into() };
//!
//! // Write with one pipeline…
//! let json = registry.resolve("json")?;
//! let meta = EnvelopeMeta { created_ms: 1_700_000_000_000, expires_ms: Some(1_700_000_060_000), revision: 0 };
//! let stored: Vec<u8> = json.encode_value(&page, &meta)?;
//!
//! // …check expiry from the header alone, without decoding the payload…
//! let header = cacher_formats::Header::peek(&stored)?;
//! assert_eq!(header.format_name(), "json");
//! assert!(!header.meta().is_expired_at(1_700_000_000_500));
//!
//! // …and read it back through the registry, whatever the cache writes today.
//! let (_header, back): (_, Page) = registry.decode_value(&stored)?;
//! assert_eq!(back, page);
//!
//! // Unknown names list what is known.
//! let err = registry.resolve("cbor+lz4").unwrap_err();
//! assert_eq!(err.to_string(), "unknown codec `lz4` (known codecs: zstd)");
//! # Ok::<(), cacher_formats::Error>(())
//! ```
//!
//! # Pieces
//! - [`Format`]: object-safe (through `erased_serde`) serde format. Built in: [`Raw`],
//!   [`Json`], [`Cbor`], [`Pickle`].
//! - [`Codec`]: bytes to bytes. Built in: [`Zstd`] with a level and optionally a trained
//!   [`Dictionary`] ([`train_dictionary`]).
//! - [`Registry`]: names to formats and codecs; [`Registry::resolve`] turns
//!   `"cbor+zstd:3"` into a [`Pipeline`] with typed `encode`/`decode` helpers.
//! - [`envelope`]: the stored value layout (magic, version, pipeline name, created/expiry,
//!   revision, checksums, optional keyed BLAKE3 MAC), with a byte diagram.
//!
//! # zstd on the fixture data
//!
//! Measured by `cargo bench -p cacher-formats --bench formats` (ratios are exact; speeds on a
//! 2-core VM, see `benches/RESULTS-formats.md`):
//!
//! | data | pipeline | stored size | ratio |
//! |---|---|---|---|
//! | ~10 KiB JSON API response | `json` | 10 240 B | 1.0 |
//! | | `json+zstd:3` | see RESULTS | |
//! | 1 MiB byte blob (half text-like, half random) | `raw+zstd:3` | see RESULTS | |
//! | 200 small JSON records | `json+zstd:3` per record vs `json+zstd:3:dict=ID` | see RESULTS | |
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod cbor;
mod codec;
mod dictionary;
pub mod envelope;
mod error;
mod format;
mod json;
mod pickle;
mod pipeline;
mod raw;
mod registry;

pub use cbor::Cbor;
pub use codec::{Codec, CodecArgs, CodecFactory, Zstd};
pub use dictionary::{train_dictionary, Dictionary};
pub use envelope::{EnvelopeMeta, Header};
pub use error::{BoxError, Error, Result};
pub use format::{DecodeSink, Format};
pub use json::Json;
pub use pickle::Pickle;
pub use pipeline::Pipeline;
pub use raw::{NotBytes, Raw};
pub use registry::Registry;

// The formats' own crates, re-exported so users implementing `Format` use matching versions.
pub use erased_serde;
