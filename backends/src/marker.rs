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
//! (DirStore's `cacher-dir.toml` has had this shape since its first version.) Before opening,
//! a store calls [`refuse_foreign`], which fails with [`Error::WrongLayout`] naming both kinds
//! when another kind's marker is there. Python-written NumpyLmdb directories carry no marker
//! and are recognised by their contents (see the array module).

#![allow(
    dead_code,
    reason = "shared helpers; each store adopts them as it is split (issue 17)"
)]

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::version::Refusal;

/// The kinds of store that mark their directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    Log,
    Lmdb,
    Array,
    NumpyLmdb,
}

impl Kind {
    pub(crate) const ALL: [Kind; 5] = [
        Kind::Dir,
        Kind::Log,
        Kind::Lmdb,
        Kind::Array,
        Kind::NumpyLmdb,
    ];

    /// The `format` value and file stem: `cacher-dir`, `cacher-log`, ...
    pub(crate) fn format(self) -> &'static str {
        match self {
            Kind::Dir => "cacher-dir",
            Kind::Log => "cacher-log",
            Kind::Lmdb => "cacher-lmdb",
            Kind::Array => "cacher-array",
            Kind::NumpyLmdb => "cacher-numpy-lmdb",
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
        format!(
            "# A cacher {}. Do not edit files below this directory by hand.\n\
             format = \"{}\"\n\
             version = {version}\n",
            self.type_name(),
            self.format()
        )
    }

    /// Reads the layout version out of a marker's text; versions above `newest` are
    /// [`Refusal::Newer`].
    pub(crate) fn parse(self, text: &str, newest: u32) -> Result<u32, Refusal> {
        let mut format_ok = false;
        let mut version = None;
        for line in text.lines() {
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            match name.trim() {
                "format" => format_ok = value.trim().trim_matches('"') == self.format(),
                "version" => version = value.trim().parse::<u32>().ok(),
                _ => {}
            }
        }
        match (format_ok, version) {
            (true, Some(v)) if v > newest => Err(Refusal::Newer(v)),
            (true, Some(v)) if v >= 1 => Ok(v),
            _ => Err(Refusal::Corrupt(format!(
                "not a {} marker (expected `format = \"{}\"` and `version = N`)",
                self.type_name(),
                self.format()
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
