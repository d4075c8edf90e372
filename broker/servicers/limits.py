"""The TaskQueue's concurrency-limit RPCs (SetConcurrencyLimit, ListConcurrencyLimits,
DeleteConcurrencyLimit, ListConcurrencyKeys): protobuf <-> the task queue's limits, mixed into
the TaskQueue servicer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from ..errors import InvalidArgument
from ..models.common import page_size
from ..models.limits import KeyUsage, Limit, SetLimitInput
from ..pb import tasks_pb2 as pb
from .convert import dur_us, set_us
from .errors import rpc

if TYPE_CHECKING:
    from ..core.taskqueue import TaskQueue


def limit_in(msg: pb.ConcurrencyLimit) -> SetLimitInput:
    return SetLimitInput.model_validate(
        {
            "limit": {
                "name": msg.name,
                "key": msg.key or None,
                "capability": msg.capability or None,
                "max_running": msg.max_running,
                "rate": msg.rate,
                "per_us": dur_us(msg, "per"),
                "burst": msg.burst,
            }
        }
    )


def limit_out(lim: Limit) -> pb.ConcurrencyLimit:
    msg = pb.ConcurrencyLimit(
        name=lim.name,
        key=lim.key or "",
        capability=lim.capability or "",
        max_running=lim.max_running or 0,
        rate=lim.rate or 0,
        burst=lim.burst or 0,
    )
    if lim.per_us is not None:
        set_us(msg.per, lim.per_us)
    set_us(msg.created_at, lim.created_at)
    set_us(msg.updated_at, lim.updated_at)
    return msg


def key_out(k: KeyUsage) -> pb.ConcurrencyKey:
    msg = pb.ConcurrencyKey(key=k.key, running=k.running, waiting=k.waiting)
    if k.limit is not None:
        msg.limit = k.limit.name
        msg.max_running = k.limit.max_running or 0
        msg.rate = k.limit.rate or 0
        if k.limit.per_us is not None:
            set_us(msg.per, k.limit.per_us)
    if k.tokens is not None:
        msg.tokens = k.tokens
    return msg


class LimitRpcs:
    queue: TaskQueue

    @rpc
    async def SetConcurrencyLimit(
        self, request: pb.SetConcurrencyLimitRequest, context: grpc.aio.ServicerContext
    ) -> pb.ConcurrencyLimit:
        return limit_out(await self.queue.set_limit(limit_in(request.limit).limit))

    @rpc
    async def ListConcurrencyLimits(
        self, request: pb.ListConcurrencyLimitsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListConcurrencyLimitsResponse:
        return pb.ListConcurrencyLimitsResponse(limits=[limit_out(x) for x in await self.queue.list_limits()])

    @rpc
    async def DeleteConcurrencyLimit(
        self, request: pb.DeleteConcurrencyLimitRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteConcurrencyLimitResponse:
        if not request.name:
            raise InvalidArgument("name", "is required")
        await self.queue.delete_limit(request.name)
        return pb.DeleteConcurrencyLimitResponse()

    @rpc
    async def ListConcurrencyKeys(
        self, request: pb.ListConcurrencyKeysRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListConcurrencyKeysResponse:
        if len(request.prefix) > 128:
            raise InvalidArgument("prefix", "must be at most 128 characters")
        keys = await self.queue.concurrency_keys(request.prefix, page_size(request.page_size))
        return pb.ListConcurrencyKeysResponse(keys=[key_out(k) for k in keys])
