"""TaskQueue operations on SQLite (filled in by the TaskQueue work)."""

from __future__ import annotations

import sqlite3


class TaskOps:
    def _requeue_tasks_of(self, conn: sqlite3.Connection, agent_id: str, now: int, reason: str) -> list[str]:
        """Requeue the agent's running tasks (same transaction as the caller); return their ids."""
        return []
