//! The value envelope: header-only reads, cross-format reads, version and damage handling,
//! the keyed MAC, and registry name resolution.

mod common;

use cacher_formats::{envelope, train_dictionary, EnvelopeMeta, Error, Header, Pipeline, Registry};
use common::{registry, sample_doc, Doc};

/// The store key test values are written under.
const KEY: &[u8] = b"key";

const META: EnvelopeMeta = EnvelopeMeta {
    created_ms: 1_700_000_000_000,
    expires_ms: Some(1_700_000_060_000),
    revision: 42,
    type_fingerprint: None,
};

fn stored(pipeline: &str) -> Vec<u8> {
    registry()
        .resolve(pipeline)
        .unwrap()
        .encode_value(KEY, &sample_doc(), &META)
        .unwrap()
}

/// Recomputes the header checksum after a test edits header bytes, as an attacker could
/// (with the checksum its version byte names).
fn reseal_header(bytes: &mut [u8]) {
    let header_len = usize::from(u16::from_le_bytes([bytes[6], bytes[7]]));
    // The checksum of the version byte: CRC-32C from version 3, CRC-32 before.
    let covered = &bytes[..header_len - 4];
    let crc = if bytes[4] >= 3 {
        crc32c(covered)
    } else {
        crc32fast::hash(covered)
    };
    bytes[header_len - 4..header_len].copy_from_slice(&crc.to_le_bytes());
}

fn assert_corrupt(result: Result<impl std::fmt::Debug, Error>, reason_part: &str) {
    match result {
        Err(Error::Corrupt { reason }) => {
            assert!(
                reason.contains(reason_part),
                "reason {reason:?} lacks {reason_part:?}"
            )
        }
        other => panic!("expected Corrupt containing {reason_part:?}, got {other:?}"),
    }
}

#[test]
fn header_is_read_from_the_header_bytes_alone() {
    let bytes = stored("cbor+zstd:3");
    let full = Header::peek(&bytes).unwrap();
    // Only the header bytes are given: peek must not need the payload.
    let header = Header::peek(&bytes[..full.header_len()]).unwrap();
    assert_eq!(header, full);
    assert_eq!(Header::len_hint(&bytes[..64]), Some(full.header_len()));
    assert_eq!(header.meta(), META);
    assert_eq!(header.created_ms(), META.created_ms);
    assert_eq!(header.expires_ms(), META.expires_ms);
    assert_eq!(header.revision(), 42);
    assert_eq!(header.pipeline(), "cbor+zstd:3");
    assert_eq!(header.format_name(), "cbor");
    assert_eq!(header.codecs().collect::<Vec<_>>(), ["zstd:3"]);
    assert_eq!(header.dictionary_id(), None);
    assert!(!header.has_mac());
    assert_eq!(header.payload_range(), header.header_len()..bytes.len());
    assert!(header.meta().is_expired_at(1_700_000_060_000));
    assert!(!header.meta().is_expired_at(1_700_000_059_999));
}

#[test]
fn value_written_as_json_decodes_whatever_the_cache_writes_now() {
    let json_value = stored("json");
    let cbor_value = stored("cbor+zstd:19");
    let registry = registry();
    // The registry picks format and codecs from each header.
    assert_eq!(
        registry.decode_value::<Doc>(KEY, &json_value).unwrap().1,
        sample_doc()
    );
    assert_eq!(
        registry.decode_value::<Doc>(KEY, &cbor_value).unwrap().1,
        sample_doc()
    );
}

#[test]
fn newer_envelope_version_is_refused_as_upgrade_required() {
    let mut bytes = stored("json");
    bytes[4] = envelope::CURRENT_VERSION + 1;
    reseal_header(&mut bytes);
    for result in [
        Header::peek(&bytes).map(|_| ()),
        registry().decode_value::<Doc>(KEY, &bytes).map(|_| ()),
    ] {
        match result {
            Err(Error::UpgradeRequired { found, supported }) => {
                let current = envelope::CURRENT_VERSION;
                assert_eq!((found, supported), (current + 1, current));
            }
            other => panic!("expected UpgradeRequired, got {other:?}"),
        }
    }
    let err = Header::peek(&bytes).unwrap_err();
    assert!(err.to_string().contains("upgrade required"), "{err}");
}

