//! Value formats for cacher: serde values to bytes and back, compression codecs stacked on
//! them, and the versioned envelope every stored value carries.
//!
//! ```
//! # #[cfg(feature = "json")]
//! # fn main() -> Result<(), cacher_formats::Error> {
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
//! let meta = EnvelopeMeta {
//!     created_ms: 1_700_000_000_000,
//!     expires_ms: Some(1_700_000_060_000),
//!     revision: 0,
//!     type_fingerprint: Some(cacher_formats::type_fingerprint("Page")),
//! };
//! // Bound to the store key it is written under:
//! let stored: Vec<u8> = json.encode_value(b"page:1", &page, &meta)?;
//!
//! // …check expiry from the header alone, without decoding the payload…
//! let header = cacher_formats::Header::peek(&stored)?;
//! assert_eq!(header.format_name(), "json");
//! assert!(!header.meta().is_expired_at(1_700_000_000_500));
//!
//! // …and read it back through the registry, whatever the cache writes today.
//! let (header, back): (_, Page) = registry.decode_value(b"page:1", &stored)?;
//! assert_eq!(back, page);
//! assert_eq!(header.type_fingerprint(), meta.type_fingerprint);
//! // Under another key it is not that key's value.
//! assert!(registry.decode_value::<Page>(b"page:2", &stored).is_err());
//!
//! // Unknown names list what is known.
//! let err = registry.resolve("cbor+lz4").unwrap_err();
//! assert_eq!(err.to_string(), "unknown codec `lz4` (known codecs: zstd)");
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "json"))]
//! # fn main() {}
//! ```
//!
//! # Pieces
//! - [`Format`]: object-safe (through `erased_serde`) serde format. Built in: [`Raw`],
//!   `Json`, `Cbor`, `Pickle`.
//! - [`Codec`]: bytes to bytes. Built in: `Zstd` with a level and optionally a trained
//!   [`Dictionary`] (`train_dictionary`).
//!
//! # Cargo features
//! One per built-in format or codec, all on by default: `json`, `cbor`, `pickle`, `zstd`
//! (zstd compiles C). `raw` is always built in. A registry built without a feature does not
//! know that name: values written with it are [`Error::UnknownFormat`] /
//! [`Error::UnknownCodec`], never misread.
//! - [`Registry`]: names to formats and codecs; [`Registry::resolve`] turns
//!   `"cbor+zstd:3"` into a [`Pipeline`] with typed `encode`/`decode` helpers.
//! - [`envelope`]: the stored value layout (magic, version, pipeline name, created/expiry,
//!   revision, type fingerprint, checksums, optional keyed BLAKE3 MAC binding the store
//!   key), with byte diagrams of every version; [`type_fingerprint`] names a Rust type.
//!
//! # zstd on the benchmark data
//!
//! Sizes are exact; speeds from `cargo bench -p cacher-formats --bench formats` on a shared
//! 2-core VM (noisy; full tables and the command in `benches/RESULTS.md`). Speeds are
//! whole stored values (envelope, checksum and registry lookup included).
//!
//! | data | pipeline | stored | ratio | encode | decode |
//! |---|---|---:|---:|---:|---:|
//! | ~10 KiB JSON API response | `json` | 10 265 B | 0.99 | 12 µs | 36 µs |
//! | | `json+zstd:3` | 1 350 B | 7.6 | 28 µs | 36 µs |
//! | | `json+zstd:19` | 1 163 B | 8.8 | | |
//! | | `cbor` | 8 473 B | 1.2 | 2.8 µs | 19 µs |
//! | | `cbor+zstd:3` | 1 284 B | 8.0 | 13 µs | 23 µs |
//! | | `pickle+zstd:3` | 1 332 B | 7.7 | 14 µs | 92 µs |
//! | 1 MiB blob, half text half noise | `raw` | 1 048 628 B | 1.0 | 37 µs | 17 µs (lent) |
//! | | `raw+zstd:3` | 541 379 B | 1.94 | 0.76 ms (1.3 GiB/s) | 0.14 ms (6.9 GiB/s) |
//! | | `raw+zstd:19` | 539 791 B | 1.94 | | |
//! | 100 small JSON records (~71 B each) | `raw+zstd:3` | 8 003 B | 0.89 | 255 µs | 7 µs |
//! | | `raw+zstd:3:dict=ID` (2 KiB trained dictionary) | 3 157 B | 2.25 | 47 µs | 13 µs |
//!
//! Take-aways: zstd:3 shrinks JSON-like values ~7.5×, for ~15 µs per 10 KiB; levels above 3
//! buy little on this data; many small similar values need a trained dictionary (without
//! one zstd makes them *bigger*).
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "cbor")]
mod cbor;
mod codec;
mod dictionary;
pub mod envelope;
mod error;
mod fingerprint;
mod format;
#[cfg(feature = "json")]
mod json;
mod mismatch;
#[cfg(feature = "pickle")]
mod pickle;
mod pipeline;
mod raw;
mod registry;
#[cfg(feature = "zstd")]
mod zstd_codec;

#[cfg(feature = "cbor")]
pub use cbor::Cbor;
pub use codec::{Codec, CodecArgs, CodecFactory};
#[cfg(feature = "zstd")]
pub use dictionary::train_dictionary;
pub use dictionary::Dictionary;
pub use envelope::{EnvelopeMeta, Header};
pub use error::{BoxError, Error, Result};
pub use fingerprint::type_fingerprint;
pub use format::{DecodeSink, Format};
#[cfg(feature = "json")]
pub use json::Json;
#[cfg(feature = "pickle")]
pub use pickle::Pickle;
pub use pipeline::Pipeline;
pub use raw::{NotBytes, Raw};
pub use registry::Registry;
#[cfg(feature = "zstd")]
pub use zstd_codec::Zstd;

// The formats' own crates, re-exported so users implementing `Format` use matching versions.
pub use erased_serde;
