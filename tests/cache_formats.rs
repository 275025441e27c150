//! The Cache over real formats and disk stores: values written in one format are read by a
//! cache configured with another, expiry and values survive a restart, a MAC key refuses
//! foreign values.

use std::path::Path;
use std::time::Duration;

use cacher::formats::Registry;
use cacher::store::{DirStore, Durability, LogStore, MemoryStore, Store};
use cacher::{Cache, Error, ManualClock};
use serde::{Deserialize, Serialize};

const T0: u64 = 1_700_000_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Page {
    url: String,
    status: u16,
    body: Vec<u8>,
    tags: Vec<String>,
    score: Option<f64>,
}

fn page() -> Page {
    Page {
        url: "https://example.invalid/a".into(),
        status: 200,
        body: (0..=255).collect(),
        tags: vec!["x".into(), "y".into()],
        score: Some(0.5),
    }
}

#[test]
fn every_format_round_trips_through_the_cache() {
    for format in [
        "cbor",
        "json",
        "pickle",
        "cbor+zstd",
        "json+zstd:19",
        "pickle+zstd",
    ] {
        let cache = Cache::builder()
            .store(MemoryStore::new())
            .format(format)
            .build()
            .unwrap();
        cache.put("p", &page()).unwrap();
        assert_eq!(cache.get::<Page>("p").unwrap(), Some(page()), "{format}");
    }
}

#[test]
fn a_value_written_in_another_format_still_decodes() {
    let store = std::sync::Arc::new(MemoryStore::new());
    let json = Cache::builder()
        .store(store.clone())
        .format("json")
        .build()
        .unwrap();
    json.put("p", &page()).unwrap();
    let cbor = Cache::builder()
        .store(store.clone())
        .format("cbor+zstd")
        .build()
        .unwrap();
    assert_eq!(cbor.get::<Page>("p").unwrap(), Some(page()));
}

#[test]
fn an_unknown_format_name_is_a_config_error_listing_the_known_ones() {
    let err = Cache::builder()
        .store(MemoryStore::new())
        .format("yaml")
        .build()
        .unwrap_err();
    let Error::Config(msg) = err else {
        panic!("expected Config, got {err:?}")
    };
    assert!(msg.contains("cbor") && msg.contains("json"), "{msg}");
}

#[test]
fn a_value_of_the_wrong_type_is_a_format_error_not_a_panic() {
    let cache = Cache::builder().store(MemoryStore::new()).build().unwrap();
    cache.put("p", &page()).unwrap();
    let err = cache.get::<Vec<u64>>("p").unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
}

#[test]
fn garbage_under_a_key_is_an_error_not_a_panic() {
    let store = std::sync::Arc::new(MemoryStore::new());
    store.put(b"k", b"definitely not an envelope").unwrap();
    let cache = Cache::builder().store(store).build().unwrap();
    assert!(matches!(
        cache.get::<u32>("k").unwrap_err(),
        Error::Format { .. }
    ));
}

#[test]
fn a_cache_with_a_mac_key_refuses_values_written_without_it() {
    let store = std::sync::Arc::new(MemoryStore::new());
    let attacker = Cache::builder().store(store.clone()).build().unwrap();
    attacker.put("k", &"planted").unwrap();
    let key = [7u8; 32];
    let owner = Cache::builder()
        .store(store.clone())
        .registry(Registry::with_builtins().with_mac_key(key))
        .build()
        .unwrap();
    assert!(
        owner.get::<String>("k").is_err(),
        "a planted value is refused"
    );
    owner.put("k", &"mine").unwrap();
    assert_eq!(owner.get::<String>("k").unwrap().as_deref(), Some("mine"));
}

fn restart_keeps_values_and_expiry(open: &dyn Fn(&Path) -> Box<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let build = |clock: &ManualClock| {
        Cache::builder()
            .store(open(dir.path()))
            .clock(clock.clone())
            .format("cbor+zstd")
            .build()
            .unwrap()
    };
    {
        let cache = build(&clock);
        cache.put("forever", &page()).unwrap();
        cache
            .put_with_ttl("short", &1u8, Duration::from_secs(10))
            .unwrap();
        let f = cache.memoize("f").wrap(|x: u32| x + 1).unwrap();
        f.call(1);
    }
    clock.advance(Duration::from_secs(10));
    let cache = build(&clock);
    assert_eq!(cache.get::<Page>("forever").unwrap(), Some(page()));
    assert_eq!(
        cache.get::<u8>("short").unwrap(),
        None,
        "expiry lives in the envelope"
    );
    let f = cache
        .memoize("f")
        .wrap(|_x: u32| -> u32 { panic!("must be a hit after restart") })
        .unwrap();
    assert_eq!(f.call(1), 2);
}

#[test]
fn dir_store_cache_survives_restart() {
    restart_keeps_values_and_expiry(&|p| {
        Box::new(
            DirStore::options()
                .durability(Durability::None)
                .open(p)
                .unwrap(),
        )
    });
}

#[test]
fn log_store_cache_survives_restart() {
    restart_keeps_values_and_expiry(&|p| Box::new(LogStore::open(p.join("c.log")).unwrap()));
}

#[cfg(feature = "lmdb")]
#[test]
fn lmdb_store_cache_survives_restart() {
    restart_keeps_values_and_expiry(&|p| Box::new(cacher::store::LmdbStore::open(p).unwrap()));
}

#[cfg(feature = "lmdb")]
#[test]
fn array_store_cache_survives_restart() {
    restart_keeps_values_and_expiry(&|p| {
        Box::new(cacher::store::array::ArrayStore::open(p).unwrap())
    });
}
