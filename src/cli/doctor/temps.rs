//! Files writers leave behind: a DirStore's `tmp/` (looked at before the open that cleans it),
//! the side files of a LogStore, and an earlier quarantine.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::super::open::Kind;
use super::super::units;
use super::locks::lock_holders;
use super::{Checks, Status};

/// A temp file of a DirStore's `tmp/` seen before opening.
pub(super) struct Temp {
    path: PathBuf,
    bytes: u64,
    age_s: u64,
    own: bool,
    holders: Vec<String>,
}

pub(super) fn dir_temps(path: &Path) -> Vec<Temp> {
    let Ok(listing) = fs::read_dir(path.join("tmp")) else {
        return Vec::new();
    };
    let now = SystemTime::now();
    listing
        .flatten()
        .filter_map(|e| {
            let meta = fs::symlink_metadata(e.path()).ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            let own = meta.is_file() && cacher::store::DirStore::is_own_temp_name(&name);
            let age_s = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .map_or(0, |d| d.as_secs());
            Some(Temp {
                holders: lock_holders(&e.path()).unwrap_or_default(),
                path: e.path(),
                bytes: meta.len(),
                age_s,
                own,
            })
        })
        .collect()
}

/// What the DirStore's `tmp/` held, and what opening did with it.
pub(super) fn temps_check(path: &Path, before: &[Temp], checks: &mut Checks) {
    let stale_age = cacher::store::DEFAULT_STALE_TEMP_AGE.as_secs();
    let (own, foreign): (Vec<&Temp>, Vec<&Temp>) = before.iter().partition(|t| t.own);
    let removed: Vec<&&Temp> = own.iter().filter(|t| !t.path.exists()).collect();
    let live: Vec<&&Temp> = own.iter().filter(|t| !t.holders.is_empty()).collect();
    let waiting: Vec<&&Temp> = own
        .iter()
        .filter(|t| t.path.exists() && t.holders.is_empty())
        .collect();
    if before.is_empty() {
        checks.add("temp files", Status::Ok, "none in tmp/".to_owned(), None);
    }
    if !removed.is_empty() {
        let bytes: u64 = removed.iter().map(|t| t.bytes).sum();
        checks.add(
            "temp files",
            Status::Repaired,
            format!(
                "{} stale temp file{} ({}) in {}/tmp, left by writers that died: opening the \
                 store for this check removed them",
                removed.len(),
                if removed.len() == 1 { "" } else { "s" },
                units::bytes(bytes),
                path.display()
            ),
            None,
        );
    }
    if !live.is_empty() {
        let who: Vec<String> = live.iter().flat_map(|t| t.holders.clone()).collect();
        checks.add(
            "temp files",
            Status::Info,
            format!(
                "{} temp file{} being written now by {}",
                live.len(),
                if live.len() == 1 { "" } else { "s" },
                who.join(", ")
            ),
            None,
        );
    }
    if !waiting.is_empty() {
        let youngest = waiting.iter().map(|t| t.age_s).min().unwrap_or(0);
        checks.add(
            "temp files",
            Status::Info,
            format!(
                "{} unlocked temp file{} younger than {} (youngest {youngest}s): a writer may \
                 be about to lock it; an open removes it once it is older",
                waiting.len(),
                if waiting.len() == 1 { "" } else { "s" },
                units_secs(stale_age)
            ),
            None,
        );
    }
    if !foreign.is_empty() {
        let names: Vec<String> = foreign
            .iter()
            .map(|t| t.path.display().to_string())
            .collect();
        checks.add(
            "temp files",
            Status::Problem,
            format!(
                "files in tmp/ the store did not make (it leaves them alone): {}",
                names.join(", ")
            ),
            Some("remove them if they are yours; nothing else should write there".to_owned()),
        );
    }
}

pub(super) fn units_secs(s: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(s)).to_string()
}

