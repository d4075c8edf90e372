"""Orchestration sessions: the values and the validated inputs (the status rules are in
broker/domain/sessions.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from .common import Id, Input, JsonObject, Labels

MAX_SESSION_TASKS = 1_000_000


class SessionStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ARCHIVED = "archived"


@dataclass(frozen=True)
class Session:
    session_id: str
    name: str
    parent_session_id: str | None
    initiated_by: str
    context: dict[str, Any]
    labels: dict[str, str]
    status: SessionStatus
    status_reason: str
    deadline: int | None
    max_tasks: int | None
    summary: str
    created_at: int
    updated_at: int
    closed_at: int | None
    finished_at: int | None
    counts: dict[str, int] = field(default_factory=dict)  # tasks by status
    progress: float = 0.0  # the share of its tasks finished


class CreateSessionInput(Input):
    session_id: Id | None = None  # generated when absent
    name: Annotated[str, StringConstraints(max_length=256)] = ""
    parent_session_id: Id | None = None
    initiated_by: Annotated[str, StringConstraints(max_length=128)] = ""
    context: JsonObject = {}
    labels: Labels = {}
    deadline: int | None = None
    max_tasks: Annotated[int, Field(ge=1, le=MAX_SESSION_TASKS)] | None = None


class SessionFilter(Input):
    status: SessionStatus | None = None
    initiated_by: str = ""
    parent_session_id: str = ""
    label: str = ""  # key=value
    page_size: int = 100
    after: tuple[int, str] | None = None  # decoded page token: (created_at, session_id) of the last
    newest_first: bool = False  # pages in descending (created_at, session_id)


class EndSessionInput(Input):
    session_id: Id
    summary: Annotated[str, StringConstraints(max_length=4096)] = ""
    actor: Annotated[str, StringConstraints(max_length=128)] = ""
    reason: Annotated[str, StringConstraints(max_length=1024)] = ""
