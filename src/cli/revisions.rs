//! `cacher revisions STORE KEY` and `cacher get --revision N / --name NAME`: a key's old
//! revisions (store or archive), read through a `Cache` over the opened store.

use serde_json::{json, Value};

use super::failure::Failure;
use super::keyarg;
use super::open::Opened;
use super::output::{table, Report};
use super::units;
use cacher::{Cache, RevisionPlace};

/// A `Cache` over one opened store, with the report and path its messages name.
pub struct OverStore {
    pub cache: Cache,
    pub report: Report,
    pub path: std::path::PathBuf,
}

/// A `Cache` over the opened store, reading envelopes as the tool does (MAC key included);
/// `archive_dir` overrides where archives go.
pub fn cache_over(
    opened: Opened,
    mac_key: Option<[u8; 32]>,
    archive_dir: Option<std::path::PathBuf>,
) -> Result<OverStore, Failure> {
    let report = Report::new(&opened, 0);
    let path = opened.path.clone();
    let mut registry = cacher::formats::Registry::with_builtins();
    if let Some(key) = mac_key {
        registry.set_mac_key(key);
    }
    let mut builder = Cache::builder()
        .store(opened.into_store())
        .registry(registry);
    if let Some(dir) = archive_dir {
        builder = builder.archive_dir(dir);
    }
    let cache = builder
        .build()
        .map_err(|e| Failure::unusable(&path, e.to_string()))?;
    Ok(OverStore {
        cache,
        report,
        path,
    })
}

fn place(p: &RevisionPlace) -> (String, Value) {
    match p {
        RevisionPlace::Current => ("current".into(), json!("current")),
        RevisionPlace::Store => ("store".into(), json!("store")),
        RevisionPlace::Archive(path) => (
            format!("archive {}", path.display()),
            json!({ "archive": path.display().to_string() }),
        ),
        _ => ("?".into(), Value::Null),
    }
}

/// `cacher revisions`: every revision of `key`, oldest first.
pub fn list(over: OverStore, key: &[u8]) -> Result<Report, Failure> {
    let OverStore {
        cache,
        report,
        path,
    } = over;
    let revs = cache.revisions(key).map_err(|e| {
        Failure::problem(
            &path,
            format!("revisions of {}: {}", keyarg::human(key), chain(&e)),
        )
    })?;
    let now = units::now_ms();
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for r in &revs {
        let (text, value) = place(&r.place);
        rows.push(vec![
            r.number.to_string(),
            r.name.clone().unwrap_or_default(),
            units::time_relative(r.time_ms, now),
            units::bytes(r.size),
            text,
        ]);
        out.push(json!({
            "number": r.number,
            "name": r.name,
            "time_ms": r.time_ms,
            "size": r.size,
            "place": value,
        }));
    }
    let human = if revs.is_empty() {
        format!("no revisions of {}\n", keyarg::human(key))
    } else {
        table(&["revision", "name", "written", "size", "where"], &rows)
    };
    Ok(report
        .field("key", keyarg::json(key))
        .field("revisions", Value::Array(out))
        .human(human))
}

/// Which revision `get` reads.
pub enum Which {
    Number(u64),
    Name(String),
}

/// `cacher get --revision N` / `--name NAME`: that revision's value, as JSON.
pub fn get(over: OverStore, key: &[u8], which: &Which, json: bool) -> Result<Report, Failure> {
    let OverStore {
        cache,
        report,
        path,
    } = over;
    let read = match which {
        Which::Number(n) => cache.get_revision::<Value>(key, *n),
        Which::Name(name) => cache.get_named_revision::<Value>(key, name),
    };
    let what = match which {
        Which::Number(n) => format!("revision {n}"),
        Which::Name(name) => format!("revision named {name:?}"),
    };
    let value = read
        .map_err(|e| {
            Failure::problem(
                &path,
                format!("{what} of {}: {}", keyarg::human(key), chain(&e)),
            )
        })?
        .ok_or_else(|| Failure::problem(&path, format!("no {what} of {}", keyarg::human(key))))?;
    let human = if json {
        String::new()
    } else {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        )
    };
    Ok(report
        .field("key", keyarg::json(key))
        .field("revision", json!(what))
        .field("value", value)
        .human(human))
}

pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
