"""The schedule rules (broker/domain/schedules.py): timing (interval grids, cron in a time zone
across daylight-saving changes, start and end), jitter, which firings run under each
missed-firing policy, the overlap policy, and what a schedule is refused for."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from broker.domain import schedules as rules
from broker.errors import InvalidArgument
from broker.models.schedules import MissedPolicy, OverlapPolicy, ScheduleSpecInput
from broker.models.tasks import TaskSpecInput

S = 1_000_000
T0 = 1_700_000_000 * S  # 2023-11-14T22:13:20Z


def spec(**kw: Any) -> ScheduleSpecInput:
    kw.setdefault("task", TaskSpecInput(title="job"))
    if "cron" not in kw:
        kw.setdefault("interval_us", 10 * S)
    return ScheduleSpecInput(**kw)


def us(text: str, zone: str = "UTC") -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()) * S


# ---------------------------------------------------------------- timing


def test_an_interval_fires_one_interval_after_creation_then_on_that_grid():
    s = spec()
    assert rules.check(s, T0) == T0 + 10 * S
    assert rules.fires_from(s, T0, T0 + 10 * S) == T0 + 10 * S
    assert rules.fires_from(s, T0, T0 + 10 * S + 1) == T0 + 20 * S


def test_an_interval_with_a_start_fires_at_the_start_and_past_starts_keep_their_grid():
    assert rules.check(spec(start_at=T0 + 5 * S), T0) == T0 + 5 * S
    # A start in the past: the first point of its grid from now on (no firing made up).
    assert rules.check(spec(start_at=T0 - 25 * S), T0) == T0 + 5 * S


def test_no_firing_after_the_end():
    s = spec(end_at=T0 + 25 * S)
    assert rules.fires_from(s, T0, T0 + 20 * S) == T0 + 20 * S
    assert rules.fires_from(s, T0, T0 + 20 * S + 1) is None


def test_cron_in_a_time_zone():
    s = spec(cron="0 9 * * MON-FRI", time_zone="Europe/Paris")
    friday_evening = us("2024-03-08T18:00:00", "Europe/Paris")
    assert rules.fires_from(s, 0, friday_evening) == us("2024-03-11T09:00:00", "Europe/Paris")
    assert rules.fires_from(s, 0, us("2024-03-11T09:00:00", "Europe/Paris")) == us(
        "2024-03-11T09:00:00", "Europe/Paris"
    )  # at or after: the time itself


def test_cron_across_daylight_saving_changes_as_debian_cron():
    s = spec(cron="30 2 * * *", time_zone="Europe/Paris")
    # 2024-03-31: 02:00 -> 03:00; 02:30 does not exist and runs at the first minute after the gap.
    gap = rules.fires_from(s, 0, us("2024-03-31T00:00:00", "Europe/Paris"))
    assert gap == us("2024-03-31T03:00:00", "Europe/Paris")
    # 2024-10-27: 03:00 -> 02:00; 02:30 occurs twice and runs once.
    first = rules.fires_from(s, 0, us("2024-10-27T00:00:00", "Europe/Paris"))
    assert first is not None
    assert rules.fires_from(s, 0, first + 1) == us("2024-10-28T02:30:00", "Europe/Paris")


def test_cron_with_seconds():
    s = spec(cron="*/15 * * * * *")  # T0 is at :20 past the minute
    assert rules.fires_from(s, 0, T0) == T0 + 10 * S
    assert rules.fires_from(s, 0, T0 + 10 * S) == T0 + 10 * S
    assert rules.fires_from(s, 0, T0 + 10 * S + 1) == T0 + 25 * S


def test_jitter_is_within_bounds_and_the_same_on_every_broker():
    offsets = {rules.due_at("nightly", T0 + i * S, 5 * S) - (T0 + i * S) for i in range(200)}
    assert min(offsets) >= 0 and max(offsets) <= 5 * S and len(offsets) > 150
    assert rules.due_at("nightly", T0, 5 * S) == rules.due_at("nightly", T0, 5 * S)
    assert rules.due_at("nightly", T0, 0) == T0


# ---------------------------------------------------------------- missed firings


def test_one_firing_due_on_time_runs_whatever_the_policy():
    for missed in MissedPolicy:
        p = rules.plan(spec(missed=missed), "s", T0, T0 + 10 * S, T0 + 10 * S + 100)
        assert (p.fire, p.skipped, p.next_fire) == ([T0 + 10 * S], 0, T0 + 20 * S)


def test_nothing_runs_before_its_time():
    p = rules.plan(spec(), "s", T0, T0 + 10 * S, T0 + 10 * S - 1)
    assert (p.fire, p.skipped, p.next_fire) == ([], 0, T0 + 10 * S)


# Down from T0+5 s to T0+55 s: the firings at 10, 20, 30, 40 and 50 s were all found due together.
DOWN = (T0, T0 + 10 * S, T0 + 55 * S)


@pytest.mark.parametrize(
    ("missed", "grace", "fired", "skipped"),
    [
        (MissedPolicy.SKIP, 1, [], 5),  # the latest is 5 s late: missed too
        (MissedPolicy.SKIP, 60, [50], 4),  # the latest within the grace: runs
        (MissedPolicy.RUN_ONCE, 1, [50], 4),
        (MissedPolicy.RUN_ALL, 1, [30, 40, 50], 2),  # max_catchup 3: the most recent three
    ],
)
def test_missed_firings_by_policy(missed, grace, fired, skipped):
    s = spec(missed=missed, misfire_grace_us=grace * S, max_catchup=3)
    p = rules.plan(s, "s", *DOWN)
    assert p.fire == [T0 + n * S for n in fired]
    assert p.skipped == skipped
    assert p.next_fire == T0 + 60 * S


def test_a_long_outage_of_a_frequent_schedule_is_bounded_work():
    s = spec(cron="* * * * * *", missed=MissedPolicy.RUN_ALL, max_catchup=5)
    week = 7 * 24 * 3600 * S
    p = rules.plan(s, "s", T0, T0 + S, T0 + week)
    assert p.fire == [T0 + week - n * S for n in (4, 3, 2, 1, 0)]
    assert p.skipped >= rules.SCAN - 5 and p.next_fire == T0 + week + S
    grid = rules.plan(
        spec(interval_us=S, missed=MissedPolicy.RUN_ALL, max_catchup=5), "s", T0, T0 + S, T0 + week
    )
    assert grid.fire == p.fire and grid.skipped == week // S - 5


def test_firings_past_the_end_are_not_run_and_the_schedule_ends():
    s = spec(end_at=T0 + 35 * S, missed=MissedPolicy.RUN_ALL)
    p = rules.plan(s, "s", *DOWN)
    assert p.fire == [T0 + n * S for n in (10, 20, 30)] and p.next_fire is None


# ---------------------------------------------------------------- overlap


def test_overlap_policy():
    A = rules.Action
    for policy in OverlapPolicy:
        assert rules.overlap_action(policy, previous_unfinished=False) is A.SUBMIT
    assert rules.overlap_action(OverlapPolicy.ALLOW, True) is A.SUBMIT
    assert rules.overlap_action(OverlapPolicy.SKIP, True) is A.SKIP
    assert rules.overlap_action(OverlapPolicy.CANCEL_PREVIOUS, True) is A.CANCEL_PREVIOUS


def test_a_firings_task_names_its_schedule_and_time():
    template = TaskSpecInput(title="job", labels={"team": "a"}, metadata={"x": 1})
    key = rules.firing_key("nightly", T0, T0 + 10 * S)
    t = rules.firing_spec(template, "nightly", T0 + 10 * S, key)
    assert t.labels == {"team": "a", "a2a.schedule": "nightly"}
    assert t.metadata == {"x": 1, "a2a.schedule_id": "nightly", "a2a.fire_time": "2023-11-14T22:13:30Z"}
    assert t.idempotency_key == key and len(rules.firing_key("x" * 64, T0, T0)) <= 128


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"cron": "61 * * * *"}, "spec.cron"),
        ({"cron": "every day"}, "spec.cron"),
        ({"cron": "0 9 * * *", "time_zone": "Mars/Olympus"}, "spec.time_zone"),
        ({"cron": "0 9 * * *", "time_zone": "../etc/passwd"}, "spec.time_zone"),
        ({"cron": "0 9 * * *", "interval_us": 10 * S}, "spec.cron"),
        ({"cron": ""}, "spec.cron"),
        ({"time_zone": "UTC"}, "spec.time_zone"),
        ({"jitter_us": 10 * S}, "spec.jitter"),
        ({"start_at": T0 + 10 * S, "end_at": T0 + 5 * S}, "spec.end_time"),
        ({"end_at": T0 - S}, "spec.end_time"),
        ({"task": TaskSpecInput(title="t", idempotency_key="k")}, "spec.task.idempotency_key"),
        ({"task": TaskSpecInput(title="t", not_before=T0)}, "spec.task.not_before"),
        ({"task": TaskSpecInput(title="t", labels={"a2a.schedule": "x"})}, "spec.task.labels"),
    ],
)
def test_what_a_schedule_is_refused_for(kw, field):
    with pytest.raises(InvalidArgument) as err:
        rules.check(spec(**kw), T0)
    assert str(err.value).startswith(f"{field}:"), err.value
