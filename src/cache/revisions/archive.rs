//! Archival: moving old revisions (and, on request, expired values) out of the store into an
//! immutable archive file, reading them from there, and restoring one.
//!
//! # Order of the steps, and what a crash leaves
//!
//! 1. every chosen revision is written into a temp file in the archive directory;
//! 2. the temp file is fsynced and renamed to `<name>.archive.zst` (never over an existing
//!    file), and the directory is fsynced (`ArchiveWriter::finish`);
//! 3. each key's manifest is updated to say where its revisions went;
//! 4. only then are the store's copies deleted (and an archived expired value removed from its
//!    key, if it is still the very bytes archived).
//!
//! Stopped before 2 ends, the store is untouched (a leftover `.archive-*.tmp` file is not an
//! archive and is never read). Stopped between 2 and 3, the revision is in the store and in a
//! complete archive: reads take the store copy (identical). Stopped inside 4, the manifest says
//! "archive" and the store may still hold a copy, which wins; the next [`Cache::archive`]
//! finishes the deletes. No step leaves a revision in neither place.
//!
//! For the crash tests, the environment variable `CACHER_ARCHIVE_ABORT_AT` (`written`,
//! `renamed`, `recorded` or `deleted-one`) aborts the process right after that step.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cacher_store::archive::{train_dictionary, Archive, ArchiveOptions, ArchiveWriter};
use cacher_store::archive::{ArchivedRevision, EXTENSION};

use super::keys::{is_manifest, is_reserved, record_key};
use super::manifest::{Entry, Manifest, Place};
use super::read::no_archive_dir;
use super::write::old_number;
use crate::cache::Cache;
use crate::clock::duration_ms;
use crate::{Error, Result};

/// Which revisions [`Cache::archive`] moves into an archive file.
///
/// Named revisions are pinned: they are archived only with [`ArchivePolicy::with_named`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ArchivePolicy {
    select: Select,
    named: bool,
    expired: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Select {
    OlderThan(Duration),
    BeyondCount(usize),
    Nothing,
}

impl ArchivePolicy {
    /// Old revisions written at least `age` ago.
    pub fn older_than(age: Duration) -> Self {
        ArchivePolicy {
            select: Select::OlderThan(age),
            named: false,
            expired: false,
        }
    }

    /// All but the newest `n` old revisions of each key still in the store.
    pub fn beyond_count(n: usize) -> Self {
        ArchivePolicy {
            select: Select::BeyondCount(n),
            named: false,
            expired: false,
        }
    }

    /// No old revisions: only expired current values (instead of deleting them).
    pub fn expired_entries() -> Self {
        ArchivePolicy {
            select: Select::Nothing,
            named: false,
            expired: true,
        }
    }

    /// Also moves named revisions the policy selects.
    pub fn with_named(mut self) -> Self {
        self.named = true;
        self
    }

    /// Also moves expired current values, which become old revisions of their key (the key
    /// then reads as missing, as an expired key does).
    pub fn with_expired_entries(mut self) -> Self {
        self.expired = true;
        self
    }
}

/// What one [`Cache::archive`] run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiveReport {
    /// The archive file written; `None` when nothing was selected.
    pub archive: Option<PathBuf>,
    /// Keys with revisions in it.
    pub keys: u64,
    /// Revisions in it (expired values included).
    pub revisions: u64,
    /// Expired current values among them.
    pub expired_entries: u64,
    /// Store copies deleted that an earlier, interrupted run had archived already.
    pub finished_deletes: u64,
}

/// One revision chosen for the archive.
struct Chosen {
    number: u64,
    time_ms: u64,
    name: Option<String>,
    bytes: Vec<u8>,
    /// The key's current value (expired), not a revision record.
    current: bool,
}

