//! Blobs through the `Cache` (issue 11), measured side by side in one run:
//!
//! - `threshold`: HybridStore put+get of one value at each size, inline in LMDB against in its
//!   own file (sets `DEFAULT_INLINE_MAX`), criterion.
//! - `copy`: a 256 MiB blob put and streamed back through `Cache` on DirStore against a raw
//!   `std::io::copy` into a file and back (target: at least 80%), medians of 5, interleaved.
//! - `diskcache`: a 50 MiB response put+get through `Cache` (DirStore and the default store)
//!   against python3's diskcache (`set(..., read=True, tag=..)` and `get(..., read=True)`),
//!   9 rounds interleaved with a diskcache driver process, wall and thread CPU time, and
//!   per-round ratios; skipped with a message when python3 or diskcache is missing.
//! - `getpath`: where a 50 MiB streamed blob get spends its time, on DirStore and the default
//!   store: the stored file read raw (256 KiB `read`s, as diskcache's reader does; also 64 KiB
//!   and 1 MiB), raw plus one and two CRC-32 passes, the store's checked and unchecked
//!   streams, `get_blob` and `get_blob_mapped`, medians of 7, interleaved.
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

/// A diskcache driver: one line on stdin (`put` or `get`) runs that operation once on a 50 MiB
/// value and prints its wall and thread CPU seconds, so its rounds interleave with ours.
const DISKCACHE: &str = r#"
import diskcache, io, sys, time
d, n = sys.argv[1], int(sys.argv[2])
period = bytes(i % 251 for i in range(251 * 1024))
data = (period * (n // len(period) + 1))[:n]
c = diskcache.Cache(d)
print("ready", flush=True)
for line in sys.stdin:
    t, cpu = time.perf_counter(), time.thread_time()
    if line.strip() == "put":
        c.set("blob", io.BytesIO(data), read=True, tag="response")
    else:
        f = c.get("blob", read=True)
        got = 0
        while True:
            b = f.read(1 << 18)
            if not b: break
            got += len(b)
        f.close()
        assert got == n
    print(time.perf_counter() - t, time.thread_time() - cpu, flush=True)
"#;

/// This thread's CPU time so far (user and system): what a round cost us whatever else the
/// machine ran meanwhile.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Wall and CPU time of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, (Duration, Duration)) {
    let (t, cpu) = (Instant::now(), thread_cpu());
    let out = f();
    (out, (t.elapsed(), thread_cpu().saturating_sub(cpu)))
}

/// The python3 diskcache driver, when python3 and diskcache are there.
struct Diskcache {
    child: std::process::Child,
    lines: io::Lines<io::BufReader<std::process::ChildStdout>>,
}

impl Diskcache {
    fn start(dir: &Path, len: u64) -> Option<Diskcache> {
        let child = Command::new("python3")
            .args(["-c", DISKCACHE])
            .arg(dir)
            .arg(len.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                println!("diskcache: skipped, no python3 ({e})");
                return None;
            }
        };
        let stdout = child.stdout.take().unwrap();
        let mut lines = io::BufRead::lines(io::BufReader::new(stdout));
        if lines.next().and_then(Result::ok).as_deref() != Some("ready") {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            println!(
                "diskcache: skipped, python3 failed: {}",
                err.lines().last().unwrap_or("")
            );
            return None;
        }
        Some(Diskcache { child, lines })
    }

    fn run(&mut self, op: &str) -> (Duration, Duration) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{op}").unwrap();
        stdin.flush().unwrap();
        let line = self.lines.next().unwrap().unwrap();
        let v: Vec<f64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        (Duration::from_secs_f64(v[0]), Duration::from_secs_f64(v[1]))
    }
}

/// Wall and CPU times of one operation over the rounds.
#[derive(Default)]
struct Series {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
}

impl Series {
    fn push(&mut self, (wall, cpu): (Duration, Duration)) {
        self.wall.push(wall);
        self.cpu.push(cpu);
    }

    fn show(&self) -> String {
        let (lo, hi) = (
            self.wall.iter().min().unwrap(),
            self.wall.iter().max().unwrap(),
        );
        format!(
            "{:>8.2?} ({lo:.1?}-{hi:.1?}) cpu {:>8.2?}",
            median(self.wall.clone()),
            median(self.cpu.clone())
        )
    }
}

/// The median over rounds of `ours / theirs` wall time, each round's pair taken together.
fn ratio(ours: &Series, theirs: &Series) -> f64 {
    let mut r: Vec<f64> = ours
        .wall
        .iter()
        .zip(&theirs.wall)
        .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
        .collect();
    r.sort_by(f64::total_cmp);
    r[r.len() / 2]
}

