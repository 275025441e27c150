//! [`RedisStore`]: a store on a Redis server or a Redis Cluster, shared by many machines
//! (feature `redis`). The same code serves Valkey, KeyDB and Dragonfly.

mod invalidation;
mod layout;
mod lease;
mod pool;

use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use ::redis::cluster::ClusterClientBuilder;
use ::redis::cluster_routing::Slot;
use ::redis::{cmd, Client, IntoConnectionInfo};

use crate::{Blob, EntryMeta, Error, KeyDisplay, KeyIter, Result, Store};
use layout::{Names, HEADER_LEN, REDIS_STRING_LIMIT};
use pool::{Pool, Target};

pub use invalidation::{Invalidated, InvalidationWatch};
pub use lease::Lease;

/// How a [`RedisStore`] is opened: the key prefix of the cache and the client's limits.
///
/// ```
/// use std::time::Duration;
/// use cacher_store::redis::RedisOptions;
/// let options = RedisOptions::new("thumbnails").with_timeout(Duration::from_millis(500));
/// assert_eq!(options.prefix(), "thumbnails");
/// ```
#[derive(Debug, Clone)]
pub struct RedisOptions {
    prefix: String,
    timeout: Duration,
    max_idle: usize,
    max_value_len: u64,
    dedicated_db: bool,
    #[cfg(feature = "redis-tls")]
    tls_root_cert: Option<Vec<u8>>,
}

impl RedisOptions {
    /// Options for the store whose keys start with `prefix` (one prefix per cache; it may not
    /// hold `{` or `}`, as it becomes the cluster hash tag). Timeout 2 s, 16 idle connections.
    pub fn new(prefix: impl Into<String>) -> Self {
        RedisOptions {
            prefix: prefix.into(),
            timeout: Duration::from_secs(2),
            max_idle: 16,
            max_value_len: REDIS_STRING_LIMIT - HEADER_LEN as u64,
            dedicated_db: false,
            #[cfg(feature = "redis-tls")]
            tls_root_cert: None,
        }
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Bound on connecting and on each reply: a slower server gives [`Error::Unavailable`]
    /// instead of a hang. Zero is taken as 1 ms.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How many idle connections are kept for reuse (more are opened under load, then closed).
    pub fn with_max_idle(mut self, max_idle: usize) -> Self {
        self.max_idle = max_idle;
        self
    }

    /// The longest value accepted, in bytes.
    pub fn max_value_len(&self) -> u64 {
        self.max_value_len
    }

    /// Refuse values longer than `len` bytes (at most, and by default, Redis's 512 MiB string
    /// limit less this store's 8-byte header).
    pub fn with_max_value_len(mut self, len: u64) -> Self {
        self.max_value_len = len.min(REDIS_STRING_LIMIT - HEADER_LEN as u64);
        self
    }

    /// For `rediss://` (feature `redis-tls`): trust the server certificate signed by this CA
    /// (PEM) instead of the system's trust store.
    #[cfg(feature = "redis-tls")]
    pub fn with_tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_cert = Some(pem.into());
        self
    }

    /// Declares that the database (every master, on a cluster) holds this store's entries and
    /// nothing else, so [`Store::len`] is `DBSIZE`, O(1), instead of a `SCAN` of the prefix.
    /// Leases are refused on such a store (their keys would be counted): take them on a
    /// second store on another database. `DBSIZE` may count entries past their deadline that
    /// Redis has not reclaimed yet.
    pub fn with_dedicated_db(mut self, dedicated: bool) -> Self {
        self.dedicated_db = dedicated;
        self
    }
}

