"""The reader against the golden fixtures under ``fixtures/`` (written by the Rust crates and
never rewritten). Run: ``python3 -m unittest discover -s python/tests`` from the repository
root; ``cargo test --test python_reader`` runs it too."""

import dataclasses
import os
import pickle
import shutil
import sys
import tempfile
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(HERE)), "fixtures")

import cacher_reader as cr  # noqa: E402
from cacher_reader import blake3, castagnoli  # noqa: E402
from cacher_reader.envelope import decode_payload, open_envelope  # noqa: E402


def fixture(*parts):
    return os.path.join(FIXTURES, *parts)


def read(*parts):
    with open(fixture(*parts), "rb") as f:
        return f.read()


def has(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


class Blake3(unittest.TestCase):
    def setUp(self):
        # The pure-Python code, even where the blake3 package is installed.
        self.native, blake3._native = blake3._native, None

    def tearDown(self):
        blake3._native = self.native

    def test_known_digests(self):
        self.assertEqual(
            blake3.hash(b"").hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
        )
        # The fingerprint `cacher_formats::type_fingerprint("String")` documents.
        self.assertEqual(cr.type_fingerprint("String"), 0x4D84A0812529FD78)
        self.assertEqual(cr.type_fingerprint("Vec < u8 >"), cr.type_fingerprint("Vec<u8>"))

    def test_dir_fixture_file_names_are_blake3_of_their_keys(self):
        store = cr.DirStoreReader(fixture("dir", "v1"))
        for key in store.keys():
            name = blake3.hash(key).hex()
            self.assertTrue(os.path.isfile(fixture("dir", "v1", "v1", name[:2], name)), key)


SAMPLE_FIELDS = {
    "name": "sample ✓",
    "small": -128,
    "signed": -(2**63),
    "unsigned": 2**63 - 1,
    "float": -1.5e-300,
    "flag": True,
    "maybe": None,
}


class Envelopes(unittest.TestCase):
    KEY = b"fixture:key"

    def check_sample(self, value, bytes_as=b"\x00\x01\x02\xfe\xff"):
        for k, v in SAMPLE_FIELDS.items():
            self.assertEqual(value[k], v, k)
        self.assertEqual(value["bytes"], bytes_as)
        self.assertEqual(value["map"], {"empty": [], "primes": [2, 3, 5, 7]})

    def test_v2_json_and_raw_decode(self):
        env = open_envelope(read("formats", "v2", "envelope-json.bin"), key=self.KEY)
        self.assertEqual((env.version, env.pipeline), (2, "json"))
        self.assertEqual(env.type_fingerprint, cr.type_fingerprint("Doc"))
        self.check_sample(decode_payload(env), bytes_as=[0, 1, 2, 254, 255])
        env = open_envelope(read("formats", "v2", "envelope-raw.bin"), key=self.KEY)
        self.assertEqual(env.type_fingerprint, cr.type_fingerprint("Vec<u8>"))
        self.assertIsInstance(decode_payload(env), bytes)

    @unittest.skipUnless(has("cbor2") and has("zstandard"), "needs cbor2 and zstandard")
    def test_v2_cbor_pickle_and_zstd_decode(self):
        for name in ("envelope-cbor-zstd3.bin", "envelope-pickle-zstd19.bin", "envelope-no-fingerprint.bin"):
            env = open_envelope(read("formats", "v2", name), key=self.KEY)
            self.check_sample(decode_payload(env))
        env = open_envelope(read("formats", "v2", "envelope-no-fingerprint.bin"))
        self.assertIsNone(env.type_fingerprint)

    @unittest.skipUnless(has("zstandard"), "needs zstandard")
    def test_zstd_dictionary_values_need_their_dictionary(self):
        env = open_envelope(read("formats", "v2", "envelope-raw-zstd-dict.bin"), key=self.KEY)
        with self.assertRaises(cr.UnsupportedError):
            decode_payload(env)
        dict_id = int.from_bytes(read("formats", "v1", "dictionary.id"), "little")
        value = decode_payload(env, {dict_id: read("formats", "v1", "dictionary.zdict")})
        # records()[7] of formats/tests/fixtures: one of the JSON lines the dictionary was
        # trained on.
        self.assertEqual(value, b'{"id":7,"login":"user433","plan":"pro","active":false}')

    # The published fixture key of formats/tests/fixtures/main.rs.
    MAC_KEY = blake3.derive_key("cacher-formats fixture mac v1", b"fixture secret")

    def test_mac_is_checked_with_the_key(self):
        stored = read("formats", "v2", "envelope-mac.bin")
        env = open_envelope(stored, key=self.KEY, mac_key=self.MAC_KEY)
        self.assertEqual(len(env.mac), 32)
        with self.assertRaises(cr.UnauthenticatedError):
            open_envelope(stored, key=self.KEY, mac_key=bytes([2] * 32))
        with self.assertRaises(cr.DamagedError):  # written under another key
            open_envelope(stored, key=b"other", mac_key=self.MAC_KEY)
        with self.assertRaises(cr.UnauthenticatedError):  # no MAC at all
            open_envelope(read("formats", "v2", "envelope-json.bin"), key=self.KEY, mac_key=self.MAC_KEY)
        # Envelope v1 MACs do not cover the key: refused when a MAC key is given.
        with self.assertRaises(cr.UnauthenticatedError):
            open_envelope(read("formats", "v1", "envelope-mac.bin"), key=b"k", mac_key=self.MAC_KEY)

    def test_damaged_and_future_envelopes_are_refused(self):
        for name in sorted(os.listdir(fixture("formats", "v2"))):
            if name.startswith("corrupt-"):
                with self.assertRaises(cr.DamagedError, msg=name):
                    open_envelope(read("formats", "v2", name), key=self.KEY)
        # Written as "a v2 body claiming version 3" when 3 was the future; version 3 exists now
        # (CRC-32C checksums), so it is damaged, not newer (the newer case: v3/upgrade-v4.bin).
        with self.assertRaises(cr.DamagedError):
            open_envelope(read("formats", "v2", "upgrade-v3.bin"))
        for name in sorted(os.listdir(fixture("formats", "v1"))):
            if name.startswith("corrupt-"):
                with self.assertRaises(cr.DamagedError, msg=name):
                    open_envelope(read("formats", "v1", name))

    V3_ENVELOPES = sorted(n for n in os.listdir(fixture("formats", "v3")) if n.startswith("envelope-"))

    def test_v3_envelopes_read_as_their_v2_namesakes(self):
        self.assertEqual(len(self.V3_ENVELOPES), 7)
        for name in self.V3_ENVELOPES:
            v2 = open_envelope(read("formats", "v2", name), key=self.KEY)
            v3 = open_envelope(read("formats", "v3", name), key=self.KEY)
            self.assertEqual((v2.version, v3.version), (2, 3), name)
            # The MAC covers the version byte, so it differs too.
            self.assertEqual(dataclasses.replace(v3, version=2, key_crc=v2.key_crc, mac=v2.mac), v2, name)
            self.assertEqual(v3.key_crc, castagnoli.crc32c(self.KEY), name)
        env = open_envelope(read("formats", "v3", "envelope-json.bin"), key=self.KEY)
        self.check_sample(decode_payload(env), bytes_as=[0, 1, 2, 254, 255])

    def test_v3_mac_is_checked_with_the_key(self):
        stored = read("formats", "v3", "envelope-mac.bin")
        self.assertEqual(len(open_envelope(stored, key=self.KEY, mac_key=self.MAC_KEY).mac), 32)
        with self.assertRaises(cr.UnauthenticatedError):
            open_envelope(stored, key=self.KEY, mac_key=bytes([2] * 32))
        with self.assertRaises(cr.DamagedError):  # written under another key
            open_envelope(stored, key=b"other", mac_key=self.MAC_KEY)

    def test_damaged_v3_envelopes_are_refused_and_v4_is_upgrade_required(self):
        names = [n for n in sorted(os.listdir(fixture("formats", "v3"))) if n.startswith("corrupt-")]
        self.assertIn("corrupt-v2-checksums.bin", names)
        for name in names:
            with self.assertRaises(cr.DamagedError, msg=name):
                open_envelope(read("formats", "v3", name), key=self.KEY)
        with self.assertRaises(cr.UpgradeRequiredError):
            open_envelope(read("formats", "v3", "upgrade-v4.bin"))
        good = read("formats", "v3", "envelope-raw.bin")
        for at in range(len(good)):
            bad = bytearray(good)
            bad[at] ^= 0x10
            with self.assertRaises((cr.DamagedError, cr.UpgradeRequiredError), msg=f"byte {at}"):
                open_envelope(bytes(bad), key=self.KEY)

    def test_v3_envelopes_read_with_the_pure_python_crc32c_too(self):
        with mock.patch.object(castagnoli, "_PACKAGE", None):
            for name in self.V3_ENVELOPES:
                open_envelope(read("formats", "v3", name), key=self.KEY)
            with self.assertRaises(cr.DamagedError):
                open_envelope(read("formats", "v3", "corrupt-payload-crc.bin"), key=self.KEY)

    def test_v1_envelopes_still_read(self):
        env = open_envelope(read("formats", "v1", "envelope-json.bin"), key=b"any key")
        self.assertEqual((env.version, env.type_fingerprint, env.key_crc), (1, None, None))
        self.check_sample(decode_payload(env), bytes_as=[0, 1, 2, 254, 255])

    def test_pickle_globals_other_than_plain_data_are_refused(self):
        class Evil:
            def __reduce__(self):
                return (os.system, ("echo pwned",))

        env = cr.Envelope(2, 0, None, 0, None, None, "pickle", None, pickle.dumps(Evil()))
        with self.assertRaises(cr.UnsupportedError):
            decode_payload(env)
        env = cr.Envelope(2, 0, None, 0, None, None, "pickle", None, pickle.dumps({1, 2}, protocol=2))
        self.assertEqual(decode_payload(env), {1, 2})


DIR_ENTRIES = {
    b"hello": b"world",
    b"": b"the empty key",
    b"empty-value": b"",
    b"../../etc/passwd": b"not a path",
    b"nul\0and\xff": bytes([0, 1, 2, 0xFE, 0xFF]),
    "ключ".encode(): "значение".encode(),
    b"large": bytes(i * 31 % 251 for i in range(70_000)),
}


class Castagnoli(unittest.TestCase):
    def test_both_paths_give_the_check_value_and_agree(self):
        # The catalogue check value of CRC-32C: the CRC of "123456789".
        self.assertEqual(castagnoli.pure_crc32c(b"123456789"), 0xE3069283)
        self.assertEqual(castagnoli.crc32c(b"123456789"), 0xE3069283)
        self.assertEqual(castagnoli.pure_crc32c(b""), 0)
        data = bytes((i * 7919 + 13) % 251 for i in range(3000))
        self.assertEqual(castagnoli.pure_crc32c(data[1000:], castagnoli.pure_crc32c(data[:1000])), castagnoli.pure_crc32c(data))
        for n in (0, 1, 7, 8, 9, 63, 64, 600, 3000):
            self.assertEqual(castagnoli.crc32c(data[:n]), castagnoli.pure_crc32c(data[:n]), n)

    @unittest.skipUnless(has("crc32c"), "needs the crc32c package (.ci/requirements.txt)")
    def test_the_package_is_used_when_importable(self):
        self.assertTrue(castagnoli.ACCELERATED)


class DirStoreFixtures(unittest.TestCase):
    def test_v1_reads_exactly(self):
        store = cr.open_store(fixture("dir", "v1"))
        self.assertIsInstance(store, cr.DirStoreReader)
        self.assertEqual({k: store.get_raw(k) for k in store.keys()}, DIR_ENTRIES)
        self.assertIsNone(store.get_raw(b"missing"))

    def test_damaged_entries_are_reported_not_returned(self):
        for name in ("v1-corrupt-checksum", "v1-corrupt-value", "v1-corrupt-truncated", "v1-corrupt-magic"):
            store = cr.open_store(fixture("dir", name))
            with self.assertRaises(cr.DamagedError, msg=name):
                store.get_raw(b"hello")

    def test_a_store_with_the_accounting_sidecar_reads_as_layout_1(self):
        store = cr.open_store(fixture("dir", "acct-v2-store"))
        self.assertEqual(
            {k: store.get_raw(k) for k in store.keys()},
            {b"alpha": b"first", b"beta": b"second", b"gamma": b"third!!"},
        )

    def test_future_layouts_are_upgrade_required(self):
        with self.assertRaises(cr.UpgradeRequiredError):
            cr.open_store(fixture("dir", "v2-future-layout"))
        store = cr.open_store(fixture("dir", "v1-future-version"))
        with self.assertRaises(cr.UpgradeRequiredError):
            store.get_raw(b"hello")


LOG_ENTRIES = {
    b"alpha": b"uno",
    b"": b"value of the empty key",
    b"nul\0inside": bytes([0, 1, 2, 255]),
    bytes([0xFF, 0xFE, 0x80]): b"",
    b"../not/a/path": b"path-like key",
    b"all-bytes": bytes(range(256)),
}


class LogStoreFixtures(unittest.TestCase):
    def contents(self, name):
        with cr.open_store(fixture("log", name)) as store:
            return {k: store.get_raw(k) for k in store.keys()}, store.problems

    def test_v1_reads_exactly(self):
        self.assertEqual(self.contents("v1.log"), (LOG_ENTRIES, {}))

    def test_a_torn_or_zero_filled_tail_is_reported_and_the_rest_read(self):
        for name in ("v1-torn-tail.log", "v1-zero-filled-tail.log"):
            contents, problems = self.contents(name)
            self.assertEqual(contents, LOG_ENTRIES, name)
            self.assertEqual(len(problems), 1, name)

    def test_damaged_records_are_reported_not_returned(self):
        # As the Rust reader: a key whose last record is damaged reads as damaged (neither
        # the damaged value nor an older one comes back).
        with cr.open_store(fixture("log", "v1-damaged-last-record.log")) as store:
            self.assertEqual(len(store.problems), 1)
            with self.assertRaises(cr.DamagedError):
                store.get_raw(b"alpha")
            self.assertEqual(store.get_raw(b"all-bytes"), LOG_ENTRIES[b"all-bytes"])
        # A damaged record in the middle (whose header still holds) is reported; the Rust
        # store refuses to open such a file, the reader still reads the sound records.
        with cr.open_store(fixture("log", "v1-corrupt-middle.log")) as store:
            self.assertEqual(len(store.problems), 1)
            self.assertIn("offset 64", next(iter(store.problems.values())))
            for key in store.keys():
                self.assertEqual(store.get_raw(key), LOG_ENTRIES[key])

    def test_bad_magic_and_future_version_are_refused(self):
        with self.assertRaises(cr.DamagedError):
            cr.open_store(fixture("log", "v1-bad-magic.log"))
        # Version 2 is known now, so this fixture (version 2 under version 1's checksum) is a
        # damaged header; version 3 is the future one.
        with self.assertRaises(cr.DamagedError):
            cr.open_store(fixture("log", "v1-future-version.log"))
        with self.assertRaises(cr.UpgradeRequiredError):
            cr.open_store(fixture("log", "v2-future-version.log"))

    def test_v2_and_mixed_logs_read_exactly(self):
        self.assertEqual(self.contents("v2.log"), (LOG_ENTRIES, {}))
        mixed = {k: v for k, v in LOG_ENTRIES.items() if k != b"all-bytes"}
        mixed[b"alpha"] = b"dos"
        mixed[b"beta"] = b"new in v2"
        self.assertEqual(self.contents("v2-mixed.log"), (mixed, {}))

    def test_a_damaged_v2_record_is_reported_not_returned(self):
        with cr.open_store(fixture("log", "v2-damaged-key-and-crc.log")) as store:
            self.assertEqual(len(store.problems), 1)
            self.assertEqual(store.get_raw(b"all-bytes"), LOG_ENTRIES[b"all-bytes"])
            # Its key bytes are damaged: the key block names "alpha", whose older value
            # "uno" must not come back.
            with self.assertRaises(cr.DamagedError):
                store.get_raw(b"alpha")


LMDB_ENTRIES = {
    b"": b"the empty key",
    b"short": b"value",
    b"binary\x00\xff": bytes((i * 7) % 256 for i in range(300)),
    b"L" * 600: b"a key past LMDB's limit",
}


@unittest.skipUnless(has("lmdb"), "needs py-lmdb")
class LmdbStoreFixtures(unittest.TestCase):
    def open_copy(self, name):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        shutil.copy(fixture("lmdb", name, "data.mdb"), tmp)
        store = cr.open_store(tmp)
        self.addCleanup(store.close)
        return store

    def test_v1_and_v2_read_exactly(self):
        for name, version in (("v1-store", 1), ("v2-store", 2)):
            store = self.open_copy(name)
            self.assertEqual(store.layout_version, version)
            self.assertEqual({k: store.get_raw(k) for k in store.keys()}, LMDB_ENTRIES, name)
            self.assertEqual(store.get_raw(b"L" * 600), LMDB_ENTRIES[b"L" * 600])
            self.assertIsNone(store.get_raw(b"L" * 601))

    def test_a_damaged_value_is_reported_not_returned(self):
        store = self.open_copy("v2-bad-checksum")
        with self.assertRaises(cr.DamagedError):
            store.get_raw(b"short")
        self.assertEqual(store.get_raw(b""), b"the empty key")
        self.assertNotIn(b"short", list(store.keys()))
        self.assertEqual(len(store.problems), 1)
        store = self.open_copy("v2-record-over-v1-values")
        with self.assertRaises(cr.DamagedError):
            store.get_raw(b"short")

    def test_bad_entries_and_future_layouts_are_refused(self):
        store = self.open_copy("v1-bad-tag")
        list(store.keys())
        self.assertEqual(len(store.problems), 1)
        with self.assertRaises(cr.DamagedError):
            self.open_copy("v1-bad-long-entry").get_raw(b"L" * 600)
        with self.assertRaises(cr.UpgradeRequiredError):
            self.open_copy("v3-future")


class CommandLine(unittest.TestCase):
    def run_main(self, *args):
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cr._main(list(args))
        return code, out.getvalue()

    def test_lists_values_and_exits_1_on_damage(self):
        code, out = self.run_main("--raw", fixture("dir", "v1"))
        self.assertEqual(code, 0, out)
        self.assertIn("b'hello': b'world'", out)
        code, out = self.run_main("--raw", fixture("dir", "v1-corrupt-value"))
        self.assertEqual(code, 1, out)
        self.assertIn("DamagedError", out)
        self.assertNotIn("world", out.replace("v1-corrupt", ""))
        code, out = self.run_main("--raw", fixture("log", "v1-torn-tail.log"))
        self.assertEqual(code, 1, out)
        self.assertIn("torn tail", out)


if __name__ == "__main__":
    unittest.main()
