//! Issue 16, item 2: the globals the pickle reader accepts (`_codecs.encode`, `bytearray`,
//! `set`, `frozenset`, `list`, `int`) give exactly what CPython's `pickle.loads` gives, or are
//! refused with a clear error; never a different value. Every case is pickled by real
//! `python3` (protocols 0, 2 and 4: `GLOBAL` and `STACK_GLOBAL`) and loaded by both sides.
#![cfg(feature = "pickle")]

mod python3;

use std::fmt;

use cacher_formats::{Pipeline, Registry};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Value};

fn pickle() -> Pipeline {
    Registry::with_builtins().resolve("pickle").unwrap()
}

/// `python3 -c script` with nothing on stdin.
fn python(script: &str) -> Vec<u8> {
    python3::python(script, b"")
}

/// Any decoded value as JSON, with bytes as `{"bytes": "<hex>"}`, so the Rust side can be
/// compared with what Python loaded (normalised the same way by [`NORMALISE`]).
struct Any(Value);

impl<'de> Deserialize<'de> for Any {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AnyVisitor)
    }
}

struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = Any;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Any, E> {
        Ok(Any(json!(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Any, E> {
        Ok(Any(json!(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Any, E> {
        Ok(Any(json!(v)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Any, E> {
        Ok(Any(json!(v.to_string())))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Any, E> {
        Ok(Any(json!(v.to_string())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Any, E> {
        Ok(Any(json!(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Any, E> {
        Ok(Any(json!(v)))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Any, E> {
        let hex: String = v.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Any(json!({ "bytes": hex })))
    }
    fn visit_unit<E>(self) -> Result<Any, E> {
        Ok(Any(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Any, E> {
        Ok(Any(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Any, A::Error> {
        let mut items = Vec::new();
        while let Some(Any(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Any(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Any, A::Error> {
        let mut pairs = Vec::new();
        while let Some((Any(k), Any(v))) = map.next_entry()? {
            pairs.push(Value::Array(vec![k, v]));
        }
        Ok(Any(json!({ "dict": pairs })))
    }
}

/// Python's side of [`Any`]: sets as sorted lists (their order is Python's hash order; the
/// Rust side sorts the same way), big ints as strings like `visit_i128`.
const NORMALISE: &str = r#"
def norm(v):
    if isinstance(v, (bytes, bytearray)):
        return {"bytes": bytes(v).hex()}
    if isinstance(v, bool) or v is None or isinstance(v, (float, str)):
        return v
    if isinstance(v, int):
        return v if -2**63 <= v < 2**64 else str(v)
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    if isinstance(v, (set, frozenset)):
        return sorted((norm(x) for x in v), key=json.dumps)
    if isinstance(v, dict):
        return {"dict": [[norm(k), norm(x)] for k, x in v.items()]}
    raise TypeError(type(v))
"#;

fn sort_sets(value: &mut Value, is_set: bool) {
    if let Value::Array(items) = value {
        for item in items.iter_mut() {
            sort_sets(item, false);
        }
        if is_set {
            items.sort_by_key(|item| item.to_string());
        }
    }
}

/// A global called with arguments: `(callable, args, what Rust must do)`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Rust gives exactly what Python gives.
    Same,
    /// Python loads it, but Rust refuses clearly (a codec or argument form it does not
    /// implement); the message must contain this text.
    Refused(&'static str),
    /// Python itself fails to load it; Rust must refuse too, with this text.
    BothFail(&'static str),
}

const CASES: &[(&str, &str, Expect, bool)] = &[
    // (callable, args, expectation, result is a set)
    ("codecs.encode", "('é', 'utf-8')", Expect::Same, false),
    ("codecs.encode", "('é', 'UTF8')", Expect::Same, false),
    (
        "codecs.encode",
        "('h\\u00e9 \\u2603 \\U0001F600',)",
        Expect::Same,
        false,
    ),
    ("codecs.encode", "('é', 'latin-1')", Expect::Same, false),
    (
        "codecs.encode",
        "('\\x00\\xff', 'latin1')",
        Expect::Same,
        false,
    ),
    ("codecs.encode", "('é', 'ISO-8859-1')", Expect::Same, false),
    ("codecs.encode", "('é', 'L1')", Expect::Same, false),
    ("codecs.encode", "('abc', 'ascii')", Expect::Same, false),
    (
        "codecs.encode",
        "('é', 'utf-8', 'ignore')",
        Expect::Same,
        false,
    ),
    (
        "codecs.encode",
        "('é', 'ascii')",
        Expect::BothFail("cannot encode"),
        false,
    ),
    (
        "codecs.encode",
        "('€', 'latin1')",
        Expect::BothFail("cannot encode"),
        false,
    ),
    (
        "codecs.encode",
        "('€', 'latin1', 'replace')",
        Expect::Refused("error handler"),
        false,
    ),
    (
        "codecs.encode",
        "('x', 'utf-16')",
        Expect::Refused("utf-16"),
        false,
    ),
    (
        "codecs.encode",
        "('x', 'no-such-codec')",
        Expect::BothFail("no-such-codec"),
        false,
    ),
    (
        "codecs.encode",
        "(b'x', 'latin1')",
        Expect::BothFail("str"),
        false,
    ),
    ("bytearray", "('é', 'utf-8')", Expect::Same, false),
    ("bytearray", "('é', 'latin-1')", Expect::Same, false),
    ("bytearray", "(b'xy',)", Expect::Same, false),
    ("bytearray", "()", Expect::Same, false),
    ("bytearray", "([1, 2, 255],)", Expect::Same, false),
    ("bytearray", "([256],)", Expect::BothFail("range"), false),
    ("bytearray", "('é',)", Expect::BothFail("encoding"), false),
    ("int", "()", Expect::Same, false),
    ("int", "(2**100,)", Expect::Same, false),
    ("int", "(True,)", Expect::Same, false),
    ("int", "(-2.75,)", Expect::Same, false),
    ("int", "('ff', 16)", Expect::Refused("builtins.int"), false),
    ("int", "('12',)", Expect::Refused("builtins.int"), false),
    ("int", "(float('nan'),)", Expect::BothFail("NaN"), false),
    ("int", "(1, 2)", Expect::BothFail("builtins.int"), false),
    ("list", "((1, 'a'),)", Expect::Same, false),
    ("list", "()", Expect::Same, false),
    ("list", "('ab',)", Expect::Same, false),
    ("list", "([1], [2])", Expect::BothFail("at most 1"), false),
    ("set", "([3, 1, 3],)", Expect::Same, true),
    ("set", "((1, 1.0, True, 2),)", Expect::Same, true),
    ("set", "([1], [2])", Expect::BothFail("at most 1"), false),
    ("set", "([[1]],)", Expect::BothFail("unhashable"), false),
    ("set", "(5,)", Expect::BothFail("not iterable"), false),
    ("frozenset", "('aba',)", Expect::Same, true),
    ("frozenset", "({'k': 1},)", Expect::Same, true),
];

#[test]
fn allowed_globals_decode_as_cpython_does_or_are_refused() {
    // Before: `_codecs.encode('é', 'utf-8')` gave b'\xe9' (CPython: b'\xc3\xa9'), `int('ff',
    // 16)` gave 16, `set([1], [2])` gave {2} and `_codecs.encode('€', 'latin1')` gave b'\xac'
    // where CPython raises.
    let mut script = String::from(
        "import codecs, json, pickle, sys\n\
         class R:\n    def __init__(s, f, a): s.f, s.a = f, a\n    def __reduce__(s): return (s.f, s.a)\n",
    );
    script.push_str(NORMALISE);
    script.push_str("for proto in (0, 2, 4):\n");
    for (callable, args, _, _) in CASES {
        script.push_str(&format!(
            "    b = pickle.dumps(R({callable}, {args}), protocol=proto)\n    try:\n        r = json.dumps(norm(pickle.loads(b)))\n    except Exception as e:\n        r = 'ERR ' + repr(e)\n    print(b.hex(), r)\n"
        ));
    }
    let output = String::from_utf8(python(&script)).unwrap();
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), CASES.len() * 3);
    for (n, line) in lines.iter().enumerate() {
        let (callable, args, expect, is_set) = CASES[n % CASES.len()];
        let case = format!("{callable}{args}, protocol {}", [0, 2, 4][n / CASES.len()]);
        let (hex, python_result) = line.split_once(' ').unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let rust = pickle().decode::<Any>(&bytes).map(|Any(mut v)| {
            sort_sets(&mut v, is_set);
            v
        });
        match expect {
            Expect::Same => {
                let python_value: Value = serde_json::from_str(python_result)
                    .unwrap_or_else(|_| panic!("{case}: Python failed: {python_result}"));
                assert_eq!(rust.as_ref().ok(), Some(&python_value), "{case}: {rust:?}");
            }
            Expect::Refused(text) | Expect::BothFail(text) => {
                if matches!(expect, Expect::BothFail(_)) {
                    assert!(python_result.starts_with("ERR"), "{case}: {python_result}");
                } else {
                    assert!(!python_result.starts_with("ERR"), "{case}: {python_result}");
                }
                let err = rust.expect_err(&case).to_string();
                assert!(err.contains(text), "{case}: {err}");
            }
        }
    }
}

#[test]
fn python_2_module_names_are_read_only_where_cpython_maps_them() {
    // CPython maps `__builtin__` to `builtins` for protocols 0-2 only (fix_imports).
    let proto2 = b"\x80\x02c__builtin__\nset\n]K\x01a\x85R.";
    let value: Vec<i64> = pickle().decode(proto2).unwrap();
    assert_eq!(value, [1]);
    let proto3 = b"\x80\x03c__builtin__\nset\n]K\x01a\x85R.";
    let err = pickle().decode::<Vec<i64>>(proto3).unwrap_err().to_string();
    assert!(err.contains("__builtin__"), "{err}");
}

#[test]
fn a_global_that_is_not_called_is_refused() {
    // `builtins.list` itself, not a list.
    let err = pickle()
        .decode::<Any>(b"\x80\x02c__builtin__\nlist\n.")
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("builtins.list"), "{err}");
}
