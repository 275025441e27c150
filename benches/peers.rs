//! The peer benchmark (issue 15): diskcache's published core workload run against every cacher
//! store, through `Cache` and through a memoized function, against raw heed and (when python3
//! can `import diskcache`) against diskcache itself, all in one run, with 1, 2 and 4 processes.
//!
//! ```sh
//! cargo bench --features lmdb --bench peers                 # 100,000 ops per process
//! cargo bench --features lmdb --bench peers -- --ops 20000 --procs 1,4 --engines heed,lmdb
//! PEERS_DIR=/dev/shm/peers cargo bench --features lmdb --bench peers   # on tmpfs
//! cargo bench --features lmdb --bench peers -- --gets-only   # every operation a hit
//! ```
//!
//! The workload (diskcache's `tests/benchmark_core.py`): 100 keys, each operation picks one
//! uniformly; 90% get, 9% set, 1% delete; values are 1–495 random bytes; the keys are filled
//! once before the processes start. Every operation is timed on its own (`Instant` around the
//! call, the same for every engine, so the ~20 ns of the clock is in every figure), and the
//! per-kind medians and 99th percentiles over all processes are printed, with each median's
//! ratio to raw heed's. Stores run at `Durability::None` and raw heed with `MDB_NOSYNC`: the
//! figures compare the code path, not the disk's fsync. diskcache runs with its defaults
//! (SQLite WAL, `synchronous=NORMAL`), as its own benchmark does.
//!
//! `--gets-only` makes every operation a get of a filled key, so a memoized engine's "get" is
//! a hit every time (in the mixed workload about 1% of its gets follow a delete and compute
//! and store, which a raw get answers as a miss): the measure for "a memoized hit against a
//! raw get". diskcache is skipped then (its driver runs the mixed workload only).
//!
//! Not a criterion bench: criterion times one closure in one process and cannot merge the
//! timings of several processes, nor drive python3. The files live under `PEERS_DIR` (default:
//! a temporary directory under `target/`) so the file system is the caller's choice; say which
//! one a figure came from.

#![allow(missing_docs, reason = "a benchmark binary")]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cacher::store::{DirStore, LogStore};
use cacher::{Cache, Call};
use cacher_store::lmdb::{LmdbOptions, LmdbStore};
use cacher_store::LogOptions;
use cacher_store::{Durability, Store};
use serde_bytes::ByteBuf;

const KEYS: u64 = 100;
/// Set in the children when the run is `--gets-only`.
const GETS_ONLY_ENV: &str = "PEERS_GETS_ONLY";
const MAP: usize = 1 << 30;
const CHILD_ENV: &str = "CACHER_PEERS_CHILD";
const DISKCACHE_DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers_diskcache.py");

/// One operation of the workload.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Op {
    Get,
    Set,
    Delete,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Delete => "delete",
        }
    }

    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "get" => Op::Get,
            "set" => Op::Set,
            "delete" => Op::Delete,
            _ => return None,
        })
    }
}

/// The engines, in the order of the printed table.
const ENGINES: &[(&str, &str)] = &[
    ("heed", "raw heed, MDB_NOSYNC (the B-tree limit)"),
    ("lmdb", "LmdbStore, Durability::None"),
    (
        "log",
        "LogStore, Durability::None (one writer: 1 process only)",
    ),
    ("dir", "DirStore, Durability::None"),
    ("cache-lmdb", "Cache::get/put/remove on LmdbStore"),
    (
        "cache-lmdb-mac",
        "Cache::get/put/remove on LmdbStore, values MACed (a registry MAC key)",
    ),
    (
        "memo-lmdb",
        "memoized call on LmdbStore (get = hit, set = refresh)",
    ),
    ("memo-log", "memoized call on LogStore (1 process only)"),
    (
        "cache-log",
        "Cache::get/put/remove on LogStore (1 process only)",
    ),
    (
        "cache-hybrid",
        "Cache::get/put/remove on HybridStore (the default store)",
    ),
    (
        "attr-lmdb",
        "#[memoize] function on LmdbStore (get = hit, set = refresh)",
    ),
    ("diskcache", "diskcache (python3, SQLite WAL)"),
];

