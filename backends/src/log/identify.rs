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
//! - a header damaged beyond one bit is tried with every key length the record could have
//!   (the record runs to the end of the file, so a length fixes the value's too), as a put
//!   and as a tombstone, against the record checksum field: when that field survived, the
//!   length whose checksum matches is the record as written, key and value whole.
//!
//! When nothing fits, the key as read (if any) is returned: it is either the real key (the
//! value is damaged) or a new key, and in both cases no older value can come back through it.
//! A damaged header that nothing identifies leaves *suspects* instead: every key of the log
//! whose bytes follow the header, which is where the record's key sits when the damage is
//! confined to the header. Recovery treats each suspect as the record's key (see
//! `OpenReport`). Damage that reaches into the key's bytes as well, with the record checksum
//! field gone, is beyond this: nothing in a v1 record then tells its key.

use std::fs::File;
use std::io;

use super::index::Index;
use super::positioned::{hash_section, read_full_at};
use super::record::{Kind, RecordHeader, MAX_KEY_LEN, RECORD_HEADER_LEN};
use super::report::Damage;

/// Who a damaged record was written for.
#[derive(Debug, Default)]
pub(super) struct Attribution {
    /// The record's key, when told.
    pub(super) key: Option<Vec<u8>>,
    /// When the key is not told: the keys of the log it may have been.
    pub(super) suspects: Vec<Vec<u8>>,
}

/// The key of the damaged record at `offset` (the file holds `file_len` bytes), as well as it
/// can be told; `as_read` is the key the scan read under a sound header.
pub(super) fn damaged_key(
    file: &File,
    offset: u64,
    file_len: u64,
    reason: Damage,
    as_read: Option<Vec<u8>>,
    index: &Index,
) -> io::Result<Attribution> {
    let told = |key| Attribution {
        key,
        suspects: Vec::new(),
    };
    let mut hb = [0u8; RECORD_HEADER_LEN as usize];
    if read_full_at(file, &mut hb, offset)? < hb.len() {
        return Ok(told(as_read));
    }
    let key = match reason {
        Damage::HeaderChecksum => {
            if let Some(key) = undo_one_header_bit(file, offset, file_len, &hb)? {
                return Ok(told(Some(key)));
            }
            let after = bytes_after_header(file, offset, file_len)?;
            if let Some(key) = length_from_record_crc(file, offset, file_len, &hb, &after)? {
                return Ok(told(Some(key)));
            }
            let suspects = index
                .keys()
                .filter(|k| after.starts_with(k))
                .map(<[u8]>::to_vec)
                .collect();
            return Ok(Attribution {
                key: None,
                suspects,
            });
        }
        Damage::RecordChecksum => {
            let Ok(header) = RecordHeader::decode(&hb) else {
                return Ok(told(as_read));
            };
            match as_read {
                Some(key) if index.contains_key(&key[..]) => Some(key),
                as_read => match_index_key(file, offset, &header, index)?.or(as_read),
            }
        }
    };
    Ok(told(key))
}

/// The bytes after a damaged header that could be its key (up to the key limit).
fn bytes_after_header(file: &File, offset: u64, file_len: u64) -> io::Result<Vec<u8>> {
    let key_off = offset + RECORD_HEADER_LEN;
    let n = file_len.saturating_sub(key_off).min(u64::from(MAX_KEY_LEN)) as usize;
    let mut after = vec![0u8; n];
    let got = read_full_at(file, &mut after, key_off)?;
    after.truncate(got);
    Ok(after)
}

/// The key of a damaged header whose record checksum field survived: the key length (as a
/// put, the value taking the rest of the file, or as a tombstone of the whole rest) whose
/// record checksum matches the stored one. The key and value bytes are hashed once; each
/// length only changes the 16 header bytes in front, joined with `combine`.
fn length_from_record_crc(
    file: &File,
    offset: u64,
    file_len: u64,
    hb: &[u8; RECORD_HEADER_LEN as usize],
    after: &[u8],
) -> io::Result<Option<Vec<u8>>> {
    let stored = u32::from_le_bytes([hb[20], hb[21], hb[22], hb[23]]);
    let key_off = offset + RECORD_HEADER_LEN;
    let rest = file_len.saturating_sub(key_off);
    let mut body = crc32fast::Hasher::new();
    if !hash_section(file, key_off, rest, &mut body)? {
        return Ok(None);
    }
    for key_len in 0..=after.len() {
        let mut kinds = vec![(Kind::Put, rest - key_len as u64)];
        if key_len as u64 == rest {
            kinds.push((Kind::Tombstone, 0));
        }
        for (kind, value_len) in kinds {
            let mut crc = crc32fast::Hasher::new();
            crc.update(&RecordHeader::fields(kind, key_len as u32, value_len));
            crc.combine(&body);
            if crc.finalize() == stored {
                return Ok(Some(after[..key_len].to_vec()));
            }
        }
    }
    Ok(None)
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
