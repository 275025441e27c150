//! The one error type of `cacher-store`.

use std::path::PathBuf;

use crate::key::KeyDisplay;

/// A `Result` whose error is this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a store can fail with. Each variant carries the context (path, key) needed to act
/// on it; no store panics on bad data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error on `path`.
    #[error("I/O error while {op} {}", path.display())]
    Io {
        /// What the store was doing (e.g. "opening", "renaming").
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Stored bytes fail a check (magic, checksum, length). The data is damaged.
    #[error("corrupt data in {}{}: {reason}", path.display(), key.as_ref().map(|k| format!(" (key {k})")).unwrap_or_default())]
    Corrupt {
        /// The file holding the damaged data.
        path: PathBuf,
        /// The key whose value is damaged, when known.
        key: Option<KeyDisplay>,
        /// What check failed, with the offset where that helps.
        reason: String,
    },

    /// The data was written by a newer version of this crate: upgrade to read it.
    #[error("{} has format version {found}, this build reads up to {supported}: upgrade required", path.display())]
    UpgradeRequired {
        /// The file or environment.
        path: PathBuf,
        /// The version found on disk.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },

    /// Another process holds the lock this operation needs (e.g. a second `LogStore` writer).
    #[error("{} is locked by another process: {reason}", path.display())]
    Locked {
        /// The lock file or store path.
        path: PathBuf,
        /// Who holds it or why the lock is needed.
        reason: String,
    },

    /// The store reached its configured size cap.
    #[error("store {} is full (cap {cap} bytes)", path.display())]
    Full {
        /// The store path.
        path: PathBuf,
        /// The configured cap in bytes.
        cap: u64,
    },

    /// The operation is not allowed on this store handle (e.g. a write on a read-only open).
    #[error("{op} is not allowed on {}: {reason}", path.display())]
    Unsupported {
        /// The operation refused.
        op: &'static str,
        /// The store path.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// A key or value the layout cannot hold (e.g. longer than its limit).
    #[error("invalid key {key}: {reason}")]
    InvalidKey {
        /// The key.
        key: KeyDisplay,
        /// Why it cannot be stored.
        reason: String,
    },

    /// An argument the operation cannot take (e.g. a typed array read with another element
    /// type, a dtype the layout has no code for). Nothing on disk is wrong.
    #[error("invalid argument to {op} on {}: {reason}", path.display())]
    InvalidArgument {
        /// The operation refused.
        op: &'static str,
        /// The store path.
        path: PathBuf,
        /// What was expected and what was given.
        reason: String,
    },

    /// A path inside the store is not a file or directory the store made: a symlink, FIFO,
    /// socket or device planted there. The store refuses it without following or opening it.
    #[error("refusing {}: expected {expected}, found {found}", path.display())]
    NotOwned {
        /// The path refused.
        path: PathBuf,
        /// What the store expected there (e.g. "a regular file").
        expected: &'static str,
        /// What is there instead (e.g. "a symbolic link").
        found: &'static str,
    },

    /// The directory holds another kind of store (or a layout this store cannot be opened on).
    #[error("{} holds a {found}, not a {expected}", path.display())]
    WrongLayout {
        /// The directory or file.
        path: PathBuf,
        /// The kind of store being opened.
        expected: &'static str,
        /// The kind of store found there.
        found: &'static str,
    },

    /// The reader given to a streaming put failed; nothing was stored under `key`.
    #[error("reading the value to store under key {key} from its reader")]
    ValueSource {
        /// The key being written.
        key: KeyDisplay,
        /// The reader's error.
        #[source]
        source: std::io::Error,
    },

    /// An error from a storage engine below the store (e.g. LMDB), with its context.
    #[error("{engine} error on {}", path.display())]
    Engine {
        /// The engine's name, such as `"lmdb"`.
        engine: &'static str,
        /// The store path.
        path: PathBuf,
        /// The engine's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },

    /// The server holding the store (a Redis server or cluster) could not be reached, dropped
    /// the connection, or did not answer within the store's timeout. Nothing was read or
    /// written by the call that failed; the next call reconnects by itself.
    #[error("store server {server} is unavailable (not reachable or not answering in time)")]
    Unavailable {
        /// The server's address, without credentials.
        server: String,
        /// The client's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    /// Wraps an I/O error with what was being done and where.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// A corrupt-data error on `path`, optionally for `key`.
    pub fn corrupt(
        path: impl Into<PathBuf>,
        key: Option<&[u8]>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Corrupt {
            path: path.into(),
            key: key.map(KeyDisplay::new),
            reason: reason.into(),
        }
    }

    /// True for [`Error::Corrupt`].
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }

    /// True for [`Error::Unavailable`]: the store's server is down or too slow, so a caller
    /// may compute without the cache instead of failing.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message of a chain says its own part once: no variant repeats its `#[source]`.
    #[test]
    fn a_cause_is_printed_once_in_the_chain() {
        let io = std::io::Error::other("disk on fire");
        let errors = [
            Error::io(
                "opening",
                "/store/file",
                std::io::Error::other("disk on fire"),
            ),
            Error::Engine {
                engine: "lmdb",
                path: "/store".into(),
                source: Box::new(io),
            },
            Error::ValueSource {
                key: KeyDisplay::new(b"k"),
                source: std::io::Error::other("disk on fire"),
            },
        ];
        for err in errors {
            let mut messages = vec![err.to_string()];
            let mut cause = std::error::Error::source(&err);
            while let Some(c) = cause {
                messages.push(c.to_string());
                cause = c.source();
            }
            assert_eq!(messages.len(), 2, "{messages:?}");
            let all = messages.join(": ");
            assert_eq!(all.matches("disk on fire").count(), 1, "{all}");
        }
    }
}
