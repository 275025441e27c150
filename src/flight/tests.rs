use super::*;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Barrier;
use std::task::Wake;

/// A minimal executor: polls on this thread, parks between wake-ups.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn the_first_caller_leads_and_the_others_wait_for_its_guard() {
    let flights = Flights::new();
    let Role::Leader(guard) = flights.lead_or_wait(b"k") else {
        panic!("nobody else computes")
    };
    assert!(guard.needs_recheck(), "a stale ticket always rechecks");
    let released = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let role = flights.lead_or_wait(b"k");
                    // The guard is dropped only after `released` is set.
                    assert_eq!(released.load(SeqCst), 1);
                    matches!(role, Role::Waited)
                })
            })
            .collect();
        while lock(&flights.map)
            .get(&b"k"[..])
            .is_some_and(|f| Arc::strong_count(f) < 5)
        {
            std::thread::yield_now();
        }
        released.store(1, SeqCst);
        drop(guard);
        for w in waiters {
            assert!(w.join().unwrap());
        }
    });
    assert_eq!(flights.in_flight(), 0);
}

#[test]
fn a_fresh_ticket_needs_no_recheck_and_an_old_one_does() {
    let flights = Flights::new();
    let ticket = flights.ticket();
    let Role::Leader(g) = flights.lead_or_wait_since(b"a", ticket) else {
        panic!()
    };
    assert!(!g.needs_recheck());
    drop(g);
    let Role::Leader(g) = flights.lead_or_wait_since(b"b", ticket) else {
        panic!()
    };
    assert!(g.needs_recheck(), "flight `a` finished since the ticket");
}

#[test]
fn a_panicking_leader_releases_its_waiters() {
    let flights = Flights::new();
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let leader = s.spawn(|| {
            let _guard = match flights.lead_or_wait(b"k") {
                Role::Leader(g) => g,
                other => panic!("{other:?}"),
            };
            barrier.wait();
            while lock(&flights.map)
                .get(&b"k"[..])
                .is_some_and(|f| Arc::strong_count(f) < 3)
            {
                std::thread::yield_now();
            }
            panic!("the computation failed");
        });
        barrier.wait();
        let role = flights.lead_or_wait(b"k");
        assert!(matches!(role, Role::Waited), "{role:?}");
        assert!(leader.join().is_err());
    });
    assert!(matches!(flights.lead_or_wait(b"k"), Role::Leader(_)));
}

#[test]
fn a_recursive_call_of_the_same_key_is_reentrant_not_a_deadlock() {
    let flights = Flights::new();
    let Role::Leader(_guard) = flights.lead_or_wait(b"k") else {
        panic!()
    };
    assert!(matches!(flights.lead_or_wait(b"k"), Role::Reentrant));
    assert!(matches!(
        block_on(flights.lead_or_wait_async(b"k", Ticket::STALE)),
        Role::Reentrant
    ));
}

#[test]
fn an_async_recursive_call_inside_watch_is_reentrant() {
    let flights = Flights::new();
    let role = block_on(async {
        let Role::Leader(guard) = flights.lead_or_wait_async(b"k", Ticket::STALE).await else {
            panic!()
        };
        guard
            .watch(async { flights.lead_or_wait_async(b"k", Ticket::STALE).await })
            .await
    });
    assert!(matches!(role, Role::Reentrant), "{role:?}");
    assert_eq!(flights.in_flight(), 0);
}

#[test]
fn an_async_waiter_wakes_when_a_cancelled_leader_is_dropped() {
    let flights = Flights::new();
    std::thread::scope(|s| {
        let Role::Leader(guard) = block_on(flights.lead_or_wait_async(b"k", Ticket::STALE)) else {
            panic!()
        };
        // The leader's computation: a future that never finishes, then cancelled (dropped).
        let leader = guard.watch(std::future::pending::<()>());
        let waiter = s.spawn(|| block_on(flights.lead_or_wait_async(b"k", Ticket::STALE)));
        while lock(&flights.map)
            .get(&b"k"[..])
            .is_some_and(|f| lock(&f.state).wakers.is_empty())
        {
            std::thread::yield_now();
        }
        drop(leader);
        drop(guard);
        assert!(matches!(waiter.join().unwrap(), Role::Waited));
    });
    assert_eq!(flights.in_flight(), 0);
}
