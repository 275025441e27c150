//! `cacher compact`: give back the space of overwritten and removed values, for the stores
//! that can. A LogStore rewrites its live records into a new file renamed over the log (the
//! library's `LogStore::compact`, under its writer lock). An LmdbStore is copied with
//! compaction (`mdb_env_copy2` with `MDB_CP_COMPACT`, through heed) into a new directory:
//! LMDB cannot shrink a file in place, and swapping a new file under a directory that another
//! process has open would lose that process's writes, so the swap is left to the user. A
//! DirStore keeps one file per entry and has nothing to compact.

use std::fs;
use std::path::Path;

use super::failure::Failure;
use super::open::{Kind, Opened};
use super::output::Report;
use super::progress;
use super::units;

/// `cacher compact STORE [--into NEW]`.
pub fn compact(opened: &Opened, into: Option<&Path>) -> Result<Report, Failure> {
    if let Some(log) = opened.log() {
        if into.is_some() {
            return Err(Failure::usage(format!(
                "{} is a LogStore, which compacts in place: drop --into",
                opened.path.display()
            )));
        }
        let before = file_len(&opened.path);
        let spinner = progress::busy("compacting");
        let stats = log
            .compact()
            .map_err(|e| Failure::store(&opened.path, "cannot compact", &e))?;
        spinner.finish_and_clear();
        let after = file_len(&opened.path);
        return Ok(report(
            opened,
            &opened.path,
            before,
            after,
            stats.entries,
            None,
            "",
        ));
    }
    #[cfg(feature = "lmdb")]
    if let Some(lmdb) = opened.lmdb() {
        let Some(into) = into else {
            return Err(Failure::unusable(
                &opened.path,
                format!(
                    "{} is an LmdbStore: it is compacted into a new directory, \
                     `cacher compact {} --into NEW_DIR`; then, once no process has it open, \
                     swap the two directories. (LMDB cannot shrink its file in place, and a \
                     file swapped under a process that has the store open loses its writes.)",
                    opened.path.display(),
                    opened.path.display()
                ),
            ));
        };
        return compact_lmdb_into(opened, lmdb, into);
    }
    let why = match opened.kind {
        Kind::Dir => {
            "it keeps one file per entry, so a removed entry's space is already free \
                      (`cacher evict` makes it smaller)"
        }
        Kind::Hybrid => {
            "its large values are files of their own, whose space a removed entry frees \
                      at once, and this tool does not compact its LMDB index (`cacher export` \
                      then `cacher import --create hybrid` into a new directory rewrites it)"
        }
        _ => "this tool does not compact that kind",
    };
    Err(Failure::unusable(
        &opened.path,
        format!(
            "cannot compact {}: it is a {}, and {why}",
            opened.path.display(),
            opened.kind.name()
        ),
    ))
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

fn report(
    opened: &Opened,
    result: &Path,
    before: u64,
    after: u64,
    entries: u64,
    into: Option<&Path>,
    note: &str,
) -> Report {
    let saved = before.saturating_sub(after);
    let target = into.map_or(String::new(), |p| format!(" into {}", p.display()));
    Report::new(opened, 0)
        .field("bytes_before", before.into())
        .field("bytes_after", after.into())
        .field("entries", entries.into())
        .field("into", into.map(|p| p.display().to_string()).into())
        .human(format!(
            "compacted {}{target}: {} -> {} ({} saved), {}\n{note}",
            opened.path.display(),
            units::bytes(before),
            units::bytes(after),
            units::bytes(saved),
            units::entries(entries),
        ))
        .field("file", result.display().to_string().into())
}

/// The LmdbStore's files a copy takes besides `data.mdb`: its layout marker. (`lock.mdb` and
/// the resize lock are made at open; the commit record belongs to the old file's transaction
/// ids, which a compacted copy restarts, so the copy opens without one.)
#[cfg(feature = "lmdb")]
const LMDB_MARKER: &str = "cacher-lmdb.toml";

#[cfg(feature = "lmdb")]
fn compact_lmdb_into(
    opened: &Opened,
    lmdb: &cacher::store::LmdbStore,
    into: &Path,
) -> Result<Report, Failure> {
    let cannot = |e: std::io::Error| {
        Failure::unusable(into, format!("cannot compact into {}: {e}", into.display()))
    };
    // A new directory only: an existing one may be a store, or anything of the user's.
    fs::create_dir(into).map_err(cannot)?;
    let copied = (|| -> Result<u64, Failure> {
        let marker = opened.path.join(LMDB_MARKER);
        if marker.is_file() {
            fs::copy(&marker, into.join(LMDB_MARKER)).map_err(cannot)?;
        }
        let spinner = progress::busy("copying with compaction");
        let file = lmdb
            .env()
            .heed()
            .copy_to_path(
                into.join("data.mdb"),
                cacher::store::lmdb::heed::CompactionOption::Enabled,
            )
            .map_err(|e| {
                Failure::unusable(
                    into,
                    format!(
                        "cannot copy {} into {} with compaction: {e}",
                        opened.path.display(),
                        into.display()
                    ),
                )
            })?;
        file.sync_all().map_err(cannot)?;
        fs::File::open(into)
            .and_then(|d| d.sync_all())
            .map_err(cannot)?;
        spinner.finish_and_clear();
        Ok(file_len(&into.join("data.mdb")))
    })();
    let after = match copied {
        Ok(after) => after,
        Err(f) => {
            // Nothing but what this command made is in `into`.
            let _ = fs::remove_dir_all(into);
            return Err(f);
        }
    };
    let entries = opened
        .store()
        .len()
        .map_err(|e| Failure::store(&opened.path, "cannot count the entries of", &e))?;
    let before = file_len(&opened.path.join("data.mdb"));
    let note = format!(
        "the compacted copy is {}; stop every process using {}, then swap the two \
         directories\n",
        into.display(),
        opened.path.display()
    );
    Ok(report(
        opened,
        into,
        before,
        after,
        entries,
        Some(into),
        &note,
    ))
}
