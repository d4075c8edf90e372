"""Messages: what the mailbox stores and the inputs it accepts.

``Send`` is the hottest path of the broker, so its input is checked by a plain
function (``check_send``) rather than a pydantic model: a 14-field model costs
about 4.4 us per message against 0.4 us here, which is 17 % of a core at the
40,000 msgs/s ``SendBatch`` target. The rules and the error messages
("field: rule") are the same as everywhere else. The colder inputs
(list filters) are pydantic ``Input`` models.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ..errors import InvalidArgument
from .common import ID_PATTERN, NUL, NUL_RULE, Input

DEFAULT_PRIORITY = 5
DEFAULT_MAX_ATTEMPTS = 5
MAX_MAX_ATTEMPTS = 100
MAX_TEXT = 128
MAX_HEADERS = 64
MAX_HEADER_VALUE = 512
MAX_BATCH_SEND = 1000
# The most publishes one Publish stream holds unconfirmed (the broker reads no further until one is
# confirmed): enough to fill the writer's commits, small enough to bound a stream's memory.
PUBLISH_WINDOW = 1000
MAX_IDS = 10_000
MAX_REASON = 1024
MAX_IN_FLIGHT = 10_000
DEFAULT_RESPONSE_BYTES = 4 * 1024 * 1024  # gRPC's default receive limit
MIN_RESPONSE_BYTES = 1024
MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # the server's own send limit (broker/server.py)
MAX_NACK_DELAY_US = 7 * 24 * 3_600_000_000
MAX_TIME_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z, the end of the Timestamp range

_ID_RE = re.compile(ID_PATTERN)


class MessageStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    PROCESSED = "processed"
    FAILED = "failed"  # dead letter
    EXPIRED = "expired"


class TargetKind(enum.StrEnum):
    DIRECT = "direct"
    BROADCAST = "broadcast"
    ANYCAST = "anycast"
    SUBJECT = "subject"  # every subscription whose filter matches (broker/domain/subjects.py)


@dataclass(slots=True)
class Target:
    """Who receives a message: one agent, every agent (with a capability), any one agent with one,
    or the subscriptions of a subject."""

    kind: TargetKind
    agent_id: str | None = None
    capability: str | None = None
    include_sender: bool = False
    subject: str | None = None


@dataclass(slots=True)
class NewMessage:
    """A validated send. Times are absolute microseconds (a TTL is resolved at validation)."""

    sender_id: str
    target: Target
    message_type: str
    payload: bytes
    content_type: str
    priority: int
    correlation_id: str | None
    conversation_id: str | None
    deliver_after: int | None
    expires_at: int | None
    max_attempts: int
    idempotency_key: str | None
    headers: dict[str, str]
    # Refuse unless a registered agent would receive it now (else it waits for its recipient).
    require_recipient: bool = False
    # The message this one answers (its conversation and correlation are inherited).
    in_reply_to: str | None = None
    # A subject message's key for per-key ordering in the subscriptions that order by key.
    ordering_key: str | None = None


@dataclass(slots=True)
class SendResult:
    message_ids: list[str]
    duplicate: bool = False
    recipients: list[str] | None = None  # of a broadcast's copies (storage's wake-ups), in id order
    subscriptions: list[int] | None = None  # that a subject message was delivered to (wake-ups)


@dataclass(slots=True)
class Message:
    """One stored copy of a message, as addressed to one recipient.

    Not frozen: a frozen dataclass sets its 25 fields through object.__setattr__ (3 us against
    0.5 us), and a drain builds tens of thousands of these a second."""

    seq: int
    message_id: str
    send_id: str
    sender_id: str
    recipient_id: str | None
    target_kind: TargetKind
    target_capability: str | None
    message_type: str
    payload: bytes
    content_type: str
    priority: int
    correlation_id: str | None
    conversation_id: str | None
    headers: dict[str, str]
    idempotency_key: str | None
    status: MessageStatus | None  # None: a subject message as sent (its deliveries have one each)
    attempt: int
    max_attempts: int
    created_at: int
    deliver_after: int | None
    expires_at: int | None
    delivered_at: int | None
    ack_deadline: int | None
    processed_at: int | None
    last_error: str | None
    # Pending with nobody to go to (recipient or capability not registered): set by reads only.
    awaiting_recipient: bool = False
    # A subject message (``seq`` is then its sequence number) and, for a delivery of it, the
    # subscription it was delivered to.
    subject: str | None = None
    subscription: str | None = None
    ordering_key: str | None = None


_known_ids: set[str] = set()  # ids that passed the pattern (the regex is the costly check)


def _id(value: str, prefix: str, name: str) -> None:
    if value in _known_ids:
        return
    if not value:
        raise InvalidArgument(prefix + name, "is required")
    if len(value) > MAX_TEXT or not _ID_RE.fullmatch(value):
        raise InvalidArgument(prefix + name, "must be 1-128 letters, digits or . _ : @ -")
    if len(_known_ids) > 100_000:
        _known_ids.clear()
    _known_ids.add(value)


def check_send(
    *,
    field: str,
    now: int,
    max_payload: int,
    sender_id: str,
    target: Target | None,
    message_type: str = "",
    payload: bytes = b"",
    content_type: str = "",
    priority: int | None = None,
    correlation_id: str = "",
    conversation_id: str = "",
    deliver_after: int | None = None,
    ttl_us: int | None = None,
    expires_at: int | None = None,
    max_attempts: int | None = None,
    idempotency_key: str = "",
    headers: dict[str, str] | None = None,
    require_recipient: bool = False,
    in_reply_to: str = "",
    ordering_key: str = "",
) -> NewMessage:
    """Validate one send; ``field`` prefixes every field name in errors (e.g. ``messages[3].``).

    Written for the common case to cost little (see the module docstring): names of fields are
    only put together when one is wrong."""
    _id(sender_id, field, "sender_id")
    if target is None:
        raise InvalidArgument(field + "target", "is required: set one of agent_id, broadcast, anycast")
    kind = target.kind
    if kind is TargetKind.DIRECT:
        _id(target.agent_id or "", field, "target.agent_id")
    elif kind is TargetKind.SUBJECT:  # its syntax is the domain's (subjects.check_subject)
        if NUL in (target.subject or ""):
            raise InvalidArgument(field + "target.subject", NUL_RULE)
    else:
        cap = target.capability or ""
        name = "target.anycast.capability" if kind is TargetKind.ANYCAST else "target.broadcast.capability"
        if not cap and kind is TargetKind.ANYCAST:
            raise InvalidArgument(field + name, "is required")
        if len(cap) > MAX_TEXT:
            raise InvalidArgument(field + name, f"must be at most {MAX_TEXT} characters")
        if NUL in cap:
            raise InvalidArgument(field + name, NUL_RULE)
    if (
        len(message_type) > MAX_TEXT
        or len(content_type) > MAX_TEXT
        or len(correlation_id) > MAX_TEXT
        or len(conversation_id) > MAX_TEXT
        or len(idempotency_key) > MAX_TEXT
    ):
        texts = ("message_type", "content_type", "correlation_id", "conversation_id", "idempotency_key")
        values = (message_type, content_type, correlation_id, conversation_id, idempotency_key)
        name = next(n for n, v in zip(texts, values, strict=True) if len(v) > MAX_TEXT)
        raise InvalidArgument(field + name, f"must be at most {MAX_TEXT} characters")
    if (
        NUL in message_type
        or NUL in content_type
        or NUL in correlation_id
        or NUL in conversation_id
        or NUL in idempotency_key
    ):
        texts = ("message_type", "content_type", "correlation_id", "conversation_id", "idempotency_key")
        values = (message_type, content_type, correlation_id, conversation_id, idempotency_key)
        name = next(n for n, v in zip(texts, values, strict=True) if NUL in v)
        raise InvalidArgument(field + name, NUL_RULE)
    if ordering_key:
        if kind is not TargetKind.SUBJECT:
            raise InvalidArgument(field + "ordering_key", "is for a message sent to a subject only")
        if len(ordering_key) > MAX_TEXT:
            raise InvalidArgument(field + "ordering_key", f"must be at most {MAX_TEXT} characters")
        if NUL in ordering_key:
            raise InvalidArgument(field + "ordering_key", NUL_RULE)
    if len(payload) > max_payload:
        raise InvalidArgument(field + "payload", f"must be at most {max_payload} bytes (got {len(payload)})")
    if priority is None:
        priority = DEFAULT_PRIORITY
    elif not 0 <= priority <= 10:
        raise InvalidArgument(field + "priority", "must be between 0 and 10")
    if max_attempts is None:
        max_attempts = DEFAULT_MAX_ATTEMPTS
    elif not 1 <= max_attempts <= MAX_MAX_ATTEMPTS:
        raise InvalidArgument(field + "max_attempts", f"must be between 1 and {MAX_MAX_ATTEMPTS}")
    if ttl_us is not None:
        if ttl_us <= 0:
            raise InvalidArgument(field + "ttl", "must be positive")
        if ttl_us > MAX_TIME_US - now:
            raise InvalidArgument(field + "ttl", "must end before the year 10000")
        expires_at = now + ttl_us
    elif expires_at is not None and not now < expires_at <= MAX_TIME_US:
        raise InvalidArgument(field + "expires_at", "must be in the future, before the year 10000")
    if deliver_after is not None and deliver_after > MAX_TIME_US:
        raise InvalidArgument(field + "deliver_after", "must be before the year 10000")
    if deliver_after is not None and deliver_after <= now:
        deliver_after = None  # due already: deliverable at once
    if expires_at is not None and deliver_after is not None and expires_at <= deliver_after:
        raise InvalidArgument(field + "expires_at", "must be after deliver_after")
    if headers:
        if len(headers) > MAX_HEADERS:
            raise InvalidArgument(field + "headers", f"at most {MAX_HEADERS} entries")
        for k, v in headers.items():
            if not 1 <= len(k) <= MAX_TEXT:
                raise InvalidArgument(field + "headers", f"keys must be 1-{MAX_TEXT} characters")
            if len(v) > MAX_HEADER_VALUE:
                raise InvalidArgument(
                    field + "headers", f"values must be at most {MAX_HEADER_VALUE} characters"
                )
            if NUL in k or NUL in v:
                raise InvalidArgument(field + "headers", NUL_RULE)
    return NewMessage(
        sender_id,
        target,
        message_type,
        payload,
        content_type,
        priority,
        correlation_id or None,
        conversation_id or None,
        deliver_after,
        expires_at,
        max_attempts,
        idempotency_key or None,
        headers or {},
        require_recipient,
        _reply_to(in_reply_to, field) if in_reply_to else None,
        ordering_key or None,
    )


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation as its messages show it: who took part, how many sends, the latest one."""

    conversation_id: str
    participants: list[str]
    message_count: int  # sends: a broadcast counts once
    last_activity: int


