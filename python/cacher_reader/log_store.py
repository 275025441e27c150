"""A cacher ``LogStore``: one append-only file (layout owner: ``backends/src/log/record.rs``,
format versions 1 and 2; a newer version is refused as upgrade required).

File header (32 bytes)::

    0 magic b"CACHELOG" | 8 version u32 | 12 flags u32 = 0 | 16 generation u64
    24 header_crc u32 (of bytes 0..24) | 28 reserved u32 = 0

Then records. A v1 record (byte 1 is 0)::

    0 kind u8 (1 put, 2 tombstone, 3 pending) | 1 layout u8 = 0 | 2 reserved 2 bytes = 0
    4 key_len u32 | 8 value_len u64 | 16 header_crc u32 (of bytes 0..16)
    20 record_crc u32 (of bytes 0..16, then key, then value) | 24 key | value

A v2 record (byte 1 is 2; any file may hold both, v1 records first)::

    0..24 as v1, except header_crc is of bytes 0..16 then 24..36
    24 key block: key_len u32 | key_crc u32 (crc32 of the key) | check u32 (of its bytes 0..8)
    36 key | value | trailer: the key block again (12 bytes)

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
FORMAT_VERSION = 2
FILE_HEADER_LEN = 32
RECORD_HEADER_LEN = 24  # a v1 header, and the first bytes of a v2 one
V2_HEADER_LEN = 36
KEY_BLOCK_LEN = 12
MAX_KEY_LEN = 64 << 10
PUT, TOMBSTONE, PENDING = 1, 2, 3


def _key_block(b) -> Optional[Tuple[int, int]]:
    """(key_len, key_crc) of a v2 key block whose own checksum holds, else None."""
    if len(b) != KEY_BLOCK_LEN:
        return None
    key_len, key_crc, check = struct.unpack_from("<III", b, 0)
    if check != zlib.crc32(bytes(b[:8])) or key_len > MAX_KEY_LEN:
        return None
    return key_len, key_crc


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
            v2 = m[at + 1] == 2
            header_len = V2_HEADER_LEN if v2 else RECORD_HEADER_LEN
            if end - at < header_len:
                self.problems[b"@%d" % at] = f"torn tail: {end - at} bytes after the last whole record"
                return
            head = m[at : at + header_len]
            kind = head[0]
            key_len, value_len, header_crc, record_crc = struct.unpack_from("<IQII", head, 4)
            covered = head[:16] + (head[24:36] if v2 else b"")
            if header_crc != zlib.crc32(covered):
                what = "zero-filled tail" if not any(m[at:end]) else "damaged record header"
                self.problems[b"@%d" % at] = f"{what} at offset {at}; nothing after it is read"
                # The key block (after the header, or as the file's last 12 bytes) may still
                # name the record's key: it then reads as damaged, never as an older value.
                for block in (m[at + 24 : at + 36], m[max(at + 36, end - KEY_BLOCK_LEN) : end]):
                    named = _key_block(block)
                    if named:
                        self._mark_damaged(m, at + V2_HEADER_LEN, *named)
                        break
                return
            if (
                kind not in (PUT, TOMBSTONE, PENDING)
                or head[1] not in (0, 2)
                or head[2:4] != b"\0\0"
                or key_len > MAX_KEY_LEN
                or (v2 and struct.unpack_from("<I", head, 24)[0] != key_len)
            ):
                self.problems[b"@%d" % at] = f"invalid record at offset {at}; nothing after it is read"
                return
            if kind == PENDING:
                self.problems[b"@%d" % at] = f"a streamed put still in progress at offset {at}"
                return
            body = at + header_len
            trailer = KEY_BLOCK_LEN if v2 else 0
            if body + key_len + value_len + trailer > end:
                self.problems[b"@%d" % at] = f"torn tail: the record at offset {at} is cut short"
                return
            key = bytes(m[body : body + key_len])
            after = body + key_len + value_len
            whole = zlib.crc32(m[body:after], zlib.crc32(head[:16])) == record_crc
            if whole and v2 and m[after : after + trailer] != head[24:36]:
                whole = False
            if not whole:
                self.problems[b"@%d" % at] = f"record checksum mismatch at offset {at} (key {key!r})"
                if v2:
                    # The header checksum vouches for the key block even when the key's bytes
                    # are the damaged ones.
                    self._mark_damaged(m, body, *struct.unpack_from("<II", head, 24))
                else:
                    self._index[key] = None
            elif kind == PUT:
                self._index[key] = (body + key_len, value_len, at)
            else:
                self._index.pop(key, None)
            at = after + trailer

    def _mark_damaged(self, m, key_at: int, key_len: int, key_crc: int) -> None:
        """Marks the key a v2 key block names as damaged: the stored key when its bytes match,
        else every indexed key of that length and CRC-32."""
        stored = bytes(m[key_at : key_at + key_len])
        if len(stored) == key_len and zlib.crc32(stored) == key_crc:
            self._index[stored] = None
            return
        for k in list(self._index):
            if len(k) == key_len and zlib.crc32(k) == key_crc:
                self._index[k] = None

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
        header_len = V2_HEADER_LEN if m[record_at + 1] == 2 else RECORD_HEADER_LEN
        covered = m[record_at : record_at + 16], m[record_at + header_len : value_at + value_len]
        if zlib.crc32(covered[1], zlib.crc32(covered[0])) != record_crc:
            raise DamagedError(f"{self.path}: record checksum mismatch for key {key!r}")
        return bytes(m[value_at : value_at + value_len])

    def close(self) -> None:
        if isinstance(self._map, mmap.mmap):
            self._map.close()
