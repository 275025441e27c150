//! [`PyJson`]: JSON as Python's `json` module reads and writes it, for [`NumpyLmdb`]
//! metadata.
//!
//! Python's `json.dumps` writes `NaN`, `Infinity` and `-Infinity` for non-finite floats and
//! integers of any size, none of which `serde_json::Value` can hold (it turns big integers
//! into floats and refuses the non-finite words). `serde_json`'s `arbitrary_precision` would
//! keep big integers, but Cargo unifies features across a build, and that feature changes how
//! every `serde_json` user in the same build deserializes numbers (untagged and flattened
//! types stop accepting them): so cacher parses Python's JSON itself here, keeping every
//! integer up to 128 bits exact and refusing larger ones with a clear error, and floats
//! exact (Rust's `str::parse::<f64>` rounds correctly, as CPython's `float()` does).
//!
//! [`NumpyLmdb`]: super::NumpyLmdb

use std::fmt::Write as _;

/// A JSON value as Python's `json` module has it: non-finite floats allowed, integers exact.
///
/// [`PyJson::parse`] reads what `json.dumps` writes (and what `json.loads` reads: duplicate
/// object keys keep the last value, at the first key's place); [`PyJson::to_json`] writes
/// text `json.loads` reads back to the same value.
///
/// ```
/// use cacher_store::array::PyJson;
///
/// let v = PyJson::parse(br#"{"score": NaN, "id": 123456789012345678901234567890}"#)?;
/// assert!(matches!(v.get("score"), Some(PyJson::Float(f)) if f.is_nan()));
/// assert_eq!(v.get("id"), Some(&PyJson::Int(123456789012345678901234567890)));
/// assert_eq!(v.to_json(), r#"{"score": NaN, "id": 123456789012345678901234567890}"#);
/// # Ok::<(), cacher_store::array::PyJsonError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum PyJson {
    /// `null` (Python `None`).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer literal (no `.` or exponent), exact up to 128 bits.
    Int(i128),
    /// A number with a fraction or exponent, or `NaN`, `Infinity`, `-Infinity`.
    Float(f64),
    /// A string.
    Str(String),
    /// An array (Python `list`).
    List(Vec<PyJson>),
    /// An object (Python `dict`), in insertion order, keys unique.
    Object(Vec<(String, PyJson)>),
}

/// Why bytes could not be read as [`PyJson`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PyJsonError {
    /// Not JSON (nor Python's extension of it): what was wrong and at which byte.
    #[error("not JSON at byte {at}: {reason}")]
    Syntax {
        /// Byte offset of the problem.
        at: usize,
        /// What was expected.
        reason: &'static str,
    },
    /// Valid JSON that this type cannot hold: an integer beyond 128 bits, a string with a lone
    /// surrogate, or nesting deeper than [`PyJson::MAX_DEPTH`].
    #[error("JSON at byte {at} cannot be held: {reason}")]
    Unrepresentable {
        /// Byte offset of the value.
        at: usize,
        /// What it is.
        reason: String,
    },
}

impl PyJson {
    /// The deepest nesting of lists and objects [`PyJson::parse`] accepts (CPython's own
    /// limit is its recursion limit, about 1000).
    pub const MAX_DEPTH: usize = 256;

    /// Parses UTF-8 JSON text as Python's `json.loads` does.
    pub fn parse(text: &[u8]) -> Result<PyJson, PyJsonError> {
        let mut p = Parser { s: text, at: 0 };
        p.ws();
        let v = p.value(0)?;
        p.ws();
        if p.at != text.len() {
            return Err(p.syntax("trailing characters after the value"));
        }
        Ok(v)
    }