# The header a reply carries (set by the broker from SendRequest.in_reply_to).
IN_REPLY_TO = "a2a.in_reply_to"


def _reply_to(value: str, field: str) -> str:
    _id(value, field, "in_reply_to")
    return value


def check_ids(ids: list[str], field: str = "message_ids") -> list[str]:
    """1-10000 message ids, each well formed; duplicates folded (order kept)."""
    if not ids:
        raise InvalidArgument(field, "at least one id is required")
    if len(ids) > MAX_IDS:
        raise InvalidArgument(field, f"at most {MAX_IDS} ids")
    for i, value in enumerate(ids):
        if not value or len(value) > MAX_TEXT or not _ID_RE.fullmatch(value):
            raise InvalidArgument(f"{field}[{i}]", "must be 1-128 letters, digits or . _ : @ -")
    return list(dict.fromkeys(ids))


@dataclass(frozen=True, slots=True)
class SubscribeInput:
    agent_id: str
    max_in_flight: int
    ack_deadline_us: int
    max_batch: int
    max_response_bytes: int = DEFAULT_RESPONSE_BYTES
    # A subscription (CreateSubscription) to consume instead of the agent's own messages; then an
    # ack deadline the request did not set is the subscription's.
    subscription: str | None = None
    own_ack_deadline: bool = True


