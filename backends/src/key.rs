//! Showing arbitrary byte keys in messages.

use std::fmt;

/// A key kept for an error message: printed as an escaped byte string (`b"a/\x00"`), cut after
/// 64 bytes so a 4 KiB key does not flood a log.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyDisplay(Vec<u8>);

const SHOWN: usize = 64;

impl KeyDisplay {
    /// Keeps (a prefix of) `key` for display.
    pub fn new(key: &[u8]) -> Self {
        KeyDisplay(key[..key.len().min(SHOWN + 1)].to_vec())
    }

    /// The bytes kept (at most 65).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for KeyDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(SHOWN)];
        write!(f, "b\"{}\"", shown.escape_ascii())?;
        if self.0.len() > SHOWN {
            write!(f, "...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
