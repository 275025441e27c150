//! Revisions (issue 12): numbered old values per key, named (pinned) revisions, archival into
//! archive files and back, and crash safety of archival with real killed child processes.

use super::*;
use cacher::store::{DirStore, LogStore};
use cacher::{ArchivePolicy, RevisionPlace};

fn numbers(cache: &Cache, key: &str) -> Vec<u64> {
    cache
        .revisions(key)
        .unwrap()
        .iter()
        .map(|r| r.number)
        .collect()
}

/// Where each of `key`'s revisions is, oldest first.
fn places_of(cache: &Cache, key: &str) -> Vec<RevisionPlace> {
    let revisions = cache.revisions(key).unwrap();
    revisions.into_iter().map(|r| r.place).collect()
}

/// The revision field of the envelope stored under `key`.
fn envelope_revision(store: &dyn Store, key: &[u8]) -> u64 {
    let bytes = store.get(key).unwrap().unwrap();
    cacher::formats::Registry::with_builtins()
        .peek_value(key, &bytes)
        .unwrap()
        .meta()
        .revision
}

#[test]
fn overwrites_become_numbered_revisions_with_their_write_times() {
    let t = env();
    let cache = t.builder().keep_revisions(5).build().unwrap();
    for v in 1..=3u32 {
        cache.put("k", &v).unwrap();
        assert_eq!(envelope_revision(&*t.store, b"k"), u64::from(v));
        t.clock.advance(Duration::from_secs(10));
    }
    let revs = cache.revisions("k").unwrap();
    assert_eq!(numbers(&cache, "k"), [1, 2, 3]);
    assert_eq!(
        revs.iter().map(|r| r.time_ms).collect::<Vec<_>>(),
        [T0, T0 + 10_000, T0 + 20_000]
    );
    assert_eq!(revs[0].place, RevisionPlace::Store);
    assert_eq!(revs[2].place, RevisionPlace::Current);
    assert!(revs.iter().all(|r| r.size > 0 && r.name.is_none()));
    for v in 1..=3u32 {
        assert_eq!(
            cache.get_revision::<u32>("k", u64::from(v)).unwrap(),
            Some(v)
        );
    }
    assert_eq!(cache.get_revision::<u32>("k", 4).unwrap(), None);
    assert_eq!(cache.get::<u32>("k").unwrap(), Some(3));
}

#[test]
fn without_keep_revisions_the_envelope_revision_stays_zero_and_nothing_is_kept() {
    let t = env();
    let cache = t.cache();
    cache.put("k", &1).unwrap();
    cache.put("k", &2).unwrap();
    assert_eq!(envelope_revision(&*t.store, b"k"), 0);
    assert_eq!(t.store.len().unwrap(), 1);
    assert_eq!(cache.get_revision::<u32>("k", 1).unwrap(), None);
}

#[test]
fn only_the_newest_n_unnamed_revisions_are_kept() {
    let t = env();
    let cache = t.builder().keep_revisions(2).build().unwrap();
    for v in 1..=6u32 {
        cache.put("k", &v).unwrap();
    }
    assert_eq!(numbers(&cache, "k"), [4, 5, 6]);
    assert_eq!(cache.get_revision::<u32>("k", 3).unwrap(), None);
    // Current value, 2 records, 1 manifest: pruned records are deleted, not just unlisted.
    assert_eq!(t.store.len().unwrap(), 4);
}

#[test]
fn get_never_returns_an_old_revision_and_the_reserved_key_space_is_refused() {
    let t = env();
    let cache = t.builder().keep_revisions(3).build().unwrap();
    cache.put("k", "old").unwrap();
    cache.put("k", "new").unwrap();
    assert_eq!(cache.get::<String>("k").unwrap().as_deref(), Some("new"));
    cache.remove("k").unwrap();
    assert_eq!(cache.get::<String>("k").unwrap(), None);
    // History outlives the removal of the current value.
    assert_eq!(
        cache.get_revision::<String>("k", 1).unwrap().as_deref(),
        Some("old")
    );
    // A user cannot write into the derived key space, so it can never collide with a record.
    let err = cache
        .put(b"\xff\xfecacher-rev\x00anything", &1)
        .unwrap_err();
    assert!(matches!(err, Error::Revision { .. }), "{err}");
    // The next write after a removal still gets a new number.
    cache.put("k", "again").unwrap();
    assert_eq!(numbers(&cache, "k"), [1, 3]);
}

