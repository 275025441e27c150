//! Appending records: single puts, batches and tombstones (`append`), and the streamed put
//! that writes a value from a reader without holding it (`append_stream`).

use std::fs::File;
use std::io::{self, Read};
use std::sync::{Arc, MutexGuard};

use super::index::MAX_OFFSET;
use super::positioned::write_all_at;
use super::record::{
    KeyBlock, Kind, Layout, RecordHeader, KEY_BLOCK_LEN, MAX_KEY_LEN, RECORD_HEADER_LEN,
};
use super::scan::Entry;
use super::LogStore;
use crate::fs::copy_checksummed;
use crate::{Durability, Error, Result};

/// Values at least this long are written straight from the caller's buffer instead of being
/// copied into the batch buffer first.
const DIRECT_WRITE: usize = 64 << 10;
/// The batch buffer is written out when it grows past this.
const BATCH_BUFFER: usize = 1 << 20;
/// Buffer size of compaction copies (`put_reader` streams in `fs::copy_checksummed` chunks).
pub(super) const STREAM_CHUNK: usize = 256 << 10;

impl LogStore {
    /// Writes `buf` at `offset`: every append reaches the file through here, so a test can
    /// make any one write fail.
    fn write_at(&self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        #[cfg(test)]
        if let Some(fault) = self
            .fault
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            fault(offset, buf.len())?;
        }
        write_all_at(file, buf, offset)
    }

    /// Appends `batch` as records after the last one, syncs per the durability setting, then
    /// updates the index.
    ///
    /// On failure nothing another handle may have indexed is taken back: a record written
    /// whole is valid on its own, so a read-only handle may have indexed it (and lent bytes
    /// from it) before a later record of the batch failed. Only the record the failure cut
    /// short is truncated; the records before it stay, are indexed here too, and the error is
    /// returned. A failed sync keeps every record (they are all whole).
    pub(super) fn append(
        &self,
        slot: &mut MutexGuard<'_, Option<File>>,
        op: &'static str,
        batch: &[(Kind, &[u8], &[u8])],
    ) -> Result<()> {
        self.writable(slot, op)?;
        for (_, key, _) in batch {
            key_len(key)?;
        }
        self.background_sync_error()?;
        let (file, start, generation) = {
            let st = self.state();
            (st.file.clone(), st.end, st.generation)
        };
        let batch_len: u64 = batch
            .iter()
            .map(|(_, k, v)| RECORD_HEADER_LEN + k.len() as u64 + v.len() as u64 + KEY_BLOCK_LEN)
            .sum();
        room_for(&self.path, start, batch_len)?;
        let mut entries = Vec::with_capacity(batch.len());
        // Where each record ends, and how far the file holds every byte written so far:
        // writes go in file order, so that is the end of the last write that succeeded.
        let mut ends = Vec::with_capacity(batch.len());
        let mut written_to = start;
        let mut buf = Vec::new();
        let mut buf_start = start;
        let mut pos = start;
        let mut write = |bytes: &[u8], at: u64| -> io::Result<()> {
            self.write_at(&file, bytes, at)?;
            written_to = at + bytes.len() as u64;
            Ok(())
        };
        let written: io::Result<()> = (|| {
            for &(kind, key, value) in batch {
                let mut data = crc32fast::Hasher::new();
                data.update(key);
                data.update(value);
                let header = RecordHeader::encode(kind, key, value.len() as u64, &data);
                buf.extend_from_slice(&header);
                buf.extend_from_slice(key);
                let value_off = pos + RECORD_HEADER_LEN + key.len() as u64;
                if value.len() >= DIRECT_WRITE {
                    write(&buf, buf_start)?;
                    buf.clear();
                    write(value, value_off)?;
                    buf_start = value_off + value.len() as u64;
                } else {
                    buf.extend_from_slice(value);
                }
                buf.extend_from_slice(&KeyBlock::encode(key));
                pos = value_off + value.len() as u64 + KEY_BLOCK_LEN;
                ends.push(pos);
                entries.push(match kind {
                    Kind::Put => Entry::Put {
                        key,
                        value_off,
                        value_len: value.len() as u64,
                        layout: Layout::V2,
                    },
                    _ => Entry::Tombstone { key },
                });
                if buf.len() >= BATCH_BUFFER {
                    write(&buf, buf_start)?;
                    buf_start += buf.len() as u64;
                    buf.clear();
                }
            }
            write(&buf, buf_start)
        })();
        if let Err(e) = written {
            let whole = ends.iter().take_while(|&&end| end <= written_to).count();
            let keep = if whole == 0 { start } else { ends[whole - 1] };
            // The cut bytes never formed a whole record, so no handle indexed them.
            let _ = file.set_len(keep);
            entries.truncate(whole);
            self.index_kept(keep, entries);
            return Err(Error::io("appending to", &self.path, e));
        }
        if let Err(e) = self.sync_per_durability(&file, pos, generation) {
            self.index_kept(pos, entries);
            return Err(e);
        }
        self.commit(pos, entries)
    }

    /// Makes the records just written up to `end` as durable as the options ask: synced now
    /// (`Flush`), handed to the background syncer (`Periodic`), or left to the OS (`None`).
    fn sync_per_durability(&self, file: &Arc<File>, end: u64, generation: u64) -> Result<()> {
        match (&self.syncer, self.options.durability) {
            (_, Durability::None) => Ok(()),
            (Some(syncer), _) => {
                syncer.written(file, end, generation);
                Ok(())
            }
            _ => file
                .sync_data()
                .map_err(|e| Error::io("syncing", &self.path, e)),
        }
    }

    /// The error of a background sync that failed since the last write (`Periodic`): the
    /// writes before it may not be on disk, which the next write (or flush) reports.
    pub(super) fn background_sync_error(&self) -> Result<()> {
        match self.syncer.as_ref().and_then(|s| s.take_error()) {
            Some(e) => Err(Error::io("syncing (in the background)", &self.path, e)),
            None => Ok(()),
        }
    }

    /// Indexes the records a failed write left whole in the file (they stay: another handle
    /// may have seen them), without the auto-compaction a successful write may start.
    fn index_kept(&self, end: u64, entries: Vec<Entry<'_>>) {
        let mut st = self.state_mut();
        for e in entries {
            st.apply(e);
        }
        st.end = end;
    }

    pub(super) fn commit(&self, end: u64, entries: Vec<Entry<'_>>) -> Result<()> {
        {
            let mut st = self.state_mut();
            for e in entries {
                st.apply(e);
            }
            st.end = end;
        }
        if let Some(auto) = self.options.auto_compact {
            let stats = self.stats();
            if stats.file_bytes >= auto.min_file_bytes && stats.garbage_ratio() > auto.garbage_ratio
            {
                // The write itself is done and must not be reported as failed. A compaction
                // that fails leaves the log as it was; the next write retries it, and an
                // explicit `compact()` reports the error.
                let _ = self.compact_locked();
            }
        }
        Ok(())
    }

    /// Streams the value into the log: a placeholder header, the value in chunks (checksummed
    /// on the way), then the real header written over the placeholder. A crash midway leaves
    /// a torn tail that the next open cuts.
    pub(super) fn append_stream(&self, key: &[u8], reader: &mut dyn Read) -> Result<u64> {
        let mut slot = self.writer_slot();
        self.writable(&mut slot, "put_reader")?;
        key_len(key)?;
        self.background_sync_error()?;
        let (file, start, generation) = {
            let st = self.state();
            (st.file.clone(), st.end, st.generation)
        };
        let value_off = start + RECORD_HEADER_LEN + key.len() as u64;
        let mut pos = value_off;
        let mut data = crc32fast::Hasher::new();
        data.update(key);
        let disk_err = |e| Error::io("appending to", &self.path, e);
        room_for(&self.path, value_off, 0)?;
        let mut head = RecordHeader::encode_pending(key).to_vec();
        head.extend_from_slice(key);
        if let Err(e) = self.write_at(&file, &head, start) {
            let _ = file.set_len(start);
            return Err(disk_err(e));
        }
        // A failing disk is told apart from a failing reader: the sink keeps its own error and
        // hands `copy_checksummed` a stand-in.
        let mut write_failed = None;
        let room = MAX_OFFSET - value_off - KEY_BLOCK_LEN;
        let copied = copy_checksummed(reader, &mut data, room, |chunk| {
            if let Err(e) = self.write_at(&file, chunk, pos) {
                let stand_in = io::Error::new(e.kind(), "the log write failed");
                write_failed = Some(e);
                return Err(stand_in);
            }
            pos += chunk.len() as u64;
            Ok(())
        });
        if let Err(e) = copied {
            let _ = file.set_len(start);
            return Err(match write_failed {
                Some(w) => disk_err(w),
                None => Error::ValueSource {
                    key: crate::KeyDisplay::new(key),
                    source: e,
                },
            });
        }
        let value_len = pos - value_off;
        let header = RecordHeader::encode(Kind::Put, key, value_len, &data);
        // The trailer, then the real header over the placeholder: until that header is in
        // place the record is a placeholder no handle indexes.
        let finished = self
            .write_at(&file, &KeyBlock::encode(key), pos)
            .and_then(|()| self.write_at(&file, &header, start));
        if let Err(e) = finished {
            let _ = file.set_len(start);
            return Err(disk_err(e));
        }
        let end = pos + KEY_BLOCK_LEN;
        let entry = Entry::Put {
            key,
            value_off,
            value_len,
            layout: Layout::V2,
        };
        if let Err(e) = self.sync_per_durability(&file, end, generation) {
            // The record is whole: another handle may have indexed it, so it stays.
            self.index_kept(end, vec![entry]);
            return Err(e);
        }
        self.commit(end, vec![entry])?;
        Ok(value_len)
    }
}

/// Refuses an append of `len` bytes at `at` that would take the log past [`MAX_OFFSET`].
fn room_for(path: &std::path::Path, at: u64, len: u64) -> Result<()> {
    if at.saturating_add(len) >= MAX_OFFSET {
        return Err(Error::io(
            "appending to",
            path,
            io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("a log holds at most {MAX_OFFSET} bytes"),
            ),
        ));
    }
    Ok(())
}

pub(super) fn key_len(key: &[u8]) -> Result<u32> {
    match u32::try_from(key.len()) {
        Ok(len) if len <= MAX_KEY_LEN => Ok(len),
        _ => Err(Error::InvalidKey {
            key: crate::KeyDisplay::new(key),
            reason: format!(
                "{} bytes; a LogStore key holds at most {MAX_KEY_LEN} bytes",
                key.len()
            ),
        }),
    }
}
