//! Four real processes share one `LmdbStore` at once; one is SIGKILLed in the middle of a
//! write transaction (while also holding a read transaction). Afterwards the environment opens
//! cleanly, holds exactly the writes the processes logged as committed, and no reader slot is
//! left behind.
//!
//! The test binary re-executes itself (`std::env::current_exe()`) with `CACHER_LMDB_CHILD`
//! set to select the child role. Each child logs every write to its own log file: an intent
//! line before the write and a commit line after `put`/`delete` returned. The log lines are
//! written with one `write(2)` each and not fsynced: a SIGKILL does not lose what the kernel
//! already has, and power loss is not what this test simulates (for the same reason the
//! children use `Durability::None`, except child 0 which syncs every commit).

#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cacher_store::lmdb::{LmdbOptions, LmdbStore};
use cacher_store::{Durability, Store};

const CHILD_ENV: &str = "CACHER_LMDB_CHILD";
const DIR_ENV: &str = "CACHER_LMDB_DIR";
const CHILDREN: u64 = 4;
const OPS: u64 = 10_000;
/// The child that is killed, and the operation at which it blocks inside a write transaction.
const VICTIM: u64 = 3;
const VICTIM_BLOCKS_AT: u64 = 4_000;
const OWN_KEYS: u64 = 150;
const SHARED_KEYS: u64 = 8;
/// Printed by a child once it is blocked where the parent should kill it.
const BLOCKED: &str = "CACHER-CHILD-BLOCKED";

