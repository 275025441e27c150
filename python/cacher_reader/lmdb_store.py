"""A cacher ``LmdbStore`` through py-lmdb (layout owner: ``backends/src/lmdb/layout.rs``).

Two named databases: ``cacher-store-meta`` (key ``format`` -> ``b"cacherLM"`` + version u32
LE, 1 or 2) and ``cacher-store``::

    key of 0..=510 bytes:  LMDB key = 0x00 | key            LMDB value = [crc u32] | value
    key of 511 and more:   LMDB key = 0x01 | BLAKE3(key)    LMDB value = [crc u32] | key_len u64 | key | value
    crc (version 2 only) = CRC-32 of the LMDB key, then of the LMDB value after the crc

py-lmdb (LMDB 0.9.x, lock-file format 1) opens a store while a Rust process has it open
when that process builds heed over an LMDB 0.9.x release too, as cacher's workspace does
(``docs/lmdb-live-sharing.md``). A Rust build on heed's own LMDB (mdb.master, lock format 2)
cannot share it live: :class:`~cacher_reader.LiveSharingError`, and open this reader after
the Rust process closed the store.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Iterator, Optional

from . import blake3
from .errors import DamagedError, LiveSharingError, UnsupportedError, UpgradeRequiredError
from .store import StoreReader, _key

DATA_DB = b"cacher-store"
META_DB = b"cacher-store-meta"
MAGIC = b"cacherLM"
FORMAT_VERSION = 2
MAX_PLAIN_KEY = 510


class LmdbStoreReader(StoreReader):
    """Reads an LmdbStore environment directory in read-only transactions."""

    def __init__(self, path: str):
        try:
            import lmdb
        except ImportError:
            raise UnsupportedError("reading an LmdbStore needs the 'lmdb' package (py-lmdb)") from None
        self.path = os.fspath(path)
        #: Entries found damaged while listing keys: {key (or b"lmdb:" + hashed stored key): problem}.
        self.problems = {}
        try:
            self._env = lmdb.open(self.path, readonly=True, max_dbs=4, create=False)
        except lmdb.VersionMismatchError as e:
            raise LiveSharingError(
                f"{self.path}: the LMDB environment is open in a process whose LMDB uses another "
                "lock-file format (a cacher (Rust) build on heed's own mdb.master LMDB uses format "
                "2, py-lmdb's LMDB 0.9.x format 1); the two cannot have it open at the same time. "
                "The data is compatible: read it here after the Rust process closed the store, or "
                "build the Rust side with the [patch.crates-io] of cacher's "
                f"docs/lmdb-live-sharing.md to share it live ({e})"
            ) from None
        try:
            self._meta = self._env.open_db(META_DB, create=False)
            self._data = self._env.open_db(DATA_DB, create=False)
        except lmdb.NotFoundError:
            self._env.close()
            raise DamagedError(f"{self.path}: not a cacher LmdbStore (no {DATA_DB.decode()} database)") from None
        with self._env.begin(db=self._meta) as txn:
            record = txn.get(b"format")
        if record is None or len(record) != 12 or record[:8] != MAGIC:
            self._env.close()
            raise DamagedError(f"{self.path}: bad format record")
        (self.layout_version,) = struct.unpack_from("<I", record, 8)
        if self.layout_version > FORMAT_VERSION:
            self._env.close()
            raise UpgradeRequiredError(f"{self.path}: LmdbStore layout {self.layout_version}")
        if self.layout_version == 0:
            self._env.close()
            raise DamagedError(f"{self.path}: layout version 0")

    def _decode(self, stored: bytes, raw: bytes):
        """(key, value) of one LMDB entry, every check done."""
        if self.layout_version >= 2:
            if len(raw) < 4:
                raise DamagedError(f"{self.path}: a {len(raw)}-byte value is shorter than its checksum")
            (crc,) = struct.unpack_from("<I", raw, 0)
            body = raw[4:]
            if zlib.crc32(body, zlib.crc32(stored)) != crc:
                raise DamagedError(f"{self.path}: value checksum mismatch (stored key {stored[:40]!r})")
        else:
            body = raw
        tag, rest = stored[:1], stored[1:]
        if tag == b"\x00" and len(rest) <= MAX_PLAIN_KEY:
            return rest, body
        if tag == b"\x01" and len(rest) == 32:
            if len(body) < 8:
                raise DamagedError(f"{self.path}: long-key entry shorter than its header")
            (key_len,) = struct.unpack_from("<Q", body, 0)
            if 8 + key_len > len(body):
                raise DamagedError(f"{self.path}: long-key entry cut short")
            key = body[8 : 8 + key_len]
            if blake3.hash(key) != rest:
                raise DamagedError(f"{self.path}: long key does not match its hash")
            return key, body[8 + key_len :]
        raise DamagedError(f"{self.path}: unknown key tag in a stored key of {len(stored)} bytes")

    def keys(self) -> Iterator[bytes]:
        out = []
        with self._env.begin(db=self._data) as txn:
            for stored, raw in txn.cursor():
                try:
                    out.append(self._decode(bytes(stored), bytes(raw))[0])
                except DamagedError as e:
                    stored = bytes(stored)
                    # A short key is its stored key less the tag; a hashed one is named by it.
                    where = stored[1:] if stored[:1] == b"\x00" else b"lmdb:" + stored
                    self.problems[where] = f"DamagedError: {e}"
        return iter(out)

    def get_raw(self, key) -> Optional[bytes]:
        key = _key(key)
        stored = b"\x00" + key if len(key) <= MAX_PLAIN_KEY else b"\x01" + blake3.hash(key)
        with self._env.begin(db=self._data) as txn:
            raw = txn.get(stored)
            if raw is None:
                return None
            found, value = self._decode(stored, bytes(raw))
        # A long key's entry may belong to another key with the same hash: then it is missing.
        return value if found == key else None

    def close(self) -> None:
        self._env.close()
