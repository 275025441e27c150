//! Sizes and times in human units, both ways.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `1536` -> `1.5 KiB`; below 1 KiB the exact count (`512 B`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `1 entry`, `2 entries`.
pub fn entries(n: u64) -> String {
    if n == 1 {
        "1 entry".to_owned()
    } else {
        format!("{n} entries")
    }
}

/// Parses `1000`, `64KiB`, `500MiB`, `2GB`, `1.5 GiB` (k/M/G/T are powers of 1024 too, as
/// most tools mean them for cache sizes; `KB` = `KiB`).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (examples: 1000, 64KiB, 500MiB, 2GiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown size unit `{other}` in `{text}`")),
    };
    let value = number * (1u64 << shift) as f64;
    if !value.is_finite() || value < 0.0 || value > u64::MAX as f64 {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(value as u64)
}

/// Parses a duration: `90s`, `15m`, `12h`, `7d`, `2w`, `1h 30m` (humantime's syntax).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}; examples: 90s, 12h, 7d)"))
}

/// Milliseconds since the Unix epoch as an RFC 3339 UTC time, to the second.
pub fn time(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Milliseconds since the Unix epoch as RFC 3339 and how long ago or ahead it is.
pub fn time_relative(ms: u64, now_ms: u64) -> String {
    let when = time(ms);
    let (delta, ahead) = if ms >= now_ms {
        (ms - now_ms, true)
    } else {
        (now_ms - ms, false)
    };
    // Whole seconds: milliseconds only add noise to a table.
    let span = humantime::format_duration(Duration::from_secs(delta / 1000)).to_string();
    let span = span.split(' ').take(2).collect::<Vec<_>>().join(" ");
    match (delta < 1000, ahead) {
        (true, _) => format!("{when} (now)"),
        (false, true) => format!("{when} (in {span})"),
        (false, false) => format!("{when} ({span} ago)"),
    }
}

/// Now, in milliseconds since the Unix epoch (as envelopes record times).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_and_print_in_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("64KiB"), Ok(65536));
        assert_eq!(parse_bytes("1.5 MiB"), Ok(1572864));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("").is_err());
    }

    #[test]
    fn times_say_how_long_ago() {
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
        let text = time_relative(0, 3_600_000);
        assert!(text.ends_with("(1h ago)"), "{text}");
        assert!(time_relative(7_200_000, 0).ends_with("(in 2h)"));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert!(parse_duration("soon").is_err());
    }
}