#[test]
fn values_written_before_revisions_were_kept_get_a_number_when_overwritten() {
    let t = env();
    t.cache().put("k", &"legacy").unwrap();
    let cache = t.builder().keep_revisions(3).build().unwrap();
    cache.put("k", &"new").unwrap();
    assert_eq!(numbers(&cache, "k"), [1, 2]);
    assert_eq!(
        cache.get_revision::<String>("k", 1).unwrap().as_deref(),
        Some("legacy")
    );
}

#[test]
fn keep_revisions_can_be_set_per_namespace() {
    let t = env();
    let cache = t.builder().keep_revisions_in("fetch", 3).build().unwrap();
    // Store keys of memoized functions `fetch` and `other` (namespace@version:hash).
    let (fetch, other) = (
        format!("fetch@1:{}", "ab".repeat(16)),
        format!("other@1:{}", "ab".repeat(16)),
    );
    for v in 0..3 {
        cache.put(&fetch, &v).unwrap();
        cache.put(&other, &v).unwrap();
    }
    assert_eq!(numbers(&cache, &fetch), [1, 2, 3]);
    assert_eq!(cache.revisions(&other).unwrap().len(), 1);
    assert_eq!(cache.get_revision::<i32>(&other, 1).unwrap(), None);
}

#[test]
fn memoized_results_keep_revisions_on_refresh() {
    let t = env();
    let cache = t.builder().keep_revisions(5).build().unwrap();
    let calls = AtomicU32::new(0);
    let memo = cache.wrap("answer", |x: u32| x * 10 + calls.fetch_add(1, SeqCst));
    assert_eq!(memo.call(4), 40);
    assert_eq!(memo.call_with(4, Call::refresh()).unwrap(), 41);
    let key = memo.key_for(&4).unwrap();
    assert_eq!(cache.get_revision::<u32>(&key, 1).unwrap(), Some(40));
}

#[test]
fn a_data_dump_fetcher_reads_any_named_older_dump_back() {
    // The seed's use case: each month's dump is fetched under one key and named by its date;
    // only 1 unnamed revision is kept, yet every named dump stays readable.
    let t = env();
    let cache = t.builder().keep_revisions(1).build().unwrap();
    let months = ["2026-08", "2026-09", "2026-10", "2026-11", "2026-12"];
    for (i, month) in months.iter().enumerate() {
        cache.put("dump", &format!("rows of {month}")).unwrap();
        if i % 2 == 0 {
            cache
                .name_revision("dump", i as u64 + 1, &format!("{month} dump"))
                .unwrap();
        }
        t.clock.advance(Duration::from_secs(30 * 86_400));
    }
    for month in ["2026-08", "2026-10", "2026-12"] {
        let got: Option<String> = cache
            .get_named_revision("dump", &format!("{month} dump"))
            .unwrap();
        assert_eq!(got, Some(format!("rows of {month}")));
    }
    // Unnamed: only the newest one (2026-11) beside the current value.
    assert_eq!(numbers(&cache, "dump"), [1, 3, 4, 5]);
    assert_eq!(cache.get_revision::<String>("dump", 2).unwrap(), None);
    let revs = cache.revisions("dump").unwrap();
    assert_eq!(revs[0].name.as_deref(), Some("2026-08 dump"));
    assert_eq!(revs[3].name.as_deref(), Some("2026-12 dump"));
    assert_eq!(
        cache
            .get_named_revision::<String>("dump", "2026-09 dump")
            .unwrap(),
        None
    );
}

