//! Compaction, explicit and automatic.

use super::*;

#[test]
fn compaction_keeps_live_records_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let store = LogStore::open(&path).unwrap();
    let mut want = BTreeMap::new();
    for i in 0..200u32 {
        let k = format!("k{}", i % 50).into_bytes();
        let v = vec![i as u8; (i as usize * 7) % 300];
        store.put(&k, &v).unwrap();
        want.insert(k, v);
    }
    for i in (0..50).step_by(5) {
        let k = format!("k{i}").into_bytes();
        store.delete(&k).unwrap();
        want.remove(&k);
    }
    let blob = store.read(b"k1").unwrap().unwrap();
    let before = store.stats();
    assert!(before.garbage_ratio() > 0.5, "{before:?}");
    let after = store.compact().unwrap();
    assert_eq!(after.garbage_ratio(), 0.0);
    assert_eq!(after.live_bytes, before.live_bytes);
    assert_eq!(after.entries, want.len() as u64);
    assert_eq!(after.file_bytes, FILE_HEADER_LEN + after.live_bytes);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), after.file_bytes);
    assert_eq!(after.generation, before.generation + 1);
    assert_eq!(contents(&store), want);
    assert_eq!(&blob[..], &want[&b"k1"[..]][..]);
    // The compacted file holds only puts: no tombstones, no old values.
    drop(store);
    let store = LogStore::open(&path).unwrap();
    assert_eq!(store.open_report().records, want.len() as u64);
    assert_eq!(contents(&store), want);
    assert!(!sibling(&path, ".compacting").unwrap().exists());
    // Writing after compaction appends to the new file.
    store.put(b"k1", b"fresh").unwrap();
    want.insert(b"k1".to_vec(), b"fresh".to_vec());
    drop(store);
    assert_eq!(contents(&LogStore::open(&path).unwrap()), want);
}

#[test]
fn auto_compaction_runs_past_the_garbage_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let store = LogStore::options()
        .durability(Durability::None)
        .auto_compact(0.5, 4096)
        .open(&path)
        .unwrap();
    for i in 0..100u32 {
        store.put(b"same", &[i as u8; 200]).unwrap();
        assert!(store.stats().garbage_ratio() <= 0.5 || store.stats().file_bytes < 4096);
    }
    assert!(store.stats().generation != 0);
    assert!(std::fs::metadata(&path).unwrap().len() < 4096 + 300);
    assert_eq!(store.get(b"same").unwrap(), Some(vec![99u8; 200]));
}
