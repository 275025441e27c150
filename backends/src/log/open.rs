//! Opening a log: the writer lock, creating the file, reading the header and scanning the
//! records into the index (cutting a torn tail when opening as the writer).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::checkpoint;
use super::identify::damaged_key;
use super::index::{Index, MAX_OFFSET};
use super::periodic::{self, Syncer};
use super::positioned::{read_full_at, write_all_at};
use super::record::{self, FileHeader, FILE_HEADER_LEN};
use super::recover::{quarantine, recover_damaged_tail};
use super::scan::{scan, Role, Tail, TailKind};
use super::state::{apply, map_file, State};
use super::{DamagedTail, LogOptions, LogStore, OpenReport, TornReason, TornTail};
use crate::fs::{create_new, open_regular, refuse_unless_file, Access, FileMode};
use crate::marker::{self, refuse_foreign};
use crate::{Error, Result};

impl LogStore {
    pub(super) fn open_with(path: &Path, options: LogOptions) -> Result<LogStore> {
        let path = path.to_path_buf();
        refuse_other_layouts(&path)?;
        // Temp files a crashed writer left, removed here: recovery the report must show.
        let mut removed = Vec::new();
        let lock = if options.read_only {
            None
        } else {
            Some(lock_writer(&path, options.file_mode)?)
        };
        let file = if options.read_only {
            open_regular(&path, Access::Read)?
                .ok_or_else(|| Error::io("opening", &path, io::ErrorKind::NotFound.into()))?
        } else {
            let compacting = sibling(&path, COMPACTING)?;
            if remove_stale_temp(&compacting)? {
                removed.push(compacting);
            }
            match open_regular(&path, Access::ReadWrite)? {
                Some(file) => file,
                None => {
                    if let Some(stale) = create_file(&path, new_generation(), options.file_mode)? {
                        removed.push(stale);
                    }
                    open_regular(&path, Access::ReadWrite)?.ok_or_else(|| {
                        Error::io("opening", &path, io::ErrorKind::NotFound.into())
                    })?
                }
            }
        };
        let role = if options.read_only {
            Role::Reader
        } else {
            Role::Writer
        };
        let (state, mut report) = load(file, &path, role)?;
        report.removed_temps = removed;
        let syncer = if options.read_only {
            None
        } else {
            start_syncing(&path, &options, &state)?
        };
        Ok(LogStore {
            path,
            options,
            state: RwLock::new(state),
            writer: Mutex::new(lock),
            syncer,
            books: Mutex::new(None),
            #[cfg(test)]
            fault: Mutex::new(None),
            report,
            leases: Default::default(),
        })
    }
}

/// A periodic writer's syncer, started once the whole log is synced; any other writer
/// removes the `.synced` file a periodic one left (after syncing the log, so the strict
/// recovery rules hold everywhere again).
fn start_syncing(path: &Path, options: &LogOptions, state: &State) -> Result<Option<Syncer>> {
    let periodic = options.durability == crate::Durability::Periodic;
    let marker = sibling(path, periodic::SYNCED)?;
    if !periodic && std::fs::symlink_metadata(&marker).is_err() {
        return Ok(None);
    }
    state
        .file
        .sync_data()
        .map_err(|e| Error::io("syncing", path, e))?;
    if !periodic {
        periodic::remove_marker(path)?;
        return Ok(None);
    }
    Syncer::start(
        path,
        state.file.clone(),
        state.end,
        state.generation,
        options.sync_interval,
        options.file_mode,
    )
    .map(Some)
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

/// The suffix of the file compaction writes before renaming it over the log.
pub(super) const COMPACTING: &str = ".compacting";
/// The suffix of the file a new log's header is written to before it is renamed into place.
const CREATING: &str = ".creating";

/// Refuses a path that is a directory (naming the kind of store in it, when it is one) or
/// that lies in a directory marked as another kind of store: a log never shares a directory
/// with a layout that owns the directory.
fn refuse_other_layouts(path: &Path) -> Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.is_dir() {
            for kind in marker::Kind::ALL {
                if std::fs::symlink_metadata(kind.path_in(path)).is_ok() {
                    return Err(Error::WrongLayout {
                        path: path.to_path_buf(),
                        expected: marker::Kind::Log.type_name(),
                        found: kind.type_name(),
                    });
                }
            }
            return Err(Error::NotOwned {
                path: path.to_path_buf(),
                expected: "a LogStore file",
                found: "a directory",
            });
        }
    }
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => refuse_foreign(dir, marker::Kind::Log),
        _ => refuse_foreign(Path::new("."), marker::Kind::Log),
    }
}

/// Clears a temp file a crashed writer of ours left at `path`: only a regular file is
/// removed; a symlink, FIFO or anything else planted there is refused and left alone.
/// Returns whether there was one.
pub(super) fn remove_stale_temp(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            refuse_unless_file(path, &meta)?;
            std::fs::remove_file(path).map_err(|e| Error::io("removing the stale", path, e))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("reading the metadata of", path, e)),
    }
}

