//! Writing entries: a locked temp file in `tmp/`, then a rename (or exchange) into `v1/`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use tempfile::NamedTempFile;

use super::format::{Header, HEADER_LEN};
use super::{DirStore, TMP_PREFIX, TMP_RANDOM_LEN};
use crate::fs::{self, sync_dir};
use crate::{Durability, Error, Result};

impl DirStore {
    /// Writes `key` and a value into a new locked temp file; returns it unsynced.
    pub(super) fn write_temp(
        &self,
        key: &[u8],
        write_value: impl FnOnce(&mut File, &Path, &[u8; HEADER_LEN]) -> Result<u64>,
    ) -> Result<(NamedTempFile, u64)> {
        if key.len() > DirStore::MAX_KEY_LEN {
            return Err(Error::InvalidKey {
                key: crate::KeyDisplay::new(key),
                reason: format!(
                    "{} bytes is longer than a DirStore key may be ({} bytes)",
                    key.len(),
                    DirStore::MAX_KEY_LEN
                ),
            });
        }
        let mut tmp = self.new_temp()?;
        let path = tmp.path().to_path_buf();
        // Held until the file is closed after its rename; tells a cleaner it is in use.
        tmp.as_file()
            .lock()
            .map_err(|e| Error::io("locking", &path, e))?;
        let header = Header::encode(key, 0, 0);
        let n = write_value(tmp.as_file_mut(), &path, &header)?;
        Ok((tmp, n))
    }

    /// Streams `reader` into a new temp file under `key`; returns it unsynced and the value's
    /// length.
    pub(super) fn write_streamed(
        &self,
        key: &[u8],
        reader: &mut dyn Read,
    ) -> Result<(NamedTempFile, u64)> {
        self.write_temp(key, |file, path, placeholder| {
            let io_err = |e| Error::io("writing", path, e);
            file.write_all(placeholder).map_err(io_err)?;
            file.write_all(key).map_err(io_err)?;
            let mut crc = crc32fast::Hasher::new();
            // The file's errors are told apart from the reader's, which copy_checksummed
            // returns the same way.
            let mut write_error = None;
            let copied = fs::copy_checksummed(reader, &mut crc, u64::MAX, |chunk| {
                file.write_all(chunk).map_err(|e| {
                    let kind = e.kind();
                    write_error = Some(e);
                    io::Error::from(kind)
                })
            });
            let n = match (copied, write_error) {
                (_, Some(e)) => return Err(io_err(e)),
                (Err(e), None) => return Err(Error::io("reading the value for", path, e)),
                (Ok(n), None) => n,
            };
            // The lengths and checksum are known only now: fill in the header.
            let header = Header::encode(key, n, crc.finalize());
            file.seek(SeekFrom::Start(0))
                .and_then(|_| file.write_all(&header))
                .map_err(io_err)?;
            Ok(n)
        })
    }

