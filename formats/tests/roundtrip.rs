//! Property tests: every format × codec chain gives back what it was given, bare and inside
//! the envelope.

mod common;

use cacher_formats::EnvelopeMeta;
use common::{doc, registry, CODECS};
use proptest::prelude::*;

/// The store key test values are written under.
const KEY: &[u8] = b"key";

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    }
}

fn check_round_trip(format: &str, value: &common::Doc) -> Result<(), TestCaseError> {
    let registry = registry();
    let pipelines = CODECS.iter().flat_map(|codecs| {
        [
            format!("{format}{codecs}"),
            format!("erased-{format}{codecs}"),
        ]
    });
    for name in pipelines {
        let pipeline = registry.resolve(&name).unwrap();
        let payload = pipeline.encode(value).unwrap();
        let back: common::Doc = pipeline.decode(&payload).unwrap();
        prop_assert_eq!(&back, value, "pipeline {}", pipeline.name());

        let meta = EnvelopeMeta {
            created_ms: 1,
            expires_ms: Some(2),
            revision: 3,
            type_fingerprint: Some(cacher_formats::type_fingerprint("Doc")),
        };
        let stored = pipeline.encode_value(KEY, value, &meta).unwrap();
        let (header, back) = registry.decode_value::<common::Doc>(KEY, &stored).unwrap();
        prop_assert_eq!(&back, value);
        prop_assert_eq!(header.meta(), meta);
        prop_assert_eq!(header.pipeline(), pipeline.name());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn json_round_trips_nested_values_through_every_codec(value in doc(u64::MAX)) {
        check_round_trip("json", &value)?;
    }

    #[test]
    fn cbor_round_trips_nested_values_through_every_codec(value in doc(u64::MAX)) {
        check_round_trip("cbor", &value)?;
    }

    #[test]
    fn pickle_round_trips_nested_values_through_every_codec(value in doc(i64::MAX as u64)) {
        check_round_trip("pickle", &value)?;
    }

    #[test]
    fn raw_round_trips_bytes_through_every_codec(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let registry = registry();
        for name in CODECS.iter().flat_map(|c| [format!("raw{c}"), format!("erased-raw{c}")]) {
            let pipeline = registry.resolve(&name).unwrap();
            // The serde paths (byte string and sequence of u8) and the direct one agree.
            let via_bytes = pipeline.encode(serde_bytes::Bytes::new(&bytes)).unwrap();
            let via_seq = pipeline.encode(&bytes).unwrap();
            let direct = pipeline.encode_bytes(&bytes).unwrap();
            prop_assert_eq!(&via_bytes, &direct);
            prop_assert_eq!(&via_seq, &direct);
            prop_assert_eq!(pipeline.decode::<serde_bytes::ByteBuf>(&direct).unwrap().into_vec(), bytes.clone());
            prop_assert_eq!(pipeline.decode::<Vec<u8>>(&direct).unwrap(), bytes.clone());
            let lent = pipeline.decode_bytes(&direct).unwrap();
            prop_assert_eq!(lent.as_ref(), &bytes[..]);

            let stored = pipeline.encode_value_bytes(KEY, &bytes, &EnvelopeMeta::default()).unwrap();
            let (_, back) = registry.decode_value_bytes(KEY, &stored).unwrap();
            prop_assert_eq!(back.as_ref(), &bytes[..]);
        }
    }

    #[test]
    fn byte_values_round_trip_through_every_format(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let registry = registry();
        for format in ["json", "cbor", "pickle", "raw", "erased-json", "erased-cbor", "erased-pickle"] {
            let pipeline = registry.resolve(&format!("{format}+zstd:3")).unwrap();
            let stored = pipeline.encode_value_bytes(KEY, &bytes, &EnvelopeMeta::default()).unwrap();
            let (_, back) = registry.decode_value_bytes(KEY, &stored).unwrap();
            prop_assert_eq!(back.as_ref(), &bytes[..], "format {}", format);
        }
    }
}

#[test]
fn raw_holds_strings_as_their_utf8_bytes() {
    let raw = registry().resolve("raw").unwrap();
    let payload = raw.encode("héllo").unwrap();
    assert_eq!(payload, "héllo".as_bytes());
    assert_eq!(raw.decode::<String>(&payload).unwrap(), "héllo");
}

#[test]
fn raw_refuses_non_bytes_values_with_a_clear_error() {
    let raw = registry().resolve("raw").unwrap();
    for (err, what) in [
        (raw.encode(&42u32).unwrap_err(), "an integer"),
        (raw.encode(&common::sample_doc()).unwrap_err(), "a struct"),
        (raw.encode(&vec![1u32, 2]).unwrap_err(), "not a u8"),
        (
            raw.encode(&Some(serde_bytes::ByteBuf::new())).unwrap_err(),
            "an Option",
        ),
    ] {
        let text = err.to_string();
        assert!(
            text.starts_with("raw: cannot encode value: the raw format holds bytes only"),
            "{text}"
        );
        assert!(text.contains(what), "{text}");
    }
    let err = raw.decode::<u32>(b"\x01\x02").unwrap_err();
    assert!(
        err.to_string().starts_with("raw: cannot decode value"),
        "{err}"
    );
}

#[test]
fn one_pipeline_is_shared_by_many_threads() {
    let registry = registry();
    let pipeline = registry.resolve("json+zstd:3:dict=7").unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let pipeline = pipeline.clone();
            scope.spawn(move || {
                for i in 0..50 {
                    let value = (t, i, format!("thread {t} value {i}"));
                    let payload = pipeline.encode(&value).unwrap();
                    assert_eq!(
                        pipeline.decode::<(i32, i32, String)>(&payload).unwrap(),
                        value
                    );
                }
            });
        }
    });
}
