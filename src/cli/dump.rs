//! `export` / `import`: a store's entries as one portable file, so a cache moves between
//! store kinds. The stored bytes are copied as they are (envelopes included), and a value's
//! envelope binds it to its key, not to a store, so it reads the same after the move.
//!
//! # Format `cacher-dump`, version 1 (all integers little-endian)
//!
//! ```text
//! header   "CACHEDMP" (8 bytes) | version u32 = 1 | flags u32
//! entry    0x01 | key_len u32 | value_len u64 | key | value | crc32 u32
//! end      0x00 | entries u64 | crc32 u32
//! ```
//!
//! An entry's CRC-32 covers `key_len | value_len | key | value`; the end record's covers
//! `entries`. A file without its end record was cut short and is refused whole, as is one
//! with bytes after it. Flags: bit 0 (`FLAG_ZSTD`) says everything after the 16-byte header
//! is one zstd frame (with its content checksum) holding the same records; other bits are
//! refused, as is a newer version, with what this build reads. Import checks the whole file
//! (streamed: values pass through the checksum in chunks) before writing anything.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
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
/// Flag bit 0: the records after the header are one zstd frame.
const FLAG_ZSTD: u32 = 1;
/// The flags this build reads.
const KNOWN_FLAGS: u32 = FLAG_ZSTD;
/// The zstd level of `export --compress`: zstd's default, fast, and most of the gain.
const ZSTD_LEVEL: i32 = 3;
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
pub fn export(opened: &Opened, file: &Path, compress: bool) -> Result<Report, Failure> {
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
    let result = write_dump(opened, out, file, compress);
    if result.is_err() {
        // A partial dump has no end record and would be refused anyway; do not leave it.
        let _ = std::fs::remove_file(file);
    }
    let (count, bytes, skipped) = result?;
    let code = if skipped.is_empty() { 0 } else { PROBLEMS };
    let file_bytes = std::fs::metadata(file).map_or(0, |m| m.len());
    let mut human = format!(
        "exported {} ({}) from {} to {} ({}{} on disk)\n",
        super::units::entries(count),
        super::units::bytes(bytes),
        opened.path.display(),
        file.display(),
        if compress { "zstd, " } else { "" },
        super::units::bytes(file_bytes),
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
        .field("compressed", compress.into())
        .field("file_bytes", file_bytes.into())
        .field("entries", count.into())
        .field("bytes", bytes.into())
        .field("skipped", skipped_json.into())
        .human(human))
}

type Skipped = Vec<(Vec<u8>, String)>;
/// A key and its stored bytes.
type Entry = (Vec<u8>, Vec<u8>);

fn write_dump(
    opened: &Opened,
    out: File,
    file: &Path,
    compress: bool,
) -> Result<(u64, u64, Skipped), Failure> {
    let io_err = |e: io::Error| {
        Failure::unusable(
            file,
            format!("cannot write the dump {}: {e}", file.display()),
        )
    };
    let mut w = BufWriter::new(out);
    let flags = if compress { FLAG_ZSTD } else { 0 };
    w.write_all(MAGIC).map_err(io_err)?;
    w.write_all(&VERSION.to_le_bytes()).map_err(io_err)?;
    w.write_all(&flags.to_le_bytes()).map_err(io_err)?;
    let (w, written) = if compress {
        let mut z = zstd::stream::write::Encoder::new(w, ZSTD_LEVEL).map_err(io_err)?;
        z.include_checksum(true).map_err(io_err)?;
        let written = write_records(opened, &mut z, &io_err)?;
        (z.finish().map_err(io_err)?, written)
    } else {
        let written = write_records(opened, &mut w, &io_err)?;
        (w, written)
    };
    let out = w.into_inner().map_err(|e| io_err(e.into_error()))?;
    out.sync_all().map_err(io_err)?;
    Ok(written)
}

/// Writes every entry and the end record to `w`, one value at a time.
fn write_records(
    opened: &Opened,
    w: &mut dyn Write,
    io_err: &dyn Fn(io::Error) -> Failure,
) -> Result<(u64, u64, Skipped), Failure> {
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
    Ok((count, bytes, skipped))
}

