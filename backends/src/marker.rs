//! Layout markers: the small text file in a store's directory that names its kind and layout
//! version, so a directory of one kind is never opened as another.
//!
//! Each kind writes `cacher-<kind>.toml` holding
//!
//! ```text
//! # A cacher <Kind>. Do not edit files below this directory by hand.
//! format = "cacher-<kind>"
//! version = <N>
//! ```
//!
//! (DirStore's `cacher-dir.toml` has had this shape since its first version.) HybridStore's
//! `cacher-hybrid.toml` predates this module and names its kind by another line,
//!
//! ```text
//! # cacher store layout marker
//! layout = "hybrid"
//! version = <N>
//! ```
//!
//! which is kept byte for byte, so stores written before and builds reading them agree.
//! Before opening, a store calls [`refuse_foreign`], which fails with [`Error::WrongLayout`]
//! naming both kinds when another kind's marker is there. Python-written NumpyLmdb
//! directories carry no marker and are recognised by their contents (see the array module).

#![allow(
    dead_code,
    reason = "shared helpers; each store adopts them as it is split (issue 17)"
)]

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fs::{self, Access, FileMode};
use crate::version::Refusal;

/// A marker longer than this is not one of ours.
const MARKER_MAX: usize = 4096;

/// The kinds of store that mark their directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    Log,
    Lmdb,
    Array,
    NumpyLmdb,
    Hybrid,
}

impl Kind {
    pub(crate) const ALL: [Kind; 6] = [
        Kind::Dir,
        Kind::Log,
        Kind::Lmdb,
        Kind::Array,
        Kind::NumpyLmdb,
        Kind::Hybrid,
    ];

    /// The `format` value and file stem: `cacher-dir`, `cacher-log`, ...
    pub(crate) fn format(self) -> &'static str {
        match self {
            Kind::Dir => "cacher-dir",
            Kind::Log => "cacher-log",
            Kind::Lmdb => "cacher-lmdb",
            Kind::Array => "cacher-array",
            Kind::NumpyLmdb => "cacher-numpy-lmdb",
            Kind::Hybrid => "cacher-hybrid",
        }
    }

    /// The store type's name, as errors print it.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Kind::Dir => "DirStore",
            Kind::Log => "LogStore",
            Kind::Lmdb => "LmdbStore",
            Kind::Array => "ArrayStore",
            Kind::NumpyLmdb => "NumpyLmdb",
            Kind::Hybrid => "HybridStore",
        }
    }

    /// The line naming the kind inside the marker, as (field, value): `format =
    /// "cacher-<kind>"`, except HybridStore's older `layout = "hybrid"` (see the module docs).
    fn identity(self) -> (&'static str, &'static str) {
        match self {
            Kind::Hybrid => ("layout", "hybrid"),
            _ => ("format", self.format()),
        }
    }

    /// The marker's file name.
    pub(crate) fn file_name(self) -> String {
        format!("{}.toml", self.format())
    }

    /// The marker's path inside `dir`.
    pub(crate) fn path_in(self, dir: &Path) -> PathBuf {
        dir.join(self.file_name())
    }

    /// The marker's text for layout `version`.
    pub(crate) fn text(self, version: u32) -> String {
        let heading = match self {
            Kind::Hybrid => "# cacher store layout marker".to_owned(),
            _ => format!(
                "# A cacher {}. Do not edit files below this directory by hand.",
                self.type_name()
            ),
        };
        let (field, value) = self.identity();
        format!("{heading}\n{field} = \"{value}\"\nversion = {version}\n")
    }

    /// Reads the layout version out of a marker's text; versions above `newest` are
    /// [`Refusal::Newer`].
    pub(crate) fn parse(self, text: &str, newest: u32) -> Result<u32, Refusal> {
        let (field, expected) = self.identity();
        let mut format_ok = false;
        let mut version = None;
        for line in text.lines() {
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            match name.trim() {
                n if n == field => format_ok = value.trim().trim_matches('"') == expected,
                "version" => version = value.trim().parse::<u32>().ok(),
                _ => {}
            }
        }
        match (format_ok, version) {
            (true, Some(v)) if v > newest => Err(Refusal::Newer(v)),
            (true, Some(v)) if v >= 1 => Ok(v),
            _ => Err(Refusal::Corrupt(format!(
                "not a {} marker (expected `{field} = \"{expected}\"` and `version = N`)",
                self.type_name(),
            ))),
        }
    }
}

/// Fails with [`Error::WrongLayout`] when `dir` holds the marker of a kind other than `mine`.
pub(crate) fn refuse_foreign(dir: &Path, mine: Kind) -> Result<()> {
    for other in Kind::ALL {
        if other == mine {
            continue;
        }
        // lstat: a planted symlink named like a marker still marks the directory as foreign.
        if std::fs::symlink_metadata(other.path_in(dir)).is_ok() {
            return Err(Error::WrongLayout {
                path: dir.to_path_buf(),
                expected: mine.type_name(),
                found: other.type_name(),
            });
        }
    }
    Ok(())
}

