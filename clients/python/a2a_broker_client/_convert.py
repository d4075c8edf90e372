"""protobuf <-> the client's dataclasses. Private: the public API never shows protobuf."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

import grpc
from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from . import models as m
from .errors import error_for
from .pb import agents_pb2, messaging_pb2, tasks_pb2

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

E = TypeVar("E", bound=m.enum.StrEnum)
V = TypeVar("V", bound=int)


# ---------------------------------------------------------------- scalars


def to_datetime(msg: Any, field: str) -> datetime | None:
    if not msg.HasField(field):
        return None
    t = getattr(msg, field)
    return datetime.fromtimestamp(t.seconds, UTC) + timedelta(microseconds=t.nanos // 1000)


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    if value.tzinfo is None:
        raise ValueError("times must be timezone-aware (e.g. datetime.now(UTC))")
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(value.astimezone(UTC))
    return t


def seconds(value: m.Seconds) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def duration(value: m.Seconds) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMicroseconds(int(round(seconds(value) * 1_000_000)))
    return d


def to_seconds(msg: Any, field: str) -> float | None:
    if not msg.HasField(field):
        return None
    d = getattr(msg, field)
    return float(d.seconds + d.nanos / 1e9)


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def to_dict(msg: Any, field: str) -> dict[str, Any]:
    if not msg.HasField(field):
        return {}
    return dict(json_format.MessageToDict(getattr(msg, field)))


def to_enum(cls: type[E], pb_enum: Any, value: int) -> E:
    """A proto enum number -> the client's enum (UNSPECIFIED for a value this client does not know)."""
    try:
        name = pb_enum.Name(value)
    except ValueError:
        return cls("unspecified")
    prefix = pb_enum.Name(0).removesuffix("UNSPECIFIED")
    try:
        return cls(name.removeprefix(prefix).lower())
    except ValueError:
        return cls("unspecified")


def from_enum(pb_enum: _EnumTypeWrapper[V], value: m.enum.StrEnum | str | None) -> V:
    """The client's enum (or its string value) -> the proto enum number (None: unspecified)."""
    unspecified = cast(V, 0)
    if value is None:
        return unspecified
    prefix = pb_enum.Name(unspecified).removesuffix("UNSPECIFIED")
    try:
        return pb_enum.Value(prefix + str(value).upper())
    except ValueError:
        raise ValueError(
            f"unknown value {value!r} (expected one of "
            f"{[n.removeprefix(prefix).lower() for n in pb_enum.keys()[1:]]})"
        ) from None


# ---------------------------------------------------------------- agents


def agent(a: agents_pb2.Agent) -> m.Agent:
    return m.Agent(
        agent_id=a.agent_id,
        name=a.name,
        agent_type=a.agent_type,
        capabilities=tuple(a.capabilities),
        max_concurrent_tasks=a.max_concurrent_tasks,
        current_task_count=a.current_task_count,
        endpoint=a.endpoint,
        labels=dict(a.labels),
        metadata=to_dict(a, "metadata"),
        status=to_enum(m.AgentStatus, agents_pb2.AgentStatus, a.status),
        registered_at=to_datetime(a, "registered_at"),
        updated_at=to_datetime(a, "updated_at"),
        last_heartbeat_at=to_datetime(a, "last_heartbeat_at"),
        reported_free_capacity=a.reported_free_capacity if a.HasField("reported_free_capacity") else None,
        record=agent_record(a.record) if a.HasField("record") else None,
        exposure=to_enum(m.Exposure, agents_pb2.Exposure, a.exposure),
        capability_descriptions=dict(a.capability_descriptions),
    )


def agent_record(r: agents_pb2.AgentRecord) -> m.AgentRecord:
    return m.AgentRecord(
        tasks_completed=r.tasks_completed,
        tasks_failed=r.tasks_failed,
        success_rate=r.success_rate,
        mean_run_time=to_seconds(r, "mean_run_time") or 0.0,
        p95_run_time=to_seconds(r, "p95_run_time") or 0.0,
        window=to_seconds(r, "window") or 0.0,
    )


