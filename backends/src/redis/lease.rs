//! Leases across hosts: `SET NX PX` with a random token; release and extend only by the holder,
//! checked on the server by a compare-the-token script.
//!
//! A lease is how many machines agree that one of them computes a missing value while the
//! others wait (single-flight across hosts). It is advisory and time-bound: a holder that
//! dies loses the lease when its TTL runs out, and a holder slower than its TTL can find it
//! taken over, which [`Lease::extend`] reports.
//!
//! Through [`Store::lease`](crate::Store::lease) (what a `Cache`'s single-flight uses) the
//! lease is also renewed: a thread extends it every third of its TTL while it is held, so a
//! live holder slower than the TTL keeps it, and a dead one (its renewals stop with it) loses
//! it within one TTL. A renewal that finds another token marks the lease lost
//! ([`Held::is_lost`](crate::lease::Held::is_lost)) and stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ::redis::{cmd, Script};

use super::RedisStore;
use crate::lease::{Backoff, Claim, Held, Hold, Terms};
use crate::{Error, Result};

/// Deletes the lease key only if it still holds our token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// Resets the lease's TTL only if it still holds our token.
const EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

/// A held lease on one name of a [`RedisStore`]; released on drop (best effort: an error then
/// is ignored, and the TTL ends the lease anyway).
#[derive(Debug)]
pub struct Lease {
    store: RedisStore,
    key: Vec<u8>,
    token: [u8; 16],
    released: bool,
}

fn ttl_ms(store: &RedisStore, ttl: Duration) -> Result<u64> {
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return Err(Error::InvalidArgument {
            op: "taking a lease",
            path: store.server().into(),
            reason: "a lease's TTL must be at least 1 ms".into(),
        });
    }
    Ok(ms)
}

impl RedisStore {
    /// Takes the lease `name` for `ttl` if nobody holds it; `Ok(None)` if another client does.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use cacher_store::redis::RedisStore;
    /// let store = RedisStore::open("redis://127.0.0.1:6379/0", "my-cache")?;
    /// if let Some(lease) = store.try_lease(b"report-2026", Duration::from_secs(30))? {
    ///     // ... compute and put the value ...
    ///     lease.release()?;
    /// }
    /// # Ok::<(), cacher_store::Error>(())
    /// ```
    pub fn try_lease(&self, name: &[u8], ttl: Duration) -> Result<Option<Lease>> {
        if self.inner.options.dedicated_db {
            return Err(Error::Unsupported {
                op: "taking a lease",
                path: self.server().into(),
                reason: "this store declared a dedicated database (len is DBSIZE); take leases \
                         on a store opened on another database"
                    .into(),
            });
        }
        let ms = ttl_ms(self, ttl)?;
        let mut token = [0u8; 16];
        getrandom::fill(&mut token).map_err(|e| Error::Engine {
            engine: "redis",
            path: self.server().into(),
            source: format!("drawing a lease token from the OS: {e}").into(),
        })?;
        let key = self.inner.names.lease_key(name);
        let mut c = cmd("SET");
        c.arg(&key).arg(&token[..]).arg("NX").arg("PX").arg(ms);
        let taken: Option<String> = self.pool().with(|conn| c.query(conn.as_dyn()))?;
        Ok(taken.map(|_| Lease {
            store: self.clone(),
            key,
            token,
            released: false,
        }))
    }

    /// Takes the lease `name` for `ttl`, polling while another client holds it, for at most
    /// `wait`; `Ok(None)` if it was still held then. Polls every `poll` (at least 1 ms).
    pub fn wait_lease(
        &self,
        name: &[u8],
        ttl: Duration,
        wait: Duration,
        poll: Duration,
    ) -> Result<Option<Lease>> {
        let poll = poll.max(Duration::from_millis(1));
        let end = Instant::now() + wait;
        loop {
            if let Some(lease) = self.try_lease(name, ttl)? {
                return Ok(Some(lease));
            }
            let now = Instant::now();
            if now >= end {
                return Ok(None);
            }
            std::thread::sleep(poll.min(end - now));
        }
    }

