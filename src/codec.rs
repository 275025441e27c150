//! Glue between the cache and the formats crate: encode a value into a stored envelope, read
//! an envelope's header without decoding, decode a payload whatever format wrote it.
//!
//! TEMPORARY: a JSON stand-in until `cacher-formats` lands; the interface stays.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(String);

/// What the cache needs from a stored value's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntryHeader {
    /// When the value was written, ms since the Unix epoch.
    pub created_ms: u64,
    /// When it stops being returned, ms since the Unix epoch.
    pub expires_ms: Option<u64>,
    /// The revision number of the value.
    pub revision: u64,
}

const HEADER: usize = 2 + 8 + 1 + 8 + 8;

/// A resolved format pipeline plus the registry that decodes what other formats wrote.
#[derive(Clone, Debug)]
pub struct Codec {
    name: String,
}

impl Codec {
    pub fn new(format: &str) -> Result<Self, CodecError> {
        Ok(Codec {
            name: format.to_string(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        h: &EntryHeader,
    ) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"CV");
        out.extend_from_slice(&h.created_ms.to_le_bytes());
        out.push(h.expires_ms.is_some() as u8);
        out.extend_from_slice(&h.expires_ms.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&h.revision.to_le_bytes());
        serde_json::to_writer(&mut out, value).map_err(|e| CodecError(e.to_string()))?;
        Ok(out)
    }

    pub fn peek(bytes: &[u8]) -> Result<EntryHeader, CodecError> {
        if bytes.len() < HEADER || &bytes[..2] != b"CV" {
            return Err(CodecError("not a cacher value".into()));
        }
        let u = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        Ok(EntryHeader {
            created_ms: u(2),
            expires_ms: (bytes[10] == 1).then(|| u(11)),
            revision: u(19),
        })
    }

    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        Self::peek(bytes)?;
        serde_json::from_slice(&bytes[HEADER..]).map_err(|e| CodecError(e.to_string()))
    }
}
