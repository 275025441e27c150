//! The `raw` format: the value *is* the bytes, with no framing and no serde data model.
//!
//! What it accepts on encode:
//! - byte strings (`serde_bytes::Bytes`/`ByteBuf`, `bytes::Bytes`, anything that calls
//!   `serialize_bytes`): copied as they are;
//! - sequences of `u8` (`Vec<u8>`, `[u8; N]`, `&[u8]` without `serde_bytes`): copied byte by
//!   byte, which is correct but slower — prefer [`Pipeline::encode_bytes`] /
//!   [`Pipeline::encode_value_bytes`], which skip serde entirely;
//! - `str`/`String`: their UTF-8 bytes.
//!
//! Anything else (numbers, maps, structs, options, enums, a sequence holding a non-`u8`) is
//! an [`Error::Encode`](crate::Error::Encode) saying the raw format holds bytes only.
//!
//! On decode the payload is offered as a borrowed byte string, so `ByteBuf`, `Vec<u8>` (as a
//! sequence of `u8`) and `String` (when the bytes are UTF-8) can be read; other types get
//! serde's "invalid type: byte array" error. [`Pipeline::decode_bytes`] and
//! [`Registry::decode_value_bytes`](crate::Registry::decode_value_bytes) lend the bytes
//! without any copy.
//!
//! [`Pipeline::encode_bytes`]: crate::Pipeline::encode_bytes
//! [`Pipeline::encode_value_bytes`]: crate::Pipeline::encode_value_bytes
//! [`Pipeline::decode_bytes`]: crate::Pipeline::decode_bytes

use std::borrow::Cow;
use std::fmt;

use serde::de::value::SeqDeserializer;
use serde::ser::{self, Impossible, Serialize};

use crate::error::BoxError;
use crate::format::{DecodeSink, Format};

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), BoxError> {
    value.serialize(BytesSerializer { out })?;
    Ok(())
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, BoxError> {
    Ok(T::deserialize(BytesDeserializer(bytes))?)
}

// The erased `Format::decode` below is the same one call through erased-serde: the raw format
// has no framing to check after the value, so there is no shared body to factor out.

/// Bytes in, bytes out: no framing, no serde data model.
#[derive(Debug, Default, Clone, Copy)]
pub struct Raw;

impl Format for Raw {
    fn encode(
        &self,
        value: &dyn erased_serde::Serialize,
        out: &mut Vec<u8>,
    ) -> Result<(), BoxError> {
        encode(value, out)
    }

    fn decode(&self, bytes: &[u8], sink: &mut DecodeSink<'_>) -> Result<(), BoxError> {
        sink(&mut <dyn erased_serde::Deserializer>::erase(
            BytesDeserializer(bytes),
        ))?;
        Ok(())
    }

    fn encode_bytes(&self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), BoxError> {
        out.extend_from_slice(bytes);
        Ok(())
    }

    fn decode_bytes<'a>(&self, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, BoxError> {
        Ok(Cow::Borrowed(bytes))
    }
}

/// The error of the raw serializer: the value was not bytes.
#[derive(Debug)]
pub struct NotBytes(String);

impl fmt::Display for NotBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotBytes {}

impl ser::Error for NotBytes {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        NotBytes(msg.to_string())
    }
}

fn not_bytes<T>(what: &str) -> Result<T, NotBytes> {
    Err(NotBytes(format!(
        "the raw format holds bytes only, got {what}; use serde_bytes or Pipeline::encode_bytes for bytes, or another format (cbor, json) for structured values"
    )))
}

struct BytesSerializer<'o> {
    out: &'o mut Vec<u8>,
}

macro_rules! reject {
    ($($method:ident($($arg:ty),*) -> $ok:ty = $what:literal;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ok, NotBytes> { not_bytes($what) })*
    };
}

impl<'o> ser::Serializer for BytesSerializer<'o> {
    type Ok = ();
    type Error = NotBytes;
    type SerializeSeq = ByteSeq<'o>;
    type SerializeTuple = ByteSeq<'o>;
    type SerializeTupleStruct = Impossible<(), NotBytes>;
    type SerializeTupleVariant = Impossible<(), NotBytes>;
    type SerializeMap = Impossible<(), NotBytes>;
    type SerializeStruct = Impossible<(), NotBytes>;
    type SerializeStructVariant = Impossible<(), NotBytes>;

    fn serialize_bytes(self, v: &[u8]) -> Result<(), NotBytes> {
        self.out.extend_from_slice(v);
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), NotBytes> {
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<ByteSeq<'o>, NotBytes> {
        self.out.reserve(len.unwrap_or(0));
        Ok(ByteSeq { out: self.out })
    }

