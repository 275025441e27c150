//! A thread that has read an environment exits at the moment another thread closes it (drops
//! its last handle). LMDB releases the exiting thread's reader slot from a thread-exit
//! destructor, which `pthread_key_delete` in the close does not wait for; before
//! `vendor/lmdb-master-sys/patches/0001-reader-dest-after-close.patch` that destructor could
//! write into the reader table the close had just unmapped (`SIGSEGV`).

use std::sync::{Arc, Barrier};

use super::small;
use crate::lmdb::LmdbEnv;
use crate::Durability;

const CHILD: &str = "CACHER_TEST_EXIT_WHILE_CLOSING_CHILD";
const ROUNDS: usize = 2_000;
const THREADS: usize = 8;

/// Runs the rounds in a child process of this test binary, so a crash is this test failing
/// rather than the whole binary dying. The race is timing-dependent: before the fix the child
/// died with `SIGSEGV` in 29 of 30 runs (see `vendor/lmdb-master-sys/VENDOR.md`).
#[test]
fn threads_exiting_while_another_thread_closes_the_environment_do_not_crash() {
    if std::env::var_os(CHILD).is_some() {
        exit_while_closing();
        return;
    }
    let test = format!(
        "{}::threads_exiting_while_another_thread_closes_the_environment_do_not_crash",
        module_path!().trim_start_matches("cacher_store::")
    );
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &test, "--test-threads", "1", "--quiet"])
        .env(CHILD, "1")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the child failed: {status:?}");
}

/// Each round opens the environment, lets `THREADS` threads read it and drop their handles,
/// then releases them all to exit while this thread drops the last handle.
fn exit_while_closing() {
    let dir = tempfile::tempdir().unwrap();
    // No fsync: the rounds are for the close, not for the commits.
    let options = small().with_durability(Durability::None);
    let env = LmdbEnv::open(dir.path(), &options).unwrap();
    let db = env.create_database("d").unwrap();
    env.write(|w| db.put(w, b"k", b"v")).unwrap();
    drop(env);
    // Each round's own `create_database` opens the database again, committing nothing.
    for round in 0..ROUNDS {
        let env = LmdbEnv::open(dir.path(), &options).unwrap();
        let db = env.create_database("d").unwrap();
        let exit = Arc::new(Barrier::new(THREADS + 1));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let env = env.clone();
                let exit = Arc::clone(&exit);
                std::thread::spawn(move || {
                    let got = env.read(|r| db.get(r, b"k").map(|v| v.map(<[u8]>::to_vec)));
                    drop(env);
                    exit.wait();
                    got
                })
            })
            .collect();
        exit.wait();
        // The last handle: the close runs while the threads' slot destructors run.
        drop(env);
        for t in threads {
            let got = t.join().unwrap().unwrap();
            assert_eq!(got.as_deref(), Some(&b"v"[..]), "round {round}");
        }
    }
}
