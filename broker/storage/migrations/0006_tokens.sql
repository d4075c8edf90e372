-- Access tokens the broker issued (--auth token). Only a SHA-256 digest of each token's secret
-- is kept: the secret itself is printed once, at creation, and stored nowhere.
CREATE TABLE tokens (
    token_id    TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    subject     TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('agent', 'orchestrator', 'admin')),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER,
    note        TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
