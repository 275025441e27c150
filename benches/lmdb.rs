//! `LmdbStore` against raw `heed` on the same data, in one run: get (owned copy, zero-copy
//! `with_value`, checked and unchecked), put and delete (one transaction each) of 100 B and
//! 4 KiB values, and put under each [`Durability`].
//!
//! Both sides open their environment the same way (TLS reader slots, a 1 GiB
//! map so neither grows during the run, `MDB_NOSYNC` so an fsync does not hide the
//! per-operation cost being compared), and hold 10,000 keys.
//!
//! `lmdb/read-threads`: 1 and 4 threads reading 100 hot keys, `LmdbStore::with_value` beside
//! raw heed opened without TLS (`MDB_NOTLS`, as the store was before issue 15) with 4 and with
//! 16 named databases, and with TLS reader slots (as the store now): the wall-clock throughput, and the CPU time per read, which shows contention
//! (a lock word or a reader slot bouncing between cores) even on a loaded machine.
//!
//! With `CACHER_LMDB_PROCS=1,2,4` set, the binary runs the multi-process driver instead of
//! criterion: for each count N, N processes run get, set and delete phases against raw heed
//! and `LmdbStore` side by side and the parent prints medians, p99 and the ratios (see
//! [`procs`]).

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::hint::black_box;

use cacher_store::lmdb::heed::RoTxn;
use cacher_store::lmdb::{LmdbOptions, LmdbStore};
use cacher_store::{Durability, Store};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};

const KEYS: usize = 10_000;
const MAP: u64 = 1 << 30;

fn key(i: usize) -> Vec<u8> {
    format!("bench-key-{i:08}").into_bytes()
}

fn value(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|j| (j * 31 + seed * 7) as u8).collect()
}

#[path = "support/raw_heed.rs"]
mod raw_heed;
use raw_heed::{open_raw, open_raw_with, Raw, RawParked};

fn open_store(dir: &std::path::Path, durability: Durability) -> LmdbStore {
    LmdbStore::open_with(
        dir,
        &LmdbOptions::default()
            .with_initial_map_size(MAP)
            .with_durability(durability),
    )
    .expect("open store")
}

// The operations, each in its own function so a profiler (callgrind's `--toggle-collect`)
// can count one of them alone.

#[inline(never)]
fn raw_get_copy(raw: &Raw, key: &[u8]) -> Option<Vec<u8>> {
    let rtxn = raw.env.read_txn().expect("rtxn");
    raw.db.get(&rtxn, key).expect("get").map(<[u8]>::to_vec)
}

/// The raw zero-copy read, looking at one byte of the value (what a caller of a zero-copy
/// read that parses a header does).
#[inline(never)]
fn raw_get_borrowed(raw: &Raw, key: &[u8]) -> u8 {
    let rtxn = raw.env.read_txn().expect("rtxn");
    let v = raw.db.get(&rtxn, key).expect("get").expect("present");
    v[v.len() / 2]
}

/// The raw zero-copy read with the check LmdbStore makes: a CRC-32 (crc32fast) over the key
/// and the whole value. What a checked read cannot avoid.
#[inline(never)]
fn raw_get_borrowed_crc(raw: &Raw, key: &[u8]) -> (u8, u32) {
    let rtxn = raw.env.read_txn().expect("rtxn");
    let v = raw.db.get(&rtxn, key).expect("get").expect("present");
    let mut crc = crc32fast::Hasher::new();
    crc.update(key);
    crc.update(v);
    (v[v.len() / 2], crc.finalize())
}

/// [`raw_get_copy`] in a parked transaction, renewed and reset around the get (what
/// `LmdbStore`'s hot reads do since issue 15): no transaction allocated per read.
#[inline(never)]
fn raw_parked_get_copy(parked: &RawParked, key: &[u8]) -> Option<Vec<u8>> {
    parked.get(key, |v| v.map(<[u8]>::to_vec))
}

