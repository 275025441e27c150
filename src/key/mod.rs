//! Stable cache keys: a namespace, a version and a hash of the chosen arguments.
//!
//! # The algorithm (pinned by the golden test `keys_match_the_golden_list`)
//!
//! A store key is the UTF-8 text `{namespace}@{version}:{hash}` where `hash` is the first 16
//! bytes (32 lowercase hex digits) of the BLAKE3 hash of `cacher-key-v1\0` followed by, for
//! each part, its length as u64 LE and its bytes; the parts are the **canonical encoding** of
//! the arguments (or of a custom key function's result) and then of each dependency
//! (`depends_on`) value, in order.
//!
//! The canonical encoding is this module's own, not a third-party format's, so that no crate
//! upgrade can change a key. It walks the serde data model and writes one tag byte per value:
//!
//! | value | bytes |
//! |---|---|
//! | bool | `01`, then `00` or `01` |
//! | any integer (i8..i128, u8..u128) | `02`, then the value as i128 LE (u128 above i128::MAX: `12` + u128 LE) |
//! | f32, f64 | `03`, then the value widened to f64, its bits LE (every NaN as `0x7ff8000000000000`) |
//! | str, char | `04`, u64 LE byte length, UTF-8 bytes |
//! | bytes | `05`, u64 LE length, bytes |
//! | None / Some(v) | `06` / `07` then v |
//! | unit | `08` |
//! | unit struct | `09`, name as str |
//! | enum variant | `0A`, variant name as str, then the payload (nothing, a value, a seq or a map) |
//! | seq, tuple, tuple struct | `0C`, the elements, `0D` |
//! | map, struct | `0E`, u64 LE entry count, entries sorted by the bytes of their encoded key, `0F` |
//!
//! Newtype structs are transparent (`Meters(3)` hashes like `3`); integers hash alike whatever
//! their width (so widening `u32` to `u64` keeps old results); struct fields hash like a map
//! with string keys, so reordering fields keeps keys stable while renaming one changes them;
//! enum variants are identified by name, so reordering variants keeps keys stable.
//! `HashMap` and `BTreeMap` with the same entries hash the same (entries are sorted).
//! **A `HashSet` is not stable**: serde writes it as a sequence in its random iteration
//! order, so it gives different keys in different processes. Pass a `BTreeSet` (or a sorted
//! `Vec`), or a custom key, instead.
//! `std::hash` and `DefaultHasher` are not used: they differ between runs and releases.
//!
//! # Namespaces: a key names one function
//!
//! The namespace is the function's identity. With the wrapper it is the name given to
//! [`Cache::memoize`](crate::Cache::memoize). With `#[memoize]` it defaults to the function's
//! path — `module_path!()::name` for a free function, `type_name::<Self>()::name` for a
//! method — followed by `::<T, ..>` for a generic function's type (and const) parameters.
//! Only functions given the same explicit `namespace` share keys.
//!
//! **Key change (cacher 0.1, issue 8):** `#[memoize]`'s default namespace used to be the bare
//! function name (`fetch@1:..`), so two `fetch`es in different modules shared keys; it is now
//! the path (`my_crate::users::fetch@1:..`). Results stored under the old keys are not found:
//! each is recomputed once under its new key (and the old entries go by expiry, eviction or
//! [`Cache::clear_namespace`](crate::Cache::clear_namespace)`("fetch")`). The hash algorithm
//! (`cacher-key-v1`) did not change, so wrapper keys and explicit namespaces are unchanged.
//! Every value's envelope also records the fingerprint of its type, so a key shared on
//! purpose by two types is a recomputation, never a wrong value.

use serde::ser::{self, Serialize};

mod canonical;
mod recent;

use canonical::Canonical;
use recent::RecentHashes;

/// Length in bytes of the argument hash kept in a key (128 bits: collisions are not a concern
/// below ~10^18 entries).
pub const HASH_BYTES: usize = 16;

/// The canonical encoding of `value` (see the module docs).
pub fn canonical_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, KeyError> {
    let mut out = Vec::with_capacity(64);
    canonical_bytes_into(value, &mut out)?;
    Ok(out)
}

