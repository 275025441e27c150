//! The built-in `zstd` codec (feature `zstd`).

use std::io::Read;
use std::sync::{Arc, Mutex};

use zstd::stream::read::Decoder;

use crate::codec::{Codec, CodecArgs, CodecFactory};
use crate::dictionary::Dictionary;
use crate::error::BoxError;

/// zstd compression at a level (1..=22, default 3), optionally with a trained
/// [`Dictionary`].
///
/// Compression and decompression contexts are pooled, so small values do not pay for
/// allocating a context each time.
///
/// Decoding is bounded whatever a frame claims: never more than
/// [`max_decoded_len`](Zstd::max_decoded_len) (default [`Zstd::MAX_DECODED_LEN`], 4 GiB) nor
/// more than the data actually decodes to. Frames this crate writes record their content
/// size and decode in one pass into a buffer of at most 64× the frame (+4 KiB), growing only
/// as the data really decodes. A frame without a content size, or one claiming more than 64×
/// its length, is first decoded into nothing to count its length (bounded by the limit), so a
/// decompression bomb is refused with no memory spent on its output; only then is the value
/// decoded into a buffer of exactly that size. zstd's own window is capped by its default
/// `windowLogMax` (27: 128 MiB).
pub struct Zstd {
    level: i32,
    max_decoded_len: u64,
    dictionary: Option<Dictionary>,
    compressors: Mutex<Vec<zstd::bulk::Compressor<'static>>>,
    decompressors: Mutex<Vec<zstd::bulk::Decompressor<'static>>>,
}

impl std::fmt::Debug for Zstd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zstd")
            .field("level", &self.level)
            .field("dictionary", &self.dictionary.as_ref().map(Dictionary::id))
            .finish()
    }
}

impl Zstd {
    /// The level `zstd` without a level means.
    pub const DEFAULT_LEVEL: i32 = 3;

    /// The default largest decompressed size accepted (4 GiB): a guard against
    /// decompression bombs.
    pub const MAX_DECODED_LEN: u64 = 4 << 30;

    /// zstd at `level` (1..=22), with an optional dictionary.
    pub fn new(level: i32, dictionary: Option<Dictionary>) -> Result<Self, BoxError> {
        if !(1..=22).contains(&level) {
            return Err(format!("zstd level {level} is outside 1..=22").into());
        }
        Ok(Zstd {
            level,
            max_decoded_len: Zstd::MAX_DECODED_LEN,
            dictionary,
            compressors: Mutex::new(Vec::new()),
            decompressors: Mutex::new(Vec::new()),
        })
    }

    /// The same codec refusing values that decode to more than `max` bytes (instead of
    /// [`Zstd::MAX_DECODED_LEN`]). Not part of the spec: it bounds reading, not the format.
    #[must_use]
    pub fn with_max_decoded_len(mut self, max: u64) -> Self {
        self.max_decoded_len = max;
        self
    }

    /// The largest decompressed size this codec accepts.
    pub fn max_decoded_len(&self) -> u64 {
        self.max_decoded_len
    }

    /// The compression level.
    pub fn level(&self) -> i32 {
        self.level
    }

    /// The dictionary id, if this codec uses one.
    pub fn dictionary_id(&self) -> Option<u32> {
        self.dictionary.as_ref().map(Dictionary::id)
    }

    /// The factory the registry uses for `zstd`, `zstd:LEVEL`, `zstd:dict=ID` and
    /// `zstd:LEVEL:dict=ID`.
    pub fn factory() -> CodecFactory {
        Arc::new(|args: &CodecArgs<'_>| {
            let spec = match args.arg() {
                Some(arg) => format!("{}:{arg}", args.name()),
                None => args.name().to_owned(),
            };
            let invalid = |reason: String| crate::Error::InvalidPipeline {
                name: spec.clone(),
                reason,
            };
            let mut level = Zstd::DEFAULT_LEVEL;
            let mut dictionary = None;
            for part in args
                .arg()
                .unwrap_or("")
                .split(':')
                .filter(|p| !p.is_empty())
            {
                if let Some(id) = part.strip_prefix("dict=") {
                    let id: u32 = id
                        .parse()
                        .map_err(|_| invalid(format!("bad dictionary id `{id}`")))?;
                    let dict =
                        args.dictionary(id)
                            .ok_or_else(|| crate::Error::UnknownDictionary {
                                id,
                                known: args.dictionary_ids(),
                            })?;
                    dictionary = Some(dict.clone());
                } else {
                    level = part.parse().map_err(|_| {
                        invalid(format!(
                            "expected a level (1..=22) or dict=ID, got `{part}`"
                        ))
                    })?;
                }
            }
            let codec = Zstd::new(level, dictionary).map_err(|e| invalid(e.to_string()))?;
            Ok(Arc::new(codec) as Arc<dyn Codec>)
        })
    }

    fn compressor(&self) -> std::io::Result<zstd::bulk::Compressor<'static>> {
        if let Some(c) = self.compressors.lock().ok().and_then(|mut pool| pool.pop()) {
            return Ok(c);
        }
        match &self.dictionary {
            Some(dict) => zstd::bulk::Compressor::with_dictionary(self.level, dict.as_bytes()),
            None => zstd::bulk::Compressor::new(self.level),
        }
    }

    fn decompressor(&self) -> std::io::Result<zstd::bulk::Decompressor<'static>> {
        if let Some(d) = self
            .decompressors
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
        {
            return Ok(d);
        }
        match &self.dictionary {
            Some(dict) => zstd::bulk::Decompressor::with_dictionary(dict.as_bytes()),
            None => zstd::bulk::Decompressor::new(),
        }
    }

    /// Returns a context to the pool (a few are kept: one per concurrently busy thread).
    fn recycle<T>(pool: &Mutex<Vec<T>>, item: T) {
        if let Ok(mut pool) = pool.lock() {
            if pool.len() < 8 {
                pool.push(item);
            }
        }
    }
}

