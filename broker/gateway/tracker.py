"""The tracker: keeps the index of A2A tasks (``ListTasks`` filters, orders and counts by it) and
queues their push notifications, as their turns change.

It follows the task queue's transitions (no task snapshots needed) for the A2A tasks that have
not ended, and for each change reads the task's turns once, compares what an A2A client would see
with what the index holds (state, turns, artifacts announced) and stores the new index entry
together with the notifications the difference makes (each new artifact, then the new status),
queued for every push configuration of the task in the same transaction: a notification is
queued exactly when the index moves past the change it announces.

At start-up it looks again at every indexed task that had not ended and at the latest first turns
that have no entry yet (a crash between a submission and its entry): what changed meanwhile is
found and announced then. ``flush`` applies the changes already committed, so that a list that
follows a change sees it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from a2a.types import a2a_pb2 as a2a
from google.protobuf import json_format

from ..clock import now_us
from ..core.taskqueue import TaskQueue
from ..domain import a2a_tasks as rules
from ..errors import BrokerError
from ..models.a2a import A2AIndexEntry
from ..models.tasks import Transition
from .convert import Turn, a2a_task

log = logging.getLogger("broker.a2a")

RECONCILE_LIMIT = 10_000  # indexed tasks looked at again at start-up
UNINDEXED_WINDOW = 10_000  # first turns (by submission order) checked for a missing entry


def root_of(tr: Transition) -> str:
    """The first turn's id, from a transition's materialized path ``/root/.../``."""
    return tr.path.split("/", 2)[1] if tr.path.startswith("/") else tr.task_id


def stream_body(event: a2a.Task | a2a.TaskStatusUpdateEvent | a2a.TaskArtifactUpdateEvent) -> bytes:
    """A notification as POSTed: a ``StreamResponse`` in protobuf's JSON form."""
    resp = a2a.StreamResponse()
    if isinstance(event, a2a.Task):
        resp.task.CopyFrom(event)
    elif isinstance(event, a2a.TaskStatusUpdateEvent):
        resp.status_update.CopyFrom(event)
    else:
        resp.artifact_update.CopyFrom(event)
    return json_format.MessageToJson(resp, indent=None).encode()


class Tracker:
    def __init__(
        self,
        tasks: TaskQueue,
        turns: Callable[[str], Awaitable[list[Turn]]],
        queued: Callable[[], None],
    ) -> None:
        self.tasks = tasks
        self.storage = tasks.storage
        self._turns = turns  # a root id -> its turns (NotFound when it is gone)
        self.queued = queued  # notifications were queued: the sender looks
        self.active: set[str] = set()  # roots of A2A tasks that have not ended
        self._watcher = tasks.transitions.watch(lambda tr: root_of(tr) in self.active)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        final = sorted(rules.FINAL)
        roots = await self.storage.a2a_unsettled(final, RECONCILE_LIMIT)
        roots += await self.storage.a2a_unindexed(rules.TASK_TYPE, UNINDEXED_WINDOW, RECONCILE_LIMIT)
        self.active.update(roots)
        async with self._lock:
            await self._drain(dict.fromkeys(roots))
        self._task = asyncio.ensure_future(self._follow())

    async def stop(self) -> None:
        self._watcher.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def track(self, root: str) -> a2a.Task:
        """A new A2A task (its first turn submitted): follow it; the task as it is now."""
        self.active.add(root)
        return await self.project(root)

    async def flush(self) -> None:
        """Apply the transitions committed so far (before a list, so that it sees them)."""
        async with self._lock:
            await self._drain({})

    async def _follow(self) -> None:
        while True:
            try:
                tr = await self._watcher.get()
            except Exception:  # the feed ended (shutdown) or this watcher fell behind
                return
            async with self._lock:
                await self._drain({root_of(tr): None})

    async def _drain(self, roots: dict[str, None]) -> None:
        """Project each root changed by the transitions taken and those waiting, once each."""
        while self._watcher.pending():
            roots[root_of(await self._watcher.get())] = None
        for root in roots:
            try:
                await self._project(root)
            except BrokerError as exc:
                log.warning("a2a task not indexed", extra={"task_id": root, "error": exc.message})

    async def project(self, root: str) -> a2a.Task:
        async with self._lock:
            return await self._project(root)

    def locked(self) -> asyncio.Lock:
        """Held while an index entry is read and written (a push configuration is set under it)."""
        return self._lock

    async def project_locked(self, root: str) -> a2a.Task:
        """``project`` for a caller that holds ``locked()``."""
        return await self._project(root)

    async def _project(self, root: str) -> a2a.Task:
        for _ in range(3):  # another broker may store an entry between the read and the write
            try:
                turns = await self._turns(root)
            except BrokerError:
                self.active.discard(root)
                raise
            view = a2a_task(turns)
            before = await self.storage.a2a_entry(root)
            entry, bodies = _diff(view, turns, before)
            if entry == before:
                break
            if await self.storage.a2a_save(entry, before, bodies, now_us()):
                if bodies:
                    self.queued()
                break
        if a2a.TaskState.Name(view.status.state) in rules.FINAL:
            self.active.discard(root)
        return view


def _diff(
    view: a2a.Task, turns: list[Turn], before: A2AIndexEntry | None
) -> tuple[A2AIndexEntry, list[bytes]]:
    """The index entry of ``view``, and the notifications that take a reader of ``before`` to it."""
    root = turns[0].task
    state = a2a.TaskState.Name(view.status.state)
    ids = tuple(a.artifact_id for a in view.artifacts)
    if before is None:
        entry = A2AIndexEntry(
            task_id=root.task_id,
            owner=root.labels.get(rules.OWNER_LABEL, ""),
            context_id=view.context_id,
            state=state,
            status_at=view.status.timestamp.ToMicroseconds(),
            root_seq=root.seq,
            turns=len(turns),
            artifacts=ids,
        )
        return entry, []
    bodies: list[bytes] = []
    for art in view.artifacts:
        if art.artifact_id not in before.artifacts:
            bodies.append(
                stream_body(
                    a2a.TaskArtifactUpdateEvent(
                        task_id=view.id, context_id=view.context_id, artifact=art, last_chunk=True
                    )
                )
            )
    moved = state != before.state or len(turns) != before.turns
    if moved:
        bodies.append(
            stream_body(
                a2a.TaskStatusUpdateEvent(task_id=view.id, context_id=view.context_id, status=view.status)
            )
        )
    entry = A2AIndexEntry(
        task_id=before.task_id,
        owner=before.owner,
        context_id=view.context_id,
        state=state,
        status_at=view.status.timestamp.ToMicroseconds() if moved else before.status_at,
        root_seq=before.root_seq,
        turns=len(turns),
        artifacts=tuple(dict.fromkeys((*before.artifacts, *ids))),
    )
    return entry, bodies
