//! Blobs: large values (web responses, downloads) written from a stream with typed metadata
//! and read back as a stream or a mapped view, never held whole in memory by the crate.
//!
//! A blob is stored as a streamed envelope (`cacher_formats::envelope::stream`): a front header
//! with the expiry, the key binding and the metadata (encoded in the cache's format), the body
//! as given, and a trailer with the body's length, checksum and (with a MAC key) MAC. Its
//! front header reads like any envelope's, so TTL, expiry, cleanup, limits and stats treat a
//! blob as they treat every value; `get` on a blob key refuses it as another kind of value.

use std::io::{self, Read};
use std::ops::{Deref, Range};
use std::time::{Duration, Instant};

use cacher_formats::envelope::stream::{self, BodyCheck, StreamSealer, TRAILER_LEN};
use cacher_formats::envelope::MAX_HEADER_LEN;
use cacher_formats::{EnvelopeMeta, Header};
use cacher_store::{Blob as StoredBytes, ValueReader};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Cache;
use crate::clock::duration_ms;
use crate::stats::{timed, RELAXED};
use crate::{Error, Result};

/// The most body bytes kept in memory at once while a blob is written or streamed back.
const CHUNK: usize = 256 << 10;

impl Cache {
    /// Writes a blob under `key`: `meta` (any `Serialize` value: status, headers, content
    /// type…) and the body read from `body` to its end, streamed into the store as it is
    /// read. Returns the body's length. The cache's TTL, limits and stats apply; with a MAC
    /// key the blob carries a MAC over key, metadata and body.
    ///
    /// `Vec<u8>` bodies need no `serde_bytes` here: the body is stored as the bytes given.
    ///
    /// ```
    /// use cacher::{Cache, store::MemoryStore};
    /// use std::io::Read;
    ///
    /// let cache = Cache::builder().store(MemoryStore::new()).build()?;
    /// let body = &b"<html>hello</html>"[..];
    /// cache.put_blob("page:/", &(200u16, "text/html"), &mut &body[..])?;
    ///
    /// let blob = cache.get_blob::<(u16, String)>("page:/")?.unwrap();
    /// assert_eq!(blob.meta(), &(200, "text/html".to_string()));
    /// let mut text = String::new();
    /// blob.into_reader().read_to_string(&mut text).unwrap();
    /// assert_eq!(text, "<html>hello</html>");
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn put_blob<M: Serialize + ?Sized>(
        &self,
        key: impl AsRef<[u8]>,
        meta: &M,
        body: &mut dyn Read,
    ) -> Result<u64> {
        self.store_blob(key.as_ref(), meta, body, None)
    }

    /// [`put_blob`](Cache::put_blob), expiring `ttl` from now instead of the cache's TTL.
    pub fn put_blob_with_ttl<M: Serialize + ?Sized>(
        &self,
        key: impl AsRef<[u8]>,
        meta: &M,
        body: &mut dyn Read,
        ttl: Duration,
    ) -> Result<u64> {
        let until = self.now_ms().saturating_add(duration_ms(ttl));
        self.store_blob(key.as_ref(), meta, body, Some(until))
    }

    /// Reads the blob under `key`: its metadata now, its body as a stream
    /// ([`BlobEntry::into_reader`]) whose checksum (and MAC) is checked when it reaches the
    /// end — a damaged body is an error from `read`, never a clean end. `None` when the key
    /// is missing or expired (an expired blob is removed).
    ///
    /// The body is read through
    /// [`Store::read_stream_unchecked`](cacher_store::Store::read_stream_unchecked), the
    /// envelope's checksum standing in for the store's: on `DirStore` and the default store a
    /// fixed buffer at any size; see
    /// [`get_blob_mapped`](Cache::get_blob_mapped) for a `&[u8]` view.
    pub fn get_blob<M: DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<BlobEntry<M>>> {
        self.open_blob(key.as_ref(), true)
    }

