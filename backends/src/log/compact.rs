//! Compaction: the live records copied into a new file that is renamed over the log.

use std::io;
use std::sync::Arc;

use super::append::STREAM_CHUNK;
use super::open::{remove_stale_temp, sibling, COMPACTING};
use super::record::{FileHeader, RecordHeader, FILE_HEADER_LEN, V1_HEADER_LEN};
use super::state::{map_file, remap_to};
use super::{LogStats, LogStore};
use crate::fs::{create_new, keep_mode};
use crate::{Error, Result};

impl LogStore {
    /// Rewrites the live records into a new file, fsyncs it, renames it over the log and
    /// fsyncs the directory; the index then points into the new file. Blobs read before stay
    /// valid (they map the old file). Read-only handles in other processes notice the new
    /// generation on their next refresh. Returns the stats after compaction.
    pub fn compact(&self) -> Result<LogStats> {
        let mut slot = self.writer_slot();
        self.writable(&mut slot, "compact")?;
        self.compact_locked()?;
        Ok(self.stats())
    }

    pub(super) fn compact_locked(&self) -> Result<()> {
        let tmp_path = sibling(&self.path, COMPACTING)?;
        let (map, mut live, generation, file) = {
            let mut st = self.state_mut();
            let end = st.end;
            remap_to(&mut st, end, &self.path)?;
            let live: Vec<(u64, u64)> = st
                .index
                .iter()
                .map(|(k, loc)| (loc.record_start(k.len()), loc.record_len(k.len())))
                .collect();
            (st.map.clone(), live, st.generation, st.file.clone())
        };
        // Copying in file order keeps reads of the new file sequential.
        live.sort_unstable();
        let io_err = |e| Error::io("writing the compacted log", &tmp_path, e);
        // A stale temp of ours is cleared; anything planted under the name is refused, and
        // the new file is made with O_EXCL | O_NOFOLLOW so nothing is written through a link.
        remove_stale_temp(&tmp_path)?;
        let tmp = create_new(&tmp_path, self.options.file_mode)?;
        let log_meta = file
            .metadata()
            .map_err(|e| Error::io("reading the metadata of", &self.path, e))?;
        if let Err(e) = keep_mode(&tmp, &log_meta, &tmp_path) {
            let _ = std::fs::remove_file(&tmp_path);
            return Err(e);
        }
        let header = FileHeader {
            generation: generation.wrapping_add(1),
        };
        let mut moves = Vec::with_capacity(live.len());
        let mut out = std::io::BufWriter::with_capacity(STREAM_CHUNK, &tmp);
        let mut pos = FILE_HEADER_LEN;
        let mut damaged_at = None;
        let written: io::Result<()> = (|| {
            use std::io::Write;
            out.write_all(&header.encode())?;
            for &(start, len) in &live {
                let record = &map[start as usize..(start + len) as usize];
                // A record damaged on disk since it was indexed must not be carried into the
                // new file, where it would sit in the middle and fail every later open.
                if !record_is_whole(record) {
                    damaged_at = Some(start);
                    return Ok(());
                }
                // Records hold no offsets, so a record is valid anywhere: copy its bytes as
                // they are (checksums included).
                out.write_all(record)?;
                moves.push((start, pos));
                pos += len;
            }
            out.flush()
        })();
        drop(out);
        if let Some(start) = damaged_at {
            let _ = std::fs::remove_file(&tmp_path);
            let st = self.state();
            let key = st
                .index
                .iter()
                .find(|(k, loc)| loc.record_start(k.len()) == start)
                .map(|(k, _)| k.to_vec());
            return Err(Error::corrupt(
                &self.path,
                key.as_deref(),
                format!(
                    "record at offset {start} fails its checksum: not compacting (the log is \
                     left as it was; delete or overwrite the key, then compact)"
                ),
            ));
        }
        if let Err(e) = written.and_then(|()| tmp.sync_all()) {
            let _ = std::fs::remove_file(&tmp_path);
            return Err(io_err(e));
        }
        // Mapped before the rename: once the rename is done nothing may fail before the state
        // points at the new file, or later appends would go to the unlinked old one.
        let new_map = match map_file(&tmp, &tmp_path) {
            Ok(map) => map,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp_path);
                return Err(e);
            }
        };
        if let Err(e) = std::fs::rename(&tmp_path, &self.path) {
            let _ = std::fs::remove_file(&tmp_path);
            return Err(Error::io("renaming the compacted log over", &self.path, e));
        }
        let mut st = self.state_mut();
        st.index.relocate(|key_len, loc| {
            let start = loc.record_start(key_len);
            let at = moves
                .binary_search_by_key(&start, |m| m.0)
                .expect("every live record was copied");
            loc.value_off = moves[at].1 + loc.layout.header_len() + key_len as u64;
        });
        st.file = Arc::new(tmp);
        st.map = new_map;
        st.end = pos;
        st.generation = header.generation;
        // A new file: no checkpoint covers it (the old one names the old generation).
        st.records = st.index.len() as u64;
        st.unvouched = st.records;
        let file = st.file.clone();
        drop(st);
        // Read stamps are offsets of the old file: moved with the records.
        self.remap_books(&moves, pos, header.generation);
        crate::fs::sync_parent(&self.path)?;
        // The new file was synced whole before the rename.
        if let Some(syncer) = &self.syncer {
            syncer
                .synced(&file, pos, header.generation)
                .map_err(|e| Error::io("writing", syncer.marker_path(), e))?;
        }
        Ok(())
    }
}

/// Whether `record` (header, key, value and trailer) passes its checksums (and a v2 trailer
/// repeats the header's key block).
fn record_is_whole(record: &[u8]) -> bool {
    let Ok(header) = RecordHeader::decode(record) else {
        return false;
    };
    if header.record_len() != record.len() as u64 {
        return false;
    }
    let (head, rest) = record.split_at(header.header_len() as usize);
    let (body, trailer) = rest.split_at(rest.len() - header.layout.trailer_len() as usize);
    let mut crc = header.record_hasher();
    crc.update(body);
    crc.finalize() == header.crc
        && (trailer.is_empty() || trailer == &head[V1_HEADER_LEN as usize..])
}
