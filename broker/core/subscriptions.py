"""Message subscriptions: one ``Subscription`` per Subscribe stream, which claims due messages
for its agent and hands them out in batches, within its flow-control room.

A subscription hands out batches of claimed messages: each claim marks up to its room
(``min(max_batch, max_in_flight - held - claims in flight)``) due messages delivered in one
write job. Claims in flight are kept in order and handed out in that order, so their batches
keep the priority and enqueue order the database gave them.

Two kinds of claims:
- its own, started when ``dirty`` (set by ``wake()``: a commit for its agent or capabilities,
  a scheduled time, room freed by acks for what it could not take) and cleared when the claim
  starts, so a commit that lands between a claim and the sleep is never missed, and a stream
  with nothing new does not claim for nothing. A full batch means more may wait: the next
  claim starts at once, while the batch is sent;
- hand-offs: a Send to its agent claims for it inside the Send's own transaction (the mailbox
  reserves room on the stream, see ``Mailbox._reserve``): one commit per message instead of two,
  under load as much as when idle. That is most of the end-to-end latency.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable
from typing import Protocol

from ..errors import BrokerError
from ..models.messages import Message, SubscribeInput
from .wakeups import subscriber_keys

ClaimInFlight = asyncio.Future[list[Message]]


class Keeper(Protocol):
    """What a subscription works with (the mailbox): it claims through it, and tells it what it
    holds and when it ends."""

    def claim(self, sub: Subscription, limit: int) -> Awaitable[list[Message]]:
        """Claim up to ``limit`` due messages for the subscription (one write job)."""

    def hold(self, sub: Subscription, msgs: list[Message]) -> None:
        """The subscription now holds these deliveries (until acked or released)."""

    def delivering(self, sub: Subscription, msgs: list[Message]) -> None:
        """These deliveries are being handed to the client (counted)."""

    def stream_ended(self, sub: Subscription, claims: list[ClaimInFlight]) -> None:
        """The stream is over: release what it holds, and what its claims in flight will hold."""


class Subscription:
    """One Subscribe stream: what it holds (delivered, not yet acked), its claims in flight."""

    def __init__(self, keeper: Keeper, inp: SubscribeInput, capabilities: tuple[str, ...]) -> None:
        self.keeper = keeper
        self.agent_id = inp.agent_id
        self.capabilities = capabilities
        self.max_in_flight = inp.max_in_flight
        self.max_batch = inp.max_batch
        self.ack_deadline_us = inp.ack_deadline_us
        self.keys = subscriber_keys(inp.agent_id, capabilities)
        self.held: dict[str, int] = {}  # message_id -> the attempt delivered on this stream
        self.claims: deque[tuple[ClaimInFlight, int]] = deque()  # in flight, in order: (future, limit)
        self._claiming = 0  # sum of the limits of the claims in flight
        self.event = asyncio.Event()  # wakes the loop; ``dirty`` says whether to claim
        self.delivered = 0  # messages handed to the client (logged when the stream closes)
        self.dirty = True  # look at once: the backlog
        self.ended: BrokerError | None = None  # set when the broker ends the stream
        self.refund = False  # give the attempt back on release (the broker ended the stream)
        self.sending: list[Message] = []  # in the response being written (not yet transmitted)
        self.closed = False

    @property
    def room(self) -> int:
        return min(self.max_batch, self.max_in_flight - len(self.held) - self._claiming)

    def wake(self) -> None:
        """Something may be deliverable: look again."""
        self.dirty = True
        self.event.set()

    def stop(self, error: BrokerError, refund: bool = False) -> None:
        """Ask the stream to end with ``error`` (it wakes and raises it)."""
        if self.ended is None:
            self.ended = error
            self.refund = refund
        self.event.set()

    def reserve(self) -> tuple[ClaimInFlight, int]:
        """Room for a claim that a Send runs in its own transaction (see the module doc)."""
        limit = self.room
        self.dirty = False  # as when a claim starts: the Send's claim sees every earlier commit
        fut: ClaimInFlight = asyncio.get_running_loop().create_future()
        self._add(fut, limit)
        self.event.set()
        return fut, limit

    def _add(self, fut: ClaimInFlight, limit: int) -> None:
        self.claims.append((fut, limit))
        self._claiming += limit

    def _start_claim(self) -> None:
        want = self.room
        if want <= 0:
            return
        self.dirty = False
        self._add(asyncio.ensure_future(self.keeper.claim(self, want)), want)

    async def deliveries(self) -> AsyncIterator[list[Message]]:
        """Batches of delivered messages, until the stream is ended or the client goes away."""
        try:
            while True:
                if self.ended is not None:
                    raise self.ended
                if not self.claims and self.dirty:
                    self._start_claim()
                if not self.claims:
                    self.event.clear()
                    if not (self.dirty and self.room > 0) and not self.claims and self.ended is None:
                        await self.event.wait()
                    continue
                fut, limit = self.claims[0]
                # Shielded: a claim committed after the client left must still be released.
                msgs = await asyncio.shield(fut)
                self.claims.popleft()
                self._claiming -= limit
                if not msgs:
                    continue
                self.keeper.hold(self, msgs)
                if self.ended is not None:
                    raise self.ended  # end() releases them
                self.keeper.delivering(self, msgs)
                if len(msgs) == limit:
                    self.dirty = True  # more may be waiting: claim while this batch is sent
                    while len(self.claims) < 2 and self.room > 0:  # one queued behind the other
                        self._start_claim()
                yield msgs
        finally:
            self.end()

    def end(self) -> None:
        """The stream is over: forget it and release what it holds (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.keeper.stream_ended(self, [fut for fut, _ in self.claims])
