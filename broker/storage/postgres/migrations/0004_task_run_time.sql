-- SQLite's 0010: the longest an attempt may run, and when the running attempt passes it.
ALTER TABLE tasks ADD COLUMN max_run_us BIGINT;
ALTER TABLE tasks ADD COLUMN run_deadline BIGINT;
CREATE INDEX idx_tasks_run_deadline ON tasks (run_deadline)
    WHERE status = 'running' AND run_deadline IS NOT NULL;
