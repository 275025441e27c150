//! Which kind of store a path holds, and opening it without creating anything.
//!
//! A store is recognised by its marker when it has one (`cacher-dir.toml`, `cacher-lmdb.toml`,
//! `cacher-array.toml`, `cacher-numpy-lmdb.toml`, `cacher-hybrid.toml`) and otherwise by its
//! contents: a file that starts with `CACHELOG` is a LogStore; a directory holding `data.mdb`
//! is an LMDB environment, told apart by what its default database holds (see `lmdb_kind`).
//! Markers are looked at first, so a HybridStore's `index/` (an LmdbStore of its own) is only
//! ever opened as part of the HybridStore. Nothing is opened through a library `open` until the
//! kind is known, because those opens create a store where there is none.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use cacher::formats::Registry;
use cacher::store::{DirStore, LogStore, Store};
use serde_json::{json, Value};

use super::failure::Failure;

/// The store kinds the tool knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Log,
    Lmdb,
    Array,
    NumpyLmdb,
    Hybrid,
}

impl Kind {
    /// The store type's name, as the library's errors print it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Dir => "DirStore",
            Kind::Log => "LogStore",
            Kind::Lmdb => "LmdbStore",
            Kind::Array => "ArrayStore",
            Kind::NumpyLmdb => "NumpyLmdb",
            Kind::Hybrid => "HybridStore",
        }
    }

    /// Whether the kind's values are cacher envelopes (written through a `Cache`); array
    /// stores hold arrays.
    pub fn holds_envelopes(self) -> bool {
        matches!(self, Kind::Dir | Kind::Log | Kind::Lmdb | Kind::Hybrid)
    }
}

const MARKERS: [(&str, Kind); 5] = [
    ("cacher-dir.toml", Kind::Dir),
    ("cacher-lmdb.toml", Kind::Lmdb),
    ("cacher-array.toml", Kind::Array),
    ("cacher-numpy-lmdb.toml", Kind::NumpyLmdb),
    ("cacher-hybrid.toml", Kind::Hybrid),
];

/// The first bytes of every LogStore file.
const LOG_MAGIC: &[u8; 8] = b"CACHELOG";

/// A store kind `import --create` can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NewKind {
    /// A DirStore directory.
    Dir,
    /// A LogStore file.
    Log,
    /// An LmdbStore directory (needs the `lmdb` feature).
    Lmdb,
    /// A HybridStore directory, the default store of `Cache::open` (needs the `lmdb` feature).
    Hybrid,
}

/// Whether a command only reads (LogStore then opens without its writer lock, beside a
/// running writer) or also writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    Write,
}

/// An open store and what the tool knows about it.
pub struct Opened {
    pub path: PathBuf,
    pub kind: Kind,
    handle: Handle,
    /// Reads envelopes: the built-in formats, and the MAC key when one was given.
    pub registry: Registry,
}

enum Handle {
    Dir(DirStore),
    Log(Box<LogStore>),
    #[cfg(feature = "lmdb")]
    Lmdb(cacher::store::LmdbStore),
    #[cfg(feature = "lmdb")]
    Array(cacher::store::array::ArrayStore),
    #[cfg(feature = "lmdb")]
    Numpy(super::numpy::NumpyBytes),
    #[cfg(feature = "lmdb")]
    Hybrid(cacher::store::HybridStore),
}

impl Opened {
    /// Checks MACs with `key` (from `--mac-key-file`).
    pub fn with_mac_key(mut self, key: Option<[u8; 32]>) -> Self {
        if let Some(key) = key {
            self.registry.set_mac_key(key);
        }
        self
    }

    /// Whether MACs are checked.
    pub fn checks_macs(&self) -> bool {
        self.registry.has_mac_key()
    }

