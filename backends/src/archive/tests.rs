//! Archive round trips, `zstd -d`, the scan, and damage at every byte.

use super::*;
use crate::Error;

fn value(key: usize, rev: u64) -> Vec<u8> {
    format!(
        "{{\"id\":{key},\"name\":\"user {key}\",\"revision\":{rev},\"score\":{},\"tags\":[\"a\",\"b\"]}}",
        key * 7 + rev as usize
    )
    .into_bytes()
}

fn write(
    dir: &std::path::Path,
    name: &str,
    keys: usize,
    revs: u64,
    options: &ArchiveOptions,
) -> std::path::PathBuf {
    let mut w = ArchiveWriter::create(dir, name, options).unwrap();
    for k in 0..keys {
        let values: Vec<Vec<u8>> = (1..=revs).map(|r| value(k, r)).collect();
        let names: Vec<String> = (1..=revs).map(|r| format!("dump {r}")).collect();
        let revisions: Vec<ArchivedRevision<'_>> = (1..=revs)
            .map(|r| ArchivedRevision {
                revision: r,
                time_ms: 1_000 * r,
                name: (r == 1).then_some(names[r as usize - 1].as_str()),
                value: &values[r as usize - 1],
            })
            .collect();
        w.add(format!("key-{k}").as_bytes(), &revisions).unwrap();
    }
    w.finish().unwrap()
}

fn dictionary() -> Vec<u8> {
    let samples: Vec<Vec<u8>> = (0..200)
        .flat_map(|k| (1..=3).map(move |r| value(k, r)))
        .collect();
    let refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
    train_dictionary(&refs, 4096).unwrap()
}

#[test]
fn every_revision_reads_back_with_and_without_a_dictionary() {
    for options in [
        ArchiveOptions::default(),
        ArchiveOptions::default().with_dictionary(dictionary()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "a", 50, 4, &options);
        let archive = Archive::open(&path).unwrap();
        assert_eq!(archive.len(), 50);
        assert_eq!(archive.has_dictionary(), options.dictionary.is_some());
        for k in 0..50 {
            let key = format!("key-{k}");
            for r in 1..=4 {
                assert_eq!(archive.get(key.as_bytes(), r).unwrap(), Some(value(k, r)));
            }
            assert_eq!(archive.get(key.as_bytes(), 5).unwrap(), None);
            assert_eq!(
                archive.get_named(key.as_bytes(), "dump 1").unwrap(),
                Some(value(k, 1))
            );
            assert_eq!(archive.get_named(key.as_bytes(), "dump 2").unwrap(), None);
            let infos = archive.revisions(key.as_bytes()).unwrap();
            assert_eq!(
                infos.iter().map(|i| i.revision).collect::<Vec<_>>(),
                [1, 2, 3, 4]
            );
            assert_eq!(infos[0].name.as_deref(), Some("dump 1"));
            assert_eq!(infos[3].time_ms, 4000);
            assert_eq!(infos[2].len, value(k, 3).len() as u64);
        }
        assert_eq!(archive.get(b"key-50", 1).unwrap(), None);
        assert!(archive.revisions(b"nope").unwrap().is_empty());
    }
}

#[test]
fn zstd_cli_decompresses_the_archive_into_the_group_records() {
    if std::process::Command::new("zstd")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(std::env::var_os("CI").is_none(), "zstd is missing under CI");
        eprintln!("skipped: the zstd command is not installed");
        return;
    }
    for with_dict in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut options = ArchiveOptions::default();
        if with_dict {
            options = options.with_dictionary(dictionary());
        }
        let path = write(dir.path(), "cli", 20, 3, &options);
        let mut cmd = std::process::Command::new("zstd");
        cmd.args(["-d", "-c", "-q"]).arg(&path);
        if with_dict {
            let dict = dir.path().join("dict");
            std::fs::write(
                &dict,
                Archive::open(&path).unwrap().dictionary().unwrap().unwrap(),
            )
            .unwrap();
            cmd.arg("-D").arg(&dict);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "zstd -d failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The output is the 20 group records back to back: each starts with the group magic
        // and every value appears in it.
        let text = out.stdout;
        assert_eq!(
            text.windows(4)
                .filter(|w| *w == format::GROUP_MAGIC)
                .count(),
            20
        );
        for k in 0..20 {
            let v = value(k, 3);
            assert!(
                text.windows(v.len()).any(|w| w == v),
                "value of key {k} missing"
            );
        }
    }
}

