"""Errors raised by the client: one type carrying the gRPC status code.

Every failed call raises :class:`BrokerRpcError` (or a subclass chosen by the
status code), so callers catch one type and branch on the codes they act on::

    try:
        await client.get_task(task_id)
    except NotFoundError:
        ...
"""

from __future__ import annotations

from typing import Any

import grpc


class BrokerRpcError(Exception):
    """A call the broker refused, or that could not reach it.

    Attributes:
        code: the gRPC status code.
        details: the broker's message (it names the field and rule for
            INVALID_ARGUMENT).
        method: the RPC that failed, e.g. ``"Messaging/Send"``.
    """

    def __init__(self, code: grpc.StatusCode, details: str, method: str = "") -> None:
        super().__init__(f"{code.name}: {details}" if details else code.name)
        self.code = code
        self.details = details
        self.method = method

    @property
    def code_name(self) -> str:
        """The status code's name, e.g. ``"NOT_FOUND"``."""
        return str(self.code.name)

    @property
    def retryable(self) -> bool:
        """True when trying again later may succeed (the broker was unavailable)."""
        return self.code == grpc.StatusCode.UNAVAILABLE


class InvalidArgumentError(BrokerRpcError):
    """INVALID_ARGUMENT: a malformed or out-of-range field; the details name it."""


class NotFoundError(BrokerRpcError):
    """NOT_FOUND: unknown agent, message or task."""


class AlreadyExistsError(BrokerRpcError):
    """ALREADY_EXISTS: a duplicate that is not an idempotent retry."""


class FailedPreconditionError(BrokerRpcError):
    """FAILED_PRECONDITION: invalid state transition, stale lease, cycle in a graph."""


class ResourceExhaustedError(BrokerRpcError):
    """RESOURCE_EXHAUSTED: a limit was reached (capacity, prerequisites, in flight)."""


class PermissionDeniedError(BrokerRpcError):
    """PERMISSION_DENIED: acting on another agent's message or task."""


class UnauthenticatedError(BrokerRpcError):
    """UNAUTHENTICATED: missing or invalid credentials."""


class UnavailableError(BrokerRpcError):
    """UNAVAILABLE: the broker is unreachable or its storage is failing; retry later."""


class DeadlineExceededError(BrokerRpcError):
    """DEADLINE_EXCEEDED: the call's timeout passed before the broker answered."""


class UnimplementedError(BrokerRpcError):
    """UNIMPLEMENTED: the broker does not offer this RPC (an older broker?)."""


class InternalError(BrokerRpcError):
    """INTERNAL: the broker failed unexpectedly; its log has the reference quoted."""


class CancelledError(BrokerRpcError):
    """CANCELLED: the call was cancelled (usually by this side)."""


ERROR_CLASSES: dict[grpc.StatusCode, type[BrokerRpcError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.CANCELLED: CancelledError,
}


def error_for(code: grpc.StatusCode, details: str, method: str = "") -> BrokerRpcError:
    """The exception for a status code: its subclass when there is one, else the base."""
    return ERROR_CLASSES.get(code, BrokerRpcError)(code, details, method)


def from_grpc(exc: Any, method: str = "") -> BrokerRpcError:
    """Translate a ``grpc.RpcError`` (aio or sync) into the client's exception."""
    code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
    return error_for(code or grpc.StatusCode.UNKNOWN, details or "", method)
