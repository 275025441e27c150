"""A cacher ``DirStore``: ``cacher-dir.toml`` at the root, one entry file per key at
``v1/<first 2 hex>/<BLAKE3(key) as 64 hex>`` (layout owner: ``backends/src/dir/format.rs``).

Entry file, version 1::

    0 magic b"CACHRDIR" | 8 version u32 = 1 | 12 key_len u32 | 16 value_len u64
    24 value_crc u32 | 28 header_crc u32 (of bytes 0..28, then the key) | 32 key | value
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from typing import Dict, Iterator, Optional

from . import blake3
from .errors import DamagedError, UpgradeRequiredError
from .store import StoreReader, _key

MARKER = "cacher-dir.toml"
MAGIC = b"CACHRDIR"
FORMAT_VERSION = 1
# The store layout (`cacher-dir.toml`): 2 is layout 1 plus the accounting sidecar `acct/`,
# which a limited cache keeps and this reader never needs (it reads entry files only).
LAYOUT_VERSION = 2
HEADER_LEN = 32
MAX_KEY_LEN = 1 << 20
_NAME = re.compile(r"^[0-9a-f]{64}$")


def _check_marker(path: str) -> None:
    try:
        with open(os.path.join(path, MARKER), "rb") as f:
            text = f.read(4096).decode("utf-8")
    except FileNotFoundError:
        raise DamagedError(f"{path} has no {MARKER}: not a cacher DirStore") from None
    fields = dict(re.findall(r'^(\w+)\s*=\s*"?([^"\n]*)"?\s*$', text, re.M))
    if fields.get("format") != "cacher-dir":
        raise DamagedError(f"{path}/{MARKER} does not name a cacher DirStore")
    version = int(fields.get("version", "0"))
    if version > LAYOUT_VERSION:
        raise UpgradeRequiredError(f"{path} has DirStore layout {version}, this reader knows {LAYOUT_VERSION}")


class DirStoreReader(StoreReader):
    """Reads a DirStore directory. Never writes to it."""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        _check_marker(self.path)
        self.entries = os.path.join(self.path, "v1")
        #: Entry files found damaged while listing keys: {file name as bytes: problem}.
        self.problems: Dict[bytes, str] = {}

    def entry_path(self, key) -> str:
        """Where ``key``'s entry file lives."""
        hex_name = blake3.hash(_key(key)).hex()
        return os.path.join(self.entries, hex_name[:2], hex_name)

    def _read(self, path: str, want_value: bool):
        """(key, value or None) of the entry file at ``path``, every check done."""
        with open(path, "rb") as f:
            head = f.read(HEADER_LEN)
            size = os.fstat(f.fileno()).st_size
            if head[:8] != MAGIC:
                raise DamagedError(f"{path}: bad magic, not a DirStore entry file")
            if len(head) < 12:
                raise DamagedError(f"{path}: truncated")
            (version,) = struct.unpack_from("<I", head, 8)
            if version > FORMAT_VERSION:
                raise UpgradeRequiredError(f"{path}: entry format {version}")
            if version == 0 or len(head) < HEADER_LEN:
                raise DamagedError(f"{path}: truncated or version 0")
            key_len, value_len, value_crc, header_crc = struct.unpack_from("<IQII", head, 12)
            if key_len > MAX_KEY_LEN:
                raise DamagedError(f"{path}: declares a {key_len}-byte key")
            if size != HEADER_LEN + key_len + value_len:
                raise DamagedError(f"{path}: {size} bytes, the header says {HEADER_LEN + key_len + value_len}")
            key = f.read(key_len)
            if zlib.crc32(head[:28] + key) != header_crc:
                raise DamagedError(f"{path}: header checksum mismatch")
            if os.path.basename(path) != blake3.hash(key).hex():
                raise DamagedError(f"{path}: holds a key that does not belong at this path")
            if not want_value:
                return key, None
            value = f.read(value_len)
            if len(value) != value_len or zlib.crc32(value) != value_crc:
                raise DamagedError(f"{path}: value checksum mismatch (key {key!r})")
            return key, value

    def keys(self) -> Iterator[bytes]:
        if not os.path.isdir(self.entries):
            return
        for fan in sorted(os.listdir(self.entries)):
            fan_dir = os.path.join(self.entries, fan)
            if len(fan) != 2 or os.path.islink(fan_dir) or not os.path.isdir(fan_dir):
                continue
            for name in sorted(os.listdir(fan_dir)):
                path = os.path.join(fan_dir, name)
                if not _NAME.match(name) or os.path.islink(path) or not os.path.isfile(path):
                    continue
                try:
                    key, _ = self._read(path, want_value=False)
                except (DamagedError, UpgradeRequiredError) as e:
                    self.problems[name.encode()] = f"{type(e).__name__}: {e}"
                    continue
                yield key

    def get_raw(self, key) -> Optional[bytes]:
        key = _key(key)
        path = self.entry_path(key)
        if os.path.islink(path):
            raise DamagedError(f"{path}: a symbolic link, not an entry file")
        try:
            found, value = self._read(path, want_value=True)
        except FileNotFoundError:
            return None
        if found != key:
            raise DamagedError(f"{path}: holds another key")
        return value
