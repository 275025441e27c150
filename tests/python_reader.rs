//! The pure-Python reader (`python/cacher_reader`) on stores a `Cache` wrote: every store kind
//! and format, the MAC, expiry, and damage, which the reader must report and never return.
//! Also runs the reader's own unit tests on the golden fixtures, so `scripts/test` runs them.
//! Needs python3 with `lmdb`, `zstandard` and `cbor2` (`.ci/requirements.txt`); outside CI a
//! missing module skips with one line, under `CI=true` it fails.

#![cfg(all(
    feature = "json",
    feature = "cbor",
    feature = "pickle",
    feature = "zstd",
    feature = "lmdb"
))]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cacher::formats::Registry;
use cacher::store::{DirStore, LmdbStore, LogStore, Store};
use cacher::{Cache, ManualClock};
use serde::Serialize;

/// The MAC key every cache here uses; the Python side is given it in hex.
const MAC_KEY: [u8; 32] = [0x5a; 32];
/// The formats written into every store (each under its own key prefix).
const FORMATS: [&str; 6] = [
    "json",
    "cbor",
    "pickle",
    "json+zstd",
    "cbor+zstd:19",
    "pickle+zstd",
];
/// Well past the clock of the caches, so a TTL of a second has long expired.
const T0: u64 = 1_700_000_000_000;

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Whether python3 has what the reader's tests need; outside CI, says why not in one line.
fn python_ready() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import lmdb, zstandard, cbor2"])
        .output();
    let problem = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => format!(
            "python3 lacks lmdb, zstandard or cbor2 (`python3 -m pip install -r \
             .ci/requirements.txt`): {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => format!("python3 is not on the PATH: {e}"),
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "python reader tests: {problem}"
    );
    eprintln!("skipping the python reader test: {problem}");
    false
}

