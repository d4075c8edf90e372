"""Messaging servicer: protobuf <-> mailbox calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from ..clock import now_us, s_to_us
from ..core.mailbox import Mailbox
from ..errors import InvalidArgument, NotFound, PermissionDenied
from ..models.common import check_id, decode_page_token, encode_page_token, page_size
from ..models.messages import (
    IN_REPLY_TO,
    MAX_BATCH_SEND,
    PUBLISH_WINDOW,
    Message,
    MessageFilter,
    MessageStatus,
    NewMessage,
    SubscribeInput,
    Target,
    TargetKind,
    check_ids,
    check_nack,
    check_send,
    check_subscribe,
)
from ..pb import messaging_pb2 as pb
from ..pb import messaging_pb2_grpc as pb_grpc
from ..security.identity import charge, may_act_as, may_read_message, reader_scope
from .convert import dur_us, enum_value, fitting, framed_size, set_us, ts_fields, ts_us
from .duplex import duplex, frames
from .errors import rpc, status_of, stream_rpc
from .tracing import TRACEPARENT, SpanScope, Tracing, incoming, valid

STATUS_TO_PB = {
    MessageStatus.PENDING: pb.MESSAGE_STATUS_PENDING,
    MessageStatus.DELIVERED: pb.MESSAGE_STATUS_DELIVERED,
    MessageStatus.PROCESSED: pb.MESSAGE_STATUS_PROCESSED,
    MessageStatus.FAILED: pb.MESSAGE_STATUS_FAILED,
    MessageStatus.EXPIRED: pb.MESSAGE_STATUS_EXPIRED,
}
PB_TO_STATUS = {v: k for k, v in STATUS_TO_PB.items()}
MAX_PURGE = 10_000
KIND_TO_PB = {
    TargetKind.DIRECT: pb.TARGET_KIND_DIRECT,
    TargetKind.BROADCAST: pb.TARGET_KIND_BROADCAST,
    TargetKind.ANYCAST: pb.TARGET_KIND_ANYCAST,
}


_DIRECT: dict[str, Target] = {}
# The unary twins a request stream's entries are charged as (security quotas).
SEND = "/a2a.broker.v1.Messaging/Send"
ACK = "/a2a.broker.v1.Messaging/Ack"
NACK = "/a2a.broker.v1.Messaging/Nack"


def _target(req: pb.SendRequest) -> Target | None:
    if not req.HasField("target"):
        return None
    t = req.target
    which = t.WhichOneof("kind")
    if which == "agent_id":
        agent_id = t.agent_id
        target = _DIRECT.get(agent_id)
        if target is None:  # one Target per recipient, reused (never modified)
            if len(_DIRECT) > 10_000:
                _DIRECT.clear()
            target = _DIRECT[agent_id] = Target(TargetKind.DIRECT, agent_id=agent_id)
        return target
    if which == "broadcast":
        return Target(
            TargetKind.BROADCAST,
            capability=t.broadcast.capability or None,
            include_sender=t.broadcast.include_sender,
        )
    if which == "anycast":
        return Target(TargetKind.ANYCAST, capability=t.anycast.capability)
    return None


def send_from_pb(req: pb.SendRequest, now: int, max_payload: int, field: str = "") -> NewMessage:
    expiry = req.WhichOneof("expiry")
    return check_send(
        field=field,
        now=now,
        max_payload=max_payload,
        sender_id=req.sender_id,
        target=_target(req),
        message_type=req.message_type,
        payload=req.payload,
        content_type=req.content_type,
        priority=req.priority if req.HasField("priority") else None,
        correlation_id=req.correlation_id,
        conversation_id=req.conversation_id,
        deliver_after=ts_us(req, "deliver_after", field + "deliver_after"),
        ttl_us=dur_us(req, "ttl") if expiry == "ttl" else None,
        expires_at=ts_us(req, "expires_at", field + "expires_at") if expiry == "expires_at" else None,
        max_attempts=req.max_attempts if req.HasField("max_attempts") else None,
        idempotency_key=req.idempotency_key,
        headers=dict(req.headers) if req.headers else None,
        require_recipient=req.require_recipient,
        in_reply_to=req.in_reply_to,
    )


def _pb_fields(m: Message) -> dict[str, object]:
    kw: dict[str, object] = {
        "message_id": m.message_id,
        "send_id": m.send_id,
        "sender_id": m.sender_id,
        "target_kind": KIND_TO_PB[m.target_kind],
        "message_type": m.message_type,
        "payload": m.payload,
        "content_type": m.content_type,
        "priority": m.priority,
        "status": STATUS_TO_PB[m.status],
        "attempt": m.attempt,
        "max_attempts": m.max_attempts,
        "created_at": ts_fields(m.created_at),
    }
    if m.recipient_id is not None:
        kw["recipient_id"] = m.recipient_id
    if m.target_capability is not None:
        kw["target_capability"] = m.target_capability
    if m.correlation_id is not None:
        kw["correlation_id"] = m.correlation_id
    if m.conversation_id is not None:
        kw["conversation_id"] = m.conversation_id
    if m.headers:
        kw["headers"] = m.headers
        if IN_REPLY_TO in m.headers:
            kw["in_reply_to"] = m.headers[IN_REPLY_TO]
    if m.idempotency_key is not None:
        kw["idempotency_key"] = m.idempotency_key
    if m.last_error is not None:
        kw["last_error"] = m.last_error
    if m.awaiting_recipient:
        kw["awaiting_recipient"] = True
    for name in ("deliver_after", "expires_at", "delivered_at", "ack_deadline", "processed_at"):
        value = getattr(m, name)
        if value is not None:
            kw[name] = ts_fields(value)
    return kw


def message_to_pb(m: Message) -> pb.Message:
    return pb.Message(**_pb_fields(m))  # type: ignore[arg-type]


def deliveries_to_pb(msgs: list[Message]) -> pb.SubscribeResponse:
    resp = pb.SubscribeResponse()
    add = resp.messages.add  # built in place: no copy into the repeated field
    for m in msgs:
        add(**_pb_fields(m))
    return resp


def split_deliveries(msgs: list[Message], max_bytes: int) -> list[tuple[pb.SubscribeResponse, list[Message]]]:
    """Responses of at most ``max_bytes`` each (serialized), in order; a message larger than that
    goes alone. One response in the common case (checked on the whole first)."""
    resp = deliveries_to_pb(msgs)
    if resp.ByteSize() <= max_bytes:
        return [(resp, msgs)]
    out: list[tuple[pb.SubscribeResponse, list[Message]]] = []
    chunk: list[pb.Message] = []
    chunk_msgs: list[Message] = []
    size = 0
    for m, x in zip(msgs, resp.messages, strict=True):
        n = framed_size(x.ByteSize())
        if chunk and size + n > max_bytes:
            out.append((pb.SubscribeResponse(messages=chunk), chunk_msgs))
            chunk, chunk_msgs, size = [], [], 0
        chunk.append(x)
        chunk_msgs.append(m)
        size += n
    out.append((pb.SubscribeResponse(messages=chunk), chunk_msgs))
    return out


def _fold_broadcasts(page: list[pb.Message]) -> list[pb.Message]:
    """Each send once: a broadcast's copies (same send_id) folded into the first on the page,
    which lists every copy's recipient and status."""
    out: list[pb.Message] = []
    firsts: dict[str, pb.Message] = {}
    for m in page:
        if m.target_kind != pb.TARGET_KIND_BROADCAST:
            out.append(m)
            continue
        first = firsts.get(m.send_id)
        if first is None:
            first = firsts[m.send_id] = m
            out.append(m)
        first.recipients.add(message_id=m.message_id, recipient_id=m.recipient_id, status=m.status)
    return out


