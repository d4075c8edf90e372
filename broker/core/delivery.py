"""Delivery machinery of the mailbox: one ``Subscription`` per Subscribe stream, and a timer
that wakes subscribers when scheduled messages come due.

A subscription's loop claims up to ``min(max_batch, max_in_flight - held)`` due messages in one
write job and hands them out as one batch. ``dirty`` says that something may have become
deliverable since the last claim started (a commit for its agent or capabilities, an ack freeing
room, a scheduled time): it is set by ``wake()`` and cleared *when a claim starts*, so a commit
that lands between a claim and the sleep is never missed, and a stream with nothing new does
not claim again for nothing. A full batch means more may wait: the next claim starts at once,
while the batch is being sent (the writer thread works while the event loop serializes).

Hand-off: a Send to an agent whose stream sits idle claims for that stream in the Send's own
transaction (the mailbox reserves the stream, see ``Mailbox._reserve``): one commit per message
instead of two, which is most of the end-to-end latency.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from ..clock import now_us
from ..errors import BrokerError
from ..models.messages import Message, SubscribeInput

if TYPE_CHECKING:
    from .mailbox import Mailbox

log = logging.getLogger("broker.mailbox")


class Subscription:
    """One Subscribe stream: what it holds (delivered, not yet acked) and when to look again."""

    def __init__(self, mailbox: Mailbox, inp: SubscribeInput, capabilities: tuple[str, ...]) -> None:
        self.mailbox = mailbox
        self.agent_id = inp.agent_id
        self.capabilities = capabilities
        self.max_in_flight = inp.max_in_flight
        self.max_batch = inp.max_batch
        self.ack_deadline_us = inp.ack_deadline_us
        self.keys = [f"a:{inp.agent_id}", *(f"c:{c}" for c in capabilities)]
        self.held: dict[str, int] = {}  # message_id -> the attempt delivered on this stream
        self.event = asyncio.Event()  # wakes the loop; ``dirty`` says whether to claim
        self.dirty = True  # look at once: the backlog
        self.idle = False  # asleep with room, nothing in flight: a Send may hand off to it
        self.ended: BrokerError | None = None  # set when the broker ends the stream
        self.refund = False  # give the attempt back on release (the broker ended the stream)
        self.closed = False
        self._claim: asyncio.Future[list[Message]] | None = None  # in flight, released if we end
        self.handoff: asyncio.Future[list[Message]] | None = None  # a Send claiming for us
        self._want = 0
        mailbox._watch(self)

    @property
    def room(self) -> int:
        return min(self.max_batch, self.max_in_flight - len(self.held))

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

    def reserve(self, limit: int) -> asyncio.Future[list[Message]]:
        """A Send will claim up to ``limit`` for this stream in its transaction (see module doc)."""
        self.dirty = False  # as when a claim starts: later commits wake us again
        self.idle = False
        self._want = limit
        self.handoff = self._claim = asyncio.get_running_loop().create_future()
        return self.handoff

    def _start_claim(self) -> asyncio.Future[list[Message]] | None:
        want = self.room
        if want <= 0:
            return None
        self.dirty = False
        now = now_us()
        self._want = want
        self._claim = asyncio.ensure_future(
            self.mailbox.storage.claim_messages(
                self.agent_id, self.capabilities, want, now, now + self.ack_deadline_us
            )
        )
        return self._claim

    async def deliveries(self) -> AsyncIterator[list[Message]]:
        """Batches of delivered messages, until the stream is ended or the client goes away."""
        claim: asyncio.Future[list[Message]] | None = None
        try:
            while True:
                if self.ended is not None:
                    raise self.ended
                if claim is None and self.handoff is not None:
                    claim, self.handoff = self.handoff, None
                if claim is None and self.dirty:
                    claim = self._start_claim()
                if claim is None:
                    self.event.clear()
                    if not (self.dirty and self.room > 0) and self.handoff is None and self.ended is None:
                        self.idle = self.room > 0
                        await self.event.wait()
                        self.idle = False
                    continue
                # Shielded: a claim committed after the client left must still be released.
                msgs = await asyncio.shield(claim)
                full = len(msgs) == self._want
                claim = self._claim = None
                if not msgs:
                    continue
                self.mailbox._hold(self, msgs)
                if self.ended is not None:
                    raise self.ended  # end() releases them
                if full:
                    self.dirty = True
                    claim = self._start_claim()  # more may be waiting: claim while this batch is sent
                yield msgs
        finally:
            self.idle = False
            self.end()

    def end(self) -> None:
        """The stream is over: forget it and release what it holds (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.idle = False
        self.mailbox._drop(self, self._claim)


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