#[test]
fn revision_names_are_unique_per_key_and_must_name_a_revision() {
    let t = env();
    let cache = t.builder().keep_revisions(3).build().unwrap();
    cache.put("k", &1).unwrap();
    cache.put("k", &2).unwrap();
    cache.name_revision("k", 1, "first").unwrap();
    assert!(cache.name_revision("k", 2, "first").is_err());
    assert!(cache.name_revision("k", 9, "nine").is_err());
    assert!(cache.name_revision("k", 2, "").is_err());
    assert!(cache.name_revision("k", 2, &"x".repeat(300)).is_err());
    cache.name_revision("k", 1, "renamed").unwrap();
    assert_eq!(
        cache.get_named_revision::<u32>("k", "renamed").unwrap(),
        Some(1)
    );
    assert_eq!(cache.get_named_revision::<u32>("k", "first").unwrap(), None);
}

#[test]
fn unnamed_revisions_count_against_the_limits_and_named_ones_are_never_evicted() {
    let t = env();
    named_revisions_are_never_evicted(t.builder());
}

/// The same on the default store, whose limits are kept in the store itself (its
/// accounting sees every stored key, revision records and manifests included).
#[test]
fn on_the_default_store_named_revisions_are_never_evicted_either() {
    let dir = tempfile::tempdir().unwrap();
    let store = cacher::store::HybridStore::open(dir.path()).unwrap();
    named_revisions_are_never_evicted(Cache::builder().store(store));
}

fn named_revisions_are_never_evicted(builder: CacheBuilder) {
    let cache = builder.keep_revisions(10).max_entries(3).build().unwrap();
    cache.put("k", &1).unwrap();
    cache.name_revision("k", 1, "pinned").unwrap();
    for v in 2..=6 {
        cache.put("k", &v).unwrap();
    }
    // Tracked: the current value and the unnamed revisions, at most 3 together.
    let unnamed_left = cache
        .revisions("k")
        .unwrap()
        .iter()
        .filter(|r| r.place == RevisionPlace::Store && r.name.is_none())
        .count();
    assert_eq!(unnamed_left, 2);
    assert_eq!(cache.get::<u32>("k").unwrap(), Some(6));
    assert_eq!(
        cache.get_named_revision::<u32>("k", "pinned").unwrap(),
        Some(1)
    );
    // Revisions 2 and 3 were evicted (least recently used), never the named one.
    assert_eq!(cache.stats().total.evictions, 2);
    assert_eq!(cache.get_revision::<u32>("k", 2).unwrap(), None);
}

/// Opens (and reopens) one disk store.
type Opener = Box<dyn Fn() -> Box<dyn Store>>;

fn disk_stores(dir: &std::path::Path) -> Vec<(&'static str, Opener)> {
    let (d, l, m, h) = (
        dir.join("dir"),
        dir.join("log"),
        dir.join("lmdb"),
        dir.join("hybrid"),
    );
    vec![
        (
            "DirStore",
            Box::new(move || Box::new(DirStore::open(&d).unwrap()) as Box<dyn Store>),
        ),
        (
            "LogStore",
            Box::new(move || Box::new(LogStore::open(&l).unwrap())),
        ),
        (
            "LmdbStore",
            Box::new(move || Box::new(cacher::store::LmdbStore::open(&m).unwrap())),
        ),
        (
            "HybridStore",
            Box::new(move || Box::new(cacher::store::HybridStore::open(&h).unwrap())),
        ),
    ]
}

#[test]
fn revisions_and_names_survive_a_restart_on_every_disk_store() {
    let dir = tempfile::tempdir().unwrap();
    for (name, open) in disk_stores(dir.path()) {
        {
            let cache = Cache::builder()
                .store(open())
                .keep_revisions(4)
                .build()
                .unwrap();
            for v in 1..=3u32 {
                cache.put(b"k\x00\xff", &v).unwrap();
            }
            cache.name_revision(b"k\x00\xff", 1, "one").unwrap();
        }
        let cache = Cache::builder()
            .store(open())
            .keep_revisions(4)
            .build()
            .unwrap();
        assert_eq!(
            cache.get_revision::<u32>(b"k\x00\xff", 2).unwrap(),
            Some(2),
            "{name}"
        );
        assert_eq!(
            cache
                .get_named_revision::<u32>(b"k\x00\xff", "one")
                .unwrap(),
            Some(1),
            "{name}"
        );
        cache.put(b"k\x00\xff", &4u32).unwrap();
        assert_eq!(
            numbers(&cache, "k\x00\u{ff}").len(),
            0,
            "{name}: a str key differs"
        );
        let revs = cache.revisions(b"k\x00\xff").unwrap();
        assert_eq!(
            revs.iter().map(|r| r.number).collect::<Vec<_>>(),
            [1, 2, 3, 4],
            "{name}"
        );
    }
}

