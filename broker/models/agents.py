"""Agents: what the registry stores and the inputs it accepts."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from .common import Capability, Id, Input, JsonObject, Labels, fold
from .tasks import Changes

MAX_CAPABILITIES = 256


class AgentStatus(enum.StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    MAINTENANCE = "maintenance"
    OFFLINE = "offline"
    # Internal: the row stays for foreign keys; the API reports NOT_FOUND.
    DEREGISTERED = "deregistered"


LIVE_STATUSES = (AgentStatus.AVAILABLE, AgentStatus.BUSY, AgentStatus.MAINTENANCE)


class AgentEventType(enum.StrEnum):
    REGISTERED = "registered"
    ONLINE = "online"
    OFFLINE = "offline"
    DEREGISTERED = "deregistered"
    UPDATED = "updated"


class Exposure(enum.StrEnum):
    """Through which API an agent takes work (``domain.a2a_tasks``)."""

    BOTH = "both"
    BROKER = "broker"  # the broker's own API only
    A2A = "a2a"  # the A2A gateway only


@dataclass(frozen=True)
class Agent:
    agent_id: str
    name: str
    agent_type: str
    capabilities: tuple[str, ...]
    max_concurrent_tasks: int
    current_task_count: int
    endpoint: str
    labels: dict[str, str]
    metadata: dict[str, Any]
    status: AgentStatus
    registered_at: int
    updated_at: int
    last_heartbeat_at: int
    reported_free_capacity: int | None = None
    exposure: Exposure = Exposure.BOTH
    capability_descriptions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentRecord:
    """How an agent did lately (broker/domain/agent_records.py)."""

    tasks_completed: int
    tasks_failed: int
    success_rate: float  # completed / finished, 0 with none
    mean_run_us: int
    p95_run_us: int
    window_s: float


@dataclass(frozen=True)
class AgentEvent:
    type: AgentEventType
    agent: Agent
    time: int


@dataclass(frozen=True)
class AgentGone:
    """An agent went offline or deregistered, and what was released with it
    (in the same transaction)."""

    agent: Agent
    reason: str
    released_messages: int = 0
    requeued_tasks: list[str] = field(default_factory=list)
    # What requeueing those tasks changed, for the task queue to announce.
    task_changes: Changes = field(default_factory=Changes)
    # Subscriptions whose deliveries it held went back to them (their consumers to wake).
    released_subscriptions: list[int] = field(default_factory=list)


class RegisterInput(Input):
    agent_id: Id | None = None
    name: Annotated[str, StringConstraints(max_length=256)] = ""
    agent_type: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "worker"
    capabilities: Annotated[list[Capability], Field(max_length=MAX_CAPABILITIES), AfterValidator(fold)] = []
    max_concurrent_tasks: Annotated[int, Field(ge=1, le=10000)]
    endpoint: Annotated[str, StringConstraints(max_length=512)] = ""
    labels: Labels = {}
    metadata: JsonObject = {}
    exposure: Exposure = Exposure.BOTH
    capability_descriptions: dict[str, Annotated[str, StringConstraints(max_length=1024)]] = {}

    @model_validator(mode="after")
    def _described_capabilities(self) -> RegisterInput:
        unknown = sorted(set(self.capability_descriptions) - set(self.capabilities))
        if unknown:
            raise ValueError(f"capability_descriptions: {unknown[0]!r} is not among the capabilities")
        return self


class HeartbeatInput(Input):
    agent_id: Id
    status: AgentStatus | None = None
    free_capacity: Annotated[int, Field(ge=0, le=10000)] | None = None


class AgentFilter(Input):
    status: AgentStatus | None = None
    agent_type: str = ""
    capability: str = ""
    page_size: int = 100
    after: str | None = None  # decoded page token: the last agent id of the previous page
