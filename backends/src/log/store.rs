//! The [`Store`] methods of [`LogStore`], each a thin call into the module that holds its work.

use std::io::Read;

use super::record::Kind;
use super::LogStore;
use crate::{Blob, EntryMeta, Error, Result, Store, VerifyReport};

impl Store for LogStore {
    fn lease_dir(&self) -> Option<std::path::PathBuf> {
        Some(crate::lease::beside(&self.path))
    }
    crate::lease::lease_from_kept!(leases);
    /// Lends the value from the map after checking its record checksum (straight from the
    /// map for values up to 1 MiB, with positioned reads beyond, so no page of a large value
    /// is faulted in by the check).
    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        let Some(found) = self.locate(key)? else {
            return Ok(None);
        };
        self.check(key, &found)?;
        let range = found.range();
        Ok(Some(Blob::mapped(found.map, range)))
    }

    /// Streams the value through the file descriptor in pieces (no map, so memory stays at
    /// the caller's buffer whatever the value's size): the header and key are checked before
    /// it returns, the record checksum by the end of the stream, where damage is an
    /// `InvalidData` error instead of the end.
    fn read_stream(&self, key: &[u8]) -> Result<Option<crate::ValueReader>> {
        self.stream(key)
    }

    /// Lends the value from the map without checking it (the scan at open checked it): for
    /// callers that check the bytes themselves, as the `Cache` envelope does.
    fn read_unchecked(&self, key: &[u8]) -> Result<Option<Blob>> {
        Ok(self.locate(key)?.map(|found| {
            let range = found.range();
            Blob::mapped(found.map, range)
        }))
    }

    /// Lends [`Store::read_unchecked`]'s view straight from the map, without the record
    /// checksum: for the `Cache`, whose envelope checks every byte of the value against its
    /// own CRCs and its key binding, so the record checksum was a second pass over the same
    /// bytes on every hit. Still checked: the key's index entry and that the value lies
    /// inside the map (no read reaches outside it); a key whose newest record was found
    /// damaged is an error as on the checked path.
    fn with_value_unchecked(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        match self.locate(key)? {
            Some(found) => {
                f(&found.map[found.range()]);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut slot = self.writer_slot();
        self.append(&mut slot, "put", &[(Kind::Put, key, value)])
    }

    /// Streams the value into the log: a placeholder header, the value in chunks (checksummed
    /// on the way), then the real header written over the placeholder. A crash midway leaves
    /// a torn tail that the next open cuts.
    fn put_reader(&self, key: &[u8], reader: &mut dyn Read) -> Result<u64> {
        self.append_stream(key, reader)
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        let mut slot = self.writer_slot();
        self.writable(&mut slot, "delete")?;
        // The writer's index is complete, so a key it lacks needs no tombstone.
        if !self.state().index.contains_key(key) {
            return Ok(false);
        }
        self.append(&mut slot, "delete", &[(Kind::Tombstone, key, &[])])?;
        Ok(true)
    }

    fn keys(&self) -> Result<Box<dyn Iterator<Item = Result<Vec<u8>>> + '_>> {
        self.refresh()?;
        let keys: Vec<Vec<u8>> = self.state().index.keys().map(|k| k.to_vec()).collect();
        Ok(Box::new(keys.into_iter().map(Ok)))
    }

    fn flush(&self) -> Result<()> {
        let slot = self.writer_slot();
        if slot.is_some() {
            self.background_sync_error()?;
            let (file, end, generation) = {
                let st = self.state();
                (st.file.clone(), st.end, st.generation)
            };
            file.sync_data()
                .map_err(|e| Error::io("syncing", &self.path, e))?;
            if let Some(syncer) = &self.syncer {
                syncer
                    .synced(&file, end, generation)
                    .map_err(|e| Error::io("writing", syncer.marker_path(), e))?;
            }
        }
        Ok(())
    }

    fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.loc(key)?.is_some())
    }

    fn meta(&self, key: &[u8]) -> Result<Option<EntryMeta>> {
        Ok(self.loc(key)?.map(|l| EntryMeta::new(l.value_len)))
    }

    /// Appends every record (one write per MiB of small records) and syncs once. Each record
    /// is atomic on its own; a crash midway can keep a prefix of the batch, never a torn record.
    /// A write that fails midway (the disk is full) returns the error and keeps the records
    /// written whole before it, since another handle may already have read them.
    fn put_many(&self, entries: &[(&[u8], &[u8])]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let batch: Vec<(Kind, &[u8], &[u8])> =
            entries.iter().map(|&(k, v)| (Kind::Put, k, v)).collect();
        let mut slot = self.writer_slot();
        self.append(&mut slot, "put_many", &batch)
    }

    /// Checks every live record against its checksum (values over 1 MiB through a small
    /// buffer, so memory stays bounded) and reports each damaged key, including a key whose
    /// newest record a read-only handle found damaged at the end of the log.
    fn verify(&self) -> Result<VerifyReport> {
        self.refresh()?;
        let (keys, damaged) = {
            let st = self.state();
            let keys: Vec<Box<[u8]>> = st.index.keys().map(Box::from).collect();
            let damaged: Vec<(Box<[u8]>, u64)> =
                st.damaged.iter().map(|(k, &o)| (k.clone(), o)).collect();
            (keys, damaged)
        };
        let mut report = VerifyReport::default();
        for (key, offset) in damaged {
            report.checked += 1;
            let error = self.damaged_error(&key, offset);
            report.damaged.push((key.into_vec(), error));
        }
        for key in keys {
            let checked = match self.locate(&key) {
                Ok(Some(found)) => self.check(&key, &found),
                // Deleted since the keys were listed.
                Ok(None) => continue,
                Err(e) => Err(e),
            };
            report.checked += 1;
            match checked {
                Ok(()) => {}
                Err(e) if e.is_corrupt() => report.damaged.push((key.into_vec(), e)),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// The writer's books (`backends/src/log/books.rs`): totals and write order from the log,
    /// reads in the access sidecar. A read-only handle has none.
    fn accounting(&self) -> Option<&dyn crate::accounting::Accounting> {
        (!self.options.read_only).then_some(self as &dyn crate::accounting::Accounting)
    }

    fn len(&self) -> Result<u64> {
        self.refresh()?;
        Ok(self.state().index.len() as u64)
    }
}
