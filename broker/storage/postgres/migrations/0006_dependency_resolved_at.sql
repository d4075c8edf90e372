-- SQLite's 0012: when each dependency edge was resolved.
ALTER TABLE task_dependencies ADD COLUMN resolved_at BIGINT;
