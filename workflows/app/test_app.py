import unittest

import app


class AppTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(app.add(2, 3), 5)

    def test_health(self):
        self.assertEqual(app.health()["status"], "ok")


if __name__ == "__main__":
    unittest.main()
