"""Protobuf <-> message values, for the Messaging servicer: requests in, messages and
deliveries out (responses of a bounded size), broadcasts folded for listing."""

from __future__ import annotations

from ..core.streams import chunks
from ..domain.subjects import check_subject
from ..models.messages import (
    IN_REPLY_TO,
    Message,
    MessageStatus,
    NewMessage,
    SubscribeInput,
    Target,
    TargetKind,
    check_send,
    check_subscribe,
)
from ..pb import messaging_pb2 as pb
from .convert import dur_us, framed_size, ts_fields, ts_us

STATUS_TO_PB = {
    MessageStatus.PENDING: pb.MESSAGE_STATUS_PENDING,
    MessageStatus.DELIVERED: pb.MESSAGE_STATUS_DELIVERED,
    MessageStatus.PROCESSED: pb.MESSAGE_STATUS_PROCESSED,
    MessageStatus.FAILED: pb.MESSAGE_STATUS_FAILED,
    MessageStatus.EXPIRED: pb.MESSAGE_STATUS_EXPIRED,
}
PB_TO_STATUS = {v: k for k, v in STATUS_TO_PB.items()}
KIND_TO_PB = {
    TargetKind.DIRECT: pb.TARGET_KIND_DIRECT,
    TargetKind.BROADCAST: pb.TARGET_KIND_BROADCAST,
    TargetKind.ANYCAST: pb.TARGET_KIND_ANYCAST,
    TargetKind.SUBJECT: pb.TARGET_KIND_SUBJECT,
}


_DIRECT: dict[str, Target] = {}


def _target(req: pb.SendRequest, field: str) -> Target | None:
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
    if which == "subject":
        return Target(TargetKind.SUBJECT, subject=check_subject(t.subject, field + "target.subject"))
    return None


def send_from_pb(req: pb.SendRequest, now: int, max_payload: int, field: str = "") -> NewMessage:
    expiry = req.WhichOneof("expiry")
    return check_send(
        field=field,
        now=now,
        max_payload=max_payload,
        sender_id=req.sender_id,
        target=_target(req, field),
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
        ordering_key=req.ordering_key,
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
        "attempt": m.attempt,
        "max_attempts": m.max_attempts,
        "created_at": ts_fields(m.created_at),
    }
    if m.status is not None:  # None: a subject message as sent
        kw["status"] = STATUS_TO_PB[m.status]
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
    if m.subject is not None:
        kw["subject"] = m.subject
        kw["sequence"] = m.seq
        if m.subscription is not None:
            kw["subscription"] = m.subscription
        if m.ordering_key is not None:
            kw["ordering_key"] = m.ordering_key
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
    goes alone (``streams.chunks``). One response in the common case (checked on the whole first)."""
    resp = deliveries_to_pb(msgs)
    if resp.ByteSize() <= max_bytes:
        return [(resp, msgs)]
    built = list(resp.messages)
    runs = chunks([framed_size(x.ByteSize()) for x in built], max_bytes)
    return [(pb.SubscribeResponse(messages=built[a:b]), msgs[a:b]) for a, b in runs]


def fold_broadcasts(page: list[pb.Message]) -> list[pb.Message]:
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


def is_consume_confirm(x: object) -> bool:
    return isinstance(x, pb.ConsumeConfirm)


def destination(m: Message) -> str | None:
    return m.subscription or m.recipient_id or m.target_capability or m.subject


def subscribe_input(request: pb.SubscribeRequest, default_ack_deadline_us: int) -> SubscribeInput:
    ack_deadline = dur_us(request, "ack_deadline")
    return check_subscribe(
        request.agent_id,
        request.max_in_flight,
        default_ack_deadline_us if ack_deadline is None else ack_deadline,
        request.max_batch,
        request.max_response_bytes,
        request.subscription,
        ack_deadline is not None,
    )
