"""Typed values the client takes and returns (plain dataclasses, no protobuf).

Times are timezone-aware ``datetime`` objects in UTC (``None`` when unset);
durations are seconds as ``float`` (a ``timedelta`` is accepted on input);
payloads are ``bytes`` (``str`` and JSON-able values are encoded on input, see
:func:`encode_payload`).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Seconds = float | int | timedelta

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


class AgentStatus(enum.StrEnum):
    UNSPECIFIED = "unspecified"
    AVAILABLE = "available"
    BUSY = "busy"
    MAINTENANCE = "maintenance"
    OFFLINE = "offline"


class AgentEventType(enum.StrEnum):
    UNSPECIFIED = "unspecified"
    REGISTERED = "registered"
    ONLINE = "online"
    OFFLINE = "offline"
    DEREGISTERED = "deregistered"
    UPDATED = "updated"


class MessageStatus(enum.StrEnum):
    UNSPECIFIED = "unspecified"
    PENDING = "pending"
    DELIVERED = "delivered"
    PROCESSED = "processed"
    FAILED = "failed"
    EXPIRED = "expired"


class TargetKind(enum.StrEnum):
    UNSPECIFIED = "unspecified"
    DIRECT = "direct"
    BROADCAST = "broadcast"
    ANYCAST = "anycast"
    SUBJECT = "subject"


class TaskStatus(enum.StrEnum):
    UNSPECIFIED = "unspecified"
    PENDING = "pending"
    BLOCKED = "blocked"
    READY = "ready"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class Exposure(enum.StrEnum):
    """Through which API an agent takes work."""

    UNSPECIFIED = "unspecified"
    BOTH = "both"
    BROKER = "broker"  # the broker's own API only
    A2A = "a2a"  # the A2A gateway only


class DependencyType(enum.StrEnum):
    UNSPECIFIED = "unspecified"
    HARD = "hard"
    SOFT = "soft"
    OPTIONAL = "optional"  # resolved as SOFT: waits for any ending, never cancels


def encode_payload(value: Any, content_type: str = "") -> tuple[bytes, str]:
    """Bytes for the wire, and the content type to send with them.

    ``bytes`` go as they are; ``str`` as UTF-8 text; ``None`` as empty; any
    other value as JSON (``application/json``). An explicit ``content_type``
    always wins.
    """
    if value is None:
        return b"", content_type
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), content_type
    if isinstance(value, str):
        return value.encode(), content_type or TEXT
    return json.dumps(value, separators=(",", ":")).encode(), content_type or JSON


def decode_payload(payload: bytes, content_type: str) -> Any:
    """The payload as a value: parsed JSON for a JSON content type, ``str`` for text, else bytes."""
    ct = content_type.split(";", 1)[0].strip().lower()
    if ct == JSON or ct.endswith("+json"):
        return json.loads(payload) if payload else None
    if ct.startswith("text/"):
        return payload.decode("utf-8", errors="replace")
    return payload


# ---------------------------------------------------------------- agents


@dataclass(frozen=True)
class AgentRecord:
    """How an agent did over ``window`` seconds: tasks completed and failed for good (counted for
    the agent that held them last), success rate, mean and p95 run time (seconds)."""

    tasks_completed: int = 0
    tasks_failed: int = 0
    success_rate: float = 0.0
    mean_run_time: float = 0.0
    p95_run_time: float = 0.0
    window: float = 0.0


@dataclass(frozen=True)
class Agent:
    """A registered agent, as the broker sees it (``record`` in get_agent and list_agents)."""

    agent_id: str
    name: str = ""
    agent_type: str = ""
    capabilities: tuple[str, ...] = ()
    max_concurrent_tasks: int = 0
    current_task_count: int = 0
    endpoint: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    status: AgentStatus = AgentStatus.UNSPECIFIED
    registered_at: datetime | None = None
    updated_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    reported_free_capacity: int | None = None
    record: AgentRecord | None = None
    exposure: Exposure = Exposure.UNSPECIFIED
    capability_descriptions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Registration:
    """The answer to Register and Heartbeat: the agent and the liveness contract."""

    agent: Agent
    heartbeat_interval: float
    liveness_timeout: float
    created: bool = False


@dataclass(frozen=True)
class DeregisterResult:
    requeued_tasks: int
    released_messages: int


@dataclass(frozen=True)
class AgentEvent:
    type: AgentEventType
    agent: Agent
    time: datetime | None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list call; pass ``next_page_token`` back for the next one (empty: last page)."""

    items: list[T]
    next_page_token: str = ""