    /// The text `json.dumps` would write for this value (separators `", "` and `": "`, non-ASCII
    /// characters as UTF-8 rather than `\u` escapes).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    /// The value under `key` of an object (`None` for a missing key or a non-object).
    pub fn get(&self, key: &str) -> Option<&PyJson> {
        match self {
            PyJson::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The same value as a `serde_json::Value`, or `None` if it holds what `serde_json` cannot:
    /// a non-finite float or an integer outside `i64`/`u64`.
    pub fn to_serde(&self) -> Option<serde_json::Value> {
        use serde_json::Value;
        Some(match self {
            PyJson::Null => Value::Null,
            PyJson::Bool(b) => Value::Bool(*b),
            PyJson::Int(i) => match (i64::try_from(*i), u64::try_from(*i)) {
                (Ok(i), _) => Value::from(i),
                (_, Ok(u)) => Value::from(u),
                _ => return None,
            },
            PyJson::Float(f) => Value::Number(serde_json::Number::from_f64(*f)?),
            PyJson::Str(s) => Value::String(s.clone()),
            PyJson::List(items) => {
                Value::Array(items.iter().map(PyJson::to_serde).collect::<Option<_>>()?)
            }
            PyJson::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| Some((k.clone(), v.to_serde()?)))
                    .collect::<Option<_>>()?,
            ),
        })
    }

