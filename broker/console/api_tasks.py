"""The console's tasks and sessions: lists (newest first by default), a task with its history and
attempts, its tree and its graph (the tasks it is connected to by dependencies and parent-child
edges), cancel and retry; a session with its tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..models.sessions import SessionFilter, SessionStatus
from ..models.tasks import CancelInput, Task, TaskFilter, TaskStatus, TreeQuery
from ..security.identity import Identity
from . import views
from .common import Guard, after, enum, json_body, newest_first, page, size

if TYPE_CHECKING:
    from ..core.taskqueue import TaskQueue

TREE_LIMIT = 500  # nodes drawn in a task tree
GRAPH_LIMIT = 500  # nodes drawn in a task's graph


def _counts(tasks: list[Task]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in tasks:
        out[t.status.value] = out.get(t.status.value, 0) + 1
    return out


class TasksApi:
    tasks: TaskQueue

    def task_routes(self, g: Guard) -> list[BaseRoute]:
        get, post = ["GET"], ["POST"]
        return [
            Route("/api/tasks", g(self.task_list), methods=get),
            Route("/api/tasks/{task_id}", g(self.task), methods=get),
            Route("/api/tasks/{task_id}/tree", g(self.tree), methods=get),
            Route("/api/tasks/{task_id}/graph", g(self.graph), methods=get),
            Route("/api/tasks/{task_id}/cancel", g(self.cancel, admin=True), methods=post),
            Route("/api/tasks/{task_id}/retry", g(self.retry, admin=True), methods=post),
            Route("/api/sessions", g(self.session_list), methods=get),
            Route("/api/sessions/{session_id}", g(self.session_page), methods=get),
        ]

    async def task_list(self, request: Request, who: Identity) -> Response:
        q = request.query_params
        flt = TaskFilter(
            status=enum(TaskStatus, q.get("status"), "status"),
            session_id=q.get("session_id", ""),
            capability=q.get("capability", ""),
            agent_id=q.get("agent_id", ""),
            tag=q.get("tag", ""),
            parent_id=q.get("parent_id", ""),
            page_size=size(q),
            after=after(q),
            newest_first=newest_first(q),
        )
        found, last = await self.tasks.list(flt)
        return page("tasks", [views.task(t) for t in found], last)

    async def task(self, request: Request, who: Identity) -> Response:
        task_id = request.path_params["task_id"]
        t = await self.tasks.get(task_id)
        history = await self.tasks.history(task_id)
        return JSONResponse(
            {
                "task": views.task(t),
                "history": [views.transition(h) for h in history],
                "attempts": views.attempts(history, t),
            }
        )

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

    async def graph(self, request: Request, who: Identity) -> Response:
        """The tasks connected to this one through dependency and parent-child edges (a graph
        submitted without parents too), the nearest first, at most GRAPH_LIMIT."""
        found, more = await self.tasks.graph(request.path_params["task_id"], GRAPH_LIMIT)
        return JSONResponse(
            {"tasks": [views.task(t) for t in found], "status_counts": _counts(found), "truncated": more}
        )

    async def cancel(self, request: Request, who: Identity) -> Response:
        body = await json_body(request)
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

    async def session_list(self, request: Request, who: Identity) -> Response:
        q = request.query_params
        flt = SessionFilter(
            status=enum(SessionStatus, q.get("status"), "status"),
            initiated_by=q.get("initiated_by", ""),
            parent_session_id=q.get("parent_session_id", ""),
            page_size=size(q),
            after=after(q, (int, str)),
            newest_first=newest_first(q),
        )
        found, last = await self.tasks.sessions.list(flt)
        return page("sessions", [views.session(s) for s in found], last)

    async def session_page(self, request: Request, who: Identity) -> Response:
        """A session and a page of its tasks (``order`` and ``page_token`` as /api/tasks)."""
        q = request.query_params
        s = await self.tasks.sessions.get(request.path_params["session_id"])
        flt = TaskFilter(
            session_id=s.session_id, page_size=size(q), after=after(q), newest_first=newest_first(q)
        )
        found, last = await self.tasks.list(flt)
        return page("tasks", [views.task(t) for t in found], last, session=views.session(s))