    /// [`get_blob`](Cache::get_blob); `count` false for the read-back of a blob just written
    /// (its miss was counted, a hit would double-count it).
    fn open_blob<M: DeserializeOwned>(
        &self,
        key: &[u8],
        count: bool,
    ) -> Result<Option<BlobEntry<M>>> {
        let stats = self.ns_stats(key);
        let start = Instant::now();
        // Unchecked by the store: the envelope's checksum (and MAC) covers the front header,
        // the body and the trailer, and the body reader checks it before its end, so a
        // second pass over every byte by the store would find nothing new (as for
        // `get_blob_mapped`). Stores still check their own framing (header, key, length).
        let Some(mut reader) = self.inner.store.read_stream_unchecked(key)? else {
            stats.misses.fetch_add(1, RELAXED);
            self.with_tracker(|t| t.remove(key));
            return Ok(None);
        };
        let stored_len = reader.len();
        let front = read_front(&mut reader, key)?;
        let (header, check) = self
            .registry()
            .stream_check(key, &front)
            .map_err(|e| Error::format(key, e))?;
        if self.blob_expired(key, &header) {
            return Ok(None);
        }
        let meta = self.blob_meta(key, &header, &front)?;
        let body = stream::body_range(&header, stored_len).map_err(|e| Error::format(key, e))?;
        let body_len = (body.end - body.start) as u64;
        if count {
            stats.hits.fetch_add(1, RELAXED);
            stats.bytes_read.fetch_add(stored_len, RELAXED);
            stats.add_read(start.elapsed());
        }
        self.with_tracker(|t| t.touch(key));
        let trailer_len = stored_len - header.header_len() as u64 - body_len;
        Ok(Some(BlobEntry {
            meta,
            header,
            body_len,
            reader: BodyReader {
                inner: reader,
                left: body_len,
                trailer_len: trailer_len as usize,
                check: Some(check),
                key: cacher_store::KeyDisplay::new(key).to_string(),
            },
        }))
    }

    /// Reads the blob under `key` as its metadata and a `&[u8]` view of the body, lent from
    /// the store without a copy where it lends bytes (a memory map for large values on
    /// `DirStore`, the LMDB map, the default store's files). The body's checksum (and MAC) is
    /// checked before the view is returned, in one pass over it: that pass makes the
    /// mapped pages resident, so for bodies far larger than memory prefer
    /// [`get_blob`](Cache::get_blob).
    ///
    /// ```
    /// use cacher::{Cache, store::MemoryStore};
    ///
    /// let cache = Cache::builder().store(MemoryStore::new()).build()?;
    /// cache.put_blob("img", &"image/png", &mut &b"\x89PNG..."[..])?;
    /// let blob = cache.get_blob_mapped::<String>("img")?.unwrap();
    /// assert_eq!(blob.meta(), "image/png");
    /// assert_eq!(&blob[..4], b"\x89PNG");
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn get_blob_mapped<M: DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<MappedBlob<M>>> {
        let key = key.as_ref();
        let stats = self.ns_stats(key);
        let start = Instant::now();
        // Unchecked by the store: the envelope's own checksum covers the body, checked below
        // in the one pass over it.
        let Some(bytes) = self.inner.store.read_unchecked(key)? else {
            stats.misses.fetch_add(1, RELAXED);
            self.with_tracker(|t| t.remove(key));
            return Ok(None);
        };
        let header = cacher_formats::Header::peek(&bytes).map_err(|e| Error::format(key, e))?;
        if header.is_stream() && self.blob_expired(key, &header) {
            return Ok(None);
        }
        let (header, body) = self
            .registry()
            .open_stream(key, &bytes)
            .map_err(|e| Error::format(key, e))?;
        let meta = self.blob_meta(key, &header, &bytes)?;
        stats.hits.fetch_add(1, RELAXED);
        stats.bytes_read.fetch_add(bytes.len() as u64, RELAXED);
        stats.add_read(start.elapsed());
        self.with_tracker(|t| t.touch(key));
        Ok(Some(MappedBlob {
            meta,
            header,
            bytes,
            body,
        }))
    }

