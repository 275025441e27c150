//! Finding a value: the index lookup, remapping when the value lies past the map, and the
//! refresh of a read-only handle on a miss.

use std::ops::Range;
use std::sync::Arc;

use memmap2::Mmap;

use super::index::{remap_to, Loc};
use super::LogStore;
use crate::Result;

impl LogStore {
    /// The value's map and range, remapping when the value lies beyond the current map and
    /// refreshing a read-only handle on a miss.
    pub(super) fn locate(&self, key: &[u8]) -> Result<Option<(Arc<Mmap>, Range<usize>)>> {
        let mut refreshed = false;
        loop {
            {
                let st = self.state();
                match st.index.get(key) {
                    Some(loc) if loc.value_off + loc.value_len <= st.map.len() as u64 => {
                        return Ok(Some((st.map.clone(), range(loc))));
                    }
                    Some(_) => {}
                    None if self.options.read_only && !refreshed => {}
                    None => return Ok(None),
                }
            }
            let mut st = self.state_mut();
            if let Some(loc) = st.index.get(key).copied() {
                remap_to(&mut st, loc.value_off + loc.value_len, &self.path)?;
                return Ok(Some((st.map.clone(), range(&loc))));
            }
            drop(st);
            self.refresh()?;
            refreshed = true;
        }
    }

    /// The index entry of `key`, refreshing a read-only handle on a miss.
    pub(super) fn loc(&self, key: &[u8]) -> Result<Option<Loc>> {
        if let Some(loc) = self.state().index.get(key) {
            return Ok(Some(*loc));
        }
        if self.options.read_only && self.refresh()? {
            return Ok(self.state().index.get(key).copied());
        }
        Ok(None)
    }
}

fn range(loc: &Loc) -> Range<usize> {
    // Both ends lie within the map (checked by the caller), so they fit in usize.
    loc.value_off as usize..(loc.value_off + loc.value_len) as usize
}
