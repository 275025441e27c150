//! A key's revision manifest: which old revisions exist, their numbers, times, sizes, names
//! and where each lives (the store or an archive file). One small record per user key.
//!
//! Layout (little-endian), version 1:
//!
//! ```text
//! "CRVM" | u8 version = 1 | u32 key length | key | u64 last number given out | u32 count
//! count x ( u64 number | u64 time ms | u64 size | u8 place (0 current, 1 store, 2 archive)
//!           | u16 name length | name (UTF-8; length 0 = no name)
//!           | u16 archive length | archive file name (place 2 only) )
//! [8] first 8 bytes of BLAKE3 of everything before
//! ```
//!
//! The manifest is bookkeeping, not the value: a damaged one is an error naming the key, and
//! the revision records themselves are envelopes checked (and MAC'd) like any value.

use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"CRVM";
const VERSION: u8 = 1;

/// Where one revision is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// It is the key's current value (named before it was overwritten).
    Current,
    /// A record in the store.
    Store,
    /// In this archive file (a file name in the archive directory).
    Archive(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub number: u64,
    pub time_ms: u64,
    pub size: u64,
    pub name: Option<String>,
    pub place: Place,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub key: Vec<u8>,
    /// The highest revision number given out for this key (0: none yet).
    pub last: u64,
    /// Sorted by number.
    pub entries: Vec<Entry>,
}

impl Manifest {
    pub fn new(key: &[u8]) -> Self {
        Manifest {
            key: key.to_vec(),
            last: 0,
            entries: Vec::new(),
        }
    }

    pub fn entry(&self, n: u64) -> Option<&Entry> {
        self.entries.iter().find(|e| e.number == n)
    }

    pub fn entry_mut(&mut self, n: u64) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.number == n)
    }

    /// Adds or replaces the entry of its number, keeping the list sorted.
    pub fn upsert(&mut self, entry: Entry) {
        self.last = self.last.max(entry.number);
        match self
            .entries
            .binary_search_by_key(&entry.number, |e| e.number)
        {
            Ok(i) => self.entries[i] = entry,
            Err(i) => self.entries.insert(i, entry),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.key.len() + self.entries.len() * 40);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&(self.key.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.last.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.number.to_le_bytes());
            out.extend_from_slice(&e.time_ms.to_le_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            let (place, archive) = match &e.place {
                Place::Current => (0u8, ""),
                Place::Store => (1, ""),
                Place::Archive(file) => (2, file.as_str()),
            };
            out.push(place);
            let name = e.name.as_deref().unwrap_or("");
            // Names and archive file names are bounded (see `check_name`) to fit a u16.
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(archive.len() as u16).to_le_bytes());
            out.extend_from_slice(archive.as_bytes());
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(&sum.as_bytes()[..8]);
        out
    }

    /// Parses the manifest stored under `store_key`, whichever user key it names (a scan
    /// finds manifests by store key alone); refused unless it is that key's manifest.
    #[cfg_attr(not(feature = "archive"), allow(dead_code))]
    pub fn decode_stored(store_key: &[u8], bytes: &[u8]) -> Result<Manifest> {
        let m = Self::parse(None, bytes)?;
        if super::keys::manifest_key(&m.key) != store_key {
            return Err(Error::Revision {
                key: cacher_store::KeyDisplay::new(&m.key),
                message: "a revision manifest stored under another key's name".into(),
            });
        }
        Ok(m)
    }

    /// Parses a manifest, refusing one that is damaged or belongs to another key.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Manifest> {
        Self::parse(Some(key), bytes)
    }

    fn parse(want: Option<&[u8]>, bytes: &[u8]) -> Result<Manifest> {
        let key = want.unwrap_or(b"");
        let bad = |why: &str| Error::Revision {
            key: cacher_store::KeyDisplay::new(key),
            message: format!("its revision manifest is damaged: {why}"),
        };
        if bytes.len() < 8 + 5 {
            return Err(bad("too short"));
        }
        let (body, sum) = bytes.split_at(bytes.len() - 8);
        if &blake3::hash(body).as_bytes()[..8] != sum {
            return Err(bad("checksum mismatch"));
        }
        let mut r = Reader { bytes: body };
        if r.take(4).ok_or_else(|| bad("truncated"))? != MAGIC {
            return Err(bad("not a manifest (magic)"));
        }
        let version = r.take(1).ok_or_else(|| bad("truncated"))?[0];
        if version != VERSION {
            return Err(bad(&format!(
                "manifest version {version}, this build reads version {VERSION} \
                 (upgrade required if newer)"
            )));
        }
        let key_len = r.u32().ok_or_else(|| bad("truncated"))? as usize;
        let stored_key = r.take(key_len).ok_or_else(|| bad("truncated key"))?;
        if want.is_some_and(|k| k != stored_key) {
            return Err(bad(
                "it names another key (a hash collision or a planted record)",
            ));
        }
        let last = r.u64().ok_or_else(|| bad("truncated"))?;
        let count = r.u32().ok_or_else(|| bad("truncated"))? as usize;
        // Each entry takes at least 29 bytes: a count larger than the bytes left is a lie, and
        // is refused before anything is allocated for it.
        if count > r.bytes.len() / 29 {
            return Err(bad("entry count exceeds its length"));
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let t = || bad("truncated entry");
            let number = r.u64().ok_or_else(t)?;
            let time_ms = r.u64().ok_or_else(t)?;
            let size = r.u64().ok_or_else(t)?;
            let place = r.take(1).ok_or_else(t)?[0];
            let name = r.string().ok_or_else(t)?;
            let archive = r.string().ok_or_else(t)?;
            let place = match place {
                0 => Place::Current,
                1 => Place::Store,
                2 => Place::Archive(archive.ok_or_else(|| bad("archive entry without a file"))?),
                p => return Err(bad(&format!("unknown place {p}"))),
            };
            entries.push(Entry {
                number,
                time_ms,
                size,
                name,
                place,
            });
        }
        if !r.bytes.is_empty() {
            return Err(bad("trailing bytes"));
        }
        entries.sort_by_key(|e| e.number);
        Ok(Manifest {
            key: stored_key.to_vec(),
            last,
            entries,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    /// A u16-length string; `Some(None)` for length 0, `None` when truncated or not UTF-8.
    fn string(&mut self) -> Option<Option<String>> {
        let n = self.u16()? as usize;
        let s = std::str::from_utf8(self.take(n)?).ok()?;
        Some((n > 0).then(|| s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let mut m = Manifest::new(b"user:42");
        for (n, place, name) in [
            (1, Place::Store, None),
            (
                3,
                Place::Archive("rev-1.archive.zst".into()),
                Some("2026-11 dump"),
            ),
            (4, Place::Current, Some("now")),
        ] {
            m.upsert(Entry {
                number: n,
                time_ms: n * 10,
                size: 100 + n,
                name: name.map(str::to_string),
                place,
            });
        }
        m
    }

    #[test]
    fn manifest_round_trips() {
        let m = sample();
        assert_eq!(Manifest::decode(b"user:42", &m.encode()).unwrap(), m);
        assert_eq!(m.last, 4);
    }

    #[test]
    fn damaged_or_foreign_manifest_is_refused_never_misread() {
        let bytes = sample().encode();
        assert!(Manifest::decode(b"user:43", &bytes).is_err());
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(Manifest::decode(b"user:42", &b).is_err(), "flip at {i}");
        }
        for n in 0..bytes.len() {
            assert!(Manifest::decode(b"user:42", &bytes[..n]).is_err());
        }
    }
}
