//! `export` / `import`: a store's entries as one portable file, so a cache moves between
//! store kinds. The stored bytes are copied as they are (envelopes included), and a value's
//! envelope binds it to its key, not to a store, so it reads the same after the move.
//!
//! # Format `cacher-dump`, version 1 (all integers little-endian)
//!
//! ```text
//! header   "CACHEDMP" (8 bytes) | version u32 = 1 | flags u32 = 0
//! entry    0x01 | key_len u32 | value_len u64 | key | value | crc32 u32
//! end      0x00 | entries u64 | crc32 u32
//! ```
//!
//! An entry's CRC-32 covers `key_len | value_len | key | value`; the end record's covers
//! `entries`. A file without its end record was cut short and is refused whole. Flags are
//! reserved (compression); a file with flags set or a newer version is refused with the
//! version this build reads. Import checks the whole file before writing anything.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::failure::{chain, Failure, PROBLEMS};
use super::keyarg;
use super::open::Opened;
use super::output::Report;
use super::progress;
use super::walk;

const MAGIC: &[u8; 8] = b"CACHEDMP";
const VERSION: u32 = 1;
const TAG_ENTRY: u8 = 1;
const TAG_END: u8 = 0;
/// Longer keys are refused as damage: no store keeps keys anywhere near this long.
const MAX_KEY: u32 = 16 << 20;
/// Entries put in one `put_many` (one transaction or sync where the store allows).
const BATCH_ENTRIES: usize = 512;
const BATCH_BYTES: usize = 64 << 20;

fn entry_crc(key: &[u8], value: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&(key.len() as u32).to_le_bytes());
    h.update(&(value.len() as u64).to_le_bytes());
    h.update(key);
    h.update(value);
    h.finalize()
}

/// `cacher export STORE FILE`: refuses an existing FILE; a damaged entry is left out, named,
/// and makes the exit code 1.
pub fn export(opened: &Opened, file: &Path) -> Result<Report, Failure> {
    let cannot = |e: io::Error| {
        Failure::unusable(
            file,
            format!("cannot write the dump {}: {e}", file.display()),
        )
    };
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
        .map_err(cannot)?;
    let result = write_dump(opened, out, file);
    if result.is_err() {
        // A partial dump has no end record and would be refused anyway; do not leave it.
        let _ = std::fs::remove_file(file);
    }
    let (count, bytes, skipped) = result?;
    let code = if skipped.is_empty() { 0 } else { PROBLEMS };
    let mut human = format!(
        "exported {} ({}) from {} to {}\n",
        super::units::entries(count),
        super::units::bytes(bytes),
        opened.path.display(),
        file.display()
    );
    for (key, why) in &skipped {
        human.push_str(&format!(
            "left out damaged entry {}: {why}\n",
            keyarg::human(key)
        ));
    }
    let skipped_json: Vec<Value> = skipped
        .iter()
        .map(|(k, why)| serde_json::json!({"key": keyarg::json(k), "error": why}))
        .collect();
    Ok(Report::new(opened, code)
        .field("file", file.display().to_string().into())
        .field("dump_version", VERSION.into())
        .field("entries", count.into())
        .field("bytes", bytes.into())
        .field("skipped", skipped_json.into())
        .human(human))
}

type Skipped = Vec<(Vec<u8>, String)>;
/// A key and its stored bytes.
type Entry = (Vec<u8>, Vec<u8>);

fn write_dump(opened: &Opened, out: File, file: &Path) -> Result<(u64, u64, Skipped), Failure> {
    let io_err = |e: io::Error| {
        Failure::unusable(
            file,
            format!("cannot write the dump {}: {e}", file.display()),
        )
    };
    let mut w = BufWriter::new(out);
    w.write_all(MAGIC).map_err(io_err)?;
    w.write_all(&VERSION.to_le_bytes()).map_err(io_err)?;
    w.write_all(&0u32.to_le_bytes()).map_err(io_err)?;
    let keys = walk::keys(opened)?;
    let bar = progress::bar(keys.len() as u64, "exporting");
    let (mut count, mut bytes, mut skipped) = (0u64, 0u64, Vec::new());
    for key in keys {
        bar.inc(1);
        let mut write = Ok(());
        let read = opened.store().with_value(&key, &mut |value| {
            write = (|| {
                w.write_all(&[TAG_ENTRY])?;
                w.write_all(&(key.len() as u32).to_le_bytes())?;
                w.write_all(&(value.len() as u64).to_le_bytes())?;
                w.write_all(&key)?;
                w.write_all(value)?;
                w.write_all(&entry_crc(&key, value).to_le_bytes())
            })();
            bytes += value.len() as u64;
        });
        match read {
            Ok(true) => {
                write.map_err(io_err)?;
                count += 1;
            }
            Ok(false) => {}
            Err(e) if e.is_corrupt() => skipped.push((key, chain(&e))),
            Err(e) => return Err(Failure::store(&opened.path, "cannot export", &e)),
        }
    }
    bar.finish_and_clear();
    w.write_all(&[TAG_END]).map_err(io_err)?;
    w.write_all(&count.to_le_bytes()).map_err(io_err)?;
    w.write_all(&crc32fast::hash(&count.to_le_bytes()).to_le_bytes())
        .map_err(io_err)?;
    let out = w.into_inner().map_err(|e| io_err(e.into_error()))?;
    out.sync_all().map_err(io_err)?;
    Ok((count, bytes, skipped))
}

/// An open dump whose header was checked.
pub struct DumpReader {
    path: PathBuf,
    file: BufReader<File>,
    len: u64,
    /// Entries in the dump, counted by the checking pass of `open`.
    count: u64,
}

