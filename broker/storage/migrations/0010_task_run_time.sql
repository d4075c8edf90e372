-- The longest an attempt may run (TaskSpec.max_run_time), and when the running attempt passes it
-- (set at each lease): the sweeper fails such attempts with a timeout.
ALTER TABLE tasks ADD COLUMN max_run_us INTEGER;
ALTER TABLE tasks ADD COLUMN run_deadline INTEGER;
CREATE INDEX idx_tasks_run_deadline ON tasks (run_deadline)
    WHERE status = 'running' AND run_deadline IS NOT NULL;
