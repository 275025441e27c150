//! The bytes of the accounting database: its state and per-entry records, their keys, and
//! the constants of the layout the module docs draw.

use super::*;

/// The database's name.
pub(in crate::lmdb) const ACCT_DB: &str = "cacher-store-acct";
/// The version of the accounting layout this build writes (and the newest it reads).
/// 1: every store kept all three orders. 2: the state records which orders are kept.
/// 3: version 2 with the undated index (`KEEP_UNDATED`) among them; written only by a store
/// that keeps it, so a store no TTL cache cleans stays version 2 for older builds.
pub(crate) const ACCT_VERSION: u32 = 3;
pub(super) const STATE_MAGIC: &[u8; 8] = b"cacherAC";
pub(super) const STATE_KEY: &[u8] = b"mstate";
pub(super) const CURSOR_KEY: &[u8] = b"mcursor";
/// A version-1 state: magic, version, built, entries, bytes, next stamp.
pub(super) const STATE_LEN_V1: usize = 8 + 4 + 1 + 8 + 8 + 8;
/// A version-2 state: version 1's fields, then the kept and building order bits.
pub(super) const STATE_LEN: usize = STATE_LEN_V1 + 2;
/// The order bits of a state's `kept` and `building`.
pub(super) const KEEP_LRU: u8 = 1;
pub(super) const KEEP_FIFO: u8 = 2;
pub(super) const KEEP_LFU: u8 = 4;
/// Every order: what a version-1 store keeps.
pub(super) const KEEP_ALL: u8 = KEEP_LRU | KEEP_FIFO | KEEP_LFU;
/// The undated index: entries written with no deadline, by write stamp (version 3).
pub(super) const KEEP_UNDATED: u8 = 8;
pub(super) const RECORD_VERSION: u8 = 1;
pub(super) const RECORD_HEADER: usize = 2 + 8 + 8 + 8 + 4 + 8;
pub(super) const TAG_RECORD: u8 = b'r';
pub(super) const TAG_LRU: u8 = b'l';
pub(super) const TAG_FIFO: u8 = b'w';
pub(super) const TAG_LFU: u8 = b'f';
pub(super) const TAG_EXPIRY: u8 = b'x';
pub(super) const TAG_UNDATED: u8 = b'u';
pub(super) const TAG_HASHED_ID: u8 = 0x02;
/// Longest stored key used as its own id: tag (1) + hits (4) + stamp (8) + id fits in 511.
pub(super) const MAX_PLAIN_ID: usize = 480;
/// Entries deleted per write transaction by an eviction or expiry pass (bounds memory and the
/// time another writer waits).
pub(crate) const EVICT_CHUNK: usize = 2048;
/// Keys counted per write transaction by a migration.
pub(crate) const BUILD_CHUNK: usize = 10_000;

#[expect(
    clippy::big_endian_bytes,
    reason = "index keys sort bytewise in LMDB: big-endian numbers sort as numbers"
)]
pub(super) fn be64(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

#[expect(
    clippy::big_endian_bytes,
    reason = "index keys sort bytewise in LMDB: big-endian numbers sort as numbers"
)]
pub(super) fn be32(n: u32) -> [u8; 4] {
    n.to_be_bytes()
}

#[expect(
    clippy::big_endian_bytes,
    reason = "reads back the big-endian numbers of index keys"
)]
pub(super) fn from_be64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

/// An entry's id in the accounting database (see the module docs).
pub(super) fn id_of(stored: &[u8]) -> Vec<u8> {
    if stored.len() <= MAX_PLAIN_ID {
        return stored.to_vec();
    }
    let mut id = Vec::with_capacity(33);
    id.push(TAG_HASHED_ID);
    id.extend_from_slice(blake3::hash(stored).as_bytes());
    id
}

/// An order's bit in a state's `kept` and `building`, and the tag of its index keys.
pub(super) fn order_bit(order: Order) -> (u8, u8) {
    match order {
        Order::Lru => (KEEP_LRU, TAG_LRU),
        Order::Fifo => (KEEP_FIFO, TAG_FIFO),
        Order::Lfu => (KEEP_LFU, TAG_LFU),
    }
}

pub(super) fn tagged(tag: u8, parts: &[&[u8]], id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 12 + id.len());
    k.push(tag);
    for p in parts {
        k.extend_from_slice(p);
    }
    k.extend_from_slice(id);
    k
}

/// The store-wide totals and stamp counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct State {
    pub(super) built: bool,
    pub(super) entries: u64,
    pub(super) bytes: u64,
    pub(super) next: u64,
    /// The order indexes that are complete and kept up (`KEEP_*` bits).
    pub(super) kept: u8,
    /// The order indexes being built ([`Books::build_order`]), kept up by writes too.
    pub(super) building: u8,
}

