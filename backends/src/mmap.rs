//! The crate's one memory-mapping function, and the one argument for why it is sound.
//!
//! `memmap2::Mmap` is `unsafe` to create because the mapped file may change under the map:
//! bytes read through it could change while borrowed (undefined behaviour for `&[u8]`), and a
//! truncated file raises `SIGBUS` on access. Every store that maps files maps them here, and
//! each keeps the rule stated on [`map_immutable`]; a store that cannot keep it must read
//! instead of mapping.

use std::fs::File;
use std::path::Path;

use memmap2::{Mmap, MmapOptions};

use crate::error::{Error, Result};

/// Maps the first `len` bytes of `file` read-only and shared (an error when `len` exceeds the
/// address space).
///
/// The rule every caller keeps: **no byte this crate reads through the map is ever modified,
/// and the file is never truncated below it, while any handle of the store may hold the map.**
/// The stores keep it by construction:
/// - DirStore: an entry file is never written after it is renamed into place; a replacement
///   is a new file swapped in by `rename`, removal is `unlink`. Both leave the mapped inode
///   untouched.
/// - LogStore: the log is append-only; only the locked writer changes it, and only after the
///   last record any handle has indexed; compaction swaps in a new file by rename. The map may
///   extend past the end of the file (`len` larger than the file), but no byte there is read
///   until the file has grown over it, and a shared map then shows the new bytes.
///
/// A process outside the store that rewrites or truncates a store file in place breaks the
/// rule; the store docs tell users not to, as every mmap-based store (LMDB included) does.
pub(crate) fn map_immutable(file: &File, len: u64, path: &Path) -> Result<Mmap> {
    let len = usize::try_from(len).map_err(|_| {
        Error::io(
            "memory-mapping",
            path,
            std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                "file larger than the address space",
            ),
        )
    })?;
    // SAFETY: the map is read-only, and the rule above (kept by every caller in this crate)
    // guarantees the mapped bytes that are read never change and are never truncated away.
    #[expect(
        unsafe_code,
        reason = "memory maps: soundness argued on map_immutable and kept by every caller"
    )]
    let map = unsafe { MmapOptions::new().len(len).map(file) };
    map.map_err(|e| Error::io("memory-mapping", path, e))
}
