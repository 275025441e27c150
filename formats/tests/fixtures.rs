//! Golden fixtures under `fixtures/formats/`: payloads of every format, envelopes of every
//! kind, Python-written pickles, and deliberately damaged envelopes. These tests read them
//! forever; they never rewrite them. To regenerate (only when adding a fixture, never to make
//! a failing test pass):
//! `CACHER_WRITE_FIXTURES=1 cargo test -p cacher-formats --test fixtures -- --ignored`

mod common;

use std::path::PathBuf;

use cacher_formats::{train_dictionary, Dictionary, EnvelopeMeta, Error, Header, Registry};
use common::{sample_doc, Doc};

const META: EnvelopeMeta = EnvelopeMeta {
    created_ms: 1_764_000_000_000,
    expires_ms: Some(1_764_086_400_000),
    revision: 5,
};

/// The MAC key of the keyed fixture (a test secret, published on purpose).
fn fixture_key() -> [u8; 32] {
    blake3::derive_key("cacher-formats fixture mac v1", b"fixture secret")
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/formats/v1")
}

fn read(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// Small similar records: the dictionary fixture is trained on them.
fn records() -> Vec<Vec<u8>> {
    (0..300)
        .map(|i| {
            format!(
                r#"{{"id":{i},"login":"user{}","plan":"{}","active":{}}}"#,
                i * 7919 % 1000,
                ["free", "pro", "team"][i % 3],
                i % 2 == 0
            )
            .into_bytes()
        })
        .collect()
}

fn dictionary() -> Dictionary {
    let bytes = read("dictionary.zdict");
    let id = u32::from_le_bytes(read("dictionary.id").try_into().unwrap());
    Dictionary::new(id, bytes)
}

fn reader() -> Registry {
    let mut registry = Registry::with_builtins();
    registry.add_dictionary(dictionary());
    registry
}

/// Payload fixtures whose encoders are deterministic: re-encoding must give the same bytes.
const PAYLOADS: [(&str, &str); 3] = [
    ("json", "sample.json"),
    ("cbor", "sample.cbor"),
    ("pickle", "sample.pickle"),
];

#[test]
fn payload_fixtures_decode_and_encoders_still_write_the_same_bytes() {
    let registry = reader();
    for (pipeline, file) in PAYLOADS {
        let pipeline = registry.resolve(pipeline).unwrap();
        let bytes = read(file);
        assert_eq!(
            pipeline.decode::<Doc>(&bytes).unwrap(),
            sample_doc(),
            "{file}"
        );
        assert_eq!(
            pipeline.encode(&sample_doc()).unwrap(),
            bytes,
            "{file} encoding drifted"
        );
    }
    let raw = registry.resolve("raw").unwrap();
    assert_eq!(
        raw.decode_bytes(&read("sample.raw")).unwrap().as_ref(),
        b"raw \x00\xff bytes"
    );
}

#[test]
fn envelope_fixtures_decode_with_their_headers() {
    let registry = reader();
    for (file, pipeline) in [
        ("envelope-json.bin", "json"),
        ("envelope-cbor-zstd3.bin", "cbor+zstd:3"),
        ("envelope-pickle-zstd19.bin", "pickle+zstd:19"),
    ] {
        let bytes = read(file);
        let header = Header::peek(&bytes).unwrap();
        assert_eq!(header.pipeline(), pipeline, "{file}");
        assert_eq!(header.meta(), META, "{file}");
        assert_eq!(header.version(), 1);
        let (_, doc) = registry.decode_value::<Doc>(&bytes).unwrap();
        assert_eq!(doc, sample_doc(), "{file}");
    }

    let raw = read("envelope-raw.bin");
    let (header, bytes) = registry.decode_value_bytes(&raw).unwrap();
    assert_eq!(
        (header.pipeline(), bytes.as_ref()),
        ("raw", &b"raw \x00\xff bytes"[..])
    );

    let dict = dictionary();
    let with_dict = read("envelope-raw-zstd-dict.bin");
    let header = Header::peek(&with_dict).unwrap();
    assert_eq!(header.dictionary_id(), Some(dict.id()));
    let (_, bytes) = registry.decode_value_bytes(&with_dict).unwrap();
    assert_eq!(bytes.as_ref(), &records()[7][..]);
}

#[test]
fn raw_envelope_fixture_matches_the_documented_byte_layout() {
    let bytes = read("envelope-raw.bin");
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    assert_eq!(&bytes[0..4], b"CCHV"); // magic
    assert_eq!(bytes[4], 1); // version
    assert_eq!(bytes[5], 0b01); // flags: expiry set, no MAC
    assert_eq!(u16::from_le_bytes([bytes[6], bytes[7]]), 45 + 3 + 4); // header_len
    assert_eq!(u64_at(8), META.created_ms);
    assert_eq!(u64_at(16), META.expires_ms.unwrap());
    assert_eq!(u64_at(24), META.revision);
    assert_eq!(u64_at(32), 12); // payload_len
    assert_eq!(
        &bytes[40..44],
        &crc32fast::hash(b"raw \x00\xff bytes").to_le_bytes()
    );
    assert_eq!(bytes[44], 3); // pipeline name length
    assert_eq!(&bytes[45..48], b"raw");
    assert_eq!(&bytes[48..52], &crc32fast::hash(&bytes[..48]).to_le_bytes());
    assert_eq!(&bytes[52..], b"raw \x00\xff bytes");
}

#[test]
fn keyed_envelope_fixture_reads_only_with_its_key() {
    let bytes = read("envelope-mac.bin");
    let keyed = reader().with_mac_key(fixture_key());
    assert_eq!(keyed.decode_value::<Doc>(&bytes).unwrap().1, sample_doc());
    let wrong = reader().with_mac_key([1; 32]);
    let err = wrong.decode_value::<Doc>(&bytes).unwrap_err();
    assert!(matches!(err, Error::Unauthenticated { .. }), "{err:?}");
}

#[test]
fn python_written_pickle_fixtures_decode() {
    let pickle = reader().resolve("pickle").unwrap();
    for protocol in [2, 4, 5] {
        let bytes = read(&format!("python-protocol{protocol}.pickle"));
        let value: serde_json::Value = pickle.decode(&bytes).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"name": "py", "n": [1, 2.5, null, true], "nested": {"k": ["v"]}}),
            "protocol {protocol}"
        );
    }
}

