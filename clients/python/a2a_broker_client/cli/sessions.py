"""``a2a-broker sessions create|list|show|close|cancel``."""

from __future__ import annotations

import argparse
import json
from functools import partial
from typing import Any

from ..client import BrokerClient
from ..models import Session, SessionStatus
from ._common import (
    UsageError,
    fields_table,
    key_values,
    paging_options,
    positive_int,
    print_json,
    runner,
    short,
    table,
    take,
    when,
)

STATUSES = [s.value for s in SessionStatus if s is not SessionStatus.UNSPECIFIED]


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "sessions",
        help="create, inspect, close and cancel orchestration sessions",
        description="Orchestration sessions: groups of tasks with a lifecycle.",
    )
    s = p.add_subparsers(dest="sessions_command", required=True)

    cr = s.add_parser("create", parents=[common], help="open a session (prints its id)")
    cr.add_argument("name", nargs="?", default="")
    cr.add_argument("--id", dest="session_id", default="", help="the session id (default: generated)")
    cr.add_argument("--parent", default="", help="parent session id")
    cr.add_argument("--by", dest="initiated_by", default="cli", help="the initiating agent")
    cr.add_argument("--context", default=None, help="a JSON object")
    cr.add_argument("--label", dest="labels", action="append", default=[], metavar="KEY=VALUE")
    cr.add_argument("--max-tasks", type=positive_int, default=0, help="a budget of tasks")
    cr.set_defaults(func=runner(_create))

    ls = s.add_parser("list", parents=[common], help="list sessions, oldest first")
    ls.add_argument("--status", choices=STATUSES)
    ls.add_argument("--by", dest="initiated_by", default="")
    ls.add_argument("--parent", default="")
    paging_options(ls, 100)
    ls.set_defaults(func=runner(_list))

    show = s.add_parser("show", parents=[common], help="show one session with its task counts")
    show.add_argument("session_id")
    show.set_defaults(func=runner(_show))

    close = s.add_parser("close", parents=[common], help="no more tasks: end once they finish")
    close.add_argument("session_id")
    close.add_argument("--summary", default="")
    close.set_defaults(func=runner(_close))

    cancel = s.add_parser("cancel", parents=[common], help="cancel the session and its unfinished tasks")
    cancel.add_argument("session_id")
    cancel.add_argument("--reason", default="")
    cancel.set_defaults(func=runner(_cancel))


def _context(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"--context: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise UsageError("--context: must be a JSON object")
    return value


def _counts(s: Session) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(s.task_counts.items())) or "no tasks"


async def _create(client: BrokerClient, ns: argparse.Namespace) -> int:
    s = await client.create_session(
        ns.name,
        session_id=ns.session_id,
        parent_session_id=ns.parent,
        initiated_by=ns.initiated_by,
        context=_context(ns.context),
        labels=key_values(ns.labels, "--label"),
        max_tasks=ns.max_tasks,
    )
    if ns.json:
        print_json(s)
    else:
        print(s.session_id)
    return 0


async def _list(client: BrokerClient, ns: argparse.Namespace) -> int:
    found: list[Session] = await take(
        partial(
            client.list_sessions, status=ns.status, initiated_by=ns.initiated_by, parent_session_id=ns.parent
        ),
        ns,
    )
    if ns.json:
        print_json(found)
        return 0
    table(
        ["SESSION", "STATUS", "PROGRESS", "TASKS", "BY", "CREATED", "NAME"],
        [
            [
                s.session_id,
                s.status,
                f"{s.progress:.0%}",
                _counts(s),
                s.initiated_by,
                when(s.created_at),
                short(s.name),
            ]
            for s in found
        ],
        empty="(no sessions)",
    )
    return 0


def _row(s: Session) -> list[Any]:
    return [
        s.session_id,
        s.status,
        f"{s.progress:.0%}",
        _counts(s),
        s.initiated_by,
        when(s.created_at),
        short(s.name),
    ]


def _fields(s: Session) -> None:
    fields_table(
        [
            ("session_id", s.session_id),
            ("name", s.name),
            ("status", f"{s.status}" + (f" ({s.status_reason})" if s.status_reason else "")),
            ("progress", f"{s.progress:.0%}"),
            ("tasks", _counts(s)),
            ("parent", s.parent_session_id),
            ("initiated by", s.initiated_by),
            ("labels", [f"{k}={v}" for k, v in sorted(s.labels.items())]),
            ("context", json.dumps(s.context) if s.context else ""),
            ("budget", s.max_tasks or ""),
            ("summary", s.summary),
            ("created", when(s.created_at)),
            ("closed", when(s.closed_at)),
            ("finished", when(s.finished_at)),
        ]
    )


async def _show(client: BrokerClient, ns: argparse.Namespace) -> int:
    s = await client.get_session(ns.session_id)
    if ns.json:
        print_json(s)
    else:
        _fields(s)
    return 0


async def _close(client: BrokerClient, ns: argparse.Namespace) -> int:
    s = await client.close_session(ns.session_id, summary=ns.summary)
    if ns.json:
        print_json(s)
    else:
        print(f"{s.session_id} {s.status}")
    return 0


async def _cancel(client: BrokerClient, ns: argparse.Namespace) -> int:
    s, cancelled = await client.cancel_session(ns.session_id, reason=ns.reason, actor="cli")
    if ns.json:
        print_json({"session": s, "cancelled_task_ids": cancelled})
    else:
        print(f"{s.session_id} {s.status}; {len(cancelled)} task(s) cancelled")
    return 0
