//! Writing an archive: header, optional dictionary, one zstd frame per key group, index,
//! footer; into a temp file that becomes the archive only by an fsync and a rename.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::format::{
    key_hash, skippable, Footer, IndexEntry, FLAG_DICTIONARY, GROUP_MAGIC, TAG_DICTIONARY,
    TAG_HEADER, TAG_INDEX, VERSION,
};
use super::{ArchiveOptions, ArchivedRevision, EXTENSION};
use crate::error::{Error, Result};
use crate::fs;

/// Writes one archive file. Nothing is visible under the archive's name until
/// [`ArchiveWriter::finish`] returns: the bytes go to a temp file in the same directory
/// (`O_EXCL`, removed when the writer is dropped unfinished), which `finish` fsyncs, renames
/// into place without replacing any file, and makes durable by syncing the directory.
///
/// ```
/// use cacher_store::archive::{Archive, ArchiveOptions, ArchiveWriter, ArchivedRevision};
/// # fn main() -> cacher_store::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let mut writer = ArchiveWriter::create(dir.path(), "2026-11", &ArchiveOptions::default())?;
/// writer.add(b"user:42", &[
///     ArchivedRevision { revision: 1, time_ms: 1_700_000_000_000, name: None, value: b"{\"v\":1}" },
///     ArchivedRevision { revision: 2, time_ms: 1_700_000_100_000, name: Some("nov dump"), value: b"{\"v\":2}" },
/// ])?;
/// let path = writer.finish()?;
///
/// let archive = Archive::open(&path)?;
/// assert_eq!(archive.get(b"user:42", 2)?.as_deref(), Some(&b"{\"v\":2}"[..]));
/// assert_eq!(archive.get_named(b"user:42", "nov dump")?.as_deref(), Some(&b"{\"v\":2}"[..]));
/// assert_eq!(archive.get(b"user:42", 3)?, None);
/// # Ok(()) }
/// ```
pub struct ArchiveWriter {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
    offset: u64,
    entries: Vec<IndexEntry>,
    compressor: zstd::bulk::Compressor<'static>,
    max_group_bytes: u64,
    hashes: std::collections::HashSet<[u8; 16]>,
    revisions: usize,
    dict_offset: u64,
    dict_len: u32,
}

impl std::fmt::Debug for ArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("dest", &self.dest)
            .field("offset", &self.offset)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// Trains a zstd dictionary of at most `max_bytes` on `samples` (for example every archived
/// value, or a sample of them). Values of one kind (API responses, JSON records) share field
/// names and structure, which a dictionary turns into references instead of literals.
///
/// An error when the samples are too few or too small for zstd to learn from (it wants a few
/// hundred bytes at least); archiving without a dictionary is then the answer.
pub fn train_dictionary(samples: &[&[u8]], max_bytes: usize) -> Result<Vec<u8>> {
    zstd::dict::from_samples(samples, max_bytes).map_err(|e| Error::InvalidArgument {
        op: "training an archive dictionary",
        path: PathBuf::new(),
        reason: format!("zstd could not train on {} samples: {e}", samples.len()),
    })
}

