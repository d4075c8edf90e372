"""The console's JSON shapes of agents, messages, tasks, attempts, sessions and transitions (times
in epoch milliseconds; payloads as a preview: JSON pretty-printed, text as is, anything else as
hex)."""

from __future__ import annotations

import json
from typing import Any

from ..domain import task_states
from ..models.a2a import PushDelivery
from ..models.agents import Agent, AgentRecord
from ..models.messages import Message
from ..models.sessions import Session
from ..models.subscriptions import SubscriptionInfo
from ..models.tasks import Task, TaskStatus, Transition

PREVIEW_BYTES = 4096


def ms(us: int | None) -> int | None:
    return None if us is None else us // 1000


def preview(payload: bytes | None, content_type: str) -> dict[str, Any]:
    """How to show a payload: ``{"kind": "json" | "text" | "hex" | "empty", "text", "size"}``."""
    data = payload or b""
    size = len(data)
    if not data:
        return {"kind": "empty", "text": "", "size": 0}
    head = data[:PREVIEW_BYTES]
    cut = size > PREVIEW_BYTES
    try:
        text = head.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None and not cut and ("json" in content_type or text.lstrip()[:1] in ("{", "[")):
        try:
            return {"kind": "json", "text": json.dumps(json.loads(text), indent=2), "size": size}
        except ValueError:
            pass
    if text is not None and all(c.isprintable() or c in "\n\r\t" for c in text):
        return {"kind": "text", "text": text + ("…" if cut else ""), "size": size}
    shown = data[:512]
    hexed = " ".join(shown[i : i + 16].hex(" ") for i in range(0, len(shown), 16))
    return {"kind": "hex", "text": hexed + (" …" if size > 512 else ""), "size": size}


def agent(a: Agent, backlog: int | None = None) -> dict[str, Any]:
    return {
        "agent_id": a.agent_id,
        "name": a.name,
        "agent_type": a.agent_type,
        "capabilities": list(a.capabilities),
        "status": a.status.value,
        "current_task_count": a.current_task_count,
        "max_concurrent_tasks": a.max_concurrent_tasks,
        "last_heartbeat_at": ms(a.last_heartbeat_at),
        "registered_at": ms(a.registered_at),
        "labels": a.labels,
        "backlog": backlog,
    }


def message(m: Message) -> dict[str, Any]:
    return {
        "message_id": m.message_id,
        "sender_id": m.sender_id,
        "recipient_id": m.recipient_id,
        "target_kind": m.target_kind.value,
        "target_capability": m.target_capability,
        "message_type": m.message_type,
        "content_type": m.content_type,
        "priority": m.priority,
        "status": m.status.value if m.status is not None else None,
        "attempt": m.attempt,
        "subject": m.subject,
        "subscription": m.subscription,
        "max_attempts": m.max_attempts,
        "conversation_id": m.conversation_id,
        "correlation_id": m.correlation_id,
        "created_at": ms(m.created_at),
        "delivered_at": ms(m.delivered_at),
        "processed_at": ms(m.processed_at),
        "last_error": m.last_error,
        "headers": m.headers,
        "payload": preview(m.payload, m.content_type),
    }


def subscription(i: SubscriptionInfo, now: int) -> dict[str, Any]:
    """A subscription to subjects with its figures (``oldest_unacked_age_ms``: how long its oldest
    unacknowledged message has waited)."""
    spec = i.spec
    oldest = i.oldest_unacked_at
    return {
        "name": spec.name,
        "filter": spec.filter,
        "ordering": spec.ordering,
        "max_attempts": spec.max_attempts,
        "dead_letter_subject": spec.dead_letter_subject,
        "created_at": ms(i.created_at),
        "created_by": i.created_by,
        "backlog": i.backlog,
        "in_flight": i.in_flight,
        "dead_letters": i.dead_letters,
        "oldest_unacked_at": ms(oldest),
        "oldest_unacked_age_ms": ms(max(0, now - oldest)) if oldest is not None else None,
    }


