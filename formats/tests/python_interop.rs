//! Interop with CPython: `pickle.loads`/`json.loads` read what Rust wrote, Rust reads what
//! Python 3 pickles (protocols 0–5) and dumps as JSON, and Rust refuses pickles of arbitrary
//! objects. Needs `python3` on the PATH (no packages beyond the standard library).

mod common;
mod python3;

use std::collections::{BTreeMap, BTreeSet};

use cacher_formats::Registry;
use common::sample_doc;
use python3::python;
use serde::Deserialize;

/// Python assertions about `sample_doc()` once loaded (`d`) from pickle or JSON.
const CHECK_SAMPLE_DOC: &str = r#"
assert d["name"] == "sample \u2713", d["name"]
assert d["small"] == -128 and d["signed"] == -2**63 and d["unsigned"] == 2**63 - 1
assert d["float"] == -1.5e-300 and d["flag"] is True and d["maybe"] is None
assert d["map"] == {"primes": [2, 3, 5, 7], "empty": []}
assert d["shape"] == {"Struct": {"a": 9, "b": "bee"}}, d["shape"]
leaf = d["children"][0]
assert leaf["label"] == "leaf"
assert leaf["shapes"] == ["Unit", {"Newtype": -1}, {"Tuple": [3, "t"]}], leaf["shapes"]
"#;

#[test]
fn python_unpickles_what_rust_pickled() {
    let payload = Registry::with_builtins()
        .resolve("pickle")
        .unwrap()
        .encode(&sample_doc())
        .unwrap();
    let script = format!(
        "import pickle, sys\nd = pickle.loads(sys.stdin.buffer.read())\n{CHECK_SAMPLE_DOC}\n\
         assert d['bytes'] == bytes([0, 1, 2, 254, 255]) and isinstance(d['bytes'], bytes)\n\
         assert d['children'][0]['blob'] == b'\\x00blob'\nprint('ok')"
    );
    assert_eq!(python(&script, &payload), b"ok\n");
}

#[test]
fn python_json_loads_what_rust_wrote() {
    let payload = Registry::with_builtins()
        .resolve("json")
        .unwrap()
        .encode(&sample_doc())
        .unwrap();
    let script = format!(
        "import json, sys\nd = json.loads(sys.stdin.buffer.read())\n{CHECK_SAMPLE_DOC}\n\
         assert d['bytes'] == [0, 1, 2, 254, 255]\nprint('ok')"
    );
    assert_eq!(python(&script, &payload), b"ok\n");
}

/// What the Python side pickles: every plain-data type Python 3 has.
#[derive(Debug, PartialEq, Deserialize)]
struct PyDoc {
    name: String,
    count: i64,
    neg: i32,
    ratio: f64,
    ok: bool,
    nothing: Option<i32>,
    blob: serde_bytes::ByteBuf,
    empty_blob: serde_bytes::ByteBuf,
    buffer: serde_bytes::ByteBuf,
    items: Vec<i64>,
    pair: (String, i64),
    nested: BTreeMap<String, Vec<BTreeMap<String, f64>>>,
    tags: BTreeSet<String>,
    frozen: BTreeSet<i64>,
    unicode: String,
}

const PY_DOC: &str = r#"d = {
    "name": "py", "count": 2**62, "neg": -5, "ratio": 0.25, "ok": True, "nothing": None,
    "blob": b"\x00\xff\n", "empty_blob": b"", "buffer": bytearray(b"xy"),
    "items": [1, 2, 3], "pair": ("a", 1), "nested": {"k": [{"x": 1.5}, {"x": -2.0}]},
    "tags": {"b", "a"}, "frozen": frozenset([3, 1]), "unicode": "h\u00e9 \u2603 \U0001F600",
}"#;

