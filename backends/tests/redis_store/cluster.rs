//! A 3-master Redis Cluster started by the test: the kit's checks, batches on one slot per
//! store, stores spread over the masters, leases, and invalidation of a memory tier.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cacher_store::redis::{Invalidated, RedisOptions, RedisStore};
use cacher_store::testkit as t;
use cacher_store::{Store, Tiered};

use crate::server::{self, Server};

/// Three masters on free loopback ports, joined with `redis-cli --cluster create`.
fn start_cluster() -> Vec<Server> {
    let mut nodes = Vec::new();
    while nodes.len() < 3 {
        let port = server::free_port_pair();
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "5000",
        ];
        // A port taken between the probe and the start: draw another.
        if let Some(s) = Server::start_on_port(port, &args) {
            nodes.push(s);
        }
    }
    let addrs: Vec<String> = nodes
        .iter()
        .map(|s| match s.listen {
            server::Listen::Port(p) => format!("127.0.0.1:{p}"),
            server::Listen::Socket(_) => unreachable!("cluster nodes listen on ports"),
        })
        .collect();
    let out = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("running redis-cli --cluster create");
    assert!(
        out.status.success(),
        "redis-cli --cluster create failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let end = Instant::now() + Duration::from_secs(30);
    for node in &nodes {
        loop {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut node.raw(""))
                .expect("CLUSTER INFO");
            if info.contains("cluster_state:ok") {
                break;
            }
            assert!(Instant::now() < end, "cluster never became ok: {info}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    nodes
}

fn dbsize(node: &Server) -> u64 {
    redis::cmd("DBSIZE")
        .query(&mut node.raw(""))
        .expect("DBSIZE")
}

#[test]
fn a_three_master_cluster_passes_the_kit_and_spreads_stores_over_masters() {
    if !server::available() {
        return;
    }
    let nodes = start_cluster();
    let urls: Vec<String> = nodes.iter().map(Server::url).collect();
    // Giving one node is enough: the client discovers the others.
    let first = [urls[0].as_str()];
    let open = |dir: &Path| {
        let prefix = dir.to_str().expect("utf-8 temp path").replace('/', "_");
        RedisStore::open_cluster(&first, &RedisOptions::new(prefix)).expect("open on the cluster")
    };
    t::round_trips_values_of_every_size(&open);
    t::odd_keys_are_distinct_and_safe(&open);
    t::overwrite_replaces_value(&open);
    t::iteration_equals_contents(&open);
    t::batches_round_trip(&open);
    t::threads_write_overlapping_keys(&open);
    t::reopen_keeps_writes(&open, true);
    t::model_test_against_btreemap(&open, true, 12);

    // Fixed prefixes, so which master holds each is fixed too: a store's batch is one MSET
    // on one node (no CROSSSLOT), and the stores are spread over the masters.
    for node in &nodes {
        redis::cmd("FLUSHALL").exec(&mut node.raw("")).unwrap();
    }
    let urls_ref: Vec<&str> = urls.iter().map(String::as_str).collect();
    for i in 0..12 {
        let store =
            RedisStore::open_cluster(&urls_ref, &RedisOptions::new(format!("c{i}"))).unwrap();
        let keys: Vec<Vec<u8>> = (0..20u8).map(|k| vec![k]).collect();
        let entries: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &b"v"[..])).collect();
        store.put_many(&entries).unwrap();
        let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        assert!(store
            .get_many(&refs)
            .unwrap()
            .iter()
            .all(|v| v.as_deref() == Some(&b"v"[..])));
        assert_eq!(store.len().unwrap(), 20);
    }
    let sizes: Vec<u64> = nodes.iter().map(dbsize).collect();
    assert_eq!(sizes.iter().sum::<u64>(), 240, "{sizes:?}");
    assert!(
        sizes.iter().all(|&n| n % 20 == 0),
        "a store never splits over nodes: {sizes:?}"
    );
    assert!(
        sizes.iter().filter(|&&n| n > 0).count() >= 2,
        "stores spread: {sizes:?}"
    );

    let a = RedisStore::open_cluster(&first, &RedisOptions::new("leases")).unwrap();
    let b = RedisStore::open_cluster(&[urls[2].as_str()], &RedisOptions::new("leases")).unwrap();
    let held = a
        .try_lease(b"job", Duration::from_secs(60))
        .unwrap()
        .unwrap();
    assert!(b
        .try_lease(b"job", Duration::from_secs(60))
        .unwrap()
        .is_none());
    assert!(held.release().unwrap());
    assert!(b
        .try_lease(b"job", Duration::from_secs(60))
        .unwrap()
        .is_some());

    // A memory tier in front of the cluster hears of another client's overwrite and delete.
    let tiered = Tiered::new(a.clone(), 1 << 20);
    let hot = tiered.invalidator();
    let _watch = a
        .watch_invalidations(move |change| match change {
            Invalidated::Key(k) => hot.invalidate(k),
            Invalidated::All => hot.invalidate_all(),
        })
        .unwrap();
    tiered.put(b"k", b"v1").unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while tiered.hot_bytes() == 0 {
        assert_eq!(tiered.get(b"k").unwrap().as_deref(), Some(&b"v1"[..]));
        assert!(Instant::now() < end, "k never stayed in the hot tier");
        std::thread::sleep(Duration::from_millis(5));
    }
    b.put(b"k", b"v2").unwrap();
    eventually(&tiered, b"k", Some(b"v2"));
    b.delete(b"k").unwrap();
    eventually(&tiered, b"k", None);
}

fn eventually(store: &impl Store, key: &[u8], want: Option<&[u8]>) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let got = store.get(key).unwrap();
        if got.as_deref() == want {
            return;
        }
        assert!(
            Instant::now() < end,
            "still {got:?}, want {want:?}: not invalidated"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
