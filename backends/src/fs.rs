//! File-system rules every disk store follows: a store opens only regular files and
//! directories it made (never through a symlink, never blocking on a FIFO), creates files with
//! `O_EXCL` and one mode policy, and makes renames durable the same way.
//!
//! Why here and not in each store: the probes of issue 9 found each store getting a different
//! subset of these right. One module, one set of tests.

#![allow(
    dead_code,
    reason = "shared helpers; each store adopts them as it is split (issue 17)"
)]

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// Who may read the files a store creates.
///
/// ```
/// use cacher_store::FileMode;
/// assert_eq!(FileMode::default(), FileMode::Umask);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileMode {
    /// New files get `0o666` and directories `0o777`, less the process umask, so a cache can
    /// be shared by a group (umask `002`) or kept private (umask `077`). The default.
    #[default]
    Umask,
    /// New files get `0o600` and directories `0o700`, whatever the umask.
    OwnerOnly,
}

impl FileMode {
    /// The mode bits asked of `open(2)` for a new file (the umask still applies).
    pub fn file_bits(self) -> u32 {
        match self {
            FileMode::Umask => 0o666,
            FileMode::OwnerOnly => 0o600,
        }
    }

    /// The mode bits asked of `mkdir(2)` for a new directory (the umask still applies).
    pub fn dir_bits(self) -> u32 {
        match self {
            FileMode::Umask => 0o777,
            FileMode::OwnerOnly => 0o700,
        }
    }
}

/// How a store opens an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    ReadWrite,
}

/// Opens the regular file at `path`, or `Ok(None)` when nothing is there.
///
/// A symlink at `path` is refused without following it (`O_NOFOLLOW`), and a FIFO, socket or
/// device is refused without blocking (`O_NONBLOCK`, which Linux ignores for regular files):
/// both are [`Error::NotOwned`] naming the path and what was found.
pub(crate) fn open_regular(path: &Path, access: Access) -> Result<Option<File>> {
    let mut options = OpenOptions::new();
    options.read(true).write(access == Access::ReadWrite);
    no_follow(&mut options);
    match options.open(path) {
        Ok(file) => {
            let meta = file
                .metadata()
                .map_err(|e| Error::io("reading the metadata of", path, e))?;
            refuse_unless_file(path, &meta)?;
            Ok(Some(file))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(refusal_or_io(path, e, "opening")),
    }
}

/// Creates a new regular file at `path` for writing: `O_CREAT | O_EXCL | O_NOFOLLOW`, so an
/// existing file or a planted symlink (even a dangling one) is never opened or followed.
/// An existing name fails with [`Error::Io`] of kind `AlreadyExists`.
pub(crate) fn create_new(path: &Path, mode: FileMode) -> Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    no_follow(&mut options);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode.file_bits());
    }
    #[cfg(not(unix))]
    let _ = mode;
    options
        .open(path)
        .map_err(|e| refusal_or_io(path, e, "creating"))
}

/// Creates the directory `dir` when missing, and checks that what is there is a directory and
/// not a symlink to one (a planted symlink would make the store write elsewhere).
pub(crate) fn ensure_dir(dir: &Path, mode: FileMode) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(mode.dir_bits());
    }
    #[cfg(not(unix))]
    let _ = mode;
    match builder.create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => check_dir(dir),
        Err(e) => Err(Error::io("creating the directory", dir, e)),
    }
}

/// Checks that `dir` is a real directory (not a symlink, not a file).
pub(crate) fn check_dir(dir: &Path) -> Result<()> {
    let meta =
        std::fs::symlink_metadata(dir).map_err(|e| Error::io("reading the metadata of", dir, e))?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(Error::NotOwned {
            path: dir.to_path_buf(),
            expected: "a directory",
            found: kind_name(&meta),
        })
    }
}

/// Refuses anything but a regular file, naming what was found.
pub(crate) fn refuse_unless_file(path: &Path, meta: &Metadata) -> Result<()> {
    if meta.is_file() {
        Ok(())
    } else {
        Err(Error::NotOwned {
            path: path.to_path_buf(),
            expected: "a regular file",
            found: kind_name(meta),
        })
    }
}

/// What kind of file `meta` describes, in words (from `lstat`, so a symlink is a symlink).
pub(crate) fn kind_name(meta: &Metadata) -> &'static str {
    let ty = meta.file_type();
    if ty.is_symlink() {
        return "a symbolic link";
    }
    if ty.is_dir() {
        return "a directory";
    }
    if ty.is_file() {
        return "a regular file";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ty.is_fifo() {
            return "a FIFO";
        }
        if ty.is_socket() {
            return "a socket";
        }
        if ty.is_block_device() || ty.is_char_device() {
            return "a device";
        }
    }
    "an unknown kind of file"
}

