//! Never-panic properties over random and mutated log files and over the header decoders
//! (issue 9), through the fuzz entry points; a fixed number of cases so the suite stays fast.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::super::fuzz::{fuzz_entry, fuzz_headers};
use super::*;

/// Every value each key of the base log ever held.
type Ever = BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>>;

/// A small log of every kind of write, and every value each key ever held.
fn base_log() -> (Vec<u8>, Ever) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("base.log");
    let states = recovery::mixed_log(&path);
    let mut ever = Ever::new();
    for (_, state) in &states {
        for (k, v) in state {
            ever.entry(k.clone()).or_default().insert(v.clone());
        }
    }
    (std::fs::read(&path).unwrap(), ever)
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

    #[test]
    fn header_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        fuzz_headers(&bytes);
    }

    /// Whatever is done to a log's bytes, opening and reading it never panics, and a key never
    /// reads as a value it never held.
    #[test]
    fn a_mutated_log_never_panics_or_reads_a_value_never_written(
        mutations in proptest::collection::vec(mutation(), 1..4)
    ) {
        let (base, ever) = base_log_cached();
        let mut bytes = base.clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        for (key, got) in fuzz_entry(&bytes) {
            if let Ok(Some(value)) = got {
                prop_assert!(
                    ever.get(&key).is_some_and(|vs| vs.contains(&value)),
                    "key {key:?} read {value:?}, a value it never held"
                );
            }
        }
    }

    /// A valid file header followed by random bytes.
    #[test]
    fn random_records_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = FileHeader { generation: 3 }.encode().to_vec();
        bytes.extend_from_slice(&tail);
        fuzz_entry(&bytes);
    }
}

fn base_log_cached() -> &'static (Vec<u8>, Ever) {
    static BASE: std::sync::OnceLock<(Vec<u8>, Ever)> = std::sync::OnceLock::new();
    BASE.get_or_init(base_log)
}