/// Files a LogStore leaves beside its log, and an earlier quarantine.
pub(super) fn leftovers_check(path: &Path, kind: Kind, checks: &mut Checks) {
    let quarantine = super::super::quarantine::dir_for(path);
    if let Ok(index) = fs::read_to_string(quarantine.join(super::super::quarantine::INDEX)) {
        checks.add(
            "quarantine",
            Status::Info,
            format!(
                "{} holds {} entr{} moved out by `verify --quarantine` (see its index.jsonl)",
                quarantine.display(),
                index.lines().count(),
                if index.lines().count() == 1 {
                    "y"
                } else {
                    "ies"
                }
            ),
            None,
        );
    }
    if kind == Kind::Hybrid {
        hybrid_temps_check(path, checks);
    }
    if kind != Kind::Log {
        return;
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let name = name.to_string_lossy().into_owned();
    let writer = lock_holders(&sibling(path, ".lock")).unwrap_or_default();
    let mut found = false;
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(suffix) = file.strip_prefix(&name) else {
            continue;
        };
        match suffix {
            ".compacting" | ".creating" if writer.is_empty() => {
                found = true;
                checks.add(
                    "temp files",
                    Status::Problem,
                    format!(
                        "{} was left by a writer that crashed while {}",
                        entry.path().display(),
                        if suffix == ".compacting" {
                            "compacting"
                        } else {
                            "creating the log"
                        }
                    ),
                    Some(format!(
                        "`cacher compact {}`: a writer's open removes it",
                        path.display()
                    )),
                );
            }
            ".compacting" | ".creating" => {
                found = true;
                checks.add(
                    "temp files",
                    Status::Info,
                    format!(
                        "{} is being written by the running writer",
                        entry.path().display()
                    ),
                    None,
                );
            }
            // Written by a writer's close, then renamed to `<log>.index`; an open ignores it,
            // and the next checkpoint write removes it first.
            ".index.tmp" if writer.is_empty() => {
                found = true;
                checks.add(
                    "temp files",
                    Status::Info,
                    format!(
                        "{} is an index checkpoint a writer was writing when it died (opens \
                         ignore it)",
                        entry.path().display()
                    ),
                    Some(
                        "delete it, or leave it: the next writer close that writes a \
                         checkpoint removes it"
                            .to_owned(),
                    ),
                );
            }
            ".index.tmp" => {
                found = true;
                checks.add(
                    "temp files",
                    Status::Info,
                    format!(
                        "{} is the index checkpoint the running writer is writing",
                        entry.path().display()
                    ),
                    None,
                );
            }
            s if s.starts_with(".damaged-") => {
                found = true;
                checks.add(
                    "temp files",
                    Status::Info,
                    format!(
                        "{}: a damaged last record a writer's open cut from the log (the key \
                         reads as missing; the bytes are kept for a look)",
                        entry.path().display()
                    ),
                    Some("delete it once you no longer need it".to_owned()),
                );
            }
            _ => {}
        }
    }
    if !found {
        checks.add(
            "temp files",
            Status::Ok,
            "no leftover files beside the log".to_owned(),
            None,
        );
    }
}

/// A HybridStore's `files/tmp/`: values being written, or left by writers that died. The
/// store removes them itself (`HybridStore::collect_garbage`, after an hour), so they are
/// reported, not a problem.
fn hybrid_temps_check(path: &Path, checks: &mut Checks) {
    let tmp = path.join("files").join("tmp");
    let names: Vec<String> = fs::read_dir(&tmp)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if names.is_empty() {
        checks.add(
            "temp files",
            Status::Ok,
            format!("no value being written in {}", tmp.display()),
            None,
        );
        return;
    }
    checks.add(
        "temp files",
        Status::Info,
        format!(
            "{} temp file(s) in {} ({}): values being written, or left by writers that \
             died",
            names.len(),
            tmp.display(),
            names.join(", ")
        ),
        Some(
            "nothing to do: the next `Cache::open` of the store removes the ones older than \
             an hour (HybridStore::collect_garbage)"
                .to_owned(),
        ),
    );
}

/// `path` with `suffix` appended to its file name.
pub(super) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}