/// Every process opens with the same options; the map starts far smaller than the data.
fn options(child: u64) -> LmdbOptions {
    LmdbOptions::default()
        .with_initial_map_size(256 << 10)
        .with_durability(if child == 0 {
            Durability::Flush
        } else {
            Durability::None
        })
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The value written by `child` at operation `seq` under `key`: a header naming its origin,
/// then bytes derived from it, `len` bytes in all (at least the header).
fn value(child: u64, seq: u64, key: &str, len: usize) -> Vec<u8> {
    let mut v = format!("{child}:{seq}:{key}|").into_bytes();
    let mut rng =
        Rng((child << 48 ^ seq << 8 ^ key.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    while v.len() < len {
        v.push(rng.next() as u8);
    }
    v
}

/// Parses a value's header back to `(child, seq, key)`.
fn origin(v: &[u8]) -> Option<(u64, u64, String)> {
    let end = v.iter().position(|&b| b == b'|')?;
    let header = std::str::from_utf8(&v[..end]).ok()?;
    let mut parts = header.splitn(3, ':');
    let child = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    Some((child, seq, parts.next()?.to_string()))
}

fn own_key(child: u64, n: u64) -> String {
    if n.is_multiple_of(10) {
        // Past LMDB's 511-byte key limit: stored under its hash.
        format!("c{child}-k{n}-{}", "L".repeat(600))
    } else {
        format!("c{child}-k{n}")
    }
}

fn value_len(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=69 => 16 + rng.below(300) as usize,
        70..=94 => 4096,
        95..=98 => (32 << 10) + rng.below(32 << 10) as usize,
        _ => (128 << 10) + rng.below(128 << 10) as usize,
    }
}

fn log_line(log: &mut std::fs::File, line: String) {
    log.write_all(line.as_bytes())
        .expect("child: writing the log");
}

/// The body of child `child`: `OPS` random operations on its own keys and the shared keys,
/// checking every read against what it wrote.
fn run_child(child: u64, dir: &Path) {
    let store = LmdbStore::open_with(dir.join("env"), &options(child)).expect("child: open");
    let mut log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(dir.join(format!("log-{child}")))
        .expect("child: open log");
    let mut rng = Rng(0x5EED + child * 7919);
    // What this child committed to its own keys (no one else writes them).
    let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for seq in 0..OPS {
        if child == VICTIM && seq == VICTIM_BLOCKS_AT {
            block_inside_a_write_transaction(&store, &mut log, seq);
        }
        match rng.below(100) {
            0..=39 => {
                let key = own_key(child, rng.below(OWN_KEYS));
                let v = value(child, seq, &key, value_len(&mut rng));
                log_line(&mut log, format!("I {seq} P {key} {}\n", v.len()));
                store.put(key.as_bytes(), &v).expect("child: put");
                log_line(&mut log, format!("C {seq}\n"));
                model.insert(key, v);
            }
            40..=47 => {
                let entries: Vec<(String, Vec<u8>)> = (0..3)
                    .map(|_| {
                        let key = own_key(child, rng.below(OWN_KEYS));
                        let len = 16 + rng.below(3000) as usize;
                        let v = value(child, seq, &key, len);
                        (key, v)
                    })
                    .collect();
                let mut line = format!("I {seq} M");
                for (k, v) in &entries {
                    line += &format!(" {k} {}", v.len());
                }
                log_line(&mut log, line + "\n");
                let refs: Vec<(&[u8], &[u8])> = entries
                    .iter()
                    .map(|(k, v)| (k.as_bytes(), &v[..]))
                    .collect();
                store.put_many(&refs).expect("child: put_many");
                log_line(&mut log, format!("C {seq}\n"));
                model.extend(entries);
            }
            48..=54 => {
                let key = format!("shared-{}", rng.below(SHARED_KEYS));
                let v = value(child, seq, &key, 16 + rng.below(2000) as usize);
                log_line(&mut log, format!("I {seq} S {key} {}\n", v.len()));
                store.put(key.as_bytes(), &v).expect("child: put shared");
                log_line(&mut log, format!("C {seq}\n"));
            }
            55..=64 => {
                let key = own_key(child, rng.below(OWN_KEYS));
                log_line(&mut log, format!("I {seq} D {key} 0\n"));
                let was = store.delete(key.as_bytes()).expect("child: delete");
                log_line(&mut log, format!("C {seq}\n"));
                assert_eq!(
                    was,
                    model.remove(&key).is_some(),
                    "child {child}: delete of {key}"
                );
            }
            65..=89 => {
                let key = own_key(child, rng.below(OWN_KEYS));
                let got = store.get(key.as_bytes()).expect("child: get");
                assert!(
                    got.as_ref() == model.get(&key),
                    "child {child}: get of {key} differs from what it wrote"
                );
            }
            _ => {
                let key = format!("shared-{}", rng.below(SHARED_KEYS));
                if let Some(v) = store.get(key.as_bytes()).expect("child: get shared") {
                    let (c, s, k) = origin(&v).expect("child: a shared value without header");
                    assert_eq!(k, key);
                    assert!(v == value(c, s, &k, v.len()), "child {child}: torn {key}");
                }
            }
        }
    }
    eprintln!("child {child}: {:?}", store.env().stats());
}

/// The victim's last act: a read transaction held in a second thread (a reader slot), and a
/// write transaction (LMDB's writer lock) with an uncommitted put in it; then it waits to be
/// killed.
fn block_inside_a_write_transaction(store: &LmdbStore, log: &mut std::fs::File, seq: u64) -> ! {
    let (reading, read_open) = std::sync::mpsc::channel();
    let reader_store = store.clone();
    std::thread::spawn(move || {
        reader_store
            .env()
            .read(|_rtxn| -> Result<(), cacher_store::lmdb::heed::Error> {
                reading.send(()).expect("victim: signal");
                loop {
                    std::thread::park();
                }
            })
            .expect("victim: read")
    });
    read_open.recv().expect("victim: reader thread");
    let key = own_key(VICTIM, 1);
    let v = value(VICTIM, seq, &key, 100);
    log_line(log, format!("I {seq} P {key} {}\n", v.len()));
    let db = store.raw_database();
    let mut stored = vec![0u8]; // the plain-key tag of LmdbStore's layout
    stored.extend_from_slice(key.as_bytes());
    store
        .env()
        .write(|wtxn| -> Result<(), cacher_store::lmdb::heed::Error> {
            db.put(wtxn, &stored, &v)?;
            say_blocked();
            loop {
                std::thread::park();
            }
        })
        .expect("victim: write");
    unreachable!("the write above never returns")
}

/// Tells the parent (reading our stdout) that we are blocked. Written to the file descriptor
/// directly: the test harness may capture `println!` output.
fn say_blocked() {
    let mut out = std::io::stdout().lock();
    out.write_all(format!("{BLOCKED}\n").as_bytes())
        .and_then(|()| out.flush())
        .expect("writing to stdout");
}

/// One logged write: the operation, its keys with value lengths, and whether it committed.
struct Intent {
    seq: u64,
    kind: char,
    keys: Vec<(String, usize)>,
    committed: bool,
}

fn read_log(path: &Path) -> Vec<Intent> {
    let text = std::fs::read_to_string(path).expect("reading a child's log");
    let mut intents: Vec<Intent> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["I", seq, kind, rest @ ..] => intents.push(Intent {
                seq: seq.parse().expect("log: seq"),
                kind: kind.chars().next().expect("log: kind"),
                keys: rest
                    .chunks(2)
                    .map(|kv| (kv[0].to_string(), kv[1].parse().expect("log: len")))
                    .collect(),
                committed: false,
            }),
            ["C", seq] => {
                let last = intents.last_mut().expect("log: commit without intent");
                assert_eq!(last.seq, seq.parse::<u64>().expect("log: seq"));
                last.committed = true;
            }
            _ => panic!("log {}: unreadable line {line:?}", path.display()),
        }
    }
    intents
}

