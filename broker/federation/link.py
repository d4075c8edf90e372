"""One link to a peer broker: this broker as an agent of type ``broker`` on the peer.

Anycast messages the peer hands the link (for its capabilities) are sent again locally, to
``marks.pooled(capability)``, which only local subscribers take, with the original sender and the
brokers crossed in headers; the link acknowledges them on the peer once the copy is committed, and
a redelivery after a crash finds the same copy (its idempotency key is the peer's message id).

The link registers on the peer with what this broker's own agents offer (``domain.federation``),
keeps it current (a heartbeat every ``federation_refresh_s`` reports the free capacity, a
re-registration follows a change of capabilities), and listens for the peer's tasks. Each task the
peer leases to it becomes a local copy that only a local agent may run; while the copy is unfinished
the link extends the peer's lease, and when it ends the link completes or fails the peer's task
with its outcome. A cancellation from the peer cancels the copy. The link reconnects on its own
(with backoff), and on reconnecting it follows again the copies still unfinished, found by their
``a2a.federation.peer`` label: a broker that restarts keeps serving what it took, and a peer whose
lease lapsed meanwhile refuses the extension, which cancels the copy (the peer retries the task).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

import grpc
from google.protobuf import json_format

from ..clock import now_us, s_to_us
from ..config import Settings
from ..core.mailbox import Mailbox
from ..core.registry import Registry
from ..core.taskqueue import TaskQueue
from ..domain import capacity, marks
from ..domain import federation as rules
from ..errors import BrokerError
from ..models.agents import Exposure, RegisterInput
from ..models.messages import DEFAULT_MAX_ATTEMPTS, NewMessage, Target, TargetKind
from ..models.tasks import FINISHED, CancelInput, TaskFilter, TaskSpecInput, TaskStatus, WatchScope
from ..pb import agents_pb2 as apb
from ..pb import agents_pb2_grpc, messaging_pb2_grpc, tasks_pb2_grpc
from ..pb import messaging_pb2 as mpb
from ..pb import tasks_pb2 as tpb

log = logging.getLogger("broker.federation")

RECONNECT_MAX_S = 5.0
REPORT_AGAIN_S = 300.0  # on reconnecting, copies finished this recently are reported again
CALL_TIMEOUT_S = 10.0
LOST = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND)  # the peer's lease is gone
# A call that ends with one of these ended with the link (the peer went away or stopped).
LINK_GONE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED)


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
        self._agents: agents_pb2_grpc.AgentRegistryStub | None = None
        self._tasks: tasks_pb2_grpc.TaskQueueStub | None = None
        self._messaging: messaging_pb2_grpc.MessagingStub | None = None
        # The Subscribe stream on the peer; opened again when the offer changes (a subscription
        # takes anycast messages for the capabilities its agent had when it opened).
        self._messages: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._following: dict[str, str] = {}  # peer task id -> local copy id
        self._cancelled: set[str] = set()  # peer task ids the peer cancelled (no report back)
        self._bg: set[asyncio.Task[None]] = set()
        self._offered: tuple[list[str], int] | None = None
        self._running: set[str] = set()  # local copies an agent runs now
        self.relayed = 0  # tasks taken from the peer (tests, logs)
        self.relayed_messages = 0
        self._down_since: float | None = None  # the link has been down since (monotonic)
        self._retries = 0  # reconnections tried since

    # ------------------------------------------------------------ connection

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        token = self.settings.peer_token
        return (("authorization", f"Bearer {token}"),) if token else ()

    def _channel(self) -> grpc.aio.Channel:
        ca = self.settings.peer_ca
        if ca:
            with open(ca, "rb") as f:
                return grpc.aio.secure_channel(self.address, grpc.ssl_channel_credentials(f.read()))
        return grpc.aio.insecure_channel(self.address)

    async def run(self) -> None:
        """Keep the link up until cancelled."""
        backoff = 0.2
        while True:
            try:
                await self._session()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except (grpc.aio.AioRpcError, BrokerError, OSError) as exc:
                self._down(exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc))
            finally:
                self._connected.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)

    async def _session(self) -> None:
        async with self._channel() as channel:
            self._agents = agents_pb2_grpc.AgentRegistryStub(channel)
            self._tasks = tasks_pb2_grpc.TaskQueueStub(channel)
            self._messaging = messaging_pb2_grpc.MessagingStub(channel)
            self._offered = None
            await self._advertise()
            self._connected.set()
            await self._resume()
            refresh = asyncio.ensure_future(self._refresh())
            try:
                listen = self._tasks.Listen(
                    tpb.ListenRequest(agent_id=self.agent_id), metadata=self._metadata()
                )
                self._up()
                async for resp in listen:
                    for a in resp.assignments:
                        self._spawn(self._relay(a))
                    for c in resp.cancellations:
                        await self._cancel_copy(c.task_id, c.reason)
            finally:
                refresh.cancel()
                if self._messages is not None:
                    self._messages.cancel()
                    self._messages = None

    def _down(self, error: str) -> None:
        """A failed session or connection: at WARNING when the link goes down, then at INFO, with
        a count, while it stays down (a peer down for an hour is one warning, not 700)."""
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

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.settings.federation_refresh_s)
            try:
                await self._advertise()
            except (grpc.aio.AioRpcError, BrokerError) as exc:  # the next round tries again
                detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
                log.warning("peer link: offer not refreshed", extra={"peer": self.name, "error": detail})

    async def _advertise(self) -> None:
        """Register (again, when the offer changed) and report the free capacity."""
        assert self._agents is not None
        caps, total, free = rules.offer(await self.registry.every())
        waiting = sum(1 for local in self._following.values() if local not in self._running)
        held = len(self._following)
        offered = (caps, max(total, held, 1))
        md = self._metadata()
        if offered != self._offered:
            await self._agents.Register(
                apb.RegisterRequest(
                    agent_id=self.agent_id,
                    name=f"broker {self.broker_id}",
                    agent_type=marks.BROKER_AGENT_TYPE,
                    capabilities=caps,
                    max_concurrent_tasks=offered[1],
                    endpoint=self.settings.address,
                ),
                metadata=md,
                timeout=CALL_TIMEOUT_S,
            )
            self._offered = offered
            if self._messages is not None:
                self._messages.cancel()
            self._messages = asyncio.ensure_future(self._relay_messages())
            self._messages.add_done_callback(self._done)
        await self._agents.Heartbeat(
            apb.HeartbeatRequest(
                agent_id=self.agent_id, free_capacity=max(0, min(free - waiting, offered[1]))
            ),
            metadata=md,
            timeout=CALL_TIMEOUT_S,
        )

    # ------------------------------------------------------------ messages

    async def _relay_messages(self) -> None:
        """Anycast messages for this broker's capabilities: copied here, then acknowledged there."""
        assert self._messaging is not None
        await self.registry.register(
            RegisterInput(
                agent_id=rules.sender_id(self.name),
                name=f"peer {self.name}",
                agent_type=marks.BROKER_AGENT_TYPE,
                max_concurrent_tasks=1,
                exposure=Exposure.BROKER,
            )
        )
        md = self._metadata()
        stream = self._messaging.Subscribe(mpb.SubscribeRequest(agent_id=self.agent_id), metadata=md)
        async for resp in stream:
            for m in resp.messages:
                if m.target_kind == mpb.TARGET_KIND_ANYCAST:
                    await self._copy_message(m)
                else:  # a direct message or broadcast to the link itself: nobody here reads it
                    log.info(
                        "message to a peer link dropped",
                        extra={"peer": self.name, "message_id": m.message_id},
                    )
            ids = [m.message_id for m in resp.messages]
            if ids:
                await self._messaging.Ack(
                    mpb.AckRequest(agent_id=self.agent_id, message_ids=ids),
                    metadata=md,
                    timeout=CALL_TIMEOUT_S,
                )

    async def _copy_message(self, m: mpb.Message) -> None:
        via = [v for v in m.headers.get(rules.VIA, "").split(",") if v]
        headers = {
            **dict(m.headers),
            rules.VIA: ",".join([*via, self.broker_id]),
            rules.SENDER: m.sender_id,
            rules.ORIGIN: f"{self.name}/{m.message_id}",
        }
        expires = m.expires_at.ToMicroseconds() if m.HasField("expires_at") else None
        await self.mailbox.send(
            NewMessage(
                sender_id=rules.sender_id(self.name),
                target=Target(TargetKind.ANYCAST, capability=marks.pooled(m.target_capability)),
                message_type=m.message_type,
                payload=m.payload,
                content_type=m.content_type,
                priority=m.priority,
                correlation_id=m.correlation_id or None,
                conversation_id=m.conversation_id or None,
                deliver_after=None,
                expires_at=expires,
                max_attempts=m.max_attempts or DEFAULT_MAX_ATTEMPTS,
                idempotency_key=rules.copy_key(self.name, m.message_id, 0),
                headers=headers,
            )
        )
        self.relayed_messages += 1

    # ------------------------------------------------------------ relaying

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._bg.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        if isinstance(exc, grpc.aio.AioRpcError) and exc.code() in LINK_GONE:
            # The link went down under it: the link's own lines say so (once, then with a count).
            log.info("peer relay ended with the link", extra={"peer": self.name, "error": exc.details()})
            return
        log.error("peer relay failed", extra={"peer": self.name, "error": repr(exc)})

    async def _relay(self, a: tpb.Assignment) -> None:
        t, spec = a.task, a.task.spec
        metadata = json_format.MessageToDict(spec.metadata) if spec.HasField("metadata") else {}
        via = [str(v) for v in metadata.get(rules.VIA, [])]
        if rules.crossed(via, self.broker_id):
            await self._call_peer(
                "Fail",
                tpb.FailRequest(
                    task_id=t.task_id,
                    agent_id=self.agent_id,
                    attempt=a.attempt,
                    error=f"loop: the task has already crossed broker {self.broker_id} ({' > '.join(via)})",
                ),
            )
            return
        metadata[rules.VIA] = [*via, self.broker_id]
        metadata[rules.ORIGIN] = {"peer": self.name, "task_id": t.task_id, "attempt": a.attempt}
        copy = TaskSpecInput(
            title=spec.title,
            task_type=spec.task_type,
            payload=spec.payload,
            content_type=spec.content_type,
            # A task requiring nothing requires ANY: kept, or LOCAL alone would let any agent take it.
            required_capabilities=[*(spec.required_capabilities or [capacity.ANY]), marks.LOCAL],
            priority=spec.priority if spec.HasField("priority") else 5,
            max_retries=0,
            metadata=metadata,
            labels={**dict(spec.labels), rules.PEER_LABEL: self.name},
            idempotency_key=rules.copy_key(self.name, t.task_id, a.attempt),
            submitted_by=f"peer:{self.name}",
        )
        local, _ = await self.tasks.submit(copy)
        self.relayed += 1
        log.info(
            "task taken from a peer",
            extra={"peer": self.name, "task_id": t.task_id, "attempt": a.attempt, "copy": local.task_id},
        )
        await self._follow(local.task_id, t.task_id, a.attempt)

    async def _resume(self) -> None:
        """After (re)connecting: follow again every unfinished copy taken from this peer, and report
        again the outcome of those that finished lately (a crash may have cut the report; a repeat
        of the call that finished the peer's task answers the same, and a lapsed lease refuses it)."""
        flt = TaskFilter(label=f"{rules.PEER_LABEL}={self.name}", page_size=1000)
        recent = now_us() - s_to_us(REPORT_AGAIN_S)
        while True:
            copies, last = await self.tasks.list(flt)
            for c in copies:
                origin = c.metadata.get(rules.ORIGIN) or {}
                peer_id = origin.get("task_id")
                if not peer_id or peer_id in self._following:
                    continue
                if c.status in FINISHED and (c.finished_at or 0) < recent:
                    continue
                self._spawn(self._follow(c.task_id, str(peer_id), int(origin.get("attempt", 0))))
            if last is None:
                return
            flt = flt.model_copy(update={"after": last})

    async def _follow(self, local_id: str, peer_id: str, attempt: int) -> None:
        """Keep the peer's lease while the copy runs; then report its outcome."""
        self._following[peer_id] = local_id
        try:
            watcher, _ = await self.tasks.watch(WatchScope.TASK, local_id)
            with watcher:
                every = max(0.5, self.settings.federation_extend_s)
                while True:
                    task = await self.tasks.get(local_id)
                    if task.status is TaskStatus.RUNNING:
                        self._running.add(local_id)
                    if task.status in FINISHED:
                        break
                    try:
                        await asyncio.wait_for(watcher.get(), every)
                        continue
                    except TimeoutError:
                        pass
                    ok = await self._call_peer(
                        "ExtendLease",
                        tpb.ExtendLeaseRequest(task_id=peer_id, agent_id=self.agent_id, attempt=attempt),
                    )
                    if not ok:
                        await self._cancel_local(local_id, f"the lease on peer {self.name} was lost")
            if peer_id in self._cancelled:
                return
            if task.status is TaskStatus.COMPLETED:
                req: Any = tpb.CompleteRequest(
                    task_id=peer_id,
                    agent_id=self.agent_id,
                    attempt=attempt,
                    result=task.result or b"",
                    result_content_type=task.result_content_type,
                )
                await self._call_peer("Complete", req)
            else:
                error = task.last_error or task.status.value
                req = tpb.FailRequest(
                    task_id=peer_id,
                    agent_id=self.agent_id,
                    attempt=attempt,
                    error=f"on {self.broker_id}: {error}",
                )
                await self._call_peer("Fail", req)
        finally:
            self._following.pop(peer_id, None)
            self._running.discard(local_id)
            self._cancelled.discard(peer_id)

    async def _call_peer(self, method: str, request: Any) -> bool:
        """Call the peer's TaskQueue, waiting for the link and retrying while it is down; False
        when the peer says the lease is gone."""
        while True:
            await self._connected.wait()
            assert self._tasks is not None
            try:
                await getattr(self._tasks, method)(request, metadata=self._metadata(), timeout=CALL_TIMEOUT_S)
                return True
            except grpc.aio.AioRpcError as exc:
                if exc.code() in LOST:
                    log.info(
                        "peer refused: lease gone",
                        extra={"peer": self.name, "method": method, "error": exc.details()},
                    )
                    return False
                if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                await asyncio.sleep(0.2)

    async def _cancel_copy(self, peer_id: str, reason: str) -> None:
        local_id = self._following.get(peer_id)
        if local_id is None:
            return
        self._cancelled.add(peer_id)
        await self._cancel_local(local_id, f"cancelled on peer {self.name}: {reason}")

    async def _cancel_local(self, local_id: str, reason: str) -> None:
        try:
            await self.tasks.cancel(CancelInput(task_id=local_id, reason=reason, actor=f"peer:{self.name}"))
        except BrokerError as exc:  # already finished: nothing to cancel
            log.debug("copy not cancelled", extra={"copy": local_id, "error": str(exc)})

    async def stop(self) -> None:
        for task in list(self._bg):
            task.cancel()
        await asyncio.gather(*self._bg, return_exceptions=True)
