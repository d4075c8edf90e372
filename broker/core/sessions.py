"""Orchestration sessions: create, read, list, close and cancel, and their retention. A session's
status follows its tasks inside the task writes themselves (storage/sql/sessions.py, rules in
domain/sessions.py); this layer announces what changed and logs each session that ends."""

from __future__ import annotations

import builtins
import logging
import uuid
from collections.abc import Callable

from ..clock import Clock
from ..models.sessions import CreateSessionInput, EndSessionInput, Session, SessionFilter
from ..models.tasks import Changes
from ..storage.base import Storage

log = logging.getLogger("broker.sessions")


def new_session_id() -> str:
    return f"s-{uuid.uuid4().hex}"


class Sessions:
    def __init__(
        self,
        storage: Storage,
        announce: Callable[[Changes], None],
        watched: Callable[[], bool],
        clock: Clock | None = None,
    ) -> None:
        self.storage = storage
        self.clock = clock or Clock()
        self._announce = announce
        self._watched = watched

    async def create(self, inp: CreateSessionInput) -> Session:
        session = await self.storage.create_session(
            inp, inp.session_id or new_session_id(), self.clock.now_us()
        )
        log.info(
            "session created",
            extra={
                "session_id": session.session_id,
                "session_name": session.name,
                "by": session.initiated_by,
            },
        )
        return session

    async def get(self, session_id: str) -> Session:
        return await self.storage.get_session(session_id)

    async def list(self, flt: SessionFilter) -> tuple[builtins.list[Session], tuple[int, str] | None]:
        return await self.storage.list_sessions(flt)

    async def close(self, inp: EndSessionInput) -> Session:
        session, changes = await self.storage.close_session(inp, self.clock.now_us())
        self._announce(changes)
        return session

    async def cancel(self, inp: EndSessionInput) -> tuple[Session, builtins.list[str]]:
        session, cancelled, changes = await self.storage.cancel_session(
            inp, self.clock.now_us(), snapshots=self._watched()
        )
        self._announce(changes)
        return session, cancelled

    async def archive(self, ended_before: int) -> int:
        n = await self.storage.archive_sessions(ended_before)
        if n:
            log.info("sessions archived or deleted after retention", extra={"count": n})
        return n
