//! LogStore tests that need the crate's internals (record codec, file layout); tests that need
//! only the public API live in `backends/tests/log_*.rs`.

mod accounting;
#[cfg(unix)]
mod checked_reads;
mod checkpoint;
mod compaction;
mod fixtures;
mod fuzz;
mod periodic;
mod recovery;
#[cfg(unix)]
mod rollback;
mod unattributed;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::open::sibling;
use super::record::{
    FileHeader, KeyBlock, Kind, RecordHeader, FILE_HEADER_LEN, FORMAT_VERSION, FORMAT_VERSION_1,
    KEY_BLOCK_LEN, RECORD_HEADER_LEN,
};
use super::*;

mod conformance {
    use super::LogStore;

    crate::conformance_tests!(
        |dir: &std::path::Path| LogStore::open(dir.join("store.log")).unwrap(),
        persistent = true
    );
}

mod conformance_periodic {
    use super::LogStore;

    crate::conformance_tests!(
        |dir: &std::path::Path| LogStore::options()
            .durability(crate::Durability::Periodic)
            .open(dir.join("store.log"))
            .unwrap(),
        persistent = true
    );
}

fn fast(path: &Path) -> LogStore {
    LogStore::options()
        .durability(Durability::None)
        .open(path)
        .unwrap()
}

fn reader(path: &Path) -> LogStore {
    LogStore::options().read_only(true).open(path).unwrap()
}

fn contents(store: &LogStore) -> BTreeMap<Vec<u8>, Vec<u8>> {
    store.scan().unwrap().map(|e| e.unwrap()).collect()
}

fn model(entries: &[(&[u8], &[u8])]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    entries
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// Writes records one by one and returns the file length after each (record boundaries).
fn write_records(path: &Path, records: &[(&[u8], Option<&[u8]>)]) -> Vec<u64> {
    let store = fast(path);
    let mut ends = vec![store.stats().file_bytes];
    for (k, v) in records {
        match v {
            Some(v) => store.put(k, v).unwrap(),
            None => assert!(store.delete(k).unwrap()),
        }
        ends.push(store.stats().file_bytes);
    }
    store.flush().unwrap();
    ends
}

fn expect_corrupt(result: Result<LogStore>) -> String {
    match result {
        Err(Error::Corrupt { reason, .. }) => reason,
        other => panic!("expected Error::Corrupt, got {other:?}"),
    }
}
