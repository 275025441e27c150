//! HybridStore: the conformance kit, both sides of the threshold.

use super::*;

fn small(dir: &Path) -> HybridStore {
    // A low threshold so the kit's values land on both sides of it.
    HybridStore::options()
        .inline_max(1000)
        .durability(Durability::None)
        .open(dir)
        .unwrap()
}

crate::conformance_tests!(|dir: &std::path::Path| small(dir), persistent = true);

#[test]
fn small_values_stay_inline_and_large_ones_get_one_file_each() {
    let dir = tempfile::tempdir().unwrap();
    let store = small(dir.path());
    store.put(b"a", &[1; 1000]).unwrap();
    store.put(b"b", &[2; 1001]).unwrap();
    let count = || {
        walk(&dir.path().join("files"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "blob"))
            .count()
    };
    assert_eq!(count(), 1);
    // Overwriting a file value with another removes the old file; inline removes it too.
    store.put(b"b", &[3; 5000]).unwrap();
    assert_eq!(count(), 1);
    store.put(b"b", b"tiny").unwrap();
    assert_eq!(count(), 0);
    store.put(b"c", &[4; 5000]).unwrap();
    assert!(store.delete(b"c").unwrap());
    assert_eq!(count(), 0);
}

pub(super) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn verify_lists_a_damaged_value_file_and_checks_every_entry() {
    // A damaged value file is listed by the trait's default verify as well (its `get` fails
    // with `Corrupt`); the case the override exists for is a damaged index record, in
    // `verify_lists_a_damaged_inline_record_which_the_default_verify_cannot`.
    let dir = tempfile::tempdir().unwrap();
    let store = small(dir.path());
    store.put(b"inline", b"a sound small value").unwrap();
    store.put(b"file", &[7u8; 5000]).unwrap();
    store.put(b"sound-file", &[8u8; 5000]).unwrap();
    let blob = walk(&dir.path().join("files"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "blob"))
        .find(|p| std::fs::read(p).unwrap().ends_with(&[7u8; 100]))
        .unwrap();
    let mut file = std::fs::read(&blob).unwrap();
    let last = file.len() - 1;
    file[last] ^= 1;
    std::fs::write(&blob, &file).unwrap();
    let report = store.verify().unwrap();
    let damaged: Vec<&[u8]> = report.damaged.iter().map(|(k, _)| &k[..]).collect();
    assert_eq!(damaged, [&b"file"[..]]);
    assert_eq!(report.checked, 3);
}

#[test]
fn the_marker_is_written_byte_for_byte_as_hybrid_stores_always_wrote_it() {
    // The text of `fixtures/hybrid/v1-store/cacher-hybrid.toml`, written before HybridStore
    // used the shared marker module.
    let written_since_v1 = "# cacher store layout marker\nlayout = \"hybrid\"\nversion = 1\n";
    let dir = tempfile::tempdir().unwrap();
    drop(small(dir.path()));
    let marker = std::fs::read_to_string(dir.path().join("cacher-hybrid.toml")).unwrap();
    assert_eq!(marker, written_since_v1);
    // And reopening reads it.
    drop(small(dir.path()));
}

#[test]
fn other_stores_refuse_a_hybrid_directory_naming_it() {
    // Before HybridStore was a `marker::Kind`, DirStore opened a HybridStore's directory and
    // wrote its own layout into it, and a LogStore file could be created inside it.
    let dir = tempfile::tempdir().unwrap();
    drop(small(dir.path()));
    let dir_err = crate::DirStore::open(dir.path()).unwrap_err();
    let log_err = crate::LogStore::open(dir.path().join("store.log")).unwrap_err();
    let lmdb_err = LmdbStore::open(dir.path()).unwrap_err();
    for err in [dir_err, log_err, lmdb_err] {
        assert!(matches!(err, Error::WrongLayout { .. }), "{err}");
        assert!(err.to_string().contains("HybridStore"), "{err}");
    }
    assert!(!dir.path().join("cacher-dir.toml").exists());
    assert!(!dir.path().join("store.log").exists());
    assert!(!dir.path().join("data.mdb").exists());
}

#[test]
fn a_newer_hybrid_layout_is_upgrade_required_not_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    drop(small(dir.path()));
    let marker = dir.path().join("cacher-hybrid.toml");
    let text = std::fs::read_to_string(&marker).unwrap();
    std::fs::write(&marker, text.replace("version = 1", "version = 2")).unwrap();
    let err = HybridStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UpgradeRequired {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
}

/// A HybridStore seen through the `Store` trait's default `verify` (everything else
/// forwarded): what `verify` was before HybridStore overrode it.
struct DefaultVerify<'a>(&'a HybridStore);

impl Store for DefaultVerify<'_> {
    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        self.0.read(key)
    }
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.put(key, value)
    }
    fn delete(&self, key: &[u8]) -> Result<bool> {
        self.0.delete(key)
    }
    fn keys(&self) -> Result<KeyIter<'_>> {
        self.0.keys()
    }
    fn flush(&self) -> Result<()> {
        self.0.flush()
    }
}

