//! Iteration in pages: one read transaction per page, so iteration never holds a transaction
//! (and the resize gate) across the caller's code.

use std::ops::Bound;

use super::layout::{Layout, LONG_HEADER, TAG_HASHED, TAG_PLAIN};
use super::{LmdbStore, TxnError};
use crate::Result;

/// Keys fetched per read transaction while iterating, so iteration never holds a transaction
/// (and the resize gate) across the caller's code.
pub(super) const KEYS_PER_PAGE: usize = 1024;
/// Value bytes fetched per read transaction by `scan` (at least one entry per page).
pub(super) const SCAN_BYTES_PER_PAGE: usize = 8 << 20;

/// Called with each raw entry `(layout, stored key, LMDB value)` of a page; `Ok(false)` stops.
pub(super) type RawVisitor<'a> = dyn FnMut(Layout, &[u8], &[u8]) -> Result<bool> + 'a;

impl LmdbStore {
    /// Reads one page of raw LMDB entries after the stored key `after`, calling `f` with each
    /// until it returns `false`; returns the last stored key visited.
    pub(super) fn raw_page(
        &self,
        after: Option<&[u8]>,
        f: &mut RawVisitor<'_>,
    ) -> Result<Option<Vec<u8>>> {
        self.env.read(|rtxn| -> Result<Option<Vec<u8>>, TxnError> {
            let start = match after {
                Some(k) => Bound::Excluded(k),
                None => Bound::Unbounded,
            };
            let range = (start, Bound::<&[u8]>::Unbounded);
            let mut last: Option<Vec<u8>> = None;
            let layout = self.layout_in(rtxn)?;
            for entry in self.data.range(rtxn, &range)? {
                let (stored, raw) = entry?;
                // LMDB returns keys in order; a damaged branch page can make the cursor go
                // back or round in a cycle, and iteration would never end.
                let previous = last.as_deref().or(after);
                if previous.is_some_and(|p| stored <= p) {
                    return Err(self.out_of_order(stored).into());
                }
                last = Some(stored.to_vec());
                if !f(layout, stored, raw)? {
                    break;
                }
            }
            Ok(last)
        })
    }

    /// Reads one page of entries after the stored key `after`, calling `f` with each decoded
    /// and checked entry until it returns `false`; returns the last stored key visited.
    fn page(
        &self,
        after: Option<&[u8]>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<Option<Vec<u8>>> {
        self.raw_page(after, &mut |layout, stored, raw| {
            let (key, value) = layout
                .decode_entry(stored, raw)
                .map_err(|r| self.refused(Some(&reported_key(stored, raw)), r))?;
            Ok(f(key, value))
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

impl LmdbStore {
    /// The error for keys that LMDB returned out of order.
    pub(super) fn out_of_order(&self, stored: &[u8]) -> crate::Error {
        crate::Error::corrupt(
            self.env.path(),
            Some(stored),
            "LMDB returned keys out of order: a damaged branch or leaf page",
        )
    }
}

/// The key to name in an error about the entry `stored`/`raw`, whose checks failed: the key
/// for a key stored as is, the full key kept beside the value for a hashed one when it can be
/// read, else the stored key itself.
pub(super) fn reported_key(stored: &[u8], raw: &[u8]) -> Vec<u8> {
    match stored.split_first() {
        Some((&TAG_PLAIN, key)) => key.to_vec(),
        Some((&TAG_HASHED, _)) => [Layout::V2, Layout::V1]
            .iter()
            .find_map(|layout| {
                let body = raw.get(layout.crc_len()..)?;
                let len = usize::try_from(crate::le::u64_at(body, 0)?).ok()?;
                body.get(LONG_HEADER..LONG_HEADER.checked_add(len)?)
                    .filter(|key| blake3::hash(key).as_bytes()[..] == stored[1..])
                    .map(<[u8]>::to_vec)
            })
            .unwrap_or_else(|| stored.to_vec()),
        _ => stored.to_vec(),
    }
}
