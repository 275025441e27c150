//! The raw format adds no copy beyond the envelope: writing a 1 MiB raw value allocates once
//! (the stored value, at its exact size), and reading it back allocates nothing — the bytes
//! are lent from the stored buffer. Counted with a per-thread counting allocator, so this file
//! is its own test binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The store key test values are written under.
const KEY: &[u8] = b"key";

use cacher_formats::{EnvelopeMeta, Registry};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    static BYTES: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every method forwards to the system allocator unchanged; the counters are
// thread-local `Cell`s with const initialisers, which never allocate.
#[expect(
    unsafe_code,
    reason = "a counting allocator that forwards to System (see SAFETY)"
)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        let _ = BYTES.try_with(|c| c.set(c.get() + layout.size()));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        let _ = BYTES.try_with(|c| c.set(c.get() + new_size));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations and bytes allocated on this thread while running `f`.
fn counted<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let (a0, b0) = (ALLOCATIONS.with(Cell::get), BYTES.with(Cell::get));
    let out = f();
    let (a1, b1) = (ALLOCATIONS.with(Cell::get), BYTES.with(Cell::get));
    (out, a1 - a0, b1 - b0)
}

#[test]
fn raw_values_are_written_with_one_allocation_and_read_with_none() {
    let registry = Registry::with_builtins();
    let raw = registry.resolve("raw").unwrap();
    let blob: Vec<u8> = (0..1 << 20).map(|i| (i * 31 % 251) as u8).collect();
    let meta = EnvelopeMeta::default();

    let (stored, allocations, bytes) =
        counted(|| raw.encode_value_bytes(KEY, &blob, &meta).unwrap());
    assert_eq!(allocations, 1, "one buffer for header + payload");
    assert_eq!(bytes, stored.len(), "allocated at its exact size");
    assert_eq!(stored.capacity(), stored.len());

    // The serde path with serde_bytes is the same single copy.
    let (via_serde, allocations, _) = counted(|| {
        raw.encode_value(KEY, serde_bytes::Bytes::new(&blob), &meta)
            .unwrap()
    });
    assert_eq!(via_serde, stored);
    assert!(allocations <= 2, "{allocations}"); // no size hint: may grow once

    // Reading lends the payload: no allocation of payload size at all.
    let (lent, _allocations, bytes) = counted(|| {
        let (header, lent) = registry.decode_value_bytes(KEY, &stored).unwrap();
        (header.header_len(), lent.as_ptr(), lent.len())
    });
    assert!(bytes < 4096, "reading allocated {bytes} bytes");
    assert_eq!(lent.1, stored[lent.0..].as_ptr());
    assert_eq!(lent.2, blob.len());
}