pub(super) fn lock_writer(path: &Path, mode: FileMode) -> Result<File> {
    let lock_path = sibling(path, ".lock")?;
    let lock = match open_regular(&lock_path, Access::ReadWrite)? {
        Some(lock) => lock,
        None => match create_new(&lock_path, mode) {
            Ok(lock) => lock,
            // Another process created it between our two calls: open theirs.
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                open_regular(&lock_path, Access::ReadWrite)?
                    .ok_or_else(|| Error::io("opening the lock file", &lock_path, source))?
            }
            Err(e) => return Err(e),
        },
    };
    // A lock that is busy for a moment only is waited for, briefly: a writer of this process
    // that just closed the log can still hold it through a child being spawned by another
    // thread (between fork and exec the child shares the open lock file). A writer that keeps
    // the log open is reported after the wait.
    let mut busy = 0;
    loop {
        match lock.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if busy < LOCK_RETRIES => {
                busy += 1;
                std::thread::sleep(LOCK_RETRY_PAUSE);
            }
            other => break lock_result(other, lock, path, &lock_path),
        }
    }
}

/// How often, and how far apart, a busy writer lock is tried again before `Locked`.
const LOCK_RETRIES: u32 = 20;
const LOCK_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

fn lock_result(
    tried: Result<(), std::fs::TryLockError>,
    lock: File,
    path: &Path,
    lock_path: &Path,
) -> Result<File> {
    match tried {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
            path: path.to_path_buf(),
            reason: format!(
                "another LogStore writer holds {} (open it read-only to read alongside)",
                lock_path.display()
            ),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("locking", lock_path, e)),
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
/// path never names a file with a partial header. The side file is made with `O_EXCL` and
/// `O_NOFOLLOW`, so a name planted there is never written through. Returns the stale side
/// file it removed first, if a crash left one.
pub(super) fn create_file(path: &Path, generation: u64, mode: FileMode) -> Result<Option<PathBuf>> {
    let tmp = sibling(path, CREATING)?;
    let io_err = |e| Error::io("creating", path, e);
    let stale = remove_stale_temp(&tmp)?.then(|| tmp.clone());
    let f = create_new(&tmp, mode)?;
    write_all_at(&f, &FileHeader { generation }.encode(), 0)
        .and_then(|()| f.sync_all())
        .map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)?;
    crate::fs::sync_parent(path)?;
    Ok(stale)
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

/// Reads the header, scans every record, recovers from a bad tail and maps the file.
///
/// A writer recovers before the file is mapped, so no map in this process ever covered the
/// bytes it cuts: a torn tail is truncated; a damaged tail is first copied to a side file,
/// then cut, with a tombstone written in its place when its key has an older value (see
/// [`OpenReport`]). A read-only handle changes nothing: it stops before a bad tail, and reads
/// a damaged tail's key as corrupt.
pub(super) fn load(file: File, path: &Path, role: Role) -> Result<(State, OpenReport)> {
    let header = read_header(&file, path)?;
    let len = file_len(&file, path)?;
    if len > MAX_OFFSET {
        return Err(Error::corrupt(
            path,
            None,
            format!("{len} bytes: a log holds at most {MAX_OFFSET} bytes"),
        ));
    }
    let strict_until = periodic::strict_until(path, header.generation)?;
    // An index checkpoint that holds for this log spares the scan of the records it covers.
    let (mut index, mut live_bytes, start, covered, outdated) =
        match checkpoint::load(path, &file, header.generation, len)? {
            Some(c) => (c.index, c.live_bytes, c.end, c.records, c.outdated),
            None => (Index::new(), 0, FILE_HEADER_LEN, 0, false),
        };
    let scanned = scan(&file, path, start, len, role, strict_until, &mut |e| {
        apply(&mut index, &mut live_bytes, e)
    })?;
    let mut report = OpenReport {
        records: covered + scanned.records,
        checkpoint: (start > FILE_HEADER_LEN).then_some(start),
        ..OpenReport::default()
    };
    let mut end = scanned.end;
    let mut damaged = HashMap::new();
    match scanned.tail {
        None => {}
        Some(Tail {
            offset,
            kind: TailKind::Torn(reason),
        }) => {
            let mut moved_to = None;
            if role == Role::Writer {
                // Unsynced writes may hold whole records after the bad one: kept aside, as a
                // damaged tail is, rather than dropped.
                if reason == TornReason::Unsynced {
                    moved_to = Some(quarantine(&file, path, offset, len)?);
                }
                file.set_len(offset)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| Error::io("cutting the torn tail of", path, e))?;
            }
            report.torn_tail = Some(TornTail {
                offset,
                len: len - offset,
                reason,
                cut: role == Role::Writer,
                moved_to,
            });
        }
        Some(Tail {
            offset,
            kind: TailKind::Damaged { reason, key },
        }) => {
            let told = damaged_key(&file, offset, len, reason, key, &index)
                .map_err(|e| Error::io("reading the damaged tail of", path, e))?;
            let mut tail = DamagedTail {
                offset,
                len: len - offset,
                reason,
                key: told.key,
                suspects: told.suspects,
                moved_to: None,
                tombstoned: false,
            };
            match role {
                Role::Writer => {
                    end = recover_damaged_tail(
                        &file,
                        path,
                        len,
                        &mut tail,
                        &mut index,
                        &mut live_bytes,
                    )?;
                }
                Role::Reader => {
                    for key in tail.key.iter().chain(&tail.suspects) {
                        damaged.insert(key.clone().into_boxed_slice(), offset);
                    }
                }
            }
            report.damaged_tail = Some(tail);
        }
    }
    let state = State {
        map: map_file(&file, path)?,
        file: Arc::new(file),
        index,
        damaged,
        end,
        live_bytes,
        generation: header.generation,
        strict_until,
        records: report.records,
        // A checkpoint of an older layout counts as none: the writer's close replaces it.
        unvouched: if outdated {
            scanned.records.max(checkpoint::MIN_RECORDS)
        } else {
            scanned.records
        },
    };
    Ok((state, report))
}
