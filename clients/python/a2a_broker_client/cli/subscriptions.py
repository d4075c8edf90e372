"""``a2a-broker subscriptions create|list|get|delete|seek``: durable subscriptions to subjects
(send to one with ``a2a-broker send --subject``; consume one with ``a2a-broker subscribe AGENT
--subscription NAME``)."""

from __future__ import annotations

import argparse
from typing import Any

from ..client import BrokerClient
from ..models import Subscription
from ._common import (
    UsageError,
    fields_table,
    paging_options,
    parse_time,
    positive_duration,
    positive_int,
    print_json,
    runner,
    table,
    take,
    when,
)


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "subscriptions",
        help="create, inspect, delete and seek subscriptions to subjects",
        description="Durable subscriptions to subjects: each gets every message sent to a subject its "
        "filter matches ('*': one token, '>': the rest), shared by the agents consuming it.",
    )
    s = p.add_subparsers(dest="subscriptions_command", required=True)

    cr = s.add_parser("create", parents=[common], help="create a subscription (a repeat is harmless)")
    cr.add_argument("name")
    cr.add_argument("filter", help="a subject filter, such as orders.*.created or orders.>")
    cr.add_argument("--ack-deadline", type=positive_duration, default=None, metavar="DURATION")
    cr.add_argument("--max-attempts", type=positive_int, default=0, help="before dead-lettering (default 5)")
    cr.add_argument(
        "--retention",
        type=positive_duration,
        default=None,
        metavar="DURATION",
        help="unacked messages expire",
    )
    cr.add_argument("--ordering", action="store_true", help="one message at a time per ordering key")
    cr.add_argument("--dead-letter-subject", default="", help="also publish dead letters to this subject")
    start = cr.add_mutually_exclusive_group()
    start.add_argument("--from-sequence", type=positive_int, default=None, help="replay from this sequence")
    start.add_argument("--from-time", type=parse_time, default=None, help="replay from this time (ISO 8601)")
    cr.set_defaults(func=runner(_create))

    ls = s.add_parser("list", parents=[common], help="list subscriptions with their backlogs")
    paging_options(ls, 100)
    ls.set_defaults(func=runner(_list))

    get = s.add_parser("get", parents=[common], help="show one subscription")
    get.add_argument("name")
    get.set_defaults(func=runner(_get))

    rm = s.add_parser("delete", parents=[common], help="delete a subscription and its deliveries")
    rm.add_argument("name")
    rm.set_defaults(func=runner(_delete))

    sk = s.add_parser("seek", parents=[common], help="replay from (or skip to) a point of the history")
    sk.add_argument("name")
    to = sk.add_mutually_exclusive_group(required=True)
    to.add_argument("--sequence", type=positive_int, default=None)
    to.add_argument("--time", type=parse_time, default=None, help="ISO 8601")
    sk.set_defaults(func=runner(_seek))


def _age(s: Subscription) -> str:
    return "-" if s.oldest_unacked_age is None else f"{s.oldest_unacked_age:.1f}s"


def _fields(s: Subscription) -> None:
    fields_table(
        [
            ("name", s.name),
            ("filter", s.filter),
            ("ack deadline", f"{s.ack_deadline:g}s" if s.ack_deadline is not None else ""),
            ("max attempts", s.max_attempts),
            ("retention", f"{s.retention:g}s" if s.retention is not None else ""),
            ("ordering", "by key" if s.ordering else ""),
            ("dead-letter subject", s.dead_letter_subject),
            ("backlog", s.backlog),
            ("in flight", s.in_flight),
            ("dead letters", s.dead_letters),
            ("oldest unacked", f"{when(s.oldest_unacked_at)} ({_age(s)} ago)" if s.oldest_unacked_at else ""),
            ("created", when(s.created_at)),
            ("created by", s.created_by),
        ]
    )


async def _create(client: BrokerClient, ns: argparse.Namespace) -> int:
    s = await client.create_subscription(
        ns.name,
        ns.filter,
        ack_deadline=ns.ack_deadline,
        max_attempts=ns.max_attempts,
        retention=ns.retention,
        ordering=ns.ordering,
        dead_letter_subject=ns.dead_letter_subject,
        start_sequence=ns.from_sequence,
        start_time=ns.from_time,
    )
    if ns.json:
        print_json(s)
    else:
        print(f"{s.name} {s.filter} (backlog {s.backlog})")
    return 0


async def _list(client: BrokerClient, ns: argparse.Namespace) -> int:
    found: list[Subscription] = await take(client.list_subscriptions, ns)
    if ns.json:
        print_json(found)
        return 0
    table(
        ["NAME", "FILTER", "BACKLOG", "IN FLIGHT", "DEAD", "OLDEST UNACKED", "CREATED"],
        [
            [s.name, s.filter, s.backlog, s.in_flight, s.dead_letters, _age(s), when(s.created_at)]
            for s in found
        ],
        empty="(no subscriptions)",
    )
    return 0


async def _get(client: BrokerClient, ns: argparse.Namespace) -> int:
    s = await client.get_subscription(ns.name)
    if ns.json:
        print_json(s)
    else:
        _fields(s)
    return 0


async def _delete(client: BrokerClient, ns: argparse.Namespace) -> int:
    await client.delete_subscription(ns.name)
    if not ns.json:
        print(f"{ns.name} deleted")
    else:
        print_json({"deleted": ns.name})
    return 0


async def _seek(client: BrokerClient, ns: argparse.Namespace) -> int:
    if ns.sequence is None and ns.time is None:
        raise UsageError("seek: give --sequence or --time")
    r = await client.seek(ns.name, sequence=ns.sequence, time=ns.time)
    if ns.json:
        print_json(r)
    else:
        print(f"{ns.name}: {r.replayed} replayed, {r.skipped} skipped (backlog {r.subscription.backlog})")
    return 0
