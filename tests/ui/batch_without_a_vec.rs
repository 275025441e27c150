// A batch function takes its inputs as one `Vec` and returns one result per input.
use std::sync::LazyLock;
use cacher::{memoize, Cache};

static CACHE: LazyLock<Cache> = LazyLock::new(|| unimplemented!());

#[memoize(cache = CACHE, batch)]
fn embed(texts: &[String]) -> Vec<u32> {
    texts.iter().map(|t| t.len() as u32).collect()
}

#[memoize(cache = CACHE, batch)]
fn two_inputs(texts: Vec<String>, model: String) -> Vec<u32> {
    let _ = model;
    texts.iter().map(|t| t.len() as u32).collect()
}

fn main() {}
