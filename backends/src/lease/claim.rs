//! The store-level lease: what [`Store::lease`](crate::Store::lease) asks for ([`Terms`]) and
//! gives ([`Claim`], holding a [`Held`] lease), whatever the store keeps leases in — a lock
//! file per key ([`Leases`](super::Leases), for stores on a shared disk) or a Redis key with a
//! token ([`RedisStore`](crate::RedisStore)).
//!
//! The promises every implementation keeps:
//! - **One holder at a time** per key among every handle of the store (processes, hosts).
//! - **Bounded waits:** a claim waits at most [`Terms::wait`], then says
//!   [`Claim::TimedOut`], and the caller computes without the lease (a duplicate
//!   computation, never a hang).
//! - **Released on drop**, however the holder's scope ends (a return, an error, a panic).
//! - **Takeover when the holder dies:** a file lease is an OS lock, dropped with the process;
//!   a lease with a TTL ([`Terms::ttl`]) ends when the TTL runs out.
//! - **Renewal while the holder runs long:** a lease with a TTL is extended in the
//!   background (every third of the TTL) for as long as it is held, so a live holder slower
//!   than the TTL keeps it; [`Held::is_lost`] says if a renewal found it taken over.

use std::time::Duration;

/// What a caller of [`Store::lease`](crate::Store::lease) asks for.
///
/// ```
/// use cacher_store::lease::Terms;
/// use std::time::Duration;
/// let terms = Terms::new(Duration::from_secs(10), Duration::from_secs(30));
/// assert_eq!(terms.ttl(), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    ttl: Duration,
    wait: Duration,
}

impl Terms {
    /// A lease that outlives a dead holder by at most `ttl` (for stores whose leases are not
    /// tied to a process; at least 1 ms), waited for at most `wait`.
    pub fn new(ttl: Duration, wait: Duration) -> Self {
        Terms {
            ttl: ttl.max(Duration::from_millis(1)),
            wait,
        }
    }

    /// The same terms without waiting: take the lease only if it is free now.
    pub fn without_waiting(self) -> Self {
        Terms {
            wait: Duration::ZERO,
            ..self
        }
    }

    /// How long a lease lives after its holder stops renewing it (it died).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// How long to wait for another holder to release the lease.
    pub fn wait(&self) -> Duration {
        self.wait
    }
}

/// How a [`Store::lease`](crate::Store::lease) claim ended.
#[derive(Debug)]
#[must_use = "a won lease is released when dropped"]
pub enum Claim {
    /// The caller holds the key's lease until it drops it.
    Won {
        /// The lease; drop it after the value is stored.
        lease: Held,
        /// Whether another holder had it first: the value may have been stored meanwhile,
        /// so look it up again before computing.
        waited: bool,
    },
    /// Another holder kept the lease past [`Terms::wait`]: compute without it.
    TimedOut,
}

/// What a store's held lease is: released when dropped. Implemented by each store's own
/// lease type; callers see it as a [`Held`].
pub trait Hold: Send + Sync + std::fmt::Debug {
    /// Whether the lease is known to be no longer this holder's (a renewal found another
    /// holder's token). Leases that cannot be lost while their holder lives say `false`.
    fn is_lost(&self) -> bool {
        false
    }
}

/// A lease won through [`Store::lease`](crate::Store::lease), of any store; released when
/// dropped.
#[derive(Debug)]
pub struct Held(Box<dyn Hold>);

impl Held {
    /// Wraps a store's lease.
    pub fn new(lease: impl Hold + 'static) -> Self {
        Held(Box::new(lease))
    }

    /// Whether the lease was taken over by someone else while held (its TTL ran out and a
    /// renewal came too late): another holder may be computing the same value.
    pub fn is_lost(&self) -> bool {
        self.0.is_lost()
    }
}

impl Hold for super::Lease {}
