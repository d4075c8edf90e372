"""A thin synchronous wrapper for scripts: the same methods, without ``await``."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any

from .client import BrokerClient

# BrokerClient methods that return a Stream (plain functions, not coroutines).
STREAM_METHODS = frozenset({"subscribe", "listen", "watch_agents", "watch_tasks"})


class SyncBrokerClient:
    """:class:`BrokerClient` for code without an event loop.

    Every method of ``BrokerClient`` is here with the same arguments; the
    coroutines are run to completion, and streams (``subscribe``,
    ``listen``, ``watch_agents``, ``watch_tasks``) and ``iter_*`` become plain
    iterators. It owns a private event loop, so do not use it from inside a
    running loop (use ``BrokerClient`` there).

    Example::

        with SyncBrokerClient("127.0.0.1:50051") as client:
            client.register("script", max_concurrent_tasks=1)
            client.send("script", "worker-1", {"hello": "world"})
    """

    def __init__(self, address: str | None = None, **options: Any) -> None:
        self._runner = asyncio.Runner()
        self.client = BrokerClient(address, **options)

    @property
    def address(self) -> str:
        return self.client.address

    def close(self) -> None:
        """Close the channel and the private event loop."""
        try:
            self._runner.run(self.client.close())
        finally:
            self._runner.close()

    def __enter__(self) -> SyncBrokerClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, awaitable: Any) -> Any:
        async def run() -> Any:
            return await awaitable

        return self._runner.run(run())

    def _iterate(self, it: AsyncIterator[Any]) -> Iterator[Any]:
        try:
            while True:
                try:
                    yield self._run(it.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            closer = getattr(it, "aclose", None)
            if closer is not None:
                self._run(closer())


def _wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        def call(self: SyncBrokerClient, *args: Any, **kwargs: Any) -> Any:
            return self._run(getattr(self.client, name)(*args, **kwargs))

    elif inspect.isasyncgenfunction(fn) or name in STREAM_METHODS:

        @functools.wraps(fn)
        def call(self: SyncBrokerClient, *args: Any, **kwargs: Any) -> Any:
            # Opening a stream must happen on the private loop (the channel lives there).
            async def open_() -> Any:
                return getattr(self.client, name)(*args, **kwargs)

            return self._iterate(self._runner.run(open_()))

    else:
        return fn
    return call


for _name, _fn in inspect.getmembers(BrokerClient, inspect.isfunction):
    if not _name.startswith("_") and _name != "close":
        setattr(SyncBrokerClient, _name, _wrap(_name, _fn))
