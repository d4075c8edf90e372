"""``a2a-broker agents list|get|watch|register|deregister``."""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from ..client import BrokerClient
from ..models import Agent, AgentEvent, AgentStatus
from ._common import (
    duration,
    fields_table,
    key_values,
    limited,
    paging_options,
    positive_int,
    print_json,
    runner,
    table,
    take,
    when,
)

STATUSES = [s.value for s in AgentStatus if s is not AgentStatus.UNSPECIFIED]


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("agents", help="inspect registered agents", description="Inspect registered agents.")
    s = p.add_subparsers(dest="agents_command", required=True)

    ls = s.add_parser("list", parents=[common], help="list agents")
    ls.add_argument("--status", choices=STATUSES, help="only agents in this status")
    ls.add_argument("--type", dest="agent_type", default="", help="only agents of this type")
    ls.add_argument("--capability", default="", help="only agents having this capability")
    paging_options(ls, 1000)
    ls.set_defaults(func=runner(_list))

    get = s.add_parser("get", parents=[common], help="show one agent")
    get.add_argument("agent_id")
    get.set_defaults(func=runner(_get))

    w = s.add_parser(
        "watch",
        parents=[common],
        help="follow agent events",
        description="Print agent events as they happen.",
    )
    w.add_argument(
        "--agent", dest="agent_ids", action="append", default=[], help="only this agent (repeatable)"
    )
    w.add_argument("--capability", default="", help="only agents having this capability")
    w.add_argument("--snapshot", action="store_true", help="first print the current agents (as registered)")
    w.add_argument("--count", type=positive_int, default=None, help="exit after this many events")
    w.add_argument("--timeout", type=duration, default=None, metavar="DURATION", help="exit after this long")
    w.set_defaults(func=runner(_watch))

    r = s.add_parser("register", parents=[common], help="register (or update) an agent")
    r.add_argument("agent_id")
    r.add_argument("--capability", dest="capabilities", action="append", default=[], help="repeatable")
    r.add_argument("--capacity", type=positive_int, default=1, help="max concurrent tasks (default 1)")
    r.add_argument("--type", dest="agent_type", default="worker")
    r.add_argument("--name", default="")
    r.add_argument(
        "--exposure",
        choices=["both", "broker", "a2a"],
        default=None,
        help="take work from the broker's API, the A2A gateway, or both (default)",
    )
    r.add_argument(
        "--describe",
        action="append",
        default=[],
        metavar="CAPABILITY=TEXT",
        help="a capability's description, for the A2A agent card (repeatable)",
    )
    r.set_defaults(func=runner(_register))

    d = s.add_parser("deregister", parents=[common], help="deregister an agent (its tasks are requeued)")
    d.add_argument("agent_id")
    d.set_defaults(func=runner(_deregister))


def _row(a: Agent) -> list[Any]:
    return [
        a.agent_id,
        a.agent_type,
        a.status.value,
        f"{a.current_task_count}/{a.max_concurrent_tasks}",
        ",".join(a.capabilities),
        when(a.last_heartbeat_at),
    ]


HEADERS = ["AGENT", "TYPE", "STATUS", "TASKS", "CAPABILITIES", "LAST HEARTBEAT (UTC)"]


async def _list(client: BrokerClient, ns: argparse.Namespace) -> int:
    agents: list[Agent] = await take(
        partial(client.list_agents, status=ns.status, agent_type=ns.agent_type, capability=ns.capability), ns
    )
    if ns.json:
        print_json(agents)
    else:
        table(HEADERS, [_row(a) for a in agents], empty="(no agents)")
    return 0


def show_agent(a: Agent) -> None:
    fields_table(
        [
            ("agent_id", a.agent_id),
            ("name", a.name),
            ("type", a.agent_type),
            ("status", a.status),
            ("capabilities", a.capabilities),
            ("tasks", f"{a.current_task_count}/{a.max_concurrent_tasks}"),
            ("free capacity", a.reported_free_capacity),
            ("endpoint", a.endpoint),
            ("labels", a.labels),
            ("metadata", a.metadata),
            ("registered", a.registered_at),
            ("updated", a.updated_at),
            ("last heartbeat", a.last_heartbeat_at),
            *(
                [
                    (
                        "record",
                        f"{r.tasks_completed} completed, {r.tasks_failed} failed ({r.success_rate:.0%});"
                        f" run time mean {r.mean_run_time:.3f} s, p95 {r.p95_run_time:.3f} s"
                        f" (last {r.window / 3600:g} h)",
                    )
                ]
                if (r := a.record) is not None
                else []
            ),
        ]
    )


async def _get(client: BrokerClient, ns: argparse.Namespace) -> int:
    a = await client.get_agent(ns.agent_id)
    if ns.json:
        print_json(a)
    else:
        show_agent(a)
    return 0


async def _watch(client: BrokerClient, ns: argparse.Namespace) -> int:
    stream = client.watch_agents(
        agent_ids=ns.agent_ids, capability=ns.capability, include_snapshot=ns.snapshot
    )
    ev: AgentEvent
    async for ev in limited(stream, ns.count, ns.timeout):
        if ns.json:
            print_json(ev, line=True)
        else:
            print(
                f"{when(ev.time)}  {ev.type.value:<12}  {ev.agent.agent_id}  status={ev.agent.status.value}"
                f"  tasks={ev.agent.current_task_count}/{ev.agent.max_concurrent_tasks}",
                flush=True,
            )
    return 0


async def _register(client: BrokerClient, ns: argparse.Namespace) -> int:
    reg = await client.register(
        ns.agent_id,
        max_concurrent_tasks=ns.capacity,
        capabilities=ns.capabilities,
        agent_type=ns.agent_type,
        name=ns.name,
        exposure=ns.exposure,
        capability_descriptions=key_values(ns.describe, "--describe"),
    )
    if ns.json:
        print_json(reg)
    else:
        print(
            f"{'registered' if reg.created else 'updated'} {reg.agent.agent_id} "
            f"(heartbeat every {reg.heartbeat_interval:g}s, offline after {reg.liveness_timeout:g}s)"
        )
    return 0


async def _deregister(client: BrokerClient, ns: argparse.Namespace) -> int:
    res = await client.deregister(ns.agent_id)
    if ns.json:
        print_json(res)
    else:
        print(
            f"deregistered {ns.agent_id} ({res.requeued_tasks} tasks requeued, "
            f"{res.released_messages} messages released)"
        )
    return 0
