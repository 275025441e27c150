//! Decoders fed arbitrary or damaged bytes return errors, never panic.

mod common;

use cacher_formats::{envelope, EnvelopeMeta, Header};
use common::{registry, sample_doc, CODECS};
use proptest::prelude::*;

const PIPELINES: [&str; 5] = ["raw", "json", "cbor", "pickle", "cbor+zstd:3"];

/// Decodes `bytes` every way a reader can; only errors are allowed.
fn decode_every_way(bytes: &[u8]) {
    let registry = registry();
    for format in [
        "raw",
        "json",
        "cbor",
        "pickle",
        "erased-raw",
        "erased-json",
        "erased-cbor",
        "erased-pickle",
    ] {
        for codecs in CODECS {
            let pipeline = registry.resolve(&format!("{format}{codecs}")).unwrap();
            let _ = pipeline.decode::<common::Doc>(bytes);
            let _ = pipeline.decode::<serde_json::Value>(bytes);
            let _ = pipeline.decode::<Vec<u8>>(bytes);
            let _ = pipeline.decode_bytes(bytes);
        }
    }
    let _ = Header::peek(bytes);
    let _ = envelope::payload(bytes);
    let _ = registry.decode_value::<common::Doc>(bytes);
    let _ = registry.decode_value_bytes(bytes);
}

fn valid_payloads() -> Vec<Vec<u8>> {
    let registry = registry();
    let mut out = Vec::new();
    for name in PIPELINES {
        let pipeline = registry.resolve(name).unwrap();
        if name == "raw" {
            out.push(pipeline.encode_bytes(b"some raw bytes").unwrap());
            out.push(
                pipeline
                    .encode_value_bytes(b"raw", &EnvelopeMeta::now())
                    .unwrap(),
            );
        } else {
            out.push(pipeline.encode(&sample_doc()).unwrap());
            out.push(
                pipeline
                    .encode_value(&sample_doc(), &EnvelopeMeta::now())
                    .unwrap(),
            );
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn decoders_return_errors_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_every_way(&bytes);
    }

    #[test]
    fn decoders_return_errors_on_arbitrary_bytes_behind_valid_magics(
        prefix in prop_oneof![
            Just(b"\x80\x03".to_vec()),          // pickle protocol 3
            Just(b"\x80\x04\x95".to_vec()),      // pickle protocol 4 with a frame
            Just(b"\x28\xb5\x2f\xfd".to_vec()),  // zstd frame magic
            Just(b"CCHV\x01".to_vec()),          // envelope magic + version
        ],
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut input = prefix;
        input.extend_from_slice(&bytes);
        decode_every_way(&input);
    }

    #[test]
    fn damaged_valid_values_return_errors(which in 0usize..10, at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<prop::sample::Index>()) {
        let valid = valid_payloads();
        let original = &valid[which % valid.len()];
        let mut flipped = original.clone();
        let i = at.index(flipped.len());
        flipped[i] ^= byte | 1;
        decode_every_way(&flipped);
        decode_every_way(&original[..cut.index(original.len())]);
    }
}
