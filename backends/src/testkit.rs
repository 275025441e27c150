//! The conformance kit: checks every [`Store`] must pass, ours and a user's own.
//!
//! Each check is a public function taking an `open` function that opens (creating if needed)
//! the store living in a directory. Disk stores are reopened on the same directory to prove
//! persistence; pass `persistent = false` for stores that keep nothing (like [`MemoryStore`]).
//! The [`conformance_tests!`](crate::conformance_tests) macro writes one `#[test]` per check:
//!
//! ```ignore
//! cacher_store::conformance_tests!(|dir: &std::path::Path| MyStore::open(dir).unwrap(), persistent = true);
//! ```
//!
//! The checks panic (they are assertions) with a message naming what broke.
//!
//! [`MemoryStore`]: crate::MemoryStore

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::Store;

/// Writes one `#[test]` per conformance check for the store opened by `$open`
/// (an expression of type `Fn(&Path) -> impl Store`).
#[macro_export]
macro_rules! conformance_tests {
    ($open:expr, persistent = $persistent:expr) => {
        #[test]
        fn conformance_round_trips_values_of_every_size() {
            $crate::testkit::round_trips_values_of_every_size(&$open);
        }
        #[test]
        fn conformance_round_trips_a_64_mib_value() {
            $crate::testkit::round_trips_a_64_mib_value(&$open);
        }
        #[test]
        fn conformance_odd_keys_are_distinct_and_safe() {
            $crate::testkit::odd_keys_are_distinct_and_safe(&$open);
        }
        #[test]
        fn conformance_overwrite_replaces_value() {
            $crate::testkit::overwrite_replaces_value(&$open);
        }
        #[test]
        fn conformance_delete_of_missing_key_is_not_an_error() {
            $crate::testkit::delete_of_missing_key_is_not_an_error(&$open);
        }
        #[test]
        fn conformance_iteration_equals_contents() {
            $crate::testkit::iteration_equals_contents(&$open);
        }
        #[test]
        fn conformance_batches_round_trip() {
            $crate::testkit::batches_round_trip(&$open);
        }
        #[test]
        fn conformance_streaming_put_and_lent_reads() {
            $crate::testkit::streaming_put_and_lent_reads(&$open);
        }
        #[test]
        fn conformance_threads_write_disjoint_keys() {
            $crate::testkit::threads_write_disjoint_keys(&$open);
        }
        #[test]
        fn conformance_threads_write_overlapping_keys() {
            $crate::testkit::threads_write_overlapping_keys(&$open);
        }
        #[test]
        fn conformance_reopen_keeps_writes() {
            $crate::testkit::reopen_keeps_writes(&$open, $persistent);
        }
        #[test]
        fn conformance_model_test_against_btreemap() {
            $crate::testkit::model_test_against_btreemap(&$open, $persistent, 48);
        }
    };
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("testkit: creating a temporary directory")
}

/// The store's contents read back through `scan`, as a sorted map.
pub fn contents<S: Store + ?Sized>(store: &S) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in store.scan().expect("scan") {
        let (k, v) = entry.expect("scan entry");
        assert!(
            out.insert(k.clone(), v).is_none(),
            "scan returned key {k:?} twice"
        );
    }
    out
}

/// Keys as sorted list via `keys`.
fn key_list<S: Store + ?Sized>(store: &S) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = store
        .keys()
        .expect("keys")
        .map(|k| k.expect("keys entry"))
        .collect();
    keys.sort();
    keys
}

