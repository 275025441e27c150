//! With a MAC key, a value is accepted only under the key it was written for: issue 8 found
//! an envelope copied from `is_admin:root` to `is_admin:mallory` accepted (`get` and a
//! memoized `is_admin("mallory")` returned `true`), and `contains` saying `true` for a planted
//! value that `get` refuses.

use std::path::Path;

use cacher::formats::Registry;
use cacher::store::{DirStore, LogStore, Store};
use cacher::{Cache, Error};

const MAC_KEY: [u8; 32] = [0x42; 32];

fn keyed(store: impl Store + 'static) -> Cache {
    Cache::builder()
        .store(store)
        .registry(Registry::with_builtins().with_mac_key(MAC_KEY))
        .build()
        .unwrap()
}

/// The library's own check, and the variant it stands for.
fn is_unauthenticated(e: &Error) -> bool {
    let variant = matches!(
        e,
        Error::Format {
            source: cacher::formats::Error::Unauthenticated { .. },
            ..
        }
    );
    assert_eq!(e.is_unauthenticated(), variant);
    variant
}

fn copy(store: &dyn Store, from: &[u8], to: &[u8]) {
    let bytes = store.get(from).unwrap().unwrap();
    store.put(to, &bytes).unwrap();
}

/// The swap on one store, through `get`, `contains` and a memoized function.
fn a_value_copied_to_another_key_is_refused(open: &dyn Fn(&Path) -> Box<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let cache = keyed(open(&dir.path().join("plain")));
    cache.put("is_admin:root", &true).unwrap();
    copy(cache.store(), b"is_admin:root", b"is_admin:mallory");
    assert_eq!(cache.get::<bool>("is_admin:root").unwrap(), Some(true));
    let err = cache.get::<bool>("is_admin:mallory").unwrap_err();
    assert!(is_unauthenticated(&err), "{err}");
    let err = cache.contains("is_admin:mallory").unwrap_err();
    assert!(is_unauthenticated(&err), "contains agrees with get: {err}");

    let cache = keyed(open(&dir.path().join("memo")));
    let is_admin = cache
        .memoize("is_admin")
        .wrap(|user: String| user == "root")
        .unwrap();
    assert!(is_admin.call("root".into()));
    let root = is_admin.key_for(&"root".to_string()).unwrap();
    let mallory = is_admin.key_for(&"mallory".to_string()).unwrap();
    copy(cache.store(), &root, &mallory);
    let err = is_admin.try_call("mallory".into()).unwrap_err();
    assert!(is_unauthenticated(&err), "{err}");
    assert!(
        !is_admin.call("mallory".into()),
        "computed, never the copied `true`"
    );
}

#[test]
fn mac_swap_is_refused_on_dir_store() {
    a_value_copied_to_another_key_is_refused(&|p| Box::new(DirStore::open(p).unwrap()));
}

#[test]
fn mac_swap_is_refused_on_log_store() {
    a_value_copied_to_another_key_is_refused(&|p| Box::new(LogStore::open(p).unwrap()));
}

#[cfg(feature = "lmdb")]
#[test]
fn mac_swap_is_refused_on_lmdb_store() {
    a_value_copied_to_another_key_is_refused(&|p| {
        Box::new(cacher::store::LmdbStore::open(p).unwrap())
    });
}

#[test]
fn contains_refuses_a_planted_value_exactly_as_get_does() {
    let store = std::sync::Arc::new(cacher::store::MemoryStore::new());
    let unkeyed = Cache::builder().store(store.clone()).build().unwrap();
    unkeyed.put("token", &"planted").unwrap();
    let cache = keyed(store);
    let get = cache.get::<String>("token").unwrap_err();
    assert!(is_unauthenticated(&get), "{get}");
    let contains = cache.contains("token").unwrap_err();
    assert!(is_unauthenticated(&contains), "{contains}");
}
