"""The ``Storage`` protocol: the domain operations every backend implements.

It is split by domain (agents, messages, tasks) so that each part reads on
its own; a backend implements all three. Operations are transactions: each
either happens whole or not at all, and returns only once durable.

How a backend runs them (both do, ``broker/storage/sql/connection.py``): a write
operation is a *job*, a synchronous function of a connection; the engine runs the
jobs waiting at one moment as a *group*, in one transaction, each job in its own
savepoint, and commits once.

**A write group may be run again whole.** PostgreSQL aborts a SERIALIZABLE
transaction that would break serializability (or a deadlock), and its engine then
rolls the group back and runs every job of it again; SQLite's jobs must be as safe
to run again. So a job does not act outside its transaction (no wake-up, no
notification, no file; a cache it keeps must stay right whatever was rolled back,
as the capability sets' does): what it decides, it decides from what it reads in the transaction and
from inputs fixed before it was queued (ids, times), and it hands its outcome back
to be acted on after the commit. The contract suite checks this on both backends:
it runs with each engine rehearsing (every group run, rolled back, run again,
committed; tests/contract/conftest.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..models.a2a import A2AIndexEntry, A2AListQuery, PushConfig, PushCounts, PushDelivery
from ..models.agents import Agent, AgentFilter, AgentGone, AgentStatus, RegisterInput
from ..models.stats import StorageStats
from ..models.tasks import Transition
from .message_store import MessageStore
from .schedule_store import ScheduleStore
from .subscription_store import SubscriptionStore
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

    async def deregister_offline(self, heartbeat_before: int, now: int, limit: int) -> list[AgentGone]:
        """Deregister (as ``deregister_agent``) at most ``limit`` offline agents whose last
        heartbeat is older than ``heartbeat_before``, in one transaction (an agent back online
        meanwhile is not among them)."""

    async def get_agent(self, agent_id: str) -> Agent:
        """Read one agent (NotFound for unknown or deregistered)."""

    async def agent_outcomes(self, agent_ids: list[str], since: int) -> dict[str, list[tuple[bool, int]]]:
        """Per agent: (completed, run time us) of the tasks it finished since ``since``, newest
        first, at most RECORD_TASKS each (the input of its performance record)."""

    async def list_agents(self, flt: AgentFilter) -> tuple[list[Agent], str | None]:
        """One page of agents by id; the second item is the last id when more may follow."""

    async def mark_offline(
        self, heartbeat_before: int, now: int, alive: Mapping[str, int] | None = None
    ) -> list[AgentGone]:
        """Mark every live agent whose last heartbeat is older than ``heartbeat_before`` offline,
        except those in ``alive`` (agent id -> time last seen alive), whose last heartbeat
        becomes that time instead."""


@dataclass(frozen=True)
class TokenRecord:
    """An issued access token as stored: never its secret, only the secret's SHA-256 digest."""

    token_id: str
    secret_hash: str
    subject: str
    role: str
    created_at: int  # microseconds since the epoch, as every time the storage keeps
    expires_at: int | None = None
    revoked_at: int | None = None
    note: str = ""


@dataclass
class Census:
    """What the storage holds now, counted (for the metrics endpoint)."""

    messages: dict[tuple[str, str], int]  # (status, target kind) -> copies
    scheduled: dict[str, int]  # target kind -> pending copies not due yet
    tasks: dict[str, int]  # status -> tasks
    agents: dict[str, int]  # status -> agents (deregistered ones left out)
    agent_backlog: list[tuple[str, int]]  # the largest pending backlogs by recipient, largest first
    agent_backlog_rest: int  # pending copies of every other recipient
    capability_backlog: list[tuple[str, int]]  # the same for anycast copies by capability
    capability_backlog_rest: int
    size_bytes: int | None
    # Concurrency keys: the most running tasks and the most leasable tasks, and every key's totals.
    key_running: list[tuple[str, int]] = field(default_factory=list)
    key_running_total: int = 0
    key_waiting: list[tuple[str, int]] = field(default_factory=list)
    key_waiting_total: int = 0


class CensusStore(Protocol):
    async def census(self, top_n: int, now: int) -> Census:
        """Counts as of one read transaction; backlogs for the ``top_n`` largest only."""

    async def probe(self) -> None:
        """Run a write transaction that changes nothing (raises StorageUnavailable if it cannot)."""


class TokenStore(Protocol):
    async def get_token(self, token_id: str) -> TokenRecord | None:
        """One token by id, revoked and expired ones too; None when there is no such token."""

    async def create_token(self, rec: TokenRecord) -> None:
        """Store a new token (its id is new: ``tokens.new_secret``)."""

    async def list_tokens(self) -> list[TokenRecord]:
        """Every token, revoked and expired ones too, oldest first."""

    async def revoke_token(self, token_id: str, now: int) -> TokenRecord | None:
        """Revoke a token (a revoked one keeps its first revocation time); the token as it is
        now, None when there is no such token. On a database several brokers share, the others
        are told in the same transaction (their caches of the token are dropped)."""


