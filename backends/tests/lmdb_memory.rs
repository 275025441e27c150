//! Large values on `LmdbStore` (issue 9): a 1 GiB `put_reader` peaks under 2x the value
//! (it used to peak at 3 GiB), and a value past LMDB's ~2 GiB write limit is refused up front
//! with an error naming the limit and the stores that can hold it (it used to fail with
//! `Input/output error` after a 6 GiB peak).
//!
//! Peaks are `VmHWM` from `/proc/self/status` in a child process (this binary re-executed with
//! `CACHER_LMDB_MEMORY_CHILD` set), so one test's peak does not pollute another's.

#![cfg(all(feature = "lmdb", target_os = "linux"))]

use std::io::Read;
use std::path::Path;
use std::process::Command;

use cacher_store::lmdb::{LmdbOptions, LmdbStore};
use cacher_store::{Durability, Error, Store};

const CHILD_ENV: &str = "CACHER_LMDB_MEMORY_CHILD";
const DIR_ENV: &str = "CACHER_LMDB_MEMORY_DIR";
const GIB: u64 = 1 << 30;

fn options() -> LmdbOptions {
    LmdbOptions::default().with_durability(Durability::None)
}

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// `len` bytes of a cheap pattern, generated as they are read.
struct Pattern {
    at: u64,
    len: u64,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // The pattern copied one period at a time (fast enough unoptimised).
        const PERIOD: [u8; 251] = {
            let mut p = [0u8; 251];
            let mut i = 0;
            while i < 251 {
                p[i] = i as u8;
                i += 1;
            }
            p
        };
        let n = buf.len().min((self.len - self.at) as usize);
        let mut done = 0;
        while done < n {
            let phase = ((self.at + done as u64) % 251) as usize;
            let take = (n - done).min(251 - phase);
            buf[done..done + take].copy_from_slice(&PERIOD[phase..phase + take]);
            done += take;
        }
        self.at += n as u64;
        Ok(n)
    }
}

/// The child's work; prints `peak=<bytes>` and a `result=` line for the parent.
fn child(role: &str, dir: &Path) {
    let store = LmdbStore::open_with(dir, &options()).unwrap();
    match role {
        "put-1gib" => {
            let written = store
                .put_reader(b"big", &mut Pattern { at: 0, len: GIB })
                .unwrap();
            println!("peak={}", peak_rss_bytes());
            assert_eq!(written, GIB);
            let mut ok = false;
            store
                .with_value(b"big", &mut |v| {
                    ok = v.len() as u64 == GIB && v[12345] == (12345 % 251) as u8;
                })
                .unwrap();
            println!("result={ok}");
        }
        "put-3gib" => {
            let err = store
                .put_reader(
                    b"huge",
                    &mut Pattern {
                        at: 0,
                        len: 3 * GIB,
                    },
                )
                .unwrap_err();
            println!("peak={}", peak_rss_bytes());
            println!("result={}", matches!(err, Error::InvalidArgument { .. }));
            println!("message={err}");
            assert_eq!(store.get(b"huge").unwrap(), None);
        }
        other => panic!("unknown role {other}"),
    }
}

/// Runs this test binary as a child in `role`; returns its stdout lines.
fn run_child(role: &str, test: &str) -> Vec<String> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, role)
        .env(DIR_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "child {role} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_string).collect()
}

fn field<'a>(lines: &'a [String], name: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| Some(&l[l.find(&format!("{name}="))? + name.len() + 1..]))
        .unwrap_or_else(|| panic!("no {name}= line in {lines:?}"))
}

/// In the child, does its role and returns true.
fn as_child() -> bool {
    match std::env::var(CHILD_ENV) {
        Ok(role) => {
            child(&role, Path::new(&std::env::var(DIR_ENV).unwrap()));
            true
        }
        Err(_) => false,
    }
}

#[test]
fn put_reader_of_1_gib_peaks_under_twice_the_value() {
    if as_child() {
        return;
    }
    let lines = run_child(
        "put-1gib",
        "put_reader_of_1_gib_peaks_under_twice_the_value",
    );
    let peak: u64 = field(&lines, "peak").parse().unwrap();
    eprintln!("put_reader of 1 GiB: VmHWM {} MiB", peak >> 20);
    assert_eq!(field(&lines, "result"), "true");
    assert!(peak < 2 * GIB, "peak RSS {} MiB", peak >> 20);
}