fn vs_diskcache() {
    const ROUNDS: usize = 9;
    let len = 50 * MIB;
    let temp = tempfile::tempdir().unwrap();
    let mut python = Diskcache::start(&temp.path().join("diskcache"), len);
    // The data comes from memory for both, as diskcache's does.
    let data: Vec<u8> = {
        let mut v = Vec::with_capacity(len as usize);
        Pattern::new(len).read_to_end(&mut v).unwrap();
        v
    };
    let hybrid_none = HybridStore::options()
        .durability(Durability::None)
        .open(temp.path().join("hybrid-none"))
        .unwrap();
    let caches = [
        (
            "Cache on DirStore (None)",
            dir_cache(&temp.path().join("dir")),
        ),
        (
            "Cache on HybridStore (None)",
            Cache::builder().store(hybrid_none).build().unwrap(),
        ),
        (
            "Cache::open (Hybrid, Flush)",
            Cache::open(temp.path().join("hybrid-flush")).unwrap(),
        ),
    ];
    let mut theirs = (Series::default(), Series::default());
    let mut ours: Vec<(Series, Series, Series)> =
        caches.iter().map(|_| Default::default()).collect();
    // Interleaved: in each round diskcache's put and get, then each of ours, so a change in
    // the machine's load falls on every side alike.
    for _ in 0..ROUNDS {
        if let Some(py) = &mut python {
            theirs.0.push(py.run("put"));
            theirs.1.push(py.run("get"));
        }
        for ((_, cache), (put, get, mapped)) in caches.iter().zip(&mut ours) {
            put.push(
                timed(|| {
                    cache
                        .put_blob("blob", &("response", 200u16), &mut &data[..])
                        .unwrap()
                })
                .1,
            );
            let (n, t) = timed(|| {
                let entry = cache.get_blob::<(String, u16)>("blob").unwrap().unwrap();
                entry.copy_to(&mut io::sink()).unwrap()
            });
            assert_eq!(n, len);
            get.push(t);
            let (n, t) = timed(|| {
                let view = cache
                    .get_blob_mapped::<(String, u16)>("blob")
                    .unwrap()
                    .unwrap();
                black_box(&view[..]).len() as u64
            });
            assert_eq!(n, len);
            mapped.push(t);
        }
    }
    println!(
        "diskcache: 50 MiB put / streamed get / mapped get, {ROUNDS} interleaved rounds: \
         median wall (min-max), median thread CPU; ratios are per-round medians of ours/diskcache"
    );
    for ((name, _), (put, get, mapped)) in caches.iter().zip(&ours) {
        println!(
            "  {name:<30} put {}  get {}  mapped {}",
            put.show(),
            get.show(),
            mapped.show()
        );
        if python.is_some() {
            println!(
                "  {:<30} put {:.2}x diskcache, streamed get {:.2}x, mapped get {:.2}x",
                "",
                ratio(put, &theirs.0),
                ratio(get, &theirs.1),
                ratio(mapped, &theirs.1)
            );
        }
    }
    if python.is_some() {
        println!(
            "  {:<30} put {}  get {}",
            "python3 diskcache (no fsync)",
            theirs.0.show(),
            theirs.1.show()
        );
    }
}

/// Reads `path` to its end in `chunk`-byte `read`s, running `crcs` CRC-32 passes over each
/// chunk; returns the bytes read.
fn raw_read(path: &Path, chunk: usize, crcs: usize) -> u64 {
    let mut file = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; chunk];
    let mut hashers = vec![crc32fast::Hasher::new(); crcs];
    let mut n = 0u64;
    loop {
        let got = file.read(&mut buf).unwrap();
        if got == 0 {
            break;
        }
        for h in &mut hashers {
            h.update(&buf[..got]);
        }
        n += got as u64;
    }
    for h in hashers {
        black_box(h.finalize());
    }
    n
}

/// Copies `reader` to its end through a 256 KiB buffer (as `BlobEntry::copy_to` does).
fn drain(reader: &mut dyn Read) -> u64 {
    let mut buf = vec![0u8; 256 << 10];
    let mut n = 0u64;
    loop {
        let got = reader.read(&mut buf).unwrap();
        if got == 0 {
            return n;
        }
        n += got as u64;
    }
}

/// The default store's value file of its only file value.
fn hybrid_value_file(dir: &Path) -> std::path::PathBuf {
    for shard in std::fs::read_dir(dir.join("files")).unwrap().flatten() {
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            if f.path().extension().is_some_and(|e| e == "blob") {
                return f.path();
            }
        }
    }
    panic!("no value file under {}", dir.display());
}

