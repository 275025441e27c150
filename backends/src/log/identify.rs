//! Which key a damaged last record was written for.
//!
//! Recovery writes a tombstone for a damaged record's key so its older value does not come
//! back (see `OpenReport`), which needs the key. A sound header gives the key's length, but the
//! key's bytes may be the damaged ones; a damaged header hides even the length. Both are
//! recovered when the damage is small:
//! - a header failing its checksum is tried with each of its 128 field bits flipped back (and
//!   as it is, for damage in the checksum field itself); a candidate that passes the header
//!   checksum *and* the record checksum over the key and value is the record as written;
//! - a sound header whose record fails its checksum is tried with each key of the log of the
//!   same length in place of the stored key (the value's checksum is computed once and
//!   combined), which finds the key when only key bytes were damaged.
//!
//! When nothing fits, the key as read (if any) is returned: it is either the real key (the
//! value is damaged) or a new key, and in both cases no older value can come back through it.

use std::fs::File;
use std::io;

use super::index::Index;
use super::positioned::{hash_section, read_full_at};
use super::record::{RecordHeader, RECORD_HEADER_LEN};
use super::report::Damage;

/// The key of the damaged record at `offset` (the file holds `file_len` bytes), as well as it
/// can be told; `as_read` is the key the scan read under a sound header.
pub(super) fn damaged_key(
    file: &File,
    offset: u64,
    file_len: u64,
    reason: Damage,
    as_read: Option<Vec<u8>>,
    index: &Index,
) -> io::Result<Option<Vec<u8>>> {
    let mut hb = [0u8; RECORD_HEADER_LEN as usize];
    if read_full_at(file, &mut hb, offset)? < hb.len() {
        return Ok(as_read);
    }
    match reason {
        Damage::HeaderChecksum => undo_one_header_bit(file, offset, file_len, &hb),
        Damage::RecordChecksum => {
            let Ok(header) = RecordHeader::decode(&hb) else {
                return Ok(as_read);
            };
            match as_read {
                Some(key) if index.contains_key(&key[..]) => Ok(Some(key)),
                as_read => Ok(match_index_key(file, offset, &header, index)?.or(as_read)),
            }
        }
    }
}

fn undo_one_header_bit(
    file: &File,
    offset: u64,
    file_len: u64,
    hb: &[u8; RECORD_HEADER_LEN as usize],
) -> io::Result<Option<Vec<u8>>> {
    let stored_header_crc = &hb[16..20];
    // `None` tries the fields as they are: the damage may be in the header checksum itself.
    for bit in std::iter::once(None).chain((0..128).map(Some)) {
        let mut candidate = *hb;
        if let Some(bit) = bit {
            candidate[bit / 8] ^= 1 << (bit % 8);
        }
        let fields_crc = crc32fast::hash(&candidate[..16]).to_le_bytes();
        if bit.is_some() && fields_crc != stored_header_crc {
            continue;
        }
        candidate[16..20].copy_from_slice(&fields_crc);
        let Ok(header) = RecordHeader::decode(&candidate) else {
            continue;
        };
        if offset.saturating_add(header.record_len()) > file_len {
            continue;
        }
        let mut key = vec![0u8; header.key_len as usize];
        let key_off = offset + RECORD_HEADER_LEN;
        if read_full_at(file, &mut key, key_off)? < key.len() {
            continue;
        }
        let mut crc = header.record_hasher();
        crc.update(&key);
        if !hash_section(file, key_off + key.len() as u64, header.value_len, &mut crc)? {
            continue;
        }
        if crc.finalize() == header.crc {
            return Ok(Some(key));
        }
    }
    Ok(None)
}

/// The key of `index` that, put in place of the stored key, makes the record's checksum match.
fn match_index_key(
    file: &File,
    offset: u64,
    header: &RecordHeader,
    index: &Index,
) -> io::Result<Option<Vec<u8>>> {
    let key_len = header.key_len as usize;
    let value_off = offset + RECORD_HEADER_LEN + key_len as u64;
    let mut value = crc32fast::Hasher::new();
    if !hash_section(file, value_off, header.value_len, &mut value)? {
        return Ok(None);
    }
    for key in index.keys().filter(|k| k.len() == key_len) {
        let mut crc = header.record_hasher();
        crc.update(key);
        crc.combine(&value);
        if crc.finalize() == header.crc {
            return Ok(Some(key.to_vec()));
        }
    }
    Ok(None)
}
