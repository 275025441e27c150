//! A full disk fails a DirStore write with an error and changes nothing (issue 9): the old
//! value stays, no temp file is left behind, and the store works again once space is freed.
//! Runs on a small tmpfs mounted for the test (root only); elsewhere it is skipped with a
//! printed reason.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::Command;

use cacher_store::{DirStore, Durability, Error, Store};

/// A tmpfs of `size` mounted on a fresh temp dir, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Result<SmallDisk, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallDisk { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("store")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn temp_files(root: &Path) -> usize {
    std::fs::read_dir(root.join("tmp")).unwrap().count()
}

fn is_enospc(err: &Error) -> bool {
    matches!(err, Error::Io { source, .. } if source.raw_os_error() == Some(28))
}

#[test]
fn a_full_disk_fails_the_write_and_keeps_the_old_value() {
    let disk = match SmallDisk::mount("8m") {
        Ok(disk) => disk,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    for durability in [Durability::Flush, Durability::None] {
        let root = disk.path();
        let _ = std::fs::remove_dir_all(&root);
        let store = DirStore::options()
            .durability(durability)
            .open(&root)
            .unwrap();
        store.put(b"k", b"old").unwrap();
        store.put(b"j", b"old j").unwrap();
        let big = vec![7u8; 16 << 20];

        let err = store.put(b"k", &big).unwrap_err();
        assert!(is_enospc(&err), "{err:?}");
        let err = store.put_reader(b"k", &mut &big[..]).unwrap_err();
        assert!(is_enospc(&err), "{err:?}");
        let err = store
            .put_many(&[(b"j", b"new j"), (b"k", &big[..])])
            .unwrap_err();
        assert!(is_enospc(&err), "{err:?}");

        assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"old"[..]));
        assert_eq!(store.get(b"j").unwrap().as_deref(), Some(&b"old j"[..]));
        assert_eq!(temp_files(&root), 0, "no temp file is left behind");
        let report = store.verify().unwrap();
        assert_eq!((report.checked, report.damaged.len()), (2, 0));
        // Space for a normal write is still there.
        store.put(b"k", b"new").unwrap();
        assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"new"[..]));
    }
}
