"""Delivery machinery of the mailbox: one ``Subscription`` per Subscribe stream, and a timer
that wakes subscribers when scheduled messages come due.

A subscription's loop: clear its wake-up event, claim up to
``min(max_batch, max_in_flight - held)`` due messages in one write job, hand
them out as one batch; if it got a full batch it looks again at once,
otherwise it sleeps until woken. Its event is armed in the mailbox's
``Signals`` under the agent's key and its capabilities' keys for the whole
life of the stream, and cleared *before* each claim, so a commit that lands
between the claim and the sleep is not missed. Acks (room in flight), the
due timer and the mailbox (ending the stream) set the same event.
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
    """One Subscribe stream: what it holds (delivered, not yet acked) and its wake-up event."""

    def __init__(self, mailbox: Mailbox, inp: SubscribeInput, capabilities: tuple[str, ...]) -> None:
        self.mailbox = mailbox
        self.agent_id = inp.agent_id
        self.capabilities = capabilities
        self.max_in_flight = inp.max_in_flight
        self.max_batch = inp.max_batch
        self.ack_deadline_us = inp.ack_deadline_us
        self.keys = [f"a:{inp.agent_id}", *(f"c:{c}" for c in capabilities)]
        self.held: dict[str, int] = {}  # message_id -> the attempt delivered on this stream
        self.event = mailbox.signals.arm(self.keys)
        self.ended: BrokerError | None = None  # set when the broker ends the stream
        self.refund = False  # give the attempt back on release (the broker ended the stream)
        self.closed = False
        self._claim: asyncio.Future[list[Message]] | None = None

    def stop(self, error: BrokerError, refund: bool = False) -> None:
        """Ask the stream to end with ``error`` (it wakes and raises it)."""
        if self.ended is None:
            self.ended = error
            self.refund = refund
        self.event.set()

    async def deliveries(self) -> AsyncIterator[list[Message]]:
        """Batches of delivered messages, until the stream is ended or the client goes away."""
        storage = self.mailbox.storage
        try:
            while True:
                if self.ended is not None:
                    raise self.ended
                self.event.clear()
                want = min(self.max_batch, self.max_in_flight - len(self.held))
                if want > 0:
                    now = now_us()
                    self._claim = asyncio.ensure_future(
                        storage.claim_messages(
                            self.agent_id, self.capabilities, want, now, now + self.ack_deadline_us
                        )
                    )
                    # Shielded: a claim committed after the client left must still be released.
                    msgs = await asyncio.shield(self._claim)
                    self._claim = None
                    if msgs:
                        self.mailbox._hold(self, msgs)
                        if self.ended is not None:
                            raise self.ended  # released by end()
                        yield msgs
                        if len(msgs) == want:
                            continue  # more may be waiting: look again without sleeping
                await self.event.wait()
        finally:
            self.end()

    def end(self) -> None:
        """The stream is over: forget it and release what it holds (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.mailbox.signals.disarm(self.keys, self.event)
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
