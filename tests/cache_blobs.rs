//! Blobs through the `Cache` (issue 11): streamed put with typed metadata, streamed and mapped
//! reads, damage, expiry, limits, MAC, stats, memoized fetches, and the peak-RSS bound.

use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cacher::formats::Registry;
use cacher::store::{DirStore, Durability, MemoryStore, Store};
use cacher::{BlobError, Cache, ManualClock};
use serde::{Deserialize, Serialize};

#[path = "cache_blobs/memory.rs"]
mod memory;
#[path = "cache_blobs/web.rs"]
mod web;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
}

fn response() -> Response {
    Response {
        status: 200,
        headers: vec![("content-type".into(), "application/octet-stream".into())],
    }
}

/// `len` bytes of a pattern that differs at every offset mod 251.
fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn read_all(r: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

fn dir_cache(dir: &std::path::Path) -> Cache {
    let store = DirStore::options()
        .durability(Durability::None)
        .open(dir)
        .unwrap();
    Cache::builder().store(store).build().unwrap()
}

#[test]
fn a_blob_reads_back_streamed_and_mapped_with_its_metadata_on_dirstore() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir_cache(dir.path());
    let data = body(3 << 20);
    let n = cache.put_blob("page", &response(), &mut &data[..]).unwrap();
    assert_eq!(n, data.len() as u64);

    let entry = cache.get_blob::<Response>("page").unwrap().unwrap();
    assert_eq!(entry.meta(), &response());
    assert_eq!(entry.len(), data.len() as u64);
    assert_eq!(read_all(&mut entry.into_reader()).unwrap(), data);

    let mapped = cache.get_blob_mapped::<Response>("page").unwrap().unwrap();
    assert!(
        mapped.is_mapped(),
        "a 3 MiB DirStore value is lent from a map"
    );
    assert_eq!(&mapped[..], &data[..]);
    assert!(cache.get_blob::<Response>("missing").unwrap().is_none());
}

#[test]
fn an_empty_body_and_a_vec_u8_body_read_back_as_given() {
    let cache = Cache::builder().store(MemoryStore::new()).build().unwrap();
    cache.put_blob("empty", &(), &mut io::empty()).unwrap();
    let entry = cache.get_blob::<()>("empty").unwrap().unwrap();
    assert!(entry.is_empty());
    assert!(read_all(&mut entry.into_reader()).unwrap().is_empty());
    // No serde_bytes needed: the body is stored as the bytes given, not as a list of numbers.
    let bytes: Vec<u8> = vec![7; 1000];
    cache.put_blob("v", &(), &mut &bytes[..]).unwrap();
    let stored = cache.store().get(b"v").unwrap().unwrap();
    assert!(
        stored.len() < 1200,
        "{} bytes stored for 1000",
        stored.len()
    );
}

/// Every byte of the stored blob flipped in turn: the streamed read errors (never a clean end
/// with a wrong body) and the mapped read is refused. MemoryStore has no checksum of its
/// own, so this is the envelope's check alone.
#[test]
fn a_flipped_byte_anywhere_is_an_error_before_the_streamed_end_or_the_mapped_view() {
    let store = Arc::new(MemoryStore::new());
    let cache = Cache::builder().store(store.clone()).build().unwrap();
    let data = body(300);
    cache.put_blob("k", &response(), &mut &data[..]).unwrap();
    let good = store.get(b"k").unwrap().unwrap();
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x10;
        store.put(b"k", &bad).unwrap();
        match cache.get_blob::<Response>("k") {
            Err(_) => {}
            Ok(None) => panic!("byte {i}: a miss"),
            Ok(Some(entry)) => {
                let got = read_all(&mut entry.into_reader());
                let err = got.expect_err(&format!("byte {i}: read to a clean end"));
                assert_eq!(err.kind(), io::ErrorKind::InvalidData, "byte {i}: {err}");
            }
        }
        assert!(cache.get_blob_mapped::<Response>("k").is_err(), "byte {i}");
    }
}

