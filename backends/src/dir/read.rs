//! Reading entries: the header and key first, then the value copied or memory-mapped.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use super::format::{self, Header, HEADER_LEN};
use super::DirStore;
use crate::fs::{copy_checksummed, read_up_to};
use crate::version::Refusal;
use crate::{Blob, Error, Result};

/// Whether a read checks the value checksum of a memory-mapped value (copied values are
/// always checked: the copy passes over every byte anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// Header, key and value checksums.
    Full,
    /// Header and key only when the value is mapped, leaving its pages untouched.
    SkipMappedValue,
}

/// What a read hands back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// A view of the mapped file when it is at least the mmap threshold, else a copy.
    ViewOrCopy,
    /// An owned copy at any size.
    Copy,
}

impl DirStore {
    /// Reads `key`'s entry: `Ok(None)` when it has none.
    pub(super) fn read_key(
        &self,
        key: &[u8],
        check: Check,
        target: Target,
    ) -> Result<Option<Blob>> {
        let Some((path, file)) = self.open_key(key)? else {
            return Ok(None);
        };
        Ok(Some(self.load(file, &path, Some(key), check, target)?.1))
    }

    /// Checks a whole entry without keeping its value: the header and key are read, then the
    /// value is streamed through a fixed buffer into its checksum, so memory stays bounded at
    /// any size. Returns the key; on failure, the key too when it was read and checked.
    pub(super) fn check_entry(
        &self,
        mut file: File,
        path: &Path,
        expect_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, (Option<Vec<u8>>, Error)> {
        let (header, key) = self
            .load_head(&mut file, path, expect_key)
            .map_err(|e| (None, e))?;
        // `load_head` leaves the file at the first byte of the value.
        match check_streamed(&mut file, &header, path, &key) {
            Ok(()) => Ok(key),
            Err(e) => Err((Some(key), e)),
        }
    }

    /// Reads a whole entry from `file`: through a map when `target` allows and the file is
    /// large, else into a `Vec`. With `expect_key`, a file holding another key is corrupt;
    /// without it (iteration), a file whose name is not its key's hash is. Returns the key and
    /// the value.
    pub(super) fn load(
        &self,
        mut file: File,
        path: &Path,
        expect_key: Option<&[u8]>,
        check: Check,
        target: Target,
    ) -> Result<(Vec<u8>, Blob)> {
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("reading the length of", path, e))?
            .len();
        let mapped = target == Target::ViewOrCopy && file_len >= self.mmap_threshold;
        if !mapped && file_len > SPLIT_READ {
            return self.load_owned_split(file, file_len, path, expect_key);
        }
        if mapped {
            let map = map_file(&file, path)?;
            // The map's own length, in case the file changed length since the fstat above.
            let header = decode(
                &map[..HEADER_LEN.min(map.len())],
                map.len() as u64,
                path,
                expect_key,
            )?;
            let key = &map[HEADER_LEN..header.value_offset()];
            self.check_key(&header, key, path, expect_key)?;
            let range = header.value_offset()..map.len();
            if check == Check::Full && header.value_len <= MAP_CHECK_MAX {
                // Through the map: its pages become resident, which the caller is about to
                // make them anyway, and no byte is copied.
                header
                    .check_value(&map[range.clone()])
                    .map_err(|r| r.into_error(path, Some(key), format::FORMAT_VERSION))?;
            } else if check == Check::Full {
                // Through the file: a pass over the map would make every page of a huge value
                // resident in this process (1 GiB of RSS for a 1 GiB value), while reads
                // through a fixed buffer leave the pages in the page cache only.
                file.seek(SeekFrom::Start(header.value_offset() as u64))
                    .map_err(|e| Error::io("reading", path, e))?;
                check_streamed(&mut file, &header, path, key)?;
            }
            let key = key.to_vec();
            return Ok((key, Blob::mapped(Arc::new(map), range)));
        }
        // Entry files never change in place, so the length from fstat is the length to read;
        // reading exactly that saves the extra end-of-file probe `read_to_end` makes.
        let mut buf = vec![0u8; file_len as usize];
        let got = read_up_to(&mut file, &mut buf).map_err(|e| Error::io("reading", path, e))?;
        buf.truncate(got);
        // The length is checked against the bytes read, not the fstat above.
        let header = decode(
            &buf[..HEADER_LEN.min(buf.len())],
            buf.len() as u64,
            path,
            expect_key,
        )?;
        let key = &buf[HEADER_LEN..header.value_offset()];
        self.check_key(&header, key, path, expect_key)?;
        header
            .check_value(&buf[header.value_offset()..])
            .map_err(|r| r.into_error(path, Some(key), format::FORMAT_VERSION))?;
        let key = key.to_vec();
        buf.drain(..header.value_offset());
        Ok((key, Blob::from(buf)))
    }

