"""`a2a-broker schedules ...` and `tasks submit --not-before` in a subprocess against a real broker."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from a2a_broker_client import BrokerClient, MissedFiringPolicy, OverlapPolicy, ScheduleStatus, TaskStatus

from tests.e2e.test_cli_agents import cli


async def test_create_list_get_pause_trigger_resume_and_delete_from_the_command_line(broker):
    r = await cli(
        broker.address, "schedules", "create", "report", "--every", "1h", "--id", "r", "--capability", "x",
        "--label", "team=a", "--payload", '{"n": 1}', "--overlap", "skip", "--missed", "run_all",
        "--max-catchup", "3", "--jitter", "30s", "--grace", "5m",
    )  # fmt: skip
    assert (r.rc, r.out.strip()) == (0, "r"), r.err
    r = await cli(
        broker.address, "schedules", "create", "standup", "--cron", "0 9 * * MON-FRI", "--tz", "Europe/Paris",
        "--id", "c", "--paused",
    )  # fmt: skip
    assert (r.rc, r.out.strip()) == (0, "c"), r.err
    async with BrokerClient(broker.address) as client:
        s = await client.get_schedule("r")
        assert (s.spec.interval, s.spec.jitter, s.spec.misfire_grace, s.spec.max_catchup) == (
            3600,
            30,
            300,
            3,
        )
        assert (s.spec.overlap, s.spec.missed) == (OverlapPolicy.SKIP, MissedFiringPolicy.RUN_ALL)
        task = s.spec.task
        assert (task.title, task.required_capabilities, task.labels, task.data) == (
            "report",
            ("x",),
            {"team": "a"},
            {"n": 1},
        )
        c = await client.get_schedule("c")
        assert (c.spec.cron, c.spec.time_zone, c.status) == (
            "0 9 * * MON-FRI",
            "Europe/Paris",
            ScheduleStatus.PAUSED,
        )

        r = await cli(broker.address, "schedules", "list")
        lines = r.out.splitlines()
        assert r.rc == 0 and lines[0].split()[:3] == ["SCHEDULE", "STATUS", "WHEN"], r.err
        assert lines[1].startswith("c ") and "cron '0 9 * * MON-FRI' Europe/Paris" in lines[1]
        assert lines[2].split()[:4] == ["r", "active", "every", "3600s"]
        r = await cli(broker.address, "schedules", "list", "--status", "paused", "--json")
        assert [x["schedule_id"] for x in json.loads(r.out)] == ["c"], r.err
        r = await cli(broker.address, "schedules", "get", "r")
        assert r.rc == 0 and "every 3600s" in r.out and "run_all (up to 3)" in r.out, r.out

        r = await cli(broker.address, "schedules", "pause", "r", "--note", "holiday")
        assert r.rc == 0 and "paused (holiday)" in r.out, r.err
        r = await cli(broker.address, "schedules", "trigger", "r")
        task_id, status = r.out.split()
        assert (r.rc, status) == (0, "ready"), r.err
        assert (await client.get_task(task_id)).spec.labels["a2a.schedule"] == "r"
        r = await cli(broker.address, "schedules", "trigger", "r")  # its overlap policy: skip
        assert r.rc == 0 and r.out.startswith("skipped: "), r.out
        r = await cli(broker.address, "schedules", "trigger", "r", "--overlap", "allow", "--json")
        assert r.rc == 0 and json.loads(r.out)["schedule"]["fired_count"] == 2, r.err
        r = await cli(broker.address, "schedules", "resume", "r", "--json")
        assert r.rc == 0 and json.loads(r.out)["status"] == "active", r.err

        r = await cli(broker.address, "schedules", "delete", "r")
        assert (r.rc, r.out.strip()) == (0, "r deleted"), r.err
        r = await cli(broker.address, "schedules", "get", "r")
        assert r.rc == 1 and "NOT_FOUND" in r.err
        assert (await client.get_task(task_id)).task_id == task_id  # its tasks stay


async def test_bad_schedules_are_refused_and_nothing_is_stored(broker):
    for args, rc, said in [
        (("--cron", "61 * * * *"), 1, "cron"),
        (("--cron", "* * * * *", "--tz", "Mars/Base"), 1, "time_zone"),
        (("--every", "0.5"), 1, "interval"),
        (("--every", "0"), 2, "more than 0"),
        (("--every", "1h", "--tz", "UTC"), 2, "--tz goes with --cron"),
        (("--every", "1h", "--start", "2030-01-02", "--end", "2030-01-01"), 1, "end_time"),
        ((), 2, "--cron"),
    ]:
        r = await cli(broker.address, "schedules", "create", "t", *args)
        assert r.rc == rc and said in r.err, (args, r.err)
    r = await cli(broker.address, "schedules", "list", "--json")
    assert (r.rc, json.loads(r.out)) == (0, [])


async def test_tasks_submit_not_before_holds_the_task_pending(broker):
    at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    r = await cli(broker.address, "tasks", "submit", "later", "--not-before", at.isoformat())
    task_id, status = r.out.split()
    assert (r.rc, status) == (0, "pending"), r.err
    r = await cli(broker.address, "tasks", "get", task_id)
    (line,) = [x for x in r.out.splitlines() if x.startswith("not before:")]
    assert r.rc == 0 and line.endswith(f" {at:%Y-%m-%d %H:%M:%S}"), r.out
    async with BrokerClient(broker.address) as client:
        t = await client.get_task(task_id)
        assert t.status == TaskStatus.PENDING and t.spec.not_before == at


async def test_relative_times_are_from_now(broker):
    before = datetime.now(UTC)
    r = await cli(broker.address, "tasks", "submit", "soon", "--not-before", "+15m")
    task_id, status = r.out.split()
    assert (r.rc, status) == (0, "pending"), r.err
    r = await cli(broker.address, "schedules", "create", "s", "--every", "1h", "--id", "s", "--start", "+2h")
    assert r.rc == 0, r.err
    async with BrokerClient(broker.address) as client:
        held = (await client.get_task(task_id)).spec.not_before
        start = (await client.get_schedule("s")).spec.start_time
    after = datetime.now(UTC)
    assert held is not None and before + timedelta(minutes=15) <= held <= after + timedelta(minutes=15)
    assert start is not None and before + timedelta(hours=2) <= start <= after + timedelta(hours=2)
    r = await cli(broker.address, "tasks", "submit", "x", "--not-before", "+soon")
    assert r.rc == 2 and "not a duration" in r.err, r.err
