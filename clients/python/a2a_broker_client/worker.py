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
from . import a2a_turns
from ._consume import Consumption
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
from .models import Assignment, Message, Task
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
# Without a known lease expiry, how long a finished task's Complete/Fail is retried.
DEFAULT_FINISH_WINDOW = 60.0
MAX_ERROR_CHARS = 1000


class NonRetryableError(Exception):
    """Raise from a task handler to fail the task for good (no retries left used)."""


class TaskContext:
    """What a task handler gets: the task, its lease, and a way to report progress.

    Attributes:
        task: the task as assigned.
        attempt: the attempt this lease is for.
        agent_id: the worker's agent id.
        cancel_reason: set when the broker cancelled the task (the handler is
            then cancelled too).
    """

    def __init__(self, worker: Worker, assignment: Assignment) -> None:
        self._worker = worker
        self.task: Task = assignment.task
        self.attempt = assignment.attempt
        self.agent_id = worker.agent_id
        self.cancel_reason = ""
        self._progress: int | None = None
        self._note = ""
        # When the lease lapses (epoch seconds), as last heard from the broker.
        expires = assignment.task.lease_expires_at
        if expires is not None:
            self._lease_expires = expires.timestamp()
        else:
            self._lease_expires = time.time() + (
                c.seconds(assignment.task.spec.lease_timeout or 0) or DEFAULT_FINISH_WINDOW
            )

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def client(self) -> BrokerClient:
        """The worker's client, e.g. to read prerequisites' results or send messages."""
        return self._worker.client

    @property
    def payload(self) -> bytes:
        return self.task.spec.payload if isinstance(self.task.spec.payload, bytes) else b""

    @property
    def data(self) -> Any:
        """The payload decoded by its content type (JSON value, text, or bytes)."""
        return self.task.spec.data

    @property
    def turn(self) -> dict[str, Any] | None:
        """For a task from the A2A gateway, its turn: ``{"message", "history", "contextId"}``
        (see :mod:`a2a_turns`); None for any other task."""
        if self.task.spec.content_type != a2a_turns.TURN_TYPE:
            return None
        return a2a_turns.turn(self.payload)

    @property
    def turn_text(self) -> str:
        """The text of the turn's message (the caller's words), "" for a task not from A2A."""
        t = self.turn
        return a2a_turns.text_of(t.get("message", {})) if t else ""

    async def progress(self, percent: int | None = None, note: str = "") -> None:
        """Report progress (0-100) and/or a status note now; also extends the lease."""
        if percent is not None:
            self._progress = percent
        if note:
            self._note = note
        await self._worker._extend(self)


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
            task with the result (bytes, str or a JSON-able value, or an A2A outcome
            from :mod:`a2a_turns`: ``input_required(question)``, ``completed(...)``...),
            raising fails the attempt (retried with backoff; :class:`NonRetryableError`
            fails it for good). Cancelled when the broker cancels the task.
        capabilities: what the agent can do (tasks are routed by them).
        capacity: most tasks held at once (``max_concurrent_tasks``).
        address: broker address (default ``$A2A_BROKER_ADDRESS`` or 127.0.0.1:50051).
        client: an existing client to use instead (not closed by the worker).
        token, ca, client_cert, client_key: credentials for a secured broker, as for
            :class:`BrokerClient` (defaults from ``$A2A_BROKER_TOKEN``, ``$A2A_BROKER_CA``,
            ``$A2A_BROKER_CLIENT_CERT``, ``$A2A_BROKER_CLIENT_KEY``).
        max_in_flight: most messages handled at once.
        ack_deadline: seconds to handle a message before it is redelivered (broker default 30).
        drain_timeout: on stop, seconds to let running handlers finish.
        deregister_on_exit: deregister when stopping (releases anything still held).
        name, agent_type, labels, metadata: registration details.
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
        self.ack_deadline = ack_deadline
        self.drain_timeout = drain_timeout
        self.deregister_on_exit = deregister_on_exit
        self._registration = dict(
            name=name, agent_type=agent_type, labels=dict(labels or {}), metadata=dict(metadata or {})
        )
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
        self._ack_wakeup = asyncio.Event()
        self._ack_loop: asyncio.Task[Any] | None = None
        self._started = False
        self._stopped = False

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Register and start the background loops; returns once registered."""
        if self._started:
            return
        self._started = True
        await self._register(wait=True)
        self._background.append(
            asyncio.create_task(self._heartbeat_loop(), name=f"{self.agent_id}:heartbeat")
        )
        self._ack_loop = asyncio.create_task(self._acks(), name=f"{self.agent_id}:acks")
        if self.on_message is not None:
            self._message_loop = asyncio.create_task(self._messages(), name=f"{self.agent_id}:messages")
        if self.on_task is not None:
            self._task_loop = asyncio.create_task(self._tasks(), name=f"{self.agent_id}:tasks")
        self.ready.set()
        log.info(
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
        log.info("worker %s stopping (drain up to %.1fs)", self.agent_id, drain)
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
        await self._flush_acks()
        await _cancel(self._message_loop)
        for t in self._background:
            t.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.deregister_on_exit:
            try:
                await self.client.deregister(self.agent_id)
            except BrokerRpcError as exc:
                log.warning("worker %s: deregister failed: %s", self.agent_id, exc)
        if self._own_client:
            await self.client.close()
        log.info("worker %s stopped", self.agent_id)

    async def __aenter__(self) -> Worker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

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
                if not said:
                    log.warning(
                        "worker %s: waiting for the broker at %s (%s: %s)",
                        self.agent_id,
                        self.client.address,
                        exc.code_name,
                        exc.details,
                    )
                    said = True
                await self._pause(next(delays))
        if said:
            log.info("worker %s: the broker at %s is up", self.agent_id, self.client.address)
        self.heartbeat_interval = reg.heartbeat_interval or self.heartbeat_interval
        self._liveness = reg.liveness_timeout or 3 * self.heartbeat_interval

    async def _pause(self, delay: float) -> None:
        """Back off for ``delay`` seconds, meanwhile nudging the channel to reconnect."""
        started = time.monotonic()
        await self.client.wait_ready(delay)
        await asyncio.sleep(max(0.0, delay - (time.monotonic() - started)))

    async def _heartbeat_loop(self) -> None:
        said = False
        while True:
            # Well inside the liveness timeout, so one lost heartbeat does not make us offline.
            await asyncio.sleep(max(0.05, min(self.heartbeat_interval / 2, self._liveness / 4)))
            try:
                await self.client.heartbeat(self.agent_id)
                said = False
            except NotFoundError:
                log.warning("worker %s: broker forgot us; registering again", self.agent_id)
                with contextlib.suppress(BrokerRpcError):
                    await self._register()
            except BrokerRpcError as exc:
                said = _say_once(said, "worker %s: heartbeat failed: %s", self.agent_id, exc)

    # ------------------------------------------------------------ messages

    async def _messages(self) -> None:
        delays = RECONNECT.delays()
        said = False  # an outage is logged once, not at every reconnect attempt
        while not self._draining:
            # Acks and nacks ride on the same stream (Consume; Subscribe and unary calls against
            # an older broker).
            stream = self._stream = self.client.consume(
                self.agent_id, max_in_flight=self.max_in_flight, ack_deadline=self.ack_deadline
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
                log.error("worker %s: broker does not offer Subscribe: %s", self.agent_id, exc)
                return
            except BrokerRpcError as exc:
                said = _say_once(
                    said, "worker %s: message stream broke: %s; reconnecting", self.agent_id, exc
                )
            finally:
                await stream.aclose()
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
            log.info("worker %s: message %s handler raised %r; nacking", self.agent_id, msg.message_id, exc)
            await self._nack(msg, _describe(exc))
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
            log.warning("worker %s: nack of %s failed: %s", self.agent_id, msg.message_id, exc)

    async def _acks(self) -> None:
        # One Ack call for every message finished since the last one.
        while True:
            await self._ack_wakeup.wait()
            self._ack_wakeup.clear()
            await self._flush_acks()

    async def _flush_acks(self) -> None:
        ids, self._pending_acks = self._pending_acks, []
        if not ids:
            return
        try:
            try:
                await self._on_stream().ack(ids)
            except BrokerRpcError:  # the stream broke meanwhile: a unary ack still counts
                await self.client.ack(self.agent_id, ids)
            self.stats.messages_acked += len(ids)
        except asyncio.CancelledError:
            # Cancelled mid-call (stop() ends the ack loop): not known to have landed, so the
            # final flush sends these again; acking twice is harmless.
            self._pending_acks[:0] = ids
            raise
        except BrokerRpcError as exc:
            log.warning("worker %s: ack of %d messages failed: %s", self.agent_id, len(ids), exc)

    # ------------------------------------------------------------ tasks

    async def _tasks(self) -> None:
        delays = RECONNECT.delays()
        said = False  # an outage is logged once, not at every reconnect attempt
        while True:
            # Completions, failures and extensions ride on the same stream (Work; Listen and
            # unary calls against an older broker).
            stream = self._work = self.client.work(self.agent_id)
            try:
                async for ev in stream:
                    delays, said = RECONNECT.delays(), False
                    for c in ev.cancellations:
                        self._cancel_task(c.task_id, c.attempt, c.reason or "cancelled")
                    for a in ev.assignments:
                        self._start_task(a)
            except UnimplementedError as exc:
                log.error("worker %s: broker does not offer Listen: %s", self.agent_id, exc)
                return
            except BrokerRpcError as exc:
                said = _say_once(said, "worker %s: task stream broke: %s; reconnecting", self.agent_id, exc)
            finally:
                await stream.aclose()
            await asyncio.sleep(next(delays))

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
        log.info("worker %s: task %s cancelled by the broker: %s", self.agent_id, task_id, reason)
        run.ctx.cancel_reason = reason
        run.handler.cancel()

    async def _run_task(self, ctx: TaskContext, handler: asyncio.Task[Any]) -> None:
        run = self._running[ctx.task_id]
        keeper = asyncio.create_task(self._keep_lease(run))
        try:
            try:
                await asyncio.wait({handler})
            except asyncio.CancelledError:
                # Drain time is over: stop the handler and hand the task back.
                handler.cancel()
                await asyncio.wait({handler}, timeout=5.0)
                keeper.cancel()
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
                log.info("worker %s: task %s handler raised %r", self.agent_id, ctx.task_id, exc)
                await self._finish(
                    ctx, "fail", error=_describe(exc), non_retryable=isinstance(exc, NonRetryableError)
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
                    result, ctype = _result(kwargs["result"])
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
                log.warning("worker %s: task %s: lease no longer ours: %s", self.agent_id, ctx.task_id, exc)
                return
            except (UnavailableError, DeadlineExceededError) as exc:
                # The broker is away (or restarting): keep trying while the lease is ours.
                left = ctx._lease_expires - time.time()
                if left <= 0:
                    log.error(
                        "worker %s: could not %s task %s before its lease lapsed: %s",
                        self.agent_id,
                        how,
                        ctx.task_id,
                        exc,
                    )
                    self.stats.errors.append(f"{how} {ctx.task_id}: {exc}")
                    return
                if not said:
                    log.warning(
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
                log.error("worker %s: could not %s task %s: %s", self.agent_id, how, ctx.task_id, exc)
                self.stats.errors.append(f"{how} {ctx.task_id}: {exc}")
                return

    def _lease_period(self, ctx: TaskContext, expires_at: Any = None) -> float:
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
                log.warning("worker %s: lost the lease of task %s: %s", self.agent_id, ctx.task_id, exc)
                run.lease_lost = True
                run.handler.cancel()
                return
            except BrokerRpcError as exc:
                log.warning("worker %s: extending task %s failed: %s", self.agent_id, ctx.task_id, exc)
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


def _result(value: Any) -> tuple[Any, str]:
    """A handler's return value and the content type to complete with: an A2A outcome (or the
    ``(bytes, RESULT_TYPE)`` pair of :func:`a2a_turns.result`) as the A2A result type."""
    if isinstance(value, a2a_turns.Outcome):
        return value.encode()
    if isinstance(value, tuple) and len(value) == 2 and value[1] == a2a_turns.RESULT_TYPE:
        return value[0], value[1]
    return value, ""


def _say_once(said: bool, fmt: str, *args: Any) -> bool:
    """A warning the first time (``said`` False), DEBUG while the same trouble lasts; True."""
    (log.debug if said else log.warning)(fmt, *args)
    return True


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