#[test]
fn a_stream_past_the_lmdb_limit_is_refused_naming_the_limit_and_other_stores() {
    if as_child() {
        return;
    }
    let lines = run_child(
        "put-3gib",
        "a_stream_past_the_lmdb_limit_is_refused_naming_the_limit_and_other_stores",
    );
    let peak: u64 = field(&lines, "peak").parse().unwrap();
    eprintln!("put_reader of 3 GiB (refused): VmHWM {} MiB", peak >> 20);
    assert_eq!(field(&lines, "result"), "true", "{lines:?}");
    let message = field(&lines, "message");
    assert!(
        message.contains("limit") && message.contains("DirStore") && message.contains("LogStore"),
        "{message}"
    );
    assert!(peak < 256 << 20, "peak RSS {} MiB", peak >> 20);
}

#[test]
fn a_slice_past_the_lmdb_limit_is_refused_before_anything_is_written() {
    // A 3 GiB sparse file, mapped: nothing is read unless the store touches the bytes.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let sparse = dir.path().join("sparse");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(3 * GIB)
        .unwrap();
    let file = std::fs::File::open(&sparse).unwrap();
    // SAFETY: a private file of this test, not modified while mapped.
    #[expect(unsafe_code, reason = "mapping a test's own sparse file (see SAFETY)")]
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let store = LmdbStore::open_with(dir.path().join("store"), &options()).unwrap();
    let err = store.put(b"huge", &map).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(err.to_string().contains("DirStore"), "{err}");
    assert_eq!(store.get(b"huge").unwrap(), None);
}

/// Issue 11: the refusal of a value past the limit, through the same code paths as LMDB's
/// 2 GiB limit (`put`, `put_many`, and a `put_reader` stream both short, read into memory,
/// and long, spooled), without writing gigabytes: `LmdbOptions::max_value_len` lowers the
/// limit. A stream is refused once it passes the limit, having read at most one copy buffer
/// past it (never the whole 3 GiB stream), and nothing is stored.
#[test]
fn a_value_past_a_configured_limit_is_refused_on_every_put_path_before_it_is_stored() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    for limit in [1000u64, 3 << 20] {
        let store = LmdbStore::open_with(
            dir.path().join(format!("limit-{limit}")),
            &options().with_max_value_len(Some(limit)),
        )
        .unwrap();
        let refused = |err: Error| {
            assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
            let message = err.to_string();
            assert!(
                message.contains(&format!("{limit}-byte limit"))
                    && message.contains("max_value_len")
                    && message.contains("DirStore"),
                "{message}"
            );
        };
        let at_limit = vec![7u8; limit as usize];
        store.put(b"fits", &at_limit).unwrap();
        let over = vec![7u8; limit as usize + 1];
        refused(store.put(b"over", &over).unwrap_err());
        refused(
            store
                .put_many(&[(&b"a"[..], &b"small"[..]), (&b"over"[..], &over[..])])
                .unwrap_err(),
        );
        assert_eq!(
            store.get(b"a").unwrap(),
            None,
            "a refused batch wrote part of itself"
        );
        let mut exact = Pattern { at: 0, len: limit };
        assert_eq!(store.put_reader(b"streamed", &mut exact).unwrap(), limit);
        let mut endless = Pattern {
            at: 0,
            len: 3 * GIB,
        };
        refused(store.put_reader(b"over", &mut endless).unwrap_err());
        assert!(
            endless.at <= limit.max(1 << 20) + (1 << 20),
            "read {} bytes of the stream before refusing it",
            endless.at
        );
        assert_eq!(store.get(b"over").unwrap(), None);
        assert_eq!(
            store.get(b"fits").unwrap().map(|v| v.len() as u64),
            Some(limit)
        );
        let names: Vec<_> = std::fs::read_dir(store.env().path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.ends_with(".mdb") && !n.starts_with("cacher-"))
            .collect();
        assert!(names.is_empty(), "left behind: {names:?}");
    }
}
