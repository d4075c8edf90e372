-- One executed home per rule (#24.1).
--
-- 1. The state machine's trigger as broker/storage/sqlite/triggers.py generates it from
--    broker.domain.task_states.TRANSITIONS (tests/unit/test_triggers.py pins the schema to the
--    generator): the transitions of 0013, listed in the statuses' order.
DROP TRIGGER trg_tasks_transition;
CREATE TRIGGER trg_tasks_transition BEFORE UPDATE OF status ON tasks
WHEN OLD.status != NEW.status AND NOT (
       (OLD.status = 'pending' AND NEW.status IN ('blocked', 'ready', 'cancelled'))
    OR (OLD.status = 'blocked' AND NEW.status IN ('ready', 'cancelled'))
    OR (OLD.status = 'ready' AND NEW.status IN ('blocked', 'running', 'cancelled'))
    OR (OLD.status = 'running' AND NEW.status IN ('ready', 'completed', 'failed', 'cancelled')))
BEGIN
    SELECT RAISE(ABORT, 'invalid task state transition');
END;

-- 2. A repeated Fail is recognised from what the end of its attempt stored (the transition out of
--    running): the error the attempt failed with and whether a retry was allowed, never from the
--    wording of its reason. Transitions that end no attempt by a failure leave both NULL.
ALTER TABLE task_state_history ADD COLUMN error TEXT;
ALTER TABLE task_state_history ADD COLUMN retryable INTEGER CHECK (retryable IN (0, 1));

-- 3. A task's prerequisites are kept once: its task_dependencies rows, in the order they were
--    given (ordinal, taken from the depends_on copy, which goes).
ALTER TABLE task_dependencies ADD COLUMN ordinal INTEGER NOT NULL DEFAULT 0;
UPDATE task_dependencies SET ordinal = coalesce((
    SELECT CAST(j.key AS INTEGER) FROM tasks t, json_each(t.depends_on) j
    WHERE t.task_id = task_dependencies.dependent_id
      AND json_extract(j.value, '$[0]') = task_dependencies.prerequisite_id), 0);
ALTER TABLE tasks DROP COLUMN depends_on;
