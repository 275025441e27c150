//! What the store is: its kind (a mixed layout is a finding), its layout version, and why it
//! did not open, in words.

use std::fs;
use std::path::Path;

use super::super::failure::{Failure, Fault};
use super::super::open::{self, Kind};
use super::{Checks, Status};

/// The kind, from markers or contents; `None` when the layout is mixed (reported).
pub(super) fn kind_check(path: &Path, checks: &mut Checks) -> Result<Option<Kind>, Failure> {
    if path.is_dir() {
        let markers = open::markers_in(path);
        if markers.len() > 1 {
            let names: Vec<String> = markers
                .iter()
                .map(|(file, kind)| format!("{file} ({})", kind.name()))
                .collect();
            checks.add(
                "kind",
                Status::Problem,
                format!("mixed layout: several store markers, {}", names.join(", ")),
                Some(format!(
                    "find out which kind the directory really holds (`data.mdb` is LMDB, a \
                     `v1/` tree of entry files is a DirStore) and remove the other marker \
                     from {}",
                    path.display()
                )),
            );
            return Ok(None);
        }
    }
    let kind = open::detect(path)?;
    let how = match open::markers_in(path).first() {
        Some((file, _)) => format!("marker {file}"),
        None if kind == Kind::Log => "a file starting with CACHELOG".to_owned(),
        None => "its contents (no marker)".to_owned(),
    };
    checks.add(
        "kind",
        Status::Ok,
        format!("{}, from {how}", kind.name()),
        None,
    );
    if kind == Kind::Dir && path.join("data.mdb").exists() {
        checks.add(
            "kind",
            Status::Problem,
            "mixed layout: an LMDB data.mdb inside a DirStore".to_owned(),
            Some(format!(
                "move data.mdb (and lock.mdb) out of {}: a DirStore never reads them",
                path.display()
            )),
        );
    }
    Ok(Some(kind))
}

/// The layout version the marker names (the open below says whether this build reads it).
pub(super) fn layout_check(path: &Path, kind: Kind, checks: &mut Checks) {
    let Some((file, _)) = open::markers_in(path).into_iter().next() else {
        return;
    };
    let text = fs::read(path.join(file))
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(4096)]).into_owned());
    let version = text.as_ref().ok().and_then(|t| {
        t.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == "version")
            .and_then(|(_, v)| v.trim().parse::<u32>().ok())
    });
    match (text, version) {
        (Ok(_), Some(v)) => checks.add(
            "layout",
            Status::Ok,
            format!("{} layout version {v} ({file})", kind.name()),
            None,
        ),
        (Ok(_), None) => checks.add(
            "layout",
            Status::Problem,
            format!("{file} names no layout version: the marker is damaged"),
            Some(format!(
                "restore {file} from a backup, or from a store of the same kind made by \
                 this cacher if the layout is the same"
            )),
        ),
        (Err(e), _) => checks.add(
            "layout",
            Status::Problem,
            format!("cannot read {file}: {e}"),
            Some("run as the store's owner, or fix the file's permissions".to_owned()),
        ),
    }
}

/// Why the store did not open, and what to do.
pub(super) fn open_failure(path: &Path, kind: Kind, failure: &Failure, checks: &mut Checks) {
    let shown = path.display();
    let (name, fix) = match failure.fault() {
        Some(Fault::Upgrade { found, supported }) => (
            "layout",
            format!(
                "the store was written by a newer cacher (layout {found}; this one reads up \
                 to {supported}): upgrade cacher (`cargo install cacher`) and use that one"
            ),
        ),
        Some(Fault::Corrupt) => (
            "verify",
            format!(
                "the {}'s own files are damaged, so no entry can be read: restore {shown} \
                 from a backup, or remove it and let the cache recompute",
                kind.name()
            ),
        ),
        Some(Fault::Permission) => (
            "permissions",
            format!("run as the owner of {shown}, or give this user read access"),
        ),
        Some(Fault::Foreign) => (
            "kind",
            "a file of the store is not the store's own (a symlink or FIFO planted there, or \
             another kind's layout): remove what does not belong"
                .to_owned(),
        ),
        Some(Fault::Locked) => (
            "locks",
            "another process holds the store's lock: wait for it, or stop it".to_owned(),
        ),
        _ => (
            "open",
            "see the message; this cacher cannot open it".to_owned(),
        ),
    };
    checks.add(
        name,
        Status::Problem,
        failure.message().to_owned(),
        Some(fix),
    );
}
