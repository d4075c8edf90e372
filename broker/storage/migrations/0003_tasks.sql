-- Tasks, their dependencies, and the audit trail of every state change.
-- Times are INTEGER microseconds since the Unix epoch (UTC).

-- Distinct sets of required capabilities. Dispatch looks for an agent's next
-- task set by set: the sets an agent covers are few and cached, and each set's
-- ready tasks are one ordered index range (see idx_tasks_ready).
CREATE TABLE capability_sets (
    capset_id INTEGER PRIMARY KEY,
    -- Canonical JSON array: sorted, without duplicates ("[]" for no requirement).
    caps      TEXT NOT NULL UNIQUE CHECK (json_valid(caps) AND json_type(caps) = 'array')
);

CREATE TABLE tasks (
    seq                   INTEGER PRIMARY KEY AUTOINCREMENT,   -- submission order
    task_id               TEXT NOT NULL UNIQUE,
    title                 TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 512),
    task_type             TEXT NOT NULL DEFAULT '' CHECK (length(task_type) <= 128),
    payload               BLOB NOT NULL DEFAULT x'',
    content_type          TEXT NOT NULL DEFAULT '' CHECK (length(content_type) <= 128),
    required_capabilities TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(required_capabilities)),
    capset_id             INTEGER NOT NULL REFERENCES capability_sets (capset_id),
    priority              INTEGER NOT NULL DEFAULT 5 CHECK (priority BETWEEN 0 AND 10),
    deadline              INTEGER,
    -- Deadline urgency (0 to the configured weight) as last computed: at every
    -- state change and, for ready tasks, by the sweeper as the deadline nears.
    urgency               REAL NOT NULL DEFAULT 0 CHECK (urgency >= 0),
    -- Time-invariant dispatch key: priority + urgency - created_at / aging
    -- period. Ordering by it equals ordering by the calculated priority
    -- (priority + urgency + age / aging period) at any one instant, so it can
    -- be stored and indexed (broker/core/priority.py).
    dispatch_rank         REAL NOT NULL,
    parent_id             TEXT REFERENCES tasks (task_id),
    root_id               TEXT NOT NULL,
    level                 INTEGER NOT NULL DEFAULT 0 CHECK (level >= 0),
    -- Materialized path of ids from the root: "/root/child/" (ids hold no "/").
    path                  TEXT NOT NULL,
    -- The prerequisites as submitted, [[task_id, "hard"|"soft"], ...]: a copy of
    -- this task's task_dependencies rows (they never change), so reading a task
    -- is one row, not a row and a query.
    depends_on            TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(depends_on)),
    -- 1 once another task depends on this one: finishing a task without
    -- dependents (most of them) skips the dependents look-up.
    has_dependents        INTEGER NOT NULL DEFAULT 0 CHECK (has_dependents IN (0, 1)),
    -- Longest chain of prerequisites below this task (0: none).
    dep_depth             INTEGER NOT NULL DEFAULT 0 CHECK (dep_depth >= 0),
    max_retries           INTEGER NOT NULL DEFAULT 3 CHECK (max_retries BETWEEN 0 AND 100),
    backoff_initial_us    INTEGER NOT NULL DEFAULT 1000000 CHECK (backoff_initial_us >= 0),
    backoff_multiplier    REAL NOT NULL DEFAULT 2.0 CHECK (backoff_multiplier BETWEEN 1.0 AND 10.0),
    backoff_max_us        INTEGER NOT NULL DEFAULT 300000000 CHECK (backoff_max_us >= 0),
    lease_timeout_us      INTEGER NOT NULL CHECK (lease_timeout_us > 0),
    session_id            TEXT REFERENCES orchestration_sessions (session_id),
    tags                  TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
    metadata              TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    idempotency_key       TEXT UNIQUE CHECK (idempotency_key IS NULL OR length(idempotency_key) <= 128),
    -- Hash of the spec submitted with the idempotency key: the same key with
    -- another spec is refused (ALREADY_EXISTS) instead of silently answered.
    idempotency_fingerprint TEXT,
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
    -- While ready after a failed attempt: not leased before this time.
    next_attempt_at       INTEGER,
    -- 1 while ready and waiting for next_attempt_at (kept out of the dispatch index).
    in_backoff            INTEGER NOT NULL DEFAULT 0 CHECK (in_backoff IN (0, 1)),
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    started_at            INTEGER,
    finished_at           INTEGER,
    CHECK (status != 'running' OR (assigned_agent_id IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK (in_backoff = 0 OR (status = 'ready' AND next_attempt_at IS NOT NULL)),
    CHECK (parent_id IS NULL OR level > 0),
    CHECK (status NOT IN ('completed', 'failed', 'cancelled') OR finished_at IS NOT NULL)
);

-- Dispatch: an agent's next task within one capability set, in calculated-
-- priority order then age; tasks waiting out a retry backoff are left out.
CREATE INDEX idx_tasks_ready ON tasks (capset_id, dispatch_rank DESC, seq)
    WHERE status = 'ready' AND in_backoff = 0;
-- Retry backoffs that are due.
CREATE INDEX idx_tasks_backoff ON tasks (next_attempt_at) WHERE status = 'ready' AND in_backoff = 1;
-- Deadline urgency refresh of ready tasks.
CREATE INDEX idx_tasks_deadline ON tasks (deadline) WHERE status = 'ready' AND deadline IS NOT NULL;
-- Sweeper: leases that lapsed.
CREATE INDEX idx_tasks_lease ON tasks (lease_expires_at) WHERE status = 'running';
-- A holder's tasks (offline requeue, List by agent).
CREATE INDEX idx_tasks_agent ON tasks (assigned_agent_id, status, seq) WHERE assigned_agent_id IS NOT NULL;
-- A subtree is one range scan on the materialized path.
CREATE INDEX idx_tasks_path ON tasks (path);
CREATE INDEX idx_tasks_parent ON tasks (parent_id, seq) WHERE parent_id IS NOT NULL;
CREATE INDEX idx_tasks_session ON tasks (session_id, seq) WHERE session_id IS NOT NULL;
CREATE INDEX idx_tasks_status ON tasks (status, seq);
CREATE INDEX idx_tasks_retention ON tasks (finished_at) WHERE status IN ('completed', 'failed', 'cancelled');

-- One row per (tag, task) and per (required capability, task), keyed by the
-- task's seq: List by tag or capability walks one of these in page order.
CREATE TABLE task_tags (
    tag TEXT NOT NULL,
    seq INTEGER NOT NULL REFERENCES tasks (seq) ON DELETE CASCADE,
    PRIMARY KEY (tag, seq)
) WITHOUT ROWID;
CREATE INDEX idx_task_tags_seq ON task_tags (seq);

CREATE TABLE task_capabilities (
    capability TEXT NOT NULL,
    seq        INTEGER NOT NULL REFERENCES tasks (seq) ON DELETE CASCADE,
    PRIMARY KEY (capability, seq)
) WITHOUT ROWID;
CREATE INDEX idx_task_capabilities_seq ON task_capabilities (seq);

CREATE TABLE task_dependencies (
    dependent_id    TEXT NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    prerequisite_id TEXT NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    dep_type        TEXT NOT NULL DEFAULT 'hard' CHECK (dep_type IN ('hard', 'soft')),
    PRIMARY KEY (dependent_id, prerequisite_id),
    CHECK (dependent_id != prerequisite_id)
) WITHOUT ROWID;
-- Dependents of a task (unblocking and failure propagation).
CREATE INDEX idx_task_dependencies_prerequisite ON task_dependencies (prerequisite_id, dependent_id);

CREATE TABLE task_state_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     TEXT NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    from_status TEXT CHECK (from_status IS NULL OR from_status IN
                    ('pending', 'blocked', 'ready', 'running', 'completed', 'failed', 'cancelled')),
    to_status   TEXT NOT NULL CHECK (to_status IN
                    ('pending', 'blocked', 'ready', 'running', 'completed', 'failed', 'cancelled')),
    reason      TEXT NOT NULL DEFAULT '',
    actor       TEXT NOT NULL DEFAULT '',
    attempt     INTEGER NOT NULL DEFAULT 0,
    at          INTEGER NOT NULL
);
CREATE INDEX idx_task_history_task ON task_state_history (task_id, id);

