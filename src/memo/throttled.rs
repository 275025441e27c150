//! [`Memo::throttle`]: a memoized function whose real calls keep a [`Throttle`]'s pace.

use serde::Serialize;

use crate::memo::{Memo, StorePolicy};
use crate::stats::RELAXED;
use crate::throttle::Throttle;

impl<A, R, F, P> Memo<A, R, F, P>
where
    A: Serialize,
    F: Fn(A) -> R,
    P: StorePolicy<R>,
{
    /// Keeps `throttle`'s pace between the function's real calls: a call that computes first
    /// waits its turn in its group; a hit never waits. A throttle across processes that cannot
    /// reach its shared file lets the call run unthrottled and counts the error in the stats
    /// (`errors`): the function's value is never lost to the throttle. See [`Throttle`] for
    /// an example.
    pub fn throttle(self, throttle: Throttle<A>) -> Memo<A, R, impl Fn(A) -> R, P> {
        let f = self.f;
        let stats = self.stats.clone();
        Memo {
            cache: self.cache,
            namespace: self.namespace,
            version: self.version,
            skip: self.skip,
            deps: self.deps,
            fingerprint: self.fingerprint,
            ttl: self.ttl,
            key_fn: self.key_fn,
            stats: self.stats,
            f: move |args: A| {
                if let Err(e) = throttle.wait(&args) {
                    stats.errors.fetch_add(1, RELAXED);
                    tracing::debug!(error = %e, "cacher: throttle state unreachable");
                }
                f(args)
            },
            _marker: std::marker::PhantomData,
        }
    }
}
