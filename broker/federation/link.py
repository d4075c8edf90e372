"""One link to a peer broker: this broker as an agent of type ``broker`` on the peer, run by the
Python client's ``Worker`` (registration, heartbeats, the task and message streams, lease
extensions, outcomes, reconnecting with backoff). This module says what the link offers and what
it does with what the peer hands it.

Anycast messages the peer hands the link (for its capabilities) are sent again locally, to
``marks.pooled(capability)``, which only local subscribers take, with the original sender and the
brokers crossed in headers; the worker acknowledges them on the peer once the copy is committed,
and a redelivery after a crash finds the same copy (its idempotency key is the peer's message id).

The link registers on the peer with what this broker's own agents offer (``domain.federation``),
keeps it current (every ``federation_refresh_s`` it heartbeats with the free capacity, and
registers again after a change of capabilities or capacity), and takes the peer's tasks. Each task
the peer leases to it becomes a local copy that only a local agent may run; while the copy is
unfinished the worker extends the peer's lease (every ``federation_extend_s``), and when it ends
the link completes or fails the peer's task with its outcome. A cancellation from the peer cancels
the copy; a lease the peer no longer extends cancels it too (the peer retries the task). On
starting, the link follows again the copies still unfinished, found by their
``a2a.federation.peer`` label: a broker that restarts keeps serving what it took (and reports again
what finished lately, in case a crash cut the report).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from a2a_broker_client import (
    Assignment,
    BrokerClient,
    BrokerRpcError,
    Message,
    TargetKind,
    Task,
    TaskContext,
    TaskFailure,
    TaskResult,
    TaskSpec,
    Worker,
)
from a2a_broker_client.security import Security

from ..clock import s_to_us
from ..config import Settings
from ..core.mailbox import Mailbox
from ..core.registry import Registry
from ..core.taskqueue import TaskQueue
from ..domain import capacity, marks
from ..domain import federation as rules
from ..errors import BrokerError
from ..models.agents import Exposure, RegisterInput
from ..models.messages import DEFAULT_MAX_ATTEMPTS, NewMessage, Target
from ..models.messages import TargetKind as LocalTargetKind
from ..models.tasks import FINISHED, CancelInput, TaskFilter, TaskSpecInput, TaskStatus, WatchScope

log = logging.getLogger("broker.federation")

REPORT_AGAIN_S = 300.0  # on starting, copies finished this recently are reported again
CALL_TIMEOUT_S = 10.0
RETRY_S = 0.2  # a refusal (or this broker's own agents unreadable): try again after, doubling
RECONNECT_MAX_S = 5.0
MESSAGES_IN_FLIGHT = 100  # the peer's messages taken at once (a Subscribe's default)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _WorkerLog(logging.LoggerAdapter[logging.Logger]):
    """The link's worker's own lines, a warning at most INFO: the link says itself, once, that
    the peer is down (and then counts)."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        super().log(logging.INFO if level == logging.WARNING else level, msg, *args, **kwargs)


