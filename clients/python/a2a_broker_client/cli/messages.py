"""``a2a-broker send``, ``subscribe`` and ``messages list|get|dead-letters|requeue|purge``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from ..client import BrokerClient
from ..models import Conversation, Message, MessageStatus, Target
from ._common import (
    duration,
    fields_table,
    jsonable,
    key_values,
    limited,
    paging_options,
    parse_time,
    payload_text,
    payload_value,
    positive_duration,
    positive_int,
    print_json,
    read_payload,
    runner,
    short,
    table,
    take,
    when,
)

STATUSES = [s.value for s in MessageStatus if s is not MessageStatus.UNSPECIFIED]


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    _add_send(sub, common)
    _add_subscribe(sub, common)
    p = sub.add_parser(
        "messages", help="inspect and repair messages", description="Inspect and repair messages."
    )
    s = p.add_subparsers(
        dest="messages_command",
        required=True,
    )

    ls = s.add_parser("list", parents=[common], help="list message copies (oldest first)")
    _filters(ls)
    ls.add_argument("--status", choices=STATUSES, help="only messages in this status")
    ls.set_defaults(func=runner(_list))

    th = s.add_parser("thread", parents=[common], help="a conversation's messages, oldest first")
    th.add_argument("conversation_id")
    th.add_argument("--limit", type=positive_int, default=1000)
    th.set_defaults(func=runner(_thread))

    cv = s.add_parser("conversations", parents=[common], help="list conversations (id order)")
    cv.add_argument("--participant", default="", help="only those this agent took part in")
    paging_options(cv, 100)
    cv.set_defaults(func=runner(_conversations))

    dl = s.add_parser("dead-letters", parents=[common], help="list dead letters (status failed)")
    _filters(dl)
    dl.set_defaults(func=runner(_dead_letters))

    get = s.add_parser("get", parents=[common], help="show one message copy")
    get.add_argument("message_id")
    get.set_defaults(func=runner(_get))

    rq = s.add_parser("requeue", parents=[common], help="put dead letters back into delivery")
    rq.add_argument("message_ids", nargs="+", metavar="MESSAGE_ID")
    rq.set_defaults(func=runner(_requeue))

    pg = s.add_parser("purge", parents=[common], help="delete dead letters (or processed/expired messages)")
    pg.add_argument(
        "--status", choices=["dead-letter", "processed", "expired"], default="dead-letter", help="which ones"
    )
    pg.add_argument(
        "--older-than", type=duration, metavar="AGE", help="created more than AGE ago (90s, 15m, 2h, 7d)"
    )
    pg.set_defaults(func=runner(_purge))


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sender", default="", help="sent by this agent")
    p.add_argument("--recipient", default="", help="addressed to this agent")
    p.add_argument("--conversation", default="", help="with this conversation id")
    p.add_argument("--correlation", default="", help="with this correlation id")
    p.add_argument("--type", dest="message_type", default="", help="of this message_type")
    p.add_argument("--since", type=parse_time, help="created at or after (ISO 8601, UTC by default)")
    p.add_argument("--until", type=parse_time, help="created before (ISO 8601)")
    paging_options(p, 100)


def _add_send(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "send",
        parents=[common],
        help="send a message",
        description="Send a message. PAYLOAD is text, '-' for stdin, or '@path' for a file; "
        "without --content-type, JSON text goes as application/json, other text as text/plain.",
    )
    p.add_argument("--from", dest="sender", required=True, help="the sending agent (must be registered)")
    to = p.add_mutually_exclusive_group(required=True)
    to.add_argument("--to", help="the recipient agent id")
    to.add_argument(
        "--broadcast",
        nargs="?",
        const="",
        metavar="CAPABILITY",
        help="every agent (only those with CAPABILITY if given)",
    )
    to.add_argument("--anycast", metavar="CAPABILITY", help="any one agent having CAPABILITY")
    to.add_argument(
        "--subject", help="a subject, such as orders.eu.created: every subscription whose filter matches it"
    )
    p.add_argument("payload", nargs="?", default=None)
    p.add_argument("--content-type", default="")
    p.add_argument("--type", dest="message_type", default="", help="application message type")
    p.add_argument("--priority", type=int, default=None, help="0-10, higher first (default 5)")
    p.add_argument("--correlation-id", default="")
    p.add_argument("--conversation-id", default="")
    p.add_argument(
        "--ttl",
        type=positive_duration,
        default=None,
        metavar="DURATION",
        help="expire after this long (90s, 15m, 2h, 7d)",
    )
    p.add_argument("--deliver-after", type=parse_time, default=None, help="not before this time (ISO 8601)")
    p.add_argument(
        "--max-attempts", type=int, default=None, help="deliveries before dead-lettering (default 5)"
    )
    p.add_argument("--idempotency-key", default="", help="a repeat with the same key stores nothing new")
    p.add_argument(
        "--ordering-key",
        default="",
        help="with --subject: one at a time per key in subscriptions ordering by key",
    )
    p.add_argument("--header", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    p.add_argument(
        "--require-recipient",
        action="store_true",
        help="refuse unless a registered agent would receive it now"
        " (by default a message to an agent or capability not registered yet waits for it)",
    )
    p.set_defaults(func=runner(_send))


def _add_subscribe(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "subscribe",
        parents=[common],
        help="receive an agent's messages (one JSON line each) and ack them",
        description="Receive the agent's messages, print each as one JSON line, then ack it "
        "(unless --no-ack). Runs until Ctrl-C, --count or --timeout.",
    )
    p.add_argument("agent_id")
    p.add_argument("--count", type=positive_int, default=None, help="exit after this many messages")
    p.add_argument("--timeout", type=duration, default=None, metavar="DURATION", help="exit after this long")
    p.add_argument("--max-in-flight", type=int, default=0, help="unacked messages outstanding (default 100)")
    p.add_argument(
        "--ack-deadline",
        type=positive_duration,
        default=None,
        metavar="DURATION",
        help="time to ack each (default 30s)",
    )
    p.add_argument("--no-ack", action="store_true", help="print without acking (they will be redelivered)")
    p.add_argument(
        "--subscription",
        default="",
        metavar="NAME",
        help="consume this subscription to subjects (shared with its other consumers) instead",
    )
    p.set_defaults(func=runner(_subscribe))


HEADERS = ["MESSAGE", "STATUS", "FROM", "TO", "TYPE", "PRI", "ATTEMPT", "CREATED (UTC)", "PAYLOAD"]


def _row(x: Message) -> list[Any]:
    return [
        x.message_id,
        x.status.value,
        x.sender_id,
        x.recipient_id or f"{x.target_kind.value}:{x.target_capability}",
        x.message_type,
        x.priority,
        f"{x.attempt}/{x.max_attempts}",
        when(x.created_at),
        payload_text(x.payload, x.content_type, 32),
    ]


async def _send(client: BrokerClient, ns: argparse.Namespace) -> int:
    payload, content_type = read_payload(ns.payload, ns.content_type)
    headers = key_values(ns.header, "--header")
    if ns.to is not None:
        target: Target | str = ns.to
    elif ns.anycast is not None:
        target = Target.anycast(ns.anycast)
    elif ns.subject is not None:
        target = Target.to_subject(ns.subject)
    else:
        target = Target.broadcast(ns.broadcast)
    res = await client.send(
        ns.sender,
        target,
        payload,
        content_type=content_type,
        message_type=ns.message_type,
        priority=ns.priority,
        correlation_id=ns.correlation_id,
        conversation_id=ns.conversation_id,
        ttl=ns.ttl,
        deliver_after=ns.deliver_after,
        max_attempts=ns.max_attempts,
        idempotency_key=ns.idempotency_key,
        headers=headers,
        require_recipient=ns.require_recipient,
        ordering_key=ns.ordering_key,
    )
    if ns.json:
        print_json(res)
    else:
        for mid in res.message_ids:
            print(mid)
        if not res.message_ids:
            print("(no recipient matched)")
        if res.duplicate:
            print("(duplicate: nothing new stored)")
    return 0


async def _subscribe(client: BrokerClient, ns: argparse.Namespace) -> int:
    # Acks on the same stream (Consume; Subscribe and unary acks against an older broker).
    stream = client.consume(
        ns.agent_id,
        max_in_flight=ns.max_in_flight,
        ack_deadline=ns.ack_deadline,
        subscription=ns.subscription,
    )
    msg: Message
    async for msg in limited(stream, ns.count, ns.timeout):
        # Printed (and flushed) before the ack: a message is acked only once it was written out.
        print_json(msg, line=True)
        if not ns.no_ack:
            await stream.ack(msg.message_id)
    return 0


async def _collect(client: BrokerClient, ns: argparse.Namespace, status: str | None) -> list[Message]:
    return await take(
        partial(
            client.list_messages,
            status=status,
            sender_id=ns.sender,
            recipient_id=ns.recipient,
            conversation_id=ns.conversation,
            correlation_id=ns.correlation,
            created_after=ns.since,
            created_before=ns.until,
            message_type=ns.message_type,
        ),
        ns,
    )


async def _list(client: BrokerClient, ns: argparse.Namespace) -> int:
    _print_list(ns, await _collect(client, ns, ns.status), "(no messages)")
    return 0


async def _dead_letters(client: BrokerClient, ns: argparse.Namespace) -> int:
    msgs = await _collect(client, ns, MessageStatus.FAILED.value)
    if ns.json:
        print_json(msgs)
    else:
        table(
            ["MESSAGE", "FROM", "TO", "TYPE", "ATTEMPTS", "CREATED (UTC)", "LAST ERROR"],
            [
                [
                    x.message_id,
                    x.sender_id,
                    x.recipient_id,
                    x.message_type,
                    f"{x.attempt}/{x.max_attempts}",
                    when(x.created_at),
                    short(x.last_error, 60),
                ]
                for x in msgs
            ],
            empty="(no dead letters)",
        )
    return 0


def _print_list(ns: argparse.Namespace, msgs: list[Message], empty: str) -> None:
    if ns.json:
        print_json(msgs)
    else:
        table(HEADERS, [_row(x) for x in msgs], empty=empty)


async def _thread(client: BrokerClient, ns: argparse.Namespace) -> int:
    msgs: list[Message] = []
    async for x in client.iter_messages(conversation_id=ns.conversation_id):
        if msgs and x.send_id == msgs[-1].send_id:
            continue  # a broadcast's other copies: the thread shows each send once
        msgs.append(x)
        if len(msgs) >= ns.limit:
            break
    if ns.json:
        print_json(msgs)
        return 0
    table(
        ["TIME (UTC)", "MESSAGE", "FROM", "TO", "IN REPLY TO", "PAYLOAD"],
        [
            [
                when(x.created_at),
                x.message_id,
                x.sender_id,
                x.recipient_id or x.target_capability,
                x.in_reply_to,
                payload_text(x.payload, x.content_type),
            ]
            for x in msgs
        ],  # fmt: skip
        empty="(no messages in this conversation)",
    )
    return 0


async def _conversations(client: BrokerClient, ns: argparse.Namespace) -> int:
    found: list[Conversation] = await take(partial(client.list_conversations, participant=ns.participant), ns)
    if ns.json:
        print_json(found)
        return 0
    table(
        ["CONVERSATION", "MESSAGES", "LAST (UTC)", "PARTICIPANTS"],
        [
            [c.conversation_id, c.message_count, when(c.last_activity), ", ".join(c.participants)]
            for c in found
        ],
        empty="(no conversations)",
    )
    return 0


async def _get(client: BrokerClient, ns: argparse.Namespace) -> int:
    x = await client.get_message(ns.message_id)
    if ns.json:
        print_json(x)
        return 0
    fields_table(
        [
            ("message_id", x.message_id),
            ("send_id", x.send_id),
            ("status", x.status),
            ("from", x.sender_id),
            ("to", x.recipient_id),
            ("target", f"{x.target_kind.value} {x.target_capability}".strip()),
            ("type", x.message_type),
            ("priority", x.priority),
            ("attempt", f"{x.attempt}/{x.max_attempts}"),
            ("correlation_id", x.correlation_id),
            ("conversation_id", x.conversation_id),
            ("headers", x.headers),
            ("content_type", x.content_type),
            ("payload", jsonable_text(x)),
            ("created", x.created_at),
            ("deliver after", x.deliver_after),
            ("expires", x.expires_at),
            ("delivered", x.delivered_at),
            ("ack deadline", x.ack_deadline),
            ("processed", x.processed_at),
            ("last error", x.last_error),
        ]
    )
    return 0


def jsonable_text(x: Message) -> str:
    v = payload_value(x.payload, x.content_type)
    return v if isinstance(v, str) else str(jsonable(v))


async def _purge(client: BrokerClient, ns: argparse.Namespace) -> int:
    status = {"dead-letter": MessageStatus.FAILED}.get(ns.status, ns.status)
    before = datetime.now(UTC) - timedelta(seconds=ns.older_than) if ns.older_than is not None else None
    total = 0
    while True:  # 10,000 per call: call again while a call purges that many
        n = await client.purge(status, created_before=before)
        total += n
        if n < 10_000:
            break
    if ns.json:
        print_json({"purged": total})
    else:
        print(f"purged {total} message{'s' if total != 1 else ''}")
    return 0


async def _requeue(client: BrokerClient, ns: argparse.Namespace) -> int:
    n = await client.requeue(ns.message_ids)
    if ns.json:
        print_json({"requeued": n})
    else:
        print(f"requeued {n} message{'s' if n != 1 else ''}")
    return 0
