//! LMDB's two meta pages, read and checked before LMDB maps the file.
//!
//! LMDB trusts `data.mdb`: a file shorter than the pages its meta page claims is mapped anyway
//! and the first read past the end kills the process with `SIGBUS`; a bit flip in a meta
//! page's transaction id can make LMDB pick the older of its two meta pages and silently roll
//! the whole environment back one commit. So before heed opens the file, both meta pages are
//! read with `pread` and checked:
//!
//! - each has the meta flag, its own page number, LMDB's magic and data version 1, and the
//!   same power-of-two page size;
//! - **transaction ids**: commit `t` writes meta page `t % 2`, so page 0 holds an even id and
//!   page 1 an odd one, and the two ids differ by exactly one (both are 0 in a new
//!   environment; a compacted copy has 0 and 1). Most flips in an id break this. Two keep
//!   the ids consecutive: the newest id lowered by two (bit 1), which makes the older page
//!   newest, and the older page's id raised by two, to the newest plus one. Both are refused
//!   whatever the durability, because each meta page's free-page database holds a record of
//!   its own commit and none of a later one ([`freelist`] has the reasons); the free-page
//!   databases are read while no other process commits (the meta pages are read again
//!   after them, and the reading is repeated if they changed). With `Durability::Flush` the
//!   commit record (`cacher-last-commit`, see `files`) checks the same two flips again: it
//!   names the last commit made and holds a CRC of each meta page as it was after it
//!   ([`fingerprints`]);
//! - **lengths**: the file holds at least both meta pages and every page up to each meta
//!   page's last used page (`mm_last_pg`), the map size covers them, and every database root
//!   is a page inside them.
//!
//! Layout (x86_64, from `MDB_page` and `MDB_meta` in lmdb's `mdb.c`; 64-bit `pgno_t`,
//! `txnid_t` and `mdb_size_t`):
//!
//! ```text
//! page header  0: mp_pgno u64 | 8: mp_pad u16 | 10: mp_flags u16 | 12: lower/upper u16 x2
//! MDB_meta    16: mm_magic u32 (0xBEEFC0DE) | 20: mm_version u32 (1) | 24: mm_address u64
//!             32: mm_mapsize u64
//!             40: free db  (md_pad u32 = page size, md_flags u16, md_depth u16, 5 x u64;
//!                           md_root at 80)
//!             88: main db  (same layout; md_root at 128)
//!            136: mm_last_pg u64 | 144: mm_txnid u64
//! ```
//!
//! Also not detected: a flip elsewhere in the newest meta page
//! that still passes these checks, such as a root page number pointing at another page inside
//! the file (LMDB may then read an older tree or report `MDB_CORRUPTED`); damage to the
//! other pages of the tree, which the value checksums of layout version 2 catch for values and
//! keys, and `verify()`'s entry count catches where it hides entries.

use std::io;
use std::path::Path;

use super::freelist::{self, FreeDb, NO_ROOT};
use crate::fs::{open_regular, read_up_to, Access};
use crate::le::{u16_at, u32_at, u64_at};
use crate::{Error, Result};

const P_META: u16 = 0x08;
const MDB_MAGIC: u32 = 0xBEEF_C0DE;
const MDB_DATA_VERSION: u32 = 1;
const P_INVALID: u64 = NO_ROOT;
/// Bytes of a meta page that hold the header and `MDB_meta`.
pub(super) const META_BYTES: usize = 152;
/// LMDB's page sizes: the OS page size, between these.
const MIN_PAGE: u64 = 512;
const MAX_PAGE: u64 = 1 << 16;

/// One meta page's fields that the checks use.
#[derive(Debug, Clone, Copy)]
struct Meta {
    page_size: u64,
    map_size: u64,
    /// The roots of the free-page and the main database.
    roots: [u64; 2],
    /// The depth of the free-page database.
    free_depth: u16,
    last_page: u64,
    txn: u64,
}

impl Meta {
    fn free_db(&self) -> FreeDb {
        FreeDb {
            root: self.roots[0],
            depth: self.free_depth,
            page_size: self.page_size,
            last_page: self.last_page,
        }
    }
}

