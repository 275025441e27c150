//! `cacher doctor`: the one command to run when something is off. It looks at the store's
//! files before opening it (opening a DirStore removes stale temp files, which the report
//! should still mention), opens it read-only, runs `verify`, and says for each check what it
//! found and, in words, what to do. Exit 0 when nothing needs doing, 1 when a check found a
//! problem, 2 when it could not run (no store at the path).

mod checks;
mod layout;
mod locks;
mod system;
mod temps;

use std::fs;
use std::path::Path;

use serde_json::{json, Value};

use super::failure::{Failure, PROBLEMS};
use super::open::{self, Access, Kind};
use super::output::{table, Report};
use checks::{facts_check, verify_check};
use layout::{kind_check, layout_check, open_failure};
use locks::lock_check;
use system::{disk_check, permissions_check};
use temps::{dir_temps, leftovers_check, temps_check};

/// How a check came out. Only `Problem` makes the exit code 1.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    /// A fact worth knowing; nothing to do.
    Info,
    /// Something was wrong and opening the store put it right.
    Repaired,
    /// Something to act on.
    Problem,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Info => "info",
            Status::Repaired => "repaired",
            Status::Problem => "problem",
        }
    }
}

struct Check {
    name: &'static str,
    status: Status,
    detail: String,
    fix: Option<String>,
}

#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn add(&mut self, name: &'static str, status: Status, detail: String, fix: Option<String>) {
        self.0.push(Check {
            name,
            status,
            detail,
            fix,
        });
    }

    fn problems(&self) -> usize {
        self.0
            .iter()
            .filter(|c| c.status == Status::Problem)
            .count()
    }
}

/// `cacher doctor STORE`.
pub fn doctor(path: &Path, mac_key: Option<[u8; 32]>) -> Result<Report, Failure> {
    let shown = path.display().to_string();
    if let Err(e) = fs::symlink_metadata(path) {
        return Err(Failure::unusable(
            path,
            format!(
                "cannot examine {shown}: {}",
                if e.kind() == std::io::ErrorKind::NotFound {
                    "it does not exist".to_owned()
                } else {
                    e.to_string()
                }
            ),
        ));
    }
    let mut checks = Checks::default();
    let Some(kind) = kind_check(path, &mut checks)? else {
        return Ok(finish(path, None, checks));
    };
    layout_check(path, kind, &mut checks);
    // Before opening: opening a DirStore removes its stale temp files.
    let temps_before = match kind {
        Kind::Dir => dir_temps(path),
        _ => Vec::new(),
    };
    leftovers_check(path, kind, &mut checks);
    lock_check(path, kind, &mut checks);
    permissions_check(path, kind, &mut checks);
    disk_check(path, kind, &mut checks);
    let opened = match open::open(path, Access::ReadOnly) {
        Ok(opened) => Some(opened.with_mac_key(mac_key)),
        Err(failure) => {
            open_failure(path, kind, &failure, &mut checks);
            None
        }
    };
    if kind == Kind::Dir {
        temps_check(path, &temps_before, &mut checks);
    }
    if let Some(opened) = &opened {
        facts_check(opened, &mut checks);
        verify_check(opened, &mut checks);
    }
    Ok(finish(path, Some(kind), checks))
}

fn finish(path: &Path, kind: Option<Kind>, checks: Checks) -> Report {
    let problems = checks.problems();
    // A fix goes on its own line under its finding.
    let mut flat: Vec<Vec<String>> = Vec::new();
    for c in &checks.0 {
        flat.push(vec![
            c.status.name().to_uppercase(),
            c.name.to_owned(),
            c.detail.clone(),
        ]);
        if let Some(fix) = &c.fix {
            flat.push(vec![String::new(), String::new(), format!("-> {fix}")]);
        }
    }
    let mut human = String::new();
    human.push_str(&table(&["STATUS", "CHECK", "FINDING"], &flat));
    human.push_str(&if problems == 0 {
        format!("{}: healthy, nothing to do\n", path.display())
    } else {
        format!(
            "{}: {problems} problem{} found; the lines marked -> say what to do\n",
            path.display(),
            if problems == 1 { "" } else { "s" }
        )
    });
    let json: Vec<Value> = checks
        .0
        .iter()
        .map(|c| json!({"check": c.name, "status": c.status.name(), "detail": c.detail, "fix": c.fix}))
        .collect();
    let store = json!({"path": path.display().to_string(), "kind": kind.map(Kind::name)});
    Report::about(store, if problems == 0 { 0 } else { PROBLEMS })
        .field("healthy", (problems == 0).into())
        .field("problems", problems.into())
        .field("checks", json.into())
        .human(human)
}