    /// The store, owned, for a `Cache` over it (`revisions`, `archive`).
    pub fn into_store(self) -> Box<dyn Store> {
        match self.handle {
            Handle::Dir(s) => Box::new(s),
            Handle::Log(s) => s,
            #[cfg(feature = "lmdb")]
            Handle::Lmdb(s) => Box::new(s),
            #[cfg(feature = "lmdb")]
            Handle::Array(s) => Box::new(s),
            #[cfg(feature = "lmdb")]
            Handle::Numpy(s) => Box::new(s),
            #[cfg(feature = "lmdb")]
            Handle::Hybrid(s) => Box::new(s),
        }
    }

    /// The store, as bytes in and bytes out.
    pub fn store(&self) -> &dyn Store {
        match &self.handle {
            Handle::Dir(s) => s,
            Handle::Log(s) => s,
            #[cfg(feature = "lmdb")]
            Handle::Lmdb(s) => s,
            #[cfg(feature = "lmdb")]
            Handle::Array(s) => s,
            #[cfg(feature = "lmdb")]
            Handle::Numpy(s) => s,
            #[cfg(feature = "lmdb")]
            Handle::Hybrid(s) => s,
        }
    }

    /// What a LogStore found wrong with its file's tail at open that no key's read reports:
    /// a torn tail (a cut write; a writer's open cuts it), a damaged tail whose key is unknown.
    pub fn tail_problems(&self) -> Vec<String> {
        let Handle::Log(s) = &self.handle else {
            return Vec::new();
        };
        let report = s.open_report();
        let torn = report.torn_tail.as_ref().map(|t| {
            format!(
                "torn tail: {} bytes at offset {} ({}); a writer's open cuts it",
                t.len, t.offset, t.reason
            )
        });
        let damaged = report
            .damaged_tail
            .as_ref()
            .filter(|d| d.key.is_none())
            .map(|d| {
                format!(
                    "damaged last record of unknown key: {} bytes at offset {} ({})",
                    d.len, d.offset, d.reason
                )
            });
        torn.into_iter().chain(damaged).collect()
    }

    /// The LogStore, when the store is one.
    pub fn log(&self) -> Option<&LogStore> {
        match &self.handle {
            Handle::Log(s) => Some(s),
            _ => None,
        }
    }

    /// The LmdbStore, when the store is one.
    #[cfg(feature = "lmdb")]
    pub fn lmdb(&self) -> Option<&cacher::store::LmdbStore> {
        match &self.handle {
            Handle::Lmdb(s) => Some(s),
            _ => None,
        }
    }

    /// The HybridStore, when the store is one.
    #[cfg(feature = "lmdb")]
    pub fn hybrid(&self) -> Option<&cacher::store::HybridStore> {
        match &self.handle {
            Handle::Hybrid(s) => Some(s),
            _ => None,
        }
    }

    /// The damaged last record a LogStore writer's open moved to a side file
    /// (`<log>.damaged-<offset>`), with its key when the log could tell it.
    pub fn moved_tail(&self) -> Option<(Option<Vec<u8>>, PathBuf)> {
        let Handle::Log(s) = &self.handle else {
            return None;
        };
        let tail = s.open_report().damaged_tail.as_ref()?;
        Some((tail.key.clone(), tail.moved_to.clone()?))
    }