/// The file a disk store keeps a blob in: DirStore's entry file, or the default store's value
/// file (the only `.blob` under `files/`).
fn stored_file(dir: &std::path::Path) -> std::path::PathBuf {
    if dir.join("cacher-dir.toml").exists() {
        return DirStore::open(dir).unwrap().entry_path(b"k");
    }
    let mut found = Vec::new();
    for shard in std::fs::read_dir(dir.join("files")).unwrap().flatten() {
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            if f.path().extension().is_some_and(|e| e == "blob") {
                found.push(f.path());
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

/// `get_blob` reads the disk stores' files without their own checksum pass (the envelope's
/// covers the same bytes): every byte of the file flipped in turn, and the file cut short,
/// must still be an error before the stream's clean end.
#[test]
fn a_flipped_or_missing_byte_in_a_disk_store_file_is_an_error_before_the_streamed_end() {
    let temp = tempfile::tempdir().unwrap();
    let dir_path = temp.path().join("dir");
    let hybrid_path = temp.path().join("hybrid");
    let stores: Vec<(&std::path::Path, Box<dyn Store>)> = vec![
        (
            &dir_path,
            Box::new(
                DirStore::options()
                    .durability(Durability::None)
                    .open(&dir_path)
                    .unwrap(),
            ),
        ),
        (
            &hybrid_path,
            Box::new(
                cacher::store::HybridStore::options()
                    .inline_max(1000)
                    .durability(Durability::None)
                    .open(&hybrid_path)
                    .unwrap(),
            ),
        ),
    ];
    let data = body(2000);
    for (path, store) in stores {
        let cache = Cache::builder().store(store).build().unwrap();
        cache.put_blob("k", &response(), &mut &data[..]).unwrap();
        let file = stored_file(path);
        let good = std::fs::read(&file).unwrap();
        let streamed = |cache: &Cache| -> std::result::Result<Vec<u8>, String> {
            let entry = cache
                .get_blob::<Response>("k")
                .map_err(|e| e.to_string())?
                .ok_or("a miss")?;
            read_all(&mut entry.into_reader()).map_err(|e| e.to_string())
        };
        assert_eq!(streamed(&cache).unwrap(), data);
        // The default store's value file header has 4 reserved bytes (12..16) outside the
        // value: a flip there changes nothing read, and must read back the right body.
        let reserved = if path == hybrid_path { 12..16 } else { 0..0 };
        let mut damaged = Vec::new();
        for i in 0..good.len() {
            damaged.push({
                let mut bad = good.clone();
                bad[i] ^= 0x10;
                (format!("byte {i} flipped"), bad, reserved.contains(&i))
            });
        }
        damaged.push(("cut short".into(), good[..good.len() - 1].to_vec(), false));
        for (what, bytes, harmless) in damaged {
            std::fs::write(&file, &bytes).unwrap();
            match streamed(&cache) {
                Ok(body) if harmless => assert_eq!(body, data, "{what}"),
                Ok(_) => panic!("{}: {what} read to a clean end", path.display()),
                Err(_) => {}
            }
        }
    }
}

#[test]
fn a_damaged_body_on_dirstore_fails_the_stream_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir_cache(dir.path());
    let store = DirStore::open(dir.path()).unwrap();
    let data = body(100_000);
    cache.put_blob("k", &response(), &mut &data[..]).unwrap();
    let path = store.entry_path(b"k");
    let mut file = std::fs::read(&path).unwrap();
    let n = file.len();
    file[n - 5000] ^= 1;
    std::fs::write(&path, &file).unwrap();
    let entry = cache.get_blob::<Response>("k").unwrap().unwrap();
    let err = read_all(&mut entry.into_reader()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    assert!(cache.get_blob_mapped::<Response>("k").is_err());
}

#[test]
fn a_blob_expires_with_the_cache_ttl_and_cleanup_removes_it() {
    let clock = ManualClock::new(1_000_000);
    let store = Arc::new(MemoryStore::new());
    let cache = Cache::builder()
        .store(store.clone())
        .clock(clock.clone())
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    cache.put_blob("a", &1u8, &mut &b"x"[..]).unwrap();
    cache
        .put_blob_with_ttl("b", &2u8, &mut &b"y"[..], Duration::from_secs(10))
        .unwrap();
    assert!(cache.contains("a").unwrap());
    clock.advance(Duration::from_secs(11));
    assert!(cache.get_blob::<u8>("b").unwrap().is_none());
    assert!(
        !store.contains(b"b").unwrap(),
        "an expired blob read is removed"
    );
    assert!(cache.get_blob::<u8>("a").unwrap().is_some());
    clock.advance(Duration::from_secs(60));
    let report = cache.cleanup().unwrap();
    assert_eq!((report.expired, report.unreadable), (1, 0));
    assert!(store.is_empty().unwrap());
    assert_eq!(cache.stats().total.expirations, 2);
}

#[test]
fn blobs_count_toward_the_limits_and_are_evicted_like_values() {
    let cache = Cache::builder()
        .store(MemoryStore::new())
        .max_entries(2)
        .build()
        .unwrap();
    cache.put_blob("a", &(), &mut &b"1"[..]).unwrap();
    cache.put("b", &2u32).unwrap();
    cache.put_blob("c", &(), &mut &b"3"[..]).unwrap();
    assert_eq!(cache.store().len().unwrap(), 2);
    assert!(
        cache.get_blob::<()>("a").unwrap().is_none(),
        "LRU first out"
    );
    assert_eq!(cache.stats().total.evictions, 1);
    // A reopened cache learns blob sizes from their front headers.
    let bytes = Cache::builder()
        .store(MemoryStore::new())
        .max_bytes(300)
        .build()
        .unwrap();
    bytes.put_blob("x", &(), &mut &body(200)[..]).unwrap();
    bytes.put_blob("y", &(), &mut &body(200)[..]).unwrap();
    assert_eq!(bytes.store().len().unwrap(), 1);
}

#[test]
fn with_a_mac_key_a_blob_copied_to_another_key_is_refused() {
    let store = Arc::new(MemoryStore::new());
    let cache = Cache::builder()
        .store(store.clone())
        .registry(Registry::with_builtins().with_mac_key([5; 32]))
        .build()
        .unwrap();
    cache
        .put_blob("is_admin:root", &true, &mut &b"yes"[..])
        .unwrap();
    let stored = store.get(b"is_admin:root").unwrap().unwrap();
    store.put(b"is_admin:mallory", &stored).unwrap();
    assert!(cache.get_blob::<bool>("is_admin:mallory").is_err());
    assert!(cache.get_blob_mapped::<bool>("is_admin:mallory").is_err());
    assert!(cache.contains("is_admin:mallory").is_err());
    // Without the key, a keyed cache refuses it too.
    let other = Cache::builder()
        .store(store.clone())
        .registry(Registry::with_builtins().with_mac_key([6; 32]))
        .build()
        .unwrap();
    let entry = other.get_blob::<bool>("is_admin:root");
    assert!(entry.is_err() || read_all(&mut entry.unwrap().unwrap().into_reader()).is_err());
    let ok = cache.get_blob::<bool>("is_admin:root").unwrap().unwrap();
    assert_eq!(read_all(&mut ok.into_reader()).unwrap(), b"yes");
}

#[test]
fn get_refuses_a_blob_and_get_blob_refuses_a_value() {
    let cache = Cache::builder().store(MemoryStore::new()).build().unwrap();
    cache.put_blob("blob", &(), &mut &b"raw"[..]).unwrap();
    cache.put("value", &"text").unwrap();
    let err = cache.get::<String>("blob").unwrap_err();
    assert!(
        err.to_string().contains("blob") || format!("{err:?}").contains("blob"),
        "{err:?}"
    );
    let err = cache.get_blob::<()>("value").unwrap_err();
    assert!(format!("{err:?}").contains("put"), "{err:?}");
}

#[test]
fn a_body_that_fails_midway_stores_nothing_and_keeps_the_old_blob() {
    struct Broken(usize);
    impl Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer reset"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(1);
            self.0 -= n;
            Ok(n)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir_cache(dir.path());
    cache.put_blob("k", &1u8, &mut &b"old"[..]).unwrap();
    assert!(cache.put_blob("k", &2u8, &mut Broken(100_000)).is_err());
    let entry = cache.get_blob::<u8>("k").unwrap().unwrap();
    assert_eq!(*entry.meta(), 1);
    assert_eq!(read_all(&mut entry.into_reader()).unwrap(), b"old");
}

#[test]
fn stats_count_blob_hits_misses_and_bytes() {
    let cache = Cache::builder().store(MemoryStore::new()).build().unwrap();
    cache.put_blob("k", &(), &mut &body(1000)[..]).unwrap();
    let _ = cache.get_blob::<()>("k").unwrap().unwrap();
    let _ = cache.get_blob::<()>("nope").unwrap();
    let total = cache.stats().total;
    assert_eq!((total.hits, total.misses, total.stores), (1, 1, 1));
    assert!(total.bytes_written > 1000 && total.bytes_read > 1000);
}

#[test]
fn a_memoized_fetch_streams_its_body_once_and_later_calls_read_it_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let calls = AtomicUsize::new(0);
    let fetch = |url: &String| -> Result<(Response, io::Cursor<Vec<u8>>), io::Error> {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok((
            response(),
            io::Cursor::new(format!("body of {url}").into_bytes()),
        ))
    };
    {
        let cache = dir_cache(dir.path());
        let get = cache.memoize_blob("fetch");
        let (entry, hit) = get.call(&"http://a/".to_string(), fetch).unwrap();
        assert!(!hit);
        assert_eq!(
            read_all(&mut entry.into_reader()).unwrap(),
            b"body of http://a/"
        );
    }
    // Another handle (as another process would): read from disk, fetch not called.
    let cache = dir_cache(dir.path());
    let get = cache.memoize_blob("fetch");
    let (entry, hit) = get.call(&"http://a/".to_string(), fetch).unwrap();
    assert!(hit);
    assert_eq!(entry.meta(), &response());
    assert_eq!(
        read_all(&mut entry.into_reader()).unwrap(),
        b"body of http://a/"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A failed fetch stores nothing and says it was the fetch.
    let err = get
        .call(&"http://b/".to_string(), |_| {
            Err::<(Response, io::Empty), _>(io::Error::other("down"))
        })
        .unwrap_err();
    assert!(matches!(err, BlobError::Fetch(_)));
    assert!(cache
        .get_blob::<Response>(get.key_for(&"http://b/").unwrap())
        .unwrap()
        .is_none());
}

#[test]
fn a_blob_round_trips_on_every_disk_store_streamed_and_mapped() {
    use cacher::store::{HybridStore, LmdbStore, LogStore};
    let temp = tempfile::tempdir().unwrap();
    let t = temp.path();
    let stores: Vec<(&str, Box<dyn Store>)> = vec![
        ("dir", Box::new(DirStore::open(t.join("dir")).unwrap())),
        ("log", Box::new(LogStore::open(t.join("log.log")).unwrap())),
        ("lmdb", Box::new(LmdbStore::open(t.join("lmdb")).unwrap())),
        (
            "hybrid",
            Box::new(HybridStore::open(t.join("hybrid")).unwrap()),
        ),
    ];
    let data = body(2 << 20);
    for (name, store) in stores {
        let cache = Cache::builder().store(store).build().unwrap();
        cache.put_blob("k", &response(), &mut &data[..]).unwrap();
        let entry = cache.get_blob::<Response>("k").unwrap().unwrap();
        assert_eq!(entry.meta(), &response(), "{name}");
        assert_eq!(read_all(&mut entry.into_reader()).unwrap(), data, "{name}");
        let mapped = cache.get_blob_mapped::<Response>("k").unwrap().unwrap();
        assert_eq!(&mapped[..], &data[..], "{name}");
    }
}

/// A cache on a `Tiered` store (64 MiB memory tier) over a `DirStore` in a fresh directory.
fn on_tiered_dir_store() -> (tempfile::TempDir, Arc<cacher::Tiered<DirStore>>, Cache) {
    let temp = tempfile::tempdir().unwrap();
    let tiered = Arc::new(cacher::Tiered::new(
        DirStore::open(temp.path()).unwrap(),
        64 << 20,
    ));
    let cache = Cache::builder().store(tiered.clone()).build().unwrap();
    (temp, tiered, cache)
}

#[test]
fn a_streamed_blob_read_through_tiered_does_not_fill_the_memory_tier() {
    let (_temp, tiered, cache) = on_tiered_dir_store();
    let data = body(4 << 20);
    cache.put_blob("k", &(), &mut &data[..]).unwrap();
    let entry = cache.get_blob::<()>("k").unwrap().unwrap();
    assert_eq!(read_all(&mut entry.into_reader()).unwrap(), data);
    assert_eq!(
        tiered.hot_bytes(),
        0,
        "a streamed read leaves the blob on disk"
    );
}

#[test]
fn mapped_blobs_and_large_values_read_through_tiered_stay_out_of_the_memory_tier() {
    // A mapped blob read went through Tiered's default `read_unchecked`, a promoting `read`:
    // a copy of the whole blob landed in the memory tier. A large ordinary value did too.
    let (_temp, tiered, cache) = on_tiered_dir_store();
    let data = body(4 << 20);
    cache.put_blob("blob", &(), &mut &data[..]).unwrap();
    let mapped = cache.get_blob_mapped::<()>("blob").unwrap().unwrap();
    assert_eq!(&mapped[..], &data[..]);
    assert!(mapped.is_mapped(), "lent by the disk tier, not copied");
    assert_eq!(
        tiered.hot_bytes(),
        0,
        "a mapped read leaves the blob on disk"
    );

    let large = body(9 << 20); // over the 8 MiB that may enter a 64 MiB tier
    cache.put("large", &large).unwrap();
    tiered.invalidator().invalidate_all();
    assert_eq!(cache.get::<Vec<u8>>("large").unwrap().unwrap(), large);
    assert_eq!(tiered.hot_bytes(), 0, "a large value is read from disk");
    // Small values still are served from memory.
    cache.put("small", &1u32).unwrap();
    tiered.invalidator().invalidate_all();
    assert_eq!(cache.get::<u32>("small").unwrap(), Some(1));
    assert!(tiered.hot_bytes() > 0);
}

/// Flips one byte of every copy of `needle` in `data.mdb` (LMDB copies pages on write, so
/// freed pages may hold older copies; the live one is among them).
fn damage_index_copies(mdb: &std::path::Path, needle: &[u8]) {
    let mut bytes = std::fs::read(mdb).unwrap();
    let copies: Vec<usize> = (0..bytes.len() - needle.len())
        .filter(|&i| bytes[i..].starts_with(needle))
        .collect();
    assert!(!copies.is_empty(), "the value is not in {}", mdb.display());
    for i in copies {
        bytes[i + needle.len() / 2] ^= 0x20;
    }
    std::fs::write(mdb, bytes).unwrap();
}

/// Through `Cache::open`'s default store: a damaged inline value and a damaged blob file are
/// listed by the store's `verify` (the rest checked), read back as errors (never a wrong value
/// or a clean end), and once removed — what `cacher verify --quarantine` does after copying
/// them out — are recomputed, and `verify` is clean.
#[test]
fn the_default_store_verifies_damage_through_the_cache_and_recomputes_once_removed() {
    let temp = tempfile::tempdir().unwrap();
    let path = temp.path().join("cache");
    let small = "an inline cached value that will be damaged";
    let data = body(200_000);
    {
        let cache = Cache::open(&path).unwrap();
        cache.put("small", small).unwrap();
        cache.put("sound", &42u32).unwrap();
        cache.put_blob("blob", &response(), &mut &data[..]).unwrap();
        cache.store().flush().unwrap();
    } // the store is closed: data.mdb holds every page
    damage_index_copies(&path.join("index").join("data.mdb"), small.as_bytes());
    let blob_file = stored_file(&path);
    let mut bytes = std::fs::read(&blob_file).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(&blob_file, &bytes).unwrap();

    let cache = Cache::open(&path).unwrap();
    let report = cache.store().verify().unwrap();
    let mut damaged: Vec<&[u8]> = report.damaged.iter().map(|(k, _)| &k[..]).collect();
    damaged.sort();
    assert_eq!(damaged, [&b"blob"[..], &b"small"[..]], "{report:?}");
    assert_eq!(report.checked, 3);

    assert!(cache.get::<String>("small").is_err());
    match cache.get_blob::<Response>("blob") {
        Err(_) => {}
        Ok(entry) => assert!(read_all(&mut entry.unwrap().into_reader()).is_err()),
    }
    assert_eq!(cache.get::<u32>("sound").unwrap(), Some(42));

    for (key, _) in &report.damaged {
        assert!(cache.remove(key).unwrap());
    }
    let again = cache
        .get_or_insert_with("small", || small.to_string())
        .unwrap();
    assert_eq!(again, small);
    let (entry, hit) = cache
        .get_or_fetch_blob::<Response, _, std::io::Error, _>("blob", || {
            Ok((response(), io::Cursor::new(data.clone())))
        })
        .unwrap();
    assert!(!hit);
    assert_eq!(read_all(&mut entry.into_reader()).unwrap(), data);
    let clean = cache.store().verify().unwrap();
    assert!(clean.damaged.is_empty(), "{clean:?}");
    assert_eq!(clean.checked, 3);
}
