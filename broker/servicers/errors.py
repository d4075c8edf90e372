"""The one place where errors become gRPC status codes.

Every handler is wrapped by ``rpc`` (unary) or ``stream_rpc`` (server
streaming). Broker errors map through ``STATUS``; pydantic validation errors
become INVALID_ARGUMENT naming the field and the rule; anything else is
INTERNAL with a generic message, its traceback logged, never sent.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from pydantic import ValidationError

from .. import errors as e
from ..core.feeds import Overflow

log = logging.getLogger("broker.rpc")

STATUS: dict[type[e.BrokerError], grpc.StatusCode] = {
    e.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    e.NotFound: grpc.StatusCode.NOT_FOUND,
    e.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    e.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    e.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    e.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    e.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    e.StorageUnavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and client-facing message for an exception."""
    if isinstance(exc, ValidationError):
        return grpc.StatusCode.INVALID_ARGUMENT, validation_message(exc)
    if isinstance(exc, e.BrokerError):
        for cls in type(exc).__mro__:
            if cls in STATUS:
                return STATUS[cls], exc.message
        return grpc.StatusCode.INTERNAL, exc.message
    if isinstance(exc, Overflow):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, f"{exc}; reconnect"
    ref = uuid.uuid4().hex[:12]
    log.exception("internal error (ref %s)", ref, exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error (ref {ref}); see the broker log"


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        field = ".".join(str(p) for p in err["loc"]) or "request"
        parts.append(f"{field}: {err['msg']}")
    return "; ".join(parts)


Req = TypeVar("Req")
Resp = TypeVar("Resp")


def rpc(
    fn: Callable[[Any, Req, grpc.aio.ServicerContext], Awaitable[Resp]],
) -> Callable[[Any, Req, grpc.aio.ServicerContext], Awaitable[Resp]]:
    """Wrap a unary handler: map errors to status codes."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext) -> Resp:
        try:
            return await fn(self, request, context)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            code, message = status_of(exc)
            await context.abort(code, message)
            raise AssertionError("unreachable") from None

    return wrapper


def stream_rpc(
    fn: Callable[[Any, Req, grpc.aio.ServicerContext], AsyncIterator[Resp]],
) -> Callable[[Any, Req, grpc.aio.ServicerContext], AsyncIterator[Resp]]:
    """Wrap a server-streaming handler (an async generator): map errors to status codes."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext) -> AsyncIterator[Resp]:
        try:
            async for item in fn(self, request, context):
                yield item
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            if type(exc).__name__ == "ExecuteBatchError":  # grpc: the client went away mid-call
                log.debug("a client went away during %s: %s", fn.__name__, exc)
                return  # (there is nobody to send a status to)
            code, message = status_of(exc)
            await context.abort(code, message)

    return wrapper
