//! Which key a damaged last record was written for.
//!
//! Recovery writes a tombstone for a damaged record's key so its older value does not come
//! back (see `OpenReport`), which needs the key, or failing that every key it may have been.
//!
//! A **v2** record names its key three times over: its key block (the key's length and
//! CRC-32) is covered by the header checksum *and* by its own check, and is repeated as the
//! record's trailer. The first copy that holds tells the key: the stored key bytes when they
//! match that CRC, else the log's keys of that length and CRC. When none match, no key of the
//! log was the record's key, so no older value exists that could come back: the damage is
//! harmless, and nothing is tombstoned. Only when all three copies fail (damage in the
//! header's key block and in the trailer, which lie apart by the key and value) do the v1
//! methods below take over.
//!
//! A **v1** record (24-byte header, no key block) is identified as before:
//! - a header failing its checksum is tried with each of its 128 field bits flipped back (and
//!   as it is, for damage in the checksum field itself); a candidate that passes the header
//!   checksum *and* the record checksum over the key and value is the record as written;
//! - a header damaged beyond one bit is tried with every key length the record could have
//!   (the record runs to the end of the file, so a length fixes the value's too), as a put
//!   and as a tombstone, in both layouts, against the record checksum field: when that field
//!   survived, the length whose checksum matches is the record as written;
//! - a sound header whose record fails its checksum is tried with each key of the log of the
//!   same length in place of the stored key (the value's checksum is computed once and
//!   combined), which finds the key when only key bytes were damaged.
//!
//! When nothing fits a sound v1 header, the key as read is returned: it is either the real key
//! (the value is damaged) or a new key, unless the key bytes *and* the record checksum field
//! are both damaged — the case only the v2 key block closes. A damaged header that nothing
//! identifies makes every key of the log that fits a suspect, as for v2.

use std::fs::File;
use std::io;

use super::index::Index;
use super::positioned::{hash_section, read_full_at};
use super::record::{
    header_crc, KeyBlock, Kind, Layout, RecordHeader, KEY_BLOCK_LEN, MAX_KEY_LEN, V1_HEADER_LEN,
    V2_HEADER_LEN,
};
use super::report::Damage;
use crate::le::u32_at;

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
    let mut hb = [0u8; V2_HEADER_LEN as usize];
    let n = read_full_at(file, &mut hb, offset)?;
    let hb = &hb[..n];
    if n < V1_HEADER_LEN as usize {
        return Ok(told(as_read));
    }
    let sound = RecordHeader::decode(hb).ok();
    // The key's length and CRC-32: from a sound v2 header, else from its key block on its own,
    // else from the copy after the value (where the header says the record ends, or at the
    // end of the file, where the last record ends when nothing follows it).
    let block = match sound {
        // The header checksum covers the key block, and decoding checked its length.
        Some(h) if h.layout == Layout::V2 => Some(KeyBlock {
            key_len: h.key_len,
            key_crc: u32_at(hb, 28).unwrap_or_default(),
        }),
        Some(_) => None,
        None => match KeyBlock::decode(hb) {
            Some(block) => Some(block),
            None => trailer_block(file, file_len.saturating_sub(KEY_BLOCK_LEN), offset)?,
        },
    };
    if let Some(block) = block {
        return by_key_block(file, offset, &block, index);
    }
    match reason {
        Damage::HeaderChecksum => {
            if let Some(key) = undo_one_header_bit(file, offset, file_len, hb)? {
                return Ok(told(Some(key)));
            }
            for layout in [Layout::V2, Layout::V1] {
                let after = bytes_after_header(file, offset + layout.header_len(), file_len)?;
                if let Some(key) =
                    length_from_record_crc(file, offset, file_len, layout, hb, &after)?
                {
                    return Ok(told(Some(key)));
                }
            }
            // Nothing tells the key: every key of the log whose bytes follow the header (of
            // either layout), which is where the record's key sits unless the key bytes are
            // damaged too.
            let mut suspects: Vec<Vec<u8>> = Vec::new();
            for layout in [Layout::V1, Layout::V2] {
                let after = bytes_after_header(file, offset + layout.header_len(), file_len)?;
                suspects.extend(
                    index
                        .keys()
                        .filter(|k| after.starts_with(k) && !suspects.iter().any(|s| s == k))
                        .map(<[u8]>::to_vec)
                        .collect::<Vec<_>>(),
                );
            }
            Ok(Attribution {
                key: None,
                suspects,
            })
        }
        Damage::RecordChecksum => {
            let Some(header) = sound else {
                return Ok(told(as_read));
            };
            let key = match as_read {
                Some(key) if index.contains_key(&key[..]) => Some(key),
                as_read => match_index_key(file, offset, &header, index)?.or(as_read),
            };
            Ok(told(key))
        }
    }
}