    /// The bytes the store keeps for `key`, as they are on disk, for `verify --quarantine`:
    /// DirStore's entry file, LmdbStore's raw LMDB value, otherwise the store's unchecked
    /// read (LogStore lends the record's value from its map without its checksum).
    pub fn raw_entry(&self, key: &[u8]) -> Result<Raw, cacher::store::Error> {
        match &self.handle {
            Handle::Dir(s) => {
                let path = s.entry_path(key);
                // An entry file is never a symlink; one planted there is not followed.
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_file() => Ok(Raw::File(path)),
                    Ok(_) => Ok(Raw::Missing),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Raw::Missing),
                    Err(e) => Err(cacher::store::Error::io(
                        "reading the metadata of",
                        &path,
                        e,
                    )),
                }
            }
            #[cfg(feature = "lmdb")]
            Handle::Lmdb(s) => lmdb_raw(s, key),
            // A value file's mapped bytes; a record the index's checksum refuses is copied out
            // of LMDB as it is stored (a damaged inline value is there).
            #[cfg(feature = "lmdb")]
            Handle::Hybrid(s) => match s.read_unchecked(key) {
                Ok(value) => Ok(value.map_or(Raw::Missing, |b| Raw::Bytes(b.into_vec()))),
                Err(e) if e.is_corrupt() => lmdb_raw(s.index(), key),
                Err(e) => Err(e),
            },
            _ => Ok(self
                .store()
                .read_unchecked(key)?
                .map_or(Raw::Missing, |b| Raw::Bytes(b.into_vec()))),
        }
    }

    /// `{"path": .., "kind": ..}`, the `store` field of every report.
    pub fn describe(&self) -> Value {
        json!({"path": self.path.display().to_string(), "kind": self.kind.name()})
    }

    /// The store's own facts for `stats`, as `(name, JSON value, human text)`.
    pub fn facts(&self) -> Vec<(&'static str, Value, String)> {
        let mut facts = Vec::new();
        match &self.handle {
            Handle::Dir(s) => {
                let temps = fs::read_dir(s.path().join("tmp")).map_or(0, |d| d.count() as u64);
                facts.push(("temp_files", temps.into(), temps.to_string()));
            }
            Handle::Log(s) => {
                let st = s.stats();
                facts.push(("file_bytes", st.file_bytes.into(), units(st.file_bytes)));
                facts.push(("live_bytes", st.live_bytes.into(), units(st.live_bytes)));
                let ratio = st.garbage_ratio();
                facts.push((
                    "garbage_ratio",
                    ratio.into(),
                    format!("{:.0}%", ratio * 100.0),
                ));
                let torn = s.open_report().torn_tail.as_ref();
                let text = torn.map_or("none".to_owned(), |t| {
                    format!("{} bytes at offset {}: {}", t.len, t.offset, t.reason)
                });
                let value = torn.map_or(
                    Value::Null,
                    |t| json!({"offset": t.offset, "len": t.len, "reason": t.reason.to_string()}),
                );
                facts.push(("torn_tail", value, text));
                let damaged = s.open_report().damaged_tail.as_ref();
                let text = damaged.map_or("none".to_owned(), |d| {
                    format!("{} bytes at offset {}: {}", d.len, d.offset, d.reason)
                });
                let value = damaged.map_or(Value::Null, |d| {
                    json!({
                        "offset": d.offset,
                        "len": d.len,
                        "reason": d.reason.to_string(),
                        "key": d.key.as_deref().map(super::keyarg::json),
                    })
                });
                facts.push(("damaged_tail", value, text));
                let checkpoint = s.open_report().checkpoint;
                let text = checkpoint.map_or(
                    "not used (the open scanned the whole log)".to_owned(),
                    |at| format!("used: the index up to offset {at} was read from it"),
                );
                facts.push(("checkpoint", checkpoint.into(), text));
            }
            #[cfg(feature = "lmdb")]
            Handle::Lmdb(s) => {
                let env = s.env();
                let info = env.info();
                facts.push(("map_size", env.map_size().into(), units(env.map_size())));
                let readers = format!(
                    "{} used of {}",
                    info.number_of_readers, info.maximum_number_of_readers
                );
                facts.push(("readers", info.number_of_readers.into(), readers));
                let max = info.maximum_number_of_readers;
                facts.push(("max_readers", max.into(), max.to_string()));
                let stale = env.stale_readers_cleared_on_open() as u64;
                facts.push(("stale_readers_cleared", stale.into(), stale.to_string()));
                let txn = info.last_txn_id as u64;
                facts.push(("last_txn_id", txn.into(), txn.to_string()));
            }
            #[cfg(feature = "lmdb")]
            Handle::Hybrid(s) => {
                let (files, bytes, temps) = hybrid_files(&self.path);
                facts.push((
                    "inline_max",
                    (s.inline_max() as u64).into(),
                    units(s.inline_max() as u64),
                ));
                facts.push(("value_files", files.into(), files.to_string()));
                facts.push(("value_file_bytes", bytes.into(), units(bytes)));
                facts.push(("temp_files", temps.into(), temps.to_string()));
            }
            #[cfg(feature = "lmdb")]
            Handle::Array(_) | Handle::Numpy(_) => {}
        }
        #[cfg(feature = "archive")]
        if let Some((count, bytes)) = self.archive_dir().and_then(|d| archive_files(&d)) {
            facts.push(("archive_files", count.into(), count.to_string()));
            facts.push(("archive_bytes", bytes.into(), units(bytes)));
        }
        facts
    }

    /// Where a `Cache` over this store writes archive files of old revisions by default
    /// (`Cache::archive_dir`): `archives` beside the store's lease directory, so
    /// `<dir>/archives` (DirStore, LMDB stores, HybridStore) or `<log>.archives`. Array stores
    /// keep no revisions.
    pub fn archive_dir(&self) -> Option<PathBuf> {
        match self.kind {
            Kind::Log => {
                let mut name = self.path.file_name()?.to_os_string();
                name.push(".archives");
                Some(self.path.with_file_name(name))
            }
            Kind::Dir | Kind::Lmdb | Kind::Hybrid => Some(self.path.join("archives")),
            Kind::Array | Kind::NumpyLmdb => None,
        }
    }
}

