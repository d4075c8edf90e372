-- Concurrency keys, limits and fair share (#26.3; the rules: broker/domain/fairness.py).

-- 1. A task's concurrency key, and what its running attempt counts against (its subjects, as a
--    JSON array: "key:<key>", "cap:<capability>"), set when it is leased under a limit or a key;
--    the triggers below move the counts of limit_usage with it.
ALTER TABLE tasks ADD COLUMN concurrency_key TEXT
    CHECK (concurrency_key IS NULL OR length(concurrency_key) BETWEEN 1 AND 128);
ALTER TABLE tasks ADD COLUMN holds TEXT CHECK (holds IS NULL OR json_valid(holds));

-- 2. Keyed tasks live in capability sets of their own (keyed = 1, same caps): dispatch takes
--    them through the fair share of their keys, and the sets of keyless tasks stay one ordered
--    index range each. (A rebuild: the caps alone are no longer unique.)
CREATE TABLE capability_sets_new (
    capset_id INTEGER PRIMARY KEY,
    caps      TEXT NOT NULL CHECK (json_valid(caps) AND json_type(caps) = 'array'),
    keyed     INTEGER NOT NULL DEFAULT 0 CHECK (keyed IN (0, 1)),
    UNIQUE (caps, keyed)
);
INSERT INTO capability_sets_new (capset_id, caps, keyed) SELECT capset_id, caps, 0 FROM capability_sets;
DROP TABLE capability_sets;
ALTER TABLE capability_sets_new RENAME TO capability_sets;

-- 3. Dispatch: keyless ready tasks by capability set (as before), keyed ones by set and key.
DROP INDEX idx_tasks_ready;
CREATE INDEX idx_tasks_ready ON tasks (capset_id, dispatch_rank DESC, seq)
    WHERE status = 'ready' AND in_backoff = 0 AND concurrency_key IS NULL;
CREATE INDEX idx_tasks_keyed ON tasks (capset_id, concurrency_key, dispatch_rank DESC, seq)
    WHERE status = 'ready' AND in_backoff = 0 AND concurrency_key IS NOT NULL;

-- 4. The queue of each key in each keyed capability set: the head's rank and age, when the key
--    last got a task there, and its standing (domain.fairness.standing; NULL: nothing leasable).
--    Dispatch reads the keys best standing first.
CREATE TABLE key_queues (
    capset_id       INTEGER NOT NULL REFERENCES capability_sets (capset_id),
    concurrency_key TEXT NOT NULL,
    head_rank       REAL,
    head_created    INTEGER,
    standing        REAL,
    served_at       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (capset_id, concurrency_key)
) WITHOUT ROWID;
CREATE INDEX idx_key_queues_standing ON key_queues (capset_id, standing DESC, served_at)
    WHERE standing IS NOT NULL;

-- 5. The limits (a resource: SetConcurrencyLimit...), and an epoch that changes with every
--    change of them (a random number: brokers reload their copy when it differs).
CREATE TABLE concurrency_limits (
    name        TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 128),
    key_pattern TEXT CHECK (key_pattern IS NULL OR length(key_pattern) BETWEEN 1 AND 128),
    capability  TEXT CHECK (capability IS NULL OR length(capability) BETWEEN 1 AND 128),
    max_running INTEGER CHECK (max_running IS NULL OR max_running > 0),
    rate        INTEGER CHECK (rate IS NULL OR rate > 0),
    per_us      INTEGER CHECK (per_us IS NULL OR per_us > 0),
    burst       INTEGER CHECK (burst IS NULL OR burst > 0),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CHECK ((key_pattern IS NULL) != (capability IS NULL)),
    CHECK (max_running IS NOT NULL OR rate IS NOT NULL),
    CHECK ((rate IS NULL) = (per_us IS NULL) AND (rate IS NULL) = (burst IS NULL))
) WITHOUT ROWID;
CREATE TABLE concurrency_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL
);
INSERT INTO concurrency_epoch (id, epoch) VALUES (1, 0);

-- 6. Each subject's running tasks (moved by the triggers) and token bucket (moved by leases).
CREATE TABLE limit_usage (
    subject     TEXT PRIMARY KEY,
    running     INTEGER NOT NULL DEFAULT 0 CHECK (running >= 0),
    tokens      REAL,
    refilled_at INTEGER,
    updated_at  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- 7. The running counts cannot drift: a task entering running counts against each subject it
--    holds, and leaving running (however: completed, failed, retried, requeued, cancelled,
--    handed back) stops counting, in the same transaction.
CREATE TRIGGER trg_tasks_hold AFTER UPDATE OF status ON tasks
WHEN NEW.status = 'running' AND OLD.status != 'running' AND NEW.holds IS NOT NULL
BEGIN
    INSERT INTO limit_usage (subject, running) SELECT value, 1 FROM json_each(NEW.holds) WHERE true
    ON CONFLICT (subject) DO UPDATE SET running = running + 1;
END;

CREATE TRIGGER trg_tasks_unhold AFTER UPDATE OF status ON tasks
WHEN OLD.status = 'running' AND NEW.status != 'running' AND OLD.holds IS NOT NULL
BEGIN
    UPDATE limit_usage SET running = running - 1 WHERE subject IN (SELECT value FROM json_each(OLD.holds));
END;
