"""The console's JSON API under ``/api/`` and its live feed (``/api/events``, server-sent events),
served by the HTTP listener beside ``/metrics``. It calls the core (registry, mailbox, task
queue) as the gRPC servicers do: the same validation, the same errors, mapped to HTTP statuses in
one place (``common.error``). The agents', messages' and tasks' endpoints are in api_agents.py,
api_messages.py and api_tasks.py; here: sign-in, the overview and its feed, search by id.

Who may use it: with ``--auth none`` anyone who reaches the listener (as with the gRPC port);
otherwise an ``admin`` or ``viewer`` token, sent as ``Authorization: Bearer`` or exchanged once
at ``POST /api/session`` for an HttpOnly, SameSite=Strict session cookie (``Secure`` when the
listener serves TLS). The token behind a session is checked again on every request, so revoking
it (or its expiry) ends the session at once. A viewer reads; only an admin changes anything
(deregister, requeue, purge, send, cancel, retry). Every change is a POST with a JSON body, which a
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

from ..errors import BrokerError, NotFound
from ..models.agents import AgentStatus
from ..models.common import check_id
from ..models.tasks import TaskStatus
from ..observability.metrics import KINDS
from ..security.identity import OPERATOR_ROLES, Identity, Role, bearer
from . import latency
from .api_agents import AgentsApi
from .api_messages import MessagesApi
from .api_tasks import TasksApi
from .common import Handler, error, fail, json_body

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
OPEN = Identity("-", Role.ADMIN, "none")  # --auth none


@dataclass
class _Session:
    token: str  # authenticated again on every request: a revoked token ends its sessions
    expires: float


class Console(AgentsApi, MessagesApi, TasksApi):
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
        self.hist_samples: deque[dict[str, list[int]]] = deque(maxlen=SAMPLES + 1)  # beside samples
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
            Route("/api/search", g(self.search), methods=get),
            *self.agent_routes(g),
            *self.message_routes(g),
            *self.task_routes(g),
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
                return fail(401, "sign in with an admin or viewer token")
            if who.role not in OPERATOR_ROLES:
                return fail(403, f"{who.subject!r} ({who.role.value}) may not use the console")
            if admin:
                if who.role is not Role.ADMIN:
                    return fail(403, f"{who.subject!r} is a viewer: only an admin may change anything")
                if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                    return fail(415, "send the request body as application/json")
            try:
                return await handler(request, who)
            except (BrokerError, ValidationError) as exc:
                return error(exc)

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
        body = await json_body(request)
        token = str(body.get("token") or "").strip()
        try:
            who = await self.authenticator.authenticate(token)
        except BrokerError as exc:
            return fail(401, exc.message)
        if who.role not in OPERATOR_ROLES:
            return fail(403, f"{who.subject!r} ({who.role.value}) may not use the console")
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
            self.hist_samples.append(latency.snapshot(self.tasks.stats))
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
            "latency": latency.latency(
                self.tasks.stats,
                self.hist_samples[0] if self.hist_samples else None,
                time.time() - self.samples[0][0] if self.samples else 0.0,
            ),
            "backlogs": {
                "agents": c.agent_backlog,
                "agents_rest": c.agent_backlog_rest,
                "capabilities": c.capability_backlog,
                "capabilities_rest": c.capability_backlog_rest,
            },
            "keys": {  # concurrency keys: the most running and the most waiting, and every key's totals
                "running": c.key_running,
                "running_total": c.key_running_total,
                "waiting": c.key_waiting,
                "waiting_total": c.key_waiting_total,
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

    # -- search ----------------------------------------------------------------------------

    async def search(self, request: Request, who: Identity) -> Response:
        """What has this id: a task, a message, an agent or a session (in that order)."""
        wanted = check_id((request.query_params.get("id") or "").strip(), "id")
        finders = (
            ("task", self.tasks.get),
            ("message", self.mailbox.get),
            ("agent", self.registry.get),
            ("session", self.tasks.sessions.get),
        )
        for kind, find in finders:
            try:
                await find(wanted)
            except NotFound:
                continue
            return JSONResponse({"kind": kind, "id": wanted})
        raise NotFound(f"no task, message, agent or session has the id {wanted!r}")
