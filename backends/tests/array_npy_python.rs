//! `.npy` files and the Python `NumpyLmdb` layout: golden numpy files, export and import, and
//! interop with Python (needs python3 with numpy and lmdb: `.ci/requirements.txt`).

#![cfg(feature = "lmdb")]

use std::path::{Path, PathBuf};
use std::process::Command;

use cacher_store::array::*;
use cacher_store::Error;
use serde_json::json;

fn store() -> (tempfile::TempDir, ArrayStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ArrayStore::open(dir.path()).unwrap();
    (dir, store)
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/array")
}

#[test]
fn golden_numpy_npy_fixtures_are_read_forever() {
    // Written by numpy (fixtures/array/make_numpy_fixtures.py), read without Python.
    let f = |name: &str| fixtures().join(name);
    let want: Vec<f32> = (0..6).map(|x| x as f32 / 4.0).collect();
    assert_eq!(
        read_npy::<f32>(f("numpy-f32-3x2.npy")).unwrap(),
        (want, vec![3, 2])
    );
    assert_eq!(
        read_npy::<i64>(f("numpy-i64-scalar.npy")).unwrap(),
        (vec![-7], vec![])
    );
    assert_eq!(
        read_npy::<u8>(f("numpy-u8-empty.npy")).unwrap(),
        (vec![], vec![0, 3])
    );
    assert_eq!(
        read_npy::<u16>(f("numpy-be-u16.npy")).unwrap(),
        (vec![1, 256, 65535], vec![3])
    );
    let (_dir, store) = store();
    let info = store.put_npy("be", f("numpy-be-u16.npy")).unwrap();
    assert_eq!(info.dtype, DType::U16);
    assert_eq!(
        store.get_owned::<u16>("be").unwrap(),
        Some((vec![1, 256, 65535], vec![3]))
    );
}

#[test]
fn npy_export_and_import_round_trip_in_rust() {
    let (dir, store) = store();
    let data: Vec<i16> = (0..24).collect();
    store.put_array("a", &data, &[2, 3, 4]).unwrap();
    let file = dir.path().join("a.npy");
    assert!(store.export_npy("a", &file).unwrap());
    assert!(!store
        .export_npy("missing", dir.path().join("m.npy"))
        .unwrap());
    assert!(!dir.path().join("m.npy").exists());
    let info = store.put_npy("b", &file).unwrap();
    assert_eq!(
        (info.dtype, info.shape.clone()),
        (DType::I16, vec![2, 3, 4])
    );
    assert_eq!(
        store.get_owned::<i16>("b").unwrap(),
        Some((data.clone(), vec![2, 3, 4]))
    );
    let bytes = std::fs::read(&file).unwrap();
    store.put_npy_reader("c", &mut &bytes[..]).unwrap();
    assert_eq!(
        store.get_owned::<i16>("c").unwrap(),
        Some((data, vec![2, 3, 4]))
    );
    let err = store
        .put_npy_reader("d", &mut &bytes[..bytes.len() - 1])
        .unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    std::fs::write(&file, &bytes[..bytes.len() - 1]).unwrap();
    let err = store.put_npy("d", &file).unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    assert_eq!(store.get_owned::<i16>("d").unwrap(), None);
}

// ---- Python interop: needs python3 with numpy and lmdb (`.ci/requirements.txt`). ----

