//! Finding a value: the index lookup, remapping when the value lies past the map, the refresh
//! of a read-only handle on a miss, and the checksum check every checked read makes.

use std::fs::File;
use std::ops::Range;
use std::sync::Arc;

use memmap2::Mmap;

use super::index::Loc;
use super::positioned::{hash_section, OwnedSection};
use super::record::{Kind, RecordHeader};
use super::state::remap_to;
use super::LogStore;
use crate::value_reader::{CrcChecked, ValueReader};
use crate::{Error, Result};

/// Values up to this long are checked straight from the map; longer ones with positioned
/// reads through a small buffer, so checking a 1 GiB value faults none of its pages into the
/// process (the caller may only want part of it).
const CHECK_FROM_MAP: u64 = 1 << 20;

/// A located value: the map it lies in, the file behind that map, and where it sits.
pub(super) struct Found {
    pub(super) map: Arc<Mmap>,
    pub(super) file: Arc<File>,
    pub(super) loc: Loc,
}

impl Found {
    pub(super) fn range(&self) -> Range<usize> {
        // Both ends lie within the map (checked when it was found), so they fit in usize.
        self.loc.value_off as usize..(self.loc.value_off + self.loc.value_len) as usize
    }
}

impl LogStore {
    /// The value's map and place, remapping when the value lies beyond the current map and
    /// refreshing a read-only handle on a miss (or on a key it last saw damaged).
    pub(super) fn locate(&self, key: &[u8]) -> Result<Option<Found>> {
        let mut refreshed = false;
        loop {
            {
                let st = self.state();
                if let Some(&offset) = st.damaged.get(key) {
                    if refreshed {
                        return Err(self.damaged_error(key, offset));
                    }
                } else {
                    match st.index.get(key) {
                        Some(loc) if loc.value_off + loc.value_len <= st.map.len() as u64 => {
                            return Ok(Some(Found {
                                map: st.map.clone(),
                                file: st.file.clone(),
                                loc,
                            }));
                        }
                        Some(_) => {}
                        None if self.options.read_only && !refreshed => {}
                        None => return Ok(None),
                    }
                }
            }
            let mut st = self.state_mut();
            if !st.damaged.contains_key(key) {
                if let Some(loc) = st.index.get(key) {
                    remap_to(&mut st, loc.value_off + loc.value_len, &self.path)?;
                    return Ok(Some(Found {
                        map: st.map.clone(),
                        file: st.file.clone(),
                        loc,
                    }));
                }
            }
            drop(st);
            self.refresh()?;
            refreshed = true;
        }
    }

    /// The index entry of `key`, refreshing a read-only handle on a miss.
    pub(super) fn loc(&self, key: &[u8]) -> Result<Option<Loc>> {
        {
            let st = self.state();
            if let Some(&offset) = st.damaged.get(key) {
                return Err(self.damaged_error(key, offset));
            }
            if let Some(loc) = st.index.get(key) {
                return Ok(Some(loc));
            }
        }
        if self.options.read_only && self.refresh()? {
            return Ok(self.state().index.get(key));
        }
        Ok(None)
    }

    pub(super) fn damaged_error(&self, key: &[u8], offset: u64) -> Error {
        Error::corrupt(
            &self.path,
            Some(key),
            format!(
                "the key's newest record, at offset {offset}, fails its checksum (the writer \
                 moves it aside when it next opens the log)"
            ),
        )
    }

    /// Checks the record behind a located value against its record checksum: header, key
    /// (which must be `key`) and value, as the scan checked them at open. Catches bytes that
    /// changed on disk since.
    pub(super) fn check(&self, key: &[u8], found: &Found) -> Result<()> {
        let (header, mut crc) = self.check_head(key, found)?;
        let loc = &found.loc;
        let start = loc.record_start(key.len());
        let corrupt = |reason: &str| {
            Error::corrupt(
                &self.path,
                Some(key),
                format!("record at offset {start}: {reason}"),
            )
        };
        if loc.value_len <= CHECK_FROM_MAP {
            crc.update(&found.map[found.range()]);
        } else if !hash_section(&found.file, loc.value_off, loc.value_len, &mut crc)
            .map_err(|e| Error::io("checking a value in", &self.path, e))?
        {
            return Err(corrupt("value cut short since the log was opened"));
        }
        if crc.finalize() != header.crc {
            return Err(corrupt("record checksum mismatch"));
        }
        Ok(())
    }

    /// Streams the value with positioned reads (no map, a buffer of the caller's size): the
    /// header and key are checked first, the record checksum by the end of the stream, where
    /// a mismatch is an `InvalidData` error instead of the end (see [`ValueReader`]).
    pub(super) fn stream(&self, key: &[u8]) -> Result<Option<ValueReader>> {
        let Some(found) = self.locate(key)? else {
            return Ok(None);
        };
        let (header, crc) = self.check_head(key, &found)?;
        let loc = found.loc;
        let what = format!(
            "{} (key {}, record at offset {})",
            self.path.display(),
            crate::KeyDisplay::new(key),
            loc.record_start(key.len())
        );
        let section = OwnedSection::new(found.file, loc.value_off, loc.value_len);
        let checked = CrcChecked::primed(section, loc.value_len, crc, header.crc, what);
        Ok(Some(ValueReader::new(loc.value_len, Box::new(checked))))
    }

    /// Checks the header and key of the record behind a located value; returns the header and
    /// the record checksum fed everything before the value.
    fn check_head(&self, key: &[u8], found: &Found) -> Result<(RecordHeader, crc32fast::Hasher)> {
        let loc = &found.loc;
        let start = loc.record_start(key.len());
        let corrupt = |reason: String| {
            Error::corrupt(
                &self.path,
                Some(key),
                format!("record at offset {start}: {reason}"),
            )
        };
        let map = &found.map[..];
        let header_at = start as usize..(start + loc.layout.header_len()) as usize;
        let header_bytes = map
            .get(header_at)
            .ok_or_else(|| corrupt("header outside the file".into()))?;
        let header = RecordHeader::decode(header_bytes)
            .map_err(|_| corrupt("record header changed since the log was opened".into()))?;
        if header.kind != Kind::Put
            || header.layout != loc.layout
            || header.key_len as usize != key.len()
            || header.value_len != loc.value_len
        {
            return Err(corrupt(
                "record header changed since the log was opened".into(),
            ));
        }
        let key_at = (start + header.header_len()) as usize..loc.value_off as usize;
        if &map[key_at.clone()] != key {
            return Err(corrupt(
                "stored key changed since the log was opened".into(),
            ));
        }
        let mut crc = header.record_hasher();
        crc.update(&map[key_at]);
        Ok((header, crc))
    }
}