/// The canonical encoding of an argument tuple, leaving out the positions in `skip` (ignored
/// arguments). A value that is not a tuple is treated as a single argument at position 0.
pub fn canonical_args<T: Serialize + ?Sized>(
    args: &T,
    skip: &[usize],
) -> Result<Vec<u8>, KeyError> {
    let mut out = Vec::with_capacity(64);
    canonical_args_into(args, skip, &mut out)?;
    Ok(out)
}

/// [`canonical_args`] appended to `out` (a key's hash input), without a buffer of its own.
#[inline]
pub(crate) fn canonical_args_into<T: Serialize + ?Sized>(
    args: &T,
    skip: &[usize],
    out: &mut Vec<u8>,
) -> Result<(), KeyError> {
    let mut enc = Canonical { out, skip };
    args.serialize(&mut enc)?;
    if !enc.skip.is_empty() {
        // Ignoring "position 0" of a plain value (or of a Vec) would silently key on it, or
        // drop an element of a collection: refuse instead.
        return Err(KeyError(format!(
            "arguments {skip:?} are ignored, but the arguments are not a tuple"
        )));
    }
    Ok(())
}

/// [`canonical_bytes`] appended to `out`.
#[inline]
pub(crate) fn canonical_bytes_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), KeyError> {
    value.serialize(&mut Canonical { out, skip: &[] })
}

/// Domain separation for the key hash; a new key algorithm gets a new tag.
const KEY_ALGORITHM: &[u8] = b"cacher-key-v1\0";

/// The store key for encoded arguments followed by encoded dependencies: the one place
/// [`crate::Memo`] and the `#[memoize]` macro make keys.
pub(crate) fn key_from_parts(
    namespace: &str,
    version: u32,
    args: &[u8],
    deps: &[Vec<u8>],
) -> Vec<u8> {
    let parts = std::iter::once(args).chain(deps.iter().map(|d| &d[..]));
    KeyPrefix::new(namespace, version)
        .of_parts(parts)
        .into_vec()
}

/// Builds the store key for `namespace`, `version` and already-encoded parts.
pub fn store_key(namespace: &str, version: u32, parts: &[&[u8]]) -> Vec<u8> {
    KeyPrefix::new(namespace, version)
        .of_parts(parts.iter().copied())
        .into_vec()
}

/// The part of a key's BLAKE3 hash a key keeps.
type KeyHash = [u8; HASH_BYTES];
/// [`KeyHash`] as the lowercase hex a key ends with.
type KeyHex = [u8; 2 * HASH_BYTES];

/// How long a key [`KeyBuf`] holds without allocating.
const INLINE_KEY: usize = 128;

/// A store key held inline when it is short (every key but those of namespaces over 80
/// bytes or so), so a memoized hit allocates nothing for its key.
#[derive(Debug, Clone)]
pub(crate) enum KeyBuf {
    Inline { bytes: [u8; INLINE_KEY], len: usize },
    Heap(Vec<u8>),
}

impl Default for KeyBuf {
    fn default() -> Self {
        KeyBuf::Inline {
            bytes: [0; INLINE_KEY],
            len: 0,
        }
    }
}

impl KeyBuf {
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            KeyBuf::Inline { bytes, len } => &bytes[..*len],
            KeyBuf::Heap(key) => key,
        }
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        match self {
            KeyBuf::Inline { bytes, len } => bytes[..len].to_vec(),
            KeyBuf::Heap(key) => key,
        }
    }
}

impl AsRef<[u8]> for KeyBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// The part of a key that is the same for every call of one function: `{namespace}@{version}:`.
/// A [`Memo`](crate::Memo) makes it once.
#[derive(Debug, Clone)]
pub(crate) struct KeyPrefix(Box<[u8]>);

impl KeyPrefix {
    pub(crate) fn new(namespace: &str, version: u32) -> Self {
        let mut prefix = Vec::with_capacity(namespace.len() + 12);
        prefix.extend_from_slice(namespace.as_bytes());
        prefix.push(b'@');
        push_decimal(&mut prefix, version);
        prefix.push(b':');
        KeyPrefix(prefix.into_boxed_slice())
    }

