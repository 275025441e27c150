//! cargo-fuzz target: `cacher_store::fuzzing::array_value`, the entry point the ordinary test suite
//! also drives through proptest: any bytes may be refused, never panic or over-allocate.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cacher_store::fuzzing::array_value(data));