fn archive_cache(dir: &std::path::Path) -> Cache {
    Cache::builder()
        .store(DirStore::open(dir.join("store")).unwrap())
        .keep_revisions(10)
        .build()
        .unwrap()
}

#[test]
fn archived_revisions_stay_readable_and_restore_brings_one_back() {
    let dir = tempfile::tempdir().unwrap();
    let cache = archive_cache(dir.path());
    for key in ["a", "b"] {
        for v in 1..=5u32 {
            cache.put(key, &v).unwrap();
        }
    }
    cache.name_revision("a", 1, "pinned").unwrap();
    let report = cache.archive(ArchivePolicy::beyond_count(1)).unwrap();
    // a: 2 and 3 (1 is named, 4 is the newest); b: 1, 2, 3.
    assert_eq!((report.keys, report.revisions), (2, 5));
    let path = report.archive.clone().unwrap();
    assert!(path.starts_with(dir.path().join("store").join("archives")));
    let places = places_of(&cache, "a");
    assert_eq!(
        places,
        [
            RevisionPlace::Store,
            RevisionPlace::Archive(path.clone()),
            RevisionPlace::Archive(path.clone()),
            RevisionPlace::Store,
            RevisionPlace::Current
        ]
    );
    for key in ["a", "b"] {
        for v in 1..=5u32 {
            assert_eq!(
                cache.get_revision::<u32>(key, u64::from(v)).unwrap(),
                Some(v)
            );
        }
        assert_eq!(cache.get::<u32>(key).unwrap(), Some(5));
    }
    // Archived and named: moved only on request.
    let again = cache
        .archive(ArchivePolicy::beyond_count(0).with_named())
        .unwrap();
    assert_eq!(again.revisions, 3); // a: 1 (named), 4; b: 4
    assert_eq!(
        cache.get_named_revision::<u32>("a", "pinned").unwrap(),
        Some(1)
    );
    assert!(cache.restore("b", 2).unwrap());
    assert_eq!(cache.revisions("b").unwrap()[1].place, RevisionPlace::Store);
    assert_eq!(cache.get_revision::<u32>("b", 2).unwrap(), Some(2));
    assert!(!cache.restore("b", 2).unwrap());
    // A reopened cache reads the archived ones too.
    drop(cache);
    let cache = archive_cache(dir.path());
    assert_eq!(cache.get_revision::<u32>("a", 3).unwrap(), Some(3));
}

#[test]
fn archive_older_than_moves_only_old_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let cache = Cache::builder()
        .store(DirStore::open(dir.path().join("s")).unwrap())
        .clock(clock.clone())
        .keep_revisions(10)
        .build()
        .unwrap();
    for v in 1..=4u32 {
        cache.put("k", &v).unwrap();
        clock.advance(Duration::from_secs(3600));
    }
    // Revisions 1..3 were written 4h, 3h, 2h ago.
    let report = cache
        .archive(ArchivePolicy::older_than(Duration::from_secs(3 * 3600)))
        .unwrap();
    assert_eq!(report.revisions, 2);
    let places = places_of(&cache, "k");
    assert!(matches!(places[0], RevisionPlace::Archive(_)));
    assert!(matches!(places[1], RevisionPlace::Archive(_)));
    assert_eq!(places[2], RevisionPlace::Store);
    // Nothing selected: no file.
    let none = cache
        .archive(ArchivePolicy::older_than(Duration::from_secs(86_400)))
        .unwrap();
    assert_eq!(none.archive, None);
}

