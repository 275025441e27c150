//! [`Durability::Periodic`](crate::Durability::Periodic) on LMDB: commits are not synced
//! (`MDB_NOSYNC`), a background thread makes a *durable point* every
//! [`LmdbOptions::periodic_interval`](super::LmdbOptions::periodic_interval), and after a
//! power loss the environment is put back at the last durable point before LMDB opens it.
//!
//! # Why plain `MDB_NOSYNC` plus a background sync is not enough
//! LMDB reuses the pages freed by commits older than its oldest reader. Without a sync per
//! commit, the last snapshot that is on disk may be many commits old, and its pages may be
//! rewritten by later commits whose own meta pages never reach the disk: after a power loss
//! LMDB would open a tree whose pages were overwritten (a corrupt store). A single `fsync`
//! also orders nothing: a later meta page may reach the disk before the pages it points to.
//!
//! The same idea elsewhere: libmdbx's `MDBX_SAFE_NOSYNC` ("don't sync anything but keep
//! previous steady commits": it does not recycle the pages of the last synced snapshot), and
//! lmdb-js's `overlappingSync`, which reverts to its durable snapshot with LMDB's
//! `MDB_PREVSNAPSHOT`. LMDB 0.9 itself has neither, so the pin below keeps the pages and
//! `cacher-durable` keeps the meta page.
//!
//! # What a durable point is
//! 1. Under LMDB's writer lock (held for two `pread`s, so no commit can write a meta page
//!    meanwhile), a read transaction is begun: the *pin*. Its snapshot is the newest commit
//!    `D`, and LMDB never reuses a page of `D` (nor of any later commit) while it is open.
//!    The newest meta page, `D`'s, is read.
//! 2. `data.mdb` is `fdatasync`ed: every page of `D` and of the commits before it is on disk.
//! 3. `D`'s id and meta page are written to `cacher-durable` (two checksummed slots used in
//!    turn, so a torn write leaves the other slot), with the boot id
//!    (`/proc/sys/kernel/random/boot_id`), and that file is `fdatasync`ed.
//! 4. The previous pin is released: `D` is now what recovery goes back to.
//!
//! A process makes its first durable point before its first write, one every interval while
//! it keeps writing, and a last one when the environment closes.
//!
//! # Recovery
//! Every open, whatever its durability, runs [`recover`] before LMDB sees the files. When
//! `cacher-durable` names a boot other than the current one (the machine restarted since the
//! last durable point, so commits after it may be only partly on disk), both meta pages are
//! rewritten to `D`'s (ids `D` and `D − 1`) and synced, and the record is stamped with the
//! current boot: LMDB opens at `D`, whose pages were pinned until the next durable point was
//! on disk. Within one boot nothing is rolled back: a process that crashed left its commits in
//! the page cache, and they are all there.
//!
//! # What this promises, and its conditions
//! - A process crash loses nothing.
//! - A power loss (or any restart) loses at most the commits made since the last durable
//!   point: about one interval plus the time of one `fdatasync`, and never leaves a corrupt
//!   store. Under a steady stream of writes that `fdatasync` is long (it writes every page
//!   the interval's commits wrote: see below), so the bound is loose in time, never in
//!   consistency. A clean restart rolls back the same way (the last durable point is made when the
//!   environment closes, so a store closed before the restart loses nothing).
//! - Conditions: every process that *writes* the environment uses `Periodic` (a `None` or
//!   `Flush` writer keeps no pin, so its commits may reuse the pages of the durable point);
//!   the file system keeps a sector-sized write whole (LMDB's own assumption for meta pages);
//!   and Linux (the boot id). Elsewhere `Periodic` is `Flush`.
//!
//! # What it costs, and why LMDB 0.9 cannot make it cheaper
//! A put costs 3-5x what it costs under `Durability::None` (in the putting thread's CPU time;
//! `benches/RESULTS.md`, "`Periodic` on LMDB 0.9"), against 1.5x wanted, and the file grows
//! with the write rate. The syncs are not the cost (`None` beside a thread syncing every
//! millisecond costs what `None` does); the pin is:
//! - LMDB 0.9 may reuse a page freed by commit `T` only once no reader is older than `T`
//!   (`mdb_page_alloc` stops at the oldest reader's id), and its pages carry no id of the
//!   commit that wrote them. So while the pin holds `D`, no page freed after `D` is reused,
//!   even one written and freed again after `D` that `D` never used: every commit of an
//!   interval writes pages of its own (about 8 per 100 B put here, against 5 without a pin:
//!   the free-page database keeps one record per commit of the interval and is deeper).
//! - Those pages are the ones the previous durable point's sync made clean, so every put
//!   dirties about 8 clean page-cache pages (ext4: `ext4_block_write_begin`,
//!   `mark_buffer_dirty`), where a `None` put rewrites the same few dirty pages; and each
//!   durable point must write all of them to the disk, so the file holds about an interval
//!   (plus one sync) of commits times their pages: 200-900 MB for 1.4 MB of data in a tight
//!   loop of 100 B puts.
//! - Measured and rejected: `MDB_WRITEMAP` (no copy through `pwrite`, but a write fault and
//!   `page_mkwrite` per clean page instead: no gain on ext4; it also makes `data.mdb` as big
//!   as the map, and LMDB's `ftruncate` to a smaller map of another process would cut the
//!   file under this one's), `MDB_NOMETASYNC` (one `fdatasync` per commit: hundreds of times
//!   `None`), shorter or longer intervals (the same pages per commit; only the file size
//!   changes). Holding the pin in two long-lived threads instead of one spawned per point
//!   removed a spawn per interval, too little to show in the figures.
//! - What would reach it: reusing the pages written after `D`, which needs each page to say
//!   which commit wrote it (libmdbx's page header has `mp_txnid`; neither LMDB 0.9 nor its
//!   development branch `mdb.master` has one), or a log-structured store: LogStore's
//!   `Periodic` is 1.34x its `None`.

