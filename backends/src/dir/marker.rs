//! The store-wide layout marker, `cacher-dir.toml` in the store's root.
//!
//! It names the layout of the whole directory (fan-out, temp directory, entry format), so a
//! future layout is refused on open instead of being misread. Its text is the shared
//! [`crate::marker`] shape, which DirStore's marker has had since its first version:
//!
//! ```text
//! # A cacher DirStore. Do not edit files below this directory by hand.
//! format = "cacher-dir"
//! version = 1
//! ```
//!
//! Versions:
//! - 1: entries in `v1/<2 hex>/<64 hex>`, temp files in `tmp/`, entry files as drawn in
//!   `format.rs`.

use std::io::Write;

use super::write::sync_file;
use super::DirStore;
use crate::fs::{self, Access};
use crate::marker::Kind;
use crate::{Durability, Error, Result};

/// Longer than any marker this layout writes; a longer file is not a marker.
const MARKER_MAX_LEN: usize = 4096;

/// The layout version this build writes and the newest it opens.
pub(super) const LAYOUT_VERSION: u32 = 1;

impl DirStore {
    /// Checks the layout marker; `Ok(false)` when there is none yet. The marker is opened
    /// like an entry (a symlink or FIFO there is [`Error::NotOwned`], never followed or
    /// blocked on) and read up to a small bound.
    pub(super) fn check_marker(&self) -> Result<bool> {
        let marker = Kind::Dir.path_in(&self.root);
        let Some(mut file) = fs::open_regular(&marker, Access::Read)? else {
            return Ok(false);
        };
        let mut buf = [0u8; MARKER_MAX_LEN];
        let got =
            fs::read_up_to(&mut file, &mut buf).map_err(|e| Error::io("reading", &marker, e))?;
        if got == buf.len() {
            return Err(Error::corrupt(
                &marker,
                None,
                format!("longer than the {MARKER_MAX_LEN} bytes a marker may be"),
            ));
        }
        let text = std::str::from_utf8(&buf[..got])
            .map_err(|_| Error::corrupt(&marker, None, "the marker is not UTF-8"))?;
        Kind::Dir
            .parse(text, LAYOUT_VERSION)
            .map(|_| true)
            .map_err(|r| r.into_error(&marker, None, LAYOUT_VERSION))
    }

    /// Writes the layout marker atomically (through `tmp/`), so a concurrent opener sees no
    /// marker or a whole one. Openers racing here write the same text; either rename may win.
    pub(super) fn write_marker(&self) -> Result<()> {
        let marker = Kind::Dir.path_in(&self.root);
        let mut tmp = self.new_temp()?;
        tmp.write_all(Kind::Dir.text(LAYOUT_VERSION).as_bytes())
            .map_err(|e| Error::io("writing", tmp.path().to_path_buf(), e))?;
        if self.durability == Durability::Flush {
            sync_file(&tmp)?;
        }
        tmp.persist(&marker)
            .map_err(|e| Error::io("renaming into place", &marker, e.error))?;
        if self.durability == Durability::Flush {
            // Makes the marker and the new `tmp/` and `v1/` directories durable.
            fs::sync_dir(&self.root)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Refusal;

    #[test]
    fn marker_text_is_byte_for_byte_the_one_every_dir_store_has_written() {
        // The text DirStore wrote before the shared marker module existed.
        let written_since_v1 = "# A cacher DirStore. Do not edit files below this directory \
                                by hand.\nformat = \"cacher-dir\"\nversion = 1\n";
        assert_eq!(Kind::Dir.text(LAYOUT_VERSION), written_since_v1);
        assert_eq!(Kind::Dir.file_name(), "cacher-dir.toml");
    }

    #[test]
    fn marker_round_trips_and_refuses_newer_layouts() {
        let text = Kind::Dir.text(LAYOUT_VERSION);
        assert_eq!(Kind::Dir.parse(&text, LAYOUT_VERSION), Ok(LAYOUT_VERSION));
        let newer = text.replace("version = 1", "version = 7");
        assert_eq!(
            Kind::Dir.parse(&newer, LAYOUT_VERSION),
            Err(Refusal::Newer(7))
        );
        assert!(matches!(
            Kind::Dir.parse("hello", LAYOUT_VERSION),
            Err(Refusal::Corrupt(_))
        ));
        let extended = format!("{newer}format_version = 3\nnew_key = true\n");
        assert_eq!(
            Kind::Dir.parse(&extended, LAYOUT_VERSION),
            Err(Refusal::Newer(7))
        );
    }
}
