//! Decoding the text arguments of pickle opcodes as CPython does: protocol 0's numbers and
//! escaped strings, Python 2 `str`s, and UTF-8.

use super::ops::malformed;
use super::value::{PyInt, PyValue};
use crate::error::BoxError;

fn ascii(line: &[u8]) -> Result<&str, BoxError> {
    std::str::from_utf8(line)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| malformed("non-ASCII number"))
}

/// `FLOAT`: `repr(float)` text.
pub(super) fn float(line: &[u8]) -> Result<f64, BoxError> {
    let text = ascii(line)?.trim();
    text.parse()
        .map_err(|_| malformed(format!("bad float {text:?}")))
}

/// `INT`: decimal, or `01`/`00` for True/False (protocol 0's booleans).
pub(super) fn int_line(line: &[u8]) -> Result<PyValue, BoxError> {
    match line {
        b"01" => Ok(PyValue::Bool(true)),
        b"00" => Ok(PyValue::Bool(false)),
        _ => Ok(PyValue::Int(plain_decimal(ascii(line)?.trim())?)),
    }
}

/// `LONG`: decimal with Python 2's optional `L` suffix.
pub(super) fn long_line(line: &[u8]) -> Result<PyInt, BoxError> {
    let text = ascii(line)?.trim();
    plain_decimal(text.strip_suffix('L').unwrap_or(text))
}

/// CPython parses these arguments with base 0 (`strtol` for `INT`, where `010` is octal 8;
/// `int(x, 0)` for `LONG`, where it is an error), which Python never writes: a leading zero
/// is refused rather than read as decimal.
fn plain_decimal(text: &str) -> Result<PyInt, BoxError> {
    let digits = text.trim_start_matches(['-', '+']);
    if digits.len() > 1 && digits.starts_with('0') {
        return Err(malformed(format!(
            "integer {text:?} has a leading zero, which CPython reads as octal or refuses"
        )));
    }
    PyInt::parse_decimal(text)
}

/// A Python 2 `str` (`STRING`, `BINSTRING`, `SHORT_BINSTRING`): CPython's `pickle.loads`
/// decodes it as ASCII (its default `encoding='ASCII'`) and raises on other bytes.
pub(super) fn py2_str(bytes: &[u8]) -> Result<PyValue, BoxError> {
    if !bytes.is_ascii() {
        return Err(
            "pickle holds a Python 2 str with non-ASCII bytes, which CPython's pickle.loads \
             refuses too (encoding='ASCII')"
                .into(),
        );
    }
    // ASCII is UTF-8.
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("non-ASCII str"))?;
    Ok(PyValue::Str(text.into()))
}

/// `STRING`'s argument: a quoted Python 2 literal, unescaped as `codecs.escape_decode`.
pub(super) fn unquote(line: &[u8]) -> Result<Vec<u8>, BoxError> {
    let inner = match line {
        [q @ (b'\'' | b'"'), inner @ .., last] if last == q => inner,
        _ => return Err(malformed("the STRING opcode argument must be quoted")),
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let b = inner[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = inner.get(i) else {
            return Err(malformed("trailing \\ in string"));
        };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' | b'\'' | b'"' => out.push(e),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut value = u32::from(e - b'0');
                for _ in 0..2 {
                    match inner.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                // escape_decode keeps the low byte of \400..\777.
                out.push((value & 0xff) as u8);
            }
            b'x' => {
                let hex = inner
                    .get(i..i + 2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| malformed("invalid \\x escape"))?;
                out.push(hex);
                i += 2;
            }
            // Unknown escapes stay as written.
            other => out.extend_from_slice(&[b'\\', other]),
        }
    }
    Ok(out)
}

/// `UNICODE`'s argument, decoded as CPython's `raw-unicode-escape`: bytes are Latin-1 code
/// points, except `\uXXXX` and `\UXXXXXXXX` after an odd number of backslashes.
pub(super) fn raw_unicode_escape(line: &[u8]) -> Result<String, BoxError> {
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i] != b'\\' {
            out.push(char::from(line[i]));
            i += 1;
            continue;
        }
        let run = line[i..].iter().take_while(|&&b| b == b'\\').count();
        let after = i + run;
        let escape = run % 2 == 1 && matches!(line.get(after), Some(b'u' | b'U'));
        let literal = if escape { run - 1 } else { run };
        out.extend(std::iter::repeat_n('\\', literal));
        i = after;
        if !escape {
            continue;
        }
        let digits = if line[after] == b'u' { 4 } else { 8 };
        let hex = line
            .get(after + 1..after + 1 + digits)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| malformed("truncated \\uXXXX escape"))?;
        let c = char::from_u32(hex).ok_or_else(|| {
            format!(
                "pickle string holds U+{hex:04X}, a lone surrogate or out of range, which a \
                 Rust string cannot hold"
            )
        })?;
        out.push(c);
        i = after + 1 + digits;
    }
    Ok(out)
}

/// `BINUNICODE*`: UTF-8; CPython also accepts lone surrogates (`surrogatepass`), which a
/// Rust string cannot hold.
pub(super) fn utf8(bytes: &[u8]) -> Result<&str, BoxError> {
    std::str::from_utf8(bytes).map_err(|_| {
        "pickle string is not valid UTF-8 (a lone surrogate, which CPython allows, cannot be \
         held by a Rust string)"
            .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_unicode_escape_decodes_as_cpython() {
        let decode = |b: &[u8]| raw_unicode_escape(b).map_err(|e| e.to_string());
        assert_eq!(decode(br"\u0041\U0001F600"), Ok("A\u{1F600}".to_owned()));
        // An even run of backslashes is literal; an odd one escapes the last.
        assert_eq!(decode(br"\\u0041"), Ok(r"\\u0041".to_owned()));
        assert_eq!(decode(br"\\\u0041"), Ok(r"\\A".to_owned()));
        assert_eq!(decode(br"a\b\"), Ok(r"a\b\".to_owned()));
        assert_eq!(decode(b"caf\xe9"), Ok("caf\u{e9}".to_owned()));
        assert!(decode(br"\ud800").unwrap_err().contains("surrogate"));
        assert!(decode(br"\U00110000").unwrap_err().contains("out of range"));
        assert!(decode(br"\u00").unwrap_err().contains("truncated"));
    }

    #[test]
    fn protocol_0_integers_are_decimal_without_leading_zeros() {
        assert!(matches!(int_line(b"01"), Ok(PyValue::Bool(true))));
        assert!(matches!(int_line(b"-17"), Ok(PyValue::Int(PyInt::I(-17)))));
        assert!(matches!(int_line(b"0"), Ok(PyValue::Int(PyInt::I(0)))));
        assert_eq!(
            long_line(b"18446744073709551616L").unwrap(),
            PyInt::I(1 << 64)
        );
        for line in [&b"010"[..], b"0x10", b"-07"] {
            assert!(int_line(line).is_err(), "{line:?}");
            assert!(long_line(line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn python_2_string_literals_unescape_as_escape_decode() {
        assert_eq!(unquote(br"'a\'b'").unwrap(), b"a'b");
        assert_eq!(unquote(br#""\x00\n\t\101\\""#).unwrap(), b"\x00\n\tA\\");
        assert_eq!(unquote(br"'\q'").unwrap(), br"\q");
        assert!(unquote(b"'unterminated").is_err());
        assert!(unquote(br"'\x4'").is_err());
    }
}