/// An open dump whose header and whole body were checked.
pub struct DumpReader {
    path: PathBuf,
    flags: u32,
    /// Entries in the dump, counted by the checking pass of `open`.
    count: u64,
}

/// Reading the records of a dump, after its header, from the start.
struct Records {
    path: PathBuf,
    src: Box<dyn Read>,
    /// Bytes the file holds after what was read (uncompressed dumps), to hold the lengths an
    /// entry claims against before anything is allocated.
    left: Option<u64>,
}

/// What to do with an entry's value while reading it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Take {
    /// Check its checksum in chunks, keep nothing (the checking pass).
    CheckOnly,
    /// Check it and return it (the importing pass).
    Keep,
}

/// The chunk a value is checked in when it is not kept.
const CHUNK: usize = 64 << 10;

impl DumpReader {
    /// Opens `path` and checks the whole dump (every entry's checksum, the end record, and a
    /// compressed dump's frame checksum), so nothing is created or written for a dump that
    /// would fail halfway. Values are streamed through their checksum, never held.
    pub fn open(path: &Path) -> Result<DumpReader, Failure> {
        let mut reader = DumpReader {
            path: path.to_path_buf(),
            flags: 0,
            count: 0,
        };
        let mut records = reader.records()?;
        while records.next(reader.count, Take::CheckOnly)?.is_some() {
            reader.count += 1;
        }
        Ok(reader)
    }

    /// Whether the dump is zstd-compressed.
    pub fn compressed(&self) -> bool {
        self.flags & FLAG_ZSTD != 0
    }

    /// Opens the file again and reads its header: the records follow.
    fn records(&mut self) -> Result<Records, Failure> {
        let path = &self.path;
        let file = File::open(path).map_err(|e| {
            Failure::unusable(
                path,
                format!("cannot open the dump {}: {e}", path.display()),
            )
        })?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut records = Records {
            path: path.clone(),
            src: Box::new(BufReader::new(file)),
            left: Some(len),
        };
        let mut head = [0u8; 16];
        records.exact(&mut head, "its header")?;
        if &head[..8] != MAGIC {
            return Err(records.bad("it does not start with CACHEDMP: not a cacher dump"));
        }
        let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        let flags = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
        if version != VERSION || flags & !KNOWN_FLAGS != 0 {
            return Err(records.bad(&format!(
                "dump version {version} (flags {flags:#x}); this cacher reads version \
                 {VERSION} with flags {KNOWN_FLAGS:#x} (zstd) or none: upgrade cacher"
            )));
        }
        self.flags = flags;
        if flags & FLAG_ZSTD != 0 {
            let raw = std::mem::replace(&mut records.src, Box::new(io::empty()));
            let decoder = zstd::stream::read::Decoder::with_buffer(BufReader::new(raw))
                .map_err(|e| records.bad(&format!("cannot start decompressing: {e}")))?;
            records.src = Box::new(decoder);
            // Decompressed lengths cannot be held against the file's size; values are then
            // read as they arrive, so memory follows the bytes really there.
            records.left = None;
        }
        Ok(records)
    }
}

impl Records {
    fn bad(&self, why: &str) -> Failure {
        Failure::unusable(
            &self.path,
            format!("cannot import {}: {why}", self.path.display()),
        )
    }

