//! Telling a memory tier that another client changed a key: Redis's server-assisted client-side
//! caching (`CLIENT TRACKING ... BCAST PREFIX`), in its RESP2 form.
//!
//! Why tracking rather than our own `PUBLISH` on every write: the server sends the message for
//! every change to a key under the prefix, whoever made it (another cacher, `redis-cli`, an
//! expiry, an eviction, a `FLUSHDB`), and writers pay nothing. One connection turns tracking
//! on and redirects the messages to a second, subscribed to `__redis__:invalidate`; a thread
//! reads them. If either connection drops, messages may have been missed, so the watcher
//! reports [`Invalidated::All`] and reconnects.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ::redis::{cmd, Client};

use super::pool::Target;
use super::RedisStore;
use crate::{Error, Result};

/// What another client changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidated<'a> {
    /// This store's key (without the prefix) was overwritten, deleted, expired or evicted.
    Key(&'a [u8]),
    /// Anything may have changed (a flush of the database, or the watch lost its connection
    /// and may have missed messages): drop every copy.
    All,
}

/// A running watch; dropping it stops the watching thread (within about 100 ms).
#[derive(Debug)]
pub struct InvalidationWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for InvalidationWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How often the reader wakes to check `stop` and that the tracking connection lives.
const TICK: Duration = Duration::from_millis(100);
/// Pause between reconnection attempts while the server is away.
const RETRY: Duration = Duration::from_millis(200);

impl RedisStore {
    /// Calls `on` for every change another client (or Redis itself) makes to this store's
    /// keys, until the returned watch is dropped. Returns once the server tracks the prefix,
    /// so every change after this call is reported. Writes through this handle are reported
    /// too. On a cluster the watch connects to the master holding the store's slot (looked up
    /// again at each reconnection); a slot moved to another master while connected is not
    /// followed until the next reconnection.
    ///
    /// Wire it to a [`Tiered`](crate::Tiered) memory tier in front of this store:
    ///
    /// ```no_run
    /// use cacher_store::redis::{Invalidated, RedisStore};
    /// use cacher_store::Tiered;
    /// let redis = RedisStore::open("redis://127.0.0.1:6379/0", "my-cache")?;
    /// let store = Tiered::new(redis.clone(), 64 << 20);
    /// let hot = store.invalidator();
    /// let _watch = redis.watch_invalidations(move |change| match change {
    ///     Invalidated::Key(key) => hot.invalidate(key),
    ///     Invalidated::All => hot.invalidate_all(),
    /// })?;
    /// # Ok::<(), cacher_store::Error>(())
    /// ```
    pub fn watch_invalidations(
        &self,
        on: impl FnMut(Invalidated<'_>) + Send + 'static,
    ) -> Result<InvalidationWatch> {
        let source = match self.pool().target() {
            Target::Single(c) => Source::Single(Box::new(c.clone())),
            Target::Cluster(_, seeds) => Source::Cluster(seeds.clone()),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let watcher = Watcher {
            source,
            prefix: self.inner.names.data_prefix().to_vec(),
            timeout: self.pool().timeout(),
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("cacher-redis-invalidation".into())
            .spawn(move || watcher.run(on, ready_tx))
            .map_err(|e| Error::Engine {
                engine: "redis",
                path: self.server().into(),
                source: Box::new(e),
            })?;
        let watch = InvalidationWatch {
            stop,
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(watch),
            Ok(Err(e)) => Err(self.pool().error(e)),
            Err(_) => Err(Error::Engine {
                engine: "redis",
                path: self.server().into(),
                source: "the invalidation thread ended before it was ready".into(),
            }),
        }
    }
}

/// Where the watch connects.
enum Source {
    Single(Box<Client>),
    /// The cluster's seed nodes: the node holding the slot is asked for at each connection.
    Cluster(Vec<::redis::ConnectionInfo>),
}

struct Watcher {
    source: Source,
    prefix: Vec<u8>,
    timeout: Duration,
    stop: Arc<AtomicBool>,
}

type Ready = mpsc::Sender<::redis::RedisResult<()>>;

impl Watcher {
    fn run(self, mut on: impl FnMut(Invalidated<'_>), ready: Ready) {
        let mut ready = Some(ready);
        while !self.stop.load(Ordering::Relaxed) {
            if let Err(e) = self.session(&mut on, &mut ready) {
                if let Some(r) = ready.take() {
                    // The first connection failed: `watch_invalidations` reports it.
                    let _ = r.send(Err(e));
                    return;
                }
            }
            // Whatever changed while disconnected was not seen.
            on(Invalidated::All);
            std::thread::sleep(RETRY);
        }
    }

    /// A client for the node that holds the store's keys.
    fn client(&self) -> ::redis::RedisResult<Client> {
        let seeds = match &self.source {
            Source::Single(c) => return Ok((**c).clone()),
            Source::Cluster(seeds) => seeds,
        };
        let mut last = None;
        for seed in seeds {
            match self.slot_owner(seed) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            ::redis::RedisError::from((::redis::ErrorKind::InvalidClientConfig, "no seed node"))
        }))
    }

    fn slot_owner(&self, seed: &::redis::ConnectionInfo) -> ::redis::RedisResult<Client> {
        let mut c = Client::open(seed.clone())?.get_connection_with_timeout(self.timeout)?;
        c.set_read_timeout(Some(self.timeout))?;
        let slot: i64 = cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&self.prefix)
            .query(&mut c)?;
        // [[start, end, [host, port, id, ...] (the master), replicas...], ...]
        let ranges: Vec<::redis::Value> = cmd("CLUSTER").arg("SLOTS").query(&mut c)?;
        for range in ranges {
            let ::redis::Value::Array(fields) = range else {
                continue;
            };
            let (Some(start), Some(end), Some(master)) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                continue;
            };
            let start: i64 = ::redis::from_redis_value_ref(start)?;
            let end: i64 = ::redis::from_redis_value_ref(end)?;
            if !(start..=end).contains(&slot) {
                continue;
            }
            let (host, port): (String, u16) = match master {
                ::redis::Value::Array(m) if m.len() >= 2 => (
                    ::redis::from_redis_value_ref(&m[0])?,
                    ::redis::from_redis_value_ref(&m[1])?,
                ),
                _ => break,
            };
            let addr = match seed.addr() {
                ::redis::ConnectionAddr::Tcp(..) => ::redis::ConnectionAddr::Tcp(host, port),
                _ => {
                    return Err(::redis::RedisError::from((
                        ::redis::ErrorKind::InvalidClientConfig,
                        "watching invalidations on a TLS cluster is not supported yet",
                    )))
                }
            };
            return Client::open(seed.clone().set_addr(addr));
        }
        Err(::redis::RedisError::from((
            ::redis::ErrorKind::ClusterConnectionNotFound,
            "no master holds the store's slot",
        )))
    }

