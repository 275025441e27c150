//! Encode/decode throughput of every format, with and without zstd, on a ~10 KiB JSON API
//! response and a 1 MiB byte blob, whole stored values (envelope included). Baselines in the
//! same run: serde_json called directly (no registry, no erasure, no envelope) and a plain
//! memcpy of the blob. Also zstd with and without a trained dictionary on small records.
//!
//! `cargo bench -p cacher-formats --bench formats -- --warm-up-time 1 --measurement-time 3`
//! Stored sizes (exact, machine-independent) are printed before the timings.

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::hint::black_box;

/// The store key test values are written under.
const KEY: &[u8] = b"key";

use cacher_formats::{train_dictionary, EnvelopeMeta, Registry};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Owner {
    login: String,
    id: u64,
    avatar_url: String,
    site_admin: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct License {
    key: String,
    name: String,
}

/// One repository of a paginated "list repositories" API response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Repo {
    id: u64,
    name: String,
    full_name: String,
    owner: Owner,
    description: Option<String>,
    fork: bool,
    url: String,
    created_at: String,
    stargazers_count: u32,
    watchers_count: u32,
    language: Option<String>,
    topics: Vec<String>,
    license: Option<License>,
    score: f64,
}

/// ~10 KiB of JSON: 20 repositories.
fn api_response() -> Vec<Repo> {
    (0..20u64)
        .map(|i| {
            let login = format!("org{}", i % 4);
            let name = format!(
                "project-{i}-{}",
                ["cache", "store", "fetch", "parse"][i as usize % 4]
            );
            Repo {
                id: 100_000 + i * 7919,
                full_name: format!("{login}/{name}"),
                url: format!("https://api.example.org/repos/{login}/{name}"),
                owner: Owner {
                    avatar_url: format!("https://avatars.example.org/u/{}?v=4", 5000 + i % 4),
                    id: 5000 + i % 4,
                    login,
                    site_admin: false,
                },
                name,
                description: (i % 3 != 0)
                    .then(|| format!("A small library number {i} that does one thing well")),
                fork: i % 5 == 0,
                created_at: format!(
                    "2024-{:02}-{:02}T12:00:{:02}Z",
                    i % 12 + 1,
                    i % 28 + 1,
                    i % 60
                ),
                stargazers_count: (i * 37 % 1000) as u32,
                watchers_count: (i * 13 % 300) as u32,
                language: Some(["Rust", "Python", "Go"][i as usize % 3].to_owned()),
                topics: vec![
                    "caching".into(),
                    "storage".into(),
                    format!("topic-{}", i % 6),
                ],
                license: Some(License {
                    key: "mit".into(),
                    name: "MIT License".into(),
                }),
                score: 1.0 / (i as f64 + 1.0),
            }
        })
        .collect()
}

/// 1 MiB: half log-like text (compressible), half xorshift noise (not).
fn blob() -> Vec<u8> {
    let mut out = Vec::with_capacity(1 << 20);
    let mut line = 0u64;
    while out.len() < 1 << 19 {
        out.extend_from_slice(
            format!(
                "2024-05-01T12:{:02}:{:02}Z INFO request id={line} path=/api/v1/items status=200\n",
                line / 60 % 60,
                line % 60
            )
            .as_bytes(),
        );
        line += 1;
    }
    out.truncate(1 << 19);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    while out.len() < 1 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(1 << 20);
    out
}

/// 300 small similar JSON records (~100 B each): the dictionary's use case.
fn records() -> Vec<Vec<u8>> {
    (0..300)
        .map(|i| {
            format!(
                r#"{{"id":{i},"login":"user{}","plan":"{}","active":{},"country":"{}"}}"#,
                i * 7919 % 1000,
                ["free", "pro", "team"][i % 3],
                i % 2 == 0,
                ["DE", "FR", "US", "JP"][i % 4]
            )
            .into_bytes()
        })
        .collect()
}

const META: EnvelopeMeta = EnvelopeMeta {
    created_ms: 1_700_000_000_000,
    expires_ms: None,
    revision: 0,
    type_fingerprint: None,
};

