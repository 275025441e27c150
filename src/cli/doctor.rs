//! `cacher doctor`: the one command to run when something is off. It looks at the store's
//! files before opening it (opening a DirStore removes stale temp files, which the report
//! should still mention), opens it read-only, runs `verify`, and says for each check what it
//! found and, in words, what to do. Exit 0 when nothing needs doing, 1 when a check found a
//! problem, 2 when it could not run (no store at the path).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{json, Value};

use super::failure::{Failure, Fault, PROBLEMS};
use super::open::{self, Access, Kind, Opened};
use super::output::{table, Report};
use super::units;

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

/// The kind, from markers or contents; `None` when the layout is mixed (reported).
fn kind_check(path: &Path, checks: &mut Checks) -> Result<Option<Kind>, Failure> {
    if path.is_dir() {
        let markers = open::markers_in(path);
        if markers.len() > 1 {
            let names: Vec<String> = markers
                .iter()
                .map(|(file, kind)| format!("{file} ({})", kind.name()))
                .collect();
            checks.add(
                "kind",
                Status::Problem,
                format!("mixed layout: several store markers, {}", names.join(", ")),
                Some(format!(
                    "find out which kind the directory really holds (`data.mdb` is LMDB, a \
                     `v1/` tree of entry files is a DirStore) and remove the other marker \
                     from {}",
                    path.display()
                )),
            );
            return Ok(None);
        }
    }
    let kind = open::detect(path)?;
    let how = match open::markers_in(path).first() {
        Some((file, _)) => format!("marker {file}"),
        None if kind == Kind::Log => "a file starting with CACHELOG".to_owned(),
        None => "its contents (no marker)".to_owned(),
    };
    checks.add(
        "kind",
        Status::Ok,
        format!("{}, from {how}", kind.name()),
        None,
    );
    if kind == Kind::Dir && path.join("data.mdb").exists() {
        checks.add(
            "kind",
            Status::Problem,
            "mixed layout: an LMDB data.mdb inside a DirStore".to_owned(),
            Some(format!(
                "move data.mdb (and lock.mdb) out of {}: a DirStore never reads them",
                path.display()
            )),
        );
    }
    Ok(Some(kind))
}

/// The layout version the marker names (the open below says whether this build reads it).
fn layout_check(path: &Path, kind: Kind, checks: &mut Checks) {
    let Some((file, _)) = open::markers_in(path).into_iter().next() else {
        return;
    };
    let text = fs::read(path.join(file))
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(4096)]).into_owned());
    let version = text.as_ref().ok().and_then(|t| {
        t.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == "version")
            .and_then(|(_, v)| v.trim().parse::<u32>().ok())
    });
    match (text, version) {
        (Ok(_), Some(v)) => checks.add(
            "layout",
            Status::Ok,
            format!("{} layout version {v} ({file})", kind.name()),
            None,
        ),
        (Ok(_), None) => checks.add(
            "layout",
            Status::Problem,
            format!("{file} names no layout version: the marker is damaged"),
            Some(format!(
                "restore {file} from a backup, or from a store of the same kind made by \
                 this cacher if the layout is the same"
            )),
        ),
        (Err(e), _) => checks.add(
            "layout",
            Status::Problem,
            format!("cannot read {file}: {e}"),
            Some("run as the store's owner, or fix the file's permissions".to_owned()),
        ),
    }
}

/// Why the store did not open, and what to do.
fn open_failure(path: &Path, kind: Kind, failure: &Failure, checks: &mut Checks) {
    let shown = path.display();
    let (name, fix) = match failure.fault() {
        Some(Fault::Upgrade { found, supported }) => (
            "layout",
            format!(
                "the store was written by a newer cacher (layout {found}; this one reads up \
                 to {supported}): upgrade cacher (`cargo install cacher`) and use that one"
            ),
        ),
        Some(Fault::Corrupt) => (
            "verify",
            format!(
                "the {}'s own files are damaged, so no entry can be read: restore {shown} \
                 from a backup, or remove it and let the cache recompute",
                kind.name()
            ),
        ),
        Some(Fault::Permission) => (
            "permissions",
            format!("run as the owner of {shown}, or give this user read access"),
        ),
        Some(Fault::Foreign) => (
            "kind",
            "a file of the store is not the store's own (a symlink or FIFO planted there, or \
             another kind's layout): remove what does not belong"
                .to_owned(),
        ),
        Some(Fault::Locked) => (
            "locks",
            "another process holds the store's lock: wait for it, or stop it".to_owned(),
        ),
        _ => (
            "open",
            "see the message; this cacher cannot open it".to_owned(),
        ),
    };
    checks.add(
        name,
        Status::Problem,
        failure.message().to_owned(),
        Some(fix),
    );
}

