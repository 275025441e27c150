//! Both ways a mapped read checks its value: through the map up to `MAP_CHECK_MAX`, streamed
//! through the file above it. Each must refuse a damaged value.

use std::fs;

use super::*;
use crate::dir::read::MAP_CHECK_MAX;
use crate::Store;

#[test]
fn a_damaged_mapped_value_is_corrupt_on_both_sides_of_the_map_check_limit() {
    let temp = tempfile::tempdir().unwrap();
    let store = store_with_threshold(temp.path(), 4096);
    for len in [MAP_CHECK_MAX, MAP_CHECK_MAX + 1] {
        let key = len.to_le_bytes();
        let value = vec![0x5a; len as usize];
        store.put(&key, &value).unwrap();
        assert_eq!(&store.read(&key).unwrap().unwrap()[..], &value[..]);
        let path = store.entry_path(&key);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert_corrupt(store.read(&key).unwrap_err(), &path, &key, "value checksum");
        let mut called = false;
        assert!(store
            .with_value(&key, &mut |_| called = true)
            .unwrap_err()
            .is_corrupt());
        assert!(!called);
        assert!(store.read_unchecked(&key).unwrap().unwrap().is_mapped());
    }
}
