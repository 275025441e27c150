//! `verify --quarantine`: damaged entries moved out of the store into a directory beside it
//! that no store reads, so the cache recomputes them and the damaged bytes stay for a look.
//!
//! The quarantine of the store at `P` is `P.quarantine/` (`cache/` → `cache.quarantine/`,
//! `store.log` → `store.log.quarantine/`). Each moved entry is one file holding its raw bytes
//! as the store keeps them (DirStore: the whole entry file; LmdbStore: the raw LMDB value;
//! LogStore: the record its writer's open cut from the log, or the value for an envelope
//! fault), named by the blake3 hash of the key (`<hex>.bin`, `<hex>.1.bin` for a second
//! time). `index.jsonl` gets one JSON line per file: the key in hex, the error, the layer,
//! when, and where the bytes came from.
//!
//! An entry is moved only after its damage is seen again on a fresh read, so an entry that a
//! writer replaced with a sound value since the check is left alone. The bytes and the index
//! line are synced before the entry is removed from the store.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::failure::Failure;
use super::keyarg;
use super::open::{Opened, Raw};
use super::units;

/// The index file inside the quarantine directory.
pub const INDEX: &str = "index.jsonl";

/// The quarantine directory of the store at `store`: a sibling named `<name>.quarantine`.
pub fn dir_for(store: &Path) -> PathBuf {
    let mut name = store
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "store".into());
    name.push(".quarantine");
    store.with_file_name(name)
}

/// One damaged entry to move.
pub struct Damaged<'a> {
    pub key: Option<&'a [u8]>,
    pub layer: &'a str,
    pub error: &'a str,
}

/// What the move did, for the report.
#[derive(Default)]
pub struct Outcome {
    pub moved: Vec<Value>,
    pub not_moved: Vec<Value>,
    human: String,
}

impl Outcome {
    fn moved(&mut self, key: Option<&[u8]>, file: &Path, bytes: u64, source: &str) {
        let name = file
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        self.human.push_str(&format!(
            "moved {} to {name} ({}, {source})\n",
            key.map_or("the damaged tail".to_owned(), keyarg::human),
            units::bytes(bytes)
        ));
        self.moved.push(json!({
            "key": key.map(keyarg::json),
            "file": file.display().to_string(),
            "bytes": bytes,
            "source": source,
        }));
    }

    fn not_moved(&mut self, key: Option<&[u8]>, why: String) {
        self.human.push_str(&format!(
            "left {}: {why}\n",
            key.map_or("-".to_owned(), keyarg::human)
        ));
        self.not_moved
            .push(json!({"key": key.map(keyarg::json), "why": why}));
    }

    /// Nothing moved, for `why`.
    pub fn nothing_moved<'k>(keys: impl Iterator<Item = Option<&'k [u8]>>, why: &str) -> Outcome {
        let mut outcome = Outcome::default();
        for key in keys {
            outcome.not_moved(key, why.to_owned());
        }
        outcome
    }

    /// The report's human lines.
    pub fn human(&self, dir: &Path) -> String {
        format!(
            "quarantine {}: {} moved, {} left\n{}",
            dir.display(),
            units::entries(self.moved.len() as u64),
            self.not_moved.len(),
            self.human
        )
    }
}

/// The quarantine directory, created if missing; refused when something other than a real
/// directory is there (a symlink is not followed).
fn prepare(dir: &Path) -> Result<(), Failure> {
    let cannot = |e: io::Error| {
        Failure::unusable(
            dir,
            format!("cannot create the quarantine {}: {e}", dir.display()),
        )
    };
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Failure::unusable(
            dir,
            format!(
                "{} exists and is not a directory: move it away to quarantine into it",
                dir.display()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(dir).map_err(cannot),
        Err(e) => Err(cannot(e)),
    }
}

/// A new file in `dir` named by the hash of `key` (or `tail-<n>` for bytes of unknown key).
fn new_file(dir: &Path, key: Option<&[u8]>) -> io::Result<(PathBuf, File)> {
    let stem = key.map_or_else(
        || "tail".to_owned(),
        |k| blake3::hash(k).to_hex().to_string(),
    );
    for n in 0..1000u32 {
        let name = match n {
            0 => format!("{stem}.bin"),
            n => format!("{stem}.{n}.bin"),
        };
        let path = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(
        "1000 quarantined copies of this key already",
    ))
}

/// Appends one line to the index and syncs it.
fn append_index(dir: &Path, line: &Value) -> io::Result<()> {
    let mut index = OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join(INDEX))?;
    index.write_all(format!("{line}\n").as_bytes())?;
    index.sync_all()
}

/// Syncs the directory so the new names survive a power cut.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What a fresh read of a key finds.
enum Now {
    Gone,
    Sound,
    Damaged,
}

