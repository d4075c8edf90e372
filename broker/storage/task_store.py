"""The task-queue part of the Storage protocol (filled in by the TaskQueue work)."""

from __future__ import annotations

from typing import Protocol


class TaskStore(Protocol):
    pass
