//! Streamed reads: the value read through the file descriptor in pieces, its checksum checked
//! at the end, so a value of any size costs a fixed buffer and no mapped pages.

use crate::value_reader::{CrcChecked, ValueReader};
use crate::Result;

use super::DirStore;

impl DirStore {
    pub(super) fn stream_key(&self, key: &[u8], check: bool) -> Result<Option<ValueReader>> {
        let Some((path, mut file)) = self.open_key(key)? else {
            return Ok(None);
        };
        // Header and key checked; the file is left at the value's first byte.
        let (header, _) = self.load_head(&mut file, &path, Some(key))?;
        if !check {
            let value = std::io::Read::take(file, header.value_len);
            return Ok(Some(ValueReader::new(header.value_len, Box::new(value))));
        }
        let what = format!("{} (key {})", path.display(), crate::KeyDisplay::new(key));
        let checked = CrcChecked::new(file, header.value_len, header.value_crc, what);
        Ok(Some(ValueReader::new(header.value_len, Box::new(checked))))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::Store;

    #[test]
    fn a_streamed_read_errors_instead_of_ending_on_a_flipped_value_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::open(dir.path()).unwrap();
        store.put(b"k", b"value bytes").unwrap();
        let mut all = Vec::new();
        store
            .read_stream(b"k")
            .unwrap()
            .unwrap()
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, b"value bytes");
        let path = store.entry_path(b"k");
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 2] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let mut reader = store.read_stream(b"k").unwrap().unwrap();
        let err = reader.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
        assert!(store.read_stream(b"missing").unwrap().is_none());
    }
}
