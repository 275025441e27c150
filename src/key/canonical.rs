//! The canonical encoding of the key module's docs: a serde `Serializer` that writes one tag
//! byte per value, sorts map entries, and never depends on a third-party format.

use serde::ser::{self, Serialize};

use super::{canonical_bytes, KeyError};

pub(super) struct Canonical<'a> {
    pub(super) out: &'a mut Vec<u8>,
    /// Top-level tuple positions to leave out; consumed by the first tuple/seq met.
    pub(super) skip: &'a [usize],
}

impl Canonical<'_> {
    #[inline]
    fn tag(&mut self, t: u8) {
        self.out.push(t);
    }
    #[inline]
    fn len(&mut self, n: usize) {
        self.out.extend_from_slice(&(n as u64).to_le_bytes());
    }
    #[inline]
    fn str(&mut self, s: &str) {
        self.tag(0x04);
        self.len(s.len());
        self.out.extend_from_slice(s.as_bytes());
    }
    #[inline]
    fn int(&mut self, v: i128) {
        self.tag(0x02);
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    fn nested(&mut self) -> Canonical<'_> {
        Canonical {
            out: self.out,
            skip: &[],
        }
    }
}

/// The error of an ignored position `bad` past a tuple of `len`: out of the inlined path.
#[cold]
fn ignored_past_the_end(bad: usize, len: usize) -> KeyError {
    KeyError(format!(
        "argument position {bad} is ignored, but there are only {len} arguments"
    ))
}

/// Collects a sequence; `skip` drops top-level positions.
pub(super) struct SeqState<'a, 'b> {
    enc: &'b mut Canonical<'a>,
    index: usize,
    skip: &'a [usize],
}

impl SeqState<'_, '_> {
    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        let i = self.index;
        self.index += 1;
        if self.skip.contains(&i) {
            return Ok(());
        }
        value.serialize(&mut self.enc.nested())
    }
    #[inline]
    fn end(self) -> Result<(), KeyError> {
        self.enc.tag(0x0D);
        Ok(())
    }
}

/// Collects map entries, then writes them sorted by encoded key.
pub(super) struct MapState<'a, 'b> {
    enc: &'b mut Canonical<'a>,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    pending_key: Option<Vec<u8>>,
}

impl MapState<'_, '_> {
    #[inline]
    fn entry(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.entries.push((key, value));
    }
    #[inline]
    fn end(mut self) -> Result<(), KeyError> {
        self.entries.sort();
        self.enc.tag(0x0E);
        self.enc.len(self.entries.len());
        for (k, v) in &self.entries {
            self.enc.out.extend_from_slice(k);
            self.enc.out.extend_from_slice(v);
        }
        self.enc.tag(0x0F);
        Ok(())
    }
}

