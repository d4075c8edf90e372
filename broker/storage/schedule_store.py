"""The schedules part of the Storage protocol.

A schedule's firing is one write: it claims the firing (the schedule's next firing moves on only
if it is still the one the write read), submits the firing's tasks and records what it did, in one
transaction, so that a firing submits its task once, whichever broker runs it and however often it
is run again. Which firings run, and when the next one comes, is ``broker.domain.schedules``'.
"""

from __future__ import annotations

from typing import Protocol

from ..models.schedules import Fired, OverlapPolicy, Schedule, ScheduleFilter, ScheduleSpecInput
from ..models.tasks import Changes


class ScheduleStore(Protocol):
    async def create_schedule(
        self, schedule_id: str, spec: ScheduleSpecInput, paused: bool, first_fire: int, now: int
    ) -> Schedule:
        """Store a schedule checked by ``domain.schedules.check`` (its first firing at
        ``first_fire``). AlreadyExists for an id in use."""

    async def get_schedule(self, schedule_id: str) -> Schedule:
        """NotFound for an unknown id."""

    async def list_schedules(self, flt: ScheduleFilter) -> tuple[list[Schedule], str | None]:
        """One page by id; the second item is the last id when more may follow."""

    async def pause_schedule(self, schedule_id: str, note: str, now: int) -> Schedule:
        """No firing until resumed (pausing again sets the note). NotFound; FailedPrecondition
        once ended."""

    async def resume_schedule(self, schedule_id: str, now: int) -> Schedule:
        """Fire again from the first firing after ``now`` (an active schedule is left as it is).
        NotFound; FailedPrecondition once ended."""

    async def delete_schedule(self, schedule_id: str) -> None:
        """NotFound for an unknown id; the tasks it submitted stay."""

    async def due_schedules(self, now: int, limit: int) -> list[str]:
        """Ids of active schedules whose next firing is due by ``now``, the most overdue first."""

    async def next_schedule_due(self) -> int | None:
        """When the next firing of any active schedule is due (None: none is)."""

    async def fire_schedule(
        self, schedule_id: str, now: int, *, snapshots: bool = False
    ) -> tuple[Fired, Changes]:
        """Run the schedule's firings due by ``now`` (``domain.schedules.plan``), if it is still
        active and due when the write runs: ``Fired.schedule`` is None when it is not (another
        broker fired it, it was paused or deleted)."""

    async def trigger_schedule(
        self, schedule_id: str, now: int, overlap: OverlapPolicy | None, *, snapshots: bool = False
    ) -> tuple[Fired, Changes]:
        """Run the schedule now, under ``overlap`` (None: its own policy); its next firing stays.
        NotFound; FailedPrecondition once ended; as a submission for a refused task."""