    fn io_bad(&self, e: &io::Error, what: &str) -> Failure {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            self.bad(&format!("the file ends inside {what}: it was cut short"))
        } else {
            self.bad(&format!(
                "reading {what}: {e}: the dump is damaged or cut short"
            ))
        }
    }

    fn consumed(&mut self, n: usize) {
        if let Some(left) = &mut self.left {
            *left = left.saturating_sub(n as u64);
        }
    }

    fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), Failure> {
        match self.src.read_exact(buf) {
            Ok(()) => {
                self.consumed(buf.len());
                Ok(())
            }
            Err(e) => Err(self.io_bad(&e, what)),
        }
    }

    /// The next entry (its value only with `Take::Keep`), or `None` after a sound end record
    /// that ends the file.
    fn next(&mut self, seen: u64, take: Take) -> Result<Option<Entry>, Failure> {
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
                // Reading on to the end also checks a zstd frame's content checksum.
                let mut after = [0u8; 1];
                return match self.src.read(&mut after) {
                    Ok(0) => Ok(None),
                    Ok(_) => Err(self.bad("bytes follow the end record: the dump is damaged")),
                    Err(e) => Err(self.io_bad(&e, "the end of the dump")),
                };
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
        let past_end = self
            .left
            .is_some_and(|left| value_len.saturating_add(u64::from(key_len)) > left);
        if key_len > MAX_KEY || past_end {
            return Err(self.bad(&format!(
                "entry {seen} claims a {key_len}-byte key and a {value_len}-byte value, \
                 more than the file holds: the dump is damaged"
            )));
        }
        // The key is at most MAX_KEY bytes (and, uncompressed, within the file).
        let mut key = vec![0u8; key_len as usize];
        self.exact(&mut key, "a key")?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&lens[..4]);
        crc.update(&lens[4..]);
        crc.update(&key);
        let value = match take {
            Take::CheckOnly => {
                let mut chunk = vec![0u8; CHUNK];
                let mut left = value_len;
                while left > 0 {
                    let n = left.min(CHUNK as u64) as usize;
                    self.exact(&mut chunk[..n], "a value")?;
                    crc.update(&chunk[..n]);
                    left -= n as u64;
                }
                Vec::new()
            }
            Take::Keep => {
                // Grown as the bytes arrive: a length the stream does not hold allocates
                // no more than what it does hold.
                let mut value = Vec::new();
                let got = (&mut self.src)
                    .take(value_len)
                    .read_to_end(&mut value)
                    .map_err(|e| self.io_bad(&e, "a value"))?;
                self.consumed(got);
                if got as u64 != value_len {
                    return Err(self.bad("the file ends inside a value: it was cut short"));
                }
                crc.update(&value);
                value
            }
        };
        let mut stored = [0u8; 4];
        self.exact(&mut stored, "an entry checksum")?;
        if u32::from_le_bytes(stored) != crc.finalize() {
            return Err(self.bad(&format!(
                "entry {seen} (key {}) fails its checksum: the dump is damaged",
                keyarg::human(&key)
            )));
        }
        Ok(Some((key, value)))
    }
}

/// `cacher import STORE FILE`: writes the entries of a checked dump in batches. The file is
/// read a second time for that, and checked again as it goes: if it changed since the check
/// and fails now, the error says how many entries were already written.
pub fn import(opened: &Opened, mut dump: DumpReader) -> Result<Report, Failure> {
    let bar = progress::bar(dump.count, "importing");
    let (mut batch, mut batch_bytes, mut read, mut bytes) = (Vec::new(), 0, 0u64, 0u64);
    let mut written = 0u64;
    let flush = |batch: &mut Vec<Entry>, written: &mut u64| -> Result<(), Failure> {
        let refs: Vec<(&[u8], &[u8])> = batch.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        opened
            .store()
            .put_many(&refs)
            .map_err(|e| Failure::store(&opened.path, "cannot import into", &e))?;
        *written += batch.len() as u64;
        batch.clear();
        Ok(())
    };
    let partial = |f: Failure, written: u64| {
        f.note(&format!(
            "; {} of the dump had been written into {} before this (the file changed after \
             it was checked)",
            super::units::entries(written),
            opened.path.display()
        ))
    };
    let mut records = dump.records()?;
    loop {
        let next = records
            .next(read, Take::Keep)
            .map_err(|f| partial(f, written))?;
        let Some((key, value)) = next else { break };
        read += 1;
        bytes += value.len() as u64;
        batch_bytes += key.len() + value.len();
        batch.push((key, value));
        if batch.len() >= BATCH_ENTRIES || batch_bytes >= BATCH_BYTES {
            flush(&mut batch, &mut written).map_err(|f| partial(f, written))?;
            bar.set_position(written);
            batch_bytes = 0;
        }
    }
    flush(&mut batch, &mut written).map_err(|f| partial(f, written))?;
    opened
        .store()
        .flush()
        .map_err(|e| Failure::store(&opened.path, "cannot flush", &e))?;
    bar.finish_and_clear();
    Ok(Report::new(opened, 0)
        .field("file", dump.path.display().to_string().into())
        .field("dump_version", VERSION.into())
        .field("compressed", dump.compressed().into())
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
