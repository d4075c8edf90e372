"""RPC metrics and the access log: each call's duration by method and status code, streams open,
and (``--access-log``) one line per call: method, subject, peer, client (its user agent, e.g. the
MCP client an ``a2a-broker-mcp`` call is made for), status, duration."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from ..interceptors import WrappingInterceptor
from ..security.identity import CALLER
from .metrics import Metrics

access = logging.getLogger("broker.access")


def _code(context: grpc.aio.ServicerContext, exc: BaseException | None) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if exc is None:
        return "OK"
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"
    return "UNKNOWN"


def _caller(context: grpc.aio.ServicerContext) -> tuple[str, str]:
    """The call's peer, and who the caller says it is: its user agent, without gRPC's own part
    (unless that is all). Read when the call starts: once a stream has been cancelled, reading
    its peer or metadata can crash grpc's core (a segmentation fault, seen with Unix sockets)."""
    client = "-"
    for key, value in context.invocation_metadata() or ():
        if key == "user-agent":
            text = str(value)
            client = text.split(" ", 1)[0] if text.startswith("grpc-") else text.split(" grpc-", 1)[0]
            break
    return context.peer(), client


def _no_caller(context: grpc.aio.ServicerContext) -> tuple[str, str]:
    return "-", "-"


class RpcMetrics(WrappingInterceptor):
    def __init__(self, metrics: Metrics, access_log: bool) -> None:
        super().__init__()
        self.metrics = metrics
        self.access_log = access_log

    def _done(
        self,
        method: str,
        context: grpc.aio.ServicerContext,
        t0: float,
        exc: BaseException | None,
        caller: tuple[str, str],
    ) -> None:
        seconds = time.perf_counter() - t0
        service, _, name = method.rpartition("/")
        code = _code(context, exc)
        self.metrics.rpc_seconds.labels(service.lstrip("/"), name, code).observe(seconds)
        if self.access_log:
            who = CALLER.get()  # set by the security interceptor, inside this one
            access.info(
                "rpc",
                extra={
                    "method": method,
                    "subject": who.subject if who is not None else "-",
                    "peer": caller[0],
                    "client": caller[1],
                    "code": code,
                    "ms": round(seconds * 1000, 3),
                },
            )

    def wrap(self, method: str, handler: Any) -> Any:
        done = self._done
        caller_of = _caller if self.access_log else _no_caller
        if handler.unary_unary is not None and inspect.iscoroutinefunction(handler.unary_unary):
            inner = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                t0 = time.perf_counter()
                caller = caller_of(context)
                try:
                    out = await inner(request, context)
                except BaseException as exc:
                    done(method, context, t0, exc, caller)
                    raise
                done(method, context, t0, None, caller)
                return out

            return handler._replace(unary_unary=unary)
        kind = "unary_stream" if handler.unary_stream is not None else "stream_stream"
        inner_stream = getattr(handler, kind)
        if inner_stream is None or not inspect.isasyncgenfunction(inner_stream):
            return handler
        name = method.rpartition("/")[2]
        open_streams = self.metrics.open_streams.labels(name)

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            t0 = time.perf_counter()
            caller = caller_of(context)
            open_streams.inc()
            failure: BaseException | None = None
            try:
                async for item in inner_stream(request, context):
                    yield item
            except BaseException as exc:
                failure = exc
                raise
            finally:
                open_streams.dec()
                done(method, context, t0, failure, caller)

        return handler._replace(**{kind: stream})