/// What the checks found in a `data.mdb` that passed them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Opened {
    /// The transaction id LMDB will open at (the higher of the two).
    pub(super) txn: u64,
    /// The first [`META_BYTES`] of meta pages 0 and 1.
    pages: [[u8; META_BYTES]; 2],
}

/// Where a meta page keeps its transaction id.
pub(super) const TXN_AT: usize = 144;

/// The CRC-32 of the first bytes of a meta page as if its transaction id were `txn`.
fn fingerprint(page: &[u8; META_BYTES], txn: u64) -> u32 {
    let mut page = *page;
    page[TXN_AT..TXN_AT + 8].copy_from_slice(&txn.to_le_bytes());
    crc32fast::hash(&page)
}

impl Opened {
    /// Whether the newest meta page is the older page of `recorded` (the commit record's
    /// transaction and its [`fingerprints`]) with its id raised by two: a bit flip that would
    /// make LMDB open the commit before the recorded one.
    pub(super) fn older_page_raised_by_two(&self, recorded: u64, fingerprints: [u32; 2]) -> bool {
        if self.txn != recorded + 1 || self.txn < 2 {
            return false;
        }
        let slot = (self.txn % 2) as usize;
        fingerprint(&self.pages[slot], self.txn - 2) == fingerprints[slot]
    }
}

/// Reads the two meta pages of the open `data.mdb` and returns the newest transaction id and
/// a CRC of each page, for the commit record; `None` if they do not look like two
/// consecutive commits (a commit by another process was being written while they were read).
pub(super) fn fingerprints(file: &std::fs::File) -> io::Result<Option<(u64, [u32; 2])>> {
    let mut first = [0u8; META_BYTES];
    if read_at(file, &mut first, 0)? < META_BYTES {
        return Ok(None);
    }
    let Ok(meta0) = parse(&first, 0) else {
        return Ok(None);
    };
    let mut second = [0u8; META_BYTES];
    if read_at(file, &mut second, meta0.page_size)? < META_BYTES {
        return Ok(None);
    }
    let Ok(meta1) = parse(&second, 1) else {
        return Ok(None);
    };
    if meta0.txn.abs_diff(meta1.txn) != 1 || !meta0.txn.is_multiple_of(2) {
        return Ok(None);
    }
    Ok(Some((
        meta0.txn.max(meta1.txn),
        [
            fingerprint(&first, meta0.txn),
            fingerprint(&second, meta1.txn),
        ],
    )))
}

/// Reads the two meta pages of the open `data.mdb` and returns the newer one's transaction id
/// and first bytes (for a durable point, read under LMDB's writer lock so no commit is
/// writing a meta page meanwhile).
pub(super) fn newest_meta(file: &std::fs::File) -> io::Result<(u64, [u8; META_BYTES])> {
    let mut pages = [[0u8; META_BYTES]; 2];
    let mut metas = [None, None];
    let mut page_size = 0;
    for index in 0..2u64 {
        let page = &mut pages[index as usize];
        if read_at(file, page, index * page_size)? == META_BYTES {
            if let Ok(meta) = parse(page, index) {
                page_size = meta.page_size;
                metas[index as usize] = Some(meta);
            }
        }
        if page_size == 0 {
            return Err(io::Error::other("meta page 0 does not check"));
        }
    }
    match metas {
        [Some(m0), Some(m1)] if m1.txn > m0.txn => Ok((m1.txn, pages[1])),
        [Some(m0), _] => Ok((m0.txn, pages[0])),
        _ => Err(io::Error::other("the meta pages do not check")),
    }
}

