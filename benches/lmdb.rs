//! `LmdbStore` against raw `heed` on the same data, in one run: get (owned copy and zero-copy
//! `with_value`) and put (one transaction per put) of 100 B and 4 KiB values.
//!
//! Both sides open their environment the same way (read transactions without TLS, a 1 GiB
//! map so neither grows during the run, `MDB_NOSYNC` so an fsync does not hide the
//! per-operation cost being compared), and hold 10,000 keys.

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::hint::black_box;

use cacher_store::lmdb::heed::types::Bytes;
use cacher_store::lmdb::heed::{self, CommitOrAbort, Database, EnvFlags, EnvOpenOptions};
use cacher_store::lmdb::{LmdbOptions, LmdbStore};
use cacher_store::{Durability, Store};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const KEYS: usize = 10_000;
const MAP: u64 = 1 << 30;

fn key(i: usize) -> Vec<u8> {
    format!("bench-key-{i:08}").into_bytes()
}

fn value(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|j| (j * 31 + seed * 7) as u8).collect()
}

struct Raw {
    env: heed::Env<heed::WithoutTls>,
    db: Database<'static, Bytes, Bytes>,
}

#[expect(unsafe_code, reason = "raw heed baseline: flags and open (see SAFETY)")]
fn open_raw(dir: &std::path::Path) -> Raw {
    let mut options = EnvOpenOptions::new().read_txn_without_tls();
    options.map_size(MAP as usize).max_dbs(4).max_readers(1024);
    // SAFETY: the sync flags only affect durability.
    unsafe {
        options.flags(EnvFlags::NO_SYNC | EnvFlags::NO_META_SYNC);
    }
    // SAFETY: a fresh directory, opened once in this process.
    let env = unsafe { options.open(dir) }.expect("open raw heed");
    let wtxn = env.write_txn().expect("wtxn");
    let db = env
        .create_databases_and_commit(wtxn, |opener, wtxn| {
            opener
                .create_database::<Bytes, Bytes>(wtxn, Some("bench"))
                .map(CommitOrAbort::<_, ()>::Commit)
        })
        .expect("create db")
        .commit()
        .expect("committed");
    Raw { env, db }
}

fn bench(c: &mut Criterion) {
    for &len in &[100usize, 4096] {
        let store_dir = tempfile::tempdir().expect("tempdir");
        let raw_dir = tempfile::tempdir().expect("tempdir");
        let store = LmdbStore::open_with(
            store_dir.path(),
            &LmdbOptions::default()
                .with_initial_map_size(MAP)
                .with_durability(Durability::None),
        )
        .expect("open store");
        let raw = open_raw(raw_dir.path());
        let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
        let values: Vec<Vec<u8>> = (0..KEYS).map(|i| value(len, i)).collect();
        let entries: Vec<(&[u8], &[u8])> = keys
            .iter()
            .zip(&values)
            .map(|(k, v)| (&k[..], &v[..]))
            .collect();
        store.put_many(&entries).expect("fill store");
        let mut wtxn = raw.env.write_txn().expect("wtxn");
        for (k, v) in &entries {
            raw.db.put(&mut wtxn, k, v).expect("fill raw");
        }
        wtxn.commit().expect("commit");

        let label = if len == 100 { "100B" } else { "4KiB" };
        let mut group = c.benchmark_group(format!("lmdb/get/{label}"));
        group.throughput(Throughput::Elements(1));
        let mut i = 0;
        group.bench_function(BenchmarkId::new("LmdbStore::get", label), |b| {
            b.iter(|| {
                i = (i + 7919) % KEYS;
                black_box(store.get(&keys[i]).expect("get"))
            })
        });
        group.bench_function(BenchmarkId::new("raw heed get+copy", label), |b| {
            b.iter(|| {
                i = (i + 7919) % KEYS;
                let rtxn = raw.env.read_txn().expect("rtxn");
                black_box(
                    raw.db
                        .get(&rtxn, &keys[i])
                        .expect("get")
                        .map(<[u8]>::to_vec),
                )
            })
        });
        group.bench_function(BenchmarkId::new("LmdbStore::with_value", label), |b| {
            b.iter(|| {
                i = (i + 7919) % KEYS;
                let mut sum = 0u8;
                store
                    .with_value(&keys[i], &mut |v| sum = v[v.len() / 2])
                    .expect("with_value");
                black_box(sum)
            })
        });
        group.bench_function(BenchmarkId::new("raw heed get (borrowed)", label), |b| {
            b.iter(|| {
                i = (i + 7919) % KEYS;
                let rtxn = raw.env.read_txn().expect("rtxn");
                let v = raw.db.get(&rtxn, &keys[i]).expect("get").expect("present");
                black_box(v[v.len() / 2])
            })
        });
        group.finish();

        let mut group = c.benchmark_group(format!("lmdb/put/{label}"));
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("LmdbStore::put", label), |b| {
            b.iter(|| {
                i = (i + 7919) % KEYS;
                store.put(&keys[i], &values[(i + 1) % KEYS]).expect("put")
            })
        });
        group.bench_function(BenchmarkId::new("raw heed put+commit", label), |b| {
            b.iter(|| {
                i = (i + 7919) % KEYS;
                let mut wtxn = raw.env.write_txn().expect("wtxn");
                raw.db
                    .put(&mut wtxn, &keys[i], &values[(i + 1) % KEYS])
                    .expect("put");
                wtxn.commit().expect("commit")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
