//! Revisions: a cache (or one namespace) keeps the last N values of each key, numbered, with
//! names that pin them, and moves old ones into archive files (`archive.rs`).
//!
//! - `keys`: the derived key space of revision records and manifests (never a user key);
//! - `manifest`: the per-key list of revisions (number, time, size, name, where it lives);
//! - `write`: the overwrite path and why its order of writes is crash-safe;
//! - `read`: listing, reading and naming revisions;
//! - `archive`: moving revisions into archive files and back (feature `archive`).
//!
//! # Numbers
//!
//! With `keep_revisions(n)`, every write of a key gets the next revision number, stored in the
//! envelope's `revision` field: the first value is revision 1, the value that overwrites it
//! revision 2, and so on; revision 1 stays readable as revision 1 (numbers never shift). A
//! value written without revisions (envelope revision 0) gets the next free number when it is
//! overwritten. Revisions outlive [`Cache::remove`](crate::Cache::remove) of their key
//! (history is not the current value) and go with [`Cache::clear`](crate::Cache::clear).
//!
//! # Limits
//!
//! Each unnamed old revision in the store counts against `max_entries` and `max_bytes` as an
//! entry of its own (its whole stored size) and may be evicted like one; under LRU, old
//! revisions are never read by `get`, so they go before the values in use. Named revisions are
//! pinned: not counted, never evicted. Revisions read back from the store after a reopen are
//! bounded by `keep_revisions` per key (the limits scan counts user keys only).

mod keys;
mod lock;
mod manifest;
mod read;
mod settings;
mod write;

#[cfg(feature = "archive")]
mod archive;

use std::path::PathBuf;

#[cfg(feature = "archive")]
pub use archive::{ArchivePolicy, ArchiveReport};
pub(crate) use settings::Settings;

/// Where one revision of a key lives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevisionPlace {
    /// It is the key's current value.
    Current,
    /// An old revision kept in the cache's store.
    Store,
    /// An old revision moved into this archive file.
    Archive(PathBuf),
}

/// One revision of a key, as [`Cache::revisions`](crate::Cache::revisions) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevisionInfo {
    /// Its number: 1 for the key's first value, counting up with each write (0 for a current
    /// value written while the cache kept no revisions of its key).
    pub number: u64,
    /// Its name, for a named (pinned) revision.
    pub name: Option<String>,
    /// When it was written, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Its stored size in bytes (the whole envelope).
    pub size: u64,
    /// Where it lives.
    pub place: RevisionPlace,
}

/// Whether `store_key` is one of the cache's own revision records or manifests (the reserved
/// key space, see the `revisions` module docs) rather than a user key: tools that check every
/// entry's envelope against its store key (`cacher verify`) skip these, whose envelopes are
/// bound to the user key they were written under.
///
/// ```
/// assert!(!cacher::is_revision_key(b"user:42"));
/// ```
pub fn is_revision_key(store_key: &[u8]) -> bool {
    keys::is_reserved(store_key)
}

/// What a key of the cache's reserved revision key space holds ([`revision_key_kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisionKeyKind {
    /// An old revision of some user key, by number.
    Record(u64),
    /// The list of a user key's revisions (the whole user key is inside it).
    Manifest,
    /// A key of the reserved space of neither shape (written by a newer cacher).
    Other,
}

/// What `store_key` is in the reserved revision key space, or `None` for a user key: for
/// tools that list a store's entries (`cacher ls`) and must not decode the key layout
/// themselves.
///
/// ```
/// use cacher::{revision_key_kind, Cache, RevisionKeyKind};
/// use cacher::store::{MemoryStore, Store};
///
/// let store = std::sync::Arc::new(MemoryStore::new());
/// let cache = Cache::builder().store(store.clone()).keep_revisions(1).build()?;
/// cache.put("k", &1)?;
/// cache.put("k", &2)?;
/// let mut kinds: Vec<_> = store.keys()?.map(|k| revision_key_kind(&k.unwrap())).collect();
/// kinds.sort_by_key(|k| format!("{k:?}"));
/// assert_eq!(kinds, [None, Some(RevisionKeyKind::Manifest), Some(RevisionKeyKind::Record(1))]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn revision_key_kind(store_key: &[u8]) -> Option<RevisionKeyKind> {
    keys::kind_of(store_key)
}

/// Longest revision name, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 256;
