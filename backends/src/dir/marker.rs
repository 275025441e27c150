//! The store-wide layout marker, `cacher-dir.toml` (its text is described in `format.rs`).

use std::fs;
use std::io::{self, Write};

use tempfile::NamedTempFile;

use super::format;
use super::read::fault_error;
use super::write::{sync_dir, sync_file};
use super::DirStore;
use crate::{Durability, Error, Result};

impl DirStore {
    /// Checks the layout marker; `Ok(false)` when there is none yet.
    pub(super) fn check_marker(&self) -> Result<bool> {
        let marker = self.root.join(format::MARKER_NAME);
        match fs::read_to_string(&marker) {
            Ok(text) => format::parse_marker(&text)
                .map(|_| true)
                .map_err(|f| fault_error(f, &marker, None, format::LAYOUT_VERSION)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Err(Error::corrupt(&marker, None, "the marker is not UTF-8"))
            }
            Err(e) => Err(Error::io("reading", &marker, e)),
        }
    }

    /// Writes the layout marker atomically (through `tmp/`), so a concurrent opener sees no
    /// marker or a whole one. Openers racing here write the same text; either rename may win.
    pub(super) fn write_marker(&self) -> Result<()> {
        let marker = self.root.join(format::MARKER_NAME);
        let mut tmp = NamedTempFile::new_in(&self.tmp)
            .map_err(|e| Error::io("creating a temp file in", &self.tmp, e))?;
        tmp.write_all(format::marker_text().as_bytes())
            .map_err(|e| Error::io("writing", tmp.path().to_path_buf(), e))?;
        if self.durability == Durability::Flush {
            sync_file(&tmp)?;
        }
        tmp.persist(&marker)
            .map_err(|e| Error::io("renaming into place", &marker, e.error))?;
        if self.durability == Durability::Flush {
            // Makes the marker and the new `tmp/` and `v1/` directories durable.
            sync_dir(&self.root)?;
        }
        Ok(())
    }
}
