//! The default store, HybridStore (what `Cache::open` makes): small values inline in its LMDB
//! index, large ones in files of their own. Every command knows it by its marker, so its
//! `index/` is never taken for the store.

#![cfg(feature = "lmdb")]

use std::path::{Path, PathBuf};

use cacher::store::{HybridStore, Store};
use cacher::Cache;

use crate::support::{self, entries, json, listed_keys, Kind};

/// A value well over the 64 KiB inline limit even after compression: random letters.
fn large_text() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..200_000)
        .map(|_| {
            // xorshift64: cheap bytes zstd cannot squeeze below the threshold.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state % 64) as usize] as char
        })
        .collect()
}

/// Writes `small` and `big` through `Cache::open` at `dir/hybrid` and returns the path.
fn hybrid_cache(dir: &Path) -> PathBuf {
    let path = dir.join("hybrid");
    let cache = Cache::open(&path).unwrap();
    cache.put("small", "a short value").unwrap();
    cache.put("big", &large_text()).unwrap();
    cache.store().flush().unwrap();
    drop(cache);
    path
}

/// The value files of the HybridStore at `path`.
fn value_files(path: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for shard in std::fs::read_dir(path.join("files")).unwrap().flatten() {
        if shard.file_name() == "tmp" {
            continue;
        }
        for file in std::fs::read_dir(shard.path()).unwrap().flatten() {
            found.push(file.path());
        }
    }
    found
}

/// Flips a byte of `small`'s inline value in the index ("a short" becomes "a sHort").
fn damage_small(path: &Path) {
    // Every copy: LMDB copies pages on write, so freed pages hold old copies too.
    let mdb = path.join("index/data.mdb");
    let bytes = std::fs::read(&mdb).unwrap();
    let needle = b"a short value";
    let copies: Vec<usize> = (0..bytes.len() - needle.len())
        .filter(|&i| &bytes[i..i + needle.len()] == needle)
        .collect();
    assert!(
        !copies.is_empty(),
        "the small value is not in {}",
        mdb.display()
    );
    let mut bytes = bytes;
    for i in copies {
        bytes[i + 3] ^= 0x20;
    }
    std::fs::write(&mdb, bytes).unwrap();
}

fn hybrid_entries(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let store = HybridStore::open(path).unwrap();
    let mut all: Vec<_> = store.scan().unwrap().map(Result::unwrap).collect();
    all.sort();
    all
}

#[test]
fn stats_and_ls_read_a_hybrid_store_not_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = hybrid_cache(dir.path());
    let at = path.to_str().unwrap();
    assert_eq!(value_files(&path).len(), 1, "only `big` gets a file");

    let stats = json(&["stats", at], 0);
    assert_eq!(stats["store"]["kind"], "HybridStore", "{stats}");
    assert_eq!(stats["entries"], 2, "{stats}");
    assert_eq!(stats["facts"]["value_files"], 1, "{stats}");
    assert_eq!(stats["facts"]["temp_files"], 0, "{stats}");

    let ls = json(&["ls", at], 0);
    let mut keys = listed_keys(&ls);
    keys.sort();
    assert_eq!(keys, ["big", "small"], "{ls}");
}

#[test]
fn get_prints_a_large_value_read_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = hybrid_cache(dir.path());
    let got = json(&["get", path.to_str().unwrap(), "big"], 0);
    assert_eq!(got["value"], large_text().as_str());
    let got = json(&["get", path.to_str().unwrap(), "small"], 0);
    assert_eq!(got["value"], "a short value");
}

#[test]
fn verify_passes_a_sound_hybrid_store_and_reports_a_damaged_value_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = hybrid_cache(dir.path());
    let at = path.to_str().unwrap();
    let report = json(&["verify", at], 0);
    assert_eq!(report["checked"], 2, "{report}");
    assert_eq!(report["ok"], true, "{report}");

    // A byte in the middle of the value file (its header is the first 16 bytes).
    let file = &value_files(&path)[0];
    let mut bytes = std::fs::read(file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(file, bytes).unwrap();
    let report = json(&["verify", at], 1);
    let damaged = report["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{report}");
    assert_eq!(damaged[0]["key"]["utf8"], "big", "{report}");
    support::cacher()
        .args(["verify", at])
        .assert()
        .code(1)
        .stdout(predicates::str::contains("b\"big\""))
        .stdout(predicates::str::contains("1 damaged"));
    // The small value still reads.
    assert_eq!(json(&["get", at, "small"], 0)["value"], "a short value");
}