class SecurityStore(Protocol):
    """What the security layer reads beside tokens."""

    async def count_pending(self, agent_id: str, limit: int) -> int:
        """Pending messages held for ``agent_id``, counted up to ``limit``."""

    async def pending_by_sender(self, agent_id: str, limit: int) -> tuple[int, dict[str, int]]:
        """Pending messages held for ``agent_id``, counted up to ``limit``, and when there are
        that many, how many each sender holds (the pending quota's fair shares)."""


class A2AStore(Protocol):
    """The A2A gateway's index of A2A tasks and its push notifications (broker/gateway)."""

    async def a2a_entry(self, task_id: str) -> A2AIndexEntry | None: ...

    async def a2a_save(
        self, entry: A2AIndexEntry, expected: A2AIndexEntry | None, bodies: list[bytes], now: int
    ) -> bool:
        """Store ``entry`` if the stored one is still ``expected`` (else False, nothing changed),
        and queue each notification body for each push configuration of the task, at once."""

    async def a2a_list(self, q: A2AListQuery) -> tuple[list[A2AIndexEntry], int]:
        """One page, newest status first, and how many match in all (both by index)."""

    async def a2a_unsettled(self, final: list[str], limit: int) -> list[str]: ...

    async def a2a_unindexed(self, task_type: str, window: int, limit: int) -> list[str]: ...

    async def push_config_save(self, cfg: PushConfig, snapshot: bytes | None) -> PushConfig: ...

    async def push_config_get(self, task_id: str, config_id: str) -> PushConfig | None: ...

    async def push_config_list(self, task_id: str, after: str, limit: int) -> list[PushConfig]: ...

    async def push_config_delete(self, task_id: str, config_id: str) -> bool: ...

    async def push_take_due(self, now: int, lease_us: int, limit: int) -> list[PushDelivery]:
        """The oldest pending notification of each configuration, due and not leased, leased."""

    async def push_next_due(self) -> int | None: ...

    async def push_settle(
        self, seq: int, now: int, *, ok: bool, retry_at: int | None = None, error: str | None = None
    ) -> None: ...

    async def push_counts(self) -> PushCounts: ...

    async def push_list(self, status: str, limit: int) -> list[PushDelivery]: ...

    async def push_purge(self, before: int, limit: int = 1000) -> int: ...


class ClusterPeer(Protocol):
    """What a broker hears from the other brokers of its database (broker/core/cluster.py)."""

    def wake(self, keys: list[str]) -> None:
        """Wake-up keys notified on another broker (``broker/core/wakeups.py``)."""

    def wake_all(self) -> None:
        """Wake every waiter: a notification may have been lost."""

    def received(self, kind: str, body: str) -> None:
        """A message another broker sent (``WakeRelay.send``)."""

    def transitions(self, transitions: list[Transition]) -> None:
        """Task transitions other brokers committed, in order (while following them)."""


class WakeRelay(Protocol):
    """Wake-ups and messages between brokers sharing a database (PostgreSQL; None on SQLite)."""

    async def start(self, peer: ClusterPeer) -> None:
        """Hand what other brokers notify to ``peer``, and wake it now and then in case a
        notification was lost."""

    def publish(self, key: str) -> None:
        """Pass a key notified here on to the other brokers."""

    def send(self, kind: str, body: str = "") -> None:
        """Send a message (``body``: one line of text, short) to the other brokers."""

    def committed(self) -> None:
        """Task transitions were committed here (the brokers following them read them)."""

    async def follow(self) -> None:
        """From now on, hand the transitions other brokers commit to the peer."""

    async def caught_up(self) -> None:
        """Return once the transitions other brokers committed before this call (while
        following) reached the peer."""

    def unfollow(self) -> None: ...

    async def close(self) -> None: ...


class Storage(
    AgentStore,
    MessageStore,
    SubscriptionStore,
    TaskStore,
    ScheduleStore,
    TokenStore,
    SecurityStore,
    CensusStore,
    A2AStore,
    Protocol,
):
    """Everything the broker needs from a backend."""

    # Whether other brokers may use the same storage at once (PostgreSQL). Then a broker starting
    # up cannot take the deliveries it finds for a previous run's: they may be a live broker's.
    @property
    def shared(self) -> bool: ...

    @property
    def relay(self) -> WakeRelay | None:
        """Wake-ups to and from the other brokers (None: there are none)."""

    @property
    def engine_stats(self) -> StorageStats:
        """Commit durations and jobs per commit, as the writer measured them."""

    @property
    def write_queue_depth(self) -> int:
        """Write jobs waiting for the writer now."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...
