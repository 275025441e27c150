//! What the open store says: LMDB readers and value layout, LogStore garbage, and `verify`.

use serde_json::Value;

use super::super::open::Opened;
use super::super::units;
use super::{Checks, Status};

/// What the open store says about itself: LMDB readers and layout, LogStore garbage and tail.
pub(super) fn facts_check(opened: &Opened, checks: &mut Checks) {
    let facts = opened.facts();
    let fact = |name: &str| facts.iter().find(|f| f.0 == name).map(|f| &f.1);
    if let Some(n) = fact("stale_readers_cleared").and_then(Value::as_u64) {
        if n > 0 {
            checks.add(
                "readers",
                Status::Repaired,
                format!("{n} stale LMDB reader slot(s) of dead processes, cleared on open"),
                None,
            );
        }
    }
    if let (Some(used), Some(max)) = (
        fact("readers").and_then(Value::as_u64),
        fact("max_readers").and_then(Value::as_u64),
    ) {
        let status = if used * 10 >= max * 9 {
            Status::Problem
        } else {
            Status::Ok
        };
        checks.add(
            "readers",
            status,
            format!("{used} of {max} LMDB reader slots in use"),
            (status == Status::Problem).then(|| {
                "nearly out of reader slots (each live thread that has read holds one): look \
                 for processes with many reading threads or long read transactions, or raise \
                 max_readers in the store's options"
                    .to_owned()
            }),
        );
    }
    #[cfg(feature = "lmdb")]
    let layout_1 = opened
        .lmdb()
        .or(opened.hybrid().map(cacher::store::HybridStore::index));
    #[cfg(feature = "lmdb")]
    if layout_1.is_some_and(|l| l.layout_version() < 2) {
        checks.add(
            "layout",
            Status::Info,
            "LmdbStore value layout 1: values carry no store checksum (envelopes still \
             have theirs)"
                .to_owned(),
            Some(format!(
                "`cacher upgrade {}` rewrites them with one, in place",
                opened.path.display()
            )),
        );
    }
    if let (Some(count), Some(bytes)) = (
        fact("archive_files").and_then(Value::as_u64),
        fact("archive_bytes").and_then(Value::as_u64),
    ) {
        let dir = opened.archive_dir().unwrap_or_default();
        checks.add(
            "archives",
            Status::Info,
            format!(
                "{count} archive file{} ({}) of old revisions in {}; `cacher revisions` and \
                 `get --revision` read them",
                if count == 1 { "" } else { "s" },
                units::bytes(bytes),
                dir.display()
            ),
            None,
        );
    }
    if let Some(log) = opened.log() {
        checkpoint_check(&opened.path, log, checks);
    }
    if let Some(ratio) = fact("garbage_ratio").and_then(Value::as_f64) {
        if ratio > 0.5 {
            checks.add(
                "garbage",
                Status::Info,
                format!(
                    "{:.0}% of the log is overwritten or removed values",
                    ratio * 100.0
                ),
                Some(format!(
                    "`cacher compact {}` gives the space back",
                    opened.path.display()
                )),
            );
        }
    }
}

/// `verify`, summarised.
pub(super) fn verify_check(opened: &Opened, checks: &mut Checks) {
    match super::super::maintain::find_damage(opened) {
        Ok(findings) if findings.is_clean() => checks.add(
            "verify",
            Status::Ok,
            format!(
                "{} checked, no damage found{}",
                units::entries(findings.checked()),
                unchecked_note(&findings)
            ),
            None,
        ),
        Ok(findings) => checks.add(
            "verify",
            Status::Problem,
            format!(
                "{} of {} checked damaged: {}{}",
                findings.damaged_count(),
                units::entries(findings.checked()),
                findings.summary(),
                unchecked_note(&findings)
            ),
            Some(format!(
                "`cacher verify {0}` lists them; `cacher verify {0} --quarantine` moves them \
                 aside and the cache recomputes them",
                opened.path.display()
            )),
        ),
        Err(failure) => checks.add(
            "verify",
            Status::Problem,
            format!("could not verify: {}", failure.message()),
            Some("see the message: an I/O error or permissions on the store's files".to_owned()),
        ),
    }
}

/// `; N entries have no store checksum (layout 1)` when the store could not check some.
fn unchecked_note(findings: &super::super::maintain::Findings) -> String {
    match findings.unchecked() {
        0 => String::new(),
        1 => "; 1 entry has no store checksum (layout 1)".to_owned(),
        n => format!("; {n} entries have no store checksum (layout 1)"),
    }
}

/// A LogStore's index checkpoint, `<log>.index`: normal when the open used it; one that does
/// not hold for the log (written before a compaction, or damaged) is ignored by every open,
/// which then scans the whole log.
fn checkpoint_check(path: &std::path::Path, log: &cacher::store::LogStore, checks: &mut Checks) {
    let file = super::temps::sibling(path, ".index");
    let Ok(meta) = std::fs::symlink_metadata(&file) else {
        return;
    };
    match log.open_report().checkpoint {
        Some(offset) => checks.add(
            "checkpoint",
            Status::Ok,
            format!(
                "{} ({}) holds the index up to offset {offset}: opens read it and scan only \
                 the records after it",
                file.display(),
                units::bytes(meta.len())
            ),
            None,
        ),
        None => checks.add(
            "checkpoint",
            Status::Info,
            format!(
                "{} ({}) does not hold for this log (written before a compaction, or \
                 damaged): opens ignore it and scan the whole log",
                file.display(),
                units::bytes(meta.len())
            ),
            Some(
                "nothing to do: a writer's close writes a fresh one once 100,000 records lie \
                 past it; or delete it"
                    .to_owned(),
            ),
        ),
    }
}