/// [`raw_get_borrowed`] in a parked transaction.
#[inline(never)]
fn raw_parked_get_borrowed(parked: &RawParked, key: &[u8]) -> u8 {
    parked.get(key, |v| {
        let v = v.expect("present");
        v[v.len() / 2]
    })
}

#[inline(never)]
fn raw_put(raw: &Raw, key: &[u8], value: &[u8]) {
    let mut wtxn = raw.env.write_txn().expect("wtxn");
    raw.db.put(&mut wtxn, key, value).expect("put");
    wtxn.commit().expect("commit")
}

#[inline(never)]
fn raw_delete(raw: &Raw, key: &[u8]) -> bool {
    let mut wtxn = raw.env.write_txn().expect("wtxn");
    let found = raw.db.delete(&mut wtxn, key).expect("delete");
    wtxn.commit().expect("commit");
    found
}

#[inline(never)]
fn store_get(store: &LmdbStore, key: &[u8]) -> Option<Vec<u8>> {
    store.get(key).expect("get")
}

#[inline(never)]
fn store_put(store: &LmdbStore, key: &[u8], value: &[u8]) {
    store.put(key, value).expect("put")
}

#[inline(never)]
fn store_delete(store: &LmdbStore, key: &[u8]) -> bool {
    store.delete(key).expect("delete")
}

#[inline(never)]
fn store_with_value(store: &LmdbStore, key: &[u8]) -> u8 {
    let mut byte = 0u8;
    store
        .with_value(key, &mut |v| byte = v[v.len() / 2])
        .expect("with_value");
    byte
}

#[inline(never)]
fn store_with_value_unchecked(store: &LmdbStore, key: &[u8]) -> u8 {
    let mut byte = 0u8;
    store
        .with_value_unchecked(key, &mut |v| byte = v[v.len() / 2])
        .expect("with_value_unchecked");
    byte
}

fn fill<T>(store: &LmdbStore, raw: &Raw<T>, keys: &[Vec<u8>], values: &[Vec<u8>]) {
    let entries: Vec<(&[u8], &[u8])> = keys
        .iter()
        .zip(values)
        .map(|(k, v)| (&k[..], &v[..]))
        .collect();
    store.put_many(&entries).expect("fill store");
    fill_raw(raw, keys, values);
}

fn fill_raw<T>(raw: &Raw<T>, keys: &[Vec<u8>], values: &[Vec<u8>]) {
    let mut wtxn = raw.env.write_txn().expect("wtxn");
    for (k, v) in keys.iter().zip(values) {
        raw.db.put(&mut wtxn, k, v).expect("fill raw");
    }
    wtxn.commit().expect("commit");
}