/// Runs `script` with python3 and `args`; panics with a clear message if python3 or the
/// modules the interop tests need are missing (CI installs them), or if the script fails.
fn python(script: &str, args: &[&Path]) -> String {
    let probe = Command::new("python3")
        .args(["-c", "import numpy, lmdb"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "this test needs python3 with numpy and lmdb: run `python3 -m pip install -r \
             .ci/requirements.txt` ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("this test needs python3 on PATH: {e}"),
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
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

#[test]
fn numpy_loads_exported_npy_arrays() {
    let (dir, store) = store();
    store
        .put_array("f32", &[1.5f32, 2.5, 3.5, 4.5, 5.5, 6.5], &[2, 3])
        .unwrap();
    store.put_array("u8", &[0u8, 255], &[2]).unwrap();
    store.put_array("i64", &[-5i64], &[]).unwrap();
    store
        .put_array("f64-empty", &[] as &[f64], &[0, 4])
        .unwrap();
    store
        .put_array("f16", &[F16(0x3c00), F16(0x4000)], &[2])
        .unwrap();
    store
        .put_array("bool", &[Bool(1), Bool(0), Bool(1)], &[3])
        .unwrap();
    let big: Vec<u32> = (0..100_000).collect();
    store.put_array("u32-big", &big, &[100, 1000]).unwrap();
    for k in ["f32", "u8", "i64", "f64-empty", "f16", "bool", "u32-big"] {
        assert!(store
            .export_npy(k, dir.path().join(format!("{k}.npy")))
            .unwrap());
    }
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
def load(name):
    return np.load(f"{d}/{name}.npy", allow_pickle=False)
a = load("f32"); assert a.dtype == np.float32 and a.shape == (2, 3), a
assert (a == np.array([[1.5, 2.5, 3.5], [4.5, 5.5, 6.5]], dtype=np.float32)).all()
a = load("u8"); assert a.dtype == np.uint8 and list(a) == [0, 255]
a = load("i64"); assert a.dtype == np.int64 and a.shape == () and a == -5
a = load("f64-empty"); assert a.dtype == np.float64 and a.shape == (0, 4)
a = load("f16"); assert a.dtype == np.float16 and list(a) == [1.0, 2.0]
a = load("bool"); assert a.dtype == np.bool_ and list(a) == [True, False, True]
a = load("u32-big"); assert a.dtype == np.uint32 and a.shape == (100, 1000)
assert (a.ravel() == np.arange(100000, dtype=np.uint32)).all()
print("ok")
"#;
    assert_eq!(python(script, &[dir.path()]).trim(), "ok");
}

#[test]
fn npy_files_written_by_numpy_are_imported() {
    let (dir, store) = store();
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
np.save(f"{d}/f32.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
np.save(f"{d}/u16.npy", np.array([1, 2, 65535], dtype=np.uint16))
np.save(f"{d}/scalar.npy", np.float64(2.5))
np.save(f"{d}/empty.npy", np.zeros((0,), dtype=np.int8))
np.save(f"{d}/bool.npy", np.array([[True, False]]))
np.save(f"{d}/big-endian.npy", np.array([1, 258, -3], dtype=">i4"))
np.save(f"{d}/fortran.npy", np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)))
np.save(f"{d}/complex.npy", np.zeros(2, dtype=np.complex64))
np.lib.format.write_array(open(f"{d}/v2.npy", "wb"), np.arange(3, dtype=np.int64), version=(2, 0))
"#;
    python(script, &[dir.path()]);
    let f = |name: &str| dir.path().join(name);
    store.put_npy("f32", f("f32.npy")).unwrap();
    let want: Vec<f32> = (0..12).map(|x| x as f32).collect();
    assert_eq!(
        store.get_owned::<f32>("f32").unwrap(),
        Some((want.clone(), vec![3, 4]))
    );
    assert_eq!(read_npy::<f32>(f("f32.npy")).unwrap(), (want, vec![3, 4]));
    store.put_npy("u16", f("u16.npy")).unwrap();
    assert_eq!(
        store.get_owned::<u16>("u16").unwrap(),
        Some((vec![1, 2, 65535], vec![3]))
    );
    store.put_npy("scalar", f("scalar.npy")).unwrap();
    assert_eq!(
        store.get_owned::<f64>("scalar").unwrap(),
        Some((vec![2.5], vec![]))
    );
    store.put_npy("empty", f("empty.npy")).unwrap();
    assert_eq!(
        store.get_owned::<i8>("empty").unwrap(),
        Some((vec![], vec![0]))
    );
    store.put_npy("bool", f("bool.npy")).unwrap();
    assert_eq!(
        store.get_owned::<Bool>("bool").unwrap(),
        Some((vec![Bool(1), Bool(0)], vec![1, 2]))
    );
    store.put_npy("be", f("big-endian.npy")).unwrap();
    assert_eq!(
        store.get_owned::<i32>("be").unwrap(),
        Some((vec![1, 258, -3], vec![3]))
    );
    assert_eq!(
        read_npy::<i32>(f("big-endian.npy")).unwrap().0,
        vec![1, 258, -3]
    );
    store.put_npy("v2", f("v2.npy")).unwrap();
    assert_eq!(
        store.get_owned::<i64>("v2").unwrap(),
        Some((vec![0, 1, 2], vec![3]))
    );
    let err = store.put_npy("fortran", f("fortran.npy")).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { reason, .. } if reason.contains("fortran")),
        "{err}"
    );
    let err = store.put_npy("complex", f("complex.npy")).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(read_npy::<f64>(f("fortran.npy")).is_err());
    assert_eq!(store.get_owned::<f64>("fortran").unwrap(), None);
}

