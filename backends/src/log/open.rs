//! Opening a log: the writer lock, creating the file, reading the header and scanning the
//! records into the index (cutting a torn tail when opening as the writer).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::index::{apply, map_file, State};
use super::positioned::{read_full_at, write_all_at};
use super::record::{self, FileHeader, FILE_HEADER_LEN};
use super::scan::{scan, Role, Scanned};
use super::{LogOptions, LogStore, OpenReport, TornTail};
use crate::{Error, Result};

impl LogStore {
    pub(super) fn open_with(path: &Path, options: LogOptions) -> Result<LogStore> {
        let path = path.to_path_buf();
        let lock = if options.read_only {
            None
        } else {
            Some(lock_writer(&path)?)
        };
        let file = if options.read_only {
            File::open(&path).map_err(|e| Error::io("opening", &path, e))?
        } else {
            let _ = std::fs::remove_file(sibling(&path, ".compacting")?);
            let len = match std::fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                Err(e) => return Err(Error::io("opening", &path, e)),
            };
            if len == 0 {
                create_file(&path, new_generation())?;
            }
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io("opening", &path, e))?
        };
        let role = if options.read_only {
            Role::Reader
        } else {
            Role::Writer
        };
        let (state, scanned, file_len) = load(file, &path, role)?;
        let report = OpenReport {
            records: scanned.records,
            torn_tail: scanned.tail.map(|tail| TornTail {
                offset: tail.offset,
                len: file_len - tail.offset,
                reason: tail.reason,
                cut: !options.read_only,
            }),
        };
        Ok(LogStore {
            path,
            options,
            state: RwLock::new(state),
            writer: Mutex::new(lock),
            report,
        })
    }
}

/// `path` with `suffix` appended to its file name (`store.log` -> `store.log.lock`).
pub(super) fn sibling(path: &Path, suffix: &str) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        Error::io(
            "opening",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "a log path must name a file"),
        )
    })?;
    let mut name = name.to_os_string();
    name.push(suffix);
    Ok(path.with_file_name(name))
}

pub(super) fn lock_writer(path: &Path) -> Result<File> {
    let lock_path = sibling(path, ".lock")?;
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| Error::io("opening the lock file", &lock_path, e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
            path: path.to_path_buf(),
            reason: format!(
                "another LogStore writer holds {} (open it read-only to read alongside)",
                lock_path.display()
            ),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("locking", &lock_path, e)),
    }
}

/// A generation for a brand-new file: distinct from any file that was at this path before,
/// so a reader of a deleted-and-recreated log also notices.
pub(super) fn new_generation() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ ((std::process::id() as u64) << 32)
}

/// Creates the log with its header: written to a side file and renamed into place, so the
/// path never names a file with a partial header.
pub(super) fn create_file(path: &Path, generation: u64) -> Result<()> {
    let tmp = sibling(path, ".creating")?;
    let io_err = |e| Error::io("creating", path, e);
    let f = File::create(&tmp).map_err(io_err)?;
    write_all_at(&f, &FileHeader { generation }.encode(), 0)
        .and_then(|()| f.sync_all())
        .map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)?;
    crate::fs::sync_parent(path)
}

pub(super) fn file_len(file: &File, path: &Path) -> Result<u64> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| Error::io("reading the length of", path, e))
}

pub(super) fn read_header(file: &File, path: &Path) -> Result<FileHeader> {
    let mut b = [0u8; FILE_HEADER_LEN as usize];
    let n = read_full_at(file, &mut b, 0).map_err(|e| Error::io("reading", path, e))?;
    FileHeader::decode(&b[..n]).map_err(|e| e.into_error(path, None, record::FORMAT_VERSION))
}

/// Reads the header, scans every record and maps the file. A writer (`writer`) cuts a torn
/// tail off first — before the file is mapped, so no map in this process ever covered the cut
/// bytes. A read-only handle leaves the tail and scans as "live" (a writer may be appending).
pub(super) fn load(file: File, path: &Path, role: Role) -> Result<(State, Scanned, u64)> {
    let header = read_header(&file, path)?;
    let len = file_len(&file, path)?;
    let mut index = HashMap::new();
    let mut live_bytes = 0;
    let scanned = scan(&file, path, FILE_HEADER_LEN, len, role, &mut |e| {
        apply(&mut index, &mut live_bytes, e)
    })?;
    if let (Some(tail), Role::Writer) = (&scanned.tail, role) {
        file.set_len(tail.offset)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("cutting the torn tail of", path, e))?;
    }
    let state = State {
        map: map_file(&file, path)?,
        file: Arc::new(file),
        index,
        end: scanned.end,
        live_bytes,
        generation: header.generation,
    };
    Ok((state, scanned, len))
}
