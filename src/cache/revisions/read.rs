//! Listing, reading and naming revisions.

use std::path::PathBuf;

use serde::de::DeserializeOwned;

use super::keys::record_key;
use super::manifest::{Entry, Manifest, Place};
use super::{RevisionInfo, RevisionPlace, MAX_NAME_LEN};
use crate::cache::Cache;
use crate::{Error, Result};

impl Cache {
    /// Every revision of `key`, oldest first, the current value last (as
    /// [`RevisionPlace::Current`]); empty when the key has neither a value nor revisions.
    ///
    /// ```
    /// use cacher::{Cache, RevisionPlace, store::MemoryStore};
    ///
    /// let cache = Cache::builder().store(MemoryStore::new()).keep_revisions(5).build()?;
    /// cache.put("page", "v1")?;
    /// cache.put("page", "v2")?;
    /// let revs = cache.revisions("page")?;
    /// assert_eq!(revs.iter().map(|r| r.number).collect::<Vec<_>>(), [1, 2]);
    /// assert_eq!(revs[1].place, RevisionPlace::Current);
    /// assert_eq!(cache.get_revision::<String>("page", 1)?.as_deref(), Some("v1"));
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn revisions(&self, key: impl AsRef<[u8]>) -> Result<Vec<RevisionInfo>> {
        let key = key.as_ref();
        let manifest = self.load_manifest(key)?;
        let mut out = Vec::new();
        let current = self.peek(key)?;
        let current_number = match &current {
            Some((Ok(meta), _)) => Some(meta.revision),
            _ => None,
        };
        for e in manifest.iter().flat_map(|m| &m.entries) {
            let place = match &e.place {
                Place::Current => continue,
                // An unnamed revision evicted by the limits is gone: not listed.
                Place::Store if !self.inner.store.contains(&record_key(key, e.number))? => continue,
                Place::Store => RevisionPlace::Store,
                Place::Archive(file) => RevisionPlace::Archive(self.archive_path(file)?),
            };
            out.push(info(e, place));
        }
        if let (Some((Ok(meta), size)), Some(number)) = (&current, current_number) {
            let name = manifest
                .as_ref()
                .and_then(|m| m.entry(number))
                .filter(|e| e.place == Place::Current)
                .and_then(|e| e.name.clone());
            out.push(RevisionInfo {
                number,
                name,
                time_ms: meta.created_ms,
                size: *size,
                place: RevisionPlace::Current,
            });
        }
        Ok(out)
    }

