//! What a layout decoder says when it refuses bytes: damaged, or written by a newer build.
//!
//! Every on-disk layout of this crate (entry files, log records, array values, layout markers)
//! refuses bytes in one of these two ways, and the store adds the path and key. "Upgrade
//! required" stays distinct from "corrupt" so a user knows whether to update the crate or
//! restore the data.

#![allow(
    dead_code,
    reason = "shared helpers; each store adopts them as it is split (issue 17)"
)]

use std::path::Path;

use crate::error::Error;

/// Why a decoder refused some bytes; the caller adds where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The bytes fail a check: the message says which, in words.
    Corrupt(String),
    /// Written by a newer version of the layout than this build reads.
    Newer(u32),
}

impl Refusal {
    /// A corrupt-data refusal.
    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Refusal::Corrupt(reason.into())
    }

    /// The store error for this refusal, for bytes read from `path` (under `key` when known)
    /// by a build that reads layout versions up to `supported`.
    pub(crate) fn into_error(self, path: &Path, key: Option<&[u8]>, supported: u32) -> Error {
        match self {
            Refusal::Corrupt(reason) => Error::corrupt(path, key, reason),
            Refusal::Newer(found) => Error::UpgradeRequired {
                path: path.to_path_buf(),
                found,
                supported,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_is_upgrade_required_and_corrupt_names_the_key() {
        let path = Path::new("/store/file");
        let err = Refusal::Newer(7).into_error(path, None, 2);
        assert!(
            matches!(
                err,
                Error::UpgradeRequired {
                    found: 7,
                    supported: 2,
                    ..
                }
            ),
            "{err}"
        );
        let err = Refusal::corrupt("bad crc").into_error(path, Some(b"k"), 2);
        assert!(err.is_corrupt());
        let text = err.to_string();
        assert!(
            text.contains("bad crc") && text.contains("/store/file"),
            "{text}"
        );
    }
}
