//! Blobs through the `Cache` (issue 11), measured side by side in one run:
//!
//! - `threshold`: HybridStore put+get of one value at each size, inline in LMDB against in its
//!   own file (sets `DEFAULT_INLINE_MAX`), criterion.
//! - `copy`: a 256 MiB blob put and streamed back through `Cache` on DirStore against a raw
//!   `std::io::copy` into a file and back (target: at least 80%), medians of 5, interleaved.
//! - `diskcache`: a 50 MiB response put+get through `Cache` (DirStore and the default store)
//!   against python3's diskcache (`set(..., read=True, tag=..)` and `get(..., read=True)`),
//!   medians of 5; skipped with a message when python3 or diskcache is missing.
//! - `rss`: a 1 GiB blob put and read back through `Cache` on DirStore in a child process; its
//!   peak RSS (`VmHWM`).
//!
//! `cargo bench --bench blobs` runs all; `cargo bench --bench blobs -- copy` one part.

#![allow(missing_docs, reason = "a bench binary")]

use std::hint::black_box;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cacher::store::{DirStore, Durability, HybridStore, Store};
use cacher::Cache;
use criterion::{BenchmarkId, Criterion};

const MIB: u64 = 1 << 20;
const RSS_CHILD: &str = "CACHER_BLOBS_BENCH_RSS_DIR";

/// `left` bytes of a pattern, generated as read (no allocation of the whole value).
struct Pattern {
    left: u64,
    at: usize,
    period: Vec<u8>,
}

impl Pattern {
    fn new(len: u64) -> Self {
        Pattern {
            left: len,
            at: 0,
            period: (0..251 * 1024).map(|i| (i % 251) as u8).collect(),
        }
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = self.at % 251;
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX))
            .min(self.period.len() - start);
        buf[..n].copy_from_slice(&self.period[start..start + n]);
        self.at += n;
        self.left -= n as u64;
        Ok(n)
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn dir_cache(dir: &Path) -> Cache {
    let store = DirStore::options()
        .durability(Durability::None)
        .open(dir)
        .unwrap();
    Cache::builder().store(store).build().unwrap()
}

fn threshold(c: &mut Criterion) {
    let temp = tempfile::tempdir().unwrap();
    let inline = HybridStore::options()
        .inline_max(usize::MAX)
        .open(temp.path().join("inline"))
        .unwrap();
    let files = HybridStore::options()
        .inline_max(0)
        .open(temp.path().join("files"))
        .unwrap();
    let mut group = c.benchmark_group("hybrid put+get (Flush)");
    for size in [4usize << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20] {
        let value = vec![7u8; size];
        for (name, store) in [("inline", &inline), ("file", &files)] {
            group.bench_with_input(BenchmarkId::new(name, size), &value, |b, value| {
                b.iter(|| {
                    store.put(b"k", value).unwrap();
                    let blob = store.read(b"k").unwrap().unwrap();
                    black_box(blob.len())
                })
            });
        }
    }
    group.finish();
}

/// One Cache put+streamed get of `len` bytes on `cache`; returns (put, get).
fn cache_round(cache: &Cache, len: u64) -> (Duration, Duration) {
    let t = Instant::now();
    cache
        .put_blob(
            "blob",
            &("application/octet-stream", 200u16),
            &mut Pattern::new(len),
        )
        .unwrap();
    let put = t.elapsed();
    let t = Instant::now();
    let entry = cache.get_blob::<(String, u16)>("blob").unwrap().unwrap();
    let n = entry.copy_to(&mut io::sink()).unwrap();
    assert_eq!(n, len);
    (put, t.elapsed())
}

/// One raw copy into a file and back; returns (write, read).
fn raw_round(path: &Path, len: u64) -> (Duration, Duration) {
    // A new file each time, as the cache writes a new temp file: truncating the last one
    // would charge the raw side for dropping its dirty pages.
    let _ = std::fs::remove_file(path);
    let t = Instant::now();
    let mut file = std::fs::File::create(path).unwrap();
    io::copy(&mut Pattern::new(len), &mut file).unwrap();
    drop(file);
    let write = t.elapsed();
    let t = Instant::now();
    let mut file = std::fs::File::open(path).unwrap();
    let n = io::copy(&mut file, &mut io::sink()).unwrap();
    assert_eq!(n, len);
    (write, t.elapsed())
}

fn copy_vs_raw() {
    let len = 256 * MIB;
    let temp = tempfile::tempdir().unwrap();
    let cache = dir_cache(&temp.path().join("dir"));
    let (mut raw, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let (w, r) = raw_round(&temp.path().join("raw.bin"), len);
        raw.push(w + r);
        let (p, g) = cache_round(&cache, len);
        ours.push(p + g);
    }
    let (raw, ours) = (median(raw), median(ours));
    let mib_s = |d: Duration| 2.0 * (len / MIB) as f64 / d.as_secs_f64();
    println!(
        "copy: 256 MiB write+read: raw io::copy {:.3?} ({:.0} MiB/s), Cache on DirStore(None) {:.3?} ({:.0} MiB/s): {:.0}% of raw",
        raw,
        mib_s(raw),
        ours,
        mib_s(ours),
        100.0 * raw.as_secs_f64() / ours.as_secs_f64()
    );
}

