//! `cacher doctor`: each finding, with what to do, and the exit code that sums them up.

use std::path::Path;

use serde_json::Value;

use crate::support::{damage_victim, fill, json, Kind};

/// The checks of a doctor report named `name`.
fn checks<'a>(report: &'a Value, name: &str) -> Vec<&'a Value> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == name)
        .collect()
}

fn status_of(report: &Value, name: &str) -> Vec<String> {
    checks(report, name)
        .iter()
        .map(|c| c["status"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn doctor_finds_a_sound_store_of_every_kind_healthy() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill(kind, &path);
        let report = json(&["doctor", path.to_str().unwrap()], 0);
        assert_eq!(report["healthy"], true, "{kind:?}: {report}");
        assert_eq!(report["store"]["kind"], kind.type_name());
        for name in ["kind", "verify", "permissions"] {
            assert_eq!(
                status_of(&report, name),
                ["ok"],
                "{kind:?} {name}: {report}"
            );
        }
        // Free space depends on the machine; a lock may be seen held for an instant by a
        // sibling test's child between fork and exec (see `support::json`): only their shape.
        let disk = checks(&report, "disk");
        assert!(disk[0]["detail"].as_str().unwrap().contains(" free of "));
        assert_eq!(checks(&report, "locks").len(), 1, "{kind:?}: {report}");
        crate::support::cacher()
            .args(["doctor", path.to_str().unwrap()])
            .assert()
            .success()
            .stdout(predicates::str::contains("healthy, nothing to do"));
    }
}

#[test]
fn doctor_reports_damage_with_the_command_that_moves_it_aside() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill(kind, &path);
        damage_victim(kind, &path);
        let p = path.to_str().unwrap();
        let report = json(&["doctor", p], 1);
        let verify = checks(&report, "verify");
        assert_eq!(verify[0]["status"], "problem", "{kind:?}: {report}");
        assert!(verify[0]["detail"].as_str().unwrap().contains("victim"));
        let fix = verify[0]["fix"].as_str().unwrap();
        assert!(
            fix.contains(&format!("cacher verify {p} --quarantine")),
            "{fix}"
        );
        // Following the advice makes the store healthy.
        json(&["verify", p, "--quarantine"], 1);
        let after = json(&["doctor", p], 0);
        assert_eq!(
            status_of(&after, "quarantine"),
            ["info"],
            "{kind:?}: {after}"
        );
    }
}

/// Copies a fixture store directory, so nothing writes into `fixtures/`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn doctor_says_to_upgrade_for_a_newer_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dir/v2-future-layout");
    copy_dir(&fixture, &path);
    let report = json(&["doctor", path.to_str().unwrap()], 1);
    let layout = checks(&report, "layout");
    let problem = layout.iter().find(|c| c["status"] == "problem").unwrap();
    assert!(
        problem["fix"].as_str().unwrap().contains("upgrade cacher"),
        "{report}"
    );
}

#[test]
fn doctor_reports_stale_and_foreign_temp_files_of_a_dir_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Dir.path_in(dir.path());
    fill(Kind::Dir, &path);
    let stale = path.join("tmp/put-Ab12cD");
    std::fs::write(&stale, b"half a value").unwrap();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let p = path.to_str().unwrap();
    let report = json(&["doctor", p], 0);
    let temps = checks(&report, "temp files");
    assert_eq!(temps.len(), 1, "{report}");
    assert_eq!(temps[0]["status"], "repaired", "{report}");
    assert!(temps[0]["detail"]
        .as_str()
        .unwrap()
        .contains("1 stale temp file"));
    assert!(!stale.exists());

    // A file the store did not make is left alone and reported for the user to remove.
    let foreign = path.join("tmp/notes.txt");
    std::fs::write(&foreign, b"mine").unwrap();
    let report = json(&["doctor", p], 1);
    assert_eq!(status_of(&report, "temp files"), ["problem"], "{report}");
    assert!(foreign.exists());
}

#[test]
fn doctor_names_the_process_holding_a_log_stores_writer_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Log.path_in(dir.path());
    fill(Kind::Log, &path);
    let writer = Kind::Log.open(&path);
    let report = json(&["doctor", path.to_str().unwrap()], 0);
    let locks = checks(&report, "locks");
    let detail = locks[0]["detail"].as_str().unwrap();
    if cfg!(target_os = "linux") {
        assert!(
            detail.contains(&format!("pid {} ", std::process::id())),
            "{report}"
        );
        assert!(detail.contains("writer holds"), "{report}");
    }
    drop(writer);
}

#[test]
fn doctor_reports_leftover_files_beside_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Log.path_in(dir.path());
    fill(Kind::Log, &path);
    let leftover = dir.path().join("store.log.compacting");
    std::fs::write(&leftover, b"half a compaction").unwrap();
    let p = path.to_str().unwrap();
    let report = json(&["doctor", p], 1);
    let temps = checks(&report, "temp files");
    assert_eq!(temps[0]["status"], "problem", "{report}");
    assert!(temps[0]["fix"]
        .as_str()
        .unwrap()
        .contains(&format!("cacher compact {p}")));
    // The advice works.
    json(&["compact", p], 0);
    assert!(!leftover.exists());
    json(&["doctor", p], 0);
}

