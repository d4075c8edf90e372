"""A Listen stream whose completions, failures and lease extensions travel on the same stream
(the broker's ``Work``), with a fallback to ``Listen`` and the unary calls against a broker that
predates it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from . import _convert as c
from . import models as m
from ._duplex import Duplex
from ._stream import Stream
from .pb import tasks_pb2


class WorkStream(Duplex[m.ListenEvent]):
    """The agent's assignments and cancellations (one :class:`ListenEvent` per push), and its
    outcomes written back on the same stream: :meth:`complete`, :meth:`fail` and
    :meth:`extend_lease`, each answered once committed (or raising what the unary call would).
    Outcomes given at about the same time share one request (whatever is ready when it is
    written: see ``_duplex``), answered by one confirmation."""

    method = "tasks/Work"

    def __init__(
        self,
        open_call: Callable[[], Any],
        agent_id: str,
        fallback: Callable[[], Stream[m.ListenEvent]],
        unary: Any,  # the BrokerClient, for the unary calls of the fallback
    ) -> None:
        super().__init__(
            open_call, tasks_pb2.WorkRequest(listen=tasks_pb2.ListenRequest(agent_id=agent_id)), fallback
        )
        self.agent_id = agent_id
        self._unary = unary

    def _items(self, resp: Any) -> list[m.ListenEvent]:
        return [c.listen_event(resp)] if resp.assignments or resp.cancellations else []

    def _confirm(self, resp: Any) -> Any | None:
        return resp.confirm if resp.HasField("confirm") else None

    def _request(self, sequence: int, **fields: Any) -> Any:
        return tasks_pb2.WorkRequest(sequence=sequence, **fields)

    batch_header = "a2a-work-batch"

    def _batch_request(self, sequence: int, entries: list[Any]) -> Any:
        if len(entries) == 1:
            return tasks_pb2.WorkRequest(sequence=sequence, **entries[0])
        return tasks_pb2.WorkRequest(
            sequence=sequence, outcomes=[tasks_pb2.WorkOutcome(**e) for e in entries]
        )

    async def complete(
        self, task_id: str, attempt: int, result: Any = b"", *, result_content_type: str = ""
    ) -> m.Task:
        """Finish a leased task with a result (answered once committed)."""
        if not self.in_band:
            task: m.Task = await self._unary.complete(
                task_id, self.agent_id, attempt, result, result_content_type=result_content_type
            )
            return task
        payload, content_type = m.encode_payload(result, result_content_type)
        req = tasks_pb2.CompleteRequest(
            task_id=task_id, attempt=attempt, result=payload, result_content_type=content_type
        )
        return c.task((await self._coalesced({"complete": req}, len(payload))).task)

    async def fail(self, task_id: str, attempt: int, error: str, *, non_retryable: bool = False) -> m.Task:
        """Fail a leased task's attempt (retried per its policy unless ``non_retryable``)."""
        if not self.in_band:
            task: m.Task = await self._unary.fail(
                task_id, self.agent_id, attempt, error, non_retryable=non_retryable
            )
            return task
        req = tasks_pb2.FailRequest(
            task_id=task_id, attempt=attempt, error=error, non_retryable=non_retryable
        )
        return c.task((await self._coalesced({"fail": req}, len(error))).task)

    async def extend_lease(
        self,
        task_id: str,
        attempt: int,
        *,
        progress: int | None = None,
        status_note: str = "",
        extension: m.Seconds | None = None,
    ) -> datetime | None:
        """Extend a running task's lease (and record progress); returns its new end."""
        if not self.in_band:
            until: datetime | None = await self._unary.extend_lease(
                task_id,
                self.agent_id,
                attempt,
                progress=progress,
                status_note=status_note,
                extension=extension,
            )
            return until
        req = tasks_pb2.ExtendLeaseRequest(task_id=task_id, attempt=attempt, status_note=status_note)
        if progress is not None:
            req.progress = progress
        if extension is not None:
            req.extension.CopyFrom(c.duration(extension))
        return c.to_datetime(await self._coalesced({"extend": req}, len(status_note)), "lease_expires_at")
