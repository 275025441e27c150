//! The commands that only look: `stats`, `ls`, `show`, `get`.

use std::collections::BTreeMap;

use cacher::formats::Header;
use serde_json::{json, Map, Value};

use super::failure::{chain, Failure};
use super::keyarg;
use super::open::Opened;
use super::output::{table, Report};
use super::units;
use super::walk::{self, State};

/// `cacher stats`. Revision records (old revisions and their manifests, under reserved keys)
/// are counted apart: they are not entries a user wrote, and an old revision's expiry or age
/// says nothing about the cache.
pub fn stats(opened: &Opened) -> Result<Report, Failure> {
    let all = walk::walk(opened, |_| true)?;
    let now = units::now_ms();
    let bytes: u64 = all.iter().map(|e| e.size).sum();
    let damaged = all
        .iter()
        .filter(|e| matches!(e.state, State::Damaged(_)))
        .count();
    let (records, entries): (Vec<&walk::Entry>, Vec<&walk::Entry>) =
        all.iter().partition(|e| e.revision.is_some());
    let record_bytes: u64 = records.iter().map(|e| e.size).sum();
    let expired = entries.iter().filter(|e| e.is_expired(now)).count();
    let created: Vec<u64> = entries.iter().filter_map(|e| e.created_ms()).collect();
    let (oldest, newest) = (created.iter().min(), created.iter().max());
    let mut namespaces: BTreeMap<Option<&str>, (u64, u64)> = BTreeMap::new();
    for e in &entries {
        let slot = namespaces.entry(e.namespace()).or_default();
        slot.0 += 1;
        slot.1 += e.size;
    }
    let facts = opened.facts();

    let mut rows = vec![
        vec![
            "store".into(),
            format!("{} ({})", opened.path.display(), opened.kind.name()),
        ],
        vec![
            "entries".into(),
            format!(
                "{} ({expired} expired, {damaged} damaged{})",
                all.len(),
                match records.len() {
                    0 => String::new(),
                    1 => "; 1 of them a revision record".to_owned(),
                    n => format!("; {n} of them revision records"),
                }
            ),
        ],
        vec!["bytes".into(), units::bytes(bytes)],
        vec![
            "oldest".into(),
            oldest.map_or("-".into(), |&t| units::time_relative(t, now)),
        ],
        vec![
            "newest".into(),
            newest.map_or("-".into(), |&t| units::time_relative(t, now)),
        ],
    ];
    rows.extend(
        facts
            .iter()
            .map(|(name, _, text)| vec![name.replace('_', " "), text.clone()]),
    );
    let mut human = two_columns(&rows);
    if !namespaces.is_empty() || !records.is_empty() {
        let mut rows: Vec<Vec<String>> = namespaces
            .iter()
            .map(|(ns, (n, b))| {
                vec![
                    ns.unwrap_or("(no namespace)").to_owned(),
                    n.to_string(),
                    units::bytes(*b),
                ]
            })
            .collect();
        if !records.is_empty() {
            rows.push(vec![
                "(revision records)".to_owned(),
                records.len().to_string(),
                units::bytes(record_bytes),
            ]);
        }
        human.push('\n');
        human.push_str(&table(&["NAMESPACE", "ENTRIES", "BYTES"], &rows));
    }

    let ns_json: Vec<Value> = namespaces
        .iter()
        .map(|(ns, (n, b))| json!({"namespace": ns, "entries": n, "bytes": b}))
        .collect();
    let facts_json: Map<String, Value> = facts
        .into_iter()
        .map(|(name, value, _)| (name.to_owned(), value))
        .collect();
    Ok(Report::new(opened, 0)
        .field("entries", all.len().into())
        .field("revision_records", records.len().into())
        .field("revision_record_bytes", record_bytes.into())
        .field("bytes", bytes.into())
        .field("expired", expired.into())
        .field("damaged", damaged.into())
        .field("oldest_ms", oldest.copied().into())
        .field("newest_ms", newest.copied().into())
        .field("namespaces", ns_json.into())
        .field("facts", facts_json.into())
        .human(human))
}

