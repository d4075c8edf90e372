"""Requests whose bytes are not a valid protobuf message: INVALID_ARGUMENT, not UNKNOWN.

grpc.aio calls a method's ``request_deserializer`` before any handler runs; when it raises
(``DecodeError``), grpc answers UNKNOWN and logs a full traceback for every such request. This
interceptor wraps each method handler once: its deserializer turns a failure into a marker, and
its behaviour aborts with INVALID_ARGUMENT when it receives one. Refusals are logged as one
short WARNING line at most every ten seconds, with a count of those left out.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from ..interceptors import WrappingInterceptor
from ..logs import Throttled

log = logging.getLogger("broker.rpc")


class _Malformed:
    """What the wrapped deserializer returns for bytes it could not parse."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


class MalformedRequests(WrappingInterceptor):
    def __init__(self, period_s: float = 10.0) -> None:
        super().__init__()
        self.throttle = Throttled(log, period_s)

    def wrap(self, method: str, handler: Any) -> Any:
        decode = handler.request_deserializer
        if decode is None:
            return handler
        throttle = self.throttle

        def deserialize(raw: bytes) -> Any:
            try:
                return decode(raw)
            except Exception as exc:  # any failure to parse is the client's
                error = str(exc).split(":", 1)[0] or type(exc).__name__
                throttle.log("refused a malformed request to %s: %s", method, error)
                return _Malformed(error)

        async def refuse(request: _Malformed, context: grpc.aio.ServicerContext) -> None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request: not a valid protobuf message for {method} ({request.error})",
            )

        kind = next(k for k in _KINDS if getattr(handler, k) is not None)
        behaviour = _guarded(getattr(handler, kind), handler.request_streaming, refuse)
        if behaviour is None:  # a synchronous handler: leave it as grpc made it
            return handler
        return handler._replace(request_deserializer=deserialize, **{kind: behaviour})


_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def _guarded(inner: Any, request_streaming: bool, refuse: Any) -> Any:
    """``inner`` refusing a _Malformed request, of the same kind of function (grpc.aio tells a
    coroutine handler from an async-generator one by the function), or None if neither."""

    async def checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        async for request in requests:
            if type(request) is _Malformed:
                await refuse(request, context)
            yield request

    async def check(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if request_streaming:
            return checked(request, context)
        if type(request) is _Malformed:
            await refuse(request, context)
        return request

    if inspect.isasyncgenfunction(inner):

        async def gen(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            async for item in inner(await check(request, context), context):
                yield item

        return gen
    if inspect.iscoroutinefunction(inner):

        async def coro(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await inner(await check(request, context), context)

        return coro
    return None