/// Gives `file` the permission bits of `like` (a rewrite such as compaction keeps the mode
/// the user gave the original).
pub(crate) fn keep_mode(file: &File, like: &Metadata, path: &Path) -> Result<()> {
    file.set_permissions(like.permissions())
        .map_err(|e| Error::io("setting the permissions of", path, e))
}

/// Makes a create, rename or unlink inside `dir` durable (fsync of the directory).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("syncing the directory", dir, e))?;
    }
    // Windows cannot open a directory as a file; NTFS journals renames itself.
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Makes a create or rename of `path` durable: syncs the directory that holds it.
pub(crate) fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => sync_dir(Path::new(".")),
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
pub(crate) fn read_up_to(file: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Streams `reader` into `sink` in chunks, feeding every byte to `crc`, and returns the number
/// of bytes copied. Stops with an `InvalidInput` I/O error once more than `limit` bytes arrive,
/// so a store's length limit holds before the value is written whole.
pub(crate) fn copy_checksummed(
    reader: &mut dyn Read,
    crc: &mut crc32fast::Hasher,
    limit: u64,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        if total > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("value longer than the store's limit of {limit} bytes"),
            ));
        }
        crc.update(&buf[..n]);
        sink(&buf[..n])?;
    }
}

/// The chunk size of [`copy_checksummed`]: large enough that syscalls do not dominate, small
/// enough to stay in L2.
const COPY_CHUNK: usize = 256 << 10;

fn no_follow(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        options.custom_flags(flags.bits() as i32);
    }
    #[cfg(not(unix))]
    let _ = options;
}

/// Turns an open error into [`Error::NotOwned`] when the path is a symlink or special file
/// (`ELOOP` from `O_NOFOLLOW`, `ENXIO` from a FIFO with no reader), else an I/O error.
fn refusal_or_io(path: &Path, e: io::Error, op: &'static str) -> Error {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.is_file() && !meta.is_dir() {
            return Error::NotOwned {
                path: path.to_path_buf(),
                expected: "a regular file",
                found: kind_name(&meta),
            };
        }
    }
    Error::io(op, path, e)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn symlinks_fifos_and_directories_are_refused_without_following_or_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"user data").unwrap();
        let link = dir.path().join("link");
        symlink(&target, &link).unwrap();
        let err = open_regular(&link, Access::Read).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotOwned {
                    found: "a symbolic link",
                    ..
                }
            ),
            "{err}"
        );
        let err = create_new(&link, FileMode::Umask).unwrap_err();
        assert!(matches!(err, Error::NotOwned { .. }), "{err}");
        // A dangling symlink: creating through it would make a file outside the store.
        let dangling = dir.path().join("dangling");
        symlink(dir.path().join("elsewhere"), &dangling).unwrap();
        assert!(create_new(&dangling, FileMode::Umask).is_err());
        assert!(!dir.path().join("elsewhere").exists());

        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        for access in [Access::Read, Access::ReadWrite] {
            let err = open_regular(&fifo, access).unwrap_err();
            let found = match err {
                Error::NotOwned { found, .. } => found,
                other => panic!("{other}"),
            };
            assert_eq!(found, "a FIFO");
        }

        assert!(open_regular(&dir.path().join("missing"), Access::Read)
            .unwrap()
            .is_none());
        assert_eq!(std::fs::read(&target).unwrap(), b"user data");
    }

    #[test]
    fn a_symlinked_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let link = dir.path().join("sub");
        symlink(outside.path(), &link).unwrap();
        let err = ensure_dir(&link, FileMode::Umask).unwrap_err();
        assert!(matches!(err, Error::NotOwned { .. }), "{err}");
        ensure_dir(&dir.path().join("real"), FileMode::Umask).unwrap();
        ensure_dir(&dir.path().join("real"), FileMode::Umask).unwrap();
    }

    #[test]
    fn owner_only_files_are_0600_and_keep_mode_copies_bits() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let f = create_new(&a, FileMode::OwnerOnly).unwrap();
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o640)).unwrap();
        let b = dir.path().join("b");
        let g = create_new(&b, FileMode::OwnerOnly).unwrap();
        keep_mode(&g, &std::fs::metadata(&a).unwrap(), &b).unwrap();
        assert_eq!(g.metadata().unwrap().permissions().mode() & 0o777, 0o640);
    }

    #[test]
    fn copy_checksummed_stops_past_the_limit() {
        let data = vec![7u8; 1000];
        let mut crc = crc32fast::Hasher::new();
        let mut out = Vec::new();
        let n = copy_checksummed(&mut &data[..], &mut crc, 1000, |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!((n, out.len()), (1000, 1000));
        assert_eq!(crc.finalize(), crc32fast::hash(&data));
        let mut crc = crc32fast::Hasher::new();
        let err = copy_checksummed(&mut &data[..], &mut crc, 999, |_| Ok(())).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
