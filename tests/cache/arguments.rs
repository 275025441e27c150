//! Wrapper ergonomics (issue 10, item 7): functions of 1–6 arguments without a hand-written
//! tuple, borrowed arguments not cloned on a hit, ignored arguments that are not `Serialize`.

use cacher::memo::Ignored;

use super::*;

/// Counts its clones: a hit must not make any.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Big {
    rows: Vec<u32>,
}

static BIG_CLONES: AtomicU32 = AtomicU32::new(0);

impl Clone for Big {
    fn clone(&self) -> Self {
        BIG_CLONES.fetch_add(1, SeqCst);
        Big {
            rows: self.rows.clone(),
        }
    }
}

/// Not `Serialize`: a client handle is no part of an answer.
struct Client {
    requests: AtomicU32,
}

#[test]
fn functions_of_two_to_six_arguments_are_wrapped_without_a_tuple() {
    let cache = env().cache();
    let calls = AtomicU32::new(0);
    let two = cache.wrap("two", |a: u32, b: u32| {
        calls.fetch_add(1, SeqCst);
        a + b
    });
    assert_eq!(two.call((1, 2)), 3);
    assert_eq!(two.call((1, 2)), 3);
    assert_eq!(two.call((2, 1)), 3);
    assert_eq!(calls.load(SeqCst), 2, "(1, 2) once, (2, 1) is another key");

    let six = cache
        .memoize("six")
        .wrap(|a: u8, b: u16, c: u32, d: u64, e: String, f: bool| {
            calls.fetch_add(1, SeqCst);
            format!("{a}{b}{c}{d}{e}{f}")
        })
        .unwrap();
    assert_eq!(six.call((1, 2, 3, 4, "e".into(), true)), "1234etrue");
    assert_eq!(six.call((1, 2, 3, 4, "e".into(), true)), "1234etrue");
    assert_eq!(calls.load(SeqCst), 3);
}

#[test]
fn several_arguments_key_like_the_tuple_form_and_the_attribute() {
    let cache = env().cache();
    let tuple = cache
        .memoize("scaled")
        .args(["x", "factor", "trace_id"])
        .ignore("trace_id")
        .wrap(|(x, factor, _t): (u64, u64, String)| x * factor)
        .unwrap();
    let spread = cache
        .memoize("scaled")
        .wrap(|x: u64, factor: u64, _t: Ignored<&str>| x * factor)
        .unwrap();
    let named = cache
        .memoize("scaled")
        .args(["x", "factor", "trace_id"])
        .ignore("trace_id")
        .wrap(|x: u64, factor: u64, _t: &str| x * factor)
        .unwrap();
    let key = tuple.key_for(&(3, 4, "req-1".to_string())).unwrap();
    assert_eq!(spread.key_for(&(3, 4, Ignored("req-2"))).unwrap(), key);
    assert_eq!(named.key_for(&(3, 4, "req-3")).unwrap(), key);
    assert_eq!(tuple.call((3, 4, "a".into())), 12);
    assert_eq!(
        spread
            .call_with_status((3, 4, Ignored("b")), Call::default())
            .unwrap(),
        (12, cacher::memo::Status::Hit)
    );
}

#[test]
fn borrowed_arguments_are_not_cloned_on_a_hit() {
    let cache = env().cache();
    let calls = AtomicU32::new(0);
    let total = cache.wrap("total", |big: &Big, label: &str| {
        calls.fetch_add(1, SeqCst);
        format!("{label}={}", big.rows.iter().sum::<u32>())
    });
    let big = Big {
        rows: (0..1000).collect(),
    };
    let before = BIG_CLONES.load(SeqCst);
    assert_eq!(total.call((&big, "sum")), "sum=499500");
    for _ in 0..3 {
        assert_eq!(total.call((&big, "sum")), "sum=499500");
    }
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(BIG_CLONES.load(SeqCst), before, "no clone, hit or miss");
}

#[test]
fn borrowed_arguments_may_live_shorter_than_the_memo() {
    let cache = env().cache();
    let len = cache.wrap("len", |s: &str| s.len());
    for i in 0..3 {
        // Each argument is dropped at the end of its iteration, long before `len`.
        let owned = format!("key-{i}");
        assert_eq!(len.call(&owned), 5);
    }
    assert_eq!(cache.stats().namespaces["len"].stores, 3);
}

#[test]
fn ignored_arguments_need_not_be_serialize() {
    let cache = env().cache();
    let client = Client {
        requests: AtomicU32::new(0),
    };
    let other = Client {
        requests: AtomicU32::new(0),
    };
    let fetch = cache.wrap("fetch", |client: Ignored<&Client>, url: &str| {
        client.requests.fetch_add(1, SeqCst);
        format!("GET {url}")
    });
    assert_eq!(fetch.call((Ignored(&client), "/a")), "GET /a");
    assert_eq!(fetch.call((Ignored(&other), "/a")), "GET /a");
    assert_eq!(client.requests.load(SeqCst), 1);
    assert_eq!(
        other.requests.load(SeqCst),
        0,
        "another client: still a hit"
    );
    // A function whose only argument is ignored has one result.
    let only = cache.wrap("only", |c: Ignored<&Client>| {
        c.requests.fetch_add(1, SeqCst);
        7
    });
    assert_eq!(only.call(Ignored(&client)), 7);
    assert_eq!(only.call(Ignored(&other)), 7);
    assert_eq!(client.requests.load(SeqCst), 2);
}

#[test]
fn ignoring_a_position_a_function_does_not_have_is_an_error_not_a_silent_key() {
    let cache = env().cache();
    let two = cache
        .memoize("two")
        .ignore_position(5)
        .wrap(|a: u32, b: u32| a + b)
        .unwrap();
    assert!(matches!(two.key_for(&(1, 2)), Err(Error::Key(_))));
    assert!(two.try_call((1, 2)).is_err());
    assert_eq!(
        two.call((1, 2)),
        3,
        "the plain call still returns the value"
    );
}
