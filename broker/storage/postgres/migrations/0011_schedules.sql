-- SQLite's 0017: a task held until a time (TaskSpec.not_before), and schedules.
ALTER TABLE tasks ADD COLUMN not_before BIGINT;
CREATE INDEX idx_tasks_not_before ON tasks (not_before) WHERE status = 'pending';

CREATE TABLE schedules (
    schedule_id   TEXT PRIMARY KEY CHECK (length(schedule_id) BETWEEN 1 AND 64),
    spec          TEXT NOT NULL CHECK (json_typeof(spec::json) = 'object'),
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'ended')),
    note          TEXT NOT NULL DEFAULT '' CHECK (length(note) <= 1024),
    next_fire_at  BIGINT,
    next_due_at   BIGINT,
    last_fire_at  BIGINT,
    last_task_id  TEXT,
    fired_count   BIGINT NOT NULL DEFAULT 0 CHECK (fired_count >= 0),
    skipped_count BIGINT NOT NULL DEFAULT 0 CHECK (skipped_count >= 0),
    last_error    TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    CHECK ((status = 'ended') = (next_fire_at IS NULL)),
    CHECK ((next_fire_at IS NULL) = (next_due_at IS NULL)),
    CHECK (next_due_at IS NULL OR next_due_at >= next_fire_at)
);
CREATE INDEX idx_schedules_due ON schedules (next_due_at) WHERE status = 'active';
CREATE INDEX idx_schedules_status ON schedules (status, schedule_id);
