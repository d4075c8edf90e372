"""Building blocks for the contract tests: inputs as the core would hand them to storage."""

from __future__ import annotations

from typing import Any

from broker.models.agents import Agent, RegisterInput
from broker.models.messages import Message, NewMessage, Target, TargetKind, check_send
from broker.models.tasks import DepType, PlannedNode, Task, TaskSpecInput
from broker.storage import Storage

T0 = 1_700_000_000_000_000  # a fixed "now" (µs): every operation is given its time
S = 1_000_000  # one second in µs
ACK = 30 * S  # ack deadline of claims


async def register(
    store: Storage, agent_id: str, caps: list[str] | None = None, slots: int = 4, now: int = T0
) -> Agent:
    agent, _ = await store.register_agent(
        RegisterInput(agent_id=agent_id, name=agent_id, capabilities=caps or [], max_concurrent_tasks=slots),
        agent_id,
        now,
    )
    return agent


def direct(to: str) -> Target:
    return Target(TargetKind.DIRECT, agent_id=to)


def broadcast(capability: str | None = None, include_sender: bool = False) -> Target:
    return Target(TargetKind.BROADCAST, capability=capability, include_sender=include_sender)


def anycast(capability: str) -> Target:
    return Target(TargetKind.ANYCAST, capability=capability)


def new_message(sender: str, target: Target, now: int = T0, **kw: Any) -> NewMessage:
    return check_send(field="", now=now, max_payload=1 << 20, sender_id=sender, target=target, **kw)


async def send(store: Storage, sender: str, target: Target, now: int = T0, **kw: Any) -> list[str]:
    """Send one message; its copies' ids."""
    out = await store.send_messages([new_message(sender, target, now, **kw)], now)
    (result,) = out.results
    assert not isinstance(result, Exception), result
    return result.message_ids


async def claim(store: Storage, agent: Agent, now: int = T0, limit: int = 100) -> list[Message]:
    return await store.claim_messages(agent.agent_id, agent.capabilities, limit, now, now + ACK)


def spec(title: str, **kw: Any) -> TaskSpecInput:
    return TaskSpecInput(title=title, **kw)


async def submit(store: Storage, *specs: TaskSpecInput, now: int = T0) -> list[Task]:
    """Submit independent tasks, each as its own Submit."""
    out = []
    for s in specs:
        res = await store.submit_tasks([PlannedNode(where="task", spec=s)], now)
        out += res.tasks
    return out


def node(
    key: str,
    title: str | None = None,
    deps: list[tuple[str, DepType]] | None = None,
    parent: str | None = None,
    **kw: Any,
) -> PlannedNode:
    return PlannedNode(
        where=f"nodes[{key}].task",
        spec=spec(title or key, **kw),
        key=key,
        parent_key=parent,
        dep_keys=deps or [],
    )


async def status(store: Storage, task_id: str) -> str:
    return (await store.get_task(task_id)).status.value
