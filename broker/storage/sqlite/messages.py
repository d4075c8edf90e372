"""Messaging operations on SQLite (filled in by the Messaging work)."""

from __future__ import annotations

import sqlite3


class MessageOps:
    def _release_messages_of(self, conn: sqlite3.Connection, agent_id: str, now: int, reason: str) -> int:
        """Put the agent's delivered-but-unacked messages back to pending (same transaction as the caller)."""
        return 0