#[test]
fn doctor_reports_a_mixed_layout_and_exits_2_where_there_is_no_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Dir.path_in(dir.path());
    fill(Kind::Dir, &path);
    std::fs::write(path.join("cacher-lmdb.toml"), b"format = \"cacher-lmdb\"\n").unwrap();
    let report = json(&["doctor", path.to_str().unwrap()], 1);
    let kind = checks(&report, "kind");
    assert_eq!(kind[0]["status"], "problem", "{report}");
    assert!(kind[0]["detail"].as_str().unwrap().contains("mixed layout"));

    let missing = dir.path().join("nothing-here");
    let report = json(&["doctor", missing.to_str().unwrap()], 2);
    assert!(report["error"]["message"]
        .as_str()
        .unwrap()
        .contains(missing.to_str().unwrap()));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    json(&["doctor", empty.to_str().unwrap()], 2);
}

#[cfg(feature = "lmdb")]
#[test]
fn doctor_lists_processes_with_an_lmdb_environment_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Lmdb.path_in(dir.path());
    fill(Kind::Lmdb, &path);
    let holder = Kind::Lmdb.open(&path);
    let report = json(&["doctor", path.to_str().unwrap()], 0);
    let detail = checks(&report, "locks")[0]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    if cfg!(target_os = "linux") {
        assert!(
            detail.contains(&format!("pid {} ", std::process::id())),
            "{report}"
        );
    }
    assert_eq!(status_of(&report, "readers"), ["ok"], "{report}");
    drop(holder);
}

#[cfg(feature = "lmdb")]
#[test]
fn doctor_counts_layout_1_entries_and_points_to_cacher_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1-store");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lmdb/v1-store"),
        &path,
    );
    let report = json(&["doctor", path.to_str().unwrap()], 1);
    let layout = checks(&report, "layout");
    let info = layout.iter().find(|c| c["status"] == "info").unwrap();
    assert!(
        info["fix"].as_str().unwrap().contains("cacher upgrade"),
        "{report}"
    );
    let verify = checks(&report, "verify");
    assert!(
        verify[0]["detail"]
            .as_str()
            .unwrap()
            .contains("4 entries have no store checksum (layout 1)"),
        "{report}"
    );
}

/// A LogStore filled as `fill` does, then `user:42`'s envelope written again 100,000 times
/// (the records a writer's close needs past the last checkpoint to write `<log>.index`),
/// so the live keys stay the 7 of `fill`.
fn log_with_checkpoint(path: &Path) {
    use cacher::store::Store;
    fill(Kind::Log, path);
    let store = cacher::store::LogStore::open(path).unwrap();
    let value = store.get(b"user:42").unwrap().unwrap();
    let batch: Vec<(&[u8], &[u8])> = vec![(b"user:42", &value[..]); 10_000];
    for _ in 0..10 {
        store.put_many(&batch).unwrap();
    }
    drop(store);
    assert!(
        crate::support::sibling(path, ".index").is_file(),
        "no checkpoint written"
    );
}

#[test]
fn doctor_and_stats_tell_a_log_checkpoint_the_open_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Log.path_in(dir.path());
    log_with_checkpoint(&path);
    let shown = path.to_str().unwrap();
    let report = json(&["doctor", shown], 0);
    let checkpoint = checks(&report, "checkpoint");
    assert_eq!(checkpoint.len(), 1, "{report}");
    assert_eq!(checkpoint[0]["status"], "ok", "{report}");
    assert!(
        checkpoint[0]["detail"]
            .as_str()
            .unwrap()
            .contains("holds the index up to offset"),
        "{report}"
    );
    assert_eq!(status_of(&report, "temp files"), ["ok"], "{report}");
    let stats = json(&["stats", shown], 0);
    assert!(
        stats["facts"]["checkpoint"].as_u64().unwrap() > 32,
        "{stats}"
    );

    // Damaged: every open ignores it and scans; doctor says so, and it is no problem.
    let file = crate::support::sibling(&path, ".index");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let report = json(&["doctor", shown], 0);
    let checkpoint = checks(&report, "checkpoint");
    assert_eq!(checkpoint[0]["status"], "info", "{report}");
    assert!(
        checkpoint[0]["detail"]
            .as_str()
            .unwrap()
            .contains("does not hold for this log"),
        "{report}"
    );
    let stats = json(&["stats", shown], 0);
    assert_eq!(stats["facts"]["checkpoint"], Value::Null, "{stats}");
}

#[test]
fn doctor_names_a_stale_log_checkpoint_temp_file_with_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Log.path_in(dir.path());
    fill(Kind::Log, &path);
    let tmp = crate::support::sibling(&path, ".index.tmp");
    std::fs::write(&tmp, b"half a checkpoint").unwrap();
    let report = json(&["doctor", path.to_str().unwrap()], 0);
    let temps = checks(&report, "temp files");
    let stale = temps
        .iter()
        .find(|c| c["detail"].as_str().unwrap().contains(".index.tmp"))
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(stale["status"], "info", "{report}");
    assert!(
        stale["fix"].as_str().unwrap().contains("delete it"),
        "{report}"
    );
    // No checkpoint beside the log: no checkpoint finding.
    assert!(checks(&report, "checkpoint").is_empty(), "{report}");
}