#[test]
fn expired_entries_can_be_archived_instead_of_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let cache = Cache::builder()
        .store(LogStore::open(dir.path().join("log")).unwrap())
        .clock(clock.clone())
        .ttl(Duration::from_secs(60))
        .keep_revisions(2)
        .build()
        .unwrap();
    cache.put("old", "stale").unwrap();
    clock.advance(Duration::from_secs(120));
    cache.put("fresh", "live").unwrap();
    let report = cache.archive(ArchivePolicy::expired_entries()).unwrap();
    assert_eq!((report.expired_entries, report.revisions), (1, 1));
    assert!(report
        .archive
        .unwrap()
        .starts_with(dir.path().join("log.archives")));
    assert_eq!(cache.get::<String>("old").unwrap(), None);
    assert_eq!(
        cache.get::<String>("fresh").unwrap().as_deref(),
        Some("live")
    );
    assert_eq!(
        cache.get_revision::<String>("old", 1).unwrap().as_deref(),
        Some("stale")
    );
    assert!(!cache.store().contains(b"old").unwrap());
}

#[test]
fn a_store_without_a_directory_needs_an_explicit_archive_dir() {
    let t = env();
    let cache = t.builder().keep_revisions(2).build().unwrap();
    cache.put("k", &1).unwrap();
    cache.put("k", &2).unwrap();
    assert!(matches!(
        cache.archive(ArchivePolicy::beyond_count(0)),
        Err(Error::Config(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    let cache = t
        .builder()
        .keep_revisions(2)
        .archive_dir(dir.path())
        .build()
        .unwrap();
    assert_eq!(
        cache
            .archive(ArchivePolicy::beyond_count(0))
            .unwrap()
            .revisions,
        1
    );
    assert_eq!(cache.get_revision::<u32>("k", 1).unwrap(), Some(1));
}

/// The default store (`Cache::open`) keeps its archive files in `<dir>/archives`, so archival
/// needs no `archive_dir` there.
#[test]
fn the_default_store_archives_beside_its_index_without_an_archive_dir() {
    let dir = tempfile::tempdir().unwrap();
    let store = cacher::store::HybridStore::open(dir.path()).unwrap();
    let cache = Cache::builder()
        .store(store)
        .keep_revisions(2)
        .build()
        .unwrap();
    assert_eq!(cache.archive_dir(), Some(dir.path().join("archives")));
    cache.put("k", &1).unwrap();
    cache.put("k", &2).unwrap();
    let report = cache.archive(ArchivePolicy::beyond_count(0)).unwrap();
    assert_eq!(report.revisions, 1);
    assert_eq!(cache.get_revision::<u32>("k", 1).unwrap(), Some(1));
    let path = report.archive.clone().unwrap();
    assert!(path.starts_with(dir.path().join("archives")));
    let places = places_of(&cache, "k");
    assert_eq!(
        places,
        [RevisionPlace::Archive(path), RevisionPlace::Current]
    );
}

/// Runs this binary's test `child` on the cache in `dir`, with `CACHER_<what>_ABORT_AT=step`
/// so it aborts after that step; its exit status.
fn run_crash_child(
    child: &str,
    dir: &std::path::Path,
    (what, step): (&str, &str),
) -> std::process::ExitStatus {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &format!("revisions::{child}"),
            "--test-threads=1",
        ])
        .env("CACHER_CRASH_DIR", dir)
        .env(format!("CACHER_{what}_ABORT_AT"), step)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
}

/// The child of the crash tests: archives everything, with `CACHER_ARCHIVE_ABORT_AT` set by the
/// parent so the process aborts after one step. Does nothing when run by the ordinary suite.
#[test]
fn archive_crash_child() {
    let Some(dir) = std::env::var_os("CACHER_CRASH_DIR") else {
        return;
    };
    let cache = archive_cache(std::path::Path::new(&dir));
    cache.archive(ArchivePolicy::beyond_count(0)).unwrap();
}

#[test]
fn a_crash_at_any_step_of_archival_leaves_every_revision_readable() {
    for step in ["written", "renamed", "recorded", "deleted-one", "none"] {
        let dir = tempfile::tempdir().unwrap();
        {
            let cache = archive_cache(dir.path());
            for key in ["a", "b", "c"] {
                for v in 1..=4u32 {
                    cache.put(key, &v).unwrap();
                }
            }
        }
        let status = run_crash_child("archive_crash_child", dir.path(), ("ARCHIVE", step));
        assert_eq!(status.success(), step == "none", "{step}: {status}");
        let check = |cache: &Cache| {
            for key in ["a", "b", "c"] {
                for v in 1..=4u32 {
                    assert_eq!(
                        cache.get_revision::<u32>(key, u64::from(v)).unwrap(),
                        Some(v),
                        "{step}: {key} revision {v}"
                    );
                }
                assert_eq!(cache.get::<u32>(key).unwrap(), Some(4), "{step}");
                assert_eq!(cache.revisions(key).unwrap().len(), 4, "{step}");
            }
        };
        let cache = archive_cache(dir.path());
        check(&cache);
        // A second run finishes (or redoes) the work; everything is still readable, and no
        // old revision is left in the store.
        cache.archive(ArchivePolicy::beyond_count(0)).unwrap();
        check(&cache);
        for key in ["a", "b", "c"] {
            let places = places_of(&cache, key);
            assert!(
                places[..3]
                    .iter()
                    .all(|p| matches!(p, RevisionPlace::Archive(_))),
                "{step}: {places:?}"
            );
        }
    }
}

#[test]
fn cleanup_leaves_revisions_alone_and_does_not_call_them_unreadable() {
    let t = env();
    let cache = t
        .builder()
        .keep_revisions(3)
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    cache.put("k", &1).unwrap();
    cache.put("k", &2).unwrap();
    let report = cache.cleanup().unwrap();
    assert_eq!(
        (report.scanned, report.unreadable, report.expired),
        (1, 0, 0)
    );
    assert_eq!(cache.get_revision::<u32>("k", 1).unwrap(), Some(1));
}

/// The child of the overwrite crash test: overwrites `k` (revisions 1..=2 exist) with 3, with
/// `CACHER_REVISION_ABORT_AT` set by the parent. Does nothing in the ordinary suite.
#[test]
fn overwrite_crash_child() {
    let Some(dir) = std::env::var_os("CACHER_CRASH_DIR") else {
        return;
    };
    archive_cache(std::path::Path::new(&dir))
        .put("k", &3u32)
        .unwrap();
}

#[test]
fn a_crash_during_an_overwrite_never_loses_the_current_or_the_old_value() {
    for (step, current) in [("copied", 2u32), ("written", 3)] {
        let dir = tempfile::tempdir().unwrap();
        {
            let cache = archive_cache(dir.path());
            cache.put("k", &1u32).unwrap();
            cache.put("k", &2u32).unwrap();
        }
        let status = run_crash_child("overwrite_crash_child", dir.path(), ("REVISION", step));
        assert!(!status.success(), "{step}: the child should have aborted");
        let cache = archive_cache(dir.path());
        assert_eq!(cache.get::<u32>("k").unwrap(), Some(current), "{step}");
        for v in 1..=current {
            assert_eq!(
                cache.get_revision::<u32>("k", u64::from(v)).unwrap(),
                Some(v),
                "{step}"
            );
        }
        // The next write carries on: no value under two numbers (the stopped write used up
        // number 3 in the first case).
        cache.put("k", &9u32).unwrap();
        let expect: &[u64] = if current == 2 {
            &[1, 2, 4]
        } else {
            &[1, 2, 3, 4]
        };
        assert_eq!(numbers(&cache, "k"), expect, "{step}");
    }
}

#[test]
fn a_revision_record_replaced_by_another_keys_value_is_an_error_never_that_value() {
    let t = env();
    let cache = t.builder().keep_revisions(3).build().unwrap();
    cache.put("a", &1u32).unwrap();
    cache.put("a", &2u32).unwrap();
    cache.put("b", &9u32).unwrap();
    let b = t.store.get(b"b").unwrap().unwrap();
    let records: Vec<Vec<u8>> = t
        .store
        .keys()
        .unwrap()
        .map(Result::unwrap)
        .filter(|k| cacher::is_revision_key(k))
        .collect();
    // a's revision 1, a's manifest, b's manifest; plant b's value over all of them.
    assert_eq!(records.len(), 3);
    for k in &records {
        t.store.put(k, &b).unwrap();
    }
    assert!(cache.get_revision::<u32>("a", 1).is_err());
    assert!(cache.revisions("a").is_err());
    assert_eq!(cache.get::<u32>("a").unwrap(), Some(2));
}

/// Writers racing on one key (threads here; processes take the same store lease) each keep
/// the value they replace: every value written is afterwards the current value or one of the
/// key's revisions, and no two revisions share a number. Before the per-key revision lock,
/// two writers could both copy the same old value and one's new value was overwritten
/// without ever becoming a revision.
#[test]
fn concurrent_overwrites_of_one_key_lose_no_revision() {
    const THREADS: u32 = 4;
    const WRITES: u32 = 25;
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<(&str, Box<dyn Store>)> = vec![
        ("MemoryStore", Box::new(cacher::store::MemoryStore::new())),
        ("DirStore", Box::new(DirStore::open(dir.path()).unwrap())),
    ];
    for (name, store) in stores {
        let cache = Cache::builder()
            .store(store)
            .keep_revisions(THREADS * WRITES + 1)
            .build()
            .unwrap();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let cache = &cache;
                s.spawn(move || {
                    for i in 0..WRITES {
                        cache.put("k", &(t * 1000 + i)).unwrap();
                    }
                });
            }
        });
        let infos = cache.revisions("k").unwrap();
        let mut numbers: Vec<u64> = infos.iter().map(|r| r.number).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(
            numbers.len(),
            infos.len(),
            "{name}: numbers repeat: {infos:?}"
        );
        let mut seen: Vec<u32> = infos
            .iter()
            .filter(|r| r.place != RevisionPlace::Current)
            .map(|r| cache.get_revision::<u32>("k", r.number).unwrap().unwrap())
            .collect();
        seen.push(cache.get::<u32>("k").unwrap().unwrap());
        seen.sort_unstable();
        let mut written: Vec<u32> = (0..THREADS)
            .flat_map(|t| (0..WRITES).map(move |i| t * 1000 + i))
            .collect();
        written.sort_unstable();
        assert_eq!(seen, written, "{name}: a written value was lost");
    }
}

