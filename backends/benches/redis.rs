//! RedisStore on a local redis-server (Unix socket and loopback TCP) beside LmdbStore (feature
//! `lmdb`), in one run: the mixed workload of 90 % get / 9 % set / 1 % delete over 100 keys
//! with values of 1–495 B, one client thread and four (threads of one process, each with
//! its own connection from the pool); and a hit through a `Tiered` memory tier in
//! front of Redis against a plain Redis get. The server is started by the bench
//! (`--save "" --appendonly no`) and stopped at its end; without `redis-server` it prints why
//! and measures nothing.
//!
//! `cargo bench -p cacher-store --features redis,lmdb --bench redis -- --warm-up-time 1 --measurement-time 3`

#![allow(
    missing_docs,
    reason = "criterion_main! generates an undocumented main"
)]

use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cacher_store::redis::RedisStore;
use cacher_store::{Store, Tiered};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

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
criterion_main!(benches);
