//! The commands that check or change a store: `verify`, `rm`, `clear`, `evict`.

use std::collections::BTreeSet;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use super::failure::{chain, Failure, PROBLEMS};
use super::keyarg;
use super::open::{Kind, Opened};
use super::output::{table, Report};
use super::progress;
use super::units;
use super::walk;

fn delete(opened: &Opened, key: &[u8]) -> Result<bool, Failure> {
    opened.store().delete(key).map_err(|e| {
        Failure::store(
            &opened.path,
            &format!("cannot remove key {} from", keyarg::human(key)),
            &e,
        )
    })
}

/// `cacher rm`: exit 1 when a key was not there.
pub fn rm(opened: &Opened, keys: &[Vec<u8>]) -> Result<Report, Failure> {
    let (mut removed, mut missing) = (Vec::new(), Vec::new());
    let mut human = String::new();
    for key in keys {
        if delete(opened, key)? {
            human.push_str(&format!("removed {}\n", keyarg::human(key)));
            removed.push(keyarg::json(key));
        } else {
            human.push_str(&format!("no entry {}\n", keyarg::human(key)));
            missing.push(keyarg::json(key));
        }
    }
    let code = if missing.is_empty() { 0 } else { PROBLEMS };
    Ok(Report::new(opened, code)
        .field("removed", removed.into())
        .field("missing", missing.into())
        .human(human))
}

