//! The README's two memoize styles as a program CI compiles and runs:
//! `cargo run --example memoize`.
//!
//! In your `Cargo.toml`:
//!
//! ```toml
//! [dependencies]
//! cacher = "0.1"
//! ```

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use cacher::store::DirStore;
use cacher::{memoize, Cache, Call};

/// Query parameters; a `BTreeMap` so the key does not depend on insertion order.
type Params = BTreeMap<String, String>;

/// Stands in for an HTTP client: not part of any key.
struct Client;

impl Client {
    fn get(&self, endpoint: &str, params: &Params, request_id: &str) -> Vec<String> {
        let _ = request_id; // sent as a header, say; does not change the answer
        params
            .iter()
            .map(|(k, v)| format!("{endpoint}: {k}={v}"))
            .collect()
    }
}

#[derive(Debug)]
struct ApiError;

static CLIENT: Client = Client;

/// The cache the attribute style uses: a `static` opened on first use.
static CACHE: LazyLock<Cache> = LazyLock::new(|| {
    Cache::builder()
        .store(DirStore::open(".cache/memoize-example/attribute").expect("open the cache"))
        .format("cbor+zstd")
        .ttl(Duration::from_secs(3600))
        .build()
        .expect("build the cache")
});

/// The attribute: keyed on `endpoint` and `params`, not on the client; `Err` is never cached.
#[memoize(cache = CACHE, ignore(client), version = 2)]
fn fetch_from_api(
    client: &Client,
    endpoint: &str,
    params: &Params,
) -> Result<Vec<String>, ApiError> {
    Ok(client.get(endpoint, params, "attribute"))
}

/// A method names what of `self` belongs in the key.
struct Embedder {
    cache: Cache,
    model: String,
    dims: usize,
}

impl Embedder {
    /// Only `model` and `dims` of `self` belong in the key.
    #[memoize(cache = self.cache, fields(model, dims))]
    fn embed(&self, text: &str) -> Vec<f32> {
        vec![text.len() as f32; self.dims]
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The wrapper.
    let cache = Cache::builder()
        .store(DirStore::open(".cache/memoize-example/wrapper")?)
        .format("cbor+zstd")
        .ttl(Duration::from_secs(3600))
        .build()?;
    let fetch = cache
        .memoize("fetch_from_api")
        .args(["endpoint", "params", "request_id"])
        .ignore("request_id") // not part of the key
        .wrap(|(endpoint, params, request_id): (String, Params, String)| {
            CLIENT.get(&endpoint, &params, &request_id)
        })?;
    let params = Params::from([("q".to_string(), "rust".to_string())]);
    let rows = fetch.call(("users".into(), params.clone(), "req-1".into())); // computed once…
    let again = fetch.call(("users".into(), params.clone(), "req-2".into())); // …then read back
    assert_eq!(rows, again);

    // The attribute, and per-call control through its sibling.
    let rows = fetch_from_api(&CLIENT, "users", &params).map_err(|_| "api error")?;
    let refreshed = fetch_from_api_with(Call::refresh(), &CLIENT, "users", &params)?;
    assert_eq!(rows, refreshed.map_err(|_| "api error")?);

    let embedder = Embedder {
        cache: cache.clone(),
        model: "m1".into(),
        dims: 4,
    };
    assert_eq!(embedder.embed("hello"), vec![5.0; 4]);

    print!("{}", cache.stats());
    print!("{}", CACHE.stats());
    Ok(())
}
