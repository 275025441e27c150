//! The whole conformance kit on a single server. Each test thread has its own server; the
//! store's prefix comes from the kit's directory, so a reopen finds the same entries.

use std::cell::RefCell;
use std::path::Path;

use cacher_store::redis::{RedisOptions, RedisStore};

use crate::server::Server;

thread_local! {
    static SERVER: RefCell<Option<Server>> = const { RefCell::new(None) };
}

fn open(dir: &Path) -> RedisStore {
    let url = SERVER.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_none() {
            *s = Server::start(&[]);
        }
        s.as_ref().expect("server checked available").url()
    });
    let prefix = dir.to_str().expect("utf-8 temp path").replace('/', "_");
    RedisStore::open_with(&url, &RedisOptions::new(prefix)).expect("open RedisStore")
}

macro_rules! kit {
    ($($name:ident => $check:expr;)*) => {$(
        #[test]
        fn $name() {
            if !crate::server::available() {
                return;
            }
            $check;
        }
    )*};
}

use cacher_store::testkit as t;

kit! {
    conformance_round_trips_values_of_every_size => t::round_trips_values_of_every_size(&open);
    conformance_round_trips_a_64_mib_value => t::round_trips_a_64_mib_value(&open);
    conformance_odd_keys_are_distinct_and_safe => t::odd_keys_are_distinct_and_safe(&open);
    conformance_overwrite_replaces_value => t::overwrite_replaces_value(&open);
    conformance_delete_of_missing_key_is_not_an_error => t::delete_of_missing_key_is_not_an_error(&open);
    conformance_iteration_equals_contents => t::iteration_equals_contents(&open);
    conformance_batches_round_trip => t::batches_round_trip(&open);
    conformance_streaming_put_and_lent_reads => t::streaming_put_and_lent_reads(&open);
    conformance_threads_write_disjoint_keys => t::threads_write_disjoint_keys(&open);
    conformance_threads_write_overlapping_keys => t::threads_write_overlapping_keys(&open);
    conformance_reopen_keeps_writes => t::reopen_keeps_writes(&open, true);
    conformance_model_test_against_btreemap => t::model_test_against_btreemap(&open, true, 48);
}