/// `cacher clear`: every key of `namespace` (all versions), or every key.
pub fn clear(opened: &Opened, namespace: Option<&str>) -> Result<Report, Failure> {
    let keys: Vec<Vec<u8>> = walk::keys(opened)?
        .into_iter()
        .filter(|k| namespace.is_none_or(|ns| cacher::key::namespace_of(k) == Some(ns)))
        .collect();
    let bar = progress::bar(keys.len() as u64, "removing");
    let mut removed = 0u64;
    for key in &keys {
        removed += u64::from(delete(opened, key)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let what = namespace.map_or("the store".to_owned(), |ns| format!("namespace {ns}"));
    Ok(Report::new(opened, 0)
        .field("namespace", namespace.into())
        .field("removed", removed.into())
        .human(format!("removed {} of {what}\n", units::entries(removed))))
}

/// What `verify` found: entries checked, and each damaged one as (key, layer, error).
pub struct Findings {
    checked: u64,
    /// Entries whose values carry no store checksum (an LmdbStore of layout 1, or a
    /// HybridStore's index of layout 1): read, but only their envelopes were checked.
    unchecked: u64,
    damaged: Vec<(Option<Vec<u8>>, &'static str, String)>,
}

impl Findings {
    /// Whether nothing is damaged.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
    }

    /// Entries checked.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// Entries the store could not check, having no checksum for them (layout 1).
    pub fn unchecked(&self) -> u64 {
        self.unchecked
    }

    /// Problems found.
    pub fn damaged_count(&self) -> usize {
        self.damaged.len()
    }

    /// The first few damaged keys, for a one-line summary.
    pub fn summary(&self) -> String {
        let mut names: Vec<String> = self
            .damaged
            .iter()
            .take(5)
            .map(|(k, layer, _)| {
                format!(
                    "{} ({layer})",
                    k.as_deref().map_or("the file".to_owned(), keyarg::human)
                )
            })
            .collect();
        if self.damaged.len() > 5 {
            names.push(format!("and {} more", self.damaged.len() - 5));
        }
        names.join(", ")
    }
}

/// The store's own check of every entry (`Store::verify`), then every value's envelope
/// (header, payload checksum, key binding), then what a LogStore's open found in its tail.
pub fn find_damage(opened: &Opened) -> Result<Findings, Failure> {
    let spinner = progress::busy("checking the store");
    let report = store_verify(opened)?;
    spinner.finish_and_clear();
    let mut damaged: Vec<(Option<Vec<u8>>, &'static str, String)> = report
        .damaged
        .iter()
        .map(|(k, e)| (Some(k.clone()), "store", chain(e)))
        .collect();
    let mut checked = report.checked;
    if opened.kind.holds_envelopes() {
        let bad: BTreeSet<&[u8]> = report.damaged.iter().map(|(k, _)| &k[..]).collect();
        let registry = &opened.registry;
        let keys = walk::keys(opened)?;
        let bar = progress::bar(keys.len() as u64, "envelopes");
        // A revision record's envelope is bound to its user key, not its store key; the
        // store's own checksum (above) covers it.
        for key in keys
            .iter()
            .filter(|k| !bad.contains(&k[..]) && !cacher::is_revision_key(k))
        {
            bar.inc(1);
            let mut outcome = None;
            match opened.store().with_value(key, &mut |bytes| {
                outcome = Some(
                    registry
                        .open_value(key, bytes)
                        .map(|_| ())
                        .map_err(|e| chain(&e)),
                );
            }) {
                Ok(_) => {}
                Err(e) if e.is_corrupt() => outcome = Some(Err(chain(&e))),
                Err(e) => return Err(Failure::store(&opened.path, "cannot verify", &e)),
            }
            if let Some(Err(why)) = outcome {
                damaged.push((Some(key.clone()), "envelope", why));
            }
        }
        bar.finish_and_clear();
        // Keys the store's verify did not see (written meanwhile) were checked here.
        checked = checked.max(keys.len() as u64);
    }
    for problem in opened.tail_problems() {
        damaged.push((None, "file", problem));
    }
    Ok(Findings {
        checked,
        unchecked: report.unchecked,
        damaged,
    })
}

/// The line that says how many entries a layout-1 store could not check, and what to run.
pub fn unchecked_line(unchecked: u64, path: &std::path::Path) -> String {
    format!(
        "{} no store checksum (layout 1): `cacher upgrade {}` gives them one",
        if unchecked == 1 {
            "1 entry has".to_owned()
        } else {
            format!("{unchecked} entries have")
        },
        path.display()
    )
}

/// The store's own check of every entry. A HybridStore has no `verify` of its own, and the
/// trait's default stops at the first key its LMDB index lists as damaged (the index's
/// checksum covers the key), so it is walked here: such a key is listed under the name the
/// error gives (`walk::keys`) and its read reports the damage.
fn store_verify(opened: &Opened) -> Result<cacher::store::VerifyReport, Failure> {
    let cannot = |e: &cacher::store::Error| Failure::store(&opened.path, "cannot verify", e);
    if opened.kind != Kind::Hybrid {
        return opened.store().verify().map_err(|e| cannot(&e));
    }
    let mut report = cacher::store::VerifyReport::default();
    // The index's values are the records that locate each value: at layout 1 they carry no
    // checksum, which only the index's own verify counts.
    #[cfg(feature = "lmdb")]
    if let Some(index) = opened.hybrid().map(cacher::store::HybridStore::index) {
        if index.layout_version() < 2 {
            report.unchecked = cacher::store::Store::verify(index)
                .map_err(|e| cannot(&e))?
                .unchecked;
        }
    }
    for key in walk::keys(opened)? {
        report.checked += 1;
        match opened.store().read(&key) {
            Ok(_) => {}
            Err(e) if e.is_corrupt() => report.damaged.push((key, e)),
            Err(e) => return Err(cannot(&e)),
        }
    }
    Ok(report)
}

/// `cacher verify`: exit 1 when anything is damaged.
pub fn verify(opened: &Opened) -> Result<Report, Failure> {
    let findings = find_damage(opened)?;
    Ok(verify_report(
        &opened.path,
        opened.describe(),
        &findings,
        None,
    ))
}

/// `cacher verify --quarantine`: checks on a read-only open, and when something is damaged,
/// opens `path` for writing (with `open_write`) and moves each damaged entry aside. Exit 1
/// when damage was found, moved or not: it was there.
pub fn verify_and_quarantine(
    opened: Opened,
    open_write: impl FnOnce() -> Result<Opened, Failure>,
) -> Result<Report, Failure> {
    let findings = find_damage(&opened)?;
    if findings.is_clean() {
        return Ok(verify_report(
            &opened.path,
            opened.describe(),
            &findings,
            None,
        ));
    }
    // A LogStore reader leaves the file alone; its writer's open cuts a damaged tail aside.
    let (path, store) = (opened.path.clone(), opened.describe());
    drop(opened);
    let opened = match open_write() {
        Ok(opened) => opened,
        // The damage found is still the report; it says why nothing was moved.
        Err(failure) => {
            let dir = super::quarantine::dir_for(&path);
            let outcome = super::quarantine::Outcome::nothing_moved(
                findings.damaged.iter().map(|(k, _, _)| k.as_deref()),
                &format!("not moved: {}", failure.message()),
            );
            return Ok(verify_report(
                &path,
                store,
                &findings,
                Some((&dir, outcome)),
            ));
        }
    };
    let dir = super::quarantine::dir_for(&opened.path);
    let damaged: Vec<super::quarantine::Damaged<'_>> = findings
        .damaged
        .iter()
        .map(|(k, layer, why)| super::quarantine::Damaged {
            key: k.as_deref(),
            layer,
            error: why,
        })
        .collect();
    let outcome = super::quarantine::quarantine(&opened, &damaged, &dir)?;
    Ok(verify_report(
        &opened.path,
        opened.describe(),
        &findings,
        Some((&dir, outcome)),
    ))
}

fn verify_report(
    path: &std::path::Path,
    store: Value,
    findings: &Findings,
    moved: Option<(&std::path::Path, super::quarantine::Outcome)>,
) -> Report {
    let Findings {
        checked,
        unchecked,
        damaged,
    } = findings;
    let rows: Vec<Vec<String>> = damaged
        .iter()
        .map(|(k, layer, why)| {
            let key = k.as_deref().map_or("-".to_owned(), keyarg::human);
            vec![key, (*layer).to_owned(), why.clone()]
        })
        .collect();
    let mut human = String::new();
    if !rows.is_empty() {
        human = table(&["KEY", "LAYER", "PROBLEM"], &rows);
    }
    human.push_str(&format!(
        "checked {} of {}: {}\n",
        units::entries(*checked),
        path.display(),
        if damaged.is_empty() {
            "no damage found".to_owned()
        } else {
            format!("{} damaged", damaged.len())
        }
    ));
    if *unchecked > 0 {
        human.push_str(&unchecked_line(*unchecked, path));
        human.push('\n');
    }
    let json: Vec<Value> = damaged
        .iter()
        .map(|(k, layer, why)| {
            json!({"key": k.as_deref().map(keyarg::json), "layer": layer, "error": why})
        })
        .collect();
    let code = if damaged.is_empty() { 0 } else { PROBLEMS };
    let mut report = Report::about(store, code)
        .field("checked", (*checked).into())
        .field("unchecked", (*unchecked).into())
        .field("ok", damaged.is_empty().into())
        .field("damaged", json.into());
    if let Some((dir, outcome)) = moved {
        human.push_str(&outcome.human(dir));
        report = report.field(
            "quarantine",
            json!({
                "dir": dir.display().to_string(),
                "index": dir.join(super::quarantine::INDEX).display().to_string(),
                "moved": outcome.moved,
                "not_moved": outcome.not_moved,
            }),
        );
    }
    report.human(human)
}

/// `cacher verify` on a store that refused to open because its files are damaged (a LogStore
/// with a bad record in the middle, a damaged LMDB meta page).
pub fn unopenable(path: &std::path::Path, failure: &Failure, quarantine: bool) -> Report {
    let kind = super::open::detect(path).map_or(Value::Null, |k| k.name().into());
    let store = json!({"path": path.display().to_string(), "kind": kind});
    Report::about(store, PROBLEMS)
        .field("checked", 0.into())
        .field("unchecked", 0.into())
        .field("ok", false.into())
        .field(
            "damaged",
            json!([{"key": null, "layer": "file", "error": failure.message()}]),
        )
        .human(format!(
            "{}
checked 0 entries of {}: the store itself is damaged
{}",
            failure.message(),
            path.display(),
            if quarantine {
                "nothing quarantined: entries are moved out of a store that opens \
                 (restore it from a backup, or remove it and let the cache recompute)\n"
            } else {
                ""
            }
        ))
}

/// What `cacher evict` removes; rules add up.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub struct EvictRules {
    /// Remove entries created longer ago than this (90s, 12h, 7d, 2w).
    #[arg(long, value_parser = units::parse_duration)]
    older_than: Option<Duration>,
    /// Then remove the oldest entries until the values total at most this (500MiB, 2GiB).
    #[arg(long, value_parser = units::parse_bytes)]
    max_bytes: Option<u64>,
    /// Then remove the oldest entries until at most this many are left.
    #[arg(long)]
    max_entries: Option<u64>,
    /// Remove entries whose expiry has passed.
    #[arg(long)]
    expired: bool,
}

/// `cacher evict`. Stores keep no access times on disk, so "oldest" is by creation time
/// (entries without one, damaged or arrays, go first). Revision records are left alone:
/// removing one under its manifest would leave the key's revision list naming a record that
/// is gone; `cacher archive` is what moves them out.
pub fn evict(opened: &Opened, rules: &EvictRules, dry_run: bool) -> Result<Report, Failure> {
    let mut entries = walk::walk(opened, |key| !cacher::is_revision_key(key))?;
    let now = units::now_ms();
    let cutoff = rules
        .older_than
        .map(|d| now.saturating_sub(d.as_millis() as u64));
    entries.sort_by(|a, b| (a.created_ms(), &a.key).cmp(&(b.created_ms(), &b.key)));
    let mut victims: Vec<(usize, &'static str)> = Vec::new();
    let mut kept: Vec<usize> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if rules.expired && e.is_expired(now) {
            victims.push((i, "expired"));
        } else if cutoff.is_some_and(|c| e.created_ms().is_some_and(|t| t < c)) {
            victims.push((i, "older_than"));
        } else {
            kept.push(i);
        }
    }
    let mut kept_bytes: u64 = kept.iter().map(|&i| entries[i].size).sum();
    let mut first_kept = 0;
    while first_kept < kept.len() {
        let over_entries = rules
            .max_entries
            .is_some_and(|n| (kept.len() - first_kept) as u64 > n);
        let over_bytes = rules.max_bytes.is_some_and(|b| kept_bytes > b);
        if !(over_entries || over_bytes) {
            break;
        }
        let i = kept[first_kept];
        victims.push((
            i,
            if over_entries {
                "max_entries"
            } else {
                "max_bytes"
            },
        ));
        kept_bytes -= entries[i].size;
        first_kept += 1;
    }
    let bar = progress::bar(victims.len() as u64, "evicting");
    let mut removed_bytes = 0;
    for &(i, _) in &victims {
        if !dry_run {
            delete(opened, &entries[i].key)?;
        }
        removed_bytes += entries[i].size;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut reasons = std::collections::BTreeMap::<&str, u64>::new();
    for &(_, r) in &victims {
        *reasons.entry(r).or_default() += 1;
    }
    let left = kept.len() - first_kept;
    let why: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    let human = format!(
        "{} {} ({}){}; {} ({}) left\n",
        if dry_run { "would remove" } else { "removed" },
        units::entries(victims.len() as u64),
        units::bytes(removed_bytes),
        if why.is_empty() {
            String::new()
        } else {
            format!(": {}", why.join(", "))
        },
        units::entries(left as u64),
        units::bytes(kept_bytes),
    );
    let json: Vec<Value> = victims
        .iter()
        .map(|&(i, reason)| {
            json!({"key": keyarg::json(&entries[i].key), "size": entries[i].size, "reason": reason})
        })
        .collect();
    Ok(Report::new(opened, 0)
        .field("dry_run", dry_run.into())
        .field("removed", victims.len().into())
        .field("removed_bytes", removed_bytes.into())
        .field("left", left.into())
        .field("left_bytes", kept_bytes.into())
        .field("victims", json.into())
        .human(human))
}
