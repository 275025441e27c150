//! The two CRC-32s envelopes are checked with: ISO-HDLC (zlib's, computed by `crc32fast`) in
//! value envelopes 1 and 2 and stream envelope 1, Castagnoli (CRC-32C) from value envelope 3
//! and stream envelope 2. Which one a value uses follows from its magic and version byte
//! alone, so a reader picks it before checking anything.
//!
//! CRC-32C is computed here with SSE4.2's `crc32` instruction (8 bytes an instruction) below
//! [`SHORT_INPUT`] bytes, and by the `crc-fast` crate above it and on CPUs without SSE4.2 (its
//! carry-less-multiply folding, or its software tables). Measured under callgrind (`Ir` per
//! call, one call per input; `benches/RESULTS.md`, "Envelope version 3"), at 20 / 64 / 120 /
//! 256 / 600 bytes: crc32fast (CRC-32) 101 / 118 / 166 / 189 / 363; `crc32c` 0.6 170 / 168 /
//! 188 / 202 / 260 (an alignment prologue a byte at a time and two 3-way passes set up on
//! every call); `crc-fast` 1.10 113 / 111 / 139 / 147 / 681; this loop 54 / 65 / 85 / 99 /
//! 157. The loop is latency-bound (one word per 3 cycles), so on long inputs `crc-fast`'s
//! folding wins on the clock (side by side, under load: about equal at 256-512 bytes, 2-5x
//! faster at 1 KiB, 76-82 GB/s at 64 KiB-1 MiB, where crc32fast's CRC-32 made 62-66 and
//! `crc32c` 17-19). The hand-over at 512 keeps a hit's short values on the loop.

/// Which CRC-32 a header, payload, key binding or trailer is checked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Crc {
    /// CRC-32/ISO-HDLC, zlib's `crc32`: value envelopes 1 and 2, stream envelope 1.
    IsoHdlc,
    /// CRC-32C (Castagnoli, iSCSI): value envelope 3, stream envelope 2.
    Castagnoli,
}

impl Crc {
    /// The checksum of value envelope `version` (`CCHV`).
    #[inline]
    pub(crate) fn of_value(version: u8) -> Crc {
        if version >= super::ENVELOPE_VERSION_3 {
            Crc::Castagnoli
        } else {
            Crc::IsoHdlc
        }
    }

    /// The checksum of stream envelope `version` (`CCHS`).
    #[inline]
    pub(crate) fn of_stream(version: u8) -> Crc {
        if version >= super::stream::STREAM_VERSION_2 {
            Crc::Castagnoli
        } else {
            Crc::IsoHdlc
        }
    }

    /// The checksum of `bytes`. Always inlined: out of line, the call and the dispatch cost
    /// 18-28 Ir per hit on top of the loop (the peer benchmark's `Cache::get` and memoized
    /// call on LmdbStore, callgrind).
    #[inline(always)]
    pub(crate) fn of(self, bytes: &[u8]) -> u32 {
        match self {
            Crc::IsoHdlc => iso_hdlc(bytes),
            Crc::Castagnoli => castagnoli_append(0, bytes),
        }
    }

    /// A running checksum, fed in pieces (a streamed body).
    pub(crate) fn running(self) -> Running {
        match self {
            Crc::IsoHdlc => Running::IsoHdlc(crc32fast::Hasher::new()),
            Crc::Castagnoli => Running::Castagnoli(0),
        }
    }
}

/// A checksum computed over bytes fed in order, each once.
#[derive(Debug, Clone)]
pub(crate) enum Running {
    IsoHdlc(crc32fast::Hasher),
    /// The CRC-32C of the bytes so far (it appends: no state beyond the value).
    Castagnoli(u32),
}

impl Running {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Running::IsoHdlc(hasher) => hasher.update(bytes),
            Running::Castagnoli(crc) => *crc = castagnoli_append(*crc, bytes),
        }
    }

    pub(crate) fn finalize(&self) -> u32 {
        match self {
            Running::IsoHdlc(hasher) => hasher.clone().finalize(),
            Running::Castagnoli(crc) => *crc,
        }
    }
}

/// CRC-32 (ISO-HDLC) of `bytes`, as `crc32fast::hash` computes it. `crc32fast::Hasher::new`
/// detects the CPU's features at every call (37 instructions in callgrind); a state made once
/// is copied.
#[inline]
fn iso_hdlc(bytes: &[u8]) -> u32 {
    static FRESH: std::sync::OnceLock<crc32fast::Hasher> = std::sync::OnceLock::new();
    let mut hasher = FRESH.get_or_init(crc32fast::Hasher::new).clone();
    hasher.update(bytes);
    hasher.finalize()
}