#[test]
fn scan_rebuilds_what_the_index_says() {
    let dir = tempfile::tempdir().unwrap();
    let options = ArchiveOptions::default().with_dictionary(dictionary());
    let path = write(dir.path(), "s", 30, 3, &options);
    let scan = Archive::scan(&path, &options).unwrap();
    assert!(scan.damaged.is_empty(), "{:?}", scan.damaged);
    assert_eq!(scan.groups.len(), 30);
    let archive = Archive::open(&path).unwrap();
    for g in &scan.groups {
        assert_eq!(archive.revisions(&g.key).unwrap(), g.revisions);
    }
}

#[test]
fn a_flipped_byte_anywhere_gives_the_value_a_miss_or_an_error_never_another_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "d", 3, 2, &ArchiveOptions::default());
    let pristine = std::fs::read(&path).unwrap();
    let damaged = dir.path().join("damaged.archive.zst");
    let mut wrong = 0;
    for at in 0..pristine.len() {
        for flip in [0x01u8, 0x80] {
            let mut bytes = pristine.clone();
            bytes[at] ^= flip;
            std::fs::write(&damaged, &bytes).unwrap();
            let Ok(archive) = Archive::open(&damaged) else {
                continue;
            };
            for k in 0..3 {
                for r in 1..=2 {
                    match archive.get(format!("key-{k}").as_bytes(), r) {
                        Ok(Some(v)) if v != value(k, r) => wrong += 1,
                        Ok(_) | Err(Error::Corrupt { .. }) => {}
                        Err(e) => panic!("unexpected error kind at byte {at}: {e}"),
                    }
                }
            }
            let _ = Archive::scan(&damaged, &ArchiveOptions::default()).unwrap();
        }
    }
    assert_eq!(wrong, 0, "wrong values returned from damaged archives");
}

#[test]
fn a_truncated_archive_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "t", 3, 2, &ArchiveOptions::default());
    let pristine = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.archive.zst");
    for len in 0..pristine.len() {
        std::fs::write(&cut, &pristine[..len]).unwrap();
        assert!(
            matches!(Archive::open(&cut), Err(Error::Corrupt { .. })),
            "opened at {len} bytes"
        );
        let scan = Archive::scan(&cut, &ArchiveOptions::default()).unwrap();
        assert!(scan.groups.len() <= 3);
    }
}

#[test]
fn a_hostile_group_length_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let options = ArchiveOptions::default().with_max_group_bytes(1 << 20);
    let path = write(dir.path(), "h", 1, 1, &options);
    let mut bytes = std::fs::read(&path).unwrap();
    // Rewrite the one index entry's group length to 4 GiB - 1 and fix the index crc, as a
    // hostile writer would: the reader refuses it by its limit.
    let footer = format::Footer::decode(&bytes[bytes.len() - format::FOOTER_LEN..]).unwrap();
    let body = footer.index_offset as usize + 12;
    let entry = body + 8;
    // Version 2 entry: hash (8), offset (8), frame length (4), then the group length.
    bytes[entry + 20..entry + 24].copy_from_slice(&u32::MAX.to_le_bytes());
    let crc_at = body + 8 + format::ENTRY_LEN;
    let crc = crc32fast::hash(&bytes[body..crc_at]);
    bytes[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = Archive::open_with(&path, &options).unwrap_err();
    assert!(err.to_string().contains("out of bounds"), "{err}");
}

#[test]
fn an_unfinished_writer_leaves_no_archive_and_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = ArchiveWriter::create(dir.path(), "never", &ArchiveOptions::default()).unwrap();
    w.add(
        b"k",
        &[ArchivedRevision {
            revision: 1,
            time_ms: 0,
            name: None,
            value: b"v",
        }],
    )
    .unwrap();
    drop(w);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn an_archive_is_never_replaced_and_names_are_plain() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "once", 1, 1, &ArchiveOptions::default());
    let mut w = ArchiveWriter::create(dir.path(), "once", &ArchiveOptions::default()).unwrap();
    w.add(
        b"k",
        &[ArchivedRevision {
            revision: 1,
            time_ms: 0,
            name: None,
            value: b"v",
        }],
    )
    .unwrap();
    assert!(w.finish().is_err());
    for bad in ["", "../x", "a/b", ".hidden"] {
        assert!(matches!(
            ArchiveWriter::create(dir.path(), bad, &ArchiveOptions::default()),
            Err(Error::InvalidArgument { .. })
        ));
    }
}

