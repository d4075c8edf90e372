"""Worker: an agent in a few lines.

Example::

    async def on_message(msg: Message) -> None:
        print("got", msg.data)            # returns: acked; raises: nacked (redelivered)

    async def on_task(ctx: TaskContext) -> dict:
        await ctx.progress(50, "halfway")  # optional
        return {"answer": 42}             # returns: completed; raises: failed (retried)

    run(Worker("summarizer-1", capabilities=["summarize"], capacity=4,
               on_message=on_message, on_task=on_task).run())   # a2a_broker_client.run: on uvloop

A task from the A2A gateway (``ctx.turn``) may end with an A2A outcome instead:
``return a2a_turns.input_required("Which city?")`` (or ``completed(text, artifacts=...)``,
``auth_required(...)``, ``rejected(...)``).

The worker registers, heartbeats in the background, subscribes to its
messages, listens for tasks (the broker pushes no more than ``capacity`` at
once), keeps each task's lease alive while its handler runs, and stops a
handler when the broker cancels its task or the lease is lost. On SIGTERM or
SIGINT (or :meth:`Worker.stop`) it takes no new work, lets running handlers
finish for up to ``drain_timeout`` seconds, releases whatever is still
unfinished, and deregisters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from . import _convert as c
from ._consume import Consumption
from ._task_context import NonRetryableError, TaskContext, describe, result_of
from ._work import WorkStream
from .client import BrokerClient
from .errors import (
    BrokerRpcError,
    DeadlineExceededError,
    FailedPreconditionError,
    NotFoundError,
    UnavailableError,
    UnimplementedError,
)
from .errors import (
    CancelledError as StreamClosedError,
)
from .models import Assignment, Message
from .retry import RetryConfig

log = logging.getLogger("a2a_broker_client.worker")

MessageHandler = Callable[[Message], Awaitable[Any]]
TaskHandler = Callable[["TaskContext"], Coroutine[Any, Any, Any]]

# Reconnecting streams after the broker went away: quick at first, then every few seconds.
RECONNECT = RetryConfig(max_attempts=1_000_000, initial_backoff=0.1, multiplier=2.0, max_backoff=3.0)
# Complete/Fail are not retried by the client (not idempotent); the worker retries them on
# UNAVAILABLE or DEADLINE_EXCEEDED until the task's lease would lapse (a broker restart must not
# lose a finished task's result): the broker answers OK to a repeated Complete of an attempt
# that already committed, and a stale one is refused harmlessly (FAILED_PRECONDITION).
FINISH_RETRY = RetryConfig(max_attempts=1_000_000, initial_backoff=0.1, multiplier=2.0, max_backoff=1.0)
# Waiting for the broker at start: quick at first, then every couple of seconds.
CONNECT_RETRY = RetryConfig(max_attempts=1_000_000, initial_backoff=0.1, multiplier=2.0, max_backoff=2.0)
MAX_ERROR_CHARS = 1000


@dataclass
class _Running:
    ctx: TaskContext
    handler: asyncio.Task[Any]
    lease_lost: bool = False


@dataclass
class WorkerStats:
    messages_acked: int = 0
    messages_nacked: int = 0
    tasks_completed: int = 0
    tasks_failed: int = 0
    tasks_cancelled: int = 0
    tasks_released: int = 0
    tasks_lost: int = 0
    max_concurrent_tasks: int = 0
    errors: list[str] = field(default_factory=list)


class Worker:
    """Runs an agent: registration, heartbeats, message and task handlers, clean shutdown.

    Args:
        agent_id: this agent's id (registering again with the same id is idempotent).
        on_message: ``async def (Message)``; returning acks the message,
            raising nacks it (it is delivered again, up to its attempt limit).
        on_task: ``async def (TaskContext) -> result``; returning completes the
            task with the result (bytes, str or a JSON-able value, a :class:`TaskResult`
            naming its content type, or an A2A outcome from :mod:`a2a_turns`:
            ``input_required(question)``, ``completed(...)``...), raising fails the attempt
            (retried with backoff; :class:`NonRetryableError` fails it for good;
            :class:`TaskFailure` gives the reason word for word). Cancelled when the broker
            cancels the task, or refuses to extend its lease (``ctx.cancel_reason``,
            ``ctx.lease_lost``).
        capabilities: what the agent can do (tasks are routed by them).
        capacity: most tasks held at once (``max_concurrent_tasks``).
        address: broker address (default ``$A2A_BROKER_ADDRESS`` or 127.0.0.1:50051).
        client: an existing client to use instead (not closed by the worker).
        token, ca, client_cert, client_key: credentials for a secured broker, as for
            :class:`BrokerClient` (defaults from ``$A2A_BROKER_TOKEN``, ``$A2A_BROKER_CA``,
            ``$A2A_BROKER_CLIENT_CERT``, ``$A2A_BROKER_CLIENT_KEY``).
        max_in_flight: most messages handled at once.
        subscription: consume this subscription to subjects (see
            :meth:`BrokerClient.create_subscription`) instead of the agent's own messages; the
            workers naming it share its messages (competing consumers).
        ack_deadline: seconds to handle a message before it is redelivered (broker default 30).
        drain_timeout: on stop, seconds to let running handlers finish.
        deregister_on_exit: deregister when stopping (releases anything still held).
        name, agent_type, endpoint, labels, metadata: registration details.
        free_capacity: called at each heartbeat for the free capacity to report (None: not
            reported), for an agent whose room is not only its own ``capacity``.
        extend_every: seconds between a running task's lease extensions (default: a third of
            its lease).
        release_on_stop: when stopping with tasks still running, fail them ("released") so
            that they are retried at once; False leaves their leases to lapse (a process that
            comes back and ``resume``s them keeps them).
        on_connection: called with None whenever the task stream is live (again), and with the
            error whenever it broke or the broker could not be reached (the worker reconnects
            by itself, backing off).
        logger: where the worker's own lines go (default ``a2a_broker_client.worker``).
    """

    def __init__(
        self,
        agent_id: str,
        *,
        on_message: MessageHandler | None = None,
        on_task: TaskHandler | None = None,
        capabilities: Sequence[str] = (),
        capacity: int = 1,
        address: str | None = None,
        client: BrokerClient | None = None,
        max_in_flight: int = 10,
        subscription: str = "",
        ack_deadline: float | None = None,
        drain_timeout: float = 30.0,
        deregister_on_exit: bool = True,
        name: str = "",
        agent_type: str = "worker",
        labels: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        token: str | None = None,
        ca: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        endpoint: str = "",
        free_capacity: Callable[[], int | None] | None = None,
        extend_every: float | None = None,
        release_on_stop: bool = True,
        on_connection: Callable[[BaseException | None], None] | None = None,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
    ) -> None:
        if not agent_id:
            raise ValueError("agent_id is required")
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.agent_id = agent_id
        self.on_message = on_message
        self.on_task = on_task
        self.capabilities = list(capabilities)
        self.capacity = capacity
        self.max_in_flight = max_in_flight
        self.subscription = subscription
        self.ack_deadline = ack_deadline
        self.drain_timeout = drain_timeout
        self.deregister_on_exit = deregister_on_exit
        self._registration = dict(
            name=name,
            agent_type=agent_type,
            endpoint=endpoint,
            labels=dict(labels or {}),
            metadata=dict(metadata or {}),
        )
        self.free_capacity = free_capacity
        self.extend_every = extend_every
        self.release_on_stop = release_on_stop
        self.on_connection = on_connection
        self.log = logger or log
        self._own_client = client is None
        self.client = client or BrokerClient(
            address, token=token, ca=ca, client_cert=client_cert, client_key=client_key
        )
        self.stats = WorkerStats()
        self.heartbeat_interval = 10.0
        self.ready = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._draining = False
        self._background: list[asyncio.Task[Any]] = []
        self._task_loop: asyncio.Task[Any] | None = None
        self._message_loop: asyncio.Task[Any] | None = None
        self._message_handlers: set[asyncio.Task[Any]] = set()
        self._task_runners: set[asyncio.Task[Any]] = set()
        self._running: dict[str, _Running] = {}
        self._pending_acks: list[str] = []
        self._stream: Consumption | None = None  # the message stream open now
        self._work: WorkStream | None = None  # the task stream open now
        self._acks_unconfirmed = False  # acks written on the stream without a confirmation
        self._ack_wakeup = asyncio.Event()
        self._ack_loop: asyncio.Task[Any] | None = None
        self._started = False
        self._stopped = False
        self._reopen = False  # the message stream was closed to open it again (reconfigure)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Register and start the background loops; returns once registered (a refusal other
        than the broker's absence raises, and ``start`` may be called again)."""
        if self._started:
            return
        await self._register(wait=True)
        if self._started:  # a concurrent start() got there first
            return
        self._started = True
        self._background.append(
            asyncio.create_task(self._heartbeat_loop(), name=f"{self.agent_id}:heartbeat")
        )
        self._ack_loop = asyncio.create_task(self._acks(), name=f"{self.agent_id}:acks")
        if self.on_message is not None:
            self._message_loop = asyncio.create_task(self._messages(), name=f"{self.agent_id}:messages")
        if self.on_task is not None:
            self._task_loop = asyncio.create_task(self._tasks(), name=f"{self.agent_id}:tasks")
        self.ready.set()
        self.log.info(
            "worker %s started (capabilities %s, capacity %d)",
            self.agent_id,
            self.capabilities,
            self.capacity,
        )

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop (safe from a signal handler)."""
        self._stop_requested.set()

    async def run(self, *, handle_signals: bool = True) -> None:
        """Start, run until SIGTERM/SIGINT or :meth:`request_stop`, then stop cleanly."""
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self.request_stop)
                    installed.append(sig)
        try:
            await self.start()
            await self._stop_requested.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.stop()

    async def stop(self, drain_timeout: float | None = None) -> None:
        """Take no new work, let running handlers finish (up to ``drain_timeout``),
        release what is left, and deregister."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_requested.set()
        self._draining = True
        drain = self.drain_timeout if drain_timeout is None else drain_timeout
        self.log.info("worker %s stopping (drain up to %.1fs)", self.agent_id, drain)
        # No new tasks: end the Listen stream. The Subscribe stream stays open until the
        # running message handlers are done, so that their acks still count.
        await _cancel(self._task_loop)
        pending = self._message_handlers | self._task_runners
        if pending:
            _, late = await asyncio.wait(pending, timeout=drain)
            for t in late:
                t.cancel()
            if late:
                await asyncio.wait(late, timeout=5.0)
        self._ack_wakeup.set()
        await _cancel(self._ack_loop)
        await self._flush_acks(final=True)
        await _cancel(self._message_loop)
        for t in self._background:
            t.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.deregister_on_exit:
            try:
                await self.client.deregister(self.agent_id)
            except BrokerRpcError as exc:
                self.log.warning("worker %s: deregister failed: %s", self.agent_id, exc)
        if self._own_client:
            await self.client.close()
        self.log.info("worker %s stopped", self.agent_id)

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _say_once(self, said: bool, fmt: str, *args: Any) -> bool:
        """A warning the first time (``said`` False), DEBUG while the same trouble lasts; True."""
        (self.log.debug if said else self.log.warning)(fmt, *args)
        return True

    def _connection(self, error: BaseException | None) -> None:
        if self.on_connection is not None:
            self.on_connection(error)

    # ------------------------------------------------------------ registration

    async def _register(self, *, wait: bool = False) -> None:
        """Register; with ``wait``, until the broker is reachable (backing off, saying so once)."""
        delays = CONNECT_RETRY.delays()
        said = False
        while True:
            try:
                reg = await self.client.register(
                    self.agent_id,
                    max_concurrent_tasks=self.capacity,
                    capabilities=self.capabilities,
                    **self._registration,  # type: ignore[arg-type]
                )
                break
            except (UnavailableError, DeadlineExceededError) as exc:
                if not wait:
                    raise
                self._connection(exc)
                if not said:
                    self.log.warning(
                        "worker %s: waiting for the broker at %s (%s: %s)",
                        self.agent_id,
                        self.client.address,
                        exc.code_name,
                        exc.details,
                    )
                    said = True
                await self._pause(next(delays))
        if said:
            self.log.info("worker %s: the broker at %s is up", self.agent_id, self.client.address)
        self.heartbeat_interval = reg.heartbeat_interval or self.heartbeat_interval
        self._liveness = reg.liveness_timeout or 3 * self.heartbeat_interval

    async def _pause(self, delay: float) -> None:
        """Back off for ``delay`` seconds, meanwhile nudging the channel to reconnect."""
        started = time.monotonic()
        await self.client.wait_ready(delay)
        await asyncio.sleep(max(0.0, delay - (time.monotonic() - started)))

    def _free(self) -> int | None:
        return self.free_capacity() if self.free_capacity is not None else None

    async def heartbeat(self) -> None:
        """Heartbeat now, besides the worker's own (with the free capacity, when
        ``free_capacity`` is given); registers again if the broker forgot the agent."""
        try:
            await self.client.heartbeat(self.agent_id, free_capacity=self._free())
        except NotFoundError:
            self.log.warning("worker %s: broker forgot us; registering again", self.agent_id)
            await self._register()

    async def reconfigure(
        self, *, capabilities: Sequence[str] | None = None, capacity: int | None = None
    ) -> None:
        """Register again with new capabilities and/or capacity (the broker routes by them from
        then on). The message stream opens again if the capabilities changed: a subscription
        takes the anycast messages of the capabilities its agent had when it opened."""
        if capacity is not None and capacity < 1:
            raise ValueError("capacity must be at least 1")
        before = self.capabilities
        if capabilities is not None:
            self.capabilities = list(capabilities)
        if capacity is not None:
            self.capacity = capacity
        await self._register()
        stream = self._stream
        if self.capabilities != before and stream is not None and not stream.closed:
            self._reopen = True
            await stream.aclose()  # the message loop opens it again, at once

    async def _heartbeat_loop(self) -> None:
        said = False
        while True:
            # Well inside the liveness timeout, so one lost heartbeat does not make us offline.
            await asyncio.sleep(max(0.05, min(self.heartbeat_interval / 2, self._liveness / 4)))
            try:
                await self.client.heartbeat(self.agent_id, free_capacity=self._free())
                said = False
            except NotFoundError:
                self.log.warning("worker %s: broker forgot us; registering again", self.agent_id)
                with contextlib.suppress(BrokerRpcError):
                    await self._register()
            except BrokerRpcError as exc:
                said = self._say_once(said, "worker %s: heartbeat failed: %s", self.agent_id, exc)

    # ------------------------------------------------------------ messages

    async def _messages(self) -> None:
        delays = RECONNECT.delays()
        said = False  # an outage is logged once, not at every reconnect attempt
        while not self._draining:
            # Acks and nacks ride on the same stream (Consume; Subscribe and unary calls against
            # an older broker).
            stream = self._stream = self.client.consume(
                self.agent_id,
                max_in_flight=self.max_in_flight,
                ack_deadline=self.ack_deadline,
                subscription=self.subscription,
            )
            try:
                async for msg in stream:
                    delays, said = RECONNECT.delays(), False
                    if self._draining:
                        continue  # not started: released for redelivery when the stream ends
                    t = asyncio.create_task(self._handle_message(msg), name=f"message:{msg.message_id}")
                    self._message_handlers.add(t)
                    t.add_done_callback(self._message_handlers.discard)
            except UnimplementedError as exc:
                self.log.error("worker %s: broker does not offer Subscribe: %s", self.agent_id, exc)
                return
            except BrokerRpcError as exc:
                said = self._say_once(
                    said, "worker %s: message stream broke: %s; reconnecting", self.agent_id, exc
                )
            finally:
                await stream.aclose()
            if self._reopen:  # closed by reconfigure(): with the new capabilities, now
                self._reopen = False
                continue
            await asyncio.sleep(next(delays))

    def _on_stream(self) -> Consumption:
        """The open message stream, to ack and nack on (raises when there is none)."""
        if self._stream is None or self._stream.closed:
            raise UnavailableError(grpc.StatusCode.UNAVAILABLE, "no message stream open", "messaging/Consume")
        return self._stream

    async def _handle_message(self, msg: Message) -> None:
        assert self.on_message is not None
        try:
            await self.on_message(msg)
        except asyncio.CancelledError:
            await self._nack(msg, "worker stopped before the handler finished")
            raise
        except Exception as exc:
            self.log.info(
                "worker %s: message %s handler raised %r; nacking", self.agent_id, msg.message_id, exc
            )
            await self._nack(msg, describe(exc))
        else:
            self._pending_acks.append(msg.message_id)
            self._ack_wakeup.set()

    async def _nack(self, msg: Message, reason: str) -> None:
        try:
            try:
                await self._on_stream().nack(msg.message_id, reason=reason[:MAX_ERROR_CHARS])
            except BrokerRpcError:  # the stream broke meanwhile: a unary call still counts
                await self.client.nack(self.agent_id, msg.message_id, reason=reason[:MAX_ERROR_CHARS])
            self.stats.messages_nacked += 1
        except BrokerRpcError as exc:
            # Not fatal: the delivery lapses at its ack deadline and is redelivered anyway.
            self.log.warning("worker %s: nack of %s failed: %s", self.agent_id, msg.message_id, exc)

    async def _acks(self) -> None:
        # One Ack call for every message finished since the last one.
        while True:
            await self._ack_wakeup.wait()
            self._ack_wakeup.clear()
            await self._flush_acks()

    async def _flush_acks(self, final: bool = False) -> None:
        """Ack the messages finished since the last flush, without a confirmation frame (the
        broker commits them before it counts them; a lost ack is a redelivery, as for any
        at-least-once handler). ``final`` (stopping): confirmed, so that the earlier ones are
        known committed too before the stream closes."""
        ids, self._pending_acks = self._pending_acks, []
        if not ids and not (final and self._acks_unconfirmed):
            return
        try:
            try:
                stream = self._on_stream()
                if final or not await stream.ack_later(ids):
                    await stream.ack(ids)
                    self._acks_unconfirmed = False
                else:
                    self._acks_unconfirmed = True
            except BrokerRpcError:  # the stream broke meanwhile: a unary ack still counts
                if ids:
                    await self.client.ack(self.agent_id, ids)
            self.stats.messages_acked += len(ids)
        except asyncio.CancelledError:
            # Cancelled mid-call (stop() ends the ack loop): not known to have landed, so the
            # final flush sends these again; acking twice is harmless.
            self._pending_acks[:0] = ids
            raise
        except BrokerRpcError as exc:
            self.log.warning("worker %s: ack of %d messages failed: %s", self.agent_id, len(ids), exc)

    # ------------------------------------------------------------ tasks

    async def _tasks(self) -> None:
        delays = RECONNECT.delays()
        said = False  # an outage is logged once, not at every reconnect attempt
        while True:
            # Completions, failures and extensions ride on the same stream (Work; Listen and
            # unary calls against an older broker).
            stream = self._work = self.client.work(self.agent_id)
            try:
                if self.on_connection is not None:
                    await stream.wait_live()
                    self._connection(None)
                async for ev in stream:
                    delays, said = RECONNECT.delays(), False
                    for c in ev.cancellations:
                        self._cancel_task(c.task_id, c.attempt, c.reason or "cancelled")
                    for a in ev.assignments:
                        self._start_task(a)
            except UnimplementedError as exc:
                self.log.error("worker %s: broker does not offer Listen: %s", self.agent_id, exc)
                return
            except BrokerRpcError as exc:
                self._connection(exc)
                said = self._say_once(
                    said, "worker %s: task stream broke: %s; reconnecting", self.agent_id, exc
                )
            finally:
                await stream.aclose()
            await asyncio.sleep(next(delays))

    def resume(self, assignment: Assignment) -> None:
        """Run a task whose lease this agent holds already (taken, say, before this process
        restarted): its handler runs, its lease is kept and its outcome reported, as for a task
        the broker pushes. Call after :meth:`start`."""
        self._start_task(assignment)

    def _start_task(self, a: Assignment) -> None:
        current = self._running.get(a.task.task_id)
        if current is not None and current.ctx.attempt == a.attempt:
            return  # already running this lease (pushed again after a reconnect)
        ctx = TaskContext(self, a)
        assert self.on_task is not None
        handler = asyncio.create_task(self.on_task(ctx), name=f"task:{a.task.task_id}")
        self._running[a.task.task_id] = _Running(ctx, handler)
        # Handlers still working (a finished one may still be sending its Complete, and the
        # broker may already have pushed the next task into the capacity that freed).
        busy = sum(1 for r in self._running.values() if not r.handler.done())
        self.stats.max_concurrent_tasks = max(self.stats.max_concurrent_tasks, busy)
        runner = asyncio.create_task(self._run_task(ctx, handler), name=f"lease:{a.task.task_id}")
        self._task_runners.add(runner)
        runner.add_done_callback(self._task_runners.discard)

    def _cancel_task(self, task_id: str, attempt: int, reason: str) -> None:
        run = self._running.get(task_id)
        if run is None or (attempt and run.ctx.attempt != attempt):
            return
        self.log.info("worker %s: task %s cancelled by the broker: %s", self.agent_id, task_id, reason)
        run.ctx.cancel_reason = reason
        run.handler.cancel()

    async def _run_task(self, ctx: TaskContext, handler: asyncio.Task[Any]) -> None:
        run = self._running[ctx.task_id]
        keeper = asyncio.create_task(self._keep_lease(run))
        try:
            try:
                await asyncio.wait({handler})
            except asyncio.CancelledError:
                # Drain time is over: stop the handler and hand the task back (or leave its
                # lease to lapse: release_on_stop).
                handler.cancel()
                await asyncio.wait({handler}, timeout=5.0)
                keeper.cancel()
                if self.release_on_stop:
                    await self._finish(ctx, "fail", error="released: worker shutting down")
                    self.stats.tasks_released += 1
                raise
            keeper.cancel()
            if handler.cancelled():
                if ctx.cancel_reason:
                    self.stats.tasks_cancelled += 1
                elif run.lease_lost:
                    self.stats.tasks_lost += 1
                else:  # the handler cancelled itself: treat as a failure
                    await self._finish(ctx, "fail", error="handler was cancelled")
                return
            exc = handler.exception()
            if exc is None:
                await self._finish(ctx, "complete", result=handler.result())
            else:
                self.log.info("worker %s: task %s handler raised %r", self.agent_id, ctx.task_id, exc)
                await self._finish(
                    ctx, "fail", error=describe(exc), non_retryable=isinstance(exc, NonRetryableError)
                )
        finally:
            keeper.cancel()
            if self._running.get(ctx.task_id) is run:
                del self._running[ctx.task_id]

    async def _finish(self, ctx: TaskContext, how: str, **kwargs: Any) -> None:
        delays = FINISH_RETRY.delays()
        said = False
        while True:
            try:
                if how == "complete":
                    result, ctype = result_of(kwargs["result"])
                    await self._outcome("complete", ctx, result, result_content_type=ctype)
                    self.stats.tasks_completed += 1
                else:
                    await self._outcome(
                        "fail",
                        ctx,
                        kwargs["error"][:MAX_ERROR_CHARS],
                        non_retryable=kwargs.get("non_retryable", False),
                    )
                    self.stats.tasks_failed += 1
                return
            except FailedPreconditionError as exc:
                self.log.warning(
                    "worker %s: task %s: lease no longer ours: %s", self.agent_id, ctx.task_id, exc
                )
                return
            except (UnavailableError, DeadlineExceededError) as exc:
                # The broker is away (or restarting): keep trying while the lease is ours.
                left = ctx._lease_expires - time.time()
                if left <= 0:
                    self.log.error(
                        "worker %s: could not %s task %s before its lease lapsed: %s",
                        self.agent_id,
                        how,
                        ctx.task_id,
                        exc,
                    )
                    self.stats.errors.append(f"{how} {ctx.task_id}: {exc}")
                    return
                if not said:
                    self.log.warning(
                        "worker %s: %s of task %s not acknowledged (%s); retrying for up to %.0fs",
                        self.agent_id,
                        how,
                        ctx.task_id,
                        exc.code_name,
                        left,
                    )
                    said = True
                await self._pause(min(next(delays), left))
            except BrokerRpcError as exc:
                self.log.error("worker %s: could not %s task %s: %s", self.agent_id, how, ctx.task_id, exc)
                self.stats.errors.append(f"{how} {ctx.task_id}: {exc}")
                return

    def _lease_period(self, ctx: TaskContext, expires_at: Any = None) -> float:
        if self.extend_every is not None:
            return self.extend_every
        lease = ctx.task.spec.lease_timeout
        if lease:
            return max(0.1, c.seconds(lease) / 3)
        if expires_at is not None:
            remaining = expires_at.timestamp() - time.time()
            return max(0.1, remaining / 3)
        return 10.0

    async def _keep_lease(self, run: _Running) -> None:
        ctx = run.ctx
        period = self._lease_period(ctx, ctx.task.lease_expires_at)
        while True:
            await asyncio.sleep(period)
            try:
                await self._extend(ctx)
            except (FailedPreconditionError, NotFoundError) as exc:
                self.log.warning("worker %s: lost the lease of task %s: %s", self.agent_id, ctx.task_id, exc)
                run.lease_lost = ctx.lease_lost = True
                run.handler.cancel()
                return
            except BrokerRpcError as exc:
                self.log.warning("worker %s: extending task %s failed: %s", self.agent_id, ctx.task_id, exc)
                period = max(0.1, period / 2)

    async def _outcome(self, how: str, ctx: TaskContext, *args: Any, **kwargs: Any) -> Any:
        """Complete, fail or extend on the Work stream; by a unary call when none is open (it
        ended meanwhile: the outcome still counts, sent again if it may have been lost)."""
        stream = self._work
        if stream is not None and not stream.closed:
            try:
                return await getattr(stream, how)(ctx.task_id, ctx.attempt, *args, **kwargs)
            except (UnavailableError, StreamClosedError):
                pass
        return await getattr(self.client, how)(ctx.task_id, self.agent_id, ctx.attempt, *args, **kwargs)

    async def _extend(self, ctx: TaskContext) -> None:
        expires = await self._outcome("extend_lease", ctx, progress=ctx._progress, status_note=ctx._note)
        if expires is not None:
            ctx._lease_expires = expires.timestamp()


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
