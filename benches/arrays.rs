//! ArrayStore zero-copy reads: a 1 KiB array against a 64 MiB array, side by side with reading
//! the same arrays from `.npy` files — whole-file reads (what `numpy.load` does) and memory-mapped (what
//! `numpy.load(mmap_mode="r")` does).
//!
//! `arraystore_view` is the checked view (the data's CRC-32 checked before it is lent: one pass
//! over the data, so it grows with the array); `arraystore_view_unchecked` skips that pass
//! (target: the same time for both sizes, since the view itself costs nothing per byte).
//!
//! `cargo bench --features lmdb --bench arrays`

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::hint::black_box;
use std::path::Path;

use cacher_store::array::{read_npy, write_npy, ArrayStore};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const SIZES: [(&str, usize); 2] = [("1KiB", 1 << 10), ("64MiB", 64 << 20)];

/// The first element of an `.npy` file of f32 mapped into memory (header parsed by hand).
#[expect(unsafe_code, reason = "maps the bench's own .npy file (see SAFETY)")]
fn mmap_npy_first(path: &Path) -> f32 {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: the benchmark's own temporary file, not modified while mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let header_len = u16::from_le_bytes([map[8], map[9]]) as usize;
    let data: &[f32] = bytemuck_cast(&map[10 + header_len..]);
    data[0]
}

#[expect(unsafe_code, reason = "raw f32 view as the baseline (see SAFETY)")]
fn bytemuck_cast(bytes: &[u8]) -> &[f32] {
    assert_eq!(bytes.as_ptr() as usize % 4, 0);
    assert_eq!(bytes.len() % 4, 0);
    // SAFETY: checked alignment and length above; every bit pattern is a valid f32.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast(), bytes.len() / 4) }
}

fn array_get(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = ArrayStore::open(dir.path().join("env")).unwrap();
    let padded = ArrayStore::open(dir.path().join("env-padded")).unwrap();
    padded.set_align_small_arrays(true);
    for (name, bytes) in SIZES {
        let data: Vec<f32> = (0..bytes / 4).map(|i| i as f32).collect();
        store.put_array(name, &data, &[data.len() as u64]).unwrap();
        padded.put_array(name, &data, &[data.len() as u64]).unwrap();
        write_npy(
            dir.path().join(format!("{name}.npy")),
            &data,
            &[data.len() as u64],
        )
        .unwrap();
    }
    let mut group = c.benchmark_group("array_get");
    group.sample_size(20);
    for (name, _) in SIZES {
        group.bench_with_input(BenchmarkId::new("arraystore_view", name), name, |b, key| {
            b.iter(|| {
                store
                    .with_reader(|r| Ok(r.view::<f32>(black_box(key))?.expect("present")[0]))
                    .unwrap()
            })
        });
        group.bench_with_input(
            BenchmarkId::new("arraystore_view_unchecked", name),
            name,
            |b, key| {
                b.iter(|| {
                    store
                        .with_reader(|r| {
                            Ok(r.view_unchecked::<f32>(black_box(key))?.expect("present")[0])
                        })
                        .unwrap()
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("arraystore_view_padded", name),
            name,
            |b, key| {
                b.iter(|| {
                    padded
                        .with_reader(|r| Ok(r.view::<f32>(black_box(key))?.expect("present")[0]))
                        .unwrap()
                })
            },
        );
        let npy = dir.path().join(format!("{name}.npy"));
        group.bench_with_input(BenchmarkId::new("npy_read_file", name), &npy, |b, path| {
            b.iter(|| read_npy::<f32>(black_box(path)).unwrap().0[0])
        });
        group.bench_with_input(BenchmarkId::new("npy_mmap", name), &npy, |b, path| {
            b.iter(|| mmap_npy_first(black_box(path)))
        });
    }
    group.finish();
    eprintln!(
        "array_get: plain store {:?}; padded store {:?}",
        store.stats(),
        padded.stats()
    );
}

criterion_group!(benches, array_get);
criterion_main!(benches);