#[test]
fn duplicate_keys_and_revision_numbers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = ArchiveWriter::create(dir.path(), "dup", &ArchiveOptions::default()).unwrap();
    let r = ArchivedRevision {
        revision: 1,
        time_ms: 0,
        name: None,
        value: b"v",
    };
    assert!(w.add(b"k", &[r, r]).is_err());
    w.add(b"k2", &[r]).unwrap();
    assert!(w.add(b"k2", &[r]).is_err());
}

#[test]
fn a_planted_symlink_is_not_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "real", 1, 1, &ArchiveOptions::default());
    let link = dir.path().join("link.archive.zst");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    assert!(matches!(Archive::open(&link), Err(Error::NotOwned { .. })));
}

/// Golden files: `fixtures/archive/v1.archive.zst` (no dictionary) and `v1-dict.archive.zst`,
/// written by the version-1 writer, and `v2.archive.zst` / `v2-dict.archive.zst`, written by
/// `CACHER_WRITE_FIXTURES=1 cargo test -p cacher-store --features archive archive::tests::golden`
/// (which writes the current version); every later build must read them all.
#[test]
fn golden_v1_and_v2_archives_still_read() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/archive");
    if std::env::var_os("CACHER_WRITE_FIXTURES").is_some() {
        std::fs::create_dir_all(&fixtures).unwrap();
        for (name, options) in [
            ("v2", ArchiveOptions::default()),
            (
                "v2-dict",
                ArchiveOptions::default().with_dictionary(dictionary()),
            ),
        ] {
            let _ = std::fs::remove_file(fixtures.join(format!("{name}.{EXTENSION}")));
            write(&fixtures, name, 4, 3, &options);
        }
    }
    for (name, version) in [("v1", 1), ("v1-dict", 1), ("v2", 2), ("v2-dict", 2)] {
        let archive = Archive::open(fixtures.join(format!("{name}.{EXTENSION}"))).unwrap();
        assert_eq!((archive.len(), archive.version()), (4, version), "{name}");
        for k in 0..4 {
            for r in 1..=3 {
                assert_eq!(
                    archive.get(format!("key-{k}").as_bytes(), r).unwrap(),
                    Some(value(k, r)),
                    "{name}"
                );
            }
            assert_eq!(
                archive
                    .get_named(format!("key-{k}").as_bytes(), "dump 1")
                    .unwrap(),
                Some(value(k, 1))
            );
        }
        let scan = Archive::scan(archive.path(), &ArchiveOptions::default()).unwrap();
        assert!(scan.damaged.is_empty() && scan.groups.len() == 4, "{name}");
    }
}

#[test]
fn keys_sharing_an_eight_byte_hash_are_told_apart_by_the_key_in_the_frame() {
    // Forge a collision: give the first index entry the second one's hash, so a lookup of the
    // second key meets the first key's frame first and must move on to its own.
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "c", 2, 2, &ArchiveOptions::default());
    let mut bytes = std::fs::read(&path).unwrap();
    let footer = bytes.len() - super::format::FOOTER_LEN;
    let index_at = u64::from_le_bytes(bytes[footer + 16..footer + 24].try_into().unwrap()) as usize;
    let entries = index_at + 12 + 8;
    let e = super::format::ENTRY_LEN;
    let second: [u8; 8] = bytes[entries + e..entries + e + 8].try_into().unwrap();
    bytes[entries..entries + 8].copy_from_slice(&second);
    let content_end = entries + 2 * e;
    let crc = crc32fast::hash(&bytes[index_at + 12..content_end]);
    bytes[content_end..content_end + 4].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let archive = Archive::open(&path).unwrap();
    let keys = [b"key-0".as_slice(), b"key-1".as_slice()];
    let found: Vec<_> = keys.iter().map(|k| archive.get(k, 2).unwrap()).collect();
    // The key whose hash both entries carry reads its own value; the other one, whose hash is
    // gone from the index, is a miss: never the other key's value.
    let hits: Vec<usize> = (0..2).filter(|&i| found[i].is_some()).collect();
    assert_eq!(hits.len(), 1, "{found:?}");
    assert_eq!(found[hits[0]], Some(value(hits[0], 2)));
}