def registration(r: Any, created: bool = False) -> m.Registration:
    return m.Registration(
        agent=agent(r.agent),
        heartbeat_interval=to_seconds(r, "heartbeat_interval") or 0.0,
        liveness_timeout=to_seconds(r, "liveness_timeout") or 0.0,
        created=created,
    )


def agent_event(e: agents_pb2.AgentEvent) -> m.AgentEvent:
    return m.AgentEvent(
        type=to_enum(m.AgentEventType, agents_pb2.AgentEventType, e.type),
        agent=agent(e.agent),
        time=to_datetime(e, "time"),
    )


# ---------------------------------------------------------------- messaging


def target(to: m.Target | str) -> messaging_pb2.Target:
    if isinstance(to, str):
        return messaging_pb2.Target(agent_id=to)
    if to.kind == m.TargetKind.DIRECT:
        return messaging_pb2.Target(agent_id=to.agent_id)
    if to.kind == m.TargetKind.BROADCAST:
        return messaging_pb2.Target(
            broadcast=messaging_pb2.Broadcast(capability=to.capability, include_sender=to.include_sender)
        )
    if to.kind == m.TargetKind.ANYCAST:
        return messaging_pb2.Target(anycast=messaging_pb2.Anycast(capability=to.capability))
    if to.kind == m.TargetKind.SUBJECT:
        return messaging_pb2.Target(subject=to.subject)
    raise ValueError(f"target kind must be direct, broadcast, anycast or subject, not {to.kind}")


def send_request(o: m.OutgoingMessage) -> messaging_pb2.SendRequest:
    if o.ttl is not None and o.expires_at is not None:
        raise ValueError("give ttl or expires_at, not both")
    payload, content_type = m.encode_payload(o.payload, o.content_type)
    req = messaging_pb2.SendRequest(
        sender_id=o.sender_id,
        target=target(o.to),
        message_type=o.message_type,
        payload=payload,
        content_type=content_type,
        correlation_id=o.correlation_id,
        conversation_id=o.conversation_id,
        idempotency_key=o.idempotency_key,
        headers=o.headers,
        require_recipient=o.require_recipient,
        in_reply_to=o.in_reply_to,
        ordering_key=o.ordering_key,
    )
    if o.priority is not None:
        req.priority = o.priority
    if o.max_attempts is not None:
        req.max_attempts = o.max_attempts
    if o.deliver_after is not None:
        req.deliver_after.CopyFrom(timestamp(o.deliver_after))
    if o.ttl is not None:
        req.ttl.CopyFrom(duration(o.ttl))
    if o.expires_at is not None:
        req.expires_at.CopyFrom(timestamp(o.expires_at))
    return req


def send_result(r: messaging_pb2.SendResponse) -> m.SendResult:
    return m.SendResult(message_ids=tuple(r.message_ids), duplicate=r.duplicate)


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def publish_result(
    r: messaging_pb2.PublishResponse | messaging_pb2.PublishResult, sequence: int
) -> m.PublishResult:
    """One message's confirm (a single-form response, or one result of a batched one)."""
    if r.code:
        code = _CODES.get(r.code, grpc.StatusCode.UNKNOWN)
        return m.PublishResult(sequence, error=error_for(code, r.error, "messaging/Publish"))
    return m.PublishResult(sequence, m.SendResult(message_ids=tuple(r.message_ids), duplicate=r.duplicate))