#[test]
fn corrupt_envelope_fixtures_are_refused_as_corrupt() {
    let registry = reader();
    for (file, reason) in [
        ("corrupt-magic.bin", "bad magic"),
        ("corrupt-header-crc.bin", "header checksum"),
        ("corrupt-payload-crc.bin", "payload checksum"),
        ("corrupt-truncated.bin", "payload is"),
    ] {
        match registry.decode_value::<Doc>(&read(file)) {
            Err(Error::Corrupt { reason: got }) => {
                assert!(got.contains(reason), "{file}: {got:?} lacks {reason:?}")
            }
            other => panic!("{file}: expected Corrupt, got {other:?}"),
        }
    }
    match registry.decode_value::<Doc>(&read("upgrade-v2.bin")) {
        Err(Error::UpgradeRequired { found, supported }) => assert_eq!((found, supported), (2, 1)),
        other => panic!("upgrade-v2.bin: expected UpgradeRequired, got {other:?}"),
    }
}

/// Writes every fixture. Ignored: run explicitly (see the module docs).
#[test]
#[ignore = "writes fixtures; run explicitly with CACHER_WRITE_FIXTURES=1"]
fn regenerate_fixtures() {
    if std::env::var_os("CACHER_WRITE_FIXTURES").is_none() {
        return;
    }
    let dir = dir();
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();

    let dict = train_dictionary(&records(), 1024).unwrap();
    write("dictionary.zdict", dict.as_bytes());
    write("dictionary.id", &dict.id().to_le_bytes());
    let mut registry = Registry::with_builtins();
    registry.add_dictionary(dict.clone());

    for (pipeline, file) in PAYLOADS {
        write(
            file,
            &registry
                .resolve(pipeline)
                .unwrap()
                .encode(&sample_doc())
                .unwrap(),
        );
    }
    let raw = registry.resolve("raw").unwrap();
    write(
        "sample.raw",
        &raw.encode_bytes(b"raw \x00\xff bytes").unwrap(),
    );

    let envelope = |pipeline: &str| {
        registry
            .resolve(pipeline)
            .unwrap()
            .encode_value(&sample_doc(), &META)
            .unwrap()
    };
    let json = envelope("json");
    write("envelope-json.bin", &json);
    write("envelope-cbor-zstd3.bin", &envelope("cbor+zstd:3"));
    write("envelope-pickle-zstd19.bin", &envelope("pickle+zstd:19"));
    write(
        "envelope-raw.bin",
        &raw.encode_value_bytes(b"raw \x00\xff bytes", &META)
            .unwrap(),
    );
    let dict_pipeline = registry
        .resolve(&format!("raw+zstd:3:dict={}", dict.id()))
        .unwrap();
    write(
        "envelope-raw-zstd-dict.bin",
        &dict_pipeline
            .encode_value_bytes(&records()[7], &META)
            .unwrap(),
    );
    let keyed = Registry::with_builtins().with_mac_key(fixture_key());
    write(
        "envelope-mac.bin",
        &keyed
            .resolve("cbor")
            .unwrap()
            .encode_value(&sample_doc(), &META)
            .unwrap(),
    );

    let header_len = Header::peek(&json).unwrap().header_len();
    let mut magic = json.clone();
    magic[..4].copy_from_slice(b"XXXX");
    write("corrupt-magic.bin", &magic);
    let mut header = json.clone();
    header[24] ^= 0x01; // revision bit flip
    write("corrupt-header-crc.bin", &header);
    let mut payload = json.clone();
    payload[header_len + 5] ^= 0x20;
    write("corrupt-payload-crc.bin", &payload);
    write("corrupt-truncated.bin", &json[..json.len() - 3]);
    let mut newer = json;
    newer[4] = 2;
    write("upgrade-v2.bin", &newer);

    for protocol in [2, 4, 5] {
        let script = format!(
            "import pickle, sys\nsys.stdout.buffer.write(pickle.dumps({{'name': 'py', 'n': [1, 2.5, None, True], 'nested': {{'k': ('v',)}}}}, protocol={protocol}))"
        );
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(out.status.success());
        write(&format!("python-protocol{protocol}.pickle"), &out.stdout);
    }
}
