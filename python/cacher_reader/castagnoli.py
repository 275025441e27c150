"""CRC-32C (Castagnoli), the checksum of envelope version 3 (``formats/src/envelope/checksum.rs``).

Uses the ``crc32c`` pip package (hardware-accelerated) when it is importable, else the pure-Python
table below: the same values, the fallback only slower (about a megabyte a second, enough for a
cache's values; install ``crc32c`` for large blobs)."""

from __future__ import annotations

from typing import Callable


def _table() -> list:
    poly = 0x82F63B78  # the Castagnoli polynomial, bit-reversed
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _table()


def pure_crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C of ``data`` appended to ``crc`` (the CRC-32C of the bytes before it), in Python."""
    c = crc ^ 0xFFFFFFFF
    table = _TABLE
    for byte in bytes(data):
        c = table[(c ^ byte) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _accelerated() -> Callable[..., int] | None:
    try:
        import crc32c as package
    except ImportError:
        return None
    # crc32c 2.x names it crc32c; 1.x named it crc32.
    return getattr(package, "crc32c", None) or getattr(package, "crc32", None)


_PACKAGE = _accelerated()

#: Whether the ``crc32c`` package is in use (else :func:`pure_crc32c`).
ACCELERATED = _PACKAGE is not None


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data``."""
    if _PACKAGE is not None:
        return _PACKAGE(bytes(data))
    return pure_crc32c(data)
