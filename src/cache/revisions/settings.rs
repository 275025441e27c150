//! What a cache keeps: revisions per key (for the whole cache and per namespace), and where
//! its archive files go.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::key::namespace_of;

/// The revision settings of one cache, fixed when it is built.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    /// Old revisions kept per key for the whole cache (0: none, the default).
    pub keep: u32,
    /// Overrides of `keep` by namespace (a memoized function's results).
    pub keep_by_namespace: HashMap<String, u32>,
    /// Where archive files are written; `None`: beside the store (see `archive_dir`).
    pub archive_dir: Option<PathBuf>,
}

impl Settings {
    /// How many unnamed old revisions `key` keeps in the store.
    pub fn keep_for(&self, key: &[u8]) -> u32 {
        if !self.keep_by_namespace.is_empty() {
            if let Some(n) = namespace_of(key).and_then(|ns| self.keep_by_namespace.get(ns)) {
                return *n;
            }
        }
        self.keep
    }

    /// Whether any key of the cache keeps revisions (the write path reads the old value only
    /// then).
    pub fn any(&self) -> bool {
        self.keep > 0 || self.keep_by_namespace.values().any(|&n| n > 0)
    }
}