#[test]
fn numpy_lmdb_written_by_python_is_read_by_rust() {
    let dir = tempfile::tempdir().unwrap();
    // The layout of the Python NumpyLmdb tool (lmdbm over the `lmdb` package): the default
    // database, UTF-8 keys, raw float32 bytes; JSON metadata in `metadata.lmdb`.
    let script = r#"
import sys, os, json, lmdb, numpy as np
path = sys.argv[1]
env = lmdb.open(path, map_size=2**25)
with env.begin(write=True) as txn:
    for i in range(100):
        txn.put(f"item-{i}".encode("utf-8"), np.arange(i, i + 8, dtype=np.float32).tobytes())
    txn.put("ключ".encode("utf-8"), np.array([0.25] * 600, dtype=np.float32).tobytes())
env.close()
md = lmdb.open(os.path.join(path, "metadata.lmdb"), map_size=2**25)
with md.begin(write=True) as txn:
    txn.put(b"item-3", json.dumps({"label": "cat", "score": 0.5}).encode("utf-8"))
    txn.put(b"__global__", json.dumps({"model": "clip", "dim": 8}).encode("utf-8"))
md.close()
"#;
    python(script, &[dir.path()]);
    let store = NumpyLmdb::open(dir.path(), DType::F32).unwrap();
    assert_eq!(store.len().unwrap(), 101);
    for i in [0u32, 3, 99] {
        let want: Vec<f32> = (i..i + 8).map(|x| x as f32).collect();
        assert_eq!(store.get::<f32>(&format!("item-{i}")).unwrap(), Some(want));
    }
    assert_eq!(store.get::<f32>("ключ").unwrap(), Some(vec![0.25; 600]));
    assert!(store.keys().unwrap().contains(&"ключ".to_string()));
    assert_eq!(
        store.metadata("item-3").unwrap(),
        Some(json!({"label": "cat", "score": 0.5}))
    );
    assert_eq!(store.metadata("item-4").unwrap(), None);
    assert_eq!(
        store.global_metadata().unwrap(),
        Some(json!({"model": "clip", "dim": 8}))
    );
    let err = store.get::<f64>("item-1").unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
    let rows = store
        .get_rows::<f32, _>(&["item-2", "nope", "item-5"])
        .unwrap();
    assert_eq!(
        (rows.rows, rows.cols, rows.missing.clone()),
        (3, 8, vec![1])
    );
    assert_eq!(&rows.data[..8], &[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    assert_eq!(&rows.data[8..16], &[0.0; 8]);
    assert_eq!(rows.data[16], 5.0);
    assert!(store.get_rows::<f32, _>(&["item-1", "ключ"]).is_err());
    // And write to it: Rust adds and deletes, Python sees it in the same store.
    store.put("from-rust", &[9.0f32, 8.0]).unwrap();
    assert!(store.delete("item-0").unwrap());
    store
        .set_metadata("from-rust", &json!({"by": "rust"}))
        .unwrap();
    drop(store);
    let check = r#"
import sys, os, json, lmdb, numpy as np
path = sys.argv[1]
env = lmdb.open(path, readonly=True)
with env.begin() as txn:
    assert txn.get(b"item-0") is None
    assert list(np.frombuffer(txn.get(b"from-rust"), dtype=np.float32)) == [9.0, 8.0]
    assert txn.stat()["entries"] == 101
md = lmdb.open(os.path.join(path, "metadata.lmdb"), readonly=True)
with md.begin() as txn:
    assert json.loads(txn.get(b"from-rust")) == {"by": "rust"}
print("ok")
"#;
    assert_eq!(python(check, &[dir.path()]).trim(), "ok");
}

#[test]
fn numpy_lmdb_written_by_rust_is_read_by_python() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = NumpyLmdb::open(dir.path(), DType::F32).unwrap();
        let entries: Vec<(String, Vec<f32>)> = (0..50)
            .map(|i| {
                (
                    format!("id{i}"),
                    (0..16).map(|j| (i * 100 + j) as f32).collect(),
                )
            })
            .collect();
        let refs: Vec<(&str, &[f32])> = entries.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        store.put_many(&refs).unwrap();
        store.put("big", &vec![1.5f32; 100_000]).unwrap();
        store.set_metadata("id7", &json!({"tag": "seven"})).unwrap();
        store.set_global_metadata(&json!({"dim": 16})).unwrap();
        let err = store.put("x", &[1u8]).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
        let err = store.put("", &[1.0f32]).unwrap_err();
        assert!(matches!(err, Error::InvalidKey { .. }), "{err}");
    }
    let script = r#"
import sys, os, json, lmdb, numpy as np
path = sys.argv[1]
env = lmdb.open(path, readonly=True)
with env.begin() as txn:
    assert txn.stat()["entries"] == 51, txn.stat()
    for i in (0, 7, 49):
        v = np.frombuffer(txn.get(f"id{i}".encode("utf-8")), dtype=np.float32)
        assert v.shape == (16,) and (v == np.arange(i * 100, i * 100 + 16, dtype=np.float32)).all(), v
    big = np.frombuffer(txn.get(b"big"), dtype=np.float32)
    assert big.shape == (100000,) and (big == 1.5).all()
md = lmdb.open(os.path.join(path, "metadata.lmdb"), readonly=True)
with md.begin() as txn:
    assert json.loads(txn.get(b"id7").decode("utf-8")) == {"tag": "seven"}
    assert json.loads(txn.get(b"__global__").decode("utf-8")) == {"dim": 16}
print("ok")
"#;
    assert_eq!(python(script, &[dir.path()]).trim(), "ok");
}

