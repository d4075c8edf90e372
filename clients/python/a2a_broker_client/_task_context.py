"""What a task handler gets and gives back: the :class:`TaskContext` of its lease, and the values
and errors that say how the task ends (a result, with its content type; a failure, retried or
not)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _convert as c
from . import a2a_turns
from .models import Assignment, Task

if TYPE_CHECKING:
    from .client import BrokerClient
    from .worker import Worker

# Without a known lease expiry, how long a finished task's Complete/Fail is retried.
DEFAULT_FINISH_WINDOW = 60.0


class NonRetryableError(Exception):
    """Raise from a task handler to fail the task for good (no retries left used)."""


class TaskFailure(Exception):
    """Raise from a task handler to fail the attempt with ``error`` as its reason, word for word
    (any other exception is reported as ``Type: message``); ``non_retryable``: for good."""

    def __init__(self, error: str, *, non_retryable: bool = False) -> None:
        super().__init__(error)
        self.error = error
        self.non_retryable = non_retryable


@dataclass(frozen=True)
class TaskResult:
    """Return from a task handler to complete the task with ``data`` and this content type (a
    plain return value gets the one its type implies: see ``encode_payload``)."""

    data: Any
    content_type: str = ""


class TaskContext:
    """What a task handler gets: the task, its lease, and a way to report progress.

    Attributes:
        task: the task as assigned.
        attempt: the attempt this lease is for.
        agent_id: the worker's agent id.
        cancel_reason: set when the broker cancelled the task (the handler is
            then cancelled too).
        lease_lost: set when the broker refused to extend the lease (the task is no longer
            this worker's; the handler is then cancelled too).
    """

    def __init__(self, worker: Worker, assignment: Assignment) -> None:
        self._worker = worker
        self.task: Task = assignment.task
        self.attempt = assignment.attempt
        self.agent_id = worker.agent_id
        self.cancel_reason = ""
        self.lease_lost = False
        self._progress: int | None = None
        self._note = ""
        # When the lease lapses (epoch seconds), as last heard from the broker.
        expires = assignment.task.lease_expires_at
        if expires is not None:
            self._lease_expires = expires.timestamp()
        else:
            self._lease_expires = time.time() + (
                c.seconds(assignment.task.spec.lease_timeout or 0) or DEFAULT_FINISH_WINDOW
            )

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def client(self) -> BrokerClient:
        """The worker's client, e.g. to read prerequisites' results or send messages."""
        return self._worker.client

    @property
    def payload(self) -> bytes:
        return self.task.spec.payload if isinstance(self.task.spec.payload, bytes) else b""

    @property
    def data(self) -> Any:
        """The payload decoded by its content type (JSON value, text, or bytes)."""
        return self.task.spec.data

    @property
    def turn(self) -> dict[str, Any] | None:
        """For a task from the A2A gateway, its turn: ``{"message", "history", "contextId"}``
        (see :mod:`a2a_turns`); None for any other task."""
        if self.task.spec.content_type != a2a_turns.TURN_TYPE:
            return None
        return a2a_turns.turn(self.payload)

    @property
    def turn_text(self) -> str:
        """The text of the turn's message (the caller's words), "" for a task not from A2A."""
        t = self.turn
        return a2a_turns.text_of(t.get("message", {})) if t else ""

    async def progress(self, percent: int | None = None, note: str = "") -> None:
        """Report progress (0-100) and/or a status note now; also extends the lease."""
        if percent is not None:
            self._progress = percent
        if note:
            self._note = note
        await self._worker._extend(self)


def result_of(value: Any) -> tuple[Any, str]:
    """A handler's return value and the content type to complete with: an A2A outcome (or the
    ``(bytes, RESULT_TYPE)`` pair of :func:`a2a_turns.result`) as the A2A result type."""
    if isinstance(value, TaskResult):
        return value.data, value.content_type
    if isinstance(value, a2a_turns.Outcome):
        return value.encode()
    if isinstance(value, tuple) and len(value) == 2 and value[1] == a2a_turns.RESULT_TYPE:
        return value[0], value[1]
    return value, ""


def describe(exc: BaseException) -> str:
    if isinstance(exc, TaskFailure):
        return exc.error
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