    fn serialize_tuple(self, len: usize) -> Result<ByteSeq<'o>, NotBytes> {
        self.serialize_seq(Some(len))
    }

    reject! {
        serialize_bool(bool) -> () = "a bool";
        serialize_i8(i8) -> () = "an integer";
        serialize_i16(i16) -> () = "an integer";
        serialize_i32(i32) -> () = "an integer";
        serialize_i64(i64) -> () = "an integer";
        serialize_u8(u8) -> () = "a lone u8 (not in a sequence)";
        serialize_u16(u16) -> () = "an integer";
        serialize_u32(u32) -> () = "an integer";
        serialize_u64(u64) -> () = "an integer";
        serialize_f32(f32) -> () = "a float";
        serialize_f64(f64) -> () = "a float";
        serialize_char(char) -> () = "a char";
        serialize_none() -> () = "an Option";
        serialize_unit() -> () = "a unit";
        serialize_unit_struct(&'static str) -> () = "a unit struct";
        serialize_unit_variant(&'static str, u32, &'static str) -> () = "an enum";
        serialize_tuple_struct(&'static str, usize) -> Impossible<(), NotBytes> = "a tuple struct";
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Impossible<(), NotBytes> = "an enum";
        serialize_map(Option<usize>) -> Impossible<(), NotBytes> = "a map";
        serialize_struct(&'static str, usize) -> Impossible<(), NotBytes> = "a struct";
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Impossible<(), NotBytes> = "an enum";
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), NotBytes> {
        not_bytes("an Option")
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), NotBytes> {
        // A newtype around bytes is still bytes.
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), NotBytes> {
        not_bytes("an enum")
    }
}

/// Collects a sequence whose every element is a `u8`.
struct ByteSeq<'o> {
    out: &'o mut Vec<u8>,
}

impl ByteSeq<'_> {
    fn push<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), NotBytes> {
        let byte = value.serialize(OneByte)?;
        self.out.push(byte);
        Ok(())
    }
}

impl ser::SerializeSeq for ByteSeq<'_> {
    type Ok = ();
    type Error = NotBytes;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), NotBytes> {
        self.push(value)
    }
    fn end(self) -> Result<(), NotBytes> {
        Ok(())
    }
}

impl ser::SerializeTuple for ByteSeq<'_> {
    type Ok = ();
    type Error = NotBytes;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), NotBytes> {
        self.push(value)
    }
    fn end(self) -> Result<(), NotBytes> {
        Ok(())
    }
}

/// Accepts exactly one `u8`: the element serializer of [`ByteSeq`].
struct OneByte;

macro_rules! reject_element {
    ($($method:ident($($arg:ty),*) -> $ok:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ok, NotBytes> {
            not_bytes("a sequence with an element that is not a u8")
        })*
    };
}

impl ser::Serializer for OneByte {
    type Ok = u8;
    type Error = NotBytes;
    type SerializeSeq = Impossible<u8, NotBytes>;
    type SerializeTuple = Impossible<u8, NotBytes>;
    type SerializeTupleStruct = Impossible<u8, NotBytes>;
    type SerializeTupleVariant = Impossible<u8, NotBytes>;
    type SerializeMap = Impossible<u8, NotBytes>;
    type SerializeStruct = Impossible<u8, NotBytes>;
    type SerializeStructVariant = Impossible<u8, NotBytes>;

    fn serialize_u8(self, v: u8) -> Result<u8, NotBytes> {
        Ok(v)
    }

    reject_element! {
        serialize_bool(bool) -> u8;
        serialize_i8(i8) -> u8;
        serialize_i16(i16) -> u8;
        serialize_i32(i32) -> u8;
        serialize_i64(i64) -> u8;
        serialize_u16(u16) -> u8;
        serialize_u32(u32) -> u8;
        serialize_u64(u64) -> u8;
        serialize_f32(f32) -> u8;
        serialize_f64(f64) -> u8;
        serialize_char(char) -> u8;
        serialize_str(&str) -> u8;
        serialize_bytes(&[u8]) -> u8;
        serialize_none() -> u8;
        serialize_unit() -> u8;
        serialize_unit_struct(&'static str) -> u8;
        serialize_unit_variant(&'static str, u32, &'static str) -> u8;
        serialize_seq(Option<usize>) -> Impossible<u8, NotBytes>;
        serialize_tuple(usize) -> Impossible<u8, NotBytes>;
        serialize_tuple_struct(&'static str, usize) -> Impossible<u8, NotBytes>;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Impossible<u8, NotBytes>;
        serialize_map(Option<usize>) -> Impossible<u8, NotBytes>;
        serialize_struct(&'static str, usize) -> Impossible<u8, NotBytes>;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Impossible<u8, NotBytes>;
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<u8, NotBytes> {
        not_bytes("a sequence with an element that is not a u8")
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<u8, NotBytes> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<u8, NotBytes> {
        not_bytes("a sequence with an element that is not a u8")
    }
}

/// Offers the payload as one borrowed byte string (or, to `Vec<u8>`, a sequence of `u8`).
struct BytesDeserializer<'de>(&'de [u8]);

impl<'de> serde::Deserializer<'de> for BytesDeserializer<'de> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_borrowed_bytes(self.0)
    }

    fn deserialize_seq<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let mut seq = SeqDeserializer::new(self.0.iter().copied());
        let value = visitor.visit_seq(&mut seq)?;
        seq.end()?;
        Ok(value)
    }

    fn deserialize_tuple<V: serde::de::Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct tuple_struct
        map struct enum identifier ignored_any
    }
}
