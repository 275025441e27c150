//! [`Durability::Periodic`](crate::Durability::Periodic) for the log: a background thread
//! fdatasyncs the log at most one interval after a write, then records in a small side file,
//! `<log>.synced`, how far the log was synced.
//!
//! Why the side file: writes that were never synced can reach the disk in any order after a
//! power loss — a later record whole, an earlier one still zeros or stale blocks. Opening
//! strictly would call that corruption in the middle and refuse the log. With the synced
//! offset known, open keeps the strict rules for the synced part (damage there is damage),
//! and cuts everything from the first bad record after it as a torn tail
//! ([`TornReason::Unsynced`](super::TornReason::Unsynced)): exactly the writes of the last
//! interval, the loss `Periodic` allows. The side file is only written after the log's sync
//! returned, so it never claims more than is on disk.
//!
//! ```text
//! <log>.synced (24 bytes, rewritten in place)
//! +-----------+------------+----------+----------+
//! | synced to | generation | crc      | reserved |
//! | u64 LE    | u64 LE     | u32 LE   | 4 bytes  |
//! +-----------+------------+----------+----------+
//!  0           8            16         20         24
//!  crc = crc32 of bytes 0..16. It applies to the log file of that generation only.
//! ```

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use super::open::{remove_stale_temp, sibling};
use super::positioned::{read_full_at, write_all_at};
use crate::fs::{create_new, open_regular, Access, FileMode};
use crate::le::{u32_at, u64_at};
use crate::{Error, Result};

/// The suffix of the side file holding the synced offset.
pub(super) const SYNCED: &str = ".synced";

const MARKER_LEN: usize = 24;

/// The default interval between background syncs.
pub(super) const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

pub(super) fn encode(end: u64, generation: u64) -> [u8; MARKER_LEN] {
    let mut b = [0u8; MARKER_LEN];
    b[0..8].copy_from_slice(&end.to_le_bytes());
    b[8..16].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&b[0..16]);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Where the strict recovery rules of a log end, from its `.synced` file: the synced offset
/// when it names this generation, else `u64::MAX` (strict everywhere). A marker naming
/// another generation is left by a crash between compaction's rename and the marker's
/// update, when the new file held only compacted records, all synced: strict is right. An
/// unreadable marker tells nothing, so the open keeps the strict rules and reports what it
/// finds rather than cut anything on a guess.
pub(super) fn strict_until(log: &Path, generation: u64) -> Result<u64> {
    let path = sibling(log, SYNCED)?;
    let Some(file) = open_regular(&path, Access::Read)? else {
        return Ok(u64::MAX);
    };
    let mut b = [0u8; MARKER_LEN];
    let n = read_full_at(&file, &mut b, 0).map_err(|e| Error::io("reading", &path, e))?;
    let sound = n == MARKER_LEN && u32_at(&b, 16) == Some(crc32fast::hash(&b[0..16]));
    match (sound, u64_at(&b, 0), u64_at(&b, 8)) {
        (true, Some(end), Some(g)) if g == generation => Ok(end),
        _ => Ok(u64::MAX),
    }
}

/// Removes a `.synced` file a periodic writer left, when this writer syncs every write (its
/// caller synced the whole log first, so the strict rules hold again everywhere).
pub(super) fn remove_marker(log: &Path) -> Result<()> {
    remove_stale_temp(&sibling(log, SYNCED)?).map(|_| ())
}

/// What the thread syncs next, and what it found.
struct Pending {
    file: Arc<File>,
    end: u64,
    generation: u64,
    dirty: bool,
    stop: bool,
    /// A background sync that failed, reported by the next write or flush.
    error: Option<io::Error>,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    marker: File,
    marker_path: PathBuf,
    interval: Duration,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_marker(&self, end: u64, generation: u64) -> io::Result<()> {
        write_all_at(&self.marker, &encode(end, generation), 0)?;
        self.marker.sync_data()
    }
}

/// The background syncer of a periodic writer; stopping it (on drop) syncs what is left.
pub(super) struct Syncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts syncing `file` (synced up to `end` already, by the caller) every `interval`.
    pub(super) fn start(
        log: &Path,
        file: Arc<File>,
        end: u64,
        generation: u64,
        interval: Duration,
        mode: FileMode,
    ) -> Result<Syncer> {
        let marker_path = sibling(log, SYNCED)?;
        let marker = match open_regular(&marker_path, Access::ReadWrite)? {
            Some(f) => f,
            None => create_new(&marker_path, mode)?,
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                file,
                end,
                generation,
                dirty: false,
                stop: false,
                error: None,
            }),
            wake: Condvar::new(),
            marker,
            marker_path,
            interval,
        });
        shared
            .write_marker(end, generation)
            .and_then(|()| crate::fs::sync_parent(&shared.marker_path).map_err(io::Error::other))
            .map_err(|e| Error::io("writing", &shared.marker_path, e))?;
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("cacher-log-sync".into())
            .spawn(move || run(&for_thread))
            .map_err(|e| Error::io("starting the sync thread of", log, e))?;
        Ok(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    /// Notes records written up to `end` of `file`: the thread syncs them within an interval.
    pub(super) fn written(&self, file: &Arc<File>, end: u64, generation: u64) {
        let mut p = self.shared.lock();
        if !Arc::ptr_eq(&p.file, file) {
            p.file = file.clone();
        }
        p.end = end;
        p.generation = generation;
        p.dirty = true;
    }

    /// Records that `file` is synced up to `end` (a flush, or compaction's new file).
    pub(super) fn synced(&self, file: &Arc<File>, end: u64, generation: u64) -> io::Result<()> {
        let mut p = self.shared.lock();
        if !Arc::ptr_eq(&p.file, file) {
            p.file = file.clone();
        }
        p.end = end;
        p.generation = generation;
        p.dirty = false;
        self.shared.write_marker(end, generation)
    }

    /// The error of a background sync that failed since the last call, if any.
    pub(super) fn take_error(&self) -> Option<io::Error> {
        self.shared.lock().error.take()
    }

    pub(super) fn marker_path(&self) -> &Path {
        &self.shared.marker_path
    }
}

fn run(shared: &Shared) {
    let mut p = shared.lock();
    loop {
        let stopping = p.stop;
        if !stopping {
            p = shared
                .wake
                .wait_timeout(p, shared.interval)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if p.dirty {
            let (file, end, generation) = (p.file.clone(), p.end, p.generation);
            p.dirty = false;
            drop(p);
            let synced = file.sync_data();
            p = shared.lock();
            // The marker is written under the lock, and only while it still names the file
            // just synced, so it never moves back past what `synced` recorded.
            let result = synced.and_then(|()| {
                if p.generation == generation && p.end >= end {
                    shared.write_marker(end, generation)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = result {
                p.error = Some(e);
            }
        }
        if stopping {
            return;
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
