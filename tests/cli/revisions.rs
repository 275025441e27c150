//! `cacher revisions`, `cacher get --revision/--name` and `cacher archive` on real stores.

use super::support::{self, json, listed_keys, Kind};
use cacher::Cache;

fn fill_revisions(kind: Kind, path: &std::path::Path) {
    let cache = Cache::builder()
        .store(kind.open(path))
        .format("json")
        .keep_revisions(5)
        .build()
        .unwrap();
    for month in ["2026-10", "2026-11", "2026-12"] {
        cache
            .put("dump", &serde_json::json!({ "month": month }))
            .unwrap();
    }
    cache.name_revision("dump", 2, "2026-11 dump").unwrap();
}

#[test]
fn revisions_get_and_archive_work_on_every_store_kind() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill_revisions(kind, &path);
        let p = path.to_str().unwrap();
        let listed = json(&["revisions", p, "dump"], 0);
        let numbers: Vec<u64> = listed["revisions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["number"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, [1, 2, 3], "{kind:?}");
        assert_eq!(listed["revisions"][1]["name"], "2026-11 dump");
        assert_eq!(listed["revisions"][2]["place"], "current");
        let one = json(&["get", p, "dump", "--revision", "1"], 0);
        assert_eq!(one["value"]["month"], "2026-10", "{kind:?}");
        let named = json(&["get", p, "dump", "--name", "2026-11 dump"], 0);
        assert_eq!(named["value"]["month"], "2026-11", "{kind:?}");
        json(&["get", p, "dump", "--revision", "9"], 1);
        // verify does not take revision records for damaged entries.
        json(&["verify", p], 0);
        let archived = json(&["archive", p, "--beyond-count", "0", "--named"], 0);
        assert_eq!(archived["archived"]["revisions"], 2, "{kind:?}");
        let listed = json(&["revisions", p, "dump"], 0);
        assert!(
            listed["revisions"][0]["place"]["archive"].is_string(),
            "{kind:?}"
        );
        let one = json(&["get", p, "dump", "--revision", "1"], 0);
        assert_eq!(one["value"]["month"], "2026-10", "{kind:?}");
        let current = json(&["get", p, "dump"], 0);
        assert_eq!(current["value"]["month"], "2026-12", "{kind:?}");
    }
}

#[test]
fn ls_hides_revision_records_unless_asked_and_stats_counts_them() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill_revisions(kind, &path);
        let p = path.to_str().unwrap();
        // The store holds `dump`, its manifest and the records of revisions 1 and 2.
        let ls = json(&["ls", p], 0);
        assert_eq!(listed_keys(&ls), ["dump"], "{kind:?}: {ls}");
        assert_eq!(ls["hidden_revision_records"], 3, "{kind:?}: {ls}");
        support::cacher()
            .args(["ls", p])
            .assert()
            .success()
            .stdout(predicates::str::contains(
                "1 entry (3 revision records not shown: --revisions lists them)",
            ));

        let all = json(&["ls", p, "--revisions"], 0);
        assert_eq!(all["count"], 4, "{kind:?}: {all}");
        let mut marks: Vec<String> = all["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                // A record is an old revision's envelope, not damage.
                assert_ne!(e["status"], "damaged", "{kind:?}: {all}");
                e["revision_record"].to_string()
            })
            .collect();
        marks.sort();
        assert_eq!(
            marks,
            [
                "null",
                r#"{"kind":"manifest"}"#,
                r#"{"kind":"revision","number":1}"#,
                r#"{"kind":"revision","number":2}"#,
            ],
            "{kind:?}: {all}"
        );
        support::cacher()
            .args(["ls", p, "--revisions"])
            .assert()
            .success()
            .stdout(predicates::str::contains("revision 2"))
            .stdout(predicates::str::contains("manifest"));

        let stats = json(&["stats", p], 0);
        assert_eq!(stats["entries"], 4, "{kind:?}: {stats}");
        assert_eq!(stats["revision_records"], 3, "{kind:?}: {stats}");
        assert_eq!(stats["damaged"], 0, "{kind:?}: {stats}");
        let namespaces = stats["namespaces"].as_array().unwrap();
        assert_eq!(namespaces.len(), 1, "{kind:?}: {stats}");
        // `dump` has no `@version:hash` part; the records are counted apart, not here.
        assert_eq!(namespaces[0]["entries"], 1, "{kind:?}: {stats}");
        support::cacher()
            .args(["stats", p])
            .assert()
            .success()
            .stdout(predicates::str::contains(
                "4 (0 expired, 0 damaged; 3 of them revision records)",
            ));
    }
}

#[test]
fn evict_leaves_revision_records_to_archive() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill_revisions(kind, &path);
        let p = path.to_str().unwrap();
        let evicted = json(&["evict", p, "--max-entries", "1"], 0);
        assert_eq!(evicted["removed"], 0, "{kind:?}: {evicted}");
        let listed = json(&["revisions", p, "dump"], 0);
        assert_eq!(
            listed["revisions"].as_array().unwrap().len(),
            3,
            "{kind:?}: {listed}"
        );
        let one = json(&["get", p, "dump", "--revision", "1"], 0);
        assert_eq!(one["value"]["month"], "2026-10", "{kind:?}");
    }
}

#[test]
fn export_and_import_keep_revision_records() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill_revisions(kind, &path);
        let p = path.to_str().unwrap();
        let dump = dir.path().join("revisions.dump");
        let exported = json(&["export", p, dump.to_str().unwrap()], 0);
        assert_eq!(exported["entries"], 4, "{kind:?}: {exported}");
        let copy = dir.path().join("copy.log");
        json(
            &[
                "import",
                copy.to_str().unwrap(),
                dump.to_str().unwrap(),
                "--create",
                "log",
            ],
            0,
        );
        let c = copy.to_str().unwrap();
        let named = json(&["get", c, "dump", "--name", "2026-11 dump"], 0);
        assert_eq!(named["value"]["month"], "2026-11", "{kind:?}");
        let listed = json(&["revisions", c, "dump"], 0);
        assert_eq!(listed["revisions"].as_array().unwrap().len(), 3);
    }
}

#[test]
fn a_reserved_key_of_unknown_shape_is_listed_as_reserved_not_damaged() {
    // A newer cacher may keep other records in the reserved key space.
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Dir.path_in(dir.path());
    fill_revisions(Kind::Dir, &path);
    Kind::Dir
        .open(&path)
        .put(b"\xff\xfecacher-rev\x00future record", b"not an envelope")
        .unwrap();
    let p = path.to_str().unwrap();
    let all = json(&["ls", p, "--revisions"], 0);
    let future = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["revision_record"]["kind"] == "reserved")
        .unwrap_or_else(|| panic!("{all}"));
    assert_eq!(future["status"], "reserved", "{all}");
    let stats = json(&["stats", p], 0);
    assert_eq!(stats["revision_records"], 4, "{stats}");
    assert_eq!(stats["damaged"], 0, "{stats}");
}