fn bench(c: &mut Criterion) {
    // 100 B and 495 B: the shortest and longest values of the workload (diskcache's
    // core workload, issue 15); 4 KiB: a page's worth.
    for &len in &[100usize, 495, 4096] {
        let store_dir = tempfile::tempdir().expect("tempdir");
        let raw_dir = tempfile::tempdir().expect("tempdir");
        let store = open_store(store_dir.path(), Durability::None);
        let raw = open_raw(raw_dir.path());
        let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
        let values: Vec<Vec<u8>> = (0..KEYS).map(|i| value(len, i)).collect();
        fill(&store, &raw, &keys, &values);
        // Declared after `raw`, so dropped before it.
        let parked = RawParked::new(&raw);

        let label = match len {
            4096 => "4KiB".to_string(),
            n => format!("{n}B"),
        };
        let label = label.as_str();
        let mut group = c.benchmark_group(format!("lmdb/get/{label}"));
        group.throughput(Throughput::Elements(1));
        let mut i = 0;
        let mut next = move || {
            i = (i + 7919) % KEYS;
            i
        };
        group.bench_function(BenchmarkId::new("LmdbStore::get", label), |b| {
            b.iter(|| black_box(store_get(&store, &keys[next()])))
        });
        group.bench_function(BenchmarkId::new("LmdbStore::read_unchecked", label), |b| {
            b.iter(|| black_box(store.read_unchecked(&keys[next()]).expect("read")))
        });
        group.bench_function(BenchmarkId::new("raw heed get+copy", label), |b| {
            b.iter(|| black_box(raw_get_copy(&raw, &keys[next()])))
        });
        group.bench_function(BenchmarkId::new("raw heed parked get+copy", label), |b| {
            b.iter(|| black_box(raw_parked_get_copy(&parked, &keys[next()])))
        });
        group.bench_function(BenchmarkId::new("LmdbStore::with_value", label), |b| {
            b.iter(|| black_box(store_with_value(&store, &keys[next()])))
        });
        group.bench_function(
            BenchmarkId::new("LmdbStore::with_value_unchecked", label),
            |b| b.iter(|| black_box(store_with_value_unchecked(&store, &keys[next()]))),
        );
        group.bench_function(BenchmarkId::new("raw heed get (borrowed)", label), |b| {
            b.iter(|| black_box(raw_get_borrowed(&raw, &keys[next()])))
        });
        group.bench_function(
            BenchmarkId::new("raw heed parked get (borrowed)", label),
            |b| b.iter(|| black_box(raw_parked_get_borrowed(&parked, &keys[next()]))),
        );
        group.bench_function(
            BenchmarkId::new("raw heed get (borrowed) + crc32", label),
            |b| b.iter(|| black_box(raw_get_borrowed_crc(&raw, &keys[next()]))),
        );
        group.finish();

        let mut group = c.benchmark_group(format!("lmdb/put/{label}"));
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("LmdbStore::put", label), |b| {
            b.iter(|| {
                let i = next();
                store_put(&store, &keys[i], &values[(i + 1) % KEYS])
            })
        });
        group.bench_function(BenchmarkId::new("raw heed put+commit", label), |b| {
            b.iter(|| {
                let i = next();
                raw_put(&raw, &keys[i], &values[(i + 1) % KEYS])
            })
        });
        group.finish();

        // Each delete removes a present key: the setup (not timed) puts it back.
        let mut group = c.benchmark_group(format!("lmdb/delete/{label}"));
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("LmdbStore::delete", label), |b| {
            b.iter_batched(
                || {
                    let i = next();
                    store.put(&keys[i], &values[i]).expect("put back");
                    i
                },
                |i| assert!(store_delete(&store, &keys[i])),
                BatchSize::PerIteration,
            )
        });
        group.bench_function(BenchmarkId::new("raw heed delete+commit", label), |b| {
            b.iter_batched(
                || {
                    let i = next();
                    raw_put(&raw, &keys[i], &values[i]);
                    i
                },
                |i| assert!(raw_delete(&raw, &keys[i])),
                BatchSize::PerIteration,
            )
        });
        group.finish();
    }
}

