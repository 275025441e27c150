//! The fuzz entry point for the log's header decoders, which the file-level entry point
//! (`backends/tests/log_entry_points`, shared with the cargo-fuzz target `fuzz/fuzz_targets/
//! log.rs`) reaches only through whole files. `tests/fuzz.rs` drives it with proptest.

use super::record::{FileHeader, KeyBlock, RecordHeader};

/// Decodes `bytes` as a file header and as a record header: errors only, never a panic.
pub(crate) fn fuzz_headers(bytes: &[u8]) {
    let _ = FileHeader::decode(bytes);
    if let Ok(h) = RecordHeader::decode(bytes) {
        let _ = h.record_len();
    }
    let _ = KeyBlock::decode(bytes);
}
