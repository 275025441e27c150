//! Never-panic property over the header decoders (issue 9); whole files, random and mutated,
//! are fuzzed through the public API in `backends/tests/log_fuzz.rs`.

use proptest::prelude::*;

use super::super::fuzz::fuzz_headers;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn header_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        fuzz_headers(&bytes);
    }
}
