-- SQLite's 0013: ready -> blocked (a prerequisite added to a task not started), the 'optional'
-- dependency kind, and task labels.
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
        OR (OLD.status = 'ready' AND NEW.status IN ('running', 'blocked', 'cancelled'))
        OR (OLD.status = 'running' AND NEW.status IN ('ready', 'completed', 'failed', 'cancelled'))) THEN
        RAISE EXCEPTION 'invalid task state transition' USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status = 'running' AND NEW.status = 'running'
       AND NEW.assigned_agent_id IS DISTINCT FROM OLD.assigned_agent_id THEN
        RAISE EXCEPTION 'a running task cannot change holder' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

ALTER TABLE task_dependencies DROP CONSTRAINT task_dependencies_dep_type_check;
ALTER TABLE task_dependencies ADD CONSTRAINT task_dependencies_dep_type_check
    CHECK (dep_type IN ('hard', 'soft', 'optional'));

ALTER TABLE tasks ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
CREATE TABLE task_labels (
    label TEXT NOT NULL,
    seq   BIGINT NOT NULL REFERENCES tasks (seq) ON DELETE CASCADE,
    PRIMARY KEY (label, seq)
);
CREATE INDEX idx_task_labels_seq ON task_labels (seq);
