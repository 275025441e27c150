//! [`LmdbStore`]'s side: the `Accounting` trait, and the counted writes a store built on an
//! `LmdbStore` (HybridStore's index, DirStore's sidecar) uses.

use super::*;

/// What a store built on an `LmdbStore` (HybridStore's index) uses to count its own values.
impl LmdbStore {
    /// Writes `value` under `key`, counting it as `size` bytes with `deadline`.
    pub(crate) fn put_accounted(
        &self,
        key: &[u8],
        value: &[u8],
        size: u64,
        deadline: Option<u64>,
    ) -> Result<()> {
        self.acct.write(&self.env, |w| {
            self.put_in_accounted(w, key, value, size, deadline)
        })
    }

    /// [`Accounting::evict`], taking `extract` of each victim's value.
    pub(crate) fn evict_extracting(
        &self,
        plan: &EvictPlan<'_>,
        extract: Extract<'_>,
        on_removed: &mut dyn FnMut(Removed),
    ) -> Result<u64> {
        self.acct.evict(self, plan, extract, on_removed)
    }

    /// [`Accounting::remove_expired`], taking `extract` of each removed value.
    pub(crate) fn remove_expired_extracting(
        &self,
        now_ms: u64,
        extract: Extract<'_>,
        on_removed: &mut dyn FnMut(Removed),
    ) -> Result<u64> {
        self.acct.remove_expired(self, now_ms, extract, on_removed)
    }

    /// [`Accounting::remove_if_written`], taking `extract` of the removed value.
    pub(crate) fn remove_if_written_extracting(
        &self,
        key: &[u8],
        written: u64,
        extract: Extract<'_>,
        on_removed: &mut dyn FnMut(Removed),
    ) -> Result<bool> {
        self.acct
            .remove_if_written(self, key, written, extract, on_removed)
    }

    /// [`Accounting::build`], sizing each value through `view`.
    pub(crate) fn build_viewing(
        &self,
        view: View<'_>,
        describe: &mut dyn FnMut(&[u8], &[u8]) -> Described,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        self.acct.build(self, view, describe, progress)
    }
}

impl Accounting for LmdbStore {
    fn totals(&self) -> Result<Totals> {
        self.acct.totals(&self.env)
    }

    fn enable(&self) -> Result<()> {
        self.acct.enable(&self.env)
    }

    fn keep_order(&self, order: Order, progress: &mut dyn FnMut(u64)) -> Result<()> {
        self.acct
            .keep_order(&self.env, order, BUILD_CHUNK, progress)
    }

    fn build(
        &self,
        describe: &mut dyn FnMut(&[u8], &[u8]) -> Described,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        self.acct
            .build(self, &|v| (v.len() as u64, Some(v)), describe, progress)
    }

    fn record_access(&self, reads: &[(&[u8], u32)]) -> Result<()> {
        self.acct.record_access(&self.env, reads)
    }

    fn evict(&self, plan: &EvictPlan<'_>, on_evicted: &mut dyn FnMut(&[u8])) -> Result<u64> {
        self.acct
            .evict(self, plan, None, &mut |(k, _)| on_evicted(&k))
    }

    fn remove_expired(&self, now_ms: u64, on_removed: &mut dyn FnMut(&[u8])) -> Result<u64> {
        self.acct
            .remove_expired(self, now_ms, None, &mut |(k, _)| on_removed(&k))
    }

    fn undated(&self, after: Option<u64>, limit: usize) -> Result<Vec<(Vec<u8>, u64)>> {
        self.acct.undated(self, after, limit)
    }

    fn remove_if_written(&self, key: &[u8], written: u64) -> Result<bool> {
        self.acct
            .remove_if_written(self, key, written, None, &mut |_| {})
    }

    fn entry(&self, key: &[u8]) -> Result<Option<EntryAccount>> {
        self.acct.entry(&self.env, key)
    }
}
