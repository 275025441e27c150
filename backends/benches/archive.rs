//! Archive files (issue 12): 10,000 keys x 10 revisions of ~1 KiB JSON API responses, where
//! each revision edits a few fields. Reports the time to write the archive, its compression
//! ratio (with and without a trained dictionary), and a random read of one archived revision,
//! warm (page cache) and cold (the file's pages dropped with `posix_fadvise(DONTNEED)` and the
//! archive opened afresh).
//!
//! `cargo bench -p cacher-store --features archive --bench archive`

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::hint::black_box;
use std::time::Instant;

use cacher_store::archive::{
    train_dictionary, Archive, ArchiveOptions, ArchiveWriter, ArchivedRevision,
};
use criterion::{criterion_group, criterion_main, Criterion};

const KEYS: usize = 10_000;
const REVISIONS: u64 = 10;

/// One API response: a user record with an order history, ~1 KiB of JSON. Revision `rev`
/// changes the visit counter, the update time, the balance and one order's status.
fn response(key: usize, rev: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(key as u64);
    let cities = [
        "Lisbon", "Osaka", "Quito", "Tartu", "Accra", "Perth", "Oslo", "Lima",
    ];
    let mut orders = String::new();
    for o in 0..6 {
        let status = if (o as u64 + rev).is_multiple_of(4) {
            "shipped"
        } else {
            "pending"
        };
        orders.push_str(&format!(
            "{}{{\"order_id\":\"ord-{key:05}-{o}\",\"sku\":\"SKU-{:04}\",\"quantity\":{},\"unit_price\":{}.{:02},\"status\":\"{status}\"}}",
            if o == 0 { "" } else { "," },
            rng.u32(0..10_000),
            rng.u32(1..5),
            rng.u32(1..500),
            rng.u32(0..100),
        ));
    }
    format!(
        "{{\"id\":{key},\"username\":\"user_{key:05}\",\"email\":\"user{key}@example.com\",\"city\":\"{}\",\"created_at\":\"2024-0{}-1{}T08:00:00Z\",\"updated_at\":\"2026-11-{:02}T{:02}:00:00Z\",\"visits\":{},\"balance\":{}.{:02},\"plan\":\"{}\",\"verified\":{},\"orders\":[{orders}],\"preferences\":{{\"newsletter\":{},\"language\":\"en\",\"theme\":\"dark\"}}}}",
        cities[rng.usize(0..cities.len())],
        rng.u32(1..10),
        rng.u32(0..10),
        1 + rev,
        rng.u32(0..24),
        100 + rev * rng.u64(1..50),
        rng.u32(0..10_000) + rev as u32 * 3,
        rng.u32(0..100),
        ["free", "pro", "team"][rng.usize(0..3)],
        rng.bool(),
        rng.bool(),
    )
    .into_bytes()
}

fn write_archive(
    dir: &std::path::Path,
    name: &str,
    options: &ArchiveOptions,
) -> (std::path::PathBuf, f64) {
    let start = Instant::now();
    let mut writer = ArchiveWriter::create(dir, name, options).expect("create");
    for key in 0..KEYS {
        let values: Vec<Vec<u8>> = (1..=REVISIONS).map(|r| response(key, r)).collect();
        let revisions: Vec<ArchivedRevision<'_>> = values
            .iter()
            .zip(1..)
            .map(|(v, r)| ArchivedRevision {
                revision: r,
                time_ms: r * 86_400_000,
                name: None,
                value: v,
            })
            .collect();
        writer
            .add(format!("api:/users/{key}").as_bytes(), &revisions)
            .expect("add");
    }
    let path = writer.finish().expect("finish");
    (path, start.elapsed().as_secs_f64())
}

fn drop_pages(path: &std::path::Path) {
    let file = std::fs::File::open(path).expect("open for fadvise");
    let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
}

fn bench(c: &mut Criterion) {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp");
    std::fs::create_dir_all(&base).expect("target/tmp");
    let dir = tempfile::tempdir_in(base).expect("tempdir");
    let raw: u64 = (0..KEYS)
        .map(|k| {
            (1..=REVISIONS)
                .map(|r| response(k, r).len() as u64)
                .sum::<u64>()
        })
        .sum();
    let samples: Vec<Vec<u8>> = (0..KEYS).step_by(20).map(|k| response(k, 1)).collect();
    let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
    let dict_start = Instant::now();
    // ARCHIVE_DICT_KB and ARCHIVE_LEVEL let a run try other settings; the defaults are the
    // ones recorded in benches/RESULTS.md.
    let dict_kb: usize = std::env::var("ARCHIVE_DICT_KB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let level: i32 = std::env::var("ARCHIVE_LEVEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9);
    let dictionary = train_dictionary(&refs, dict_kb * 1024).expect("train");
    let train_s = dict_start.elapsed().as_secs_f64();
    println!(
        "archive corpus: {KEYS} keys x {REVISIONS} revisions, {raw} bytes ({:.0} B per value)",
        raw as f64 / (KEYS as f64 * REVISIONS as f64)
    );
    println!(
        "dictionary: {dict_kb} KiB trained on {} samples in {train_s:.2} s; zstd level {level}",
        samples.len()
    );
    let mut dict_path = None;
    for (name, options) in [
        ("plain", ArchiveOptions::default().with_level(level)),
        (
            "dict",
            ArchiveOptions::default()
                .with_level(level)
                .with_dictionary(dictionary),
        ),
    ] {
        let (path, secs) = write_archive(dir.path(), name, &options);
        let size = std::fs::metadata(&path).expect("size").len();
        println!(
            "archive {name}: written in {secs:.2} s ({:.1} MB/s of input), {size} bytes, ratio {:.1}x",
            raw as f64 / secs / 1e6,
            raw as f64 / size as f64
        );
        dict_path = Some(path);
    }
    let path = dict_path.expect("dict archive");
    let archive = Archive::open(&path).expect("open");
    let mut group = c.benchmark_group("archive/read");
    let mut i = 0usize;
    group.bench_function("warm random revision", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            let rev = (i as u64 % REVISIONS) + 1;
            black_box(
                archive
                    .get(format!("api:/users/{i}").as_bytes(), rev)
                    .expect("get"),
            )
        })
    });
    group.sample_size(20);
    group.bench_function("cold random revision (pages dropped, fresh open)", |b| {
        b.iter(|| {
            drop_pages(&path);
            i = (i + 7919) % KEYS;
            let archive = Archive::open(&path).expect("open");
            let rev = (i as u64 % REVISIONS) + 1;
            black_box(
                archive
                    .get(format!("api:/users/{i}").as_bytes(), rev)
                    .expect("get"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