#[test]
fn array_store_refuses_a_numpy_lmdb_written_by_python_and_leaves_it_untouched() {
    // Two Python-written directories (no marker): one with the metadata sub-environment, one
    // that is a bare py-lmdb environment of vectors.
    let script = r#"
import sys, os, json, lmdb, numpy as np
for path, with_metadata in ((sys.argv[1], True), (sys.argv[2], False)):
    env = lmdb.open(path, map_size=2**25)
    with env.begin(write=True) as txn:
        for i in range(20):
            txn.put(f"item-{i}".encode("utf-8"), np.arange(i, i + 4, dtype=np.float32).tobytes())
    env.close()
    if with_metadata:
        md = lmdb.open(os.path.join(path, "metadata.lmdb"), map_size=2**25)
        with md.begin(write=True) as txn:
            txn.put(b"__global__", json.dumps({"dim": 4}).encode("utf-8"))
        md.close()
"#;
    let (with_meta, bare) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    python(script, &[with_meta.path(), bare.path()]);
    for dir in [&with_meta, &bare] {
        let err = ArrayStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(
                &err,
                Error::WrongLayout {
                    expected: "ArrayStore",
                    found: "NumpyLmdb",
                    ..
                }
            ),
            "{err}"
        );
    }
    let check = r#"
