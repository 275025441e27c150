//! Type fingerprints: a stable 64-bit name for a value's Rust type, written into the
//! envelope so a reader can tell "stored as another type" from "damaged".

/// The fingerprint of a Rust type named by `name`: the first 8 bytes (little-endian) of a
/// BLAKE3 hash, in its own derive-key context, of the name with whitespace normalized.
///
/// The input is a type *as text*, so the fingerprint is as stable as the text: the same
/// string gives the same fingerprint on every machine, compiler and crate version.
/// - A macro that sees the return type as written (`Vec<u32>`) gets a fingerprint that only
///   changes when the source does. Whitespace between tokens does not count (`Vec < u32 >` is
///   `Vec<u32>`), but paths do (`Vec<u32>` and `std::vec::Vec<u32>` differ).
/// - [`std::any::type_name`] is documented as not stable across Rust releases: a compiler
///   upgrade may change it, and with it the fingerprint, which costs one recomputation per
///   value (a fingerprint mismatch is a miss), never a wrong value.
///
/// Never 0: 0 in an envelope means "no fingerprint recorded".
///
/// ```
/// use cacher_formats::type_fingerprint;
///
/// assert_eq!(type_fingerprint("Vec<u32>"), type_fingerprint("Vec < u32 >"));
/// assert_ne!(type_fingerprint("Vec<u32>"), type_fingerprint("Vec<u64>"));
/// assert_ne!(type_fingerprint("&'a str"), type_fingerprint("&'astr"));
/// // Stable: this number is part of what old values were written with.
/// assert_eq!(type_fingerprint("String"), 0x4d84_a081_2529_fd78);
/// ```
pub fn type_fingerprint(name: &str) -> u64 {
    let mut hasher = blake3::Hasher::new_derive_key("cacher-formats type fingerprint v1");
    hasher.update(normalize(name).as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    match u64::from_le_bytes(first) {
        0 => 1,
        fingerprint => fingerprint,
    }
}

/// Drops whitespace except one space where it separates two word characters (`dyn Trait`,
/// `&'a str`), so the spacing of a token stream does not change the fingerprint.
fn normalize(name: &str) -> String {
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '\'';
    let mut out = String::with_capacity(name.len());
    let mut pending_space = false;
    for c in name.chars() {
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space && word(c) && out.chars().next_back().is_some_and(word) {
            out.push(' ');
        }
        pending_space = false;
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_between_tokens_does_not_change_the_name() {
        assert_eq!(normalize("  Vec <\n u32 > "), "Vec<u32>");
        assert_eq!(
            normalize("Box < dyn  Fn ( u8 ) -> u8 >"),
            "Box<dyn Fn(u8)->u8>"
        );
        assert_eq!(normalize("& 'static  str"), "&'static str");
    }
}
