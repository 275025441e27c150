//! The key hashes a thread computed last, by their exact hash input, so a call repeating its
//! arguments (what every memoized hit is) does not run BLAKE3 over the same bytes again.
//!
//! A key is a pure function of its hash input, so reusing the hash of an identical input
//! gives the same key bytes: entries are matched on every byte of the input, never on the
//! index hash alone. BLAKE3's one compression (~470 instructions, ~600 with its set-up) is
//! most of a key's cost; a hit here costs an index hash and a compare of the input.
//!
//! Bounded: [`SETS`] × [`WAYS`] entries per thread (about 44 KiB, allocated on the thread's
//! first key whose input fits, freed when the thread exits), inputs longer than [`MAX_INPUT`] bytes are hashed every time (and evict
//! nothing), and a set replaces its least recently used way. An input chosen to collide in
//! the index costs at most the BLAKE3 it would have run anyway.

use std::hash::BuildHasher;

use super::KeyHex;

/// Longest hash input kept (after the constant algorithm tag): one `u64` argument encodes to
/// 27 bytes and a pair of them to 44; a short string fits too.
const MAX_INPUT: usize = 48;
/// Sets in the table; each input has one set, chosen by its index hash.
const SETS: usize = 256;
/// Inputs one set holds, most recently used first.
const WAYS: usize = 2;
// `hex_of` looks at the two ways by name.
const _: () = assert!(WAYS == 2);

/// One remembered input and the hex of its key hash (what the key ends with, so a hit writes
/// no hex either); `len == 0` is an empty entry (a hash input
/// of no bytes is never looked up, see [`RecentHashes::hex_of`]).
#[derive(Clone, Copy)]
struct Entry {
    /// The upper half of the input's index hash: most inputs that are not this one are
    /// told apart by it without comparing their bytes.
    tag: u32,
    len: u8,
    input: [u8; MAX_INPUT],
    hex: KeyHex,
}

const EMPTY: Entry = Entry {
    tag: 0,
    len: 0,
    input: [0; MAX_INPUT],
    hex: [0; 2 * super::HASH_BYTES],
};

/// A thread's recent key hashes: a small set-associative table.
pub(super) struct RecentHashes {
    /// Made on the first input that fits, so a thread whose inputs never do pays nothing.
    sets: Option<Box<[[Entry; WAYS]]>>,
    /// Tests put every input in one set under one tag, so only the byte compare tells
    /// inputs apart.
    #[cfg(test)]
    collide: bool,
}

impl RecentHashes {
    pub(super) const fn new() -> Self {
        RecentHashes {
            sets: None,
            #[cfg(test)]
            collide: false,
        }
    }

    /// The index hash of `input`. Not keyed against an adversary on purpose: a collision
    /// only costs the BLAKE3 pass.
    #[inline(always)]
    fn index_hash(&self, input: &[u8]) -> u64 {
        #[cfg(test)]
        if self.collide {
            return 0x5eed_0000_0000_0007;
        }
        foldhash::fast::FixedState::with_seed(0).hash_one(input)
    }

