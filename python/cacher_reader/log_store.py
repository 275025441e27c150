"""A cacher ``LogStore``: one append-only file (layout owner: ``backends/src/log/record.rs``,
format version 1; a newer version is refused as upgrade required).

File header (32 bytes)::

    0 magic b"CACHELOG" | 8 version u32 | 12 flags u32 = 0 | 16 generation u64
    24 header_crc u32 (of bytes 0..24) | 28 reserved u32 = 0

Then records, each::

    0 kind u8 (1 put, 2 tombstone, 3 pending) | 1 reserved 3 bytes = 0 | 4 key_len u32
    8 value_len u64 | 16 header_crc u32 (of bytes 0..16)
    20 record_crc u32 (of bytes 0..16, then key, then value) | 24 key | value

The last record for a key wins; a tombstone deletes. The reader never writes: a torn or
damaged tail (which the Rust writer cuts at its next open) is reported in
:attr:`LogStoreReader.problems` and the records before it are read.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from typing import Dict, Iterator, Optional, Tuple

from .errors import DamagedError, UpgradeRequiredError
from .store import StoreReader, _key

MAGIC = b"CACHELOG"
FORMAT_VERSION = 1
FILE_HEADER_LEN = 32
RECORD_HEADER_LEN = 24
MAX_KEY_LEN = 64 << 10
PUT, TOMBSTONE, PENDING = 1, 2, 3


class LogStoreReader(StoreReader):
    """Reads a LogStore file as it is now (a snapshot taken at open)."""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        m = self._map
        if len(m) < 8 or m[:8] != MAGIC:
            raise DamagedError(f"{self.path}: bad magic, not a cacher log file")
        if len(m) < 12:
            raise DamagedError(f"{self.path}: file header cut short")
        (version,) = struct.unpack_from("<I", m, 8)
        if version > FORMAT_VERSION:
            raise UpgradeRequiredError(f"{self.path}: log format {version}, this reader knows {FORMAT_VERSION}")
        if version == 0 or len(m) < FILE_HEADER_LEN:
            raise DamagedError(f"{self.path}: file header cut short or version 0")
        flags, self.generation, crc, reserved = struct.unpack_from("<IQII", m, 12)
        if crc != zlib.crc32(m[:24]):
            raise DamagedError(f"{self.path}: file header checksum mismatch")
        if flags or reserved:
            raise DamagedError(f"{self.path}: unknown flags in the file header")
        #: Damage met while scanning: {b"@offset": problem}.
        self.problems: Dict[bytes, str] = {}
        #: key -> (value offset, value length, record offset), or None for a damaged record.
        self._index: Dict[bytes, Optional[Tuple[int, int, int]]] = {}
        self._scan()

    def _scan(self) -> None:
        m, at, end = self._map, FILE_HEADER_LEN, len(self._map)
        while at < end:
            if end - at < RECORD_HEADER_LEN:
                self.problems[b"@%d" % at] = f"torn tail: {end - at} bytes after the last whole record"
                return
            head = m[at : at + RECORD_HEADER_LEN]
            kind = head[0]
            key_len, value_len, header_crc, record_crc = struct.unpack_from("<IQII", head, 4)
            if header_crc != zlib.crc32(head[:16]):
                what = "zero-filled tail" if not any(m[at:end]) else "damaged record header"
                self.problems[b"@%d" % at] = f"{what} at offset {at}; nothing after it is read"
                return
            if kind not in (PUT, TOMBSTONE, PENDING) or head[1:4] != b"\0\0\0" or key_len > MAX_KEY_LEN:
                self.problems[b"@%d" % at] = f"invalid record at offset {at}; nothing after it is read"
                return
            if kind == PENDING:
                self.problems[b"@%d" % at] = f"a streamed put still in progress at offset {at}"
                return
            body = at + RECORD_HEADER_LEN
            if body + key_len + value_len > end:
                self.problems[b"@%d" % at] = f"torn tail: the record at offset {at} is cut short"
                return
            key = bytes(m[body : body + key_len])
            if zlib.crc32(m[body : body + key_len + value_len], zlib.crc32(head[:16])) != record_crc:
                self.problems[b"@%d" % at] = f"record checksum mismatch at offset {at} (key {key!r})"
                self._index[key] = None
            elif kind == PUT:
                self._index[key] = (body + key_len, value_len, at)
            else:
                self._index.pop(key, None)
            at = body + key_len + value_len

    def keys(self) -> Iterator[bytes]:
        return iter(list(self._index))

    def get_raw(self, key) -> Optional[bytes]:
        key = _key(key)
        if key not in self._index:
            return None
        where = self._index[key]
        if where is None:
            raise DamagedError(f"{self.path}: the last record of key {key!r} is damaged")
        value_at, value_len, record_at = where
        # Checked again: the bytes are read from the map, which sees later damage too.
        m = self._map
        (record_crc,) = struct.unpack_from("<I", m, record_at + 20)
        covered = m[record_at : record_at + 16], m[record_at + RECORD_HEADER_LEN : value_at + value_len]
        if zlib.crc32(covered[1], zlib.crc32(covered[0])) != record_crc:
            raise DamagedError(f"{self.path}: record checksum mismatch for key {key!r}")
        return bytes(m[value_at : value_at + value_len])

    def close(self) -> None:
        if isinstance(self._map, mmap.mmap):
            self._map.close()
