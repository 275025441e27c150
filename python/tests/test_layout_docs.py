"""The hex dumps in docs/layouts.md are the bytes of the fixtures they name: every fenced block
whose first line starts with a path under fixtures/ is checked line by line (``@offset`` then
hex bytes, then a comment)."""

import os
import re
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "layouts.md")


def dumps():
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    for block in re.findall(r"```text\n(.*?)```", text, re.S):
        first, *lines = block.splitlines()
        path = first.split()[0] if first.strip() else ""
        if path.startswith("fixtures/"):
            yield path, lines


class LayoutDocs(unittest.TestCase):
    def test_every_hex_dump_matches_its_fixture(self):
        seen = 0
        for path, lines in dumps():
            with open(os.path.join(ROOT, path), "rb") as f:
                data = f.read()
            covered = 0
            for line in lines:
                m = re.match(r"@(\d+)\s+((?:[0-9a-f]{2} )*[0-9a-f]{2})(?:\s|$)", line)
                if not m:
                    continue
                at, want = int(m.group(1)), bytes.fromhex(m.group(2))
                self.assertEqual(data[at : at + len(want)], want, f"{path} @{at}: {line.strip()}")
                covered += 1
            self.assertGreater(covered, 5, path)
            seen += 1
        self.assertEqual(seen, 4, "the envelope, DirStore, LogStore and ArrayStore dumps")


if __name__ == "__main__":
    unittest.main()
