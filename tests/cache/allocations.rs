//! What a memoized hit allocates (issue 15 item 2): nothing for a value that needs no heap
//! (a `u64`), one allocation for an owned buffer (a `ByteBuf`), with the wrapper and with
//! `#[memoize]`. Counted by this binary's global allocator, per thread, so tests running in
//! parallel do not count each other's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::LazyLock;

use cacher::store::MemoryStore;
use cacher::Cache;
use serde_bytes::ByteBuf;

/// The system allocator, counting the allocations each thread makes.
struct Counting;

thread_local! {
    /// Allocations (and reallocations) made by this thread; no destructor, so it is usable
    /// from the allocator at any point of a thread's life.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: an allocation during the thread's teardown is simply not counted.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

#[expect(
    unsafe_code,
    reason = "a GlobalAlloc is an unsafe trait; this one only counts and delegates to System"
)]
// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; counting touches a const-initialised thread-local `Cell` without a
// destructor, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller's `layout` contract is passed on to `System` as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: as for `dealloc`, and the caller's `new_size` contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// How many allocations this thread makes while running `f`.
fn allocations_of<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = ALLOCATIONS.with(Cell::get);
    let value = f();
    (value, ALLOCATIONS.with(Cell::get) - before)
}

/// Hits enough to take in the one in sixteen that is timed.
const HITS: u64 = 40;

fn memory_cache() -> Cache {
    Cache::builder().store(MemoryStore::new()).build().unwrap()
}

#[test]
fn a_memoized_hit_of_a_u64_allocates_nothing() {
    let cache = memory_cache();
    let square = cache
        .memoize("allocations::square")
        .wrap(|x: u64| x * x)
        .unwrap();
    // The miss that stores, and a first hit (a thread's first lookup sets up its buffers).
    assert_eq!(square.call(7), 49);
    assert_eq!(square.call(7), 49);
    let (sum, allocated) = allocations_of(|| (0..HITS).map(|_| square.call(7)).sum::<u64>());
    assert_eq!(sum, 49 * HITS);
    assert_eq!(
        allocated, 0,
        "{HITS} hits of a u64 allocated {allocated} times"
    );
    assert_eq!(cache.stats().total.hits, HITS + 1);
}

#[test]
fn a_memoized_hit_of_a_byte_buffer_allocates_the_buffer_once() {
    let cache = memory_cache();
    let bytes = cache
        .memoize("allocations::bytes")
        .wrap(|n: u64| ByteBuf::from(vec![n as u8; 300]))
        .unwrap();
    assert_eq!(bytes.call(3).len(), 300);
    assert_eq!(bytes.call(3).len(), 300);
    let (total, allocated) =
        allocations_of(|| (0..HITS).map(|_| bytes.call(3).len()).sum::<usize>());
    assert_eq!(total, 300 * HITS as usize);
    assert_eq!(
        allocated, HITS,
        "{HITS} hits of a ByteBuf allocated {allocated} times"
    );
}

static ATTR_CACHE: LazyLock<Cache> = LazyLock::new(memory_cache);

#[cacher::memoize(cache = ATTR_CACHE, namespace = "allocations::cube")]
fn cube(x: u64) -> u64 {
    x * x * x
}

#[test]
fn a_memoize_attribute_hit_of_a_u64_allocates_nothing() {
    assert_eq!(cube(3), 27);
    assert_eq!(cube(3), 27);
    let (sum, allocated) = allocations_of(|| (0..HITS).map(|_| cube(3)).sum::<u64>());
    assert_eq!(sum, 27 * HITS);
    assert_eq!(
        allocated, 0,
        "{HITS} hits of a u64 allocated {allocated} times"
    );
}

#[cfg(feature = "lmdb")]
#[test]
fn a_memoized_hit_of_a_u64_on_lmdb_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = cacher::store::LmdbStore::open(dir.path()).unwrap();
    let cache = Cache::builder().store(store).build().unwrap();
    let square = cache
        .memoize("allocations::square")
        .wrap(|x: u64| x * x)
        .unwrap();
    assert_eq!(square.call(9), 81);
    assert_eq!(square.call(9), 81);
    let (sum, allocated) = allocations_of(|| (0..HITS).map(|_| square.call(9)).sum::<u64>());
    assert_eq!(sum, 81 * HITS);
    assert_eq!(
        allocated, 0,
        "{HITS} hits of a u64 allocated {allocated} times"
    );
}
