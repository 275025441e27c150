// `fields(..)` and `skip_self` contradict each other.
use cacher::{memoize, Cache};

struct Api {
    cache: Cache,
    base: String,
}

impl Api {
    #[memoize(cache = self.cache, fields(base), skip_self)]
    fn get(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn main() {}