    /// Returns the blob under `key`, or, on a miss, calls `fetch` for the metadata and a body
    /// stream, writes them to the cache as the body arrives, and returns the blob read back
    /// from the store. What a memoized download uses: see [`BlobMemo`].
    ///
    /// `fetch`'s error is returned as [`BlobError::Fetch`] and nothing is stored; a body
    /// stream that fails midway stores nothing either (the write is atomic).
    pub fn get_or_fetch_blob<M, R, E, F>(
        &self,
        key: impl AsRef<[u8]>,
        fetch: F,
    ) -> std::result::Result<(BlobEntry<M>, bool), BlobError<E>>
    where
        M: Serialize + DeserializeOwned,
        R: Read,
        F: FnOnce() -> std::result::Result<(M, R), E>,
    {
        let key = key.as_ref();
        if let Some(hit) = self.get_blob(key)? {
            return Ok((hit, true));
        }
        let stats = self.ns_stats(key);
        let (meta, mut body) = timed(&stats, fetch).map_err(BlobError::Fetch)?;
        timed(&stats, || self.store_blob(key, &meta, &mut body, None))?;
        let entry = self.open_blob(key, false)?.ok_or_else(|| {
            Error::Store(cacher_store::Error::corrupt(
                std::path::Path::new(""),
                Some(key),
                "the blob just written is missing (removed by another handle or evicted)",
            ))
        })?;
        Ok((entry, false))
    }

    fn store_blob<M: Serialize + ?Sized>(
        &self,
        key: &[u8],
        meta: &M,
        body: &mut dyn Read,
        expires_ms: Option<u64>,
    ) -> Result<u64> {
        let stats = self.ns_stats(key);
        let now = self.now_ms();
        let header = EnvelopeMeta {
            created_ms: now,
            expires_ms: self.expiry_of_new_value(now, expires_ms),
            revision: 0,
            type_fingerprint: Some(cacher_formats::type_fingerprint(std::any::type_name::<M>())),
        };
        let pipeline = self
            .registry()
            .resolve(self.format())
            .map_err(|e| Error::format(key, e))?;
        let sealer = self
            .registry()
            .stream_sealer(key, &pipeline, meta, &header)
            .map_err(|e| Error::format(key, e))?;
        let mut sealing = Sealing::new(sealer, body);
        let stored = self.inner.store.put_reader(key, &mut sealing)?;
        let body_len = sealing.body_len;
        stats.stores.fetch_add(1, RELAXED);
        stats.bytes_written.fetch_add(stored, RELAXED);
        self.enforce_limits(key, stored)?;
        Ok(body_len)
    }

    /// Whether a blob's header says it expired; if so counts the miss and removes it.
    fn blob_expired(&self, key: &[u8], header: &Header) -> bool {
        if !self.is_expired(&header.meta(), self.now_ms()) {
            return false;
        }
        let stats = self.ns_stats(key);
        stats.misses.fetch_add(1, RELAXED);
        stats.expirations.fetch_add(1, RELAXED);
        // Best effort, as for values: only while it is still the expired one.
        if let Ok(Some((Ok(h), _))) = self.peek(key) {
            if self.is_expired(&h, self.now_ms()) {
                let _ = self.inner.store.delete(key);
                self.with_tracker(|t| t.remove(key));
            }
        }
        true
    }

    fn blob_meta<M: DeserializeOwned>(
        &self,
        key: &[u8],
        header: &Header,
        front: &[u8],
    ) -> Result<M> {
        self.registry()
            .stream_metadata(header, front)
            .map_err(|e| Error::format(key, e))
    }
}

/// Reads a blob's whole front header from the start of its stream.
fn read_front(reader: &mut ValueReader, key: &[u8]) -> Result<Vec<u8>> {
    let corrupt = |reason: String| Error::format(key, cacher_formats::Error::Corrupt { reason });
    let mut front = vec![0u8; 8];
    read_exact(reader, &mut front, key)?;
    if !front.starts_with(&stream::STREAM_MAGIC) {
        // Not a blob: say what it is (a value written by `put`, or damage).
        let mut rest = Vec::new();
        reader
            .take(MAX_HEADER_LEN as u64)
            .read_to_end(&mut rest)
            .map_err(|e| store_read_error(key, e))?;
        front.extend_from_slice(&rest);
        return match Header::peek(&front) {
            Ok(_) => Err(Error::format(
                key,
                cacher_formats::Error::TypeMismatch {
                    format: "blob".into(),
                    stored: "a value written by put (read it with get)".into(),
                    expected: "a blob".into(),
                    asked_for: "a blob".into(),
                },
            )),
            Err(e) => Err(Error::format(key, e)),
        };
    }
    let header_len = usize::from(u16::from_le_bytes([front[6], front[7]]));
    if header_len < 8 {
        return Err(corrupt(format!("blob header length {header_len}")));
    }
    front.resize(header_len, 0);
    read_exact(reader, &mut front[8..], key)?;
    Ok(front)
}

