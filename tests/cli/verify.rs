//! `cacher verify`: every damaged entry is reported, and the exit code says so.

use crate::support::{self, damage_victim, fill, json, Kind};

#[test]
fn verify_passes_a_sound_store_of_every_kind() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill(kind, &path);
        let report = json(&["verify", path.to_str().unwrap()], 0);
        assert_eq!(report["ok"], true, "{kind:?}: {report}");
        assert_eq!(report["checked"], 7, "{kind:?}: {report}");
        assert_eq!(report["store"]["kind"], kind.type_name());
        support::cacher()
            .args(["verify", path.to_str().unwrap()])
            .assert()
            .success()
            .stdout(predicates::str::contains("no damage found"))
            // Not a terminal: no progress bar, nothing on stderr.
            .stderr("");
    }
}

#[test]
fn verify_finds_a_flipped_byte_and_exits_1() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill(kind, &path);
        damage_victim(kind, &path);

        let report = json(&["verify", path.to_str().unwrap()], 1);
        let damaged = report["damaged"].as_array().unwrap();
        assert_eq!(damaged.len(), 1, "{kind:?}: {report}");
        assert_eq!(damaged[0]["key"]["utf8"], "victim", "{kind:?}: {report}");
        assert_eq!(report["ok"], false);

        // The human report names the key too, and the other entries still read.
        support::cacher()
            .args(["verify", path.to_str().unwrap()])
            .assert()
            .code(1)
            .stdout(predicates::str::contains("b\"victim\""))
            .stdout(predicates::str::contains("1 damaged"));
        let user = json(&["get", path.to_str().unwrap(), "user:42"], 0);
        assert_eq!(user["value"]["name"], "Ada", "{kind:?}");
    }
}

#[test]
fn an_envelope_damaged_under_a_sound_store_checksum_is_reported() {
    // The store's own checksum is recomputed over the damage (the bytes are put back through
    // the store), so only the envelope check can find it.
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill(kind, &path);
        {
            let store = kind.open(&path);
            let mut bytes = store.get(b"victim").unwrap().unwrap();
            let last = bytes.len() - 2;
            bytes[last] ^= 0x01;
            store.put(b"victim", &bytes).unwrap();
            // A value copied under another key is refused too: the envelope binds the key.
            let user = store.get(b"user:42").unwrap().unwrap();
            store.put(b"user:43", &user).unwrap();
        }
        let report = json(&["verify", path.to_str().unwrap()], 1);
        let mut keys: Vec<&str> = report["damaged"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                assert_eq!(d["layer"], "envelope", "{kind:?}: {report}");
                d["key"]["utf8"].as_str().unwrap()
            })
            .collect();
        keys.sort();
        assert_eq!(keys, ["user:43", "victim"], "{kind:?}: {report}");
        // `show` says the same about the one entry.
        let show = json(&["show", path.to_str().unwrap(), "victim"], 1);
        assert_eq!(show["check"]["ok"], false, "{kind:?}: {show}");
    }
}

#[test]
fn a_log_damaged_in_the_middle_is_reported_as_damage_not_as_unusable() {
    // A LogStore refuses to open over damage with valid records after it (dropping them would
    // lose acknowledged writes), so verify reports the file, with the offset, and exits 1.
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Log.path_in(dir.path());
    fill(Kind::Log, &path);
    assert!(support::flip_in_file(&path, b"Ada"));
    let report = json(&["verify", path.to_str().unwrap()], 1);
    let damage = &report["damaged"][0];
    assert_eq!(damage["layer"], "file", "{report}");
    assert!(
        damage["error"].as_str().unwrap().contains("offset"),
        "{report}"
    );
    assert_eq!(report["store"]["kind"], "LogStore");
    // Other commands cannot use the store: exit 2, naming it.
    let stats = json(&["stats", path.to_str().unwrap()], 2);
    assert!(stats["error"]["message"]
        .as_str()
        .unwrap()
        .contains(path.to_str().unwrap()));
}

