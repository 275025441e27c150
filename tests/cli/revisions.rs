//! `cacher revisions`, `cacher get --revision/--name` and `cacher archive` on real stores.

use super::support::{json, Kind};
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
