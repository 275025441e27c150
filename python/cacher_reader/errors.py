"""The errors the reader raises. Every one is a :class:`CacherError`."""


class CacherError(Exception):
    """Base of every error of this package."""


class DamagedError(CacherError):
    """Stored bytes fail a check (magic, checksum, length): the value is damaged and is not
    returned."""


class UpgradeRequiredError(CacherError):
    """Written in a newer layout or envelope version than this reader knows."""


class UnauthenticatedError(CacherError):
    """A MAC key was given and the value's MAC is missing or does not match (planted, copied
    from another key, or written with another key)."""


class UnsupportedError(CacherError):
    """A value this reader cannot decode here: a format it does not know, an optional module
    that is not installed (``zstandard``, ``cbor2``, ``lmdb``), or a zstd dictionary not
    given."""


class LiveSharingError(CacherError):
    """The LMDB environment is open in a process whose LMDB uses another lock-file format:
    a cacher (Rust) build on heed's own LMDB (mdb.master, format 2) rather than on the LMDB
    0.9.x release py-lmdb uses (format 1). cacher's own workspace builds the release (its
    vendored ``lmdb-master-sys``) and shares the environment live; a program using cacher
    from crates.io does only with the same ``[patch.crates-io]`` line. The data file is the
    same, so open it here after the Rust process has closed it."""
