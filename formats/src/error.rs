//! The one error type of `cacher-formats`.

/// A boxed error from a format or codec implementation (serde_json, cbor4ii, our pickle reader,
/// zstd or a user's own). The crate's [`Error`] wraps it with the format or codec name.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the formats crate can fail with. No decoder panics on bad bytes: damaged input
/// comes back as [`Error::Corrupt`], [`Error::Decode`] or [`Error::Codec`].
///
/// Every variant is a leaf of an error chain: the message already says what the underlying
/// library (serde_json, cbor4ii, our pickle reader, zstd) reported, so [`source`] is `None` and a
/// chain printed by `anyhow`'s `{:#}` shows each cause once.
///
/// [`source`]: std::error::Error::source
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A pipeline named a format that is not registered.
    #[error("unknown format `{name}` (known formats: {})", known.join(", "))]
    UnknownFormat {
        /// The name asked for.
        name: String,
        /// The registered format names, sorted.
        known: Vec<String>,
    },

    /// A pipeline named a codec that is not registered.
    #[error("unknown codec `{name}` (known codecs: {})", known.join(", "))]
    UnknownCodec {
        /// The name asked for.
        name: String,
        /// The registered codec names, sorted.
        known: Vec<String>,
    },

    /// A value was written with a zstd dictionary this registry has not been given.
    #[error("unknown zstd dictionary {id} (known dictionaries: {known:?}); add it with Registry::add_dictionary")]
    UnknownDictionary {
        /// The dictionary id asked for.
        id: u32,
        /// The ids the registry holds, sorted.
        known: Vec<u32>,
    },

    /// A pipeline name or codec argument is malformed (e.g. `zstd:99`, `json+`).
    #[error("invalid pipeline `{name}`: {reason}")]
    InvalidPipeline {
        /// The pipeline or codec spec as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The format could not serialize the value (e.g. a non-bytes value given to `raw`, a map
    /// key JSON cannot hold).
    #[error("{format}: cannot encode value: {detail}")]
    Encode {
        /// The format name.
        format: String,
        /// The serializer's error (its text is part of this error's message).
        detail: BoxError,
    },

    /// The format could not deserialize the payload into the requested type, for another
    /// reason than a [`TypeMismatch`](Error::TypeMismatch) (bad bytes, a missing field, an
    /// integer out of range, a refused pickle opcode).
    #[error("{format}: cannot decode value as {asked_for}: {detail}")]
    Decode {
        /// The format name.
        format: String,
        /// The Rust type asked for, without module paths (`Vec<u32>`).
        asked_for: String,
        /// The deserializer's error (its text is part of this error's message).
        detail: BoxError,
    },

    /// The payload holds another kind of value than the type asked for: `json: cannot decode
    /// value: stored a text string, asked for a sequence (Vec<u32>)`. The stored value itself is never quoted.
    #[error(
        "{format}: cannot decode value: stored {stored}, asked for {}",
        asked(expected, asked_for)
    )]
    TypeMismatch {
        /// The format name.
        format: String,
        /// What the payload holds, in words (`a text string`, `a map`).
        stored: String,
        /// What the deserializer of the requested type expected, in words (`a sequence`).
        expected: String,
        /// The Rust type asked for, without module paths (`Vec<u32>`).
        asked_for: String,
    },

    /// A codec failed to compress or decompress.
    #[error("{codec}: {op} failed: {detail}")]
    Codec {
        /// The codec spec (e.g. `zstd:3`).
        codec: String,
        /// `"compressing"` or `"decompressing"`.
        op: &'static str,
        /// The codec's error (its text is part of this error's message).
        detail: BoxError,
    },

    /// Training a zstd dictionary failed (e.g. too few or too small samples).
    #[error("training a zstd dictionary failed: {0}")]
    Dictionary(std::io::Error),

    /// The stored bytes fail a check of the envelope (magic, length, checksum). The data is
    /// damaged.
    #[error("corrupt value envelope: {reason}")]
    Corrupt {
        /// What check failed, with the offset where that helps.
        reason: String,
    },

    /// The value was written by a newer version of this crate: upgrade to read it.
    #[error(
        "value envelope version {found}, this build reads up to {supported}: upgrade required"
    )]
    UpgradeRequired {
        /// The envelope version found.
        found: u8,
        /// The newest version this build understands.
        supported: u8,
    },

    /// The registry holds a MAC key and the value's MAC is missing or wrong: it was not written
    /// by a holder of the key (or was altered after).
    #[error("value rejected: {reason}")]
    Unauthenticated {
        /// Why the value was refused.
        reason: String,
    },
}

/// `a sequence (Vec<u32>)`, or just `u32` when the deserializer's words are the type name.
fn asked(expected: &str, asked_for: &str) -> String {
    if expected == asked_for {
        expected.to_owned()
    } else {
        format!("{expected} ({asked_for})")
    }
}

impl Error {
    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Error::Corrupt {
            reason: reason.into(),
        }
    }

    /// Whether this error means the stored bytes are damaged (as opposed to a missing format,
    /// a type mismatch or a newer version).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }

    /// Whether the payload decoded fine but holds another kind of value than the type asked
    /// for ([`Error::TypeMismatch`]): for a cache, a value of another type under the key, to
    /// recompute rather than report.
    pub fn is_type_mismatch(&self) -> bool {
        matches!(self, Error::TypeMismatch { .. })
    }
}
