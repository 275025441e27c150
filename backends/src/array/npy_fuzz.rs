//! Never-panic tests for the `.npy` parser, driven by proptest for a fixed number of cases on
//! every test run (the same entry point a cargo-fuzz target would call: `npy::fuzz_entry`).
//! The value decoder's are beside it in `layout.rs`.

use super::npy;

fn npy_file(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
    let mut f = b"\x93NUMPY\x01\x00".to_vec();
    f.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    f.extend_from_slice(dict.as_bytes());
    f.extend_from_slice(data);
    f
}

fn read_all_ways(bytes: &[u8]) {
    npy::fuzz_entry(bytes);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 2000,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Random bytes, with and without the magic in front, never panic the parser.
    #[test]
    fn npy_parser_never_panics_on_random_bytes(
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        with_magic in proptest::prelude::any::<bool>(),
    ) {
        let mut bytes = if with_magic { b"\x93NUMPY\x01\x00".to_vec() } else { Vec::new() };
        bytes.extend_from_slice(&body);
        read_all_ways(&bytes);
    }

    /// Well-formed files with bytes overwritten, cut short, or claiming any shape (huge
    /// ones included) never panic and never allocate what they claim.
    #[test]
    fn npy_parser_never_panics_on_mutated_files(
        descr in proptest::sample::select(vec!["<f4", "|u1", ">u2", "<i8", "<c8", "|b1", "<f2", "x"]),
        dims in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..5),
        data_len in 0usize..64,
        edits in proptest::collection::vec(
            (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>()),
            0..6,
        ),
        cut in proptest::prelude::any::<proptest::sample::Index>(),
    ) {
        let shape = format!(
            "({})",
            dims.iter().map(|d| format!("{d},")).collect::<String>()
        );
        let mut f = npy_file(descr, &shape, &vec![0xab; data_len]);
        for (at, byte) in edits {
            let i = at.index(f.len());
            f[i] = byte;
        }
        let keep = cut.index(f.len() + 1);
        read_all_ways(&f[..keep]);
    }
}
