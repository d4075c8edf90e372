"""Protobuf <-> task values, for the TaskQueue servicer."""

from __future__ import annotations

from typing import Any

from ..clock import US_PER_S
from ..errors import InvalidArgument
from ..models.tasks import (
    MAX_LEASE_US,
    MAX_RUN_US,
    Assignment,
    Cancellation,
    CompleteInput,
    DependencyEdge,
    DepType,
    ExtendInput,
    FailInput,
    Task,
    TaskSpecInput,
    TaskStatus,
    Transition,
)
from ..pb import tasks_pb2 as pb
from .convert import dict_to_struct, dur_us, enum_value, set_us, struct_to_dict, ts, ts_us

STATUS_TO_PB = {s: getattr(pb, f"TASK_STATUS_{s.name}") for s in TaskStatus}
PB_TO_STATUS = {v: k for k, v in STATUS_TO_PB.items()}
DEP_TO_PB = {
    DepType.HARD: pb.DEPENDENCY_TYPE_HARD,
    DepType.SOFT: pb.DEPENDENCY_TYPE_SOFT,
    DepType.OPTIONAL: pb.DEPENDENCY_TYPE_OPTIONAL,
}
PB_TO_DEP = {pb.DEPENDENCY_TYPE_UNSPECIFIED: DepType.HARD, **{v: k for k, v in DEP_TO_PB.items()}}


def _duration(msg: Any, field: str, where: str, lo_us: int, hi_us: int, rule: str) -> int | None:
    value = dur_us(msg, field)
    if value is not None and not lo_us <= value <= hi_us:
        raise InvalidArgument(where, rule)
    return value


def dep_type(value: int, where: str) -> DepType:
    return PB_TO_DEP[enum_value(pb.DependencyType, value, where)]


def status_filter(value: int, where: str) -> TaskStatus | None:
    return PB_TO_STATUS.get(enum_value(pb.TaskStatus, value, where)) if value else None


def _metadata(msg: pb.TaskSpec, where: str) -> dict[str, Any]:
    try:
        return struct_to_dict(msg, "metadata")
    except ValueError:  # NaN or infinity: a Struct that has no JSON form
        raise InvalidArgument(where, "numbers must be finite (no NaN or infinity)") from None


def spec_in(msg: pb.TaskSpec, where: str) -> dict[str, Any]:
    """A TaskSpec as the fields of TaskSpecInput (validated by pydantic after)."""
    out: dict[str, Any] = {
        "title": msg.title,
        "task_type": msg.task_type,
        "payload": msg.payload,
        "content_type": msg.content_type,
        "required_capabilities": list(msg.required_capabilities),
        "deadline": ts_us(msg, "deadline", f"{where}.deadline"),
        "parent_id": msg.parent_id or None,
        "depends_on": [
            {"task_id": d.task_id, "type": dep_type(d.type, f"{where}.depends_on[{i}].type")}
            for i, d in enumerate(msg.depends_on)
        ],
        "lease_timeout_us": _duration(
            msg,
            "lease_timeout",
            f"{where}.lease_timeout",
            US_PER_S,
            MAX_LEASE_US,
            "must be between 1 s and 24 h",
        ),
        "max_run_us": _duration(
            msg,
            "max_run_time",
            f"{where}.max_run_time",
            US_PER_S,
            MAX_RUN_US,
            "must be between 1 s and 7 days",
        ),
        "session_id": msg.session_id or None,
        "tags": list(msg.tags),
        "metadata": _metadata(msg, f"{where}.metadata"),
        "labels": dict(msg.labels),
        "idempotency_key": msg.idempotency_key or None,
        "submitted_by": msg.submitted_by,
        "not_before": ts_us(msg, "not_before", f"{where}.not_before"),
        "concurrency_key": msg.concurrency_key or None,
    }
    if msg.HasField("priority"):
        out["priority"] = msg.priority
    if msg.HasField("retry"):
        r = msg.retry
        rw = f"{where}.retry"
        if r.HasField("max_retries"):
            if not 0 <= r.max_retries <= 100:
                raise InvalidArgument(f"{rw}.max_retries", "must be between 0 and 100")
            out["max_retries"] = r.max_retries
        rule = "must be between 0 and 24 h"
        initial = _duration(r, "initial_backoff", f"{rw}.initial_backoff", 0, MAX_LEASE_US, rule)
        if initial is not None:
            out["backoff_initial_us"] = initial
        cap = _duration(r, "max_backoff", f"{rw}.max_backoff", 0, MAX_LEASE_US, rule)
        if cap is not None:
            out["backoff_max_us"] = cap
        if r.multiplier:
            if not 1.0 <= r.multiplier <= 10.0:
                raise InvalidArgument(f"{rw}.multiplier", "must be between 1.0 and 10.0 (0 means 2.0)")
            out["backoff_multiplier"] = r.multiplier
    return out


# Tasks go out by the thousand per second (Submit, every assignment, Complete): their times are
# filled in place (set_us), not built and copied.
_TIMES = ("lease_expires_at", "next_attempt_at", "created_at", "updated_at", "started_at", "finished_at")


