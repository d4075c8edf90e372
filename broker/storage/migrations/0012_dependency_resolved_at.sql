-- When each dependency edge was resolved: its prerequisite finished (or had, at submission).
ALTER TABLE task_dependencies ADD COLUMN resolved_at INTEGER;