    /// The key of parts already encoded.
    pub(crate) fn of_parts<'p>(&self, parts: impl Iterator<Item = &'p [u8]>) -> KeyBuf {
        let mut key = KeyBuf::default();
        let done = self.hashed(&mut key, |input| {
            parts.for_each(|part| input.part(part));
            Ok(())
        });
        match done {
            Ok(()) => key,
            // `hashed` fails only with `fill`'s error, and this `fill` has none.
            Err(_) => unreachable!("hashing encoded parts cannot fail"),
        }
    }

    /// Writes into `key` the key whose hash input `fill` writes (length-prefixed parts, in
    /// order): the hash input goes into this thread's scratch buffer, so building a key
    /// allocates at most the key itself, and only when it is longer than [`KeyBuf`] holds
    /// inline.
    pub(crate) fn hashed(
        &self,
        key: &mut KeyBuf,
        fill: impl FnOnce(&mut HashInput<'_>) -> Result<(), KeyError>,
    ) -> Result<(), KeyError> {
        let hash = hash_in_scratch(fill)?;
        let prefix = &self.0[..];
        write_key(key, prefix.len(), |out| out.copy_from_slice(prefix), &hash);
        Ok(())
    }
}

/// [`KeyPrefix::hashed`] for a caller that keeps no [`KeyPrefix`] (a `#[memoize]` call site,
/// which has nowhere to keep one per cache): `{namespace}@{version}:` is written straight
/// into `key`, the same bytes `KeyPrefix::new(namespace, version)` holds, with nothing
/// allocated.
pub(crate) fn hashed_in_place(
    namespace: &str,
    version: u32,
    key: &mut KeyBuf,
    fill: impl FnOnce(&mut HashInput<'_>) -> Result<(), KeyError>,
) -> Result<(), KeyError> {
    let hash = hash_in_scratch(fill)?;
    let mut digits = [0u8; 10];
    let version = decimal(&mut digits, version);
    let (ns, n) = (namespace.as_bytes(), namespace.len());
    let prefix_len = n + 1 + version.len() + 1;
    let write_prefix = |out: &mut [u8]| {
        out[..n].copy_from_slice(ns);
        out[n] = b'@';
        out[n + 1..prefix_len - 1].copy_from_slice(version);
        out[prefix_len - 1] = b':';
    };
    write_key(key, prefix_len, write_prefix, &hash);
    Ok(())
}

/// The key hash, as hex, of the key input `fill` writes, in this thread's scratch buffer, so building a
/// key allocates nothing for its input.
fn hash_in_scratch(
    fill: impl FnOnce(&mut HashInput<'_>) -> Result<(), KeyError>,
) -> Result<KeyHex, KeyError> {
    /// A thread's key-building state: the hash input's buffer and the recent hashes.
    struct Scratch {
        buf: Vec<u8>,
        /// Its table is made on the thread's first key input that fits.
        recent: RecentHashes,
    }
    thread_local! {
        // Const-initialised: an access is a state check, not a lazy-init call; the buffer
        // grows on the first key and keeps its capacity.
        static SCRATCH: std::cell::RefCell<Scratch> =
            const { std::cell::RefCell::new(Scratch { buf: Vec::new(), recent: RecentHashes::new() }) };
    }
    let mut fill = Some(fill);
    let hash = SCRATCH
        .try_with(|scratch| {
            // Busy when a `Serialize` of the arguments builds another key (it may call a
            // memoized function): that one gets a buffer of its own.
            let mut scratch = scratch.try_borrow_mut().ok()?;
            let fill = fill.take()?;
            let Scratch { buf, recent } = &mut *scratch;
            Some(hash_input(buf, Some(recent), fill))
        })
        .ok()
        .flatten();
    match (hash, fill) {
        (Some(hash), _) => hash,
        (None, Some(fill)) => hash_input(&mut Vec::with_capacity(128), None, fill),
        // `fill` is taken only on the way to `Some`.
        (None, None) => unreachable!("the key builder ran without a result"),
    }
}

/// Writes into `key` the `prefix_len` bytes of prefix `write_prefix` writes, then `hex`:
/// inline when it fits, so the caller's stack slot is written in place and not moved.
#[inline(always)]
fn write_key(
    key: &mut KeyBuf,
    prefix_len: usize,
    write_prefix: impl FnOnce(&mut [u8]),
    hex: &KeyHex,
) {
    let len = prefix_len + 2 * HASH_BYTES;
    if len > INLINE_KEY {
        *key = KeyBuf::Heap(vec![0; len]);
    } else if !matches!(key, KeyBuf::Inline { .. }) {
        *key = KeyBuf::default();
    }
    let out = match key {
        KeyBuf::Inline { bytes, len: used } => {
            *used = len;
            &mut bytes[..len]
        }
        KeyBuf::Heap(heap) => &mut heap[..],
    };
    let (prefix, hex_out) = out.split_at_mut(prefix_len);
    write_prefix(prefix);
    hex_out.copy_from_slice(hex);
}

/// The key hash, as hex, of what `fill` writes after [`KEY_ALGORITHM`] in `buf`, through
/// `recent` (the thread's recent hashes) when given.
fn hash_input(
    buf: &mut Vec<u8>,
    recent: Option<&mut RecentHashes>,
    fill: impl FnOnce(&mut HashInput<'_>) -> Result<(), KeyError>,
) -> Result<KeyHex, KeyError> {
    buf.clear();
    buf.extend_from_slice(KEY_ALGORITHM);
    let filled = fill(&mut HashInput(buf));
    let hash = match filled {
        Err(e) => Err(e),
        Ok(()) => {
            let blake3_of_buf = || {
                let mut hash = [0u8; HASH_BYTES];
                hash.copy_from_slice(&blake3::hash(buf).as_bytes()[..HASH_BYTES]);
                let mut hex = [0u8; 2 * HASH_BYTES];
                write_hex(&mut hex, &hash);
                hex
            };
            Ok(match recent {
                Some(recent) => recent.hex_of(&buf[KEY_ALGORITHM.len()..], blake3_of_buf),
                None => blake3_of_buf(),
            })
        }
    };
    // A big argument leaves a big buffer: keep at most 64 KiB for the next key.
    if buf.capacity() > 1 << 16 {
        *buf = Vec::with_capacity(256);
    }
    hash
}

/// The hash input of one key as it is written: [`KEY_ALGORITHM`], then each part as its
/// length (u64 LE) and its bytes.
pub(crate) struct HashInput<'a>(&'a mut Vec<u8>);

impl HashInput<'_> {
    /// Appends a part given as bytes.
    pub(crate) fn part(&mut self, bytes: &[u8]) {
        // Length-prefix each part so (ab, c) and (a, bc) differ.
        self.0
            .extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        self.0.extend_from_slice(bytes);
    }

    /// Appends a part that `write` encodes in place (no buffer of its own); its length is
    /// filled in after.
    pub(crate) fn part_with(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), KeyError>,
    ) -> Result<(), KeyError> {
        let at = self.0.len();
        self.0.extend_from_slice(&[0; 8]);
        write(self.0)?;
        let len = (self.0.len() - at - 8) as u64;
        self.0[at..at + 8].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }
}

