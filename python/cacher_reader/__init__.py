"""Read a cacher cache from Python: list keys and decode values of a ``DirStore``,
``LogStore`` or ``LmdbStore`` written by the Rust crate, checking every checksum (and the MAC,
given the key) before a value is returned.

    import cacher_reader
    with cacher_reader.open_store("cache-dir") as store:
        for key in store.keys():
            print(key, store.get(key))

Standard library only; optional: ``lmdb`` (LmdbStore), ``zstandard`` (``+zstd`` values),
``cbor2`` (``cbor`` values), ``blake3`` (faster MACs and DirStore lookups).
"""

from __future__ import annotations

import os

from .dir_store import DirStoreReader
from .envelope import Envelope, decode_payload, open_envelope, type_fingerprint
from .errors import (
    CacherError,
    DamagedError,
    LiveSharingError,
    UnauthenticatedError,
    UnsupportedError,
    UpgradeRequiredError,
)
from .lmdb_store import LmdbStoreReader
from .log_store import LogStoreReader
from .store import StoreReader

__all__ = [
    "open_store",
    "StoreReader",
    "DirStoreReader",
    "LogStoreReader",
    "LmdbStoreReader",
    "Envelope",
    "open_envelope",
    "decode_payload",
    "type_fingerprint",
    "CacherError",
    "DamagedError",
    "UpgradeRequiredError",
    "UnauthenticatedError",
    "UnsupportedError",
    "LiveSharingError",
]

__version__ = "0.1.0"


def open_store(path) -> StoreReader:
    """Opens the store at ``path`` for reading, telling the kind from what is there: a file
    starting ``CACHELOG`` is a LogStore, a directory with ``cacher-dir.toml`` a DirStore, one
    with ``data.mdb`` an LmdbStore."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return LogStoreReader(path)
    if os.path.isfile(os.path.join(path, "cacher-dir.toml")):
        return DirStoreReader(path)
    if os.path.isfile(os.path.join(path, "data.mdb")):
        return LmdbStoreReader(path)
    raise CacherError(f"{path}: not a cacher DirStore, LogStore or LmdbStore")


def _main(argv=None) -> int:
    """``python -m cacher_reader PATH [--mac-key-hex HEX] [--raw]``: prints each key and its
    decoded value (``--raw``: the store's bytes, for stores not written by a Cache), and
    exits 1 if any value is damaged."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cacher_reader", description=_main.__doc__)
    parser.add_argument("path")
    parser.add_argument("--mac-key-hex")
    parser.add_argument("--raw", action="store_true", help="print stored bytes, not envelopes")
    args = parser.parse_args(argv)
    mac_key = bytes.fromhex(args.mac_key_hex) if args.mac_key_hex else None
    damaged = 0
    with open_store(args.path) as store:
        for key in store.keys():
            try:
                if args.raw:
                    value = store.get_raw(key)
                else:
                    value = store.get(key, mac_key=mac_key, include_expired=True)
                print(f"{key!r}: {value!r}")
            except CacherError as e:
                damaged += 1
                print(f"{key!r}: {type(e).__name__}: {e}")
        for where, problem in getattr(store, "problems", {}).items():
            damaged += 1
            print(f"{where!r}: {problem}")
    return 1 if damaged else 0
