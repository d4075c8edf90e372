-- Orchestration sessions as a resource: a name, a parent session, the initiating agent
-- (created_by), a context and labels (JSON), an optional deadline and task budget, a summary
-- and the reason of its status, and when it was closed and when it ended.
ALTER TABLE orchestration_sessions ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE orchestration_sessions ADD COLUMN parent_session_id TEXT;
ALTER TABLE orchestration_sessions ADD COLUMN context TEXT NOT NULL DEFAULT '{}';
ALTER TABLE orchestration_sessions ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE orchestration_sessions ADD COLUMN deadline INTEGER;
ALTER TABLE orchestration_sessions ADD COLUMN max_tasks INTEGER;
ALTER TABLE orchestration_sessions ADD COLUMN summary TEXT NOT NULL DEFAULT '';
ALTER TABLE orchestration_sessions ADD COLUMN status_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE orchestration_sessions ADD COLUMN closed_at INTEGER;
ALTER TABLE orchestration_sessions ADD COLUMN finished_at INTEGER;
-- ListSessions pages are in (created_at, session_id) order: each filter's index ends with it.
DROP INDEX idx_sessions_status;
CREATE INDEX idx_sessions_status ON orchestration_sessions (status, created_at, session_id);
CREATE INDEX idx_sessions_created ON orchestration_sessions (created_at, session_id);
CREATE INDEX idx_sessions_created_by ON orchestration_sessions (created_by, created_at, session_id)
    WHERE created_by IS NOT NULL;
CREATE INDEX idx_sessions_parent ON orchestration_sessions (parent_session_id, created_at, session_id)
    WHERE parent_session_id IS NOT NULL;
-- A session's tasks counted by status (GetSession, and its status after each task change).
CREATE INDEX idx_tasks_session_status ON tasks (session_id, status) WHERE session_id IS NOT NULL;
