//! Value files: writing one by streaming (temp file, fsync, rename), reading one by map or
//! stream, and removing the ones no record names.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::record::Record;
use super::HybridStore;
use crate::fs::{self, copy_checksummed, sync_dir};
use crate::{Blob, Durability, Error, Result};

/// The first bytes of every value file.
pub(super) const FILE_MAGIC: [u8; 8] = *b"CACHRHYB";
const FILE_VERSION: u32 = 1;
/// Magic, version, 4 reserved zero bytes; the value follows.
pub(super) const FILE_HEADER_LEN: u64 = 16;

/// Mapped values up to this size are checked through the map; larger ones through the file
/// descriptor, so a check adds at most this much resident memory (as DirStore does).
const MAP_CHECK_MAX: u64 = 32 << 20;

const TMP_PREFIX: &str = "put-";

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random file id: a hash of the key, the process, the time and a counter, so two
/// writers never pick the same name and the name says nothing about the key.
fn new_id(key: &[u8]) -> [u8; 16] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = blake3::Hasher::new_derive_key("cacher hybrid file id v1");
    h.update(&std::process::id().to_le_bytes());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(&now.to_le_bytes());
    h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(key);
    let mut id = [0u8; 16];
    id.copy_from_slice(&h.finalize().as_bytes()[..16]);
    id
}

fn file_header() -> [u8; FILE_HEADER_LEN as usize] {
    let mut out = [0u8; FILE_HEADER_LEN as usize];
    out[..8].copy_from_slice(&FILE_MAGIC);
    out[8..12].copy_from_slice(&FILE_VERSION.to_le_bytes());
    out
}

/// Writes `head` then the rest of `reader` into a new value file and publishes it under a new
/// random name (not yet referenced by the index). Returns its record.
pub(super) fn write_value(
    store: &HybridStore,
    key: &[u8],
    head: &[u8],
    reader: &mut dyn Read,
) -> Result<Record> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TMP_PREFIX).rand_bytes(12);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(store.file_mode.file_bits()));
    }
    let mut tmp = builder
        .tempfile_in(&store.tmp)
        .map_err(|e| Error::io("creating a temp file in", &store.tmp, e))?;
    let path = tmp.path().to_path_buf();
    let io_err = |e| Error::io("writing", &path, e);
    let mut crc = crc32fast::Hasher::new();
    let file = tmp.as_file_mut();
    file.write_all(&file_header()).map_err(io_err)?;
    crc.update(head);
    file.write_all(head).map_err(io_err)?;
    // The file's errors are told apart from the reader's.
    let mut write_error = None;
    let copied = copy_checksummed(reader, &mut crc, u64::MAX, |chunk| {
        file.write_all(chunk).map_err(|e| {
            let kind = e.kind();
            write_error = Some(e);
            io::Error::from(kind)
        })
    });
    let rest = match (copied, write_error) {
        (_, Some(e)) => return Err(io_err(e)),
        (Err(e), None) => {
            return Err(Error::ValueSource {
                key: crate::KeyDisplay::new(key),
                source: e,
            })
        }
        (Ok(n), None) => n,
    };
    if store.durability != Durability::None {
        file.sync_all()
            .map_err(|e| Error::io("syncing", &path, e))?;
    }
    let id = new_id(key);
    let dest = store.file_path(&id);
    let fan = dest.parent().expect("a value file has a fan-out directory");
    fs::ensure_dir(fan, store.file_mode)?;
    tmp.persist_noclobber(&dest)
        .map_err(|e| Error::io("renaming into place", &dest, e.error))?;
    if store.durability != Durability::None {
        sync_dir(fan)?;
    }
    Ok(Record::File {
        id,
        len: head.len() as u64 + rest,
        crc: crc.finalize(),
    })
}

/// Checks a value file's header and length against its record.
fn check_file(file: &mut File, path: &Path, key: &[u8], len: u64) -> Result<()> {
    let file_len = file
        .metadata()
        .map_err(|e| Error::io("reading the length of", path, e))?
        .len();
    if file_len != FILE_HEADER_LEN + len {
        return Err(Error::corrupt(
            path,
            Some(key),
            format!(
                "the value file is {file_len} bytes, its record says {}",
                FILE_HEADER_LEN + len
            ),
        ));
    }
    let mut head = [0u8; FILE_HEADER_LEN as usize];
    file.read_exact(&mut head)
        .map_err(|e| Error::io("reading", path, e))?;
    if head[..8] != FILE_MAGIC {
        return Err(Error::corrupt(
            path,
            Some(key),
            "not a hybrid value file (bad magic)",
        ));
    }
    let version = crate::le::u32_at(&head, 8).unwrap_or_default();
    if version != FILE_VERSION {
        return Err(Error::corrupt(
            path,
            Some(key),
            format!("value file version {version}, this build reads {FILE_VERSION}"),
        ));
    }
    Ok(())
}

