//! Measures the memory the `LogStore` index holds per entry, with a counting allocator (the
//! figure quoted in the `log` module docs). Its own test binary, so the global allocator
//! counts this test alone. Run with `--nocapture` to see the figures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

use cacher_store::{Durability, LogStore, Store};

/// Counts live heap bytes: as requested, and as glibc's malloc would hand them out (8 bytes
/// of chunk header, rounded up to 16, at least 32), which is what the process really pays.
struct Counting;

static REQUESTED: AtomicI64 = AtomicI64::new(0);
static MALLOC: AtomicI64 = AtomicI64::new(0);

fn malloc_size(size: usize) -> i64 {
    ((size + 8).div_ceil(16) * 16).max(32) as i64
}

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
#[expect(
    unsafe_code,
    reason = "a counting allocator that forwards to System (see SAFETY)"
)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        REQUESTED.fetch_add(layout.size() as i64, Ordering::Relaxed);
        MALLOC.fetch_add(malloc_size(layout.size()), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        REQUESTED.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        MALLOC.fetch_sub(malloc_size(layout.size()), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn index_memory_per_entry_is_as_documented() {
    const N: u64 = 100_000;
    for (key_len, max_malloc_per_entry) in [(16usize, 90.0), (64, 140.0)] {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::options()
            .durability(Durability::None)
            .open(dir.path().join("store.log"))
            .unwrap();
        let (req0, mal0) = (
            REQUESTED.load(Ordering::SeqCst),
            MALLOC.load(Ordering::SeqCst),
        );
        let mut key = vec![b'k'; key_len];
        for i in 0..N {
            key[..8].copy_from_slice(&i.to_le_bytes());
            store.put(&key, b"v").unwrap();
        }
        let requested = (REQUESTED.load(Ordering::SeqCst) - req0) as f64 / N as f64;
        let malloc = (MALLOC.load(Ordering::SeqCst) - mal0) as f64 / N as f64;
        println!(
            "{key_len}-byte keys, {N} entries: {requested:.1} bytes/entry requested, \
             {malloc:.1} bytes/entry with glibc malloc rounding"
        );
        assert!(
            malloc <= max_malloc_per_entry,
            "{key_len}-byte keys: {malloc:.1} bytes per entry"
        );
        assert_eq!(store.len().unwrap(), N);
    }
}