/// What one engine does for one operation; a process builds one from the engine's name.
trait Engine {
    fn get(&mut self, key: u64) -> usize;
    fn set(&mut self, key: u64, value: &[u8]);
    fn delete(&mut self, key: u64);
}

/// `peers-key-` and six decimal digits, written in place: a `format!` here cost every engine
/// but the memoized ones (whose key is the number) an allocation and ~750 instructions per
/// call, which flattered the memoized rows' ratios to raw heed.
fn key_bytes(key: u64) -> [u8; 16] {
    let mut bytes = *b"peers-key-000000";
    let mut n = key;
    for digit in bytes[10..].iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
    bytes
}

#[path = "support/raw_heed.rs"]
mod raw_heed;
use raw_heed::{open_raw, Raw};

impl Engine for Raw {
    fn get(&mut self, key: u64) -> usize {
        let rtxn = self.env.read_txn().expect("rtxn");
        let found = self.db.get(&rtxn, &key_bytes(key)).expect("get");
        found.map(<[u8]>::to_vec).map_or(0, |v| v.len())
    }
    fn set(&mut self, key: u64, value: &[u8]) {
        let mut wtxn = self.env.write_txn().expect("wtxn");
        self.db.put(&mut wtxn, &key_bytes(key), value).expect("put");
        wtxn.commit().expect("commit");
    }
    fn delete(&mut self, key: u64) {
        let mut wtxn = self.env.write_txn().expect("wtxn");
        self.db.delete(&mut wtxn, &key_bytes(key)).expect("delete");
        wtxn.commit().expect("commit");
    }
}

/// A bare store: `get` copies the value out, as raw heed's side does.
struct Bare(Box<dyn Store>);

impl Engine for Bare {
    fn get(&mut self, key: u64) -> usize {
        self.0
            .get(&key_bytes(key))
            .expect("get")
            .map_or(0, |v| v.len())
    }
    fn set(&mut self, key: u64, value: &[u8]) {
        self.0.put(&key_bytes(key), value).expect("put");
    }
    fn delete(&mut self, key: u64) {
        self.0.delete(&key_bytes(key)).expect("delete");
    }
}

/// `Cache::get`/`put`/`remove` with the cache's default format.
struct Front(Cache);

impl Engine for Front {
    fn get(&mut self, key: u64) -> usize {
        let found: Option<ByteBuf> = self.0.get(key_bytes(key)).expect("get");
        found.map_or(0, |v| v.len())
    }
    fn set(&mut self, key: u64, value: &[u8]) {
        self.0
            .put(key_bytes(key), serde_bytes::Bytes::new(value))
            .expect("put");
    }
    fn delete(&mut self, key: u64) {
        self.0.remove(key_bytes(key)).expect("remove");
    }
}

/// A memoized `fn(key) -> bytes`: a get is a call (a hit once the key is filled, a compute and
/// store after a delete), a set is a call with `Call::refresh()` (compute and overwrite), a
/// delete is `invalidate`. The function itself costs nothing: the figures are the memo's own.
struct Memoized {
    call: Box<dyn FnMut(u64, Op) -> usize>,
}

fn memoized(store: impl Store + 'static) -> Memoized {
    let cache = Cache::builder().store(store).build().expect("cache");
    let memo = cache
        .memoize("peers::value_of")
        .wrap(|(key,): (u64,)| ByteBuf::from(value_for(key, key)))
        .expect("wrap");
    Memoized {
        call: Box::new(move |key, op| match op {
            Op::Get => memo.call((key,)).len(),
            Op::Set => memo
                .call_with((key,), Call::refresh())
                .expect("refresh")
                .len(),
            Op::Delete => usize::from(memo.invalidate(&(key,)).expect("invalidate")),
        }),
    }
}

impl Engine for Memoized {
    fn get(&mut self, key: u64) -> usize {
        (self.call)(key, Op::Get)
    }
    fn set(&mut self, key: u64, _value: &[u8]) {
        (self.call)(key, Op::Set);
    }
    fn delete(&mut self, key: u64) {
        (self.call)(key, Op::Delete);
    }
}