const DISKCACHE: &str = r#"
import diskcache, io, sys, time
d, n, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
period = bytes(i % 251 for i in range(251 * 1024))
data = (period * (n // len(period) + 1))[:n]
c = diskcache.Cache(d)
puts, gets = [], []
for _ in range(reps):
    t = time.perf_counter(); c.set("blob", io.BytesIO(data), read=True, tag="response"); puts.append(time.perf_counter() - t)
    t = time.perf_counter(); f = c.get("blob", read=True)
    got = 0
    while True:
        b = f.read(1 << 18)
        if not b: break
        got += len(b)
    f.close(); gets.append(time.perf_counter() - t)
    assert got == n
puts.sort(); gets.sort()
print(puts[reps // 2], gets[reps // 2])
"#;

fn vs_diskcache() {
    let len = 50 * MIB;
    let temp = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .args(["-c", DISKCACHE])
        .arg(temp.path().join("diskcache"))
        .arg(len.to_string())
        .arg("5")
        .output();
    let python = match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let v: Vec<f64> = text
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            Some((v[0], v[1]))
        }
        Ok(o) => {
            println!(
                "diskcache: skipped, python3 failed: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            None
        }
        Err(e) => {
            println!("diskcache: skipped, no python3 ({e})");
            None
        }
    };
    // The data comes from memory for both, as diskcache's does.
    let data: Vec<u8> = {
        let mut v = Vec::with_capacity(len as usize);
        Pattern::new(len).read_to_end(&mut v).unwrap();
        v
    };
    let run = |cache: &Cache| {
        let (mut puts, mut gets, mut mapped) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..5 {
            let t = Instant::now();
            cache
                .put_blob("blob", &("response", 200u16), &mut &data[..])
                .unwrap();
            puts.push(t.elapsed());
            let t = Instant::now();
            let entry = cache.get_blob::<(String, u16)>("blob").unwrap().unwrap();
            assert_eq!(entry.copy_to(&mut io::sink()).unwrap(), len);
            gets.push(t.elapsed());
            let t = Instant::now();
            let view = cache
                .get_blob_mapped::<(String, u16)>("blob")
                .unwrap()
                .unwrap();
            assert_eq!(black_box(&view[..]).len() as u64, len);
            mapped.push(t.elapsed());
        }
        (median(puts), median(gets), median(mapped))
    };
    let dir = run(&dir_cache(&temp.path().join("dir")));
    let hybrid_none = HybridStore::options()
        .durability(Durability::None)
        .open(temp.path().join("hybrid-none"))
        .unwrap();
    let hybrid = run(&Cache::builder().store(hybrid_none).build().unwrap());
    let flush = run(&Cache::open(temp.path().join("hybrid-flush")).unwrap());
    println!("diskcache: 50 MiB put / streamed get, medians of 5:");
    println!(
        "  Cache on DirStore (None):       put {:>9.3?}  get {:>9.3?}",
        dir.0, dir.1
    );
    println!(
        "  Cache on HybridStore (None):    put {:>9.3?}  get {:>9.3?}",
        hybrid.0, hybrid.1
    );
    println!(
        "  Cache::open (Hybrid, Flush):    put {:>9.3?}  get {:>9.3?}",
        flush.0, flush.1
    );
    if let Some((p, g)) = python {
        println!(
            "  python3 diskcache (no fsync):   put {:>9.3?}  get {:>9.3?}",
            Duration::from_secs_f64(p),
            Duration::from_secs_f64(g)
        );
    }
}

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn rss_child(dir: &Path) {
    let len = 1 << 30;
    let cache = dir_cache(dir);
    let t = Instant::now();
    let (put, get) = cache_round(&cache, len);
    println!(
        "rss-child put={:.3?} get={:.3?} total={:.3?} peak-rss={}",
        put,
        get,
        t.elapsed(),
        peak_rss()
    );
    io::stdout().flush().unwrap();
}

fn rss() {
    let temp = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .env(RSS_CHILD, temp.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("rss-child"))
        .unwrap_or_else(|| panic!("child: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    let peak: u64 = line
        .rsplit("peak-rss=")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    println!(
        "rss: 1 GiB blob put + streamed get through Cache on DirStore: {line}; peak RSS {} MiB",
        peak / MIB
    );
}

fn main() {
    if let Ok(dir) = std::env::var(RSS_CHILD) {
        rss_child(Path::new(&dir));
        return;
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |part: &str| filter.is_empty() || filter.iter().any(|f| part.contains(f.as_str()));
    if wants("rss") {
        rss();
    }
    if wants("copy") {
        copy_vs_raw();
    }
    if wants("diskcache") {
        vs_diskcache();
    }
    if wants("threshold") {
        let mut c = Criterion::default()
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(20);
        threshold(&mut c);
        c.final_summary();
    }
}
