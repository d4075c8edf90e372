-- Dependency edits and task labels.
--
-- 1. A task that has not started may gain a prerequisite (AddDependency): a ready
--    task waiting on a new unfinished one goes back to blocked. The state machine
--    gains ready -> blocked.
DROP TRIGGER trg_tasks_transition;
CREATE TRIGGER trg_tasks_transition BEFORE UPDATE OF status ON tasks
WHEN OLD.status != NEW.status AND NOT (
       (OLD.status = 'pending' AND NEW.status IN ('blocked', 'ready', 'cancelled'))
    OR (OLD.status = 'blocked' AND NEW.status IN ('ready', 'cancelled'))
    OR (OLD.status = 'ready' AND NEW.status IN ('running', 'blocked', 'cancelled'))
    OR (OLD.status = 'running' AND NEW.status IN ('ready', 'completed', 'failed', 'cancelled')))
BEGIN
    SELECT RAISE(ABORT, 'invalid task state transition');
END;

-- 2. A third dependency kind, 'optional' (SQLite cannot change a CHECK: the table is rebuilt).
CREATE TABLE task_dependencies_new (
    dependent_id    TEXT NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    prerequisite_id TEXT NOT NULL REFERENCES tasks (task_id) ON DELETE CASCADE,
    dep_type        TEXT NOT NULL DEFAULT 'hard' CHECK (dep_type IN ('hard', 'soft', 'optional')),
    resolved_at     INTEGER,
    PRIMARY KEY (dependent_id, prerequisite_id),
    CHECK (dependent_id != prerequisite_id)
) WITHOUT ROWID;
INSERT INTO task_dependencies_new (dependent_id, prerequisite_id, dep_type, resolved_at)
    SELECT dependent_id, prerequisite_id, dep_type, resolved_at FROM task_dependencies;
DROP TABLE task_dependencies;
ALTER TABLE task_dependencies_new RENAME TO task_dependencies;
CREATE INDEX idx_task_dependencies_prerequisite ON task_dependencies (prerequisite_id, dependent_id);

-- 3. Labels: key=value pairs on a task, listed by one label through (label, seq) as tags are.
ALTER TABLE tasks ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
CREATE TABLE task_labels (
    label TEXT NOT NULL,  -- "key=value"
    seq   INTEGER NOT NULL REFERENCES tasks (seq) ON DELETE CASCADE,
    PRIMARY KEY (label, seq)
) WITHOUT ROWID;
CREATE INDEX idx_task_labels_seq ON task_labels (seq);