def check_subscribe(
    agent_id: str,
    max_in_flight: int,
    ack_deadline_us: int,
    max_batch: int,
    max_response_bytes: int = 0,
    subscription: str = "",
    own_ack_deadline: bool = True,
) -> SubscribeInput:
    """Subscription options (0 for max_in_flight / max_batch means the default, 100; for
    max_response_bytes, 4 MiB)."""
    _id(agent_id, "", "agent_id")
    if subscription:
        _id(subscription, "", "subscription")
    if not 0 <= max_in_flight <= MAX_IN_FLIGHT:
        raise InvalidArgument("max_in_flight", f"must be between 1 and {MAX_IN_FLIGHT} (0 means 100)")
    if not 1_000_000 <= ack_deadline_us <= 3_600_000_000:
        raise InvalidArgument("ack_deadline", "must be between 1 s and 1 h")
    if not 0 <= max_batch <= MAX_BATCH_SEND:
        raise InvalidArgument("max_batch", f"must be between 1 and {MAX_BATCH_SEND} (0 means 100)")
    if max_response_bytes and not MIN_RESPONSE_BYTES <= max_response_bytes <= MAX_RESPONSE_BYTES:
        raise InvalidArgument(
            "max_response_bytes",
            f"must be between {MIN_RESPONSE_BYTES} and {MAX_RESPONSE_BYTES}"
            f" (0 means {DEFAULT_RESPONSE_BYTES})",
        )
    return SubscribeInput(
        agent_id,
        max_in_flight or 100,
        ack_deadline_us,
        max_batch or 100,
        max_response_bytes or DEFAULT_RESPONSE_BYTES,
        subscription or None,
        own_ack_deadline,
    )


