"""The client's concurrency-limit calls (SetConcurrencyLimit, ListConcurrencyLimits,
DeleteConcurrencyLimit, ListConcurrencyKeys), mixed into :class:`BrokerClient`."""

from __future__ import annotations

from typing import Any

from . import _convert as c
from . import models as m
from .pb import tasks_pb2


class LimitCalls:
    async def _unary(self, service: str, method: str, request: Any, *, safe: bool) -> Any:
        raise NotImplementedError  # BrokerClient's

    async def set_concurrency_limit(
        self,
        name: str,
        *,
        key: str = "",
        capability: str = "",
        max_running: int = 0,
        rate: int = 0,
        per: m.Seconds | None = None,
        burst: int = 0,
    ) -> m.ConcurrencyLimit:
        """Create or replace the limit ``name``: on the tasks of a concurrency ``key`` (or of each
        key a pattern with ``*`` matches) or on every task requiring ``capability``; at most
        ``max_running`` at once and/or at most ``rate`` starts per ``per`` seconds (``burst``: the
        bucket's size, default ``rate``). Needs an admin token when the broker checks tokens."""
        limit = m.ConcurrencyLimit(name, key, capability, max_running, rate, per, burst)
        req = tasks_pb2.SetConcurrencyLimitRequest(limit=c.limit_pb(limit))
        return c.limit(await self._unary("tasks", "SetConcurrencyLimit", req, safe=True))

    async def list_concurrency_limits(self) -> list[m.ConcurrencyLimit]:
        req = tasks_pb2.ListConcurrencyLimitsRequest()
        resp = await self._unary("tasks", "ListConcurrencyLimits", req, safe=True)
        return [c.limit(x) for x in resp.limits]

    async def delete_concurrency_limit(self, name: str) -> None:
        """NotFoundError for an unknown name."""
        req = tasks_pb2.DeleteConcurrencyLimitRequest(name=name)
        await self._unary("tasks", "DeleteConcurrencyLimit", req, safe=False)

    async def list_concurrency_keys(self, *, prefix: str = "", page_size: int = 0) -> list[m.ConcurrencyKey]:
        """The keys (starting with ``prefix``) with the most running and waiting tasks, most first."""
        req = tasks_pb2.ListConcurrencyKeysRequest(prefix=prefix, page_size=page_size)
        resp = await self._unary("tasks", "ListConcurrencyKeys", req, safe=True)
        return [c.concurrency_key(k) for k in resp.keys]
