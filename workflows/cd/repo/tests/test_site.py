"""Unit tests of the shop's pages (they do not catch a broken /health: that is what the
post-deploy health check is for)."""

import json
import pathlib
import unittest

WWW = pathlib.Path(__file__).resolve().parent.parent / "www"


class Site(unittest.TestCase):
    def test_index_has_a_title(self):
        self.assertIn("<title>shop</title>", (WWW / "index.html").read_text())

    def test_health_is_json(self):
        doc = json.loads((WWW / "health").read_text())
        self.assertEqual(doc["service"], "shop")


if __name__ == "__main__":
    unittest.main()