#[test]
fn damaged_envelopes_are_refused_as_corrupt() {
    let good = stored("json+zstd:3");
    let header_len = Header::peek(&good).unwrap().header_len();
    let registry = registry();

    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    assert_corrupt(registry.decode_value::<Doc>(KEY, &bad_magic), "bad magic");

    let mut expiry_flipped = good.clone();
    expiry_flipped[17] ^= 0x40;
    assert_corrupt(Header::peek(&expiry_flipped), "header checksum");

    let mut payload_flipped = good.clone();
    payload_flipped[header_len + 3] ^= 0x01;
    assert!(
        Header::peek(&payload_flipped).is_ok(),
        "peek does not read the payload"
    );
    assert_corrupt(
        registry.decode_value::<Doc>(KEY, &payload_flipped),
        "payload checksum",
    );

    assert_corrupt(
        registry.decode_value::<Doc>(KEY, &good[..good.len() - 1]),
        "payload is",
    );
    assert_corrupt(Header::peek(&good[..header_len - 1]), "truncated header");
    assert_corrupt(Header::peek(&good[..10]), "truncated header");
    assert_corrupt(Header::peek(b"CC"), "too short");

    let mut trailing = good.clone();
    trailing.push(0);
    assert_corrupt(registry.decode_value::<Doc>(KEY, &trailing), "payload is");

    let mut version_zero = good.clone();
    version_zero[4] = 0;
    assert_corrupt(Header::peek(&version_zero), "version 0");

    let mut unknown_flag = good;
    unknown_flag[5] |= 0x80;
    reseal_header(&mut unknown_flag);
    assert_corrupt(Header::peek(&unknown_flag), "unknown flags");
}

