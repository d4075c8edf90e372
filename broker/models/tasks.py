"""Tasks: what the task queue stores, the inputs it accepts, and what changes it reports."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from ..clock import US_PER_S
from .common import Capability, Id, Input, JsonObject, Labels, fold
from .sessions import Session

MAX_REQUIRED_CAPABILITIES = 64
MAX_TAGS = 32
MAX_GRAPH_NODES = 1000
MAX_CLAIM = 1000
MIN_LEASE_US = 1 * US_PER_S
MAX_LEASE_US = 24 * 3600 * US_PER_S
MAX_RUN_US = 7 * 24 * 3600 * US_PER_S


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    BLOCKED = "blocked"
    READY = "ready"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class DepType(enum.StrEnum):
    HARD = "hard"
    SOFT = "soft"
    OPTIONAL = "optional"


# ---------------------------------------------------------------- inputs

Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class DependencyInput(Input):
    task_id: Id
    type: DepType = DepType.HARD


def _unique_prereqs(deps: list[DependencyInput]) -> list[DependencyInput]:
    seen: set[str] = set()
    for d in deps:
        if d.task_id in seen:
            raise ValueError(f"task {d.task_id!r} is listed twice")
        seen.add(d.task_id)
    return deps


def _label_keys(value: dict[str, str]) -> dict[str, str]:
    for k in value:
        if "=" in k:
            raise ValueError(f"key {k[:32]!r}: keys may not contain '=' (a label is listed as key=value)")
    return value


def label_pairs(labels: dict[str, str]) -> list[str]:
    """How a task's labels are indexed and filtered: "key=value"."""
    return [f"{k}={v}" for k, v in labels.items()]


def _concurrency_key(value: str) -> str:
    if "*" in value:
        raise ValueError("must not contain '*' (a limit's key pattern uses it as a wildcard)")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


# A task's concurrency key (a tenant, a user, a resource): the unit of limits and of fair share.
ConcurrencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(_concurrency_key)
]


class TaskSpecInput(Input):
    """One task as submitted. Limits that depend on settings (payload size,
    prerequisite count, depth) are checked by the core and storage."""

    title: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    task_type: Annotated[str, StringConstraints(max_length=128)] = ""
    payload: bytes = b""
    content_type: Annotated[str, StringConstraints(max_length=128)] = ""
    required_capabilities: Annotated[
        list[Capability], Field(max_length=MAX_REQUIRED_CAPABILITIES), AfterValidator(fold)
    ] = []
    priority: Annotated[int, Field(ge=0, le=10)] = 5
    deadline: int | None = None
    parent_id: Id | None = None
    depends_on: Annotated[list[DependencyInput], AfterValidator(_unique_prereqs)] = []
    max_retries: Annotated[int, Field(ge=0, le=100)] = 3
    backoff_initial_us: Annotated[int, Field(ge=0, le=MAX_LEASE_US)] = 1 * US_PER_S
    backoff_multiplier: Annotated[float, Field(ge=1.0, le=10.0)] = 2.0
    backoff_max_us: Annotated[int, Field(ge=0, le=MAX_LEASE_US)] = 300 * US_PER_S
    lease_timeout_us: Annotated[int, Field(ge=MIN_LEASE_US, le=MAX_LEASE_US)] | None = None
    max_run_us: Annotated[int, Field(ge=US_PER_S, le=MAX_RUN_US)] | None = None
    session_id: Id | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS), AfterValidator(fold)] = []
    metadata: JsonObject = {}
    labels: Annotated[Labels, AfterValidator(_label_keys)] = {}
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    submitted_by: Annotated[str, StringConstraints(max_length=128)] = ""
    # Not dispatched before this time (microseconds): PENDING until then.
    not_before: int | None = None
    concurrency_key: ConcurrencyKey | None = None
    # The W3C trace context to store with the task (set by the servicer from the call's metadata,
    # not a field of TaskSpec); not part of the idempotency fingerprint.
    traceparent: str | None = None


class SubmitInput(Input):
    task: TaskSpecInput


class GraphDependencyInput(Input):
    key: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    type: DepType = DepType.HARD


