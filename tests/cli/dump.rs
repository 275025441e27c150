//! `cacher export` / `cacher import`: a cache moves between store kinds and reads the same.

use std::path::Path;

use crate::support::{entries, fill, json, Kind};

#[test]
fn export_then_import_into_another_kind_gives_the_same_entries() {
    for from in Kind::all() {
        for to in Kind::all().into_iter().filter(|&k| k != from) {
            let dir = tempfile::tempdir().unwrap();
            let src = from.path_in(dir.path());
            fill(from, &src);
            let dump = dir.path().join("cache.dump");
            let exported = json(
                &["export", src.to_str().unwrap(), dump.to_str().unwrap()],
                0,
            );
            assert_eq!(exported["entries"], 7, "{from:?}: {exported}");

            let dst = dir.path().join(format!("imported-{}", to.create_arg()));
            let imported = json(
                &[
                    "import",
                    dst.to_str().unwrap(),
                    dump.to_str().unwrap(),
                    "--create",
                    to.create_arg(),
                ],
                0,
            );
            assert_eq!(imported["entries"], 7, "{from:?} -> {to:?}: {imported}");
            assert_eq!(imported["store"]["kind"], to.type_name());
            assert_eq!(entries(from, &src), entries(to, &dst), "{from:?} -> {to:?}");
            // The moved values are sound envelopes under their keys in the new store.
            json(&["verify", dst.to_str().unwrap()], 0);
            let user = json(&["get", dst.to_str().unwrap(), "user:42"], 0);
            assert_eq!(user["value"]["age"], 36, "{from:?} -> {to:?}");
        }
    }
}

#[test]
fn import_into_an_existing_store_overwrites_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let src = Kind::Dir.path_in(dir.path());
    fill(Kind::Dir, &src);
    let dump = dir.path().join("d");
    json(
        &["export", src.to_str().unwrap(), dump.to_str().unwrap()],
        0,
    );
    let dst = Kind::Log.path_in(dir.path());
    {
        let store = Kind::Log.open(&dst);
        store.put(b"only-here", b"x").unwrap();
    }
    json(
        &["import", dst.to_str().unwrap(), dump.to_str().unwrap()],
        0,
    );
    let got = entries(Kind::Log, &dst);
    assert_eq!(got.len(), 8);
    assert!(got.iter().any(|(k, _)| k == b"only-here"));
}

#[test]
fn export_refuses_to_overwrite_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = Kind::Dir.path_in(dir.path());
    fill(Kind::Dir, &src);
    let dump = dir.path().join("exists");
    std::fs::write(&dump, b"keep me").unwrap();
    let report = json(
        &["export", src.to_str().unwrap(), dump.to_str().unwrap()],
        2,
    );
    assert!(report["error"]["message"]
        .as_str()
        .unwrap()
        .contains(dump.to_str().unwrap()));
    assert_eq!(std::fs::read(&dump).unwrap(), b"keep me");
}

fn export_of(dir: &Path) -> Vec<u8> {
    let src = Kind::Dir.path_in(dir);
    fill(Kind::Dir, &src);
    let dump = dir.join("whole.dump");
    json(
        &["export", src.to_str().unwrap(), dump.to_str().unwrap()],
        0,
    );
    std::fs::read(dump).unwrap()
}

#[test]
fn a_damaged_or_cut_dump_is_refused_whole_and_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let whole = export_of(dir.path());
    let mut flipped = whole.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x10;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("cut", whole[..whole.len() - 13].to_vec(), "cut short"),
        ("flipped", flipped, "damaged"),
        (
            "not-a-dump",
            b"hello world, not a dump".to_vec(),
            "CACHEDMP",
        ),
        (
            "newer",
            [&b"CACHEDMP"[..], &2u32.to_le_bytes(), &0u32.to_le_bytes()].concat(),
            "version 2",
        ),
    ];
    for (name, bytes, says) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, bytes).unwrap();
        let dst = dir.path().join(format!("dst-{name}"));
        let report = json(
            &[
                "import",
                dst.to_str().unwrap(),
                file.to_str().unwrap(),
                "--create",
                "dir",
            ],
            2,
        );
        let message = report["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(file.to_str().unwrap()),
            "{name}: {message}"
        );
        assert!(message.contains(says), "{name}: {message}");
        // Checked before a store was created for it.
        assert!(!dst.exists(), "{name}");
    }
}

/// Dump format v1, golden: written from the format's description (src/cli/dump.rs) by a
/// separate script and committed, so the reader and writer are held to the documented bytes;
/// a later cacher must keep reading it.
#[test]
fn the_v1_golden_dump_still_imports() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/fixtures/v1.dump");
    let dir = tempfile::tempdir().unwrap();
    let dst = Kind::Dir.path_in(dir.path());
    let report = json(
        &[
            "import",
            dst.to_str().unwrap(),
            golden.to_str().unwrap(),
            "--create",
            "dir",
        ],
        0,
    );
    assert_eq!(report["entries"], 3, "{report}");
    assert_eq!(
        entries(Kind::Dir, &dst),
        vec![
            (b"".to_vec(), b"empty key".to_vec()),
            (b"hello".to_vec(), b"world".to_vec()),
            (b"\xff\x00".to_vec(), vec![]),
        ]
    );
    // The file's exact bytes: what this build writes for the same entries.
    let src = dir.path().join("src");
    {
        let store = Kind::Dir.open(&src);
        store.put(b"", b"empty key").unwrap();
        store.put(b"\xff\x00", b"").unwrap();
        store.put(b"hello", b"world").unwrap();
    }
    let again = dir.path().join("again.dump");
    json(
        &["export", src.to_str().unwrap(), again.to_str().unwrap()],
        0,
    );
    assert_eq!(
        std::fs::read(again).unwrap(),
        std::fs::read(golden).unwrap()
    );
}