/// Reads `kind`'s marker in `dir`, writing it (layout `version`, permission bits `mode`) when
/// missing; returns the version found or written. A marker of a newer version is
/// [`Error::UpgradeRequired`], a damaged one [`Error::Corrupt`].
///
/// The marker appears whole or not at all: it is written to a temporary name of this
/// process's own and hard-linked into place, which fails if another process got there first
/// (whose marker is then read instead).
pub(crate) fn ensure(dir: &Path, kind: Kind, version: u32, mode: FileMode) -> Result<u32> {
    ensure_up_to(dir, kind, version, version, mode)
}

/// [`ensure`] for a store that writes `version` into a new directory but reads every layout up
/// to `newest` (LmdbStore writes layout 2 and still opens layout 1).
pub(crate) fn ensure_up_to(
    dir: &Path,
    kind: Kind,
    version: u32,
    newest: u32,
    mode: FileMode,
) -> Result<u32> {
    let path = kind.path_in(dir);
    if let Some(found) = read(&path, kind, newest)? {
        return Ok(found);
    }
    let tmp = synced_temp(dir, kind, version, mode)?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            fs::sync_dir(dir)?;
            Ok(version)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(&path, kind, newest)?
            .ok_or_else(|| Error::corrupt(&path, None, "the marker vanished while opening")),
        Err(e) => Err(Error::io("writing the layout marker", &path, e)),
    }
}

/// Replaces `kind`'s marker in `dir` with one naming `version`, after a layout upgrade: the
/// new text is written to this process's temporary name and renamed over the old marker, so
/// a reader sees the old marker or the new one, never a part. Returns the version read back.
pub(crate) fn rewrite(
    dir: &Path,
    kind: Kind,
    version: u32,
    newest: u32,
    mode: FileMode,
) -> Result<u32> {
    let path = kind.path_in(dir);
    let tmp = synced_temp(dir, kind, version, mode)?;
    let renamed = std::fs::rename(&tmp, &path);
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed.map_err(|e| Error::io("renaming a layout marker to", &path, e))?;
    fs::sync_dir(dir)?;
    read(&path, kind, newest)?
        .ok_or_else(|| Error::corrupt(&path, None, "the marker vanished while rewriting it"))
}

/// Writes `kind`'s marker text for `version` to `.<marker>.<pid>.tmp` in `dir` (created with
/// `O_EXCL | O_NOFOLLOW`, mode `mode`) and syncs it; returns its path. A file of that name
/// can only be left by a crashed open of a process with this same pid, so it is removed first.
fn synced_temp(dir: &Path, kind: Kind, version: u32, mode: FileMode) -> Result<PathBuf> {
    let tmp = dir.join(format!(".{}.{}.tmp", kind.file_name(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = fs::create_new(&tmp, mode)?;
    let written = file
        .write_all(kind.text(version).as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("writing the layout marker", &tmp, e));
    }
    Ok(tmp)
}

/// The version in `kind`'s marker at `path`, `None` when there is none. The marker is opened
/// like an entry (a symlink or FIFO there is [`Error::NotOwned`]) and read up to a bound.
pub(crate) fn read(path: &Path, kind: Kind, newest: u32) -> Result<Option<u32>> {
    let Some(mut file) = fs::open_regular(path, Access::Read)? else {
        return Ok(None);
    };
    let mut buf = vec![0u8; MARKER_MAX];
    let n = fs::read_up_to(&mut file, &mut buf).map_err(|e| Error::io("reading", path, e))?;
    let text = std::str::from_utf8(&buf[..n])
        .map_err(|_| Error::corrupt(path, None, "the layout marker is not UTF-8"))?;
    kind.parse(text, newest)
        .map(Some)
        .map_err(|refusal| refusal.into_error(path, None, newest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_refuse_newer_or_foreign_text() {
        for kind in Kind::ALL {
            assert_eq!(kind.parse(&kind.text(1), 1), Ok(1));
            assert_eq!(kind.parse(&kind.text(3), 2), Err(Refusal::Newer(3)));
            assert!(kind.parse("hello", 1).is_err());
        }
        assert!(Kind::Lmdb.parse(&Kind::Dir.text(1), 1).is_err());
    }

    #[test]
    fn a_rewritten_marker_names_the_new_version_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            ensure_up_to(dir.path(), Kind::Lmdb, 1, 2, FileMode::Umask).unwrap(),
            1
        );
        // Another opener that writes layout 2 reads the existing layout-1 marker.
        assert_eq!(
            ensure_up_to(dir.path(), Kind::Lmdb, 2, 2, FileMode::Umask).unwrap(),
            1
        );
        assert_eq!(
            rewrite(dir.path(), Kind::Lmdb, 2, 2, FileMode::Umask).unwrap(),
            2
        );
        assert_eq!(
            read(&Kind::Lmdb.path_in(dir.path()), Kind::Lmdb, 2).unwrap(),
            Some(2)
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [Kind::Lmdb.file_name()], "{names:?}");
    }

    #[test]
    fn a_directory_of_another_kind_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        refuse_foreign(dir.path(), Kind::Lmdb).unwrap();
        std::fs::write(Kind::Dir.path_in(dir.path()), Kind::Dir.text(1)).unwrap();
        refuse_foreign(dir.path(), Kind::Dir).unwrap();
        let err = refuse_foreign(dir.path(), Kind::Lmdb).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("DirStore") && text.contains("LmdbStore"),
            "{text}"
        );
    }
}
