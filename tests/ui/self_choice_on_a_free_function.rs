// `skip_self` on a function that has no `self` says nothing true.
use std::sync::LazyLock;
use cacher::{memoize, Cache};

static CACHE: LazyLock<Cache> = LazyLock::new(|| unimplemented!());

#[memoize(cache = CACHE, skip_self)]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
