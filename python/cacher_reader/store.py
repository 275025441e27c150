"""What every store reader offers: keys, checked raw values, envelopes and decoded values."""

from __future__ import annotations

from typing import Any, Dict, Iterator, Mapping, Optional

from .envelope import Envelope, decode_payload, open_envelope
from .errors import CacherError

_MISSING = object()


class StoreReader:
    """Read-only access to one store. Subclasses give :meth:`keys` and :meth:`get_raw`."""

    path: str

    def keys(self) -> Iterator[bytes]:  # pragma: no cover - abstract
        """Every stored key (bytes), in the store's order."""
        raise NotImplementedError

    def get_raw(self, key: bytes) -> Optional[bytes]:  # pragma: no cover - abstract
        """The value stored under ``key``, checked by the store's own checksum (a damaged one
        raises :class:`~cacher_reader.DamagedError`); ``None`` when the key is missing."""
        raise NotImplementedError

    def envelope(self, key, mac_key: Optional[bytes] = None) -> Optional[Envelope]:
        """``key``'s value opened as a checked envelope (its checksums, the key it was written
        under, and with ``mac_key`` its MAC), or ``None`` when the key is missing."""
        key = _key(key)
        raw = self.get_raw(key)
        return None if raw is None else open_envelope(raw, key=key, mac_key=mac_key)

    def get(
        self,
        key,
        default: Any = None,
        *,
        mac_key: Optional[bytes] = None,
        zstd_dictionaries: Optional[Mapping[int, bytes]] = None,
        include_expired: bool = False,
    ) -> Any:
        """``key``'s decoded value; ``default`` when it is missing or (unless
        ``include_expired``) expired, as a cacher ``Cache`` would see it."""
        env = self.envelope(key, mac_key=mac_key)
        if env is None or (env.is_expired() and not include_expired):
            return default
        return decode_payload(env, zstd_dictionaries)

    def verify(self, mac_key: Optional[bytes] = None) -> Dict[bytes, str]:
        """Checks every value (store checksum and envelope); returns ``{key: problem}`` for
        each damaged one (empty when all are sound), plus problems found while listing keys."""
        problems: Dict[bytes, str] = {}
        for key in list(self.keys()):
            try:
                self.envelope(key, mac_key=mac_key)
            except CacherError as e:
                problems[key] = f"{type(e).__name__}: {e}"
        # What listing the keys found (entries too damaged to name a key, a torn log tail).
        for where, problem in getattr(self, "problems", {}).items():
            problems.setdefault(where, problem)
        return problems

    def close(self) -> None:
        """Releases files and environments (also done on ``with`` exit)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _key(key) -> bytes:
    return key.encode("utf-8") if isinstance(key, str) else bytes(key)