impl DumpReader {
    /// Opens `path` and checks the whole dump (every entry's checksum and the end record), so
    /// nothing is created or written for a dump that would fail halfway.
    pub fn open(path: &Path) -> Result<DumpReader, Failure> {
        let file = File::open(path).map_err(|e| {
            Failure::unusable(
                path,
                format!("cannot open the dump {}: {e}", path.display()),
            )
        })?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut reader = DumpReader {
            path: path.to_path_buf(),
            file: BufReader::new(file),
            len,
            count: 0,
        };
        let mut head = [0u8; 16];
        reader.exact(&mut head, "its header")?;
        if &head[..8] != MAGIC {
            return Err(reader.bad("it does not start with CACHEDMP: not a cacher dump"));
        }
        let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        let flags = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
        if version != VERSION || flags != 0 {
            return Err(reader.bad(&format!(
                "dump version {version} (flags {flags:#x}); this cacher reads version \
                 {VERSION} without flags: upgrade cacher"
            )));
        }
        while reader.next(reader.count)?.is_some() {
            reader.count += 1;
        }
        reader.rewind()?;
        Ok(reader)
    }

    fn bad(&self, why: &str) -> Failure {
        Failure::unusable(
            &self.path,
            format!("cannot import {}: {why}", self.path.display()),
        )
    }

    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), Failure> {
        self.file.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.bad(&format!("the file ends inside {what}: it was cut short"))
            } else {
                self.bad(&e.to_string())
            }
        })
    }

    /// The next entry, or `None` after a sound end record.
    fn next(&mut self, seen: u64) -> Result<Option<Entry>, Failure> {
        let mut tag = [0u8; 1];
        self.exact(&mut tag, "the end record")?;
        match tag[0] {
            TAG_ENTRY => {}
            TAG_END => {
                let mut end = [0u8; 12];
                self.exact(&mut end, "the end record")?;
                let count = u64::from_le_bytes(end[..8].try_into().unwrap_or_default());
                let crc = u32::from_le_bytes(end[8..].try_into().unwrap_or_default());
                if crc != crc32fast::hash(&end[..8]) || count != seen {
                    return Err(self.bad(&format!(
                        "the end record is damaged or counts {count} entries where {seen} were read"
                    )));
                }
                return Ok(None);
            }
            other => {
                return Err(self.bad(&format!(
                    "unknown record tag {other} after entry {seen}: the dump is damaged"
                )))
            }
        }
        let mut lens = [0u8; 12];
        self.exact(&mut lens, "an entry header")?;
        let key_len = u32::from_le_bytes(lens[..4].try_into().unwrap_or_default());
        let value_len = u64::from_le_bytes(lens[4..].try_into().unwrap_or_default());
        let pos = self.file.stream_position().unwrap_or(0);
        let left = self.len.saturating_sub(pos);
        if key_len > MAX_KEY || value_len.saturating_add(u64::from(key_len)) > left {
            return Err(self.bad(&format!(
                "entry {seen} claims a {key_len}-byte key and a {value_len}-byte value, \
                 more than the {left} bytes left in the file: the dump is damaged"
            )));
        }
        // Both lengths were held against the file's size, so these allocations are bounded.
        let mut key = vec![0u8; key_len as usize];
        self.exact(&mut key, "a key")?;
        let mut value = vec![0u8; value_len as usize];
        self.exact(&mut value, "a value")?;
        let mut crc = [0u8; 4];
        self.exact(&mut crc, "an entry checksum")?;
        if u32::from_le_bytes(crc) != entry_crc(&key, &value) {
            return Err(self.bad(&format!(
                "entry {seen} (key {}) fails its checksum: the dump is damaged",
                keyarg::human(&key)
            )));
        }
        Ok(Some((key, value)))
    }

    fn rewind(&mut self) -> Result<(), Failure> {
        self.file
            .seek(SeekFrom::Start(16))
            .map(|_| ())
            .map_err(|e| self.bad(&e.to_string()))
    }
}

/// `cacher import STORE FILE`: writes the entries of a checked dump in batches.
pub fn import(opened: &Opened, mut dump: DumpReader) -> Result<Report, Failure> {
    let bar = progress::bar(dump.count, "importing");
    let (mut batch, mut batch_bytes, mut written, mut bytes) = (Vec::new(), 0, 0u64, 0u64);
    let flush = |batch: &mut Vec<Entry>| -> Result<(), Failure> {
        let refs: Vec<(&[u8], &[u8])> = batch.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        opened
            .store()
            .put_many(&refs)
            .map_err(|e| Failure::store(&opened.path, "cannot import into", &e))?;
        batch.clear();
        Ok(())
    };
    while let Some((key, value)) = dump.next(written)? {
        written += 1;
        bytes += value.len() as u64;
        batch_bytes += key.len() + value.len();
        batch.push((key, value));
        if batch.len() >= BATCH_ENTRIES || batch_bytes >= BATCH_BYTES {
            flush(&mut batch)?;
            bar.set_position(written);
            batch_bytes = 0;
        }
    }
    flush(&mut batch)?;
    opened
        .store()
        .flush()
        .map_err(|e| Failure::store(&opened.path, "cannot flush", &e))?;
    bar.finish_and_clear();
    Ok(Report::new(opened, 0)
        .field("file", dump.path.display().to_string().into())
        .field("dump_version", VERSION.into())
        .field("entries", written.into())
        .field("bytes", bytes.into())
        .human(format!(
            "imported {} ({}) from {} into {}\n",
            super::units::entries(written),
            super::units::bytes(bytes),
            dump.path.display(),
            opened.path.display()
        )))
}
