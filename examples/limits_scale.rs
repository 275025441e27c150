//! The 1,000,000-entry figures of `benches/RESULTS.md` (issue 18), one step per process so
//! each peak RSS (`VmHWM`) is the step's own:
//!
//! ```text
//! cargo run --release --example limits_scale -- fill   DIR 1000000 [lmdb|hybrid|log|dir]
//! cargo run --release --example limits_scale -- open   DIR 1000000 [lmdb|hybrid]   # accounting
//! cargo run --release --example limits_scale -- scan   DIR 1000000 [lmdb|hybrid]   # hidden: the old path
//! cargo run --release --example limits_scale -- evict  DIR 1000000 [lmdb|hybrid]   # 10 % down
//! cargo run --release --example limits_scale -- forget DIR 1000000 lmdb   # as if written before
//! cargo run --release --example limits_scale -- open   DIR 1000000 lmdb   # the one-time count
//! cargo run --release --example limits_scale -- keep-all DIR 1000000 lmdb   # all three orders, as v1
//! cargo run --release --example limits_scale -- put    DIR 20000 lmdb off|on|on-all|raw
//! cargo run --release --example limits_scale -- memo   DIR 100000 lmdb no-limit|limit
//! cargo run --release --example limits_scale -- memo-ab DIR 10000 lmdb [THREADS]   # both, interleaved
//! ```
//! `log` is a `LogStore` at `DIR/store.log` (its own accounting: `open` against `scan`, the
//! per-handle books it had before); `dir` a `DirStore` at `DIR` (its `acct/` sidecar's
//! accounting: `open` against `scan`, which is what a limited open on a DirStore did before
//! the sidecar, and still does without the `lmdb` feature). The store is opened before the clock starts, so `open`/`scan` time the
//! `Cache::build()` alone; the peak RSS includes the store (a LogStore's index).
//! Values are 200 B (`raw` format), `Durability::None`. `memo` makes N memoized hits of one
//! key (100 B value), with or without `max_entries`, for an instruction count under
//! `valgrind --tool=callgrind`: run it at N and at 0 and subtract, so the setup drops out.
//! `put` writes N 200 B values over 10,000 keys
//! through `LmdbStore::put` with accounting off, on (one order), on keeping all three orders
//! (as version 1 did), or as bare heed puts into a database of the same environment, for the
//! same subtraction under callgrind. `memo-ab` times both on one store in alternating rounds of N hits (41 rounds each) and
//! prints the medians and their ratio, so a change of machine load hits both alike.

use std::sync::Arc;
use std::time::Instant;

use cacher::store::{DirStore, Durability, HybridStore, LmdbStore, LogStore, Store};
use cacher::Cache;

