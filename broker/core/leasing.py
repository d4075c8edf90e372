"""Leasing tasks to agents: Claim (long poll) and Listen (push), and their wake-ups.

Words, on the task side: a *lease* is one attempt at a task given to one agent
(named by task, agent and attempt; ``broker.domain.leases`` says when it is
current). *Claim* is only the RPC that leases now or waits up to ``wait_s``
for work (``Leaser.claim``); *Listen* is the stream that leases whenever there
is room. (The messaging side's "claim", which hands messages to a stream, is
another thing.)

Nothing here polls in a loop. A waiter arms its wake-up keys *before* it tries
to lease, then sleeps until one is notified (after a commit) or an idle
re-check is due. The keys (``ready:<capability>``, ``agent:<id>``) are spelled
in ``wakeups.py``.

Every lease is one write job that checks the free capacity, picks the tasks
and marks them running atomically, so concurrent Claims (or Listen streams)
of one agent can never exceed its capacity.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from ..clock import Clock
from ..errors import FailedPrecondition, StorageUnavailable
from ..models.agents import Agent
from ..models.tasks import Assignment, Cancellation, Changes, LeaseResult
from ..storage.base import Storage
from .routing import RecordRouter
from .wakeups import Wakeups, agent_key, keys_for, ready_key

log = logging.getLogger("broker.tasks")

Announce = Callable[[Changes], None]


class Liveness(Protocol):
    """Told of each Listen stream's start and end (``Registry``: an open stream is a sign of life)."""

    async def revive(self, agent_id: str) -> Agent: ...

    def stream_opened(self, agent_id: str, kind: str) -> None: ...

    def stream_closed(self, agent_id: str, kind: str, handed: int) -> None: ...


LISTEN_BATCH = 100
# A waiting stream looks again this often even without a wake-up: heartbeat-
# reported capacity and other brokers' commits (shared database) do not notify.
IDLE_RECHECK_S = 1.0
SHUTTING_DOWN = "the broker is shutting down; listen again"


class Inbox:
    """Cancellations waiting to go out on one Listen stream."""

    def __init__(self) -> None:
        self.items: deque[Cancellation] = deque()

    def drain(self) -> list[Cancellation]:
        out = list(self.items)
        self.items.clear()
        return out


