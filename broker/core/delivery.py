"""Delivery machinery of the mailbox: one ``Subscription`` per Subscribe stream, and a timer
that wakes subscribers when scheduled messages come due.

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
import heapq
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from ..clock import now_us
from ..errors import BrokerError
from ..models.messages import Message, SubscribeInput
from .wakeups import subscriber_keys

if TYPE_CHECKING:
    from .mailbox import Mailbox

log = logging.getLogger("broker.mailbox")

Claim = asyncio.Future[list[Message]]


class Subscription:
    """One Subscribe stream: what it holds (delivered, not yet acked), its claims in flight."""

    def __init__(self, mailbox: Mailbox, inp: SubscribeInput, capabilities: tuple[str, ...]) -> None:
        self.mailbox = mailbox
        self.agent_id = inp.agent_id
        self.capabilities = capabilities
        self.max_in_flight = inp.max_in_flight
        self.max_batch = inp.max_batch
        self.ack_deadline_us = inp.ack_deadline_us
        self.keys = subscriber_keys(inp.agent_id, capabilities)
        self.held: dict[str, int] = {}  # message_id -> the attempt delivered on this stream
        self.claims: deque[tuple[Claim, int]] = deque()  # in flight, in order: (future, limit)
        self._claiming = 0  # sum of the limits of the claims in flight
        self.event = asyncio.Event()  # wakes the loop; ``dirty`` says whether to claim
        self.dirty = True  # look at once: the backlog
        self.ended: BrokerError | None = None  # set when the broker ends the stream
        self.refund = False  # give the attempt back on release (the broker ended the stream)
        self.sending: list[Message] = []  # in the response being written (not yet transmitted)
        self.closed = False
        mailbox.wakeups.watch(self.keys, self.wake)

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

    def reserve(self) -> tuple[Claim, int]:
        """Room for a claim that a Send runs in its own transaction (see the module doc)."""
        limit = self.room
        self.dirty = False  # as when a claim starts: the Send's claim sees every earlier commit
        fut: Claim = asyncio.get_running_loop().create_future()
        self._add(fut, limit)
        self.event.set()
        return fut, limit

    def _add(self, fut: Claim, limit: int) -> None:
        self.claims.append((fut, limit))
        self._claiming += limit

    def _start_claim(self) -> None:
        want = self.room
        if want <= 0:
            return
        self.dirty = False
        now = now_us()
        self._add(
            asyncio.ensure_future(
                self.mailbox.storage.claim_messages(
                    self.agent_id, self.capabilities, want, now, now + self.ack_deadline_us
                )
            ),
            want,
        )

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
                self.mailbox._hold(self, msgs)
                if self.ended is not None:
                    raise self.ended  # end() releases them
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
        self.mailbox._drop(self, [fut for fut, _ in self.claims])


class DueTimer:
    """Calls ``fire(key)`` when each (due time, key) comes due; one sleeping task for all.

    At most ``cap`` entries are kept: beyond that the sweeper's scan of the
    scheduled index wakes subscribers instead (within one sweeper period).
    """

    def __init__(self, fire: Callable[[str], None], cap: int = 100_000) -> None:
        self._fire = fire
        self._cap = cap
        self._heap: list[tuple[int, str]] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, due_us: int, key: str) -> None:
        if len(self._heap) >= self._cap:
            return
        heapq.heappush(self._heap, (due_us, key))
        if self._heap[0][0] == due_us:
            self._changed.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mailbox-due-timer")

    async def _run(self) -> None:
        while True:
            self._changed.clear()
            now = now_us()
            fired: set[str] = set()
            while self._heap and self._heap[0][0] <= now:
                fired.add(heapq.heappop(self._heap)[1])
            for key in fired:
                self._fire(key)
            timeout = (self._heap[0][0] - now) / 1e6 + 0.001 if self._heap else None
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                pass

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
