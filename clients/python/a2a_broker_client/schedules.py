"""Schedules: recurring submissions of one task (a cron expression in a time zone, or a fixed
interval). The values, their protobuf conversions, and the calls :class:`BrokerClient` inherits
(``create_schedule``, ``get_schedule``, ``list_schedules``, ``iter_schedules``, ``pause_schedule``,
``resume_schedule``, ``delete_schedule``, ``trigger_schedule``)."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import _convert as c
from . import models as m
from .pb import tasks_pb2


class ScheduleStatus(enum.StrEnum):
    UNSPECIFIED = "unspecified"
    ACTIVE = "active"
    PAUSED = "paused"  # by pause_schedule, until resume_schedule
    ENDED = "ended"  # past its end_time


class MissedFiringPolicy(enum.StrEnum):
    """What a schedule does with firings missed while no broker ran (default RUN_ONCE)."""

    UNSPECIFIED = "unspecified"
    SKIP = "skip"  # not run; go on from the next firing
    RUN_ONCE = "run_once"  # one task, for the latest missed firing
    RUN_ALL = "run_all"  # every one, oldest first, up to max_catchup (the most recent)


class OverlapPolicy(enum.StrEnum):
    """What a firing does while the previous run's task is unfinished (default ALLOW)."""

    UNSPECIFIED = "unspecified"
    ALLOW = "allow"
    SKIP = "skip"
    CANCEL_PREVIOUS = "cancel_previous"


@dataclass(frozen=True)
class ScheduleSpec:
    """When a schedule fires and the task each firing submits: give ``cron`` (five fields, or six
    with seconds first, read in ``time_zone``, an IANA name; empty: UTC) or ``interval`` (seconds,
    at least 1). The task's ``idempotency_key`` and ``not_before`` must be empty: each firing sets
    its key ("schedule:<id>:..."), the label ``a2a.schedule=<id>`` and metadata
    ``a2a.schedule_id`` / ``a2a.fire_time``."""

    task: m.TaskSpec
    cron: str = ""
    time_zone: str = ""
    interval: m.Seconds | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    jitter: m.Seconds | None = None  # each firing submits up to this much later (at most 1 h)
    missed: MissedFiringPolicy | str | None = None
    max_catchup: int = 0  # RUN_ALL's bound, 1-1000 (0: 10)
    misfire_grace: m.Seconds | None = None  # the latest firing found later than this was missed (60 s)
    overlap: OverlapPolicy | str | None = None
    created_by: str = ""


@dataclass(frozen=True)
class Schedule:
    """A schedule as the broker knows it (``spec`` with the defaults filled in)."""

    schedule_id: str
    spec: ScheduleSpec
    status: ScheduleStatus = ScheduleStatus.UNSPECIFIED
    note: str = ""
    next_fire_time: datetime | None = None  # unset once ENDED
    next_run_time: datetime | None = None  # next_fire_time plus the jitter offset
    last_fire_time: datetime | None = None
    last_task_id: str = ""
    fired_count: int = 0
    skipped_count: int = 0  # missed, skipped for overlap, or refused (see last_error)
    last_error: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class TriggerResult:
    """What ``trigger_schedule`` did: the task submitted, or why none was (``skipped``)."""

    task: m.Task | None
    skipped: str
    schedule: Schedule


# ---------------------------------------------------------------- conversions


def schedule_spec_pb(s: ScheduleSpec) -> tasks_pb2.ScheduleSpec:
    msg = tasks_pb2.ScheduleSpec(
        cron=s.cron,
        time_zone=s.time_zone,
        task=c.task_spec(s.task),
        missed=c.from_enum(tasks_pb2.MissedFiringPolicy, s.missed),
        max_catchup=s.max_catchup,
        overlap=c.from_enum(tasks_pb2.OverlapPolicy, s.overlap),
        created_by=s.created_by,
    )
    for name in ("interval", "jitter", "misfire_grace"):
        value = getattr(s, name)
        if value is not None:
            getattr(msg, name).CopyFrom(c.duration(value))
    for name in ("start_time", "end_time"):
        value = getattr(s, name)
        if value is not None:
            getattr(msg, name).CopyFrom(c.timestamp(value))
    return msg


def schedule_spec(s: tasks_pb2.ScheduleSpec) -> ScheduleSpec:
    return ScheduleSpec(
        task=c.spec_from_pb(s.task),
        cron=s.cron,
        time_zone=s.time_zone,
        interval=c.to_seconds(s, "interval"),
        start_time=c.to_datetime(s, "start_time"),
        end_time=c.to_datetime(s, "end_time"),
        jitter=c.to_seconds(s, "jitter"),
        missed=c.to_enum(MissedFiringPolicy, tasks_pb2.MissedFiringPolicy, s.missed),
        max_catchup=s.max_catchup,
        misfire_grace=c.to_seconds(s, "misfire_grace"),
        overlap=c.to_enum(OverlapPolicy, tasks_pb2.OverlapPolicy, s.overlap),
        created_by=s.created_by,
    )