/// Checks `data.mdb` at `path` as described in the module docs. A missing or empty file is
/// a new environment (`Ok(None)`).
pub(super) fn check(path: &Path) -> Result<Option<Opened>> {
    // A commit by another process between reading the two pages and the length can make a
    // consistent file look inconsistent for a moment: read again before calling it damaged.
    let mut last = None;
    let mut changes = 0;
    for _ in 0..ATTEMPTS {
        // Twice met another process's commits while reading the free-page databases: commits
        // are being made, each rewriting a meta page, so a damaged id does not stay (and the
        // process committing has opened the file already).
        let free_dbs = if changes >= 2 {
            FreeDbs::Skip
        } else {
            FreeDbs::Check
        };
        match check_once(path, free_dbs) {
            Ok(Some(found)) => return Ok(found),
            Ok(None) => changes += 1,
            Err(e) if e.is_corrupt() => last = Some(e),
            Err(e) => return Err(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Err(last.unwrap_or_else(|| {
        Error::corrupt(
            path,
            None,
            "the meta pages kept changing while they were read",
        )
    }))
}

/// How many times [`check`] reads the file before it believes what it reads.
const ATTEMPTS: usize = 4;

/// Whether [`check_once`] checks the free-page databases against the transaction ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FreeDbs {
    Check,
    Skip,
}

/// One reading of the file: `Ok(None)` when a meta page changed while the free-page databases
/// were read (another process committed: read again).
fn check_once(path: &Path, free_dbs: FreeDbs) -> Result<Option<Option<Opened>>> {
    let Some(file) = open_regular(path, Access::Read)? else {
        return Ok(Some(None));
    };
    let corrupt = |reason: String| Error::corrupt(path, None, reason);
    let mut first = [0u8; META_BYTES];
    let got = read_at(&file, &mut first, 0).map_err(|e| Error::io("reading", path, e))?;
    if got == 0 {
        return Ok(Some(None));
    }
    if got < META_BYTES {
        return Err(corrupt(format!(
            "{got} bytes, shorter than LMDB's first meta page"
        )));
    }
    let meta0 = parse(&first, 0).map_err(|r| corrupt(format!("meta page 0: {r}")))?;
    let mut second = [0u8; META_BYTES];
    let got =
        read_at(&file, &mut second, meta0.page_size).map_err(|e| Error::io("reading", path, e))?;
    if got < META_BYTES {
        return Err(corrupt(format!(
            "shorter than LMDB's two meta pages of {} bytes",
            meta0.page_size
        )));
    }
    let meta1 = parse(&second, 1).map_err(|r| corrupt(format!("meta page 1: {r}")))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("reading the metadata of", path, e))?
        .len();
    consistent(&meta0, &meta1, len).map_err(corrupt)?;
    if free_dbs == FreeDbs::Check {
        let verdict = freed_by_their_commits(&file, [&meta0, &meta1], [&first, &second]);
        // The pages of the two newest commits are never reused while no third commit is
        // made, and a commit rewrites a meta page: unchanged meta pages mean every page read
        // belonged to them.
        let mut again = [[0u8; META_BYTES]; 2];
        for (index, page) in again.iter_mut().enumerate() {
            read_at(&file, page, index as u64 * meta0.page_size)
                .map_err(|e| Error::io("reading", path, e))?;
        }
        if again != [first, second] {
            return Ok(None);
        }
        verdict.map_err(corrupt)?;
    }
    Ok(Some(Some(Opened {
        txn: meta0.txn.max(meta1.txn),
        pages: [first, second],
    })))
}

/// Holds each meta page's transaction id against the newest record of its free-page database
/// (see [`freelist`]): no page may hold a record newer than its own commit, and the newest
/// page, when it follows a commit whose main database had a root, must hold its own.
fn freed_by_their_commits(
    file: &std::fs::File,
    metas: [&Meta; 2],
    pages: [&[u8; META_BYTES]; 2],
) -> Result<(), String> {
    let [m0, m1] = metas;
    if m0.txn == 0 && m1.txn == 0 {
        return Ok(());
    }
    let (newest, older) = if m1.txn > m0.txn { (1, 0) } else { (0, 1) };
    // Both pages one commit, as a `Periodic` recovery writes them (the older one a copy of
    // the newest with its id less one): only the newest page's id can be held against its
    // records, and there is nothing older to open.
    let copies = same_but_ids(pages[0], pages[1]);
    let mut records = [None; 2];
    for (index, meta) in metas.iter().enumerate() {
        if copies && index == older {
            continue;
        }
        let record = freelist::newest_record(file, meta.free_db())
            .map_err(|r| format!("meta page {index}: {r}"))?;
        if let Some(record) = record.filter(|&r| r > meta.txn) {
            return Err(format!(
                "meta page {index} says it is commit {}, but its free-page database holds the \
                 pages freed by commit {record}, a later one: its transaction id was lowered, \
                 and LMDB would open an older commit",
                meta.txn
            ));
        }
        records[index] = record;
    }
    if copies {
        return Ok(());
    }
    let opens = metas[newest];
    if metas[older].roots[1] != P_INVALID && records[newest] != Some(opens.txn) {
        let found = match records[newest] {
            Some(record) => format!("its newest record is of commit {record}"),
            None => "it is empty".to_string(),
        };
        return Err(format!(
            "meta page {newest} says it is commit {}, but its free-page database holds no \
             record of the pages that commit freed ({found}): it is an older commit's page \
             with a raised transaction id, and LMDB would open that older commit",
            opens.txn
        ));
    }
    Ok(())
}

/// Whether two meta pages are equal but for their page numbers and transaction ids.
fn same_but_ids(a: &[u8; META_BYTES], b: &[u8; META_BYTES]) -> bool {
    let strip = |page: &[u8; META_BYTES]| {
        let mut page = *page;
        page[..8].fill(0);
        page[TXN_AT..TXN_AT + 8].fill(0);
        page
    };
    strip(a) == strip(b)
}

fn read_at(file: &std::fs::File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    use std::io::{Seek, SeekFrom};
    let mut file = file;
    file.seek(SeekFrom::Start(at))?;
    read_up_to(&mut file, buf)
}

/// Reads meta page `index` out of its first bytes.
fn parse(page: &[u8], index: u64) -> Result<Meta, String> {
    let field = |at| u64_at(page, at).ok_or("cut short");
    let pgno = field(0)?;
    let flags = u16_at(page, 10).ok_or("cut short")?;
    let magic = u32_at(page, 16).ok_or("cut short")?;
    let version = u32_at(page, 20).ok_or("cut short")?;
    if pgno != index || flags & P_META == 0 {
        return Err(format!(
            "not a meta page (page number {pgno}, flags {flags:#06x})"
        ));
    }
    if magic != MDB_MAGIC {
        return Err(format!("bad magic {magic:#010x}"));
    }
    if version != MDB_DATA_VERSION {
        return Err(format!("LMDB data version {version}, expected 1"));
    }
    let page_size = u64::from(u32_at(page, 40).ok_or("cut short")?);
    if !page_size.is_power_of_two() || !(MIN_PAGE..=MAX_PAGE).contains(&page_size) {
        return Err(format!("page size {page_size}"));
    }
    Ok(Meta {
        page_size,
        map_size: field(32)?,
        roots: [field(80)?, field(128)?],
        free_depth: u16_at(page, 46).ok_or("cut short")?,
        last_page: field(136)?,
        txn: field(TXN_AT)?,
    })
}

/// The checks across both meta pages and the file length.
fn consistent(m0: &Meta, m1: &Meta, len: u64) -> Result<(), String> {
    if m0.page_size != m1.page_size {
        return Err(format!(
            "the meta pages disagree on the page size ({} and {})",
            m0.page_size, m1.page_size
        ));
    }
    let fresh = m0.txn == 0 && m1.txn == 0;
    if !fresh
        && (!m0.txn.is_multiple_of(2) || m1.txn.is_multiple_of(2) || m0.txn.abs_diff(m1.txn) != 1)
    {
        return Err(format!(
            "transaction ids {} (page 0) and {} (page 1) are not two consecutive commits: a \
             damaged meta page would make LMDB roll back to an older commit",
            m0.txn, m1.txn
        ));
    }
    for (index, meta) in [m0, m1].into_iter().enumerate() {
        let pages = meta
            .last_page
            .checked_add(1)
            .and_then(|p| p.checked_mul(meta.page_size))
            .ok_or_else(|| format!("meta page {index}: last page {}", meta.last_page))?;
        if meta.last_page < 1 {
            return Err(format!("meta page {index}: last page {}", meta.last_page));
        }
        if len < pages {
            return Err(format!(
                "{len} bytes, shorter than the {pages} bytes (pages 0..={}) meta page {index} \
                 says are in use: the file was cut short",
                meta.last_page
            ));
        }
        if meta.map_size < pages {
            return Err(format!(
                "meta page {index}: map size {} below the {pages} bytes in use",
                meta.map_size
            ));
        }
        for root in meta.roots {
            if root != P_INVALID && !(2..=meta.last_page).contains(&root) {
                return Err(format!(
                    "meta page {index}: database root page {root} outside pages 2..={}",
                    meta.last_page
                ));
            }
        }
    }
    Ok(())
}
