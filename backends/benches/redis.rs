//! RedisStore on a local redis-server (Unix socket and loopback TCP) beside LmdbStore (feature
//! `lmdb`), in one run: the mixed workload of 90 % get / 9 % set / 1 % delete over 100 keys
//! with values of 1–495 B, one client thread and four (threads of one process, each with
//! its own connection from the pool); and a hit through a `Tiered` memory tier in
//! front of Redis against a plain Redis get. The server is started by the bench
//! (`--save "" --appendonly no`) and stopped at its end; without `redis-server` it prints why
//! and measures nothing.
//!
//! Then the same workload in 1 and 4 client **processes** at once (this bench re-executed with
//! `CACHER_REDIS_BENCH_CHILD`, each process with its own client), on RedisStore, on one
//! LmdbStore shared by the processes, and on python3 diskcache (`benches/peers_diskcache.py`,
//! the peer benchmark's driver) — one table, every figure from the same run: each process
//! times its own operations after a start file appears (so process start-up is not counted);
//! the table gives the mean time per operation and the throughput of all processes together.
//!
//! `cargo bench -p cacher-store --features redis,lmdb --bench redis -- --warm-up-time 1 --measurement-time 3`
//! (`-- processes` runs only the process table.)

#![allow(missing_docs, reason = "criterion_group! generates undocumented items")]

use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cacher_store::redis::RedisStore;
use cacher_store::{Store, Tiered};
use criterion::{criterion_group, Criterion, Throughput};

const KEYS: u64 = 100;
const OPS: usize = 1000;

/// A fixed pseudo-random sequence of operations, the same for every store.
#[derive(Clone, Copy)]
enum Op {
    Get(u64),
    Set(u64, usize),
    Delete(u64),
}

fn workload() -> Vec<Op> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..OPS)
        .map(|_| {
            let r = next() % 100;
            let key = next() % KEYS;
            match r {
                0 => Op::Delete(key),
                1..=9 => Op::Set(key, 1 + (next() % 495) as usize),
                _ => Op::Get(key),
            }
        })
        .collect()
}

fn key(k: u64) -> [u8; 8] {
    k.to_le_bytes()
}

fn run(store: &dyn Store, ops: &[Op], value: &[u8]) {
    for op in ops {
        match *op {
            Op::Get(k) => {
                black_box(store.get(&key(k)).unwrap());
            }
            Op::Set(k, len) => store.put(&key(k), &value[..len]).unwrap(),
            Op::Delete(k) => {
                black_box(store.delete(&key(k)).unwrap());
            }
        }
    }
}

fn fill(store: &dyn Store, value: &[u8]) {
    for k in 0..KEYS {
        store
            .put(&key(k), &value[..1 + (k as usize * 5) % 495])
            .unwrap();
    }
}

