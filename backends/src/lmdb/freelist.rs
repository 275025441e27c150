//! The newest record of a commit's free-page database, read from `data.mdb` with `pread`
//! before LMDB maps the file: what tells a meta page's true commit from an id it was given by a
//! bit flip, whatever the durability (no per-commit record needed).
//!
//! # Why it tells commits apart
//! LMDB keeps, in the free-page database (`FREE_DBI`) of every commit, one record per commit
//! that freed pages, keyed by that commit's transaction id (`mdb_freelist_save` in `mdb.c`:
//! "Save the IDL of pages freed by this txn, to a single record", key `mt_txnid`). Two facts
//! follow from `mdb.c` (the same in LMDB 0.9 releases and the `mdb.master` branch heed
//! builds):
//!
//! 1. **A commit's free-page database holds no key above its own id**: a record is written
//!    by the commit it names, and a commit sees only the records of its own and earlier
//!    commits.
//! 2. **A commit made on a snapshot whose main database has a root holds the record of its
//!    own id.** Every commit that writes a meta page changed a page: of a named database
//!    (whose record in the main database is then rewritten) or of the main database. Either
//!    way the main database's root page, a page of the previous snapshot, is copied on write
//!    (`mdb_page_touch`), and the old page goes to `mt_free_pgs`, which is saved under the
//!    commit's id. That record cannot be consumed by the same commit: a commit only reuses
//!    records of ids below the oldest snapshot still visible, which is at most its
//!    predecessor's (`mdb_find_oldest` starts from `mt_txnid - 1`).
//!
//! So with the two meta pages of commits `t` (newest) and `t − 1`, a flip that makes the page
//! of `t − 1` claim `t + 1` leaves a newest page whose free-page database has no record
//! `t + 1` (fact 2; its newest record is at most `t − 1`), and a flip that makes the page of
//! `t` claim `t − 2` leaves an older page whose free-page database holds the record `t`, above
//! the id it claims (fact 1). Both are refused by [`check`](super::meta_pages).
//!
//! What it does not cover: the first commit of an environment (made on an empty main
//! database, it frees nothing), and meta pages that are one commit copied twice (a
//! `Periodic` recovery writes both pages from the durable point, see `periodic`), where only
//! fact 1 is checked, on the newest page; either way the commit LMDB opens is then the newest
//! one there is.
//!
//! # The pages read
//! From the free database's root (in the meta page) down the last node of each branch page
//! to the last node of a leaf page, whose 8-byte key (`MDB_INTEGERKEY`, little-endian on the
//! platforms cacher's fixtures are written on) is the newest record. Page layout (from
//! `MDB_page` and `MDB_node` in `mdb.c`, 64-bit `pgno_t`):
//!
//! ```text
//! page  0: mp_pgno u64 | 8: mp_pad u16 | 10: mp_flags u16 (branch 0x01, leaf 0x02)
//!      12: mp_lower u16 | 14: mp_upper u16 | 16: mp_ptrs[(mp_lower - 16) / 2] u16 (node offsets)
//! node  0: mn_lo u16 | 2: mn_hi u16 | 4: mn_flags u16 | 6: mn_ksize u16 | 8: key
//!       (a branch node's child page is mn_lo | mn_hi << 16 | mn_flags << 32)
//! ```
//! At most [`MAX_DEPTH`] pages are read (LMDB's own cursor depth), each checked to carry its
//! own page number, a branch or leaf flag and node offsets inside the page.

use std::io;

use crate::le::{u16_at, u64_at};

const P_BRANCH: u16 = 0x01;
const P_LEAF: u16 = 0x02;
const PAGE_HEADER: usize = 16;
const NODE_HEADER: usize = 8;
/// LMDB's deepest tree (`CURSOR_STACK`).
pub(super) const MAX_DEPTH: u16 = 32;
/// `P_INVALID`: no root.
pub(super) const NO_ROOT: u64 = u64::MAX;

/// The free database of one meta page, as the meta page describes it.
#[derive(Debug, Clone, Copy)]
pub(super) struct FreeDb {
    pub(super) root: u64,
    pub(super) depth: u16,
    pub(super) page_size: u64,
    pub(super) last_page: u64,
}

/// The id of the newest record in the free database `db` of the open `data.mdb`: `None`
/// when it is empty; `Err` with a reason when its pages do not read as a B-tree.
pub(super) fn newest_record(file: &std::fs::File, db: FreeDb) -> Result<Option<u64>, String> {
    if db.root == NO_ROOT {
        return Ok(None);
    }
    if db.depth == 0 || db.depth > MAX_DEPTH {
        return Err(format!("free-page database of depth {}", db.depth));
    }
    let page_size = usize::try_from(db.page_size).map_err(|_| "page size".to_string())?;
    let mut page = vec![0u8; page_size];
    let mut pgno = db.root;
    for _ in 0..db.depth {
        if !(2..=db.last_page).contains(&pgno) {
            return Err(format!(
                "free-page database page {pgno} outside pages 2..={}",
                db.last_page
            ));
        }
        let at = pgno
            .checked_mul(db.page_size)
            .ok_or_else(|| format!("free-page database page {pgno}"))?;
        let got = read_at(file, &mut page, at).map_err(|e| format!("reading page {pgno}: {e}"))?;
        if got < page_size {
            return Err(format!("free-page database page {pgno} cut short"));
        }
        let (flags, node) = last_node(&page, pgno)?;
        if flags & P_BRANCH != 0 {
            let lo = u64::from(u16_at(&page, node).unwrap_or(0));
            let hi = u64::from(u16_at(&page, node + 2).unwrap_or(0));
            let top = u64::from(u16_at(&page, node + 4).unwrap_or(0));
            pgno = lo | hi << 16 | top << 32;
            continue;
        }
        if flags & P_LEAF != 0 {
            let key_len = u16_at(&page, node + 6).unwrap_or(0);
            if key_len != 8 {
                return Err(format!(
                    "free-page database page {pgno}: a {key_len}-byte key, not a transaction id"
                ));
            }
            return u64_at(&page, node + NODE_HEADER)
                .map(Some)
                .ok_or_else(|| format!("free-page database page {pgno}: key outside the page"));
        }
        return Err(format!(
            "free-page database page {pgno} is neither a branch nor a leaf (flags {flags:#06x})"
        ));
    }
    Err(format!(
        "free-page database deeper than the depth {} its meta page records",
        db.depth
    ))
}

/// The flags of `page` (number `pgno`) and the offset of its last node, checked to lie
/// inside the page.
fn last_node(page: &[u8], pgno: u64) -> Result<(u16, usize), String> {
    let bad = |what: &str| format!("free-page database page {pgno}: {what}");
    if u64_at(page, 0) != Some(pgno) {
        return Err(bad("it carries another page number"));
    }
    let flags = u16_at(page, 10).ok_or_else(|| bad("cut short"))?;
    let lower = usize::from(u16_at(page, 12).ok_or_else(|| bad("cut short"))?);
    if lower <= PAGE_HEADER || lower > page.len() || !(lower - PAGE_HEADER).is_multiple_of(2) {
        return Err(bad(&format!("no nodes (lower bound {lower})")));
    }
    let count = (lower - PAGE_HEADER) / 2;
    let node =
        usize::from(u16_at(page, PAGE_HEADER + 2 * (count - 1)).ok_or_else(|| bad("cut short"))?);
    if node < lower || node + NODE_HEADER > page.len() {
        return Err(bad(&format!("node offset {node} outside the page")));
    }
    Ok((flags, node))
}

fn read_at(file: &std::fs::File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match std::os::unix::fs::FileExt::read_at(file, &mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
