"""Federation's rules (pure): what a broker offers the peers it joins, and how a task taken from a
peer is kept from travelling on.

A broker joins each configured peer as one agent of type ``broker`` (``link_agent_id``) whose
capabilities are those of its own agents (``offer``: not other brokers' links, not offline, not
exposed to A2A only) and whose free capacity, reported on each heartbeat, is theirs. A task the
peer leases to that agent is copied into the local queue as a task requiring, beside its own
capabilities, ``marks.LOCAL``, which every agent holds when it leases except the links of other
brokers: a copy is run by a local agent and never relayed again, so no cycle of peers can loop a
task. The copy also carries the brokers it has crossed (``VIA``), checked again on arrival
(``crossed``) as a second line of defence.

The copy has no retries of its own: its failure is reported to the peer as a failed attempt, and
the peer's retry policy decides. Its idempotency key is the peer's task and attempt
(``copy_key``): a link that reconnects and is handed the same lease again finds the same copy.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..models.agents import Agent, AgentStatus, Exposure
from . import capacity
from .marks import BROKER_AGENT_TYPE

PEER_LABEL = "a2a.federation.peer"  # on a local copy: the peer it came from
VIA = "a2a.federation.via"  # metadata of a copy: the brokers the task has crossed, in order
ORIGIN = "a2a.federation.origin"  # metadata of a copy: {"peer", "task_id", "attempt"}
SENDER = "a2a.federation.sender"  # header of a message copy: who sent the original on the peer


def sender_id(peer: str) -> str:
    """The local agent that sends the copies of a peer's anycast messages."""
    return f"peer.{peer}"


def link_agent_id(broker_id: str) -> str:
    """The id a broker registers under on its peers."""
    return f"broker.{broker_id}"


def is_link(agent: Agent) -> bool:
    return agent.agent_type == BROKER_AGENT_TYPE


def offer(agents: Iterable[Agent]) -> tuple[list[str], int, int]:
    """What a broker offers a peer: the capabilities of its own agents that may take such work
    (``capacity.ANY`` when one of them takes tasks requiring none), their total capacity and their
    free capacity now."""
    caps: set[str] = set()
    total = free = 0
    for a in agents:
        if is_link(a) or a.status is AgentStatus.OFFLINE or a.exposure is Exposure.A2A:
            continue
        caps.update(a.capabilities or (capacity.ANY,))  # one without any takes the tasks requiring none
        total += a.max_concurrent_tasks
        free += capacity.free_capacity(
            a.status, a.max_concurrent_tasks, a.current_task_count, a.reported_free_capacity
        )
    return sorted(caps), total, free


def crossed(via: list[str], broker_id: str) -> bool:
    """Whether a task that crossed ``via`` has been through this broker already."""
    return broker_id in via


def copy_key(peer: str, task_id: str, attempt: int) -> str:
    return f"fed:{peer}:{task_id}:{attempt}"