fn read_exact(reader: &mut ValueReader, buf: &mut [u8], key: &[u8]) -> Result<()> {
    reader.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::format(
                key,
                cacher_formats::Error::Corrupt {
                    reason: "blob shorter than its header".into(),
                },
            )
        } else {
            store_read_error(key, e)
        }
    })
}

fn store_read_error(key: &[u8], e: io::Error) -> Error {
    Error::Store(cacher_store::Error::ValueSource {
        key: cacher_store::KeyDisplay::new(key),
        source: e,
    })
}

/// Yields a blob's front header, then its body from the caller's reader (sealing it as it
/// passes), then the trailer: what the store's `put_reader` streams to disk.
struct Sealing<'a> {
    sealer: Option<StreamSealer>,
    body: &'a mut dyn Read,
    /// Bytes of `pending` already handed out.
    at: usize,
    /// The front header, then (once the body ends) the trailer.
    pending: Vec<u8>,
    body_done: bool,
    body_len: u64,
}

impl<'a> Sealing<'a> {
    fn new(sealer: StreamSealer, body: &'a mut dyn Read) -> Self {
        Sealing {
            pending: sealer.front().to_vec(),
            sealer: Some(sealer),
            body,
            at: 0,
            body_done: false,
            body_len: 0,
        }
    }
}

impl Read for Sealing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.at);
                buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            if self.body_done {
                return Ok(0);
            }
            let n = loop {
                match self.body.read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other?,
                }
            };
            if n > 0 {
                if let Some(sealer) = &mut self.sealer {
                    sealer.update(&buf[..n]);
                }
                self.body_len += n as u64;
                return Ok(n);
            }
            self.body_done = true;
            if let Some(sealer) = self.sealer.take() {
                self.pending = sealer.trailer();
                self.at = 0;
            }
        }
    }
}

/// A blob read back by [`Cache::get_blob`]: its metadata and its body as a checked stream.
#[derive(Debug)]
pub struct BlobEntry<M> {
    meta: M,
    header: Header,
    body_len: u64,
    reader: BodyReader,
}

impl<M> BlobEntry<M> {
    /// The metadata stored with the body.
    pub fn meta(&self) -> &M {
        &self.meta
    }

    /// The body's length in bytes.
    pub fn len(&self) -> u64 {
        self.body_len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.body_len == 0
    }

    /// When the blob was written (unix ms).
    pub fn created_ms(&self) -> u64 {
        self.header.created_ms()
    }

    /// When the blob expires (unix ms), if ever.
    pub fn expires_ms(&self) -> Option<u64> {
        self.header.expires_ms()
    }

    /// The body as a stream. Its checksum (and MAC) are checked when it reaches the end: a
    /// damaged body makes that `read` fail with `InvalidData` instead of returning 0.
    pub fn into_reader(self) -> BodyReader {
        self.reader
    }

    /// The metadata and the body stream.
    pub fn into_parts(self) -> (M, BodyReader) {
        (self.meta, self.reader)
    }

    /// Copies the whole body into `out` (checked) and returns its length.
    pub fn copy_to(self, out: &mut dyn io::Write) -> io::Result<u64> {
        let mut reader = self.reader;
        let mut buf = vec![0u8; CHUNK];
        let mut n = 0u64;
        loop {
            let got = reader.read(&mut buf)?;
            if got == 0 {
                return Ok(n);
            }
            out.write_all(&buf[..got])?;
            n += got as u64;
        }
    }
}

/// A blob's body streamed from the store (see [`BlobEntry::into_reader`]).
pub struct BodyReader {
    inner: ValueReader,
    left: u64,
    trailer_len: usize,
    /// Taken once the trailer has been checked.
    check: Option<BodyCheck>,
    key: String,
}