fn expected_py_doc() -> PyDoc {
    let mut inner1 = BTreeMap::new();
    inner1.insert("x".to_owned(), 1.5);
    let mut inner2 = BTreeMap::new();
    inner2.insert("x".to_owned(), -2.0);
    let mut nested = BTreeMap::new();
    nested.insert("k".to_owned(), vec![inner1, inner2]);
    PyDoc {
        name: "py".into(),
        count: 1 << 62,
        neg: -5,
        ratio: 0.25,
        ok: true,
        nothing: None,
        blob: serde_bytes::ByteBuf::from(b"\x00\xff\n".to_vec()),
        empty_blob: serde_bytes::ByteBuf::new(),
        buffer: serde_bytes::ByteBuf::from(b"xy".to_vec()),
        items: vec![1, 2, 3],
        pair: ("a".into(), 1),
        nested,
        tags: ["a", "b"].iter().map(|s| s.to_string()).collect(),
        frozen: [1, 3].into_iter().collect(),
        unicode: "hé ☃ 😀".into(),
    }
}

#[test]
fn rust_reads_what_python_pickled_with_protocols_3_to_5() {
    let pickle = Registry::with_builtins().resolve("pickle").unwrap();
    for protocol in 3..=5 {
        let script = format!(
            "import pickle, sys\n{PY_DOC}\nsys.stdout.buffer.write(pickle.dumps(d, protocol={protocol}))"
        );
        let bytes = python(&script, b"");
        let doc: PyDoc = pickle
            .decode(&bytes)
            .unwrap_or_else(|e| panic!("protocol {protocol}: {e}"));
        assert_eq!(doc, expected_py_doc(), "protocol {protocol}");
    }
}

#[test]
fn rust_reads_what_python_pickled_with_protocols_0_to_2() {
    // Python writes empty bytes as `builtins.bytes()` under these protocols, which
    // serde-pickle cannot rebuild, so that one field is left out here.
    let pickle = Registry::with_builtins().resolve("pickle").unwrap();
    for protocol in 0..=2 {
        let script = format!(
            "import pickle, sys\n{PY_DOC}\nd['empty_blob'] = b'\\x00'\n\
             sys.stdout.buffer.write(pickle.dumps(d, protocol={protocol}))"
        );
        let bytes = python(&script, b"");
        let doc: PyDoc = pickle
            .decode(&bytes)
            .unwrap_or_else(|e| panic!("protocol {protocol}: {e}"));
        let mut expected = expected_py_doc();
        expected.empty_blob = serde_bytes::ByteBuf::from(vec![0]);
        assert_eq!(doc, expected, "protocol {protocol}");
    }
}

#[test]
fn rust_reads_what_python_json_dumped() {
    let script = "import json, sys\nsys.stdout.write(json.dumps({'a': [1, 2.5, None, True], 'b': 'h\\u00e9', 'c': {'d': -7}}))";
    let bytes = python(script, b"");
    let value: serde_json::Value = Registry::with_builtins()
        .resolve("json")
        .unwrap()
        .decode(&bytes)
        .unwrap();
    assert_eq!(
        value,
        serde_json::json!({"a": [1, 2.5, null, true], "b": "hé", "c": {"d": -7}})
    );
}

#[test]
fn pickles_that_would_run_code_are_refused_with_the_global_named() {
    let pickle = Registry::with_builtins().resolve("pickle").unwrap();
    let script = "import os, pickle, sys\n\
        class Evil:\n    def __reduce__(self):\n        return (os.system, ('echo pwned',))\n\
        sys.stdout.buffer.write(pickle.dumps({'x': Evil()}, protocol=PROTO))";
    for protocol in [0, 2, 4, 5] {
        let bytes = python(&script.replace("PROTO", &protocol.to_string()), b"");
        let err = pickle.decode::<serde_json::Value>(&bytes).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("pickle: cannot decode value"), "{text}");
        assert!(
            text.contains("global posix.system"),
            "protocol {protocol}: {text}"
        );
    }
}

#[test]
fn pickles_of_class_instances_are_refused_not_silently_turned_into_dicts() {
    let pickle = Registry::with_builtins().resolve("pickle").unwrap();
    let script = "import pickle, sys\n\
        class Point:\n    def __init__(self):\n        self.x = 1\n\
        sys.stdout.buffer.write(pickle.dumps([Point()], protocol=PROTO))";
    for protocol in [0, 1, 2, 3, 4, 5] {
        let bytes = python(&script.replace("PROTO", &protocol.to_string()), b"");
        let text = pickle
            .decode::<serde_json::Value>(&bytes)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("__main__.Point")
                || text.contains("copy_reg._reconstructor")
                || text.contains("copyreg._reconstructor"),
            "protocol {protocol}: {text}"
        );
    }
}