use std::io;
use std::path::Path;

use std::sync::mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;

use heed::WithTls;

use super::error::TxnError;
use super::files::{self, COMMIT_FILE, DATA_FILE};
use super::meta_pages::{self, META_BYTES};
use super::shared::Shared;
use crate::fs::{open_regular, Access};
use crate::{Error, Result};

/// The durable-point record file, beside `data.mdb`.
pub(super) const DURABLE_FILE: &str = "cacher-durable";
const MAGIC: &[u8; 8] = b"cacherDP";
/// Version 1 of the record: the layout drawn at [`Point::encode`].
const VERSION: u32 = 1;
const SLOT: usize = 256;
const BOOT_LEN: usize = 36;
const CRC_AT: usize = 64 + META_BYTES;

/// Whether this platform can tell one boot from the next (else `Periodic` is `Flush`).
pub(super) fn supported() -> bool {
    boot_id().is_ok()
}

/// The current boot's id.
fn boot_id() -> io::Result<[u8; BOOT_LEN]> {
    let text = std::fs::read("/proc/sys/kernel/random/boot_id")?;
    text.get(..BOOT_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| io::Error::other("boot_id shorter than 36 bytes"))
}

/// One durable point as recorded in a slot of `cacher-durable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Point {
    /// Incremented at every record; the slot with the higher one is current.
    pub(super) seq: u64,
    /// The durable commit.
    pub(super) txn: u64,
    /// The boot in which it was recorded (or last recovered).
    pub(super) boot: [u8; BOOT_LEN],
    /// The first bytes of its meta page.
    pub(super) meta: [u8; META_BYTES],
}

