//! Issue 16, item 2: every Rust integer type round-trips exactly through the pickle format
//! and through CPython's `pickle`, both ways; Python ints beyond 128 bits are a clear error.
//! The interop tests need `python3` on the PATH (standard library only).
#![cfg(feature = "pickle")]

mod python3;

use cacher_formats::{Pipeline, Registry};
use python3::python;
use serde::{Deserialize, Serialize};

fn pickle() -> Pipeline {
    Registry::with_builtins().resolve("pickle").unwrap()
}

/// Every integer type at its extremes (and around the i64/u64 borders).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Extremes {
    i8: Vec<i8>,
    i16: Vec<i16>,
    i32: Vec<i32>,
    i64: Vec<i64>,
    i128: Vec<i128>,
    isize: Vec<isize>,
    u8: Vec<u8>,
    u16: Vec<u16>,
    u32: Vec<u32>,
    u64: Vec<u64>,
    u128: Vec<u128>,
    usize: Vec<usize>,
}

fn extremes() -> Extremes {
    Extremes {
        i8: vec![i8::MIN, -1, 0, 1, i8::MAX],
        i16: vec![i16::MIN, -1, 0, 1, i16::MAX],
        i32: vec![i32::MIN, -1, 0, 1, i32::MAX],
        i64: vec![i64::MIN, -1, 0, 1, i64::MAX],
        i128: vec![
            i128::MIN,
            i128::from(i64::MIN) - 1,
            -1,
            0,
            i128::from(u64::MAX) + 1,
            i128::MAX,
        ],
        isize: vec![isize::MIN, 0, isize::MAX],
        u8: vec![0, 1, u8::MAX],
        u16: vec![0, u16::MAX],
        u32: vec![0, 1 << 31, u32::MAX],
        u64: vec![0, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX],
        u128: vec![
            0,
            u128::from(u64::MAX) + 1,
            i128::MAX as u128 + 1,
            u128::MAX,
        ],
        usize: vec![0, usize::MAX],
    }
}

/// Python's view of [`extremes`], as exact Python ints.
const PY_EXTREMES: &str = r#"e = {
    "i8": [-2**7, -1, 0, 1, 2**7 - 1],
    "i16": [-2**15, -1, 0, 1, 2**15 - 1],
    "i32": [-2**31, -1, 0, 1, 2**31 - 1],
    "i64": [-2**63, -1, 0, 1, 2**63 - 1],
    "i128": [-2**127, -2**63 - 1, -1, 0, 2**64, 2**127 - 1],
    "isize": [-2**63, 0, 2**63 - 1],
    "u8": [0, 1, 2**8 - 1],
    "u16": [0, 2**16 - 1],
    "u32": [0, 2**31, 2**32 - 1],
    "u64": [0, 2**63 - 1, 2**63, 2**64 - 1],
    "u128": [0, 2**64, 2**127, 2**128 - 1],
    "usize": [0, 2**64 - 1],
}"#;

#[test]
fn every_integer_type_round_trips_at_its_extremes() {
    // Before: u64 above i64::MAX failed with `integer too large`, i128/u128 could not be
    // written (`i128 is not supported`).
    let bytes = pickle().encode(&extremes()).unwrap();
    assert_eq!(pickle().decode::<Extremes>(&bytes).unwrap(), extremes());
    for value in [u64::MAX, i64::MAX as u64 + 1] {
        let bytes = pickle().encode(&value).unwrap();
        assert_eq!(pickle().decode::<u64>(&bytes).unwrap(), value);
    }
    for value in [i128::MIN, i128::MAX, -1, 0] {
        let bytes = pickle().encode(&value).unwrap();
        assert_eq!(pickle().decode::<i128>(&bytes).unwrap(), value);
    }
    for value in [u128::MAX, 0] {
        let bytes = pickle().encode(&value).unwrap();
        assert_eq!(pickle().decode::<u128>(&bytes).unwrap(), value);
    }
}

