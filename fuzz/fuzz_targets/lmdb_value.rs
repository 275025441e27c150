//! cargo-fuzz target: `cacher_store::fuzzing::lmdb_value`, the LmdbStore value-layout decoder
//! the ordinary test suite also drives through proptest. The first byte splits the input into
//! the raw LMDB key and the stored value.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (split, rest) = match data.split_first() {
        Some((n, rest)) => (usize::from(*n).min(rest.len()), rest),
        None => return,
    };
    let (raw, stored) = rest.split_at(split);
    cacher_store::fuzzing::lmdb_value(stored, raw)
});
