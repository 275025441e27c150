//! Where entries live: `v1/<2 hex>/<64 hex>`, the checks that keep every access inside the
//! store, and the walk over the entries.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::DirStore;
use crate::fs::{self, Access};
use crate::{Durability, Error, Result};

/// Which of the 256 fan-out directories a handle has seen to be real directories (not
/// symlinks), so each is checked once per handle rather than once per access.
///
/// A symlink planted as `v1/xx/` would make a rename into it write outside the store; the
/// check on first use refuses it. A directory swapped for a symlink *after* that check is
/// beyond what the store defends against: whoever can do that can rewrite the entries too.
#[derive(Debug, Default)]
pub(super) struct Fanouts([AtomicU64; 4]);

impl Fanouts {
    fn is_known(&self, byte: u8) -> bool {
        self.0[usize::from(byte / 64)].load(Ordering::Relaxed) & (1 << (byte % 64)) != 0
    }

    fn mark(&self, byte: u8) {
        self.0[usize::from(byte / 64)].fetch_or(1 << (byte % 64), Ordering::Relaxed);
    }
}

impl DirStore {
    /// `key`'s entry path and the index of its fan-out directory.
    pub(super) fn locate(&self, key: &[u8]) -> (PathBuf, u8) {
        let hash = blake3::hash(key);
        let hex = hash.to_hex();
        (
            self.entries.join(&hex[..2]).join(hex.as_str()),
            hash.as_bytes()[0],
        )
    }

    /// Opens `key`'s entry file for reading, after checking its fan-out directory; `Ok(None)`
    /// when there is no entry. Anything but a regular file there is [`Error::NotOwned`].
    pub(super) fn open_key(&self, key: &[u8]) -> Result<Option<(PathBuf, File)>> {
        let (path, fanout) = self.locate(key);
        if !self.fanout_exists(&path, fanout)? {
            return Ok(None);
        }
        Ok(self.open_entry(&path)?.map(|file| (path, file)))
    }

    /// Opens an entry file for reading: never through a symlink, never blocking on a FIFO.
    pub(super) fn open_entry(&self, path: &Path) -> Result<Option<File>> {
        fs::open_regular(path, Access::Read)
    }

    /// Whether the fan-out directory of `entry` exists, refusing one that is not a real
    /// directory.
    fn fanout_exists(&self, entry: &Path, fanout: u8) -> Result<bool> {
        if self.fanouts.is_known(fanout) {
            return Ok(true);
        }
        let dir = fanout_of(entry);
        match std::fs::symlink_metadata(dir) {
            Ok(_) => {
                fs::check_dir(dir)?;
                self.fanouts.mark(fanout);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("reading the metadata of", dir, e)),
        }
    }

    /// Makes sure the fan-out directory of `entry` is a real directory of the store before
    /// anything is renamed into it, creating it (durably under [`Durability::Flush`]) when
    /// missing.
    pub(super) fn ready_fanout(&self, entry: &Path) -> Result<()> {
        let fanout = self.fanout_index(entry);
        if self.fanout_exists(entry, fanout)? {
            return Ok(());
        }
        fs::ensure_dir(fanout_of(entry), self.file_mode)?;
        if self.durability != Durability::None {
            fs::sync_dir(&self.entries)?;
        }
        self.fanouts.mark(fanout);
        Ok(())
    }

    /// The fan-out index of an entry path made by [`DirStore::locate`].
    fn fanout_index(&self, entry: &Path) -> u8 {
        entry
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.get(..2))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .unwrap_or_default()
    }

    /// Every entry file, walking the fan-out directories lazily; temp files live in `tmp/`
    /// and names that are not entries are skipped. A fan-out name that is not a real
    /// directory (a planted symlink) is an `Err` item naming it, and is not followed.
    pub(super) fn entry_files(&self) -> Result<impl Iterator<Item = Result<PathBuf>> + '_> {
        let mut fanouts = Vec::new();
        let listing =
            std::fs::read_dir(&self.entries).map_err(|e| Error::io("listing", &self.entries, e))?;
        for entry in listing {
            let entry = entry.map_err(|e| Error::io("listing", &self.entries, e))?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| is_hex(n, 2)) {
                let path = entry.path();
                // `file_type` does not follow symlinks.
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                fanouts.push(if is_dir {
                    Ok(path)
                } else {
                    fs::check_dir(&path).map(|()| path)
                });
            }
        }
        fanouts.sort_by(|a, b| match (a, b) {
            (Ok(a), Ok(b)) => a.cmp(b),
            (Err(_), Ok(_)) => std::cmp::Ordering::Less,
            (Ok(_), Err(_)) => std::cmp::Ordering::Greater,
            (Err(_), Err(_)) => std::cmp::Ordering::Equal,
        });
        Ok(fanouts.into_iter().flat_map(|dir| {
            let dir = match dir {
                Ok(dir) => dir,
                Err(e) => return Box::new(std::iter::once(Err(e))) as Box<dyn Iterator<Item = _>>,
            };
            let listing = match std::fs::read_dir(&dir) {
                Ok(l) => l,
                // Removed by hand since the listing: nothing in it to report.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Box::new(std::iter::empty())
                }
                Err(e) => return Box::new(std::iter::once(Err(Error::io("listing", &dir, e)))),
            };
            Box::new(listing.filter_map(move |entry| match entry {
                Err(e) => Some(Err(Error::io("listing", &dir, e))),
                Ok(entry) => {
                    let name = entry.file_name();
                    name.to_str()
                        .is_some_and(|n| is_hex(n, 64))
                        .then(|| Ok(entry.path()))
                }
            }))
        }))
    }
}

fn fanout_of(entry: &Path) -> &Path {
    entry
        .parent()
        .expect("entry paths have a fan-out directory")
}

fn is_hex(name: &str, len: usize) -> bool {
    name.len() == len && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