/// The cache of the `#[memoize]` engine: one per process, set when the engine is opened.
static ATTR_CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();

/// The memoized function of [`Memoized`] under the attribute: what a `#[memoize]` call site
/// adds or saves over a [`cacher::Memo`] (the site's cell of counters, the cache clone).
#[cacher::memoize(cache = ATTR_CACHE.get().expect("attr-lmdb opened"), namespace = "peers::attr_value_of")]
fn attr_value_of(key: u64) -> ByteBuf {
    ByteBuf::from(value_for(key, key))
}

/// [`attr_value_of`] as an engine, operations as [`Memoized`]'s.
struct Attributed;

impl Engine for Attributed {
    fn get(&mut self, key: u64) -> usize {
        attr_value_of(key).len()
    }
    fn set(&mut self, key: u64, _value: &[u8]) {
        attr_value_of_with(Call::refresh(), key).expect("refresh");
    }
    fn delete(&mut self, key: u64) {
        attr_value_of_invalidate(key).expect("invalidate");
    }
}

/// 1–495 bytes, the same for a key and seed in every engine.
fn value_for(key: u64, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(key.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ seed);
    let len = rng.usize(1..=495);
    (0..len).map(|_| rng.u8(..)).collect()
}

fn lmdb_store(dir: &Path) -> LmdbStore {
    let options = LmdbOptions::default()
        .with_initial_map_size(MAP as u64)
        .with_durability(Durability::None);
    LmdbStore::open_with(dir, &options).expect("open LmdbStore")
}

fn log_store(dir: &Path) -> LogStore {
    LogOptions::new()
        .durability(Durability::None)
        .open(dir.join("store.log"))
        .expect("open LogStore")
}

fn dir_store(dir: &Path) -> DirStore {
    cacher_store::DirStoreOptions::new()
        .durability(Durability::None)
        .open(dir)
        .expect("open DirStore")
}

fn open_engine(name: &str, dir: &Path) -> Box<dyn Engine> {
    match name {
        "heed" => Box::new(open_raw(dir)),
        "lmdb" => Box::new(Bare(Box::new(lmdb_store(dir)))),
        "log" => Box::new(Bare(Box::new(log_store(dir)))),
        "dir" => Box::new(Bare(Box::new(dir_store(dir)))),
        "cache-lmdb" => Box::new(Front(
            Cache::builder()
                .store(lmdb_store(dir))
                .build()
                .expect("cache"),
        )),
        "cache-lmdb-mac" => Box::new(Front(
            Cache::builder()
                .store(lmdb_store(dir))
                .registry(cacher::formats::Registry::with_builtins().with_mac_key([7; 32]))
                .build()
                .expect("cache"),
        )),
        "memo-lmdb" => Box::new(memoized(lmdb_store(dir))),
        "memo-log" => Box::new(memoized(log_store(dir))),
        "cache-log" => Box::new(Front(
            Cache::builder()
                .store(log_store(dir))
                .build()
                .expect("cache"),
        )),
        "cache-hybrid" => Box::new(Front(
            Cache::builder()
                .store(
                    cacher::store::HybridStore::options()
                        .durability(Durability::None)
                        .open(dir)
                        .expect("open HybridStore"),
                )
                .build()
                .expect("cache"),
        )),
        "attr-lmdb" => {
            let cache = Cache::builder()
                .store(lmdb_store(dir))
                .build()
                .expect("cache");
            assert!(
                ATTR_CACHE.set(cache).is_ok(),
                "one attr-lmdb engine per process"
            );
            Box::new(Attributed)
        }
        other => panic!("unknown engine {other:?}"),
    }
}

/// Runs `ops` operations of the workload on `engine`, returning (op, nanoseconds) per call.
fn run_workload(engine: &mut dyn Engine, ops: u64, seed: u64) -> Vec<(Op, u64)> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut timings = Vec::with_capacity(ops as usize);
    let mut sink = 0usize;
    let gets_only = std::env::var_os(GETS_ONLY_ENV).is_some();
    for i in 0..ops {
        let key = rng.u64(0..KEYS);
        let roll = if gets_only { 0 } else { rng.u32(0..100) };
        let op = match roll {
            0..90 => Op::Get,
            90..99 => Op::Set,
            _ => Op::Delete,
        };
        let value = if op == Op::Set {
            value_for(key, seed ^ i)
        } else {
            Vec::new()
        };
        let start = Instant::now();
        match op {
            Op::Get => sink = sink.wrapping_add(engine.get(key)),
            Op::Set => engine.set(key, &value),
            Op::Delete => engine.delete(key),
        }
        timings.push((op, start.elapsed().as_nanos() as u64));
    }
    std::hint::black_box(sink);
    timings
}

