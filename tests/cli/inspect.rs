//! `stats`, `ls`, `show`, `get` on every store kind; detection of each kind.

use predicates::str::contains;

use crate::support::{cacher, fill, json, listed_keys, Kind, VICTIM_VALUE};

#[test]
fn stats_counts_entries_namespaces_and_expired_on_every_kind() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill(kind, &path);
        let p = path.to_str().unwrap();
        let stats = json(&["stats", p], 0);
        assert_eq!(stats["command"], "stats");
        assert_eq!(stats["store"]["kind"], kind.type_name(), "{stats}");
        assert_eq!(stats["store"]["path"], p);
        assert_eq!(stats["entries"], 7, "{kind:?}: {stats}");
        assert_eq!(stats["expired"], 1, "{kind:?}: {stats}");
        assert_eq!(stats["damaged"], 0, "{kind:?}: {stats}");
        assert!(stats["bytes"].as_u64().unwrap() > 7 * 20, "{stats}");
        assert!(stats["oldest_ms"].as_u64() <= stats["newest_ms"].as_u64());
        let square = stats["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["namespace"] == "square")
            .unwrap_or_else(|| panic!("{stats}"));
        assert_eq!(square["entries"], 3);
        cacher()
            .args(["stats", p])
            .assert()
            .success()
            .stdout(contains("7 (1 expired, 0 damaged)"))
            .stdout(contains("square"))
            .stdout(contains("bytes"));
    }
}

#[cfg(feature = "lmdb")]
#[test]
fn stats_shows_the_lmdb_map_size_and_readers() {
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Lmdb.path_in(dir.path());
    fill(Kind::Lmdb, &path);
    let stats = json(&["stats", path.to_str().unwrap()], 0);
    assert!(stats["facts"]["map_size"].as_u64().unwrap() > 0, "{stats}");
    assert!(
        stats["facts"]["max_readers"].as_u64().unwrap() > 0,
        "{stats}"
    );
}

#[test]
fn ls_filters_by_namespace_and_prefix() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill(kind, &path);
        let p = path.to_str().unwrap();
        let all = json(&["ls", p], 0);
        assert_eq!(all["count"], 7);
        let keys = listed_keys(&all);
        assert!(keys.contains(&"hex:ff0062696e".to_owned()), "{keys:?}");
        let square = json(&["ls", p, "--namespace", "square"], 0);
        assert_eq!(square["count"], 3, "{square}");
        for e in square["entries"].as_array().unwrap() {
            assert_eq!(e["namespace"], "square");
            assert_eq!(e["format"], "json");
            assert_eq!(e["status"], "ok");
        }
        let users = json(&["ls", p, "--prefix", "user:"], 0);
        assert_eq!(listed_keys(&users), ["user:42"]);
        let bytes = json(&["ls", p, "--prefix", "hex:ff"], 0);
        assert_eq!(bytes["count"], 1);
        // The expired entry says so.
        let old = json(&["ls", p, "--prefix", "session:"], 0);
        assert_eq!(old["entries"][0]["expired"], true);
        cacher()
            .args(["ls", p])
            .assert()
            .success()
            .stdout(contains("KEY"))
            .stdout(contains("b\"user:42\""))
            .stdout(contains("b\"\\xff\\x00bin\""))
            .stdout(contains("7 entries"));
    }
}

#[test]
fn show_and_get_read_one_entry_by_text_or_hex_key() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill(kind, &path);
        let p = path.to_str().unwrap();
        let show = json(&["show", p, "user:42"], 0);
        assert_eq!(show["envelope"]["format"], "json", "{show}");
        assert_eq!(show["envelope"]["mac"], "absent");
        assert_eq!(show["envelope"]["expires_ms"], serde_json::Value::Null);
        assert_eq!(show["check"]["ok"], true);
        cacher()
            .args(["show", p, "session:old"])
            .assert()
            .success()
            .stdout(contains("format    json"))
            .stdout(contains("expires   20"));

        let get = json(&["get", p, "user:42"], 0);
        assert_eq!(get["value"], serde_json::json!({"name": "Ada", "age": 36}));
        let bin = json(&["get", p, "hex:ff0062696e"], 0);
        assert_eq!(bin["value"], "bytes key");
        cacher()
            .args(["get", p, "victim", "--raw"])
            .assert()
            .success()
            .stdout(format!("\"{VICTIM_VALUE}\""));
        cacher()
            .args(["get", p, "user:42"])
            .assert()
            .success()
            .stdout(contains("\"name\": \"Ada\""));

        // A missing key is a problem found (exit 1), named with the store.
        let missing = json(&["get", p, "user:43"], 1);
        let message = missing["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("user:43") && message.contains(p),
            "{message}"
        );
    }
}

#[cfg(feature = "lmdb")]
#[test]
fn unmarked_lmdb_environments_are_told_apart_by_their_contents() {
    use cacher::store::array::{DType, NumpyLmdb};
    let dir = tempfile::tempdir().unwrap();
    // An LmdbStore from before stores wrote markers.
    let lmdb = Kind::Lmdb.path_in(dir.path());
    fill(Kind::Lmdb, &lmdb);
    let _ = std::fs::remove_file(lmdb.join("cacher-lmdb.toml"));
    let stats = json(&["stats", lmdb.to_str().unwrap()], 0);
    assert_eq!(stats["store"]["kind"], "LmdbStore");
    assert_eq!(stats["entries"], 7);

    // A NumpyLmdb as Python writes it: no marker.
    let numpy = dir.path().join("vectors");
    {
        let store = NumpyLmdb::open(&numpy, DType::F32).unwrap();
        store.put("cat", &[0.5f32, 1.5]).unwrap();
        store.put("dog", &[2.5f32, 3.5]).unwrap();
    }
    std::fs::remove_file(numpy.join("cacher-numpy-lmdb.toml")).unwrap();
    let ls = json(&["ls", numpy.to_str().unwrap()], 0);
    assert_eq!(ls["store"]["kind"], "NumpyLmdb");
    assert_eq!(listed_keys(&ls), ["cat", "dog"]);
    assert_eq!(ls["entries"][0]["size"], 8);
    assert_eq!(ls["entries"][0]["status"], "array");
    json(&["verify", numpy.to_str().unwrap()], 0);
    let get = json(&["get", numpy.to_str().unwrap(), "cat"], 0);
    let mut expected = 0.5f32.to_le_bytes().to_vec();
    expected.extend(1.5f32.to_le_bytes());
    assert_eq!(get["value"]["hex"], cacher_hex(&expected));
}

#[cfg(feature = "lmdb")]
#[test]
fn an_array_store_is_found_by_its_marker_and_listed() {
    use cacher::store::array::ArrayStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arrays");
    {
        let store = ArrayStore::open(&path).unwrap();
        store
            .put_array("m", &[1.0f32, 2.0, 3.0, 4.0], &[2, 2])
            .unwrap();
    }
    let p = path.to_str().unwrap();
    let ls = json(&["ls", p], 0);
    assert_eq!(ls["store"]["kind"], "ArrayStore", "{ls}");
    assert_eq!(listed_keys(&ls), ["m"]);
    assert_eq!(ls["entries"][0]["status"], "array");
    json(&["verify", p], 0);
    let show = json(&["show", p, "m"], 0);
    assert_eq!(show["envelope"], serde_json::Value::Null);
}

#[cfg(feature = "lmdb")]
fn cacher_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
