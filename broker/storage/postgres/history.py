"""Other brokers' task transitions, read from ``task_state_history`` for this broker's watchers.

Every transition is a row of the history, written in the transaction that made it, with the id of
that transaction (``xid``) and the tag of the broker that wrote it (``broker``: the writer
connection's ``a2a.broker`` setting; migration 0011). A broker with a Watch open follows the
history: when another broker says it committed transitions (``wire.HISTORY``), or at each poll, it
reads the rows written since it last read, by the other brokers.

"Since it last read" cannot be a row id: ids are drawn before commit, so a transaction may commit
a smaller id after a larger one was read. It is a transaction id: each read takes the oldest
transaction still running at its snapshot (``xmin``); every transaction with a smaller id has
ended, so its rows are visible now or never. A read returns the visible rows of transactions from
the previous ``xmin`` on, in id order (a task's transitions are committed one after the other, so
its rows' ids follow its order), skipping those of transactions at or past the new ``xmin`` that
an earlier read already returned (they are read again until their ``xmin`` passes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ...models.tasks import TaskStatus, Transition
from ..sql.connection import Connection

Read = Callable[[Callable[[Connection], Any]], Awaitable[Any]]

_FRONTIER = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
_SINCE = (
    "SELECT h.id, h.xid, h.task_id, h.from_status, h.to_status, h.reason, h.actor, h.at, h.attempt,"
    " t.path, t.session_id FROM task_state_history h LEFT JOIN tasks t ON t.task_id = h.task_id"
    " WHERE h.xid >= %(since)s AND h.broker IS DISTINCT FROM %(me)s ORDER BY h.id"
)


class History:
    """A cursor over the other brokers' transitions."""

    def __init__(self, read: Read, tag: str) -> None:
        self._read = read  # the engine's: a job on a reader connection, REPEATABLE READ
        self.tag = tag
        self.since: int | None = None  # None: not following
        self._ahead: set[int] = set()  # ids returned whose transaction is not past ``since``

    @property
    def following(self) -> bool:
        return self.since is not None

    async def follow(self) -> None:
        """Follow from now on (what committed before this is the caller's snapshot's business)."""
        if self.since is None:
            since = await self._read(lambda conn: conn.execute(_FRONTIER).fetchone()[0])
            if self.since is None:
                self.since, self._ahead = since, set()

    def unfollow(self) -> None:
        self.since, self._ahead = None, set()

    async def read(self) -> list[Transition]:
        """The other brokers' transitions committed since the last read, in order."""
        since = self.since
        if since is None:
            return []

        def job(conn: Connection) -> tuple[int, list[Any]]:
            frontier = conn.execute(_FRONTIER).fetchone()[0]
            return frontier, conn.execute(_SINCE, {"since": since, "me": self.tag}).fetchall()

        frontier, rows = await self._read(job)
        if self.since != since:  # stopped, or read by another call meanwhile
            return []
        out = [_transition(r) for r in rows if r[0] not in self._ahead]
        self._ahead = {r[0] for r in rows if r[1] >= frontier}
        self.since = frontier
        return out


def _transition(r: Any) -> Transition:
    _, _, task_id, from_status, to_status, reason, actor, at, attempt, path, session_id = r
    return Transition(
        task_id,
        TaskStatus(from_status) if from_status else None,
        TaskStatus(to_status),
        reason or "",
        actor or "",
        at,
        attempt,
        path or "",
        session_id,
    )
