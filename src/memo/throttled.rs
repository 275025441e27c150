//! [`Memo::throttle`]: a memoized function whose real calls keep a [`Throttle`]'s pace.

use std::sync::Arc;

use crate::key::KeyError;
use crate::memo::args::MemoFn;
use crate::memo::{Memo, StorePolicy};
use crate::stats::{Atomics, RELAXED};
use crate::throttle::Throttle;

impl<A, R, F, P> Memo<A, R, F, P>
where
    F: MemoFn<A, R>,
    P: StorePolicy<R>,
{
    /// Keeps `throttle`'s pace between the function's real calls: a call that computes first
    /// waits its turn in its group; a hit never waits. A throttle across processes that cannot
    /// reach its shared file lets the call run unthrottled and counts the error in the stats
    /// (`errors`): the function's value is never lost to the throttle. See [`Throttle`] for
    /// an example.
    pub fn throttle(self, throttle: Throttle<A>) -> Memo<A, R, Throttled<F, A>, P> {
        let stats = self.id.stats.clone();
        Memo {
            id: self.id,
            f: Throttled {
                f: self.f,
                throttle,
                stats,
            },
            _marker: std::marker::PhantomData,
        }
    }
}

/// A function that waits its [`Throttle`] turn before each real call; its key is the inner
/// function's.
pub struct Throttled<F, A> {
    f: F,
    throttle: Throttle<A>,
    stats: Arc<Atomics>,
}

impl<F: MemoFn<A, R>, A, R> MemoFn<A, R> for Throttled<F, A> {
    fn call_fn(&self, args: A) -> R {
        if let Err(e) = self.throttle.wait(&args) {
            self.stats.errors.fetch_add(1, RELAXED);
            tracing::debug!(error = %e, "cacher: throttle state unreachable");
        }
        self.f.call_fn(args)
    }
    fn key_bytes(&self, args: &A, skip: &[usize]) -> Result<Vec<u8>, KeyError> {
        self.f.key_bytes(args, skip)
    }
}
