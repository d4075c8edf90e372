"""The TaskQueue's Work stream (mixed into the TaskQueue servicer): Listen's pushes, and the
outcomes the worker writes back, each as its unary call would do it (and charged as it is).

A request carries one outcome (``outcome``: the single form) or several (``outcomes``: the
batched form, whatever the worker had ready), answered by one confirmation once committed: the
single form's code in the confirmation itself, the batched form's one result per outcome. The
completions of a batch go to the completion coalescer together (one write job for them all, with
whatever else is in flight), never one task per item.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc
from pydantic import ValidationError

from ..core.streams import duplex, frames
from ..errors import InvalidArgument, PermissionDenied
from ..models.common import check_id
from ..models.tasks import CompleteInput, Task
from ..pb import tasks_pb2 as pb
from ..security.identity import charge, may_act_as
from .convert import set_us, ts
from .errors import status_of, stream_rpc, validation_message
from .tasks_pb import complete_input, extend_input, fail_input
from .tracing import Tracing

if TYPE_CHECKING:
    from ..core.taskqueue import TaskQueue

# Outcomes one batched Work request may carry, stated to the client in the response headers.
MAX_WORK_OUTCOMES = 1000
BATCH_HEADER = "a2a-work-batch"
# The unary twins a Work stream's entries are charged as (security quotas).
_TWINS = {
    "complete": "/a2a.broker.v1.TaskQueue/Complete",
    "fail": "/a2a.broker.v1.TaskQueue/Fail",
    "extend": "/a2a.broker.v1.TaskQueue/ExtendLease",
}
_INVALID = grpc.StatusCode.INVALID_ARGUMENT.value[0]


def _is_work_confirm(x: object) -> bool:
    return isinstance(x, pb.WorkConfirm)


def _refusal(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, ValidationError):
        return _INVALID, validation_message(exc)
    code, message = status_of(exc)
    return code.value[0], message


class WorkRpcs:
    """``Work`` for the TaskQueue servicer, which provides the rest."""

    queue: TaskQueue
    tracing: Tracing
    _pushes: Callable[[str], AsyncIterator[Any]]
    _task: Callable[..., pb.Task]

    def _finished_span(self, operation: str, task: Task, parent: str | None, t0: int) -> None:
        """With tracing on: the span of a Complete or Fail, under ``parent`` (a unary call's
        context) or else the task's stored one."""
        attrs = {"a2a.task.id": task.task_id, "a2a.task.attempt": task.attempt}
        with self.tracing.scope(operation, parent or task.traceparent, "server", attrs, t0):
            pass

    @stream_rpc
    async def Work(
        self, requests: AsyncIterator[pb.WorkRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WorkResponse]:
        """Listen, with completions, failures and lease extensions on the same stream, each
        request confirmed in request order once committed (concurrent ones share commits)."""
        first = await anext(aiter(requests), None)
        if first is None or not first.HasField("listen"):
            raise InvalidArgument("listen", "the first request must open the stream")
        agent_id = check_id(first.listen.agent_id, "listen.agent_id")
        if not may_act_as(agent_id):
            raise PermissionDenied(f"listen.agent_id: {agent_id!r} is not the caller")

        def own(kind: str, inner: Any, where: str) -> Any:
            if inner.agent_id and inner.agent_id != agent_id:
                raise PermissionDenied(
                    f"{where}{kind}.agent_id: {inner.agent_id!r} is not this stream's agent"
                )
            inner.agent_id = agent_id
            return inner

        async def settle(req: pb.WorkRequest) -> pb.WorkConfirm:
            if req.HasField("listen"):
                raise InvalidArgument("listen", "only the first request opens the stream")
            kind = req.WhichOneof("outcome")
            if req.outcomes:
                if kind is not None:
                    raise InvalidArgument("outcomes", "not with complete, fail or extend in the same request")
                if len(req.outcomes) > MAX_WORK_OUTCOMES:
                    raise InvalidArgument("outcomes", f"must hold at most {MAX_WORK_OUTCOMES} outcomes")
                items: list[tuple[str, Any]] = []
                for i, o in enumerate(req.outcomes):
                    k = o.WhichOneof("outcome")
                    if k is None:
                        raise InvalidArgument(f"outcomes[{i}]", "one of complete, fail or extend is required")
                    items.append((k, own(k, getattr(o, k), f"outcomes[{i}].")))
                return pb.WorkConfirm(sequence=req.sequence, results=await self._settle_many(items))
            if kind is None:
                raise InvalidArgument("outcome", "one of complete, fail or extend is required")
            return await self._settle(req.sequence, kind, own(kind, getattr(req, kind), ""))

        pushes = self._pushes(agent_id)
        # Headers once live, sent here: the call's own task, never another one (a send from a task
        # of duplex's could outlive the handler and hang the call's end).
        if await anext(pushes) is None:  # stating that it takes batched requests (`outcomes`)
            await context.send_initial_metadata(((BATCH_HEADER, str(MAX_WORK_OUTCOMES)),))
        async for ready in duplex(pushes, requests, settle):
            for push, confirm in frames(ready, _is_work_confirm):
                resp = pb.WorkResponse(confirm=confirm)
                if push is not None:
                    resp.assignments.extend(push[0])
                    resp.cancellations.extend(push[1])
                yield resp

    async def _settle(self, sequence: int, kind: str, req: Any) -> pb.WorkConfirm:
        """One outcome (the single form)."""
        try:
            charge(_TWINS[kind], req)
            t0 = time.time_ns()
            if kind == "complete":
                task = await self.queue.complete(complete_input(req))
            elif kind == "fail":
                task = await self.queue.fail(fail_input(req))
            else:
                until = await self.queue.extend_lease(extend_input(req))
                return pb.WorkConfirm(sequence=sequence, lease_expires_at=ts(until))
            if self.tracing.on:
                self._finished_span(kind, task, None, t0)
            return pb.WorkConfirm(sequence=sequence, task=self._task(task))
        except Exception as exc:
            code, message = _refusal(exc)
            return pb.WorkConfirm(sequence=sequence, code=code, error=message)

    async def _settle_many(self, items: list[tuple[str, Any]]) -> list[pb.WorkResult]:
        """Several outcomes (the batched form), each judged on its own: the completions written
        together, the rest (rarer) concurrently; one result per item, in order."""
        t0 = time.time_ns()
        results: list[Any] = [None] * len(items)
        completes: list[tuple[int, CompleteInput]] = []
        others: list[tuple[int, Any]] = []
        for i, (kind, req) in enumerate(items):
            try:
                charge(_TWINS[kind], req)
                if kind == "complete":
                    completes.append((i, complete_input(req)))
                elif kind == "fail":
                    others.append((i, self.queue.fail(fail_input(req))))
                else:
                    others.append((i, self.queue.extend_lease(extend_input(req))))
            except Exception as exc:
                results[i] = exc
        # The completions submitted first: the next write job takes them all.
        done = self.queue.complete_many([inp for _, inp in completes]) if completes else None
        if others:
            outs = await asyncio.gather(*(c for _, c in others), return_exceptions=True)
            for (i, _), res in zip(others, outs, strict=True):
                results[i] = res
        if done is not None:
            for (i, _), res in zip(completes, await done, strict=True):
                results[i] = res
        now = self.queue.clock.now_us()
        out: list[pb.WorkResult] = []
        for (kind, _), res in zip(items, results, strict=True):
            if isinstance(res, BaseException):
                if not isinstance(res, Exception):
                    raise res
                code, message = _refusal(res)
                out.append(pb.WorkResult(code=code, error=message))
            elif isinstance(res, Task):
                if self.tracing.on:
                    self._finished_span(kind, res, None, t0)
                out.append(pb.WorkResult(task=self._task(res, now)))
            else:  # an extension: the lease's new end
                r = pb.WorkResult()
                set_us(r.lease_expires_at, res)
                out.append(r)
        return out
