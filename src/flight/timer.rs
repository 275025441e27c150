//! Wake-ups at a deadline for async waiters ([`Wait`](super::Wait)), without a runtime: one
//! thread for the whole process, started by the first waiter that needs it, sleeping until
//! the earliest deadline. Waiting on a flight is rare (concurrent misses of one key), so one
//! thread and a map ordered by deadline serve every executor.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::Waker;
use std::time::Instant;

struct Timer {
    due: Mutex<BTreeMap<(Instant, u64), Waker>>,
    changed: Condvar,
    next_id: AtomicU64,
}

/// A registered wake-up; removed from the timer when dropped.
#[derive(Debug)]
pub(super) struct Alarm {
    at: (Instant, u64),
}

fn timer() -> Option<&'static Timer> {
    static TIMER: OnceLock<Option<&'static Timer>> = OnceLock::new();
    *TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            due: Mutex::default(),
            changed: Condvar::new(),
            next_id: AtomicU64::new(0),
        }));
        let started = std::thread::Builder::new()
            .name("cacher-flight-timer".into())
            .spawn(move || timer.run());
        // Without the thread, async waits are unbounded, as they were before timeouts.
        started.ok().map(|_| timer)
    })
}

impl Timer {
    fn run(&self) {
        let mut due = lock(&self.due);
        loop {
            let now = Instant::now();
            while let Some(entry) = due.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                entry.remove().wake();
            }
            due = match due.keys().next() {
                Some(&(at, _)) => {
                    let left = at.saturating_duration_since(now);
                    self.changed
                        .wait_timeout(due, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.changed.wait(due).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}

/// Wakes `waker` at `at` (or soon after), unless the returned alarm is dropped first. `None`
/// if no timer thread could be started.
pub(super) fn wake_at(at: Instant, waker: Waker) -> Option<Alarm> {
    let timer = timer()?;
    let key = (at, timer.next_id.fetch_add(1, Ordering::Relaxed));
    let earliest = {
        let mut due = lock(&timer.due);
        due.insert(key, waker);
        due.keys().next() == Some(&key)
    };
    if earliest {
        timer.changed.notify_one();
    }
    Some(Alarm { at: key })
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Some(timer) = timer() {
            lock(&timer.due).remove(&self.at);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A map of wake-ups: a panic elsewhere leaves nothing half-updated in it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
