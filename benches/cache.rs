//! The overhead of a memoized call on a hit (key hashing + store read + envelope check +
//! decode) against a raw `Store::get` of the same stored bytes, on the memory and disk stores.
//!
//! `cargo bench --features lmdb --bench cache -- --warm-up-time 1 --measurement-time 3`
//!
//! Target (issue 5): the memoized hit costs at most 20% more than the raw get, for values of
//! 100 B – 4 KiB.

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::hint::black_box;

use cacher::store::{DirStore, Durability, MemoryStore, Store};
use cacher::{Cache, Eviction};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_bytes::ByteBuf;

fn stores(dir: &std::path::Path) -> Vec<(&'static str, std::sync::Arc<dyn Store>)> {
    #[allow(unused_mut)]
    let mut stores: Vec<(&'static str, std::sync::Arc<dyn Store>)> = vec![
        ("memory", std::sync::Arc::new(MemoryStore::new())),
        (
            "dir",
            std::sync::Arc::new(
                DirStore::options()
                    .durability(Durability::None)
                    .open(dir.join("dir"))
                    .unwrap(),
            ),
        ),
    ];
    #[cfg(feature = "lmdb")]
    stores.push((
        "lmdb",
        std::sync::Arc::new(cacher::store::LmdbStore::open(dir.join("lmdb")).unwrap()),
    ));
    stores
}

fn memo_hit_vs_raw_get(c: &mut Criterion) {
    for (size, label) in [(100usize, "100B"), (4096, "4KiB")] {
        let mut group = c.benchmark_group(format!("memo_hit/{label}"));
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        for (name, store) in stores(dir.path()) {
            for (variant, limit) in [("", None), ("+lru", Some(1_000_000u64))] {
                let mut b = Cache::builder().store(store.clone()).format("raw");
                if let Some(n) = limit {
                    b = b.max_entries(n).eviction(Eviction::Lru);
                }
                let cache = b.build().unwrap();
                let value = ByteBuf::from(vec![0x5a; size]);
                let memo = cache
                    .memoize("blob")
                    .wrap(move |(_id, _v): (u64, u32)| value.clone())
                    .unwrap();
                let args = (42u64, 7u32);
                memo.call(args);
                let key = memo.key_for(&args).unwrap();
                if variant.is_empty() {
                    group.bench_function(BenchmarkId::new(name, "raw-get"), |b| {
                        b.iter(|| black_box(store.get(black_box(&key)).unwrap().unwrap()))
                    });
                    // The parts of a hit: making the key, and the lookup without it.
                    group.bench_function(BenchmarkId::new(name, "key-only"), |b| {
                        b.iter(|| black_box(memo.key_for(black_box(&args)).unwrap()))
                    });
                    group.bench_function(BenchmarkId::new(name, "cache-get"), |b| {
                        b.iter(|| black_box(cache.get::<ByteBuf>(black_box(&key)).unwrap()))
                    });
                }
                group.bench_function(BenchmarkId::new(name, format!("memo-hit{variant}")), |b| {
                    b.iter(|| black_box(memo.call(black_box(args))))
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, memo_hit_vs_raw_get);
criterion_main!(benches);