    /// [`Store::lease`](crate::Store::lease) for this store: polls (1 ms doubling to 50 ms,
    /// like file leases) for at most `terms.wait()`, and renews a won lease while it is held.
    /// `Ok(None)` on a store that declared a dedicated database, which takes no leases.
    pub(super) fn claim(&self, key: &[u8], terms: &Terms) -> Result<Option<Claim>> {
        if self.inner.options.dedicated_db {
            return Ok(None);
        }
        let mut backoff = Backoff::new(terms.wait());
        let mut waited = false;
        loop {
            if let Some(lease) = self.try_lease(key, terms.ttl())? {
                return Ok(Some(Claim::Won {
                    lease: Held::new(Renewed::start(lease, terms.ttl())),
                    waited,
                }));
            }
            waited = true;
            if !backoff.pause() {
                return Ok(Some(Claim::TimedOut));
            }
        }
    }
}

/// A lease renewed by a thread of its own until dropped; see the [module docs](self).
#[derive(Debug)]
struct Renewed {
    // Field order is drop order: the renewals stop before the lease is released.
    renewal: Renewal,
    _lease: Lease,
}

#[derive(Debug)]
struct Renewal {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    lost: Arc<AtomicBool>,
}

impl Renewed {
    fn start(lease: Lease, ttl: Duration) -> Renewed {
        let (stop, stopped) = mpsc::channel::<()>();
        let lost = Arc::new(AtomicBool::new(false));
        let every = (ttl / 3).max(Duration::from_millis(1));
        let (store, key, token) = (lease.store.clone(), lease.key.clone(), lease.token);
        let flag = lost.clone();
        let thread = std::thread::Builder::new()
            .name("cacher-lease-renewal".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    match extend(&store, &key, &token, ttl) {
                        Ok(true) => {}
                        Ok(false) => {
                            flag.store(true, Ordering::Release);
                            return;
                        }
                        // A server hiccup: the lease may still be ours; try at the next turn.
                        Err(_) => {}
                    }
                }
            });
        // Without a thread (the OS refused one) the lease still holds for its TTL.
        let thread = thread.ok();
        Renewed {
            renewal: Renewal {
                stop: Some(stop),
                thread,
                lost,
            },
            _lease: lease,
        }
    }
}

impl Hold for Renewed {
    fn is_lost(&self) -> bool {
        self.renewal.lost.load(Ordering::Acquire)
    }
}

impl Drop for Renewal {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // Wakes at once (the channel is closed); at most one EXTEND in flight to wait for.
            let _ = thread.join();
        }
    }
}

/// Resets the TTL of the lease `key` if it still holds `token`.
fn extend(store: &RedisStore, key: &[u8], token: &[u8; 16], ttl: Duration) -> Result<bool> {
    let ms = ttl_ms(store, ttl)?;
    let script = Script::new(EXTEND);
    let mut inv = script.key(key);
    inv.arg(&token[..]).arg(ms);
    let n: u64 = store.pool().with(|c| inv.invoke(c.as_dyn()))?;
    Ok(n == 1)
}

impl Lease {
    /// The random token that proves this client holds the lease.
    pub fn token(&self) -> &[u8; 16] {
        &self.token
    }

    /// Resets the lease's TTL to `ttl`; `Ok(false)` if it is no longer ours (it ran out and
    /// maybe another client took it).
    pub fn extend(&self, ttl: Duration) -> Result<bool> {
        extend(&self.store, &self.key, &self.token, ttl)
    }

    /// Gives the lease up; `Ok(false)` if it was no longer ours.
    pub fn release(mut self) -> Result<bool> {
        self.released = true;
        self.release_ref()
    }

    fn release_ref(&self) -> Result<bool> {
        let script = Script::new(RELEASE);
        let mut inv = script.key(&self.key);
        inv.arg(&self.token[..]);
        let n: u64 = self.store.pool().with(|c| inv.invoke(c.as_dyn()))?;
        Ok(n == 1)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.released {
            // Best effort: if this fails the lease ends at its TTL.
            let _ = self.release_ref();
        }
    }
}