impl Cache {
    /// Moves the revisions `policy` selects into a new archive file in
    /// [`Cache::archive_dir`] (a zstd file, one compressed frame per key, a trained
    /// dictionary when there are many values; `docs/archive-format.md`). Archived revisions
    /// stay readable through [`Cache::revisions`] and [`Cache::get_revision`];
    /// [`Cache::restore`] brings one back.
    ///
    /// Steps: the archive is written to a temp file, fsynced, renamed into place and its
    /// directory synced; then each key's revision list says "archive"; only then are the
    /// store copies deleted. A crash at any point leaves each revision in the store, in a
    /// complete archive, or both (reads prefer the identical store copy); the next run finishes
    /// what a stopped one left.
    ///
    /// ```
    /// use cacher::{ArchivePolicy, Cache, RevisionPlace, store::DirStore};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let cache = Cache::builder()
    ///     .store(DirStore::open(dir.path().join("store"))?)
    ///     .keep_revisions(10)
    ///     .build()?;
    /// for v in 1..=4 {
    ///     cache.put("k", &v)?;
    /// }
    /// let report = cache.archive(ArchivePolicy::beyond_count(1))?;
    /// assert_eq!(report.revisions, 2); // revisions 1 and 2; 3 stays, 4 is current
    /// assert!(matches!(cache.revisions("k")?[0].place, RevisionPlace::Archive(_)));
    /// assert_eq!(cache.get_revision::<u32>("k", 1)?, Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn archive(&self, policy: ArchivePolicy) -> Result<ArchiveReport> {
        let dir = self.archive_dir().ok_or_else(no_archive_dir)?;
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::Store(cacher_store::Error::io(
                "creating the archive directory",
                &dir,
                e,
            ))
        })?;
        let now = self.now_ms();
        let store = &self.inner.store;
        let keys: Vec<Vec<u8>> = store.keys()?.collect::<Result<_, _>>()?;
        let mut report = ArchiveReport::default();
        let mut plan: Vec<(Vec<u8>, Vec<Chosen>)> = Vec::new();
        let mut seen_manifest = std::collections::HashSet::new();
        for k in &keys {
            if is_manifest(k) {
                let Some(bytes) = store.get(k)? else { continue };
                let manifest = Manifest::decode_stored(k, &bytes)?;
                report.finished_deletes += self.finish_deletes(&manifest)?;
                let chosen = self.choose(&manifest, &policy, now)?;
                seen_manifest.insert(manifest.key.clone());
                if !chosen.is_empty() {
                    plan.push((manifest.key, chosen));
                }
            }
        }
        if policy.expired {
            for k in keys.iter().filter(|k| !is_reserved(k)) {
                let Some(bytes) = store.get(k)? else { continue };
                let Ok(meta) = self.inner.codec.peek(k, &bytes) else {
                    continue;
                };
                if !self.is_expired(&meta, now) {
                    continue;
                }
                let manifest = self.load_manifest(k)?.unwrap_or_else(|| Manifest::new(k));
                let number = old_number(meta.revision, meta.created_ms, &manifest);
                let name = manifest.entry(number).and_then(|e| e.name.clone());
                let chosen = Chosen {
                    number,
                    time_ms: meta.created_ms,
                    name,
                    bytes,
                    current: true,
                };
                match plan.iter_mut().find(|(key, _)| key == k) {
                    Some((_, list)) => list.push(chosen),
                    None => plan.push((k.clone(), vec![chosen])),
                }
                report.expired_entries += 1;
            }
        }
        if plan.is_empty() {
            return Ok(report);
        }
        let path = write_archive(&dir, &plan, now)?;
        crash_point("renamed");
        let file = path
            .file_name()
            .and_then(|f| f.to_str())
            .map(str::to_string)
            .ok_or_else(|| Error::Config(format!("archive path {} has no name", path.display())))?;
        // 3: the manifests say where each revision went, before any store copy goes.
        for (key, chosen) in &plan {
            let _lock = self.lock_revisions(key)?;
            let mut manifest = self
                .load_manifest(key)?
                .unwrap_or_else(|| Manifest::new(key));
            for c in chosen {
                let size = c.bytes.len() as u64;
                let name = c.name.clone();
                manifest.upsert(Entry {
                    number: c.number,
                    time_ms: c.time_ms,
                    size,
                    name,
                    place: Place::Archive(file.clone()),
                });
            }
            self.save_manifest(&manifest)?;
        }
        crash_point("recorded");
        // 4: the store copies.
        let mut first = true;
        for (key, chosen) in &plan {
            for c in chosen {
                if c.current {
                    // Only the bytes archived: a fresh value written since stays.
                    if store.get(key)?.as_deref() == Some(&c.bytes[..]) {
                        store.delete(key)?;
                        self.with_tracker(|t| t.remove(key));
                    }
                } else {
                    let rkey = record_key(key, c.number);
                    store.delete(&rkey)?;
                    self.with_tracker(|t| t.remove(&rkey));
                }
                if std::mem::take(&mut first) {
                    crash_point("deleted-one");
                }
                report.revisions += 1;
            }
            report.keys += 1;
        }
        report.archive = Some(path);
        Ok(report)
    }

    /// Moves archived revision `n` of `key` back into the store (the archive file, immutable,
    /// keeps its copy). Returns false when there is no archived revision `n`.
    pub fn restore(&self, key: impl AsRef<[u8]>, n: u64) -> Result<bool> {
        let key = key.as_ref();
        let _lock = self.lock_revisions(key)?;
        let Some(mut manifest) = self.load_manifest(key)? else {
            return Ok(false);
        };
        let Some(entry) = manifest.entry_mut(n) else {
            return Ok(false);
        };
        let Place::Archive(file) = entry.place.clone() else {
            return Ok(false);
        };
        let Some(bytes) = self.archived_bytes(key, n, Some(&file))? else {
            return Ok(false);
        };
        // The record first, then the manifest that points at it: a crash between leaves the
        // manifest saying "archive" and an identical store copy, which reads prefer.
        let rkey = record_key(key, n);
        self.inner.store.put(&rkey, &bytes)?;
        entry.place = Place::Store;
        let unnamed = entry.name.is_none();
        self.save_manifest(&manifest)?;
        if unnamed {
            self.enforce_limits(&rkey, bytes.len() as u64)?;
        }
        Ok(true)
    }

    /// The bytes of archived revision `n` of `key`: from `file` when the manifest names it,
    /// else from whichever archive in the directory holds it (newest first).
    pub(super) fn archived_bytes(
        &self,
        key: &[u8],
        n: u64,
        file: Option<&str>,
    ) -> Result<Option<Vec<u8>>> {
        let context = |e: cacher_store::Error| Error::Store(e);
        if let Some(file) = file {
            let archive = self
                .inner
                .revisions
                .opened
                .get(file, &self.archive_path(file)?)
                .map_err(context)?;
            return archive.get(key, n).map_err(context);
        }
        let Some(dir) = self.archive_dir() else {
            return Ok(None);
        };
        for path in archives_in(&dir)?.iter().rev() {
            if let Some(bytes) = Archive::open(path)
                .map_err(context)?
                .get(key, n)
                .map_err(context)?
            {
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }

    /// Deletes store copies of revisions the manifest says are archived (left by a run that
    /// stopped in step 4).
    fn finish_deletes(&self, manifest: &Manifest) -> Result<u64> {
        let mut n = 0;
        for e in &manifest.entries {
            if matches!(e.place, Place::Archive(_)) {
                let rkey = record_key(&manifest.key, e.number);
                if self.inner.store.delete(&rkey)? {
                    self.with_tracker(|t| t.remove(&rkey));
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    fn choose(&self, manifest: &Manifest, policy: &ArchivePolicy, now: u64) -> Result<Vec<Chosen>> {
        let mut candidates: Vec<&Entry> = manifest
            .entries
            .iter()
            .filter(|e| e.place == Place::Store && (policy.named || e.name.is_none()))
            .collect();
        candidates.sort_by_key(|e| std::cmp::Reverse(e.number));
        let picked: Vec<&Entry> = match &policy.select {
            Select::Nothing => Vec::new(),
            Select::OlderThan(age) => {
                let age = duration_ms(*age);
                candidates
                    .into_iter()
                    .filter(|e| e.time_ms.saturating_add(age) <= now)
                    .collect()
            }
            Select::BeyondCount(n) => candidates.into_iter().skip(*n).collect(),
        };
        let mut out = Vec::with_capacity(picked.len());
        for e in picked {
            // Evicted or deleted meanwhile: nothing to move.
            let Some(bytes) = self.inner.store.get(&record_key(&manifest.key, e.number))? else {
                continue;
            };
            out.push(Chosen {
                number: e.number,
                time_ms: e.time_ms,
                name: e.name.clone(),
                bytes,
                current: false,
            });
        }
        Ok(out)
    }
}

/// Steps 1 and 2: the archive file, complete and durable, under a new name.
fn write_archive(dir: &Path, plan: &[(Vec<u8>, Vec<Chosen>)], now: u64) -> Result<PathBuf> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "revisions-{now}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let samples: Vec<&[u8]> = plan
        .iter()
        .flat_map(|(_, c)| c.iter().map(|c| &c.bytes[..]))
        .collect();
    let total: usize = samples.iter().map(|s| s.len()).sum();
    let mut options = ArchiveOptions::default();
    // A dictionary pays for itself only over many values; zstd refuses to train on few.
    if samples.len() >= 64 && total >= 64 << 10 {
        if let Ok(dict) = train_dictionary(&samples, 16 << 10) {
            options = options.with_dictionary(dict);
        }
    }
    let store_err = Error::Store;
    let mut writer = ArchiveWriter::create(dir, &name, &options).map_err(store_err)?;
    for (key, chosen) in plan {
        let mut revisions: Vec<ArchivedRevision<'_>> = chosen
            .iter()
            .map(|c| ArchivedRevision {
                revision: c.number,
                time_ms: c.time_ms,
                name: c.name.as_deref(),
                value: &c.bytes,
            })
            .collect();
        revisions.sort_by_key(|r| r.revision);
        writer.add(key, &revisions).map_err(store_err)?;
    }
    crash_point("written");
    writer.finish().map_err(store_err)
}

/// Archive files in `dir`, oldest name first (names start with their creation time).
fn archives_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let listing = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Store(cacher_store::Error::io(
                "listing the archive directory",
                dir,
                e,
            )))
        }
    };
    let suffix = format!(".{EXTENSION}");
    let mut out: Vec<PathBuf> = listing
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(&suffix) && !n.starts_with('.'))
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

/// The crash tests' hook: aborts right after `step` when `CACHER_ARCHIVE_ABORT_AT` names it.
fn crash_point(step: &str) {
    if std::env::var_os("CACHER_ARCHIVE_ABORT_AT").is_some_and(|s| s == step) {
        std::process::abort();
    }
}
