"""A minimal PostgreSQL client in pure Python (no psycopg needed): protocol 3.0 over TCP,
SCRAM-SHA-256 / md5 / cleartext / trust authentication, simple queries.

    conn = Conn("postgresql://user:password@host:5432/db")
    conn.query("SELECT 1")   # -> (column names, rows as tuples of str/None, command tag)

Used by Gantry's seed CI example (workflows/seed-ci.yml) where the job image has python3
but no database driver.
"""
import base64
import hashlib
import hmac
import os
import socket
import struct
from urllib.parse import unquote, urlparse


class PgError(Exception):
    pass


def _cstr(s):
    return s.encode() + b"\0"


def _fields(payload):
    """ErrorResponse/NoticeResponse fields as {code: text}."""
    out = {}
    for part in payload.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return out


class Conn:
    def __init__(self, url, timeout=10):
        u = urlparse(url)
        if u.scheme not in ("postgres", "postgresql"):
            raise PgError(f"not a postgresql:// URL: {u.scheme}://...")
        self.user = unquote(u.username or "postgres")
        self.password = unquote(u.password or "")
        db = unquote(u.path.lstrip("/")) or self.user
        self.params = {}
        self.sock = socket.create_connection((u.hostname or "localhost", u.port or 5432), timeout)
        body = struct.pack("!i", 196608)
        for k, v in (("user", self.user), ("database", db), ("client_encoding", "UTF8")):
            body += _cstr(k) + _cstr(v)
        body += b"\0"
        self.sock.sendall(struct.pack("!i", len(body) + 4) + body)
        self._authenticate()
        while True:
            t, p = self._read()
            if t == b"S":
                k, v, _ = p.split(b"\0", 2)
                self.params[k.decode()] = v.decode()
            elif t == b"E":
                raise PgError(_fields(p).get("M", "error"))
            elif t == b"Z":
                return

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise PgError("server closed the connection")
            buf += chunk
        return buf

    def _read(self):
        t = self._exact(1)
        (n,) = struct.unpack("!i", self._exact(4))
        return t, self._exact(n - 4)

    def _send(self, t, payload):
        self.sock.sendall(t + struct.pack("!i", len(payload) + 4) + payload)

    def _authenticate(self):
        while True:
            t, p = self._read()
            if t == b"E":
                raise PgError(_fields(p).get("M", "authentication failed"))
            if t != b"R":
                raise PgError(f"unexpected message {t!r} during authentication")
            (code,) = struct.unpack("!i", p[:4])
            if code == 0:
                return
            if code == 3:
                self._send(b"p", _cstr(self.password))
            elif code == 5:
                inner = hashlib.md5((self.password + self.user).encode()).hexdigest()
                outer = hashlib.md5(inner.encode() + p[4:8]).hexdigest()
                self._send(b"p", _cstr("md5" + outer))
            elif code == 10:
                if b"SCRAM-SHA-256\0" not in p[4:]:
                    raise PgError("server offers no SCRAM-SHA-256")
                self._scram()
                return self._authenticate()
            else:
                raise PgError(f"unsupported authentication method {code}")

    def _scram(self):
        nonce = base64.b64encode(os.urandom(18)).decode()
        first_bare = "n=,r=" + nonce
        first = ("n,," + first_bare).encode()
        self._send(b"p", _cstr("SCRAM-SHA-256") + struct.pack("!i", len(first)) + first)
        t, p = self._read()
        if t == b"E":
            raise PgError(_fields(p).get("M", "authentication failed"))
        server_first = p[4:].decode()
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        if not attrs["r"].startswith(nonce):
            raise PgError("SCRAM: server nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac(
            "sha256", self.password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
        )
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        final_bare = "c=biws,r=" + attrs["r"]
        auth_message = ",".join((first_bare, server_first, final_bare)).encode()
        signature = hmac.digest(stored_key, auth_message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self._send(b"p", (final_bare + ",p=" + base64.b64encode(proof).decode()).encode())
        t, p = self._read()
        if t == b"E":
            raise PgError(_fields(p).get("M", "authentication failed"))
        server_key = hmac.digest(salted, b"Server Key", "sha256")
        expected = base64.b64encode(hmac.digest(server_key, auth_message, "sha256")).decode()
        if p[4:].decode() != "v=" + expected:
            raise PgError("SCRAM: the server's signature does not match")

    def query(self, sql):
        """Runs one statement; returns (columns, rows, command tag) of the last result."""
        self._send(b"Q", _cstr(sql))
        cols, rows, tag, error = [], [], "", None
        while True:
            t, p = self._read()
            if t == b"T":
                (n,) = struct.unpack("!h", p[:2])
                pos, cols, rows = 2, [], []
                for _ in range(n):
                    end = p.index(b"\0", pos)
                    cols.append(p[pos:end].decode())
                    pos = end + 1 + 18
            elif t == b"D":
                (n,) = struct.unpack("!h", p[:2])
                pos, row = 2, []
                for _ in range(n):
                    (size,) = struct.unpack("!i", p[pos : pos + 4])
                    pos += 4
                    if size < 0:
                        row.append(None)
                    else:
                        row.append(p[pos : pos + size].decode())
                        pos += size
                rows.append(tuple(row))
            elif t == b"C":
                tag = p.rstrip(b"\0").decode()
            elif t == b"E":
                error = _fields(p)
            elif t == b"Z":
                if error:
                    raise PgError(f"{error.get('S', 'ERROR')}: {error.get('M', '')} ({error.get('C', '')})")
                return cols, rows, tag

    def close(self):
        try:
            self._send(b"X", b"")
        finally:
            self.sock.close()