    /// Reads a large entry into a `Vec` holding just the value: the header and key first,
    /// then the value straight into its own buffer, so no memmove of the value follows.
    fn load_owned_split(
        &self,
        mut file: File,
        file_len: u64,
        path: &Path,
        expect_key: Option<&[u8]>,
    ) -> Result<(Vec<u8>, Blob)> {
        let mut head = [0u8; HEADER_LEN];
        let got = read_up_to(&mut file, &mut head).map_err(|e| Error::io("reading", path, e))?;
        let header = decode(&head[..got], file_len, path, expect_key)?;
        let mut key = vec![0u8; header.value_offset() - HEADER_LEN];
        let got = read_up_to(&mut file, &mut key).map_err(|e| Error::io("reading", path, e))?;
        if got != key.len() {
            return Err(Error::corrupt(
                path,
                expect_key,
                "file shorter than its header says",
            ));
        }
        self.check_key(&header, &key, path, expect_key)?;
        let value_len = usize::try_from(file_len - header.value_offset() as u64)
            .map_err(|_| Error::corrupt(path, expect_key, "value too large for memory"))?;
        // Refused rather than aborting the process when a header declares more than fits.
        let mut value = Vec::new();
        value.try_reserve_exact(value_len).map_err(|_| {
            Error::corrupt(
                path,
                expect_key,
                format!("a value of {value_len} bytes does not fit in memory"),
            )
        })?;
        value.resize(value_len, 0);
        let got = read_up_to(&mut file, &mut value).map_err(|e| Error::io("reading", path, e))?;
        if got != value_len {
            return Err(Error::corrupt(
                path,
                expect_key,
                "file shorter than its header says",
            ));
        }
        header
            .check_value(&value)
            .map_err(|r| r.into_error(path, Some(&key), format::FORMAT_VERSION))?;
        Ok((key, Blob::from(value)))
    }

    /// Reads only the header and key of an entry file.
    pub(super) fn load_head(
        &self,
        file: &mut File,
        path: &Path,
        expect_key: Option<&[u8]>,
    ) -> Result<(Header, Vec<u8>)> {
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("reading the length of", path, e))?
            .len();
        let mut head = [0u8; HEADER_LEN];
        let got = read_up_to(file, &mut head).map_err(|e| Error::io("reading", path, e))?;
        let header = decode(&head[..got], file_len, path, expect_key)?;
        // At most `MAX_KEY_LEN`: `decode` refused longer keys.
        let mut key = vec![0u8; header.key_len as usize];
        let got = read_up_to(file, &mut key).map_err(|e| Error::io("reading", path, e))?;
        if got != key.len() {
            return Err(Error::corrupt(
                path,
                expect_key,
                "file shorter than its header says",
            ));
        }
        self.check_key(&header, &key, path, expect_key)?;
        Ok((header, key))
    }

    fn check_key(
        &self,
        header: &Header,
        key: &[u8],
        path: &Path,
        expect_key: Option<&[u8]>,
    ) -> Result<()> {
        header.check_key(key).map_err(|r| {
            r.into_error(
                path,
                Some(expect_key.unwrap_or(key)),
                format::FORMAT_VERSION,
            )
        })?;
        let misplaced = match expect_key {
            Some(expected) => expected != key,
            None => self.entry_path(key) != path,
        };
        if misplaced {
            return Err(Error::corrupt(
                path,
                Some(expect_key.unwrap_or(key)),
                format!(
                    "the file holds key {} but its name is the hash of another key",
                    crate::KeyDisplay::new(key)
                ),
            ));
        }
        Ok(())
    }
}

pub(super) fn decode(
    head: &[u8],
    file_len: u64,
    path: &Path,
    key: Option<&[u8]>,
) -> Result<Header> {
    Header::decode(head, file_len)
        .map_err(|r: Refusal| r.into_error(path, key, format::FORMAT_VERSION))
}

fn map_file(file: &File, path: &Path) -> Result<memmap2::Mmap> {
    let len = file
        .metadata()
        .map_err(|e| Error::io("reading the metadata of", path, e))?
        .len();
    // Sound by the rename-only rule of `crate::mmap::map_immutable`.
    crate::mmap::map_immutable(file, len, path)
}

/// Mapped values up to this size are checked through the map (fastest: 1 MiB in tens of µs);
/// larger ones are streamed through the file descriptor so the check adds at most this much
/// resident memory to the process, whatever the value's size.
pub(super) const MAP_CHECK_MAX: u64 = 32 << 20;

/// Above this size an owned read fetches the value into its own buffer instead of reading
/// the whole file and moving the value down over the header.
const SPLIT_READ: u64 = 64 << 10;

/// Streams the `header.value_len` bytes at `file`'s position into their checksum and checks it.
fn check_streamed(file: &mut File, header: &Header, path: &Path, key: &[u8]) -> Result<()> {
    let mut crc = crc32fast::Hasher::new();
    let mut value = (&*file).take(header.value_len);
    let got = copy_checksummed(&mut value, &mut crc, header.value_len, |_| Ok(()))
        .map_err(|e| Error::io("reading", path, e))?;
    if got != header.value_len {
        return Err(Error::corrupt(
            path,
            Some(key),
            format!(
                "truncated: the value is {got} bytes, its header says {}",
                header.value_len
            ),
        ));
    }
    header
        .check_value_crc(crc.finalize())
        .map_err(|r| r.into_error(path, Some(key), format::FORMAT_VERSION))
}
