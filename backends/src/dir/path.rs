//! Where entries live: `v1/<2 hex>/<64 hex>`, and the walk over them.

use std::fs;
use std::io;
use std::path::PathBuf;

use super::DirStore;
use crate::{Error, Result};

impl DirStore {
    /// Every entry file, walking the fan-out directories lazily; temp files live in `tmp/`
    /// and names that are not entries are skipped.
    pub(super) fn entry_files(&self) -> Result<impl Iterator<Item = Result<PathBuf>> + '_> {
        let mut fanouts = Vec::new();
        let listing =
            fs::read_dir(&self.entries).map_err(|e| Error::io("listing", &self.entries, e))?;
        for entry in listing {
            let entry = entry.map_err(|e| Error::io("listing", &self.entries, e))?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| is_hex(n, 2)) {
                fanouts.push(entry.path());
            }
        }
        fanouts.sort();
        Ok(fanouts.into_iter().flat_map(|dir| {
            let listing = match fs::read_dir(&dir) {
                Ok(l) => l,
                // Removed by hand since the listing: nothing in it to report.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Box::new(std::iter::empty()) as Box<dyn Iterator<Item = _>>
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

fn is_hex(name: &str, len: usize) -> bool {
    name.len() == len && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