#[test]
fn export_then_import_moves_a_hybrid_store_into_another_kind_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = hybrid_cache(dir.path());
    let dump = dir.path().join("hybrid.dump");
    json(
        &["export", path.to_str().unwrap(), dump.to_str().unwrap()],
        0,
    );

    let dst = Kind::Log.path_in(dir.path());
    let report = json(
        &[
            "import",
            dst.to_str().unwrap(),
            dump.to_str().unwrap(),
            "--create",
            "log",
        ],
        0,
    );
    assert_eq!(report["store"]["kind"], "LogStore", "{report}");
    let want = hybrid_entries(&path);
    assert_eq!(want.len(), 2);
    assert_eq!(entries(Kind::Log, &dst), want);

    let back = dir.path().join("hybrid-again");
    let report = json(
        &[
            "import",
            back.to_str().unwrap(),
            dump.to_str().unwrap(),
            "--create",
            "hybrid",
        ],
        0,
    );
    assert_eq!(report["store"]["kind"], "HybridStore", "{report}");
    assert_eq!(hybrid_entries(&back), want);
    assert_eq!(
        value_files(&back).len(),
        1,
        "the large value is a file again"
    );
}

#[test]
fn doctor_reads_the_hybrid_marker_and_compact_refuses_naming_the_kind() {
    let dir = tempfile::tempdir().unwrap();
    let path = hybrid_cache(dir.path());
    let at = path.to_str().unwrap();
    let report = json(&["doctor", at], 0);
    assert_eq!(report["store"]["kind"], "HybridStore", "{report}");
    let detail = |name: &str| -> Vec<String> {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["check"] == name)
            .map(|c| c["detail"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        detail("kind"),
        ["HybridStore, from marker cacher-hybrid.toml"]
    );
    assert_eq!(
        detail("layout"),
        ["HybridStore layout version 1 (cacher-hybrid.toml)"]
    );

    std::fs::write(path.join("files/tmp/put-left"), b"half a value").unwrap();
    let report = json(&["doctor", at], 0);
    let temps: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "temp files")
        .collect();
    assert_eq!(temps.len(), 1, "{report}");
    assert_eq!(temps[0]["status"], "info", "{report}");
    assert!(temps[0]["detail"].as_str().unwrap().contains("put-left"));

    let report = json(&["compact", at], 2);
    let message = report["error"]["message"].as_str().unwrap();
    assert!(message.contains("HybridStore"), "{message}");
}

#[test]
fn verify_quarantine_moves_a_damaged_value_file_aside_as_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = hybrid_cache(dir.path());
    let at = path.to_str().unwrap();
    let file = &value_files(&path)[0];
    let mut bytes = std::fs::read(file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(file, &bytes).unwrap();

    let report = json(&["verify", at, "--quarantine"], 1);
    let moved = report["quarantine"]["moved"].as_array().unwrap();
    assert_eq!(moved.len(), 1, "{report}");
    assert_eq!(moved[0]["key"]["utf8"], "big", "{report}");
    // The value as the file held it, damage included, without the file's 16-byte header.
    let kept = std::fs::read(moved[0]["file"].as_str().unwrap()).unwrap();
    assert_eq!(
        kept,
        bytes[16..],
        "the quarantined bytes are not the damaged value"
    );
    assert!(
        value_files(&path).is_empty(),
        "the damaged file is removed with its entry"
    );

    let again = json(&["verify", at], 0);
    assert_eq!(again["checked"], 1, "{again}");
    assert_eq!(json(&["get", at, "small"], 0)["value"], "a short value");
}

#[test]
fn verify_reports_a_damaged_inline_value_and_checks_the_rest() {
    // The index lists a damaged record's key as an error item: verify must report the entry,
    // not stop there.
    let dir = tempfile::tempdir().unwrap();
    let path = hybrid_cache(dir.path());
    let at = path.to_str().unwrap();
    damage_small(&path);
    let report = json(&["verify", at], 1);
    let damaged = report["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{report}");
    assert_eq!(damaged[0]["key"]["utf8"], "small", "{report}");
    assert_eq!(report["checked"], 2, "{report}");
    assert_eq!(json(&["get", at, "big"], 0)["value"], large_text().as_str());
}

#[test]
fn verify_quarantine_copies_a_damaged_inline_record_out_of_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = hybrid_cache(dir.path());
    let at = path.to_str().unwrap();
    damage_small(&path);
    let report = json(&["verify", at, "--quarantine"], 1);
    let moved = report["quarantine"]["moved"].as_array().unwrap();
    assert_eq!(moved.len(), 1, "{report}");
    assert_eq!(moved[0]["key"]["utf8"], "small", "{report}");
    let kept = std::fs::read(moved[0]["file"].as_str().unwrap()).unwrap();
    assert!(
        kept.windows(6).any(|w| w == b"a sHor"),
        "the quarantined bytes are not the damaged record"
    );
    let again = json(&["verify", at], 0);
    assert_eq!(again["checked"], 1, "{again}");
}