#[test]
fn keyed_registry_rejects_values_written_without_its_key() {
    let key = blake3::derive_key("cacher formats test", b"secret");
    let keyed = registry().with_mac_key(key);
    let ours = keyed
        .resolve("pickle")
        .unwrap()
        .encode_value(KEY, &sample_doc(), &META)
        .unwrap();
    assert!(Header::peek(&ours).unwrap().has_mac());
    assert_eq!(
        keyed.decode_value::<Doc>(KEY, &ours).unwrap().1,
        sample_doc()
    );

    // Planted by someone without the key: no MAC at all.
    let planted = stored("pickle");
    match keyed.decode_value::<Doc>(KEY, &planted) {
        Err(Error::Unauthenticated { reason }) => assert!(reason.contains("no MAC"), "{reason}"),
        other => panic!("expected Unauthenticated, got {other:?}"),
    }

    // Written with another key.
    let other = registry().with_mac_key([9; 32]);
    let foreign = other
        .resolve("pickle")
        .unwrap()
        .encode_value(KEY, &sample_doc(), &META)
        .unwrap();
    match keyed.decode_value::<Doc>(KEY, &foreign) {
        Err(Error::Unauthenticated { reason }) => {
            assert!(reason.contains("MAC mismatch"), "{reason}")
        }
        other => panic!("expected Unauthenticated, got {other:?}"),
    }

    // Ours, with the expiry pushed back and the header checksum recomputed.
    let mut extended = ours.clone();
    extended[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    reseal_header(&mut extended);
    assert!(Header::peek(&extended).is_ok());
    match keyed.decode_value::<Doc>(KEY, &extended) {
        Err(Error::Unauthenticated { reason }) => {
            assert!(reason.contains("MAC mismatch"), "{reason}")
        }
        other => panic!("expected Unauthenticated, got {other:?}"),
    }

    // A registry without a key cannot check MACs and reads the value.
    assert_eq!(
        registry().decode_value::<Doc>(KEY, &ours).unwrap().1,
        sample_doc()
    );
}

#[test]
fn unknown_names_are_errors_listing_the_known_ones() {
    let registry = registry();
    match registry.resolve("yaml+zstd") {
        Err(Error::UnknownFormat { name, known }) => {
            assert_eq!(name, "yaml");
            assert_eq!(
                known,
                [
                    "cbor",
                    "erased-cbor",
                    "erased-json",
                    "erased-pickle",
                    "erased-raw",
                    "json",
                    "pickle",
                    "raw"
                ]
            );
        }
        other => panic!("expected UnknownFormat, got {other:?}"),
    }
    let err = registry.resolve("json+lz4").unwrap_err();
    assert_eq!(err.to_string(), "unknown codec `lz4` (known codecs: zstd)");
    match registry.resolve("json+zstd:dict=99") {
        Err(Error::UnknownDictionary { id, known }) => {
            assert_eq!((id, known), (99, vec![common::DICT_ID]));
        }
        other => panic!("expected UnknownDictionary, got {other:?}"),
    }
    for bad in [
        "",
        "json+",
        "+zstd",
        "json+zstd:0",
        "json+zstd:23",
        "json+zstd:fast",
        "js on",
    ] {
        assert!(
            matches!(registry.resolve(bad), Err(Error::InvalidPipeline { .. })),
            "{bad:?} should be an invalid pipeline"
        );
    }

    // A value whose format this registry lacks.
    let mut other = Registry::with_builtins();
    other
        .register_format("json2", std::sync::Arc::new(cacher_formats::Json))
        .unwrap();
    let bytes = other
        .resolve("json2")
        .unwrap()
        .encode_value(KEY, &1u8, &META)
        .unwrap();
    match registry.decode_value::<u8>(KEY, &bytes) {
        Err(Error::UnknownFormat { name, .. }) => assert_eq!(name, "json2"),
        other => panic!("expected UnknownFormat, got {other:?}"),
    }
    assert_eq!(other.decode_value::<u8>(KEY, &bytes).unwrap().1, 1);
}

#[test]
fn pipeline_names_are_canonical() {
    let registry = registry();
    assert_eq!(registry.resolve("cbor+zstd").unwrap().name(), "cbor+zstd:3");
    assert_eq!(
        registry.resolve("json+zstd:19").unwrap().name(),
        "json+zstd:19"
    );
    let dict = registry.resolve("raw+zstd:dict=7").unwrap();
    assert_eq!(dict.name(), "raw+zstd:3:dict=7");
    let bytes = dict.encode_value_bytes(KEY, b"abc", &META).unwrap();
    assert_eq!(Header::peek(&bytes).unwrap().dictionary_id(), Some(7));
}

#[test]
fn pipelines_and_registries_are_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Pipeline>();
    fn assert_shareable<T: Send + Sync>() {}
    assert_shareable::<Registry>();
}

#[test]
fn trained_dictionary_shrinks_small_similar_values_and_reads_back_by_id() {
    let records: Vec<Vec<u8>> = (0..400)
        .map(|i| {
            format!(
                r#"{{"id":{i},"login":"user{}","plan":"{}","active":{},"country":"{}","tags":["beta","newsletter"]}}"#,
                i * 7919 % 1000,
                ["free", "pro", "team"][i % 3],
                i % 2 == 0,
                ["DE", "FR", "US", "JP"][i % 4]
            )
            .into_bytes()
        })
        .collect();
    let dict = train_dictionary(&records[..300], 2048).unwrap();
    assert_ne!(dict.id(), 0);

    let mut writer = Registry::with_builtins();
    writer.add_dictionary(dict.clone());
    let plain = writer.resolve("raw+zstd:3").unwrap();
    let with_dict = writer
        .resolve(&format!("raw+zstd:3:dict={}", dict.id()))
        .unwrap();
    let held_out = &records[300..];
    let size = |p: &cacher_formats::Pipeline| -> usize {
        held_out
            .iter()
            .map(|r| p.encode_bytes(r).unwrap().len())
            .sum()
    };
    let (plain_size, dict_size) = (size(&plain), size(&with_dict));
    assert!(
        dict_size * 2 < plain_size,
        "dict {dict_size} vs plain {plain_size}"
    );

    let stored = with_dict
        .encode_value_bytes(KEY, &held_out[0], &META)
        .unwrap();
    // A reader without the dictionary says which one it needs…
    match Registry::with_builtins().decode_value_bytes(KEY, &stored) {
        Err(Error::UnknownDictionary { id, .. }) => assert_eq!(id, dict.id()),
        other => panic!("expected UnknownDictionary, got {other:?}"),
    }
    // …and one given the dictionary bytes back reads it.
    let mut reader = Registry::with_builtins();
    reader.add_dictionary(cacher_formats::Dictionary::new(
        dict.id(),
        dict.as_bytes().to_vec(),
    ));
    assert_eq!(
        reader.decode_value_bytes(KEY, &stored).unwrap().1.as_ref(),
        &held_out[0][..]
    );
}