/// The file positioned at its value, header and length checked.
pub(super) fn open_value(mut file: File, path: &Path, key: &[u8], len: u64) -> Result<File> {
    check_file(&mut file, path, key, len)?;
    Ok(file)
}

/// Maps a value file (sound by the rule of `crate::mmap`: a value file is never written after
/// its rename, only unlinked) and checks its checksum when `check`.
pub(super) fn map_value(
    mut file: File,
    path: &Path,
    key: &[u8],
    len: u64,
    crc: u32,
    check: bool,
) -> Result<Blob> {
    check_file(&mut file, path, key, len)?;
    let map = crate::mmap::map_immutable(&file, FILE_HEADER_LEN + len, path)?;
    let range = FILE_HEADER_LEN as usize..map.len();
    if check {
        let actual = if len <= MAP_CHECK_MAX {
            crc32fast::hash(&map[range.clone()])
        } else {
            file.seek(SeekFrom::Start(FILE_HEADER_LEN))
                .map_err(|e| Error::io("reading", path, e))?;
            let mut hasher = crc32fast::Hasher::new();
            copy_checksummed(&mut file, &mut hasher, u64::MAX, |_| Ok(()))
                .map_err(|e| Error::io("reading", path, e))?;
            hasher.finalize()
        };
        if actual != crc {
            return Err(Error::corrupt(
                path,
                Some(key),
                format!("value checksum mismatch (stored {crc:08x}, computed {actual:08x})"),
            ));
        }
    }
    Ok(Blob::mapped(Arc::new(map), range))
}

fn old_enough(meta: &std::fs::Metadata, min_age: Duration) -> bool {
    let modified = meta.modified().unwrap_or_else(|_| SystemTime::now());
    SystemTime::now()
        .duration_since(modified)
        .is_ok_and(|age| age >= min_age)
}

fn parse_id(name: &str) -> Option<[u8; 16]> {
    let hex = name.strip_suffix(".blob")?;
    if hex.len() != 32
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    let mut id = [0u8; 16];
    for (i, out) in id.iter_mut().enumerate() {
        *out = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

/// Removes unreferenced value files and stale temp files (see the module docs); with `live`
/// unknown (`None`: a record could not be read), only the temp files.
pub(super) fn collect(
    files: &Path,
    tmp: &Path,
    live: Option<&HashSet<[u8; 16]>>,
    min_age: Duration,
) -> Result<u64> {
    let mut removed = 0;
    let list = |dir: &Path| -> Result<Vec<std::fs::DirEntry>> {
        std::fs::read_dir(dir)
            .map_err(|e| Error::io("listing", dir, e))?
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| Error::io("listing", dir, e))
    };
    let value_files = if live.is_some() {
        list(files)?
    } else {
        Vec::new()
    };
    let none_live = HashSet::new();
    let live = live.unwrap_or(&none_live);
    for entry in value_files {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let fan = entry.path();
        // Only fan-out directories this store makes: two lowercase hex digits, real dirs.
        if name.len() != 2 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        if fs::check_dir(&fan).is_err() {
            continue;
        }
        for file in list(&fan)? {
            let path = file.path();
            let Some(id) = file.file_name().to_str().and_then(parse_id) else {
                continue;
            };
            if live.contains(&id) || !hex(&id).starts_with(name) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_file() || !old_enough(&meta, min_age) {
                continue;
            }
            // Only files that start with our magic: never a file someone put here.
            let Ok(Some(mut f)) = fs::open_regular(&path, fs::Access::Read) else {
                continue;
            };
            let mut magic = [0u8; 8];
            if f.read_exact(&mut magic).is_err() || magic != FILE_MAGIC {
                continue;
            }
            if std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
    }
    for entry in list(tmp)? {
        let path = entry.path();
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TMP_PREFIX));
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if is_ours
            && meta.is_file()
            && old_enough(&meta, min_age)
            && std::fs::remove_file(&path).is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}