@dataclass(frozen=True, slots=True)
class NackInput:
    agent_id: str
    message_ids: list[str]
    delay_us: int
    reject: bool
    reason: str


def check_nack(
    agent_id: str,
    ids: list[str],
    delay_us: int,
    reject: bool,
    reason: str,
    ids_field: str = "message_ids",
    delay_field: str = "delay",
) -> NackInput:
    _id(agent_id, "", "agent_id")
    ids = check_ids(ids, ids_field)
    if not 0 <= delay_us <= MAX_NACK_DELAY_US:
        raise InvalidArgument(delay_field, "must be between 0 and 7 days")
    if len(reason) > MAX_REASON:
        raise InvalidArgument("reason", f"must be at most {MAX_REASON} characters")
    if NUL in reason:
        raise InvalidArgument("reason", NUL_RULE)
    return NackInput(agent_id, ids, delay_us, reject, reason)


class MessageFilter(Input):
    message_type: str | None = None
    conversation_id: str | None = None
    correlation_id: str | None = None
    sender_id: str | None = None
    recipient_id: str | None = None
    # Only the messages this subject sent or received (an agent id, or an id prefix ending in *).
    party: str | None = None
    status: MessageStatus | None = None
    created_after: int | None = None
    created_before: int | None = None
    # The deliveries of one subscription, or the messages sent to one subject, instead.
    subscription: str | None = None
    subject: str | None = None
    page_size: int = 100
    after_seq: int | None = None  # decoded page token
    newest_first: bool = False  # pages in descending seq (``after_seq``: the smallest seq so far)