/// Where an entry's raw bytes are.
pub enum Raw {
    /// The whole entry file (DirStore), copied as it is.
    File(PathBuf),
    /// The bytes, copied out of the store.
    Bytes(Vec<u8>),
    /// The store holds nothing under the key (any more).
    Missing,
}

/// LmdbStore's raw LMDB value of `key`, its own framing included.
#[cfg(feature = "lmdb")]
fn lmdb_raw(s: &cacher::store::LmdbStore, key: &[u8]) -> Result<Raw, cacher::store::Error> {
    Ok(s.raw_value(key)?.map_or(Raw::Missing, Raw::Bytes))
}

/// A HybridStore's value files under `files/<2 hex>/` (how many, their bytes) and the temp
/// files of writes under way or interrupted under `files/tmp/`; read from the directory, as
/// the store keeps no count.
#[cfg(feature = "lmdb")]
pub fn hybrid_files(path: &Path) -> (u64, u64, u64) {
    let files = path.join("files");
    let (mut count, mut bytes) = (0u64, 0u64);
    for shard in fs::read_dir(&files).into_iter().flatten().flatten() {
        let name = shard.file_name();
        if name == "tmp" || !shard.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        for file in fs::read_dir(shard.path()).into_iter().flatten().flatten() {
            let Ok(meta) = file.metadata() else { continue };
            if meta.is_file() && file.file_name().to_string_lossy().ends_with(".blob") {
                count += 1;
                bytes += meta.len();
            }
        }
    }
    let temps = fs::read_dir(files.join("tmp")).map_or(0, |d| d.count() as u64);
    (count, bytes, temps)
}

/// The archive files in `dir` (`*.archive.zst`, not hidden: the names `Cache::archive`
/// writes and reads), how many and their bytes; `None` when there is no such directory.
#[cfg(feature = "archive")]
pub fn archive_files(dir: &Path) -> Option<(u64, u64)> {
    let listing = fs::read_dir(dir).ok()?;
    let suffix = format!(".{}", cacher::store::archive::EXTENSION);
    let (mut count, mut bytes) = (0u64, 0u64);
    for file in listing.flatten() {
        let name = file.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !name.ends_with(&suffix) {
            continue;
        }
        if let Ok(meta) = fs::symlink_metadata(file.path()) {
            if meta.is_file() {
                count += 1;
                bytes += meta.len();
            }
        }
    }
    Some((count, bytes))
}

