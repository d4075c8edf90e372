"""The console's JSON API under ``/api/`` and its live feed (``/api/events``, server-sent events),
served by the HTTP listener beside ``/metrics``. It calls the core (registry, mailbox, task
queue) as the gRPC servicers do: the same validation, the same errors, mapped to HTTP statuses in
one place (``_error``).

Who may use it: with ``--auth none`` anyone who reaches the listener (as with the gRPC port);
otherwise an ``admin`` or ``viewer`` token, sent as ``Authorization: Bearer`` or exchanged once
at ``POST /api/session`` for an HttpOnly, SameSite=Strict session cookie (``Secure`` when the
listener serves TLS). The token behind a session is checked again on every request, so revoking
it (or its expiry) ends the session at once. A viewer reads; only an admin changes anything
(deregister, requeue, purge, cancel, retry). Every change is a POST with a JSON body, which a
cross-site form cannot send: with the SameSite cookie, no CSRF token is needed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..clock import now_us
from ..errors import BrokerError, InvalidArgument
from ..models.agents import AgentFilter, AgentStatus
from ..models.common import decode_page_token, encode_page_token
from ..models.messages import MessageFilter, MessageStatus, check_ids
from ..models.tasks import CancelInput, TaskFilter, TaskStatus, TreeQuery
from ..observability.metrics import KINDS
from ..security.identity import OPERATOR_ROLES, Identity, Role, bearer
from ..servicers.errors import status_of
from . import views

if TYPE_CHECKING:
    from ..config import Settings
    from ..core.mailbox import Mailbox
    from ..core.registry import Registry
    from ..core.taskqueue import TaskQueue
    from ..observability.metrics import BrokerCollector
    from ..security.interceptor import Authenticator

log = logging.getLogger("broker.console")
STATIC = Path(__file__).parent / "static"

COOKIE = "a2a_console"
SESSION_S = 8 * 3600
SAMPLE_S = 5.0  # the rate chart's resolution
SAMPLES = 120  # ten minutes of it
TREE_LIMIT = 500  # nodes drawn in a task tree
OPEN = Identity("-", Role.ADMIN, "none")  # --auth none

# gRPC status names -> HTTP statuses (the servicers' one error table, seen through HTTP)
_HTTP = {
    "INVALID_ARGUMENT": 400,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "FAILED_PRECONDITION": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
}


Handler = Callable[[Request, Identity], Awaitable[Response]]


@dataclass
class _Session:
    token: str  # authenticated again on every request: a revoked token ends its sessions
    expires: float


class Console:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        mailbox: Mailbox,
        tasks: TaskQueue,
        collector: BrokerCollector,
        authenticator: Authenticator | None,
        secure_cookie: bool = False,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.mailbox = mailbox
        self.tasks = tasks
        self.collector = collector
        self.authenticator = authenticator
        self.secure_cookie = secure_cookie  # the listener serves TLS: the cookie never goes in clear
        self.refresh_s = settings.console_refresh_s
        self.sessions: dict[str, _Session] = {}
        self.samples: deque[tuple[float, dict[str, int]]] = deque(maxlen=SAMPLES + 1)
        self.closing = asyncio.Event()
        self._sampler: asyncio.Task[None] | None = None
        self._push_counts: dict[str, int] = {}

    def routes(self) -> list[BaseRoute]:
        g = self._guard
        get, post = ["GET"], ["POST"]
        return [
            Route("/", self.index, methods=get),
            Mount("/static", StaticFiles(directory=STATIC)),
            Route("/api/session", self.session, methods=get),
            Route("/api/session", self.login, methods=post),
            Route("/api/session", self.logout, methods=["DELETE"]),
            Route("/api/overview", g(self.overview), methods=get),
            Route("/api/events", g(self.events), methods=get),
            Route("/api/agents", g(self.agents), methods=get),
            Route("/api/agents/{agent_id}/deregister", g(self.deregister, admin=True), methods=post),
            Route("/api/messages", g(self.messages), methods=get),
            Route("/api/messages/requeue", g(self.requeue, admin=True), methods=post),
            Route("/api/messages/purge", g(self.purge, admin=True), methods=post),
            Route("/api/push", g(self.push_list), methods=get),
            Route("/api/tasks", g(self.task_list), methods=get),
            Route("/api/tasks/{task_id}", g(self.task), methods=get),
            Route("/api/tasks/{task_id}/tree", g(self.tree), methods=get),
            Route("/api/tasks/{task_id}/cancel", g(self.cancel, admin=True), methods=post),
            Route("/api/tasks/{task_id}/retry", g(self.retry, admin=True), methods=post),
        ]

    def start(self) -> None:
        self._sampler = asyncio.ensure_future(self._sample_forever())

    async def stop(self) -> None:
        self.closing.set()  # live feeds end
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)

    async def index(self, request: Request) -> Response:
        """The single page (it holds no data: what it shows comes from /api/, which checks)."""
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    # -- who is calling ----------------------------------------------------------------------

    async def _identify(self, request: Request) -> Identity | None:
        if self.authenticator is None:
            return OPEN
        token = bearer(request.headers.get("Authorization", ""))
        if token is None:
            sid = request.cookies.get(COOKIE)
            session = self.sessions.get(sid) if sid else None
            if session is None or session.expires < time.monotonic():
                return None
            token = session.token
        try:
            return await self.authenticator.authenticate(token)
        except BrokerError:
            return None

    def _guard(self, handler: Handler, admin: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            who = await self._identify(request)
            if who is None:
                return _fail(401, "sign in with an admin or viewer token")
            if who.role not in OPERATOR_ROLES:
                return _fail(403, f"{who.subject!r} ({who.role.value}) may not use the console")
            if admin:
                if who.role is not Role.ADMIN:
                    return _fail(403, f"{who.subject!r} is a viewer: only an admin may change anything")
                if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                    return _fail(415, "send the request body as application/json")
            try:
                return await handler(request, who)
            except (BrokerError, ValidationError) as exc:
                return _error(exc)

        return guarded

    async def session(self, request: Request) -> Response:
        who = await self._identify(request)
        return JSONResponse(
            {
                "auth": self.settings.auth,
                "subject": who.subject if who else None,
                "role": who.role.value if who else None,
            }
        )

    async def login(self, request: Request) -> Response:
        if self.authenticator is None:
            return JSONResponse({"auth": "none", "subject": "-", "role": "admin"})
        body = await _json(request)
        token = str(body.get("token") or "").strip()
        try:
            who = await self.authenticator.authenticate(token)
        except BrokerError as exc:
            return _fail(401, exc.message)
        if who.role not in OPERATOR_ROLES:
            return _fail(403, f"{who.subject!r} ({who.role.value}) may not use the console")
        now = time.monotonic()
        for sid in [s for s, v in self.sessions.items() if v.expires < now]:
            del self.sessions[sid]
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = _Session(token, now + SESSION_S)
        log.info("console sign-in", extra={"subject": who.subject, "role": who.role.value})
        resp = JSONResponse({"auth": self.settings.auth, "subject": who.subject, "role": who.role.value})
        resp.set_cookie(
            COOKIE,
            sid,
            max_age=SESSION_S,
            httponly=True,
            samesite="strict",
            secure=self.secure_cookie,
            path="/",
        )
        return resp

    async def logout(self, request: Request) -> Response:
        sid = request.cookies.get(COOKIE)
        if sid:
            self.sessions.pop(sid, None)
        resp = JSONResponse({})
        resp.delete_cookie(COOKIE, path="/", secure=self.secure_cookie, httponly=True, samesite="strict")
        return resp

    # -- overview and its live feed ----------------------------------------------------------

    def _counters(self) -> dict[str, int]:
        m, t = self.mailbox.stats, self.tasks.stats
        return {
            "published": m.published,
            "delivered": m.delivered,
            "acknowledged": m.acknowledged,
            "dead_lettered": sum(m.dead_lettered.values()),
            "submitted": t.submitted,
            "completed": t.completed,
            "failed": t.failed,
        }

    async def _sample_forever(self) -> None:
        while True:
            self.samples.append((time.time(), self._counters()))
            await asyncio.sleep(SAMPLE_S)

    def _rates(self) -> list[dict[str, float]]:
        points = [*self.samples, (time.time(), self._counters())]
        out = []
        for (t0, a), (t1, b) in zip(points, points[1:], strict=False):
            span = max(t1 - t0, 1e-3)
            out.append({"t": int(t1 * 1000), **{k: round((b[k] - a[k]) / span, 2) for k in b}})
        return out

    async def _overview(self) -> dict[str, Any]:
        await self.collector.refresh(self.refresh_s)
        counted = await self.tasks.storage.push_counts()
        self._push_counts = {"pending": counted.pending, "dead": counted.dead}
        c = self.collector.census
        assert c is not None
        agents = {s.value: c.agents.get(s.value, 0) for s in AgentStatus if s is not AgentStatus.DEREGISTERED}
        pending = sum(c.messages.get(("pending", k), 0) for k in KINDS)
        scheduled = sum(c.scheduled.get(k, 0) for k in KINDS)
        return {
            "at": int(time.time() * 1000),
            "agents": {**agents, "online": sum(n for s, n in agents.items() if s != "offline")},
            "messages": {
                "ready": pending - scheduled,
                "scheduled": scheduled,
                "unacked": sum(c.messages.get(("delivered", k), 0) for k in KINDS),
                "dead": sum(c.messages.get(("failed", k), 0) for k in KINDS),
            },
            "tasks": {s.value: c.tasks.get(s.value, 0) for s in TaskStatus if s is not TaskStatus.PENDING},
            "totals": self._counters(),
            "push": self._push_counts,
            "rates": self._rates(),
            "backlogs": {
                "agents": c.agent_backlog,
                "agents_rest": c.agent_backlog_rest,
                "capabilities": c.capability_backlog,
                "capabilities_rest": c.capability_backlog_rest,
            },
        }

    async def overview(self, request: Request, who: Identity) -> Response:
        return JSONResponse(await self._overview())

    async def events(self, request: Request, who: Identity) -> Response:
        """The overview every ``--console-refresh-s``, as server-sent events (``event: overview``),
        while the caller may still read it (a revoked token ends its feed)."""

        async def feed() -> AsyncIterator[bytes]:
            while not self.closing.is_set():
                data = json.dumps(await self._overview(), separators=(",", ":"))
                yield f"event: overview\ndata: {data}\n\n".encode()
                try:
                    await asyncio.wait_for(self.closing.wait(), self.refresh_s)
                except TimeoutError:
                    pass
                if await self._identify(request) is None:
                    return

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(feed(), media_type="text/event-stream", headers=headers)

    # -- agents ----------------------------------------------------------------------------

    async def agents(self, request: Request, who: Identity) -> Response:
        q = request.query_params
        after = decode_page_token(q.get("page_token", ""), 1)
        flt = AgentFilter(
            status=_enum(AgentStatus, q.get("status"), "status"),
            capability=q.get("capability", ""),
            page_size=_size(q),
            after=after[0] if after else None,
        )
        found, last = await self.registry.list(flt)
        counts = [await self.mailbox.storage.count_pending(a.agent_id, 1_000_000) for a in found]
        return _page("agents", [views.agent(a, n) for a, n in zip(found, counts, strict=True)], last)

    async def deregister(self, request: Request, who: Identity) -> Response:
        agent_id = request.path_params["agent_id"]
        gone = await self.registry.deregister(agent_id)
        log.info("console deregistered an agent", extra={"agent_id": agent_id, "subject": who.subject})
        return JSONResponse({"agent_id": agent_id, "requeued_tasks": gone.requeued_tasks})

    # -- messages --------------------------------------------------------------------------

    async def messages(self, request: Request, who: Identity) -> Response:
        q = request.query_params
        after = decode_page_token(q.get("page_token", ""), 1)
        flt = MessageFilter(
            conversation_id=q.get("conversation_id") or None,
            correlation_id=q.get("correlation_id") or None,
            sender_id=q.get("sender_id") or None,
            recipient_id=q.get("recipient_id") or None,
            status=_enum(MessageStatus, q.get("status"), "status"),
            page_size=_size(q),
            after_seq=after[0] if after else None,
        )
        found, last = await self.mailbox.list(flt)
        return _page("messages", [views.message(m) for m in found], last)

    async def requeue(self, request: Request, who: Identity) -> Response:
        body = await _json(request)
        ids = body.get("message_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise InvalidArgument("message_ids", "must be a non-empty list of message ids")
        n = await self.mailbox.requeue(check_ids(ids))
        log.info("console requeued dead letters", extra={"count": n, "subject": who.subject})
        return JSONResponse({"requeued": n})

    async def purge(self, request: Request, who: Identity) -> Response:
        body = await _json(request)
        status = _enum(MessageStatus, body.get("status") or "failed", "status")
        older = body.get("older_than_s")
        if older is not None and (not isinstance(older, int | float) or older < 0):
            raise InvalidArgument("older_than_s", "must be a number of seconds, 0 or more")
        before = now_us() - int(older * 1_000_000) if older else None
        n = await self.mailbox.purge(status, before, 10_000)
        log.info(
            "console purged messages", extra={"count": n, "status": status.value, "subject": who.subject}
        )
        return JSONResponse({"purged": n})

    # -- A2A push notifications -------------------------------------------------------------

    async def push_list(self, request: Request, who: Identity) -> Response:
        """The latest push notifications in a status (``dead`` by default), newest first."""
        status = request.query_params.get("status") or "dead"
        if status not in ("pending", "delivered", "dead"):
            raise InvalidArgument("status", "must be one of pending, delivered, dead")
        found = await self.tasks.storage.push_list(status, _size(request.query_params))
        return JSONResponse({"push": [views.push(d) for d in found]})

    # -- tasks -----------------------------------------------------------------------------

    async def task_list(self, request: Request, who: Identity) -> Response:
        q = request.query_params
        after = decode_page_token(q.get("page_token", ""), 1)
        flt = TaskFilter(
            status=_enum(TaskStatus, q.get("status"), "status"),
            session_id=q.get("session_id", ""),
            capability=q.get("capability", ""),
            agent_id=q.get("agent_id", ""),
            tag=q.get("tag", ""),
            parent_id=q.get("parent_id", ""),
            page_size=_size(q),
            after=after[0] if after else None,
        )
        found, last = await self.tasks.list(flt)
        return _page("tasks", [views.task(t) for t in found], last)

    async def task(self, request: Request, who: Identity) -> Response:
        task_id = request.path_params["task_id"]
        t = await self.tasks.get(task_id)
        history = await self.tasks.history(task_id)
        return JSONResponse({"task": views.task(t), "history": [views.transition(h) for h in history]})

    async def tree(self, request: Request, who: Identity) -> Response:
        task_id = request.path_params["task_id"]
        summary = await self.tasks.tree(TreeQuery(task_id=task_id, page_size=TREE_LIMIT))
        return JSONResponse(
            {
                "tasks": [views.task(t) for t in summary.tasks],
                "status_counts": {s.value: n for s, n in summary.status_counts.items()},
                "progress": summary.progress,
                "truncated": summary.more,
            }
        )

    async def cancel(self, request: Request, who: Identity) -> Response:
        body = await _json(request)
        inp = CancelInput(
            task_id=request.path_params["task_id"],
            cascade=bool(body.get("cascade", True)),
            reason=str(body.get("reason") or "cancelled from the console"),
            actor=who.subject,
        )
        return JSONResponse({"cancelled_task_ids": await self.tasks.cancel(inp)})

    async def retry(self, request: Request, who: Identity) -> Response:
        t = await self.tasks.replay(request.path_params["task_id"], who.subject)
        return JSONResponse({"task": views.task(t)})


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidArgument("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidArgument("body", "must be a JSON object")
    return body


def _page(key: str, items: list[dict[str, Any]], last: Any) -> Response:
    """One page of a list, with the token of the next (empty on the last page)."""
    return JSONResponse({key: items, "next_page_token": encode_page_token(last) if last else ""})


def _size(q: Any) -> int:
    text = q.get("page_size") or "50"
    if not text.isdigit() or not 1 <= int(text) <= 500:
        raise InvalidArgument("page_size", "must be between 1 and 500")
    return int(text)


def _fail(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _error(exc: Exception) -> Response:
    code, message = status_of(exc)
    return _fail(_HTTP.get(code.name, 500), message)


def _enum(cls: Any, value: str | None, name: str) -> Any:
    if not value:
        return None
    try:
        return cls(value)
    except ValueError:
        raise InvalidArgument(name, f"must be one of {', '.join(m.value for m in cls)}") from None
