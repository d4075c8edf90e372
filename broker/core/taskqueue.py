"""The task queue service: submission, leasing, completion, failure, cancellation, reading
and watching, and telling everyone concerned once a change has committed.

Storage does each change in one transaction (applying the rules of
``broker.domain``) and returns what changed; this layer decides whom to tell
after the commit (wake-ups for Claim and Listen, cancellations to lease
holders, events to watchers, timers for retry backoffs), and asks for task
snapshots only while someone watches. The calculated-priority formula is in
``domain/priority.py``; submission checks in ``domain/submission.py``; Claim
and Listen in ``leasing.py``.
"""

from __future__ import annotations

import asyncio
import builtins
import heapq
import logging
import secrets
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Protocol

from ..clock import Clock, Timer, s_to_us
from ..config import Settings
from ..domain import task_states
from ..domain.priority import PriorityPolicy
from ..domain.submission import plan_graph, plan_single
from ..errors import InvalidArgument, StorageUnavailable
from ..models.agents import Agent, AgentGone
from ..models.limits import KeyUsage, Limit, LimitInput
from ..models.stats import TaskStats
from ..models.tasks import (
    Assignment,
    CancelInput,
    Cancellation,
    Changes,
    ClaimInput,
    CompleteInput,
    DependencyEdge,
    DependencyEditInput,
    DependencyInput,
    ExtendInput,
    FailInput,
    GraphNodeInput,
    SubmitResult,
    Task,
    TaskEvent,
    TaskFilter,
    TaskSpecInput,
    TaskStatus,
    Transition,
    TreeQuery,
    TreeSummary,
    WatchScope,
)
from ..storage.base import Storage
from .completions import CompleteBatcher
from .feeds import Feed, Watcher
from .leasing import Leaser
from .registry import Registry
from .routing import RecordRouter
from .schedules import Schedules
from .sessions import Sessions


class ClusterHooks(Protocol):
    """What the task queue tells the brokers sharing its database (``cluster.Cluster``, which
    holds the queue: it is handed in, not imported)."""

    def announced(self, changes: Changes) -> None: ...

    async def watching(self) -> None: ...


log = logging.getLogger("broker.tasks")

PURGE_EVERY_S = 60.0


def _epoch() -> int:
    """A new epoch for the limits: random, so that no two changes share one (a positive 63-bit
    integer, as both databases store it)."""
    return secrets.randbits(62) + 1