/// A store on a Redis server (`redis://`, `rediss://` with the client's TLS feature,
/// `redis+unix://`) or a Redis Cluster, shared by every process and machine that opens it
/// with the same prefix.
///
/// - Keys live under `cacher:{PREFIX}:d:`; the braces are a cluster hash tag, so one store's
///   keys share one slot and `get_many`/`put_many` are one `MGET`/`MSET` to one node.
/// - Values carry a CRC-32 of key and value: a damaged or foreign value is
///   [`Error::Corrupt`], never returned. Values above 512 MiB are refused ([`Error::InvalidKey`]).
/// - [`Store::put_with_deadline`] sets the deadline as `PXAT`, so Redis drops expired values
///   itself; run the server with `maxmemory-policy volatile-lru` (or `allkeys-lru` when the
///   database only holds caches).
/// - A server that is down, restarting, or slower than the timeout gives
///   [`Error::Unavailable`]; the next call reconnects by itself.
/// - `flush` is a no-op: how far an acknowledged write survives a server crash is the server's
///   persistence setting (`appendonly`, `appendfsync`).
/// - The handle is cheap to clone: clones share the connection pool.
///
/// ```no_run
/// use cacher_store::redis::RedisStore;
/// use cacher_store::Store;
/// let store = RedisStore::open("redis://127.0.0.1:6379/0", "my-cache")?;
/// store.put(b"k", b"v")?;
/// assert_eq!(store.get(b"k")?.as_deref(), Some(&b"v"[..]));
/// # Ok::<(), cacher_store::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    names: Names,
    slot: Slot,
    options: RedisOptions,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.inner.pool.server)
            .field("prefix", &self.inner.options.prefix)
            .finish()
    }
}

/// The address of a connection URL without its credentials.
fn describe(info: &::redis::ConnectionInfo) -> String {
    format!("redis {}/{}", info.addr(), info.redis_settings().db())
}

fn bad_url(url: &str, e: ::redis::RedisError) -> Error {
    // Never echo the URL itself: it may hold a password.
    let scheme = url.split(':').next().unwrap_or_default();
    Error::InvalidArgument {
        op: "opening a RedisStore",
        path: format!("a {scheme}: URL").into(),
        reason: e.to_string(),
    }
}

impl RedisStore {
    /// Opens the store with key prefix `prefix` on the server at `url`, with default options.
    /// Connects once, so a wrong address or password fails here.
    pub fn open(url: &str, prefix: &str) -> Result<Self> {
        Self::open_with(url, &RedisOptions::new(prefix))
    }

    /// Opens the store on the server at `url` (`redis://[user:password@]host:port/db`,
    /// `rediss://...`, `redis+unix:///path?db=0&user=..&pass=..`).
    ///
    /// `rediss://` needs feature `redis-tls`; without it the URL is refused with
    /// [`Error::InvalidArgument`].
    pub fn open_with(url: &str, options: &RedisOptions) -> Result<Self> {
        let info = url.into_connection_info().map_err(|e| bad_url(url, e))?;
        let server = describe(&info);
        let client = Self::client(info, options).map_err(|e| bad_url(url, e))?;
        Self::start(Target::Single(client), server, options)
    }

    #[cfg(feature = "redis-tls")]
    fn client(
        info: ::redis::ConnectionInfo,
        options: &RedisOptions,
    ) -> ::redis::RedisResult<Client> {
        // rustls needs a process-wide crypto provider; keep one the application installed.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        match &options.tls_root_cert {
            Some(pem) => Client::build_with_tls(
                info,
                ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            None => Client::open(info),
        }
    }

    #[cfg(not(feature = "redis-tls"))]
    fn client(
        info: ::redis::ConnectionInfo,
        _options: &RedisOptions,
    ) -> ::redis::RedisResult<Client> {
        Client::open(info)
    }

    /// Opens the store on the Redis Cluster reached through `nodes` (the URLs of one or more
    /// of its nodes; the client discovers the rest, and follows slot moves).
    pub fn open_cluster(nodes: &[&str], options: &RedisOptions) -> Result<Self> {
        let mut infos = Vec::new();
        for url in nodes {
            infos.push(url.into_connection_info().map_err(|e| bad_url(url, e))?);
        }
        let server = match infos.first() {
            Some(i) => format!("redis cluster via {}", i.addr()),
            None => {
                return Err(Error::InvalidArgument {
                    op: "opening a RedisStore",
                    path: "redis cluster".into(),
                    reason: "no cluster node given".into(),
                })
            }
        };
        let client = ClusterClientBuilder::new(infos.clone())
            .connection_timeout(options.timeout)
            .response_timeout(options.timeout)
            .build()
            .map_err(|e| bad_url(nodes[0], e))?;
        Self::start(Target::Cluster(client, infos), server, options)
    }

