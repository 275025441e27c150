//! What a writer does with a damaged tail at open: copy it aside, write a tombstone in its
//! place when its key has an older value, and cut it (the policy is on `OpenReport`).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::index::Index;
use super::open::sibling;
use super::positioned::{write_all_at, Section};
use super::record::RecordHeader;
use super::scan::Entry;
use super::state::apply;
use super::DamagedTail;
use crate::fs::{copy_checksummed, create_new, keep_mode, FileMode};
use crate::{Error, Result};

/// Recovers from the damaged tail `tail` (which runs to `len`, the file's length): moves it to
/// a side file, writes a tombstone over it when its key has an older value in `index` (and
/// applies it), cuts the file after that and syncs. Returns the new end of the log.
pub(super) fn recover_damaged_tail(
    file: &File,
    path: &Path,
    len: u64,
    tail: &mut DamagedTail,
    index: &mut Index,
    live_bytes: &mut u64,
) -> Result<u64> {
    let offset = tail.offset;
    tail.moved_to = Some(quarantine(file, path, offset, len)?);
    let mut end = offset;
    let keys: Vec<&Vec<u8>> = tail
        .key
        .iter()
        .chain(&tail.suspects)
        .filter(|k| index.contains_key(k))
        .collect();
    if !keys.is_empty() {
        // Written over the damaged bytes (already copied aside) before the cut, so a crash
        // between the two leaves the tombstones, never an older value.
        let records: Vec<u8> = keys
            .iter()
            .flat_map(|k| RecordHeader::tombstone_record(k))
            .collect();
        write_all_at(file, &records, offset)
            .map_err(|e| Error::io("writing a recovery tombstone to", path, e))?;
        end = offset + records.len() as u64;
        for key in keys {
            apply(index, live_bytes, Entry::Tombstone { key });
        }
        tail.tombstoned = true;
    }
    file.set_len(end)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("cutting the damaged tail of", path, e))?;
    Ok(end)
}

/// Copies `offset..len` of the log into a new side file, `<log>.damaged-<offset>` (with a
/// counter when that name is taken), synced before the caller cuts the bytes from the log.
pub(super) fn quarantine(file: &File, path: &Path, offset: u64, len: u64) -> Result<PathBuf> {
    let log_meta = file
        .metadata()
        .map_err(|e| Error::io("reading the metadata of", path, e))?;
    let mut n = 0u32;
    let (side_path, side) = loop {
        let suffix = match n {
            0 => format!(".damaged-{offset}"),
            n => format!(".damaged-{offset}-{n}"),
        };
        let side_path = sibling(path, &suffix)?;
        match create_new(&side_path, FileMode::Umask) {
            Ok(side) => break (side_path, side),
            Err(Error::Io { source, .. })
                if source.kind() == io::ErrorKind::AlreadyExists && n < 1000 =>
            {
                n += 1
            }
            Err(e) => return Err(e),
        }
    };
    let io_err = |e| Error::io("moving a damaged tail to", &side_path, e);
    keep_mode(&side, &log_meta, &side_path)?;
    // The checksum is not needed here; the loop is the crate's one streaming copy.
    let mut unused = crc32fast::Hasher::new();
    let mut at = 0u64;
    copy_checksummed(
        &mut Section::new(file, offset, len - offset),
        &mut unused,
        u64::MAX,
        |chunk| {
            write_all_at(&side, chunk, at)?;
            at += chunk.len() as u64;
            Ok(())
        },
    )
    .map_err(io_err)?;
    side.sync_all().map_err(io_err)?;
    crate::fs::sync_parent(&side_path)?;
    Ok(side_path)
}