#[test]
fn raw_values_are_lent_from_the_stored_bytes() {
    let registry = registry();
    let stored = registry
        .resolve("raw")
        .unwrap()
        .encode_value_bytes(KEY, b"0123456789", &META)
        .unwrap();
    let (header, lent) = registry.decode_value_bytes(KEY, &stored).unwrap();
    assert!(
        matches!(lent, std::borrow::Cow::Borrowed(_)),
        "raw must not copy"
    );
    assert_eq!(lent.as_ptr(), stored[header.header_len()..].as_ptr());
    let (_, payload) = envelope::payload(&stored).unwrap();
    assert_eq!(payload.as_ptr(), lent.as_ptr());
}

#[test]
fn restamping_in_place_gives_the_bytes_encoding_with_that_number_gives() {
    for registry in [registry(), registry().with_mac_key([7; 32])] {
        for pipeline in ["cbor", "cbor+zstd:3", "json"] {
            let encode = |revision| {
                let meta = EnvelopeMeta { revision, ..META };
                let pipeline = registry.resolve(pipeline).unwrap();
                pipeline.encode_value(KEY, &sample_doc(), &meta).unwrap()
            };
            let mut bytes = encode(0);
            let at = bytes.as_ptr();
            registry.restamp_value_in_place(KEY, &mut bytes, 9).unwrap();
            assert_eq!(bytes.as_ptr(), at, "{pipeline}: restamped where it lay");
            assert_eq!(
                bytes,
                encode(9),
                "{pipeline}, MAC {}",
                registry.has_mac_key()
            );
            let (header, doc) = registry.decode_value::<Doc>(KEY, &bytes).unwrap();
            assert_eq!((header.revision(), doc), (9, sample_doc()));
        }
    }
}

#[test]
fn restamping_in_place_refuses_what_it_cannot_reseal() {
    let plain = registry();
    let keyed = registry().with_mac_key([7; 32]);
    let sealed = |registry: &Registry| {
        let pipeline = registry.resolve("cbor").unwrap();
        pipeline.encode_value(KEY, &sample_doc(), &META).unwrap()
    };

    let mut damaged = sealed(&plain);
    damaged[20] ^= 1; // the expiry, under the header checksum
    assert_corrupt(
        plain.restamp_value_in_place(KEY, &mut damaged, 1),
        "checksum",
    );
    let mut truncated = sealed(&plain);
    truncated.pop();
    assert_corrupt(
        plain.restamp_value_in_place(KEY, &mut truncated, 1),
        "payload is",
    );
    assert_corrupt(
        plain.restamp_value_in_place(b"another key", &mut sealed(&plain), 1),
        "another key",
    );
    for (registry, bytes) in [(&keyed, sealed(&plain)), (&plain, sealed(&keyed))] {
        let mut bytes = bytes;
        match registry.restamp_value_in_place(KEY, &mut bytes, 1) {
            Err(Error::Unauthenticated { reason }) => assert!(reason.contains("MAC"), "{reason}"),
            other => panic!("expected Unauthenticated, got {other:?}"),
        }
    }
}

/// CRC-32C (Castagnoli), envelope v3's checksum, from `crc-fast` (not the envelope's own code).
fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}
