//! Hostile `.npy` headers: a header claiming a huge shape must be refused with an error, fast,
//! without allocating what it claims. Before the fix, a claim of `(2^40,)` aborted the process
//! in `read_npy` and `put_npy_reader` with a 1 TiB allocation.
//!
//! The probes run in a child process (this test binary re-run on `child_*`), so an abort fails
//! the parent's test instead of killing the whole binary, and the child's peak RSS (`VmHWM`)
//! measures these probes alone.

#![cfg(feature = "lmdb")]

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cacher_store::array::{read_npy, ArrayStore, MAX_ARRAY_BYTES};
use cacher_store::Error;

const CHILD_ENV: &str = "CACHER_ARRAY_HOSTILE_DIR";

/// A `.npy` file (version 1.0) with `dict` as its header, followed by `data`.
fn npy(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut f = b"\x93NUMPY\x01\x00".to_vec();
    f.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    f.extend_from_slice(dict.as_bytes());
    f.extend_from_slice(data);
    f
}

fn claim(descr: &str, shape: &str) -> String {
    format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n")
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn hostile_npy_shapes_are_refused_fast_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_hostile_npy_probes",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A timeout so a regression that reads forever fails instead of hanging.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("the hostile .npy probes did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "child failed ({status}):\n{out}\n{err}");
    let peak: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kib="))
        .expect("the child reports its peak RSS")
        .trim()
        .parse()
        .unwrap();
    assert!(peak < 96 * 1024, "peak RSS {peak} KiB");
}

#[test]
fn child_hostile_npy_probes() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let store = ArrayStore::open(dir.join("store")).unwrap();
    let tib = 1u64 << 40;
    let cases = [
        claim("|u1", &format!("({tib},)")),
        claim("<f8", &format!("({tib},)")),
        claim("<f4", "(1048576, 1048576)"),
        claim("<u2", &format!("({}, 2)", (MAX_ARRAY_BYTES / 4) + 1)),
        claim("|u1", &format!("({},)", MAX_ARRAY_BYTES + 1)),
        // Under the limit, but the file holds 100 bytes of the 1 GiB it claims.
        claim("|u1", "(1073741824,)"),
    ];
    for (i, dict) in cases.iter().enumerate() {
        let file = npy(dict, &[7u8; 100]);
        let path = dir.join(format!("hostile-{i}.npy"));
        std::fs::write(&path, &file).unwrap();
        let err = read_npy::<u8>(&path).map(|_| ()).unwrap_err();
        println!("read_npy::<u8> {i}: {err}");
        let err = read_npy::<f64>(&path).map(|_| ()).unwrap_err();
        println!("read_npy::<f64> {i}: {err}");
        let err = store.put_npy_reader("k", &mut &file[..]).unwrap_err();
        println!("put_npy_reader {i}: {err}");
        let err = store.put_npy("k", &path).unwrap_err();
        println!("put_npy {i}: {err}");
        // A reader that delivers as much as the header claims, forever: refused up front
        // when the claim exceeds what a value can hold, never read to the end.
        let mut endless = std::io::Read::chain(&file[..file.len() - 100], std::io::repeat(0));
        if i < 5 {
            let err = store.put_npy_reader("k", &mut endless).unwrap_err();
            assert!(
                matches!(err, Error::InvalidArgument { .. }),
                "refused by its claim: {err}"
            );
        }
    }
    assert_eq!(store.len().unwrap(), 0, "nothing stored");
    println!("peak-rss-kib={}", peak_rss_kib());
}
