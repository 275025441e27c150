//! Eviction accounting of a [`DirStore`] (feature `lmdb`): its sidecar's (`sidecar.rs`), the
//! same books HybridStore keeps in its index, with each entry counted as its value's length
//! and the files of evicted or expired entries removed after their records are gone, only
//! when they are still the files the records named.
//!
//! # Removing exactly the recorded file
//! An eviction deletes the records in the sidecar's transaction; a writer in another process
//! may rename a newer file over the path right after that commit. So the file is not
//! unlinked by path: it is renamed into `tmp/` under a name only the store makes
//! (`evict-XXXXXX`), and its inode, modification time and length are compared with the
//! record's. When they match, it goes. When not, the file taken is a newer one: inside a
//! sidecar write transaction (where no other handle can rename into the path), it is put back
//! (`renameat2(RENAME_NOREPLACE)`) if its record is the key's current one, and removed if
//! that record is gone or names yet another file (it was superseded or deleted meanwhile). A
//! reader in that instant sees a miss, never another value.

use std::path::Path;

use super::read::{Check, Target};
use super::sidecar::{record_size, EntryRecord, FileId};
use super::{DirStore, EVICT_PREFIX};
use crate::accounting::{Accounting, Described, EntryAccount, EvictPlan, Order, Totals};
use crate::lmdb::{Adopted, LmdbStore, RecordOp, Removed};
use crate::{Error, Result, Store};

/// Entry files read per sidecar transaction by a migration.
const ADOPT_CHUNK: usize = 1024;

/// A test's hook, given each victim's key.
#[cfg(test)]
pub(super) type Hook = Box<dyn FnMut(&[u8])>;

#[cfg(test)]
thread_local! {
    /// Runs between an eviction's commit and the removal of each victim's file (tests put a
    /// newer value there).
    pub(super) static AFTER_EVICT_COMMIT: std::cell::RefCell<Option<Hook>> =
        std::cell::RefCell::new(None);
}

/// The record of an evicted or expired entry: what `extract` keeps of it.
fn keep_record(raw: &[u8]) -> Option<Vec<u8>> {
    Some(raw.to_vec())
}

/// A sidecar record's value size, for the count of records written while accounting was off.
fn view(raw: &[u8]) -> (u64, Option<&[u8]>) {
    (record_size(raw), None)
}

impl DirStore {
    /// Removes the file an evicted record named, then reports its key (see the module docs).
    fn removed(&self, side: &LmdbStore, (key, record): Removed, report: &mut dyn FnMut(&[u8])) {
        #[cfg(test)]
        AFTER_EVICT_COMMIT.with(|h| {
            if let Some(hook) = h.borrow_mut().as_mut() {
                hook(&key);
            }
        });
        if let Some(id) = record.as_deref().and_then(EntryRecord::file_of) {
            // Best effort: a file left behind is counted again by a rebuild.
            let _ = self.remove_recorded(side, &key, &id);
        }
        report(&key);
    }

    /// Takes `key`'s file away into `tmp/` and removes it when it is the one `id` names.
    fn remove_recorded(&self, side: &LmdbStore, key: &[u8], id: &FileId) -> Result<()> {
        let path = self.entry_path(key);
        let Some(away) = take_away(&self.tmp, &path)? else {
            return Ok(());
        };
        // Locked until it is removed or put back, so the stale-temp cleanup of another handle
        // leaves it alone (a file taken by mistake may be another writer's new value).
        let held = crate::fs::open_regular(&away, crate::fs::Access::Read)
            .ok()
            .flatten();
        if let Some(file) = &held {
            let _ = file.try_lock();
        }
        let taken = FileId::at(&away)?;
        if taken.as_ref() == Some(id) {
            return remove(&away);
        }
        // A newer file: back in place if it is still the key's recorded one.
        side.write_record(key, &mut |current| {
            let recorded = current.and_then(EntryRecord::file_of);
            if recorded.is_some() && recorded == taken {
                put_back(&away, &path)?;
            } else {
                remove(&away)?;
            }
            Ok((RecordOp::Keep, ()))
        })
    }

    /// Counts the entry files written before the sidecar held records for them, in chunks
    /// (see [`Accounting::build`]); `describe` is lent each value (mapped when large).
    fn adopt_files(
        &self,
        side: &LmdbStore,
        describe: &mut dyn FnMut(&[u8], &[u8]) -> Described,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let mut added = 0;
        let mut looked = 0;
        let mut chunk = Vec::with_capacity(ADOPT_CHUNK);
        let mut still_there = |item: &Adopted| {
            let path = self.entry_path(&item.key);
            let now = FileId::at(&path).ok().flatten();
            now.is_some() && now == EntryRecord::file_of(&item.value)
        };
        for path in self.entry_files()? {
            // A fan-out that is not a directory holds nothing of ours to count.
            let Ok(path) = path else { continue };
            looked += 1;
            if let Some(item) = self.describe_file(&path, describe)? {
                chunk.push(item);
            }
            if chunk.len() >= ADOPT_CHUNK {
                added += side.adopt(&chunk, &mut still_there)?;
                chunk.clear();
                progress(looked);
            }
        }
        added += side.adopt(&chunk, &mut still_there)?;
        Ok(added)
    }

