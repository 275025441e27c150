//! The opcode pre-scan: walks a pickle without building anything and refuses whatever is
//! not plain data, or would nest too deep or expand too far once it is built and serde
//! walks it.
//!
//! The model is the reader's (and CPython's): `DUP` and the memo hold references to one
//! object, so growth through any of them is growth of that object, seen by every reference
//! (the model copied them while serde-pickle, which copied, did the reading).

use std::collections::HashMap;
use std::rc::Rc;

use super::graph::{Graph, Node};
use super::ops::{malformed, refused, Op, Ops};
use crate::error::BoxError;

/// Deepest nesting accepted (serde_json's default limit is the same).
const MAX_DEPTH: u32 = 128;

/// Globals Python emits for plain data, which the reader rebuilds (`load` also checks that
/// Python 2 names appear only where CPython maps them).
fn is_allowed_global(module: &str, name: &str) -> bool {
    matches!(
        (module, name),
        (
            "builtins" | "__builtin__",
            "set" | "frozenset" | "list" | "bytearray" | "bytes" | "int"
        ) | ("__builtin__", "long")
            | ("_codecs", "encode")
    )
}

#[derive(Clone)]
struct Item {
    node: Node,
    /// The text of a pushed unicode string, kept so `STACK_GLOBAL` can check its arguments.
    text: Option<Rc<str>>,
}

impl Item {
    fn leaf() -> Self {
        Item {
            node: Node::Leaf,
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

struct Walker {
    stack: Vec<Item>,
    marks: Vec<usize>,
    memo: HashMap<u64, Item>,
    graph: Graph,
}

impl Walker {
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

    /// `DUP`: the same object twice, as CPython holds it (appending to one fills both).
    fn dup(&mut self) -> Result<(), BoxError> {
        let top = self.top()?.clone();
        self.stack.push(top);
        Ok(())
    }

    /// Memoizing stores a reference to the top object, as CPython does.
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
}

/// Walks the opcode stream without building anything, refusing whatever is not plain data.
pub(super) fn check_plain_data(input: &[u8]) -> Result<(), BoxError> {
    let mut ops = Ops::new(input);
    let mut w = Walker {
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        graph: Graph::default(),
    };
    let value_limit = (input.len() as u64).saturating_mul(16) + (1 << 20);
    loop {
        let at = ops.pos();
        match ops.next_op()? {
            Op::Stop => return w.graph.check(MAX_DEPTH, value_limit),
            Op::Mark => w.marks.push(w.stack.len()),
            Op::Pop => {
                // POP also discards a bare mark.
                if w.marks.last() == Some(&w.stack.len()) {
                    w.marks.pop();
                } else {
                    w.pop()?;
                }
            }
            Op::PopMark => {
                w.pop_mark()?;
            }
            Op::Dup => w.dup()?,
            Op::UnicodeLine(text) | Op::Unicode(text) => w.stack.push(Item::text(text)),
            Op::FloatLine(_)
            | Op::IntLine(_)
            | Op::LongLine(_)
            | Op::StringLine(_)
            | Op::BinInt(_)
            | Op::BinInt1(_)
            | Op::BinInt2(_)
            | Op::BinFloat(_)
            | Op::Long(_)
            | Op::None
            | Op::Bool(_)
            | Op::BinString(_)
            | Op::Bytes(_)
            | Op::ByteArray(_) => w.stack.push(Item::leaf()),
            Op::Append => {
                let item = w.pop()?;
                w.add_to_top(&[item])?;
            }
            Op::Appends | Op::SetItems | Op::AddItems => {
                let items = w.pop_mark()?;
                w.add_to_top(&items)?;
            }
            Op::SetItem => {
                let value = w.pop()?;
                let key = w.pop()?;
                w.add_to_top(&[key, value])?;
            }
            Op::Dict | Op::List | Op::Tuple | Op::FrozenSet => {
                let items = w.pop_mark()?;
                w.push_container(&items)?;
            }
            Op::EmptyDict | Op::EmptyList | Op::EmptyTuple | Op::EmptySet => {
                w.push_container(&[])?
            }
            Op::TupleN(n) => {
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(w.pop()?);
                }
                w.push_container(&items)?;
            }
            Op::Global(module, name) => {
                let module = String::from_utf8_lossy(module).into_owned();
                let name = String::from_utf8_lossy(name).into_owned();
                w.global(&module, &name)?;
            }
            Op::StackGlobal => {
                // STACK_GLOBAL: module and name are the two strings on top of the stack.
                let name = w.pop()?.text;
                let module = w.pop()?.text;
                match (module, name) {
                    (Some(module), Some(name)) => w.global(&module, &name)?,
                    _ => return Err(malformed("STACK_GLOBAL without string arguments")),
                }
            }
            Op::Reduce => {
                let args = w.pop()?;
                w.pop()?;
                w.push_container(&[args])?;
            }
            Op::Put(id) => w.memo_put(id)?,
            Op::Memoize => {
                let id = w.memo.len() as u64;
                w.memo_put(id)?;
            }
            Op::Get(id) => w.memo_get(id)?,
            Op::Proto(_) | Op::Frame => {}
            Op::Refused(name) => return Err(refused(name, at)),
        }
    }
}
