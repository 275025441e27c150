//! Index records: a value inline, or a reference to its file (see the layout on the module).

/// What the index holds for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Record {
    /// The value itself.
    Inline(Vec<u8>),
    /// The value lives in the file named by `id`; `len` bytes with CRC-32 `crc`.
    File { id: [u8; 16], len: u64, crc: u32 },
}

pub(super) const TAG_INLINE: u8 = 1;
pub(super) const TAG_FILE: u8 = 2;
const FILE_RECORD_VERSION: u8 = 1;
const FILE_RECORD_LEN: usize = 2 + 16 + 8 + 4;

impl Record {
    pub(super) fn encode(&self) -> Vec<u8> {
        match self {
            Record::Inline(v) => {
                let mut out = Vec::with_capacity(1 + v.len());
                out.push(TAG_INLINE);
                out.extend_from_slice(v);
                out
            }
            Record::File { id, len, crc } => {
                let mut out = Vec::with_capacity(FILE_RECORD_LEN);
                out.push(TAG_FILE);
                out.push(FILE_RECORD_VERSION);
                out.extend_from_slice(id);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&crc.to_le_bytes());
                out
            }
        }
    }

    /// Decodes a record; the error says what is wrong.
    pub(super) fn decode(mut raw: Vec<u8>) -> Result<Record, String> {
        match raw.first() {
            Some(&TAG_INLINE) => {
                raw.remove(0);
                Ok(Record::Inline(raw))
            }
            Some(&TAG_FILE) => {
                if raw.len() != FILE_RECORD_LEN {
                    return Err(format!(
                        "file record of {} bytes, {FILE_RECORD_LEN} expected",
                        raw.len()
                    ));
                }
                if raw[1] != FILE_RECORD_VERSION {
                    return Err(format!(
                        "file record version {} (this build reads {FILE_RECORD_VERSION}): \
                         upgrade required",
                        raw[1]
                    ));
                }
                let mut id = [0u8; 16];
                id.copy_from_slice(&raw[2..18]);
                let len = crate::le::u64_at(&raw, 18).unwrap_or_default();
                let crc = crate::le::u32_at(&raw, 26).unwrap_or_default();
                Ok(Record::File { id, len, crc })
            }
            Some(tag) => Err(format!("unknown index record tag {tag}")),
            None => Err("empty index record".into()),
        }
    }

    pub(super) fn value_len(&self) -> u64 {
        match self {
            Record::Inline(v) => v.len() as u64,
            Record::File { len, .. } => *len,
        }
    }
}
