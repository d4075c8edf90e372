"""A server stream as an async iterator the caller can close."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

import grpc

from .errors import from_grpc

T = TypeVar("T")


class Stream(Generic[T]):
    """Items pushed by the broker on a server stream.

    Iterate with ``async for``; close with ``await stream.aclose()`` or by using
    it as ``async with``. Closing ends the call on the broker too (for
    ``subscribe`` this releases the stream's unacknowledged messages at once).
    Errors surface as :class:`~a2a_broker_client.BrokerRpcError`.
    """

    def __init__(self, call: Any, convert: Callable[[Any], list[T]], method: str) -> None:
        self._call = call
        self._convert = convert
        self._method = method
        self._buffer: deque[T] = deque()
        self._closed = False

    def __aiter__(self) -> Stream[T]:
        return self

    async def __anext__(self) -> T:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            try:
                resp = await self._call.read()
            except grpc.aio.AioRpcError as exc:
                if self._closed and exc.code() == grpc.StatusCode.CANCELLED:
                    raise StopAsyncIteration from None
                raise from_grpc(exc, self._method) from exc
            except asyncio.CancelledError:
                # read() raises CancelledError when the call (not our task) was
                # cancelled by aclose(); our own task's cancellation must propagate.
                if self._closed and not _task_cancelling():
                    raise StopAsyncIteration from None
                raise
            if resp is grpc.aio.EOF:
                self._closed = True
                raise StopAsyncIteration
            self._buffer.extend(self._convert(resp))
        return self._buffer.popleft()

    async def wait_live(self) -> None:
        """Wait for the broker's response headers: for ``watch_agents`` they mean the
        watch is in place (no later event is missed). Raises if the call failed."""
        try:
            await self._call.initial_metadata()
        except grpc.aio.AioRpcError as exc:
            raise from_grpc(exc, self._method) from exc
        if self._call.done():
            code = await self._call.code()
            if code != grpc.StatusCode.OK:
                raise from_grpc(_Failed(code, await self._call.details()), self._method)

    async def aclose(self) -> None:
        """End the stream (idempotent)."""
        self._closed = True
        self._call.cancel()

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> Stream[T]:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _task_cancelling() -> bool:
    task = asyncio.current_task()
    return bool(task and task.cancelling())


class _Failed:
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details
