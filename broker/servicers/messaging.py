"""Messaging servicer: protobuf <-> mailbox calls (conversions in messaging_pb.py; the streams'
shapes are the core's: subscriptions.py, streams.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import grpc

from ..clock import s_to_us
from ..core.mailbox import Mailbox
from ..core.streams import windowed
from ..domain.subjects import check_subject
from ..errors import InvalidArgument, NotFound, PermissionDenied
from ..models.common import check_id, decode_page_token, encode_page_token, page_size
from ..models.messages import (
    MAX_BATCH_SEND,
    PUBLISH_WINDOW,
    Message,
    MessageFilter,
    MessageStatus,
    NewMessage,
    SendResult,
    check_ids,
    check_nack,
)
from ..pb import messaging_pb2 as pb
from ..pb import messaging_pb2_grpc as pb_grpc
from ..security.identity import charge, may_act_as, may_read_message, reader_scope
from .convert import dur_us, enum_value, fitting, set_us, ts_us
from .errors import rpc, status_of, stream_rpc
from .messaging_pb import (
    PB_TO_STATUS,
    destination,
    fold_broadcasts,
    is_consume_confirm,
    message_to_pb,
    send_from_pb,
    split_deliveries,
    subscribe_input,
)
from .subscriptions import SubscriptionRpcs
from .tracing import TRACEPARENT, SpanScope, Tracing, incoming, valid

MAX_PURGE = 10_000
# The unary twins a request stream's entries are charged as (security quotas).
SEND = "/a2a.broker.v1.Messaging/Send"
ACK = "/a2a.broker.v1.Messaging/Ack"
NACK = "/a2a.broker.v1.Messaging/Nack"


def _publish_weight(req: pb.PublishRequest) -> int:
    """What a Publish entry counts against the window: its messages (a batched entry)."""
    n = len(req.messages)
    if not n:
        return 1
    if req.HasField("message"):
        raise InvalidArgument("messages", "not with message in the same request")
    if n > PUBLISH_WINDOW:
        raise InvalidArgument("messages", f"must hold at most {PUBLISH_WINDOW} messages (got {n})")
    return n


class MessagingServicer(SubscriptionRpcs, pb_grpc.MessagingServicer):
    def __init__(self, mailbox: Mailbox, tracing: Tracing | None = None) -> None:
        self.mailbox = mailbox
        self.topics = mailbox.topics
        self.tracing = tracing or Tracing(False)
        self._max_payload = mailbox.settings.max_payload_bytes
        self._ack_deadline_us = s_to_us(mailbox.settings.ack_deadline_s)
        self._now_us = mailbox.clock.now_us  # a message's TTL and schedule are read against it

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
                "messaging.destination.name": destination(first),
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
            res = await self.mailbox.send(send_from_pb(request, self._now_us(), self._max_payload))
            scope.set("messaging.message.id", res.message_ids[0] if len(res.message_ids) == 1 else None)
        return pb.SendResponse(message_ids=res.message_ids, duplicate=res.duplicate)

    @stream_rpc
    async def Publish(
        self, requests: AsyncIterator[pb.PublishRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.PublishResponse]:
        """Publisher confirms: each entry is sent as Send would send it (sharing commits with the
        others in flight) and confirmed in the order written; at most PUBLISH_WINDOW unconfirmed.
        A batched entry (``messages``) is several messages, each judged on its own, confirmed
        together, each counting against the window."""
        # The window, and that it takes batched entries (`messages`).
        await context.send_initial_metadata(
            (("a2a-publish-window", str(PUBLISH_WINDOW)), ("a2a-publish-batch", "1"))
        )
        parent = incoming(context)
        async for resp in windowed(
            requests, lambda req: self._publish(req, parent), PUBLISH_WINDOW, _publish_weight
        ):
            yield resp

    async def _publish(self, req: pb.PublishRequest, parent: str | None) -> pb.PublishResponse:
        if not req.messages:
            code, error, res = await self._publish_one(req.message, parent, "message.")
            if res is None:
                return pb.PublishResponse(sequence=req.sequence, code=code, error=error)
            return pb.PublishResponse(
                sequence=req.sequence, message_ids=res.message_ids, duplicate=res.duplicate
            )
        if parent is None and not self.tracing.on:
            outs = await self._publish_many(req.messages)
        else:  # each message with its send span
            outs = await asyncio.gather(
                *(self._publish_one(m, parent, f"messages[{i}].") for i, m in enumerate(req.messages))
            )
        resp = pb.PublishResponse(sequence=req.sequence)
        add = resp.results.add  # built in place: no copy into the repeated field
        for code, error, res in outs:
            if res is None:
                add(code=code, error=error)
            elif res.duplicate:
                add(message_ids=res.message_ids, duplicate=True)
            else:
                add(message_ids=res.message_ids)
        return resp

    async def _publish_many(self, msgs: Sequence[pb.SendRequest]) -> list[tuple[int, str, SendResult | None]]:
        """The messages of a batched entry without tracing, as ``_publish_one`` would send each
        (the same checks, charges and answers), submitted together: no task per message. A reply
        or a message carrying a traceparent header goes the way of ``_publish_one``."""
        outs: list[tuple[int, str, SendResult | None] | None] = [None] * len(msgs)
        now = self._now_us()
        batch: list[tuple[int, NewMessage, Callable[[], None]]] = []
        slow: list[tuple[int, Awaitable[tuple[int, str, SendResult | None]]]] = []
        for i, msg in enumerate(msgs):
            field = f"messages[{i}]."
            if msg.in_reply_to or (msg.headers and TRACEPARENT in msg.headers):
                slow.append((i, self._publish_one(msg, None, field)))
                continue
            try:
                if not may_act_as(msg.sender_id):
                    raise PermissionDenied(
                        f"{field}sender_id: {msg.sender_id!r} is not the caller (acting as another agent)"
                    )
                answered = charge(SEND, msg)
                try:
                    batch.append((i, send_from_pb(msg, now, self._max_payload, field), answered))
                except BaseException:
                    answered()
                    raise
            except Exception as exc:
                code, message = status_of(exc)
                outs[i] = (code.value[0], message, None)
        try:
            futs: list[asyncio.Future[SendResult]] = self.mailbox.send_many([m for _, m, _ in batch])
        except Exception as exc:  # shutting down: none of them stored
            code, message = status_of(exc)
            futs = []
            for i, _, answered in batch:
                answered()
                outs[i] = (code.value[0], message, None)
            batch = []
        try:
            slow_outs = await asyncio.gather(*(c for _, c in slow)) if slow else []
            if futs:
                await asyncio.wait(futs)
        finally:  # answered (or the stream ended): no longer in flight
            for _, _, answered in batch:
                answered()
        for (i, _), out in zip(slow, slow_outs, strict=True):
            outs[i] = out
        for (i, _, _), fut in zip(batch, futs, strict=True):
            refused = fut.exception()
            if refused is None:
                outs[i] = (0, "", fut.result())
            else:
                code, message = status_of(refused)
                outs[i] = (code.value[0], message, None)
        done = [o for o in outs if o is not None]
        assert len(done) == len(outs)  # each message answered
        return done

    async def _publish_one(
        self, msg: pb.SendRequest, parent: str | None, field: str
    ) -> tuple[int, str, SendResult | None]:
        """One message of a Publish entry, as Send would send it: (0, "", its result), or the
        code and message that refused it (and nothing changed)."""
        try:
            if not may_act_as(msg.sender_id):
                raise PermissionDenied(
                    f"{field}sender_id: {msg.sender_id!r} is not the caller (acting as another agent)"
                )
            answered = charge(SEND, msg)  # as a Send: calls, bytes, the recipient's cap
            try:
                with self._send_scope(parent, msg) as scope:
                    if scope.traceparent:
                        msg.headers[TRACEPARENT] = scope.traceparent
                    res = await self.mailbox.send(send_from_pb(msg, self._now_us(), self._max_payload, field))
            finally:
                answered()
        except Exception as exc:
            code, message = status_of(exc)
            return code.value[0], message, None
        return 0, "", res

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
            now = self._now_us()
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

    @stream_rpc
    async def Consume(
        self, requests: AsyncIterator[pb.ConsumeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ConsumeResponse]:
        """Subscribe with in-band acks: deliveries and, in request order, each request's
        confirmation once its acks and nacks are committed (concurrent ones share commits)."""
        first = await anext(aiter(requests), None)
        if first is None or not first.HasField("subscribe"):
            raise InvalidArgument("subscribe", "the first request must open the subscription")
        inp = subscribe_input(first.subscribe, self._ack_deadline_us)
        if not may_act_as(inp.agent_id):
            raise PermissionDenied(f"subscribe.agent_id: {inp.agent_id!r} is not the caller")
        sub = await self.mailbox.subscribe(inp)
        context.add_done_callback(lambda _ctx: sub.end())
        await context.send_initial_metadata(())
        held: dict[str, str | None] | None = {} if self.tracing.on else None  # deliver spans, by id

        async def settle(req: pb.ConsumeRequest) -> pb.ConsumeConfirm | None:
            if req.HasField("subscribe"):
                raise InvalidArgument("subscribe", "only the first request opens the subscription")
            confirm = await self._settle(inp.agent_id, req, held)
            # Committed (or refused) by now either way; no_confirm: no frame unless refused.
            return None if req.no_confirm and not confirm.code else confirm

        def split(msgs: list[Message]) -> list[tuple[pb.SubscribeResponse, list[Message]]]:
            return split_deliveries(msgs, inp.max_response_bytes)

        async for push, confirm in sub.consume(split, requests, settle, is_consume_confirm):
            if push is None:
                yield pb.ConsumeResponse(confirm=confirm)
                continue
            resp, sent = push
            if held is not None:
                self._delivered(sent, held)
            yield pb.ConsumeResponse(messages=resp.messages, confirm=confirm)

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
        inp = subscribe_input(request, self._ack_deadline_us)
        sub = await self.mailbox.subscribe(inp)
        # However the call ends (even cancelled while the generator is suspended), release at once.
        context.add_done_callback(lambda _ctx: sub.end())
        # Initial metadata tells the client the subscription is live: anything committed after it
        # is pushed on this stream (or a sibling stream of the same agent).
        await context.send_initial_metadata(())
        # Until the write completes (the generator resumes), a response's deliveries count as
        # not transmitted: if the stream ends meanwhile, their attempt is given back.
        async for resp, sent in sub.frames(lambda msgs: split_deliveries(msgs, inp.max_response_bytes)):
            if self.tracing.on:
                self._delivered(sent)
            yield resp

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
            subscription=check_id(request.subscription, "subscription") if request.subscription else None,
            subject=check_subject(request.subject, "subject") if request.subject else None,
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
            page = fold_broadcasts(page)
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
