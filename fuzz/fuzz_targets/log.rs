//! cargo-fuzz target: the `log_file` entry point of `backends/tests/log_entry_points`, which the
//! ordinary test suite also drives through proptest (`backends/tests/log_fuzz.rs`): arbitrary
//! bytes opened as a `LogStore` file by a reader and a writer, every key read and checked.
#![no_main]

#[path = "../../backends/tests/log_entry_points/mod.rs"]
mod log_entry_points;

libfuzzer_sys::fuzz_target!(|data: &[u8]| log_entry_points::log_file(data, None));