impl Codec for Zstd {
    fn spec(&self) -> String {
        match &self.dictionary {
            Some(dict) => format!("zstd:{}:dict={}", self.level, dict.id()),
            None => format!("zstd:{}", self.level),
        }
    }

    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), BoxError> {
        let mut compressor = self.compressor()?;
        let bound = zstd::zstd_safe::compress_bound(input.len());
        // The zstd buffer API writes from the start of a Vec, so an `out` that already holds
        // bytes gets the frame through a temporary.
        let result = if out.is_empty() {
            out.reserve(bound);
            compressor.compress_to_buffer(input, out)
        } else {
            let mut tmp = Vec::with_capacity(bound);
            let result = compressor.compress_to_buffer(input, &mut tmp);
            out.extend_from_slice(&tmp);
            result
        };
        Zstd::recycle(&self.compressors, compressor);
        result?;
        Ok(())
    }

    fn decompress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), BoxError> {
        match zstd::zstd_safe::get_frame_content_size(input) {
            Ok(Some(size)) if size <= self.max_decoded_len => {
                // The size is only a claim of the (unverified) frame header: reserve at most
                // a sane multiple of the input up front and let a mismatch fail below.
                let size = usize::try_from(size)?;
                let mut decompressor = self.decompressor()?;
                let mut tail = Vec::with_capacity(size.min(input.len().saturating_mul(64) + 4096));
                if tail.capacity() < size {
                    // Claimed bigger than plausible: stream it instead, bounded.
                    Zstd::recycle(&self.decompressors, decompressor);
                    return self.decompress_streaming(input, out);
                }
                let result = decompressor.decompress_to_buffer(input, &mut tail);
                Zstd::recycle(&self.decompressors, decompressor);
                let written = result?;
                if written != size {
                    return Err(
                        format!("frame claims {size} bytes but decodes to {written}").into(),
                    );
                }
                if out.is_empty() {
                    *out = tail;
                } else {
                    out.extend_from_slice(&tail);
                }
                Ok(())
            }
            Ok(Some(size)) => Err(format!(
                "frame claims {size} bytes, more than the {} byte limit",
                self.max_decoded_len
            )
            .into()),
            Ok(None) => self.decompress_streaming(input, out),
            Err(_) => Err("not a zstd frame".into()),
        }
    }
}

impl Zstd {
    fn stream<'a>(&self, input: &'a [u8]) -> std::io::Result<Decoder<'static, &'a [u8]>> {
        match &self.dictionary {
            Some(dict) => Decoder::with_dictionary(input, dict.as_bytes()),
            None => Decoder::with_buffer(input),
        }
    }

    /// Decodes a frame whose size is unknown or implausible: counts first (into nothing, so a
    /// bomb costs no memory), then decodes into a buffer of exactly that size.
    fn decompress_streaming(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), BoxError> {
        let limit = self.max_decoded_len;
        let mut counted = self.stream(input)?.take(limit.saturating_add(1));
        let len = std::io::copy(&mut counted, &mut std::io::sink())?;
        if len > limit {
            return Err(format!("decodes to more than the {limit} byte limit").into());
        }
        let len = usize::try_from(len)?;
        out.try_reserve_exact(len)?;
        let before = out.len();
        self.stream(input)?.take(len as u64).read_to_end(out)?;
        if out.len() - before != len {
            out.truncate(before);
            return Err("frame decoded to a different length the second time".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(codec: &Zstd, frame: &[u8]) -> Vec<u8> {
        let mut out = b"prefix:".to_vec();
        codec.decompress(frame, &mut out).unwrap();
        out.split_off(7)
    }

    #[test]
    fn frames_without_a_content_size_decode_by_streaming() {
        let data = b"streamed data ".repeat(1000);
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        std::io::Write::write_all(&mut encoder, &data).unwrap();
        let frame = encoder.finish().unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&frame).unwrap(),
            None
        );
        assert_eq!(round_trip(&Zstd::new(3, None).unwrap(), &frame), data);
    }

    #[test]
    fn highly_compressible_frames_decode_without_trusting_the_claimed_size_up_front() {
        // 16 MiB of zeros compress to a few hundred bytes: far beyond the up-front reserve,
        // so this goes through the bounded streaming path.
        let data = vec![0u8; 16 << 20];
        let codec = Zstd::new(3, None).unwrap();
        let mut frame = Vec::new();
        codec.compress(&data, &mut frame).unwrap();
        assert!(frame.len() < 4096);
        assert_eq!(round_trip(&codec, &frame), data);
    }

    #[test]
    fn compress_appends_after_existing_bytes() {
        let codec = Zstd::new(1, None).unwrap();
        let mut out = b"head".to_vec();
        codec
            .compress(b"payload payload payload", &mut out)
            .unwrap();
        assert_eq!(&out[..4], b"head");
        assert_eq!(round_trip(&codec, &out[4..]), b"payload payload payload");
    }

    #[test]
    fn levels_outside_the_zstd_range_are_refused() {
        assert!(Zstd::new(0, None).is_err());
        assert!(Zstd::new(23, None).is_err());
        assert_eq!(Zstd::new(19, None).unwrap().spec(), "zstd:19");
    }
}
