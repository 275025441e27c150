//! The per-key revision lock: every change to a key's revisions (an overwrite that moves the
//! old value to a record, naming, archival, restore) reads the key's manifest, changes it and
//! writes it back, so two writers at once would each start from the same manifest and one's
//! change would be lost (an overwritten value that never became a revision). They take this
//! lock first: a stripe mutex for the threads of this process, then the store's lease on the
//! key's manifest key (a lock under `leases/` on disk stores, `SET NX` on Redis) for other
//! processes. The manifest key is not the key itself: a memoized call holds the key's own
//! lease (single-flight) while it stores its value.

use std::sync::MutexGuard;
use std::time::Duration;

use cacher_store::lease::{Claim, Held, Terms};

use super::keys::manifest_key;
use crate::cache::Cache;
use crate::{Error, Result};

/// How long a writer waits for another to finish changing the same key's revisions when the
/// cache waits for no leases otherwise (`lease_timeout(None)`).
const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// Held while one key's revisions change; released when dropped.
pub(crate) struct RevisionLock<'a> {
    _lease: Option<Held>,
    _stripe: MutexGuard<'a, ()>,
}

impl Cache {
    /// Takes `key`'s revision lock (see the module docs). A holder that outlasts the wait is
    /// an error, never a change made without the lock.
    pub(crate) fn lock_revisions(&self, key: &[u8]) -> Result<RevisionLock<'_>> {
        let stripe = self.inner.revisions.locks.lock(key);
        let flights = &self.inner.flights;
        let wait = flights.lease_timeout.unwrap_or(DEFAULT_WAIT);
        let terms = Terms::new(flights.lease_ttl, wait);
        let lease = match self.inner.store.lease(&manifest_key(key), &terms)? {
            Some(Claim::Won { lease, .. }) => Some(lease),
            Some(Claim::TimedOut) => {
                return Err(Error::Revision {
                    key: cacher_store::KeyDisplay::new(key),
                    message: format!(
                        "another process held the key's revision lock for {wait:?}, the \
                         longest this cache waits"
                    ),
                })
            }
            None => None,
        };
        Ok(RevisionLock {
            _lease: lease,
            _stripe: stripe,
        })
    }
}
