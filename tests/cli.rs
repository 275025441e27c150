//! The `cacher` command-line tool, run as a real process on real stores of every kind
//! (DirStore, LogStore, and LmdbStore with `--features lmdb`).

#[path = "cli/support.rs"]
mod support;

#[path = "cli/doctor.rs"]
mod doctor;
#[path = "cli/dump.rs"]
mod dump;
#[path = "cli/errors.rs"]
mod errors;
#[path = "cli/hybrid.rs"]
mod hybrid;
#[path = "cli/inspect.rs"]
mod inspect;
#[path = "cli/maintain.rs"]
mod maintain;
#[cfg(feature = "archive")]
#[path = "cli/revisions.rs"]
mod revisions;
#[path = "cli/verify.rs"]
mod verify;