fn units(n: u64) -> String {
    super::units::bytes(n)
}

/// The store markers present in the directory `path`, with the kind each names.
pub fn markers_in(path: &Path) -> Vec<(&'static str, Kind)> {
    MARKERS
        .iter()
        .filter(|(name, _)| fs::symlink_metadata(path.join(name)).is_ok())
        .copied()
        .collect()
}

/// Finds the kind of store at `path` from its marker or its contents.
pub fn detect(path: &Path) -> Result<Kind, Failure> {
    let meta = fs::metadata(path).map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::NotFound {
            "it does not exist".to_owned()
        } else {
            e.to_string()
        };
        Failure::unusable(path, format!("cannot open {}: {why}", path.display()))
    })?;
    if meta.is_file() {
        let mut magic = [0u8; 8];
        let read = fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic));
        return match read {
            Ok(()) if &magic == LOG_MAGIC => Ok(Kind::Log),
            _ => Err(Failure::unusable(
                path,
                format!(
                    "{} is a file but not a LogStore (it does not start with CACHELOG)",
                    path.display()
                ),
            )),
        };
    }
    if !meta.is_dir() {
        return Err(Failure::unusable(
            path,
            format!("{} is neither a directory nor a file", path.display()),
        ));
    }
    let marked: Vec<Kind> = MARKERS
        .iter()
        .filter(|(name, _)| fs::symlink_metadata(path.join(name)).is_ok())
        .map(|&(_, kind)| kind)
        .collect();
    match marked[..] {
        [kind] => return Ok(kind),
        [] => {}
        _ => {
            let names: Vec<&str> = marked.iter().map(|k| k.name()).collect();
            return Err(Failure::unusable(
                path,
                format!(
                    "{} holds the markers of several stores ({}): a mixed layout; remove the \
                     marker of the kind it is not",
                    path.display(),
                    names.join(", ")
                ),
            ));
        }
    }
    if path.join("data.mdb").is_file() {
        return lmdb_kind(path);
    }
    Err(Failure::unusable(
        path,
        format!(
            "{} is not a cacher store (no cacher-*.toml marker, no data.mdb, not a log file)",
            path.display()
        ),
    ))
}

/// An unmarked LMDB environment: a NumpyLmdb written by Python (its `metadata.lmdb`
/// sub-environment, or vectors in the default database), or an LmdbStore or ArrayStore from
/// before they wrote markers (their named databases are entries of the default database).
#[cfg(feature = "lmdb")]
fn lmdb_kind(path: &Path) -> Result<Kind, Failure> {
    use cacher::store::lmdb::{LmdbEnv, LmdbOptions, TxnError};
    if path.join("metadata.lmdb").is_dir() {
        return Ok(Kind::NumpyLmdb);
    }
    /// LMDB's `MDB_db` record: the value of a named database's entry in the default one.
    const MDB_DB_RECORD: usize = 48;
    let env = LmdbEnv::open(path, &LmdbOptions::default())
        .map_err(|e| Failure::store(path, "cannot open the LMDB environment", &e))?;
    let main = env
        .create_unnamed_database()
        .map_err(|e| Failure::store(path, "cannot read the LMDB environment", &e))?;
    let found = env
        .read(|txn| -> Result<Option<Kind>, TxnError> {
            let mut kind = None;
            for entry in main.iter(txn)?.take(16) {
                let (key, value) = entry?;
                let named = value.len() == MDB_DB_RECORD;
                if named && key.starts_with(b"cacher-store") {
                    return Ok(Some(Kind::Lmdb));
                }
                if !(named && key.starts_with(b"cacher-arrays")) {
                    return Ok(Some(Kind::NumpyLmdb));
                }
                kind = Some(Kind::Array);
            }
            Ok(kind)
        })
        .map_err(|e| Failure::store(path, "cannot read the LMDB environment", &e))?;
    found.ok_or_else(|| {
        Failure::unusable(
            path,
            format!(
                "{} is an empty LMDB environment without a cacher marker: no store to inspect",
                path.display()
            ),
        )
    })
}