class GraphNodeInput(Input):
    key: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    task: TaskSpecInput
    depends_on_keys: list[GraphDependencyInput] = []
    parent_key: Annotated[str, StringConstraints(max_length=128)] | None = None

    @model_validator(mode="after")
    def _one_parent(self) -> GraphNodeInput:
        if self.parent_key and self.task.parent_id:
            raise ValueError("give parent_key or task.parent_id, not both")
        keys = [d.key for d in self.depends_on_keys]
        if len(set(keys)) != len(keys):
            raise ValueError("depends_on_keys lists a key twice")
        return self


class SubmitGraphInput(Input):
    nodes: Annotated[list[GraphNodeInput], Field(min_length=1, max_length=MAX_GRAPH_NODES)]


@dataclass(frozen=True)
class PlannedNode:
    """One task of a checked submission (broker/domain/submission.py), in insertion
    order; ``where`` names it in error messages (e.g. "nodes[3].task")."""

    where: str
    spec: TaskSpecInput
    key: str | None = None
    parent_key: str | None = None
    dep_keys: list[tuple[str, DepType]] = field(default_factory=list)


class ClaimInput(Input):
    agent_id: Id
    max_tasks: Annotated[int, Field(ge=1, le=MAX_CLAIM)] = 1
    wait_s: Annotated[float, Field(ge=0, le=60)] = 0.0


class LeaseRef(Input):
    """Names one lease: the task, its holder, and the attempt (the fencing token)."""

    task_id: Id
    agent_id: Id
    attempt: Annotated[int, Field(ge=1)]


class ExtendInput(LeaseRef):
    progress: Annotated[int, Field(ge=0, le=100)] | None = None
    status_note: Annotated[str, StringConstraints(max_length=1024)] | None = None
    extension_us: Annotated[int, Field(ge=MIN_LEASE_US, le=MAX_LEASE_US)] | None = None


class CompleteInput(LeaseRef):
    result: bytes = b""
    result_content_type: Annotated[str, StringConstraints(max_length=128)] = ""


class FailInput(LeaseRef):
    error: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    non_retryable: bool = False


class CancelInput(Input):
    task_id: Id
    cascade: bool = False
    reason: Annotated[str, StringConstraints(max_length=1024)] = ""
    actor: Annotated[str, StringConstraints(max_length=128)] = ""


class DependencyEditInput(Input):
    """AddDependency (``type`` set) or RemoveDependency (``type`` None) of one edge."""

    task_id: Id
    prerequisite_id: Id
    type: DepType | None = None
    actor: Annotated[str, StringConstraints(max_length=128)] = ""


class TaskFilter(Input):
    status: TaskStatus | None = None
    session_id: str = ""
    capability: str = ""
    agent_id: str = ""
    tag: str = ""
    label: str = ""  # "key=value"
    parent_id: str = ""
    task_type: str = ""
    root_id: str = ""
    level: Annotated[int, Field(ge=0, le=1000)] | None = None
    created_after: int | None = None
    created_before: int | None = None
    page_size: int = 100
    after: int | None = None  # decoded page token: the last seq of the previous page
    newest_first: bool = False  # pages in descending seq (``after``: the smallest seq so far)


class WatchScope(enum.StrEnum):
    TASK = "task"
    SUBTREE = "subtree"
    SESSION = "session"


# ---------------------------------------------------------------- stored values


@dataclass(frozen=True)
class Dependency:
    task_id: str
    type: DepType


@dataclass(frozen=True)
class Task:
    task_id: str
    seq: int
    title: str
    task_type: str
    payload: bytes
    content_type: str
    required_capabilities: tuple[str, ...]
    priority: int
    deadline: int | None
    urgency: float
    dispatch_rank: float
    parent_id: str | None
    root_id: str
    level: int
    path: str
    depends_on: tuple[Dependency, ...]
    max_retries: int
    backoff_initial_us: int
    backoff_multiplier: float
    backoff_max_us: int
    lease_timeout_us: int
    session_id: str | None
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    labels: dict[str, str]
    idempotency_key: str | None
    submitted_by: str
    status: TaskStatus
    attempt: int
    assigned_agent_id: str | None
    lease_expires_at: int | None
    progress: int
    status_note: str
    result: bytes | None
    result_content_type: str
    last_error: str
    next_attempt_at: int | None
    created_at: int
    updated_at: int
    started_at: int | None
    finished_at: int | None
    traceparent: str | None = None
    max_run_us: int | None = None  # the longest an attempt may run (None: no limit)
    not_before: int | None = None  # not dispatched before (PENDING until then)
    concurrency_key: str | None = None


