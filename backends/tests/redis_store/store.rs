//! What RedisStore adds to the kit: checked values, limits, SCAN, batches, native expiry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cacher_store::redis::{RedisOptions, RedisStore};
use cacher_store::{Error, Store};

use crate::server::{self, Server};
use crate::unique_prefix;

/// Calls of `command` the server has counted (`INFO commandstats`).
fn calls(server: &Server, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.raw(""))
        .expect("INFO");
    let tag = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&tag))
        .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
        .unwrap_or(0)
}

#[test]
fn a_damaged_or_foreign_value_is_corrupt_and_never_returned() {
    let Some((server, store)) = server::with_store("damage") else {
        return;
    };
    store.put(b"k", b"hello world").unwrap();
    let mut raw = server.raw("");
    let rkey = store.redis_key(b"k");
    let mut stored: Vec<u8> = redis::cmd("GET").arg(&rkey).query(&mut raw).unwrap();
    *stored.last_mut().unwrap() ^= 1;
    redis::cmd("SET")
        .arg(&rkey)
        .arg(&stored)
        .exec(&mut raw)
        .unwrap();
    redis::cmd("SET")
        .arg(store.redis_key(b"foreign"))
        .arg("set by another program")
        .exec(&mut raw)
        .unwrap();
    for key in [&b"k"[..], b"foreign"] {
        assert!(store.get(key).unwrap_err().is_corrupt(), "get");
        assert!(store.read(key).unwrap_err().is_corrupt(), "read");
        assert!(store.get_many(&[key]).unwrap_err().is_corrupt(), "get_many");
    }
    // A value moved under another key fails too: the key is in the checksum.
    store.put(b"a", b"value of a").unwrap();
    redis::cmd("COPY")
        .arg(store.redis_key(b"a"))
        .arg(store.redis_key(b"b"))
        .exec(&mut raw)
        .unwrap();
    assert!(store.get(b"b").unwrap_err().is_corrupt());
    let report = store.verify().unwrap();
    assert_eq!((report.checked, report.damaged.len()), (4, 3));
}

#[test]
fn values_over_the_limit_are_refused_with_a_clear_error_before_reading_them_whole() {
    let Some(server) = Server::start(&[]) else {
        return;
    };
    assert_eq!(
        RedisOptions::new("x").max_value_len(),
        (512 << 20) - 8,
        "the default is Redis's 512 MiB string limit less the header"
    );
    let options = RedisOptions::new(unique_prefix("limit")).with_max_value_len(100);
    let store = server.store_with(&options);
    store.put(b"ok", &[7; 100]).unwrap();
    let err = store.put(b"big", &[7; 101]).unwrap_err();
    assert!(matches!(err, Error::InvalidKey { .. }), "{err:?}");
    assert!(err.to_string().contains("512 MiB"), "{err}");
    assert!(store
        .put_many(&[(b"a", b"1"), (b"big", &[7; 101])])
        .is_err());
    assert_eq!(
        store.get(b"a").unwrap(),
        None,
        "a refused batch writes nothing"
    );
    // An endless reader is cut at the limit, not buffered forever.
    let err = store
        .put_reader(b"endless", &mut std::io::repeat(1))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidKey { .. }), "{err:?}");
    assert_eq!(store.get(b"big").unwrap(), None);
    assert_eq!(store.get(b"ok").unwrap(), Some(vec![7; 100]));
}

#[test]
fn keys_come_from_scan_never_keys_and_only_from_this_prefix() {
    let Some(server) = Server::start(&[]) else {
        return;
    };
    // "a*" would match "ab..." keys if the prefix were not escaped in the SCAN pattern.
    let star = server.store("a*");
    let ab = server.store("ab");
    for i in 0..2500u32 {
        star.put(format!("s{i}").as_bytes(), b"1").unwrap();
    }
    ab.put(b"other", b"2").unwrap();
    star.try_lease(b"s1", Duration::from_secs(60))
        .unwrap()
        .unwrap();
    let mut keys: Vec<Vec<u8>> = star.keys().unwrap().map(Result::unwrap).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        2500,
        "every key once, no lease, no other prefix"
    );
    assert_eq!(star.len().unwrap(), 2500);
    assert_eq!(ab.keys().unwrap().count(), 1);
    assert_eq!(calls(&server, "keys"), 0);
    assert!(
        calls(&server, "scan") >= 3,
        "2500 keys take several SCAN batches"
    );
}

