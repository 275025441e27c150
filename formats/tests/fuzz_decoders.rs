//! The fuzz entry points (`tests/entry_points/`, also the cargo-fuzz targets under `fuzz/`)
//! driven by proptest for a fixed number of cases, so every `cargo test` on stable exercises
//! them. Inputs are shaped to get past the first checks: pickle opcode soups with a small
//! memo (so containers are shared and filled late), envelope bytes behind a valid magic, and
//! edits of a valid keyed envelope.

mod entry_points;

use proptest::prelude::*;

/// One pickle opcode with plausible arguments; memo ids in 0..4 so references collide.
fn opcode() -> impl Strategy<Value = Vec<u8>> {
    let fixed = prop::sample::select(vec![
        &b"]"[..],
        b"}",
        b")",
        b"(",
        b"e",
        b"a",
        b"s",
        b"u",
        b"t",
        b"l",
        b"d",
        b"0",
        b"1",
        b"2",
        b"N",
        b"\x88",
        b"\x85",
        b"\x86",
        b"\x87",
        b"\x8f",
        b"\x90",
        b"\x91",
        b"\x94",
        b"R",
        b"cbuiltins\nset\n",
        b"\x8c\x08builtins\x8c\x04list\x93",
        b"K\x07",
        b"J\xff\xff\xff\xff",
        b"X\x01\x00\x00\x00k",
        b"C\x02ab",
        b".",
    ])
    .prop_map(<[u8]>::to_vec);
    let memo =
        (prop::sample::select(vec![b'q', b'h', b'r', b'j']), 0u8..4).prop_map(
            |(op, id)| match op {
                b'q' | b'h' => vec![op, id],
                _ => vec![op, id, 0, 0, 0],
            },
        );
    let raw = prop::collection::vec(any::<u8>(), 1..4);
    prop_oneof![6 => fixed, 3 => memo, 1 => raw]
}

fn pickle_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(opcode(), 0..48).prop_map(|ops| {
        let mut bytes = b"\x80\x02".to_vec();
        bytes.extend(ops.into_iter().flatten());
        bytes.push(b'.');
        bytes
    })
}

/// `n` memoized empty lists, then `memo[i].extend([memo[i + 1]])` for each link in `order`
/// (a permutation of `0..n-1`), then `memo[0]`: a chain `n` deep however it is filled. The
/// per-step depth check this replaced accepted it when filled outside-in.
fn memo_chain(n: u32, order: &[u32]) -> Vec<u8> {
    let mut bytes = b"\x80\x02".to_vec();
    for i in 0..n {
        bytes.extend_from_slice(b"]r");
        bytes.extend_from_slice(&i.to_le_bytes());
        bytes.push(b'0');
    }
    for &i in order {
        bytes.push(b'j');
        bytes.extend_from_slice(&i.to_le_bytes());
        bytes.extend_from_slice(b"(j");
        bytes.extend_from_slice(&(i + 1).to_le_bytes());
        bytes.extend_from_slice(b"e0");
    }
    bytes.extend_from_slice(b"j\x00\x00\x00\x00.");
    bytes
}

fn memo_chain_shape() -> impl Strategy<Value = (u32, Vec<u32>)> {
    (100u32..200).prop_flat_map(|n| {
        (
            Just(n),
            Just((0..n - 1).collect::<Vec<u32>>()).prop_shuffle(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn pickle_entry_point_holds_on_chains_filled_in_any_order((n, order) in memo_chain_shape()) {
        entry_points::pickle(&memo_chain(n, &order));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn pickle_entry_point_holds_on_opcode_soups(bytes in pickle_soup()) {
        entry_points::pickle(&bytes);
    }

    #[test]
    fn pickle_entry_point_holds_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        entry_points::pickle(&bytes);
    }

    #[test]
    fn envelope_entry_point_holds_behind_valid_magics(
        version in prop::sample::select(vec![0u8, 1, 2, 3, 4]),
        rest in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut bytes = b"CCHV".to_vec();
        bytes.push(version);
        bytes.extend(rest);
        entry_points::envelope(&bytes);
    }

    #[test]
    fn keyed_envelopes_accept_no_edit_and_no_other_key(edits in prop::collection::vec(any::<u8>(), 0..24)) {
        entry_points::envelope_mutation(&edits);
    }
}

#[test]
fn keyed_envelope_entry_point_reads_the_unedited_value() {
    // No edits: the original reads under its key (and the oracle's other branches hold).
    entry_points::envelope_mutation(&[]);
    // Re-sealing the header checksum alone changes nothing.
    entry_points::envelope_mutation(&[3, 0, 0]);
}
