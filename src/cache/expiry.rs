//! When a stored value is stale: its own expiry, the cache TTL, the cache-wide deadline.

use cacher_formats::EnvelopeMeta;

use super::Cache;
use crate::clock::duration_ms;

impl Cache {
    /// An entry's own expiry (from the cache TTL when it was written, or a per-value TTL or
    /// deadline) wins; an entry written without one expires by the cache's current TTL. The
    /// cache-wide deadline applies to all.
    pub(crate) fn is_expired(&self, h: &EnvelopeMeta, now: u64) -> bool {
        let own = match h.expires_ms {
            Some(e) => e <= now,
            None => self
                .inner
                .ttl
                .is_some_and(|ttl| h.created_ms.saturating_add(duration_ms(ttl)) <= now),
        };
        own || self.inner.deadline_ms.is_some_and(|d| d <= now)
    }

    /// The expiry written into a new value's envelope: `own` (a per-value TTL or deadline)
    /// or else the cache TTL from `now`, never later than the cache-wide deadline.
    pub(crate) fn expiry_of_new_value(&self, now: u64, own: Option<u64>) -> Option<u64> {
        let ttl_expiry = self
            .inner
            .ttl
            .map(|ttl| now.saturating_add(duration_ms(ttl)));
        [own.or(ttl_expiry), self.inner.deadline_ms]
            .into_iter()
            .flatten()
            .min()
    }
}
