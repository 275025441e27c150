//! Cache web responses as blobs: bodies streamed to disk as they arrive, headers as typed
//! metadata, fetched through a memoized, per-host-throttled function.
//!
//! `cargo run --release --example web_cache` starts a small HTTP server on 127.0.0.1, fetches
//! its pages with `ureq` twice (two cache handles, as two runs of a program would be): the
//! first run downloads, the second is served from disk. Run it again: the cache directory
//! (`.cache/web_cache`) keeps the pages, so even the first run of the next process hits.
//!
//! `tests/cache_blobs/web.rs` runs this file's `run` against a temp directory.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cacher::throttle::{host_of, Throttle};
use cacher::{BlobMemo, Cache, Stats};
use serde::{Deserialize, Serialize};

/// What is kept of a response besides its body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseMeta {
    /// The URL fetched.
    pub url: String,
    /// The HTTP status.
    pub status: u16,
    /// The response headers, in order.
    pub headers: Vec<(String, String)>,
    /// When it was fetched (unix ms).
    pub fetched_ms: u64,
}

/// A local server of `pages` pages of `page_len` bytes each; counts the requests it serves.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Requests served so far.
    pub served: Arc<AtomicUsize>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts the server on a free port of 127.0.0.1.
    pub fn start(page_len: usize) -> Result<Server, Box<dyn std::error::Error + Send + Sync>> {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0")?);
        let port = server
            .server_addr()
            .to_ip()
            .ok_or("the server has no IP address")?
            .port();
        let served = Arc::new(AtomicUsize::new(0));
        let (srv, count) = (server.clone(), served.clone());
        let thread = std::thread::spawn(move || {
            for request in srv.incoming_requests() {
                count.fetch_add(1, Ordering::SeqCst);
                let path = request.url().to_string();
                // A body that differs per page and per offset, so a mixed-up page shows.
                let seed = path.bytes().fold(0u8, |a, b| a.wrapping_add(b));
                let body: Vec<u8> = (0..page_len)
                    .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                    .collect();
                let header =
                    tiny_http::Header::from_bytes("Content-Type", "application/octet-stream")
                        .expect("a valid header");
                let etag = tiny_http::Header::from_bytes("ETag", format!("\"{seed}\""))
                    .expect("a valid header");
                let response = tiny_http::Response::from_data(body)
                    .with_header(header)
                    .with_header(etag);
                let _ = request.respond(response);
            }
        });
        Ok(Server {
            base: format!("http://127.0.0.1:{port}"),
            served,
            server,
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What one run did.
#[derive(Debug)]
pub struct Run {
    /// Pages read from the cache.
    pub hits: usize,
    /// Pages downloaded.
    pub fetched: usize,
    /// Body bytes read, checked, over all pages.
    pub bytes: u64,
    /// The cache's counters after the run.
    pub stats: Stats,
    /// How long the run took.
    pub elapsed: Duration,
}

/// The memoized fetch: one blob per URL; a miss downloads through `ureq`, paced per host.
fn fetcher(cache: &Cache) -> BlobMemo {
    cache.memoize_blob("web_cache::fetch").version(1)
}

/// Fetches `urls` through the cache in `dir` (one cache handle: one "run" of a program).
pub fn run(
    dir: &Path,
    urls: &[String],
    throttle: &Throttle<String>,
) -> Result<Run, Box<dyn std::error::Error + Send + Sync>> {
    let start = Instant::now();
    let cache = Cache::open(dir)?;
    let fetch = fetcher(&cache);
    let (mut hits, mut fetched, mut bytes) = (0, 0, 0);
    for url in urls {
        let (entry, hit) = fetch.call(url, |url: &String| {
            // Fetch errors become io::Error, which BlobError::Fetch carries as its source.
            throttle.wait(url).map_err(std::io::Error::other)?;
            let response = ureq::get(url).call().map_err(std::io::Error::other)?;
            let meta = ResponseMeta {
                url: url.clone(),
                status: response.status(),
                headers: response
                    .headers_names()
                    .into_iter()
                    .filter_map(|name| {
                        let value = response.header(&name)?.to_string();
                        Some((name, value))
                    })
                    .collect(),
                fetched_ms: SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
            };
            // The body is streamed into the cache as it arrives: never held whole here.
            Ok::<_, std::io::Error>((meta, response.into_reader()))
        })?;
        if hit {
            hits += 1;
        } else {
            fetched += 1;
        }
        let meta = entry.meta().clone();
        if meta.status != 200 {
            return Err(format!("{}: status {}", meta.url, meta.status).into());
        }
        // Read the body back from disk, checked to its end.
        let mut body = entry.into_reader();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = body.read(&mut buf)?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
        }
    }
    Ok(Run {
        hits,
        fetched,
        bytes,
        stats: cache.stats(),
        elapsed: start.elapsed(),
    })
}

/// The pages of `server` and a throttle of `delay` per host (jitter ±25%).
pub fn setup(server: &Server, pages: usize, delay: Duration) -> (Vec<String>, Throttle<String>) {
    let urls = (0..pages)
        .map(|i| format!("{}/page/{i}", server.base))
        .collect();
    let throttle = Throttle::per_host(delay, 0.5, |url: &String| host_of(url).to_string())
        .expect("a valid variance");
    (urls, throttle)
}

#[allow(dead_code)] // `tests/cache_blobs/web.rs` includes this file and calls `run` itself.
fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = Path::new(".cache/web_cache");
    let server = Server::start(1 << 20)?;
    let (urls, throttle) = setup(&server, 8, Duration::from_millis(100));
    for name in ["first", "second"] {
        let run = run(dir, &urls, &throttle)?;
        println!(
            "{name} run: {:>9.3?}  {} downloaded, {} from disk, {} MiB read",
            run.elapsed,
            run.fetched,
            run.hits,
            run.bytes >> 20
        );
        print!("{}", run.stats);
    }
    println!(
        "\nthe server saw {} requests; cache directory: {}",
        server.served.load(Ordering::SeqCst),
        dir.display()
    );
    Ok(())
}
