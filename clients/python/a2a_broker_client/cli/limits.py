"""``a2a-broker limits set|list|delete|keys``: concurrency limits and how the keys stand."""

from __future__ import annotations

import argparse
from typing import Any

from ..client import BrokerClient
from ..models import ConcurrencyLimit
from ._common import UsageError, positive_duration, positive_int, print_json, runner, table


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "limits",
        help="set, list and delete concurrency limits; show concurrency keys",
        description="Concurrency limits on the tasks of a key (TaskSpec.concurrency_key, or every key a"
        " pattern with '*' matches, each on its own) or of a capability: at most N running at once,"
        " at most N starts per period.",
    )
    s = p.add_subparsers(dest="limits_command", required=True)

    st = s.add_parser("set", parents=[common], help="create or replace a limit")
    st.add_argument("name")
    st.add_argument("--key", default="", help="a concurrency key, or a pattern: 'tenant-*'")
    st.add_argument("--capability", default="", help="every task requiring this capability")
    st.add_argument("--max-running", type=positive_int, default=0, help="at most N running at once")
    st.add_argument("--rate", type=positive_int, default=0, help="at most N starts per --per")
    st.add_argument("--per", type=positive_duration, default=None, metavar="DURATION", help="1s, 1m...")
    st.add_argument("--burst", type=positive_int, default=0, help="the bucket's size (default: --rate)")
    st.set_defaults(func=runner(_set))

    ls = s.add_parser("list", parents=[common], help="list the limits")
    ls.set_defaults(func=runner(_list))

    rm = s.add_parser("delete", parents=[common], help="delete a limit")
    rm.add_argument("name")
    rm.set_defaults(func=runner(_delete))

    ks = s.add_parser("keys", parents=[common], help="the keys with the most running and waiting tasks")
    ks.add_argument("--prefix", default="", help="only keys starting with this")
    ks.add_argument("--limit", type=positive_int, default=100, help="at most N keys (default 100)")
    ks.set_defaults(func=runner(_keys))


def _bounds(x: ConcurrencyLimit) -> str:
    out = []
    if x.max_running:
        out.append(f"{x.max_running} running")
    if x.rate:
        out.append(f"{x.rate} starts per {x.per:g}s" + (f" (burst {x.burst})" if x.burst != x.rate else ""))
    return ", ".join(out)


async def _set(client: BrokerClient, ns: argparse.Namespace) -> int:
    if bool(ns.key) == bool(ns.capability):
        raise UsageError("give one of --key and --capability")
    made = await client.set_concurrency_limit(
        ns.name,
        key=ns.key,
        capability=ns.capability,
        max_running=ns.max_running,
        rate=ns.rate,
        per=ns.per,
        burst=ns.burst,
    )
    if ns.json:
        print_json(made)
    else:
        print(f"{made.name}: {_bounds(made)}")
    return 0


async def _list(client: BrokerClient, ns: argparse.Namespace) -> int:
    found = await client.list_concurrency_limits()
    if ns.json:
        print_json(found)
        return 0
    rows = [[x.name, f"key {x.key}" if x.key else f"capability {x.capability}", _bounds(x)] for x in found]
    table(["NAME", "ON", "ALLOWS"], rows, empty="(no limits)")
    return 0


async def _delete(client: BrokerClient, ns: argparse.Namespace) -> int:
    await client.delete_concurrency_limit(ns.name)
    if not ns.json:
        print(f"{ns.name}: deleted")
    return 0


async def _keys(client: BrokerClient, ns: argparse.Namespace) -> int:
    found = await client.list_concurrency_keys(prefix=ns.prefix, page_size=ns.limit)
    if ns.json:
        print_json(found)
        return 0
    rows = [
        [k.key, k.running, k.waiting, k.limit or "-", f"{k.tokens:.1f}" if k.rate else "-"] for k in found
    ]
    table(["KEY", "RUNNING", "WAITING", "LIMIT", "STARTS LEFT"], rows, empty="(no keys with tasks)")
    return 0
