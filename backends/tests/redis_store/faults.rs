//! A server that dies, restarts, stalls, or wants credentials.

use std::time::Duration;

use cacher_store::redis::{RedisOptions, RedisStore};
use cacher_store::{Error, Store};

use crate::server::Server;
use crate::unique_prefix;

#[test]
fn a_killed_server_gives_unavailable_and_the_store_recovers_once_it_is_back() {
    let Some(mut server) = Server::start(&[]) else {
        return;
    };
    let options =
        RedisOptions::new(unique_prefix("restart")).with_timeout(Duration::from_millis(500));
    let store = server.store_with(&options);
    store.put(b"k", b"v").unwrap();
    server.kill();
    for _ in 0..3 {
        let err = store.get(b"k").unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert!(
            err.to_string().contains("redis.sock"),
            "names the server: {err}"
        );
        assert!(store.put(b"k", b"v").unwrap_err().is_unavailable());
    }
    server.restart();
    // The same handle works again: dead connections were dropped, new ones are opened.
    assert_eq!(
        store.get(b"k").unwrap(),
        None,
        "the restarted server kept nothing"
    );
    store.put(b"k", b"again").unwrap();
    assert_eq!(store.get(b"k").unwrap(), Some(b"again".to_vec()));
}

#[test]
fn a_slow_server_is_bounded_by_the_timeout_and_a_late_reply_is_never_taken_for_another() {
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let options = RedisOptions::new(unique_prefix("slow")).with_timeout(Duration::from_millis(300));
    let store = server.store_with(&options);
    store.put(b"a", b"value of a").unwrap();
    store.put(b"b", b"value of b").unwrap();
    let mut raw = server.raw("");
    let sleeper = std::thread::spawn(move || {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(1.5)
            .exec(&mut raw)
            .unwrap();
    });
    std::thread::sleep(Duration::from_millis(100));
    let err = store.get(b"a").unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    sleeper.join().unwrap();
    // The reply to the timed-out GET of "a" arrives now; it must not answer this GET of "b".
    for _ in 0..4 {
        assert_eq!(store.get(b"b").unwrap(), Some(b"value of b".to_vec()));
        assert_eq!(store.get(b"a").unwrap(), Some(b"value of a".to_vec()));
    }
}

#[test]
fn a_password_and_an_acl_user_are_passed_through_the_url() {
    let Some(server) = Server::start(&["--requirepass", "s3cret"]) else {
        return;
    };
    let prefix = unique_prefix("auth");
    let err = RedisStore::open(&server.url(), &prefix).unwrap_err();
    assert!(matches!(err, Error::Engine { .. }), "{err:?}");
    assert!(RedisStore::open(&server.url_with("default:wrong@"), &prefix).is_err());
    let store = RedisStore::open(&server.url_with("default:s3cret@"), &prefix).unwrap();
    store.put(b"k", b"v").unwrap();
    // An ACL user allowed only this project's keys.
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("cacher")
        .arg("on")
        .arg(">pw")
        .arg("~cacher:*")
        .arg("+@all")
        .exec(&mut server.raw("default:s3cret@"))
        .unwrap();
    let store = RedisStore::open(&server.url_with("cacher:pw@"), &prefix).unwrap();
    assert_eq!(store.get(b"k").unwrap(), Some(b"v".to_vec()));
    store.put(b"k2", b"v2").unwrap();
    assert_eq!(store.keys().unwrap().count(), 2);
    assert!(RedisStore::open(&server.url_with("cacher:nope@"), &prefix).is_err());
}
