//! `LogStore` across real processes: a second writer process is locked out, a reader process
//! reads alongside the writer. The child is this test binary re-run on one `child_*` test,
//! with the store path in an environment variable; without it the `child_*` tests do nothing.

use std::path::Path;
use std::process::Command;

use cacher_store::{Error, LogOptions, LogStore, Store};

const CHILD_ENV: &str = "CACHER_LOG_CHILD_STORE";

fn run_child(test: &str, store: &Path) -> std::process::Output {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child {test} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn second_writer_process_gets_locked_error_and_readers_are_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let writer = LogStore::open(&path).unwrap();
    writer.put(b"from-parent", b"hello child").unwrap();
    run_child("child_is_locked_out_but_reads", &path);
    // The writer is unaffected and keeps writing.
    writer.put(b"after", b"child").unwrap();
    drop(writer);
    // With the writer gone, a child process can become the writer.
    run_child("child_writes", &path);
    let store = LogStore::open(&path).unwrap();
    assert_eq!(
        store.get(b"from-child").unwrap().as_deref(),
        Some(&b"written by the child"[..])
    );
}

#[test]
fn child_is_locked_out_but_reads() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    match LogStore::open(&path) {
        Err(Error::Locked { path: p, .. }) => assert_eq!(p, Path::new(&path)),
        other => panic!("expected Error::Locked in the child, got {other:?}"),
    }
    let reader = LogOptions::new().read_only(true).open(&path).unwrap();
    assert_eq!(
        reader.get(b"from-parent").unwrap().as_deref(),
        Some(&b"hello child"[..])
    );
}

#[test]
fn child_writes() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = LogStore::open(&path).unwrap();
    assert_eq!(store.get(b"after").unwrap().as_deref(), Some(&b"child"[..]));
    store.put(b"from-child", b"written by the child").unwrap();
}
