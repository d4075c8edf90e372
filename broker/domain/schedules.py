"""When a schedule fires, and what each firing does: pure rules, no I/O.

Timing. A cron schedule fires at the times its expression names in its time zone, read by
``cronsim`` (Debian cron's semantics, daylight-saving quirks included: a time in a gap runs at the
first minute after it, a time that occurs twice runs once); an interval schedule fires on a grid,
``start + k * interval`` (without a start: one interval after the creation, then every interval).
Neither fires before its start nor after its end. Times are microseconds since the epoch, as
everywhere in the broker (broker/clock.py).

Each firing has a *time* (its place on the grid, part of its task's idempotency key) and a *due
time*: the time plus a jitter offset derived from the schedule id and the firing's time, so that
every broker computes the same one (``due_at``).

Firing. When a schedule's next firing is due, ``plan`` looks at every firing due since (bounded:
``SCAN`` steps of the cron iterator at most), and decides which run by the missed-firing policy:
of several firings found due together all but the latest were missed, and the latest was missed
when found more than the grace late. SKIP runs none of the missed; RUN_ONCE runs one, the latest;
RUN_ALL runs them all, oldest first, up to ``max_catchup`` (the most recent). Then each firing to
run meets the overlap policy (``overlap_action``): with the previous run's task unfinished, ALLOW
submits anyway, SKIP skips, CANCEL_PREVIOUS cancels it first.
"""

from __future__ import annotations

import enum
import hashlib
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from ..errors import InvalidArgument
from ..models.schedules import MissedPolicy, OverlapPolicy, ScheduleSpecInput
from ..models.tasks import TaskSpecInput

# The label each firing's task carries (ListTasks by label "a2a.schedule=<id>"), and its metadata.
LABEL = "a2a.schedule"
META_ID = "a2a.schedule_id"
META_TIME = "a2a.fire_time"
# At most this many steps of the cron iterator per catch-up; past them, the latest firings are
# found backwards from now and the count of those skipped in between is a lower bound.
SCAN = 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_S = 1_000_000


def _dt(us: int, tz: ZoneInfo | None) -> datetime:
    return (_EPOCH + timedelta(microseconds=us)).astimezone(tz or UTC)


def _us(dt: datetime) -> int:
    delta = dt.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_S + delta.microseconds


def iso(us: int) -> str:
    """A time as an RFC 3339 UTC string (the firing's time in its task's metadata)."""
    return _dt(us, None).isoformat().replace("+00:00", "Z")


def _zone(name: str) -> ZoneInfo | None:
    return ZoneInfo(name) if name else None


# ---------------------------------------------------------------- checks