/// Runs `script` with the reader package importable; returns stdout or fails with stderr.
fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .env("PYTHONPATH", python_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[derive(Serialize)]
enum Shape {
    Unit,
    Newtype(i32),
    Tuple(u8, String),
    Struct { a: u8 },
}

#[derive(Serialize)]
struct Doc {
    name: String,
    #[serde(with = "serde_bytes")]
    blob: Vec<u8>,
    tuple: (u8, String, bool),
    shapes: Vec<Shape>,
    by_id: BTreeMap<u32, String>,
    tenth: f64,
    huge: f64,
    tiny: f64,
    max_u64: u64,
    min_i64: i64,
    nothing: Option<u8>,
}

fn doc() -> Doc {
    Doc {
        name: "doc ✓".into(),
        blob: vec![0, 1, 2, 254, 255],
        tuple: (7, "seven".into(), true),
        shapes: vec![
            Shape::Unit,
            Shape::Newtype(-1),
            Shape::Tuple(3, "t".into()),
            Shape::Struct { a: 9 },
        ],
        by_id: BTreeMap::from([(1, "one".into()), (20, "twenty".into())]),
        tenth: 0.1,
        huge: 1.7976931348623157e308,
        tiny: 5e-324,
        max_u64: u64::MAX,
        min_i64: i64::MIN,
        nothing: None,
    }
}

fn cache(store: Arc<dyn Store>, format: &str, clock: Option<ManualClock>) -> Cache {
    let mut b = Cache::builder()
        .store(store)
        .format(format)
        .registry(Registry::with_builtins().with_mac_key(MAC_KEY));
    if let Some(clock) = clock {
        b = b.clock(clock);
    }
    b.build().unwrap()
}

/// Writes the same values in every format into `store`, and a few single ones.
fn fill(store: Arc<dyn Store>) {
    for format in FORMATS {
        let c = cache(store.clone(), format, None);
        c.put(format!("{format}/doc"), &doc()).unwrap();
        c.put(format!("{format}/text"), "text ✓").unwrap();
        // Longer than one BLAKE3 chunk: the DirStore path and LMDB's hashed key.
        c.put(format!("{format}/{}", "k".repeat(3000)), &[1u8, 2, 3])
            .unwrap();
    }
    let cbor = cache(store.clone(), "cbor", None);
    cbor.put("cbor/i128", &(i128::MIN, u128::MAX)).unwrap();
    // 20 BLAKE3 chunks under the MAC: the reader's pure-Python tree hashing (kept small, as
    // pure-Python BLAKE3 takes about 4 ms per KiB).
    let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    cbor.put("cbor/big", &serde_bytes::ByteBuf::from(big))
        .unwrap();
    cache(store.clone(), "pickle", None)
        .put("pickle/i128", &(i128::MIN, u128::MAX))
        .unwrap();
    for format in ["json", "cbor", "pickle"] {
        let c = cache(store.clone(), format, None);
        c.put(format!("{format}/nan"), &[f64::NAN, f64::INFINITY])
            .unwrap();
        // A map whose keys are tuples: CBOR and pickle keep them; JSON cannot.
        let by_pair = BTreeMap::from([((1u8, 2u8), "a")]);
        if format == "json" {
            assert!(c.put("json/by_pair", &by_pair).is_err());
        } else {
            c.put(format!("{format}/by_pair"), &by_pair).unwrap();
        }
    }
    cache(store.clone(), "json", None)
        .put("json/i128", &(i128::MIN, u128::MAX))
        .unwrap();
    cache(store.clone(), "raw", None)
        .put("raw/bytes", &serde_bytes::Bytes::new(b"raw \x00\xff"))
        .unwrap();
    // The one value the damage tests flip a byte of (its JSON text is unique in the store).
    cache(store.clone(), "json", None)
        .put("json/victim", "damage-me")
        .unwrap();
    let stale = cache(store, "json", Some(ManualClock::new(T0)));
    stale
        .put_with_ttl("json/expired", &1u8, Duration::from_secs(1))
        .unwrap();
}

/// Reads every key the Rust side wrote with the reader and compares with what a Python user
/// must see; prints "ok". argv: store path, MAC key hex.
const CHECK: &str = r#"
import sys, cacher_reader as cr
path, mac = sys.argv[1], bytes.fromhex(sys.argv[2])
FORMATS = ["json", "cbor", "pickle", "json+zstd", "cbor+zstd:19", "pickle+zstd"]
LONG = "k" * 3000
def doc(fmt):
    base = fmt.split("+")[0]
    # A tuple is a tuple in pickle, a list elsewhere; a tuple variant's fields are a list in
    # every format (serde-pickle's mapping, kept byte for byte).
    tup = (7, "seven", True) if base == "pickle" else [7, "seven", True]
    return {
        "name": "doc ✓",
        "blob": [0, 1, 2, 254, 255] if base == "json" else b"\x00\x01\x02\xfe\xff",
        "tuple": tup,
        "shapes": ["Unit", {"Newtype": -1}, {"Tuple": [3, "t"]}, {"Struct": {"a": 9}}],
        "by_id": {"1": "one", "20": "twenty"} if base == "json" else {1: "one", 20: "twenty"},
        "tenth": 0.1, "huge": 1.7976931348623157e308, "tiny": 5e-324,
        "max_u64": 2**64 - 1, "min_i64": -2**63, "nothing": None,
    }
expected = {}
for f in FORMATS:
    expected[f + "/doc"] = doc(f)
    expected[f + "/text"] = "text ✓"
    # An array is a serde tuple: a tuple in pickle, a list elsewhere (not bytes).
    expected[f + "/" + LONG] = (1, 2, 3) if f.startswith("pickle") else [1, 2, 3]
expected["cbor/i128"] = [-2**127, 2**128 - 1]
expected["pickle/i128"] = (-2**127, 2**128 - 1)
expected["cbor/big"] = bytes(i % 251 for i in range(20000))
expected["raw/bytes"] = b"raw \x00\xff"
expected["json/victim"] = "damage-me"
expected["json/i128"] = [-2**127, 2**128 - 1]
expected["json/nan"] = [None, None]  # serde_json writes null for non-finite floats
expected["cbor/nan"] = "nan"
expected["pickle/nan"] = "nan"
expected["cbor/by_pair"] = {(1, 2): "a"}  # cbor2 makes array keys tuples
expected["pickle/by_pair"] = {(1, 2): "a"}
with cr.open_store(path) as store:
    keys = sorted(k.decode() for k in store.keys())
    assert keys == sorted(list(expected) + ["json/expired"]), keys
    for key, want in expected.items():
        got = store.get(key, mac_key=mac)
        if want == "nan":
            assert repr(got) in ("[nan, inf]", "(nan, inf)"), (key, got)
            continue
        assert got == want, (key[:60], got, want)
        assert type(got) is type(want), (key[:60], type(got), type(want))
    assert store.get("json/expired", mac_key=mac) is None
    assert store.get("json/expired", mac_key=mac, include_expired=True) == 1
    try:
        store.get("json/doc", mac_key=bytes(32))
    except cr.UnauthenticatedError:
        pass
    else:
        raise AssertionError("a wrong MAC key was accepted")
    assert store.verify(mac_key=mac) == {}, store.verify(mac_key=mac)
    assert store.get("missing") is None
print("ok")
"#;

/// After one value was damaged on disk: the reader reports it and still reads the others.
const CHECK_DAMAGED: &str = r#"
import sys, cacher_reader as cr
path, mac, damaged = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3].encode()
with cr.open_store(path) as store:
    try:
        value = store.get(damaged, mac_key=mac)
    except cr.DamagedError as e:
        print("damaged:", e, file=sys.stderr)
    else:
        raise AssertionError(f"the damaged value came back: {value!r}")
    assert store.get("cbor/text", mac_key=mac) == "text ✓"
    problems = store.verify(mac_key=mac)
    # The key, and for a log the offset of its record.
    assert damaged in problems and all(k == damaged or k.startswith(b"@") for k in problems), problems
