//! Bad paths, wrong kinds and bad arguments: exit 2 and a message naming the path; nothing
//! is created where there was no store.

use std::path::Path;

use predicates::str::contains;

use crate::support::{cacher, fill, json, Kind};

/// Runs `cacher stats PATH` and returns the error message, checking exit 2 in both modes and
/// that stderr names the path.
fn refused(path: &Path) -> String {
    let shown = path.to_str().unwrap();
    cacher()
        .args(["stats", shown])
        .assert()
        .code(2)
        .stderr(contains(shown));
    let report = json(&["stats", shown], 2);
    assert_eq!(report["error"]["path"], shown, "{report}");
    report["error"]["message"].as_str().unwrap().to_owned()
}

#[test]
fn a_missing_path_exits_2_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-store");
    assert!(refused(&missing).contains("does not exist"));
    for command in ["ls", "verify", "rm", "export"] {
        let mut args = vec![command, missing.to_str().unwrap()];
        match command {
            "rm" => args.push("k"),
            "export" => args.push("/dev/null"),
            _ => {}
        }
        cacher()
            .args(&args)
            .assert()
            .code(2)
            .stderr(contains("does not exist"));
    }
    assert!(!missing.exists());
}

#[test]
fn things_that_are_not_stores_exit_2_saying_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    assert!(refused(&text).contains("not a LogStore"));

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(refused(&empty).contains("not a cacher store"));
    // Still empty: detection wrote nothing.
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);

    // A DirStore that also carries an LMDB marker: a mixed layout, named as such.
    let mixed = Kind::Dir.path_in(dir.path());
    fill(Kind::Dir, &mixed);
    std::fs::write(mixed.join("cacher-lmdb.toml"), "format = \"cacher-lmdb\"\n").unwrap();
    let message = refused(&mixed);
    assert!(
        message.contains("DirStore") && message.contains("LmdbStore"),
        "{message}"
    );
}

#[test]
fn the_wrong_kind_for_create_or_a_locked_log_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let log = Kind::Log.path_in(dir.path());
    fill(Kind::Log, &log);
    // The log's writer lock is held: writing commands cannot open it, reading ones can.
    let writer = cacher::store::LogStore::open(&log).unwrap();
    cacher()
        .args(["rm", log.to_str().unwrap(), "victim"])
        .assert()
        .code(2)
        .stderr(contains(log.to_str().unwrap()));
    json(&["ls", log.to_str().unwrap()], 0);
    drop(writer);

    // `--create dir` on a path that already holds a LogStore imports into the LogStore
    // (the existing kind wins); a dump into a plain file is refused.
    let dump = dir.path().join("d");
    json(
        &["export", log.to_str().unwrap(), dump.to_str().unwrap()],
        0,
    );
    let report = json(
        &[
            "import",
            log.to_str().unwrap(),
            dump.to_str().unwrap(),
            "--create",
            "dir",
        ],
        0,
    );
    assert_eq!(report["store"]["kind"], "LogStore");
    let text = dir.path().join("plain");
    std::fs::write(&text, "x").unwrap();
    let report = json(
        &["import", text.to_str().unwrap(), dump.to_str().unwrap()],
        2,
    );
    assert!(report["error"]["message"]
        .as_str()
        .unwrap()
        .contains(text.to_str().unwrap()));
}

#[test]
fn bad_arguments_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let store = Kind::Dir.path_in(dir.path());
    fill(Kind::Dir, &store);
    let s = store.to_str().unwrap();
    for args in [
        vec!["get", s, "hex:zz"],
        vec!["evict", s],
        vec!["evict", s, "--older-than", "soon"],
        vec!["evict", s, "--max-bytes", "12 parsecs"],
        vec!["clear", s],
        vec!["frobnicate", s],
        vec!["get", s, "victim", "--raw", "--json"],
    ] {
        cacher().args(&args).assert().code(2);
    }
}

#[test]
fn help_has_an_example_for_every_command_and_completions_generate() {
    for command in [
        "stats",
        "ls",
        "show",
        "get",
        "rm",
        "clear",
        "verify",
        "evict",
        "export",
        "import",
        "completions",
    ] {
        cacher()
            .args([command, "--help"])
            .assert()
            .success()
            .stdout(contains("Example"))
            .stdout(contains(format!("cacher {command}")));
    }
    cacher()
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(contains("_cacher"));
}
