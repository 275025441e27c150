//! Decoders fed arbitrary or damaged bytes return errors, never panic.

mod common;

use cacher_formats::{envelope, EnvelopeMeta, Header};
use common::{registry, sample_doc, CODECS};
use proptest::prelude::*;

/// The store key test values are written under.
const KEY: &[u8] = b"key";

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
    let _ = registry.decode_value::<common::Doc>(KEY, bytes);
    let _ = registry.decode_value_bytes(KEY, bytes);
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
                    .encode_value_bytes(KEY, b"raw", &EnvelopeMeta::now())
                    .unwrap(),
            );
        } else {
            out.push(pipeline.encode(&sample_doc()).unwrap());
            out.push(
                pipeline
                    .encode_value(KEY, &sample_doc(), &EnvelopeMeta::now())
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

/// Well-formed pickle opcodes (with their arguments) in random order: this reaches far deeper
/// into the pickle machine than random bytes, which the pre-scan mostly refuses at once.
fn pickle_opcode() -> impl Strategy<Value = Vec<u8>> {
    let fixed: Vec<&'static [u8]> = vec![
        b"]",
        b"}",
        b")",
        b"(",
        b"a",
        b"e",
        b"s",
        b"u",
        b"t",
        b"l",
        b"d",
        b"N",
        b"\x88",
        b"\x89",
        b"K\x05",
        b"M\x01\x02",
        b"J\xff\xff\xff\xff",
        b"X\x01\x00\x00\x00k",
        b"\x8c\x01v",
        b"C\x02ab",
        b"B\x01\x00\x00\x00z",
        b"q\x00",
        b"q\x01",
        b"h\x00",
        b"h\x01",
        b"\x94",
        b"0",
        b"1",
        b"2",
        b"\x85",
        b"\x86",
        b"\x87",
        b"\x8f",
        b"\x90",
        b"\x91",
        b"G\x3f\xf0\x00\x00\x00\x00\x00\x00",
        b"\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09",
        b"\x8a\x00",
        b"c__builtin__\nset\n",
        b"cbuiltins\nfrozenset\n",
        b"c_codecs\nencode\n",
        b"cbuiltins\nbytearray\n",
        b"cbuiltins\nint\n",
        b"R",
        b"\x8c\x08builtins\x8c\x04list\x93",
        b"I01\n",
        b"L123L\n",
        b"F1.5\n",
        b"S'py2'\n",
        b"Vuni\n",
        b"p0\n",
        b"g0\n",
        b"\x8b\x02\x00\x00\x00\xff\x7f",
        b"\x96\x01\x00\x00\x00\x00\x00\x00\x00x",
        b"\x95\x00\x00\x00\x00\x00\x00\x00\x00",
    ];
    proptest::sample::select(fixed).prop_map(<[u8]>::to_vec)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn pickle_decoder_returns_errors_on_random_opcode_sequences(
        protocol in 0u8..=5,
        ops in proptest::collection::vec(pickle_opcode(), 0..40),
    ) {
        let mut bytes = vec![0x80, protocol];
        for op in ops {
            bytes.extend_from_slice(&op);
        }
        bytes.push(b'.');
        let pickle = registry().resolve("pickle").unwrap();
        let _ = pickle.decode::<serde_json::Value>(&bytes);
        let _ = pickle.decode::<common::Doc>(&bytes);
        let _ = pickle.decode_bytes(&bytes);
        let erased = registry().resolve("erased-pickle").unwrap();
        let _ = erased.decode::<serde_json::Value>(&bytes);
    }
}