#[path = "../benches/support/limits_fill.rs"]
mod limits_fill;
use limits_fill::Hidden;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: limits_scale fill|open|scan|evict DIR N [lmdb|hybrid]";
    let (step, dir, n) = match &args[1..] {
        [s, d, n, ..] => (s.as_str(), d.clone(), n.parse::<u64>()?),
        _ => return Err(usage.into()),
    };
    let kind = args.get(4).map_or("lmdb", String::as_str);
    let store: Arc<dyn Store> = match kind {
        "hybrid" => Arc::new(
            HybridStore::options()
                .durability(Durability::None)
                .open(&dir)?,
        ),
        "log" => {
            std::fs::create_dir_all(&dir)?;
            Arc::new(
                LogStore::options()
                    .durability(Durability::None)
                    .open(std::path::Path::new(&dir).join("store.log"))?,
            )
        }
        "dir" => Arc::new(
            DirStore::options()
                .durability(Durability::None)
                .open(&dir)?,
        ),
        _ => Arc::new(LmdbStore::open_with(
            &dir,
            &cacher::store::lmdb::LmdbOptions::default().with_durability(Durability::None),
        )?),
    };
    let start = Instant::now();
    match step {
        "fill" => {
            // Counted as written (`forget` + `open` measures the one-time count instead).
            limits_fill::fill(&store, n)?;
        }
        "open" => {
            let cache = Cache::builder().store(store).max_entries(n).build()?;
            let took = start.elapsed();
            println!(
                "open (accounting): {took:?}, peak RSS {} KiB",
                peak_rss_kib()
            );
            drop(cache);
            return Ok(());
        }
        "scan" => {
            let cache = Cache::builder()
                .store(Hidden(store))
                .max_entries(n)
                .build()?;
            let took = start.elapsed();
            println!("open (scan): {took:?}, peak RSS {} KiB", peak_rss_kib());
            drop(cache);
            return Ok(());
        }
        "forget" => {
            let lmdb = LmdbStore::open(&dir)?;
            let env = lmdb.env().clone();
            let db = env.create_database("cacher-store-acct")?;
            env.write(|w| db.clear(w))?;
            drop(lmdb);
            drop(store);
            LmdbStore::from_env(env)?;
        }
        "memo" => {
            let mut builder = Cache::builder().store(store).format("raw");
            if args.get(5).map(String::as_str) == Some("limit") {
                builder = builder.max_entries(1_000_000);
            }
            let cache = builder.build()?;
            let value = serde_bytes::ByteBuf::from(vec![0x5a; 100]);
            let memo = cache
                .memoize("blob")
                .wrap(move |(_id, _v): (u64, u32)| value.clone())?;
            let args = (42u64, 7u32);
            memo.call(args);
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(memo.call(std::hint::black_box(args)));
            }
            let per = t.elapsed().as_nanos() / u128::from(n.max(1));
            println!("memo {n} hits: {per} ns/hit");
            return Ok(());
        }
        "put" => {
            let lmdb = LmdbStore::open_with(
                format!("{dir}-put"),
                &cacher::store::lmdb::LmdbOptions::default().with_durability(Durability::None),
            )?;
            let variant = args.get(5).map_or("on", String::as_str);
            match variant {
                "on" => cacher::store::accounting::Accounting::enable(&lmdb)?,
                "on-all" => {
                    use cacher::store::accounting::{Accounting, Order};
                    for order in [Order::Lru, Order::Fifo, Order::Lfu] {
                        lmdb.keep_order(order, &mut |_| {})?;
                    }
                }
                _ => {}
            }
            let raw = lmdb.env().create_database("bench-raw")?;
            let value = vec![0x5a; 200];
            let keys: Vec<Vec<u8>> = (0..10_000u32)
                .map(|i| format!("key-{i:06}").into_bytes())
                .collect();
            for i in 0..n as usize {
                let key = &keys[i % keys.len()];
                if variant == "raw" {
                    lmdb.env().write(|w| raw.put(w, key, &value))?;
                } else {
                    lmdb.put(key, &value)?;
                }
            }
        }
        "keep-all" => {
            // What a store of accounting version 1 kept: every order, updated by every write.
            let acct = store.accounting().ok_or("no accounting")?;
            for order in [
                cacher::store::accounting::Order::Fifo,
                cacher::store::accounting::Order::Lfu,
            ] {
                acct.keep_order(order, &mut |_| {})?;
            }
        }
        "memo-ab" => {
            let value = serde_bytes::ByteBuf::from(vec![0x5a; 100]);
            let open = |limit: Option<u64>| -> std::result::Result<_, Box<dyn std::error::Error>> {
                let mut builder = Cache::builder().store(store.clone()).format("raw");
                if let Some(m) = limit {
                    builder = builder.max_entries(m);
                }
                let value = value.clone();
                let memo = builder
                    .build()?
                    .memoize("blob")
                    .wrap(move |(_id, _v): (u64, u32)| value.clone())?;
                memo.call((42u64, 7u32));
                Ok(memo)
            };
            let (plain, limited) = (open(None)?, open(Some(1_000_000))?);
            // Threads hitting the one key at once (the read log is one mutex per handle).
            let threads: u64 = args.get(5).map_or(Ok(1), |t| t.parse())?;
            let mut times = [Vec::new(), Vec::new()];
            for round in 0..82 {
                let memo = if round % 2 == 0 { &plain } else { &limited };
                let t = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        s.spawn(|| {
                            for _ in 0..n {
                                std::hint::black_box(
                                    memo.call(std::hint::black_box((42u64, 7u32))),
                                );
                            }
                        });
                    }
                });
                let hits = (n * threads).max(1) as f64;
                times[round % 2].push(t.elapsed().as_nanos() as f64 / hits);
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (a, b) = (median(&mut times[0]), median(&mut times[1]));
            println!(
                "memo hit, {threads} thread(s), median of 41 rounds of {n} each: no limit {a:.0} ns, max_entries {b:.0} ns a hit, ratio {:.3}",
                b / a
            );
            return Ok(());
        }
        "dir-put" => {
            use cacher::store::accounting::Accounting;
            let open = |name: &str| {
                DirStore::options()
                    .durability(Durability::None)
                    .open(std::path::Path::new(&dir).join(name))
            };
            let (plain, counted) = (open("plain")?, open("counted")?);
            counted.enable()?;
            let value = vec![0x5a; 200];
            let keys: Vec<Vec<u8>> = (0..1_000u32)
                .map(|i| format!("key-{i:06}").into_bytes())
                .collect();
            let rounds = 21;
            let per_round = (n / rounds).max(1);
            let mut times = [Vec::new(), Vec::new(), Vec::new()];
            let missing = std::path::Path::new(&dir).join("plain").join("acct");
            for round in 0..rounds * 3 {
                let t = Instant::now();
                for i in 0..per_round as usize {
                    let key = &keys[i % keys.len()];
                    match round % 3 {
                        0 => plain.put(key, &value)?,
                        1 => counted.put(key, &value)?,
                        _ => {
                            std::hint::black_box(std::fs::symlink_metadata(&missing).is_err());
                        }
                    }
                }
                times[(round % 3) as usize].push(t.elapsed().as_nanos() as f64 / per_round as f64);
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let [a, b, c] = &mut times;
            let (a, b, c) = (median(a), median(b), median(c));
            println!(
                "DirStore put, median of {rounds} rounds of {per_round}: without accounting {a:.0} ns, with {b:.0} ns (ratio {:.2}); statx of a missing acct/ {c:.0} ns",
                b / a
            );
            return Ok(());
        }
        "evict" => {
            let cache = Cache::builder().store(store).max_entries(n).build()?;
            let opened = start.elapsed();
            let acct = cache.store().accounting().ok_or("no accounting")?;
            let plan = cacher::store::accounting::EvictPlan::new(
                Some(n - n / 10),
                None,
                cacher::store::accounting::Order::Lru,
            );
            let t = Instant::now();
            let gone = acct.evict(&plan, &mut |_| {})?;
            println!(
                "evict {gone} of {n}: {:?} (open {opened:?}), peak RSS {} KiB",
                t.elapsed(),
                peak_rss_kib()
            );
            return Ok(());
        }
        _ => return Err(usage.into()),
    }
    println!(
        "{step}: {:?}, peak RSS {} KiB",
        start.elapsed(),
        peak_rss_kib()
    );
    Ok(())
}