def schedule(s: tasks_pb2.Schedule) -> Schedule:
    return Schedule(
        schedule_id=s.schedule_id,
        spec=schedule_spec(s.spec),
        status=c.to_enum(ScheduleStatus, tasks_pb2.ScheduleStatus, s.status),
        note=s.note,
        next_fire_time=c.to_datetime(s, "next_fire_time"),
        next_run_time=c.to_datetime(s, "next_run_time"),
        last_fire_time=c.to_datetime(s, "last_fire_time"),
        last_task_id=s.last_task_id,
        fired_count=s.fired_count,
        skipped_count=s.skipped_count,
        last_error=s.last_error,
        created_at=c.to_datetime(s, "created_at"),
        updated_at=c.to_datetime(s, "updated_at"),
    )


# ---------------------------------------------------------------- calls


class ScheduleCalls:
    """The schedule calls of :class:`BrokerClient`."""

    if TYPE_CHECKING:

        async def _unary(self, service: str, method: str, request: Any, *, safe: bool) -> Any: ...

    async def create_schedule(
        self, spec: ScheduleSpec, *, schedule_id: str = "", paused: bool = False
    ) -> Schedule:
        """Store a schedule (``paused``: created paused; no ``schedule_id``: the broker makes one
        up). Tried once: after a lost answer, ``get_schedule`` tells whether it was stored."""
        req = tasks_pb2.CreateScheduleRequest(
            schedule_id=schedule_id, spec=schedule_spec_pb(spec), paused=paused
        )
        return schedule(await self._unary("tasks", "CreateSchedule", req, safe=False))

    async def get_schedule(self, schedule_id: str) -> Schedule:
        req = tasks_pb2.GetScheduleRequest(schedule_id=schedule_id)
        return schedule(await self._unary("tasks", "GetSchedule", req, safe=True))

    async def list_schedules(
        self, *, status: ScheduleStatus | str | None = None, page_size: int = 0, page_token: str = ""
    ) -> m.Page[Schedule]:
        """One page of schedules (by id), only those in ``status`` when given."""
        req = tasks_pb2.ListSchedulesRequest(
            status=c.from_enum(tasks_pb2.ScheduleStatus, status), page_size=page_size, page_token=page_token
        )
        resp = await self._unary("tasks", "ListSchedules", req, safe=True)
        return m.Page([schedule(s) for s in resp.schedules], resp.next_page_token)

    async def iter_schedules(self, *, status: ScheduleStatus | str | None = None) -> AsyncIterator[Schedule]:
        """Every schedule (in ``status`` when given), following pages."""
        token = ""
        while True:
            page = await self.list_schedules(status=status, page_size=1000, page_token=token)
            for s in page.items:
                yield s
            token = page.next_page_token
            if not token:
                return

    async def pause_schedule(self, schedule_id: str, *, note: str = "") -> Schedule:
        """No firing until :meth:`resume_schedule` (firings due meanwhile are not made up)."""
        req = tasks_pb2.PauseScheduleRequest(schedule_id=schedule_id, note=note)
        return schedule(await self._unary("tasks", "PauseSchedule", req, safe=True))

    async def resume_schedule(self, schedule_id: str) -> Schedule:
        """Fire again, from the first firing after now."""
        req = tasks_pb2.ResumeScheduleRequest(schedule_id=schedule_id)
        return schedule(await self._unary("tasks", "ResumeSchedule", req, safe=True))

    async def delete_schedule(self, schedule_id: str) -> None:
        """Remove the schedule (the tasks it submitted stay)."""
        req = tasks_pb2.DeleteScheduleRequest(schedule_id=schedule_id)
        await self._unary("tasks", "DeleteSchedule", req, safe=False)

    async def trigger_schedule(
        self, schedule_id: str, *, overlap: OverlapPolicy | str | None = None
    ) -> TriggerResult:
        """Run the schedule now (even paused): one task, under its overlap policy unless
        ``overlap`` gives another. Its next firing is unchanged."""
        req = tasks_pb2.TriggerScheduleRequest(
            schedule_id=schedule_id, overlap=c.from_enum(tasks_pb2.OverlapPolicy, overlap)
        )
        resp = await self._unary("tasks", "TriggerSchedule", req, safe=False)
        task = c.task(resp.task) if resp.HasField("task") else None
        return TriggerResult(task, resp.skipped, schedule(resp.schedule))