fn print_sizes(registry: &Registry) {
    let response = api_response();
    let json_len = serde_json::to_vec(&response).unwrap().len();
    println!("sizes: ~10 KiB JSON API response ({json_len} B as compact JSON), stored value incl. envelope:");
    for name in [
        "json",
        "json+zstd:3",
        "json+zstd:19",
        "cbor",
        "cbor+zstd:3",
        "pickle",
        "pickle+zstd:3",
    ] {
        let stored = registry
            .resolve(name)
            .unwrap()
            .encode_value(KEY, &response, &META)
            .unwrap();
        println!(
            "  {name:<16} {:>8} B  ratio {:.2}",
            stored.len(),
            json_len as f64 / stored.len() as f64
        );
    }
    let blob = blob();
    println!("sizes: 1 MiB blob (half log text, half random):");
    for name in [
        "raw",
        "raw+zstd:1",
        "raw+zstd:3",
        "raw+zstd:19",
        "cbor",
        "pickle",
        "json",
    ] {
        let stored = registry
            .resolve(name)
            .unwrap()
            .encode_value_bytes(KEY, &blob, &META)
            .unwrap();
        println!(
            "  {name:<16} {:>8} B  ratio {:.2}",
            stored.len(),
            blob.len() as f64 / stored.len() as f64
        );
    }
}

fn dictionary_registry() -> (Registry, String) {
    let records = records();
    let dict = train_dictionary(&records[..200], 2048).unwrap();
    let mut registry = Registry::with_builtins();
    let name = format!("raw+zstd:3:dict={}", dict.id());
    registry.add_dictionary(dict);
    let held_out = &records[200..];
    let raw_total: usize = held_out.iter().map(Vec::len).sum();
    println!("sizes: 100 held-out small JSON records ({raw_total} B of payload), payloads only:");
    for name in ["raw", "raw+zstd:3", "raw+zstd:19", name.as_str()] {
        let pipeline = registry.resolve(name).unwrap();
        let total: usize = held_out
            .iter()
            .map(|r| pipeline.encode_bytes(r).unwrap().len())
            .sum();
        println!(
            "  {name:<24} {total:>8} B  ratio {:.2}",
            raw_total as f64 / total as f64
        );
    }
    (registry, name)
}