    fn write(&self, out: &mut String) {
        match self {
            PyJson::Null => out.push_str("null"),
            PyJson::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            PyJson::Int(i) => {
                let _ = write!(out, "{i}");
            }
            PyJson::Float(f) if f.is_nan() => out.push_str("NaN"),
            PyJson::Float(f) if f.is_infinite() => {
                out.push_str(if *f > 0.0 { "Infinity" } else { "-Infinity" })
            }
            // `{:?}` is the shortest text that parses back to the same f64, and always has a
            // `.` or an exponent, so it reads back as a float, not an integer.
            PyJson::Float(f) => {
                let _ = write!(out, "{f:?}");
            }
            PyJson::Str(s) => write_str(out, s),
            PyJson::List(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write(out);
                }
                out.push(']');
            }
            PyJson::Object(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_str(out, k);
                    out.push_str(": ");
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

impl From<&serde_json::Value> for PyJson {
    fn from(v: &serde_json::Value) -> PyJson {
        use serde_json::Value;
        match v {
            Value::Null => PyJson::Null,
            Value::Bool(b) => PyJson::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => PyJson::Int(i.into()),
                (_, Some(u), _) => PyJson::Int(u.into()),
                (_, _, f) => PyJson::Float(f.unwrap_or(f64::NAN)),
            },
            Value::String(s) => PyJson::Str(s.clone()),
            Value::Array(items) => PyJson::List(items.iter().map(PyJson::from).collect()),
            Value::Object(fields) => PyJson::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), PyJson::from(v)))
                    .collect(),
            ),
        }
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn syntax(&self, reason: &'static str) -> PyJsonError {
        PyJsonError::Syntax {
            at: self.at,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, word: &[u8]) -> bool {
        if self.s[self.at..].starts_with(word) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<PyJson, PyJsonError> {
        match self.peek() {
            None => Err(self.syntax("expected a value, found the end")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.list(depth + 1),
            Some(b'"') => Ok(PyJson::Str(self.string()?)),
            _ if self.eat(b"null") => Ok(PyJson::Null),
            _ if self.eat(b"true") => Ok(PyJson::Bool(true)),
            _ if self.eat(b"false") => Ok(PyJson::Bool(false)),
            _ if self.eat(b"NaN") => Ok(PyJson::Float(f64::NAN)),
            _ if self.eat(b"Infinity") => Ok(PyJson::Float(f64::INFINITY)),
            _ if self.eat(b"-Infinity") => Ok(PyJson::Float(f64::NEG_INFINITY)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.syntax("expected a value")),
        }
    }

    fn nest(&self, depth: usize) -> Result<(), PyJsonError> {
        if depth > PyJson::MAX_DEPTH {
            return Err(PyJsonError::Unrepresentable {
                at: self.at,
                reason: format!("nested deeper than {} levels", PyJson::MAX_DEPTH),
            });
        }
        Ok(())
    }

    fn list(&mut self, depth: usize) -> Result<PyJson, PyJsonError> {
        self.nest(depth)?;
        self.at += 1;
        let mut items = Vec::new();
        self.ws();
        if self.eat(b"]") {
            return Ok(PyJson::List(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth)?);
            self.ws();
            if self.eat(b"]") {
                return Ok(PyJson::List(items));
            }
            if !self.eat(b",") {
                return Err(self.syntax("expected ',' or ']'"));
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<PyJson, PyJsonError> {
        self.nest(depth)?;
        self.at += 1;
        let mut fields: Vec<(String, PyJson)> = Vec::new();
        self.ws();
        if self.eat(b"}") {
            return Ok(PyJson::Object(fields));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.syntax("expected a string key"));
            }
            let key = self.string()?;
            self.ws();
            if !self.eat(b":") {
                return Err(self.syntax("expected ':'"));
            }
            self.ws();
            let value = self.value(depth)?;
            // As a Python dict: a repeated key keeps its first place and takes the last value.
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => fields.push((key, value)),
            }
            self.ws();
            if self.eat(b"}") {
                return Ok(PyJson::Object(fields));
            }
            if !self.eat(b",") {
                return Err(self.syntax("expected ',' or '}'"));
            }
        }
    }

    fn number(&mut self) -> Result<PyJson, PyJsonError> {
        let start = self.at;
        let digits = |p: &mut Self| {
            let from = p.at;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.at += 1;
            }
            p.at - from
        };
        self.eat(b"-");
        let int_start = self.at;
        let n = digits(self);
        if n == 0 || (n > 1 && self.s[int_start] == b'0') {
            return Err(self.syntax("malformed number"));
        }
        let mut float = false;
        if self.eat(b".") {
            float = true;
            if digits(self) == 0 {
                return Err(self.syntax("expected digits after '.'"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            float = true;
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return Err(self.syntax("expected digits in the exponent"));
            }
        }
        // Only ASCII digits, signs, '.', 'e' were consumed.
        let text = std::str::from_utf8(&self.s[start..self.at]).unwrap_or_default();
        if float {
            // Correctly rounded, as CPython's float(); out of range gives ±inf, as in Python.
            text.parse::<f64>()
                .map(PyJson::Float)
                .map_err(|_| self.syntax("malformed number"))
        } else {
            text.parse::<i128>()
                .map(PyJson::Int)
                .map_err(|_| PyJsonError::Unrepresentable {
                    at: start,
                    reason: format!(
                        "the integer {}{} is beyond 128 bits",
                        &text[..text.len().min(40)],
                        if text.len() > 40 { "..." } else { "" }
                    ),
                })
        }
    }

    fn hex4(&mut self) -> Result<u32, PyJsonError> {
        let hex = self
            .s
            .get(self.at..self.at + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.syntax("expected four hex digits after \\u"))?;
        self.at += 4;
        Ok(hex)
    }

    fn string(&mut self) -> Result<String, PyJsonError> {
        let start = self.at;
        self.at += 1;
        let mut out = String::new();
        loop {
            let run = self.at;
            while !matches!(self.peek(), None | Some(b'"' | b'\\' | 0..=0x1f)) {
                self.at += 1;
            }
            out.push_str(std::str::from_utf8(&self.s[run..self.at]).map_err(|_| {
                PyJsonError::Syntax {
                    at: run,
                    reason: "a string that is not UTF-8",
                }
            })?);
            match self.peek() {
                None => return Err(self.syntax("unterminated string")),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    let esc = self
                        .peek()
                        .ok_or_else(|| self.syntax("unterminated string"))?;
                    self.at += 1;
                    match esc {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut c = self.hex4()?;
                            if (0xD800..0xDC00).contains(&c) && self.eat(b"\\u") {
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err(lone_surrogate(start));
                                }
                                c = 0x10000 + ((c - 0xD800) << 10) + (low - 0xDC00);
                            }
                            out.push(char::from_u32(c).ok_or_else(|| lone_surrogate(start))?);
                        }
                        _ => return Err(self.syntax("invalid escape")),
                    }
                }
                Some(_) => return Err(self.syntax("a control character inside a string")),
            }
        }
    }
}

