"""Capabilities the broker lends agents when they lease, beyond their own (pure rules).

Two kinds of task are routed by a capability no agent registers:

- ``GATEWAY`` (``a2a.gateway``): every task of the A2A gateway requires it; an agent exposed to
  A2A (``both``, the default, or ``a2a``) holds it. An agent exposed to A2A only leases nothing
  that does not require it.
- ``LOCAL`` (``a2a.local``): every copy of a task taken from a peer broker requires it; every agent
  holds it except the links of other brokers (agents of type ``broker``), so a copy is never
  relayed again (``domain.federation``).
- ``addressed(agent_id)`` (``@<agent id>``): a task for one named agent (an A2A message naming an
  agent) requires it; only that agent holds it.

And one kind of anycast message: a copy of an anycast message taken from a peer targets
``pooled(capability)`` (``a2a.local:<capability>``), which every subscriber but other brokers'
links also takes (``subscription_capabilities``), so it is never relayed again either.

They are not stored with an agent's capabilities (``GetAgent`` shows its own), nor used for the
wake-up keys of ready tasks (``core.wakeups.ready_key`` picks one of the task's own).
"""

from __future__ import annotations

from ..models.agents import Exposure
from .capacity import ANY

GATEWAY = "a2a.gateway"
LOCAL = "a2a.local"
ALL = frozenset({GATEWAY, LOCAL})
BROKER_AGENT_TYPE = "broker"


def addressed(agent_id: str) -> str:
    """The mark only ``agent_id`` holds."""
    return f"@{agent_id}"


def is_mark(capability: str) -> bool:
    return capability in ALL or capability.startswith(("@", f"{LOCAL}:"))


def lease_capabilities(
    capabilities: tuple[str, ...], exposure: Exposure, agent_type: str, agent_id: str
) -> tuple[str, ...]:
    """The capabilities an agent leases with: its own (none of them a mark: an agent cannot claim
    to be another), ``capacity.ANY`` when it has none (it takes the tasks requiring none; another
    broker's link takes them only when it offers ANY), and the marks it holds."""
    held = [c for c in capabilities if not is_mark(c)]
    if not held and agent_type != BROKER_AGENT_TYPE:
        held.append(ANY)
    held.append(addressed(agent_id))
    if exposure is not Exposure.BROKER:
        held.append(GATEWAY)
    if agent_type != BROKER_AGENT_TYPE:
        held.append(LOCAL)
    return tuple(sorted(held))


def may_lease(exposure: Exposure, required: tuple[str, ...]) -> bool:
    """Whether an agent (able to run it) may lease a task requiring ``required``: one exposed to
    A2A only takes the gateway's tasks alone."""
    return exposure is not Exposure.A2A or GATEWAY in required


def pooled(capability: str) -> str:
    """The capability a peer's anycast copy targets: taken by local subscribers only."""
    return f"{LOCAL}:{capability}"


def unpooled(capability: str) -> str:
    """The capability a local copy stands for (itself when it is not one)."""
    return capability.removeprefix(f"{LOCAL}:")


def subscription_capabilities(capabilities: tuple[str, ...], agent_type: str) -> tuple[str, ...]:
    """The capabilities an agent's subscription takes anycast messages for: its own, and, unless it
    is another broker's link, the local copies of each."""
    own_caps = tuple(c for c in capabilities if not is_mark(c))
    if agent_type == BROKER_AGENT_TYPE:
        return own_caps
    return own_caps + tuple(pooled(c) for c in own_caps)
