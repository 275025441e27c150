//! serde's view of a loaded pickle: a [`serde::Deserializer`] over [`PyValue`].
//!
//! The mapping is serde-pickle's, which the writer also follows: `None` is unit and
//! `Option::None`; list, tuple, set and frozenset are sequences; dict is a map; bytes and
//! bytearray are byte strings; an enum is `'Variant'`, `{'Variant': data}` or the older
//! `('Variant', data)`. Integers are exact: an int is offered as `i64` when it fits, else
//! `u64`, else `i128`/`u128`, so each Rust integer type takes every value it can hold.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::load::uncalled;
use super::value::{PyInt, PyValue};

/// A decoding error: serde's own wording (`invalid type: ..., expected ...`) or ours.
#[derive(Debug)]
pub(super) struct Error(pub(super) String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

impl serde::ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

impl From<crate::error::BoxError> for Error {
    fn from(error: crate::error::BoxError) -> Self {
        Error(error.to_string())
    }
}

type Result<T> = std::result::Result<T, Error>;

fn visit_int<'de, V: Visitor<'de>>(int: PyInt, visitor: V) -> Result<V::Value> {
    match int {
        PyInt::I(v) => {
            if let Ok(v) = i64::try_from(v) {
                visitor.visit_i64(v)
            } else if let Ok(v) = u64::try_from(v) {
                visitor.visit_u64(v)
            } else {
                visitor.visit_i128(v)
            }
        }
        PyInt::U(v) => visitor.visit_u128(v),
    }
}

impl<'de> de::Deserializer<'de> for PyValue {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            PyValue::None => visitor.visit_unit(),
            PyValue::Bool(b) => visitor.visit_bool(b),
            PyValue::Int(int) => visit_int(int, visitor),
            PyValue::Float(f) => visitor.visit_f64(f),
            PyValue::NaN(bits) => visitor.visit_f64(f64::from_bits(*bits)),
            PyValue::Str(text) => visitor.visit_str(&text),
            PyValue::Bytes(bytes) | PyValue::ByteArray(bytes) => visitor.visit_bytes(&bytes),
            PyValue::List(items) => {
                let items = items.borrow().clone();
                visitor.visit_seq(de::value::SeqDeserializer::new(items.into_iter()))
            }
            PyValue::Tuple(items) | PyValue::FrozenSet(items) => {
                visitor.visit_seq(de::value::SeqDeserializer::new(items.iter().cloned()))
            }
            PyValue::Set(set) => {
                let items = set.borrow().items.clone();
                visitor.visit_seq(de::value::SeqDeserializer::new(items.into_iter()))
            }
            PyValue::Dict(dict) => {
                let entries = dict.borrow().entries.clone();
                visitor.visit_map(de::value::MapDeserializer::new(entries.into_iter()))
            }
            PyValue::Global(global) => Err(uncalled(global).into()),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            PyValue::None => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let (variant, data) = match self {
            PyValue::Str(_) => (self, None),
            PyValue::Dict(dict) => {
                let dict = dict.borrow();
                match dict.entries.as_slice() {
                    [(variant, data)] => (variant.clone(), Some(data.clone())),
                    _ => return Err(Error("enum variants must have one dict entry".to_owned())),
                }
            }
            PyValue::Tuple(items) => match &*items {
                [variant] => (variant.clone(), None),
                [variant, data] => (variant.clone(), Some(data.clone())),
                _ => {
                    return Err(Error(
                        "an enum as a tuple must be ('Variant',) or ('Variant', data)".to_owned(),
                    ))
                }
            },
            other => {
                return Err(Error(format!(
                    "an enum must be a str, a one-entry dict or a tuple, not a '{}'",
                    other.type_name()
                )))
            }
        };
        visitor.visit_enum(Enum { variant, data })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

impl<'de> IntoDeserializer<'de, Error> for PyValue {
    type Deserializer = PyValue;

    fn into_deserializer(self) -> PyValue {
        self
    }
}

struct Enum {
    variant: PyValue,
    data: Option<PyValue>,
}

impl<'de> de::EnumAccess<'de> for Enum {
    type Error = Error;
    type Variant = Variant;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Variant)> {
        let variant = seed.deserialize(self.variant)?;
        Ok((variant, Variant(self.data)))
    }
}

struct Variant(Option<PyValue>);

impl Variant {
    fn data(self) -> Result<PyValue> {
        self.0
            .ok_or_else(|| Error("the enum variant has no data".to_owned()))
    }
}

impl<'de> de::VariantAccess<'de> for Variant {
    type Error = Error;

    fn unit_variant(self) -> Result<()> {
        match self.0 {
            None | Some(PyValue::None) => Ok(()),
            Some(other) => Err(Error(format!(
                "a unit variant holds a '{}'",
                other.type_name()
            ))),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self.data()?)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_any(self.data()?, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_any(self.data()?, visitor)
    }
}