def message(x: messaging_pb2.Message) -> m.Message:
    return m.Message(
        message_id=x.message_id,
        send_id=x.send_id,
        sender_id=x.sender_id,
        recipient_id=x.recipient_id,
        target_kind=to_enum(m.TargetKind, messaging_pb2.TargetKind, x.target_kind),
        target_capability=x.target_capability,
        message_type=x.message_type,
        payload=bytes(x.payload),
        content_type=x.content_type,
        priority=x.priority,
        correlation_id=x.correlation_id,
        conversation_id=x.conversation_id,
        headers=dict(x.headers),
        idempotency_key=x.idempotency_key,
        status=to_enum(m.MessageStatus, messaging_pb2.MessageStatus, x.status),
        attempt=x.attempt,
        max_attempts=x.max_attempts,
        created_at=to_datetime(x, "created_at"),
        deliver_after=to_datetime(x, "deliver_after"),
        expires_at=to_datetime(x, "expires_at"),
        delivered_at=to_datetime(x, "delivered_at"),
        ack_deadline=to_datetime(x, "ack_deadline"),
        processed_at=to_datetime(x, "processed_at"),
        last_error=x.last_error,
        awaiting_recipient=x.awaiting_recipient,
        in_reply_to=x.in_reply_to,
        recipients=tuple(
            (r.message_id, r.recipient_id, to_enum(m.MessageStatus, messaging_pb2.MessageStatus, r.status))
            for r in x.recipients
        ),
        subject=x.subject,
        sequence=x.sequence,
        subscription=x.subscription,
        ordering_key=x.ordering_key,
    )


def conversation(x: messaging_pb2.Conversation) -> m.Conversation:
    return m.Conversation(
        conversation_id=x.conversation_id,
        participants=tuple(x.participants),
        message_count=x.message_count,
        last_activity=to_datetime(x, "last_activity"),
    )


def subscription(x: messaging_pb2.Subscription) -> m.Subscription:
    return m.Subscription(
        name=x.name,
        filter=x.filter,
        ack_deadline=to_seconds(x, "ack_deadline"),
        max_attempts=x.max_attempts,
        retention=to_seconds(x, "retention"),
        ordering=x.ordering,
        dead_letter_subject=x.dead_letter_subject,
        created_at=to_datetime(x, "created_at"),
        created_by=x.created_by,
        backlog=x.backlog,
        in_flight=x.in_flight,
        dead_letters=x.dead_letters,
        oldest_unacked_at=to_datetime(x, "oldest_unacked_at"),
        oldest_unacked_age=to_seconds(x, "oldest_unacked_age"),
    )


# ---------------------------------------------------------------- tasks


def dependency_type(value: m.DependencyType | str) -> tasks_pb2.DependencyType.ValueType:
    return from_enum(tasks_pb2.DependencyType, value)


def task_spec(s: m.TaskSpec) -> tasks_pb2.TaskSpec:
    payload, content_type = m.encode_payload(s.payload, s.content_type)
    deps = [
        tasks_pb2.Dependency(task_id=d, type=tasks_pb2.DEPENDENCY_TYPE_HARD)
        if isinstance(d, str)
        else tasks_pb2.Dependency(task_id=d.task_id, type=dependency_type(d.type))
        for d in s.depends_on
    ]
    spec = tasks_pb2.TaskSpec(
        title=s.title,
        task_type=s.task_type,
        payload=payload,
        content_type=content_type,
        required_capabilities=list(s.required_capabilities),
        parent_id=s.parent_id,
        depends_on=deps,
        session_id=s.session_id,
        tags=list(s.tags),
        labels=dict(s.labels),
        idempotency_key=s.idempotency_key,
        submitted_by=s.submitted_by,
        concurrency_key=s.concurrency_key,
    )
    if s.metadata:
        spec.metadata.CopyFrom(struct(s.metadata))
    if s.priority is not None:
        spec.priority = s.priority
    if s.deadline is not None:
        spec.deadline.CopyFrom(timestamp(s.deadline))
    if s.not_before is not None:
        spec.not_before.CopyFrom(timestamp(s.not_before))
    if s.lease_timeout is not None:
        spec.lease_timeout.CopyFrom(duration(s.lease_timeout))
    if s.max_run_time is not None:
        spec.max_run_time.CopyFrom(duration(s.max_run_time))
    if s.retry is not None:
        r = s.retry
        spec.retry.multiplier = r.multiplier
        if r.max_retries is not None:
            spec.retry.max_retries = r.max_retries
        if r.initial_backoff is not None:
            spec.retry.initial_backoff.CopyFrom(duration(r.initial_backoff))
        if r.max_backoff is not None:
            spec.retry.max_backoff.CopyFrom(duration(r.max_backoff))
    return spec


