//! The 1,000,000-entry figures of `benches/RESULTS.md` (issue 18), one step per process so
//! each peak RSS (`VmHWM`) is the step's own:
//!
//! ```text
//! cargo run --release --example limits_scale -- fill   DIR 1000000 [lmdb|hybrid]
//! cargo run --release --example limits_scale -- open   DIR 1000000 [lmdb|hybrid]   # accounting
//! cargo run --release --example limits_scale -- scan   DIR 1000000 [lmdb|hybrid]   # hidden: the old path
//! cargo run --release --example limits_scale -- evict  DIR 1000000 [lmdb|hybrid]   # 10 % down
//! cargo run --release --example limits_scale -- forget DIR 1000000 lmdb   # as if written before
//! cargo run --release --example limits_scale -- open   DIR 1000000 lmdb   # the one-time count
//! ```
//! Values are 200 B (`raw` format), `Durability::None`.

use std::sync::Arc;
use std::time::Instant;

use cacher::store::{Durability, HybridStore, LmdbStore, Store};
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