    /// What a migration adopts of one entry file: `None` for one that went away or cannot be
    /// read (`verify` reports it; it is not a value to count).
    fn describe_file(
        &self,
        path: &Path,
        describe: &mut dyn FnMut(&[u8], &[u8]) -> Described,
    ) -> Result<Option<Adopted>> {
        let Ok(Some(file)) = self.open_entry(path) else {
            return Ok(None);
        };
        let Ok(id) = FileId::of_file(&file, path) else {
            return Ok(None);
        };
        let Ok((key, value)) =
            self.load(file, path, None, Check::SkipMappedValue, Target::ViewOrCopy)
        else {
            return Ok(None);
        };
        let described = describe(&key, &value);
        let size = value.len() as u64;
        let record = EntryRecord {
            file: id,
            value_len: size,
        };
        Ok(Some(Adopted {
            key,
            value: record.encode(),
            size,
            described,
        }))
    }

    /// Whether an entry file may exist (one is found in the fan-out directories): a sidecar
    /// made now has records to catch up on.
    fn has_entry_files(&self) -> Result<bool> {
        Ok(self.entry_files()?.any(|p| p.is_ok()))
    }

    /// Recounts the accounting from the entry files (a one-time scan, as
    /// [`Accounting::build`]): for a store whose totals drifted after a crash between a
    /// file's rename and its record (see the module docs of the sidecar), or one written by
    /// a handle that did not see the sidecar appear. Records whose file is gone are removed,
    /// then files without a record are counted. Returns how many files were counted anew.
    ///
    /// ```
    /// use cacher_store::accounting::Accounting;
    /// use cacher_store::{DirStore, Store};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = DirStore::open(dir.path())?;
    /// store.put(b"k", b"12345")?;
    /// let acct = store.accounting().expect("with the lmdb feature");
    /// acct.build(&mut |_, _| Default::default(), &mut |_| {})?;
    /// assert_eq!(store.rebuild_accounting()?, 0);
    /// assert_eq!(acct.totals()?.bytes, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rebuild_accounting(&self) -> Result<u64> {
        let side = self.ensure_sidecar()?;
        let mut stale = Vec::new();
        for key in side.keys()? {
            let Ok(key) = key else { continue };
            let mut record = None;
            side.with_value(&key, &mut |raw| record = EntryRecord::file_of(raw))?;
            let now = FileId::at(&self.entry_path(&key))?;
            if record.is_none() || now != record {
                stale.push(key);
            }
        }
        for key in stale {
            side.write_record(&key, &mut |current| {
                let now = FileId::at(&self.entry_path(&key))?;
                let recorded = current.and_then(EntryRecord::file_of);
                let op = if recorded.is_some() && now == recorded {
                    RecordOp::Keep
                } else {
                    RecordOp::Delete
                };
                Ok((op, ()))
            })?;
        }
        let mut added = 0;
        for path in self.entry_files()? {
            let Ok(path) = path else { continue };
            let Some(item) = self.describe_file(&path, &mut |_, _| Described::default())? else {
                continue;
            };
            let (key, id) = (item.key.clone(), EntryRecord::file_of(&item.value));
            added += side.write_record(&key, &mut |current| {
                let now = FileId::at(&self.entry_path(&key))?;
                if current.is_some() || now.is_none() || now != id {
                    return Ok((RecordOp::Keep, 0));
                }
                let put = RecordOp::Put {
                    value: item.value.clone(),
                    size: item.size,
                    deadline: item.described.expires_ms,
                };
                Ok((put, 1))
            })?;
        }
        Ok(added)
    }
}

impl Accounting for DirStore {
    fn totals(&self) -> Result<Totals> {
        match self.sidecar()? {
            Some(side) => side.totals(),
            None => Ok(Totals::default()),
        }
    }

    /// Makes the sidecar (`acct/`, marker version 2) and turns its accounting on.
    fn enable(&self) -> Result<()> {
        self.keep_order(Order::Lru, &mut |_| {})
    }

    fn keep_order(&self, order: Order, progress: &mut dyn FnMut(u64)) -> Result<()> {
        let side = self.ensure_sidecar()?;
        // Only a state written now takes this: one that is on already (built, or holding
        // entries) keeps its own, so an open of a counted store looks at no file.
        let t = side.totals()?;
        let unbuilt = !t.built && t.entries == 0 && self.has_entry_files()?;
        side.keep_order_outside(order, unbuilt, progress)
    }

