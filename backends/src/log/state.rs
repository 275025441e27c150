//! What the readers of one log share ([`State`]), and the memory map of the file.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use memmap2::Mmap;

use super::index::{Index, Loc};
use super::open::file_len;
use super::scan::Entry;
use crate::Result;

/// What readers share, behind one `RwLock`.
pub(super) struct State {
    /// The file, for positioned writes (writer) and scans.
    pub(super) file: Arc<File>,
    /// A read-only map of (a prefix of) the file; remapped when a value lies beyond it.
    pub(super) map: Arc<Mmap>,
    pub(super) index: Index,
    /// Keys whose newest record a read-only handle found damaged at the end of the log (with
    /// its offset): read as corrupt until a later record of theirs is indexed. Always empty
    /// on the writer, which recovers from a damaged tail at open.
    pub(super) damaged: HashMap<Box<[u8]>, u64>,
    /// End of the last valid record: where the next record goes.
    pub(super) end: u64,
    pub(super) live_bytes: u64,
    pub(super) generation: u64,
    /// Where the strict recovery rules end (see `super::periodic::strict_until`), as read at
    /// open: a read-only handle's refresh scans by the same rules.
    pub(super) strict_until: u64,
    /// Valid records in the log (puts and tombstones, overwritten ones too).
    pub(super) records: u64,
    /// Records no index checkpoint covers: a writer's close writes one past a threshold
    /// (`super::checkpoint`).
    pub(super) unvouched: u64,
}

/// Updates the index (and the live byte count) for one valid record.
pub(super) fn apply(index: &mut Index, live_bytes: &mut u64, entry: Entry<'_>) {
    match entry {
        Entry::Put {
            key,
            value_off,
            value_len,
            layout,
        } => {
            let loc = Loc {
                value_off,
                value_len,
                layout,
            };
            *live_bytes += loc.record_len(key.len());
            if let Some(old) = index.insert(key, loc) {
                *live_bytes -= old.record_len(key.len());
            }
        }
        Entry::Tombstone { key } => {
            if let Some(old) = index.remove(key) {
                *live_bytes -= old.record_len(key.len());
            }
        }
    }
}

impl State {
    pub(super) fn apply(&mut self, entry: Entry<'_>) {
        if !self.damaged.is_empty() {
            self.damaged.remove(entry.key());
        }
        self.records += 1;
        self.unvouched += 1;
        apply(&mut self.index, &mut self.live_bytes, entry);
    }
}

/// Remaps when the map ends before `needed`.
pub(super) fn remap_to(st: &mut State, needed: u64, path: &Path) -> Result<()> {
    if (st.map.len() as u64) < needed {
        st.map = map_file(&st.file, path)?;
    }
    Ok(())
}

/// On 64-bit unix the map reaches past the end of the file to the next multiple of this, so
/// appends rarely force a remap (which would also drop the pages already faulted in). Address
/// space is cheap there; the bytes past the end are never touched (see `map_file`).
#[cfg(all(unix, target_pointer_width = "64"))]
const MAP_STEP: u64 = 64 << 20;

pub(super) fn map_file(file: &File, path: &Path) -> Result<Arc<Mmap>> {
    let len = file_len(file, path)?;
    #[cfg(all(unix, target_pointer_width = "64"))]
    let len = len.div_ceil(MAP_STEP).max(1) * MAP_STEP;
    // Sound by the append-only rule of `crate::mmap::map_immutable` (see also `LogStore` docs,
    // "Processes, and why the memory map is sound").
    Ok(Arc::new(crate::mmap::map_immutable(file, len, path)?))
}