class TaskQueue:
    def __init__(
        self, storage: Storage, registry: Registry, settings: Settings, clock: Clock | None = None
    ) -> None:
        self.storage = storage
        self.registry = registry
        self.settings = settings
        self.clock = clock = clock or Clock()
        self.policy = PriorityPolicy.from_settings(settings)
        self.events: Feed[TaskEvent] = Feed()
        # Every transition, without task snapshots (the A2A gateway's index follows its tasks' turns).
        self.transitions: Feed[Transition] = Feed()
        # Claim and Listen (named ``dispatch``: it hands out the leases).
        router = RecordRouter(registry.records) if settings.route_by_record else None
        self.dispatch = Leaser(storage, self.announce, self._spawn, registry, self.watched, router, clock)
        self.completions = CompleteBatcher(storage, self.announce, self.watched, clock)
        self.sessions = Sessions(storage, self.announce, self.watched, clock)
        self.schedules = Schedules(storage, settings, self.announce, self.watched, clock)
        registry.on_agent_gone(self._agent_gone)
        registry.on_agent_online(self._agent_online)
        self._backoff_heap: list[int] = []
        self._backoff_timer: Timer | None = None
        self._last_purge: float | None = None
        self._bg: set[asyncio.Task[None]] = set()
        self.stats = TaskStats()
        # The other brokers of the database, when there are (set by ``Cluster.start``).
        self.cluster: ClusterHooks | None = None

    # ------------------------------------------------------------ announcing

    def watched(self) -> bool:
        """Whether writes should return task snapshots: someone watches tasks."""
        return self.events.watchers > 0

    def announce(self, changes: Changes) -> None:
        """After a commit: wake leasers, tell holders, publish events, arm backoff timers, count."""
        self.dispatch.wake(changes)
        if changes.transitions:
            self._count(changes.transitions)
        if self.events.watchers and changes.transitions:
            for tr in changes.transitions:
                self.events.publish(TaskEvent(tr, changes.tasks.get(tr.task_id)))
        if self.transitions.watchers:
            for tr in changes.transitions:
                self.transitions.publish(tr)
        for at in changes.backoff_until:
            self._schedule_backoff(at)
        for s in changes.sessions:
            log.info("session ended", extra={"session_id": s.session_id, "status": s.status.value})
            if self.events.watchers:
                self.events.publish(TaskEvent(None, None, session=s))
        if self.cluster is not None:
            self.cluster.announced(changes)

    def _count(self, transitions: list[Transition]) -> None:
        st = self.stats
        for tr in transitions:
            to = tr.to_status
            if to is TaskStatus.PENDING:
                st.submitted += 1
            elif to is TaskStatus.RUNNING:
                st.assigned += 1
                if tr.elapsed_us is not None:
                    st.queue_wait.observe(tr.elapsed_us / 1e6)
            elif to is TaskStatus.COMPLETED:
                st.completed += 1
            elif to is TaskStatus.FAILED:
                st.failed += 1
                log.info(
                    "task failed", extra={"task_id": tr.task_id, "attempt": tr.attempt, "reason": tr.reason}
                )
            elif to is TaskStatus.CANCELLED:
                st.cancelled += 1
                log.info("task cancelled", extra={"task_id": tr.task_id, "reason": tr.reason})
            elif to is TaskStatus.READY and tr.from_status is TaskStatus.RUNNING:
                st.retried += 1
            if tr.from_status is TaskStatus.RUNNING and tr.elapsed_us is not None:
                st.run_time.observe(tr.elapsed_us / 1e6)

    def _schedule_backoff(self, at: int) -> None:
        heapq.heappush(self._backoff_heap, at)
        if self._backoff_heap[0] == at:
            self._arm_backoff_timer()

    def _arm_backoff_timer(self) -> None:
        if self._backoff_timer is not None:
            self._backoff_timer.cancel()
            self._backoff_timer = None
        if not self._backoff_heap:
            return
        delay = max(0.0, (self._backoff_heap[0] - self.clock.now_us()) / 1e6)
        self._backoff_timer = self.clock.call_later(delay, self._backoff_due)

    def _backoff_due(self) -> None:
        self._backoff_timer = None
        now = self.clock.now_us()
        while self._backoff_heap and self._backoff_heap[0] <= now:
            heapq.heappop(self._backoff_heap)
        self._spawn(self._release_backoffs())
        self._arm_backoff_timer()

    async def _release_backoffs(self) -> None:
        try:
            self.announce(await self.storage.release_backoffs(self.clock.now_us()))
        except StorageUnavailable as exc:  # e.g. shutting down: the sweeper catches up later
            log.debug("backoff release skipped: %s", exc)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg_done)

    def _bg_done(self, task: asyncio.Task[None]) -> None:
        self._bg.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task work failed: %r", task.exception())

    def _agent_gone(self, gone: AgentGone) -> None:
        self.announce(gone.task_changes)
        self.dispatch.wake_agent(gone.agent.agent_id)

    def _agent_online(self, agent: Agent) -> None:
        self.dispatch.wake_agent(agent.agent_id)

    # ------------------------------------------------------------ submitting

    async def submit(self, spec: TaskSpecInput) -> tuple[Task, bool]:
        s = self.settings
        nodes = plan_single(spec, s.max_dependencies, s.max_payload_bytes)
        res = await self.storage.submit_tasks(nodes, self.clock.now_us())
        self.announce(res.changes)
        return res.tasks[0], res.duplicate[0]

    async def replay(self, task_id: str, actor: str = "") -> Task:
        """A failed or cancelled task submitted again as a new task: the same spec, a new id, a
        fresh set of attempts, ``metadata[a2a.replay_of]`` naming the original (which keeps its
        history)."""
        t = await self.storage.get_task(task_id)
        err = task_states.replay_refusal(task_id, t.status)
        if err is not None:
            raise err
        spec = TaskSpecInput(
            title=t.title,
            task_type=t.task_type,
            payload=t.payload,
            content_type=t.content_type,
            required_capabilities=list(t.required_capabilities),
            priority=t.priority,
            deadline=t.deadline,
            parent_id=t.parent_id,
            depends_on=[DependencyInput(task_id=d.task_id, type=d.type) for d in t.depends_on],
            max_retries=t.max_retries,
            backoff_initial_us=t.backoff_initial_us,
            backoff_multiplier=t.backoff_multiplier,
            backoff_max_us=t.backoff_max_us,
            lease_timeout_us=t.lease_timeout_us,
            max_run_us=t.max_run_us,
            session_id=t.session_id,
            tags=list(t.tags),
            metadata={**t.metadata, task_states.REPLAY_OF: t.task_id},
            labels=t.labels,
            submitted_by=t.submitted_by,
        )
        if actor:  # set after validation: the servicer checked the request's text, and may add to it
            spec = spec.model_copy(update={"submitted_by": actor})
        task, _ = await self.submit(spec)
        log.info("task replayed", extra={"task_id": task_id, "copy": task.task_id})
        return task

    async def submit_graph(self, nodes: list[GraphNodeInput]) -> SubmitResult:
        s = self.settings
        planned = plan_graph(nodes, s.max_dependencies, s.max_payload_bytes)
        res = await self.storage.submit_tasks(planned, self.clock.now_us())
        self.announce(res.changes)
        # Answer in request order (storage inserted in dependency order).
        by_id = {t.task_id: (t, d) for t, d in zip(res.tasks, res.duplicate, strict=True)}
        ordered = [by_id[res.keys[n.key]] for n in nodes]
        return SubmitResult([t for t, _ in ordered], [d for _, d in ordered], res.keys, res.changes)

    # ------------------------------------------------------------ working

    async def claim(self, inp: ClaimInput) -> list[Assignment]:
        return await self.dispatch.claim(inp.agent_id, inp.max_tasks, inp.wait_s)

    def listen(self, agent_id: str) -> AsyncIterator[tuple[list[Assignment], list[Cancellation]]]:
        return self.dispatch.listen(agent_id)

    def withdraw_leases(self, agent_id: str, leases: builtins.list[tuple[str, int]], reason: str) -> None:
        """Leases handed out on a stream whose credentials were withdrawn: back to the queue at
        once (in the background: the stream is ending), rather than at their lease's end."""

        async def withdraw() -> None:
            changes = await self.storage.withdraw_leases(
                agent_id, leases, self.clock.now_us(), reason, snapshots=self.watched()
            )
            self.announce(changes)
            if changes.cancellations:
                log.info(
                    "leases handed back", extra={"agent_id": agent_id, "count": len(changes.cancellations)}
                )

        self._spawn(withdraw())

    async def extend_lease(self, inp: ExtendInput) -> int:
        until, changes = await self.storage.extend_lease(inp, self.clock.now_us())
        self.announce(changes)
        return until

    async def complete(self, inp: CompleteInput) -> Task:
        if len(inp.result) > self.settings.max_payload_bytes:
            raise InvalidArgument("result", f"must be at most {self.settings.max_payload_bytes} bytes")
        return await self.completions.complete(inp)

    def complete_many(self, inps: list[CompleteInput]) -> asyncio.Future[list[Task | BaseException]]:
        """Several Completes at once (a batched Work request), written in the same job; each
        judged on its own: its task, or the exception that refused it, in order."""
        limit = self.settings.max_payload_bytes
        loop = asyncio.get_running_loop()
        futs: list[asyncio.Future[Task]] = []
        fits = [i for i in inps if len(i.result) <= limit]
        written = iter(self.completions.complete_many(fits) if fits else ())
        for inp in inps:
            if len(inp.result) <= limit:
                futs.append(next(written))
            else:
                fut: asyncio.Future[Task] = loop.create_future()
                fut.set_exception(InvalidArgument("result", f"must be at most {limit} bytes"))
                futs.append(fut)
        return asyncio.gather(*futs, return_exceptions=True)

    async def fail(self, inp: FailInput) -> Task:
        task, changes = await self.storage.fail_task(inp, self.clock.now_us(), snapshots=self.watched())
        self.announce(changes)
        return task

    async def cancel(self, inp: CancelInput) -> list[str]:
        ids, changes = await self.storage.cancel_task(inp, self.clock.now_us(), snapshots=self.watched())
        self.announce(changes)
        return ids

    async def add_dependency(self, inp: DependencyEditInput) -> Task:
        task, changes = await self.storage.add_dependency(inp, self.clock.now_us(), snapshots=self.watched())
        self.announce(changes)
        return task

    async def remove_dependency(self, inp: DependencyEditInput) -> Task:
        task, changes = await self.storage.remove_dependency(
            inp, self.clock.now_us(), snapshots=self.watched()
        )
        self.announce(changes)
        return task

    # ------------------------------------------------------------ limits

    async def set_limit(self, inp: LimitInput) -> Limit:
        """Create or replace a concurrency limit; waiting leasers look again under it."""
        limit = await self.storage.set_limit(inp, _epoch(), self.clock.now_us())
        log.info("concurrency limit set", extra={"limit": limit.name})
        self.dispatch.wake_all()
        return limit

    async def list_limits(self) -> builtins.list[Limit]:
        return await self.storage.list_limits()

    async def delete_limit(self, name: str) -> None:
        await self.storage.delete_limit(name, _epoch())
        log.info("concurrency limit deleted", extra={"limit": name})
        self.dispatch.wake_all()

    async def concurrency_keys(self, prefix: str = "", limit: int = 100) -> builtins.list[KeyUsage]:
        return await self.storage.concurrency_keys(prefix, limit, self.clock.now_us())

    # ------------------------------------------------------------ reading

    async def get(self, task_id: str) -> Task:
        return await self.storage.get_task(task_id)

    async def list(self, flt: TaskFilter) -> tuple[list[Task], int | None]:
        return await self.storage.list_tasks(flt)

    async def tree(self, q: TreeQuery) -> TreeSummary:
        return await self.storage.task_tree(q)

    async def dependencies(
        self, task_id: str
    ) -> tuple[builtins.list[DependencyEdge], builtins.list[DependencyEdge]]:
        return await self.storage.task_dependencies(task_id)

    async def history(self, task_id: str) -> builtins.list[Transition]:
        return await self.storage.task_history(task_id)

    async def graph(self, task_id: str, limit: int) -> tuple[builtins.list[Task], bool]:
        """The task's connected component (dependencies and parent-child edges), bounded."""
        return await self.storage.task_graph(task_id, limit)

    def calculated_priority(self, task: Task, now: int | None = None) -> float:
        return self.policy.calculated(task.dispatch_rank, self.clock.now_us() if now is None else now)

    async def watch(
        self, scope: WatchScope, value: str
    ) -> tuple[Watcher[TaskEvent], builtins.list[TaskEvent]]:
        """A watcher for the scope, subscribed *before* the snapshot is read so that no
        change falls between the two; the caller closes the watcher."""
        if scope == WatchScope.TASK:
            await self.storage.get_task(value)  # NotFound before subscribing

            def accept(ev: TaskEvent) -> bool:
                return ev.transition is not None and ev.transition.task_id == value

        elif scope == WatchScope.SUBTREE:
            prefix = await self.storage.task_path(value)

            def accept(ev: TaskEvent) -> bool:
                return ev.transition is not None and ev.transition.path.startswith(prefix)

        else:

            def accept(ev: TaskEvent) -> bool:
                if ev.transition is None:
                    return ev.session is not None and ev.session.session_id == value
                return ev.transition.session_id == value

        watcher = self.events.watch(accept)
        try:
            if self.cluster is not None:  # their changes after the snapshot, too
                await self.cluster.watching()
            snapshot = await self.storage.task_watch_snapshot(scope, value)
        except BaseException:
            watcher.close()
            raise
        return watcher, snapshot

    def shutdown(self) -> None:
        """A graceful stop: end Listen streams, waiting Claims and Watch streams now."""
        self.dispatch.shutdown()
        self.events.close(StorageUnavailable("the broker is shutting down; watch again"))

    # ------------------------------------------------------------ sweeping

    async def sweep(self) -> None:
        """Lease expiry, due retry backoffs, deadline urgency, retention."""
        now = self.clock.now_us()
        self.announce(await self.storage.sweep_tasks(now, snapshots=self.watched()))
        every = min(PURGE_EVERY_S, self.settings.task_retention_s / 10)
        at = self.clock.monotonic()
        if self._last_purge is None or at - self._last_purge >= every:
            self._last_purge = at
            horizon = now - s_to_us(self.settings.task_retention_s)
            purged = await self.storage.purge_tasks(horizon)
            if purged:
                log.info("purged finished tasks", extra={"count": purged})
            await self.sessions.archive(horizon)
