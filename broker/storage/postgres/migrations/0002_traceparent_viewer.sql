-- SQLite's 0007 and 0008: the trace context a task was submitted under, and the read-only
-- 'viewer' role for tokens (the console, its JSON API and /metrics; nothing that changes state).
ALTER TABLE tasks ADD COLUMN traceparent TEXT;
ALTER TABLE tokens DROP CONSTRAINT tokens_role_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_role_check
    CHECK (role IN ('agent', 'orchestrator', 'admin', 'viewer'));
