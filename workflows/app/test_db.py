"""Database tests for the seed CI example (workflows/seed-ci.yml): a real round trip to the
PostgreSQL service named in DATABASE_URL — create a table, insert, select, aggregate."""
import os
import unittest

from pgwire import Conn, PgError


class DatabaseTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.conn = Conn(os.environ["DATABASE_URL"])

    @classmethod
    def tearDownClass(cls):
        cls.conn.close()

    def test_round_trip(self):
        c = self.conn
        c.query("DROP TABLE IF EXISTS rules")
        c.query("CREATE TABLE rules (id serial PRIMARY KEY, name text NOT NULL, weight int NOT NULL)")
        _, _, tag = c.query("INSERT INTO rules (name, weight) VALUES ('alpha', 1), ('beta', 2), ('gamma', 3)")
        self.assertEqual(tag, "INSERT 0 3")
        cols, rows, _ = c.query("SELECT name, weight FROM rules WHERE weight >= 2 ORDER BY id")
        self.assertEqual(cols, ["name", "weight"])
        self.assertEqual(rows, [("beta", "2"), ("gamma", "3")])
        _, rows, _ = c.query("SELECT count(*), sum(weight), current_database(), current_user FROM rules")
        print(f"postgres round trip: rows={rows[0][0]} sum={rows[0][1]} db={rows[0][2]} user={rows[0][3]}"
              f" server={c.params.get('server_version')}", flush=True)
        self.assertEqual(rows[0][:2], ("3", "6"))

    def test_errors_are_reported(self):
        with self.assertRaises(PgError) as e:
            self.conn.query("SELECT * FROM no_such_table")
        self.assertIn("42P01", str(e.exception))
        # The connection is still usable after an error.
        self.assertEqual(self.conn.query("SELECT 41 + 1")[1], [("42",)])


if __name__ == "__main__":
    unittest.main(verbosity=2)
