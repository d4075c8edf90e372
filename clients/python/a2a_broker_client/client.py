"""The asyncio client: every RPC of AgentRegistry, Messaging and TaskQueue."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import grpc

from . import _convert as c
from . import models as m
from ._consume import Consumption
from ._limits import LimitCalls
from ._paging import pages as _pages
from ._stream import Stream
from ._topics import TopicsMixin
from ._work import WorkStream
from .errors import BrokerRpcError, UnavailableError, error_for, from_grpc
from .pb import (
    agents_pb2,
    agents_pb2_grpc,
    messaging_pb2,
    messaging_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)
from .retry import RETRYABLE_CODES, RetryConfig
from .schedules import ScheduleCalls
from .security import Security
from .tracing import trace_metadata

_STATUS_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}

ADDRESS_ENV = "A2A_BROKER_ADDRESS"
DEFAULT_ADDRESS = "127.0.0.1:50051"
T = TypeVar("T")
# A batched Publish request carries about this many payload bytes at most (well under the
# broker's request size limit).
MAX_PUBLISH_BATCH_BYTES = 1 << 20
_UNSET: Any = object()


# gRPC's own reconnect backoff grows to 120 s: after a broker restart a channel would sit in
# TRANSIENT_FAILURE (every call failing at once with UNAVAILABLE) long after the broker is back.
DEFAULT_CHANNEL_OPTIONS: dict[str, Any] = {
    "grpc.max_receive_message_length": -1,
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
}


def default_address() -> str:
    """``$A2A_BROKER_ADDRESS``, else ``127.0.0.1:50051``."""
    return os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS


class BrokerClient(ScheduleCalls, TopicsMixin, LimitCalls):
    """An asyncio client for one broker.

    Use it as ``async with BrokerClient(address) as client:`` (or call
    :meth:`close`). Every method raises
    :class:`~a2a_broker_client.BrokerRpcError` (a subclass per status code)
    when the call fails.

    Retries: calls that are safe to repeat are retried with backoff when the
    broker answers UNAVAILABLE (see :class:`RetryConfig`). Safe calls are the
    reads, ``heartbeat``, ``ack``, ``extend_lease``, ``register`` with an
    explicit agent id, and ``send``/``send_batch``/``submit``/``submit_graph``
    when every message or task carries an idempotency key. Everything else
    (``claim``, ``complete``, ``fail``, ``nack``, ``cancel``, ``requeue``,
    ``deregister``, sends and submits without a key) is tried once.

    Args:
        address: ``host:port`` of the broker (default ``$A2A_BROKER_ADDRESS``
            or ``127.0.0.1:50051``).
        timeout: deadline in seconds for each unary call (``None``: none).
            Long polls (``claim(wait=...)``) get their wait on top.
        retry: backoff for safe calls; ``RetryConfig(max_attempts=1)`` disables it.
        channel_options: extra gRPC channel options.
        token: bearer token for a broker with ``--auth`` (default ``$A2A_BROKER_TOKEN``).
        tls: connect with TLS (default: on when a CA or client certificate is given, or
            ``$A2A_BROKER_TLS=1``; the system's roots are trusted when no CA is).
        ca: PEM file of the CA to trust (default ``$A2A_BROKER_CA``).
        client_cert, client_key: PEM files of a client certificate for mutual TLS
            (default ``$A2A_BROKER_CLIENT_CERT`` / ``$A2A_BROKER_CLIENT_KEY``).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float | None = 30.0,
        retry: RetryConfig | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
        token: str | None = None,
        tls: bool | None = None,
        ca: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
    ) -> None:
        self.address = address or default_address()
        self.security = Security.resolve(token, tls, ca, client_cert, client_key)
        self.timeout = timeout
        self.retry = retry or RetryConfig()
        options = dict(DEFAULT_CHANNEL_OPTIONS)
        options.update(dict(channel_options))
        self._options = list(options.items())
        self._channel: grpc.aio.Channel | None = None

    # ------------------------------------------------------------ lifecycle

    def _ensure(self) -> None:
        # Created lazily so that the channel binds to the running event loop.
        if self._channel is None:
            self._channel = self.security.channel(self.address, self._options)
            self._agents = agents_pb2_grpc.AgentRegistryStub(self._channel)
            self._messaging = messaging_pb2_grpc.MessagingStub(self._channel)
            self._tasks = tasks_pb2_grpc.TaskQueueStub(self._channel)

    async def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the channel to be connected (connecting if idle);
        True once it is. Useful after UNAVAILABLE, before trying a call again."""
        self._ensure()
        assert self._channel is not None
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        """Close the channel (ending any open streams)."""
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()

    async def __aenter__(self) -> BrokerClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _unary(
        self,
        service: str,
        method: str,
        request: Any,
        *,
        safe: bool,
        timeout: float | None = _UNSET,
        metadata: tuple[tuple[str, str], ...] | None = None,
    ) -> Any:
        self._ensure()
        fn = getattr(getattr(self, "_" + service), method)
        name = f"{service}/{method}"
        timeout = self.timeout if timeout is _UNSET else timeout
        delays = self.retry.delays() if safe else iter(())
        while True:
            try:
                return await fn(request, timeout=timeout, metadata=metadata)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in RETRYABLE_CODES:
                    delay = next(delays, None)
                    if delay is not None:
                        await asyncio.sleep(delay)
                        continue
                raise from_grpc(exc, name) from exc

    def _stream(
        self, service: str, method: str, request: Any, convert: Callable[[Any], list[T]]
    ) -> Stream[T]:
        self._ensure()
        call = getattr(getattr(self, "_" + service), method)(request)
        return Stream(call, convert, f"{service}/{method}")

    # ------------------------------------------------------------ agents

    async def register(
        self,
        agent_id: str = "",
        *,
        max_concurrent_tasks: int = 1,
        name: str = "",
        agent_type: str = "worker",
        capabilities: Sequence[str] = (),
        endpoint: str = "",
        labels: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        exposure: m.Exposure | str | None = None,
        capability_descriptions: Mapping[str, str] | None = None,
    ) -> m.Registration:
        """Register (or re-register) an agent. Empty ``agent_id``: the broker generates one.
        ``capabilities``: the tasks it takes are those requiring some of them; a task requiring none
        goes to an agent registered without capabilities, or listing ``"*"`` beside its own.
        ``exposure``: take work from the broker's API, the A2A gateway, or both (the default);
        ``capability_descriptions``: shown on the A2A agent card."""
        req = agents_pb2.RegisterRequest(
            agent_id=agent_id,
            name=name,
            agent_type=agent_type,
            capabilities=list(capabilities),
            max_concurrent_tasks=max_concurrent_tasks,
            endpoint=endpoint,
            labels=dict(labels or {}),
            exposure=c.from_enum(agents_pb2.Exposure, exposure),
            capability_descriptions=dict(capability_descriptions or {}),
        )
        if metadata:
            req.metadata.CopyFrom(c.struct(dict(metadata)))
        resp = await self._unary("agents", "Register", req, safe=bool(agent_id))
        return c.registration(resp, created=resp.created)

    async def heartbeat(
        self, agent_id: str, *, status: m.AgentStatus | str | None = None, free_capacity: int | None = None
    ) -> m.Registration:
        """Mark the agent alive (optionally with a status and its free capacity)."""
        req = agents_pb2.HeartbeatRequest(
            agent_id=agent_id, status=c.from_enum(agents_pb2.AgentStatus, status)
        )
        if free_capacity is not None:
            req.free_capacity = free_capacity
        return c.registration(await self._unary("agents", "Heartbeat", req, safe=True))

    async def deregister(self, agent_id: str) -> m.DeregisterResult:
        """Remove the agent: its leased tasks are requeued and unacked messages released."""
        resp = await self._unary(
            "agents", "Deregister", agents_pb2.DeregisterRequest(agent_id=agent_id), safe=False
        )
        return m.DeregisterResult(resp.requeued_tasks, resp.released_messages)

    async def get_agent(self, agent_id: str) -> m.Agent:
        return c.agent(
            await self._unary("agents", "GetAgent", agents_pb2.GetAgentRequest(agent_id=agent_id), safe=True)
        )

    async def list_agents(
        self,
        *,
        status: m.AgentStatus | str | None = None,
        agent_type: str = "",
        capability: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> m.Page[m.Agent]:
        """One page of agents ordered by id (``page_size`` 0: the broker's default, 100)."""
        req = agents_pb2.ListAgentsRequest(
            status=c.from_enum(agents_pb2.AgentStatus, status),
            agent_type=agent_type,
            capability=capability,
            page_size=page_size,
            page_token=page_token,
        )
        resp = await self._unary("agents", "ListAgents", req, safe=True)
        return m.Page([c.agent(a) for a in resp.agents], resp.next_page_token)

    async def iter_agents(self, **filters: Any) -> AsyncIterator[m.Agent]:
        """Every agent matching ``list_agents`` filters, following pages."""
        async for a in _pages(self.list_agents, filters):
            yield a

    def watch_agents(
        self, *, agent_ids: Sequence[str] = (), capability: str = "", include_snapshot: bool = False
    ) -> Stream[m.AgentEvent]:
        """Agent lifecycle events (with ``include_snapshot``: current agents first, as REGISTERED)."""
        req = agents_pb2.WatchAgentsRequest(
            agent_ids=list(agent_ids), capability=capability, include_snapshot=include_snapshot
        )
        return self._stream("agents", "WatchAgents", req, lambda r: [c.agent_event(r)])

    # ------------------------------------------------------------ messaging

    async def send(
        self,
        sender_id: str,
        to: m.Target | str,
        payload: Any = b"",
        *,
        require_recipient: bool = False,
        traceparent: str | None = None,
        **options: Any,
    ) -> m.SendResult:
        """Send one message; answers once it is committed.

        Args:
            sender_id: the sending agent (must be registered).
            to: a recipient agent id, or a :class:`Target` (broadcast, anycast).
            payload: bytes, str (UTF-8 text) or any JSON-able value.
            require_recipient: refuse (``NotFoundError`` / ``FailedPreconditionError``) unless a
                registered agent would receive it now. By default a message to an agent id or a
                capability not registered yet is stored and waits for it.
            traceparent: the W3C trace context to send (default: the current OpenTelemetry
                span's, if any); the receiver finds it in the message's ``traceparent`` header.
            **options: the other fields of :class:`OutgoingMessage`
                (``message_type``, ``priority``, ``ttl``, ``idempotency_key``...).
        """
        out = m.OutgoingMessage(
            sender_id=sender_id, to=to, payload=payload, require_recipient=require_recipient, **options
        )
        req = c.send_request(out)
        resp = await self._unary(
            "messaging", "Send", req, safe=bool(out.idempotency_key), metadata=trace_metadata(traceparent)
        )
        return c.send_result(resp)

    async def reply(self, message: m.Message, payload: Any = b"", **options: Any) -> m.SendResult:
        """Answer ``message``: from its recipient to its sender, in its conversation and with its
        correlation id (unless ``options`` name others), marked ``in_reply_to`` it."""
        if not message.recipient_id:
            raise ValueError("reply: the message has no recipient to answer from (an undelivered anycast)")
        return await self.send(
            message.recipient_id, message.sender_id, payload, in_reply_to=message.message_id, **options
        )

    async def list_conversations(
        self, *, participant: str = "", page_size: int = 0, page_token: str = ""
    ) -> m.Page[m.Conversation]:
        """One page of conversations in id order (``participant``: those it took part in)."""
        req = messaging_pb2.ListConversationsRequest(
            participant=participant, page_size=page_size, page_token=page_token
        )
        resp = await self._unary("messaging", "ListConversations", req, safe=True)
        return m.Page([c.conversation(x) for x in resp.conversations], resp.next_page_token)

    async def send_batch(
        self, messages: Sequence[m.OutgoingMessage], *, traceparent: str | None = None
    ) -> list[m.SendResult]:
        """Send many messages in one transaction (all or none); results in request order."""
        req = messaging_pb2.SendBatchRequest(messages=[c.send_request(o) for o in messages])
        safe = bool(messages) and all(o.idempotency_key for o in messages)
        resp = await self._unary(
            "messaging", "SendBatch", req, safe=safe, metadata=trace_metadata(traceparent)
        )
        return [c.send_result(r) for r in resp.results]

    async def publish(
        self, messages: Iterable[m.OutgoingMessage] | AsyncIterable[m.OutgoingMessage]
    ) -> AsyncIterator[m.PublishResult]:
        """Send messages on one Publish stream (publisher confirms): one :class:`PublishResult` per
        message, in the order given, each once committed (a refused message is answered alone
        and the others go on). At most the broker's window is kept unconfirmed. Far cheaper than
        one :meth:`send` per message."""
        self._ensure()
        call = self._messaging.Publish()
        tasks: list[asyncio.Future[None]] = []
        try:
            headers = dict(await call.initial_metadata() or ())
            window = int(headers.get("a2a-publish-window", "1000"))
            batched = headers.get("a2a-publish-batch") == "1"  # it takes several per request
            room = asyncio.Semaphore(window)
            ready: asyncio.Queue[messaging_pb2.SendRequest | None] = asyncio.Queue()

            async def pull() -> None:
                async for o in _aiter(messages):
                    await room.acquire()
                    ready.put_nowait(c.send_request(o))
                ready.put_nowait(None)

            async def write() -> None:
                # Whatever is ready at each turn goes in one request (never waiting for more).
                seq, end = 0, False
                while not end and (first := await ready.get()) is not None:
                    batch, size = [first], len(first.payload)
                    while batched and not ready.empty() and size < MAX_PUBLISH_BATCH_BYTES:
                        nxt = ready.get_nowait()
                        if nxt is None:
                            end = True
                            break
                        batch.append(nxt)
                        size += len(nxt.payload)
                    seq += 1
                    if len(batch) == 1:
                        await call.write(messaging_pb2.PublishRequest(sequence=seq, message=batch[0]))
                    else:
                        await call.write(messaging_pb2.PublishRequest(sequence=seq, messages=batch))
                await call.done_writing()

            tasks += [asyncio.ensure_future(pull()), asyncio.ensure_future(write())]
            n = 0
            async for resp in call:
                for r in resp.results if resp.results else (resp,):
                    room.release()
                    n += 1
                    yield c.publish_result(r, n)
            for t in tasks:
                await t
        except grpc.aio.AioRpcError as exc:
            raise from_grpc(exc, "messaging/Publish") from exc
        finally:
            for t in tasks:
                t.cancel()
            call.cancel()

    def subscribe(
        self,
        agent_id: str,
        *,
        max_in_flight: int = 0,
        ack_deadline: m.Seconds | None = None,
        max_batch: int = 0,
        subscription: str = "",
    ) -> Stream[m.Message]:
        """The agent's messages, backlog first then live, one :class:`Message` at a time.

        Ack each with :meth:`ack` (or :meth:`nack`). Closing the stream releases
        its unacknowledged messages for redelivery. With ``subscription`` (see
        :meth:`create_subscription`): that subscription's messages instead, shared with the other
        streams consuming it (competing consumers); ``ack_deadline`` defaults to the subscription's.
        """
        req = messaging_pb2.SubscribeRequest(
            agent_id=agent_id, max_in_flight=max_in_flight, max_batch=max_batch, subscription=subscription
        )
        if ack_deadline is not None:
            req.ack_deadline.CopyFrom(c.duration(ack_deadline))
        return self._stream("messaging", "Subscribe", req, lambda r: [c.message(x) for x in r.messages])

    def consume(
        self,
        agent_id: str,
        *,
        max_in_flight: int = 0,
        ack_deadline: m.Seconds | None = None,
        max_batch: int = 0,
        subscription: str = "",
    ) -> Consumption:
        """As :meth:`subscribe`, with acks and nacks on the same stream: ``await c.ack(ids)`` is
        answered once committed, and costs no call of its own (the broker's ``Consume``; against a
        broker without it, ``Subscribe`` and unary :meth:`ack` and :meth:`nack`)."""
        self._ensure()
        req = messaging_pb2.SubscribeRequest(
            agent_id=agent_id, max_in_flight=max_in_flight, max_batch=max_batch, subscription=subscription
        )
        if ack_deadline is not None:
            req.ack_deadline.CopyFrom(c.duration(ack_deadline))

        def fallback() -> Stream[m.Message]:
            return self._stream("messaging", "Subscribe", req, lambda r: [c.message(x) for x in r.messages])

        def unary_nack(ids: list[str], **kw: Any) -> Any:
            return self.nack(agent_id, ids, **kw)

        return Consumption(
            self._messaging.Consume, req, fallback, lambda ids: self.ack(agent_id, ids), unary_nack
        )

    async def ack(
        self, agent_id: str, message_ids: Sequence[str] | str, *, traceparent: str | None = None
    ) -> int:
        """Mark delivered messages processed; returns how many changed (acking twice is harmless).
        Pass a message's ``headers["traceparent"]`` as ``traceparent`` to continue its trace."""
        ids = [message_ids] if isinstance(message_ids, str) else list(message_ids)
        req = messaging_pb2.AckRequest(agent_id=agent_id, message_ids=ids)
        resp = await self._unary("messaging", "Ack", req, safe=True, metadata=trace_metadata(traceparent))
        return int(resp.acked)

    async def nack(
        self,
        agent_id: str,
        message_ids: Sequence[str] | str,
        *,
        delay: m.Seconds | None = None,
        reject: bool = False,
        reason: str = "",
    ) -> m.NackResult:
        """Hand messages back for redelivery (after ``delay``), or dead-letter them with ``reject``."""
        ids = [message_ids] if isinstance(message_ids, str) else list(message_ids)
        req = messaging_pb2.NackRequest(agent_id=agent_id, message_ids=ids, reject=reject, reason=reason)
        if delay is not None:
            req.delay.CopyFrom(c.duration(delay))
        resp = await self._unary("messaging", "Nack", req, safe=False)
        return m.NackResult(resp.requeued, resp.dead_lettered)

    async def get_message(self, message_id: str) -> m.Message:
        req = messaging_pb2.GetMessageRequest(message_id=message_id)
        return c.message(await self._unary("messaging", "GetMessage", req, safe=True))

    async def list_messages(
        self,
        *,
        conversation_id: str = "",
        correlation_id: str = "",
        sender_id: str = "",
        recipient_id: str = "",
        status: m.MessageStatus | str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        message_type: str = "",
        fold_broadcasts: bool = False,
        subscription: str = "",
        subject: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> m.Page[m.Message]:
        """One page of message copies matching every filter given, oldest first.
        Dead letters are ``status="failed"``. ``subscription``: that subscription's deliveries
        instead; ``subject``: the messages sent to that subject, as sent."""
        req = messaging_pb2.ListMessagesRequest(
            conversation_id=conversation_id,
            correlation_id=correlation_id,
            sender_id=sender_id,
            recipient_id=recipient_id,
            status=c.from_enum(messaging_pb2.MessageStatus, status),
            message_type=message_type,
            fold_broadcasts=fold_broadcasts,
            subscription=subscription,
            subject=subject,
            page_size=page_size,
            page_token=page_token,
        )
        if created_after is not None:
            req.created_after.CopyFrom(c.timestamp(created_after))
        if created_before is not None:
            req.created_before.CopyFrom(c.timestamp(created_before))
        resp = await self._unary("messaging", "ListMessages", req, safe=True)
        return m.Page([c.message(x) for x in resp.messages], resp.next_page_token)

    async def iter_messages(self, **filters: Any) -> AsyncIterator[m.Message]:
        """Every message copy matching ``list_messages`` filters, following pages."""
        async for x in _pages(self.list_messages, filters):
            yield x

    async def requeue(self, message_ids: Sequence[str] | str) -> int:
        """Put dead-lettered messages back into delivery with fresh attempts."""
        ids = [message_ids] if isinstance(message_ids, str) else list(message_ids)
        resp = await self._unary(
            "messaging", "Requeue", messaging_pb2.RequeueRequest(message_ids=ids), safe=False
        )
        return int(resp.requeued)

    async def purge(
        self,
        status: m.MessageStatus | str = m.MessageStatus.FAILED,
        *,
        created_before: datetime | None = None,
        limit: int = 0,
    ) -> int:
        """Delete messages that reached an end (dead letters by default; processed or expired),
        created before ``created_before`` (default: now), at most ``limit`` (10,000) per call;
        returns how many. Admins only."""
        req = messaging_pb2.PurgeRequest(status=c.from_enum(messaging_pb2.MessageStatus, status), limit=limit)
        if created_before is not None:
            req.created_before.CopyFrom(c.timestamp(created_before))
        return int((await self._unary("messaging", "Purge", req, safe=True)).purged)

    # ------------------------------------------------------------ tasks

    async def replay(self, task_id: str, *, actor: str = "") -> m.Task:
        """Submit a failed or cancelled task again as a new task (same spec, fresh attempts); the
        copy's ``metadata["a2a.replay_of"]`` names the original."""
        req = tasks_pb2.ReplayRequest(task_id=task_id, actor=actor)
        return c.task((await self._unary("tasks", "Replay", req, safe=False)).task)

    async def submit(
        self, spec: m.TaskSpec | str, *, traceparent: str | None = None, **fields: Any
    ) -> m.SubmitResult:
        """Submit one task: a :class:`TaskSpec`, or a title plus TaskSpec fields as keywords.
        ``traceparent`` (default: the current OpenTelemetry span's) is handed to the worker as
        ``Task.traceparent``."""
        if isinstance(spec, str):
            spec = m.TaskSpec(title=spec, **fields)
        elif fields:
            raise TypeError("give a TaskSpec or a title with keywords, not both")
        req = tasks_pb2.SubmitRequest(task=c.task_spec(spec))
        resp = await self._unary(
            "tasks", "Submit", req, safe=bool(spec.idempotency_key), metadata=trace_metadata(traceparent)
        )
        return m.SubmitResult(c.task(resp.task), resp.duplicate)

    async def submit_graph(
        self, nodes: Sequence[m.GraphNode], *, traceparent: str | None = None
    ) -> m.GraphResult:
        """Submit a DAG in one transaction (all or none). Nodes refer to each other by key."""
        req = tasks_pb2.SubmitGraphRequest(nodes=[c.graph_node(n) for n in nodes])
        safe = bool(nodes) and all(n.spec.idempotency_key for n in nodes)
        resp = await self._unary("tasks", "SubmitGraph", req, safe=safe, metadata=trace_metadata(traceparent))
        return m.GraphResult(dict(resp.task_ids), [c.task(t) for t in resp.tasks])

    async def claim(
        self, agent_id: str, *, max_tasks: int = 1, wait: m.Seconds | None = None
    ) -> list[m.Assignment]:
        """Lease up to ``max_tasks`` ready tasks, waiting up to ``wait`` seconds when none is ready."""
        req = tasks_pb2.ClaimRequest(agent_id=agent_id, max_tasks=max_tasks)
        timeout = self.timeout
        if wait is not None:
            req.wait.CopyFrom(c.duration(wait))
            timeout = None if timeout is None else timeout + c.seconds(wait)
        resp = await self._unary("tasks", "Claim", req, safe=False, timeout=timeout)
        return [c.assignment(a) for a in resp.assignments]

    def listen(self, agent_id: str) -> Stream[m.ListenEvent]:
        """Task assignments pushed as the agent's capacity allows, and cancellations of its tasks."""
        return self._stream(
            "tasks", "Listen", tasks_pb2.ListenRequest(agent_id=agent_id), lambda r: [c.listen_event(r)]
        )

    def work(self, agent_id: str) -> WorkStream:
        """As :meth:`listen`, with completions, failures and lease extensions written back on the
        same stream (``stream.complete(...)``...), each answered once committed: no call of its
        own per task (the broker's ``Work``; against a broker without it, ``Listen`` and the
        unary :meth:`complete`, :meth:`fail` and :meth:`extend_lease`)."""
        self._ensure()

        def fallback() -> Stream[m.ListenEvent]:
            return self.listen(agent_id)

        return WorkStream(self._tasks.Work, agent_id, fallback, self)

    async def extend_lease(
        self,
        task_id: str,
        agent_id: str,
        attempt: int,
        *,
        progress: int | None = None,
        status_note: str = "",
        extension: m.Seconds | None = None,
    ) -> datetime | None:
        """Keep a running task's lease; returns the new expiry.
        Raises FailedPreconditionError when the lease was lost."""
        req = tasks_pb2.ExtendLeaseRequest(
            task_id=task_id, agent_id=agent_id, attempt=attempt, status_note=status_note
        )
        if progress is not None:
            req.progress = progress
        if extension is not None:
            req.extension.CopyFrom(c.duration(extension))
        resp = await self._unary("tasks", "ExtendLease", req, safe=True)
        return c.to_datetime(resp, "lease_expires_at")

    async def complete(
        self,
        task_id: str,
        agent_id: str,
        attempt: int,
        result: Any = b"",
        *,
        result_content_type: str = "",
        traceparent: str | None = None,
    ) -> m.Task:
        """Finish a leased task with a result (bytes, str, or a JSON-able value). Pass the
        assignment's ``task.traceparent`` as ``traceparent`` to continue its trace."""
        payload, content_type = m.encode_payload(result, result_content_type)
        req = tasks_pb2.CompleteRequest(
            task_id=task_id,
            agent_id=agent_id,
            attempt=attempt,
            result=payload,
            result_content_type=content_type,
        )
        resp = await self._unary("tasks", "Complete", req, safe=False, metadata=trace_metadata(traceparent))
        return c.task(resp.task)

    async def complete_batch(self, items: Sequence[m.Completion]) -> list[m.Task | BrokerRpcError]:
        """Finish several leased tasks in one call. Each item is judged on its own: its entry in the
        answer is the completed task, or the error Complete would have raised for it."""
        reqs = []
        for item in items:
            payload, content_type = m.encode_payload(item.result, item.result_content_type)
            reqs.append(
                tasks_pb2.CompleteRequest(
                    task_id=item.task_id,
                    agent_id=item.agent_id,
                    attempt=item.attempt,
                    result=payload,
                    result_content_type=content_type,
                )
            )
        resp = await self._unary(
            "tasks", "CompleteBatch", tasks_pb2.CompleteBatchRequest(items=reqs), safe=False
        )
        return [
            c.task(r.task) if r.code == 0 else error_for(_STATUS_BY_VALUE[r.code], r.message, "CompleteBatch")
            for r in resp.results
        ]

    async def fail(
        self,
        task_id: str,
        agent_id: str,
        attempt: int,
        error: str,
        *,
        non_retryable: bool = False,
        traceparent: str | None = None,
    ) -> m.Task:
        """End the current attempt with an error (retried after backoff unless ``non_retryable``)."""
        req = tasks_pb2.FailRequest(
            task_id=task_id, agent_id=agent_id, attempt=attempt, error=error, non_retryable=non_retryable
        )
        resp = await self._unary("tasks", "Fail", req, safe=False, metadata=trace_metadata(traceparent))
        return c.task(resp.task)

    async def cancel(
        self, task_id: str, *, cascade: bool = False, reason: str = "", actor: str = ""
    ) -> list[str]:
        """Cancel a task (with ``cascade``: and its descendants); returns every task cancelled."""
        req = tasks_pb2.CancelRequest(task_id=task_id, cascade=cascade, reason=reason, actor=actor)
        return list((await self._unary("tasks", "Cancel", req, safe=False)).cancelled_task_ids)

    # ------------------------------------------------------------ sessions

    async def create_session(
        self,
        name: str = "",
        *,
        session_id: str = "",
        parent_session_id: str = "",
        initiated_by: str = "",
        context: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        deadline: datetime | None = None,
        max_tasks: int = 0,
    ) -> m.Session:
        """Open an orchestration session; submit tasks with its ``session_id`` (their children
        inherit it), then :meth:`close_session` once no more will come."""
        req = tasks_pb2.CreateSessionRequest(
            session_id=session_id,
            name=name,
            parent_session_id=parent_session_id,
            initiated_by=initiated_by,
            labels=dict(labels or {}),
            max_tasks=max_tasks,
        )
        if context:
            req.context.CopyFrom(c.struct(dict(context)))
        if deadline is not None:
            req.deadline.CopyFrom(c.timestamp(deadline))
        return c.session(await self._unary("tasks", "CreateSession", req, safe=bool(session_id)))

    async def get_session(self, session_id: str) -> m.Session:
        req = tasks_pb2.GetSessionRequest(session_id=session_id)
        return c.session(await self._unary("tasks", "GetSession", req, safe=True))

    async def list_sessions(
        self,
        *,
        status: m.SessionStatus | str | None = None,
        initiated_by: str = "",
        parent_session_id: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> m.Page[m.Session]:
        """One page of sessions matching every filter given, oldest first."""
        req = tasks_pb2.ListSessionsRequest(
            status=c.from_enum(tasks_pb2.SessionStatus, status),
            initiated_by=initiated_by,
            parent_session_id=parent_session_id,
            page_size=page_size,
            page_token=page_token,
        )
        resp = await self._unary("tasks", "ListSessions", req, safe=True)
        return m.Page([c.session(s) for s in resp.sessions], resp.next_page_token)

    async def close_session(self, session_id: str, *, summary: str = "") -> m.Session:
        """No more tasks: the session ends once every task has finished (at once if they have)."""
        req = tasks_pb2.CloseSessionRequest(session_id=session_id, summary=summary)
        return c.session(await self._unary("tasks", "CloseSession", req, safe=True))

    async def cancel_session(
        self, session_id: str, *, reason: str = "", actor: str = ""
    ) -> tuple[m.Session, list[str]]:
        """Cancel the session and every unfinished task in it; the session and the ids cancelled."""
        req = tasks_pb2.CancelSessionRequest(session_id=session_id, reason=reason, actor=actor)
        resp = await self._unary("tasks", "CancelSession", req, safe=True)
        return c.session(resp.session), list(resp.cancelled_task_ids)

    async def get_task(self, task_id: str) -> m.Task:
        return c.task(await self._unary("tasks", "Get", tasks_pb2.GetTaskRequest(task_id=task_id), safe=True))

    async def list_tasks(
        self,
        *,
        status: m.TaskStatus | str | None = None,
        session_id: str = "",
        capability: str = "",
        agent_id: str = "",
        tag: str = "",
        label: str = "",
        parent_id: str = "",
        task_type: str = "",
        root_id: str = "",
        level: int | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> m.Page[m.Task]:
        """One page of tasks matching every filter given (``root_id``: a whole tree; ``label``:
        "key=value")."""
        req = tasks_pb2.ListTasksRequest(
            status=c.from_enum(tasks_pb2.TaskStatus, status),
            session_id=session_id,
            capability=capability,
            agent_id=agent_id,
            tag=tag,
            label=label,
            parent_id=parent_id,
            task_type=task_type,
            root_id=root_id,
            page_size=page_size,
            page_token=page_token,
        )
        if level is not None:
            req.level = level
        if created_after is not None:
            req.created_after.CopyFrom(c.timestamp(created_after))
        if created_before is not None:
            req.created_before.CopyFrom(c.timestamp(created_before))
        resp = await self._unary("tasks", "List", req, safe=True)
        return m.Page([c.task(t) for t in resp.tasks], resp.next_page_token)

    async def iter_tasks(self, **filters: Any) -> AsyncIterator[m.Task]:
        """Every task matching ``list_tasks`` filters, following pages."""
        async for t in _pages(self.list_tasks, filters):
            yield t

    async def get_tree(self, task_id: str, *, max_depth: int = 0) -> m.TaskTree:
        """The task and its descendants (``max_depth`` levels down; 0: all), every page of them."""
        req = tasks_pb2.GetTreeRequest(task_id=task_id, page_size=1000, max_depth=max_depth)
        first = resp = await self._unary("tasks", "GetTree", req, safe=True)
        tasks = list(resp.tasks)
        while resp.next_page_token:
            req.page_token = resp.next_page_token
            resp = await self._unary("tasks", "GetTree", req, safe=True)
            tasks += resp.tasks
        del first.tasks[:]
        first.tasks.extend(tasks)
        return c.tree(first)

    async def get_dependencies(self, task_id: str) -> tuple[list[m.DependencyEdge], list[m.DependencyEdge]]:
        """A task's prerequisites (``blocking``: not finished yet) and its dependents."""
        req = tasks_pb2.GetDependenciesRequest(task_id=task_id)
        resp = await self._unary("tasks", "GetDependencies", req, safe=True)
        return [c.dependency_edge(e) for e in resp.prerequisites], [
            c.dependency_edge(e) for e in resp.dependents
        ]

    async def add_dependency(
        self,
        task_id: str,
        prerequisite_id: str,
        type: m.DependencyType | str = m.DependencyType.HARD,
        *,
        actor: str = "",
    ) -> m.Task:
        """Make a task that has not started wait on one more prerequisite (a ready task goes back
        to blocked while it is unfinished). Repeating the same edge changes nothing."""
        dep = tasks_pb2.Dependency(task_id=prerequisite_id, type=c.dependency_type(type))
        req = tasks_pb2.AddDependencyRequest(task_id=task_id, dependency=dep, actor=actor)
        return c.task(await self._unary("tasks", "AddDependency", req, safe=True))

    async def remove_dependency(self, task_id: str, prerequisite_id: str, *, actor: str = "") -> m.Task:
        """Drop one prerequisite of a task that has not started (it becomes ready when none is
        left unfinished)."""
        req = tasks_pb2.RemoveDependencyRequest(task_id=task_id, prerequisite_id=prerequisite_id, actor=actor)
        return c.task(await self._unary("tasks", "RemoveDependency", req, safe=False))

    async def get_history(self, task_id: str) -> list[m.TaskTransition]:
        resp = await self._unary(
            "tasks", "GetHistory", tasks_pb2.GetHistoryRequest(task_id=task_id), safe=True
        )
        return [c.transition(t) for t in resp.transitions]

    def watch_tasks(
        self,
        *,
        task_id: str = "",
        subtree_root_id: str = "",
        session_id: str = "",
        include_snapshot: bool = False,
    ) -> Stream[m.TaskEvent]:
        """State-change events for one task, a subtree, or a session (give exactly one).

        With ``include_snapshot`` the broker first sends each task of the scope as
        it is now (events with ``snapshot=True``), then live events.
        """
        given = [
            (k, v)
            for k, v in (
                ("task_id", task_id),
                ("subtree_root_id", subtree_root_id),
                ("session_id", session_id),
            )
            if v
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of task_id, subtree_root_id, session_id")
        req = tasks_pb2.WatchTasksRequest(include_snapshot=include_snapshot)
        setattr(req, *given[0])
        return self._stream("tasks", "Watch", req, lambda r: [c.task_event(r)])

    async def wait_for_task(self, task_id: str, timeout: float | None = None) -> m.Task:
        """Wait until a task is finished (completed, failed or cancelled) and return it.

        Follows the task's Watch stream (with a snapshot first, so nothing is
        missed between reading and watching); reconnects if the broker restarts.
        Raises ``TimeoutError`` after ``timeout`` seconds, NotFoundError for an
        unknown task.
        """

        async def wait() -> m.Task:
            while True:
                try:
                    async with self.watch_tasks(task_id=task_id, include_snapshot=True) as stream:
                        async for ev in stream:
                            if ev.transition.task_id != task_id:
                                continue
                            if ev.task is not None and ev.task.status.finished:
                                return ev.task
                            if ev.task is None and ev.transition.to_status.finished:
                                return await self.get_task(task_id)
                except UnavailableError:
                    pass  # broker restarting: watch again
                await asyncio.sleep(0.5)

        return await asyncio.wait_for(wait(), timeout)


async def _aiter(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(items, AsyncIterable):
        async for x in items:
            yield x
    else:
        for x in items:
            yield x