/// The key block stored at `at`, if its checksum holds and it lies after the header at
/// `offset`.
fn trailer_block(file: &File, at: u64, offset: u64) -> io::Result<Option<KeyBlock>> {
    if at < offset + V2_HEADER_LEN {
        return Ok(None);
    }
    let mut b = [0u8; KEY_BLOCK_LEN as usize];
    if read_full_at(file, &mut b, at)? < b.len() {
        return Ok(None);
    }
    Ok(KeyBlock::decode_block(&b))
}

/// The key a v2 record's key block names: the stored key when its bytes match the block's
/// CRC-32, else the log's keys of the block's length and CRC-32 (one is the key; several
/// only when CRCs collide, each then a suspect). None of them: the record's key has no
/// older value in the log, so nothing can come back.
fn by_key_block(
    file: &File,
    offset: u64,
    block: &KeyBlock,
    index: &Index,
) -> io::Result<Attribution> {
    let mut stored = vec![0u8; block.key_len as usize];
    let got = read_full_at(file, &mut stored, offset + V2_HEADER_LEN)?;
    if got == stored.len() && block.names(&stored) {
        return Ok(Attribution {
            key: Some(stored),
            suspects: Vec::new(),
        });
    }
    let mut matches: Vec<Vec<u8>> = index
        .keys()
        .filter(|k| block.names(k))
        .map(<[u8]>::to_vec)
        .collect();
    Ok(match matches.len() {
        1 => Attribution {
            key: matches.pop(),
            suspects: Vec::new(),
        },
        _ => Attribution {
            key: None,
            suspects: matches,
        },
    })
}

/// The bytes from `key_off` that could be a damaged record's key (up to the key limit).
fn bytes_after_header(file: &File, key_off: u64, file_len: u64) -> io::Result<Vec<u8>> {
    let n = file_len.saturating_sub(key_off).min(u64::from(MAX_KEY_LEN)) as usize;
    let mut after = vec![0u8; n];
    let got = read_full_at(file, &mut after, key_off)?;
    after.truncate(got);
    Ok(after)
}

/// The key of a damaged header of `layout` whose record checksum field survived: the key
/// length (as a put, the value taking the rest of the file, or as a tombstone of the whole
/// rest) whose record checksum matches the stored one. The key and value bytes are hashed
/// once; each length only changes the 16 header bytes in front, joined with `combine`.
fn length_from_record_crc(
    file: &File,
    offset: u64,
    file_len: u64,
    layout: Layout,
    hb: &[u8],
    after: &[u8],
) -> io::Result<Option<Vec<u8>>> {
    let Some(stored) = u32_at(hb, 20) else {
        return Ok(None);
    };
    let key_off = offset + layout.header_len();
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
            crc.update(&RecordHeader::fields(
                kind,
                layout,
                key_len as u32,
                value_len,
            ));
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
    hb: &[u8],
) -> io::Result<Option<Vec<u8>>> {
    let mut candidate = [0u8; V2_HEADER_LEN as usize];
    let n = hb.len().min(candidate.len());
    // `None` tries the fields as they are: the damage may be in the header checksum itself.
    for bit in std::iter::once(None).chain((0..128).map(Some)) {
        candidate[..n].copy_from_slice(&hb[..n]);
        if let Some(bit) = bit {
            candidate[bit / 8] ^= 1 << (bit % 8);
        }
        let Some(fields_crc) = header_crc(&candidate[..n]) else {
            continue;
        };
        if bit.is_some() && u32_at(&candidate, 16) != Some(fields_crc) {
            continue;
        }
        candidate[16..20].copy_from_slice(&fields_crc.to_le_bytes());
        let Ok(header) = RecordHeader::decode(&candidate[..n]) else {
            continue;
        };
        if offset.saturating_add(header.record_len()) > file_len {
            continue;
        }
        let mut key = vec![0u8; header.key_len as usize];
        let key_off = offset + header.header_len();
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
    let value_off = offset + header.header_len() + key_len as u64;
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
