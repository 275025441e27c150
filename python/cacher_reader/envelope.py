"""The value envelope every value a cacher ``Cache`` stores starts with (layout owner:
``formats/src/envelope/mod.rs``; diagrams in ``docs/layouts.md``), and decoding its payload.

Version 3 (written now) and version 2, the same layout::

    0  magic b"CCHV" | 4 version u8 | 5 flags u8 (bit 0 expires, bit 1 MAC) | 6 header_len u16
    8  created_ms u64 | 16 expires_ms u64 | 24 revision u64 | 32 payload_len u64
    40 payload_crc u32 | 44 type_fingerprint u64 | 52 key_crc u32 | 56 name length n u8
    57 pipeline name (n bytes) | [MAC, 32 bytes] | header_crc u32 | payload

Version 1 has no type fingerprint and no key checksum (the name length is at offset 44), and
its MAC does not cover the store key. All integers little-endian. Checksums (payload_crc,
key_crc, header_crc) are CRC-32C in version 3 (:mod:`.castagnoli`), CRC-32 (zlib's) in
versions 1 and 2.
"""

from __future__ import annotations

import dataclasses
import hmac
import io
import json
import pickle
import struct
import time
import zlib
from typing import Any, Mapping, Optional

from . import blake3, castagnoli
from .errors import DamagedError, UnauthenticatedError, UnsupportedError, UpgradeRequiredError

MAGIC = b"CCHV"
CURRENT_VERSION = 3
_FIXED = {1: 45, 2: 57, 3: 57}
_FLAG_EXPIRES, _FLAG_MAC = 1, 2
MAC_LEN = 32
#: Decoded zstd payloads larger than this are refused (the Rust codec's default limit).
MAX_DECODED_LEN = 4 << 30


@dataclasses.dataclass(frozen=True)
class Envelope:
    """A checked envelope: its header fields and the payload as stored."""

    version: int
    created_ms: int
    expires_ms: Optional[int]
    revision: int
    type_fingerprint: Optional[int]
    key_crc: Optional[int]
    pipeline: str
    mac: Optional[bytes]
    payload: bytes

    @property
    def format(self) -> str:
        """The format part of the pipeline (``json``, ``cbor``, ``pickle``, ``raw``)."""
        return self.pipeline.split("+", 1)[0]

    def is_expired(self, now_ms: Optional[int] = None) -> bool:
        """Whether the value is expired at ``now_ms`` (default: now). Inclusive, as in Rust."""
        if self.expires_ms is None:
            return False
        if now_ms is None:
            now_ms = int(time.time() * 1000)
        return now_ms >= self.expires_ms


def _checksum(version: int):
    """The CRC function of envelope ``version``: CRC-32C from version 3, zlib's CRC-32 before."""
    return castagnoli.crc32c if version >= 3 else zlib.crc32


def open_envelope(stored: bytes, key: Optional[bytes] = None, mac_key: Optional[bytes] = None) -> Envelope:
    """Parses and checks ``stored``: header checksum, payload length and checksum, and when
    ``key`` is given the key checksum (versions 2 and 3); with ``mac_key`` the MAC too (which needs
    ``key``). Raises :class:`DamagedError`, :class:`UpgradeRequiredError` or
    :class:`UnauthenticatedError`; never returns unchecked bytes."""
    b = bytes(stored)
    if len(b) < 5:
        raise DamagedError(f"{len(b)} bytes is too short for an envelope")
    if b[:4] != MAGIC:
        raise DamagedError(f"bad envelope magic {b[:4]!r}")
    version = b[4]
    if version > CURRENT_VERSION:
        raise UpgradeRequiredError(f"envelope version {version}, this reader knows up to {CURRENT_VERSION}")
    if version == 0:
        raise DamagedError("envelope version 0")
    fixed = _FIXED[version]
    if len(b) < fixed:
        raise DamagedError(f"truncated envelope header: {len(b)} bytes")
    crc = _checksum(version)
    flags = b[5]
    if flags & ~(_FLAG_EXPIRES | _FLAG_MAC):
        raise DamagedError(f"unknown envelope flags 0x{flags:02x}")
    header_len = struct.unpack_from("<H", b, 6)[0]
    name_len = b[fixed - 1]
    mac_len = MAC_LEN if flags & _FLAG_MAC else 0
    if header_len != fixed + name_len + mac_len + 4 or len(b) < header_len:
        raise DamagedError("envelope header length disagrees with its fields or the value")
    (stored_crc,) = struct.unpack_from("<I", b, header_len - 4)
    if stored_crc != crc(b[: header_len - 4]):
        raise DamagedError("envelope header checksum mismatch")
    if name_len == 0:
        raise DamagedError("empty pipeline name")
    try:
        pipeline = b[fixed : fixed + name_len].decode("utf-8")
    except UnicodeDecodeError:
        raise DamagedError("pipeline name is not UTF-8") from None
    created, expires, revision, payload_len, payload_crc = struct.unpack_from("<QQQQI", b, 8)
    if not flags & _FLAG_EXPIRES and expires != 0:
        raise DamagedError("expiry set without its flag")
    payload = b[header_len:]
    if len(payload) != payload_len:
        raise DamagedError(f"payload is {len(payload)} bytes, the header says {payload_len}")
    if crc(payload) != payload_crc:
        raise DamagedError("payload checksum mismatch")
    fingerprint = key_crc = None
    if version >= 2:
        fingerprint, key_crc = struct.unpack_from("<QI", b, 44)
        fingerprint = fingerprint or None
        if key is not None and crc(bytes(key)) != key_crc:
            raise DamagedError("the value was written under another key (key checksum mismatch)")
    mac = b[fixed + name_len : fixed + name_len + MAC_LEN] if mac_len else None
    if mac_key is not None:
        if key is None:
            raise ValueError("checking a MAC needs the store key")
        if mac is None:
            raise UnauthenticatedError("a MAC key was given but the value carries no MAC")
        if version < 2:
            raise UnauthenticatedError(f"envelope version {version} MACs do not cover the store key")
        key = bytes(key)
        covered = b[: fixed + name_len] + struct.pack("<Q", len(key)) + key + payload
        if not hmac.compare_digest(blake3.keyed_hash(bytes(mac_key), covered), mac):
            raise UnauthenticatedError("MAC mismatch: not written under this key with this MAC key")
    return Envelope(
        version=version,
        created_ms=created,
        expires_ms=expires if flags & _FLAG_EXPIRES else None,
        revision=revision,
        type_fingerprint=fingerprint,
        key_crc=key_crc,
        pipeline=pipeline,
        mac=mac,
        payload=payload,
    )