    /// Reads revision `n` of `key` (an old one, from the store or an archive, or the current
    /// value if it is number `n`); `None` when there is no such revision. History is read
    /// whether or not it has expired; [`Cache::get`] never returns an old revision.
    pub fn get_revision<T: DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
        n: u64,
    ) -> Result<Option<T>> {
        let key = key.as_ref();
        match self.revision_bytes(key, n)? {
            None => Ok(None),
            Some(bytes) => self.decode_revision(key, &bytes).map(Some),
        }
    }

    /// Names revision `n` of `key` (an old one or the current value). A named revision is
    /// pinned: it does not count against `keep_revisions`, is never evicted, and is archived
    /// only by a policy that asks for named revisions. A name is unique per key; naming the
    /// same revision again replaces its name.
    ///
    /// ```
    /// use cacher::{Cache, store::MemoryStore};
    ///
    /// let cache = Cache::builder().store(MemoryStore::new()).keep_revisions(1).build()?;
    /// cache.put("dump", "november")?;
    /// cache.name_revision("dump", 1, "2026-11 dump")?;
    /// for month in ["december", "january", "february"] {
    ///     cache.put("dump", month)?;
    /// }
    /// let nov: Option<String> = cache.get_named_revision("dump", "2026-11 dump")?;
    /// assert_eq!(nov.as_deref(), Some("november"));
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn name_revision(&self, key: impl AsRef<[u8]>, n: u64, name: &str) -> Result<()> {
        let key = key.as_ref();
        let refuse = |message: String| Error::Revision {
            key: cacher_store::KeyDisplay::new(key),
            message,
        };
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(refuse(format!(
                "a revision name is 1 to {MAX_NAME_LEN} bytes, not {}",
                name.len()
            )));
        }
        let _lock = self.lock_revisions(key)?;
        let mut manifest = self
            .load_manifest(key)?
            .unwrap_or_else(|| Manifest::new(key));
        if let Some(other) = manifest
            .entries
            .iter()
            .find(|e| e.name.as_deref() == Some(name) && e.number != n)
        {
            return Err(refuse(format!(
                "the name {name:?} is revision {} already",
                other.number
            )));
        }
        if let Some(e) = manifest.entry_mut(n).filter(|e| e.place != Place::Current) {
            e.name = Some(name.to_string());
            let place = e.place.clone();
            self.save_manifest(&manifest)?;
            if place == Place::Store {
                // Pinned: out of the eviction order.
                self.with_tracker(|t| t.remove(&record_key(key, n)));
            }
            return Ok(());
        }
        match self.peek(key)? {
            Some((Ok(meta), size)) if meta.revision == n && n != 0 => {
                manifest.upsert(Entry {
                    number: n,
                    time_ms: meta.created_ms,
                    size,
                    name: Some(name.to_string()),
                    place: Place::Current,
                });
                self.save_manifest(&manifest)
            }
            _ => Err(refuse(format!("there is no revision {n} to name {name:?}"))),
        }
    }

    /// Reads the revision of `key` named `name` (see [`Cache::name_revision`]).
    pub fn get_named_revision<T: DeserializeOwned>(
        &self,
        key: impl AsRef<[u8]>,
        name: &str,
    ) -> Result<Option<T>> {
        let key = key.as_ref();
        let Some(manifest) = self.load_manifest(key)? else {
            return Ok(None);
        };
        match manifest
            .entries
            .iter()
            .find(|e| e.name.as_deref() == Some(name))
        {
            None => Ok(None),
            Some(e) => self.get_revision(key, e.number),
        }
    }

    /// The stored bytes (an envelope bound to `key`) of revision `n`.
    pub(super) fn revision_bytes(&self, key: &[u8], n: u64) -> Result<Option<Vec<u8>>> {
        if let Some(current) = self.inner.store.get(key)? {
            if self
                .inner
                .codec
                .peek(key, &current)
                .is_ok_and(|m| m.revision == n && n != 0)
            {
                return Ok(Some(current));
            }
        }
        let manifest = self.load_manifest(key)?;
        let place = manifest
            .as_ref()
            .and_then(|m| m.entry(n))
            .map(|e| e.place.clone());
        // The store copy wins: an archive run stopped before it deleted the record leaves an
        // identical copy in both.
        if let Some(bytes) = self.inner.store.get(&record_key(key, n))? {
            return Ok(Some(bytes));
        }
        match place {
            Some(Place::Archive(file)) => self.archived_bytes(key, n, Some(&file)),
            // Not listed in the store, or listed and gone: an archive written by a run that
            // stopped before it updated the manifest may hold it.
            _ if n != 0 => self.archived_bytes(key, n, None),
            _ => Ok(None),
        }
    }

    /// Opens and decodes a revision's envelope with its user key (checksum, key binding, MAC).
    pub(super) fn decode_revision<T: DeserializeOwned>(
        &self,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<T> {
        let (header, payload) = self
            .inner
            .codec
            .open(key, bytes)
            .map_err(|e| Error::format(key, e))?;
        self.inner
            .codec
            .decode(&header, payload)
            .map_err(|e| Error::format(key, e))
    }

    /// The directory archive files of this cache go in: the builder's `archive_dir`, else
    /// `archives` beside the store's lease directory (`<dir>/archives` for a DirStore or an
    /// LMDB environment, `<file>.archives` for a LogStore).
    pub fn archive_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.inner.revisions.archive_dir {
            return Some(dir.clone());
        }
        let leases = self.inner.store.lease_dir()?;
        let name = leases.file_name()?.to_str()?;
        let stem = name.strip_suffix("leases")?;
        Some(leases.with_file_name(format!("{stem}archives")))
    }

    pub(super) fn archive_path(&self, file: &str) -> Result<PathBuf> {
        let dir = self.archive_dir().ok_or_else(no_archive_dir)?;
        Ok(dir.join(file))
    }

    #[cfg(not(feature = "archive"))]
    fn archived_bytes(&self, key: &[u8], n: u64, file: Option<&str>) -> Result<Option<Vec<u8>>> {
        match file {
            None => Ok(None),
            Some(file) => Err(Error::Revision {
                key: cacher_store::KeyDisplay::new(key),
                message: format!(
                    "revision {n} is in archive {file}, and this build has no `archive` feature"
                ),
            }),
        }
    }
}

pub(super) fn no_archive_dir() -> Error {
    Error::Config(
        "this cache's store has no directory for archives: give one with \
         CacheBuilder::archive_dir"
            .into(),
    )
}

fn info(e: &Entry, place: RevisionPlace) -> RevisionInfo {
    RevisionInfo {
        number: e.number,
        name: e.name.clone(),
        time_ms: e.time_ms,
        size: e.size,
        place,
    }
}