import sys, lmdb
for path in sys.argv[1:]:
    env = lmdb.open(path, readonly=True)
    with env.begin() as txn:
        keys = [k for k, _ in txn.cursor()]
        assert len(keys) == 20 and not any(k.startswith(b"cacher") for k in keys), keys
print("ok")
"#;
    assert_eq!(python(check, &[with_meta.path(), bare.path()]).trim(), "ok");
}

// ---- Live sharing with py-lmdb: the workspace builds heed over LMDB 0.9.36 (the vendored
// lmdb-master-sys, vendor/lmdb-master-sys/VENDOR.md), whose lock file py-lmdb shares. ----

/// The lock-file version (low 12 bits of the format word at offset 4 of `lock.mdb`) of the
/// LMDB this build links: 1 for an LMDB 0.9.x release (the one py-lmdb from PyPI uses, and
/// can then share a live environment with), 2 for heed's own `mdb.master`.
///
/// Read after the environment is closed: opening and closing `lock.mdb` in a process that has
/// the environment open drops the process's POSIX locks on it (then another process could
/// re-initialize the reader table under it).
#[expect(
    clippy::host_endian_bytes,
    reason = "LMDB writes its lock file in the host's byte order"
)]
fn lock_version_of_this_build() -> u32 {
    let dir = tempfile::tempdir().unwrap();
    drop(cacher_store::LmdbStore::open(dir.path()).unwrap());
    let lock = std::fs::read(dir.path().join("lock.mdb")).unwrap();
    u32::from_ne_bytes(lock[4..8].try_into().unwrap()) & 0xfff
}

/// A python3 process running `script` with `args`, spoken to line by line.
struct PyPeer {
    child: std::process::Child,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl PyPeer {
    fn start(script: &str, args: &[&Path]) -> PyPeer {
        python("import lmdb", &[]);
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("running python3");
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        PyPeer { child, stdout }
    }

    /// Waits for the next line the script prints and checks it.
    fn expect(&mut self, want: &str) {
        use std::io::BufRead;
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        if line.trim() != want {
            let status = self.child.wait().unwrap();
            panic!("python printed {line:?}, not {want:?} ({status}; its stderr is above)");
        }
    }

    /// Lets the script go on past its next `sys.stdin.readline()`.
    fn go_on(&mut self) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin).unwrap();
        stdin.flush().unwrap();
    }

    fn finish(mut self) {
        drop(self.child.stdin.take());
        assert!(self.child.wait().unwrap().success());
    }
}

/// The Python side of the test below: opens the three environments Rust holds, reads Rust's
/// values, writes its own in each store's layout (growing each map from 1 MiB), then, after
/// Rust grew the maps, adopts their new size and reads Rust's second values.
const PY_LIVE_PEER: &str = r#"
import struct, sys, zlib, lmdb
lmdb_dir, arrays_dir, numpy_dir = sys.argv[1:4]

def put_growing(env, db, items):
    for k, v in items:
        while True:
            try:
                with env.begin(write=True, db=db) as t:
                    t.put(k, v)
                break
            except lmdb.MapFullError:
                env.set_mapsize(env.info()["map_size"] * 2)

def lmdb_store_value(key, value):
    # LmdbStore layout 2 (backends/src/lmdb/layout.rs): key 0x00|key, value crc32|value.
    stored = b"\0" + key
    return stored, struct.pack("<I", zlib.crc32(value, zlib.crc32(stored))) + value

def array_value(key, data):
    # ArrayStore value version 2 (backends/src/array/layout.rs): a u8 vector.
    header = 40 + 8
    offset = (header + 15) // 16 * 16
    fixed = b"CARR" + struct.pack("<HBBQQQ", 2, 1, 1, 0, offset, len(data))
    dcrc = struct.pack("<I", zlib.crc32(data))
    rest = struct.pack("<Q", len(data)) + bytes(offset - header)
    hcrc = zlib.crc32(struct.pack("<Q", len(key)) + key + fixed + dcrc + rest)
    return fixed + dcrc + struct.pack("<I", hcrc) + rest + data

