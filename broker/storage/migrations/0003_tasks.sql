-- Tasks, their dependencies, and the audit trail of every state change.

CREATE TABLE tasks (
    seq                   INTEGER PRIMARY KEY AUTOINCREMENT,   -- submission order
    task_id               TEXT NOT NULL UNIQUE,
    title                 TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 512),
    task_type             TEXT NOT NULL DEFAULT '' CHECK (length(task_type) <= 128),
    payload               BLOB NOT NULL DEFAULT x'',
    content_type          TEXT NOT NULL DEFAULT '',
    required_capabilities TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(required_capabilities)),
    priority              INTEGER NOT NULL DEFAULT 5 CHECK (priority BETWEEN 0 AND 10),
    calculated_priority   REAL NOT NULL DEFAULT 0,
    deadline              INTEGER,
    parent_id             TEXT REFERENCES tasks (task_id),
    root_id               TEXT NOT NULL,
    level                 INTEGER NOT NULL DEFAULT 0 CHECK (level >= 0),
    path                  TEXT NOT NULL,
    max_retries           INTEGER NOT NULL DEFAULT 3 CHECK (max_retries BETWEEN 0 AND 100),
    backoff_initial_us    INTEGER NOT NULL DEFAULT 1000000 CHECK (backoff_initial_us >= 0),
    backoff_multiplier    REAL NOT NULL DEFAULT 2.0 CHECK (backoff_multiplier >= 1.0),
    backoff_max_us        INTEGER NOT NULL DEFAULT 300000000 CHECK (backoff_max_us >= 0),
    lease_timeout_us      INTEGER NOT NULL CHECK (lease_timeout_us > 0),
    session_id            TEXT REFERENCES orchestration_sessions (session_id),
    tags                  TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
    metadata              TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    idempotency_key       TEXT UNIQUE,
    submitted_by          TEXT,
    status                TEXT NOT NULL
                          CHECK (status IN ('pending', 'blocked', 'ready', 'running', 'completed', 'failed', 'cancelled')),
    attempt               INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    assigned_agent_id     TEXT REFERENCES agents (agent_id),
    lease_expires_at      INTEGER,
    progress              INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    status_note           TEXT,
    result                BLOB,
    result_content_type   TEXT,
    last_error            TEXT,
    next_attempt_at       INTEGER,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    started_at            INTEGER,
    finished_at           INTEGER,
    CHECK (status != 'running' OR (assigned_agent_id IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK (parent_id IS NULL OR level > 0)
);

-- Dispatch: ready tasks in calculated-priority order, then age.
CREATE INDEX idx_tasks_ready ON tasks (calculated_priority DESC, seq) WHERE status = 'ready';
-- Sweeper: leases that lapsed.
CREATE INDEX idx_tasks_lease ON tasks (lease_expires_at) WHERE status = 'running';
-- A holder's running tasks (offline requeue, capacity checks).
CREATE INDEX idx_tasks_agent ON tasks (assigned_agent_id, status) WHERE assigned_agent_id IS NOT NULL;
-- A subtree is one range scan on the materialized path.
CREATE INDEX idx_tasks_path ON tasks (path);
CREATE INDEX idx_tasks_parent ON tasks (parent_id, seq) WHERE parent_id IS NOT NULL;
CREATE INDEX idx_tasks_root ON tasks (root_id, seq);
CREATE INDEX idx_tasks_session ON tasks (session_id, seq) WHERE session_id IS NOT NULL;
CREATE INDEX idx_tasks_status ON tasks (status, seq);
CREATE INDEX idx_tasks_retention ON tasks (finished_at) WHERE status IN ('completed', 'failed', 'cancelled');

-- Required capabilities, one row each: List by capability.
CREATE TABLE task_capabilities (
    capability TEXT NOT NULL,
    task_id    TEXT NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    PRIMARY KEY (capability, task_id)
) WITHOUT ROWID;

CREATE TABLE task_tags (
    tag     TEXT NOT NULL,
    task_id TEXT NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    PRIMARY KEY (tag, task_id)
) WITHOUT ROWID;

CREATE TABLE task_dependencies (
    dependent_id    TEXT NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    prerequisite_id TEXT NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    dep_type        TEXT NOT NULL DEFAULT 'hard' CHECK (dep_type IN ('hard', 'soft')),
    PRIMARY KEY (dependent_id, prerequisite_id),
    CHECK (dependent_id != prerequisite_id)
) WITHOUT ROWID;
-- Dependents of a task (unblocking and failure propagation).
CREATE INDEX idx_task_dependencies_prerequisite ON task_dependencies (prerequisite_id);

CREATE TABLE task_state_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     TEXT NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    actor       TEXT NOT NULL DEFAULT '',
    attempt     INTEGER NOT NULL DEFAULT 0,
    at          INTEGER NOT NULL
);
CREATE INDEX idx_task_history_task ON task_state_history (task_id, id);