def task(t: Task) -> dict[str, Any]:
    return {
        "task_id": t.task_id,
        "title": t.title,
        "task_type": t.task_type,
        "status": t.status.value,
        "priority": t.priority,
        "attempt": t.attempt,
        "max_retries": t.max_retries,
        "assigned_agent_id": t.assigned_agent_id,
        "parent_id": t.parent_id,
        "root_id": t.root_id,
        "level": t.level,
        "depends_on": [{"task_id": d.task_id, "type": d.type.value} for d in t.depends_on],
        "required_capabilities": list(t.required_capabilities),
        "session_id": t.session_id,
        "tags": list(t.tags),
        "progress": t.progress,
        "status_note": t.status_note,
        "last_error": t.last_error,
        "created_at": ms(t.created_at),
        "started_at": ms(t.started_at),
        "finished_at": ms(t.finished_at),
        "lease_expires_at": ms(t.lease_expires_at),
        "next_attempt_at": ms(t.next_attempt_at),
        "payload": preview(t.payload, t.content_type),
        "result": preview(t.result, t.result_content_type),
        "metadata": t.metadata,
        "traceparent": t.traceparent,
    }


def push(d: PushDelivery) -> dict[str, Any]:
    return {
        "seq": d.seq,
        "task_id": d.task_id,
        "config_id": d.config_id,
        "status": d.status,
        "attempt": d.attempt,
        "last_error": d.last_error,
        "created_at": ms(d.created_at),
        "next_at": ms(d.next_at),
        "body": preview(d.body, "application/json"),
    }


def transition(tr: Transition) -> dict[str, Any]:
    return {
        "from_status": tr.from_status.value if tr.from_status else None,
        "to_status": tr.to_status.value,
        "reason": tr.reason,
        "actor": tr.actor,
        "at": ms(tr.at),
        "attempt": tr.attempt,
    }


def attempts(history: list[Transition], t: Task) -> list[dict[str, Any]]:
    """Each attempt of a task, from its history: who held it, when it started and ended, how
    long it ran, how it ended and why (the error, a lapsed lease); a running one's lease expiry."""
    out: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for tr in history:
        if tr.to_status is TaskStatus.RUNNING:
            current = {
                "attempt": tr.attempt,
                "agent_id": tr.actor,
                "started_at": ms(tr.at),
                "ended_at": None,
                "duration_ms": None,
                "outcome": "running",
                "reason": "",
                "lease_expired": False,
                "lease_expires_at": None,
            }
            out.append(current)
        elif tr.from_status is TaskStatus.RUNNING and current is not None:
            current["ended_at"] = ms(tr.at)
            current["duration_ms"] = current["ended_at"] - current["started_at"]
            current["outcome"] = "retried" if tr.to_status is TaskStatus.READY else tr.to_status.value
            current["reason"] = tr.reason
            current["lease_expired"] = task_states.lease_expired(current["agent_id"]) in tr.reason
            current = None
    if current is not None and t.status is TaskStatus.RUNNING:
        current["lease_expires_at"] = ms(t.lease_expires_at)
    return out


def record(r: AgentRecord) -> dict[str, Any]:
    return {
        "tasks_completed": r.tasks_completed,
        "tasks_failed": r.tasks_failed,
        "success_rate": r.success_rate,
        "mean_run_ms": r.mean_run_us / 1000,
        "p95_run_ms": r.p95_run_us / 1000,
        "window_s": r.window_s,
    }


def session(s: Session) -> dict[str, Any]:
    return {
        "session_id": s.session_id,
        "name": s.name,
        "parent_session_id": s.parent_session_id,
        "initiated_by": s.initiated_by,
        "status": s.status.value,
        "status_reason": s.status_reason,
        "labels": s.labels,
        "context": s.context,
        "deadline": ms(s.deadline),
        "max_tasks": s.max_tasks,
        "summary": s.summary,
        "created_at": ms(s.created_at),
        "updated_at": ms(s.updated_at),
        "closed_at": ms(s.closed_at),
        "finished_at": ms(s.finished_at),
        "counts": s.counts,
        "progress": s.progress,
    }