# ---------------------------------------------------------------- messaging


@dataclass(frozen=True)
class Target:
    """Who receives a message. Build one with :meth:`direct`, :meth:`broadcast`, :meth:`anycast`
    or :meth:`to_subject`."""

    kind: TargetKind
    agent_id: str = ""
    capability: str = ""
    include_sender: bool = False
    subject: str = ""

    @classmethod
    def direct(cls, agent_id: str) -> Target:
        return cls(TargetKind.DIRECT, agent_id=agent_id)

    @classmethod
    def broadcast(cls, capability: str = "", include_sender: bool = False) -> Target:
        return cls(TargetKind.BROADCAST, capability=capability, include_sender=include_sender)

    @classmethod
    def anycast(cls, capability: str) -> Target:
        return cls(TargetKind.ANYCAST, capability=capability)

    @classmethod
    def to_subject(cls, subject: str) -> Target:
        """A subject such as ``orders.eu.created``: every subscription whose filter matches it
        gets the message (see :meth:`BrokerClient.create_subscription`)."""
        return cls(TargetKind.SUBJECT, subject=subject)


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to send (``send`` builds it from keywords; ``send_batch`` takes a list).

    ``to`` is a :class:`Target` or a recipient agent id. ``payload`` is
    encoded by :func:`encode_payload`. ``ttl`` and ``expires_at`` are
    alternatives (set at most one).
    """

    sender_id: str
    to: Target | str
    payload: Any = b""
    message_type: str = ""
    content_type: str = ""
    priority: int | None = None
    correlation_id: str = ""
    conversation_id: str = ""
    deliver_after: datetime | None = None
    ttl: Seconds | None = None
    expires_at: datetime | None = None
    max_attempts: int | None = None
    idempotency_key: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    # Refuse (NotFound / FailedPrecondition) unless a registered agent would receive it now;
    # by default a message to an agent or capability not registered yet waits for it.
    require_recipient: bool = False
    # The id of the message this one answers (its conversation and correlation are inherited).
    in_reply_to: str = ""
    # To a subject only: in a subscription with ``ordering``, not delivered while an earlier
    # message with the same key is unacknowledged there.
    ordering_key: str = ""


@dataclass(frozen=True)
class PublishResult:
    """The confirm of one message of :meth:`BrokerClient.publish`: its sequence number (1, 2, ...
    in the order given) and either its :class:`SendResult` (stored) or the error Send would have
    raised (nothing stored)."""

    sequence: int
    result: SendResult | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class SendResult:
    """Ids of the stored copies (one per recipient) and whether this was an idempotent repeat."""

    message_ids: tuple[str, ...]
    duplicate: bool = False

    @property
    def message_id(self) -> str:
        """The first (for a direct or anycast send, the only) copy's id; empty if none."""
        return self.message_ids[0] if self.message_ids else ""


@dataclass(frozen=True)
class Message:
    """One copy of a message, as addressed to one recipient."""

    message_id: str
    send_id: str = ""
    sender_id: str = ""
    recipient_id: str = ""
    target_kind: TargetKind = TargetKind.UNSPECIFIED
    target_capability: str = ""
    message_type: str = ""
    payload: bytes = b""
    content_type: str = ""
    priority: int = 0
    correlation_id: str = ""
    conversation_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    idempotency_key: str = ""
    status: MessageStatus = MessageStatus.UNSPECIFIED
    attempt: int = 0
    max_attempts: int = 0
    created_at: datetime | None = None
    deliver_after: datetime | None = None
    expires_at: datetime | None = None
    delivered_at: datetime | None = None
    ack_deadline: datetime | None = None
    processed_at: datetime | None = None
    last_error: str = ""
    # Pending with nobody registered to take it (recipient or capability not registered yet).
    awaiting_recipient: bool = False
    # The message this one answers, if any.
    in_reply_to: str = ""
    # With list_messages(fold_broadcasts=True): each copy of a broadcast, (message id, recipient, status).
    recipients: tuple[tuple[str, str, MessageStatus], ...] = ()
    # Sent to a subject: the subject, its sequence number (a point for replays), the
    # subscription this delivery is of, and the ordering key.
    subject: str = ""
    sequence: int = 0
    subscription: str = ""
    ordering_key: str = ""

    @property
    def data(self) -> Any:
        """The payload decoded by its content type (JSON value, text, or bytes)."""
        return decode_payload(self.payload, self.content_type)

    def json(self) -> Any:
        """The payload parsed as JSON, whatever its content type."""
        return json.loads(self.payload)

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class NackResult:
    requeued: int
    dead_lettered: int


