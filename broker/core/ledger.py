"""The delivery ledger: which stream holds which delivery, the release when a stream ends, and
the shutdown states. It alone keeps that knowledge; the rows keep each copy's state (delivered,
its attempt, its ack deadline), the ledger which live stream it was handed to.

A *delivery* is one attempt of one message copy, handed to one Subscribe (or Consume) stream:
``(message_id, attempt)``. A stream holds it from the claim that handed it out until it is acked,
nacked, expired or released, or its ack deadline lapses; what a stream holds counts against its
``max_in_flight``, so when a delivery is over, the ledger frees the room on the stream that held it
(an ack for an older attempt frees nothing: the stream holds the newer one). When a stream ends,
the ledger releases what it holds at once, in a task it tracks (so that shutdown waits for it even
when the stream was cancelled), with the claims still in flight on it.

A delivery whose response was never written (the stream ended while the response carrying it was
being written: see ``transmitting``) was not transmitted: its attempt is given back, as when the
broker shuts down.

Shutdown, in three states:
- open: streams come and go; a stream that ends has its deliveries released;
- closing (``shutdown``): every stream is told to end (UNAVAILABLE, subscribe again), but what
  the streams hold stays held, so that an ack in the server's grace period still counts;
- released (``close``): what is still held is handed back with the attempt given back (the
  broker, not the agent, failed), and an ack that may have come too late is refused.

The ledger calls the streams (to free room, to end them); streams call the ledger (to claim,
to hold, to end); the mailbox calls the ledger, and is told through the two callbacks it passes
(``changed``: a release committed; ``closed``: a stream ended).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from ..clock import Clock
from ..errors import BrokerError, StorageUnavailable
from ..models.messages import Message, NewMessage
from ..models.stats import MessageStats
from ..storage.base import Storage
from ..storage.message_store import Handoff, MessageChanges
from .subscriptions import ClaimInFlight, Subscription

log = logging.getLogger("broker.mailbox")

SHUTTING_DOWN = "the broker is shutting down; subscribe again"
# A hand-off reserved for a send: the stream, the claim the send resolves, and its limit.
Reserved = dict[str, tuple[Subscription, ClaimInFlight, int]]


class _Account:
    """What one stream holds (message_id -> the attempt handed to it), and how it ends."""

    __slots__ = ("sub", "held", "sending", "refund")

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.held: dict[str, int] = {}
        self.sending: list[Message] = []  # in the response being written (not yet transmitted)
        self.refund = False  # give the attempt back on release (the broker ended the stream)


class Ledger:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        stats: MessageStats,
        changed: Callable[[MessageChanges], None],
        closed: Callable[[Subscription], None],
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.stats = stats
        self._changed = changed  # a release committed (stats, wake-ups)
        self._closed = closed  # a stream ended (before its release)
        self._streams: dict[str, set[Subscription]] = {}  # agent_id -> its open streams
        self._accounts: dict[Subscription, _Account] = {}
        self._owner: dict[str, tuple[_Account, int]] = {}  # message_id -> (its stream's, attempt)
        self._releases: set[asyncio.Task[None]] = set()
        self._deferred: list[tuple[_Account, list[ClaimInFlight]]] = []
        self.closing = False  # shutdown began: releases wait for close()
        self.released = False  # close() began: held deliveries are handed back, acks are refused

    # -- streams -------------------------------------------------------------------------------

    def open(self, sub: Subscription) -> None:
        self._accounts[sub] = _Account(sub)
        self._streams.setdefault(sub.agent_id, set()).add(sub)

    def streams(self, agent_id: str) -> Iterable[Subscription]:
        return tuple(self._streams.get(agent_id, ()))

    def holding(self, sub: Subscription) -> int:
        """How many deliveries the stream holds."""
        acct = self._accounts.get(sub)
        return len(acct.held) if acct is not None else 0

    def claim(self, sub: Subscription, limit: int) -> Awaitable[list[Message]]:
        """A stream's own claim of up to ``limit`` due messages (one write job): the agent's own,
        or its subscription's deliveries."""
        now = self.clock.now_us()
        if sub.source is not None:
            return self.storage.claim_subscription(
                sub.source, sub.agent_id, limit, now, now + sub.ack_deadline_us
            )
        return self.storage.claim_messages(
            sub.agent_id, sub.capabilities, limit, now, now + sub.ack_deadline_us
        )

    def consuming(self, source: int) -> list[Subscription]:
        """The streams open on a subscription."""
        return [sub for sub in self._accounts if sub.source == source]

    def hold(self, sub: Subscription, msgs: list[Message]) -> None:
        """The stream now holds these deliveries (until acked, nacked, expired or released)."""
        acct = self._accounts.get(sub)
        if acct is None:  # ended meanwhile (an agent gone): what it claimed is its release's
            return
        self._hold(acct, msgs)

    def _hold(self, acct: _Account, msgs: list[Message]) -> None:
        for m in msgs:
            acct.held[m.message_id] = m.attempt
            self._owner[m.message_id] = (acct, m.attempt)

    def delivering(self, sub: Subscription, msgs: list[Message]) -> None:
        """These deliveries are being handed to the client (counted)."""
        sub.delivered += len(msgs)
        self.stats.delivered += len(msgs)
        self.stats.redelivered += sum(1 for m in msgs if m.attempt > 1)

    def transmitting(self, sub: Subscription, msgs: list[Message]) -> None:
        """``msgs`` are in the response being written on the stream: until ``transmitted``, they
        count as never sent should the stream end meanwhile (their attempt is given back)."""
        acct = self._accounts.get(sub)
        if acct is not None:
            acct.sending = msgs

    def transmitted(self, sub: Subscription) -> None:
        acct = self._accounts.get(sub)
        if acct is not None:
            acct.sending = []

    # -- hand-offs: a send claims for a stream in its own transaction ----------------------------

    def reserve(self, msgs: list[NewMessage]) -> Reserved:
        """For each direct recipient of ``msgs``, the stream with the most room: the send will
        claim for it in its own transaction (a hand-off). Its siblings are woken as usual if more
        is left."""
        out: Reserved = {}
        for m in msgs:
            agent = m.target.agent_id
            if agent is None or agent in out or m.deliver_after is not None:
                continue
            own = (s for s in self._streams.get(agent, ()) if s.source is None)  # not its subscriptions'
            best = max(own, key=lambda s: s.room, default=None)
            if best is not None and not best.closed and best.ended is None and best.room > 0:
                fut, limit = best.reserve()
                out[agent] = (best, fut, limit)
        return out

    @staticmethod
    def handoffs(reserved: Reserved) -> dict[str, Handoff]:
        return {a: Handoff(s.capabilities, limit, s.ack_deadline_us) for a, (s, _, limit) in reserved.items()}

    @staticmethod
    def handed(reserved: Reserved, claimed: dict[str, list[Message]]) -> list[str]:
        """After the send's commit: each stream gets what its hand-off claimed (it hands them out,
        or releases them). Returns the agents whose stream took everything there was (it had
        room to spare): nobody else need look."""
        drained = []
        for agent, (_, fut, limit) in reserved.items():
            got = claimed.get(agent, [])
            fut.set_result(got)
            if len(got) < limit:
                drained.append(agent)
        return drained

    @staticmethod
    def unreserve(reserved: Reserved) -> None:
        """The send failed: its hand-offs claimed nothing, and each stream claims for itself."""
        for sub, fut, _ in reserved.values():
            fut.set_result([])
            sub.wake()

    # -- deliveries that are over --------------------------------------------------------------

    def forget(self, ids: Iterable[tuple[str, int]]) -> None:
        """These deliveries are over (acked, nacked, released, expired, lapsed): free the room on
        the streams that held them."""
        for mid, attempt in ids:
            entry = self._owner.get(mid)
            if entry is None or entry[1] != attempt:
                continue
            del self._owner[mid]
            acct = entry[0]
            if acct.held.pop(mid, None) is not None:
                acct.sub.freed()

    def _drop(self, acct: _Account) -> list[tuple[str, int]]:
        """Everything the stream holds, no longer held (returned)."""
        held = list(acct.held.items())
        acct.held.clear()
        for mid, _ in held:
            if self._owner.get(mid, (None, 0))[0] is acct:
                del self._owner[mid]
        return held

    def agent_gone(self, agent_id: str, error: BrokerError) -> None:
        """The agent went offline or deregistered, and its deliveries were released in that
        commit: its streams hold nothing any more, and end with ``error``."""
        for sub in self.streams(agent_id):
            acct = self._accounts.get(sub)
            if acct is not None:
                self._drop(acct)
            sub.stop(error)

    # -- a stream ends -------------------------------------------------------------------------

    def end(self, sub: Subscription, claims: list[ClaimInFlight]) -> None:
        """The stream ended: forget it and release what it holds, and what its claims still in
        flight will hold, at once (after ``close`` during a shutdown)."""
        self._closed(sub)
        streams = self._streams.get(sub.agent_id)
        if streams is not None:
            streams.discard(sub)
            if not streams:
                del self._streams[sub.agent_id]
        acct = self._accounts.pop(sub, None)
        if acct is None or (not acct.held and not claims):
            return
        if self.closing and not self.released:
            self._deferred.append((acct, claims))  # close() releases it, after the grace's acks
            return
        self._spawn_release(acct, claims)

    def _spawn_release(self, acct: _Account, claims: list[ClaimInFlight]) -> None:
        task = asyncio.ensure_future(self._release(acct, claims))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, acct: _Account, claims: list[ClaimInFlight]) -> None:
        for claim in claims:  # claims still in flight when the stream ended: theirs too
            try:
                self._hold(acct, await claim)
            except Exception:  # the claim failed: it holds nothing
                pass
        held = self._drop(acct)
        if not held:
            return
        unsent = {m.message_id for m in acct.sending}
        acct.sending = []
        groups = [
            ([h for h in held if h[0] in unsent], True, "not transmitted before the subscription ended"),
            (
                [h for h in held if h[0] not in unsent],
                acct.refund,
                "broker shut down before the ack" if acct.refund else "subscription ended before the ack",
            ),
        ]
        for group, refund, reason in groups:
            if not group:
                continue
            try:
                out = await self.storage.release_deliveries(group, self.clock.now_us(), reason, refund)
            except Exception:
                log.exception(
                    "could not release %d deliveries of %s; the ack deadline will",
                    len(group),
                    acct.sub.agent_id,
                )
                continue
            self._changed(out)

    # -- shutdown ------------------------------------------------------------------------------

    def _stop_all(self) -> None:
        for agent_id in list(self._streams):
            for sub in self.streams(agent_id):
                if sub.stop(StorageUnavailable(SHUTTING_DOWN)):
                    acct = self._accounts.get(sub)
                    if acct is not None:
                        acct.refund = True

    def shutdown(self) -> None:
        """End every stream (UNAVAILABLE: subscribe again later). What they hold stays held until
        ``close()``, so that an ack sent meanwhile (in the server's grace period) still counts."""
        self.closing = True
        self._stop_all()

    async def close(self, timeout: float = 5.0) -> None:
        """Release every delivery still held (streams that ended during the shutdown, and streams
        still open, e.g. blocked in a write when the grace ended), and wait (bounded) until those
        releases committed."""
        self.closing = True
        self._stop_all()
        self.released = True
        for agent_id in list(self._streams):
            for sub in self.streams(agent_id):
                acct = self._accounts.get(sub)
                if acct is not None:
                    acct.refund = True
                sub.end()  # forgets it and releases what it holds (a later end() does nothing)
        deferred, self._deferred = self._deferred, []
        for acct, claims in deferred:
            self._spawn_release(acct, claims)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._releases and loop.time() < deadline:
            await asyncio.wait(list(self._releases), timeout=max(0.0, deadline - loop.time()))