#[test]
fn rm_evict_and_clear_remove_hybrid_entries_with_their_value_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = hybrid_cache(dir.path());
    let at = path.to_str().unwrap();
    json(&["rm", at, "big"], 0);
    assert!(value_files(&path).is_empty(), "rm leaves big's value file");
    assert_eq!(json(&["stats", at], 0)["entries"], 1);

    let path = hybrid_cache(&dir.path().join("again"));
    let at = path.to_str().unwrap();
    let evicted = json(&["evict", at, "--max-entries", "1"], 0);
    assert_eq!(json(&["stats", at], 0)["entries"], 1, "{evicted}");
    json(&["clear", at, "--all"], 0);
    assert_eq!(json(&["stats", at], 0)["entries"], 0);
    assert!(value_files(&path).is_empty(), "clear leaves a value file");
}

/// A HybridStore as a cache with revisions leaves it: `dump` written three times (two old
/// revisions), a memoized call (single-flight takes its lease in `<dir>/leases`), then
/// `cacher archive` moving the old revisions into `<dir>/archives`.
#[cfg(feature = "archive")]
fn hybrid_with_archives(dir: &Path) -> PathBuf {
    let path = dir.join("hybrid");
    let cache = Cache::builder()
        .store(HybridStore::open(&path).unwrap())
        .format("json")
        .keep_revisions(5)
        .build()
        .unwrap();
    for month in ["2026-10", "2026-11", "2026-12"] {
        cache.put("dump", month).unwrap();
    }
    let square = cache.memoize("square").wrap(|x: u64| x * x).unwrap();
    assert_eq!(square.call(3), 9);
    drop(square);
    drop(cache);
    let archived = json(
        &["archive", path.to_str().unwrap(), "--beyond-count", "0"],
        0,
    );
    assert_eq!(archived["archived"]["revisions"], 2, "{archived}");
    path
}

#[cfg(feature = "archive")]
#[test]
fn doctor_and_stats_report_a_hybrid_stores_archives_and_take_leases_as_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = hybrid_with_archives(dir.path());
    let at = path.to_str().unwrap();
    std::fs::create_dir_all(path.join("leases")).unwrap();
    let archives: Vec<PathBuf> = std::fs::read_dir(path.join("archives"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(archives.len(), 1, "{archives:?}");
    let size = std::fs::metadata(&archives[0]).unwrap().len();

    let stats = json(&["stats", at], 0);
    assert_eq!(stats["facts"]["archive_files"], 1, "{stats}");
    assert_eq!(stats["facts"]["archive_bytes"], size, "{stats}");

    let report = json(&["doctor", at], 0);
    assert_eq!(report["healthy"], true, "{report}");
    let archives_check: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "archives")
        .collect();
    assert_eq!(archives_check.len(), 1, "{report}");
    assert_eq!(archives_check[0]["status"], "info", "{report}");
    let detail = archives_check[0]["detail"].as_str().unwrap();
    assert!(detail.starts_with("1 archive file ("), "{detail}");
    assert!(detail.contains("archives"), "{detail}");
    // leases/ and archives/ are among the store's own directories whose access is checked:
    // the marker, index files, files/, files/tmp/, leases/, archives/ and the directory.
    let permissions = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "permissions")
        .unwrap();
    assert!(
        permissions["detail"]
            .as_str()
            .unwrap()
            .contains("the store's 8 files and directories"),
        "{report}"
    );
}

#[test]
fn upgrade_leaves_a_hybrid_store_whose_index_is_layout_2_as_it_is() {
    // Every HybridStore index was written at LmdbStore layout 2 (HybridStore came after it).
    let dir = tempfile::tempdir().unwrap();
    let path = hybrid_cache(dir.path());
    let at = path.to_str().unwrap();
    let before = entries(Kind::Lmdb, &path.join("index"));
    let report = json(&["upgrade", at], 0);
    assert_eq!(report["store"]["kind"], "HybridStore", "{report}");
    assert_eq!(report["rewritten"], 0, "{report}");
    assert_eq!(report["layout"], 2, "{report}");
    assert_eq!(entries(Kind::Lmdb, &path.join("index")), before);
    let verify = json(&["verify", at], 0);
    assert_eq!(verify["unchecked"], 0, "{verify}");
    support::cacher()
        .args(["upgrade", at])
        .assert()
        .success()
        .stdout(predicates::str::contains("at value layout 2 already"));
}