impl State {
    pub(super) fn encode(&self) -> [u8; STATE_LEN] {
        let mut out = [0u8; STATE_LEN];
        out[..8].copy_from_slice(STATE_MAGIC);
        let version: u32 = if self.indexed() & KEEP_UNDATED != 0 {
            3
        } else {
            2
        };
        out[8..12].copy_from_slice(&version.to_le_bytes());
        out[12] = u8::from(self.built);
        out[13..21].copy_from_slice(&self.entries.to_le_bytes());
        out[21..29].copy_from_slice(&self.bytes.to_le_bytes());
        out[29..37].copy_from_slice(&self.next.to_le_bytes());
        out[37] = self.kept;
        out[38] = self.building;
        out
    }

    pub(super) fn decode(raw: &[u8]) -> Result<State, crate::version::Refusal> {
        use crate::version::Refusal;
        if raw.len() < 12 || &raw[..8] != STATE_MAGIC {
            return Err(Refusal::corrupt("accounting state without its magic"));
        }
        let version = crate::le::u32_at(raw, 8).unwrap_or_default();
        if version > ACCT_VERSION {
            return Err(Refusal::Newer(version));
        }
        let (kept, building) = match (version, raw.len()) {
            (1, STATE_LEN_V1) => (KEEP_ALL, 0),
            (2 | 3, STATE_LEN) => (raw[37], raw[38]),
            _ => (0, 0),
        };
        let known = if version >= 3 {
            KEEP_ALL | KEEP_UNDATED
        } else {
            KEEP_ALL
        };
        if kept & KEEP_ALL == 0 || kept & !known != 0 || building & !known != 0 || raw[12] > 1 {
            return Err(Refusal::corrupt(format!(
                "accounting state of {} bytes, version {version}",
                raw.len()
            )));
        }
        let at = |i| crate::le::u64_at(raw, i).unwrap_or_default();
        Ok(State {
            built: raw[12] == 1,
            entries: at(13),
            bytes: at(21),
            next: at(29),
            kept,
            building,
        })
    }

    /// The orders every write keeps up: the complete ones and those being built.
    pub(super) fn indexed(&self) -> u8 {
        self.kept | self.building
    }

    pub(super) fn take_stamp(&mut self) -> u64 {
        let s = self.next;
        self.next += 1;
        s
    }

    pub(super) fn totals(&self) -> Totals {
        Totals {
            entries: self.entries,
            bytes: self.bytes,
            built: self.built,
        }
    }

    pub(super) fn add(&mut self, size: u64) {
        self.entries += 1;
        self.bytes = self.bytes.saturating_add(size);
    }

    pub(super) fn sub(&mut self, size: u64) {
        self.entries = self.entries.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(size);
    }
}

/// One entry's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub(super) size: u64,
    pub(super) written: u64,
    pub(super) accessed: u64,
    pub(super) hits: u32,
    pub(super) expires: Option<u64>,
    /// The key in `cacher-store`.
    pub(super) stored: Vec<u8>,
}

impl Record {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_HEADER + self.stored.len());
        out.push(RECORD_VERSION);
        out.push(u8::from(self.expires.is_some()));
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.written.to_le_bytes());
        out.extend_from_slice(&self.accessed.to_le_bytes());
        out.extend_from_slice(&self.hits.to_le_bytes());
        out.extend_from_slice(&self.expires.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.stored);
        out
    }

    pub(super) fn decode(raw: &[u8]) -> Result<Record, crate::version::Refusal> {
        use crate::version::Refusal;
        match raw.first() {
            Some(&RECORD_VERSION) => {}
            Some(&v) if v > RECORD_VERSION => return Err(Refusal::Newer(u32::from(v))),
            _ => return Err(Refusal::corrupt("accounting record of an unknown version")),
        }
        if raw.len() <= RECORD_HEADER || raw[1] > 1 {
            return Err(Refusal::corrupt(format!(
                "accounting record of {} bytes",
                raw.len()
            )));
        }
        let at = |i| crate::le::u64_at(raw, i).unwrap_or_default();
        Ok(Record {
            size: at(2),
            written: at(10),
            accessed: at(18),
            hits: crate::le::u32_at(raw, 26).unwrap_or_default(),
            expires: (raw[1] == 1).then(|| at(30)),
            stored: raw[RECORD_HEADER..].to_vec(),
        })
    }

    pub(super) fn account(&self) -> EntryAccount {
        EntryAccount {
            size: self.size,
            written: self.written,
            accessed: self.accessed,
            hits: self.hits,
            expires_ms: self.expires,
        }
    }
}

/// Reads the id back from an index key of `tag`.
pub(super) fn id_in(tag: u8, key: &[u8]) -> &[u8] {
    let skip = match tag {
        TAG_LFU => 1 + 4 + 8,
        _ => 1 + 8,
    };
    key.get(skip..).unwrap_or_default()
}
