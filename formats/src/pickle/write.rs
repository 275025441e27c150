//! The writer: serde values to pickle protocol 3, byte for byte as serde-pickle 1.2 wrote
//! them (so existing entries and golden files keep their bytes), plus what serde-pickle
//! could not write: `i128`/`u128` (as `LONG1`, which every Python 3 reads as an exact
//! `int`), and strings or byte strings over 4 GiB are refused instead of having their length
//! truncated.

use serde::ser::{self, Serialize};

use super::de::Error;

type Result<T> = std::result::Result<T, Error>;

// Opcodes, named as in CPython's pickletools.
const MARK: u8 = b'(';
const STOP: u8 = b'.';
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const NONE: u8 = b'N';
const BINUNICODE: u8 = b'X';
const APPENDS: u8 = b'e';
const BINFLOAT: u8 = b'G';
const EMPTY_DICT: u8 = b'}';
const EMPTY_LIST: u8 = b']';
const EMPTY_TUPLE: u8 = b')';
const SETITEM: u8 = b's';
const SETITEMS: u8 = b'u';
const TUPLE: u8 = b't';
const PROTO: u8 = 0x80;
const NEWTRUE: u8 = 0x88;
const NEWFALSE: u8 = 0x89;
const LONG1: u8 = 0x8a;
const SHORT_BINBYTES: u8 = b'C';
const BINBYTES: u8 = b'B';

/// Items per `APPENDS`/`SETITEMS` batch, as Python's pickler batches them.
const BATCH: usize = 1000;

/// Writes `value` as a protocol-3 pickle to `out`.
pub(super) fn to_vec<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    out.extend_from_slice(&[PROTO, 3]);
    value.serialize(&mut Writer { out: &mut *out })?;
    out.push(STOP);
    Ok(())
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn op(&mut self, op: u8) {
        self.out.push(op);
    }

    fn binint(&mut self, value: i32) {
        self.op(BININT);
        self.out.extend_from_slice(&value.to_le_bytes());
    }

    /// `LONG1` with `bytes` as they are (little-endian two's complement).
    fn long1(&mut self, bytes: &[u8]) {
        self.op(LONG1);
        self.out.push(bytes.len() as u8);
        self.out.extend_from_slice(bytes);
    }

    fn len32(len: usize, what: &str) -> Result<u32> {
        u32::try_from(len).map_err(|_| {
            Error(format!(
                "a {what} of {len} bytes is longer than protocol 3 allows (4 GiB)"
            ))
        })
    }
}

/// A sequence, tuple, map or struct being written; `batched` counts items since the last
/// `MARK` (`None` when no mark was written).
struct Compound<'w, 'a> {
    w: &'w mut Writer<'a>,
    batched: Option<usize>,
}

impl Compound<'_, '_> {
    fn counted(&mut self, flush: u8) {
        if let Some(n) = self.batched.as_mut() {
            *n += 1;
            if *n == BATCH {
                self.w.op(flush);
                self.w.op(MARK);
                *n = 0;
            }
        }
    }

    /// Serializes one item of a counted collection (a list element, a dict value): after
    /// every [`BATCH`] items, `flush` and a new `MARK` keep the pickle's stack short.
    fn item<T: Serialize + ?Sized>(&mut self, value: &T, flush: u8) -> Result<()> {
        value.serialize(&mut *self.w)?;
        self.counted(flush);
        Ok(())
    }

    /// Closes a collection opened with a `MARK`: `op` takes the items since it.
    fn close(self, op: u8) -> Result<()> {
        if self.batched.is_some() {
            self.w.op(op);
        }
        Ok(())
    }
}

