"""What an agent's departure (deregistered, gone offline) does to its messages and tasks, in the
transaction that marks it gone: the agent operations call these, the message and task operations
implement them (a storage class composes all three)."""

from __future__ import annotations

from ...models.tasks import Changes
from .connection import Connection


class Departures:
    def _release_messages_of(self, conn: Connection, agent_id: str, now: int, reason: str) -> int:
        """Put the agent's delivered-but-unacked messages back to pending; how many."""
        raise NotImplementedError

    def _release_deliveries_of(self, conn: Connection, agent_id: str, now: int, reason: str) -> list[int]:
        """Hand the agent's subscription deliveries back; the subscriptions to wake."""
        raise NotImplementedError

    def _requeue_tasks_of(
        self, conn: Connection, agent_id: str, now: int, reason: str
    ) -> tuple[list[str], Changes]:
        """Requeue the agent's running tasks; their ids and what changed."""
        raise NotImplementedError
