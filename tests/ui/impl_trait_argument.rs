// The type of an `impl Trait` argument cannot join the key.
use std::sync::LazyLock;
use cacher::{memoize, Cache};

static CACHE: LazyLock<Cache> = LazyLock::new(|| unimplemented!());

#[memoize(cache = CACHE)]
fn show(x: impl serde::Serialize + std::fmt::Debug) -> String {
    format!("{x:?}")
}

fn main() {}