    /// The key hash (hex) of `input`: remembered, or `compute()` (and then remembered).
    #[inline]
    pub(super) fn hex_of(&mut self, input: &[u8], compute: impl FnOnce() -> KeyHex) -> KeyHex {
        let n = input.len();
        // An empty input would match an empty entry (`len == 0`); `store_key` with no parts
        // makes one.
        if n == 0 || n > MAX_INPUT {
            return compute();
        }
        let hash = self.index_hash(input);
        let (tag, index) = ((hash >> 32) as u32, hash as usize % SETS);
        let sets = self
            .sets
            .get_or_insert_with(|| vec![[EMPTY; WAYS]; SETS].into_boxed_slice());
        let set = &mut sets[index];
        let holds = |e: &Entry| e.tag == tag && usize::from(e.len) == n && e.input[..n] == *input;
        if holds(&set[0]) {
            return set[0].hex;
        }
        if holds(&set[1]) {
            set.swap(0, 1);
            return set[0].hex;
        }
        let hex = compute();
        // The older way goes; the input is written in place (bytes past `n` are not read).
        set[1] = set[0];
        let entry = &mut set[0];
        entry.tag = tag;
        entry.len = n as u8;
        entry.input[..n].copy_from_slice(input);
        entry.hex = hex;
        hex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hex of the first 16 bytes of `input`'s BLAKE3, digit by digit.
    fn blake3_of(input: &[u8]) -> KeyHex {
        let text: String = blake3::hash(input).as_bytes()[..super::super::HASH_BYTES]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        text.into_bytes().try_into().unwrap()
    }

    /// Far more inputs than the table holds, of every length up to past the limit, asked for
    /// in several passes and orders: every answer is the BLAKE3 of that very input, whether
    /// it was remembered, evicted or never kept.
    /// A table, with every input in one set under one tag when `collide`.
    fn table(collide: bool) -> RecentHashes {
        RecentHashes {
            collide,
            ..RecentHashes::new()
        }
    }

    #[test]
    fn every_answer_is_the_hash_of_that_input_remembered_or_not() {
        for collide in [false, true] {
            every_answer_is_the_hash_of_that_input(table(collide), collide);
        }
    }

    /// (With every input in one set of two ways, the last pass's five inputs evict one
    /// another, so only the answers are checked, not how many were computed.)
    fn every_answer_is_the_hash_of_that_input(mut recent: RecentHashes, collide: bool) {
        let inputs: Vec<Vec<u8>> = (0..(3 * SETS * WAYS) as u32)
            .map(|i| {
                let len = 1 + (i as usize * 7) % (MAX_INPUT + 8);
                (0..len).map(|j| (i as usize * 31 + j * 17) as u8).collect()
            })
            .collect();
        let mut computed = 0;
        for pass in 0..3 {
            for (i, input) in inputs.iter().enumerate() {
                // The last pass repeats a few inputs at once: they must be remembered.
                let input = if pass == 2 { &inputs[i % 5] } else { input };
                let got = recent.hex_of(input, || {
                    computed += 1;
                    blake3_of(input)
                });
                assert_eq!(got, blake3_of(input), "input {i} of pass {pass}");
            }
        }
        // Inputs past the limit are always computed; the last pass's five are not again.
        let long = inputs.iter().filter(|i| i.len() > MAX_INPUT).count();
        assert!(
            computed >= 2 * long,
            "{computed} computed, {long} long inputs"
        );
        assert!(
            collide || computed <= 2 * inputs.len() + 5,
            "{computed} computed"
        );
    }

    /// Inputs that differ only in a late byte, or that are prefixes of one another, are never
    /// taken for each other.
    #[test]
    fn inputs_differing_in_one_byte_or_length_get_their_own_hash() {
        for collide in [false, true] {
            inputs_differing_in_one_byte_or_length(table(collide));
        }
    }

    fn inputs_differing_in_one_byte_or_length(mut recent: RecentHashes) {
        let base: Vec<u8> = (0..MAX_INPUT as u8).collect();
        let mut variants = vec![base.clone()];
        for cut in 1..base.len() {
            variants.push(base[..cut].to_vec());
        }
        for at in 0..base.len() {
            let mut v = base.clone();
            v[at] ^= 0x80;
            variants.push(v);
        }
        for _ in 0..2 {
            for v in &variants {
                assert_eq!(recent.hex_of(v, || blake3_of(v)), blake3_of(v));
            }
        }
    }

    /// An empty input is computed every time: it must never match an empty entry, whose
    /// hex is all zero bytes.
    #[test]
    fn an_empty_input_is_never_answered_from_an_empty_entry() {
        let mut recent = table(true);
        for _ in 0..3 {
            assert_eq!(recent.hex_of(&[], || blake3_of(&[])), blake3_of(&[]));
        }
        let mut computed = 0;
        recent.hex_of(&[], || {
            computed += 1;
            blake3_of(&[])
        });
        assert_eq!(computed, 1);
        assert!(recent.sets.is_none(), "an empty input makes no table");
    }
}
