//! cargo-fuzz target: the `pickle` entry point of `formats/tests/entry_points`, which the
//! ordinary test suite also drives through proptest (`formats/tests/fuzz_decoders.rs`).
#![no_main]

#[path = "../../formats/tests/entry_points/mod.rs"]
mod entry_points;

libfuzzer_sys::fuzz_target!(|data: &[u8]| entry_points::pickle(data));
