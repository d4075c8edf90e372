"""The messaging part of the Storage protocol.

Each operation is one transaction. Operations that change which copies are
deliverable return whom they concern, for the core to wake *after* the commit:
the ``Audience`` of each such copy (its agent, or for an anycast copy no agent
holds, its capability), now or at its deliver-after time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..domain.messages import Audience
from ..errors import BrokerError
from ..models.messages import Conversation, Message, MessageFilter, MessageStatus, NewMessage, SendResult


@dataclass
class MessageChanges:
    """Copies that changed state in one transaction, and whom to wake for them."""

    ids: list[tuple[str, int]] = field(default_factory=list)  # (message_id, attempt) of each copy changed
    wake: set[Audience] = field(default_factory=set)  # whom to wake now
    scheduled: list[tuple[int, Audience]] = field(default_factory=list)  # (due time, whom) for later
    requeued: int = 0  # copies now pending again
    dead: int = 0  # copies moved to FAILED (dead letters)


@dataclass(frozen=True)
class Handoff:
    """A claim to run in the same transaction as a send (hand-off to an idle subscriber)."""

    capabilities: tuple[str, ...]
    limit: int
    ack_deadline_us: int


@dataclass
class SendOutcome:
    results: list[SendResult | BrokerError]  # an error only for independent sends (batch=False)
    wake: set[Audience]
    scheduled: list[tuple[int, Audience]]
    claimed: dict[str, list[Message]]  # agent id -> deliveries claimed by the hand-off


@dataclass
class SweepOutcome:
    lapsed: MessageChanges  # deliveries past their ack deadline, released (or dead-lettered)
    expired: list[tuple[str, int]]  # (message_id, attempt) of copies that became EXPIRED
    purged: int  # final copies deleted by retention


class MessageStore(Protocol):
    async def send_messages(
        self, msgs: list[NewMessage], now: int, batch: bool = False, handoff: dict[str, Handoff] | None = None
    ) -> SendOutcome:
        """Store sends; idempotent repeats return the first ids. ``batch``: all or none, errors
        name fields ``messages[i].field``; otherwise each message stands alone and a refused one's
        result is its error (Send calls coalesced into one job). ``handoff``: then claim for these
        agents in the same transaction (as ``claim_messages`` would), saving a commit per delivery."""

    async def claim_messages(
        self, agent_id: str, capabilities: tuple[str, ...], limit: int, now: int, ack_deadline: int
    ) -> list[Message]:
        """Mark up to ``limit`` due copies for the agent delivered (priority, then enqueue order)."""

    async def ack_messages(self, agent_id: str, ids: list[str], now: int) -> MessageChanges:
        """Mark the agent's deliveries processed; ``ids`` of the result: (id, attempt) of those that
        changed (``wake``: a subscription where the next message of a key became deliverable).
        NotFound / PermissionDenied change nothing."""

    async def nack_messages(
        self, agent_id: str, ids: list[str], now: int, delay_us: int, reject: bool, reason: str
    ) -> MessageChanges:
        """Hand deliveries back for redelivery (after ``delay_us``) or dead-letter them."""

    async def release_deliveries(
        self, held: list[tuple[str, int]], now: int, reason: str, refund: bool
    ) -> MessageChanges:
        """Release (message_id, attempt) deliveries that are still outstanding at that attempt."""

    async def release_stale_deliveries(self, delivered_before: int, now: int, reason: str) -> MessageChanges:
        """Release every delivery made before ``delivered_before`` (streams of a previous process)."""

    async def requeue_messages(self, ids: list[str], now: int) -> MessageChanges:
        """Put dead letters back to pending with fresh attempts. All-or-nothing."""

    async def sweep_messages(self, now: int, purge_before: int, limit: int) -> SweepOutcome:
        """Release lapsed deliveries, expire copies past expiry, purge old final copies."""

    async def get_message(self, message_id: str) -> Message:
        """One copy by id (NotFound)."""

    async def list_messages(self, flt: MessageFilter) -> tuple[list[Message], int | None]:
        """One page in enqueue order; the second item is the last seq when more may follow."""

    async def list_conversations(
        self, participant: str | None, after: str | None, limit: int
    ) -> tuple[list[Conversation], str | None]:
        """A page of conversations in id order (those ``participant`` sent or received a message
        in), and the last id when more may follow."""

    async def purge_messages(self, status: MessageStatus, created_before: int, limit: int) -> int:
        """Delete up to ``limit`` copies in ``status`` (a final one) created before the time, oldest
        first; return how many."""

    async def due_scheduled(self, after: int, upto: int) -> set[Audience]:
        """Audiences of pending copies whose deliver-after time fell in (after, upto]."""
