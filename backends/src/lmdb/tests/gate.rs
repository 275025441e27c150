//! The resize gate: a `ShardedLock` whose readers each lock their own thread's stripe. A resize
//! must still exclude every reader, on whichever stripe, or it unmaps pages a read is using.

use std::sync::mpsc;

use super::small;
use crate::lmdb::LmdbStore;
use crate::{Error, Store};

/// More threads than the lock has stripes (8), alive at once so each has its own thread
/// index: every stripe is held by one of them in turn, and one stripe by two.
const READERS: usize = 9;

#[test]
fn the_gate_is_not_free_while_a_reader_on_any_stripe_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    let shared = store.env().shared();
    assert!(shared.gate_is_free());
    std::thread::scope(|s| {
        let mut turns = Vec::new();
        let (held_tx, held) = mpsc::channel::<()>();
        for _ in 0..READERS {
            let (turn_tx, turn) = mpsc::channel::<mpsc::Receiver<()>>();
            turns.push(turn_tx);
            let held_tx = held_tx.clone();
            s.spawn(move || {
                // Each turn brings the channel that says when to let go.
                for release in turn {
                    let gate = shared.gate_shared();
                    held_tx.send(()).unwrap();
                    release.recv().unwrap();
                    drop(gate);
                    held_tx.send(()).unwrap();
                }
            });
        }
        for (t, turn) in turns.iter().enumerate() {
            let (release_tx, release) = mpsc::channel();
            turn.send(release).unwrap();
            held.recv().unwrap();
            assert!(
                !shared.gate_is_free(),
                "reader {t} holds the gate, yet it is free"
            );
            release_tx.send(()).unwrap();
            held.recv().unwrap();
            assert!(
                shared.gate_is_free(),
                "reader {t} let go, yet the gate is taken"
            );
        }
        drop(turns);
    });
}

/// Readers on more threads than stripes check every value they are lent while another thread
/// makes the map remap hundreds of times (a put past the cap grows the map and puts it back:
/// two remaps per refused put, 160 here). A reader the resize did not exclude would read unmapped or
/// remapped pages: a crash, or a CRC mismatch reported as corrupt.
#[test]
fn reads_on_many_threads_while_another_thread_remaps_the_map_get_their_values() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let options = small().with_max_map_size(Some(1 << 20));
    let store = LmdbStore::open_with(dir.path(), &options).unwrap();
    let value = |i: u8| vec![i; 100 + i as usize];
    for i in 0..100u8 {
        store.put(&[i], &value(i)).unwrap();
    }
    let done = AtomicBool::new(false);
    let reads = std::thread::scope(|s| {
        s.spawn(|| {
            // Just past what the capped map holds, so each refusal comes quickly.
            let big = vec![7u8; 1 << 20];
            for _ in 0..80 {
                let refused = store.put(b"big", &big);
                assert!(matches!(refused, Err(Error::Full { .. })), "{refused:?}");
            }
            done.store(true, Ordering::Release);
        });
        let readers: Vec<_> = (0..READERS)
            .map(|t| {
                let (store, done) = (&store, &done);
                s.spawn(move || {
                    let mut reads = 0u64;
                    let mut i = t as u8;
                    while !done.load(Ordering::Acquire) {
                        i = (i + 1) % 100;
                        let mut same = false;
                        let found = store.with_value(&[i], &mut |v| same = v == value(i));
                        assert!(found.unwrap(), "key {i} went missing");
                        assert!(same, "key {i} lent other bytes");
                        reads += 1;
                        // Nine readers on two cores would starve the remapping thread.
                        std::thread::yield_now();
                    }
                    reads
                })
            })
            .collect();
        readers
            .into_iter()
            .map(|r| r.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert!(
        reads.iter().all(|&n| n > 0),
        "a reader never overlapped: {reads:?}"
    );
    assert!(store.env().stats().map_grown == 0 && store.env().map_size() == 1 << 20);
}