# ---------------------------------------------------------------- tasks


@dataclass(frozen=True)
class RetryPolicy:
    """How a task's failed attempts are retried (unset fields take the broker's defaults:
    3 retries, 1 s initial backoff, multiplier 2, 5 min cap)."""

    max_retries: int | None = None
    initial_backoff: Seconds | None = None
    multiplier: float = 0.0
    max_backoff: Seconds | None = None


@dataclass(frozen=True)
class Dependency:
    """A prerequisite: the task ``task_id`` must finish first (HARD: and complete)."""

    task_id: str
    type: DependencyType = DependencyType.HARD


@dataclass(frozen=True)
class TaskSpec:
    """What a submitter says about a task. Only ``title`` is required.

    ``payload`` is encoded by :func:`encode_payload`; ``depends_on`` takes
    :class:`Dependency` values or bare task ids (hard).
    """

    title: str
    task_type: str = ""
    payload: Any = b""
    content_type: str = ""
    required_capabilities: Sequence[str] = ()
    priority: int | None = None
    deadline: datetime | None = None
    parent_id: str = ""
    depends_on: Sequence[Dependency | str] = ()
    retry: RetryPolicy | None = None
    lease_timeout: Seconds | None = None
    session_id: str = ""
    tags: Sequence[str] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str = ""
    submitted_by: str = ""
    # The longest an attempt may run, however often its lease is extended (None: the broker's default).
    max_run_time: Seconds | None = None
    # key -> value; listed by one with list_tasks(label="key=value").
    labels: dict[str, str] = field(default_factory=dict)
    # Not dispatched before this time (PENDING until then); None or a past time: no wait.
    not_before: datetime | None = None
    # A tenant, user or resource: the unit of concurrency limits and of fair share between keys.
    concurrency_key: str = ""

    @property
    def data(self) -> Any:
        """The payload decoded by its content type."""
        payload = self.payload if isinstance(self.payload, bytes) else encode_payload(self.payload)[0]
        return decode_payload(payload, self.content_type)


@dataclass(frozen=True)
class Task:
    """A task as the broker knows it."""

    task_id: str
    spec: TaskSpec
    status: TaskStatus = TaskStatus.UNSPECIFIED
    calculated_priority: float = 0.0
    root_id: str = ""
    level: int = 0
    path: str = ""
    attempt: int = 0
    assigned_agent_id: str = ""
    lease_expires_at: datetime | None = None
    progress: int = 0
    status_note: str = ""
    result: bytes = b""
    result_content_type: str = ""
    last_error: str = ""
    next_attempt_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # W3C trace context of the submission (in an assignment: of the broker's assign span), or "".
    traceparent: str = ""

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def result_data(self) -> Any:
        """The result decoded by its content type (JSON value, text, or bytes)."""
        return decode_payload(self.result, self.result_content_type)


@dataclass(frozen=True)
class SubmitResult:
    task: Task
    duplicate: bool = False


@dataclass(frozen=True)
class GraphDependency:
    key: str
    type: DependencyType = DependencyType.HARD


@dataclass(frozen=True)
class GraphNode:
    """One task of a ``submit_graph`` call. ``depends_on_keys`` and ``parent_key``
    name other nodes of the same call by their ``key``."""

    key: str
    spec: TaskSpec
    depends_on_keys: Sequence[GraphDependency | str] = ()
    parent_key: str = ""


@dataclass(frozen=True)
class GraphResult:
    task_ids: dict[str, str]
    tasks: list[Task]


@dataclass(frozen=True)
class DependencyEdge:
    """The task at the other end of a dependency: ``blocking`` is a prerequisite not finished
    yet; ``resolved_at`` when the prerequisite finished."""

    task_id: str
    title: str
    type: DependencyType
    status: TaskStatus
    blocking: bool = False
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class Conversation:
    """A conversation as its messages show it (``message_count``: sends, a broadcast once)."""

    conversation_id: str
    participants: tuple[str, ...] = ()
    message_count: int = 0
    last_activity: datetime | None = None