def _is_consume_confirm(x: object) -> bool:
    return isinstance(x, pb.ConsumeConfirm)


def _dest(m: Message) -> str | None:
    return m.recipient_id or m.target_capability


class MessagingServicer(pb_grpc.MessagingServicer):
    def __init__(self, mailbox: Mailbox, tracing: Tracing | None = None) -> None:
        self.mailbox = mailbox
        self.tracing = tracing or Tracing(False)
        self._max_payload = mailbox.settings.max_payload_bytes
        self._ack_deadline_us = s_to_us(mailbox.settings.ack_deadline_s)

    def _send_scope(self, parent: str | None, req: pb.SendRequest) -> SpanScope:
        """The send span of a Send; its traceparent becomes the message's ``traceparent`` header.
        The call's metadata names the parent, else the message's own header."""
        headers = req.headers
        if parent is None and headers:
            parent = valid(headers.get(TRACEPARENT))
        if parent is None and not self.tracing.on:
            return SpanScope(None, None)
        return self.tracing.scope(
            "send", parent, "producer", {"messaging.message.body.size": len(req.payload)}
        )

    def _delivered(self, msgs: list[Message], held: dict[str, str | None] | None = None) -> None:
        """A deliver span for one push (tracing on): the child of the message's stored context
        when it carries one message, else linked to each message's. ``held`` keeps each
        message's context for its in-band ack."""
        parents = [valid(m.headers.get(TRACEPARENT)) if m.headers else None for m in msgs]
        first = msgs[0]
        self.tracing.batch(
            "deliver",
            parents,
            {
                "messaging.destination.name": _dest(first),
                "messaging.message.id": first.message_id if len(msgs) == 1 else None,
                "messaging.message.conversation_id": first.conversation_id if len(msgs) == 1 else None,
                "messaging.message.delivery_count": first.attempt if len(msgs) == 1 else None,
            },
            retried=sum(1 for m in msgs if m.attempt > 1),
        )
        if held is not None:
            if len(held) > 65_536:  # deliveries never settled on this stream (timed out)
                held.clear()
            for m, tp in zip(msgs, parents, strict=True):
                held[m.message_id] = tp

    @rpc
    async def Send(self, request: pb.SendRequest, context: grpc.aio.ServicerContext) -> pb.SendResponse:
        with self._send_scope(incoming(context), request) as scope:
            if scope.traceparent:
                request.headers[TRACEPARENT] = scope.traceparent
            res = await self.mailbox.send(send_from_pb(request, now_us(), self._max_payload))
            scope.set("messaging.message.id", res.message_ids[0] if len(res.message_ids) == 1 else None)
        return pb.SendResponse(message_ids=res.message_ids, duplicate=res.duplicate)

    @stream_rpc
    async def Publish(
        self, requests: AsyncIterator[pb.PublishRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.PublishResponse]:
        """Publisher confirms: each entry is sent as Send would send it (sharing commits with the
        others in flight) and confirmed in the order written; at most PUBLISH_WINDOW unconfirmed."""
        await context.send_initial_metadata((("a2a-publish-window", str(PUBLISH_WINDOW)),))
        parent = incoming(context)
        window = asyncio.Semaphore(PUBLISH_WINDOW)
        confirms: asyncio.Queue[asyncio.Future[pb.PublishResponse] | None] = asyncio.Queue()

        async def read() -> None:
            try:
                async for req in requests:
                    await window.acquire()  # backpressure: no further read until a confirm
                    confirms.put_nowait(asyncio.ensure_future(self._publish_one(req, parent)))
            finally:
                confirms.put_nowait(None)

        reader = asyncio.ensure_future(read())
        try:
            while (confirm := await confirms.get()) is not None:
                resp = await confirm
                window.release()
                yield resp
            await reader  # a broken request stream ends the call with its error
        finally:
            reader.cancel()

    async def _publish_one(self, req: pb.PublishRequest, parent: str | None) -> pb.PublishResponse:
        try:
            if not may_act_as(req.message.sender_id):
                who = req.message.sender_id
                raise PermissionDenied(
                    f"message.sender_id: {who!r} is not the caller (acting as another agent)"
                )
            answered = charge(SEND, req.message)  # as a Send: calls, bytes, the recipient's cap
            try:
                with self._send_scope(parent, req.message) as scope:
                    if scope.traceparent:
                        req.message.headers[TRACEPARENT] = scope.traceparent
                    res = await self.mailbox.send(
                        send_from_pb(req.message, now_us(), self._max_payload, "message.")
                    )
            finally:
                answered()
        except Exception as exc:
            code, message = status_of(exc)
            return pb.PublishResponse(sequence=req.sequence, code=code.value[0], error=message)
        return pb.PublishResponse(sequence=req.sequence, message_ids=res.message_ids, duplicate=res.duplicate)

    @rpc
    async def SendBatch(
        self, request: pb.SendBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.SendBatchResponse:
        n = len(request.messages)
        if not 1 <= n <= MAX_BATCH_SEND:
            raise InvalidArgument("messages", f"must hold 1-{MAX_BATCH_SEND} messages (got {n})")
        parent = incoming(context)
        with self.tracing.scope("send", parent, "producer", {"messaging.batch.message_count": n}) as scope:
            if scope.traceparent:  # a message's own traceparent header wins over the call's
                for req in request.messages:
                    if TRACEPARENT not in req.headers:
                        req.headers[TRACEPARENT] = scope.traceparent
            now = now_us()
            msgs = [
                send_from_pb(req, now, self._max_payload, f"messages[{i}].")
                for i, req in enumerate(request.messages)
            ]
            results = await self.mailbox.send_batch(msgs)
        resp = pb.SendBatchResponse()
        add = resp.results.add  # built in place: no copy into the repeated field
        for r in results:
            if r.duplicate:
                add(message_ids=r.message_ids, duplicate=True)
            else:
                add(message_ids=r.message_ids)
        return resp

    def _subscribe_input(self, request: pb.SubscribeRequest) -> SubscribeInput:
        ack_deadline = dur_us(request, "ack_deadline")
        return check_subscribe(
            request.agent_id,
            request.max_in_flight,
            self._ack_deadline_us if ack_deadline is None else ack_deadline,
            request.max_batch,
            request.max_response_bytes,
        )

    @stream_rpc
    async def Consume(
        self, requests: AsyncIterator[pb.ConsumeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ConsumeResponse]:
        """Subscribe with in-band acks: deliveries and, in request order, each request's
        confirmation once its acks and nacks are committed (concurrent ones share commits)."""
        first = await anext(aiter(requests), None)
        if first is None or not first.HasField("subscribe"):
            raise InvalidArgument("subscribe", "the first request must open the subscription")
        inp = self._subscribe_input(first.subscribe)
        if not may_act_as(inp.agent_id):
            raise PermissionDenied(f"subscribe.agent_id: {inp.agent_id!r} is not the caller")
        sub = await self.mailbox.subscribe(inp)
        context.add_done_callback(lambda _ctx: sub.end())
        await context.send_initial_metadata(())
        held: dict[str, str | None] | None = {} if self.tracing.on else None  # deliver spans, by id

        async def deliveries() -> AsyncIterator[tuple[pb.SubscribeResponse, list[Message]]]:
            async for msgs in sub.deliveries():
                for item in split_deliveries(msgs, inp.max_response_bytes):
                    yield item

        async def settle(req: pb.ConsumeRequest) -> pb.ConsumeConfirm:
            if req.HasField("subscribe"):
                raise InvalidArgument("subscribe", "only the first request opens the subscription")
            return await self._settle(inp.agent_id, req, held)

        try:
            async for ready in duplex(deliveries(), requests, settle):
                for push, confirm in frames(ready, _is_consume_confirm):
                    if push is None:
                        yield pb.ConsumeResponse(confirm=confirm)
                        continue
                    resp, sent = push
                    if held is not None:
                        self._delivered(sent, held)
                    sub.sending = sent  # not transmitted until the write completes (see Subscribe)
                    yield pb.ConsumeResponse(messages=resp.messages, confirm=confirm)
                    sub.sending = []
        finally:
            sub.end()

    async def _settle(
        self, agent_id: str, req: pb.ConsumeRequest, held: dict[str, str | None] | None
    ) -> pb.ConsumeConfirm:
        """One Consume request's acks, then its nacks."""
        acked = requeued = dead = 0
        try:
            charge(ACK if req.ack_ids or not req.nack_ids else NACK, req)  # as the unary call is
            if req.ack_ids:
                ids = check_ids(list(req.ack_ids), "ack_ids")
                if held is not None:  # one ack span for the request, under or linked to the messages'
                    self.tracing.batch("ack", [held.pop(i, None) for i in ids], {})
                acked = await self.mailbox.ack(agent_id, ids)
            if req.nack_ids:
                if held is not None:
                    for message_id in req.nack_ids:
                        held.pop(message_id, None)
                delay = dur_us(req, "nack_delay") or 0
                nack = check_nack(
                    agent_id, list(req.nack_ids), delay, req.reject, req.reason, "nack_ids", "nack_delay"
                )
                requeued, dead = await self.mailbox.nack(nack)
        except Exception as exc:
            code, message = status_of(exc)
            return pb.ConsumeConfirm(sequence=req.sequence, code=code.value[0], error=message)
        return pb.ConsumeConfirm(sequence=req.sequence, acked=acked, requeued=requeued, dead_lettered=dead)

    @stream_rpc
    async def Subscribe(
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SubscribeResponse]:
        inp = self._subscribe_input(request)
        sub = await self.mailbox.subscribe(inp)
        # However the call ends (even cancelled while the generator is suspended), release at once.
        context.add_done_callback(lambda _ctx: sub.end())
        # Initial metadata tells the client the subscription is live: anything committed after it
        # is pushed on this stream (or a sibling stream of the same agent).
        await context.send_initial_metadata(())
        async for msgs in sub.deliveries():
            for resp, sent in split_deliveries(msgs, inp.max_response_bytes):
                if self.tracing.on:
                    self._delivered(sent)
                # Until the write completes (the generator resumes), these are not transmitted:
                # if the stream ends meanwhile, their attempt is given back.
                sub.sending = sent
                yield resp
                sub.sending = []

    @rpc
    async def Ack(self, request: pb.AckRequest, context: grpc.aio.ServicerContext) -> pb.AckResponse:
        agent_id = check_id(request.agent_id, "agent_id")
        ids = check_ids(list(request.message_ids))
        parent = incoming(context)
        with self.tracing.scope("ack", parent, "consumer", {"messaging.batch.message_count": len(ids)}):
            acked = await self.mailbox.ack(agent_id, ids)
        return pb.AckResponse(acked=acked)

    @rpc
    async def Nack(self, request: pb.NackRequest, context: grpc.aio.ServicerContext) -> pb.NackResponse:
        inp = check_nack(
            request.agent_id,
            list(request.message_ids),
            dur_us(request, "delay") or 0,
            request.reject,
            request.reason,
        )
        requeued, dead = await self.mailbox.nack(inp)
        return pb.NackResponse(requeued=requeued, dead_lettered=dead)

    @rpc
    async def GetMessage(
        self, request: pb.GetMessageRequest, context: grpc.aio.ServicerContext
    ) -> pb.Message:
        message_id = check_id(request.message_id, "message_id")
        m = await self.mailbox.get(message_id)
        if not may_read_message(m.sender_id, m.recipient_id):  # answered as if it did not exist
            raise NotFound(f"message {message_id!r} not found")
        return message_to_pb(m)

    @rpc
    async def ListMessages(
        self, request: pb.ListMessagesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMessagesResponse:
        token = decode_page_token(request.page_token, 1)
        if token is not None and (type(token[0]) is not int or not 0 <= token[0] < 2**63):
            raise InvalidArgument("page_token", "is not a token this broker issued")
        status = enum_value(pb.MessageStatus, request.status, "status")
        flt = MessageFilter(
            message_type=request.message_type or None,
            conversation_id=request.conversation_id or None,
            correlation_id=request.correlation_id or None,
            sender_id=request.sender_id or None,
            recipient_id=request.recipient_id or None,
            party=reader_scope(),
            status=PB_TO_STATUS.get(status),
            created_after=ts_us(request, "created_after"),
            created_before=ts_us(request, "created_before"),
            page_size=page_size(request.page_size),
            after_seq=token[0] if token else None,
        )
        msgs, last = await self.mailbox.list(flt)
        page = [message_to_pb(m) for m in msgs]
        if (n := fitting(page)) < len(page):  # under a client's default receive limit: the rest next
            page, last = page[:n], msgs[n - 1].seq
        if request.fold_broadcasts:
            page = _fold_broadcasts(page)
        return pb.ListMessagesResponse(
            messages=page,
            next_page_token=encode_page_token(last) if last is not None else "",
        )

    @rpc
    async def ListConversations(
        self, request: pb.ListConversationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListConversationsResponse:
        token = decode_page_token(request.page_token, 1)
        if token is not None and type(token[0]) is not str:
            raise InvalidArgument("page_token", "is not a token this broker issued")
        participant = check_id(request.participant, "participant") if request.participant else None
        found, last = await self.mailbox.conversations(
            participant, token[0] if token else None, page_size(request.page_size)
        )
        resp = pb.ListConversationsResponse(next_page_token=encode_page_token(last) if last else "")
        for c in found:
            x = resp.conversations.add(
                conversation_id=c.conversation_id, participants=c.participants, message_count=c.message_count
            )
            set_us(x.last_activity, c.last_activity)
        return resp

    @rpc
    async def Requeue(
        self, request: pb.RequeueRequest, context: grpc.aio.ServicerContext
    ) -> pb.RequeueResponse:
        requeued = await self.mailbox.requeue(check_ids(list(request.message_ids)))
        return pb.RequeueResponse(requeued=requeued)

    @rpc
    async def Purge(self, request: pb.PurgeRequest, context: grpc.aio.ServicerContext) -> pb.PurgeResponse:
        status = enum_value(pb.MessageStatus, request.status, "status")
        if not 0 <= request.limit <= MAX_PURGE:
            raise InvalidArgument("limit", f"must be between 1 and {MAX_PURGE} (0: {MAX_PURGE})")
        purged = await self.mailbox.purge(
            PB_TO_STATUS.get(status) or MessageStatus.FAILED,
            ts_us(request, "created_before"),
            request.limit or MAX_PURGE,
        )
        return pb.PurgeResponse(purged=purged)