/// In a child process: wait for the start signal, run, write the timings to `out`.
fn child(spec: &str) {
    let mut parts = spec.splitn(5, '|');
    let (engine, dir, ops, seed, out) = (
        parts.next().expect("engine"),
        PathBuf::from(parts.next().expect("dir")),
        parts.next().expect("ops").parse().expect("ops"),
        parts.next().expect("seed").parse().expect("seed"),
        PathBuf::from(parts.next().expect("out")),
    );
    let mut engine = open_engine(engine, &dir);
    let go = dir.with_extension("go");
    while !go.exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let timings = run_workload(engine.as_mut(), ops, seed);
    write_timings(&out, &timings);
}

fn write_timings(out: &Path, timings: &[(Op, u64)]) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).expect("timings file"));
    for (op, ns) in timings {
        writeln!(file, "{} {ns}", op.name()).expect("write timings");
    }
    file.flush().expect("flush timings");
}

fn read_timings(out: &Path, into: &mut BTreeMap<Op, Vec<u64>>) {
    let text = std::fs::read_to_string(out)
        .unwrap_or_else(|e| panic!("timings of a child at {}: {e}", out.display()));
    for line in text.lines() {
        let (op, ns) = line.split_once(' ').expect("op ns");
        let op = Op::parse(op).unwrap_or_else(|| panic!("unknown op {op:?}"));
        into.entry(op).or_default().push(ns.parse().expect("ns"));
    }
}

fn fill(engine: &str, dir: &Path) {
    if engine == "diskcache" {
        let status = Command::new("python3")
            .arg(DISKCACHE_DRIVER)
            .arg("--fill")
            .arg(dir)
            .status()
            .expect("python3 for diskcache");
        assert!(status.success(), "filling diskcache failed: {status}");
        return;
    }
    if engine == "attr-lmdb" {
        // Its cache is a process-wide static, set once: the workers' first get of each key
        // computes and stores it (100 misses in a run, about 0.5% of the gets).
        return;
    }
    let mut e = open_engine(engine, dir);
    for key in 0..KEYS {
        match engine {
            "memo-lmdb" | "memo-log" => {
                e.get(key);
            }
            _ => e.set(key, &value_for(key, 0)),
        }
    }
}

