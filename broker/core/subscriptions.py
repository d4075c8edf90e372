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
- hand-offs: a Send to its agent claims for it inside the Send's own transaction (the ledger
  reserves room on the stream, see ``Ledger.reserve``): one commit per message instead of two,
  under load as much as when idle. That is most of the end-to-end latency.

What a subscription holds, and its release when it ends, are the ledger's (ledger.py): the
subscription asks the ledger to claim, tells it what it holds, and that it ended.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

from ..errors import BrokerError
from ..models.messages import Message, SubscribeInput
from .streams import duplex, frames
from .wakeups import subscriber_keys, subscription_key

ClaimInFlight = asyncio.Future[list[Message]]
F = TypeVar("F")  # a frame: what one write on the stream carries
R = TypeVar("R")  # a request the client writes on the stream
C = TypeVar("C")  # its confirmation
Split = Callable[[list[Message]], list[tuple[F, list[Message]]]]  # a batch -> (frame, its messages)


class Keeper(Protocol):
    """What a subscription works with: the delivery ledger (ledger.py), which keeps what each
    stream holds."""

    def holding(self, sub: Subscription) -> int:
        """How many deliveries the stream holds."""

    def claim(self, sub: Subscription, limit: int) -> Awaitable[list[Message]]:
        """Claim up to ``limit`` due messages for the stream (one write job)."""

    def hold(self, sub: Subscription, msgs: list[Message]) -> None:
        """The stream now holds these deliveries."""

    def delivering(self, sub: Subscription, msgs: list[Message]) -> None:
        """These deliveries are being handed to the client (counted)."""

    def transmitting(self, sub: Subscription, msgs: list[Message]) -> None:
        """These deliveries are in the response being written."""

    def transmitted(self, sub: Subscription) -> None:
        """The response was written."""

    def end(self, sub: Subscription, claims: list[ClaimInFlight]) -> None:
        """The stream is over: release what it holds, and what its claims in flight will hold."""


class Subscription:
    """One Subscribe stream: its flow-control room, its claims in flight, its end. What it holds
    (delivered, not yet acked) is the ledger's to keep (see ledger.py)."""

    def __init__(
        self,
        ledger: Keeper,
        inp: SubscribeInput,
        capabilities: tuple[str, ...],
        source: int | None = None,
        ack_deadline_us: int | None = None,
    ) -> None:
        self.ledger = ledger
        self.agent_id = inp.agent_id
        self.capabilities = capabilities
        self.max_in_flight = inp.max_in_flight
        self.max_batch = inp.max_batch
        self.ack_deadline_us = ack_deadline_us or inp.ack_deadline_us
        # A subscription to subjects to consume (its number), instead of the agent's own messages.
        self.source = source
        self.keys = (
            [subscription_key(source)] if source is not None else subscriber_keys(inp.agent_id, capabilities)
        )
        self.claims: deque[tuple[ClaimInFlight, int]] = deque()  # in flight, in order: (future, limit)
        self._claiming = 0  # sum of the limits of the claims in flight
        self.event = asyncio.Event()  # wakes the loop; ``dirty`` says whether to claim
        self.delivered = 0  # messages handed to the client (logged when the stream closes)
        self.dirty = True  # look at once: the backlog
        self.ended: BrokerError | None = None  # set when the broker ends the stream
        self.closed = False
        self._parked = False  # waiting for a wake-up, with no claim in flight

    @property
    def idle(self) -> bool:
        """Nothing under way: it looked, found nothing it could take, and waits for a wake-up
        (or it ended). Until something wakes it, it hands out nothing more."""
        return self.closed or (self._parked and not self.event.is_set())

    @property
    def room(self) -> int:
        return min(self.max_batch, self.max_in_flight - self.ledger.holding(self) - self._claiming)

    def wake(self) -> None:
        """Something may be deliverable: look again."""
        self.dirty = True
        self.event.set()

    def freed(self) -> None:
        """A delivery it held is over: room in flight for what it could not take (else nothing new)."""
        if self.dirty:
            self.event.set()

    def stop(self, error: BrokerError) -> bool:
        """Ask the stream to end with ``error`` (it wakes and raises it); False if it was already
        asked to end."""
        first = self.ended is None
        if first:
            self.ended = error
        self.event.set()
        return first

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
        self._add(asyncio.ensure_future(self.ledger.claim(self, want)), want)

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
                        self._parked = True
                        try:
                            await self.event.wait()
                        finally:
                            self._parked = False
                    continue
                fut, limit = self.claims[0]
                # Shielded: a claim committed after the client left must still be released.
                msgs = await asyncio.shield(fut)
                self.claims.popleft()
                self._claiming -= limit
                if not msgs:
                    continue
                self.ledger.hold(self, msgs)
                if self.ended is not None:
                    raise self.ended  # end() releases them
                self.ledger.delivering(self, msgs)
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
        self.ledger.end(self, [fut for fut, _ in self.claims])

    async def frames(self, split: Split[F]) -> AsyncIterator[tuple[F, list[Message]]]:
        """The deliveries as the frames ``split`` makes of each batch (responses of a bounded
        size), with the messages each carries. Each is marked in the ledger as being transmitted
        until the next is asked for (the write completed): if the stream ends meanwhile, its
        deliveries were never sent."""
        async for msgs in self.deliveries():
            for frame, sent in split(msgs):
                self.transmitting(sent)
                yield frame, sent
                self.transmitted()

    async def consume(
        self,
        split: Split[F],
        requests: AsyncIterator[R],
        settle: Callable[[R], Awaitable[C]],
        is_confirm: Callable[[object], bool],
    ) -> AsyncIterator[tuple[tuple[F, list[Message]] | None, C | None]]:
        """A stream with in-band settlement (Consume): frames of (push or None, confirmation or
        None), a push and the confirmation ready with it going out together (see streams.duplex).
        Each push is marked as being transmitted until the next frame is asked for, as in
        ``frames``."""

        async def pushes() -> AsyncIterator[tuple[F, list[Message]]]:
            async for msgs in self.deliveries():
                for item in split(msgs):
                    yield item

        try:
            async for ready in duplex(pushes(), requests, settle):
                for push, confirm in frames(ready, is_confirm):
                    if push is None:
                        yield None, confirm
                        continue
                    self.transmitting(push[1])
                    yield push, confirm
                    self.transmitted()
        finally:
            self.end()

    def transmitting(self, msgs: list[Message]) -> None:
        """``msgs`` are in the response being written: not transmitted until ``transmitted()``."""
        self.ledger.transmitting(self, msgs)

    def transmitted(self) -> None:
        self.ledger.transmitted(self)
