"""The Messaging service's subscription RPCs (CreateSubscription, GetSubscription,
ListSubscriptions, DeleteSubscription, Seek): protobuf <-> the core's topics (core/topics.py).
Consuming a subscription is Subscribe or Consume with ``subscription`` set (messaging.py)."""

from __future__ import annotations

import grpc

from ..core.topics import Topics
from ..errors import InvalidArgument, NotFound
from ..models.common import decode_page_token, encode_page_token, page_size
from ..models.subscriptions import SeekPoint, SubscriptionInfo, check_name, check_spec
from ..pb import messaging_pb2 as pb
from ..security.identity import may_act_as, recorded_actor
from .convert import dur_us, set_us, ts_us
from .errors import rpc

MAX_SEQUENCE = 2**63 - 1


def subscription_to_pb(info: SubscriptionInfo, now: int) -> pb.Subscription:
    spec = info.spec
    out = pb.Subscription(
        name=spec.name,
        filter=spec.filter,
        max_attempts=spec.max_attempts,
        ordering=spec.ordering,
        dead_letter_subject=spec.dead_letter_subject or "",
        created_by=info.created_by,
        backlog=info.backlog,
        in_flight=info.in_flight,
        dead_letters=info.dead_letters,
    )
    set_us(out.ack_deadline, spec.ack_deadline_us)
    if spec.retention_us is not None:
        set_us(out.retention, spec.retention_us)
    set_us(out.created_at, info.created_at)
    if info.oldest_unacked_at is not None:
        set_us(out.oldest_unacked_at, info.oldest_unacked_at)
        set_us(out.oldest_unacked_age, max(0, now - info.oldest_unacked_at))
    return out


def _point(sequence: int, time_us: int | None, which: str | None, field: str) -> SeekPoint | None:
    if which is None:
        return None
    if time_us is not None:
        return SeekPoint(time_us=time_us)
    if not 1 <= sequence <= MAX_SEQUENCE:
        raise InvalidArgument(field, f"must be between 1 and {MAX_SEQUENCE}")
    return SeekPoint(sequence=sequence)


class SubscriptionRpcs:
    """Mixed into the Messaging servicer."""

    topics: Topics
    _ack_deadline_us: int

    def _now(self) -> int:
        return self.topics.clock.now_us()

    async def _managed(self, name: str) -> None:
        """Deleting or moving a subscription is for its creator (or an admin)."""
        info = await self.topics.get(check_name(name))
        if info.created_by and not may_act_as(info.created_by):
            raise NotFound(f"subscription {name!r} not found")  # as GetMessage: no probing

    @rpc
    async def CreateSubscription(
        self, request: pb.CreateSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Subscription:
        ack = dur_us(request, "ack_deadline")
        spec = check_spec(
            name=request.name,
            filter=request.filter,
            ack_deadline_us=self._ack_deadline_us if ack is None else ack,
            max_attempts=request.max_attempts,
            retention_us=dur_us(request, "retention"),
            ordering=request.ordering,
            dead_letter_subject=request.dead_letter_subject,
        )
        which = request.WhichOneof("start")
        start = _point(
            request.start_sequence,
            ts_us(request, "start_time") if which == "start_time" else None,
            which,
            "start_sequence",
        )
        info, _ = await self.topics.create(spec, recorded_actor(""), start)
        return subscription_to_pb(info, self._now())

    @rpc
    async def GetSubscription(
        self, request: pb.GetSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Subscription:
        info = await self.topics.get(check_name(request.name))
        return subscription_to_pb(info, self._now())

    @rpc
    async def ListSubscriptions(
        self, request: pb.ListSubscriptionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSubscriptionsResponse:
        token = decode_page_token(request.page_token, 1)
        if token is not None and type(token[0]) is not str:
            raise InvalidArgument("page_token", "is not a token this broker issued")
        found, last = await self.topics.list(token[0] if token else None, page_size(request.page_size))
        now = self._now()
        return pb.ListSubscriptionsResponse(
            subscriptions=[subscription_to_pb(i, now) for i in found],
            next_page_token=encode_page_token(last) if last else "",
        )

    @rpc
    async def DeleteSubscription(
        self, request: pb.DeleteSubscriptionRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteSubscriptionResponse:
        await self._managed(request.name)
        await self.topics.delete(request.name)
        return pb.DeleteSubscriptionResponse()

    @rpc
    async def Seek(self, request: pb.SeekRequest, context: grpc.aio.ServicerContext) -> pb.SeekResponse:
        which = request.WhichOneof("target")
        point = _point(
            request.sequence, ts_us(request, "time") if which == "time" else None, which, "sequence"
        )
        if point is None:
            raise InvalidArgument("target", "set sequence or time: the point to seek to")
        await self._managed(request.name)
        result = await self.topics.seek(request.name, point)
        return pb.SeekResponse(
            subscription=subscription_to_pb(result.subscription, self._now()),
            replayed=result.replayed,
            skipped=result.skipped,
        )