    /// A new temp file in `tmp/`, named `put-XXXXXX` (the only names cleanup removes),
    /// created with `O_EXCL` (so never through a planted symlink) and the store's file mode.
    pub(super) fn new_temp(&self) -> Result<NamedTempFile> {
        let mut builder = tempfile::Builder::new();
        builder.prefix(TMP_PREFIX).rand_bytes(TMP_RANDOM_LEN);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Passed to open(2), so the umask still applies.
            builder.permissions(std::fs::Permissions::from_mode(self.file_mode.file_bits()));
        }
        builder
            .tempfile_in(&self.tmp)
            .map_err(|e| Error::io("creating a temp file in", &self.tmp, e))
    }

    /// Moves a whole temp file over `key`'s entry; checks the fan-out directory (creating it on
    /// first use) so nothing is renamed through a planted symlink. Does not sync the entry's
    /// directory.
    pub(super) fn publish(&self, tmp: NamedTempFile, dest: &Path) -> Result<()> {
        self.ready_fanout(dest)?;
        #[cfg(target_os = "linux")]
        let tmp = match exchange(tmp, dest)? {
            None => return Ok(()),
            Some(tmp) => tmp,
        };
        let tmp = match tmp.persist(dest) {
            Ok(_) => return Ok(()),
            Err(e) if e.error.kind() == io::ErrorKind::NotFound => e.file,
            Err(e) => return Err(Error::io("renaming into place", dest, e.error)),
        };
        // The fan-out directory was removed by hand since this handle checked it.
        let fanout = dest.parent().expect("entry paths have a fan-out directory");
        fs::ensure_dir(fanout, self.file_mode)?;
        if self.durability != Durability::None {
            sync_dir(&self.entries)?;
        }
        tmp.persist(dest)
            .map(drop)
            .map_err(|e| Error::io("renaming into place", dest, e.error))
    }

    /// [`DirStore::publish`], and with accounting on, the entry's record in the same sidecar
    /// write transaction as the rename (see `sidecar.rs`: the record then always names the
    /// file last renamed there, whichever process wrote it).
    pub(super) fn publish_counted(
        &self,
        tmp: NamedTempFile,
        dest: &Path,
        key: &[u8],
        size: u64,
        deadline: Option<u64>,
    ) -> Result<()> {
        #[cfg(all(feature = "lmdb", unix))]
        if let Some(side) = self.sidecar()? {
            use super::sidecar::{EntryRecord, FileId};
            use crate::lmdb::RecordOp;
            let id = FileId::of_file(tmp.as_file(), tmp.path())?;
            let record = EntryRecord {
                file: id,
                value_len: size,
            };
            let mut tmp = Some(tmp);
            // A rename that failed is reported after the transaction, which records nothing
            // for it: had the closure failed instead, a run of it again (`AcctDb::write`
            // retries when another handle made the books meanwhile) would find no temp file
            // and answer as if the first run had renamed it, so `put` would return `Ok` for a
            // value never stored.
            let mut failed = None;
            side.write_record(key, &mut |_| {
                if failed.is_some() {
                    return Ok((RecordOp::Keep, ()));
                }
                match tmp.take() {
                    Some(t) => {
                        if let Err(e) = self.publish(t, dest) {
                            failed = Some(e);
                            return Ok((RecordOp::Keep, ()));
                        }
                    }
                    // A transaction run again: the file was renamed by the first run, and is
                    // recorded only if no other writer replaced it since.
                    None if FileId::at(dest)? != Some(id) => return Ok((RecordOp::Keep, ())),
                    None => {}
                }
                let put = RecordOp::Put {
                    value: record.encode(),
                    size,
                    deadline,
                };
                Ok((put, ()))
            })?;
            return failed.map_or(Ok(()), Err);
        }
        let _ = (key, size, deadline);
        self.publish(tmp, dest)
    }

    /// Publishes a chunk of [`Store::put_many`](crate::Store::put_many) in order; with
    /// accounting on, every rename and its record in one sidecar write transaction (one
    /// commit for the chunk, as the file syncs are one round).
    pub(super) fn publish_chunk(
        &self,
        written: Vec<(NamedTempFile, std::path::PathBuf)>,
        chunk: &[(&[u8], &[u8], Option<u64>)],
    ) -> Result<()> {
        #[cfg(all(feature = "lmdb", unix))]
        if let Some(side) = self.sidecar()? {
            use super::sidecar::{EntryRecord, FileId};
            use crate::lmdb::RecordOp;
            let mut pending = Vec::with_capacity(written.len());
            for ((tmp, dest), (_, value, deadline)) in written.into_iter().zip(chunk) {
                let record = EntryRecord {
                    file: FileId::of_file(tmp.as_file(), tmp.path())?,
                    value_len: value.len() as u64,
                };
                pending.push((Some(tmp), dest, record, *deadline));
            }
            let keys: Vec<&[u8]> = chunk.iter().map(|(k, _, _)| *k).collect();
            // As in `publish_counted`, a failed rename is reported after the transaction: the
            // entries renamed before it keep their records (failing the transaction would
            // roll those back and leave their files uncounted), and those after it are not
            // renamed (their temp files go when `pending` is dropped).
            let mut failed: Option<(usize, Error)> = None;
            side.write_records(&keys, &mut |i, _| {
                if failed.as_ref().is_some_and(|(at, _)| i >= *at) {
                    return Ok(RecordOp::Keep);
                }
                let (tmp, dest, record, deadline) = &mut pending[i];
                match tmp.take() {
                    Some(t) => {
                        if let Err(e) = self.publish(t, dest) {
                            failed = Some((i, e));
                            return Ok(RecordOp::Keep);
                        }
                    }
                    // As in `publish_counted`: a transaction run again records only what is
                    // still there (a later duplicate key replaced the earlier file).
                    None if FileId::at(dest)? != Some(record.file) => return Ok(RecordOp::Keep),
                    None => {}
                }
                Ok(RecordOp::Put {
                    value: record.encode(),
                    size: record.value_len,
                    deadline: *deadline,
                })
            })?;
            return failed.map_or(Ok(()), |(_, e)| Err(e));
        }
        let _ = chunk;
        for (tmp, dest) in written {
            self.publish(tmp, &dest)?;
        }
        Ok(())
    }

    pub(super) fn write_entry(&self, key: &[u8], value: &[u8]) -> Result<NamedTempFile> {
        let (tmp, _) = self.write_temp(key, |file, path, _| {
            let header = Header::encode(key, value.len() as u64, crc32fast::hash(value));
            // One write for small entries; large values are written from the caller's slice
            // instead of being copied next to the header.
            if value.len() < 64 * 1024 {
                let mut buf = Vec::with_capacity(HEADER_LEN + key.len() + value.len());
                buf.extend_from_slice(&header);
                buf.extend_from_slice(key);
                buf.extend_from_slice(value);
                file.write_all(&buf)
            } else {
                let mut head = Vec::with_capacity(HEADER_LEN + key.len());
                head.extend_from_slice(&header);
                head.extend_from_slice(key);
                file.write_all(&head).and_then(|()| file.write_all(value))
            }
            .map_err(|e| Error::io("writing", path, e))?;
            Ok(value.len() as u64)
        })?;
        Ok(tmp)
    }

    pub(super) fn sync_entry_dir(&self, dest: &Path) -> Result<()> {
        if self.durability != Durability::None {
            sync_dir(dest.parent().expect("entry paths have a fan-out directory"))?;
        }
        Ok(())
    }
}

