//! The bookkeeping itself ([`Books`]): what each write, eviction, expiry pass, order build
//! and migration does inside its transaction.

use super::*;

impl Books {
    /// The state, `None` while accounting is off.
    pub(super) fn state_if_on(
        &self,
        env: &LmdbEnv,
        txn: &RoTxn<'_>,
    ) -> Result<Option<State>, TxnError> {
        let Some(raw) = self.db.get(txn, STATE_KEY)? else {
            return Ok(None);
        };
        State::decode(raw)
            .map(Some)
            .map_err(|r| TxnError::Store(r.into_error(env.path(), None, ACCT_VERSION)))
    }

    /// The state of a pass that runs only while accounting is on.
    pub(super) fn state(&self, env: &LmdbEnv, txn: &RoTxn<'_>) -> Result<State, TxnError> {
        self.state_if_on(env, txn)?.ok_or_else(|| {
            TxnError::Store(Error::corrupt(
                env.path(),
                None,
                "the accounting state is missing",
            ))
        })
    }

    pub(super) fn put_state(&self, w: &mut RwTxn<'_>, st: &State) -> Result<(), TxnError> {
        Ok(self.db.put(w, STATE_KEY, &st.encode())?)
    }

    pub(super) fn record(
        &self,
        env: &LmdbEnv,
        txn: &RoTxn<'_>,
        id: &[u8],
    ) -> Result<Option<Record>, TxnError> {
        let key = tagged(TAG_RECORD, &[], id);
        match self.db.get(txn, &key)? {
            None => Ok(None),
            Some(raw) => Record::decode(raw)
                .map(Some)
                .map_err(|r| TxnError::Store(r.into_error(env.path(), None, ACCT_VERSION))),
        }
    }

