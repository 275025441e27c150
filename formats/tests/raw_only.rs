//! What works with no format feature at all (`--no-default-features`): the raw format, the
//! envelope with its key binding and MAC, and clear refusals of values written with a format
//! this build lacks.

use cacher_formats::{EnvelopeMeta, Error, Header, Registry};

#[test]
fn raw_values_round_trip_bound_to_their_key() {
    for registry in [
        Registry::with_builtins(),
        Registry::with_builtins().with_mac_key([3; 32]),
    ] {
        let raw = registry.resolve("raw").unwrap();
        let meta =
            EnvelopeMeta::now().with_type_fingerprint(cacher_formats::type_fingerprint("Vec<u8>"));
        let stored = raw.encode_value_bytes(b"a", b"bytes of a", &meta).unwrap();
        let (header, bytes) = registry.decode_value_bytes(b"a", &stored).unwrap();
        assert_eq!((bytes.as_ref(), header.meta()), (&b"bytes of a"[..], meta));
        let err = registry.decode_value_bytes(b"b", &stored).unwrap_err();
        if registry.has_mac_key() {
            assert!(matches!(err, Error::Unauthenticated { .. }), "{err:?}");
        } else {
            assert!(err.is_corrupt(), "{err:?}");
        }
    }
}

#[test]
fn a_value_written_with_a_format_this_build_lacks_is_unknown_not_misread() {
    // A json envelope as the full build writes it (fixtures/formats/v2/envelope-json.bin).
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/formats/v2/envelope-json.bin"
    );
    let bytes = std::fs::read(path).unwrap();
    let registry = Registry::with_builtins();
    assert_eq!(Header::peek(&bytes).unwrap().pipeline(), "json");
    match registry.decode_value_bytes(b"fixture:key", &bytes) {
        Err(Error::UnknownFormat { name, known }) if cfg!(not(feature = "json")) => {
            assert_eq!((name.as_str(), known), ("json", vec!["raw".to_owned()]));
        }
        Err(Error::Decode { .. } | Error::TypeMismatch { .. }) if cfg!(feature = "json") => {}
        other => panic!("{other:?}"),
    }
    if cfg!(not(feature = "zstd")) {
        match registry.resolve("raw+zstd") {
            Err(Error::UnknownCodec { name, .. }) => assert_eq!(name, "zstd"),
            other => panic!("{other:?}"),
        }
    }
}