impl<'a, 'b> ser::Serializer for &'b mut Canonical<'a> {
    type Ok = ();
    type Error = KeyError;
    type SerializeSeq = SeqState<'a, 'b>;
    type SerializeTuple = SeqState<'a, 'b>;
    type SerializeTupleStruct = SeqState<'a, 'b>;
    type SerializeTupleVariant = SeqState<'a, 'b>;
    type SerializeMap = MapState<'a, 'b>;
    type SerializeStruct = MapState<'a, 'b>;
    type SerializeStructVariant = MapState<'a, 'b>;

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), KeyError> {
        self.tag(0x01);
        self.tag(v as u8);
        Ok(())
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), KeyError> {
        self.int(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), KeyError> {
        self.int(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), KeyError> {
        self.int(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), KeyError> {
        self.int(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_i128(self, v: i128) -> Result<(), KeyError> {
        self.int(v);
        Ok(())
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), KeyError> {
        self.int(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), KeyError> {
        self.int(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), KeyError> {
        self.int(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), KeyError> {
        self.int(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_u128(self, v: u128) -> Result<(), KeyError> {
        match i128::try_from(v) {
            Ok(i) => self.int(i),
            Err(_) => {
                self.tag(0x12);
                self.out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Ok(())
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> Result<(), KeyError> {
        self.serialize_f64(v.into())
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Result<(), KeyError> {
        let bits = if v.is_nan() {
            0x7ff8_0000_0000_0000
        } else {
            v.to_bits()
        };
        self.tag(0x03);
        self.out.extend_from_slice(&bits.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_char(self, v: char) -> Result<(), KeyError> {
        self.str(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), KeyError> {
        self.str(v);
        Ok(())
    }
    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), KeyError> {
        self.tag(0x05);
        self.len(v.len());
        self.out.extend_from_slice(v);
        Ok(())
    }
    #[inline]
    fn serialize_none(self) -> Result<(), KeyError> {
        self.tag(0x06);
        Ok(())
    }
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), KeyError> {
        self.tag(0x07);
        value.serialize(&mut self.nested())
    }
    #[inline]
    fn serialize_unit(self) -> Result<(), KeyError> {
        self.tag(0x08);
        Ok(())
    }
    #[inline]
    fn serialize_unit_struct(self, name: &'static str) -> Result<(), KeyError> {
        self.tag(0x09);
        self.str(name);
        Ok(())
    }
    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), KeyError> {
        self.tag(0x0A);
        self.str(variant);
        Ok(())
    }
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        value.serialize(self)
    }
    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.tag(0x0A);
        self.str(variant);
        value.serialize(&mut self.nested())
    }
    #[inline]
    fn serialize_seq(self, _len: Option<usize>) -> Result<SeqState<'a, 'b>, KeyError> {
        self.tag(0x0C);
        Ok(SeqState {
            enc: self,
            index: 0,
            skip: &[],
        })
    }
    #[inline]
    fn serialize_tuple(self, len: usize) -> Result<SeqState<'a, 'b>, KeyError> {
        // Only the argument tuple itself has positions to ignore.
        let skip = std::mem::take(&mut self.skip);
        if let Some(&bad) = skip.iter().find(|&&i| i >= len) {
            return Err(ignored_past_the_end(bad, len));
        }
        self.tag(0x0C);
        Ok(SeqState {
            enc: self,
            index: 0,
            skip,
        })
    }
    #[inline]
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqState<'a, 'b>, KeyError> {
        self.serialize_seq(Some(len))
    }
    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqState<'a, 'b>, KeyError> {
        self.tag(0x0A);
        self.str(variant);
        self.serialize_seq(Some(len))
    }
    #[inline]
    fn serialize_map(self, _len: Option<usize>) -> Result<MapState<'a, 'b>, KeyError> {
        Ok(MapState {
            enc: self,
            entries: Vec::new(),
            pending_key: None,
        })
    }
    #[inline]
    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<MapState<'a, 'b>, KeyError> {
        self.serialize_map(Some(len))
    }
    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<MapState<'a, 'b>, KeyError> {
        self.tag(0x0A);
        self.str(variant);
        self.serialize_map(Some(len))
    }
}

/// The four sequence-like serde traits all append an element to a [`SeqState`].
macro_rules! seq_like {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for SeqState<'_, '_> {
            type Ok = ();
            type Error = KeyError;
            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
                self.element(value)
            }
            #[inline]
            fn end(self) -> Result<(), KeyError> {
                SeqState::end(self)
            }
        }
    )*};
}

seq_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// Structs and struct variants both hash like maps with string keys.
macro_rules! struct_like {
    ($($trait:ident),*) => {$(
        impl ser::$trait for MapState<'_, '_> {
            type Ok = ();
            type Error = KeyError;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), KeyError> {
                let key = canonical_bytes(key)?;
                let value = canonical_bytes(value)?;
                self.entry(key, value);
                Ok(())
            }
            fn end(self) -> Result<(), KeyError> {
                MapState::end(self)
            }
        }
    )*};
}

struct_like!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for MapState<'_, '_> {
    type Ok = ();
    type Error = KeyError;
    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), KeyError> {
        self.pending_key = Some(canonical_bytes(key)?);
        Ok(())
    }
    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        let key = self
            .pending_key
            .take()
            .ok_or_else(|| <KeyError as ser::Error>::custom("map value without a key"))?;
        let value = canonical_bytes(value)?;
        self.entry(key, value);
        Ok(())
    }
    #[inline]
    fn end(self) -> Result<(), KeyError> {
        MapState::end(self)
    }
}
