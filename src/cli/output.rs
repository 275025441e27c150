//! What a command prints: one JSON object (`--json`) or human text, and its exit code.

use std::io::Write;
use std::process::ExitCode;

use serde_json::{Map, Value};

use super::open::Opened;

/// The version of the JSON schema (field `cacher_cli` of every report). Adding a field keeps
/// the version; renaming or removing one, or changing its meaning, raises it.
pub const SCHEMA_VERSION: u32 = 1;

/// A finished command's output.
#[derive(Debug, Default)]
pub struct Report {
    code: u8,
    fields: Map<String, Value>,
    human: String,
    /// Bytes written to stdout as they are (`get --raw`), instead of `human`.
    raw: Option<Vec<u8>>,
    silent: bool,
}

impl Report {
    /// A report about the store `opened`, exiting with `code`.
    pub fn new(opened: &Opened, code: u8) -> Self {
        let mut fields = Map::new();
        fields.insert("store".into(), opened.describe());
        Report {
            code,
            fields,
            ..Report::default()
        }
    }

    /// A report about a store that could not be opened: `{"path", "kind"}` given as is.
    pub fn about(store: Value, code: u8) -> Self {
        let mut fields = Map::new();
        fields.insert("store".into(), store);
        Report {
            code,
            fields,
            ..Report::default()
        }
    }

    /// A command that printed its output itself (completions).
    pub fn silent() -> Self {
        Report {
            silent: true,
            ..Report::default()
        }
    }

    /// Adds a JSON field.
    pub fn field(mut self, name: &str, value: Value) -> Self {
        self.fields.insert(name.into(), value);
        self
    }

    /// Sets the human text.
    pub fn human(mut self, text: String) -> Self {
        self.human = text;
        self
    }

    /// Sets bytes to write unchanged (no JSON, no text).
    pub fn raw(mut self, bytes: Vec<u8>) -> Self {
        self.raw = Some(bytes);
        self
    }

    /// Prints the report and turns its code into the process's exit code.
    pub fn print(self, command: &str, json: bool) -> ExitCode {
        let mut out = std::io::stdout().lock();
        let written = if self.silent {
            Ok(())
        } else if let Some(raw) = &self.raw {
            out.write_all(raw)
        } else if json {
            let mut top = Map::new();
            top.insert("cacher_cli".into(), SCHEMA_VERSION.into());
            top.insert("command".into(), command.into());
            top.insert("exit_code".into(), self.code.into());
            top.extend(self.fields);
            writeln!(out, "{}", Value::Object(top))
        } else {
            out.write_all(self.human.as_bytes())
        };
        // A closed pipe (`cacher ls | head`) is not the command's failure.
        match written.and_then(|()| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                eprintln!("cacher {command}: writing to stdout: {e}");
                ExitCode::from(super::failure::UNUSABLE)
            }
            _ => ExitCode::from(self.code),
        }
    }
}

/// A left-aligned text table with a header row; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<&str> = cells.collect();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}
