//! Reading an archive: the footer and index once at open, then one positioned read and one
//! frame decode per revision; and a scan that rebuilds what the index says from the frames.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::format::{
    entry_len, is_skippable, key_hash, parse_group, Footer, Group, GroupRevision, IndexEntry,
    FOOTER_LEN, SKIPPABLE_MAGIC, TAG_DICTIONARY, TAG_INDEX, VERSION, ZSTD_MAGIC,
};
use super::{ArchiveOptions, ArchivedInfo};
use crate::error::{Error, Result};
use crate::fs::{self, Access};
use crate::le::u32_at;

/// An archive file opened for reading (layout version 1 or 2). Holds the index (one entry per
/// key) and the dictionary in memory; every read checks the frame's zstd checksum, the group's
/// key (so a hash collision or a damaged index never returns another key's value) and, in
/// version 1, the value's crc32.
pub struct Archive {
    path: PathBuf,
    file: File,
    /// The layout version from the footer.
    version: u32,
    entries: Vec<IndexEntry>,
    has_dictionary: bool,
    // One decoder context with the dictionary loaded: loading a dictionary costs more than
    // decoding a small frame. Reads of one archive take turns on it.
    decoder: Mutex<zstd::bulk::Decompressor<'static>>,
    max_group_bytes: u64,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("path", &self.path)
            .field("revisions", &self.entries.len())
            .field("has_dictionary", &self.has_dictionary)
            .finish_non_exhaustive()
    }
}

fn read_at(file: &File, path: &Path, offset: u64, len: u64) -> Result<Vec<u8>> {
    let len = usize::try_from(len).map_err(|_| Error::corrupt(path, None, "length overflows"))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| Error::io("reading an archive", path, e))?;
    Ok(buf)
}

impl Archive {
    /// Opens the archive at `path` with the default limits.
    pub fn open(path: impl AsRef<Path>) -> Result<Archive> {
        Archive::open_with(path, &ArchiveOptions::default())
    }

