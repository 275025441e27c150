//! [`MemoryStore`]: a map in memory, for tests and hot tiers.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::{Blob, EntryMeta, Result, Store};

/// A store held in memory: nothing reaches disk. Values are kept as shared buffers, so
/// [`Store::read`] lends them without copying. Safe to share between threads.
///
/// ```
/// use cacher_store::{MemoryStore, Store};
/// let store = MemoryStore::new();
/// store.put_many(&[(b"a", b"1"), (b"b", b"2")])?;
/// assert_eq!(store.len()?, 2);
/// # Ok::<(), cacher_store::Error>(())
/// ```
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    map: Arc<RwLock<Map>>,
}

type Map = HashMap<Vec<u8>, Arc<[u8]>>;

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> std::sync::RwLockReadGuard<'_, Map> {
        // A panic in another thread while holding the lock cannot leave the map half-updated
        // (every update is a single insert/remove), so the poison flag carries no information.
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn map_mut(&self) -> std::sync::RwLockWriteGuard<'_, Map> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        Ok(self.map().get(key).map(|v| Blob::from(v.clone())))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.map_mut().insert(key.to_vec(), Arc::from(value));
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        Ok(self.map_mut().remove(key).is_some())
    }

    fn keys(&self) -> Result<crate::KeyIter<'_>> {
        let keys: Vec<Vec<u8>> = self.map().keys().cloned().collect();
        Ok(Box::new(keys.into_iter().map(Ok)))
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn with_value(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        let value = self.map().get(key).cloned();
        Ok(value.map(|v| f(&v)).is_some())
    }

    fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.map().contains_key(key))
    }

    fn meta(&self, key: &[u8]) -> Result<Option<EntryMeta>> {
        Ok(self.map().get(key).map(|v| EntryMeta::new(v.len() as u64)))
    }

    fn put_many(&self, entries: &[(&[u8], &[u8])]) -> Result<()> {
        let mut map = self.map_mut();
        for (k, v) in entries {
            map.insert(k.to_vec(), Arc::from(*v));
        }
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        Ok(self.map().len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryStore;

    crate::conformance_tests!(
        |_dir: &std::path::Path| MemoryStore::new(),
        persistent = false
    );
}