#[test]
fn with_the_mac_key_verify_refuses_values_the_key_did_not_sign() {
    use cacher::formats::Registry;
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Dir.path_in(dir.path());
    let key_file = dir.path().join("mac.key");
    std::fs::write(&key_file, "42".repeat(32)).unwrap();
    {
        let cache = cacher::Cache::builder()
            .store(Kind::Dir.open(&path))
            .registry(Registry::with_builtins().with_mac_key([0x42; 32]))
            .format("json")
            .build()
            .unwrap();
        cache.put("is_admin:root", &true).unwrap();
        // Planted by a writer without the key: a sound envelope, no MAC.
        let plain = cacher::Cache::builder()
            .store(Kind::Dir.open(&path))
            .format("json")
            .build()
            .unwrap();
        plain.put("is_admin:mallory", &true).unwrap();
    }
    let p = path.to_str().unwrap();
    // Without the key the planted value is a sound envelope.
    json(&["verify", p], 0);
    let show = json(&["show", p, "is_admin:root"], 0);
    assert_eq!(show["envelope"]["mac"], "present");

    let k = key_file.to_str().unwrap();
    let report = json(&["verify", p, "--mac-key-file", k], 1);
    let damaged = report["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{report}");
    assert_eq!(damaged[0]["key"]["utf8"], "is_admin:mallory");
    json(&["get", p, "is_admin:root", "--mac-key-file", k], 0);
    json(&["get", p, "is_admin:mallory", "--mac-key-file", k], 1);

    // A key file that is not a key is bad input, named.
    std::fs::write(&key_file, "short").unwrap();
    let bad = json(&["verify", p, "--mac-key-file", k], 2);
    assert!(bad["error"]["message"].as_str().unwrap().contains(k));
}

/// The quarantine directory `verify --quarantine` uses for the store at `path`.
fn quarantine_dir(path: &std::path::Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap().to_os_string();
    name.push(".quarantine");
    path.with_file_name(name)
}

/// The JSON lines of the quarantine's index.
fn index_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(quarantine_dir(path).join("index.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn verify_quarantine_moves_a_damaged_entry_aside_and_a_second_verify_is_clean() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill(kind, &path);
        damage_victim(kind, &path);
        let p = path.to_str().unwrap();

        let report = json(&["verify", p, "--quarantine"], 1);
        let moved = report["quarantine"]["moved"].as_array().unwrap();
        assert_eq!(moved.len(), 1, "{kind:?}: {report}");
        assert_eq!(moved[0]["key"]["utf8"], "victim", "{kind:?}: {report}");
        assert_eq!(report["quarantine"]["not_moved"], serde_json::json!([]));

        // The file holds the damaged bytes as the store kept them, named by the key's hash.
        let file = std::path::PathBuf::from(moved[0]["file"].as_str().unwrap());
        assert_eq!(file.parent().unwrap(), quarantine_dir(&path), "{kind:?}");
        let name = format!("{}.bin", blake3::hash(b"victim").to_hex());
        assert_eq!(file.file_name().unwrap().to_str().unwrap(), name);
        let bytes = std::fs::read(&file).unwrap();
        let half = &support::VICTIM_VALUE.as_bytes()[..20];
        assert!(
            bytes.windows(half.len()).any(|w| w == half),
            "{kind:?}: the quarantined bytes do not hold the value"
        );
        assert!(
            !bytes
                .windows(support::VICTIM_VALUE.len())
                .any(|w| w == support::VICTIM_VALUE.as_bytes()),
            "{kind:?}: the quarantined bytes are not the damaged ones"
        );
        let index = index_lines(&path);
        assert_eq!(index.len(), 1, "{kind:?}");
        assert_eq!(index[0]["key_hex"], "76696374696d", "{kind:?}");
        assert_eq!(index[0]["file"], name.as_str());
        assert!(!index[0]["error"].as_str().unwrap().is_empty());

        // The store no longer holds it; every healthy entry is still there and reads.
        let again = json(&["verify", p], 0);
        assert_eq!(again["checked"], 6, "{kind:?}: {again}");
        json(&["get", p, "victim"], 1);
        let user = json(&["get", p, "user:42"], 0);
        assert_eq!(user["value"]["name"], "Ada", "{kind:?}");
    }
}

#[test]
fn verify_quarantine_moves_only_entries_whose_envelope_is_damaged() {
    for kind in Kind::all() {
        let dir = tempfile::tempdir().unwrap();
        let path = kind.path_in(dir.path());
        fill(kind, &path);
        let before = support::entries(kind, &path);
        {
            let store = kind.open(&path);
            let mut bytes = store.get(b"victim").unwrap().unwrap();
            let last = bytes.len() - 2;
            bytes[last] ^= 0x01;
            store.put(b"victim", &bytes).unwrap();
        }
        let p = path.to_str().unwrap();
        let report = json(&["verify", p, "--quarantine"], 1);
        let moved = report["quarantine"]["moved"].as_array().unwrap();
        assert_eq!(moved.len(), 1, "{kind:?}: {report}");
        assert_eq!(moved[0]["key"]["utf8"], "victim");
        assert_eq!(index_lines(&path)[0]["layer"], "envelope", "{kind:?}");
        json(&["verify", p], 0);
        let mut left = before;
        left.retain(|(k, _)| k != b"victim");
        assert_eq!(support::entries(kind, &path), left, "{kind:?}");
    }
}