fn spawn_child(role: &str, test_name: &str, dir: &Path, piped: bool) -> std::process::Child {
    Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--exact", test_name, "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, role)
        .env(DIR_ENV, dir)
        .stdout(if piped { Stdio::piped() } else { Stdio::null() })
        .spawn()
        .expect("spawning a child process")
}

/// Reads the child's stdout until it says it is blocked, then SIGKILLs it.
fn kill_once_blocked(mut child: std::process::Child) {
    let stdout = child.stdout.take().expect("piped stdout");
    let blocked = BufReader::new(stdout)
        .lines()
        .any(|l| l.expect("reading the child's stdout").ends_with(BLOCKED));
    assert!(blocked, "the child exited before blocking");
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("waiting for the killed child");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "the child died of {status:?}");
}

fn child_role() -> Option<(String, PathBuf)> {
    let role = std::env::var(CHILD_ENV).ok()?;
    let dir = std::env::var_os(DIR_ENV).expect("child without a directory");
    Some((role, PathBuf::from(dir)))
}

#[test]
fn four_processes_share_one_store_and_a_sigkill_loses_only_the_open_transaction() {
    if let Some((role, dir)) = child_role() {
        if let Some(n) = role.strip_prefix("writer-") {
            run_child(n.parse().expect("child number"), &dir);
        }
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let name = "four_processes_share_one_store_and_a_sigkill_loses_only_the_open_transaction";
    let mut children: Vec<_> = (0..CHILDREN)
        .map(|n| spawn_child(&format!("writer-{n}"), name, dir.path(), n == VICTIM))
        .collect();
    let victim = children.remove(VICTIM as usize);
    kill_once_blocked(victim);
    for mut child in children {
        let status = child.wait().expect("waiting for a child");
        assert!(status.success(), "a surviving child failed: {status:?}");
    }

    let store = LmdbStore::open_with(dir.path().join("env"), &options(1)).expect("reopen");
    eprintln!(
        "stale readers cleared on open: {}, map size now {} bytes, data file {} bytes",
        store.env().stale_readers_cleared_on_open(),
        store.env().map_size(),
        store.env().heed().real_disk_size().expect("file size")
    );
    assert_eq!(
        store.env().clear_stale_readers().expect("reader check"),
        0,
        "a reader slot was left behind"
    );
    assert!(
        store.env().map_size() > 256 << 10,
        "the map never grew past its initial size"
    );
    // The victim died holding a reader slot; left there, it pins every page freed after its
    // snapshot and the file grows by every later write (it reached ~350 MiB before growth
    // learned to clear stale readers first; it stays near 16 MiB now).
    let file = store.env().heed().real_disk_size().expect("file size");
    assert!(
        file < 128 << 20,
        "the data file grew to {file} bytes: freed pages were not reused"
    );

    // The expected contents, from the logs.
    let mut own: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    let mut shared_written: BTreeMap<String, BTreeSet<Vec<u8>>> = BTreeMap::new();
    let mut shared_committed: BTreeSet<String> = BTreeSet::new();
    let mut total_ops = 0;
    for child in 0..CHILDREN {
        let intents = read_log(&dir.path().join(format!("log-{child}")));
        for (i, intent) in intents.iter().enumerate() {
            let last = i + 1 == intents.len();
            if !intent.committed {
                assert!(
                    child == VICTIM && last && intent.seq == VICTIM_BLOCKS_AT,
                    "child {child}: write {} never committed",
                    intent.seq
                );
                // The transaction the victim died in: nothing of it may be visible, so it is
                // left out of the model.
                continue;
            }
            for (key, len) in &intent.keys {
                let v = value(child, intent.seq, key, *len);
                match intent.kind {
                    'P' | 'M' => {
                        own.insert(key.clone(), Some(v));
                    }
                    'D' => {
                        own.insert(key.clone(), None);
                    }
                    'S' => {
                        shared_committed.insert(key.clone());
                        shared_written.entry(key.clone()).or_default().insert(v);
                    }
                    k => panic!("log: unknown kind {k}"),
                }
            }
        }
        total_ops += intents.len();
    }
    assert!(total_ops > 10_000, "only {total_ops} writes were logged");
    eprintln!("{total_ops} writes logged by {CHILDREN} processes");

    let mut present = 0u64;
    for (key, expected) in &own {
        let got = store.get(key.as_bytes()).expect("get");
        assert!(
            got == *expected,
            "{key}: holds {:?} bytes, the last committed write left {:?}",
            got.as_ref().map(Vec::len),
            expected.as_ref().map(Vec::len)
        );
        present += u64::from(expected.is_some());
    }
    for key in &shared_committed {
        let got = store.get(key.as_bytes()).expect("get").expect("shared key");
        assert!(
            shared_written[key].contains(&got),
            "{key} holds a value no one wrote"
        );
        present += 1;
    }
    for key in store.keys().expect("keys") {
        let key = String::from_utf8(key.expect("key")).expect("utf-8 key");
        assert!(
            own.contains_key(&key) || shared_committed.contains(&key),
            "{key} is present but no committed write put it there"
        );
    }
    assert_eq!(store.len().expect("len"), present);
}

/// A reader table with a single slot, so a slot left by a dead process fills it.
fn one_reader() -> LmdbOptions {
    options(1).with_max_readers(1)
}

#[test]
fn a_reader_slot_left_by_a_killed_process_is_cleared_when_readers_are_full() {
    if let Some((role, dir)) = child_role() {
        if role == "reader" {
            let store = LmdbStore::open_with(dir.join("env"), &one_reader()).expect("open");
            store
                .env()
                .read(|_rtxn| -> Result<(), cacher_store::lmdb::heed::Error> {
                    say_blocked();
                    loop {
                        std::thread::park();
                    }
                })
                .expect("read");
        }
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // The parent keeps the environment open throughout: when no process has it open, LMDB
    // resets the whole reader table at the next open, and there would be no stale slot left
    // to clear. Reader slots are thread-local (a thread keeps its slot until it exits), so
    // the open and the put, which read, run in a thread that has exited (freeing the only
    // slot) before the child claims it.
    let env_dir = dir.path().join("env");
    let store = std::thread::spawn(move || {
        let store = LmdbStore::open_with(env_dir, &one_reader()).expect("create");
        store.put(b"k", b"v").expect("put");
        store
    })
    .join()
    .expect("opening thread");
    let name = "a_reader_slot_left_by_a_killed_process_is_cleared_when_readers_are_full";
    kill_once_blocked(spawn_child("reader", name, dir.path(), true));
    match store.env().heed().read_txn() {
        Err(cacher_store::lmdb::heed::Error::Mdb(
            cacher_store::lmdb::heed::MdbError::ReadersFull,
        )) => {}
        other => panic!(
            "expected the dead child to hold the only slot, got {:?}",
            other.err()
        ),
    }
    // The only slot belongs to the dead child: this read hits MDB_READERS_FULL, clears the
    // stale slot and is retried.
    assert_eq!(store.get(b"k").expect("get").as_deref(), Some(&b"v"[..]));
    assert_eq!(store.env().clear_stale_readers().expect("reader check"), 0);
}

/// Issue 15: opening an existing store ran two write transactions, so a process that only
/// wanted to read waited for LMDB's writer lock. Here a child holds a write transaction open
/// (and never commits) while this process opens the store for the first time and reads it.
/// The open runs in a thread; if it has not finished within a generous bound it is waiting
/// for the writer, and the test fails instead of hanging (no speed is asserted).
#[test]
fn opening_an_existing_store_to_read_it_does_not_wait_for_a_writer() {
    let name = "opening_an_existing_store_to_read_it_does_not_wait_for_a_writer";
    if let Some((role, dir)) = child_role() {
        if role == "writer" {
            let store = LmdbStore::open_with(dir.join("env"), &options(1)).expect("child: open");
            store
                .env()
                .write(|_wtxn| -> Result<(), cacher_store::lmdb::heed::Error> {
                    say_blocked();
                    loop {
                        std::thread::park();
                    }
                })
                .expect("child: write");
        }
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = LmdbStore::open_with(dir.path().join("env"), &options(1)).expect("create");
        store.put(b"k", b"v").expect("put");
    } // closed: the open below is this process's first open of the environment
    let mut child = spawn_child("writer", name, dir.path(), true);
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let blocked = lines
        .by_ref()
        .any(|l| l.expect("reading the child's stdout").ends_with(BLOCKED));
    assert!(
        blocked,
        "the child exited before holding the write transaction"
    );
    let (done, opened) = std::sync::mpsc::channel();
    let env_dir = dir.path().join("env");
    std::thread::spawn(move || {
        let got = LmdbStore::open_with(&env_dir, &options(1))
            .and_then(|store| store.get(b"k"))
            .map_err(|e| e.to_string());
        let _ = done.send(got);
    });
    let outcome = opened.recv_timeout(std::time::Duration::from_secs(30));
    child.kill().expect("SIGKILL");
    child.wait().expect("waiting for the killed child");
    match outcome {
        Ok(got) => assert_eq!(got.expect("open and read").as_deref(), Some(&b"v"[..])),
        Err(_) => panic!("opening the store to read it waited 30 s for the child's writer lock"),
    }
}
