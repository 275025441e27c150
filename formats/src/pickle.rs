//! The `pickle` format: Python's pickle protocol for plain data, through `serde-pickle`.
//!
//! **Writing** uses pickle protocol 3 (`SerOptions::new()`), which every Python 3 reads with
//! `pickle.loads`. Byte strings (`serde_bytes`) become `bytes`, strings become `str`, maps
//! become `dict`, sequences `list`, tuples `tuple`, `None`/unit `None`, enums the serde
//! external tagging (`'Variant'` or `{'Variant': data}`). Integers beyond `i64` are written as
//! Python longs.
//!
//! **Reading** accepts protocols 0–5 as Python 3 writes them for plain data: dict, list,
//! tuple, set, frozenset, str, bytes, bytearray, int, float, bool, None, nested. Nothing is
//! ever executed — serde-pickle is a Rust interpreter of the opcode stream — but serde-pickle
//! on its own *silently* turns an instance of an arbitrary class into its state dict. This
//! module first walks the opcodes and refuses, with a clear [`Error::Decode`]:
//! - any global other than the few plain-data constructors (`builtins.set`, `frozenset`,
//!   `list`, `bytearray`, `int` and `_codecs.encode`, which Python uses for `bytes` under
//!   protocols 0–2): e.g. `pickle references global os.system`;
//! - the opcodes that build arbitrary objects or reach outside the stream (`INST`, `OBJ`,
//!   `NEWOBJ`, `NEWOBJ_EX`, `BUILD`, `PERSID`, `BINPERSID`, `EXT1/2/4`, out-of-band buffers);
//! - nesting deeper than 128 levels, and memo references that would expand the value past
//!   `16 × input length + 1 Mi` nodes (a "billion laughs" pickle), which would otherwise
//!   exhaust the stack or memory.
//!
//! Known limits of serde-pickle: integers that do not fit `i64` cannot be read back into Rust
//! integer types (they are written fine); recursive structures are refused; empty `bytes`
//! pickled by Python under protocol 0–2 (`builtins.bytes()`) is refused.
//!
//! [`Error::Decode`]: crate::Error::Decode

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::BoxError;
use crate::format::{DecodeSink, Format};

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
    Ok(serde_pickle::to_writer(
        out,
        &value,
        serde_pickle::SerOptions::new(),
    )?)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BoxError> {
    decode_with(bytes, |de| Ok(T::deserialize(de)?))
}