def spec_into(s: pb.TaskSpec, t: Task | TaskSpecInput) -> None:
    """A task's spec (or a schedule's task template) into ``s``."""
    s.title = t.title
    s.task_type = t.task_type
    s.payload = t.payload
    s.content_type = t.content_type
    if t.required_capabilities:
        s.required_capabilities.extend(t.required_capabilities)
    s.priority = t.priority
    if t.deadline is not None:
        set_us(s.deadline, t.deadline)
    if t.parent_id:
        s.parent_id = t.parent_id
    for d in t.depends_on:
        s.depends_on.add(task_id=d.task_id, type=DEP_TO_PB[d.type])
    r = s.retry
    r.max_retries = t.max_retries
    r.multiplier = t.backoff_multiplier
    set_us(r.initial_backoff, t.backoff_initial_us)
    set_us(r.max_backoff, t.backoff_max_us)
    if t.lease_timeout_us is not None:  # a template's may be unset: the broker's default then
        set_us(s.lease_timeout, t.lease_timeout_us)
    if t.max_run_us is not None:
        set_us(s.max_run_time, t.max_run_us)
    if t.session_id:
        s.session_id = t.session_id
    if t.tags:
        s.tags.extend(t.tags)
    if t.metadata:
        s.metadata.CopyFrom(dict_to_struct(t.metadata))
    if t.labels:
        s.labels.update(t.labels)
    if t.idempotency_key:
        s.idempotency_key = t.idempotency_key
    if t.submitted_by:
        s.submitted_by = t.submitted_by
    if t.not_before is not None:
        set_us(s.not_before, t.not_before)
    if t.concurrency_key:
        s.concurrency_key = t.concurrency_key


def task_out(t: Task, calculated_priority: float) -> pb.Task:
    msg = pb.Task(
        task_id=t.task_id,
        status=STATUS_TO_PB[t.status],
        calculated_priority=calculated_priority,
        root_id=t.root_id,
        level=t.level,
        path=t.path,
        attempt=t.attempt,
        assigned_agent_id=t.assigned_agent_id or "",
        progress=t.progress,
        status_note=t.status_note,
        result=t.result or b"",
        result_content_type=t.result_content_type,
        last_error=t.last_error,
    )
    if t.traceparent:
        msg.traceparent = t.traceparent
    for name in _TIMES:
        value = getattr(t, name)
        if value is not None:
            set_us(getattr(msg, name), value)
    spec_into(msg.spec, t)
    return msg


def transition_out(tr: Transition) -> pb.TaskTransition:
    return pb.TaskTransition(
        task_id=tr.task_id,
        from_status=STATUS_TO_PB[tr.from_status] if tr.from_status else pb.TASK_STATUS_UNSPECIFIED,
        to_status=STATUS_TO_PB[tr.to_status],
        reason=tr.reason,
        actor=tr.actor,
        time=ts(tr.at),
        attempt=tr.attempt,
    )


def assignment_out(a: Assignment, calculated_priority: float) -> pb.Assignment:
    return pb.Assignment(
        task=task_out(a.task, calculated_priority),
        attempt=a.attempt,
        lease_expires_at=ts(a.lease_expires_at),
    )


def cancellation_out(c: Cancellation) -> pb.Cancellation:
    return pb.Cancellation(task_id=c.task_id, attempt=c.attempt, reason=c.reason)


def edge_out(e: DependencyEdge) -> pb.DependencyEdge:
    msg = pb.DependencyEdge(
        task_id=e.task_id,
        title=e.title,
        type=DEP_TO_PB[e.type],
        status=STATUS_TO_PB[e.status],
        blocking=e.blocking,
    )
    if e.resolved_at is not None:
        set_us(msg.resolved_at, e.resolved_at)
    return msg


# The outcomes a worker sends (Complete, Fail, ExtendLease), unary or on its Work stream.
def complete_input(req: pb.CompleteRequest) -> CompleteInput:
    return CompleteInput(
        task_id=req.task_id,
        agent_id=req.agent_id,
        attempt=req.attempt,
        result=req.result,
        result_content_type=req.result_content_type,
    )


def fail_input(req: pb.FailRequest) -> FailInput:
    return FailInput(
        task_id=req.task_id,
        agent_id=req.agent_id,
        attempt=req.attempt,
        error=req.error,
        non_retryable=req.non_retryable,
    )


def extend_input(req: pb.ExtendLeaseRequest) -> ExtendInput:
    ext = dur_us(req, "extension")
    if ext is not None and not US_PER_S <= ext <= MAX_LEASE_US:
        raise InvalidArgument("extension", "must be between 1 s and 24 h")
    return ExtendInput(
        task_id=req.task_id,
        agent_id=req.agent_id,
        attempt=req.attempt,
        progress=req.progress if req.HasField("progress") else None,
        status_note=req.status_note or None,
        extension_us=ext,
    )
