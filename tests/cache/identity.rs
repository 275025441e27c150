//! A cache returns what the function would have returned, or a recomputation: two functions
//! (or two types under one name) never read each other's values.

use super::*;
use proptest::prelude::*;

/// Issue 8: `cache.memoize("fetch")` used twice with other value types read each other's
/// values (`posts` returned the `u32` that `users` stored).
#[test]
fn one_wrapper_name_with_two_value_types_recomputes_instead_of_returning_the_other() {
    let cache = env().cache();
    let users = cache
        .memoize("fetch")
        .wrap(|id: u64| id as u32 + 7)
        .unwrap();
    let posts = cache.memoize("fetch").wrap(|id: u64| id * 1000).unwrap();
    assert_eq!(users.call(1), 8);
    assert_eq!(posts.call(1), 1000, "never the other function's value");
    assert_eq!(posts.call(1), 1000);
    let ns = cache.stats().namespaces["fetch"];
    assert_eq!(ns.mismatches, 1, "{ns:?}");
    assert_eq!(ns.errors, 0, "a mismatch is a miss, not an error");
    // The mismatch recomputed and overwrote: now `posts` hits, and `users` mismatches once.
    assert_eq!(users.call(1), 8);
    assert_eq!(cache.stats().namespaces["fetch"].mismatches, 2);
}

/// A value whose bytes would decode as the other type (a CBOR text string read as a
/// `serde_bytes::ByteBuf`-like sequence, or a `String` read as an `Option<String>`) is still a
/// miss: the fingerprint decides, not the decoder.
#[test]
fn a_value_that_would_decode_as_the_other_type_is_still_a_mismatch() {
    let cache = env().cache();
    let plain = cache
        .memoize("name")
        .wrap(|id: u64| format!("user{id}"))
        .unwrap();
    let optional = cache
        .memoize("name")
        .wrap(|id: u64| Some(format!("other{id}")))
        .unwrap();
    assert_eq!(plain.call(1), "user1");
    assert_eq!(optional.call(1), Some("other1".to_string()));
}

fn v1_fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/formats/v1/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(path).unwrap()
}

/// A value written before envelopes carried a type fingerprint (envelope v1) still reads.
#[test]
fn values_written_before_fingerprints_still_read() {
    let t = env();
    let cache = t.cache();
    let blob = cache
        .memoize("blob")
        .wrap(|_id: u32| serde_bytes::ByteBuf::from(b"fresh".to_vec()))
        .unwrap();
    let old = v1_fixture("envelope-raw.bin");
    let (_, stored) = cacher::formats::Registry::with_builtins()
        .decode_value_bytes(b"any key: v1 is not key-bound", &old)
        .unwrap();
    let stored = stored.into_owned();
    t.store.put(&blob.key_for(&1).unwrap(), &old).unwrap();
    assert_eq!(
        blob.call(1).into_vec(),
        stored,
        "the old value, not a recomputation"
    );
    assert_eq!(cache.stats().namespaces["blob"].hits, 1);
}

/// An old value (no fingerprint) that does not decode as the asked type is a mismatch that
/// recomputes and overwrites once, not an error on every call.
#[test]
fn an_old_value_of_another_type_is_recomputed_once() {
    let t = env();
    let cache = t.cache();
    let count = cache.memoize("count").wrap(|x: u64| x * 2).unwrap();
    t.store
        .put(
            &count.key_for(&4).unwrap(),
            &v1_fixture("envelope-json.bin"),
        )
        .unwrap();
    assert_eq!(count.try_call(4).unwrap(), 8);
    assert_eq!(count.try_call(4).unwrap(), 8);
    let ns = cache.stats().namespaces["count"];
    assert_eq!((ns.mismatches, ns.errors, ns.hits), (1, 0, 1), "{ns:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any two distinct (namespace, type) pairs: the second never reads the first's value.
    #[test]
    fn distinct_namespace_and_type_pairs_never_read_each_other(
        ns_a in "[ab]", ns_b in "[ab]", type_a in 0u8..4, type_b in 0u8..4, arg in 0u64..3
    ) {
        prop_assume!((ns_a.as_str(), type_a) != (ns_b.as_str(), type_b));
        let cache = env().cache();
        // Each "type" returns a value no other type's function returns for the same argument.
        let call = |ns: &str, ty: u8| -> String {
            match ty {
                0 => format!("{:?}", cache.memoize(ns).wrap(|x: u64| x + 100).unwrap().call(arg)),
                1 => format!("{:?}", cache.memoize(ns).wrap(|x: u64| x as u32 + 200).unwrap().call(arg)),
                2 => format!("{:?}", cache.memoize(ns).wrap(|x: u64| format!("s{x}")).unwrap().call(arg)),
                _ => format!("{:?}", cache.memoize(ns).wrap(|x: u64| Some(x as i16 - 300)).unwrap().call(arg)),
            }
        };
        let fresh = |ty: u8| -> String {
            match ty {
                0 => format!("{:?}", arg + 100),
                1 => format!("{:?}", arg as u32 + 200),
                2 => format!("{:?}", format!("s{arg}")),
                _ => format!("{:?}", Some(arg as i16 - 300)),
            }
        };
        prop_assert_eq!(call(&ns_a, type_a), fresh(type_a));
        prop_assert_eq!(call(&ns_b, type_b), fresh(type_b));
        prop_assert_eq!(call(&ns_a, type_a), fresh(type_a));
    }
}