class Leaser:
    """``announce`` publishes a committed change; ``spawn`` runs a coroutine in the background;
    ``watched`` says whether writes should return task snapshots."""

    def __init__(
        self,
        storage: Storage,
        announce: Announce,
        spawn: Callable[[Any], None],
        liveness: Liveness,
        watched: Callable[[], bool] = lambda: False,
        router: RecordRouter | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.storage = storage
        self.clock = clock or Clock()
        self.watched = watched  # whether writes should return task snapshots (someone watches)
        self.liveness = liveness  # told when a Listen stream opens and ends (a sign of life)
        self.announce = announce
        self.spawn = spawn
        self.router = router  # routing by record, when on
        self.signals = Wakeups()
        self._inboxes: dict[str, set[Inbox]] = {}
        self._caps: dict[str, tuple[str, ...]] = {}
        self.lease_attempts = 0  # lease jobs run (tests check that waiting does not poll)
        # Wake-ups of every waiting Claim and Listen, so that shutdown can end them.
        self._armed: set[asyncio.Event] = set()
        self._closing = False

    def shutdown(self) -> None:
        """End every Listen stream (UNAVAILABLE) and answer every waiting Claim (no tasks) now,
        rather than letting them hold a graceful stop for its whole grace period."""
        self._closing = True
        for ev in self._armed:
            ev.set()

    def _arm(self, keys: list[str]) -> asyncio.Event:
        ev = self.signals.arm(keys)
        self._armed.add(ev)
        if self._closing:
            ev.set()
        return ev

    def _disarm(self, keys: list[str], ev: asyncio.Event) -> None:
        self.signals.disarm(keys, ev)
        self._armed.discard(ev)

    # ------------------------------------------------------------ announcing

    def wake(self, changes: Changes) -> None:
        """After a commit: wake whoever may now lease, and tell holders of lost tasks."""
        for caps in changes.ready:
            self.signals.notify(ready_key(caps))
        for agent_id, cancel in changes.cancellations:
            for inbox in self._inboxes.get(agent_id, ()):
                inbox.items.append(cancel)
        for agent_id in changes.released | {a for a, _ in changes.cancellations}:
            self.signals.notify(agent_key(agent_id))

    def wake_agent(self, agent_id: str) -> None:
        self.signals.notify(agent_key(agent_id))

    def wake_all(self) -> None:
        """Every waiting Claim and Listen looks again (the limits changed)."""
        for ev in self._armed:
            ev.set()

    def _patience(self, res: LeaseResult, timeout: float) -> float:
        """How long to wait for a wake-up: at most until a rate limit that held a task back has
        a start again (nothing notifies that)."""
        if res.retry_at is None:
            return timeout
        return max(0.0, min(timeout, (res.retry_at - self.clock.now_us()) / 1e6))

    def tell(self, agent_id: str, cancel: Cancellation) -> None:
        """A cancellation committed on another broker of the database: to the agent's Listen
        streams here, if it has any (and to no other broker again)."""
        boxes = self._inboxes.get(agent_id)
        if boxes:
            for inbox in boxes:
                inbox.items.append(cancel)
            self.signals.notify_local([agent_key(agent_id)])

    def listening(self, agent_id: str) -> int:
        return len(self._inboxes.get(agent_id, ()))

    # ------------------------------------------------------------ leasing

    async def _lease(self, agent_id: str, max_n: int) -> LeaseResult:
        """Lease and announce. If the caller is cancelled (its stream or call went away)
        while the lease commits, the tasks it got are handed back instead of waiting
        out their lease: nobody was told about them."""
        self.lease_attempts += 1
        job = asyncio.ensure_future(self.storage.lease_tasks(agent_id, max_n, self.clock.now_us()))
        try:
            res = await asyncio.shield(job)
        except asyncio.CancelledError:
            job.add_done_callback(lambda f: self._undelivered(agent_id, f))
            raise
        self._caps[agent_id] = res.capabilities
        self.announce(res.changes)
        return res

    def _undelivered(self, agent_id: str, job: asyncio.Future[LeaseResult]) -> None:
        if job.cancelled() or job.exception() is not None:
            return
        res = job.result()
        self.announce(res.changes)
        if res.assignments:
            leases = [(a.task.task_id, a.attempt) for a in res.assignments]
            self.spawn(self._return(agent_id, leases))

    async def _return(self, agent_id: str, leases: list[tuple[str, int]]) -> None:
        self.announce(
            await self.storage.return_leases(agent_id, leases, self.clock.now_us(), snapshots=self.watched())
        )

    async def _known_caps(self, agent_id: str) -> tuple[str, ...]:
        caps = self._caps.get(agent_id)
        if caps is None:
            caps = (await self.storage.get_agent(agent_id)).capabilities
            self._caps[agent_id] = caps
        return caps

    async def _wait_turn(self, agent_id: str, res: LeaseResult, ev: asyncio.Event, timeout: float) -> bool:
        """Wait for a wake-up (False: none came within ``timeout``); with routing by record,
        let better-ranked waiting agents lease first."""
        router = self.router
        if router is None:
            return await _wait(ev, timeout, self.clock)
        try:
            await router.waiting(agent_id, res.capabilities, res.free)
            woken = await _wait(ev, timeout, self.clock)
        except BaseException:
            router.gone(agent_id)
            raise
        if woken and res.free > 0:
            await router.hold_back(agent_id, res.capabilities)
        return woken

    async def claim(self, agent_id: str, max_n: int, wait_s: float) -> list[Assignment]:
        deadline = self.clock.monotonic() + wait_s
        keys = keys_for(agent_id, await self._known_caps(agent_id))
        try:
            return await self._claim(agent_id, max_n, deadline, keys)
        finally:
            if self.router is not None:
                self.router.gone(agent_id)

    async def _claim(self, agent_id: str, max_n: int, deadline: float, keys: list[str]) -> list[Assignment]:
        while True:
            if self._closing:
                return []
            ev = self._arm(keys)
            try:
                res = await self._lease(agent_id, max_n)
                if res.agent_status == "offline":
                    raise FailedPrecondition(f"agent {agent_id!r} is offline: send a heartbeat first")
                if res.assignments:
                    return res.assignments
                remaining = deadline - self.clock.monotonic()
                if remaining <= 0:
                    return []
                if not await self._wait_turn(agent_id, res, ev, self._patience(res, remaining)):
                    if self.clock.monotonic() >= deadline:
                        return []
            finally:
                self._disarm(keys, ev)
            keys = keys_for(agent_id, res.capabilities)

    async def listen(self, agent_id: str) -> AsyncIterator[tuple[list[Assignment], list[Cancellation]]]:
        """Assignments and cancellations for the agent's Listen stream. The first item is empty:
        it marks the stream live (every later cancellation and new task will reach it)."""
        if self._closing:
            raise StorageUnavailable(SHUTTING_DOWN)
        agent = await self.liveness.revive(agent_id)
        inbox = Inbox()
        self._inboxes.setdefault(agent_id, set()).add(inbox)
        keys = keys_for(agent_id, agent.capabilities)
        self.liveness.stream_opened(agent_id, "listen")
        handed = 0
        try:
            yield [], []  # live: cancellations for this agent now reach the stream
            while True:
                if self._closing:
                    raise StorageUnavailable(SHUTTING_DOWN)
                ev = self._arm(keys)
                try:
                    # A deregistered agent's lease raises NotFound: the stream ends there.
                    # (Its requeued tasks' cancellations are not sent first: the client
                    # library's worker learns the loss from a refused ExtendLease.)
                    res = await self._lease(agent_id, LISTEN_BATCH)
                    cancels = inbox.drain()
                    if res.assignments or cancels:
                        handed += len(res.assignments)
                        yield res.assignments, cancels
                    if res.free > 0 and len(res.assignments) == LISTEN_BATCH:
                        continue  # a full batch: more may be waiting
                    await self._wait_turn(agent_id, res, ev, self._patience(res, IDLE_RECHECK_S))
                finally:
                    self._disarm(keys, ev)
                keys = keys_for(agent_id, res.capabilities)
        finally:
            if self.router is not None:
                self.router.gone(agent_id)
            self.liveness.stream_closed(agent_id, "listen", handed)
            boxes = self._inboxes.get(agent_id)
            if boxes is not None:
                boxes.discard(inbox)
                if not boxes:
                    del self._inboxes[agent_id]


async def _wait(ev: asyncio.Event, timeout: float, clock: Clock) -> bool:
    """Wait for ``ev`` at most ``timeout`` seconds of ``clock``; True if it was set. (A timer that
    sets the event costs less than wait_for's extra task, and this runs once per lease.)"""
    if ev.is_set():
        return True
    fired = False

    def expire() -> None:
        nonlocal fired
        fired = True
        ev.set()

    timer = clock.call_later(timeout, expire)
    try:
        await ev.wait()
    finally:
        timer.cancel()
    return not fired
