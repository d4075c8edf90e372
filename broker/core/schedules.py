"""Schedules: create, read, list, pause, resume, delete and trigger them, and the firing loop.

The loop is one place: ``fire_due`` asks storage which schedules are due and fires each in its own
write (claim, submit, next firing: one transaction, storage/sql/schedules.py), announcing the
submitted tasks as a Submit does, then sets its one timer (on the broker's clock) for the earliest
due time left in storage. It runs when that timer rings and in every sweeper round (``sweep``):
schedules created or fired through another broker sharing the database, and those left due while
no broker ran, are fired within a sweeper period, the others at their time.
Which firings run and when the next one comes are ``domain/schedules.py``'s rules.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import uuid
from collections.abc import Callable

from ..clock import Clock, Timer
from ..config import Settings
from ..domain import schedules as rules
from ..domain.submission import plan_single
from ..errors import StorageUnavailable
from ..models.schedules import (
    CreateScheduleInput,
    Fired,
    OverlapPolicy,
    Schedule,
    ScheduleFilter,
    ScheduleStatus,
)
from ..models.tasks import Changes
from ..storage.base import Storage

log = logging.getLogger("broker.schedules")

# At most this many schedules are fired per round (the next round takes the rest).
FIRE_BATCH = 200


def new_schedule_id() -> str:
    return f"sch-{uuid.uuid4().hex}"


class Schedules:
    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        announce: Callable[[Changes], None],
        watched: Callable[[], bool],
        clock: Clock | None = None,
    ) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock = clock or Clock()
        self._announce = announce
        self._watched = watched
        self._alarm: Timer | None = None
        self._alarm_at: int | None = None
        self._closed = False
        self._round: asyncio.Task[None] | None = None
        self._again = False  # a round was asked for while one ran
        self.fired = 0  # tasks submitted by firings and triggers (metrics, tests)

    # ------------------------------------------------------------ the resource

    async def create(self, inp: CreateScheduleInput) -> Schedule:
        s, now = self.settings, self.clock.now_us()
        plan_single(inp.spec.task, s.max_dependencies, s.max_payload_bytes)  # the limits a Submit has
        first = rules.check(inp.spec, now)
        schedule = await self.storage.create_schedule(
            inp.schedule_id or new_schedule_id(), inp.spec, inp.paused, first, now
        )
        log.info(
            "schedule created",
            extra={"schedule_id": schedule.schedule_id, "next_fire_at": schedule.next_fire_at},
        )
        self._arm(schedule)
        return schedule

    async def get(self, schedule_id: str) -> Schedule:
        return await self.storage.get_schedule(schedule_id)

    async def list(self, flt: ScheduleFilter) -> tuple[builtins.list[Schedule], str | None]:
        return await self.storage.list_schedules(flt)

    async def pause(self, schedule_id: str, note: str) -> Schedule:
        schedule = await self.storage.pause_schedule(schedule_id, note, self.clock.now_us())
        log.info("schedule paused", extra={"schedule_id": schedule_id})
        return schedule

    async def resume(self, schedule_id: str) -> Schedule:
        schedule = await self.storage.resume_schedule(schedule_id, self.clock.now_us())
        self._arm(schedule)
        return schedule

    async def delete(self, schedule_id: str) -> None:
        await self.storage.delete_schedule(schedule_id)
        log.info("schedule deleted", extra={"schedule_id": schedule_id})

    async def trigger(self, schedule_id: str, overlap: OverlapPolicy | None) -> Fired:
        fired, changes = await self.storage.trigger_schedule(
            schedule_id, self.clock.now_us(), overlap, snapshots=self._watched()
        )
        self._announce(changes)
        self.fired += len(fired.tasks)
        return fired

    # ------------------------------------------------------------ the firing loop

    def _arm(self, schedule: Schedule) -> None:
        if schedule.status is ScheduleStatus.ACTIVE and schedule.next_due_at is not None:
            self._arm_at(schedule.next_due_at)

    def _arm_at(self, at: int) -> None:
        """Ring at ``at`` unless the timer rings earlier already."""
        if self._closed or (self._alarm_at is not None and self._alarm_at <= at):
            return
        if self._alarm is not None:
            self._alarm.cancel()
        self._alarm_at = at
        self._alarm = self.clock.call_later(max(0.0, (at - self.clock.now_us()) / 1e6), self._ring)

    def _ring(self) -> None:
        """A due time came: fire. One round at a time; one asked for meanwhile runs after."""
        self._alarm = self._alarm_at = None
        if self._closed:
            return
        if self._round is not None and not self._round.done():
            self._again = True
            return
        self._round = asyncio.create_task(self._rounds(), name="schedule-firings")

    async def _rounds(self) -> None:
        while True:
            self._again = False
            try:
                await self.fire_due()
            except StorageUnavailable as exc:  # e.g. shutting down: the sweeper catches up later
                log.debug("schedule firings skipped: %s", exc)
            except Exception:
                log.exception("schedule firings failed; the sweeper tries again")
            if not self._again:
                return

    async def fire_due(self) -> int:
        """Fire every schedule due now (each in its own write; concurrent writes share commits);
        return how many tasks were submitted."""
        now = self.clock.now_us()
        ids = await self.storage.due_schedules(now, FIRE_BATCH)
        if not ids:
            await self._arm_next()
            return 0
        watched = self._watched()
        results = await asyncio.gather(
            *(self.storage.fire_schedule(i, now, snapshots=watched) for i in ids), return_exceptions=True
        )
        submitted = 0
        for schedule_id, res in zip(ids, results, strict=True):
            if isinstance(res, BaseException):
                if not isinstance(res, Exception):
                    raise res
                log.error("schedule firing failed: %r", res, extra={"schedule_id": schedule_id})
                continue
            fired, changes = res
            self._announce(changes)
            submitted += len(fired.tasks)
            for task in fired.tasks:
                log.info("schedule fired", extra={"schedule_id": schedule_id, "task_id": task.task_id})
        self.fired += submitted
        await self._arm_next()  # more due (a full batch) rings at once
        return submitted

    async def _arm_next(self) -> None:
        due = await self.storage.next_schedule_due()
        if due is not None:
            self._arm_at(due)

    async def sweep(self) -> None:
        """A sweeper round: fire what is due, and set the timer for the earliest due time."""
        await self.fire_due()

    async def idle(self) -> None:
        """Until no round started by the timer is under way (one asked for meanwhile included)."""
        while self._round is not None and not self._round.done():
            await asyncio.shield(self._round)

    async def close(self) -> None:
        """Stop firing (before storage closes)."""
        self._closed = True
        if self._alarm is not None:
            self._alarm.cancel()
        if self._round is not None:
            self._round.cancel()
            try:
                await self._round
            except asyncio.CancelledError:
                pass
