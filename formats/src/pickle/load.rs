//! The reader: runs the opcode stream as CPython's unpickler does, building [`PyValue`]s.
//! Runs only after the pre-scan accepted the stream, so nesting and expansion are bounded;
//! it still checks every step and errs rather than panics.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::globals;
use super::ops::{malformed, refused, Op, Ops};
use super::text;
use super::value::{check_hashable, Dict, Global, PyInt, PyValue, Set};
use crate::error::BoxError;

/// CPython's `pickle.HIGHEST_PROTOCOL`.
const HIGHEST_PROTOCOL: u8 = 5;

struct Machine {
    stack: Vec<PyValue>,
    marks: Vec<usize>,
    memo: HashMap<u64, PyValue>,
    /// Set by `PROTO`; 0 when the stream has none (decides Python 2 name mapping).
    proto: u8,
    /// What calls may still build (items or bytes): a call copies or splits its argument
    /// (`list(s)` of a shared 1 MB str, `bytes(b)` of shared bytes), which the pre-scan
    /// counts as one value, so repeating it through the memo is bounded here.
    call_budget: u64,
}

impl Machine {
    fn push(&mut self, value: PyValue) {
        self.stack.push(value);
    }

    fn pop(&mut self) -> Result<PyValue, BoxError> {
        if self.marks.last() == Some(&self.stack.len()) {
            return Err(malformed("pop across a mark"));
        }
        self.stack.pop().ok_or_else(|| malformed("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<PyValue>, BoxError> {
        let at = self.marks.pop().ok_or_else(|| malformed("no mark"))?;
        Ok(self.stack.split_off(at.min(self.stack.len())))
    }

    fn top(&self) -> Result<&PyValue, BoxError> {
        if self.marks.last() == Some(&self.stack.len()) {
            return Err(malformed("no item above the mark"));
        }
        self.stack.last().ok_or_else(|| malformed("empty stack"))
    }

    fn append(&mut self, items: Vec<PyValue>) -> Result<(), BoxError> {
        match self.top()? {
            PyValue::List(list) => {
                list.borrow_mut().extend(items);
                Ok(())
            }
            other => Err(not_a(other, "list", "APPEND")),
        }
    }

    fn set_items(&mut self, items: Vec<PyValue>) -> Result<(), BoxError> {
        if !items.len().is_multiple_of(2) {
            return Err(malformed("SETITEMS with an odd number of items"));
        }
        match self.top()? {
            PyValue::Dict(dict) => {
                let mut dict = dict.borrow_mut();
                let mut items = items.into_iter();
                while let (Some(key), Some(value)) = (items.next(), items.next()) {
                    dict.insert(key, value);
                }
                Ok(())
            }
            other => Err(not_a(other, "dict", "SETITEM")),
        }
    }

    fn add_items(&mut self, items: Vec<PyValue>) -> Result<(), BoxError> {
        items.iter().try_for_each(check_hashable)?;
        match self.top()? {
            PyValue::Set(set) => {
                let mut set = set.borrow_mut();
                for item in items {
                    set.add(item);
                }
                Ok(())
            }
            other => Err(not_a(other, "set", "ADDITEMS")),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), BoxError> {
        // CPython maps Python 2 names only for protocols 0-2 (`fix_imports`, from
        // `_compat_pickle`): Python 3 itself writes `int` as `__builtin__.long` there.
        let (module, name) = match (module, name) {
            ("__builtin__", "long") if self.proto < 3 => ("builtins", "int"),
            ("__builtin__", name) if self.proto < 3 => ("builtins", name),
            other => other,
        };
        let global = match (module, name) {
            ("builtins", "set") => Global::Set,
            ("builtins", "frozenset") => Global::FrozenSet,
            ("builtins", "list") => Global::List,
            ("builtins", "bytearray") => Global::ByteArray,
            ("builtins", "bytes") => Global::Bytes,
            ("builtins", "int") => Global::Int,
            ("_codecs", "encode") => Global::CodecsEncode,
            _ => {
                return Err(format!(
                    "pickle references global {module}.{name}, which CPython cannot import \
                     under protocol {} or which is not plain data",
                    self.proto
                )
                .into())
            }
        };
        self.push(PyValue::Global(global));
        Ok(())
    }
}

fn not_a(value: &PyValue, wanted: &str, op: &str) -> BoxError {
    format!(
        "pickle uses {op} on a '{}', not a {wanted}; only plain data is read",
        value.type_name()
    )
    .into()
}

fn text_of(value: &PyValue) -> Option<&str> {
    match value {
        PyValue::Str(text) => Some(text),
        _ => None,
    }
}

/// Runs `input` to its `STOP` and returns the value, refusing trailing bytes.
pub(super) fn load(input: &[u8]) -> Result<PyValue, BoxError> {
    let mut ops = Ops::new(input);
    let mut m = Machine {
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        proto: 0,
        call_budget: call_limit(input),
    };
    loop {
        let at = ops.pos();
        match ops.next_op()? {
            Op::Stop => {
                let value = m.pop()?;
                if ops.pos() != input.len() {
                    return Err(format!(
                        "{} trailing bytes after the pickle's STOP",
                        input.len() - ops.pos()
                    )
                    .into());
                }
                if let PyValue::Global(global) = value {
                    return Err(uncalled(global));
                }
                return Ok(value);
            }
            Op::Mark => m.marks.push(m.stack.len()),
            Op::Pop => {
                if m.marks.last() == Some(&m.stack.len()) {
                    m.marks.pop();
                } else {
                    m.pop()?;
                }
            }
            Op::PopMark => {
                m.pop_mark()?;
            }
            Op::Dup => {
                let top = m.top()?.clone();
                m.push(top);
            }
            Op::FloatLine(line) => m.push(PyValue::float(text::float(line)?)),
            Op::IntLine(line) => m.push(text::int_line(line)?),
            Op::LongLine(line) => m.push(PyValue::Int(text::long_line(line)?)),
            Op::StringLine(line) => m.push(text::py2_str(&text::unquote(line)?)?),
            Op::UnicodeLine(line) => m.push(PyValue::Str(Rc::from(
                text::raw_unicode_escape(line)?.as_str(),
            ))),
            Op::BinInt(v) => m.push(PyValue::Int(PyInt::from_i128(v.into()))),
            Op::BinInt1(v) => m.push(PyValue::Int(PyInt::from_i128(v.into()))),
            Op::BinInt2(v) => m.push(PyValue::Int(PyInt::from_i128(v.into()))),
            Op::BinFloat(v) => m.push(PyValue::float(v)),
            Op::Long(bytes) => m.push(PyValue::Int(PyInt::from_le_twos_complement(bytes)?)),
            Op::None => m.push(PyValue::None),
            Op::Bool(b) => m.push(PyValue::Bool(b)),
            Op::BinString(bytes) => m.push(text::py2_str(bytes)?),
            Op::Bytes(bytes) => m.push(PyValue::Bytes(Rc::from(bytes))),
            Op::ByteArray(bytes) => m.push(PyValue::ByteArray(Rc::from(bytes))),
            Op::Unicode(bytes) => m.push(PyValue::Str(Rc::from(text::utf8(bytes)?))),
            Op::Append => {
                let item = m.pop()?;
                m.append(vec![item])?;
            }
            Op::Appends => {
                let items = m.pop_mark()?;
                m.append(items)?;
            }
            Op::SetItem => {
                let value = m.pop()?;
                let key = m.pop()?;
                m.set_items(vec![key, value])?;
            }
            Op::SetItems => {
                let items = m.pop_mark()?;
                m.set_items(items)?;
            }
            Op::AddItems => {
                let items = m.pop_mark()?;
                m.add_items(items)?;
            }
            Op::Dict => {
                let items = m.pop_mark()?;
                m.push(PyValue::Dict(Rc::default()));
                m.set_items(items)?;
            }
            Op::List => {
                let items = m.pop_mark()?;
                m.push(PyValue::List(Rc::new(RefCell::new(items))));
            }
            Op::Tuple => {
                let items = m.pop_mark()?;
                m.push(PyValue::Tuple(Rc::from(items)));
            }
            Op::FrozenSet => {
                let items = m.pop_mark()?;
                items.iter().try_for_each(check_hashable)?;
                m.push(PyValue::FrozenSet(Rc::from(Set::from_items(items).items)));
            }
            Op::EmptyDict => m.push(PyValue::Dict(Rc::new(RefCell::new(Dict::default())))),
            Op::EmptyList => m.push(PyValue::List(Rc::default())),
            Op::EmptyTuple => m.push(PyValue::Tuple(Rc::from(Vec::new()))),
            Op::EmptySet => m.push(PyValue::Set(Rc::default())),
            Op::TupleN(n) => {
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(m.pop()?);
                }
                items.reverse();
                m.push(PyValue::Tuple(Rc::from(items)));
            }
            Op::Global(module, name) => {
                let module = std::str::from_utf8(module).map_err(|_| malformed("global name"))?;
                let name = std::str::from_utf8(name).map_err(|_| malformed("global name"))?;
                m.global(module, name)?;
            }
            Op::StackGlobal => {
                let name = m.pop()?;
                let module = m.pop()?;
                match (text_of(&module), text_of(&name)) {
                    (Some(module), Some(name)) => m.global(module, name)?,
                    _ => return Err(malformed("STACK_GLOBAL requires str")),
                }
            }
            Op::Reduce => {
                let args = m.pop()?;
                let callable = m.pop()?;
                let PyValue::Global(global) = callable else {
                    return Err(format!(
                        "pickle calls a '{}' object, which is not callable",
                        callable.type_name()
                    )
                    .into());
                };
                let PyValue::Tuple(args) = args else {
                    return Err(format!(
                        "pickle calls {} with a '{}' as its argument list, not a tuple",
                        global.name(),
                        args.type_name()
                    )
                    .into());
                };
                let value = globals::call(global, &args)
                    .map_err(|e| -> BoxError { format!("{}(...): {e}", global.name()).into() })?;
                let cost = match &value {
                    PyValue::List(items) => items.borrow().len(),
                    PyValue::Set(set) => set.borrow().items.len(),
                    PyValue::FrozenSet(items) => items.len(),
                    PyValue::Bytes(bytes) | PyValue::ByteArray(bytes) => bytes.len(),
                    _ => 1,
                } as u64;
                m.call_budget = m.call_budget.checked_sub(cost).ok_or_else(|| {
                    format!(
                        "pickle expands to more than {} values or bytes through calls on shared values",
                        call_limit(input)
                    )
                })?;
                m.push(value);
            }
            Op::Put(id) => {
                let top = m.top()?.clone();
                m.memo.insert(id, top);
            }
            Op::Memoize => {
                let top = m.top()?.clone();
                let id = m.memo.len() as u64;
                m.memo.insert(id, top);
            }
            Op::Get(id) => {
                let value =
                    m.memo.get(&id).cloned().ok_or_else(|| {
                        malformed(format!("memo {id} read before it was written"))
                    })?;
                m.push(value);
            }
            Op::Proto(proto) => {
                if proto > HIGHEST_PROTOCOL {
                    return Err(format!("unsupported pickle protocol: {proto}").into());
                }
                m.proto = proto;
            }
            Op::Frame => {}
            Op::Refused(name) => return Err(refused(name, at)),
        }
    }
}

/// What all calls together may build: a pickle Python writes spends at least a byte of input
/// per item or byte its calls build (each call gets its own argument).
fn call_limit(input: &[u8]) -> u64 {
    (input.len() as u64).saturating_mul(2) + (1 << 20)
}

/// A global that is the pickle's value (or inside it) rather than called.
pub(super) fn uncalled(global: Global) -> BoxError {
    format!(
        "pickle holds the global {} itself rather than a value built by calling it",
        global.name()
    )
    .into()
}
