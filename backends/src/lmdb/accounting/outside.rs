//! What a store that keeps its values outside LMDB needs of the accounting. DirStore keeps a
//! sidecar `LmdbStore` (`<root>/acct/`) whose values are small records naming each entry
//! file, counted as the entry's value length. It renames and unlinks its files inside the
//! sidecar's write transactions ([`LmdbStore::write_record`]), so the records change in the
//! same order as the files, across processes (LMDB has one writer at a time); a migration
//! adopts the files written before the sidecar existed ([`LmdbStore::adopt`]).

use super::{id_of, Record, BUILD_CHUNK};
use crate::accounting::{Described, Order};
use crate::lmdb::layout::{Check, StoredKey};
use crate::lmdb::{LmdbStore, TxnError};
use crate::Result;

/// What the closure of [`LmdbStore::write_record`] does to the record, once it has done its
/// own part of the write.
#[derive(Debug)]
pub(crate) enum RecordOp {
    /// Leave the record as it is.
    Keep,
    /// Write `value` as the record, counted as `size` bytes with `deadline`.
    Put {
        value: Vec<u8>,
        size: u64,
        deadline: Option<u64>,
    },
    /// Remove the record (and its bookkeeping), if there is one.
    Delete,
}

/// The closure of [`LmdbStore::write_record`]: given the key's current record, does its own
/// part of the write and answers what becomes of the record.
pub(crate) type RecordStep<'a, T> = dyn FnMut(Option<&[u8]>) -> Result<(RecordOp, T)> + 'a;

/// The closure of [`LmdbStore::write_records`]: given a key's index and current record.
pub(crate) type RecordsStep<'a> = dyn FnMut(usize, Option<&[u8]>) -> Result<RecordOp> + 'a;

/// A value written before its store kept records, as a migration adopts it.
#[derive(Debug)]
pub(crate) struct Adopted {
    pub key: Vec<u8>,
    /// The record to write.
    pub value: Vec<u8>,
    /// What the accounting counts it as.
    pub size: u64,
    pub described: Described,
}

impl LmdbStore {
    /// [`crate::accounting::Accounting::keep_order`]; a state written now counts as built only
    /// when `unbuilt` is false and the store holds no record yet.
    pub(crate) fn keep_order_outside(
        &self,
        order: Order,
        unbuilt: bool,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        self.acct
            .keep_order_as(&self.env, order, BUILD_CHUNK, progress, unbuilt)
    }

    /// Runs `f` inside one write transaction with `key`'s current record (`Some(&[])` when
    /// the record is damaged), then does what `f` answers to the record and its bookkeeping
    /// in the same transaction. `f` may run more than once (a retried transaction) and must
    /// then find its own part done.
    pub(crate) fn write_record<T>(&self, key: &[u8], f: &mut RecordStep<'_, T>) -> Result<T> {
        self.acct.write(&self.env, |w| -> Result<T, TxnError> {
            let current = self.current_record(w, key)?;
            let (op, out) = f(current.as_deref()).map_err(TxnError::Store)?;
            self.apply_record(w, key, current.is_some(), op)?;
            Ok(out)
        })
    }

    /// [`LmdbStore::write_record`] for several keys in one write transaction (one commit, so
    /// one sync under `Durability::Flush`): `f` is given each key's index and current record
    /// in turn.
    pub(crate) fn write_records(&self, keys: &[&[u8]], f: &mut RecordsStep<'_>) -> Result<()> {
        self.acct.write(&self.env, |w| -> Result<(), TxnError> {
            for (i, key) in keys.iter().enumerate() {
                let current = self.current_record(w, key)?;
                let op = f(i, current.as_deref()).map_err(TxnError::Store)?;
                self.apply_record(w, key, current.is_some(), op)?;
            }
            Ok(())
        })
    }

    /// `key`'s record in `w`; `Some(empty)` when it is damaged.
    fn current_record(&self, w: &heed::RwTxn<'_>, key: &[u8]) -> Result<Option<Vec<u8>>, TxnError> {
        match self.lookup_in(w, key, Check::Crc) {
            Ok(found) => Ok(found.map(<[u8]>::to_vec)),
            Err(TxnError::Store(e)) if e.is_corrupt() => Ok(Some(Vec::new())),
            Err(e) => Err(e),
        }
    }

    /// Does `op` to `key`'s record (which exists when `present`) and its bookkeeping.
    fn apply_record(
        &self,
        w: &mut heed::RwTxn<'_>,
        key: &[u8],
        present: bool,
        op: RecordOp,
    ) -> Result<(), TxnError> {
        match op {
            RecordOp::Keep => {}
            RecordOp::Put {
                value,
                size,
                deadline,
            } => self.put_in_accounted(w, key, &value, size, deadline)?,
            RecordOp::Delete if present => {
                let stored = StoredKey::new(key);
                self.acct.on_delete(&self.env, w, stored.bytes())?;
                self.data.delete(w, stored.bytes())?;
            }
            RecordOp::Delete => {}
        }
        Ok(())
    }

    /// Adds, in one write transaction, each of `items` whose key has no record yet and that
    /// `still_there` confirms inside that transaction: its record and, while accounting is
    /// on, its bookkeeping, stamped with its write time as [`Accounting::build`] stamps what
    /// it counts. Returns how many were added; none once the accounting is built (whoever
    /// finished the count adopted every value there was).
    ///
    /// [`Accounting::build`]: crate::accounting::Accounting::build
    pub(crate) fn adopt(
        &self,
        items: &[Adopted],
        still_there: &mut dyn FnMut(&Adopted) -> bool,
    ) -> Result<u64> {
        let env = &self.env;
        self.acct.write(env, |w| -> Result<u64, TxnError> {
            let books = self.acct.in_txn(env, w)?;
            let mut st = match &books {
                Some(b) => b.state_if_on(env, w)?,
                None => None,
            };
            if st.is_some_and(|s| s.built) {
                return Ok(0);
            }
            let mut added = 0;
            for item in items {
                let there = self.data.get(w, StoredKey::new(&item.key).bytes())?;
                if there.is_some() || !still_there(item) {
                    continue;
                }
                let stored = self.put_data_in(w, &item.key, &item.value)?;
                if let (Some(books), Some(st)) = (&books, st.as_mut()) {
                    let id = id_of(stored.bytes());
                    let stamp = item.described.created_ms.unwrap_or(0);
                    st.next = st.next.max(stamp.saturating_add(1));
                    let rec = Record {
                        size: item.size,
                        written: stamp,
                        accessed: stamp,
                        hits: 0,
                        expires: item.described.expires_ms,
                        stored: stored.bytes().to_vec(),
                    };
                    books.index(w, &id, &rec, st.indexed())?;
                    st.add(item.size);
                }
                added += 1;
            }
            if let (Some(books), Some(st)) = (&books, &st) {
                books.put_state(w, st)?;
            }
            Ok(added)
        })
    }
}