#[test]
fn verify_quarantine_on_a_sound_store_moves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Dir.path_in(dir.path());
    fill(Kind::Dir, &path);
    let report = json(&["verify", path.to_str().unwrap(), "--quarantine"], 0);
    assert!(report.get("quarantine").is_none(), "{report}");
    assert!(!quarantine_dir(&path).exists());
}

#[test]
fn verify_quarantine_beside_a_running_log_writer_reports_the_damage_and_moves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Log.path_in(dir.path());
    fill(Kind::Log, &path);
    // Another writer holds the lock (here, this test process; opened before the damage, which
    // its own open would have cut aside).
    let writer = cacher::store::LogStore::open(&path).unwrap();
    damage_victim(Kind::Log, &path);
    let p = path.to_str().unwrap();
    let report = json(&["verify", p, "--quarantine"], 1);
    assert_eq!(report["damaged"][0]["key"]["utf8"], "victim", "{report}");
    assert_eq!(
        report["quarantine"]["moved"],
        serde_json::json!([]),
        "{report}"
    );
    let why = report["quarantine"]["not_moved"][0]["why"]
        .as_str()
        .unwrap();
    assert!(why.contains("locked"), "{why}");
    drop(writer);
}

/// A copy of the layout-1 LMDB fixture (`fixtures/lmdb/v1-store`: 4 entries, values bare,
/// not envelopes), so nothing writes into `fixtures/`.
#[cfg(feature = "lmdb")]
fn v1_lmdb_store(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("v1-store");
    std::fs::create_dir_all(&path).unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lmdb/v1-store");
    std::fs::copy(fixture.join("data.mdb"), path.join("data.mdb")).unwrap();
    path
}

#[cfg(feature = "lmdb")]
#[test]
fn verify_counts_layout_1_entries_without_a_checksum_and_upgrade_gives_them_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = v1_lmdb_store(dir.path());
    let shown = path.to_str().unwrap();
    // The fixture's values are not envelopes: verify's envelope layer reports each (exit 1).
    let before = json(&["verify", shown], 1);
    assert_eq!(before["unchecked"], 4, "{before}");
    support::cacher()
        .args(["verify", shown])
        .assert()
        .code(1)
        .stdout(predicates::str::contains(
            "4 entries have no store checksum (layout 1)",
        ))
        .stdout(predicates::str::contains(format!(
            "`cacher upgrade {shown}`"
        )));

    let upgraded = json(&["upgrade", shown], 0);
    assert_eq!(upgraded["rewritten"], 4, "{upgraded}");
    assert_eq!(upgraded["from_layout"], 1, "{upgraded}");
    assert_eq!(upgraded["layout"], 2, "{upgraded}");
    let after = json(&["verify", shown], 1);
    assert_eq!(after["unchecked"], 0, "{after}");
    let layers: Vec<&str> = after["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["layer"].as_str().unwrap())
        .collect();
    assert_eq!(layers, ["envelope"; 4], "{after}");
    // The values read back the same, now behind their checksum.
    let store = cacher::store::LmdbStore::open(&path).unwrap();
    use cacher::store::Store;
    assert_eq!(store.get(b"short").unwrap().as_deref(), Some(&b"value"[..]));
    drop(store);
    // A second upgrade has nothing to do.
    let again = json(&["upgrade", shown], 0);
    assert_eq!(again["rewritten"], 0, "{again}");
}

#[test]
fn upgrade_refuses_a_store_kind_without_value_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let path = Kind::Dir.path_in(dir.path());
    fill(Kind::Dir, &path);
    let report = json(&["upgrade", path.to_str().unwrap()], 2);
    assert!(
        report["error"].to_string().contains("value layout"),
        "{report}"
    );
}

#[test]
fn upgrade_refuses_a_log_store_without_opening_it_for_writing() {
    // A LogStore writer's open cuts a torn tail: a refused upgrade must not have opened one.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("torn.log");
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/log/v1-torn-tail.log");
    std::fs::copy(&fixture, &path).unwrap();
    let report = json(&["upgrade", path.to_str().unwrap()], 2);
    assert!(
        report["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is a LogStore"),
        "{report}"
    );
    assert!(
        std::fs::read(&path).unwrap() == std::fs::read(&fixture).unwrap(),
        "the refused upgrade changed the log (a writer's open cut its torn tail)"
    );
    assert!(!crate::support::sibling(&path, ".lock").exists());
}