/// Inputs shorter than this take the one-instruction-per-word loop; longer ones `crc-fast`'s
/// folding (as fast on the clock from here, and faster beyond; see the module docs).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const SHORT_INPUT: usize = 512;

/// CRC-32C of `bytes` appended to `crc`, the CRC-32C of the bytes before them (0 for none).
#[inline(always)]
pub(crate) fn castagnoli_append(crc: u32, bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        // std caches the CPU's features: after the first call this is a load and a test
        // (and nothing at all when built with `-C target-feature=+sse4.2`).
        if bytes.len() < SHORT_INPUT && std::arch::is_x86_feature_detected!("sse4.2") {
            #[expect(
                unsafe_code,
                reason = "calls the SSE4.2 loop, which needs the CPU feature checked just above"
            )]
            // SAFETY: `castagnoli_sse42` only needs SSE4.2, which the CPU has (checked above).
            return unsafe { castagnoli_sse42(crc, bytes) };
        }
    }
    castagnoli_crate(crc, bytes)
}

/// [`castagnoli_append`] through `crc-fast`: long inputs, and every input on a CPU without
/// SSE4.2 or another architecture.
#[inline]
fn castagnoli_crate(crc: u32, bytes: &[u8]) -> u32 {
    // The state of a reflected CRC is the complement of the CRC so far.
    let mut digest =
        crc_fast::Digest::new_with_init_state(crc_fast::CrcAlgorithm::Crc32Iscsi, u64::from(!crc));
    digest.update(bytes);
    digest.finalize() as u32
}

/// CRC-32C with SSE4.2's `crc32` instruction: 8 bytes an instruction, then the last 0–7 a
/// byte each. Short inputs only (see [`SHORT_INPUT`]); no table, no alignment prologue.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn castagnoli_sse42(crc: u32, bytes: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut state = u64::from(!crc);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut le = [0u8; 8];
        le.copy_from_slice(word);
        state = _mm_crc32_u64(state, u64::from_le_bytes(le));
    }
    // The instruction leaves the upper half zero: the state is a u32.
    let mut state = state as u32;
    for &byte in words.remainder() {
        state = _mm_crc32_u8(state, byte);
    }
    !state
}

#[cfg(test)]
mod tests {
    use super::{castagnoli_append, castagnoli_crate, Crc, SHORT_INPUT};
    use proptest::prelude::*;

    /// CRC-32C a bit at a time from its definition (reflected polynomial 0x82F63B78): the
    /// oracle both the SSE4.2 loop and `crc-fast` are checked against.
    fn bitwise(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0x82F6_3B78
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn both_checksums_give_their_published_check_values() {
        // The check value of each algorithm's catalogue entry: the CRC of "123456789".
        assert_eq!(Crc::IsoHdlc.of(b"123456789"), 0xcbf4_3926);
        assert_eq!(Crc::Castagnoli.of(b"123456789"), 0xe306_9283);
        assert_eq!(Crc::Castagnoli.of(b""), 0);
    }

    #[test]
    fn the_versions_name_their_checksums() {
        assert_eq!(Crc::of_value(1), Crc::IsoHdlc);
        assert_eq!(Crc::of_value(2), Crc::IsoHdlc);
        assert_eq!(Crc::of_value(3), Crc::Castagnoli);
        assert_eq!(Crc::of_stream(1), Crc::IsoHdlc);
        assert_eq!(Crc::of_stream(2), Crc::Castagnoli);
    }

    proptest! {
        /// The SSE4.2 loop and the crate give the definition's CRC-32C at every length (both
        /// sides of the hand-over) and alignment, and a running checksum fed in two pieces
        /// (each on either side of the hand-over) equals the one-shot one.
        #[test]
        fn the_short_loop_agrees_with_the_crate_and_appends(
            bytes in prop::collection::vec(any::<u8>(), 0..2 * SHORT_INPUT + 64),
            skip in 0usize..8,
            split in any::<prop::sample::Index>(),
        ) {
            let bytes = &bytes[skip.min(bytes.len())..];
            prop_assert_eq!(castagnoli_append(0, bytes), bitwise(bytes));
            // The crate's path at every length, as a CPU without SSE4.2 takes it, also
            // appended to a checksum so far (its start state is that checksum's complement).
            prop_assert_eq!(castagnoli_crate(0, bytes), bitwise(bytes));
            let at = split.index(bytes.len() + 1);
            prop_assert_eq!(
                castagnoli_crate(castagnoli_crate(0, &bytes[..at]), &bytes[at..]),
                bitwise(bytes)
            );
            for crc in [Crc::Castagnoli, Crc::IsoHdlc] {
                let mut running = crc.running();
                running.update(&bytes[..at]);
                running.update(&bytes[at..]);
                prop_assert_eq!(running.finalize(), crc.of(bytes));
            }
        }
    }
}