fn diskcache_available() -> bool {
    Command::new("python3")
        .args(["-c", "import diskcache"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `engine` with `procs` processes; returns the timings of every process, by op.
fn run(
    engine: &str,
    procs: usize,
    ops: u64,
    gets_only: bool,
    root: &Path,
) -> BTreeMap<Op, Vec<u64>> {
    let dir = root.join(format!("{engine}-{procs}"));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(dir.with_extension("go"));
    std::fs::create_dir_all(&dir).expect("engine dir");
    fill(engine, &dir);
    let mut children = Vec::new();
    let mut outs = Vec::new();
    for p in 0..procs {
        let out = root.join(format!("{engine}-{procs}-{p}.timings"));
        let seed = 1000 + p as u64;
        let child = if engine == "diskcache" {
            Command::new("python3")
                .arg(DISKCACHE_DRIVER)
                .arg(&dir)
                .arg(ops.to_string())
                .arg(seed.to_string())
                .arg(&out)
                .arg(dir.with_extension("go"))
                .spawn()
        } else {
            let mut command = Command::new(std::env::current_exe().expect("current exe"));
            command.env(
                CHILD_ENV,
                format!("{engine}|{}|{ops}|{seed}|{}", dir.display(), out.display()),
            );
            if gets_only {
                command.env(GETS_ONLY_ENV, "1");
            }
            command.spawn()
        };
        children.push(child.expect("spawn a benchmark process"));
        outs.push(out);
    }
    // Every process opens its engine before the clock starts for any of them.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(dir.with_extension("go"), b"").expect("start signal");
    for mut c in children {
        let status = c.wait().expect("wait for a benchmark process");
        assert!(status.success(), "{engine} process failed: {status}");
    }
    let mut by_op = BTreeMap::new();
    for out in &outs {
        read_timings(out, &mut by_op);
    }
    by_op
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[at] as f64 / 1000.0
}

struct Args {
    ops: u64,
    gets_only: bool,
    procs: Vec<usize>,
    engines: Vec<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        ops: 100_000,
        gets_only: false,
        procs: vec![1, 2, 4],
        engines: ENGINES.iter().map(|(n, _)| n.to_string()).collect(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--gets-only" => args.gets_only = true,
            "--ops" => args.ops = it.next().and_then(|v| v.parse().ok()).expect("--ops N"),
            "--procs" => {
                args.procs = it
                    .next()
                    .expect("--procs 1,2,4")
                    .split(',')
                    .map(|p| p.parse().expect("a process count"))
                    .collect()
            }
            "--engines" => {
                args.engines = it
                    .next()
                    .expect("--engines a,b")
                    .split(',')
                    .map(str::to_owned)
                    .collect()
            }
            // `cargo bench` passes `--bench`; criterion-style filters are not used here.
            _ => {}
        }
    }
    args
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    let args = parse_args();
    let root_holder;
    let root = match std::env::var_os("PEERS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp");
            std::fs::create_dir_all(&base).expect("target/tmp");
            root_holder = tempfile::tempdir_in(base).expect("temp dir");
            root_holder.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&root).expect("PEERS_DIR");
    let diskcache = !args.gets_only && diskcache_available();
    println!(
        "peers: {} ops per process, {} keys, {}, values 1-495 B, in {}",
        args.ops,
        KEYS,
        if args.gets_only {
            "every op a get of a filled key (diskcache skipped)"
        } else {
            "90% get / 9% set / 1% delete"
        },
        root.display()
    );
    if !diskcache && !args.gets_only {
        println!("peers: diskcache skipped: `python3 -c \"import diskcache\"` failed");
    }
    println!("| engine | procs | get p50 | get p99 | set p50 | set p99 | delete p50 | get / heed | set / heed |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &procs in &args.procs {
        let mut heed_median: BTreeMap<Op, f64> = BTreeMap::new();
        for (engine, _) in ENGINES {
            if !args.engines.iter().any(|e| e == engine) {
                continue;
            }
            let single_writer = matches!(*engine, "log" | "memo-log" | "cache-log");
            if (single_writer && procs > 1) || (*engine == "diskcache" && !diskcache) {
                continue;
            }
            let mut by_op = run(engine, procs, args.ops, args.gets_only, &root);
            let mut row = BTreeMap::new();
            for (op, ns) in by_op.iter_mut() {
                ns.sort_unstable();
                row.insert(*op, (percentile(ns, 0.5), percentile(ns, 0.99)));
            }
            if *engine == "heed" {
                heed_median = row.iter().map(|(op, (p50, _))| (*op, *p50)).collect();
            }
            let cell = |op: Op, i: usize| {
                row.get(&op).map_or("-".to_owned(), |r| {
                    format!("{:.2}", if i == 0 { r.0 } else { r.1 })
                })
            };
            let ratio = |op: Op| match (row.get(&op), heed_median.get(&op)) {
                (Some(r), Some(h)) => format!("{:.2}x", r.0 / h),
                _ => "-".to_owned(),
            };
            println!(
                "| {engine} | {procs} | {} | {} | {} | {} | {} | {} | {} |",
                cell(Op::Get, 0),
                cell(Op::Get, 1),
                cell(Op::Set, 0),
                cell(Op::Set, 1),
                cell(Op::Delete, 0),
                ratio(Op::Get),
                ratio(Op::Set),
            );
        }
    }
    println!("(µs; p50 = median, p99 over every operation of every process)");
    for (engine, what) in ENGINES {
        println!("  {engine}: {what}");
    }
}
