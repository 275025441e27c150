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
//! - 2: version 1 with the accounting sidecar `acct/` (`sidecar.rs`), whose records every
//!   write must keep. Written only when accounting is turned on (a limited cache opens the
//!   store), so a store without it stays version 1 and keeps opening with older builds,
//!   while a build that does not know the sidecar refuses a version-2 store as
//!   "upgrade required" instead of writing past its records (the totals would drift
//!   silently). This build reads and writes both.

use std::io::Write;

use super::write::sync_file;
use super::DirStore;
use crate::fs::{self, Access};
use crate::marker::Kind;
use crate::{Durability, Error, Result};

/// Longer than any marker this layout writes; a longer file is not a marker.
const MARKER_MAX_LEN: usize = 4096;

/// The newest layout version this build opens, written when accounting is turned on. A
/// build without the sidecar (no `lmdb` feature) cannot keep its records, so it refuses
/// layout 2 as an older build does.
#[cfg(all(feature = "lmdb", unix))]
pub(super) const LAYOUT_VERSION: u32 = 2;
/// The newest layout version this build opens (no sidecar without the `lmdb` feature).
#[cfg(not(all(feature = "lmdb", unix)))]
pub(super) const LAYOUT_VERSION: u32 = 1;
/// The layout a new store is written with (no sidecar yet).
pub(super) const LAYOUT_PLAIN: u32 = 1;

impl DirStore {
    /// Checks the layout marker and answers its version; `Ok(None)` when there is none yet. The marker is opened
    /// like an entry (a symlink or FIFO there is [`Error::NotOwned`], never followed or
    /// blocked on) and read up to a small bound.
    pub(super) fn check_marker(&self) -> Result<Option<u32>> {
        let marker = Kind::Dir.path_in(&self.root);
        let Some(mut file) = fs::open_regular(&marker, Access::Read)? else {
            return Ok(None);
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
            .map(Some)
            .map_err(|r| r.into_error(&marker, None, LAYOUT_VERSION))
    }

    /// Writes the layout marker atomically (through `tmp/`), so a concurrent opener sees no
    /// marker or a whole one. Openers racing here write the same text; either rename may win.
    pub(super) fn write_marker(&self, version: u32) -> Result<()> {
        let marker = Kind::Dir.path_in(&self.root);
        let mut tmp = self.new_temp()?;
        tmp.write_all(Kind::Dir.text(version).as_bytes())
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
        assert_eq!(Kind::Dir.text(LAYOUT_PLAIN), written_since_v1);
        assert_eq!(Kind::Dir.file_name(), "cacher-dir.toml");
    }

    #[test]
    fn a_build_that_reads_only_layout_1_refuses_a_store_with_the_sidecar() {
        // What every build before the sidecar checks: `parse(text, 1)`, whose `Newer` is
        // `Error::UpgradeRequired` (`Refusal::into_error`).
        let v2 = Kind::Dir.text(2);
        assert_eq!(Kind::Dir.parse(&v2, 1), Err(Refusal::Newer(2)));
        let e = Refusal::Newer(2).into_error(std::path::Path::new("m"), None, 1);
        assert!(matches!(e, Error::UpgradeRequired { .. }), "{e}");
        assert_eq!(Kind::Dir.parse(&Kind::Dir.text(LAYOUT_PLAIN), 1), Ok(1));
    }

    #[test]
    fn marker_round_trips_and_refuses_newer_layouts() {
        let text = Kind::Dir.text(LAYOUT_PLAIN);
        assert_eq!(Kind::Dir.parse(&text, LAYOUT_VERSION), Ok(LAYOUT_PLAIN));
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
