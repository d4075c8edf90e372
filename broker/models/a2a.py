"""What the broker keeps of A2A tasks beside their turns (plain values): the index that lists
them by state and status time, the push-notification configurations the callers set, and the
notifications waiting to be POSTed. The rules that fill them are the gateway's
(``broker/gateway``); ``broker/domain/a2a_tasks.py`` maps turns to A2A states."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class A2AIndexEntry:
    """One A2A task as ``ListTasks`` filters and orders it (kept by the gateway's tracker)."""

    task_id: str  # the first turn's task id
    owner: str  # who sent the first message
    context_id: str
    state: str  # the A2A TaskState name, e.g. TASK_STATE_WORKING
    status_at: int  # when it entered that state (microseconds)
    root_seq: int  # the first turn's submission order
    turns: int = 1  # turns seen (each caller message is one)
    artifacts: tuple[str, ...] = ()  # artifact ids already announced


@dataclass(frozen=True)
class A2AListQuery:
    owner: str | None  # None: every owner's (an admin)
    context_id: str = ""
    state: str = ""
    since_us: int | None = None  # status time at or after
    after: tuple[int, str] | None = None  # the last (status_at, task_id) of the previous page
    limit: int = 50


@dataclass(frozen=True)
class PushConfig:
    task_id: str
    config_id: str
    owner: str
    url: str
    token: str = ""
    auth_scheme: str = ""
    auth_credentials: str = ""
    created_at: int = 0


@dataclass(frozen=True)
class PushDelivery:
    """One notification (a StreamResponse as JSON) for one configuration, POSTed in order per
    configuration, retried with backoff, dead after the last attempt."""

    seq: int
    task_id: str
    config_id: str
    body: bytes
    attempt: int
    status: str  # pending, delivered, dead
    next_at: int
    created_at: int
    last_error: str | None = None


@dataclass
class PushCounts:
    pending: int = 0
    delivered: int = 0
    dead: int = 0
    by_error: dict[str, int] = field(default_factory=dict)
