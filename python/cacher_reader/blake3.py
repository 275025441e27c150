"""BLAKE3 (hash, keyed hash, derive key) in pure Python, for finding DirStore entries and
checking MACs without a compiled dependency. Uses the ``blake3`` package when it is installed
(much faster on large values); both give the same digests.

Follows the BLAKE3 specification: 64-byte blocks, 1024-byte chunks, a binary tree whose left
subtree holds the largest power of two of chunks that leaves at least one byte to the right.
"""

from __future__ import annotations

try:  # pragma: no cover - depends on the machine
    import blake3 as _native
except ImportError:  # pragma: no cover
    _native = None

_IV = (
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
    0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
)
_PERM = (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
_CHUNK_START, _CHUNK_END, _PARENT, _ROOT = 1, 2, 4, 8
_KEYED_HASH, _DERIVE_KEY_CONTEXT, _DERIVE_KEY_MATERIAL = 16, 32, 64
_BLOCK, _CHUNK = 64, 1024
_M = 0xFFFFFFFF


def _compress(cv, m, counter, block_len, flags):
    s = list(cv) + list(_IV[:4]) + [counter & _M, (counter >> 32) & _M, block_len, flags]
    m = list(m)

    def g(a, b, c, d, x, y):
        s[a] = (s[a] + s[b] + x) & _M
        t = s[d] ^ s[a]
        s[d] = ((t >> 16) | (t << 16)) & _M
        s[c] = (s[c] + s[d]) & _M
        t = s[b] ^ s[c]
        s[b] = ((t >> 12) | (t << 20)) & _M
        s[a] = (s[a] + s[b] + y) & _M
        t = s[d] ^ s[a]
        s[d] = ((t >> 8) | (t << 24)) & _M
        s[c] = (s[c] + s[d]) & _M
        t = s[b] ^ s[c]
        s[b] = ((t >> 7) | (t << 25)) & _M

    for r in range(7):
        g(0, 4, 8, 12, m[0], m[1])
        g(1, 5, 9, 13, m[2], m[3])
        g(2, 6, 10, 14, m[4], m[5])
        g(3, 7, 11, 15, m[6], m[7])
        g(0, 5, 10, 15, m[8], m[9])
        g(1, 6, 11, 12, m[10], m[11])
        g(2, 7, 8, 13, m[12], m[13])
        g(3, 4, 9, 14, m[14], m[15])
        if r < 6:
            m = [m[i] for i in _PERM]
    for i in range(8):
        s[i] ^= s[i + 8]
        s[i + 8] ^= cv[i]
    return s


def _words(block: bytes):
    block = block.ljust(_BLOCK, b"\0")
    return [int.from_bytes(block[i:i + 4], "little") for i in range(0, _BLOCK, 4)]


def _chunk(key, data, counter, flags):
    """The output node of one chunk: (cv, words, counter, block_len, flags) of its last block."""
    blocks = [data[i:i + _BLOCK] for i in range(0, len(data), _BLOCK)] or [b""]
    cv = key
    for i, block in enumerate(blocks):
        f = flags | (_CHUNK_START if i == 0 else 0)
        if i == len(blocks) - 1:
            return (cv, _words(block), counter, len(block), f | _CHUNK_END)
        cv = _compress(cv, _words(block), counter, _BLOCK, f)[:8]
    raise AssertionError("unreachable")


def _node(key, data, chunk_counter, flags):
    if len(data) <= _CHUNK:
        return _chunk(key, data, chunk_counter, flags)
    left_chunks = 1 << (((len(data) - 1) // _CHUNK).bit_length() - 1)
    split = left_chunks * _CHUNK
    left = _cv(_node(key, data[:split], chunk_counter, flags))
    right = _cv(_node(key, data[split:], chunk_counter + left_chunks, flags))
    return (key, left + right, 0, _BLOCK, flags | _PARENT)


def _cv(node):
    return _compress(*node)[:8]


def _root(node, length=32) -> bytes:
    cv, m, _, block_len, flags = node
    out = b""
    counter = 0
    while len(out) < length:
        words = _compress(cv, m, counter, block_len, flags | _ROOT)
        out += b"".join(w.to_bytes(4, "little") for w in words)
        counter += 1
    return out[:length]


def _key_words(key: bytes):
    if len(key) != 32:
        raise ValueError("a BLAKE3 key is 32 bytes")
    return [int.from_bytes(key[i:i + 4], "little") for i in range(0, 32, 4)]


def hash(data: bytes) -> bytes:  # noqa: A001 - the algorithm's own name
    """BLAKE3 of ``data``, 32 bytes."""
    if _native is not None:
        return _native.blake3(data).digest()
    return _root(_node(list(_IV), bytes(data), 0, 0))


def keyed_hash(key: bytes, data: bytes) -> bytes:
    """Keyed BLAKE3 (the MAC mode) of ``data`` under the 32-byte ``key``."""
    if _native is not None:
        return _native.blake3(data, key=key).digest()
    return _root(_node(_key_words(key), bytes(data), 0, _KEYED_HASH))


def derive_key(context: str, material: bytes, length: int = 32) -> bytes:
    """BLAKE3's key derivation: ``material`` under the ``context`` string."""
    if _native is not None:
        return _native.blake3(material, derive_key_context=context).digest(length)
    context_key = _root(_node(list(_IV), context.encode("utf-8"), 0, _DERIVE_KEY_CONTEXT))
    node = _node(_key_words(context_key), bytes(material), 0, _DERIVE_KEY_MATERIAL)
    return _root(node, length)
