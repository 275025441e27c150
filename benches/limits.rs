//! Limits kept by the store's accounting (issue 18), before and after, side by side in one run:
//! - `build/<store>/<n>`: `Cache::build()` with `max_entries` on a store of `n` entries, with
//!   the store's accounting (`accounting`, O(1)) and with it hidden behind a wrapper (`scan`,
//!   the path every store without accounting still takes, and what LmdbStore and HybridStore
//!   took before);
//! - `memo_hit/<store>`: a memoized hit without a limit, and with one (reads recorded in memory
//!   and flushed in batches);
//! - `put/200B`: what the accounting adds to a write, off (no limited cache used the store)
//!   and on, against a bare heed put.
//!
//! `cargo bench --bench limits -- --warm-up-time 1 --measurement-time 3`
//!
//! The 1,000,000-entry figures (too slow for criterion) come from
//! `cargo run --release --example limits_scale` (see `examples/limits_scale.rs`).

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::hint::black_box;
use std::sync::Arc;

use cacher::store::accounting::Accounting;
use cacher::store::{Durability, HybridStore, LmdbStore, Store};
use cacher::Cache;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde_bytes::ByteBuf;

#[path = "support/limits_fill.rs"]
mod limits_fill;
use limits_fill::{fill, Hidden};

fn stores(dir: &std::path::Path) -> Vec<(&'static str, Arc<dyn Store>)> {
    let lmdb = cacher::store::lmdb::LmdbOptions::default().with_durability(Durability::None);
    vec![
        (
            "lmdb",
            Arc::new(LmdbStore::open_with(dir.join("lmdb"), &lmdb).unwrap()),
        ),
        (
            "hybrid",
            Arc::new(
                HybridStore::options()
                    .durability(Durability::None)
                    .open(dir.join("hybrid"))
                    .unwrap(),
            ),
        ),
    ]
}

fn build(c: &mut Criterion) {
    for n in [10_000u64, 100_000] {
        let mut group = c.benchmark_group(format!("build/{n}"));
        group.sample_size(10);
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        for (name, store) in stores(dir.path()) {
            fill(&store, n).unwrap();
            group.bench_function(BenchmarkId::new(name, "accounting"), |b| {
                b.iter(|| {
                    let cache = Cache::builder()
                        .store(store.clone())
                        .max_entries(n * 2)
                        .build()
                        .unwrap();
                    black_box(cache)
                })
            });
            let hidden = Arc::new(Hidden(store.clone()));
            group.bench_function(BenchmarkId::new(name, "scan"), |b| {
                b.iter(|| {
                    let cache = Cache::builder()
                        .store(hidden.clone())
                        .max_entries(n * 2)
                        .build()
                        .unwrap();
                    black_box(cache)
                })
            });
        }
        group.finish();
    }
}

fn memo_hit(c: &mut Criterion) {
    let mut group = c.benchmark_group("memo_hit");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for (name, store) in stores(dir.path()) {
        for (variant, limit) in [("no-limit", None), ("max_entries", Some(1_000_000u64))] {
            let mut b = Cache::builder().store(store.clone()).format("raw");
            if let Some(n) = limit {
                b = b.max_entries(n);
            }
            let cache = b.build().unwrap();
            let value = ByteBuf::from(vec![0x5a; 100]);
            let memo = cache
                .memoize("blob")
                .wrap(move |(_id, _v): (u64, u32)| value.clone())
                .unwrap();
            let args = (42u64, 7u32);
            memo.call(args);
            group.bench_function(BenchmarkId::new(name, variant), |b| {
                b.iter(|| black_box(memo.call(black_box(args))))
            });
        }
    }
    group.finish();
}

/// What the accounting adds to a write: `LmdbStore::put` with accounting off (no limited
/// cache has used the store: the put reads one key to see that), with it on (value and
/// bookkeeping in one transaction), and a bare put into a database of the off store's
/// environment (no checksum, no accounting); 200 B values over 10,000 keys.
fn put_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("put/200B");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let lmdb = cacher::store::lmdb::LmdbOptions::default().with_durability(Durability::None);
    let off = LmdbStore::open_with(dir.path().join("off"), &lmdb).unwrap();
    let on = LmdbStore::open_with(dir.path().join("on"), &lmdb).unwrap();
    on.enable().unwrap();
    let raw = off.env().create_database("bench-raw").unwrap();
    let value = vec![0x5a; 200];
    let keys: Vec<Vec<u8>> = (0..10_000u32)
        .map(|i| format!("key-{i:06}").into_bytes())
        .collect();
    let mut i = 0;
    for (name, store) in [
        ("lmdb-store-accounting-off", &off),
        ("lmdb-store-accounting-on", &on),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % keys.len();
                store.put(&keys[i], &value).unwrap()
            })
        });
    }
    group.bench_function("raw-heed", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            off.env().write(|w| raw.put(w, &keys[i], &value)).unwrap()
        })
    });
    assert_eq!(
        off.totals().unwrap().entries,
        0,
        "the off store kept no accounting"
    );
    assert!(on.totals().unwrap().entries > 0);
    group.finish();
}

criterion_group!(benches, build, memo_hit, put_cost);
criterion_main!(benches);
