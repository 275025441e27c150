//! Put/get of 100 B, 4 KiB and 1 MiB values on every store, beside raw baselines in the same
//! run: `std::fs::write`/`read` of one file per key, and a raw `File` append.
//!
//! `cargo bench --bench stores -- --warm-up-time 1 --measurement-time 3`
//!
//! Targets (issue 2): DirStore within 1.5x of the raw files per op at `Durability::None`;
//! LogStore appends of 4 KiB values at >= 50% of the raw append throughput.

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;

use cacher_store::{DirStore, Durability, LogStore, MemoryStore, Store};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const SIZES: [(usize, &str); 3] = [(100, "100B"), (4 << 10, "4KiB"), (1 << 20, "1MiB")];
/// Keys cycled through, so puts overwrite and gets hit a working set larger than one entry.
const KEYS: usize = 256;

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("bench/key/{i}").into_bytes())
        .collect()
}

/// The raw baseline: one file per key, named by the key's hex (what DirStore improves on with
/// atomic writes and arbitrary keys).
struct RawFiles(PathBuf);

impl RawFiles {
    fn path(&self, key: &[u8]) -> PathBuf {
        let name: String = key.iter().map(|b| format!("{b:02x}")).collect();
        self.0.join(name)
    }
}

fn stores(dir: &std::path::Path) -> Vec<(&'static str, Box<dyn Store>)> {
    vec![
        ("memory", Box::new(MemoryStore::new()) as Box<dyn Store>),
        (
            "dir",
            Box::new(
                DirStore::options()
                    .durability(Durability::None)
                    .open(dir.join("dir"))
                    .unwrap(),
            ),
        ),
        (
            "log",
            Box::new(
                LogStore::options()
                    .durability(Durability::None)
                    .open(dir.join("store.log"))
                    .unwrap(),
            ),
        ),
    ]
}

fn put(c: &mut Criterion) {
    let keys = keys();
    for (size, label) in SIZES {
        let mut group = c.benchmark_group(format!("put/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        if size >= 1 << 20 {
            group.sample_size(20);
        }
        let value = vec![0xa5u8; size];
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        for (name, store) in stores(dir.path()) {
            let mut i = 0;
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    store.put(&keys[i % KEYS], black_box(&value)).unwrap();
                    i += 1;
                })
            });
        }
        let raw = RawFiles(dir.path().join("raw"));
        std::fs::create_dir_all(&raw.0).unwrap();
        let mut i = 0;
        group.bench_function(BenchmarkId::from_parameter("raw-files"), |b| {
            b.iter(|| {
                std::fs::write(raw.path(&keys[i % KEYS]), black_box(&value)).unwrap();
                i += 1;
            })
        });
        let mut file = std::fs::File::create(dir.path().join("raw.append")).unwrap();
        let mut written = 0u64;
        group.bench_function(BenchmarkId::from_parameter("raw-append"), |b| {
            b.iter(|| {
                // The raw append writes key + value, like a log record minus its header.
                file.write_all(&keys[written as usize % KEYS]).unwrap();
                file.write_all(black_box(&value)).unwrap();
                written += 1;
            })
        });
        group.finish();
    }
}

fn get(c: &mut Criterion) {
    let keys = keys();
    for (size, label) in SIZES {
        let mut group = c.benchmark_group(format!("get/{label}"));
        group.throughput(Throughput::Bytes(size as u64));
        let value = vec![0x5au8; size];
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        // Fewer keys for 1 MiB values keep the data set in the page cache.
        let n = if size >= 1 << 20 { 32 } else { KEYS };
        for (name, store) in stores(dir.path()) {
            for k in &keys[..n] {
                store.put(k, &value).unwrap();
            }
            let mut i = 0;
            // `get` copies into a Vec, as `fs::read` does: the same work as the baseline.
            group.bench_function(BenchmarkId::new(name, "get"), |b| {
                b.iter(|| {
                    let v = store.get(&keys[i % n]).unwrap().unwrap();
                    i += 1;
                    black_box(v)
                })
            });
            // `read` may lend the bytes (memory map); sum one byte per page to touch them.
            let mut i = 0;
            group.bench_function(BenchmarkId::new(name, "read"), |b| {
                b.iter(|| {
                    let blob = store.read(&keys[i % n]).unwrap().unwrap();
                    i += 1;
                    black_box(blob.iter().step_by(4096).map(|&b| b as u64).sum::<u64>())
                })
            });
        }
        let raw = RawFiles(dir.path().join("raw"));
        std::fs::create_dir_all(&raw.0).unwrap();
        for k in &keys[..n] {
            std::fs::write(raw.path(k), &value).unwrap();
        }
        let mut i = 0;
        group.bench_function(BenchmarkId::new("raw-files", "get"), |b| {
            b.iter(|| {
                let v = std::fs::read(raw.path(&keys[i % n])).unwrap();
                i += 1;
                black_box(v)
            })
        });
        group.finish();
    }
}

criterion_group!(benches, put, get);
criterion_main!(benches);
