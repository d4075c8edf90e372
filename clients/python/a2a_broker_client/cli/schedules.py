"""``a2a-broker schedules create|list|get|pause|resume|delete|trigger``."""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from ..client import BrokerClient
from ..models import RetryPolicy, TaskSpec
from ..schedules import MissedFiringPolicy, OverlapPolicy, Schedule, ScheduleSpec, ScheduleStatus
from ._common import (
    UsageError,
    duration,
    fields_table,
    key_values,
    paging_options,
    positive_duration,
    positive_int,
    print_json,
    read_payload,
    runner,
    short,
    table,
    take,
    time_or_delay,
    when,
)

STATUSES = [s.value for s in ScheduleStatus if s is not ScheduleStatus.UNSPECIFIED]
MISSED = [p.value for p in MissedFiringPolicy if p is not MissedFiringPolicy.UNSPECIFIED]
OVERLAP = [p.value for p in OverlapPolicy if p is not OverlapPolicy.UNSPECIFIED]


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "schedules",
        help="create, inspect, pause and trigger recurring tasks",
        description="Schedules: a task submitted at each firing of a cron expression or an interval.",
    )
    s = p.add_subparsers(dest="schedules_command", required=True)

    cr = s.add_parser(
        "create",
        parents=[common],
        help="create a schedule (prints its id)",
        description="Create a schedule: --cron EXPR [--tz ZONE] or --every DURATION, and the task "
        "each firing submits (TITLE and the task options). PAYLOAD is text, '-' for stdin, or '@path'.",
    )
    cr.add_argument("title", help="the title of the task each firing submits")
    when_ = cr.add_mutually_exclusive_group(required=True)
    when_.add_argument("--cron", default="", help="'M H DoM Mon DoW' (or with seconds first)")
    when_.add_argument(
        "--every", type=positive_duration, default=None, metavar="DURATION", help="90s, 15m..."
    )
    cr.add_argument("--tz", dest="time_zone", default="", help="the cron's IANA time zone (default UTC)")
    cr.add_argument("--id", dest="schedule_id", default="", help="the schedule id (default: generated)")
    cr.add_argument(
        "--start", type=time_or_delay, default=None, help="no firing before (ISO 8601, +DURATION)"
    )
    cr.add_argument("--end", type=time_or_delay, default=None, help="no firing after (ISO 8601, +DURATION)")
    cr.add_argument(
        "--jitter", type=duration, default=None, metavar="DURATION", help="submit up to this late"
    )
    cr.add_argument("--missed", choices=MISSED, default=None, help="firings missed while down (run_once)")
    cr.add_argument("--max-catchup", type=positive_int, default=0, help="run_all's bound (default 10)")
    cr.add_argument("--grace", type=positive_duration, default=None, metavar="DURATION", help="misfire grace")
    cr.add_argument("--overlap", choices=OVERLAP, default=None, help="previous run unfinished (allow)")
    cr.add_argument("--paused", action="store_true", help="create it paused")
    cr.add_argument("--by", dest="created_by", default="cli", help="who creates it")
    t = cr.add_argument_group("the task each firing submits")
    t.add_argument("--payload", default=None)
    t.add_argument("--content-type", default="")
    t.add_argument("--type", dest="task_type", default="")
    t.add_argument("--capability", dest="capabilities", action="append", default=[], help="repeatable")
    t.add_argument("--priority", type=int, default=None, help="0-10, higher first (default 5)")
    t.add_argument("--max-retries", type=int, default=None)
    t.add_argument("--lease-timeout", type=positive_duration, default=None, metavar="DURATION")
    t.add_argument("--tag", dest="tags", action="append", default=[], help="repeatable")
    t.add_argument("--label", dest="labels", action="append", default=[], metavar="KEY=VALUE")
    cr.set_defaults(func=runner(_create))

    ls = s.add_parser("list", parents=[common], help="list schedules by id")
    ls.add_argument("--status", choices=STATUSES)
    paging_options(ls, 100)
    ls.set_defaults(func=runner(_list))

    get = s.add_parser("get", parents=[common], help="show one schedule")
    get.add_argument("schedule_id")
    get.set_defaults(func=runner(_get))

    pa = s.add_parser("pause", parents=[common], help="no firing until resumed")
    pa.add_argument("schedule_id")
    pa.add_argument("--note", default="", help="why")
    pa.set_defaults(func=runner(_pause))

    for name, help_, func in (
        ("resume", "fire again, from the next firing after now", _resume),
        ("delete", "remove a schedule (its tasks stay)", _delete),
    ):
        c = s.add_parser(name, parents=[common], help=help_)
        c.add_argument("schedule_id")
        c.set_defaults(func=runner(func))

    tr = s.add_parser("trigger", parents=[common], help="run it now: submit one task (prints its id)")
    tr.add_argument("schedule_id")
    tr.add_argument("--overlap", choices=OVERLAP, default=None, help="for this run (default: the schedule's)")
    tr.set_defaults(func=runner(_trigger))


