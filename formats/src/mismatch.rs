//! Type mismatches in words: `stored a text string, asked for a sequence (Vec<u32>)` rather
//! than a raw CBOR byte or a deserializer's internal error.
//!
//! Formats report a mismatch either as a [`TypeMismatch`] (cbor, from its structured error)
//! or through serde's standard wording `invalid type: X, expected Y` (json, pickle and most
//! serde formats, user formats included); [`TypeMismatch::find`] recognises both, so the
//! pipeline can name the Rust type that was asked for.

use std::fmt;

use crate::error::BoxError;

/// What was stored and what the deserializer expected, both in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeMismatch {
    pub(crate) stored: String,
    pub(crate) expected: String,
}

impl fmt::Display for TypeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stored {}, asked for {}", self.stored, self.expected)
    }
}

impl std::error::Error for TypeMismatch {}

impl TypeMismatch {
    /// The mismatch a format's error describes, if it is one.
    pub(crate) fn find(error: &BoxError) -> Option<TypeMismatch> {
        if let Some(mismatch) = error.downcast_ref::<TypeMismatch>() {
            return Some(mismatch.clone());
        }
        TypeMismatch::from_serde_message(&error.to_string())
    }

    /// Parses serde's `invalid type: UNEXPECTED, expected EXPECTED` wording (wherever it sits
    /// in the message, as serde-pickle prefixes it and serde_json appends a position). The
    /// stored value itself is dropped: cached values may be secrets, errors go to logs.
    fn from_serde_message(message: &str) -> Option<TypeMismatch> {
        let rest = &message[message.find("invalid type: ")? + "invalid type: ".len()..];
        // The unexpected part may quote a stored string: split at the last ", expected ".
        let split = rest.rfind(", expected ")?;
        let (unexpected, expected) = (&rest[..split], &rest[split + ", expected ".len()..]);
        let expected = strip_position(expected);
        Some(TypeMismatch {
            stored: stored_in_words(unexpected),
            expected: expected_in_words(expected),
        })
    }
}

/// serde_json ends its messages with ` at line L column C`.
fn strip_position(expected: &str) -> &str {
    match expected.rfind(" at line ") {
        Some(at) if expected[at..].contains(" column ") => &expected[..at],
        _ => expected,
    }
}

/// serde's `Unexpected` display (`string "x"`, ``integer `5` ``, `sequence`, …) to words,
/// without the value.
fn stored_in_words(unexpected: &str) -> String {
    const KINDS: [(&str, &str); 18] = [
        ("string", "a text string"),
        ("integer", "an integer"),
        ("floating point", "a float"),
        ("boolean", "a boolean"),
        ("character", "a character"),
        ("byte array", "a byte string"),
        ("unit value", "a unit value"),
        ("unit variant", "a unit variant"),
        ("unit", "a unit value"),
        ("Option value", "an optional value"),
        ("newtype struct", "a newtype struct"),
        ("newtype variant", "a newtype variant"),
        ("tuple variant", "a tuple variant"),
        ("struct variant", "a struct variant"),
        ("sequence", "a sequence"),
        ("map", "a map"),
        ("enum", "an enum"),
        ("null", "null"),
    ];
    KINDS
        .iter()
        .find(|(kind, _)| unexpected.starts_with(kind))
        .map_or_else(|| unexpected.to_owned(), |(_, words)| (*words).to_owned())
}

/// What a visitor expects (`a string`, `a sequence`, `u8`, `struct Doc`) in the same words as
/// [`stored_in_words`] where they differ.
fn expected_in_words(expected: &str) -> String {
    match expected {
        "a string" | "a borrowed string" => "a text string".to_owned(),
        "a byte array" | "a borrowed byte array" | "byte array" => "a byte string".to_owned(),
        "a boolean" | "bool" => "a boolean".to_owned(),
        other => other.to_owned(),
    }
}

/// `alloc::vec::Vec<alloc::string::String>` to `Vec<String>`: the module paths of
/// [`std::any::type_name`] say nothing a user needs in an error.
pub(crate) fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment = String::new();
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            segment.clear(); // a path prefix: drop it
        } else if c.is_alphanumeric() || c == '_' {
            segment.push(c);
        } else {
            out.push_str(&segment);
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(&segment);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_wording_becomes_stored_and_asked_for_without_the_value() {
        let found = TypeMismatch::from_serde_message(
            "invalid type: string \"secret, expected x\", expected a sequence at line 1 column 6",
        )
        .unwrap();
        assert_eq!(
            found.to_string(),
            "stored a text string, asked for a sequence"
        );
        let found = TypeMismatch::from_serde_message(
            "decoding error: invalid type: integer `5`, expected a string",
        )
        .unwrap();
        assert_eq!(
            found.to_string(),
            "stored an integer, asked for a text string"
        );
        assert_eq!(TypeMismatch::from_serde_message("missing field `a`"), None);
    }

    #[test]
    fn type_names_lose_their_module_paths() {
        assert_eq!(
            short_type_name("alloc::vec::Vec<alloc::string::String>"),
            "Vec<String>"
        );
        assert_eq!(
            short_type_name("core::option::Option<(u8, &str)>"),
            "Option<(u8, &str)>"
        );
        assert_eq!(short_type_name("u32"), "u32");
    }
}