/// Asserts `store` holds exactly `model`, through every read path.
pub fn assert_matches_model<S: Store + ?Sized>(store: &S, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
    for (k, v) in model {
        let got = store.get(k).expect("get");
        assert_eq!(got.as_deref(), Some(&v[..]), "get of key {k:?}");
        assert!(
            store.contains(k).expect("contains"),
            "contains of key {k:?}"
        );
        let meta = store.meta(k).expect("meta").expect("meta of present key");
        assert_eq!(meta.len, v.len() as u64, "meta len of key {k:?}");
    }
    assert_eq!(store.len().expect("len"), model.len() as u64, "len");
    assert_eq!(
        store.is_empty().expect("is_empty"),
        model.is_empty(),
        "is_empty"
    );
    assert_eq!(
        key_list(store),
        model.keys().cloned().collect::<Vec<_>>(),
        "keys"
    );
    assert_eq!(&contents(store), model, "scan");
}

/// Every byte value, a pattern of `len` bytes that differs per `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Empty, 1-byte, all-256-byte-values and a few larger values round trip exactly.
pub fn round_trips_values_of_every_size<S: Store>(open: &dyn Fn(&Path) -> S) {
    let dir = tempdir();
    let store = open(dir.path());
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let values: Vec<(&[u8], Vec<u8>)> = vec![
        (b"empty", vec![]),
        (b"one", vec![0x2a]),
        (b"zero-byte", vec![0]),
        (b"all-bytes", all_bytes),
        (b"4k", pattern(4096, 1)),
        (b"1m", pattern(1 << 20, 2)),
    ];
    let mut model = BTreeMap::new();
    for (k, v) in &values {
        store.put(k, v).expect("put");
        model.insert(k.to_vec(), v.clone());
    }
    assert_matches_model(&store, &model);
    assert_eq!(store.get(b"never-written").expect("get missing"), None);
    assert!(!store.contains(b"never-written").expect("contains missing"));
    assert!(store
        .meta(b"never-written")
        .expect("meta missing")
        .is_none());
}

/// A 64 MiB value round trips, through `put` and through the streaming `put_reader`.
pub fn round_trips_a_64_mib_value<S: Store>(open: &dyn Fn(&Path) -> S) {
    let dir = tempdir();
    let store = open(dir.path());
    let big = pattern(64 << 20, 3);
    store.put(b"big", &big).expect("put 64 MiB");
    let blob = store.read(b"big").expect("read").expect("present");
    assert!(blob[..] == big[..], "64 MiB value differs after put");
    drop(blob);
    let written = store
        .put_reader(b"big-streamed", &mut &big[..])
        .expect("put_reader 64 MiB");
    assert_eq!(written, big.len() as u64);
    let blob = store.read(b"big-streamed").expect("read").expect("present");
    assert!(blob[..] == big[..], "64 MiB value differs after put_reader");
}

/// Keys that would be dangerous as paths or are unusual are stored as plain bytes, each its
/// own entry, and nothing is written outside the store's directory.
pub fn odd_keys_are_distinct_and_safe<S: Store>(open: &dyn Fn(&Path) -> S) {
    let outer = tempdir();
    let inner = outer.path().join("store");
    std::fs::create_dir(&inner).expect("create store dir");
    let store = open(&inner);
    let keys: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"/".to_vec(),
        b"a/b".to_vec(),
        b"..".to_vec(),
        b"../escape".to_vec(),
        b"../../etc/passwd".to_vec(),
        b"/absolute".to_vec(),
        b"nul\0inside".to_vec(),
        b"\0".to_vec(),
        vec![0xff, 0xfe, 0x80],
        b"C:\\windows".to_vec(),
        "ключ-ユニコード".as_bytes().to_vec(),
        vec![b'k'; 4096],
        pattern(4096, 9),
        vec![b'k'; 4095],
    ];
    let mut model = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        let v = format!("value-{i}").into_bytes();
        store.put(k, &v).expect("put odd key");
        model.insert(k.clone(), v);
    }
    assert_matches_model(&store, &model);
    let escaped: Vec<_> = std::fs::read_dir(outer.path())
        .expect("read outer dir")
        .map(|e| e.expect("entry").file_name())
        .filter(|n| n != "store")
        .collect();
    assert!(
        escaped.is_empty(),
        "store wrote outside its directory: {escaped:?}"
    );
}

