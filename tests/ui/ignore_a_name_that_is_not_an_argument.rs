// `ignore(requestid)` with an argument named `request_id`: a typo, refused.
use std::sync::LazyLock;
use cacher::{memoize, Cache};

static CACHE: LazyLock<Cache> = LazyLock::new(|| unimplemented!());

#[memoize(cache = CACHE, ignore(requestid))]
fn fetch(url: &str, request_id: u64) -> String {
    let _ = request_id;
    url.to_string()
}

fn main() {}
