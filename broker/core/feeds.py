"""Event feeds: fan-out of committed changes to watchers (WatchTasks, agent events), each with
a bounded queue. (Wake-ups of waiting streams are in ``wakeups.py``.)

Events are published only after the change they announce has committed, so a
watcher always finds it in the database. With other brokers on the database (PostgreSQL), a
feed's events may also come from them (``publish_local``: heard, not passed on again), and go to
them (``outbound``; ``cluster.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

E = TypeVar("E")


class Overflow(Exception):
    """A watcher fell too far behind and was dropped."""


class Feed(Generic[E]):
    """Fan-out of events to watchers, each with a bounded queue.

    A watcher that falls more than ``maxsize`` events behind is dropped (its
    next ``get`` raises Overflow) rather than letting memory grow.
    """

    def __init__(self, maxsize: int = 10_000) -> None:
        self._maxsize = maxsize
        self._watchers: set[Watcher[E]] = set()
        self._closed: Exception | None = None
        # Set when other brokers share the database: every event published here goes to them.
        self.outbound: Callable[[E], None] | None = None

    def watch(self, accept: Callable[[E], bool] | None = None) -> Watcher[E]:
        w: Watcher[E] = Watcher(self, accept, self._maxsize)
        if self._closed is not None:
            w._end(self._closed)
        else:
            self._watchers.add(w)
        return w

    def close(self, error: Exception) -> None:
        """End every watcher (its next ``get`` raises ``error``, after what it was already given),
        and every later one at once."""
        self._closed = error
        for w in list(self._watchers):
            w._end(error)

    def publish(self, event: E) -> None:
        self.publish_local(event)
        if self.outbound is not None:
            self.outbound(event)

    def publish_local(self, event: E) -> None:
        """To this broker's watchers only (an event another broker published)."""
        for w in list(self._watchers):
            w._offer(event)

    def _drop(self, w: Watcher[E]) -> None:
        self._watchers.discard(w)

    @property
    def watchers(self) -> int:
        return len(self._watchers)


class Watcher(Generic[E]):
    def __init__(self, feed: Feed[E], accept: Callable[[E], bool] | None, maxsize: int) -> None:
        self._feed = feed
        self._accept = accept
        self._queue: asyncio.Queue[E | Exception] = asyncio.Queue()
        self._maxsize = maxsize
        self._overflowed = False

    def _offer(self, event: E) -> None:
        if self._overflowed or (self._accept is not None and not self._accept(event)):
            return
        if self._queue.qsize() >= self._maxsize:
            self._overflowed = True
            self._queue.put_nowait(Overflow(f"watcher fell more than {self._maxsize} events behind"))
            self._feed._drop(self)
            return
        self._queue.put_nowait(event)

    def _end(self, error: Exception) -> None:
        if not self._overflowed:
            self._overflowed = True
            self._queue.put_nowait(error)
        self._feed._drop(self)

    async def get(self) -> E:
        item = await self._queue.get()
        if isinstance(item, Exception):
            self._queue.put_nowait(item)  # and again on every later get
            raise item
        return item

    def pending(self) -> bool:
        """Whether an event (or the end) is waiting to be read."""
        return not self._queue.empty()

    def close(self) -> None:
        self._feed._drop(self)

    def __enter__(self) -> Watcher[E]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
