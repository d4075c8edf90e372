-- SQLite's 0011. Task lists by type, by tree (root), by depth, and by submission time: each in page (seq) order.
CREATE INDEX idx_tasks_type ON tasks (task_type, seq);
CREATE INDEX idx_tasks_root ON tasks (root_id, seq);
CREATE INDEX idx_tasks_level ON tasks (level, seq);
CREATE INDEX idx_tasks_created ON tasks (created_at);
CREATE INDEX idx_messages_type ON a2a_messages (message_type, seq);
