//! Function identity with `#[memoize]`: issue 8 found two `fetch` functions in different
//! modules sharing keys (`posts::fetch(1)` returned `"user1"`), methods of different values
//! sharing results (`staging.get("/x")` returned what `prod.get("/x")` computed), and a generic
//! function sharing one key for every type parameter.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::LazyLock;

use cacher::memo::Status;
use cacher::store::MemoryStore;
use cacher::{memoize, Cache, Call};
use serde::Serialize;

static CACHE: LazyLock<Cache> =
    LazyLock::new(|| Cache::builder().store(MemoryStore::new()).build().unwrap());

mod users {
    #[cacher::memoize(cache = crate::CACHE)]
    pub fn fetch(id: u64) -> String {
        format!("user{id}")
    }
}

mod posts {
    #[cacher::memoize(cache = crate::CACHE)]
    pub fn fetch(id: u64) -> String {
        format!("post{id}")
    }

    #[cacher::memoize(cache = crate::CACHE, namespace = "shared_count")]
    pub fn count_a(id: u64) -> u64 {
        id + 1
    }

    #[cacher::memoize(cache = crate::CACHE, namespace = "shared_count")]
    pub fn count_b(id: u64) -> u64 {
        id + 1000
    }
}

#[test]
fn functions_of_one_name_in_two_modules_do_not_share_values() {
    assert_eq!(users::fetch(1), "user1");
    assert_eq!(posts::fetch(1), "post1");
    assert_eq!(users::fetch(1), "user1");
    let stats = CACHE.stats();
    assert!(stats
        .namespaces
        .contains_key("memoize_identity::users::fetch"));
    assert!(stats
        .namespaces
        .contains_key("memoize_identity::posts::fetch"));
}

#[test]
fn an_explicit_namespace_shares_on_purpose() {
    assert_eq!(posts::count_a(5), 6);
    assert_eq!(posts::count_b(5), 6, "same namespace and arguments: shared");
}

#[derive(Serialize)]
struct Endpoint {
    base: String,
}

static GETS: AtomicU32 = AtomicU32::new(0);

impl Endpoint {
    /// The whole `self` is part of the key.
    #[memoize(cache = CACHE, self)]
    fn get(&self, path: &str) -> String {
        GETS.fetch_add(1, SeqCst);
        format!("{}{path}", self.base)
    }
}

#[test]
fn a_method_keyed_on_self_does_not_return_another_values_result() {
    let prod = Endpoint {
        base: "https://prod".into(),
    };
    let staging = Endpoint {
        base: "https://staging".into(),
    };
    assert_eq!(prod.get("/x"), "https://prod/x");
    assert_eq!(staging.get("/x"), "https://staging/x");
    assert_eq!(prod.get("/x"), "https://prod/x");
    assert_eq!(GETS.load(SeqCst), 2);
}

struct Left;
struct Right;

impl Left {
    #[memoize(cache = CACHE, skip_self)]
    fn side(&self, x: u64) -> u64 {
        x
    }
}

impl Right {
    #[memoize(cache = CACHE, skip_self)]
    fn side(&self, x: u64) -> u64 {
        x + 100
    }
}

#[test]
fn methods_of_one_name_on_two_types_do_not_share_values() {
    assert_eq!(Left.side(1), 1);
    assert_eq!(Right.side(1), 101);
    assert_eq!(Left.side(1), 1);
}

trait Label {
    const LABEL: &'static str;
}
struct Apples;
struct Pears;
impl Label for Apples {
    const LABEL: &'static str = "apples";
}
impl Label for Pears {
    const LABEL: &'static str = "pears";
}

#[memoize(cache = CACHE)]
fn label<T: Label>(n: u32) -> String {
    format!("{n} {}", T::LABEL)
}

#[test]
fn a_generic_function_keys_on_its_type_parameters() {
    assert_eq!(label::<Apples>(3), "3 apples");
    assert_eq!(label::<Pears>(3), "3 pears");
    assert_eq!(label::<Apples>(3), "3 apples");
}

static DOUBLES: AtomicU32 = AtomicU32::new(0);

#[memoize(cache = CACHE)]
fn double(x: u64) -> u64 {
    DOUBLES.fetch_add(1, SeqCst);
    x * 2
}

#[test]
fn the_attribute_reports_hits_and_invalidates() {
    assert_eq!(
        double_with_status(Call::default(), 21).unwrap(),
        (42, Status::Miss)
    );
    assert_eq!(
        double_with_status(Call::default(), 21).unwrap(),
        (42, Status::Hit)
    );
    assert!(double_invalidate(21).unwrap(), "there was a value");
    assert!(!double_invalidate(21).unwrap());
    assert_eq!(double(21), 42);
    assert_eq!(DOUBLES.load(SeqCst), 2, "recomputed after invalidate");
    double(1);
    assert_eq!(
        double_clear().unwrap(),
        2,
        "both results of `double` removed"
    );
    assert_eq!(
        double_with_status(Call::default(), 1).unwrap().1,
        Status::Miss
    );
}

/// The default namespace of each kind of function, as the key module documents it.
#[test]
fn default_namespaces_are_the_function_paths() {
    use cacher::key::{canonical_bytes, store_key};
    let key = |ns: &str, args: Vec<u8>| store_key(ns, 1, &[&args]);
    users::fetch(7);
    Left.side(7);
    label::<Pears>(7);
    for (ns, args) in [
        (
            "memoize_identity::users::fetch",
            canonical_bytes(&7u64).unwrap(),
        ),
        (
            "memoize_identity::Left::side",
            canonical_bytes(&7u64).unwrap(),
        ),
        (
            "memoize_identity::label::<memoize_identity::Pears>",
            canonical_bytes(&7u32).unwrap(),
        ),
    ] {
        assert!(CACHE.contains(key(ns, args)).unwrap(), "{ns}");
    }
}