#[cfg(not(feature = "lmdb"))]
fn lmdb_kind(path: &Path) -> Result<Kind, Failure> {
    Err(no_lmdb(path, "an LMDB environment"))
}

#[cfg(not(feature = "lmdb"))]
fn no_lmdb(path: &Path, what: &str) -> Failure {
    Failure::unusable(
        path,
        format!(
            "{} is {what}: this cacher was built without the `lmdb` feature \
             (cargo install cacher --features lmdb)",
            path.display()
        ),
    )
}

/// Opens the store at `path`, whose kind is detected; never creates one.
pub fn open(path: &Path, access: Access) -> Result<Opened, Failure> {
    let kind = detect(path)?;
    let cannot = |e: cacher::store::Error| {
        Failure::store(path, &format!("cannot open the {} at", kind.name()), &e)
            .damaged(e.is_corrupt())
            .with_fault(super::failure::Fault::of(&e))
    };
    let handle = match kind {
        Kind::Dir => Handle::Dir(DirStore::open(path).map_err(cannot)?),
        Kind::Log => Handle::Log(Box::new(
            LogStore::options()
                .read_only(access == Access::ReadOnly)
                .open(path)
                .map_err(cannot)?,
        )),
        #[cfg(feature = "lmdb")]
        Kind::Lmdb => Handle::Lmdb(cacher::store::LmdbStore::open(path).map_err(cannot)?),
        #[cfg(feature = "lmdb")]
        Kind::Array => Handle::Array(cacher::store::array::ArrayStore::open(path).map_err(cannot)?),
        #[cfg(feature = "lmdb")]
        Kind::NumpyLmdb => Handle::Numpy(super::numpy::NumpyBytes::open(path).map_err(cannot)?),
        #[cfg(feature = "lmdb")]
        Kind::Hybrid => Handle::Hybrid(cacher::store::HybridStore::open(path).map_err(cannot)?),
        #[cfg(not(feature = "lmdb"))]
        Kind::Lmdb | Kind::Array | Kind::NumpyLmdb | Kind::Hybrid => {
            return Err(no_lmdb(path, &format!("a {}", kind.name())))
        }
    };
    Ok(Opened {
        path: path.to_path_buf(),
        kind,
        handle,
        registry: Registry::with_builtins(),
    })
}

/// Creates a new store of `kind` at `path`, which must not exist.
pub fn create(path: &Path, kind: NewKind) -> Result<Opened, Failure> {
    let cannot = |e: cacher::store::Error| Failure::store(path, "cannot create a store at", &e);
    let (kind, handle) = match kind {
        NewKind::Dir => (
            Kind::Dir,
            Handle::Dir(DirStore::open(path).map_err(cannot)?),
        ),
        NewKind::Log => (
            Kind::Log,
            Handle::Log(Box::new(LogStore::open(path).map_err(cannot)?)),
        ),
        #[cfg(feature = "lmdb")]
        NewKind::Lmdb => (
            Kind::Lmdb,
            Handle::Lmdb(cacher::store::LmdbStore::open(path).map_err(cannot)?),
        ),
        #[cfg(feature = "lmdb")]
        NewKind::Hybrid => (
            Kind::Hybrid,
            Handle::Hybrid(cacher::store::HybridStore::open(path).map_err(cannot)?),
        ),
        #[cfg(not(feature = "lmdb"))]
        NewKind::Lmdb => return Err(no_lmdb(path, "to be an LmdbStore")),
        #[cfg(not(feature = "lmdb"))]
        NewKind::Hybrid => return Err(no_lmdb(path, "to be a HybridStore")),
    };
    Ok(Opened {
        path: path.to_path_buf(),
        kind,
        handle,
        registry: Registry::with_builtins(),
    })
}