@dataclass(frozen=True)
class Transition:
    """One audit-trail entry; ``path`` and ``session_id`` let watchers filter."""

    task_id: str
    from_status: TaskStatus | None
    to_status: TaskStatus
    reason: str
    actor: str
    at: int
    attempt: int
    path: str = ""
    session_id: str | None = None
    # Not stored: for the metrics, how long the task waited (ready -> running, first attempt:
    # since submission) or ran (running -> anything: since the attempt started), microseconds.
    elapsed_us: int | None = None


@dataclass(frozen=True)
class TaskEvent:
    transition: Transition | None  # None in a session event
    # The task right after the transition when it was captured (watchers were
    # connected); None otherwise, and the reader fetches the current state.
    task: Task | None
    snapshot: bool = False
    # A session event: the session just ended (Watch of that session only).
    session: Session | None = None


@dataclass(frozen=True)
class DependencyEdge:
    """One end of a dependency, seen from the other: the task, how it depends, its status, and
    when the edge was resolved (the prerequisite finished). ``blocking``: a prerequisite that has
    not finished yet (always False for a dependent)."""

    task_id: str
    title: str
    type: DepType
    status: TaskStatus
    resolved_at: int | None
    blocking: bool = False


@dataclass(frozen=True)
class Assignment:
    task: Task
    attempt: int
    lease_expires_at: int


@dataclass(frozen=True)
class Cancellation:
    task_id: str
    attempt: int
    reason: str


@dataclass
class Changes:
    """What one committed write did, for the core to announce after the commit."""

    transitions: list[Transition] = field(default_factory=list)
    # Required-capability sets of tasks that became leasable (wake-up keys).
    ready: set[tuple[str, ...]] = field(default_factory=set)
    # Agents whose capacity was released (their streams may take more).
    released: set[str] = field(default_factory=set)
    # Lease holders to tell that they lost a task: (agent id, cancellation).
    cancellations: list[tuple[str, Cancellation]] = field(default_factory=list)
    # Times at which tasks may become leasable: retry backoffs ending, and not_before times of
    # tasks held PENDING (wake-ups to schedule).
    backoff_until: list[int] = field(default_factory=list)
    # Tasks as they were right after the change: those built anyway (submitted, leased),
    # and the others when the write was asked for snapshots (someone watches).
    tasks: dict[str, Task] = field(default_factory=dict)
    # Sessions that ended, as they are after the change.
    sessions: list[Session] = field(default_factory=list)


@dataclass(frozen=True)
class SubmitResult:
    tasks: list[Task]
    duplicate: list[bool]
    keys: dict[str, str]  # client key -> task id (SubmitGraph)
    changes: Changes


@dataclass(frozen=True)
class LeaseResult:
    assignments: list[Assignment]
    # Slots still free after this lease (0: at capacity, maintenance or spent budget).
    free: int
    capabilities: tuple[str, ...]
    agent_status: str
    changes: Changes
    # When a rate limit held back a ready task the agent could run: the earliest time (us) its
    # bucket has a start again (the caller looks again then rather than wait for a wake-up).
    retry_at: int | None = None


@dataclass(frozen=True)
class TreeQuery:
    """One page of a GetTree: tasks after ``after_path`` (path order), at most ``max_depth``
    levels below the task (None: all)."""

    task_id: str
    page_size: int
    after_path: str | None = None
    max_depth: int | None = None


@dataclass(frozen=True)
class TreeSummary:
    tasks: list[Task]  # one page, in path order
    status_counts: dict[TaskStatus, int]  # of the whole subtree
    progress: float  # of the whole subtree
    more: bool = False  # tasks follow this page