/// The one decode body, shared by the typed path and the erased [`Format::decode`]: the
/// opcode pre-scan, then `read`, then the end-of-stream check.
fn decode_with<R>(
    bytes: &[u8],
    read: impl FnOnce(&mut serde_pickle::Deserializer<&[u8]>) -> Result<R, BoxError>,
) -> Result<R, BoxError> {
    check_plain_data(bytes)?;
    let mut de = serde_pickle::Deserializer::new(bytes, serde_pickle::DeOptions::new());
    let value = read(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Python pickle for plain data through `serde-pickle`; loading never executes code and
/// refuses anything that is not plain data.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pickle;

impl Format for Pickle {
    fn encode(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), BoxError> {
        encode(value, out)
    }

    fn decode(&self, bytes: &[u8], sink: &mut DecodeSink<'_>) -> Result<(), BoxError> {
        decode_with(bytes, |de| {
            Ok(sink(&mut <dyn erased_serde::Deserializer>::erase(de))?)
        })
    }
}

/// Deepest nesting accepted (serde_json's default limit is the same).
const MAX_DEPTH: u32 = 128;

/// Globals Python 3 emits for plain data, and that serde-pickle knows how to rebuild.
fn is_allowed_global(module: &str, name: &str) -> bool {
    matches!(
        (module, name),
        (
            "builtins" | "__builtin__",
            "set" | "frozenset" | "list" | "bytearray" | "int"
        ) | ("_codecs", "encode")
    )
}

/// Depth and expanded size of one (possibly shared, through the memo) stack item.
#[derive(Default)]
struct Shape {
    depth: Cell<u32>,
    nodes: Cell<u64>,
}

#[derive(Clone)]
struct Item {
    shape: Rc<Shape>,
    /// The text of a pushed unicode string, kept so `STACK_GLOBAL` can check its arguments.
    text: Option<Rc<str>>,
}

impl Item {
    fn leaf() -> Self {
        Item {
            shape: Rc::new(Shape {
                depth: Cell::new(0),
                nodes: Cell::new(1),
            }),
            text: None,
        }
    }

    fn text(bytes: &[u8]) -> Self {
        Item {
            text: Some(Rc::from(String::from_utf8_lossy(bytes).as_ref())),
            ..Item::leaf()
        }
    }
}

struct Walker<'a> {
    input: &'a [u8],
    pos: usize,
    stack: Vec<Item>,
    marks: Vec<usize>,
    memo: HashMap<u64, Item>,
    node_limit: u64,
}

fn malformed(what: impl std::fmt::Display) -> BoxError {
    format!("malformed pickle: {what}").into()
}

impl<'a> Walker<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], BoxError> {
        let n = usize::try_from(n).map_err(|_| malformed("length out of range"))?;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.input.len())
            .ok_or_else(|| malformed(format!("truncated at offset {}", self.pos)))?;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn line(&mut self) -> Result<&'a [u8], BoxError> {
        let rest = &self.input[self.pos..];
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| malformed("unterminated line argument"))?;
        self.pos += len + 1;
        Ok(&rest[..len])
    }

    fn uint(&mut self, width: usize) -> Result<u64, BoxError> {
        let bytes = self.take(width as u64)?;
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(bytes);
        Ok(u64::from_le_bytes(le))
    }

    fn signed_len4(&mut self) -> Result<u64, BoxError> {
        let raw = self.uint(4)? as u32 as i32;
        u64::try_from(raw).map_err(|_| malformed("negative length"))
    }

    fn pop(&mut self) -> Result<Item, BoxError> {
        if self.marks.last() == Some(&self.stack.len()) {
            return Err(malformed("pop across a mark"));
        }
        self.stack.pop().ok_or_else(|| malformed("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Item>, BoxError> {
        let at = self.marks.pop().ok_or_else(|| malformed("no mark"))?;
        Ok(self.stack.split_off(at.min(self.stack.len())))
    }

    fn top(&self) -> Result<&Item, BoxError> {
        if self.marks.last() == Some(&self.stack.len()) {
            return Err(malformed("no item above the mark"));
        }
        self.stack.last().ok_or_else(|| malformed("empty stack"))
    }

    /// Records that `children` now sit inside `container`, checking depth and size.
    fn absorb(&self, container: &Shape, children: &[Item]) -> Result<(), BoxError> {
        for child in children {
            let depth = container.depth.get().max(child.shape.depth.get() + 1);
            if depth > MAX_DEPTH {
                return Err(format!("pickle nests deeper than {MAX_DEPTH} levels").into());
            }
            container.depth.set(depth);
            let nodes = container
                .nodes
                .get()
                .saturating_add(child.shape.nodes.get());
            if nodes > self.node_limit {
                return Err(format!(
                    "pickle expands to more than {} values through memo references",
                    self.node_limit
                )
                .into());
            }
            container.nodes.set(nodes);
        }
        Ok(())
    }

    fn push_container(&mut self, children: &[Item]) -> Result<(), BoxError> {
        let item = Item::leaf();
        item.shape.depth.set(1);
        self.absorb(&item.shape, children)?;
        self.stack.push(item);
        Ok(())
    }

    fn add_to_top(&mut self, children: &[Item]) -> Result<(), BoxError> {
        let top = self.top()?.shape.clone();
        self.absorb(&top, children)
    }

    fn memo_put(&mut self, id: u64) -> Result<(), BoxError> {
        let top = self.top()?.clone();
        self.memo.insert(id, top);
        Ok(())
    }

    fn memo_get(&mut self, id: u64) -> Result<(), BoxError> {
        let item = self
            .memo
            .get(&id)
            .cloned()
            .ok_or_else(|| malformed(format!("memo {id} read before it was written")))?;
        self.stack.push(item);
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), BoxError> {
        if !is_allowed_global(module, name) {
            return Err(format!(
                "pickle references global {module}.{name}; only plain data (dict, list, tuple, set, str, bytes, int, float, bool, None) is read"
            )
            .into());
        }
        self.stack.push(Item::leaf());
        Ok(())
    }

    fn ascii_id(bytes: &[u8]) -> Result<u64, BoxError> {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| malformed("bad memo id"))
    }
}