impl ArchiveWriter {
    /// Starts the archive `<dir>/<name>.archive.zst`. `dir` must exist and not be a symlink;
    /// `name` must be a plain file name (letters, digits, `-`, `_`, `.`), and no archive of that
    /// name may exist (archives are immutable: `finish` refuses to replace one).
    pub fn create(dir: &Path, name: &str, options: &ArchiveOptions) -> Result<ArchiveWriter> {
        let invalid = |reason: String| Error::InvalidArgument {
            op: "creating an archive",
            path: dir.to_path_buf(),
            reason,
        };
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !plain {
            return Err(invalid(format!(
                "archive name {name:?} must be letters, digits, '-', '_' or '.' and not start with '.'"
            )));
        }
        fs::check_dir(dir)?;
        let dest = dir.join(format!("{name}.{EXTENSION}"));
        let tmp = tempfile::Builder::new()
            .prefix(".archive-")
            .suffix(".tmp")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(
                options.file_mode.file_bits(),
            ))
            .tempfile_in(dir)
            .map_err(|e| Error::io("creating a temp file for an archive in", dir, e))?;
        let mut compressor = match &options.dictionary {
            Some(dict) => zstd::bulk::Compressor::with_dictionary(options.level, dict),
            None => zstd::bulk::Compressor::new(options.level),
        }
        .map_err(|e| invalid(format!("zstd compressor: {e}")))?;
        compressor
            .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
            .and_then(|()| {
                compressor.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(true))
            })
            .map_err(|e| invalid(format!("zstd parameters: {e}")))?;
        let mut writer = ArchiveWriter {
            tmp,
            dest,
            offset: 0,
            entries: Vec::new(),
            compressor,
            max_group_bytes: options.max_group_bytes,
            hashes: Default::default(),
            revisions: 0,
            dict_offset: 0,
            dict_len: 0,
        };
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut head = Vec::new();
        let mut body = Vec::new();
        body.extend_from_slice(&VERSION.to_le_bytes());
        let flags = if options.dictionary.is_some() {
            FLAG_DICTIONARY
        } else {
            0
        };
        body.extend_from_slice(&flags.to_le_bytes());
        body.extend_from_slice(&created.to_le_bytes());
        skippable(&mut head, TAG_HEADER, &body);
        if let Some(dict) = &options.dictionary {
            // The footer points at the dictionary's bytes, after the frame header and tag.
            writer.dict_offset = head.len() as u64 + 8 + 4;
            writer.dict_len =
                u32::try_from(dict.len()).map_err(|_| invalid("dictionary over 4 GiB".into()))?;
            skippable(&mut head, TAG_DICTIONARY, dict);
        }
        writer.write_all(&head)?;
        Ok(writer)
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.tmp
            .as_file_mut()
            .write_all(bytes)
            .map_err(|e| Error::io("writing an archive", self.tmp.path(), e))?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Adds every revision of `key` as one compressed frame. A key may be added once per
    /// archive; its revisions must have distinct numbers and names.
    pub fn add(&mut self, key: &[u8], revisions: &[ArchivedRevision<'_>]) -> Result<()> {
        let invalid = |reason: String| Error::InvalidArgument {
            op: "adding to an archive",
            path: self.dest.clone(),
            reason,
        };
        if revisions.is_empty() {
            return Err(invalid("a group needs at least one revision".into()));
        }
        // A set of 16-byte hashes, not of keys: the writer's memory stays small for long keys.
        // The full 16 bytes tell keys apart here; the index keeps the version's 8.
        let full = key_hash(key, 1);
        let hash = key_hash(key, VERSION);
        if self.hashes.contains(&full) {
            return Err(invalid("this key was already added to the archive".into()));
        }
        let mut numbers: Vec<u64> = revisions.iter().map(|r| r.revision).collect();
        numbers.sort_unstable();
        numbers.dedup();
        if numbers.len() != revisions.len() {
            return Err(invalid(
                "two revisions of one key have the same number".into(),
            ));
        }
        let key_len = u32::try_from(key.len()).map_err(|_| invalid("key over 4 GiB".into()))?;
        let mut group = Vec::new();
        group.extend_from_slice(&GROUP_MAGIC);
        group.extend_from_slice(&key_len.to_le_bytes());
        group.extend_from_slice(key);
        group.extend_from_slice(&(revisions.len() as u32).to_le_bytes());
        for r in revisions {
            let name = r.name.unwrap_or("").as_bytes();
            let name_len = u16::try_from(name.len())
                .map_err(|_| invalid("revision name over 64 KiB".into()))?;
            // No crc32 per value (version 2): the frame's content checksum covers them all.
            group.extend_from_slice(&r.revision.to_le_bytes());
            group.extend_from_slice(&r.time_ms.to_le_bytes());
            group.extend_from_slice(&(r.value.len() as u64).to_le_bytes());
            group.extend_from_slice(&name_len.to_le_bytes());
            group.extend_from_slice(name);
        }
        let value_offset = group.len();
        let total =
            value_offset as u64 + revisions.iter().map(|r| r.value.len() as u64).sum::<u64>();
        if total > self.max_group_bytes {
            return Err(invalid(format!(
                "the revisions of one key take {total} bytes; an archive group holds at most {}",
                self.max_group_bytes
            )));
        }
        for r in revisions {
            group.extend_from_slice(r.value);
        }
        let frame = self
            .compressor
            .compress(&group)
            .map_err(|e| invalid(format!("zstd compression failed: {e}")))?;
        let frame_len =
            u32::try_from(frame.len()).map_err(|_| invalid("frame over 4 GiB".into()))?;
        self.hashes.insert(full);
        self.entries.push(IndexEntry {
            key_hash: hash,
            frame_offset: self.offset,
            frame_len,
            group_len: u32::try_from(group.len())
                .map_err(|_| invalid("group over 4 GiB".into()))?,
            revisions: revisions.len() as u32,
        });
        self.revisions += revisions.len();
        self.write_all(&frame)
    }

    /// The number of revisions added so far.
    pub fn revisions_added(&self) -> usize {
        self.revisions
    }

    /// Writes the index and footer, fsyncs, and renames the file into place; returns its path.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.entries.sort_unstable_by_key(|e| e.key_hash);
        let mut body = Vec::with_capacity(8 + self.entries.len() * super::format::ENTRY_LEN + 4);
        body.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for e in &self.entries {
            e.encode(&mut body);
        }
        let crc = crc32fast::hash(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        let mut tail = Vec::new();
        let index_offset = self.offset;
        skippable(&mut tail, TAG_INDEX, &body);
        let index_len = tail.len() as u64;
        Footer {
            version: VERSION,
            index_offset,
            index_len,
            dict_offset: self.dict_offset,
            dict_len: self.dict_len,
        }
        .encode(&mut tail);
        self.write_all(&tail)?;
        let tmp_path = self.tmp.path().to_path_buf();
        self.tmp
            .as_file()
            .sync_all()
            .map_err(|e| Error::io("syncing an archive", &tmp_path, e))?;
        let dest = self.dest.clone();
        self.tmp.persist_noclobber(&dest).map_err(|e| {
            Error::io(
                "renaming an archive into place (an archive of that name exists?) at",
                &dest,
                e.error,
            )
        })?;
        fs::sync_parent(&dest)?;
        Ok(dest)
    }
}
