//! Codecs: bytes to bytes (compression), stacked after a format in a pipeline
//! (`cbor+zstd:3`). The built-in one is `Zstd` (feature `zstd`).

use std::collections::HashMap;
use std::sync::Arc;

use crate::dictionary::Dictionary;
use crate::error::BoxError;

/// Turns bytes into bytes and back. Implementations must not panic on any input to
/// [`decompress`](Codec::decompress).
pub trait Codec: Send + Sync + 'static {
    /// The canonical spec of this codec with all its parameters spelled out (e.g. `zstd:3`,
    /// `zstd:19:dict=7`). It becomes part of the pipeline name stored in every envelope, and
    /// resolving it must rebuild an equivalent codec.
    fn spec(&self) -> String;

    /// Compresses `input`, appending to `out` (append, never clear).
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), BoxError>;

    /// Decompresses `input`, appending to `out`.
    fn decompress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), BoxError>;
}

/// What a codec factory is given to build a codec from a spec like `zstd:19:dict=7`.
pub struct CodecArgs<'a> {
    pub(crate) name: &'a str,
    pub(crate) arg: Option<&'a str>,
    pub(crate) dictionaries: &'a HashMap<u32, Dictionary>,
}

impl<'a> CodecArgs<'a> {
    /// The codec name (`zstd`).
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Everything after the first `:` (`19:dict=7`), or `None` for a bare name.
    pub fn arg(&self) -> Option<&'a str> {
        self.arg
    }

    /// A dictionary the registry holds.
    pub fn dictionary(&self, id: u32) -> Option<&'a Dictionary> {
        self.dictionaries.get(&id)
    }

    /// The ids of the dictionaries the registry holds, sorted.
    pub fn dictionary_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.dictionaries.keys().copied().collect();
        ids.sort_unstable();
        ids
    }
}

/// Builds a codec from its arguments; registered with
/// [`Registry::register_codec`](crate::Registry::register_codec).
pub type CodecFactory =
    Arc<dyn Fn(&CodecArgs<'_>) -> crate::Result<Arc<dyn Codec>> + Send + Sync + 'static>;