struct Server {
    child: Child,
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Option<Server> {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("redis.sock");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
        .arg("--port")
        .arg(port.to_string())
        .arg("--unixsocket")
        .arg(&socket)
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        eprintln!("redis bench skipped: redis-server is not installed");
        return None;
    };
    let server = Server {
        child,
        _dir: dir,
        socket,
        port,
    };
    let end = Instant::now() + Duration::from_secs(10);
    while RedisStore::open(&server.unix_url(), "probe").is_err() {
        assert!(Instant::now() < end, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(server)
}

impl Server {
    fn unix_url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }
    fn tcp_url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

fn mixed_workload(c: &mut Criterion) {
    let Some(server) = start_server() else {
        return;
    };
    let ops = workload();
    let value = vec![0xa5u8; 495];
    let mut group = c.benchmark_group("redis_mixed_90get_9set_1del");
    group.throughput(Throughput::Elements(OPS as u64));
    let unix = RedisStore::open(&server.unix_url(), "bench-unix").unwrap();
    let tcp = RedisStore::open(&server.tcp_url(), "bench-tcp").unwrap();
    fill(&unix, &value);
    fill(&tcp, &value);
    group.bench_function("RedisStore_unix_socket", |b| {
        b.iter(|| run(&unix, &ops, &value))
    });
    group.bench_function("RedisStore_tcp_loopback", |b| {
        b.iter(|| run(&tcp, &ops, &value))
    });
    #[cfg(feature = "lmdb")]
    {
        use cacher_store::lmdb::{LmdbOptions, LmdbStore};
        use cacher_store::Durability;
        let dir = tempfile::tempdir().unwrap();
        // No fsync per put: the Redis server above does not persist either.
        let options = LmdbOptions::default().with_durability(Durability::None);
        let lmdb = LmdbStore::open_with(dir.path(), &options).unwrap();
        fill(&lmdb, &value);
        group.bench_function("LmdbStore_durability_none", |b| {
            b.iter(|| run(&lmdb, &ops, &value))
        });
    }
    group.finish();

    // Four client threads at once, each running the whole sequence (4000 ops per iteration).
    let mut group = c.benchmark_group("redis_mixed_4_threads");
    group.throughput(Throughput::Elements(4 * OPS as u64));
    let four = |store: &(dyn Store + Sync)| {
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| run(store, &ops, &value));
            }
        })
    };
    group.bench_function("RedisStore_unix_socket", |b| b.iter(|| four(&unix)));
    #[cfg(feature = "lmdb")]
    {
        use cacher_store::lmdb::{LmdbOptions, LmdbStore};
        use cacher_store::Durability;
        let dir = tempfile::tempdir().unwrap();
        let options = LmdbOptions::default().with_durability(Durability::None);
        let lmdb = LmdbStore::open_with(dir.path(), &options).unwrap();
        fill(&lmdb, &value);
        group.bench_function("LmdbStore_durability_none", |b| b.iter(|| four(&lmdb)));
    }
    group.finish();

    let mut group = c.benchmark_group("redis_hit_400B");
    let plain = RedisStore::open(&server.unix_url(), "bench-hit").unwrap();
    plain.put(b"hit", &value[..400]).unwrap();
    let tiered = Tiered::new(plain.clone(), 1 << 20);
    black_box(tiered.get(b"hit").unwrap());
    group.bench_function("RedisStore_get", |b| {
        b.iter(|| black_box(plain.get(b"hit").unwrap()))
    });
    group.bench_function("Tiered_memory_over_Redis_get", |b| {
        b.iter(|| black_box(tiered.get(b"hit").unwrap()))
    });
    group.finish();
}

criterion_group!(benches, mixed_workload);

const CHILD_ENV: &str = "CACHER_REDIS_BENCH_CHILD";
const DISKCACHE_DRIVER: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/peers_diskcache.py");
/// Operations per process in the process table: the fixed sequence 50 times, so each process
/// runs long (0.1–3 s) against the skew of their starts, and their runs overlap.
const ROUNDS: usize = 50;

/// A child's body: open the store named by `spec` (`redis URL` or `lmdb DIR`), wait for the
/// start file, run the workload `ROUNDS` times, print `ops nanoseconds`.
fn child(spec: &str) {
    let (kind, target) = spec.split_once(' ').expect("kind and target");
    let go = std::env::var("CACHER_REDIS_BENCH_GO").unwrap();
    let store: Box<dyn Store> = match kind {
        "redis" => Box::new(RedisStore::open(target, "bench-processes").unwrap()),
        #[cfg(feature = "lmdb")]
        "lmdb" => {
            use cacher_store::lmdb::{LmdbOptions, LmdbStore};
            let options = LmdbOptions::default().with_durability(cacher_store::Durability::None);
            Box::new(LmdbStore::open_with(target, &options).unwrap())
        }
        other => panic!("unknown store kind {other}"),
    };
    let ops = workload();
    let value = vec![0xa5u8; 495];
    println!("ready");
    while !std::path::Path::new(&go).exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let start = Instant::now();
    for _ in 0..ROUNDS {
        run(&*store, &ops, &value);
    }
    println!("{} {}", ROUNDS * OPS, start.elapsed().as_nanos());
}