/// A second `put` replaces the first value entirely (longer and shorter).
pub fn overwrite_replaces_value<S: Store>(open: &dyn Fn(&Path) -> S) {
    let dir = tempdir();
    let store = open(dir.path());
    store.put(b"k", &pattern(10_000, 4)).expect("put");
    store.put(b"k", b"short").expect("overwrite shorter");
    assert_eq!(
        store.get(b"k").expect("get").as_deref(),
        Some(&b"short"[..])
    );
    let long = pattern(100_000, 5);
    store.put(b"k", &long).expect("overwrite longer");
    assert_eq!(store.get(b"k").expect("get"), Some(long));
    assert_eq!(store.len().expect("len"), 1);
}

/// Deleting a missing key returns `false`; deleting a present one returns `true` once.
pub fn delete_of_missing_key_is_not_an_error<S: Store>(open: &dyn Fn(&Path) -> S) {
    let dir = tempdir();
    let store = open(dir.path());
    assert!(!store.delete(b"missing").expect("delete missing"));
    store.put(b"k", b"v").expect("put");
    assert!(store.delete(b"k").expect("delete present"));
    assert!(!store.delete(b"k").expect("delete again"));
    assert_eq!(store.get(b"k").expect("get deleted"), None);
    assert!(store.is_empty().expect("is_empty"));
}

/// `keys` and `scan` return exactly the live entries after puts, overwrites and deletes.
pub fn iteration_equals_contents<S: Store>(open: &dyn Fn(&Path) -> S) {
    let dir = tempdir();
    let store = open(dir.path());
    let mut model = BTreeMap::new();
    for i in 0..300u32 {
        let k = format!("key-{i}").into_bytes();
        let v = pattern((i as usize * 37) % 700, i as u64);
        store.put(&k, &v).expect("put");
        model.insert(k, v);
    }
    for i in (0..300u32).step_by(3) {
        let k = format!("key-{i}").into_bytes();
        store.delete(&k).expect("delete");
        model.remove(&k);
    }
    for i in (1..300u32).step_by(7) {
        let k = format!("key-{i}").into_bytes();
        let v = format!("overwritten-{i}").into_bytes();
        store.put(&k, &v).expect("overwrite");
        model.insert(k, v);
    }
    assert_matches_model(&store, &model);
}

/// `put_many` and `get_many` agree with single puts and gets; later duplicates win.
pub fn batches_round_trip<S: Store>(open: &dyn Fn(&Path) -> S) {
    let dir = tempdir();
    let store = open(dir.path());
    let values: Vec<(Vec<u8>, Vec<u8>)> = (0..100u64)
        .map(|i| (format!("b{i}").into_bytes(), pattern(i as usize * 13, i)))
        .collect();
    let mut entries: Vec<(&[u8], &[u8])> = values.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    entries.push((b"b0", b"last wins"));
    store.put_many(&entries).expect("put_many");
    store.put_many(&[]).expect("empty put_many");
    let mut keys: Vec<&[u8]> = values.iter().map(|(k, _)| &k[..]).collect();
    keys.push(b"missing");
    let got = store.get_many(&keys).expect("get_many");
    assert_eq!(got.len(), keys.len());
    assert_eq!(got[0].as_deref(), Some(&b"last wins"[..]));
    for (i, (_, v)) in values.iter().enumerate().skip(1) {
        assert_eq!(got[i].as_ref(), Some(v), "get_many entry {i}");
    }
    assert_eq!(got[100], None, "get_many of a missing key");
    assert_eq!(store.len().expect("len"), 100);
}

