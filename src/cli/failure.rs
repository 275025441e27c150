//! Why a command stopped, and the exit code that says so.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;

/// Exit code: problems found (damaged entries, a missing key).
pub const PROBLEMS: u8 = 1;
/// Exit code: bad usage, or the store cannot be opened or used.
pub const UNUSABLE: u8 = 2;

/// A command that could not do its work.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
    path: Option<PathBuf>,
    /// The store refused to open because its own files are damaged (`verify` reports that as
    /// a problem found, not as a store it cannot use).
    damaged: bool,
    /// What kind of store error stopped the command, for `doctor`'s advice.
    fault: Option<Fault>,
}

/// The kind of store error behind a failure to open a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Written by a newer cacher (`found` layout, this build reads up to `supported`).
    Upgrade { found: u32, supported: u32 },
    /// The store's own files are damaged.
    Corrupt,
    /// Another process holds a lock the command needs.
    Locked,
    /// A file of the store is not the store's own (a symlink, a FIFO) or not the kind it
    /// should be.
    Foreign,
    /// Permission denied on a file of the store.
    Permission,
    /// Anything else.
    Other,
}

impl Fault {
    /// Classifies a store error.
    pub fn of(e: &cacher::store::Error) -> Fault {
        use cacher::store::Error as E;
        match e {
            E::UpgradeRequired {
                found, supported, ..
            } => Fault::Upgrade {
                found: *found,
                supported: *supported,
            },
            E::Locked { .. } => Fault::Locked,
            E::NotOwned { .. } | E::WrongLayout { .. } => Fault::Foreign,
            E::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                Fault::Permission
            }
            e if e.is_corrupt() => Fault::Corrupt,
            _ => Fault::Other,
        }
    }
}

impl Failure {
    /// Bad input on the command line (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: UNUSABLE,
            message: message.into(),
            path: None,
            damaged: false,
            fault: None,
        }
    }

    /// The store or a file at `path` cannot be opened or used (exit 2). The message should
    /// name the path; `path` is also given on its own in the JSON report.
    pub fn unusable(path: &Path, message: impl Into<String>) -> Self {
        Failure {
            code: UNUSABLE,
            message: message.into(),
            path: Some(path.to_path_buf()),
            damaged: false,
            fault: None,
        }
    }

    /// A store error while working on the store at `path` (exit 2; the chain of causes is
    /// printed once each).
    pub fn store(path: &Path, doing: &str, error: &dyn std::error::Error) -> Self {
        Failure::unusable(
            path,
            format!("{doing} {}: {}", path.display(), chain(error)),
        )
    }

    /// The command found a problem it reports as its result (exit 1).
    pub fn problem(path: &Path, message: impl Into<String>) -> Self {
        Failure {
            code: PROBLEMS,
            message: message.into(),
            path: Some(path.to_path_buf()),
            damaged: false,
            fault: None,
        }
    }

    /// Marks a failure to open a store whose files are damaged.
    pub fn damaged(mut self, damaged: bool) -> Self {
        self.damaged = damaged;
        self
    }

    /// Records the kind of store error behind the failure.
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// The kind of store error behind the failure, when it was one.
    pub fn fault(&self) -> Option<Fault> {
        self.fault
    }

    /// Whether the store could not be opened because its files are damaged.
    pub fn is_damage(&self) -> bool {
        self.damaged
    }

    /// Adds `text` to the end of the message (what was done before it failed).
    pub fn note(mut self, text: &str) -> Self {
        self.message.push_str(text);
        self
    }

    /// The message, naming the path.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prints the failure (a JSON object on stdout with `--json`, always a line on stderr).
    pub fn print(self, command: &str, json: bool) -> ExitCode {
        if json {
            let report = json!({
                "cacher_cli": super::output::SCHEMA_VERSION,
                "command": command,
                "exit_code": self.code,
                "error": {
                    "message": self.message,
                    "path": self.path.as_ref().map(|p| p.display().to_string()),
                },
            });
            println!("{report}");
        }
        eprintln!("cacher {command}: {}", self.message);
        ExitCode::from(self.code)
    }
}

/// An error and its causes, each once: the errors of this workspace leave their cause out of
/// their own message so a printer like this one shows it once.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
