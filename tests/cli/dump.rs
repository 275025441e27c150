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

#[test]
fn a_compressed_export_imports_into_another_kind_with_the_same_entries() {
    for (from, to) in [(Kind::Dir, Kind::Log), (Kind::Log, Kind::Dir)] {
        let dir = tempfile::tempdir().unwrap();
        let src = from.path_in(dir.path());
        fill(from, &src);
        let dump = dir.path().join("cache.dump.zst");
        let (s, d) = (src.to_str().unwrap(), dump.to_str().unwrap());
        let exported = json(&["export", s, d, "--compress"], 0);
        assert_eq!(exported["compressed"], true, "{exported}");
        assert_eq!(exported["entries"], 7, "{exported}");
        let bytes = std::fs::read(&dump).unwrap();
        // The v1 header with flag bit 0, then a zstd frame.
        assert_eq!(&bytes[..16], b"CACHEDMP\x01\0\0\0\x01\0\0\0");
        assert_eq!(&bytes[16..20], [0x28, 0xb5, 0x2f, 0xfd]);

        let dst = dir.path().join("imported");
        let imported = json(
            &[
                "import",
                dst.to_str().unwrap(),
                d,
                "--create",
                to.create_arg(),
            ],
            0,
        );
        assert_eq!(imported["compressed"], true, "{imported}");
        assert_eq!(imported["entries"], 7, "{imported}");
        assert_eq!(entries(from, &src), entries(to, &dst), "{from:?} -> {to:?}");
        json(&["verify", dst.to_str().unwrap()], 0);
    }
}

/// Dump format v1 with the zstd flag, golden: written by
/// `tests/cli/fixtures/make_v1_zstd_dump.py` from the documented format with the `zstd`
/// tool (not with cacher's writer), so the reader is held to the format, not to itself.
#[test]
fn the_v1_zstd_golden_dump_imports() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/fixtures/v1-zstd.dump");
    let dir = tempfile::tempdir().unwrap();
    let dst = Kind::Log.path_in(dir.path());
    let report = json(
        &[
            "import",
            dst.to_str().unwrap(),
            golden.to_str().unwrap(),
            "--create",
            "log",
        ],
        0,
    );
    assert_eq!(report["entries"], 3, "{report}");
    assert_eq!(report["compressed"], true, "{report}");
    assert_eq!(
        entries(Kind::Log, &dst),
        vec![
            (b"".to_vec(), b"empty key".to_vec()),
            (b"hello".to_vec(), b"world".to_vec()),
            (b"\xff\x00".to_vec(), vec![]),
        ]
    );
}

#[test]
fn a_cut_or_damaged_compressed_dump_is_refused_and_imports_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = Kind::Dir.path_in(dir.path());
    fill(Kind::Dir, &src);
    let dump = dir.path().join("whole.zst");
    json(
        &[
            "export",
            src.to_str().unwrap(),
            dump.to_str().unwrap(),
            "--compress",
        ],
        0,
    );
    let whole = std::fs::read(&dump).unwrap();
    let body = whole.len() - 16;
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    // Cut anywhere: inside the frame header, the records, the last block, the checksum.
    for cut in [2, body / 3, body / 2, body - 5, body - 1] {
        cases.push((format!("cut-{cut}"), whole[..16 + cut].to_vec()));
    }
    // A flipped byte in the compressed data, and in the frame's content checksum.
    for at in [16 + body / 2, whole.len() - 2] {
        let mut flipped = whole.clone();
        flipped[at] ^= 0x04;
        cases.push((format!("flipped-{at}"), flipped));
    }
    // Trailing garbage after the frame.
    cases.push(("trailing".into(), [&whole[..], b"junk"].concat()));
    // An unknown flag.
    let mut flag = whole.clone();
    flag[12] |= 0x02;
    cases.push(("unknown-flag".into(), flag));

    // An existing store: nothing of a refused dump may land in it.
    let dst = Kind::Log.path_in(dir.path());
    {
        Kind::Log.open(&dst).put(b"kept", b"as it was").unwrap();
    }
    let before = entries(Kind::Log, &dst);
    for (name, bytes) in cases {
        let file = dir.path().join(&name);
        std::fs::write(&file, bytes).unwrap();
        let report = json(
            &["import", dst.to_str().unwrap(), file.to_str().unwrap()],
            2,
        );
        let message = report["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(file.to_str().unwrap()),
            "{name}: {message}"
        );
        assert!(
            ["cut short", "damaged", "flags"]
                .iter()
                .any(|w| message.contains(w)),
            "{name}: {message}"
        );
        assert_eq!(entries(Kind::Log, &dst), before, "{name}: {message}");
    }
}
