-- A read-only role for operators and dashboards: 'viewer' may read the console, its JSON API and
-- /metrics, and change nothing. SQLite cannot alter a CHECK constraint: the table is rebuilt.
CREATE TABLE tokens_new (
    token_id    TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    subject     TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('agent', 'orchestrator', 'admin', 'viewer')),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER,
    note        TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
INSERT INTO tokens_new SELECT token_id, secret_hash, subject, role, created_at, expires_at, revoked_at, note FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;
