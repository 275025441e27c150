//! Real stores of every kind, written through the library, and the `cacher` binary run on
//! them as a separate process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use cacher::store::{DirStore, LogStore, Store};
use cacher::Cache;
use serde_json::Value;

/// The store kinds the default and `lmdb` features give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Log,
    #[cfg(feature = "lmdb")]
    Lmdb,
}

impl Kind {
    /// Every kind this build has.
    pub fn all() -> Vec<Kind> {
        vec![
            Kind::Dir,
            Kind::Log,
            #[cfg(feature = "lmdb")]
            Kind::Lmdb,
        ]
    }

    /// The name `stats --json` reports.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Dir => "DirStore",
            Kind::Log => "LogStore",
            #[cfg(feature = "lmdb")]
            Kind::Lmdb => "LmdbStore",
        }
    }

    /// The `import --create` argument.
    pub fn create_arg(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::Log => "log",
            #[cfg(feature = "lmdb")]
            Kind::Lmdb => "lmdb",
        }
    }

    /// Where a store of this kind goes inside `dir` (a LogStore is a file).
    pub fn path_in(self, dir: &Path) -> PathBuf {
        match self {
            Kind::Dir => dir.join("dir-store"),
            Kind::Log => dir.join("store.log"),
            #[cfg(feature = "lmdb")]
            Kind::Lmdb => dir.join("lmdb-store"),
        }
    }

    /// Opens (creating) the store at `path` through the library.
    pub fn open(self, path: &Path) -> Box<dyn Store> {
        match self {
            Kind::Dir => Box::new(DirStore::open(path).unwrap()),
            Kind::Log => Box::new(open_log(path)),
            #[cfg(feature = "lmdb")]
            Kind::Lmdb => Box::new(cacher::store::LmdbStore::open(path).unwrap()),
        }
    }
}

/// Opens the LogStore at `path` for writing. A `cacher` child another test thread is spawning
/// holds a copy of every open descriptor until it execs (see `json`), so for that moment it
/// can hold the writer lock of a log this thread just closed; such a lock is gone a moment
/// later, so the open is tried again a few times before failing.
fn open_log(path: &Path) -> LogStore {
    let mut tries = 0;
    loop {
        match LogStore::open(path) {
            Err(cacher::store::Error::Locked { .. }) if tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            opened => return opened.unwrap(),
        }
    }
}

/// The value the verify tests damage: unique bytes that are easy to find in any store file.
pub const VICTIM_VALUE: &str = "VICTIM-PAYLOAD-0123456789abcdefghijklmnopqrstuvwxyz";

/// Writes a small cache at `path`: `user:42`, an entry that has already expired, three
/// results of the memoized `square`, a key that is not UTF-8, and `victim` last (a LogStore
/// reads a damaged last record as damage of its key; damage with records after it makes the
/// whole log refuse to open). Everything is closed again before this returns.
pub fn fill(kind: Kind, path: &Path) {
    let cache = Cache::builder()
        .store(kind.open(path))
        .format("json")
        .build()
        .unwrap();
    cache
        .put("user:42", &serde_json::json!({"name": "Ada", "age": 36}))
        .unwrap();
    cache
        .put_with_ttl("session:old", "stale", Duration::from_millis(1))
        .unwrap();
    let square = cache.memoize("square").wrap(|x: u64| x * x).unwrap();
    for x in 1..=3 {
        assert_eq!(square.call(x), x * x);
    }
    cache.put(b"\xff\x00bin", "bytes key").unwrap();
    cache.put("victim", VICTIM_VALUE).unwrap();
    cache.store().flush().unwrap();
    drop(square);
    drop(cache);
    // Let `session:old` expire for sure.
    std::thread::sleep(Duration::from_millis(5));
}

/// Every `(key, value)` of the store at `path`, sorted, read through the library.
pub fn entries(kind: Kind, path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let store = kind.open(path);
    let mut all: Vec<_> = store.scan().unwrap().map(Result::unwrap).collect();
    all.sort();
    all
}

/// The `cacher` binary of this package.
pub fn cacher() -> Command {
    Command::cargo_bin("cacher").unwrap()
}

/// Runs `cacher ARGS --json`, checks the exit code, and parses stdout as the one JSON object
/// it must be (with the schema fields every report carries).
pub fn json(args: &[&str], code: i32) -> Value {
    let mut out = cacher().args(args).arg("--json").output().unwrap();
    // Tests run in parallel threads of one process: a child spawned by one thread holds a copy
    // of every open descriptor until it execs (O_CLOEXEC closes them only then), so for that
    // moment it can hold the writer lock of a LogStore another thread just closed. Such a
    // lock is gone a moment later; a lock a test holds on purpose stays (and is still seen).
    for _ in 0..20 {
        let locked = String::from_utf8_lossy(&out.stderr).contains("locked by another process");
        if !locked || code == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        out = cacher().args(args).arg("--json").output().unwrap();
    }
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "cacher {args:?}: stdout {stdout} stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("cacher {args:?} --json printed non-JSON ({e}): {stdout}"));
    assert_eq!(value["cacher_cli"], 1, "{value}");
    assert_eq!(value["exit_code"], code, "{value}");
    value
}

/// Flips one byte inside the first copy of `needle` in the file at `path`.
pub fn flip_in_file(path: &Path, needle: &[u8]) -> bool {
    let mut bytes = std::fs::read(path).unwrap();
    let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) else {
        return false;
    };
    bytes[at + needle.len() / 2] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
    true
}

/// Flips a byte of `VICTIM_VALUE` wherever the store kind keeps it.
pub fn damage_victim(kind: Kind, path: &Path) {
    let file = match kind {
        Kind::Dir => DirStore::open(path).unwrap().entry_path(b"victim"),
        Kind::Log => path.to_path_buf(),
        #[cfg(feature = "lmdb")]
        Kind::Lmdb => path.join("data.mdb"),
    };
    assert!(
        flip_in_file(&file, VICTIM_VALUE.as_bytes()),
        "the victim's value is not in {}",
        file.display()
    );
}

/// The keys (`arg` form) of an `ls --json` report.
pub fn listed_keys(ls: &Value) -> Vec<String> {
    ls["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"]["arg"].as_str().unwrap().to_owned())
        .collect()
}

/// `path` with `suffix` appended to its file name (a LogStore's side files).
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}
