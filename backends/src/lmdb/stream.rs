//! `put_reader` for `LmdbStore`: a value of unknown length streamed into LMDB without being
//! held in memory.
//!
//! LMDB must know a value's length before it reserves the pages (`MDB_RESERVE`), and a write
//! transaction may run twice (after the map grows), so a long stream is first spooled into an
//! unnamed temporary file in the environment directory (`O_TMPFILE`: it never has a name to
//! clean up), checksummed on the way, and refused as soon as it passes the value limit. The
//! value is then copied from the spool straight into the reserved pages. Peak memory is the
//! dirty pages LMDB holds for the value until the commit writes them (about 1x the value) plus
//! a 256 KiB buffer; a short stream (up to 1 MiB) is put from memory.

use std::io::{self, Read, Seek, SeekFrom, Write};

use super::layout::StoredKey;
use super::{LmdbStore, TxnError};
use crate::fs::{copy_checksummed, read_up_to};
use crate::{Error, KeyDisplay, Result, Store};

/// Streams up to this long are read into memory and put like a slice.
const IN_MEMORY: usize = 1 << 20;
/// The copy buffer from the spool into the reserved pages.
const CHUNK: usize = 256 << 10;

/// A reader that counts what it gave, to tell the limit's refusal from the reader's errors.
struct Counting<'a> {
    inner: &'a mut dyn Read,
    count: u64,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

impl LmdbStore {
    pub(super) fn put_stream(&self, key: &[u8], reader: &mut dyn Read) -> Result<u64> {
        let source = |e| Error::ValueSource {
            key: KeyDisplay::new(key),
            source: e,
        };
        // Layout 2's limit (4 bytes shorter than layout 1's): the transaction's layout is
        // known only once the value is spooled.
        let max = self.value_limit(super::layout::Layout::V2, key);
        let mut head = vec![0u8; IN_MEMORY + 1];
        let n = read_up_to(&mut &mut *reader, &mut head).map_err(source)?;
        if n <= IN_MEMORY {
            head.truncate(n);
            self.put(key, &head)?;
            return Ok(n as u64);
        }
        self.check_len(key, n as u64)?;
        let path = self.env.path();
        let mut spool = tempfile::tempfile_in(path)
            .map_err(|e| Error::io("creating a spool file in", path, e))?;
        let stored = StoredKey::new(key);
        // The CRC covers the same bytes in both layouts (the stored key, a long key's header,
        // the value); only layout 2 writes it.
        let mut crc = super::layout::Layout::V2
            .hasher(stored.bytes(), &super::layout::Layout::V2.prefix(key));
        crc.update(&head[..n]);
        spool
            .write_all(&head[..n])
            .map_err(|e| Error::io("writing a spool file in", path, e))?;
        drop(head);
        let mut counting = Counting {
            inner: reader,
            count: n as u64,
        };
        let mut spool_error = None;
        let copied = copy_checksummed(&mut counting, &mut crc, max - n as u64, |bytes| {
            spool.write_all(bytes).map_err(|e| {
                let kind = e.kind();
                spool_error = Some(e);
                io::Error::from(kind)
            })
        });
        let rest = match copied {
            Ok(rest) => rest,
            Err(_) if spool_error.is_some() => {
                let e = spool_error.take().expect("checked");
                return Err(Error::io("writing a spool file in", path, e));
            }
            Err(_) if counting.count > max => {
                return Err(self.check_len(key, counting.count).unwrap_err())
            }
            Err(e) => return Err(source(e)),
        };
        let total = n as u64 + rest;
        self.acct.write(&self.env, |wtxn| -> Result<(), TxnError> {
            let layout = self.layout_in(wtxn)?;
            let mut prefix = layout.prefix(key);
            layout.seal_prefix(&mut prefix, crc.clone());
            let len = prefix.len() + usize::try_from(total).expect("under the limit");
            spool
                .seek(SeekFrom::Start(0))
                .map_err(|e| Error::io("reading a spool file in", path, e))?;
            let mut buf = vec![0u8; CHUNK];
            self.data.put_reserved(wtxn, stored.bytes(), len, |space| {
                space.write_all(&prefix)?;
                let mut left = total;
                while left > 0 {
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    spool.read_exact(&mut buf[..want])?;
                    space.write_all(&buf[..want])?;
                    left -= want as u64;
                }
                Ok(())
            })?;
            self.acct
                .on_put(&self.env, wtxn, stored.bytes(), total, None)
        })?;
        Ok(total)
    }
}
