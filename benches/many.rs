//! Many calls at once (issue 10, item 8), on `LmdbStore`:
//! - a batch of 10,000 inputs with 10% missing (`call_many`, and a batch function) against
//!   10,000 single calls of the same inputs (target: batch ≥ 5x faster);
//! - 4 threads hammering 100 hot keys against 1 thread (target: hit throughput ≥ 1.6x);
//! - an async hit against a sync hit (target: ≤ 2x), on LMDB and in memory.
//!
//! `cargo bench --features lmdb --bench many -- --warm-up-time 1 --measurement-time 3`

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use cacher::store::lmdb::LmdbOptions;
use cacher::store::{Durability, LmdbStore, MemoryStore, Store};
use cacher::Cache;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

const N: u64 = 10_000;

fn lmdb(dir: &std::path::Path, name: &str) -> Arc<LmdbStore> {
    lmdb_with(dir, name, Durability::None)
}

fn lmdb_with(dir: &std::path::Path, name: &str, durability: Durability) -> Arc<LmdbStore> {
    let opts = LmdbOptions::default().with_durability(durability);
    Arc::new(LmdbStore::open_with(dir.join(name), &opts).unwrap())
}

fn value(x: u64) -> String {
    format!("{x:0>100}") // 100 B
}

/// With `Durability::None` the figures compare lookups and write transactions; with `Flush`
/// (LmdbStore's default) the single calls also pay one fsync per missing input and the
/// batch one in all.
fn batch_vs_single(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for (label, durability) in [("none", Durability::None), ("flush", Durability::Flush)] {
        let store = lmdb_with(dir.path(), label, durability);
        let cache = Cache::builder().store(store.clone()).build().unwrap();
        let memo = cache.wrap("value", value);
        let batch = cache
            .memoize("value")
            .wrap_batch(|xs: Vec<u64>| xs.into_iter().map(value).collect::<Vec<_>>())
            .unwrap();
        let inputs: Vec<u64> = (0..N).collect();
        memo.call_many(inputs.iter().copied()).unwrap();
        let keys: Vec<Vec<u8>> = inputs.iter().map(|x| memo.key_for(x).unwrap()).collect();
        let missing: Vec<&[u8]> = keys.iter().step_by(10).map(Vec::as_slice).collect();
        // Each iteration starts from 10% missing: the setup deletes them again (not measured).
        let forget = || {
            for k in &missing {
                store.delete(k).unwrap();
            }
        };

        let mut group = c.benchmark_group(format!("many/10k-10%-missing/lmdb-{label}"));
        group.sample_size(10);
        group.throughput(Throughput::Elements(N));
        group.bench_function("single-calls", |b| {
            b.iter_batched(
                forget,
                |()| {
                    for x in &inputs {
                        black_box(memo.call(*x));
                    }
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function("call_many", |b| {
            b.iter_batched(
                forget,
                |()| black_box(memo.call_many(inputs.iter().copied()).unwrap()),
                BatchSize::PerIteration,
            )
        });
        group.bench_function("batch-fn", |b| {
            b.iter_batched(
                forget,
                |()| black_box(batch.call_many(inputs.iter().copied()).unwrap()),
                BatchSize::PerIteration,
            )
        });
        if label == "none" {
            // What the cross-process leases cost a batch (one lock file per missing key):
            // the same batch on a cache that takes none.
            let unleased = Cache::builder()
                .store(store.clone())
                .lease_timeout(None)
                .build()
                .unwrap();
            let unleased_batch = unleased
                .memoize("value")
                .wrap_batch(|xs: Vec<u64>| xs.into_iter().map(value).collect::<Vec<_>>())
                .unwrap();
            group.bench_function("batch-fn/no-leases", |b| {
                b.iter_batched(
                    forget,
                    |()| black_box(unleased_batch.call_many(inputs.iter().copied()).unwrap()),
                    BatchSize::PerIteration,
                )
            });
            // The floor of any batch: making the 10,000 keys, and one raw get_many of them.
            group.bench_function("parts/keys-only", |b| {
                b.iter(|| {
                    for x in &inputs {
                        black_box(memo.key_for(x).unwrap());
                    }
                })
            });
            let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            group.bench_function("parts/raw-get_many", |b| {
                b.iter(|| black_box(store.get_many(&refs).unwrap()))
            });
        }
        group.finish();
    }
}

/// `threads` threads each making `iters` hit calls over 100 hot keys; the wall time.
fn hammer(
    memo: &cacher::Memo<u64, String, fn(u64) -> String, cacher::memo::Always>,
    threads: usize,
    iters: u64,
) -> Duration {
    let start_line = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let start_line = &start_line;
            s.spawn(move || {
                start_line.wait();
                for i in 0..iters {
                    black_box(memo.call((i + t as u64 * 37) % 100));
                }
            });
        }
        start_line.wait();
        let start = Instant::now();
        // The scope joins every thread before returning.
        start
    })
    .elapsed()
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Like [`hammer`], but the CPU time all threads spent, divided by `threads`: with throughput
/// set to one element this reads as CPU time per hit. On a loaded 2-core machine wall clock
/// cannot show scaling (the threads wait for a core); what contention costs shows here
/// anyway, as CPU time per hit rising with the thread count (a cache line bouncing between
/// cores, a contended lock), as long as the threads overlap at all.
fn hammer_cpu(
    memo: &cacher::Memo<u64, String, fn(u64) -> String, cacher::memo::Always>,
    threads: usize,
    iters: u64,
) -> Duration {
    let start_line = Barrier::new(threads);
    let total: Duration = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start_line = &start_line;
                s.spawn(move || {
                    start_line.wait();
                    let start = thread_cpu();
                    for i in 0..iters {
                        black_box(memo.call((i + t as u64 * 37) % 100));
                    }
                    thread_cpu() - start
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total / threads as u32
}

/// The store alone, without the cache in front: `threads` threads each making `iters` gets
/// over the same 100 keys. Beside the memoized rows it tells the store's scaling (LMDB's read
/// transactions) from the cache front-end's (key hashing, decoding, the shared counters).
fn hammer_store(store: &dyn Store, keys: &[Vec<u8>], threads: usize, iters: u64) -> Duration {
    let start_line = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let start_line = &start_line;
            s.spawn(move || {
                start_line.wait();
                for i in 0..iters {
                    let k = &keys[((i + t as u64 * 37) % 100) as usize];
                    black_box(store.with_value(k, &mut |v| {
                        black_box(v.len());
                    }))
                    .unwrap();
                }
            });
        }
        start_line.wait();
        Instant::now()
    })
    .elapsed()
}

fn hot_keys_on_threads(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // Memory beside LMDB: what the front-end alone does on threads.
    let stores: Vec<(&str, Arc<dyn Store>)> = vec![
        ("lmdb", lmdb(dir.path(), "hot")),
        ("memory", Arc::new(MemoryStore::new())),
    ];
    for (name, store) in stores {
        let cache = Cache::builder().store(store).build().unwrap();
        let memo = cache
            .memoize("hot")
            .wrap(value as fn(u64) -> String)
            .unwrap();
        memo.call_many(0..100).unwrap();
        let keys: Vec<Vec<u8>> = (0..100).map(|x| memo.key_for(&x).unwrap()).collect();
        let mut group = c.benchmark_group(format!("many/100-hot-keys/{name}"));
        for threads in [1usize, 4] {
            // One iteration = one hit on each thread.
            group.throughput(Throughput::Elements(threads as u64));
            group.bench_function(BenchmarkId::new("threads", threads), |b| {
                b.iter_custom(|iters| hammer(&memo, threads, iters))
            });
            group.bench_function(BenchmarkId::new("store-only-threads", threads), |b| {
                b.iter_custom(|iters| hammer_store(cache.store(), &keys, threads, iters))
            });
        }
        // CPU time per hit (one element = one hit), 1 against 4 threads.
        group.throughput(Throughput::Elements(1));
        for threads in [1usize, 4] {
            group.bench_function(BenchmarkId::new("cpu-per-hit-threads", threads), |b| {
                b.iter_custom(|iters| hammer_cpu(&memo, threads, iters))
            });
        }
        group.finish();
    }
}

fn async_vs_sync_hit(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let stores: Vec<(&str, Arc<dyn Store>)> = vec![
        ("lmdb", lmdb(dir.path(), "async")),
        ("memory", Arc::new(MemoryStore::new())),
    ];
    let mut group = c.benchmark_group("many/hit");
    for (name, store) in stores {
        let cache = Cache::builder().store(store).build().unwrap();
        let sync = cache.wrap("v", value);
        let asynk = cache
            .memoize("v")
            .wrap_async(|x: u64| async move { value(x) })
            .unwrap();
        sync.call(42);
        group.bench_function(BenchmarkId::new(name, "sync"), |b| {
            b.iter(|| black_box(sync.call(black_box(42))))
        });
        // One runtime entry per sample, so the figure is the async call, not block_on.
        group.bench_function(BenchmarkId::new(name, "async"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(asynk.call(black_box(42)).await);
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    batch_vs_single,
    hot_keys_on_threads,
    async_vs_sync_hit
);
criterion_main!(benches);