/// Walks the opcode stream without building anything, refusing whatever is not plain data.
/// Argument layouts follow CPython's `pickletools`.
fn check_plain_data(input: &[u8]) -> Result<(), BoxError> {
    let mut w = Walker {
        input,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        node_limit: (input.len() as u64).saturating_mul(16) + (1 << 20),
    };
    loop {
        let at = w.pos;
        let op = *w.take(1)?.first().ok_or_else(|| malformed("empty"))?;
        match op {
            b'.' => return Ok(()), // STOP
            b'(' => w.marks.push(w.stack.len()),
            b'0' => {
                // POP also discards a bare mark.
                if w.marks.last() == Some(&w.stack.len()) {
                    w.marks.pop();
                } else {
                    w.pop()?;
                }
            }
            b'1' => {
                w.pop_mark()?;
            }
            b'2' => {
                let top = w.top()?.clone();
                w.stack.push(top);
            }
            // Scalars with a line argument: FLOAT, INT, LONG, STRING.
            b'F' | b'I' | b'L' | b'S' => {
                w.line()?;
                w.stack.push(Item::leaf());
            }
            b'V' => {
                let text = w.line()?;
                w.stack.push(Item::text(text));
            }
            b'J' => {
                w.take(4)?;
                w.stack.push(Item::leaf());
            }
            b'K' => {
                w.take(1)?;
                w.stack.push(Item::leaf());
            }
            b'M' => {
                w.take(2)?;
                w.stack.push(Item::leaf());
            }
            b'G' => {
                w.take(8)?;
                w.stack.push(Item::leaf());
            }
            b'N' | 0x88 | 0x89 => w.stack.push(Item::leaf()), // NONE, NEWTRUE, NEWFALSE
            // Length-prefixed scalars: BINSTRING, LONG4 (signed 4); SHORT_BINSTRING,
            // SHORT_BINBYTES, LONG1 (1); BINBYTES (4); BINBYTES8, BYTEARRAY8 (8).
            b'T' | 0x8b => {
                let n = w.signed_len4()?;
                w.take(n)?;
                w.stack.push(Item::leaf());
            }
            b'U' | b'C' | 0x8a => {
                let n = w.uint(1)?;
                w.take(n)?;
                w.stack.push(Item::leaf());
            }
            b'B' => {
                let n = w.uint(4)?;
                w.take(n)?;
                w.stack.push(Item::leaf());
            }
            0x8e | 0x96 => {
                let n = w.uint(8)?;
                w.take(n)?;
                w.stack.push(Item::leaf());
            }
            // Unicode strings: BINUNICODE (4), SHORT_BINUNICODE (1), BINUNICODE8 (8).
            b'X' | 0x8c | 0x8d => {
                let width = match op {
                    b'X' => 4,
                    0x8c => 1,
                    _ => 8,
                };
                let n = w.uint(width)?;
                let text = w.take(n)?;
                w.stack.push(Item::text(text));
            }
            b'a' => {
                let item = w.pop()?;
                w.add_to_top(&[item])?;
            }
            b'e' | b'u' | 0x90 => {
                // APPENDS, SETITEMS, ADDITEMS
                let items = w.pop_mark()?;
                w.add_to_top(&items)?;
            }
            b's' => {
                let value = w.pop()?;
                let key = w.pop()?;
                w.add_to_top(&[key, value])?;
            }
            b'd' | b'l' | b't' | 0x91 => {
                // DICT, LIST, TUPLE, FROZENSET
                let items = w.pop_mark()?;
                w.push_container(&items)?;
            }
            b'}' | b']' | b')' | 0x8f => w.push_container(&[])?, // EMPTY_DICT/LIST/TUPLE/SET
            0x85..=0x87 => {
                // TUPLE1, TUPLE2, TUPLE3
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(w.pop()?);
                }
                w.push_container(&items)?;
            }
            b'c' => {
                let module = String::from_utf8_lossy(w.line()?).into_owned();
                let name = String::from_utf8_lossy(w.line()?).into_owned();
                w.global(&module, &name)?;
            }
            0x93 => {
                // STACK_GLOBAL: module and name are the two strings on top of the stack.
                let name = w.pop()?.text;
                let module = w.pop()?.text;
                match (module, name) {
                    (Some(module), Some(name)) => w.global(&module, &name)?,
                    _ => return Err(malformed("STACK_GLOBAL without string arguments")),
                }
            }
            b'R' => {
                let args = w.pop()?;
                w.pop()?;
                w.push_container(&[args])?;
            }
            b'p' => {
                let id = Walker::ascii_id(w.line()?)?;
                w.memo_put(id)?;
            }
            b'q' => {
                let id = w.uint(1)?;
                w.memo_put(id)?;
            }
            b'r' => {
                let id = w.uint(4)?;
                w.memo_put(id)?;
            }
            0x94 => {
                let id = w.memo.len() as u64;
                w.memo_put(id)?;
            }
            b'g' => {
                let id = Walker::ascii_id(w.line()?)?;
                w.memo_get(id)?;
            }
            b'h' => {
                let id = w.uint(1)?;
                w.memo_get(id)?;
            }
            b'j' => {
                let id = w.uint(4)?;
                w.memo_get(id)?;
            }
            0x80 => {
                w.take(1)?; // PROTO
            }
            0x95 => {
                w.take(8)?; // FRAME: a length hint; the opcodes inside follow as usual
            }
            b'i' | b'o' | 0x81 | 0x92 | b'b' | b'P' | b'Q' | 0x82..=0x84 | 0x97 | 0x98 => {
                let name = match op {
                    b'i' => "INST",
                    b'o' => "OBJ",
                    0x81 => "NEWOBJ",
                    0x92 => "NEWOBJ_EX",
                    b'b' => "BUILD",
                    b'P' => "PERSID",
                    b'Q' => "BINPERSID",
                    0x82..=0x84 => "EXT",
                    _ => "out-of-band buffer",
                };
                return Err(format!(
                    "pickle uses opcode {name} at offset {at}, which builds an arbitrary object; only plain data (dict, list, tuple, set, str, bytes, int, float, bool, None) is read"
                )
                .into());
            }
            other => {
                return Err(malformed(format!(
                    "unknown opcode 0x{other:02x} at offset {at}"
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<serde_json::Value, String> {
        let mut out = None;
        Pickle
            .decode(bytes, &mut |de| {
                out = Some(erased_serde::deserialize::<serde_json::Value>(de)?);
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        Ok(out.unwrap())
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused_before_decoding() {
        let mut bytes = b"\x80\x02".to_vec();
        bytes.extend(std::iter::repeat_n(b']', 200));
        bytes.extend(std::iter::repeat_n(b'a', 199));
        bytes.push(b'.');
        let err = decode(&bytes).unwrap_err();
        assert!(err.contains("deeper than 128"), "{err}");

        let mut ok = b"\x80\x02".to_vec();
        ok.extend(std::iter::repeat_n(b']', 100));
        ok.extend(std::iter::repeat_n(b'a', 99));
        ok.push(b'.');
        assert!(decode(&ok).is_ok());
    }

    #[test]
    fn memo_expansion_bombs_are_refused() {
        // L0 = []; Li = [L(i-1), L(i-1)]: 2^40 values from ~250 bytes.
        let mut bytes = b"\x80\x02]q\x00".to_vec();
        for i in 1u8..=40 {
            bytes.extend_from_slice(&[b'(', b'h', i - 1, b'h', i - 1, b'l', b'q', i]);
        }
        bytes.push(b'.');
        let err = decode(&bytes).unwrap_err();
        assert!(err.contains("expands to more than"), "{err}");
    }

    #[test]
    fn shared_strings_through_the_memo_are_fine() {
        // ["k", "k"] with the second one a memo reference, as Python writes repeated keys.
        let bytes = b"\x80\x02](X\x01\x00\x00\x00kq\x01h\x01e.";
        assert_eq!(decode(bytes).unwrap(), serde_json::json!(["k", "k"]));
    }

    #[test]
    fn truncated_and_unknown_opcodes_are_malformed() {
        for bytes in [
            &b"\x80\x02X\xff\xff"[..],
            b"\x80\x02\xff.",
            b"\x80\x02]",
            b"a.",
        ] {
            let err = decode(bytes).unwrap_err();
            assert!(err.contains("malformed pickle"), "{bytes:?}: {err}");
        }
    }
}
