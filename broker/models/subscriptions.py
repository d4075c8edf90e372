"""Subscriptions to subjects: what CreateSubscription accepts and what a subscription is.

The syntax of a filter and of a subject is the domain's (``broker.domain.subjects``); the rest of
a subscription's options is checked here, as every other input is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidArgument
from .common import ID_PATTERN, NUL, NUL_RULE
from .messages import DEFAULT_MAX_ATTEMPTS, MAX_MAX_ATTEMPTS, MAX_TEXT

MIN_ACK_DEADLINE_US = 1_000_000
MAX_ACK_DEADLINE_US = 3_600_000_000
MIN_RETENTION_US = 1_000_000
MAX_RETENTION_US = 366 * 24 * 3_600_000_000
_ID_RE = re.compile(ID_PATTERN)


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """A subscription's name, filter and options, as created."""

    name: str
    filter: str
    ack_deadline_us: int
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retention_us: int | None = None  # how long a message waits here unacked (None: the topic's)
    ordering: bool = False  # per-key ordering
    dead_letter_subject: str | None = None


@dataclass(slots=True)
class SubscriptionInfo:
    """A stored subscription, with its figures when read with them."""

    subscription_id: int
    spec: SubscriptionSpec
    created_at: int
    created_by: str = ""
    backlog: int = 0  # pending deliveries
    in_flight: int = 0  # delivered, not yet acked
    dead_letters: int = 0
    oldest_unacked_at: int | None = None  # when the oldest message not acked here was sent

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True, slots=True)
class SeekPoint:
    """Where a replay starts: a subject message's sequence number, or the time messages were sent
    (exactly one is set)."""

    sequence: int | None = None
    time_us: int | None = None


@dataclass(slots=True)
class SeekResult:
    subscription: SubscriptionInfo
    replayed: int  # deliveries made pending (again) from the point on
    skipped: int  # unacked deliveries before the point, acked


def check_name(name: str, field: str = "name") -> str:
    if not name:
        raise InvalidArgument(field, "is required")
    if len(name) > MAX_TEXT or not _ID_RE.fullmatch(name):
        raise InvalidArgument(field, "must be 1-128 letters, digits or . _ : @ -")
    return name


def check_spec(
    *,
    name: str,
    filter: str,
    ack_deadline_us: int,
    max_attempts: int = 0,
    retention_us: int | None = None,
    ordering: bool = False,
    dead_letter_subject: str = "",
) -> SubscriptionSpec:
    """A subscription's options (0 max_attempts: the default, 5). The filter's and the dead-letter
    subject's syntax are checked by the domain (``subjects.check_filter``, ``check_subject``)."""
    check_name(name)
    if NUL in filter or NUL in dead_letter_subject:
        raise InvalidArgument("filter" if NUL in filter else "dead_letter_subject", NUL_RULE)
    if not MIN_ACK_DEADLINE_US <= ack_deadline_us <= MAX_ACK_DEADLINE_US:
        raise InvalidArgument("ack_deadline", "must be between 1 s and 1 h")
    if not 0 <= max_attempts <= MAX_MAX_ATTEMPTS:
        raise InvalidArgument("max_attempts", f"must be between 1 and {MAX_MAX_ATTEMPTS} (0 means 5)")
    if retention_us is not None and not MIN_RETENTION_US <= retention_us <= MAX_RETENTION_US:
        raise InvalidArgument("retention", "must be between 1 s and 366 days")
    return SubscriptionSpec(
        name,
        filter,
        ack_deadline_us,
        max_attempts or DEFAULT_MAX_ATTEMPTS,
        retention_us,
        ordering,
        dead_letter_subject or None,
    )
