"""The shape the broker's server interceptors share: wrap each method's handler once, then serve
the wrapped handler from a cache (a dict lookup per call afterwards)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """Subclasses say how to wrap a method's handler (``wrap``); wrapping happens once per method.
    Unknown methods are not cached: their names are the caller's to invent."""

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        try:
            return self._handlers[method]
        except KeyError:
            pass
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        wrapped = self._handlers[method] = self.wrap(method, handler)
        return wrapped

    def wrap(self, method: str, handler: Any) -> Any:
        raise NotImplementedError
