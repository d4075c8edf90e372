"""The console's agents: the list, one agent's page (what it holds, its open streams, its record
and recent failures), and deregistering (one agent, or every offline one)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import InvalidArgument
from ..models.agents import AgentFilter, AgentStatus
from ..models.messages import MessageFilter, MessageStatus
from ..models.tasks import TaskFilter, TaskStatus
from ..security.identity import Identity
from . import views
from .common import Guard, after, enum, json_body, page, size

if TYPE_CHECKING:
    from ..core.mailbox import Mailbox
    from ..core.registry import Registry
    from ..core.taskqueue import TaskQueue

log = logging.getLogger("broker.console")
HELD = 100  # tasks and unacked messages shown on an agent's page
RECENT = 10  # failures shown there


class AgentsApi:
    registry: Registry
    mailbox: Mailbox
    tasks: TaskQueue

    def agent_routes(self, g: Guard) -> list[BaseRoute]:
        return [
            Route("/api/agents", g(self.agents), methods=["GET"]),
            Route("/api/agents/deregister-offline", g(self.deregister_offline, admin=True), methods=["POST"]),
            Route("/api/agents/{agent_id}", g(self.agent), methods=["GET"]),
            Route("/api/agents/{agent_id}/deregister", g(self.deregister, admin=True), methods=["POST"]),
        ]

    async def _backlog(self, agent_id: str) -> int:
        return await self.mailbox.storage.count_pending(agent_id, 1_000_000)

    async def agents(self, request: Request, who: Identity) -> Response:
        q = request.query_params
        flt = AgentFilter(
            status=enum(AgentStatus, q.get("status"), "status"),
            capability=q.get("capability", ""),
            page_size=size(q),
            after=after(q, (str,)),
        )
        found, last = await self.registry.list(flt)
        counts = [await self._backlog(a.agent_id) for a in found]
        return page("agents", [views.agent(a, n) for a, n in zip(found, counts, strict=True)], last)

    async def agent(self, request: Request, who: Identity) -> Response:
        """One agent: its record, the tasks and messages it holds now, its open Subscribe and
        Listen streams (on this broker), its tasks failed for good and its dead letters, newest
        first."""
        agent_id = request.path_params["agent_id"]
        a = await self.registry.get(agent_id)
        record = (await self.registry.records([agent_id]))[agent_id]

        def tasks(status: TaskStatus, n: int) -> TaskFilter:
            return TaskFilter(agent_id=agent_id, status=status, page_size=n, newest_first=True)

        def messages(status: MessageStatus, n: int) -> MessageFilter:
            return MessageFilter(recipient_id=agent_id, status=status, page_size=n, newest_first=True)

        held, more_held = await self.tasks.list(tasks(TaskStatus.RUNNING, HELD))
        failed, _ = await self.tasks.list(tasks(TaskStatus.FAILED, RECENT))
        unacked, more_unacked = await self.mailbox.list(messages(MessageStatus.DELIVERED, HELD))
        dead, _ = await self.mailbox.list(messages(MessageStatus.FAILED, RECENT))
        return JSONResponse(
            {
                "agent": {
                    **views.agent(a, await self._backlog(agent_id)),
                    "endpoint": a.endpoint,
                    "exposure": a.exposure.value,
                    "reported_free_capacity": a.reported_free_capacity,
                },
                "open_streams": self.registry.open_streams(agent_id),
                "record": views.record(record),
                "held_tasks": [views.task(t) for t in held],
                "held_tasks_more": more_held is not None,
                "unacked_messages": [views.message(m) for m in unacked],
                "unacked_messages_more": more_unacked is not None,
                "failed_tasks": [views.task(t) for t in failed],
                "dead_letters": [views.message(m) for m in dead],
            }
        )

    async def deregister(self, request: Request, who: Identity) -> Response:
        agent_id = request.path_params["agent_id"]
        gone = await self.registry.deregister(agent_id)
        log.info("console deregistered an agent", extra={"agent_id": agent_id, "subject": who.subject})
        return JSONResponse({"agent_id": agent_id, "requeued_tasks": gone.requeued_tasks})

    async def deregister_offline(self, request: Request, who: Identity) -> Response:
        """Every agent offline (and silent for ``older_than_s`` seconds, 0 by default)."""
        older = (await json_body(request)).get("older_than_s") or 0
        if not isinstance(older, int | float) or older < 0:
            raise InvalidArgument("older_than_s", "must be a number of seconds, 0 or more")
        ids = await self.registry.deregister_offline(float(older))
        log.info("console deregistered offline agents", extra={"count": len(ids), "subject": who.subject})
        return JSONResponse({"deregistered": ids})