/// Mean ns per operation of each of `n` processes of `kind`.
fn processes(kind: &str, target: &str, n: usize) -> Vec<f64> {
    use std::io::{BufRead, BufReader};
    let work = tempfile::tempdir().unwrap();
    let go = work.path().join("go");
    let mut children: Vec<Child> = (0..n)
        .map(|i| {
            let mut cmd = if kind == "diskcache" {
                let mut c = Command::new("python3");
                c.arg(DISKCACHE_DRIVER)
                    .arg(target)
                    .arg((ROUNDS * OPS).to_string())
                    .arg(i.to_string())
                    .arg(work.path().join(format!("out-{i}")))
                    .arg(&go);
                c
            } else {
                let mut c = Command::new(std::env::current_exe().unwrap());
                c.env(CHILD_ENV, format!("{kind} {target}"))
                    .env("CACHER_REDIS_BENCH_GO", &go);
                c
            };
            cmd.stdout(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let mut lines: Vec<_> = children
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().unwrap()).lines())
        .collect();
    if kind != "diskcache" {
        for l in &mut lines {
            assert_eq!(l.next().unwrap().unwrap(), "ready");
        }
    } else {
        // diskcache's driver opens its cache, then polls for the start file itself.
        std::thread::sleep(Duration::from_millis(500));
    }
    std::fs::write(&go, b"").unwrap();
    let mut means = Vec::new();
    for (i, (mut child, mut l)) in children.into_iter().zip(lines).enumerate() {
        if kind == "diskcache" {
            assert!(child.wait().unwrap().success());
            let out = std::fs::read_to_string(work.path().join(format!("out-{i}"))).unwrap();
            let ns: Vec<f64> = out
                .lines()
                .filter_map(|l| l.split_once(' '))
                .map(|(_, ns)| ns.parse::<f64>().unwrap())
                .collect();
            means.push(ns.iter().sum::<f64>() / ns.len() as f64);
        } else {
            let line = l.next().unwrap().unwrap();
            assert!(child.wait().unwrap().success());
            let (ops, ns) = line.split_once(' ').unwrap();
            means.push(ns.parse::<f64>().unwrap() / ops.parse::<f64>().unwrap());
        }
    }
    means
}

/// The process table: 1 and 4 processes on each engine, printed as Markdown rows.
fn process_table() {
    let Some(server) = start_server() else {
        return;
    };
    let value = vec![0xa5u8; 495];
    let redis = RedisStore::open(&server.unix_url(), "bench-processes").unwrap();
    fill(&redis, &value);
    let dir = tempfile::tempdir().unwrap();
    let mut engines: Vec<(&str, String)> = vec![("redis", server.unix_url())];
    #[cfg(feature = "lmdb")]
    {
        use cacher_store::lmdb::{LmdbOptions, LmdbStore};
        let options = LmdbOptions::default().with_durability(cacher_store::Durability::None);
        let path = dir.path().join("lmdb");
        fill(&LmdbStore::open_with(&path, &options).unwrap(), &value);
        engines.push(("lmdb", path.to_str().unwrap().to_string()));
    }
    let diskcache = dir.path().join("diskcache");
    let has_diskcache = Command::new("python3")
        .arg(DISKCACHE_DRIVER)
        .arg("--fill")
        .arg(&diskcache)
        .status()
        .is_ok_and(|s| s.success());
    if has_diskcache {
        engines.push(("diskcache", diskcache.to_str().unwrap().to_string()));
    } else {
        println!("processes: diskcache skipped: python3 with diskcache is not available");
    }
    println!("| engine | processes | mean per op (each process) | all processes together |");
    println!("|---|---:|---:|---:|");
    for (kind, target) in &engines {
        for n in [1usize, 4] {
            let means = processes(kind, target, n);
            let mean = means.iter().sum::<f64>() / means.len() as f64;
            let throughput: f64 = means.iter().map(|ns| 1e9 / ns).sum();
            println!(
                "| {kind} | {n} | {:.2} µs | {:.0} K ops/s |",
                mean / 1000.0,
                throughput / 1000.0
            );
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    let only_processes = std::env::args().any(|a| a == "processes");
    if !only_processes {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    if only_processes || std::env::args().all(|a| !a.starts_with("redis_")) {
        process_table();
    }
}