envs = {}
for name, path in (("lmdb", lmdb_dir), ("arrays", arrays_dir), ("numpy", numpy_dir)):
    envs[name] = lmdb.open(path, map_size=1 << 20, max_dbs=8)  # while Rust has it open
lmdb_env, arrays_env, numpy_env = envs["lmdb"], envs["arrays"], envs["numpy"]
store_db = lmdb_env.open_db(b"cacher-store", create=False)
arrays_db = arrays_env.open_db(b"cacher-arrays", create=False)

with lmdb_env.begin(db=store_db) as t:
    assert t.get(b"\0rust-0")[4:] == b"from rust", t.get(b"\0rust-0")
with arrays_env.begin(db=arrays_db) as t:
    raw = t.get(b"rust-0")
    (offset,) = struct.unpack_from("<Q", raw, 16)
    assert raw[:4] == b"CARR" and raw[offset:offset + 3] == b"\x01\x02\x03", raw[:80]
with numpy_env.begin() as t:
    assert t.get(b"rust-0") == b"\x01\x02\x03"

# 2 MiB per store: each map grows from 1 MiB, from Python.
big = [(b"py-%d" % i, bytes([i]) * (32 << 10)) for i in range(64)]
put_growing(lmdb_env, store_db, [lmdb_store_value(k, v) for k, v in big])
put_growing(arrays_env, arrays_db, [(k, array_value(k, v)) for k, v in big])
put_growing(numpy_env, None, big)
python_sizes = {name: env.info()["map_size"] for name, env in envs.items()}
assert all(size > 1 << 20 for size in python_sizes.values()), python_sizes
print("python grew", flush=True)
sys.stdin.readline()

# Rust has grown every map beyond Python's size: adopt it, then read Rust's values.
for name, env in envs.items():
    try:
        env.begin().abort()
    except lmdb.MapResizedError:
        env.set_mapsize(0)
    assert env.info()["map_size"] > python_sizes[name], (name, env.info(), python_sizes)
want = bytes([7]) * (64 << 10)
with lmdb_env.begin(db=store_db) as t:
    assert t.get(b"\0rust-63")[4:] == want
    assert t.stat(store_db)["entries"] == 128, t.stat(store_db)
with arrays_env.begin(db=arrays_db) as t:
    assert t.get(b"rust-63")[-len(want):] == want
with numpy_env.begin() as t:
    assert t.get(b"rust-63") == want
for env in envs.values():
    env.close()
print("python read", flush=True)
"#;