/// `cacher ls`: revision records (under reserved keys) only with `revisions`, marked.
pub fn ls(
    opened: &Opened,
    namespace: Option<&str>,
    prefix: Option<&[u8]>,
    revisions: bool,
) -> Result<Report, Failure> {
    let mut entries = walk::walk(opened, |key| {
        prefix.is_none_or(|p| key.starts_with(p))
            && namespace.is_none_or(|ns| cacher::key::namespace_of(key) == Some(ns))
    })?;
    let before = entries.len();
    if !revisions {
        entries.retain(|e| e.revision.is_none());
    }
    let hidden = before - entries.len();
    let now = units::now_ms();
    let mut header = vec!["KEY", "SIZE", "FORMAT", "CREATED", "EXPIRES"];
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let mut row = e.row(now);
            if revisions {
                row.push(e.revision.map_or("-".to_owned(), walk::Reserved::text));
            }
            row
        })
        .collect();
    if revisions {
        header.push("REVISION RECORD");
    }
    let mut human = table(&header, &rows);
    human.push_str(&units::entries(entries.len() as u64));
    if hidden > 0 {
        human.push_str(&format!(
            " ({hidden} revision record{} not shown: --revisions lists {})",
            if hidden == 1 { "" } else { "s" },
            if hidden == 1 { "it" } else { "them" }
        ));
    }
    human.push('\n');
    let json: Vec<Value> = entries.iter().map(|e| e.json(now)).collect();
    Ok(Report::new(opened, 0)
        .field("count", entries.len().into())
        .field("hidden_revision_records", hidden.into())
        .field("entries", json.into())
        .human(human))
}

/// Reads `key`'s stored bytes, or fails with exit 1 naming the key and the store.
fn stored(opened: &Opened, key: &[u8]) -> Result<Vec<u8>, Failure> {
    match opened.store().get(key) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(Failure::problem(
            &opened.path,
            format!(
                "no entry {} in {}",
                keyarg::human(key),
                opened.path.display()
            ),
        )),
        Err(e) if e.is_corrupt() => Err(Failure::problem(
            &opened.path,
            format!("entry {} is damaged: {}", keyarg::human(key), chain(&e)),
        )),
        Err(e) => Err(Failure::store(
            &opened.path,
            &format!("cannot read key {} of", keyarg::human(key)),
            &e,
        )),
    }
}

/// Name/value lines, aligned, without a header row.
fn two_columns(rows: &[Vec<String>]) -> String {
    table(&["", ""], rows)
        .lines()
        .skip(1)
        .map(|l| format!("{}\n", l.trim_end()))
        .collect()
}

fn header_json(h: &Header, now: u64) -> Value {
    json!({
        "envelope_version": h.version(),
        "format": h.format_name(),
        "pipeline": h.pipeline(),
        "codecs": h.codecs().collect::<Vec<_>>(),
        "created_ms": h.created_ms(),
        "expires_ms": h.expires_ms(),
        "expired": h.meta().is_expired_at(now),
        "revision": h.revision(),
        "type_fingerprint": h.type_fingerprint().map(|f| format!("{f:016x}")),
        "key_bound": h.is_key_bound(),
        "mac": if h.has_mac() { "present" } else { "absent" },
        "payload_len": h.payload_len(),
    })
}