    /// Opens the archive at `path`; `options.max_group_bytes` bounds what one read may
    /// decompress (a larger group in the index is refused as corrupt).
    pub fn open_with(path: impl AsRef<Path>, options: &ArchiveOptions) -> Result<Archive> {
        let path = path.as_ref().to_path_buf();
        let corrupt = |why: String| Error::corrupt(&path, None, why);
        let file = fs::open_regular(&path, Access::Read)?.ok_or_else(|| {
            Error::io(
                "opening an archive",
                &path,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        })?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading the size of an archive", &path, e))?
            .len();
        if len < FOOTER_LEN as u64 {
            return Err(corrupt(format!(
                "{len} bytes is shorter than an archive footer"
            )));
        }
        let footer_bytes = read_at(&file, &path, len - FOOTER_LEN as u64, FOOTER_LEN as u64)?;
        let footer =
            Footer::decode(&footer_bytes).map_err(|r| r.into_error(&path, None, VERSION))?;
        let index_end = footer.index_offset.checked_add(footer.index_len);
        if index_end != Some(len - FOOTER_LEN as u64) || footer.index_len < 8 + 4 + 8 + 4 {
            return Err(corrupt(format!(
                "the footer puts the index at {}+{} in a file of {len} bytes",
                footer.index_offset, footer.index_len
            )));
        }
        let index = read_at(&file, &path, footer.index_offset, footer.index_len)?;
        let entries = parse_index(
            &index,
            footer.index_offset,
            options.max_group_bytes,
            footer.version,
        )
        .map_err(corrupt)?;
        let mut decoder =
            zstd::bulk::Decompressor::new().map_err(|e| corrupt(format!("zstd decoder: {e}")))?;
        let has_dictionary = footer.dict_len > 0;
        if has_dictionary {
            let frame_start = footer.dict_offset.checked_sub(12);
            let dict_end = footer.dict_offset.checked_add(u64::from(footer.dict_len));
            let (Some(frame_start), Some(dict_end)) = (frame_start, dict_end) else {
                return Err(corrupt("dictionary offset out of range".into()));
            };
            if dict_end > footer.index_offset {
                return Err(corrupt("the dictionary overlaps the index".into()));
            }
            let frame = read_at(&file, &path, frame_start, dict_end - frame_start)?;
            if u32_at(&frame, 0) != Some(SKIPPABLE_MAGIC)
                || u32_at(&frame, 4) != Some(footer.dict_len + 4)
                || frame[8..12] != TAG_DICTIONARY
            {
                return Err(corrupt(
                    "the footer's dictionary offset is not a dictionary frame".into(),
                ));
            }
            decoder
                .set_dictionary(&frame[12..])
                .map_err(|e| corrupt(format!("zstd refused the dictionary: {e}")))?;
        }
        for e in &entries {
            if e.frame_offset.saturating_add(u64::from(e.frame_len)) > footer.index_offset {
                return Err(corrupt(format!(
                    "an index entry points at a frame past the data ({}+{})",
                    e.frame_offset, e.frame_len
                )));
            }
        }
        Ok(Archive {
            path,
            file,
            version: footer.version,
            entries,
            has_dictionary,
            decoder: Mutex::new(decoder),
            max_group_bytes: options.max_group_bytes,
        })
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many keys the archive holds revisions of.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// How many revisions the archive holds, over all keys.
    pub fn revision_count(&self) -> u64 {
        self.entries.iter().map(|e| u64::from(e.revisions)).sum()
    }

    /// Whether the archive holds no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the frames were compressed with a trained dictionary (then `zstd -d` needs it
    /// through `-D`; see [`Archive::dictionary`]).
    pub fn has_dictionary(&self) -> bool {
        self.has_dictionary
    }

    /// The dictionary's bytes, for `zstd -d -D` (None when the archive has none).
    pub fn dictionary(&self) -> Result<Option<Vec<u8>>> {
        if !self.has_dictionary {
            return Ok(None);
        }
        let len = self.file_len()?;
        let footer = Footer::decode(&read_at(
            &self.file,
            &self.path,
            len - FOOTER_LEN as u64,
            FOOTER_LEN as u64,
        )?)
        .map_err(|r| r.into_error(&self.path, None, VERSION))?;
        read_at(
            &self.file,
            &self.path,
            footer.dict_offset,
            u64::from(footer.dict_len),
        )
        .map(Some)
    }

    fn file_len(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()
            .map_err(|e| Error::io("reading the size of an archive", &self.path, e))?
            .len())
    }

    /// The layout version of the file (1 or 2).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The index entries whose hash is `key`'s: one, or (version 2, 8-byte hashes) several
    /// keys that share a hash, told apart by the key in their frame.
    fn entries_of(&self, key: &[u8]) -> &[IndexEntry] {
        let hash = key_hash(key, self.version);
        let start = self.entries.partition_point(|e| e.key_hash < hash);
        let end = start + self.entries[start..].partition_point(|e| e.key_hash == hash);
        &self.entries[start..end]
    }

    /// The decoded group of `key`, trying each entry of its hash.
    fn group_of(&self, key: &[u8]) -> Result<Option<(Vec<u8>, Group)>> {
        for entry in self.entries_of(key) {
            match self.group(key, entry) {
                Ok(found) => return Ok(Some(found)),
                // Version 2: another key with the same 8-byte hash; try the next.
                Err(OtherKey::Chained) => continue,
                Err(OtherKey::Error(e)) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Reads and decodes the frame `entry` points at, checking that it holds `key`.
    fn group(
        &self,
        key: &[u8],
        entry: &IndexEntry,
    ) -> std::result::Result<(Vec<u8>, Group), OtherKey> {
        let corrupt = |why: String| OtherKey::Error(Error::corrupt(&self.path, Some(key), why));
        let frame = read_at(
            &self.file,
            &self.path,
            entry.frame_offset,
            u64::from(entry.frame_len),
        )?;
        if u32_at(&frame, 0) != Some(ZSTD_MAGIC) {
            return Err(corrupt(format!(
                "no zstd frame at offset {}",
                entry.frame_offset
            )));
        }
        let capacity = u64::from(entry.group_len).min(self.max_group_bytes) as usize;
        let bytes = self
            .decoder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .decompress(&frame, capacity)
            .map_err(|e| {
                corrupt(format!(
                    "frame at offset {} does not decode: {e}",
                    entry.frame_offset
                ))
            })?;
        if bytes.len() != entry.group_len as usize {
            return Err(corrupt(format!(
                "frame at offset {} decodes to {} bytes, the index says {}",
                entry.frame_offset,
                bytes.len(),
                entry.group_len
            )));
        }
        let group = parse_group(&bytes).map_err(corrupt)?;
        if group.revisions.len() != entry.revisions as usize {
            return Err(corrupt(format!(
                "the frame at offset {} lists {} revisions, the index {}",
                entry.frame_offset,
                group.revisions.len(),
                entry.revisions
            )));
        }
        if group.key != key {
            if self.version >= 2 {
                return Err(OtherKey::Chained);
            }
            return Err(corrupt(format!(
                "the frame at offset {} holds another key (index damaged)",
                entry.frame_offset
            )));
        }
        Ok((bytes, group))
    }

    /// The value of `key`'s revision `revision`, or None when the archive does not hold it.
    pub fn get(&self, key: &[u8], revision: u64) -> Result<Option<Vec<u8>>> {
        self.find(key, |r| r.revision == revision)
    }

    /// The value of `key`'s revision named `name`, or None.
    pub fn get_named(&self, key: &[u8], name: &str) -> Result<Option<Vec<u8>>> {
        self.find(key, |r| !r.name.is_empty() && r.name == name.as_bytes())
    }

    fn find(&self, key: &[u8], which: impl Fn(&GroupRevision) -> bool) -> Result<Option<Vec<u8>>> {
        let Some((bytes, group)) = self.group_of(key)? else {
            return Ok(None);
        };
        let Some(found) = group.revisions.iter().find(|r| which(r)) else {
            return Ok(None);
        };
        let value = &bytes[found.value_offset..found.value_offset + found.value_len];
        if found
            .value_crc
            .is_some_and(|crc| crc32fast::hash(value) != crc)
        {
            return Err(Error::corrupt(
                &self.path,
                Some(key),
                "an archived value fails its crc32",
            ));
        }
        Ok(Some(value.to_vec()))
    }

    /// Every archived revision of `key`, oldest number first (one frame decode).
    pub fn revisions(&self, key: &[u8]) -> Result<Vec<ArchivedInfo>> {
        let Some((_, group)) = self.group_of(key)? else {
            return Ok(Vec::new());
        };
        let mut out: Vec<ArchivedInfo> = group.revisions.iter().map(info).collect();
        out.sort_by_key(|i| i.revision);
        Ok(out)
    }

    /// Reads the archive frame by frame, ignoring its index and footer: what a rebuilt index
    /// would hold, and where frames are damaged. Memory is bounded by the largest frame.
    pub fn scan(path: impl AsRef<Path>, options: &ArchiveOptions) -> Result<Scan> {
        scan(path.as_ref(), options)
    }
}

/// Why a frame was not `key`'s: a damaged archive, or (version 2) a key sharing the hash.
enum OtherKey {
    Chained,
    Error(Error),
}

impl From<Error> for OtherKey {
    fn from(e: Error) -> Self {
        OtherKey::Error(e)
    }
}

fn info(r: &GroupRevision) -> ArchivedInfo {
    ArchivedInfo {
        revision: r.revision,
        time_ms: r.time_ms,
        len: r.value_len as u64,
        name: (!r.name.is_empty()).then(|| String::from_utf8_lossy(&r.name).into_owned()),
    }
}

fn parse_index(
    index: &[u8],
    at: u64,
    max_group: u64,
    version: u32,
) -> std::result::Result<Vec<IndexEntry>, String> {
    let entry_len = entry_len(version);
    if u32_at(index, 0) != Some(SKIPPABLE_MAGIC) || index.get(8..12) != Some(&TAG_INDEX[..]) {
        return Err(format!("no index frame at offset {at}"));
    }
    if u32_at(index, 4).map(|n| n as usize + 8) != Some(index.len()) {
        return Err("the index frame's length disagrees with the footer".into());
    }
    let body = &index[12..];
    let (content, crc) = body.split_at(body.len() - 4);
    if crc32fast::hash(content) != u32_at(crc, 0).unwrap_or_default() {
        return Err("the index fails its crc32".into());
    }
    let count = crate::le::u64_at(content, 0).unwrap_or_default();
    if Some(content.len() as u64)
        != count
            .checked_mul(entry_len as u64)
            .and_then(|n| n.checked_add(8))
    {
        return Err(format!(
            "the index claims {count} entries in {} bytes",
            content.len()
        ));
    }
    let entries: Vec<IndexEntry> = content[8..]
        .chunks_exact(entry_len)
        .filter_map(|b| IndexEntry::decode(b, version))
        .collect();
    // Version 1 hashes are unique; version 2 ones may repeat (chained, side by side).
    let out_of_order = |a: &IndexEntry, b: &IndexEntry| {
        a.key_hash > b.key_hash || (version == 1 && a.key_hash == b.key_hash)
    };
    if entries.windows(2).any(|w| out_of_order(&w[0], &w[1])) {
        return Err("the index is not sorted by key hash".into());
    }
    for e in &entries {
        if u64::from(e.group_len) > max_group {
            return Err(format!(
                "an index entry's group ({} bytes) is out of bounds",
                e.group_len
            ));
        }
    }
    Ok(entries)
}

/// What [`Archive::scan`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Scan {
    /// Each sound data frame: its offset, key and revisions.
    pub groups: Vec<ScannedGroup>,
    /// Each damaged frame: its offset and what is wrong.
    pub damaged: Vec<(u64, String)>,
}

/// One data frame found by [`Archive::scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScannedGroup {
    /// Where the frame starts in the file.
    pub offset: u64,
    /// The key whose revisions it holds.
    pub key: Vec<u8>,
    /// Its revisions (values are checked against their crc32).
    pub revisions: Vec<ArchivedInfo>,
}

fn scan(path: &Path, options: &ArchiveOptions) -> Result<Scan> {
    let file = fs::open_regular(path, Access::Read)?.ok_or_else(|| {
        Error::io(
            "opening an archive",
            path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("reading the size of an archive", path, e))?
        .len();
    let mut decoder = zstd::bulk::Decompressor::new()
        .map_err(|e| Error::corrupt(path, None, format!("zstd decoder: {e}")))?;
    let mut out = Scan::default();
    let mut offset = 0u64;
    while offset + 8 <= len {
        let head = read_at(&file, path, offset, 8)?;
        let magic = u32_at(&head, 0).unwrap_or_default();
        if is_skippable(magic) {
            let size = u64::from(u32_at(&head, 4).unwrap_or_default());
            if offset + 8 + size > len {
                out.damaged.push((
                    offset,
                    "a skippable frame runs past the end of the file; scan stops".into(),
                ));
                break;
            }
            if magic == SKIPPABLE_MAGIC && size >= 4 {
                let tag = read_at(&file, path, offset + 8, 4)?;
                if tag == TAG_DICTIONARY {
                    let dict = read_at(&file, path, offset + 12, size - 4)?;
                    decoder.set_dictionary(&dict).map_err(|e| {
                        Error::corrupt(path, None, format!("zstd refused the dictionary: {e}"))
                    })?;
                }
            }
            offset += 8 + size;
            continue;
        }
        if magic != ZSTD_MAGIC {
            out.damaged.push((
                offset,
                format!(
                    "neither a zstd frame nor a skippable frame (magic {magic:#010x}); scan stops"
                ),
            ));
            break;
        }
        // The frame's compressed size is known only once its blocks are read: grow a window
        // until zstd finds the frame's end, up to what one group may take.
        let mut window = 64 * 1024u64;
        let limit = (len - offset).min(
            options
                .max_group_bytes
                .saturating_mul(2)
                .saturating_add(1 << 20),
        );
        let (frame, frame_len) = loop {
            let take = window.min(limit);
            let bytes = read_at(&file, path, offset, take)?;
            match zstd::zstd_safe::find_frame_compressed_size(&bytes) {
                Ok(n) => break (bytes, n as u64),
                Err(_) if take < limit => window = window.saturating_mul(4),
                Err(code) => {
                    out.damaged.push((
                        offset,
                        format!(
                            "frame has no end: {}",
                            zstd::zstd_safe::get_error_name(code)
                        ),
                    ));
                    return Ok(out);
                }
            }
        };
        let frame = &frame[..frame_len as usize];
        let content = zstd::zstd_safe::get_frame_content_size(frame)
            .ok()
            .flatten();
        match content {
            Some(size) if size <= options.max_group_bytes => match decoder
                .decompress(frame, size as usize)
            {
                Ok(bytes) => match parse_group(&bytes) {
                    Ok(group) => {
                        let bad = group.revisions.iter().find(|r| {
                            r.value_crc.is_some_and(|crc| {
                                crc32fast::hash(
                                    &bytes[r.value_offset..r.value_offset + r.value_len],
                                ) != crc
                            })
                        });
                        if let Some(r) = bad {
                            out.damaged
                                .push((offset, format!("revision {} fails its crc32", r.revision)));
                        } else {
                            out.groups.push(ScannedGroup {
                                offset,
                                revisions: {
                                    let mut infos: Vec<ArchivedInfo> =
                                        group.revisions.iter().map(info).collect();
                                    infos.sort_by_key(|i| i.revision);
                                    infos
                                },
                                key: group.key,
                            });
                        }
                    }
                    Err(why) => out.damaged.push((offset, why)),
                },
                Err(e) => out
                    .damaged
                    .push((offset, format!("frame does not decode: {e}"))),
            },
            Some(size) => out
                .damaged
                .push((offset, format!("frame claims {size} bytes, over the limit"))),
            None => out
                .damaged
                .push((offset, "frame does not state its content size".into())),
        }
        offset += frame_len;
    }
    Ok(out)
}