    /// The keys of `rec` in the order indexes of `orders` (`KEEP_*` bits).
    pub(super) fn order_keys<'a>(
        id: &'a [u8],
        rec: &Record,
        orders: u8,
    ) -> impl Iterator<Item = Vec<u8>> + 'a {
        let (accessed, written, hits) = (rec.accessed, rec.written, rec.hits);
        let undated = rec.expires.is_none();
        [KEEP_LRU, KEEP_FIFO, KEEP_LFU, KEEP_UNDATED]
            .into_iter()
            .filter(move |bit| orders & bit != 0)
            .filter_map(move |bit| match bit {
                KEEP_LRU => Some(tagged(TAG_LRU, &[&be64(accessed)], id)),
                KEEP_FIFO => Some(tagged(TAG_FIFO, &[&be64(written)], id)),
                KEEP_LFU => Some(tagged(TAG_LFU, &[&be32(hits), &be64(accessed)], id)),
                _ => undated.then(|| tagged(TAG_UNDATED, &[&be64(written)], id)),
            })
    }

    /// Writes `rec` and its keys in the orders of `orders` and in the expiry index.
    pub(super) fn index(
        &self,
        w: &mut RwTxn<'_>,
        id: &[u8],
        rec: &Record,
        orders: u8,
    ) -> Result<(), TxnError> {
        self.db
            .put(w, &tagged(TAG_RECORD, &[], id), &rec.encode())?;
        for k in Self::order_keys(id, rec, orders) {
            self.db.put(w, &k, &[])?;
        }
        if let Some(e) = rec.expires {
            self.db.put(w, &tagged(TAG_EXPIRY, &[&be64(e)], id), &[])?;
        }
        Ok(())
    }

    /// Deletes `rec`'s keys in the orders of `orders` and in the expiry index.
    pub(super) fn unindex(
        &self,
        w: &mut RwTxn<'_>,
        id: &[u8],
        rec: &Record,
        orders: u8,
    ) -> Result<(), TxnError> {
        for k in Self::order_keys(id, rec, orders) {
            self.db.delete(w, &k)?;
        }
        if let Some(e) = rec.expires {
            self.db.delete(w, &tagged(TAG_EXPIRY, &[&be64(e)], id))?;
        }
        Ok(())
    }

    /// [`AcctDb::on_put`] once the database is open: nothing while accounting is off.
    pub(super) fn on_put(
        &self,
        env: &LmdbEnv,
        w: &mut RwTxn<'_>,
        stored: &[u8],
        size: u64,
        deadline: Option<u64>,
    ) -> Result<(), TxnError> {
        let Some(mut st) = self.state_if_on(env, w)? else {
            return Ok(());
        };
        let id = id_of(stored);
        let hits = match self.record(env, w, &id)? {
            Some(old) => {
                self.unindex(w, &id, &old, st.indexed())?;
                st.sub(old.size);
                // An overwrite keeps its read count (LFU), as the in-memory tracker does.
                old.hits
            }
            None => 0,
        };
        let stamp = st.take_stamp();
        let rec = Record {
            size,
            written: stamp,
            accessed: stamp,
            hits,
            expires: deadline,
            stored: stored.to_vec(),
        };
        self.index(w, &id, &rec, st.indexed())?;
        st.add(size);
        self.put_state(w, &st)
    }

    /// [`AcctDb::on_delete`] once the database is open: nothing while accounting is off.
    pub(super) fn on_delete(
        &self,
        env: &LmdbEnv,
        w: &mut RwTxn<'_>,
        stored: &[u8],
    ) -> Result<(), TxnError> {
        let Some(mut st) = self.state_if_on(env, w)? else {
            return Ok(());
        };
        let id = id_of(stored);
        if let Some(old) = self.record(env, w, &id)? {
            self.unindex(w, &id, &old, st.indexed())?;
            self.db.delete(w, &tagged(TAG_RECORD, &[], &id))?;
            st.sub(old.size);
            self.put_state(w, &st)?;
        }
        Ok(())
    }

    /// Deletes `id`'s value and bookkeeping inside `w`; returns the caller's key and what
    /// `extract` took from the value.
    pub(super) fn remove_entry(
        &self,
        store: &LmdbStore,
        w: &mut RwTxn<'_>,
        st: &mut State,
        id: &[u8],
        rec: &Record,
        extract: Extract<'_>,
    ) -> Result<Removed, TxnError> {
        let mut removed: Removed = (rec.stored.get(1..).unwrap_or_default().to_vec(), None);
        let plain = rec.stored.first() == Some(&TAG_PLAIN);
        if !plain || extract.is_some() {
            if let Some(raw) = store.data.get(w, &rec.stored)? {
                // A damaged value is evicted all the same; it is reported under its stored
                // key when its own key cannot be read back.
                match store.layout.decode_entry(&rec.stored, raw) {
                    Ok((key, value)) => {
                        removed = (key.to_vec(), extract.and_then(|f| f(value)));
                    }
                    Err(_) if !plain => removed.0 = rec.stored.clone(),
                    Err(_) => {}
                }
            }
        }
        store.data.delete(w, &rec.stored)?;
        self.unindex(w, id, rec, st.indexed())?;
        self.db.delete(w, &tagged(TAG_RECORD, &[], id))?;
        st.sub(rec.size);
        Ok(removed)
    }

    pub(super) fn entry(&self, env: &LmdbEnv, key: &[u8]) -> Result<Option<EntryAccount>> {
        let id = id_of(StoredKey::new(key).bytes());
        env.read(|r| Ok::<_, TxnError>(self.record(env, r, &id)?.map(|r| r.account())))
    }

    pub(super) fn record_access(&self, env: &LmdbEnv, reads: &[(&[u8], u32)]) -> Result<()> {
        if reads.is_empty() {
            return Ok(());
        }
        env.write(|w| -> Result<(), TxnError> {
            let Some(mut st) = self.state_if_on(env, w)? else {
                return Ok(());
            };
            for (key, hits) in reads {
                let id = id_of(StoredKey::new(key).bytes());
                let Some(mut rec) = self.record(env, w, &id)? else {
                    continue;
                };
                // FIFO's and the undated index's keys hold the write stamp, which a read
                // leaves alone.
                let moved = st.indexed() & !(KEEP_FIFO | KEEP_UNDATED);
                for k in Self::order_keys(&id, &rec, moved) {
                    self.db.delete(w, &k)?;
                }
                rec.accessed = st.take_stamp();
                rec.hits = rec.hits.saturating_add(*hits);
                self.db
                    .put(w, &tagged(TAG_RECORD, &[], &id), &rec.encode())?;
                for k in Self::order_keys(&id, &rec, moved) {
                    self.db.put(w, &k, &[])?;
                }
            }
            self.put_state(w, &st)
        })
    }

    /// The eviction pass of [`Accounting::evict`], chunked; `extract` runs on each victim's
    /// value before it goes, `on_removed` after each chunk commits. `None` (nothing done)
    /// when the store does not keep `plan.order`.
    pub(super) fn evict(
        &self,
        store: &LmdbStore,
        plan: &EvictPlan<'_>,
        extract: Extract<'_>,
        on_removed: &mut dyn FnMut(Removed),
    ) -> Result<Option<u64>> {
        let env = &store.env;
        let keep = plan.keep.map(|k| id_of(StoredKey::new(k).bytes()));
        let (bit, tag) = order_bit(plan.order);
        let mut unkept = false;
        // Entries stamped from here on were written after the eviction began: never ours to
        // take (the compare of the issue: a writer's fresh value survives a concurrent pass).
        let mut began: Option<u64> = None;
        let n = in_chunks(env, on_removed, |w, victims| {
            let Some(mut st) = self.state_if_on(env, w)? else {
                return Ok(false);
            };
            if st.kept & bit == 0 {
                unkept = true;
                return Ok(false);
            }
            if !plan.is_over(&st.totals()) {
                return Ok(false);
            }
            let began = *began.get_or_insert(st.next);
            let mut candidates = Vec::new();
            for item in self.db.prefix_iter(w, &[tag])? {
                let (k, _) = item?;
                let id = id_in(tag, k);
                if keep.as_deref() == Some(id) {
                    continue;
                }
                candidates.push(id.to_vec());
                if candidates.len() >= EVICT_CHUNK {
                    break;
                }
            }
            let full_chunk = candidates.len() >= EVICT_CHUNK;
            for id in candidates {
                if !plan.is_over(&st.totals()) {
                    break;
                }
                let Some(rec) = self.record(env, w, &id)? else {
                    continue;
                };
                if rec.written >= began {
                    continue;
                }
                victims.push(self.remove_entry(store, w, &mut st, &id, &rec, extract)?);
            }
            self.put_state(w, &st)?;
            Ok(plan.is_over(&st.totals()) && full_chunk && !victims.is_empty())
        })?;
        Ok((!unkept).then_some(n))
    }

    /// Builds `order`'s index from the records (see "Only the orders in use" in the module
    /// docs): `chunk` records per write transaction, resumed from its saved place, safe while
    /// other handles and processes write. A no-op once the order is kept.
    pub(super) fn build_order(
        &self,
        env: &LmdbEnv,
        (bit, tag): (u8, u8),
        chunk: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let cursor_key = [b'm', b'o', tag];
        let mut indexed = 0;
        loop {
            let mut this_chunk = 0;
            let done = env.write(|w| -> Result<bool, TxnError> {
                let mut st = self.state(env, w)?;
                if st.kept & bit != 0 {
                    return Ok(true);
                }
                // From this transaction on every write keeps the order up as well.
                st.building |= bit;
                let cursor = self.db.get(w, &cursor_key)?.map(<[u8]>::to_vec);
                let first = [TAG_RECORD];
                let start = match &cursor {
                    Some(c) => std::ops::Bound::Excluded(&c[..]),
                    None => std::ops::Bound::Included(&first[..]),
                };
                let range = (start, std::ops::Bound::<&[u8]>::Unbounded);
                let mut found: Vec<(Vec<u8>, Record)> = Vec::new();
                for item in self.db.range(w, &range)? {
                    let (k, raw) = item?;
                    if k.first() != Some(&TAG_RECORD) {
                        break;
                    }
                    let rec = Record::decode(raw).map_err(|r| {
                        TxnError::Store(r.into_error(env.path(), None, ACCT_VERSION))
                    })?;
                    found.push((k[1..].to_vec(), rec));
                    if found.len() >= chunk {
                        break;
                    }
                }
                let full = found.len() >= chunk;
                for (id, rec) in &found {
                    for k in Self::order_keys(id, rec, bit) {
                        self.db.put(w, &k, &[])?;
                    }
                }
                this_chunk = found.len() as u64;
                match found.last() {
                    Some((id, _)) if full => {
                        self.db.put(w, &cursor_key, &tagged(TAG_RECORD, &[], id))?;
                    }
                    _ => {
                        st.kept |= bit;
                        st.building &= !bit;
                        self.db.delete(w, &cursor_key)?;
                    }
                }
                self.put_state(w, &st)?;
                Ok(!full)
            })?;
            indexed += this_chunk;
            if done {
                return Ok(());
            }
            progress(indexed);
        }
    }

    /// [`AcctDb::undated`] once the index is kept: one read transaction.
    pub(super) fn undated(
        &self,
        store: &LmdbStore,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, u64)>> {
        let env = &store.env;
        env.read(|r| -> Result<Vec<(Vec<u8>, u64)>, TxnError> {
            let from = after.map_or(0, |a| a.saturating_add(1));
            let start = tagged(TAG_UNDATED, &[&be64(from)], &[]);
            let range = (
                std::ops::Bound::Included(&start[..]),
                std::ops::Bound::<&[u8]>::Unbounded,
            );
            let mut out = Vec::new();
            for item in self.db.range(r, &range)? {
                let (k, _) = item?;
                if k.first() != Some(&TAG_UNDATED) || out.len() >= limit {
                    break;
                }
                let Some(written) = from_be64(&k[1..]) else {
                    continue;
                };
                let Some(rec) = self.record(env, r, id_in(TAG_UNDATED, k))? else {
                    continue;
                };
                if rec.written != written || rec.expires.is_some() {
                    continue;
                }
                let key = if rec.stored.first() == Some(&TAG_PLAIN) {
                    rec.stored[1..].to_vec()
                } else {
                    // A long key is stored hashed; its bytes are in the entry.
                    match store.data.get(r, &rec.stored)? {
                        Some(raw) => match store.layout.decode_entry(&rec.stored, raw) {
                            Ok((key, _)) => key.to_vec(),
                            Err(_) => continue,
                        },
                        None => continue,
                    }
                };
                out.push((key, written));
            }
            Ok(out)
        })
    }

    /// The expiry pass of [`Accounting::remove_expired`], chunked like [`AcctDb::evict`].
    pub(super) fn remove_expired(
        &self,
        store: &LmdbStore,
        now_ms: u64,
        extract: Extract<'_>,
        on_removed: &mut dyn FnMut(Removed),
    ) -> Result<u64> {
        let env = &store.env;
        in_chunks(env, on_removed, |w, removed| {
            let Some(mut st) = self.state_if_on(env, w)? else {
                return Ok(false);
            };
            let mut due = Vec::new();
            for item in self.db.prefix_iter(w, &[TAG_EXPIRY])? {
                let (k, _) = item?;
                if from_be64(&k[1..]).is_none_or(|e| e > now_ms) {
                    break;
                }
                due.push(id_in(TAG_EXPIRY, k).to_vec());
                if due.len() >= EVICT_CHUNK {
                    break;
                }
            }
            let full_chunk = due.len() >= EVICT_CHUNK;
            for id in due {
                let Some(rec) = self.record(env, w, &id)? else {
                    continue;
                };
                // The record is the current value's: compared in this transaction.
                if rec.expires.is_some_and(|e| e <= now_ms) {
                    removed.push(self.remove_entry(store, w, &mut st, &id, &rec, extract)?);
                }
            }
            self.put_state(w, &st)?;
            Ok(full_chunk)
        })
    }

    /// The migration of [`Accounting::build`] (see the module docs); `view` says how big each
    /// stored value is and lends its bytes to `describe` when it can.
    pub(super) fn build(
        &self,
        store: &LmdbStore,
        view: View<'_>,
        describe: &mut dyn FnMut(&[u8], &[u8]) -> Described,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let env = &store.env;
        let mut looked_total = 0;
        let mut added_total = 0;
        loop {
            let mut looked = 0;
            let mut added = 0;
            let done = env.write(|w| -> Result<bool, TxnError> {
                (looked, added) = (0, 0);
                let mut st = self.state(env, w)?;
                if st.built {
                    return Ok(true);
                }
                let cursor = self.db.get(w, CURSOR_KEY)?.map(<[u8]>::to_vec);
                let start = match &cursor {
                    Some(c) => std::ops::Bound::Excluded(&c[..]),
                    None => std::ops::Bound::Unbounded,
                };
                let range = (start, std::ops::Bound::<&[u8]>::Unbounded);
                let mut found: Vec<(Vec<u8>, u64, Described)> = Vec::new();
                for item in store.data.range(w, &range)? {
                    let (stored, raw) = item?;
                    let (size, described) = match store.layout.decode_entry(stored, raw) {
                        Ok((key, value)) => {
                            let (size, lent) = view(value);
                            (size, lent.map(|v| describe(key, v)).unwrap_or_default())
                        }
                        // Counted at its stored size; a read reports the damage.
                        Err(_) => (raw.len() as u64, Described::default()),
                    };
                    found.push((stored.to_vec(), size, described));
                    if found.len() >= BUILD_CHUNK {
                        break;
                    }
                }
                let Some(last) = found.last().map(|f| f.0.clone()) else {
                    st.built = true;
                    self.db.delete(w, CURSOR_KEY)?;
                    self.put_state(w, &st)?;
                    return Ok(true);
                };
                for (stored, size, described) in found {
                    looked += 1;
                    let id = id_of(&stored);
                    if self.record(env, w, &id)?.is_some() {
                        continue;
                    }
                    // The write time keeps migrated entries in age order; all are older than
                    // anything stamped after the migration.
                    let stamp = described.created_ms.unwrap_or(0);
                    st.next = st.next.max(stamp.saturating_add(1));
                    let rec = Record {
                        size,
                        written: stamp,
                        accessed: stamp,
                        hits: 0,
                        expires: described.expires_ms,
                        stored,
                    };
                    self.index(w, &id, &rec, st.indexed())?;
                    st.add(size);
                    added += 1;
                }
                self.db.put(w, CURSOR_KEY, &last)?;
                self.put_state(w, &st)?;
                Ok(false)
            })?;
            looked_total += looked;
            added_total += added;
            if done {
                return Ok(added_total);
            }
            progress(looked_total);
        }
    }
}
