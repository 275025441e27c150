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

    /// A value could not be encoded or decoded. The cause is the [`source`](std::error::Error::source),
    /// not repeated in this message, so a chain printer shows it once.
    #[error("value for key {key}")]
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

    /// A batch function (`call_many`, `#[memoize(batch)]`) returned another number of results
    /// than the inputs it was given: results cannot be matched to inputs, so none is stored.
    #[error(
        "batch function {namespace:?} returned {got} results for {expected} inputs; \
         it must return one result per input, in input order"
    )]
    BatchLength {
        /// The memoized function's namespace.
        namespace: String,
        /// How many inputs the batch function was given.
        expected: usize,
        /// How many results it returned.
        got: usize,
    },

    /// A revision operation was refused: a name taken or too long, no such revision, a
    /// reserved key, a damaged revision manifest, an archive that cannot be read.
    #[error("revisions of key {key}: {message}")]
    Revision {
        /// The user key.
        key: cacher_store::KeyDisplay,
        /// What was refused, and why.
        message: String,
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

    /// Whether a MAC key refused the stored value: written without the key, altered, or
    /// copied from another key.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            Error::Format {
                source: cacher_formats::Error::Unauthenticated { .. },
                ..
            }
        )
    }

    /// Whether stored bytes are damaged: a store's own check, or a value envelope's (as
    /// opposed to a missing value, a configuration mistake, an I/O failure or a newer
    /// version).
    pub fn is_corrupt(&self) -> bool {
        match self {
            Error::Store(e) => e.is_corrupt(),
            Error::Format { source, .. } => source.is_corrupt(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use cacher_store::{MemoryStore, Store};

    use super::Error;
    use crate::Cache;

    /// Every message of `e`'s chain, outermost first.
    fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
        let mut out = vec![e.to_string()];
        let mut cur = e.source();
        while let Some(c) = cur {
            out.push(c.to_string());
            cur = c.source();
        }
        out
    }

    fn corrupt_read() -> Error {
        let store = std::sync::Arc::new(MemoryStore::new());
        let cache = Cache::builder().store(store.clone()).build().unwrap();
        cache.put("k", &"value").unwrap();
        let mut bytes = store.get(b"k").unwrap().unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        store.put(b"k", &bytes).unwrap();
        cache.get::<String>("k").unwrap_err()
    }

    #[test]
    fn a_cause_is_printed_once_in_the_chain() {
        let err = corrupt_read();
        let msgs = chain(&err);
        assert!(msgs.len() >= 2, "{msgs:?}");
        for pair in msgs.windows(2) {
            assert!(
                !pair[0].contains(&pair[1]),
                "{:?} repeats its cause {:?}",
                pair[0],
                pair[1]
            );
        }
        assert!(err.source().is_some());
    }

    #[test]
    fn a_damaged_envelope_is_corrupt_and_a_miss_is_not() {
        assert!(corrupt_read().is_corrupt());
        let miss = Error::Miss {
            key: cacher_store::KeyDisplay::new(b"k"),
        };
        assert!(!miss.is_corrupt());
        assert!(!Error::Config("x".into()).is_corrupt());
    }
}