impl<'w, 'a> ser::Serializer for &'w mut Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'w, 'a>;
    type SerializeTuple = Compound<'w, 'a>;
    type SerializeTupleStruct = Compound<'w, 'a>;
    type SerializeTupleVariant = Compound<'w, 'a>;
    type SerializeMap = Compound<'w, 'a>;
    type SerializeStruct = Compound<'w, 'a>;
    type SerializeStructVariant = Compound<'w, 'a>;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.op(if v { NEWTRUE } else { NEWFALSE });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<()> {
        if v > 0 {
            self.op(BININT1);
            self.out.push(v as u8);
        } else {
            self.binint(v.into());
        }
        Ok(())
    }

    fn serialize_i16(self, v: i16) -> Result<()> {
        if v > 0 {
            self.op(BININT2);
            self.out.extend_from_slice(&v.to_le_bytes());
        } else {
            self.binint(v.into());
        }
        Ok(())
    }

    fn serialize_i32(self, v: i32) -> Result<()> {
        self.binint(v);
        Ok(())
    }

    fn serialize_i64(self, v: i64) -> Result<()> {
        match i32::try_from(v) {
            Ok(v) => self.binint(v),
            Err(_) => self.long1(&v.to_le_bytes()),
        }
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<()> {
        match i64::try_from(v) {
            Ok(v) => self.serialize_i64(v),
            Err(_) => {
                self.long1(&v.to_le_bytes());
                Ok(())
            }
        }
    }

    fn serialize_u8(self, v: u8) -> Result<()> {
        self.op(BININT1);
        self.out.push(v);
        Ok(())
    }

    fn serialize_u16(self, v: u16) -> Result<()> {
        self.op(BININT2);
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_u32(self, v: u32) -> Result<()> {
        match i32::try_from(v) {
            Ok(v) => self.binint(v),
            // A zero byte on top keeps the value unsigned.
            Err(_) => self.long1(&[&v.to_le_bytes()[..], &[0]].concat()),
        }
        Ok(())
    }

    fn serialize_u64(self, v: u64) -> Result<()> {
        match i32::try_from(v) {
            Ok(v) => self.binint(v),
            Err(_) => self.long1(&[&v.to_le_bytes()[..], &[0]].concat()),
        }
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<()> {
        match u64::try_from(v) {
            Ok(v) => self.serialize_u64(v),
            Err(_) => {
                self.long1(&[&v.to_le_bytes()[..], &[0]].concat());
                Ok(())
            }
        }
    }

    fn serialize_f32(self, v: f32) -> Result<()> {
        self.serialize_f64(v.into())
    }

    #[expect(
        clippy::big_endian_bytes,
        reason = "pickle's BINFLOAT is big-endian by definition"
    )]
    fn serialize_f64(self, v: f64) -> Result<()> {
        self.op(BINFLOAT);
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<()> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, v: &str) -> Result<()> {
        let len = Writer::len32(v.len(), "string")?;
        self.op(BINUNICODE);
        self.out.extend_from_slice(&len.to_le_bytes());
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        match u8::try_from(v.len()) {
            Ok(len) => {
                self.op(SHORT_BINBYTES);
                self.out.push(len);
            }
            Err(_) => {
                let len = Writer::len32(v.len(), "byte string")?;
                self.op(BINBYTES);
                self.out.extend_from_slice(&len.to_le_bytes());
            }
        }
        self.out.extend_from_slice(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<()> {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<()> {
        self.op(NONE);
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<()> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<()> {
        self.op(EMPTY_DICT);
        self.serialize_str(variant)?;
        value.serialize(&mut *self)?;
        self.op(SETITEM);
        Ok(())
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Compound<'w, 'a>> {
        self.op(EMPTY_LIST);
        let batched = if len == Some(0) {
            None
        } else {
            self.op(MARK);
            Some(0)
        };
        Ok(Compound { w: self, batched })
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'w, 'a>> {
        let batched = if len == 0 {
            self.op(EMPTY_TUPLE);
            None
        } else {
            self.op(MARK);
            Some(0)
        };
        Ok(Compound { w: self, batched })
    }

    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Compound<'w, 'a>> {
        self.serialize_tuple(len)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'w, 'a>> {
        self.op(EMPTY_DICT);
        self.serialize_str(variant)?;
        self.op(EMPTY_LIST);
        self.op(MARK);
        Ok(Compound {
            w: self,
            batched: None,
        })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Compound<'w, 'a>> {
        self.op(EMPTY_DICT);
        let batched = if len == Some(0) {
            None
        } else {
            self.op(MARK);
            Some(0)
        };
        Ok(Compound { w: self, batched })
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'w, 'a>> {
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Compound<'w, 'a>> {
        self.op(EMPTY_DICT);
        self.serialize_str(variant)?;
        self.serialize_map(Some(len))
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.item(value, APPENDS)
    }

    fn end(self) -> Result<()> {
        self.close(APPENDS)
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut *self.w)
    }

    fn end(self) -> Result<()> {
        self.close(TUPLE)
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        ser::SerializeTuple::serialize_element(self, value)
    }

    fn end(self) -> Result<()> {
        ser::SerializeTuple::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        value.serialize(&mut *self.w)
    }

    fn end(self) -> Result<()> {
        self.w.op(APPENDS);
        self.w.op(SETITEM);
        Ok(())
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        key.serialize(&mut *self.w)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.item(value, SETITEMS)
    }

    fn end(self) -> Result<()> {
        self.close(SETITEMS)
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        ser::SerializeMap::serialize_key(self, key)?;
        ser::SerializeMap::serialize_value(self, value)
    }

    fn end(self) -> Result<()> {
        ser::SerializeMap::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        ser::SerializeMap::serialize_key(self, key)?;
        ser::SerializeMap::serialize_value(self, value)
    }

    fn end(self) -> Result<()> {
        if self.batched.is_some() {
            self.w.op(SETITEMS);
        }
        self.w.op(SETITEM);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    /// serde-pickle 1.2's bytes for `value`, which entries written before this writer hold.
    fn serde_pickle_bytes<T: Serialize>(value: &T) -> Vec<u8> {
        serde_pickle::to_vec(value, serde_pickle::SerOptions::new()).unwrap()
    }

    fn ours<T: Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        super::to_vec(value, &mut out).unwrap();
        out
    }

    #[derive(Serialize)]
    enum Shape {
        Unit,
        Newtype(i8),
        Tuple(i16, char),
        Empty(),
        Struct { a: Option<f32>, b: () },
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Doc {
        ints: (i8, i8, i8, i16, i16, i16, i32, i64, i64),
        uints: (u8, u16, u32, u32, u64, u64, u64),
        shapes: Vec<Shape>,
        unit: Unit,
        bytes: Vec<serde_bytes::ByteBuf>,
        lens: Vec<Vec<u8>>,
        map: BTreeMap<String, Vec<bool>>,
        big_map: BTreeMap<u32, ()>,
        empty: (Vec<u8>, BTreeMap<u8, u8>, ()),
        text: (String, char, f64),
    }

    #[test]
    fn writes_the_bytes_serde_pickle_wrote() {
        let doc = Doc {
            ints: (
                i8::MIN,
                0,
                i8::MAX,
                i16::MIN,
                0,
                i16::MAX,
                i32::MIN,
                i64::MIN,
                1 << 31,
            ),
            uints: (
                u8::MAX,
                u16::MAX,
                (1 << 31) - 1,
                1 << 31,
                u64::MAX,
                0,
                1 << 40,
            ),
            shapes: vec![
                Shape::Unit,
                Shape::Newtype(-1),
                Shape::Tuple(7, 'é'),
                Shape::Empty(),
                Shape::Struct {
                    a: Some(1.5),
                    b: (),
                },
                Shape::Struct { a: None, b: () },
            ],
            unit: Unit,
            bytes: [0, 1, 255, 256, 70_000]
                .iter()
                .map(|&n| serde_bytes::ByteBuf::from(vec![7u8; n]))
                .collect(),
            lens: [0, 1, 999, 1000, 1001, 2500]
                .iter()
                .map(|&n| vec![1u8; n])
                .collect(),
            map: [("a".to_owned(), vec![true, false]), ("".to_owned(), vec![])]
                .into_iter()
                .collect(),
            big_map: (0..2345).map(|i| (i, ())).collect(),
            empty: (Vec::new(), BTreeMap::new(), ()),
            text: ("h\u{e9} \u{1F600}".to_owned(), '\u{2603}', -0.0),
        };
        assert_eq!(ours(&doc), serde_pickle_bytes(&doc));
    }
}