/// Reads `key` again through the store's checks, then the envelope's.
fn read_again(opened: &Opened, key: &[u8]) -> Result<Now, Failure> {
    let mut envelope_ok = true;
    let read = opened.store().with_value(key, &mut |bytes| {
        if opened.kind.holds_envelopes() {
            envelope_ok = opened.registry.open_value(key, bytes).is_ok();
        }
    });
    match read {
        Ok(false) => Ok(Now::Gone),
        Ok(true) if envelope_ok => Ok(Now::Sound),
        Ok(true) => Ok(Now::Damaged),
        Err(e) if e.is_corrupt() => Ok(Now::Damaged),
        Err(e) => Err(Failure::store(
            &opened.path,
            &format!("cannot read key {} of", keyarg::human(key)),
            &e,
        )),
    }
}

/// Moves each entry of `damaged` out of `opened` (opened for writing) into `dir`.
pub fn quarantine(
    opened: &Opened,
    damaged: &[Damaged<'_>],
    dir: &Path,
) -> Result<Outcome, Failure> {
    prepare(dir)?;
    let io_fail = |what: &Path, e: io::Error| {
        Failure::unusable(
            what,
            format!("cannot quarantine into {}: {e}", what.display()),
        )
    };
    let mut outcome = Outcome::default();
    // A LogStore writer's open already cut a damaged last record into a side file: that file
    // holds the record's bytes, and the store no longer holds the key's damaged value.
    let tail = opened.moved_tail();
    if let Some((key, side)) = &tail {
        let (path, file) = new_file(dir, key.as_deref()).map_err(|e| io_fail(dir, e))?;
        drop(file);
        // Same parent directory, so a rename; the side file is the log's own, never written.
        fs::rename(side, &path).map_err(|e| io_fail(side, e))?;
        let bytes = fs::metadata(&path).map_or(0, |m| m.len());
        let error = damaged
            .iter()
            .find(|d| d.key == key.as_deref() || (key.is_none() && d.layer == "file"))
            .map_or("damaged last record", |d| d.error);
        append_index(
            dir,
            &index_line(key.as_deref(), &path, bytes, "store", error, "log record"),
        )
        .map_err(|e| io_fail(dir, e))?;
        outcome.moved(
            key.as_deref(),
            &path,
            bytes,
            "log record, cut by the LogStore's open",
        );
    }
    for d in damaged {
        let Some(key) = d.key else {
            if tail.as_ref().is_none_or(|(k, _)| k.is_some()) {
                outcome.not_moved(
                    None,
                    format!("{} (no key: a LogStore writer's open cuts it)", d.error),
                );
            }
            continue;
        };
        if tail
            .as_ref()
            .is_some_and(|(k, _)| k.as_deref() == Some(key))
        {
            continue;
        }
        match read_again(opened, key)? {
            Now::Gone => {
                outcome.not_moved(Some(key), "gone from the store since it was checked".into());
                continue;
            }
            Now::Sound => {
                outcome.not_moved(
                    Some(key),
                    "reads sound now (rewritten since the check)".into(),
                );
                continue;
            }
            Now::Damaged => {}
        }
        let raw = opened
            .raw_entry(key)
            .map_err(|e| Failure::store(&opened.path, "cannot read the raw bytes of", &e))?;
        let (path, mut file) = new_file(dir, Some(key)).map_err(|e| io_fail(dir, e))?;
        let (bytes, source) = match raw {
            Raw::File(entry) => {
                let mut from = File::open(&entry).map_err(|e| io_fail(&entry, e))?;
                (
                    io::copy(&mut from, &mut file).map_err(|e| io_fail(&path, e))?,
                    "entry file",
                )
            }
            Raw::Bytes(b) => {
                file.write_all(&b).map_err(|e| io_fail(&path, e))?;
                (b.len() as u64, "stored value")
            }
            Raw::Missing => (0, "no bytes found"),
        };
        file.sync_all().map_err(|e| io_fail(&path, e))?;
        drop(file);
        append_index(
            dir,
            &index_line(Some(key), &path, bytes, d.layer, d.error, source),
        )
        .map_err(|e| io_fail(dir, e))?;
        opened.store().delete(key).map_err(|e| {
            Failure::store(
                &opened.path,
                &format!("cannot remove the damaged key {} from", keyarg::human(key)),
                &e,
            )
        })?;
        outcome.moved(Some(key), &path, bytes, source);
    }
    sync_dir(dir).map_err(|e| io_fail(dir, e))?;
    opened
        .store()
        .flush()
        .map_err(|e| Failure::store(&opened.path, "cannot flush", &e))?;
    Ok(outcome)
}

fn index_line(
    key: Option<&[u8]>,
    file: &Path,
    bytes: u64,
    layer: &str,
    error: &str,
    source: &str,
) -> Value {
    json!({
        "key_hex": key.map(keyarg::hex),
        "key": key.map(keyarg::human),
        "file": file.file_name().map(|n| n.to_string_lossy().into_owned()),
        "bytes": bytes,
        "layer": layer,
        "error": error,
        "source": source,
        "quarantined_ms": units::now_ms(),
    })
}