class PeerLink:
    def __init__(
        self,
        name: str,
        address: str,
        settings: Settings,
        tasks: TaskQueue,
        registry: Registry,
        mailbox: Mailbox,
        broker_id: str,
    ) -> None:
        self.name = name
        self.address = address
        self.settings = settings
        self.tasks = tasks
        self.registry = registry
        self.mailbox = mailbox
        self.broker_id = broker_id
        self.agent_id = rules.link_agent_id(broker_id)
        self.worker: Worker | None = None
        self._following: dict[str, str] = {}  # peer task id -> local copy id
        self._resumed: dict[tuple[str, int], str] = {}  # (peer task id, attempt) -> copy to follow again
        self._running: set[str] = set()  # local copies an agent runs now
        self._offered: tuple[list[str], int] | None = None  # (capabilities, capacity) registered
        self._free = 0  # the free capacity of this broker's own agents, as last read
        self.relayed = 0  # tasks taken from the peer (tests, logs)
        self.relayed_messages = 0
        self._down_since: float | None = None  # the link has been down since (monotonic)
        self._retries = 0  # reconnections tried since

    # ------------------------------------------------------------ connection

    def _client(self) -> BrokerClient:
        client = BrokerClient(self.address, timeout=CALL_TIMEOUT_S)
        # The peer's credentials are the settings', never the client's environment variables.
        ca = self.settings.peer_ca or None
        client.security = Security(token=self.settings.peer_token or None, tls=bool(ca), ca=ca)
        return client

    async def run(self) -> None:
        """Join the peer and keep the offer current, until cancelled (then ``stop``)."""
        caps, total = await self._prepare()
        self._offered = (caps, max(total, 1))
        self.worker = Worker(
            self.agent_id,
            on_task=self._run_copy,
            on_message=self._copy_message,
            capabilities=caps,
            capacity=self._offered[1],
            client=self._client(),
            name=f"broker {self.broker_id}",
            agent_type=marks.BROKER_AGENT_TYPE,
            endpoint=self.settings.address,
            max_in_flight=MESSAGES_IN_FLIGHT,
            deregister_on_exit=False,
            free_capacity=self._free_capacity,
            extend_every=max(0.5, self.settings.federation_extend_s),
            release_on_stop=False,  # a restart follows them again (``_resume``)
            on_connection=self._connection,
            logger=_WorkerLog(logging.getLogger("broker.federation.worker"), {}),
        )
        backoff = RETRY_S
        while True:  # registered: waiting for the peer as long as it takes, backing off on a refusal
            try:
                await self.worker.start()
                break
            except BrokerRpcError as exc:
                self._connection(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_S)
        await self._resume()
        while True:
            await asyncio.sleep(self.settings.federation_refresh_s)
            try:
                await self._advertise()
            except (BrokerRpcError, BrokerError) as exc:  # the next round tries again
                # (while the link is down, its own lines say so: once, then with a count)
                level = logging.WARNING if self._down_since is None else logging.DEBUG
                log.log(level, "peer link: offer not refreshed", extra={"peer": self.name, "error": str(exc)})

    async def _prepare(self) -> tuple[list[str], int]:
        """The local sender of the peer's messages' copies, and what this broker's own agents offer
        (waiting while they cannot be read)."""
        while True:
            try:
                await self.registry.register(
                    RegisterInput(
                        agent_id=rules.sender_id(self.name),
                        name=f"peer {self.name}",
                        agent_type=marks.BROKER_AGENT_TYPE,
                        max_concurrent_tasks=1,
                        exposure=Exposure.BROKER,
                    )
                )
                caps, total, self._free = rules.offer(await self.registry.every())
                return caps, total
            except BrokerError as exc:
                self._connection(exc)
                await asyncio.sleep(RETRY_S)

    async def _advertise(self) -> None:
        """Register again when the offer changed, and report the free capacity."""
        assert self.worker is not None
        caps, total, self._free = rules.offer(await self.registry.every())
        offered = (caps, max(total, len(self._following), 1))
        if offered != self._offered:
            await self.worker.reconfigure(capabilities=caps, capacity=offered[1])
            self._offered = offered
        await self.worker.heartbeat()

    def _free_capacity(self) -> int:
        """Reported on each heartbeat: the room of this broker's agents, less the copies that wait
        for one of them."""
        waiting = sum(1 for local in self._following.values() if local not in self._running)
        offered = self._offered[1] if self._offered is not None else 1
        return max(0, min(self._free - waiting, offered))

    def _connection(self, error: BaseException | None) -> None:
        if error is None:
            self._up()
        else:
            self._down(str(getattr(error, "details", "") or error))

    def _down(self, error: str) -> None:
        """A failed connection: at WARNING when the link goes down, then at INFO, with a count,
        while it stays down (a peer down for an hour is one warning, not 700)."""
        if self._down_since is None:
            self._down_since, self._retries = time.monotonic(), 0
            log.warning("peer link down; reconnecting", extra={"peer": self.name, "error": error})
            return
        self._retries += 1
        log.info(
            "peer link still down; reconnecting",
            extra={
                "peer": self.name,
                "retries": self._retries,
                "down_s": round(time.monotonic() - self._down_since, 1),
                "error": error,
            },
        )

    def _up(self) -> None:
        extra: dict[str, object] = {"peer": self.name, "address": self.address}
        if self._down_since is not None:
            extra |= {"down_s": round(time.monotonic() - self._down_since, 1), "retries": self._retries}
            self._down_since = None
        log.info("peer link up", extra=extra)

    # ------------------------------------------------------------ messages

    async def _copy_message(self, m: Message) -> None:
        """An anycast message for this broker's capabilities: copied here (the worker acknowledges
        it there once this returns)."""
        if m.target_kind is not TargetKind.ANYCAST:  # a direct message or broadcast to the link
            log.info("message to a peer link dropped", extra={"peer": self.name, "message_id": m.message_id})
            return
        via = [v for v in m.headers.get(rules.VIA, "").split(",") if v]
        headers = {
            **m.headers,
            rules.VIA: ",".join([*via, self.broker_id]),
            rules.SENDER: m.sender_id,
            rules.ORIGIN: f"{self.name}/{m.message_id}",
        }
        await self.mailbox.send(
            NewMessage(
                sender_id=rules.sender_id(self.name),
                target=Target(LocalTargetKind.ANYCAST, capability=marks.pooled(m.target_capability)),
                message_type=m.message_type,
                payload=m.payload,
                content_type=m.content_type,
                priority=m.priority,
                correlation_id=m.correlation_id or None,
                conversation_id=m.conversation_id or None,
                deliver_after=None,
                expires_at=(m.expires_at - EPOCH) // timedelta(microseconds=1) if m.expires_at else None,
                max_attempts=m.max_attempts or DEFAULT_MAX_ATTEMPTS,
                idempotency_key=rules.copy_key(self.name, m.message_id, 0),
                headers=headers,
            )
        )
        self.relayed_messages += 1

    # ------------------------------------------------------------ tasks

    async def _run_copy(self, ctx: TaskContext) -> TaskResult:
        """A task the peer leased to the link: its local copy, followed until it ends; its outcome
        is the peer's task's (completed with its result, or failed with its error)."""
        peer_id = ctx.task_id
        local_id = self._resumed.pop((peer_id, ctx.attempt), None) or await self._relay(ctx)
        self._following[peer_id] = local_id
        try:
            task = await self._follow(local_id)
        except asyncio.CancelledError:
            if ctx.cancel_reason:
                await self._cancel_local(local_id, f"cancelled on peer {self.name}: {ctx.cancel_reason}")
            elif ctx.lease_lost:
                await self._cancel_local(local_id, f"the lease on peer {self.name} was lost")
            raise  # else the link stops: the copy runs on, and is followed again after the restart
        finally:
            self._following.pop(peer_id, None)
            self._running.discard(local_id)
        if task.status is TaskStatus.COMPLETED:
            return TaskResult(task.result or b"", task.result_content_type)
        raise TaskFailure(f"on {self.broker_id}: {task.last_error or task.status.value}")

    async def _relay(self, ctx: TaskContext) -> str:
        """The local copy of the peer's task (the same one again for the same lease)."""
        t, spec = ctx.task, ctx.task.spec
        metadata = dict(spec.metadata)
        via = [str(v) for v in metadata.get(rules.VIA, [])]
        if rules.crossed(via, self.broker_id):
            raise TaskFailure(
                f"loop: the task has already crossed broker {self.broker_id} ({' > '.join(via)})"
            )
        metadata[rules.VIA] = [*via, self.broker_id]
        metadata[rules.ORIGIN] = {"peer": self.name, "task_id": t.task_id, "attempt": ctx.attempt}
        copy = TaskSpecInput(
            title=spec.title,
            task_type=spec.task_type,
            payload=ctx.payload,
            content_type=spec.content_type,
            # A task requiring nothing requires ANY: kept, or LOCAL alone would let any agent take it.
            required_capabilities=[*(spec.required_capabilities or [capacity.ANY]), marks.LOCAL],
            priority=spec.priority if spec.priority is not None else 5,
            max_retries=0,
            metadata=metadata,
            labels={**spec.labels, rules.PEER_LABEL: self.name},
            idempotency_key=rules.copy_key(self.name, t.task_id, ctx.attempt),
            submitted_by=f"peer:{self.name}",
        )
        local, _ = await self.tasks.submit(copy)
        self.relayed += 1
        log.info(
            "task taken from a peer",
            extra={"peer": self.name, "task_id": t.task_id, "attempt": ctx.attempt, "copy": local.task_id},
        )
        return local.task_id

    async def _follow(self, local_id: str) -> Any:
        """The copy once it has finished (watched: every change is seen)."""
        watcher, _ = await self.tasks.watch(WatchScope.TASK, local_id)
        with watcher:
            while True:
                task = await self.tasks.get(local_id)
                if task.status is TaskStatus.RUNNING:
                    self._running.add(local_id)
                if task.status in FINISHED:
                    return task
                await watcher.get()

    async def _resume(self) -> None:
        """On starting: follow again every unfinished copy taken from this peer, and report again
        the outcome of those that finished lately (a crash may have cut the report; a repeat of the
        call that finished the peer's task answers the same, and a lapsed lease refuses it)."""
        assert self.worker is not None
        flt = TaskFilter(label=f"{rules.PEER_LABEL}={self.name}", page_size=1000)
        recent = self.tasks.clock.now_us() - s_to_us(REPORT_AGAIN_S)
        while True:
            copies, last = await self.tasks.list(flt)
            for c in copies:
                origin = c.metadata.get(rules.ORIGIN) or {}
                peer_id, attempt = str(origin.get("task_id") or ""), int(origin.get("attempt", 0))
                if not peer_id or peer_id in self._following or (peer_id, attempt) in self._resumed:
                    continue
                if c.status in FINISHED and (c.finished_at or 0) < recent:
                    continue
                self._resumed[(peer_id, attempt)] = c.task_id
                self.worker.resume(Assignment(Task(peer_id, TaskSpec(title=c.title)), attempt))
            if last is None:
                return
            flt = flt.model_copy(update={"after": last})

    async def _cancel_local(self, local_id: str, reason: str) -> None:
        try:
            await self.tasks.cancel(CancelInput(task_id=local_id, reason=reason, actor=f"peer:{self.name}"))
        except BrokerError as exc:  # already finished: nothing to cancel
            log.debug("copy not cancelled", extra={"copy": local_id, "error": str(exc)})

    async def stop(self) -> None:
        """Stop taking the peer's work (``run`` was cancelled). Copies still running keep going,
        and their leases on the peer are not handed back: a restart follows them again."""
        if self.worker is not None:
            await self.worker.stop(drain_timeout=0)
            await self.worker.client.close()
