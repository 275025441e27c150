//! What `benches/limits.rs` and `examples/limits_scale.rs` (which includes this file with
//! `#[path]`) share: the fill of a store as a limited cache would have written it, and a
//! wrapper that hides a store's accounting so a limited cache takes the old scanning path.

use std::sync::Arc;

use cacher::store::{Blob, KeyIter, Result, Store};
use cacher::Cache;
use serde_bytes::ByteBuf;

/// A store whose accounting is hidden: a limited cache on it scans at open (the path every
/// store without accounting takes, and what LmdbStore and HybridStore took before).
pub struct Hidden(pub Arc<dyn Store>);

impl Store for Hidden {
    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        self.0.read(key)
    }
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.put(key, value)
    }
    fn delete(&self, key: &[u8]) -> Result<bool> {
        self.0.delete(key)
    }
    fn keys(&self) -> Result<KeyIter<'_>> {
        self.0.keys()
    }
    fn with_value(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        self.0.with_value(key, f)
    }
    fn flush(&self) -> Result<()> {
        self.0.flush()
    }
}

/// Writes `n` entries of 200 B (`raw` format) under `key-{i:010}`, counted as they are
/// written, as under a limited cache: accounting is off until one opens, and the first would
/// then count the store once, inside the measured open.
pub fn fill(store: &Arc<dyn Store>, n: u64) -> std::result::Result<(), Box<dyn std::error::Error>> {
    if let Some(acct) = store.accounting() {
        acct.enable()?;
    }
    let cache = Cache::builder()
        .store(store.clone())
        .format("raw")
        .build()?;
    let value = ByteBuf::from(vec![0x5a; 200]);
    for i in 0..n {
        cache.put(format!("key-{i:010}"), &value)?;
    }
    Ok(())
}