impl std::fmt::Debug for BodyReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BodyReader({} bytes left, key {})", self.left, self.key)
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let Some(check) = self.check.take() else {
                return Ok(0);
            };
            if self.trailer_len < TRAILER_LEN {
                return Err(invalid(&self.key, "blob trailer missing"));
            }
            let mut trailer = vec![0u8; self.trailer_len];
            self.inner.read_exact(&mut trailer)?;
            check
                .finish(&trailer)
                .map_err(|e| invalid(&self.key, &e.to_string()))?;
            // The store's own check (if it streams one) ends with its end of stream.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? != 0 {
                return Err(invalid(&self.key, "bytes after the blob's trailer"));
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(invalid(&self.key, "blob body truncated"));
        }
        if let Some(check) = &mut self.check {
            check.update(&buf[..n]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn invalid(key: &str, reason: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("blob under key {key}: {reason}"),
    )
}

/// A blob read back by [`Cache::get_blob_mapped`]: its metadata and a checked `&[u8]` view of
/// its body (deref), lent from the store where it lends bytes.
pub struct MappedBlob<M> {
    meta: M,
    header: Header,
    bytes: StoredBytes,
    body: Range<usize>,
}

impl<M> MappedBlob<M> {
    /// The metadata stored with the body.
    pub fn meta(&self) -> &M {
        &self.meta
    }

    /// When the blob expires (unix ms), if ever.
    pub fn expires_ms(&self) -> Option<u64> {
        self.header.expires_ms()
    }

    /// Whether the body is a view of a memory-mapped file (not a copy).
    pub fn is_mapped(&self) -> bool {
        self.bytes.is_mapped()
    }
}

impl<M> Deref for MappedBlob<M> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[self.body.clone()]
    }
}

impl<M: std::fmt::Debug> std::fmt::Debug for MappedBlob<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedBlob")
            .field("meta", &self.meta)
            .field("len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Why [`Cache::get_or_fetch_blob`] failed: the fetch, or the cache.
#[derive(Debug, thiserror::Error)]
pub enum BlobError<E> {
    /// The fetch function failed; nothing was stored.
    #[error("fetch failed")]
    Fetch(#[source] E),
    /// The cache failed (store, format, a body stream that broke while it was written).
    #[error(transparent)]
    Cache(#[from] Error),
}

/// A memoized fetch whose results are blobs: the key is made from a namespace, a version and
/// the arguments (as for [`Memo`](crate::Memo)); a miss runs the fetch and streams its body
/// into the cache as it arrives; later calls, in this process or another, read it from disk.
///
/// ```
/// use cacher::{Cache, store::MemoryStore};
/// use std::io::Read;
///
/// let cache = Cache::builder().store(MemoryStore::new()).build()?;
/// let download = cache.memoize_blob("download");
/// let fetch = |url: &String| -> Result<_, std::io::Error> {
///     Ok((format!("fetched {url}"), std::io::Cursor::new(b"body bytes".to_vec())))
/// };
/// let (first, hit) = download.call(&"https://example.org/a".to_string(), fetch).unwrap();
/// assert!(!hit);
/// let (again, hit) = download.call(&"https://example.org/a".to_string(), fetch).unwrap();
/// assert!(hit);
/// let mut body = Vec::new();
/// again.into_reader().read_to_end(&mut body).unwrap();
/// assert_eq!(body, b"body bytes");
/// # drop(first);
/// # Ok::<(), cacher::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BlobMemo {
    cache: Cache,
    namespace: String,
    version: u32,
}

impl Cache {
    /// A memoized blob fetch in `namespace` (version 0); see [`BlobMemo`].
    pub fn memoize_blob(&self, namespace: impl Into<String>) -> BlobMemo {
        BlobMemo {
            cache: self.clone(),
            namespace: namespace.into(),
            version: 0,
        }
    }
}

impl BlobMemo {
    /// A new version: results of older versions are no longer read.
    #[must_use]
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// The store key of a call with `args`.
    pub fn key_for<A: Serialize + ?Sized>(&self, args: &A) -> Result<Vec<u8>> {
        let encoded = crate::key::canonical_args(args, &[])?;
        Ok(crate::key::store_key(
            &self.namespace,
            self.version,
            &[&encoded],
        ))
    }

    /// The blob for `args`: read from the cache, or fetched by `fetch(args)` (metadata and a
    /// body stream) and streamed into it. Returns the blob and whether it was a hit.
    pub fn call<A, M, R, E, F>(
        &self,
        args: &A,
        fetch: F,
    ) -> std::result::Result<(BlobEntry<M>, bool), BlobError<E>>
    where
        A: Serialize + ?Sized,
        M: Serialize + DeserializeOwned,
        R: Read,
        F: FnOnce(&A) -> std::result::Result<(M, R), E>,
    {
        let key = self.key_for(args)?;
        self.cache.get_or_fetch_blob(&key, || fetch(args))
    }
}
