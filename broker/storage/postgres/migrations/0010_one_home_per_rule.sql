-- SQLite's 0016: one executed home per rule (#24.1).
--
-- 1. The state machine's function as broker/storage/postgres/triggers.py generates it from
--    broker.domain.task_states.TRANSITIONS (tests/unit/test_triggers.py pins the schema to the
--    generator): the transitions of 0007, listed in the statuses' order.
CREATE OR REPLACE FUNCTION a2a_task_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status NOT IN ('pending', 'blocked', 'ready') THEN
            RAISE EXCEPTION 'a task is inserted pending, blocked or ready' USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.status != NEW.status AND NOT (
           (OLD.status = 'pending' AND NEW.status IN ('blocked', 'ready', 'cancelled'))
        OR (OLD.status = 'blocked' AND NEW.status IN ('ready', 'cancelled'))
        OR (OLD.status = 'ready' AND NEW.status IN ('blocked', 'running', 'cancelled'))
        OR (OLD.status = 'running' AND NEW.status IN ('ready', 'completed', 'failed', 'cancelled'))) THEN
        RAISE EXCEPTION 'invalid task state transition' USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status = 'running' AND NEW.status = 'running'
       AND NEW.assigned_agent_id IS DISTINCT FROM OLD.assigned_agent_id THEN
        RAISE EXCEPTION 'a running task cannot change holder' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

-- 2. A repeated Fail is recognised from what the end of its attempt stored: the error the attempt
--    failed with and whether a retry was allowed, never from the wording of its reason.
ALTER TABLE task_state_history ADD COLUMN error TEXT,
    ADD COLUMN retryable INTEGER CHECK (retryable IN (0, 1));

-- 3. A task's prerequisites are kept once: its task_dependencies rows, in the order they were
--    given (ordinal, taken from the depends_on copy, which goes).
ALTER TABLE task_dependencies ADD COLUMN ordinal INTEGER NOT NULL DEFAULT 0;
UPDATE task_dependencies d SET ordinal = j.ord - 1
FROM tasks t, json_array_elements(t.depends_on::json) WITH ORDINALITY AS j(e, ord)
WHERE t.task_id = d.dependent_id AND j.e ->> 0 = d.prerequisite_id;
ALTER TABLE tasks DROP COLUMN depends_on;
