//! Error messages: a type mismatch says in words what was stored and what was asked for
//! (issue 8 item 7: cbor said `Core(Mismatch { name: "array", found: 100 })`), and every error
//! chain prints each cause once (issue 17 item 3: `cbor: cannot decode value: Core(..)` was
//! followed by `Core(..)` again when the chain was walked).

mod common;

use cacher_formats::{EnvelopeMeta, Error, Registry};
use common::registry;

#[test]
fn type_mismatch_names_what_was_stored_and_what_was_asked_for() {
    let registry = registry();
    for format in [
        "json",
        "cbor",
        "pickle",
        "erased-json",
        "erased-cbor",
        "erased-pickle",
    ] {
        let pipeline = registry.resolve(format).unwrap();
        let stored = pipeline
            .encode_value(b"k", "text", &EnvelopeMeta::now())
            .unwrap();
        let err = registry
            .decode_value::<Vec<u32>>(b"k", &stored)
            .unwrap_err();
        assert!(err.is_type_mismatch(), "{format}: {err:?}");
        assert_eq!(
            err.to_string(),
            format!("{format}: cannot decode value: stored a text string, asked for a sequence (Vec<u32>)")
        );

        let payload = pipeline.encode(&vec![1u32, 2]).unwrap();
        let err = pipeline.decode::<String>(&payload).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{format}: cannot decode value: stored a sequence, asked for a text string (String)")
        );
    }
}

#[test]
fn decode_errors_that_are_not_mismatches_still_name_the_type_asked_for() {
    let cbor = registry().resolve("cbor").unwrap();
    let err = cbor
        .decode::<u8>(&cbor.encode(&300u32).unwrap())
        .unwrap_err();
    assert!(!err.is_type_mismatch());
    assert_eq!(
        err.to_string(),
        "cbor: cannot decode value as u8: the stored integer does not fit u8"
    );
    let err = cbor.decode::<Vec<u8>>(b"\x82\x01").unwrap_err();
    assert!(!err.to_string().contains("Core("), "{err}");
    assert!(err.to_string().contains("as Vec<u8>"), "{err}");
}

/// Every message in the chain, outermost first.
fn chain(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut messages = vec![err.to_string()];
    let mut next = err.source();
    while let Some(cause) = next {
        messages.push(cause.to_string());
        next = cause.source();
    }
    messages
}

/// How a caller wraps this crate's error (the `cacher` front-end does the same).
#[derive(Debug, thiserror::Error)]
#[error("value for key {key:?}")]
struct ForKey {
    key: &'static str,
    #[source]
    source: Error,
}

fn one_of_each() -> Vec<Error> {
    let registry = registry();
    let json = registry.resolve("json").unwrap();
    let zstd = registry.resolve("raw+zstd:3").unwrap();
    let mut too_short = registry
        .resolve("cbor")
        .unwrap()
        .encode_value(b"k", &1u8, &EnvelopeMeta::now())
        .unwrap();
    too_short.pop();
    vec![
        registry.resolve("raw").unwrap().encode(&1u8).unwrap_err(),
        json.decode::<u8>(b"{").unwrap_err(),
        json.decode::<Vec<u8>>(b"\"x\"").unwrap_err(),
        zstd.decode_bytes(b"not zstd").unwrap_err(),
        registry.decode_value::<u8>(b"k", &too_short).unwrap_err(),
        registry.resolve("yaml").unwrap_err(),
        cacher_formats::train_dictionary(&[b"x".to_vec()], 1024).unwrap_err(),
        Registry::with_builtins()
            .with_mac_key([1; 32])
            .decode_value::<u8>(
                b"k",
                &json.encode_value(b"k", &1u8, &EnvelopeMeta::now()).unwrap(),
            )
            .unwrap_err(),
    ]
}

#[test]
fn every_error_chain_prints_each_cause_once() {
    let errors = one_of_each();
    assert!(errors.iter().any(|e| matches!(e, Error::Codec { .. })));
    assert!(errors.iter().any(|e| matches!(e, Error::Dictionary(..))));
    for err in errors {
        let wrapped = ForKey {
            key: "k",
            source: err,
        };
        let messages = chain(&wrapped);
        assert!(messages.len() >= 2, "{messages:?}");
        for pair in messages.windows(2) {
            assert!(
                !pair[0].contains(&pair[1]),
                "{:?} repeats its cause {:?}",
                pair[0],
                pair[1]
            );
        }
        // The detail is still in the chain, printed once.
        let all = messages.join(": ");
        assert!(!all.is_empty() && !all.contains("Core("), "{all}");
    }
}
