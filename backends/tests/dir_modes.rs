//! DirStore's file modes (issue 9): new files and directories follow the process umask by
//! default (`FileMode::Umask`, so a group can share a cache), or are owner-only with
//! `FileMode::OwnerOnly`. The umask is set only in child processes (this binary re-executed
//! through `sh -c 'umask ..; exec ..'`), never in the shared test process.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use cacher_store::{DirStore, Durability, FileMode, Store};

const CHILD_MODE: &str = "CACHER_DIR_MODES_CHILD_MODE";
const CHILD_DIR: &str = "CACHER_DIR_MODES_CHILD_DIR";
const TEST: &str = "new_files_follow_the_umask_or_are_owner_only";

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// In the child: writes a store in `dir` through every write path and prints each mode.
/// `None` leaves the file mode at its default.
fn write_store(dir: &Path, file_mode: Option<FileMode>) {
    let mut options = DirStore::options().durability(Durability::None);
    if let Some(mode) = file_mode {
        options = options.file_mode(mode);
    }
    let store = options.open(dir.join("store")).unwrap();
    store.put(b"put", b"v").unwrap();
    store.put_reader(b"put_reader", &mut &b"v"[..]).unwrap();
    store.put_many(&[(b"put_many", b"v")]).unwrap();
    let root = dir.join("store");
    let mut paths = vec![
        ("root", root.clone()),
        ("tmp", root.join("tmp")),
        ("v1", root.join("v1")),
        ("marker", root.join("cacher-dir.toml")),
    ];
    for key in ["put", "put_reader", "put_many"] {
        let entry = store.entry_path(key.as_bytes());
        paths.push(("fanout", entry.parent().unwrap().to_path_buf()));
        paths.push(("entry", entry));
    }
    for (what, path) in paths {
        println!("\nmode {what} {:o}", mode(&path));
    }
}

/// Runs the child under `umask`, with `file_mode`; returns (what, mode) for each path.
fn modes_under(umask: &str, file_mode: &str) -> Vec<(String, u32)> {
    let temp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask {umask} && exec \"$0\" {TEST} --exact --nocapture --test-threads 1"
        ))
        .arg(exe)
        .env(CHILD_MODE, file_mode)
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
    let modes: Vec<_> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("mode "))
        .map(|l| {
            let (what, m) = l.split_once(' ').unwrap();
            (what.to_string(), u32::from_str_radix(m.trim(), 8).unwrap())
        })
        .collect();
    assert_eq!(modes.len(), 10, "{stdout}");
    modes
}

fn assert_modes(modes: &[(String, u32)], file: u32, dir: u32, context: &str) {
    for (what, m) in modes {
        let expected = if what == "entry" || what == "marker" {
            file
        } else {
            dir
        };
        assert_eq!(
            *m, expected,
            "{context}: mode of {what} is {m:o}, not {expected:o}"
        );
    }
}

#[test]
fn new_files_follow_the_umask_or_are_owner_only() {
    if let Ok(file_mode) = std::env::var(CHILD_MODE) {
        let dir = std::env::var(CHILD_DIR).unwrap();
        let file_mode = match file_mode.as_str() {
            "default" => None,
            "umask" => Some(FileMode::Umask),
            _ => Some(FileMode::OwnerOnly),
        };
        write_store(Path::new(&dir), file_mode);
        return;
    }
    assert_modes(
        &modes_under("022", "default"),
        0o644,
        0o755,
        "default, umask 022",
    );
    assert_modes(
        &modes_under("002", "default"),
        0o664,
        0o775,
        "default, umask 002",
    );
    assert_modes(&modes_under("027", "umask"), 0o640, 0o750, "umask 027");
    assert_modes(&modes_under("002", "owner"), 0o600, 0o700, "owner-only");
    assert_modes(&modes_under("077", "owner"), 0o600, 0o700, "owner-only");
}