def spec_from_pb(s: tasks_pb2.TaskSpec) -> m.TaskSpec:
    retry = None
    if s.HasField("retry"):
        r = s.retry
        retry = m.RetryPolicy(
            max_retries=r.max_retries if r.HasField("max_retries") else None,
            initial_backoff=to_seconds(r, "initial_backoff"),
            multiplier=r.multiplier,
            max_backoff=to_seconds(r, "max_backoff"),
        )
    return m.TaskSpec(
        title=s.title,
        task_type=s.task_type,
        payload=bytes(s.payload),
        content_type=s.content_type,
        required_capabilities=tuple(s.required_capabilities),
        priority=s.priority if s.HasField("priority") else None,
        deadline=to_datetime(s, "deadline"),
        parent_id=s.parent_id,
        depends_on=tuple(
            m.Dependency(d.task_id, to_enum(m.DependencyType, tasks_pb2.DependencyType, d.type))
            for d in s.depends_on
        ),
        retry=retry,
        lease_timeout=to_seconds(s, "lease_timeout"),
        max_run_time=to_seconds(s, "max_run_time"),
        session_id=s.session_id,
        tags=tuple(s.tags),
        metadata=to_dict(s, "metadata"),
        labels=dict(s.labels),
        idempotency_key=s.idempotency_key,
        submitted_by=s.submitted_by,
        not_before=to_datetime(s, "not_before"),
        concurrency_key=s.concurrency_key,
    )


def task(t: tasks_pb2.Task) -> m.Task:
    return m.Task(
        task_id=t.task_id,
        spec=spec_from_pb(t.spec),
        status=to_enum(m.TaskStatus, tasks_pb2.TaskStatus, t.status),
        calculated_priority=t.calculated_priority,
        root_id=t.root_id,
        level=t.level,
        path=t.path,
        attempt=t.attempt,
        assigned_agent_id=t.assigned_agent_id,
        lease_expires_at=to_datetime(t, "lease_expires_at"),
        progress=t.progress,
        status_note=t.status_note,
        result=bytes(t.result),
        result_content_type=t.result_content_type,
        last_error=t.last_error,
        next_attempt_at=to_datetime(t, "next_attempt_at"),
        created_at=to_datetime(t, "created_at"),
        updated_at=to_datetime(t, "updated_at"),
        started_at=to_datetime(t, "started_at"),
        finished_at=to_datetime(t, "finished_at"),
        traceparent=t.traceparent,
    )


def graph_node(n: m.GraphNode) -> tasks_pb2.GraphNode:
    deps = [
        tasks_pb2.GraphDependency(key=d, type=tasks_pb2.DEPENDENCY_TYPE_HARD)
        if isinstance(d, str)
        else tasks_pb2.GraphDependency(key=d.key, type=dependency_type(d.type))
        for d in n.depends_on_keys
    ]
    return tasks_pb2.GraphNode(
        key=n.key, task=task_spec(n.spec), depends_on_keys=deps, parent_key=n.parent_key
    )


def assignment(a: tasks_pb2.Assignment) -> m.Assignment:
    return m.Assignment(
        task=task(a.task), attempt=a.attempt, lease_expires_at=to_datetime(a, "lease_expires_at")
    )


def listen_event(r: tasks_pb2.ListenResponse) -> m.ListenEvent:
    return m.ListenEvent(
        assignments=[assignment(a) for a in r.assignments],
        cancellations=[m.Cancellation(c.task_id, c.attempt, c.reason) for c in r.cancellations],
    )


