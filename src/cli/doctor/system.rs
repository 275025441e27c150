//! What the system allows: this user's access to the store's files, and free disk space.

use std::fs;
use std::path::Path;

use super::super::open::Kind;
use super::super::units;
use super::temps::sibling;
use super::{Checks, Status};

/// The store's own files, readable and writable by this user.
pub(super) fn permissions_check(path: &Path, kind: Kind, checks: &mut Checks) {
    let mut files = vec![path.to_path_buf()];
    match kind {
        Kind::Dir => {
            files.push(path.join("cacher-dir.toml"));
            files.push(path.join("tmp"));
            files.push(path.join("v1"));
            if let Ok(shards) = fs::read_dir(path.join("v1")) {
                files.extend(shards.flatten().map(|e| e.path()));
            }
            // The accounting sidecar, once a limited cache has made it: every write
            // records there.
            let acct = path.join("acct");
            files.extend([acct.join("data.mdb"), acct.join("lock.mdb"), acct]);
        }
        Kind::Log => files.push(sibling(path, ".lock")),
        Kind::Hybrid => {
            files.push(path.join("cacher-hybrid.toml"));
            files.push(path.join("index").join("data.mdb"));
            files.push(path.join("index").join("lock.mdb"));
            files.push(path.join("files"));
            files.push(path.join("files").join("tmp"));
            // Lease files (single-flight across processes) and archives of old revisions:
            // a cache writes both once they exist.
            files.push(path.join("leases"));
            files.push(path.join("archives"));
        }
        _ => {
            files.push(path.join("data.mdb"));
            files.push(path.join("lock.mdb"));
        }
    }
    let (mut unreadable, mut read_only) = (Vec::new(), Vec::new());
    for file in files.iter().filter(|f| f.exists()) {
        if !accessible(file, false) {
            unreadable.push(file.display().to_string());
        } else if !accessible(file, true) {
            read_only.push(file.display().to_string());
        }
    }
    if unreadable.is_empty() && read_only.is_empty() {
        checks.add(
            "permissions",
            Status::Ok,
            format!(
                "this user can read and write the store's {} files and directories checked",
                files.iter().filter(|f| f.exists()).count()
            ),
            None,
        );
    }
    if !unreadable.is_empty() {
        checks.add(
            "permissions",
            Status::Problem,
            format!("this user cannot read {}", unreadable.join(", ")),
            Some("run as the store's owner, or `chmod u+r` (and `u+x` on directories)".to_owned()),
        );
    }
    if !read_only.is_empty() {
        checks.add(
            "permissions",
            Status::Problem,
            format!("read-only for this user: {}", read_only.join(", ")),
            Some(
                "writes through this user will fail: run the cache as the store's owner, or \
                 `chmod u+w` them"
                    .to_owned(),
            ),
        );
    }
}

#[cfg(unix)]
pub(super) fn accessible(path: &Path, write: bool) -> bool {
    use rustix::fs::Access;
    let mut how = Access::READ_OK;
    if write {
        how |= Access::WRITE_OK;
    }
    if path.is_dir() {
        how |= Access::EXEC_OK;
    }
    rustix::fs::access(path, how).is_ok()
}

#[cfg(not(unix))]
pub(super) fn accessible(path: &Path, write: bool) -> bool {
    fs::metadata(path).is_ok_and(|m| !write || !m.permissions().readonly())
}

/// Free space on the store's file system.
pub(super) fn disk_check(path: &Path, kind: Kind, checks: &mut Checks) {
    let at = if kind == Kind::Log {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    } else {
        path
    };
    #[cfg(unix)]
    {
        let Ok(st) = rustix::fs::statvfs(at) else {
            checks.add(
                "disk",
                Status::Info,
                format!("cannot tell the free space at {}", at.display()),
                None,
            );
            return;
        };
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        let total = st.f_blocks.saturating_mul(st.f_frsize);
        const LOW: u64 = 64 << 20;
        let detail = format!(
            "{} free of {} at {}",
            units::bytes(free),
            units::bytes(total),
            at.display()
        );
        if free < LOW || free.saturating_mul(100) < total {
            checks.add(
                "disk",
                Status::Problem,
                format!("{detail}: writes will start failing"),
                Some(
                    "free space on that file system, or make the cache smaller (`cacher evict \
                     --max-bytes`; `cacher compact` for a LogStore)"
                        .to_owned(),
                ),
            );
        } else {
            checks.add("disk", Status::Ok, detail, None);
        }
    }
    #[cfg(not(unix))]
    checks.add(
        "disk",
        Status::Info,
        format!("free space at {} not checked here", at.display()),
        None,
    );
}
