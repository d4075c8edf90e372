-- The A2A gateway's index of A2A tasks (ListTasks: newest status first, filtered and counted by
-- index), the push-notification configurations callers set on them, and the notifications
-- waiting to be POSTed (in order per configuration, retried, dead after the last attempt).
CREATE TABLE a2a_tasks (
    task_id    TEXT PRIMARY KEY,            -- the first turn's task id
    owner      TEXT NOT NULL,
    context_id TEXT NOT NULL,
    state      TEXT NOT NULL,               -- A2A TaskState name
    status_at  INTEGER NOT NULL,            -- when it entered that state
    root_seq   INTEGER NOT NULL,            -- tasks.seq of the first turn
    turns      INTEGER NOT NULL DEFAULT 1,
    artifacts  TEXT NOT NULL DEFAULT '[]'   -- artifact ids already announced (JSON array)
);
CREATE INDEX idx_a2a_tasks_owner ON a2a_tasks (owner, status_at, task_id);
CREATE INDEX idx_a2a_tasks_owner_state ON a2a_tasks (owner, state, status_at, task_id);
CREATE INDEX idx_a2a_tasks_owner_context ON a2a_tasks (owner, context_id, status_at, task_id);
CREATE INDEX idx_a2a_tasks_recent ON a2a_tasks (status_at, task_id);
CREATE INDEX idx_a2a_tasks_state ON a2a_tasks (state, status_at, task_id);
CREATE INDEX idx_a2a_tasks_context ON a2a_tasks (context_id, status_at, task_id);
CREATE INDEX idx_a2a_tasks_seq ON a2a_tasks (root_seq);

CREATE TABLE a2a_push_configs (
    task_id          TEXT NOT NULL,
    config_id        TEXT NOT NULL,
    owner            TEXT NOT NULL,
    url              TEXT NOT NULL,
    token            TEXT NOT NULL DEFAULT '',
    auth_scheme      TEXT NOT NULL DEFAULT '',
    auth_credentials TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (task_id, config_id)
);

CREATE TABLE a2a_push_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     TEXT NOT NULL,
    config_id   TEXT NOT NULL,
    body        BLOB NOT NULL,                -- a StreamResponse, JSON
    status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempt     INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,             -- not tried again before
    lease_until INTEGER,                      -- a broker is POSTing it until then
    last_error  TEXT,
    created_at  INTEGER NOT NULL,
    settled_at  INTEGER
);
CREATE INDEX idx_a2a_push_pending ON a2a_push_events (task_id, config_id, seq) WHERE status = 'pending';
CREATE INDEX idx_a2a_push_due ON a2a_push_events (next_at) WHERE status = 'pending';
CREATE INDEX idx_a2a_push_settled ON a2a_push_events (status, settled_at) WHERE status != 'pending';
