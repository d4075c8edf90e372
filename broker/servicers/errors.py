"""The one place where errors become gRPC status codes.

Every handler is wrapped by ``rpc`` (unary) or ``stream_rpc`` (server
streaming). Broker errors map through ``STATUS``; pydantic validation errors
become INVALID_ARGUMENT naming the field and the rule; anything else is
INTERNAL with a generic message, its traceback logged, never sent.
"""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from .. import errors as e
from ..clock import US_PER_S
from ..core.feeds import Overflow
from ..models.common import ID_PATTERN

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


# Input fields the protos spell otherwise (the models keep times in microseconds or seconds, the
# retry policy flat, and a page's position decoded from its token): messages name the proto's field.
PROTO_NAMES = {
    "lease_timeout_us": "lease_timeout",
    "max_run_us": "max_run_time",
    "max_retries": "retry.max_retries",
    "backoff_initial_us": "retry.initial_backoff",
    "backoff_multiplier": "retry.multiplier",
    "backoff_max_us": "retry.max_backoff",
    "wait_s": "wait",
    "extension_us": "extension",
    "per_us": "per",
    "after": "page_token",
    "after_seq": "page_token",
    "interval_us": "interval",
    "jitter_us": "jitter",
    "misfire_grace_us": "misfire_grace",
    "start_at": "start_time",
    "end_at": "end_time",
}
# Of those, the durations (a Duration in the protos), kept as a number of this many per second.
PER_SECOND = {
    "lease_timeout_us": US_PER_S,
    "max_run_us": US_PER_S,
    "backoff_initial_us": US_PER_S,
    "backoff_max_us": US_PER_S,
    "extension_us": US_PER_S,
    "per_us": US_PER_S,
    "wait_s": 1,
    "interval_us": US_PER_S,
    "jitter_us": US_PER_S,
    "misfire_grace_us": US_PER_S,
}
ID_RULE = "must hold only letters, digits and . _ : @ -"
_SHOULD = re.compile(r"^(?:Input|String|List|Dictionary|Value|Object) should ")


def field_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the proto names it: ``nodes[1].task.retry.max_retries``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            name = PROTO_NAMES.get(part, part)
            path += f".{name}" if path else name
    return path or "request"


def rule(err: ErrorDetails) -> str:
    """A pydantic error's rule in plain words, as the broker's own messages put it."""
    kind, ctx, msg = err["type"], err.get("ctx") or {}, err["msg"]
    if kind == "missing":
        return "is required"
    if kind == "string_too_short":
        n = ctx["min_length"]
        return "must not be empty" if n == 1 else f"must be at least {n} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    if kind == "too_short":
        return f"must hold at least {ctx['min_length']} item(s)"
    if kind == "too_long":
        return f"must hold at most {ctx['max_length']} items (not {ctx['actual_length']})"
    bounds = {"greater_than_equal": ("ge", "at least"), "less_than_equal": ("le", "at most")}
    bounds |= {"greater_than": ("gt", "more than"), "less_than": ("lt", "less than")}
    if kind in bounds:
        key, words = bounds[kind]
        names = [p for p in err["loc"] if isinstance(p, str)]
        unit = PER_SECOND.get(names[-1]) if names else None
        value = ctx[key] if unit is None else ctx[key] / unit
        shown = str(int(value)) if float(value).is_integer() else str(value)
        return f"must be {words} {shown}{'' if unit is None else ' s'}"
    if kind == "string_pattern_mismatch":
        return ID_RULE if ctx.get("pattern") == ID_PATTERN else f"must match {ctx.get('pattern')}"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    return _SHOULD.sub("must ", msg)  # "Input should be a valid integer": "must be a valid integer"


def validation_message(exc: ValidationError) -> str:
    """``field: rule`` for the first three errors, the field as the proto spells it."""
    return "; ".join(f"{field_path(err['loc'])}: {rule(err)}" for err in exc.errors()[:3])


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
