//! DirStore reads copied into a `Vec` versus memory-mapped, per entry size, and DirStore puts
//! beside a raw `std::fs::write`/`read` of one file per key. The crossing point of the first
//! group sets `DEFAULT_MMAP_THRESHOLD`. The last group is what the value check of a mapped
//! read costs: `read` (checked) against `read_unchecked` on 1 MiB and 64 MiB entries.
//!
//! `cargo bench -p cacher-store --bench dir_read -- --warm-up-time 1 --measurement-time 3`

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::hint::black_box;

use cacher_store::{DirStore, Durability, Store};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const SIZES: [usize; 8] = [
    4 << 10,
    16 << 10,
    64 << 10,
    128 << 10,
    256 << 10,
    512 << 10,
    1 << 20,
    4 << 20,
];

fn read_copied_vs_mapped(c: &mut Criterion) {
    let mut group = c.benchmark_group("dir_read");
    let dir = tempfile::tempdir().unwrap();
    let open = |threshold| {
        DirStore::options()
            .durability(Durability::None)
            .mmap_threshold(threshold)
            .open(dir.path())
            .unwrap()
    };
    let copied = open(u64::MAX);
    let mapped = open(0);
    for size in SIZES {
        let key = format!("k{size}").into_bytes();
        copied.put(&key, &vec![0x5a; size]).unwrap();
        group.throughput(Throughput::Bytes(size as u64));
        // Each read consumes every byte (a checksum), as a caller using the value would.
        for (name, store) in [("copied", &copied), ("mapped", &mapped)] {
            group.bench_with_input(BenchmarkId::new(name, size), &key, |b, key| {
                b.iter(|| {
                    let blob = store.read(key).unwrap().unwrap();
                    black_box(crc32fast::hash(&blob))
                })
            });
        }
    }
    group.finish();
}

fn put_and_get_vs_raw_files(c: &mut Criterion) {
    let mut group = c.benchmark_group("dir_vs_raw");
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::options()
        .durability(Durability::None)
        .open(dir.path().join("store"))
        .unwrap();
    let raw = dir.path().join("raw");
    std::fs::create_dir(&raw).unwrap();
    for size in [100usize, 4 << 10, 1 << 20] {
        let value = vec![0xa5; size];
        group.throughput(Throughput::Bytes(size as u64));
        for i in 0..1000u64 {
            std::fs::write(raw.join(i.to_string()), &value).unwrap();
            store.put(i.to_string().as_bytes(), &value).unwrap();
        }
        let mut i = 0u64;
        group.bench_function(BenchmarkId::new("raw_write", size), |b| {
            b.iter(|| {
                i = (i + 1) % 1000;
                std::fs::write(raw.join(i.to_string()), &value).unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("dir_put_none", size), |b| {
            b.iter(|| {
                i = (i + 1) % 1000;
                store.put(i.to_string().as_bytes(), &value).unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("raw_read", size), |b| {
            b.iter(|| {
                i = (i + 1) % 1000;
                black_box(std::fs::read(raw.join(i.to_string())).unwrap())
            })
        });
        group.bench_function(BenchmarkId::new("dir_get", size), |b| {
            b.iter(|| {
                i = (i + 1) % 1000;
                black_box(store.read(i.to_string().as_bytes()).unwrap())
            })
        });
    }
    group.finish();
}

/// A mapped read with its checksum pass (`read`) and without (`read_unchecked`), alone and
/// followed by a pass over every byte as a caller using the value would make. 1 MiB is
/// checked through the map, 64 MiB streamed through the file (above `MAP_CHECK_MAX`).
fn checked_vs_unchecked_mapped_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("dir_read_checked");
    group.sample_size(20);
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::options()
        .durability(Durability::None)
        .open(dir.path())
        .unwrap();
    for size in [1usize << 20, 64 << 20] {
        let key = format!("k{size}").into_bytes();
        let value: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        store.put(&key, &value).unwrap();
        drop(value);
        group.throughput(Throughput::Bytes(size as u64));
        let unchecked = |key: &[u8]| store.read_unchecked(key).unwrap().unwrap();
        let checked = |key: &[u8]| store.read(key).unwrap().unwrap();
        group.bench_with_input(BenchmarkId::new("read_unchecked", size), &key, |b, k| {
            b.iter(|| black_box(unchecked(k).len()))
        });
        group.bench_with_input(BenchmarkId::new("read", size), &key, |b, k| {
            b.iter(|| black_box(checked(k).len()))
        });
        group.bench_with_input(
            BenchmarkId::new("read_unchecked_then_use", size),
            &key,
            |b, k| b.iter(|| black_box(crc32fast::hash(&unchecked(k)))),
        );
        group.bench_with_input(BenchmarkId::new("read_then_use", size), &key, |b, k| {
            b.iter(|| black_box(crc32fast::hash(&checked(k))))
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    read_copied_vs_mapped,
    put_and_get_vs_raw_files,
    checked_vs_unchecked_mapped_read
);
criterion_main!(benches);
