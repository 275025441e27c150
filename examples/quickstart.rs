//! Memoize a slow function on a disk cache, then call it again.
//!
//! `cargo run --release --example quickstart` — run it twice: the second run finds the result
//! from the first on disk. `Cache::open` uses the default store (small values inline in LMDB,
//! large ones in their own files).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cacher::Cache;

/// Stands in for a slow web API: half a second per call.
fn fetch_from_api(endpoint: &str, params: &BTreeMap<String, String>) -> Vec<String> {
    std::thread::sleep(Duration::from_millis(500));
    params
        .iter()
        .map(|(k, v)| format!("{endpoint}: {k}={v}"))
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(".cache/quickstart");
    let cache = Cache::open(dir)?;

    let fetch = cache
        .memoize("fetch_from_api")
        .args(["endpoint", "params"])
        .wrap(|(endpoint, params): (String, BTreeMap<String, String>)| {
            fetch_from_api(&endpoint, &params)
        })?;

    let params = BTreeMap::from([
        ("q".to_string(), "rust caching".to_string()),
        ("page".to_string(), "1".to_string()),
    ]);
    for call in ["first", "second"] {
        let start = Instant::now();
        let rows = fetch.call(("search".to_string(), params.clone()));
        println!(
            "{call} call: {:>10.3?}  ({} rows)",
            start.elapsed(),
            rows.len()
        );
    }
    println!("\ncache directory: {}\n", dir.display());
    print!("{}", cache.stats());
    println!(
        "\nlook inside it: cargo run --release --bin cacher -- stats {}",
        dir.display()
    );
    Ok(())
}
