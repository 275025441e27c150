//! Keeping a read-only handle current: indexing what the writer appended, and reopening the
//! path when compaction (or a delete and re-create) put another file there.

use std::fs::File;

use super::identify::damaged_key;
use super::open::load;
#[cfg(not(unix))]
use super::open::read_header;
use super::record::Layout;
use super::scan::{scan, Entry, Role, Tail, TailKind};
use super::LogStore;
use crate::{Error, Result};

/// A scanned record kept past the scan: the key, and the value's offset, length and record
/// layout (`None` for a tombstone).
type OwnedEntry = (Vec<u8>, Option<(u64, u64, Layout)>);

impl LogStore {
    /// Brings a read-only handle up to date with the writer: indexes the records appended
    /// since the last refresh, or reopens the file if compaction swapped in a new one.
    /// Returns whether anything changed. A writer handle is always current (returns `false`).
    pub fn refresh(&self) -> Result<bool> {
        if !self.options.read_only {
            return Ok(false);
        }
        let _serial = self.writer_slot();
        let (file, end, generation, strict_until) = {
            let st = self.state();
            (st.file.clone(), st.end, st.generation, st.strict_until)
        };
        let meta = file
            .metadata()
            .map_err(|e| Error::io("reading the metadata of", &self.path, e))?;
        if let Some(current) = self.replacement(&meta, generation)? {
            let (fresh, _) = load(current, &self.path, Role::Reader)?;
            *self.state_mut() = fresh;
            return Ok(true);
        }
        let len = meta.len();
        if len <= end {
            // A damaged tail this handle saw is gone (the writer moved it aside and cut it).
            let mut st = self.state_mut();
            let had_damage = !st.damaged.is_empty();
            st.damaged.clear();
            return Ok(had_damage);
        }
        // Owned copies: the scan lends each key from its read buffer, and the index is
        // updated after the scan, under the state lock.
        let mut entries: Vec<OwnedEntry> = Vec::new();
        let scanned = scan(
            &file,
            &self.path,
            end,
            len,
            Role::Reader,
            strict_until,
            &mut |e| {
                entries.push(match e {
                    Entry::Put {
                        key,
                        value_off,
                        value_len,
                        layout,
                    } => (key.to_vec(), Some((value_off, value_len, layout))),
                    Entry::Tombstone { key } => (key.to_vec(), None),
                })
            },
        )?;
        let mut st = self.state_mut();
        // Damage is only ever at the end, which this scan has just read again.
        let had_damage = !st.damaged.is_empty();
        st.damaged.clear();
        for (key, put) in &entries {
            st.apply(match *put {
                Some((value_off, value_len, layout)) => Entry::Put {
                    key,
                    value_off,
                    value_len,
                    layout,
                },
                None => Entry::Tombstone { key },
            });
        }
        st.end = scanned.end;
        let mut damaged_now = false;
        if let Some(Tail {
            offset,
            kind: TailKind::Damaged { reason, key },
        }) = scanned.tail
        {
            let told = damaged_key(&file, offset, len, reason, key, &st.index)
                .map_err(|e| Error::io("reading the damaged tail of", &self.path, e))?;
            for key in told.key.into_iter().chain(told.suspects) {
                st.damaged.insert(key.into_boxed_slice(), offset);
                damaged_now = true;
            }
        }
        Ok(scanned.records > 0 || had_damage != damaged_now)
    }

    /// The file now at the path, when it is no longer the one this handle reads (compaction
    /// renamed a new one over it, or the log was deleted and created again).
    fn replacement(&self, held: &std::fs::Metadata, generation: u64) -> Result<Option<File>> {
        let open = || File::open(&self.path).map_err(|e| Error::io("opening", &self.path, e));
        // On unix the file we hold loses its last link when another is renamed over it: one
        // fstat tells, without opening the path on every refresh.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let _ = generation;
            if held.nlink() == 0 {
                return open().map(Some);
            }
            Ok(None)
        }
        #[cfg(not(unix))]
        {
            let _ = held;
            let current = open()?;
            if read_header(&current, &self.path)?.generation != generation {
                return Ok(Some(current));
            }
            Ok(None)
        }
    }
}
