//! Positioned reads and writes (`pread`/`pwrite`): the log is written at offsets the store
//! tracks, never at a shared file cursor, so a read of the tail never races a write.

use std::fs::File;
use std::io::{self, Read};

/// Writes all of `buf` at `offset`.
#[cfg(unix)]
pub(crate) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

/// Reads up to `buf.len()` bytes at `offset`; returns how many (0 at the end of the file).
#[cfg(unix)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// Writes all of `buf` at `offset`.
#[cfg(windows)]
pub(crate) fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads up to `buf.len()` bytes at `offset`; returns how many (0 at the end of the file).
#[cfg(windows)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Fills as much of `buf` as the file holds from `offset`; returns the bytes read (short only
/// at the end of the file).
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match read_at(file, &mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// `len` bytes of `file` from `offset` as a [`Read`], read with positioned reads (the file's
/// cursor is never used), so the crate's one streaming loop, `fs::copy_checksummed`, can hash
/// or copy a stretch of the log.
pub(crate) struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl<'a> Section<'a> {
    pub(crate) fn new(file: &'a File, offset: u64, len: u64) -> Self {
        Section {
            file,
            pos: offset,
            end: offset.saturating_add(len),
        }
    }
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min((self.end - self.pos).min(usize::MAX as u64) as usize);
        if n == 0 {
            return Ok(0);
        }
        let got = read_at(self.file, &mut buf[..n], self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

/// Feeds `len` bytes of `file` from `offset` to `crc`; false when the file ends first.
pub(crate) fn hash_section(
    file: &File,
    offset: u64,
    len: u64,
    crc: &mut crc32fast::Hasher,
) -> io::Result<bool> {
    let copied =
        crate::fs::copy_checksummed(&mut Section::new(file, offset, len), crc, u64::MAX, |_| {
            Ok(())
        })?;
    Ok(copied == len)
}

/// `len` bytes of a shared `file` from `offset` as a [`Read`] that owns its handle, for a
/// stream that outlives the lookup that found it (`LogStore::read_stream`).
pub(crate) struct OwnedSection {
    file: std::sync::Arc<File>,
    pos: u64,
    end: u64,
}

impl OwnedSection {
    pub(crate) fn new(file: std::sync::Arc<File>, offset: u64, len: u64) -> Self {
        OwnedSection {
            file,
            pos: offset,
            end: offset.saturating_add(len),
        }
    }
}

impl Read for OwnedSection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Section {
            file: &self.file,
            pos: self.pos,
            end: self.end,
        }
        .read(buf)
        .inspect(|&got| self.pos += got as u64)
    }
}
