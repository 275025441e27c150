//! `LogStore::open` of a log of 1,000,000 live entries (44-byte keys, as `Cache` keys are, and
//! 100-byte values), as the writer and read-only, from the index checkpoint the building
//! writer left and (read-only) with it moved aside, a full scan, on the root file system (ext4, the temp dir
//! under `target/`) and on tmpfs (`/dev/shm`, when there is one). The log is built once per
//! file system; the file is in the page cache for every measured open (the disk is not read).
//!
//! Before criterion runs, each log is also opened in a child process (this bench binary run
//! again) that prints its peak RSS (`VmHWM`) against its RSS before the open and the index's
//! own heap bytes (`LogStats::index_bytes`): the figures for issue 15's "peak memory at most
//! 1.25x the steady index".
//!
//! `cargo bench -p cacher-store --bench log_open -- --warm-up-time 1 --measurement-time 10`

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;

use cacher_store::{Durability, LogOptions, LogStore, Store};
use criterion::Criterion;

const ENTRIES: u64 = 1_000_000;
const KEY_LEN: usize = 44;
const VALUE_LEN: usize = 100;
const CHILD_ENV: &str = "CACHER_LOG_OPEN_CHILD";

fn key(i: u64) -> [u8; KEY_LEN] {
    // Digest-like keys: a namespace then hex of a mixed counter.
    let mut k = [b'0'; KEY_LEN];
    k[..12].copy_from_slice(b"memo/module:");
    let hex = format!("{:016x}{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i);
    k[12..].copy_from_slice(hex.as_bytes());
    k
}

fn build(path: &Path) {
    let store = LogOptions::new()
        .durability(Durability::None)
        .open(path)
        .unwrap();
    let value = [7u8; VALUE_LEN];
    let keys: Vec<[u8; KEY_LEN]> = (0..ENTRIES).map(key).collect();
    for batch in keys.chunks(10_000) {
        let entries: Vec<(&[u8], &[u8])> = batch.iter().map(|k| (&k[..], &value[..])).collect();
        store.put_many(&entries).unwrap();
    }
    store.flush().unwrap();
    assert_eq!(store.len().unwrap(), ENTRIES);
}

/// A field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time this thread has run, in ns (`/proc/thread-self/schedstat`, first field): the
/// open's own CPU time, whatever else the machine runs.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The child: opens the log, prints its memory figures and the open's CPU time.
fn child(path: &Path) {
    let before = status_kib("VmRSS:");
    let cpu = thread_cpu_ns();
    let t = std::time::Instant::now();
    let store = LogStore::open(path).unwrap();
    let took = t.elapsed();
    let cpu_ms = (thread_cpu_ns() - cpu) as f64 / 1e6;
    let (hwm, after) = (status_kib("VmHWM:"), status_kib("VmRSS:"));
    let stats = store.stats();
    assert_eq!(stats.entries, ENTRIES);
    let index_kib = stats.index_bytes / 1024;
    let from = match store.open_report().checkpoint {
        Some(_) => "from the index checkpoint",
        None => "full scan",
    };
    println!(
        "{} ({from}): open {:.0} ms wall, {cpu_ms:.0} ms CPU; RSS before {before} KiB, after {after} KiB (+{} KiB), peak {hwm} KiB \
         (+{} KiB); index {index_kib} KiB = {:.1} B/entry (keys {KEY_LEN} B of it); \
         peak/steady = {:.3} (by RSS), {:.3} (peak over the index's own bytes)",
        path.display(),
        took.as_secs_f64() * 1e3,
        after - before,
        hwm - before,
        stats.index_bytes as f64 / ENTRIES as f64,
        (hwm - before) as f64 / (after - before) as f64,
        (hwm - before) as f64 / index_kib as f64,
    );
    // The lookups the index serves, once it is open: present keys in a scattered order (the
    // value is read and checked too), then absent ones (the index alone); the best of five
    // rounds, the keys built beforehand. `CACHER_LOG_OPEN_NO_LOOKUPS=1` skips them, so that
    // `perf stat` of the child counts the open alone.
    if std::env::var_os("CACHER_LOG_OPEN_NO_LOOKUPS").is_some() {
        return;
    }
    const LOOKUPS: u64 = 100_000;
    let present: Vec<_> = (0..LOOKUPS)
        .map(|i| key(i.wrapping_mul(7_919) % ENTRIES))
        .collect();
    let absent: Vec<_> = (0..LOOKUPS).map(|i| key(ENTRIES + i)).collect();
    let (mut hit, mut miss) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        let t = std::time::Instant::now();
        for k in &present {
            assert!(black_box(store.get(k).unwrap()).is_some());
        }
        hit = hit.min(t.elapsed().as_nanos() as f64 / LOOKUPS as f64);
        let t = std::time::Instant::now();
        for k in &absent {
            assert!(!black_box(store.contains(k).unwrap()));
        }
        miss = miss.min(t.elapsed().as_nanos() as f64 / LOOKUPS as f64);
    }
    println!("  lookups after the open: get of a present key {hit:.0} ns, contains of an absent key {miss:.0} ns");
}

