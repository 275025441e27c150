//! Leases shared by two clients (two stores, as on two hosts).

use std::time::Duration;

use crate::server::Server;

#[test]
fn a_lease_is_held_by_one_client_at_a_time() {
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let (a, b) = server.two_clients("lease");
    let held = a
        .try_lease(b"job", Duration::from_secs(60))
        .unwrap()
        .unwrap();
    assert!(b
        .try_lease(b"job", Duration::from_secs(60))
        .unwrap()
        .is_none());
    let waited = b
        .wait_lease(
            b"job",
            Duration::from_secs(60),
            Duration::from_millis(50),
            Duration::from_millis(5),
        )
        .unwrap();
    assert!(waited.is_none(), "the wait is bounded");
    assert!(b
        .try_lease(b"other", Duration::from_secs(60))
        .unwrap()
        .is_some());
    assert!(held.release().unwrap());
    let taken = b
        .try_lease(b"job", Duration::from_secs(60))
        .unwrap()
        .unwrap();
    assert!(a
        .try_lease(b"job", Duration::from_secs(60))
        .unwrap()
        .is_none());
    drop(taken); // released on drop
    assert!(a
        .try_lease(b"job", Duration::from_secs(60))
        .unwrap()
        .is_some());
}

#[test]
fn only_the_token_holder_can_release_or_extend() {
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let (a, b) = server.two_clients("lease");
    let old = a
        .try_lease(b"job", Duration::from_millis(100))
        .unwrap()
        .unwrap();
    assert!(old.extend(Duration::from_millis(100)).unwrap());
    // A's lease runs out; B takes it over.
    let new = b
        .wait_lease(
            b"job",
            Duration::from_secs(60),
            Duration::from_secs(10),
            Duration::from_millis(10),
        )
        .unwrap()
        .expect("the lease ran out within 10 s");
    assert_ne!(old.token(), new.token());
    assert!(
        !old.extend(Duration::from_secs(60)).unwrap(),
        "not A's any more"
    );
    assert!(!old.release().unwrap(), "A cannot release B's lease");
    assert!(
        a.try_lease(b"job", Duration::from_secs(60))
            .unwrap()
            .is_none(),
        "B still holds it"
    );
    assert!(new.extend(Duration::from_secs(60)).unwrap());
    assert!(new.release().unwrap());
}

#[test]
fn a_waiter_gets_the_lease_when_the_holder_releases_it() {
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let (a, b) = server.two_clients("lease");
    let held = a
        .try_lease(b"job", Duration::from_secs(60))
        .unwrap()
        .unwrap();
    let waiter = std::thread::spawn(move || {
        b.wait_lease(
            b"job",
            Duration::from_secs(60),
            Duration::from_secs(30),
            Duration::from_millis(5),
        )
        .unwrap()
        .is_some()
    });
    std::thread::sleep(Duration::from_millis(50));
    held.release().unwrap();
    assert!(waiter.join().unwrap(), "the waiter got the lease");
    assert!(
        a.try_lease(b"job", Duration::ZERO).is_err(),
        "a zero TTL is refused"
    );
}

#[test]
fn a_store_lease_is_renewed_while_held_and_released_when_dropped() {
    use cacher_store::lease::{Claim, Terms};
    use cacher_store::{Store, Tiered};
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let (a, b) = server.two_clients("lease");
    let ttl = Duration::from_millis(300);
    // Through a memory tier, as a Cache in front of Redis would ask.
    let tiered = Tiered::new(a, 1 << 20);
    let terms = Terms::new(ttl, Duration::from_secs(5));
    let Some(Claim::Won { lease, waited }) = tiered.lease(b"job", &terms).unwrap() else {
        panic!("a free lease is won");
    };
    assert!(!waited);
    assert!(matches!(
        b.lease(b"job", &terms.without_waiting()).unwrap(),
        Some(Claim::TimedOut)
    ));
    // Three TTLs later the holder still has it: its renewals kept it.
    std::thread::sleep(ttl * 3);
    assert!(b.try_lease(b"job", ttl).unwrap().is_none(), "renewed");
    assert!(!lease.is_lost());
    drop(lease);
    assert!(
        b.try_lease(b"job", ttl).unwrap().is_some(),
        "released on drop"
    );
}