#[test]
fn python_and_rust_share_live_lmdb_array_and_numpy_stores_growing_the_map_both_ways() {
    use cacher_store::Store;
    assert_eq!(
        lock_version_of_this_build(),
        1,
        "this build's LMDB has lock-file format 2 (heed's mdb.master): the workspace's \
         `[patch.crates-io] lmdb-master-sys` (vendor/lmdb-master-sys) is not in effect"
    );
    let dir = tempfile::tempdir().unwrap();
    let (lmdb_dir, arrays_dir, numpy_dir) = (
        dir.path().join("lmdb"),
        dir.path().join("arrays"),
        dir.path().join("numpy"),
    );
    let options = cacher_store::lmdb::LmdbOptions::default().with_initial_map_size(1 << 20);
    let store = cacher_store::LmdbStore::open_with(&lmdb_dir, &options).unwrap();
    let arrays = ArrayStore::open_with(&arrays_dir, &options).unwrap();
    let numpy = NumpyLmdb::open_with(&numpy_dir, DType::U8, &options).unwrap();
    store.put(b"rust-0", b"from rust").unwrap();
    arrays.put_array("rust-0", &[1u8, 2, 3], &[3]).unwrap();
    numpy.put("rust-0", &[1u8, 2, 3]).unwrap();

    let mut peer = PyPeer::start(PY_LIVE_PEER, &[&lmdb_dir, &arrays_dir, &numpy_dir]);
    peer.expect("python grew");
    // Python still has all three open and grew their maps: Rust adopts the new sizes and
    // reads Python's values through the stores' checks (both CRCs of the array values).
    let want = |i: u8| vec![i; 32 << 10];
    for i in [0u8, 63] {
        let key = format!("py-{i}");
        assert_eq!(store.get(key.as_bytes()).unwrap(), Some(want(i)));
        assert_eq!(
            arrays.get_owned::<u8>(&key).unwrap(),
            Some((want(i), vec![32 << 10]))
        );
        assert_eq!(numpy.get::<u8>(&key).unwrap(), Some(want(i)));
    }
    // 4 MiB more per store, beyond the maps Python grew to: Rust grows them now.
    let grown_before = store.env().stats().map_grown;
    let value = vec![7u8; 64 << 10];
    for i in 1..64 {
        let key = format!("rust-{i}");
        store.put(key.as_bytes(), &value).unwrap();
        arrays.put_array(&key, &value, &[64 << 10]).unwrap();
        numpy.put(&key, &value).unwrap();
    }
    assert!(store.env().stats().map_grown > grown_before);
    peer.go_on();
    peer.expect("python read");
    peer.finish();
    assert_eq!(store.len().unwrap(), 128);
    assert_eq!(numpy.len().unwrap(), 128);
}

#[test]
fn a_store_held_open_in_the_other_lock_format_is_refused_with_the_hand_off_explained() {
    use cacher_store::Store;
    // A process whose LMDB has lock-file format 2 (heed's own mdb.master build: an unpatched
    // cacher or heed program) holding the store. Stood in for by py-lmdb's LMDB 1.0 engine
    // (`lib_version=1`, lock format 2 too), which holds an environment of its own whose
    // `lock.mdb` is hard-linked into the store: POSIX locks and the lock header belong to the
    // file, so the store's lock file is live in format 2 while its data file is cacher's.
    let dir = tempfile::tempdir().unwrap();
    let (held, store_dir) = (dir.path().join("held"), dir.path().join("store"));
    cacher_store::LmdbStore::open(&store_dir)
        .unwrap()
        .put(b"k", b"v")
        .unwrap();
    let mut peer = PyPeer::start(
        r#"
import sys, lmdb
env = lmdb.open(sys.argv[1], map_size=1 << 20, lib_version=1)
print("holding", flush=True)
sys.stdin.readline()
env.close()
print("closed", flush=True)
"#,
        &[&held],
    );
    peer.expect("holding");
    std::fs::remove_file(store_dir.join("lock.mdb")).unwrap();
    std::fs::hard_link(held.join("lock.mdb"), store_dir.join("lock.mdb")).unwrap();
    let err = cacher_store::LmdbStore::open(&store_dir).unwrap_err();
    match &err {
        Error::Locked { reason, .. } => {
            assert!(reason.contains("lock-file format 2"), "{err}");
            assert!(reason.contains("uses format 1"), "{err}");
            assert!(reason.contains("one after the other"), "{err}");
        }
        _ => panic!("expected Error::Locked explaining the lock formats, got {err:?}"),
    }
    peer.go_on();
    peer.expect("closed");
    peer.finish();
    // One after the other: the first opener re-initializes the lock file in its own format.
    let store = cacher_store::LmdbStore::open(&store_dir).unwrap();
    assert_eq!(store.get(b"k").unwrap(), Some(b"v".to_vec()));
}

// ---- NumpyLmdb metadata as Python's json.dumps writes it. ----

/// The floats of the test below: random bit patterns (finite ones), edge values, and short
/// decimals, as Python writes them with `json.dumps`.
const PY_FLOATS: &str = r#"
import random, struct, sys
rng = random.Random(16)
floats = [0.1, 1e-310, 5e-324, 1.7976931348623157e308, 2.2250738585072014e-308, 1/3, -0.0]
while len(floats) < 6011:
    f = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
    if f == f and abs(f) != float("inf"):
        floats.append(f)
    floats.append(rng.random() * 10 ** rng.randint(-20, 20))
