//! `cacher archive STORE (--older-than AGE | --beyond-count N | --expired) [--named]
//! [--archive-dir DIR]`: moves old revisions into an archive file (see `Cache::archive`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use super::failure::Failure;
use super::output::Report;
use super::revisions::{chain, OverStore};
use super::units;
use cacher::ArchivePolicy;

/// What `cacher archive` moves.
#[derive(Debug, Args)]
#[group(id = "select", required = true, multiple = false)]
pub struct Selection {
    /// Old revisions written at least this long ago (`7d`, `12h`).
    #[arg(long, value_parser = units::parse_duration, group = "select")]
    older_than: Option<Duration>,
    /// All but the newest N old revisions of each key still in the store.
    #[arg(long, value_name = "N", group = "select")]
    beyond_count: Option<usize>,
    /// Only expired current values (archived instead of deleted).
    #[arg(long, group = "select")]
    expired_only: bool,
}

/// The rest of `cacher archive`'s options.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    #[command(flatten)]
    select: Selection,
    /// Also named (pinned) revisions the selection picks.
    #[arg(long)]
    named: bool,
    /// Also expired current values, with --older-than or --beyond-count.
    #[arg(long)]
    expired: bool,
    /// Where archive files go (default: `archives` beside the store's files; required for a
    /// store kind without a lease directory).
    #[arg(long, value_name = "DIR")]
    pub archive_dir: Option<PathBuf>,
}

/// The policy the arguments say.
fn policy(args: &ArchiveArgs) -> ArchivePolicy {
    let s = &args.select;
    let mut p = match (s.older_than, s.beyond_count) {
        (Some(age), _) => ArchivePolicy::older_than(age),
        (None, Some(n)) => ArchivePolicy::beyond_count(n),
        (None, None) => ArchivePolicy::expired_entries(),
    };
    if args.named {
        p = p.with_named();
    }
    if args.expired {
        p = p.with_expired_entries();
    }
    p
}

/// `cacher archive`.
pub fn archive(over: OverStore, args: &ArchiveArgs) -> Result<Report, Failure> {
    let OverStore {
        cache,
        report,
        path,
    } = over;
    let done = cache
        .archive(policy(args))
        .map_err(|e| Failure::problem(&path, format!("archiving: {}", chain(&e))))?;
    let file = done.archive.as_ref().map(|p| p.display().to_string());
    let human = match &file {
        None => "nothing to archive\n".to_string(),
        Some(f) => format!(
            "archived {} revisions of {} keys ({} expired values) into {f}\n",
            done.revisions, done.keys, done.expired_entries
        ),
    };
    Ok(report
        .field(
            "archived",
            json!({
                "archive": file,
                "keys": done.keys,
                "revisions": done.revisions,
                "expired_entries": done.expired_entries,
                "finished_deletes": done.finished_deletes,
            }),
        )
        .human(human))
}
