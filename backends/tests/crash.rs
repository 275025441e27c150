//! Crash safety with real processes (dir, log and, with `lmdb`, LMDB stores): a child writes with `Durability::Flush` and reports each
//! acknowledged put; the parent `SIGKILL`s it at random moments (50 times per disk store),
//! reopens the store and checks that it opens, that every acknowledged put is readable with
//! its exact value (or a later write of the same key), and that no value is one that was
//! never written.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cacher_store::{DirStore, Durability, LogStore, Store};

const KEYS: u64 = 16;
/// A child never writes more than this many values; seq numbers of run `r` start at
/// `r * PER_RUN`, so every value ever written has a distinct seq.
const PER_RUN: u64 = 1_000_000;
const KILLS: u64 = 50;

fn open(kind: &str, dir: &Path) -> Box<dyn Store> {
    match kind {
        "dir" => Box::new(
            DirStore::options()
                .durability(Durability::Flush)
                .open(dir)
                .expect("DirStore opens after a crash"),
        ),
        "log" => Box::new(
            LogStore::options()
                .durability(Durability::Flush)
                .open(dir.join("store.log"))
                .expect("LogStore opens after a crash"),
        ),
        #[cfg(feature = "lmdb")]
        "lmdb" => Box::new(
            cacher_store::LmdbStore::open_with(
                dir,
                &cacher_store::lmdb::LmdbOptions::default()
                    .with_durability(Durability::Flush)
                    .with_initial_map_size(1 << 20),
            )
            .expect("LmdbStore opens after a crash"),
        ),
        other => panic!("unknown store kind {other}"),
    }
}

fn key_of(seq: u64) -> Vec<u8> {
    format!("key/{}", seq % KEYS).into_bytes()
}

/// The exact bytes written for `seq`: a self-describing prefix, then a pattern. Every few
/// values are large (256 KiB) so a kill often lands mid-write.
fn value_of(seq: u64) -> Vec<u8> {
    let len = if seq.is_multiple_of(5) {
        256 << 10
    } else {
        (seq * 7919 % 3000) as usize
    };
    let mut v = format!("seq={seq};").into_bytes();
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    v.extend((0..len).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    v
}

fn seq_in(value: &[u8]) -> Option<u64> {
    let rest = value.strip_prefix(b"seq=")?;
    let end = rest.iter().position(|&b| b == b';')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// Not a test of its own: the body of the child process when `CACHER_CRASH_CHILD` is set
/// (the parent re-executes this test binary with it). Without it, it does nothing.
#[test]
fn crash_child_entry_point() {
    let Ok(kind) = std::env::var("CACHER_CRASH_CHILD") else {
        return;
    };
    let dir = std::env::var("CACHER_CRASH_DIR").unwrap();
    let start: u64 = std::env::var("CACHER_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let store = open(&kind, Path::new(&dir));
    let mut out = std::io::stdout().lock();
    for seq in start..start + PER_RUN {
        store.put(&key_of(seq), &value_of(seq)).unwrap();
        // Only after `put` returned: this write is acknowledged.
        writeln!(out, "ack {seq}").unwrap();
        out.flush().unwrap();
    }
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn crash_many_times(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("{kind}: rng seed {seed}");
    let mut rng = Rng(seed);
    // The highest acknowledged seq per key.
    let mut acked: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut total_acks = 0u64;
    for run in 0..KILLS {
        let start = run * PER_RUN;
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_entry_point",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CACHER_CRASH_CHILD", kind)
            .env("CACHER_CRASH_DIR", dir.path())
            .env("CACHER_CRASH_START", start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(seq) = line.strip_prefix("ack ") {
                    let _ = tx.send(seq.parse::<u64>().unwrap());
                }
            }
        });
        // Kill at a random moment: sometimes while the store is still opening (recovering
        // from the previous kill), usually after some acknowledged writes.
        let mut acks = Vec::new();
        if rng.below(5) > 0 {
            let wanted = 1 + rng.below(40);
            while (acks.len() as u64) < wanted {
                match rx.recv_timeout(Duration::from_secs(20)) {
                    Ok(seq) => acks.push(seq),
                    Err(_) => break,
                }
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        reader.join().unwrap();
        acks.extend(rx.try_iter());
        for seq in acks {
            total_acks += 1;
            let k = key_of(seq);
            let e = acked.entry(k).or_insert(seq);
            *e = (*e).max(seq);
        }

        let store = open(kind, dir.path());
        for entry in store.scan().expect("scan after crash") {
            let (key, value) = entry.expect("entry readable after crash");
            let seq = seq_in(&value)
                .unwrap_or_else(|| panic!("{kind} run {run}: unparseable value under {key:?}"));
            assert_eq!(
                key,
                key_of(seq),
                "{kind} run {run}: value under the wrong key"
            );
            assert!(
                seq < start + PER_RUN,
                "{kind} run {run}: seq from the future"
            );
            assert!(
                value == value_of(seq),
                "{kind} run {run}: torn or mixed value for seq {seq}"
            );
            if let Some(&a) = acked.get(&key) {
                assert!(
                    seq >= a,
                    "{kind} run {run}: acknowledged seq {a} lost, found older {seq}"
                );
            }
        }
        for (key, &a) in &acked {
            let v = store
                .get(key)
                .unwrap()
                .unwrap_or_else(|| panic!("{kind} run {run}: acknowledged key {key:?} lost"));
            assert!(seq_in(&v).unwrap() >= a);
        }
    }
    assert!(
        total_acks > KILLS,
        "{kind}: the children wrote too little to test anything"
    );
}

#[test]
fn dir_store_survives_sigkill_at_random_moments() {
    crash_many_times("dir");
}

#[test]
fn log_store_survives_sigkill_at_random_moments() {
    crash_many_times("log");
}

#[cfg(feature = "lmdb")]
#[test]
fn lmdb_store_survives_sigkill_at_random_moments() {
    crash_many_times("lmdb");
}
