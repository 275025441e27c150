//! The opcode pre-scan: walks a pickle without building anything and refuses whatever is
//! not plain data, or would nest too deep or expand too far once serde-pickle builds it.

use std::collections::HashMap;
use std::rc::Rc;

use super::graph::{Graph, Node};
use crate::error::BoxError;

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

#[derive(Clone)]
struct Item {
    node: Node,
    /// Whether serde-pickle holds this item as a memo reference (pushed by a memo get, or
    /// memoized), which it resolves by copying in some opcodes.
    is_ref: bool,
    /// The text of a pushed unicode string, kept so `STACK_GLOBAL` can check its arguments.
    text: Option<Rc<str>>,
}

impl Item {
    fn leaf() -> Self {
        Item {
            node: Node::Leaf,
            is_ref: false,
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
    graph: Graph,
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

    fn push_container(&mut self, children: &[Item]) -> Result<(), BoxError> {
        let node = self.graph.container()?;
        if let Node::Container(id) = node {
            for child in children {
                self.graph.add(id, child.node);
            }
        }
        self.stack.push(Item {
            node,
            ..Item::leaf()
        });
        Ok(())
    }

    fn add_to_top(&mut self, children: &[Item]) -> Result<(), BoxError> {
        let Node::Container(id) = self.top()?.node else {
            return Err(malformed(
                "items added to something that is not a container",
            ));
        };
        for child in children {
            self.graph.add(id, child.node);
        }
        Ok(())
    }

    /// `DUP`: serde-pickle pushes a copy of the top value, not a reference to it.
    fn dup(&mut self) -> Result<(), BoxError> {
        let top = self.top()?.clone();
        let node = self.graph.copy_of(top.node)?;
        self.stack.push(Item {
            node,
            is_ref: false,
            ..top
        });
        Ok(())
    }

    fn memo_put(&mut self, id: u64) -> Result<(), BoxError> {
        let mut top = self.pop()?;
        if top.is_ref {
            // Memoizing a memo reference stores a copy of the value.
            top.node = self.graph.copy_of(top.node)?;
        }
        top.is_ref = true;
        self.memo.insert(id, top.clone());
        self.stack.push(top);
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
pub(super) fn check_plain_data(input: &[u8]) -> Result<(), BoxError> {
    let mut w = Walker {
        input,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        graph: Graph::default(),
    };
    let value_limit = (input.len() as u64).saturating_mul(16) + (1 << 20);
    loop {
        let at = w.pos;
        let op = *w.take(1)?.first().ok_or_else(|| malformed("empty"))?;
        match op {
            b'.' => return w.graph.check(MAX_DEPTH, value_limit), // STOP
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
            b'2' => w.dup()?,
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
