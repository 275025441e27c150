//! What a `LogStore::put` of 100 bytes costs at each durability level, side by side in one
//! run: `None`, `Periodic` (background fdatasync every 100 ms) and `Flush` (fdatasync per
//! put). Issue 15's target: `Periodic` within 1.5x of `None`. The logs live under
//! `CARGO_TARGET_TMPDIR` (`target/tmp`, the root ext4 file system).
//!
//! `cargo bench -p cacher-store --bench log_put -- --warm-up-time 1 --measurement-time 5`

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use cacher_store::{Durability, LogOptions, Store};
use criterion::{criterion_group, criterion_main, Criterion};

fn put_per_durability(c: &mut Criterion) {
    let mut group = c.benchmark_group("log_put_100B");
    let root = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&root).unwrap();
    let value = [5u8; 100];
    for (name, durability) in [
        ("none", Durability::None),
        ("periodic", Durability::Periodic),
        ("flush", Durability::Flush),
    ] {
        let dir = tempfile::tempdir_in(&root).unwrap();
        let store = LogOptions::new()
            .durability(durability)
            .open(dir.path().join("store.log"))
            .unwrap();
        let mut i = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                // 1024 keys cycled, as a cache overwrites its entries.
                let key = format!("memo/module:{:032x}", i % 1024);
                store.put(key.as_bytes(), &value).unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, put_per_durability);
criterion_main!(benches);