def transition(t: tasks_pb2.TaskTransition) -> m.TaskTransition:
    return m.TaskTransition(
        task_id=t.task_id,
        from_status=(
            to_enum(m.TaskStatus, tasks_pb2.TaskStatus, t.from_status)
            if t.from_status != tasks_pb2.TASK_STATUS_UNSPECIFIED
            else None
        ),
        to_status=to_enum(m.TaskStatus, tasks_pb2.TaskStatus, t.to_status),
        reason=t.reason,
        actor=t.actor,
        time=to_datetime(t, "time"),
        attempt=t.attempt,
    )


def tree(r: tasks_pb2.GetTreeResponse) -> m.TaskTree:
    counts: dict[m.TaskStatus, int] = {}
    for name, n in r.status_counts.items():
        try:
            status = to_enum(m.TaskStatus, tasks_pb2.TaskStatus, tasks_pb2.TaskStatus.Value(name))
        except ValueError:
            status = m.TaskStatus.UNSPECIFIED
        counts[status] = counts.get(status, 0) + n
    return m.TaskTree(tasks=[task(t) for t in r.tasks], status_counts=counts, progress=r.progress)


def task_event(e: tasks_pb2.TaskEvent) -> m.TaskEvent:
    return m.TaskEvent(
        transition=transition(e.transition),
        task=task(e.task) if e.HasField("task") else None,
        snapshot=e.snapshot,
        session=session(e.session) if e.HasField("session") else None,
    )


def dependency_edge(e: tasks_pb2.DependencyEdge) -> m.DependencyEdge:
    return m.DependencyEdge(
        task_id=e.task_id,
        title=e.title,
        type=to_enum(m.DependencyType, tasks_pb2.DependencyType, e.type),
        status=to_enum(m.TaskStatus, tasks_pb2.TaskStatus, e.status),
        blocking=e.blocking,
        resolved_at=to_datetime(e, "resolved_at"),
    )


# ---------------------------------------------------------------- sessions


def session(s: tasks_pb2.Session) -> m.Session:
    return m.Session(
        session_id=s.session_id,
        name=s.name,
        parent_session_id=s.parent_session_id,
        initiated_by=s.initiated_by,
        context=to_dict(s, "context"),
        labels=dict(s.labels),
        status=to_enum(m.SessionStatus, tasks_pb2.SessionStatus, s.status),
        status_reason=s.status_reason,
        deadline=to_datetime(s, "deadline"),
        max_tasks=s.max_tasks,
        summary=s.summary,
        task_counts=dict(s.task_counts),
        progress=s.progress,
        created_at=to_datetime(s, "created_at"),
        updated_at=to_datetime(s, "updated_at"),
        closed_at=to_datetime(s, "closed_at"),
        finished_at=to_datetime(s, "finished_at"),
    )


# ---------------------------------------------------------------- concurrency limits


def limit_pb(x: m.ConcurrencyLimit) -> tasks_pb2.ConcurrencyLimit:
    out = tasks_pb2.ConcurrencyLimit(
        name=x.name, key=x.key, capability=x.capability, max_running=x.max_running, rate=x.rate, burst=x.burst
    )
    if x.per is not None:
        out.per.CopyFrom(duration(x.per))
    return out


def limit(x: tasks_pb2.ConcurrencyLimit) -> m.ConcurrencyLimit:
    return m.ConcurrencyLimit(
        name=x.name,
        key=x.key,
        capability=x.capability,
        max_running=x.max_running,
        rate=x.rate,
        per=to_seconds(x, "per"),
        burst=x.burst,
        created_at=to_datetime(x, "created_at"),
        updated_at=to_datetime(x, "updated_at"),
    )


def concurrency_key(x: tasks_pb2.ConcurrencyKey) -> m.ConcurrencyKey:
    return m.ConcurrencyKey(
        key=x.key,
        running=x.running,
        waiting=x.waiting,
        limit=x.limit,
        max_running=x.max_running,
        rate=x.rate,
        per=to_seconds(x, "per"),
        tokens=x.tokens,
    )