-- The state machine, enforced by the database itself: a bug elsewhere cannot
-- move a task along an edge that does not exist.
--   pending -> blocked | ready | cancelled      blocked -> ready | cancelled
--   ready   -> running | cancelled              running -> ready | completed | failed | cancelled
-- (pending only exists inside the submitting transaction.)
CREATE TRIGGER trg_tasks_transition BEFORE UPDATE OF status ON tasks
WHEN OLD.status != NEW.status AND NOT (
       (OLD.status = 'pending' AND NEW.status IN ('blocked', 'ready', 'cancelled'))
    OR (OLD.status = 'blocked' AND NEW.status IN ('ready', 'cancelled'))
    OR (OLD.status = 'ready' AND NEW.status IN ('running', 'cancelled'))
    OR (OLD.status = 'running' AND NEW.status IN ('ready', 'completed', 'failed', 'cancelled')))
BEGIN
    SELECT RAISE(ABORT, 'invalid task state transition');
END;

CREATE TRIGGER trg_tasks_insert BEFORE INSERT ON tasks
WHEN NEW.status NOT IN ('pending', 'blocked', 'ready')
BEGIN
    SELECT RAISE(ABORT, 'a task is inserted pending, blocked or ready');
END;

-- Capacity bookkeeping cannot drift: agents.current_task_count is moved by
-- the database on every lease and release, whatever code path changed the
-- task, in the same transaction; the CHECK on agents refuses a count above
-- max_concurrent_tasks, so an over-lease aborts instead of being stored.
-- A heartbeat-reported free capacity is a budget: each lease spends one slot,
-- each release gives one back (up to the capacity), the next heartbeat resets it.
CREATE TRIGGER trg_tasks_lease AFTER UPDATE OF status ON tasks
WHEN NEW.status = 'running' AND OLD.status != 'running'
BEGIN
    UPDATE agents SET
        current_task_count = current_task_count + 1,
        reported_free_capacity = CASE WHEN reported_free_capacity IS NULL THEN NULL
                                      ELSE max(reported_free_capacity - 1, 0) END
    WHERE agent_id = NEW.assigned_agent_id;
END;

CREATE TRIGGER trg_tasks_release AFTER UPDATE OF status ON tasks
WHEN OLD.status = 'running' AND NEW.status != 'running'
BEGIN
    UPDATE agents SET
        current_task_count = current_task_count - 1,
        reported_free_capacity = CASE WHEN reported_free_capacity IS NULL THEN NULL
                                      ELSE min(reported_free_capacity + 1, max_concurrent_tasks) END
    WHERE agent_id = OLD.assigned_agent_id;
END;

CREATE TRIGGER trg_tasks_holder BEFORE UPDATE OF assigned_agent_id ON tasks
WHEN OLD.status = 'running' AND NEW.status = 'running'
     AND NEW.assigned_agent_id IS NOT OLD.assigned_agent_id
BEGIN
    SELECT RAISE(ABORT, 'a running task cannot change holder');
END;

CREATE TRIGGER trg_tasks_delete_running BEFORE DELETE ON tasks
WHEN OLD.status = 'running'
BEGIN
    SELECT RAISE(ABORT, 'a running task cannot be deleted');
END;
