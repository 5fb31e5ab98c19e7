-- Web UI sessions. The cookie carries a random session id; only its SHA-256 is stored, so
-- a copy of the database does not sign anyone in. `csrf` is the session's form token.
CREATE TABLE web_sessions (
    id_sha256 TEXT PRIMARY KEY,
    login TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
