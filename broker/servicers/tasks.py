"""TaskQueue servicer: protobuf <-> task queue calls."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator

import grpc
from pydantic import ValidationError

from ..core.taskqueue import TaskQueue
from ..errors import InvalidArgument, NotFound
from ..models.common import check_id, decode_page_token, encode_page_token, page_size
from ..models.tasks import (
    Assignment,
    CancelInput,
    ClaimInput,
    CompleteInput,
    DependencyEditInput,
    FailInput,
    SubmitGraphInput,
    SubmitInput,
    Task,
    TaskEvent,
    TaskFilter,
    TreeQuery,
    WatchScope,
)
from ..pb import tasks_pb2 as pb
from ..pb import tasks_pb2_grpc as pb_grpc
from ..security.identity import attributed, recorded_actor
from ..security.streams import withdrawn
from .convert import dur_s, fitting, ts, ts_us
from .errors import rpc, status_of, stream_rpc, validation_message
from .limits import LimitRpcs
from .schedules import ScheduleRpcs
from .sessions import SessionRpcs, session_out
from .tasks_pb import (
    STATUS_TO_PB,
    assignment_out,
    cancellation_out,
    complete_input,
    dep_type,
    edge_out,
    extend_input,
    fail_input,
    spec_in,
    status_filter,
    task_out,
    transition_out,
)
from .tasks_work import WorkRpcs
from .tracing import Tracing, incoming

MAX_COMPLETE_BATCH = 1000
# Leases a Listen or Work stream remembers handing out (the latest), to hand back should its
# credentials be withdrawn; those it no longer remembers end with their lease.
HANDED_KEPT = 10_000
_WATCH_SCOPES = {
    "task_id": WatchScope.TASK,
    "subtree_root_id": WatchScope.SUBTREE,
    "session_id": WatchScope.SESSION,
}


class TaskQueueServicer(SessionRpcs, ScheduleRpcs, LimitRpcs, WorkRpcs, pb_grpc.TaskQueueServicer):
    def __init__(self, queue: TaskQueue, tracing: Tracing | None = None) -> None:
        self.queue = queue
        self.sessions = queue.sessions
        self.schedules = queue.schedules
        self.tracing = tracing or Tracing(False)

    def _task(self, t: Task, now: int | None = None) -> pb.Task:
        return task_out(t, self.queue.calculated_priority(t, now))

    def _assignments(self, assignments: list[Assignment], agent_id: str) -> list[pb.Assignment]:
        now = self.queue.clock.now_us()
        out = [assignment_out(a, self.queue.calculated_priority(a.task, now)) for a in assignments]
        if self.tracing.on:  # an assign span under each task's stored context, handed to the worker
            for a, msg in zip(assignments, out, strict=True):
                tp = self.tracing.event(
                    "assign",
                    a.task.traceparent,
                    {
                        "messaging.destination.name": agent_id,
                        "a2a.task.id": a.task.task_id,
                        "a2a.task.attempt": a.attempt,
                    },
                    retry=a.attempt > 1,
                )
                if tp:
                    msg.task.traceparent = tp
        return out

    async def _finish(self, inp: CompleteInput | FailInput, context: grpc.aio.ServicerContext | None) -> Task:
        """Complete or fail a leased task (by the input's kind); with tracing on, its span under
        the call's trace context (``context``: a unary call's) or else the task's stored one."""
        t0 = time.time_ns()
        if isinstance(inp, CompleteInput):
            operation, task = "complete", await self.queue.complete(inp)
        else:
            operation, task = "fail", await self.queue.fail(inp)
        if self.tracing.on:
            self._finished_span(operation, task, incoming(context) if context is not None else None, t0)
        return task

    @rpc
    async def Submit(self, request: pb.SubmitRequest, context: grpc.aio.ServicerContext) -> pb.SubmitResponse:
        spec = spec_in(request.task, "task")
        with self.tracing.scope("submit", incoming(context), "producer") as scope:
            spec["traceparent"] = scope.traceparent
            inp = SubmitInput.model_validate({"task": spec})
            task, duplicate = await self.queue.submit(attributed(inp.task, "submitted_by"))
            scope.set("a2a.task.id", task.task_id)
        return pb.SubmitResponse(task=self._task(task), duplicate=duplicate)

    @rpc
    async def SubmitGraph(
        self, request: pb.SubmitGraphRequest, context: grpc.aio.ServicerContext
    ) -> pb.SubmitGraphResponse:
        count = {"messaging.batch.message_count": len(request.nodes)}
        with self.tracing.scope("submit", incoming(context), "producer", count) as scope:
            nodes = []
            for i, n in enumerate(request.nodes):
                where = f"nodes[{i}]"
                spec = spec_in(n.task, f"{where}.task")
                spec["traceparent"] = scope.traceparent
                deps = [
                    {"key": d.key, "type": dep_type(d.type, f"{where}.depends_on_keys[{j}].type")}
                    for j, d in enumerate(n.depends_on_keys)
                ]
                nodes.append(
                    {"key": n.key, "task": spec, "depends_on_keys": deps, "parent_key": n.parent_key or None}
                )
            inp = SubmitGraphInput.model_validate({"nodes": nodes})
            res = await self.queue.submit_graph(
                [n.model_copy(update={"task": attributed(n.task, "submitted_by")}) for n in inp.nodes]
            )
        now = self.queue.clock.now_us()
        return pb.SubmitGraphResponse(task_ids=res.keys, tasks=[self._task(t, now) for t in res.tasks])

    @rpc
    async def Claim(self, request: pb.ClaimRequest, context: grpc.aio.ServicerContext) -> pb.ClaimResponse:
        wait = dur_s(request, "wait")
        if wait is not None and not 0 <= wait <= 60:
            raise InvalidArgument("wait", "must be between 0 and 60 s")
        inp = ClaimInput(agent_id=request.agent_id, max_tasks=request.max_tasks or 1, wait_s=wait or 0.0)
        assignments = await self.queue.claim(inp)
        return pb.ClaimResponse(assignments=self._assignments(assignments, inp.agent_id))

    @stream_rpc
    async def Listen(
        self, request: pb.ListenRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ListenResponse]:
        async for item in self._pushes(request.agent_id):
            if item is None:  # the stream is live: response headers tell the client so
                await context.send_initial_metadata(())
                continue
            yield pb.ListenResponse(assignments=item[0], cancellations=item[1])

    async def _pushes(
        self, agent_id: str
    ) -> AsyncIterator[tuple[list[pb.Assignment], list[pb.Cancellation]] | None]:
        """Listen's assignments and cancellations; first None, once the stream is live. If the
        stream ends because its credentials were withdrawn, the leases it handed out go back."""
        stream = self.queue.listen(check_id(agent_id, "agent_id"))
        handed: deque[tuple[str, int]] = deque(maxlen=HANDED_KEPT)
        try:
            async for assignments, cancellations in stream:
                if not assignments and not cancellations:
                    yield None
                    continue
                handed.extend((a.task.task_id, a.attempt) for a in assignments)
                yield (
                    self._assignments(assignments, agent_id),
                    [cancellation_out(c) for c in cancellations],
                )
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
            why = withdrawn()
            if why is not None and handed:
                self.queue.withdraw_leases(agent_id, list(handed), why)

    @rpc
    async def ExtendLease(
        self, request: pb.ExtendLeaseRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExtendLeaseResponse:
        until = await self.queue.extend_lease(extend_input(request))
        return pb.ExtendLeaseResponse(lease_expires_at=ts(until))

    @rpc
    async def Complete(
        self, request: pb.CompleteRequest, context: grpc.aio.ServicerContext
    ) -> pb.CompleteResponse:
        return pb.CompleteResponse(task=self._task(await self._finish(complete_input(request), context)))

    @rpc
    async def CompleteBatch(
        self, request: pb.CompleteBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.CompleteBatchResponse:
        if not 1 <= len(request.items) <= MAX_COMPLETE_BATCH:
            raise InvalidArgument("items", f"must hold 1 to {MAX_COMPLETE_BATCH} completions")
        limit = self.queue.settings.max_payload_bytes
        inputs = []
        # Malformed items refuse the whole call before anything changes.
        for i, item in enumerate(request.items):
            field = f"items[{i}]"
            try:
                inp = complete_input(item)
            except ValidationError as exc:
                raise InvalidArgument(field, validation_message(exc)) from None
            if len(inp.result) > limit:
                raise InvalidArgument(f"{field}.result", f"must be at most {limit} bytes")
            inputs.append(inp)
        # Each item is then judged on its own, all in one write job.
        outcomes = await self.queue.complete_many(inputs)
        results = []
        for out in outcomes:
            if isinstance(out, BaseException):
                if not isinstance(out, Exception):
                    raise out
                code, message = status_of(out)
                results.append(pb.CompleteResult(code=code.value[0], message=message))
            else:
                results.append(pb.CompleteResult(code=0, task=self._task(out)))
        return pb.CompleteBatchResponse(results=results)

    @rpc
    async def Fail(self, request: pb.FailRequest, context: grpc.aio.ServicerContext) -> pb.FailResponse:
        return pb.FailResponse(task=self._task(await self._finish(fail_input(request), context)))

    @rpc
    async def Cancel(self, request: pb.CancelRequest, context: grpc.aio.ServicerContext) -> pb.CancelResponse:
        inp = CancelInput(
            task_id=request.task_id, cascade=request.cascade, reason=request.reason, actor=request.actor
        )
        inp = attributed(inp, "actor")
        return pb.CancelResponse(cancelled_task_ids=await self.queue.cancel(inp))

    @rpc
    async def Replay(self, request: pb.ReplayRequest, context: grpc.aio.ServicerContext) -> pb.ReplayResponse:
        if len(request.actor) > 128:
            raise InvalidArgument("actor", "must be at most 128 characters")
        task = await self.queue.replay(check_id(request.task_id, "task_id"), recorded_actor(request.actor))
        return pb.ReplayResponse(task=self._task(task))

    @rpc
    async def Get(self, request: pb.GetTaskRequest, context: grpc.aio.ServicerContext) -> pb.Task:
        return self._task(await self.queue.get(check_id(request.task_id, "task_id")))

    @rpc
    async def List(
        self, request: pb.ListTasksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTasksResponse:
        token = decode_page_token(request.page_token, 1)
        if token is not None and (type(token[0]) is not int or not 0 <= token[0] < 2**63):
            raise InvalidArgument("page_token", "is not a token this broker issued")
        flt = TaskFilter(
            status=status_filter(request.status, "status"),
            session_id=request.session_id,
            capability=request.capability,
            agent_id=request.agent_id,
            tag=request.tag,
            label=request.label,
            parent_id=request.parent_id,
            task_type=request.task_type,
            root_id=request.root_id,
            level=request.level if request.HasField("level") else None,
            created_after=ts_us(request, "created_after"),
            created_before=ts_us(request, "created_before"),
            page_size=page_size(request.page_size),
            after=token[0] if token else None,
        )
        tasks, last = await self.queue.list(flt)
        now = self.queue.clock.now_us()
        return pb.ListTasksResponse(
            tasks=[self._task(t, now) for t in tasks], next_page_token=encode_page_token(last) if last else ""
        )

    @rpc
    async def GetTree(
        self, request: pb.GetTreeRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTreeResponse:
        token = decode_page_token(request.page_token, 1)
        if token is not None and type(token[0]) is not str:
            raise InvalidArgument("page_token", "is not a token this broker issued")
        if request.max_depth < 0:
            raise InvalidArgument("max_depth", "must be 0 (all levels) or more")
        q = TreeQuery(
            check_id(request.task_id, "task_id"),
            page_size(request.page_size),
            after_path=token[0] if token else None,
            max_depth=request.max_depth or None,
        )
        summary = await self.queue.tree(q)
        now = self.queue.clock.now_us()
        tasks = [self._task(t, now) for t in summary.tasks]
        more = summary.more
        if (n := fitting(tasks)) < len(tasks):  # under a client's default receive limit: the rest next
            tasks, more = tasks[:n], True
        return pb.GetTreeResponse(
            tasks=tasks,
            status_counts={pb.TaskStatus.Name(STATUS_TO_PB[s]): n for s, n in summary.status_counts.items()},
            progress=summary.progress,
            next_page_token=encode_page_token(summary.tasks[len(tasks) - 1].path) if more else "",
        )

    @rpc
    async def GetDependencies(
        self, request: pb.GetDependenciesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetDependenciesResponse:
        prereqs, dependents = await self.queue.dependencies(check_id(request.task_id, "task_id"))
        return pb.GetDependenciesResponse(
            prerequisites=[edge_out(e) for e in prereqs], dependents=[edge_out(e) for e in dependents]
        )

    @rpc
    async def AddDependency(
        self, request: pb.AddDependencyRequest, context: grpc.aio.ServicerContext
    ) -> pb.Task:
        edit = DependencyEditInput(
            task_id=check_id(request.task_id, "task_id"),
            prerequisite_id=check_id(request.dependency.task_id, "dependency.task_id"),
            type=dep_type(request.dependency.type, "dependency.type"),
            actor=request.actor,
        )
        edit = attributed(edit, "actor")
        return self._task(await self.queue.add_dependency(edit))

    @rpc
    async def RemoveDependency(
        self, request: pb.RemoveDependencyRequest, context: grpc.aio.ServicerContext
    ) -> pb.Task:
        edit = DependencyEditInput(
            task_id=check_id(request.task_id, "task_id"),
            prerequisite_id=check_id(request.prerequisite_id, "prerequisite_id"),
            actor=request.actor,
        )
        edit = attributed(edit, "actor")
        return self._task(await self.queue.remove_dependency(edit))

    @rpc
    async def GetHistory(
        self, request: pb.GetHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetHistoryResponse:
        trail = await self.queue.history(check_id(request.task_id, "task_id"))
        return pb.GetHistoryResponse(transitions=[transition_out(tr) for tr in trail])

    @stream_rpc
    async def Watch(
        self, request: pb.WatchTasksRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.TaskEvent]:
        which = request.WhichOneof("scope")
        if which is None:
            raise InvalidArgument("scope", "set one of task_id, subtree_root_id, session_id")
        value = check_id(getattr(request, which), which)
        watcher, snapshot = await self.queue.watch(_WATCH_SCOPES[which], value)
        with watcher:
            # Response headers tell the client the watch is live: no later change is missed.
            await context.send_initial_metadata(())
            if request.include_snapshot:
                for ev in snapshot:
                    yield await self._event(ev)
            while True:
                ev = await watcher.get()
                yield await self._event(ev)

    async def _event(self, ev: TaskEvent) -> pb.TaskEvent:
        if ev.transition is None:  # a session event
            return pb.TaskEvent(session=session_out(ev.session) if ev.session else None)
        task = ev.task
        if task is None:  # no snapshot of that instant: send the task as it is now
            try:
                task = await self.queue.get(ev.transition.task_id)
            except NotFound:  # purged since: the transition alone
                return pb.TaskEvent(transition=transition_out(ev.transition), snapshot=ev.snapshot)
        return pb.TaskEvent(
            transition=transition_out(ev.transition), task=self._task(task), snapshot=ev.snapshot
        )
