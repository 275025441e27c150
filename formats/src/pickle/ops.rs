//! The pickle opcode stream, one opcode and its argument at a time. Shared by the pre-scan
//! and the reader, so both see the same stream. Argument layouts follow CPython's
//! `pickletools`.

use crate::error::BoxError;

pub(super) fn malformed(what: impl std::fmt::Display) -> BoxError {
    format!("malformed pickle: {what}").into()
}

/// One opcode with its raw argument.
#[derive(Debug, Clone, Copy)]
pub(super) enum Op<'a> {
    Stop,
    Mark,
    Pop,
    PopMark,
    Dup,
    /// `FLOAT`: decimal text.
    FloatLine(&'a [u8]),
    /// `INT`: decimal text (`01`/`00` are protocol 0's True/False).
    IntLine(&'a [u8]),
    /// `LONG`: decimal text with an optional `L`.
    LongLine(&'a [u8]),
    /// `STRING`: a quoted Python 2 `str` literal.
    StringLine(&'a [u8]),
    /// `UNICODE`: raw-unicode-escape text.
    UnicodeLine(&'a [u8]),
    BinInt(i32),
    BinInt1(u8),
    BinInt2(u16),
    BinFloat(f64),
    /// `LONG1`/`LONG4`: little-endian two's complement.
    Long(&'a [u8]),
    None,
    Bool(bool),
    /// `BINSTRING`/`SHORT_BINSTRING`: Python 2 `str` bytes.
    BinString(&'a [u8]),
    Bytes(&'a [u8]),
    ByteArray(&'a [u8]),
    /// `BINUNICODE*`: UTF-8 (CPython allows lone surrogates).
    Unicode(&'a [u8]),
    Append,
    Appends,
    SetItem,
    SetItems,
    AddItems,
    Dict,
    List,
    Tuple,
    FrozenSet,
    EmptyDict,
    EmptyList,
    EmptyTuple,
    EmptySet,
    /// `TUPLE1`..`TUPLE3`.
    TupleN(usize),
    /// `GLOBAL`: module and name lines.
    Global(&'a [u8], &'a [u8]),
    StackGlobal,
    Reduce,
    Put(u64),
    Memoize,
    Get(u64),
    Proto(u8),
    Frame,
    /// An opcode that builds an arbitrary object or reaches outside the stream.
    Refused(&'static str),
}

/// Reads opcodes from a pickle.
pub(super) struct Ops<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Ops<'a> {
    pub(super) fn new(input: &'a [u8]) -> Self {
        Ops { input, pos: 0 }
    }

    /// Offset of the next opcode.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

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

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BoxError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
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
        let raw = i32::from_le_bytes(self.array()?);
        u64::try_from(raw).map_err(|_| malformed("negative length"))
    }

    fn prefixed(&mut self, width: usize) -> Result<&'a [u8], BoxError> {
        let n = self.uint(width)?;
        self.take(n)
    }

    fn ascii_id(bytes: &[u8]) -> Result<u64, BoxError> {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| malformed("bad memo id"))
    }

    /// The next opcode.
    #[expect(
        clippy::big_endian_bytes,
        reason = "pickle's BINFLOAT is big-endian by definition"
    )]
    pub(super) fn next_op(&mut self) -> Result<Op<'a>, BoxError> {
        let at = self.pos;
        let op = *self.take(1)?.first().ok_or_else(|| malformed("empty"))?;
        Ok(match op {
            b'.' => Op::Stop,
            b'(' => Op::Mark,
            b'0' => Op::Pop,
            b'1' => Op::PopMark,
            b'2' => Op::Dup,
            b'F' => Op::FloatLine(self.line()?),
            b'I' => Op::IntLine(self.line()?),
            b'L' => Op::LongLine(self.line()?),
            b'S' => Op::StringLine(self.line()?),
            b'V' => Op::UnicodeLine(self.line()?),
            b'J' => Op::BinInt(i32::from_le_bytes(self.array()?)),
            b'K' => Op::BinInt1(self.array::<1>()?[0]),
            b'M' => Op::BinInt2(u16::from_le_bytes(self.array()?)),
            b'G' => Op::BinFloat(f64::from_be_bytes(self.array()?)),
            b'N' => Op::None,
            0x88 => Op::Bool(true),
            0x89 => Op::Bool(false),
            b'T' => {
                let n = self.signed_len4()?;
                Op::BinString(self.take(n)?)
            }
            b'U' => Op::BinString(self.prefixed(1)?),
            0x8b => {
                let n = self.signed_len4()?;
                Op::Long(self.take(n)?)
            }
            0x8a => Op::Long(self.prefixed(1)?),
            b'C' => Op::Bytes(self.prefixed(1)?),
            b'B' => Op::Bytes(self.prefixed(4)?),
            0x8e => Op::Bytes(self.prefixed(8)?),
            0x96 => Op::ByteArray(self.prefixed(8)?),
            b'X' => Op::Unicode(self.prefixed(4)?),
            0x8c => Op::Unicode(self.prefixed(1)?),
            0x8d => Op::Unicode(self.prefixed(8)?),
            b'a' => Op::Append,
            b'e' => Op::Appends,
            b's' => Op::SetItem,
            b'u' => Op::SetItems,
            0x90 => Op::AddItems,
            b'd' => Op::Dict,
            b'l' => Op::List,
            b't' => Op::Tuple,
            0x91 => Op::FrozenSet,
            b'}' => Op::EmptyDict,
            b']' => Op::EmptyList,
            b')' => Op::EmptyTuple,
            0x8f => Op::EmptySet,
            0x85..=0x87 => Op::TupleN(usize::from(op - 0x84)),
            b'c' => {
                let module = self.line()?;
                Op::Global(module, self.line()?)
            }
            0x93 => Op::StackGlobal,
            b'R' => Op::Reduce,
            b'p' => Op::Put(Self::ascii_id(self.line()?)?),
            b'q' => Op::Put(self.uint(1)?),
            b'r' => Op::Put(self.uint(4)?),
            0x94 => Op::Memoize,
            b'g' => Op::Get(Self::ascii_id(self.line()?)?),
            b'h' => Op::Get(self.uint(1)?),
            b'j' => Op::Get(self.uint(4)?),
            0x80 => Op::Proto(self.array::<1>()?[0]),
            0x95 => {
                self.take(8)?; // FRAME: a length hint; the opcodes inside follow as usual
                Op::Frame
            }
            b'i' => Op::Refused("INST"),
            b'o' => Op::Refused("OBJ"),
            0x81 => Op::Refused("NEWOBJ"),
            0x92 => Op::Refused("NEWOBJ_EX"),
            b'b' => Op::Refused("BUILD"),
            b'P' => Op::Refused("PERSID"),
            b'Q' => Op::Refused("BINPERSID"),
            0x82..=0x84 => Op::Refused("EXT"),
            0x97 | 0x98 => Op::Refused("out-of-band buffer"),
            other => {
                return Err(malformed(format!(
                    "unknown opcode 0x{other:02x} at offset {at}"
                )))
            }
        })
    }
}

/// The error for [`Op::Refused`].
pub(super) fn refused(name: &str, at: usize) -> BoxError {
    format!(
        "pickle uses opcode {name} at offset {at}, which builds an arbitrary object; only plain data (dict, list, tuple, set, str, bytes, int, float, bool, None) is read"
    )
    .into()
}