#[test]
fn small_integers_read_back_into_wider_and_narrower_types() {
    let bytes = pickle().encode(&5u128).unwrap();
    assert_eq!(pickle().decode::<u8>(&bytes).unwrap(), 5);
    let bytes = pickle().encode(&-5i128).unwrap();
    assert_eq!(pickle().decode::<i16>(&bytes).unwrap(), -5);
    let bytes = pickle().encode(&u64::MAX).unwrap();
    assert_eq!(
        pickle().decode::<u128>(&bytes).unwrap(),
        u128::from(u64::MAX)
    );
    assert_eq!(
        pickle().decode::<i128>(&bytes).unwrap(),
        i128::from(u64::MAX)
    );
    let err = pickle().decode::<i64>(&bytes).unwrap_err().to_string();
    assert!(err.contains("18446744073709551615"), "{err}");
}

#[test]
fn python_unpickles_rust_integers_exactly() {
    let bytes = pickle().encode(&extremes()).unwrap();
    let script = format!(
        "import pickle, sys\n{PY_EXTREMES}\nd = pickle.loads(sys.stdin.buffer.read())\n\
         assert d == e, (d, e)\n\
         assert all(type(x) is int for v in d.values() for x in v)\nprint('ok')"
    );
    assert_eq!(python(&script, &bytes), b"ok\n");
}

#[test]
fn rust_reads_integers_python_pickled_with_every_protocol() {
    for protocol in 0..=5 {
        let script = format!(
            "import pickle, sys\n{PY_EXTREMES}\n\
             sys.stdout.buffer.write(pickle.dumps(e, protocol={protocol}))"
        );
        let bytes = python(&script, b"");
        let value: Extremes = pickle()
            .decode(&bytes)
            .unwrap_or_else(|e| panic!("protocol {protocol}: {e}"));
        assert_eq!(value, extremes(), "protocol {protocol}");
    }
}

#[test]
fn python_ints_beyond_128_bits_are_a_clear_error() {
    for (protocol, expr) in [
        (0, "2**128"),
        (2, "2**128"),
        (4, "-2**127 - 1"),
        (5, "2**1000"),
        (5, "-2**1000"),
    ] {
        let script = format!(
            "import pickle, sys\nsys.stdout.buffer.write(pickle.dumps([{expr}], protocol={protocol}))"
        );
        let bytes = python(&script, b"");
        for err in [
            pickle()
                .decode::<Vec<u128>>(&bytes)
                .unwrap_err()
                .to_string(),
            pickle()
                .decode::<Vec<i128>>(&bytes)
                .unwrap_err()
                .to_string(),
            pickle()
                .decode::<serde_json::Value>(&bytes)
                .unwrap_err()
                .to_string(),
        ] {
            assert!(err.contains("beyond 128 bits"), "{expr}: {err}");
        }
    }
}

#[test]
fn integers_in_dict_keys_and_tuples_round_trip() {
    use std::collections::BTreeMap;
    let value: BTreeMap<u128, (i128, u64)> =
        [(u128::MAX, (i128::MIN, u64::MAX)), (0, (i128::MAX, 0))]
            .into_iter()
            .collect();
    let bytes = pickle().encode(&value).unwrap();
    assert_eq!(
        pickle()
            .decode::<BTreeMap<u128, (i128, u64)>>(&bytes)
            .unwrap(),
        value
    );
    let script = "import pickle, sys\nd = pickle.loads(sys.stdin.buffer.read())\n\
                  assert d == {2**128 - 1: (-2**127, 2**64 - 1), 0: (2**127 - 1, 0)}, d\nprint('ok')";
    assert_eq!(python(script, &bytes), b"ok\n");
}

#[test]
fn stored_values_with_big_integers_read_back_as_a_cache_reads_them() {
    // The issue's memoized function returning u64 above i64::MAX: its stored value (envelope
    // and pickle, compressed or not) must read back, or the cache recomputes on every call.
    let registry = Registry::with_builtins();
    let meta = cacher_formats::EnvelopeMeta {
        created_ms: 1,
        expires_ms: None,
        revision: 0,
        type_fingerprint: None,
    };
    for pipeline in ["pickle", "pickle+zstd:3"] {
        let pipeline = registry.resolve(pipeline).unwrap();
        let stored = pipeline
            .encode_value(b"memo:key", &(u64::MAX, i128::MIN, u128::MAX), &meta)
            .unwrap();
        let (_, value) = registry
            .decode_value::<(u64, i128, u128)>(b"memo:key", &stored)
            .unwrap();
        assert_eq!(value, (u64::MAX, i128::MIN, u128::MAX));
    }
}