pub(super) fn sync_file(tmp: &NamedTempFile) -> Result<()> {
    // fdatasync covers the data and the length, all a new file needs to be read back.
    tmp.as_file()
        .sync_data()
        .map_err(|e| Error::io("syncing", tmp.path().to_path_buf(), e))
}

/// Replaces an existing entry by swapping the temp file with it (`renameat2` with
/// `RENAME_EXCHANGE`, atomic like a rename), then deletes the old entry, now at the temp path.
/// Returns the temp file back when there is nothing to swap with (no entry yet, or a file
/// system without exchange support): the caller renames it instead.
///
/// Why not a plain rename over the entry: ext4 (with its default `auto_da_alloc`) starts
/// writeback of the new file on every rename that replaces one, which made a 100 B put cost
/// 1.5x a raw in-place write; the exchange does not trigger it (measured: 42 µs against 101 µs
/// for a rename and 78 µs for the raw write). A crash between the swap and the delete leaves
/// the old value under the temp path, where the stale-temp cleanup removes it.
#[cfg(target_os = "linux")]
fn exchange(tmp: NamedTempFile, dest: &Path) -> Result<Option<NamedTempFile>> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use rustix::io::Errno;
    match renameat_with(CWD, tmp.path(), CWD, dest, RenameFlags::EXCHANGE) {
        Ok(()) => {
            let (file, old) = tmp.into_parts();
            // Deleting the old entry's file; the new one (and its lock) is `file`.
            match old.close() {
                // A stale-temp cleaner may have removed it first: same outcome.
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(Error::io("removing the replaced entry", dest, e))
                }
                _ => {}
            }
            drop(file);
            Ok(None)
        }
        Err(Errno::NOENT | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => Ok(Some(tmp)),
        Err(e) => Err(Error::io("replacing", dest, e.into())),
    }
}