/// Flips one byte of every copy of `needle` in the closed index's `data.mdb` (LMDB copies
/// pages on write, so freed pages may hold older copies; the live one is among them).
fn damage_index(dir: &Path, needle: &[u8]) {
    let mdb = dir.join("index").join("data.mdb");
    let mut bytes = std::fs::read(&mdb).unwrap();
    let copies: Vec<usize> = (0..bytes.len() - needle.len())
        .filter(|&i| bytes[i..].starts_with(needle))
        .collect();
    assert!(!copies.is_empty(), "the value is not in {}", mdb.display());
    for i in copies {
        bytes[i + needle.len() / 2] ^= 0x20;
    }
    std::fs::write(&mdb, bytes).unwrap();
}

#[test]
fn verify_lists_a_damaged_inline_record_which_the_default_verify_cannot() {
    // The case HybridStore's `verify` override exists for: a damaged record in the index.
    let dir = tempfile::tempdir().unwrap();
    let needle = b"an inline value that will be damaged on disk";
    {
        let store = small(dir.path());
        store.put(b"inline", needle).unwrap();
        store.put(b"sound", b"a sound small value").unwrap();
        store.put(b"file", &[7u8; 5000]).unwrap();
        store.flush().unwrap();
    } // the environment is closed here: its pages are all in data.mdb, none cached in-process
    damage_index(dir.path(), needle);
    let store = small(dir.path());
    assert!(store.get(b"inline").unwrap_err().is_corrupt());

    let report = store.verify().unwrap();
    let damaged: Vec<&[u8]> = report.damaged.iter().map(|(k, _)| &k[..]).collect();
    assert_eq!(damaged, [&b"inline"[..]], "{report:?}");
    assert_eq!(report.checked, 3);

    // The trait's default walks `keys()`, whose item for the damaged record is an error: the
    // whole walk fails there, with no report of the other entries.
    let default = DefaultVerify(&store).verify();
    assert!(
        default.as_ref().is_err_and(Error::is_corrupt),
        "the default verify reports: {default:?}"
    );
}

#[test]
fn the_unchecked_stream_skips_only_the_checksum_not_the_file_checks() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    let store = small(dir.path());
    store.put(b"inline", b"small").unwrap();
    store.put(b"file", &[7u8; 5000]).unwrap();
    let drain = |r: Option<ValueReader>| {
        let mut out = Vec::new();
        r.unwrap().read_to_end(&mut out).map(|_| out)
    };
    assert_eq!(
        drain(store.read_stream_unchecked(b"inline").unwrap()).unwrap(),
        b"small"
    );
    assert_eq!(
        drain(store.read_stream_unchecked(b"file").unwrap()).unwrap(),
        [7u8; 5000]
    );
    assert!(store.read_stream_unchecked(b"missing").unwrap().is_none());
    let blob = walk(&dir.path().join("files"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "blob"))
        .unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&blob, &bytes).unwrap();
    // A flipped value byte: the checked stream fails at its end, the unchecked one leaves it
    // to its caller (the blob envelope's own checksum).
    assert!(drain(store.read_stream(b"file").unwrap()).is_err());
    assert_eq!(
        drain(store.read_stream_unchecked(b"file").unwrap())
            .unwrap()
            .len(),
        5000
    );
    // A file cut short is refused before the first byte either way.
    std::fs::write(&blob, &bytes[..bytes.len() - 1]).unwrap();
    assert!(store
        .read_stream_unchecked(b"file")
        .unwrap_err()
        .is_corrupt());
}

#[test]
fn a_damaged_record_keeps_garbage_collection_from_removing_value_files_not_from_running() {
    // `collect_garbage` failed on the first damaged record, so `Cache::open` of a store with
    // one failed; removing files regardless could delete the file the damaged record names.
    let dir = tempfile::tempdir().unwrap();
    let needle = b"an inline value that will be damaged on disk";
    {
        let store = small(dir.path());
        store.put(b"inline", needle).unwrap();
        store.put(b"file", &[7u8; 5000]).unwrap();
        store.flush().unwrap();
    }
    // An unreferenced value file, as a crash between rename and commit leaves one.
    let orphan = dir
        .path()
        .join("files")
        .join("ab")
        .join(format!("ab{}.blob", "0".repeat(30)));
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    let mut bytes = files::FILE_MAGIC.to_vec();
    bytes.extend_from_slice(&[0; 8]);
    std::fs::write(&orphan, &bytes).unwrap();
    damage_index(dir.path(), needle);
    let store = small(dir.path());
    assert_eq!(store.collect_garbage(Duration::ZERO).unwrap(), 0);
    assert!(orphan.exists());
    assert_eq!(store.get(b"file").unwrap().unwrap(), [7u8; 5000]);
    // Once the damaged record is gone, the orphan is collected.
    assert!(store.delete(b"inline").unwrap());
    assert_eq!(store.collect_garbage(Duration::ZERO).unwrap(), 1);
    assert!(!orphan.exists());
}