/// `LmdbStore::put` of 100 B under each durability level, in one run: what `Periodic` costs
/// against `None` (the target is 1.5x) and against `Flush`.
///
/// Each level is measured twice on the same store: `LmdbStore::put` (wall time) and
/// `LmdbStore::put thread CPU` (the CPU time of the putting thread, user and kernel, through
/// criterion's `iter_custom`), which a loaded machine disturbs much less than wall time: the
/// extra cost of `Periodic` is kernel work in the putting thread (dirtying page-cache pages a
/// sync has cleaned), which instruction counts from callgrind (user space only) do not see.
fn bench_durability(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    let values: Vec<Vec<u8>> = (0..KEYS).map(|i| value(100, i)).collect();
    let mut group = c.benchmark_group("lmdb/put-durability/100B");
    group.throughput(Throughput::Elements(1));
    let (keys, values) = (&keys, &values);
    let put_both = |group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
                    name: &str,
                    store: &LmdbStore| {
        let mut i = 0;
        let mut put = move || {
            i = (i + 7919) % KEYS;
            store.put(&keys[i], &values[(i + 1) % KEYS]).expect("put")
        };
        group.bench_function(BenchmarkId::new("LmdbStore::put", name), |b| {
            b.iter(&mut put)
        });
        group.bench_function(BenchmarkId::new("LmdbStore::put thread CPU", name), |b| {
            b.iter_custom(|iters| {
                let start = thread_cpu();
                for _ in 0..iters {
                    put();
                }
                thread_cpu() - start
            })
        });
    };
    for (name, durability, interval) in [
        ("None", Durability::None, 100),
        ("Periodic", Durability::Periodic, 100),
        ("Periodic 10 ms", Durability::Periodic, 10),
        ("Periodic 1 ms", Durability::Periodic, 1),
        ("Flush", Durability::Flush, 100),
    ] {
        let dir = tempfile::tempdir_in(env_dir()).expect("tempdir");
        let store = LmdbStore::open_with(
            dir.path(),
            &LmdbOptions::default()
                .with_initial_map_size(MAP)
                .with_durability(durability)
                .with_periodic_interval(std::time::Duration::from_millis(interval)),
        )
        .expect("open store");
        put_both(&mut group, name, &store);
    }
    // `None` with a thread syncing every millisecond: what the syncs cost by themselves, without
    // `Periodic`'s pin (which keeps the last durable point's pages from reuse, so each commit
    // writes pages the syncs have cleaned).
    {
        let dir = tempfile::tempdir_in(env_dir()).expect("tempdir");
        let store = std::sync::Arc::new(
            LmdbStore::open_with(
                dir.path(),
                &LmdbOptions::default()
                    .with_initial_map_size(MAP)
                    .with_durability(Durability::None),
            )
            .expect("open store"),
        );
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let syncer = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    store.flush().unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            })
        };
        put_both(&mut group, "None + fsync thread", &store);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        syncer.join().unwrap();
    }
    group.finish();
}

