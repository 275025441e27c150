//! The one error type of the `cacher` crate; the lower crates' errors are variants of it.

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the cache front-end can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed (I/O, corrupt data, locked, full…).
    #[error(transparent)]
    Store(#[from] cacher_store::Error),

    /// A value could not be encoded or decoded.
    #[error("value for key {key}: {source}")]
    Format {
        /// The key whose value failed.
        key: cacher_store::KeyDisplay,
        /// The format error.
        #[source]
        source: cacher_formats::Error,
    },

    /// The arguments of a memoized call could not be turned into a key.
    #[error(transparent)]
    Key(#[from] crate::key::KeyError),

    /// A cache-only call found nothing (or only an expired value) under the key.
    #[error("cache-only call missed: no fresh value under key {key}")]
    Miss {
        /// The key looked up.
        key: cacher_store::KeyDisplay,
    },

    /// The builder was given an invalid combination of settings.
    #[error("invalid cache configuration: {0}")]
    Config(String),
}

impl Error {
    pub(crate) fn format(key: &[u8], source: cacher_formats::Error) -> Self {
        Error::Format {
            key: cacher_store::KeyDisplay::new(key),
            source,
        }
    }

    /// True for [`Error::Miss`].
    pub fn is_miss(&self) -> bool {
        matches!(self, Error::Miss { .. })
    }
}
