//! Errors a call swallowed because it returned the computed value anyway (`Memo::call`, a
//! `#[memoize]` function, the cleanup thread): each is counted in the namespace's `errors`,
//! and the first of each kind per cache is logged through `tracing`, so a broken cache shows
//! up in the logs and not only in a counter nobody reads.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::stats::{Atomics, RELAXED};
use crate::Error;

/// What a swallowed error interrupted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ErrorKind {
    /// Making the key (an argument's `Serialize` failed, an ignored position is missing).
    Key = 1,
    /// Reading the cached value (I/O, a corrupt or unauthenticated entry).
    Read = 2,
    /// Storing the computed value.
    Write = 4,
    /// A background cleanup pass.
    Cleanup = 8,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::Key => "making the cache key",
            ErrorKind::Read => "reading the cached value",
            ErrorKind::Write => "storing the computed value",
            ErrorKind::Cleanup => "cleaning up the cache",
        }
    }
}

/// Which kinds were already logged (one bit each).
#[derive(Debug, Default)]
pub(crate) struct Reported(AtomicU8);

impl Reported {
    /// Counts `err` in `stats` and logs it if it is the first of its kind.
    pub fn swallowed(&self, stats: &Atomics, namespace: &str, kind: ErrorKind, err: &Error) {
        stats.errors.fetch_add(1, RELAXED);
        let bit = kind as u8;
        if self.0.fetch_or(bit, Ordering::Relaxed) & bit == 0 {
            tracing::warn!(
                namespace,
                error = %chain(err),
                "cacher: error {}; the call went on without the cache. Later errors of this \
                 kind are only counted (Cache::stats, `errors`)",
                kind.describe()
            );
        }
    }
}

/// `err` and its causes, each printed once: `a: b: c`.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