print("ok")
"#;

/// Flips one byte of the `json/victim` value ("damage-me" inside its JSON payload) in `file`,
/// in every copy (LMDB may keep stale copies of a page in its free pages).
fn damage(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    let needle = b"\"damage-me\"";
    let at: Vec<usize> = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| w == needle)
        .map(|(i, _)| i)
        .collect();
    assert!(
        !at.is_empty(),
        "the json/victim value is in {}",
        file.display()
    );
    for i in at {
        bytes[i + 1] ^= 0x20;
    }
    std::fs::write(file, bytes).unwrap();
}

fn check(path: &Path) {
    let mac = MAC_KEY
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let path = path.to_str().unwrap();
    assert_eq!(python(CHECK, &[path, &mac]).trim(), "ok");
}

fn check_damaged(path: &Path) {
    let mac = MAC_KEY
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let path = path.to_str().unwrap();
    assert_eq!(
        python(CHECK_DAMAGED, &[path, &mac, "json/victim"]).trim(),
        "ok"
    );
}

#[test]
fn python_reader_reads_a_dir_store_a_cache_wrote_and_reports_damage() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fill(Arc::new(DirStore::open(dir.path()).unwrap()));
    check(dir.path());
    let store = DirStore::open(dir.path()).unwrap();
    damage(&store.entry_path(b"json/victim"));
    check_damaged(dir.path());
}

#[test]
fn python_reader_reads_a_log_store_a_cache_wrote_and_reports_damage() {
    if !python_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.log");
    fill(Arc::new(LogStore::open(&path).unwrap()));
    check(&path);
    damage(&path);
    check_damaged(&path);
}