impl Point {
    /// One slot:
    ///
    /// ```text
    /// 0: b"cacherDP" | 8: version u32 LE (1) | 12: seq u64 LE | 20: txn u64 LE
    /// 28: boot id (36 ASCII bytes) | 64: meta page, first 152 bytes
    /// 216: CRC-32 of bytes 0..216 u32 LE | 220..256: zero
    /// ```
    pub(super) fn encode(&self) -> [u8; SLOT] {
        let mut out = [0u8; SLOT];
        out[..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[12..20].copy_from_slice(&self.seq.to_le_bytes());
        out[20..28].copy_from_slice(&self.txn.to_le_bytes());
        out[28..64].copy_from_slice(&self.boot);
        out[64..CRC_AT].copy_from_slice(&self.meta);
        let crc = crc32fast::hash(&out[..CRC_AT]);
        out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads one slot; `None` when it does not check (never written, torn, damaged).
    pub(super) fn decode(slot: &[u8]) -> Option<Point> {
        use crate::le::{u32_at, u64_at};
        if slot.get(..8)? != MAGIC || u32_at(slot, 8)? != VERSION {
            return None;
        }
        if crc32fast::hash(slot.get(..CRC_AT)?) != u32_at(slot, CRC_AT)? {
            return None;
        }
        Some(Point {
            seq: u64_at(slot, 12)?,
            txn: u64_at(slot, 20)?,
            boot: slot[28..64].try_into().ok()?,
            meta: slot[64..CRC_AT].try_into().ok()?,
        })
    }
}

/// The current point in the open record file: the checking slot with the higher `seq`.
pub(super) fn read_point(file: &std::fs::File) -> io::Result<Option<Point>> {
    let mut both = [0u8; 2 * SLOT];
    let got = read_at(file, &mut both, 0)?;
    let slots = both[..got].chunks(SLOT).filter_map(Point::decode);
    Ok(slots.max_by_key(|p| p.seq))
}

/// Writes `point` into the slot its `seq` names and syncs the file.
pub(super) fn write_point(file: &std::fs::File, point: &Point) -> io::Result<()> {
    write_at(file, &point.encode(), (point.seq % 2) * SLOT as u64)?;
    file.sync_data()
}

/// Puts the environment in `dir` back at its last durable point if the machine restarted
/// since it was recorded (see the module docs). Runs before LMDB opens the files, under a
/// lock on the record, so two processes opening after a restart recover once.
pub(super) fn recover(dir: &Path) -> Result<()> {
    let path = dir.join(DURABLE_FILE);
    let Some(record) = open_regular(&path, Access::ReadWrite)? else {
        return Ok(());
    };
    let io_err = |e| Error::io("recovering from", &path, e);
    record.lock().map_err(io_err)?;
    let result = recover_locked(dir, &record).map_err(io_err);
    let _ = record.unlock();
    result
}

fn recover_locked(dir: &Path, record: &std::fs::File) -> io::Result<()> {
    let Some(point) = read_point(record)? else {
        return Ok(());
    };
    let boot = boot_id()?;
    if point.boot == boot {
        return Ok(());
    }
    let data_path = dir.join(DATA_FILE);
    let Some(data) = open_regular(&data_path, Access::ReadWrite).map_err(io::Error::other)? else {
        return Ok(());
    };
    let page_size = u64::from(crate::le::u32_at(&point.meta, 40).unwrap_or(4096));
    let slot = point.txn % 2;
    let mut newest = point.meta;
    newest[..8].copy_from_slice(&slot.to_le_bytes());
    let mut older = point.meta;
    older[..8].copy_from_slice(&(1 - slot).to_le_bytes());
    older[meta_pages::TXN_AT..meta_pages::TXN_AT + 8]
        .copy_from_slice(&point.txn.saturating_sub(1).to_le_bytes());
    write_at(&data, &newest, slot * page_size)?;
    write_at(&data, &older, (1 - slot) * page_size)?;
    data.sync_data()?;
    // A commit record (Durability::Flush) naming a later commit would refuse the open.
    let commit = dir.join(COMMIT_FILE);
    if let Ok(Some(file)) = open_regular(&commit, Access::ReadWrite) {
        if files::read_commit_from(&file)?.is_some_and(|r| r.txn > point.txn) {
            write_at(&file, &files::commit_record(point.txn, None), 0)?;
            file.sync_data()?;
        }
    }
    write_point(
        record,
        &Point {
            seq: point.seq + 1,
            boot,
            ..point
        },
    )
}

/// The state of a `Periodic` environment in one process.
pub(super) struct Periodic {
    /// The record file, `cacher-durable`.
    record: std::fs::File,
    /// `data.mdb`, for reading the meta pages.
    data: std::fs::File,
    /// The two threads that hold, in turn, the read transaction (the *pin*) that keeps the
    /// last durable point's pages from reuse. Locked for the whole of a durable point, so
    /// points are made one at a time. A pin never reads: it only holds a reader slot, so a
    /// resize of the map while it is open unmaps nothing it uses (LMDB reads pages through
    /// the current map at each access).
    pins: Mutex<Pins>,
    /// Whether this process committed since its last durable point.
    pub(super) dirty: std::sync::atomic::AtomicBool,
    /// Whether this process has made its first durable point (made before its first write).
    pub(super) started: std::sync::atomic::AtomicBool,
    /// The commit the pin holds.
    pinned_txn: std::sync::atomic::AtomicU64,
    boot: [u8; BOOT_LEN],
    /// Dropped with the environment, which ends the background thread.
    pub(super) stop: std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

impl Periodic {
    pub(super) fn open(dir: &Path) -> Result<Periodic> {
        let path = dir.join(DURABLE_FILE);
        let record = match open_regular(&path, Access::ReadWrite)? {
            Some(file) => file,
            None => return Err(Error::io("opening", &path, io::ErrorKind::NotFound.into())),
        };
        let data_path = dir.join(DATA_FILE);
        let data = open_regular(&data_path, Access::Read)?
            .ok_or_else(|| Error::io("opening", &data_path, io::ErrorKind::NotFound.into()))?;
        let boot = boot_id().map_err(|e| Error::io("reading the boot id for", dir, e))?;
        Ok(Periodic {
            record,
            data,
            pins: Mutex::new(Pins::default()),
            dirty: false.into(),
            started: false.into(),
            pinned_txn: 0.into(),
            boot,
            stop: std::sync::Mutex::new(None),
        })
    }
}

impl Periodic {
    /// How many pin holder threads this environment has started (for the tests of their
    /// reuse).
    #[cfg(test)]
    pub(super) fn pin_threads_started(&self) -> usize {
        self.pins.lock().unwrap_or_else(|p| p.into_inner()).started
    }
}

impl Shared {
    /// Whether the background thread should make a durable point now: this process
    /// committed since its last one, or (once it has written) other processes did, so its pin
    /// holds pages they could reuse (an idle writer's pin would otherwise make the file grow
    /// for ever).
    pub(super) fn wants_durable_point(&self) -> bool {
        use std::sync::atomic::Ordering;
        let Some(periodic) = &self.periodic else {
            return false;
        };
        periodic.dirty.load(Ordering::Acquire)
            || (periodic.started.load(Ordering::Acquire)
                && self.newest_txn() > periodic.pinned_txn.load(Ordering::Acquire))
    }

    /// What must happen before this process's first commit: in a `Periodic` environment its
    /// first durable point (until then the last recorded point may be pinned by no one
    /// alive); in any other, the removal of a durable-point record left by an earlier
    /// `Periodic` session, whose pages this writer does not keep from reuse (a restart would
    /// otherwise roll the store back to it, over the commits made since).
    pub(super) fn before_first_write(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        if let Some(periodic) = &self.periodic {
            if !periodic.started.load(Ordering::Acquire) {
                self.durable_point()?;
            }
            return Ok(());
        }
        if self.durable_record_gone.load(Ordering::Acquire) {
            return Ok(());
        }
        let path = self.path.join(DURABLE_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => crate::fs::sync_dir(&self.path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing", &path, e)),
        }
        self.durable_record_gone.store(true, Ordering::Release);
        Ok(())
    }

    /// Makes a durable point (see the module docs); a no-op for an environment that is not
    /// `Periodic`.
    pub(super) fn durable_point(&self) -> Result<()> {
        use std::sync::atomic::Ordering;
        let Some(periodic) = &self.periodic else {
            return Ok(());
        };
        // One point at a time: the holder that does not hold the current pin opens the next.
        let mut pins = periodic.pins.lock().unwrap_or_else(|p| p.into_inner());
        periodic.dirty.store(false, Ordering::Release);
        let next = pins.spare();
        let (pinned, txn, meta) = self.with_retry(|| {
            let wtxn = self.env.write_txn()?;
            let pinned = pins.hold(next, &self.env)?;
            let metas = meta_pages::newest_meta(&periodic.data)
                .map_err(|e| TxnError::Heed(heed::Error::Io(e)))?;
            drop(wtxn);
            Ok((pinned, metas.0, metas.1))
        })?;
        if pinned != txn {
            // Cannot happen under the writer lock; never record a point the pin does not hold.
            pins.release(next);
            return Err(Error::io(
                "making a durable point in",
                &self.path,
                io::Error::other(format!(
                    "the pin reads commit {pinned} but the newest meta page is {txn}"
                )),
            ));
        }
        // On an error from here the new pin stays held beside the old one (both keep their
        // pages); the next point releases whichever it does not reopen.
        self.env.force_sync().map_err(|e| self.engine_error(e))?;
        let path = self.path.join(DURABLE_FILE);
        let io_err = |e| Error::io("recording a durable point in", &path, e);
        periodic.record.lock().map_err(io_err)?;
        let written = (|| {
            let current = read_point(&periodic.record)?;
            if current
                .as_ref()
                .is_some_and(|p| p.txn >= txn && p.boot == periodic.boot)
            {
                return Ok(()); // another process recorded this commit or a later one
            }
            write_point(
                &periodic.record,
                &Point {
                    seq: current.map_or(0, |p| p.seq + 1),
                    txn,
                    boot: periodic.boot,
                    meta,
                },
            )
        })();
        let _ = periodic.record.unlock();
        written.map_err(io_err)?;
        // Only now is the new point on record: the old pin may go.
        pins.current = Some(next);
        pins.release(1 - next);
        periodic.pinned_txn.store(txn, Ordering::Release);
        periodic.started.store(true, Ordering::Release);
        Ok(())
    }
}

/// The two threads that hold durable points' pins, in turn.
///
/// The environment keeps its reader slots in thread-local storage (see
/// [`LmdbEnv`](super::LmdbEnv)), so a thread may hold one read transaction at a time and a
/// read transaction may not move between threads. A pin outlives the durable point that opens
/// it and overlaps the next one (the new pin must be open before the old one is released), so
/// neither the thread that makes a point nor any one thread could hold them: two holder
/// threads take turns, the one not holding the current pin opening the next. Each is started
/// at the first point that needs it and lives, with its reader slot, as long as the
/// environment: a point costs two messages to threads already running, not a thread spawn
/// (one spawn per interval before). Dropping [`Pins`] ends and joins both, so no holder
/// outlives the environment (LMDB frees a thread's slot at its exit, which must not race the
/// environment's close).
#[derive(Default)]
struct Pins {
    holders: [Option<Holder>; 2],
    /// The holder whose pin is the recorded durable point.
    current: Option<usize>,
    /// Holder threads started so far (two for the life of the environment, unless one died).
    #[cfg(test)]
    started: usize,
}

/// What a holder thread is asked to do; it answers each order on the channel it carries.
enum Order {
    /// End the transaction held, if any, and begin a new one: its id is the answer.
    Hold(mpsc::SyncSender<heed::Result<u64>>),
    /// End the transaction held, if any.
    Release(mpsc::SyncSender<()>),
}

/// One holder thread and the channel of its orders.
struct Holder {
    orders: Option<mpsc::Sender<Order>>,
    thread: Option<JoinHandle<()>>,
}

impl Pins {
    /// The holder that does not hold the current pin.
    fn spare(&self) -> usize {
        match self.current {
            Some(i) => 1 - i,
            None => 0,
        }
    }

    /// Has holder `i` (started if it is not running) end what it holds and begin a read
    /// transaction on `env`; returns the commit the new transaction reads.
    fn hold(&mut self, i: usize, env: &heed::Env<WithTls>) -> std::result::Result<u64, TxnError> {
        let thread_gone = || {
            TxnError::Heed(heed::Error::Io(io::Error::other(
                "the thread holding a durable point's pin ended",
            )))
        };
        let (reply, answer) = mpsc::sync_channel(1);
        let order = Order::Hold(reply);
        // The order comes back when the holder is not running.
        let unsent = match self.holders[i].as_ref().and_then(|h| h.orders.as_ref()) {
            Some(orders) => orders.send(order).err().map(|mpsc::SendError(back)| back),
            None => Some(order),
        };
        if let Some(order) = unsent {
            // Not started yet, or it died: (re)start it and give it the order.
            let holder = Holder::start(env).map_err(|e| TxnError::Heed(heed::Error::Io(e)))?;
            #[cfg(test)]
            {
                self.started += 1;
            }
            let orders = holder.orders.as_ref().ok_or_else(thread_gone)?;
            orders.send(order).map_err(|_| thread_gone())?;
            self.holders[i] = Some(holder);
        }
        match answer.recv() {
            Ok(Ok(txn)) => Ok(txn),
            Ok(Err(e)) => Err(TxnError::Heed(e)),
            Err(_) => Err(thread_gone()),
        }
    }

    /// Has holder `i` end what it holds (nothing to do if it is not running), and waits for it.
    fn release(&mut self, i: usize) {
        if self.current == Some(i) {
            self.current = None;
        }
        let Some(orders) = self.holders[i].as_ref().and_then(|h| h.orders.as_ref()) else {
            return;
        };
        let (reply, answer) = mpsc::sync_channel(1);
        if orders.send(Order::Release(reply)).is_err() || answer.recv().is_err() {
            // A holder that ended holds nothing: its transaction ended with it.
            self.holders[i] = None;
        }
    }
}

impl Holder {
    /// Starts a holder thread on `env`; it runs until its order channel is dropped.
    fn start(env: &heed::Env<WithTls>) -> io::Result<Holder> {
        let (orders, inbox) = mpsc::channel::<Order>();
        let env = env.clone();
        let thread = std::thread::Builder::new()
            .name("cacher-lmdb-pin".into())
            .spawn(move || {
                let mut held = None;
                while let Ok(order) = inbox.recv() {
                    // End the transaction held first: one read transaction per thread.
                    drop(held.take());
                    match order {
                        Order::Hold(reply) => {
                            let answer = env.read_txn().map(|rtxn| {
                                let id = rtxn.id() as u64;
                                held = Some(rtxn);
                                id
                            });
                            let _ = reply.send(answer);
                        }
                        Order::Release(reply) => {
                            let _ = reply.send(());
                        }
                    }
                }
                drop(held);
            })?;
        Ok(Holder {
            orders: Some(orders),
            thread: Some(thread),
        })
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.orders.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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

fn write_at(file: &std::fs::File, bytes: &[u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, at)
}