/// A temp file of a DirStore's `tmp/` seen before opening.
struct Temp {
    path: PathBuf,
    bytes: u64,
    age_s: u64,
    own: bool,
    holders: Vec<String>,
}

fn dir_temps(path: &Path) -> Vec<Temp> {
    let Ok(listing) = fs::read_dir(path.join("tmp")) else {
        return Vec::new();
    };
    let now = SystemTime::now();
    listing
        .flatten()
        .filter_map(|e| {
            let meta = fs::symlink_metadata(e.path()).ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            let own = meta.is_file()
                && name
                    .strip_prefix("put-")
                    .is_some_and(|r| r.len() == 6 && r.bytes().all(|b| b.is_ascii_alphanumeric()));
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
fn temps_check(path: &Path, before: &[Temp], checks: &mut Checks) {
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

fn units_secs(s: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(s)).to_string()
}

/// Files a LogStore leaves beside its log, and an earlier quarantine.
fn leftovers_check(path: &Path, kind: Kind, checks: &mut Checks) {
    let quarantine = super::quarantine::dir_for(path);
    if let Ok(index) = fs::read_to_string(quarantine.join(super::quarantine::INDEX)) {
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

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Who holds the store's locks: a LogStore's writer lock, the processes that have an LMDB
/// environment open (their lock on `lock.mdb`). Read from `/proc/locks` (Linux).
fn lock_check(path: &Path, kind: Kind, checks: &mut Checks) {
    let (file, what) = match kind {
        Kind::Log => (sibling(path, ".lock"), "writer lock"),
        Kind::Lmdb | Kind::Array | Kind::NumpyLmdb => (path.join("lock.mdb"), "LMDB lock"),
        Kind::Dir => {
            checks.add(
                "locks",
                Status::Ok,
                "a DirStore has no store-wide lock (each writer locks its own temp file)"
                    .to_owned(),
                None,
            );
            return;
        }
    };
    if !file.exists() {
        checks.add(
            "locks",
            Status::Ok,
            format!("no {what} file: no process has the store open for that"),
            None,
        );
        return;
    }
    match lock_holders(&file) {
        None => checks.add(
            "locks",
            Status::Info,
            format!("cannot tell who holds the {what} (no /proc/locks here)"),
            None,
        ),
        Some(holders) if holders.is_empty() => checks.add(
            "locks",
            Status::Ok,
            format!("nobody holds the {what}"),
            None,
        ),
        Some(holders) => {
            let detail = match kind {
                Kind::Log => format!(
                    "a writer holds the {what}: {}; writing commands (rm, clear, evict, \
                     import, compact, verify --quarantine) are refused until it closes the \
                     store, reading ones work beside it",
                    holders.join(", ")
                ),
                _ => format!(
                    "processes with the environment open: {}",
                    holders.join(", ")
                ),
            };
            checks.add("locks", Status::Info, detail, None);
        }
    }
}

/// The processes (`pid (command)`) holding a lock on `file`, other than this one; `None`
/// when `/proc/locks` cannot be read.
fn lock_holders(file: &Path) -> Option<Vec<String>> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(file).ok()?;
        let locks = fs::read_to_string("/proc/locks").ok()?;
        let dev = meta.dev();
        // glibc's major/minor split of st_dev, as /proc/locks prints them.
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        let want = format!("{major:02x}:{minor:02x}:{}", meta.ino());
        let me = std::process::id().to_string();
        let mut holders: Vec<String> = locks
            .lines()
            .filter_map(|line| {
                // "1: FLOCK  ADVISORY  WRITE 1234 fe:00:6643846 0 EOF" ("->" marks waiters).
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.get(1) == Some(&"->") {
                    return None;
                }
                let at = fields.iter().position(|f| *f == want)?;
                let pid = fields.get(at.checked_sub(1)?)?.to_string();
                (pid != me).then_some(pid)
            })
            .map(|pid| {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map_or_else(|_| "?".to_owned(), |c| c.trim().to_owned());
                format!("pid {pid} ({comm})")
            })
            .collect();
        holders.sort();
        holders.dedup();
        Some(holders)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

/// The store's own files, readable and writable by this user.
fn permissions_check(path: &Path, kind: Kind, checks: &mut Checks) {
    let mut files = vec![path.to_path_buf()];
    match kind {
        Kind::Dir => {
            files.push(path.join("cacher-dir.toml"));
            files.push(path.join("tmp"));
            files.push(path.join("v1"));
            if let Ok(shards) = fs::read_dir(path.join("v1")) {
                files.extend(shards.flatten().map(|e| e.path()));
            }
        }
        Kind::Log => files.push(sibling(path, ".lock")),
        _ => {
            files.push(path.join("data.mdb"));
            files.push(path.join("lock.mdb"));
        }
    }
    let (mut unreadable, mut read_only) = (Vec::new(), Vec::new());
    for file in files.iter().filter(|f| f.exists()) {
        if !accessible(file, false) {
            unreadable.push(file.display().to_string());
        } else if !accessible(file, true) {
            read_only.push(file.display().to_string());
        }
    }
    if unreadable.is_empty() && read_only.is_empty() {
        checks.add(
            "permissions",
            Status::Ok,
            format!(
                "this user can read and write the store's {} files and directories checked",
                files.iter().filter(|f| f.exists()).count()
            ),
            None,
        );
    }
    if !unreadable.is_empty() {
        checks.add(
            "permissions",
            Status::Problem,
            format!("this user cannot read {}", unreadable.join(", ")),
            Some("run as the store's owner, or `chmod u+r` (and `u+x` on directories)".to_owned()),
        );
    }
    if !read_only.is_empty() {
        checks.add(
            "permissions",
            Status::Problem,
            format!("read-only for this user: {}", read_only.join(", ")),
            Some(
                "writes through this user will fail: run the cache as the store's owner, or \
                 `chmod u+w` them"
                    .to_owned(),
            ),
        );
    }
}

#[cfg(unix)]
fn accessible(path: &Path, write: bool) -> bool {
    use rustix::fs::Access;
    let mut how = Access::READ_OK;
    if write {
        how |= Access::WRITE_OK;
    }
    if path.is_dir() {
        how |= Access::EXEC_OK;
    }
    rustix::fs::access(path, how).is_ok()
}

#[cfg(not(unix))]
fn accessible(path: &Path, write: bool) -> bool {
    fs::metadata(path).is_ok_and(|m| !write || !m.permissions().readonly())
}

/// Free space on the store's file system.
fn disk_check(path: &Path, kind: Kind, checks: &mut Checks) {
    let at = if kind == Kind::Log {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    } else {
        path
    };
    #[cfg(unix)]
    {
        let Ok(st) = rustix::fs::statvfs(at) else {
            checks.add(
                "disk",
                Status::Info,
                format!("cannot tell the free space at {}", at.display()),
                None,
            );
            return;
        };
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        let total = st.f_blocks.saturating_mul(st.f_frsize);
        const LOW: u64 = 64 << 20;
        let detail = format!(
            "{} free of {} at {}",
            units::bytes(free),
            units::bytes(total),
            at.display()
        );
        if free < LOW || free.saturating_mul(100) < total {
            checks.add(
                "disk",
                Status::Problem,
                format!("{detail}: writes will start failing"),
                Some(
                    "free space on that file system, or make the cache smaller (`cacher evict \
                     --max-bytes`; `cacher compact` for a LogStore)"
                        .to_owned(),
                ),
            );
        } else {
            checks.add("disk", Status::Ok, detail, None);
        }
    }
    #[cfg(not(unix))]
    checks.add(
        "disk",
        Status::Info,
        format!("free space at {} not checked here", at.display()),
        None,
    );
}

/// What the open store says about itself: LMDB readers and layout, LogStore garbage and tail.
fn facts_check(opened: &Opened, checks: &mut Checks) {
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
                "nearly out of reader slots: look for processes that hold read transactions \
                 open, or raise max_readers in the store's options"
                    .to_owned()
            }),
        );
    }
    #[cfg(feature = "lmdb")]
    if let Some(lmdb) = opened.lmdb() {
        if lmdb.layout_version() < 2 {
            checks.add(
                "layout",
                Status::Info,
                "LmdbStore value layout 1: values carry no store checksum (envelopes still \
                 have theirs)"
                    .to_owned(),
                Some(format!(
                    "for checksummed values, move the cache into a new store: `cacher export \
                     {0} cache.dump && cacher import {0}.new cache.dump --create lmdb`",
                    opened.path.display()
                )),
            );
        }
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
fn verify_check(opened: &Opened, checks: &mut Checks) {
    match super::maintain::find_damage(opened) {
        Ok(findings) if findings.is_clean() => checks.add(
            "verify",
            Status::Ok,
            format!(
                "{} checked, no damage found",
                units::entries(findings.checked())
            ),
            None,
        ),
        Ok(findings) => checks.add(
            "verify",
            Status::Problem,
            format!(
                "{} of {} checked damaged: {}",
                findings.damaged_count(),
                units::entries(findings.checked()),
                findings.summary()
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