/// An overwrite that keeps revisions reads the key's manifest and its current value once
/// each, under the key's lock: the number is given there. It used to read both a second time
/// before taking the lock, to number the new value early.
#[test]
fn an_overwrite_keeping_revisions_reads_the_manifest_and_the_old_value_once() {
    let store = Arc::new(super::batch::Counting::default());
    let cache = env()
        .builder()
        .store(store.clone())
        .keep_revisions(3)
        .build()
        .unwrap();
    cache.put("k", &1u32).unwrap();
    cache.put("k", &2u32).unwrap();
    store.single_reads.store(0, SeqCst);
    cache.put("k", &3u32).unwrap();
    assert_eq!(store.single_reads.load(SeqCst), 2);
    assert_eq!(numbers(&cache, "k"), [1, 2, 3]);
    assert_eq!(envelope_revision(&*store, b"k"), 3);
    assert_eq!(cache.get_revision::<u32>("k", 2).unwrap(), Some(2));
}

/// The new value's number is written into its envelope in place (header checksum, and with a
/// MAC key the MAC, recomputed): every revision of a MAC-keyed cache still authenticates.
#[test]
fn with_a_mac_key_every_numbered_revision_authenticates() {
    let registry = || cacher::formats::Registry::with_builtins().with_mac_key([3; 32]);
    let t = env();
    let cache = t
        .builder()
        .registry(registry())
        .keep_revisions(5)
        .build()
        .unwrap();
    for v in 1..=3u32 {
        cache.put("k", &v).unwrap();
        let stored = t.store.get(b"k").unwrap().unwrap();
        assert_eq!(
            registry().open_value(b"k", &stored).unwrap().0.revision(),
            u64::from(v)
        );
    }
    assert_eq!(numbers(&cache, "k"), [1, 2, 3]);
    for v in 1..=3u32 {
        assert_eq!(
            cache.get_revision::<u32>("k", u64::from(v)).unwrap(),
            Some(v)
        );
    }
    assert_eq!(cache.get::<u32>("k").unwrap(), Some(3));
}
