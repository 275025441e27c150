//! Iteration in pages: one read transaction per page, so iteration never holds a transaction
//! (and the resize gate) across the caller's code.

use std::ops::Bound;

use super::{LmdbStore, TxnError};
use crate::Result;

/// Keys fetched per read transaction while iterating, so iteration never holds a transaction
/// (and the resize gate) across the caller's code.
pub(super) const KEYS_PER_PAGE: usize = 1024;
/// Value bytes fetched per read transaction by `scan` (at least one entry per page).
pub(super) const SCAN_BYTES_PER_PAGE: usize = 8 << 20;

impl LmdbStore {
    /// Reads one page of entries after the stored key `after`, calling `f` with each decoded
    /// entry until it returns `false`; returns the last stored key visited.
    fn page(
        &self,
        after: Option<&[u8]>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<Option<Vec<u8>>> {
        self.env.read(|rtxn| -> Result<Option<Vec<u8>>, TxnError> {
            let start = match after {
                Some(k) => Bound::Excluded(k),
                None => Bound::Unbounded,
            };
            let range = (start, Bound::<&[u8]>::Unbounded);
            let mut last = None;
            for entry in self.data.range(rtxn, &range)? {
                let (stored, raw) = entry?;
                let (key, value) = self.decode_entry(stored, raw)?;
                last = Some(stored.to_vec());
                if !f(key, value) {
                    break;
                }
            }
            Ok(last)
        })
    }

    /// Iterates in pages of at most `budget` (counting each entry by `cost`), one read
    /// transaction per page, decoding each entry with `take`.
    pub(super) fn paged<T: 'static>(
        &self,
        budget: usize,
        cost: fn(&[u8], &[u8]) -> usize,
        take: fn(&[u8], &[u8]) -> T,
    ) -> Box<dyn Iterator<Item = Result<T>> + '_> {
        let mut after: Option<Vec<u8>> = None;
        let mut done = false;
        let mut buffered = std::collections::VecDeque::new();
        Box::new(std::iter::from_fn(move || loop {
            if let Some(item) = buffered.pop_front() {
                return Some(Ok(item));
            }
            if done {
                return None;
            }
            let mut spent = 0;
            let result = self.page(after.as_deref(), &mut |k, v| {
                buffered.push_back(take(k, v));
                spent += cost(k, v);
                spent < budget
            });
            match result {
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
                Ok(None) => done = true,
                Ok(Some(last)) => after = Some(last),
            }
        }))
    }
}