/// `put_reader` streams a value in; `read` and `with_value` lend the same bytes back.
pub fn streaming_put_and_lent_reads<S: Store>(open: &dyn Fn(&Path) -> S) {
    let dir = tempdir();
    let store = open(dir.path());
    let value = pattern(3 << 20, 6);
    // A reader that hands out odd-sized chunks, as a socket would.
    struct Chunky<'a>(&'a [u8]);
    impl std::io::Read for Chunky<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(7919);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let n = store
        .put_reader(b"streamed", &mut Chunky(&value))
        .expect("put_reader");
    assert_eq!(n, value.len() as u64);
    assert_eq!(
        store
            .put_reader(b"empty", &mut &b""[..])
            .expect("empty put_reader"),
        0
    );
    assert_eq!(store.get(b"empty").expect("get").as_deref(), Some(&b""[..]));
    let blob = store.read(b"streamed").expect("read").expect("present");
    assert!(blob[..] == value[..], "read differs from streamed value");
    let mut seen = None;
    let found = store
        .with_value(b"streamed", &mut |bytes| seen = Some(bytes == &value[..]))
        .expect("with_value");
    assert!(found);
    assert_eq!(seen, Some(true), "with_value lent different bytes");
    let found = store
        .with_value(b"missing", &mut |_| panic!("called for a missing key"))
        .expect("with_value missing");
    assert!(!found);
}

/// Four threads writing disjoint keys at once lose nothing.
pub fn threads_write_disjoint_keys<S: Store>(open: &dyn Fn(&Path) -> S) {
    let dir = tempdir();
    let store = Arc::new(open(dir.path()));
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let store = &store;
            s.spawn(move || {
                for i in 0..150u64 {
                    let k = format!("t{t}-k{i}").into_bytes();
                    store
                        .put(&k, &pattern((i as usize % 50) * 20, t * 1000 + i))
                        .expect("put");
                    if i % 10 == 0 {
                        store
                            .get(&k)
                            .expect("get own key")
                            .expect("own key present");
                    }
                }
            });
        }
    });
    let mut model = BTreeMap::new();
    for t in 0..4u64 {
        for i in 0..150u64 {
            model.insert(
                format!("t{t}-k{i}").into_bytes(),
                pattern((i as usize % 50) * 20, t * 1000 + i),
            );
        }
    }
    assert_matches_model(&*store, &model);
}

/// Four threads writing the same keys at once leave, for each key, one whole value that one of
/// them wrote — never a torn or mixed one.
pub fn threads_write_overlapping_keys<S: Store>(open: &dyn Fn(&Path) -> S) {
    let dir = tempdir();
    let store = Arc::new(open(dir.path()));
    let value = |t: u64, k: u64, round: u64| {
        let mut v = format!("t{t} k{k} r{round}|").into_bytes();
        v.extend(pattern(2000 + (t as usize * 500), t * 7 + k + round * 31));
        v
    };
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let store = &store;
            s.spawn(move || {
                for round in 0..25u64 {
                    for k in 0..8u64 {
                        store
                            .put(format!("shared-{k}").as_bytes(), &value(t, k, round))
                            .expect("put");
                        if let Some(v) = store.get(format!("shared-{k}").as_bytes()).expect("get") {
                            let ok = (0..4).any(|t2| (0..25).any(|r| v == value(t2, k, r)));
                            assert!(ok, "read a value nobody wrote for shared-{k}");
                        }
                    }
                }
            });
        }
    });
    for k in 0..8u64 {
        let v = store
            .get(format!("shared-{k}").as_bytes())
            .expect("get")
            .expect("present");
        let ok = (0..4).any(|t| (0..25).any(|r| v == value(t, k, r)));
        assert!(ok, "final value of shared-{k} is not one that was written");
    }
    assert_eq!(store.len().expect("len"), 8);
}

