"""The console's messages: the list (newest first by default), one message, requeueing and
purging dead letters, sending a message (an admin), and the A2A push notifications."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..clock import now_us
from ..errors import InvalidArgument
from ..models.messages import (
    MessageFilter,
    MessageStatus,
    Target,
    TargetKind,
    check_ids,
    check_send,
)
from ..security.identity import Identity
from . import views
from .common import Guard, after, enum, json_body, newest_first, page, size

if TYPE_CHECKING:
    from ..config import Settings
    from ..core.mailbox import Mailbox
    from ..core.taskqueue import TaskQueue

log = logging.getLogger("broker.console")
SENT_BY = "console-sent-by"  # header of a message sent from the console: who sent it


class MessagesApi:
    settings: Settings
    mailbox: Mailbox
    tasks: TaskQueue

    def message_routes(self, g: Guard) -> list[BaseRoute]:
        return [
            Route("/api/messages", g(self.messages), methods=["GET"]),
            Route("/api/messages/requeue", g(self.requeue, admin=True), methods=["POST"]),
            Route("/api/messages/purge", g(self.purge, admin=True), methods=["POST"]),
            Route("/api/messages/send", g(self.send, admin=True), methods=["POST"]),
            Route("/api/messages/{message_id}", g(self.message), methods=["GET"]),
            Route("/api/subscriptions", g(self.subscriptions), methods=["GET"]),
            Route("/api/push", g(self.push_list), methods=["GET"]),
        ]

    async def messages(self, request: Request, who: Identity) -> Response:
        q = request.query_params
        flt = MessageFilter(
            conversation_id=q.get("conversation_id") or None,
            correlation_id=q.get("correlation_id") or None,
            sender_id=q.get("sender_id") or None,
            recipient_id=q.get("recipient_id") or None,
            status=enum(MessageStatus, q.get("status"), "status"),
            subscription=q.get("subscription") or None,
            subject=q.get("subject") or None,
            page_size=size(q),
            after_seq=after(q),
            newest_first=newest_first(q),
        )
        found, last = await self.mailbox.list(flt)
        return page("messages", [views.message(m) for m in found], last)

    async def subscriptions(self, request: Request, who: Identity) -> Response:
        """Subscriptions to subjects by name, with their backlog and oldest unacked message."""
        q = request.query_params
        found, last = await self.mailbox.topics.list(after(q, (str,)), size(q))
        now = now_us()
        return page("subscriptions", [views.subscription(i, now) for i in found], last)

    async def message(self, request: Request, who: Identity) -> Response:
        return JSONResponse(
            {"message": views.message(await self.mailbox.get(request.path_params["message_id"]))}
        )

    async def requeue(self, request: Request, who: Identity) -> Response:
        body = await json_body(request)
        ids = body.get("message_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise InvalidArgument("message_ids", "must be a non-empty list of message ids")
        n = await self.mailbox.requeue(check_ids(ids))
        log.info("console requeued dead letters", extra={"count": n, "subject": who.subject})
        return JSONResponse({"requeued": n})

    async def purge(self, request: Request, who: Identity) -> Response:
        body = await json_body(request)
        status = enum(MessageStatus, body.get("status") or "failed", "status")
        older = body.get("older_than_s")
        if older is not None and (not isinstance(older, int | float) or older < 0):
            raise InvalidArgument("older_than_s", "must be a number of seconds, 0 or more")
        before = now_us() - int(older * 1_000_000) if older else None
        n = await self.mailbox.purge(status, before, 10_000)
        log.info(
            "console purged messages", extra={"count": n, "status": status.value, "subject": who.subject}
        )
        return JSONResponse({"purged": n})

    async def send(self, request: Request, who: Identity) -> Response:
        """A message from a registered agent (``sender_id``) to an agent (``target`` ``agent``,
        ``recipient_id``), any one agent with a capability (``anycast``) or every agent
        (``broadcast``, optionally with a capability); the payload is text, checked as JSON when
        the content type says JSON. It carries the console user's name as a header."""
        body = await json_body(request)
        kind = body.get("target") or "agent"
        capability = _text(body, "capability")
        targets = {
            "agent": Target(TargetKind.DIRECT, agent_id=_text(body, "recipient_id")),
            "anycast": Target(TargetKind.ANYCAST, capability=capability),
            "broadcast": Target(TargetKind.BROADCAST, capability=capability or None),
        }
        if kind not in targets:
            raise InvalidArgument("target", "must be agent, anycast or broadcast")
        content_type = _text(body, "content_type") or "application/json"
        payload = _text(body, "payload")
        if "json" in content_type and payload:
            try:
                json.loads(payload)
            except ValueError as exc:
                raise InvalidArgument("payload", f"is not JSON ({exc}): send it as text/plain") from None
        msg = check_send(
            field="",
            now=now_us(),
            max_payload=self.settings.max_payload_bytes,
            sender_id=_text(body, "sender_id"),
            target=targets[kind],
            message_type=_text(body, "message_type"),
            payload=payload.encode(),
            content_type=content_type,
            conversation_id=_text(body, "conversation_id"),
            correlation_id=_text(body, "correlation_id"),
            headers={SENT_BY: who.subject},
        )
        res = await self.mailbox.send(msg)
        log.info(
            "console sent a message",
            extra={"message_ids": ",".join(res.message_ids[:20]), "subject": who.subject},
        )
        return JSONResponse({"message_ids": res.message_ids})

    async def push_list(self, request: Request, who: Identity) -> Response:
        """The latest push notifications in a status (``dead`` by default), newest first."""
        status = request.query_params.get("status") or "dead"
        if status not in ("pending", "delivered", "dead"):
            raise InvalidArgument("status", "must be one of pending, delivered, dead")
        found = await self.tasks.storage.push_list(status, size(request.query_params))
        return JSONResponse({"push": [views.push(d) for d in found]})


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(name, "must be a string")
    return value
