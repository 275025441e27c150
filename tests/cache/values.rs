//! Typed values, slots and a memory tier in front.

use super::*;

#[test]
fn typed_values_round_trip_and_missing_keys_are_none() {
    let cache = env().cache();
    let r = Response {
        status: 200,
        body: "ok".into(),
    };
    cache.put("r", &r).unwrap();
    assert_eq!(cache.get::<Response>("r").unwrap(), Some(r));
    assert_eq!(cache.get::<Response>("nope").unwrap(), None);
    assert!(cache.contains("r").unwrap());
    assert!(cache.remove("r").unwrap());
    assert!(!cache.contains("r").unwrap());
    assert!(!cache.remove("r").unwrap());
}

#[test]
fn get_or_insert_with_computes_once() {
    let cache = env().cache();
    let mut calls = 0;
    for _ in 0..3 {
        let v: Vec<u32> = cache
            .get_or_insert_with("k", || {
                calls += 1;
                vec![1, 2, 3]
            })
            .unwrap();
        assert_eq!(v, vec![1, 2, 3]);
    }
    assert_eq!(calls, 1);
}

#[test]
fn clear_removes_everything() {
    let cache = env().cache();
    for i in 0..10 {
        cache.put(format!("k{i}"), &i).unwrap();
    }
    assert_eq!(cache.clear().unwrap(), 10);
    assert_eq!(cache.store().len().unwrap(), 0);
}

#[test]
fn a_slot_recomputes_for_other_parameters_and_replaces_its_value() {
    let cache = env().cache();
    let slot = cache.slot::<Vec<f64>>("embeddings");
    let mut n = 0;
    let mut compute = |v: f64| {
        n += 1;
        vec![v; 3]
    };
    let a = slot
        .get_or_compute(&(true, 0.0, 1.0), || compute(1.0))
        .unwrap();
    let b = slot
        .get_or_compute(&(true, 0.0, 1.0), || compute(2.0))
        .unwrap();
    assert_eq!(a, b);
    let c = slot
        .get_or_compute(&(false, 0.0, 1.0), || compute(3.0))
        .unwrap();
    assert_eq!(c, vec![3.0; 3]);
    assert_eq!(slot.get(&(true, 0.0, 1.0)).unwrap(), None, "replaced");
    assert_eq!(slot.get(&(false, 0.0, 1.0)).unwrap(), Some(vec![3.0; 3]));
    assert_eq!(cache.store().len().unwrap(), 1, "a slot holds one value");
    let st = cache.stats().namespaces["embeddings"];
    assert_eq!((st.hits, st.stores), (2, 2), "{st:?}");
    assert_eq!(n, 2);
}

#[test]
fn a_memory_tier_in_front_serves_and_promotes_hits() {
    let t = env();
    let cold = &t.store;
    t.cache().put("k", &"v").unwrap();
    let cache = Cache::builder()
        .store(Tiered::new(cold.clone(), 1 << 20))
        .build()
        .unwrap();
    assert_eq!(cache.get::<String>("k").unwrap().as_deref(), Some("v"));
    cold.delete(b"k").unwrap();
    assert_eq!(
        cache.get::<String>("k").unwrap().as_deref(),
        Some("v"),
        "served from the memory tier"
    );
}

/// A slot asked for as another type recomputes (a mismatch) instead of reading the bytes of
/// the other type, which would decode here (a `u32` read as a `u64`).
#[test]
fn a_slot_of_another_type_is_a_mismatch_not_the_other_value() {
    let cache = env().cache();
    let small = cache.slot::<u32>("s");
    let wide = cache.slot::<u64>("s");
    assert_eq!(small.get_or_compute(&1, || 5).unwrap(), 5);
    assert_eq!(wide.get_or_compute(&1, || 7).unwrap(), 7);
    assert_eq!(cache.stats().namespaces["s"].mismatches, 1);
}
