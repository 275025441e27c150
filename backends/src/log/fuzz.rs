//! Fuzz entry points for the log's decoders: the bodies a `cargo-fuzz` target calls (there is
//! no `fuzz/` crate yet; `tests/fuzz.rs` drives them with proptest for a fixed number of cases
//! in the ordinary test suite). Each must return, never panic, hang or allocate without bound,
//! whatever the bytes.

use super::record::{FileHeader, RecordHeader, RECORD_HEADER_LEN};
use super::{LogOptions, LogStore};
use crate::{Durability, Store};

/// What each key read as: its value, a miss, or an error.
pub(crate) type Reads = Vec<(Vec<u8>, crate::Result<Option<Vec<u8>>>)>;

/// Decodes `bytes` as a file header and as a record header.
pub(crate) fn fuzz_headers(bytes: &[u8]) {
    let _ = FileHeader::decode(bytes);
    if let Some(header) = bytes.get(..RECORD_HEADER_LEN as usize) {
        let header: &[u8; RECORD_HEADER_LEN as usize] =
            header.try_into().expect("sliced to the header length");
        if let Ok(h) = RecordHeader::decode(header) {
            let _ = h.record_len();
        }
    }
}

/// Opens `bytes` as a log file — as the writer (which may recover and write) and as a reader —
/// and reads every key, checks every value and verifies the store. Returns what each key read
/// as on the reader, for callers that check the values.
pub(crate) fn fuzz_entry(bytes: &[u8]) -> Reads {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("fuzz.log");
    std::fs::write(&path, bytes).expect("writing the fuzz input");
    let mut seen = Vec::new();
    if let Ok(reader) = LogOptions::new().read_only(true).open(&path) {
        seen = read_all(&reader);
    }
    if let Ok(writer) = LogOptions::new().durability(Durability::None).open(&path) {
        read_all(&writer);
        // A recovered log takes writes and compacts.
        let _ = writer.put(b"after", b"fuzz");
        let _ = writer.compact();
    }
    seen
}

fn read_all(store: &LogStore) -> Reads {
    let _ = store.verify();
    let keys: Vec<Vec<u8>> = match store.keys() {
        Ok(keys) => keys.filter_map(|k| k.ok()).collect(),
        Err(_) => return Vec::new(),
    };
    keys.into_iter()
        .map(|k| {
            let got = store.get(&k);
            (k, got)
        })
        .collect()
}