fn api_response_bench(c: &mut Criterion) {
    let mut registry = Registry::with_builtins();
    // The same formats registered as user formats: through `dyn Format` and erased-serde.
    registry
        .register_format("erased-json", std::sync::Arc::new(cacher_formats::Json))
        .unwrap();
    registry
        .register_format("erased-cbor", std::sync::Arc::new(cacher_formats::Cbor))
        .unwrap();
    print_sizes(&registry);
    let response = api_response();
    let json_len = serde_json::to_vec(&response).unwrap().len() as u64;

    let mut group = c.benchmark_group("api_response_10k");
    group.throughput(Throughput::Bytes(json_len));
    group.bench_function("encode/baseline-serde_json-direct", |b| {
        b.iter(|| serde_json::to_vec(black_box(&response)).unwrap())
    });
    let plain = serde_json::to_vec(&response).unwrap();
    group.bench_function("decode/baseline-serde_json-direct", |b| {
        b.iter(|| serde_json::from_slice::<Vec<Repo>>(black_box(&plain)).unwrap())
    });
    for name in [
        "json",
        "erased-json",
        "json+zstd:3",
        "cbor",
        "erased-cbor",
        "cbor+zstd:3",
        "pickle",
        "pickle+zstd:3",
    ] {
        let pipeline = registry.resolve(name).unwrap();
        group.bench_with_input(BenchmarkId::new("encode", name), &pipeline, |b, p| {
            b.iter(|| p.encode_value(KEY, black_box(&response), &META).unwrap())
        });
        let stored = pipeline.encode_value(KEY, &response, &META).unwrap();
        group.bench_with_input(BenchmarkId::new("decode", name), &stored, |b, stored| {
            b.iter(|| {
                registry
                    .decode_value::<Vec<Repo>>(KEY, black_box(stored))
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn blob_bench(c: &mut Criterion) {
    let registry = Registry::with_builtins();
    let blob = blob();
    let mut group = c.benchmark_group("blob_1mib");
    group.throughput(Throughput::Bytes(blob.len() as u64));
    group.bench_function("encode/baseline-memcpy", |b| {
        b.iter(|| black_box(&blob).to_vec())
    });
    for name in [
        "raw",
        "raw+zstd:3",
        "cbor",
        "cbor+zstd:3",
        "pickle",
        "pickle+zstd:3",
        "json",
        "json+zstd:3",
    ] {
        let pipeline = registry.resolve(name).unwrap();
        group.bench_with_input(BenchmarkId::new("encode", name), &pipeline, |b, p| {
            b.iter(|| p.encode_value_bytes(KEY, black_box(&blob), &META).unwrap())
        });
        let stored = pipeline.encode_value_bytes(KEY, &blob, &META).unwrap();
        group.bench_with_input(BenchmarkId::new("decode", name), &stored, |b, stored| {
            b.iter(|| {
                registry
                    .decode_value_bytes(KEY, black_box(stored))
                    .unwrap()
                    .1
                    .len()
            })
        });
    }
    group.finish();
}

fn dictionary_bench(c: &mut Criterion) {
    let (registry, dict_name) = dictionary_registry();
    let records = records();
    let held_out = &records[200..];
    let total: usize = held_out.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("small_records_x100");
    group.throughput(Throughput::Bytes(total as u64));
    for name in ["raw+zstd:3", dict_name.as_str()] {
        let label = if name.contains("dict") {
            "zstd:3+dict"
        } else {
            "zstd:3"
        };
        let pipeline = registry.resolve(name).unwrap();
        group.bench_function(BenchmarkId::new("encode", label), |b| {
            b.iter(|| {
                held_out
                    .iter()
                    .map(|r| pipeline.encode_bytes(black_box(r)).unwrap().len())
                    .sum::<usize>()
            })
        });
        let encoded: Vec<Vec<u8>> = held_out
            .iter()
            .map(|r| pipeline.encode_bytes(r).unwrap())
            .collect();
        group.bench_function(BenchmarkId::new("decode", label), |b| {
            b.iter(|| {
                encoded
                    .iter()
                    .map(|e| pipeline.decode_bytes(black_box(e)).unwrap().len())
                    .sum::<usize>()
            })
        });
    }
    group.finish();
}

/// What numbering a revision costs a `Cache` that keeps revisions, side by side on a 1 MiB
/// value: the old way (peek the new value's number, then `restamp_value`: check the payload,
/// copy it and seal again) against `restamp_value_in_place` (header only; with a MAC key,
/// the MAC once).
fn restamp_bench(c: &mut Criterion) {
    let blob = blob();
    let mut group = c.benchmark_group("restamp_1mib");
    group.throughput(Throughput::Bytes(blob.len() as u64));
    for (label, registry) in [
        ("plain", Registry::with_builtins()),
        ("mac", Registry::with_builtins().with_mac_key([7; 32])),
    ] {
        let pipeline = registry.resolve("raw").unwrap();
        let mut stored = pipeline.encode_value_bytes(KEY, &blob, &META).unwrap();
        group.bench_function(BenchmarkId::new("peek+copy-reseal", label), |b| {
            b.iter(|| {
                let n = registry
                    .peek_value(KEY, black_box(&stored))
                    .unwrap()
                    .revision();
                registry.restamp_value(KEY, &stored, n + 1).unwrap()
            })
        });
        let mut n = 0;
        group.bench_function(BenchmarkId::new("in-place", label), |b| {
            b.iter(|| {
                n += 1;
                registry
                    .restamp_value_in_place(KEY, black_box(&mut stored), n)
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = api_response_bench, blob_bench, dictionary_bench, restamp_bench
}
criterion_main!(benches);