/// A disk store dropped and opened again holds what was written, and deletes stay deleted.
pub fn reopen_keeps_writes<S: Store>(open: &dyn Fn(&Path) -> S, persistent: bool) {
    if !persistent {
        return;
    }
    let dir = tempdir();
    let mut model = BTreeMap::new();
    {
        let store = open(dir.path());
        for i in 0..50u64 {
            let k = format!("p{i}").into_bytes();
            let v = pattern(i as usize * 100, i);
            store.put(&k, &v).expect("put");
            model.insert(k, v);
        }
        store.delete(b"p7").expect("delete");
        model.remove(&b"p7"[..]);
        store.put(b"p8", b"replaced").expect("overwrite");
        model.insert(b"p8".to_vec(), b"replaced".to_vec());
        store.flush().expect("flush");
    }
    let store = open(dir.path());
    assert_matches_model(&store, &model);
    store.put(b"after-reopen", b"x").expect("put after reopen");
    model.insert(b"after-reopen".to_vec(), b"x".to_vec());
    drop(store);
    let store = open(dir.path());
    assert_matches_model(&store, &model);
}

/// One step of the model test.
#[derive(Debug, Clone)]
pub enum Op {
    /// `put(key, value)`.
    Put(Vec<u8>, Vec<u8>),
    /// `put_many` of a few entries.
    PutMany(Vec<(Vec<u8>, Vec<u8>)>),
    /// `delete(key)`.
    Delete(Vec<u8>),
    /// `get(key)`, compared with the model.
    Get(Vec<u8>),
    /// `flush()`.
    Flush,
    /// Drop the store and open it again (disk stores only).
    Reopen,
}

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    // A small key space so puts, overwrites and deletes hit the same keys often.
    prop_oneof![
        (0u8..12).prop_map(|i| vec![b'k', i]),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let value = proptest::collection::vec(any::<u8>(), 0..600);
    prop_oneof![
        4 => (key_strategy(), value.clone()).prop_map(|(k, v)| Op::Put(k, v)),
        1 => proptest::collection::vec((key_strategy(), value), 0..5).prop_map(Op::PutMany),
        2 => key_strategy().prop_map(Op::Delete),
        2 => key_strategy().prop_map(Op::Get),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
    ]
}

/// Random operation sequences give the same results as a `BTreeMap`, and the store's contents
/// equal the model's after every sequence (and after a reopen, for disk stores).
pub fn model_test_against_btreemap<S: Store>(
    open: &dyn Fn(&Path) -> S,
    persistent: bool,
    cases: u32,
) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let ops = proptest::collection::vec(op_strategy(), 1..60);
    runner
        .run(&ops, |ops| {
            let dir = tempdir();
            let mut store = Some(open(dir.path()));
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for op in ops {
                let s = store.as_ref().expect("store open");
                match op {
                    Op::Put(k, v) => {
                        s.put(&k, &v).expect("put");
                        model.insert(k, v);
                    }
                    Op::PutMany(entries) => {
                        let refs: Vec<(&[u8], &[u8])> =
                            entries.iter().map(|(k, v)| (&k[..], &v[..])).collect();
                        s.put_many(&refs).expect("put_many");
                        for (k, v) in entries {
                            model.insert(k, v);
                        }
                    }
                    Op::Delete(k) => {
                        let was = s.delete(&k).expect("delete");
                        prop_assert_eq!(was, model.remove(&k).is_some(), "delete result");
                    }
                    Op::Get(k) => {
                        prop_assert_eq!(s.get(&k).expect("get"), model.get(&k).cloned());
                    }
                    Op::Flush => s.flush().expect("flush"),
                    Op::Reopen => {
                        if persistent {
                            // The old handle must be gone (locks released) before reopening.
                            drop(store.take());
                            store = Some(open(dir.path()));
                        }
                    }
                }
            }
            let s = store.take().expect("store open");
            prop_assert_eq!(&contents(&s), &model);
            prop_assert_eq!(s.len().expect("len"), model.len() as u64);
            if persistent {
                drop(s);
                let s = open(dir.path());
                prop_assert_eq!(&contents(&s), &model, "after reopen");
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("model test failed: {e}"));
}
