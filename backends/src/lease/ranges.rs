//! Leases as byte-range locks (Linux): a key's lease is an exclusive lock on one byte of one of
//! [`SHARDS`] files `<lease dir>/ranges-<2 hex>.lock`, file and offset taken from the key's hash.
//!
//! Why: a lock file per key costs a file creation and a removal per lease, which on a busy
//! ext4 directory is 0.35-2 ms each (a batch of 1,000 misses spent 91 % of its time in
//! `openat`). A range lock costs one `open` of an existing file, one `fcntl` and one `close`,
//! and leaves nothing to clean up.
//!
//! The locks are open-file-description locks (`F_OFD_SETLK`, Linux 3.15): like `flock`, they
//! belong to the open file, so two handles in one process exclude each other, and the kernel
//! drops them when the holder's process dies (even by `SIGKILL`); unlike classic POSIX record
//! locks, closing another descriptor of the file releases nothing. The byte lies past the end
//! of the (empty) file, which locks allow. Two keys share a byte only if 62 bits of their
//! BLAKE3 hashes agree: then one waits for the other's lease, which costs time, never a wrong
//! value.
//!
//! Why several files: the kernel keeps an inode's record locks in one list, which every lock,
//! unlock and close walks. A batch holding 1,000 leases in one file made each `fcntl` cost
//! 40 µs and each `close` 117 µs (strace); spread over 64 files the lists stay short.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// How many files the range locks are spread over.
pub(super) const SHARDS: u8 = 64;

/// The name of shard `shard`'s lock file.
pub(super) fn file_name(shard: u8) -> String {
    format!("ranges-{shard:02x}.lock")
}

/// Whether `name` is one of the range lock files.
#[cfg(test)]
pub(super) fn is_range_file(name: &str) -> bool {
    name.strip_prefix("ranges-")
        .and_then(|n| n.strip_suffix(".lock"))
        .is_some_and(|hex| hex.len() == 2 && u8::from_str_radix(hex, 16).is_ok_and(|s| s < SHARDS))
}

/// The shard and the byte of `key`'s lease: a byte of its BLAKE3 hash picks the file, 62 more
/// bits the offset (so it fits an `off_t` with room for the one-byte length).
pub(super) fn place_of(key: &[u8]) -> (u8, u64) {
    let hash = blake3::hash(key);
    let bytes = hash.as_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    (bytes[8] % SHARDS, u64::from_le_bytes(first) >> 2)
}

/// Tries to lock the byte at `offset` of `file` for this open file description: `Ok(false)`
/// while another holds it.
pub(super) fn try_lock(file: &File, offset: u64) -> io::Result<bool> {
    match set(file, offset, libc::F_WRLCK) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Releases the byte at `offset` of `file`. Also done by the kernel when the last descriptor
/// of the open file closes; doing it first means a copy of the descriptor inherited by a child
/// between `fork` and `exec` cannot keep the lease.
pub(super) fn unlock(file: &File, offset: u64) -> io::Result<()> {
    set(file, offset, libc::F_UNLCK)
}

/// Whether this kernel and file system refuse open-file-description locks (older than Linux
/// 3.15, or a file system without record locks): then the lease falls back to a file per key.
pub(super) fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOLCK | libc::EOPNOTSUPP | libc::ENOSYS)
    )
}

fn set(file: &File, offset: u64, kind: libc::c_int) -> io::Result<()> {
    let start = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "lease offset out of range"))?;
    // SAFETY: `flock` is a plain C struct of integers, for which all-zero bytes are a valid
    // value (and `l_pid` must be 0 for OFD locks).
    #[expect(unsafe_code, reason = "zero-initialising a C struct (see SAFETY)")]
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = start;
    lock.l_len = 1;
    // SAFETY: `fcntl(F_OFD_SETLK)` reads one `flock` through the pointer, which points to the
    // initialised `lock` above and outlives the call; the descriptor is borrowed from `file`,
    // so it stays open for the call's duration.
    #[expect(
        unsafe_code,
        reason = "fcntl(F_OFD_SETLK) on a borrowed descriptor (see SAFETY)"
    )]
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
