//! Reads recorded in memory and handed to the store's accounting in batches, so a hit costs
//! no disk write (see the module docs of [`crate::limits`] for the precision this gives).

use std::collections::HashMap;

/// foldhash (already in the workspace through cacher-store) instead of SipHash: a hit hashes
/// its key here once, and these keys are the cache's own, not an attacker's choice of
/// collisions to worry about more than the store's index itself.
type Hasher = foldhash::fast::RandomState;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A batch is flushed once it holds this many distinct keys…
pub(crate) const FLUSH_KEYS: usize = 16_384;
/// …or once this long has passed since the last flush (looked at every 64th read).
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Pending {
    /// Per key: the sequence number of its last read here, and how many reads.
    reads: HashMap<Vec<u8>, (u64, u32), Hasher>,
    seq: u64,
    since: Instant,
}

/// The reads of one cache handle not yet given to the store.
#[derive(Debug)]
pub(crate) struct AccessLog {
    pending: Mutex<Pending>,
}

impl AccessLog {
    pub(crate) fn new() -> Self {
        AccessLog {
            pending: Mutex::new(Pending {
                reads: HashMap::default(),
                seq: 0,
                since: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Advisory history: a panic mid-update cannot lose stored data.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a read of `key`; returns whether a flush is due.
    pub(crate) fn touch(&self, key: &[u8]) -> bool {
        let mut p = self.lock();
        p.seq += 1;
        let seq = p.seq;
        match p.reads.get_mut(key) {
            Some((last, n)) => {
                *last = seq;
                *n = n.saturating_add(1);
            }
            None => {
                p.reads.insert(key.to_vec(), (seq, 1));
            }
        }
        // The clock is read every 64 reads only: it costs as much as the rest of this.
        p.reads.len() >= FLUSH_KEYS || (seq.is_multiple_of(64) && p.since.elapsed() >= FLUSH_EVERY)
    }

    /// Takes the pending reads, oldest last read first (the order the store stamps them in),
    /// and restarts the interval.
    pub(crate) fn take(&self) -> Vec<(Vec<u8>, u32)> {
        let mut p = self.lock();
        p.since = Instant::now();
        let mut reads: Vec<_> = p.reads.drain().collect();
        drop(p);
        reads.sort_unstable_by_key(|(_, (seq, _))| *seq);
        reads.into_iter().map(|(k, (_, n))| (k, n)).collect()
    }

    /// Puts back reads a failed flush could not record, so they are tried again.
    pub(crate) fn put_back(&self, reads: Vec<(Vec<u8>, u32)>) {
        let mut p = self.lock();
        for (k, n) in reads {
            let entry = p.reads.entry(k).or_insert((0, 0));
            entry.1 = entry.1.saturating_add(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_come_out_in_last_read_order_with_their_counts() {
        let log = AccessLog::new();
        for k in [&b"a"[..], b"b", b"a", b"c"] {
            log.touch(k);
        }
        assert_eq!(
            log.take(),
            vec![(b"b".to_vec(), 1), (b"a".to_vec(), 2), (b"c".to_vec(), 1)]
        );
        assert!(log.take().is_empty());
    }

    #[test]
    fn a_flush_is_due_after_enough_distinct_keys() {
        let log = AccessLog::new();
        let due = (0..FLUSH_KEYS).map(|i| log.touch(&i.to_le_bytes())).last();
        assert_eq!(due, Some(true));
    }
}
