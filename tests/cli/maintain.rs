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