    fn start(target: Target, server: String, options: &RedisOptions) -> Result<Self> {
        let names = Names::new(&options.prefix, &server)?;
        let slot = Slot::for_key(names.data_prefix());
        let pool = Pool::new(target, server, options.timeout, options.max_idle);
        let store = RedisStore {
            inner: Arc::new(Inner {
                pool,
                names,
                slot,
                options: options.clone(),
            }),
        };
        // Fail at open on a wrong address, password or ACL, not at the first get.
        store
            .pool()
            .with_retry(|c| cmd("PING").query::<()>(c.as_dyn()))?;
        Ok(store)
    }

    /// The server's address (no credentials), as errors name it.
    pub fn server(&self) -> &str {
        &self.inner.pool.server
    }

    /// The Redis key holding `key`'s value (for operators: `redis-cli GET`, `TTL`).
    pub fn redis_key(&self, key: &[u8]) -> Vec<u8> {
        self.inner.names.data_key(key)
    }

    fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    fn check_len(&self, key: &[u8], len: u64) -> Result<()> {
        let max = self.inner.options.max_value_len;
        if len > max {
            return Err(Error::InvalidKey {
                key: KeyDisplay::new(key),
                reason: format!(
                    "value of {len} bytes is over this RedisStore's limit of {max} bytes \
                     (Redis holds at most 512 MiB in one string)"
                ),
            });
        }
        Ok(())
    }

    fn corrupt(&self, key: &[u8], reason: String) -> Error {
        Error::corrupt(self.server(), Some(key), reason)
    }

    /// Turns a stored string into the value, checking it.
    fn unframe(&self, key: &[u8], stored: Vec<u8>) -> Result<Blob> {
        layout::check(key, &stored).map_err(|r| self.corrupt(key, r))?;
        let len = stored.len();
        Ok(Blob::from_owner(Arc::new(stored), HEADER_LEN..len))
    }

    fn set(&self, key: &[u8], value: &[u8], deadline_ms: Option<u64>) -> Result<()> {
        self.check_len(key, value.len() as u64)?;
        let mut c = cmd("SET");
        c.arg(self.inner.names.data_key(key))
            .arg(layout::frame(key, value));
        match deadline_ms {
            None => {}
            // Redis refuses PXAT 0; the entry is already due, so it is simply not kept.
            Some(0) => return self.delete(key).map(drop),
            Some(at) => {
                c.arg("PXAT").arg(at);
            }
        }
        self.pool().with_retry(|conn| c.query::<()>(conn.as_dyn()))
    }
}