#[test]
fn batches_are_one_command_each() {
    let Some((server, store)) = server::with_store("batch") else {
        return;
    };
    let entries: Vec<(Vec<u8>, Vec<u8>)> =
        (0..50u8).map(|i| (vec![i], vec![i; i as usize])).collect();
    let refs: Vec<(&[u8], &[u8])> = entries.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    store.put_many(&refs).unwrap();
    let keys: Vec<&[u8]> = refs.iter().map(|(k, _)| *k).collect();
    let got = store.get_many(&keys).unwrap();
    assert_eq!(
        got,
        entries
            .iter()
            .map(|(_, v)| Some(v.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!((calls(&server, "mset"), calls(&server, "mget")), (1, 1));
    assert_eq!((calls(&server, "set"), calls(&server, "get")), (0, 0));
}

#[test]
fn a_dedicated_database_counts_with_dbsize_and_refuses_leases() {
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let url = format!("{}?db=3", server.url());
    let options = RedisOptions::new("only").with_dedicated_db(true);
    let store = RedisStore::open_with(&url, &options).unwrap();
    store
        .put_many(&[(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
        .unwrap();
    assert_eq!(store.len().unwrap(), 3);
    assert_eq!(calls(&server, "dbsize"), 1);
    assert_eq!(calls(&server, "scan"), 0);
    let err = store.try_lease(b"x", Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    // The same prefix on database 0 is another store.
    assert_eq!(server.store("only").len().unwrap(), 0);
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn a_deadline_becomes_the_keys_pexpireat_and_a_plain_put_clears_it() {
    let Some((server, store)) = server::with_store("expiry") else {
        return;
    };
    let mut raw = server.raw("");
    let pexpiretime = |raw: &mut redis::Connection, key: &[u8]| -> i64 {
        redis::cmd("PEXPIRETIME")
            .arg(store.redis_key(key))
            .query(raw)
            .unwrap()
    };
    let deadline = now_ms() + 3_600_000;
    store.put_with_deadline(b"k", b"v", Some(deadline)).unwrap();
    assert_eq!(pexpiretime(&mut raw, b"k"), deadline as i64);
    store.put(b"k", b"v2").unwrap();
    assert_eq!(
        pexpiretime(&mut raw, b"k"),
        -1,
        "an overwrite without deadline keeps it"
    );
    store.put_with_deadline(b"k", b"v3", None).unwrap();
    assert_eq!(pexpiretime(&mut raw, b"k"), -1);
    // A deadline already past: Redis drops the entry at once.
    store
        .put_with_deadline(b"gone", b"v", Some(now_ms() - 1000))
        .unwrap();
    assert_eq!(store.get(b"gone").unwrap(), None);
    store.put_with_deadline(b"zero", b"v", Some(0)).unwrap();
    assert_eq!(store.get(b"zero").unwrap(), None);
    // Redis removes it when the deadline passes, with no help from the client.
    store
        .put_with_deadline(b"soon", b"v", Some(now_ms() + 50))
        .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while store.contains(b"soon").unwrap() {
        assert!(
            std::time::Instant::now() < end,
            "Redis never expired the key"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Through a Tiered store too.
    let tiered = cacher_store::Tiered::new(store.clone(), 1 << 20);
    tiered
        .put_with_deadline(b"t", b"v", Some(deadline))
        .unwrap();
    assert_eq!(pexpiretime(&mut raw, b"t"), deadline as i64);
}

#[test]
fn a_prefix_with_braces_and_a_bad_url_are_refused_without_echoing_the_password() {
    let err = RedisStore::open("redis://127.0.0.1:1/0", "a{b}").unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    let err = RedisStore::open("redis://user:hunter2@[bad/0", "p").unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}
