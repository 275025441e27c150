//! Envelope v2: values are bound to the store key they were written under (through the MAC
//! with a MAC key, through a key checksum without), and carry their type's fingerprint.
//! Regression for issue 8 item 4: an envelope copied from `is_admin:root` to
//! `is_admin:mallory` was accepted with a MAC key set.

mod common;

use cacher_formats::{type_fingerprint, EnvelopeMeta, Error, Header, Registry};
use common::{registry, sample_doc, Doc, CODECS};

fn mac_key() -> [u8; 32] {
    blake3::derive_key("cacher formats test", b"secret")
}

fn assert_unauthenticated<T: std::fmt::Debug>(result: Result<T, Error>) {
    match result {
        Err(Error::Unauthenticated { reason }) => {
            assert!(reason.contains("MAC mismatch"), "{reason}")
        }
        other => panic!("expected Unauthenticated, got {other:?}"),
    }
}

#[test]
fn mac_swap_between_keys_is_unauthenticated_on_every_read_path() {
    let keyed = Registry::with_builtins().with_mac_key(mac_key());
    let root = keyed
        .resolve("cbor")
        .unwrap()
        .encode_value(b"is_admin:root", &true, &EnvelopeMeta::now())
        .unwrap();
    assert!(
        keyed
            .decode_value::<bool>(b"is_admin:root", &root)
            .unwrap()
            .1
    );

    // The attacker copies root's envelope, byte for byte, to mallory's key.
    let mallory: &[u8] = b"is_admin:mallory";
    assert_unauthenticated(keyed.decode_value::<bool>(mallory, &root));
    assert_unauthenticated(keyed.decode_value_bytes(mallory, &root));
    assert_unauthenticated(keyed.open_value(mallory, &root));
    assert_unauthenticated(keyed.peek_value(mallory, &root));
    // Keys differing only in length (a prefix, one byte more) do not verify either.
    assert_unauthenticated(keyed.peek_value(b"is_admin:roo", &root));
    assert_unauthenticated(keyed.peek_value(b"is_admin:root\0", &root));
    // The header alone still parses: it proves nothing about authenticity.
    assert!(Header::peek(&root).is_ok());
}

#[test]
fn key_checksum_refuses_a_value_read_under_another_key_without_a_mac_key() {
    let registry = registry();
    for pipeline in ["raw", "json", "cbor+zstd:3"] {
        let stored = registry
            .resolve(pipeline)
            .unwrap()
            .encode_value_bytes(b"a", b"value of a", &EnvelopeMeta::now())
            .unwrap();
        assert_eq!(
            registry
                .decode_value_bytes(b"a", &stored)
                .unwrap()
                .1
                .as_ref(),
            b"value of a"
        );
        match registry.decode_value_bytes(b"b", &stored) {
            Err(Error::Corrupt { reason }) => assert!(reason.contains("another key"), "{reason}"),
            other => panic!("{pipeline}: expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn peek_value_checks_the_mac_and_so_needs_the_whole_value_with_a_mac_key() {
    let stored_by = |registry: &Registry| {
        registry
            .resolve("json")
            .unwrap()
            .encode_value(b"k", &sample_doc(), &EnvelopeMeta::now())
            .unwrap()
    };
    let plain = registry();
    let bytes = stored_by(&plain);
    let header_len = Header::peek(&bytes).unwrap().header_len();
    // Without a MAC key, the header prefix is enough.
    assert!(plain.peek_value(b"k", &bytes[..header_len]).is_ok());

    let keyed = registry().with_mac_key(mac_key());
    assert!(keyed.has_mac_key() && !plain.has_mac_key());
    let bytes = stored_by(&keyed);
    let header_len = Header::peek(&bytes).unwrap().header_len();
    assert!(keyed.peek_value(b"k", &bytes).unwrap().has_mac());
    match keyed.peek_value(b"k", &bytes[..header_len]) {
        Err(Error::Corrupt { .. }) => {}
        other => panic!("a prefix cannot be authenticated, got {other:?}"),
    }
    // A planted value without a MAC is refused by the peek as by a read.
    let planted = stored_by(&plain);
    match keyed.peek_value(b"k", &planted) {
        Err(Error::Unauthenticated { reason }) => assert!(reason.contains("no MAC"), "{reason}"),
        other => panic!("expected Unauthenticated, got {other:?}"),
    }
}

#[test]
fn type_fingerprint_round_trips_through_every_pipeline() {
    let registry = registry();
    let fingerprint = type_fingerprint("common::Doc");
    for format in ["json", "cbor", "pickle", "erased-cbor"] {
        for codecs in CODECS {
            let pipeline = registry.resolve(&format!("{format}{codecs}")).unwrap();
            let meta = EnvelopeMeta::now().with_type_fingerprint(fingerprint);
            let stored = pipeline.encode_value(b"k", &sample_doc(), &meta).unwrap();
            assert_eq!(
                Header::peek(&stored).unwrap().type_fingerprint(),
                Some(fingerprint)
            );
            let (header, doc) = registry.decode_value::<Doc>(b"k", &stored).unwrap();
            assert_eq!((header.meta(), doc), (meta, sample_doc()));

            let unrecorded = pipeline
                .encode_value(b"k", &sample_doc(), &EnvelopeMeta::now())
                .unwrap();
            assert_eq!(Header::peek(&unrecorded).unwrap().type_fingerprint(), None);
        }
    }
}

#[test]
fn type_fingerprints_tell_types_apart_and_never_read_as_unrecorded() {
    let names = [
        "String",
        "Vec<u32>",
        "Vec<u64>",
        "u64",
        "(u64, String)",
        "Option<u8>",
    ];
    let prints: std::collections::HashSet<u64> =
        names.iter().map(|name| type_fingerprint(name)).collect();
    assert_eq!(prints.len(), names.len());
    assert!(!prints.contains(&0));
    // 0 means "not recorded" in the envelope, so it cannot be recorded.
    assert_eq!(
        EnvelopeMeta::now()
            .with_type_fingerprint(0)
            .type_fingerprint,
        None
    );
    assert_eq!(
        type_fingerprint(std::any::type_name::<Vec<u32>>()),
        type_fingerprint("alloc::vec::Vec<u32>")
    );
}