/// Where the durability bench puts its stores: `CACHER_BENCH_DIR`, else the temp dir (which
/// may be a tmpfs, where fsync costs nothing: say which in RESULTS.md).
fn env_dir() -> std::path::PathBuf {
    std::env::var_os("CACHER_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir)
}

/// The multi-process driver: N processes (the bench binary re-run with `CACHER_LMDB_CHILD`),
/// started together, each run a get phase (random keys of a shared, prefilled set), a set
/// phase and a delete phase (over keys of its own, so every delete removes a present key),
/// first on raw heed and then on `LmdbStore`, then the same again in the other order, timing
/// every operation. The parent gathers every child's latencies and prints, per phase, the
/// median and p99 of each engine and their ratio.
mod procs {
    use std::io::{BufRead, BufReader};
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use super::{key, open_raw, open_store, value, Raw};
    use cacher_store::{Durability, Store};

    const CHILD_ENV: &str = "CACHER_LMDB_CHILD";
    const PROCS_ENV: &str = "CACHER_LMDB_PROCS";
    /// Operations per phase per process.
    const OPS: usize = 20_000;
    /// The shared keys read by the get phase.
    const SHARED: usize = 1_000;
    const LEN: usize = 100;

    /// Runs the driver (or a child) if the environment asks for it; `false` otherwise.
    pub fn run_if_asked() -> bool {
        if let Some(dir) = std::env::var_os(CHILD_ENV) {
            child(Path::new(&dir));
            return true;
        }
        let Ok(counts) = std::env::var(PROCS_ENV) else {
            return false;
        };
        for n in counts.split(',') {
            parent(
                n.trim()
                    .parse()
                    .expect("CACHER_LMDB_PROCS: counts like 1,2,4"),
            );
        }
        true
    }

    fn parent(n: usize) {
        let dir = tempfile::tempdir_in(super::env_dir()).expect("tempdir");
        {
            let store = open_store(&dir.path().join("store"), Durability::None);
            std::fs::create_dir(dir.path().join("raw")).expect("raw dir");
            let raw = open_raw(&dir.path().join("raw"));
            let keys: Vec<Vec<u8>> = (0..SHARED).map(key).collect();
            let values: Vec<Vec<u8>> = (0..SHARED).map(|i| value(LEN, i)).collect();
            super::fill(&store, &raw, &keys, &values);
        }
        let children: Vec<_> = (0..n)
            .map(|c| {
                Command::new(std::env::current_exe().expect("current_exe"))
                    .env(CHILD_ENV, dir.path())
                    .env("CACHER_LMDB_CHILD_ID", c.to_string())
                    .env_remove(PROCS_ENV)
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("spawning a child")
            })
            .collect();
        // phase name -> engine name -> every latency in ns
        let mut all: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
        for mut child in children {
            let out = child.stdout.take().expect("piped");
            for line in BufReader::new(out).lines() {
                let line = line.expect("child output");
                let (name, rest) = line.split_once(' ').expect("a named line");
                all.entry(name.to_string())
                    .or_default()
                    .extend(rest.split(' ').map(|t| t.parse::<u64>().expect("ns")));
            }
            assert!(child.wait().expect("wait").success(), "a child failed");
        }
        println!("{n} process(es), {OPS} ops per phase per process, {LEN} B values:");
        println!("| op | raw heed median | LmdbStore median | ratio | raw heed p99 | LmdbStore p99 | ratio |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for op in ["get", "set", "delete"] {
            let mut raw = all.remove(&format!("raw-{op}")).expect("raw latencies");
            let mut store = all.remove(&format!("store-{op}")).expect("store latencies");
            let (rm, r99) = stats(&mut raw);
            let (sm, s99) = stats(&mut store);
            println!(
                "| {op} | {rm} ns | {sm} ns | {:.2}x | {r99} ns | {s99} ns | {:.2}x |",
                sm as f64 / rm as f64,
                s99 as f64 / r99 as f64
            );
        }
    }

    fn stats(v: &mut [u64]) -> (u64, u64) {
        v.sort_unstable();
        (v[v.len() / 2], v[v.len() * 99 / 100])
    }

    fn child(dir: &Path) {
        let id: usize = std::env::var("CACHER_LMDB_CHILD_ID")
            .expect("child id")
            .parse()
            .expect("child id");
        let store = open_store(&dir.join("store"), Durability::None);
        let raw = open_raw(&dir.join("raw"));
        let shared: Vec<Vec<u8>> = (0..SHARED).map(key).collect();
        let own: Vec<Vec<u8>> = (0..OPS)
            .map(|i| format!("child-{id}-{i:08}").into_bytes())
            .collect();
        let v = value(LEN, id);
        let mut times: std::collections::BTreeMap<&str, Vec<u64>> = Default::default();
        let mut time = |name: &'static str, f: &mut dyn FnMut(usize)| {
            let out = times.entry(name).or_default();
            for i in 0..OPS {
                let start = Instant::now();
                f(i);
                out.push(start.elapsed().as_nanos() as u64);
            }
        };
        for round in 0..2 {
            let engines: [&str; 2] = if round == 0 {
                ["raw", "store"]
            } else {
                ["store", "raw"]
            };
            for engine in engines {
                let mut k = id * 7919;
                if engine == "raw" {
                    time("raw-get", &mut |_| {
                        k = (k + 7919) % SHARED;
                        std::hint::black_box(raw_get(&raw, &shared[k]));
                    });
                    time("raw-set", &mut |i| super::raw_put(&raw, &own[i], &v));
                    time("raw-delete", &mut |i| {
                        assert!(super::raw_delete(&raw, &own[i]))
                    });
                } else {
                    time("store-get", &mut |_| {
                        k = (k + 7919) % SHARED;
                        std::hint::black_box(store.get(&shared[k]).expect("get"));
                    });
                    time("store-set", &mut |i| store.put(&own[i], &v).expect("put"));
                    time("store-delete", &mut |i| {
                        assert!(store.delete(&own[i]).expect("delete"))
                    });
                }
            }
        }
        for (name, t) in times {
            let line: Vec<String> = t.iter().map(u64::to_string).collect();
            println!("{name} {}", line.join(" "));
        }
    }

    fn raw_get(raw: &Raw, key: &[u8]) -> Option<Vec<u8>> {
        super::raw_get_copy(raw, key)
    }
}

