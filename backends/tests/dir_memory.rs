//! DirStore's memory stays bounded whatever a file claims and however large a value is
//! (issue 9). Each measurement runs in a child process (this binary re-executed with
//! `CHILD_TEST` set) so its peak RSS (`VmHWM`) is its own. Run with `--nocapture` to see the
//! figures.
#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use cacher_store::{DirStore, Durability, Store};

const CHILD_TEST: &str = "CACHER_DIR_MEMORY_CHILD_TEST";
const CHILD_DIR: &str = "CACHER_DIR_MEMORY_CHILD_DIR";
const MIB: u64 = 1 << 20;

/// Peak resident set of this process so far, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM in kB");
    kib * 1024
}

/// Runs `body` in a fresh child process (this test, re-executed) and returns the child's peak
/// RSS. In the child, runs `body` and reports its peak on stdout.
fn in_child(test: &str, body: impl FnOnce(&Path)) -> Option<u64> {
    if std::env::var(CHILD_TEST).as_deref() == Ok(test) {
        body(Path::new(&std::env::var(CHILD_DIR).unwrap()));
        // On a line of its own: the harness has printed the test's name without a newline.
        println!("\npeak-rss={}", peak_rss());
        std::io::stdout().flush().unwrap();
        return None;
    }
    let temp = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_TEST, test)
        .env(CHILD_DIR, temp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let peak = stdout
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss="))
        .and_then(|n| n.trim().parse().ok())
        .expect("the child reports its peak");
    Some(peak)
}

#[test]
fn a_planted_entry_declaring_a_4_gib_key_costs_no_memory() {
    let name = "a_planted_entry_declaring_a_4_gib_key_costs_no_memory";
    let Some(peak) = in_child(name, |dir| {
        let store = DirStore::options()
            .durability(Durability::None)
            .open(dir)
            .unwrap();
        let path = store.entry_path(b"k");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // A valid magic and version, a key of u32::MAX bytes, no value; the file is sparse
        // and exactly as long as the header says, so only the key length is wrong.
        let mut header = b"CACHRDIR".to_vec();
        header.extend_from_slice(&1u32.to_le_bytes());
        header.extend_from_slice(&u32::MAX.to_le_bytes());
        header.extend_from_slice(&0u64.to_le_bytes());
        header.extend_from_slice(&[0; 8]);
        let file = std::fs::File::create(&path).unwrap();
        (&file).write_all(&header).unwrap();
        file.set_len(32 + u64::from(u32::MAX)).unwrap();
        let keys: Vec<_> = store.keys().unwrap().collect();
        assert_eq!(keys.len(), 1);
        let err = keys[0].as_ref().unwrap_err();
        assert!(err.is_corrupt(), "{err}");
        assert!(store.get(b"k").unwrap_err().is_corrupt());
        assert!(store.meta(b"k").unwrap_err().is_corrupt());
        assert_eq!(store.verify().unwrap().damaged.len(), 1);
    }) else {
        return;
    };
    println!(
        "keys/get/meta/verify over a planted 4 GiB key: peak RSS {} MiB",
        peak / MIB
    );
    assert!(peak < 64 * MIB, "peak RSS {} MiB", peak / MIB);
}

/// `left` bytes of the pattern `i % 251`, generated as they are read (a slice copy per
/// call, so the debug build is not slowed by a per-byte loop).
struct Pattern {
    left: u64,
    at: u64,
    period: Vec<u8>,
}

impl Pattern {
    fn new(len: u64) -> Self {
        // 251 repetitions of the period, so any 64 KiB read is one copy from some offset.
        let period = (0..251 * 512).map(|i| (i % 251) as u8).collect();
        Pattern {
            left: len,
            at: 0,
            period,
        }
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = (self.at % 251) as usize;
        let n = buf
            .len()
            .min(self.left as usize)
            .min(self.period.len() - start);
        buf[..n].copy_from_slice(&self.period[start..start + n]);
        self.at += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn put_reader_then_read_of_1_gib_stays_under_64_mib() {
    let name = "put_reader_then_read_of_1_gib_stays_under_64_mib";
    const LEN: u64 = 1 << 30;
    let started = std::time::Instant::now();
    let Some(peak) = in_child(name, |dir| {
        let store = DirStore::options()
            .durability(Durability::None)
            .open(dir)
            .unwrap();
        let n = store.put_reader(b"big", &mut Pattern::new(LEN)).unwrap();
        assert_eq!(n, LEN);
        // The checked read: the whole value's checksum is verified before it is lent.
        let blob = store.read(b"big").unwrap().unwrap();
        assert!(blob.is_mapped());
        assert_eq!(blob.len() as u64, LEN);
        for at in [0, 1 << 20, LEN as usize - 1] {
            assert_eq!(blob[at], (at % 251) as u8);
        }
        drop(blob);
        let report = store.verify().unwrap();
        assert_eq!((report.checked, report.damaged.len()), (1, 0));
    }) else {
        return;
    };
    println!(
        "put_reader + read + verify of 1 GiB: peak RSS {} MiB, {:.1} s",
        peak / MIB,
        started.elapsed().as_secs_f64()
    );
    assert!(peak < 64 * MIB, "peak RSS {} MiB", peak / MIB);
}