impl Store for RedisStore {
    fn lease(
        &self,
        key: &[u8],
        terms: &crate::lease::Terms,
    ) -> Result<Option<crate::lease::Claim>> {
        self.claim(key, terms)
    }

    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        let rkey = self.inner.names.data_key(key);
        let stored: Option<Vec<u8>> = self
            .pool()
            .with_retry(|c| cmd("GET").arg(&rkey).query(c.as_dyn()))?;
        stored.map(|s| self.unframe(key, s)).transpose()
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let rkey = self.inner.names.data_key(key);
        let stored: Option<Vec<u8>> = self
            .pool()
            .with_retry(|c| cmd("GET").arg(&rkey).query(c.as_dyn()))?;
        let Some(mut stored) = stored else {
            return Ok(None);
        };
        layout::check(key, &stored).map_err(|r| self.corrupt(key, r))?;
        stored.drain(..HEADER_LEN);
        Ok(Some(stored))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.set(key, value, None)
    }

    fn put_with_deadline(&self, key: &[u8], value: &[u8], deadline_ms: Option<u64>) -> Result<()> {
        self.set(key, value, deadline_ms)
    }

    fn put_reader(&self, key: &[u8], reader: &mut dyn Read) -> Result<u64> {
        // Read at most one byte past the limit, so an endless reader is refused, not buffered.
        let max = self.inner.options.max_value_len;
        let mut buf = Vec::new();
        reader
            .take(max.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| Error::ValueSource {
                key: KeyDisplay::new(key),
                source: e,
            })?;
        self.check_len(key, buf.len() as u64)?;
        self.set(key, &buf, None)?;
        Ok(buf.len() as u64)
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        let rkey = self.inner.names.data_key(key);
        // Not retried on a dead pooled connection: a DEL that ran before the reply was lost
        // would be reported as "was not there" the second time.
        let n: u64 = self
            .pool()
            .with(|c| cmd("DEL").arg(&rkey).query(c.as_dyn()))?;
        Ok(n > 0)
    }

    fn keys(&self) -> Result<KeyIter<'_>> {
        Ok(Box::new(Scan {
            store: self,
            cursor: Some(0),
            batch: Vec::new(),
            seen: HashSet::new(),
        }))
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn contains(&self, key: &[u8]) -> Result<bool> {
        let rkey = self.inner.names.data_key(key);
        let n: u64 = self
            .pool()
            .with_retry(|c| cmd("EXISTS").arg(&rkey).query(c.as_dyn()))?;
        Ok(n > 0)
    }

    fn meta(&self, key: &[u8]) -> Result<Option<EntryMeta>> {
        let rkey = self.inner.names.data_key(key);
        let n: u64 = self
            .pool()
            .with_retry(|c| cmd("STRLEN").arg(&rkey).query(c.as_dyn()))?;
        match n {
            0 => Ok(None),
            n if n < HEADER_LEN as u64 => Err(self.corrupt(
                key,
                format!("stored string of {n} bytes is shorter than the {HEADER_LEN}-byte header"),
            )),
            n => Ok(Some(EntryMeta::new(n - HEADER_LEN as u64))),
        }
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = cmd("MGET");
        for k in keys {
            c.arg(self.inner.names.data_key(k));
        }
        let stored: Vec<Option<Vec<u8>>> = self.pool().with_retry(|conn| c.query(conn.as_dyn()))?;
        if stored.len() != keys.len() {
            return Err(Error::Engine {
                engine: "redis",
                path: self.server().into(),
                source: format!("MGET of {} keys answered {}", keys.len(), stored.len()).into(),
            });
        }
        keys.iter()
            .zip(stored)
            .map(|(k, s)| {
                s.map(|mut s| {
                    layout::check(k, &s).map_err(|r| self.corrupt(k, r))?;
                    s.drain(..HEADER_LEN);
                    Ok(s)
                })
                .transpose()
            })
            .collect()
    }

    fn put_many(&self, entries: &[(&[u8], &[u8])]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        for (k, v) in entries {
            self.check_len(k, v.len() as u64)?;
        }
        // One MSET: atomic, and later entries win over earlier ones with the same key.
        let mut c = cmd("MSET");
        for (k, v) in entries {
            c.arg(self.inner.names.data_key(k)).arg(layout::frame(k, v));
        }
        self.pool().with_retry(|conn| c.query::<()>(conn.as_dyn()))
    }

    fn len(&self) -> Result<u64> {
        if self.inner.options.dedicated_db {
            return self.pool().with_retry(|c| cmd("DBSIZE").query(c.as_dyn()));
        }
        let mut n = 0;
        for k in self.keys()? {
            k?;
            n += 1;
        }
        Ok(n)
    }
}

/// `SCAN` over the store's prefix, one batch at a time.
struct Scan<'a> {
    store: &'a RedisStore,
    /// `None` once the server said the iteration is complete.
    cursor: Option<u64>,
    batch: Vec<Vec<u8>>,
    /// SCAN may return a key twice (while the server rehashes); each is yielded once.
    seen: HashSet<Vec<u8>>,
}

impl Iterator for Scan<'_> {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(k) = self.batch.pop() {
                let Some(key) = self.store.inner.names.strip(&k) else {
                    continue;
                };
                if self.seen.insert(key.to_vec()) {
                    return Some(Ok(key.to_vec()));
                }
                continue;
            }
            let cursor = self.cursor?;
            let mut c = cmd("SCAN");
            c.arg(cursor)
                .arg("MATCH")
                .arg(self.store.inner.names.scan_pattern())
                .arg("COUNT")
                .arg(1000);
            let slot = self.store.inner.slot;
            match self
                .store
                .pool()
                .with_retry(|conn| conn.run_on_slot::<(u64, Vec<Vec<u8>>)>(&c, slot))
            {
                Ok((next, keys)) => {
                    self.cursor = (next != 0).then_some(next);
                    self.batch = keys;
                }
                Err(e) => {
                    self.cursor = None;
                    return Some(Err(e));
                }
            }
        }
    }
}
