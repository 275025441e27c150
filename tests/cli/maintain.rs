//! `rm`, `clear`, `evict` change exactly what they say.

use crate::support::{entries, fill, json, listed_keys, Kind};

#[test]
fn rm_removes_named_keys_and_exits_1_for_a_missing_one() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill(kind, &path);
        let p = path.to_str().unwrap();
        let report = json(&["rm", p, "user:42", "hex:ff0062696e"], 0);
        assert_eq!(report["removed"].as_array().unwrap().len(), 2, "{report}");
        assert_eq!(entries(kind, &path).len(), 5);
        let again = json(&["rm", p, "user:42"], 1);
        assert_eq!(again["missing"][0]["utf8"], "user:42");
    }
}

#[test]
fn clear_removes_one_namespace_or_everything() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill(kind, &path);
        let p = path.to_str().unwrap();
        let report = json(&["clear", p, "--namespace", "square"], 0);
        assert_eq!(report["removed"], 3, "{kind:?}: {report}");
        let left = json(&["ls", p], 0);
        assert_eq!(left["count"], 4);
        assert!(listed_keys(&left).iter().all(|k| !k.starts_with("square@")));
        json(&["clear", p, "--all"], 0);
        assert!(entries(kind, &path).is_empty());
    }
}

#[test]
fn evict_expired_removes_only_expired_entries() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill(kind, &path);
        let p = path.to_str().unwrap();
        let dry = json(&["evict", p, "--expired", "--dry-run"], 0);
        assert_eq!(dry["removed"], 1);
        assert_eq!(entries(kind, &path).len(), 7, "a dry run removes nothing");
        let report = json(&["evict", p, "--expired"], 0);
        assert_eq!(report["victims"][0]["key"]["utf8"], "session:old");
        assert_eq!(report["victims"][0]["reason"], "expired");
        assert_eq!(report["left"], 6);
        assert_eq!(entries(kind, &path).len(), 6);
    }
}

#[test]
fn evict_to_limits_keeps_the_newest_entries() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        {
            let cache = cacher::Cache::builder()
                .store(kind.open(&path))
                .format("json")
                .build()
                .unwrap();
            for i in 0..5u64 {
                cache.put(format!("k{i}"), &i).unwrap();
                // Distinct creation times (milliseconds).
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
        }
        let p = path.to_str().unwrap();
        let report = json(&["evict", p, "--max-entries", "2"], 0);
        assert_eq!(report["removed"], 3, "{report}");
        let keys: Vec<Vec<u8>> = entries(kind, &path).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [b"k3".to_vec(), b"k4".to_vec()], "{kind:?}");

        let size = json(&["ls", p], 0)["entries"][0]["size"].as_u64().unwrap();
        let report = json(&["evict", p, "--max-bytes", &(size + 1).to_string()], 0);
        assert_eq!(report["victims"][0]["key"]["utf8"], "k3", "{report}");
        assert_eq!(report["victims"][0]["reason"], "max_bytes");

        let report = json(&["evict", p, "--older-than", "1h"], 0);
        assert_eq!(report["removed"], 0);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let report = json(&["evict", p, "--older-than", "1s"], 0);
        assert_eq!(report["removed"], 1, "{report}");
        assert!(entries(kind, &path).is_empty());
    }
}

/// Writes garbage into the store: one value overwritten many times, and removed values.
fn churn(kind: Kind, path: &std::path::Path) {
    let store = kind.open(path);
    for i in 0..40u32 {
        store.put(b"churn", &vec![i as u8; 4096]).unwrap();
        store
            .put(format!("gone:{i}").as_bytes(), &[7; 4096])
            .unwrap();
    }
    for i in 0..40u32 {
        store.delete(format!("gone:{i}").as_bytes()).unwrap();
    }
    // Not an envelope, so not left for verify to report.
    store.delete(b"churn").unwrap();
    store.flush().unwrap();
}

#[test]
fn compact_shrinks_a_log_store_and_keeps_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Log.path_in(dir.path());
    fill(Kind::Log, &path);
    churn(Kind::Log, &path);
    let before = crate::support::entries(Kind::Log, &path);
    let size = std::fs::metadata(&path).unwrap().len();
    let p = path.to_str().unwrap();
    let report = json(&["compact", p], 0);
    assert_eq!(report["bytes_before"], size, "{report}");
    let after = std::fs::metadata(&path).unwrap().len();
    assert_eq!(report["bytes_after"], after, "{report}");
    // 80 dead 4 KiB values and their tombstones are gone.
    assert!(after + 80 * 4096 <= size, "{size} -> {after}");
    assert_eq!(report["entries"], 7, "{report}");
    assert_eq!(crate::support::entries(Kind::Log, &path), before);
    json(&["verify", p], 0);
    crate::support::cacher()
        .args(["compact", p])
        .assert()
        .success()
        .stdout(predicates::str::contains("compacted"))
        .stdout(predicates::str::contains(" -> "));
}

#[test]
fn compact_refuses_a_dir_store_naming_its_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Dir.path_in(dir.path());
    fill(Kind::Dir, &path);
    let report = json(&["compact", path.to_str().unwrap()], 2);
    let message = report["error"]["message"].as_str().unwrap();
    assert!(message.contains("DirStore"), "{message}");
    assert!(message.contains(path.to_str().unwrap()), "{message}");
}

#[cfg(feature = "lmdb")]
#[test]
fn compact_copies_an_lmdb_store_with_compaction_into_a_new_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Lmdb.path_in(dir.path());
    fill(Kind::Lmdb, &path);
    churn(Kind::Lmdb, &path);
    let before = crate::support::entries(Kind::Lmdb, &path);
    let p = path.to_str().unwrap();

    // In place is refused, and the message says what to do.
    let refused = json(&["compact", p], 2);
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("LmdbStore") && message.contains("--into"),
        "{message}"
    );

    let into = dir.path().join("compacted");
    let report = json(&["compact", p, "--into", into.to_str().unwrap()], 0);
    let old = std::fs::metadata(path.join("data.mdb")).unwrap().len();
    let new = std::fs::metadata(into.join("data.mdb")).unwrap().len();
    assert_eq!(report["bytes_before"], old, "{report}");
    assert_eq!(report["bytes_after"], new, "{report}");
    assert!(new < old, "{old} -> {new}");
    assert_eq!(report["entries"], 7, "{report}");
    // The copy is an LmdbStore with the same entries, sound; the original is untouched.
    let stats = json(&["stats", into.to_str().unwrap()], 0);
    assert_eq!(stats["store"]["kind"], "LmdbStore");
    json(&["verify", into.to_str().unwrap()], 0);
    assert_eq!(crate::support::entries(Kind::Lmdb, &into), before);
    assert_eq!(crate::support::entries(Kind::Lmdb, &path), before);
    // An existing target is refused.
    json(&["compact", p, "--into", into.to_str().unwrap()], 2);
}