floats = floats[:6011]
"#;

#[test]
fn numpy_lmdb_metadata_written_by_python_json_reads_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "{PY_FLOATS}{}",
        r#"
import os, json, lmdb
path = sys.argv[1]
lmdb.open(path, map_size=2**25).close()
md = lmdb.open(os.path.join(path, "metadata.lmdb"), map_size=2**25)
with md.begin(write=True) as txn:
    txn.put(b"floats", json.dumps({"v": floats}).encode())
    txn.put(b"special", json.dumps({"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "big": 2**100, "neg": -2**70, "u64": 2**64 - 1}).encode())
    txn.put(b"huge", json.dumps({"n": 2**200}).encode())
md.close()
print("\n".join(struct.pack("<d", f).hex() for f in floats))
"#
    );
    let out = python(&script, &[dir.path()]);
    let want: Vec<u64> = out
        .lines()
        .map(|l| u64::from_le_bytes(hex_bytes(l).try_into().unwrap()))
        .collect();
    assert_eq!(want.len(), 6011);
    let store = NumpyLmdb::open(dir.path(), DType::F32).unwrap();
    let got = store.metadata("floats").unwrap().unwrap();
    let got: Vec<u64> = got["v"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_f64().unwrap().to_bits())
        .collect();
    let off = got.iter().zip(&want).filter(|(g, w)| g != w).count();
    assert_eq!(off, 0, "{off} of 6011 floats came back changed");

    let special = store.metadata_py("special").unwrap().unwrap();
    assert!(matches!(special.get("nan"), Some(PyJson::Float(f)) if f.is_nan()));
    assert_eq!(special.get("inf"), Some(&PyJson::Float(f64::INFINITY)));
    assert_eq!(special.get("ninf"), Some(&PyJson::Float(f64::NEG_INFINITY)));
    assert_eq!(special.get("big"), Some(&PyJson::Int(1 << 100)));
    assert_eq!(special.get("neg"), Some(&PyJson::Int(-(1 << 70))));
    assert_eq!(special.get("u64"), Some(&PyJson::Int(u64::MAX.into())));
    let err = store.metadata("special").unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { reason, .. } if reason.contains("metadata_py")),
        "{err}"
    );
    for err in [
        store.metadata_py("huge").unwrap_err(),
        store.metadata("huge").unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::Unsupported { reason, .. } if reason.contains("beyond 128 bits")),
            "{err}"
        );
    }

    // Rust writes the same kinds of values back; Python's json.loads reads them exactly.
    store
        .set_metadata_py(
            "from-rust",
            &PyJson::Object(vec![
                ("nan".into(), PyJson::Float(f64::NAN)),
                ("ninf".into(), PyJson::Float(f64::NEG_INFINITY)),
                ("big".into(), PyJson::Int(-(1 << 120))),
                ("third".into(), PyJson::Float(1.0 / 3.0)),
            ]),
        )
        .unwrap();
    store.set_metadata_py("copy", &special).unwrap();
    drop(store);
    let check = r#"
import sys, os, json, math, lmdb
md = lmdb.open(os.path.join(sys.argv[1], "metadata.lmdb"), readonly=True)
with md.begin() as txn:
    d = json.loads(txn.get(b"from-rust"))
    assert math.isnan(d["nan"]) and d["ninf"] == float("-inf") and d["big"] == -2**120 and d["third"] == 1/3, d
    c = json.loads(txn.get(b"copy"))
    assert math.isnan(c.pop("nan")) and c == {"inf": float("inf"), "ninf": float("-inf"), "big": 2**100, "neg": -2**70, "u64": 2**64 - 1}, c
print("ok")
"#;
    assert_eq!(python(check, &[dir.path()]).trim(), "ok");
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}