def type_fingerprint(rust_type: str) -> int:
    """cacher's fingerprint of a Rust type name (``"Vec<u32>"``), as stored in envelopes.
    Whitespace is dropped except one space between two word characters."""
    out = []
    word = lambda c: c.isalnum() or c in "_'"  # noqa: E731
    pending_space = False
    for c in rust_type:
        if c.isspace():
            pending_space = True
            continue
        if pending_space and out and word(out[-1]) and word(c):
            out.append(" ")
        pending_space = False
        out.append(c)
    digest = blake3.derive_key("cacher-formats type fingerprint v1", "".join(out).encode("utf-8"))
    return int.from_bytes(digest[:8], "little") or 1


# ---- payloads -------------------------------------------------------------------------


class _PlainData(pickle.Unpickler):
    """Loads plain data only: the globals cacher's own pickle reader allows (sets, bytes,
    bytearray, ints, lists, and ``_codecs.encode`` for protocol-2 bytes); any other global is
    refused, so loading never runs code."""

    _ALLOWED = {
        ("builtins", n) for n in ("set", "frozenset", "list", "bytearray", "bytes", "int")
    } | {("_codecs", "encode")}
    # Protocols 0-2 name them as Python 2 did; CPython maps the names (``fix_imports``).
    _PY2 = {("__builtin__", n) for n in ("set", "frozenset", "list", "bytearray", "long")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED or (module, name) in self._PY2:
            return super().find_class(module, name)
        raise UnsupportedError(f"pickle global {module}.{name} is not plain data; refused")


def _zstd_decode(data: bytes, params: list, dictionaries: Mapping[int, bytes]) -> bytes:
    try:
        import zstandard
    except ImportError:
        raise UnsupportedError("this value is zstd-compressed: install the 'zstandard' package") from None
    dict_id = None
    for p in params:
        if p.startswith("dict="):
            dict_id = int(p[5:])
    kwargs = {}
    if dict_id is not None:
        if dict_id not in dictionaries:
            raise UnsupportedError(f"this value needs zstd dictionary {dict_id}: pass it in zstd_dictionaries")
        kwargs["dict_data"] = zstandard.ZstdCompressionDict(dictionaries[dict_id])
    out = io.BytesIO()
    try:
        reader = zstandard.ZstdDecompressor(**kwargs).stream_reader(io.BytesIO(data))
        while True:
            chunk = reader.read(1 << 20)
            if not chunk:
                break
            out.write(chunk)
            if out.tell() > MAX_DECODED_LEN:
                raise DamagedError(f"zstd payload decodes to more than {MAX_DECODED_LEN} bytes")
    except zstandard.ZstdError as e:
        raise DamagedError(f"zstd payload does not decode: {e}") from None
    return out.getvalue()


def decode_payload(envelope: Envelope, zstd_dictionaries: Optional[Mapping[int, bytes]] = None) -> Any:
    """The Python value of a checked envelope's payload: codecs undone right to left, then
    the format (``json`` -> ``json.loads``, ``cbor`` -> ``cbor2.loads``, ``pickle`` -> plain
    data only, ``raw`` -> ``bytes``)."""
    fmt, *codecs = envelope.pipeline.split("+")
    data = envelope.payload
    for codec in reversed(codecs):
        name, *params = codec.split(":")
        if name != "zstd":
            raise UnsupportedError(f"unknown codec {name!r} in pipeline {envelope.pipeline!r}")
        data = _zstd_decode(data, params, zstd_dictionaries or {})
    try:
        if fmt == "raw":
            return bytes(data)
        if fmt == "json":
            return json.loads(data.decode("utf-8"))
        if fmt == "pickle":
            return _PlainData(io.BytesIO(data)).load()
        if fmt == "cbor":
            try:
                import cbor2
            except ImportError:
                raise UnsupportedError("this value is CBOR: install the 'cbor2' package") from None
            return cbor2.loads(data)
    except (ValueError, EOFError, pickle.UnpicklingError) as e:
        # The checksums held, so the writer and this reader disagree about the format.
        raise DamagedError(f"{fmt} payload does not decode: {e}") from None
    raise UnsupportedError(f"unknown format {fmt!r} (pipeline {envelope.pipeline!r})")