fn get_path() {
    let len = 50 * MIB;
    let temp = tempfile::tempdir().unwrap();
    let dir_store = DirStore::options()
        .durability(Durability::None)
        .open(temp.path().join("dir"))
        .unwrap();
    let dir_file = dir_store.entry_path(b"blob");
    let dir = Cache::builder().store(dir_store).build().unwrap();
    let hybrid_dir = temp.path().join("hybrid");
    let hybrid = Cache::builder()
        .store(
            HybridStore::options()
                .durability(Durability::None)
                .open(&hybrid_dir)
                .unwrap(),
        )
        .build()
        .unwrap();
    for cache in [&dir, &hybrid] {
        cache
            .put_blob("blob", &("response", 200u16), &mut Pattern::new(len))
            .unwrap();
    }
    let hybrid_file = hybrid_value_file(&hybrid_dir);
    type Step<'a> = (String, Box<dyn Fn() -> u64 + 'a>);
    let mut steps: Vec<Step> = Vec::new();
    for (name, cache, file) in [
        ("DirStore", &dir, &dir_file),
        ("Hybrid", &hybrid, &hybrid_file),
    ] {
        let store = cache.store();
        let line = |what: &str| format!("{name:<8} {what}");
        steps.extend([
            (
                line("file read, 64 KiB reads"),
                Box::new(move || raw_read(file, 64 << 10, 0)) as Box<dyn Fn() -> u64>,
            ),
            (
                line("file read, 256 KiB reads"),
                Box::new(move || raw_read(file, 256 << 10, 0)),
            ),
            (
                line("file read, 1 MiB reads"),
                Box::new(move || raw_read(file, 1 << 20, 0)),
            ),
            (
                line("file read + 1 CRC-32"),
                Box::new(move || raw_read(file, 256 << 10, 1)),
            ),
            (
                line("file read + 2 CRC-32"),
                Box::new(move || raw_read(file, 256 << 10, 2)),
            ),
            (
                line("store read_stream (CRC)"),
                Box::new(move || drain(&mut store.read_stream(b"blob").unwrap().unwrap())),
            ),
            (
                line("store read_stream_unchecked"),
                Box::new(move || {
                    drain(&mut store.read_stream_unchecked(b"blob").unwrap().unwrap())
                }),
            ),
            (
                line("Cache::get_blob + copy_to"),
                Box::new(move || {
                    let entry = cache.get_blob::<(String, u16)>("blob").unwrap().unwrap();
                    entry.copy_to(&mut io::sink()).unwrap()
                }),
            ),
            (
                line("Cache::get_blob_mapped"),
                Box::new(move || {
                    let view = cache
                        .get_blob_mapped::<(String, u16)>("blob")
                        .unwrap()
                        .unwrap();
                    black_box(&view[..]).len() as u64
                }),
            ),
        ]);
    }
    // The same bytes written in 256 KiB and in 4 MiB writes (diskcache writes 4 MiB chunks):
    // whether the page cache's folio size changes the read.
    let (small_writes, big_writes) = (temp.path().join("w256k"), temp.path().join("w4m"));
    for (path, chunk) in [(&small_writes, 256usize << 10), (&big_writes, 4 << 20)] {
        let mut f = std::fs::File::create(path).unwrap();
        let mut src = Pattern::new(len);
        let mut buf = vec![0u8; chunk];
        loop {
            let mut got = 0;
            while got < chunk {
                let n = src.read(&mut buf[got..]).unwrap();
                if n == 0 {
                    break;
                }
                got += n;
            }
            if got == 0 {
                break;
            }
            f.write_all(&buf[..got]).unwrap();
        }
    }
    steps.push((
        "raw file written in 256 KiB writes, read".into(),
        Box::new(move || raw_read(&small_writes, 256 << 10, 0)),
    ));
    steps.push((
        "raw file written in 4 MiB writes, read".into(),
        Box::new(move || raw_read(&big_writes, 256 << 10, 0)),
    ));
    let mut times: Vec<Series> = steps.iter().map(|_| Series::default()).collect();
    for _ in 0..7 {
        for (i, (_, step)) in steps.iter().enumerate() {
            let (n, t) = timed(step);
            times[i].push(t);
            assert!(n >= len, "{n}");
        }
    }
    println!("getpath: 50 MiB blob, page cache warm, 7 interleaved rounds: median wall (min-max), median thread CPU:");
    for ((what, _), t) in steps.iter().zip(times) {
        println!("  {what:<42} {}", t.show());
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
    if wants("getpath") {
        get_path();
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