    /// One connected stretch: subscribe, turn tracking on, report messages until a
    /// connection fails or the watch stops.
    fn session(
        &self,
        on: &mut impl FnMut(Invalidated<'_>),
        ready: &mut Option<Ready>,
    ) -> ::redis::RedisResult<()> {
        let client = self.client()?;
        let mut sub = client.get_connection_with_timeout(self.timeout)?;
        sub.set_write_timeout(Some(self.timeout))?;
        sub.set_read_timeout(Some(self.timeout))?;
        let id: i64 = cmd("CLIENT").arg("ID").query(&mut sub)?;
        let mut tracker = client.get_connection_with_timeout(self.timeout)?;
        tracker.set_write_timeout(Some(self.timeout))?;
        tracker.set_read_timeout(Some(self.timeout))?;
        // Kept for the whole session: dropping the PubSub unsubscribes.
        let mut ps = sub.as_pubsub();
        ps.subscribe("__redis__:invalidate")?;
        cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("REDIRECT")
            .arg(id)
            .arg("BCAST")
            .arg("PREFIX")
            .arg(&self.prefix)
            .exec(&mut tracker)?;
        match ready.take() {
            Some(r) => {
                let _ = r.send(Ok(()));
            }
            // A reconnection: a copy promoted after the drop and before tracking was back
            // on may be stale with no message to come, so drop everything once more.
            None => on(Invalidated::All),
        }
        ps.set_read_timeout(Some(TICK))?;
        let mut last_ping = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            match ps.get_message() {
                Ok(msg) => match msg.get_payload::<Option<Vec<Vec<u8>>>>() {
                    Ok(Some(keys)) => {
                        for k in &keys {
                            if let Some(key) = k.strip_prefix(&self.prefix[..]) {
                                on(Invalidated::Key(key));
                            }
                        }
                    }
                    // Nil after FLUSHDB/FLUSHALL; anything unexpected is treated alike.
                    Ok(None) | Err(_) => on(Invalidated::All),
                },
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(e),
            }
            // Tracking lives on the other connection: if it died, messages stopped.
            if last_ping.elapsed() >= Duration::from_secs(1) {
                cmd("PING").exec(&mut tracker)?;
                last_ping = Instant::now();
            }
        }
        Ok(())
    }
}
