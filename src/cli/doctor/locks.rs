//! Who holds the store's locks, read from `/proc/locks` (Linux): nothing here takes a lock,
//! which could make a writer's open fail.

use std::fs;
use std::path::Path;

use super::super::open::Kind;
use super::temps::sibling;
use super::{Checks, Status};

/// Who holds the store's locks: a LogStore's writer lock, the processes that have an LMDB
/// environment open (their lock on `lock.mdb`). Read from `/proc/locks` (Linux).
pub(super) fn lock_check(path: &Path, kind: Kind, checks: &mut Checks) {
    let (file, what) = match kind {
        Kind::Log => (sibling(path, ".lock"), "writer lock"),
        Kind::Lmdb | Kind::Array | Kind::NumpyLmdb => (path.join("lock.mdb"), "LMDB lock"),
        Kind::Hybrid => (path.join("index").join("lock.mdb"), "index's LMDB lock"),
        Kind::Dir => {
            checks.add(
                "locks",
                Status::Ok,
                "a DirStore has no store-wide lock (each writer locks its own temp file)"
                    .to_owned(),
                None,
            );
            return;
        }
    };
    if !file.exists() {
        checks.add(
            "locks",
            Status::Ok,
            format!("no {what} file: no process has the store open for that"),
            None,
        );
        return;
    }
    match lock_holders(&file) {
        None => checks.add(
            "locks",
            Status::Info,
            format!("cannot tell who holds the {what} (no /proc/locks here)"),
            None,
        ),
        Some(holders) if holders.is_empty() => checks.add(
            "locks",
            Status::Ok,
            format!("nobody holds the {what}"),
            None,
        ),
        Some(holders) => {
            let detail = match kind {
                Kind::Log => format!(
                    "a writer holds the {what}: {}; writing commands (rm, clear, evict, \
                     import, compact, verify --quarantine) are refused until it closes the \
                     store, reading ones work beside it",
                    holders.join(", ")
                ),
                _ => format!(
                    "processes with the environment open: {}",
                    holders.join(", ")
                ),
            };
            checks.add("locks", Status::Info, detail, None);
        }
    }
}

/// The processes (`pid (command)`) holding a lock on `file`, other than this one; `None`
/// when `/proc/locks` cannot be read.
pub(super) fn lock_holders(file: &Path) -> Option<Vec<String>> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(file).ok()?;
        let locks = fs::read_to_string("/proc/locks").ok()?;
        let dev = meta.dev();
        // glibc's major/minor split of st_dev, as /proc/locks prints them.
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        let want = format!("{major:02x}:{minor:02x}:{}", meta.ino());
        let me = std::process::id().to_string();
        let mut holders: Vec<String> = locks
            .lines()
            .filter_map(|line| {
                // "1: FLOCK  ADVISORY  WRITE 1234 fe:00:6643846 0 EOF" ("->" marks waiters).
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.get(1) == Some(&"->") {
                    return None;
                }
                let at = fields.iter().position(|f| *f == want)?;
                let pid = fields.get(at.checked_sub(1)?)?.to_string();
                (pid != me).then_some(pid)
            })
            .map(|pid| {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map_or_else(|_| "?".to_owned(), |c| c.trim().to_owned());
                format!("pid {pid} ({comm})")
            })
            .collect();
        holders.sort();
        holders.dedup();
        Some(holders)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}
