-- SQLite's 0015: the A2A gateway's task index, push-notification configurations and deliveries.
CREATE TABLE a2a_tasks (
    task_id    TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    context_id TEXT NOT NULL,
    state      TEXT NOT NULL,
    status_at  BIGINT NOT NULL,
    root_seq   BIGINT NOT NULL,
    turns      INTEGER NOT NULL DEFAULT 1,
    artifacts  TEXT NOT NULL DEFAULT '[]'
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
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (task_id, config_id)
);

CREATE TABLE a2a_push_events (
    seq         BIGSERIAL PRIMARY KEY,
    task_id     TEXT NOT NULL,
    config_id   TEXT NOT NULL,
    body        BYTEA NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempt     INTEGER NOT NULL DEFAULT 0,
    next_at     BIGINT NOT NULL,
    lease_until BIGINT,
    last_error  TEXT,
    created_at  BIGINT NOT NULL,
    settled_at  BIGINT
);
CREATE INDEX idx_a2a_push_pending ON a2a_push_events (task_id, config_id, seq) WHERE status = 'pending';
CREATE INDEX idx_a2a_push_due ON a2a_push_events (next_at) WHERE status = 'pending';
CREATE INDEX idx_a2a_push_settled ON a2a_push_events (status, settled_at) WHERE status != 'pending';
