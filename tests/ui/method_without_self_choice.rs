// A method must say how `self` joins the key.
use cacher::{memoize, Cache};

struct Api {
    cache: Cache,
}

impl Api {
    #[memoize(cache = self.cache)]
    fn get(&self, path: &str) -> String {
        path.to_string()
    }
}

fn main() {}