/// This thread's CPU time.
fn thread_cpu() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// `threads` threads each making `iters` reads `read(i)` over 100 hot keys: the wall time
/// (`cpu` false) or the CPU time all threads spent divided by `threads` (`cpu` true).
fn hammer(
    threads: usize,
    iters: u64,
    cpu: bool,
    read: &(dyn Fn(usize) + Sync),
) -> std::time::Duration {
    let start_line = std::sync::Barrier::new(threads + 1);
    let (wall, spent) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start_line = &start_line;
                s.spawn(move || {
                    start_line.wait();
                    // Not read for wall time: rustix's vDSO lookup crashes under valgrind.
                    let start = cpu.then(thread_cpu);
                    for i in 0..iters as usize {
                        read((i + t * 37) % 100);
                    }
                    start.map_or(std::time::Duration::ZERO, |s| thread_cpu() - s)
                })
            })
            .collect();
        start_line.wait();
        let start = std::time::Instant::now();
        let spent: std::time::Duration =
            handles.into_iter().map(|h| h.join().expect("reader")).sum();
        (start.elapsed(), spent)
    });
    match cpu {
        true => spent / threads as u32,
        false => wall,
    }
}

/// One zero-copy raw read, looking at one byte of the value.
#[inline(never)]
fn raw_read<T>(raw: &Raw<T>, key: &[u8]) -> u8
where
    for<'e> RoTxn<'e, T>: std::ops::Deref<Target = RoTxn<'e>>,
{
    let rtxn = raw.env.read_txn().expect("rtxn");
    raw.db.get(&rtxn, key).expect("get").map_or(0, |v| v[0])
}

fn bench_read_threads(c: &mut Criterion) {
    use cacher_store::lmdb::heed::EnvOpenOptions;
    let dirs: Vec<_> = (0..4)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let store = open_store(dirs[0].path(), Durability::None);
    let notls4 = open_raw_with(
        dirs[1].path(),
        EnvOpenOptions::new().read_txn_without_tls(),
        4,
    );
    let notls16 = open_raw_with(
        dirs[2].path(),
        EnvOpenOptions::new().read_txn_without_tls(),
        16,
    );
    let tls4 = open_raw_with(dirs[3].path(), EnvOpenOptions::new(), 4);
    let keys: Vec<Vec<u8>> = (0..100).map(key).collect();
    let values: Vec<Vec<u8>> = (0..100).map(|i| value(100, i)).collect();
    fill(&store, &notls4, &keys, &values);
    fill_raw(&notls16, &keys, &values);
    fill_raw(&tls4, &keys, &values);
    let readers: [(&str, &(dyn Fn(usize) + Sync)); 4] = [
        ("LmdbStore::with_value", &|i| {
            black_box(store_with_value(&store, &keys[i]));
        }),
        ("raw heed notls max_dbs=4", &|i| {
            black_box(raw_read(&notls4, &keys[i]));
        }),
        ("raw heed notls max_dbs=16", &|i| {
            black_box(raw_read(&notls16, &keys[i]));
        }),
        ("raw heed tls max_dbs=4", &|i| {
            black_box(raw_read(&tls4, &keys[i]));
        }),
    ];
    for (metric, cpu) in [("wall", false), ("cpu-per-read", true)] {
        let mut group = c.benchmark_group(format!("lmdb/read-threads/{metric}"));
        for threads in [1usize, 4] {
            // Wall: one iteration is one read on each thread; CPU: one read.
            group.throughput(Throughput::Elements(if cpu { 1 } else { threads as u64 }));
            for (name, read) in readers {
                group.bench_function(BenchmarkId::new(name, threads), |b| {
                    b.iter_custom(|iters| hammer(threads, iters, cpu, read))
                });
            }
        }
        group.finish();
    }
}

fn main() {
    if procs::run_if_asked() {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench_read_threads(&mut c);
    bench(&mut c);
    bench_durability(&mut c);
    c.final_summary();
}