/// The index checkpoint beside a log.
fn checkpoint(log: &Path) -> PathBuf {
    let mut name = log.file_name().unwrap().to_os_string();
    name.push(".index");
    log.with_file_name(name)
}

struct Log {
    name: &'static str,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

fn logs() -> Vec<Log> {
    let mut logs = Vec::new();
    let mut roots = vec![("ext4", PathBuf::from(env!("CARGO_TARGET_TMPDIR")))];
    if Path::new("/dev/shm").is_dir() {
        roots.push(("tmpfs", PathBuf::from("/dev/shm")));
    }
    for (name, root) in roots {
        std::fs::create_dir_all(&root).unwrap();
        let dir = tempfile::tempdir_in(&root).unwrap();
        let path = dir.path().join("store.log");
        build(&path);
        logs.push(Log {
            name,
            path,
            _dir: dir,
        });
    }
    logs
}

/// Times the open alone: each store is dropped (its index freed, its map unmapped) outside
/// the measurement, as `iter_with_large_drop` does.
fn open_1m(c: &mut Criterion, logs: &[Log]) {
    let mut group = c.benchmark_group("log_open_1m");
    group.sample_size(10);
    for log in logs {
        group.bench_function(format!("{}/writer", log.name), |b| {
            b.iter_with_large_drop(|| black_box(LogStore::open(&log.path).unwrap()))
        });
        group.bench_function(format!("{}/read_only", log.name), |b| {
            b.iter_with_large_drop(|| {
                black_box(LogOptions::new().read_only(true).open(&log.path).unwrap())
            })
        });
        // The same open with the checkpoint moved aside: the full scan, side by side.
        let aside = log.path.with_extension("index-aside");
        std::fs::rename(checkpoint(&log.path), &aside).unwrap();
        group.bench_function(format!("{}/read_only_full_scan", log.name), |b| {
            b.iter_with_large_drop(|| {
                black_box(LogOptions::new().read_only(true).open(&log.path).unwrap())
            })
        });
        std::fs::rename(&aside, checkpoint(&log.path)).unwrap();
    }
    group.finish();
}

fn main() {
    // For profiling: `CACHER_LOG_OPEN_BUILD=/path/store.log` builds the log there and exits;
    // `CACHER_LOG_OPEN_CHILD=/path/store.log` opens it once and prints the memory figures.
    if let Some(path) = std::env::var_os("CACHER_LOG_OPEN_BUILD") {
        build(Path::new(&path));
        return;
    }
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&path));
        return;
    }
    let logs = logs();
    // Alternately without the checkpoint (a full scan; the child, a writer, then leaves a
    // new one on close) and with it, three times each, side by side.
    for log in &logs {
        for round in 0..6 {
            if round % 2 == 0 {
                let _ = std::fs::remove_file(checkpoint(&log.path));
            }
            let out = Command::new(std::env::current_exe().unwrap())
                .env(CHILD_ENV, &log.path)
                .output()
                .unwrap();
            print!(
                "memory, {}: {}",
                log.name,
                String::from_utf8_lossy(&out.stdout)
            );
            eprint!("{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let mut c = Criterion::default().configure_from_args();
    open_1m(&mut c, &logs);
    c.final_summary();
}
