"""Schedules: recurring submissions of one task. The values and the validated inputs; the timing
rules (cron, time zones, the next firing, jitter, the missed-firing and overlap policies) are in
broker/domain/schedules.py."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, StringConstraints

from ..clock import US_PER_S
from .common import Input
from .tasks import Task, TaskSpecInput

# A schedule id goes into each firing's idempotency key (at most 128 characters): 64 leaves room.
ScheduleId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:@\-]+$")]
MIN_INTERVAL_US = 1 * US_PER_S
MAX_INTERVAL_US = 366 * 24 * 3600 * US_PER_S
MAX_JITTER_US = 3600 * US_PER_S
DEFAULT_GRACE_US = 60 * US_PER_S
MAX_GRACE_US = 7 * 24 * 3600 * US_PER_S
DEFAULT_MAX_CATCHUP = 10
MAX_CATCHUP = 1000


class MissedPolicy(enum.StrEnum):
    SKIP = "skip"
    RUN_ONCE = "run_once"
    RUN_ALL = "run_all"


class OverlapPolicy(enum.StrEnum):
    ALLOW = "allow"
    SKIP = "skip"
    CANCEL_PREVIOUS = "cancel_previous"


class ScheduleStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


class ScheduleSpecInput(Input):
    """When a schedule fires and what each firing submits. What pydantic cannot say alone (a cron
    expression that parses, a time zone that exists, cron or interval, the end after the start) is
    checked by ``domain.schedules.check``."""

    cron: Annotated[str, StringConstraints(max_length=256)] = ""
    time_zone: Annotated[str, StringConstraints(max_length=64)] = ""
    interval_us: Annotated[int, Field(ge=MIN_INTERVAL_US, le=MAX_INTERVAL_US)] | None = None
    start_at: int | None = None
    end_at: int | None = None
    jitter_us: Annotated[int, Field(ge=0, le=MAX_JITTER_US)] = 0
    task: TaskSpecInput
    missed: MissedPolicy = MissedPolicy.RUN_ONCE
    max_catchup: Annotated[int, Field(ge=1, le=MAX_CATCHUP)] = DEFAULT_MAX_CATCHUP
    misfire_grace_us: Annotated[int, Field(ge=US_PER_S, le=MAX_GRACE_US)] = DEFAULT_GRACE_US
    overlap: OverlapPolicy = OverlapPolicy.ALLOW
    created_by: Annotated[str, StringConstraints(max_length=128)] = ""


class CreateScheduleInput(Input):
    schedule_id: ScheduleId | None = None  # generated when absent
    spec: ScheduleSpecInput
    paused: bool = False


class ScheduleFilter(Input):
    status: ScheduleStatus | None = None
    page_size: int = 100
    after: str | None = None  # decoded page token: the last id of the previous page


@dataclass(frozen=True)
class Schedule:
    schedule_id: str
    spec: ScheduleSpecInput
    status: ScheduleStatus
    note: str
    next_fire_at: int | None  # the next firing's time (None once ended)
    next_due_at: int | None  # when it submits: its time plus the jitter offset
    last_fire_at: int | None
    last_task_id: str | None
    fired_count: int
    skipped_count: int
    last_error: str
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class Fired:
    """What one firing round of a schedule (or a trigger) did."""

    schedule: Schedule | None  # None: the schedule was gone, or not due any more
    tasks: list[Task]
    skipped: str = ""  # a trigger that submitted nothing: why
