"""Wake-ups of waiting streams and calls: the one registry, and the one vocabulary of its keys.

Storage reports what changed (agent ids, capabilities, ``Audience``s of pending messages);
the service layer turns that into keys with the helpers below and notifies them after the
commit, so a woken reader always finds the change in the database. Keys are ``kind:name``:

- ``agent:<id>``: tasks: the agent's capacity was released, it was told of a cancellation, or
  its status changed;
- ``ready:<capability>``: tasks: a task needing that capability became leasable (``ready:*``:
  a task needing none). A task notifies only the smallest of its (sorted) capabilities: an
  agent able to run it has that one too;
- ``inbox:<id>``: messages: a copy for the agent became deliverable;
- ``pool:<capability>``: messages: an anycast copy for the capability, held by no agent,
  became deliverable;
- ``subscription:<n>``: messages: a delivery of the subscription numbered n (a subject message,
  or one released) became deliverable to its consumers, or the subscription was deleted.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Iterable

from ..clock import Clock
from ..domain import marks
from ..domain.messages import Audience

Wake = Callable[[], None]

# -- keys -------------------------------------------------------------------------------------


def agent_key(agent_id: str) -> str:
    """Tasks: the agent may lease again, or has news (cancellations, status)."""
    return f"agent:{agent_id}"


def ready_key(caps: tuple[str, ...]) -> str:
    """Tasks: a task needing ``caps`` (sorted) became leasable. The marks (``domain.marks``) are
    no agent's own: the key is one of the task's other capabilities."""
    first = next((c for c in caps if not marks.is_mark(c)), None)
    return f"ready:{first}" if first is not None else "ready:*"


def keys_for(agent_id: str, caps: Iterable[str]) -> list[str]:
    """What a task leaser (Claim, Listen) of the agent waits on."""
    return [agent_key(agent_id), "ready:*", *(f"ready:{c}" for c in caps)]


def inbox_key(agent_id: str) -> str:
    """Messages: a copy for the agent became deliverable."""
    return f"inbox:{agent_id}"


def pool_key(capability: str | None) -> str:
    """Messages: an anycast copy for the capability became deliverable to any agent with it."""
    return f"pool:{capability}"


def subscription_key(subscription_id: int) -> str:
    """Messages: a delivery of the subscription became deliverable (or it was deleted)."""
    return f"subscription:{subscription_id}"


def audience_key(audience: Audience) -> str:
    """Messages: the key of whoever may take a pending copy."""
    agent_id, capability, subscription = audience
    if subscription is not None:
        return subscription_key(subscription)
    return inbox_key(agent_id) if agent_id is not None else pool_key(capability)


def subscriber_keys(agent_id: str, capabilities: Iterable[str]) -> list[str]:
    """What a message subscriber of the agent waits on."""
    return [inbox_key(agent_id), *(pool_key(c) for c in capabilities)]


# -- the registry -----------------------------------------------------------------------------


class Wakeups:
    """Wake-ups keyed by the strings above.

    A waiter registers a callback (``watch``), or arms an ``asyncio.Event`` (``arm``): *before*
    it looks for work, then awaits the event if it found none, and ``disarm``s it after: a notify
    that lands between the look and the wait is not lost. A callback lets a waiter learn *that*
    a commit woke it (a message stream claims again only then).
    """

    def __init__(self) -> None:
        self._events: dict[str, set[Wake]] = {}  # key -> callbacks of its waiters
        # Set when other brokers share the database: every key notified here is passed on to them.
        self.relay: Callable[[str], None] | None = None

    def watch(self, keys: Iterable[str], wake: Wake) -> None:
        for key in keys:
            self._events.setdefault(key, set()).add(wake)

    def unwatch(self, keys: Iterable[str], wake: Wake) -> None:
        for key in keys:
            waiters = self._events.get(key)
            if waiters is not None:
                waiters.discard(wake)
                if not waiters:
                    del self._events[key]

    def arm(self, keys: Iterable[str]) -> asyncio.Event:
        ev = asyncio.Event()
        self.watch(keys, ev.set)
        return ev

    def disarm(self, keys: Iterable[str], ev: asyncio.Event) -> None:
        self.unwatch(keys, ev.set)

    def watching(self, key: str) -> bool:
        """Whether a waiter is armed or watching on ``key`` now."""
        return key in self._events

    def notify(self, key: str) -> None:
        for wake in self._events.get(key, ()):
            wake()
        if self.relay is not None:
            self.relay(key)

    def notify_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.notify(key)

    # -- brokers sharing one database (broker/storage/postgres/relay.py) --------------------

    def notify_local(self, keys: Iterable[str]) -> None:
        """Keys another broker notified: wake the waiters here, and do not relay them back."""
        for key in keys:
            for wake in tuple(self._events.get(key, ())):
                wake()

    def wake_all(self) -> None:
        """Wake every waiter (a notification from another broker may have been lost)."""
        for waiters in tuple(self._events.values()):
            for wake in tuple(waiters):
                wake()


class DueTimer:
    """Wake-ups at a time: calls ``fire(key)`` when each (due time, key) comes due; one sleeping
    task for all (scheduled messages).

    At most ``cap`` entries are kept: beyond that the sweeper's scan of the
    scheduled index wakes subscribers instead (within one sweeper period).
    """

    def __init__(self, fire: Callable[[str], None], clock: Clock | None = None, cap: int = 100_000) -> None:
        self._fire = fire
        self._clock = clock or Clock()
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
            now = self._clock.now_us()
            fired: set[str] = set()
            while self._heap and self._heap[0][0] <= now:
                fired.add(heapq.heappop(self._heap)[1])
            for key in fired:
                self._fire(key)
            if not self._heap:
                await self._changed.wait()
                continue
            timer = self._clock.call_later((self._heap[0][0] - now) / 1e6 + 0.001, self._changed.set)
            try:
                await self._changed.wait()
            finally:
                timer.cancel()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