/// The lock-file version of the LMDB this build links (1: an LMDB 0.9.x release, as py-lmdb's,
/// which the workspace's vendored `lmdb-master-sys` builds; 2: heed's own mdb.master), read
/// from a throwaway environment *after* it is closed: opening and closing `lock.mdb` in a
/// process that has the environment open would drop the process's POSIX locks on it.
#[expect(
    clippy::host_endian_bytes,
    reason = "LMDB writes its lock file in the host's byte order"
)]
fn lock_version_of_this_build() -> u32 {
    let dir = tempfile::tempdir().unwrap();
    drop(LmdbStore::open(dir.path()).unwrap());
    let lock = std::fs::read(dir.path().join("lock.mdb")).unwrap();
    u32::from_ne_bytes(lock[4..8].try_into().unwrap()) & 0xfff
}

#[test]
fn python_reader_reads_an_lmdb_store_a_cache_wrote_while_it_is_open_and_reports_damage() {
    if !python_ready() {
        return;
    }
    assert_eq!(
        lock_version_of_this_build(),
        1,
        "this build's LMDB has lock-file format 2 (heed's mdb.master): the workspace's \
         `[patch.crates-io] lmdb-master-sys` (vendor/lmdb-master-sys) is not in effect"
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LmdbStore::open(dir.path()).unwrap());
    fill(store.clone());
    // The reader reads (and verifies) every entry while this process has the store open,
    // and the store goes on working after.
    check(dir.path());
    store.put(b"after the reader", b"still ours").unwrap();
    assert_eq!(
        store.get(b"after the reader").unwrap(),
        Some(b"still ours".to_vec())
    );
    store.delete(b"after the reader").unwrap();
    drop(store);
    damage(&dir.path().join("data.mdb"));
    check_damaged(dir.path());
}

#[test]
fn python_reader_refuses_an_lmdb_store_held_in_the_other_lock_format_with_the_hand_off_explained() {
    if !python_ready() {
        return;
    }
    // A Rust build on heed's own mdb.master (lock-file format 2) holding the store, stood in
    // for by py-lmdb's LMDB 1.0 engine (format 2 too) holding an environment whose lock file
    // is hard-linked into the store: the lock header and POSIX locks belong to the file.
    let dir = tempfile::tempdir().unwrap();
    let (held, store_dir) = (dir.path().join("held"), dir.path().join("store"));
    LmdbStore::open(&store_dir)
        .unwrap()
        .put(b"k", b"v")
        .unwrap();
    let script = r#"
import os, subprocess, sys, cacher_reader as cr
held, store = sys.argv[1:3]
HOLD = """
import sys, lmdb
env = lmdb.open(sys.argv[1], map_size=1 << 20, lib_version=1)
print("holding", flush=True)
sys.stdin.readline()
env.close()
"""
# Another process: py-lmdb refuses a second open of one file in a process.
holder = subprocess.Popen([sys.executable, "-c", HOLD, held], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True)
assert holder.stdout.readline().strip() == "holding"
os.remove(os.path.join(store, "lock.mdb"))
os.link(os.path.join(held, "lock.mdb"), os.path.join(store, "lock.mdb"))
try:
    cr.open_store(store).close()
except cr.LiveSharingError as e:
    assert "after the Rust process" in str(e) and "[patch.crates-io]" in str(e), e
    print("refused")
holder.communicate("\n")
assert holder.returncode == 0
cr.open_store(store).close()  # one after the other
print("opened")
"#;
    let args = [held.to_str().unwrap(), store_dir.to_str().unwrap()];
    assert_eq!(python(script, &args).trim(), "refused\nopened");
}

#[test]
fn python_reader_unit_tests_pass_on_the_golden_fixtures() {
    if !python_ready() {
        return;
    }
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s"])
        .arg(python_dir().join("tests"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running python3");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python unit tests failed:\n{report}");
    // unittest prints "OK" or "OK (skipped=N)"; a skip here means a module is missing.
    assert!(
        report.contains("\nOK\n") || report.trim_end().ends_with("OK"),
        "{report}"
    );
}