/// The two lowercase hex digits of every byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        pairs[b] = [HEX[b >> 4], HEX[b & 15]];
        b += 1;
    }
    pairs
};

/// Writes the first [`HASH_BYTES`] of `hash` into `out` (2 * HASH_BYTES long) as lowercase
/// hex, one table lookup per byte (a digit-by-digit loop was a fifth of building a key).
#[inline]
fn write_hex(out: &mut [u8], hash: &KeyHash) {
    // Eight bytes at a time from a register: byte by byte, each was first spilled to the
    // stack and loaded back.
    for (half, word) in out.chunks_exact_mut(16).zip(hash.chunks_exact(8)) {
        let mut w = u64::from_le_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]);
        for pair in half.chunks_exact_mut(2) {
            pair.copy_from_slice(&HEX_PAIRS[(w & 0xff) as usize]);
            w >>= 8;
        }
    }
}

fn push_decimal(out: &mut Vec<u8>, n: u32) {
    let mut digits = [0u8; 10];
    out.extend_from_slice(decimal(&mut digits, n));
}

/// `n` in decimal, written at the end of `digits`.
fn decimal(digits: &mut [u8; 10], mut n: u32) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[i..]
}

/// The namespace part of a store key written by [`store_key`] (or of a slot's key,
/// `name@slot`), if it has that shape.
pub fn namespace_of(key: &[u8]) -> Option<&str> {
    // Most keys given to `Cache::get` are plain: refuse them on bytes before validating UTF-8
    // (a key of this shape has its last ':' exactly 33 bytes from the end, or ends in "@slot").
    let n = key.len();
    let hash_shaped = n > 2 * HASH_BYTES
        && key[n - 2 * HASH_BYTES - 1] == b':'
        && !key[n - 2 * HASH_BYTES..].contains(&b':');
    if !hash_shaped && !key.ends_with(b"@slot") {
        return None;
    }
    namespace_of_text(key)
}