    fn build(
        &self,
        describe: &mut dyn FnMut(&[u8], &[u8]) -> Described,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let side = self.ensure_sidecar()?;
        // On if off, counted as built only when there is nothing to count.
        let t = side.totals()?;
        let unbuilt = !t.built && t.entries == 0 && self.has_entry_files()?;
        side.keep_order_outside(Order::Lru, unbuilt, &mut |_| {})?;
        if side.totals()?.built {
            return Ok(0);
        }
        let adopted = self.adopt_files(side, describe, progress)?;
        // Records written while accounting was off are counted too, and the count is done.
        let counted = side.build_viewing(&view, &mut |_, _| Described::default(), progress)?;
        Ok(adopted + counted)
    }

    fn record_access(&self, reads: &[(&[u8], u32)]) -> Result<()> {
        match self.sidecar()? {
            Some(side) => side.record_access(reads),
            None => Ok(()),
        }
    }

    fn evict(&self, plan: &EvictPlan<'_>, on_evicted: &mut dyn FnMut(&[u8])) -> Result<u64> {
        let Some(side) = self.sidecar()? else {
            return Ok(0);
        };
        side.evict_extracting(plan, Some(&keep_record), &mut |r| {
            self.removed(side, r, on_evicted)
        })
    }

    fn remove_expired(&self, now_ms: u64, on_removed: &mut dyn FnMut(&[u8])) -> Result<u64> {
        let Some(side) = self.sidecar()? else {
            return Ok(0);
        };
        side.remove_expired_extracting(now_ms, Some(&keep_record), &mut |r| {
            self.removed(side, r, on_removed)
        })
    }

    fn undated(&self, after: Option<u64>, limit: usize) -> Result<Vec<(Vec<u8>, u64)>> {
        match self.sidecar()? {
            Some(side) => side.undated(after, limit),
            None => Ok(Vec::new()),
        }
    }

    fn remove_if_written(&self, key: &[u8], written: u64) -> Result<bool> {
        let Some(side) = self.sidecar()? else {
            return Ok(false);
        };
        side.remove_if_written_extracting(key, written, Some(&keep_record), &mut |r| {
            self.removed(side, r, &mut |_| {})
        })
    }

    fn entry(&self, key: &[u8]) -> Result<Option<EntryAccount>> {
        match self.sidecar()? {
            Some(side) => side.entry(key),
            None => Ok(None),
        }
    }
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io("removing an evicted entry", path, e))
        }
        _ => Ok(()),
    }
}

/// Moves a file taken by mistake back to its entry path, unless a newer one is there already
/// (then the one taken was superseded and goes).
fn put_back(away: &Path, path: &Path) -> Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use rustix::io::Errno;
    match renameat_with(CWD, away, CWD, path, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => remove(away),
        // No renameat2 here: nothing can have been renamed into the path inside this
        // transaction but by a handle without the sidecar; a plain rename is the next best.
        Err(Errno::INVAL | Errno::NOSYS) => {
            std::fs::rename(away, path).map_err(|e| Error::io("putting an entry back", path, e))
        }
        Err(e) => Err(Error::io("putting an entry back", path, e.into())),
    }
}

/// Six characters from `[A-Za-z0-9]` (the shape the stale-temp cleanup knows), from this
/// process's id, the clock and a counter: unique enough that the no-replace rename taking a
/// file away almost never has to try again.
fn random_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static TAKEN: AtomicU64 = AtomicU64::new(0);
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let mut seed = [0u8; 20];
    seed[..4].copy_from_slice(&std::process::id().to_le_bytes());
    seed[4..12].copy_from_slice(&nanos.to_le_bytes());
    seed[12..].copy_from_slice(&TAKEN.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    blake3::hash(&seed).as_bytes()[..6]
        .iter()
        .map(|b| char::from(CHARS[usize::from(*b) % CHARS.len()]))
        .collect()
}

/// Renames `path` to a new `tmp/evict-XXXXXX` name, never over another file; `None` when
/// there is nothing at `path`.
fn take_away(tmp: &Path, path: &Path) -> Result<Option<std::path::PathBuf>> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use rustix::io::Errno;
    for _ in 0..8 {
        let away = tmp.join(format!("{EVICT_PREFIX}{}", random_suffix()));
        match renameat_with(CWD, path, CWD, &away, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(Some(away)),
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::EXIST) => continue,
            // No renameat2: the names are unique to this process and call.
            Err(Errno::INVAL | Errno::NOSYS) => {
                return match std::fs::rename(path, &away) {
                    Ok(()) => Ok(Some(away)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io("taking an evicted entry away", path, e)),
                }
            }
            Err(e) => return Err(Error::io("taking an evicted entry away", path, e.into())),
        }
    }
    Err(Error::io(
        "taking an evicted entry away",
        path,
        std::io::Error::other("no free temp name"),
    ))
}
