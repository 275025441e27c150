//! Test values and proptest strategies shared by the formats tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use std::sync::Arc;

use cacher_formats::{Dictionary, Format, Registry};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

/// An enum with every variant shape serde knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    Unit,
    Newtype(i64),
    Tuple(i32, String),
    Struct { a: u8, b: Option<String> },
}

/// A leaf record nested inside [`Doc`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaf {
    pub label: String,
    pub blob: serde_bytes::ByteBuf,
    pub shapes: Vec<Shape>,
}

/// A nested value: maps, vecs, strings, byte strings, ints at the extremes, floats, options
/// and enums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Doc {
    pub name: String,
    pub bytes: serde_bytes::ByteBuf,
    pub small: i8,
    pub signed: i64,
    pub unsigned: u64,
    pub float: f64,
    pub flag: bool,
    pub maybe: Option<i32>,
    pub shape: Shape,
    pub map: BTreeMap<String, Vec<i32>>,
    pub children: Vec<Leaf>,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Unit),
        any::<i64>().prop_map(Shape::Newtype),
        (any::<i32>(), ".{0,8}").prop_map(|(a, b)| Shape::Tuple(a, b)),
        (any::<u8>(), proptest::option::of(".{0,8}")).prop_map(|(a, b)| Shape::Struct { a, b }),
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = serde_bytes::ByteBuf> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(serde_bytes::ByteBuf::from)
}

fn leaf() -> impl Strategy<Value = Leaf> {
    (
        ".{0,12}",
        bytes(32),
        proptest::collection::vec(shape(), 0..4),
    )
        .prop_map(|(label, blob, shapes)| Leaf {
            label,
            blob,
            shapes,
        })
}

/// Nested documents. `max_unsigned` caps `unsigned`: pickle reads integers only up to
/// `i64::MAX` back into Rust (serde-pickle's limit).
pub fn doc(max_unsigned: u64) -> impl Strategy<Value = Doc> {
    (
        (".{0,24}", bytes(64), any::<i8>()),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), any::<i64>()],
        prop_oneof![Just(0), Just(max_unsigned), 0..=max_unsigned],
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        any::<bool>(),
        proptest::option::of(any::<i32>()),
        shape(),
        proptest::collection::btree_map(
            ".{0,8}",
            proptest::collection::vec(any::<i32>(), 0..4),
            0..4,
        ),
        proptest::collection::vec(leaf(), 0..4),
    )
        .prop_map(
            |((name, bytes, small), signed, unsigned, float, flag, maybe, shape, map, children)| {
                Doc {
                    name,
                    bytes,
                    small,
                    signed,
                    unsigned,
                    float,
                    flag,
                    maybe,
                    shape,
                    map,
                    children,
                }
            },
        )
}

/// The dictionary id the test registry holds.
pub const DICT_ID: u32 = 7;

/// A registry with the builtins and a raw-content zstd dictionary under [`DICT_ID`].
pub fn registry() -> Registry {
    let mut registry = Registry::with_builtins();
    let content: Vec<u8> = br#"{"name":"","bytes":[],"small":0,"signed":0,"unsigned":0,"float":0.0,"flag":true,"maybe":null,"shape":"Unit","map":{},"children":[{"label":"","blob":[],"shapes":[]}]}"#
        .repeat(8);
    registry.add_dictionary(Dictionary::new(DICT_ID, content));
    // The built-ins again, as user formats: these go through the object-safe `Format` trait
    // and erased-serde instead of the built-ins' static dispatch.
    let erased: [(&str, Arc<dyn Format>); 4] = [
        ("erased-raw", Arc::new(cacher_formats::Raw)),
        ("erased-json", Arc::new(cacher_formats::Json)),
        ("erased-cbor", Arc::new(cacher_formats::Cbor)),
        ("erased-pickle", Arc::new(cacher_formats::Pickle)),
    ];
    for (name, format) in erased {
        registry.register_format(name, format).unwrap();
    }
    registry
}

/// Every codec chain the round-trip tests put after a format.
pub const CODECS: [&str; 4] = ["", "+zstd:1", "+zstd:19", "+zstd:3:dict=7"];

/// A small, fixed, realistic document (used by fixtures and interop tests).
pub fn sample_doc() -> Doc {
    let mut map = BTreeMap::new();
    map.insert("primes".to_owned(), vec![2, 3, 5, 7]);
    map.insert("empty".to_owned(), vec![]);
    Doc {
        name: "sample ✓".to_owned(),
        bytes: serde_bytes::ByteBuf::from(vec![0, 1, 2, 254, 255]),
        small: -128,
        signed: i64::MIN,
        unsigned: i64::MAX as u64,
        float: -1.5e-300,
        flag: true,
        maybe: None,
        shape: Shape::Struct {
            a: 9,
            b: Some("bee".to_owned()),
        },
        map,
        children: vec![Leaf {
            label: "leaf".to_owned(),
            blob: serde_bytes::ByteBuf::from(b"\x00blob".to_vec()),
            shapes: vec![
                Shape::Unit,
                Shape::Newtype(-1),
                Shape::Tuple(3, "t".to_owned()),
            ],
        }],
    }
}
