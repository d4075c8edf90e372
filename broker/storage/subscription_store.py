"""The topics part of the Storage protocol: subscriptions to subjects and their deliveries.

A subject message is stored once (its ``Send`` is ``MessageStore.send_messages``); a delivery of
it is one small row per subscription that matched. Acks, nacks, releases, requeues and reads of
deliveries are the ``MessageStore``'s operations, which take deliveries' ids as they take message
copies' (``broker.domain.subjects.delivery_id``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..domain.messages import Audience
from ..models.messages import Message
from ..models.subscriptions import SeekPoint, SeekResult, SubscriptionInfo, SubscriptionSpec
from .message_store import MessageChanges, SweepOutcome


@dataclass
class DeadLetters:
    """Dead letters published to their subscriptions' dead-letter subjects, and whom to wake."""

    forwarded: int = 0
    wake: set[Audience] = field(default_factory=set)


@dataclass(frozen=True)
class SubscriptionFigures:
    """One subscription's backlog as the metrics count it."""

    name: str
    pending: int
    unacked: int  # pending and delivered
    oldest_unacked_at: int | None


class SubscriptionStore(Protocol):
    async def create_subscription(
        self, spec: SubscriptionSpec, created_by: str, now: int, start: SeekPoint | None = None
    ) -> tuple[SubscriptionInfo, bool]:
        """Create it, with deliveries of the retained messages from ``start`` on if given; a repeat
        (same name, same spec) returns the existing one; another spec under the name is
        AlreadyExists. The second item: whether it was created."""

    async def get_subscription(self, name: str, figures: bool = True) -> SubscriptionInfo:
        """One subscription (NotFound), with its figures unless ``figures`` is False."""

    async def list_subscriptions(
        self, after: str | None, limit: int
    ) -> tuple[list[SubscriptionInfo], str | None]:
        """A page by name, with figures, and the last name when more may follow."""

    async def delete_subscription(self, name: str) -> SubscriptionInfo:
        """Delete it and its deliveries (NotFound)."""

    async def seek_subscription(
        self, name: str, point: SeekPoint, now: int
    ) -> tuple[SeekResult, MessageChanges]:
        """Replay from ``point``; the changes name the deliveries streams held (to forget)."""

    async def claim_subscription(
        self, subscription_id: int, agent_id: str, limit: int, now: int, ack_deadline: int
    ) -> list[Message]:
        """Mark up to ``limit`` due deliveries delivered to the agent (NotFound once deleted)."""

    async def sweep_subscriptions(self, now: int, purge_before: int, limit: int) -> SweepOutcome:
        """Lapsed deliveries released, expired ones expired, subject messages sent before
        ``purge_before`` deleted with their deliveries."""

    async def forward_dead_letters(self, now: int, limit: int) -> DeadLetters:
        """Publish dead letters to their subscriptions' dead-letter subjects (each once)."""

    async def subscription_census(self, top_n: int) -> list[SubscriptionFigures]:
        """The ``top_n`` largest backlogs."""