/// [`namespace_of`] without the shortcut on bytes: the parse of the key as text.
fn namespace_of_text(key: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(key).ok()?;
    if let Some(slot) = text.strip_suffix("@slot") {
        return Some(slot);
    }
    let (head, hash) = text.rsplit_once(':')?;
    if hash.len() != HASH_BYTES * 2 {
        return None;
    }
    let (ns, version) = head.rsplit_once('@')?;
    version.parse::<u32>().ok()?;
    Some(ns)
}

/// Arguments could not be encoded for a key (a custom `Serialize` returned an error).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode arguments for a cache key: {0}")]
pub struct KeyError(pub(crate) String);

impl ser::Error for KeyError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        KeyError(msg.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::{BTreeMap, HashMap};

    fn key_of<T: Serialize>(ns: &str, v: u32, args: &T) -> String {
        let enc = canonical_bytes(args).unwrap();
        String::from_utf8(store_key(ns, v, &[&enc])).unwrap()
    }

    #[derive(Serialize)]
    struct Params {
        page: u32,
        query: String,
        tags: Vec<String>,
    }

    #[derive(Serialize)]
    struct ParamsReordered {
        tags: Vec<String>,
        query: String,
        page: u64,
    }

    #[derive(Serialize)]
    enum Mode {
        Fast,
        Exact { tolerance: f64 },
    }

    /// The keys below are pinned: if this test fails, every user's cache would be invalidated
    /// by the change. Only change it together with a documented key-algorithm version bump.
    #[test]
    fn keys_match_the_golden_list() {
        let params = Params {
            page: 2,
            query: "rust".into(),
            tags: vec!["a".into(), "b".into()],
        };
        let keys = [
            key_of("f", 1, &()),
            key_of("fetch_from_api", 1, &("users", &params)),
            key_of("n", 3, &(1u8, -1i64, u128::MAX)),
            key_of("f", 1, &(1.5f64, f64::NAN, "é")),
            key_of("e", 1, &(Mode::Fast, Mode::Exact { tolerance: 0.1 })),
            key_of("o", 1, &(Some(1), None::<u8>, vec![0u8; 3])),
        ];
        assert_eq!(keys, GOLDEN);
    }

    /// A key built again on the same thread comes from the thread's recent hashes
    /// (`recent.rs`): the same bytes as the golden list, built through `KeyPrefix::hashed`
    /// as a memoized call builds them, twice over.
    #[test]
    fn keys_built_again_on_one_thread_match_the_golden_list() {
        let params = Params {
            page: 2,
            query: "rust".into(),
            tags: vec!["a".into(), "b".into()],
        };
        let build = |ns: &str, v: u32, args: &dyn Fn(&mut Vec<u8>) -> Result<(), KeyError>| {
            let mut key = KeyBuf::default();
            KeyPrefix::new(ns, v)
                .hashed(&mut key, |input| input.part_with(args))
                .unwrap();
            String::from_utf8(key.into_vec()).unwrap()
        };
        for _ in 0..3 {
            let keys = [
                build("f", 1, &|out| canonical_bytes_into(&(), out)),
                build("fetch_from_api", 1, &|out| {
                    canonical_bytes_into(&("users", &params), out)
                }),
                build("n", 3, &|out| {
                    canonical_bytes_into(&(1u8, -1i64, u128::MAX), out)
                }),
                build("f", 1, &|out| {
                    canonical_bytes_into(&(1.5f64, f64::NAN, "é"), out)
                }),
                build("e", 1, &|out| {
                    canonical_bytes_into(&(Mode::Fast, Mode::Exact { tolerance: 0.1 }), out)
                }),
                build("o", 1, &|out| {
                    canonical_bytes_into(&(Some(1), None::<u8>, vec![0u8; 3]), out)
                }),
            ];
            assert_eq!(keys, GOLDEN);
        }
    }

    /// Checked against an independent Python implementation of the documented algorithm
    /// (blake3 package) for the first and third entries.
    const GOLDEN: [&str; 6] = [
        "f@1:ea3b4f53039d2a68a6471d2de9a144cb",
        "fetch_from_api@1:2f1b1b1ae4b2ac44303733afc2322ef7",
        "n@3:5e47410a0eb7a316dc76be171b57866b",
        "f@1:321341ff6dd4f395244606312df592a8",
        "e@1:9e15713f810c78658870924304c695ae",
        "o@1:c66f4498a6acf305f4b03d972efbe1eb",
    ];

    /// The shapes of the default `#[memoize]` namespaces (module path, `Self` type, type
    /// parameters), pinned like the keys above.
    #[test]
    fn default_attribute_namespaces_match_the_golden_list() {
        let keys = [
            key_of("my_crate::users::fetch", 1, &1u64),
            key_of("my_crate::api::Api::get", 1, &("/x",)),
            key_of("my_crate::parse::<u32>", 1, &"5"),
        ];
        assert_eq!(keys, DEFAULT_NAMESPACE_GOLDEN);
        for key in &keys {
            let ns = namespace_of(key.as_bytes()).unwrap();
            assert!(ns.starts_with("my_crate::"), "{ns}");
        }
    }

    const DEFAULT_NAMESPACE_GOLDEN: [&str; 3] = [
        "my_crate::users::fetch@1:af968f62da2e2064bd74dea250a54b4f",
        "my_crate::api::Api::get@1:3ddaeaa310febaeece1bbb7b17820300",
        "my_crate::parse::<u32>@1:ca8a1a774b67b600c262e0489491555a",
    ];

    #[test]
    fn struct_field_order_and_integer_width_do_not_change_keys() {
        let a = Params {
            page: 2,
            query: "q".into(),
            tags: vec![],
        };
        let b = ParamsReordered {
            tags: vec![],
            query: "q".into(),
            page: 2,
        };
        assert_eq!(key_of("f", 1, &a), key_of("f", 1, &b));
    }

    #[test]
    fn hashmap_and_btreemap_with_same_entries_hash_alike() {
        let mut h = HashMap::new();
        let mut b = BTreeMap::new();
        for i in 0..50 {
            h.insert(format!("k{i}"), i);
            b.insert(format!("k{i}"), i);
        }
        assert_eq!(key_of("m", 1, &h), key_of("m", 1, &b));
    }

    #[test]
    fn different_arguments_namespaces_and_versions_give_different_keys() {
        let keys = [
            key_of("f", 1, &(1, 2)),
            key_of("f", 1, &(2, 1)),
            key_of("f", 1, &((1, 2),)),
            key_of("f", 2, &(1, 2)),
            key_of("g", 1, &(1, 2)),
            key_of("f", 1, &("ab", "c")),
            key_of("f", 1, &("a", "bc")),
            key_of("f", 1, &(Some(()),)),
            key_of("f", 1, &(None::<()>,)),
        ];
        let set: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(set.len(), keys.len(), "{keys:?}");
    }

    #[test]
    fn skipped_positions_leave_the_key_unchanged() {
        let a = canonical_args(&("users", 7, "client-a"), &[2]).unwrap();
        let b = canonical_args(&("users", 7, "client-b"), &[2]).unwrap();
        let c = canonical_args(&("users", 8, "client-a"), &[2]).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Only the top level is skipped: nested tuples keep all their elements.
        let d = canonical_args(&(("x", 1, 2), 0), &[1]).unwrap();
        let e = canonical_args(&(("x", 1, 3), 0), &[1]).unwrap();
        assert_ne!(d, e);
    }

    #[test]
    fn ignoring_positions_of_something_not_a_tuple_is_an_error() {
        assert!(canonical_args(&7u32, &[0]).is_err());
        assert!(canonical_args(&vec![1u32, 2, 3], &[0]).is_err());
        assert!(canonical_args(&(1, 2), &[2]).is_err());
        assert!(canonical_args(&vec![1u32, 2, 3], &[]).is_ok());
    }

    /// The byte-level refusal in `namespace_of` agrees with the text parse it shortcuts.
    #[test]
    fn namespace_of_agrees_with_the_plain_text_parse_on_near_miss_keys() {
        let by_text = namespace_of_text;
        let good = store_key("ns", 3, &[b"x"]);
        let mut keys: Vec<Vec<u8>> = vec![
            good.clone(),
            b"x@slot".to_vec(),
            b"@slot".to_vec(),
            b"peers-key-000042".to_vec(),
            b":".repeat(40),
            vec![],
        ];
        for cut in 0..good.len() {
            keys.push(good[..cut].to_vec());
            keys.push(good[cut..].to_vec());
            let mut colon = good.clone();
            colon[cut] = b':';
            keys.push(colon);
            let mut bad_utf8 = good.clone();
            bad_utf8[cut] = 0xff;
            keys.push(bad_utf8);
        }
        for key in &keys {
            assert_eq!(
                namespace_of(key),
                by_text(key),
                "{:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    fn hex_of(hash: [u8; 32]) -> String {
        let mut out = [0u8; 2 * HASH_BYTES];
        let mut kept = [0u8; HASH_BYTES];
        kept.copy_from_slice(&hash[..HASH_BYTES]);
        write_hex(&mut out, &kept);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn hex_digits_match_a_digit_by_digit_encoding() {
        let mut hash = [0u8; 32];
        for round in 0..64u8 {
            for (i, b) in hash.iter_mut().enumerate() {
                *b = round
                    .wrapping_mul(37)
                    .wrapping_add((i as u8).wrapping_mul(11))
                    ^ (round << 3);
            }
            let slow: String = hash[..HASH_BYTES]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(hex_of(hash), slow);
        }
        let all: Vec<u8> = (0..=255).collect();
        for chunk in all.chunks(HASH_BYTES) {
            hash[..HASH_BYTES].copy_from_slice(chunk);
            let slow: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex_of(hash), slow);
        }
    }

    /// A `Serialize` that builds another key while its own is being built (a memoized call
    /// inside the arguments' serialization) gets the same keys as built one after the other.
    #[test]
    fn a_key_built_while_another_is_being_built_is_the_same_key() {
        struct Nested;
        impl Serialize for Nested {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut inner = KeyBuf::default();
                KeyPrefix::new("inner", 1)
                    .hashed(&mut inner, |input| {
                        input.part_with(|out| canonical_bytes_into(&7u8, out))
                    })
                    .unwrap();
                s.serialize_bytes(inner.as_slice())
            }
        }
        let mut outer = KeyBuf::default();
        KeyPrefix::new("outer", 2)
            .hashed(&mut outer, |input| {
                input.part_with(|out| canonical_args_into(&Nested, &[], out))
            })
            .unwrap();
        let inner = store_key("inner", 1, &[&canonical_bytes(&7u8).unwrap()]);
        let nested = canonical_bytes(&serde_bytes::Bytes::new(&inner)).unwrap();
        assert_eq!(outer.as_slice(), &store_key("outer", 2, &[&nested])[..]);
        // And a namespace too long to keep inline gives the same key on the heap.
        let long = "n".repeat(200);
        let key = KeyPrefix::new(&long, 1).of_parts(std::iter::once(&b"x"[..]));
        assert!(matches!(key, KeyBuf::Heap(_)));
        assert_eq!(key.into_vec(), store_key(&long, 1, &[b"x"]));
    }

    #[test]
    fn namespace_is_recovered_from_a_key() {
        let k = store_key("my@ns:x", 4, &[b"abc"]);
        assert_eq!(namespace_of(&k), Some("my@ns:x"));
        assert_eq!(namespace_of(b"not a cache key"), None);
    }
}