def _timing(s: ScheduleSpec) -> str:
    if s.cron:
        return f"cron '{s.cron}'" + (f" {s.time_zone}" if s.time_zone else " UTC")
    return f"every {s.interval:g}s"


async def _create(client: BrokerClient, ns: argparse.Namespace) -> int:
    if ns.time_zone and not ns.cron:
        raise UsageError("--tz goes with --cron")
    payload, content_type = read_payload(ns.payload, ns.content_type)
    task = TaskSpec(
        title=ns.title,
        task_type=ns.task_type,
        payload=payload,
        content_type=content_type,
        required_capabilities=ns.capabilities,
        priority=ns.priority,
        retry=RetryPolicy(max_retries=ns.max_retries) if ns.max_retries is not None else None,
        lease_timeout=ns.lease_timeout,
        tags=ns.tags,
        labels=key_values(ns.labels, "--label"),
        submitted_by=ns.created_by,
    )
    spec = ScheduleSpec(
        task=task,
        cron=ns.cron,
        time_zone=ns.time_zone,
        interval=ns.every,
        start_time=ns.start,
        end_time=ns.end,
        jitter=ns.jitter,
        missed=ns.missed,
        max_catchup=ns.max_catchup,
        misfire_grace=ns.grace,
        overlap=ns.overlap,
        created_by=ns.created_by,
    )
    s = await client.create_schedule(spec, schedule_id=ns.schedule_id, paused=ns.paused)
    if ns.json:
        print_json(s)
    else:
        print(s.schedule_id)
    return 0


async def _list(client: BrokerClient, ns: argparse.Namespace) -> int:
    found: list[Schedule] = await take(partial(client.list_schedules, status=ns.status), ns)
    if ns.json:
        print_json(found)
        return 0
    table(
        ["SCHEDULE", "STATUS", "WHEN", "NEXT (UTC)", "FIRED", "SKIPPED", "TITLE"],
        [
            [
                s.schedule_id,
                s.status.value,
                _timing(s.spec),
                when(s.next_fire_time),
                s.fired_count,
                s.skipped_count,
                short(s.spec.task.title),
            ]
            for s in found
        ],
        empty="(no schedules)",
    )
    return 0


def _show(ns: argparse.Namespace, s: Schedule) -> None:
    if ns.json:
        print_json(s)
        return
    p = s.spec
    fields_table(
        [
            ("schedule_id", s.schedule_id),
            ("status", f"{s.status.value}" + (f" ({s.note})" if s.note else "")),
            ("when", _timing(p)),
            ("start", p.start_time),
            ("end", p.end_time),
            ("jitter", f"{p.jitter:g}s" if p.jitter else ""),
            (
                "missed firings",
                f"{p.missed}" + (f" (up to {p.max_catchup})" if p.missed == "run_all" else ""),
            ),
            ("misfire grace", f"{p.misfire_grace:g}s" if p.misfire_grace else ""),
            ("overlap", p.overlap),
            ("task", p.task.title),
            ("capabilities", p.task.required_capabilities),
            ("next firing", s.next_fire_time),
            ("next run", s.next_run_time),
            ("last firing", s.last_fire_time),
            ("last task", s.last_task_id),
            ("fired", s.fired_count),
            ("skipped", s.skipped_count),
            ("last error", s.last_error),
            ("created by", p.created_by),
            ("created", s.created_at),
        ]
    )


async def _get(client: BrokerClient, ns: argparse.Namespace) -> int:
    _show(ns, await client.get_schedule(ns.schedule_id))
    return 0


async def _pause(client: BrokerClient, ns: argparse.Namespace) -> int:
    _show(ns, await client.pause_schedule(ns.schedule_id, note=ns.note))
    return 0


async def _resume(client: BrokerClient, ns: argparse.Namespace) -> int:
    _show(ns, await client.resume_schedule(ns.schedule_id))
    return 0


async def _delete(client: BrokerClient, ns: argparse.Namespace) -> int:
    await client.delete_schedule(ns.schedule_id)
    if ns.json:
        print_json({"schedule_id": ns.schedule_id, "deleted": True})
    else:
        print(f"{ns.schedule_id} deleted")
    return 0


async def _trigger(client: BrokerClient, ns: argparse.Namespace) -> int:
    r = await client.trigger_schedule(ns.schedule_id, overlap=ns.overlap)
    if ns.json:
        print_json(r)
    elif r.task is not None:
        print(f"{r.task.task_id}  {r.task.status.value}")
    else:
        print(f"skipped: {r.skipped}")
    return 0