/// `cacher show`.
pub fn show(opened: &Opened, key: &[u8]) -> Result<Report, Failure> {
    let bytes = stored(opened, key)?;
    let report = Report::new(opened, 0)
        .field("key", keyarg::json(key))
        .field("size", bytes.len().into());
    if !opened.kind.holds_envelopes() {
        let human = format!(
            "key      {}\nsize     {}\nkind     {} value (an array, not an envelope)\n",
            keyarg::human(key),
            units::bytes(bytes.len() as u64),
            opened.kind.name()
        );
        return Ok(report.field("envelope", Value::Null).human(human));
    }
    let registry = &opened.registry;
    let header = registry.peek_value(key, &bytes).map_err(|e| {
        Failure::problem(
            &opened.path,
            format!(
                "entry {} is not a sound envelope: {}",
                keyarg::human(key),
                chain(&e)
            ),
        )
    })?;
    // The whole check (payload checksum, key binding), as a read does it.
    let check = registry.open_value(key, &bytes).map(|_| ());
    let now = units::now_ms();
    let h = &header;
    let mac = match (h.has_mac(), opened.checks_macs()) {
        (true, true) => "present, checked",
        (true, false) => "present (not checked: no --mac-key-file given)",
        (false, true) => "none (refused: a MAC key was given)",
        (false, false) => "none",
    };
    let check_text = match &check {
        Ok(()) if opened.checks_macs() => "ok (checksum, key binding, MAC)".to_owned(),
        Ok(()) => "ok (checksum and key binding)".to_owned(),
        Err(e) => format!("DAMAGED: {}", chain(e)),
    };
    let rows = vec![
        vec!["key".into(), keyarg::human(key)],
        vec!["size".into(), units::bytes(bytes.len() as u64)],
        vec!["format".into(), h.pipeline().to_owned()],
        vec!["created".into(), units::time_relative(h.created_ms(), now)],
        vec![
            "expires".into(),
            h.expires_ms()
                .map_or("never".into(), |e| units::time_relative(e, now)),
        ],
        vec!["revision".into(), h.revision().to_string()],
        vec!["envelope".into(), format!("version {}", h.version())],
        vec!["mac".into(), mac.into()],
        vec!["check".into(), check_text],
    ];
    let human = two_columns(&rows);
    let code = if check.is_ok() { 0 } else { 1 };
    let check_json = match &check {
        Ok(()) => json!({"ok": true, "error": null}),
        Err(e) => json!({"ok": false, "error": chain(e)}),
    };
    Ok(Report::new(opened, code)
        .field("key", keyarg::json(key))
        .field("size", bytes.len().into())
        .field("envelope", header_json(h, now))
        .field("check", check_json)
        .human(human))
}

/// `cacher get`: `--raw` writes the format's bytes with the codecs undone; otherwise the value is
/// decoded to JSON (formats json, cbor, pickle; `raw` values as text or hex).
pub fn get(opened: &Opened, key: &[u8], raw: bool, json: bool) -> Result<Report, Failure> {
    let bytes = stored(opened, key)?;
    let report = Report::new(opened, 0).field("key", keyarg::json(key));
    if !opened.kind.holds_envelopes() {
        if raw {
            return Ok(report.raw(bytes));
        }
        let text = format!(
            "{} bytes ({} value, not an envelope; --raw writes them)\n",
            bytes.len(),
            opened.kind.name()
        );
        return Ok(report
            .field("envelope", Value::Null)
            .field("value", json!({"hex": keyarg::hex(&bytes)}))
            .human(text));
    }
    let registry = &opened.registry;
    let damaged = |e: cacher::formats::Error| {
        let message = format!("entry {} cannot be read: {}", keyarg::human(key), chain(&e));
        // Damage is a problem found; a format this build lacks is not the entry's fault.
        if e.is_corrupt() || matches!(e, cacher::formats::Error::Unauthenticated { .. }) {
            Failure::problem(&opened.path, message)
        } else {
            Failure::unusable(&opened.path, message)
        }
    };
    let (header, payload) = registry.open_value(key, &bytes).map_err(damaged)?;
    let pipeline = registry.resolve(header.pipeline()).map_err(damaged)?;
    if raw {
        // The format's own bytes (JSON text, CBOR, pickle, raw bytes) with the codecs undone:
        // the same codecs under the `raw` format lend exactly that.
        let codecs: String = header.codecs().map(|c| format!("+{c}")).collect();
        let unpack = registry.resolve(&format!("raw{codecs}")).map_err(damaged)?;
        let plain = unpack.decode_bytes(payload).map_err(damaged)?;
        return Ok(report.raw(plain.into_owned()));
    }
    let value: Value = if header.format_name() == "raw" {
        let plain = pipeline.decode_bytes(payload).map_err(damaged)?;
        match String::from_utf8(plain.into_owned()) {
            Ok(text) => json!({ "text": text }),
            Err(e) => json!({ "hex": keyarg::hex(e.as_bytes()) }),
        }
    } else {
        pipeline.decode::<Value>(payload).map_err(|e| {
            Failure::usage(format!(
                "the {} value of {} cannot be shown as JSON ({}); use --raw",
                header.format_name(),
                keyarg::human(key),
                chain(&e)
            ))
        })?
    };
    let now = units::now_ms();
    let human = if json {
        String::new()
    } else {
        let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
        format!("{pretty}\n")
    };
    Ok(report
        .field("envelope", header_json(&header, now))
        .field("value", value)
        .human(human))
}
