//! Keys on the command line and in output: a key is any byte string, so the command line
//! takes UTF-8 text or `hex:..`, and output gives both the text (when it is UTF-8) and hex.

use cacher::store::KeyDisplay;
use serde_json::{json, Value};

use super::failure::Failure;

/// Parses a key argument: `hex:6869` is the bytes `hi`; `text:hex:1` is the text `hex:1`;
/// anything else is its UTF-8 bytes.
pub fn parse(arg: &str) -> Result<Vec<u8>, Failure> {
    if let Some(text) = arg.strip_prefix("text:") {
        return Ok(text.as_bytes().to_vec());
    }
    let Some(hex) = arg.strip_prefix("hex:") else {
        return Ok(arg.as_bytes().to_vec());
    };
    if hex.len() % 2 != 0 {
        return Err(Failure::usage(format!(
            "key `{arg}`: hex needs two digits per byte"
        )));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| Failure::usage(format!("key `{arg}`: `{hex}` is not hex")))
        })
        .collect()
}

/// Reads a MAC key file: 32 raw bytes, or 64 hex digits (surrounding whitespace ignored).
pub fn mac_key(path: &std::path::Path) -> Result<[u8; 32], Failure> {
    let bytes = std::fs::read(path).map_err(|e| {
        Failure::unusable(
            path,
            format!("cannot read the MAC key {}: {e}", path.display()),
        )
    })?;
    let bad = || {
        Failure::unusable(
            path,
            format!(
                "{} is not a MAC key: expected 32 bytes or 64 hex digits",
                path.display()
            ),
        )
    };
    if let Ok(raw) = <[u8; 32]>::try_from(&bytes[..]) {
        return Ok(raw);
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?.trim();
    if text.len() != 64 {
        return Err(bad());
    }
    let decoded = parse(&format!("hex:{text}")).map_err(|_| bad())?;
    <[u8; 32]>::try_from(&decoded[..]).map_err(|_| bad())
}

/// A key as the stores print it in messages (`b"user:42"`, escaped, cut after 64 bytes).
pub fn human(key: &[u8]) -> String {
    KeyDisplay::new(key).to_string()
}

/// A key as an argument that names it exactly: its text when that reads back as the same
/// key, else `hex:..`.
pub fn argument(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) if !text.starts_with("hex:") && !text.starts_with("text:") => text.to_owned(),
        Ok(text) => format!("text:{text}"),
        Err(_) => format!("hex:{}", hex(key)),
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The JSON form of a key: `{"utf8": text or null, "hex": .., "arg": ..}`.
pub fn json(key: &[u8]) -> Value {
    json!({
        "utf8": std::str::from_utf8(key).ok(),
        "hex": hex(key),
        "arg": argument(key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_text_keys_name_any_bytes() {
        assert_eq!(parse("user:42").unwrap(), b"user:42");
        assert_eq!(parse("hex:00ff").unwrap(), [0, 255]);
        assert_eq!(parse("text:hex:00").unwrap(), b"hex:00");
        assert!(parse("hex:0").is_err());
        assert!(parse("hex:zz").is_err());
        for key in [&b"plain"[..], b"hex:1", b"\xff\x00", b""] {
            assert_eq!(parse(&argument(key)).unwrap(), key);
        }
    }
}