fn lone_surrogate(at: usize) -> PyJsonError {
    PyJsonError::Unrepresentable {
        at,
        reason: "a string with a lone UTF-16 surrogate (Python allows it, Rust strings do not)"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_words_and_big_integers_are_kept() {
        let v = PyJson::parse(
            b"[NaN, Infinity, -Infinity, -170141183460469231731687303715884105728, 1e400, -0.0]",
        )
        .unwrap();
        let PyJson::List(items) = &v else {
            panic!("{v:?}")
        };
        assert!(matches!(items[0], PyJson::Float(f) if f.is_nan()));
        assert_eq!(items[1], PyJson::Float(f64::INFINITY));
        assert_eq!(items[2], PyJson::Float(f64::NEG_INFINITY));
        assert_eq!(items[3], PyJson::Int(i128::MIN));
        assert_eq!(items[4], PyJson::Float(f64::INFINITY));
        assert!(matches!(items[5], PyJson::Float(f) if f == 0.0 && f.is_sign_negative()));
        assert_eq!(
            v.to_json(),
            "[NaN, Infinity, -Infinity, -170141183460469231731687303715884105728, Infinity, -0.0]"
        );
        assert_eq!(v.to_serde(), None);
    }

    #[test]
    fn integers_beyond_128_bits_are_a_clear_error() {
        let err = PyJson::parse(b"{\"n\": 340282366920938463463374607431768211456}").unwrap_err();
        assert!(
            matches!(&err, PyJsonError::Unrepresentable { reason, .. } if reason.contains("beyond 128 bits")),
            "{err}"
        );
    }

    #[test]
    fn malformed_and_hostile_input_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"{",
            b"[1,]",
            b"01",
            b"1.",
            b"1e",
            b"\"\\u12\"",
            b"\"\\ud800\"",
            b"\"\xff\"",
            b"nul",
            b"[1] 2",
            b"-",
            b"{\"a\" 1}",
        ] {
            assert!(
                PyJson::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "[".repeat(100_000);
        assert!(matches!(
            PyJson::parse(deep.as_bytes()),
            Err(PyJsonError::Unrepresentable { .. })
        ));
    }

    #[test]
    fn strings_and_duplicate_keys_read_as_python_does() {
        let v = PyJson::parse(br#"{"a": 1, "b": "\ud83d\ude00\n\u00e9", "a": 2}"#).unwrap();
        assert_eq!(
            v,
            PyJson::Object(vec![
                ("a".into(), PyJson::Int(2)),
                ("b".into(), PyJson::Str("😀\né".into())),
            ])
        );
        assert_eq!(PyJson::parse(v.to_json().as_bytes()).unwrap(), v);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_fail_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let _ = PyJson::parse(&bytes);
        }

        #[test]
        fn fragments_of_python_json_parse_and_write_back_to_the_same_value(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "[", "]", "{", "}", ",", ":", "\"k\"", "\"\\u00e9\\n\"", "NaN", "-Infinity",
                "1", "-0", "1.5e-300", "123456789012345678901234567890", "true", "null", " ",
            ]), 0..24),
        ) {
            let text = parts.concat();
            if let Ok(v) = PyJson::parse(text.as_bytes()) {
                let again = PyJson::parse(v.to_json().as_bytes()).unwrap();
                // NaN != NaN: compare the written text instead.
                proptest::prop_assert_eq!(again.to_json(), v.to_json());
            }
        }
    }
}
