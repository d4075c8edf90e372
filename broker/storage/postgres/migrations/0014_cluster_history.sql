-- Brokers sharing the database follow each other's task transitions (postgres/history.py): each
-- history row says which transaction wrote it (xid: read up to the oldest one still running) and
-- which broker (its writer connection's a2a.broker setting; NULL: none, e.g. a script).
-- Added without a default first, then given one: the rows already there are not rewritten (they
-- keep NULL, which no follower reads).
ALTER TABLE task_state_history ADD COLUMN xid BIGINT, ADD COLUMN broker TEXT;
ALTER TABLE task_state_history ALTER COLUMN xid SET DEFAULT (pg_current_xact_id()::text)::bigint,
    ALTER COLUMN broker SET DEFAULT current_setting('a2a.broker', true);
CREATE INDEX idx_task_history_xid ON task_state_history (xid);
