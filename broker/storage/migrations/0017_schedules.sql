-- #26.2: a task held until a time (TaskSpec.not_before: PENDING until then; the sweeper and the
-- core's timer start it when it comes due), and schedules: recurring submissions of one task.
ALTER TABLE tasks ADD COLUMN not_before INTEGER;
CREATE INDEX idx_tasks_not_before ON tasks (not_before) WHERE status = 'pending';

CREATE TABLE schedules (
    schedule_id   TEXT PRIMARY KEY CHECK (length(schedule_id) BETWEEN 1 AND 64),
    -- When it fires and the task it submits (domain.schedules reads it): JSON, payload in base64.
    spec          TEXT NOT NULL CHECK (json_valid(spec) AND json_type(spec) = 'object'),
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'ended')),
    note          TEXT NOT NULL DEFAULT '' CHECK (length(note) <= 1024),
    next_fire_at  INTEGER,             -- the next firing's time (its task's idempotency key)
    next_due_at   INTEGER,             -- when it submits: plus the jitter offset
    last_fire_at  INTEGER,
    last_task_id  TEXT,
    fired_count   INTEGER NOT NULL DEFAULT 0 CHECK (fired_count >= 0),
    skipped_count INTEGER NOT NULL DEFAULT 0 CHECK (skipped_count >= 0),
    last_error    TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CHECK ((status = 'ended') = (next_fire_at IS NULL)),
    CHECK ((next_fire_at IS NULL) = (next_due_at IS NULL)),
    CHECK (next_due_at IS NULL OR next_due_at >= next_fire_at)
);
-- The firing loop's scan: active schedules by due time.
CREATE INDEX idx_schedules_due ON schedules (next_due_at) WHERE status = 'active';
CREATE INDEX idx_schedules_status ON schedules (status, schedule_id);
