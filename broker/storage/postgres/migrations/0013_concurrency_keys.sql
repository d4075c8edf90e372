-- Concurrency keys, limits and fair share (#26.3; as SQLite's 0019; the rules:
-- broker/domain/fairness.py).

-- 1. A task's concurrency key, and what its running attempt counts against (a JSON array of
--    subjects, set when it is leased under a limit or a key).
ALTER TABLE tasks ADD COLUMN concurrency_key TEXT
    CHECK (concurrency_key IS NULL OR length(concurrency_key) BETWEEN 1 AND 128);
ALTER TABLE tasks ADD COLUMN holds TEXT CHECK (holds IS NULL OR json_typeof(holds::json) = 'array');

-- 2. Keyed tasks live in capability sets of their own (keyed = 1, same caps).
ALTER TABLE capability_sets ADD COLUMN keyed INTEGER NOT NULL DEFAULT 0 CHECK (keyed IN (0, 1));
ALTER TABLE capability_sets DROP CONSTRAINT capability_sets_caps_key;
ALTER TABLE capability_sets ADD CONSTRAINT capability_sets_caps_keyed_key UNIQUE (caps, keyed);

-- 3. Dispatch: keyless ready tasks by capability set (as before), keyed ones by set and key.
DROP INDEX idx_tasks_ready;
CREATE INDEX idx_tasks_ready ON tasks (capset_id, dispatch_rank DESC, seq)
    WHERE status = 'ready' AND in_backoff = 0 AND concurrency_key IS NULL;
CREATE INDEX idx_tasks_keyed ON tasks (capset_id, concurrency_key, dispatch_rank DESC, seq)
    WHERE status = 'ready' AND in_backoff = 0 AND concurrency_key IS NOT NULL;

-- 4. The queue of each key in each keyed capability set (its head, its last turn, its standing).
CREATE TABLE key_queues (
    capset_id       BIGINT NOT NULL REFERENCES capability_sets (capset_id),
    concurrency_key TEXT NOT NULL,
    head_rank       DOUBLE PRECISION,
    head_created    BIGINT,
    standing        DOUBLE PRECISION,
    served_at       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (capset_id, concurrency_key)
);
CREATE INDEX idx_key_queues_standing ON key_queues (capset_id, standing DESC, served_at)
    WHERE standing IS NOT NULL;

-- 5. The limits, and an epoch that changes with every change of them.
CREATE TABLE concurrency_limits (
    name        TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 128),
    key_pattern TEXT CHECK (key_pattern IS NULL OR length(key_pattern) BETWEEN 1 AND 128),
    capability  TEXT CHECK (capability IS NULL OR length(capability) BETWEEN 1 AND 128),
    max_running INTEGER CHECK (max_running IS NULL OR max_running > 0),
    rate        INTEGER CHECK (rate IS NULL OR rate > 0),
    per_us      BIGINT CHECK (per_us IS NULL OR per_us > 0),
    burst       INTEGER CHECK (burst IS NULL OR burst > 0),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CHECK ((key_pattern IS NULL) != (capability IS NULL)),
    CHECK (max_running IS NOT NULL OR rate IS NOT NULL),
    CHECK ((rate IS NULL) = (per_us IS NULL) AND (rate IS NULL) = (burst IS NULL))
);
CREATE TABLE concurrency_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO concurrency_epoch (id, epoch) VALUES (1, 0);

-- 6. Each subject's running tasks (moved by the trigger) and token bucket (moved by leases).
CREATE TABLE limit_usage (
    subject     TEXT PRIMARY KEY,
    running     INTEGER NOT NULL DEFAULT 0 CHECK (running >= 0),
    tokens      DOUBLE PRECISION,
    refilled_at BIGINT,
    updated_at  BIGINT NOT NULL DEFAULT 0
);

-- 7. The running counts cannot drift: they move with every task entering or leaving running,
--    in the same transaction.
CREATE FUNCTION a2a_task_holds() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'running' AND NEW.holds IS NOT NULL THEN
        INSERT INTO limit_usage (subject, running)
        SELECT s, 1 FROM json_array_elements_text(NEW.holds::json) AS s
        ON CONFLICT (subject) DO UPDATE SET running = limit_usage.running + 1;
    END IF;
    IF OLD.status = 'running' AND OLD.holds IS NOT NULL THEN
        UPDATE limit_usage SET running = running - 1
        WHERE subject IN (SELECT json_array_elements_text(OLD.holds::json));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER trg_tasks_holds AFTER UPDATE OF status ON tasks FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          AND (NEW.status = 'running' OR OLD.status = 'running')
          AND (NEW.holds IS NOT NULL OR OLD.holds IS NOT NULL))
    EXECUTE FUNCTION a2a_task_holds();
