//! Never-panic properties over random and mutated log files (issue 9), through the fuzz entry
//! point the cargo-fuzz target `fuzz/fuzz_targets/log.rs` also calls; a fixed number of cases
//! so the suite stays fast.

mod log_entry_points;

use std::sync::OnceLock;

use log_entry_points::{base_log, log_file, Ever};
use proptest::prelude::*;

fn base() -> &'static (Vec<u8>, Ever) {
    static BASE: OnceLock<(Vec<u8>, Ever)> = OnceLock::new();
    BASE.get_or_init(base_log)
}

/// One change to a log's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Truncate { to: usize },
    Append(Vec<u8>),
    Overwrite { at: usize, bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(|to| Mutation::Truncate { to }),
        proptest::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..32)
        )
            .prop_map(|(at, bytes)| Mutation::Overwrite { at, bytes }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len().max(1);
    match m {
        Mutation::Flip { at, mask } => {
            if !bytes.is_empty() {
                bytes[at % len] ^= mask;
            }
        }
        Mutation::Truncate { to } => bytes.truncate(to % (len + 1)),
        Mutation::Append(more) => bytes.extend_from_slice(more),
        Mutation::Overwrite { at, bytes: new } => {
            let at = at % len;
            for (i, b) in new.iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at + i) {
                    *slot = *b;
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever is done to a log's bytes, opening and reading it never panics, and a key never
    /// reads as a value it never held.
    #[test]
    fn a_mutated_log_never_panics_or_reads_a_value_never_written(
        mutations in proptest::collection::vec(mutation(), 1..4)
    ) {
        let (clean, ever) = base();
        let mut bytes = clean.clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        log_file(&bytes, Some(ever));
    }

    /// A valid file header (the first 32 bytes of a real log) followed by random bytes.
    #[test]
    fn random_records_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = base().0[..32].to_vec();
        bytes.extend_from_slice(&tail);
        log_file(&bytes, None);
    }

    /// Random bytes from the first byte.
    #[test]
    fn random_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        log_file(&bytes, None);
    }
}
