//! A failed append never takes back bytes another handle may have indexed (issue 9): a
//! read-only handle indexed the first records of a `put_many` that then failed on ENOSPC and
//! was cut back by `set_len`; once the space was reused, `get` returned another record's bytes.

use std::path::Path;
use std::sync::Arc;

use super::*;

const ENOSPC: i32 = 28;

/// Key `a` (100 KiB, written whole), then key `b` whose value write fails (injected, or the
/// disk is really full); the reader refreshes between the two. Then the writer puts key `c`
/// (same key length, other bytes) where the batch was. The reader must still read `a` as it
/// was written, or not at all — never `c`'s bytes.
fn failed_batch_then_reuse(path: &Path, inject: bool, big: usize) {
    let writer = LogStore::options()
        .durability(Durability::None)
        .open(path)
        .unwrap();
    writer.put(b"x", b"before").unwrap();
    let reader = Arc::new(LogStore::options().read_only(true).open(path).unwrap());
    let a = vec![0xAAu8; 100 << 10];
    let b = vec![0xBBu8; big];
    let start = writer.stats().file_bytes;
    let b_value_off = start + (RECORD_HEADER_LEN + 1) * 2 + a.len() as u64 + KEY_BLOCK_LEN;
    let r = reader.clone();
    let mut refreshed = false;
    *writer.fault.lock().unwrap() = Some(Box::new(move |offset, _len| {
        // Before the first write of `b`'s record, `a` is whole in the file.
        if offset > start + RECORD_HEADER_LEN + 1 && !refreshed {
            refreshed = true;
            r.refresh().unwrap();
        }
        if inject && offset == b_value_off {
            return Err(std::io::Error::from_raw_os_error(ENOSPC));
        }
        Ok(())
    }));
    let err = writer.put_many(&[(b"a", &a), (b"b", &b)]).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    *writer.fault.lock().unwrap() = None;
    let c = vec![0xCCu8; 100 << 10];
    writer.put(b"c", &c).unwrap();
    // A miss or an error would be honest; another record's bytes are not.
    if let Ok(Some(v)) = reader.get(b"a") {
        assert!(v == a, "the reader returned another record's bytes for `a`");
    }
    // The writer and a fresh handle agree with the reader.
    assert_eq!(writer.get(b"a").unwrap().as_deref(), Some(&a[..]));
    assert_eq!(writer.get(b"b").unwrap(), None);
    assert_eq!(writer.get(b"c").unwrap().as_deref(), Some(&c[..]));
    drop(writer);
    let again = LogStore::open(path).unwrap();
    assert_eq!(again.get(b"a").unwrap().as_deref(), Some(&a[..]));
    assert_eq!(again.get(b"c").unwrap().as_deref(), Some(&c[..]));
    assert_eq!(again.open_report().torn_tail, None);
}

#[test]
fn a_failed_put_many_never_takes_back_records_a_reader_indexed() {
    let dir = tempfile::tempdir().unwrap();
    failed_batch_then_reuse(&dir.path().join("store.log"), true, 1 << 20);
}

/// The same on a real full disk: an 8 MiB tmpfs, where `b` does not fit.
#[test]
fn a_put_many_that_fills_a_real_disk_never_takes_back_indexed_records() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("tmpfs");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&mnt)
        .output();
    match mounted {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "skipped: cannot mount a tmpfs ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("skipped: cannot run mount ({e})");
            return;
        }
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mnt);
    failed_batch_then_reuse(&mnt.join("store.log"), false, 16 << 20);
}