def check(spec: ScheduleSpecInput, created_at: int) -> int:
    """Refuse what a schedule cannot be (InvalidArgument naming the field as the proto does);
    return its first firing's time."""
    if spec.cron and spec.interval_us is not None:
        raise InvalidArgument("spec.cron", "give a cron expression or an interval, not both")
    if not spec.cron and spec.interval_us is None:
        raise InvalidArgument("spec.cron", "give a cron expression or an interval")
    if spec.cron:
        try:
            CronSim(spec.cron, datetime(2000, 1, 1))
        except CronSimError as exc:
            raise InvalidArgument("spec.cron", f"{spec.cron!r} is not a cron expression ({exc})") from None
        if spec.time_zone:
            try:
                ZoneInfo(spec.time_zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise InvalidArgument(
                    "spec.time_zone", f"{spec.time_zone!r} is not an IANA time zone (e.g. Europe/Paris)"
                ) from None
    elif spec.time_zone:
        raise InvalidArgument("spec.time_zone", "applies to cron schedules only")
    if spec.interval_us is not None and spec.jitter_us >= spec.interval_us:
        raise InvalidArgument("spec.jitter", "must be less than the interval")
    if spec.start_at is not None and spec.end_at is not None and spec.end_at <= spec.start_at:
        raise InvalidArgument("spec.end_time", "must be after start_time")
    _check_template(spec.task)
    first = fires_from(spec, created_at, max(created_at, spec.start_at or created_at))
    if first is None:
        raise InvalidArgument("spec.end_time", "the schedule would never fire before it")
    return first


def _check_template(task: TaskSpecInput) -> None:
    if task.idempotency_key is not None:
        raise InvalidArgument("spec.task.idempotency_key", "must be empty: each firing sets its own")
    if task.not_before is not None:
        raise InvalidArgument("spec.task.not_before", "must be unset: a firing's task is due at once")
    if LABEL in task.labels:
        raise InvalidArgument("spec.task.labels", f"{LABEL!r} is set by each firing")
    if len(task.labels) > 63:
        raise InvalidArgument("spec.task.labels", f"at most 63 entries (each firing adds {LABEL!r})")


# ---------------------------------------------------------------- timing


def fires_from(spec: ScheduleSpecInput, created_at: int, t: int) -> int | None:
    """The time of the first firing at or after ``t`` (None: none before the end)."""
    if spec.start_at is not None:
        t = max(t, spec.start_at)
    if spec.interval_us is not None:
        step = spec.interval_us
        anchor = spec.start_at if spec.start_at is not None else created_at + step
        at = anchor if t <= anchor else anchor + -(-(t - anchor) // step) * step
    else:
        zone = _zone(spec.time_zone)
        try:
            # cronsim answers the first time strictly after the given one's whole second.
            at = _us(next(CronSim(spec.cron, _dt(t - 1, zone))))
        except (OverflowError, ValueError, StopIteration):  # past year 9999
            return None
    return at if spec.end_at is None or at <= spec.end_at else None


def _latest(spec: ScheduleSpecInput, upto: int, after: int, keep: int) -> list[int]:
    """At most ``keep`` cron firings in (after, upto], the latest, oldest first (backwards)."""
    out: list[int] = []
    zone = _zone(spec.time_zone)
    try:
        for dt in CronSim(spec.cron, _dt(upto + 1, zone), reverse=True):
            at = _us(dt)
            if at <= after or len(out) == keep:
                break
            if at <= upto and (spec.start_at is None or at >= spec.start_at):
                out.append(at)
    except (OverflowError, ValueError):
        pass
    return out[::-1]


def due_at(schedule_id: str, at: int, jitter_us: int) -> int:
    """When the firing at ``at`` submits: ``at`` plus an offset of 0-jitter derived from the
    schedule id and ``at`` (the same on every broker, and on a run again of a write)."""
    if not jitter_us:
        return at
    digest = hashlib.blake2b(f"{schedule_id}@{at}".encode(), digest_size=8).digest()
    return at + int.from_bytes(digest, "big") % (jitter_us + 1)


@dataclass(frozen=True)
class Plan:
    fire: list[int]  # the times of the firings to run now, oldest first
    skipped: int  # firings due that will not run (missed, per the policy)
    next_fire: int | None  # the next firing's time after these (None: the schedule has ended)


def plan(spec: ScheduleSpecInput, schedule_id: str, created_at: int, next_fire: int, now: int) -> Plan:
    """Which firings from ``next_fire`` on run now, and which one comes next (the module's
    docstring gives the rules)."""
    keep = spec.max_catchup if spec.missed is MissedPolicy.RUN_ALL else 1
    due: deque[int] = deque(maxlen=keep)
    count = 0
    upto = now if spec.end_at is None else min(now, spec.end_at)
    if spec.interval_us is not None and next_fire <= upto:  # the grid: count, jump to the last ones
        n = (upto - next_fire) // spec.interval_us + 1
        if n > keep + 1:
            count = n - keep - 1
            next_fire += count * spec.interval_us
    at: int | None = next_fire
    steps = 0
    while at is not None and at <= now and due_at(schedule_id, at, spec.jitter_us) <= now:
        due.append(at)
        count += 1
        steps += 1
        if steps == SCAN and spec.interval_us is None:  # a long outage: the latest, backwards
            latest = _latest(spec, upto, at, keep)
            count += len(latest)
            due.extend(latest)
            at = fires_from(spec, created_at, upto + 1)
            break
        at = fires_from(spec, created_at, at + 1)
    if not due:
        return Plan([], 0, at)
    last = due[-1]
    on_time = now - due_at(schedule_id, last, spec.jitter_us) <= spec.misfire_grace_us
    if spec.missed is MissedPolicy.RUN_ALL:
        fire = list(due)
    elif spec.missed is MissedPolicy.RUN_ONCE or on_time:
        fire = [last]
    else:
        fire = []
    return Plan(fire, count - len(fire), at)


# ---------------------------------------------------------------- each firing


class Action(enum.Enum):
    SUBMIT = "submit"
    SKIP = "skip"
    CANCEL_PREVIOUS = "cancel previous"


def overlap_action(policy: OverlapPolicy, previous_unfinished: bool) -> Action:
    """What a run does about the previous run's task (unfinished or not)."""
    if not previous_unfinished or policy is OverlapPolicy.ALLOW:
        return Action.SUBMIT
    return Action.SKIP if policy is OverlapPolicy.SKIP else Action.CANCEL_PREVIOUS


def overlap_skipped(previous_task_id: str) -> str:
    return f"the previous run's task {previous_task_id} has not finished (overlap policy: skip)"


def superseded(schedule_id: str, at: int) -> str:
    """The reason the previous run's task is cancelled by a firing (CANCEL_PREVIOUS)."""
    return f"superseded by schedule {schedule_id}'s run at {iso(at)}"


def firing_key(schedule_id: str, created_at: int, at: int) -> str:
    """The idempotency key of a firing's task: the schedule (and which one of that id: its
    creation time) and the firing's time, hex microseconds. At most 103 characters."""
    return f"schedule:{schedule_id}:{created_at:x}:{at:x}"


def firing_spec(template: TaskSpecInput, schedule_id: str, at: int, key: str | None) -> TaskSpecInput:
    """The task a run submits: the template, labelled and noted with the schedule and the time."""
    return template.model_copy(
        update={
            "labels": {**template.labels, LABEL: schedule_id},
            "metadata": {**template.metadata, META_ID: schedule_id, META_TIME: iso(at)},
            "idempotency_key": key,
        }
    )
