"""The ``Storage`` protocol: the domain operations every backend implements.

It is split by domain (agents, messages, tasks) so that each part reads on
its own; a backend implements all three. Operations are transactions: each
either happens whole or not at all, and returns only once durable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..models.agents import Agent, AgentFilter, AgentGone, AgentStatus, RegisterInput
from .message_store import MessageStore
from .task_store import TaskStore


class AgentStore(Protocol):
    async def register_agent(self, inp: RegisterInput, agent_id: str, now: int) -> tuple[Agent, Agent | None]:
        """Create or update an agent; return it and the agent as it was before (None if new)."""

    async def heartbeat(
        self, agent_id: str, status: AgentStatus | None, free_capacity: int | None, now: int
    ) -> tuple[Agent, Agent]:
        """Record a heartbeat; return the agent after and before."""

    async def deregister_agent(self, agent_id: str, now: int) -> AgentGone:
        """Mark an agent deregistered, releasing its messages and requeueing its tasks
        (what the requeue changed comes back in ``AgentGone.task_changes``)."""

    async def get_agent(self, agent_id: str) -> Agent:
        """Read one agent (NotFound for unknown or deregistered)."""

    async def list_agents(self, flt: AgentFilter) -> tuple[list[Agent], str | None]:
        """One page of agents by id; the second item is the last id when more may follow."""

    async def mark_offline(
        self, heartbeat_before: int, now: int, alive: Mapping[str, int] | None = None
    ) -> list[AgentGone]:
        """Mark every live agent whose last heartbeat is older than ``heartbeat_before`` offline,
        except those in ``alive`` (agent id -> time last seen alive), whose last heartbeat
        becomes that time instead."""


class Storage(AgentStore, MessageStore, TaskStore, Protocol):
    """Everything the broker needs from a backend."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...