@dataclass(frozen=True)
class Subscription:
    """A named, durable subscription to the subjects its ``filter`` matches (``*``: one token,
    ``>``: the rest), with its figures (``backlog``: waiting; ``in_flight``: out on streams;
    ``dead_letters``; ``oldest_unacked_age``: seconds)."""

    name: str
    filter: str
    ack_deadline: float | None = None
    max_attempts: int = 0
    retention: float | None = None
    ordering: bool = False
    dead_letter_subject: str = ""
    created_at: datetime | None = None
    created_by: str = ""
    backlog: int = 0
    in_flight: int = 0
    dead_letters: int = 0
    oldest_unacked_at: datetime | None = None
    oldest_unacked_age: float | None = None


@dataclass(frozen=True)
class SeekResult:
    """What :meth:`BrokerClient.seek` did: messages made deliverable again (``replayed``) and
    unacknowledged ones before the point acknowledged (``skipped``)."""

    subscription: Subscription
    replayed: int = 0
    skipped: int = 0


class SessionStatus(enum.StrEnum):
    UNSPECIFIED = "unspecified"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ARCHIVED = "archived"


@dataclass(frozen=True)
class Session:
    """An orchestration session: a group of tasks with a lifecycle (see the README's Sessions).
    ``task_counts`` maps lower-case task status names to counts; ``progress`` is 0-1."""

    session_id: str
    name: str = ""
    parent_session_id: str = ""
    initiated_by: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    status: SessionStatus = SessionStatus.UNSPECIFIED
    status_reason: str = ""
    deadline: datetime | None = None
    max_tasks: int = 0
    summary: str = ""
    task_counts: dict[str, int] = field(default_factory=dict)
    progress: float = 0.0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Assignment:
    """A lease on one task; finish it quoting ``attempt``."""

    task: Task
    attempt: int
    lease_expires_at: datetime | None = None


@dataclass(frozen=True)
class Completion:
    """One item of :meth:`BrokerClient.complete_batch`."""

    task_id: str
    agent_id: str
    attempt: int
    result: Any = b""
    result_content_type: str = ""


@dataclass(frozen=True)
class Cancellation:
    task_id: str
    attempt: int
    reason: str = ""


@dataclass(frozen=True)
class ListenEvent:
    """One push on a Listen stream: new assignments and/or cancellations."""

    assignments: list[Assignment]
    cancellations: list[Cancellation]


@dataclass(frozen=True)
class TaskTransition:
    """One change of a task's status. ``from_status`` is None for the first entry of a history
    (the task was submitted: nothing came before it)."""

    task_id: str
    from_status: TaskStatus | None
    to_status: TaskStatus
    reason: str = ""
    actor: str = ""
    time: datetime | None = None
    attempt: int = 0


@dataclass(frozen=True)
class TaskTree:
    """A task and its descendants (path order), per-status counts and overall progress (0-100)."""

    tasks: list[Task]
    status_counts: dict[TaskStatus, int]
    progress: float


@dataclass(frozen=True)
class TaskEvent:
    """A task state change (``snapshot``: the task's state when the watch started), or, on a
    watch of a session, the session's end (``session`` set; ``transition`` then empty)."""

    transition: TaskTransition
    task: Task | None
    snapshot: bool = False
    session: Session | None = None


@dataclass(frozen=True)
class ConcurrencyLimit:
    """A limit on tasks: those of the concurrency ``key`` (or of every key matching a pattern with
    ``*``, each on its own), or all requiring ``capability`` (exactly one of the two). At most
    ``max_running`` running at once (0: no bound), at most ``rate`` starts per ``per`` seconds
    (a token bucket of ``burst`` starts, 0: ``rate``; 0: no rate limit)."""

    name: str
    key: str = ""
    capability: str = ""
    max_running: int = 0
    rate: int = 0
    per: Seconds | None = None
    burst: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class ConcurrencyKey:
    """A concurrency key now: its running and waiting (ready) tasks, the limit that governs it
    ("" for none) with what it allows, and with a rate, the starts its bucket holds."""

    key: str
    running: int = 0
    waiting: int = 0
    limit: str = ""
    max_running: int = 0
    rate: int = 0
    per: float | None = None
    tokens: float = 0.0
